# SPDX-License-Identifier: GPL-2.0
# a: the module loads, formats a fresh region, /dev/pkram is 0600 root,
# the sysfs/debugfs views read, and a reload adopts the region.
# vm-test-expect: load formatted devnode sysfs-region sysfs-frames
# vm-test-expect: sysfs-free sysfs-nodes sysfs-adopted iomem debugfs version
# vm-test-expect: unload reload adopted load-count verify-after-reload dmesg-clean

stage1() {
	check load pkram_load
	check_dmesg formatted 'pkram: no superblock in region, formatting'
	check_eq devnode "$(stat -c '%F %a %u %g' /dev/pkram)" "character special file 600 0 0"
	check_eq sysfs-region "$(sysfs region)" "67108864@0x40000000"
	check_eq sysfs-frames "$(sysfs frame_size) $(sysfs data_frames)" "2097152 31"
	check_eq sysfs-free "$(sysfs free_frames)" 31
	check_eq sysfs-nodes "$(sysfs nr_nodes)" 0
	check_eq sysfs-adopted "$(sysfs adopted) $(sysfs load_count)" "0 0"
	check iomem grep -q '40000000-43ffffff : pkram' /proc/iomem
	check_eq debugfs "$(wc -l </sys/kernel/debug/pkram/nodes)" 0
	check version pkram-test version
	pkram-test create a-node 3 && pkram-test fill a-node 5
	check unload pkram_unload
	check reload pkram_load
	check_eq adopted "$(sysfs adopted) $(cat /sys/kernel/debug/pkram/nodes)" "1 a-node active 3 1 0 3"
	check_eq load-count "$(sysfs load_count)" 1
	check verify-after-reload pkram-test verify a-node 5
}
