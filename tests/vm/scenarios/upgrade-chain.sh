# SPDX-License-Identifier: GPL-2.0
# upgrade-chain: a kernel upgrade and a rollback by kexec, one VM, one
# region, one node.  The tree of f-handover (every kind of inode, xattrs, a
# 1 GiB sparse file, 100 MiB of random data, 10,000 small files) is written
# under 6.1, then:
#   6.1  -> 6.12: pkramfs-ctl preserve, daemon running (planned upgrade)
#   6.12 -> sid:  daemon running, not preserved, sync only (the journal)
#   sid  -> 6.1:  preserve again, back to the old kernel (an operator's
#                 rollback when the new kernel misbehaves)
# Each kernel's own pkram.ko adopts the region the previous one wrote (one
# format and UAPI across kernels), the daemon restores the tree, and the full
# manifest is compared at every step before the tree is changed.
# Runs once, with --kernel=all or when named (tools/vm-test).
# vm-test-chain: 6.1 6.12 sid 6.1
# vm-test-region: 512M
# vm-test-timeout: 1200
# vm-test-expect: kernel-1 load fuse mount tree many manifest-1 preserve kexec-stage1
# vm-test-expect: dmesg-clean-stage1
# vm-test-expect: kernel-2 load-2 adopted-2 fuse-2 mount-2 verify-1 holes-2 change-2
# vm-test-expect: manifest-2 daemon-log-2 kexec-stage2 dmesg-clean-stage2
# vm-test-expect: kernel-3 load-3 adopted-3 fuse-3 mount-3 verify-2 holes-3 change-3
# vm-test-expect: manifest-3 preserve-3 daemon-log-3 kexec-stage3 dmesg-clean-stage3
# vm-test-expect: kernel-4 load-4 adopted-4 fuse-4 mount-4 verify-3 holes-4
# vm-test-expect: writable umount-4 load-count daemon-log-4 dmesg-clean

. /vmtest/tree.sh
OPTS=--size=320M

# next N NAME: the adopting stage N on kernel NAME: load, mount, check the
# previous stage's manifest
next() {
	check_eq "kernel-$1" "$(kernel_name)" "$2"
	check "load-$1" pkram_load
	check_dmesg "adopted-$1" 'pkram: adopted region'
	cat /sys/kernel/debug/pkram/nodes
	check "fuse-$1" fuse_load
	tcheck "mount-$1" pkramfs_mount u /mnt $OPTS
	check_manifest "verify-$(($1 - 1))" /mnt "/state/u.$(($1 - 1))"
	check "holes-$1" holes_zero /mnt/sparse
}

stage1() {
	check_eq kernel-1 "$(kernel_name)" 6.1
	check load pkram_load
	check fuse fuse_load
	check mount pkramfs_mount u /mnt $OPTS
	tcheck tree make_tree /mnt 0 100
	tcheck many pkram-manifest populate /mnt/many 10000
	save_manifest manifest-1 /mnt /state/u.1
	tcheck preserve pkramfs_ctl preserve u
	vm_kexec kernel=6.12		# the daemon is still running, preserved
}

stage2() {
	next 2 6.12
	tcheck change-2 change_tree /mnt 1
	save_manifest manifest-2 /mnt /state/u.2
	daemon_log u daemon-log-2
	vm_kexec kernel=sid		# running, not preserved: synced only
}

stage3() {
	next 3 sid
	tcheck change-3 change_tree /mnt 2
	save_manifest manifest-3 /mnt /state/u.3
	tcheck preserve-3 pkramfs_ctl preserve u
	daemon_log u daemon-log-3
	vm_kexec kernel=6.1		# rollback
}

stage4() {
	next 4 6.1
	check writable sh -c 'echo back >/mnt/after-rollback && [ "$(cat /mnt/after-rollback)" = back ]'
	tcheck umount-4 pkramfs_umount u /mnt
	check_eq load-count "$(sysfs load_count)" 3	# three adoptions
	daemon_log u daemon-log-4
}
