#!/bin/bash
# handles.sh -- file handles (name_to_handle_at / open_by_handle_at, what NFS export and
# generic/426, 467, 477, 756 use), side by side with a kernel tmpfs:
#  - on the live mount: a file's handle opens the file, a nested directory's handle opens the
#    directory connected to its path, a deleted file's handle is ESTALE, as on tmpfs;
#  - after the daemon restarts (clean unmount and mount, then kill -9 and mount) the kernel has
#    none of the inodes cached: the handles of the first mount, opened through the new one,
#    still give the same files and the directory connected to its path (FUSE looks up "." of
#    the node id and ".." of each directory: Filesystem::lookup), a deleted file's ESTALE; a
#    file deleted while the mount was away too;
#  - a handle of one node is ESTALE on another node's mount, even for the same inode number.
. "$(dirname "$0")/lib.sh"
need_pk
PROBE="$PKIT_LIBDIR/handle_probe.py"
M=$T/mnt
TM=$T/tmpfs

tree() { # tree ROOT
    echo hello >"$1/f" && mkdir -p "$1/a/b/c" && echo nested >"$1/a/b/c/g" &&
        echo gone >"$1/x" && echo later >"$1/y"
}
PATHS="f a/b/c a/b/c/g x y"
# expect LABEL OUT PATH WANT
expect() { assert_eq "$1:$3" "$4" "$(awk -v k="$3" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$2")"; }
check_live() { # check_live LABEL OUT (x deleted, y still there)
    expect "$1" "$2" f hello
    expect "$1" "$2" a/b/c dir:a/b/c
    expect "$1" "$2" a/b/c/g nested
    expect "$1" "$2" x ESTALE
    expect "$1" "$2" y later
}

tmpfs_mount "$TM" size=16m
tree "$TM"
"$PY" "$PROBE" save "$TM" "$T/h.tmpfs" $PATHS
rm "$TM/x"
"$PY" "$PROBE" open "$TM" "$T/h.tmpfs" >"$T/o.tmpfs" 2>&1
check_live "tmpfs-oracle" "$T/o.tmpfs"
umount "$TM"

if ! pk_start "$M" --pkram=handles --size=16m; then
    fail "mount" "did not mount"
    finish
fi
tree "$M"
"$PY" "$PROBE" save "$M" "$T/h" $PATHS
check "save:all" "a handle could not be made: $(grep save: "$T/h" 2>/dev/null)" test "$(wc -l <"$T/h")" = 5
rm "$M/x"
"$PY" "$PROBE" open "$M" "$T/h" >"$T/o.live" 2>&1
check_live live "$T/o.live"

# The kernel forgets everything: a new mount of the same node.
pk_stop "$M"
pk_start "$M" --pkram=handles || fail "restart:mount" "did not mount again"
"$PY" "$PROBE" open "$M" "$T/h" >"$T/o.restart" 2>&1
check_live after-restart "$T/o.restart"

rm "$M/y"
pid=$PK_PID
kill -KILL "$pid"; wait "$pid" 2>/dev/null
umount -l "$M" 2>/dev/null
pk_start "$M" --pkram=handles || fail "kill9:mount" "did not mount again"
"$PY" "$PROBE" open "$M" "$T/h" >"$T/o.kill9" 2>&1
expect after-kill9 "$T/o.kill9" f hello
expect after-kill9 "$T/o.kill9" a/b/c dir:a/b/c
expect after-kill9 "$T/o.kill9" a/b/c/g nested
expect after-kill9 "$T/o.kill9" y ESTALE
# a handle of one node never opens a file of another (the generation is the node's)
pk_stop "$M"
pk_start "$M" --pkram=other --size=16m || fail "other:mount" "did not mount"
echo other >"$M/f"
"$PY" "$PROBE" open "$M" "$T/h" >"$T/o.other" 2>&1
for p in $PATHS; do expect other-node "$T/o.other" "$p" ESTALE; done
pk_stop "$M"
finish
