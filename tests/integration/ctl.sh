#!/bin/bash
# ctl.sh -- pkramfs-ctl and the daemon's control socket: command-line errors, node names
# refused before any file is touched, list/destroy/check/status of unmounted and mounted
# nodes, the node lock (busy, naming the pid), the socket (mode 0600, root only, one-line JSON
# replies, malformed/oversized/stuck requests answered with an error while the server keeps
# serving), "not answering" daemons, stale sockets after SIGKILL, preserve/unpreserve, and
# status/check of an unmounted node, --backend (kmod without pkram.ko: a clear error; shm nodes
# listed with BACKEND shm).
. "$(dirname "$0")/lib.sh"
need_pk

need_ctl
M=$T/mnt
mkdir -p "$M"

# ctl ARGS...: pkramfs-ctl with the private dirs; stdout in $OUT, stderr in $T/ctl.err,
# status in $RC (never hangs: 30 s timeout)
ctl() {
    OUT=$(timeout -k 2 30 "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$@" 2>"$T/ctl.err")
    RC=$?
    ERR=$(cat "$T/ctl.err")
}
# expect_fail NAME RC ARGS...: exits with RC, one line on stderr starting "pkramfs-ctl: "
expect_fail() {
    local name=$1 want=$2; shift 2
    ctl "$@"
    assert_eq "$name:exit-$want" "$want" "$RC"
    assert_one_line_err "$name:one-line" "$T/ctl.err"
    case $ERR in "pkramfs-ctl: "*) ;; *) fail "$name:prefix" "stderr: $ERR" ;; esac
    info "stderr: $ERR"
}
# json_get KEY [JSON]: a field of a JSON object (default: $OUT); python's repr for non-strings
json_get() {
    [ -n "$PY" ] || { echo "(no python3)"; return; }
    printf '%s' "${2:-$OUT}" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    d = d[int(k)] if isinstance(d, list) else d.get(k)
print(d if isinstance(d, str) else json.dumps(d))' "$1" 2>/dev/null || echo "(bad json)"
}

# A raw control socket client: client.py SOCKET REQUEST [shut|stall]; REQUEST takes Python
# escapes (\n, \x00). Prints the reply line, or "CONNECT <errno name>".
cat >"$T/client.py" <<'EOF'
import errno, socket, sys, time
path, req = sys.argv[1], sys.argv[2].encode().decode("unicode_escape").encode("latin1")
mode = sys.argv[3] if len(sys.argv) > 3 else ""
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(path)
except OSError as e:
    print("CONNECT", errno.errorcode.get(e.errno, e.errno))
    sys.exit(0)
try:
    if req:
        s.sendall(req)
    if mode == "shut":
        s.shutdown(socket.SHUT_WR)
except OSError:
    pass  # the server may answer (and close) before reading everything
if mode == "stall":
    time.sleep(8)
    sys.exit(0)
buf = b""
try:
    while b"\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
except OSError as e:
    if not buf:
        print("RECV", errno.errorcode.get(e.errno, e.errno))
        sys.exit(0)
print(buf.decode("utf-8", "replace").rstrip("\n"))
EOF
chmod 644 "$T/client.py"
# raw SOCKET REQUEST [MODE]: client.py as root; sets RAW
raw() { RAW=$(timeout -k 2 20 "$PY" "$T/client.py" "$@" 2>&1); }

# ------------------------------------------------------------ command line --
ctl --help
assert_eq "help:exit-0" 0 "$RC"
for c in list status preserve unpreserve destroy check; do
    assert_contains "help:names-$c" "$OUT" "$c"
done
expect_fail "no-command" 2
expect_fail "unknown-command" 2 frobnicate
assert_contains "unknown-command:names-it" "$ERR" "frobnicate"
expect_fail "missing-name" 2 status
expect_fail "unknown-option" 2 --no-such-option list
expect_fail "empty-option-value" 2 --shm-dir= list

# ---------------------------------------------- bad names: nothing touched --
# shm-dir and run-dir that do not exist: any access would show (or create) them; and a file
# at shm-dir/../x that a careless "destroy ../x" would remove.
BN=$T/badnames
mkdir -p "$BN/real-shm"
: >"$BN/x"
: >"$BN/real-shm/x"
long128=$(printf 'n%.0s' $(seq 128))
long127=$(printf 'n%.0s' $(seq 127))
for cmd in status preserve unpreserve destroy check; do
    for n in '../x' 'a/b' '.hidden' '..' '.' 'a b' 'a:b' 'é' $'a\nb' "$long128" ''; do
        label=$(printf '%s' "${n:0:12}" | tr -c 'A-Za-z0-9._/:-' '_')
        name="bad-name[$cmd:$label]"
        OUT=$(timeout 10 "$CTL" --shm-dir="$BN/shm" --run-dir="$BN/run" "$cmd" "$n" 2>"$T/ctl.err")
        RC=$?
        ERR=$(cat "$T/ctl.err")
        if [ "$RC" = 0 ]; then fail "$name:exit" "exit status 0"; else pass "$name:exit"; fi
        assert_one_line_err "$name:one-line" "$T/ctl.err"
        assert_contains "$name:says-invalid" "$ERR" "invalid node name"
        # and with the real shm dir, ../x must survive too
        timeout 10 "$CTL" --shm-dir="$BN/real-shm" --run-dir="$BN/run" "$cmd" "$n" >/dev/null 2>&1
    done
done
check "bad-name:nothing-created" "shm-dir or run-dir appeared: $(ls "$BN")" \
    test ! -e "$BN/shm" -a ! -e "$BN/run"
check "bad-name:dotdot-file-kept" "$BN/x was removed by a '../x' name" test -e "$BN/x"
check "bad-name:x-kept" "$BN/real-shm/x was touched" test -e "$BN/real-shm/x"
assert_eq "bad-name:real-shm-unchanged" "x" "$(ls -A "$BN/real-shm")"
ctl destroy "$long127"
assert_contains "long-valid-name:accepted" "$ERR" "no such node"

# ----------------------------------------------------------------- not root --
for cmd in "list" "status alpha" "destroy alpha"; do
    # shellcheck disable=SC2086
    setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$CTL" --shm-dir="$SHM" --run-dir="$RUN" $cmd >/dev/null 2>"$T/ctl.err"
    RC=$?
    assert_ne "not-root[$cmd]:exit" 0 "$RC"
    assert_one_line_err "not-root[$cmd]:one-line" "$T/ctl.err"
    assert_contains "not-root[$cmd]:says-root" "$(cat "$T/ctl.err")" "root"
done

# --------------------------------------------------------------------- list --
timeout 10 "$CTL" --shm-dir="$T/no/such/dir" --run-dir="$RUN" list >"$T/l.out" 2>"$T/l.err"
assert_eq "list-missing-dir:exit-0" 0 "$?"
assert_contains "list-missing-dir:no-nodes" "$(cat "$T/l.out")" "no nodes"
check "list-missing-dir:not-created" "list created the shm dir" test ! -e "$T/no"
OUT=$(timeout 10 "$CTL" --shm-dir="$T/no/such/dir" --run-dir="$RUN" list --json 2>/dev/null)
assert_eq "list-missing-dir:json" "[]" "$(json_get nodes)"
ctl list
assert_eq "list-empty:exit-0" 0 "$RC"
assert_contains "list-empty:no-nodes" "$OUT" "no nodes"
ctl --json list
assert_eq "list-empty:json" "[]" "$(json_get nodes)"
# files that are not nodes: bad names, a directory
: >"$SHM/.hidden"; : >"$SHM/a b"; : >"$SHM/x:y"
ctl --json list
assert_eq "list-ignores-bad-names" "[]" "$(json_get nodes)"
rm -f "$SHM/.hidden" "$SHM/a b" "$SHM/x:y"

# ----------------------------------------------------------------- backends --
expect_fail "backend-bogus" 2 --backend=bogus list
assert_contains "backend-bogus:names-it" "$ERR" "bogus"
assert_contains "backend-bogus:names-choices" "$ERR" "auto,kmod,shm"
expect_fail "backend-bogus[status]" 2 status ghost --backend=bogus
expect_fail "backend-empty" 2 --backend= list
ctl --backend shm list # the value as the next argument
assert_eq "backend-shm[separate-value]:exit-0" 0 "$RC"
assert_contains "backend-shm[separate-value]:no-nodes" "$OUT" "no nodes in $SHM"
ctl --backend=auto --json list
assert_eq "backend-auto:json" "[]" "$(json_get nodes)"
if [ -e /dev/pkram ]; then
    skip "backend-kmod-absent" "/dev/pkram exists on this host"
else
    # without pkram.ko: auto is the shm backend, with no word about /dev/pkram
    ctl list
    assert_eq "backend-auto[no-pkram]:exit-0" 0 "$RC"
    assert_eq "backend-auto[no-pkram]:quiet" "" "$ERR"
    expect_fail "backend-auto[no-pkram]:status-missing" 1 status ghost
    assert_contains "backend-auto[no-pkram]:names-shm-dir" "$ERR" "no such node 'ghost' in $SHM"
    case $ERR in *"/dev/pkram"*) fail "backend-auto[no-pkram]:no-pkram-word" "stderr: $ERR" ;;
    *) pass "backend-auto[no-pkram]:no-pkram-word" ;; esac
    # --backend=kmod: "no /dev/pkram: pkram.ko is not loaded; ...", exit 1 (check: 2)
    for cmd in "list" "status alpha" "destroy alpha" "preserve alpha" "check alpha"; do
        want=1
        [ "$cmd" = "check alpha" ] && want=2
        # shellcheck disable=SC2086
        expect_fail "backend-kmod-absent[$cmd]" "$want" --backend=kmod $cmd
        assert_contains "backend-kmod-absent[$cmd]:says-why" "$ERR" \
            "no /dev/pkram: pkram.ko is not loaded"
        assert_contains "backend-kmod-absent[$cmd]:says-fix" "$ERR" "--backend=shm"
    done
    check "backend-kmod-absent:nothing-created" "a lock file appeared: $(ls -A "$RUN")" \
        test -z "$(ls -A "$RUN")"
fi

# ------------------------------------------------------------ missing nodes --
expect_fail "destroy-missing" 1 destroy ghost
assert_contains "destroy-missing:no-such-node" "$ERR" "no such node"
expect_fail "status-missing" 1 status ghost
assert_contains "status-missing:no-such-node" "$ERR" "no such node"
expect_fail "check-missing" 2 check ghost
assert_contains "check-missing:no-such-node" "$ERR" "no such node"
expect_fail "preserve-missing" 1 preserve ghost
assert_contains "preserve-missing:no-such-node" "$ERR" "no such node"
mkdir "$SHM/adir"
expect_fail "destroy-directory" 1 destroy adir
check "destroy-directory:kept" "the directory was removed" test -d "$SHM/adir"
rmdir "$SHM/adir"

# ---------------------------------------- a lock held without any daemon --
# Something holds beta's lock (as a daemon still starting would) but serves no socket.
: >"$SHM/beta"
echo 999999 >"$RUN/beta.lock"
flock -o "$RUN/beta.lock" sleep 60 &
FLOCK_PID=$!
PKIT_PIDS+=("$FLOCK_PID")
sleep 0.3
expect_fail "not-answering[no-socket]" 1 status beta
assert_contains "not-answering[no-socket]:says-so" "$ERR" "not answering"
expect_fail "busy[no-daemon]:destroy" 1 destroy beta
assert_contains "busy[no-daemon]:destroy-says-busy" "$ERR" "busy"
check "busy[no-daemon]:file-kept" "destroy removed a locked node" test -e "$SHM/beta"
ctl --json list
assert_eq "busy[no-daemon]:list-mounted" "true" "$(json_get nodes.0.mounted)"
kill "$FLOCK_PID" 2>/dev/null; wait "$FLOCK_PID" 2>/dev/null
ctl destroy beta
assert_eq "destroy-unlocked:exit-0" 0 "$RC"
check "destroy-unlocked:gone" "node file still there" test ! -e "$SHM/beta"

# ------------------------------------------------------------ mounted node --
SOCK=$RUN/alpha.sock
if ! pk_start "$M" --pkram=alpha; then
    fail "mount" "pkramfs-fuse --pkram=alpha did not mount"
    finish
fi
PID=$PK_PID
echo hello >"$M/file"

expect_fail "busy:destroy" 1 destroy alpha
assert_contains "busy:destroy-names-pid" "$ERR" "pid $PID"
check "busy:destroy-kept-node" "node file removed while mounted" test -e "$SHM/alpha"
expect_fail "busy:check" 2 check alpha
assert_contains "busy:check-names-pid" "$ERR" "pid $PID"
ctl --json list
assert_eq "list-mounted:name" "alpha" "$(json_get nodes.0.name)"
assert_eq "list-mounted:mounted" "true" "$(json_get nodes.0.mounted)"
assert_eq "list-mounted:pid" "$PID" "$(json_get nodes.0.pid)"
assert_eq "list-mounted:backend" "shm" "$(json_get nodes.0.backend)"
ctl list
assert_eq "list-table:exit-0" 0 "$RC"
assert_contains "list-table:header" "$(printf '%s\n' "$OUT" | head -n 1)" "BACKEND"
row=$(printf '%s\n' "$OUT" | awk '$1 == "alpha"')
assert_eq "list-table:row" "alpha shm yes $PID" "$(echo "$row" | awk '{print $1, $2, $3, $4}')"
ctl --backend=shm --json list
assert_eq "list-backend-shm:name" "alpha" "$(json_get nodes.0.name)"
if [ ! -e /dev/pkram ]; then
    expect_fail "list-backend-kmod-absent:with-nodes" 1 --backend=kmod list
fi

# The socket: served once the daemon runs ControlServer (fuse/main.cpp).
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
if [ -S "$SOCK" ]; then
    pass "socket:exists"
else
    fail "socket:exists" "no $SOCK: the daemon does not serve its control socket (ControlServer not wired into pkramfs-fuse yet?)"
fi
assert_eq "socket:mode-0600" "600 0" "$(stat -c '%a %u' "$SOCK" 2>&1)"

ctl status alpha
assert_eq "status-mounted:exit-0" 0 "$RC"
[ "$RC" = 0 ] || details "$T/ctl.err" 3
assert_contains "status-mounted:pid" "$OUT" "pid $PID"
ctl --json status alpha
assert_eq "status-mounted-json:name" "alpha" "$(json_get name)"
assert_eq "status-mounted-json:mounted" "true" "$(json_get mounted)"
assert_eq "status-mounted-json:pid" "$PID" "$(json_get pid)"
assert_eq "status-mounted-json:mountpoint" "$M" "$(json_get mountpoint)"
assert_eq "status-mounted-json:state" "active" "$(json_get state)"
ctl status alpha --json # options after the command too
assert_eq "status-json-after-command" "alpha" "$(json_get name)"
ctl --json list
assert_eq "list-mounted:state" "active" "$(json_get nodes.0.state)"

if [ -n "$PY" ]; then
    raw "$SOCK" 'status\n'
    assert_eq "raw:status-ok" "true" "$(json_get ok "$RAW")"
    assert_eq "raw:status-one-line" 1 "$(printf '%s\n' "$RAW" | wc -l)"
    # malformed and oversized requests get an error; the server keeps answering
    i=0
    for req in 'bogus\n' 'status please\n' '\x00\x01\xff\n' '\n' "$(printf 'a%.0s' $(seq 300))\\n" \
        "$(printf 'status%.0s' $(seq 20000))" 'status'; do
        i=$((i + 1))
        mode=""
        [ "$req" = status ] && mode=shut # no newline: the end of the stream ends it
        raw "$SOCK" "$req" $mode
        if [ "$req" = status ]; then
            assert_eq "raw:eof-terminated[$i]:ok" "true" "$(json_get ok "$RAW")"
        else
            assert_eq "raw:bad-request[$i]:refused" "false" "$(json_get ok "$RAW")"
            check "raw:bad-request[$i]:says-why" "no error text in: $RAW" \
                test -n "$(json_get error "$RAW" | tr -d '[:space:]')"
        fi
        raw "$SOCK" 'status\n'
        assert_eq "raw:bad-request[$i]:still-serving" "true" "$(json_get ok "$RAW")"
    done
    # a client that connects and says nothing holds the server at most ~2 s
    timeout 20 "$PY" "$T/client.py" "$SOCK" '' stall &
    STALL=$!
    sleep 1
    t0=$(date +%s%N)
    ctl --timeout=8 status alpha
    t1=$(date +%s%N)
    assert_eq "raw:stuck-client:others-served" 0 "$RC"
    check "raw:stuck-client:within-4s" "status took $(((t1 - t0) / 1000000)) ms" \
        test $(((t1 - t0) / 1000000)) -lt 4000
    kill "$STALL" 2>/dev/null; wait "$STALL" 2>/dev/null

    # user nobody: the socket's mode stops it; with the mode opened, SO_PEERCRED does
    RAW=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$PY" "$T/client.py" "$SOCK" 'status\n' 2>&1)
    assert_eq "nobody:mode-refuses" "CONNECT EACCES" "$RAW"
    rundir_mode=$(stat -c %a "$RUN")
    chmod 755 "$RUN"; chmod 666 "$SOCK"
    RAW=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$PY" "$T/client.py" "$SOCK" 'status\n' 2>&1)
    chmod 600 "$SOCK"; chmod "$rundir_mode" "$RUN"
    assert_eq "nobody:peercred-refuses" "false" "$(json_get ok "$RAW")"
    assert_contains "nobody:says-root" "$(json_get error "$RAW")" "root"
    raw "$SOCK" 'status\n'
    assert_eq "nobody:still-serving-root" "true" "$(json_get ok "$RAW")"
else
    skip "raw" "no python3"
fi

# a stopped daemon: "not answering" within --timeout
# (the serving process; the message names the daemon's pid, the holder's)
SERVING=$(serving_pid "$PID")
kill -STOP "$SERVING"
t0=$(date +%s)
expect_fail "not-answering[stopped]" 1 --timeout=1 status alpha
assert_contains "not-answering[stopped]:says-so" "$ERR" "not answering"
assert_contains "not-answering[stopped]:names-pid" "$ERR" "$PID"
check "not-answering[stopped]:quick" "took $(($(date +%s) - t0)) s" test $(($(date +%s) - t0)) -le 5
kill -CONT "$SERVING"

# preserve: EROFS, readable, status says preserved; unpreserve: writable again
ctl preserve alpha
assert_eq "preserve:exit-0" 0 "$RC"
[ "$RC" = 0 ] || details "$T/ctl.err" 3
assert_contains "preserve:reports" "$OUT" "preserved"
# shellcheck disable=SC2317  # called through check
touch_erofs() { ! touch "$1" 2>"$T/touch.err" && grep -q "Read-only" "$T/touch.err"; }
check "preserve:erofs" "a create on a preserved mount did not fail with EROFS" \
    touch_erofs "$M/after-preserve"
assert_eq "preserve:readable" "hello" "$(cat "$M/file" 2>&1)"
ctl --json status alpha
assert_eq "preserve:status" "preserved" "$(json_get state)"
ctl unpreserve alpha
assert_eq "unpreserve:exit-0" 0 "$RC"
[ "$RC" = 0 ] || details "$T/ctl.err" 3
check "unpreserve:writable" "a create failed after unpreserve" touch "$M/after-unpreserve"
ctl --json status alpha
assert_eq "unpreserve:status" "active" "$(json_get state)"

# SIGTERM still stops the daemon (the control thread must not swallow signals)
kill -TERM "$PID"
check "sigterm:exits" "daemon still running 10 s after SIGTERM" wait_gone "$PID" 10
wait "$PID" 2>/dev/null
umount -l "$M" 2>/dev/null
check "sigterm:socket-removed" "$SOCK left behind after a clean stop" test ! -e "$SOCK"
ctl --json list
assert_eq "unmounted:list" "false" "$(json_get nodes.0.mounted)"
expect_fail "preserve-unmounted" 1 preserve alpha
assert_contains "preserve-unmounted:says-so" "$ERR" "not mounted"

# ----------------------------------------------------- offline inspection --
ctl status alpha
assert_eq "offline-status:exit-0" 0 "$RC"
[ "$RC" = 0 ] || details "$T/ctl.err" 3
ctl --json status alpha
assert_eq "offline-status:mounted" "false" "$(json_get mounted)"
assert_eq "offline-status:clean" "clean" "$(json_get state)"
assert_eq "offline-status:backend" "shm" "$(json_get backend)"
ctl --backend=shm status alpha
assert_eq "offline-status[backend=shm]:exit-0" 0 "$RC"
assert_contains "offline-status[backend=shm]:says-shm" "$OUT" "backend:      shm"
ctl check alpha
assert_eq "offline-check:exit-0" 0 "$RC"
[ "$RC" = 0 ] || { details - 5 <<<"$OUT"; details "$T/ctl.err" 3; }
ctl --json check alpha
assert_eq "offline-check:json-clean" "true" "$(json_get clean)"
assert_eq "offline-check:json-no-problems" "[]" "$(json_get problems)"
assert_eq "offline-check:json-backend" "shm" "$(json_get backend)"

# -------------------------------------------- SIGKILL: stale socket, restart --
if pk_start "$M" --pkram=alpha; then
    PID=$PK_PID
    for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
    kill -KILL "$PID"; wait "$PID" 2>/dev/null
    umount -l "$M" 2>/dev/null
    ctl status alpha
    case $ERR in
    *"not answering"* | *busy*) fail "killed:status-offline" "a dead daemon's node: $ERR" ;;
    *) pass "killed:status-offline" ;;
    esac
    ctl --json status alpha
    assert_eq "killed:status-dirty" "dirty" "$(json_get state)"
    ctl check alpha
    assert_eq "killed:check-clean" 0 "$RC"
    [ "$RC" = 0 ] || { details - 5 <<<"$OUT"; details "$T/ctl.err" 3; }
    # a new daemon replaces the stale socket
    if pk_start "$M" --pkram=alpha; then
        # The mount appears before the new daemon has replaced the socket (it serves it once
        # in the background): until then status says "connection refused". Slow under ASan.
        for _ in $(seq 50); do
            ctl --json status alpha
            [ "$RC" = 0 ] && break
            sleep 0.1
        done
        assert_eq "restart:status-new-pid" "$PK_PID" "$(json_get pid)"
        pk_stop "$M"
    else
        fail "restart:mount" "pkramfs-fuse did not mount after a SIGKILL"
    fi
    # killed again: destroy removes the node and the stale socket, keeps the lock file
    pk_start "$M" --pkram=alpha && { kill -KILL "$PK_PID"; wait "$PK_PID" 2>/dev/null; }
    umount -l "$M" 2>/dev/null
    ctl destroy alpha
    assert_eq "destroy-killed:exit-0" 0 "$RC"
    check "destroy-killed:node-gone" "node file still there" test ! -e "$SHM/alpha"
    check "destroy-killed:socket-gone" "stale socket still there" test ! -e "$SOCK"
    ctl list
    assert_contains "destroy-killed:list-empty" "$OUT" "no nodes"
else
    fail "killed:mount" "pkramfs-fuse did not mount"
fi

# ------------------------------------------------- longest node name (127) --
# NAME.sock would not fit in a socket address: the socket gets a hashed name.
if pk_start "$M" --pkram="$long127"; then
    ctl --json status "$long127"
    assert_eq "long-name:status" "$long127" "$(json_get name)"
    ctl --json list
    assert_eq "long-name:list" "$long127" "$(json_get nodes.0.name)"
    expect_fail "long-name:busy" 1 destroy "$long127"
    pk_stop "$M"
    ctl destroy "$long127"
    assert_eq "long-name:destroy" 0 "$RC"
else
    fail "long-name:mount" "pkramfs-fuse --pkram=<127 bytes> did not mount"
fi

finish
