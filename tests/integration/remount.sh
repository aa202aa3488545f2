#!/bin/bash
# remount.sh -- mount -o remount of a pkramfs through mount(8) and mount.fuse3, side by side
# with a kernel tmpfs remounted the same way:
#  - remount,ro: every mutation (create, mkdir, mknod, symlink, link, unlink, rmdir, rename,
#    open for writing (so also write and fallocate), O_TRUNC, truncate, chmod, chown, utimes,
#    setxattr, removexattr) fails with tmpfs's errno (EROFS) and the tree stays as it was; reads work; the
#    mount's other flags (nosuid) stay; refused (EBUSY, one line) while a file is open for
#    writing, the mount still writable;
#  - remount,rw: writable again;
#  - remount,ro,preserve (the seed's interface): read-only and the node preserved, as
#    pkramfs-ctl preserve; remount,rw unpreserves it; the preserved tree survives kill -9;
#  - a fstab entry with settings (size=...): remount works and keeps them;
#  - errors: remount of a directory that is no pkramfs, preserve without remount, preserve of
#    an anonymous mount (one line, non-zero exit).
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl
export PATH=$PKRAMFS_BIN:$PATH
if ! use_mount_helpers; then
    fail "remount:setup" "could not put pkramfs-fuse in the default PATH of mount helpers"
    finish
fi

M=$T/mnt
TM=$T/tmpfs
mkdir -p "$M" "$TM"
mount -t tmpfs -o size=64m,nosuid pkit-tmpfs "$TM"

# every mutation, as root: "NAME RESULT" (ok or the errno name)
MUTATIONS=$(cat <<'EOF'
import errno, os, sys
root = sys.argv[1]
os.chdir(root)
ops = {
    "create": lambda: os.close(os.open("new", os.O_WRONLY | os.O_CREAT, 0o644)),
    "mkdir": lambda: os.mkdir("newdir"),
    "mkfifo": lambda: os.mkfifo("fifo2"),
    "symlink": lambda: os.symlink("f", "sl2"),
    "link": lambda: os.link("f", "f2"),
    "unlink": lambda: os.unlink("f"),
    "rmdir": lambda: os.rmdir("d/empty"),
    "rename": lambda: os.rename("f", "g"),
    "open-write": lambda: os.close(os.open("f", os.O_WRONLY)),
    "open-trunc": lambda: os.close(os.open("f", os.O_RDONLY | os.O_TRUNC)),
    "truncate": lambda: os.truncate("f", 1),
    "chmod": lambda: os.chmod("f", 0o600),
    "chown": lambda: os.chown("f", 1, 1),
    "utime": lambda: os.utime("f", (1, 2)),
    "setxattr": lambda: os.setxattr("f", "user.new", b"v"),
    "removexattr": lambda: os.removexattr("f", "user.k"),
    "read": lambda: open("f", "rb").read(),
    "readdir": lambda: os.listdir("d"),
}
for name, op in ops.items():
    try:
        op()
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, str(e.errno)))
EOF
)
tree_of() { # tree_of DIR: what a denied mutation must not change
    (cd "$1" && find . -printf '%p %y %m %U %G %s %n %T@ %l\n' | sort
     getfattr -d -R . 2>/dev/null)
}
populate() {
    echo data >"$1/f" && setfattr -n user.k -v v "$1/f" && mkdir -p "$1/d/empty" &&
        ln -s f "$1/sl" && mkfifo "$1/fifo"
}
# check_mutations LABEL: the mutations on $M and $TM, both read-only, answer alike
check_mutations() {
    local label=$1 pk tm name want got before
    before=$(tree_of "$M")
    pk=$("$PY" -c "$MUTATIONS" "$M" 2>&1)
    tm=$("$PY" -c "$MUTATIONS" "$TM" 2>&1)
    while read -r name want; do
        got=$(awk -v k="$name" '$1 == k { print $2 }' <<<"$pk")
        case $name in read | readdir) [ "$want" = ok ] || fail "$label:$name:oracle" "tmpfs: $want" ;;
        *) [ "$want" = EROFS ] || fail "$label:$name:oracle" "tmpfs answered $want, not EROFS" ;; esac
        assert_eq "$label:$name" "$want" "$got"
    done <<<"$tm"
    assert_eq "$label:tree-unchanged" "$before" "$(tree_of "$M")"
}
mount_opts_of() { awk -v m="$1" '$5 == m { o = $6 } END { print o }' /proc/self/mountinfo; }
state_of() { "$CTL" --json status "$1" 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("state"))'; }

# ------------------------------------------------------------- ro and back --
mount -t fuse.pkramfs-fuse -o size=64m,nosuid,allow_other rnode "$M" >"$T/m.err" 2>&1 ||
    { fail "mount" "mount -t fuse.pkramfs-fuse failed"; details "$T/m.err"; finish; }
pid=$(pids_of_mount "$M" | head -1); [ -n "$pid" ] && PKIT_PIDS+=("$pid")
populate "$M" && populate "$TM" || fail "setup:populate" "could not write the trees"

mount -o remount,ro "$TM" || fail "ro:oracle" "tmpfs remount,ro failed"
mount -o remount,ro "$M" >"$T/r.out" 2>"$T/r.err"
assert_eq "ro:exit-0" 0 "$?"
assert_eq "ro:quiet" "" "$(cat "$T/r.out" "$T/r.err")"
assert_contains "ro:mount-ro" ",$(mount_opts_of "$M")," ",ro,"
assert_contains "ro:nosuid-kept" ",$(mount_opts_of "$M")," ",nosuid,"
check_mutations ro
assert_eq "ro:state-not-preserved" active "$(state_of rnode)"

mount -o remount,rw "$TM"
mount -o remount,rw "$M" >"$T/r.err" 2>&1
assert_eq "rw:exit-0" 0 "$?"
assert_contains "rw:mount-rw" ",$(mount_opts_of "$M")," ",rw,"
assert_contains "rw:nosuid-kept" ",$(mount_opts_of "$M")," ",nosuid,"
check "rw:writable" "cannot create after remount,rw" touch "$M/after-rw"

# a file open for writing: the kernel refuses to make the mount read-only, which stays writable
exec 7>>"$M/after-rw"
mount -o remount,ro "$M" >"$T/r.out" 2>"$T/r.err"
rc=$?
exec 7>&-
assert_ne "busy:refused" 0 "$rc"
assert_one_line_err "busy:one-line" "$T/r.err"
info "busy: $(cat "$T/r.err")"
assert_contains "busy:says-why" "$(cat "$T/r.err")" "open for writing"
check "busy:still-writable" "the mount went read-only after a refused remount" touch "$M/still-rw"

# ------------------------------------------------------------------ preserve --
echo before-preserve >"$M/p"
mount -o remount,ro,preserve "$M" >"$T/r.err" 2>&1
assert_eq "preserve:exit-0" 0 "$?"
[ -s "$T/r.err" ] && details "$T/r.err"
assert_contains "preserve:mount-ro" ",$(mount_opts_of "$M")," ",ro,"
assert_eq "preserve:state" preserved "$(state_of rnode)"
mount -o remount,rw "$M" >"$T/r.err" 2>&1
assert_eq "unpreserve:exit-0" 0 "$?"
assert_eq "unpreserve:state" active "$(state_of rnode)"
check "unpreserve:writable" "cannot write after remount,rw" sh -c "echo more >>'$M/p'"

# preserved, then the daemon dies: the next mount has the tree and the node says preserved
mount -o remount,ro,preserve "$M"
kill -KILL "$pid" 2>/dev/null
wait_gone "$pid" 10
umount -l "$M" 2>/dev/null
assert_eq "preserve+kill9:state" preserved "$("$CTL" --json status rnode 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("state"))')"
mount -t fuse.pkramfs-fuse -o nosuid,allow_other rnode "$M" >"$T/m.err" 2>&1
pid=$(pids_of_mount "$M" | head -1); [ -n "$pid" ] && PKIT_PIDS+=("$pid")
assert_eq "preserve+kill9:tree" "before-preserve
more" "$(cat "$M/p" 2>&1)"
check "preserve+kill9:writable" "cannot write after the next mount" touch "$M/new-after-kill"
umount "$M"; [ -n "$pid" ] && wait_gone "$pid" 10

# ----------------------------------------------------------------- fstab --
printf 'fsnode %s fuse.pkramfs-fuse size=32m,nr_inodes=1000 0 0\n' "$M" >"$T/fstab"
mount -T "$T/fstab" "$M" >"$T/m.err" 2>&1 || { fail "fstab:mount" "failed"; details "$T/m.err"; }
pid=$(pids_of_mount "$M" | head -1); [ -n "$pid" ] && PKIT_PIDS+=("$pid")
mount -T "$T/fstab" -o remount,ro "$M" >"$T/r.err" 2>&1
assert_eq "fstab:remount-ro:exit-0" 0 "$?"
[ -s "$T/r.err" ] && info "fstab remount says: $(cat "$T/r.err")"
assert_contains "fstab:mount-ro" ",$(mount_opts_of "$M")," ",ro,"
assert_eq "fstab:size-kept" $((32 << 20)) "$(stat -f -c '%S %b' "$M" | awk '{ print $1 * $2 }')"
mount -T "$T/fstab" -o remount,rw "$M"
check "fstab:rw-writable" "cannot write after remount,rw" touch "$M/x"
umount "$M"; [ -n "$pid" ] && wait_gone "$pid" 10

# ---------------------------------------------------------------- errors --
"$PK" "$TM" -o remount,ro >/dev/null 2>"$T/e.err"
assert_ne "error:not-pkramfs:exit" 0 "$?"
assert_one_line_err "error:not-pkramfs:one-line" "$T/e.err"
assert_contains "error:not-pkramfs:names-it" "$(cat "$T/e.err")" "is not a pkramfs mount"
"$PK" --pkram=x "$M" -o preserve >/dev/null 2>"$T/e.err"
assert_ne "error:preserve-alone:exit" 0 "$?"
assert_one_line_err "error:preserve-alone:one-line" "$T/e.err"
check "error:preserve-alone:nothing-mounted" "$M is mounted" eval '! is_mounted "$M"'
"$PK" "$M" -o user_id=0 >/dev/null 2>"$T/e.err"
assert_ne "error:user_id-without-remount:exit" 0 "$?"
# an anonymous mount: read-only works, there is nothing to preserve
if pk_start "$M" --size=16m; then
    "$PK" "$M" -o remount,ro,preserve >/dev/null 2>"$T/e.err"
    assert_ne "anon:preserve:exit" 0 "$?"
    assert_one_line_err "anon:preserve:one-line" "$T/e.err"
    assert_contains "anon:preserve:ro-anyway" ",$(mount_opts_of "$M")," ",ro,"
    "$PK" "$M" -o remount,rw >/dev/null 2>"$T/e.err"
    assert_eq "anon:rw:exit" 0 "$?"
    check "anon:rw:writable" "cannot write" touch "$M/w"
    pk_stop "$M"
fi

umount "$TM"
unuse_mount_helpers
finish
