# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash
# l: pkramfs-ctl export/import with pkram.ko nodes. An unmounted kmod node is
# exported (attached only to read it: the same frames, detached again) and
# --verify'd; imported as a new kmod node (the image verified whole first,
# then written straight into the node) that mounts with the same manifest; a
# mounted kmod node is exported too: its daemon preserves it (read-only), lends
# its /dev/pkram descriptor over the control socket (node-fd, only while
# preserved, closed on its side after sending, also when the client never
# reads it) and unpreserves it; the image imports into a node with the tree as
# it was, and the daemon goes on serving, writable; a node preserved before
# stays so. An import over an existing node needs --force; a damaged image is
# refused, naming the byte offset, and leaves no node and every frame free.
# vm-test-expect: load fuse mount tree manifest umount export export-says
# vm-test-expect: untouched detached import import-says mounted-copy
# vm-test-expect: same-manifest nodefd-active nodefd-active-no-fd
# vm-test-expect: export-mounted export-mounted-writable-says
# vm-test-expect: export-mounted-fds export-mounted-writable export-mounted-serving
# vm-test-expect: nodefd-drop nodefd-drop-fds nodefd-preserved nodefd-preserved-fd
# vm-test-expect: nodefd-closed preserved-erofs export-preserved
# vm-test-expect: export-preserved-still-erofs unpreserved-writable
# vm-test-expect: umount-copy after-umount-manifest import-mounted mounted-import
# vm-test-expect: mounted-import-manifest umount-import import-exists import-force
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

	# ---- export of the mounted node: preserved meanwhile, read through the
	# daemon's own /dev/pkram descriptor, writable again after
	pid=$(cat /tmp/fuse-l2.pid)
	sock=/run/pkramfs/l2.sock
	fds() { ls "/proc/$pid/fd" | wc -l; }
	dd if=/dev/urandom of="$MNT/written-while-mounted" bs=64k count=40 2>/dev/null
	echo mounted >"$MNT/mounted-note"
	sync
	save_manifest manifest-mounted "$MNT" /tmp/l2.manifest
	fds0=$(fds)
	# node-fd is refused while the node is active (no consistent cut)
	pkram-test ask "$sock" node-fd >/tmp/ask.out 2>&1
	cat /tmp/ask.out
	check nodefd-active grep -q '"ok":false.*not preserved.*"errno":16' /tmp/ask.out
	check nodefd-active-no-fd grep -q '^fds 0 chr 0$' /tmp/ask.out
	l_ctl export-mounted 0 "exported node 'l2'" export l2 /tmp/l2.img --verify
	check export-mounted-writable-says grep -q "was read-only for .* and is writable again" \
		/tmp/ctl.out
	check_eq export-mounted-fds "$(fds)" "$fds0"
	check export-mounted-writable sh -c "echo after >$MNT/after-export"
	check export-mounted-serving sh -c \
		"kill -0 $pid && pkramfs-ctl status l2 | grep -q active && grep -q after $MNT/after-export"

	# a client that never reads the reply: the daemon keeps no descriptor
	check preserve-for-drop pkramfs-ctl preserve l2
	check nodefd-drop pkram-test ask "$sock" node-fd drop
	usleep 300000
	check_eq nodefd-drop-fds "$(fds)" "$fds0"
	pkram-test ask "$sock" node-fd >/tmp/ask.out 2>&1
	cat /tmp/ask.out
	check nodefd-preserved grep -q '"ok":true.*"node_bytes":[1-9]' /tmp/ask.out
	check nodefd-preserved-fd grep -q '^fds 1 chr 1$' /tmp/ask.out
	check_eq nodefd-closed "$(fds)" "$fds0"
	# a node preserved before the export stays preserved (read-only) after it
	check_not preserved-erofs sh -c "echo x >$MNT/while-preserved"
	l_ctl export-preserved 0 "stays preserved" export l2 /tmp/l2p.img
	check_not export-preserved-still-erofs sh -c "echo x >$MNT/while-preserved"
	check unpreserve-again pkramfs-ctl unpreserve l2
	check unpreserved-writable sh -c "echo x >$MNT/while-preserved"
	rm -f /tmp/l2p.img
	save_manifest manifest-after "$MNT" /tmp/l2-after.manifest
	check umount-copy pkramfs_umount l2 "$MNT"
	check remount-copy pkramfs_mount l2 "$MNT"
	check_manifest after-umount-manifest "$MNT" /tmp/l2-after.manifest
	check umount-copy-again pkramfs_umount l2 "$MNT"

	# the image of the mounted node: the tree as it was when exported
	l_ctl import-mounted 0 "imported node 'l4' (kmod" import /tmp/l2.img l4
	check mounted-import pkramfs_mount l4 "$MNT"
	check_manifest mounted-import-manifest "$MNT" /tmp/l2.manifest
	check umount-import pkramfs_umount l4 "$MNT"
	check destroy-import pkramfs-ctl destroy l4
	rm -f /tmp/l2.img

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
