// A FUSE mount's readahead window. The kernel offers in INIT the window its bdi has when INIT is
// sent (128 KiB, during mount(2)) and keeps the smaller of that and the daemon's answer, so a
// sequential read reaches the daemon as 128 KiB requests however large max_pages is. Raising
// the bdi's read_ahead_kb between mount(2) and the INIT answer, and answering the same window,
// gives larger requests (fewer round trips).
#pragma once
#include <string>

namespace pkramfs {

// Sets read_ahead_kb of the FUSE mount at `mountpoint` (found in /proc/self/mountinfo, so that
// no request goes to the mount, which cannot answer yet). 0 or an errno.
int set_mount_readahead(const std::string &mountpoint, unsigned kib);

} // namespace pkramfs
