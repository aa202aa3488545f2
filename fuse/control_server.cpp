#include "control_server.h"

#include "control_protocol.h"
#include "printable.h"
#include "json.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <exception>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace pkramfs {
namespace {

using control::Clock;
using control::remaining_ms;

std::string error_reply(const std::string &message, int err = 0) {
  control::JsonWriter w;
  w.begin_object().field("ok", false).field("error", message);
  if (err)
    w.field("errno", err);
  w.end_object();
  return w.str();
}

std::string errno_text(int err) { return std::strerror(err); }

// What a client sent, in error replies and logs: at most this many bytes of it (printable.h).
constexpr size_t kShownRequestBytes = 40;

// Reads one request line: true with the line in `line`, or false with the error reply to send
// in `error` (empty: nothing to answer, the client went away).
bool read_request(int fd, std::string &line, std::string &error) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(control::kRequestTimeoutMs);
  std::string buf;
  char chunk[512];
  for (;;) {
    const size_t nl = buf.find('\n');
    if (nl != std::string::npos) {
      if (nl > control::kMaxRequestBytes)
        break;
      line = buf.substr(0, nl);
      return true;
    }
    if (buf.size() > control::kMaxRequestBytes)
      break;
    pollfd p{fd, POLLIN, 0};
    const int left = remaining_ms(deadline);
    const int n = left > 0 ? ::poll(&p, 1, left) : 0;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      error = error_reply("poll failed: " + errno_text(errno), errno);
      return false;
    }
    if (n == 0) {
      error = error_reply("no complete request within " +
                              std::to_string(control::kRequestTimeoutMs / 1000) +
                              " s; send one line: status, preserve, unpreserve or node-fd",
                          ETIMEDOUT);
      return false;
    }
    const ssize_t got = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (got < 0) {
      error.clear();
      return false;
    }
    if (got == 0) { // the client shut down its side: what it sent is the request
      if (buf.empty()) {
        error = error_reply("empty request; send one line: status, preserve, unpreserve or node-fd",
                            EINVAL);
        return false;
      }
      if (buf.size() > control::kMaxRequestBytes)
        break;
      line = buf;
      return true;
    }
    buf.append(chunk, static_cast<size_t>(got));
  }
  error = error_reply("request longer than " + std::to_string(control::kMaxRequestBytes) +
                          " bytes; send one line: status, preserve, unpreserve or node-fd",
                      EMSGSIZE);
  return false;
}

// Sends `text`; with `pass` >= 0 its first bytes carry that descriptor (SCM_RIGHTS). Our copy
// stays the caller's to close: once sent, the kernel holds the file for the client, and drops it
// if the client closes the connection without receiving it.
void write_all(int fd, const std::string &text, int pass = -1) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(control::kRequestTimeoutMs);
  union {
    cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control{};
  size_t off = 0;
  while (off < text.size()) {
    iovec iov{const_cast<char *>(text.data() + off), text.size() - off};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (pass >= 0) {
      msg.msg_control = control.buf;
      msg.msg_controllen = sizeof control.buf;
      cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pass, sizeof(int));
    }
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      pass = -1; // sent with the first bytes
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      const int left = remaining_ms(deadline);
      if (left == 0 || (::poll(&p, 1, left) < 0 && errno != EINTR))
        return;
      continue;
    }
    return; // the client is gone
  }
}

} // namespace

Result<std::unique_ptr<ControlServer>>
ControlServer::start(const std::string &run_dir, const std::string &node, ControlHandler &handler) {
  const std::string path = control::socket_path(run_dir, node);

  // A socket left by a daemon that died: ours now, since we hold the node lock.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Errno{EEXIST};
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return Errno{errno};
  } else if (errno != ENOENT) {
    return Errno{errno};
  }

  auto endpoint = control::unix_endpoint(path);
  if (!endpoint)
    return Errno{endpoint.error()};
  if (::bind(endpoint->sock.get(), endpoint->sockaddr_ptr(), endpoint->len) != 0)
    return Errno{errno};
  endpoint->dir.reset();
  UniqueFd sock = std::move(endpoint->sock);
  // The run dir is 0700 already; the mode says the same on the socket itself.
  if (::chmod(path.c_str(), 0600) != 0 || ::listen(sock.get(), 16) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return Errno{err};
  }
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) {
    const int err = errno;
    ::unlink(path.c_str());
    return Errno{err};
  }

  std::unique_ptr<ControlServer> server(
      new ControlServer(path, node, handler, std::move(sock), std::move(wake)));
  // The thread starts with every signal blocked: it inherits the mask it is created with.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = 0;
  try {
    server->thread_ = std::thread([s = server.get()] { s->run(); });
  } catch (const std::system_error &e) {
    err = e.code().value() > 0 ? e.code().value() : EAGAIN;
  } catch (...) {
    err = ENOMEM;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err) {
    ::unlink(path.c_str());
    return Errno{err};
  }
  spdlog::debug("control socket {} ready", path);
  return server;
}

ControlServer::ControlServer(std::string path, std::string node, ControlHandler &handler,
                             UniqueFd listen, UniqueFd wake)
    : path_(std::move(path)), node_(std::move(node)), handler_(handler), listen_(std::move(listen)),
      wake_(std::move(wake)) {}

ControlServer::~ControlServer() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    thread_.join();
  }
  listen_.reset();
  ::unlink(path_.c_str());
}

void ControlServer::run() noexcept {
  for (;;) {
    pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      try {
        spdlog::error("control socket {}: poll failed ({}); no longer serving", path_,
                      errno_text(errno));
      } catch (...) {
      }
      return;
    }
    if (fds[1].revents)
      return;
    if (!(fds[0].revents & POLLIN))
      continue;
    UniqueFd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        ::usleep(100 * 1000); // out of descriptors: do not spin
      continue;
    }
    serve(conn.get());
  }
}

void ControlServer::serve(int fd) noexcept {
  std::string reply;
  UniqueFd pass; // node-fd: the descriptor that goes with the reply, closed here once sent
  try {
    ucred cred{};
    socklen_t len = sizeof cred;
    std::string request, error;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      reply = error_reply("cannot identify the client: " + errno_text(errno), errno);
    } else if (cred.uid != 0) {
      spdlog::warn("control socket: refused uid {} (pid {})", cred.uid, cred.pid);
      reply = error_reply("permission denied: only root may control node '" + node_ + "'", EPERM);
    } else if (!read_request(fd, request, error)) {
      reply = error;
    } else {
      reply = answer(request, pass);
    }
  } catch (const std::exception &e) {
    pass.reset(); // an error reply carries no descriptor
    reply = error_reply(std::string("internal error: ") + e.what(), EIO);
  } catch (...) {
    pass.reset();
    reply = error_reply("internal error", EIO);
  }
  if (reply.empty())
    return;
  reply += '\n';
  if (pass.valid())
    write_all(fd, reply, pass.get());
  else
    write_all(fd, reply);
  pass.reset();
  // Drain what the client sent beyond the request, so that closing does not turn the end of
  // our reply into ECONNRESET on its side.
  ::shutdown(fd, SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 64 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
  }
}

std::string ControlServer::answer(const std::string &raw, UniqueFd &pass) {
  std::string request = raw;
  if (!request.empty() && request.back() == '\r')
    request.pop_back();
  for (const char c : request)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      return error_reply("malformed request '" + printable(request, kShownRequestBytes) +
                             "'; send one word: status, preserve, unpreserve, node-fd, atime=MODE or "
                             "upgrade[=PATH]",
                         EINVAL);
  spdlog::debug("control socket: {}", request);

  control::JsonWriter w;
  if (request == "status") {
    const NodeStatus s = handler_.status();
    const NodeUsage &u = s.usage;
    w.begin_object()
        .field("ok", true)
        .field("name", s.name)
        .field("backend", s.backend)
        .field("state", s.state)
        .field("mountpoint", s.mountpoint)
        .field("pid", s.pid)
        .field("holder_pid", s.holder_pid)
        .field("serving_pid", s.serving_pid)
        .field("restarts", s.restarts)
        .field("last_restart_cause", s.last_restart_cause)
        .field("last_takeover_ms", s.last_takeover_ms)
        .field("lookups_exact", s.lookups_exact)
        .field("files", u.files)
        .field("directories", u.directories)
        .field("other_inodes", u.other_inodes)
        .field("data_bytes", u.data_bytes)
        .field("limit_bytes", u.limit_bytes)
        .field("inodes_used", u.inodes_used)
        .field("inodes_limit", u.inodes_limit)
        .field("unlinked_inodes", u.unlinked_inodes)
        .field("journal_used_bytes", u.journal_used_bytes)
        .field("journal_bytes", u.journal_bytes)
        .field("checkpoint_bytes", u.checkpoint_bytes)
        .field("checkpoint_generation", u.checkpoint_generation)
        .field("node_bytes", u.node_bytes)
        .field("metadata_bytes", u.metadata_bytes)
        .field("free_bytes", u.free_bytes)
        .field("data_held_bytes", u.data_held_bytes)
        .field("metadata_held_bytes", u.metadata_held_bytes)
        .field("superblock_bytes", u.superblock_bytes)
        .field("held_bytes", u.held_bytes)
        .end_object();
    return w.str();
  }
  if (request == "preserve") {
    auto r = handler_.preserve();
    if (!r)
      return error_reply("preserve failed: " + errno_text(r.error()), r.error());
    spdlog::info("node {} preserved: {} files, {} bytes, checkpoint {} bytes, {:.1f} ms", node_,
                 r->files, r->bytes, r->checkpoint_bytes, r->milliseconds);
    w.begin_object()
        .field("ok", true)
        .field("files", r->files)
        .field("bytes", r->bytes)
        .field("checkpoint_bytes", r->checkpoint_bytes)
        .field("milliseconds", r->milliseconds)
        .end_object();
    return w.str();
  }
  if (request == "upgrade" || request.starts_with("upgrade=")) {
    const std::string path = request.size() > 8 ? request.substr(8) : std::string();
    const int64_t old_pid = handler_.status().serving_pid;
    auto r = handler_.upgrade(path);
    if (!r) {
      if (r.error() == EOPNOTSUPP)
        return error_reply("upgrade refused: node '" + node_ +
                               "' is served without a holder; unmount and mount it again with "
                               "this pkramfs-fuse",
                           EOPNOTSUPP);
      if (r.error() == EALREADY)
        return error_reply("upgrade refused: an upgrade of node '" + node_ + "' is under way",
                           EALREADY);
      return error_reply("upgrade refused: '" + printable(path, kShownRequestBytes) +
                             "' is not an executable file (" + errno_text(r.error()) +
                             "); give the path of a pkramfs-fuse binary",
                         r.error());
    }
    spdlog::info("node {}: upgrading to {}", node_, *r);
    return w.begin_object()
        .field("ok", true)
        .field("path", *r)
        .field("serving_pid", old_pid)
        .end_object()
        .str();
  }
  if (request == "unpreserve") {
    if (auto r = handler_.unpreserve(); !r)
      return error_reply("unpreserve failed: " + errno_text(r.error()), r.error());
    spdlog::info("node {} unpreserved: writable again", node_);
    return w.begin_object().field("ok", true).end_object().str();
  }
  if (request == "node-fd") {
    auto r = handler_.node_fd();
    if (!r) {
      if (r.error() == EOPNOTSUPP)
        return error_reply("node-fd refused: node '" + node_ +
                               "' is not a pkram.ko node (backend " + handler_.status().backend +
                               "); read its node file instead",
                           EOPNOTSUPP);
      if (r.error() == EBUSY)
        return error_reply("node-fd refused: node '" + node_ +
                               "' is not preserved; send preserve first (a consistent cut "
                               "needs the freeze)",
                           EBUSY);
      if (r.error() == EPROTO)
        return error_reply("node-fd refused: the loaded pkram.ko is older than this pkramfs-fuse "
                           "and cannot make a read-only descriptor; load the module of this "
                           "version, or unmount the node and export it then",
                           EPROTO);
      return error_reply("node-fd failed: " + errno_text(r.error()), r.error());
    }
    spdlog::info("node {}: lent a read-only /dev/pkram descriptor ({} bytes)", node_, r->bytes);
    pass = std::move(r->fd);
    return w.begin_object()
        .field("ok", true)
        .field("backend", std::string("kmod"))
        .field("node_bytes", r->bytes)
        .end_object()
        .str();
  }
  if (request.starts_with("atime=")) {
    const std::string_view arg = std::string_view(request).substr(6);
    const size_t comma = arg.find(',');
    const std::string_view mode = arg.substr(0, comma);
    const std::string_view extra = comma == std::string_view::npos ? "" : arg.substr(comma + 1);
    AtimePolicy p;
    if (mode == "noatime")
      p.mode = AtimePolicy::Mode::kNoatime;
    else if (mode == "strictatime")
      p.mode = AtimePolicy::Mode::kStrictatime;
    else if (mode != "relatime")
      return error_reply("unknown atime mode '" + printable(mode, kShownRequestBytes) +
                             "'; use relatime, strictatime or noatime",
                         EINVAL);
    if (!extra.empty() && extra != "nodiratime")
      return error_reply("unknown atime option '" + printable(extra, kShownRequestBytes) +
                             "'; only nodiratime may follow the mode",
                         EINVAL);
    p.nodiratime = !extra.empty();
    handler_.set_atime(p);
    spdlog::info("node {}: atime {}", node_, printable(arg, kShownRequestBytes));
    return w.begin_object().field("ok", true).end_object().str();
  }
  return error_reply("unknown request '" + printable(request, kShownRequestBytes) +
                         "'; send one word: status, preserve, unpreserve, node-fd, atime=MODE or "
                             "upgrade[=PATH]",
                     EINVAL);
}

} // namespace pkramfs
