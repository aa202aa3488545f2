// SIGTERM, SIGINT and SIGHUP end a mount the way umount does: the kernel's dirty pages (shared
// mmap writes, the writeback cache) are written back to the daemon before the session ends.
// libfuse's own handlers end the loop at once, and its unmount then closes /dev/fuse before the
// kernel could flush, which drops those pages.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <pthread.h>
#include <string>
#include <thread>

struct fuse_session;

namespace pkramfs {

class SignalStop {
public:
  // Blocks the stop signals in the calling thread (the session loop's threads inherit that) and
  // starts the thread that waits for them. Call before the session loop starts. `activity`
  // changes whenever the node records an operation (empty for a volatile tree).
  SignalStop(fuse_session *se, std::string mountpoint, std::function<uint64_t()> activity);
  // Call after the session loop returned, from the thread that ran it.
  ~SignalStop();
  // Ends the session loop without unmounting or flushing (pkramfs-ctl upgrade: the mount and
  // the kernel's page cache stay, and the next serving process takes both). Returns at once.
  void stop_for_upgrade();
  SignalStop(const SignalStop &) = delete;
  SignalStop &operator=(const SignalStop &) = delete;

private:
  void wait_for_signal();
  void flush_mount() const;
  void wait_until_quiet() const;

  fuse_session *se_;
  std::string mountpoint_;
  std::function<uint64_t()> activity_;
  pthread_t loop_thread_;
  std::atomic<bool> loop_done_{false};
  std::atomic<bool> upgrade_{false};
  std::thread waiter_;
};

} // namespace pkramfs
