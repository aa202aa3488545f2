// Performance levers whose worth depends on the machine, with the defaults that measured best
// (docs/performance.md). PKRAMFS_TUNE="key=value,..." overrides them for benchmarks; it is not
// an interface for operators.
#pragma once
#include <string>

namespace pkramfs {

struct Tuning {
  // The mount's readahead window (bdi read_ahead_kb) once INIT is done: the kernel caps it at
  // the 128 KiB it offered in INIT, so without this a sequential read reaches the daemon as
  // 128 KiB requests however large max_pages is. 0 leaves the kernel's value.
  unsigned readahead_kb = 1024;
  // The mount's dirty page cap once INIT is done: bdi max_ratio, percent of the system's dirty
  // threshold; FUSE gives every mount 1 (bdi.h), which keeps a shared mapping's pages under
  // constant writeback, and each cleaned page faults again on its next write. 100: the mount may
  // use the whole threshold, like a disk filesystem (shm-cache with every page touched 0.01 ->
  // 0.95 of tmpfs; 50: 0.79). 0 leaves the kernel's 1.
  unsigned bdi_max_ratio = 100;
  // Whether that cap holds while the system is below its own dirty limits (bdi strict_limit,
  // Linux 6.2+; FUSE sets it). 1 leaves the kernel's setting, 0 clears it: measured worse and
  // noisier than keeping it (0.58-0.60 against 0.95), so it stays.
  bool bdi_strict_limit = true;
  // FUSE_HANDLE_KILLPRIV_V2 in the INIT reply (device_io.h): one round trip per write(2).
  bool killpriv_v2 = true;
  // Microseconds a worker polls /dev/fuse before it sleeps (device_io.cpp: read_spinning):
  // 4 KiB random I/O and creates +30..80% at 20..100 us; 0 turns it off.
  unsigned spin_us = 50;
  // Worker threads of the session loop; 0: half the CPUs, 1 to 8 (main.cpp: worker_threads).
  unsigned threads = 0;
  // A mount without a node (--backend=anon) keeps each regular file's data in a file object
  // of a private tmpfs and opens it FUSE passthrough (backing_files.h, Linux 6.9+): reads,
  // writes and mappings without the daemon, one copy of the data (docs/performance.md).
  bool passthrough = true;
};

// The defaults with PKRAMFS_TUNE applied; an unknown key or bad value is reported in `error`.
Tuning tuning_from_environment(std::string &error);

} // namespace pkramfs
