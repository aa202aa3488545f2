// chattr flags as tmpfs keeps them (mm/shmem.c, shmem_fileattr_get/set) and the ioctl forms
// they travel in: FS_IOC_GETFLAGS/SETFLAGS carry the flags themselves, FS_IOC_FSGETXATTR/
// FSSETXATTR a struct fsxattr with FS_XFLAG_* bits (fs/file_attr.c, fileattr_fill_flags and
// fileattr_fill_xflags).
#pragma once

#include "pkramfs/format.h"
#include "util/result.h"

#include <cstdint>
#include <linux/fs.h>

namespace pkramfs {

// The flags tmpfs lets chattr set (SHMEM_FL_USER_MODIFIABLE); SETFLAGS with any other bit is
// EOPNOTSUPP and changes nothing.
inline constexpr uint32_t kModifiableFlags = PKRAMFS_INODE_FLAGS;
// What a new inode takes from its directory (SHMEM_FL_INHERITED).
inline constexpr uint32_t kInheritedFlags = PKRAMFS_INODE_NODUMP | PKRAMFS_INODE_NOATIME;

// FS_IOC_FSGETXATTR's answer: the flags as xflags, every other field 0.
struct fsxattr fsxattr_of_flags(uint32_t flags);

// statx(2)'s attributes and attributes_mask as tmpfs's shmem_getattr reports them: the
// append-only, immutable and nodump flags as STATX_ATTR_*, the mask saying those three are known.
struct StatxAttributes {
  uint64_t attributes = 0;
  uint64_t mask = 0;
};
StatxAttributes statx_attributes_of_flags(uint32_t flags);

// FS_IOC_FSSETXATTR's request as flags. EOPNOTSUPP where tmpfs refuses it: an extent size,
// project id or xflag outside the common ones (fileattr_has_fsx), or a common xflag tmpfs does
// not keep (FS_XFLAG_SYNC, DAX, PROJINHERIT).
Result<uint32_t> flags_of_fsxattr(const struct fsxattr &fa);

} // namespace pkramfs
