#!/usr/bin/env bash
# upgrade.sh -- pkramfs-ctl upgrade: a mounted node's daemon hands the mount to another
# pkramfs-fuse binary without unmounting (fuse/holder.h). The serving process drains,
# checkpoints and exits; the holder starts the named binary, which restores and serves. Checks:
#  - rounds: PKIT_UPGRADE_ROUNDS (20) upgrades alternating two binaries (the build's and a copy
#    under another path) while 2 takeover_client.py clients (a cwd, open descriptors, a shared
#    mapping, a create/rename/unlink loop checked against a model) and fio run: every upgrade
#    exits 0, names the binary and a new serving pid that runs it, `restarts` stays 0, every
#    client 0 failed syscalls and 0 mismatches, fio exit 0;
#  - readdir: a directory listing (getdents) half read before an upgrade and finished after it
#    returns every entry exactly once (format version 4 keeps readdir positions);
#  - refusals: a missing path, a file that is not executable: exit 1 with the reason, nothing
#    changes; a binary that cannot serve (/bin/true): exit 1 naming the failure, the running
#    build serves again, the data is intact;
#  - preserved: a preserved node stays preserved (EROFS) across an upgrade;
#  - unlinked-open: a file unlinked while open is read and written through its descriptor after
#    an upgrade;
#  - end: the holder exits 0 at unmount, `pkramfs-ctl check` is clean.
# PKIT_UPGRADE_ROUNDS  upgrades under load (default 20)
# pkit-timeout: 300
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl

ROUNDS=${PKIT_UPGRADE_ROUNDS:-20}
CLIENT=$PKIT_LIBDIR/takeover_client.py
ctl() { "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$@"; }
st() { ctl --timeout=2 --json status "$1" 2>/dev/null | jq -r "$2"; }

# Two binaries: the build's, and the same build under another path (what an upgrade sees of a
# new package: another file).
OTHER=$T/other/pkramfs-fuse
mkdir -p "$T/other"
cp "$PK" "$OTHER"
BINARY=$(realpath "$PK")

M=$T/mnt
NODE=up
if ! pk_start "$M" --pkram=$NODE --size=1g; then
    fail "upgrade:mount" "did not mount"
    finish
fi
HOLDER=$PK_PID

# ------------------------------------------------------------------------- rounds under load
mkdir -p "$M/fio"
cpids=()
for c in 1 2; do
    "$PY" "$CLIENT" "$M/c$c" 0 "$T/client$c.json" "$((RANDOM + c))" >"$T/client$c.log" 2>&1 &
    cpids+=($!)
done
fio_loop() { # fio runs of 5 s until $T/fio.stop exists; "N EXIT ERRORS" of each in $T/fio.rc
    local n=0 e
    while [ ! -e "$T/fio.stop" ]; do
        n=$((n + 1))
        (cd / && timeout 120 fio --name=u --directory="$M/fio" --rw=randrw --bs=4k --size=32m \
            --numjobs=2 --time_based --runtime=5 --ioengine=psync --fsync=64 \
            --output-format=json --output="$T/fio.$n.json" >"$T/fio.$n.log" 2>&1)
        e=$?
        echo "$n $e $(sed -n '/^{/,$p' "$T/fio.$n.json" 2>/dev/null | jq '[.jobs[].error] | add' 2>/dev/null)" >>"$T/fio.rc"
    done
}
fio_loop &
FIO=$!
for c in 1 2; do
    for ((i = 0; i < 200; i++)); do [ -e "$M/c$c/map.dat" ] && break; sleep 0.05; done
done
sleep 1
ok=0 times=()
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then exe=$OTHER; else exe=$BINARY; fi
    old=$(serving_pid "$HOLDER")
    out=$(ctl --json upgrade $NODE --exec="$exe" 2>"$T/upgrade.err")
    rc=$?
    new=$(jq -r .serving_pid <<<"$out" 2>/dev/null)
    if [ "$rc" = 0 ] && [ "$(jq -r .path <<<"$out")" = "$exe" ] && [ "$new" != "$old" ] &&
        [ "$(serving_pid "$HOLDER")" = "$new" ] &&
        [ "$(readlink "/proc/$new/exe")" = "$exe" ]; then
        ok=$((ok + 1))
        times+=("$(jq -r .milliseconds <<<"$out")")
    else
        fail "upgrade:round-$r" "exit $rc, out '$out', old pid $old, now $(serving_pid "$HOLDER") running $(readlink "/proc/$(serving_pid "$HOLDER")/exe"): $(cat "$T/upgrade.err")"
        break
    fi
    sleep "0.$((RANDOM % 5 + 1))"
done
assert_eq "upgrade:rounds" "$ROUNDS" "$ok"
if ((${#times[@]})); then
    read -r med max < <(printf '%s\n' "${times[@]}" | sort -g |
        awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.1f %.1f\n", m, a[NR] }')
    info "upgrade (request to the new process answering): median $med ms, max $max ms over ${#times[@]}"
fi
assert_eq "upgrade:no-restarts" 0 "$(st $NODE .restarts)"
assert_eq "upgrade:cause" "upgrade to $exe" "$(st $NODE .last_restart_cause)"
for ((i = 0; i < ${#cpids[@]}; i++)); do kill -TERM "${cpids[$i]}" 2>/dev/null; done
for c in 1 2; do
    p=${cpids[$((c - 1))]}
    wait_gone "$p" 60 || { kill -KILL "$p"; fail "upgrade:client$c:exit" "still running 60 s after SIGTERM"; }
    wait "$p"
    if [ -s "$T/client$c.json" ]; then
        read -r ops failures mism < <(jq -r '"\(.ops) \(.failures | length) \(.mismatch_count)"' "$T/client$c.json")
        info "client $c: $ops syscalls, $failures failed, $mism model mismatches"
        assert_eq "upgrade:client$c:no-failed-syscall" 0 "$failures"
        assert_eq "upgrade:client$c:no-mismatch" 0 "$mism"
        [ "$failures" = 0 ] || jq -c '.failures[:5]' "$T/client$c.json"
    else
        fail "upgrade:client$c:report" "no report"; details "$T/client$c.log" 10
    fi
done
touch "$T/fio.stop"
wait_gone "$FIO" 60 || kill -KILL "$FIO"
wait "$FIO" 2>/dev/null
bad=$(awk '$2 != 0 || $3 != 0' "$T/fio.rc" 2>/dev/null)
check "upgrade:fio:no-errors" "$(wc -l <"$T/fio.rc") runs; failed (run exit errors): $bad" \
    test -s "$T/fio.rc" -a -z "$bad"

# ---------------------------------------------------- readdir: a listing across an upgrade
mkdir "$M/many"
for ((i = 0; i < 3000; i++)); do : >"$M/many/entry-with-a-long-name-to-fill-getdents-$i"; done
rm -f "$M"/many/entry-with-a-long-name-to-fill-getdents-*7 # gaps in the cookies
"$PY" - "$M/many" "$CTL" "$SHM" "$RUN" "$NODE" "$OTHER" >"$T/readdir.out" 2>&1 <<'EOF'
import os, subprocess, sys
d, ctl, shm, run, node, exe = sys.argv[1:7]
want = sorted(os.listdir(d))
it = os.scandir(d)
first = [next(it).name for _ in range(500)]  # a few getdents calls of 32 KiB
subprocess.run([ctl, f"--shm-dir={shm}", f"--run-dir={run}", "upgrade", node, f"--exec={exe}"],
               check=True, stdout=subprocess.DEVNULL)
rest = [e.name for e in it]
got = first + rest
dups = len(got) - len(set(got))
print(f"entries {len(want)}, listed {len(got)}, repeated {dups}, "
      f"missing {len(set(want) - set(got))}, extra {len(set(got) - set(want))}")
sys.exit(0 if sorted(got) == want else 1)
EOF
rd=$?
check "upgrade:readdir:listing-across-upgrade" "$(cat "$T/readdir.out")" test "$rd" -eq 0
info "readdir: $(tail -1 "$T/readdir.out")"

# ------------------------------------------------------------------------------ refusals
echo intact >"$M/probe"
before=$(serving_pid "$HOLDER")
ctl upgrade $NODE --exec=/nonexistent/pkramfs-fuse >"$T/r1.out" 2>"$T/r1.err"
assert_eq "upgrade:missing:exit-1" 1 "$?"
assert_contains "upgrade:missing:says-why" "$(cat "$T/r1.err")" "not an executable file"
: >"$T/not-exec"
ctl upgrade $NODE --exec="$T/not-exec" >"$T/r2.out" 2>"$T/r2.err"
assert_eq "upgrade:not-executable:exit-1" 1 "$?"
assert_contains "upgrade:not-executable:says-why" "$(cat "$T/r2.err")" "not an executable file"
assert_eq "upgrade:refused:same-process" "$before" "$(serving_pid "$HOLDER")"
ctl upgrade $NODE --exec=/bin/true >"$T/r3.out" 2>"$T/r3.err"
assert_eq "upgrade:cannot-serve:exit-1" 1 "$?"
assert_contains "upgrade:cannot-serve:says-failed" "$(cat "$T/r3.err")" "failed"
assert_eq "upgrade:cannot-serve:data-intact" intact "$(timeout 10 cat "$M/probe")"
now=$(serving_pid "$HOLDER")
check "upgrade:cannot-serve:running-build-serves" "serving pid $now runs $(readlink "/proc/$now/exe")" \
    test "$(readlink "/proc/$now/exe")" = "$OTHER"
assert_contains "upgrade:cannot-serve:cause" "$(st $NODE .last_restart_cause)" "upgrade to /bin/true failed"

# ------------------------------------------------------------------- unlinked-open, preserved
head -c 1M /dev/urandom >"$M/gone"
sum=$(md5sum <"$M/gone")
exec 7<>"$M/gone"
rm "$M/gone"
ctl upgrade $NODE --exec="$BINARY" >/dev/null 2>"$T/u.err" ||
    fail "upgrade:unlinked-open:upgrade" "$(cat "$T/u.err")"
assert_eq "upgrade:unlinked-open:read" "$sum" "$(md5sum </proc/self/fd/7)"
echo more >&7 && pass "upgrade:unlinked-open:write" || fail "upgrade:unlinked-open:write" "write failed"
exec 7>&-
ctl preserve $NODE >/dev/null 2>&1
ctl upgrade $NODE --exec="$OTHER" >/dev/null 2>"$T/p.err" ||
    fail "upgrade:preserved:upgrade" "$(cat "$T/p.err")"
assert_eq "upgrade:preserved:state" preserved "$(st $NODE .state)"
touch "$M/after" 2>"$T/touch.err"
assert_contains "upgrade:preserved:read-only" "$(cat "$T/touch.err")" "Read-only file system"
ctl unpreserve $NODE >/dev/null 2>&1
touch "$M/after" && pass "upgrade:preserved:writable-after-unpreserve" ||
    fail "upgrade:preserved:writable-after-unpreserve" "touch failed"

# ------------------------------------------------------------------------------------ end
check "upgrade:unmount" "the holder did not exit 0" pk_stop "$M"
ctl check $NODE >"$T/check.out" 2>&1
crc=$?
check "upgrade:check-clean" "$(head -c 300 "$T/check.out")" test "$crc" -eq 0
finish
