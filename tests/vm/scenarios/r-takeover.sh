# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash
# r: the mount outlives its serving process (fuse/holder.h, docs/operations.md
# "The holder"), on a pkram.ko node, under /bin/pkram-load (tools/vm/pkram-load.c:
# 3 processes, each with its working directory, an O_RDWR file and a shared
# mapping in the mount for its whole life; pwrite/pread/fsync, create,
# rename, unlink, mkdir/rmdir, readdir, each result checked against a model of
# the calls acknowledged so far; every failed call is logged with its errno).
#  - upgrade: 5 x pkramfs-ctl upgrade under the load, alternating a copy of
#    pkramfs-fuse (/opt/b) and /usr/bin's (the 5th without --exec: the
#    running binary): each exits 0 saying "upgraded", the new serving pid is
#    the holder's only child and runs that binary, restarts stays 0; the load
#    goes on after each, ends with 0 failed calls and its data verified; a
#    static tree is unchanged.
#  - kill: 5 x kill -9 of the serving process under a new load (another
#    number: vmtest_kills=N on the kernel command line, PKRAMFS_VM_APPEND on
#    the host): a new one, running the binary that served last, serves
#    within 30 s each time, the node stays mounted, every load process goes
#    on within 10 s (none stuck waiting for a reply), the files written
#    before each kill are there, the static tree is intact after the kills;
#    restarts 5, the cause names signal 9. The load's failed calls are
#    all EIO on 6.1 (requests in flight fail; the count per kill is printed as
#    "INFO ... EIO failures per kill") and on sid (FUSE_NOTIFY_RESEND) none
#    (a resent request that had been applied is answered, not applied
#    twice); no difference from the model.
#  - upgrade-bad: pkramfs-ctl upgrade --exec=/bin/true exits 1 saying the
#    upgrade failed; the running build serves again.
#  - holder: kill -9 of the holder ends the serving process and the mount
#    (ENOTCONN); umount -l; a new mount has the tree as it was (manifests).
# 6.1 (no resend) and sid (resend); 6.12 (which resends too) is left out for
# time (about 50 s of VM time per kernel).
# vm-test-kernels: 6.1 sid
# vm-test-region: 128M
# vm-test-expect: load fuse mount serving static upgrade-exit upgrade-serving
# vm-test-expect: upgrade-load-alive upgrade-restarts upgrade-load-stopped
# vm-test-expect: upgrade-load-clean upgrade-static kill-served kill-mounted
# vm-test-expect: kill-load-alive kill-acked kill-static kill-restarts
# vm-test-expect: kill-cause kill-load-stopped kill-failures kill-no-corrupt
# vm-test-expect: upgrade-bad upgrade-bad-serves tree holder-killed
# vm-test-expect: serving-gone enotconn umount-dead remount restored umount
# vm-test-expect: dmesg-clean

. /vmtest/tree.sh
# shellcheck disable=SC2034  # lib.sh reads it
BACKEND=kmod	# the holder is about pkram.ko nodes here, whatever the command line says
OPTS=--size=64M
# kills of the serving process (vmtest_kills=N on the kernel command line:
# PKRAMFS_VM_APPEND=vmtest_kills=N on the host)
KILLS=$(cmdline_value vmtest_kills)
: "${KILLS:=5}"
MNT=/mnt/r
LOADP=/tmp/load.progress
B=/opt/b/pkramfs-fuse
USR=/usr/bin/pkramfs-fuse
HOLDER=
SERVING=

# ---- the daemon's status ------------------------------------------------------
st_json() { pkramfs-ctl --timeout=5 --json status r 2>/dev/null; }
jnum() { echo "$2" | sed -n "s/.*\"$1\":\(-\{0,1\}[0-9.e+]*\).*/\1/p"; }
jstr() { echo "$2" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'; }
exe_of() { readlink "/proc/$1/exe"; }

# wait_serving OLD SECONDS [taken-over]: until the status names a serving pid
# other than OLD that is the holder's only child (and with "taken-over" a
# takeover time: its first reply went out); sets SERVING, TK_MS, ST
wait_serving() {
	local old=$1 n=0 s ms kids
	while [ "$n" -lt $(($2 * 10)) ]; do
		ST=$(st_json)
		s=$(jnum serving_pid "$ST")
		ms=$(jnum last_takeover_ms "$ST")
		kids=$(children "$HOLDER")
		case $ms in -* | '') [ "$3" = taken-over ] && s='' ;; esac
		if [ -n "$s" ] && [ "$s" != 0 ] && [ "$s" != "$old" ] && [ "$kids" = "$s" ]; then
			SERVING=$s TK_MS=$ms
			return 0
		fi
		n=$((n + 1))
		usleep 100000
	done
	echo "no new serving process after $2 s: status '$ST', holder $HOLDER's children '$kids'"
	return 1
}

# ---- the load -----------------------------------------------------------------
load_iters() { sed -n 's/.* iters \(.*\) pids .*/\1/p' "$LOADP" 2>/dev/null; }
load_pids() { sed -n 's/.* pids //p' "$LOADP" 2>/dev/null; }

# not_advanced OLD: the load processes (1, 2, ...) whose iteration counts are
# not above their counts in OLD (iteration counts, as load_iters prints them),
# leaving out those in STUCK
not_advanced() {
	echo "$1|$(load_iters)|$STUCK" | awk -F'|' '{
		n = split($1, a, " "); m = split($2, b, " "); k = split($3, s, " ")
		for (i = 1; i <= k; i++) skip[s[i]] = 1
		for (i = 1; i <= n; i++)
			if (!(i in skip) && (m != n || b[i] + 0 <= a[i] + 0)) printf " %d", i }'
}

advanced() { [ -z "$(not_advanced "$1")" ]; }

# wait_advanced OLD SECONDS: until every load process not in STUCK made an
# iteration since OLD; else those that did not join STUCK
wait_advanced() {
	local n=0
	while ! advanced "$1"; do
		n=$((n + 1))
		if [ "$n" -gt $(($2 * 10)) ]; then
			STUCK="$STUCK$(not_advanced "$1")"
			return 1
		fi
		usleep 100000
	done
}

load_diag() {	# what each load process and the serving process are doing
	local p f
	echo "load progress: $(cat "$LOADP" 2>/dev/null)"
	for f in /sys/fs/fuse/connections/*/waiting; do
		echo "$f (requests without a reply): $(cat "$f")"
	done
	for f in /proc/"$SERVING"/task/*; do
		echo "serving pid $SERVING thread ${f##*/}: state, utime, stime" \
			"$(sed 's/.*) //' "$f/stat" | cut -d' ' -f1,12,13), wchan $(cat "$f/wchan")"
	done
	for p in $(load_pids); do
		echo "load pid $p: state $(sed 's/.*) \([A-Z]\).*/\1/' "/proc/$p/stat" 2>/dev/null)," \
			"wchan $(cat "/proc/$p/wchan" 2>/dev/null)"
		head -n 8 "/proc/$p/stack" 2>/dev/null
	done
}

load_states() {	# the state letter of each load process, e.g. "S R D"
	local p
	for p in $(load_pids); do
		sed 's/.*) \([A-Z]\).*/\1/' "/proc/$p/stat" 2>/dev/null
	done | tr '\n' ' '
}

# load_start DIR LOG: pkram-load in the background (LOAD_PID), until each of
# its processes made 3 iterations (60 s at most)
load_start() {
	local n=0
	rm -f /tmp/load.stop "$LOADP"
	STUCK=''
	pkram-load "$1" /tmp/load.stop "$LOADP" 3 >"$2" 2>&1 &
	LOAD_PID=$!
	until advanced "2 2 2"; do
		n=$((n + 1))
		if [ "$n" -gt 600 ] || ! alive "$LOAD_PID"; then
			echo "pkram-load did not get going: $(cat "$2")"
			load_diag
			return 1
		fi
		usleep 100000
	done
}

# load_stop LOG: stop the load; LOAD_RC its exit status, 124 if it did not end
# within 20 s (fails then; a process waiting for a FUSE reply that never
# comes cannot be killed either: it is left to the end of the connection)
load_stop() {
	local n=0
	touch /tmp/load.stop
	while alive "$LOAD_PID"; do
		n=$((n + 1))
		if [ "$n" -gt 200 ]; then
			echo "pkram-load still running 20 s after the stop"
			load_diag
			LOAD_RC=124
			return 1
		fi
		usleep 100000
	done
	wait "$LOAD_PID"
	LOAD_RC=$?
	LOAD_PID=''
}

# failures LOG: the load's failed calls "EIO OTHER CORRUPT"
failures() {
	echo "$(grep -cE 'pkram-load: FAIL.*err=(EIO|ECONNABORTED) ' "$1")" \
		"$(grep 'pkram-load: FAIL' "$1" | grep -vcE 'err=(EIO|ECONNABORTED) ')" \
		"$(grep -c 'pkram-load: CORRUPT' "$1")"
}

# ---- the stages ---------------------------------------------------------------
timed() {	# timed FUNCTION: run it, then print "TIME SCEN.FUNCTION SECONDS"
	local t0
	t0=$(now)
	"$1"
	echo "TIME $SCEN.$1 $(awk "BEGIN { print $(now) - $t0 }")"
}

# upgrade_one K PATH [default]: pkramfs-ctl upgrade to PATH (without --exec
# when "default"); appends to the BAD_* lists what went wrong
upgrade_one() {
	local k=$1 path=$2 old=$SERVING it0 rc ms new r cause t0
	it0=$(load_iters)
	t0=$(now)
	if [ "$3" = default ]; then
		pkramfs-ctl upgrade r >/tmp/upgrade.out 2>&1
	else
		pkramfs-ctl upgrade r --exec="$path" >/tmp/upgrade.out 2>&1
	fi
	rc=$?
	echo "upgrade $k: pkramfs-ctl upgrade r${3:+ (default)} -> $path: exit $rc," \
		"$(awk "BEGIN { print $(now) - $t0 }") s: $(cat /tmp/upgrade.out)"
	new=$(sed -n "s/^upgraded node 'r': pid $old -> \([0-9]*\), running $(echo "$path" |
		sed 's/[/.]/\\&/g'), in \([0-9.]*\) ms$/\1/p" /tmp/upgrade.out)
	ms=$(sed -n 's/.* in \([0-9.]*\) ms$/\1/p' /tmp/upgrade.out)
	if [ "$rc" != 0 ] || [ -z "$new" ]; then
		BAD_EXIT="$BAD_EXIT [$k: exit $rc: $(tr '\n' ' ' </tmp/upgrade.out)]"
		wait_serving "$old" 30 >/dev/null
	elif ! wait_serving "$old" 10 >/tmp/serving.out; then
		BAD_SERVING="$BAD_SERVING [$k: $(cat /tmp/serving.out)]"
	else
		r=$(jnum restarts "$ST")
		cause=$(jstr last_restart_cause "$ST")
		[ "$SERVING" = "$new" ] && [ "$(exe_of "$SERVING")" = "$path" ] &&
			[ "$cause" = "upgrade to $path" ] ||
			BAD_SERVING="$BAD_SERVING [$k: serving $SERVING ($(exe_of "$SERVING")), said $new, cause '$cause']"
		[ "$r" = 0 ] || BAD_RESTARTS="$BAD_RESTARTS [$k: restarts $r]"
		UPGRADE_MS="$UPGRADE_MS $ms"
		echo "upgrade $k: serving pid $old -> $SERVING ($(exe_of "$SERVING")), restarts $r," \
			"cause '$cause', last_takeover_ms $TK_MS, pkramfs-ctl said $ms ms"
	fi
	if ! wait_advanced "$it0" 10; then
		BAD_LOAD="$BAD_LOAD [$k: load process$STUCK made no progress within 10 s: $(load_states)]"
		load_diag
	fi
}

upgrades() {
	local k f
	BAD_EXIT='' BAD_SERVING='' BAD_RESTARTS='' BAD_LOAD='' UPGRADE_MS=''
	load_start "$MNT/load-upgrade" /tmp/load-upgrade.log ||
		BAD_LOAD="the load did not start"
	upgrade_one 1 "$B"
	upgrade_one 2 "$USR"
	upgrade_one 3 "$B"
	upgrade_one 4 "$USR"
	upgrade_one 5 "$USR" default
	echo "TIME $SCEN.upgrades (ms, as pkramfs-ctl upgrade printed them):$UPGRADE_MS"
	check_eq upgrade-exit "$BAD_EXIT" ""
	check_eq upgrade-serving "$BAD_SERVING" ""
	check_eq upgrade-load-alive "$BAD_LOAD" ""
	ST=$(st_json)
	echo "status: $ST"
	check_eq upgrade-restarts "$(jnum restarts "$ST")$BAD_RESTARTS" 0
	check upgrade-load-stopped load_stop /tmp/load-upgrade.log
	cat /tmp/check.out
	f=$(failures /tmp/load-upgrade.log)
	grep 'pkram-load: ' /tmp/load-upgrade.log | head -n 20
	check_eq upgrade-load-clean "rc $LOAD_RC, failed/other/corrupt $f" "rc 0, failed/other/corrupt 0 0 0"
	check_manifest upgrade-static "$MNT/static" /tmp/r.static
}

# shellcheck disable=SC2046  # set -- $(failures LOG): three numbers
kills() {
	local k j old it0 e0 o0 e1 o1 eio other corrupt t0 out exe
	BAD_SERVED='' BAD_MOUNTED='' BAD_LOAD='' BAD_ACKED='' PER_KILL=''
	mkdir -p "$MNT/acked"
	load_start "$MNT/load-kill" /tmp/load-kill.log || BAD_LOAD="the load did not start"
	for k in $(seq 1 "$KILLS"); do
		# the load runs: every process a few iterations on since the last takeover
		it0=$(load_iters)
		if ! wait_advanced "$it0" 10; then
			BAD_LOAD="$BAD_LOAD [before kill $k: load process$STUCK made no progress within 10 s: states $(load_states)]"
			load_diag
		fi
		echo "acked-$k" >"$MNT/acked/$k" || BAD_ACKED="$BAD_ACKED [$k: write failed]"
		old=$SERVING
		exe=$(exe_of "$old")
		set -- $(failures /tmp/load-kill.log)
		e0=$1 o0=$2
		t0=$(now)
		kill -9 "$old"
		if ! wait_serving "$old" 30 taken-over >/tmp/serving.out; then
			BAD_SERVED="$BAD_SERVED [$k: $(cat /tmp/serving.out)]"
			load_diag
			break
		fi
		# the binary that served last serves again
		[ "$(exe_of "$SERVING")" = "$exe" ] ||
			BAD_SERVED="$BAD_SERVED [$k: $SERVING runs $(exe_of "$SERVING"), $old ran $exe]"
		out="kill $k: serving pid $old -> $SERVING ($exe; takeover $TK_MS ms, seen after"
		out="$out $(awk "BEGIN { print $(now) - $t0 }") s), load states $(load_states)"
		mounted "$MNT" || BAD_MOUNTED="$BAD_MOUNTED [$k]"
		it0=$(load_iters)
		if ! wait_advanced "$it0" 10; then
			BAD_LOAD="$BAD_LOAD [$k: load process$STUCK made no progress within 10 s of the takeover: states $(load_states)]"
			load_diag
		fi
		for j in $(seq 1 "$k"); do
			[ "$(cat "$MNT/acked/$j" 2>&1)" = "acked-$j" ] ||
				BAD_ACKED="$BAD_ACKED [after kill $k: acked/$j: $(cat "$MNT/acked/$j" 2>&1)]"
		done
		set -- $(failures /tmp/load-kill.log)
		e1=$1 o1=$2
		PER_KILL="$PER_KILL $((e1 - e0))"
		echo "$out; the load's failed calls: $((e1 - e0)) EIO, $((o1 - o0)) other"
	done
	echo "INFO $SCEN: EIO failures per kill:$PER_KILL (kernel $(kernel_name))"
	check_eq kill-served "$BAD_SERVED" ""
	check_eq kill-mounted "$BAD_MOUNTED" ""
	check_eq kill-load-alive "$BAD_LOAD" ""
	check_eq kill-acked "$BAD_ACKED" ""
	check_manifest kill-static "$MNT/static" /tmp/r.static
	ST=$(st_json)
	echo "status: $ST"
	pkramfs-ctl status r
	check_eq kill-restarts "$(jnum restarts "$ST")" "$KILLS"
	case $(jstr last_restart_cause "$ST") in
	*"signal 9"*) pass kill-cause ;;
	*) fail kill-cause "last_restart_cause '$(jstr last_restart_cause "$ST")', no 'signal 9'" ;;
	esac
	check kill-load-stopped load_stop /tmp/load-kill.log
	cat /tmp/check.out
	set -- $(failures /tmp/load-kill.log)
	eio=$1 other=$2 corrupt=$3
	grep 'pkram-load: ' /tmp/load-kill.log | head -n 40
	echo "the daemon: $(grep -c 'in flight failed with EIO' "/tmp/fuse-r.log") takeovers failed" \
		"requests in flight:"
	grep 'in flight failed with EIO' "/tmp/fuse-r.log"
	if [ "$(kernel_name)" = 6.1 ]; then
		# no FUSE_NOTIFY_RESEND: what was in flight failed with EIO, nothing else
		check_eq kill-failures "other failures $other" "other failures 0"
	else
		# resent: nothing fails, and a resent request applied before the kill
		# is answered, not applied twice (no mkdir EEXIST, no unlink ENOENT)
		check_eq kill-failures "EIO $eio, other $other" "EIO 0, other 0"
	fi
	check_eq kill-no-corrupt "$corrupt" 0
}

upgrade_bad() {
	local old=$SERVING rc
	pkramfs-ctl upgrade r --exec=/bin/true >/tmp/upgrade.out 2>&1
	rc=$?
	echo "pkramfs-ctl upgrade r --exec=/bin/true: exit $rc: $(cat /tmp/upgrade.out)"
	if [ "$rc" = 1 ] && grep -q "upgrade of node 'r' to /bin/true failed" /tmp/upgrade.out; then
		pass upgrade-bad
	else
		fail upgrade-bad "exit $rc: $(tr '\n' ' ' </tmp/upgrade.out)"
	fi
	if wait_serving "$old" 30 >/tmp/serving.out &&
		[ "$(exe_of "$SERVING")" = "$USR" ] &&
		[ "$(timeout 10 cat "$MNT/acked/1")" = acked-1 ]; then
		pass upgrade-bad-serves
	else
		fail upgrade-bad-serves "serving '$SERVING' ($(exe_of "$SERVING")): $(cat /tmp/serving.out)"
	fi
	echo "status: $(st_json)"
}

# tree_manifest FILE: the manifests of the mount's directories in FILE but
# that of a load that did not end (its process waiting for a reply that never
# comes holds locked pages there: reading them would wait too)
tree_manifest() {
	local d
	for d in static acked load-upgrade load-kill; do
		[ "$d" = load-kill ] && [ -n "$LOAD_PID" ] && continue
		echo "== $d"
		pkram-manifest manifest --ctime "$MNT/$d" || return 1
	done >"$1"
}

# same_tree FILE: the mount's manifests are those in FILE
same_tree() {
	local d
	# shellcheck disable=SC2013  # directory names without spaces
	for d in $(sed -n 's/^== //p' "$1"); do
		echo "== $d"
		pkram-manifest manifest --ctime "$MNT/$d"
	done >/tmp/r.now 2>&1
	cmp -s "$1" /tmp/r.now && return 0
	diff "$1" /tmp/r.now | head -n 20
	return 1
}

# kill -9 of the holder: the serving process goes with it, the mount is dead
holder_kill() {
	local n=0
	echo 3 >/proc/sys/vm/drop_caches
	check tree tree_manifest /tmp/r.all
	echo "tree: $(grep -c . /tmp/r.all) lines: $(grep '^==' /tmp/r.all | tr '\n' ' ')"
	kill -9 "$HOLDER"
	wait_exit r
	check_eq holder-killed "$?" 137
	while alive "$SERVING" && [ "$n" -lt 100 ]; do
		n=$((n + 1))
		usleep 100000
	done
	check_not serving-gone alive "$SERVING"
	if stat "$MNT/acked/1" 2>&1 | grep -q 'not connected'; then
		pass enotconn
	else
		fail enotconn "stat of the dead mount: $(stat "$MNT/acked/1" 2>&1 | head -n 2 | tr '\n' ' ')"
	fi
	check umount-dead umount -l "$MNT"
	# a load process that waited on the dead connection ends now
	n=0
	while [ -n "$LOAD_PID" ] && alive "$LOAD_PID" && [ "$n" -lt 100 ]; do
		n=$((n + 1))
		usleep 100000
	done
	[ -z "$LOAD_PID" ] || { wait "$LOAD_PID"; echo "pkram-load ended with $?: $(tail -n 3 /tmp/load-kill.log)"; }
	tcheck remount pkramfs_mount r "$MNT" $OPTS
	check restored same_tree /tmp/r.all
	cat /tmp/check.out
	tcheck umount pkramfs_umount r "$MNT"
}

stage1() {
	check load pkram_load
	check fuse fuse_load
	# for /sys/fs/fuse/connections/N/waiting in load_diag
	mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null
	mkdir -p /opt/b && cp "$USR" "$B"
	tcheck mount pkramfs_mount r "$MNT" $OPTS
	HOLDER=$(cat /tmp/fuse-r.pid)
	if wait_serving 0 30 >/tmp/serving.out && [ "$(exe_of "$SERVING")" = "$USR" ]; then
		pass serving
	else
		fail serving "$(cat /tmp/serving.out); serving $SERVING ($(exe_of "$SERVING"))"
	fi
	echo "holder $HOLDER, serving $SERVING: $ST"
	check static sh -c "mkdir $MNT/static && pkram-manifest populate $MNT/static 200 &&
		head -c 1048576 /dev/urandom >$MNT/static/random && ln -s random $MNT/static/link &&
		ln $MNT/static/random $MNT/static/hard &&
		pkram-manifest setxattr $MNT/static/random user.k value &&
		pkram-manifest manifest --ctime $MNT/static >/tmp/r.static"
	timed upgrades
	timed kills
	timed upgrade_bad
	timed holder_kill
	sed 's/^/fuse-r.log: /' /tmp/fuse-r.log | tail -n 60
}
