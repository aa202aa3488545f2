#include "signal_stop.h"

#include "mount_sync.h"
#include "operations.h" // FUSE_USE_VERSION and fuse_lowlevel.h

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace pkramfs {
namespace {

// Interrupts the loop thread's wait: libfuse's session loop sleeps in sem_wait(), which a
// handled signal interrupts, and then checks whether the session was told to exit.
constexpr int kWakeSignal = SIGUSR1;

void ignore_signal(int) {}

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

} // namespace

SignalStop::SignalStop(fuse_session *se, std::string mountpoint, std::function<uint64_t()> activity)
    : se_(se), mountpoint_(std::move(mountpoint)), activity_(std::move(activity)),
      loop_thread_(pthread_self()) {
  struct sigaction sa {};
  sa.sa_handler = ignore_signal; // no SA_RESTART: the wait must return EINTR
  sigemptyset(&sa.sa_mask);
  sigaction(kWakeSignal, &sa, nullptr);
  sa.sa_handler = SIG_IGN; // a reply to a vanished client must not kill the daemon
  sigaction(SIGPIPE, &sa, nullptr);
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  waiter_ = std::thread([this] { wait_for_signal(); });
}

SignalStop::~SignalStop() {
  loop_done_ = true;
  // Wake the waiter if no signal came (the mount was unmounted from outside).
  pthread_kill(waiter_.native_handle(), SIGTERM);
  waiter_.join();
}

void SignalStop::wait_for_signal() {
  const sigset_t set = stop_signals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  if (loop_done_)
    return;
  if (!upgrade_) {
    spdlog::debug("signal {}: flushing {} before unmounting", sig, mountpoint_);
    flush_mount();
    wait_until_quiet();
  }
  fuse_session_exit(se_);
  // The loop checks for exit before it sleeps, so a wake-up can fall in between: repeat it.
  while (!loop_done_) {
    pthread_kill(loop_thread_, kWakeSignal);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void SignalStop::stop_for_upgrade() {
  upgrade_ = true;
  pthread_kill(waiter_.native_handle(), SIGTERM);
}

void SignalStop::flush_mount() const {
  // The session still serves requests here, so the kernel's writeback reaches the node.
  if (const int err = sync_mount(mountpoint_))
    spdlog::warn("cannot flush {} before unmounting ({}); unwritten mmap data may be lost",
                 mountpoint_, std::strerror(err));
}

void SignalStop::wait_until_quiet() const {
  // syncfs() returns before the writes of a shared mapping reach us: FUSE ends a page's
  // writeback once it has copied the page into its request. Wait until the node has recorded
  // nothing for a while, so that those requests are served before the session ends.
  if (!activity_)
    return;
  using clock = std::chrono::steady_clock;
  constexpr auto kQuiet = std::chrono::milliseconds(200);
  constexpr auto kLongest = std::chrono::seconds(5);
  const auto start = clock::now();
  auto quiet_since = start;
  uint64_t seen = activity_();
  while (clock::now() - quiet_since < kQuiet && clock::now() - start < kLongest) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (const uint64_t now = activity_(); now != seen) {
      seen = now;
      quiet_since = clock::now();
    }
  }
}

} // namespace pkramfs
