#!/usr/bin/env bash
# O_DIRECT writes and the page cache (xfstests generic/451, "get stale data from buffer read"):
# after an asynchronous (io_uring) O_DIRECT write has completed, a buffered read of the range
# returns the new bytes, while other threads keep reading the range into the page cache
# (pkramfs-aiodio, tools/aiodio). On kernel tmpfs first, as a check of the tester; then on
# pkramfs once per --cache mode, with asynchronous and synchronous O_DIRECT writes, and the
# daemon still unmounts cleanly (it answers such writes from a thread of its own: direct_write.h).
#
# PKIT_AIODIO_ROUNDS  writes per run (default 5000; before the fix, auto and writeback served
#                     stale bytes within a few hundred to ~2000)
. "$(dirname "$0")/lib.sh"
need_pk

AIO=$PKRAMFS_BIN/pkramfs-aiodio
if [ ! -x "$AIO" ]; then
    fail "dio:binary" "$AIO not found (build the pkramfs-aiodio target)"
    finish
fi
rounds=${PKIT_AIODIO_ROUNDS:-5000}

# run_aiodio NAME ARGS...: PASS NAME, or FAIL NAME with pkramfs-aiodio's report
run_aiodio() { check_report "$1" pkramfs-aiodio 5 "$AIO" "${@:2}"; }

tmpfs_mount "$T/tmpfs" size=64m,huge=never
run_aiodio "dio:tmpfs:io_uring" --rounds "$rounds" "$T/tmpfs/f"
umount "$T/tmpfs"

for mode in auto direct writeback; do
    mnt=$T/mnt-$mode
    if ! pk_start "$mnt" --cache="$mode" --size=256m; then
        fail "dio:$mode:mount" "pkramfs-fuse --cache=$mode did not mount"
        continue
    fi
    run_aiodio "dio:$mode:io_uring" --rounds "$rounds" "$mnt/f"
    run_aiodio "dio:$mode:sync" --rounds $((rounds / 5)) --sync "$mnt/g"
    if pk_stop "$mnt"; then
        pass "dio:$mode:unmount"
    else
        fail "dio:$mode:unmount" "the daemon did not exit cleanly after unmount"
        details "$PK_ERR" 10
    fi
done
finish
