#include "holder.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <poll.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <string_view>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pkramfs {
namespace {

enum class Message : uint32_t { kMounted = 1, kReady = 2, kUpgrade = 3 };

// One message on the holder's SOCK_SEQPACKET channel: the type, an optional payload and at most
// one descriptor.
Result<void> send_message(int sock, Message type, std::string_view payload = {}, int fd = -1) {
  std::string body(sizeof(uint32_t), '\0');
  const auto t = static_cast<uint32_t>(type);
  std::memcpy(body.data(), &t, sizeof t);
  body += payload;
  iovec iov{body.data(), body.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
    return Errno{errno};
  return {};
}

struct Received {
  Message type{};
  std::string payload;
  UniqueFd fd;
};

// nullopt when the other side is gone (or sent something that is not a message).
std::optional<Received> receive_message(int sock) {
  char buf[4096 + sizeof(uint32_t)];
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < static_cast<ssize_t>(sizeof(uint32_t)))
    return std::nullopt;
  Received r;
  uint32_t t;
  std::memcpy(&t, buf, sizeof t);
  r.type = static_cast<Message>(t);
  r.payload.assign(buf + sizeof t, static_cast<size_t>(n) - sizeof t);
  for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      r.fd.reset(fd);
    }
  return r;
}

sigset_t holder_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP})
    sigaddset(&set, s);
  return set;
}

// In a child of the holder: dies with the holder, and starts with the signals unblocked.
// False if the holder is gone already.
bool become_holder_child(pid_t holder) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != holder)
    return false;
  const sigset_t set = holder_signals();
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
  return true;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status))
    return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

class Holder {
public:
  Holder(std::vector<std::string> argv, SessionState state, int ready_fd, int lock_fd)
      : argv_(std::move(argv)), state_(std::move(state)), ready_fd_(ready_fd), lock_fd_(lock_fd) {}

  // Returns in the first serving process only.
  HolderLink run() {
    const sigset_t set = holder_signals();
    sigprocmask(SIG_BLOCK, &set, nullptr);
    state_.layout().holder_pid = getpid();
    auto first = fork_first_server();
    if (first)
      return std::move(*first);
    signals_.reset(signalfd(-1, &set, SFD_CLOEXEC));
    serve_forever();
  }

private:
  // The first serving process is a fork: it reports its errors (a node refused, a mount point
  // in use) on the caller's stderr, as a daemon without a holder did.
  std::optional<HolderLink> fork_first_server() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
      fail("cannot create the holder's channel (" + std::string(strerror(errno)) + ")");
    const pid_t holder = getpid();
    const pid_t pid = fork();
    if (pid < 0)
      fail("cannot start the serving process (" + std::string(strerror(errno)) + ")");
    if (pid == 0) {
      close(sv[0]);
      if (!become_holder_child(holder))
        _exit(1);
      auto state = SessionState::adopt(UniqueFd(dup(state_.fd())));
      if (!state)
        _exit(1);
      if (ready_fd_ >= 0)
        close(ready_fd_);
      return HolderLink(UniqueFd(sv[1]), std::move(state.value()), UniqueFd());
    }
    close(sv[1]);
    channel_.reset(sv[0]);
    serving_ = pid;
    return std::nullopt;
  }

  // A process that takes the connection over: `path` with the daemon's arguments and the
  // descriptors it needs.
  bool spawn(const std::string &path) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
      spdlog::error("cannot create the holder's channel: {}", strerror(errno));
      return false;
    }
    const pid_t holder = getpid();
    const pid_t pid = fork();
    if (pid < 0) {
      spdlog::error("cannot start a serving process: {}", strerror(errno));
      close(sv[0]);
      close(sv[1]);
      return false;
    }
    if (pid == 0) {
      if (!become_holder_child(holder))
        _exit(1);
      for (int fd : {fuse_.get(), state_.fd(), sv[1], lock_fd_})
        if (fd >= 0)
          fcntl(fd, F_SETFD, 0);
      std::vector<std::string> args = argv_;
      args.push_back("--takeover=" + std::to_string(fuse_.get()) + "," +
                     std::to_string(state_.fd()) + "," + std::to_string(sv[1]));
      std::vector<char *> cargv;
      for (std::string &a : args)
        cargv.push_back(a.data());
      cargv.push_back(nullptr);
      execv(path.c_str(), cargv.data());
      _exit(127);
    }
    close(sv[1]);
    channel_.reset(sv[0]);
    serving_ = pid;
    ready_ = false;
    spdlog::debug("holder: serving process {} ({}) takes the connection over", pid, path);
    return true;
  }

  [[noreturn]] void serve_forever() {
    for (;;) {
      pollfd p[2] = {{signals_.get(), POLLIN, 0}, {channel_.get(), POLLIN, 0}};
      const int nfds = channel_.valid() ? 2 : 1;
      if (poll(p, nfds, -1) < 0) {
        if (errno == EINTR)
          continue;
        fail("poll failed (" + std::string(strerror(errno)) + ")");
      }
      if (nfds == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
        on_channel();
      if (p[0].revents & POLLIN)
        on_signal();
    }
  }

  // Messages the serving process sent before it died.
  void drain_channel() {
    while (channel_.valid()) {
      pollfd p{channel_.get(), POLLIN, 0};
      if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
        return;
      on_channel();
    }
  }

  void on_channel() {
    auto m = receive_message(channel_.get());
    if (!m) { // the serving process is gone; SIGCHLD tells how
      channel_.reset();
      return;
    }
    switch (m->type) {
    case Message::kMounted:
      if (m->fd.valid() && !fuse_.valid())
        fuse_ = std::move(m->fd);
      break;
    case Message::kReady:
      ready_ = true;
      serving_path_ = last_path_;
      failures_before_ready_ = 0;
      if (ready_fd_ >= 0)
        detach_from_caller();
      break;
    case Message::kUpgrade:
      upgrade_path_ = m->payload;
      break;
    }
  }

  // The caller of pkramfs-fuse (waiting in the process that forked the holder) may go.
  void detach_from_caller() {
    const char ok = 0;
    [[maybe_unused]] ssize_t w = write(ready_fd_, &ok, 1);
    close(ready_fd_);
    ready_fd_ = -1;
    if (chdir("/") != 0) {
    }
    if (const int null = open("/dev/null", O_RDWR); null >= 0) {
      for (int fd = 0; fd <= 2; ++fd)
        dup2(null, fd);
      if (null > 2)
        close(null);
    }
    // stderr is gone: the holder logs through syslog, as the serving process does.
    const auto level = spdlog::default_logger()->level();
    auto logger = spdlog::syslog_logger_mt("pkramfs-holder", "pkramfs-fuse", LOG_PID);
    logger->set_level(level);
    spdlog::set_default_logger(logger);
  }

  void on_signal() {
    signalfd_siginfo info{};
    while (read(signals_.get(), &info, sizeof info) == sizeof info) {
      const int sig = static_cast<int>(info.ssi_signo);
      if (sig == SIGCHLD) {
        reap();
        continue;
      }
      // Stop: the serving process unmounts (signal_stop.h).
      stopping_ = true;
      if (serving_ > 0)
        kill(serving_, sig);
    }
  }

  void reap() {
    int status = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
      if (pid == serving_)
        on_server_exit(status);
  }

  void on_server_exit(int status) {
    drain_channel();
    serving_ = -1;
    channel_.reset();
    if (!fuse_.valid()) // it never mounted: its stderr said why
      finish(WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    // Told to stop: the serving process unmounted (lazily, if files are still open there).
    if (stopping_) {
      if (code != 0)
        spdlog::error("the serving process {} while stopping; the mount ends",
                      describe_status(status));
      finish(code);
    }
    // Unmounted: the kernel ended the connection. Any other end, even a status of 0 (a binary
    // named for an upgrade that is not pkramfs-fuse), leaves a mount that needs serving.
    if (!connection_alive())
      finish(code);
    const bool upgrade = WIFEXITED(status) && WEXITSTATUS(status) == kExitUpgrade;
    // The binary of the last process that served: after an upgrade, the new one.
    std::string path = serving_path_;
    std::string cause;
    if (upgrade && !upgrade_path_.empty()) {
      path = upgrade_path_;
      cause = "upgrade to " + upgrade_path_;
    } else if (!ready_ && last_path_ != serving_path_) {
      // An upgraded binary that could not take over: the running build serves again.
      cause = "upgrade to " + last_path_ + " failed (" + describe_status(status) + ")";
    } else {
      cause = "serving process " + describe_status(status);
    }
    upgrade_path_.clear();
    if (!ready_ && !upgrade && ++failures_before_ready_ >= 3) {
      spdlog::error("{} serving processes in a row died before serving ({}); giving up the mount",
                    failures_before_ready_, cause);
      finish(1);
    }
    const auto now = std::chrono::steady_clock::now();
    recent_.push_back(now);
    while (!recent_.empty() && now - recent_.front() > std::chrono::seconds(10))
      recent_.erase(recent_.begin());
    if (recent_.size() > 50) {
      spdlog::error("more than 50 restarts within 10 s ({}); giving up the mount", cause);
      finish(1);
    }
    state_.takeover_started();
    SessionState::Layout &l = state_.layout();
    l.serving_pid = 0;
    if (!upgrade)
      l.restarts.fetch_add(1);
    state_.set_cause(cause);
    spdlog::log(upgrade ? spdlog::level::info : spdlog::level::warn, "{}; restarting", cause);
    last_path_ = path;
    if (!spawn(path))
      finish(1);
  }

  // The kernel answers poll on /dev/fuse with POLLERR once the connection is ended (unmount,
  // abort): fuse_dev_poll.
  bool connection_alive() const {
    pollfd p{fuse_.get(), 0, 0};
    return !(poll(&p, 1, 0) == 1 && (p.revents & POLLERR));
  }

  // Ends the holder; its copy of the connection closes with it.
  [[noreturn]] void finish(int code) {
    if (ready_fd_ >= 0) {
      const char failed = 1;
      [[maybe_unused]] ssize_t w = write(ready_fd_, &failed, 1);
    }
    _exit(code);
  }

  [[noreturn]] static void fail(const std::string &message) {
    spdlog::error("holder: {}", message);
    _exit(1);
  }

  std::vector<std::string> argv_;
  SessionState state_;
  int ready_fd_;
  int lock_fd_;
  UniqueFd signals_;
  UniqueFd channel_;
  UniqueFd fuse_;
  pid_t serving_ = -1;
  bool ready_ = false;
  bool stopping_ = false;
  int failures_before_ready_ = 0;
  std::string upgrade_path_;
  std::string last_path_ = "/proc/self/exe";    // the binary of the newest serving process
  std::string serving_path_ = "/proc/self/exe"; // that of the last one that served
  std::vector<std::chrono::steady_clock::time_point> recent_;
};

// fuse_daemonize's protocol: the caller's process waits for one byte from the daemon (0 when
// the mount serves) and exits with it.
int daemonize() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    spdlog::error("cannot go to the background: {}", strerror(errno));
    _exit(1);
  }
  const pid_t pid = fork();
  if (pid < 0) {
    spdlog::error("cannot go to the background: {}", strerror(errno));
    _exit(1);
  }
  if (pid > 0) {
    close(p[1]);
    char result = 1;
    const ssize_t n = read(p[0], &result, 1);
    _exit(n == 1 && result == 0 ? 0 : 1);
  }
  close(p[0]);
  setsid();
  return p[1];
}

} // namespace

Result<void> HolderLink::send_mounted(int fuse_fd) {
  return send_message(channel_.get(), Message::kMounted, {}, fuse_fd);
}

void HolderLink::send_ready() {
  state_.layout().serving_pid = getpid();
  if (auto r = send_message(channel_.get(), Message::kReady); !r)
    spdlog::warn("cannot tell the holder that the mount serves: {}", strerror(r.error()));
}

Result<void> HolderLink::send_upgrade(const std::string &path) {
  return send_message(channel_.get(), Message::kUpgrade, path);
}

HolderLink start_holder(int argc, char **argv, bool foreground, int lock_fd,
                        const std::function<void()> &on_started) {
  auto state = SessionState::create();
  if (!state) {
    spdlog::error("cannot create the session state ({}); run where memfd_create works",
                  strerror(state.error()));
    std::exit(1);
  }
  const int ready_fd = foreground ? -1 : daemonize();
  on_started();
  std::vector<std::string> args(argv, argv + argc);
  Holder holder(std::move(args), std::move(state.value()), ready_fd, lock_fd);
  return holder.run();
}

std::optional<HolderLink> takeover_link(const std::string &spec, std::string &error) {
  int fuse = -1, state = -1, channel = -1;
  char tail = 0;
  if (std::sscanf(spec.c_str(), "%d,%d,%d%c", &fuse, &state, &channel, &tail) != 3 || fuse < 0 ||
      state < 0 || channel < 0) {
    error = "--takeover is for the holder's own use (--takeover=FUSE,STATE,CHANNEL descriptors)";
    return std::nullopt;
  }
  for (int fd : {fuse, state, channel})
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  auto s = SessionState::adopt(UniqueFd(state));
  if (!s) {
    error = std::string("cannot take the mount over: the holder's session state is not one this "
                        "build reads (") +
            strerror(s.error()) + "); the running build keeps serving";
    close(fuse);
    close(channel);
    return std::nullopt;
  }
  return HolderLink(UniqueFd(channel), std::move(s.value()), UniqueFd(fuse));
}

} // namespace pkramfs
