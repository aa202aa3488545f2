# SPDX-License-Identifier: GPL-2.0
# e: bad input.  Non-root opens are refused by the 0600 mode and, with the
# mode opened up, by the CAP_SYS_ADMIN check; pkram-test selftest runs the
# ioctl/mmap error cases (garbage commands, bad names, ENOSPC, EBUSY, short
# buffers, fuzzing); bad region= parameters are refused; dmesg stays clean.
# vm-test-expect: load nonroot-mode nonroot-cap selftest
# vm-test-expect: no-leak fuzz no-region region-ram region-ram-msg
# vm-test-expect: region-align region-syntax region-outside region-outside-msg
# vm-test-expect: dmesg-clean

stage1() {
	check load pkram_load
	check_eq nonroot-mode "$(pkram-test open-as-nobody)" EACCES
	chmod 0666 /dev/pkram
	check_eq nonroot-cap "$(pkram-test open-as-nobody)" EPERM
	chmod 0600 /dev/pkram
	pkram-test selftest "$SCEN" >/tmp/selftest.out 2>&1
	rc=$?
	cat /tmp/selftest.out
	check_eq selftest "$rc" 0
	pkram_unload
	check_not no-region insmod "$PKRAM_KO"
	check_not region-ram insmod "$PKRAM_KO" region=64M@0x20000000
	check_dmesg region-ram-msg 'pkram: region=.* overlaps System RAM'
	check_not region-align insmod "$PKRAM_KO" region=3M@0x40000000
	check_not region-syntax insmod "$PKRAM_KO" region=64Mx0x40000000
	check_not region-outside insmod "$PKRAM_KO" region=64M@0x100000000
	check_dmesg region-outside-msg 'pkram: region=.* is not \(entirely\) reserved memory'
}
