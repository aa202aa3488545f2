#include "mount_table.h"

#include <fstream>
#include <sstream>
#include <sys/mount.h>

namespace pkramfs {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(const std::string &s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string digits = s.substr(i + 1, 3);
      if (digits.find_first_not_of("01234567") == std::string::npos) {
        out += static_cast<char>(std::stoi(digits, nullptr, 8));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

} // namespace

std::optional<MountEntry> last_mount_on(const std::string &mountpoint) {
  // "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS"
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::optional<MountEntry> found;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (!(fields >> id >> parent >> dev >> root >> point) || unescape_octal(point) != mountpoint)
      continue;
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos)
      continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string options;
    fields >> options;
    MountEntry e{dev, unescape_octal(point), "", "", options};
    tail >> e.fstype >> e.source;
    e.source = unescape_octal(e.source);
    found = std::move(e);
  }
  return found;
}

unsigned long apply_mount_flag_options(unsigned long flags, const std::vector<std::string> &options) {
  // Each option sets or clears one bit, in order, as libmount builds the flags of mount(2);
  // the kernel resolves the atime bits (atime_policy_of).
  const std::pair<const char *, std::pair<unsigned long, bool>> toggles[] = {
      {"ro", {MS_RDONLY, true}},             {"rw", {MS_RDONLY, false}},
      {"nosuid", {MS_NOSUID, true}},         {"suid", {MS_NOSUID, false}},
      {"nodev", {MS_NODEV, true}},           {"dev", {MS_NODEV, false}},
      {"noexec", {MS_NOEXEC, true}},         {"exec", {MS_NOEXEC, false}},
      {"sync", {MS_SYNCHRONOUS, true}},      {"async", {MS_SYNCHRONOUS, false}},
      {"noatime", {MS_NOATIME, true}},       {"atime", {MS_NOATIME, false}},
      {"relatime", {MS_RELATIME, true}},     {"norelatime", {MS_RELATIME, false}},
      {"strictatime", {MS_STRICTATIME, true}}, {"nostrictatime", {MS_STRICTATIME, false}},
      {"nodiratime", {MS_NODIRATIME, true}}, {"diratime", {MS_NODIRATIME, false}},
      {"lazytime", {MS_LAZYTIME, true}},     {"nolazytime", {MS_LAZYTIME, false}}};
  for (const std::string &o : options)
    for (auto &[name, change] : toggles)
      if (o == name)
        flags = change.second ? flags | change.first : flags & ~change.first;
  return flags;
}

AtimePolicy atime_policy_of(unsigned long flags) {
  // path_mount: relatime unless MS_NOATIME; MS_STRICTATIME clears both.
  AtimePolicy p;
  if (flags & MS_STRICTATIME)
    p.mode = AtimePolicy::Mode::kStrictatime;
  else if (flags & MS_NOATIME)
    p.mode = AtimePolicy::Mode::kNoatime;
  p.nodiratime = flags & MS_NODIRATIME;
  return p;
}

unsigned long mount_flags_of(const MountEntry &mount) {
  std::vector<std::string> options;
  std::istringstream in(mount.options);
  for (std::string o; std::getline(in, o, ',');)
    options.push_back(o);
  // No atime word (strictatime) gives no atime bit: a remount passing none keeps the mount's
  // atime flags (path_mount), as mount(8) does it from the same mountinfo.
  return apply_mount_flag_options(0, options);
}

} // namespace pkramfs
