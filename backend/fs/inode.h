// One file, directory, symlink or special file. Lives in the daemon's heap; its data lives in
// the arena and is referred to by block number through the extent map.
#pragma once

#include "fs/directory.h"
#include "storage/extent_map.h"
#include "pkramfs/format.h"
#include "fs/posix_acl.h"
#include "fs/xattrs.h"
#include "util/unique_fd.h"

#include <atomic>
#include <ctime>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <sys/stat.h>

namespace pkramfs {

struct Inode {
  uint64_t ino = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;
  timespec atime{}, mtime{}, ctime{};
  // Birth time (statx btime, tmpfs's i_crtime): the time the inode was made, which no
  // operation changes afterwards. None for an inode from a checkpoint of format version 1 or 2,
  // which did not keep it (pkramfs/format.h).
  std::optional<timespec> btime;
  // chattr flags, PKRAMFS_INODE_* (pkramfs/format.h). Changed only with the tree lock held
  // exclusively (Filesystem::set_flags), so any holder of the tree lock may read them.
  uint32_t flags = 0;

  // References the kernel holds (FUSE lookup count) and open file handles: an unlinked inode
  // lives on until both drop to zero.
  std::atomic<uint64_t> nlookup{0};
  std::atomic<uint32_t> nopen{0};
  // Whether the inode still holds its nr_inodes slot and its data: both go back as soon as it
  // is unlinked and closed, like tmpfs, even while the kernel still remembers the inode.
  bool charged = true;
  // Unlinked, closed and given back: only the kernel still remembers it (a lookup reference,
  // an O_PATH descriptor). No checkpoint holds it and the journal has its RELEASE, so nothing
  // about it may be journaled again, and it may take no blocks.
  bool released() const { return nlink == 0 && !charged; }
  // An O_TMPFILE inode not opened O_EXCL and not linked yet: link() may give it its first name
  // although it has none (the VFS's I_LINKABLE, set by vfs_tmpfile, cleared by vfs_link). Only
  // in memory: an inode without a name does not outlive the daemon (finish_restore).
  bool linkable = false;

  uint64_t parent = 0;            // directories: the inode ".." names
  std::unique_ptr<Directory> dir; // directories
  std::string target;             // symlinks
  ExtentMap extents;              // regular files
  // A regular file whose data is a file object (storage/object_store.h) instead of extents in
  // the arena: reads and writes go to it, and its size, blocks and times are the object's
  // (Filesystem::stat_of), since the kernel writes it directly (FUSE passthrough).
  bool has_object = false;
  // The object, open while the file is (nopen > 0); changed under `lock` held exclusively.
  UniqueFd object;
  Xattrs xattrs;

  // Serialises data and attribute changes of a regular file against its readers.
  std::shared_mutex lock;

  // chmod, and the mode of an INODE record in replay: an access ACL follows the new owner,
  // group-class and other bits (posix_acl_chmod, which tmpfs's setattr runs). A mode whose
  // permission bits did not change leaves the ACL as it was.
  void set_mode(uint32_t new_mode) noexcept {
    store_mode(new_mode);
    if (std::string *acl = xattrs.get(kAclAccess))
      chmod_acl(*acl, mode);
  }
  // Every change of `mode` once the inode is in the table: with its lock held, and atomic, since
  // the type checks below read it without the lock (the type bits never change, the rest may).
  void store_mode(uint32_t new_mode) noexcept { __atomic_store_n(&mode, new_mode, __ATOMIC_RELAXED); }
  uint32_t type() const { return __atomic_load_n(&mode, __ATOMIC_RELAXED) & S_IFMT; }

  bool is_dir() const { return type() == S_IFDIR; }
  bool is_reg() const { return type() == S_IFREG; }
  bool is_symlink() const { return type() == S_IFLNK; }
  bool is_immutable() const { return flags & PKRAMFS_INODE_IMMUTABLE; }
  bool is_append_only() const { return flags & PKRAMFS_INODE_APPEND; }
  // Neither its name nor its attributes may change (the VFS's IS_IMMUTABLE || IS_APPEND).
  bool is_pinned() const { return flags & (PKRAMFS_INODE_IMMUTABLE | PKRAMFS_INODE_APPEND); }
};

} // namespace pkramfs
