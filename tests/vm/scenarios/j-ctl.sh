# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash
# j: pkramfs-ctl on pkram.ko nodes. A mounted node: list (backend kmod,
# mounted), status, destroy refused, preserve. Unmounted: status and check
# attach it only to read it (it stays preserved, same frames, detached, and
# mounts again with its files), preserve says "not mounted". Attached by a
# daemon of another --run-dir: list says attached, status/destroy refuse
# (EBUSY). destroy gives every frame back, status then says "no such node".
# A node of garbage: check finds problems (exit 1), status refuses it, and
# its bytes stay as they were.
# vm-test-expect: load fuse mount write list-json list-table status-mounted
# vm-test-expect: destroy-busy destroy-busy-says destroy-busy-kept preserve
# vm-test-expect: status-preserved umount status-offline status-offline-text
# vm-test-expect: list-offline check-clean check-clean-json preserve-unmounted
# vm-test-expect: untouched detached mount-other data-other list-attached
# vm-test-expect: status-attached destroy-attached destroy-attached-kept
# vm-test-expect: umount-other destroy destroy-freed free-back status-gone
# vm-test-expect: list-gone bad-create check-bad check-bad-json status-bad
# vm-test-expect: list-bad bad-intact bad-destroy free-back-bad dmesg-clean
# vm-test-timeout: 300

# shellcheck disable=SC2034  # lib.sh reads it
BACKEND=kmod	# this scenario is about pkram.ko nodes, whatever the command line says
MNT=/mnt/j

# j_ctl ARGS...: pkramfs-ctl; stdout in /tmp/ctl.out, stderr in /tmp/ctl.err,
# exit status in CTL_RC
j_ctl() {
	pkramfs-ctl "$@" >/tmp/ctl.out 2>/tmp/ctl.err
	CTL_RC=$?
}

# j_has NAME FILE TEXT...: PASS if FILE contains every TEXT
j_has() {
	local name=$1 file=$2 t
	shift 2
	for t in "$@"; do
		if ! grep -qF -- "$t" "$file"; then
			fail "$name" "no '$t' in: $(head -c 400 "$file" | tr '\n' ' ')"
			return
		fi
	done
	pass "$name"
}

# j_fails NAME RC TEXT ARGS...: pkramfs-ctl ARGS exits with RC and says TEXT
# on one line of stderr
j_fails() {
	local name=$1 rc=$2 text=$3
	shift 3
	j_ctl "$@"
	if [ "$CTL_RC" != "$rc" ]; then
		fail "$name" "exit $CTL_RC, expected $rc: $(tr '\n' ' ' </tmp/ctl.err)"
	elif [ "$(wc -l </tmp/ctl.err)" != 1 ]; then
		fail "$name" "not one line on stderr: $(tr '\n' ' ' </tmp/ctl.err)"
	else
		j_has "$name" /tmp/ctl.err "$text"
	fi
	echo "stderr: $(cat /tmp/ctl.err)"
}

# j_row NAME: NAME's row of pkramfs-ctl list, "BACKEND MOUNTED STATE FILES"
j_row() {
	pkramfs-ctl list 2>/dev/null | awk -v n="$1" '$1 == n { print $2, $3, $5, $NF }'
}

stage1() {
	check load pkram_load
	check fuse fuse_load
	free0=$(sysfs free_frames)

	# ---- mounted
	check mount pkramfs_mount j1 "$MNT" --size=8m
	check write sh -c "mkdir $MNT/d && echo a >$MNT/a && echo b >$MNT/d/b && echo c >$MNT/d/c"
	pid=$(cat /tmp/fuse-j1.pid)
	j_ctl --json list
	j_has list-json /tmp/ctl.out '"name":"j1","backend":"kmod","mounted":true,"pid":'"$pid"
	pkramfs-ctl list
	check_eq list-table "$(j_row j1)" "kmod yes active 3"
	j_ctl status j1
	j_has status-mounted /tmp/ctl.out "pid $pid, on $MNT" "kmod" "3 (2 directories"
	j_fails destroy-busy 1 "busy: pkramfs-fuse pid $pid" destroy j1
	j_has destroy-busy-says /tmp/ctl.err "umount $MNT"
	check destroy-busy-kept pkram-test stat j1
	check preserve pkramfs-ctl preserve j1
	j_ctl --json status j1
	j_has status-preserved /tmp/ctl.out '"state":"preserved"'
	check umount pkramfs_umount j1 "$MNT"

	# ---- unmounted: read through /dev/pkram, never written
	before=$(pkram-test stat j1)
	echo "before: $before"
	j_ctl --json status j1
	cat /tmp/ctl.out /tmp/ctl.err
	j_has status-offline /tmp/ctl.out '"mounted":false' '"backend":"kmod"' \
		'"state":"preserved"' '"files":3' '"directories":2' '"pkram_state":"preserved"'
	j_ctl status j1
	cat /tmp/ctl.out
	j_has status-offline-text /tmp/ctl.out "mounted:      no" "backend:      kmod" \
		"pkram state:  preserved" "held ("
	pkramfs-ctl list
	check_eq list-offline "$(j_row j1)" "kmod no preserved 3"
	check check-clean pkramfs-ctl check j1
	cat /tmp/check.out
	j_ctl --json check j1
	j_has check-clean-json /tmp/ctl.out '"backend":"kmod","clean":true,"problems":[]'
	j_fails preserve-unmounted 1 "node 'j1' is not mounted" preserve j1
	check_eq untouched "$(pkram-test stat j1)" "$before"
	case $before in
	*" 0") pass detached ;;
	*) fail detached "attached before the check: $before" ;;
	esac

	# ---- attached by a daemon of another run dir: its lock is elsewhere
	check mount-other pkramfs_mount j1 "$MNT" --run-dir=/run/other
	check_eq data-other "$(cat $MNT/a $MNT/d/b $MNT/d/c | tr -d '\n')" abc
	j_ctl --json list
	j_has list-attached /tmp/ctl.out '"name":"j1","backend":"kmod","mounted":false' \
		'"attached":true'
	j_fails status-attached 1 "another process holds /dev/pkram node 'j1'" status j1
	j_fails destroy-attached 1 "another process holds /dev/pkram node 'j1'" destroy j1
	check destroy-attached-kept pkram-test stat j1
	check umount-other pkramfs_umount j1 "$MNT"

	# ---- destroy: every frame back
	j_ctl destroy j1
	if [ "$CTL_RC" = 0 ]; then pass destroy; else fail destroy "exit $CTL_RC: $(cat /tmp/ctl.err)"; fi
	j_has destroy-freed /tmp/ctl.out "destroyed node 'j1' (" "MiB freed)"
	check_eq free-back "$(sysfs free_frames)" "$free0"
	j_fails status-gone 1 "no such node 'j1' in /dev/pkram" status j1
	check_eq list-gone "$(j_row j1)" ""

	# ---- a node of garbage
	check bad-create sh -c 'pkram-test create bad 4 && pkram-test fill bad 5'
	j_ctl check bad
	cat /tmp/ctl.out /tmp/ctl.err
	if [ "$CTL_RC" = 1 ] && grep -q "problem" /tmp/ctl.out; then
		pass check-bad
	else
		fail check-bad "exit $CTL_RC: $(tr '\n' ' ' </tmp/ctl.out)"
	fi
	j_ctl --json check bad
	j_has check-bad-json /tmp/ctl.out '"clean":false' 'magic'
	j_fails status-bad 1 "node 'bad' is not a valid pkramfs node" status bad
	pkramfs-ctl list
	check_eq list-bad "$(j_row bad)" "kmod no invalid -"
	check bad-intact pkram-test verify bad 5
	check bad-destroy pkramfs-ctl destroy bad
	check_eq free-back-bad "$(sysfs free_frames)" "$free0"
}
