// What the user asked pkramfs-ctl for: the parsed command line every command reads.
#pragma once

#include <optional>
#include <string>

namespace pkramfs::ctl {

// Exit codes: 0 done, 1 failed (for check: problems found), 2 usage error (for check: any
// error, since 1 means problems).
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// Where nodes live: pkram.ko nodes (/dev/pkram) or files in the shm dir. auto: the rule
// pkramfs-fuse follows too (backend/node/locate.h).
enum class Backend { kAuto, kKmod, kShm };

struct Settings {
  Backend backend = Backend::kAuto;
  std::string shm_dir; // empty: the defaults of node_dirs.h
  std::string run_dir = "/run/pkramfs";
  bool json = false;
  std::optional<double> timeout_s;
  std::string command;
  std::string name;
  std::string file;    // export, import: the image
  bool verify = false; // export --verify
  bool quiet = false;  // export, import --quiet
  bool force = false;  // import --force
  std::string exec_path; // upgrade --exec
  bool debug = false;
};

} // namespace pkramfs::ctl
