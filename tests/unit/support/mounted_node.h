// A node mounted without FUSE, wired as pkramfs-fuse wires it (Node + Arena + journaled
// Filesystem, restored when the node holds a tree). The read sink Collect is in sinks.h.
#pragma once
#include "fs/filesystem.h"
#include "util/geometry.h"
#include "node/node.h"
#include "storage/object_store.h"
#include "support/sinks.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>

namespace pkramfs::test {

constexpr uint64_t kMiB = 1 << 20;

struct Mounted {
  std::unique_ptr<Node> node;
  std::unique_ptr<Filesystem> fs;

  // max_inodes 0: the node's default (no limit). `objects`: the node's file objects, given
  // before the restore and used for new regular files after it, as pkramfs-fuse does after a
  // passthrough INIT; orphans are swept.
  explicit Mounted(const std::string &path, uint64_t limit_bytes = 64 * kMiB,
                   uint64_t max_inodes = 0, const ObjectStore *objects = nullptr) {
    std::string why;
    NodeParams params;
    params.limit_blocks = limit_bytes / kBlockSize;
    if (max_inodes)
      params.max_inodes = max_inodes;
    auto opened = Node::open_shm(path, params, why);
    INFO(why);
    REQUIRE(opened.ok());
    node = std::move(opened).value();
    fs = std::make_unique<Filesystem>(
        std::make_unique<Arena>(node->frames(), node->data_first_frame(), node->limit_blocks()),
        FsConfig{node->max_inodes()});
    fs->use_objects(objects);
    if (node->fresh()) {
      REQUIRE(node->checkpoint(*fs).ok());
    } else {
      auto restored = node->restore(*fs, why);
      INFO(why);
      REQUIRE(restored.ok());
    }
    fs->sweep_orphan_objects();
    fs->make_objects(objects != nullptr);
    fs->attach_journal(&node->journal(), [this] { (void)node->checkpoint(*fs); });
  }
};

} // namespace pkramfs::test
