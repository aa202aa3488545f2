// mount -o remount of a pkramfs mount. mount(8) runs mount.fuse3 with "NAME MOUNTPOINT -o
// OPTIONS,remount,...", which runs "pkramfs-fuse NAME MOUNTPOINT -o ...": this process is not
// the mount's daemon. Kernel FUSE changes only the read-only flag and the per-mount flags on a
// remount (fuse_reconfigure; the options of the first mount stay), so it does the mount(2)
// itself and, where the change asks for it, tells the mount's daemon over its control socket:
//   remount,ro            read-only: every mutation fails with EROFS (the VFS), as on tmpfs
//   remount,ro,preserve   and preserve the node, as pkramfs-ctl preserve does (the seed's
//                         interface for "this tree must survive the coming kexec")
//   remount,rw            writable again; a preserved node is unpreserved first
#pragma once

#include "options.h"

#include <string>

namespace pkramfs {

// REQUIRES: opt.remount. False with a one-line message (problem and fix) in `error`.
bool remount(const Options &opt, std::string &error);

} // namespace pkramfs
