// The Filesystem's checkpoint images: serialising the whole tree, and loading one back. An image
// is untrusted bytes, so every value is checked before it is used; a failure names what is
// wrong and leaves the caller to refuse the node.
#include "fs/filesystem.h"

#include "fs/filesystem_internal.h"

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

// What an inode costs against nr_inodes: itself, and every extra link (as on tmpfs).
uint64_t inode_charge(const Inode &i) { return i.is_dir() || i.nlink <= 1 ? 1 : i.nlink; }

// Versions 1 and 2 end the inode record before the birth time (pkramfs/format.h).
static_assert(offsetof(pkramfs_ckpt_inode, btime_sec) == PKRAMFS_CKPT_INODE_V2_BYTES);
static_assert(sizeof(pkramfs_ckpt_inode) == PKRAMFS_CKPT_INODE_V2_BYTES + 16);
size_t ckpt_inode_bytes(uint32_t version) {
  return version >= 3 ? sizeof(pkramfs_ckpt_inode) : PKRAMFS_CKPT_INODE_V2_BYTES;
}

} // namespace

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
    // A file object's size and times are the object's (stat_of): the kernel writes it itself.
    // Kept here too, so that an export carries them and an import gives them to the file.
    const struct stat st = stat_of(i);
    c.size = static_cast<uint64_t>(st.st_size);
    c.rdev = i.rdev;
    c.atime_sec = st.st_atim.tv_sec;
    c.atime_nsec = static_cast<uint32_t>(st.st_atim.tv_nsec);
    c.mtime_sec = st.st_mtim.tv_sec;
    c.mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
    c.ctime_sec = st.st_ctim.tv_sec;
    c.ctime_nsec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
    c.mode = i.mode;
    c.uid = i.uid;
    c.gid = i.gid;
    c.nlink = i.nlink;
    c.nr_xattrs = static_cast<uint32_t>(i.xattrs.items().size());
    c.nr_items = i.is_dir() ? i.dir->size() : i.extents.extents().size();
    c.target_bytes = static_cast<uint32_t>(i.target.size());
    c.flags = i.flags | (i.has_object ? PKRAMFS_INODE_DATA_OBJECT : 0u);
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
      // Oldest first, the readdir order backwards, each with its cookie: a restore keeps every
      // readdir position the kernel may hold (Filesystem::readdir).
      e.u64(i.dir->next_cookie());
      i.dir->for_each_after(0, [&](uint64_t cookie, const DirEntry &entry) {
        e.u64(entry.ino);
        e.u64(cookie);
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
  // versions 1 and 2 no birth time (a shorter inode record), versions 1-3 no readdir cookies,
  // versions 1-4 no file objects.
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
  // Version 1 has no inode flags (the field was reserved, 0); version 5 adds file objects.
  const uint32_t known_flags = (h.version >= 2 ? PKRAMFS_INODE_FLAGS : 0u) |
                               (h.version >= 5 ? PKRAMFS_INODE_DATA_OBJECT : 0u);
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
        c.mtime_nsec >= 1000000000u || c.ctime_nsec >= 1000000000u || c.target_bytes > PKRAMFS_SYMLINK_MAX ||
        c.size > kMaxFileBytes || (c.flags & ~known_flags) ||
        ((c.flags & PKRAMFS_INODE_DATA_OBJECT) && (!S_ISREG(c.mode) || c.nr_items != 0)) ||
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
    i.flags = c.flags & PKRAMFS_INODE_FLAGS;
    i.has_object = c.flags & PKRAMFS_INODE_DATA_OBJECT;
    i.target.assign(d.bytes(c.target_bytes));
    if (c.nr_xattrs > d.remaining() / 8)
      return corrupt(why, where + " claims more xattrs than the checkpoint holds");
    for (uint32_t x = 0; x < c.nr_xattrs; ++x) {
      const uint32_t name_len = d.u32(), value_len = d.u32();
      if (name_len > PKRAMFS_XATTR_NAME_MAX || value_len > PKRAMFS_XATTR_VALUE_MAX)
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
      // Version 4 keeps the cookies; older versions get them again: kFirstCookie, +1, ... in
      // stored order (oldest first).
      const bool cookies = h.version >= 4;
      const uint64_t next_cookie = cookies ? d.u64() : 0;
      if (cookies && (next_cookie < kFirstCookie || next_cookie > PKRAMFS_COOKIE_LIMIT))
        return corrupt(why, where + " has an impossible next readdir cookie");
      if (c.nr_items > d.remaining() / (cookies ? 20 : 12))
        return corrupt(why, where + " claims more entries than the checkpoint holds");
      uint64_t last_cookie = kFirstCookie - 1;
      for (uint64_t k = 0; k < c.nr_items; ++k) {
        const uint64_t child = d.u64();
        const uint64_t cookie = cookies ? d.u64() : 0;
        const std::string_view name = d.str(kNameMax);
        if (!d.ok() || !valid_name(name) || i.dir->find(name))
          return corrupt(why, where + " has a bad or repeated directory entry");
        if (!cookies) {
          i.dir->add(name, child);
          continue;
        }
        if (cookie <= last_cookie || cookie >= next_cookie)
          return corrupt(why, where + " has directory entries out of cookie order");
        last_cookie = cookie;
        i.dir->add_with_cookie(name, child, cookie);
      }
      if (cookies)
        i.dir->set_next_cookie(next_cookie);
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

} // namespace pkramfs
