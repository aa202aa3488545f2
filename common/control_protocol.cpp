// The control socket's names and addresses (common/control_protocol.h).
#include "control_protocol.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

namespace pkramfs::control {

std::string atime_request(std::string_view mode, bool nodiratime) {
  return "atime=" + std::string(mode) + (nodiratime ? ",nodiratime" : "");
}

std::string socket_file_name(std::string_view node) {
  if (node.size() <= kMaxPlainSocketName)
    return std::string(node) + ".sock";
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char c : node)
    h = (h ^ c) * 0x100000001b3ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string(node.substr(0, 40)) + "~" + hex + ".sock";
}
std::string socket_path(const std::string &run_dir, const std::string &node) {
  return run_dir + "/" + socket_file_name(node);
}

// The address of a socket at `path` for bind() or connect(). A path too long for sun_path is
// reached through its directory: `dir_fd` gets an O_PATH descriptor of it (the caller closes it
// after bind/connect) and the address becomes /proc/self/fd/N/FILE. Returns 0 or an errno.
int unix_address(const std::string &path, sockaddr_un &addr, socklen_t &len, int &dir_fd) {
  dir_fd = -1;
  addr = {};
  addr.sun_family = AF_UNIX;
  std::string target = path;
  if (target.size() >= sizeof addr.sun_path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos)
      return ENAMETOOLONG;
    const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    dir_fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
      return errno;
    target = "/proc/self/fd/" + std::to_string(dir_fd) + path.substr(slash);
    if (target.size() >= sizeof addr.sun_path) {
      ::close(dir_fd);
      dir_fd = -1;
      return ENAMETOOLONG;
    }
  }
  target.copy(addr.sun_path, target.size());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + target.size() + 1);
  return 0;
}
std::string lock_path(const std::string &run_dir, const std::string &node) {
  return run_dir + "/" + node + ".lock";
}

} // namespace pkramfs::control
