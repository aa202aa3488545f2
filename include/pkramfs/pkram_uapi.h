/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * pkram_uapi.h - user space interface of pkram.ko (/dev/pkram).
 *
 * pkram.ko reserves 2 MiB physical frames of a memmap= region under named
 * nodes that survive kexec.  Protocol: open /dev/pkram (root only), bind the
 * fd to a node with PKRAM_IOC_ATTACH, then RESIZE / POPULATE / PUNCH /
 * PRESERVE / UNPRESERVE, pread() and mmap(MAP_SHARED) the node's frames in
 * node order.  Closing the fd detaches; the node stays until
 * PKRAM_IOC_DESTROY.  See docs/pkram-module.md.
 *
 * A node is like a sparse file of frames: node index i (byte offset
 * i * 2 MiB of the fd) either holds a frame or is a hole.  The span
 * (nr_frames) is one past the highest index ever given a frame (or set by
 * RESIZE).  pread() of a hole returns zeros; touching a hole through a
 * mapping raises SIGBUS.
 *
 * All structures use fixed-width types and have the same layout on 32-bit
 * and 64-bit user space.  Reserved fields must be zero (else -EINVAL).
 */
#ifndef PKRAMFS_PKRAM_UAPI_H
#define PKRAMFS_PKRAM_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

/*
 * Changes only with an incompatible change of this interface (user space refuses any other
 * version); an addition (a new flag or ioctl) keeps it, and an older module refuses the new
 * flag with EINVAL or the new ioctl with ENOTTY.
 */
#define PKRAM_UAPI_VERSION	2

#define PKRAM_DEVICE_PATH	"/dev/pkram"
#define PKRAM_FRAME_SHIFT	21
#define PKRAM_FRAME_SIZE	(1u << PKRAM_FRAME_SHIFT)	/* 2 MiB */
#define PKRAM_MAX_SPAN		(1u << 20)	/* node indices: 2 TiB of offsets */

/* Node names: 1..127 bytes of [A-Za-z0-9._-], not starting with '.'. */
#define PKRAM_NAME_MAX		127
#define PKRAM_NAME_LEN		(PKRAM_NAME_MAX + 1)	/* incl. NUL */

/* Node states (pkram_node_info.state). */
#define PKRAM_STATE_FREE	0	/* never reported for a live node */
#define PKRAM_STATE_ACTIVE	1
#define PKRAM_STATE_PRESERVED	2

/* pkram_attach.flags */
#define PKRAM_ATTACH_CREATE	0x1u	/* create the node if absent */
#define PKRAM_ATTACH_EXCL	0x2u	/* with CREATE: fail if it exists */
/*
 * READER: bind a file opened O_RDONLY (else EBADF) to an existing node for
 * pread() only, beside the file that holds the node: mmap is EACCES, RESIZE,
 * POPULATE, PUNCH, PRESERVE, UNPRESERVE and SET_POLICY are EBADF, DESTROY of
 * the node is EBUSY while a reader is attached.  Not with CREATE or EXCL.
 * What a daemon lends for reading its node (pkramfs-ctl export).  Added
 * without a version change: an older module refuses the flag with EINVAL.
 */
#define PKRAM_ATTACH_READER	0x4u
#define PKRAM_ATTACH_FLAGS	(PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL | \
				 PKRAM_ATTACH_READER)

struct pkram_version {
	__u32 uapi_version;	/* out: PKRAM_UAPI_VERSION */
	__u32 format_version;	/* out: on-region format version */
	__u32 frame_size;	/* out: bytes per frame */
	__u32 max_nodes;	/* out: node table slots */
	__u32 nr_frames;	/* out: frames in the region, incl. metadata */
	__u32 data_frames;	/* out: frames usable by nodes */
	__u32 free_frames;	/* out: data frames not owned by any node */
	__u32 nr_nodes;		/* out: live nodes */
	__u64 region_start;	/* out: physical address */
	__u64 region_size;	/* out: bytes */
};

struct pkram_attach {
	char  name[PKRAM_NAME_LEN];	/* in: NUL-terminated */
	__u32 flags;			/* in: PKRAM_ATTACH_* */
	__u32 state;			/* out: PKRAM_STATE_* */
	__u32 nr_frames;		/* out: current size in frames */
	__u32 created;			/* out: 1 if this call created it */
	__u64 generation;		/* out: see pkram_node_info */
};

/* RESIZE: set the span; indices added get frames, indices dropped lose theirs. */
struct pkram_resize {
	__u32 nr_frames;	/* in: new span in frames */
	__u32 reserved;		/* in: must be 0 */
};

/* POPULATE / PUNCH: node indices [first, first + count). */
struct pkram_range {
	__u32 first;		/* in */
	__u32 count;		/* in: >= 1, first + count <= PKRAM_MAX_SPAN */
};

struct pkram_name {
	char name[PKRAM_NAME_LEN];	/* in: NUL-terminated */
};

/*
 * Result of STAT and one entry of LIST.  generation is unique per node
 * creation within a region (a destroyed and re-created node gets a new one).
 */
struct pkram_node_info {
	char  name[PKRAM_NAME_LEN];	/* in (STAT) / out (LIST) */
	__u32 state;			/* out: PKRAM_STATE_* */
	__u32 nr_frames;		/* out: span */
	__u64 generation;		/* out */
	__u32 attached;			/* out: 1 if an fd is attached */
	__u32 populated;		/* out: frames held (nr_frames minus holes) */
};

/*
 * LIST: entries points to an array of capacity pkram_node_info.  On return
 * count holds the number of live nodes.  If count > capacity the call fails
 * with E2BIG, count still holds the needed number and no entry is written.
 * capacity == 0 is a valid way to ask for the count.
 */
struct pkram_list {
	__u64 entries;		/* in: user pointer to struct pkram_node_info[] */
	__u32 capacity;		/* in: number of entries available */
	__u32 count;		/* out: number of live nodes */
};

/*
 * SET_POLICY: where POPULATE and RESIZE take frames from, for this open
 * file (like a task's mempolicy; not stored in the region).  A region can
 * span several NUMA nodes; each frame's node is that of its physical
 * address.  Added after PKRAM_UAPI_VERSION 2 without changing it: a module
 * without it answers ENOTTY (docs/pkram-module.md, "Compatibility").
 */
#define PKRAM_POLICY_DEFAULT	0	/* lowest free frame, any node */
#define PKRAM_POLICY_BIND	1	/* frames on nid only; ENOSPC when it has none free */
#define PKRAM_POLICY_PREFERRED	2	/* frames on nid first, then any node */
#define PKRAM_POLICY_INTERLEAVE	3	/* the region's nodes in turn, frame by frame */

struct pkram_policy {
	__u32 mode;		/* in: PKRAM_POLICY_* */
	__u32 nid;		/* in: NUMA node for BIND and PREFERRED, else 0 */
	__u64 reserved;		/* in: must be 0 */
};

#define PKRAM_IOC_MAGIC		0xE7

#define PKRAM_IOC_VERSION	_IOR(PKRAM_IOC_MAGIC, 0x00, struct pkram_version)
#define PKRAM_IOC_ATTACH	_IOWR(PKRAM_IOC_MAGIC, 0x01, struct pkram_attach)
#define PKRAM_IOC_RESIZE	_IOW(PKRAM_IOC_MAGIC, 0x02, struct pkram_resize)
#define PKRAM_IOC_PRESERVE	_IO(PKRAM_IOC_MAGIC, 0x03)
#define PKRAM_IOC_UNPRESERVE	_IO(PKRAM_IOC_MAGIC, 0x04)
#define PKRAM_IOC_DESTROY	_IOW(PKRAM_IOC_MAGIC, 0x05, struct pkram_name)
#define PKRAM_IOC_LIST		_IOWR(PKRAM_IOC_MAGIC, 0x06, struct pkram_list)
#define PKRAM_IOC_STAT		_IOWR(PKRAM_IOC_MAGIC, 0x07, struct pkram_node_info)
#define PKRAM_IOC_POPULATE	_IOW(PKRAM_IOC_MAGIC, 0x08, struct pkram_range)
#define PKRAM_IOC_PUNCH		_IOW(PKRAM_IOC_MAGIC, 0x09, struct pkram_range)
#define PKRAM_IOC_SET_POLICY	_IOW(PKRAM_IOC_MAGIC, 0x0a, struct pkram_policy)

#endif /* PKRAMFS_PKRAM_UAPI_H */
