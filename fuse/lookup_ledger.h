// The kernel's lookup references per inode, kept where a crash of the serving process does not
// lose them: a hash table in the holder's session state memfd (session_state.h), past its
// layout. A process that takes the mount over starts from these counts, so that FORGET stays
// exact across a takeover: an unlinked inode goes when the kernel forgets it, and no inode the
// kernel still names is dropped.
//
// Every change is one atomic store or add on a 64-bit word, so a kill at any instruction
// leaves a table a later process reads as it stands: an entry is claimed by a compare-exchange
// of its key, then counted. Entries whose count fell to 0 stay until the table is rebuilt: a
// new table is written into a region of its own and takes over by one store of the active
// index (LedgerRegion), then the old region's memory is given back.
//
// What it cannot know: a reference counted just before a kill whose reply never reached the
// kernel. device_io.h uncounts those it can name (a single-entry reply's inode, RequestRecord);
// a READDIRPLUS reply lost that way stays counted (its inodes stay until unmount).
#pragma once

#include "fs/lookup_mirror.h"
#include "session_state.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <shared_mutex>
#include <unordered_map>

namespace pkramfs {

class LookupLedger final : public LookupMirror {
public:
  struct Entry {
    std::atomic<uint64_t> ino; // 0: free
    std::atomic<uint64_t> count;
  };
  static constexpr uint64_t kMinCapacity = 1u << 14;
  static constexpr uint64_t kRegionAlign = 2u << 20;

  // The ledger in `session`'s memfd. REQUIRES: `session` outlives it.
  explicit LookupLedger(SessionState &session);
  ~LookupLedger() override;
  LookupLedger(const LookupLedger &) = delete;
  LookupLedger &operator=(const LookupLedger &) = delete;

  void added(uint64_t ino, uint64_t n) noexcept override;
  void dropped(uint64_t ino, uint64_t n) noexcept override;

  // Whether it holds every reference the kernel has: true for a mount whose every serving
  // process kept it, false after one that did not (a version-1 session state) or after a
  // failure to grow it.
  bool exact() const;
  // Every inode with references, and how many. REQUIRES: nothing changes it meanwhile.
  std::unordered_map<uint64_t, uint64_t> counts() const;
  // Writes a new table holding exactly `counts` (a takeover: what is left of a process that
  // died, without the entries that fell to 0).
  void rebuild(const std::unordered_map<uint64_t, uint64_t> &counts);

private:
  // The table in use, mapped; null when there is none yet.
  Entry *table() const { return table_; }
  // Finds or claims the entry of `ino`; null when the table is too full. REQUIRES: mu_ shared.
  Entry *entry_for(uint64_t ino, bool claim) noexcept;
  // REQUIRES: mu_ exclusive. False when no memory could be had (the ledger is no longer exact).
  bool rebuild_locked(const std::unordered_map<uint64_t, uint64_t> &counts, uint64_t capacity);
  bool map_active();
  void lose_exactness() noexcept;

  SessionState &session_;
  mutable std::shared_mutex mu_; // shared: added/dropped; exclusive: a rebuild
  Entry *table_ = nullptr;
  uint64_t capacity_ = 0;
  std::atomic<uint64_t> used_{0}; // claimed entries in table_
};

} // namespace pkramfs
