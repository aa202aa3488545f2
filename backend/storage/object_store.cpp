#include "storage/object_store.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string>
#include <string_view>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace pkramfs {
namespace {

std::string name_of(uint64_t ino) { return std::to_string(ino); }

// The directory at `path` itself (never through a symlink), for reading.
UniqueFd open_dir(const std::string &path) {
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

// Calls `each(name)` for every entry of directory `root` but "." and "..". False (errno set)
// when the directory cannot be read.
template <class Each> bool for_each_entry(int root, const Each &each) {
  UniqueFd copy(openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DIR *d = copy.valid() ? fdopendir(copy.get()) : nullptr;
  if (!d)
    return false;
  (void)copy.release(); // the DIR has it
  while (dirent *e = readdir(d)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != "..")
      each(name);
  }
  closedir(d);
  return true;
}

// Which node a store belongs to: an xattr of its root, so that it takes no block and no inode
// of the tmpfs (its df stays the objects' own). trusted.*: only root reads or writes it.
constexpr const char *kNodeXattr = "trusted.pkramfs.node";

std::string owner_of(int root) {
  char buf[64];
  const ssize_t n = fgetxattr(root, kNodeXattr, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// `fd` is the root of a tmpfs mount (not a directory of the file system below it).
bool is_tmpfs_root(int fd, const std::string &path) {
  struct statfs fs {};
  struct stat self {}, parent {};
  if (fstatfs(fd, &fs) != 0 || fs.f_type != TMPFS_MAGIC || fstat(fd, &self) != 0)
    return false;
  const std::string up = path + "/..";
  return ::stat(up.c_str(), &parent) == 0 && parent.st_dev != self.st_dev;
}

std::string tmpfs_options(uint64_t limit_bytes, uint64_t max_inodes) {
  // nr_inodes: the node's, plus the root; 0 is no limit.
  const uint64_t inodes = max_inodes == UINT64_MAX ? 0 : max_inodes + 1;
  return "size=" + std::to_string(limit_bytes) + ",nr_inodes=" + std::to_string(inodes) +
         ",mode=0700";
}

// Every object of a store, for a store that belongs to no node (yet).
void remove_all(int root) {
  (void)for_each_entry(root, [root](std::string_view name) {
    unlinkat(root, std::string(name).c_str(), 0);
  });
}

} // namespace

std::string ObjectStore::path_for(const std::string &dir, const std::string &node) {
  return dir + "/." + node + ".objects"; // node names never start with '.': no node has it
}

Result<std::unique_ptr<ObjectStore>> ObjectStore::attach(const std::string &path,
                                                         uint64_t limit_bytes, uint64_t max_inodes,
                                                         const std::string &uuid, bool fresh) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return Errno{errno};
  UniqueFd root = open_dir(path);
  if (!root.valid())
    return Errno{errno};
  const std::string options = tmpfs_options(limit_bytes, max_inodes);
  if (!is_tmpfs_root(root.get(), path)) {
    if (::mount("pkramfs-objects", path.c_str(), "tmpfs", MS_NODEV | MS_NOSUID | MS_NOEXEC,
                options.c_str()) != 0)
      return Errno{errno};
    root = open_dir(path);
    if (!root.valid() || !is_tmpfs_root(root.get(), path))
      return Errno{root.valid() ? EIO : errno};
  }
  const std::string owner = owner_of(root.get());
  if (owner != uuid) {
    // An earlier node of this name, or a store mounted before its owner was written: nothing
    // in it is this node's. A node that has a tree already refuses another node's objects.
    if (!fresh && !owner.empty())
      return Errno{EEXIST};
    remove_all(root.get());
    if (fsetxattr(root.get(), kNodeXattr, uuid.data(), uuid.size(), 0) != 0)
      return Errno{errno};
  }
  return std::unique_ptr<ObjectStore>(new ObjectStore(std::move(root), false));
}

bool ObjectStore::mounted(const std::string &path) {
  UniqueFd root = open_dir(path);
  return root.valid() && is_tmpfs_root(root.get(), path);
}

Result<std::unique_ptr<ObjectStore>> ObjectStore::open_existing(const std::string &path,
                                                                const std::string &uuid) {
  UniqueFd root = open_dir(path);
  if (!root.valid())
    return Errno{errno};
  if (!is_tmpfs_root(root.get(), path))
    return Errno{ENOENT};
  if (owner_of(root.get()) != uuid)
    return Errno{EEXIST};
  return std::unique_ptr<ObjectStore>(new ObjectStore(std::move(root), true));
}

Result<void> ObjectStore::detach(const std::string &path) {
  UniqueFd root = open_dir(path);
  if (!root.valid())
    return Errno{errno};
  const bool mounted = is_tmpfs_root(root.get(), path);
  root.reset();
  // Lazily: a descriptor still open (a daemon that is going) keeps its pages until it closes.
  if (mounted && ::umount2(path.c_str(), MNT_DETACH) != 0)
    return Errno{errno};
  if (::rmdir(path.c_str()) != 0)
    return Errno{errno};
  return {};
}

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
  return std::unique_ptr<ObjectStore>(new ObjectStore(std::move(root), false));
}

Result<UniqueFd> ObjectStore::make(uint64_t ino) const {
  if (read_only_)
    return Errno{EROFS};
  UniqueFd fd(openat(root_.get(), name_of(ino).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
                     0600));
  if (!fd.valid())
    return Errno{errno};
  return fd;
}

Result<UniqueFd> ObjectStore::open(uint64_t ino) const {
  UniqueFd fd(openat(root_.get(), name_of(ino).c_str(),
                     (read_only_ ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid())
    return Errno{errno};
  return fd;
}

bool ObjectStore::stat(uint64_t ino, struct stat &st) const {
  return fstatat(root_.get(), name_of(ino).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

bool ObjectStore::set_times(uint64_t ino, const timespec times[2]) const {
  if (read_only_)
    return false;
  return utimensat(root_.get(), name_of(ino).c_str(), times, AT_SYMLINK_NOFOLLOW) == 0;
}

bool ObjectStore::truncate(uint64_t ino, uint64_t size) const {
  if (read_only_)
    return false;
  // No truncateat(2): the path through the root's descriptor.
  const std::string path = "/proc/self/fd/" + std::to_string(root_.get()) + "/" + name_of(ino);
  return ::truncate(path.c_str(), static_cast<off_t>(size)) == 0;
}

void ObjectStore::remove(uint64_t ino) const {
  if (!read_only_)
    unlinkat(root_.get(), name_of(ino).c_str(), 0);
}

Result<void> ObjectStore::resize(uint64_t limit_bytes) const {
  if (read_only_)
    return Errno{EROFS};
  // The tmpfs behind the root's descriptor, mounted or not (fspick needs no path).
  UniqueFd fs(fspick(root_.get(), "", FSPICK_EMPTY_PATH | FSPICK_CLOEXEC));
  if (!fs.valid())
    return Errno{errno};
  const std::string size = std::to_string(std::max<uint64_t>(limit_bytes, 4096));
  if (fsconfig(fs.get(), FSCONFIG_SET_STRING, "size", size.c_str(), 0) != 0 ||
      fsconfig(fs.get(), FSCONFIG_CMD_RECONFIGURE, nullptr, nullptr, 0) != 0)
    return Errno{errno};
  return {};
}

Result<std::vector<uint64_t>> ObjectStore::list() const {
  std::vector<uint64_t> inos;
  const bool read = for_each_entry(root_.get(), [&inos](std::string_view name) {
    uint64_t ino = 0;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), ino);
    if (ec == std::errc() && end == name.data() + name.size() && name == name_of(ino))
      inos.push_back(ino);
  });
  if (!read)
    return Errno{errno};
  return inos;
}

uint64_t ObjectStore::used_blocks() const {
  struct statvfs st {};
  if (fstatvfs(root_.get(), &st) != 0)
    return 0;
  return (st.f_blocks - st.f_bfree) * st.f_frsize / 4096;
}

} // namespace pkramfs
