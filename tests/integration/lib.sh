# shellcheck shell=bash
# tests/integration/lib.sh -- helpers for the pkramfs integration tests.
#
# Source it from a test script:   . "$(dirname "$0")/lib.sh"
#
# Every script runs in a private mount namespace (and a private pid namespace),
# so mounts and daemons cannot leak.  run-all.sh provides that; a script started
# directly re-executes itself the same way.
#
# Environment:
#   PKRAMFS_BIN   directory holding pkramfs-fuse (default: build/bin of the repo)
#   PKIT_TMP      parent directory for the per-script temp dir (default /tmp)
#   PKIT_VERBOSE  1 = print extra diagnostics
#
# Output protocol: one line per check, `PASS name` / `FAIL name: why` /
# `SKIP name: why`; details for a FAIL follow on lines starting with "    ".

PKIT_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The node format version this source writes (include/pkramfs/format.h).
PKIT_FORMAT_VERSION=$(sed -n 's/^#define PKRAMFS_FORMAT_VERSION \([0-9]*\)u.*/\1/p' \
    "$PKIT_LIBDIR/../../include/pkramfs/format.h")
PKIT_REPO=$(cd "$PKIT_LIBDIR/../.." && pwd)

# ---------------------------------------------------------------- isolation --
if [ "${PKIT_ISOLATED:-}" != 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "FAIL $(basename "$0"): integration tests must run as root" >&2
        exit 1
    fi
    export PKIT_ISOLATED=1
    exec unshare -m --propagation private --pid --fork --mount-proc --kill-child \
        bash "$0" "$@"
fi

set -u
umask 022

PKRAMFS_BIN=${PKRAMFS_BIN:-$PKIT_REPO/build/bin}
PKRAMFS_BIN=$(cd "$PKRAMFS_BIN" 2>/dev/null && pwd || echo "$PKRAMFS_BIN")
export PKRAMFS_BIN
PK=$PKRAMFS_BIN/pkramfs-fuse
CTL=$PKRAMFS_BIN/pkramfs-ctl
# Always the system python: it must also be runnable by user nobody.
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3
elif command -v python3 >/dev/null; then PY=$(command -v python3)
else PY=""; fi

PKIT_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${PKIT_TMP:-/tmp}/pkit-$PKIT_NAME.XXXXXX") || exit 1
chmod 755 "$T"                   # user nobody must be able to reach the mounts
SHM=$T/shm                       # private --shm-dir
RUN=$T/run                       # private --run-dir
mkdir -p "$SHM" "$RUN"

PKIT_PASS=0
PKIT_FAIL=0
PKIT_SKIP=0
PKIT_PIDS=()                     # daemons started by this script
PKIT_SEQ=0

# ------------------------------------------------------------------ reports --
pass() { PKIT_PASS=$((PKIT_PASS + 1)); echo "PASS $1"; }
fail() { PKIT_FAIL=$((PKIT_FAIL + 1)); echo "FAIL $1: ${2:-}"; }
skip() { PKIT_SKIP=$((PKIT_SKIP + 1)); echo "SKIP $1: ${2:-}"; }
info() { echo "# $*"; }
# indent a file (or stdin) as FAIL details, at most $2 lines
details() {
    local n=${2:-20}
    if [ -n "${1:-}" ] && [ "$1" != - ]; then sed -n "1,${n}p" "$1"; else sed -n "1,${n}p"; fi |
        sed 's/^/    /'
}

# check_report NAME WHAT LINES CMD...: PASS NAME if CMD (at most 120 s) exits 0, else FAIL NAME
# ("WHAT exit N") with the first LINES lines of CMD's output, which a tool that checks
# something itself (pkramfs-aiodio, readdir_churn.py) fills with its report
check_report() {
    local name=$1 what=$2 lines=$3 rc
    shift 3
    timeout 120 "$@" >"$T/$name.out" 2>&1
    rc=$?
    if [ "$rc" = 0 ]; then
        pass "$name"
    else
        fail "$name" "$what exit $rc"
        details "$T/$name.out" "$lines"
    fi
}

# check NAME COND-DESCRIPTION CMD...: PASS if CMD succeeds
check() {
    local name=$1 why=$2; shift 2
    if "$@"; then pass "$name"; else fail "$name" "$why"; fi
}
# quietly CMD...: run CMD with its output discarded (for use with check)
quietly() { "$@" >/dev/null 2>&1; }
assert_eq() {               # assert_eq NAME EXPECTED GOT
    if [ "$2" == "$3" ]; then pass "$1"
    else fail "$1" "expected '$2', got '$3'"; fi
}
assert_ne() {
    if [ "$2" != "$3" ]; then pass "$1"
    else fail "$1" "expected something other than '$2'"; fi
}
# assert_files_eq NAME EXPECTED_FILE GOT_FILE  (prints a diff on failure)
assert_files_eq() {
    if cmp -s "$2" "$3"; then pass "$1"
    else
        fail "$1" "differs from tmpfs (- tmpfs, + pkramfs)"
        diff -u "$2" "$3" | tail -n +3 | details - 40
    fi
}
assert_contains() {         # assert_contains NAME HAYSTACK NEEDLE
    case $2 in *"$3"*) pass "$1" ;; *) fail "$1" "'$3' not in: $2" ;; esac
}
# assert_one_line_err NAME STDERR_FILE: exactly one non-empty line
assert_one_line_err() {
    local lines
    lines=$(wc -l <"$2")
    if [ "$lines" -eq 1 ] && [ -n "$(tr -d '[:space:]' <"$2")" ]; then pass "$1"
    elif [ ! -s "$2" ]; then fail "$1" "nothing on stderr"
    else fail "$1" "expected one line on stderr, got $lines:"; details "$2" 10; fi
}
summary() {
    echo "== $PKIT_NAME: $PKIT_PASS pass, $PKIT_FAIL fail, $PKIT_SKIP skip =="
}

# ------------------------------------------------------------------- mounts --
# Path as written in mountinfo (octal escapes for space, tab, newline, \).
_mi_escape() { printf '%s' "$1" | sed -e 's/\\/\\134/g' -e 's/ /\\040/g' -e 's/\t/\\011/g'; }
# mount_fstype MNT: fstype of the top mount on MNT, empty if not a mount point
mount_fstype() {
    local p; p=$(_mi_escape "$(realpath -m "$1")")
    awk -v p="$p" '$5 == p { for (i = 7; $i != "-"; i++); t = $(i + 1) } END { print t }' \
        /proc/self/mountinfo
}
# mount_opts MNT: "per-mount-opts super-opts" of the top mount on MNT
mount_opts() {
    local p; p=$(_mi_escape "$(realpath -m "$1")")
    awk -v p="$p" '$5 == p { for (i = 7; $i != "-"; i++); o = $6 " " $(i + 3) } END { print o }' \
        /proc/self/mountinfo
}
is_mounted() { [ -n "$(mount_fstype "$1")" ]; }
is_fuse_mounted() { case $(mount_fstype "$1") in fuse | fuse.*) return 0 ;; esac; return 1; }
# mounts below our temp dir, one per line
mounts_under_t() { awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo; }

# tmpfs_mount MNT [OPTIONS]
tmpfs_mount() {
    mkdir -p "$1"
    mount -t tmpfs ${2:+-o "$2"} pkit-tmpfs "$1"
}

# --------------------------------------------------------------- processes --
# alive PID: exists and is not a zombie
alive() {
    local st
    st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}
# wait_gone PID SECONDS
wait_gone() {
    local i n=$(( ${2:-10} * 20 ))
    for ((i = 0; i < n; i++)); do alive "$1" || return 0; sleep 0.05; done
    return 1
}
# pids whose command line has an argument equal to MNT (or -o/--xxx=MNT suffix)
pids_of_mount() {
    local m pid
    m=$(realpath -m "$1")
    for pid in /proc/[0-9]*; do
        pid=${pid#/proc/}
        [ "$pid" = $$ ] && continue
        if tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -qxF -e "$m" -e "$1"; then
            alive "$pid" && echo "$pid"
        fi
    done
}
# wait_mounted MNT SECONDS [PID]: until MNT is a fuse mount; fails early if PID dies
wait_mounted() {
    local i n=$(( ${2:-10} * 20 ))
    for ((i = 0; i < n; i++)); do
        is_fuse_mounted "$1" && return 0
        if [ -n "${3:-}" ] && ! alive "$3"; then return 1; fi
        sleep 0.05
    done
    return 1
}

# pk_start MNT [ARGS...]  -- start pkramfs-fuse -f in the background with the
# private shm/run dirs, wait until MNT is mounted.  Sets PK_PID, PK_ERR (stderr
# file), PK_OUT.  Returns non-zero (and prints its stderr) if it did not mount.
pk_start() {
    local mnt=$1; shift
    mkdir -p "$mnt"
    PKIT_SEQ=$((PKIT_SEQ + 1))
    PK_ERR=$T/pk.$PKIT_SEQ.err
    PK_OUT=$T/pk.$PKIT_SEQ.out
    # Background jobs of a non-interactive shell ignore SIGINT: restore it.
    env --default-signal=INT,QUIT,TERM,HUP \
        "$PK" -f --shm-dir="$SHM" --run-dir="$RUN" "$@" "$mnt" >"$PK_OUT" 2>"$PK_ERR" &
    PK_PID=$!
    PKIT_PIDS+=("$PK_PID")
    if ! wait_mounted "$mnt" 10 "$PK_PID"; then
        echo "    pkramfs-fuse did not mount $mnt (args: $*); stderr:"
        details "$PK_ERR" 10
        kill -KILL "$PK_PID" 2>/dev/null
        wait "$PK_PID" 2>/dev/null
        umount -l "$mnt" 2>/dev/null
        return 1
    fi
    return 0
}
# serving_pid [HOLDER]: the process serving a node's mount: the holder's child (fuse/holder.h;
# the holder is what pk_start's PK_PID names), empty if none. A mount without a node has no
# holder: then HOLDER itself serves.
serving_pid() {
    local h=${1:-$PK_PID} c
    c=$(pgrep -P "$h" | head -1)
    echo "${c:-$h}"
}
# pk_stop MNT [PID]: unmount and wait for the daemon; returns its exit status
# (when it is our child) or 0/1 (exited or not).
pk_stop() {
    local mnt=$1 pid=${2:-${PK_PID:-}} rc=0
    if is_mounted "$mnt"; then
        umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
    fi
    [ -z "$pid" ] && return 0
    if ! wait_gone "$pid" 10; then
        echo "    daemon $pid did not exit after unmount of $mnt; killing it"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 1
    fi
    wait "$pid" 2>/dev/null; rc=$?
    [ "$rc" = 127 ] && rc=0       # not our child (daemonized): exited is all we know
    return "$rc"
}

# use_mount_helpers: let mount(8) run the pkramfs-fuse under test. mount.fuse3 runs
# `/bin/sh -c "pkramfs-fuse NAME MNT -o rw,dev,suid,OPTS"`, but mount(8) drops PATH from the
# helper's environment, so sh searches its default path (/usr/local/sbin:/usr/local/bin:
# /usr/sbin:/usr/bin:/sbin:/bin). Shadow the first of those directories that can be with a
# read-only overlay holding a link to the binary under test (sets PKIT_SBIN). The daemon then
# uses the default /dev/shm/pkramfs and /run/pkramfs: shadow both with private tmpfs too (this
# is a private mount namespace). Returns 1 if no directory could be shadowed.
PKIT_SBIN=""
use_mount_helpers() {
    local d
    mkdir -p "$T/sbin"
    ln -sf "$PK" "$T/sbin/pkramfs-fuse"
    [ -x "$PKRAMFS_BIN/pkramfs-ctl" ] && ln -sf "$PKRAMFS_BIN/pkramfs-ctl" "$T/sbin/pkramfs-ctl"
    for d in /usr/local/sbin /usr/local/bin /usr/sbin; do
        [ -d "$d" ] && [ ! -L "$d" ] || continue
        if mount -t overlay -o "lowerdir=$T/sbin:$d" pkit-sbin "$d" 2>/dev/null; then
            PKIT_SBIN=$d
            break
        fi
    done
    mount -t tmpfs -o mode=755 pkit-run /run
    mount -t tmpfs -o mode=1777 pkit-shm /dev/shm
    [ -n "$PKIT_SBIN" ]
}
# unuse_mount_helpers: undo use_mount_helpers
unuse_mount_helpers() {
    umount /dev/shm /run
    [ -n "$PKIT_SBIN" ] && umount "$PKIT_SBIN"
    PKIT_SBIN=""
}

# need_pk: fail the whole script early if the binary is missing
need_pk() {
    if [ ! -x "$PK" ]; then
        fail "$PKIT_NAME:binary" "$PK not found or not executable (build it, or set PKRAMFS_BIN)"
        summary
        exit 1
    fi
}

# need_ctl: the same for pkramfs-ctl
need_ctl() {
    if [ ! -x "$CTL" ]; then
        fail "$PKIT_NAME:ctl-binary" "$CTL not found or not executable (build it, or set PKRAMFS_BIN)"
        summary
        exit 1
    fi
}

# clear_node_dirs: empty the private shm and run dirs, file object tmpfs of shm nodes
# ($SHM/.NAME.objects, which outlive their daemon as node files do) unmounted first
clear_node_dirs() {
    local m
    for m in $(awk -v s="$SHM/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo); do
        umount -l "$m" 2>/dev/null
    done
    rm -rf "${SHM:?}"/* "${RUN:?}"/* "$SHM"/.[!.]* "$RUN"/.[!.]*
}

# ------------------------------------------------------------------ cleanup --
pkit_cleanup() {
    local pid m
    cd / || true
    for pid in "${PKIT_PIDS[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; done
    # unmount everything below $T, deepest first
    for m in $(mounts_under_t | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    for pid in "${PKIT_PIDS[@]}"; do
        wait_gone "$pid" 3 || kill -KILL "$pid" 2>/dev/null
    done
    for m in $(mounts_under_t | sort -r); do umount -l "$m" 2>/dev/null; done
    rm -rf --one-file-system "$T"
}
trap pkit_cleanup EXIT
trap 'exit 130' INT TERM

# finish: print the summary, exit non-zero on any failure
finish() {
    summary
    [ "$PKIT_FAIL" -eq 0 ]
    exit $?
}
