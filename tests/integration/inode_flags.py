#!/usr/bin/python3
"""Inode flags (chattr) and RENAME_WHITEOUT probe, run once on a tmpfs and once on a pkramfs.

usage: inode_flags.py DIR root          every flag x operation as root (CAP_LINUX_IMMUTABLE)
       inode_flags.py DIR setup-nobody  (as root) files for the nobody run, flags set
       inode_flags.py DIR nobody        (as user nobody) the same operations without the caps
       inode_flags.py DIR clear         (as root) every flag under DIR cleared
       inode_flags.py DIR keep          (as root) a tree with flags and whiteouts to persist
       inode_flags.py DIR more          (as root) change the kept tree's flags again
       inode_flags.py DIR state         the kept tree: names, types, owners, devices, flags

Prints one line per probe, `name: result`, where result is `ok [value]` or the errno name;
nothing depends on inode numbers or absolute times, so inode_flags.sh compares two runs line
by line.
"""
import ctypes
import fcntl
import os
import stat
import struct
import sys
import time

from probe_lib import RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, check, libc, prober, renameat2

D, MODE = sys.argv[1], sys.argv[2]
os.chdir(D)
os.umask(0o022)

FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR = 0x801C581F, 0x401C5820
IMM, APP, NODUMP, NOATIME, SYNC = 0x10, 0x20, 0x40, 0x80, 0x08
XF_IMM, XF_APP, XF_SYNC, XF_NODUMP, XF_NOATIME, XF_REALTIME = 0x8, 0x10, 0x20, 0x80, 0x40, 0x1
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
FALLOC_KEEP, FALLOC_PUNCH, FALLOC_ZERO = 1, 2, 0x10


probe = prober(print)


def with_fd(path, flags, fn):
    fd = os.open(path, flags | os.O_NONBLOCK)
    try:
        return fn(fd)
    finally:
        os.close(fd)


def getflags(path):
    return with_fd(path, os.O_RDONLY,
                   lambda fd: struct.unpack("I", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 4))[0])


def setflags(path, flags):
    with_fd(path, os.O_RDONLY, lambda fd: fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("I", flags)))


def getxflags(path):
    raw = with_fd(path, os.O_RDONLY, lambda fd: fcntl.ioctl(fd, FS_IOC_FSGETXATTR, b"\0" * 28))
    return struct.unpack("IIIII8s", raw)[:4]


def setxflags(path, xflags, projid=0):
    with_fd(path, os.O_RDONLY, lambda fd: fcntl.ioctl(
        fd, FS_IOC_FSSETXATTR, struct.pack("IIIII8s", xflags, 0, 0, projid, 0, b"")))


def renameat2(a, b, flags):
    check(libc.renameat2(-100, a.encode(), -100, b.encode(), ctypes.c_uint(flags)))


class Ts(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


def utimens(path, a, m):
    check(libc.utimensat(-100, path.encode(), (Ts * 2)(Ts(1000, a), Ts(2000, m)), 0))


def fallocate(fd, mode, off, n):
    check(libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(n)))


def copy_range(src, dst_fd):
    fd = os.open(src, os.O_RDONLY)
    try:
        return os.copy_file_range(fd, dst_fd, 1, 0, 0)
    finally:
        os.close(fd)


def touch(path, data=b"data", mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, data)
    os.close(fd)
    os.chmod(path, mode)


def openclose(path, flags):
    os.close(os.open(path, flags, 0o644))


def ctime_moves(path, fn):
    before = os.lstat(path).st_ctime_ns
    time.sleep(0.02)
    fn()
    return os.lstat(path).st_ctime_ns > before


def describe(path):
    st = os.lstat(path)
    extra = ""
    if stat.S_ISCHR(st.st_mode):
        extra = f" dev {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return f"{oct(st.st_mode)} {st.st_uid}:{st.st_gid} nlink {st.st_nlink}{extra}"


# ---------------------------------------------------------------- one flag on a file --
def file_ops(tag, flag):
    f, other = f"{tag}-f", f"{tag}-other"
    touch(f)
    touch(other)
    os.setxattr(f, "user.old", b"1")
    keep_w = os.open(f, os.O_RDWR)  # opened before the flag: tmpfs still lets it write
    probe(f"{tag}:set", lambda: setflags(f, flag))
    probe(f"{tag}:get", lambda: getflags(f))
    probe(f"{tag}:open-w", lambda: openclose(f, os.O_WRONLY))
    probe(f"{tag}:open-rw", lambda: openclose(f, os.O_RDWR))
    probe(f"{tag}:open-wa", lambda: openclose(f, os.O_WRONLY | os.O_APPEND))
    probe(f"{tag}:open-r", lambda: openclose(f, os.O_RDONLY))
    probe(f"{tag}:open-r-trunc", lambda: openclose(f, os.O_RDONLY | os.O_TRUNC))
    probe(f"{tag}:open-wa-trunc", lambda: openclose(f, os.O_WRONLY | os.O_APPEND | os.O_TRUNC))
    probe(f"{tag}:open-creat-w", lambda: openclose(f, os.O_WRONLY | os.O_CREAT))
    probe(f"{tag}:write-old-fd", lambda: os.pwrite(keep_w, b"x", 0))
    probe(f"{tag}:append-write", lambda: with_fd(f, os.O_WRONLY | os.O_APPEND, lambda fd: os.write(fd, b"more")))
    probe(f"{tag}:truncate", lambda: os.truncate(f, 1))
    probe(f"{tag}:ftruncate-old-fd", lambda: os.ftruncate(keep_w, 2))
    probe(f"{tag}:chmod", lambda: os.chmod(f, 0o600))
    probe(f"{tag}:chown", lambda: os.chown(f, 1, 1))
    probe(f"{tag}:chown-none", lambda: os.chown(f, -1, -1))
    probe(f"{tag}:utime-now", lambda: os.utime(f))
    probe(f"{tag}:utime-set", lambda: os.utime(f, (1, 2)))
    probe(f"{tag}:utime-omit-now", lambda: utimens(f, UTIME_OMIT, UTIME_NOW))
    probe(f"{tag}:utime-now-omit", lambda: utimens(f, UTIME_NOW, UTIME_OMIT))
    probe(f"{tag}:utime-omit-omit", lambda: utimens(f, UTIME_OMIT, UTIME_OMIT))
    probe(f"{tag}:setxattr", lambda: os.setxattr(f, "user.new", b"1"))
    probe(f"{tag}:replacexattr", lambda: os.setxattr(f, "user.old", b"2"))
    probe(f"{tag}:removexattr", lambda: os.removexattr(f, "user.old"))
    probe(f"{tag}:removexattr-missing", lambda: os.removexattr(f, "user.none"))
    probe(f"{tag}:getxattr", lambda: os.getxattr(f, "user.old"))
    probe(f"{tag}:fallocate", lambda: fallocate(keep_w, 0, 0, 8192))
    probe(f"{tag}:fallocate-keep", lambda: fallocate(keep_w, FALLOC_KEEP, 0, 16384))
    probe(f"{tag}:fallocate-punch", lambda: fallocate(keep_w, FALLOC_KEEP | FALLOC_PUNCH, 0, 4096))
    probe(f"{tag}:fallocate-zero", lambda: fallocate(keep_w, FALLOC_ZERO, 0, 4096))
    probe(f"{tag}:copy-into-old-fd", lambda: copy_range(other, keep_w))
    probe(f"{tag}:link", lambda: os.link(f, f"{tag}-hard"))
    probe(f"{tag}:unlink", lambda: os.unlink(f))
    probe(f"{tag}:rename", lambda: os.rename(f, f"{tag}-moved"))
    probe(f"{tag}:rename-over", lambda: os.rename(other, f))
    probe(f"{tag}:rename-exchange", lambda: renameat2(other, f, RENAME_EXCHANGE))
    probe(f"{tag}:rename-whiteout", lambda: renameat2(f, f"{tag}-wo", RENAME_WHITEOUT))
    probe(f"{tag}:read", lambda: with_fd(f, os.O_RDONLY, lambda fd: os.read(fd, 100)))
    probe(f"{tag}:describe", lambda: describe(f))
    probe(f"{tag}:clear", lambda: setflags(f, 0))
    probe(f"{tag}:unlink-after", lambda: os.unlink(f))
    os.close(keep_w)


# ----------------------------------------------------------- one flag on a directory --
def dir_ops(tag, flag):
    d, out = f"{tag}-d", f"{tag}-out"
    os.mkdir(d)
    os.mkdir(out)
    for n in ("in", "in2", "in3"):
        touch(f"{d}/{n}")
    os.mkdir(f"{d}/sub")
    touch(f"{out}/x")
    touch(f"{out}/y")
    touch(f"{out}/z")
    probe(f"{tag}:set", lambda: setflags(d, flag))
    probe(f"{tag}:get", lambda: getflags(d))
    probe(f"{tag}:create", lambda: openclose(f"{d}/new", os.O_WRONLY | os.O_CREAT))
    probe(f"{tag}:create-existing", lambda: openclose(f"{d}/in", os.O_WRONLY | os.O_CREAT))
    probe(f"{tag}:create-excl-existing", lambda: openclose(f"{d}/in", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    probe(f"{tag}:mkdir", lambda: os.mkdir(f"{d}/newd"))
    probe(f"{tag}:mkfifo", lambda: os.mkfifo(f"{d}/fifo"))
    probe(f"{tag}:symlink", lambda: os.symlink("in", f"{d}/sl"))
    probe(f"{tag}:link-into", lambda: os.link(f"{out}/x", f"{d}/hard"))
    probe(f"{tag}:unlink", lambda: os.unlink(f"{d}/in"))
    probe(f"{tag}:rmdir", lambda: os.rmdir(f"{d}/sub"))
    probe(f"{tag}:rename-within", lambda: os.rename(f"{d}/in", f"{d}/renamed"))
    probe(f"{tag}:rename-out", lambda: os.rename(f"{d}/in", f"{out}/from-d"))
    probe(f"{tag}:rename-into", lambda: os.rename(f"{out}/y", f"{d}/from-out"))
    probe(f"{tag}:rename-over", lambda: os.rename(f"{out}/z", f"{d}/in2"))
    probe(f"{tag}:rename-exchange", lambda: renameat2(f"{out}/x", f"{d}/in3", RENAME_EXCHANGE))
    probe(f"{tag}:rename-whiteout-out", lambda: renameat2(f"{d}/in3", f"{out}/wo", RENAME_WHITEOUT))
    probe(f"{tag}:rename-itself", lambda: os.rename(d, f"{tag}-d2"))
    probe(f"{tag}:rmdir-itself", lambda: os.rmdir(d))
    probe(f"{tag}:chmod", lambda: os.chmod(d, 0o700))
    probe(f"{tag}:utime-now", lambda: os.utime(d))
    probe(f"{tag}:setxattr", lambda: os.setxattr(d, "user.a", b"1"))
    probe(f"{tag}:write-entry", lambda: with_fd(f"{d}/in", os.O_WRONLY, lambda fd: os.write(fd, b"x")))
    probe(f"{tag}:child-flags", lambda: getflags(f"{d}/in"))
    probe(f"{tag}:listing", lambda: sorted(os.listdir(d)))
    probe(f"{tag}:out-listing", lambda: sorted(os.listdir(out)))
    probe(f"{tag}:clear", lambda: setflags(d, 0))


def as_root():
    probe("get-new-file", lambda: (touch("plain"), getflags("plain"))[1])
    probe("get-root", lambda: getflags("."))
    os.mkfifo("fifo")
    os.symlink("plain", "symlink")
    probe("get-fifo", lambda: getflags("fifo"))
    probe("set-fifo", lambda: setflags("fifo", NODUMP))
    for bit, name in ((SYNC, "sync"), (0x4, "compr"), (0x10000, "dirsync"), (0x1000, "index"),
                      (0x4000, "journal-data"), (0x800000, "extent"), (0x40000000, "casefold")):
        probe(f"set-{name}", lambda: setflags("plain", bit))
        probe(f"set-{name}-with-nodump", lambda: setflags("plain", bit | NODUMP))
    probe("get-after-refused", lambda: getflags("plain"))
    probe("set-nodump-ctime", lambda: ctime_moves("plain", lambda: setflags("plain", NODUMP)))
    probe("set-same-ctime", lambda: ctime_moves("plain", lambda: setflags("plain", NODUMP)))
    probe("get-nodump", lambda: getflags("plain"))
    probe("set-all", lambda: setflags("plain", IMM | APP | NODUMP | NOATIME))
    probe("get-all", lambda: getflags("plain"))
    probe("fsgetxattr-all", lambda: getxflags("plain"))
    probe("set-none", lambda: setflags("plain", 0))
    probe("fssetxattr-nodump-noatime", lambda: setxflags("plain", XF_NODUMP | XF_NOATIME))
    probe("fsget-after-fsset", lambda: getxflags("plain"))
    probe("get-after-fsset", lambda: getflags("plain"))
    probe("fssetxattr-sync", lambda: setxflags("plain", XF_SYNC))
    probe("fssetxattr-realtime", lambda: setxflags("plain", XF_REALTIME))
    probe("fssetxattr-projid", lambda: setxflags("plain", 0, projid=5))
    probe("fssetxattr-immutable", lambda: setxflags("plain", XF_IMM))
    probe("get-after-fsset-imm", lambda: getflags("plain"))
    probe("fssetxattr-none", lambda: setxflags("plain", 0))
    for flag, tag in ((IMM, "imm"), (APP, "app"), (IMM | APP, "both"), (NODUMP, "nodump"),
                      (NOATIME, "noatime")):
        file_ops(f"file-{tag}", flag)
        dir_ops(f"dir-{tag}", flag)
    # Inheritance (SHMEM_FL_INHERITED): nodump and noatime, nothing else.
    os.mkdir("inherit")
    setflags("inherit", NODUMP | NOATIME | APP)
    touch("inherit/f")
    os.mkdir("inherit/sub")
    os.mkfifo("inherit/fifo")
    probe("inherit-file", lambda: getflags("inherit/f"))
    probe("inherit-dir", lambda: getflags("inherit/sub"))
    probe("inherit-grandchild", lambda: (touch("inherit/sub/g"), getflags("inherit/sub/g"))[1])
    setflags("inherit", 0)
    # noatime: a read leaves atime alone (strictatime mount).
    touch("at")
    os.utime("at", (1000, 2000))
    setflags("at", NOATIME)
    probe("noatime-read", lambda: (with_fd("at", os.O_RDONLY, lambda fd: os.read(fd, 10)),
                                   os.stat("at").st_atime)[1])
    os.mkdir("atd")
    os.utime("atd", (1000, 2000))
    setflags("atd", NOATIME)
    probe("noatime-readdir", lambda: (os.listdir("atd"), os.stat("atd").st_atime)[1])
    # RENAME_WHITEOUT
    touch("w1")
    touch("w2")
    touch("w3")
    os.mkdir("wd")
    os.chown("wd", 0, 777)
    os.chmod("wd", 0o2777)
    touch("wd/in")
    probe("whiteout", lambda: (renameat2("w1", "w1-moved", RENAME_WHITEOUT), describe("w1"))[1])
    probe("whiteout-moved", lambda: describe("w1-moved"))
    probe("whiteout-open", lambda: openclose("w1", os.O_RDONLY))
    probe("whiteout-noreplace", lambda: (renameat2("w2", "w2-moved", RENAME_WHITEOUT | RENAME_NOREPLACE),
                                         describe("w2"))[1])
    probe("whiteout-noreplace-exists", lambda: renameat2("w3", "w2-moved", RENAME_WHITEOUT | RENAME_NOREPLACE))
    probe("whiteout-over", lambda: (renameat2("w3", "w2-moved", RENAME_WHITEOUT), describe("w3"))[1])
    probe("whiteout-exchange", lambda: renameat2("w2-moved", "w1-moved", RENAME_WHITEOUT | RENAME_EXCHANGE))
    probe("whiteout-missing", lambda: renameat2("nosuch", "x", RENAME_WHITEOUT))
    probe("whiteout-setgid-dir", lambda: (renameat2("wd/in", "wd-in", RENAME_WHITEOUT), describe("wd/in"))[1])
    probe("whiteout-dir", lambda: (os.mkdir("wdir"), renameat2("wdir", "wd/wdir", RENAME_WHITEOUT),
                                   describe("wdir"))[2])
    probe("whiteout-parent", lambda: describe("wd"))
    probe("whiteout-over-whiteout", lambda: (renameat2("w1-moved", "w1", RENAME_WHITEOUT), describe("w1"),
                                             describe("w1-moved"))[1:])
    touch("s1")
    os.link("s1", "s2")
    probe("whiteout-same-inode", lambda: (renameat2("s1", "s2", RENAME_WHITEOUT), describe("s1"))[1])
    probe("whiteout-listing", lambda: sorted(os.listdir(".")))
    probe("whiteout-unlink", lambda: os.unlink("w1-moved"))


def setup_nobody():
    os.chmod(".", 0o777)
    for name, flag in (("imm", IMM), ("app", APP), ("nod", NODUMP)):
        touch(f"nb-{name}", mode=0o666)
        setflags(f"nb-{name}", flag)
    os.mkdir("nb-immd", 0o777)
    os.chmod("nb-immd", 0o777)
    touch("nb-immd/in", mode=0o666)
    setflags("nb-immd", IMM)
    touch("nb-root", mode=0o666)


def as_nobody():
    probe("nobody:get-root-file", lambda: getflags("nb-root"))
    probe("nobody:set-root-file", lambda: setflags("nb-root", NODUMP))
    touch("nb-own")
    probe("nobody:set-own-nodump", lambda: setflags("nb-own", NODUMP))
    probe("nobody:set-own-noatime", lambda: setflags("nb-own", NOATIME | NODUMP))
    probe("nobody:set-own-immutable", lambda: setflags("nb-own", IMM))
    probe("nobody:set-own-append", lambda: setflags("nb-own", APP))
    probe("nobody:fsset-own-immutable", lambda: setxflags("nb-own", XF_IMM))
    probe("nobody:get-own", lambda: getflags("nb-own"))
    probe("nobody:clear-root-immutable", lambda: setflags("nb-imm", 0))
    for name in ("imm", "app", "nod"):
        f = f"nb-{name}"
        probe(f"nobody:{name}:open-w", lambda: openclose(f, os.O_WRONLY))
        probe(f"nobody:{name}:open-wa", lambda: openclose(f, os.O_WRONLY | os.O_APPEND))
        probe(f"nobody:{name}:append", lambda: with_fd(f, os.O_WRONLY | os.O_APPEND, lambda fd: os.write(fd, b"n")))
        probe(f"nobody:{name}:utime-now", lambda: os.utime(f))
        probe(f"nobody:{name}:setxattr", lambda: os.setxattr(f, "user.n", b"1"))
        probe(f"nobody:{name}:rename", lambda: os.rename(f, f + "-moved"))
        probe(f"nobody:{name}:rename-whiteout", lambda: renameat2(f, f + "-wo", RENAME_WHITEOUT))
    probe("nobody:immd:create", lambda: openclose("nb-immd/new", os.O_WRONLY | os.O_CREAT))
    probe("nobody:immd:unlink", lambda: os.unlink("nb-immd/in"))
    probe("nobody:immd:write-entry", lambda: with_fd("nb-immd/in", os.O_WRONLY, lambda fd: os.write(fd, b"n")))
    touch("nb-w")
    probe("nobody:whiteout", lambda: (renameat2("nb-w", "nb-w-moved", RENAME_WHITEOUT), describe("nb-w"))[1])
    probe("nobody:listing", lambda: sorted(os.listdir(".")))


def clear():
    for root, dirs, files in os.walk("."):
        for n in dirs + files:
            p = os.path.join(root, n)
            if stat.S_ISREG(os.lstat(p).st_mode) or stat.S_ISDIR(os.lstat(p).st_mode):
                setflags(p, 0)


# ----------------------------------------------------------------- persistence --
def keep():
    os.mkdir("keep")
    os.mkdir("keep/d")
    touch("keep/d/f")
    touch("keep/imm")
    touch("keep/app")
    touch("keep/both")
    os.mkdir("keep/nodump-dir")
    setflags("keep/nodump-dir", NODUMP | NOATIME)
    touch("keep/nodump-dir/inherited")
    setflags("keep/imm", IMM)
    setflags("keep/app", APP | NODUMP)
    setflags("keep/both", IMM | APP | NODUMP | NOATIME)
    setflags("keep/d", IMM)
    touch("keep/wo-src")
    renameat2("keep/wo-src", "keep/wo-dst", RENAME_WHITEOUT)


def more():
    setflags("keep/imm", 0)
    setflags("keep/d", APP)
    setflags("keep/app", NOATIME)
    touch("keep/later")
    setflags("keep/later", IMM | NODUMP)
    touch("keep/wo2-src")
    renameat2("keep/wo2-src", "keep/wo-dst", RENAME_WHITEOUT)


def state():
    paths = ["keep"]
    for root, dirs, files in os.walk("keep"):
        paths += [os.path.join(root, n) for n in dirs + files]
    for n in sorted(paths):
        st = os.lstat(n)
        fl = getflags(n) if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) else "-"
        print(f"{n}: {describe(n)} size {st.st_size if not stat.S_ISDIR(st.st_mode) else '-'} flags {fl}")


{"root": as_root, "setup-nobody": setup_nobody, "nobody": as_nobody, "clear": clear,
 "keep": keep, "more": more, "state": state}[MODE]()
