#include "control_client.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace pkramfs::ctl {
namespace {

using control::Clock;
using control::remaining_ms;
using control::wait_for;

// recv() that also takes the descriptors sent with the bytes (SCM_RIGHTS): the first goes to
// `received` when it is empty, every other one is closed at once.
ssize_t recv_with_fds(int sock, char *buf, size_t len, UniqueFd *received) {
  union {
    cmsghdr align;
    char buf[CMSG_SPACE(4 * sizeof(int))];
  } control{};
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  const ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0)
    return n;
  for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      UniqueFd owned(fd);
      if (received && !received->valid())
        *received = std::move(owned);
    }
  }
  return n;
}

} // namespace

Result<control::JsonObject> ask_daemon(const std::string &socket_path, const std::string &command,
                                       int timeout_ms, std::string &why, UniqueFd *received) {
  if (received)
    received->reset();
  why.clear();
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto endpoint = control::unix_endpoint(socket_path);
  if (!endpoint)
    return Errno{endpoint.error()};
  UniqueFd sock = std::move(endpoint->sock);
  // A unix socket connects at once or says EAGAIN when the daemon's backlog is full (it is
  // busy with another request): retry until the deadline.
  while (::connect(sock.get(), endpoint->sockaddr_ptr(), endpoint->len) != 0) {
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN)
      return Errno{errno};
    if (remaining_ms(deadline) == 0)
      return Errno{ETIMEDOUT};
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  endpoint->dir.reset();

  const std::string request = command + "\n";
  size_t off = 0;
  while (off < request.size()) {
    const ssize_t n = ::send(sock.get(), request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      if (const int err = wait_for(sock.get(), POLLOUT, deadline))
        return Errno{err};
    } else if (n < 0 && errno != EINTR) {
      // The daemon may have answered (and closed) before reading: look at what it said.
      if (errno == EPIPE || errno == ECONNRESET)
        break;
      return Errno{errno};
    }
  }

  std::string reply;
  char chunk[4096];
  for (;;) {
    if (reply.find('\n') != std::string::npos)
      break;
    if (reply.size() > control::kMaxReplyBytes) {
      why = "reply longer than " + std::to_string(control::kMaxReplyBytes) + " bytes";
      return Errno{EPROTO};
    }
    const ssize_t n = recv_with_fds(sock.get(), chunk, sizeof chunk, received);
    if (n > 0) {
      reply.append(chunk, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN) {
      if (const int err = wait_for(sock.get(), POLLIN, deadline))
        return Errno{err};
    } else if (errno != EINTR) {
      if (!reply.empty() && errno == ECONNRESET)
        break;
      return Errno{errno};
    }
  }
  if (reply.empty()) {
    why = "the daemon closed the connection without a reply";
    return Errno{EPROTO};
  }
  const size_t nl = reply.find('\n');
  if (nl == std::string::npos) {
    why = "the reply is not a complete line";
    return Errno{EPROTO};
  }
  reply.resize(nl);
  control::JsonObject out;
  std::string err;
  if (!control::parse_flat_object(reply, out, err)) {
    why = "the reply is not the expected JSON (" + err + ")";
    return Errno{EPROTO};
  }
  if (!out.contains("ok") || !out.at("ok").is_bool()) {
    why = "the reply has no \"ok\" field";
    return Errno{EPROTO};
  }
  return out;
}

Result<LockProbe> probe_lock(const std::string &run_dir, const std::string &node, LockMode mode) {
  LockProbe probe;
  const std::string path = control::lock_path(run_dir, node);
  int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC;
  if (mode == LockMode::kExclusive) {
    struct stat st {};
    if (::stat(run_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
  }
  UniqueFd fd(::open(path.c_str(), flags, 0600));
  if (!fd.valid()) {
    // No lock file (or no run dir): no daemon ever served the node from this run dir.
    if (errno == ENOENT || errno == ENOTDIR)
      return probe;
    return Errno{errno};
  }
  const int how = mode == LockMode::kExclusive ? LOCK_EX : LOCK_SH;
  while (::flock(fd.get(), how | LOCK_NB) != 0) {
    if (errno == EINTR)
      continue;
    if (errno != EWOULDBLOCK)
      return Errno{errno};
    probe.held = true;
    char buf[32] = {};
    if (::pread(fd.get(), buf, sizeof buf - 1, 0) > 0)
      probe.pid = static_cast<pid_t>(std::atol(buf));
    return probe;
  }
  probe.fd = std::move(fd);
  return probe;
}

} // namespace pkramfs::ctl
