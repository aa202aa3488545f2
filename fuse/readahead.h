// A FUSE mount's readahead window. The kernel offers in INIT the window its bdi has when INIT is
// sent (128 KiB, during mount(2)), and the reply does not raise it (measured: with the bdi raised
// before INIT and 1 MiB answered, read_ahead_kb was 128 after it); so a sequential read reaches
// the daemon as 128 KiB requests however large max_pages is. Raising the bdi's read_ahead_kb once
// the INIT reply is in (device_io.h: after_init) gives 1 MiB requests, 8x fewer round trips.
#pragma once
#include <string>

namespace pkramfs {

// Sets read_ahead_kb of the FUSE mount at `mountpoint` (found in /proc/self/mountinfo, so that
// no request goes to the mount from inside a request handler). 0 or an errno.
int set_mount_readahead(const std::string &mountpoint, unsigned kib);

} // namespace pkramfs
