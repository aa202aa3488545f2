#include "lookup_ledger.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fuse.h>
#include <mutex>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pkramfs {
namespace {

static_assert(sizeof(LookupLedger::Entry) == 16);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

uint64_t round_up(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

uint64_t region_end(const SessionState::LedgerRegion &r) {
  const uint64_t capacity = r.capacity.load();
  return capacity ? r.offset.load() + capacity * sizeof(LookupLedger::Entry) : 0;
}

// Replies that name one inode, whose reference device_io.h may have to take back when the
// reply never reached the kernel.
bool names_one_entry(uint32_t opcode) {
  switch (opcode) {
  case FUSE_LOOKUP:
  case FUSE_MKNOD:
  case FUSE_MKDIR:
  case FUSE_SYMLINK:
  case FUSE_LINK:
  case FUSE_CREATE:
  case FUSE_TMPFILE:
    return true;
  default:
    return false;
  }
}

size_t home_of(uint64_t ino, uint64_t capacity) {
  // Fibonacci hashing: inode numbers are dense, the table's index bits are the product's top.
  const int bits = std::countr_zero(capacity);
  return static_cast<size_t>((ino * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

} // namespace

LookupLedger::LookupLedger(SessionState &session) : session_(session) {
  std::unique_lock lock(mu_);
  if (!map_active() || (!table_ && !rebuild_locked({}, kMinCapacity)))
    lose_exactness();
}

LookupLedger::~LookupLedger() {
  if (table_)
    munmap(table_, capacity_ * sizeof(Entry));
}

bool LookupLedger::exact() const { return session_.layout().lookups_exact.load() != 0; }

void LookupLedger::lose_exactness() noexcept {
  if (session_.layout().lookups_exact.exchange(0) != 0)
    spdlog::warn("lookup ledger: cannot keep the kernel's lookup references ({}); after a "
                 "takeover unlinked files stay until unmount",
                 std::strerror(errno));
}

bool LookupLedger::map_active() {
  const SessionState::LedgerRegion &r =
      session_.layout().ledger[session_.layout().ledger_active.load() & 1];
  const uint64_t capacity = r.capacity.load();
  if (capacity == 0)
    return true;
  void *p = mmap(nullptr, capacity * sizeof(Entry), PROT_READ | PROT_WRITE, MAP_SHARED,
                 session_.fd(), static_cast<off_t>(r.offset.load()));
  if (p == MAP_FAILED)
    return false;
  table_ = static_cast<Entry *>(p);
  capacity_ = capacity;
  uint64_t used = 0;
  for (uint64_t i = 0; i < capacity_; ++i)
    used += table_[i].ino.load() != 0;
  used_ = used;
  return true;
}

LookupLedger::Entry *LookupLedger::entry_for(uint64_t ino, bool claim) noexcept {
  if (!table_ || ino == 0)
    return nullptr;
  const size_t mask = capacity_ - 1;
  for (size_t i = home_of(ino, capacity_), probes = 0; probes < capacity_;
       i = (i + 1) & mask, ++probes) {
    Entry &e = table_[i];
    uint64_t key = e.ino.load();
    if (key == ino)
      return &e;
    if (key != 0)
      continue;
    // A free entry ends the probe: the inode has none. At three quarters full, grow first.
    if (!claim || used_.load() >= capacity_ / 4 * 3)
      return nullptr;
    if (e.ino.compare_exchange_strong(key, ino)) {
      used_.fetch_add(1);
      return &e;
    }
    if (key == ino) // another thread claimed it for the same inode
      return &e;
  }
  return nullptr;
}

void LookupLedger::added(uint64_t ino, uint64_t n) noexcept {
  bool counted = false;
  {
    std::shared_lock lock(mu_);
    if (Entry *e = entry_for(ino, true)) {
      e->count.fetch_add(n);
      counted = true;
    }
  }
  if (!counted && exact()) {
    std::unique_lock lock(mu_);
    Entry *e = entry_for(ino, true);
    if (!e) {
      try {
        if (rebuild_locked(counts(), capacity_ * 2))
          e = entry_for(ino, true);
      } catch (const std::bad_alloc &) {
      }
    }
    if (e) {
      e->count.fetch_add(n);
      counted = true;
    } else {
      lose_exactness();
    }
  }
  // After the count: a kill between the two leaves the reference counted and not named, which
  // keeps it (a leak), never takes back one that the kernel got.
  if (SessionState::RequestRecord *r = SessionState::serving();
      counted && r && names_one_entry(r->opcode.load()))
    r->entry_ino.store(ino);
}

void LookupLedger::dropped(uint64_t ino, uint64_t n) noexcept {
  std::shared_lock lock(mu_);
  Entry *e = entry_for(ino, false);
  if (!e)
    return;
  uint64_t count = e->count.load();
  while (!e->count.compare_exchange_weak(count, count - std::min(count, n))) {
  }
}

std::unordered_map<uint64_t, uint64_t> LookupLedger::counts() const {
  std::unordered_map<uint64_t, uint64_t> out;
  for (uint64_t i = 0; table_ && i < capacity_; ++i)
    if (const uint64_t ino = table_[i].ino.load())
      if (const uint64_t count = table_[i].count.load())
        out.emplace(ino, count);
  return out;
}

void LookupLedger::rebuild(const std::unordered_map<uint64_t, uint64_t> &counts) {
  std::unique_lock lock(mu_);
  if (!rebuild_locked(counts, kMinCapacity))
    lose_exactness();
}

bool LookupLedger::rebuild_locked(const std::unordered_map<uint64_t, uint64_t> &counts,
                                  uint64_t capacity) {
  capacity = std::bit_ceil(std::max({capacity, kMinCapacity, uint64_t{counts.size()} * 2}));
  SessionState::Layout &l = session_.layout();
  const uint32_t active = l.ledger_active.load() & 1;
  SessionState::LedgerRegion &next = l.ledger[active ^ 1];
  const int fd = session_.fd();
  // The other region is unused: a rebuild before this one gave its memory back, unless a kill
  // came first.
  if (const uint64_t cap = next.capacity.load())
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(next.offset.load()),
              static_cast<off_t>(cap * sizeof(Entry)));
  const uint64_t offset =
      round_up(std::max({uint64_t{sizeof(SessionState::Layout)}, region_end(l.ledger[0]),
                         region_end(l.ledger[1])}),
               kRegionAlign);
  const uint64_t bytes = capacity * sizeof(Entry);
  struct stat st {};
  if (fstat(fd, &st) != 0)
    return false;
  if (static_cast<uint64_t>(st.st_size) < offset + bytes &&
      ftruncate(fd, static_cast<off_t>(offset + bytes)) != 0)
    return false;
  void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED)
    return false;
  auto *table = static_cast<Entry *>(p);
  uint64_t used = 0;
  for (const auto &[ino, count] : counts) {
    if (ino == 0 || count == 0)
      continue;
    ++used;
    size_t i = home_of(ino, capacity);
    while (table[i].ino.load() != 0)
      i = (i + 1) & (capacity - 1);
    table[i].ino.store(ino);
    table[i].count.store(count);
  }
  // Not read until the flip below.
  next.capacity.store(0);
  next.offset.store(offset);
  next.capacity.store(capacity);
  l.ledger_active.store(active ^ 1);
  if (table_) {
    munmap(table_, capacity_ * sizeof(Entry));
    const SessionState::LedgerRegion &old = l.ledger[active];
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(old.offset.load()),
              static_cast<off_t>(old.capacity.load() * sizeof(Entry)));
  }
  table_ = table;
  capacity_ = capacity;
  used_ = used;
  spdlog::debug("lookup ledger: {} inodes referenced, {} entries", used, capacity);
  return true;
}

} // namespace pkramfs
