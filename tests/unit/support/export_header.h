// An export image header as this build writes it, for the tests that craft images by hand.
#pragma once

#include "export/node_export.h"
#include "node/node.h"
#include "util/geometry.h"

#include <cstdint>

namespace pkramfs::test {

// A valid, sealed header of an image with `checkpoint_bytes` of checkpoint and `nr_extents`
// extent records holding `data_blocks` blocks (size= 1000 blocks, no inode limit).
inline pkramfs_export_header export_header(uint64_t checkpoint_bytes, uint64_t nr_extents,
                                           uint64_t data_blocks) {
  pkramfs_export_header h{};
  h.magic = PKRAMFS_EXPORT_MAGIC;
  h.version = PKRAMFS_EXPORT_VERSION;
  h.header_bytes = sizeof h;
  h.node_format_version = PKRAMFS_FORMAT_VERSION;
  h.block_size = kBlockSize;
  h.frame_size = kFrameSize;
  h.data_first_frame = 1 + Node::kJournalFrames;
  h.limit_blocks = 1000;
  h.max_inodes = UINT64_MAX;
  h.checkpoint_bytes = checkpoint_bytes;
  h.nr_extents = nr_extents;
  h.data_blocks = data_blocks;
  h.image_bytes = export_image_bytes(checkpoint_bytes, nr_extents, data_blocks);
  seal(h);
  return h;
}

} // namespace pkramfs::test
