// Reading a node that no daemon serves: for pkramfs-ctl list/status/check/destroy. Reads the
// node with pread() only and never writes to it.
#pragma once

#include "fs/filesystem.h"
#include "storage/frame_source.h"
#include "node/node.h"
#include "storage/object_store.h"
#include "util/result.h"

#include <cstdint>
#include <memory>
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
  // By kind, as a mounted node's status reports them (docs/operations.md, "Space"); the
  // memory held is the caller's to fill in (it knows the backend).
  uint64_t metadata_bytes = 0; // checkpoint slots, charged against size=
  uint64_t free_bytes = 0;
  uint64_t journal_bytes = 0;
  uint64_t superblock_bytes = 0;
  uint64_t data_held_bytes = 0; // the arena's frames and the file objects' pages
  uint64_t object_bytes = 0;    // of those, the file objects' (outside the node file)
  uint64_t metadata_held_bytes = 0;
  uint64_t held_bytes = 0;
  uint64_t inodes_used = 0;
};

struct CheckReport {
  bool clean = false;
  std::vector<std::string> problems; // one line each, naming what and where
  NodeSummary summary;
};

// A node's bytes as pread() sees them: an open node file, or a /dev/pkram fd attached to the
// node (holes read as zeros). Not owned: the caller keeps `fd` open meanwhile.
struct NodeBytes {
  int fd = -1;
  uint64_t bytes = 0; // the node's size: file size, or span_frames * 2 MiB
  std::string label;  // what to call it in messages: "node file", "pkram node"
  // An shm node's file objects (ObjectStore::path_for), read only; empty: none.
  std::string objects_path = {};
};

// A node restored offline, with the same checks and restore code as a mount: its header, and
// its tree (checkpoint + journal) in a throwaway Filesystem over anonymous memory. The tree's
// block numbers are the node's: a block's data is at byte block * 4096 of the node.
struct OfflineNode {
  NodeHeader header;
  std::unique_ptr<FrameSource> frames;
  // The node's file objects, opened read-only (null: none there, or not this node's).
  std::unique_ptr<ObjectStore> objects;
  std::string objects_path;
  std::unique_ptr<Filesystem> fs;
  uint64_t journal_records = 0; // replayed after the checkpoint
};
// EINVAL with `why` set when it is not a valid node; EIO when a read comes up short.
Result<OfflineNode> load_node(const NodeBytes &node, std::string &why);

// The one line that says a node's files lack their data: `missing` (Filesystem::
// missing_objects, not empty) were to be at `objects_path`; `store_problem` says what is wrong
// with the store there, empty when it is the node's and merely lacks them. For a mount's
// refusal, pkramfs-ctl check and export alike.
std::string missing_objects_problem(const std::vector<uint64_t> &missing,
                                    const std::string &objects_path,
                                    const std::string &store_problem);

// EINVAL with `why` set when it is not a valid node; EIO when a read comes up short.
Result<NodeSummary> inspect_node(const NodeBytes &node, std::string &why);
// Verifies every CRC and the tree: link counts, parent/child agreement, extents inside the
// arena, no block owned twice, every file object present. A node that cannot be restored is a
// report with that problem.
Result<CheckReport> check_node(const NodeBytes &node);

// The same for the node file at `path` (opened read-only): ENOENT if there is no such file.
Result<NodeSummary> inspect_node(const std::string &path, std::string &why);
Result<CheckReport> check_node(const std::string &path);

} // namespace pkramfs
