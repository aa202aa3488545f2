#!/usr/bin/env python3
"""stress.py -- concurrent mixed-operation stress for a mounted filesystem, with a watchdog.

    stress.py run ROOT STATE [--seconds S] [--procs P] [--threads T] [--stall N]
                             [--daemon-pid PID] [--seed X] [--no-mmap]
    stress.py verify ROOT STATE

run: P processes with T threads each (every thread is one "slot") churn ROOT for S seconds:
creates, writes, appends, truncates, renames across directories, hard links, unlinks, rename
over an existing name, unlink of open files (the fd keeps being written and read afterwards),
mmap writes (MAP_SHARED + msync) and reads, xattr set/get/list/remove, mkdir/rmdir, fsync,
readdir during the churn (small getdents64 buffers, so one listing takes many requests) and
concurrent writers and readers of one shared file (ROOT/big.dat, one page-aligned region per slot).

Every name is created exactly once (SSS-K, K from a per-slot counter in shared memory), so a
listing of a shared directory must hold no name twice and no name that was never created; the
slot's own entries (which nobody else touches, and which do not change while the slot lists)
must all be there exactly once. A private directory (ROOT/pSSS) must list exactly the slot's
model. Every read of an own file is compared with the slot's in-memory model of it.

Each slot writes STATE/slot-SSS.json: every file it owns (names, size, sha256, xattrs), its
empty directories and its region of big.dat. `verify` compares ROOT with those manifests:
no missing or unexpected entries, hard links share an inode, st_nlink and contents right.

Link counts are compared with the kernel's view (stat); when that is wrong but the daemon's
(statx AT_STATX_FORCE_SYNC, a GETATTR) is right, it is the kernel FUSE race of docs/semantics.md:
counted and printed ("kernel cached st_nlink wrong"), not failed. link() failing with ENOENT on
an existing file is the same race (the VFS sees i_nlink 0): counted, then retried.

Watchdog: every slot publishes its current operation and its start time in shared memory. If one
op takes longer than --stall seconds (or a slot is still running --stall seconds after the end),
the main process prints the table of every slot's current op, the daemon's threads (state, wchan,
/proc/PID/task/TID/stack when readable) and the stuck workers' threads, kills the workers and
exits 3. Exit status: 0 clean, 1 a check failed, 3 stuck, 2 usage.
"""
import argparse
import collections
import ctypes
import hashlib
import json
import mmap
import multiprocessing as mp
import os
import platform
import random
import re
import signal
import stat
import struct
import sys
import threading
import time
import traceback

REGION = 64 * 1024          # big.dat bytes per slot (page aligned)
MAX_FILES = 24              # live inodes per slot
MAX_SIZE = 128 * 1024       # file size cap
MAX_IO = 32 * 1024          # largest write
DESC = 120                  # bytes of op description per slot in shared memory
NAME_RE = re.compile(rb"^(\d{3})-(\d+)(\.d)?$")

SYS_GETDENTS64 = {"x86_64": 217, "aarch64": 61}.get(platform.machine(), 217)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def getdents_names(path, bufsize):
    """The names of a directory read with getdents64 into a bufsize buffer (many calls)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    buf = ctypes.create_string_buffer(bufsize)
    out = []
    try:
        while True:
            n = _libc.syscall(SYS_GETDENTS64, fd, buf, bufsize)
            if n < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e), path)
            if n == 0:
                return out
            raw = buf.raw[:n]
            pos = 0
            while pos < n:
                reclen = struct.unpack_from("<H", raw, pos + 16)[0]
                name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0]
                if name not in (b".", b".."):
                    out.append(name)
                pos += reclen
    finally:
        os.close(fd)


SYS_STATX = {"x86_64": 332, "aarch64": 291}.get(platform.machine(), 332)
AT_SYMLINK_NOFOLLOW, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS = 0x100, 0x2000, 0x7ff


AT_EMPTY_PATH = 0x1000


def statx_sync(path, fd=None):
    """(st_ino, st_nlink, st_size) asked from the filesystem itself: statx(AT_STATX_FORCE_SYNC)
    makes FUSE send GETATTR instead of answering from the attributes it caches. With fd: of
    that open file (path is then only for messages)."""
    buf = ctypes.create_string_buffer(256)
    if fd is None:
        r = _libc.syscall(SYS_STATX, -100, os.fsencode(path),
                          AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, buf)
    else:
        r = _libc.syscall(SYS_STATX, fd, b"", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC,
                          STATX_BASIC_STATS, buf)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    nlink, = struct.unpack_from("<I", buf.raw, 16)
    ino, size = struct.unpack_from("<QQ", buf.raw, 32)
    return ino, nlink, size


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


class Failure(Exception):
    pass


class Inode:
    __slots__ = ("names", "data", "xattrs", "serial", "ino", "hist")

    def __init__(self, serial):
        self.names = set()      # paths relative to ROOT
        self.data = bytearray()
        self.xattrs = {}
        self.serial = serial
        self.ino = 0            # st_ino, for the failure reports
        self.hist = collections.deque(maxlen=40)  # the last ops on it, for the failure reports


class Slot:
    """One thread's world: the inodes it owns and the operations it runs on them."""

    def __init__(self, ctx, slot, rng):
        self.ctx = ctx
        self.slot = slot
        self.rng = rng
        self.root = ctx.root
        self.priv = "p%03d" % slot
        self.inodes = {}        # serial -> Inode
        self.by_name = {}       # relative path -> serial
        self.dirs = set()       # own empty directories (relative paths)
        self.orphans = []       # [fd, Inode] unlinked while open
        self.serial = 0
        self.counts = {}
        self.big_fd = os.open(os.path.join(self.root, "big.dat"), os.O_RDWR)
        self.region = bytearray(REGION)
        self.region_off = slot * REGION

    # ------------------------------------------------------------------ helpers
    def p(self, rel):
        return os.path.join(self.root, rel)

    def new_name(self, suffix=""):
        c = self.ctx.counters
        c[self.slot] += 1
        return "%03d-%d%s" % (self.slot, c[self.slot], suffix)

    def pick_dir(self):
        return self.rng.choice((self.priv, "shared", "shared2", self.priv))

    def publish(self, desc, ino=None):
        if ino is not None:
            ino.hist.append("%.3f %s" % (time.time() - self.ctx.t0, desc))
        b = desc.encode()[:DESC - 1].ljust(DESC, b"\0")
        i = self.slot * DESC
        self.ctx.desc[i:i + DESC] = b
        self.ctx.started[self.slot] = time.time()

    def fail(self, msg):
        raise Failure(msg)

    def pick_inode(self):
        if not self.inodes:
            return None
        return self.inodes[self.rng.choice(list(self.inodes))]

    def any_name(self, ino):
        return self.rng.choice(sorted(ino.names))

    def nlink_ok(self, what, cached, ino, want, path=None, fd=None):
        """Whether the kernel's cached st_nlink `cached` is right. When it is not but the
        daemon's (GETATTR) is, that is the kernel FUSE race described in docs/semantics.md
        (a GETATTR/LOOKUP/READDIRPLUS answered after an unlink or rename over a hard link was
        processed, applied before the kernel's own drop_nlink for it): counted, not failed;
        the GETATTR has just repaired the cache. Anything else fails."""
        if cached == want:
            return True
        daemon = statx_sync(path, fd)[1]
        if daemon != want:
            self.fail("%s: st_nlink %d, the daemon says %d, the model %d (names %s; %s)"
                      % (what, cached, daemon, want, sorted(ino.names), self.stat_names(ino))
                      + self.history(ino))
        self.ctx.kernel_nlink[self.slot] += 1
        if self.ctx.kernel_nlink[self.slot] <= 3:
            with open(os.path.join(self.ctx.state, "nlink-%03d.txt" % self.slot), "a") as f:
                f.write("%s: the kernel's cached st_nlink is %d, the daemon's %d%s\n"
                        % (what, cached, daemon, self.history(ino)))
        return False

    def stat_names(self, ino):
        """lstat of every name of ino, again, for a failure report."""
        out = []
        for n in sorted(ino.names):
            try:
                st = os.lstat(self.p(n))
                out.append("%s: ino %d nlink %d size %d (the daemon says ino %d nlink %d size %d)"
                           % ((n, st.st_ino, st.st_nlink, st.st_size) + statx_sync(self.p(n))))
            except OSError as e:
                out.append("%s: %s" % (n, e.strerror))
        return "; ".join(out)

    def history(self, ino):
        return "\n  its last operations (seconds since the start):\n    " + "\n    ".join(ino.hist)

    def check_data(self, got, ino, what, off=0):
        want = bytes(ino.data[off:off + len(got)])
        if len(got) != len(want) or got != want:
            first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                         min(len(got), len(want)))
            self.fail("%s: content differs from the model at offset %d (got %d bytes, want %d; "
                      "names %s)" % (what, off + first, len(got), len(want), sorted(ino.names))
                      + self.history(ino))

    def write_at(self, fd, off, data):
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], off + done)

    def read_all(self, fd, size):
        out = bytearray()
        while True:
            b = os.pread(fd, max(size - len(out), 4096) + 1, len(out))
            if not b:
                return bytes(out)
            out += b

    # --------------------------------------------------------------- operations
    def op_create(self):
        if len(self.inodes) >= MAX_FILES:
            return self.op_unlink()
        rel = os.path.join(self.pick_dir(), self.new_name())
        self.publish("create " + rel)
        t = time.time() - self.ctx.t0
        data = os.urandom(self.rng.randrange(0, MAX_IO))
        fd = os.open(self.p(rel), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        try:
            self.write_at(fd, 0, data)
            st_ino = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        self.serial += 1
        ino = Inode(self.serial)
        ino.ino = st_ino
        ino.hist.append("%.3f create %s" % (t, rel))
        ino.names.add(rel)
        ino.data[:] = data
        self.inodes[ino.serial] = ino
        self.by_name[rel] = ino.serial

    def op_write(self, append=False):
        ino = self.pick_inode()
        if not ino:
            return self.op_create()
        rel = self.any_name(ino)
        n = self.rng.randrange(1, MAX_IO)
        off = len(ino.data) if append else self.rng.randrange(0, max(1, MAX_SIZE - n))
        if off + n > MAX_SIZE:
            return self.op_truncate(ino)
        self.publish("%s %s off %d len %d" % ("append" if append else "write", rel, off, n), ino)
        data = os.urandom(n)
        flags = os.O_WRONLY | (os.O_APPEND if append else 0)
        fd = os.open(self.p(rel), flags)
        try:
            if append:
                w = 0
                while w < n:
                    w += os.write(fd, data[w:])
            else:
                self.write_at(fd, off, data)
            if self.rng.random() < 0.1:
                self.publish("fsync " + rel, ino)
                os.fsync(fd)
        finally:
            os.close(fd)
        if off > len(ino.data):
            ino.data.extend(bytes(off - len(ino.data)))
        ino.data[off:off + n] = data

    def op_read(self):
        ino = self.pick_inode()
        if not ino:
            return self.op_create()
        rel = self.any_name(ino)
        self.publish("read " + rel, ino)
        fd = os.open(self.p(rel), os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if st.st_size != len(ino.data):
                self.fail("read %s: st_size %d, model %d" % (rel, st.st_size, len(ino.data)))
            self.nlink_ok("read " + rel, st.st_nlink, ino, len(ino.names), fd=fd)
            got = self.read_all(fd, len(ino.data))
        finally:
            os.close(fd)
        self.check_data(got, ino, "read " + rel)

    def op_truncate(self, ino=None):
        ino = ino or self.pick_inode()
        if not ino:
            return self.op_create()
        rel = self.any_name(ino)
        n = self.rng.randrange(0, MAX_SIZE)
        self.publish("truncate %s to %d" % (rel, n), ino)
        if self.rng.random() < 0.5:
            os.truncate(self.p(rel), n)
        else:
            fd = os.open(self.p(rel), os.O_RDWR)
            try:
                os.ftruncate(fd, n)
            finally:
                os.close(fd)
        if n < len(ino.data):
            del ino.data[n:]
        else:
            ino.data.extend(bytes(n - len(ino.data)))

    def op_rename(self):
        ino = self.pick_inode()
        if not ino:
            return self.op_create()
        src = self.any_name(ino)
        dst = os.path.join(self.pick_dir(), self.new_name())
        self.publish("rename %s -> %s" % (src, dst), ino)
        os.rename(self.p(src), self.p(dst))
        ino.names.discard(src)
        ino.names.add(dst)
        del self.by_name[src]
        self.by_name[dst] = ino.serial

    def op_rename_replace(self):
        # Only inside the private directory: in a shared one a replaced name would be an entry
        # that changes during a listing (unspecified for readdir).
        mine = [n for n in self.by_name if os.path.dirname(n) == self.priv]
        if len(mine) < 2:
            return self.op_rename()
        src, dst = self.rng.sample(sorted(mine), 2)
        self.publish("rename-replace %s -> %s" % (src, dst))
        os.rename(self.p(src), self.p(dst))
        si, di = self.by_name[src], self.by_name[dst]
        t = time.time() - self.ctx.t0
        self.inodes[si].hist.append("%.3f rename-replace %s -> %s" % (t, src, dst))
        self.inodes[di].hist.append("%.3f replaced by rename %s -> %s" % (t, src, dst))
        if si == di:
            return  # two links of one inode: rename does nothing
        sino, dino = self.inodes[si], self.inodes[di]
        dino.names.discard(dst)
        if not dino.names:
            del self.inodes[di]
        sino.names.discard(src)
        sino.names.add(dst)
        del self.by_name[src]
        self.by_name[dst] = si

    def op_link(self):
        ino = self.pick_inode()
        if not ino or len(ino.names) > 5:
            return self.op_create()
        src = self.any_name(ino)
        dst = os.path.join(self.pick_dir(), self.new_name())
        self.publish("link %s -> %s" % (src, dst), ino)
        try:
            os.link(self.p(src), self.p(dst))
        except FileNotFoundError:
            # The VFS refuses to link an inode whose (cached) i_nlink is 0.
            if self.nlink_ok("link %s (ENOENT)" % src, 0, ino, len(ino.names), path=self.p(src)):
                raise
            os.link(self.p(src), self.p(dst))
        ino.names.add(dst)
        self.by_name[dst] = ino.serial
        self.nlink_ok("link " + dst, os.stat(self.p(dst)).st_nlink, ino, len(ino.names),
                      path=self.p(dst))

    def op_unlink(self):
        ino = self.pick_inode()
        if not ino:
            return self.op_create()
        rel = self.any_name(ino)
        self.publish("unlink " + rel, ino)
        os.unlink(self.p(rel))
        ino.names.discard(rel)
        del self.by_name[rel]
        if not ino.names:
            del self.inodes[ino.serial]

    def op_orphan(self):
        """Open a file, unlink every name, keep the fd (written and read by op_orphan_io)."""
        ino = self.pick_inode()
        if not ino or len(self.orphans) >= 4:
            return self.op_orphan_io()
        rel = self.any_name(ino)
        self.publish("orphan open+unlink %s" % sorted(ino.names), ino)
        fd = os.open(self.p(rel), os.O_RDWR)
        for n in sorted(ino.names):
            os.unlink(self.p(n))
            del self.by_name[n]
        ino.names.clear()
        del self.inodes[ino.serial]
        self.orphans.append([fd, ino])
        self.nlink_ok("orphan of %s" % rel, os.fstat(fd).st_nlink, ino, 0, fd=fd)

    def op_orphan_io(self):
        if not self.orphans:
            return self.op_orphan() if self.inodes else self.op_create()
        fd, ino = self.rng.choice(self.orphans)
        n = self.rng.randrange(1, MAX_IO)
        off = self.rng.randrange(0, MAX_SIZE - n)
        self.publish("orphan io fd %d off %d len %d" % (fd, off, n), ino)
        data = os.urandom(n)
        self.write_at(fd, off, data)
        if off > len(ino.data):
            ino.data.extend(bytes(off - len(ino.data)))
        ino.data[off:off + n] = data
        if os.fstat(fd).st_size != len(ino.data):
            self.fail("orphan fd %d: st_size %d, model %d" % (fd, os.fstat(fd).st_size, len(ino.data)))
        self.check_data(self.read_all(fd, len(ino.data)), ino, "orphan fd %d read" % fd)
        if self.rng.random() < 0.3:
            self.publish("orphan close fd %d" % fd, ino)
            self.orphans.remove([fd, ino])
            os.close(fd)

    def op_mmap_write(self):
        if not self.ctx.use_mmap:
            return self.op_write()
        ino = self.pick_inode()
        if not ino or not ino.data:
            return self.op_write()
        rel = self.any_name(ino)
        size = len(ino.data)
        off = self.rng.randrange(0, size)
        n = self.rng.randrange(1, min(MAX_IO, size - off) + 1)
        self.publish("mmap write %s off %d len %d" % (rel, off, n), ino)
        data = os.urandom(n)
        fd = os.open(self.p(rel), os.O_RDWR)
        try:
            m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            try:
                m[off:off + n] = data
                m.flush()
                got = bytes(m[:size])
            finally:
                m.close()
        finally:
            os.close(fd)
        ino.data[off:off + n] = data
        self.check_data(got, ino, "mmap read-back " + rel)

    def op_xattr(self):
        ino = self.pick_inode()
        if not ino:
            return self.op_create()
        rel = self.any_name(ino)
        path = self.p(rel)
        r = self.rng.random()
        if r < 0.5 or not ino.xattrs:
            k = "user.s%d" % self.rng.randrange(6)
            v = os.urandom(self.rng.randrange(0, 200))
            self.publish("setxattr %s %s" % (rel, k), ino)
            os.setxattr(path, k, v)
            ino.xattrs[k] = v
        elif r < 0.75:
            k = self.rng.choice(sorted(ino.xattrs))
            self.publish("removexattr %s %s" % (rel, k), ino)
            os.removexattr(path, k)
            del ino.xattrs[k]
        else:
            self.publish("getxattr/listxattr " + rel, ino)
            names = sorted(x for x in os.listxattr(path) if x.startswith("user."))
            if names != sorted(ino.xattrs):
                self.fail("listxattr %s: %s, model %s" % (rel, names, sorted(ino.xattrs)))
            for k, v in ino.xattrs.items():
                got = os.getxattr(path, k)
                if got != v:
                    self.fail("getxattr %s %s: %d bytes differ from the model's %d"
                              % (rel, k, len(got), len(v)))

    def op_dir(self):
        if self.dirs and self.rng.random() < 0.5:
            d = self.rng.choice(sorted(self.dirs))
            self.publish("rmdir " + d)
            os.rmdir(self.p(d))
            self.dirs.discard(d)
        else:
            d = os.path.join(self.rng.choice(("shared", "shared2")), self.new_name(".d"))
            self.publish("mkdir " + d)
            os.mkdir(self.p(d))
            self.dirs.add(d)

    def own_in(self, d):
        names = {os.path.basename(n).encode() for n in self.by_name if os.path.dirname(n) == d}
        names |= {os.path.basename(n).encode() for n in self.dirs if os.path.dirname(n) == d}
        return names

    def op_readdir(self):
        d = self.rng.choice(("shared", "shared2", "shared", self.priv))
        bufsize = self.rng.choice((280, 512, 1024, 4096, 32768))
        self.publish("readdir %s (getdents64 buffer %d)" % (d, bufsize))
        names = getdents_names(self.p(d), bufsize)
        seen = set()
        for n in names:
            if n in seen:
                self.fail("readdir %s returned %r twice (buffer %d)" % (d, n, bufsize))
            seen.add(n)
        own = self.own_in(d)
        if d == self.priv:
            if seen != own:
                self.fail("readdir %s: extra %s, missing %s" % (d, sorted(seen - own), sorted(own - seen)))
            return
        counters = self.ctx.counters
        for n in seen:
            m = NAME_RE.match(n)
            if not m:
                self.fail("readdir %s returned %r, a name nobody created" % (d, n))
            s, k = int(m.group(1)), int(m.group(2))
            if s >= len(counters) or k > counters[s]:
                self.fail("readdir %s returned %r, a name not created yet" % (d, n))
        mine = {n for n in seen if n.startswith(b"%03d-" % self.slot)}
        if mine != own:
            self.fail("readdir %s (buffer %d): own entries: extra %s, missing %s"
                      % (d, bufsize, sorted(mine - own), sorted(own - mine)))

    def op_big(self):
        r = self.rng.random()
        base = self.region_off
        if r < 0.4:
            off = self.rng.randrange(0, REGION - 1)
            n = self.rng.randrange(1, REGION - off + 1)
            self.publish("big.dat pwrite off %d len %d" % (base + off, n))
            data = os.urandom(n)
            self.write_at(self.big_fd, base + off, data)
            self.region[off:off + n] = data
        elif r < 0.6 and self.ctx.use_mmap:
            off = self.rng.randrange(0, REGION - 1)
            n = self.rng.randrange(1, REGION - off + 1)
            self.publish("big.dat mmap write off %d len %d" % (base + off, n))
            data = os.urandom(n)
            m = mmap.mmap(self.big_fd, REGION, mmap.MAP_SHARED,
                          mmap.PROT_READ | mmap.PROT_WRITE, offset=base)
            try:
                m[off:off + n] = data
                m.flush()
            finally:
                m.close()
            self.region[off:off + n] = data
        else:
            # Read a random slot's region (load only) and verify our own.
            other = self.rng.randrange(self.ctx.nslots)
            self.publish("big.dat read region of slot %d and own" % other)
            os.pread(self.big_fd, REGION, other * REGION)
            got = os.pread(self.big_fd, REGION, base)
            if got != bytes(self.region):
                first = next(i for i in range(REGION) if i >= len(got) or got[i] != self.region[i])
                self.fail("big.dat: own region (offset %d) differs from the model at +%d"
                          % (base, first))

    OPS = (("create", 10), ("write", 12), ("append", 4), ("read", 10), ("truncate", 5),
           ("rename", 8), ("rename_replace", 3), ("link", 5), ("unlink", 6), ("orphan", 2),
           ("orphan_io", 5), ("mmap_write", 5), ("xattr", 6), ("dir", 3), ("readdir", 6),
           ("big", 10))

    def step(self):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        name = self.rng.choices(names, weights)[0]
        self.counts[name] = self.counts.get(name, 0) + 1
        if name == "append":
            self.op_write(append=True)
        else:
            getattr(self, "op_" + name)()

    def finish(self):
        self.publish("closing orphans")
        for fd, ino in self.orphans:
            self.check_data(self.read_all(fd, len(ino.data)), ino, "orphan fd %d final read" % fd)
            os.close(fd)
        self.orphans = []
        os.close(self.big_fd)
        return {
            "slot": self.slot,
            "files": [{"names": sorted(i.names), "size": len(i.data), "sha256": sha(i.data),
                       "xattrs": {k: v.hex() for k, v in i.xattrs.items()}}
                      for i in self.inodes.values()],
            "dirs": sorted(self.dirs),
            "private": self.priv,
            "region": {"offset": self.region_off, "sha256": sha(self.region)},
            "counts": self.counts,
        }


class Ctx:
    pass


def worker_thread(ctx, slot, seed, deadline):
    rng = random.Random(seed * 1000 + slot)
    ctx.pid[slot], ctx.tid[slot] = os.getpid(), threading.get_native_id()
    try:
        s = Slot(ctx, slot, rng)
        while time.time() < deadline and not ctx.stop.value:
            s.step()
            ctx.started[slot] = 0.0
            ctx.done[slot] += 1
        result = s.finish()
        with open(os.path.join(ctx.state, "slot-%03d.json" % slot), "w") as f:
            json.dump(result, f)
    except Exception as e:  # noqa: BLE001 -- every failure is reported with its op
        ctx.stop.value = 1  # end the run early: the others stop and write their manifests
        i = slot * DESC
        op = bytes(ctx.desc[i:i + DESC]).rstrip(b"\0").decode(errors="replace")
        kind = "check failed" if isinstance(e, Failure) else "unexpected error"
        with open(os.path.join(ctx.state, "error-%03d.txt" % slot), "w") as f:
            f.write("slot %d: %s during '%s': %s\n" % (slot, kind, op, e))
            if not isinstance(e, Failure):
                f.write(traceback.format_exc())
    finally:
        ctx.started[slot] = 0.0
        ctx.finished[slot] = 1


def worker_process(ctx, first_slot, nthreads, seed, deadline):
    threads = [threading.Thread(target=worker_thread, args=(ctx, first_slot + t, seed, deadline))
               for t in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def read_proc(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").strip()
    except OSError as e:
        return "(%s)" % e.strerror


def dump_task(base, label, out):
    """One thread: state, wchan and kernel stack (/proc/.../stack needs root)."""
    st = read_proc(base + "/stat")
    state = st.rsplit(")", 1)[-1].split()[0] if ")" in st else "?"
    out.append("    %s %s %-16s state %s wchan %s" % (label, base.rsplit("/", 1)[-1],
               read_proc(base + "/comm"), state, read_proc(base + "/wchan") or "0"))
    stack = read_proc(base + "/stack")
    if stack:
        out.extend("      " + line for line in stack.splitlines()[:16])


def dump_tasks(pid, label, out):
    out.append("  %s pid %s, every thread (cat /proc/%s/task/*/wchan, .../stack):" % (label, pid, pid))
    try:
        tids = sorted(os.listdir("/proc/%d/task" % pid), key=int)
    except OSError as e:
        out.append("    (cannot list tasks: %s)" % e.strerror)
        return
    for tid in tids:
        dump_task("/proc/%d/task/%s" % (pid, tid), "tid", out)


def stall_report(ctx, procs, why, daemon_pid, slots):
    now = time.time()
    out = ["STUCK: %s" % why, "  slot  ops    age(s)  current operation"]
    for s in range(ctx.nslots):
        i = s * DESC
        desc = bytes(ctx.desc[i:i + DESC]).rstrip(b"\0").decode(errors="replace")
        st = ctx.started[s]
        age = "%.1f" % (now - st) if st else "idle" if not ctx.finished[s] else "done"
        mark = " <== stuck" if s in slots else ""
        out.append("  %4d %6d %8s  %s%s" % (s, ctx.done[s], age, desc, mark))
    if daemon_pid:
        dump_tasks(daemon_pid, "daemon", out)
    out.append("  stuck workers' threads:")
    for s in slots:
        dump_task("/proc/%d/task/%d" % (ctx.pid[s], ctx.tid[s]), "slot %d tid" % s, out)
    return "\n".join(out)


def cmd_run(a):
    root, state = a.root, a.state
    nslots = a.procs * a.threads
    os.makedirs(state, exist_ok=True)
    for d in ["shared", "shared2"] + ["p%03d" % s for s in range(nslots)]:
        os.mkdir(os.path.join(root, d))
    fd = os.open(os.path.join(root, "big.dat"), os.O_CREAT | os.O_RDWR, 0o644)
    os.ftruncate(fd, nslots * REGION)
    os.close(fd)
    ctx = Ctx()
    ctx.root, ctx.state, ctx.nslots, ctx.use_mmap = root, state, nslots, not a.no_mmap
    ctx.counters = mp.Array("q", nslots, lock=False)
    ctx.started = mp.Array("d", nslots, lock=False)
    ctx.done = mp.Array("q", nslots, lock=False)
    ctx.finished = mp.Array("b", nslots, lock=False)
    ctx.desc = mp.Array("c", nslots * DESC, lock=False)
    ctx.stop = mp.Value("b", 0, lock=False)
    ctx.kernel_nlink = mp.Array("q", nslots, lock=False)
    ctx.pid = mp.Array("q", nslots, lock=False)
    ctx.tid = mp.Array("q", nslots, lock=False)
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    print("# stress: seed %d, %d processes x %d threads, %ds, stall limit %ds"
          % (seed, a.procs, a.threads, a.seconds, a.stall), flush=True)
    t0 = ctx.t0 = time.time()
    deadline = t0 + a.seconds
    fork = mp.get_context("fork")
    procs = [fork.Process(target=worker_process, args=(ctx, p * a.threads, a.threads, seed, deadline))
             for p in range(a.procs)]
    for p in procs:
        p.start()
    stuck = None
    while any(p.is_alive() for p in procs):
        time.sleep(0.5)
        now = time.time()
        slow = [s for s in range(nslots) if ctx.started[s] and now - ctx.started[s] > a.stall]
        if slow:
            stuck = stall_report(ctx, procs, "%d operation(s) running for more than %ds"
                                 % (len(slow), a.stall), a.daemon_pid, slow)
            break
        if now > deadline + a.stall:
            late = [s for s in range(nslots) if not ctx.finished[s]]
            stuck = stall_report(ctx, procs, "slots %s still running %ds after the end"
                                 % (late, a.stall), a.daemon_pid, late)
            break
    if stuck:
        print(stuck, flush=True)
        ctx.stop.value = 1
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
        # Workers blocked in the filesystem die only when it answers (or its daemon dies):
        # exit without multiprocessing's join of them.
        sys.stdout.flush()
        os._exit(3)
    for p in procs:
        p.join()
    elapsed = time.time() - t0
    errors = []
    for s in range(nslots):
        ef = os.path.join(state, "error-%03d.txt" % s)
        if os.path.exists(ef):
            with open(ef) as f:
                errors.append(f.read().rstrip())
        elif not os.path.exists(os.path.join(state, "slot-%03d.json" % s)):
            errors.append("slot %d: ended without a manifest" % s)
    for p in procs:
        if p.exitcode:
            errors.append("worker pid %d exited with %d" % (p.pid, p.exitcode))
    counts = {}
    for s in range(nslots):
        try:
            with open(os.path.join(state, "slot-%03d.json" % s)) as f:
                for k, v in json.load(f)["counts"].items():
                    counts[k] = counts.get(k, 0) + v
        except OSError:
            pass
    total = sum(ctx.done)
    print("# stress: %d ops in %.1fs (%.0f/s): %s" % (total, elapsed, total / max(elapsed, 0.001),
          " ".join("%s %d" % kv for kv in sorted(counts.items()))), flush=True)
    stale = sum(ctx.kernel_nlink)
    print("# stress: kernel cached st_nlink wrong (daemon right) %d times" % stale, flush=True)
    for s in range(nslots):
        nf = os.path.join(state, "nlink-%03d.txt" % s)
        if os.path.exists(nf) and stale:
            with open(nf) as f:
                print("nlink: slot %d: %s" % (s, f.read().rstrip().replace("\n", "\nnlink: ")))
            stale = 0  # one slot's examples are enough
    if errors:
        print("\n".join(errors), flush=True)
        return 1
    return 0


def cmd_verify(a):
    root, state = a.root, a.state
    manifests = []
    for n in sorted(os.listdir(state)):
        if n.startswith("slot-") and n.endswith(".json"):
            with open(os.path.join(state, n)) as f:
                manifests.append(json.load(f))
    problems = []
    expected = {"big.dat": "f", "shared": "d", "shared2": "d"}
    for m in manifests:
        expected[m["private"]] = "d"
        for d in m["dirs"]:
            expected[d] = "d"
        for fi in m["files"]:
            for n in fi["names"]:
                expected[n] = "f"
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirnames:
            found[os.path.normpath(os.path.join(rel, n))] = "d"
        for n in filenames:
            found[os.path.normpath(os.path.join(rel, n))] = "f"
    for n in sorted(set(found) - set(expected)):
        problems.append("unexpected %s %s" % ("directory" if found[n] == "d" else "entry", n))
    for n in sorted(set(expected) - set(found)):
        problems.append("missing %s" % n)
    for n in sorted(set(expected) & set(found)):
        if expected[n] != found[n]:
            problems.append("%s: type %s, expected %s" % (n, found[n], expected[n]))
    nfiles = nbytes = nnames = 0
    for m in manifests:
        for fi in m["files"]:
            names = [n for n in fi["names"] if n in found]
            if not names:
                continue
            nfiles += 1
            nnames += len(fi["names"])
            sts = {n: os.lstat(os.path.join(root, n)) for n in names}
            inos = {st.st_ino for st in sts.values()}
            if len(inos) != 1:
                problems.append("hard links %s are %d different inodes" % (names, len(inos)))
            st = sts[names[0]]
            if not stat.S_ISREG(st.st_mode):
                continue
            # The daemon's link count (the kernel's cached one can be off: docs/semantics.md).
            nlink = statx_sync(os.path.join(root, names[0]))[1]
            if nlink != len(fi["names"]):
                problems.append("%s: st_nlink %d, expected %d (%s)"
                                % (names[0], nlink, len(fi["names"]), fi["names"]))
            with open(os.path.join(root, names[0]), "rb") as f:
                data = f.read()
            nbytes += len(data)
            if len(data) != fi["size"] or st.st_size != fi["size"]:
                problems.append("%s: size %d (read %d), expected %d"
                                % (names[0], st.st_size, len(data), fi["size"]))
            elif sha(data) != fi["sha256"]:
                problems.append("%s: content differs from what its writer recorded" % names[0])
            path = os.path.join(root, names[0])
            xs = {k: os.getxattr(path, k).hex() for k in os.listxattr(path) if k.startswith("user.")}
            if xs != fi["xattrs"]:
                problems.append("%s: xattrs %s, expected %s" % (names[0], xs, fi["xattrs"]))
    with open(os.path.join(root, "big.dat"), "rb") as f:
        big = f.read()
    if len(big) != len(manifests) * REGION and manifests:
        problems.append("big.dat: size %d, expected %d" % (len(big), len(manifests) * REGION))
    for m in manifests:
        r = m["region"]
        if sha(big[r["offset"]:r["offset"] + REGION]) != r["sha256"]:
            problems.append("big.dat: region of slot %d (offset %d) differs from what its writer "
                            "recorded" % (m["slot"], r["offset"]))
    print("# verify: %d slots, %d files (%d names), %d bytes, %d directories, big.dat %d bytes"
          % (len(manifests), nfiles, nnames, nbytes,
             sum(1 for v in expected.values() if v == "d"), len(big)))
    if problems:
        print("\n".join(problems[:40]))
        if len(problems) > 40:
            print("... %d problems in all" % len(problems))
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=("run", "verify"))
    ap.add_argument("root")
    ap.add_argument("state")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--stall", type=int, default=20)
    ap.add_argument("--daemon-pid", type=int, default=0)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--no-mmap", action="store_true")
    a = ap.parse_args()
    if a.procs * a.threads > 999:
        ap.error("at most 999 slots")
    sys.exit(cmd_run(a) if a.cmd == "run" else cmd_verify(a))


if __name__ == "__main__":
    main()
