# SPDX-License-Identifier: GPL-2.0
# b: a preserved node (32 MiB pattern) and an active one survive kexec with
# state, size, generation and content; changes after adoption survive a
# second kexec.
# vm-test-expect: create fill preserve kexec-stage1 dmesg-clean-stage1
# vm-test-expect: adopt adopted stat-A verify-A hash-A stat-B verify-B
# vm-test-expect: unpreserve shrink destroy-B free kexec-stage2 dmesg-clean-stage2
# vm-test-expect: adopt-3 stat-A-3 verify-A-3 gone-B free-3 dmesg-clean

stage1() {
	check load pkram_load
	check create sh -c 'pkram-test create A 16 && pkram-test create B 2'
	check fill sh -c 'pkram-test fill A 1234 && pkram-test fill B 99'
	cat /tmp/check.out
	pkram-test hash A >/state/A.hash
	check preserve pkram-test preserve A
	pkram-test stat A >/state/A.stat
	pkram-test stat B >/state/B.stat
	cat /state/A.stat /state/B.stat
	vm_kexec
}

stage2() {
	check adopt pkram_load
	check_eq adopted "$(sysfs adopted) $(sysfs load_count)" "1 1"
	check_eq stat-A "$(pkram-test stat A)" "$(cat /state/A.stat)"
	check verify-A pkram-test verify A 1234
	cat /tmp/check.out
	check_eq hash-A "$(pkram-test hash A)" "$(cat /state/A.hash)"
	check_eq stat-B "$(pkram-test stat B)" "$(cat /state/B.stat)"
	check verify-B pkram-test verify B 99
	check unpreserve pkram-test unpreserve A
	check shrink pkram-test resize A 8
	check destroy-B pkram-test destroy B
	check_eq free "$(sysfs free_frames)" 23
	pkram-test stat A >/state/A.stat
	vm_kexec
}

stage3() {
	check adopt-3 pkram_load
	check_eq stat-A-3 "$(pkram-test stat A)" "$(cat /state/A.stat)"
	# the first 8 frames of the pattern are still there
	check verify-A-3 pkram-test verify A 1234
	check_not gone-B pkram-test stat B
	check_eq free-3 "$(sysfs free_frames) $(sysfs load_count)" "23 2"
}
