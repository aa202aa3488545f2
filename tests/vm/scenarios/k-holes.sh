# SPDX-License-Identifier: GPL-2.0
# k: damaged kmod nodes. A data frame and a journal frame punched out of an
# unmounted node (pkram-test punch): the daemon restores without faulting on
# the holes, says which frame is gone, and serves the file (zeros where the
# frame was). Frame 0 punched (both superblock copies): the mount is refused
# with one line and the node is left as it was.
# vm-test-expect: load fuse mount write umount punch remount alive-after-read
# vm-test-expect: damaged-differs intact-file refilled umount-2
# vm-test-expect: punch-sb refused refused-says-why untouched dmesg-clean

. /vmtest/tree.sh

populated() { awk -v n="$1" '$1 == n { print $6 }' /sys/kernel/debug/pkram/nodes; }

stage1() {
	check load pkram_load
	check fuse fuse_load
	check mount pkramfs_mount k /mnt --size=64M
	check write sh -c 'head -c 5242880 /dev/urandom >/tmp/big && cp /tmp/big /mnt/big &&
		echo small >/mnt/small'
	check umount pkramfs_umount k /mnt
	cat /sys/kernel/debug/pkram/nodes
	held=$(populated k)
	# frames 1-8 are the journal, data starts at frame 9 (docs/format.md)
	pkram-test punch k 10 1 && pkram-test punch k 2 1
	check_eq punch "$(populated k)" $((held - 2))
	check remount pkramfs_mount k /mnt
	check alive-after-read sh -c 'cat /mnt/big >/tmp/big.after && kill -0 "$(cat /tmp/fuse-k.pid)"'
	check_not damaged-differs cmp -s /tmp/big /tmp/big.after
	check_eq intact-file "$(cat /mnt/small)" small
	# the restore gave the tree's frames back to the node, as zeros
	check_eq refilled "$(populated k)" "$held"
	cat /tmp/fuse-k.log
	check umount-2 pkramfs_umount k /mnt
	check punch-sb pkram-test punch k 0 1
	before=$(cat /sys/kernel/debug/pkram/nodes)
	check_not refused pkramfs-fuse -f --pkram=k --backend=kmod /mnt
	cp /tmp/check.out /tmp/refused.out
	cat /tmp/refused.out
	check refused-says-why grep -q "cannot be restored: no pkramfs superblock" /tmp/refused.out
	check_eq untouched "$(cat /sys/kernel/debug/pkram/nodes)" "$before"
}
