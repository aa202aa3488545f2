# SPDX-License-Identifier: GPL-2.0
# n: frames that leave a node are unreachable before another node gets them.
# stale-attach: a thread maps and faults a node while ATTACH fails in its
# last copy_to_user (forced with a userfaultfd write-protected argument);
# the fd is detached, and neither then nor after DESTROY and a new node
# taking every frame does the old mapping reach a frame (SIGBUS).
# pin-reuse: pages of two frames held by pipes (vmsplice: get_user_pages)
# when the frames leave by PUNCH and DESTROY: they are quarantined, a new
# node cannot get them and the pipes never show its bytes; once the pipes
# are read the frames are free again.  pin-uring: io_uring fixed buffers
# over a node mapping are refused or quarantine the frame.  pin-rmmod:
# rmmod waits while a page of the region is referenced.  bench: POPULATE
# and PUNCH latency and the worst fault of another node meanwhile (printed).
# vm-test-expect: load stale-attach pin-reuse pin-uring pin-rmmod dmesg-clean

pin_rmmod() {
	# a page of a node in a pipe (vmsplice), its mapping and fd closed
	pkram-test create pr 1 && pkram-test fill pr 5 || return 1
	pkram-test splice-hold pr /tmp &
	holder=$!
	n=0
	while [ ! -e /tmp/hold.ready ]; do
		n=$((n + 1)); [ $n -gt 100 ] && return 1; usleep 100000
	done
	rmmod pkram &
	rm_pid=$!
	sleep 2
	alive "$rm_pid" || { echo "rmmod finished while a page was held"; return 1; }
	touch /tmp/hold.go
	wait "$holder" || { echo "holder failed"; return 1; }
	n=0
	while alive "$rm_pid"; do
		n=$((n + 1)); [ $n -gt 100 ] && { echo "rmmod still waiting"; return 1; }; usleep 100000
	done
	wait "$rm_pid" && dmesg | grep -q 'pkram: rmmod waits for'
}

stage1() {
	check load pkram_load
	pkram-test bench 20
	pkram-test stale-attach "$SCEN.stale" >/tmp/o 2>&1; rc=$?; cat /tmp/o
	check_eq stale-attach "$rc" 0
	pkram-test pin-reuse "$SCEN.pin" >/tmp/o 2>&1; rc=$?; cat /tmp/o
	check_eq pin-reuse "$rc" 0
	pkram-test pin-uring "$SCEN.uring" >/tmp/o 2>&1; rc=$?; cat /tmp/o
	check_eq pin-uring "$rc" 0
	check pin-rmmod pin_rmmod
}
