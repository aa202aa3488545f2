#include "export/image_io.h"

#include <liburing.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <string_view>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace pkramfs {
namespace image_io {

// Test and benchmark knobs, comma separated in PKRAMFS_IMAGE_IO: buffered (no O_DIRECT), sync
// (no io_uring), nofalloc (no space allocated up front: a full disk shows up in a write),
// nosync (no fdatasync at the end: as fio without --end_fsync, for tools/bench/export).
bool knob(std::string_view what) {
  const char *v = getenv("PKRAMFS_IMAGE_IO");
  for (std::string_view rest = v ? v : ""; !rest.empty();) {
    const size_t comma = rest.find(',');
    if (rest.substr(0, comma) == what)
      return true;
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return false;
}

struct Slot {
  bool busy = false;
  uint64_t off = 0; // file offset
  size_t len = 0;   // bytes asked for
  size_t want = 0;  // reads: bytes the file should have there
  size_t got = 0;   // bytes done
};

struct Buffers {
  std::byte *base = nullptr;
  Slot slots[kDepth];
  Buffers() {
    base = static_cast<std::byte *>(std::aligned_alloc(kAlign, kChunk * kDepth));
    if (!base)
      throw std::bad_alloc();
  }
  ~Buffers() { std::free(base); }
  std::byte *at(unsigned slot) const { return base + slot * kChunk; }
};

struct Ring {
  io_uring ring{};
  bool ready = false; // set up
  bool fixed = false; // buffers registered
  ~Ring() {
    if (ready)
      io_uring_queue_exit(&ring);
  }
};

std::unique_ptr<Ring> make_ring(const Buffers &buffers, const std::string &what) {
  if (knob("sync")) {
    spdlog::debug("{}: io_uring disabled by PKRAMFS_IMAGE_IO; using pread/pwrite", what);
    return nullptr;
  }
  auto ring = std::make_unique<Ring>();
  if (const int err = io_uring_queue_init(8 * kDepth, &ring->ring, 0); err < 0) {
    spdlog::debug("{}: io_uring is not available ({}); using pread/pwrite", what,
                  std::strerror(-err));
    return nullptr;
  }
  ring->ready = true;
  iovec iov[kDepth];
  for (unsigned i = 0; i < kDepth; ++i)
    iov[i] = {buffers.at(i), kChunk};
  ring->fixed = io_uring_register_buffers(&ring->ring, iov, kDepth) == 0;
  return ring;
}

// Clears O_DIRECT on `fd` after the filesystem refused a direct request.
// Clears O_DIRECT on `fd`: after the filesystem refused a direct request (`err`), or for an
// unaligned tail (0).
void drop_direct(int fd, bool &direct, const std::string &what, int err) {
  if (!direct)
    return;
  direct = false;
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0)
    (void)fcntl(fd, F_SETFL, flags & ~O_DIRECT);
  if (err)
    spdlog::debug("{}: O_DIRECT request refused ({}); buffered I/O from here on", what,
                  std::strerror(err));
}

// Waits for (or peeks at) one completion: the slot and its result, or false when none.
// user_data of a write_out() request: its id with this flag; a read's is its slot.
constexpr unsigned kWriteFlag = 1u << 16;
// user_data of a writer's background flush.
constexpr unsigned kSyncTag = 1u << 17;
// A writer asks the device to flush in the background every this many bytes, so that a disk
// with a volatile cache (a VM's, often) writes back while the image is still being written
// rather than all of it in the final fdatasync.
constexpr uint64_t kSyncEvery = 256ull << 20;

bool next_completion(Ring &r, bool wait, unsigned &slot, int &res) {
  io_uring_cqe *cqe = nullptr;
  for (;;) {
    const int err = wait ? io_uring_wait_cqe(&r.ring, &cqe) : io_uring_peek_cqe(&r.ring, &cqe);
    if (err == -EINTR)
      continue;
    if (err < 0 || !cqe)
      return false;
    break;
  }
  slot = static_cast<unsigned>(reinterpret_cast<uintptr_t>(io_uring_cqe_get_data(cqe)));
  res = cqe->res;
  io_uring_cqe_seen(&r.ring, cqe);
  return true;
}

} // namespace image_io

using namespace image_io;

// ------------------------------------------------------------------------ writer --

Result<std::unique_ptr<ImageWriter>> ImageWriter::create(const std::string &path,
                                                         uint64_t expected_bytes) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid())
    return Errno{errno};
  std::unique_ptr<ImageWriter> w(new ImageWriter);
  w->path_ = path; // from here on the destructor removes the file
  w->fd_ = std::move(fd);
  const int flags = fcntl(w->fd_.get(), F_GETFL);
  if (knob("buffered")) {
    spdlog::debug("{}: O_DIRECT disabled by PKRAMFS_IMAGE_IO; buffered I/O", path);
  } else if (flags >= 0 && fcntl(w->fd_.get(), F_SETFL, flags | O_DIRECT) == 0) {
    w->direct_ = true;
  } else {
    spdlog::debug("{}: the filesystem refuses O_DIRECT ({}); buffered I/O", path,
                  std::strerror(errno));
  }
  if (expected_bytes && !knob("nofalloc") &&
      ::fallocate(w->fd_.get(), 0, 0, static_cast<off_t>(expected_bytes)) != 0) {
    if (errno != EOPNOTSUPP && errno != ENOSYS) {
      w->error_ = errno;
      return Errno{errno};
    }
    spdlog::debug("{}: cannot allocate its space up front ({})", path, std::strerror(errno));
  }
  w->buffers_ = std::make_unique<Buffers>();
  w->ring_ = make_ring(*w->buffers_, path);
  return w;
}

ImageWriter::~ImageWriter() {
  // The kernel must be done with the buffers before they go.
  for (;;) {
    bool any = ring_ && syncs_pending_;
    for (unsigned i = 0; ring_ && i < kDepth; ++i)
      any |= buffers_->slots[i].busy;
    unsigned tag;
    int res;
    if (!any || !next_completion(*ring_, true, tag, res))
      break;
    if (tag == kSyncTag)
      syncs_pending_--;
    else if (tag < kDepth)
      buffers_->slots[tag].busy = false;
  }
  ring_.reset();
  fd_.reset();
  if (!finished_ && !path_.empty())
    ::unlink(path_.c_str());
}

std::span<std::byte> ImageWriter::space() { return {buffers_->at(cur_) + fill_, kChunk - fill_}; }

Result<void> ImageWriter::commit(size_t n) {
  fill_ += n;
  offset_ += n;
  if (fill_ == kChunk)
    return submit(kChunk);
  if (error_)
    return Errno{error_};
  return {};
}

Result<void> ImageWriter::write(const void *data, size_t n) {
  const auto *p = static_cast<const std::byte *>(data);
  while (n) {
    const auto room = space();
    const size_t k = std::min(n, room.size());
    std::memcpy(room.data(), p, k);
    p += k;
    n -= k;
    if (auto r = commit(k); !r)
      return r;
  }
  return {};
}

Result<void> ImageWriter::submit(size_t len) {
  const unsigned slot = cur_;
  Slot &s = buffers_->slots[slot];
  s = {true, flushed_, len, len, 0};
  flushed_ += fill_;
  cur_ = (cur_ + 1) % kDepth;
  fill_ = 0;
  if (!ring_) {
    if (auto r = write_sync(slot, 0); !r)
      return r;
  } else {
    io_uring_sqe *sqe = io_uring_get_sqe(&ring_->ring);
    if (!sqe) {
      (void)io_uring_submit(&ring_->ring);
      sqe = io_uring_get_sqe(&ring_->ring);
    }
    if (!sqe)
      return write_sync(slot, 0);
    if (ring_->fixed)
      io_uring_prep_write_fixed(sqe, fd_.get(), buffers_->at(slot), static_cast<unsigned>(len),
                                s.off, static_cast<int>(slot));
    else
      io_uring_prep_write(sqe, fd_.get(), buffers_->at(slot), static_cast<unsigned>(len), s.off);
    io_uring_sqe_set_data(sqe, reinterpret_cast<void *>(static_cast<uintptr_t>(slot)));
    if (flushed_ - synced_ >= kSyncEvery && !knob("nosync")) {
      if (io_uring_sqe *fs = io_uring_get_sqe(&ring_->ring)) {
        io_uring_prep_fsync(fs, fd_.get(), IORING_FSYNC_DATASYNC);
        io_uring_sqe_set_data(fs, reinterpret_cast<void *>(static_cast<uintptr_t>(kSyncTag)));
        syncs_pending_++;
        synced_ = flushed_;
      }
    }
    if (const int err = io_uring_submit(&ring_->ring); err < 0)
      return write_sync(slot, 0); // not queued: do it here
  }
  return wait_free(cur_);
}

Result<void> ImageWriter::wait_free(unsigned slot) {
  while (buffers_->slots[slot].busy)
    if (auto r = reap(true); !r)
      return r;
  if (error_)
    return Errno{error_};
  return {};
}

Result<void> ImageWriter::reap(bool wait) {
  unsigned slot;
  int res;
  if (!ring_ || !next_completion(*ring_, wait, slot, res)) {
    if (wait) {
      // The ring failed: finish every busy slot here.
      for (unsigned i = 0; i < kDepth; ++i)
        if (buffers_->slots[i].busy)
          (void)write_sync(i, 0);
    }
    return {};
  }
  if (slot == kSyncTag) {
    syncs_pending_--;
    if (res < 0 && !error_) {
      error_ = -res;
      error_offset_ = synced_;
    }
  } else if (slot < kDepth) {
    complete(slot, res);
  }
  return {};
}

void ImageWriter::complete(unsigned slot, int res) {
  Slot &s = buffers_->slots[slot];
  if (res < 0 && -res == EINVAL && direct_) {
    drop_direct(fd_.get(), direct_, path_, EINVAL);
    (void)write_sync(slot, 0);
    return;
  }
  if (res < 0) {
    s.busy = false;
    if (!error_) {
      error_ = -res;
      error_offset_ = s.off;
    }
    return;
  }
  if (static_cast<size_t>(res) < s.len) {
    (void)write_sync(slot, static_cast<size_t>(res)); // a short write: the rest, or its error
    return;
  }
  s.busy = false;
}

Result<void> ImageWriter::write_sync(unsigned slot, size_t done) {
  Slot &s = buffers_->slots[slot];
  while (done < s.len) {
    const ssize_t n = ::pwrite(fd_.get(), buffers_->at(slot) + done, s.len - done,
                               static_cast<off_t>(s.off + done));
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    const int err = n == 0 ? ENOSPC : errno;
    if (err == EINTR)
      continue;
    if (err == EINVAL && direct_) {
      drop_direct(fd_.get(), direct_, path_, err);
      continue;
    }
    s.busy = false;
    if (!error_) {
      error_ = err;
      error_offset_ = s.off + done;
    }
    return Errno{err};
  }
  s.busy = false;
  return {};
}

Result<void> ImageWriter::finish() {
  if (error_)
    return Errno{error_};
  // O_DIRECT writes whole aligned blocks: the last few bytes go through the page cache, so
  // that the file ends where the image does without a truncate (which costs a journal
  // transaction on ext4).
  const unsigned last = cur_;
  const size_t len = fill_;
  const size_t head = direct_ ? len / kAlign * kAlign : len;
  const uint64_t at = flushed_;
  if (head)
    if (auto r = submit(head); !r)
      return r;
  for (unsigned i = 0; i < kDepth; ++i)
    if (auto r = wait_free(i); !r)
      return r;
  while (syncs_pending_)
    if (auto r = reap(true); !r)
      return r;
  if (error_)
    return Errno{error_};
  if (head < len) {
    tail_buffered_ = direct_;
    drop_direct(fd_.get(), direct_, path_, 0);
    Slot &s = buffers_->slots[last];
    s = {true, at, len, len, 0};
    if (auto r = write_sync(last, head); !r)
      return r;
  }
  struct stat st {};
  const bool exact = ::fstat(fd_.get(), &st) == 0 && static_cast<uint64_t>(st.st_size) == offset_;
  if ((!exact && ::ftruncate(fd_.get(), static_cast<off_t>(offset_)) != 0) ||
      (!knob("nosync") && ::fdatasync(fd_.get()) != 0)) {
    error_ = errno;
    error_offset_ = offset_;
    return Errno{error_};
  }
  if (::close(fd_.release()) != 0 && errno != EINTR) {
    error_ = errno;
    error_offset_ = offset_;
    return Errno{error_};
  }
  finished_ = true;
  return {};
}

// ------------------------------------------------------------------------ reader --

Result<std::unique_ptr<ImageReader>> ImageReader::open(const std::string &path) {
  std::unique_ptr<ImageReader> r(new ImageReader);
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer before the S_ISREG check
  // below could refuse it. Cleared again once it is known to be a regular file (io_uring
  // would answer EAGAIN instead of waiting for the page cache).
  const int base = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
  if (!knob("buffered")) {
    r->fd_.reset(::open(path.c_str(), base | O_DIRECT));
    r->direct_ = r->fd_.valid();
    if (!r->fd_.valid() && errno != EINVAL)
      return Errno{errno};
    if (!r->fd_.valid())
      spdlog::debug("{}: the filesystem refuses O_DIRECT ({}); buffered I/O", path,
                    std::strerror(errno));
  }
  if (!r->fd_.valid())
    r->fd_.reset(::open(path.c_str(), base));
  if (!r->fd_.valid())
    return Errno{errno};
  struct stat st {};
  if (fstat(r->fd_.get(), &st) != 0)
    return Errno{errno};
  if (S_ISDIR(st.st_mode))
    return Errno{EISDIR};
  if (!S_ISREG(st.st_mode))
    return Errno{ESPIPE};
  if (const int flags = fcntl(r->fd_.get(), F_GETFL);
      flags < 0 || fcntl(r->fd_.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    return Errno{errno};
  r->size_ = static_cast<uint64_t>(st.st_size);
  if (!r->direct_)
    (void)posix_fadvise(r->fd_.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  r->buffers_ = std::make_unique<Buffers>();
  r->ring_ = make_ring(*r->buffers_, path);
  for (unsigned i = 0; i < kMaxWrites; ++i)
    r->free_writes_[r->nr_free_writes_++] = kMaxWrites - 1 - i;
  return r;
}

ImageReader::~ImageReader() { drain(); }

void ImageReader::drain() noexcept {
  if (!ring_ || !buffers_)
    return;
  for (;;) {
    bool any = false;
    for (unsigned i = 0; i < kDepth; ++i)
      any |= buffers_->slots[i].busy || pinned_[i];
    if (!any)
      return;
    unsigned id;
    int res;
    if (!next_completion(*ring_, true, id, res))
      return;
    if (id & kWriteFlag)
      complete_write(id & ~kWriteFlag, res);
    else if (id < kDepth)
      buffers_->slots[id].busy = false;
  }
}

Result<void> ImageReader::write_out(int fd, std::span<const std::byte> data, uint64_t off) {
  if (write_error_)
    return Errno{write_error_};
  if (!ring_) {
    for (size_t done = 0; done < data.size();) {
      const ssize_t n =
          ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        write_error_ = n == 0 ? ENOSPC : errno;
        write_error_offset_ = off + done;
        return Errno{write_error_};
      }
    }
    return {};
  }
  while (nr_free_writes_ == 0)
    if (auto r = reap(true); !r)
      return r;
  if (write_error_)
    return Errno{write_error_};
  const unsigned id = free_writes_[--nr_free_writes_];
  const unsigned slot = static_cast<unsigned>((data.data() - buffers_->base) / kChunk);
  writes_[id] = {fd, slot, data.data(), data.size(), off};
  pinned_[slot]++;
  io_uring_sqe *sqe = io_uring_get_sqe(&ring_->ring);
  if (!sqe) {
    (void)io_uring_submit(&ring_->ring);
    sqe = io_uring_get_sqe(&ring_->ring);
  }
  if (!sqe) {
    complete_write(id, 0); // written below, synchronously
    return write_error_ ? Result<void>(Errno{write_error_}) : Result<void>();
  }
  if (ring_->fixed)
    io_uring_prep_write_fixed(sqe, fd, data.data(), static_cast<unsigned>(data.size()), off,
                              static_cast<int>(slot));
  else
    io_uring_prep_write(sqe, fd, data.data(), static_cast<unsigned>(data.size()), off);
  io_uring_sqe_set_data(sqe, reinterpret_cast<void *>(static_cast<uintptr_t>(id | kWriteFlag)));
  if (io_uring_submit(&ring_->ring) < 0)
    complete_write(id, 0);
  return write_error_ ? Result<void>(Errno{write_error_}) : Result<void>();
}

void ImageReader::complete_write(unsigned id, int res) {
  if (id >= kMaxWrites)
    return;
  PendingWrite &w = writes_[id];
  if (res < 0) {
    if (!write_error_) {
      write_error_ = -res;
      write_error_offset_ = w.off;
    }
  } else {
    // Short (or not queued at all): the rest here.
    for (size_t done = static_cast<size_t>(res); done < w.len && !write_error_;) {
      const ssize_t n =
          ::pwrite(w.fd, w.data + done, w.len - done, static_cast<off_t>(w.off + done));
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        write_error_ = n == 0 ? ENOSPC : errno;
        write_error_offset_ = w.off + done;
      }
    }
  }
  pinned_[w.slot]--;
  w.fd = -1;
  free_writes_[nr_free_writes_++] = id;
}

Result<void> ImageReader::flush_writes() {
  for (;;) {
    bool any = false;
    for (unsigned i = 0; i < kDepth; ++i)
      any |= pinned_[i] != 0;
    if (!any)
      break;
    if (auto r = reap(true); !r)
      return r;
  }
  if (write_error_)
    return Errno{write_error_};
  return {};
}

Result<void> ImageReader::fill_ahead() {
  bool queued = false;
  while (next_chunk_ < cur_chunk_ + kDepth && next_chunk_ * kChunk < size_) {
    const unsigned slot = static_cast<unsigned>(next_chunk_ % kDepth);
    Slot &s = buffers_->slots[slot];
    // Its last chunk may still be being written out.
    while (pinned_[slot])
      if (auto r = reap(true); !r)
        return r;
    s = {true, next_chunk_ * kChunk, kChunk,
         std::min<uint64_t>(kChunk, size_ - next_chunk_ * kChunk), 0};
    ++next_chunk_;
    io_uring_sqe *sqe = ring_ ? io_uring_get_sqe(&ring_->ring) : nullptr;
    if (!sqe) {
      if (auto r = read_sync(slot); !r)
        return r;
      continue;
    }
    if (ring_->fixed)
      io_uring_prep_read_fixed(sqe, fd_.get(), buffers_->at(slot), kChunk, s.off,
                               static_cast<int>(slot));
    else
      io_uring_prep_read(sqe, fd_.get(), buffers_->at(slot), kChunk, s.off);
    io_uring_sqe_set_data(sqe, reinterpret_cast<void *>(static_cast<uintptr_t>(slot)));
    queued = true;
  }
  if (queued && io_uring_submit(&ring_->ring) < 0) {
    // Nothing of it is queued: read the busy slots here.
    for (unsigned i = 0; i < kDepth; ++i)
      if (buffers_->slots[i].busy)
        if (auto r = read_sync(i); !r)
          return r;
  }
  return {};
}

Result<void> ImageReader::reap(bool wait) {
  unsigned slot;
  int res;
  if (!ring_ || !next_completion(*ring_, wait, slot, res)) {
    if (wait) {
      // The ring failed: finish everything here.
      for (unsigned i = 0; i < kDepth; ++i)
        if (buffers_->slots[i].busy)
          if (auto r = read_sync(i); !r)
            return r;
      for (unsigned id = 0; id < kMaxWrites; ++id)
        if (writes_[id].fd != -1)
          complete_write(id, 0);
    }
    return {};
  }
  if (slot & kWriteFlag)
    complete_write(slot & ~kWriteFlag, res);
  else if (slot < kDepth)
    complete(slot, res);
  return {};
}

void ImageReader::complete(unsigned slot, int res) {
  Slot &s = buffers_->slots[slot];
  if (res < 0 && -res == EINVAL && direct_) {
    drop_direct(fd_.get(), direct_, "export image", EINVAL);
    s.got = 0;
    (void)read_sync(slot);
    return;
  }
  if (res < 0) {
    s.busy = false;
    if (!error_) {
      error_ = -res;
      error_offset_ = s.off;
    }
    return;
  }
  s.got = static_cast<size_t>(res);
  if (s.got < s.want) {
    (void)read_sync(slot); // a short read: the rest, or the end of a file that shrank
    return;
  }
  s.busy = false;
}

Result<void> ImageReader::read_sync(unsigned slot) {
  Slot &s = buffers_->slots[slot];
  while (s.got < s.want) {
    const ssize_t n = ::pread(fd_.get(), buffers_->at(slot) + s.got, s.len - s.got,
                              static_cast<off_t>(s.off + s.got));
    if (n > 0) {
      s.got += static_cast<size_t>(n);
      continue;
    }
    if (n == 0)
      break; // the file shrank since it was opened
    if (errno == EINTR)
      continue;
    if (errno == EINVAL && direct_) {
      drop_direct(fd_.get(), direct_, "export image", EINVAL);
      continue;
    }
    s.busy = false;
    if (!error_) {
      error_ = errno;
      error_offset_ = s.off + s.got;
    }
    return Errno{error_};
  }
  s.got = std::min(s.got, s.want);
  s.busy = false;
  return {};
}

Result<std::span<const std::byte>> ImageReader::next(size_t max) {
  for (;;) {
    if (error_)
      return Errno{error_};
    if (cur_chunk_ * kChunk >= size_ || max == 0)
      return std::span<const std::byte>{};
    if (auto r = fill_ahead(); !r)
      return Errno{r.error()};
    const unsigned slot = static_cast<unsigned>(cur_chunk_ % kDepth);
    Slot &s = buffers_->slots[slot];
    while (s.busy)
      if (auto r = reap(true); !r)
        return Errno{r.error()};
    if (error_)
      return Errno{error_};
    if (pos_ < s.got) {
      const size_t n = std::min(max, s.got - pos_);
      std::span<const std::byte> out(buffers_->at(slot) + pos_, n);
      pos_ += n;
      offset_ += n;
      return out;
    }
    if (s.got < s.want)
      return std::span<const std::byte>{}; // the file ended early
    ++cur_chunk_;
    pos_ = 0;
  }
}

Result<size_t> ImageReader::read(void *out, size_t n) {
  auto *p = static_cast<std::byte *>(out);
  size_t done = 0;
  while (done < n) {
    auto got = next(n - done);
    if (!got)
      return Errno{got.error()};
    if (got->empty())
      break;
    std::memcpy(p + done, got->data(), got->size());
    done += got->size();
  }
  return done;
}

} // namespace pkramfs
