// FUSE_STATX (protocol 7.39, sent by Linux 6.6+), which libfuse 3.14 and Debian 12's
// <linux/fuse.h> (7.38) do not know: the request's and the reply's layouts, as the kernel's
// include/uapi/linux/fuse.h has them (struct fuse_statx_in, fuse_statx_out, fuse_statx; the
// last is statx(2)'s struct statx, bit for bit).
//
// The kernel asks for it only where a caller's statx(2) wants STATX_BTIME and the attributes it
// caches are stale or lack the birth time (fs/fuse/dir.c, fuse_update_get_attr); every other
// stat goes on as FUSE_GETATTR. It takes the basic stats and the birth time from the reply,
// caches them for attr_valid when the reply's mask holds all of STATX_BASIC_STATS, and turns
// the request off for the connection (fc->no_statx) on an ENOSYS answer. No INIT flag
// negotiates it.
#pragma once
#include <cstdint>

namespace pkramfs {

inline constexpr uint32_t kFuseStatx = 52; // enum fuse_opcode FUSE_STATX

struct FuseStatxIn {
  uint32_t getattr_flags; // FUSE_GETATTR_FH: `fh` is the open file's, as in fuse_getattr_in
  uint32_t reserved;
  uint64_t fh;
  uint32_t sx_flags; // statx(2)'s AT_STATX_* sync flags (the kernel sends 0)
  uint32_t sx_mask;  // STATX_* the caller wants (the kernel asks STATX_BASIC_STATS | STATX_BTIME)
};

struct FuseSxTime {
  int64_t tv_sec;
  uint32_t tv_nsec;
  int32_t reserved;
};

struct FuseStatx {
  uint32_t mask; // STATX_* filled in
  uint32_t blksize;
  uint64_t attributes; // STATX_ATTR_*
  uint32_t nlink;
  uint32_t uid;
  uint32_t gid;
  uint16_t mode;
  uint16_t spare0;
  uint64_t ino;
  uint64_t size;
  uint64_t blocks;
  uint64_t attributes_mask; // the STATX_ATTR_* this filesystem knows
  FuseSxTime atime, btime, ctime, mtime;
  uint32_t rdev_major, rdev_minor;
  uint32_t dev_major, dev_minor;
  uint64_t spare2[14];
};

struct FuseStatxOut {
  uint64_t attr_valid; // how long the kernel may cache these, as fuse_attr_out
  uint32_t attr_valid_nsec;
  uint32_t flags;
  uint64_t spare[2];
  FuseStatx stat;
};

// The kernel copies replies of exactly these sizes and refuses others with EINVAL.
static_assert(sizeof(FuseStatxIn) == 24);
static_assert(sizeof(FuseStatx) == 256);
static_assert(sizeof(FuseStatxOut) == 288);

} // namespace pkramfs
