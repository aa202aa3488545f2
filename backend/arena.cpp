#include "arena.h"

#include <cerrno>

namespace pkramfs {

Arena::Arena(std::unique_ptr<FrameSource> source, uint64_t limit_blocks)
    : source_(std::move(source)), base_(source_->base()), limit_(limit_blocks),
      blocks_(limit_blocks) {}

Result<BlockRun> Arena::allocate(uint64_t want, uint64_t hint) {
  std::lock_guard lock(mu_);
  const BlockRun run = blocks_.allocate(want, hint);
  if (run.count == 0)
    return Errno{ENOSPC};
  const uint64_t frame = run.start / kBlocksPerFrame;
  if (blocks_.frame_used(frame) == run.count) {
    if (auto r = source_->acquire(frame); !r) {
      blocks_.free(run);
      return Errno{r.error() == ENOMEM ? ENOSPC : r.error()};
    }
  }
  used_.store(blocks_.used_blocks(), std::memory_order_relaxed);
  return run;
}

void Arena::free(BlockRun run) {
  if (run.count == 0)
    return;
  std::lock_guard lock(mu_);
  blocks_.free(run);
  const uint64_t first = run.start / kBlocksPerFrame;
  const uint64_t last = (run.start + run.count - 1) / kBlocksPerFrame;
  for (uint64_t f = first; f <= last; ++f)
    if (blocks_.frame_used(f) == 0)
      source_->release(f);
  used_.store(blocks_.used_blocks(), std::memory_order_relaxed);
}

} // namespace pkramfs
