#!/usr/bin/env bash
# Differential test: random operation sequences on a kernel tmpfs and a pkramfs mount side by
# side (tools/difftest), in a private mount namespace. Usage: difftest.sh BIN_DIR [SEEDS] [OPS]
# DIFFTEST_BACKEND=anon: a mount without a node (no journal; on Linux 6.9+ its files are objects
# opened FUSE passthrough, fuse/backing_files.h) instead of a persistent node.
set -euo pipefail
bin=$(cd "${1:?usage: difftest.sh BIN_DIR [SEEDS] [OPS]}" && pwd)
seeds=${2:-5}
ops=${3:-3000}
first_seed=${DIFFTEST_SEED:-$(( $(date +%s) % 100000 ))}
backend=${DIFFTEST_BACKEND:-node}
exec unshare -m --propagation private bash -euo pipefail -c '
bin=$1; seeds=$2; ops=$3; seed=$4; backend=$5
work=$(mktemp -d /tmp/pkramfs-difftest.XXXXXX)
cleanup() {
    umount "$work/test" 2>/dev/null || true
    umount "$work/ref" 2>/dev/null || true
    # the node'\''s file object tmpfs (mounted beside the node, it outlives the daemon)
    for m in "$work"/shm/.*.objects; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/ref" "$work/test"
mount -t tmpfs -o size=1g,huge=never tmpfs "$work/ref"
# A persistent node, so that every operation also goes through the journal.
if [ "$backend" = anon ]; then
    "$bin/pkramfs-fuse" --backend=anon --size=1g "$work/test"
else
    "$bin/pkramfs-fuse" --pkram=difftest --size=1g --shm-dir="$work/shm" --run-dir="$work/run" "$work/test"
fi
echo "difftest ($backend): seeds $seed..$((seed + seeds - 1)), $ops ops each"
"$bin/pkramfs-difftest" --seed "$seed" --ops "$ops" --seeds "$seeds" "$work/ref" "$work/test"
' difftest "$bin" "$seeds" "$ops" "$first_seed" "$backend"
