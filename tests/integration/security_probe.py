#!/usr/bin/env python3
"""security_probe.py -- system calls as another user, for security.sh.

    security_probe.py op OP ARGS...        one call as the current user: prints "ok" (a read
                                            prints what it read) or the errno name
    security_probe.py run ROOT UID GID [userns]
                                            as root: reads probe lines "NAME EXPECTED OP ARGS..."
                                            from stdin; for each, snapshots ROOT, runs OP in a
                                            child that dropped to UID:GID (no supplementary
                                            groups, cwd ROOT) and, with userns, then entered a
                                            user namespace of its own as its root (unshare -Ur:
                                            every capability, valid inside it only), snapshots
                                            again. Prints "NAME RESULT" and "NAME:state
                                            unchanged|changed", the differences indented below
                                            a change.

The snapshot is everything a denied operation must not change: every entry's type, mode, owner,
size, link count, symlink target, the contents' sha256 and every xattr.
"""
import ctypes
import errno
import hashlib
import os
import stat
import sys


def call(op, a):
    def write_one(path, flags):
        fd = os.open(path, flags)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)

    try:
        if op == "read":
            with open(a[0], "rb") as f:
                return f.read()[:16].decode("latin1").strip() or "ok"
        elif op == "append":
            write_one(a[0], os.O_WRONLY | os.O_APPEND)
        elif op == "pwrite":
            fd = os.open(a[0], os.O_WRONLY)
            try:
                os.pwrite(fd, b"x", 0)
            finally:
                os.close(fd)
        elif op == "listxattr":
            return ",".join(sorted(os.listxattr(a[0]))) or "none"
        elif op == "trunc-open":
            os.close(os.open(a[0], os.O_WRONLY | os.O_TRUNC))
        elif op == "truncate":
            os.truncate(a[0], int(a[1]))
        elif op == "create":
            os.close(os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        elif op == "mkdir":
            os.mkdir(a[0])
        elif op == "symlink":
            os.symlink(a[0], a[1])
        elif op == "mkfifo":
            os.mkfifo(a[0])
        elif op == "mknod-chr":
            os.mknod(a[0], 0o644 | stat.S_IFCHR, os.makedev(1, 3))
        elif op == "link":
            os.link(a[0], a[1])
        elif op == "rename":
            os.rename(a[0], a[1])
        elif op == "unlink":
            os.unlink(a[0])
        elif op == "rmdir":
            os.rmdir(a[0])
        elif op == "chmod":
            os.chmod(a[0], int(a[1], 8))
        elif op == "chown":
            os.chown(a[0], int(a[1]), int(a[2]))
        elif op == "utime":
            os.utime(a[0], (1, 2))
        elif op == "utime-now":
            os.utime(a[0], None)
        elif op == "setxattr":
            os.setxattr(a[0], a[1], b"v")
        elif op == "getxattr":
            os.getxattr(a[0], a[1])
        elif op == "stat":
            os.stat(a[0])
        elif op == "listdir":
            os.listdir(a[0])
        else:
            return "bad-op:" + op
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def entry(p, root):
    st = os.lstat(p)
    line = f"{os.path.relpath(p, root)} {oct(st.st_mode)} {st.st_uid} {st.st_gid} " \
           f"{st.st_size} {st.st_nlink}"
    if stat.S_ISLNK(st.st_mode):
        return line + " -> " + os.readlink(p)
    if stat.S_ISREG(st.st_mode):
        with open(p, "rb") as f:
            line += " " + hashlib.sha256(f.read()).hexdigest()[:16]
    for x in sorted(os.listxattr(p, follow_symlinks=False)):
        line += f" {x}={os.getxattr(p, x, follow_symlinks=False)!r}"
    return line


def snapshot(root):
    out = [entry(root, root)]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            out.append(entry(os.path.join(dirpath, name), root))
    return out


CLONE_NEWUSER = 0x10000000
PR_SET_DUMPABLE = 4


def enter_own_user_ns(uid, gid):
    """What unshare -Ur does for an unprivileged user: a new user namespace with the caller as
    its root (uid and gid 0 inside map to UID and GID outside)."""
    libc = ctypes.CDLL(None, use_errno=True)
    # setresuid made the process undumpable, which gives its /proc files to root: the maps
    # below must be writable by the process itself.
    if libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 or libc.unshare(CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def as_user(root, uid, gid, op, args, userns=False):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if userns:
                enter_own_user_ns(uid, gid)
            os.chdir(root)
            res = call(op, args)
        except BaseException as e:  # noqa: BLE001 -- report anything, never fall through
            res = "child-error:" + type(e).__name__
        os.write(w, res.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode() or "no-answer"


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "op":
        print(call(sys.argv[2], sys.argv[3:]))
        return 0
    if len(sys.argv) in (5, 6) and sys.argv[1] == "run":
        root, uid, gid = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        userns = sys.argv[5:] == ["userns"]
        for line in sys.stdin:
            f = line.split()
            if not f:
                continue
            name, _expected, op, args = f[0], f[1], f[2], f[3:]
            before = snapshot(root)
            print(name, as_user(root, uid, gid, op, args, userns))
            after = snapshot(root)
            if before == after:
                print(f"{name}:state unchanged")
            else:
                print(f"{name}:state changed")
                for x in sorted(set(before) - set(after)):
                    print("    -", x)
                for x in sorted(set(after) - set(before)):
                    print("    +", x)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
