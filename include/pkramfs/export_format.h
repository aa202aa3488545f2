/* The export image of a pkramfs node (pkramfs-ctl export / import), described once.
 * docs/format.md ("Export images") explains it.
 *
 * A self-describing byte stream, all fields little-endian and fixed width, no alignment
 * between the parts:
 *
 *   struct pkramfs_export_header            what follows, sizes, tree summary; CRC
 *   checkpoint image                        `checkpoint_bytes` bytes (struct pkramfs_ckpt_header,
 *                                           format.h), CRC in the header
 *   nr_extents times:
 *     struct pkramfs_export_extent          which blocks; CRC of this record header
 *     count * 4096 bytes of data            the blocks' contents
 *     struct pkramfs_export_extent_end      CRC32C of the data
 *   struct pkramfs_export_trailer           counts, CRC32C of every byte before it; CRC
 *
 * Version 2 (node format version 5 and its file objects): after the records of the node's
 * blocks come the records of file objects' data, `block` PKRAMFS_EXPORT_OBJECT_BLOCK, in
 * ascending (ino, file_block) order, holes skipped, the last block of a file zero-padded past
 * its size. The inodes they belong to carry PKRAMFS_INODE_DATA_OBJECT in the checkpoint image
 * (whose size is the object's). Version 1 images have none and are read as before.
 *
 * Versioning: any change to a struct here, or to what follows what, bumps
 * PKRAMFS_EXPORT_VERSION and docs/format.md says what changed; an import refuses a version it
 * does not know with one line. The node format inside (the checkpoint image) has its own
 * version, node_format_version, under format.h's rule.
 *
 * Extents are the written data blocks of the tree (regular files and long symlinks), holes and
 * unwritten (fallocated) blocks skipped, cut into records of at most
 * PKRAMFS_EXPORT_MAX_EXTENT_BLOCKS blocks, in ascending block order. Block numbers are the
 * node's own (byte offset in the node / 4096), as in the checkpoint image, so an import
 * rebuilds the node with the same layout.
 */
#ifndef PKRAMFS_EXPORT_FORMAT_H
#define PKRAMFS_EXPORT_FORMAT_H

#include <stdint.h>

#include "format.h" /* byte order check, PKRAMFS_FORMAT_AT/SIZE */

#define PKRAMFS_EXPORT_MAGIC 0x3154525058524b50ULL         /* "PKRXPRT1" as little-endian bytes */
#define PKRAMFS_EXPORT_EXTENT_MAGIC 0x54584552U            /* "REXT" */
#define PKRAMFS_EXPORT_TRAILER_MAGIC 0x31444e4558524b50ULL /* "PKRXEND1" */
#define PKRAMFS_EXPORT_VERSION 2u
#define PKRAMFS_EXPORT_VERSION_OLDEST 1u /* the oldest version this build still reads */
#define PKRAMFS_EXPORT_MAX_EXTENT_BLOCKS 256u /* 1 MiB of data per extent record */
/* pkramfs_export_extent.block of a record of a file object's data (version 2). */
#define PKRAMFS_EXPORT_OBJECT_BLOCK UINT64_MAX

struct pkramfs_export_header {
  uint64_t magic;
  uint32_t version;      /* PKRAMFS_EXPORT_VERSION */
  uint32_t header_bytes; /* sizeof(struct pkramfs_export_header) */
  uint32_t node_format_version; /* PKRAMFS_FORMAT_VERSION of the checkpoint image */
  uint32_t block_size;          /* 4096 */
  uint32_t frame_size;          /* 2 MiB */
  uint32_t flags;               /* 0 */
  uint8_t uuid[16];             /* the exported node's */
  int64_t created_sec;          /* when the export was written (CLOCK_REALTIME) */
  /* The node's geometry and limits: the import makes a node with the same ones. */
  uint64_t data_first_frame;
  uint64_t limit_blocks; /* size= in blocks */
  uint64_t max_inodes;   /* nr_inodes=, UINT64_MAX for none */
  /* The checkpoint image that follows this header. */
  uint64_t checkpoint_generation;
  uint64_t checkpoint_bytes;
  uint32_t checkpoint_crc32c;
  uint32_t reserved0;
  /* Tree summary. */
  uint64_t nr_inodes;        /* inode records in the checkpoint image */
  uint64_t files;            /* regular files */
  uint64_t directories;
  uint64_t other_inodes;     /* symlinks, fifos, devices, sockets */
  uint64_t allocated_blocks; /* blocks the tree holds, unwritten ones included */
  /* The extent records. */
  uint64_t nr_extents;
  uint64_t data_blocks; /* blocks of data in them */
  uint64_t image_bytes; /* the whole export image, header to trailer */
  uint64_t reserved[8];
  uint32_t reserved32;
  uint32_t crc32c; /* over every byte before this field */
};

struct pkramfs_export_extent {
  uint32_t magic; /* PKRAMFS_EXPORT_EXTENT_MAGIC */
  uint32_t count; /* blocks, 1 .. PKRAMFS_EXPORT_MAX_EXTENT_BLOCKS */
  uint64_t ino;        /* the inode these blocks belong to */
  uint64_t file_block; /* where in the file (offset / 4096) */
  uint64_t block;      /* where in the node */
  uint32_t reserved;
  uint32_t crc32c; /* over every byte of this record header before this field */
};

/* Follows the data of an extent record. */
struct pkramfs_export_extent_end {
  uint32_t data_crc32c; /* over the count * 4096 data bytes */
  uint32_t reserved;
};

struct pkramfs_export_trailer {
  uint64_t magic; /* PKRAMFS_EXPORT_TRAILER_MAGIC */
  uint64_t nr_extents;
  uint64_t data_blocks;
  uint64_t stream_bytes; /* bytes before the trailer (its offset) */
  uint64_t reserved[3];
  uint32_t stream_crc32c; /* over every byte before the trailer */
  uint32_t crc32c;        /* over every byte of the trailer before this field */
};

/* The layout, pinned (format.h explains the macros). */
PKRAMFS_FORMAT_SIZE(pkramfs_export_header, 240);
PKRAMFS_FORMAT_AT(pkramfs_export_header, magic, 0);
PKRAMFS_FORMAT_AT(pkramfs_export_header, version, 8);
PKRAMFS_FORMAT_AT(pkramfs_export_header, header_bytes, 12);
PKRAMFS_FORMAT_AT(pkramfs_export_header, node_format_version, 16);
PKRAMFS_FORMAT_AT(pkramfs_export_header, block_size, 20);
PKRAMFS_FORMAT_AT(pkramfs_export_header, frame_size, 24);
PKRAMFS_FORMAT_AT(pkramfs_export_header, flags, 28);
PKRAMFS_FORMAT_AT(pkramfs_export_header, uuid, 32);
PKRAMFS_FORMAT_AT(pkramfs_export_header, created_sec, 48);
PKRAMFS_FORMAT_AT(pkramfs_export_header, data_first_frame, 56);
PKRAMFS_FORMAT_AT(pkramfs_export_header, limit_blocks, 64);
PKRAMFS_FORMAT_AT(pkramfs_export_header, max_inodes, 72);
PKRAMFS_FORMAT_AT(pkramfs_export_header, checkpoint_generation, 80);
PKRAMFS_FORMAT_AT(pkramfs_export_header, checkpoint_bytes, 88);
PKRAMFS_FORMAT_AT(pkramfs_export_header, checkpoint_crc32c, 96);
PKRAMFS_FORMAT_AT(pkramfs_export_header, reserved0, 100);
PKRAMFS_FORMAT_AT(pkramfs_export_header, nr_inodes, 104);
PKRAMFS_FORMAT_AT(pkramfs_export_header, files, 112);
PKRAMFS_FORMAT_AT(pkramfs_export_header, directories, 120);
PKRAMFS_FORMAT_AT(pkramfs_export_header, other_inodes, 128);
PKRAMFS_FORMAT_AT(pkramfs_export_header, allocated_blocks, 136);
PKRAMFS_FORMAT_AT(pkramfs_export_header, nr_extents, 144);
PKRAMFS_FORMAT_AT(pkramfs_export_header, data_blocks, 152);
PKRAMFS_FORMAT_AT(pkramfs_export_header, image_bytes, 160);
PKRAMFS_FORMAT_AT(pkramfs_export_header, reserved, 168);
PKRAMFS_FORMAT_AT(pkramfs_export_header, reserved32, 232);
PKRAMFS_FORMAT_AT(pkramfs_export_header, crc32c, 236);

PKRAMFS_FORMAT_SIZE(pkramfs_export_extent, 40);
PKRAMFS_FORMAT_AT(pkramfs_export_extent, magic, 0);
PKRAMFS_FORMAT_AT(pkramfs_export_extent, count, 4);
PKRAMFS_FORMAT_AT(pkramfs_export_extent, ino, 8);
PKRAMFS_FORMAT_AT(pkramfs_export_extent, file_block, 16);
PKRAMFS_FORMAT_AT(pkramfs_export_extent, block, 24);
PKRAMFS_FORMAT_AT(pkramfs_export_extent, reserved, 32);
PKRAMFS_FORMAT_AT(pkramfs_export_extent, crc32c, 36);

PKRAMFS_FORMAT_SIZE(pkramfs_export_extent_end, 8);
PKRAMFS_FORMAT_AT(pkramfs_export_extent_end, data_crc32c, 0);
PKRAMFS_FORMAT_AT(pkramfs_export_extent_end, reserved, 4);

PKRAMFS_FORMAT_SIZE(pkramfs_export_trailer, 64);
PKRAMFS_FORMAT_AT(pkramfs_export_trailer, magic, 0);
PKRAMFS_FORMAT_AT(pkramfs_export_trailer, nr_extents, 8);
PKRAMFS_FORMAT_AT(pkramfs_export_trailer, data_blocks, 16);
PKRAMFS_FORMAT_AT(pkramfs_export_trailer, stream_bytes, 24);
PKRAMFS_FORMAT_AT(pkramfs_export_trailer, reserved, 32);
PKRAMFS_FORMAT_AT(pkramfs_export_trailer, stream_crc32c, 56);
PKRAMFS_FORMAT_AT(pkramfs_export_trailer, crc32c, 60);

#endif
