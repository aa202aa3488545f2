# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash
# m: NUMA placement in a guest with two emulated NUMA nodes (QEMU -numa: 1 GiB
# and one CPU each, boundary at 0x40000000) and a region that straddles them
# (15 data frames on node 0, 16 on node 1). pkram.ko names each frame's node
# (sysfs numa, debugfs numa); PKRAM_IOC_SET_POLICY bind/preferred/interleave
# take frames where asked, bind is ENOSPC when its node is full. pkramfs-fuse
# --numa on kmod: NODE puts every frame of the node there, interleave both,
# auto the node holding most of the region with every thread on its CPU; on
# anon and shm the pages of the arena really are on the node (numa_maps
# N0=/N1=), auto follows the CPUs the daemon may run on. Bad nodes are refused
# with one line and nothing left attached.
# vm-test-numa: 2
# vm-test-region-start: 0x3e000000
# vm-test-timeout: 400
# vm-test-expect: guest-numa load spans sysfs-numa place-bind1 on-node1
# vm-test-expect: place-bind0 on-node0 place-interleave interleaved
# vm-test-expect: place-preferred preferred-spill place-bind-full bind-full-kept
# vm-test-expect: selftest fuse kmod-bind-mount kmod-bind-write kmod-bind-frames
# vm-test-expect: kmod-bind-umount kmod-il-mount kmod-il-write kmod-il-frames
# vm-test-expect: kmod-il-umount kmod-auto-mount kmod-auto-write kmod-auto-frames
# vm-test-expect: kmod-auto-pinned kmod-auto-umount kmod-bad-node kmod-bad-node-says
# vm-test-expect: kmod-bad-node-nothing anon-bind-mount anon-bind-pages
# vm-test-expect: anon-bind-umount shm-bind-mount shm-bind-pages shm-bind-umount
# vm-test-expect: anon-il-mount anon-il-pages anon-il-umount anon-auto-mount
# vm-test-expect: anon-auto-pages anon-auto-pinned anon-auto-umount anon-bad-node
# vm-test-expect: anon-bad-node-says free-back dmesg-clean

# shellcheck disable=SC2034  # lib.sh reads them
BACKEND=kmod
SHM_DIR=/tmp/shm	# tmpfs: mbind sets the node file's shared policy

numa_of() {	# numa_of NAME: "NID:FRAMES ..." of a pkram.ko node (debugfs)
	sed -n "s/^$1 //p" /sys/kernel/debug/pkram/numa
}

# arena_pages POLICY PID: "N0 N1" 4 KiB page counts of the largest mapping
# of PID whose numa_maps policy is POLICY (the arena)
arena_pages() {
	awk -v pol="$1" '$2 == pol {
		n0 = 0; n1 = 0
		for (i = 3; i <= NF; i++) {
			if ($i ~ /^N0=/) n0 = substr($i, 4) + 0
			if ($i ~ /^N1=/) n1 = substr($i, 4) + 0
		}
		if (n0 + n1 > best) { best = n0 + n1; out = n0 " " n1 }
	} END { print out }' "/proc/$2/numa_maps"
}

# pages_ok NAME POLICY PID MIN0 MAX0 MIN1 MAX1: the arena's pages per node in range
pages_ok() {
	local got n0 n1
	got=$(arena_pages "$2" "$3")
	n0=${got% *}
	n1=${got#* }
	if [ -n "$got" ] && [ "$n0" -ge "$4" ] && [ "$n0" -le "$5" ] &&
		[ "$n1" -ge "$6" ] && [ "$n1" -le "$7" ]; then
		pass "$1"
		echo "# $1: $2 N0=$n0 N1=$n1"
	else
		fail "$1" "$2 pages N0 N1 = '$got'; $(grep -c . "/proc/$3/numa_maps") mappings"
		cat "/proc/$3/numa_maps"
	fi
}

# pinned NAME PID CPUS: every thread of PID may run on CPUS only
pinned() {
	local t bad=
	for t in /proc/"$2"/task/*; do
		grep -q "^Cpus_allowed_list:[[:space:]]*$3\$" "$t/status" || bad="$bad ${t##*/}"
	done
	if [ -z "$bad" ]; then pass "$1"; else fail "$1" "threads$bad not on CPUs $3"; fi
}

write_mib() {	# write_mib FILE MIB: random data, flushed to the daemon
	dd if=/dev/urandom of="$1" bs=1M count="$2" 2>/dev/null && sync
}

# kmod_daemon TAG NAME NUMA CHECK-FRAMES-REGEX: mount node NAME with --numa,
# write 4 MiB, check where its frames are, unmount, destroy
kmod_daemon() {
	check "kmod-$1-mount" pkramfs_mount "$2" "/mnt/$2" --size=8m --numa="$3"
	check "kmod-$1-write" write_mib "/mnt/$2/f" 4
	if numa_of "$2" | grep -qE "$4"; then
		pass "kmod-$1-frames"
		echo "# kmod-$1-frames: $(numa_of "$2")"
	else
		fail "kmod-$1-frames" "frames on '$(numa_of "$2")', expected /$4/"
	fi
	[ "$1" = auto ] && pinned kmod-auto-pinned "$(serving_pid "$2")" 1
	check "kmod-$1-umount" pkramfs_umount "$2" "/mnt/$2"
	pkramfs-ctl destroy "$2" >/dev/null
}

# mem_daemon TAG BACKEND NAME POLICY MIN0 MAX0 MIN1 MAX1 OPTION...: an anon
# or shm mount; 8 MiB written (2048 pages) must sit on the nodes as given
mem_daemon() {
	local tag=$1 name=$3 pol=$4 a=$5 b=$6 c=$7 d=$8 pid
	BACKEND=$2	# backend_args (lib.sh) gives --backend
	shift 8
	check "$tag-mount" pkramfs_mount "$name" "/mnt/$name" --size=32m "$@"
	BACKEND=kmod
	pid=$(serving_pid "$name")
	write_mib "/mnt/$name/f" 8
	pages_ok "$tag-pages" "$pol" "$pid" "$a" "$b" "$c" "$d"
	[ "$tag" = anon-auto ] && pinned anon-auto-pinned "$pid" 1
	check "$tag-umount" pkramfs_umount "$name" "/mnt/$name"
}

# bad_node TAG OPTION...: refused with one line naming node 2, nothing mounted
bad_node() {
	local tag=$1
	shift
	mkdir -p /mnt/bad
	if pkramfs-fuse -f --pkram=bad "$@" /mnt/bad >/tmp/bad.out 2>&1; then
		fail "$tag" "--numa=2 was accepted"
		umount /mnt/bad
	else
		pass "$tag"
	fi
	if [ "$(wc -l </tmp/bad.out)" = 1 ] && grep -q 'NUMA node 2' /tmp/bad.out; then
		pass "$tag-says"
	else
		fail "$tag-says" "$(tr '\n' ' ' </tmp/bad.out)"
	fi
	echo "# $tag: $(cat /tmp/bad.out)"
}

stage1() {
	check_eq guest-numa "$(cat /sys/devices/system/node/online) $(cat /sys/devices/system/node/node1/cpulist)" "0-1 1"
	check load pkram_load
	check_dmesg spans 'pkram: region spans NUMA nodes 0-1'
	check_eq sysfs-numa "$(sysfs numa | tr '\n' ' ')" "0 15 15 1 16 16 "

	# the module alone
	check_eq place-bind1 "$(pkram-test place pb1 bind 1 0 4)" 0
	check_eq on-node1 "$(numa_of pb1)" "1:4"
	check_eq place-bind0 "$(pkram-test place pb0 bind 0 0 4)" 0
	check_eq on-node0 "$(numa_of pb0)" "0:4"
	check_eq place-interleave "$(pkram-test place pi interleave 0 0 6)" 0
	check_eq interleaved "$(numa_of pi)" "0:3 1:3"
	# node 0 has 15 - 4 - 3 = 8 frames left: preferred takes them, then node 1
	check_eq place-preferred "$(pkram-test place pp preferred 0 0 10)" 0
	check_eq preferred-spill "$(numa_of pp)" "0:8 1:2"
	check_eq place-bind-full "$(pkram-test place pf bind 0 0 1)" ENOSPC
	check_eq bind-full-kept "$(sysfs numa | tr '\n' ' ')" "0 15 0 1 16 7 "
	for n in pb1 pb0 pi pp pf; do pkram-test destroy $n; done
	check selftest pkram-test selftest m

	# pkramfs-fuse on kmod nodes
	check fuse fuse_load
	kmod_daemon bind nb 1 '^1:[0-9]+$'
	kmod_daemon il ni interleave '^0:[0-9]+ 1:[0-9]+$'
	# auto: node 1 holds 16 of the 31 data frames
	kmod_daemon auto na auto '^1:[0-9]+$'
	bad_node kmod-bad-node --backend=kmod --numa=2
	check_eq kmod-bad-node-nothing "$(numa_of bad)$(sysfs nr_nodes)" 0

	# anon and shm: the kernel's pages, as numa_maps counts them
	mem_daemon anon-bind anon ab bind:1 0 0 2048 9000 --numa=1
	mkdir -m 0700 "$SHM_DIR"
	mem_daemon shm-bind shm sb bind:0 2048 9000 0 0 --numa=0
	mem_daemon anon-il anon ai interleave:0-1 900 9000 900 9000 --numa=interleave
	# auto follows the CPUs the daemon may run on: from a shell on CPU 1 (node 1)
	taskset -p 2 $$ >/dev/null
	mem_daemon anon-auto anon aa prefer:1 0 0 2048 9000 --numa=auto
	taskset -p 3 $$ >/dev/null
	bad_node anon-bad-node --backend=anon --numa=2
	check_eq free-back "$(sysfs free_frames)" 31
}
