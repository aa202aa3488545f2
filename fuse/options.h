// The daemon's command line: long options, their -o key=value twins, and mount(8)'s
// "NAME MOUNTPOINT -o opts" form.
#pragma once

#include "fs/filesystem.h" // AtimePolicy
#include "storage/numa_placement.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pkramfs {

enum class BackendKind { kAuto, kKmod, kShm, kAnon };

// How the kernel caches file data (docs/performance.md): auto = page cache, writes go through to
// the daemon at once; writeback = the kernel's writeback cache; direct = no page cache
// (FOPEN_DIRECT_IO; shared writable mmap is then refused by the kernel).
enum class CacheMode { kAuto, kDirect, kWriteback };

struct Options {
  std::string node; // --pkram=NAME or the first positional argument
  BackendKind backend = BackendKind::kAuto;
  uint64_t size_bytes = 0; // arena size limit, rounded up to 4 KiB blocks
  bool size_given = false; // else a new kmod node takes the region's free space
  uint64_t nr_inodes = 0;  // 0: unlimited
  CacheMode cache = CacheMode::kAuto;
  NumaRequest numa; // --numa: placement of the frames (and with auto, of the threads)
  uint32_t mode = 01777;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string shm_dir; // empty: /dev/shm/pkramfs or a hugetlbfs mount (node_dirs.h)
  std::string run_dir = "/run/pkramfs";
  bool foreground = false;
  bool debug = false;
  std::vector<std::string> fuse_options; // passed on to the kernel mount
  // noatime, relatime, strictatime, nodiratime, ... in order: libfuse 3.14 knows few of them,
  // so the daemon sets them on the mount itself and follows them (AtimePolicy).
  std::vector<std::string> atime_options;
  AtimePolicy atime;
  std::vector<std::string> debug_fail;   // --debug-fail=POINT:N (fault injection builds only)
  std::string mountpoint;
  // mount -o remount[,ro|rw][,preserve] MOUNTPOINT, as mount.fuse3 hands it over (remount.h).
  bool remount = false;
  bool preserve = false;                 // with remount: also preserve the node (ro)
  std::vector<std::string> given_settings; // the node settings named (size, mode, ...)
  // The holder starts a process that takes a live mount over with --takeover=FUSE,STATE,CHANNEL
  // (holder.h); not a user option.
  std::string takeover;
};

// Parses argv. On failure returns false with a one-line message (problem and fix) in `error`;
// `--help` returns false with an empty error after printing the help text.
bool parse_options(int argc, char **argv, Options &out, std::string &error);

} // namespace pkramfs
