#!/bin/bash
# requests.sh -- the FUSE requests the kernel sends for plain I/O, counted with strace on the
# daemon: a 4 KiB write(2) is one WRITE and nothing else (FUSE_HANDLE_KILLPRIV_V2 removes the
# kernel's security.capability GETXATTR before each write), a cold sequential read arrives in
# 1 MiB READs (the readahead window raised after INIT), and the kernel still removes
# security.capability on a write, and fsync costs no round trip. With PKRAMFS_TUNE=killpriv_v2=0,readahead_kb=0 the old
# counts come back, which shows the counting sees the difference; the bdi's max_ratio is 100
# (bdi_max_ratio=0: FUSE's 1). fuse/device_io.h, fuse/bdi.h, docs/performance.md "Levers".
. "$(dirname "$0")/lib.sh"
need_pk
[ -n "$PY" ] || { skip "requests" "python3 not available"; finish; }
command -v strace >/dev/null || { skip "requests" "strace not installed (tools/install-deps)"; finish; }

M=$T/pk
WRITES=200
READ_MIB=8

# opcodes FILE: "NAME COUNT" per FUSE opcode read by the daemon, from strace -e read -xx
opcodes() {
    "$PY" - "$1" <<'PY'
import collections, re, sys
names = {3: "GETATTR", 14: "OPEN", 15: "READ", 16: "WRITE", 18: "RELEASE", 20: "FSYNC",
         22: "GETXATTR", 24: "REMOVEXATTR", 25: "FLUSH", 1: "LOOKUP", 4: "SETATTR"}
count = collections.Counter()
for line in open(sys.argv[1]):
    m = re.search(r'(?:read\(\d+, |resumed>)"((?:\\x[0-9a-f]{2}){8})', line)
    if m:
        raw = bytes(int(x, 16) for x in m.group(1).split("\\x")[1:])
        op = int.from_bytes(raw[4:8], "little")
        count[names.get(op, str(op))] += 1
for k in ("WRITE", "GETXATTR", "READ", "REMOVEXATTR", "FSYNC"):
    print(k, count[k])
PY
}
count() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

# traced LABEL CMD...: runs CMD (a shell snippet) while strace follows the daemon's reads
traced() {
    local label=$1; shift
    strace -f -qq -p "$(serving_pid)" -e trace=read -s 8 -xx -o "$T/$label.strace" &
    local st=$!
    # strace has attached once the daemon's status shows a tracer
    for _ in $(seq 100); do
        [ "$(awk '/^TracerPid/ { print $2 }' /proc/"$(serving_pid)"/status)" != 0 ] && break
        sleep 0.05
    done
    bash -c "$*"
    sleep 0.3
    kill -INT "$st" 2>/dev/null; wait "$st" 2>/dev/null
    opcodes "$T/$label.strace" >"$T/$label.ops"
}

# run_workloads LABEL: small writes, then a cold sequential read
run_workloads() {
    local label=$1
    "$PY" -c "import os; f = os.open('$M/w', os.O_CREAT | os.O_WRONLY, 0o644); os.pwrite(f, b'y' * 65536, 0); os.close(f)"
    traced "$label-write" "$PY" -c "'
import os
f = os.open(\"$M/w\", os.O_WRONLY)
for i in range($WRITES):
    os.pwrite(f, b\"x\" * 4096, (i * 4096) % 65536)
os.close(f)'"
    dd if=/dev/urandom of="$M/r" bs=1M count=$READ_MIB status=none
    # Drop the file's page cache, so that every byte is asked of the daemon.
    "$PY" -c "import os; f = os.open('$M/r', os.O_RDONLY); os.posix_fadvise(f, 0, 0, os.POSIX_FADV_DONTNEED); os.close(f)"
    traced "$label-read" "dd if='$M/r' of=/dev/null bs=1M status=none"
}

bdi_readahead() { cat "/sys/class/bdi/$(mountpoint -d "$1")/read_ahead_kb"; }
bdi_max_ratio() { cat "/sys/class/bdi/$(mountpoint -d "$1")/max_ratio"; }

# ------------------------------------------------------------ as shipped --
# The requests the daemon sees: no passthrough, whose files' reads and writes never reach it
# (objects.sh).
export PKRAMFS_TUNE=passthrough=0
pk_start "$M" --pkram=rq --size=64m || { fail "mount" "did not mount"; finish; }
assert_eq "readahead:bdi-read_ahead_kb" 1024 "$(bdi_readahead "$M")"
# the dirty page cap raised from FUSE's 1% (fuse/bdi.h), the strict limit left as FUSE set it
assert_eq "writeback:bdi-max_ratio" 100 "$(bdi_max_ratio "$M")"
[ -e "/sys/class/bdi/$(mountpoint -d "$M")/strict_limit" ] &&
    assert_eq "writeback:bdi-strict_limit" 1 "$(cat "/sys/class/bdi/$(mountpoint -d "$M")/strict_limit")"
run_workloads default
assert_eq "write:one-WRITE-per-write" "$WRITES" "$(count "$T/default-write.ops" WRITE)"
assert_eq "write:no-GETXATTR" 0 "$(count "$T/default-write.ops" GETXATTR)"
reads=$(count "$T/default-read.ops" READ)
if [ "$reads" -ge $READ_MIB ] && [ "$reads" -le $((READ_MIB + 2)) ]; then pass "read:1-MiB-requests"
else fail "read:1-MiB-requests" "$reads READ requests for $READ_MIB MiB (expected $READ_MIB..$((READ_MIB + 2)))"; fi

# The kernel still asks before the first write after security.capability appears, and removes it.
cap=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= # cap_net_raw+p, version 2
if setfattr -n security.capability -v "$cap" "$M/w" 2>"$T/cap.err"; then
    traced cap-write "printf z | dd of='$M/w' bs=1 seek=5 conv=notrunc status=none"
    assert_eq "write:security.capability-removed" "" "$(getfattr --absolute-names -n security.capability "$M/w" 2>/dev/null)"
    assert_eq "write:REMOVEXATTR-sent" 1 "$(count "$T/cap-write.ops" REMOVEXATTR)"
else
    fail "write:setcap" "$(cat "$T/cap.err")"
fi

# fsync has nothing to do in the daemon: its first FSYNC is answered ENOSYS, and the kernel then
# answers every fsync itself, after writing back dirty pages (here a shared mmap's).
traced fsync "$PY -c '
import mmap, os
f = os.open(\"$M/w\", os.O_RDWR)
m = mmap.mmap(f, 65536)
for i in range(50):
    m[i * 1024] = 0x41 + i % 26
    os.fsync(f)
    os.fdatasync(f)
m.close(); os.close(f)'"
fsyncs=$(count "$T/fsync.ops" FSYNC)
if [ "$fsyncs" -le 1 ]; then pass "fsync:no-FSYNC-round-trips"
else fail "fsync:no-FSYNC-round-trips" "$fsyncs FSYNC requests for 100 fsync/fdatasync calls"; fi
writes=$(count "$T/fsync.ops" WRITE)
if [ "$writes" -ge 50 ]; then pass "fsync:dirty-mmap-pages-written-back"
else fail "fsync:dirty-mmap-pages-written-back" "$writes WRITE requests for 50 fsync of a dirtied page"; fi
assert_eq "fsync:data-in-daemon" "ABCDEFGHIJ" "$("$PY" -c "
import os
f = os.open('$M/w', os.O_RDONLY); os.posix_fadvise(f, 0, 0, os.POSIX_FADV_DONTNEED)
print(''.join(chr(os.pread(f, 1, i * 1024)[0]) for i in range(10)))")"

# The polling worker polls only for a moment after each request: an idle daemon sleeps.
sleep 0.5
ticks() { awk '{ print $14 + $15 }' /proc/"$(serving_pid)"/stat; }
t0=$(ticks); sleep 2; t1=$(ticks)
if [ $((t1 - t0)) -le 5 ]; then pass "spin:idle-daemon-sleeps"
else fail "spin:idle-daemon-sleeps" "$((t1 - t0)) clock ticks of CPU in 2 s without requests"; fi
pk_stop "$M"

# A mistyped tuning key is refused, in one line, before anything is mounted.
mkdir -p "$T/bad"
PKRAMFS_TUNE=passthrough=0,spin=5 timeout 10 "$PK" -f --shm-dir="$SHM" --run-dir="$RUN" --pkram=rq3 "$T/bad" \
    >/dev/null 2>"$T/bad.err"
assert_ne "tune:bad-key-exit" 0 "$?"
assert_one_line_err "tune:bad-key-one-line" "$T/bad.err"
assert_contains "tune:bad-key-names-it" "$(cat "$T/bad.err")" "spin=5"
is_mounted "$T/bad" && fail "tune:bad-key-nothing-mounted" "mounted" || pass "tune:bad-key-nothing-mounted"
assert_eq "tune:bad-key-no-node-created" "" "$(ls "$SHM" | grep rq3)"

# ------------------------------------------------ levers off: the old counts --
PKRAMFS_TUNE=passthrough=0,killpriv_v2=0,readahead_kb=0,bdi_max_ratio=0 pk_start "$M" --pkram=rq2 --size=64m ||
    { fail "mount:levers-off" "did not mount"; finish; }
assert_eq "levers-off:bdi-read_ahead_kb" 128 "$(bdi_readahead "$M")"
assert_eq "levers-off:bdi-max_ratio" 1 "$(bdi_max_ratio "$M")"
run_workloads off
assert_eq "levers-off:GETXATTR-per-write" "$WRITES" "$(count "$T/off-write.ops" GETXATTR)"
reads=$(count "$T/off-read.ops" READ)
if [ "$reads" -ge $((READ_MIB * 8)) ]; then pass "levers-off:128-KiB-requests"
else fail "levers-off:128-KiB-requests" "$reads READ requests for $READ_MIB MiB (expected >= $((READ_MIB * 8)))"; fi
pk_stop "$M"
finish
