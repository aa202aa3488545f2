#!/bin/bash
# systemd.sh -- the systemd units of tools/systemd: `systemd-analyze verify` of the units
# generated with this build's binaries (offline: PID 1 need not be systemd), the dependencies
# systemd computes for them (ordering for boot and shutdown), then their real command lines
# (ExecStartPre/ExecStart/ExecStop parsed out of the units, the environment file and %i
# substituted as systemd does) against a real mount: start = mounted when ExecStart returns,
# preserve = EROFS + status preserved, stop = unmounted, daemon gone, preserved state kept, start
# again = same tree, writable; stop with an edited configuration, a busy mount, after kill -9;
# configuration errors refused by ExecStartPre. Uses --backend=shm with private dirs (no pkram.ko).
# shellcheck disable=SC2317  # (whole file) small predicates called through check
. "$(dirname "$0")/lib.sh"
need_pk

SRC=$PKIT_REPO/tools/systemd
HELPER=$SRC/pkramfs-unit-helper
need_ctl
NAME=t1
UNITS=$T/units
ETC=$T/etc
MP="$T/mnt/my point"            # a space: MOUNTPOINT must stay one argument everywhere
mkdir -p "$UNITS" "$ETC"
# The unit's systemd-tmpfiles runs with --root: tools/systemd/pkramfs-tmpfiles.conf installed
# as in a real root, so the test sees what it makes without touching this machine's /run.
TMPFILES=$(command -v systemd-tmpfiles || echo /bin/systemd-tmpfiles)
TMPFILES_ROOT=$T/tmpfiles-root
mkdir -p "$TMPFILES_ROOT/usr/lib/tmpfiles.d" "$TMPFILES_ROOT/run" "$TMPFILES_ROOT/dev/shm"
chmod 1777 "$TMPFILES_ROOT/dev/shm"
cp "$SRC/pkramfs-tmpfiles.conf" "$TMPFILES_ROOT/usr/lib/tmpfiles.d/pkramfs.conf"
# A local user got there first (before boot's systemd-tmpfiles): the unit makes it root's again.
mkdir -m 777 "$TMPFILES_ROOT/dev/shm/pkramfs" && chown 65534:65534 "$TMPFILES_ROOT/dev/shm/pkramfs"

# gen_units DIR SBINDIR: the unit templates with this test's paths, as configure_file would write
gen_units() {
    local u
    mkdir -p "$1"
    for u in pkramfs@.service pkramfs-preserve@.service; do
        sed -e "s|@PKRAMFS_SBINDIR@|$2|g" -e "s|@PKRAMFS_HELPER@|$HELPER|g" \
            -e "s|@PKRAMFS_TMPFILES@|$TMPFILES --root=$TMPFILES_ROOT|g" \
            -e "s|@PKRAMFS_CONFDIR@|$ETC|g" -e "s|@PKRAMFS_DOCDIR@|$PKIT_REPO/docs|g" \
            "$SRC/$u.in" >"$1/$u"
    done
}
gen_units "$UNITS" "$PKRAMFS_BIN"
left=$(grep -ho '@[A-Z_]*@' "$UNITS"/* | sort -u | tr '\n' ' ')
assert_eq "generate:all-substituted" "" "$left"
check "generate:helper-executable" "$HELPER is not executable (git mode 755?)" test -x "$HELPER"

write_conf() {
    {
        echo "# test configuration"
        echo "MOUNTPOINT=\"$MP\""
        echo 'OPTIONS="--backend=shm --size=64m --nr-inodes=10k"'
        echo "DIR_OPTIONS=\"--shm-dir=$SHM --run-dir=$RUN\""
    } >"$ETC/$NAME.conf"
}
# lib.sh's mount_fstype hands the escaped path to awk -v, which turns the \040 of the space in
# $MP back into a space (so it never matches): look paths up through the environment instead.
mp_fstype() {
    P=$(_mi_escape "$(realpath -m "$1")") \
        awk '$5 == ENVIRON["P"] { for (i = 7; $i != "-"; i++); t = $(i + 1) } END { print t }' \
        /proc/self/mountinfo
}
mp_mounted() { [ -n "$(mp_fstype "$1")" ]; }
not_mounted() { ! mp_mounted "$1"; }
# pkit_cleanup cannot unmount $MP (same escaping problem)
trap 'mp_mounted "$MP" && umount -l "$MP" 2>/dev/null; pkit_cleanup' EXIT
write_conf

# ------------------------------------------------------------ systemd-analyze verify --
if ! command -v systemd-analyze >/dev/null; then
    if apt-cache policy systemd 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        fail "verify:systemd-analyze" "systemd-analyze missing: apt-get install systemd (tools/install-deps)"
    else
        skip "verify" "systemd-analyze missing and package systemd not installable here"
    fi
else
    # verify UNIT...: status in VRC, messages in $T/verify.err; with VERIFY_LEVEL=debug systemd
    # also dumps each unit (its computed dependencies) to $T/verify.dump
    verify() {
        SYSTEMD_LOG_LEVEL=${VERIFY_LEVEL:-notice} SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 \
            timeout -k 5 120 systemd-analyze verify --man=no "$@" >"$T/verify.dump" 2>"$T/verify.err"
        VRC=$?
    }
    verify "$UNITS/pkramfs@$NAME.service" "$UNITS/pkramfs-preserve@$NAME.service"
    assert_eq "verify:exit-0" 0 "$VRC"
    # Unknown keys and bad values are only warnings: no line may mention our units.
    ours=$(grep -E "pkramfs|$UNITS" "$T/verify.err")
    if [ -z "$ours" ]; then pass "verify:no-warnings"
    else fail "verify:no-warnings" "systemd-analyze complained:"; details - 10 <<<"$ours"; fi
    [ "$VRC" = 0 ] || details "$T/verify.err" 10

    # Offline verify does check: a unit naming a missing binary fails.
    gen_units "$T/badunits" "$T/no/such/dir"
    verify "$T/badunits/pkramfs@$NAME.service"
    assert_ne "verify:catches-missing-binary" 0 "$VRC"
    assert_contains "verify:names-missing-binary" "$(cat "$T/verify.err")" "$T/no/such/dir/pkramfs-fuse"

    # The dependencies systemd itself computes (its debug dump of each unit).
    VERIFY_LEVEL=debug verify "$UNITS/pkramfs@$NAME.service" "$UNITS/pkramfs-preserve@$NAME.service"
    # deps UNIT: "Key: value" lines of UNIT's dump, origin notes dropped
    deps() {
        awk -v u="-> Unit $1:" '
            index($0, "-> Unit ") { on = index($0, u) > 0; next }
            on { sub(/^[ \t]+/, ""); sub(/ \(origin-[^)]*\)$/, ""); sub(/ \(destination-[^)]*\)$/, ""); print }
        ' "$T/verify.dump"
    }
    D=$(deps "pkramfs@$NAME.service")
    P=$(deps "pkramfs-preserve@$NAME.service")
    if [ -z "$D" ] || [ -z "$P" ]; then
        fail "deps:dump" "no unit dump from systemd-analyze at debug level"
        details "$T/verify.err" 5
    else
        has() { grep -qxF "$2" <<<"$1"; }
        hasnt() { ! has "$1" "$2"; }
        not_has_prefix() { ! grep -q "^$2" <<<"$1"; }
        for want in "Type: forking" "GuessMainPID: yes" "After: systemd-modules-load.service" \
            "After: local-fs.target" "Before: sysinit.target" "Conflicts: shutdown.target" \
            "Before: shutdown.target" "Wants: pkramfs-preserve@$NAME.service" \
            "DefaultDependencies: no" "PrivateTmp: no" "ProtectSystem: no" "OOMScoreAdjust: -1000"; do
            check "deps:mount:$want" "pkramfs@$NAME.service lacks '$want'" has "$D" "$want"
        done
        check "deps:mount:no-pidfile" "pkramfs@ has a PIDFile (stale pid race)" \
            not_has_prefix "$D" "PIDFile:"
        for want in "Type: oneshot" "RemainAfterExit: yes" "After: pkramfs@$NAME.service" \
            "After: sysinit.target" "Before: basic.target" "Conflicts: shutdown.target" \
            "Before: shutdown.target" "DefaultDependencies: no"; do
            check "deps:preserve:$want" "pkramfs-preserve@$NAME.service lacks '$want'" has "$P" "$want"
        done
        # A manual stop of pkramfs@ must not propagate to the preserve unit.
        for bad in "Requires: pkramfs@$NAME.service" "BindsTo: pkramfs@$NAME.service" \
            "PartOf: pkramfs@$NAME.service" "Requisite: pkramfs@$NAME.service"; do
            check "deps:preserve:not-${bad%%:*}" "pkramfs-preserve@ has '$bad'" hasnt "$P" "$bad"
        done
    fi
fi

# ------------------------------------------------------- the units' command lines --
# unitcmd.py UNIT_FILE KEY INSTANCE: bash assignments NCMD, CMD_i (array), IGN_i (1 for a '-'
# prefix) and ENVS (the EnvironmentFile's variables): systemd's rules for specifiers (%i %I %n
# %p %%), "$VAR" as a word (split at whitespace, none if empty) and "${VAR}" (one word).
cat >"$T/unitcmd.py" <<'EOF'
import re, shlex, sys
path, key, inst = sys.argv[1:4]
unit = path.rsplit("/", 1)[-1]
prefix, suffix = unit.split("@", 1)
full = prefix + "@" + inst + suffix[suffix.index("."):]
def spec(s):
    def one(m):
        c = m.group(1)
        v = {"i": inst, "I": inst, "n": full, "p": prefix, "%": "%"}.get(c)
        if v is None:
            sys.exit("unitcmd: unsupported specifier %" + c)
        return v
    return re.sub(r"%(.)", one, s)
lines, sect, vals, envfiles = open(path).read().replace("\\\n", " ").splitlines(), None, [], []
for l in lines:
    l = l.strip()
    if not l or l[0] in "#;":
        continue
    if l.startswith("["):
        sect = l
        continue
    if sect != "[Service]" or "=" not in l:
        continue
    k, v = (x.strip() for x in l.split("=", 1))
    if k == key:
        vals = [] if v == "" else vals + [v]
    elif k == "EnvironmentFile":
        envfiles.append(spec(v))
env = {}
for f in envfiles:
    opt = f.startswith("-")
    try:
        text = open(f.lstrip("-")).read()
    except OSError:
        if opt:
            continue
        sys.exit("unitcmd: EnvironmentFile " + f + " missing")
    for l in text.splitlines():
        l = l.strip()
        if not l or l[0] in "#;" or "=" not in l:
            continue
        k, v = (x.strip() for x in l.split("=", 1))
        if len(v) >= 2 and v[0] == v[-1] == '"':
            v = re.sub(r'\\(.)', r"\1", v[1:-1])
        elif len(v) >= 2 and v[0] == v[-1] == "'":
            v = v[1:-1]
        env[k] = v
out = ["NCMD=%d" % len(vals)]
for n, v in enumerate(vals):
    ign = 0
    while v and v[0] in "-@:+!":
        ign |= v[0] == "-"
        v = v[1:]
    argv = []
    for w in shlex.split(spec(v)):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            argv += env.get(m.group(1), "").split()
        else:
            w = w.replace("$$", "\0")
            w = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), w)
            argv.append(w.replace("\0", "$"))
    out.append("CMD_%d=(%s)" % (n, " ".join(shlex.quote(a) for a in argv)))
    out.append("IGN_%d=%d" % (n, ign))
out.append("ENVS=(%s)" % " ".join(shlex.quote(k + "=" + v) for k, v in env.items()))
print("\n".join(out))
EOF

# run_unit UNIT KEY [VAR=VALUE...]: run every KEY= command of UNIT (instance $NAME) as systemd
# would: clean environment (systemd's PATH, the environment file, the given variables), cwd /,
# stdin /dev/null, in order, stopping at the first failure not marked '-'. Sets RC (first
# failure's status, or 0), OUT (stdout+stderr), IGNORED (1 if a '-' command failed), CMDLINE.
run_unit() {
    local unit=$1 key=$2 i rc defs; shift 2
    RC=0 OUT="" IGNORED=0 CMDLINE=""
    if ! defs=$("$PY" "$T/unitcmd.py" "$UNITS/$unit" "$key" "$NAME" 2>&1); then
        RC=99 OUT="cannot parse $key of $unit: $defs"
        return
    fi
    local NCMD ENVS
    eval "$defs"
    if [ "$NCMD" = 0 ]; then RC=98 OUT="$unit has no $key="; return; fi
    for ((i = 0; i < NCMD; i++)); do
        local -n cmd=CMD_$i ign=IGN_$i
        CMDLINE+="${cmd[*]}; "
        OUT+=$(env -i --chdir=/ PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            "${ENVS[@]}" "$@" timeout -k 5 120 "${cmd[@]}" </dev/null 2>&1)
        rc=$?
        if [ "$rc" != 0 ]; then
            if [ "$ign" = 1 ]; then IGNORED=1; else RC=$rc; return; fi
        fi
    done
}
# daemon_pid: the pid the daemon wrote into its lock (the process systemd would guess as the
# main pid), once that is a live pkramfs-fuse; empty after 5 s
daemon_pid() {
    local i p
    for ((i = 0; i < 100; i++)); do
        p=$(tr -cd '0-9' <"$RUN/$NAME.lock" 2>/dev/null)
        if [ -n "$p" ] && alive "$p" && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = pkramfs-fuse ]; then
            echo "$p"; return
        fi
        sleep 0.05
    done
}
ctl() {
    OUT=$(timeout -k 2 30 "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$@" 2>&1)
    RC=$?
}
json_get() {                    # json_get KEY: a field of the JSON object in $OUT
    printf '%s' "$OUT" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
v = d.get(sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v))' "$1" 2>/dev/null || echo "(bad json: $OUT)"
}
# start LABEL: ExecStartPre + ExecStart of pkramfs@; PASS if mounted the moment ExecStart returns
start() {
    run_unit pkramfs@.service ExecStartPre
    if [ "$RC" != 0 ]; then fail "$1:start-pre" "exit $RC: $OUT"; return 1; fi
    run_unit pkramfs@.service ExecStart
    if [ "$RC" != 0 ]; then fail "$1:start" "exit $RC ($CMDLINE): $OUT"; return 1; fi
    # Type=forking: the unit counts as started when ExecStart returns; the mount must be there.
    if [ "$(mp_fstype "$MP")" = fuse.pkramfs-fuse ]; then pass "$1:mounted-when-started"
    else fail "$1:mounted-when-started" "ExecStart returned 0 but $MP is not mounted"; return 1; fi
    PID=$(daemon_pid)
    if [ -z "$PID" ]; then fail "$1:daemon" "no live pkramfs-fuse pid in $RUN/$NAME.lock"; return 1; fi
    PKIT_PIDS+=("$PID")
    return 0
}
# stop LABEL [VAR=VALUE...]: ExecStop of pkramfs@ (give MAINPID=... as systemd does)
stop() {
    local label=$1 late=0; shift
    run_unit pkramfs@.service ExecStop "$@"
    # What systemd does next: SIGTERM to whatever is left in the unit. The daemon must be gone.
    if [ -n "${PID:-}" ] && alive "$PID"; then late=1; kill -TERM "$PID"; wait_gone "$PID" 10; fi
    assert_eq "$label:daemon-gone-on-return" 0 "$late"
    assert_eq "$label:stop-exit-0" 0 "$RC"
    [ "$RC" = 0 ] || details - 5 <<<"$OUT"
    check "$label:unmounted" "$MP still mounted after ExecStop" not_mounted "$MP"
}
[ -n "$PY" ] || { fail "systemd:python3" "python3 is needed to parse the units"; finish; }

# ---------------------------------------------------------- start, write, preserve --
sum=""
check "first:no-mountpoint-yet" "$MP exists before the first start" test ! -e "$MP"
if start first; then
    check "first:mountpoint-created" "$MP not created" test -d "$MP"
    for d in run/pkramfs dev/shm/pkramfs; do
        assert_eq "tmpfiles:$d" "directory 700 root root" \
            "$(stat -c '%F %a %U %G' "$TMPFILES_ROOT/$d" 2>&1)"
    done
    # the daemon detached (fuse_daemonize: setsid), the process ExecStart ran has exited
    sid=$(awk '{ sub(/.*\) /, ""); print $4 }' "/proc/$PID/stat")
    assert_eq "first:daemon-detached" "$PID" "$sid"
    printf 'hello\n' >"$MP/file" && head -c 3000000 /dev/urandom >"$MP/big"
    sum=$(sha256sum <"$MP/big")
    assert_eq "first:written" "hello" "$(cat "$MP/file" 2>&1)"
    ctl --json status "$NAME"
    assert_eq "first:status-active" "active" "$(json_get state)"
    assert_eq "first:status-mountpoint" "$MP" "$(json_get mountpoint)"
    assert_eq "first:status-pid" "$PID" "$(json_get pid)"

    # A second start while mounted fails (the parent exits 1: the unit would fail, not hang).
    run_unit pkramfs@.service ExecStart
    assert_ne "node-busy:start-fails" 0 "$RC"
    assert_contains "node-busy:says-busy" "$OUT" "busy"

    # The preserve unit's stop command.
    run_unit pkramfs-preserve@.service ExecStop
    assert_eq "preserve:exit-0" 0 "$RC"
    assert_eq "preserve:not-ignored-failure" 0 "$IGNORED"
    assert_contains "preserve:reports" "$OUT" "preserved node '$NAME'"
    info "$OUT"
    erofs() { ! touch "$1" 2>"$T/touch.err" && grep -q "Read-only file system" "$T/touch.err"; }
    check "preserve:erofs" "creating a file after preserve did not fail with EROFS" erofs "$MP/new"
    append_erofs() { ! echo more 2>"$T/touch.err" >>"$1" && grep -q "Read-only file system" "$T/touch.err"; }
    check "preserve:append-erofs" "appending after preserve did not fail with EROFS" append_erofs "$MP/file"
    assert_eq "preserve:readable" "hello" "$(cat "$MP/file" 2>&1)"
    ctl --json status "$NAME"
    assert_eq "preserve:status-preserved" "preserved" "$(json_get state)"

    # Stop: unmounts, waits for the daemon (gone when ExecStop returns), keeps "preserved".
    stop "stop1" MAINPID="$PID"
    ctl --json status "$NAME"
    assert_eq "stop1:state-preserved" "preserved" "$(json_get state)"
    assert_eq "stop1:not-mounted" "false" "$(json_get mounted)"
    ctl check "$NAME"
    assert_eq "stop1:check-clean" 0 "$RC"
    [ "$RC" = 0 ] || details - 5 <<<"$OUT"

    # The preserve unit on an unmounted node: pkramfs-ctl fails, the '-' prefix keeps the unit
    # (and the shutdown) from failing.
    run_unit pkramfs-preserve@.service ExecStop
    assert_eq "preserve-unmounted:unit-ok" 0 "$RC"
    assert_eq "preserve-unmounted:failure-ignored" 1 "$IGNORED"
    assert_contains "preserve-unmounted:says-not-mounted" "$OUT" "not mounted"
fi

# ------------------------------------------------------ start again: same tree, writable --
if start again; then
    assert_eq "again:file" "hello" "$(cat "$MP/file" 2>&1)"
    assert_eq "again:big" "$sum" "$(sha256sum <"$MP/big" 2>&1)"
    check "again:writable" "cannot create a file after the restart" touch "$MP/after-restart"
    ctl --json status "$NAME"
    assert_eq "again:status-active" "active" "$(json_get state)"

    # The configuration changes while mounted: stop still unmounts what the daemon mounted.
    write_conf
    sed -i "s|^MOUNTPOINT=.*|MOUNTPOINT=$T/elsewhere|" "$ETC/$NAME.conf"
    stop "edited-conf" MAINPID="$PID"
    write_conf
    ctl --json status "$NAME"
    assert_eq "edited-conf:state-clean" "clean" "$(json_get state)"
fi

# --------------------------------------------- busy mount: sync, SIGTERM, nothing lost --
if start busy; then
    # A process that keeps the mount busy and holds dirty pages in a shared writable mapping:
    # they reach the daemon only through writeback, which the stop must force (sync -f) before
    # it stops the daemon.
    rm -f "$T/mapped"
    ( cd "$MP" && exec "$PY" -c '
import mmap, os, sys, time
fd = os.open("dirty", os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 4096)
m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[:20] = b"written-before-stop\n"
open(sys.argv[1], "w").close()
time.sleep(300)' "$T/mapped" ) &
    HOLDER=$!
    for _ in $(seq 100); do [ -e "$T/mapped" ] && break; sleep 0.05; done
    check "busy:holder-ready" "the mapping process did not start" test -e "$T/mapped"
    stop "busy" MAINPID="$PID"
    assert_contains "busy:says-busy" "$OUT" "busy"
    kill "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null
    if start busy-restart; then
        assert_eq "busy:dirty-data-kept" "written-before-stop" "$(head -c 19 "$MP/dirty" 2>&1)"
        assert_eq "busy:file" "hello" "$(cat "$MP/file" 2>&1)"
        stop "busy-restart" MAINPID="$PID"
    fi
fi

# ------------------------------------------------------ kill -9: stop, then start again --
if start crash; then
    printf 'acked\n' >"$MP/acked"
    kill -KILL "$PID"
    wait_gone "$PID" 5
    # systemd knows the main process died: MAINPID is unset for ExecStop.
    stop "crash"
    if start crash-restart; then
        assert_eq "crash:acked-kept" "acked" "$(cat "$MP/acked" 2>&1)"
        # killed again, and no ExecStop this time: ExecStartPre removes the dead mount
        kill -KILL "$PID"
        wait_gone "$PID" 5
        dead_mount() { mp_mounted "$1" && ! stat "$1" >/dev/null 2>&1; }
        check "crash:mount-is-dead" "$MP is not a dead mount" dead_mount "$MP"
        if start crash-no-stop; then
            assert_eq "crash-no-stop:acked-kept" "acked" "$(cat "$MP/acked" 2>&1)"
            stop "crash-no-stop" MAINPID="$PID"
        fi
    fi
fi
# Without MAINPID, stop finds the daemon through its lock and still waits for it.
if start no-mainpid; then
    stop "no-mainpid"
fi

# ------------------------------------------------------ configuration errors --
# bad_conf LABEL EXPECTED-TEXT CONF-LINES...: ExecStartPre refuses it, nothing gets mounted
bad_conf() {
    local label=$1 want=$2; shift 2
    { for l in "$@"; do echo "$l"; done; } >"$ETC/$NAME.conf"
    run_unit pkramfs@.service ExecStartPre
    assert_ne "conf[$label]:refused" 0 "$RC"
    assert_contains "conf[$label]:says-why" "$OUT" "$want"
    check "conf[$label]:nothing-mounted" "$MP mounted" not_mounted "$MP"
}
dirs="DIR_OPTIONS=\"--shm-dir=$SHM --run-dir=$RUN\""
bad_conf "no-mountpoint" "MOUNTPOINT is not set" "OPTIONS=--size=1m" "$dirs"
bad_conf "relative" "not an absolute path" "MOUNTPOINT=mnt/x" "$dirs"
bad_conf "root" "not allowed" "MOUNTPOINT=/" "$dirs"
bad_conf "foreground" "Type=forking" "MOUNTPOINT=\"$MP\"" "OPTIONS=\"--size=1m -f\"" "$dirs"
bad_conf "pkram" "instance name" "MOUNTPOINT=\"$MP\"" "OPTIONS=--pkram=other" "$dirs"
bad_conf "o-pkram" "instance name" "MOUNTPOINT=\"$MP\"" "OPTIONS=\"-o size=1m,pkram=other\"" "$dirs"
bad_conf "run-dir-in-options" "DIR_OPTIONS" "MOUNTPOINT=\"$MP\"" "OPTIONS=--run-dir=$RUN"
bad_conf "o-shm-dir" "DIR_OPTIONS" "MOUNTPOINT=\"$MP\"" "OPTIONS=-oshm_dir=$SHM"
bad_conf "dir-options-other" "only --shm-dir" "MOUNTPOINT=\"$MP\"" "DIR_OPTIONS=--size=1m"
write_conf

check "end:nothing-mounted" "$MP still mounted" not_mounted "$MP"
# The file object tmpfs of an shm node stays mounted beside it, as its node file stays.
left_mounted=$(mounts_under_t | grep -v "^$SHM/\.[^/]*\.objects$")
check "end:no-mount-below-t" "still mounted: $left_mounted" test -z "$left_mounted"
finish
