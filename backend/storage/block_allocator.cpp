#include "storage/block_allocator.h"

#include <algorithm>
#include <cassert>

namespace pkramfs {
namespace {
// Requests at least this large start a fresh frame, so big files get whole frames and small
// files pack together in shared ones.
constexpr uint64_t kLargeRequestBlocks = kBlocksPerFrame / 8;
} // namespace

BlockAllocator::BlockAllocator(uint64_t limit_blocks) : limit_(limit_blocks) {
  const uint64_t frames = (limit_blocks + kBlocksPerFrame - 1) / kBlocksPerFrame;
  bits_.assign(frames * kBlocksPerFrame / 64, 0);
  frame_used_.assign(frames, 0);
  for (uint64_t f = 0; f < frames; ++f)
    empty_frames_.insert(empty_frames_.end(), f);
}

void BlockAllocator::mark(BlockRun run, bool used) {
  for (uint64_t b = run.start; b < run.start + run.count; ++b) {
    const uint64_t bit = uint64_t{1} << (b % 64);
    assert(((bits_[b / 64] & bit) != 0) != used);
    if (used)
      bits_[b / 64] |= bit;
    else
      bits_[b / 64] &= ~bit;
  }
  const uint64_t frame = run.start / kBlocksPerFrame;
  assert((run.start + run.count - 1) / kBlocksPerFrame == frame);
  const uint64_t before = frame_used_[frame];
  const uint64_t after = used ? before + run.count : before - run.count;
  frame_used_[frame] = static_cast<uint16_t>(after);
  used_ = used ? used_ + run.count : used_ - run.count;
  if (before == 0)
    empty_frames_.erase(frame);
  else if (before < kBlocksPerFrame)
    partial_frames_.erase(frame);
  if (after == 0)
    empty_frames_.insert(frame);
  else if (after < kBlocksPerFrame)
    partial_frames_.insert(frame);
}

BlockRun BlockAllocator::take_run(uint64_t start, uint64_t want) {
  const uint64_t frame_end = (start / kBlocksPerFrame + 1) * kBlocksPerFrame;
  want = std::min({want, limit_ - used_, frame_end - start});
  uint64_t n = 0;
  while (n < want && !is_used(start + n))
    ++n;
  BlockRun run{start, n};
  if (n)
    mark(run, true);
  return run;
}

BlockRun BlockAllocator::first_free_run_in(uint64_t frame, uint64_t want) {
  const uint64_t first = frame * kBlocksPerFrame;
  for (uint64_t w = first / 64; w < (first + kBlocksPerFrame) / 64; ++w) {
    if (bits_[w] == ~uint64_t{0})
      continue;
    const uint64_t b = w * 64 + static_cast<uint64_t>(__builtin_ctzll(~bits_[w]));
    return take_run(b, want);
  }
  return {};
}

BlockRun BlockAllocator::allocate(uint64_t want, uint64_t hint) {
  if (want == 0 || used_ >= limit_)
    return {};
  if (hint < frame_used_.size() * kBlocksPerFrame && !is_used(hint))
    return take_run(hint, want);
  if (!empty_frames_.empty() && (want >= kLargeRequestBlocks || partial_frames_.empty()))
    return take_run(*empty_frames_.begin() * kBlocksPerFrame, want);
  if (!partial_frames_.empty())
    return first_free_run_in(*partial_frames_.begin(), want);
  return {};
}

void BlockAllocator::free(BlockRun run) {
  while (run.count) {
    const uint64_t frame_end = (run.start / kBlocksPerFrame + 1) * kBlocksPerFrame;
    const uint64_t n = std::min(run.count, frame_end - run.start);
    mark({run.start, n}, false);
    run.start += n;
    run.count -= n;
  }
}

bool BlockAllocator::claim(BlockRun run) {
  const uint64_t total = frame_used_.size() * kBlocksPerFrame;
  if (run.count > total || run.start > total - run.count || run.count > limit_ - used_)
    return false;
  for (uint64_t b = run.start; b < run.start + run.count; ++b)
    if (is_used(b))
      return false;
  while (run.count) {
    const uint64_t frame_end = (run.start / kBlocksPerFrame + 1) * kBlocksPerFrame;
    const uint64_t n = std::min(run.count, frame_end - run.start);
    mark({run.start, n}, true);
    run.start += n;
    run.count -= n;
  }
  return true;
}

} // namespace pkramfs
