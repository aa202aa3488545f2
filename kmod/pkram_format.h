/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * pkram_format.h - persistent layout of a pkram region (format version 3).
 *
 * This is the only description of the on-region format; it is private to
 * pkram.ko (and the VM test, which corrupts it on purpose).  All fields are
 * little-endian (x86-64 only for now).
 *
 * Version 3: two copies of the metadata, copy c at c * copy_size:
 *
 *   +0                  struct pkram_sb               (PKRAM_SB_SIZE)
 *   +node_table_off     struct pkram_node_rec [max_nodes]
 *   +owner_map_off      struct pkram_owner    [nr_frames]
 *   +chunk_crc_off      __le32 chunk_crc[nr_chunks]
 *   ... zero up to copy_size (a multiple of 4096)
 *   copy 1 at copy_size, the same again
 *   ... zero up to meta_frames * frame_size
 *   frames meta_frames .. nr_frames-1: data frames owned by nodes
 *
 * The "tables" of a copy are [node_table_off, owner_map_off + 8 * nr_frames),
 * cut into chunks of PKRAM_CHUNK_SIZE bytes (the last one shorter);
 * chunk_crc[k] is the CRC32C of chunk k and tables_crc the CRC32C of the
 * chunk_crc array, so a change costs the CRC of the chunks it touched.
 * sb_crc is CRC32C (seed ~0, final xor ~0) over the PKRAM_SB_SIZE bytes of
 * the superblock with sb_crc taken as 0.
 *
 * A commit writes the copy with the lower seq (tables, chunk CRCs, then its
 * superblock with seq one above the other copy's): until its superblock is
 * complete the other copy is intact, so a torn commit leaves one valid
 * copy.  pkram.ko then writes the other copy too, so that at rest both hold
 * the same state and damage to one copy loses nothing.  A load uses the
 * valid copy with the highest seq and rewrites the other one.
 *
 * Compatibility rules (the region outlives the module across kexec):
 *  - A module reads every version up to its own and writes only its own;
 *    it refuses a version it does not know, writing nothing.
 *  - Version 2 (one copy: the superblock, node table and owner map at the
 *    offsets of copy 0, tables_crc over [node_table_off, meta_size), seq and
 *    the fields after it zero) is adopted and rewritten as version 3; the
 *    frames the second copy needs beyond version 2's meta_frames must be free.
 *    Version 1 (dense nodes only) is a valid version 2 region.
 *  - A field keeps its offset and meaning forever; new fields take reserved
 *    (zero) space and a new version number.  The sizes below are asserted.
 */
#ifndef PKRAM_FORMAT_H
#define PKRAM_FORMAT_H

#include <linux/types.h>

#define PKRAM_MAGIC		0x3142534d41524b50ULL	/* "PKRAMSB1" in LE byte order */
#define PKRAM_FORMAT_VERSION	3
/* Version 2 had one metadata copy; it is adopted and upgraded. */
#define PKRAM_FORMAT_VERSION_ONE_COPY	2
/* Version 1 had dense nodes only; a dense node is a valid version 2 node. */
#define PKRAM_FORMAT_VERSION_DENSE	1
#define PKRAM_SB_SIZE		4096
#define PKRAM_MAX_NODES		256
#define PKRAM_CHUNK_SIZE	4096
#define PKRAM_NR_COPIES		2

/* pkram_owner.node values; other values are node slot + 1. */
#define PKRAM_OWNER_FREE	0u
#define PKRAM_OWNER_META	0xffffffffu

struct pkram_sb {
	__le64 magic;		/*  0: PKRAM_MAGIC */
	__le32 version;		/*  8: PKRAM_FORMAT_VERSION */
	__le32 sb_crc;		/* 12 */
	__le64 region_start;	/* 16: physical address */
	__le64 region_size;	/* 24: bytes */
	__le32 frame_size;	/* 32: PKRAM_FRAME_SIZE */
	__le32 nr_frames;	/* 36: region_size / frame_size */
	__le32 meta_frames;	/* 40: frames holding metadata */
	__le32 max_nodes;	/* 44: PKRAM_MAX_NODES */
	__le64 node_table_off;	/* 48: from the start of the copy */
	__le64 owner_map_off;	/* 56: from the start of the copy */
	__le64 meta_size;	/* 64: v2: end of the owner map; v3: 2 * copy_size */
	__le32 tables_crc;	/* 72: v2: CRC of the tables; v3: CRC of chunk_crc[] */
	__le32 copy;		/* 76: v3: index of this copy (0 or 1); v2: 0 */
	__le64 next_generation;	/* 80: given to the next created node */
	__le64 load_count;	/* 88: times the region was adopted */
	/* version 3 */
	__le64 seq;		/* 96: commit sequence number of this copy */
	__le64 copy_size;	/* 104: bytes of one copy; copy 1 starts here */
	__le64 chunk_crc_off;	/* 112: from the start of the copy */
	__le32 chunk_size;	/* 120: PKRAM_CHUNK_SIZE */
	__le32 nr_chunks;	/* 124: chunks of the tables */
	__u8   reserved[PKRAM_SB_SIZE - 128];
};

struct pkram_node_rec {
	char   name[128];	/*   0: NUL-terminated, zero-padded */
	__le32 state;		/* 128: PKRAM_STATE_* */
	__le32 nr_frames;	/* 132: span: node indices 0..nr_frames-1 */
	__le64 generation;	/* 136 */
	__u8   reserved[112];	/* 144: zero */
};

/*
 * Owner of one frame: which node and at which index inside that node.  A
 * node index below the span that no frame claims is a hole (sparse node).
 */
struct pkram_owner {
	__le32 node;		/* PKRAM_OWNER_* or node slot + 1 */
	__le32 index;		/* frame index within the node */
};

/* Offsets inside a copy, and its size, for a region of @n frames. */
#define PKRAM_NODE_TABLE_OFF	((__u64)PKRAM_SB_SIZE)
#define PKRAM_OWNER_MAP_OFF	(PKRAM_NODE_TABLE_OFF + PKRAM_MAX_NODES * 256ULL)
#define PKRAM_TABLES_END(n)	(PKRAM_OWNER_MAP_OFF + 8ULL * (n))
#define PKRAM_NR_CHUNKS(n)	((PKRAM_TABLES_END(n) - PKRAM_NODE_TABLE_OFF + \
				  PKRAM_CHUNK_SIZE - 1) / PKRAM_CHUNK_SIZE)
#define PKRAM_CHUNK_CRC_OFF(n)	PKRAM_TABLES_END(n)
#define PKRAM_COPY_SIZE(n)	((PKRAM_CHUNK_CRC_OFF(n) + 4ULL * PKRAM_NR_CHUNKS(n) + \
				  4095) & ~4095ULL)

_Static_assert(sizeof(struct pkram_sb) == PKRAM_SB_SIZE, "pkram_sb size");
_Static_assert(__builtin_offsetof(struct pkram_sb, load_count) == 88, "v2 fields moved");
_Static_assert(__builtin_offsetof(struct pkram_sb, seq) == 96, "v3 fields moved");
_Static_assert(__builtin_offsetof(struct pkram_sb, nr_chunks) == 124, "v3 fields moved");
_Static_assert(sizeof(struct pkram_node_rec) == 256, "pkram_node_rec size");
_Static_assert(sizeof(struct pkram_owner) == 8, "pkram_owner size");
_Static_assert(PKRAM_OWNER_MAP_OFF == 69632, "owner map offset (v2 and v3 copy 0)");

#endif /* PKRAM_FORMAT_H */
