#include "node_lock.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>

namespace pkramfs {

Result<NodeLock> NodeLock::acquire(const std::string &run_dir, const std::string &node,
                                   pid_t *holder) {
  *holder = 0;
  const std::string path = run_dir + "/" + node + ".lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid())
    return Errno{errno};
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    if (pread(fd.get(), buf, sizeof buf - 1, 0) > 0)
      *holder = static_cast<pid_t>(std::atol(buf));
    return Errno{err};
  }
  return NodeLock(std::move(fd));
}

void NodeLock::write_pid(pid_t pid) {
  const std::string text = std::to_string(pid) + "\n";
  if (ftruncate(fd_.get(), 0) == 0)
    (void)!pwrite(fd_.get(), text.data(), text.size(), 0);
}

} // namespace pkramfs
