#!/bin/bash
# export.sh -- pkramfs-ctl export/import: a rich tree (every file type, hard links, xattrs,
# sparse files of GiB size, fallocated space, 200 MiB of random data) exported, imported under
# a new name and mounted gives the same manifest (find -printf incl. inode numbers, link
# counts, blocks and times; sha256 of every file; getfattr -d); --verify; truncated,
# bit-flipped and foreign images refused with one line naming the byte offset, leaving no node
# (and no NAME.import-tmp) behind; an existing image file or node refused, --force replacing an
# unmounted node; ENOSPC while exporting into a small tmpfs (allocation up front, a write, and
# buffered pread/pwrite I/O) reported on one line with the partial file removed; export of a
# mounted shm node (preserve, export, unpreserve: writable again; a preserved one stays so);
# the daemon's node-fd command (lends a mounted kmod node's /dev/pkram descriptor to export,
# tests/vm l-export) refused for an shm node, active or preserved, with no descriptor sent;
# a mounted node refused by import; the progress bar on a terminal, nothing with --quiet.
. "$(dirname "$0")/lib.sh"
need_pk

need_ctl
M=$T/mnt
M2=$T/mnt2
IMG=$T/images           # on the disk of $T (tmpfs or not, it does not matter here)
mkdir -p "$M" "$M2" "$IMG"

# ctl ARGS...: stdout in $OUT, stderr in $T/ctl.err and $ERR, status in $RC
ctl() {
    OUT=$(timeout -k 2 120 "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$@" 2>"$T/ctl.err")
    RC=$?
    ERR=$(cat "$T/ctl.err")
}
# expect_fail NAME ARGS...: exit 1, one line on stderr starting "pkramfs-ctl: "
expect_fail() {
    local name=$1; shift
    ctl "$@"
    assert_eq "$name:exit-1" 1 "$RC"
    assert_one_line_err "$name:one-line" "$T/ctl.err"
    case $ERR in "pkramfs-ctl: "*) ;; *) fail "$name:prefix" "stderr: $ERR" ;; esac
    info "stderr: $ERR"
}
# nodes: what the shm dir holds (node files), one line
nodes() { ls -A "$SHM" | tr '\n' ' '; }

# Data of a file: its data ranges (SEEK_DATA/SEEK_HOLE) and the sha256 of each, so that GiB of
# holes cost nothing to compare and a hole that became data (or data a hole) shows.
cat >"$T/data.py" <<'EOF'
import hashlib, os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    size, off, out = os.fstat(fd).st_size, 0, []
    while off < size:
        try:
            start = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        h, pos = hashlib.sha256(), start
        while pos < end:
            chunk = os.pread(fd, min(1 << 20, end - pos), pos)
            if not chunk:
                break
            h.update(chunk)
            pos += len(chunk)
        out.append(f"{start}-{end}:{h.hexdigest()[:16]}")
        off = end
    os.close(fd)
    print(path, size, " ".join(out) or "-")
EOF
# manifest DIR: every entry's name, type, mode, links, size, blocks, owner, inode, times and
# symlink target; device numbers; the data of every regular file; every xattr
manifest() {
    (
        cd "$1" || exit 1
        find . -printf '%p %y %#m %n %s %b %U:%G %i %T@ %C@ %l\n' | LC_ALL=C sort
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 "$PY" "$T/data.py"
        getfattr -R -h -d -m - --absolute-names . 2>/dev/null | grep -v '^$' | LC_ALL=C sort
        find . \( -type c -o -type b \) -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %t:%T'
    )
}

# ------------------------------------------------------------- a rich tree --
T0=$(date +%s)
# Without passthrough: the tree's files in the node's arena, whose allocation (fallocated
# space, blocks) an export carries exactly; file objects carry their data, size and times but
# not space preallocated without data (tmpfs shows none of it): objects.sh exports those.
PKRAMFS_TUNE=passthrough=0 pk_start "$M" --size=1g src || { fail "start" "cannot mount"; finish; }
SRC_PID=$PK_PID
mkdir -p "$M/d/e/f" "$M/empty"
head -c 200M /dev/urandom >"$M/random"
echo hello >"$M/d/small"
printf 'x' >"$M/d/e/one-byte"
: >"$M/d/empty-file"
ln "$M/d/small" "$M/d/e/hard"
ln "$M/d/small" "$M/hard2"
ln -s d/small "$M/sym"
ln -s "$(printf 'long%.0s' $(seq 100))" "$M/d/longsym"   # 400 bytes: a block of its own
ln -s /nonexistent "$M/dangling"
mkfifo -m 0640 "$M/d/fifo"
mknod -m 0600 "$M/d/cdev" c 1 3
mknod -m 0660 "$M/d/bdev" b 7 42
"$PY" -c "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" "$M/d/sock"
truncate -s 3G "$M/sparse3g"
printf 'middle' | dd of="$M/sparse3g" bs=1 seek=$((1536 * 1024 * 1024)) conv=notrunc status=none
printf 'end' >>"$M/sparse3g"
truncate -s 1G "$M/d/sparse1g"
head -c 1M /dev/urandom | dd of="$M/d/sparse1g" bs=1M seek=100 conv=notrunc status=none
fallocate -l 3M "$M/fallocated"
: >"$M/keepsize"
fallocate -n -l 1M "$M/keepsize"
setfattr -n user.color -v blue "$M/d/small"
setfattr -n user.empty "$M/d"
setfattr -n user.bin -v 0x00ff00ff "$M/random"
setfattr -n trusted.t -v secret "$M/d/e"
chown 123:456 "$M/d/e/one-byte"
chmod 4755 "$M/d/e/one-byte"
chmod 1777 "$M/empty"
touch -d '2001-02-03 04:05:06.789' "$M/d/empty-file"
manifest "$M" >"$T/manifest.src"
pk_stop "$M" "$SRC_PID"
info "source tree: $(grep -c . "$T/manifest.src") manifest lines, $(($(date +%s) - T0)) s"

# ------------------------------------------------------------ export, verify --
ctl export src "$IMG/src.img" --verify
assert_eq "export:exit-0" 0 "$RC"
assert_contains "export:summary" "$OUT" "exported node 'src'"
assert_contains "export:verified" "$OUT" "verified"
info "$OUT"
check "export:file" "no image" test -s "$IMG/src.img"
check "export:no-stderr" "stderr: $ERR" test -z "$ERR"
ctl --json export src "$IMG/json.img"
assert_eq "export-json:exit-0" 0 "$RC"
case $OUT in '{"name":"src"'*'"image_bytes":'*) pass "export-json:fields" ;;
    *) fail "export-json:fields" "$OUT" ;; esac
rm -f "$IMG/json.img"
expect_fail "export-existing-file" export src "$IMG/src.img"
assert_contains "export-existing-file:says" "$ERR" "exists"
expect_fail "export-missing-node" export nosuch "$IMG/x.img"
check "export-missing-node:no-file" "a file appeared" test ! -e "$IMG/x.img"
expect_fail "export-missing-dir" export src "$T/no/such/dir/x.img"

# ------------------------------------------------- import, mount, compare --
before=$(nodes)
ctl import "$IMG/src.img" copy
assert_eq "import:exit-0" 0 "$RC"
assert_contains "import:summary" "$OUT" "imported node 'copy'"
info "$OUT"
ctl check copy
assert_eq "import:check-clean" 0 "$RC"
ctl status copy
assert_contains "import:state-clean" "$OUT" "clean"
if pk_start "$M2" copy; then
    manifest "$M2" >"$T/manifest.copy"
    assert_files_eq "import:same-manifest" "$T/manifest.src" "$T/manifest.copy"
    echo more >"$M2/new-file" && pass "import:writable" || fail "import:writable" "cannot write"
    pk_stop "$M2"
else
    fail "import:mount" "the imported node does not mount"
fi
expect_fail "import-existing-node" import "$IMG/src.img" copy
assert_contains "import-existing-node:says" "$ERR" "--force"
ctl import --force "$IMG/src.img" copy
assert_eq "import-force:exit-0" 0 "$RC"
if pk_start "$M2" copy; then
    check "import-force:replaced" "new-file survived --force" test ! -e "$M2/new-file"
    pk_stop "$M2"
fi
expect_fail "import-missing-file" import "$T/no-such-image" other
assert_contains "import-missing-file:says" "$ERR" "no such file"
ctl import "$IMG/src.img" .hidden
assert_eq "import-bad-name:exit-2" 2 "$RC"
assert_contains "import-bad-name:says" "$ERR" "invalid node name"
ctl import "$IMG/src.img" "$(printf 'n%.0s' $(seq 120))"
assert_eq "import-long-name:exit-2" 2 "$RC"
assert_contains "import-long-name:says" "$ERR" "too long for an import"

info "round trip done at $(($(date +%s) - T0)) s"
# ------------------------------------------- damaged images: nothing left --
# A smaller node than src, so that the damaged copies are cheap: a few records of data, a
# sparse file, a long symlink.
if pk_start "$M2" --size=64m dmg; then
    head -c 6M /dev/urandom >"$M2/data"
    truncate -s 100M "$M2/sparse"; echo end >>"$M2/sparse"
    ln -s "$(printf 'long%.0s' $(seq 100))" "$M2/longsym"
    pk_stop "$M2"
fi
ctl export dmg "$IMG/dmg.img"
assert_eq "damaged:export-exit-0" 0 "$RC"
size=$(stat -c %s "$IMG/dmg.img")
ckpt=$("$PY" -c "import struct,sys; h=open(sys.argv[1],'rb').read(240); print(struct.unpack_from('<Q', h, 88)[0])" "$IMG/dmg.img")
rec=$((240 + ckpt))
info "image: $size bytes, checkpoint $ckpt bytes, first extent record at $rec"
before=$(nodes)
# refused NAME FILE WHAT OFFSET: import refused, one line naming WHAT and "byte offset OFFSET",
# no node and no temporary file left
refused() {
    local name=$1 file=$2 what=$3 off=$4
    expect_fail "$name" import "$file" victim
    assert_contains "$name:what" "$ERR" "$what"
    [ -n "$off" ] && assert_contains "$name:offset" "$ERR" "byte offset $off"
    assert_contains "$name:nothing-imported" "$ERR" "nothing was imported"
    assert_eq "$name:no-node-left" "$before" "$(nodes)"
}
for cut in 0 1 100 239 240 $((rec - 1)) $((rec + 20)) $((rec + 5000)) $((size / 2)) $((size - 64)) $((size - 1)); do
    head -c "$cut" "$IMG/dmg.img" >"$IMG/cut.img"
    if [ "$cut" = 0 ]; then
        refused "truncated[$cut]" "$IMG/cut.img" "empty" ""
    else
        refused "truncated[$cut]" "$IMG/cut.img" "truncated" "$cut"
    fi
done
# flip FILE OFFSET: a copy of the image with one bit flipped at OFFSET
flip() {
    cp "$IMG/dmg.img" "$IMG/flip.img"
    "$PY" -c "
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x08]))
" "$IMG/flip.img" "$1"
}
flip 0;                refused "flipped[magic]" "$IMG/flip.img" "not a pkramfs export image" 0
flip 60;               refused "flipped[header]" "$IMG/flip.img" "header" 0
flip $((240 + 100));   refused "flipped[checkpoint]" "$IMG/flip.img" "checkpoint image" 240
flip $((rec + 10));    refused "flipped[extent-header]" "$IMG/flip.img" "extent record 0" "$rec"
flip $((rec + 40 + 77)); refused "flipped[extent-data]" "$IMG/flip.img" "fails its CRC" "$rec"
flip $((size / 2));    refused "flipped[extent-middle]" "$IMG/flip.img" "" ""
flip $((size - 40));   refused "flipped[trailer]" "$IMG/flip.img" "trailer" $((size - 64))
head -c 5M /dev/urandom >"$IMG/random.img"
refused "foreign[random]" "$IMG/random.img" "not a pkramfs export image" 0
: >"$IMG/empty.img"
refused "foreign[empty]" "$IMG/empty.img" "empty" ""
cp "$IMG/dmg.img" "$IMG/long.img"; echo junk >>"$IMG/long.img"
refused "foreign[trailing-bytes]" "$IMG/long.img" "follow the image" "$size"
ctl list
case $OUT in *victim*) fail "damaged:not-listed" "$OUT" ;; *) pass "damaged:not-listed" ;; esac
rm -f "$IMG"/cut.img "$IMG"/flip.img "$IMG"/random.img "$IMG"/long.img

# An interrupted import leaves nothing either: SIGINT until it exits (killed before it
# catches the signal, or stopped by it, never a node or a temporary file left).
env --default-signal=INT "$CTL" --shm-dir="$SHM" --run-dir="$RUN" import "$IMG/src.img" \
    interrupted >/dev/null 2>"$T/int.err" &
ipid=$!
for _ in $(seq 400); do
    sleep 0.02
    kill -INT "$ipid" 2>/dev/null || break
done
wait "$ipid"; irc=$?
info "interrupted import: exit $irc, $(cat "$T/int.err")"
if [ "$irc" = 0 ]; then
    skip "import-interrupted" "the import finished before the signal"
    ctl destroy interrupted
else
    [ "$irc" = 1 ] && assert_contains "import-interrupted:says" "$(cat "$T/int.err")" "interrupted"
    assert_eq "import-interrupted:no-node-left" "$before" "$(nodes)"
fi

info "damaged images done at $(($(date +%s) - T0)) s"
# ----------------------------------------------- ENOSPC on the target disk --
SMALL=$T/small
tmpfs_mount "$SMALL" size=8m
for io in "" nofalloc buffered,sync,nofalloc; do
    name="enospc[${io:-default}]"
    OUT=$(PKRAMFS_IMAGE_IO=$io timeout -k 2 120 "$CTL" --shm-dir="$SHM" --run-dir="$RUN" \
        export src "$SMALL/img" 2>"$T/ctl.err")
    RC=$?
    ERR=$(cat "$T/ctl.err")
    info "stderr: $ERR"
    assert_eq "$name:exit-1" 1 "$RC"
    assert_one_line_err "$name:one-line" "$T/ctl.err"
    assert_contains "$name:says" "$ERR" "No space left on device"
    [ -n "$io" ] && assert_contains "$name:offset" "$ERR" "byte offset"
    assert_contains "$name:removed" "$ERR" "partial file was removed"
    assert_eq "$name:nothing-left" "" "$(ls -A "$SMALL")"
done
# A node that does not fit its shm dir: refused on one line, nothing left there.
FULL=$T/fullshm
tmpfs_mount "$FULL" size=40m,mode=0700
OUT=$(timeout -k 2 120 "$CTL" --shm-dir="$FULL" --run-dir="$RUN" import "$IMG/src.img" big \
    2>"$T/ctl.err")
RC=$?
ERR=$(cat "$T/ctl.err")
info "stderr: $ERR"
assert_eq "import-enospc:exit-1" 1 "$RC"
assert_one_line_err "import-enospc:one-line" "$T/ctl.err"
assert_contains "import-enospc:says" "$ERR" "No space left on device"
assert_contains "import-enospc:nothing" "$ERR" "nothing was imported"
assert_eq "import-enospc:nothing-left" "" "$(ls -A "$FULL")"
umount "$FULL"

# --debug says which I/O it uses when O_DIRECT is off
PKRAMFS_IMAGE_IO=buffered "$CTL" --shm-dir="$SHM" --run-dir="$RUN" --debug export src \
    "$IMG/dbg.img" >/dev/null 2>"$T/dbg.err"
assert_contains "debug:names-buffered" "$(cat "$T/dbg.err")" "buffered I/O"
rm -f "$IMG/dbg.img"

# ------------------------------------------------ a mounted shm node --
pk_start "$M" src || { fail "mounted:start" "cannot mount"; finish; }
SRC_PID=$PK_PID
echo before >"$M/live"
manifest "$M" >"$T/manifest.live"
ctl export src "$IMG/live.img"
assert_eq "mounted-export:exit-0" 0 "$RC"
assert_contains "mounted-export:says-writable" "$OUT" "writable again"
info "$OUT"
if { echo after >"$M/after-export"; } 2>/dev/null; then pass "mounted-export:writable"
else fail "mounted-export:writable" "the mount stayed read-only"; fi
ctl status src
assert_contains "mounted-export:active" "$OUT" "active"
# node_fd: the reply to "node-fd" on src's control socket, then "fds=N" (descriptors with it)
node_fd() {
    [ -n "$PY" ] || { echo "(no python3)"; return; }
    "$PY" - "$RUN/src.sock" <<'PY' 2>&1
import array, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"node-fd\n")
data, fds = b"", 0
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(4 * 4))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += len(payload) // 4
    if not msg:
        break
    data += msg
print(data.decode().strip(), "fds=%d" % fds)
PY
}
if [ -n "$PY" ]; then
    REPLY_NODE_FD=$(node_fd)
    info "node-fd: $REPLY_NODE_FD"
    assert_contains "node-fd-shm:refused" "$REPLY_NODE_FD" '"ok":false'
    assert_contains "node-fd-shm:says" "$REPLY_NODE_FD" "not a pkram.ko node"
    assert_contains "node-fd-shm:no-fd" "$REPLY_NODE_FD" "fds=0"
else
    skip "node-fd-shm" "python3 not available"
fi
expect_fail "mounted-import-refused" import --force "$IMG/live.img" src
assert_contains "mounted-import-refused:busy" "$ERR" "busy"
ctl preserve src
if [ -n "$PY" ]; then
    REPLY_NODE_FD=$(node_fd)
    assert_contains "node-fd-shm-preserved:refused" "$REPLY_NODE_FD" "not a pkram.ko node"
    assert_contains "node-fd-shm-preserved:no-fd" "$REPLY_NODE_FD" "fds=0"
fi
ctl export src "$IMG/preserved.img"
assert_eq "preserved-export:exit-0" 0 "$RC"
assert_contains "preserved-export:stays" "$OUT" "stays preserved"
if { echo x >"$M/while-preserved"; } 2>/dev/null; then
    fail "preserved-export:still-frozen" "writable after exporting a preserved node"
else pass "preserved-export:still-frozen"; fi
ctl unpreserve src
pk_stop "$M" "$SRC_PID"
ctl import "$IMG/live.img" live
assert_eq "mounted-import:exit-0" 0 "$RC"
if pk_start "$M2" live; then
    manifest "$M2" >"$T/manifest.live2"
    assert_files_eq "mounted-import:same-manifest" "$T/manifest.live" "$T/manifest.live2"
    pk_stop "$M2"
fi
rm -f "$IMG/preserved.img"

info "mounted node done at $(($(date +%s) - T0)) s"
# ---------------------------------------------------- progress on a tty --
script -qec "$CTL --shm-dir=$SHM --run-dir=$RUN export src $IMG/tty.img" /dev/null >"$T/tty.out"
assert_contains "progress:percent" "$(cat "$T/tty.out")" "%"
assert_contains "progress:rate" "$(cat "$T/tty.out")" "MiB/s"
assert_contains "progress:eta" "$(cat "$T/tty.out")" "ETA"
rm -f "$IMG/tty.img"
script -qec "$CTL --shm-dir=$SHM --run-dir=$RUN export src $IMG/tty.img --quiet" /dev/null >"$T/tty.out"
assert_eq "progress:quiet" "" "$(tr -d '\r\n' <"$T/tty.out")"
check "progress:quiet-exported" "no image" test -s "$IMG/tty.img"
rm -f "$IMG/tty.img"
ctl export src "$IMG/pipe.img"
case $(cat "$T/ctl.err") in *ETA*) fail "progress:not-on-pipe" "progress on a pipe" ;;
    *) pass "progress:not-on-pipe" ;; esac

finish
