// The Filesystem's name space: lookup and forget, creating inodes (mknod, mkdir, symlink,
// create, O_TMPFILE), link, unlink, rmdir, rename (with its exchange and whiteout forms),
// readlink and readdir, each as tmpfs and the VFS do it.
#include "fs/filesystem.h"

#include "util/fault.h"
#include "fs/filesystem_internal.h"
#include "fs/inode_flags.h"
#include "fs/posix_acl.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <sys/stat.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <mutex>
#include <new>
#include <optional>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <vector>

namespace pkramfs {
namespace {

// tmpfs keeps symlink targets up to this length inside the inode; longer ones take a page.
constexpr size_t kShortSymlinkLen = 128;

} // namespace

Result<struct stat> Filesystem::lookup(uint64_t parent, std::string_view name) {
  if (name.size() > kNameMax)
    return Errno{ENAMETOOLONG};
  std::shared_lock lock(tree_);
  // "." and ".." reach the daemon only from kernel FUSE's export operations, never from a path
  // walk (the VFS resolves them): open_by_handle_at of an inode the kernel no longer caches
  // asks for "." of the handle's node id, whatever its type (fuse_get_dentry), and reconnecting
  // a directory's dentry asks for its ".." (fuse_get_parent). Inode numbers are never reused,
  // so a node id names one inode for the node's whole life, across restarts too.
  Inode *child;
  if (name == "." || name == "..") {
    Inode *inode = find(parent);
    if (!inode)
      return Errno{ENOENT};
    if (name == ".." && !inode->is_dir())
      return Errno{ENOTDIR};
    child = name == "." ? inode : find(inode->parent); // the root's parent is itself
    if (!child)
      return Errno{ENOENT};
  } else {
    auto dir = find_dir(parent);
    if (!dir)
      return Errno{dir.error()};
    auto child_ino = (*dir)->dir->find(name);
    if (!child_ino)
      return Errno{ENOENT};
    child = find(*child_ino);
  }
  add_lookup(*child);
  std::shared_lock ilock(child->lock);
  return stat_of(*child);
}

void Filesystem::add_lookup(Inode &inode) {
  inode.nlookup.fetch_add(1);
  if (lookup_mirror_)
    lookup_mirror_->added(inode.ino, 1);
}

void Filesystem::forget(uint64_t ino, uint64_t nlookup) {
  {
    std::shared_lock lock(tree_);
    Inode *inode = find(ino);
    if (!inode)
      return;
    const uint64_t before = inode->nlookup.fetch_sub(std::min(nlookup, inode->nlookup.load()));
    if (lookup_mirror_)
      lookup_mirror_->dropped(ino, nlookup);
    if (before > nlookup || inode->nlink != 0 || inode->nopen.load() != 0)
      return;
  }
  std::unique_lock lock(tree_);
  if (Inode *inode = find(ino))
    drop_inode_if_unused(*inode);
}

void Filesystem::attach(Inode &parent, Directory::Slot &&entry, Inode &child,
                        const timespec &t) noexcept {
  parent.dir->commit(std::move(entry));
  parent.size += kBogoDirentSize;
  if (child.is_dir()) {
    parent.nlink++;
    child.parent = parent.ino;
  }
  parent.mtime = parent.ctime = t;
}

// The next inode, named `name` in `dir`, owned as inode_init_owner makes it: by the caller, in
// the group of a setgid directory, which also hands its setgid bit to new directories (the VFS
// has already stripped S_ISGID where the caller may not keep it).
CreateRecord Filesystem::new_inode_record(const Inode &dir, std::string_view name, uint32_t mode,
                                          const Caller &who) const {
  CreateRecord r;
  r.parent = dir.ino;
  r.ino = next_ino_;
  r.uid = who.uid;
  r.gid = (dir.mode & S_ISGID) ? dir.gid : who.gid;
  r.mode = mode | ((dir.mode & S_ISGID) && S_ISDIR(mode) ? S_ISGID : 0);
  r.time = now();
  r.name.assign(name);
  return r;
}

Result<struct stat> Filesystem::make_node(uint64_t parent_ino, std::string_view name, uint32_t mode,
                                          uint64_t rdev, std::string_view target, const Caller &who,
                                          NewInode how) {
  const bool named = how == NewInode::kNamed || how == NewInode::kNamedOpen;
  if (name.size() > kNameMax)
    return Errno{ENAMETOOLONG};
  if (named && name.empty()) // the VFS never asks; an empty name means O_TMPFILE below
    return Errno{ENOENT};
  maybe_checkpoint();
  return enomem_on_bad_alloc([&]() -> Result<struct stat> {
    std::unique_lock lock(tree_);
    if (frozen_)
      return Errno{EROFS};
    auto parent = find_dir(parent_ino);
    if (!parent)
      return Errno{parent.error()};
    Inode &dir = **parent;
    // An O_TMPFILE inode takes no name, so it may be made in a removed directory, as on tmpfs
    // (vfs_tmpfile checks only the permission to write the directory).
    if (named && dir.nlink == 0)
      return Errno{ENOENT};
    if (named && dir.dir->find(name))
      return Errno{EEXIST};
    // may_create: nobody adds a name to an immutable directory (inode_permission, MAY_WRITE).
    if (dir.is_immutable())
      return Errno{EPERM};
    // Numbers are handed out once each, from next_ino_ up; every inode in the table is below
    // it (load_image and replay keep that). Checked anyway: a number in use would be a second
    // inode under one key (docs/security.md).
    if (next_ino_ >= kInoLimit)
      return Errno{ENOSPC};
    if (find(next_ino_)) {
      spdlog::error("inode number {} is already in use: refusing to create", next_ino_);
      return Errno{EIO};
    }
    CreateRecord r = new_inode_record(dir, name, mode, who);
    r.rdev = (S_ISCHR(mode) || S_ISBLK(mode)) ? rdev : 0;
    // posix_acl_create: the parent's default ACL masks the mode (prepare_create gives the new
    // inode the ACLs that go with it); without one the umask does, which kernel FUSE leaves to
    // us with FUSE_DONT_MASK. Symlinks are always 0777 and get no ACL.
    if (!S_ISLNK(mode)) {
      if (const std::string *default_acl = dir.xattrs.get(kAclDefault)) {
        std::string access;
        r.mode = inherit_acl(*default_acl, r.mode, access);
      } else {
        r.mode &= ~(who.umask & kPermissionBits);
      }
    }
    r.target.assign(target);
    // A regular file of a tree whose files are objects gets its object first: making it is
    // the step that can fail for lack of space (the objects' tmpfs is full of inodes).
    UniqueFd object;
    if (make_objects_ && S_ISREG(r.mode)) {
      auto made = objects_->make(r.ino);
      if (!made)
        return Errno{made.error()};
      object = std::move(*made);
      // Its times are the file's (stat_of): the new inode's, as tmpfs gives a new inode one
      // time for all of them (its birth time too).
      const timespec times[2] = {r.time, r.time};
      (void)futimens(object.get(), times);
    }
    if (!reserve_inode()) {
      if (object.valid())
        objects_->remove(r.ino);
      return Errno{ENOSPC};
    }
    // A long symlink target takes a block of the arena, charged against size= as on tmpfs.
    if (S_ISLNK(mode) && target.size() >= kShortSymlinkLen) {
      auto run = arena_->allocate(1, UINT64_MAX);
      if (!run) {
        unreserve_inode();
        return Errno{run.error()};
      }
      r.target_block = *run;
      std::memcpy(arena_->block(run->start), target.data(), target.size());
    }
    auto prepared =
        enomem_on_bad_alloc([&]() -> Result<PreparedCreate> { return prepare_create(r); });
    if (prepared)
      if (auto logged =
              named ? log_record(PKRAMFS_JREC_CREATE, r)
                    : log_record(PKRAMFS_JREC_TMPFILE,
                                 TmpfileRecord{r.ino, r.parent, r.mode, r.uid, r.gid, r.time});
          !logged)
        prepared = Errno{logged.error()};
    if (!prepared) {
      arena_->free(r.target_block);
      unreserve_inode();
      if (object.valid())
        objects_->remove(r.ino);
      return Errno{prepared.error()};
    }
    // Logged after the file it belongs to: a daemon that dies between the two leaves an empty
    // file in the arena and an object that the next restore sweeps away, both consistent.
    if (object.valid())
      if (auto logged = log_record(PKRAMFS_JREC_OBJECT, ObjectRecord{r.ino}); !logged) {
        objects_->remove(r.ino);
        object.reset();
      }
    Inode &inode = commit_create(r, std::move(*prepared));
    inode.has_object = object.valid();
    if (how != NewInode::kNamed) // open: held until the last release
      inode.object = std::move(object);
    inode.linkable = how == NewInode::kTmpfileLinkable;
    add_lookup(inode);
    if (how != NewInode::kNamed)
      inode.nopen.fetch_add(1);
    return stat_of(inode);
  });
}

Inode &Filesystem::apply_create(const CreateRecord &r) {
  return commit_create(r, prepare_create(r));
}

Filesystem::PreparedCreate Filesystem::prepare_create(const CreateRecord &r) {
  fault::heap();
  auto made = std::make_unique<Inode>();
  Inode &inode = *made;
  inode.ino = r.ino;
  inode.mode = r.mode;
  inode.uid = r.uid;
  inode.gid = r.gid;
  inode.rdev = r.rdev;
  inode.atime = inode.mtime = inode.ctime = r.time;
  // shmem_get_inode: i_crtime is the new inode's mtime. Replay gives it again from the record.
  inode.btime = r.time;
  // The directory it is made in; none only for an O_TMPFILE inode replayed after its directory
  // went (then it inherits nothing: docs/format.md, TMPFILE).
  const Inode *dir = r.parent ? find(r.parent) : nullptr;
  // shmem_get_inode: a new inode takes nodump and noatime from its directory.
  inode.flags = dir ? dir->flags & kInheritedFlags : 0;
  if (S_ISDIR(r.mode)) {
    inode.dir = std::make_unique<Directory>();
    inode.nlink = 2;
    inode.size = 2 * kBogoDirentSize;
  } else {
    inode.nlink = r.name.empty() ? 0 : 1; // no name: O_TMPFILE
  }
  if (S_ISLNK(r.mode)) {
    inode.target = r.target;
    inode.size = r.target.size();
    if (r.target_block.count)
      inode.extents.insert(0, r.target_block, false);
  } else if (const std::string *default_acl = dir ? dir->xattrs.get(kAclDefault) : nullptr) {
    // posix_acl_create, as make_node chose the mode: masking by the default ACL is idempotent,
    // so r.mode (already masked) gives the ACL it gave, and replay gives it again.
    std::string access;
    inherit_acl(*default_acl, r.mode, access);
    if (!access.empty()) {
      inode.xattrs.prepare(kAclAccess);
      inode.xattrs.put(std::string(kAclAccess), std::move(access));
    }
    if (S_ISDIR(r.mode)) { // directories pass their default ACL on
      inode.xattrs.prepare(kAclDefault);
      inode.xattrs.put(std::string(kAclDefault), std::string(*default_acl));
    }
  }
  fault::heap();
  InodeTable one;
  one.emplace(r.ino, std::move(made));
  PreparedCreate prepared{one.extract(r.ino), std::nullopt};
  if (!r.name.empty())
    prepared.entry = dir->dir->prepare(r.name, r.ino);
  make_room_for_one(inodes_);
  return prepared;
}

// r.ino is free (make_node and replay check it) and below kInoLimit. The inode is the one the
// table holds after the insert, never the prepared node's: an insert that did not take it
// would destroy the node with the handle.
Inode &Filesystem::commit_create(const CreateRecord &r, PreparedCreate &&prepared) noexcept {
  next_ino_ = std::max(next_ino_, r.ino + 1);
  auto inserted = inodes_.insert(std::move(prepared.node));
  if (!inserted.inserted) {
    spdlog::critical("inode {} created twice", r.ino);
    std::abort();
  }
  Inode &inode = *inserted.position->second;
  // tmpfs's shmem_tmpfile leaves the directory's times alone: no entry, no change.
  if (prepared.entry)
    attach(*find(r.parent), std::move(*prepared.entry), inode, r.time);
  return inode;
}

Result<struct stat> Filesystem::mknod(uint64_t parent, std::string_view name, uint32_t mode,
                                      uint64_t rdev, const Caller &who) {
  switch (mode & S_IFMT) {
  case S_IFREG:
  case S_IFCHR:
  case S_IFBLK:
  case S_IFIFO:
  case S_IFSOCK:
    break;
  case 0:
    mode |= S_IFREG;
    break;
  default:
    return Errno{EINVAL};
  }
  return make_node(parent, name, mode, rdev, {}, who, NewInode::kNamed);
}

Result<struct stat> Filesystem::mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                                      const Caller &who) {
  return make_node(parent, name, S_IFDIR | (mode & 07777), 0, {}, who, NewInode::kNamed);
}

Result<struct stat> Filesystem::symlink(uint64_t parent, std::string_view name,
                                        std::string_view target, const Caller &who) {
  if (target.size() > PKRAMFS_SYMLINK_MAX)
    return Errno{ENAMETOOLONG};
  return make_node(parent, name, S_IFLNK | 0777, 0, target, who, NewInode::kNamed);
}

Result<struct stat> Filesystem::create(uint64_t parent, std::string_view name, uint32_t mode,
                                       const Caller &who) {
  return make_node(parent, name, S_IFREG | (mode & 07777), 0, {}, who, NewInode::kNamedOpen);
}

Result<struct stat> Filesystem::tmpfile(uint64_t parent, uint32_t mode, bool linkable,
                                        const Caller &who) {
  return make_node(parent, {}, S_IFREG | (mode & 07777), 0, {}, who,
                   linkable ? NewInode::kTmpfileLinkable : NewInode::kTmpfileExclusive);
}

Result<struct stat> Filesystem::link(uint64_t ino, uint64_t parent_ino, std::string_view name) {
  if (name.size() > kNameMax)
    return Errno{ENAMETOOLONG};
  maybe_checkpoint();
  std::unique_lock lock(tree_);
  if (frozen_)
    return Errno{EROFS};
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  if (inode->is_dir())
    return Errno{EPERM};
  auto parent = find_dir(parent_ino);
  if (!parent)
    return Errno{parent.error()};
  Inode &dir = **parent;
  if (dir.nlink == 0)
    return Errno{ENOENT};
  // vfs_link: an inode without links takes a new one only as an O_TMPFILE inode that may be
  // linked (I_LINKABLE: not O_EXCL, not linked before). One given back already has no data.
  if (inode->nlink == 0 && (!inode->linkable || inode->released()))
    return Errno{ENOENT};
  if (dir.dir->find(name))
    return Errno{EEXIST};
  // vfs_link: may_create in the directory, and no new name for an immutable or append-only
  // inode.
  if (dir.is_immutable() || inode->is_pinned())
    return Errno{EPERM};
  // tmpfs charges every extra link against nr_inodes, for the memory its dentry takes; the
  // first link of an O_TMPFILE inode uses the inode's own slot (shmem_link).
  const bool extra_link = inode->nlink != 0;
  if (extra_link && !reserve_inode())
    return Errno{ENOSPC};
  LinkRecord r;
  std::optional<Directory::Slot> entry;
  auto logged = enomem_on_bad_alloc([&]() -> Result<void> {
    r = LinkRecord{ino, parent_ino, now(), std::string(name)};
    entry = dir.dir->prepare(name, ino);
    return log_record(PKRAMFS_JREC_LINK, r);
  });
  if (!logged) {
    if (extra_link)
      unreserve_inode();
    return Errno{logged.error()};
  }
  apply_link(r, std::move(*entry));
  add_lookup(*inode);
  return stat_of(*inode);
}

void Filesystem::apply_link(const LinkRecord &r, Directory::Slot &&entry) noexcept {
  Inode &inode = *find(r.ino);
  inode.nlink++;
  inode.linkable = false; // as vfs_link clears I_LINKABLE
  inode.ctime = r.time;
  attach(*find(r.parent), std::move(entry), inode, r.time);
}

void Filesystem::detach_nondir(Inode &parent, std::string_view name, Inode &child,
                               const timespec &t) {
  parent.dir->remove(name);
  parent.size -= kBogoDirentSize;
  parent.mtime = parent.ctime = t;
  if (child.nlink > 1)
    unreserve_inode(); // the last link's share goes when the inode does
  child.nlink--;
  child.ctime = t;
}

void Filesystem::detach_dir(Inode &parent, std::string_view name, Inode &child, const timespec &t) {
  parent.dir->remove(name);
  parent.size -= kBogoDirentSize;
  parent.nlink--;
  parent.mtime = parent.ctime = t;
  child.nlink = 0;
  child.ctime = t;
}

Result<void> Filesystem::unlink(uint64_t parent_ino, std::string_view name) {
  maybe_checkpoint();
  return enomem_on_bad_alloc([&]() -> Result<void> {
    std::unique_lock lock(tree_);
    if (frozen_)
      return Errno{EROFS};
    auto parent = find_dir(parent_ino);
    if (!parent)
      return Errno{parent.error()};
    auto child_ino = (*parent)->dir->find(name);
    if (!child_ino)
      return Errno{ENOENT};
    Inode *child = find(*child_ino);
    // may_delete: an immutable or append-only directory keeps its names, and such an inode
    // keeps its name.
    if ((*parent)->is_pinned() || child->is_pinned())
      return Errno{EPERM};
    if (child->is_dir())
      return Errno{EISDIR};
    const RemoveRecord r{parent_ino, now(), std::string(name)};
    if (auto logged = log_record(PKRAMFS_JREC_UNLINK, r); !logged)
      return logged;
    detach_nondir(**parent, name, *child, r.time);
    drop_inode_if_unused(*child);
    return {};
  });
}

Result<void> Filesystem::rmdir(uint64_t parent_ino, std::string_view name) {
  maybe_checkpoint();
  return enomem_on_bad_alloc([&]() -> Result<void> {
    std::unique_lock lock(tree_);
    if (frozen_)
      return Errno{EROFS};
    auto parent = find_dir(parent_ino);
    if (!parent)
      return Errno{parent.error()};
    Inode &dir = **parent;
    auto child_ino = dir.dir->find(name);
    if (!child_ino)
      return Errno{ENOENT};
    Inode *child = find(*child_ino);
    if (dir.is_pinned() || child->is_pinned()) // may_delete, as unlink
      return Errno{EPERM};
    if (!child->is_dir())
      return Errno{ENOTDIR};
    if (!child->dir->empty())
      return Errno{ENOTEMPTY};
    const RemoveRecord r{parent_ino, now(), std::string(name)};
    if (auto logged = log_record(PKRAMFS_JREC_RMDIR, r); !logged)
      return logged;
    detach_dir(dir, name, *child, r.time);
    drop_inode_if_unused(*child);
    return {};
  });
}

// Walks up from `dir`. Every directory's parent chain reaches the root without a cycle
// (load_image and replay refuse a tree where it does not); the walk is bounded by the number of
// inodes all the same, and a chain that breaks or runs too long answers true, which refuses
// the rename.
bool Filesystem::is_ancestor(uint64_t ancestor, const Inode &dir) const {
  const Inode *d = &dir;
  for (size_t steps = 0; d && steps <= inodes_.size(); ++steps, d = find(d->parent)) {
    if (d->ino == ancestor)
      return true;
    if (d->ino == kRootIno)
      return false;
  }
  spdlog::error("directory {} does not lead up to the root", dir.ino);
  return true;
}

Result<void> Filesystem::rename(uint64_t parent_ino, std::string_view name, uint64_t new_parent_ino,
                                std::string_view new_name, unsigned flags, const Caller &who) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
    return Errno{EINVAL};
  // do_renameat2: RENAME_EXCHANGE goes with neither of the others.
  if ((flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)) && (flags & RENAME_EXCHANGE))
    return Errno{EINVAL};
  if (new_name.size() > kNameMax)
    return Errno{ENAMETOOLONG};
  maybe_checkpoint();
  return enomem_on_bad_alloc([&]() -> Result<void> {
    std::unique_lock lock(tree_);
    if (frozen_)
      return Errno{EROFS};
    auto old_dir = find_dir(parent_ino);
    if (!old_dir)
      return Errno{old_dir.error()};
    auto new_dir = find_dir(new_parent_ino);
    if (!new_dir)
      return Errno{new_dir.error()};
    if (auto r = check_rename(**old_dir, name, **new_dir, new_name, flags); !r || *r)
      return r ? Result<void>() : Errno{r.error()};
    RenameRecord r{parent_ino, new_parent_ino,    flags,
                   now(),      std::string(name), std::string(new_name)};
    if (flags & RENAME_WHITEOUT)
      return rename_with_whiteout(**old_dir, **new_dir, std::move(r), who);
    Directory::Slot entry;
    if (!(flags & RENAME_EXCHANGE))
      entry = (*new_dir)->dir->prepare(new_name, *(*old_dir)->dir->find(name));
    if (auto logged = log_record(PKRAMFS_JREC_RENAME, r); !logged)
      return logged;
    if (Inode *victim = apply_rename(r, std::move(entry)))
      drop_inode_if_unused(*victim);
    return {};
  });
}

// shmem_rename2 with RENAME_WHITEOUT: the old name is left to a whiteout, a character device
// 0/0 of mode 0 made as shmem_mknod makes it (shmem_whiteout), in the same step and the same
// journal record as the rename. Checked by check_rename already; the tree lock is held.
Result<void> Filesystem::rename_with_whiteout(Inode &old_dir, Inode &new_dir, RenameRecord &&rename,
                                              const Caller &who) {
  if (next_ino_ >= kInoLimit)
    return Errno{ENOSPC};
  if (find(next_ino_)) {
    spdlog::error("inode number {} is already in use: refusing to create", next_ino_);
    return Errno{EIO};
  }
  WhiteoutRenameRecord r;
  CreateRecord whiteout = new_inode_record(old_dir, rename.name, S_IFCHR, who);
  whiteout.time = rename.time;
  r.rename = std::move(rename);
  r.whiteout_ino = whiteout.ino;
  r.uid = whiteout.uid;
  r.gid = whiteout.gid;
  if (!reserve_inode())
    return Errno{ENOSPC};
  // Both slots before the record: the new name in the new directory, the whiteout's in the old
  // one. Each directory gains at most one name in the end, the room prepare() keeps.
  auto prepared = enomem_on_bad_alloc([&]() -> Result<std::pair<Directory::Slot, PreparedCreate>> {
    Directory::Slot entry =
        new_dir.dir->prepare(r.rename.new_name, *old_dir.dir->find(r.rename.name));
    return std::pair{std::move(entry), prepare_create(whiteout)};
  });
  if (prepared)
    if (auto logged = log_record(PKRAMFS_JREC_RENAME_WHITEOUT, r); !logged)
      prepared = Errno{logged.error()};
  if (!prepared) {
    unreserve_inode();
    return Errno{prepared.error()};
  }
  Inode *victim = apply_rename(r.rename, std::move(prepared->first));
  commit_create(whiteout, std::move(prepared->second));
  if (victim)
    drop_inode_if_unused(*victim);
  return {};
}

// Checks a rename the way tmpfs and the VFS do. True: valid but nothing to do (same inode).
Result<bool> Filesystem::check_rename(Inode &od, std::string_view name, Inode &nd,
                                      std::string_view new_name, unsigned flags) const {
  auto src_ino = od.dir->find(name);
  auto dst_ino = nd.dir->find(new_name);
  if (!src_ino || ((flags & RENAME_EXCHANGE) && !dst_ino))
    return Errno{ENOENT};
  if (nd.nlink == 0)
    return Errno{ENOENT};
  if (dst_ino && (flags & RENAME_NOREPLACE))
    return Errno{EEXIST};
  if (dst_ino && *dst_ino == *src_ino)
    return true;
  const Inode *src = find(*src_ino);
  const Inode *dst = dst_ino ? find(*dst_ino) : nullptr;
  if (src->is_dir() && is_ancestor(src->ino, nd))
    return Errno{EINVAL};
  if ((flags & RENAME_EXCHANGE) && dst->is_dir() && is_ancestor(dst->ino, od))
    return Errno{EINVAL};
  // vfs_rename: may_delete of the source, then of the target or may_create in the new
  // directory; an append-only directory takes new names but gives none up.
  if (od.is_pinned() || src->is_pinned() ||
      (dst ? nd.is_pinned() || dst->is_pinned() : nd.is_immutable()))
    return Errno{EPERM};
  if (flags & RENAME_EXCHANGE)
    return false;
  if (dst) {
    if (src->is_dir() && !dst->is_dir())
      return Errno{ENOTDIR};
    if (!src->is_dir() && dst->is_dir())
      return Errno{EISDIR};
    if (dst->is_dir() && !dst->dir->empty())
      return Errno{ENOTEMPTY};
  }
  return false;
}

Inode *Filesystem::apply_rename(const RenameRecord &r, Directory::Slot &&entry) noexcept {
  Inode &od = *find(r.parent), &nd = *find(r.new_parent);
  Inode *src = find(*od.dir->find(r.name));
  auto dst_ino = nd.dir->find(r.new_name);
  Inode *dst = dst_ino ? find(*dst_ino) : nullptr;
  if (r.flags & RENAME_EXCHANGE) {
    od.dir->repoint(r.name, dst->ino);
    nd.dir->repoint(r.new_name, src->ino);
    if (src->is_dir() != dst->is_dir() && od.ino != nd.ino) {
      Inode &gains = src->is_dir() ? nd : od;
      Inode &loses = src->is_dir() ? od : nd;
      gains.nlink++;
      loses.nlink--;
    }
    if (src->is_dir())
      src->parent = nd.ino;
    if (dst->is_dir())
      dst->parent = od.ino;
    od.mtime = od.ctime = nd.mtime = nd.ctime = src->ctime = dst->ctime = r.time;
    return nullptr;
  }
  if (dst) {
    if (dst->is_dir())
      detach_dir(nd, r.new_name, *dst, r.time);
    else
      detach_nondir(nd, r.new_name, *dst, r.time);
  }
  od.dir->remove(r.name);
  od.size -= kBogoDirentSize;
  if (src->is_dir())
    od.nlink--;
  attach(nd, std::move(entry), *src, r.time);
  od.mtime = od.ctime = src->ctime = r.time;
  return dst;
}

Result<std::string> Filesystem::readlink(uint64_t ino) {
  std::shared_lock lock(tree_);
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  if (!inode->is_symlink())
    return Errno{EINVAL};
  touch_atime(*inode);
  return inode->target;
}

Result<void> Filesystem::readdir(uint64_t ino, uint64_t offset, bool plus, DirSink &sink) {
  std::shared_lock lock(tree_);
  auto dir = find_dir(ino);
  if (!dir)
    return Errno{dir.error()};
  Inode &d = **dir;
  // Writes, setattr and xattr changes update an inode under the tree lock (shared) and the
  // inode's own lock: read its attributes under that lock too (ThreadSanitizer: readdirplus
  // raced with write and setxattr on a child's size, blocks and times).
  auto locked_stat = [this](Inode &i) {
    std::shared_lock ilock(i.lock);
    return stat_of(i);
  };
  // Positions (the offset the kernel sends back to resume after an entry, telldir's value):
  // 0 the start, 1 after ".", 2 after "..", a cookie c after the entry with cookie c. Entries
  // come newest first, as on tmpfs, and position c resumes with the entries whose cookie is
  // below c. An entry added during the listing has a cookie above every position handed out,
  // so the listing never meets it: a name removed and added again (xfstests generic/736
  // renames each entry away and back as it reads it) is not returned twice, and a reader that
  // creates entries as it goes still reaches the end. A position whose entry is gone still
  // resumes at the next older one. Position 2 starts at the newest entry of the moment.
  // A checkpoint keeps each entry's cookie and the directory's next one (format version 4), and
  // journal replay assigns cookies in the order the daemon did, so a restore leaves every
  // position valid: the kernel keeps its positions when a new serving process takes the mount
  // over (fuse/holder.h).
  if (offset < 1 && !sink.add(".", locked_stat(d), 1))
    return {};
  Inode *up = find(d.parent); // gone if an unlinked directory's parent went too
  if (offset < 2 && !sink.add("..", locked_stat(up ? *up : d), 2))
    return {};
  const uint64_t before = offset < kFirstCookie ? UINT64_MAX : offset;
  d.dir->for_each_before(before, [&](uint64_t cookie, const DirEntry &e) {
    Inode *child = find(e.ino);
    if (!sink.add(e.name, locked_stat(*child), cookie))
      return false;
    if (plus)
      add_lookup(*child);
    return true;
  });
  touch_atime(d);
  return {};
}

} // namespace pkramfs
