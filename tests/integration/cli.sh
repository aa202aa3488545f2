#!/bin/bash
# cli.sh -- pkramfs-fuse command line: errors, option forms, mount(8)/fstab,
# root attributes, node lock, signals, quietness.
. "$(dirname "$0")/lib.sh"
need_pk

M=$T/mnt
mkdir -p "$M"

# nothing_left NAME: no mount below $T, shm-dir and run-dir still empty, no
# stray daemon for $M
nothing_left() {
    local name=$1 left
    left=$(mounts_under_t)
    [ -n "$left" ] && { fail "$name:nothing-mounted" "still mounted: $left"; umount -l $left 2>/dev/null; return; }
    left=$(cd "$T" && find shm run -mindepth 1 2>/dev/null | head -5)
    [ -n "$left" ] && { fail "$name:nothing-created" "files appeared: $left"; clear_node_dirs; return; }
    pass "$name:nothing-left"
}

# expect_error NAME ARGS...: must exit non-zero quickly, one line on stderr,
# nothing mounted or created.  The private shm/run dirs are always passed.
expect_error() {
    local name=$1 rc; shift
    timeout -k 2 10 "$PK" --shm-dir="$SHM" --run-dir="$RUN" "$@" >"$T/err.out" 2>"$T/err.err"
    rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        fail "$name:exit" "still running after 10 s (args: $*)"
    elif [ "$rc" = 0 ]; then
        fail "$name:exit" "exit status 0 (args: $*)"
    else
        pass "$name:exit"
    fi
    assert_one_line_err "$name:one-line" "$T/err.err"
    for pid in $(pids_of_mount "$M"); do kill -KILL "$pid"; done
    nothing_left "$name"
    ERRMSG=$(cat "$T/err.err")
    info "stderr: $ERRMSG"
}

# ------------------------------------------------------------------ --help --
out=$(timeout 10 "$PK" --help 2>&1); rc=$?
assert_eq "help:exit-0" 0 "$rc"
check "help:prints-usage" "--help printed nothing mentioning MOUNTPOINT/usage" \
    grep -qiE 'usage|mountpoint' <<<"$out"
nothing_left "help"

# ---------------------------------------------------------- unknown option --
expect_error "unknown-option" --no-such-option "$M"
assert_contains "unknown-option:names-it" "$ERRMSG" "no-such-option"
expect_error "unknown-o-option" -o no_such_opt=1 "$M"

# ----------------------------------------------------------------- bad size --
for s in abc 10q 1.5g ""; do
    expect_error "bad-size[$s]" --size="$s" "$M"
done
expect_error "bad-size-o" -o size=xyz "$M"
assert_contains "bad-size-o:names-it" "$ERRMSG" "xyz"
expect_error "bad-nr-inodes" --nr-inodes=lots "$M"
expect_error "bad-mode" --mode=999 "$M"
expect_error "bad-backend" --backend=disk "$M"
expect_error "kmod-without-name" --backend=kmod "$M"
assert_contains "kmod-without-name:says-so" "$ERRMSG" "needs a node name"
# The host never has pkram.ko (only the QEMU guests of tools/vm-test load it).
if [ ! -e /dev/pkram ]; then
    expect_error "kmod-without-module" --backend=kmod --pkram=kmodnode "$M"
    assert_contains "kmod-without-module:names-it" "$ERRMSG" "pkram.ko is not loaded"
fi

# ------------------------------------------------------- mountpoint errors --
expect_error "no-mountpoint"
expect_error "missing-mountpoint" "$T/does/not/exist"
assert_contains "missing-mountpoint:names-it" "$ERRMSG" "$T/does/not/exist"
: >"$T/regular-file"
expect_error "file-mountpoint" "$T/regular-file"
assert_contains "file-mountpoint:names-it" "$ERRMSG" "$T/regular-file"
rm -f "$T/regular-file"

# ------------------------------------------------------------- node names --
long128=$(printf 'n%.0s' $(seq 128))
long127=$(printf 'n%.0s' $(seq 127))
for n in '../x' 'a/b' '.hidden' '..' '.' 'a b' 'a:b' 'é' "$long128"; do
    label=${n:0:20}; expect_error "bad-name[${label// /_}]" --pkram="$n" "$M"
done
expect_error "bad-name-empty" --pkram= "$M"
expect_error "bad-name-o[../x]" -o pkram=../x "$M"
expect_error "bad-name-positional[a/b]" a/b "$M"
expect_error "bad-name-positional[../x]" ../x "$M"
expect_error "bad-name-positional-empty" "" "$M"
[ -e "$T/x" ] || [ -e "$SHM/../x" ] && fail "bad-name:escape" "'../x' created a file outside shm-dir"

for n in "$long127" 'Az09._-x'; do
    if pk_start "$M" --pkram="$n"; then
        pass "good-name[${n:0:20}]:mounts"
        check "good-name[${n:0:20}]:node-file" "no file $SHM/$n" test -f "$SHM/$n"
        pk_stop "$M"
        rm -f "${SHM:?}/$n"; rm -rf "${RUN:?}"/*
    else
        fail "good-name[${n:0:20}]:mounts" "valid name refused"
    fi
done

# -------------------------------------------- backends, positional name --
if pk_start "$M" nodepos; then
    pass "positional-name:mounts"
    if [ -f "$SHM/nodepos" ]; then
        pass "positional-name:node-file"
        echo data >"$M/f"; sync "$M/f"
        sz=$(stat -c %s "$SHM/nodepos")
        check "shm-node:2MiB-steps" "node file size $sz is not a non-zero multiple of 2 MiB" \
            test "$sz" -gt 0 -a $((sz % 2097152)) -eq 0
        head -c $((12 << 20)) /dev/urandom >"$M/big"; sync "$M/big"
        sz2=$(stat -c %s "$SHM/nodepos")
        check "shm-node:grows" "node file did not grow past 12 MiB after writing 12 MiB ($sz -> $sz2)" \
            test "$sz2" -ge $((12 << 20)) -a $((sz2 % 2097152)) -eq 0
    else
        fail "positional-name:node-file" "no $SHM/nodepos (shm-dir: $(ls -A "$SHM"))"
    fi
    pk_stop "$M"; rc=$?
    assert_eq "positional-name:umount-exit-0" 0 "$rc"
    clear_node_dirs
else
    fail "positional-name:mounts" "pkramfs-fuse NAME MNT did not mount"
fi

if pk_start "$M"; then
    echo x >"$M/f"
    assert_eq "auto-backend-without-name:no-node-file" "" "$(ls -A "$SHM")"
    pk_stop "$M"
else fail "auto-backend-without-name:mounts" "did not mount"; fi
if pk_start "$M" --backend=anon; then
    assert_eq "backend-anon:no-node-file" "" "$(ls -A "$SHM")"
    pk_stop "$M"
else fail "backend-anon:mounts" "did not mount"; fi
if pk_start "$M" -o pkram=onode; then
    check "o-pkram:node-file" "no $SHM/onode" test -f "$SHM/onode"
    pk_stop "$M"; clear_node_dirs
else fail "o-pkram:mounts" "-o pkram=onode did not mount"; fi
if pk_start "$M" --pkram=shmnode --backend=shm; then
    check "backend-shm:node-file" "no $SHM/shmnode" test -f "$SHM/shmnode"
    pk_stop "$M"; clear_node_dirs
else fail "backend-shm:mounts" "did not mount"; fi

# ------------------------------------------------------ root dir attributes --
TM=$T/tmpfs
root_attrs() { stat -c '%a %u %g' "$1"; }
if pk_start "$M"; then
    tmpfs_mount "$TM"
    assert_eq "root-attrs:default" "$(root_attrs "$TM")" "$(root_attrs "$M")"
    umount "$TM"; pk_stop "$M"
fi
if pk_start "$M" --mode=0750 --uid=1234 --gid=4321; then
    assert_eq "root-attrs:long-options" "750 1234 4321" "$(root_attrs "$M")"
    pk_stop "$M"
fi
if pk_start "$M" --mode=1777 --uid=0 --gid=0; then
    assert_eq "root-attrs:sticky" "1777 0 0" "$(root_attrs "$M")"
    pk_stop "$M"
fi
if pk_start "$M" -o mode=700,uid=5,gid=6; then
    tmpfs_mount "$TM" mode=700,uid=5,gid=6
    assert_eq "root-attrs:o-options" "$(root_attrs "$TM")" "$(root_attrs "$M")"
    umount "$TM"; pk_stop "$M"
fi

# ----------------------------------------------- -o options, allow_other --
if pk_start "$M" -o size=64m,nr_inodes=1000,allow_other; then
    pass "o-options:mount"
    read -r bs blocks files <<<"$(stat -f -c '%S %b %c' "$M")"
    assert_eq "o-options:size" $((64 << 20)) $((bs * blocks))
    assert_eq "o-options:nr_inodes" 1000 "$files"
    opts=$(mount_opts "$M")
    assert_contains "mount:default_permissions" "$opts" default_permissions
    assert_contains "mount:allow_other" "$opts" allow_other
    check "allow_other:nobody-can-stat" "user nobody cannot stat the root" quietly \
        setpriv --reuid=65534 --regid=65534 --clear-groups stat "$M/"
    info "fuse mount type: $(mount_fstype "$M"), options: $opts"
    pk_stop "$M"
else
    fail "o-options:mount" "-o size=64m,nr_inodes=1000,allow_other did not mount"
fi

# --------------------------------------------- second daemon on same node --
M2=$T/mnt2
mkdir -p "$M2"
if pk_start "$M" --pkram=busy; then
    apid=$PK_PID
    timeout -k 2 10 "$PK" -f --shm-dir="$SHM" --run-dir="$RUN" --pkram=busy "$M2" \
        >"$T/busy.out" 2>"$T/busy.err"
    rc=$?
    if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
        fail "node-busy:refused" "second daemon on node 'busy' was not refused (exit $rc)"
    else
        pass "node-busy:refused"
    fi
    assert_one_line_err "node-busy:one-line" "$T/busy.err"
    msg=$(cat "$T/busy.err")
    assert_contains "node-busy:names-node" "$msg" busy
    check "node-busy:names-pid" "pid $apid not in: $msg" grep -qw -- "$apid" <<<"$msg"
    check "node-busy:not-mounted" "second mountpoint is mounted" eval '! is_mounted "$M2"'
    umount -l "$M2" 2>/dev/null
    echo still-here >"$M/f" && assert_eq "node-busy:first-still-works" still-here "$(cat "$M/f")"
    # a daemon that died hard must not leave the node locked
    kill -KILL "$apid"; wait "$apid" 2>/dev/null
    umount -l "$M" 2>/dev/null
    if pk_start "$M2" --pkram=busy; then
        pass "node-busy:stale-lock-after-SIGKILL"
        pk_stop "$M2"
    else
        fail "node-busy:stale-lock-after-SIGKILL" "node 'busy' still refused after its daemon was SIGKILLed"
    fi
    clear_node_dirs
fi

# ------------------------------------------------------------------ signals --
for sig in TERM INT; do
    if pk_start "$M"; then
        echo x >"$M/f"
        kill -"$sig" "$PK_PID"
        if wait_gone "$PK_PID" 10; then
            wait "$PK_PID"; rc=$?
            assert_eq "SIG$sig:exit-0" 0 "$rc"
        else
            fail "SIG$sig:exit-0" "daemon still running 10 s after SIG$sig"
            kill -KILL "$PK_PID"; wait "$PK_PID" 2>/dev/null
        fi
        check "SIG$sig:unmounted" "$M still in mountinfo" eval '! is_mounted "$M"'
        umount -l "$M" 2>/dev/null
        assert_eq "SIG$sig:quiet" "" "$(cat "$PK_ERR")"
    else
        fail "SIG$sig:mount" "did not mount"
    fi
done

# A shared mmap write stays in the kernel's page cache until writeback (or munmap): SIGTERM while
# it is still mapped must have it written back to the daemon before the session ends.
if pk_start "$M" --pkram=sigmmap; then
    rm -f "$T/mapped"
    python3 - "$M/m" "$T/mapped" <<'PY' &
import mmap, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 8192)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED)
os.close(fd)  # closing flushes dirty pages: close first, then dirty them
m[0:11] = b"dirty-pages"
open(sys.argv[2], "w").close()
time.sleep(60)  # keeps the dirty mapping until killed
PY
    holder=$!
    for _ in $(seq 100); do [ -e "$T/mapped" ] && break; sleep 0.1; done
    kill -TERM "$PK_PID"
    wait_gone "$PK_PID" 10 || kill -KILL "$PK_PID"
    wait "$PK_PID" 2>/dev/null
    kill -KILL "$holder"; wait "$holder" 2>/dev/null
    umount -l "$M" 2>/dev/null
    if pk_start "$M" --pkram=sigmmap; then
        assert_eq "SIGTERM:flushes-mmap" "dirty-pages" "$(head -c 11 "$M/m")"
        pk_stop "$M"
    else
        fail "SIGTERM:flushes-mmap" "node did not mount again"
    fi
    clear_node_dirs
else
    fail "SIGTERM:flushes-mmap" "did not mount"
fi

# --------------------------------------------------- daemonizing (no -f) --
env --default-signal=INT,TERM "$PK" --shm-dir="$SHM" --run-dir="$RUN" "$M" >"$T/bg.out" 2>"$T/bg.err"
rc=$?
assert_eq "daemonize:exit-0" 0 "$rc"
check "daemonize:mounted-on-return" "not mounted when the launcher returned" is_fuse_mounted "$M"
assert_eq "daemonize:quiet" "" "$(cat "$T/bg.err" "$T/bg.out")"
dpid=$(pids_of_mount "$M" | head -1)
if [ -n "$dpid" ]; then
    PKIT_PIDS+=("$dpid")
    echo hi >"$M/f" && assert_eq "daemonize:works" hi "$(cat "$M/f")"
    kill -TERM "$dpid"
    check "daemonize:SIGTERM-exits" "daemon $dpid still alive 10 s after SIGTERM" wait_gone "$dpid" 10
    check "daemonize:SIGTERM-unmounted" "$M still mounted" eval '! is_mounted "$M"'
else
    fail "daemonize:find-daemon" "no process with $M on its command line"
fi
umount -l "$M" 2>/dev/null

# -------------------------------------------------------- quiet / --debug --
if pk_start "$M" --pkram=quiet; then
    mkdir "$M/d"; echo x >"$M/d/f"; cat "$M/d/f" >/dev/null; rm -r "$M/d"
    pk_stop "$M"
    assert_eq "quiet:stderr-empty" "" "$(cat "$PK_ERR")"
    assert_eq "quiet:stdout-empty" "" "$(cat "$PK_OUT")"
    clear_node_dirs
fi
if pk_start "$M" --debug; then
    mkdir "$M/d"; echo x >"$M/d/f"; cat "$M/d/f" >/dev/null
    pk_stop "$M"
    check "debug:verbose" "--debug printed nothing" test -s "$PK_ERR" -o -s "$PK_OUT"
fi

# --------------------------------------------------- mount(8) and fstab --
export PATH=$PKRAMFS_BIN:$PATH
use_mount_helpers || fail "mount-t:setup" "could not put pkramfs-fuse in the default PATH of mount helpers"
mount_t_check() {  # NAME MNT NODE SIZE INODES
    local name=$1 mnt=$2 node=$3 pid bs blocks files
    if ! is_fuse_mounted "$mnt"; then fail "$name:mounted" "not mounted"; return; fi
    pass "$name:mounted"
    read -r bs blocks files <<<"$(stat -f -c '%S %b %c' "$mnt")"
    assert_eq "$name:size" "$4" $((bs * blocks))
    assert_eq "$name:nr_inodes" "$5" "$files"
    check "$name:node-file" "no /dev/shm/pkramfs/$node" test -f "/dev/shm/pkramfs/$node"
    echo ok >"$mnt/f" && assert_eq "$name:io" ok "$(cat "$mnt/f")"
    pid=$(pids_of_mount "$mnt" | head -1)
    [ -n "$pid" ] && PKIT_PIDS+=("$pid")
    umount "$mnt"; check "$name:umount" "umount failed" eval '! is_mounted "$mnt"'
    if [ -n "$pid" ]; then
        check "$name:daemon-exits" "daemon $pid alive 10 s after umount" wait_gone "$pid" 10
    else
        fail "$name:daemon-found" "no daemon with $mnt on its command line"
    fi
}
mount -t fuse.pkramfs-fuse -o size=1g,nr_inodes=100k mnode "$M" >"$T/mt.out" 2>"$T/mt.err"
rc=$?
assert_eq "mount-t:exit-0" 0 "$rc"
[ "$rc" = 0 ] || details "$T/mt.err"
assert_eq "mount-t:quiet" "" "$(cat "$T/mt.err")"
mount_t_check mount-t "$M" mnode $((1 << 30)) 102400

printf '# pkit temporary fstab\nfnode %s fuse.pkramfs-fuse size=256m,nr_inodes=5000,mode=0750,uid=7,gid=8 0 0\n' \
    "$M2" >"$T/fstab"
mount -T "$T/fstab" "$M2" >"$T/fs.out" 2>"$T/fs.err"
rc=$?
assert_eq "fstab:exit-0" 0 "$rc"
[ "$rc" = 0 ] || details "$T/fs.err"
is_fuse_mounted "$M2" && assert_eq "fstab:root-attrs" "750 7 8" "$(root_attrs "$M2")"
mount_t_check fstab "$M2" fnode $((256 << 20)) 5000

# by node name (first fstab field) as well
mount --fstab "$T/fstab" fnode >"$T/fs.err" 2>&1
rc=$?
assert_eq "fstab-by-name:exit-0" 0 "$rc"
[ "$rc" = 0 ] || details "$T/fs.err"
# same node is remembered: the file written above is still there (shm backend)
if is_fuse_mounted "$M2"; then
    info "fstab remount of node fnode: f=$(cat "$M2/f" 2>&1)"
    pid=$(pids_of_mount "$M2" | head -1); [ -n "$pid" ] && PKIT_PIDS+=("$pid")
    umount "$M2"; [ -n "$pid" ] && wait_gone "$pid" 10
fi
unuse_mount_helpers

nothing_left "end"
finish
