# SPDX-License-Identifier: GPL-2.0
# h: three chained kexecs, each kind of handover once, with changes of every
# kind between them (add, delete, rename, overwrite, truncate, chmod, chown,
# xattrs, links; tree.sh change_tree).  Each stage first checks the tree
# against the previous stage's manifest.
#   stage 1 -> 2: pkramfs-ctl preserve, daemon running (planned)
#   stage 2 -> 3: clean unmount, daemon gone
#   stage 3 -> 4: daemon running, not preserved (unplanned)
# vm-test-region: 256M
# vm-test-timeout: 300
# vm-test-expect: load fuse mount tree manifest-1 preserve daemon-log kexec-stage1
# vm-test-expect: mount-2 verify-1 change-2 manifest-2 umount-2 daemon-log-2
# vm-test-expect: kexec-stage2
# vm-test-expect: mount-3 verify-2 change-3 manifest-3 daemon-log-3 kexec-stage3
# vm-test-expect: mount-4 verify-3 change-4 manifest-4 umount-4 mount-5
# vm-test-expect: verify-4 umount-5 load-count daemon-log-4 dmesg-clean

. /vmtest/tree.sh
OPTS=--size=128M

start() {	# start N: load the modules and mount
	check "load-$1" pkram_load
	check "fuse-$1" fuse_load
	tcheck "mount-$1" pkramfs_mount h /mnt $OPTS
	cat /sys/kernel/debug/pkram/nodes
}

stage1() {
	check load pkram_load
	check fuse fuse_load
	check mount pkramfs_mount h /mnt $OPTS
	tcheck tree make_tree /mnt 1000 8
	save_manifest manifest-1 /mnt /state/h.1
	tcheck preserve pkramfs_ctl preserve h
	daemon_log h daemon-log
	vm_kexec
}

stage2() {
	start 2
	check_manifest verify-1 /mnt /state/h.1
	tcheck change-2 change_tree /mnt 1
	save_manifest manifest-2 /mnt /state/h.2
	tcheck umount-2 pkramfs_umount h /mnt
	daemon_log h daemon-log-2
	vm_kexec
}

stage3() {
	start 3
	check_manifest verify-2 /mnt /state/h.2
	tcheck change-3 change_tree /mnt 2
	sync
	save_manifest manifest-3 /mnt /state/h.3
	daemon_log h daemon-log-3
	vm_kexec
}

stage4() {
	start 4
	check_manifest verify-3 /mnt /state/h.3
	tcheck change-4 change_tree /mnt 3
	save_manifest manifest-4 /mnt /state/h.4
	tcheck umount-4 pkramfs_umount h /mnt
	tcheck mount-5 pkramfs_mount h /mnt $OPTS
	check_manifest verify-4 /mnt /state/h.4
	check umount-5 pkramfs_umount h /mnt
	check_eq load-count "$(sysfs load_count)" 3
	daemon_log h daemon-log-4
}
