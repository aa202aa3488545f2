// SPDX-License-Identifier: GPL-2.0
/*
 * pkram.ko - named sets of 2 MiB physical frames that survive kexec.
 *
 * The module manages a physical range reserved on the kernel command line
 * (memmap=SIZE$START) and given to it as region=SIZE@START.  The first
 * frame(s) of the range hold a superblock, a node table and a per-frame
 * owner map (kmod/pkram_format.h); the other frames are handed out to named
 * nodes.  User space attaches a /dev/pkram fd to a node, populates and
 * punches its frames (a node is sparse, like a file with holes) and mmaps
 * them.  After kexec the next kernel's pkram.ko adopts the same
 * region and the same nodes.  Interface: include/pkramfs/pkram_uapi.h.
 *
 * The region gets struct pages (ZONE_DEVICE, like device-dax) and user
 * mappings are filled at fault time the way device-dax maps them on that
 * kernel (devmap PTEs and 2 MiB PMDs before 6.15, refcounted PTEs after: see
 * "kernel versions" below), so get_user_pages() works on them: FUSE copies
 * replies from the daemon's buffers that way.
 *
 * The metadata is kept in kernel memory (the "working" copy) and written to
 * the two on-region copies by pkram_commit() (pkram_format.h); nothing
 * changes the working copy without a commit before pkram_lock is released.
 *
 * Locking: pkram_lock protects everything in struct pkram_region, all of
 * the region's metadata and pkram_file.slot.  It is never held across
 * copy_{from,to}_user() because ->mmap() and ->fault() take it under
 * mmap_lock, nor across the zeroing of a frame (2 MiB), so that faults of
 * other nodes do not wait for it.  pkram_file.op_lock serializes the
 * operations that change the frames of the fd's node (populate, punch,
 * resize, state, detach) and is taken before pkram_lock: between the steps
 * of one such operation the node keeps its attacher, its state and its
 * holes.  Lock order: op_lock, pkram_lock, i_mmap_rwsem (unmap_mapping_range).
 *
 * A frame leaves a node in this order: its PTEs are zapped, it is taken out
 * of the node (owner map free, in-memory state TRANSIT, so that nobody else
 * can get it), the metadata is committed, then it is zeroed without the
 * lock, and only then does it become allocatable - unless a page of it
 * still has a reference (get_user_pages by O_DIRECT, vmsplice, ...): such a
 * frame is quarantined (PINNED) until the reference is gone.  A frame
 * enters a node the other way round: picked (TRANSIT), zeroed without the
 * lock, then given to the node and committed.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/capability.h>
#include <linux/crc32c.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/ioport.h>
#include <linux/kobject.h>
#include <linux/memremap.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/mutex.h>
#include <linux/nodemask.h>
#include <linux/numa.h>
#include <linux/page_ref.h>
#include <linux/pseudo_fs.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>
#include <linux/bitmap.h>
#include <linux/utsname.h>
#include <linux/version.h>

#include <pkramfs/pkram_uapi.h>
#include "pkram_format.h"

/*
 * ---- kernel versions: every version check of the module is here ----------
 *
 * Supported are the kernel series tools/vm-test runs, Debian's:
 *   6.1   bookworm
 *   6.12  bookworm-backports and trixie
 *   7.2   sid (built with sid's gcc-16)
 * A build for any other series stops here (DKMS skips it already:
 * BUILD_EXCLUSIVE_KERNEL in packaging/dkms.conf.in, which must list the same
 * series).  Porting: build with "make PKRAM_UNTESTED=1"; the module then
 * builds but refuses to load unless given untested_kernel=1, and is
 * supported once every scenario of tools/vm-test passes on that kernel.
 *
 * What differs between them, and what each offers:
 *
 * PKRAM_REFCOUNTED_PTES - how a page of the region is mapped into user
 * space so that get_user_pages() works on it (FUSE, O_DIRECT, vmsplice,
 * io_uring need that):
 *   before 6.15: a devmap PTE, vmf_insert_mixed() with a pfn_t of
 *     PFN_DEV | PFN_MAP; the PTE holds no page reference (vm_normal_page()
 *     is NULL for pte_devmap), GUP takes one through get_dev_pagemap().
 *   6.15 on: device-dax maps ZONE_DEVICE pages as ordinary refcounted
 *     pages with vmf_insert_page_mkwrite() (new in 6.15); pte_devmap and
 *     pfn_t are gone from 6.16/6.17 on, and vmf_insert_mixed() would make a
 *     special PTE that GUP refuses.  Each PTE holds a reference and a
 *     mapcount, dropped when it is zapped (unmap_mapping_range() returns
 *     after the TLB flush has put them), so page_extra_refs() after a zap
 *     counts the same as before.  folio->mapping stays NULL: a dirty PTE
 *     zapped then dirties nothing (noop_dirty_folio), as no address_space
 *     of ours has a_ops->dirty_folio.
 *
 * PKRAM_PMD_MAPPINGS - 2 MiB mappings of a whole frame (vm_ops->huge_fault):
 *   6.1:  huge_fault(vmf, enum page_entry_size), vmf_insert_pfn_pmd(vmf,
 *         pfn_t, write) makes a devmap PMD (GUP: follow_devmap_pmd()).
 *   6.6 on: huge_fault(vmf, unsigned int order), same vmf_insert_pfn_pmd().
 *   Both only call ->huge_fault for a VMA that is DAX (vma_is_dax(): S_DAX
 *   on vm_file->f_mapping->host, which is our anon inode, as device-dax
 *   does with its dax inode): 6.1 refuses VM_SPECIAL VMAs otherwise
 *   (VM_DONTEXPAND is one), and only a DAX (or PFNMAP/MIXEDMAP) VMA is
 *   "special huge", whose PMDs zap_huge_pmd() and the PMD split clear
 *   without touching the pages' rmap (a plain file VMA would have
 *   page_remove_rmap() called on pages never rmapped).  file_inode() stays
 *   the /dev/pkram character device, so vma_is_fsdax() is false.
 *   6.15 on: a PMD of a pfn is special (GUP refuses it); refcounted PMDs
 *     need vmf_insert_folio_pmd() and PMD-order folios (pgmap
 *     vmemmap_shift), a different reference model: not done, 4 KiB PTEs.
 *
 * vm_flags: vm_flags_set() from 6.3 on (vm_flags became read-only).
 */
#if defined(PKRAM_FORCE_UNTESTED) /* tools/vm-test's q-refuse: as if untested */ || \
    !(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0) && LINUX_VERSION_CODE < KERNEL_VERSION(6, 2, 0)) && \
    !(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0) && LINUX_VERSION_CODE < KERNEL_VERSION(6, 13, 0)) && \
    !(LINUX_VERSION_CODE >= KERNEL_VERSION(7, 2, 0) && LINUX_VERSION_CODE < KERNEL_VERSION(7, 3, 0))
#ifndef PKRAM_UNTESTED
#error "pkram.ko supports the kernel series 6.1, 6.12 and 7.2 (see docs/operations.md); build with PKRAM_UNTESTED=1 only to port it"
#endif
#define PKRAM_TESTED_KERNEL 0
#else
#define PKRAM_TESTED_KERNEL 1
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
#define PKRAM_REFCOUNTED_PTES 1
#define PKRAM_PMD_MAPPINGS 0
#else
#include <linux/pfn_t.h>
#define PKRAM_REFCOUNTED_PTES 0
#define PKRAM_PMD_MAPPINGS (IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE) && IS_ENABLED(CONFIG_FS_DAX))
#endif

static inline void pkram_vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

/* map the region's page at @pfn at vmf->address (4 KiB) */
static vm_fault_t pkram_insert_pte(struct vm_fault *vmf, unsigned long pfn)
{
#if PKRAM_REFCOUNTED_PTES
	return vmf_insert_page_mkwrite(vmf, pfn_to_page(pfn),
				       vmf->flags & FAULT_FLAG_WRITE);
#else
	return vmf_insert_mixed(vmf->vma, vmf->address,
				__pfn_to_pfn_t(pfn, PFN_DEV | PFN_MAP));
#endif
}

static bool pmd = true;
module_param(pmd, bool, 0444);
MODULE_PARM_DESC(pmd, "map whole frames with 2 MiB page table entries where the kernel allows (default: yes)");

static bool untested_kernel;
module_param(untested_kernel, bool, 0444);
MODULE_PARM_DESC(untested_kernel, "load even on a kernel series not tested (module built with PKRAM_UNTESTED=1)");

static char *region;
module_param(region, charp, 0444);
MODULE_PARM_DESC(region, "reserved physical range SIZE@START (as memmap=SIZE$START)");

static bool format;
module_param(format, bool, 0444);
MODULE_PARM_DESC(format, "format the region if its superblock is damaged or of an unknown version");

#define FRAME_PAGES	(PKRAM_FRAME_SIZE >> PAGE_SHIFT)
#define NO_FRAME	U32_MAX
#define PKRAM_FS_MAGIC	0x4d524b50	/* "PKRM", the private pseudo filesystem */

/*
 * In-memory state of a frame (pk.fstate), next to what the owner map says.
 * A frame is allocatable only if the owner map says free and it is IDLE.
 */
enum {
	FRAME_IDLE,	/* as the owner map says: free, a node's, or metadata */
	FRAME_TRANSIT,	/* free in the owner map, in no node, and being zeroed by
			 * one operation (entering or leaving a node): no one else
			 * maps, reads or allocates it */
	FRAME_PINNED,	/* free in the owner map, in no node, zeroed, but a page
			 * had a reference when it left: not allocatable until
			 * reclaim_pinned() finds it unreferenced */
};

/* In-memory companion of a node slot. */
struct pkram_node {
	u32 *frames;		/* region frame of each node index, NO_FRAME for a hole */
	u32 cap;		/* entries allocated in @frames */
	u32 populated;		/* indices that hold a frame */
	bool attached;
	u32 readers;		/* files attached with PKRAM_ATTACH_READER */
};

/* Per open file of /dev/pkram. */
struct pkram_file {
	struct mutex op_lock;	/* see "Locking" at the top */
	int slot;		/* attached node slot or -1 */
	bool reader;		/* attached with PKRAM_ATTACH_READER: pread() only */
	atomic_t nr_maps;	/* live VMAs of this file */
	u32 policy;		/* PKRAM_POLICY_*, under pkram_lock */
	int nid;		/* BIND, PREFERRED: the node; INTERLEAVE: the last one used */
};

struct pkram_region {
	phys_addr_t start;
	u64 size;
	u32 nr_frames;
	u32 meta_frames;	/* version 3: both copies */
	u64 copy_size;		/* bytes of one metadata copy */
	u64 tables_size;	/* node table + owner map */
	u32 nr_chunks;		/* PKRAM_CHUNK_SIZE chunks of the tables */
	u64 v2_meta_size;	/* version 2 geometry, for adopting such a region */
	u32 v2_meta_frames;
	u32 free_frames;	/* free in the owner map and IDLE */
	u32 pinned_frames;	/* FRAME_PINNED */
	unsigned long pmd_faults;	/* 2 MiB mappings made (debugfs) */
	bool adopted;
	struct resource *res;
	struct dev_pagemap pgmap;
	void *base;
	/* the working metadata; written to the region by pkram_commit() */
	struct pkram_sb *sb;
	void *tables;			/* node table, then owner map */
	struct pkram_node_rec *recs;	/* in @tables */
	struct pkram_owner *owners;	/* in @tables */
	unsigned long *stale[PKRAM_NR_COPIES];	/* chunks the copy lacks */
	u64 seq;		/* seq of the newest copy */
	int newest;		/* which copy has it */
	u8 *fstate;		/* FRAME_* of each frame */
	struct pkram_node nodes[PKRAM_MAX_NODES];
	u16 *frame_nid;		/* NUMA node of each frame, from its physical address */
	nodemask_t numa_nodes;	/* nodes holding data frames; fixed after load */
	struct vfsmount *mnt;	/* private pseudo filesystem for @inode */
	struct inode *inode;	/* its i_mapping is every /dev/pkram file's f_mapping */
	struct kobject *kobj;
	struct dentry *debugfs;
};

static struct pkram_region pk;
static DEFINE_MUTEX(pkram_lock);

/* ---- metadata helpers ---------------------------------------------- */

static void *frame_addr(u32 frame)
{
	return pk.base + ((size_t)frame << PKRAM_FRAME_SHIFT);
}

static phys_addr_t frame_phys(u32 frame)
{
	return pk.start + ((phys_addr_t)frame << PKRAM_FRAME_SHIFT);
}

static u32 rec_state(int slot)
{
	return le32_to_cpu(pk.recs[slot].state);
}

static u32 rec_frames(int slot)
{
	return le32_to_cpu(pk.recs[slot].nr_frames);
}

static u32 data_frames(void)
{
	return pk.nr_frames - pk.meta_frames;
}

static bool frame_free(u32 f)
{
	return le32_to_cpu(pk.owners[f].node) == PKRAM_OWNER_FREE &&
	       pk.fstate[f] == FRAME_IDLE;
}

/* CRC32C of the superblock with sb_crc read as zero. */
static u32 sb_crc(const struct pkram_sb *sb)
{
	static const u8 zero[4];
	const size_t head = offsetof(struct pkram_sb, sb_crc);
	const size_t tail = offsetof(struct pkram_sb, region_start);
	u32 crc;

	crc = crc32c(~0U, sb, head);
	crc = crc32c(crc, zero, sizeof(zero));
	crc = crc32c(crc, (const u8 *)sb + tail, PKRAM_SB_SIZE - tail);
	return ~crc;
}

static u32 crc_of(const void *p, size_t len)
{
	return ~crc32c(~0U, p, len);
}

static size_t chunk_len(u32 k)
{
	return min_t(u64, PKRAM_CHUNK_SIZE, pk.tables_size - (u64)k * PKRAM_CHUNK_SIZE);
}

/* Metadata copy @c in the region. */
static void *copy_base(int c)
{
	return pk.base + c * pk.copy_size;
}

/* The working bytes [p, p + len) changed: both copies need those chunks. */
static void mark_dirty(const void *p, size_t len)
{
	size_t off = (const u8 *)p - (const u8 *)pk.tables;
	u32 first = off / PKRAM_CHUNK_SIZE, last = (off + len - 1) / PKRAM_CHUNK_SIZE;
	int c;

	for (c = 0; c < PKRAM_NR_COPIES; c++)
		bitmap_set(pk.stale[c], first, last - first + 1);
}

static void mark_all_dirty(void)
{
	int c;

	for (c = 0; c < PKRAM_NR_COPIES; c++)
		bitmap_fill(pk.stale[c], pk.nr_chunks);
}

static void rec_dirty(int slot)
{
	mark_dirty(&pk.recs[slot], sizeof(pk.recs[slot]));
}

/*
 * Write the working metadata into copy @c as sequence @seq: the chunks it
 * lacks and their CRCs, then (after a write barrier) its superblock.  Until
 * the superblock is complete, copy @c fails its CRC checks and the other
 * copy, which is not touched, is the valid one.
 */
static void write_copy(int c, u64 seq)
{
	void *dst = copy_base(c);
	__le32 *crcs = dst + PKRAM_CHUNK_CRC_OFF(pk.nr_frames);
	const void *src;
	u32 k;

	for_each_set_bit(k, pk.stale[c], pk.nr_chunks) {
		src = pk.tables + (size_t)k * PKRAM_CHUNK_SIZE;
		memcpy(dst + PKRAM_NODE_TABLE_OFF + (size_t)k * PKRAM_CHUNK_SIZE, src,
		       chunk_len(k));
		crcs[k] = cpu_to_le32(crc_of(src, chunk_len(k)));
	}
	bitmap_zero(pk.stale[c], pk.nr_chunks);
	pk.sb->seq = cpu_to_le64(seq);
	pk.sb->copy = cpu_to_le32(c);
	pk.sb->tables_crc = cpu_to_le32(crc_of(crcs, 4 * pk.nr_chunks));
	pk.sb->sb_crc = cpu_to_le32(sb_crc(pk.sb));
	/*
	 * The region is ordinary write-back memory; x86 keeps stores in program
	 * order (and kexec keeps the caches), so a crash or kexec in the middle
	 * sees a prefix of these stores.  The barrier keeps the compiler (and
	 * any weakly ordered string stores) from moving the superblock before
	 * the tables.
	 */
	wmb();
	memcpy(dst, pk.sb, PKRAM_SB_SIZE);
	wmb();
}

/*
 * Seal the metadata after a change (pkram_lock held): write the older copy,
 * which then becomes the newest; then the other one, so that both hold the
 * same state and a damaged copy loses nothing.
 */
static void pkram_commit(void)
{
	int i, c;

	for (i = 0; i < PKRAM_NR_COPIES; i++) {
		c = 1 - pk.newest;
		write_copy(c, pk.seq + 1);
		pk.seq++;
		pk.newest = c;
	}
}

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* @name is a PKRAM_NAME_LEN buffer that must hold a NUL-terminated name. */
static bool name_valid(const char *name)
{
	size_t i, len = strnlen(name, PKRAM_NAME_LEN);

	if (len == 0 || len > PKRAM_NAME_MAX || name[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (!name_char_ok(name[i]))
			return false;
	return true;
}

static int find_node(const char *name)
{
	int i;

	for (i = 0; i < PKRAM_MAX_NODES; i++)
		if (rec_state(i) != PKRAM_STATE_FREE &&
		    !strncmp(pk.recs[i].name, name, PKRAM_NAME_LEN))
			return i;
	return -ENOENT;
}

static void set_owner(u32 frame, u32 node, u32 index)
{
	pk.owners[frame].node = cpu_to_le32(node);
	pk.owners[frame].index = cpu_to_le32(index);
	mark_dirty(&pk.owners[frame], sizeof(pk.owners[frame]));
}

/* ---- geometry, format, adopt ---------------------------------------- */

static int parse_region(void)
{
	char *p;

	if (!region || !*region) {
		pr_err("missing parameter region=SIZE@START\n");
		return -EINVAL;
	}
	pk.size = memparse(region, &p);
	if (*p != '@')
		goto bad;
	pk.start = memparse(p + 1, &p);
	if (*p && *p != '\n')
		goto bad;
	if (!pk.size || !IS_ALIGNED(pk.size, PKRAM_FRAME_SIZE) ||
	    !IS_ALIGNED(pk.start, PKRAM_FRAME_SIZE) ||
	    pk.start + pk.size < pk.start ||
	    (pk.size >> PKRAM_FRAME_SHIFT) >= U32_MAX) {
		pr_err("region=%s: size and start must be non-zero multiples of 2 MiB\n",
		       region);
		return -EINVAL;
	}
	pk.nr_frames = pk.size >> PKRAM_FRAME_SHIFT;
	pk.tables_size = PKRAM_TABLES_END(pk.nr_frames) - PKRAM_NODE_TABLE_OFF;
	pk.nr_chunks = PKRAM_NR_CHUNKS(pk.nr_frames);
	pk.copy_size = PKRAM_COPY_SIZE(pk.nr_frames);
	pk.meta_frames = DIV_ROUND_UP(PKRAM_NR_COPIES * pk.copy_size, PKRAM_FRAME_SIZE);
	pk.v2_meta_size = PKRAM_TABLES_END(pk.nr_frames);
	pk.v2_meta_frames = DIV_ROUND_UP(pk.v2_meta_size, PKRAM_FRAME_SIZE);
	if (pk.meta_frames >= pk.nr_frames) {
		pr_err("region=%s is too small: metadata alone needs %u frames\n",
		       region, pk.meta_frames);
		return -EINVAL;
	}
	return 0;
bad:
	pr_err("region=%s: expected SIZE@START, e.g. 64M@0x40000000\n", region);
	return -EINVAL;
}

static int add_reserved(struct resource *res, void *arg)
{
	*(u64 *)arg += resource_size(res);
	return 0;
}

/* The range must be reserved firmware memory, never System RAM. */
static int check_reserved(void)
{
	u64 end = pk.start + pk.size - 1, covered = 0;

	if (region_intersects(pk.start, pk.size, IORESOURCE_SYSTEM_RAM,
			      IORES_DESC_NONE) != REGION_DISJOINT) {
		pr_err("region=%s overlaps System RAM; reserve it with memmap=SIZE$START\n",
		       region);
		return -EINVAL;
	}
	walk_iomem_res_desc(IORES_DESC_RESERVED, IORESOURCE_MEM, pk.start, end,
			    &covered, add_reserved);
	if (covered != pk.size) {
		pr_err("region=%s is not (entirely) reserved memory; boot with memmap=SIZE$START\n",
		       region);
		return -EINVAL;
	}
	return 0;
}

/*
 * References to a page of the region besides the one every page holds.
 * MEMORY_DEVICE_GENERIC pages keep a reference count of 1 while idle (only
 * DEVICE_PRIVATE/COHERENT/FS_DAX/P2PDMA pages start at 0; still so in 7.2),
 * and the devmap PTEs and PMDs pkram_vm_fault() and pkram_pmd_fault()
 * insert before 6.15 take none (vm_normal_page() returns NULL for them, so
 * zapping them puts none), while the refcounted PTEs from 6.15 on take one
 * each and give it back when zapped; either way, after the PTEs of a frame
 * are zapped any count above 1 is get_user_pages() (FOLL_GET or FOLL_PIN) or a
 * get_page() by someone holding the page: a pipe (vmsplice), O_DIRECT or
 * io_uring I/O in flight, ...  Checked at load (pkram_init) because a port
 * to a kernel that maps these pages with references must revisit this.
 */
static int page_extra_refs(unsigned long pfn)
{
	return page_ref_count(pfn_to_page(pfn)) - 1;
}

static bool frame_referenced(u32 frame)
{
	unsigned long pfn = PHYS_PFN(frame_phys(frame));
	u32 i;

	for (i = 0; i < FRAME_PAGES; i++)
		if (page_extra_refs(pfn + i))
			return true;
	return false;
}

static int pkram_fs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, PKRAM_FS_MAGIC) ? 0 : -ENOMEM;
}

/*
 * No .owner: a module reference taken by its own mount would make the
 * module impossible to unload; the mount ends in pkram_exit().
 */
static struct file_system_type pkram_fs_type = {
	.name = "pkram",
	.init_fs_context = pkram_fs_init_fs_context,
	.kill_sb = kill_anon_super,
};

/*
 * One address_space for every /dev/pkram file, whatever device inode it was
 * opened through (devtmpfs, a mknod elsewhere): mmap() links a VMA into
 * vm_file->f_mapping and unmap_mapping_range() only finds VMAs there, so
 * zapping a node's frames must see every file's mappings.  DRM shares an
 * anon inode's mapping between its device nodes the same way.
 */
static int init_mapping(void)
{
	pk.mnt = kern_mount(&pkram_fs_type);
	if (IS_ERR(pk.mnt))
		return PTR_ERR(pk.mnt);
	pk.inode = alloc_anon_inode(pk.mnt->mnt_sb);
	if (IS_ERR(pk.inode)) {
		kern_unmount(pk.mnt);
		return PTR_ERR(pk.inode);
	}
	/* 2 MiB mappings: ->huge_fault is only called for DAX VMAs (top of file) */
	if (PKRAM_PMD_MAPPINGS && pmd)
		pk.inode->i_flags |= S_DAX;
	return 0;
}

static void exit_mapping(void)
{
	iput(pk.inode);
	kern_unmount(pk.mnt);
}

/* Zap every user mapping of node indices [first, end) (of every node). */
static void zap_range(u32 first, u32 end)
{
	if (end > first)
		unmap_mapping_range(pk.inode->i_mapping,
				    (loff_t)first << PKRAM_FRAME_SHIFT,
				    (loff_t)(end - first) << PKRAM_FRAME_SHIFT, 1);
}

static int map_region(void)
{
	int ret = check_reserved();

	if (ret)
		return ret;
	pk.res = request_mem_region(pk.start, pk.size, "pkram");
	if (!pk.res) {
		pr_err("region=%s is busy\n", region);
		return -EBUSY;
	}
	pk.pgmap.type = MEMORY_DEVICE_GENERIC;
	pk.pgmap.range.start = pk.start;
	pk.pgmap.range.end = pk.start + pk.size - 1;
	pk.pgmap.nr_range = 1;
	pk.base = memremap_pages(&pk.pgmap, NUMA_NO_NODE);	/* WB, direct map */
	if (IS_ERR(pk.base)) {
		ret = PTR_ERR(pk.base);
		release_mem_region(pk.start, pk.size);
		pr_err("cannot map region=%s (%d)\n", region, ret);
		return ret;
	}
	if (page_extra_refs(PHYS_PFN(pk.start))) {
		pr_err("a fresh page of the region has reference count %d, not 1: pin detection would be wrong\n",
		       page_ref_count(pfn_to_page(PHYS_PFN(pk.start))));
		memunmap_pages(&pk.pgmap);
		release_mem_region(pk.start, pk.size);
		return -EINVAL;
	}
	return 0;
}

static void unmap_region(void)
{
	memunmap_pages(&pk.pgmap);
	release_mem_region(pk.start, pk.size);
}

/* The working metadata and per-frame state. */
static int alloc_working(void)
{
	int c;

	pk.sb = kzalloc(PKRAM_SB_SIZE, GFP_KERNEL);
	pk.tables = kvzalloc(pk.tables_size, GFP_KERNEL);
	pk.fstate = kvzalloc(pk.nr_frames, GFP_KERNEL);
	for (c = 0; c < PKRAM_NR_COPIES; c++)
		pk.stale[c] = bitmap_zalloc(pk.nr_chunks, GFP_KERNEL);
	if (!pk.sb || !pk.tables || !pk.fstate || !pk.stale[0] || !pk.stale[1])
		return -ENOMEM;
	pk.recs = pk.tables;
	pk.owners = pk.tables + (PKRAM_OWNER_MAP_OFF - PKRAM_NODE_TABLE_OFF);
	return 0;
}

static void free_working(void)
{
	int c;

	for (c = 0; c < PKRAM_NR_COPIES; c++)
		bitmap_free(pk.stale[c]);
	kvfree(pk.fstate);
	kvfree(pk.tables);
	kfree(pk.sb);
}

/*
 * The node of each frame, from the firmware's memory affinity (SRAT) of its
 * physical address: the struct pages of the region all carry the one node
 * memremap_pages() was given, so page_to_nid() cannot tell.  Every value
 * stored is below MAX_NUMNODES, the size of every per-node array here.
 */
static int init_numa(void)
{
	phys_addr_t phys;
	int nid;
	u32 f;

	pk.frame_nid = kvmalloc_array(pk.nr_frames, sizeof(u16), GFP_KERNEL);
	if (!pk.frame_nid)
		return -ENOMEM;
	nodes_clear(pk.numa_nodes);
	for (f = 0; f < pk.nr_frames; f++) {
		phys = pk.start + ((phys_addr_t)f << PKRAM_FRAME_SHIFT);
		nid = phys_to_target_node(phys);
		if (nid < 0 || nid >= MAX_NUMNODES)
			nid = first_online_node;
		pk.frame_nid[f] = nid;
		if (f >= pk.meta_frames)
			node_set(nid, pk.numa_nodes);
	}
	return 0;
}

/* The superblock fields of this geometry, version 3 (the working superblock). */
static void init_sb(struct pkram_sb *sb)
{
	sb->magic = cpu_to_le64(PKRAM_MAGIC);
	sb->version = cpu_to_le32(PKRAM_FORMAT_VERSION);
	sb->region_start = cpu_to_le64(pk.start);
	sb->region_size = cpu_to_le64(pk.size);
	sb->frame_size = cpu_to_le32(PKRAM_FRAME_SIZE);
	sb->nr_frames = cpu_to_le32(pk.nr_frames);
	sb->meta_frames = cpu_to_le32(pk.meta_frames);
	sb->max_nodes = cpu_to_le32(PKRAM_MAX_NODES);
	sb->node_table_off = cpu_to_le64(PKRAM_NODE_TABLE_OFF);
	sb->owner_map_off = cpu_to_le64(PKRAM_OWNER_MAP_OFF);
	sb->meta_size = cpu_to_le64(PKRAM_NR_COPIES * pk.copy_size);
	sb->copy_size = cpu_to_le64(pk.copy_size);
	sb->chunk_crc_off = cpu_to_le64(PKRAM_CHUNK_CRC_OFF(pk.nr_frames));
	sb->chunk_size = cpu_to_le32(PKRAM_CHUNK_SIZE);
	sb->nr_chunks = cpu_to_le32(pk.nr_chunks);
}

static void format_region(void)
{
	u32 i;

	memset(pk.base, 0, (size_t)pk.meta_frames << PKRAM_FRAME_SHIFT);
	memset(pk.sb, 0, PKRAM_SB_SIZE);
	memset(pk.tables, 0, pk.tables_size);
	memset(pk.fstate, 0, pk.nr_frames);
	init_sb(pk.sb);
	pk.sb->next_generation = cpu_to_le64(1);
	for (i = 0; i < pk.meta_frames; i++)
		set_owner(i, PKRAM_OWNER_META, 0);
	pk.free_frames = data_frames();
	pk.seq = 0;
	pk.newest = 1;
	mark_all_dirty();
	pkram_commit();
}

/* Every layout field of @sb equals what region= implies for @version. */
static bool geometry_ok(const struct pkram_sb *sb, u32 version)
{
	bool v3 = version == PKRAM_FORMAT_VERSION;

	if (le64_to_cpu(sb->region_start) != pk.start ||
	    le64_to_cpu(sb->region_size) != pk.size ||
	    le32_to_cpu(sb->frame_size) != PKRAM_FRAME_SIZE ||
	    le32_to_cpu(sb->nr_frames) != pk.nr_frames ||
	    le32_to_cpu(sb->max_nodes) != PKRAM_MAX_NODES ||
	    le64_to_cpu(sb->node_table_off) != PKRAM_NODE_TABLE_OFF ||
	    le64_to_cpu(sb->owner_map_off) != PKRAM_OWNER_MAP_OFF)
		return false;
	if (!v3)
		return le32_to_cpu(sb->meta_frames) == pk.v2_meta_frames &&
		       le64_to_cpu(sb->meta_size) == pk.v2_meta_size;
	return le32_to_cpu(sb->meta_frames) == pk.meta_frames &&
	       le64_to_cpu(sb->meta_size) == PKRAM_NR_COPIES * pk.copy_size &&
	       le64_to_cpu(sb->copy_size) == pk.copy_size &&
	       le64_to_cpu(sb->chunk_crc_off) == PKRAM_CHUNK_CRC_OFF(pk.nr_frames) &&
	       le32_to_cpu(sb->chunk_size) == PKRAM_CHUNK_SIZE &&
	       le32_to_cpu(sb->nr_chunks) == pk.nr_chunks;
}

/*
 * Check metadata copy @c in the region: 0 if its superblock and tables are
 * intact, else why not (logged).  Version 1 and 2 regions have copy 0 only.
 * @version gets the copy's version.
 */
static int check_copy(int c, u32 *version)
{
	const void *base = copy_base(c);
	const struct pkram_sb *sb = base;
	const __le32 *crcs = base + PKRAM_CHUNK_CRC_OFF(pk.nr_frames);
	u32 stored, crc, k;

	if (le64_to_cpu(sb->magic) != PKRAM_MAGIC)
		return -ENODATA;
	*version = le32_to_cpu(sb->version);
	if (*version != PKRAM_FORMAT_VERSION &&
	    (c || (*version != PKRAM_FORMAT_VERSION_ONE_COPY &&
		   *version != PKRAM_FORMAT_VERSION_DENSE))) {
		pr_warn("metadata copy %d: superblock has unknown format version %u (this module: %u)\n",
			c, *version, PKRAM_FORMAT_VERSION);
		return -EINVAL;
	}
	stored = le32_to_cpu(sb->sb_crc);
	crc = sb_crc(sb);
	if (stored != crc) {
		pr_warn("metadata copy %d: superblock CRC mismatch (stored %08x, computed %08x)\n",
			c, stored, crc);
		return -EUCLEAN;
	}
	if (!geometry_ok(sb, *version)) {
		pr_warn("metadata copy %d: superblock describes %llu bytes at %#llx, not region=%s\n",
			c, le64_to_cpu(sb->region_size),
			le64_to_cpu(sb->region_start), region);
		return -EINVAL;
	}
	if (*version != PKRAM_FORMAT_VERSION) {
		stored = le32_to_cpu(sb->tables_crc);
		crc = crc_of(base + PKRAM_NODE_TABLE_OFF, pk.tables_size);
		if (stored != crc) {
			pr_warn("metadata copy %d: node table / owner map CRC mismatch (stored %08x, computed %08x)\n",
				c, stored, crc);
			return -EUCLEAN;
		}
		return 0;
	}
	if (le32_to_cpu(sb->copy) != c) {
		pr_warn("metadata copy %d: superblock says copy %u\n", c, le32_to_cpu(sb->copy));
		return -EUCLEAN;
	}
	stored = le32_to_cpu(sb->tables_crc);
	crc = crc_of(crcs, 4 * pk.nr_chunks);
	if (stored != crc) {
		pr_warn("metadata copy %d: chunk CRC table mismatch (stored %08x, computed %08x)\n",
			c, stored, crc);
		return -EUCLEAN;
	}
	for (k = 0; k < pk.nr_chunks; k++) {
		stored = le32_to_cpu(crcs[k]);
		crc = crc_of(base + PKRAM_NODE_TABLE_OFF + (size_t)k * PKRAM_CHUNK_SIZE,
			     chunk_len(k));
		if (stored != crc) {
			pr_warn("metadata copy %d: node table / owner map CRC mismatch in chunk %u (stored %08x, computed %08x)\n",
				c, k, stored, crc);
			return -EUCLEAN;
		}
	}
	return 0;
}

static int check_rec(int slot)
{
	const struct pkram_node_rec *rec = &pk.recs[slot];
	u32 state = rec_state(slot);

	if (state == PKRAM_STATE_FREE)
		return rec->name[0] || rec->nr_frames ? -EUCLEAN : 0;
	if (state != PKRAM_STATE_ACTIVE && state != PKRAM_STATE_PRESERVED)
		return -EUCLEAN;
	if (!name_valid(rec->name) || rec_frames(slot) > PKRAM_MAX_SPAN)
		return -EUCLEAN;
	if (find_node(rec->name) != slot)	/* duplicate name */
		return -EUCLEAN;
	return 0;
}
static void free_node_arrays(void)
{
	int i;

	for (i = 0; i < PKRAM_MAX_NODES; i++) {
		kvfree(pk.nodes[i].frames);
		pk.nodes[i].frames = NULL;
		pk.nodes[i].cap = 0;
		pk.nodes[i].populated = 0;
	}
}

static int alloc_node_arrays(void)
{
	int i;
	u32 n;

	for (i = 0; i < PKRAM_MAX_NODES; i++) {
		n = rec_frames(i);
		if (!n)
			continue;
		pk.nodes[i].frames = kvmalloc_array(n, sizeof(u32), GFP_KERNEL);
		if (!pk.nodes[i].frames)
			return -ENOMEM;
		memset(pk.nodes[i].frames, 0xff, n * sizeof(u32));
		pk.nodes[i].cap = n;
	}
	return 0;
}

/*
 * Record one owner map entry in the node arrays; -EUCLEAN if impossible.
 * @meta_frames: the metadata frames of the region's format version.
 */
static int take_owner(u32 frame, u32 meta_frames)
{
	u32 node = le32_to_cpu(pk.owners[frame].node);
	u32 index = le32_to_cpu(pk.owners[frame].index);
	int slot;

	if (frame < meta_frames)
		return node == PKRAM_OWNER_META ? 0 : -EUCLEAN;
	if (node == PKRAM_OWNER_FREE) {
		pk.free_frames++;
		return index ? -EUCLEAN : 0;
	}
	if (node > PKRAM_MAX_NODES)
		return -EUCLEAN;
	slot = node - 1;
	if (rec_state(slot) == PKRAM_STATE_FREE || index >= rec_frames(slot) ||
	    pk.nodes[slot].frames[index] != NO_FRAME)
		return -EUCLEAN;
	pk.nodes[slot].frames[index] = frame;
	pk.nodes[slot].populated++;
	return 0;
}

/*
 * Validate node table and owner map and build the in-memory node arrays.
 * Every data frame is free or claims one index below its node's span, and
 * no index is claimed twice; unclaimed indices are holes.
 */
static int build_nodes(u32 meta_frames)
{
	u64 used = 0;
	int i, ret;
	u32 f;

	for (i = 0; i < PKRAM_MAX_NODES; i++) {
		if (check_rec(i)) {
			pr_err("node table slot %d is invalid\n", i);
			return -EUCLEAN;
		}
	}
	ret = alloc_node_arrays();
	if (ret)
		return ret;
	pk.free_frames = 0;
	for (f = 0; f < pk.nr_frames; f++) {
		if (take_owner(f, meta_frames)) {
			pr_err("owner map entry of frame %u is invalid\n", f);
			return -EUCLEAN;
		}
	}
	for (i = 0; i < PKRAM_MAX_NODES; i++)
		used += pk.nodes[i].populated;
	if (used + pk.free_frames != pk.nr_frames - meta_frames) {
		pr_err("owner map does not match node sizes\n");
		return -EUCLEAN;
	}
	return 0;
}

/*
 * Frames a version 2 region gives to the second metadata copy: those past
 * its own metadata frames must be free (they become metadata frames).
 */
static int upgrade_v2(void)
{
	u32 f;

	for (f = pk.v2_meta_frames; f < pk.meta_frames; f++) {
		if (le32_to_cpu(pk.owners[f].node) != PKRAM_OWNER_FREE) {
			pr_err("cannot upgrade the version 2 region: frame %u, needed for the second metadata copy, belongs to node slot %u\n",
			       f, le32_to_cpu(pk.owners[f].node) - 1);
			return -ENOSPC;
		}
		set_owner(f, PKRAM_OWNER_META, 0);
		pk.free_frames--;
	}
	init_sb(pk.sb);		/* version 3 layout; generations and counts kept */
	return 0;
}

/* Load copy @c into the working metadata and build the node arrays. */
static int adopt_copy(int c, u32 version)
{
	const void *base = copy_base(c);
	int ret;

	memcpy(pk.sb, base, PKRAM_SB_SIZE);
	memcpy(pk.tables, base + PKRAM_NODE_TABLE_OFF, pk.tables_size);
	memset(pk.fstate, 0, pk.nr_frames);
	ret = build_nodes(version == PKRAM_FORMAT_VERSION ? pk.meta_frames : pk.v2_meta_frames);
	if (!ret && version != PKRAM_FORMAT_VERSION)
		ret = upgrade_v2();
	if (ret)
		free_node_arrays();
	return ret;
}

/*
 * Adopt the newest valid copy (trying the other one if the newest does not
 * make sense), then rewrite both copies.  Returns the error of copy 0 (or
 * of the adoption) if none is usable; -ENODATA if the region holds no
 * superblock at all.
 */
static int adopt_region(void)
{
	u32 version[PKRAM_NR_COPIES] = { 0, 0 };
	int err[PKRAM_NR_COPIES], order[PKRAM_NR_COPIES] = { 0, 1 };
	u64 seq[PKRAM_NR_COPIES] = { 0, 0 };
	int c, i, ret = -ENODATA;

	for (c = 0; c < PKRAM_NR_COPIES; c++) {
		err[c] = check_copy(c, &version[c]);
		seq[c] = le64_to_cpu(((struct pkram_sb *)copy_base(c))->seq);
	}
	/* a version 2 region: copy 1's place is unused metadata space */
	if (!err[0] && version[0] != PKRAM_FORMAT_VERSION) {
		err[1] = -ENODATA;
	} else if (!err[0] && !err[1] && seq[1] > seq[0]) {
		order[0] = 1;
		order[1] = 0;
	} else if (err[0] && !err[1]) {
		order[0] = 1;
		order[1] = 0;
	}
	if (err[0] == -ENODATA && err[1] == -ENODATA)
		return -ENODATA;
	for (i = 0; i < PKRAM_NR_COPIES; i++) {
		c = order[i];
		if (err[c])
			continue;
		ret = adopt_copy(c, version[c]);
		if (!ret)
			break;
		pr_warn("metadata copy %d is intact but invalid\n", c);
	}
	if (ret == -ENODATA)	/* no copy passed its checks */
		ret = err[0] != -ENODATA ? err[0] : err[1];
	if (ret)
		return ret;
	if (version[c] != PKRAM_FORMAT_VERSION)
		pr_info("upgrading the format version %u region to version %u (two metadata copies)\n",
			version[c], PKRAM_FORMAT_VERSION);
	else if (err[1 - c] || seq[1 - c] + 1 != seq[c])
		pr_warn("metadata copy %d is damaged or stale, rewriting it from copy %d (sequence %llu)\n",
			1 - c, c, seq[c]);
	pk.seq = version[c] == PKRAM_FORMAT_VERSION ? seq[c] : 0;
	pk.newest = c;
	le64_add_cpu(&pk.sb->load_count, 1);
	mark_all_dirty();
	pkram_commit();
	pk.adopted = true;
	return 0;
}

static int load_region(void)
{
	int ret = adopt_region();

	if (ret == -ENODATA) {
		pr_info("no superblock in region, formatting\n");
		format_region();
		return 0;
	}
	if (ret == -ENOMEM || !ret)
		return ret;
	if (!format) {
		pr_err("refusing to use the region; load with format=1 to wipe it\n");
		return ret;
	}
	pr_warn("format=1: wiping the region\n");
	format_region();
	return 0;
}

/* ---- node operations ------------------------------------------------- */

/* The node of @pf if it may change its frames, else an error. */
static int changeable_slot(struct pkram_file *pf)
{
	if (pf->slot < 0)
		return -EBADFD;
	if (pf->reader)
		return -EBADF;
	if (rec_state(pf->slot) == PKRAM_STATE_PRESERVED)
		return -EBUSY;
	return pf->slot;
}

/* pkram_lock held */
static int create_node(const char *name)
{
	struct pkram_node_rec *rec;
	u64 gen;
	int i;

	for (i = 0; i < PKRAM_MAX_NODES; i++)
		if (rec_state(i) == PKRAM_STATE_FREE)
			break;
	if (i == PKRAM_MAX_NODES)
		return -ENOSPC;
	rec = &pk.recs[i];
	memset(rec, 0, sizeof(*rec));
	strscpy(rec->name, name, sizeof(rec->name));
	gen = le64_to_cpu(pk.sb->next_generation);
	rec->generation = cpu_to_le64(gen);
	pk.sb->next_generation = cpu_to_le64(gen + 1);
	rec->state = cpu_to_le32(PKRAM_STATE_ACTIVE);
	rec_dirty(i);
	return i;
}

/* Room for @want indices; grows geometrically so that page-by-page growth stays linear. */
static int reserve_array(struct pkram_node *n, u32 want)
{
	u32 cap = max3(want, n->cap + n->cap / 2, 64u), *frames;

	if (want <= n->cap)
		return 0;
	cap = min(cap, PKRAM_MAX_SPAN);
	frames = kvmalloc_array(cap, sizeof(u32), GFP_KERNEL);
	if (!frames)
		return -ENOMEM;
	if (n->frames)
		memcpy(frames, n->frames, n->cap * sizeof(u32));
	kvfree(n->frames);
	n->frames = frames;
	n->cap = cap;
	return 0;
}

static bool is_hole(int slot, u32 index)
{
	return index >= rec_frames(slot) || pk.nodes[slot].frames[index] == NO_FRAME;
}

/*
 * Where the frames of one populate come from (@pf's policy).  Frames taken
 * during the call are not freed during it, so a search cursor per node keeps
 * the call linear in the region size.
 */
struct frame_picker {
	u32 mode;
	int nid;
	u32 any;		/* cursor over all nodes */
	u32 *at;		/* cursor per node, MAX_NUMNODES entries; NULL for DEFAULT */
};

/* The lowest allocatable frame from *@cursor on, on node @nid (NUMA_NO_NODE: any). */
static u32 next_free(u32 *cursor, int nid)
{
	u32 f;

	for (f = max(*cursor, pk.meta_frames); f < pk.nr_frames; f++)
		if (frame_free(f) && (nid == NUMA_NO_NODE || pk.frame_nid[f] == nid))
			break;
	*cursor = f;
	return f < pk.nr_frames ? f : NO_FRAME;
}

/*
 * Every nid used as an index of p->at is below MAX_NUMNODES: a BIND or
 * PREFERRED nid passed ioc_set_policy()'s node_isset() on pk.numa_nodes,
 * and INTERLEAVE takes bits of pk.numa_nodes, whose bits init_numa() set
 * from frame_nid values it kept below MAX_NUMNODES.
 */
static u32 pick_frame(struct frame_picker *p)
{
	u32 f = NO_FRAME;
	int i;

	switch (p->mode) {
	case PKRAM_POLICY_BIND:
		return next_free(&p->at[p->nid], p->nid);
	case PKRAM_POLICY_PREFERRED:
		f = next_free(&p->at[p->nid], p->nid);
		break;
	case PKRAM_POLICY_INTERLEAVE:
		for (i = 0; i < nodes_weight(pk.numa_nodes) && f == NO_FRAME; i++) {
			p->nid = next_node_in(p->nid, pk.numa_nodes);
			f = next_free(&p->at[p->nid], p->nid);
		}
		break;
	}
	return f != NO_FRAME ? f : next_free(&p->any, NUMA_NO_NODE);
}

static u32 free_frames_on(int nid)
{
	u32 f, n = 0;

	for (f = pk.meta_frames; f < pk.nr_frames; f++)
		n += pk.frame_nid[f] == nid && frame_free(f);
	return n;
}

/* Pinned frames whose references are gone become allocatable (pkram_lock held). */
static void reclaim_pinned(void)
{
	u32 f;

	for (f = pk.meta_frames; pk.pinned_frames && f < pk.nr_frames; f++) {
		if (pk.fstate[f] != FRAME_PINNED || frame_referenced(f))
			continue;
		pk.fstate[f] = FRAME_IDLE;
		pk.pinned_frames--;
		pk.free_frames++;
	}
}

/*
 * Zero a frame that is TRANSIT, without pkram_lock: no node holds it (so no
 * fault maps it, pread does not read it), it is not allocatable, and the
 * one operation that set TRANSIT is the only one to touch it until it
 * clears that state under pkram_lock.
 */
static void zero_frames(const u32 *frames, u32 n)
{
	const size_t step = SZ_256K;	/* a chance to reschedule every 256 KiB */
	size_t off;
	u32 i;

	for (i = 0; i < n; i++) {
		for (off = 0; off < PKRAM_FRAME_SIZE; off += step) {
			memset(frame_addr(frames[i]) + off, 0, step);
			cond_resched();
		}
	}
}

/*
 * Give a zeroed frame to every hole in [first, end), taken as @pf's policy
 * says; the span grows to @end.  All or nothing: the room is checked and
 * the frames picked before anything changes.  pf->op_lock held, pkram_lock
 * not: the frames are zeroed without it.
 */
static int populate_range(struct pkram_file *pf, u32 first, u32 end)
{
	struct frame_picker pick = { .mode = pf->policy, .nid = pf->nid };
	u32 span, holes = 0, i, j = 0, f, *picked = NULL;
	struct pkram_node *n;
	int slot, ret;

	mutex_lock(&pkram_lock);
	slot = ret = changeable_slot(pf);
	if (slot < 0)
		goto out_unlock;
	n = &pk.nodes[slot];
	span = rec_frames(slot);
	reclaim_pinned();
	for (i = first; i < end; i++)
		holes += is_hole(slot, i);
	ret = -ENOSPC;
	if (holes > pk.free_frames)
		goto out_unlock;
	if (pick.mode == PKRAM_POLICY_BIND && holes > free_frames_on(pick.nid))
		goto out_unlock;
	ret = -ENOMEM;
	if (pick.mode != PKRAM_POLICY_DEFAULT && holes) {
		pick.at = kcalloc(MAX_NUMNODES, sizeof(u32), GFP_KERNEL);
		if (!pick.at)
			goto out_unlock;
	}
	if (holes) {
		picked = kvmalloc_array(holes, sizeof(u32), GFP_KERNEL);
		if (!picked)
			goto out_unlock;
	}
	ret = reserve_array(n, end);
	if (ret)
		goto out_unlock;
	for (j = 0; j < holes; j++) {
		f = pick_frame(&pick);
		if (WARN_ON_ONCE(f == NO_FRAME)) {	/* free_frames was wrong */
			ret = -EUCLEAN;
			goto out_unpick;
		}
		pk.fstate[f] = FRAME_TRANSIT;
		pk.free_frames--;
		picked[j] = f;
	}
	if (pick.mode == PKRAM_POLICY_INTERLEAVE)
		pf->nid = pick.nid;
	mutex_unlock(&pkram_lock);

	zero_frames(picked, holes);

	/*
	 * pf->op_lock kept the node attached to pf (detach takes it; DESTROY
	 * refuses an attached node), unpreserved and with the same holes
	 * (every change of its frames takes it).
	 */
	mutex_lock(&pkram_lock);
	for (i = span; i < end; i++)
		n->frames[i] = NO_FRAME;
	if (end > span) {
		pk.recs[slot].nr_frames = cpu_to_le32(end);
		rec_dirty(slot);
	}
	for (i = first, j = 0; i < end && j < holes; i++) {
		if (n->frames[i] != NO_FRAME)
			continue;
		f = picked[j++];
		set_owner(f, slot + 1, i);
		n->frames[i] = f;
		n->populated++;
		pk.fstate[f] = FRAME_IDLE;
	}
	if (WARN_ON_ONCE(j != holes)) {	/* the holes changed: op_lock is broken */
		for (; j < holes; j++) {
			pk.fstate[picked[j]] = FRAME_IDLE;
			pk.free_frames++;
		}
	}
	pkram_commit();
	ret = 0;
	goto out_unlock;

out_unpick:	/* nothing was changed but the state of the frames picked */
	while (j--) {
		pk.fstate[picked[j]] = FRAME_IDLE;
		pk.free_frames++;
	}
out_unlock:
	mutex_unlock(&pkram_lock);
	kvfree(picked);
	kfree(pick.at);
	return ret;
}

/* Frames in node indices [first, end) of @slot (clipped to the span). */
static u32 count_frames(int slot, u32 first, u32 end)
{
	u32 i, n = 0;

	end = min(end, rec_frames(slot));
	for (i = first; i < end; i++)
		n += pk.nodes[slot].frames[i] != NO_FRAME;
	return n;
}

/*
 * First half of freeing the frames of [first, end) of @slot (pkram_lock
 * held, @out room for count_frames()): zap every user mapping of those
 * offsets, then take the frames out of the node into @out as TRANSIT
 * (owner map free, so the caller's commit records them free).  Returns how
 * many.  The caller commits, drops pkram_lock and calls release_frames().
 */
static u32 take_frames(int slot, u32 first, u32 end, u32 *out)
{
	struct pkram_node *n = &pk.nodes[slot];
	u32 i, f, got = 0;

	end = min(end, rec_frames(slot));
	zap_range(first, end);
	for (i = first; i < end; i++) {
		f = n->frames[i];
		if (f == NO_FRAME)
			continue;
		set_owner(f, PKRAM_OWNER_FREE, 0);
		pk.fstate[f] = FRAME_TRANSIT;
		n->frames[i] = NO_FRAME;
		n->populated--;
		out[got++] = f;
	}
	return got;
}

/*
 * Second half (pkram_lock not held): zero the frames, so that no data
 * stays in a free frame, then make them allocatable - or, if a page of one
 * still has a reference, quarantine it (FRAME_PINNED): whoever holds the
 * page may still read or write it, so it must not go to another node yet.
 * take_frames() zapped the PTEs before, so no new reference can appear:
 * get_user_pages() needs a PTE (GUP-fast rechecks the PTE after taking its
 * reference and drops it if the PTE changed).
 */
static void release_frames(u32 *frames, u32 n)
{
	u32 i, held = 0;

	zero_frames(frames, n);
	/* the held frames to the end of the list (TRANSIT: ours to check unlocked) */
	for (i = n; i-- > 0;) {
		if (frame_referenced(frames[i])) {
			held++;		/* not inside swap(): it evaluates twice */
			swap(frames[i], frames[n - held]);
		}
	}
	mutex_lock(&pkram_lock);
	for (i = 0; i < n; i++) {
		if (i >= n - held) {
			pk.fstate[frames[i]] = FRAME_PINNED;
			pk.pinned_frames++;
		} else {
			pk.fstate[frames[i]] = FRAME_IDLE;
			pk.free_frames++;
		}
	}
	mutex_unlock(&pkram_lock);
}

/* Room for the frames of [first, end) of @slot; NULL (and *n = 0) if none. */
static int alloc_frame_list(int slot, u32 first, u32 end, u32 **list)
{
	u32 n = count_frames(slot, first, end);

	*list = NULL;
	if (!n)
		return 0;
	*list = kvmalloc_array(n, sizeof(u32), GFP_KERNEL);
	return *list ? 0 : -ENOMEM;
}

static void free_node_slot(int slot)
{
	struct pkram_node *n = &pk.nodes[slot];

	kvfree(n->frames);
	n->frames = NULL;
	n->cap = 0;
	n->populated = 0;
	memset(&pk.recs[slot], 0, sizeof(pk.recs[slot]));
	rec_dirty(slot);
}

static void fill_info(int slot, struct pkram_node_info *info)
{
	memset(info, 0, sizeof(*info));
	memcpy(info->name, pk.recs[slot].name, PKRAM_NAME_LEN);
	info->name[PKRAM_NAME_MAX] = '\0';
	info->state = rec_state(slot);
	info->nr_frames = rec_frames(slot);
	info->generation = le64_to_cpu(pk.recs[slot].generation);
	info->attached = pk.nodes[slot].attached;
	info->populated = pk.nodes[slot].populated;
}

/* ---- ioctls ------------------------------------------------------------ */

static u32 count_nodes(void)
{
	u32 n = 0;
	int i;

	for (i = 0; i < PKRAM_MAX_NODES; i++)
		n += rec_state(i) != PKRAM_STATE_FREE;
	return n;
}

static long ioc_version(struct pkram_version __user *uarg)
{
	struct pkram_version v = {
		.uapi_version = PKRAM_UAPI_VERSION,
		.format_version = PKRAM_FORMAT_VERSION,
		.frame_size = PKRAM_FRAME_SIZE,
		.max_nodes = PKRAM_MAX_NODES,
		.nr_frames = pk.nr_frames,
		.data_frames = data_frames(),
		.region_start = pk.start,
		.region_size = pk.size,
	};

	mutex_lock(&pkram_lock);
	v.free_frames = pk.free_frames;
	v.nr_nodes = count_nodes();
	mutex_unlock(&pkram_lock);
	return copy_to_user(uarg, &v, sizeof(v)) ? -EFAULT : 0;
}

static int attach_locked(struct pkram_file *pf, struct pkram_attach *a)
{
	int slot;

	if (pf->slot >= 0)
		return -EINVAL;
	slot = find_node(a->name);
	a->created = 0;
	if (a->flags & PKRAM_ATTACH_READER) {
		/* beside the node's attacher; DESTROY waits for every reader */
		if (slot < 0)
			return -ENOENT;
		pk.nodes[slot].readers++;
		WRITE_ONCE(pf->reader, true);
		goto attached;
	}
	if (slot >= 0 && (a->flags & PKRAM_ATTACH_EXCL))
		return -EEXIST;
	if (slot < 0 && !(a->flags & PKRAM_ATTACH_CREATE))
		return -ENOENT;
	if (slot >= 0 && pk.nodes[slot].attached)
		return -EBUSY;
	if (slot < 0) {
		slot = create_node(a->name);
		if (slot < 0)
			return slot;
		pkram_commit();
		a->created = 1;
	}
	pk.nodes[slot].attached = true;
attached:
	pf->slot = slot;
	a->state = rec_state(slot);
	a->nr_frames = rec_frames(slot);
	a->generation = le64_to_cpu(pk.recs[slot].generation);
	return 0;
}

/*
 * Unbind @pf from its node (pf->op_lock held).  The fd's mappings normally
 * end before it is released (a VMA holds a reference to its file), but
 * ATTACH detaches on a failed copy_to_user(), when another thread may have
 * mapped the node through the fd meanwhile: those PTEs are zapped here, and
 * the fd's VMAs fault with SIGBUS from now on (pf->slot < 0), so no mapping
 * of a detached fd reaches a frame that DESTROY may give to another node.
 */
static void detach(struct pkram_file *pf)
{
	mutex_lock(&pkram_lock);
	if (pf->slot >= 0 && pf->reader) {
		pk.nodes[pf->slot].readers--;	/* a reader has no mappings */
	} else if (pf->slot >= 0) {
		if (atomic_read(&pf->nr_maps))
			zap_range(0, rec_frames(pf->slot));
		pk.nodes[pf->slot].attached = false;
	}
	pf->slot = -1;
	WRITE_ONCE(pf->reader, false);
	mutex_unlock(&pkram_lock);
}

static long ioc_attach(struct file *file, struct pkram_file *pf,
		       struct pkram_attach __user *uarg)
{
	struct pkram_attach a;
	int ret;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (!name_valid(a.name) || (a.flags & ~PKRAM_ATTACH_FLAGS))
		return -EINVAL;
	if ((a.flags & PKRAM_ATTACH_EXCL) && !(a.flags & PKRAM_ATTACH_CREATE))
		return -EINVAL;
	if ((a.flags & PKRAM_ATTACH_READER) &&
	    (a.flags & (PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL)))
		return -EINVAL;
	/* a reader is read-only down to its open file description */
	if ((a.flags & PKRAM_ATTACH_READER) && (file->f_mode & FMODE_WRITE))
		return -EBADF;
	mutex_lock(&pkram_lock);
	ret = attach_locked(pf, &a);
	mutex_unlock(&pkram_lock);
	if (ret)
		return ret;
	if (copy_to_user(uarg, &a, sizeof(a))) {
		mutex_lock(&pf->op_lock);
		detach(pf);
		mutex_unlock(&pf->op_lock);
		return -EFAULT;
	}
	return 0;
}

/* Shrink the span of @pf's node to @want (pf->op_lock held). */
static int shrink_node(struct pkram_file *pf, u32 want)
{
	int slot = pf->slot;
	u32 *list, n;
	int ret;

	mutex_lock(&pkram_lock);
	ret = alloc_frame_list(slot, want, rec_frames(slot), &list);
	if (ret) {
		mutex_unlock(&pkram_lock);
		return ret;
	}
	n = take_frames(slot, want, rec_frames(slot), list);
	pk.recs[slot].nr_frames = cpu_to_le32(want);
	rec_dirty(slot);
	pkram_commit();
	mutex_unlock(&pkram_lock);
	release_frames(list, n);
	kvfree(list);
	return 0;
}

static int do_resize(struct pkram_file *pf, u32 want)
{
	int slot;
	u32 have;

	mutex_lock(&pkram_lock);
	slot = changeable_slot(pf);
	have = slot >= 0 ? rec_frames(slot) : 0;
	mutex_unlock(&pkram_lock);
	if (slot < 0)
		return slot;
	if (want > PKRAM_MAX_SPAN)
		return -ENOSPC;
	if (want > have)
		return populate_range(pf, have, want);
	if (want < have) {
		/* rule kept from before: a shrink never pulls frames from under a mapping */
		if (atomic_read(&pf->nr_maps))
			return -EBUSY;
		return shrink_node(pf, want);
	}
	return 0;
}

static long ioc_resize(struct pkram_file *pf, struct pkram_resize __user *uarg)
{
	struct pkram_resize r;
	int ret;

	if (copy_from_user(&r, uarg, sizeof(r)))
		return -EFAULT;
	if (r.reserved)
		return -EINVAL;
	mutex_lock(&pf->op_lock);
	ret = do_resize(pf, r.nr_frames);
	mutex_unlock(&pf->op_lock);
	return ret;
}

/* A node range from user space; -EINVAL unless 1 <= count and the end fits a span. */
static int get_range(struct pkram_range __user *uarg, u32 *first, u32 *end)
{
	struct pkram_range r;

	if (copy_from_user(&r, uarg, sizeof(r)))
		return -EFAULT;
	if (!r.count || r.first >= PKRAM_MAX_SPAN ||
	    r.count > PKRAM_MAX_SPAN - r.first)
		return -EINVAL;
	*first = r.first;
	*end = r.first + r.count;
	return 0;
}

static long ioc_populate(struct pkram_file *pf, struct pkram_range __user *uarg)
{
	u32 first, end;
	int ret = get_range(uarg, &first, &end);

	if (ret)
		return ret;
	mutex_lock(&pf->op_lock);
	ret = populate_range(pf, first, end);
	mutex_unlock(&pf->op_lock);
	return ret;
}

/*
 * Frames leave the node only after every user mapping of their offsets is
 * zapped (take_frames), so no one keeps a PTE to a frame that another node
 * may get next.  All /dev/pkram files share one address_space: mappings of
 * other nodes at the same offsets are zapped too and simply fault again.
 */
static long ioc_punch(struct pkram_file *pf, struct pkram_range __user *uarg)
{
	u32 first, end, *list = NULL, n = 0;
	int slot, ret = get_range(uarg, &first, &end);

	if (ret)
		return ret;
	mutex_lock(&pf->op_lock);
	mutex_lock(&pkram_lock);
	slot = ret = changeable_slot(pf);
	if (slot >= 0)
		ret = alloc_frame_list(slot, first, end, &list);
	if (slot >= 0 && !ret) {
		n = take_frames(slot, first, end, list);
		pkram_commit();
	}
	mutex_unlock(&pkram_lock);
	if (n)
		release_frames(list, n);
	mutex_unlock(&pf->op_lock);
	kvfree(list);
	return ret;
}

/* A node for BIND/PREFERRED must hold data frames of the region (else ENXIO). */
static long ioc_set_policy(struct pkram_file *pf, struct pkram_policy __user *uarg)
{
	struct pkram_policy p;

	if (copy_from_user(&p, uarg, sizeof(p)))
		return -EFAULT;
	if (p.reserved || p.mode > PKRAM_POLICY_INTERLEAVE)
		return -EINVAL;
	if (pf->reader)
		return -EBADF;
	if (p.mode == PKRAM_POLICY_BIND || p.mode == PKRAM_POLICY_PREFERRED) {
		if (p.nid >= MAX_NUMNODES)
			return -EINVAL;
		if (!node_isset(p.nid, pk.numa_nodes))
			return -ENXIO;
	} else if (p.nid) {
		return -EINVAL;
	}
	mutex_lock(&pkram_lock);
	pf->policy = p.mode;
	/* INTERLEAVE starts at the region's first node */
	pf->nid = p.mode == PKRAM_POLICY_INTERLEAVE ? MAX_NUMNODES : p.nid;
	mutex_unlock(&pkram_lock);
	return 0;
}

static long ioc_set_state(struct pkram_file *pf, u32 state)
{
	int ret = -EBADFD;

	mutex_lock(&pf->op_lock);
	mutex_lock(&pkram_lock);
	if (pf->slot >= 0 && pf->reader) {
		ret = -EBADF;
	} else if (pf->slot >= 0) {
		pk.recs[pf->slot].state = cpu_to_le32(state);
		rec_dirty(pf->slot);
		pkram_commit();
		ret = 0;
	}
	mutex_unlock(&pkram_lock);
	mutex_unlock(&pf->op_lock);
	return ret;
}

/*
 * A node that is not attached has no mapping left (detach() zapped any);
 * take_frames() zaps its offsets all the same, so that this does not depend
 * on that rule.
 */
static long ioc_destroy(struct pkram_name __user *uarg)
{
	struct pkram_name nm;
	u32 *list = NULL, n = 0;
	int slot, ret;

	if (copy_from_user(&nm, uarg, sizeof(nm)))
		return -EFAULT;
	if (!name_valid(nm.name))
		return -EINVAL;
	mutex_lock(&pkram_lock);
	slot = ret = find_node(nm.name);
	if (slot >= 0 && (pk.nodes[slot].attached || pk.nodes[slot].readers))
		ret = -EBUSY;
	if (ret >= 0)
		ret = alloc_frame_list(slot, 0, rec_frames(slot), &list);
	if (!ret) {
		n = take_frames(slot, 0, rec_frames(slot), list);
		free_node_slot(slot);
		pkram_commit();
	}
	mutex_unlock(&pkram_lock);
	if (n)
		release_frames(list, n);
	kvfree(list);
	return ret;
}

static long ioc_stat(struct pkram_node_info __user *uarg)
{
	struct pkram_node_info info;
	int slot;

	if (copy_from_user(&info, uarg, sizeof(info)))
		return -EFAULT;
	if (!name_valid(info.name))
		return -EINVAL;
	mutex_lock(&pkram_lock);
	slot = find_node(info.name);
	if (slot >= 0)
		fill_info(slot, &info);
	mutex_unlock(&pkram_lock);
	if (slot < 0)
		return slot;
	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long ioc_list(struct pkram_list __user *uarg)
{
	struct pkram_node_info *buf = NULL;
	struct pkram_list l;
	u32 cap, n = 0;
	long ret = 0;
	int i;

	if (copy_from_user(&l, uarg, sizeof(l)))
		return -EFAULT;
	cap = min_t(u32, l.capacity, PKRAM_MAX_NODES);
	if (cap) {
		buf = kvcalloc(cap, sizeof(*buf), GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
	}
	mutex_lock(&pkram_lock);
	for (i = 0; i < PKRAM_MAX_NODES; i++) {
		if (rec_state(i) == PKRAM_STATE_FREE)
			continue;
		if (n < cap)
			fill_info(i, &buf[n]);
		n++;
	}
	mutex_unlock(&pkram_lock);
	if (n > l.capacity)
		ret = -E2BIG;
	else if (n && copy_to_user(u64_to_user_ptr(l.entries), buf,
				   n * sizeof(*buf)))
		ret = -EFAULT;
	if (copy_to_user(&uarg->count, &n, sizeof(n)))
		ret = -EFAULT;
	kvfree(buf);
	return ret;
}

static long pkram_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct pkram_file *pf = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case PKRAM_IOC_VERSION:
		return ioc_version(uarg);
	case PKRAM_IOC_ATTACH:
		return ioc_attach(file, pf, uarg);
	case PKRAM_IOC_RESIZE:
		return ioc_resize(pf, uarg);
	case PKRAM_IOC_PRESERVE:
		return ioc_set_state(pf, PKRAM_STATE_PRESERVED);
	case PKRAM_IOC_UNPRESERVE:
		return ioc_set_state(pf, PKRAM_STATE_ACTIVE);
	case PKRAM_IOC_DESTROY:
		return ioc_destroy(uarg);
	case PKRAM_IOC_LIST:
		return ioc_list(uarg);
	case PKRAM_IOC_STAT:
		return ioc_stat(uarg);
	case PKRAM_IOC_POPULATE:
		return ioc_populate(pf, uarg);
	case PKRAM_IOC_PUNCH:
		return ioc_punch(pf, uarg);
	case PKRAM_IOC_SET_POLICY:
		return ioc_set_policy(pf, uarg);
	}
	return -ENOTTY;
}

/* ---- mmap ---------------------------------------------------------------- */

static void pkram_vm_open(struct vm_area_struct *vma)
{
	struct pkram_file *pf = vma->vm_private_data;

	atomic_inc(&pf->nr_maps);
}

static void pkram_vm_close(struct vm_area_struct *vma)
{
	struct pkram_file *pf = vma->vm_private_data;

	atomic_dec(&pf->nr_maps);
}

/* Map the page at node offset vmf->pgoff (pkram_insert_pte()). */
static vm_fault_t pkram_vm_fault(struct vm_fault *vmf)
{
	struct pkram_file *pf = vmf->vma->vm_private_data;
	pgoff_t pgoff = vmf->pgoff;
	vm_fault_t ret = VM_FAULT_SIGBUS;
	phys_addr_t phys;

	mutex_lock(&pkram_lock);
	if (pf->slot >= 0 && !is_hole(pf->slot, pgoff / FRAME_PAGES)) {
		phys = frame_phys(pk.nodes[pf->slot].frames[pgoff / FRAME_PAGES]) +
		       ((phys_addr_t)(pgoff % FRAME_PAGES) << PAGE_SHIFT);
		ret = pkram_insert_pte(vmf, PHYS_PFN(phys));
	}
	mutex_unlock(&pkram_lock);
	return ret;
}

#if PKRAM_PMD_MAPPINGS
/*
 * A whole frame as one 2 MiB mapping, when the 2 MiB of the VMA around the
 * address map exactly one frame (the daemon maps its node 2 MiB aligned).
 * Anything else falls back to pkram_vm_fault(): a hole then raises
 * SIGBUS there.  A devmap PMD holds no page reference, like a devmap PTE;
 * a punch zaps it like PTEs (unmap_mapping_range() splits nothing: the
 * whole PMD goes, and the offsets not punched simply fault again).
 */
static vm_fault_t pkram_pmd_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct pkram_file *pf = vma->vm_private_data;
	unsigned long addr = vmf->address & PMD_MASK;
	vm_fault_t ret = VM_FAULT_FALLBACK;
	pgoff_t pgoff;

	/* never without S_DAX (pmd=0): the PMD would not be zapped as special */
	if (!vma_is_dax(vma))
		return VM_FAULT_FALLBACK;
	if (addr < vma->vm_start || addr + PMD_SIZE > vma->vm_end)
		return VM_FAULT_FALLBACK;
	pgoff = vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
	if (pgoff % FRAME_PAGES)
		return VM_FAULT_FALLBACK;
	mutex_lock(&pkram_lock);
	if (pf->slot >= 0 && !is_hole(pf->slot, pgoff / FRAME_PAGES)) {
		ret = vmf_insert_pfn_pmd(vmf,
			phys_to_pfn_t(frame_phys(pk.nodes[pf->slot].frames[pgoff / FRAME_PAGES]),
				      PFN_DEV | PFN_MAP),
			vmf->flags & FAULT_FLAG_WRITE);
		if (ret == VM_FAULT_NOPAGE)
			pk.pmd_faults++;
	}
	mutex_unlock(&pkram_lock);
	return ret;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
static vm_fault_t pkram_huge_fault(struct vm_fault *vmf, unsigned int order)
{
	return order == PMD_ORDER ? pkram_pmd_fault(vmf) : VM_FAULT_FALLBACK;
}
#else
static vm_fault_t pkram_huge_fault(struct vm_fault *vmf, enum page_entry_size pe_size)
{
	return pe_size == PE_SIZE_PMD ? pkram_pmd_fault(vmf) : VM_FAULT_FALLBACK;
}
#endif
#endif /* PKRAM_PMD_MAPPINGS */

static const struct vm_operations_struct pkram_vm_ops = {
	.open = pkram_vm_open,
	.close = pkram_vm_close,
	.fault = pkram_vm_fault,
#if PKRAM_PMD_MAPPINGS
	.huge_fault = pkram_huge_fault,
#endif
};

/*
 * The node's frames appear in node order: file offset o is byte o % 2 MiB
 * of node frame o / 2 MiB.  Any range below PKRAM_MAX_SPAN frames can be
 * mapped, so that a daemon maps its whole address space once; pages are
 * inserted at fault time, and a hole (or an index past the span) raises
 * SIGBUS.  A shrink is refused while the file has mappings; a punch zaps
 * the punched offsets first.  Either way mapped frames stay the node's.
 */
static int pkram_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct pkram_file *pf = file->private_data;
	unsigned long node_pages;
	int ret = 0;

	/* before VM_SHARED: do_mmap() clears it for a read-only file */
	if (READ_ONCE(pf->reader))	/* pread() only */
		return -EACCES;
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	mutex_lock(&pkram_lock);
	if (pf->slot < 0) {
		ret = -EBADFD;
		goto out;
	}
	node_pages = (unsigned long)PKRAM_MAX_SPAN * FRAME_PAGES;
	if (vma->vm_pgoff >= node_pages ||
	    vma_pages(vma) > node_pages - vma->vm_pgoff) {
		ret = -EINVAL;
		goto out;
	}
	pkram_vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &pkram_vm_ops;
	vma->vm_private_data = pf;
	atomic_inc(&pf->nr_maps);
out:
	mutex_unlock(&pkram_lock);
	return ret;
}

/*
 * pread() of the node: holes read as zeros, the span is the end of file.
 * Bytes go through a bounce page because pkram_lock (which keeps the frame
 * the node's) cannot be held across copy_to_user().
 */
static ssize_t pkram_read(struct file *file, char __user *buf, size_t len,
			  loff_t *ppos)
{
	struct pkram_file *pf = file->private_data;
	size_t done = 0, chunk;
	void *bounce;
	u64 pos = *ppos;
	u32 index;
	bool eof;
	int ret = 0;

	if (pf->slot < 0)
		return -EBADFD;
	bounce = (void *)__get_free_page(GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;
	while (done < len) {
		chunk = min_t(size_t, len - done, PAGE_SIZE - offset_in_page(pos));
		index = pos >> PKRAM_FRAME_SHIFT;
		mutex_lock(&pkram_lock);
		eof = pf->slot < 0 || pos >= (u64)rec_frames(pf->slot) << PKRAM_FRAME_SHIFT;
		if (!eof && is_hole(pf->slot, index))
			memset(bounce, 0, chunk);
		else if (!eof)
			memcpy(bounce, frame_addr(pk.nodes[pf->slot].frames[index]) +
			       (pos & (PKRAM_FRAME_SIZE - 1)), chunk);
		mutex_unlock(&pkram_lock);
		if (eof)
			break;
		if (copy_to_user(buf + done, bounce, chunk)) {
			ret = -EFAULT;
			break;
		}
		done += chunk;
		pos += chunk;
		if (fatal_signal_pending(current))
			break;
		cond_resched();
	}
	free_page((unsigned long)bounce);
	*ppos = pos;
	return done ? done : ret;
}

/* ---- device ---------------------------------------------------------------- */

static int pkram_open(struct inode *inode, struct file *file)
{
	struct pkram_file *pf;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	pf = kzalloc(sizeof(*pf), GFP_KERNEL);
	if (!pf)
		return -ENOMEM;
	mutex_init(&pf->op_lock);
	pf->slot = -1;
	pf->policy = PKRAM_POLICY_DEFAULT;
	atomic_set(&pf->nr_maps, 0);
	file->private_data = pf;
	/* before any mmap, and never changed after: see init_mapping() */
	file->f_mapping = pk.inode->i_mapping;
	return 0;	/* seekable: pread() reads the node */
}

static int pkram_release(struct inode *inode, struct file *file)
{
	struct pkram_file *pf = file->private_data;

	mutex_lock(&pf->op_lock);
	detach(pf);
	mutex_unlock(&pf->op_lock);
	mutex_destroy(&pf->op_lock);
	kfree(pf);
	return 0;
}

static const struct file_operations pkram_fops = {
	.owner = THIS_MODULE,
	.open = pkram_open,
	.release = pkram_release,
	.unlocked_ioctl = pkram_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = pkram_mmap,
	.read = pkram_read,
	.llseek = default_llseek,
};

static struct miscdevice pkram_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "pkram",
	.fops = &pkram_fops,
	.mode = 0600,
};

/* ---- sysfs (/sys/kernel/pkram) and debugfs (pkram/nodes) ------------------ */

static ssize_t region_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%llu@%#llx\n", pk.size, (u64)pk.start);
}
static struct kobj_attribute region_attr = __ATTR_RO(region);

/* A read-only attribute printing one number, read under pkram_lock. */
#define PKRAM_ATTR(_name, _expr)					\
static ssize_t _name##_show(struct kobject *k, struct kobj_attribute *a,	\
			    char *buf)						\
{									\
	u64 v;								\
									\
	mutex_lock(&pkram_lock);					\
	v = (_expr);							\
	mutex_unlock(&pkram_lock);					\
	return sysfs_emit(buf, "%llu\n", v);				\
}									\
static struct kobj_attribute _name##_attr = __ATTR_RO(_name)

PKRAM_ATTR(frame_size, PKRAM_FRAME_SIZE);
PKRAM_ATTR(data_frames, data_frames());
PKRAM_ATTR(free_frames, pk.free_frames);
PKRAM_ATTR(quarantined_frames, pk.pinned_frames);
PKRAM_ATTR(nr_nodes, count_nodes());
PKRAM_ATTR(adopted, pk.adopted);
PKRAM_ATTR(load_count, le64_to_cpu(pk.sb->load_count));

/* One line per NUMA node of the region: "NID DATA_FRAMES FREE_FRAMES". */
static ssize_t numa_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	ssize_t len = 0;
	u32 f, data, free;
	int nid;

	mutex_lock(&pkram_lock);
	for_each_node_mask(nid, pk.numa_nodes) {
		data = free = 0;
		for (f = pk.meta_frames; f < pk.nr_frames; f++) {
			if (pk.frame_nid[f] != nid)
				continue;
			data++;
			free += frame_free(f);
		}
		len += sysfs_emit_at(buf, len, "%d %u %u\n", nid, data, free);
	}
	mutex_unlock(&pkram_lock);
	return len;
}
static struct kobj_attribute numa_attr = __ATTR_RO(numa);

static struct attribute *pkram_attrs[] = {
	&region_attr.attr,
	&numa_attr.attr,
	&frame_size_attr.attr,
	&data_frames_attr.attr,
	&free_frames_attr.attr,
	&quarantined_frames_attr.attr,
	&nr_nodes_attr.attr,
	&adopted_attr.attr,
	&load_count_attr.attr,
	NULL,
};

static const struct attribute_group pkram_attr_group = {
	.attrs = pkram_attrs,
};

static const char *const state_names[] = { "free", "active", "preserved" };

static int nodes_show(struct seq_file *m, void *v)
{
	int i;

	mutex_lock(&pkram_lock);
	for (i = 0; i < PKRAM_MAX_NODES; i++) {
		if (rec_state(i) == PKRAM_STATE_FREE)
			continue;
		seq_printf(m, "%s %s %u %llu %d %u\n", pk.recs[i].name,
			   state_names[rec_state(i)], rec_frames(i),
			   le64_to_cpu(pk.recs[i].generation),
			   pk.nodes[i].attached, pk.nodes[i].populated);
	}
	mutex_unlock(&pkram_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nodes);

/* One line per node: "NAME NID:FRAMES ..." for each NUMA node it has frames on. */
static int numa_nodes_show(struct seq_file *m, void *v)
{
	u32 *count, i;
	int slot, nid;

	/* MAX_NUMNODES entries: frame_nid values are below it (init_numa) */
	count = kcalloc(MAX_NUMNODES, sizeof(*count), GFP_KERNEL);
	if (!count)
		return -ENOMEM;
	mutex_lock(&pkram_lock);
	for (slot = 0; slot < PKRAM_MAX_NODES; slot++) {
		if (rec_state(slot) == PKRAM_STATE_FREE)
			continue;
		memset(count, 0, MAX_NUMNODES * sizeof(*count));
		for (i = 0; i < rec_frames(slot); i++)
			if (pk.nodes[slot].frames[i] != NO_FRAME)
				count[pk.frame_nid[pk.nodes[slot].frames[i]]]++;
		seq_puts(m, pk.recs[slot].name);
		for (nid = 0; nid < MAX_NUMNODES; nid++)
			if (count[nid])
				seq_printf(m, " %d:%u", nid, count[nid]);
		seq_putc(m, '\n');
	}
	mutex_unlock(&pkram_lock);
	kfree(count);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(numa_nodes);

static int pkram_sysfs_init(void)
{
	int ret;

	pk.kobj = kobject_create_and_add("pkram", kernel_kobj);
	if (!pk.kobj)
		return -ENOMEM;
	ret = sysfs_create_group(pk.kobj, &pkram_attr_group);
	if (ret) {
		kobject_put(pk.kobj);
		return ret;
	}
	pk.debugfs = debugfs_create_dir("pkram", NULL);
	debugfs_create_file("nodes", 0400, pk.debugfs, NULL, &nodes_fops);
	debugfs_create_file("numa", 0400, pk.debugfs, NULL, &numa_nodes_fops);
	debugfs_create_ulong("pmd_faults", 0400, pk.debugfs, &pk.pmd_faults);
	return 0;
}

static void pkram_sysfs_exit(void)
{
	debugfs_remove_recursive(pk.debugfs);
	sysfs_remove_group(pk.kobj, &pkram_attr_group);
	kobject_put(pk.kobj);
}

/* ---- module ---------------------------------------------------------------- */

static void pkram_build_checks(void)
{
	BUILD_BUG_ON(sizeof(struct pkram_sb) != PKRAM_SB_SIZE);
	BUILD_BUG_ON(sizeof(struct pkram_node_rec) != 256);
	BUILD_BUG_ON(sizeof(struct pkram_owner) != 8);
	BUILD_BUG_ON(sizeof(struct pkram_attach) != 152);
	BUILD_BUG_ON(sizeof(struct pkram_node_info) != 152);
	BUILD_BUG_ON(sizeof(struct pkram_version) != 48);
	BUILD_BUG_ON(sizeof(struct pkram_list) != 16);
	BUILD_BUG_ON(sizeof(struct pkram_resize) != 8);
	BUILD_BUG_ON(sizeof(struct pkram_range) != 8);
	BUILD_BUG_ON(sizeof(struct pkram_policy) != 16);
	BUILD_BUG_ON(MAX_NUMNODES > U16_MAX);
	BUILD_BUG_ON(PKRAM_OWNER_MAP_OFF !=
		     PKRAM_SB_SIZE + PKRAM_MAX_NODES * sizeof(struct pkram_node_rec));
	BUILD_BUG_ON(PKRAM_NODE_TABLE_OFF % PKRAM_CHUNK_SIZE ||
		     PKRAM_OWNER_MAP_OFF % PKRAM_CHUNK_SIZE);
	BUILD_BUG_ON(PKRAM_NR_COPIES != 2);
}

static int __init pkram_init(void)
{
	int ret;

	pkram_build_checks();
	if (!PKRAM_TESTED_KERNEL && !untested_kernel) {
		pr_err("kernel %s is not supported (tested: 6.1, 6.12 and 7.2 series, see docs/operations.md); load with untested_kernel=1 only to port the module\n",
		       init_utsname()->release);
		return -EOPNOTSUPP;
	}
	if (!PKRAM_TESTED_KERNEL)
		pr_warn("kernel %s is not a tested series: loaded because untested_kernel=1\n",
			init_utsname()->release);
	ret = parse_region();
	if (ret)
		return ret;
	ret = alloc_working();
	if (ret)
		goto err_working;
	ret = init_mapping();
	if (ret)
		goto err_working;
	ret = map_region();
	if (ret)
		goto err_mapping;
	ret = init_numa();
	if (ret)
		goto err_unmap;
	ret = load_region();
	if (ret)
		goto err_numa;
	ret = misc_register(&pkram_misc);
	if (ret)
		goto err_free;
	ret = pkram_sysfs_init();
	if (ret)
		goto err_misc;
	pr_info("%s region %llu MiB at %pa: %u data frames, %u free, %u nodes\n",
		pk.adopted ? "adopted" : "formatted", pk.size >> 20, &pk.start,
		data_frames(), pk.free_frames, count_nodes());
	if (nodes_weight(pk.numa_nodes) > 1)
		pr_info("region spans NUMA nodes %*pbl\n", nodemask_pr_args(&pk.numa_nodes));
	return 0;

err_misc:
	misc_deregister(&pkram_misc);
err_free:
	free_node_arrays();
err_numa:
	kvfree(pk.frame_nid);
err_unmap:
	unmap_region();
err_mapping:
	exit_mapping();
err_working:
	free_working();
	return ret;
}

/* Pages of the region that someone still holds (see page_extra_refs()). */
static u32 referenced_pages(void)
{
	unsigned long pfn = PHYS_PFN(pk.start), end = pfn + (pk.size >> PAGE_SHIFT);
	u32 n = 0;

	for (; pfn < end; pfn++)
		n += page_extra_refs(pfn) != 0;
	return n;
}

/*
 * No file of /dev/pkram is open (each holds a module reference), so no
 * mapping is left either; but a page can outlive both, held by a pipe
 * (vmsplice) or I/O in flight.  memunmap_pages() frees the struct pages
 * (and pk.pgmap goes with the module) without waiting for such references,
 * so wait for them here: an rmmod that blocks is safe, a put_page() on a
 * freed struct page is not.
 */
static void wait_unreferenced(void)
{
	unsigned int waited = 0;
	u32 n;

	while ((n = referenced_pages())) {
		if (waited % 60 == 0)
			pr_warn("rmmod waits for %u pages of the region that are still referenced (pipes, I/O)\n",
				n);
		schedule_timeout_idle(HZ);	/* no hung-task report: this can be long */
		waited++;
	}
}

static void __exit pkram_exit(void)
{
	pkram_sysfs_exit();
	misc_deregister(&pkram_misc);
	wait_unreferenced();
	free_node_arrays();
	kvfree(pk.frame_nid);
	unmap_region();
	exit_mapping();
	free_working();
}

module_init(pkram_init);
module_exit(pkram_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Named physical frames that survive kexec (pkramfs backend)");
