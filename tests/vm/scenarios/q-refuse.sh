# SPDX-License-Identifier: GPL-2.0
# q: a kernel pkram.ko is not tested on is refused at load time, before the
# region is touched.  /lib/modules/ABI/pkram-untested.ko is the module as
# built with PKRAM_UNTESTED (tools/vm-test builds it with
# PKRAM_UNTESTED=force, which makes the 6.1 kernel count as untested): it
# refuses to load with one line naming the kernel and the fix, claims
# nothing and writes nothing; untested_kernel=1 loads it (with a warning
# line); the supported module then adopts the region it formatted.
# (The build-time refusal, #error for any other series, and DKMS's
# BUILD_EXCLUSIVE_KERNEL are not VM tests: docs/operations.md.)
# vm-test-kernels: 6.1
# vm-test-expect: refused refused-says-why nothing-claimed untouched
# vm-test-expect: forced forced-says forced-format unload adopt dmesg-clean

stage1() {
	local before
	pkram_deps
	before=$(pkram-test devmem-save "$REGION_START" 4096 /tmp/sb.before && md5sum </tmp/sb.before)
	check_not refused insmod "$MODDIR/pkram-untested.ko" region="$REGION"
	check_dmesg refused-says-why "pkram: kernel $(uname -r) is not supported \(tested: 6\.1, 6\.12 and 7\.2 series, see docs/operations\.md\); load with untested_kernel=1"
	check_not nothing-claimed sh -c 'grep -q pkram /proc/iomem || [ -e /dev/pkram ]'
	check_eq untouched "$(pkram-test devmem-save "$REGION_START" 4096 /tmp/sb.after && md5sum </tmp/sb.after)" "$before"
	check forced insmod "$MODDIR/pkram-untested.ko" region="$REGION" untested_kernel=1
	check_dmesg forced-says "pkram: kernel $(uname -r) is not a tested series: loaded because untested_kernel=1"
	check_dmesg forced-format 'pkram: no superblock in region, formatting'
	check unload pkram_unload
	check adopt pkram_load
}
