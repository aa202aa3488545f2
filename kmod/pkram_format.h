/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * pkram_format.h - persistent layout of a pkram region (format version 2).
 *
 * This is the only description of the on-region format; it is private to
 * pkram.ko (and the VM test, which corrupts it on purpose).  All fields are
 * little-endian (x86-64 only for now).
 *
 *   offset 0                 struct pkram_sb               (PKRAM_SB_SIZE)
 *   offset node_table_off    struct pkram_node_rec [max_nodes]
 *   offset owner_map_off     struct pkram_owner    [nr_frames]
 *   ... zero padding up to meta_frames * frame_size
 *   frames meta_frames .. nr_frames-1: data frames owned by nodes
 *
 * sb_crc is CRC32C (seed ~0, final xor ~0) over the PKRAM_SB_SIZE bytes of
 * the superblock with sb_crc taken as 0.  tables_crc is CRC32C over
 * [node_table_off, meta_size).  Both are rewritten after every change.
 */
#ifndef PKRAM_FORMAT_H
#define PKRAM_FORMAT_H

#include <linux/types.h>

#define PKRAM_MAGIC		0x3142534d41524b50ULL	/* "PKRAMSB1" in LE byte order */
#define PKRAM_FORMAT_VERSION	2
/* Version 1 had dense nodes only; a dense node is a valid version 2 node. */
#define PKRAM_FORMAT_VERSION_DENSE	1
#define PKRAM_SB_SIZE		4096
#define PKRAM_MAX_NODES		256

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
	__le64 node_table_off;	/* 48 */
	__le64 owner_map_off;	/* 56 */
	__le64 meta_size;	/* 64: end of the owner map */
	__le32 tables_crc;	/* 72 */
	__le32 reserved0;	/* 76 */
	__le64 next_generation;	/* 80: given to the next created node */
	__le64 load_count;	/* 88: times the region was adopted */
	__u8   reserved[PKRAM_SB_SIZE - 96];
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

#endif /* PKRAM_FORMAT_H */
