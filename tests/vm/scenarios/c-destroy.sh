# SPDX-License-Identifier: GPL-2.0
# c: destroying a node zeroes its frames: a new node that must reuse them
# (it takes every free frame) reads back zeros, and the other node is intact.
# vm-test-expect: create-A create-B destroy-B reuse free-zero new-zero
# vm-test-expect: A-intact shrink-grow-zero cleanup dmesg-clean

# frames given back by a shrink are zeroed before they come back
shrink_grow() {
	pkram-test fill C 3 && pkram-test resize C 1 && pkram-test resize C 2 &&
		pkram-test destroy A && pkram-test create D 8 && pkram-test zero D
}

cleanup() {
	pkram-test destroy C && pkram-test destroy D && [ "$(sysfs free_frames)" = 31 ]
}

stage1() {
	check load pkram_load
	check create-A sh -c 'pkram-test create A 8 && pkram-test fill A 1'
	check create-B sh -c 'pkram-test create B 8 && pkram-test fill B 2'
	check destroy-B pkram-test destroy B
	check reuse pkram-test create C "$(sysfs free_frames)"
	check_eq free-zero "$(sysfs free_frames)" 0
	check new-zero pkram-test zero C
	check A-intact pkram-test verify A 1
	check shrink-grow-zero shrink_grow
	check cleanup cleanup
}
