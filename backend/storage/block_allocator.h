// Bookkeeping of which 4 KiB blocks of the arena are in use. Knows nothing about memory: the
// Arena acquires a frame's memory when its first block is taken and releases it when its last
// block is freed. Not thread-safe; the Arena serialises calls.
#pragma once

#include "util/geometry.h"

#include <cstdint>
#include <set>
#include <vector>

namespace pkramfs {

class BlockAllocator {
public:
  // `limit_blocks` caps how many blocks may be in use at once (the size= option); the frames
  // cover it rounded up to whole frames.
  explicit BlockAllocator(uint64_t limit_blocks);

  // Takes up to `want` consecutive blocks inside one frame, starting at `hint` when that block
  // is free (so that files grow contiguously). Returns a run of count 0 when no block is left.
  BlockRun allocate(uint64_t want, uint64_t hint);
  void free(BlockRun run);
  // Marks a specific run used, e.g. when restoring a tree; false if any block was in use.
  bool claim(BlockRun run);

  bool is_used(uint64_t block) const { return (bits_[block / 64] >> (block % 64)) & 1; }
  uint64_t frame_used(uint64_t frame) const { return frame_used_[frame]; }
  uint64_t used_blocks() const { return used_; }
  uint64_t limit_blocks() const { return limit_; }
  uint64_t frames() const { return frame_used_.size(); }
  // Frames holding at least one used block: what the data really takes in memory.
  uint64_t frames_in_use() const { return frames() - empty_frames_.size(); }

private:
  BlockRun take_run(uint64_t start, uint64_t want);
  BlockRun first_free_run_in(uint64_t frame, uint64_t want);
  void mark(BlockRun run, bool used);

  uint64_t limit_;
  uint64_t used_ = 0;
  std::vector<uint64_t> bits_;
  std::vector<uint16_t> frame_used_;
  std::set<uint64_t> empty_frames_;   // lowest first, so that the node file grows from the front
  std::set<uint64_t> partial_frames_; // frames shared by small files and tails
};

} // namespace pkramfs
