// Reading a node that no daemon serves: for pkramfs-ctl list/status/check/destroy. Opens the
// node read-only and never writes to it.
#pragma once

#include "result.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pkramfs {

struct NodeSummary {
  std::string state; // "clean", "dirty" (not cleanly unmounted), "preserved", "empty"
  uint64_t node_bytes = 0;
  uint64_t limit_bytes = 0;
  uint64_t inodes_limit = 0;
  uint64_t checkpoint_generation = 0;
  uint64_t checkpoint_bytes = 0;
  uint64_t journal_records = 0; // records to replay after the checkpoint
  uint64_t files = 0, directories = 0, other_inodes = 0;
  uint64_t data_bytes = 0;
};

struct CheckReport {
  bool clean = false;
  std::vector<std::string> problems; // one line each, naming what and where
  NodeSummary summary;
};

// ENOENT if there is no such file; EINVAL with `why` set when it is not a valid node.
Result<NodeSummary> inspect_node(const std::string &path, std::string &why);
// Verifies every CRC and the tree: link counts, parent/child agreement, extents inside the
// arena, no block owned twice.
Result<CheckReport> check_node(const std::string &path);

} // namespace pkramfs
