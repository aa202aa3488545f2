// The Filesystem's open files and data: open and release, read (holes read as zeros), write,
// truncate, fallocate (allocate, punch a hole, zero a range; all or nothing, as on tmpfs),
// lseek's SEEK_DATA and SEEK_HOLE, copy_file_range.
#include "fs/filesystem.h"

#include "util/fault.h"
#include "fs/filesystem_internal.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <mutex>
#include <new>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <vector>

namespace pkramfs {
namespace {

// Bytes of zeros that reads point at for holes.
constexpr size_t kZeroBytes = 1 << 20;

const std::byte *zero_bytes() {
  static const std::vector<std::byte> zeros(kZeroBytes);
  return zeros.data();
}

uint64_t blocks_for(uint64_t bytes) { return (bytes + kBlockSize - 1) >> kBlockShift; }

} // namespace

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
    // Frozen (preserved): no open for writing, as on a read-only mount (may_open's EROFS), also
    // because a passthrough descriptor's writes never reach the daemon to be refused.
    if ((truncate || (writes && inode->is_reg())) && frozen_)
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
    if (inode->has_object) { // held while the file is open (release)
      std::unique_lock ilock(inode->lock);
      if (!inode->object.valid()) {
        auto object = objects_->open(ino);
        if (!object) {
          inode->nopen.fetch_sub(1);
          return Errno{object.error()};
        }
        inode->object = std::move(*object);
      }
    }
  }
  if (dropped)
    notify_attributes_changed(ino);
  return {};
}

void Filesystem::release(uint64_t ino) {
  {
    std::shared_lock lock(tree_);
    Inode *inode = find(ino);
    if (!inode || inode->nopen.fetch_sub(1) != 1)
      return;
    if (inode->has_object) { // the last close: the descriptor goes (open() takes it again)
      std::unique_lock ilock(inode->lock);
      if (inode->nopen.load() == 0)
        inode->object.reset();
    }
    if (inode->nlink != 0)
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
  if (inode->has_object)
    return read_object(*inode, offset, size, sink);
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

int Filesystem::object_fd_locked(const Inode &inode, UniqueFd &scratch) const {
  if (inode.object.valid())
    return inode.object.get();
  auto fd = objects_->open(inode.ino);
  if (!fd) {
    errno = fd.error();
    return -1;
  }
  scratch = std::move(*fd);
  return scratch.get();
}

// A file object's bytes, read by the kernel's copy; the object stamps its own atime (stat_of).
Result<void> Filesystem::read_object(Inode &inode, uint64_t offset, uint64_t size, ReadSink &sink) {
  std::shared_lock ilock(inode.lock);
  UniqueFd scratch;
  const int fd = object_fd_locked(inode, scratch);
  if (fd < 0)
    return Errno{errno};
  thread_local std::vector<std::byte> buf;
  if (offset > static_cast<uint64_t>(LLONG_MAX)) {
    sink.deliver({});
    return {};
  }
  try {
    buf.resize(std::min<uint64_t>(size, 1 << 20));
  } catch (const std::bad_alloc &) {
    return Errno{ENOMEM};
  }
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = pread(fd, buf.data() + got, buf.size() - got,
                            static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return Errno{errno};
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  const iovec v{buf.data(), got};
  sink.deliver({&v, 1});
  return {};
}

// Writes into a file object as the kernel would (the object is a tmpfs file).
Result<size_t> Filesystem::write_object_locked(Inode &inode, uint64_t offset, const void *buf,
                                               size_t size) {
  UniqueFd scratch;
  const int fd = object_fd_locked(inode, scratch);
  if (fd < 0)
    return Errno{errno};
  const auto *src = static_cast<const std::byte *>(buf);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pwrite(fd, src + done, size - done,
                             static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      if (done == 0)
        return Errno{errno};
      break;
    }
    done += static_cast<size_t>(n);
  }
  inode.size = std::max(inode.size, offset + done); // the object stamps its times (stat_of)
  return done;
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
  if (inode.has_object)
    return write_object_locked(inode, offset, buf, size);
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
    // `mode` is written under the inode's lock (chmod, the suid drop): read it under it too.
    std::unique_lock ilock(inode->lock);
    if (!inode->is_reg())
      return Errno{EINVAL};
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

Result<void> Filesystem::truncate_locked(Inode &inode, uint64_t size, bool through_file) {
  if (inode.has_object) {
    // tmpfs's own rules (shmem_setattr), as the object is a tmpfs file.
    UniqueFd scratch;
    const int fd = through_file ? object_fd_locked(inode, scratch) : 0;
    if (fd < 0 || (through_file ? ftruncate(fd, static_cast<off_t>(size)) != 0
                                : !objects_->truncate(inode.ino, size)))
      return Errno{errno};
    inode.size = size; // the object stamps its times as tmpfs does (stat_of)
    return {};
  }
  // At the same size tmpfs still runs its page truncation when the file holds any blocks
  // (shmem_setattr: newsize <= oldsize and info->alloced -> shmem_truncate_range(newsize, -1)):
  // it gives back what a KEEP_SIZE fallocate left past EOF and stamps the times (ftruncate and
  // O_TRUNC stamp them anyway, see their callers).
  if (size == inode.size && !inode.extents.allocated_blocks())
    return {};
  if (size <= inode.size)
    free_data(inode, blocks_for(size), UINT64_MAX >> kBlockShift);
  // Bytes past EOF in the last block must read as zero if the file grows again.
  if (size < inode.size && (size & (kBlockSize - 1)))
    zero_range_locked(inode, size, kBlockSize - (size & (kBlockSize - 1)));
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
    // `mode` is written under the inode's lock (chmod, the suid drop): read it under it too.
    std::unique_lock ilock(inode->lock);
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
    if (inode->has_object) { // tmpfs's shmem_fallocate, on the object
      UniqueFd scratch;
      const int fd = object_fd_locked(*inode, scratch);
      if (fd < 0 ||
          ::fallocate(fd, mode, static_cast<off_t>(offset), static_cast<off_t>(length)) != 0)
        return Errno{errno};
    }
    ChangeRecorder recorder(inode->extents);
    if (inode->has_object)
      done = {};
    else if (mode & FALLOC_FL_PUNCH_HOLE)
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
  if (inode->has_object) {
    UniqueFd scratch;
    const int fd = object_fd_locked(*inode, scratch);
    const off_t pos = fd < 0 ? -1 : ::lseek(fd, offset, whence);
    if (pos < 0)
      return Errno{errno};
    return static_cast<uint64_t>(pos);
  }
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
  {
    std::shared_lock lock(tree_);
    const Inode *out = find(ino_out);
    if (out && out->is_immutable()) // generic_copy_file_checks
      return Errno{EPERM};
  }
  constexpr size_t kChunk = 1 << 20;
  size_t done = 0;
  while (done < len) {
    std::vector<std::byte> bytes;
    try {
      bytes.reserve(std::min(kChunk, len - done));
    } catch (const std::bad_alloc &) {
      return done ? Result<size_t>(done) : Errno{ENOMEM};
    }
    AppendSink chunk(bytes);
    if (auto r = read(ino_in, off_in + done, std::min(kChunk, len - done), chunk); !r)
      return done ? Result<size_t>(done) : Errno{r.error()};
    if (bytes.empty())
      break;
    auto w = write(ino_out, off_out + done, bytes.data(), bytes.size(), who);
    if (!w)
      return done ? Result<size_t>(done) : Errno{w.error()};
    done += *w;
    if (*w < bytes.size())
      break;
  }
  return done;
}

} // namespace pkramfs
