// POSIX ACLs as tmpfs keeps them (CONFIG_TMPFS_POSIX_ACL), in the xattr form the kernel uses
// (include/uapi/linux/posix_acl_xattr.h: a little-endian header with version 2, then 8-byte
// entries {tag, perm, id}). pkramfs stores the ACLs as the xattrs system.posix_acl_access and
// system.posix_acl_default, always in the canonical form canonical_acl() returns, so that the
// helpers below can read and rewrite a stored value in place, without allocating.
//
// Kernel FUSE (FUSE_POSIX_ACL) checks permissions against the ACL it reads back with GETXATTR,
// refuses a default ACL on a non-directory and a caller who does not own the file, and leaves to
// the daemon what tmpfs does in fs/posix_acl.c: the mode an access ACL implies
// (posix_acl_update_mode), the ACL a chmod rewrites (posix_acl_chmod) and the ACLs a new inode
// inherits (posix_acl_create).
#pragma once

#include "util/result.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace pkramfs {

inline constexpr std::string_view kAclAccess = "system.posix_acl_access";
inline constexpr std::string_view kAclDefault = "system.posix_acl_default";

// The permission bits of a mode (the kernel's S_IRWXUGO): what ACLs and the mode share.
inline constexpr uint32_t kPermissionBits = 0777;

inline bool is_acl_name(std::string_view name) { return name == kAclAccess || name == kAclDefault; }

// An xattr value as setxattr(2) hands it over, checked as posix_acl_from_xattr and
// posix_acl_valid check it: EOPNOTSUPP for a version other than 2, EINVAL for a value that is
// not a header plus whole entries, an unknown tag, a named entry with the undefined id (-1), a
// permission beyond rwx, entries out of the order USER_OBJ, USER..., GROUP_OBJ, GROUP...,
// MASK, OTHER, or named entries without a MASK. Returns the canonical form (the ids of
// USER_OBJ, GROUP_OBJ, MASK and OTHER set to -1, as posix_acl_to_xattr writes them), or an
// empty string for "no ACL" (an empty value or a header alone, which remove the ACL).
Result<std::string> canonical_acl(std::string_view value);

// Whether an inode of `mode` may hold `value` as the ACL xattr `name`, as setxattr would have
// stored it (what a checkpoint or journal record may hold): a canonical, valid, non-empty ACL;
// an access ACL on anything but a symlink, a default ACL on a directory.
bool acl_fits(std::string_view name, std::string_view value, uint32_t mode);

// posix_acl_equiv_mode of a canonical ACL: the permission bits (0777) it gives the owner, the
// group class (the MASK if there is one) and others, and whether it says more than those bits
// (a MASK or a named entry), i.e. whether tmpfs keeps it as an access ACL.
struct AclMode {
  uint32_t permissions = 0;
  bool extended = false;
};
AclMode acl_mode(std::string_view acl) noexcept;

// posix_acl_chmod: rewrites a canonical access ACL in place for `mode`: USER_OBJ, the MASK (or
// GROUP_OBJ without one) and OTHER take the mode's owner, group and other bits.
void chmod_acl(std::string &acl, uint32_t mode) noexcept;

// posix_acl_create: the access ACL a new inode of mode `mode` (type and permission bits, no
// umask applied) gets in a directory whose default ACL is `default_acl` (canonical): the
// default ACL masked by the mode; returns the mode masked by that ACL. `access` is left empty
// when the result says no more than the mode (posix_acl_create_masq returned 0).
uint32_t inherit_acl(std::string_view default_acl, uint32_t mode, std::string &access);

} // namespace pkramfs
