// /dev/pkram, the device of pkram.ko: named nodes of 2 MiB physical frames that survive kexec.
// One PkramDevice is one open file; attached to a node it can populate, punch, map and read it
// (ABI in pkramfs/pkram_uapi.h, semantics in docs/pkram-module.md).
#pragma once

#include "storage/numa_placement.h"
#include "util/result.h"
#include "util/unique_fd.h"

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

namespace pkramfs {

struct PkramNodeInfo {
  std::string name;
  bool preserved = false;
  bool attached = false;
  uint64_t span_frames = 0;      // node indices 0..span-1
  uint64_t populated_frames = 0; // indices that hold a frame
  uint64_t generation = 0;
};

struct PkramRegionInfo {
  uint64_t frames = 0;      // usable by nodes
  uint64_t free_frames = 0; // not held by any node
  uint64_t nodes = 0;
};

class PkramDevice {
public:
  static constexpr const char *kPath = "/dev/pkram";

  // ENOENT when the module is not loaded, EACCES/EPERM when not root.
  static Result<PkramDevice> open();
  // A read-only file attached to node `name` for pread() only (PKRAM_ATTACH_READER), beside
  // the file that holds the node: what a daemon lends for reading its node. EPROTO from a
  // module older than the flag, ENOENT when there is no such node.
  static Result<UniqueFd> open_reader(const std::string &name);
  static bool present();
  // Whether an open() error means pkram.ko is not loaded (no device node, or no driver behind it).
  static bool absent(int err) { return err == ENOENT || err == ENXIO || err == ENODEV; }
  // What an open() error means for the user, as "problem" and "fix": the one wording of "no
  // /dev/pkram" and of the other errors for pkramfs-fuse and pkramfs-ctl. `tool` names the
  // program (it must run as root, speak the module's interface version).
  struct OpenFailure {
    std::string problem, fix;
  };
  static OpenFailure open_failure(int err, const std::string &tool);

  Result<PkramRegionInfo> region() const;
  Result<std::vector<PkramNodeInfo>> list() const;
  Result<PkramNodeInfo> stat(const std::string &name) const;
  // EBUSY while a daemon has it attached.
  Result<void> destroy(const std::string &name) const;

  // Binds this file to node `name`; `create` makes it if missing. EBUSY when attached elsewhere.
  Result<PkramNodeInfo> attach(const std::string &name, bool create, bool *created);
  // Give frames to the holes of [first, first + count); ENOSPC when the region is full.
  Result<void> populate(uint64_t first, uint64_t count);
  // Zero and free the frames of [first, first + count); their mappings are zapped first.
  Result<void> punch(uint64_t first, uint64_t count);
  Result<void> set_preserved(bool preserved);
  // Where this attachment's new frames come from. EOPNOTSUPP from a module without NUMA
  // placement (older than PKRAM_IOC_SET_POLICY), ENXIO for a node that holds none of the region.
  Result<void> set_placement(const Placement &placement);
  // The region's NUMA nodes (/sys/kernel/pkram/numa); EOPNOTSUPP from an older module.
  static Result<std::vector<RegionNumaNode>> numa_nodes();

  int fd() const { return fd_.get(); }

private:
  explicit PkramDevice(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

} // namespace pkramfs
