#include "storage/extent_map.h"

#include "util/fault.h"

#include <cassert>
#include <limits>

namespace pkramfs {

ExtentMap::Lookup ExtentMap::find(uint64_t fblock) const {
  auto it = map_.upper_bound(fblock);
  if (it != map_.begin()) {
    auto prev = std::prev(it);
    const uint64_t off = fblock - prev->first;
    if (off < prev->second.count)
      return {true, prev->second.block + off, prev->second.count - off, prev->second.unwritten};
  }
  const uint64_t gap = it == map_.end() ? std::numeric_limits<uint64_t>::max() : it->first - fblock;
  return {false, 0, gap, false};
}

void ExtentMap::split_at(uint64_t fblock) {
  auto it = map_.upper_bound(fblock);
  if (it == map_.begin())
    return;
  auto prev = std::prev(it);
  const uint64_t off = fblock - prev->first;
  if (off == 0 || off >= prev->second.count)
    return;
  Extent tail{prev->second.block + off, prev->second.count - off, prev->second.unwritten};
  fault::heap();
  map_.emplace_hint(it, fblock, tail); // before shortening prev: a failure leaves it whole
  prev->second.count = off;
}

void ExtentMap::room_in_log() {
  if (log_->size() < log_->capacity())
    return;
  fault::heap();
  log_->reserve(2 * log_->size() + 4);
}

size_t ExtentMap::count_in(uint64_t first, uint64_t end) const {
  size_t n = 0;
  auto it = map_.upper_bound(first);
  if (it != map_.begin())
    --it;
  for (; it != map_.end() && it->first < end; ++it)
    if (it->first + it->second.count > first)
      ++n;
  return n;
}

ExtentMap::Map::iterator ExtentMap::merge_with_prev(Map::iterator it) {
  if (it == map_.begin() || it == map_.end())
    return it;
  auto prev = std::prev(it);
  Extent &p = prev->second;
  const Extent &e = it->second;
  if (prev->first + p.count == it->first && p.block + p.count == e.block &&
      p.unwritten == e.unwritten) {
    p.count += e.count;
    map_.erase(it);
    return prev;
  }
  return it;
}

void ExtentMap::insert(uint64_t fblock, BlockRun run, bool unwritten) {
  assert(run.count > 0);
  assert(!find(fblock).mapped);
  if (log_)
    room_in_log();
  fault::heap();
  auto it = map_.emplace(fblock, Extent{run.start, run.count, unwritten}).first;
  if (log_)
    log_->push_back({ExtentChange::kInsert, unwritten, fblock, run.start, run.count});
  allocated_ += run.count;
  it = merge_with_prev(it);
  merge_with_prev(std::next(it));
}

void ExtentMap::mark_written(uint64_t first, uint64_t end) {
  if (first >= end)
    return;
  split_at(first);
  split_at(end);
  if (log_) {
    room_in_log();
    log_->push_back({ExtentChange::kWritten, 0, first, end, 0});
  }
  auto it = map_.lower_bound(first);
  auto start = it;
  for (; it != map_.end() && it->first < end; ++it)
    it->second.unwritten = false;
  // Re-join the pieces split above and any neighbours that now match: merge_with_prev returns
  // the surviving extent, so `cur` stays put after a merge and advances otherwise.
  auto cur = start == map_.begin() ? start : std::prev(start);
  while (cur != map_.end() && cur->first <= end && std::next(cur) != map_.end())
    cur = merge_with_prev(std::next(cur));
}

std::optional<uint64_t> ExtentMap::next_data(uint64_t fblock) const {
  auto it = map_.upper_bound(fblock);
  if (it != map_.begin()) {
    auto prev = std::prev(it);
    if (fblock - prev->first < prev->second.count && !prev->second.unwritten)
      return fblock;
  }
  for (; it != map_.end(); ++it)
    if (!it->second.unwritten)
      return it->first;
  return std::nullopt;
}

uint64_t ExtentMap::next_hole(uint64_t fblock) const {
  uint64_t pos = fblock;
  auto it = map_.upper_bound(fblock);
  if (it != map_.begin())
    --it;
  for (; it != map_.end(); ++it) {
    const uint64_t start = it->first, end = it->first + it->second.count;
    if (end <= pos)
      continue;
    if (start > pos || it->second.unwritten)
      return pos;
    pos = end;
  }
  return pos;
}

} // namespace pkramfs
