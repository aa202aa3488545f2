// The holder: the process that keeps a node's FUSE connection (/dev/fuse) open for as long as the
// mount lives, so that the mount outlives the process serving it (docs/operations.md,
// "Daemon crashes and upgrades").
//
// pkramfs-fuse with a node forks once it holds the node lock. The parent becomes the holder and
// does nothing else: the child opens the node, mounts and serves, and hands the holder a copy of
// the connection. When a serving process dies, the holder starts the next one with the
// connection and the session state (session_state.h): it restores the node from its journal and
// serves on; callers see nothing. A serving process asked to upgrade (pkramfs-ctl upgrade)
// drains, checkpoints and exits with kExitUpgrade, and the holder starts the binary it named.
//
// The holder's pid is the daemon's pid for the node lock, systemd and signals: SIGTERM, SIGINT
// and SIGHUP go on to the serving process (which unmounts), and the holder exits with its
// status when it ends the mount. If the holder is killed, the serving process is killed with it
// (PR_SET_PDEATHSIG): the mount ends as it always did when the daemon died, and the next mount
// restores the node.
#pragma once

#include "session_state.h"
#include "util/result.h"
#include "util/unique_fd.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pkramfs {

// A serving process that ends for an upgrade: the holder starts the binary it was told.
inline constexpr int kExitUpgrade = 75;

// A serving process's side of the holder.
class HolderLink {
public:
  HolderLink(UniqueFd channel, SessionState state, UniqueFd fuse_fd)
      : channel_(std::move(channel)), state_(std::move(state)), fuse_fd_(std::move(fuse_fd)) {}

  SessionState &state() { return state_; }
  // A process started to take a live connection over (not the one that mounted).
  bool takeover() const { return fuse_fd_.valid(); }
  // Takeover: the connection, which this process serves from now on.
  int fuse_fd() const { return fuse_fd_.get(); }

  // The first serving process: the connection it mounted, for the holder to keep.
  Result<void> send_mounted(int fuse_fd);
  // The mount serves: a daemon started in the background may now return to its caller.
  void send_ready();
  // The binary the holder starts when this process exits with kExitUpgrade.
  Result<void> send_upgrade(const std::string &path);

private:
  UniqueFd channel_;
  SessionState state_;
  UniqueFd fuse_fd_;
};

// Forks the holder. Returns in the first serving process; the holder itself never returns
// (it exits when the mount ends). Without `foreground` the caller's process waits until the
// mount serves or failed, then exits 0 or 1, as fuse_daemonize does.
// `on_started` runs in the holder once its pid is final (after going to the background): it
// records the pid in the node lock.
// REQUIRES: single-threaded; the node lock is held (the holder keeps it).
// `lock_fd` (the node lock) is inherited by every serving process, so that the node stays locked
// while any of them lives, also for the moment a serving process outlives a killed holder.
HolderLink start_holder(int argc, char **argv, bool foreground, int lock_fd,
                        const std::function<void()> &on_started);

// The link of a process the holder started with --takeover=FUSE,STATE,CHANNEL; nullopt with a
// message in `error` if the descriptors are not what the holder passes.
std::optional<HolderLink> takeover_link(const std::string &spec, std::string &error);

} // namespace pkramfs
