// The daemon serving a node, as pkramfs-ctl sees it (daemon.h).
#include "daemon.h"

#include "failure.h"
#include "text.h"

#include <algorithm>
#include <cerrno>
#include <csignal>

namespace pkramfs::ctl {
using control::JsonObject;

bool pid_alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// Who holds a node's lock. The pid is what the daemon wrote after starting: missing or dead
// while a daemon is still starting, or when something else holds the lock.
std::string holder_text(pid_t pid) {
  return pid_alive(pid) ? "pkramfs-fuse pid " + std::to_string(pid) : "an unknown process";
}
std::string holder_note(pid_t pid) {
  if (pid_alive(pid))
    return "";
  return pid > 0 ? " (its lock names pid " + std::to_string(pid) + ", which is not running)"
                 : " (its lock names no pid)";
}

int timeout_ms(const Settings &s, double default_s) {
  const double t = s.timeout_s.value_or(default_s);
  return static_cast<int>(std::min(t, 86400.0) * 1000);
}

std::string sock_path(const Settings &s, const std::string &name) {
  return control::socket_path(s.run_dir, name);
}

// --------------------------------------------------------------------- the node lock --

LockProbe probe(const Settings &s, const std::string &name, LockMode mode) {
  auto r = probe_lock(s.run_dir, name, mode);
  if (!r)
    fail("cannot read the lock of node " + in_quotes(name) + " in '" + s.run_dir + "' (" +
             why(r.error()) + ")",
         "check --run-dir (it must be the daemon's, default /run/pkramfs)");
  return std::move(r.value());
}

// Where the daemon serving `name` mounted it, if it says so within a second.
std::string mountpoint_of(const Settings &s, const std::string &name) {
  std::string detail;
  auto r = ask_daemon(control::socket_path(s.run_dir, name), "status", 1000, detail);
  if (!r || !r->at("ok").as_bool())
    return {};
  auto it = r->find("mountpoint");
  return it == r->end() ? std::string() : it->second.as_string();
}

// "node 'x' is busy: pkramfs-fuse pid N serves it; <what>: umount MNT"
[[noreturn]] void busy(const Settings &s, const std::string &name, pid_t pid,
                       const std::string &what) {
  std::string how;
  if (pid_alive(pid)) {
    const std::string mnt = mountpoint_of(s, name);
    how = mnt.empty() ? " (umount its mount point, or kill -TERM " + std::to_string(pid) + ")"
                      : ": umount " + printable(mnt);
  } else {
    how = " (or try again: another pkramfs-ctl may hold the node's lock)";
  }
  fail("node " + in_quotes(name) + " is busy: " + holder_text(pid) + " serves it" +
           holder_note(pid),
       what + how);
}

// ----------------------------------------------------------------- daemon requests --

// The daemon's reply to `command`; fails with a one-line error when it cannot be asked.
JsonObject ask(const Settings &s, const std::string &name, pid_t pid, const std::string &command,
               double default_timeout_s, UniqueFd *received) {
  std::string detail;
  const int ms = timeout_ms(s, default_timeout_s);
  auto r = ask_daemon(sock_path(s, name), command, ms, detail, received);
  if (r)
    return std::move(r.value());
  const std::string who = "the daemon of node " + in_quotes(name) + " (" +
                          (pid_alive(pid) ? holder_text(pid) : "pid unknown") + ")";
  const std::string lock = control::lock_path(s.run_dir, name);
  std::string hint = pid_alive(pid) ? "check that pid " + std::to_string(pid) +
                                          " is alive (ps -p " + std::to_string(pid) +
                                          ") and read its log (journalctl -t pkramfs-fuse)"
                                    : "find who holds " + lock + " (fuser -v " + lock + ")";
  if (r.error() == ENOENT || r.error() == ECONNREFUSED)
    hint += "; a daemon that has just started may still be restoring the node: try again";
  switch (r.error()) {
  case ENOENT:
    fail(who + " is not answering: no control socket " + sock_path(s, name), hint);
  case ECONNREFUSED:
    fail(who + " is not answering: connection refused on " + sock_path(s, name), hint);
  case ETIMEDOUT:
    fail(who + " is not answering: no reply within " + std::to_string(ms / 1000.0).substr(0, 4) +
             " s",
         hint + "; a longer --timeout may help");
  case EPROTO:
    fail(who + " gave a bad reply: " + detail, "is it the same version as pkramfs-ctl?");
  default:
    fail("cannot talk to " + who + " on " + sock_path(s, name) + " (" + why(r.error()) + ")", hint);
  }
}

// The error of an "ok":false reply as a one-line failure.
[[noreturn]] void daemon_refused(const std::string &name, const std::string &command,
                                 const JsonObject &reply) {
  std::string message = "(no message)";
  if (auto it = reply.find("error"); it != reply.end())
    message = printable(it->second.as_string());
  int err = 0;
  if (auto it = reply.find("errno"); it != reply.end())
    err = static_cast<int>(it->second.as_i64());
  std::string fix = "see the daemon's log (journalctl -t pkramfs-fuse)";
  if (err == EPERM)
    fix = "run pkramfs-ctl as root";
  fail("node " + in_quotes(name) + ": " + command + " refused by the daemon: " + message, fix);
}

uint64_t u64(const JsonObject &o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? 0 : it->second.as_u64();
}
std::string str(const JsonObject &o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? std::string() : it->second.as_string();
}

} // namespace pkramfs::ctl
