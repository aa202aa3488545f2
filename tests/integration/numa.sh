#!/bin/bash
# numa.sh -- pkramfs-fuse --numa on the host through real mounts: the value
# forms, one-line errors for a node that does not exist, and the policy the
# arena really gets (/proc/PID/numa_maps: bind:N, interleave:..., prefer:N),
# with the pages counted on the node, and auto's thread pinning. The host may
# have one node only; two-node placement is tests/vm/scenarios/m-numa.sh.
. "$(dirname "$0")/lib.sh"
need_pk

M=$T/mnt
mkdir -p "$M"

if [ ! -d /sys/devices/system/node/node0 ]; then
    # A kernel without CONFIG_NUMA: every --numa is refused with one line.
    "$PK" --numa=0 "$M" 2>"$T/err"; rc=$?
    assert_ne "numa:no-numa-kernel:exit" 0 "$rc"
    assert_contains "numa:no-numa-kernel:says" "$(cat "$T/err")" "no NUMA support"
    finish
fi
NODES=$(cat /sys/devices/system/node/has_memory)
FIRST=${NODES%%[,-]*}
info "host NUMA nodes with memory: $NODES"

# refused NAME TEXT ARGS...: exits non-zero at once with one stderr line that
# contains TEXT; nothing mounted, nothing left in the run/shm dirs
refused() {
    local name=$1 text=$2 rc left; shift 2
    timeout -k 2 10 "$PK" --shm-dir="$SHM" --run-dir="$RUN" "$@" "$M" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" = 0 ] || [ "$rc" -ge 124 ]; then fail "$name:exit" "exit status $rc"
    else pass "$name:exit"; fi
    assert_one_line_err "$name:one-line" "$T/err"
    assert_contains "$name:says" "$(cat "$T/err")" "$text"
    left=$(mounts_under_t; cd "$T" && find shm run -mindepth 1 2>/dev/null)
    assert_eq "$name:nothing-left" "" "$left"
    info "stderr: $(cat "$T/err")"
}

refused "bad-value" "use auto, interleave or a NUMA node number" --numa=near
refused "negative" "use auto, interleave or a NUMA node number" --numa=-1
refused "bad-value-o" "bad --numa value 'x'" -o numa=x
refused "missing-node" "NUMA node 4000 does not exist (nodes with memory: $NODES)" --numa=4000
refused "missing-node-o" "NUMA node 4000 does not exist" -o size=64m,numa=4000
refused "missing-node-shm" "NUMA node 4000 does not exist" --pkram=n1 --numa=4000

# arena_line PID POLICY: the numa_maps line of PID's largest mapping with POLICY
arena_line() {
    awk -v pol="$2" '$2 == pol {
        n = 0
        for (i = 3; i <= NF; i++) if ($i ~ /^N[0-9]+=/) n += substr($i, index($i, "=") + 1)
        if (n >= best) { best = n; line = $0 }
    } END { print line }' "/proc/$1/numa_maps"
}
# pages_on LINE NODE: pages the numa_maps line counts on NODE
pages_on() { grep -o " N$2=[0-9]*" <<<"$1" | cut -d= -f2; }

# placed NAME POLICY ARGS...: mount with ARGS, write 8 MiB (2048 pages), and the
# largest mapping with POLICY holds them on node $FIRST
placed() {
    local name=$1 pol=$2 line n; shift 2
    if ! pk_start "$M" --size=64m "$@"; then
        fail "$name:mount" "did not mount"
        return
    fi
    head -c 8M /dev/urandom >"$M/f"
    line=$(arena_line "$(serving_pid)" "$pol")
    n=$(pages_on "$line" "$FIRST")
    if [ -n "$line" ] && [ "${n:-0}" -ge 2048 ]; then
        pass "$name:numa-maps"
    else
        fail "$name:numa-maps" "no $pol mapping with 2048 pages on node $FIRST"
        details "/proc/$(serving_pid)/numa_maps" 40
    fi
    info "$name: ${line:0:160}"
    PLACED_PID=$(serving_pid)
}

# threads_on NAME PID CPUS: every thread of PID may run on CPUS only
threads_on() {
    local t bad=
    for t in /proc/"$2"/task/*; do
        [ "$(awk '/^Cpus_allowed_list/ {print $2}' "$t/status")" = "$3" ] || bad="$bad ${t##*/}"
    done
    assert_eq "$1" "" "$bad"
}

placed "anon-node" "bind:$FIRST" --numa="$FIRST"
pk_stop "$M"
assert_eq "anon-node:stopped" 0 "$?"

placed "anon-node-o" "bind:$FIRST" -o "numa=$FIRST"
pk_stop "$M"

placed "shm-node" "bind:$FIRST" --pkram=s1 --backend=shm --numa="$FIRST"
assert_contains "shm-node:the-node-file" "$(arena_line "$PLACED_PID" "bind:$FIRST")" "file=$SHM/s1"
pk_stop "$M"
# the node comes back with its data under another placement
placed "shm-node-again" "interleave:$NODES" --pkram=s1 --backend=shm --numa=interleave
pk_stop "$M"

placed "anon-interleave" "interleave:$NODES" --numa=interleave
pk_stop "$M"

# auto: preferred on the node of the CPUs the daemon may run on, every thread
# pinned to that node's CPUs (the allowed ones)
CPUS0=$(cat "/sys/devices/system/node/node$FIRST/cpulist")
placed "anon-auto" "prefer:$FIRST" --numa=auto
threads_on "anon-auto:pinned" "$PLACED_PID" "$CPUS0"
pk_stop "$M"
# from a shell allowed one CPU of that node only: pinned to that CPU
LAST_CPU=$(($(nproc) - 1))
if [ -d "/sys/devices/system/node/node$FIRST/cpu$LAST_CPU" ]; then
    PK_SAVED=$PK
    # pk_start runs "$PK" as one word: a wrapper that starts it on the CPU
    printf '#!/bin/sh\nexec taskset -c %s %s "$@"\n' "$LAST_CPU" "$PK_SAVED" >"$T/pk-on-cpu"
    chmod +x "$T/pk-on-cpu"
    PK=$T/pk-on-cpu
    placed "anon-auto-taskset" "prefer:$FIRST" --numa=auto
    threads_on "anon-auto-taskset:pinned" "$PLACED_PID" "$LAST_CPU"
    pk_stop "$M"
    PK=$PK_SAVED
fi

# without --numa nothing changes: no mapping gets a policy
if pk_start "$M" --size=64m; then
    head -c 8M /dev/urandom >"$M/f"
    assert_eq "no-numa:default-policy" "" \
        "$(awk '$2 != "default" {print}' "/proc/$(serving_pid)/numa_maps" | head -3)"
    pk_stop "$M"
else
    fail "no-numa:mount" "did not mount"
fi
finish
