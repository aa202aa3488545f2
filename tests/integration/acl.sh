#!/bin/bash
# acl.sh -- POSIX ACLs (system.posix_acl_access / _default) against a kernel tmpfs, which has
# them with CONFIG_TMPFS_POSIX_ACL: the same scenario runs on both and its report must be the
# same, line by line, in every --cache mode. It covers setfacl/getfacl round trips, mode and
# ACL in step both ways (chmod rewrites owner/mask/other, an ACL sets the mode, an ACL the mode
# says alone is not kept), default ACL inheritance by files, directories, nested directories,
# mknod (fifo) and open(O_CREAT) (symlinks get none), the umask with and without a default ACL,
# access as user nobody granted and refused by named user and group entries and by the mask
# (also after a chmod narrowed the mask), errno by errno the EINVAL/EOPNOTSUPP/EACCES/EPERM
# cases, and sgid dropped by an ACL set from outside the file's group. Then, on a node: the
# ACLs and modes unchanged across unmount+remount, kill -9 (journal replay) and
# pkramfs-ctl export/import, `pkramfs-ctl check` clean, and the kernel still enforcing them.
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl
M=$T/mnt
M2=$T/mnt2
TM=$T/tmpfs
command -v setfacl >/dev/null || { fail "acl:setfacl" "setfacl not installed (tools/install-deps: acl)"; finish; }

nb() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# as_nobody DESC CMD...: run CMD as nobody, report "DESC -> rc error text"
as_nobody() {
    local what=$1 rc
    shift
    nb "$@" >/dev/null 2>"$T/nb.err"
    rc=$?
    echo "$what -> $rc $(sed 's/^[^:]*: //; s/.*: //' "$T/nb.err" | tr '\n' ' ')"
}
# facl PATH: the ACL as getfacl shows it (numeric ids), and the mode
facl() {
    echo "== $1 $(stat -c '%A %a' "$1")"
    getfacl -n -p "$1" 2>&1 | grep -v '^$'
}

# Syscall-level errno checks and raw values (setfacl sorts and checks what it sends; these
# hand the kernel what setfacl never would).
ERRNO_PROBE=$(cat <<'EOF'
import errno, os, struct, sys
os.chdir(sys.argv[1])
U = 0xFFFFFFFF
def acl(*ents, ver=2):
    return struct.pack("<I", ver) + b"".join(struct.pack("<HHI", *e) for e in ents)
def t(name, f):
    try:
        r = f()
        print(name, "ok", "" if r is None else r)
    except OSError as e:
        print(name, errno.errorcode[e.errno])
A, D = "system.posix_acl_access", "system.posix_acl_default"
open("ef", "w").close(); os.mkdir("ed"); os.symlink("ef", "esl")
t("remove-missing-access", lambda: os.removexattr("ef", A))
t("remove-missing-default-file", lambda: os.removexattr("ef", D))
t("remove-missing-default-dir", lambda: os.removexattr("ed", D))
t("default-on-file", lambda: os.setxattr("ef", D, acl((1,7,U),(4,5,U),(0x20,5,U))))
t("version-1", lambda: os.setxattr("ef", A, acl((1,7,U),(4,5,U),(0x20,5,U), ver=1)))
t("short", lambda: os.setxattr("ef", A, b"\x02\x00"))
t("partial-entry", lambda: os.setxattr("ef", A, acl((1,7,U)) + b"x"))
t("named-without-mask", lambda: os.setxattr("ef", A, acl((1,7,U),(2,5,1000),(4,5,U),(0x20,5,U))))
t("perm-beyond-rwx", lambda: os.setxattr("ef", A, acl((1,15,U),(4,5,U),(0x20,5,U))))
t("unknown-tag", lambda: os.setxattr("ef", A, acl((1,7,U),(3,5,U),(4,5,U),(0x20,5,U))))
t("named-undefined-id", lambda: os.setxattr("ef", A, acl((1,7,U),(2,5,U),(4,5,U),(0x10,5,U),(0x20,5,U))))
t("out-of-order", lambda: os.setxattr("ef", A, acl((4,5,U),(1,7,U),(0x20,5,U))))
t("mode-unchanged-after-errors", lambda: oct(os.stat("ef").st_mode))
t("empty-value-removes", lambda: os.setxattr("ef", A, b""))
t("header-only-removes", lambda: os.setxattr("ef", A, acl()))
t("unsorted-duplicate-named", lambda: os.setxattr("ef", A, acl((1,7,U),(2,5,7),(2,5,3),(2,4,3),(4,5,U),(0x10,5,U),(0x20,5,U))))
t("get-raw", lambda: os.getxattr("ef", A).hex())
t("class-ids-dropped", lambda: os.setxattr("ef", A, acl((1,6,5),(4,4,5),(0x10,4,9),(0x20,0,7))))
t("get-raw-2", lambda: os.getxattr("ef", A).hex())
t("mode-from-acl", lambda: oct(os.stat("ef").st_mode))
t("equivalent", lambda: os.setxattr("ef", A, acl((1,7,U),(4,5,U),(0x20,1,U))))
t("equivalent-not-kept", lambda: os.getxattr("ef", A))
t("equivalent-mode", lambda: oct(os.stat("ef").st_mode))
t("list-after-equivalent", lambda: os.listxattr("ef"))
t("replace-flag-ignored", lambda: os.setxattr("ef", A, acl((1,7,U),(4,5,U),(0x10,5,U),(0x20,1,U)), os.XATTR_REPLACE))
t("create-flag-ignored", lambda: os.setxattr("ef", A, acl((1,7,U),(4,5,U),(0x10,4,U),(0x20,1,U)), os.XATTR_CREATE))
t("list", lambda: os.listxattr("ef"))
t("system-other", lambda: os.setxattr("ef", "system.foo", b"x"))
t("get-default-of-file", lambda: os.getxattr("ef", D))
t("symlink-set", lambda: os.setxattr("esl", A, acl((1,7,U),(4,5,U),(0x20,1,U)), follow_symlinks=False))
t("symlink-get", lambda: os.getxattr("esl", A, follow_symlinks=False))
t("symlink-remove", lambda: os.removexattr("esl", A, follow_symlinks=False))
t("default-3-entries-kept", lambda: os.setxattr("ed", D, acl((1,7,U),(4,5,U),(0x20,0,U))))
t("get-default-3", lambda: os.getxattr("ed", D).hex())
t("list-dir", lambda: os.listxattr("ed"))
t("open-creat-inherits", lambda: (os.close(os.open("ed/o", os.O_CREAT | os.O_WRONLY, 0o666)), oct(os.stat("ed/o").st_mode), os.listxattr("ed/o")))
EOF
)

scenario() {
    cd "$1" || return
    umask 022
    echo "--- round trip, mode <-> ACL"
    touch f
    setfacl -m u:65534:rw,g:65534:r f && facl f
    chmod 640 f && facl f                       # mask follows the group bits
    setfacl -m m::rwx f && facl f               # the group bits follow the mask
    chmod 4755 f && facl f
    setfacl -m u::r,o::x f && facl f
    setfacl -b f && facl f                      # only the base entries: no ACL kept
    setfacl -m u::rwx,g::r-x,o::--x f && facl f # says no more than the mode
    getfattr -d -m - -e hex f 2>&1 | grep -v '^#'
    setfacl -m u:1000:r,g:1000:rwx f && getfattr -d -m - -e hex f 2>&1 | grep -v '^#'
    setfacl -x u:1000 f && facl f
    setfacl -k f; echo "setfacl -k on a file: $?"
    echo "--- default ACL inheritance"
    mkdir d
    setfacl -d -m u:65534:rwx,g::rx,o::- d && facl d
    touch d/file; facl d/file
    mkdir d/sub; facl d/sub
    mkdir -m 700 d/sub/nested; facl d/sub/nested
    mkfifo -m 640 d/fifo; facl d/fifo
    mknod d/char c 1 3; facl d/char
    ln -s file d/link; echo "symlink xattrs: [$(getfattr -h -d -m - d/link 2>&1)]"
    (umask 077; touch d/u077; mkdir d/u077d); facl d/u077; facl d/u077d
    (umask 077; touch u077; mkdir u077d); facl u077; facl u077d
    mkdir plaindefault; setfacl -d -m u::rwx,g::r,o::r plaindefault; (umask 077; touch plaindefault/p); facl plaindefault/p
    setfacl -k d && facl d && touch d/after-k && facl d/after-k
    echo "--- errno"
    "$PY" -c "$ERRNO_PROBE" "$1"
    echo "--- owner only (EPERM)"
    touch rootfile
    as_nobody setfacl-others-file setfacl -m u:65534:rwx rootfile
    as_nobody remove-acl-others-file setfacl -b rootfile
    touch nbfile; chown 65534:65534 nbfile
    as_nobody setfacl-own-file setfacl -m u:1234:r nbfile
    facl nbfile
    echo "--- sgid"
    for who in nobody root; do
        touch sg-$who; chown 65534:0 sg-$who; chmod 2775 sg-$who
    done
    as_nobody setfacl-sgid-outside-group setfacl -m u:1234:r sg-nobody
    setfacl -m u:1234:r sg-root
    facl sg-nobody; facl sg-root
    mkdir sgd; chown 65534:0 sgd; chmod 2775 sgd
    as_nobody setfacl-sgid-dir-outside-group setfacl -m u:1234:r sgd
    facl sgd
    # A setgid directory with a default ACL (xfstests generic/444): new entries take its group
    # and the ACL, directories its sgid bit; the VFS strips sgid from a file of a non-member.
    mkdir sgacl; chown 0:1234 sgacl; chmod 2775 sgacl
    setfacl -m u:65534:rwx,d:u:65534:rwx,d:g::rwx,d:o::rx sgacl
    as_nobody create-2775-in-sgid-acl-dir "$PY" -c 'import os; os.close(os.open("sgacl/nf", os.O_CREAT | os.O_WRONLY, 0o2775))'
    as_nobody mkdir-2775-in-sgid-acl-dir "$PY" -c 'import os; os.mkdir("sgacl/nd", 0o2775)'
    facl sgacl/nf; facl sgacl/nd
    echo "--- access as nobody"
    echo secret >a; chmod 600 a
    as_nobody read-0600-no-acl cat a
    setfacl -m u:65534:rw a
    as_nobody read-named-user-rw cat a
    as_nobody write-named-user-rw sh -c 'echo more >>a'
    setfacl -m m::r a
    as_nobody write-mask-r sh -c 'echo more >>a'
    as_nobody read-mask-r cat a
    chmod 600 a                                   # the mask becomes ---
    as_nobody read-after-chmod-600 cat a
    setfacl -x u:65534 a; setfacl -m g:65534:r,m::r a
    as_nobody read-named-group-r cat a
    as_nobody write-named-group-r sh -c 'echo more >>a'
    setfacl -m g:65534:-,u:65534:- a
    as_nobody read-named-entries-none cat a
    mkdir pd; chmod 700 pd; setfacl -m u:65534:rwx pd
    as_nobody create-in-granted-dir touch pd/nb
    setfacl -m u:65534:rx pd
    as_nobody create-in-rx-dir touch pd/nb2
    as_nobody list-rx-dir ls pd
    setfacl -m m::- pd
    as_nobody list-masked-dir ls pd
    echo "--- final"
    find . -printf '%P %y %m %u %g\n' | sort
    cd / || return
}

tmpfs_mount "$TM" "size=64m"
scenario "$TM" >"$T/acl.tmpfs" 2>&1
umount "$TM"
# The scenario must see what it is written to see, or it proves nothing.
grep -q '^read-named-user-rw -> 0' "$T/acl.tmpfs" && grep -q '^write-mask-r -> 2 Permission denied' "$T/acl.tmpfs" ||
    { fail "acl:oracle" "tmpfs does not grant and refuse as expected:"; grep -e '->' "$T/acl.tmpfs" | details - 40; }

for cache in auto writeback direct; do
    if ! pk_start "$M" --size=64m --cache=$cache -o allow_other; then
        fail "acl[$cache]:mount" "did not mount"
        continue
    fi
    scenario "$M" >"$T/acl.$cache" 2>&1
    assert_files_eq "acl[$cache]:same-as-tmpfs" "$T/acl.tmpfs" "$T/acl.$cache"
    pk_stop "$M"
done

# ------------------------------------------------------------- persistence --
# snapshot ROOT: every entry's mode and its ACLs, as the kernel reports them
snapshot() {
    (cd "$1" && find . -printf '%P %y %m %u %g\n' | sort &&
        getfacl -R -n -p -P . 2>&1 && getfattr -R -h -d -m - -e hex . 2>&1 | sort)
}
ctl() { timeout -k 2 120 "$CTL" --shm-dir="$SHM" --run-dir="$RUN" "$@"; }
acl_tree() {
    cd "$1" || return
    mkdir -p d
    setfacl -d -m u:65534:rwx,g::rx,o::- d
    mkdir -p d/sub/nested; touch d/f d/sub/g; mkfifo d/p
    echo secret >a; chmod 600 a; setfacl -m u:65534:r,g:1000:rwx a
    touch eq; setfacl -m u::rwx,g::r,o::- eq
    cd / || return
}
check_persisted() { # NAME: snapshot equals $T/snap.want, nobody still granted/refused
    snapshot "$M" >"$T/snap.got"
    assert_files_eq "$1:acls-kept" "$T/snap.want" "$T/snap.got"
    assert_eq "$1:nobody-granted" "secret" "$(nb cat "$M/a" 2>&1)"
    check "$1:nobody-refused-write" "nobody could write to a" \
        quietly bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo x >>$M/a'"
}
check_clean() { # NAME: pkramfs-ctl check of the unmounted node
    if ctl check "$2" >"$T/check.out" 2>&1; then pass "$1:check-clean"
    else fail "$1:check-clean" "pkramfs-ctl check $2 failed:"; details "$T/check.out" 10; fi
}

if pk_start "$M" --pkram=acls --size=64m -o allow_other; then
    acl_tree "$M"
    snapshot "$M" >"$T/snap.want"
    # What the checks below compare must hold ACLs, or keeping them proves nothing.
    check "persist:acls-present" "no ACL in the tree made on the node" \
        grep -q '^default:user:65534:rwx' "$T/snap.want"
    pk_stop "$M"
    check_clean "persist[remount]" acls
    if pk_start "$M" --pkram=acls -o allow_other; then
        check_persisted "persist[remount]"
        # More changes that live only in the journal: a chmod rewriting an ACL, an ACL set,
        # one removed, inheritance, an equivalent ACL replacing an extended one.
        chmod 640 "$M/a"; setfacl -m m::r "$M/a"
        setfacl -m u:1234:rw "$M/eq"; setfacl -b "$M/d/f"
        mkdir "$M/d/new"; touch "$M/d/new/h"
        setfacl -m u::rw,g::r,o::r "$M/d/sub/g"
        snapshot "$M" >"$T/snap.want"
        kill -KILL "$PK_PID"; wait "$PK_PID" 2>/dev/null
        umount -l "$M" 2>/dev/null
        check_clean "persist[kill-9]" acls
        if pk_start "$M" --pkram=acls -o allow_other; then
            check_persisted "persist[kill-9]"
            pk_stop "$M"
            check_clean "persist[after-replay]" acls
            if ctl export acls "$T/acls.img" >"$T/export.out" 2>&1 &&
                ctl import "$T/acls.img" copy >>"$T/export.out" 2>&1; then
                pass "persist[export-import]:round-trip"
                check_clean "persist[export-import]" copy
                if pk_start "$M" --pkram=copy -o allow_other; then
                    check_persisted "persist[export-import]"
                    pk_stop "$M"
                else
                    fail "persist[export-import]:mount" "the imported node did not mount"
                fi
            else
                fail "persist[export-import]:round-trip" "export or import failed:"
                details "$T/export.out" 10
            fi
        else
            fail "persist[kill-9]:remount" "did not mount after kill -9"
        fi
    else
        fail "persist[remount]:remount" "did not mount again"
    fi
else
    fail "persist:mount" "did not mount a node"
fi
finish
