# SPDX-License-Identifier: GPL-2.0
# f: planned handover.  pkramfs-fuse on a kmod node gets a tree of every
# kind of inode, xattrs, a 1 GiB sparse file, 100 MiB from /dev/urandom and
# 10,000 small files; "pkramfs-ctl preserve" freezes it (EROFS) and marks the
# node preserved; kexec with the daemon still running; the next kernel's
# mount restores an identical tree (manifest: types, modes, owners, sizes,
# links, mtime/ctime in ns, SHA-256, xattrs) that is writable again.
# vm-test-region: 512M
# vm-test-timeout: 400
# vm-test-expect: load fuse mount tree many holes manifest status preserve erofs
# vm-test-expect: status-preserved node-preserved daemon-log kexec-stage1 dmesg-clean-stage1
# vm-test-expect: adopt node-kept fuse-2 mount-2 restored holes-2 status-2
# vm-test-expect: writable umount-2 daemon-log-2 dmesg-clean

. /vmtest/tree.sh
OPTS=--size=320M

stage1() {
	check load pkram_load
	check fuse fuse_load
	check mount pkramfs_mount f /mnt $OPTS
	tcheck tree make_tree /mnt 0 100
	tcheck many pkram-manifest populate /mnt/many 10000
	check holes holes_zero /mnt/sparse
	save_manifest manifest /mnt /state/f.manifest
	check status status_is f active /state/f.manifest
	tcheck preserve pkramfs_ctl preserve f
	cat /tmp/check.out
	check erofs erofs /mnt/new
	check status-preserved status_is f preserved /state/f.manifest
	cat /tmp/check.out
	check_eq node-preserved "$(node_state f)" preserved
	cat /sys/kernel/debug/pkram/nodes
	daemon_log f daemon-log
	vm_kexec		# the daemon is still running, preserved
}

stage2() {
	check adopt pkram_load
	cat /sys/kernel/debug/pkram/nodes
	check_eq node-kept "$(node_state f)" preserved
	check fuse-2 fuse_load
	tcheck mount-2 pkramfs_mount f /mnt $OPTS
	check_manifest restored /mnt /state/f.manifest
	check holes-2 holes_zero /mnt/sparse
	check status-2 status_is f active /state/f.manifest
	cat /tmp/check.out
	check writable sh -c 'echo after >/mnt/after-kexec && [ "$(cat /mnt/after-kexec)" = after ]'
	tcheck umount-2 pkramfs_umount f /mnt
	daemon_log f daemon-log-2
}
