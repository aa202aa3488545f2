// The arena: the data frames of a node, handed out as runs of 4 KiB blocks. File data refers
// to blocks by their number within the node (an offset), never by pointer, so the node can be
// mapped anywhere.
#pragma once

#include "storage/block_allocator.h"
#include "storage/frame_source.h"
#include "util/result.h"

#include <atomic>
#include <mutex>

namespace pkramfs {

class Arena {
public:
  // Data blocks live in frames [first_frame, first_frame + frames for limit_blocks) of `source`,
  // which must outlive the arena.
  Arena(FrameSource &source, uint64_t first_frame, uint64_t limit_blocks);

  // Up to `want` consecutive blocks, at `hint` if free. Contents are unspecified: callers zero
  // what they do not overwrite. ENOSPC when the size limit or the memory behind it is reached.
  Result<BlockRun> allocate(uint64_t want, uint64_t hint);
  void free(BlockRun run);
  // Marks a run in use again when a tree is restored; false if it is outside the data frames
  // or already in use (the image is corrupt).
  bool claim(BlockRun run);
  // While restoring, a frame emptied by one journal record may be claimed again by a later one:
  // its memory (the data) must stay. Afterwards, frames left empty are given back.
  void hold_empty_frames() { hold_ = true; }
  void release_empty_frames();

  std::byte *block(uint64_t b) const { return base_ + (b << kBlockShift); }
  uint64_t used_blocks() const { return used_.load(std::memory_order_relaxed); }
  uint64_t limit_blocks() const { return limit_; }
  // Blocks of the size limit that metadata outside the data frames takes (a node's checkpoint
  // slots): allocate() leaves them alone, so that data + metadata stays within the limit.
  void set_reserved_blocks(uint64_t blocks) { reserved_.store(blocks, std::memory_order_relaxed); }
  uint64_t reserved_blocks() const { return reserved_.load(std::memory_order_relaxed); }
  // Blocks allocate() can still hand out.
  uint64_t free_blocks() const;
  // Data frames with at least one block in use.
  uint64_t frames_in_use();
  uint64_t first_block() const { return first_block_; }
  uint64_t end_block() const { return first_block_ + blocks_.frames() * kBlocksPerFrame; }
  std::string describe() const { return source_.describe(); }

private:
  Result<void> acquire_frame(uint64_t frame); // mu_ held
  void prefault_frame(uint64_t frame);        // mu_ held

  std::mutex mu_;
  FrameSource &source_;
  std::byte *base_;
  uint64_t first_block_;
  uint64_t limit_;
  BlockAllocator blocks_;
  std::atomic<uint64_t> used_{0};
  std::atomic<uint64_t> reserved_{0};
  bool hold_ = false;
};

} // namespace pkramfs
