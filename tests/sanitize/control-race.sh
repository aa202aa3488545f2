#!/bin/bash
# control-race.sh BIN_DIR -- the daemon's threads against each other (tools/run-sanitized runs
# it under ThreadSanitizer and ASan): file churn from several processes and threads (creates,
# writes, appends, renames across directories, unlinks, mkdir/rmdir, readdir, xattrs,
# truncates) while pkramfs-ctl asks status, preserves (a checkpoint taken by the control
# thread while requests arrive; mutations get EROFS) and unpreserves in a loop; then SIGTERM
# during writes (the signal thread flushes and ends the session). The daemon must survive, exit
# 0, leave a node that `pkramfs-ctl check` finds clean and that mounts again.
#
# env: PKIT_RACE_SECONDS (20), PKIT_RACE_PROCS (4), PKIT_RACE_THREADS (2)
PKRAMFS_BIN=${1:-${PKRAMFS_BIN:-}}
export PKRAMFS_BIN
. "$(dirname "$0")/../integration/lib.sh"
need_pk
CTL=$PKRAMFS_BIN/pkramfs-ctl
secs=${PKIT_RACE_SECONDS:-20}
procs=${PKIT_RACE_PROCS:-4}
threads=${PKIT_RACE_THREADS:-2}
M=$T/mnt

cat >"$T/churn.py" <<'EOF'
import errno, os, random, sys, threading, time, traceback
root, seconds, procs, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
# EROFS: a preserve is in progress; the others: another thread got there first (shared dir)
EXPECTED = {errno.EROFS, errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.ENODATA}
shared = os.path.join(root, "shared")
def mkdir_retry(path, deadline):
    while True:  # a preserve may be in progress: EROFS until it ends
        try:
            os.makedirs(path, exist_ok=True)
            return
        except OSError as e:
            if e.errno != errno.EROFS or time.time() > deadline:
                raise
            time.sleep(0.05)
def worker(tag, seed, out):
    try:
        churn(tag, seed, out)
    except BaseException:
        traceback.print_exc()
        out.append((0, 1))
def churn(tag, seed, out):
    rng = random.Random(seed)
    own = os.path.join(root, tag)
    deadline = time.time() + seconds
    mkdir_retry(own, deadline)
    n = bad = 0
    while time.time() < deadline:
        n += 1
        op = rng.choice(["create", "create", "write", "append", "rename", "unlink", "mkdir",
                         "rmdir", "list", "xattr", "truncate", "stat"])
        a = os.path.join(rng.choice([own, shared]), f"f{rng.randrange(40)}")
        b = os.path.join(rng.choice([own, shared]), f"f{rng.randrange(40)}")
        d = os.path.join(rng.choice([own, shared]), f"d{rng.randrange(5)}")
        try:
            if op == "create":
                with open(a, "wb") as f:
                    f.write(os.urandom(rng.choice([0, 100, 5000, 70000])))
            elif op == "write":
                fd = os.open(a, os.O_WRONLY)
                try:
                    os.pwrite(fd, b"w" * rng.randrange(1, 9000), rng.randrange(0, 100000))
                finally:
                    os.close(fd)
            elif op == "append":
                with open(a, "ab") as f:
                    f.write(b"a" * 300)
            elif op == "rename":
                os.rename(a, b)
            elif op == "unlink":
                os.unlink(a)
            elif op == "mkdir":
                os.mkdir(d)
            elif op == "rmdir":
                os.rmdir(d)
            elif op == "list":
                os.listdir(rng.choice([own, shared]))
            elif op == "xattr":
                os.setxattr(a, "user.t", os.urandom(rng.randrange(1, 200)))
            elif op == "truncate":
                os.truncate(a, rng.randrange(0, 20000))
            else:
                os.stat(a)
        except OSError as e:
            if e.errno not in EXPECTED:
                bad += 1
                if bad <= 5:
                    print(f"{tag}: {op} {a} {b}: {e}", flush=True)
    out.append((n, bad))
def proc(p):
    out = []
    ts = [threading.Thread(target=worker, args=(f"p{p}t{t}", p * 100 + t, out))
          for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    n = sum(x for x, _ in out)
    bad = sum(y for _, y in out)
    print(f"# process {p}: {n} operations, {bad} unexpected errors", flush=True)
    os._exit(1 if bad or n < 10 * threads else 0)
mkdir_retry(shared, time.time() + seconds)
pids = []
for p in range(procs):
    pid = os.fork()
    if pid == 0:
        proc(p)
    pids.append(pid)
rc = 0
for pid in pids:
    _, status = os.waitpid(pid, 0)
    rc |= os.waitstatus_to_exitcode(status) != 0
sys.exit(rc)
EOF

if ! pk_start "$M" --pkram=race --size=512m; then
    fail "race:mount" "pkramfs-fuse --pkram=race did not mount"
    finish
fi
daemon=$PK_PID
info "daemon threads at start: $(ls /proc/"$daemon"/task | wc -l)"
timeout -k 5 $((secs + 120)) "$PY" "$T/churn.py" "$M" "$secs" "$procs" "$threads" >"$T/churn.out" 2>&1 &
churn=$!

# The control thread against the FUSE workers, for as long as the churn runs.
status_ok=0 status_bad=0 preserve_ok=0 preserve_bad=0 maxthreads=0
end=$(($(date +%s) + secs))
while [ "$(date +%s)" -lt "$end" ] && alive "$churn"; do
    n=$(ls /proc/"$daemon"/task 2>/dev/null | wc -l)
    [ "$n" -gt "$maxthreads" ] && maxthreads=$n
    if "$CTL" --shm-dir="$SHM" --run-dir="$RUN" --json status race >/dev/null 2>"$T/ctl.err"; then
        status_ok=$((status_ok + 1))
    else status_bad=$((status_bad + 1)); details "$T/ctl.err" 3; fi
    if "$CTL" --shm-dir="$SHM" --run-dir="$RUN" preserve race >/dev/null 2>"$T/ctl.err" &&
        sleep 0.2 &&
        "$CTL" --shm-dir="$SHM" --run-dir="$RUN" unpreserve race >/dev/null 2>>"$T/ctl.err"; then
        preserve_ok=$((preserve_ok + 1))
    else preserve_bad=$((preserve_bad + 1)); details "$T/ctl.err" 3; fi
    sleep 0.3
done
info "daemon threads: at most $maxthreads during the churn"
wait "$churn"
rc=$?
grep '^# ' "$T/churn.out"
assert_eq "race:churn" 0 "$rc"
[ "$rc" = 0 ] || grep -v '^# ' "$T/churn.out" | details - 20
info "control: $status_ok status, $preserve_ok preserve+unpreserve rounds"
check "race:status-answered" "$status_bad of $((status_ok + status_bad)) status requests failed" \
    test "$status_bad" = 0 -a "$status_ok" -gt 0
check "race:preserve-unpreserve" "$preserve_bad of $((preserve_ok + preserve_bad)) rounds failed" \
    test "$preserve_bad" = 0 -a "$preserve_ok" -gt 0
check "race:daemon-alive" "pkramfs-fuse died during the churn" alive "$daemon"

# SIGTERM while writes go on: the signal thread flushes and ends the session under them.
"$PY" - "$M" <<'EOF' &
import os, sys, time
end = time.time() + 5
i = 0
while time.time() < end:
    try:
        with open(os.path.join(sys.argv[1], f"late{i % 50}"), "wb") as f:
            f.write(b"l" * 8192)
    except OSError:
        break  # the mount is going away
    i += 1
EOF
writer=$!
sleep 1
kill -TERM "$daemon"
if wait_gone "$daemon" 30; then
    wait "$daemon"
    assert_eq "race:sigterm-exit-0" 0 "$?"
else
    fail "race:sigterm-exit-0" "daemon still running 30 s after SIGTERM"
    kill -KILL "$daemon"; wait "$daemon" 2>/dev/null
fi
kill -KILL "$writer" 2>/dev/null; wait "$writer" 2>/dev/null
umount -l "$M" 2>/dev/null
out=$("$CTL" --shm-dir="$SHM" --run-dir="$RUN" check race 2>&1)
rc=$?
assert_eq "race:check-clean" 0 "$rc"
[ "$rc" = 0 ] || details - 10 <<<"$out"
if pk_start "$M" --pkram=race; then
    n=$(find "$M" | wc -l)
    check "race:remount" "the tree is empty after remount" test "$n" -gt 1
    info "remounted: $n entries"
    pk_stop "$M"
    assert_eq "race:clean-unmount" 0 "$?"
else
    fail "race:remount" "the node did not mount again"
fi
finish
