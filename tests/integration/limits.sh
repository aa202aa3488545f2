#!/bin/bash
# limits.sh -- size=/nr_inodes= limits as seen by statfs, ENOSPC for data and
# inodes, name length limits; every number is compared with a real tmpfs
# mounted with the same options.
. "$(dirname "$0")/lib.sh"
need_pk

M=$T/pk
TM=$T/tmpfs

# statfs fields: fragment size, block size, blocks, free, avail, files, ffree, namelen
sf() { stat -f -c '%S %s %b %f %a %c %d %l' "$1"; }

# ------------------------------------------------ statfs vs tmpfs, all forms --
# form label | pkramfs args | tmpfs -o options
forms=(
    "default||"
    "512m|--size=512m|size=512m"
    "4g|--size=4g|size=4g"
    "10%|--size=10%|size=10%"
    "bytes|--size=1000000|size=1000000"
    "k|--size=3000k|size=3000k"
    "o-size|-o size=200m|size=200m"
    "inodes|--size=64m --nr-inodes=1000|size=64m,nr_inodes=1000"
    "inodes-k|--nr-inodes=10k|nr_inodes=10k"
    "inodes-m|--nr-inodes=1m|nr_inodes=1m"
    "o-inodes|-o nr_inodes=100k|nr_inodes=100k"
)
for f in "${forms[@]}"; do
    IFS='|' read -r label pkargs topts <<<"$f"
    # shellcheck disable=SC2086
    if ! pk_start "$M" $pkargs; then fail "statfs[$label]:mount" "did not mount with $pkargs"; continue; fi
    tmpfs_mount "$TM" "$topts"
    read -r tS ts tb tf ta tc td tl <<<"$(sf "$TM")"
    read -r pS ps pb pf pa pc pd pl <<<"$(sf "$M")"
    assert_eq "statfs[$label]:size(f_blocks*f_frsize)" $((tS * tb)) $((pS * pb))
    assert_eq "statfs[$label]:f_bsize" "$ts" "$ps"
    assert_eq "statfs[$label]:f_bfree,f_bavail" "$tf $ta" "$pf $pa"
    assert_eq "statfs[$label]:f_files(nr_inodes)" "$tc" "$pc"
    assert_eq "statfs[$label]:f_ffree" "$td" "$pd"
    assert_eq "statfs[$label]:f_namelen" "$tl" "$pl"
    if [ "$label" = 512m ]; then
        assert_eq "df[$label]:size" "$(df -B1 --output=size "$TM" | tail -1)" "$(df -B1 --output=size "$M" | tail -1)"
        assert_eq "df[$label]:inodes" "$(df --output=itotal "$TM" | tail -1)" "$(df --output=itotal "$M" | tail -1)"
    fi
    umount "$TM"; pk_stop "$M"
done

# ------------------------------------------------------------ data ENOSPC --
pk_start "$M" --size=8m || { fail "enospc:mount" "did not mount"; finish; }
tmpfs_mount "$TM" size=8m
for d in "$TM" "$M"; do
    dd if=/dev/zero of="$d/big" bs=1M count=16 2>"$T/dd.err"
    echo "$?" >"$T/dd.rc"
    grep -o 'No space left on device' "$T/dd.err" | head -1 >"$T/dd.msg"
    stat -c %s "$d/big" >"$T/dd.size"
    cat "$T/dd.rc" "$T/dd.msg" "$T/dd.size" >"$T/dd.$(basename "$d")"
done
assert_eq "enospc:dd-message" "No space left on device" "$(sed -n 2p "$T/dd.pk")"
assert_ne "enospc:dd-exit" 0 "$(sed -n 1p "$T/dd.pk")"
assert_eq "enospc:file-size-as-tmpfs" "$(sed -n 3p "$T/dd.tmpfs")" "$(sed -n 3p "$T/dd.pk")"
assert_eq "enospc:statfs-full" "$(sf "$TM")" "$(sf "$M")"
for d in "$TM" "$M"; do
    # write() of a single block into a full fs fails too
    { head -c 4096 /dev/zero >"$d/more"; } 2>/dev/null; echo "$?" >"$T/more.$(basename "$d")"
    # fallocate beyond the free space
    fallocate -l 16m "$d/fa" 2>"$T/fa.err.$(basename "$d")"; echo "$?" >>"$T/more.$(basename "$d")"
    stat -c %s "$d/more" "$d/fa" 2>&1 | sed "s|$d/||" >>"$T/more.$(basename "$d")"
done
assert_files_eq "enospc:small-write-and-fallocate" "$T/more.tmpfs" "$T/more.pk"
assert_eq "enospc:fallocate-message" "$(sed "s|$TM/||" "$T/fa.err.tmpfs")" "$(sed "s|$M/||" "$T/fa.err.pk")"
# delete, the fs keeps working, the space comes back
rm -f "$M/big" "$M/more" "$M/fa"; rm -f "$TM/big" "$TM/more" "$TM/fa"
assert_eq "enospc:space-returns" "$(sf "$TM")" "$(sf "$M")"
head -c 3000000 /dev/urandom >"$T/rnd"
cp "$T/rnd" "$M/again" && cmp -s "$T/rnd" "$M/again"
check "enospc:works-after-delete" "writing 3 MB after freeing space failed or read back wrong" test $? = 0
cp "$T/rnd" "$TM/again"
for d in "$TM" "$M"; do
    dd if=/dev/zero of="$d/exact" bs=1M count=5 2>/dev/null; echo "dd-5m $?" >"$T/ex.$(basename "$d")"
    stat -c %s "$d/exact" >>"$T/ex.$(basename "$d")"
done
assert_files_eq "enospc:fill-exactly" "$T/ex.tmpfs" "$T/ex.pk"
# truncate up beyond size is allowed (sparse) on tmpfs
for d in "$TM" "$M"; do
    truncate -s 1G "$d/sparse" 2>&1; echo "trunc $? $(stat -c '%s %b' "$d/sparse")" >"$T/tr.$(basename "$d")"
done
assert_files_eq "enospc:sparse-truncate-beyond-size" "$T/tr.tmpfs" "$T/tr.pk"
umount "$TM"; pk_stop "$M"

# ----------------------------------------------------------- inode ENOSPC --
if [ -n "$PY" ]; then
    cat >"$T/inodes.py" <<'EOF'
import os, sys, errno
os.chdir(sys.argv[1])
def fill(kind):
    n = 0
    try:
        while True:
            name = f"{kind}{n}"
            if kind == "f": os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
            elif kind == "d": os.mkdir(name)
            elif kind == "s": os.symlink("target", name)
            elif kind == "n": os.mkfifo(name)
            elif kind == "l": os.link("base", name)
            n += 1
            if n > 100000: break
    except OSError as e:
        return n, errno.errorcode.get(e.errno, str(e.errno))
    return n, "no-error"
def clean():
    for e in os.listdir("."):
        (os.rmdir if os.path.isdir(e) and not os.path.islink(e) else os.unlink)(e)
st0 = os.statvfs(".")
print("ffree-at-start", st0.f_ffree)
for kind in "fdsn":
    n, err = fill(kind)
    print(f"fill-{kind}", n, err, "ffree", os.statvfs(".").f_ffree)
    # after deleting one, exactly one more fits
    os.unlink(f"{kind}0") if kind != "d" else os.rmdir("d0")
    for name in ("again1", "again2"):
        try:
            os.mkdir(name) if kind == "d" else os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644))
            print(f"refill-{kind} {name} ok")
        except OSError as e:
            print(f"refill-{kind} {name}", errno.errorcode.get(e.errno, str(e.errno)))
    clean()
    print(f"after-clean-{kind} ffree", os.statvfs(".").f_ffree)
# hard links consume inode space on tmpfs
open("base", "w").close()
n, err = fill("l")
print("fill-links", n, err, "nlink", os.stat("base").st_nlink, "ffree", os.statvfs(".").f_ffree)
clean()
print("end ffree", os.statvfs(".").f_ffree)
EOF
    pk_start "$M" --nr-inodes=100 || { fail "inodes:mount" "did not mount"; finish; }
    tmpfs_mount "$TM" nr_inodes=100
    "$PY" "$T/inodes.py" "$TM" >"$T/ino.tmpfs" 2>&1
    "$PY" "$T/inodes.py" "$M" >"$T/ino.pk" 2>&1
    check "inodes:enospc" "no 'ENOSPC' when creating past nr_inodes: $(grep fill-f "$T/ino.pk")" \
        grep -q '^fill-f [0-9]* ENOSPC' "$T/ino.pk"
    for k in f d s n links; do
        assert_eq "inodes:fill-$k" "$(grep "^fill-$k " "$T/ino.tmpfs")" "$(grep "^fill-$k " "$T/ino.pk")"
    done
    assert_files_eq "inodes:transcript" "$T/ino.tmpfs" "$T/ino.pk"
    touch "$M/works-again" && pass "inodes:works-after-delete" || fail "inodes:works-after-delete" "create failed"
    umount "$TM"; pk_stop "$M"
    # An unlinked, unopened inode is free at once on tmpfs: statfs right after
    # unlink shows it free, and a create right after unlink on a full fs works.
    cat >"$T/freed.py" <<'FREED'
import os, sys
os.chdir(sys.argv[1])
base = os.statvfs(".").f_ffree
late = enospc = 0
for r in range(1500):
    made = []
    try:
        for i in range(4):
            os.mkfifo(f"x{i}") if i % 2 else os.close(os.open(f"x{i}", os.O_CREAT | os.O_WRONLY, 0o644))
            made.append(f"x{i}")
    except OSError:
        enospc += 1
    for x in made:
        os.unlink(x)
    if os.statvfs(".").f_ffree != base:
        late += 1
    # the fs has room for exactly 4 more inodes: refill it at once
    try:
        for i in range(4):
            os.close(os.open(f"y{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    except OSError:
        enospc += 1
    for i in range(4):
        try:
            os.unlink(f"y{i}")
        except FileNotFoundError:
            pass
print(late, enospc)
FREED
    pk_start "$M" --nr-inodes=5 || { fail "inodes:mount" "did not mount"; finish; }
    tmpfs_mount "$TM" nr_inodes=5
    tres=$($PY "$T/freed.py" "$TM" 2>&1)
    pres=$($PY "$T/freed.py" "$M" 2>&1)
    read -r plate penospc <<<"$pres"
    # values: rounds (of 1500) in which the inodes were not yet free / create failed
    assert_eq "inodes:statfs-free-right-after-unlink" "${tres% *}" "$plate"
    assert_eq "inodes:create-right-after-unlink-no-ENOSPC" "${tres#* }" "$penospc"
    umount "$TM"; pk_stop "$M"
else
    skip "inodes" "python3 not available"
fi

# ------------------------------------------------------------ name lengths --
pk_start "$M" || { fail "names:mount" "did not mount"; finish; }
tmpfs_mount "$TM"
n255=$(printf 'a%.0s' $(seq 255)); n256=${n255}b
t4095=$(printf 't%.0s' $(seq 4095)); t4096=${t4095}u
names() {
    local d=$1
    cd "$d" || return
    r() { local what=$1; shift; "$@" >/dev/null 2>"$T/e"; echo "$what rc=$? $(sed 's/.*: //' "$T/e")"; }
    r touch-255 touch "$n255"
    r touch-256 touch "$n256"
    r mkdir-255 mkdir "d${n255:1}"
    r mkdir-256 mkdir "d$n256"
    r symlink-name-255 ln -s x "s${n255:1}"
    r symlink-name-256 ln -s x "s$n255"
    r rename-to-256 mv "$n255" "$n256"
    r link-256 ln "$n255" "l$n255"
    r symlink-target-4095 ln -s "$t4095" st1
    r readlink-4095 test "$(readlink st1)" = "$t4095"
    r symlink-target-4096 ln -s "$t4096" st2
    r stat-255 stat -c %n "$n255"
    r ls-255 sh -c "ls | grep -qx '$n255'"
    r xattr-name-255 setfattr -n "user.${n255:5}" -v 1 "$n255"
    r xattr-name-256 setfattr -n "user.${n255:4}" -v 1 "$n255"
    head -c 65536 /dev/zero | tr '\0' v >"$T/v64k"
    r xattr-value-64k setfattr -n user.big -v "$(cat "$T/v64k")" "$n255"
    r xattr-value-64k-read sh -c "getfattr --only-values -n user.big '$n255' | cmp -s - '$T/v64k'"
    r xattr-value-64k+1 setfattr -n user.big2 -v "$(cat "$T/v64k")v" "$n255"
    cd / || return
}
names "$TM" >"$T/names.tmpfs"
names "$M" >"$T/names.pk"
assert_eq "names:255-ok" "touch-255 rc=0 " "$(grep '^touch-255' "$T/names.pk")"
assert_eq "names:256-ENAMETOOLONG" "touch-256 rc=1 File name too long" "$(grep '^touch-256' "$T/names.pk")"
while IFS= read -r line; do
    key=${line%% *}
    assert_eq "names:$key" "$line" "$(grep "^$key " "$T/names.pk")"
done <"$T/names.tmpfs"
umount "$TM"; pk_stop "$M"

finish
