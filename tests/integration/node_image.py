#!/usr/bin/env python3
"""Read and damage pkramfs node files for the corruption tests (layout: include/pkramfs/format.h).

Usage: node_image.py COMMAND FILE [ARGS]
  info FILE               print the newest valid superblock as KEY=VALUE lines (shell-sourceable),
                          with the journal's records of the current epoch (jrecs=, jrec_<i>_off=...)
  flip FILE OFFSET        invert every bit of the byte at OFFSET
  set-version FILE COPY V write version V into superblock copy COPY (0/1) and recompute its CRC32C
  set-slot FILE SLOT FIELD V   in both superblock copies, set checkpoint slot SLOT's FIELD
                          (generation first_frame nr_frames bytes) to V and recompute the CRC32Cs;
                          SLOT is cur or other (of the newest copy)
  set-next-ino FILE V     set the current checkpoint image's next inode number to V and
                          recompute the slot's and both superblocks' CRC32Cs
  inode-flags FILE        print "ino flags" for every inode of the current checkpoint image
                          with nonzero flags (format version 2)
  btimes FILE             print "ino sec nsec" for every inode of the current checkpoint image
                          ("ino unknown" where its birth time is not known; format version 3)
  make-v2 FILE            turn a node into what format version 2 wrote: the current checkpoint
                          image written again without birth times (its inode records 104 bytes
                          instead of 120), version 2 in it and in both superblock copies, the
                          slot's length and every CRC32C recomputed
  make-v1 FILE            the same for version 1, for a node that uses nothing of format
                          version 2 (no inode flags in the current checkpoint, no journal record
                          of type 10 to 12)
  selftest                CRC32C of "123456789" must be 0xe3069283
"""
import struct
import sys

FRAME = 2 << 20
SB_MAGIC = 0x3153464D41524B50
JREC_MAGIC = 0x4A524B50
SB_COPY_OFFSET = 4096

# struct pkramfs_superblock (272 bytes; the CRC covers the first 268)
SB_FMT = "<QIIQ16sIIQQQQQQQII" + "QQQQII" * 2 + "Q8QII"
SB_SIZE = struct.calcsize(SB_FMT)
SB_FIELDS = ("magic version sb_bytes sequence uuid frame_size block_size journal_first_frame "
             "journal_frames data_first_frame data_frames data_limit_blocks ckpt_first_frame "
             "max_inodes state current_slot").split()
SB_VERSION_OFF = 8
SB_CRC_OFF = SB_SIZE - 4
JREC_FMT = "<IIQQII"  # magic, crc32c, sequence, epoch, type, payload_bytes
JREC_SIZE = struct.calcsize(JREC_FMT)
JREC_CRC_SKIP = 8     # the CRC covers the header from `sequence` on, then the payload


def _table():
    t = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = _table()


def crc32c(data, crc=0):
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def parse_sb(raw):
    v = struct.unpack(SB_FMT, raw[:SB_SIZE])
    sb = dict(zip(SB_FIELDS, v[:16]))
    sb["slots"] = [dict(zip("generation first_frame nr_frames bytes crc32c".split(), v[16 + 6 * i:21 + 6 * i]))
                   for i in range(2)]
    sb["journal_epoch"] = v[28]
    sb["crc32c"] = v[-1]
    sb["crc_ok"] = crc32c(raw[:SB_CRC_OFF]) == sb["crc32c"]
    return sb


def read(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def newest_sb(path):
    best = None
    for copy in (0, 1):
        raw = read(path, copy * SB_COPY_OFFSET, SB_SIZE)
        if len(raw) < SB_SIZE:
            continue
        sb = parse_sb(raw)
        sb["copy"] = copy
        if sb["magic"] == SB_MAGIC and sb["crc_ok"] and (best is None or sb["sequence"] > best["sequence"]):
            best = sb
    return best


def journal_records(path, sb):
    base = sb["journal_first_frame"] * FRAME
    size = sb["journal_frames"] * FRAME
    j = read(path, base, size)
    off, seq, out = 0, 1, []
    while off + JREC_SIZE <= len(j):
        magic, crc, s, epoch, typ, n = struct.unpack_from(JREC_FMT, j, off)
        nxt = off + JREC_SIZE + ((n + 7) & ~7)
        if magic != JREC_MAGIC or epoch != sb["journal_epoch"] or s != seq or nxt > len(j):
            break
        if crc32c(j[off + JREC_CRC_SKIP:off + JREC_SIZE + n]) != crc:
            break
        out.append((base + off, typ, n))
        off, seq = nxt, seq + 1
    return out


def info(path):
    sb = newest_sb(path)
    if sb is None:
        print("valid=0")
        return
    print("valid=1")
    for k in SB_FIELDS[1:] + ["journal_epoch", "copy"]:
        if k != "uuid":
            print(f"{k}={sb[k]}")
    for i, s in enumerate(sb["slots"]):
        for k, v in s.items():
            print(f"slot{i}_{k}={v}")
        print(f"slot{i}_off={s['first_frame'] * FRAME}")
    cur = sb["slots"][sb["current_slot"]]
    print(f"cur_off={cur['first_frame'] * FRAME}")
    print(f"cur_bytes={cur['bytes']}")
    recs = journal_records(path, sb)
    print(f"jrecs={len(recs)}")
    for i, (off, typ, n) in enumerate(recs):
        print(f"jrec_{i}_off={off}")
        print(f"jrec_{i}_type={typ}")
        print(f"jrec_{i}_payload={n}")


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        if len(b) != 1:
            sys.exit(f"offset {off} is past the end of {path}")
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))


def set_version(path, copy, version):
    at = copy * SB_COPY_OFFSET
    raw = bytearray(read(path, at, SB_SIZE))
    struct.pack_into("<I", raw, SB_VERSION_OFF, version)
    struct.pack_into("<I", raw, SB_CRC_OFF, crc32c(bytes(raw[:SB_CRC_OFF])))
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(raw)


SLOT_OFF = struct.calcsize("<QIIQ16sIIQQQQQQQII")  # slots[0] in the superblock
SLOT_SIZE = struct.calcsize("<QQQQII")
SLOT_FIELD_OFF = {"generation": 0, "first_frame": 8, "nr_frames": 16, "bytes": 24}
CKPT_NEXT_INO_OFF = 40  # in struct pkramfs_ckpt_header


def rewrite_sbs(path, edit):
    """edit(raw bytearray) on every copy, then its CRC32C; a crafted node with valid CRCs."""
    with open(path, "r+b") as f:
        for copy in (0, 1):
            f.seek(copy * SB_COPY_OFFSET)
            raw = bytearray(f.read(SB_SIZE))
            edit(raw)
            struct.pack_into("<I", raw, SB_CRC_OFF, crc32c(bytes(raw[:SB_CRC_OFF])))
            f.seek(copy * SB_COPY_OFFSET)
            f.write(raw)


def set_slot(path, which, field, value):
    sb = newest_sb(path)
    slot = sb["current_slot"] if which == "cur" else 1 - sb["current_slot"]
    at = SLOT_OFF + slot * SLOT_SIZE + SLOT_FIELD_OFF[field]
    rewrite_sbs(path, lambda raw: struct.pack_into("<Q", raw, at, value))


def set_next_ino(path, value):
    sb = newest_sb(path)
    slot = sb["current_slot"]
    s = sb["slots"][slot]
    base = s["first_frame"] * FRAME
    with open(path, "r+b") as f:
        f.seek(base + CKPT_NEXT_INO_OFF)
        f.write(struct.pack("<Q", value))
    crc = crc32c(read(path, base, s["bytes"]))
    at = SLOT_OFF + slot * SLOT_SIZE + 32
    rewrite_sbs(path, lambda raw: struct.pack_into("<I", raw, at, crc))


# struct pkramfs_ckpt_header (80 bytes) and struct pkramfs_ckpt_inode (120 bytes; 104 in format
# versions 1 and 2, which end it before the birth time)
CKPT_HEADER_FMT = "<QIIQQQQ4Q"
CKPT_HEADER_SIZE = struct.calcsize(CKPT_HEADER_FMT)
CKPT_VERSION_OFF = 8
CKPT_BYTES_OFF = 24
CKPT_INODE_V2_FMT = "<QQQQqqqIIIIIIIIQII"
CKPT_INODE_V2_SIZE = struct.calcsize(CKPT_INODE_V2_FMT)
CKPT_BTIME_FMT = "<qII"  # btime_sec, btime_nsec, reserved (version 3)
CKPT_INODE_SIZE = CKPT_INODE_V2_SIZE + struct.calcsize(CKPT_BTIME_FMT)
BTIME_UNKNOWN = 0xFFFFFFFF
S_IFMT, S_IFDIR = 0o170000, 0o040000


def checkpoint_image(path):
    sb = newest_sb(path)
    s = sb["slots"][sb["current_slot"]]
    return sb, read(path, s["first_frame"] * FRAME, s["bytes"])


def walk_inodes(img):
    """(fields, btime or None, start, fixed end, end) of every inode record of an image."""
    version = struct.unpack_from("<I", img, CKPT_VERSION_OFF)[0]
    nr_inodes = struct.unpack_from(CKPT_HEADER_FMT, img)[5]
    off = CKPT_HEADER_SIZE
    for _ in range(nr_inodes):
        start = off
        v = struct.unpack_from(CKPT_INODE_V2_FMT, img, off)
        off += CKPT_INODE_V2_SIZE
        btime = None
        if version >= 3:
            btime = struct.unpack_from(CKPT_BTIME_FMT, img, off)[:2]
            off += struct.calcsize(CKPT_BTIME_FMT)
        fixed = off
        mode, nr_xattrs, nr_items, target_bytes = v[10], v[14], v[15], v[16]
        off += target_bytes
        for _ in range(nr_xattrs):
            nl, vl = struct.unpack_from("<II", img, off)
            off += 8 + nl + vl
        is_dir = mode & S_IFMT == S_IFDIR
        cookies = is_dir and version >= 4  # next cookie, then a cookie per entry
        if cookies:
            off += 8
        for _ in range(nr_items):
            if is_dir:
                c = 8 if cookies else 0
                off += 8 + c + 4 + struct.unpack_from("<I", img, off + 8 + c)[0]
            else:
                off += 32
        yield v, btime, start, fixed, off


def entries_without_cookies(img, fixed, end, v):
    """The variable part of a directory record of version 4 as versions 1-3 wrote it."""
    mode, nr_xattrs, nr_items, target_bytes = v[10], v[14], v[15], v[16]
    off = fixed + target_bytes
    for _ in range(nr_xattrs):
        nl, vl = struct.unpack_from("<II", img, off)
        off += 8 + nl + vl
    out = bytearray(img[fixed:off])
    if mode & S_IFMT != S_IFDIR:
        return bytes(out + img[off:end])
    off += 8  # next cookie
    for _ in range(nr_items):
        nl = struct.unpack_from("<I", img, off + 16)[0]
        out += img[off:off + 8] + img[off + 16:off + 20 + nl]
        off += 20 + nl
    return bytes(out)


def checkpoint_inodes(path):
    """(ino, mode, flags) of every inode in the current checkpoint image."""
    _, img = checkpoint_image(path)
    return [(v[0], v[10], v[17]) for v, _, _, _, _ in walk_inodes(img)]


def checkpoint_btimes(path):
    """(ino, (sec, nsec) or None) of every inode in the current checkpoint image."""
    _, img = checkpoint_image(path)
    return [(v[0], None if b is None or b[1] == BTIME_UNKNOWN else b)
            for v, b, _, _, _ in walk_inodes(img)]


def make_old(path, version):
    sb, img = checkpoint_image(path)
    # File objects (version 5): PKRAMFS_INODE_DATA_OBJECT, journal record OBJECT (13).
    if any(flags & 0x80000000 for _, _, flags in checkpoint_inodes(path)) or \
            any(typ == 13 for _, typ, _ in journal_records(path, sb)):
        sys.exit(f"the node has file objects: version {version} cannot describe it")
    if version < 2:
        if any(flags for _, _, flags in checkpoint_inodes(path)):
            sys.exit("the checkpoint holds inode flags: version 1 cannot describe this node")
        if any(typ >= 10 for _, typ, _ in journal_records(path, sb)):
            sys.exit("the journal holds version-2 records: version 1 cannot describe this node")
    # The records without their birth time, directories without readdir cookies; nothing else
    # changes (no journal record is new in versions 3 and 4).
    out = bytearray(img[:CKPT_HEADER_SIZE])
    for v, _, start, fixed, end in walk_inodes(img):
        out += img[start:start + CKPT_INODE_V2_SIZE] + entries_without_cookies(img, fixed, end, v)
    struct.pack_into("<I", out, CKPT_VERSION_OFF, version)
    struct.pack_into("<Q", out, CKPT_BYTES_OFF, len(out))
    s = sb["slots"][sb["current_slot"]]
    with open(path, "r+b") as f:
        f.seek(s["first_frame"] * FRAME)
        f.write(out)
    crc = crc32c(bytes(out))

    def edit(raw):
        # both copies: the current slot's image changed under whichever copy names it
        for i in (0, 1):
            sa = SLOT_OFF + i * SLOT_SIZE
            if struct.unpack_from("<Q", raw, sa + 8)[0] == s["first_frame"]:
                struct.pack_into("<Q", raw, sa + 24, len(out))
                struct.pack_into("<I", raw, sa + 32, crc)
        struct.pack_into("<I", raw, SB_VERSION_OFF, version)
    rewrite_sbs(path, edit)


def main():
    cmd = sys.argv[1]
    if cmd == "selftest":
        ok = (crc32c(b"123456789") == 0xE3069283 and SB_SIZE == 272 and JREC_SIZE == 32 and
              CKPT_INODE_V2_SIZE == 104 and CKPT_INODE_SIZE == 120 and CKPT_HEADER_SIZE == 80)
        print("ok" if ok else "bad")
        sys.exit(0 if ok else 1)
    if cmd == "info":
        info(sys.argv[2])
    elif cmd == "flip":
        flip(sys.argv[2], int(sys.argv[3]))
    elif cmd == "set-slot":
        set_slot(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "set-next-ino":
        set_next_ino(sys.argv[2], int(sys.argv[3]))
    elif cmd == "inode-flags":
        for ino, _, flags in checkpoint_inodes(sys.argv[2]):
            if flags:
                print(ino, flags)
    elif cmd == "btimes":
        for ino, b in checkpoint_btimes(sys.argv[2]):
            print(ino, "unknown" if b is None else f"{b[0]} {b[1]}")
    elif cmd == "make-v1":
        make_old(sys.argv[2], 1)
    elif cmd == "make-v2":
        make_old(sys.argv[2], 2)
    elif cmd == "set-version":
        set_version(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
