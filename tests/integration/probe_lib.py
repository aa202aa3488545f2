"""What the syscall probe scripts share (semantics_ops.py, tmpfile_probe.py, inode_flags.py).

A probe runs one operation and writes one transcript line, "NAME: ok [RESULT]" or "NAME: ERRNO",
so that the transcripts of a pkramfs mount and of a kernel tmpfs can be compared line by line.
"""
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4


def check(rc):
    """Raise the OSError of errno when a libc call returned non-zero."""
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def en(e):
    """An OSError's errno by name (ENOENT), as the transcripts show it."""
    return errno.errorcode.get(e.errno, str(e.errno))


def prober(sink):
    """A probe(name, fn) that hands each transcript line to sink (print, or a list's append)."""

    def probe(name, fn):
        try:
            r = fn()
        except OSError as e:
            sink(f"{name}: {en(e)}")
        except Exception as e:  # noqa: BLE001 -- report, never crash the transcript
            sink(f"{name}: EXC {type(e).__name__} {e}")
        else:
            sink(f"{name}: ok" if r is None else f"{name}: ok {r}")

    return probe


def renameat2(a, b, flags):
    check(libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), ctypes.c_uint(flags)))
