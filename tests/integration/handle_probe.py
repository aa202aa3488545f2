#!/usr/bin/env python3
"""handle_probe.py -- file handles (name_to_handle_at, open_by_handle_at), for handles.sh.

    handle_probe.py save ROOT FILE PATH...   the handle of each ROOT/PATH, one hex line each
    handle_probe.py open ROOT FILE           open each saved handle through ROOT (the mount
                                             point: its descriptor is the mount_fd); prints
                                             "PATH RESULT": the first line of a file, "dir:" and
                                             the path the kernel connected a directory to
                                             (relative to ROOT), or the errno name
"""
import ctypes
import errno
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
MAX_HANDLE_SZ = 128
AT_FDCWD = -100


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ)]


def save(root, out, paths):
    with open(out, "w") as f:
        for p in paths:
            fh = FileHandle()
            fh.handle_bytes = MAX_HANDLE_SZ
            mount_id = ctypes.c_int()
            if libc.name_to_handle_at(AT_FDCWD, os.path.join(root, p).encode(), ctypes.byref(fh),
                                      ctypes.byref(mount_id), 0) != 0:
                e = ctypes.get_errno()
                print(p, "save:" + errno.errorcode.get(e, str(e)))
                continue
            data = bytes(fh.f_handle[:fh.handle_bytes])
            f.write(f"{p} {fh.handle_type} {data.hex()}\n")


def open_all(root, saved):
    mount_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    with open(saved) as f:
        for line in f:
            p, htype, hexdata = line.split()
            data = bytes.fromhex(hexdata)
            fh = FileHandle()
            fh.handle_bytes = len(data)
            fh.handle_type = int(htype)
            ctypes.memmove(fh.f_handle, data, len(data))
            fd = libc.open_by_handle_at(mount_fd, ctypes.byref(fh), os.O_RDONLY)
            if fd < 0:
                e = ctypes.get_errno()
                print(p, errno.errorcode.get(e, str(e)))
                continue
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
                if os.path.isdir(f"/proc/self/fd/{fd}"):
                    print(p, "dir:" + os.path.relpath(target, root))
                else:
                    print(p, os.read(fd, 100).decode(errors="replace").split("\n")[0] or "empty")
            finally:
                os.close(fd)
    os.close(mount_fd)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "save":
        save(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) == 4 and sys.argv[1] == "open":
        open_all(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
