# SPDX-License-Identifier: GPL-2.0
# i: kill -9 of the daemon (no kexec): after "umount -l" of the dead mount,
# the next mount of the same node has every acknowledged change (no sync, no
# unmount before the kill), twice in a row; a clean unmount after that keeps
# it too.  A second daemon on a mounted node is refused.
# vm-test-region: 128M
# vm-test-expect: load fuse mount tree manifest second-refused kill remount
# vm-test-expect: after-kill change manifest-2 kill-2 remount-2 after-kill-2
# vm-test-expect: umount remount-3 after-umount umount-3 daemon-log dmesg-clean

. /vmtest/tree.sh
OPTS=--size=64M

second_refused() {	# a second daemon on node i exits at once, naming the first
	mkdir -p /mnt2
	# shellcheck disable=SC2046
	timeout -s KILL 30 pkramfs-fuse -f --pkram=i $(backend_args) $OPTS /mnt2 2>&1 |
		grep 'is busy'
}

stage1() {
	check load pkram_load
	check fuse fuse_load
	check mount pkramfs_mount i /mnt $OPTS
	tcheck tree make_tree /mnt 1000 8
	save_manifest manifest /mnt /state/i.1
	check second-refused second_refused
	check kill pkramfs_kill i /mnt
	tcheck remount pkramfs_mount i /mnt $OPTS
	check_manifest after-kill /mnt /state/i.1
	tcheck change change_tree /mnt 1
	save_manifest manifest-2 /mnt /state/i.2
	check kill-2 pkramfs_kill i /mnt
	tcheck remount-2 pkramfs_mount i /mnt $OPTS
	check_manifest after-kill-2 /mnt /state/i.2
	tcheck umount pkramfs_umount i /mnt
	tcheck remount-3 pkramfs_mount i /mnt $OPTS
	check_manifest after-umount /mnt /state/i.2
	check umount-3 pkramfs_umount i /mnt
	daemon_log i daemon-log
}
