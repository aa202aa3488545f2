// pkramfs-ctl upgrade: a mounted node's daemon hands the mount to another pkramfs-fuse binary
// (fuse/holder.h): it stops taking requests, finishes those it took, checkpoints and exits,
// and its holder starts the new binary, which restores the checkpoint and serves the same
// mount. Applications keep their files, mappings and working directories; requests made
// meanwhile wait in the kernel.
#include "commands.h"

#include "daemon.h"
#include "failure.h"
#include "node_access.h"
#include "text.h"

#include "json.h"

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace pkramfs::ctl {
using control::JsonObject;
using control::JsonWriter;

namespace {

// The path as the daemon must see it (its working directory is /).
std::string absolute_path(const std::string &path) {
  if (path.empty() || path[0] == '/')
    return path;
  char *real = realpath(path.c_str(), nullptr);
  if (!real)
    fail("cannot find " + in_quotes(path), "give the path of a pkramfs-fuse binary");
  std::string out = real;
  free(real);
  return out;
}

} // namespace

int cmd_upgrade(const Settings &s) {
  const std::string &name = s.name;
  LockProbe lock = probe(s, name, LockMode::kShared);
  if (!lock.held) {
    if (const Located loc = locate(s, name); !exists(s, name, loc))
      no_such_node(s, name);
    fail("node " + in_quotes(name) + " is not mounted",
         "upgrade acts on a mounted node; the next mount uses the installed pkramfs-fuse anyway");
  }
  lock.fd.reset();
  const std::string path = absolute_path(s.exec_path);
  const auto start = std::chrono::steady_clock::now();
  JsonObject r = ask(s, name, lock.pid, path.empty() ? "upgrade" : "upgrade=" + path, 10);
  if (!r.at("ok").as_bool())
    daemon_refused(name, "upgrade", r);
  const uint64_t old_pid = u64(r, "serving_pid");
  const std::string binary = str(r, "path");
  // The new process answers status once it serves; until then the socket is gone or the old
  // process still answers.
  const double wait_s = s.timeout_s.value_or(120);
  const auto deadline = start + std::chrono::duration<double>(wait_s);
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline)
      fail("node " + in_quotes(name) + " did not come back within " +
               std::to_string(static_cast<int>(wait_s)) + " s after the upgrade to " + binary,
           "check the system log (journalctl -t pkramfs-fuse) and pkramfs-ctl status " + name);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    JsonObject st;
    try {
      st = ask(s, name, lock.pid, "status", 2);
    } catch (const Failure &) {
      continue; // between the two processes
    }
    if (!st.at("ok").as_bool())
      continue;
    const uint64_t pid = u64(st, "serving_pid");
    if (pid == 0 || pid == old_pid)
      continue;
    const std::string cause = str(st, "last_restart_cause");
    if (cause != "upgrade to " + binary)
      fail("the upgrade of node " + in_quotes(name) + " to " + binary + " failed: " + cause,
           "the running build serves the mount again; see the system log (journalctl -t "
           "pkramfs-fuse) for why the new binary refused");
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count();
    if (s.json) {
      std::cout << JsonWriter()
                       .begin_object()
                       .field("name", name)
                       .field("path", binary)
                       .field("old_pid", old_pid)
                       .field("serving_pid", pid)
                       .field("milliseconds", ms)
                       .end_object()
                       .str()
                << "\n";
      return 0;
    }
    char took[32];
    std::snprintf(took, sizeof took, "%.1f ms", ms);
    std::cout << "upgraded node " << in_quotes(name) << ": pid " << old_pid << " -> " << pid
              << ", running " << binary << ", in " << took << "\n";
    return 0;
  }
}

} // namespace pkramfs::ctl
