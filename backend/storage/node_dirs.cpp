#include "storage/node_dirs.h"

#include "util/geometry.h"

#include <cerrno>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace pkramfs {
namespace {

struct HugeMount {
  std::string dir;
  uint64_t free_bytes;
};

uint64_t meminfo_value(const std::string &key) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with(key + ":"))
      return std::stoull(line.substr(key.size() + 1));
  return 0;
}

std::vector<HugeMount> hugetlbfs_mounts() {
  std::vector<HugeMount> mounts;
  const uint64_t default_page_kb = meminfo_value("Hugepagesize");
  const uint64_t pool_free = meminfo_value("HugePages_Free") * default_page_kb * 1024;
  std::ifstream in("/proc/self/mounts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string source, dir, type, options;
    fields >> source >> dir >> type >> options;
    if (type != "hugetlbfs")
      continue;
    const bool two_mib =
        options.find("pagesize=2M") != std::string::npos ||
        (options.find("pagesize=") == std::string::npos && default_page_kb * 1024 == kFrameSize);
    struct statvfs st {};
    if (!two_mib || statvfs(dir.c_str(), &st) != 0 || st.f_bsize != kFrameSize)
      continue;
    // A mount without size= reports no limit of its own: the pool decides.
    const uint64_t mount_free =
        st.f_blocks == UINT64_MAX || st.f_blocks == 0 ? UINT64_MAX : st.f_bavail * st.f_bsize;
    mounts.push_back({dir + "/pkramfs", std::min(mount_free, pool_free)});
  }
  return mounts;
}

bool exists(const std::string &path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

} // namespace

std::vector<std::string> default_node_dirs() {
  std::vector<std::string> dirs{kDefaultShmDir};
  for (const HugeMount &m : hugetlbfs_mounts())
    dirs.push_back(m.dir);
  return dirs;
}

std::string default_node_dir(const std::string &name, uint64_t bytes) {
  for (const std::string &dir : default_node_dirs())
    if (exists(dir + "/" + name))
      return dir;
  if (bytes)
    for (const HugeMount &m : hugetlbfs_mounts())
      if (m.free_bytes >= bytes)
        return m.dir;
  return kDefaultShmDir;
}

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

} // namespace pkramfs
