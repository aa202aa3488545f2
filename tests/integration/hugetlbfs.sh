#!/usr/bin/env bash
# Without --shm-dir, a new node goes to a hugetlbfs mount with enough free 2 MiB pages, and an
# existing node is found where it is. Grows the host's hugepage pool for the test and restores
# it on exit; skipped when the pool cannot grow.
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl
pool=/proc/sys/vm/nr_hugepages
old_pool=$(cat "$pool")
restore_pool() { echo "$old_pool" > "$pool"; pkit_cleanup; }
trap restore_pool EXIT
echo $((old_pool + 40)) > "$pool" 2>/dev/null
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "${free:-0}" -lt 40 ]; then
    skip "hugetlbfs:pool" "could not set aside 40 huge pages (free: ${free:-0})"
    finish
fi
mount -t tmpfs tmpfs /dev/shm          # private to this namespace: the host's is not touched
mkdir -p "$T/huge" "$T/mnt"
mount -t hugetlbfs -o pagesize=2M none "$T/huge"

"$PK" --pkram=huge1 --size=32m --run-dir="$RUN" "$T/mnt" 2> "$T/err"
assert_eq "hugetlbfs:mounts" 0 "$?"
assert_eq "hugetlbfs:node-on-hugetlbfs" yes "$([ -f "$T/huge/pkramfs/huge1" ] && echo yes)"
assert_eq "hugetlbfs:not-on-dev-shm" no "$([ -e /dev/shm/pkramfs/huge1 ] && echo yes || echo no)"
head -c 8M /dev/urandom > "$T/mnt/data"
sum=$(sha256sum < "$T/mnt/data")
used=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
assert_ne "hugetlbfs:uses-huge-pages" "$free" "$used"
umount "$T/mnt"; sleep 0.3
"$PK" --pkram=huge1 --run-dir="$RUN" "$T/mnt"
assert_eq "hugetlbfs:restored" "$sum" "$(sha256sum < "$T/mnt/data")"
umount "$T/mnt"; sleep 0.3
"$CTL" --run-dir="$RUN" check huge1 > /dev/null
assert_eq "hugetlbfs:ctl-finds-and-checks-node" 0 "$?"
"$CTL" --run-dir="$RUN" destroy huge1 > /dev/null
assert_eq "hugetlbfs:destroy-gives-pages-back" "$free" "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)"

# Too few free pages for the node: /dev/shm/pkramfs is used instead.
"$PK" --pkram=big1 --size=1g --run-dir="$RUN" "$T/mnt"
assert_eq "hugetlbfs:large-node-falls-back-to-dev-shm" yes "$([ -f /dev/shm/pkramfs/big1 ] && echo yes)"
umount "$T/mnt"
umount "$T/huge"
finish
