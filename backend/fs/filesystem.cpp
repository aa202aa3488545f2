#include "fs/filesystem.h"

#include "util/fault.h"
#include "fs/inode_flags.h"
#include "fs/posix_acl.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/xattr.h>
#include <mutex>
#include <new>
#include <optional>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <vector>

namespace pkramfs {
namespace {

// tmpfs reports directory sizes as 20 bytes per entry plus two for "." and "..".
constexpr uint64_t kBogoDirentSize = 20;
// tmpfs keeps symlink targets up to this length inside the inode; longer ones take a page.
constexpr size_t kShortSymlinkLen = 128;
// Bytes of zeros that reads point at for holes.
constexpr size_t kZeroBytes = 1 << 20;

const std::byte *zero_bytes() {
  static const std::vector<std::byte> zeros(kZeroBytes);
  return zeros.data();
}

timespec now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

bool older(const timespec &a, const timespec &b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

void touch_mc(Inode &i) { i.mtime = i.ctime = now(); }

uint64_t blocks_for(uint64_t bytes) { return (bytes + kBlockSize - 1) >> kBlockShift; }

// Runs `f`, turning a failed heap allocation into ENOMEM: no exception crosses into the FUSE
// callbacks. Operations allocate before their journal record and change the tree only after
// it, with nothing left that allocates, so a failure here has changed nothing.
template <class F> auto enomem_on_bad_alloc(F &&f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc &) {
    return Errno{ENOMEM};
  }
}

// Grows `v` geometrically so that the next push_back cannot fail.
template <class T> void room_for_one(std::vector<T> &v) {
  if (v.size() < v.capacity())
    return;
  fault::heap();
  v.reserve(2 * v.size() + 4);
}

// The VFS's in_group_p for a file's group: the caller's fsgid or a supplementary group.
bool in_file_group(const Inode &inode, const Caller &who, const Credentials &creds) {
  return inode.gid == who.gid ||
         std::find(creds.groups.begin(), creds.groups.end(), inode.gid) != creds.groups.end();
}

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

Filesystem::Filesystem(std::unique_ptr<Arena> arena, const FsConfig &config)
    : arena_(std::move(arena)), config_(config) {
  auto root = std::make_unique<Inode>();
  root->ino = kRootIno;
  root->mode = S_IFDIR | (config.root_mode & 07777);
  root->uid = config.root_uid;
  root->gid = config.root_gid;
  root->nlink = 2;
  root->size = 2 * kBogoDirentSize;
  root->atime = root->mtime = root->ctime = now();
  root->btime = root->ctime;
  root->parent = kRootIno;
  root->dir = std::make_unique<Directory>();
  inodes_.emplace(kRootIno, std::move(root));
  used_inodes_ = 1;
}

Filesystem::~Filesystem() = default;

// ---------------------------------------------------------------------------------------------
// Inode table

Inode *Filesystem::find(uint64_t ino) const {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : it->second.get();
}

Result<Inode *> Filesystem::find_dir(uint64_t ino) const {
  Inode *dir = find(ino);
  if (!dir)
    return Errno{ENOENT};
  if (!dir->is_dir())
    return Errno{ENOTDIR};
  return dir;
}

bool Filesystem::reserve_inode() {
  uint64_t used = used_inodes_.load();
  do {
    if (used >= config_.max_inodes)
      return false;
  } while (!used_inodes_.compare_exchange_weak(used, used + 1));
  return true;
}

void Filesystem::unreserve_inode() { used_inodes_.fetch_sub(1); }

uint64_t Filesystem::inode_count() const {
  std::shared_lock lock(tree_);
  return inodes_.size();
}

void Filesystem::release_if_dead(Inode &inode) {
  if (inode.nlink != 0 || inode.nopen.load() != 0 || !inode.charged || inode.ino == kRootIno)
    return;
  // A closed O_TMPFILE inode that linkat can still name through a descriptor the kernel holds
  // (O_PATH, /proc/self/fd): tmpfs keeps its data until the inode itself goes (evict), and so
  // does this until the kernel forgets it. Nothing else can reach a file without a name, so
  // that comes as soon as the last descriptor closes.
  if (inode.linkable && inode.nlookup.load() != 0)
    return;
  // Logged first: once its blocks are free another file may take them.
  if (auto logged = log_record(PKRAMFS_JREC_RELEASE, ReleaseRecord{inode.ino}); !logged)
    spdlog::error("journal: cannot record the release of inode {}", inode.ino);
  apply_release(inode);
}

void Filesystem::apply_release(Inode &inode) {
  // Its record is written (or replayed): the blocks go back at once, with nothing to allocate.
  inode.extents.remove(0, UINT64_MAX >> kBlockShift, [&](BlockRun run) { arena_->free(run); });
  unreserve_inode();
  inode.charged = false;
}

void Filesystem::drop_inode_if_unused(Inode &inode) {
  release_if_dead(inode);
  if (inode.nlink != 0 || inode.nlookup.load() != 0 || inode.nopen.load() != 0 ||
      inode.ino == kRootIno)
    return;
  inodes_.erase(inode.ino);
}

bool Filesystem::drop_privileges_locked(Inode &inode, const Caller &who) {
  // The VFS rule (setattr_should_drop_suidgid): suid always goes; sgid goes when group-exec
  // is set or the caller is not in the file's group; neither when the caller has CAP_FSETID.
  if (!inode.is_reg() || !(inode.mode & (S_ISUID | S_ISGID)))
    return false;
  const Credentials creds = who.credentials();
  if (creds.cap_fsetid)
    return false;
  uint32_t kill = inode.mode & S_ISUID;
  if ((inode.mode & S_ISGID) && ((inode.mode & S_IXGRP) || !in_file_group(inode, who, creds)))
    kill |= S_ISGID;
  inode.mode &= ~kill;
  return kill != 0;
}

bool Filesystem::kill_on_chown_locked(Inode &inode, const Caller &who) {
  // The VFS rule for chown (chown_common, notify_change): suid always goes, also for root;
  // sgid goes with group-exec, or when the caller is outside the file's group and lacks
  // CAP_FSETID. Directories keep both. With FUSE_HANDLE_KILLPRIV_V2 the kernel leaves this to
  // the filesystem; without it the kernel's mode arrives first and this finds nothing to do.
  if (inode.is_dir() || !(inode.mode & (S_ISUID | S_ISGID)))
    return false;
  uint32_t kill = inode.mode & S_ISUID;
  if (inode.mode & S_ISGID) {
    if (inode.mode & S_IXGRP) {
      kill |= S_ISGID;
    } else if (inode.gid != who.gid) { // the credentials only when the answer needs them
      const Credentials creds = who.credentials();
      if (!in_file_group(inode, who, creds) && !creds.cap_fsetid)
        kill |= S_ISGID;
    }
  }
  inode.mode &= ~kill;
  return kill != 0;
}

void Filesystem::notify_attributes_changed(uint64_t ino) {
  if (attributes_changed_)
    attributes_changed_(ino);
}

// Freed blocks wait in `pending_frees` until the operation's journal record is written, so
// that no other operation can take them and be logged first.
namespace {
thread_local std::vector<BlockRun> pending_frees;
}

void Filesystem::free_data(Inode &inode, uint64_t first_block, uint64_t end_block) {
  // Room for every run first: once remove() starts it must not fail half way.
  const size_t runs = inode.extents.count_in(first_block, end_block);
  if (pending_frees.size() + runs > pending_frees.capacity()) {
    fault::heap();
    pending_frees.reserve(2 * (pending_frees.size() + runs));
  }
  inode.extents.remove(first_block, end_block, [&](BlockRun run) { pending_frees.push_back(run); });
}

void Filesystem::release_pending() {
  for (const BlockRun &run : pending_frees)
    arena_->free(run);
  pending_frees.clear();
}

Result<void> Filesystem::log_inode(const Inode &i, std::vector<ExtentChange> &&changes) {
  if (i.released()) { // a chmod or utimes through an O_PATH descriptor: nothing to keep
    release_pending();
    return {};
  }
  InodeRecord r{i.ino, i.mode, i.uid, i.gid, i.size, i.atime, i.mtime, i.ctime, std::move(changes)};
  auto logged = log_record(PKRAMFS_JREC_INODE, r);
  if (!logged)
    spdlog::error("journal: cannot record a change of inode {}: {}", i.ino,
                  std::strerror(logged.error()));
  release_pending();
  return logged;
}

struct stat Filesystem::stat_of(const Inode &i) const {
  struct stat st {};
  st.st_ino = i.ino;
  st.st_mode = i.mode;
  st.st_nlink = i.nlink;
  st.st_uid = i.uid;
  st.st_gid = i.gid;
  st.st_rdev = i.rdev;
  st.st_size = static_cast<off_t>(i.size);
  st.st_blksize = kBlockSize;
  st.st_blocks = static_cast<blkcnt_t>(i.extents.allocated_blocks() * (kBlockSize / 512));
  st.st_atim = i.atime;
  st.st_mtim = i.mtime;
  st.st_ctim = i.ctime;
  return st;
}

// ---------------------------------------------------------------------------------------------
// Name space

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
  child->nlookup.fetch_add(1);
  std::shared_lock ilock(child->lock);
  return stat_of(*child);
}

void Filesystem::forget(uint64_t ino, uint64_t nlookup) {
  {
    std::shared_lock lock(tree_);
    Inode *inode = find(ino);
    if (!inode)
      return;
    const uint64_t before = inode->nlookup.fetch_sub(std::min(nlookup, inode->nlookup.load()));
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
    if (!reserve_inode())
      return Errno{ENOSPC};
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
      return Errno{prepared.error()};
    }
    Inode &inode = commit_create(r, std::move(*prepared));
    inode.linkable = how == NewInode::kTmpfileLinkable;
    inode.nlookup.fetch_add(1);
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
  if (target.size() >= PATH_MAX)
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
  inode->nlookup.fetch_add(1);
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
  // Cookies live only in memory: a checkpoint stores the entries oldest first and a restore
  // numbers them again from kFirstCookie in that order, keeping the listing order but not the
  // values (the kernel's directory positions die with the FUSE connection today; a restart
  // that kept the connection would have to store the cookies in the node format too).
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
      child->nlookup.fetch_add(1);
    return true;
  });
  touch_atime(d);
  return {};
}

// ---------------------------------------------------------------------------------------------
// Attributes

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
    if (auto r = enomem_on_bad_alloc([&] { return truncate_locked(*inode, a.size); }); !r)
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
    inode.mode &= ~S_ISGID;
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
    inode.mode = (inode.mode & ~kPermissionBits) | acl.permissions;
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

// ---------------------------------------------------------------------------------------------
// Open files and data

Result<void> Filesystem::open(uint64_t ino, int flags, const Caller &who) {
  const bool truncate = flags & O_TRUNC;
  const bool writes = (flags & O_ACCMODE) != O_RDONLY;
  bool dropped = false;
  if (truncate)
    maybe_checkpoint();
  {
    std::shared_lock lock(tree_);
    Inode *inode = find(ino);
    if (!inode)
      return Errno{ENOENT};
    if (truncate && frozen_)
      return Errno{EROFS};
    // may_open: no write access to an immutable inode (inode_permission), to an append-only
    // one only with O_APPEND, and O_TRUNC (which asks for MAY_WRITE) for neither.
    if ((inode->is_immutable() && (writes || truncate)) ||
        (inode->is_append_only() && ((writes && !(flags & O_APPEND)) || truncate)))
      return Errno{EPERM};
    if (truncate && inode->is_reg() && !inode->released()) {
      std::unique_lock ilock(inode->lock);
      ChangeRecorder recorder(inode->extents);
      if (auto r = enomem_on_bad_alloc([&] { return truncate_locked(*inode, 0); }); !r)
        return r;
      touch_mc(*inode); // even when it was empty already
      dropped = drop_privileges_locked(*inode, who);
      if (auto logged = log_inode(*inode, recorder.take()); !logged)
        return logged;
    }
    inode->nopen.fetch_add(1);
  }
  if (dropped)
    notify_attributes_changed(ino);
  return {};
}

void Filesystem::release(uint64_t ino) {
  {
    std::shared_lock lock(tree_);
    Inode *inode = find(ino);
    if (!inode || inode->nopen.fetch_sub(1) != 1 || inode->nlink != 0)
      return;
  }
  std::unique_lock lock(tree_);
  if (Inode *inode = find(ino))
    drop_inode_if_unused(*inode);
}

Result<void> Filesystem::read(uint64_t ino, uint64_t offset, uint64_t size, ReadSink &sink) {
  std::shared_lock lock(tree_);
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  if (inode->is_dir())
    return Errno{EISDIR};
  {
    std::shared_lock ilock(inode->lock);
    const uint64_t end = std::min(inode->size, offset + std::min(size, UINT64_MAX - offset));
    thread_local std::vector<iovec> iov;
    iov.clear();
    for (uint64_t pos = offset; pos < end;) {
      const auto m = inode->extents.find(pos >> kBlockShift);
      const uint64_t in_block = pos & (kBlockSize - 1);
      const uint64_t run_bytes =
          m.count > (UINT64_MAX >> kBlockShift) ? UINT64_MAX : (m.count << kBlockShift) - in_block;
      uint64_t n = std::min(end - pos, run_bytes);
      const std::byte *src;
      if (m.mapped && !m.unwritten) {
        src = arena_->block(m.block) + in_block;
      } else {
        n = std::min<uint64_t>(n, kZeroBytes);
        src = zero_bytes();
      }
      iov.push_back({const_cast<std::byte *>(src), n});
      pos += n;
    }
    sink.deliver(iov);
  }
  touch_atime(*inode);
  return {};
}

void Filesystem::touch_atime(Inode &inode) {
  // The kernel leaves atime of FUSE inodes to us (S_NOATIME): its rules (atime_needs_update,
  // relatime_need_update) as the mount options chose them.
  const AtimePolicy::Mode mode = atime_mode_.load(std::memory_order_relaxed);
  if (mode == AtimePolicy::Mode::kNoatime || (inode.flags & PKRAMFS_INODE_NOATIME) ||
      (inode.is_dir() && nodiratime_.load(std::memory_order_relaxed)))
    return;
  // relatime: the first access after a change, or once a day.
  if (mode == AtimePolicy::Mode::kRelatime) {
    std::shared_lock ilock(inode.lock);
    if (older(inode.mtime, inode.atime) && older(inode.ctime, inode.atime) &&
        now().tv_sec - inode.atime.tv_sec < 24 * 3600)
      return;
  }
  if (frozen_)
    return;
  std::unique_lock ilock(inode.lock);
  inode.atime = now();
  (void)log_inode(inode, {});
}

Result<size_t> Filesystem::write_locked(Inode &inode, uint64_t offset, const void *buf,
                                        size_t size) {
  if (size == 0)
    return size_t{0};
  const auto *src = static_cast<const std::byte *>(buf);
  const uint64_t end = offset + size;
  uint64_t pos = offset;
  int error = 0;
  while (pos < end) {
    const uint64_t fblock = pos >> kBlockShift;
    const uint64_t in_block = pos & (kBlockSize - 1);
    auto m = inode.extents.find(fblock);
    if (!m.mapped) {
      const uint64_t want = std::min(blocks_for(end) - fblock, m.count);
      const auto prev = fblock ? inode.extents.find(fblock - 1) : ExtentMap::Lookup{};
      auto run = arena_->allocate(want, prev.mapped ? prev.block + 1 : UINT64_MAX);
      if (!run) {
        error = run.error();
        break;
      }
      // Fresh blocks may hold another file's old data: zero what this write leaves untouched.
      std::byte *first = arena_->block(run->start);
      if (in_block)
        std::memset(first, 0, in_block);
      const uint64_t run_end = (fblock + run->count) << kBlockShift;
      if (end < run_end)
        std::memset(arena_->block(run->start) + (end - (fblock << kBlockShift)), 0, run_end - end);
      // Out of memory for the extent: the write ends here (short, or ENOMEM if nothing).
      if (!enomem_on_bad_alloc([&]() -> Result<void> {
            inode.extents.insert(fblock, *run, false);
            return {};
          })) {
        arena_->free(*run);
        error = ENOMEM;
        break;
      }
      m = {true, run->start, run->count, false};
    }
    const uint64_t n = std::min(end - pos, (m.count << kBlockShift) - in_block);
    std::memcpy(arena_->block(m.block) + in_block, src + (pos - offset), n);
    // Data copied into unwritten blocks still reads as zeros until they are marked written.
    if (m.unwritten && !enomem_on_bad_alloc([&]() -> Result<void> {
          inode.extents.mark_written(fblock, blocks_for(pos + n));
          return {};
        })) {
      error = ENOMEM;
      break;
    }
    pos += n;
  }
  if (pos == offset && size)
    return Errno{error};
  inode.size = std::max(inode.size, pos);
  touch_mc(inode);
  return static_cast<size_t>(pos - offset);
}

Result<size_t> Filesystem::write(uint64_t ino, uint64_t offset, const void *buf, size_t size,
                                 const Caller &who) {
  if (offset > static_cast<uint64_t>(LLONG_MAX) || size > LLONG_MAX - offset)
    return Errno{EFBIG};
  bool dropped = false;
  Result<size_t> written = Errno{ENOENT};
  maybe_checkpoint();
  {
    std::shared_lock lock(tree_);
    if (frozen_)
      return Errno{EROFS};
    Inode *inode = find(ino);
    if (!inode || inode->released())
      return Errno{ENOENT};
    if (!inode->is_reg())
      return Errno{EINVAL};
    std::unique_lock ilock(inode->lock);
    ChangeRecorder recorder(inode->extents);
    written = write_locked(*inode, offset, buf, size);
    if (written && *written) {
      dropped = drop_privileges_locked(*inode, who);
      if (auto logged = log_inode(*inode, recorder.take()); !logged)
        return Errno{logged.error()};
    }
  }
  if (dropped)
    notify_attributes_changed(ino);
  return written;
}

void Filesystem::zero_range_locked(Inode &inode, uint64_t offset, uint64_t length) {
  for (uint64_t pos = offset, end = offset + length; pos < end;) {
    const auto m = inode.extents.find(pos >> kBlockShift);
    const uint64_t in_block = pos & (kBlockSize - 1);
    const uint64_t n = m.count > (UINT64_MAX >> kBlockShift)
                           ? end - pos
                           : std::min(end - pos, (m.count << kBlockShift) - in_block);
    if (m.mapped && !m.unwritten)
      std::memset(arena_->block(m.block) + in_block, 0, n);
    pos += n;
  }
}

Result<void> Filesystem::truncate_locked(Inode &inode, uint64_t size) {
  // At the same size tmpfs still runs its page truncation, which stamps the times when the
  // file holds any blocks (ftruncate and O_TRUNC stamp them anyway, see their callers).
  if (size == inode.size) {
    if (inode.extents.allocated_blocks())
      touch_mc(inode);
    return {};
  }
  if (size < inode.size) {
    free_data(inode, blocks_for(size), UINT64_MAX >> kBlockShift);
    // Bytes past EOF in the last block must read as zero if the file grows again.
    if (size & (kBlockSize - 1))
      zero_range_locked(inode, size, kBlockSize - (size & (kBlockSize - 1)));
  }
  inode.size = size;
  touch_mc(inode);
  return {};
}

// All or nothing, as on tmpfs: gives back what a failed fallocate took. Removing a run may have
// to split an extent it merged with; if even that finds no memory, the rest stays allocated
// (recorded in the journal like the rest of the operation) and the call still fails.
Result<void> Filesystem::undo_allocation(Inode &inode,
                                         const std::vector<std::pair<uint64_t, BlockRun>> &added,
                                         int error) {
  // Not structured bindings: clang 14 (the fuzzers' compiler) cannot capture them.
  for (const auto &run : added)
    if (!enomem_on_bad_alloc([&]() -> Result<void> {
          free_data(inode, run.first, run.first + run.second.count);
          return {};
        }))
      break;
  return Errno{error};
}

Result<void> Filesystem::allocate_range(Inode &inode, uint64_t first, uint64_t end, bool keep_size,
                                        uint64_t new_size) {
  // tmpfs refuses a range larger than the whole filesystem up front, allocated or not.
  if (end - first > arena_->limit_blocks())
    return Errno{ENOSPC};
  std::vector<std::pair<uint64_t, BlockRun>> added;
  for (uint64_t fb = first; fb < end;) {
    auto m = inode.extents.find(fb);
    if (m.mapped) {
      // tmpfs turns blocks that an earlier fallocate left unwritten into data when a later
      // fallocate covers them again.
      const uint64_t n = std::min(end - fb, m.count);
      if (m.unwritten)
        if (auto r = enomem_on_bad_alloc([&]() -> Result<void> {
              inode.extents.mark_written(fb, fb + n);
              return {};
            });
            !r)
          return undo_allocation(inode, added, r.error());
      fb += n;
      continue;
    }
    const auto prev = fb ? inode.extents.find(fb - 1) : ExtentMap::Lookup{};
    auto run =
        arena_->allocate(std::min(end - fb, m.count), prev.mapped ? prev.block + 1 : UINT64_MAX);
    if (!run)
      return undo_allocation(inode, added, run.error());
    std::memset(arena_->block(run->start), 0, run->count << kBlockShift);
    if (auto r = enomem_on_bad_alloc([&]() -> Result<void> {
          room_for_one(added);
          inode.extents.insert(fb, *run, true);
          return {};
        });
        !r) {
      arena_->free(*run);
      return undo_allocation(inode, added, r.error());
    }
    added.emplace_back(fb, *run);
    fb += run->count;
  }
  if (!keep_size && new_size > inode.size)
    inode.size = new_size;
  touch_mc(inode);
  return {};
}

Result<void> Filesystem::fallocate(uint64_t ino, int mode, uint64_t offset, uint64_t length,
                                   const Caller &who) {
  // vfs_fallocate's checks in its order, then tmpfs's own (shmem_fallocate).
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
    return Errno{EOPNOTSUPP};
  if (length == 0)
    return Errno{EINVAL};
  bool dropped = false;
  Result<void> done;
  maybe_checkpoint();
  {
    std::shared_lock lock(tree_);
    if (frozen_)
      return Errno{EROFS};
    Inode *inode = find(ino);
    if (!inode || inode->released())
      return Errno{ENOENT};
    // vfs_fallocate: an append-only file may only be given space, an immutable one nothing.
    if (((mode & ~FALLOC_FL_KEEP_SIZE) && inode->is_append_only()) || inode->is_immutable())
      return Errno{EPERM};
    if (!inode->is_reg())
      return Errno{inode->is_dir() ? EISDIR : ENODEV};
    if (offset > static_cast<uint64_t>(LLONG_MAX) || length > LLONG_MAX - offset)
      return Errno{EFBIG};
    // Like tmpfs: no FALLOC_FL_ZERO_RANGE, COLLAPSE_RANGE or INSERT_RANGE.
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
      return Errno{EOPNOTSUPP};
    std::unique_lock ilock(inode->lock);
    ChangeRecorder recorder(inode->extents);
    if (mode & FALLOC_FL_PUNCH_HOLE)
      done = enomem_on_bad_alloc([&]() -> Result<void> {
        punch_hole_locked(*inode, offset, offset + length);
        return {};
      });
    else
      done = allocate_range(*inode, offset >> kBlockShift, blocks_for(offset + length),
                            mode & FALLOC_FL_KEEP_SIZE, offset + length);
    if (done)
      dropped = drop_privileges_locked(*inode, who);
    // Also after a failed allocation: it may have turned unwritten blocks into data.
    if (auto logged = log_inode(*inode, recorder.take()); !logged && done)
      return logged;
  }
  if (dropped)
    notify_attributes_changed(ino);
  return done;
}

void Filesystem::punch_hole_locked(Inode &inode, uint64_t offset, uint64_t end) {
  const uint64_t first_whole = blocks_for(offset), end_whole = end >> kBlockShift;
  // Freeing the whole blocks is the step that can run out of memory: first, so that a failure
  // leaves the data as it was.
  if (end_whole >= first_whole)
    free_data(inode, first_whole, end_whole);
  zero_range_locked(inode, offset, std::min(end, first_whole << kBlockShift) - offset);
  if (end_whole >= first_whole)
    zero_range_locked(inode, end_whole << kBlockShift, end - (end_whole << kBlockShift));
  touch_mc(inode);
}

Result<uint64_t> Filesystem::lseek(uint64_t ino, int64_t offset, int whence) {
  std::shared_lock lock(tree_);
  Inode *inode = find(ino);
  if (!inode)
    return Errno{ENOENT};
  if (whence != SEEK_DATA && whence != SEEK_HOLE)
    return Errno{EINVAL};
  std::shared_lock ilock(inode->lock);
  const uint64_t size = inode->size;
  if (offset < 0 || static_cast<uint64_t>(offset) >= size)
    return Errno{ENXIO};
  const uint64_t off = static_cast<uint64_t>(offset);
  if (whence == SEEK_DATA) {
    const auto block = inode->extents.next_data(off >> kBlockShift);
    if (!block)
      return Errno{ENXIO};
    const uint64_t pos = std::max(off, *block << kBlockShift);
    if (pos >= size)
      return Errno{ENXIO};
    return pos;
  }
  const uint64_t hole = inode->extents.next_hole(off >> kBlockShift);
  return std::min(size, std::max(off, hole << kBlockShift));
}

Result<size_t> Filesystem::copy_file_range(uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
                                           uint64_t off_out, size_t len, const Caller &who) {
  // Through a bounce buffer, like the kernel's splice fallback that tmpfs uses: holes in the
  // source become written zeros in the destination.
  struct Collect final : ReadSink {
    std::vector<std::byte> bytes;
    void deliver(std::span<const iovec> iov) override {
      for (const iovec &v : iov) {
        auto *p = static_cast<const std::byte *>(v.iov_base);
        bytes.insert(bytes.end(), p, p + v.iov_len);
      }
    }
  };
  {
    std::shared_lock lock(tree_);
    const Inode *out = find(ino_out);
    if (out && out->is_immutable()) // generic_copy_file_checks
      return Errno{EPERM};
  }
  constexpr size_t kChunk = 1 << 20;
  size_t done = 0;
  while (done < len) {
    Collect chunk;
    try {
      chunk.bytes.reserve(std::min(kChunk, len - done));
    } catch (const std::bad_alloc &) {
      return done ? Result<size_t>(done) : Errno{ENOMEM};
    }
    if (auto r = read(ino_in, off_in + done, std::min(kChunk, len - done), chunk); !r)
      return done ? Result<size_t>(done) : Errno{r.error()};
    if (chunk.bytes.empty())
      break;
    auto w = write(ino_out, off_out + done, chunk.bytes.data(), chunk.bytes.size(), who);
    if (!w)
      return done ? Result<size_t>(done) : Errno{w.error()};
    done += *w;
    if (*w < chunk.bytes.size())
      break;
  }
  return done;
}

struct statvfs Filesystem::statfs() const {
  struct statvfs st {};
  st.f_bsize = kBlockSize;
  st.f_frsize = kBlockSize;
  // Used = data blocks + the metadata a node charges against size= (its checkpoint slots), so
  // that used + free = size and free is exactly what allocate() can still hand out.
  st.f_blocks = arena_->limit_blocks();
  st.f_bfree = st.f_bavail = arena_->free_blocks();
  if (config_.max_inodes != UINT64_MAX) { // unlimited shows as 0, as on tmpfs
    st.f_files = config_.max_inodes;
    st.f_ffree = st.f_favail = config_.max_inodes - used_inodes_.load();
  }
  st.f_namemax = kNameMax;
  return st;
}

} // namespace pkramfs
