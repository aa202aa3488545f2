#!/usr/bin/env bash
# fsx-style random I/O on one file against an in-memory model (tools/fsx, pkramfs-fsx): reads,
# writes, truncates, fallocate (plain, KEEP_SIZE, PUNCH_HOLE), mmap reads and writes (MAP_SHARED
# + msync), copy_file_range, SEEK_DATA/SEEK_HOLE, fsync, reopen; every read and the size after
# every op checked. On pkramfs once per --cache mode (writeback, direct: shared mmap must fail
# with ENODEV; auto), each on a persistent node that is then unmounted, checked and remounted
# with the file compared to the model; on kernel tmpfs as a sanity check of the tester, which
# must also catch a model corrupted on purpose. Then on a mount without a node, whose files on
# Linux 6.9+ are objects opened FUSE passthrough (fuse/backing_files.h): the kernel does the
# reads, writes and mappings itself.
#
# PKIT_FSX_OPS  operations in all (default 100000): 30% writeback, 30% direct, 20% auto,
#               10% passthrough (anon), 10% tmpfs (without --cache in the daemon: 90% with its
#               default caching)
# PKIT_SEED     the seed (default random; printed, and in every FAIL line)
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl

FSX=$PKRAMFS_BIN/pkramfs-fsx
if [ ! -x "$FSX" ]; then
    fail "fsx:binary" "$FSX not found (build the pkramfs-fsx target)"
    finish
fi
ops=${PKIT_FSX_OPS:-100000}
seed=${PKIT_SEED:-$RANDOM}
info "fsx: seed $seed, $ops ops in all"

if "$PK" --help 2>&1 | grep -q -- '--cache'; then
    modes=(writeback:30 direct:30 auto:20 passthrough:10)
else
    modes=(default:90)
    info "pkramfs-fuse has no --cache option: one run with its default caching"
fi

# run_fsx NAME OUT ARGS...: run pkramfs-fsx; PASS NAME, or FAIL NAME with its report
run_fsx() {
    local name=$1 out=$2 rc; shift 2
    "$FSX" --seed "$seed" "$@" >"$out" 2>&1
    rc=$?
    if [ "$rc" = 0 ]; then
        pass "$name"
        grep "ops passed" "$out" | sed "s/^pkramfs-fsx: /# $name: /"
    else
        fail "$name" "pkramfs-fsx exit $rc (seed $seed)"
        details "$out" 60
    fi
    return "$rc"
}

# --- the tester on kernel tmpfs: a clean run, and a corrupted model that must be caught
tmpfs_mount "$T/tmpfs" size=1g,huge=never
run_fsx "fsx:tmpfs:run" "$T/tmpfs.out" --ops $((ops / 10)) "$T/tmpfs/fsx.file"
"$FSX" --seed "$seed" --ops 4000 --self-test-corrupt "$T/tmpfs/corrupt.file" >"$T/corrupt.out" 2>&1
rc=$?
# The flipped byte is caught by a read (MISMATCH) or, when it lies in a hole, by SEEK_DATA
# skipping it; either way a FAILURE report, and not the one saying it was never detected.
if [ "$rc" = 1 ] && grep -q 'FAILURE at op' "$T/corrupt.out" &&
    ! grep -q 'never detected' "$T/corrupt.out" && grep -q 'flipped the model byte' "$T/corrupt.out" &&
    grep -q '^LOG DUMP' "$T/corrupt.out" && grep -q 'reproduce with:.*--seed' "$T/corrupt.out"; then
    pass "fsx:self-test-corrupt-is-caught"
else
    fail "fsx:self-test-corrupt-is-caught" "exit $rc, expected 1 with a FAILURE report of the flipped byte (seed $seed)"
    details "$T/corrupt.out" 30
fi
umount "$T/tmpfs"

# --- pkramfs, per cache mode
for m in "${modes[@]}"; do
    mode=${m%%:*}
    n=$((ops * ${m##*:} / 100))
    node=fsx-$mode
    mnt=$T/mnt-$mode
    args=(--pkram="$node" --size=1g)
    fsx_args=(--ops "$n" --log "$T/$mode.log" --save "$T/$mode.model")
    if [ "$mode" = passthrough ]; then
        args=(--backend=anon --size=1g)
    elif [ "$mode" != default ]; then
        args+=(--cache="$mode")
    fi
    # FOPEN_DIRECT_IO: the kernel refuses MAP_SHARED without FUSE_DIRECT_IO_ALLOW_MMAP (not
    # negotiated by libfuse 3.14); mmap reads then go through MAP_PRIVATE.
    [ "$mode" = direct ] && fsx_args+=(--shared-mmap-errno ENODEV)
    if ! pk_start "$mnt" "${args[@]}"; then
        fail "fsx:$mode:mount" "pkramfs-fuse ${args[*]} did not mount"
        continue
    fi
    if [ "$mode" = writeback ]; then
        # SEEK_DATA/SEEK_HOLE must see data still in dirty pages (the kernel does not flush them
        # before FUSE_LSEEK, so the daemon leaves lseek to the kernel in this mode).
        got=$("$PY" - "$mnt/seek" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC)
os.pwrite(fd, b"x" * 4096, 0)
os.ftruncate(fd, 8192)
os.pwrite(fd, b"y" * 4096, 4096)
print(os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 4096, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE))
EOF
        )
        assert_eq "fsx:writeback:seek-sees-dirty-pages" "0 4096 8192" "$got"
    fi
    run_fsx "fsx:$mode:run" "$T/$mode.out" "${fsx_args[@]}" "$mnt/fsx.file"
    rc=$?
    if ! alive "$PK_PID"; then
        fail "fsx:$mode:daemon-alive" "pkramfs-fuse died during the run"
        details "$PK_ERR" 20
        umount -l "$mnt" 2>/dev/null
        continue
    fi
    pk_stop "$mnt"
    assert_eq "fsx:$mode:clean-unmount" 0 "$?"
    [ "$mode" = passthrough ] && continue # no node to check or mount again
    "$CTL" --shm-dir="$SHM" --run-dir="$RUN" check "$node" >"$T/check.out" 2>&1
    c=$?
    assert_eq "fsx:$mode:check-clean" 0 "$c"
    [ "$c" = 0 ] || details "$T/check.out" 20
    [ "$rc" = 0 ] || continue
    if pk_start "$mnt" --pkram="$node"; then
        check "fsx:$mode:remount-same-bytes" "the file differs from the model after remount" \
            cmp -s "$T/$mode.model" "$mnt/fsx.file"
        pk_stop "$mnt"
    else
        fail "fsx:$mode:remount" "the node did not mount again"
    fi
done
finish
