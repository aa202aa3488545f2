// Nodes as pkramfs-ctl finds and reads them: where node NAME is (--backend, the rule of
// backend/node/locate.h), shm node files, pkram.ko nodes attached for reading, summaries of
// unmounted nodes. Every function fails with a one-line Failure (failure.h).
#pragma once

#include "settings.h"

#include "control_client.h"
#include "node/node_inspect.h"
#include "storage/pkram_device.h"

#include <optional>
#include <string>
#include <sys/stat.h>

namespace pkramfs::ctl {

// <shm dir>/NAME.
std::string node_path(const Settings &s, const std::string &name);

enum class NodeFile { kMissing, kRegular, kOther };
// What <shm dir>/NAME is (lstat); `out` gets its stat.
NodeFile node_file(const Settings &s, const std::string &name, struct stat *out = nullptr);
// Fails unless <shm dir>/NAME is a regular file.
void require_node_file(const Settings &s, const std::string &name, struct stat *out = nullptr);

[[noreturn]] void no_such_node(const Settings &s, const std::string &name);
[[noreturn]] void not_a_node_file(const Settings &s, const std::string &name);

// A summary from inspect_node(), or a one-line failure; `where` names what to look at.
NodeSummary inspected(const Settings &s, const std::string &name, Result<NodeSummary> r,
                      const std::string &detail, const std::string &where);
// The summary of the unmounted shm node NAME.
NodeSummary inspect(const Settings &s, const std::string &name);

// /dev/pkram, or the one-line failure of PkramDevice::open_failure().
[[noreturn]] void device_failed(int err);
PkramDevice open_device();

uint64_t held_bytes(const PkramNodeInfo &n);
std::string pkram_state(const PkramNodeInfo &n);

// A node attached to another /dev/pkram file than a daemon of this run dir: a daemon started
// with another --run-dir, or a test tool.
[[noreturn]] void attached_elsewhere(const Settings &s, const std::string &name,
                                     const std::string &what);

// Where node `name` is, as --backend says.
struct Located {
  Backend kind = Backend::kShm;      // kKmod or kShm
  std::optional<PkramDevice> dev;    // kKmod: /dev/pkram, not attached
  std::optional<PkramNodeInfo> info; // kKmod: the node; empty when there is no such node
};
Located locate(const Settings &s, const std::string &name);
bool exists(const Settings &s, const std::string &name, const Located &loc);

// The node's lock probed for a command that reads the node when it is not mounted. A pkram
// node is attached to read it: its lock is held exclusively, so that a daemon starting
// meanwhile is told the node is busy rather than finding it attached.
LockProbe probe_to_read(const Settings &s, const std::string &name, const Located &loc);

// An unmounted pkram node attached to `dev` for reading: pread() only, never a write.
// Closing `dev` detaches it. REQUIRES: the caller holds the node's lock, so that no daemon
// starts meanwhile.
struct AttachedNode {
  NodeBytes bytes;
  PkramNodeInfo info;
};
AttachedNode attach_for_reading(const Settings &s, const std::string &name, PkramDevice &dev,
                                const std::string &what);
// The summary of the unmounted pkram node NAME; `info` gets what pkram.ko says of it.
NodeSummary inspect_kmod(const Settings &s, const std::string &name, PkramDevice &dev,
                         PkramNodeInfo &info);

// A node state, and pkram.ko's flag when it says otherwise.
std::string kmod_state(const std::string &state, const PkramNodeInfo &info);

} // namespace pkramfs::ctl
