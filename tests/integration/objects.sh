#!/usr/bin/env bash
# objects.sh -- file objects of shm nodes (storage/object_store.h, docs/format.md "File
# objects"): a regular file made on a kernel with FUSE passthrough (6.9+) keeps its data in a
# file of the node's object tmpfs, mounted beside the node at $SHM/.NAME.objects, which the
# kernel reads, writes and maps itself.
# Checks:
#  - passthrough: a new file is an object (the object file has its size); a store through a
#    shared mapping is in the object at once, with no msync (one copy: the kernel maps the
#    object's pages); a write(2) too;
#  - crash: after kill -9 of the holder and the serving process (the mount ends), what was
#    written through the mapping without msync is there after a new mount (the arena path
#    would lose it: its pages were the FUSE page cache's);
#  - takeover: a file open passthrough while its serving process is killed (twice) can be
#    opened again, and written through both descriptors (the new process reuses the backing
#    id: the kernel refuses a second backing file for one inode, EBUSY/EIO);
#  - space: size= holds for writes the daemon never sees (ENOSPC from the object tmpfs, df
#    full); removing the file gives the space back;
#  - sweep: a file unlinked while open, the daemon killed: its object is gone after the next
#    mount; so is an object no file has;
#  - mixed: files of a node made without passthrough (PKRAMFS_TUNE=passthrough=0) stay in the
#    arena and read back after a mount with it, beside new object files; check is clean;
#  - export-import: an export of a node with objects imports with the same data, sizes and
#    mtimes (into the new node's arena), check clean; also of the node while mounted (it is
#    writable again after);
#  - lost: the object tmpfs unmounted behind the node's back (its mount namespace ended): the
#    mount is refused with one line naming the directory, check names the problem, the node
#    file is left byte for byte;
#  - destroy: removes the object tmpfs too; a new node of the same name starts empty.
# pkit-timeout: 180
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl

ctl() { "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$@"; }
M=$T/m
OBJ=$SHM/.obj.objects

if [ "$(uname -r | awk -F. '{ print ($1 > 6 || ($1 == 6 && $2 >= 9)) }')" != 1 ]; then
    skip "objects" "kernel $(uname -r) has no FUSE passthrough (6.9+): files stay in the arena; the VM suite covers 6.12 and sid"
    finish
fi

ino_of() { stat -c %i "$1"; }
# kill_all: the holder and its serving process, as a crash of both
kill_all() {
    local srv
    srv=$(serving_pid)
    kill -KILL "$PK_PID" "$srv" 2>/dev/null
    wait_gone "$PK_PID" 5
    umount -l "$M" 2>/dev/null
}

# passthrough
if ! pk_start "$M" --pkram=obj --size=64m; then
    fail "objects:mount" "see above"
    finish
fi
"$PY" - "$M/map" <<'PYEOF'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 1 << 20)
m = mmap.mmap(fd, 1 << 20)
m[0:6] = b"mapped"
m[(1 << 20) - 4:] = b"tail"
m.close()  # no msync
os.close(fd)
PYEOF
ino=$(ino_of "$M/map")
assert_eq "objects:passthrough:object-size" 1048576 "$(stat -c %s "$OBJ/$ino" 2>&1)"
assert_eq "objects:passthrough:mapped-in-object" mapped "$(head -c 6 "$OBJ/$ino" 2>&1)"
echo written >"$M/w"
assert_eq "objects:passthrough:write-in-object" written "$(cat "$OBJ/$(ino_of "$M/w")" 2>&1)"
# A store through a mapping that stays mapped is in the object while the process still runs.
"$PY" - "$M/live" "$OBJ" <<'PYEOF' >"$T/live.out" 2>&1
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 8192)
m = mmap.mmap(fd, 8192)
m[4096:4100] = b"live"
obj = os.path.join(sys.argv[2], str(os.fstat(fd).st_ino))
with open(obj, "rb") as f:
    f.seek(4096)
    print(f.read(4).decode())
PYEOF
assert_eq "objects:passthrough:one-copy" live "$(cat "$T/live.out")"

# crash: mapped stores without msync survive kill -9 of everything
"$PY" - "$M/crash" <<'PYEOF'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 4 << 20)
m = mmap.mmap(fd, 4 << 20)
for i in range(0, 4 << 20, 4096):
    m[i:i + 8] = b"%08d" % (i // 4096)
os._exit(0)  # no msync, no munmap
PYEOF
kill_all
if pk_start "$M" --pkram=obj --size=64m; then
    assert_eq "objects:crash:mapped-data" "00000000 00000512 00001023" \
        "$("$PY" -c 'import sys
d = open(sys.argv[1], "rb").read()
print(" ".join(d[i * 4096:i * 4096 + 8].decode() for i in (0, 512, 1023)))' "$M/crash" 2>&1)"
    assert_eq "objects:crash:size" 4194304 "$(stat -c %s "$M/crash")"
    assert_eq "objects:crash:earlier-files" "mapped written" \
        "$(head -c 6 "$M/map") $(cat "$M/w")"
else
    fail "objects:crash:remount" "see above"
    finish
fi

OBJ_PID=$PK_PID
# takeover: a file open passthrough across two kills of the serving process
echo start >"$M/held"
exec 7>>"$M/held"
for k in 1 2; do
    kill -KILL "$(serving_pid)"
    ok=""
    for ((i = 0; i < 100; i++)); do
        cat "$M/held" >/dev/null 2>&1 && { ok=1; break; }
        sleep 0.1
    done
    check "objects:takeover:open-after-kill-$k" "the file cannot be opened after the takeover" \
        test -n "$ok"
    check "objects:takeover:append-new-$k" "write through a new open failed" \
        sh -c "echo new$k >>'$M/held'"
    check "objects:takeover:write-old-$k" "write through the descriptor from before failed" \
        sh -c "echo old$k >&7"
done
exec 7>&-
assert_eq "objects:takeover:content" "start new1 old1 new2 old2" "$(tr '\n' ' ' <"$M/held" | sed 's/ $//')"

# resend: the CREATE and then the OPEN of a passthrough file, each killed before its reply
M2=$T/m2
export PKRAMFS_TEST_KILL_BEFORE_REPLY=CREATE,OPEN
if pk_start "$M2" --pkram=rs --size=64m; then
    unset PKRAMFS_TEST_KILL_BEFORE_REPLY
    out=$(timeout 60 "$PY" - "$M2" 2>&1 <<'PYEOF2'
import os, sys
m = sys.argv[1]
fd = os.open(m + "/c", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)  # CREATE, killed
os.write(fd, b"created")
os.close(fd)
fd = os.open(m + "/c", os.O_RDWR)                                   # OPEN, killed
os.pwrite(fd, b"C", 0)
os.close(fd)
for i in range(3):  # the inode's backing file, given back and taken again
    os.close(os.open(m + "/c", os.O_RDWR))
print(open(m + "/c").read())
PYEOF2
)
    assert_eq "objects:resend:content" "Created" "$out"
    assert_eq "objects:resend:restarts" 2 \
        "$(ctl --json status rs 2>/dev/null | jq -r .restarts)"
    pk_stop "$M2" "$PK_PID"
    check "objects:resend:check" "pkramfs-ctl check failed" quietly ctl check rs
    PK_PID=$OBJ_PID
else
    unset PKRAMFS_TEST_KILL_BEFORE_REPLY
    fail "objects:resend:mount" "see above"
fi

# space: size= holds for passthrough writes
rm -f "$M/crash" "$M/map"
dd if=/dev/zero of="$M/big" bs=1M count=100 2>"$T/dd.err"
rc=$?
check "objects:space:enospc" "a 100 MiB write to a 64 MiB node did not fail (rc $rc)" test "$rc" -ne 0
assert_contains "objects:space:enospc-error" "$(cat "$T/dd.err")" "No space left"
avail=$(df -k --output=avail "$M" | tail -1)
check "objects:space:df-full" "df shows $avail KiB free after filling" test "$avail" -lt 1024
rm -f "$M/big"
avail=$(df -k --output=avail "$M" | tail -1)
check "objects:space:freed" "df shows $avail KiB free after rm" test "$avail" -gt 60000

# sweep: an unlinked open file and a stray object, then kill -9
"$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o600)
os.write(fd, b"x" * 8192)
print(os.fstat(fd).st_ino, flush=True)
os.unlink(sys.argv[1])
os.kill(os.getpid(), 9)' "$M/gone" >"$T/gone.ino"
gone=$(cat "$T/gone.ino")
: >"$OBJ/999999"
kill_all
if pk_start "$M" --pkram=obj --size=64m; then
    check "objects:sweep:unlinked" "object $gone of an unlinked file is still there" test ! -e "$OBJ/$gone"
    check "objects:sweep:stray" "an object no file has is still there" test ! -e "$OBJ/999999"
    pk_stop "$M"
else
    fail "objects:sweep:remount" "see above"
fi
check "objects:check" "pkramfs-ctl check failed: $(ctl check obj 2>&1)" quietly ctl check obj

# mixed: arena files from a mount without passthrough, object files after
if PKRAMFS_TUNE=passthrough=0 pk_start "$M" --pkram=mix --size=64m; then
    head -c 300000 /dev/urandom >"$M/old"
    sum_old=$(sha1sum <"$M/old")
    pk_stop "$M"
    pk_start "$M" --pkram=mix --size=64m
    echo new >"$M/new"
    assert_eq "objects:mixed:arena-file" "$sum_old" "$(sha1sum <"$M/old")"
    check "objects:mixed:old-not-object" "the arena file has an object" \
        test ! -e "$SHM/.mix.objects/$(ino_of "$M/old")"
    check "objects:mixed:new-object" "the new file has no object" \
        test -e "$SHM/.mix.objects/$(ino_of "$M/new")"
    pk_stop "$M"
    check "objects:mixed:check" "pkramfs-ctl check failed: $(ctl check mix 2>&1)" quietly ctl check mix
else
    fail "objects:mixed:mount" "see above"
fi

# export-import
if pk_start "$M" --pkram=obj --size=64m; then
    head -c 3000000 /dev/urandom >"$M/rand"
    truncate -s 20M "$M/sparse"
    echo mid | dd of="$M/sparse" bs=1 seek=9000000 conv=notrunc status=none
    (cd "$M" && find . -type f | sort | xargs stat -c '%n %s %Y' && find . -type f | sort | xargs sha1sum) >"$T/before"
    pk_stop "$M"
    if ctl export obj "$T/img" >/dev/null && ctl import "$T/img" copy >/dev/null; then
        pass "objects:export-import:commands"
        check "objects:export-import:check" "check of the import failed" quietly ctl check copy
        pk_start "$M" --pkram=copy
        (cd "$M" && find . -type f | sort | xargs stat -c '%n %s %Y' && find . -type f | sort | xargs sha1sum) >"$T/after"
        assert_files_eq "objects:export-import:same" "$T/before" "$T/after"
        pk_stop "$M"
    else
        fail "objects:export-import:commands" "export or import failed"
    fi
else
    fail "objects:export-import:mount" "see above"
fi

# export-mounted: a mounted node with objects (read-only while exported), writable again after
if pk_start "$M" --pkram=obj; then
    sum=$(sha1sum <"$M/rand")
    if ctl export obj "$T/img2" >/dev/null && ctl import "$T/img2" copy2 >/dev/null; then
        check "objects:export-mounted:writable-after" "append after the export failed" \
            sh -c "echo more >>'$M/rand'"
        pk_stop "$M"
        pk_start "$M" --pkram=copy2
        assert_eq "objects:export-mounted:same" "$sum" "$(sha1sum <"$M/rand")"
    else
        fail "objects:export-mounted:commands" "export or import of the mounted node failed"
    fi
    pk_stop "$M"
else
    fail "objects:export-mounted:mount" "see above"
fi

# lost: the object tmpfs goes, the node file stays
sum_node=$(sha1sum <"$SHM/obj")
umount "$OBJ"
pk_start "$M" --pkram=obj >/dev/null 2>&1
err=$(cat "$PK_ERR")
check "objects:lost:refused" "the mount came up without the objects" test -z "$(mount_fstype "$M")"
assert_one_line_err "objects:lost:one-line" "$PK_ERR"
assert_contains "objects:lost:names-dir" "$err" "$OBJ"
check "objects:lost:check" "check did not fail" test "$(ctl check obj >/dev/null 2>&1; echo $?)" != 0
assert_contains "objects:lost:check-says" "$(ctl check obj 2>&1)" "file objects"
assert_eq "objects:lost:node-untouched" "$sum_node" "$(sha1sum <"$SHM/obj")"

# destroy: the object tmpfs goes with the node
check "objects:destroy" "destroy failed" quietly ctl destroy obj
check "objects:destroy:unmounted" "the object tmpfs is still mounted" \
    test -z "$(mount_fstype "$OBJ")"
check "objects:destroy:removed" "$OBJ is still there" test ! -e "$OBJ"
if pk_start "$M" --pkram=obj --size=64m; then
    assert_eq "objects:destroy:new-node-empty" "" "$(ls -A "$M")"
    assert_eq "objects:destroy:new-objects-empty" "" "$(ls -A "$OBJ")"
    pk_stop "$M"
fi
finish
