#include "session_state.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pkramfs {
namespace {

// A lock-free structure in memory shared between processes must not hide a lock.
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<int32_t>::is_always_lock_free);
static_assert(std::is_standard_layout_v<SessionState::Layout>);
// Version 1's size (session 8's build): what version 2 appends must start exactly there.
static_assert(SessionState::kVersion1Bytes == 16790200);
static_assert(sizeof(SessionState::RequestRecord) == 48);
static_assert(sizeof(SessionState::Carried) == 56);

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The fh of slot `index`: the slot's generation above, the index + 1 below (0 is "no handle").
uint64_t fh_of(uint32_t index, uint64_t generation) { return generation << 32 | (index + 1ull); }
// The slot an fh names, if it names one (whatever its generation).
std::optional<uint32_t> slot_of(uint64_t fh) {
  const uint64_t low = fh & 0xffffffffu;
  if (low == 0 || low > SessionState::kHandleSlots)
    return std::nullopt;
  return static_cast<uint32_t>(low - 1);
}

// FUSE_UNIQUE_RESEND (include/uapi/linux/fuse.h, 7.40): fuse_resend sets it in the unique of
// every request it queues again.
constexpr uint64_t kUniqueResend = 1ull << 63;

size_t slot_of(uint64_t unique, size_t slots) {
  // Uniques advance in steps of 2 (FUSE_REQ_ID_STEP); the top bit marks a resent request.
  return static_cast<size_t>(((unique & ~kUniqueResend) >> 1) % slots);
}

void clear_record(SessionState::RequestRecord &r) {
  r.opcode.store(0);
  r.applied.store(0);
  r.logged.store(0);
  r.journal_epoch.store(0);
  r.journal_sequence.store(0);
  r.entry_ino.store(0);
  r.fh.store(0);
}

void copy_record(const SessionState::RequestRecord &from, SessionState::RequestRecord &to) {
  to.opcode.store(from.opcode.load());
  to.applied.store(from.applied.load());
  to.logged.store(from.logged.load());
  to.journal_epoch.store(from.journal_epoch.load());
  to.journal_sequence.store(from.journal_sequence.load());
  to.entry_ino.store(from.entry_ino.load());
  to.fh.store(from.fh.load());
}

SessionState::RequestSummary summary_of(const SessionState::RequestRecord &r) {
  return {r.opcode.load(), r.applied.load() != 0, r.entry_ino.load(), r.fh.load()};
}

thread_local SessionState::RequestRecord *serving_record = nullptr;

Result<SessionState::Layout *> map_layout(int fd) {
  static_assert(SessionState::kVersion1Bytes % 8 == 0);
  void *p = mmap(nullptr, sizeof(SessionState::Layout), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return Errno{errno};
  return static_cast<SessionState::Layout *>(p);
}

} // namespace

Result<SessionState> SessionState::create() {
  UniqueFd fd(memfd_create("pkramfs-session", MFD_CLOEXEC));
  if (!fd.valid())
    return Errno{errno};
  // Sparse: the handle table takes memory only where handles were used.
  if (ftruncate(fd.get(), sizeof(Layout)) != 0)
    return Errno{errno};
  auto layout = map_layout(fd.get());
  if (!layout)
    return Errno{layout.error()};
  Layout &l = **layout;
  l.magic = kMagic;
  l.version = kVersion;
  l.lookups_exact = 1; // from the mount on, every reference goes through the ledger
  return SessionState(std::move(fd), *layout);
}

Result<SessionState> SessionState::adopt(UniqueFd fd) {
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return Errno{errno};
  struct {
    uint64_t magic;
    uint32_t version;
  } head{};
  if (static_cast<uint64_t>(st.st_size) < kVersion1Bytes ||
      pread(fd.get(), &head, sizeof head, 0) != sizeof head || head.magic != kMagic ||
      head.version < 1 || head.version > kVersion)
    return Errno{EPROTO};
  // Version 1: what version 2 appends reads as zeros once the file covers it. Version 2: the
  // handles' backing words are 0 already.
  if (head.version == 1 && static_cast<uint64_t>(st.st_size) < sizeof(Layout) &&
      ftruncate(fd.get(), sizeof(Layout)) != 0)
    return Errno{errno};
  auto layout = map_layout(fd.get());
  if (!layout)
    return Errno{layout.error()};
  (*layout)->version = kVersion;
  return SessionState(std::move(fd), *layout);
}

SessionState::SessionState(SessionState &&o) noexcept
    : fd_(std::move(o.fd_)), layout_(std::exchange(o.layout_, nullptr)), free_(std::move(o.free_)),
      next_(o.next_) {}

SessionState::~SessionState() {
  if (layout_)
    munmap(layout_, sizeof(Layout));
}

void SessionState::save_init(std::span<const unsigned char> request) {
  const size_t n = std::min(request.size(), kInitMax);
  std::memcpy(layout_->init_request, request.data(), n);
  layout_->init_bytes = static_cast<uint32_t>(n);
}

std::span<const unsigned char> SessionState::init_request() const {
  return {layout_->init_request, std::min<size_t>(layout_->init_bytes, kInitMax)};
}

SessionState::RequestRecord *SessionState::track(uint64_t unique, uint32_t opcode) {
  const size_t start = slot_of(unique, kInflightSlots);
  for (size_t i = 0; i < kInflightSlots; ++i) {
    const size_t slot = (start + i) % kInflightSlots;
    uint64_t expected = 0;
    if (layout_->inflight[slot].compare_exchange_strong(expected, unique)) {
      RequestRecord &r = layout_->records[slot]; // all zeros while the slot was free
      r.opcode.store(opcode);
      return &r;
    }
  }
  // More requests in flight than slots (never with the daemon's few workers): this one is not
  // known to a later process, and its caller would wait if the process died now.
  return nullptr;
}

void SessionState::untrack(uint64_t unique) {
  const size_t start = slot_of(unique, kInflightSlots);
  for (size_t i = 0; i < kInflightSlots; ++i) {
    const size_t slot = (start + i) % kInflightSlots;
    if (layout_->inflight[slot].load() != unique)
      continue;
    // The record first: a free slot's record is all zeros, so that the next request's record
    // never shows this one's journal position. A kill in between leaves a request already
    // answered with an empty record: carried and never claimed, harmless.
    clear_record(layout_->records[slot]);
    layout_->inflight[slot].store(0);
    return;
  }
}

void SessionState::carry_inflight(const std::function<bool(Journal::Position)> &logged) {
  for (size_t slot = 0; slot < kInflightSlots; ++slot) {
    const uint64_t unique = layout_->inflight[slot].load();
    if (unique == 0)
      continue;
    RequestRecord &r = layout_->records[slot];
    const bool applied =
        r.applied.load() != 0 ||
        (r.logged.load() != 0 && logged({r.journal_epoch.load(), r.journal_sequence.load()}));
    const uint64_t key = unique | kUniqueResend;
    // Its slot, or the slot of the same request carried before (a process that died again
    // before the kernel resent it), or a free one; the oldest is overwritten when all are
    // taken, which only ever loses what a reply would not correct anyway.
    const size_t start = slot_of(key, kCarriedSlots);
    size_t to = start;
    for (size_t i = 0; i < kCarriedSlots; ++i) {
      const size_t c = (start + i) % kCarriedSlots;
      const uint64_t u = layout_->carried[c].unique.load();
      if (u == key || u == 0) {
        to = c;
        break;
      }
    }
    Carried &c = layout_->carried[to];
    c.unique.store(0);
    copy_record(r, c.record);
    c.record.applied.store(applied ? 1 : 0);
    c.unique.store(key);
    // A kill from here on leaves the request both carried and in flight: carried again.
    clear_record(r);
    layout_->inflight[slot].store(0);
  }
}

std::optional<SessionState::RequestSummary> SessionState::claim_carried(uint64_t unique) {
  if (!(unique & kUniqueResend))
    return std::nullopt;
  const size_t start = slot_of(unique, kCarriedSlots);
  for (size_t i = 0; i < kCarriedSlots; ++i) {
    Carried &c = layout_->carried[(start + i) % kCarriedSlots];
    if (c.unique.load() != unique)
      continue;
    const RequestSummary summary = summary_of(c.record);
    // Not carried any more before the caller acts on it: a kill in between costs what it did
    // not undo (a leak), never an undo done twice.
    c.unique.store(0);
    clear_record(c.record);
    return summary;
  }
  return std::nullopt;
}

std::vector<std::pair<uint64_t, SessionState::RequestSummary>> SessionState::take_carried() {
  std::vector<std::pair<uint64_t, RequestSummary>> out;
  for (Carried &c : layout_->carried) {
    const uint64_t unique = c.unique.load();
    if (unique == 0)
      continue;
    out.emplace_back(unique & ~kUniqueResend, summary_of(c.record));
    c.unique.store(0);
    clear_record(c.record);
  }
  return out;
}

SessionState::RequestRecord *SessionState::serving() { return serving_record; }

void SessionState::set_serving(RequestRecord *record) { serving_record = record; }

void SessionState::note_journal_record(Journal::Position at) {
  RequestRecord *r = serving_record;
  if (!r || r->logged.load(std::memory_order_relaxed))
    return;
  r->journal_epoch.store(at.epoch);
  r->journal_sequence.store(at.sequence);
  r->logged.store(1); // before the record is sealed: a kill in between logged nothing
}

size_t SessionState::inflight_count() const {
  size_t n = 0;
  for (const auto &slot : layout_->inflight)
    n += slot.load() != 0;
  return n;
}

uint64_t SessionState::open_handle(uint64_t ino) {
  uint32_t index;
  {
    std::lock_guard lock(free_lock_);
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else if (next_ < kHandleSlots) {
      index = next_++;
      layout_->handles_high.store(next_);
    } else {
      layout_->handles_lost.fetch_add(1);
      return 0;
    }
  }
  Handle &h = layout_->handles[index];
  const uint64_t generation = (h.generation.load() + 1) & 0xffffffffu;
  h.generation.store(generation); // and no backing word yet
  h.ino.store(ino); // a later process counts the handle from here on
  const uint64_t fh = fh_of(index, generation);
  if (RequestRecord *r = serving_record)
    r->fh.store(fh); // and knows which request's reply gives it
  return fh;
}

void SessionState::set_handle_backing(uint64_t fh, uint32_t backing) {
  if (const auto index = slot_of(fh))
    layout_->handles[*index].generation.store(uint64_t{backing} << 32 | (fh >> 32));
}

uint64_t SessionState::close_handle(uint64_t fh, uint32_t *backing) {
  if (backing)
    *backing = 0;
  const auto slot = slot_of(fh);
  if (!slot)
    return 0;
  const uint32_t index = *slot;
  Handle &h = layout_->handles[index];
  const uint64_t word = h.generation.load();
  if ((word & 0xffffffffu) != fh >> 32)
    return 0;
  const uint64_t ino = h.ino.exchange(0);
  if (backing && ino != 0)
    *backing = static_cast<uint32_t>(word >> 32);
  if (ino != 0) {
    std::lock_guard lock(free_lock_);
    free_.push_back(index);
  }
  return ino;
}

std::unordered_map<uint64_t, SessionState::BackedOpens> SessionState::backed_opens() const {
  std::unordered_map<uint64_t, BackedOpens> opens;
  const uint32_t high = std::min<uint32_t>(layout_->handles_high.load(), kHandleSlots);
  for (uint32_t i = 0; i < high; ++i) {
    const Handle &h = layout_->handles[i];
    const uint64_t ino = h.ino.load();
    const auto backing = static_cast<uint32_t>(h.generation.load() >> 32);
    if (ino == 0 || backing == 0)
      continue;
    BackedOpens &o = opens[ino];
    if (backing == kBackingCached) {
      o.cached++;
    } else {
      o.passthrough++;
      o.backing_id = static_cast<int32_t>(backing); // the same for every open of the inode
    }
  }
  return opens;
}

std::unordered_map<uint64_t, uint32_t> SessionState::open_files() {
  std::unordered_map<uint64_t, uint32_t> open;
  std::lock_guard lock(free_lock_);
  free_.clear();
  next_ = 0;
  uint32_t last_used = 0;
  const uint32_t high = std::min<uint32_t>(layout_->handles_high.load(), kHandleSlots);
  for (uint32_t i = 0; i < high; ++i)
    if (const uint64_t ino = layout_->handles[i].ino.load()) {
      ++open[ino];
      last_used = i + 1;
    }
  // Slots beyond the last one in use go to next_.
  for (uint32_t i = 0; i < last_used; ++i)
    if (layout_->handles[i].ino.load() == 0)
      free_.push_back(i);
  std::reverse(free_.begin(), free_.end());
  next_ = last_used;
  layout_->handles_high.store(next_);
  return open;
}

void SessionState::set_cause(const std::string &cause) {
  const size_t n = std::min(cause.size(), kCauseMax - 1);
  std::memcpy(layout_->last_cause, cause.data(), n);
  layout_->last_cause[n] = '\0';
}

void SessionState::set_mountpoint(const std::string &path) {
  const size_t n = std::min(path.size(), kMountpointMax - 1);
  std::memcpy(layout_->mountpoint, path.data(), n);
  layout_->mountpoint[n] = '\0';
}

std::string SessionState::mountpoint() const {
  return std::string(layout_->mountpoint, strnlen(layout_->mountpoint, kMountpointMax));
}

void SessionState::takeover_started() {
  layout_->takeover_served_ns = 0;
  layout_->takeover_started_ns = monotonic_ns();
}

void SessionState::takeover_served() { layout_->takeover_served_ns = monotonic_ns(); }

double SessionState::last_takeover_ms() const {
  const uint64_t started = layout_->takeover_started_ns, served = layout_->takeover_served_ns;
  if (!started || served < started)
    return -1;
  return static_cast<double>(served - started) / 1e6;
}

std::string SessionState::cause() const {
  return std::string(layout_->last_cause, strnlen(layout_->last_cause, kCauseMax));
}

} // namespace pkramfs
