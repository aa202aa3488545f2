#!/usr/bin/env bash
# takeover.sh -- the mount outlives its serving process (fuse/holder.h). pkramfs-fuse with a
# node is a holder (the pid the caller gets) that keeps /dev/fuse, and a serving process, its
# child; a serving process that dies is replaced by one that restores the node from its journal
# and serves the same mount (FUSE_NOTIFY_RESEND re-sends what was in flight). Checks:
#  - root-not-cached: a takeover while the kernel holds no valid attributes of the mount's root
#    (after `ls` of the root and a mkdir in it) serves within 10 s;
#  - kill9: 3 takeover_client.py clients (each with a cwd, an O_RDONLY and an O_RDWR descriptor
#    and a MAP_SHARED mapping in the mount for its whole life, and a create/write/fsync/rename/
#    unlink/mkdir/rmdir/listdir loop checked against its model) and fio (randrw, psync, fsync)
#    run while the serving process is killed with SIGKILL PKIT_TAKEOVER_KILLS (50) times at
#    random moments (0.2-0.8 s apart; each takeover must serve within 10 s before the next
#    kill): every client 0 failed syscalls and 0 model mismatches (failures are reported by
#    syscall and errno), every fio run exit 0 without errors, `restarts` = the number of kills,
#    the cause, still mounted, one serving process; the takeover times (status
#    last_takeover_ms) as median/max, each under 5 s;
#  - unmount: the holder exits 0, nothing left, `pkramfs-ctl check` clean, a new mount shows the
#    clients' final trees;
#  - holder-kill9: kill -9 of the holder takes the serving process with it, the mount answers
#    ENOTCONN, umount -l, a new mount restores the tree as it was;
#  - unlinked-open: a file unlinked while open, read (page cache dropped) and written through its
#    descriptor after a takeover, its space freed (statvfs) once closed;
#  - sigterm: SIGTERM to the holder, after a takeover and on a fresh mount: clean unmount, exit
#    0, no process left; `check` clean;
#  - background: pkramfs-fuse without -f returns 0 once mounted, holder and serving process run,
#    a kill -9 of the serving process is survived, umount ends both.
# PKIT_TAKEOVER_KILLS  kills of the serving process under load (default 50)
# PKIT_SEED            clients' seeds (default random)
# pkit-timeout: 300
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl

KILLS=${PKIT_TAKEOVER_KILLS:-50}
seed=${PKIT_SEED:-$RANDOM}
CLIENT=$PKIT_LIBDIR/takeover_client.py
NCLIENTS=3
ctl() { "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$@"; }
st_json() { ctl --timeout=1 --json status "$1" 2>/dev/null; }
tree_of() { # names, types, modes, owners, sizes, links, symlink targets and contents under $1
    (cd "$1" && find . -printf '%P %y %m %u %g %s %n %l\n' | sort &&
        find . -type f -exec sha256sum {} + | sort)
}
syscall_name() {
    case $1 in
    0) echo read ;; 4) echo stat ;; 6) echo lstat ;; 7) echo poll ;; 202) echo futex ;;
    262) echo newfstatat ;; 332) echo statx ;; 257) echo openat ;; 61) echo wait4 ;;
    *) echo "$1" ;;
    esac
}
# diag_serving HOLDER: what the holder's children are doing (a takeover that does not serve)
diag_serving() {
    local p sc
    echo "    holder $1: $(alive "$1" && echo alive || echo gone); its children: $(pgrep -P "$1" | tr '\n' ' ')"
    for p in $(pgrep -P "$1"); do
        sc=$(cut -d' ' -f1,2 "/proc/$p/syscall" 2>/dev/null)
        echo "    serving pid $p $(tr '\0' ' ' <"/proc/$p/cmdline" | grep -o -- '--takeover=[^ ]*'):" \
            "state $(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$p/stat"), wchan $(cat "/proc/$p/wchan")," \
            "main thread in syscall $(syscall_name "${sc%% *}") (first argument ${sc#* })"
        sed 's/^/      /' "/proc/$p/stack" 2>/dev/null | head -10
    done
    echo "    pkramfs-fuse stderr:"
    details "$PK_ERR" 10
}
# wait_served NODE HOLDER OLD_SERVING RESTARTS SECONDS [POKE_FILE]: until the node's status says
# RESTARTS restarts, a serving pid other than OLD_SERVING and a takeover time (the first reply
# after the takeover went out; an idle mount gets a request by truncating POKE_FILE). Sets
# TK_MS and TK_SRV.
wait_served() {
    local node=$1 holder=$2 old=$3 want=$4 secs=$5 poke=${6:-} j r s ms end
    TK_MS="" TK_SRV=""
    end=$((${EPOCHREALTIME/./} + secs * 1000000))
    while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
        # shellcheck disable=SC2016 # $1 of the inner shell
        [ -n "$poke" ] && timeout 0.5 sh -c ': > "$1"' sh "$poke" 2>/dev/null
        j=$(st_json "$node")
        if [ -n "$j" ]; then
            read -r r s ms < <(jq -r '"\(.restarts) \(.serving_pid) \(.last_takeover_ms)"' <<<"$j")
            if [ "$r" = "$want" ] && [ "$s" != "$old" ] && [ "${s:-0}" != 0 ] && [ "$ms" != -1 ] &&
                [ "$(pgrep -P "$holder")" = "$s" ]; then
                TK_MS=$ms TK_SRV=$s
                return 0
            fi
        fi
        sleep 0.05
    done
    return 1
}
# kill_holder_and_unmount HOLDER MNT: the end of a mount that hangs
kill_holder_and_unmount() {
    { kill -KILL "$1" && wait "$1"; } 2>/dev/null
    wait_gone "$1" 5
    umount -l "$2" 2>/dev/null
}
# errno_of OP PATH: what open(PATH) or statvfs(PATH) gives, as "ok" or the errno's name (at
# most 5 s)
errno_of() {
    timeout 5 "$PY" - "$1" "$2" <<'PYEOF'
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "open":
        os.close(os.open(path, os.O_RDONLY))
    else:
        os.statvfs(path)
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
PYEOF
}
not_mounted() { ! is_mounted "$1"; }
t_start=$(date +%s)
section() { info "$1 at $(($(date +%s) - t_start)) s"; }

# ------------------------------------------------------------------------------------------
# root-not-cached: after `ls` of the root and a mkdir in it the kernel holds no valid
# attributes of the mount's root, so anything that stats the mount point waits for the daemon;
# a serving process killed then must still be replaced by one that serves (the first version
# of the holder stat()ed the mount point in the new serving process before serving: it waited
# for itself for ever).
section root-not-cached
RA=$T/ra
if pk_start "$RA" --pkram=rootattr --size=64m; then
    echo x >"$RA/f"
    ls "$RA" >/dev/null
    mkdir "$RA/poke"
    srv=$(pgrep -P "$PK_PID")
    kill -KILL "$srv"
    if wait_served rootattr "$PK_PID" "$srv" 1 10 "$RA/poke/p" &&
        [ "$(timeout 5 cat "$RA/f" 2>/dev/null)" = x ]; then
        pass "takeover:root-not-cached:served"
        pk_stop "$RA"
    else
        fail "takeover:root-not-cached:served" "after ls of the mount root, a mkdir in it and kill -9 of serving pid $srv, the mount was not served again within 10 s"
        diag_serving "$PK_PID"
        kill_holder_and_unmount "$PK_PID" "$RA"
    fi
else
    fail "takeover:root-not-cached:mount" "did not mount"
fi

# ------------------------------------------------------------------------------------------
# kill9: clients and fio under 50 kills of the serving process
section kill9
M=$T/mnt
NODE=tk
if ! pk_start "$M" --pkram=$NODE --size=1g; then
    fail "takeover:mount" "did not mount"
    finish
fi
HOLDER=$PK_PID
mkdir -p "$M/fio" "$M/poke"
info "client seeds $((seed + 1))..$((seed + NCLIENTS)) (PKIT_SEED=$seed replays them)"
cpids=()
for ((c = 1; c <= NCLIENTS; c++)); do
    "$PY" "$CLIENT" "$M/c$c" 0 "$T/client$c.json" $((seed + c)) >"$T/client$c.log" 2>&1 &
    cpids+=($!)
done
fio_loop() { # fio runs of 5 s until $T/fio.stop exists; "N EXIT" of each in $T/fio.rc
    local n=0
    while [ ! -e "$T/fio.stop" ]; do
        n=$((n + 1))
        (cd / && timeout 120 fio --name=t --directory="$M/fio" --rw=randrw --bs=4k --size=32m \
            --numjobs=2 --time_based --runtime=5 --ioengine=psync --fsync=64 \
            --output-format=json --output="$T/fio.$n.json" >"$T/fio.$n.log" 2>&1)
        echo "$n $?" >>"$T/fio.rc"
    done
}
fio_loop &
FIO=$!
for ((c = 1; c <= NCLIENTS; c++)); do # each client's setup done
    for ((i = 0; i < 200; i++)); do [ -e "$M/c$c/map.dat" ] && break; sleep 0.05; done
done
sleep 1

: >"$T/kills"
times=()
hung=""
srv_last=""
for ((k = 1; k <= KILLS; k++)); do
    sleep "0.$((RANDOM % 61 + 20))"
    mapfile -t srvs < <(pgrep -P "$HOLDER")
    if [ "${#srvs[@]}" != 1 ]; then
        fail "takeover:kill9:one-serving-process" "before kill $k the holder $HOLDER has ${#srvs[@]} children: ${srvs[*]}"
        hung=1
        break
    fi
    srv=${srvs[0]}
    kill -KILL "$srv"
    echo "$(date +%s.%N) $k $srv" >>"$T/kills"
    if ! wait_served "$NODE" "$HOLDER" "$srv" "$k" 10; then
        fail "takeover:kill9:served" "takeover $k (serving pid $srv killed) was not serving within 10 s"
        diag_serving "$HOLDER"
        hung=1
        break
    fi
    if alive "$srv"; then
        fail "takeover:kill9:old-server-gone" "killed serving pid $srv still alive after takeover $k"
    fi
    times+=("$TK_MS")
    srv_last=$TK_SRV
done
if [ -z "$hung" ]; then
    pass "takeover:kill9:all-served"
    read -r med max < <(printf '%s\n' "${times[@]}" | sort -g |
        awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.1f %.1f\n", m, a[NR] }')
    info "takeover times: median $med ms, max $max ms over ${#times[@]}"
    info "takeover ms: ${times[*]}"
    if awk -v m="$max" 'BEGIN { exit !(m < 5000) }'; then pass "takeover:kill9-times"
    else fail "takeover:kill9-times" "median $med ms, max $max ms over ${#times[@]}: a takeover took 5 s or more"; fi
    j=$(st_json $NODE)
    assert_eq "takeover:kill9:restarts-counted" "$KILLS" "$(jq -r .restarts <<<"$j")"
    assert_contains "takeover:kill9:cause" "$(jq -r .last_restart_cause <<<"$j")" "killed by signal 9"
    assert_eq "takeover:kill9:holder-pid" "$HOLDER $HOLDER" "$(jq -r '"\(.pid) \(.holder_pid)"' <<<"$j")"
    check "takeover:kill9:still-mounted" "$M is no longer a FUSE mount" is_fuse_mounted "$M"
    check "takeover:kill9:holder-alive" "holder $HOLDER died" alive "$HOLDER"
    assert_eq "takeover:kill9:one-serving-process" "$srv_last" "$(pgrep -P "$HOLDER" | tr '\n' ' ' | sed 's/ $//')"
else
    info "kills done before the hang: $((k - 1)); takeover ms: ${times[*]}"
    kill_holder_and_unmount "$HOLDER" "$M"
fi

# stop the load: fio ends its current 5 s run, the clients verify their trees and report
touch "$T/fio.stop"
for ((c = 1; c <= NCLIENTS; c++)); do kill -TERM "${cpids[$((c - 1))]}" 2>/dev/null; done
for ((c = 1; c <= NCLIENTS; c++)); do
    p=${cpids[$((c - 1))]}
    if ! wait_gone "$p" 60; then
        fail "takeover:client$c:exit" "client still running 60 s after SIGTERM; killing it"
        kill -KILL "$p"
    fi
    wait "$p"
    rc=$?
    if [ "$rc" = 0 ] && [ -s "$T/client$c.json" ]; then
        pass "takeover:client$c:exit"
    else
        fail "takeover:client$c:exit" "exit status $rc, report $([ -s "$T/client$c.json" ] && echo present || echo missing)"
        details "$T/client$c.log" 10
    fi
done
if ! wait_gone "$FIO" 60; then
    fail "takeover:fio:ends" "the fio loop still runs 60 s after it was told to stop"
    kill -KILL "$FIO"
fi
wait "$FIO" 2>/dev/null
nruns=$(wc -l <"$T/fio.rc" 2>/dev/null || echo 0)
bad=$(awk '$2 != 0' "$T/fio.rc" 2>/dev/null)
if [ "$nruns" -gt 0 ] && [ -z "$bad" ]; then
    pass "takeover:fio:exit-0"
else
    fail "takeover:fio:exit-0" "$nruns fio runs, failed (run exit): $(echo "$bad" | tr '\n' ' ')"
    for n in $(awk '$2 != 0 { print $1 }' "$T/fio.rc" 2>/dev/null | head -3); do details "$T/fio.$n.log" 8; done
fi
fio_err=0
for ((n = 1; n <= nruns; n++)); do
    e=$(sed -n '/^{/,$p' "$T/fio.$n.json" 2>/dev/null | jq '[.jobs[].error] | add' 2>/dev/null)
    [ "$e" = 0 ] || { fio_err=$((fio_err + 1)); info "fio run $n: job errors ${e:-unreadable}"; }
done
assert_eq "takeover:fio:no-errors" "0 runs with errors" "$fio_err runs with errors"
info "fio: $nruns runs of 5 s"

# the clients' reports: failed syscalls (by syscall and errno) and model mismatches
"$PY" - "$T" "$NCLIENTS" >"$T/clients.sum" <<'PYEOF'
import json, os, sys
t, n = sys.argv[1], int(sys.argv[2])
kills = []
if os.path.exists(f"{t}/kills"):
    kills = [(float(l.split()[0]), int(l.split()[1])) for l in open(f"{t}/kills") if l.strip()]
def after_kill(ts):
    prev = [k for k in kills if k[0] <= ts]
    return f"{ts - prev[-1][0]:.3f} s after kill {prev[-1][1]}" if prev else "before the first kill"
total = {}
for c in range(1, n + 1):
    p = f"{t}/client{c}.json"
    if not os.path.exists(p):
        print(f"client {c} none")
        continue
    r = json.load(open(p))
    print(f"client {c} {r['failure_count']} {r['mismatch_count']} {r['ops']} {r['iterations']} "
          f"{r['max_op_ms']} {r['max_op']}")
    with open(f"{t}/client{c}.details", "w") as d:
        for k, v in sorted(r["failures_by"].items()):
            print(f"{k}: {v}", file=d)
            total[k] = total.get(k, 0) + v
        for f in r["failures"][:15]:
            print(f"failed {f['syscall']} {f['args']}: {f['errno']} at {f['t']} s, "
                  f"{after_kill(f['time'])}", file=d)
        for k, v in sorted(r["mismatches_by"].items()):
            print(f"mismatch {k}: {v}", file=d)
        for m in r["model_mismatches"][:15]:
            print(f"mismatch {m['kind']} at {m['t']} s ({after_kill(m['time'])}): {m['detail']}", file=d)
for k, v in sorted(total.items()):
    print(f"total {k} {v}")
PYEOF
for ((c = 1; c <= NCLIENTS; c++)); do
    read -r _ _ nf nm ops iters maxms maxop < <(grep "^client $c " "$T/clients.sum")
    if [ "${nf:-none}" = none ]; then
        fail "takeover:client$c:report" "no report"
        continue
    fi
    info "client $c: $ops syscalls in $iters iterations, $nf failed, $nm model mismatches, longest $maxop $maxms ms"
    if [ "$nf" = 0 ]; then pass "takeover:client$c:no-failed-syscalls"
    else
        fail "takeover:client$c:no-failed-syscalls" "$nf of $ops syscalls failed: $(grep -v -e '^failed ' -e '^mismatch' "$T/client$c.details" | tr '\n' ',' | sed 's/,$//')"
        grep '^failed ' "$T/client$c.details" | details - 15
    fi
    if [ "$nm" = 0 ]; then pass "takeover:client$c:model-matches"
    else
        fail "takeover:client$c:model-matches" "$nm mismatches with the model"
        grep '^mismatch' "$T/client$c.details" | details - 20
    fi
done
grep '^total ' "$T/clients.sum" | sed 's/^total /# failed syscalls of all clients: /'

# ------------------------------------------------------------------------------------------
# unmount: holder exits 0, nothing left, check clean, a new mount shows the same trees
section unmount
if [ -z "$hung" ]; then
    tree_of "$M" >"$T/tree.final"
    pk_stop "$M" "$HOLDER"
    assert_eq "takeover:unmount:holder-exit-0" 0 "$?"
    check "takeover:unmount:nothing-left" "serving pid $srv_last still alive" wait_gone "$srv_last" 5
    check "takeover:unmount:unmounted" "$M still mounted" not_mounted "$M"
fi
if ctl check $NODE >"$T/check.out" 2>&1; then pass "takeover:check-clean"
else fail "takeover:check-clean" "pkramfs-ctl check $NODE failed:"; details "$T/check.out" 10; fi
if ! pk_start "$M" --pkram=$NODE; then
    fail "takeover:remount" "the node did not mount again"
    finish
fi
if [ -z "$hung" ]; then
    tree_of "$M" >"$T/tree.remount"
    assert_files_eq "takeover:remount:trees-kept" "$T/tree.final" "$T/tree.remount"
fi

# ------------------------------------------------------------------------------------------
# holder-kill9: the serving process goes with the holder, ENOTCONN, a new mount restores
section holder-kill9
mkdir -p "$M/h"
for i in $(seq 1 20); do head -c $((i * 9000)) /dev/urandom >"$M/h/f$i"; done
tree_of "$M" >"$T/tree.h"
srv=$(pgrep -P "$PK_PID")
{ kill -KILL "$PK_PID" && wait "$PK_PID"; } 2>/dev/null
check "takeover:holder-kill9:serving-gone" "serving pid $srv still alive 3 s after kill -9 of holder $PK_PID" \
    wait_gone "$srv" 3
if is_mounted "$M"; then
    assert_eq "takeover:holder-kill9:open-enotconn" ENOTCONN "$(errno_of open "$M/h/f1")"
    assert_eq "takeover:holder-kill9:statfs-enotconn" ENOTCONN "$(errno_of statvfs "$M")"
    umount -l "$M"
else
    pass "takeover:holder-kill9:open-enotconn"
    pass "takeover:holder-kill9:statfs-enotconn"
fi
if pk_start "$M" --pkram=$NODE; then
    tree_of "$M" >"$T/tree.h.after"
    assert_files_eq "takeover:holder-kill9:remount-restores" "$T/tree.h" "$T/tree.h.after"
else
    fail "takeover:holder-kill9:remount" "the node did not mount again"
    finish
fi

# ------------------------------------------------------------------------------------------
# unlinked-open: read and write through the descriptor of an unlinked file across a takeover,
# its space freed once it is closed
section unlinked-open
mkdir -p "$M/poke" "$M/u"
timeout 30 "$PY" - "$M" "$PK_PID" >"$T/unlinked.out" 2>&1 <<'PYEOF'
import os, sys, time
m, holder = sys.argv[1], int(sys.argv[2])
SIZE = 8 << 20
def children():
    with open(f"/proc/{holder}/task/{holder}/children") as f:
        return [int(x) for x in f.read().split()]
def used():
    v = os.statvfs(m)
    return (v.f_blocks - v.f_bfree) * v.f_frsize
def step(name, fn):
    try:
        r = fn()
        print(f"{name}: {'ok' if r else 'bad'}", flush=True)
    except OSError as e:
        print(f"{name}: {e}", flush=True)
u0 = used()
data = os.urandom(SIZE)
fd = os.open(f"{m}/u/unlinked.dat", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, data)
os.fsync(fd)
u1 = used()
os.unlink(f"{m}/u/unlinked.dat")
old = children()
os.kill(old[0], 9)
t = time.time()
while time.time() - t < 10 and children() in ([], old):
    time.sleep(0.02)
print(f"# serving process {old} killed, now {children()}", flush=True)
# the page cache dropped: the reads go to the new serving process
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
step("read", lambda: os.pread(fd, SIZE, 0) == data)
patch = os.urandom(65536)
step("write", lambda: os.pwrite(fd, patch, 12288) == len(patch) and os.fsync(fd) is None)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
step("read-written", lambda: os.pread(fd, SIZE, 0) == data[:12288] + patch + data[12288 + 65536:])
step("fstat", lambda: os.fstat(fd).st_size == SIZE and os.fstat(fd).st_nlink == 0)
step("close", lambda: os.close(fd) is None)
u2 = 0
for _ in range(100):  # RELEASE reaches the daemon after close() returns
    u2 = used()
    if u2 <= u0 + 65536:
        break
    time.sleep(0.05)
print(f"# used bytes: {u0} before, {u1} with the file, {u2} after close", flush=True)
print(f"freed: {'ok' if u1 - u0 >= SIZE and u2 <= u0 + 65536 else 'bad'}")
PYEOF
grep '^# ' "$T/unlinked.out"
for s in read write read-written fstat close freed; do
    got=$(sed -n "s/^$s: //p" "$T/unlinked.out")
    assert_eq "takeover:unlinked-open:$s" ok "${got:-nothing (see below)}"
    [ "$got" = ok ] || details "$T/unlinked.out" 12
done
if wait_served $NODE "$PK_PID" none 1 10 "$M/poke/p"; then
    pass "takeover:unlinked-open:takeover-served"
    info "unlinked-open takeover: $TK_MS ms"
else
    fail "takeover:unlinked-open:takeover-served" "not serving within 10 s of the kill"
    diag_serving "$PK_PID"
    kill_holder_and_unmount "$PK_PID" "$M"
    if ! pk_start "$M" --pkram=$NODE; then
        fail "takeover:unlinked-open:remount" "the node did not mount again"
        finish
    fi
fi

# ------------------------------------------------------------------------------------------
# sigterm: clean unmount, exit 0, nothing left; after a takeover (this mount), then fresh
section sigterm
sigterm() { # LABEL
    local srv rc
    srv=$(pgrep -P "$PK_PID")
    kill -TERM "$PK_PID"
    if wait_gone "$PK_PID" 10; then
        wait "$PK_PID"
        rc=$?
        assert_eq "takeover:$1:exit-0" 0 "$rc"
    else
        fail "takeover:$1:exit-0" "holder $PK_PID still alive 10 s after SIGTERM"
        diag_serving "$PK_PID"
        kill_holder_and_unmount "$PK_PID" "$M"
    fi
    check "takeover:$1:unmounted" "$M still mounted" not_mounted "$M"
    check "takeover:$1:nothing-left" "serving pid $srv still alive" wait_gone "${srv:-0}" 5
    [ -n "$srv" ] || fail "takeover:$1:had-server" "the holder had no serving process"
}
echo term1 >"$M/h/term1"
sigterm sigterm-after-takeover
if pk_start "$M" --pkram=$NODE; then
    assert_eq "takeover:sigterm-after-takeover:kept" term1 "$(cat "$M/h/term1" 2>&1)"
    echo term2 >"$M/h/term2"
    sigterm sigterm
    if ctl check $NODE >"$T/check.out" 2>&1; then pass "takeover:sigterm:check-clean"
    else fail "takeover:sigterm:check-clean" "pkramfs-ctl check $NODE failed:"; details "$T/check.out" 10; fi
    if pk_start "$M" --pkram=$NODE; then
        assert_eq "takeover:sigterm:kept" term2 "$(cat "$M/h/term2" 2>&1)"
        pk_stop "$M"
    fi
else
    fail "takeover:sigterm:mount" "the node did not mount again"
fi

# ------------------------------------------------------------------------------------------
# background: without -f pkramfs-fuse returns 0 once mounted; holder and serving process run
section background
BG=$T/bg
mkdir -p "$BG"
timeout 20 "$PK" --shm-dir="$SHM" --run-dir="$RUN" --pkram=bg --size=64m "$BG" >"$T/bg.out" 2>"$T/bg.err"
rc=$?
assert_eq "takeover:background:returns-0" 0 "$rc"
[ "$rc" = 0 ] || details "$T/bg.err" 5
if is_fuse_mounted "$BG"; then
    pass "takeover:background:mounted"
    PK_ERR=$T/bg.err
    j=$(st_json bg)
    read -r bholder bsrv < <(jq -r '"\(.holder_pid) \(.serving_pid)"' <<<"$j")
    PKIT_PIDS+=("$bholder")
    if alive "$bholder" && alive "$bsrv" && [ "$(pgrep -P "$bholder")" = "$bsrv" ]; then
        pass "takeover:background:holder-and-server"
    else
        fail "takeover:background:holder-and-server" "status: holder $bholder, serving $bsrv; the holder's children: $(pgrep -P "$bholder" | tr '\n' ' ')"
    fi
    echo bgdata >"$BG/f" && mkdir "$BG/poke"
    kill -KILL "$bsrv"
    if wait_served bg "$bholder" "$bsrv" 1 10 "$BG/poke/p"; then
        pass "takeover:background:takeover-served"
        info "background takeover: $TK_MS ms"
        assert_eq "takeover:background:data" bgdata "$(timeout 5 cat "$BG/f" 2>&1)"
        bsrv=$TK_SRV
    else
        fail "takeover:background:takeover-served" "not serving within 10 s of kill -9 of serving pid $bsrv"
        diag_serving "$bholder"
    fi
    timeout 20 umount "$BG" 2>"$T/bg.umount" || { details "$T/bg.umount" 3; umount -l "$BG"; }
    check "takeover:background:umount-ends-holder" "holder $bholder alive 10 s after umount" wait_gone "$bholder" 10
    check "takeover:background:umount-ends-server" "serving pid $bsrv alive 10 s after umount" wait_gone "$bsrv" 10
else
    fail "takeover:background:mounted" "pkramfs-fuse returned $rc but $BG is not mounted"
fi
info "takeover.sh ran $(($(date +%s) - t_start)) s"
finish
