#!/usr/bin/env bash
# readdir while the directory changes (xfstests generic/736): readdir_churn.py reads a
# 5,000-file directory while each entry returned is renamed to TEMPFILE and back (`renames`),
# and with small getdents64 buffers while unread entries are unlinked, read ones replaced by new
# files of the same name and new names created (`unlinks`). No name may come twice, every name
# present all along must come, and the listing must end. On kernel tmpfs first, as a check of
# the tester; then on pkramfs once per --cache mode, on a node that is then remounted (the
# restored directory is read again the same way).
. "$(dirname "$0")/lib.sh"
need_pk
[ -n "$PY" ] || { skip "readdir:python" "no python3"; finish; }
CHURN=$PKIT_LIBDIR/readdir_churn.py

# churn NAME WHAT DIR: PASS NAME, or FAIL NAME with readdir_churn.py's report
churn() { check_report "$1" "readdir_churn.py $2" 8 "$PY" "$CHURN" "$2" "$3"; }

tmpfs_mount "$T/tmpfs" size=256m,huge=never
mkdir "$T/tmpfs/r" "$T/tmpfs/u"
churn "readdir:tmpfs:renames" renames "$T/tmpfs/r"
churn "readdir:tmpfs:unlinks" unlinks "$T/tmpfs/u"
umount "$T/tmpfs"

for mode in auto direct writeback; do
    mnt=$T/mnt-$mode
    args=(--cache="$mode" --pkram="churn-$mode" --size=256m)
    if ! pk_start "$mnt" "${args[@]}"; then
        fail "readdir:$mode:mount" "pkramfs-fuse ${args[*]} did not mount"
        continue
    fi
    mkdir "$mnt/r" "$mnt/u"
    churn "readdir:$mode:renames" renames "$mnt/r"
    churn "readdir:$mode:unlinks" unlinks "$mnt/u"
    # Restored from the node, the directories list their entries once each, and again under
    # the same churn.
    if pk_stop "$mnt" && pk_start "$mnt" "${args[@]}"; then
        n=$(find "$mnt/r" -mindepth 1 | wc -l)
        u=$(find "$mnt/r" -mindepth 1 | sort -u | wc -l)
        if [ "$n" = 5000 ] && [ "$u" = 5000 ]; then
            pass "readdir:$mode:restored"
        else
            fail "readdir:$mode:restored" "$n names ($u distinct) listed, 5000 expected"
        fi
        churn "readdir:$mode:restored-renames" renames "$mnt/r"
        pk_stop "$mnt" || fail "readdir:$mode:unmount" "the daemon did not exit cleanly"
    else
        fail "readdir:$mode:remount" "remount of node churn-$mode failed"
        details "$PK_ERR" 10
    fi
done
finish
