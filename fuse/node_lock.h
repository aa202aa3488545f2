// The lock that makes a daemon the only one serving a node: <run-dir>/NAME.lock, flock()ed
// for the daemon's life, holding its pid for the error message of the next one.
#pragma once

#include "storage/node_dirs.h" // ensure_private_dir
#include "util/result.h"
#include "util/unique_fd.h"

#include <string>
#include <sys/types.h>

namespace pkramfs {

class NodeLock {
public:
  // EWOULDBLOCK when another process holds it; `holder` then names its pid (0 if unknown).
  static Result<NodeLock> acquire(const std::string &run_dir, const std::string &node,
                                  pid_t *holder);
  // Records the serving process (after daemonizing, the pid changes).
  void write_pid(pid_t pid);
  // The locked descriptor: the holder lets the processes it starts inherit it, so that the node
  // stays locked until the last of them is gone (holder.h).
  int fd() const { return fd_.get(); }

private:
  explicit NodeLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

} // namespace pkramfs
