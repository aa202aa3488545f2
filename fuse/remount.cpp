#include "remount.h"

#include "mount_table.h"

#include <pkramfs/control_protocol.h>

#include "control_client.h"

#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

namespace pkramfs {
namespace {

// The per-mount and superblock flags a remount keeps unless an option changes them: mount(2)
// with MS_REMOUNT sets the mount's flags to exactly the ones passed (do_reconfigure_mnt).
unsigned long current_flags(const struct statvfs &vfs) {
  const std::pair<unsigned long, unsigned long> map[] = {
      {ST_RDONLY, MS_RDONLY},       {ST_NOSUID, MS_NOSUID},     {ST_NODEV, MS_NODEV},
      {ST_NOEXEC, MS_NOEXEC},       {ST_SYNCHRONOUS, MS_SYNCHRONOUS},
      {ST_NOATIME, MS_NOATIME},     {ST_NODIRATIME, MS_NODIRATIME},
      {ST_RELATIME, MS_RELATIME}};
  unsigned long flags = 0;
  for (auto [st, ms] : map)
    if (vfs.f_flag & st)
      flags |= ms;
  if (!(flags & (MS_NOATIME | MS_RELATIME)))
    flags |= MS_STRICTATIME;
  return flags;
}

// The options of the command line, in order, on top of `flags`; unknown ones are left alone
// (parse_options accepted them: fsname=, allow_other, ... which a remount cannot change).
unsigned long apply_options(unsigned long flags, const std::vector<std::string> &options) {
  constexpr unsigned long kAtime = MS_NOATIME | MS_RELATIME | MS_STRICTATIME;
  for (const std::string &o : options) {
    const std::pair<const char *, std::pair<unsigned long, bool>> map[] = {
        {"ro", {MS_RDONLY, true}},          {"rw", {MS_RDONLY, false}},
        {"nosuid", {MS_NOSUID, true}},      {"suid", {MS_NOSUID, false}},
        {"nodev", {MS_NODEV, true}},        {"dev", {MS_NODEV, false}},
        {"noexec", {MS_NOEXEC, true}},      {"exec", {MS_NOEXEC, false}},
        {"sync", {MS_SYNCHRONOUS, true}},   {"async", {MS_SYNCHRONOUS, false}},
        {"nodiratime", {MS_NODIRATIME, true}}, {"diratime", {MS_NODIRATIME, false}},
        {"lazytime", {MS_LAZYTIME, true}},  {"nolazytime", {MS_LAZYTIME, false}}};
    for (auto &[name, change] : map)
      if (o == name)
        flags = change.second ? flags | change.first : flags & ~change.first;
    if (o == "noatime")
      flags = (flags & ~kAtime) | MS_NOATIME;
    else if (o == "relatime")
      flags = (flags & ~kAtime) | MS_RELATIME;
    else if (o == "strictatime" || o == "atime" || o == "norelatime")
      flags = (flags & ~kAtime) | MS_STRICTATIME;
  }
  return flags;
}

// Asks the node's daemon; false with `error` set unless it answered ok.
bool ask(const Options &opt, const std::string &node, const std::string &command, int timeout_ms,
         control::JsonObject &reply, std::string &error) {
  const std::string socket = opt.run_dir + "/" + control::socket_file_name(node);
  std::string why;
  auto r = ctl::ask_daemon(socket, command, timeout_ms, why);
  if (!r) {
    error = "cannot reach the daemon of node '" + node + "' at " + socket + " (" +
            (why.empty() ? std::string(std::strerror(r.error())) : why) +
            "); pass its run_dir= if it is not the default";
    return false;
  }
  reply = std::move(r.value());
  if (!reply["ok"].as_bool()) {
    error = "the daemon of node '" + node + "' refused " + command + ": " +
            reply["error"].as_string();
    return false;
  }
  return true;
}

} // namespace

bool remount(const Options &opt, std::string &error) {
  const std::string &mnt = opt.mountpoint;
  const std::optional<MountEntry> mount = last_mount_on(mnt);
  if (!mount || mount->fstype != "fuse.pkramfs-fuse") {
    error = "'" + mnt + "' is not a pkramfs mount" +
            (mount ? " (it is " + mount->fstype + ")" : "") +
            "; remount takes the mount point of a running pkramfs-fuse";
    return false;
  }
  struct statvfs vfs {};
  if (statvfs(mnt.c_str(), &vfs) != 0) {
    error = "cannot read the flags of '" + mnt + "' (" + std::strerror(errno) +
            "); is its daemon running? (pkramfs-ctl list)";
    return false;
  }
  // mount(8) hands over the fstab entry's settings with every remount: they are the node's,
  // fixed when it was made (as at any later mount of it).
  for (const std::string &key : opt.given_settings)
    spdlog::debug("{}= is kept from the first mount; a remount changes only ro/rw and the mount "
                  "flags", key);
  unsigned long flags = apply_options(current_flags(vfs), opt.fuse_options);
  bool rw_given = false;
  for (const std::string &o : opt.fuse_options)
    rw_given |= o == "rw";
  if (opt.preserve && rw_given && !(flags & MS_RDONLY)) {
    error = "remount,preserve makes the mount read-only; leave out rw";
    return false;
  }
  if (opt.preserve)
    flags |= MS_RDONLY;
  // The node's name: the mount's source is the fsname, the node's name unless -o fsname= said
  // otherwise at the first mount; mount(8) passes it as NAME.
  const std::string node = opt.node.empty() ? mount->source : opt.node;
  const bool named = node != "pkramfs";
  control::JsonObject reply;
  if (!(flags & MS_RDONLY) && named) {
    // Writable again: a preserved node refuses every mutation until it is unpreserved.
    if (!ask(opt, node, "status", 10'000, reply, error))
      return false;
    if (reply["state"].as_string() == "preserved" &&
        !ask(opt, node, "unpreserve", 10'000, reply, error))
      return false;
  }
  if (::mount(nullptr, mnt.c_str(), nullptr, MS_REMOUNT | flags, nullptr) != 0) {
    const int err = errno;
    error = "cannot remount '" + mnt + "' (" + std::strerror(err) + ")" +
            (err == EBUSY ? "; files are open for writing there: close them (fuser -vm " + mnt +
                                ") and try again"
                          : "");
    return false;
  }
  spdlog::info("remounted {} {}", mnt, flags & MS_RDONLY ? "read-only" : "read-write");
  if (opt.preserve) {
    if (!named) {
      error = "'" + mnt + "' is an anonymous pkramfs: there is no node to preserve (it is "
              "read-only now)";
      return false;
    }
    if (!ask(opt, node, "preserve", 600'000, reply, error))
      return false;
    spdlog::info("preserved {}", node);
  }
  return true;
}

} // namespace pkramfs
