// The daemon's side of pkramfs-ctl: what a mounted node can be asked over its control socket
// (<run-dir>/NAME.sock, mode 0600). The protocol is written down in common/control_protocol.h
// (pkramfs-ctl is its client); this is what the daemon implements.
#pragma once

#include "fs/filesystem.h" // AtimePolicy
#include "util/result.h"
#include "util/unique_fd.h"

#include <cstdint>
#include <string>

namespace pkramfs {

struct NodeUsage {
  uint64_t files = 0; // regular files
  uint64_t directories = 0;
  uint64_t other_inodes = 0; // symlinks, fifos, devices, sockets
  uint64_t data_bytes = 0;   // blocks holding file data, in bytes
  uint64_t limit_bytes = 0;  // size=
  uint64_t inodes_used = 0;
  uint64_t inodes_limit = 0; // 0: unlimited
  // Inodes without a name kept because a process has them open or the kernel still names
  // them (they go at the last close, or when the kernel forgets them).
  uint64_t unlinked_inodes = 0;
  uint64_t journal_used_bytes = 0;
  uint64_t journal_bytes = 0;
  uint64_t checkpoint_bytes = 0; // size of the current checkpoint image
  uint64_t checkpoint_generation = 0;
  uint64_t node_bytes = 0; // size of the node (file or kmod frames)
  // By kind (docs/operations.md, "Space"): what counts against size= (data + metadata + free
  // = limit), and the 2 MiB frames each kind really holds.
  uint64_t metadata_bytes = 0; // checkpoint slots: inodes, directories, xattrs, extent lists
  uint64_t free_bytes = 0;     // what writes can still get, as statfs says
  uint64_t data_held_bytes = 0;
  uint64_t metadata_held_bytes = 0;
  uint64_t superblock_bytes = 0;
  uint64_t held_bytes = 0; // frames the node really holds (kmod populated, shm allocated)
};

struct NodeStatus {
  std::string name;
  std::string backend; // "shm", "kmod", "anon"
  std::string state;   // "active", "preserved"
  std::string mountpoint;
  int64_t pid = 0; // the daemon: the holder, or the serving process where there is none
  // With a holder (holder.h): who serves now, how often a serving process was replaced after
  // dying, why the last one was replaced, and how long that takeover took (from the holder
  // seeing the death to the first request served; -1 before any).
  int64_t holder_pid = 0;
  int64_t serving_pid = 0;
  uint64_t restarts = 0;
  std::string last_restart_cause;
  double last_takeover_ms = -1;
  // The kernel's lookup references are known exactly to a process that takes over
  // (lookup_ledger.h); false without a holder.
  bool lookups_exact = false;
  NodeUsage usage;
};

struct PreserveReport {
  uint64_t files = 0;
  uint64_t bytes = 0; // file data bytes preserved
  uint64_t checkpoint_bytes = 0;
  double milliseconds = 0;
};

// The node the daemon serves, lent to pkramfs-ctl export (node-fd): a read-only /dev/pkram
// descriptor attached for reading only, whose pread() reads the node's bytes (holes as zeros).
struct NodeDescriptor {
  UniqueFd fd;        // close-on-exec; the server closes it once sent
  uint64_t bytes = 0; // the node's size: its span of frames
};

class ControlHandler {
public:
  virtual NodeStatus status() = 0;
  // Refuse mutations with EROFS, syncfs the mount, checkpoint, mark the node preserved.
  virtual Result<PreserveReport> preserve() = 0;
  // Make a preserved mount writable again.
  virtual Result<void> unpreserve() = 0;
  // A descriptor of the node, for reading a consistent cut of it. EOPNOTSUPP unless the node
  // is a pkram.ko node (an shm node file is read by path), EBUSY unless it is preserved.
  virtual Result<NodeDescriptor> node_fd() = 0;
  // How reads stamp atime from now on (the mount's options changed by a remount).
  virtual void set_atime(const AtimePolicy &policy) = 0;
  // pkramfs-ctl upgrade: stop taking requests, finish those taken, checkpoint, and let the
  // holder start `path` (empty: the installed binary this one was started from) on the same
  // mount. Returns the path at once; the serving process ends soon after. EOPNOTSUPP without
  // a holder, ENOENT/EACCES for a path that is not an executable file, EALREADY while an
  // upgrade is under way.
  virtual Result<std::string> upgrade(const std::string &path) = 0;

protected:
  ~ControlHandler() = default;
};

} // namespace pkramfs
