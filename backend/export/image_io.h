// Sequential I/O of export images (pkramfs-ctl export/import): io_uring with kDepth aligned
// requests of kChunk bytes in flight and O_DIRECT, so that a disk runs at the speed fio gets
// from it. Falls back, with a debug log line, to buffered I/O where the filesystem refuses
// O_DIRECT (tmpfs before Linux 6.6, some FUSE and network filesystems) and to plain
// pread/pwrite where io_uring is not available (old kernels, seccomp).
#pragma once

#include "util/result.h"
#include "util/unique_fd.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace pkramfs {

namespace image_io {
inline constexpr size_t kChunk = 1 << 20;
inline constexpr unsigned kDepth = 8;
inline constexpr size_t kAlign = 4096; // O_DIRECT alignment of buffers, offsets and lengths
struct Ring;
struct Buffers;
} // namespace image_io

// Appends a stream of bytes to a new file.
class ImageWriter {
public:
  // Creates `path` (O_EXCL, mode 0600): EEXIST when it exists. With `expected_bytes`, its
  // space is allocated up front: direct writes inside the file's size run in parallel
  // (appending ones are serialised by ext4 and others), and a full disk is an ENOSPC before
  // anything is written.
  static Result<std::unique_ptr<ImageWriter>> create(const std::string &path,
                                                     uint64_t expected_bytes = 0);
  // Removes the file unless finish() succeeded.
  ~ImageWriter();

  // Room in the current buffer, never empty: fill some of it, then commit() that many bytes.
  std::span<std::byte> space();
  Result<void> commit(size_t n);
  Result<void> write(const void *data, size_t n);
  // Writes what is buffered, waits for every request, cuts the file to its exact length and
  // syncs it. Afterwards the file stays.
  Result<void> finish();

  uint64_t offset() const { return offset_; } // bytes appended so far
  // After an error: the file offset of the write that failed.
  uint64_t error_offset() const { return error_offset_; }
  bool direct() const { return direct_ || tail_buffered_; } // O_DIRECT for the data
  bool uring() const { return ring_ != nullptr; }
  const std::string &path() const { return path_; }

  ImageWriter(const ImageWriter &) = delete;
  ImageWriter &operator=(const ImageWriter &) = delete;

private:
  ImageWriter() = default;
  Result<void> submit(size_t len);
  Result<void> wait_free(unsigned slot);
  Result<void> reap(bool wait);
  void complete(unsigned slot, int res);
  Result<void> write_sync(unsigned slot, size_t done);

  std::string path_;
  UniqueFd fd_;
  bool direct_ = false;
  bool tail_buffered_ = false; // O_DIRECT dropped for the last unaligned bytes only
  bool finished_ = false;
  std::unique_ptr<image_io::Buffers> buffers_;
  std::unique_ptr<image_io::Ring> ring_;
  unsigned cur_ = 0;     // slot being filled
  size_t fill_ = 0;      // bytes in it
  uint64_t offset_ = 0;  // bytes appended
  uint64_t flushed_ = 0; // file offset of the slot being filled
  int error_ = 0;
  uint64_t error_offset_ = 0;
  uint64_t synced_ = 0;        // file offset up to which a background flush was asked for
  unsigned syncs_pending_ = 0; // background flushes in flight
};

// Reads a file from start to end, kDepth chunks ahead.
class ImageReader {
public:
  static Result<std::unique_ptr<ImageReader>> open(const std::string &path);
  ~ImageReader();

  uint64_t size() const { return size_; }     // when opened
  uint64_t offset() const { return offset_; } // bytes consumed
  // The next bytes, at most `max` (fewer at a chunk boundary); empty at the end of the file.
  Result<std::span<const std::byte>> next(size_t max);
  // Up to `n` bytes into `out`; fewer only at the end of the file.
  Result<size_t> read(void *out, size_t n);
  // After an error: the file offset of the read that failed.
  uint64_t error_offset() const { return error_offset_; }
  bool direct() const { return direct_; }
  bool uring() const { return ring_ != nullptr; }

  // Writes `data`, bytes next() returned, to `fd` at `off`, asynchronously: with io_uring a
  // buffered write (to a node file on tmpfs) runs on a kernel worker thread meanwhile, and the
  // chunk's buffer is not reused before it is done. A write error shows in a later call or in
  // flush_writes(); write_error_offset() then says where in `fd`.
  Result<void> write_out(int fd, std::span<const std::byte> data, uint64_t off);
  // Waits for every write_out().
  Result<void> flush_writes();
  uint64_t write_error_offset() const { return write_error_offset_; }

  ImageReader(const ImageReader &) = delete;
  ImageReader &operator=(const ImageReader &) = delete;

private:
  static constexpr unsigned kMaxWrites = 4 * image_io::kDepth;
  struct PendingWrite {
    int fd = -1;
    unsigned slot = 0;
    const std::byte *data = nullptr;
    size_t len = 0;
    uint64_t off = 0;
  };

  ImageReader() = default;
  Result<void> fill_ahead();
  Result<void> reap(bool wait);
  void complete(unsigned slot, int res);
  void complete_write(unsigned id, int res);
  Result<void> read_sync(unsigned slot);
  void drain() noexcept;

  UniqueFd fd_;
  bool direct_ = false;
  uint64_t size_ = 0;
  std::unique_ptr<image_io::Buffers> buffers_;
  std::unique_ptr<image_io::Ring> ring_;
  uint64_t next_chunk_ = 0; // next chunk to submit
  uint64_t cur_chunk_ = 0;  // chunk being consumed
  size_t pos_ = 0;          // consumed bytes of it
  uint64_t offset_ = 0;
  int error_ = 0;
  uint64_t error_offset_ = 0;
  PendingWrite writes_[kMaxWrites];
  unsigned free_writes_[kMaxWrites];
  unsigned nr_free_writes_ = 0;
  unsigned pinned_[image_io::kDepth] = {}; // writes in flight from each slot
  int write_error_ = 0;
  uint64_t write_error_offset_ = 0;
};

} // namespace pkramfs
