# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash
# Test trees and manifests for the daemon scenarios (f-handover, g-unplanned,
# h-chain, i-kill9); sourced by them after lib.sh.  Manifests are written by
# /bin/pkram-manifest (tools/vm/pkram-manifest.c): one line per path with
# type, mode, owner, size, link count, mtime and ctime in ns, SHA-256 of the
# contents (or symlink target, device number), hard link group and xattrs.

now() { cut -d' ' -f1 /proc/uptime; }

# tcheck NAME CMD...: check, and print how long CMD took as "TIME SCEN.NAME S"
tcheck() {
	local t0
	t0=$(now)
	check "$@"
	echo "TIME $SCEN.$1 $(awk "BEGIN { print $(now) - $t0 }")"
}

# save_manifest NAME DIR FILE: DIR's manifest into FILE; PASS/FAIL NAME
save_manifest() {
	local t0
	t0=$(now)
	if pkram-manifest manifest --ctime "$2" >"$3" 2>/tmp/manifest.err; then
		pass "$1"
	else
		fail "$1" "pkram-manifest: $(head -c 300 /tmp/manifest.err | tr '\n' ' ')"
	fi
	echo "TIME $SCEN.$1 $(awk "BEGIN { print $(now) - $t0 }") ($(wc -l <"$3") paths)"
}

# check_manifest NAME DIR FILE: DIR's manifest equals FILE; else FAIL with
# the first differences (and more of the diff in the log)
check_manifest() {
	local t0
	t0=$(now)
	if ! pkram-manifest manifest --ctime "$2" >/tmp/manifest.now 2>/tmp/manifest.err; then
		fail "$1" "pkram-manifest: $(head -c 300 /tmp/manifest.err | tr '\n' ' ')"
	elif cmp -s "$3" /tmp/manifest.now; then
		pass "$1"
	else
		fail "$1" "$(diff "$3" /tmp/manifest.now | grep '^[-+][^-+]' | head -n 4 |
			cut -c 1-240 | tr '\n' ' ')"
		echo "---- diff $3 (saved) /tmp/manifest.now (now), $(diff "$3" /tmp/manifest.now |
			grep -c '^[-+][^-+]') lines differ"
		diff "$3" /tmp/manifest.now | head -n 60
	fi
	echo "TIME $SCEN.$1 $(awk "BEGIN { print $(now) - $t0 }")"
}

# make_tree DIR NFILES RANDOM_MIB: nested directories, every file type,
# symlinks (relative, absolute, dangling, to a directory, long), hard links,
# fifos, device nodes, owners and modes (suid, sgid, sticky), odd names,
# xattrs (text, binary, empty, 2000 bytes; on files, a directory, a fifo),
# a 1 GiB sparse file with three 64 KiB islands, RANDOM_MIB MiB from
# /dev/urandom and NFILES small files (0..4199 bytes) in DIR/many/dNNN/.
make_tree() {
	local d=$1 x=pkram-manifest
	mkdir -p "$d/dirs/a/b/c/d/e/f" "$d/empty-dir" "$d/links" "$d/sticky" "$d/sgid" &&
		chmod 1777 "$d/sticky" && chmod 2775 "$d/sgid" && chown 1000:1000 "$d/sgid" &&
		echo deep >"$d/dirs/a/b/c/d/e/f/deep.txt" &&
		echo in-sgid >"$d/sgid/file" &&
		echo hello >"$d/hello.txt" &&
		: >"$d/empty" &&
		printf 'a\000b\000\377' >"$d/binary" &&
		echo suid >"$d/suid" && chmod 4755 "$d/suid" &&
		echo owned >"$d/owned" && chown 1234:5678 "$d/owned" && chmod 0640 "$d/owned" &&
		echo old >"$d/old" && touch -d '2001-02-03 04:05:06' "$d/old" &&
		echo spaces >"$d/name with spaces" &&
		echo utf8 >"$d/$(printf '\303\274n\303\257c\303\266d\303\251')" &&
		ln -s ../hello.txt "$d/links/rel" &&
		ln -s /mnt/hello.txt "$d/links/abs" &&
		ln -s nowhere "$d/links/dangling" &&
		ln -s ../dirs/a "$d/links/to-dir" &&
		ln -s "$(printf '%0300d' 0)" "$d/links/long" &&
		echo shared >"$d/hard1" && ln "$d/hard1" "$d/dirs/hard2" &&
		ln "$d/hard1" "$d/links/hard3" &&
		mkfifo "$d/fifo" && mkfifo -m 0600 "$d/dirs/fifo2" &&
		mknod "$d/null" c 1 3 && mknod -m 0600 "$d/loop0" b 7 0 &&
		$x setxattr "$d/hello.txt" user.text "some text" &&
		$x setxattr "$d/hello.txt" user.binary 0x00ff7f80 &&
		$x setxattr "$d/hello.txt" user.empty "" &&
		$x setxattr "$d/dirs" user.dir dirvalue &&
		$x setxattr "$d/hard1" user.shared yes &&
		$x setxattr "$d/empty" user.big "0x$(head -c 2000 /dev/urandom | xxd -p | tr -d '\n')" &&
		$x setxattr "$d/fifo" trusted.fifo on &&
		truncate -s 1G "$d/sparse" &&
		dd if=/dev/urandom of="$d/sparse" bs=64k count=1 conv=notrunc 2>/dev/null &&
		dd if=/dev/urandom of="$d/sparse" bs=64k count=1 seek=8192 conv=notrunc 2>/dev/null &&
		dd if=/dev/urandom of="$d/sparse" bs=64k count=1 seek=16383 conv=notrunc 2>/dev/null &&
		dd if=/dev/urandom of="$d/random" bs=1M count="$3" 2>/dev/null &&
		mkdir "$d/many" && $x populate "$d/many" "$2"
}

# holes_zero FILE: a hole in the middle of make_tree's sparse file reads as zeros
holes_zero() {
	[ "$(dd if="$1" bs=64k skip=4096 count=16 2>/dev/null | sha256sum | cut -d' ' -f1)" = \
		"$(head -c 1048576 /dev/zero | sha256sum | cut -d' ' -f1)" ]
}

# change_tree DIR N: changes of every kind, different for each N:
# add, delete, rename (file, over a file, directory), overwrite in place and
# whole, truncate down and up, chmod, chown, xattr set/replace/remove, hard
# link add/remove, symlink replace, fifo add.  N is 1, 2 or 3; needs
# make_tree's tree with 1000 small files or more.
change_tree() {
	local d=$1 n=$2 x=pkram-manifest p
	p=$(( n - 1 ))
	mkdir "$d/added$n" && $x populate "$d/added$n" 150 "$((n + 100))" &&
		echo "stage $n" >"$d/added$n/note" && mkfifo "$d/added$n/fifo" &&
		ln -s "note" "$d/added$n/link" &&
		rm -rf "$d/many/d00$(((n - 1) * 4))" &&
		rm "$d/many/d009/f0090$n" &&
		mv "$d/many/d001/f0010$n" "$d/many/d002/moved-$n" &&
		mv "$d/many/d003/f0030$n" "$d/many/d003/f0031$n" &&
		mv "$d/many/d00$((n + 4))" "$d/dirs/a/renamed-dir-$n" &&
		dd if=/dev/urandom of="$d/random" bs=4k count=3 seek=$((n * 100 + 1)) \
			conv=notrunc 2>/dev/null &&
		echo "overwritten at stage $n" >"$d/hello.txt" &&
		truncate -s $((n * 10)) "$d/many/d009/f0091$n" &&
		truncate -s $((n * 100000 + 5)) "$d/many/d009/f0092$n" &&
		truncate -s 0 "$d/many/d009/f0093$n" &&
		chmod 0$((n % 7 + 1))$((n % 5))$((n % 3)) "$d/many/d009/f0094$n" &&
		chmod 0700 "$d/dirs/a/b" && chmod 0755 "$d/dirs/a/b" &&
		chown $((n * 11)):$((n * 13)) "$d/many/d009/f0095$n" &&
		$x setxattr "$d/hello.txt" user.text "stage $n text" &&
		$x setxattr "$d/hello.txt" "user.s$n" "0x0$n" &&
		$x setxattr "$d/many/d009/f0096$n" user.new "$n" &&
		{ [ "$p" = 0 ] || $x rmxattr "$d/hello.txt" "user.s$p"; } &&
		{ [ "$n" != 1 ] || $x rmxattr "$d/hello.txt" user.empty; } &&
		ln "$d/many/d009/f0097$n" "$d/added$n/hard-$n" &&
		{ [ "$n" != 2 ] || rm "$d/links/hard3"; } &&
		rm "$d/links/rel" && ln -s "../added$n/note" "$d/links/rel"
}

# status_is NAME STATE MANIFEST: "pkramfs-ctl status NAME" says STATE, this
# backend, and MANIFEST's numbers of files, directories and other inodes
status_is() {
	local f dirs o
	f=$(awk '$2 ~ /^f/ && $10 == "-"' "$3" | wc -l)
	dirs=$(awk '$2 ~ /^d/' "$3" | wc -l)
	o=$(awk '$2 !~ /^[fd]/ && $10 == "-"' "$3" | wc -l)
	pkramfs_ctl status "$1" >/tmp/status.out 2>&1
	cat /tmp/status.out
	grep -qx "state: *$2" /tmp/status.out &&
		grep -qx "backend: *$BACKEND" /tmp/status.out &&
		grep -qx "files: *$f ($dirs directories, $o other inodes)" /tmp/status.out
}

# node_state NAME: the pkram.ko node's state (debugfs), e.g. "preserved"
node_state() { awk -v n="$1" '$1 == n { print $2 }' /sys/kernel/debug/pkram/nodes; }

# erofs FILE: creating FILE fails with EROFS
erofs() { touch "$1" 2>&1 | grep -q 'Read-only file system'; }

# daemon_log NAME CHECK: show pkramfs-fuse's messages of this stage (node
# NAME); PASS CHECK if none is a warning or an error
daemon_log() {
	local log=/tmp/fuse-$1.log
	[ -s "$log" ] && sed "s/^/fuse-$1.log: /" "$log"
	if grep -qiE 'warn|error|critical' "$log" 2>/dev/null; then
		fail "$2" "$(grep -iE 'warn|error|critical' "$log" | head -n 3 | tr '\n' ' ')"
	else
		pass "$2"
	fi
}
