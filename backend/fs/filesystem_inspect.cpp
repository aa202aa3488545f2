// What the Filesystem holds, read whole under the tree lock: the usage pkramfs-ctl status
// reports, every data extent (for export images and inspection), and the check of the tree's
// invariants that a restore and pkramfs-ctl check run.
#include "fs/filesystem.h"

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace pkramfs {

Filesystem::Usage Filesystem::usage() const {
  std::shared_lock lock(tree_);
  Usage u;
  for (auto &[ino, inode] : inodes_) {
    if (inode->nlink == 0)
      continue;
    // chmod and the suid/sgid drop of a write change `mode` under the inode's lock with the
    // tree lock shared (pkramfs-ctl status runs this on the control thread meanwhile).
    std::shared_lock ilock(inode->lock);
    if (inode->is_reg())
      u.files++;
    else if (inode->is_dir())
      u.directories++;
    else
      u.others++;
  }
  u.object_blocks = objects_ ? objects_->used_blocks() : 0;
  u.data_blocks = arena_->used_blocks() + u.object_blocks;
  u.metadata_blocks = arena_->reserved_blocks();
  u.data_frames = arena_->frames_in_use();
  return u;
}

std::vector<Filesystem::DataExtent> Filesystem::data_extents() const {
  std::shared_lock lock(tree_);
  std::vector<DataExtent> out;
  for (auto &[ino, inode] : inodes_) {
    const Inode &i = *inode;
    if ((i.nlink == 0 && !i.charged) || i.is_dir())
      continue; // as checkpoint() below
    for (auto &[fblock, ext] : i.extents.extents())
      out.push_back({ino, fblock, ext.block, ext.count, ext.unwritten});
  }
  return out;
}

void Filesystem::verify(std::vector<std::string> &problems) const {
  std::shared_lock lock(tree_);
  verify_locked(problems);
}

void Filesystem::verify_locked(std::vector<std::string> &problems) const {
  std::unordered_map<uint64_t, uint64_t> names; // links counted from directory entries
  for (const auto &entry : inodes_) {
    const uint64_t ino = entry.first;
    const Inode *inode = entry.second.get();
    if (!inode->is_dir())
      continue;
    uint64_t subdirs = 0;
    inode->dir->for_each_after(0, [&](uint64_t, const DirEntry &e) {
      names[e.ino]++;
      const Inode *child = find(e.ino);
      if (child && child->is_dir()) {
        subdirs++;
        if (child->parent != ino)
          problems.push_back("directory " + std::to_string(e.ino) + " (" + e.name +
                             ") names parent " + std::to_string(child->parent) +
                             " but is listed in " + std::to_string(ino));
      }
      return true;
    });
    if (inode->nlink == 0) {
      // Removed during replay, dropped by finish_restore(): it must be empty.
      if (!inode->dir->empty())
        problems.push_back("removed directory " + std::to_string(ino) + " still has entries");
      continue;
    }
    if (inode->nlink != 2 + subdirs)
      problems.push_back("directory " + std::to_string(ino) + " has link count " +
                         std::to_string(inode->nlink) + ", expected " +
                         std::to_string(2 + subdirs));
    if (inode->size != 2 * 20 + 20 * inode->dir->size())
      problems.push_back("directory " + std::to_string(ino) + " has size " +
                         std::to_string(inode->size) + " for " +
                         std::to_string(inode->dir->size()) + " entries");
  }
  for (auto &[ino, inode] : inodes_) {
    // An access ACL and the mode say the same (setxattr, chmod and create keep them in step).
    if (const std::string *acl = inode->xattrs.get(kAclAccess)) {
      const AclMode m = acl_mode(*acl);
      if (!m.extended || m.permissions != (inode->mode & kPermissionBits))
        problems.push_back("inode " + std::to_string(ino) + " has an access ACL that does not " +
                           "go with its mode " + std::to_string(inode->mode & 07777));
    }
    const uint64_t count = names.contains(ino) ? names[ino] : 0;
    if (inode->is_dir()) {
      if (ino != kRootIno && inode->nlink != 0 && count != 1)
        problems.push_back("directory " + std::to_string(ino) + " is named " +
                           std::to_string(count) + " times");
    } else if (inode->nlink != count) {
      problems.push_back("inode " + std::to_string(ino) + " has link count " +
                         std::to_string(inode->nlink) + " but " + std::to_string(count) + " names");
    }
  }
  // Every directory hangs off the root: followed down from the root by entries whose child
  // names that directory as its parent, each is reached once. Directories that name each other
  // (each named once, so the counts above agree) are not, and would send is_ancestor() and
  // ".." round a cycle (docs/security.md). Iterative, each directory visited once.
  const Inode *root = find(kRootIno);
  if (!root || !root->is_dir())
    return;
  std::unordered_set<uint64_t> reached{kRootIno};
  std::vector<const Inode *> todo{root};
  while (!todo.empty()) {
    const Inode *d = todo.back();
    todo.pop_back();
    d->dir->for_each_after(0, [&](uint64_t, const DirEntry &e) {
      const Inode *child = find(e.ino);
      if (child && child->is_dir() && child->parent == d->ino && reached.insert(e.ino).second)
        todo.push_back(child);
      return true;
    });
  }
  for (const auto &[ino, inode] : inodes_)
    if (inode->is_dir() && inode->nlink != 0 && !reached.contains(ino))
      problems.push_back("directory " + std::to_string(ino) +
                         " cannot be reached from the root (directories naming each other)");
}

} // namespace pkramfs
