#!/usr/bin/python3
"""Syscall-level semantics probe, run once on a tmpfs and once on a pkramfs.

usage: semantics_ops.py DIR

Prints one line per probe, `name: result`, where result is `ok [value]` or the
errno name.  Nothing in the output depends on inode numbers, device numbers or
absolute times, so two correct runs give identical transcripts; semantics.sh
compares them line by line against the tmpfs run.
"""
import ctypes
import errno
import hashlib
import mmap
import os
import socket
import stat
import sys
import time

from probe_lib import (AT_FDCWD, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, check, en,
                        libc, prober, renameat2)

D = sys.argv[1]
os.chdir(D)
os.umask(0o022)
OUT = []


probe = prober(OUT.append)


def write(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
    fd = os.open(path, flags, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def mode(path):
    return oct(os.lstat(path).st_mode)


def tick():
    # timestamps must be able to move: coarse clocks tick every few ms
    time.sleep(0.02)


# ------------------------------------------------------------- open flags --
probe("create-excl", lambda: write("f", b"hello", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
probe("create-excl-again", lambda: write("f", b"x", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
probe("create-mode-umask", lambda: (write("m", b"", mode=0o777), mode("m"))[1])


def append():
    fd = os.open("f", os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"world")
    pos = os.lseek(fd, 0, os.SEEK_CUR)
    os.pwrite(fd, b"!", 0)  # Linux: pwrite on O_APPEND appends
    os.close(fd)
    return pos, read("f")


probe("o_append", append)


def append_two_fds():
    fa = os.open("ap", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    fb = os.open("ap", os.O_WRONLY | os.O_APPEND)
    for i in range(5):
        os.write(fa, b"A%d" % i)
        os.write(fb, b"B%d" % i)
    os.close(fa)
    os.close(fb)
    return read("ap")


probe("o_append-two-fds", append_two_fds)


def trunc():
    write("t", b"0123456789")
    st0 = os.stat("t")
    tick()
    fd = os.open("t", os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    st1 = os.stat("t")
    return st1.st_size, st1.st_mtime_ns > st0.st_mtime_ns, st1.st_ctime_ns > st0.st_ctime_ns


probe("o_trunc", trunc)


def trunc_empty():
    # O_TRUNC on an already empty file still updates mtime on Linux? (tmpfs decides)
    st0 = os.stat("t")
    tick()
    os.close(os.open("t", os.O_WRONLY | os.O_TRUNC))
    return os.stat("t").st_mtime_ns > st0.st_mtime_ns


probe("o_trunc-empty-file-mtime", trunc_empty)


def trunc_rdonly():
    write("tr", b"abc")
    os.close(os.open("tr", os.O_RDONLY | os.O_TRUNC))
    return os.stat("tr").st_size


probe("o_trunc-with-o_rdonly", trunc_rdonly)


def truncate_same_size():
    write("ts", b"abcdef")
    st0 = os.stat("ts")
    tick()
    os.truncate("ts", 6)
    st1 = os.stat("ts")
    tick()
    os.truncate("ts", 3)
    st2 = os.stat("ts")
    return (st1.st_mtime_ns > st0.st_mtime_ns, st2.st_mtime_ns > st1.st_mtime_ns,
            st2.st_ctime_ns > st1.st_ctime_ns, st2.st_size)


probe("truncate-same-size-then-smaller", truncate_same_size)


def truncate_grow():
    write("tg", b"abc")
    os.truncate("tg", 10000)
    d = read("tg")
    return len(d), d[:3], d[3:] == bytes(len(d) - 3)


probe("truncate-grow-zero-fill", truncate_grow)


def shrink_grow_keeps_zero():
    write("sg", b"X" * 8192)
    os.truncate("sg", 100)
    os.truncate("sg", 8192)
    d = read("sg")
    return d[:100] == b"X" * 100, d[100:] == bytes(8092)


probe("truncate-shrink-grow-zeroes-tail", shrink_grow_keeps_zero)

os.symlink("dangling-target", "dl")
probe("o_creat-excl-on-dangling-symlink", lambda: write("dl", b"", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
probe("o_creat-through-dangling-symlink",
      lambda: (write("dl", b"via", os.O_WRONLY | os.O_CREAT), read("dangling-target"))[1])
probe("o_nofollow-on-symlink", lambda: os.open("dl", os.O_RDONLY | os.O_NOFOLLOW))
probe("o_path-o_nofollow-on-symlink",
      lambda: stat.S_IFMT(os.fstat(os.open("dl", os.O_PATH | os.O_NOFOLLOW)).st_mode) == stat.S_IFLNK)
probe("o_directory-on-file", lambda: os.open("f", os.O_RDONLY | os.O_DIRECTORY))
os.mkdir("dir")
probe("open-dir-wronly", lambda: os.open("dir", os.O_WRONLY))
probe("open-missing", lambda: os.open("nope", os.O_RDONLY))
probe("open-file-as-dir", lambda: os.open("f/x", os.O_RDONLY))
probe("open-trailing-slash-file", lambda: os.open("f/", os.O_RDONLY))
probe("creat-trailing-slash", lambda: os.open("newf/", os.O_WRONLY | os.O_CREAT, 0o644))


def tmpfile():
    fd = os.open(".", os.O_TMPFILE | os.O_RDWR, 0o600)
    os.write(fd, b"anon")
    n = os.fstat(fd).st_nlink
    # linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, name, AT_SYMLINK_FOLLOW)
    if libc.linkat(AT_FDCWD, f"/proc/self/fd/{fd}".encode(), AT_FDCWD, b"tmpf-linked", 0x400) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    os.close(fd)
    return n, read("tmpf-linked"), os.stat("tmpf-linked").st_nlink


probe("o_tmpfile", tmpfile)

# ------------------------------------------------------ unlink while open --


def unlink_open():
    write("uo", b"still here")
    fd = os.open("uo", os.O_RDWR)
    os.unlink("uo")
    os.pwrite(fd, b"STILL", 0)
    r = os.pread(fd, 100, 0), os.fstat(fd).st_nlink, os.path.exists("uo")
    os.close(fd)
    return r


probe("unlink-while-open", unlink_open)


def rename_while_open():
    write("ro", b"data")
    fd = os.open("ro", os.O_RDONLY)
    os.rename("ro", "ro2")
    r = os.pread(fd, 10, 0)
    os.close(fd)
    return r


probe("rename-while-open", rename_while_open)

# --------------------------------------------------------- dirs and links --
probe("mkdir-existing", lambda: os.mkdir("dir"))
probe("mkdir-over-file", lambda: os.mkdir("f"))
probe("mkdir-mode-umask", lambda: (os.mkdir("dm", 0o777), mode("dm"))[1])
probe("mkdir-sticky-mode", lambda: (os.mkdir("dsticky", 0o1777), mode("dsticky"))[1])
write("dir/inner", b"")
probe("rmdir-nonempty", lambda: os.rmdir("dir"))
probe("unlink-dir", lambda: os.unlink("dir"))
probe("rmdir-file", lambda: os.rmdir("f"))
probe("rmdir-dot", lambda: os.rmdir("dir/."))
probe("rmdir-dotdot", lambda: os.rmdir("dir/.."))
probe("link-dir", lambda: os.link("dir", "dirlink"))
probe("link-existing", lambda: os.link("f", "dir/inner"))
probe("link-missing", lambda: os.link("nope", "nope2"))


def nlinks():
    write("h", b"h")
    os.link("h", "h2")
    os.link("h", "dir/h3")
    a = os.stat("h").st_nlink
    os.unlink("h2")
    b = os.stat("h").st_nlink
    same = os.stat("h").st_ino == os.stat("dir/h3").st_ino
    return a, b, same


probe("hardlink-nlink", nlinks)


def hardlink_ctime():
    st0 = os.stat("h")
    tick()
    os.link("h", "h4")
    st1 = os.stat("h")
    return st1.st_ctime_ns > st0.st_ctime_ns, st1.st_mtime_ns == st0.st_mtime_ns


probe("link-updates-ctime-not-mtime", hardlink_ctime)


def dir_nlink():
    os.makedirs("n/a/x")
    os.mkdir("n/b")
    os.mkdir("n/c")
    write("n/file", b"")
    r = [os.stat("n").st_nlink]
    os.rmdir("n/c")
    r.append(os.stat("n").st_nlink)
    os.rename("n/b", "dir/b")
    r.append(os.stat("n").st_nlink)
    r.append(os.stat("dir").st_nlink)
    os.rename("n/a", "n/a2")
    r.append(os.stat("n").st_nlink)
    return r


probe("dir-nlink", dir_nlink)


def dotdot():
    os.makedirs("p1/c")
    os.mkdir("p2")
    os.rename("p1/c", "p2/c")
    return (os.stat("p2/c/..").st_ino == os.stat("p2").st_ino,
            sorted(os.listdir("p1")), os.stat("p1").st_nlink, os.stat("p2").st_nlink)


probe("rename-dir-updates-dotdot", dotdot)


def dir_times():
    st0 = os.stat("dir")
    tick()
    write("dir/new", b"")
    st1 = os.stat("dir")
    tick()
    os.unlink("dir/new")
    st2 = os.stat("dir")
    tick()
    os.stat("dir/inner")
    os.listdir("dir")
    st3 = os.stat("dir")
    return (st1.st_mtime_ns > st0.st_mtime_ns, st1.st_ctime_ns > st0.st_ctime_ns,
            st2.st_mtime_ns > st1.st_mtime_ns, st3.st_mtime_ns == st2.st_mtime_ns)


probe("dir-mtime-on-create-unlink", dir_times)


def dir_sizes():
    os.mkdir("ds")
    r = [os.stat("ds").st_size]
    for i in range(5):
        write(f"ds/{i}", b"")
    r.append(os.stat("ds").st_size)
    os.mkdir("ds/sub")
    r.append(os.stat("ds").st_size)
    os.unlink("ds/0")
    r.append(os.stat("ds").st_size)
    return r


probe("dir-st_size", dir_sizes)


def file_times():
    write("ft", b"1")
    st0 = os.stat("ft")
    tick()
    write("ft", b"2", os.O_WRONLY)
    st1 = os.stat("ft")
    tick()
    os.chmod("ft", 0o600)
    st2 = os.stat("ft")
    return (st1.st_mtime_ns > st0.st_mtime_ns, st1.st_ctime_ns > st0.st_ctime_ns,
            st2.st_mtime_ns == st1.st_mtime_ns, st2.st_ctime_ns > st1.st_ctime_ns)


probe("file-times-write-chmod", file_times)


def atime_read():
    st0 = os.stat("ft")
    tick()
    read("ft")
    return os.stat("ft").st_atime_ns > st0.st_atime_ns  # relatime: atime <= mtime -> updated


probe("atime-updated-by-read", atime_read)


def utimes():
    write("ut", b"")
    os.utime("ut", ns=(1_000_000_123, 2_000_000_456))
    st = os.stat("ut")
    os.utime("ut", ns=(-1_500_000_000, 4_102_444_800_999_999_999))  # 1922, 2100
    st2 = os.stat("ut")
    return st.st_atime_ns, st.st_mtime_ns, st2.st_atime_ns, st2.st_mtime_ns


probe("utimensat-ns", utimes)


def utime_omit():
    write("uo2", b"")
    os.utime("uo2", ns=(5_000_000_000, 6_000_000_000))
    UTIME_OMIT = (1 << 30) - 2
    ts = (ctypes.c_long * 4)(0, UTIME_OMIT, 7, 8)
    r = libc.utimensat(AT_FDCWD, b"uo2", ts, 0)
    st = os.stat("uo2")
    return r, st.st_atime_ns, st.st_mtime_ns


probe("utimensat-omit", utime_omit)


def utime_symlink():
    os.symlink("f", "slt")
    os.utime("slt", ns=(3_000_000_001, 4_000_000_002), follow_symlinks=False)
    return os.lstat("slt").st_mtime_ns, os.stat("slt").st_mtime_ns == 4_000_000_002


probe("utimensat-nofollow-symlink", utime_symlink)

# ----------------------------------------------------------------- rename --
write("r1", b"one")
write("r2", b"two")
probe("rename-over-file", lambda: (os.rename("r1", "r2"), read("r2"), os.path.exists("r1"))[1:])
os.makedirs("rd1/sub")
os.mkdir("rd2")
os.makedirs("rd3/full")
probe("rename-dir-over-empty-dir", lambda: (os.rename("rd1", "rd2"), sorted(os.listdir("rd2")))[1])
probe("rename-dir-over-nonempty-dir", lambda: os.rename("rd2", "rd3"))
probe("rename-dir-over-file", lambda: os.rename("rd2", "r2"))
probe("rename-file-over-dir", lambda: os.rename("r2", "rd3"))
probe("rename-dir-into-own-subdir", lambda: os.rename("rd2", "rd2/sub/x"))
probe("rename-missing", lambda: os.rename("nope", "nope2"))
probe("rename-to-missing-dir", lambda: os.rename("r2", "nodir/r2"))
probe("rename-to-self", lambda: (os.rename("r2", "r2"), read("r2"))[1])
write("hl1", b"hl")
os.link("hl1", "hl2")
probe("rename-hardlink-onto-itself", lambda: (os.rename("hl1", "hl2"), sorted(x for x in os.listdir(".") if x.startswith("hl")))[1])


def rename_ctime():
    write("rc", b"")
    st0 = os.stat("rc")
    tick()
    os.rename("rc", "rc2")
    return os.stat("rc2").st_ctime_ns > st0.st_ctime_ns


probe("rename-updates-ctime", rename_ctime)
write("x1", b"x1")
write("x2", b"x2")
probe("renameat2-noreplace-existing", lambda: renameat2("x1", "x2", RENAME_NOREPLACE))
probe("renameat2-noreplace-new", lambda: (renameat2("x1", "x3", RENAME_NOREPLACE), read("x3"))[1])
probe("renameat2-exchange", lambda: (renameat2("x2", "x3", RENAME_EXCHANGE), read("x2"), read("x3"))[1:])
os.makedirs("xd/sub")
probe("renameat2-exchange-file-dir", lambda: (renameat2("x2", "xd", RENAME_EXCHANGE),
                                              mode("x2")[:5], mode("xd")[:5], sorted(os.listdir("x2")))[1:])
probe("renameat2-exchange-missing", lambda: renameat2("x2", "nothere", RENAME_EXCHANGE))
probe("renameat2-whiteout", lambda: (renameat2("x3", "x4", RENAME_WHITEOUT), mode("x3"), os.lstat("x3").st_rdev)[1:])

# ------------------------------------------------------ special files --
probe("mkfifo", lambda: (os.mkfifo("fifo", 0o640), mode("fifo"))[1])
probe("mknod-chr", lambda: (os.mknod("chr", 0o600 | stat.S_IFCHR, os.makedev(1, 3)),
                            mode("chr"), os.major(os.lstat("chr").st_rdev), os.minor(os.lstat("chr").st_rdev))[1:])
probe("mknod-blk", lambda: (os.mknod("blk", 0o660 | stat.S_IFBLK, os.makedev(259, 70000)),
                            os.major(os.lstat("blk").st_rdev), os.minor(os.lstat("blk").st_rdev))[1:])
probe("mknod-reg", lambda: (os.mknod("reg", 0o644 | stat.S_IFREG), mode("reg"))[1])
probe("mknod-sock", lambda: (os.mknod("sockn", 0o755 | stat.S_IFSOCK), mode("sockn"))[1])


def unix_socket():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("sock")
    s.listen(1)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect("sock")
    a, _ = s.accept()
    c.sendall(b"ping")
    r = a.recv(4)
    for x in (a, c, s):
        x.close()
    return r, stat.S_ISSOCK(os.lstat("sock").st_mode)


probe("unix-socket-bind-connect", unix_socket)


def fifo_io():
    r = os.open("fifo", os.O_RDONLY | os.O_NONBLOCK)
    w = os.open("fifo", os.O_WRONLY)
    os.write(w, b"through fifo")
    d = os.read(r, 100)
    os.close(w)
    os.close(r)
    return d


probe("fifo-io", fifo_io)
probe("open-chr-dev-null", lambda: os.read(os.open("chr", os.O_RDONLY), 10))
probe("symlink-readlink", lambda: (os.symlink("some/where/../x", "sl"), os.readlink("sl"), os.lstat("sl").st_size)[1:])
probe("symlink-empty-target", lambda: os.symlink("", "sle"))
probe("symlink-existing", lambda: os.symlink("x", "f"))
probe("symlink-loop", lambda: (os.symlink("loop", "loop"), os.stat("loop")))
probe("symlink-mode", lambda: mode("sl"))

# ------------------------------------------------------- chmod, chown --
write("suid", b"#!/bin/sh\n")
probe("chmod-suid-sgid-sticky", lambda: [(os.chmod("suid", m), mode("suid"))[1] for m in (0o4755, 0o2755, 0o1755, 0o7777, 0o0)])


def chown_clears():
    r = []
    for m in (0o6755, 0o2745, 0o4744, 0o6700, 0o2700):
        os.chmod("suid", m)
        os.chown("suid", 1000, 1000)
        r.append(mode("suid"))
        os.chown("suid", 0, 0)
    return r


probe("chown-clears-suid-sgid", chown_clears)


def chown_dir_keeps():
    os.mkdir("sgd", 0o2775)
    os.chmod("sgd", 0o6775)
    os.chown("sgd", 1000, 1000)
    return mode("sgd")


probe("chown-dir-keeps-sgid", chown_dir_keeps)


def sgid_inherit():
    os.mkdir("sgi")
    os.chown("sgi", 0, 1234)
    os.chmod("sgi", 0o2775)
    os.mkdir("sgi/sub")
    os.mkdir("sgi/sub0", 0o755)
    write("sgi/file", b"")
    os.mkfifo("sgi/fifo")
    os.symlink("x", "sgi/sl")
    os.mknod("sgi/chr", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    return [(n, oct(os.lstat("sgi/" + n).st_mode), os.lstat("sgi/" + n).st_gid)
            for n in ("sub", "sub0", "file", "fifo", "sl", "chr")]


probe("sgid-dir-inheritance", sgid_inherit)
probe("chown-symlink-nofollow", lambda: (os.chown("sl", 2000, 2001, follow_symlinks=False),
                                         os.lstat("sl").st_uid, os.lstat("sl").st_gid)[1:])
probe("chown-unchanged-clears-suid", lambda: [(os.chmod("suid", m), os.chown("suid", -1, -1), mode("suid"))[2]
                                              for m in (0o6755, 0o6745, 0o2755)])


def write_by_root_keeps_suid():
    os.chmod("suid", 0o6745)
    with open("suid", "ab") as f:
        f.write(b"x")
    os.truncate("suid", 4)
    return mode("suid")


probe("write-by-root-keeps-suid", write_by_root_keeps_suid)
probe("chown-minus-one", lambda: (os.chown("suid", 3000, -1), os.stat("suid").st_uid, os.stat("suid").st_gid)[1:])
probe("access-x-root-nonexec", lambda: (os.chmod("m", 0o644), os.access("m", os.X_OK))[1])
probe("access-x-root-exec", lambda: (os.chmod("m", 0o744), os.access("m", os.X_OK))[1])
probe("access-w-root-0000", lambda: (os.chmod("m", 0), os.access("m", os.W_OK))[1])

# ---------------------------------------------------------------- xattrs --
write("xf", b"")
probe("xattr-set-get", lambda: (os.setxattr("xf", "user.a", b"va"), os.getxattr("xf", "user.a"))[1])
probe("xattr-empty-value", lambda: (os.setxattr("xf", "user.empty", b""), os.getxattr("xf", "user.empty"))[1])
probe("xattr-binary-value", lambda: (os.setxattr("xf", "user.bin", bytes(range(256))),
                                     os.getxattr("xf", "user.bin") == bytes(range(256)))[1])
probe("xattr-create-existing", lambda: os.setxattr("xf", "user.a", b"x", os.XATTR_CREATE))
probe("xattr-replace-missing", lambda: os.setxattr("xf", "user.zz", b"x", os.XATTR_REPLACE))
probe("xattr-replace-existing", lambda: (os.setxattr("xf", "user.a", b"new", os.XATTR_REPLACE), os.getxattr("xf", "user.a"))[1])
probe("xattr-get-missing", lambda: os.getxattr("xf", "user.zz"))
probe("xattr-remove-missing", lambda: os.removexattr("xf", "user.zz"))
probe("xattr-trusted", lambda: (os.setxattr("xf", "trusted.t", b"tv"), os.getxattr("xf", "trusted.t"))[1])
probe("xattr-security", lambda: (os.setxattr("xf", "security.s", b"sv"), os.getxattr("xf", "security.s"))[1])
probe("xattr-bad-namespace", lambda: os.setxattr("xf", "bogus.x", b"v"))
probe("xattr-list", lambda: sorted(os.listxattr("xf")))
probe("xattr-remove", lambda: (os.removexattr("xf", "user.empty"), sorted(os.listxattr("xf")))[1])
probe("xattr-user-on-symlink", lambda: os.setxattr("sl", "user.a", b"v", follow_symlinks=False))
probe("xattr-trusted-on-symlink", lambda: (os.setxattr("sl", "trusted.a", b"v", follow_symlinks=False),
                                           os.listxattr("sl", follow_symlinks=False))[1])
probe("xattr-user-on-fifo", lambda: os.setxattr("fifo", "user.a", b"v"))
probe("xattr-user-on-dir", lambda: (os.setxattr("dir", "user.d", b"dv"), os.getxattr("dir", "user.d"))[1])
probe("xattr-survives-rename", lambda: (os.rename("xf", "xf2"), os.getxattr("xf2", "user.a"))[1])
probe("xattr-shared-by-hardlink", lambda: (os.link("xf2", "xf3"), os.getxattr("xf3", "user.a"))[1])


def xattr_ctime():
    st0 = os.stat("xf2")
    tick()
    os.setxattr("xf2", "user.c", b"c")
    return os.stat("xf2").st_ctime_ns > st0.st_ctime_ns


probe("xattr-set-updates-ctime", xattr_ctime)


def acl():
    # POSIX ACL user::rw- user:1000:r-- group::r-- mask::r-- other::---
    import struct
    ents = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, 1000), (0x04, 4, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    v = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in ents)
    write("acl", b"")
    os.setxattr("acl", "system.posix_acl_access", v)
    return mode("acl"), os.getxattr("acl", "system.posix_acl_access") == v


probe("posix-acl-access", acl)

# ------------------------------------------------------------ mmap --


def mmap_roundtrip():
    write("mm", bytes(8192))
    fd = os.open("mm", os.O_RDWR)
    m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    m[0:5] = b"HELLO"
    m[4096:4101] = b"WORLD"
    m.flush()
    os.pwrite(fd, b"pw", 100)       # write() visible through the mapping
    seen = m[100:102]
    m.close()
    os.close(fd)
    d = read("mm")
    return d[:5], d[4096:4101], d[100:102], seen, len(d)


probe("mmap-shared-roundtrip", mmap_roundtrip)


def mmap_no_flush():
    write("mm2", bytes(4096))
    fd = os.open("mm2", os.O_RDWR)
    m = mmap.mmap(fd, 4096)
    m[10:13] = b"abc"
    # no msync: another reader through the page cache must see it
    d = read("mm2")[10:13]
    m.close()
    os.close(fd)
    return d


probe("mmap-visible-without-msync", mmap_no_flush)


def mmap_beyond_eof():
    write("mm3", b"x" * 100)
    fd = os.open("mm3", os.O_RDWR)
    m = mmap.mmap(fd, 100)
    tail = m[50:100]
    m.close()
    os.close(fd)
    return tail == b"x" * 50


probe("mmap-partial-page", mmap_beyond_eof)


def mmap_mtime():
    write("mm4", bytes(4096))
    st0 = os.stat("mm4")
    tick()
    fd = os.open("mm4", os.O_RDWR)
    m = mmap.mmap(fd, 4096)
    m[0:1] = b"z"
    m.flush()
    m.close()
    os.close(fd)
    return os.stat("mm4").st_mtime_ns > st0.st_mtime_ns


probe("mmap-write-updates-mtime", mmap_mtime)

# ---------------------------------------------------- copy_file_range --


def cfr():
    data = bytes((i * 7 + i // 251) & 0xFF for i in range(200000))
    write("cs", data)
    write("cd", b"D" * 1000)
    fs = os.open("cs", os.O_RDONLY)
    fdd = os.open("cd", os.O_WRONLY)
    n = os.copy_file_range(fs, fdd, 100000, 1000, 5000)
    n2 = os.copy_file_range(fs, fdd, 100, 300000, 0)  # past EOF of source
    os.close(fs)
    os.close(fdd)
    d = read("cd")
    return n, n2, len(d), d[:1000] == b"D" * 1000, d[1000:5000] == bytes(4000), \
        hashlib.sha256(d).hexdigest()[:16]


probe("copy_file_range", cfr)


def cfr_same_file():
    write("cs2", bytes(range(256)) * 64)
    fd = os.open("cs2", os.O_RDWR)
    n = os.copy_file_range(fd, fd, 1024, 0, 8192)
    os.close(fd)
    d = read("cs2")
    return n, len(d), d[8192:9216] == d[:1024]


probe("copy_file_range-same-file", cfr_same_file)

# -------------------------------------------------- sparse, seek data/hole --


def segments(path):
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    segs, off = [], 0
    try:
        while off < size:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            h = os.lseek(fd, d, os.SEEK_HOLE)
            segs.append((d, h))
            off = h
    finally:
        os.close(fd)
    return segs


def sparse():
    fd = os.open("sp", os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, 10 << 20)
    os.pwrite(fd, b"A", 1 << 20)
    os.pwrite(fd, b"B" * 10000, 5 << 20)
    os.close(fd)
    st = os.stat("sp")
    return st.st_size, st.st_blocks, segments("sp")


probe("sparse-segments", sparse)


def seek_edges():
    fd = os.open("sp", os.O_RDONLY)
    r = []
    for off, wh in ((0, os.SEEK_HOLE), (1 << 20, os.SEEK_HOLE), ((1 << 20) + 10, os.SEEK_DATA),
                    ((10 << 20) - 1, os.SEEK_DATA), (10 << 20, os.SEEK_HOLE), (11 << 20, os.SEEK_DATA)):
        try:
            r.append(os.lseek(fd, off, wh))
        except OSError as e:
            r.append(en(e))
    os.close(fd)
    return r


probe("seek-data-hole-edges", seek_edges)


def hole_reads_zero():
    fd = os.open("sp", os.O_RDONLY)
    d = os.pread(fd, 8192, (3 << 20) - 4096)
    os.close(fd)
    return d == bytes(8192)


probe("hole-reads-zero", hole_reads_zero)


def falloc(name, flags, off, length):
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    fd = os.open(name, os.O_RDWR)
    r = libc.fallocate(fd, flags, off, length)
    e = ctypes.get_errno()
    os.close(fd)
    if r != 0:
        raise OSError(e, os.strerror(e))


def falloc_probe(flags, label):
    write("fa", b"Q" * (64 << 10))
    try:
        falloc("fa", flags, 8192, 16384)
        res = "ok"
    except OSError as e:
        res = en(e)
    st = os.stat("fa")
    d = read("fa")
    return res, st.st_size, st.st_blocks, hashlib.sha256(d).hexdigest()[:16], segments("fa")


FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE = 1, 2, 8
FALLOC_FL_ZERO_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE = 0x10, 0x20, 0x40
probe("fallocate-punch-hole", lambda: falloc_probe(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "p"))
probe("fallocate-punch-without-keep-size", lambda: falloc_probe(FALLOC_FL_PUNCH_HOLE, "p"))
probe("fallocate-zero-range", lambda: falloc_probe(FALLOC_FL_ZERO_RANGE, "z"))
probe("fallocate-collapse", lambda: falloc_probe(FALLOC_FL_COLLAPSE_RANGE, "c"))
probe("fallocate-insert", lambda: falloc_probe(FALLOC_FL_INSERT_RANGE, "i"))


def falloc_extend(flags):
    write("fe", b"E" * 5000)
    falloc("fe", flags, 0, 1 << 20)
    st = os.stat("fe")
    return st.st_size, st.st_blocks, segments("fe")


probe("fallocate-extend", lambda: falloc_extend(0))
probe("fallocate-keep-size", lambda: falloc_extend(FALLOC_FL_KEEP_SIZE))
probe("fallocate-bad-range", lambda: falloc("fe", 0, -1, 10))
probe("fallocate-zero-len", lambda: falloc("fe", 0, 0, 0))
probe("fallocate-on-dir", lambda: falloc(".", 0, 0, 10))

# --------------------------------------------------------- misc I/O --


def big_write_read():
    data = bytes((i * 31) & 0xFF for i in range(3 << 20))
    write("big", data)
    fd = os.open("big", os.O_RDONLY)
    parts = [os.pread(fd, 4096, o) for o in (0, 4095, (1 << 20) - 1, (3 << 20) - 10)]
    os.close(fd)
    return hashlib.sha256(read("big")).hexdigest()[:16], [hashlib.sha256(p).hexdigest()[:8] for p in parts]


probe("big-write-read", big_write_read)


def write_past_eof():
    write("pe", b"abc")
    fd = os.open("pe", os.O_WRONLY)
    os.pwrite(fd, b"Z", 100000)
    os.close(fd)
    d = read("pe")
    st = os.stat("pe")
    return len(d), d[3:100000] == bytes(99997), st.st_blocks


probe("write-past-eof-hole", write_past_eof)
probe("read-dir-fd", lambda: os.read(os.open("dir", os.O_RDONLY), 10))
probe("fsync-fdatasync", lambda: [f(os.open("f", os.O_RDWR)) for f in (os.fsync, os.fdatasync)])


def readdir_dots():
    fd = os.open("dir", os.O_RDONLY)
    names = sorted(os.listdir(fd))
    os.close(fd)
    # os.listdir hides . and ..; use scandir-free raw check via ls -a semantics
    return names


probe("readdir-names", readdir_dots)


def removed_cwd():
    os.mkdir("gone")
    fd = os.open(".", os.O_RDONLY)
    os.chdir("gone")
    os.rmdir(os.path.join(D, "gone"))
    r = [os.listdir(".")]
    try:
        write("x", b"")
        r.append("created")
    except OSError as e:
        r.append(en(e))
    os.fchdir(fd)
    os.close(fd)
    return r


probe("removed-cwd", removed_cwd)


def unlink_during_readdir():
    os.mkdir("ud")
    for i in range(3000):
        os.close(os.open(f"ud/e{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
    seen = 0
    with os.scandir("ud") as it:
        for e in it:
            os.unlink(e.path)
            seen += 1
    left = len(os.listdir("ud"))
    os.rmdir("ud")
    return seen, left


probe("unlink-during-readdir", unlink_during_readdir)


def statfs_counts():
    a = os.statvfs(".")
    for i in range(10):
        write(f"sfc{i}", b"x" * 5000)
    b = os.statvfs(".")
    for i in range(10):
        os.unlink(f"sfc{i}")
    c = os.statvfs(".")
    return a.f_ffree - b.f_ffree, a.f_bfree - b.f_bfree, c.f_ffree - a.f_ffree, c.f_bfree - a.f_bfree


probe("statfs-accounting", statfs_counts)

print("\n".join(OUT))
