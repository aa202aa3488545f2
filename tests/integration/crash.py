#!/usr/bin/env python3
"""kill -9 the daemon at random moments of a mixed workload, remount, and compare the tree with
a model of what had been acknowledged.

Usage: crash.py PKRAMFS_FUSE WORKDIR ROUNDS SEED

The workload runs in its own process and writes, around every operation, an intent line before
and a done line after it to a log outside the mount. After a kill the done operations must all
be there, and the one operation in flight may or may not be: the tree must equal the model with
or without it. Prints PASS/FAIL lines; exits 1 on any failure.
"""
import hashlib
import json
import os
import random
import subprocess
import sys
import time


def content(seed, n):
    return random.Random(seed).randbytes(n)


# ---------------------------------------------------------------- workload --
def workload(root, log_path, seed):
    rng = random.Random(seed)
    log = open(log_path, "a", buffering=1)
    files, dirs = [], [root]
    log.write(json.dumps(["I", "mkdir", root]) + "\n")
    try:
        os.mkdir(root)
    except OSError:
        return
    log.write(json.dumps(["D"]) + "\n")
    i = 0
    while i < 600:  # bounded, so that the node never fills up and rounds stay short
        i += 1
        op = rng.choice(["create"] * 4 + ["append", "rename", "unlink", "mkdir", "xattr",
                                          "truncate"])
        try:
            if op == "mkdir" or not files and op != "create":
                d = os.path.join(rng.choice(dirs), f"d{i}")
                log.write(json.dumps(["I", "mkdir", d]) + "\n")
                os.mkdir(d)
                dirs.append(d)
            elif op == "create":
                p = os.path.join(rng.choice(dirs), f"f{i}")
                n = rng.choice([0, 10, 4096, 5000, 70000])
                log.write(json.dumps(["I", "create", p, seed * 100000 + i, n]) + "\n")
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                if os.write(fd, content(seed * 100000 + i, n)) != n:
                    return  # short write: not acknowledged as a whole
                os.close(fd)
                files.append(p)
            elif op == "append":
                p = rng.choice(files)
                n = rng.choice([1, 100, 8192])
                log.write(json.dumps(["I", "append", p, seed * 100000 + i, n]) + "\n")
                fd = os.open(p, os.O_WRONLY | os.O_APPEND)
                if os.write(fd, content(seed * 100000 + i, n)) != n:
                    return
                os.close(fd)
            elif op == "rename":
                p = rng.choice(files)
                q = os.path.join(rng.choice(dirs), f"r{i}")
                log.write(json.dumps(["I", "rename", p, q]) + "\n")
                os.rename(p, q)
                files[files.index(p)] = q
            elif op == "unlink":
                p = rng.choice(files)
                log.write(json.dumps(["I", "unlink", p]) + "\n")
                os.unlink(p)
                files.remove(p)
            elif op == "xattr":
                p = rng.choice(files)
                v = f"v{i}"
                log.write(json.dumps(["I", "xattr", p, v]) + "\n")
                os.setxattr(p, "user.k", v.encode())
            elif op == "truncate":
                p = rng.choice(files)
                n = rng.choice([0, 1, 3000, 20000])
                log.write(json.dumps(["I", "truncate", p, n]) + "\n")
                fd = os.open(p, os.O_WRONLY)
                os.ftruncate(fd, n)
                os.close(fd)
            log.write(json.dumps(["D"]) + "\n")
        except OSError:
            return  # the daemon is gone


# ------------------------------------------------------------------- model --
def apply(model, op):
    """model: {path: ("dir",) | ("file", bytes, xattr)}; returns a new model."""
    m = dict(model)
    kind = op[0]
    if kind == "mkdir":
        m[op[1]] = ("dir",)
    elif kind == "create":
        m[op[1]] = ("file", content(op[2], op[3]), None)
    elif kind == "create-empty":
        m[op[1]] = ("file", b"", None)
    elif kind == "append":
        _, data, x = m[op[1]]
        m[op[1]] = ("file", data + content(op[2], op[3]), x)
    elif kind == "rename":
        m[op[2]] = m.pop(op[1])
    elif kind == "unlink":
        del m[op[1]]
    elif kind == "xattr":
        _, data, _ = m[op[1]]
        m[op[1]] = ("file", data, op[2])
    elif kind == "truncate":
        _, data, x = m[op[1]]
        m[op[1]] = ("file", data[: op[2]] + bytes(max(0, op[2] - len(data))), x)
    return m


def read_log(path):
    """Returns (done ops, the op in flight or None)."""
    done, pending = [], None
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break
            rec = json.loads(line)
            if rec[0] == "I":
                pending = rec[1:]
            elif pending is not None:
                done.append(pending)
                pending = None
    return done, pending


def scan(root):
    tree = {}
    for d, subdirs, names in os.walk(root):
        for s in subdirs:
            tree[os.path.join(d, s)] = ("dir",)
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                data = f.read()
            try:
                x = os.getxattr(p, "user.k").decode()
            except OSError:
                x = None
            tree[p] = ("file", data, x)
    return tree


def describe_diff(want, got):
    lines = []
    for p in sorted(set(want) | set(got)):
        w, g = want.get(p), got.get(p)
        if w != g:
            brief = lambda v: None if v is None else (v[0], len(v[1]), v[2]) if v[0] == "file" else v
            lines.append(f"    {p}: expected {brief(w)}, found {brief(g)}")
    return "\n".join(lines[:10])


# ------------------------------------------------------------------ driver --
def main():
    pk, work, rounds, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    mnt, shm, run = (os.path.join(work, d) for d in ("mnt", "shm", "run"))
    os.makedirs(mnt, exist_ok=True)
    rng = random.Random(seed)
    failures = 0

    def start():
        err = open(os.path.join(work, "daemon.err"), "a")
        d = subprocess.Popen([pk, "-f", "--pkram=crash", "--size=1g", f"--shm-dir={shm}",
                              f"--run-dir={run}", mnt], stderr=err)
        for _ in range(200):
            if os.path.ismount(mnt):
                return d
            if d.poll() is not None:
                with open(os.path.join(work, "daemon.err")) as e:
                    raise SystemExit(f"FAIL crash:mount: daemon exited: {e.read()[-2000:]}")
            time.sleep(0.05)
        raise SystemExit("FAIL crash:mount: not mounted after 10 s")

    def verify(name, model, pending):
        nonlocal failures
        got = scan(mnt)
        want = {os.path.join(mnt, k): v for k, v in model.items()}
        candidates = [want]
        if pending:
            alts = [pending] + ([["create-empty"] + pending[1:2]] if pending[0] == "create" else [])
            for alt in alts:
                candidates.append({os.path.join(mnt, k): v for k, v in apply(model, alt).items()})
        if any(got == c for c in candidates):
            print(f"PASS {name}")
        else:
            failures += 1
            print(f"FAIL {name}: tree differs from what was acknowledged")
            print(describe_diff(want, got))

    model = {}
    log = os.path.join(work, "ops.log")
    for r in range(rounds):
        daemon = start()
        open(log, "w").close()
        worker = subprocess.Popen([sys.executable, __file__, "--workload",
                                   os.path.join(mnt, f"r{r}"), log, str(seed * 1000 + r)])
        time.sleep(rng.uniform(0.2, 1.2))
        daemon.kill()
        daemon.wait()
        worker.wait(timeout=30)
        subprocess.run(["umount", "-l", mnt], check=False)
        done, pending = read_log(log)
        for op in done:
            op = [op[0]] + [os.path.relpath(a, mnt) if isinstance(a, str) and a.startswith(mnt)
                            else a for a in op[1:]]
            model = apply(model, op)
        if pending:
            pending = [pending[0]] + [os.path.relpath(a, mnt) if isinstance(a, str) and
                                      a.startswith(mnt) else a for a in pending[1:]]
        daemon = start()
        verify(f"crash:kill-{r}({len(done)} ops acknowledged)", model, pending)
        # Settle the ambiguity: adopt whatever the tree shows for the in-flight op.
        got = {os.path.relpath(k, mnt): v for k, v in scan(mnt).items()}
        model = got
        subprocess.run(["umount", mnt], check=False)
        daemon.wait(timeout=30)
    daemon = start()
    verify("crash:clean-remount", model, None)
    subprocess.run(["umount", mnt], check=False)
    daemon.wait(timeout=30)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    if sys.argv[1] == "--workload":
        workload(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
