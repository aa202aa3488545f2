// The mounts of this process's namespace, as /proc/self/mountinfo lists them.
#pragma once
#include "fs/filesystem.h" // AtimePolicy

#include <optional>
#include <string>
#include <vector>

namespace pkramfs {

struct MountEntry {
  std::string device;     // "MAJOR:MINOR"
  std::string mountpoint; // unescaped
  std::string fstype;     // e.g. "fuse.pkramfs-fuse"
  std::string source;     // the mount source (FUSE: the fsname)
  std::string options;    // the per-mount options ("rw,nosuid,relatime")
};

// The last (topmost) mount on `mountpoint`, an absolute path without trailing slash; nullopt if
// nothing is mounted there.
std::optional<MountEntry> last_mount_on(const std::string &mountpoint);

// The MS_* flags of a mount, from its per-mount options; for mount(2) with MS_REMOUNT, which
// sets the mount's flags to exactly the ones passed (do_reconfigure_mnt, do_remount): what is
// not passed again is cleared.
unsigned long mount_flags_of(const MountEntry &mount);

// `flags` changed by mount options in order (ro/rw, nosuid/suid, nodev/dev, noexec/exec,
// sync/async, noatime/atime, relatime/norelatime, strictatime/nostrictatime, nodiratime/diratime,
// lazytime/nolazytime), each setting or clearing its bit; other options leave it as it is.
unsigned long apply_mount_flag_options(unsigned long flags, const std::vector<std::string> &options);

// What atime rule a mount with these flags follows, as the kernel decides it.
AtimePolicy atime_policy_of(unsigned long flags);

} // namespace pkramfs
