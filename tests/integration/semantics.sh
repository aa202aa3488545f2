#!/bin/bash
# semantics.sh -- the same operations on a kernel tmpfs and on a pkramfs,
# compared entry by entry: syscall probes (semantics_ops.py), a scripted tree
# (types, modes, owners, sizes, link counts, contents, xattrs, timestamps,
# sparse layout, du), permission checks as user nobody, and a directory of
# 100,000 entries.
. "$(dirname "$0")/lib.sh"
need_pk

M=$T/pk
TM=$T/tmpfs
pk_start "$M" --size=2g -o allow_other || { fail "semantics:mount" "did not mount"; finish; }
tmpfs_mount "$TM" size=2g
info "mount options: tmpfs '$(mount_opts "$TM")'; pkramfs '$(mount_opts "$M")'"
HAVE_PY=1; [ -n "$PY" ] || HAVE_PY=""

# ------------------------------------------------------------------ probes --
if [ -n "$HAVE_PY" ]; then
    mkdir "$TM/ops" "$M/ops"
    (cd / && "$PY" "$PKIT_LIBDIR/semantics_ops.py" "$TM/ops") >"$T/ops.tmpfs" 2>&1
    (cd / && timeout 120 "$PY" "$PKIT_LIBDIR/semantics_ops.py" "$M/ops") >"$T/ops.pk" 2>&1
    [ "$(wc -l <"$T/ops.tmpfs")" -gt 100 ] || { fail "ops:tmpfs-transcript" "probe script broken on tmpfs:"; details "$T/ops.tmpfs" 20; }
    while IFS= read -r line; do
        key=${line%%: *}
        got=$(awk -v k="$key: " 'index($0, k) == 1 { print; exit }' "$T/ops.pk")
        if [ "$got" == "$line" ]; then pass "ops:$key"
        else fail "ops:$key" "tmpfs: '${line#*: }'  pkramfs: '${got#*: }'"; fi
    done <"$T/ops.tmpfs"
    if grep -q Traceback "$T/ops.pk"; then fail "ops:pkramfs-transcript" "probe script crashed:"; details "$T/ops.pk" 20; fi
else
    skip "ops" "python3 not available"
fi

# ------------------------------------------------------------ scripted tree --
head -c 100000 /dev/urandom >"$T/rnd100k"
head -c 5000000 /dev/urandom >"$T/rnd5m"
# r CMD...: run, log "CMD -> rc stderr" (paths are relative, so logs compare)
r() { local rc; "$@" >/dev/null 2>"$LOGDIR/err"; rc=$?; echo "$* -> $rc $(tr '\n' ' ' <"$LOGDIR/err")" >>"$LOG"; return $rc; }
TS1='2001-02-03 04:05:06.123456789 UTC'
TS2='1999-12-31 23:59:59.999999999 UTC'
TS3='1969-07-20 20:17:40.5 UTC'
build_tree() {
    cd "$1" || return
    r mkdir -p a/b/c d/e/f g 'sp ace' 'uni-ç€'
    r sh -c "printf 'hello\n' >a/f1"
    r cp "$T/rnd100k" rnd
    r sh -c "seq 1 200000 >a/b/seq"
    r touch empty 'sp ace/f x' 'uni-ç€/ü'
    r cp "$T/rnd5m" d/big
    r ln -s a/f1 sl1
    r ln -s /nonexistent/dangling sl2
    r ln -s ../.. a/b/c/up
    r ln -s d dsl
    r ln a/f1 hl1
    r ln a/f1 d/hl2
    r mkfifo fifo
    r mknod cdev c 1 3
    r mknod bdev b 7 200
    if [ -n "$HAVE_PY" ]; then
        r "$PY" -c 'import socket; s = socket.socket(socket.AF_UNIX); s.bind("sock")'
    fi
    r setfattr -n user.foo -v bar a/f1
    r setfattr -n user.bin -v 0x00ff00 a/f1
    r setfattr -n user.empty a/f1
    r setfattr -n trusted.t -v tv d
    r setfattr -n user.dir -v dv a
    r setfattr -h -n trusted.ln -v 1 sl1
    r setfattr -h -n user.ln -v 1 sl1
    r setfattr -n user.fifo -v 1 fifo
    r setfattr -n user.gone -v 1 rnd
    r setfattr -x user.gone rnd
    r touch suid sgid nothing script
    r chmod 4755 suid
    r chmod 2755 sgid
    r chmod 6711 script
    r mkdir stickyd sgidd
    r chmod 1777 stickyd
    r chown 0:1234 sgidd
    r chmod 2775 sgidd
    r mkdir sgidd/sub
    r touch sgidd/file
    r chmod 0 nothing
    r chmod u=rwx,g=rx,o= d/e
    r chown 1000:1000 rnd
    r chown -h 2000:2001 sl1
    r chown 123:456 d/e
    r chown :789 a/b
    r truncate -s 10G sparse
    r dd if=/dev/zero of=sparse bs=1 count=1 seek=1M conv=notrunc status=none
    r sh -c "printf Y | dd of=sparse bs=1 seek=5G conv=notrunc status=none"
    r sh -c "printf Z | dd of=sparse2 bs=4096 seek=1000 status=none"
    r truncate -s 100000 trunc-up
    r cp "$T/rnd100k" trunc-down
    r truncate -s 5000 trunc-down
    r cp "$T/rnd100k" fp
    r fallocate -p -o 8192 -l 16384 fp
    r cp "$T/rnd100k" fz
    r fallocate -z -o 4096 -l 8192 fz
    r cp "$T/rnd100k" fk
    r fallocate --keep-size -o 90000 -l 1M fk
    r fallocate -l 300k fl
    r cp "$T/rnd100k" fc
    r fallocate -c -o 4096 -l 8192 fc
    r cp "$T/rnd100k" "fi"
    r fallocate -i -o 4096 -l 8192 "fi"
    r fallocate -d -o 0 -l 1M sparse2
    r sh -c "echo m1 >m1"
    r mv m1 m2
    r mkdir mvd mvd2 mvd3
    r touch mvd/in mvd3/blocker
    r mv -T mvd mvd2
    r mv -T mvd2 mvd3
    r mv a/b/seq d/e/seq2
    r mv d/e/f g/
    r sh -c "echo one >rn1; echo two >rn2"
    if [ -n "$HAVE_PY" ]; then
        r "$PY" -c 'import os; os.rename("rn1", "rn2")'
        r "$PY" -c 'import os; os.rename("g", "a/b/c/g2")'
    fi
    r sh -c "echo appended >>a/f1"
    # explicit timestamps, after all content changes
    r touch -d "$TS1" a/f1 rnd
    r touch -m -d "$TS2" d/big
    r touch -a -d "$TS3" d/big
    r touch -h -d "$TS2" sl1
    r touch -d "$TS3" d/e fifo
    r touch -d '@-1' empty
    r touch -d '2262-04-11 23:47:16 UTC' m2
    cd / || return
}
LOGDIR=$T
for side in tmpfs pk; do
    if [ $side = tmpfs ]; then D=$TM/tree; else D=$M/tree; fi
    mkdir "$D"
    LOG=$T/log.$side
    : >"$LOG"
    read -r bfree0 ffree0 <<<"$(stat -f -c '%f %d' "$D")"
    build_tree "$D"
    read -r bfree1 ffree1 <<<"$(stat -f -c '%f %d' "$D")"
    echo "blocks-used=$((bfree0 - bfree1)) inodes-used=$((ffree0 - ffree1))" >"$T/statfs.$side"
    (
        cd "$D" || exit
        # timestamps first: later traversals update atimes (relatime)
        for p in a/f1 rnd d/big sl1 d/e fifo empty m2 hl1 d/hl2; do
            find "$p" -maxdepth 0 -printf '%p mtime=%T@ atime=%A@\n'
        done >"$T/times.$side"
        find . -printf '%P %y %m %u %g %s %n %l\n' | sort >"$T/list.$side"
        find . -printf '%P %b\n' | sort >"$T/blocks.$side"
        find . -type f -size -64M -print0 | sort -z | xargs -0 sha256sum >"$T/sums.$side"
        for f in sparse sparse2; do
            for off in 0 1 1024 1279 5120 10239; do   # MiB
                printf '%s@%sM ' $f $off
                dd if=$f bs=1M skip=$off count=1 2>/dev/null | sha256sum
            done
        done >>"$T/sums.$side"
        find . -print0 | sort -z | while IFS= read -r -d '' p; do
            getfattr -h -d -m - -e hex -- "$p" 2>&1 | grep -v '^#' | grep . | sort | sed "s|^|$p |"
        done >"$T/xattrs.$side"
        du -a --count-links --apparent-size -B1 . | sort -k2 >"$T/du-apparent.$side"
        du -s --count-links -B1 . >"$T/du.$side"
        if [ -n "$HAVE_PY" ]; then
            "$PY" - sparse sparse2 fp fz fk fl fc "fi" trunc-down trunc-up >"$T/seek.$side" <<'EOF'
import os, sys, errno
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY); size = os.fstat(fd).st_size; segs = []; off = 0
    try:
        while off < size:
            d = os.lseek(fd, off, os.SEEK_DATA); h = os.lseek(fd, d, os.SEEK_HOLE)
            segs.append((d, h)); off = h
    except OSError as e:
        segs.append(errno.errorcode[e.errno])
    print(p, size, segs)
EOF
        fi
    )
done
grep -v -- '-> 0 $' "$T/log.tmpfs" | sed 's/^/# expected failure on tmpfs too: /'
assert_files_eq "tree:commands" "$T/log.tmpfs" "$T/log.pk"
assert_files_eq "tree:find-listing" "$T/list.tmpfs" "$T/list.pk"
assert_files_eq "tree:blocks" "$T/blocks.tmpfs" "$T/blocks.pk"
assert_files_eq "tree:explicit-times" "$T/times.tmpfs" "$T/times.pk"
assert_files_eq "tree:sha256" "$T/sums.tmpfs" "$T/sums.pk"
assert_files_eq "tree:xattrs" "$T/xattrs.tmpfs" "$T/xattrs.pk"
assert_files_eq "tree:du-apparent-size" "$T/du-apparent.tmpfs" "$T/du-apparent.pk"
assert_files_eq "tree:du" "$T/du.tmpfs" "$T/du.pk"
[ -n "$HAVE_PY" ] && assert_files_eq "tree:seek-data-hole" "$T/seek.tmpfs" "$T/seek.pk"
assert_files_eq "tree:statfs-usage" "$T/statfs.tmpfs" "$T/statfs.pk"
# self-checks of the oracle (a broken tree on tmpfs would make comparisons moot)
grep -q '^d/hl2 f 644 root root 15 3 $' "$T/list.tmpfs" ||
    fail "tree:oracle" "tmpfs listing lacks 'd/hl2 f 644 root root 15 3'"
nl=$(stat -c %h "$M/tree/a/b" 2>/dev/null)
assert_eq "tree:dir-nlink[a/b]" 3 "$nl"
nl=$(stat -c %h "$M/tree/a/b/c" 2>/dev/null)
assert_eq "tree:dir-nlink[a/b/c]" 3 "$nl"

# -------------------------------------------------- permissions as nobody --
nb() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# p DESC CMD...: as nobody, log rc and the error text
p() { local what=$1 rc; shift; nb "$@" >/dev/null 2>"$T/perr"; rc=$?; echo "$what -> $rc $(sed 's/^[^:]*: //; s/.*: //' "$T/perr" | tr '\n' ' ')"; }
perm_tests() {
    cd "$1" || return
    mkdir perm; cd perm || return
    echo secret >secret; chmod 600 secret
    mkdir rootdir rootdir/sub; chmod 755 rootdir
    mkdir sticky; chmod 1777 sticky
    echo a >sticky/rootfile; chmod 666 sticky/rootfile
    for f in suidfile sgidfile sgidnox plainww; do echo x >$f; done
    chmod 4777 suidfile; chmod 6777 sgidfile; chmod 2767 sgidnox; chmod 666 plainww
    mkdir sgdir; chown 0:1234 sgdir; chmod 2777 sgdir
    echo g >gfile; chown 0:65534 gfile; chmod 640 gfile
    printf '#!/bin/sh\necho ran\n' >exe; chmod 755 exe
    cp exe noexe; chmod 644 noexe
    p read-0600-root-file cat secret
    p write-0600-root-file sh -c 'echo x >>secret'
    p truncate-0600-root-file truncate -s 0 secret
    p create-in-0755-root-dir touch rootdir/new
    p list-0755-root-dir ls rootdir
    p rmdir-in-0755-root-dir rmdir rootdir/sub
    p create-in-sticky touch sticky/mine
    p delete-others-in-sticky rm -f sticky/rootfile
    p rename-others-in-sticky mv sticky/rootfile sticky/moved
    p write-others-in-sticky sh -c 'echo w >>sticky/rootfile'
    p delete-own-in-sticky rm -f sticky/mine
    p write-suid-file sh -c 'echo y >>suidfile'
    p write-sgid-groupexec-file sh -c 'echo y >>sgidfile'
    p write-sgid-nogroupexec-file sh -c 'echo y >>sgidnox'
    p truncate-suid-file truncate -s 1 suidfile
    p chmod-others-file chmod 777 plainww
    p chown-others-file chown 65534 plainww
    p touch-now-writable-file touch plainww
    p touch-explicit-others-file touch -d '2000-01-01' plainww
    p read-group-file cat gfile
    p exec-755 ./exe
    p exec-644 ./noexe
    p hardlink-others-file ln secret sticky/link
    p create-in-sgid-dir touch sgdir/nbfile
    p mkdir-in-sgid-dir mkdir sgdir/nbdir
    p chmod-gs-nonmember-group chmod 2755 sgdir/nbfile
    if [ -n "$HAVE_PY" ]; then
        p create-sgid-mode-nonmember-group "$PY" -c 'import os; os.close(os.open("sgdir/nbsg", os.O_CREAT|os.O_WRONLY, 0o2755))'
        p utime-own-file-explicit "$PY" -c 'import os; os.utime("sgdir/nbfile", (1, 2))'
        p open-excl-others "$PY" -c 'import os; os.open("plainww", os.O_CREAT|os.O_EXCL|os.O_WRONLY)'
    fi
    p chown-own-file-to-root chown 0 sgdir/nbfile
    p chgrp-own-file-to-nonmember chgrp 1234 sticky/rootfile
    p setfattr-user-others-file setfattr -n user.x -v 1 secret
    p setfattr-user-writable-file setfattr -n user.x -v 1 plainww
    p setfattr-trusted setfattr -n trusted.x -v 1 plainww
    p getfattr-trusted getfattr -n trusted.x plainww
    echo "--- final state"
    find . -printf '%P %y %m %u %g %s\n' | sort
    cd / || return
}
perm_tests "$TM" >"$T/perm.tmpfs" 2>&1
perm_tests "$M" >"$T/perm.pk" 2>&1
grep -q '^read-0600-root-file -> 1 Permission denied' "$T/perm.tmpfs" ||
    { fail "perm:oracle" "tmpfs did not refuse nobody reading a 0600 file:"; details "$T/perm.tmpfs" 5; }
while IFS= read -r line; do
    [ "$line" = "--- final state" ] && break
    key=${line%% -> *}
    got=$(awk -v k="$key -> " 'index($0, k) == 1 { print; exit }' "$T/perm.pk")
    if [ "$got" == "$line" ]; then pass "perm:$key"
    else fail "perm:$key" "tmpfs: '${line#* -> }'  pkramfs: '${got#* -> }'"; fi
done <"$T/perm.tmpfs"
sed -n '/^--- final state/,$p' "$T/perm.tmpfs" >"$T/permst.tmpfs"
sed -n '/^--- final state/,$p' "$T/perm.pk" >"$T/permst.pk"
assert_files_eq "perm:final-state" "$T/permst.tmpfs" "$T/permst.pk"
assert_eq "perm:suid-cleared-after-write" "777" "$(stat -c %a "$M/perm/suidfile" 2>&1)"
assert_eq "perm:suid+sgid-cleared-after-write" "777" "$(stat -c %a "$M/perm/sgidfile" 2>&1)"
assert_eq "perm:sgid-without-group-exec-cleared-after-write-by-nonmember" \
    "$(stat -c %a "$TM/perm/sgidnox" 2>&1)" "$(stat -c %a "$M/perm/sgidnox" 2>&1)"

# ------------------------------------------------------- 100,000 entries --
if [ -n "$HAVE_PY" ]; then
    before=$(stat -f -c %d "$M")
    start=$(date +%s%N)
    "$PY" - "$M/huge" <<'EOF'
import os, sys
d = sys.argv[1]
os.mkdir(d)
for i in range(100000):
    os.close(os.open(f"{d}/file-{i:06d}", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
EOF
    rc=$?
    t_create=$(( ($(date +%s%N) - start) / 1000000 ))
    assert_eq "huge:create-100000" 0 "$rc"
    start=$(date +%s%N)
    n=$(ls -f "$M/huge" | wc -l)
    assert_eq "huge:ls-f-count" 100002 "$n"
    "$PY" - "$M/huge" >"$T/huge.check" <<'EOF'
import os, sys
names = os.listdir(sys.argv[1])
want = {f"file-{i:06d}" for i in range(100000)}
dups = len(names) - len(set(names))
print(len(names), dups, len(want - set(names)), len(set(names) - want))
EOF
    assert_eq "huge:listdir-exact[count,dups,missing,extra]" "100000 0 0 0" "$(cat "$T/huge.check")"
    assert_eq "huge:dir-size" $(( (100000 + 2) * 20 )) "$(stat -c %s "$M/huge")"
    assert_eq "huge:statfs-inodes-used" 100001 $((before - $(stat -f -c %d "$M")))
    t_ls=$(( ($(date +%s%N) - start) / 1000000 ))
    start=$(date +%s%N)
    timeout 120 rm -rf "$M/huge"; rc=$?
    t_rm=$(( ($(date +%s%N) - start) / 1000000 ))
    assert_eq "huge:rm-rf" 0 "$rc"
    check "huge:gone" "$M/huge still exists" test ! -e "$M/huge"
    assert_eq "huge:inodes-returned" "$before" "$(stat -f -c %d "$M")"
    info "100,000 entries: create ${t_create} ms, list+check ${t_ls} ms, rm -rf ${t_rm} ms"
else
    skip "huge" "python3 not available"
fi

cd /
umount "$TM"
pk_stop "$M"; rc=$?
assert_eq "semantics:clean-unmount" 0 "$rc"
finish
