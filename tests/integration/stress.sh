#!/usr/bin/env bash
# Concurrent stress through a real mount (stress.py): 8 processes x 3 threads of mixed operations
# (creates, renames across directories, hard links, unlink of open files, concurrent writers and
# readers of one file, mmap writes, truncates, xattrs, readdir during the churn), each checking
# what it reads against its own model, under a watchdog that reports a stuck operation with the
# daemon's thread stacks. Then: the tree matches every writer's manifest, clean unmount,
# `pkramfs-ctl check` clean, remount, the same tree again. Once per --cache mode (auto and
# writeback, when the daemon has the option).
#
# PKIT_STRESS_SECONDS  churn time in all, split between the cache modes (default 60)
# PKIT_STRESS_STALL    seconds one operation may take before the watchdog fails the run (20)
# PKIT_STRESS_PROCS, PKIT_STRESS_THREADS  (8, 3)   PKIT_SEED  stress.py seed (default random)
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl

total=${PKIT_STRESS_SECONDS:-60}
stall=${PKIT_STRESS_STALL:-20}
procs=${PKIT_STRESS_PROCS:-8}
threads=${PKIT_STRESS_THREADS:-3}
seed=${PKIT_SEED:-$RANDOM}

if "$PK" --help 2>&1 | grep -q -- '--cache'; then
    modes=(auto writeback)
else
    modes=(default)
    info "pkramfs-fuse has no --cache option: one run with its default caching"
fi
per=$((total / ${#modes[@]}))
[ "$per" -lt 5 ] && per=5

for mode in "${modes[@]}"; do
    node=stress-$mode
    mnt=$T/mnt-$mode
    state=$T/state-$mode
    args=(--pkram="$node" --size=2g)
    [ "$mode" != default ] && args+=(--cache="$mode")
    if ! pk_start "$mnt" "${args[@]}"; then
        fail "stress:$mode:mount" "pkramfs-fuse ${args[*]} did not mount"
        continue
    fi
    daemon=$PK_PID
    timeout -k 5 $((per + stall + 120)) "$PY" "$PKIT_LIBDIR/stress.py" run "$mnt" "$state" \
        --seconds "$per" --procs "$procs" --threads "$threads" --stall "$stall" \
        --daemon-pid "$daemon" --seed "$seed" >"$T/run.out" 2>&1
    rc=$?
    grep '^# ' "$T/run.out"
    if [ "$rc" = 0 ]; then
        pass "stress:$mode:run"
    else
        case $rc in
        3) why="an operation got stuck (watchdog)" ;;
        124 | 137) why="stress.py itself timed out" ;;
        *) why="exit $rc" ;;
        esac
        fail "stress:$mode:run" "$why (seed $seed)"
        grep -v -e '^# ' -e '^nlink: ' "$T/run.out" | details - 120
    fi
    # Wrong st_nlink in the kernel's attribute cache while the daemon's is right: the kernel
    # FUSE race of docs/semantics.md, reported on its own (xfail.txt) so that it hides nothing.
    # It is intermittent, so there is no PASS line (that would be an XPASS) when it did not show.
    n=$(sed -n 's/^# stress: kernel cached st_nlink wrong (daemon right) \([0-9]*\) times$/\1/p' "$T/run.out")
    if [ -n "$n" ] && [ "$n" != 0 ]; then
        fail "stress:$mode:cached-nlink" "the kernel's cached st_nlink was wrong $n times, the daemon's right (kernel FUSE race, docs/semantics.md)"
        grep '^nlink: ' "$T/run.out" | sed 's/^nlink: //' | details - 30
    fi
    if ! alive "$daemon"; then
        fail "stress:$mode:daemon-alive" "pkramfs-fuse died during the run"
        details "$PK_ERR" 20
        umount -l "$mnt" 2>/dev/null
        continue
    fi
    if [ "$rc" = 3 ] || [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        # A stuck daemon: kill it so that the blocked workers are released, and move on.
        kill -KILL "$daemon" 2>/dev/null
        wait "$daemon" 2>/dev/null
        umount -l "$mnt" 2>/dev/null
        continue
    fi
    if [ "$rc" = 0 ]; then
        "$PY" "$PKIT_LIBDIR/stress.py" verify "$mnt" "$state" >"$T/verify.out" 2>&1
        v=$?
        grep '^# ' "$T/verify.out"
        check "stress:$mode:tree-matches-manifests" "differs from the writers' records" test "$v" = 0
        [ "$v" = 0 ] || grep -v '^# ' "$T/verify.out" | details - 40
    fi
    pk_stop "$mnt" "$daemon"
    assert_eq "stress:$mode:clean-unmount" 0 "$?"
    "$CTL" --shm-dir="$SHM" --run-dir="$RUN" check "$node" >"$T/check.out" 2>&1
    c=$?
    assert_eq "stress:$mode:check-clean" 0 "$c"
    [ "$c" = 0 ] || details "$T/check.out" 20
    [ "$rc" = 0 ] || continue
    if ! pk_start "$mnt" --pkram="$node"; then
        fail "stress:$mode:remount" "the node did not mount again"
        continue
    fi
    "$PY" "$PKIT_LIBDIR/stress.py" verify "$mnt" "$state" >"$T/verify.out" 2>&1
    v=$?
    grep '^# ' "$T/verify.out"
    check "stress:$mode:remount-matches-manifests" "differs after remount" test "$v" = 0
    [ "$v" = 0 ] || grep -v '^# ' "$T/verify.out" | details - 40
    if [ "$mode" = "${modes[0]}" ] && [ "$v" = 0 ]; then
        # The verifier itself: one changed byte in one recorded file must be reported.
        victim=$("$PY" -c 'import json, sys
for f in json.load(open(sys.argv[1]))["files"]:
    if f["size"]:
        print(f["names"][0]); break' "$state/slot-000.json")
        if [ -n "$victim" ]; then
            "$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, bytes([os.pread(fd, 1, 0)[0] ^ 0x5a]), 0)
os.close(fd)' "$mnt/$victim"
            "$PY" "$PKIT_LIBDIR/stress.py" verify "$mnt" "$state" >"$T/verify.out" 2>&1
            v=$?
            check "stress:verify-catches-a-changed-byte" "verify exit $v, expected 1 naming $victim" \
                grep -q "^$victim: content differs" "$T/verify.out"
        fi
    fi
    pk_stop "$mnt"
    "$CTL" --shm-dir="$SHM" --run-dir="$RUN" check "$node" >"$T/check.out" 2>&1
    c=$?
    assert_eq "stress:$mode:check-clean-after-remount" 0 "$c"
    [ "$c" = 0 ] || details "$T/check.out" 20
done

# The watchdog itself: a stopped daemon (SIGSTOP) must be reported as stuck within the stall
# limit, with the slots' operations and the daemon's threads, and the run must end.
if pk_start "$T/mnt-wd" --size=256m; then
    wd=$PK_PID
    # Stop it once the workers run (stress.py prints its seed line after its set-up).
    (for _ in $(seq 300); do grep -q '^# stress: seed' "$T/wd.out" 2>/dev/null && break; sleep 0.1; done
        sleep 1; kill -STOP "$wd") &
    timeout -k 5 60 "$PY" "$PKIT_LIBDIR/stress.py" run "$T/mnt-wd" "$T/state-wd" --seconds 30 \
        --stall 3 --procs 2 --threads 2 --daemon-pid "$wd" >"$T/wd.out" 2>&1
    rc=$?
    kill -KILL "$wd" 2>/dev/null
    wait "$wd" 2>/dev/null
    umount -l "$T/mnt-wd" 2>/dev/null
    if [ "$rc" = 3 ] && grep -q '^STUCK' "$T/wd.out" && grep -q "daemon pid $wd" "$T/wd.out" &&
        grep -q '<== stuck' "$T/wd.out" && grep -q 'wchan' "$T/wd.out"; then
        pass "stress:watchdog-reports-a-stopped-daemon"
    else
        fail "stress:watchdog-reports-a-stopped-daemon" "stress.py exit $rc, expected 3 and a STUCK report"
        details "$T/wd.out" 30
    fi
fi
finish
