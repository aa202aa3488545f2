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

. /vmtest/config.sh		# default REGION, REGION_START (written by tools/vm-test)

cmdline_value() {	# last KEY=value word of the kernel command line
	local w v=
	for w in $(cat /proc/cmdline); do
		case $w in "$1"=*) v=${w#*=} ;; esac
	done
	echo "$v"
}

# this VM's region: tools/vm-test passes vmtest_region=SIZE@START (the size
# can differ per scenario: "# vm-test-region: 512M")
if [ -n "$(cmdline_value vmtest_region)" ]; then
	REGION=$(cmdline_value vmtest_region)
	# shellcheck disable=SC2034  # used by scenarios
	REGION_START=${REGION#*@}
fi

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

# The modules of the running kernel: /lib/modules/$(uname -r)/ holds
# pkram.ko (and pkram-v2.ko where it builds), fuse.ko where FUSE is a module,
# and the modules pkram.ko depends on, to be loaded in the order of the file
# "deps" (tools/vm-test; libcrc32c on 6.1 and 6.12, nothing on 7.2).
MODDIR=/lib/modules/$(uname -r)
PKRAM_KO=$MODDIR/pkram.ko

pkram_deps() {
	local m
	for m in $(cat "$MODDIR/deps" 2>/dev/null); do
		[ -d "/sys/module/$m" ] || insmod "$MODDIR/$m.ko" || return 1
	done
}

pkram_load() {		# pkram_load [PARAM=VALUE...]
	pkram_deps || return 1
	insmod "$PKRAM_KO" region="$REGION" "$@"
}

pkram_unload() { rmmod pkram; }

# fuse.ko where it is a module (6.1); built in from 6.12 on
fuse_load() {
	[ -d /sys/module/fuse ] && return 0
	if [ -e "$MODDIR/fuse.ko" ]; then insmod "$MODDIR/fuse.ko"; else grep -qw fuse /proc/filesystems; fi
}

# kernel_name: 6.1, 6.12 or sid, the name tools/vm-test gave the running
# kernel (/vmtest/kernels: NAME ABI per line)
kernel_name() { awk -v r="$(uname -r)" '$2 == r { print $1 }' /vmtest/kernels; }

sysfs() { cat "/sys/kernel/pkram/$1"; }

# ---- the pkramfs daemon ------------------------------------------------------
# Nodes are pkram.ko nodes (--backend=kmod) unless the kernel command line
# says vmtest_backend=shm (PKRAMFS_VM_APPEND=vmtest_backend=shm on the host):
# then they are files in /state/shm, which vm_kexec carries over by copying
# them (slow, but it lets the scenarios run against the shm backend).
BACKEND=$(cmdline_value vmtest_backend)
: "${BACKEND:=kmod}"
SHM_DIR=/state/shm

backend_args() {
	case $BACKEND in
	shm) echo "--backend=shm --shm-dir=$SHM_DIR" ;;
	*) echo "--backend=$BACKEND" ;;
	esac
}

pkramfs_ctl() {		# pkramfs-ctl with the backend's options
	if [ "$BACKEND" = shm ]; then
		pkramfs-ctl --shm-dir="$SHM_DIR" "$@"
	else
		pkramfs-ctl "$@"
	fi
}

mounted() { grep -q "^[^ ]* $1 fuse" /proc/mounts; }

alive() {	# alive PID: running (not gone, not a zombie)
	[ -e "/proc/$1/status" ] && ! grep -q '^State:.*Z' "/proc/$1/status"
}

# pkramfs_mount NAME MNT [OPTION...]: start pkramfs-fuse -f in the
# background (pid in /tmp/fuse-NAME.pid, its messages in /tmp/fuse-NAME.log)
# and wait until MNT is mounted.  Call it from the stage's shell (check is
# fine, $(...) is not), so that pkramfs_umount/pkramfs_kill can reap it.
pkramfs_mount() {
	local name=$1 mnt=$2 pid n=0
	shift 2
	mkdir -p "$mnt"
	# shellcheck disable=SC2046
	pkramfs-fuse -f --pkram="$name" $(backend_args) "$@" "$mnt" \
		>>"/tmp/fuse-$name.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"/tmp/fuse-$name.pid"
	while ! mounted "$mnt"; do
		if ! alive "$pid"; then
			wait "$pid"
			echo "pkramfs-fuse exited with $?: $(cat "/tmp/fuse-$name.log")"
			return 1
		fi
		n=$((n + 1))
		if [ "$n" -gt 1200 ]; then
			echo "not mounted after 120 s: $(cat "/tmp/fuse-$name.log")"
			return 1
		fi
		usleep 100000
	done
}

# wait_exit NAME: wait (120 s at most) for the daemon of NAME to exit; its
# exit status
wait_exit() {
	local pid n=0
	pid=$(cat "/tmp/fuse-$1.pid")
	while alive "$pid"; do
		n=$((n + 1))
		if [ "$n" -gt 1200 ]; then
			echo "pkramfs-fuse $pid still running after 120 s"
			return 1
		fi
		usleep 100000
	done
	wait "$pid"
}

# pkramfs_umount NAME MNT: unmount; the daemon writes its final checkpoint
# and must exit 0
pkramfs_umount() {
	local rc
	umount "$2" || return 1
	wait_exit "$1"
	rc=$?
	if [ "$rc" != 0 ]; then
		echo "pkramfs-fuse exited with $rc: $(cat "/tmp/fuse-$1.log")"
		return 1
	fi
}

# serving_pid NAME: the process that serves NAME's mount: the holder's child
# (fuse/holder.h; /tmp/fuse-NAME.pid is the holder), or the daemon itself where
# it has no holder (--backend=anon)
serving_pid() {
	local h c
	h=$(cat "/tmp/fuse-$1.pid")
	c=$(cat /proc/"$h"/task/*/children 2>/dev/null | tr -s ' \n' '  ' | sed 's/^ //; s/ .*//')
	echo "${c:-$h}"
}

# pkramfs_kill NAME MNT: kill -9 the daemon and detach its dead mount
pkramfs_kill() {
	kill -9 "$(cat "/tmp/fuse-$1.pid")" || return 1
	wait_exit "$1"
	[ $? = 137 ] || return 1
	umount -l "$2"
}

# vm_kexec [nosync] [kernel=NAME]: repack this root as the next initramfs
# and kexec into stage+1; "nosync" leaves out the sync before kexec -e;
# kernel=NAME (6.1, 6.12, sid: a scenario with "# vm-test-kernels: ...")
# boots that kernel instead of the running one
vm_kexec() {
	local next=$((STAGE + 1)) sync=1 image=/vmlinuz w abi
	for w in "$@"; do
		case $w in
		nosync) sync=0 ;;
		kernel=*)
			abi=$(awk -v n="${w#kernel=}" '$1 == n { print $2 }' /vmtest/kernels)
			image=/boot/vmlinuz-$abi
			if [ -z "$abi" ] || [ ! -e "$image" ]; then
				fail "kexec-stage$STAGE" "no kernel ${w#kernel=} in this initramfs"
				vm_finish
			fi
			;;
		esac
	done
	echo "VMTEST-KEXEC $SCEN stage $next (uptime $(cut -d' ' -f1 /proc/uptime) s) into ${image#/boot/vmlinuz-}"
	dmesg_check "dmesg-clean-stage$STAGE"
	dump_dmesg
	(cd / && find . -xdev | cpio -o -H newc >/tmp/next.cpio 2>/dev/null)
	if ! kexec -s -l "$image" --initrd=/tmp/next.cpio --reuse-cmdline \
			--append="stage=$next" >/tmp/kexec.out 2>&1; then
		fail "kexec-stage$STAGE" "$(tr '\n' ' ' </tmp/kexec.out)"
		vm_finish
	fi
	pass "kexec-stage$STAGE"
	[ "$sync" = 0 ] || sync
	kexec -e
	fail "kexec-exec-stage$STAGE" "kexec -e returned"
	vm_finish
}

dump_dmesg() {
	# how many 2 MiB mappings pkram.ko made in this boot (debugfs; 0 on 7.2)
	[ -r /sys/kernel/debug/pkram/pmd_faults ] &&
		echo "VMTEST-PMD-FAULTS $SCEN stage $STAGE: $(cat /sys/kernel/debug/pkram/pmd_faults)"
	dmesg | sed 's/^/| /'
	dmesg -c >/dev/null
}

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
	echo "VMTEST-UPTIME $SCEN stage $STAGE: $(cut -d' ' -f1 /proc/uptime) s"
	echo "VMTEST-DONE $SCEN"
	poweroff -f
}

vm_main() {
	SCEN=$(cmdline_value vmtest)
	STAGE=$(cmdline_value stage)
	: "${STAGE:=1}"
	echo "VMTEST-STAGE $SCEN $STAGE (uptime $(cut -d' ' -f1 /proc/uptime) s) kernel $(uname -r)"
	if [ ! -f "/vmtest/scenarios/$SCEN.sh" ]; then
		fail "scenario" "no scenario '$SCEN'"
		vm_finish
	fi
	. "/vmtest/scenarios/$SCEN.sh"
	"stage$STAGE"
	vm_finish
}
