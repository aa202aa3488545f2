# SPDX-License-Identifier: GPL-2.0
# g: unplanned kexec.  A tree is written to /mnt/t (and changed: deletes,
# renames, truncates, xattrs) and synced; more is written to /mnt/late and
# not synced; the kernel kexecs with the daemon still running: no preserve,
# no unmount, no sync.  The node stays active; the next mount replays the
# journal and has exactly the synced tree and every acknowledged change
# after it (the daemon journals each operation before it replies); a clean
# unmount after more changes keeps them.
# vm-test-region: 256M
# vm-test-timeout: 300
# vm-test-expect: load fuse mount tree change manifest late manifest-late
# vm-test-expect: daemon-live daemon-log kexec-stage1 dmesg-clean-stage1
# vm-test-expect: adopt node-kept fuse-2 mount-2 replayed replayed-late holes-2
# vm-test-expect: change-2 manifest-2 umount-2 mount-3 after-umount umount-3
# vm-test-expect: daemon-log-2 dmesg-clean

. /vmtest/tree.sh
OPTS=--size=128M

# changes after the sync, in their own directory
late() {
	mkdir /mnt/late && pkram-manifest populate /mnt/late 150 7 &&
		dd if=/dev/urandom of=/mnt/late/random bs=64k count=20 2>/dev/null &&
		mv /mnt/late/d000/f00007 /mnt/late/renamed &&
		rm /mnt/late/d001/f00101 &&
		pkram-manifest setxattr /mnt/late/renamed user.late yes &&
		ln -s renamed /mnt/late/link && echo last >/mnt/late/last
}

stage1() {
	check load pkram_load
	check fuse fuse_load
	check mount pkramfs_mount g /mnt $OPTS
	mkdir /mnt/t
	tcheck tree make_tree /mnt/t 2000 16
	tcheck change change_tree /mnt/t 1
	sync
	save_manifest manifest /mnt/t /state/g.manifest
	check late late
	save_manifest manifest-late /mnt/late /state/g.late
	check daemon-live sh -c "kill -0 $(cat /tmp/fuse-g.pid) && grep -q ' /mnt fuse' /proc/mounts"
	cat /sys/kernel/debug/pkram/nodes
	daemon_log g daemon-log
	vm_kexec nosync		# the daemon is running and the node is not preserved
}

stage2() {
	check adopt pkram_load
	cat /sys/kernel/debug/pkram/nodes
	check_eq node-kept "$(node_state g)" active
	check fuse-2 fuse_load
	tcheck mount-2 pkramfs_mount g /mnt $OPTS
	check_manifest replayed /mnt/t /state/g.manifest
	check_manifest replayed-late /mnt/late /state/g.late
	check holes-2 holes_zero /mnt/t/sparse
	tcheck change-2 change_tree /mnt/t 2
	save_manifest manifest-2 /mnt /state/g.manifest-2
	tcheck umount-2 pkramfs_umount g /mnt
	tcheck mount-3 pkramfs_mount g /mnt $OPTS
	check_manifest after-umount /mnt /state/g.manifest-2
	check umount-3 pkramfs_umount g /mnt
	daemon_log g daemon-log-2
}
