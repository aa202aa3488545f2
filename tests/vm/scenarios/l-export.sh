# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash
# l: pkramfs-ctl export/import with pkram.ko nodes. An unmounted kmod node is
# exported (attached only to read it: the same frames, detached again) and
# --verify'd; imported as a new kmod node (the image verified whole first,
# then written straight into the node) that mounts with the same manifest; a
# mounted kmod node's export is refused ("unmount it"), leaving no file; an
# import over an existing node needs --force; a damaged image is refused,
# naming the byte offset, and leaves no node and every frame free.
# vm-test-expect: load fuse mount tree manifest umount export export-says
# vm-test-expect: untouched detached import import-says mounted-copy
# vm-test-expect: same-manifest export-mounted export-mounted-says
# vm-test-expect: export-mounted-no-file umount-copy import-exists import-force
# vm-test-expect: mounted-forced same-manifest-forced umount-forced
# vm-test-expect: damaged damaged-says damaged-no-node damaged-free dmesg-clean
# vm-test-region: 256M
# vm-test-timeout: 600

. /vmtest/tree.sh

# shellcheck disable=SC2034  # lib.sh reads it
BACKEND=kmod
MNT=/mnt/l

# l_ctl NAME RC TEXT ARGS...: pkramfs-ctl ARGS exits with RC and says TEXT (on
# stdout for 0, on one line of stderr otherwise)
l_ctl() {
	local name=$1 rc=$2 text=$3 got out
	shift 3
	pkramfs-ctl "$@" >/tmp/ctl.out 2>/tmp/ctl.err
	got=$?
	echo "pkramfs-ctl $*: exit $got: $(cat /tmp/ctl.out /tmp/ctl.err)"
	out=/tmp/ctl.out
	[ "$rc" = 0 ] || out=/tmp/ctl.err
	if [ "$got" != "$rc" ]; then
		fail "$name" "exit $got, expected $rc: $(tr '\n' ' ' </tmp/ctl.err)"
	elif [ "$rc" != 0 ] && [ "$(wc -l </tmp/ctl.err)" != 1 ]; then
		fail "$name" "not one line on stderr: $(tr '\n' ' ' </tmp/ctl.err)"
	elif ! grep -qF -- "$text" "$out"; then
		fail "$name" "no '$text' in: $(tr '\n' ' ' <"$out")"
	else
		pass "$name"
	fi
}

stage1() {
	check load pkram_load
	check fuse fuse_load
	check mount pkramfs_mount l1 "$MNT" --size=48m
	check tree make_tree "$MNT" 200 6
	save_manifest manifest "$MNT" /tmp/l1.manifest
	check umount pkramfs_umount l1 "$MNT"

	# ---- export of an unmounted node: read through /dev/pkram, never written
	before=$(pkram-test stat l1)
	echo "before: $before"
	check export pkramfs-ctl export l1 /tmp/l1.img --verify
	cp /tmp/check.out /tmp/export.out
	cat /tmp/export.out
	check export-says grep -q "exported node 'l1'.*verified" /tmp/export.out
	after=$(pkram-test stat l1)
	check_eq untouched "$after" "$before"
	case $after in
	*" 0") pass detached ;;
	*) fail detached "still attached: $after" ;;
	esac

	# ---- import: a new kmod node with the same tree
	l_ctl import 0 "imported node 'l2' (kmod" import /tmp/l1.img l2
	check import-says pkram-test stat l2
	check mounted-copy pkramfs_mount l2 "$MNT"
	check_manifest same-manifest "$MNT" /tmp/l1.manifest
	l_ctl export-mounted 1 "unmount it" export l2 /tmp/l2.img
	check export-mounted-says grep -q "from pkram.ko" /tmp/ctl.err
	check_not export-mounted-no-file test -e /tmp/l2.img
	check umount-copy pkramfs_umount l2 "$MNT"

	l_ctl import-exists 1 "import --force replaces it" import /tmp/l1.img l2
	l_ctl import-force 0 "imported node 'l2'" import --force /tmp/l1.img l2
	check mounted-forced pkramfs_mount l2 "$MNT"
	check_manifest same-manifest-forced "$MNT" /tmp/l1.manifest
	check umount-forced pkramfs_umount l2 "$MNT"

	# ---- a damaged image: refused in the verification pass, no node made
	free0=$(sysfs free_frames)
	size=$(stat -c %s /tmp/l1.img)
	cp /tmp/l1.img /tmp/bad.img
	printf '\377\377\377\377' | dd of=/tmp/bad.img bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
	l_ctl damaged 1 "nothing was imported" import /tmp/bad.img l3
	check damaged-says grep -q "byte offset" /tmp/ctl.err
	check_not damaged-no-node pkram-test stat l3
	check_eq damaged-free "$(sysfs free_frames)" "$free0"
}
