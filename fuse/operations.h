// The table of FUSE low-level handlers; the session's userdata is the Filesystem.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

namespace pkramfs {

fuse_lowlevel_ops make_operations();

} // namespace pkramfs
