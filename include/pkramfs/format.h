/* The persistent format of a pkramfs node, described once. docs/format.md explains it.
 *
 * Versioning: any change here (a field's meaning, a layout, a new journal record type or inode
 * flag) bumps PKRAMFS_FORMAT_VERSION, and docs/format.md says what changed. A build reads every
 * version from PKRAMFS_FORMAT_VERSION_OLDEST up to its own and writes only its own: a mount
 * upgrades an older node's superblock at its first write, and the next checkpoint is written
 * in the new version. A newer version is refused with one line, every byte left untouched.
 *   version 1: the first format.
 *   version 2: inode flags (chattr: immutable, append-only, nodump, noatime) in
 *              pkramfs_ckpt_inode.flags (reserved, always 0, in version 1), journal records
 *              FLAGS (10) and RENAME_WHITEOUT (11); O_TMPFILE files, journal record
 *              TMPFILE (12).
 *   version 3: birth time (statx btime) in pkramfs_ckpt_inode.btime_sec/btime_nsec, appended
 *              to the inode record (120 bytes; 104 in versions 1 and 2, whose inodes have
 *              no known birth time). No journal change: every record that makes an inode
 *              (CREATE, TMPFILE, RENAME_WHITEOUT) carries its time, which is its birth time.
 *   version 4: readdir cookies: a directory's items begin with its next cookie (u64), and each
 *              entry carries its cookie after the inode number, so that readdir positions
 *              the kernel holds stay valid across a restore (a live mount taken over by a new
 *              serving process, docs/operations.md "The holder"). Versions 1-3 number a
 *              directory's entries again from PKRAMFS_FIRST_COOKIE in stored order. No
 *              journal change: replay assigns cookies in the order the daemon did.
 *   version 5: file objects (a node on /dev/shm or hugetlbfs): a regular file whose data is
 *              not in the node's blocks but in a file of its own beside the node, named after
 *              its inode number, on the node's object tmpfs (docs/format.md, "File objects").
 *              Such an inode carries PKRAMFS_INODE_DATA_OBJECT in pkramfs_ckpt_inode.flags
 *              and no extents; journal record OBJECT (13) gives a new regular file its object.
 *              The object holds the file's bytes and its size; the node holds the rest.
 *
 * A node is an ordered list of 2 MiB frames (a file on /dev/shm or hugetlbfs, or a pkram.ko
 * node). All fields are little-endian and fixed width; everything refers to other things by
 * byte offset or block number within the node, never by pointer.
 *
 *   frame 0                  two superblock copies (offsets 0 and 4096)
 *   frames [1, 1+J)          the journal
 *   frames [D, D+N)          data blocks (4 KiB), the size= limit applies here
 *   frames [C, ...)          checkpoint images, each a contiguous run of frames
 */
#ifndef PKRAMFS_FORMAT_H
#define PKRAMFS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* Byte order: every field is stored little-endian. The code reads and writes these structs (and
 * the journal's and images' integers, backend/journal/codec.h) in the host's order, so a build
 * for a big-endian machine is refused here rather than writing nodes no other machine can read
 * (export images travel between machines). */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pkramfs stores its format little-endian and builds only for little-endian machines"
#endif

#ifdef __cplusplus
#define PKRAMFS_FORMAT_ASSERT(cond, what) static_assert(cond, what)
#else
#define PKRAMFS_FORMAT_ASSERT(cond, what) _Static_assert(cond, what)
#endif

#define PKRAMFS_SB_MAGIC 0x3153464d41524b50ULL   /* "PKRAMFS1" as little-endian bytes */
#define PKRAMFS_CKPT_MAGIC 0x3154504b43524b50ULL /* "PKRCKPT1" */
#define PKRAMFS_JREC_MAGIC 0x4a524b50U           /* "PKRJ" */
#define PKRAMFS_FORMAT_VERSION 5u
#define PKRAMFS_FORMAT_VERSION_OLDEST 1u /* the oldest version this build still reads */
#define PKRAMFS_SB_COPY_OFFSET 4096u /* second superblock copy */

/* Limits, the kernel's (linux/limits.h), which tmpfs has too: the filesystem refuses more, and
 * the decoder and the checks refuse a record or an image that holds more. */
#define PKRAMFS_NAME_MAX 255u          /* bytes of a directory entry's name (NAME_MAX) */
#define PKRAMFS_SYMLINK_MAX 4095u      /* bytes of a symlink's target (PATH_MAX less its NUL) */
#define PKRAMFS_XATTR_NAME_MAX 255u    /* bytes of an xattr's name (XATTR_NAME_MAX) */
#define PKRAMFS_XATTR_VALUE_MAX 65536u /* bytes of an xattr's value (XATTR_SIZE_MAX) */

enum pkramfs_node_state {
  PKRAMFS_STATE_CLEAN = 1,     /* unmounted cleanly: the current checkpoint is the whole tree */
  PKRAMFS_STATE_DIRTY = 2,     /* mounted, or the daemon died: replay the journal */
  PKRAMFS_STATE_PRESERVED = 3, /* frozen by pkramfs-ctl preserve for a handover */
};

struct pkramfs_ckpt_slot {
  uint64_t generation;  /* 0: slot empty */
  uint64_t first_frame; /* contiguous run of frames holding the image */
  uint64_t nr_frames;
  uint64_t bytes;       /* image length */
  uint32_t crc32c;      /* over the image's `bytes` bytes */
  uint32_t reserved;
};

struct pkramfs_superblock {
  uint64_t magic;
  uint32_t version;
  uint32_t sb_bytes; /* sizeof(struct pkramfs_superblock) */
  uint64_t sequence; /* bumped on every write; the valid copy with the highest one wins */
  uint8_t uuid[16];
  uint32_t frame_size;
  uint32_t block_size;
  uint64_t journal_first_frame;
  uint64_t journal_frames;
  uint64_t data_first_frame;
  uint64_t data_frames;
  uint64_t data_limit_blocks; /* size= in blocks */
  uint64_t ckpt_first_frame;  /* checkpoint frames start here and grow the node */
  uint64_t max_inodes;        /* nr_inodes=, UINT64_MAX for none */
  uint32_t state;             /* enum pkramfs_node_state */
  uint32_t current_slot;      /* 0 or 1 */
  struct pkramfs_ckpt_slot slots[2];
  uint64_t journal_epoch; /* generation of the checkpoint the journal's records follow */
  uint64_t reserved[8];
  uint32_t reserved32;
  uint32_t crc32c; /* over every byte before this field */
};

/* Checkpoint image: this header, then `nr_inodes` inode records, each followed by its variable
 * parts (see docs/format.md). */
struct pkramfs_ckpt_header {
  uint64_t magic;
  uint32_t version;
  uint32_t header_bytes;
  uint64_t generation;
  uint64_t bytes; /* whole image, header included */
  uint64_t nr_inodes;
  uint64_t next_ino;
  uint64_t reserved[4];
};

struct pkramfs_ckpt_inode {
  uint64_t ino;
  uint64_t parent; /* directories: the inode ".." names */
  uint64_t size;
  uint64_t rdev;
  int64_t atime_sec, mtime_sec, ctime_sec;
  uint32_t atime_nsec, mtime_nsec, ctime_nsec;
  uint32_t mode;
  uint32_t uid;
  uint32_t gid;
  uint32_t nlink;
  uint32_t nr_xattrs;
  uint64_t nr_items; /* directories: entries; regular files and long symlinks: extents */
  uint32_t target_bytes; /* symlinks */
  uint32_t flags;        /* PKRAMFS_INODE_* (version 2; 0 in version 1) */
  /* Version 3; versions 1 and 2 end the record here (PKRAMFS_CKPT_INODE_V2_BYTES). */
  int64_t btime_sec;   /* birth time: when the inode was made, the clock of its first ctime */
  uint32_t btime_nsec; /* PKRAMFS_BTIME_UNKNOWN: not known (an inode from a version-1/2 image) */
  uint32_t reserved;   /* 0 */
  /* then: target bytes; xattrs: {u32 name_len, u32 value_len, name, value}; items:
   * extents {u64 file_block, u64 block, u64 count, u32 flags (1 = unwritten), u32 0} or,
   * for a directory, {u64 next_cookie} (version 4) then its entries oldest first: {u64 ino,
   * u64 cookie (version 4), u32 name_len, name}; cookies rise, from PKRAMFS_FIRST_COOKIE, and
   * stay below next_cookie, which is at most PKRAMFS_COOKIE_LIMIT */
};

/* Readdir positions 1 and 2 follow "." and ".."; entry cookies start here and stay below the
 * limit (a position is a 63-bit off_t). */
#define PKRAMFS_FIRST_COOKIE 3u
#define PKRAMFS_COOKIE_LIMIT (1ull << 62)

/* The inode record's length in versions 1 and 2, which have no birth time. */
#define PKRAMFS_CKPT_INODE_V2_BYTES 104u
/* btime_nsec of an inode whose birth time is not known; btime_sec is 0 then. */
#define PKRAMFS_BTIME_UNKNOWN 0xffffffffu

/* Inode flags: the kernel's FS_*_FL values (linux/fs.h, a stable interface), the ones tmpfs
 * lets chattr change (SHMEM_FL_USER_MODIFIABLE). No other bit is ever stored. */
#define PKRAMFS_INODE_IMMUTABLE 0x00000010u /* FS_IMMUTABLE_FL */
#define PKRAMFS_INODE_APPEND 0x00000020u    /* FS_APPEND_FL */
#define PKRAMFS_INODE_NODUMP 0x00000040u    /* FS_NODUMP_FL */
#define PKRAMFS_INODE_NOATIME 0x00000080u   /* FS_NOATIME_FL */
#define PKRAMFS_INODE_FLAGS                                                                  \
  (PKRAMFS_INODE_IMMUTABLE | PKRAMFS_INODE_APPEND | PKRAMFS_INODE_NODUMP | PKRAMFS_INODE_NOATIME)
/* Version 5, in pkramfs_ckpt_inode.flags only (not a chattr flag, never in a FLAGS record): a
 * regular file whose data is its file object, with no extents (nr_items 0). The bit is the
 * kernel's FS_RESERVED_FL, which no chattr sets. */
#define PKRAMFS_INODE_DATA_OBJECT 0x80000000u

/* Journal record header. A record's payload follows it; records are packed back to back from
 * the start of the journal, padded to 8 bytes. A record counts only if its magic, epoch,
 * sequence (one more than the previous) and CRC all hold. */
struct pkramfs_jrec_header {
  uint32_t magic;
  uint32_t crc32c; /* over the header from `sequence` on, and the payload */
  uint64_t sequence;
  uint64_t epoch;
  uint32_t type; /* enum pkramfs_jrec_type */
  uint32_t payload_bytes;
};

enum pkramfs_jrec_type {
  PKRAMFS_JREC_CREATE = 1,   /* parent, ino, mode, uid, gid, rdev, time, name, target, extents */
  PKRAMFS_JREC_LINK = 2,     /* ino, parent, name, time */
  PKRAMFS_JREC_UNLINK = 3,   /* parent, name, time */
  PKRAMFS_JREC_RMDIR = 4,    /* parent, name, time */
  PKRAMFS_JREC_RENAME = 5,   /* parent, name, new parent, new name, flags, time */
  PKRAMFS_JREC_INODE = 6,    /* ino, mode, uid, gid, size, a/m/ctime, extent changes */
  PKRAMFS_JREC_XATTR_SET = 7,    /* ino, ctime, name, value */
  PKRAMFS_JREC_XATTR_REMOVE = 8, /* ino, ctime, name */
  PKRAMFS_JREC_RELEASE = 9,  /* ino: an unlinked inode is closed for good, its blocks go */
  /* Version 2. */
  PKRAMFS_JREC_FLAGS = 10,   /* ino, flags, ctime */
  PKRAMFS_JREC_RENAME_WHITEOUT = 11, /* RENAME's fields, whiteout ino, uid, gid: the rename and
                                        the whiteout (S_IFCHR 0/0) left at the old name */
  PKRAMFS_JREC_TMPFILE = 12, /* ino, parent, mode, uid, gid, time: a regular file with no
                                name (O_TMPFILE), made in directory parent */
  /* Version 5. */
  PKRAMFS_JREC_OBJECT = 13,  /* ino: the regular file just made (CREATE or TMPFILE, no data
                                yet) keeps its data in its file object from now on */
};

/* The layout is the contract: every persistent struct's size and field offsets, pinned. A failing
 * assert means the format changed: follow the versioning rule at the top of this file (and of
 * export_format.h, which pins its structs with the same two macros). */
#define PKRAMFS_FORMAT_AT(type, field, off)                                                         \
  PKRAMFS_FORMAT_ASSERT(offsetof(struct type, field) == (off), #type "." #field " moved")
#define PKRAMFS_FORMAT_SIZE(type, n)                                                                \
  PKRAMFS_FORMAT_ASSERT(sizeof(struct type) == (n), "struct " #type " changed size")

PKRAMFS_FORMAT_SIZE(pkramfs_ckpt_slot, 40);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_slot, generation, 0);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_slot, first_frame, 8);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_slot, nr_frames, 16);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_slot, bytes, 24);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_slot, crc32c, 32);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_slot, reserved, 36);

PKRAMFS_FORMAT_SIZE(pkramfs_superblock, 272);
PKRAMFS_FORMAT_AT(pkramfs_superblock, magic, 0);
PKRAMFS_FORMAT_AT(pkramfs_superblock, version, 8);
PKRAMFS_FORMAT_AT(pkramfs_superblock, sb_bytes, 12);
PKRAMFS_FORMAT_AT(pkramfs_superblock, sequence, 16);
PKRAMFS_FORMAT_AT(pkramfs_superblock, uuid, 24);
PKRAMFS_FORMAT_AT(pkramfs_superblock, frame_size, 40);
PKRAMFS_FORMAT_AT(pkramfs_superblock, block_size, 44);
PKRAMFS_FORMAT_AT(pkramfs_superblock, journal_first_frame, 48);
PKRAMFS_FORMAT_AT(pkramfs_superblock, journal_frames, 56);
PKRAMFS_FORMAT_AT(pkramfs_superblock, data_first_frame, 64);
PKRAMFS_FORMAT_AT(pkramfs_superblock, data_frames, 72);
PKRAMFS_FORMAT_AT(pkramfs_superblock, data_limit_blocks, 80);
PKRAMFS_FORMAT_AT(pkramfs_superblock, ckpt_first_frame, 88);
PKRAMFS_FORMAT_AT(pkramfs_superblock, max_inodes, 96);
PKRAMFS_FORMAT_AT(pkramfs_superblock, state, 104);
PKRAMFS_FORMAT_AT(pkramfs_superblock, current_slot, 108);
PKRAMFS_FORMAT_AT(pkramfs_superblock, slots, 112);
PKRAMFS_FORMAT_AT(pkramfs_superblock, journal_epoch, 192);
PKRAMFS_FORMAT_AT(pkramfs_superblock, reserved, 200);
PKRAMFS_FORMAT_AT(pkramfs_superblock, reserved32, 264);
PKRAMFS_FORMAT_AT(pkramfs_superblock, crc32c, 268);
/* The second copy must not overlap the first. */
PKRAMFS_FORMAT_ASSERT(sizeof(struct pkramfs_superblock) <= PKRAMFS_SB_COPY_OFFSET,
                      "superblock larger than its slot");

PKRAMFS_FORMAT_SIZE(pkramfs_ckpt_header, 80);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_header, magic, 0);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_header, version, 8);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_header, header_bytes, 12);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_header, generation, 16);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_header, bytes, 24);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_header, nr_inodes, 32);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_header, next_ino, 40);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_header, reserved, 48);

PKRAMFS_FORMAT_SIZE(pkramfs_ckpt_inode, 120);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, ino, 0);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, parent, 8);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, size, 16);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, rdev, 24);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, atime_sec, 32);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, mtime_sec, 40);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, ctime_sec, 48);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, atime_nsec, 56);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, mtime_nsec, 60);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, ctime_nsec, 64);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, mode, 68);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, uid, 72);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, gid, 76);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, nlink, 80);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, nr_xattrs, 84);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, nr_items, 88);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, target_bytes, 96);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, flags, 100);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, btime_sec, 104);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, btime_nsec, 112);
PKRAMFS_FORMAT_AT(pkramfs_ckpt_inode, reserved, 116);

PKRAMFS_FORMAT_SIZE(pkramfs_jrec_header, 32);
PKRAMFS_FORMAT_AT(pkramfs_jrec_header, magic, 0);
PKRAMFS_FORMAT_AT(pkramfs_jrec_header, crc32c, 4);
PKRAMFS_FORMAT_AT(pkramfs_jrec_header, sequence, 8);
PKRAMFS_FORMAT_AT(pkramfs_jrec_header, epoch, 16);
PKRAMFS_FORMAT_AT(pkramfs_jrec_header, type, 24);
PKRAMFS_FORMAT_AT(pkramfs_jrec_header, payload_bytes, 28);

#endif
