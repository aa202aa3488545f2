#!/bin/bash
# inode_flags.sh -- chattr flags (immutable, append-only, nodump, noatime; FS_IOC_GETFLAGS/
# SETFLAGS and FS_IOC_FSGETXATTR/FSSETXATTR) and renameat2(RENAME_WHITEOUT), compared with a
# kernel tmpfs probe by probe (inode_flags.py): every flag x operation on files and directories
# as root, the same as user nobody (no CAP_LINUX_IMMUTABLE), in every --cache mode; then the
# flags and whiteouts kept across unmount/remount, kill -9 (journal replay), `pkramfs-ctl
# check`, export/import; a version-1 node (format.h) still mounts and is upgraded, and a
# node_image.py check that a version-1 node stays what version 1 wrote.
# pkit-timeout: 300
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl
[ -n "$PY" ] || { skip "flags" "python3 not available"; finish; }

FP=$PKIT_LIBDIR/inode_flags.py
NI="$PY $PKIT_LIBDIR/node_image.py"
ctl() { "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$@"; }
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
# run_probe DIR OUT: the root, setup-nobody, nobody and clear parts into OUT
run_probe() {
    mkdir "$1"
    {
        (cd / && timeout 120 "$PY" "$FP" "$1" root)
        (cd / && "$PY" "$FP" "$1" setup-nobody)
        (cd / && timeout 60 "${NOBODY[@]}" "$PY" "$FP" "$1" nobody)
        (cd / && "$PY" "$FP" "$1" clear)
    } >"$2" 2>&1
}
# compare NAME TMPFS PK: one check per transcript line
compare() {
    local name=$1 line key got
    while IFS= read -r line; do
        key=${line%%: *}
        got=$(awk -v k="$key: " 'index($0, k) == 1 { print; exit }' "$3")
        if [ "$got" == "$line" ]; then pass "$name:$key"
        else fail "$name:$key" "tmpfs: '${line#*: }'  pkramfs: '${got#*: }'"; fi
    done <"$2"
    if grep -q -e Traceback -e ' EXC ' -e timeout: "$3"; then fail "$name:transcript" "probe script crashed:"; details "$3" 20; fi
}

TM=$T/tmpfs
tmpfs_mount "$TM" strictatime
chmod 755 "$TM"
run_probe "$TM/p" "$T/probe.tmpfs"
if [ "$(grep -c . "$T/probe.tmpfs")" -lt 300 ] || [ "$(grep -c '^nobody:' "$T/probe.tmpfs")" -lt 30 ] ||
    grep -q -e Traceback -e ' EXC ' -e timeout: "$T/probe.tmpfs"; then
    fail "flags:tmpfs-transcript" "probe script broken on tmpfs:"; details "$T/probe.tmpfs" 20
fi

# ---------------------------------------------------------- every cache mode --
for cache in auto writeback direct; do
    M=$T/pk-$cache
    if ! pk_start "$M" --size=256m --cache="$cache" -o allow_other,strictatime; then
        fail "flags:$cache:mount" "did not mount"; continue
    fi
    chmod 755 "$M"
    run_probe "$M/p" "$T/probe.$cache"
    compare "$cache" "$T/probe.tmpfs" "$T/probe.$cache"
    pk_stop "$M"
done

# ------------------------------------------------------------- persistence --
(cd "$TM" && mkdir k && "$PY" "$FP" "$TM/k" keep && "$PY" "$FP" "$TM/k" state) >"$T/keep.tmpfs" 2>&1
(cd "$TM" && "$PY" "$FP" "$TM/k" more && "$PY" "$FP" "$TM/k" state) >"$T/more.tmpfs" 2>&1
M=$T/pk
state() { (cd / && "$PY" "$FP" "$M/k" state) >"$T/$1" 2>&1; }
if pk_start "$M" --pkram=keep --size=64m; then
    mkdir "$M/k"
    (cd / && "$PY" "$FP" "$M/k" keep)
    state keep.pk
    assert_files_eq "persist:kept" "$T/keep.tmpfs" "$T/keep.pk"
    pk_stop "$M"
    check "persist:unmounted-check" "pkramfs-ctl check not clean" quietly ctl check keep
    $NI inode-flags "$SHM/keep" >"$T/flags.ckpt"
    check "persist:flags-in-checkpoint" "no inode flags in the checkpoint image" test -s "$T/flags.ckpt"
    if pk_start "$M" --pkram=keep; then
        state remount.pk
        assert_files_eq "persist:remount" "$T/keep.tmpfs" "$T/remount.pk"
        # Changes that only the journal holds, then kill -9.
        (cd / && "$PY" "$FP" "$M/k" more)
        state more.pk
        assert_files_eq "persist:more" "$T/more.tmpfs" "$T/more.pk"
        eval "$($NI info "$SHM/keep")"
        types=""
        for ((i = 0; i < jrecs; i++)); do v=jrec_${i}_type; types="$types ${!v}"; done
        assert_contains "persist:journal-has-flags-record" "$types " " 10 "
        assert_contains "persist:journal-has-whiteout-record" "$types " " 11 "
        kill -KILL "$PK_PID"; wait "$PK_PID" 2>/dev/null
        umount -l "$M" 2>/dev/null
        check "persist:killed-check" "pkramfs-ctl check not clean" quietly ctl check keep
        if pk_start "$M" --pkram=keep; then
            state replayed.pk
            assert_files_eq "persist:kill-9" "$T/more.tmpfs" "$T/replayed.pk"
            pk_stop "$M"
        else fail "persist:kill-9-remount" "refused"; fi
    else fail "persist:remount" "refused"; fi
    # export/import keeps them
    if ctl export keep "$T/keep.img" >/dev/null 2>"$T/export.err" &&
        ctl import "$T/keep.img" copy >/dev/null 2>"$T/import.err"; then
        if pk_start "$M" --pkram=copy; then
            state imported.pk
            assert_files_eq "persist:export-import" "$T/more.tmpfs" "$T/imported.pk"
            pk_stop "$M"
        else fail "persist:import-mount" "refused"; fi
    else
        fail "persist:export-import" "export or import failed:"; details "$T/export.err" 5; details "$T/import.err" 5
    fi
else
    fail "persist:mount" "did not mount"
fi

# ---------------------------------------------------------- format version 1 --
# A node that uses nothing of version 2 made into what version 1 wrote; it mounts, checks
# clean, keeps its tree and becomes this build's version (3) at the mount; one with flags
# cannot be made v1.
# Without passthrough: make-v1 rewrites the node file, whose files must hold their data (file
# objects are version 5).
if PKRAMFS_TUNE=passthrough=0 pk_start "$M" --pkram=old --size=64m; then
    mkdir "$M/d"; echo old >"$M/d/f"; ln -s d/f "$M/sl"
    pk_stop "$M"
    if $NI make-v1 "$SHM/old" 2>"$T/v1.err"; then
        eval "$($NI info "$SHM/old")"
        assert_eq "v1:made" 1 "$version"
        check "v1:check" "pkramfs-ctl check of a version-1 node not clean" quietly ctl check old
        if pk_start "$M" --pkram=old; then
            assert_eq "v1:tree" "old" "$(cat "$M/sl")"
            eval "$($NI info "$SHM/old")"
            assert_eq "v1:upgraded-at-mount" "$PKIT_FORMAT_VERSION" "$version"
            # chattr(1) and lsattr(1) themselves, on the upgraded node
            check "v1:chattr" "chattr +i failed" quietly chattr +i "$M/d/f"
            case $(lsattr "$M/d/f" 2>&1) in "----i-"*" $M/d/f") pass "v1:lsattr" ;;
                *) fail "v1:lsattr" "$(lsattr "$M/d/f" 2>&1)" ;; esac
            pk_stop "$M"
            check "v1:after-upgrade-check" "not clean" quietly ctl check old
            check "v1:cannot-go-back" "node_image.py made a node with flags version 1" \
                bash -c "! $NI make-v1 '$SHM/old' 2>/dev/null"
        else fail "v1:mount" "a version-1 node was refused:"; details "$PK_ERR" 5; fi
    else fail "v1:made" "node_image.py make-v1 failed:"; details "$T/v1.err" 5; fi
else
    fail "v1:mount-new" "did not mount"
fi
# --------------------------------------------- a build of format version 1 (optional) --
# PKIT_OLD_BIN: the bin directory of a build that knows only version 1 (e.g. the main branch
# before format version 2). It refuses a node of this build's version (4) on one line, leaving
# every byte, and an export image of one; a node it made (with journal records after a kill -9)
# mounts here.
OLD=${PKIT_OLD_BIN:-}
if [ -z "$OLD" ] || [ ! -x "$OLD/pkramfs-fuse" ]; then
    skip "old-build" "PKIT_OLD_BIN not set"
else
    OLDCTL=("$OLD/pkramfs-ctl" --shm-dir="$SHM" --run-dir="$RUN")
    sum=$(sha256sum <"$SHM/keep")
    "$OLD/pkramfs-fuse" -f --shm-dir="$SHM" --run-dir="$RUN" --pkram=keep "$M" 2>"$T/old.err"
    assert_eq "old-build:refuses-v2-exit" 1 "$?"
    assert_one_line_err "old-build:refuses-v2-one-line" "$T/old.err"
    assert_contains "old-build:refuses-v2-why" "$(cat "$T/old.err")" "format version 4 is newer than this build reads (version 1)"
    "${OLDCTL[@]}" check keep >/dev/null 2>&1
    assert_eq "old-build:check-exit" 1 "$?"
    assert_eq "old-build:v2-untouched" "$sum" "$(sha256sum <"$SHM/keep")"
    "${OLDCTL[@]}" import "$T/keep.img" oldcopy >/dev/null 2>"$T/oldimport.err"
    assert_eq "old-build:import-v2-exit" 1 "$?"
    assert_contains "old-build:import-v2-why" "$(cat "$T/oldimport.err")" "holds a node of format version 4"
    "$OLD/pkramfs-fuse" -f --shm-dir="$SHM" --run-dir="$RUN" --pkram=made-old --size=64m "$M" &
    OLD_PID=$!
    PKIT_PIDS+=("$OLD_PID")
    if wait_mounted "$M" 10 "$OLD_PID"; then
        mkdir "$M/d"; echo v1 >"$M/d/f"; echo journal >"$M/j"
        kill -KILL "$OLD_PID"; wait "$OLD_PID" 2>/dev/null; umount -l "$M"
        eval "$($NI info "$SHM/made-old")"
        assert_eq "old-build:made-v1" 1 "$version"
        check "old-build:check-v1" "not clean" quietly ctl check made-old
        if pk_start "$M" --pkram=made-old; then
            assert_eq "old-build:v1-tree" "v1 journal" "$(cat "$M/d/f" "$M/j" | tr '\n' ' ' | sed 's/ $//')"
            check "old-build:v1-chattr" "chattr +a failed" quietly chattr +a "$M/j"
            pk_stop "$M"
            check "old-build:v1-upgraded-check" "not clean" quietly ctl check made-old
        else fail "old-build:v1-mount" "refused"; fi
    else fail "old-build:mount" "the old build did not mount"; fi
fi
finish
