// The session's reads and writes of /dev/fuse (fuse_session_custom_io), which let the daemon
// amend the INIT exchange with what libfuse 3.14 cannot negotiate and act right after it:
// - FUSE_HANDLE_KILLPRIV_V2 (libfuse 3.16+ has FUSE_CAP_HANDLE_KILLPRIV_V2). Without it the
//   kernel asks for the security.capability xattr before every write(2), a second round trip
//   per write (fio 4 KiB random writes: 1000 WRITE + 1000 GETXATTR). With it the superblock is
//   SB_NOSEC and the daemon clears suid/sgid itself on write, truncate and chown, which
//   Filesystem does for every caller already (drop_privileges_locked, kill_on_chown_locked).
// - after_init: runs once the kernel has processed the INIT reply, which sets the bdi's
//   readahead window to the smaller of its own and the reply's (see readahead.h).
#pragma once
#include <functional>

struct fuse_session;

namespace pkramfs {

struct InitAmendments {
  bool handle_killpriv_v2 = false;
  std::function<void()> after_init;
  unsigned spin_us = 0; // see read_spinning
};

// Installs the hooks on a session that fuse_session_mount() has mounted; 0 or a negative errno.
// One session per process.
int install_device_io(fuse_session *se, InitAmendments amendments);

} // namespace pkramfs
