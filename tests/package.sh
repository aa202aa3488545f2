#!/usr/bin/env bash
# tests/package.sh -- builds the pkramfs .deb with cpack and proves that it installs and removes
# cleanly on Debian 12 with apt-get / dpkg -i / dpkg -r / dpkg -P, in a throwaway root: a Debian
# 12 base made once with debootstrap (cached), mounted as a fresh overlay for every run, inside a
# private mount namespace. The host's own package database and file systems are never touched.
#
# usage: tests/package.sh [--prepare-only] BUILD_DIR
#   BUILD_DIR       a configured and built pkramfs build tree (cpack runs its install rules)
#   --prepare-only  make the cached base root and exit
# env:
#   PKRAMFS_PKG_CACHE   where the base root and the downloaded .debs are kept
#                       (default BUILD_DIR/pkg-cache; the base takes ~3 min and ~700 MB once)
#   PKRAMFS_PKG_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   PKRAMFS_PKG_KEEP=1  keep the work directory (logs, the overlay's upper layer) afterwards
#
# What runs in the throwaway root (a Debian 12 minbase with dkms and the cloud kernel's headers,
# so that the package's postinst really builds pkram.ko through DKMS):
#   apt-get install ./pkramfs.deb (resolves the dependencies), check, dpkg -r, dpkg -P;
#   dpkg -i without kernel headers (DKMS: added, not built), dpkg -i again over it (upgrade path,
#   headers back: built and installed), dpkg -P: the file tree is exactly as before the install;
#   dpkg -i and dpkg -P without dkms at all.
# Prints PASS/FAIL lines; exits non-zero on any FAIL. modprobe/insmod are stubs in the root: a
# maintainer script there (fuse3's runs "modprobe fuse") can never load a module into the host.
set -u
export LC_ALL=C

PREPARE_ONLY=0
if [ "${1:-}" = --prepare-only ]; then PREPARE_ONLY=1; shift; fi
{ [ $# -eq 1 ] && [ -d "$1" ]; } || { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUILD=$(cd "$1" && pwd)

if [ "$(id -u)" != 0 ]; then
    echo "FAIL package: must run as root (debootstrap, chroot, mounts)"
    exit 1
fi
# Everything below in a private mount and pid namespace: no mount can outlive the script. And
# without CAP_SYS_MODULE: the kernel itself refuses a module load from anything in the throwaway
# root (a maintainer script, DKMS), whatever the modprobe/insmod stubs below cover.
if [ "${PKPKG_ISOLATED:-}" != 1 ]; then
    export PKPKG_ISOLATED=1
    args=("$BUILD")
    [ $PREPARE_ONLY = 1 ] && args=(--prepare-only "$BUILD")
    exec setpriv --bounding-set -sys_module \
        unshare -m --propagation private --pid --fork --mount-proc --kill-child \
        bash "$0" "${args[@]}"
fi
if grep -q '^CapBnd:' /proc/self/status &&
    (( (0x$(awk '/^CapBnd:/ { print $2 }' /proc/self/status) >> 16) & 1 )); then
    echo "FAIL package: CAP_SYS_MODULE is still in the bounding set; refusing to run"
    exit 1
fi

CACHE=${PKRAMFS_PKG_CACHE:-$BUILD/pkg-cache}
MIRROR=${PKRAMFS_PKG_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${MIRROR%/debian}/debian-security
BASE=$CACHE/base-bookworm
# Change the recipe string when the recipe changes: the cached base is then made again.
RECIPE="v1 bookworm minbase+dkms+linux-headers-cloud-amd64, modprobe/insmod stubs, $MIRROR"
PATH_IN_ROOT=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1: ${2:-}"; }
info() { echo "# $*"; }
details() { sed -n "1,${2:-20}p" "$1" | sed 's/^/    /'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)

WORK=$(mktemp -d /tmp/pkramfs-package.XXXXXX)
cleanup() {
    # unmount whatever is still mounted below WORK or the base, innermost first
    awk -v w="$WORK" -v b="$BASE" 'index($2, w) == 1 || index($2, b ".new") == 1 { print $2 }' \
        /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    if [ "${PKRAMFS_PKG_KEEP:-}" = 1 ]; then
        echo "# kept $WORK"
    else
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT

# in_root ROOT CMD...: CMD in the chroot, with a clean environment.
in_root() {
    local root=$1; shift
    chroot "$root" /usr/bin/env -i PATH=$PATH_IN_ROOT HOME=/root LC_ALL=C \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# mount_root_fs ROOT: /proc (this pid namespace's) and the shared apt archive cache.
mount_root_fs() {
    mount -t proc proc "$1/proc" || return 1
    mkdir -p "$CACHE/archives/partial"
    mount --bind "$CACHE/archives" "$1/var/cache/apt/archives" || return 1
    # (never through a symlink of the root: it would point into the host)
    rm -f "$1/etc/resolv.conf" && cp -L /etc/resolv.conf "$1/etc/resolv.conf" 2>/dev/null
    in_root "$1" chown _apt:root /var/cache/apt/archives/partial 2>/dev/null
    return 0
}
umount_root_fs() {
    umount "$1/var/cache/apt/archives" 2>/dev/null
    umount "$1/proc" 2>/dev/null
}

# ------------------------------------------------------------------- base root --
make_base() {
    local new=$BASE.new log=$CACHE/base.log t0
    t0=$(now)
    if ! command -v debootstrap >/dev/null; then
        info "installing debootstrap on the host (tools/install-deps lists it)"
        apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
            { fail base "debootstrap is missing and could not be installed"; return 1; }
    fi
    info "making the Debian 12 base root in $BASE (once; log $log)"
    rm -rf --one-file-system "$new" "$BASE"
    mkdir -p "$CACHE"
    if ! debootstrap --variant=minbase bookworm "$new" "$MIRROR" >"$log" 2>&1; then
        fail base "debootstrap --variant=minbase bookworm $new $MIRROR failed"
        tail -n 20 "$log" | sed 's/^/    /'
        return 1
    fi
    cat >"$new/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
    echo force-unsafe-io >"$new/etc/dpkg/dpkg.cfg.d/unsafe-io"
    printf 'Acquire::Languages "none";\nAPT::Install-Recommends "false";\n' \
        >"$new/etc/apt/apt.conf.d/90pkramfs-test"
    printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
    chmod 755 "$new/usr/sbin/policy-rc.d"
    # No maintainer script in here may load a module into the host's kernel.
    local f
    for f in /sbin/modprobe /sbin/insmod /sbin/rmmod; do
        in_root "$new" dpkg-divert --local --rename --add "$f" >>"$log" 2>&1
    done
    mount_root_fs "$new" || { fail base "cannot mount /proc or the apt cache in $new"; return 1; }
    if ! in_root "$new" apt-get update -q >>"$log" 2>&1 ||
        ! in_root "$new" apt-get install -y -q dkms linux-headers-cloud-amd64 >>"$log" 2>&1; then
        umount_root_fs "$new"
        fail base "apt-get install dkms linux-headers-cloud-amd64 failed in the base root"
        tail -n 20 "$log" | sed 's/^/    /'
        return 1
    fi
    for f in /sbin/modprobe /sbin/insmod /sbin/rmmod; do   # written from inside the root
        in_root "$new" sh -c "rm -f $f && printf '#!/bin/sh\\necho \"%s disabled in the pkramfs \
package test root: \$*\" >&2\\nexit 0\\n' ${f##*/} >$f && chmod 755 $f" >>"$log" 2>&1
    done
    in_root "$new" apt-get clean >>"$log" 2>&1
    umount_root_fs "$new"
    rm -f "$new/etc/resolv.conf"
    mv "$new" "$BASE" && echo "$RECIPE" >"$BASE.recipe"
    info "base root ready in $(secs "$t0" "$(now)") s ($(du -sh "$BASE" | cut -f1))"
}

if [ ! -d "$BASE" ] || [ "$(cat "$BASE.recipe" 2>/dev/null)" != "$RECIPE" ]; then
    make_base || exit 1
else
    info "base root: $BASE (cached)"
fi
[ $PREPARE_ONLY = 1 ] && exit 0
T_BASE=$(now)

# ---------------------------------------------------------------- the package --
# The package is built without the test-only fault injection switch (backend/util/fault.h). The
# product build (tools/build) has it off and is packaged as it is; a build that has it on (an
# older build directory, a hand-made one) is packaged from a release tree of its own, configured
# and built next to it from the same sources.
if grep -q '^PKRAMFS_FAULT_INJECTION:BOOL=ON$' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")
    REL=$BUILD/package-build
    info "$BUILD has fault injection compiled in: building a package tree in $REL"
    if ! { cmake -S "$SRC" -B "$REL" -DPKRAMFS_WERROR=ON -DPKRAMFS_FAULT_INJECTION=OFF \
            -DBUILD_TESTING=OFF && cmake --build "$REL" -j"${PKRAMFS_PKG_JOBS:-2}"; } \
            >"$WORK/release-build.log" 2>&1; then
        fail build "the package tree in $REL does not build"
        tail -n 20 "$WORK/release-build.log" | sed 's/^/    /'
        exit 1
    fi
    BUILD=$REL
fi
VERSION=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$BUILD/CPackConfig.cmake")
[ -n "$VERSION" ] || { fail cpack "no CPACK_PACKAGE_VERSION in $BUILD/CPackConfig.cmake"; exit 1; }
if ! (cd "$BUILD" && cpack -G DEB -B "$WORK/out" >"$WORK/cpack.log" 2>&1); then
    fail cpack "cpack -G DEB failed in $BUILD"
    tail -n 20 "$WORK/cpack.log" | sed 's/^/    /'
    exit 1
fi
DEB=$(ls "$WORK"/out/pkramfs_*.deb 2>/dev/null | head -n1)
[ -f "$DEB" ] || { fail cpack "no pkramfs_*.deb in $WORK/out"; ls "$WORK/out" | sed 's/^/    /'; exit 1; }
pass "cpack: $(basename "$DEB") ($(du -k "$DEB" | cut -f1) KiB)"
T_CPACK=$(now)

field() { dpkg-deb -f "$DEB" "$1"; }
expect_field() { # NAME FIELD EXTENDED-REGEX
    local v; v=$(field "$2")
    if [[ $v =~ $3 ]]; then pass "$1"; else fail "$1" "$2: '$v' does not match /$3/"; fi
}
expect_field deb:package Package '^pkramfs$'
expect_field deb:version Version "^$VERSION(-[0-9]+)?$"
expect_field deb:arch Architecture '^amd64$'
expect_field deb:depends:fuse3 Depends '(^|, )fuse3( |,|$)'
expect_field deb:depends:libfuse3 Depends '(^|, )libfuse3-3( |,|$)'
expect_field deb:depends:libstdc++ Depends 'libstdc\+\+6'
expect_field deb:recommends Recommends 'dkms.*kexec-tools|kexec-tools.*dkms'
expect_field deb:maintainer Maintainer '.+<.+@.+>'
expect_field deb:section Section '.+'
info "Depends: $(field Depends)"

dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|' >"$WORK/contents"
UNITDIR=/lib/systemd/system
SRCDIR=/usr/src/pkram-$VERSION
MUST_HAVE=(/usr/sbin/pkramfs-fuse /usr/sbin/pkramfs-ctl
    "$UNITDIR/pkramfs@.service" "$UNITDIR/pkramfs-preserve@.service"
    /usr/libexec/pkramfs/pkramfs-unit-helper /usr/lib/tmpfiles.d/pkramfs.conf
    /usr/share/man/man8/pkramfs-fuse.8 /usr/share/man/man8/pkramfs-ctl.8 /usr/share/man/man4/pkram.4
    /usr/share/doc/pkramfs/operations.md /usr/share/doc/pkramfs/README.md
    /usr/share/doc/pkramfs/examples/pkramfs.conf.example
    "$SRCDIR/dkms.conf" "$SRCDIR/kmod/pkram.c" "$SRCDIR/kmod/pkram_format.h" "$SRCDIR/kmod/Kbuild"
    "$SRCDIR/include/pkramfs/pkram_uapi.h")
missing=()
for f in "${MUST_HAVE[@]}"; do grep -qxF "$f" "$WORK/contents" || missing+=("$f"); done
if [ ${#missing[@]} = 0 ]; then pass deb:contents
else fail deb:contents "missing ${missing[*]}"; fi
if grep -E '^/usr/local/|^/etc/' "$WORK/contents" >"$WORK/bad" 2>/dev/null; then
    fail deb:paths "files under /usr/local or /etc"; details "$WORK/bad"
else pass deb:paths; fi
unit=$(dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - ".$UNITDIR/pkramfs@.service")
if grep -q '^ExecStart=/usr/sbin/pkramfs-fuse ' <<<"$unit" &&
    grep -q '^ExecStartPre=/usr/libexec/pkramfs/pkramfs-unit-helper ' <<<"$unit" &&
    ! grep -q /usr/local <<<"$unit"; then
    pass deb:unit-paths
else
    fail deb:unit-paths "pkramfs@.service does not name /usr/sbin and /usr/libexec"
    grep -E '^Exec|/usr/' <<<"$unit" | sed 's/^/    /'
fi

# --------------------------------------------------------- the throwaway root --
ROOT=$WORK/root
mkdir -p "$ROOT" "$WORK/upper" "$WORK/ovl-work"
if mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$WORK/upper,workdir=$WORK/ovl-work" \
    "$ROOT" 2>"$WORK/overlay.err"; then
    info "root: overlay of the base"
else
    info "overlay mount failed ($(cat "$WORK/overlay.err")): copying the base"
    cp -a "$BASE/." "$ROOT/" || { fail root "cannot copy $BASE"; exit 1; }
fi
mount_root_fs "$ROOT" || { fail root "cannot mount /proc or the apt cache in $ROOT"; exit 1; }
cp "$DEB" "$ROOT/tmp/pkramfs.deb"
KVERS=$(ls "$ROOT/lib/modules")
KVER=$(ls -d "$ROOT"/lib/modules/*/build 2>/dev/null | head -n1 | sed 's|.*/lib/modules/||; s|/build$||')
info "kernel headers in the root: ${KVER:-none} (host kernel $(uname -r))"

# step NAME CMD...: runs CMD in the root, logged; PASS/FAIL by its status.
step() {
    local name=$1 log=$WORK/step-$1.log t0; shift
    t0=$(now)
    if in_root "$ROOT" "$@" >"$log" 2>&1; then
        pass "$name ($(secs "$t0" "$(now)") s)"
        # what the maintainer scripts said about DKMS
        grep -E '^(pkramfs:|Building (for|initial)|Module build|It is likely|Done\.|Skipped\.)' "$log" |
            sed 's/^/#   /'
        return 0
    fi
    fail "$name" "'$*' failed in the root ($(secs "$t0" "$(now)") s)"
    tail -n 25 "$log" | sed 's/^/    /'
    return 1
}

# check_installed TAG DKMS: the package works; DKMS = installed | added | none
check_installed() {
    local tag=$1 dkms=$2 f out
    out=$(in_root "$ROOT" dpkg-query -W -f='${db:Status-Abbrev}${Version}' pkramfs 2>&1)
    if [[ $out == ii* ]]; then pass "$tag:status"; else fail "$tag:status" "dpkg-query: $out"; fi
    for f in pkramfs-fuse pkramfs-ctl; do
        if out=$(in_root "$ROOT" "$f" --help 2>&1) && grep -q "^Usage: $f" <<<"$out"; then
            pass "$tag:$f-help"
        else fail "$tag:$f-help" "$f --help: $(head -n3 <<<"$out")"; fi
        # the test-only switch is not in a package (CPack refuses such a build)
        if [ "$f" = pkramfs-fuse ] && in_root "$ROOT" "$f" --debug-fail=list >/dev/null 2>&1; then
            fail "$tag:no-fault-injection" "the packaged pkramfs-fuse accepts --debug-fail"
        elif [ "$f" = pkramfs-fuse ]; then pass "$tag:no-fault-injection"; fi
        out=$(in_root "$ROOT" ldd "/usr/sbin/$f" 2>&1)
        if grep -q 'not found' <<<"$out"; then fail "$tag:$f-libs" "$(grep 'not found' <<<"$out")"
        else pass "$tag:$f-libs"; fi
    done
    missing=()
    for f in "${MUST_HAVE[@]}"; do [ -e "$ROOT$f" ] || missing+=("$f"); done
    [ -x "$ROOT/usr/libexec/pkramfs/pkramfs-unit-helper" ] || missing+=("executable helper")
    if [ ${#missing[@]} = 0 ]; then pass "$tag:files"; else fail "$tag:files" "missing ${missing[*]}"; fi
    # mount(8)'s helper finds the daemon by name for "mount -t fuse.pkramfs-fuse"
    out=$(in_root "$ROOT" sh -c 'command -v mount.fuse3 && command -v pkramfs-fuse' 2>&1)
    if [ "$(wc -l <<<"$out")" = 2 ]; then pass "$tag:mount-helper"
    else fail "$tag:mount-helper" "mount.fuse3 or pkramfs-fuse not in PATH: $out"; fi
    [ "$dkms" = none ] && return
    out=$(in_root "$ROOT" dkms status pkram 2>&1)
    case $dkms in
    installed)
        if [ -n "$KVER" ] && grep -q "^pkram/$VERSION, $KVER, .*: installed" <<<"$out" &&
            [ -n "$(find "$ROOT/lib/modules/$KVER" -name 'pkram.ko*' 2>/dev/null)" ]; then
            pass "$tag:dkms-installed ($KVER)"
            out=$(in_root "$ROOT" sh -c "modinfo -F name \$(find /lib/modules/$KVER -name 'pkram.ko*' | head -n1)" 2>&1)
            if [ "$out" = pkram ]; then pass "$tag:dkms-modinfo"
            else fail "$tag:dkms-modinfo" "modinfo -F name: $out"; fi
        else
            fail "$tag:dkms-installed" "dkms status: $out"
            f=$(ls "$ROOT"/var/lib/dkms/pkram/"$VERSION"/build/make.log 2>/dev/null)
            [ -n "$f" ] && details "$f" 30
        fi
        ;;
    added)
        if grep -q "^pkram/$VERSION: added" <<<"$out"; then pass "$tag:dkms-added"
        else fail "$tag:dkms-added" "dkms status: $out"; fi
        ;;
    esac
}

# check_removed TAG LIST: nothing of the package remains (LIST: its dpkg -L while installed)
check_removed() {
    local tag=$1 list=$2 p left=() owner
    while IFS= read -r p; do
        [ -n "$p" ] && [ "$p" != /. ] || continue
        if [ -d "$ROOT$p" ]; then
            # a directory (or /lib, a symlink to one) may stay if another package owns it too
            owner=$(in_root "$ROOT" dpkg-query -S "$p" 2>/dev/null | grep -v '^pkramfs:')
            [ -n "$owner" ] || left+=("$p/")
        elif [ -e "$ROOT$p" ] || [ -L "$ROOT$p" ]; then
            left+=("$p")
        fi
    done <"$list"
    [ -e "$ROOT$SRCDIR" ] && left+=("$SRCDIR")
    [ -e "$ROOT/var/lib/dkms/pkram" ] && left+=(/var/lib/dkms/pkram)
    p=$(cd "$ROOT" && find lib/modules -name 'pkram.ko*' 2>/dev/null)
    [ -n "$p" ] && left+=("$p")
    if [ ${#left[@]} = 0 ]; then pass "$tag:nothing-left"
    else fail "$tag:nothing-left" "still there: ${left[*]}"; fi
}

check_purged() {
    local tag=$1 out
    out=$(in_root "$ROOT" dpkg-query -W -f='${db:Status-Abbrev}' pkramfs 2>/dev/null)
    if [ -z "$out" ] || [[ $out == un* ]]; then pass "$tag:purged"
    else fail "$tag:purged" "dpkg-query says '$out'"; fi
    out=$(ls "$ROOT"/var/lib/dpkg/info/pkramfs.* 2>/dev/null)
    if [ -z "$out" ]; then pass "$tag:no-dpkg-info"; else fail "$tag:no-dpkg-info" "$out"; fi
}

# The file tree of the root, without what changes anyway (logs, caches, dpkg's database).
snapshot() {
    in_root "$ROOT" find / -xdev \( -path /proc -o -path /tmp -o -path /var/log \
        -o -path /var/cache -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /run \
        -o -path /etc/ld.so.cache \) -prune -o -printf '%y %m %u %p\n' | sort >"$1"
}

T_ROOT=$(now)
# 1. apt-get install ./pkramfs.deb: dependencies from the mirror, DKMS builds pkram.ko.
step apt-update apt-get update -q || exit 1
step apt-install apt-get install -y -q /tmp/pkramfs.deb || exit 1
check_installed apt installed
in_root "$ROOT" dpkg -L pkramfs >"$WORK/dpkg-L"
info "dpkg -L pkramfs: $(wc -l <"$WORK/dpkg-L") paths"
step dpkg-r dpkg -r pkramfs
check_removed dpkg-r "$WORK/dpkg-L"
step dpkg-P dpkg -P pkramfs
check_purged dpkg-P
snapshot "$WORK/tree-before"

# 2. dpkg -i without kernel headers: the install must not fail; DKMS only adds the source.
if [ -n "$KVER" ]; then
    mv "$ROOT/lib/modules/$KVER/build" "$ROOT/lib/modules/$KVER/build.hidden"
    step dpkg-i-no-headers dpkg -i /tmp/pkramfs.deb && check_installed no-headers added
    mv "$ROOT/lib/modules/$KVER/build.hidden" "$ROOT/lib/modules/$KVER/build"
else
    step dpkg-i-no-headers dpkg -i /tmp/pkramfs.deb && check_installed no-headers none
fi
# 3. dpkg -i over the installed package (prerm upgrade, postinst configure VERSION): built now.
step dpkg-i-again dpkg -i /tmp/pkramfs.deb && check_installed reinstall installed
in_root "$ROOT" dpkg -L pkramfs >"$WORK/dpkg-L2"
step dpkg-P-installed dpkg -P pkramfs
check_removed dpkg-P-installed "$WORK/dpkg-L2"
check_purged dpkg-P-installed
snapshot "$WORK/tree-after"
if diff "$WORK/tree-before" "$WORK/tree-after" >"$WORK/tree.diff"; then
    pass "tree-unchanged ($(wc -l <"$WORK/tree-before") paths)"
else
    fail tree-unchanged "the root's files differ after install + purge"
    details "$WORK/tree.diff" 30
fi

# 4. Without dkms at all: the package installs, says how to build the module, and purges.
step remove-dkms dpkg -r dkms
step dpkg-i-no-dkms dpkg -i /tmp/pkramfs.deb && check_installed no-dkms none
if grep -q 'dkms' "$WORK/step-dpkg-i-no-dkms.log"; then pass no-dkms:hint
else fail no-dkms:hint "postinst did not say how to build pkram.ko"; details "$WORK/step-dpkg-i-no-dkms.log"; fi
step dpkg-P-no-dkms dpkg -P pkramfs && check_removed dpkg-P-no-dkms "$WORK/dpkg-L2"
T_END=$(now)

info "times: base $(secs "$T_START" "$T_BASE") s, cpack $(secs "$T_BASE" "$T_CPACK") s," \
    "root $(secs "$T_ROOT" "$T_END") s, total $(secs "$T_START" "$T_END") s (kernels in root: $KVERS)"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
