#include "session_state.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <sys/mman.h>
#include <sys/stat.h>

namespace pkramfs {
namespace {

// A lock-free structure in memory shared between processes must not hide a lock.
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<int32_t>::is_always_lock_free);
static_assert(std::is_standard_layout_v<SessionState::Layout>);

// The fh of slot `index`: the slot's generation above, the index + 1 below (0 is "no handle").
uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t fh_of(uint32_t index, uint64_t generation) { return generation << 32 | (index + 1ull); }

size_t slot_of(uint64_t unique) {
  // Uniques advance in steps of 2 (FUSE_REQ_ID_STEP); the top bit marks a resent request.
  return static_cast<size_t>((unique >> 1) % SessionState::kInflightSlots);
}

Result<SessionState::Layout *> map_layout(int fd) {
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
  return SessionState(std::move(fd), *layout);
}

Result<SessionState> SessionState::adopt(UniqueFd fd) {
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return Errno{errno};
  if (static_cast<uint64_t>(st.st_size) < sizeof(Layout))
    return Errno{EPROTO};
  auto layout = map_layout(fd.get());
  if (!layout)
    return Errno{layout.error()};
  if ((*layout)->magic != kMagic || (*layout)->version != kVersion) {
    munmap(*layout, sizeof(Layout));
    return Errno{EPROTO};
  }
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

void SessionState::track(uint64_t unique) {
  const size_t start = slot_of(unique);
  for (size_t i = 0; i < kInflightSlots; ++i) {
    uint64_t expected = 0;
    if (layout_->inflight[(start + i) % kInflightSlots].compare_exchange_strong(expected, unique))
      return;
  }
  // More requests in flight than slots (never with the daemon's few workers): this one is not
  // known to a later process, and its caller would wait if the process died now.
}

void SessionState::untrack(uint64_t unique) {
  const size_t start = slot_of(unique);
  for (size_t i = 0; i < kInflightSlots; ++i) {
    uint64_t expected = unique;
    if (layout_->inflight[(start + i) % kInflightSlots].compare_exchange_strong(expected, 0))
      return;
  }
}

std::vector<uint64_t> SessionState::take_inflight() {
  std::vector<uint64_t> out;
  for (auto &slot : layout_->inflight)
    if (const uint64_t u = slot.exchange(0))
      out.push_back(u);
  return out;
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
  h.generation.store(generation);
  h.ino.store(ino); // last: a later process counts the handle from here on
  return fh_of(index, generation);
}

uint64_t SessionState::close_handle(uint64_t fh) {
  const uint64_t low = fh & 0xffffffffu;
  if (low == 0 || low > kHandleSlots)
    return 0;
  const auto index = static_cast<uint32_t>(low - 1);
  Handle &h = layout_->handles[index];
  if (h.generation.load() != fh >> 32)
    return 0;
  const uint64_t ino = h.ino.exchange(0);
  if (ino != 0) {
    std::lock_guard lock(free_lock_);
    free_.push_back(index);
  }
  return ino;
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
