// The table of FUSE low-level handlers; the session's userdata is a ServeContext.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "options.h"

namespace pkramfs {

class BackingFiles;
class Filesystem;
class SessionState;

// What the handlers serve and how, one per mount: the session's userdata (no globals).
struct ServeContext {
  Filesystem &fs;
  // How the kernel caches file data.
  CacheMode cache = CacheMode::kAuto;
  // The generation every entry reply carries (file handles: Node::handle_generation).
  uint32_t handle_generation = 1;
  // The holder's session state (holder.h), where open files are kept for a process that takes
  // the mount over; null without a holder (every open file's fh is 0 then).
  SessionState *session = nullptr;
  // Opens of files with an object go passthrough where they may (backing_files.h); null: the
  // tree has no objects.
  BackingFiles *backing = nullptr;
};

// The handlers for `cache` (the table differs in writeback mode).
// REQUIRES: the session is made with a ServeContext that outlives it as its userdata, with the
// same `cache`.
fuse_lowlevel_ops make_operations(CacheMode cache);

} // namespace pkramfs
