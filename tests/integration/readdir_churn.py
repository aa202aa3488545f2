#!/usr/bin/env python3
"""Reads a large directory while its entries change, after xfstests generic/736.

    readdir_churn.py renames DIR [N]    N files (default 5000); readdir(3) through os.scandir,
                                         each entry renamed to TEMPFILE and back as it is read
    readdir_churn.py unlinks DIR [N]    N files; getdents64 with small buffers (lseek-free, as
                                         the kernel resumes from its own position) while every
                                         other entry not yet read is unlinked, one already read
                                         is replaced by a new file of the same name, and new
                                         names are created

Every check is against POSIX readdir as tmpfs implements it: no name may be returned twice,
every name returned must have existed during the read, and every name that existed for the
whole read must be returned. Prints one line per problem and exits 1 if there was one."""
import ctypes
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_getdents64 = 217  # x86_64


def getdents(fd, size):
    buf = ctypes.create_string_buffer(size)
    n = libc.syscall(SYS_getdents64, fd, buf, size)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    names, pos = [], 0
    while pos < n:
        _ino, _off, reclen, _typ = struct.unpack_from("QqHB", buf.raw, pos)
        name = buf.raw[pos + 19:pos + reclen].split(b"\0", 1)[0].decode()
        names.append(name)
        pos += reclen
    return names


def create(d, names):
    for name in names:
        os.close(os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY, 0o644))


def renames(d, n):
    create(d, [str(i) for i in range(1, n + 1)])
    seen, problems = {}, []
    with os.scandir(d) as it:
        for e in it:
            seen[e.name] = seen.get(e.name, 0) + 1
            if len(seen) > 3 * n or seen[e.name] > 1:
                problems.append(f"{e.name} returned twice ({sum(seen.values())} names read "
                                f"so far, {n} in the directory)")
                break
            os.rename(os.path.join(d, e.name), os.path.join(d, "TEMPFILE"))
            os.rename(os.path.join(d, "TEMPFILE"), os.path.join(d, e.name))
    missing = n - len([k for k in seen if k != "TEMPFILE"])
    if not problems and missing:
        problems.append(f"{missing} of {n} names never returned")
    return problems, sum(seen.values())


def unlinks(d, n):
    initial = [f"f{i:05d}" for i in range(n)]
    create(d, initial)
    removed, replaced, created = set(), set(), []
    seen, problems = {}, []
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        k = 0
        while True:
            names = getdents(fd, 1024 + (k % 7) * 512)
            if not names:
                break
            if sum(seen.values()) > 3 * n:
                problems.append(f"more than {3 * n} names read from {n} files: the read "
                                "does not end")
                break
            for name in names:
                if name in (".", ".."):
                    continue
                seen[name] = seen.get(name, 0) + 1
                if seen[name] > 1:
                    problems.append(f"{name} returned twice")
            # unlink names not read yet (every other one of the next 64 in creation order),
            # replace one that was read by a new file of the same name, and create a new one
            for name in initial[k * 64:(k + 1) * 64:2]:
                if name not in seen and name not in removed:
                    os.unlink(os.path.join(d, name))
                    removed.add(name)
            again = [x for x in names if x.startswith("f") and x not in replaced]
            if again:
                os.unlink(os.path.join(d, again[0]))
                create(d, again[:1])
                replaced.add(again[0])
            new = f"n{k:05d}"
            create(d, [new])
            created.append(new)
            k += 1
    finally:
        os.close(fd)
    ever = set(initial) | set(created)
    problems += [f"{name} never existed" for name in seen if name not in ever]
    stable = [x for x in initial if x not in removed and x not in seen]
    if stable:
        problems.append(f"{len(stable)} names present all along never returned, e.g. {stable[:3]}")
    if not replaced:
        problems.append("the test replaced no name (too few entries?)")
    return problems[:20], sum(seen.values())


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("renames", "unlinks"):
        sys.exit(__doc__)
    n = int(sys.argv[3]) if len(sys.argv) == 4 else 5000
    problems, count = globals()[sys.argv[1]](sys.argv[2], n)
    for p in problems:
        print(p)
    print(f"# {sys.argv[1]}: {count} names read, {n} files")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
