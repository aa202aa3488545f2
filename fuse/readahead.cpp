#include "readahead.h"

#include "unique_fd.h"

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace pkramfs {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(const std::string &s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string digits = s.substr(i + 1, 3);
      if (digits.find_first_not_of("01234567") == std::string::npos) {
        out += static_cast<char>(std::stoi(digits, nullptr, 8));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// "MAJOR:MINOR" of the last FUSE mount on `mountpoint`, or "".
std::string fuse_device_of(const std::string &mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (!(fields >> id >> parent >> dev >> root >> point) || unescape_octal(point) != mountpoint)
      continue;
    const size_t dash = line.find(" - ");
    if (dash != std::string::npos && line.compare(dash + 3, 4, "fuse") == 0)
      found = dev;
  }
  return found;
}

} // namespace

int set_mount_readahead(const std::string &mountpoint, unsigned kib) {
  const std::string dev = fuse_device_of(mountpoint);
  if (dev.empty())
    return ENOENT;
  const std::string path = "/sys/class/bdi/" + dev + "/read_ahead_kb";
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid())
    return errno;
  const std::string value = std::to_string(kib) + "\n";
  if (write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    return errno;
  return 0;
}

} // namespace pkramfs
