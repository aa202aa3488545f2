# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash disable=SC1090,SC1091
# Helpers for the guest side of tools/vm-test; sourced by /init.
#
# A scenario is tests/vm/scenarios/NAME.sh.  It defines stage1 (and stage2,
# stage3, ... if it kexecs); each stage function calls check/pass/fail and
# ends by returning (scenario complete) or by calling vm_kexec (go to the
# next stage).  Files under /state survive vm_kexec (the guest repacks its
# own root into the next initramfs); /tmp does not.  Lines
# "# vm-test-expect: a b c" in the scenario name results that must PASS.

. /vmtest/config.sh		# REGION, REGION_START (written by tools/vm-test)

cmdline_value() {	# last KEY=value word of the kernel command line
	local w v=
	for w in $(cat /proc/cmdline); do
		case $w in "$1"=*) v=${w#*=} ;; esac
	done
	echo "$v"
}

pass() { echo "PASS $SCEN.$1"; }
fail() { echo "FAIL $SCEN.$1: $2"; }

# check NAME CMD...: PASS if CMD succeeds, else FAIL with its output
check() {
	local name=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		pass "$name"
	else
		fail "$name" "'$*' failed: $(tail -c 300 /tmp/check.out | tr '\n' ' ')"
	fi
}

# check_not NAME CMD...: PASS if CMD fails
check_not() {
	local name=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		fail "$name" "'$*' succeeded unexpectedly"
	else
		pass "$name"
	fi
}

# check_eq NAME GOT WANT
check_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', expected '$3'"; fi
}

# check_dmesg NAME REGEX: the kernel log has a line matching REGEX
check_dmesg() {
	if dmesg | grep -qE "$2"; then pass "$1"; else fail "$1" "no '$2' in dmesg"; fi
}

pkram_load() {		# pkram_load [PARAM=VALUE...]
	[ -d /sys/module/libcrc32c ] || insmod /lib/modules/libcrc32c.ko || return 1
	insmod /lib/modules/pkram.ko region="$REGION" "$@"
}

pkram_unload() { rmmod pkram; }

fuse_load() { [ -d /sys/module/fuse ] || insmod /lib/modules/fuse.ko; }

sysfs() { cat "/sys/kernel/pkram/$1"; }

# vm_kexec: repack this root as the next initramfs and kexec into stage+1
vm_kexec() {
	local next=$((STAGE + 1))
	echo "VMTEST-KEXEC $SCEN stage $next"
	dmesg_check "dmesg-clean-stage$STAGE"
	dump_dmesg
	(cd / && find . -xdev | cpio -o -H newc >/tmp/next.cpio 2>/dev/null)
	if ! kexec -s -l /vmlinuz --initrd=/tmp/next.cpio --reuse-cmdline \
			--append="stage=$next" >/tmp/kexec.out 2>&1; then
		fail "kexec-stage$STAGE" "$(tr '\n' ' ' </tmp/kexec.out)"
		vm_finish
	fi
	pass "kexec-stage$STAGE"
	sync
	kexec -e
	fail "kexec-exec-stage$STAGE" "kexec -e returned"
	vm_finish
}

dump_dmesg() { dmesg | sed 's/^/| /'; dmesg -c >/dev/null; }

BAD_DMESG='BUG:|Oops|WARNING:|Call Trace|general protection|Kernel panic'

dmesg_check() {	# dmesg_check NAME: no BUG, Oops or WARNING in the kernel log
	if dmesg | grep -qE "$BAD_DMESG"; then
		fail "$1" "$(dmesg | grep -E "$BAD_DMESG" | head -n 3 | tr '\n' ' ')"
	else
		pass "$1"
	fi
}

vm_finish() {
	dmesg_check dmesg-clean
	dump_dmesg
	echo "VMTEST-DONE $SCEN"
	poweroff -f
}

vm_main() {
	SCEN=$(cmdline_value vmtest)
	STAGE=$(cmdline_value stage)
	: "${STAGE:=1}"
	echo "VMTEST-STAGE $SCEN $STAGE"
	if [ ! -f "/vmtest/scenarios/$SCEN.sh" ]; then
		fail "scenario" "no scenario '$SCEN'"
		vm_finish
	fi
	. "/vmtest/scenarios/$SCEN.sh"
	"stage$STAGE"
	vm_finish
}
