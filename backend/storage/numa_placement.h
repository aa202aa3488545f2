// NUMA placement of a node's frames (pkramfs-fuse --numa=auto|NODE|interleave): which NUMA
// nodes the frames come from, and with auto which CPUs the daemon's threads run on.
// docs/operations.md, "NUMA placement", says what each choice means for each backend.
#pragma once

#include "util/result.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pkramfs {

// What --numa asked for.
struct NumaRequest {
  enum class Mode { kNone, kAuto, kNode, kInterleave } mode = Mode::kNone;
  int node = -1; // kNode
};

// "auto", "interleave" or a node number; false for anything else.
bool parse_numa(const std::string &text, NumaRequest &out);

// Where frames come from, as the frame sources apply it. kBind is strict (no frame elsewhere),
// kPreferred falls back to other nodes when its node is full, kInterleave takes `nodes` in turn.
struct Placement {
  enum class Kind { kNone, kBind, kPreferred, kInterleave } kind = Kind::kNone;
  int node = -1;          // kBind, kPreferred
  std::vector<int> nodes; // kInterleave
  // As /proc/PID/numa_maps writes a policy: "bind:1", "prefer:0", "interleave:0-1", "default".
  std::string describe() const;
};

// A resolved --numa: the frames' placement and the CPUs to run on (empty: leave them).
struct NumaPlan {
  Placement placement;
  std::vector<int> cpus;
};

// One NUMA node of a pkram.ko region (/sys/kernel/pkram/numa).
struct RegionNumaNode {
  int node = 0;
  uint64_t data_frames = 0;
  uint64_t free_frames = 0;
};

// For memory the kernel allocates (anon, shm): NODE must exist and have memory this process may
// use; auto is the node of most of the CPUs this process may run on. On failure `error` is one
// line naming the problem and the fix.
Result<NumaPlan> plan_memory_numa(const NumaRequest &req, std::string &error);
// For pkram.ko frames: NODE must hold frames of the region; auto is the node that holds most.
Result<NumaPlan> plan_region_numa(const NumaRequest &req, const std::vector<RegionNumaNode> &region,
                                  std::string &error);

// Applies `p` to [addr, addr + len) with mbind(2) before any of it is touched.
Result<void> bind_memory(const Placement &p, void *addr, size_t len);
// The calling thread's memory policy, inherited by the threads it creates: a kBind placement
// becomes kPreferred here, so that the daemon's own heap never fails where the arena would not.
Result<void> set_thread_memory_policy(const Placement &p);
// Pins the calling thread (and the threads it creates from now on) to `cpus`.
Result<void> pin_thread(const std::vector<int> &cpus);
// "0-3,8" for a sorted list of numbers.
std::string format_list(const std::vector<int> &v);

} // namespace pkramfs
