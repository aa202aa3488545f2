#include "readahead.h"

#include "mount_table.h"
#include "util/unique_fd.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace pkramfs {

int set_mount_readahead(const std::string &mountpoint, unsigned kib) {
  const std::optional<MountEntry> mount = last_mount_on(mountpoint);
  if (!mount || !mount->fstype.starts_with("fuse"))
    return ENOENT;
  const std::string path = "/sys/class/bdi/" + mount->device + "/read_ahead_kb";
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid())
    return errno;
  const std::string value = std::to_string(kib) + "\n";
  if (write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    return errno;
  return 0;
}

} // namespace pkramfs
