# SPDX-License-Identifier: GPL-2.0
# p: 2 MiB mappings.  A node of 64 frames (128 MiB) mapped 2 MiB aligned, as
# pkramfs-fuse maps its node, first with pkram.ko loaded pmd=0 (a fault per
# 4 KiB page), then as loaded by default: one 2 MiB mapping per frame where
# the kernel allows it (6.1, 6.12: devmap PMDs), 4 KiB pages where it does
# not (7.2: see the top of kmod/pkram.c).  Prints the time and the fault
# counts ("mapbench:" lines, pkram-test mapbench; a first 4 KiB run warms
# up TCG and is not compared); the data is read back
# through pread, a punched frame faults (its whole PMD is zapped) and its
# neighbour keeps its data.
# vm-test-region: 256M
# vm-test-expect: load-4k pte-faults map-data punched-sigbus unpunched-kept
# vm-test-expect: map-destroy unload load faults-2 map-data-2 punched-sigbus-2
# vm-test-expect: unpunched-kept-2 map-destroy-2 dmesg-clean

stage1() {
	local pmd=1
	[ "$(kernel_name)" = sid ] && pmd=0
	check load-4k pkram_load pmd=0
	# once to warm up (TCG translates the code on first use), then measured
	pkram-test mapbench p-pmd 64 0 | sed -n 's/^mapbench:/mapbench (warm-up):/p'
	pkram-test mapbench p-pmd 64 0
	check unload pkram_unload
	check load pkram_load
	# the second run's results end in -2; faults-2 is pmd-faults or pte-faults
	pkram-test mapbench p-pmd 64 "$pmd" | sed -E \
		-e 's/^(PASS|FAIL) p-pmd\.([a-z-]+)/\1 p-pmd.\2-2/' \
		-e 's/^(PASS|FAIL) p-pmd\.(pmd|pte)-faults-2/\1 p-pmd.faults-2/'
}
