#!/usr/bin/env python3
"""Fault injection through real mounts (faults.sh drives it).

  faults.py ops MNT LOG          run the allocation workload on MNT, one JSON line per op in LOG
                                 (its result: ok, a byte count, or the errno name)
  faults.py verify MNT LOG       the tree on MNT against the model of what LOG says succeeded:
                                 every name resolves to a complete inode, link counts are the
                                 number of names, contents, targets and xattrs are the model's
  faults.py scribble FILE LO HI SEED
                                 as another process: write 1-32 random bytes at a random offset
                                 in [LO, HI) of FILE (seeded), print "offset length"
  faults.py crash PK CTL WORK POINT N SEED
                                 mount a fresh node with --debug-fail=POINT:N, run crash.py's
                                 workload (and for checkpoint/preserve points, unmount or
                                 preserve), expect the daemon to die at that point, remount and
                                 compare with everything acknowledged; pkramfs-ctl check clean
Prints PASS/FAIL/# lines; exits 1 on any FAIL.
"""
import ctypes
import errno
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crash  # noqa: E402  the kill -9 workload and its model

FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def pattern(n, seed):
    return hashlib.shake_256(seed.encode()).digest(n) if n else b""


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


# ------------------------------------------------------------------------------ workload --
# Each op: (name, function(root) -> int or None). Run in order; a failing op is recorded and the
# workload goes on (later ops may then fail with ENOENT and the like: the model follows).
def write_at(path, off, data, flags=0):
    fd = os.open(path, os.O_WRONLY | flags)
    try:
        return os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def create(path):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))


def falloc(path, mode, off, length):
    fd = os.open(path, os.O_WRONLY)
    try:
        fallocate(fd, mode, off, length)
    finally:
        os.close(fd)


def copy_range(src, dst, n):
    fi, fo = os.open(src, os.O_RDONLY), os.open(dst, os.O_WRONLY)
    try:
        return os.copy_file_range(fi, fo, n, 0, 100)
    finally:
        os.close(fi)
        os.close(fo)


def tmpfile(d, name, data):
    """O_TMPFILE in d, data written, then linked as name (linkat through /proc/self/fd): the
    bytes written if the link was made; a failure anywhere leaves nothing"""
    fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o644)
    try:
        n = os.write(fd, data)
        if libc.linkat(-100, f"/proc/self/fd/{fd}".encode(), -100, f"{d}/{name}".encode(),
                       0x400) != 0:  # AT_SYMLINK_FOLLOW
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return n
    finally:
        os.close(fd)


LONG = "t" * 300
OPS = [
    ("mkdir d", lambda r: os.mkdir(f"{r}/d")),
    ("mkdir d/e", lambda r: os.mkdir(f"{r}/d/e")),
    ("create d/f", lambda r: create(f"{r}/d/f")),
    ("write d/f 0 10000", lambda r: write_at(f"{r}/d/f", 0, pattern(10000, "a"))),
    ("write d/f 9000 300k", lambda r: write_at(f"{r}/d/f", 9000, pattern(300 * 1024, "b"))),
    ("create d/g", lambda r: create(f"{r}/d/g")),
    ("symlink d/s", lambda r: os.symlink("f", f"{r}/d/s")),
    ("symlink d/long", lambda r: os.symlink(LONG, f"{r}/d/long")),
    ("link d/f d/f2", lambda r: os.link(f"{r}/d/f", f"{r}/d/f2")),
    ("mkfifo d/p", lambda r: os.mkfifo(f"{r}/d/p")),
    ("setxattr d/f user.a", lambda r: os.setxattr(f"{r}/d/f", "user.a", b"1")),
    ("setxattr d/g user.g", lambda r: os.setxattr(f"{r}/d/g", "user.g", b"gee")),
    ("setxattr d/g user.g replace", lambda r: os.setxattr(f"{r}/d/g", "user.g", b"longer")),
    ("create d/h", lambda r: create(f"{r}/d/h")),
    ("fallocate d/h 1m", lambda r: falloc(f"{r}/d/h", 0, 0, 1 << 20)),
    ("write d/h 12293 20000", lambda r: write_at(f"{r}/d/h", 12293, pattern(20000, "c"))),
    ("punch d/h 40960 8192", lambda r: falloc(f"{r}/d/h", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                              40960, 8192)),
    ("write d/f 5m 70000", lambda r: write_at(f"{r}/d/f", 5 << 20, pattern(70000, "d"))),
    ("truncate d/g 3m", lambda r: os.truncate(f"{r}/d/g", 3 << 20)),
    ("truncate d/f 5000", lambda r: os.truncate(f"{r}/d/f", 5000)),
    ("copy d/h d/g 30000", lambda r: copy_range(f"{r}/d/h", f"{r}/d/g", 30000)),
    ("rename d/f2 d/e/f3", lambda r: os.rename(f"{r}/d/f2", f"{r}/d/e/f3")),
    ("rename d/g d/e/f3", lambda r: os.rename(f"{r}/d/g", f"{r}/d/e/f3")),
    ("rename d/e e2", lambda r: os.rename(f"{r}/d/e", f"{r}/e2")),
    ("removexattr d/f user.a", lambda r: os.removexattr(f"{r}/d/f", "user.a")),
    ("unlink d/p", lambda r: os.unlink(f"{r}/d/p")),
    ("mkdir d/x", lambda r: os.mkdir(f"{r}/d/x")),
    ("rmdir d/x", lambda r: os.rmdir(f"{r}/d/x")),
    ("open-trunc d/h", lambda r: os.close(os.open(f"{r}/d/h", os.O_WRONLY | os.O_TRUNC))),
    ("tmpfile d/t 20000", lambda r: tmpfile(f"{r}/d", "t", pattern(20000, "e"))),
    ("create d/last", lambda r: create(f"{r}/d/last")),
]


def run_ops(root, log_path):
    with open(log_path, "w") as log:
        for name, fn in OPS:
            try:
                n = fn(root)
                res = n if isinstance(n, int) else "ok"
            except OSError as e:
                res = errno.errorcode.get(e.errno, str(e.errno))
            log.write(json.dumps([name, res]) + "\n")
            log.flush()


# --------------------------------------------------------------------------------- model --
class Model:
    """Paths -> inode numbers; inodes -> {"type", "data", "xattrs", "target"}."""

    def __init__(self):
        self.paths = {}
        self.inodes = {}
        self.next = 1

    def new(self, path, kind, **kw):
        self.inodes[self.next] = {"type": kind, "data": b"", "xattrs": {}, "target": None, **kw}
        self.paths[path] = self.next
        self.next += 1

    def node(self, path):
        return self.inodes[self.paths[path]]

    def write(self, path, off, data):
        n = self.node(path)
        d = n["data"]
        if len(d) < off:
            d += bytes(off - len(d))
        n["data"] = d[:off] + data + d[off + len(data):]

    def truncate(self, path, size):
        n = self.node(path)
        n["data"] = n["data"][:size] + bytes(max(0, size - len(n["data"])))

    def unlink(self, path):
        ino = self.paths.pop(path)
        if ino not in self.paths.values():
            del self.inodes[ino]

    def rename(self, src, dst):
        moved = {p: i for p, i in self.paths.items() if p == src or p.startswith(src + "/")}
        if dst in self.paths and self.paths[dst] != self.paths[src]:
            self.unlink(dst)
        for p, i in moved.items():
            del self.paths[p]
            self.paths[dst + p[len(src):]] = i


def apply(m, name, res):
    """Applies one op that succeeded (res "ok" or a byte count) to the model."""
    w = name.split()
    kind, args = w[0], w[1:]
    if kind == "mkdir":
        m.new(args[0], "d")
    elif kind == "create":
        m.new(args[0], "f")
    elif kind == "symlink":
        m.new(args[0], "l", target="f" if args[0] == "d/s" else LONG)
    elif kind == "mkfifo":
        m.new(args[0], "p")
    elif kind == "link":
        m.paths[args[1]] = m.paths[args[0]]
    elif kind == "write":
        off = int(args[1]) if args[1][-1].isdigit() else int(args[1][:-1]) << 20
        seed = {"0": "a", "9000": "b", "12293": "c", "5m": "d"}[args[1]]
        full = {"a": 10000, "b": 300 * 1024, "c": 20000, "d": 70000}[seed]
        m.write(args[0], off, pattern(full, seed)[:res])
    elif kind == "setxattr":
        m.node(args[0])["xattrs"][args[1]] = b"1" if args[1] == "user.a" else (
            b"longer" if len(args) > 2 else b"gee")
    elif kind == "removexattr":
        del m.node(args[0])["xattrs"][args[1]]
    elif kind == "fallocate":
        m.truncate(args[0], max(len(m.node(args[0])["data"]), 1 << 20))
    elif kind == "punch":
        n = m.node(args[0])
        off, ln = int(args[1]), int(args[2])
        end = min(off + ln, len(n["data"]))
        if off < end:
            n["data"] = n["data"][:off] + bytes(end - off) + n["data"][end:]
    elif kind == "truncate":
        m.truncate(args[0], int(args[1][:-1]) << 20 if args[1].endswith("m") else int(args[1]))
    elif kind == "copy":
        src = m.node(args[0])["data"][:int(args[2])][: res]
        m.write(args[1], 100, src)
    elif kind == "rename":
        m.rename(args[0], args[1])
    elif kind == "unlink" or kind == "rmdir":
        m.unlink(args[0])
    elif kind == "open-trunc":
        m.truncate(args[0], 0)
    elif kind == "tmpfile":
        m.new(args[0], "f")
        m.write(args[0], 0, pattern(int(args[1]), "e")[:res])


def scan(root):
    """The tree: path -> (type, sha of data, target, xattrs, st_ino, st_nlink); problems."""
    tree, problems, names = {}, [], {}
    for d, subdirs, files in os.walk(root):
        for n in subdirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            try:
                st = os.lstat(p)
            except OSError as e:
                problems.append(f"{rel}: listed but lstat fails: {e}")
                continue
            import stat as S
            kind = ("d" if S.S_ISDIR(st.st_mode) else "f" if S.S_ISREG(st.st_mode) else
                    "l" if S.S_ISLNK(st.st_mode) else "p" if S.S_ISFIFO(st.st_mode) else "?")
            data = target = None
            if kind == "f":
                with open(p, "rb") as fh:
                    data = hashlib.sha256(fh.read()).hexdigest()
            if kind == "l":
                target = os.readlink(p)
            xattrs = {}
            if kind in "fd":
                for x in os.listxattr(p):
                    xattrs[x] = os.getxattr(p, x)
            tree[rel] = (kind, data, target, xattrs, st.st_ino, st.st_nlink)
            names.setdefault(st.st_ino, []).append(rel)
            if kind == "d":
                sub = sum(1 for q in os.listdir(p) if os.path.isdir(os.path.join(p, q))
                          and not os.path.islink(os.path.join(p, q)))
                if st.st_nlink != 2 + sub:
                    problems.append(f"{rel}: directory link count {st.st_nlink}, "
                                    f"{sub} subdirectories")
    for ino, ps in names.items():
        kind, nlink = tree[ps[0]][0], tree[ps[0]][5]
        if kind != "d" and nlink != len(ps):
            problems.append(f"{ps}: link count {nlink} but {len(ps)} names")
    return tree, problems


def verify(root, log_path, label):
    m = Model()
    results = []
    with open(log_path) as f:
        for line in f:
            name, res = json.loads(line)
            results.append((name, res))
            if res == "ok" or isinstance(res, int):
                apply(m, name, res)
    injected = [f"{n}: {r}" for n, r in results if r in ("ENOMEM", "ENOSPC")]
    other = [f"{n}: {r}" for n, r in results
             if not (r == "ok" or isinstance(r, int) or r in ("ENOMEM", "ENOSPC", "ENOENT"))]
    short = [n for n, r in results if isinstance(r, int) and n.startswith("write") and
             r < {"0": 10000, "9000": 300 * 1024, "12293": 20000, "5m": 70000}[n.split()[2]]]
    tree, problems = scan(root)
    want = {}
    groups = {}
    for p, ino in m.paths.items():
        n = m.inodes[ino]
        want[p] = (n["type"], hashlib.sha256(n["data"]).hexdigest() if n["type"] == "f" else None,
                   n["target"], n["xattrs"] if n["type"] in "fd" else {})
        groups.setdefault(ino, set()).add(p)
    got = {p: v[:4] for p, v in tree.items()}
    got_groups = {}
    for p, v in tree.items():
        got_groups.setdefault(v[4], set()).add(p)
    ok = True
    print(f"# {label}: failed with ENOMEM/ENOSPC: {injected or 'nothing'}"
          + (f"; short writes: {short}" if short else ""))
    if other:
        ok = False
        print(f"FAIL {label}:errno: unexpected results: {other}")
    if problems:
        ok = False
        print(f"FAIL {label}:consistent: " + "; ".join(problems[:5]))
    if got != want:
        ok = False
        print(f"FAIL {label}:tree-is-model: differs from what succeeded")
        for p in sorted(set(got) | set(want)):
            if got.get(p) != want.get(p):
                print(f"    {p}: expected {want.get(p)}, found {got.get(p)}")
    if sorted(map(sorted, groups.values())) != sorted(map(sorted, got_groups.values())):
        ok = False
        print(f"FAIL {label}:hard-links: expected {sorted(map(sorted, groups.values()))}, "
              f"found {sorted(map(sorted, got_groups.values()))}")
    if ok:
        print(f"PASS {label}")
    return ok, bool(injected or short)


# --------------------------------------------------------------------------- crash points --
def crash_main(pk, ctl, work, point, nth, seed):
    mnt, shm, run = (os.path.join(work, d) for d in ("mnt", "shm", "run"))
    for d in (mnt, shm, run):
        os.makedirs(d, exist_ok=True)
    os.chmod(shm, 0o700)
    os.chmod(run, 0o700)
    name = f"{point}-{nth}".replace(":", "-")
    label = f"crash[{point}:{nth}]"
    err_path = os.path.join(work, f"{name}.err")
    failures = []

    def start(extra):
        err = open(err_path, "a")
        d = subprocess.Popen([pk, "-f", f"--pkram={name}", "--size=256m", f"--shm-dir={shm}",
                              f"--run-dir={run}", *extra, mnt], stderr=err)
        for _ in range(200):
            if os.path.ismount(mnt):
                return d
            if d.poll() is not None:
                return None
            time.sleep(0.05)
        d.kill()
        d.wait()
        return None

    def ctl_run(*args):
        return subprocess.run([ctl, f"--shm-dir={shm}", f"--run-dir={run}", *args],
                              capture_output=True, text=True)

    d = start([f"--debug-fail={point}:{nth}"])
    if not d:
        print(f"FAIL {label}:mount: {open(err_path).read()[-500:]}")
        return 1
    log = os.path.join(work, f"{name}.ops")
    open(log, "w").close()
    worker = subprocess.Popen([sys.executable, crash.__file__, "--workload",
                               os.path.join(mnt, "w"), log, str(seed)])
    worker.wait(timeout=120)
    trigger = point.split("-")[0]
    if trigger in ("checkpoint", "preserve") and d.poll() is None:
        if trigger == "preserve":
            r = ctl_run("preserve", name)
            print(f"# {label}: pkramfs-ctl preserve exited {r.returncode}: "
                  f"{(r.stdout + r.stderr).strip()[:150]}")
        else:
            subprocess.run(["umount", mnt], capture_output=True)
    try:
        rc = d.wait(timeout=20)
    except subprocess.TimeoutExpired:
        d.kill()
        rc = d.wait()
        failures.append("daemon-died")
        print(f"FAIL {label}:daemon-died: it did not die at the crash point")
    subprocess.run(["umount", "-l", mnt], capture_output=True)
    if rc == -9:
        print(f"PASS {label}:daemon-died")
    elif "daemon-died" not in failures:
        failures.append("daemon-died")
        print(f"FAIL {label}:daemon-died: exit status {rc}, not SIGKILL")
    done, pending = crash.read_log(log)
    model = {}
    rel = lambda op: [op[0]] + [os.path.relpath(a, mnt) if isinstance(a, str) and
                                a.startswith(mnt) else a for a in op[1:]]
    for op in done:
        model = crash.apply(model, rel(op))
    pending = rel(pending) if pending else None
    print(f"# {label}: {len(done)} operations acknowledged"
          + (f", {pending[0]} in flight" if pending else ""))
    d = start([])
    if not d:
        print(f"FAIL {label}:remount: refused: {open(err_path).read()[-300:]}")
        return 1
    got = {os.path.relpath(k, mnt): v for k, v in crash.scan(mnt).items()}
    cands = [model]
    if pending:
        alts = [pending] + ([["create-empty"] + pending[1:2]] if pending[0] == "create" else [])
        cands += [crash.apply(model, a) for a in alts]
    if any(got == c for c in cands):
        print(f"PASS {label}:acknowledged-ops-kept")
    else:
        failures.append("tree")
        print(f"FAIL {label}:acknowledged-ops-kept: tree differs from what was acknowledged")
        print(crash.describe_diff(model, got))
    try:
        with open(os.path.join(mnt, "after"), "w") as f:
            f.write("x")
        print(f"PASS {label}:writable")
    except OSError as e:
        failures.append("writable")
        print(f"FAIL {label}:writable: {e}")
    _, problems = scan(mnt)
    if problems:
        failures.append("consistent")
        print(f"FAIL {label}:consistent: {problems[:3]}")
    subprocess.run(["umount", mnt])
    d.wait(timeout=30)
    r = ctl_run("check", name)
    if r.returncode == 0:
        print(f"PASS {label}:check-clean")
    else:
        failures.append("check")
        print(f"FAIL {label}:check-clean: exit {r.returncode}: {(r.stdout + r.stderr)[-300:]}")
    return 1 if failures else 0


def scribble(path, lo, hi, seed):
    import random
    rng = random.Random(seed)
    n = rng.randint(1, 32)
    off = rng.randrange(lo, max(lo + 1, hi - n))
    with open(path, "r+b") as f:
        f.seek(off)
        old = f.read(n)
        new = bytes(rng.randrange(256) for _ in range(n))
        if new == old:  # never a no-op: flip the first byte
            new = bytes([new[0] ^ 0xFF]) + new[1:]
        f.seek(off)
        f.write(new)
    print(off, n)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "scribble":
        scribble(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "ops":
        run_ops(sys.argv[2], sys.argv[3])
    elif cmd == "verify":
        ok, fired = verify(sys.argv[2], sys.argv[3], sys.argv[4])
        print(f"# fired={int(fired)}")
        sys.exit(0 if ok else 1)
    elif cmd == "crash":
        sys.exit(crash_main(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]),
                            int(sys.argv[7])))
