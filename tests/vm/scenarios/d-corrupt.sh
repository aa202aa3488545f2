# SPDX-License-Identifier: GPL-2.0
# d: a damaged superblock or node table makes the module refuse to load,
# saying why, and touch nothing; format=1 then formats.
#
# The damage is done through /dev/mem while the module is NOT loaded: the
# memmap= range is "Reserved" (not System RAM) and not claimed, so the
# kernel's STRICT_DEVMEM rules allow it.  While pkram is loaded it holds the
# range busy and IO_STRICT_DEVMEM refuses /dev/mem access (checked too).
# vm-test-expect: setup devmem-blocked version-refused version-msg
# vm-test-expect: untouched sbcrc-refused sbcrc-msg table-refused table-msg
# vm-test-expect: geometry-refused geometry-msg format-valid-keeps
# vm-test-expect: format-wipes format-msg format-empty adopt-after-format
# vm-test-expect: dmesg-clean

xor() { pkram-test devmem-xor $((REGION_START + $1)) >/dev/null; }

# refused NAME OFFSET MSG: corrupt the byte at OFFSET, expect a refusal
# with MSG in the log, then repair the byte.
refused() {
	xor "$2"
	check_not "$1-refused" pkram_load
	check_dmesg "$1-msg" "$3"
	xor "$2"
}

setup() { pkram_load && pkram-test create keep 2 && pkram-test fill keep 7; }
# load, check the node, unload
load_verify() { pkram_load "$@" && pkram-test verify keep 7 && pkram_unload; }
adopted() { pkram_load && [ "$(sysfs adopted)" = 1 ]; }

stage1() {
	check setup setup
	check_eq devmem-blocked "$(pkram-test devmem-xor "$REGION_START")" EPERM
	pkram_unload
	refused version 8 'pkram: superblock has unknown format version 253'
	check untouched load_verify
	refused sbcrc 1000 'pkram: superblock CRC mismatch'
	refused table 4096 'pkram: node table / owner map CRC mismatch'
	check_not geometry-refused insmod /lib/modules/pkram.ko region=32M@$REGION_START
	check_dmesg geometry-msg 'pkram: superblock describes 67108864 bytes at 0x40000000'
	# format=1 leaves a valid region alone
	check format-valid-keeps load_verify format=1
	xor 4100
	check format-wipes pkram_load format=1
	check_dmesg format-msg 'pkram: format=1: wiping the region'
	check_eq format-empty "$(sysfs nr_nodes) $(sysfs free_frames)" "0 31"
	pkram_unload
	check adopt-after-format adopted
}
