#!/bin/bash
# security.sh -- what an unprivileged local user can and cannot do to a pkramfs, and what the
# daemon refuses to trust (docs/security.md is the threat model; each of its points names the
# check that tests it):
#  - as user nobody on an `-o allow_other` mount, side by side with a kernel tmpfs: every denied
#    operation (read/write of a 0600 root file, creating in 0555 and root-owned 0755 dirs, chmod/
#    chown/utime of others' files, the sticky bit, devices, trusted.* xattrs) fails with tmpfs's
#    errno and leaves the tree unchanged; writes and truncates by a non-owner drop suid/sgid;
#    blocks a file gets are zero, never an earlier file's data; once per --cache mode;
#  - without allow_other, another user gets EACCES on everything, even stat of the mount root;
#  - --run-dir/--shm-dir: a group/world-writable, sticky, non-root-owned or symlinked directory is
#    refused with nothing created in it; the ones the daemon creates are 0700, node and lock files
#    0600 and unreadable by others;
#  - a node file or lock file that is a symlink (or a fifo) is never followed: refused, the
#    target untouched, also by pkramfs-ctl.
# Covered elsewhere (not repeated here): bad node names (cli.sh bad-name*, ctl.sh bad-name*), the
# control socket's mode, SO_PEERCRED and malformed/oversized/stuck requests (ctl.sh socket:*,
# raw:*, nobody:*), damaged node files (corruption.sh, persistence.sh, tests/fuzz).
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl
if [ -z "$PY" ]; then
    fail "security:python3" "python3 is needed for the probes"
    finish
fi

nb() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

PROBE=$PKIT_LIBDIR/security_probe.py
# as_nobody OP ARGS...: one system call as nobody; prints "ok" or the errno name
as_nobody() { (cd / && nb "$PY" "$PROBE" op "$@" 2>&1); }

# The same tree on tmpfs and pkramfs, built as root. Owners: root unless said otherwise.
setup_tree() {
    local d=$1/sec
    mkdir "$d" && cd "$d" || return 1
    echo "top secret" >secret && chmod 600 secret
    setfattr -n user.k -v hidden secret 2>/dev/null # tmpfs before 6.6 has no user.* xattrs
    echo public >pub && chmod 644 pub
    echo shared >ww && chmod 666 ww
    mkdir ro555 && echo f >ro555/f && chmod 555 ro555
    mkdir nb555 && chown 65534:65534 nb555 && chmod 555 nb555
    mkdir -p rootdir/sub && echo f >rootdir/f && chmod 755 rootdir
    mkdir sticky && chmod 1777 sticky
    echo r >sticky/rootf && chmod 666 sticky/rootf
    mkdir sticky/rootdir && chmod 777 sticky/rootdir
    echo n >sticky/nbf && chown 65534:65534 sticky/nbf
    echo n >nbown && chown 65534:65534 nbown
    for f in suid sgid sgidnox suidtr sgidnoxtr; do echo x >$f; done
    chmod 4777 suid; chmod 6777 sgid; chmod 2767 sgidnox; chmod 4777 suidtr; chmod 6767 sgidnoxtr
    # Owned by nobody: chown by the owner clears suid, and sgid with group-exec or when the
    # owner is outside the file's group (root's group here).
    for f in chgrpnox chownnoop; do echo x >$f; chown 65534:0 $f; done
    chmod 2745 chgrpnox; chmod 6755 chownnoop
    cd / || return 1
}

# One line per probe: "NAME EXPECTED OP ARGS..." (paths relative to sec/). EXPECTED is what
# tmpfs must answer too; "ok" probes are the controls that show the user can reach the tree.
PROBES=$(cat <<'EOF'
read-0600-root-file EACCES read secret
append-0600-root-file EACCES append secret
o_trunc-0600-root-file EACCES trunc-open secret
truncate-0600-root-file EACCES truncate secret 0
getxattr-0600-root-file EACCES getxattr secret user.k
setxattr-0644-root-file EACCES setxattr pub user.x
setxattr-trusted EPERM setxattr ww trusted.x
create-in-0555-root-dir EACCES create ro555/new
mkdir-in-0555-root-dir EACCES mkdir ro555/new
unlink-in-0555-root-dir EACCES unlink ro555/f
create-in-0555-own-dir EACCES create nb555/new
mkfifo-in-0555-own-dir EACCES mkfifo nb555/fifo
symlink-in-0555-own-dir EACCES symlink x nb555/sym
rename-into-0555-own-dir EACCES rename sticky/nbf nb555/moved
create-in-0755-root-dir EACCES create rootdir/new
mkdir-in-0755-root-dir EACCES mkdir rootdir/new
symlink-in-0755-root-dir EACCES symlink x rootdir/sym
link-into-0755-root-dir EACCES link ww rootdir/hard
rename-out-of-0755-root-dir EACCES rename rootdir/f sticky/stolen
unlink-in-0755-root-dir EACCES unlink rootdir/f
rmdir-in-0755-root-dir EACCES rmdir rootdir/sub
chmod-others-file EPERM chmod ww 777
chmod-suid-others-file EPERM chmod ww 4666
chown-others-file-to-self EPERM chown ww 65534 65534
chgrp-others-file EPERM chown ww -1 65534
utime-explicit-others-file EPERM utime ww
chown-own-file-to-root EPERM chown nbown 0 -1
mknod-char-device EPERM mknod-chr sticky/null
sticky:unlink-others-file EPERM unlink sticky/rootf
sticky:rename-others-file EPERM rename sticky/rootf sticky/moved
sticky:rename-over-others-file EPERM rename sticky/nbf sticky/rootf
sticky:rmdir-others-dir EPERM rmdir sticky/rootdir
sticky:rename-others-dir EPERM rename sticky/rootdir sticky/moved-dir
control:stat-root-dir ok stat .
control:read-0644-file public read pub
control:utime-now-writable-file ok utime-now ww
EOF
)
# Controls that change the tree: after the denied probes.
CHANGES=$(cat <<'EOF'
control:create-in-sticky ok create sticky/mine
control:unlink-own-in-sticky ok unlink sticky/nbf
suid:append-by-non-owner ok append suid
suid:append-sgid-group-exec ok append sgid
suid:append-sgid-no-group-exec ok append sgidnox
suid:truncate-by-non-owner ok truncate suidtr 1
suid:truncate-sgid-no-group-exec ok truncate sgidnoxtr 1
suid:chgrp-by-owner-outside-group ok chown chgrpnox -1 65534
suid:chown-unchanged-by-owner ok chown chownnoop -1 -1
EOF
)

# run_probes ROOT OUT: every probe as nobody: "NAME RESULT" lines, and for each probe
# "NAME:state unchanged|changed" (security_probe.py); then the suid files' modes
run_probes() {
    local root=$1/sec out=$2
    "$PY" "$PROBE" run "$root" 65534 65534 <<<"$PROBES
$CHANGES" >"$out" 2>&1
    for f in suid sgid sgidnox suidtr sgidnoxtr chgrpnox chownnoop; do echo "mode:$f $(stat -c %a "$root/$f")" >>"$out"; done
}

# result FILE NAME: the recorded answer of probe NAME
result() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$1"; }

# check_probes LABEL PKOUT TMPFSOUT
check_probes() {
    local label=$1 pk=$2 tm=$3 name want op args t p
    while read -r name want op args; do
        t=$(result "$tm" "$name"); p=$(result "$pk" "$name")
        [ "$t" = "$want" ] || fail "nobody:$name:oracle" "tmpfs answered '$t', expected '$want'"
        if [ "$p" = "$want" ]; then pass "nobody[$label]:$name"
        else fail "nobody[$label]:$name" "expected $want (as tmpfs: '$t'), got '$p'"; fi
        [ "$want" = ok ] || [ "$want" = public ] && continue
        if [ "$(result "$pk" "$name:state")" = unchanged ]; then pass "nobody[$label]:$name:unchanged"
        else
            fail "nobody[$label]:$name:unchanged" "the denied operation changed the tree:"
            awk -v k="$name:state" '$1 == k { on = 1; next } on && /^    / { print; next } { on = 0 }' "$pk" | details - 10
        fi
    done <<<"$PROBES"
    while read -r name want op args; do
        t=$(result "$tm" "$name"); p=$(result "$pk" "$name")
        [ "$t" = "$want" ] || fail "nobody:$name:oracle" "tmpfs answered '$t', expected '$want'"
        assert_eq "nobody[$label]:$name" "$want" "$p"
    done <<<"$CHANGES"
    # A write or truncate by someone other than the owner (without CAP_FSETID) drops suid, and
    # sgid with group execute; sgid without group execute as tmpfs does.
    for f in suid sgid suidtr; do
        assert_eq "nobody[$label]:suid:$f-dropped" 777 "$(result "$pk" "mode:$f")"
        [ "$(result "$tm" "mode:$f")" = 777 ] || fail "nobody:suid:$f:oracle" "tmpfs mode $(result "$tm" "mode:$f")"
    done
    assert_eq "nobody[$label]:suid:sgidnox-as-tmpfs" "$(result "$tm" mode:sgidnox)" "$(result "$pk" mode:sgidnox)"
    # Kernel FUSE sends a truncate's mode with sgid kept when group-exec is off; the daemon
    # applies the VFS rule (the caller is outside the group).
    assert_eq "nobody[$label]:suid:truncate-sgidnox-as-tmpfs" "$(result "$tm" mode:sgidnoxtr)" "$(result "$pk" mode:sgidnoxtr)"
    # chown: with FUSE_HANDLE_KILLPRIV_V2 the daemon applies the VFS rule (device_io.h).
    for f in chgrpnox chownnoop; do
        assert_eq "nobody[$label]:suid:chown-$f-as-tmpfs" "$(result "$tm" "mode:$f")" "$(result "$pk" "mode:$f")"
    done
    [ "$(result "$tm" mode:chgrpnox)" = 745 ] || fail "nobody:suid:chgrpnox:oracle" "tmpfs mode $(result "$tm" mode:chgrpnox)"
    [ "$(result "$tm" mode:chownnoop)" = 755 ] || fail "nobody:suid:chownnoop:oracle" "tmpfs mode $(result "$tm" mode:chownnoop)"
}

# Blocks a file gets must read as zeros, never as data another file had. Root writes small
# files, every other one full of a marker, and deletes the marker files: their blocks are free
# but their frames stay in use (the keepers hold them), so that the daemon hands out recycled
# blocks. The mount is 48 MiB: 8 MiB kept, 24 MiB freed; nobody's 24 MiB fallocate alone must
# take at least 8 MiB of recycled blocks. Then partial writes and a file extended by truncate.
# The mounts are shm nodes, so the node file shows whether freed marker blocks were handed out
# again (or cleared at once): otherwise the check would prove nothing.
markers() { "$PY" -c 'import sys; print(open(sys.argv[1], "rb").read().count(b"SECRET-MARKER"))' "$1"; }
fresh_blocks_zero() {
    local label=$1 mnt=$2 node=$3 out written freed left
    "$PY" - "$mnt" <<'PYEOF'
import os, sys
root = sys.argv[1]
os.mkdir(f"{root}/keep"); os.mkdir(f"{root}/mark")
marker = (b"PKRAMFS-SECRET-MARKER-" * 600)[:12288]
for i in range(2000):
    with open(f"{root}/keep/{i}", "wb") as f:
        f.write(b"k" * 4096)
    with open(f"{root}/mark/{i}", "wb") as f:
        f.write(marker)
PYEOF
    sync -f "$mnt"
    written=$(markers "$node")
    rm -rf "$mnt/mark"
    sync -f "$mnt"
    sleep 0.5 # FUSE sends RELEASE after close() returns: let the freed blocks reach the daemon
    freed=$(markers "$node")
    out=$(cd "$mnt/sec/sticky" && nb "$PY" - <<'PYEOF'
import os
res = []
def scan(path):
    with open(path, "rb") as f:
        data = f.read()
    if b"SECRET-MARKER" in data:
        return "marker"
    return "nonzero" if data.translate(None, b"\0x") else "zero"
fd = os.open("falloc", os.O_RDWR | os.O_CREAT, 0o600)
os.posix_fallocate(fd, 0, 24 << 20)
os.close(fd)
res.append("fallocate:" + scan("falloc"))
fd = os.open("partial", os.O_RDWR | os.O_CREAT, 0o600)
for off in range(0, 4 << 20, 65536):
    os.pwrite(fd, b"x", off + 100)
os.close(fd)
res.append("partial-writes:" + scan("partial"))
fd = os.open("grown", os.O_RDWR | os.O_CREAT, 0o600)
os.pwrite(fd, b"x" * 10, 0)
os.ftruncate(fd, 8 << 20)
os.pwrite(fd, b"x", (8 << 20) + 5000)
os.close(fd)
res.append("truncate-extend:" + scan("grown"))
print(" ".join(res))
PYEOF
)
    for k in fallocate partial-writes truncate-extend; do
        case " $out " in
        *" $k:zero "*) pass "nobody[$label]:fresh-blocks-zero[$k]" ;;
        *) fail "nobody[$label]:fresh-blocks-zero[$k]" "got: $out" ;;
        esac
    done
    sync -f "$mnt"
    left=$(markers "$node")
    info "marker copies in the node file: $written written, $freed after the delete, $left after nobody's allocations"
    if [ "$written" = 0 ] && is_mounted "$(dirname "$node")/.$(basename "$node").objects"; then
        # File objects: the data is in tmpfs pages, which the kernel zeroes before any reuse;
        # the arena's blocks are checked in mode "arena".
        skip "nobody[$label]:fresh-blocks-recycled" "file data is in file objects, not the node file"
    else
        check "nobody[$label]:fresh-blocks-recycled" "the freed marker blocks were neither cleared nor reused ($freed -> $left): the zero checks prove nothing" \
            test "$written" -gt 0 -a \( "$freed" -eq 0 -o "$left" -lt "$freed" \)
    fi
    rm -rf "$mnt/keep" "$mnt/sec/sticky/falloc" "$mnt/sec/sticky/partial" "$mnt/sec/sticky/grown"
}

# ---------------------------------------------- as nobody, with allow_other --
TM=$T/tmpfs
tmpfs_mount "$TM" size=256m
setup_tree "$TM" || fail "setup:tmpfs" "could not build the tree"
run_probes "$TM" "$T/probes.tmpfs"
modes=(default)
"$PK" --help 2>&1 | grep -q -- '--cache' && modes=(auto writeback)
modes+=(arena) # files in the node's arena (no passthrough, no file objects)
for mode in "${modes[@]}"; do
    M=$T/mnt-$mode
    args=(--pkram="sec-$mode" --size=48m -o allow_other)
    tune=""
    case $mode in
    default) ;;
    arena) tune=passthrough=0 ;;
    *) args+=(--cache="$mode") ;;
    esac
    if ! PKRAMFS_TUNE=$tune pk_start "$M" "${args[@]}"; then
        fail "nobody[$mode]:mount" "pkramfs-fuse ${args[*]} did not mount"
        continue
    fi
    if setup_tree "$M"; then
        run_probes "$M" "$T/probes.$mode"
        check_probes "$mode" "$T/probes.$mode" "$T/probes.tmpfs"
        fresh_blocks_zero "$mode" "$M" "$SHM/sec-$mode"
    else
        fail "setup:pkramfs[$mode]" "could not build the tree"
    fi
    pk_stop "$M"
done
umount "$TM"

# A frame whose last block is freed is punched out of an shm node's file: the data of a deleted
# file does not stay in the node (root could read it there).
M=$T/mnt-punch
if PKRAMFS_TUNE=passthrough=0 pk_start "$M" --pkram=punch --size=64m; then
    "$PY" -c 'import sys; open(sys.argv[1], "wb").write(b"PKRAMFS-SECRET-MARKER-" * 400000)' "$M/big"
    sync -f "$M"
    before=$(markers "$SHM/punch")
    rm "$M/big"
    sync -f "$M"
    sleep 0.5 # the RELEASE that frees the blocks comes after close()
    after=$(markers "$SHM/punch")
    info "marker copies in the node file: $before before the delete, $after after"
    check "freed-frames-punched" "the deleted file's data is still in the node file ($before -> $after copies)" \
        test "$before" -gt 0 -a "$after" -eq 0
    pk_stop "$M"
else
    fail "freed-frames-punched" "did not mount"
fi

# ------------------------------------------------ callers in other namespaces --
# The root of a user namespace of its own (nobody after unshare -Ur) shows every capability in
# /proc/<tid>/status, valid inside that namespace only; a caller outside the daemon's pid
# namespace arrives with pid 0, which the daemon cannot look up. tmpfs judges CAP_FSETID and
# CAP_SYS_ADMIN with capable(), in the initial user namespace: neither caller keeps suid/sgid
# through O_TRUNC (>), append (>>), truncate(2) or a write (each --cache mode), nor sees
# trusted.* names in listxattr.
NS_PROBES=$(cat <<'EOF'
ns:o-trunc ok trunc-open ns/otrunc
ns:append ok append ns/append
ns:truncate ok truncate ns/truncate 1
ns:pwrite ok pwrite ns/pwrite
ns:listxattr user.u listxattr ns/xattrs
EOF
)
NS_FILES="otrunc append truncate pwrite"
ns_tree() { # ns_tree ROOT: root-owned 6777 files, and one with a trusted.* and a user.* xattr
    local f
    mkdir "$1/ns" || return 1
    for f in $NS_FILES; do echo x >"$1/ns/$f" && chmod 6777 "$1/ns/$f" || return 1; done
    echo x >"$1/ns/xattrs" && setfattr -n trusted.t -v 1 "$1/ns/xattrs" &&
        setfattr -n user.u -v 1 "$1/ns/xattrs"
}
ns_probes() { # ns_probes ROOT OUT [userns]: the probes as nobody, then the files' modes
    local f
    # shellcheck disable=SC2086
    "$PY" "$PROBE" run "$1" 65534 65534 ${3:-} <<<"$NS_PROBES" >"$2" 2>&1
    for f in $NS_FILES; do echo "mode:$f $(stat -c %a "$1/ns/$f")" >>"$2"; done
}
check_ns_probes() { # check_ns_probes LABEL PKOUT TMPFSOUT
    local label=$1 pk=$2 tm=$3 name want op args t f
    while read -r name want op args; do
        t=$(result "$tm" "$name")
        [ "$t" = "$want" ] || fail "$label:$name:oracle" "tmpfs answered '$t', expected '$want'"
        assert_eq "$label:$name" "$want" "$(result "$pk" "$name")"
    done <<<"$NS_PROBES"
    for f in $NS_FILES; do
        [ "$(result "$tm" "mode:$f")" = 777 ] || fail "$label:ns:$f:oracle" "tmpfs mode $(result "$tm" "mode:$f")"
        assert_eq "$label:ns:$f-suid-sgid-dropped" 777 "$(result "$pk" "mode:$f")"
    done
}

mkdir -p "$T/empty"
if "$PY" "$PROBE" run "$T/empty" 65534 65534 userns <<<"probe ok stat ." 2>&1 | grep -q '^probe ok$'; then
    TM=$T/tmpfs-ns
    tmpfs_mount "$TM" size=16m
    ns_tree "$TM" || fail "setup:tmpfs-ns" "could not build the tree"
    ns_probes "$TM" "$T/ns.tmpfs" userns
    for mode in auto writeback direct; do
        M=$T/mnt-userns-$mode
        if ! pk_start "$M" --size=16m --cache="$mode" -o allow_other; then
            fail "userns[$mode]:mount" "did not mount"
            continue
        fi
        if ns_tree "$M"; then
            ns_probes "$M" "$T/ns.$mode" userns
            check_ns_probes "userns[$mode]" "$T/ns.$mode" "$T/ns.tmpfs"
        else
            fail "setup:userns[$mode]" "could not build the tree"
        fi
        pk_stop "$M"
    done
    umount "$TM"
else
    skip "userns:*" "this kernel does not let an unprivileged user create a user namespace"
fi

# The daemon in a pid namespace of its own (its /proc shows that namespace), the mount
# propagated back here through a shared mount; nobody here is pid 0 to it.
TM=$T/tmpfs-pidns
tmpfs_mount "$TM" size=16m
ns_tree "$TM" || fail "setup:tmpfs-pidns" "could not build the tree"
ns_probes "$TM" "$T/pidns.tmpfs"
mkdir -p "$T/pidns"
mount --bind "$T/pidns" "$T/pidns" && mount --make-shared "$T/pidns"
cat >"$T/pk-in-pidns" <<EOF
#!/bin/sh
exec unshare --pid --fork --kill-child --mount-proc --propagation unchanged "$PK" "\$@"
EOF
chmod 755 "$T/pk-in-pidns"
M=$T/pidns/mnt
real_pk=$PK
PK=$T/pk-in-pidns
if pk_start "$M" --size=16m -o allow_other; then
    PK=$real_pk
    if ns_tree "$M"; then
        ns_probes "$M" "$T/pidns.pk"
        check_ns_probes "pidns" "$T/pidns.pk" "$T/pidns.tmpfs"
    else
        fail "setup:pidns" "could not build the tree"
    fi
    pk_stop "$M"
else
    PK=$real_pk
    fail "pidns:mount" "pkramfs-fuse in a pid namespace of its own did not mount here"
fi
umount "$T/pidns" 2>/dev/null
umount "$TM"

# ------------------------------------------------------- without allow_other --
# FUSE lets only the mounting user (root here) in: every other user gets EACCES, even for the
# mount root, whatever the modes say (the root is 1777, the file 0644).
M=$T/mnt-private
if pk_start "$M" --size=64m; then
    echo public >"$M/pub"; chmod 644 "$M/pub"; mkdir -m 777 "$M/open"
    check "root:can-use-private-mount" "root cannot stat its own mount" quietly stat "$M/pub"
    while read -r name op args; do
        # shellcheck disable=SC2086
        got=$(as_nobody "$op" $args)
        assert_eq "no-allow-other:$name" EACCES "$got"
    done <<PROBES_EOF
stat-root stat $M
listdir-root listdir $M
stat-file stat $M/pub
read-0644-file read $M/pub
create-in-1777-root create $M/new
mkdir-in-0777-dir mkdir $M/open/d
getxattr-file getxattr $M/pub user.x
PROBES_EOF
    assert_eq "no-allow-other:nothing-created" "open pub" "$(ls "$M" | tr '\n' ' ' | sed 's/ $//')"
    pk_stop "$M"
else
    fail "no-allow-other:mount" "did not mount"
fi

# ----------------------------------------------------- run dir and shm dir --
# refused_dir NAME WHICH DIR: pkramfs-fuse with --WHICH=DIR must fail with one line, mount
# nothing and create nothing in DIR (or what DIR points to).
M=$T/mnt-dirs
mkdir -p "$M"
refused_dir() {
    local name=$1 which=$2 dir=$3 rc other
    if [ "$which" = run-dir ]; then other=(--shm-dir="$SHM" --run-dir="$dir")
    else other=(--shm-dir="$dir" --run-dir="$RUN"); fi
    timeout -k 2 10 "$PK" -f --pkram=dirtest "${other[@]}" "$M" >/dev/null 2>"$T/dir.err"
    rc=$?
    case $rc in 0 | 124 | 137) fail "$name:refused" "exit $rc" ;; *) pass "$name:refused" ;; esac
    assert_one_line_err "$name:one-line" "$T/dir.err"
    assert_contains "$name:says-why" "$(cat "$T/dir.err")" "owned by root and writable only by root"
    check "$name:not-mounted" "$M is mounted" eval '! is_mounted "$M"'
    umount -l "$M" 2>/dev/null
    assert_eq "$name:nothing-created" "" "$(ls -A "$dir/" 2>&1)"
    rm -f "$RUN/dirtest.lock" "$SHM/dirtest"
}
for which in run-dir shm-dir; do
    B=$T/bad-$which
    mkdir -p "$B"
    mkdir -m 777 "$B/world"; chmod 777 "$B/world"
    refused_dir "$which:world-writable" "$which" "$B/world"
    mkdir "$B/sticky"; chmod 1777 "$B/sticky"
    refused_dir "$which:sticky-1777" "$which" "$B/sticky"
    mkdir "$B/group"; chmod 770 "$B/group"
    refused_dir "$which:group-writable" "$which" "$B/group"
    mkdir "$B/nobodys"; chmod 700 "$B/nobodys"; chown 65534:65534 "$B/nobodys"
    refused_dir "$which:owned-by-nobody" "$which" "$B/nobodys"
    mkdir "$B/good"; chmod 700 "$B/good"; ln -s good "$B/link"
    refused_dir "$which:symlink-to-good-dir" "$which" "$B/link"
    assert_eq "$which:symlink-target-untouched" "" "$(ls -A "$B/good")"
done

# What the daemon creates is private: dirs 0700, node and lock files 0600, the socket 0600.
FRESH_SHM=$T/new/shm FRESH_RUN=$T/new/run
"$PK" -f --pkram=fresh --shm-dir="$FRESH_SHM" --run-dir="$FRESH_RUN" "$M" >/dev/null 2>"$T/fresh.err" &
pid=$!
PKIT_PIDS+=("$pid")
if wait_mounted "$M" 10 "$pid"; then
    for _ in $(seq 100); do [ -S "$FRESH_RUN/fresh.sock" ] && break; sleep 0.05; done
    assert_eq "created:shm-dir-0700" "700 0" "$(stat -c '%a %u' "$FRESH_SHM")"
    assert_eq "created:run-dir-0700" "700 0" "$(stat -c '%a %u' "$FRESH_RUN")"
    assert_eq "created:node-file-0600" "600 0" "$(stat -c '%a %u' "$FRESH_SHM/fresh")"
    assert_eq "created:lock-file-0600" "600 0" "$(stat -c '%a %u' "$FRESH_RUN/fresh.lock")"
    # even with the directories opened up, the files' own modes keep others out
    chmod 755 "$FRESH_SHM" "$FRESH_RUN"
    assert_eq "created:nobody-cannot-read-node-file" EACCES \
        "$(as_nobody read "$FRESH_SHM/fresh")"
    assert_eq "created:nobody-cannot-write-lock-file" EACCES \
        "$(as_nobody append "$FRESH_RUN/fresh.lock")"
    chmod 700 "$FRESH_SHM" "$FRESH_RUN"
    pk_stop "$M" "$pid"
else
    fail "created:mount" "pkramfs-fuse with new --shm-dir/--run-dir did not mount"
    details "$T/fresh.err" 5
fi

# ------------------------------------------------ symlinks are never followed --
# victim FILE: a root file the symlinks point at; its fingerprint before and after must match
fingerprint() { stat -c '%s %Y %a %u' "$1" 2>&1; sha256sum <"$1" 2>&1; }
echo "precious data" >"$T/victim"; touch -d '2000-01-01' "$T/victim"
before=$(fingerprint "$T/victim")
expect_refused() { # NAME ARGS...: pkramfs-fuse must fail with one line and mount nothing
    local name=$1 rc; shift
    timeout -k 2 10 "$PK" -f --shm-dir="$SHM" --run-dir="$RUN" "$@" "$M" >/dev/null 2>"$T/ref.err"
    rc=$?
    case $rc in 0 | 124 | 137) fail "$name:refused" "exit $rc" ;; *) pass "$name:refused" ;; esac
    assert_one_line_err "$name:one-line" "$T/ref.err"
    info "$name: $(cat "$T/ref.err")"
    check "$name:not-mounted" "$M is mounted" eval '! is_mounted "$M"'
    umount -l "$M" 2>/dev/null
}
ln -s "$T/victim" "$SHM/evil"
expect_refused "symlink-node-file" --pkram=evil
assert_eq "symlink-node-file:target-untouched" "$before" "$(fingerprint "$T/victim")"
check "symlink-node-file:link-kept" "the symlink was replaced" test -L "$SHM/evil"
ln -s "$T/not-there" "$SHM/dangling"
expect_refused "dangling-symlink-node-file" --pkram=dangling
check "dangling-symlink-node-file:target-not-created" "$T/not-there was created" test ! -e "$T/not-there"
mkfifo "$SHM/fifo"
expect_refused "fifo-node-file" --pkram=fifo
# A node file another user made (in the directory before root took it over, as tmpfiles.d adopts
# an existing /dev/shm/pkramfs) is theirs to rewrite under a mount: refused, left as it was.
# A valid node, so that only its owner can be the reason.
if pk_start "$M" --pkram=foreign --size=16m; then echo data >"$M/f"; pk_stop "$M"; fi
chown 65534:65534 "$SHM/foreign"
foreign_before=$(fingerprint "$SHM/foreign")
expect_refused "foreign-owner-node-file" --pkram=foreign
assert_eq "foreign-owner-node-file:untouched" "$foreign_before" "$(fingerprint "$SHM/foreign")"
ln -s "$T/victim" "$RUN/evillock.lock"
expect_refused "symlink-lock-file" --pkram=evillock
assert_eq "symlink-lock-file:target-untouched" "$before" "$(fingerprint "$T/victim")"
check "symlink-lock-file:no-node-created" "a node file was created" test ! -e "$SHM/evillock"
# pkramfs-ctl: the same symlinks are reported, never read or written through, never removed
# into their target
if [ -x "$CTL" ]; then
    for cmd in status check destroy; do
        timeout 10 "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$cmd" evil >/dev/null 2>"$T/ctl.err"
        assert_ne "ctl-symlink-node-file[$cmd]:fails" 0 "$?"
        info "ctl $cmd evil: $(head -c 200 "$T/ctl.err")"
        assert_eq "ctl-symlink-node-file[$cmd]:target-untouched" "$before" "$(fingerprint "$T/victim")"
    done
    : >"$SHM/evillock"   # a node whose lock file is a symlink
    for cmd in status destroy; do
        timeout 10 "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$cmd" evillock >/dev/null 2>"$T/ctl.err"
        info "ctl $cmd evillock (lock is a symlink): exit $?: $(head -c 200 "$T/ctl.err")"
        assert_eq "ctl-symlink-lock-file[$cmd]:target-untouched" "$before" "$(fingerprint "$T/victim")"
    done
else
    skip "ctl-symlink" "no pkramfs-ctl"
fi
check "symlinks:victim-exists" "the victim file is gone" test -f "$T/victim"
rm -f "$SHM/evil" "$SHM/dangling" "$SHM/fifo" "$SHM/evillock" "$RUN/evillock.lock"

finish
