// The daemon serving a node, as pkramfs-ctl sees it: the node lock (held while a daemon serves
// the node) and requests over the control socket (common/control_protocol.h). Every function
// fails with a one-line Failure (failure.h) naming the node and what to do.
#pragma once

#include "settings.h"

#include "control_client.h"
#include "json.h"
#include "util/unique_fd.h"

#include <string>
#include <string_view>
#include <sys/types.h>

namespace pkramfs::ctl {

bool pid_alive(pid_t pid);
// Who holds a node's lock. The pid is what the daemon wrote after starting: missing or dead
// while a daemon is still starting, or when something else holds the lock.
std::string holder_text(pid_t pid);
std::string holder_note(pid_t pid);

// --timeout in milliseconds, or `default_s`.
int timeout_ms(const Settings &s, double default_s);
std::string sock_path(const Settings &s, const std::string &name);

// The node's lock as `mode` probes it.
LockProbe probe(const Settings &s, const std::string &name, LockMode mode);
// Where the daemon serving `name` mounted it, if it says so within a second; else "".
std::string mountpoint_of(const Settings &s, const std::string &name);
// "node 'x' is busy: pkramfs-fuse pid N serves it; <what>: umount MNT"
[[noreturn]] void busy(const Settings &s, const std::string &name, pid_t pid,
                       const std::string &what);

// The daemon's reply to `command` (waiting up to --timeout or `default_timeout_s`);
// `received` takes a descriptor sent with the reply.
control::JsonObject ask(const Settings &s, const std::string &name, pid_t pid,
                        const std::string &command, double default_timeout_s,
                        UniqueFd *received = nullptr);
// The error of an "ok":false reply as a one-line failure.
[[noreturn]] void daemon_refused(const std::string &name, const std::string &command,
                                 const control::JsonObject &reply);

// A reply's field, 0 or "" when missing.
uint64_t u64(const control::JsonObject &o, std::string_view key);
std::string str(const control::JsonObject &o, std::string_view key);

} // namespace pkramfs::ctl
