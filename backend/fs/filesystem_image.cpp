// The Filesystem's persistent side: checkpoint images (serialise and load) and journal replay.
// Both read untrusted bytes, so every value is checked before it is used; a failure names
// what is wrong and leaves the caller to refuse the node.
#include "fs/filesystem.h"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <linux/fs.h>
#include <linux/limits.h>
#include <mutex>
#include <spdlog/spdlog.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace pkramfs {
namespace {

constexpr uint32_t kExtentUnwritten = 1;

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= kNameMax && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

bool valid_type(uint32_t mode) {
  switch (mode & S_IFMT) {
  case S_IFREG:
  case S_IFDIR:
  case S_IFLNK:
  case S_IFCHR:
  case S_IFBLK:
  case S_IFIFO:
  case S_IFSOCK:
    return true;
  default:
    return false;
  }
}

// Files end before 2^63 bytes (off_t; the kernel's limit for a FUSE file): a size or an
// extent read from a node beyond it would make byte offsets (block << 12) wrap.
constexpr uint64_t kMaxFileBytes = uint64_t{INT64_MAX};
constexpr uint64_t kMaxFileBlocks = (kMaxFileBytes >> kBlockShift) + 1;
bool within_max_file(uint64_t fblock, uint64_t count) {
  return fblock < kMaxFileBlocks && count <= kMaxFileBlocks - fblock;
}

// What an inode costs against nr_inodes: itself, and every extra link (as on tmpfs).
uint64_t inode_charge(const Inode &i) { return i.is_dir() || i.nlink <= 1 ? 1 : i.nlink; }

// Versions 1 and 2 end the inode record before the birth time (pkramfs/format.h).
static_assert(offsetof(pkramfs_ckpt_inode, btime_sec) == PKRAMFS_CKPT_INODE_V2_BYTES);
static_assert(sizeof(pkramfs_ckpt_inode) == PKRAMFS_CKPT_INODE_V2_BYTES + 16);
size_t ckpt_inode_bytes(uint32_t version) {
  return version >= 3 ? sizeof(pkramfs_ckpt_inode) : PKRAMFS_CKPT_INODE_V2_BYTES;
}

Errno corrupt(std::string &why, std::string what) {
  why = std::move(what);
  return Errno{EUCLEAN};
}

} // namespace

void Filesystem::maybe_checkpoint() {
  if (journal_ && !replaying_ && checkpoint_when_full_ && journal_->needs_checkpoint())
    checkpoint_when_full_();
}

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
  u.data_blocks = arena_->used_blocks();
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

// ---------------------------------------------------------------------------------------------
// Checkpoint images

Result<void>
Filesystem::checkpoint(uint64_t generation,
                       const std::function<Result<void>(std::string_view image)> &store) {
  std::unique_lock lock(tree_);
  std::string image;
  Encoder e(image);
  pkramfs_ckpt_header h{};
  h.magic = PKRAMFS_CKPT_MAGIC;
  h.version = PKRAMFS_FORMAT_VERSION;
  h.header_bytes = sizeof h;
  h.generation = generation;
  h.next_ino = next_ino_;
  e.raw(&h, sizeof h);
  uint64_t count = 0;
  for (auto &[ino, inode] : inodes_) {
    const Inode &i = *inode;
    if (i.nlink == 0 && !i.charged)
      continue; // only the kernel still knows it: nothing left to keep
    pkramfs_ckpt_inode c{};
    c.ino = i.ino;
    c.parent = i.parent;
    c.size = i.size;
    c.rdev = i.rdev;
    c.atime_sec = i.atime.tv_sec;
    c.atime_nsec = static_cast<uint32_t>(i.atime.tv_nsec);
    c.mtime_sec = i.mtime.tv_sec;
    c.mtime_nsec = static_cast<uint32_t>(i.mtime.tv_nsec);
    c.ctime_sec = i.ctime.tv_sec;
    c.ctime_nsec = static_cast<uint32_t>(i.ctime.tv_nsec);
    c.mode = i.mode;
    c.uid = i.uid;
    c.gid = i.gid;
    c.nlink = i.nlink;
    c.nr_xattrs = static_cast<uint32_t>(i.xattrs.items().size());
    c.nr_items = i.is_dir() ? i.dir->size() : i.extents.extents().size();
    c.target_bytes = static_cast<uint32_t>(i.target.size());
    c.flags = i.flags;
    c.btime_sec = i.btime ? i.btime->tv_sec : 0;
    c.btime_nsec = i.btime ? static_cast<uint32_t>(i.btime->tv_nsec) : PKRAMFS_BTIME_UNKNOWN;
    e.raw(&c, sizeof c);
    e.bytes(i.target);
    for (auto &[name, value] : i.xattrs.items()) {
      e.u32(static_cast<uint32_t>(name.size()));
      e.u32(static_cast<uint32_t>(value.size()));
      e.bytes(name);
      e.bytes(value);
    }
    if (i.is_dir()) {
      // Oldest first, the readdir order backwards; the cookies themselves are not stored: a
      // restore numbers the entries again in this order (Filesystem::readdir).
      i.dir->for_each_after(0, [&](uint64_t, const DirEntry &entry) {
        e.u64(entry.ino);
        e.str(entry.name);
        return true;
      });
    } else {
      for (auto &[fblock, ext] : i.extents.extents()) {
        e.u64(fblock);
        e.u64(ext.block);
        e.u64(ext.count);
        e.u32(ext.unwritten ? kExtentUnwritten : 0);
        e.u32(0);
      }
    }
    count++;
  }
  h.bytes = image.size();
  h.nr_inodes = count;
  std::memcpy(image.data(), &h, sizeof h);
  return store(image);
}

Result<void> Filesystem::load_image(std::string_view image, std::string &why) {
  std::unique_lock lock(tree_);
  Decoder d(image.data(), image.size());
  pkramfs_ckpt_header h{};
  if (!d.raw(&h, sizeof h) || h.magic != PKRAMFS_CKPT_MAGIC)
    return corrupt(why, "checkpoint image has no valid header");
  // Every version this build reads: version 1 has no inode flags (the field was reserved, 0),
  // versions 1 and 2 no birth time (a shorter inode record).
  if (h.version < PKRAMFS_FORMAT_VERSION_OLDEST || h.version > PKRAMFS_FORMAT_VERSION ||
      h.header_bytes != sizeof h || h.bytes != image.size())
    return corrupt(why, "checkpoint header does not match its image (version " +
                            std::to_string(h.version) + ", " + std::to_string(h.bytes) + " bytes)");
  const size_t inode_bytes = ckpt_inode_bytes(h.version);
  if (h.nr_inodes > image.size() / inode_bytes)
    return corrupt(why, "checkpoint claims more inodes than it can hold");
  inodes_.clear();
  used_inodes_ = 0;
  arena_->hold_empty_frames();
  uint64_t max_ino = kRootIno;
  for (uint64_t n = 0; n < h.nr_inodes; ++n) {
    pkramfs_ckpt_inode c{}; // versions 1 and 2: the birth time stays unknown
    if (h.version < 3)
      c.btime_nsec = PKRAMFS_BTIME_UNKNOWN;
    if (!d.raw(&c, inode_bytes))
      return corrupt(why, "checkpoint ends inside inode record " + std::to_string(n));
    const std::string where = "inode " + std::to_string(c.ino);
    // A removed directory is given back at once (no open handles keep one), so no checkpoint
    // holds a directory without links.
    if (c.ino == 0 || c.ino >= kInoLimit || inodes_.contains(c.ino) || !valid_type(c.mode) ||
        (S_ISDIR(c.mode) && c.nlink == 0) || c.atime_nsec >= 1000000000u ||
        c.mtime_nsec >= 1000000000u || c.ctime_nsec >= 1000000000u || c.target_bytes >= PATH_MAX ||
        c.size > kMaxFileBytes || (c.flags & ~(h.version >= 2 ? PKRAMFS_INODE_FLAGS : 0u)) ||
        c.reserved != 0 ||
        (c.btime_nsec >= 1000000000u &&
         (c.btime_nsec != PKRAMFS_BTIME_UNKNOWN || c.btime_sec != 0)))
      return corrupt(why, where + " in the checkpoint is invalid or repeated");
    auto inode = std::make_unique<Inode>();
    Inode &i = *inode;
    i.ino = c.ino;
    i.parent = c.parent;
    i.size = c.size;
    i.rdev = c.rdev;
    i.atime = {c.atime_sec, c.atime_nsec};
    i.mtime = {c.mtime_sec, c.mtime_nsec};
    i.ctime = {c.ctime_sec, c.ctime_nsec};
    if (c.btime_nsec != PKRAMFS_BTIME_UNKNOWN)
      i.btime = timespec{c.btime_sec, c.btime_nsec};
    i.mode = c.mode;
    i.uid = c.uid;
    i.gid = c.gid;
    i.nlink = c.nlink;
    i.flags = c.flags;
    i.target.assign(d.bytes(c.target_bytes));
    if (c.nr_xattrs > d.remaining() / 8)
      return corrupt(why, where + " claims more xattrs than the checkpoint holds");
    for (uint32_t x = 0; x < c.nr_xattrs; ++x) {
      const uint32_t name_len = d.u32(), value_len = d.u32();
      if (name_len > XATTR_NAME_MAX || value_len > XATTR_SIZE_MAX)
        return corrupt(why, where + " has an xattr of impossible size");
      const std::string_view name = d.bytes(name_len), value = d.bytes(value_len);
      if (!d.ok())
        break; // reported below
      // The names setxattr would have taken, once each; ACLs as setxattr stores them.
      if (!check_xattr_name(name) || i.xattrs.get(name))
        return corrupt(why, where + " has an invalid or repeated xattr name");
      if (is_acl_name(name) && !acl_fits(name, value, i.mode))
        return corrupt(why, where + " has an invalid " + std::string(name));
      (void)i.xattrs.set(name, value, true, false);
    }
    if (i.is_dir()) {
      i.dir = std::make_unique<Directory>();
      if (c.nr_items > d.remaining() / 12)
        return corrupt(why, where + " claims more entries than the checkpoint holds");
      for (uint64_t k = 0; k < c.nr_items; ++k) {
        const uint64_t child = d.u64();
        const std::string_view name = d.str(kNameMax);
        if (!d.ok() || !valid_name(name) || i.dir->find(name))
          return corrupt(why, where + " has a bad or repeated directory entry");
        i.dir->add(name, child); // oldest first: cookies kFirstCookie, +1, ... in stored order
      }
    } else {
      if (c.nr_items > d.remaining() / 32)
        return corrupt(why, where + " claims more extents than the checkpoint holds");
      for (uint64_t k = 0; k < c.nr_items; ++k) {
        const uint64_t fblock = d.u64(), block = d.u64(), count = d.u64();
        const uint32_t flags = d.u32();
        (void)d.u32();
        const auto hole = i.extents.find(fblock);
        if (!d.ok() || count == 0 || hole.mapped || hole.count < count ||
            !within_max_file(fblock, count))
          return corrupt(why, where + " has overlapping, empty or out-of-range extents");
        if (!arena_->claim({block, count}))
          return corrupt(why, where + " has blocks " + std::to_string(block) + "+" +
                                  std::to_string(count) + " outside the data area or owned twice");
        i.extents.insert(fblock, {block, count}, flags & kExtentUnwritten);
      }
    }
    if (!d.ok())
      return corrupt(why, "checkpoint ends inside " + where);
    used_inodes_ += inode_charge(i);
    max_ino = std::max(max_ino, i.ino);
    inodes_.emplace(i.ino, std::move(inode));
  }
  if (d.remaining() != 0)
    return corrupt(why, "checkpoint has trailing bytes");
  Inode *root = find(kRootIno);
  if (!root || !root->is_dir())
    return corrupt(why, "checkpoint has no root directory");
  // Names must point at inodes that exist, and directories at their real parent.
  for (const auto &entry : inodes_) {
    const uint64_t ino = entry.first;
    const Inode *inode = entry.second.get();
    if (!inode->is_dir())
      continue;
    bool ok = true;
    inode->dir->for_each_after(0, [&](uint64_t, const DirEntry &e) {
      const Inode *child = find(e.ino);
      ok = child && child->ino != kRootIno && (!child->is_dir() || child->parent == ino);
      return ok;
    });
    if (!ok || !find(inode->parent))
      return corrupt(why, "directory inode " + std::to_string(ino) +
                              " names a missing inode or disagrees with its parent");
  }
  // Link counts, directory sizes: what `pkramfs-ctl check` verifies, a mount requires.
  std::vector<std::string> problems;
  verify_locked(problems);
  if (!problems.empty())
    return corrupt(why, "checkpoint: " + problems.front());
  // Numbers are handed out from next_ino up (make_node), so it must lie above every inode and
  // within the limit: a next_ino at an inode in use would give a second inode that number.
  if (h.next_ino <= max_ino || h.next_ino > kInoLimit)
    return corrupt(why, "checkpoint's next inode number " + std::to_string(h.next_ino) +
                            " is not above its inodes (up to " + std::to_string(max_ino) +
                            ") or beyond " + std::to_string(kInoLimit));
  next_ino_ = h.next_ino;
  replaying_ = true;
  return {};
}

// ---------------------------------------------------------------------------------------------
// Journal replay

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
    if (!check_xattr_name(r.name) || r.name.size() > XATTR_NAME_MAX)
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
  // Unlinked but open when the daemon stopped: nobody can open them again.
  for (auto it = inodes_.begin(); it != inodes_.end();) {
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

} // namespace pkramfs
