// FUSE passthrough (Linux 6.9+, protocol 7.40): an open file whose reads, writes and mappings
// the kernel sends straight to a backing file, here the file's object (storage/object_store.h),
// with no request to the daemon and no second copy of the data in the FUSE page cache.
//
// The kernel takes a backing file by id (FUSE_DEV_IOC_BACKING_OPEN on /dev/fuse, device_io.h)
// in the OPEN or CREATE reply (FOPEN_PASSTHROUGH, backing_id). One inode's opens must all be
// passthrough or all not while any is open (fs/fuse/iomode.c: a passthrough open of an inode
// open in caching mode fails, and the reverse), so the choice is made at the first open and
// kept until the last release. An inode opened for passthrough keeps one id until then: the
// kernel refuses a second backing file for an inode that has one (fuse_inode_uncached_io_start,
// EBUSY), which is why a process taking a mount over adopts the ids of the one before.
//
// Not passthrough, so that the daemon keeps enforcing what the kernel would not on a backing
// file's writes: files with suid, or sgid and group-exec (a write by another user clears them:
// Filesystem::drop_privileges_locked), and append-only or immutable files (chattr).
#pragma once

#include "session_state.h"

#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace pkramfs {

class BackingFiles {
public:
  // How an open of a file with an object went: a backing id (1 .. INT_MAX), passthrough to
  // that backing file, or kCached, through the daemon. The same word goes in the holder's
  // handle table, whose layout defines it, or, without a holder, in the fh.
  static constexpr uint32_t kCached = SessionState::kBackingCached;

  // An open of `ino`, whose object is `object_fd`; `eligible()`: the file may be passthrough
  // (the rules above), asked only at the first open, where the choice is made. Returns the
  // open's word; a backing id goes in the reply.
  uint32_t open(uint64_t ino, int object_fd, const std::function<bool()> &eligible);
  // The RELEASE of an open that open() answered with `word`.
  void release(uint64_t ino, uint32_t word);
  // A process taking a mount over: `ino` is open `passthrough` times with backing id
  // `backing_id` (registered on the connection, which outlived the process that registered
  // it) and `cached` times through the daemon. REQUIRES: before serving.
  void adopt(uint64_t ino, int32_t backing_id, uint32_t passthrough, uint32_t cached);

private:
  struct Opens {
    int32_t backing_id = 0;
    uint32_t passthrough = 0;
    uint32_t cached = 0;
  };
  std::mutex mu_;
  std::unordered_map<uint64_t, Opens> opens_;
};

} // namespace pkramfs
