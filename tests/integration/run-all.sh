#!/bin/bash
# run-all.sh -- run every integration test script, each in its own private
# mount + pid namespace (`unshare -m --pid --fork --mount-proc --kill-child`),
# with a per-script timeout.  Mounts and daemons cannot outlive their script:
# when the script ends (or is killed) its pid namespace and everything in it
# dies, and its mount namespace goes with it.
#
# usage: tests/integration/run-all.sh [BIN_DIR] [SCRIPT...]
#   BIN_DIR  directory with pkramfs-fuse (else $PKRAMFS_BIN, else build/bin)
#   SCRIPT   names like cli or cli.sh (default: every *.sh here but lib/run-all)
# env: PKIT_TIMEOUT  seconds per script (default 150; a script's "# pkit-timeout: N" line
#                    raises it for that script)
#      PKIT_XFAIL    file of known failures (default tests/integration/xfail.txt,
#                    if present): one glob per line matched against check names
#                    ("script:check", e.g. "semantics:ops:o_tmpfile"); '#' starts
#                    a comment.  Matching FAILs are reported as XFAIL and do not
#                    fail the run; a listed check that passes is reported XPASS.
#
# Prints each script's PASS/FAIL/SKIP lines and ends with `N passed, M failed`.
# Exit status is non-zero if anything failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

if [ $# -gt 0 ] && [ -d "$1" ]; then PKRAMFS_BIN=$1; shift; fi
PKRAMFS_BIN=${PKRAMFS_BIN:-$REPO/build/bin}
case $PKRAMFS_BIN in /*) ;; *) PKRAMFS_BIN=$PWD/$PKRAMFS_BIN ;; esac
export PKRAMFS_BIN
TIMEOUT=${PKIT_TIMEOUT:-150}

if [ "$(id -u)" != 0 ]; then
    echo "FAIL run-all: must run as root (mounts, mknod, setpriv)"
    echo "0 passed, 1 failed"
    exit 1
fi

scripts=()
if [ $# -gt 0 ]; then
    for s in "$@"; do scripts+=("$HERE/${s%.sh}.sh"); done
else
    for s in "$HERE"/*.sh; do
        case $(basename "$s") in lib.sh | run-all.sh) continue ;; esac
        scripts+=("$s")
    done
fi

XFAIL_FILE=${PKIT_XFAIL:-$HERE/xfail.txt}
xfail_pats=()
if [ -f "$XFAIL_FILE" ]; then
    while IFS= read -r line; do
        line=${line%%#*}; line=$(echo "$line" | sed 's/[[:space:]]*$//; s/^[[:space:]]*//')
        [ -n "$line" ] && xfail_pats+=("$line")
    done <"$XFAIL_FILE"
fi
is_xfail() {
    local pat
    for pat in "${xfail_pats[@]}"; do
        # shellcheck disable=SC2053
        [[ $1 == $pat ]] && return 0
    done
    return 1
}

TOP=$(mktemp -d /tmp/pkit-run.XXXXXX)
chmod 755 "$TOP"        # user nobody must reach the test mounts below it
trap 'rm -rf --one-file-system "$TOP"' EXIT
passed=0 failed=0 skipped=0 xfailed=0
failures=()   # "script: FAIL line" of every failure that is not a known one, repeated at the end
start_all=$(date +%s)
for s in "${scripts[@]}"; do
    name=$(basename "$s" .sh)
    echo "=== $name"
    log=$TOP/$name.log
    t0=$(date +%s)
    # A script may ask for more time with a "# pkit-timeout: SECONDS" line.
    tmo=$(sed -n 's/^# pkit-timeout: \([0-9]*\)$/\1/p' "$s" | head -1)
    [ -n "$tmo" ] && [ "$tmo" -gt "$TIMEOUT" ] || tmo=$TIMEOUT
    PKIT_ISOLATED=1 PKIT_TMP=$TOP timeout -k 10 "$tmo" \
        unshare -m --propagation private --pid --fork --mount-proc --kill-child \
        bash "$s" </dev/null 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    t1=$(date +%s)
    p=$(grep -c '^PASS ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    k=$(grep -c '^SKIP ' "$log")
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "FAIL $name: timed out after ${tmo}s"
        f=$((f + 1))
    elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        echo "FAIL $name: exited with status $rc without a FAIL line"
        f=$((f + 1))
    elif [ "$rc" = 0 ] && [ "$f" != 0 ]; then
        echo "FAIL $name: reported failures but exited 0"
        f=$((f + 1))
    fi
    x=0
    if [ ${#xfail_pats[@]} -gt 0 ]; then
        while IFS= read -r line; do
            check=${line#FAIL }; check=${check%%: *}
            if is_xfail "$name:$check"; then echo "XFAIL $name:$check"; x=$((x + 1)); fi
        done < <(grep '^FAIL ' "$log")
        while IFS= read -r line; do
            check=${line#PASS }
            is_xfail "$name:$check" && echo "XPASS $name:$check (listed in $(basename "$XFAIL_FILE"))"
        done < <(grep '^PASS ' "$log")
        f=$((f - x))
    fi
    if [ "$f" != 0 ]; then
        while IFS= read -r line; do
            check=${line#FAIL }; check=${check%%: *}
            is_xfail "$name:$check" || failures+=("$name: $line")
        done < <(grep '^FAIL ' "$log")
        [ "$rc" != 0 ] && ! grep -q '^FAIL ' "$log" && failures+=("$name: exited with status $rc")
    fi
    echo "=== $name: $p pass, $f fail, $x xfail, $k skip, $((t1 - t0))s"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k)); xfailed=$((xfailed + x))
    # the namespace is gone; remove whatever the script could not clean up
    rm -rf --one-file-system "${TOP:?}"/pkit-"$name".* 2>/dev/null
done
# CI shows the head and the tail of this output: name every failure again here, with the end of
# its script's output.
if [ ${#failures[@]} -gt 0 ]; then
    echo "=== failures"
    printf '%s\n' "${failures[@]}"
fi
echo "=== total $(( $(date +%s) - start_all ))s, $skipped skipped, $xfailed known failures (xfail)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
