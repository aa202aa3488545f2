// The arena: frames from a FrameSource, handed out as runs of 4 KiB blocks. File data refers to
// blocks by number (an arena offset), never by pointer, so the arena can be mapped anywhere.
#pragma once

#include "block_allocator.h"
#include "frame_source.h"
#include "result.h"

#include <atomic>
#include <memory>
#include <mutex>

namespace pkramfs {

class Arena {
public:
  Arena(std::unique_ptr<FrameSource> source, uint64_t limit_blocks);

  // Up to `want` consecutive blocks, at `hint` if free. Contents are unspecified: callers zero
  // what they do not overwrite. ENOSPC when the size limit or the memory behind it is reached.
  Result<BlockRun> allocate(uint64_t want, uint64_t hint);
  void free(BlockRun run);

  std::byte *block(uint64_t b) const { return base_ + (b << kBlockShift); }
  uint64_t used_blocks() const { return used_.load(std::memory_order_relaxed); }
  uint64_t limit_blocks() const { return limit_; }
  std::string describe() const { return source_->describe(); }

private:
  std::mutex mu_;
  std::unique_ptr<FrameSource> source_;
  std::byte *base_;
  uint64_t limit_;
  BlockAllocator blocks_;
  std::atomic<uint64_t> used_{0};
};

} // namespace pkramfs
