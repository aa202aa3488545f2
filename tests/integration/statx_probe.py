#!/usr/bin/env python3
"""statx(2) birth time and attributes probes for statx.sh (tmpfs is the oracle).

Usage: statx_probe.py scenario DIR     a transcript of btime/attribute facts, one per line,
                                       without absolute times (equal on tmpfs and pkramfs);
                                       the lines of stx_attributes start with "attr:"
       statx_probe.py btimes DIR       "path mask sec.nsec" for DIR and everything below it,
                                       symlinks not followed ("path none" without btime)
       statx_probe.py get PATH         "sec.nsec" or "none"
"""
import ctypes
import os
import struct
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
SYS_statx = 332  # x86_64
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_STATX_FORCE_SYNC = 0x2000
AT_STATX_DONT_SYNC = 0x4000
STATX_BASIC_STATS = 0x7FF
STATX_BTIME = 0x800
ATTRS = {0x10: "immutable", 0x20: "append", 0x40: "nodump"}  # STATX_ATTR_* = FS_*_FL here
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
RENAME_WHITEOUT = 4


class Sx:
    def __init__(self, raw):
        (self.mask, self.blksize, self.attributes, self.nlink, self.uid, self.gid, self.mode,
         _, self.ino, self.size, self.blocks, self.attributes_mask) = struct.unpack_from(
            "<IIQIIIHHQQQQ", raw, 0)
        t = [struct.unpack_from("<qI", raw, 64 + 16 * i) for i in range(4)]
        self.atime, self.btime, self.ctime, self.mtime = [s * 10**9 + n for s, n in t]
        self.btime_pair = t[1]

    @property
    def has_btime(self):
        return bool(self.mask & STATX_BTIME)


def statx(path, flags=AT_SYMLINK_NOFOLLOW, mask=STATX_BASIC_STATS | STATX_BTIME, dirfd=AT_FDCWD):
    buf = ctypes.create_string_buffer(256)
    p = path.encode() if isinstance(path, str) else path
    r = libc.syscall(SYS_statx, dirfd, ctypes.c_char_p(p), flags, mask, buf)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return Sx(buf.raw)


def fstatx(fd, flags=0):
    return statx("", AT_EMPTY_PATH | flags, dirfd=fd)


def set_flags(path, flags):
    import fcntl
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("<i", flags))
    finally:
        os.close(fd)


out = []


def say(name, value):
    out.append(f"{name}: {value}")


def born(name, sx, t0, t1):
    """The facts of a new inode: btime reported, within the creating call, equal to its ctime."""
    say(f"{name}:btime", "yes" if sx.has_btime else "no")
    if sx.has_btime:
        # tmpfs stamps with the coarse clock, up to a tick behind t0
        say(f"{name}:in-window", t0 - 20_000_000 <= sx.btime <= t1 + 20_000_000)
        say(f"{name}:equals-ctime", sx.btime == sx.ctime)
        say(f"{name}:equals-mtime", sx.btime == sx.mtime)


def window(fn):
    t0 = time.time_ns()
    r = fn()
    t1 = time.time_ns()
    return r, t0, t1


def scenario(d):
    os.chdir(d)
    # a regular file
    fd, t0, t1 = window(lambda: os.open("f", os.O_CREAT | os.O_WRONLY, 0o644))
    os.close(fd)
    f = statx("f")
    born("file", f, t0, t1)
    say("file:mask-basic", f"{f.mask & STATX_BASIC_STATS:#x}")
    say("attr:file:attributes", f"{f.attributes & 0x70:#x}")
    say("attr:file:attributes_mask", f"{f.attributes_mask & 0x70:#x}")
    b = f.btime
    # changes that move other times, never the birth time
    for what, fn in [
        ("write", lambda: open("f", "ab").write(b"x" * 5000)),
        ("truncate", lambda: os.truncate("f", 100)),
        ("chmod", lambda: os.chmod("f", 0o600)),
        ("chown", lambda: os.chown("f", 1, 1)),
        ("utime-past", lambda: os.utime("f", ns=(10**9, 2 * 10**9))),
        ("utime-now", lambda: os.utime("f")),
        ("xattr", lambda: os.setxattr("f", "user.k", b"v")),
        ("link", lambda: os.link("f", "f.link")),
        ("rename", lambda: os.rename("f", "g")),
        ("rename-back", lambda: os.rename("g", "f")),
    ]:
        time.sleep(0.01)
        fn()
        s = statx("g" if what == "rename" else "f")
        say(f"after-{what}", "same" if s.has_btime and s.btime == b else
            f"changed ({s.has_btime})")
        if what == "utime-past":
            say("after-utime-past:mtime-before-btime", s.mtime < s.btime)
    # through an open descriptor, with each sync flag, and asking for the basic stats only
    with open("f", "rb") as fh:
        say("fstatx", "same" if fstatx(fh.fileno()).btime == b else "changed")
    say("force-sync", "same" if statx("f", AT_STATX_FORCE_SYNC).btime == b else "changed")
    say("dont-sync", "same" if statx("f", AT_STATX_DONT_SYNC).btime == b else "changed")
    s = statx("f", mask=STATX_BASIC_STATS)
    say("basic-only:basic", f"{s.mask & STATX_BASIC_STATS:#x}")
    # later inodes are born later
    time.sleep(0.02)
    fd, t0, t1 = window(lambda: os.open("h", os.O_CREAT | os.O_WRONLY, 0o644))
    os.close(fd)
    h = statx("h")
    born("later-file", h, t0, t1)
    say("later-file:after-first", h.btime > b)
    # every other kind of inode
    _, t0, t1 = window(lambda: os.mkdir("d"))
    dsx = statx("d")
    born("dir", dsx, t0, t1)
    _, t0, t1 = window(lambda: os.symlink("f", "s"))
    born("symlink", statx("s"), t0, t1)
    _, t0, t1 = window(lambda: os.symlink("x" * 300, "long"))
    born("long-symlink", statx("long"), t0, t1)
    _, t0, t1 = window(lambda: os.mkfifo("p"))
    born("fifo", statx("p"), t0, t1)
    _, t0, t1 = window(lambda: os.mknod("c", 0o644 | 0o020000, os.makedev(1, 3)))
    born("chardev", statx("c"), t0, t1)
    fd, t0, t1 = window(lambda: os.open(".", os.O_TMPFILE | os.O_RDWR, 0o600))
    born("tmpfile", fstatx(fd), t0, t1)
    tb = fstatx(fd).btime
    time.sleep(0.01)
    os.write(fd, b"tmp")
    if libc.linkat(fd, b"", AT_FDCWD, b"t", AT_EMPTY_PATH) != 0:
        raise OSError(ctypes.get_errno(), "linkat", "t")
    os.close(fd)
    say("tmpfile:after-link", "same" if statx("t").btime == tb else "changed")
    # the directory's birth time stays as entries come and go
    time.sleep(0.01)
    open("d/x", "w").close()
    os.unlink("d/x")
    say("dir:after-entries", "same" if statx("d").btime == dsx.btime else "changed")
    # a whiteout left by renameat2(RENAME_WHITEOUT) is a new inode
    open("d/w", "w").close()
    wb = statx("d/w").btime
    time.sleep(0.02)
    rename2 = libc.renameat2
    r, t0, t1 = window(lambda: rename2(AT_FDCWD, b"d/w", AT_FDCWD, b"w2", RENAME_WHITEOUT))
    if r != 0:
        say("whiteout", os.strerror(ctypes.get_errno()))
    else:
        born("whiteout", statx("d/w"), t0, t1)
        say("whiteout:moved-keeps", "same" if statx("w2").btime == wb else "changed")
    # chattr flags as STATX_ATTR_* (shmem_getattr), and the mask of the ones tmpfs knows
    for flags in (0x10, 0x20, 0x40, 0x70, 0):
        try:
            set_flags("f", flags)
        except OSError as e:
            say(f"flags-{flags:#x}", os.strerror(e.errno))
            continue
        s = statx("f")
        names = ",".join(n for bit, n in ATTRS.items() if s.attributes & bit) or "-"
        say(f"attr:flags-{flags:#x}:attributes", names)
        say(f"attr:flags-{flags:#x}:attributes_mask", f"{s.attributes_mask & 0x70:#x}")
        say(f"flags-{flags:#x}:btime", "same" if s.btime == b else "changed")
    try:
        set_flags("d", 0x40)
        s = statx("d")
        say("attr:dir-nodump:attributes", f"{s.attributes & 0x70:#x}")
        set_flags("d", 0)
    except OSError as e:
        say("dir-nodump", os.strerror(e.errno))
    print("\n".join(out))


def btimes(d):
    rows = []
    for root, dirs, files in os.walk(d):
        for name in [""] + sorted(dirs) + sorted(files):
            if name == "" and root != d:
                continue
            p = os.path.join(root, name) if name else root
            s = statx(p)
            rel = os.path.relpath(p, d)
            rows.append(f"{rel} " + (f"{s.btime_pair[0]}.{s.btime_pair[1]:09d}" if s.has_btime
                                     else "none"))
    print("\n".join(rows))


def main():
    cmd = sys.argv[1]
    if cmd == "scenario":
        scenario(sys.argv[2])
    elif cmd == "btimes":
        btimes(sys.argv[2])
    elif cmd == "get":
        s = statx(sys.argv[2])
        print(f"{s.btime_pair[0]}.{s.btime_pair[1]:09d}" if s.has_btime else "none")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
