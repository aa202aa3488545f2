// The arena's units: 2 MiB frames, each split into 4 KiB blocks.
#pragma once

#include <cstdint>

namespace pkramfs {

inline constexpr uint64_t kFrameSize = 2ull << 20;
inline constexpr uint64_t kBlockSize = 4096;
inline constexpr uint64_t kBlockShift = 12;
inline constexpr uint64_t kBlocksPerFrame = kFrameSize / kBlockSize;

// A run of consecutive arena blocks.
struct BlockRun {
  uint64_t start = 0;
  uint64_t count = 0;
};

} // namespace pkramfs
