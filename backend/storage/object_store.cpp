#include "storage/object_store.h"

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace pkramfs {
namespace {

std::string name_of(uint64_t ino) { return std::to_string(ino); }

} // namespace

Result<std::unique_ptr<ObjectStore>> ObjectStore::create(uint64_t limit_bytes,
                                                         uint64_t max_inodes) {
  UniqueFd fs(fsopen("tmpfs", FSOPEN_CLOEXEC));
  if (!fs.valid())
    return Errno{errno};
  const std::string size = std::to_string(limit_bytes);
  const std::string inodes = std::to_string(max_inodes == UINT64_MAX ? 0 : max_inodes);
  if (fsconfig(fs.get(), FSCONFIG_SET_STRING, "size", size.c_str(), 0) != 0 ||
      fsconfig(fs.get(), FSCONFIG_SET_STRING, "nr_inodes", inodes.c_str(), 0) != 0 ||
      fsconfig(fs.get(), FSCONFIG_SET_STRING, "mode", "0700", 0) != 0 ||
      fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return Errno{errno};
  // relatime, as the kernel's default: the object's atime is the file's (Filesystem::stat_of).
  UniqueFd root(fsmount(fs.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID |
                                                       MOUNT_ATTR_NOEXEC | MOUNT_ATTR_RELATIME));
  if (!root.valid())
    return Errno{errno};
  return std::unique_ptr<ObjectStore>(new ObjectStore(std::move(root)));
}

Result<UniqueFd> ObjectStore::make(uint64_t ino) const {
  UniqueFd fd(openat(root_.get(), name_of(ino).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
                     0600));
  if (!fd.valid())
    return Errno{errno};
  return fd;
}

Result<UniqueFd> ObjectStore::open(uint64_t ino) const {
  UniqueFd fd(openat(root_.get(), name_of(ino).c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid())
    return Errno{errno};
  return fd;
}

bool ObjectStore::stat(uint64_t ino, struct stat &st) const {
  return fstatat(root_.get(), name_of(ino).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

bool ObjectStore::set_times(uint64_t ino, const timespec times[2]) const {
  return utimensat(root_.get(), name_of(ino).c_str(), times, AT_SYMLINK_NOFOLLOW) == 0;
}

bool ObjectStore::truncate(uint64_t ino, uint64_t size) const {
  // No truncateat(2): the path through the root's descriptor.
  const std::string path = "/proc/self/fd/" + std::to_string(root_.get()) + "/" + name_of(ino);
  return ::truncate(path.c_str(), static_cast<off_t>(size)) == 0;
}

void ObjectStore::remove(uint64_t ino) const { unlinkat(root_.get(), name_of(ino).c_str(), 0); }

uint64_t ObjectStore::used_blocks() const {
  struct statvfs st {};
  if (fstatvfs(root_.get(), &st) != 0)
    return 0;
  return (st.f_blocks - st.f_bfree) * st.f_frsize / 4096;
}

} // namespace pkramfs
