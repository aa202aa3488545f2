// syncfs() of the daemon's own mount, from a child process.
//
// A daemon thread inside a request on its own mount waits, once a worker has read that request,
// in an uninterruptible sleep for the answer. If the daemon is killed meanwhile, the worker is
// gone, that thread never wakes, the process never finishes dying, its /dev/fuse stays open and
// the mount hangs until someone aborts the connection. A child is another process: when the
// daemon dies, /dev/fuse closes, the kernel aborts the connection and the child's syncfs ends
// (the child closes every inherited descriptor first, /dev/fuse among them).
#pragma once
#include <string>

namespace pkramfs {

// 0, or the errno of open/syncfs/fork.
int sync_mount(const std::string &mountpoint);

} // namespace pkramfs
