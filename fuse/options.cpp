#include "options.h"

#include "util/fault.h"

#include <algorithm>

#include "mount_table.h"
#include "util/parse.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <unistd.h>

namespace pkramfs {
namespace {

// Mount options the kernel or libfuse understand; passed on unchanged.
const std::set<std::string> kFuseFlags = {
    "allow_other", "allow_root", "auto_unmount", "default_permissions", "ro",  "rw",    "suid",
    "nosuid",      "dev",        "nodev",        "exec",                "noexec", "sync", "async",
    "dirsync"};
// The atime family: kept from libfuse (it refuses most), set on the mount by the daemon.
const std::set<std::string> kAtimeFlags = {"atime",         "noatime",    "relatime",
                                           "norelatime",    "strictatime", "nostrictatime",
                                           "diratime",      "nodiratime",  "lazytime",
                                           "nolazytime"};

const std::set<std::string> kFuseKeys = {"fsname", "subtype", "max_read"};
// Options that mean something to mount(8) or fstab only.
const std::set<std::string> kIgnored = {"defaults", "auto",  "noauto", "nofail", "_netdev",
                                        "user",     "users", "nouser", "owner",  "group"};
// Our own settings, as -o key=value; the long option of the same meaning wins.
const std::set<std::string> kOwnKeys = {"pkram", "backend", "size",    "nr_inodes", "mode", "uid",
                                        "gid",   "shm_dir", "run_dir", "cache",     "numa"};
// What mount(8) hands a helper on a remount besides the caller's options: the mount's options
// as /proc/self/mountinfo shows them, kernel FUSE's own among them.
const std::set<std::string> kRemountOnlyKeys = {"user_id", "group_id"};

uint64_t total_ram() {
  return static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
         static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::vector<std::string> split_commas(const std::string &s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > start)
      out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool parse_u32(const std::string &text, int base, uint32_t &out) {
  try {
    size_t used = 0;
    const unsigned long v = std::stoul(text, &used, base);
    if (used != text.size() || v > UINT32_MAX)
      return false;
    out = static_cast<uint32_t>(v);
    return true;
  } catch (...) {
    return false;
  }
}

// Applies one of our settings (from a long option or -o) to `out`.
bool apply_setting(const std::string &key, const std::string &value, Options &out,
                   std::string &error) {
  if (key == "pkram") {
    if (!valid_node_name(value)) {
      error = "bad node name '" + value +
              "'; use 1-127 characters from A-Z a-z 0-9 . _ - not starting with '.'";
      return false;
    }
    out.node = value;
  } else if (key == "backend") {
    if (value == "auto")
      out.backend = BackendKind::kAuto;
    else if (value == "kmod")
      out.backend = BackendKind::kKmod;
    else if (value == "shm")
      out.backend = BackendKind::kShm;
    else if (value == "anon")
      out.backend = BackendKind::kAnon;
    else {
      error = "unknown backend '" + value + "'; use auto, kmod, shm or anon";
      return false;
    }
  } else if (key == "size") {
    auto size = parse_size(value, total_ram());
    if (!size || *size == 0) {
      error = "bad size '" + value +
              "'; give bytes with an optional k/m/g/t suffix (512m, 4g) or a percentage of RAM "
              "(10%), greater than zero";
      return false;
    }
    out.size_bytes = *size;
    out.size_given = true;
  } else if (key == "nr_inodes") {
    auto n = parse_count(value);
    if (!n) {
      error = "bad nr_inodes '" + value +
              "'; give a count with an optional k/m/g suffix "
              "(100k), or 0 for no limit";
      return false;
    }
    out.nr_inodes = *n;
  } else if (key == "mode") {
    if (!parse_u32(value, 8, out.mode) || out.mode > 07777) {
      error = "bad mode '" + value + "'; give octal permission bits such as 1777 or 0755";
      return false;
    }
  } else if (key == "uid" || key == "gid") {
    if (!parse_u32(value, 10, key == "uid" ? out.uid : out.gid)) {
      error = "bad " + key + " '" + value + "'; give a numeric id such as 1000";
      return false;
    }
  } else if (key == "shm_dir") {
    out.shm_dir = value;
  } else if (key == "run_dir") {
    out.run_dir = value;
  } else if (key == "numa") {
    if (!parse_numa(value, out.numa)) {
      error = "bad --numa value '" + value +
              "'; use auto, interleave or a NUMA node number such as 0 (see numactl --hardware)";
      return false;
    }
  } else if (key == "cache") {
    if (value == "auto")
      out.cache = CacheMode::kAuto;
    else if (value == "direct")
      out.cache = CacheMode::kDirect;
    else if (value == "writeback")
      out.cache = CacheMode::kWriteback;
    else {
      error = "unknown cache mode '" + value + "'; use auto, direct or writeback";
      return false;
    }
  }
  return true;
}

bool apply_mount_options(const std::vector<std::string> &raw,
                         std::map<std::string, std::string> &settings, Options &out,
                         std::string &error) {
  std::string remount_only;
  for (const std::string &group : raw) {
    for (const std::string &opt : split_commas(group)) {
      const size_t eq = opt.find('=');
      const std::string key = opt.substr(0, eq);
      const std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
      if (opt == "remount") {
        out.remount = true;
      } else if (opt == "preserve") {
        out.preserve = true;
      } else if (eq != std::string::npos && kRemountOnlyKeys.contains(key)) {
        remount_only = opt;
      } else if (kOwnKeys.contains(key)) {
        if (eq == std::string::npos) {
          error = "mount option '" + key + "' needs a value; write -o " + key + "=VALUE";
          return false;
        }
        settings.try_emplace(key, value);
      } else if (kIgnored.contains(key) || key.starts_with("x-") || key == "comment") {
        continue;
      } else if (eq == std::string::npos && kAtimeFlags.contains(key)) {
        out.atime_options.push_back(opt);
      } else if ((eq == std::string::npos && kFuseFlags.contains(key)) ||
                 (eq != std::string::npos && kFuseKeys.contains(key))) {
        out.fuse_options.push_back(opt);
      } else {
        error = "unknown mount option '" + opt + "'; see pkramfs-fuse --help for the options";
        return false;
      }
    }
  }
  out.atime = atime_policy_of(apply_mount_flag_options(0, out.atime_options));
  if (!out.remount && !remount_only.empty()) {
    error = "unknown mount option '" + remount_only + "'; see pkramfs-fuse --help for the options";
    return false;
  }
  if (!out.remount && out.preserve) {
    error = "mount option 'preserve' goes with remount: mount -o remount,ro,preserve MOUNTPOINT";
    return false;
  }
  return true;
}

} // namespace

bool parse_options(int argc, char **argv, Options &out, std::string &error) {
  CLI::App app{"pkramfs-fuse: a memory filesystem with tmpfs semantics whose contents survive "
               "daemon restarts and kexec",
               "pkramfs-fuse"};
  std::map<std::string, std::optional<std::string>> longs;
  auto add = [&](const char *flag, const char *key, const char *help) {
    app.add_option_function<std::string>(
        flag, [&longs, key](const std::string &v) { longs[key] = v; }, help);
  };
  add("--pkram", "pkram", "node NAME to mount (restored if it holds a tree)");
  add("--backend", "backend",
      "frame source: auto, kmod, shm or anon (default auto: kmod when /dev/pkram exists and a "
      "node is named, else shm with a name, else anon)");
  add("--size", "size", "size limit: bytes with k/m/g/t suffix or N% of RAM (default 50%)");
  add("--nr-inodes", "nr_inodes",
      "inode limit, k/m/g suffix allowed, 0 = none (default: "
      "half the RAM pages, like tmpfs)");
  add("--mode", "mode", "octal mode of the root directory (default 1777)");
  add("--uid", "uid", "owner of the root directory (default 0)");
  add("--gid", "gid", "group of the root directory (default 0)");
  add("--shm-dir", "shm_dir",
      "where shm nodes live (default /dev/shm/pkramfs, or a hugetlbfs "
      "mount with free 2 MiB pages for the whole node)");
  add("--run-dir", "run_dir", "where the daemon keeps its lock (default /run/pkramfs)");
  add("--cache", "cache",
      "file data caching: auto (page cache, writes go to the daemon at once; default), "
      "writeback (kernel writeback cache) or direct (no page cache; no shared mmap)");
  add("--numa", "numa",
      "NUMA placement of the frames: auto (the node of the daemon's CPUs, or of most of "
      "pkram.ko's region; threads pinned to its CPUs), NODE (only that node) or interleave "
      "(default: the kernel's)");
  app.add_flag("-f,--foreground", out.foreground, "stay in the foreground");
  app.add_flag("--debug", out.debug, "verbose logging");
  std::vector<std::string> mount_options;
  app.add_option("-o", mount_options,
                 "mount options, comma separated: the settings above as key=value "
                 "(size=, nr_inodes=, mode=, uid=, gid=, pkram=, backend=, shm_dir=, run_dir=, "
                 "cache=, numa=), FUSE/kernel options (allow_other, ro, nosuid, ...), and "
                 "remount with ro or rw and preserve: mount -o remount,ro,preserve MOUNTPOINT "
                 "makes a mount read-only and preserves its node, remount,rw undoes both")
      ->allow_extra_args(false);
  std::vector<std::string> positional;
  app.add_option("args", positional, "[NAME] MOUNTPOINT");
  app.add_option("--takeover", out.takeover, "the holder's own use")
      ->allow_extra_args(false)
      ->group(""); // hidden: the holder passes it (holder.h)
#ifdef PKRAMFS_FAULT_INJECTION
  // Tests only (docs/security.md, "Fault injection"); absent from builds without the switch,
  // and left out of --help and the man page.
  app.add_option("--debug-fail", out.debug_fail,
                 "fault injection for tests: POINT:N fails or kills at the Nth pass through POINT "
                 "after the mount (repeatable; 'list' prints the points)")
      ->allow_extra_args(false)
      ->group(""); // hidden from --help: not a user option (docs/security.md)
#endif

  // CLI11 would take the next argument as the value of "--size=": refuse it here instead.
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--") && arg.ends_with("=")) {
      error = "option " + std::string(arg.substr(0, arg.size() - 1)) + " needs a value; write " +
              std::string(arg) + "VALUE";
      return false;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &) {
    std::cout << app.help();
    error.clear();
    return false;
  } catch (const CLI::ParseError &e) {
    error = std::string(e.what()) + "; see pkramfs-fuse --help";
    return false;
  }

#ifdef PKRAMFS_FAULT_INJECTION
  if (std::find(out.debug_fail.begin(), out.debug_fail.end(), "list") != out.debug_fail.end()) {
    std::cout << fault::describe_points();
    error.clear();
    return false;
  }
#endif
  if (positional.empty()) {
    error = "no mount point given; usage: pkramfs-fuse [options] [NAME] MOUNTPOINT";
    return false;
  }
  if (positional.size() > 2) {
    error = "too many arguments ('" + positional[2] +
            "'); usage: pkramfs-fuse [options] [NAME] MOUNTPOINT";
    return false;
  }
  out.mountpoint = positional.back();

  // Precedence: long options, then -o, then the positional node name.
  std::map<std::string, std::string> settings;
  for (auto &[key, value] : longs)
    settings.emplace(key, *value);
  if (!apply_mount_options(mount_options, settings, out, error))
    return false;
  if (positional.size() == 2)
    settings.try_emplace("pkram", positional[0]);
  for (auto &[key, value] : settings)
    if (key != "pkram" && key != "run_dir")
      out.given_settings.push_back(key);

  // tmpfs's defaults: half the RAM pages for both.
  out.size_bytes = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) / 2 *
                   static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  out.nr_inodes = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) / 2;
  for (auto &[key, value] : settings)
    if (!apply_setting(key, value, out, error))
      return false;
  return true;
}

} // namespace pkramfs
