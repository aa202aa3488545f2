#!/usr/bin/env bash
# Persistence through real mounts: clean unmount/remount keeps the tree, and kill -9 of the
# daemon at random moments loses no acknowledged operation (crash.py).
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl

mnt=$T/mnt
tree_of() { (cd "$1" && find . -printf '%P %y %m %u %g %s %n %l %T@\n' | sort && find . -type f -exec sha256sum {} + | sort && getfattr -R -d -m - . 2>/dev/null); }

# --- clean unmount and remount keeps everything
if pk_start "$mnt" --pkram=keep --size=256m; then
    (cd "$mnt" && mkdir -p a/b/c && echo hello > a/f && ln a/f a/hard && ln -s f a/sym &&
        mkfifo a/fifo && mknod a/null c 1 3 && setfattr -n user.k -v v1 a/f &&
        setfattr -n trusted.t -v t a/f && head -c 3M /dev/urandom > a/big &&
        truncate -s 2G a/sparse && printf tail >> a/sparse && chmod 4755 a/big &&
        chown 65534:65534 a/b && touch -d '2001-02-03 04:05:06.123456789' a/b/c &&
        ln -s "$(printf '%0200d' 0)" a/longlink && rm a/hard)
    tree_of "$mnt" > "$T/before"
    pk_stop "$mnt"
    assert_eq "persist:node-file-kept" "yes" "$([ -s "$SHM/keep" ] && echo yes)"
    if pk_start "$mnt" --pkram=keep --size=256m; then
        tree_of "$mnt" > "$T/after"
        assert_files_eq "persist:clean-remount-identical-tree" "$T/before" "$T/after"
        echo more > "$mnt/a/more"
        pk_stop "$mnt"
    fi
fi

# --- a node written by a different size request keeps its own geometry and contents
if pk_start "$mnt" --pkram=keep --size=64m; then
    assert_eq "persist:remount-keeps-data" "more" "$(cat "$mnt/a/more")"
    pk_stop "$mnt"
fi

# --- a corrupt superblock is refused and the node is left untouched
cp "$SHM/keep" "$T/keep.copy"
printf 'XXXXXXXX' | dd of="$SHM/keep" bs=1 seek=0 conv=notrunc 2>/dev/null
printf 'XXXXXXXX' | dd of="$SHM/keep" bs=1 seek=4096 conv=notrunc 2>/dev/null
sum_before=$(sha256sum < "$SHM/keep")
"$PK" -f --pkram=keep --shm-dir="$SHM" --run-dir="$RUN" "$mnt" 2> "$T/err"; rc=$?
assert_ne "persist:corrupt-superblock-refused" "0" "$rc"
assert_one_line_err "persist:corrupt-superblock-one-line" "$T/err"
assert_contains "persist:corrupt-superblock-says-why" "$(cat "$T/err")" "magic"
assert_eq "persist:corrupt-node-untouched" "$sum_before" "$(sha256sum < "$SHM/keep")"

# --- a truncated node file is refused
cp "$T/keep.copy" "$SHM/keep"
truncate -s 4M "$SHM/keep"
"$PK" -f --pkram=keep --shm-dir="$SHM" --run-dir="$RUN" "$mnt" 2> "$T/err"; rc=$?
assert_ne "persist:truncated-node-refused" "0" "$rc"
assert_contains "persist:truncated-node-says-why" "$(cat "$T/err")" "shorter"

# --- kill -9 during preserve: every operation acknowledged (and synced) before the preserve
# started is in the next mount, whichever step of the preserve the kill hit; the node is then
# writable and passes pkramfs-ctl check. A preserve of this tree takes ~5-7 ms in the daemon, so
# the delays land before, during and after it (the info lines say what pkramfs-ctl saw).
if pk_start "$mnt" --pkram=pres --size=256m; then
    "$PY" - "$mnt" <<'PYEOF'
import os, sys
root = sys.argv[1]
for d in range(20):
    os.mkdir(f"{root}/d{d}")
    for f in range(150):
        with open(f"{root}/d{d}/f{f}", "wb") as fh:
            fh.write(os.urandom(f * 37 % 5000))
os.setxattr(f"{root}/d0", "user.x", b"1")
PYEOF
    i=0
    for delay in 0 0.001 0.002 0.004 0.008 0.02; do
        i=$((i + 1)); r=kill-during-preserve-$i-${delay}s
        (cd "$mnt" && mkdir "r$i" && echo "$delay" > "r$i/f" && mv "d1/f$i" "r$i/moved" &&
            rm "d2/f$i" && setfattr -n user.r -v "$delay" "r$i" && truncate -s 7 "d3/f$i" &&
            ln "d4/f$i" "r$i/hard" && sync -f .) || fail "persist:$r:ops" "a workload step failed"
        tree_of "$mnt" > "$T/pres.before"
        "$CTL" --shm-dir="$SHM" --run-dir="$RUN" preserve pres > "$T/pres.out" 2>&1 &
        ctl_pid=$!
        sleep "$delay"
        kill -KILL "$PK_PID"; wait "$PK_PID" 2>/dev/null
        wait "$ctl_pid"; ctl_rc=$?
        umount -l "$mnt" 2>/dev/null
        info "$r: pkramfs-ctl preserve exited $ctl_rc: $(head -c 200 "$T/pres.out" | tr '\n' ' ')"
        if ! pk_start "$mnt" --pkram=pres; then fail "persist:$r:remount" "refused"; break; fi
        tree_of "$mnt" > "$T/pres.after"
        assert_files_eq "persist:$r:acknowledged-ops-kept" "$T/pres.before" "$T/pres.after"
        check "persist:$r:writable-again" "cannot write after remount" \
            quietly touch "$mnt/r$i/after"
    done
    pk_stop "$mnt"
    out=$("$CTL" --shm-dir="$SHM" --run-dir="$RUN" check pres 2>&1); rc=$?
    assert_eq "persist:kill-during-preserve:check-clean" 0 "$rc"
    [ "$rc" = 0 ] || details - 5 <<<"$out"
fi

# --- kill -9 during a preserve that is flushing dirty shared-mmap pages: the daemon's syncfs of
# its own mount runs in a child, which must neither outlive the daemon (holding /dev/fuse, the
# connection, and so its own wait, alive) nor leave a daemon thread waiting forever for a
# request its dead workers had read. Afterwards no process of the node may be left.
if pk_start "$mnt" --pkram=mmapkill --size=256m; then
    for i in 1 2 3 4 5 6 7 8 9 10; do
        [ "$i" = 1 ] || pk_start "$mnt" --pkram=mmapkill || { fail "persist:mmap-kill:remount" "refused"; break; }
        "$PY" - "$mnt/m" <<'PYEOF'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 32 << 20)
m = mmap.mmap(fd, 32 << 20)
for off in range(0, 32 << 20, 4096):
    m[off] = 1
PYEOF
        "$CTL" --shm-dir="$SHM" --run-dir="$RUN" preserve mmapkill >/dev/null 2>&1 &
        ctl_pid=$!
        sleep "0.0$((i * 3))"
        kill -KILL "$PK_PID"
        left=
        for _ in $(seq 40); do
            left=$(pgrep -f -- "--pkram=mmapkill" | tr '\n' ' ')
            [ -z "$left" ] && break
            sleep 0.05
        done
        if [ -n "$left" ]; then
            fail "persist:mmap-kill-$i:nothing-left" "processes of the node still alive 2 s after kill -9: $left"
            pkill -KILL -f -- "--pkram=mmapkill"
        else
            wait "$PK_PID" 2>/dev/null
        fi
        timeout 20 tail --pid="$ctl_pid" -f /dev/null || fail "persist:mmap-kill-$i:ctl-returns" "pkramfs-ctl preserve still waiting"
        wait "$ctl_pid" 2>/dev/null
        umount -l "$mnt" 2>/dev/null
    done
    pass "persist:mmap-kill:rounds-done"
fi

# --- kill -9 at random moments
crash_seed=${PKIT_SEED:-$RANDOM}
info "crash.py seed $crash_seed (PKIT_SEED=$crash_seed replays it)"
python3 "$PKIT_LIBDIR/crash.py" "$PK" "$T/crash" "${PKIT_CRASH_ROUNDS:-50}" "$crash_seed" || PKIT_FAIL=$((PKIT_FAIL + 1))
# kill -9 at exact points of a checkpoint and of a preserve: faults.sh (fault injection builds,
# tools/run-faults).
finish
