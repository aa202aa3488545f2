#include "storage/arena.h"

#include "util/fault.h"

#include <algorithm>
#include <cstring>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 // Linux 5.14
#endif

namespace pkramfs {

Arena::Arena(FrameSource &source, uint64_t first_frame, uint64_t limit_blocks)
    : source_(source), base_(source.base()), first_block_(first_frame * kBlocksPerFrame),
      limit_(limit_blocks), blocks_(limit_blocks) {}

Result<BlockRun> Arena::allocate(uint64_t want, uint64_t hint) {
  if (fault::hit(fault::Point::kArena))
    return Errno{ENOSPC};
  std::lock_guard lock(mu_);
  const uint64_t room = free_blocks();
  if (room == 0)
    return Errno{ENOSPC};
  const uint64_t local_hint = hint >= first_block_ ? hint - first_block_ : UINT64_MAX;
  BlockRun run = blocks_.allocate(std::min(want, room), local_hint);
  if (run.count == 0)
    return Errno{ENOSPC};
  const uint64_t frame = run.start / kBlocksPerFrame;
  if (blocks_.frame_used(frame) == run.count) {
    if (auto r = acquire_frame(first_block_ / kBlocksPerFrame + frame); !r) {
      blocks_.free(run);
      return Errno{r.error() == ENOMEM ? ENOSPC : r.error()};
    }
  }
  used_.store(blocks_.used_blocks(), std::memory_order_relaxed);
  run.start += first_block_;
  return run;
}

uint64_t Arena::free_blocks() const {
  const uint64_t taken = used_blocks() + reserved_blocks();
  return taken < limit_ ? limit_ - taken : 0;
}

uint64_t Arena::frames_in_use() {
  std::lock_guard lock(mu_);
  return blocks_.frames_in_use();
}

Result<void> Arena::acquire_frame(uint64_t frame) {
  // An injected failure looks like a frame source out of memory.
  if (fault::hit(fault::Point::kFrame))
    return Errno{ENOMEM};
  if (auto r = source_.acquire(frame); !r)
    return r;
  prefault_frame(frame);
  return {};
}

void Arena::prefault_frame(uint64_t frame) {
  // Maps the new frame's pages in one call. Otherwise the first write to each 4 KiB page is a
  // page fault, which in a VM is an exit to the hypervisor: a new 1 GiB file written with dd
  // went at 213 MiB/s against 2.6 GiB/s for overwriting it. Best effort: a frame that stays
  // unmapped still faults in on first use.
  madvise(base_ + frame * kFrameSize, kFrameSize, MADV_POPULATE_WRITE);
}

void Arena::free(BlockRun run) {
  if (run.count == 0)
    return;
  std::lock_guard lock(mu_);
  run.start -= first_block_;
  blocks_.free(run);
  const uint64_t first = run.start / kBlocksPerFrame;
  const uint64_t last = (run.start + run.count - 1) / kBlocksPerFrame;
  for (uint64_t f = first; f <= last && !hold_; ++f)
    if (blocks_.frame_used(f) == 0)
      source_.release(first_block_ / kBlocksPerFrame + f);
  used_.store(blocks_.used_blocks(), std::memory_order_relaxed);
}

void Arena::release_empty_frames() {
  std::lock_guard lock(mu_);
  hold_ = false;
  for (uint64_t f = 0; f < blocks_.frames(); ++f) {
    const uint64_t frame = first_block_ / kBlocksPerFrame + f;
    if (blocks_.frame_used(f) == 0) {
      source_.release(frame);
      continue;
    }
    // A frame the tree uses is there unless the node was damaged; then it comes back as zeros
    // rather than as a fault on the first read (pkram nodes have holes that fault).
    if (auto r = source_.acquire(frame); !r)
      spdlog::error("frame {} of the node is missing and cannot be replaced ({}); reading the "
                    "files in it will fail: copy what you need and destroy the node",
                    frame, std::strerror(r.error()));
  }
}

bool Arena::claim(BlockRun run) {
  std::lock_guard lock(mu_);
  if (run.start < first_block_ || run.count == 0)
    return false;
  run.start -= first_block_;
  if (!blocks_.claim(run))
    return false;
  used_.store(blocks_.used_blocks(), std::memory_order_relaxed);
  return true;
}

} // namespace pkramfs
