// The parts of a caller's credentials that FUSE requests do not carry, read from
// /proc/<tid>/status of the calling thread.
#pragma once

#include "filesystem.h"

#include <sys/types.h>

namespace pkramfs {

Credentials read_credentials(pid_t tid);

} // namespace pkramfs
