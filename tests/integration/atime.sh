#!/bin/bash
# atime.sh -- the atime mount options (xfstests generic/003: "relatime not supported"), side by
# side with a kernel tmpfs mounted with the same options: noatime, strictatime, relatime (the
# default), nodiratime, and the kernel's aliases (atime, norelatime, nostrictatime) mount, show
# in mountinfo as on tmpfs, and reads and readdir stamp atime exactly when tmpfs does: after a
# change, again at once, after a day; a remount with other atime options changes both the
# mount's flags and the daemon's rule. With --cache=direct, so that every read reaches the
# daemon (reads served from the page cache never do: docs/semantics.md).
. "$(dirname "$0")/lib.sh"
need_pk
M=$T/mnt
TM=$T/tmpfs

# probe ROOT: which accesses stamped atime ("file:A=changed ..."), for a file and a directory:
# A the first read after a write, B a second read at once, C a read when atime is 2 days old
PROBE=$(cat <<'EOF'
import os, sys, time
root = sys.argv[1]
out = []
def access(kind, path):
    if kind == "file":
        with open(path, "rb") as f:
            f.read()
    else:
        os.listdir(path)
def step(kind, path, label):
    before = os.stat(path).st_atime_ns
    time.sleep(0.02)
    access(kind, path)
    out.append(f"{kind}:{label}=" + ("changed" if os.stat(path).st_atime_ns != before else "same"))
for kind, path in (("file", f"{root}/f"), ("dir", f"{root}/d")):
    if kind == "file":
        with open(path, "wb") as f:
            f.write(b"x")
    else:
        os.makedirs(path, exist_ok=True)
        open(f"{path}/e", "w").close()
    st = os.stat(path)
    os.utime(path, ns=(st.st_mtime_ns - 10**9, st.st_mtime_ns))  # atime before mtime
    step(kind, path, "A")
    step(kind, path, "B")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns - 2 * 86400 * 10**9, st.st_mtime_ns - 3 * 86400 * 10**9))
    step(kind, path, "C")
print(" ".join(out))
EOF
)
atime_words() { awk -v m="$1" '$5 == m { o = $6 } END { print o }' /proc/self/mountinfo |
    tr ',' '\n' | grep -E 'atime$' | tr '\n' ' ' | sed 's/ $//'; }

for opts in noatime strictatime relatime relatime,nodiratime strictatime,nodiratime atime \
    norelatime nostrictatime noatime,atime; do
    tmpfs_mount "$TM" "size=16m,$opts"
    want=$("$PY" -c "$PROBE" "$TM" 2>&1)
    want_words=$(atime_words "$TM")
    umount "$TM"
    if ! pk_start "$M" --size=16m --cache=direct -o "$opts"; then
        fail "$opts:mount" "pkramfs-fuse -o $opts did not mount"
        continue
    fi
    assert_eq "$opts:mountinfo" "$want_words" "$(atime_words "$M")"
    assert_eq "$opts:stamps" "$want" "$("$PY" -c "$PROBE" "$M" 2>&1)"
    pk_stop "$M"
done

# A remount changes the rule: relatime -> strictatime -> noatime,nodiratime, a named node (its
# daemon is told over the control socket) and the same remounts on tmpfs.
tmpfs_mount "$TM" size=16m
if pk_start "$M" --pkram=atime --size=16m --cache=direct; then
    for opts in strictatime noatime,nodiratime relatime,diratime; do
        mount -o "remount,$opts" "$TM"
        "$PK" --run-dir="$RUN" "$M" -o "remount,$opts" >"$T/r.err" 2>&1
        assert_eq "remount[$opts]:exit-0" 0 "$?"
        [ -s "$T/r.err" ] && details "$T/r.err"
        assert_eq "remount[$opts]:mountinfo" "$(atime_words "$TM")" "$(atime_words "$M")"
        assert_eq "remount[$opts]:stamps" "$("$PY" -c "$PROBE" "$TM" 2>&1)" "$("$PY" -c "$PROBE" "$M" 2>&1)"
    done
    pk_stop "$M"
else
    fail "remount:mount" "did not mount"
fi
umount "$TM"
finish
