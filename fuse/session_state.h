// What a serving process knows about the live FUSE connection that the kernel does not tell a
// new one: kept in a memfd that the holder (holder.h) owns, so that it outlives a crash of the
// serving process and the next one takes the connection over where the last one stopped.
//
// - the INIT request: the kernel sends it once per connection; a new serving process hands
//   libfuse a copy (device_io.h) so that libfuse negotiates the same connection again;
// - requests in flight: read from /dev/fuse and not yet answered. The kernel keeps them on the
//   connection (the holder's descriptor is the same open file) and their callers wait; the new
//   process asks the kernel to send them again (FUSE_NOTIFY_RESEND, Linux 6.9+) or, where the
//   kernel cannot, answers them with EIO so that no caller waits forever (there the workers
//   also read through cloned descriptors, whose requests the kernel fails as they close: a
//   request read in the instant of a kill is never noted here);
// - open files: the handle (fh) the kernel got for each OPEN and CREATE and its inode, so that
//   a new process knows which inodes are open (an unlinked file lives while it is open);
// - who serves, how often it was restarted and why, for pkramfs-ctl status.
//
// Only processes of one pkramfs build family share it: the layout has a magic and a version,
// and a serving process that finds another refuses to take over (the old one keeps serving).
#pragma once

#include "util/result.h"
#include "util/unique_fd.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace pkramfs {

class SessionState {
public:
  static constexpr uint64_t kMagic = 0x5441545353465250ull; // "PRFSSTAT"
  // Bump when the layout below changes; a process refuses a state of another version.
  static constexpr uint32_t kVersion = 1;
  static constexpr size_t kInitMax = 512;
  static constexpr size_t kInflightSlots = 1024;
  static constexpr size_t kHandleSlots = 1u << 20;
  static constexpr size_t kCauseMax = 128;
  static constexpr size_t kMountpointMax = 4096;

  struct Handle {
    std::atomic<uint64_t> ino;        // 0: free
    std::atomic<uint64_t> generation; // in the fh's upper half, so a stale fh matches nothing
  };

  struct Layout {
    uint64_t magic;
    uint32_t version;
    uint32_t init_bytes;
    unsigned char init_request[kInitMax];
    std::atomic<int32_t> holder_pid;
    std::atomic<int32_t> serving_pid;
    std::atomic<uint32_t> restarts;
    std::atomic<uint32_t> handles_lost; // an OPEN found the handle table full
    std::atomic<uint32_t> handles_high; // slots at and above were never used
    std::atomic<uint64_t> takeover_started_ns; // CLOCK_MONOTONIC: the holder saw the crash
    std::atomic<uint64_t> takeover_served_ns;  // the first request served after it
    char last_cause[kCauseMax];
    // The mount point as an absolute path. A process taking over must not look the path up
    // itself: the lookup would reach the very mount it is about to serve, and wait for it.
    char mountpoint[kMountpointMax];
    std::atomic<uint64_t> inflight[kInflightSlots];
    Handle handles[kHandleSlots];
  };

  // A new state (the holder, before the first serving process starts).
  static Result<SessionState> create();
  // The state behind an inherited descriptor (a serving process started by the holder).
  // EPROTO: not a state of this layout version.
  static Result<SessionState> adopt(UniqueFd fd);

  SessionState(SessionState &&) noexcept;
  SessionState &operator=(SessionState &&) = delete;
  ~SessionState();

  int fd() const { return fd_.get(); }
  Layout &layout() { return *layout_; }

  // The connection's INIT request as the kernel sent it (header and fuse_init_in).
  void save_init(std::span<const unsigned char> request);
  std::span<const unsigned char> init_request() const;

  // A request read from the device; forgotten when its reply is written.
  void track(uint64_t unique);
  void untrack(uint64_t unique);
  // The requests a process that died had read and not answered, and forgets them.
  std::vector<uint64_t> take_inflight();
  size_t inflight_count() const;

  // Open files. open_handle returns the fh to give the kernel (0 when the table is full: that
  // file's open is then unknown to a later process, which counts every inode as open).
  uint64_t open_handle(uint64_t ino);
  // The inode of a valid fh, which it forgets; 0 for a stale or unknown fh (its RELEASE was
  // served already, before a crash, and is being sent again).
  uint64_t close_handle(uint64_t fh);
  // How many handles each inode has, and rebuilds the free list (a serving process that
  // takes over). REQUIRES: no open_handle/close_handle meanwhile.
  std::unordered_map<uint64_t, uint32_t> open_files();

  void set_cause(const std::string &cause);
  std::string cause() const;
  void set_mountpoint(const std::string &path);
  std::string mountpoint() const;

  // The takeover time pkramfs-ctl status shows: from the holder seeing a serving process die
  // (takeover_started) to the next one's first reply (takeover_served); -1 before one ended.
  void takeover_started();
  void takeover_served();
  double last_takeover_ms() const;

private:
  SessionState(UniqueFd fd, Layout *layout) : fd_(std::move(fd)), layout_(layout) {}

  UniqueFd fd_;
  Layout *layout_ = nullptr;
  std::mutex free_lock_;
  std::vector<uint32_t> free_; // handle slots known free; the rest above next_
  uint32_t next_ = 0;
};

} // namespace pkramfs
