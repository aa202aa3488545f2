#!/usr/bin/env bash
# resend.sh -- a request in flight when its serving process dies is answered once, and the
# kernel's references stay exact across the takeover (fuse/session_state.h, lookup_ledger.h).
# PKRAMFS_TEST_KILL_BEFORE_REPLY makes serving process number k die (SIGKILL) just before it
# replies to the k-th opcode named: its change is made and logged, the reply never goes out.
# This kernel resends the request (FUSE_NOTIFY_RESEND, Linux 6.9+; skipped where it cannot).
# Checks:
#  - applied-once: mkdir, create with O_EXCL, an O_APPEND write, truncate, unlink, rename,
#    rmdir, setxattr with XATTR_CREATE, link, symlink, mknod and an open with O_TRUNC, each
#    killed before its reply: every call succeeds once (no EEXIST/ENOENT from a change made
#    twice, the appended bytes once), `restarts` counts every kill, the tree is what the calls
#    made, the descriptors of the killed create and open work;
#  - lookup: a LOOKUP (the first of a name after a remount) killed before its reply, then the
#    name removed: the kernel forgets it and the inode goes (status unlinked_inodes 0), which
#    it would not if the lost reply's reference were still counted;
#  - forget-exact: a file open and unlinked, the serving process killed (no hook), the file
#    closed: the inode goes (unlinked_inodes 0) as without a takeover; then at unmount
#    everything the calls made is forgotten (unlinked_inodes 0 before it), `check` clean.
# pkit-timeout: 120
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl

ctl() { "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$@"; }
st_field() { ctl --timeout=2 --json status "$1" 2>/dev/null | jq -r ".$2"; }
# wait_field NODE FIELD VALUE SECONDS: until the node's status has FIELD = VALUE
wait_field() {
    local i
    for ((i = 0; i < $4 * 20; i++)); do
        [ "$(st_field "$1" "$2")" = "$3" ] && return 0
        sleep 0.05
    done
    return 1
}

if [ "$(uname -r | awk -F. '{ print ($1 > 6 || ($1 == 6 && $2 >= 9)) }')" != 1 ]; then
    skip "resend" "kernel $(uname -r) cannot resend requests (FUSE_NOTIFY_RESEND needs 6.9); the VM suite covers 6.1"
    finish
fi

OPS=(MKDIR CREATE WRITE SETATTR UNLINK RENAME RMDIR SETXATTR LINK SYMLINK MKNOD OPEN)
# Every request through the daemon: a passthrough file's WRITE never reaches it (objects.sh
# kills CREATE and OPEN of passthrough files).
export PKRAMFS_TUNE=passthrough=0
M=$T/m
export PKRAMFS_TEST_KILL_BEFORE_REPLY
PKRAMFS_TEST_KILL_BEFORE_REPLY=$(IFS=,; echo "${OPS[*]}")
if ! pk_start "$M" --pkram=resend --size=64m; then
    fail "resend:mount" "see above"
    finish
fi
unset PKRAMFS_TEST_KILL_BEFORE_REPLY
# What the calls below need before the first kill: made through a fresh mount (no kill armed
# for these opcodes in process 0 before its MKDIR).
section_out=$T/applied.out
timeout 60 "$PY" - "$M" "$PKIT_LIBDIR" >"$section_out" 2>&1 <<'PYEOF'
import os, stat, sys
m = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from probe_lib import prober
step = prober(lambda line: print(line, flush=True))  # "NAME: ok" or "NAME: ERRNO"
p = lambda *a: os.path.join(m, *a)
written = lambda n, want: None if n == want else f"short {n}"  # None: "ok"
# Setup without a killed opcode: LOOKUP and GETATTR only (the names do not exist yet).
step("mkdir", lambda: os.mkdir(p("d")))                                      # MKDIR
fd = None
def create():
    global fd
    fd = os.open(p("f"), os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o644)
step("create", create)                                                       # CREATE
if fd is None:  # made twice: go on with the file as it is, to check the rest
    fd = os.open(p("f"), os.O_WRONLY | os.O_APPEND)
step("append", lambda: written(os.write(fd, b"abc"), 3))                 # WRITE
step("truncate", lambda: os.truncate(p("f"), 2))                             # SETATTR
open(p("gone"), "w").close()
step("unlink", lambda: os.unlink(p("gone")))                                 # UNLINK
open(p("a"), "w").close()
step("rename", lambda: os.rename(p("a"), p("b")))                            # RENAME
step("rmdir", lambda: os.rmdir(p("d")))                                      # RMDIR
step("setxattr", lambda: os.setxattr(p("b"), "user.k", b"v", os.XATTR_CREATE))  # SETXATTR
step("link", lambda: os.link(p("b"), p("b.link")))                           # LINK
step("symlink", lambda: os.symlink("b", p("s")))                             # SYMLINK
step("mknod", lambda: os.mkfifo(p("fifo"), 0o600))                           # MKNOD
step("write-created", lambda: written(os.write(fd, b"Z"), 1))
os.close(fd)
with open(p("t"), "w") as f:
    f.write("0123456789")
def reopen():
    global fd
    fd = os.open(p("t"), os.O_WRONLY | os.O_TRUNC)
step("open-trunc", reopen)                                                   # OPEN
if fd is None:
    fd = os.open(p("t"), os.O_WRONLY)
step("write-opened", lambda: written(os.write(fd, b"xy"), 2))
os.close(fd)
def tree():
    out = []
    for n in sorted(os.listdir(m)):
        st = os.lstat(p(n))
        kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else \
            "p" if stat.S_ISFIFO(st.st_mode) else "f"
        data = open(p(n), "rb").read().decode() if kind == "f" else ""
        out.append(f"{n}:{kind}:{st.st_nlink}:{data}")
    return " ".join(out)
print("tree:", tree())
print("xattr:", os.getxattr(p("b"), "user.k").decode())
print("readlink:", os.readlink(p("s")))
PYEOF
want="applied-once"
for op in mkdir create append truncate unlink rename rmdir setxattr link symlink mknod \
    write-created open-trunc write-opened; do
    got=$(sed -n "s/^$op: //p" "$section_out")
    assert_eq "resend:$want:$op" ok "$got"
done
assert_eq "resend:$want:tree" "b:f:2: b.link:f:2: f:f:1:abZ fifo:p:1: s:l:1: t:f:1:xy" \
    "$(sed -n 's/^tree: //p' "$section_out")"
assert_eq "resend:$want:xattr" v "$(sed -n 's/^xattr: //p' "$section_out")"
assert_eq "resend:$want:symlink-target" b "$(sed -n 's/^readlink: //p' "$section_out")"
assert_eq "resend:$want:restarts" "${#OPS[@]}" "$(st_field resend restarts)"
assert_eq "resend:$want:lookups-exact" true "$(st_field resend lookups_exact)"
grep -q Traceback "$section_out" && details "$section_out" 20

# forget-exact: an open unlinked file closed after a plain kill -9 of the serving process
"$PY" -c 'import os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o600)
os.write(fd, b"held")
os.unlink(sys.argv[1])
print("open", flush=True)
sys.stdin.read()
os.close(fd)' "$M/held" >"$T/held.out" < <(sleep 4) &
holder_client=$!
for ((i = 0; i < 200; i++)); do grep -q open "$T/held.out" 2>/dev/null && break; sleep 0.05; done
assert_eq "resend:forget-exact:held-open" 1 "$(st_field resend unlinked_inodes)"
srv=$(serving_pid)
kill -KILL "$srv"
check "resend:forget-exact:served" "no new serving process within 10 s" \
    wait_field resend restarts $((${#OPS[@]} + 1)) 10
wait "$holder_client"
check "resend:forget-exact:inode-goes" "unlinked_inodes $(st_field resend unlinked_inodes) 5 s after the last close (a takeover left the kernel's references unknown)" \
    wait_field resend unlinked_inodes 0 5
rm -f "$M/b" "$M/b.link" "$M/f" "$M/fifo" "$M/s" "$M/t"
check "resend:forget-exact:all-forgotten" "unlinked_inodes $(st_field resend unlinked_inodes) 5 s after removing every file" \
    wait_field resend unlinked_inodes 0 5
pk_stop "$M"
check "resend:forget-exact:check" "pkramfs-ctl check failed" quietly ctl check resend

# lookup: the first LOOKUP of a name after a remount, killed before its reply
if pk_start "$M" --pkram=resend --size=64m; then
    echo data >"$M/l1"
    pk_stop "$M"
    export PKRAMFS_TEST_KILL_BEFORE_REPLY=LOOKUP
    pk_start "$M" --pkram=resend --size=64m
    unset PKRAMFS_TEST_KILL_BEFORE_REPLY
    assert_eq "resend:lookup:read" data "$(timeout 10 cat "$M/l1" 2>&1)"
    assert_eq "resend:lookup:restarts" 1 "$(st_field resend restarts)"
    rm -f "$M/l1"
    check "resend:lookup:forgotten" "unlinked_inodes $(st_field resend unlinked_inodes) 5 s after rm (the lost LOOKUP reply's reference is still counted)" \
        wait_field resend unlinked_inodes 0 5
    pk_stop "$M"
else
    fail "resend:lookup:mount" "see above"
fi
finish
