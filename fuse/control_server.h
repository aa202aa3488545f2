// The daemon's control socket: <run-dir>/NAME.sock (mode 0600, root only), served on a thread
// of its own; pkramfs-ctl talks to it. Protocol: common/control_protocol.h.
#pragma once

#include "control.h"
#include "util/result.h"
#include "util/unique_fd.h"

#include <memory>
#include <string>
#include <thread>

namespace pkramfs {

class ControlServer {
public:
  // Binds <run-dir>/NAME.sock, replacing a stale socket left by a dead daemon (safe only
  // because the caller holds the node lock), and starts serving.
  //  - Start it after fuse_daemonize(): threads do not survive the fork.
  //  - The handler is called on the server's thread, one request at a time, concurrently with
  //    the FUSE worker threads; it must outlive the server.
  //  - The thread blocks every signal, so SIGTERM/SIGINT reach the FUSE threads as before.
  // Errors: ENAMETOOLONG (run dir path too long even through /proc/self/fd), EEXIST (something
  // that is not a socket has the socket's name), and whatever socket/bind/listen say.
  static Result<std::unique_ptr<ControlServer>>
  start(const std::string &run_dir, const std::string &node, ControlHandler &handler);
  // Stops accepting, waits for a request in progress (a preserve may take a while), joins the
  // thread and removes the socket. Destroy it before whatever the handler uses.
  ~ControlServer();

  ControlServer(const ControlServer &) = delete;
  ControlServer &operator=(const ControlServer &) = delete;

  const std::string &path() const { return path_; }

private:
  ControlServer(std::string path, std::string node, ControlHandler &handler, UniqueFd listen,
                UniqueFd wake);
  void run() noexcept;
  void serve(int fd) noexcept;
  // `pass`: a descriptor to send with the reply (node-fd).
  std::string answer(const std::string &request, UniqueFd &pass);

  std::string path_;
  std::string node_;
  ControlHandler &handler_;
  UniqueFd listen_;
  UniqueFd wake_; // eventfd: the destructor's stop signal
  std::thread thread_;
};

} // namespace pkramfs
