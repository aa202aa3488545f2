#include "fs/inode_flags.h"

#include <cerrno>
#include <linux/stat.h>
#include <utility>

namespace pkramfs {
namespace {

// The format stores the kernel's own values.
static_assert(PKRAMFS_INODE_IMMUTABLE == FS_IMMUTABLE_FL && PKRAMFS_INODE_APPEND == FS_APPEND_FL &&
              PKRAMFS_INODE_NODUMP == FS_NODUMP_FL && PKRAMFS_INODE_NOATIME == FS_NOATIME_FL);

// fileattr_fill_flags / fileattr_fill_xflags: FS_*_FL <-> FS_XFLAG_*.
constexpr std::pair<uint32_t, uint32_t> kFlagToXflag[] = {
    {FS_IMMUTABLE_FL, FS_XFLAG_IMMUTABLE},
    {FS_APPEND_FL, FS_XFLAG_APPEND},
    {FS_NODUMP_FL, FS_XFLAG_NODUMP},
    {FS_NOATIME_FL, FS_XFLAG_NOATIME},
    {FS_SYNC_FL, FS_XFLAG_SYNC},
    {FS_DAX_FL, FS_XFLAG_DAX},
    {FS_PROJINHERIT_FL, FS_XFLAG_PROJINHERIT}};

// FS_XFLAG_COMMON: the xflags that have an FS_*_FL twin.
constexpr uint32_t kCommonXflags = FS_XFLAG_SYNC | FS_XFLAG_IMMUTABLE | FS_XFLAG_APPEND |
                                   FS_XFLAG_NODUMP | FS_XFLAG_NOATIME | FS_XFLAG_DAX |
                                   FS_XFLAG_PROJINHERIT;

} // namespace

struct fsxattr fsxattr_of_flags(uint32_t flags) {
  struct fsxattr fa {};
  for (auto [flag, xflag] : kFlagToXflag)
    if (flags & flag)
      fa.fsx_xflags |= xflag;
  return fa;
}

StatxAttributes statx_attributes_of_flags(uint32_t flags) {
  // shmem_getattr: FS_*_FL -> STATX_ATTR_* for these three, which it also puts in the mask.
  constexpr std::pair<uint32_t, uint64_t> kFlagToStatx[] = {
      {FS_APPEND_FL, STATX_ATTR_APPEND},
      {FS_IMMUTABLE_FL, STATX_ATTR_IMMUTABLE},
      {FS_NODUMP_FL, STATX_ATTR_NODUMP}};
  StatxAttributes a;
  for (auto [flag, attribute] : kFlagToStatx) {
    a.mask |= attribute;
    if (flags & flag)
      a.attributes |= attribute;
  }
  return a;
}

Result<uint32_t> flags_of_fsxattr(const struct fsxattr &fa) {
  if ((fa.fsx_xflags & ~kCommonXflags) || fa.fsx_extsize || fa.fsx_projid || fa.fsx_cowextsize)
    return Errno{EOPNOTSUPP};
  uint32_t flags = 0;
  for (auto [flag, xflag] : kFlagToXflag)
    if (fa.fsx_xflags & xflag)
      flags |= flag;
  if (flags & ~kModifiableFlags)
    return Errno{EOPNOTSUPP};
  return flags;
}

} // namespace pkramfs
