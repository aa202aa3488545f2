// The Filesystem itself: construction, the inode table, and the machinery every operation shares
// -- journal records and the blocks they free, the checkpoint when the journal fills, the
// suid/sgid rules, stat -- and statfs. The operations are in filesystem_namespace.cpp,
// filesystem_attributes.cpp and filesystem_data.cpp; the persistent side in checkpoint_image.cpp
// and journal_replay.cpp; the whole-tree reports in filesystem_inspect.cpp.
#include "fs/filesystem.h"

#include <algorithm>

#include "util/fault.h"
#include "fs/filesystem_internal.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <spdlog/spdlog.h>
#include <vector>

namespace pkramfs {

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
  if (inode.has_object) { // its pages go with the last reference (a kernel backing file)
    // Not while a node is restored: a restore that is refused must leave its objects as they
    // were; sweep_orphan_objects() removes them once it succeeded.
    if (objects_ && !replaying_)
      objects_->remove(inode.ino);
    inode.object.reset();
    inode.has_object = false;
  }
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
  inode.store_mode(inode.mode & ~kill);
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
  inode.store_mode(inode.mode & ~kill);
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
  struct stat object {};
  if (i.has_object && objects_ && objects_->stat(i.ino, object)) {
    // The kernel reads, writes and maps the object without us (FUSE passthrough): its size,
    // blocks, mtime and atime are the file's (every change of them reaches the object: the
    // kernel's writes and ours, and the times utimes sets, which setattr copies to it). ctime
    // is the later of the two: a chmod or a rename changes only ours. atime is the object's
    // only where reads stamp it (its tmpfs is relatime).
    const auto later = [](const timespec &a, const timespec &b) { return older(a, b) ? b : a; };
    st.st_size = object.st_size;
    st.st_blocks = object.st_blocks;
    st.st_mtim = object.st_mtim;
    st.st_ctim = later(i.ctime, object.st_ctim);
    if (atime_mode_.load(std::memory_order_relaxed) != AtimePolicy::Mode::kNoatime &&
        !(i.flags & PKRAMFS_INODE_NOATIME))
      st.st_atim = object.st_atim;
  }
  return st;
}

void Filesystem::use_objects(const ObjectStore *store) {
  std::unique_lock lock(tree_);
  objects_ = store;
  make_objects_ = make_objects_ && store && !store->read_only();
  fit_objects();
}

void Filesystem::set_metadata_blocks(uint64_t blocks) {
  arena_->set_reserved_blocks(blocks);
  fit_objects();
}

void Filesystem::fit_objects() {
  if (objects_ && !objects_->read_only())
    (void)objects_->resize(arena_->free_blocks() * kBlockSize);
}

void Filesystem::make_objects(bool on) {
  std::unique_lock lock(tree_);
  make_objects_ = on && objects_ && !objects_->read_only();
}

std::vector<uint64_t> Filesystem::missing_objects() const {
  std::shared_lock lock(tree_);
  std::vector<uint64_t> missing;
  struct stat st {};
  for (const auto &[ino, inode] : inodes_)
    if (inode->has_object && (!objects_ || !objects_->stat(ino, st)))
      missing.push_back(ino);
  return missing;
}

std::vector<uint64_t> Filesystem::object_inodes() const {
  std::shared_lock lock(tree_);
  std::vector<uint64_t> inos;
  for (const auto &[ino, inode] : inodes_)
    if (inode->has_object)
      inos.push_back(ino);
  std::sort(inos.begin(), inos.end());
  return inos;
}

void Filesystem::objects_to_arena() {
  std::unique_lock lock(tree_);
  for (auto &[ino, inode] : inodes_)
    inode->has_object = false;
}

Result<void> Filesystem::restore_object_data(uint64_t ino, uint64_t offset, const void *buf,
                                             size_t size) {
  std::unique_lock lock(tree_);
  Inode *inode = find(ino);
  if (!inode || !inode->is_reg() || inode->has_object)
    return Errno{EINVAL};
  if (offset >= inode->size)
    return {};
  size = static_cast<size_t>(std::min<uint64_t>(size, inode->size - offset));
  const timespec mtime = inode->mtime, ctime = inode->ctime;
  const uint64_t file_size = inode->size;
  auto written = write_locked(*inode, offset, buf, size);
  inode->mtime = mtime;
  inode->ctime = ctime;
  inode->size = file_size;
  if (!written)
    return Errno{written.error()};
  if (*written != size)
    return Errno{ENOSPC};
  return {};
}

uint64_t Filesystem::sweep_orphan_objects() {
  std::unique_lock lock(tree_);
  if (!objects_ || objects_->read_only())
    return 0;
  auto all = objects_->list();
  if (!all)
    return 0;
  uint64_t removed = 0;
  for (uint64_t ino : *all) {
    const Inode *inode = find(ino);
    if (!inode || !inode->has_object) {
      objects_->remove(ino);
      removed++;
    }
  }
  return removed;
}

int Filesystem::object_fd(uint64_t ino) const {
  std::shared_lock lock(tree_);
  Inode *inode = find(ino);
  if (!inode || !inode->has_object)
    return -1;
  std::shared_lock ilock(inode->lock);
  return inode->object.valid() ? inode->object.get() : -1;
}

void Filesystem::maybe_checkpoint() {
  if (journal_ && !replaying_ && checkpoint_when_full_ && journal_->needs_checkpoint())
    checkpoint_when_full_();
}

struct statvfs Filesystem::statfs() const {
  struct statvfs st {};
  st.f_bsize = kBlockSize;
  st.f_frsize = kBlockSize;
  // Used = data blocks + the metadata a node charges against size= (its checkpoint slots), so
  // that used + free = size and free is exactly what allocate() can still hand out.
  st.f_blocks = arena_->limit_blocks();
  st.f_bfree = st.f_bavail = arena_->free_blocks();
  if (objects_) { // file objects count against the same size= (their tmpfs has that size too)
    const uint64_t in_objects = std::min<uint64_t>(objects_->used_blocks(), st.f_bfree);
    st.f_bfree = st.f_bavail = st.f_bfree - in_objects;
  }
  if (config_.max_inodes != UINT64_MAX) { // unlimited shows as 0, as on tmpfs
    st.f_files = config_.max_inodes;
    st.f_ffree = st.f_favail = config_.max_inodes - used_inodes_.load();
  }
  st.f_namemax = kNameMax;
  return st;
}

} // namespace pkramfs
