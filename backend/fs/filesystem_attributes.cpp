// The Filesystem's attributes: getattr and setattr (chmod, chown, truncate, utimes) with the
// rules the VFS applies to an immutable or append-only inode, extended attributes and the POSIX
// ACLs stored in them, and the inode flags of chattr.
#include "fs/filesystem.h"

#include "util/fault.h"
#include "fs/filesystem_internal.h"
#include "fs/inode_flags.h"
#include "fs/posix_acl.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <linux/fs.h>
#include <linux/xattr.h>
#include <mutex>
#include <new>
#include <spdlog/spdlog.h>
#include <vector>

namespace pkramfs {
namespace {

// What the VFS refuses an immutable or append-only inode in a setattr (notify_change,
// vfs_truncate, do_sys_ftruncate), which kernel FUSE leaves to us: EPERM for chmod, chown to
// someone, truncate and utimes, except that an append-only inode may be touched (both times
// now, ATTR_TOUCH) and an immutable one still truncated through a descriptor opened for writing
// before it became immutable (tmpfs: only truncate(2) asks inode_permission). chown(f, -1, -1)
// changes nothing and passes.
bool setattr_refused(const Inode &inode, const SetAttr &a) {
  if (!inode.is_pinned())
    return false;
  if (a.valid & (SetAttr::kMode | SetAttr::kUid | SetAttr::kGid))
    return true;
  if ((a.valid & SetAttr::kSize) && (inode.is_append_only() || !(a.valid & SetAttr::kThroughFile)))
    return true;
  const uint32_t times =
      a.valid & (SetAttr::kAtime | SetAttr::kAtimeNow | SetAttr::kMtime | SetAttr::kMtimeNow);
  // With the writeback cache the kernel keeps mtime and ctime and hands them back after cached
  // writes, through a file open for writing (fuse_flush_times, also at close): mtime with ctime,
  // no atime, and a file handle is the kernel's own, not a utimes.
  if (times == 0 || (times == SetAttr::kMtime && (a.valid & SetAttr::kCtime) &&
                     (a.valid & SetAttr::kThroughFile)))
    return false;
  // A touch; with the writeback cache its mtime comes as the kernel's clock, with ctime.
  const bool touch = (a.valid & SetAttr::kAtimeNow) &&
                     ((a.valid & SetAttr::kMtimeNow) ||
                      ((a.valid & SetAttr::kMtime) && (a.valid & SetAttr::kCtime)));
  return !touch || inode.is_immutable();
}

} // namespace

Result<struct stat> Filesystem::getattr(uint64_t ino) {
  std::shared_lock lock(tree_);
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  std::shared_lock ilock(inode->lock);
  return stat_of(*inode);
}

Result<StatxAttr> Filesystem::statx(uint64_t ino) {
  std::shared_lock lock(tree_);
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  std::shared_lock ilock(inode->lock);
  return StatxAttr{stat_of(*inode), inode->btime, inode->flags};
}

Result<struct stat> Filesystem::setattr(uint64_t ino, const SetAttr &a, const Caller &who) {
  maybe_checkpoint();
  std::shared_lock lock(tree_);
  if (frozen_)
    return Errno{EROFS};
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  std::unique_lock ilock(inode->lock);
  if (setattr_refused(*inode, a))
    return Errno{EPERM};
  ChangeRecorder recorder(inode->extents);
  if (a.valid & SetAttr::kSize) {
    if (inode->is_dir())
      return Errno{EISDIR};
    if (!inode->is_reg())
      return Errno{EINVAL};
    if (inode->released())
      return Errno{ENOENT};
    if (auto r = enomem_on_bad_alloc([&] {
          return truncate_locked(*inode, a.size, a.valid & SetAttr::kThroughFile);
        });
        !r)
      return Errno{r.error()};
    if (a.valid & SetAttr::kThroughFile)
      touch_mc(*inode);
  }
  const timespec t = now();
  if (a.valid & SetAttr::kMode) // rewrites an access ACL too (posix_acl_chmod)
    inode->set_mode((inode->mode & S_IFMT) | (a.mode & 07777));
  // A truncate by someone else: kernel FUSE sends the mode with suid removed, and sgid only
  // together with group-exec; the VFS also drops sgid when the caller is outside the group.
  // After the mode, which would otherwise put sgid back. The reply carries it to the kernel.
  if (a.valid & SetAttr::kSize)
    drop_privileges_locked(*inode, who);
  // chown, also chown(-1, -1), which arrives with nothing to set (or ctime alone). So does,
  // with FUSE_HANDLE_KILLPRIV_V2, the kernel's suid kill before a write by someone without
  // CAP_FSETID, for which this rule and the write's (drop_privileges_locked) agree.
  const uint32_t rest = a.valid & ~SetAttr::kThroughFile;
  if ((a.valid & (SetAttr::kUid | SetAttr::kGid)) || rest == 0 || rest == SetAttr::kCtime)
    kill_on_chown_locked(*inode, who);
  if (a.valid & SetAttr::kUid)
    inode->uid = a.uid;
  if (a.valid & SetAttr::kGid)
    inode->gid = a.gid;
  if (a.valid & SetAttr::kAtimeNow)
    inode->atime = t;
  else if (a.valid & SetAttr::kAtime)
    inode->atime = a.atime;
  if (a.valid & SetAttr::kMtimeNow)
    inode->mtime = t;
  else if (a.valid & SetAttr::kMtime)
    inode->mtime = a.mtime;
  // The object's data times follow (stat_of shows the later of the two), also into the past.
  if (inode->has_object && (a.valid & (SetAttr::kAtime | SetAttr::kAtimeNow | SetAttr::kMtime |
                                       SetAttr::kMtimeNow))) {
    const auto set = [&a](uint32_t bits, const timespec &t) {
      return (a.valid & bits) ? t : timespec{0, UTIME_OMIT};
    };
    const timespec times[2] = {set(SetAttr::kAtime | SetAttr::kAtimeNow, inode->atime),
                               set(SetAttr::kMtime | SetAttr::kMtimeNow, inode->mtime)};
    if (!objects_->set_times(ino, times))
      spdlog::warn("cannot set the times of inode {}'s object: {}", ino, std::strerror(errno));
  }
  // Every caller of notify_change other than a plain truncate() also changes ctime.
  constexpr uint32_t kChangesCtime = SetAttr::kMode | SetAttr::kUid | SetAttr::kGid |
                                     SetAttr::kAtime | SetAttr::kAtimeNow | SetAttr::kMtime |
                                     SetAttr::kMtimeNow;
  // chown(f, -1, -1) arrives with nothing to set; tmpfs still stamps ctime for it.
  if (a.valid & SetAttr::kCtime)
    inode->ctime = a.ctime;
  else if ((a.valid & kChangesCtime) || a.valid == 0)
    inode->ctime = t;
  if (auto logged = log_inode(*inode, recorder.take()); !logged)
    return Errno{logged.error()};
  return stat_of(*inode);
}

Result<void> Filesystem::setxattr(uint64_t ino, std::string_view name, std::string_view value,
                                  int flags, const Caller &who) {
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) // setxattr(2) itself refuses them first
    return Errno{EINVAL};
  if (is_acl_name(name) && !posix_acl_)
    return Errno{EOPNOTSUPP};
  maybe_checkpoint();
  std::shared_lock lock(tree_);
  if (frozen_)
    return Errno{EROFS};
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  std::unique_lock ilock(inode->lock);
  // xattr_permission refuses an immutable or append-only inode before the name is looked at
  // (EPERM for "user." too, where the handler would say EINVAL).
  if (inode->is_pinned())
    return Errno{EPERM};
  if (auto r = check_xattr_name(name); !r)
    return r;
  if (is_acl_name(name)) // the VFS sets an ACL whatever the flags say (vfs_set_acl)
    return set_acl(*inode, name, value, who);
  const bool exists = inode->xattrs.get(name) != nullptr;
  if (exists && (flags & XATTR_CREATE))
    return Errno{EEXIST};
  if (!exists && (flags & XATTR_REPLACE))
    return Errno{ENODATA};
  return enomem_on_bad_alloc([&]() -> Result<void> {
    XattrRecord r{ino, now(), std::string(name), std::string(value)};
    inode->xattrs.prepare(name);
    if (auto logged = inode->released() ? Result<void>{} : log_record(PKRAMFS_JREC_XATTR_SET, r);
        !logged)
      return logged;
    apply_xattr(std::move(r), false);
    return {};
  });
}

// set_posix_acl and simple_set_acl, as tmpfs runs them. Kernel FUSE has already refused a caller
// who neither owns the inode nor has CAP_FOWNER (EPERM), a default ACL on a non-directory
// (EACCES) and an invalid ACL (EINVAL), and sent the ACL in canonical form; the checks here are
// its own, so that nothing else is ever stored. Inode lock held.
Result<void> Filesystem::set_acl(Inode &inode, std::string_view name, std::string_view value,
                                 const Caller &who) {
  if (inode.is_symlink()) // no ACLs on symlinks (their inode operations have no set_acl)
    return Errno{EOPNOTSUPP};
  return enomem_on_bad_alloc([&]() -> Result<void> {
    auto acl = canonical_acl(value);
    if (!acl)
      return Errno{acl.error()};
    if (acl->empty()) // a header without entries: no ACL
      return remove_acl(inode, name);
    if (name == kAclDefault && !inode.is_dir())
      return Errno{EACCES};
    XattrRecord r{inode.ino, now(), std::string(name), std::move(*acl)};
    inode.xattrs.prepare(name);
    if (auto logged = inode.released() ? Result<void>{} : log_record(PKRAMFS_JREC_XATTR_SET, r);
        !logged)
      return logged;
    apply_xattr(std::move(r), false); // an access ACL sets the mode's permission bits
    // posix_acl_update_mode: setting an access ACL drops sgid unless the caller is in the
    // inode's group or has CAP_FSETID (in_group_or_capable), on any type of inode.
    if (name != kAclAccess || !(inode.mode & S_ISGID) || inode.gid == who.gid)
      return {};
    const Credentials creds = who.credentials();
    if (in_file_group(inode, who, creds) || creds.cap_fsetid)
      return {};
    inode.store_mode(inode.mode & ~S_ISGID);
    return log_inode(inode, {});
  });
}

// Removing an ACL that is not there succeeds, as on tmpfs (simple_set_acl with no ACL), and
// still changes ctime; a default ACL of a non-directory is not looked at (set_posix_acl).
Result<void> Filesystem::remove_acl(Inode &inode, std::string_view name) {
  if (name == kAclDefault && !inode.is_dir())
    return {};
  return enomem_on_bad_alloc([&]() -> Result<void> {
    XattrRecord r{inode.ino, now(), std::string(name), {}};
    if (!inode.xattrs.get(name)) {
      inode.ctime = r.ctime;
      return log_inode(inode, {});
    }
    if (auto logged = inode.released() ? Result<void>{} : log_record(PKRAMFS_JREC_XATTR_REMOVE, r);
        !logged)
      return logged;
    apply_xattr(std::move(r), true);
    return {};
  });
}

Result<std::string> Filesystem::getxattr(uint64_t ino, std::string_view name) {
  if (auto r = check_xattr_name(name); !r)
    return Errno{r.error()};
  if (is_acl_name(name) && !posix_acl_)
    return Errno{EOPNOTSUPP};
  std::shared_lock lock(tree_);
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  std::shared_lock ilock(inode->lock);
  const std::string *value = inode->xattrs.get(name);
  if (!value)
    return Errno{ENODATA};
  return *value;
}

Result<std::string> Filesystem::listxattr(uint64_t ino, const Caller &who) {
  std::shared_lock lock(tree_);
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  std::shared_lock ilock(inode->lock);
  std::string list;
  // The ACLs first, access before default, as tmpfs lists them (simple_xattr_list).
  for (std::string_view acl : {kAclAccess, kAclDefault})
    if (inode->xattrs.get(acl)) {
      list.append(acl);
      list.push_back('\0');
    }
  std::optional<bool> privileged; // asked only if there is a trusted.* name to hide
  for (auto &[name, value] : inode->xattrs.items()) {
    if (is_acl_name(name))
      continue;
    if (name.starts_with(XATTR_TRUSTED_PREFIX) && !privileged)
      privileged = who.credentials().cap_sys_admin;
    if (name.starts_with(XATTR_TRUSTED_PREFIX) && !*privileged)
      continue;
    list.append(name);
    list.push_back('\0');
  }
  return list;
}

Result<void> Filesystem::removexattr(uint64_t ino, std::string_view name) {
  if (is_acl_name(name) && !posix_acl_)
    return Errno{EOPNOTSUPP};
  maybe_checkpoint();
  std::shared_lock lock(tree_);
  if (frozen_)
    return Errno{EROFS};
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  std::unique_lock ilock(inode->lock);
  if (inode->is_pinned()) // xattr_permission, before the name (as in setxattr)
    return Errno{EPERM};
  if (auto r = check_xattr_name(name); !r)
    return r;
  if (is_acl_name(name))
    return inode->is_symlink() ? Errno{EOPNOTSUPP} : remove_acl(*inode, name);
  if (!inode->xattrs.get(name))
    return Errno{ENODATA};
  return enomem_on_bad_alloc([&]() -> Result<void> {
    XattrRecord r{ino, now(), std::string(name), {}};
    if (auto logged = inode->released() ? Result<void>{} : log_record(PKRAMFS_JREC_XATTR_REMOVE, r);
        !logged)
      return logged;
    apply_xattr(std::move(r), true);
    return {};
  });
}

// Live and in replay. Setting an access ACL is simple_set_acl's posix_acl_update_mode but for
// the caller-dependent sgid rule (set_acl logs that as a change of the inode): the ACL sets the
// mode's permission bits, and one that says no more than them is not kept. So the record of one
// setxattr leaves mode and ACL in step even if the daemon dies before the next.
void Filesystem::apply_xattr(XattrRecord &&r, bool remove) noexcept {
  Inode &inode = *find(r.ino);
  inode.ctime = r.ctime;
  if (remove) {
    (void)inode.xattrs.remove(r.name);
    return;
  }
  if (r.name == kAclAccess) {
    const AclMode acl = acl_mode(r.value);
    inode.store_mode((inode.mode & ~kPermissionBits) | acl.permissions);
    if (!acl.extended) {
      (void)inode.xattrs.remove(r.name);
      return;
    }
  }
  inode.xattrs.put(std::move(r.name), std::move(r.value));
}

Result<uint32_t> Filesystem::get_flags(uint64_t ino) {
  std::shared_lock lock(tree_);
  const Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  // Kernel FUSE asks only for these (fuse_priv_ioctl_prepare): ENOTTY for the rest.
  if (!inode->is_reg() && !inode->is_dir())
    return Errno{ENOTTY};
  return inode->flags;
}

Result<void> Filesystem::set_flags(uint64_t ino, uint32_t flags) {
  maybe_checkpoint();
  {
    // Exclusive: every other operation reads the flags under the tree lock alone.
    std::unique_lock lock(tree_);
    if (frozen_)
      return Errno{EROFS};
    Inode *inode = find(ino);
    if (!inode)
      return Errno{ENOENT};
    if (!inode->is_reg() && !inode->is_dir())
      return Errno{ENOTTY};
    // shmem_fileattr_set: only the flags tmpfs keeps; ctime changes even when they do not.
    if (flags & ~kModifiableFlags)
      return Errno{EOPNOTSUPP};
    const FlagsRecord r{ino, flags, now()};
    if (!inode->released())
      if (auto logged = log_record(PKRAMFS_JREC_FLAGS, r); !logged)
        return logged;
    apply_flags(r);
  }
  // The kernel keeps the old ctime for long otherwise. The invalidation takes no inode lock,
  // so the one the VFS holds across the ioctl (vfs_fileattr_set) is no obstacle.
  notify_attributes_changed(ino);
  return {};
}

void Filesystem::apply_flags(const FlagsRecord &r) noexcept {
  Inode &inode = *find(r.ino); // the tree lock is held exclusively: no reader meanwhile
  inode.flags = r.flags;
  inode.ctime = r.ctime;
}

} // namespace pkramfs
