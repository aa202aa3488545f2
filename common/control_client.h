// The client side of the control socket and of the node lock: pkramfs-ctl's commands and
// pkramfs-fuse's remount (fuse/remount.h).
#pragma once

#include "util/result.h"
#include "util/unique_fd.h"

#include "control_protocol.h"
#include "json.h"

#include <string>
#include <sys/types.h>

namespace pkramfs::ctl {

// Sends `command` to the daemon listening on `socket_path` and reads its one-line reply,
// all within `timeout_ms`. Errors: ENOENT (no socket), ECONNREFUSED (nobody listens),
// ETIMEDOUT, EPROTO (the reply is not what the protocol says: `why` tells), others from the
// socket calls. A reply with "ok":false is a value: look at reply["ok"].
// `received`: where a descriptor sent with the reply goes (node-fd); without it, or beyond the
// first, descriptors are closed.
Result<control::JsonObject> ask_daemon(const std::string &socket_path, const std::string &command,
                                       int timeout_ms, std::string &why,
                                       UniqueFd *received = nullptr);

// The node lock as seen from outside: whether a daemon holds <run-dir>/NAME.lock, and its pid.
struct LockProbe {
  bool held = false; // a daemon serves the node
  pid_t pid = 0;     // the holder's pid as it wrote it (0 if unknown)
  UniqueFd fd;       // when not held and the lock file exists: our own lock on it
};

enum class LockMode { kShared, kExclusive };

// kShared: probe without creating anything; while `fd` stays open no daemon can start on the
// node (it would be refused as busy). kExclusive: also creates the lock file (mode 0600) when
// the run dir exists, for destroy. Errors other than "held" are returned (EACCES, ...).
Result<LockProbe> probe_lock(const std::string &run_dir, const std::string &node, LockMode mode);

} // namespace pkramfs::ctl
