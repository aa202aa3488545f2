#!/usr/bin/env bash
# A real client: PostgreSQL on a pkramfs --pkram node.
#   1. initdb + pgbench -i + pgbench -T on the mount (postgres runs as its own user: -o allow_other,
#      fsync on), record the committed rows, clean stop, `pkramfs-ctl preserve`, unmount, remount,
#      start postgres again: every committed row is there.
#   2. kill -9 of the pkramfs daemon while pgbench and a loop of acknowledged single-row inserts run;
#      kill postgres, remount, start postgres: crash recovery succeeds and every acknowledged
#      transaction (marker rows, pgbench --log lines) is there.
#   3. the same pgbench run on a kernel tmpfs, for the TPS ratio (reported, not checked).
# Environment: PKIT_PG_SECONDS (pgbench -T, default 10), PKIT_PG_SCALE (default 5),
#              PKIT_PG_RESULTS (file to append "key=value" results to, optional).
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl

SECS=${PKIT_PG_SECONDS:-10}
SCALE=${PKIT_PG_SCALE:-5}
RESULTS=${PKIT_PG_RESULTS:-}

# ------------------------------------------------------------------ postgres --
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
PGBIN=$(pg_bindir)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/postgres" ]; then
    if command -v apt-get >/dev/null; then
        info "installing postgresql (apt-get)"
        # the package must not start the Debian cluster: deny service starts while installing
        own_policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >"$T/apt.log" 2>&1
        [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
        PGBIN=$(pg_bindir)
    fi
fi
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/postgres" ] || ! id postgres >/dev/null 2>&1; then
    skip "postgres:installed" "postgresql server binaries or user postgres not available"
    finish
fi
[ -x "$PGBIN/pgbench" ] && [ -x "$PGBIN/psql" ] || { skip "postgres:installed" "pgbench/psql missing"; finish; }
info "postgres: $("$PGBIN/postgres" --version)"

SOCK=$T/sock                     # private unix socket dir, no TCP (listen_addresses='')
PORT=5432
PGLOGS=$T/pglogs
mkdir -p "$SOCK" "$PGLOGS"
chown postgres:postgres "$SOCK" "$PGLOGS"
export PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres

as_pg() { (cd "$T" && runuser -u postgres -- "$@"); }
# pg_start DATADIR LOGNAME: start a server on the private socket, wait until it accepts connections
pg_start() {
    as_pg "$PGBIN/pg_ctl" -D "$1" -l "$PGLOGS/$2.log" -w -t 120 \
        -o "-c listen_addresses='' -c unix_socket_directories='$SOCK' -c port=$PORT -c fsync=on -c synchronous_commit=on" \
        start >"$T/pg_ctl.out" 2>&1
}
pg_stop() { as_pg "$PGBIN/pg_ctl" -D "$1" -m fast -w -t 60 stop >"$T/pg_ctl.out" 2>&1; }
sql() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1" 2>>"$T/psql.err"; }
# kill -9 every process of user postgres in our pid namespace (only ours are visible)
kill_pg_all() {
    local pid uid
    for pid in /proc/[0-9]*; do
        uid=$(awk '/^Uid:/ { print $2 }' "$pid/status" 2>/dev/null) || continue
        [ "$uid" = "$(id -u postgres)" ] && kill -KILL "${pid#/proc/}" 2>/dev/null
    done
    sleep 0.3
}
trap 'kill_pg_all; pkit_cleanup' EXIT
state_of() {  # committed rows: history count and sums; balances
    sql "select (select count(*) from pgbench_history), (select coalesce(sum(delta),0) from pgbench_history),
                (select sum(abalance) from pgbench_accounts), (select sum(bbalance) from pgbench_branches),
                (select sum(tbalance) from pgbench_tellers)" | tr '|' ' '
}
tps_of() { sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$1"; }
pg_details() { details "$PGLOGS/$1.log" 15; details "$T/pg_ctl.out" 5; }

# pgbench_run NAME DATADIR: initdb, start, pgbench -i, pgbench -T; leaves the server running
pgbench_run() {
    local name=$1 data=$2
    mkdir -p "$data" && chown postgres:postgres "$data" && chmod 700 "$data"
    if ! as_pg "$PGBIN/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C >"$T/initdb.$name.out" 2>&1; then
        fail "postgres:$name:initdb" "initdb failed"; details "$T/initdb.$name.out" 20; return 1
    fi
    pass "postgres:$name:initdb"
    if ! pg_start "$data" "$name"; then fail "postgres:$name:start" "server did not start"; pg_details "$name"; return 1; fi
    pass "postgres:$name:start"
    if ! "$PGBIN/pgbench" -i -s "$SCALE" -q >"$T/pgbench-i.$name.out" 2>&1; then
        fail "postgres:$name:pgbench-init" "pgbench -i failed"; details "$T/pgbench-i.$name.out" 20; return 1
    fi
    pass "postgres:$name:pgbench-init"
    if ! "$PGBIN/pgbench" -c 2 -j 2 -T "$SECS" >"$T/pgbench.$name.out" 2>&1; then
        fail "postgres:$name:pgbench" "pgbench failed"; details "$T/pgbench.$name.out" 20; return 1
    fi
    pass "postgres:$name:pgbench"
    return 0
}

mnt=$T/mnt
data=$mnt/data
# the node lives on a tmpfs, as under /dev/shm
tmpfs_mount "$SHM" "size=3g,mode=0755"

# ------------------------------------------------- 1. clean stop, preserve, remount
pk_tps=""
if pk_start "$mnt" --pkram=pg --size=2g -o allow_other && pgbench_run pkramfs "$data"; then
    pk_tps=$(tps_of "$T/pgbench.pkramfs.out")
    info "pgbench on pkramfs: tps=$pk_tps ($(grep -c . "$T/pgbench.pkramfs.out") lines of output)"
    before=$(state_of)
    info "committed before stop: history_rows sum_delta sum_abalance sum_bbalance sum_tbalance = $before"
    [ "$(echo "$before" | awk '{ print $1 }')" -gt 0 ] 2>/dev/null &&
        pass "postgres:pkramfs:rows-committed" || fail "postgres:pkramfs:rows-committed" "got '$before'"
    if pg_stop "$data"; then pass "postgres:clean-stop"; else fail "postgres:clean-stop" "pg_ctl stop failed"; pg_details pkramfs; fi
    "$CTL" --shm-dir="$SHM" --run-dir="$RUN" preserve pg >"$T/preserve.out" 2>&1
    check "postgres:preserve" "$(cat "$T/preserve.out")" grep -q "^preserved node 'pg'" "$T/preserve.out"
    info "$(cat "$T/preserve.out")"
    # a preserved mount refuses mutations
    touch "$mnt/after-preserve" 2>"$T/touch.err"
    assert_contains "postgres:preserved-mount-is-read-only" "$(cat "$T/touch.err")" "Read-only file system"
    check "postgres:unmount" "daemon did not exit cleanly" pk_stop "$mnt"
    "$CTL" --shm-dir="$SHM" --run-dir="$RUN" check pg >"$T/check.out" 2>&1; crc=$?
    check "postgres:ctl-check-after-preserve" "$(head -c 300 "$T/check.out")" test "$crc" -eq 0
    if pk_start "$mnt" --pkram=pg --size=2g -o allow_other; then
        if pg_start "$data" pkramfs-restart; then
            pass "postgres:restart-after-remount"
            assert_eq "postgres:every-committed-row-after-preserve-remount" "$before" "$(state_of)"
            if grep -q "database system was interrupted\|redo starts" "$PGLOGS/pkramfs-restart.log"; then
                fail "postgres:no-recovery-after-clean-stop" "postgres ran crash recovery after a clean stop:"
                details "$PGLOGS/pkramfs-restart.log" 10
            else
                pass "postgres:no-recovery-after-clean-stop"
            fi
        else
            fail "postgres:restart-after-remount" "server did not start"; pg_details pkramfs-restart
        fi
    else
        fail "postgres:remount" "pkramfs-fuse did not mount the preserved node"
    fi
fi

# ------------- 1b. kill -9 of the serving process under pgbench: the holder keeps the mount
# (fuse/holder.h): postgres must not notice (no failed transaction, no error in its log, the
# same postmaster). This kernel resends requests in flight (FUSE_NOTIFY_RESEND, 6.9+).
if is_fuse_mounted "$mnt" && sql "select 1" >/dev/null; then
    pm=$(head -n 1 "$data/postmaster.pid")
    ( cd "$T" && exec "$PGBIN/pgbench" -n -c 2 -j 1 -T 12 >"$T/pgbench.takeover.out" 2>&1 ) &
    bench=$!
    kills=0 times=""
    for _ in $(seq 1 10); do
        sleep "0.$((RANDOM % 5 + 4))"
        srv=$(serving_pid)
        [ -n "$srv" ] && [ "$srv" != "$PK_PID" ] || break
        kill -KILL "$srv"
        kills=$((kills + 1))
        for _ in $(seq 1 200); do
            new=$(serving_pid)
            [ -n "$new" ] && [ "$new" != "$srv" ] && [ "$new" != "$PK_PID" ] && break
            sleep 0.05
        done
    done
    wait "$bench"; brc=$?
    assert_eq "postgres:takeover:kills" 10 "$kills"
    check "postgres:takeover:pgbench-exit-0" "$(tail -5 "$T/pgbench.takeover.out")" test "$brc" -eq 0
    assert_contains "postgres:takeover:no-failed-transaction" \
        "$(grep -i "failed transactions" "$T/pgbench.takeover.out")" "failed transactions: 0 "
    check "postgres:takeover:no-client-error" "$(grep -i "error\|abort" "$T/pgbench.takeover.out" | head -3)" \
        sh -c "! grep -qi 'error\|abort' '$T/pgbench.takeover.out'"
    check "postgres:takeover:same-postmaster" "postmaster was $pm, now $(head -n 1 "$data/postmaster.pid")" \
        test "$pm" = "$(head -n 1 "$data/postmaster.pid")"
    check "postgres:takeover:no-error-in-postgres-log" \
        "$(grep -E "PANIC|FATAL|ERROR|terminated by signal|could not" "$PGLOGS/pkramfs-restart.log" | head -3)" \
        sh -c "! grep -qE 'PANIC|FATAL|ERROR|terminated by signal|could not' '$PGLOGS/pkramfs-restart.log'"
    restarts=$("$CTL" --shm-dir="$SHM" --run-dir="$RUN" status pg --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["restarts"])' 2>/dev/null)
    assert_eq "postgres:takeover:restarts" 10 "$restarts"
    info "pgbench across 10 takeovers: $(grep -E "^tps|failed transactions" "$T/pgbench.takeover.out" | tr '\n' ' ')"
fi

# ------------------------------------- 2. kill -9 of the daemon under load, recovery
if is_fuse_mounted "$mnt" && sql "select 1" >/dev/null; then
    h0=$(sql "select count(*) from pgbench_history")
    sql "create table marker(id int primary key)"
    pm=$(head -n 1 "$data/postmaster.pid")
    : >"$T/acked"
    # inserts acknowledged one by one; an id is written out only after its commit returned
    (   i=0
        while [ $i -lt 100000 ]; do
            i=$((i + 1))
            "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -c "insert into marker values ($i)" 2>/dev/null || break
            echo $i >>"$T/acked"
        done ) &
    loop=$!
    mkdir -p "$T/pgblog"
    ( cd "$T/pgblog" && exec "$PGBIN/pgbench" -n -c 2 -j 1 -T 60 -l --log-prefix=pgb >"$T/pgbench.crash.out" 2>&1 ) &
    bench=$!   # -n: no vacuum, which would truncate pgbench_history
    sleep 3
    kill -KILL "$PK_PID"
    wait "$PK_PID" 2>/dev/null
    info "killed pkramfs daemon $PK_PID; postmaster $pm; $(wc -l <"$T/acked") marker rows acknowledged so far"
    # postgres now gets errors from the dead mount; give the clients a moment, then kill it all
    for _ in $(seq 1 100); do alive "$bench" || alive "$loop" || break; sleep 0.1; done
    kill_pg_all
    kill -KILL "$bench" "$loop" 2>/dev/null
    wait "$bench" "$loop" 2>/dev/null
    acked=$(wc -l <"$T/acked")
    committed_log=$(cat "$T/pgblog"/pgb.* 2>/dev/null | awk '$3 ~ /^[0-9]+$/' | wc -l)
    info "acknowledged: $acked marker rows, $committed_log pgbench transactions (--log), history had $h0 rows"
    umount "$mnt" 2>/dev/null || umount -l "$mnt"
    "$CTL" --shm-dir="$SHM" --run-dir="$RUN" check pg >"$T/check2.out" 2>&1; crc=$?
    check "postgres:ctl-check-after-kill9" "$(head -c 300 "$T/check2.out")" test "$crc" -eq 0
    if pk_start "$mnt" --pkram=pg --size=2g -o allow_other; then
        pass "postgres:remount-after-kill9"
        if pg_start "$data" crash-recovery; then
            pass "postgres:crash-recovery-start"
            grep -q "redo done\|database system was interrupted\|was not properly shut down" "$PGLOGS/crash-recovery.log" &&
                pass "postgres:crash-recovery-ran" || { fail "postgres:crash-recovery-ran" "no recovery in the log"; pg_details crash-recovery; }
            sql "select id from marker order by id" >"$T/marker.got"
            missing=$(comm -23 <(sort "$T/acked") <(sort "$T/marker.got") | wc -l)
            info "marker rows after recovery: $(wc -l <"$T/marker.got") (acknowledged $acked)"
            [ "$acked" -gt 0 ] && pass "postgres:markers-acknowledged-before-kill" ||
                fail "postgres:markers-acknowledged-before-kill" "no insert was acknowledged in 3 s"
            assert_eq "postgres:every-acknowledged-marker-after-kill9" 0 "$missing"
            h1=$(sql "select count(*) from pgbench_history")
            info "pgbench_history after recovery: $h1 rows (>= $h0 + $committed_log expected)"
            if [ -n "$h1" ] && [ "$h1" -ge $((h0 + committed_log)) ]; then
                pass "postgres:every-committed-pgbench-transaction-after-kill9"
            else
                fail "postgres:every-committed-pgbench-transaction-after-kill9" \
                    "history has '$h1' rows, expected at least $h0 + $committed_log"
            fi
            # balances agree with the history: nothing half-applied
            bal=$(sql "select (select sum(abalance) from pgbench_accounts) = (select coalesce(sum(delta),0) from pgbench_history)
                          and (select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta),0) from pgbench_history)")
            # sums include the rows of the first phase, which started from zero balances
            assert_eq "postgres:balances-consistent-after-kill9" "t" "$bal"
            sql "checkpoint" >/dev/null
            pg_stop "$data" || fail "postgres:stop-after-recovery" "pg_ctl stop failed"
        else
            fail "postgres:crash-recovery-start" "server did not start after kill -9"; pg_details crash-recovery
        fi
        pk_stop "$mnt"
        "$CTL" --shm-dir="$SHM" --run-dir="$RUN" check pg >"$T/check3.out" 2>&1; crc=$?
        check "postgres:ctl-check-at-end" "$(head -c 300 "$T/check3.out")" test "$crc" -eq 0
    else
        fail "postgres:remount-after-kill9" "pkramfs-fuse did not mount"
    fi
else
    skip "postgres:kill9" "phase 1 did not leave a running server"
fi
kill_pg_all

# ---------------------------------------------------- 3. the same on kernel tmpfs
tmnt=$T/tmpfs
tmpfs_mount "$tmnt" "size=2g,mode=0755"
tmpfs_tps=""
if pgbench_run tmpfs "$tmnt/data"; then
    tmpfs_tps=$(tps_of "$T/pgbench.tmpfs.out")
    pg_stop "$tmnt/data" || true
fi
kill_pg_all
if [ -n "$pk_tps" ] && [ -n "$tmpfs_tps" ]; then
    ratio=$(awk -v a="$pk_tps" -v b="$tmpfs_tps" 'BEGIN { printf "%.3f", a / b }')
    info "pgbench -c 2 -T $SECS -s $SCALE tps: pkramfs $pk_tps, tmpfs $tmpfs_tps, ratio $ratio"
    [ -n "$RESULTS" ] && printf 'pg_version=%s\nscale=%s\nseconds=%s\npkramfs_tps=%s\ntmpfs_tps=%s\nratio=%s\n' \
        "$("$PGBIN/postgres" --version)" "$SCALE" "$SECS" "$pk_tps" "$tmpfs_tps" "$ratio" >>"$RESULTS"
fi
"$CTL" --shm-dir="$SHM" --run-dir="$RUN" destroy pg >/dev/null 2>&1
finish
