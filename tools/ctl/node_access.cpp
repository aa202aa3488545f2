// Nodes as pkramfs-ctl finds and reads them, mounted or not (node_access.h).
#include "node_access.h"

#include "daemon.h"
#include "failure.h"
#include "text.h"

#include "node/locate.h"

#include <cerrno>

namespace pkramfs::ctl {

std::string node_path(const Settings &s, const std::string &name) { return s.shm_dir + "/" + name; }

// ----------------------------------------------------------------------- offline --

NodeFile node_file(const Settings &s, const std::string &name, struct stat *out) {
  struct stat st {};
  if (::lstat(node_path(s, name).c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return NodeFile::kMissing;
    fail("cannot look at " + node_path(s, name) + " (" + why(errno) + ")",
         "check --shm-dir (default /dev/shm/pkramfs)");
  }
  if (out)
    *out = st;
  return S_ISREG(st.st_mode) ? NodeFile::kRegular : NodeFile::kOther;
}

void require_node_file(const Settings &s, const std::string &name, struct stat *out) {
  switch (node_file(s, name, out)) {
  case NodeFile::kMissing:
    no_such_node(s, name);
  case NodeFile::kOther:
    not_a_node_file(s, name);
  case NodeFile::kRegular:
    break;
  }
}

[[noreturn]] void no_such_node(const Settings &s, const std::string &name) {
  if (s.backend == Backend::kKmod)
    fail("no such node " + in_quotes(name) + " in " + PkramDevice::kPath, "see pkramfs-ctl list");
  const std::string where = s.backend == Backend::kAuto && PkramDevice::present()
                                ? std::string(PkramDevice::kPath) + " or " + s.shm_dir
                                : s.shm_dir;
  fail("no such node " + in_quotes(name) + " in " + where,
       "see pkramfs-ctl list (or pass the daemon's --shm-dir/--run-dir)");
}

[[noreturn]] void not_a_node_file(const Settings &s, const std::string &name) {
  fail(node_path(s, name) + " is not a node (not a regular file)",
       "remove it by hand if it is not pkramfs's");
}

NodeSummary inspected(const Settings &s, const std::string &name, Result<NodeSummary> r,
                      const std::string &detail, const std::string &where) {
  if (r)
    return std::move(r.value());
  if (r.error() == ENOENT)
    no_such_node(s, name);
  if (r.error() == EINVAL)
    fail("node " + in_quotes(name) + " is not a valid pkramfs node: " + printable(detail),
         "run pkramfs-ctl check " + name + " for details; destroy it if it is not needed");
  fail("cannot read node " + in_quotes(name) + " (" + why(r.error()) + ")", "check " + where);
}

NodeSummary inspect(const Settings &s, const std::string &name) {
  std::string detail;
  auto r = inspect_node(node_path(s, name), detail);
  return inspected(s, name, std::move(r), detail, node_path(s, name));
}

// ---------------------------------------------------------------------- pkram.ko --

[[noreturn]] void device_failed(int err) {
  const PkramDevice::OpenFailure f = PkramDevice::open_failure(err, "pkramfs-ctl");
  fail(f.problem, f.fix);
}

PkramDevice open_device() {
  auto dev = PkramDevice::open();
  if (!dev)
    device_failed(dev.error());
  return std::move(dev.value());
}

uint64_t held_bytes(const PkramNodeInfo &n) { return n.populated_frames * kFrameSize; }
std::string pkram_state(const PkramNodeInfo &n) { return n.preserved ? "preserved" : "active"; }

[[noreturn]] void attached_elsewhere(const Settings &s, const std::string &name,
                                     const std::string &what) {
  fail("node " + in_quotes(name) + " is busy: another process holds /dev/pkram node " +
           in_quotes(name) + " (no pkramfs-fuse of run dir " + s.run_dir + " serves it)",
       what + ": stop that process (a pkramfs-fuse with another --run-dir?) and try again");
}

Located locate(const Settings &s, const std::string &name) {
  Located loc;
  if (s.backend == Backend::kShm || (s.backend == Backend::kAuto && !PkramDevice::present()))
    return loc;
  auto dev = PkramDevice::open();
  if (!dev) {
    // auto: a module that cannot be opened is not usable, and the shm node is meant; but a
    // module that is there and refuses us is worth saying when there is no shm node either.
    if (s.backend == Backend::kAuto &&
        (PkramDevice::absent(dev.error()) || node_file(s, name) != NodeFile::kMissing))
      return loc;
    device_failed(dev.error());
  }
  auto info = dev->stat(name);
  if (!info && info.error() != ENOENT)
    fail("cannot look up pkram node " + in_quotes(name) + " (" + why(info.error()) + ")",
         "see the kernel log (dmesg | grep pkram)");
  if (s.backend == Backend::kAuto &&
      auto_backend({.kmod_usable = true,
                    .in_kmod = info.ok(),
                    .in_shm = node_file(s, name) != NodeFile::kMissing}) == NodeBackend::kShm)
    return loc;
  loc.kind = Backend::kKmod;
  loc.dev.emplace(std::move(dev.value()));
  if (info)
    loc.info = std::move(info.value());
  return loc;
}

LockProbe probe_to_read(const Settings &s, const std::string &name, const Located &loc) {
  const bool kmod = loc.kind == Backend::kKmod && loc.info;
  return probe(s, name, kmod ? LockMode::kExclusive : LockMode::kShared);
}

bool exists(const Settings &s, const std::string &name, const Located &loc) {
  return loc.kind == Backend::kKmod ? loc.info.has_value()
                                    : node_file(s, name) != NodeFile::kMissing;
}

AttachedNode attach_for_reading(const Settings &s, const std::string &name, PkramDevice &dev,
                                const std::string &what) {
  bool created = false;
  auto info = dev.attach(name, false, &created);
  if (!info) {
    if (info.error() == ENOENT)
      no_such_node(s, name);
    if (info.error() == EBUSY)
      attached_elsewhere(s, name, what);
    fail("cannot attach pkram node " + in_quotes(name) + " (" + why(info.error()) + ")",
         "see the kernel log (dmesg | grep pkram)");
  }
  return {NodeBytes{dev.fd(), info->span_frames * kFrameSize, "pkram node"}, info.value()};
}

NodeSummary inspect_kmod(const Settings &s, const std::string &name, PkramDevice &dev,
                         PkramNodeInfo &info) {
  AttachedNode node = attach_for_reading(s, name, dev, "status reads an unmounted node");
  info = node.info;
  std::string detail;
  auto r = inspect_node(node.bytes, detail);
  return inspected(s, name, std::move(r), detail, "the kernel log (dmesg | grep pkram)");
}

std::string kmod_state(const std::string &state, const PkramNodeInfo &info) {
  if (info.preserved == (state == "preserved"))
    return state;
  return state + "/pkram-" + pkram_state(info);
}

} // namespace pkramfs::ctl
