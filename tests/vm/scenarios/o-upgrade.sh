# SPDX-License-Identifier: GPL-2.0
# o: a region written by the module of format version 2 (one metadata copy;
# /lib/modules/KERNEL/pkram-v2.ko, which tools/vm-test builds from the last commit
# with that format) is adopted by the current module after a kexec and
# upgraded to version 3 (two copies), with every node, byte and hole; the
# version 2 module then refuses the region, writing nothing, and the
# current one adopts it again; one flipped bit in copy 1 loses nothing.
# pkram-v2.ko predates the 7.x port (pte_devmap): not on sid.
# vm-test-kernels: 6.1 6.12
# vm-test-expect: v2-load v2-nodes v2-format kexec-stage1
# vm-test-expect: adopt upgrade-msg format-3 nodes sparse unload
# vm-test-expect: downgrade-refused downgrade-msg readopt readopt-quiet bit1 bit1-msg dmesg-clean

C1=$(pkram-test copy-size 32)	# metadata copy 1 starts here (64 MiB: 32 frames)

v2_load() {
	pkram_deps || return 1
	insmod "$MODDIR/pkram-v2.ko" region="$REGION"
}
verify_all() { pkram-test verify a 1 && pkram-test verify b 2; }
# span and populated count of node $1 (debugfs)
span_pop() { awk -v n="$1" '$1 == n { print $3, $6 }' /sys/kernel/debug/pkram/nodes; }

stage1() {
	check v2-load v2_load
	check v2-nodes sh -c 'pkram-test create a 3 && pkram-test fill a 1 &&
		pkram-test create b 2 && pkram-test fill b 2 &&
		pkram-test place s default 0 5 1 >/dev/null'
	check_eq v2-format "$(pkram-test version | grep -o 'format=[0-9]*')" format=2
	vm_kexec
}

adopted() { pkram_load && [ "$(sysfs adopted)" = 1 ]; }
readopt() { pkram_load && verify_all && pkram_unload; }

stage2() {
	check adopt adopted
	check_dmesg upgrade-msg 'pkram: upgrading the format version 2 region to version 3'
	check_eq format-3 "$(pkram-test version | grep -o 'format=[0-9]*')" format=3
	check nodes verify_all
	check_eq sparse "$(span_pop s)" "6 1"
	check unload pkram_unload
	check_not downgrade-refused v2_load
	check_dmesg downgrade-msg 'pkram: superblock has unknown format version 3'
	mark=$(dmesg | wc -l)
	check readopt readopt
	if dmesg | tail -n +$((mark + 1)) | grep -q 'pkram: metadata copy'; then
		fail readopt-quiet "$(dmesg | grep 'pkram: metadata copy' | head -n 2 | tr '\n' ' ')"
	else pass readopt-quiet; fi
	pkram-test devmem-xor $((REGION_START + C1 + 4096)) 0x02 >/dev/null
	check bit1 readopt
	check_dmesg bit1-msg 'pkram: metadata copy 1: node table / owner map CRC mismatch in chunk 0'
}
