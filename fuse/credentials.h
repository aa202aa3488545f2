// The parts of a caller's credentials that FUSE requests do not carry, read from
// /proc/<tid>/status of the calling thread.
#pragma once

#include "fs/filesystem.h"

#include <sys/types.h>

namespace pkramfs {

// The caller's supplementary groups, and its capabilities as the kernel's capable() counts
// them: only in the initial user namespace. A user namespace's root shows every capability in
// CapEff, valid in its namespace only; tmpfs and the VFS check CAP_FSETID and CAP_SYS_ADMIN
// with capable() for the rules the daemon copies (should_remove_suid, simple_xattr_list).
// tid 0 (a caller outside the connection's pid namespace, which the daemon cannot look up) and
// a thread that is gone have no groups and no capabilities.
Credentials read_credentials(pid_t tid);

} // namespace pkramfs
