#!/usr/bin/python3
"""tmpfile_probe.py -- O_TMPFILE probes for tmpfile.sh, run on a tmpfs and on a pkramfs.

usage: tmpfile_probe.py root DIR [--direct]    as root, in DIR (a fresh mount's root)
       tmpfile_probe.py nobody DIR             as user nobody, in DIR prepared by the root run
       tmpfile_probe.py keep DIR NAME SIZE [--late]
                                               persistence: a tmpfile of SIZE bytes linked as
                                               NAME, another one left open without a name;
                                               prints "ready" and waits for stdin to close
                                               (--late: links NAME only after a line on stdin,
                                               then prints "linked")

Prints one line per probe, `name: result` (`ok [value]` or the errno name), with no inode
numbers, device numbers or absolute times, so two correct runs give identical transcripts.
--direct: the mount has no page cache (--cache=direct), where a shared writable mapping fails
with ENODEV; the mmap probe then reads through a private mapping (run the tmpfs oracle with the
same flag).
"""
import mmap
import os
import stat
import sys
import time

from probe_lib import AT_FDCWD, check, libc, prober

AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
TMP_RW = os.O_TMPFILE | os.O_RDWR
OUT = []


probe = prober(OUT.append)


def link_fd(fd, name):
    """linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH)"""
    check(libc.linkat(fd, b"", AT_FDCWD, name.encode(), AT_EMPTY_PATH))


def link_proc(fd, name):
    """linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, name, AT_SYMLINK_FOLLOW)"""
    check(libc.linkat(AT_FDCWD, f"/proc/self/fd/{fd}".encode(), AT_FDCWD, name.encode(),
                      AT_SYMLINK_FOLLOW))


def attrs(st):
    return (f"{stat.filemode(st.st_mode)} {oct(stat.S_IMODE(st.st_mode))} nlink={st.st_nlink} "
            f"uid={st.st_uid} gid={st.st_gid} size={st.st_size} blocks={st.st_blocks}")


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def times(path):
    st = os.stat(path)
    return st.st_mtime_ns, st.st_ctime_ns


def tick():
    time.sleep(0.02)  # coarse clocks tick every few ms


def freed(before, timeout=5.0):
    """statfs until the blocks and inodes in use are back to `before` (FUSE sends RELEASE and
    FORGET after close() returns); returns the difference left"""
    end = time.monotonic() + timeout
    while True:
        now = os.statvfs(".")
        diff = (before.f_bfree - now.f_bfree, before.f_ffree - now.f_ffree)
        if diff == (0, 0) or time.monotonic() > end:
            return diff
        time.sleep(0.02)


def as_root(direct):
    os.umask(0o022)
    os.mkdir("sub", 0o755)
    with open("f", "w") as f:
        f.write("file")

    def basic(where):
        listing = sorted(os.listdir(where))
        before = times(where)
        tick()
        fd = os.open(where, TMP_RW, 0o666)
        try:
            st0 = attrs(os.fstat(fd))
            os.write(fd, b"hello tmpfile")
            data = os.pread(fd, 100, 0)
            return (st0, attrs(os.fstat(fd)), data, sorted(os.listdir(where)) == listing,
                    times(where) == before)
        finally:
            os.close(fd)

    probe("basic-root", lambda: basic("."))
    probe("basic-subdir", lambda: basic("sub"))

    def with_umask(mask, mode):
        old = os.umask(mask)
        try:
            fd = os.open(".", TMP_RW, mode)
        finally:
            os.umask(old)
        try:
            return attrs(os.fstat(fd))
        finally:
            os.close(fd)

    probe("umask-077", lambda: with_umask(0o077, 0o666))
    probe("umask-0", lambda: with_umask(0, 0o777))
    probe("mode-suid-sgid", lambda: with_umask(0o022, 0o6755))
    probe("wronly", lambda: os.close(os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o600)))

    # A setgid directory hands its group on (inode_init_owner), root keeps S_ISGID.
    os.mkdir("sg", 0o755)
    os.chown("sg", 0, 4321)
    os.chmod("sg", 0o2777)

    def in_sgid_dir():
        fd = os.open("sg", TMP_RW, 0o2755)
        try:
            return attrs(os.fstat(fd))
        finally:
            os.close(fd)

    probe("sgid-dir", in_sgid_dir)

    def data_ops():
        fd = os.open(".", TMP_RW, 0o644)
        try:
            os.ftruncate(fd, 3 * 4096)
            if direct:
                os.pwrite(fd, b"mapped!", 4096)
                m = mmap.mmap(fd, 3 * 4096, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
                mapped = m[4096:4103]
            else:
                m = mmap.mmap(fd, 3 * 4096, flags=mmap.MAP_SHARED)
                m[4096:4103] = b"mapped!"
                m.flush()
                mapped = os.pread(fd, 7, 4096)
            m.close()
            os.fchmod(fd, 0o600)
            os.fchown(fd, 1, 2)
            os.posix_fallocate(fd, 0, 64 * 1024)
            os.setxattr(fd, "user.k", b"v")
            os.fsync(fd)
            return (mapped, attrs(os.fstat(fd)), os.getxattr(fd, "user.k"),
                    os.lseek(fd, 0, os.SEEK_END))
        finally:
            os.close(fd)

    probe("data-ops", data_ops)

    def link_empty_path():
        fd = os.open(".", TMP_RW, 0o640)
        try:
            os.write(fd, b"linked by AT_EMPTY_PATH")
            before = times(".")
            tick()
            link_fd(fd, "l-empty")
            os.write(fd, b", then more")
            return (attrs(os.fstat(fd)), attrs(os.stat("l-empty")), read_file("l-empty"),
                    times(".") != before, "l-empty" in os.listdir("."))
        finally:
            os.close(fd)

    probe("linkat-empty-path", link_empty_path)

    def link_proc_fd():
        fd = os.open(".", TMP_RW, 0o640)
        try:
            os.write(fd, b"linked through /proc")
            link_proc(fd, "sub/l-proc")
            link_fd(fd, "l-proc-second")  # a second name: I_LINKABLE is gone, nlink is not 0
            return attrs(os.fstat(fd)), read_file("sub/l-proc"), read_file("l-proc-second")
        finally:
            os.close(fd)

    probe("linkat-proc", link_proc_fd)

    def link_existing():
        fd = os.open(".", TMP_RW, 0o640)
        try:
            link_fd(fd, "f")
        finally:
            os.close(fd)

    probe("linkat-existing-name", link_existing)

    def excl(how):
        fd = os.open(".", TMP_RW | os.O_EXCL, 0o640)
        try:
            os.write(fd, b"x")
            how(fd, "l-excl")
        finally:
            os.close(fd)

    probe("excl-linkat-empty-path", lambda: excl(link_fd))
    probe("excl-linkat-proc", lambda: excl(link_proc))
    probe("excl-exists", lambda: os.path.exists("l-excl"))

    def relink_after_unlink():
        fd = os.open(".", TMP_RW, 0o640)
        try:
            link_fd(fd, "r")
            os.unlink("r")
            link_fd(fd, "r2")
        finally:
            os.close(fd)

    probe("relink-after-unlink", relink_after_unlink)
    probe("relink-exists", lambda: os.path.exists("r2"))

    def closed_then_linked_via_opath():
        fd = os.open(".", TMP_RW, 0o640)
        path_fd = os.open(f"/proc/self/fd/{fd}", os.O_PATH)
        os.write(fd, b"kept by an O_PATH descriptor")
        os.close(fd)
        try:
            link_fd(path_fd, "l-opath")
        finally:
            os.close(path_fd)
        return read_file("l-opath")

    probe("closed-linkat-opath", closed_then_linked_via_opath)

    def in_removed_dir():
        os.mkdir("gone")
        dfd = os.open("gone", os.O_RDONLY | os.O_DIRECTORY)
        os.rmdir("gone")
        try:
            fd = os.open(".", TMP_RW, 0o600, dir_fd=dfd)
        finally:
            os.close(dfd)
        try:
            os.write(fd, b"from a removed directory")
            link_fd(fd, "sub/l-from-gone")
            return attrs(os.fstat(fd)), read_file("sub/l-from-gone")
        finally:
            os.close(fd)

    probe("removed-dir", in_removed_dir)

    probe("on-file", lambda: os.open("f", TMP_RW, 0o600))
    probe("on-missing", lambda: os.open("missing", TMP_RW, 0o600))
    probe("on-missing-parent", lambda: os.open("missing/dir", TMP_RW, 0o600))
    probe("rdonly", lambda: os.open(".", os.O_TMPFILE | os.O_RDONLY, 0o600))
    probe("with-o-creat", lambda: os.open(".", TMP_RW | os.O_CREAT, 0o600))
    probe("dir-rdwr-without-tmpfile", lambda: os.open(".", os.O_DIRECTORY | os.O_RDWR))
    os.symlink("sub", "sub-link")
    probe("via-symlink", lambda: os.close(os.open("sub-link", TMP_RW, 0o600)))
    probe("via-symlink-nofollow",
          lambda: os.open("sub-link", TMP_RW | os.O_NOFOLLOW, 0o600))

    def statfs_accounting():
        os.sync()
        before = os.statvfs(".")
        fd = os.open(".", TMP_RW, 0o600)
        try:
            os.write(fd, b"z" * (1 << 20))
            os.fsync(fd)  # the page cache's data reaches the daemon
            now = os.statvfs(".")
            held = (before.f_bfree - now.f_bfree, before.f_ffree - now.f_ffree)
        finally:
            os.close(fd)
        return held, freed(before)

    probe("statfs-while-open-and-after-close", statfs_accounting)

    # For the nobody run: a world-writable directory, a root-only one, a setgid one whose
    # group nobody is not in.
    os.mkdir("pub", 0o777)
    os.chmod("pub", 0o1777)
    os.mkdir("rootonly", 0o755)
    os.mkdir("sg-nobody", 0o777)
    os.chown("sg-nobody", 0, 4321)
    os.chmod("sg-nobody", 0o2777)


def as_nobody():
    os.umask(0o022)

    def make_in(where, mode=0o640):
        fd = os.open(where, TMP_RW, mode)
        try:
            os.write(fd, b"nobody's")
            return attrs(os.fstat(fd))
        finally:
            os.close(fd)

    probe("nobody-pub", lambda: make_in("pub"))
    probe("nobody-rootonly", lambda: make_in("rootonly"))
    probe("nobody-root", lambda: make_in("."))
    probe("nobody-sgid-dir", lambda: make_in("sg-nobody", 0o2755))

    def nobody_link(how, name):
        fd = os.open("pub", TMP_RW, 0o640)
        try:
            os.write(fd, b"linked by nobody")
            how(fd, name)
            return attrs(os.stat(name)), read_file(name)
        finally:
            os.close(fd)

    probe("nobody-linkat-proc", lambda: nobody_link(link_proc, "pub/n-proc"))
    probe("nobody-linkat-empty-path", lambda: nobody_link(link_fd, "pub/n-empty"))
    probe("nobody-linkat-into-rootonly", lambda: nobody_link(link_proc, "rootonly/n"))


def keep(name, size, late):
    """A tmpfile linked as NAME with SIZE bytes, half of them written before the link, and one
    left without a name, both open until stdin closes. `late`: both stay unnamed until a line
    arrives on stdin, then all of NAME's data is there before linkat names it."""
    pattern = (bytes(range(256)) * (size // 256 + 1))[:size]
    fd = os.open(".", TMP_RW, 0o640)
    os.write(fd, pattern[:size // 2])
    if not late:
        link_fd(fd, name)
    os.write(fd, pattern[size // 2:])
    os.fsync(fd)
    anon = os.open(".", TMP_RW, 0o640)
    os.write(anon, b"a" * size)
    os.fsync(anon)
    print("ready", flush=True)
    if late:
        sys.stdin.readline()
        link_proc(fd, name)
        print("linked", flush=True)
    sys.stdin.read()
    os.close(anon)
    os.close(fd)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] in ("root", "nobody"):
        os.chdir(sys.argv[2])
        if sys.argv[1] == "root":
            as_root("--direct" in sys.argv[3:])
        else:
            as_nobody()
        print("\n".join(OUT))
        return 0
    if len(sys.argv) in (5, 6) and sys.argv[1] == "keep":
        os.chdir(sys.argv[2])
        keep(sys.argv[3], int(sys.argv[4]), sys.argv[5:] == ["--late"])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
