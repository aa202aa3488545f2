#include "direct_write.h"

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <spdlog/spdlog.h>
#include <thread>
#include <utility>

namespace pkramfs {
namespace {

using Clock = std::chrono::steady_clock;

struct Held {
  fuse_req_t req;
  fuse_ino_t ino;
  off_t off;
  size_t written;
  Clock::time_point deadline;
  std::atomic<bool> answered{false};

  // Exactly once, by whichever thread comes first.
  void answer() {
    if (!answered.exchange(true))
      fuse_reply_write(req, written);
  }
};

class DirectWriteReplies {
public:
  explicit DirectWriteReplies(fuse_session *se) : se_(se) {
    invalidator_ = std::thread([this] { invalidate_loop(); });
    watchdog_ = std::thread([this] { watchdog_loop(); });
  }

  void hold(fuse_req_t req, fuse_ino_t ino, off_t off, size_t written) {
    auto h = std::make_shared<Held>();
    h->req = req;
    h->ino = ino;
    h->off = off;
    h->written = written;
    h->deadline = Clock::now() + kReplyDeadline;
    {
      std::lock_guard lock(mutex_);
      to_invalidate_.push_back(h);
      held_.push_back(std::move(h));
    }
    work_.notify_all();
  }

  bool stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    work_.notify_all();
    std::unique_lock lock(mutex_);
    const bool done = idle_.wait_for(lock, kReplyDeadline + std::chrono::seconds(1),
                                     [this] { return to_invalidate_.empty() && !invalidating_; });
    lock.unlock();
    if (!done) {
      invalidator_.detach();
      watchdog_.detach();
      return false;
    }
    invalidator_.join();
    watchdog_.join();
    return true;
  }

private:
  void invalidate_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      work_.wait(lock, [this] { return stopping_ || !to_invalidate_.empty(); });
      if (to_invalidate_.empty()) // and stopping
        break;
      auto h = std::move(to_invalidate_.front());
      to_invalidate_.pop_front();
      invalidating_ = true;
      lock.unlock();
      if (const int err = fuse_lowlevel_notify_inval_inode(se_, h->ino, h->off,
                                                           static_cast<off_t>(h->written));
          err && err != -ENOENT) // ENOENT: the kernel has no inode, so no pages either
        spdlog::debug("invalidating the cache of inode {} after an O_DIRECT write: {}", h->ino,
                      strerror(-err));
      h->answer();
      lock.lock();
      invalidating_ = false;
      idle_.notify_all();
    }
  }

  void watchdog_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      while (!held_.empty() && held_.front()->answered)
        held_.pop_front();
      if (held_.empty()) {
        if (stopping_)
          break;
        work_.wait(lock);
        continue;
      }
      // Held in arrival order, so deadlines are in order too.
      const auto deadline = held_.front()->deadline;
      if (!stopping_ && Clock::now() < deadline) {
        work_.wait_until(lock, deadline);
        continue;
      }
      auto h = std::move(held_.front());
      held_.pop_front();
      lock.unlock();
      if (!h->answered.load())
        spdlog::debug("O_DIRECT write to inode {} answered before its page cache invalidation "
                      "ended (the kernel holds the pages' locks)",
                      h->ino);
      h->answer();
      lock.lock();
    }
  }

  fuse_session *se_;
  std::mutex mutex_;
  std::condition_variable work_, idle_;
  std::deque<std::shared_ptr<Held>> to_invalidate_; // for the invalidator, in arrival order
  std::deque<std::shared_ptr<Held>> held_;          // for the watchdog, in arrival order
  bool invalidating_ = false;
  bool stopping_ = false;
  std::thread invalidator_, watchdog_;
};

// Never destroyed: when stop() gives up, its threads still use it until the process ends.
DirectWriteReplies *replies = nullptr;

// One bit per hash of an inode number: set once a buffered READ or WRITE reached the daemon.
// Only ever set, so relaxed accesses suffice: a check after an O_DIRECT write that a READ
// holding the old bytes preceded under the inode's lock sees that READ's bit (read-read
// coherence where the READ only found it set already).
constexpr size_t kCachedBits = 1 << 16;
std::array<std::atomic<uint64_t>, kCachedBits / 64> cached_inodes{};

std::pair<std::atomic<uint64_t> &, uint64_t> cached_bit(fuse_ino_t ino) {
  const uint64_t h = (ino * 0x9e3779b97f4a7c15ull) >> 48; // Fibonacci hashing: 16 bits
  return {cached_inodes[h / 64], uint64_t{1} << (h % 64)};
}

} // namespace

void note_page_cache_use(fuse_ino_t ino) {
  auto [word, bit] = cached_bit(ino);
  if (!(word.load(std::memory_order_relaxed) & bit)) // the line stays shared once set
    word.fetch_or(bit, std::memory_order_relaxed);
}

void start_direct_write_replies(fuse_session *se) { replies = new DirectWriteReplies(se); }

bool reply_after_invalidation(fuse_req_t req, fuse_ino_t ino, off_t off, size_t written) {
  auto [word, bit] = cached_bit(ino);
  if (!replies || !(word.load(std::memory_order_relaxed) & bit))
    return false;
  replies->hold(req, ino, off, written);
  return true;
}

bool stop_direct_write_replies() {
  if (!replies)
    return true;
  DirectWriteReplies *r = replies;
  replies = nullptr;
  if (!r->stop())
    return false;
  delete r;
  return true;
}

} // namespace pkramfs
