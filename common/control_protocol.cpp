// The control socket's names and addresses (common/control_protocol.h).
#include "control_protocol.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <poll.h>
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

Result<UnixEndpoint> unix_endpoint(const std::string &path) {
  UnixEndpoint ep;
  ep.sock.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!ep.sock.valid())
    return Errno{errno};
  ep.addr.sun_family = AF_UNIX;
  std::string target = path;
  if (target.size() >= sizeof ep.addr.sun_path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos)
      return Errno{ENAMETOOLONG};
    const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    ep.dir.reset(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!ep.dir.valid())
      return Errno{errno};
    target = "/proc/self/fd/" + std::to_string(ep.dir.get()) + path.substr(slash);
    if (target.size() >= sizeof ep.addr.sun_path)
      return Errno{ENAMETOOLONG};
  }
  target.copy(ep.addr.sun_path, target.size());
  ep.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + target.size() + 1);
  return ep;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int left = remaining_ms(deadline);
    if (left == 0)
      return ETIMEDOUT;
    const int n = ::poll(&p, 1, left);
    if (n > 0)
      return 0;
    if (n == 0)
      return ETIMEDOUT;
    if (errno != EINTR)
      return errno;
  }
}

std::string lock_path(const std::string &run_dir, const std::string &node) {
  return run_dir + "/" + node + ".lock";
}

} // namespace pkramfs::control
