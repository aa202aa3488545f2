#!/bin/bash
# tmpfile.sh -- O_TMPFILE (FUSE_TMPFILE, which the daemon serves though libfuse 3.14 does not
# know it: fuse/device_io.h), side by side with a kernel tmpfs:
#  - tmpfile_probe.py's transcript equal to tmpfs's, once per --cache mode, as root and as user
#    nobody on an -o allow_other mount: mode, owner, umask, setgid directories, nlink 0 and no
#    entry, directory times untouched, write/read/mmap, fchmod/fchown/fallocate/xattrs,
#    linkat(AT_EMPTY_PATH) and linkat(/proc/self/fd/N, AT_SYMLINK_FOLLOW) and a second name,
#    O_EXCL (never linkable: ENOENT), linked and unlinked again (ENOENT), closed but still
#    reachable through an O_PATH descriptor (linkable, data kept), in a removed directory,
#    ENOTDIR/ENOENT/EINVAL/EISDIR/EACCES cases, statfs while open and after close;
#  - the nr_inodes limit: ENOSPC as on tmpfs, and the first link of a tmpfile takes no slot;
#  - persistence: a tmpfile linked after half its data was written comes back whole after
#    kill -9 (also when a checkpoint (preserve) held it still unnamed) and after a clean
#    unmount; one never linked is gone, with its blocks free (data in use = the linked file's)
#    and `pkramfs-ctl check` clean.
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl
PROBE="$PKIT_LIBDIR/tmpfile_probe.py"
ctl() { "$CTL" --backend=shm --shm-dir="$SHM" --run-dir="$RUN" "$@"; }
M=$T/mnt
TM=$T/tmpfs

# transcript WHERE OUT [--direct]: the root and the nobody run of the probe on mount WHERE
transcript() {
    local where=$1 out=$2
    shift 2
    chmod 755 "$where"
    {
        "$PY" "$PROBE" root "$where" "$@"
        setpriv --reuid=nobody --regid=nogroup --clear-groups "$PY" "$PROBE" nobody "$where"
    } >"$out" 2>&1
}

for direct in "" --direct; do
    tmpfs_mount "$TM" size=64m,huge=never
    transcript "$TM" "$T/tmpfs${direct}.out" $direct
    umount "$TM"
done
# The oracle itself: O_TMPFILE works there, and the probe sees the rules it checks.
assert_contains "oracle:linkat" "$(cat "$T/tmpfs.out")" "linkat-empty-path: ok"
assert_contains "oracle:excl-enoent" "$(cat "$T/tmpfs.out")" "excl-linkat-empty-path: ENOENT"

for mode in auto writeback direct; do
    direct=""
    [ "$mode" = direct ] && direct=--direct
    if ! pk_start "$M" --pkram="tf-$mode" --size=64m --cache="$mode" -o allow_other; then
        fail "probe:$mode:mount" "did not mount"
        continue
    fi
    transcript "$M" "$T/pk-$mode.out" $direct
    cp "$T/tmpfs${direct}.out" "$T/oracle-$mode.out"
    if [ "$mode" = writeback ]; then
        # The kernel keeps the attributes of a file written through its writeback cache
        # (st_blocks as well) and does not ask the daemon again after fsync; any file shows
        # that, a tmpfile no differently.
        sed -i 's/ blocks=[0-9]*//g' "$T/oracle-$mode.out" "$T/pk-$mode.out"
    fi
    assert_files_eq "probe:$mode:as-tmpfs" "$T/oracle-$mode.out" "$T/pk-$mode.out"
    pk_stop "$M" || fail "probe:$mode:unmount" "the daemon did not exit cleanly"
    check "probe:$mode:check-clean" "pkramfs-ctl check: $(ctl check "tf-$mode" 2>&1 | head -3)" \
        quietly ctl check "tf-$mode"
done

# ---------------------------------------------------------------- nr_inodes limit --
# limit_run MNT: fill the inode limit of 4 (the root and two files take 3), then: a tmpfile
# takes the last slot, another one is ENOSPC, linking the first one needs no slot of its own.
limit_run() {
    "$PY" - "$1" <<'EOF'
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
out = []
def step(name, fn):
    try:
        r = fn()
        out.append(f"{name}: ok" + ("" if r is None else f" {r}"))
    except OSError as e:
        out.append(f"{name}: {os.strerror(e.errno)}")
for n in ("a", "b"):
    open(n, "w").close()
fd = os.open(".", os.O_TMPFILE | os.O_RDWR, 0o600)
step("ffree-with-tmpfile", lambda: os.statvfs(".").f_ffree)
step("second-tmpfile", lambda: os.open(".", os.O_TMPFILE | os.O_RDWR, 0o600))
step("create", lambda: os.open("c", os.O_CREAT | os.O_RDWR, 0o600))
def link():
    if libc.linkat(fd, b"", -100, b"named", 0x1000) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return os.statvfs(".").f_ffree
step("link-first-name", link)
step("hard-link", lambda: os.link("named", "second"))
os.close(fd)
os.unlink("named")
time.sleep(0.2)
step("ffree-after-unlink", lambda: os.statvfs(".").f_ffree)
print("\n".join(out))
EOF
}
tmpfs_mount "$TM" size=16m,nr_inodes=4
limit_run "$TM" >"$T/limit.tmpfs" 2>&1
umount "$TM"
if pk_start "$M" --size=16m --nr-inodes=4; then
    limit_run "$M" >"$T/limit.pk" 2>&1
    assert_files_eq "nr-inodes:as-tmpfs" "$T/limit.tmpfs" "$T/limit.pk"
    pk_stop "$M"
else
    fail "nr-inodes:mount" "did not mount"
fi

# ------------------------------------------------------------------ persistence --
SIZE=$((3 * 1048576 + 123))
# expected bytes of the linked file (tmpfile_probe.py keep's pattern)
"$PY" -c 'import sys; n = int(sys.argv[1]); sys.stdout.buffer.write((bytes(range(256)) * (n // 256 + 1))[:n])' \
    "$SIZE" >"$T/kept.expected"
KEPT_BLOCKS=$(((SIZE + 4095) / 4096))

# hold NAME: start tmpfile_probe.py keep in $M as a coprocess; waits until it is ready
hold() {
    coproc HOLD { "$PY" "$PROBE" keep "$M" "$1" "$SIZE" 2>&1; }
    local line=""
    read -r -t 30 line <&"${HOLD[0]}"
    [ "$line" = ready ] || { echo "    keep: $line"; return 1; }
}
# release_hold: close the holder's stdin (it closes its files and exits) and reap it
release_hold() {
    local fd=${HOLD[1]:-}
    [ -n "$fd" ] && eval "exec $fd>&-"
    wait "$HOLD_PID" 2>/dev/null
}
# verify LABEL NODE NAME: unmounted node: check clean; remounted: NAME as expected and alone,
# the data in use exactly NAME's blocks
verify() {
    local label=$1 node=$2 name=$3
    check "$label:check-clean" "pkramfs-ctl check: $(ctl check "$node" 2>&1 | head -3)" \
        quietly ctl check "$node"
    pk_start "$M" --pkram="$node" || { fail "$label:remount" "did not mount again"; return; }
    check "$label:linked-content" "$name differs from what was written" \
        cmp -s "$T/kept.expected" "$M/$name"
    assert_eq "$label:linked-nlink-mode" "1 640" "$(stat -c '%h %a' "$M/$name")"
    assert_eq "$label:unnamed-gone" "$name" "$(ls -A "$M")"
    ctl --json status "$node" >"$T/status.json" 2>&1
    assert_eq "$label:data-in-use" $((KEPT_BLOCKS * 4096)) \
        "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["data_bytes"])' "$T/status.json")"
    pk_stop "$M"
}

# kill -9 with both tmpfiles open: replay of TMPFILE, INODE, LINK records
pk_start "$M" --pkram=tfk --size=64m || fail "kill9:mount" "did not mount"
if hold kept; then
    kill -KILL "$PK_PID"; wait "$PK_PID" 2>/dev/null
    release_hold
    umount -l "$M" 2>/dev/null
    verify kill9 tfk kept
else
    fail "kill9:hold" "the tmpfiles were not made"
    release_hold
    pk_stop "$M"
fi

# a checkpoint (preserve) while both are open and unnamed, linked afterwards, then kill -9
pk_start "$M" --pkram=tfc --size=64m || fail "ckpt:mount" "did not mount"
coproc HOLD { "$PY" "$PROBE" keep "$M" late "$SIZE" --late 2>&1; }
read -r -t 30 line <&"${HOLD[0]}"
if [ "$line" = ready ]; then
    ctl preserve tfc >/dev/null 2>&1 || fail "ckpt:preserve" "pkramfs-ctl preserve failed"
    ctl unpreserve tfc >/dev/null 2>&1 || fail "ckpt:unpreserve" "pkramfs-ctl unpreserve failed"
    echo >&"${HOLD[1]}"
    read -r -t 30 line <&"${HOLD[0]}"
    assert_eq "ckpt:linked-after-checkpoint" linked "$line"
    kill -KILL "$PK_PID"; wait "$PK_PID" 2>/dev/null
    release_hold
    umount -l "$M" 2>/dev/null
    verify ckpt tfc late
else
    fail "ckpt:hold" "the tmpfiles were not made: $line"
    release_hold
    pk_stop "$M"
fi

# clean unmount after both are closed (the unnamed one's RELEASE, then a checkpoint)
pk_start "$M" --pkram=tfu --size=64m || fail "unmount:mount" "did not mount"
if hold kept; then
    release_hold
    pk_stop "$M" || fail "unmount:stop" "the daemon did not exit cleanly"
    verify unmount tfu kept
else
    fail "unmount:hold" "the tmpfiles were not made"
    release_hold
    pk_stop "$M"
fi
finish
