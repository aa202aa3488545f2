#!/usr/bin/env python3
"""A client that lives inside a pkramfs mount while its serving process is killed (takeover.sh).

Usage: takeover_client.py DIR SECONDS OUT.json [SEED]

SECONDS: how long to run; 0 = until SIGTERM (at most an hour). DIR is created and becomes the
working directory for the client's whole life; every path it uses afterwards is relative to it.
For its whole life it also keeps: an O_RDONLY descriptor of ro.dat (1 MiB it wrote at start), an
O_RDWR descriptor of rw.dat (64 blocks of 4 KiB) and a MAP_SHARED writable mapping of map.dat
(4 MiB; its descriptor is closed, only the mapping holds the file).

It loops: stat("."), pread of ro.dat (checked), pwrite of a counter block to rw.dat and pread
back (checked), a pattern into a page of the mapping and read back, msync now and then,
listdir(".") (checked against the model), create+write(+fsync)+close+rename of a file, rename
over an existing file, unlink, mkdir/rmdir, reading back a file it made, fsync of rw.dat. Every
syscall that raises is recorded (syscall, errno, time) and the loop goes on; after a failed
mutation the model adopts what the directory really holds for the names involved, so that one
failure is not counted again as a mismatch. Everything else that differs from the model (data
read, a listing, the final tree) is a model mismatch.

At the end (SIGTERM or the time limit) it verifies the directory against the model (names, file
types, contents, rw.dat's blocks, the mapping and map.dat read through a new descriptor, ro.dat),
writes OUT.json = {dir, seconds, iterations, ops, ops_by_syscall, failures, failures_by,
model_mismatches, mismatch_count, mismatches_by, max_op_ms, max_op}, and exits 0. A crash (e.g. SIGBUS from the
mapping) leaves no report: the caller sees the exit status.
"""
import errno
import hashlib
import json
import mmap
import os
import random
import signal
import struct
import sys
import time

BLOCK = 4096
RO_SIZE = 1 << 20
RW_BLOCKS = 64
MAP_SIZE = 4 << 20
MAP_PAGES = MAP_SIZE // BLOCK
FIXED = {"ro.dat", "rw.dat", "map.dat"}
MAX_FILES = 24
MAX_DIRS = 6
MAX_RECORDED = 200  # failures / mismatches kept in the report (all are counted)


def content(seed, n):
    return random.Random(seed).randbytes(n)


def errname(e):
    return errno.errorcode.get(e, str(e))


class Client:
    def __init__(self, directory, seconds, out, seed):
        self.dir = directory
        self.out = out
        self.seed = seed
        self.rng = random.Random(seed)
        self.start = time.time()
        self.deadline = self.start + (seconds if seconds > 0 else 3600)
        self.stop = False
        self.ops = 0
        self.by_syscall = {}
        self.failures = []
        self.failure_count = 0
        self.failures_by = {}
        self.mismatches = []
        self.mismatch_count = 0
        self.mismatches_by = {}
        self.max_op = (0.0, "", 0.0)
        self.files = {}  # name -> bytes (regular files besides FIXED)
        self.dirs = set()
        self.rw = {}  # block -> set of acceptable contents (one unless a pwrite failed)
        self.map_model = {}  # page -> bytes (pages not in it are zero)

    # ------------------------------------------------------------ bookkeeping --
    def call(self, name, fn, *args):
        """(True, result) or (False, errno) after recording the failure."""
        self.ops += 1
        self.by_syscall[name] = self.by_syscall.get(name, 0) + 1
        t0 = time.monotonic()
        try:
            r = fn(*args)
            ok = True
        except OSError as e:
            r = e.errno
            ok = False
            now = time.time()
            self.failure_count += 1
            key = f"{name} {errname(e.errno)}"
            self.failures_by[key] = self.failures_by.get(key, 0) + 1
            if len(self.failures) < MAX_RECORDED:
                self.failures.append({"syscall": name, "errno": errname(e.errno),
                                      "time": round(now, 3),
                                      "t": round(now - self.start, 3),
                                      "args": [str(a)[:60] for a in args
                                               if isinstance(a, (str, int))][:3]})
        dt = (time.monotonic() - t0) * 1000
        if dt > self.max_op[0]:
            self.max_op = (dt, name, round(time.time() - self.start, 3))
        return ok, r

    def mismatch(self, kind, detail):
        self.mismatch_count += 1
        self.mismatches_by[kind] = self.mismatches_by.get(kind, 0) + 1
        if len(self.mismatches) < MAX_RECORDED or kind.startswith("final"):
            now = time.time()
            self.mismatches.append({"kind": kind, "detail": str(detail)[:400],
                                    "time": round(now, 3), "t": round(now - self.start, 3)})

    # ----------------------------------------------------------------- resync --
    def adopt(self, name):
        """After a failed mutation: the model takes what the directory holds for `name`."""
        self.files.pop(name, None)
        self.dirs.discard(name)
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            return
        except OSError:
            return  # the next check will tell
        if os.path.isdir(name):
            self.dirs.add(name)
        else:
            try:
                with open(name, "rb") as f:
                    self.files[name] = f.read()
            except OSError:
                pass
        del st

    # ------------------------------------------------------------------ setup --
    def setup(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chdir(self.dir)
        self.ro_data = content(self.seed * 7 + 1, RO_SIZE)
        with open("ro.dat", "wb") as f:
            f.write(self.ro_data)
            f.flush()
            os.fsync(f.fileno())
        self.ro_fd = os.open("ro.dat", os.O_RDONLY)
        self.rw_fd = os.open("rw.dat", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(self.rw_fd, RW_BLOCKS * BLOCK)
        for b in range(RW_BLOCKS):
            self.rw[b] = {bytes(BLOCK)}
        fd = os.open("map.dat", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(fd, MAP_SIZE)
        self.map = mmap.mmap(fd, MAP_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        os.close(fd)  # only the mapping holds map.dat from here on

    # -------------------------------------------------------------------- ops --
    def op_stat(self):
        ok, st = self.call("stat", os.stat, ".")
        if ok and not (st.st_mode & 0o040000):
            self.mismatch("stat", f"'.' is not a directory: mode {oct(st.st_mode)}")

    def op_pread_ro(self):
        off = self.rng.randrange(0, RO_SIZE - BLOCK)
        ok, data = self.call("pread", os.pread, self.ro_fd, BLOCK, off)
        if ok and data != self.ro_data[off:off + BLOCK]:
            self.mismatch("pread-ro", f"ro.dat at {off}: {len(data)} bytes, not what was written")

    def op_rw(self, i):
        blk = self.rng.randrange(RW_BLOCKS)
        payload = struct.pack("<QQ", i, blk) * (BLOCK // 16)
        ok, n = self.call("pwrite", os.pwrite, self.rw_fd, payload, blk * BLOCK)
        if ok and n == BLOCK:
            self.rw[blk] = {payload}
        else:
            if ok:
                self.mismatch("pwrite-rw", f"short write {n} of block {blk}")
            self.rw[blk] = self.rw[blk] | {payload}
        ok, data = self.call("pread", os.pread, self.rw_fd, BLOCK, blk * BLOCK)
        if ok:
            if data in self.rw[blk]:
                self.rw[blk] = {data}
            else:
                self.mismatch("pread-rw", f"rw.dat block {blk}: not the block written last "
                              f"(counter {struct.unpack('<QQ', data[:16]) if len(data) >= 16 else data!r})")

    def op_map(self, i):
        page = self.rng.randrange(MAP_PAGES)
        patt = struct.pack("<QQ", i, page) * (BLOCK // 16)
        self.ops += 2
        self.by_syscall["mmap-store"] = self.by_syscall.get("mmap-store", 0) + 1
        self.by_syscall["mmap-load"] = self.by_syscall.get("mmap-load", 0) + 1
        self.map[page * BLOCK:(page + 1) * BLOCK] = patt
        self.map_model[page] = patt
        if self.map[page * BLOCK:(page + 1) * BLOCK] != patt:
            self.mismatch("mmap", f"page {page} reads back different bytes")

    def op_msync(self):
        self.call("msync", self.map.flush)

    def expected_names(self):
        return FIXED | set(self.files) | self.dirs

    def op_listdir(self):
        ok, names = self.call("listdir", os.listdir, ".")
        if ok:
            got, want = set(names), self.expected_names()
            if len(names) != len(got):
                self.mismatch("listdir", "a name listed twice")
            if got != want:
                self.mismatch("listdir", f"extra {sorted(got - want)[:10]}, "
                              f"missing {sorted(want - got)[:10]}")

    def op_create(self, i):
        name, tmp = f"f{i}", f"f{i}.tmp"
        n = self.rng.choice([0, 100, 4096, 5000, 20000, 70000])
        data = content(self.seed * 1000003 + i, n)
        ok, fd = self.call("open-creat", os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if not ok:
            self.adopt(tmp)
            return
        self.files[tmp] = b""
        good = True
        if n:
            ok, w = self.call("write", os.write, fd, data)
            if ok and w == n:
                self.files[tmp] = data
            else:
                good = False
                if ok:
                    self.mismatch("write", f"short write {w} of {n} to {tmp}")
        if self.rng.random() < 0.25:
            good = self.call("fsync", os.fsync, fd)[0] and good
        good = self.call("close", os.close, fd)[0] and good
        if not good:
            self.adopt(tmp)
            return
        ok, _ = self.call("rename", os.rename, tmp, name)
        if ok:
            self.files[name] = self.files.pop(tmp)
        else:
            self.adopt(tmp)
            self.adopt(name)

    def op_rename_over(self):
        names = sorted(self.files)
        if len(names) < 2:
            return
        a, b = self.rng.sample(names, 2)
        ok, _ = self.call("rename", os.rename, a, b)
        if ok:
            self.files[b] = self.files.pop(a)
        else:
            self.adopt(a)
            self.adopt(b)

    def op_unlink(self):
        if len(self.files) <= MAX_FILES // 2:
            return
        victim = self.rng.choice(sorted(self.files))
        ok, _ = self.call("unlink", os.unlink, victim)
        if ok:
            del self.files[victim]
        else:
            self.adopt(victim)

    def op_dirs(self, i):
        if len(self.dirs) < MAX_DIRS and self.rng.random() < 0.6:
            name = f"d{i}"
            ok, _ = self.call("mkdir", os.mkdir, name, 0o755)
            if ok:
                self.dirs.add(name)
            else:
                self.adopt(name)
        elif self.dirs:
            name = self.rng.choice(sorted(self.dirs))
            ok, _ = self.call("rmdir", os.rmdir, name)
            if ok:
                self.dirs.discard(name)
            else:
                self.adopt(name)

    def read_file(self, name, what):
        """Whole contents of `name` through a new descriptor, or None after a recorded failure."""
        ok, fd = self.call("open", os.open, name, os.O_RDONLY)
        if not ok:
            return None
        chunks = []
        while True:
            ok, c = self.call("read", os.read, fd, 1 << 20)
            if not ok:
                self.call("close", os.close, fd)
                return None
            if not c:
                break
            chunks.append(c)
        self.call("close", os.close, fd)
        return b"".join(chunks)

    def op_verify_one(self):
        if not self.files:
            return
        name = self.rng.choice(sorted(self.files))
        got = self.read_file(name, "verify")
        if got is not None and got != self.files[name]:
            self.mismatch("read", f"{name}: {len(got)} bytes, sha256 {hashlib.sha256(got).hexdigest()[:12]}, "
                          f"want {len(self.files[name])} bytes")

    def op_fsync_rw(self):
        self.call("fsync", os.fsync, self.rw_fd)

    # ------------------------------------------------------------------- loop --
    def run(self):
        i = 0
        while not self.stop and time.time() < self.deadline:
            i += 1
            self.op_stat()
            self.op_pread_ro()
            self.op_rw(i)
            self.op_map(i)
            if i % 8 == 0:
                self.op_msync()
            self.op_listdir()
            self.op_create(i)
            if i % 5 == 0:
                self.op_rename_over()
            self.op_unlink()
            if i % 3 == 0:
                self.op_dirs(i)
            if i % 4 == 0:
                self.op_verify_one()
            if i % 10 == 0:
                self.op_fsync_rw()
        self.iterations = i

    # ----------------------------------------------------------------- verify --
    def final_check(self):
        self.call("msync", self.map.flush)
        ok, names = self.call("listdir", os.listdir, ".")
        if ok:
            got, want = set(names), self.expected_names()
            if got != want:
                self.mismatch("final-listdir", f"extra {sorted(got - want)[:20]}, "
                              f"missing {sorted(want - got)[:20]}")
        for name, data in sorted(self.files.items()):
            got = self.read_file(name, "final")
            if got is not None and got != data:
                self.mismatch("final-content", f"{name}: {len(got)} bytes, want {len(data)}")
        for name in sorted(self.dirs):
            ok, st = self.call("lstat", os.lstat, name)
            if ok and not (st.st_mode & 0o040000):
                self.mismatch("final-dir", f"{name} is not a directory")
        ok, data = self.call("pread", os.pread, self.ro_fd, RO_SIZE, 0)
        if ok and data != self.ro_data:
            self.mismatch("final-ro", "ro.dat differs from what was written at start")
        ok, data = self.call("pread", os.pread, self.rw_fd, RW_BLOCKS * BLOCK, 0)
        if ok:
            bad = [b for b in range(RW_BLOCKS) if data[b * BLOCK:(b + 1) * BLOCK] not in self.rw[b]]
            if len(data) != RW_BLOCKS * BLOCK or bad:
                self.mismatch("final-rw", f"rw.dat: {len(data)} bytes, blocks not as written: {bad[:10]}")
        want = bytearray(MAP_SIZE)
        for p, patt in self.map_model.items():
            want[p * BLOCK:(p + 1) * BLOCK] = patt
        want = bytes(want)
        if self.map[:] != want:
            bad = [p for p in range(MAP_PAGES) if self.map[p * BLOCK:(p + 1) * BLOCK] != want[p * BLOCK:(p + 1) * BLOCK]]
            self.mismatch("final-mmap", f"mapping pages not as stored: {bad[:10]}")
        got = self.read_file("map.dat", "final")
        if got is not None and got != want:
            bad = [p for p in range(MAP_PAGES) if got[p * BLOCK:(p + 1) * BLOCK] != want[p * BLOCK:(p + 1) * BLOCK]]
            self.mismatch("final-map.dat", f"map.dat read through a new descriptor: {len(got)} bytes, "
                          f"pages not as stored in the mapping: {bad[:10]}")
        self.map.close()
        self.call("close", os.close, self.ro_fd)
        self.call("close", os.close, self.rw_fd)

    def report(self):
        r = {"dir": self.dir, "seed": self.seed, "seconds": round(time.time() - self.start, 2),
             "iterations": self.iterations, "ops": self.ops, "ops_by_syscall": self.by_syscall,
             "failure_count": self.failure_count, "failures_by": self.failures_by,
             "failures": self.failures, "mismatch_count": self.mismatch_count,
             "mismatches_by": self.mismatches_by,
             "model_mismatches": self.mismatches, "files": len(self.files), "dirs": len(self.dirs),
             "max_op_ms": round(self.max_op[0], 1), "max_op": self.max_op[1],
             "max_op_at": self.max_op[2]}
        tmp = self.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(r, f, indent=1)
        os.rename(tmp, self.out)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    directory, seconds, out = sys.argv[1], float(sys.argv[2]), os.path.abspath(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else random.randrange(1 << 30)
    c = Client(directory, seconds, out, seed)

    def on_term(_sig, _frame):
        c.stop = True

    signal.signal(signal.SIGTERM, on_term)
    c.setup()
    c.run()
    c.final_check()
    c.report()


if __name__ == "__main__":
    main()
