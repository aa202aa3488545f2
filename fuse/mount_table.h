// The mounts of this process's namespace, as /proc/self/mountinfo lists them.
#pragma once
#include <optional>
#include <string>

namespace pkramfs {

struct MountEntry {
  std::string device;     // "MAJOR:MINOR"
  std::string mountpoint; // unescaped
  std::string fstype;     // e.g. "fuse.pkramfs-fuse"
  std::string source;     // the mount source (FUSE: the fsname)
};

// The last (topmost) mount on `mountpoint`, an absolute path without trailing slash; nullopt if
// nothing is mounted there.
std::optional<MountEntry> last_mount_on(const std::string &mountpoint);

} // namespace pkramfs
