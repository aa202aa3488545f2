// A Filesystem over an anonymous arena, with no node and no journal: the model driven directly,
// as the tests of its rules want it.
#pragma once
#include "fs/filesystem.h"
#include "storage/arena.h"
#include "storage/frame_source.h"
#include "util/geometry.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>

namespace pkramfs::test {

// A filesystem over an anonymous arena of `bytes` (whole blocks) and an inode limit.
struct AnonFs {
  explicit AnonFs(uint64_t bytes = 16ull << 20, uint64_t max_inodes = UINT64_MAX,
                  FsConfig config = {}) {
    const uint64_t blocks = bytes / kBlockSize;
    const uint64_t frames = (blocks + kBlocksPerFrame - 1) / kBlocksPerFrame;
    auto made = make_anon_frame_source(frames);
    REQUIRE(made.ok());
    source = std::move(made).value();
    config.max_inodes = max_inodes;
    fs = std::make_unique<Filesystem>(std::make_unique<Arena>(*source, 0, blocks), config);
  }
  Filesystem &operator*() { return *fs; }
  Filesystem *operator->() { return fs.get(); }
  std::unique_ptr<FrameSource> source; // outlives the arena inside fs
  std::unique_ptr<Filesystem> fs;
};

} // namespace pkramfs::test
