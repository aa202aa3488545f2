// The table of FUSE low-level handlers; the session's userdata is the Filesystem.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "options.h"

namespace pkramfs {

// `cache` decides how the kernel caches file data; set once, before the session starts.
fuse_lowlevel_ops make_operations(CacheMode cache = CacheMode::kAuto);

} // namespace pkramfs
