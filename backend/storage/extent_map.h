// A regular file's map from file blocks to arena blocks. Holes are simply absent; extents that
// fallocate created but nobody wrote are flagged unwritten (they read as zeros and count as holes
// for SEEK_DATA, as on tmpfs).
#pragma once

#include "util/geometry.h"

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace pkramfs {

// One change to an extent map, as the journal records it.
struct ExtentChange {
  enum Kind : uint32_t { kInsert = 1, kRemove = 2, kWritten = 3 };
  uint32_t kind = 0;
  uint32_t unwritten = 0;
  uint64_t a = 0; // insert: file block; remove/written: first file block
  uint64_t b = 0; // insert: arena block; remove/written: end file block
  uint64_t c = 0; // insert: count
};

struct Extent {
  uint64_t block = 0; // first arena block
  uint64_t count = 0;
  bool unwritten = false;
};

class ExtentMap {
public:
  struct Lookup {
    bool mapped = false;
    uint64_t block = 0; // arena block for the looked-up file block, when mapped
    uint64_t count = 0; // blocks until the mapping changes (UINT64_MAX for the trailing hole)
    bool unwritten = false;
  };

  Lookup find(uint64_t fblock) const;
  // Maps [fblock, fblock + run.count) which must be a hole.
  void insert(uint64_t fblock, BlockRun run, bool unwritten);
  // Unmaps [first, end) and hands every freed arena run to `freed`.
  template <class F> void remove(uint64_t first, uint64_t end, F &&freed);
  // Flags [first, end) as written wherever it is mapped.
  void mark_written(uint64_t first, uint64_t end);

  // First block >= fblock holding written data, if any.
  std::optional<uint64_t> next_data(uint64_t fblock) const;
  // First block >= fblock that is a hole or unwritten.
  uint64_t next_hole(uint64_t fblock) const;

  // While set, every change is also appended to `log` (for the journal).
  void record_into(std::vector<ExtentChange> *log) { log_ = log; }
  // Applies a recorded change; `freed` receives runs a removal releases.
  template <class F> void apply(const ExtentChange &c, F &&freed);

  // Extents that overlap [first, end): how many runs remove(first, end) hands out, at most.
  size_t count_in(uint64_t first, uint64_t end) const;

  uint64_t allocated_blocks() const { return allocated_; }
  bool empty() const { return map_.empty(); }
  const std::map<uint64_t, Extent> &extents() const { return map_; }

private:
  using Map = std::map<uint64_t, Extent>;
  // Makes push_back on log_ unable to fail (geometric growth).
  void room_in_log();
  // Ensures no extent straddles fblock.
  void split_at(uint64_t fblock);
  // Joins `it` with its predecessor when both are contiguous in file and arena.
  Map::iterator merge_with_prev(Map::iterator it);

  Map map_;
  uint64_t allocated_ = 0;
  std::vector<ExtentChange> *log_ = nullptr;
};

template <class F> void ExtentMap::apply(const ExtentChange &c, F &&freed) {
  switch (c.kind) {
  case ExtentChange::kInsert:
    insert(c.a, BlockRun{c.b, c.c}, c.unwritten != 0);
    break;
  case ExtentChange::kRemove:
    remove(c.a, c.b, freed);
    break;
  case ExtentChange::kWritten:
    mark_written(c.a, c.b);
    break;
  }
}

template <class F> void ExtentMap::remove(uint64_t first, uint64_t end, F &&freed) {
  if (first >= end)
    return;
  // Every allocation first (splits change no mapping), so that a failure changes nothing.
  split_at(first);
  split_at(end);
  if (log_) {
    room_in_log();
    log_->push_back({ExtentChange::kRemove, 0, first, end, 0});
  }
  auto it = map_.lower_bound(first);
  while (it != map_.end() && it->first < end) {
    freed(BlockRun{it->second.block, it->second.count});
    allocated_ -= it->second.count;
    it = map_.erase(it);
  }
}

} // namespace pkramfs
