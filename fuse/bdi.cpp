#include "bdi.h"

#include "mount_table.h"
#include "util/unique_fd.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace pkramfs {
namespace {

// "/sys/class/bdi/MAJOR:MINOR/" of the FUSE mount at `mountpoint`, or nullopt.
std::optional<std::string> bdi_directory(const std::string &mountpoint) {
  const std::optional<MountEntry> mount = last_mount_on(mountpoint);
  if (!mount || !mount->fstype.starts_with("fuse"))
    return std::nullopt;
  return "/sys/class/bdi/" + mount->device + "/";
}

// 0 or an errno (ENOENT: this kernel has no such attribute).
int write_attribute(const std::string &dir, const char *name, unsigned value) {
  const std::string path = dir + name;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid())
    return errno;
  const std::string text = std::to_string(value) + "\n";
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return errno;
  return 0;
}

void set(const std::string &dir, const char *name, unsigned value) {
  if (const int err = write_attribute(dir, name, value))
    spdlog::debug("bdi {}{} left at the kernel's: {}", dir, name, std::strerror(err));
  else
    spdlog::debug("bdi {}{} = {}", dir, name, value);
}

} // namespace

void tune_mount_bdi(const std::string &mountpoint, const BdiSettings &settings) {
  const std::optional<std::string> dir = bdi_directory(mountpoint);
  if (!dir) {
    spdlog::debug("bdi of {} not tuned: no FUSE mount there in /proc/self/mountinfo", mountpoint);
    return;
  }
  if (settings.readahead_kb)
    set(*dir, "read_ahead_kb", settings.readahead_kb);
  if (settings.clear_strict_limit)
    set(*dir, "strict_limit", 0);
  if (settings.max_ratio)
    set(*dir, "max_ratio", settings.max_ratio);
}

} // namespace pkramfs
