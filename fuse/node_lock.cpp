#include "node_lock.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>

namespace pkramfs {

Result<void> ensure_private_dir(const std::string &dir) {
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    const std::string part = dir.substr(0, slash);
    const mode_t mode = slash == std::string::npos ? 0700 : 0755;
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST)
      return Errno{errno};
    if (slash == std::string::npos)
      break;
  }
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0)
    return Errno{errno};
  if (!S_ISDIR(st.st_mode))
    return Errno{ENOTDIR};
  // Someone else's or a world-writable directory would let them swap our files for symlinks.
  if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
    return Errno{EPERM};
  return {};
}

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
