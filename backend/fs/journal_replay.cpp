// Journal replay: the records written since the last checkpoint, applied to the tree a
// checkpoint image gave, and finish_restore() after the last. Records are untrusted bytes, so
// every value is checked before it is used; a failure names what is wrong and leaves the
// caller to refuse the node.
#include "fs/filesystem.h"

#include "fs/filesystem_internal.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <linux/fs.h>
#include <linux/limits.h>
#include <mutex>
#include <spdlog/spdlog.h>
#include <vector>

namespace pkramfs {

Result<void> Filesystem::replay(uint32_t type, std::string_view payload, std::string &why) {
  std::unique_lock lock(tree_);
  Decoder d(payload.data(), payload.size());
  // A directory still in the tree: as live operations answer ENOENT for a removed one, no
  // record adds to or renames into one (its entries would hang off no directory).
  auto dir_of = [&](uint64_t ino) -> Inode * {
    Inode *dir = find(ino);
    return dir && dir->is_dir() && dir->nlink != 0 ? dir : nullptr;
  };
  switch (type) {
  case PKRAMFS_JREC_CREATE: {
    CreateRecord r;
    Inode *dir;
    // A new number, as make_node hands out: above every one so far (next_ino_), below the
    // limit, so never 0, the root or an inode in use.
    if (!decode(d, r) || !(dir = dir_of(r.parent)) || !valid_name(r.name) ||
        dir->dir->find(r.name) || r.ino < next_ino_ || r.ino >= kInoLimit || find(r.ino) ||
        !valid_type(r.mode) || (r.target_block.count && !arena_->claim(r.target_block)))
      return corrupt(why, "journal CREATE record does not fit the tree");
    used_inodes_++;
    apply_create(r);
    return {};
  }
  case PKRAMFS_JREC_LINK: {
    LinkRecord r;
    Inode *dir, *inode;
    if (!decode(d, r) || !(dir = dir_of(r.parent)) || !(inode = find(r.ino)) || inode->is_dir() ||
        !valid_name(r.name) || dir->dir->find(r.name))
      return corrupt(why, "journal LINK record does not fit the tree");
    // An inode without links here is an O_TMPFILE inode getting its first name, which uses
    // its own nr_inodes slot (Filesystem::link). Whether it was linkable is not recorded:
    // live, only such an inode can have been linked, and a checkpoint does not keep the mark.
    if (inode->nlink != 0)
      used_inodes_++;
    apply_link(r, dir->dir->prepare(r.name, r.ino));
    return {};
  }
  case PKRAMFS_JREC_TMPFILE: {
    TmpfileRecord t;
    // A new number as for CREATE; a regular file, the only kind O_TMPFILE makes.
    if (!decode(d, t) || t.ino < next_ino_ || t.ino >= kInoLimit || find(t.ino) || !S_ISREG(t.mode))
      return corrupt(why, "journal TMPFILE record does not fit the tree");
    CreateRecord r; // with no name: an inode without links
    r.ino = t.ino;
    // Inherits from its directory as it did live, if that is still a directory here.
    const Inode *dir = find(t.parent);
    r.parent = dir && dir->is_dir() ? t.parent : 0;
    r.mode = t.mode;
    r.uid = t.uid;
    r.gid = t.gid;
    r.time = t.time;
    used_inodes_++;
    apply_create(r).linkable = true;
    return {};
  }
  case PKRAMFS_JREC_OBJECT: {
    ObjectRecord r;
    Inode *inode;
    // Right after the CREATE or TMPFILE of a regular file, which has no data yet.
    if (!decode(d, r) || !(inode = find(r.ino)) || !inode->is_reg() || inode->has_object ||
        !inode->extents.extents().empty() || inode->size != 0)
      return corrupt(why, "journal OBJECT record does not fit the tree");
    inode->has_object = true;
    return {};
  }
  case PKRAMFS_JREC_UNLINK:
  case PKRAMFS_JREC_RMDIR: {
    RemoveRecord r;
    Inode *dir;
    std::optional<uint64_t> child;
    if (!decode(d, r) || !(dir = dir_of(r.parent)) || !(child = dir->dir->find(r.name)))
      return corrupt(why, "journal UNLINK/RMDIR record names a missing entry");
    Inode &c = *find(*child);
    const bool rmdir = type == PKRAMFS_JREC_RMDIR;
    if (c.is_dir() != rmdir || (rmdir && !c.dir->empty()))
      return corrupt(why, "journal UNLINK/RMDIR record does not fit the tree");
    if (rmdir)
      detach_dir(*dir, r.name, c, r.time);
    else
      detach_nondir(*dir, r.name, c, r.time);
    return {};
  }
  case PKRAMFS_JREC_RENAME: {
    RenameRecord r;
    Inode *od, *nd;
    if (!decode(d, r) || !(od = dir_of(r.parent)) || !(nd = dir_of(r.new_parent)) ||
        !valid_name(r.new_name) || (r.flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)))
      return corrupt(why, "journal RENAME record names missing directories");
    auto checked = check_rename(*od, r.name, *nd, r.new_name, r.flags);
    if (!checked)
      return corrupt(why, "journal RENAME record does not fit the tree");
    if (!*checked)
      apply_rename(r, r.flags & RENAME_EXCHANGE
                          ? Directory::Slot{}
                          : nd->dir->prepare(r.new_name, *od->dir->find(r.name)));
    return {};
  }
  case PKRAMFS_JREC_RENAME_WHITEOUT: {
    // The rename as RENAME checks it, then the whiteout as CREATE checks a new inode.
    WhiteoutRenameRecord r;
    Inode *od, *nd;
    if (!decode(d, r) || !(od = dir_of(r.rename.parent)) || !(nd = dir_of(r.rename.new_parent)) ||
        !valid_name(r.rename.name) || !valid_name(r.rename.new_name) ||
        (r.rename.flags & ~(RENAME_NOREPLACE | RENAME_WHITEOUT)) ||
        !(r.rename.flags & RENAME_WHITEOUT) || r.whiteout_ino < next_ino_ ||
        r.whiteout_ino >= kInoLimit || find(r.whiteout_ino))
      return corrupt(why, "journal RENAME_WHITEOUT record does not fit the tree");
    auto checked = check_rename(*od, r.rename.name, *nd, r.rename.new_name, r.rename.flags);
    if (!checked || *checked) // the same inode under both names made no whiteout
      return corrupt(why, "journal RENAME_WHITEOUT record does not fit the tree");
    CreateRecord whiteout;
    whiteout.parent = r.rename.parent;
    whiteout.ino = r.whiteout_ino;
    whiteout.mode = S_IFCHR;
    whiteout.uid = r.uid;
    whiteout.gid = r.gid;
    whiteout.time = r.rename.time;
    whiteout.name = r.rename.name;
    apply_rename(r.rename, nd->dir->prepare(r.rename.new_name, *od->dir->find(r.rename.name)));
    used_inodes_++;
    apply_create(whiteout);
    return {};
  }
  case PKRAMFS_JREC_FLAGS: {
    FlagsRecord r;
    Inode *inode;
    if (!decode(d, r) || !(inode = find(r.ino)) || (!inode->is_reg() && !inode->is_dir()))
      return corrupt(why, "journal FLAGS record names a missing inode or one without flags");
    apply_flags(r);
    return {};
  }
  case PKRAMFS_JREC_INODE: {
    InodeRecord r;
    if (!decode(d, r))
      return corrupt(why, "journal INODE record is malformed");
    return replay_inode(r, why);
  }
  case PKRAMFS_JREC_XATTR_SET:
  case PKRAMFS_JREC_XATTR_REMOVE: {
    XattrRecord r;
    if (!decode(d, r) || !find(r.ino))
      return corrupt(why, "journal XATTR record names a missing inode");
    if (!check_xattr_name(r.name) || r.name.size() > PKRAMFS_XATTR_NAME_MAX)
      return corrupt(why, "journal XATTR record has an invalid xattr name");
    if (type == PKRAMFS_JREC_XATTR_SET && is_acl_name(r.name) &&
        !acl_fits(r.name, r.value, find(r.ino)->mode))
      return corrupt(why, "journal XATTR record sets an invalid " + r.name);
    find(r.ino)->xattrs.prepare(r.name);
    apply_xattr(std::move(r), type == PKRAMFS_JREC_XATTR_REMOVE);
    return {};
  }
  case PKRAMFS_JREC_RELEASE: {
    ReleaseRecord r;
    Inode *inode;
    if (!decode(d, r) || !(inode = find(r.ino)) || inode->nlink != 0 || !inode->charged)
      return corrupt(why, "journal RELEASE record does not fit the tree");
    apply_release(*inode);
    inodes_.erase(r.ino);
    return {};
  }
  default:
    return corrupt(why, "journal record of unknown type " + std::to_string(type));
  }
}

Result<void> Filesystem::replay_inode(const InodeRecord &r, std::string &why) {
  Inode *inode = find(r.ino);
  if (!inode || (r.mode & S_IFMT) != (inode->mode & S_IFMT))
    return corrupt(why, "journal INODE record names a missing inode " + std::to_string(r.ino));
  if (r.size > kMaxFileBytes)
    return corrupt(why, "journal INODE record gives inode " + std::to_string(r.ino) +
                            " an impossible size");
  for (const ExtentChange &c : r.changes) {
    if (c.kind == ExtentChange::kInsert) {
      const auto hole = inode->extents.find(c.a);
      if (c.c == 0 || hole.mapped || hole.count < c.c || !within_max_file(c.a, c.c) ||
          !arena_->claim({c.b, c.c}))
        return corrupt(why, "journal INODE record maps blocks that are taken, for inode " +
                                std::to_string(r.ino));
    }
    inode->extents.apply(c, [&](BlockRun run) { arena_->free(run); });
  }
  inode->set_mode(r.mode);
  inode->uid = r.uid;
  inode->gid = r.gid;
  inode->size = r.size;
  inode->atime = r.atime;
  inode->mtime = r.mtime;
  inode->ctime = r.ctime;
  return {};
}

void Filesystem::finish_restore() {
  std::unique_lock lock(tree_);
  // Unlinked but open when the daemon stopped: nobody can open them again, unless the kernel
  // kept its mount (adopt_kernel_references decides then).
  for (auto it = inodes_.begin(); it != inodes_.end() && !keep_unlinked_;) {
    Inode &inode = *it->second;
    if (inode.nlink == 0) {
      if (inode.charged)
        apply_release(inode);
      it = inodes_.erase(it);
    } else {
      ++it;
    }
  }
  arena_->release_empty_frames();
  replaying_ = false;
}

void Filesystem::adopt_kernel_references(
    const std::unordered_map<uint64_t, uint32_t> &open_files,
    const std::unordered_map<uint64_t, uint64_t> *lookups) {
  // More than any kernel can hold (it counts in 64 bits but one per lookup reply), and far
  // from wrapping when it forgets.
  constexpr uint64_t kUnknownLookups = 1ull << 62;
  std::unique_lock lock(tree_);
  std::vector<Inode *> unlinked;
  for (auto &[ino, inode] : inodes_) {
    uint64_t nlookup = kUnknownLookups;
    if (lookups) {
      const auto counted = lookups->find(ino);
      nlookup = counted == lookups->end() ? 0 : counted->second;
    }
    inode->nlookup.store(nlookup);
    const auto open = open_files.find(ino);
    inode->nopen.store(open == open_files.end() ? 0 : open->second);
    // An open file holds its object's descriptor (open(), release()).
    if (inode->has_object && inode->nopen.load() != 0 && objects_)
      if (auto object = objects_->open(ino))
        inode->object = std::move(*object);
    if (inode->nlink == 0)
      unlinked.push_back(inode.get());
  }
  for (Inode *inode : unlinked)
    drop_inode_if_unused(*inode);
  arena_->release_empty_frames();
}

uint64_t Filesystem::unlinked_inodes() const {
  std::shared_lock lock(tree_);
  uint64_t n = 0;
  for (const auto &[ino, inode] : inodes_)
    n += inode->nlink == 0;
  return n;
}

} // namespace pkramfs
