// The table of FUSE low-level handlers; the session's userdata is the Filesystem.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "options.h"

namespace pkramfs {

// `cache` decides how the kernel caches file data; `handle_generation` is the generation every
// entry reply carries (file handles: Node::handle_generation). Set once, before the session
// starts.
fuse_lowlevel_ops make_operations(CacheMode cache = CacheMode::kAuto,
                                  uint32_t handle_generation = 1);

} // namespace pkramfs
