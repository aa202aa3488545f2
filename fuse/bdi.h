// The FUSE mount's backing device, /sys/class/bdi/MAJOR:MINOR, which the daemon tunes once the
// kernel has processed the INIT reply (device_io.h: after_init). Only the bdi of this daemon's
// own mount is written; it goes away with the mount.
//
// Readahead window. The kernel offers in INIT the window its bdi has when INIT is sent
// (128 KiB, during mount(2)), and the reply does not raise it (measured: with the bdi raised
// before INIT and 1 MiB answered, read_ahead_kb was 128 after it); so a sequential read reaches
// the daemon as 128 KiB requests however large max_pages is. Raising read_ahead_kb once the INIT
// reply is in gives 1 MiB requests, 8x fewer round trips.
//
// Writeback limits. fuse_bdi_init (fs/fuse/inode.c) gives every FUSE bdi BDI_CAP_STRICTLIMIT
// and bdi_set_max_ratio(sb->s_bdi, 1): the mount may hold at most 1% of the system's dirty
// threshold (vm.dirty_ratio of the dirtyable memory: 47 MB on a 23.5 GiB machine) in dirty
// pages, and with the strict limit that cap applies even while the system is far below its own
// limits (wb_dirty_limits/balance_dirty_pages in mm/page-writeback.c), so a process dirtying a
// shared mapping is throttled until the daemon has taken the pages. The cap exists because a
// FUSE server "cannot be trusted to play fair" (Documentation/ABI/testing/sysfs-class-bdi);
// this daemon keeps the data in memory and answers writeback at memory speed. Attributes:
// max_ratio and min_ratio exist on every supported kernel (6.1); strict_limit, max_bytes,
// min_bytes and the *_ratio_fine ones came with Linux 6.2. max_bytes is max_ratio expressed in
// bytes of the current threshold (bdi_set_max_bytes converts it), so only max_ratio is written.
#pragma once
#include <string>

namespace pkramfs {

struct BdiSettings {
  unsigned readahead_kb = 0;      // read_ahead_kb; 0 leaves it
  unsigned max_ratio = 0;         // max_ratio, 1..100 percent; 0 leaves the kernel's 1
  bool clear_strict_limit = false; // strict_limit=0; false leaves the kernel's 1
};

// Writes the settings into the bdi of the FUSE mount at `mountpoint` (found in
// /proc/self/mountinfo, so that no request goes to the mount from inside a request handler).
// Logs at debug what it set and what it could not (a missing or unwritable attribute, e.g. on
// an older kernel or without root in the initial user namespace): never a failure.
void tune_mount_bdi(const std::string &mountpoint, const BdiSettings &settings);

} // namespace pkramfs
