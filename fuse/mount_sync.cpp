#include "mount_sync.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pkramfs {

int sync_mount(const std::string &mountpoint) {
  const char *path = mountpoint.c_str();
  const pid_t pid = fork();
  if (pid < 0)
    return errno;
  if (pid == 0) { // only async-signal-safe calls: the parent has other threads
    // Holding the daemon's /dev/fuse descriptors would keep the connection alive after the
    // daemon's death, and with it this very wait; its node lock would keep the node busy.
    close_range(3, ~0U, 0);
    const int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) != 0)
      _exit(errno & 0xff);
    _exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return errno;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return EINTR; // killed
}

} // namespace pkramfs
