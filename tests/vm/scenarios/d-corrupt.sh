# SPDX-License-Identifier: GPL-2.0
# d: the region keeps two metadata copies (format version 3).  Damage to one
# copy - one flipped bit in its owner map, node table or superblock, or an
# older copy put back in its place - loses nothing: the load takes the
# newest valid copy, says which copy it rewrites, and every node is there,
# also after a kexec.  Damage to both copies makes the module refuse to
# load, saying why, and touch nothing; format=1 then formats.
#
# The damage is done through /dev/mem while the module is NOT loaded: the
# memmap= range is "Reserved" (not System RAM) and not claimed, so the
# kernel's STRICT_DEVMEM rules allow it.  While pkram is loaded it holds the
# range busy and IO_STRICT_DEVMEM refuses /dev/mem access (checked too).
# vm-test-expect: setup devmem-blocked
# vm-test-expect: bit-owner1-adopted bit-owner1-msg bit-owner1-rewritten bit-owner1-repaired
# vm-test-expect: bit-table0-adopted bit-table0-msg bit-sb0-adopted bit-sb0-msg
# vm-test-expect: stale1-newest stale1-msg stale0-newest stale0-msg
# vm-test-expect: version-refused version-msg untouched sbcrc-refused sbcrc-msg
# vm-test-expect: table-refused table-msg geometry-refused geometry-msg
# vm-test-expect: format-valid-keeps format-wipes format-msg format-empty adopt-after-format
# vm-test-expect: kexec-setup kexec-stage1 kexec-adopted kexec-msg kexec-nodes dmesg-clean

C1=$(pkram-test copy-size 32)	# metadata copy 1 starts here (64 MiB: 32 frames)
OWNER=69632			# the owner map in a copy (PKRAM_OWNER_MAP_OFF)

# xor OFFSET [MASK]: flip bits of the byte at OFFSET in the region
xor() { pkram-test devmem-xor $((REGION_START + $1)) ${2:-} >/dev/null; }
# both OFFSET: the same byte in both copies
both() { xor "$1"; xor $((C1 + $1)); }

# new_dmesg NAME REGEX: a kernel message since mark_dmesg matches REGEX
mark_dmesg() { DMESG_MARK=$(dmesg | wc -l); }
new_dmesg() {
	if dmesg | tail -n +$((DMESG_MARK + 1)) | grep -qE "$2"; then pass "$1"
	else fail "$1" "no '$2' in the new kernel messages"; fi
}

# refused NAME OFFSET MSG: corrupt the byte at OFFSET in both copies, expect
# a refusal with MSG in the log, then repair the bytes.
refused() {
	both "$2"
	check_not "$1-refused" pkram_load
	check_dmesg "$1-msg" "$3"
	both "$2"
}

# one_copy NAME OFFSET MASK MSG: flip MASK at OFFSET (one copy): the load
# adopts, the node is intact, the log says what was wrong
one_copy() {
	xor "$2" "$3"
	mark_dmesg
	check "$1-adopted" load_verify
	new_dmesg "$1-msg" "$4"
}

setup() { pkram_load && pkram-test create keep 2 && pkram-test fill keep 7; }
# load, check the node, unload
load_verify() { pkram_load "$@" && pkram-test verify keep 7 && pkram_unload; }
adopted() { pkram_load && [ "$(sysfs adopted)" = 1 ]; }
has() { pkram_load && pkram-test stat "$1" >/dev/null; rc=$?; pkram_unload; return $rc; }
hasnt() { pkram_load && ! pkram-test stat "$1" >/dev/null 2>&1; rc=$?; pkram_unload; return $rc; }

stage1() {
	check setup setup
	check_eq devmem-blocked "$(pkram-test devmem-xor "$REGION_START")" EPERM
	pkram_unload
	# one bit of copy 1's owner map entry of frame 1 (keep's first frame)
	one_copy bit-owner1 $((C1 + OWNER + 8)) 0x01 \
		'pkram: metadata copy 1: node table / owner map CRC mismatch in chunk 16'
	new_dmesg bit-owner1-rewritten 'pkram: metadata copy 1 is damaged or stale, rewriting it from copy 0'
	mark_dmesg
	load_verify
	if dmesg | tail -n +$((DMESG_MARK + 1)) | grep -q 'pkram: metadata copy'; then
		fail bit-owner1-repaired "copy 1 still damaged after a load"
	else pass bit-owner1-repaired; fi
	# one bit of copy 0's node table (the name of slot 0), of its superblock
	one_copy bit-table0 4096 0x01 \
		'pkram: metadata copy 0: node table / owner map CRC mismatch in chunk 0'
	one_copy bit-sb0 90 0x10 'pkram: metadata copy 0: superblock CRC mismatch'
	# an older but valid copy put back: the newer one wins, either way round
	pkram-test devmem-save $((REGION_START + C1)) "$C1" /tmp/copy1
	pkram_load && pkram-test create extra 1 && pkram_unload
	pkram-test devmem-load $((REGION_START + C1)) /tmp/copy1
	mark_dmesg
	check stale1-newest has extra
	new_dmesg stale1-msg 'pkram: metadata copy 1 is damaged or stale, rewriting it from copy 0'
	pkram-test devmem-save "$REGION_START" "$C1" /tmp/copy0
	pkram_load && pkram-test destroy extra && pkram_unload
	pkram-test devmem-load "$REGION_START" /tmp/copy0
	mark_dmesg
	check stale0-newest hasnt extra
	new_dmesg stale0-msg 'pkram: metadata copy 0 is damaged or stale, rewriting it from copy 1'
	# both copies damaged: refused
	refused version 8 'pkram: metadata copy 0: superblock has unknown format version 252'
	check untouched load_verify
	refused sbcrc 1000 'pkram: metadata copy 0: superblock CRC mismatch'
	refused table 4096 'pkram: metadata copy 0: node table / owner map CRC mismatch'
	check_not geometry-refused insmod "$PKRAM_KO" region=32M@$REGION_START
	check_dmesg geometry-msg 'pkram: metadata copy 0: superblock describes 67108864 bytes at 0x40000000'
	# format=1 leaves a valid region alone
	check format-valid-keeps load_verify format=1
	both 4100
	check format-wipes pkram_load format=1
	check_dmesg format-msg 'pkram: format=1: wiping the region'
	check_eq format-empty "$(sysfs nr_nodes) $(sysfs free_frames)" "0 31"
	pkram_unload
	check adopt-after-format adopted
	# three nodes, one bit of copy 0's owner map flipped, then kexec
	check kexec-setup sh -c 'for n in 1 2 3; do pkram-test create n$n 3 && pkram-test fill n$n $n ||
		exit 1; done'
	pkram_unload
	xor $((OWNER + 8)) 0x04
	vm_kexec
}

stage2() {
	check kexec-adopted adopted
	check_dmesg kexec-msg 'pkram: metadata copy 0: node table / owner map CRC mismatch in chunk 16'
	check kexec-nodes sh -c 'for n in 1 2 3; do pkram-test verify n$n $n || exit 1; done'
}
