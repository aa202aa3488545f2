#include "remount.h"

#include "mount_table.h"

#include "control_protocol.h"

#include "control_client.h"

#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

namespace pkramfs {
namespace {

// The control request that sets the daemon's atime policy to what `flags` say.
std::string atime_request(unsigned long flags) {
  const AtimePolicy p = atime_policy_of(flags);
  return control::atime_request(p.mode == AtimePolicy::Mode::kNoatime       ? "noatime"
                                : p.mode == AtimePolicy::Mode::kStrictatime ? "strictatime"
                                                                            : "relatime",
                                p.nodiratime);
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
    error = "the daemon of '" + mnt + "' does not answer (" + std::strerror(errno) +
            "); is it running? (pkramfs-ctl list)";
    return false;
  }
  // mount(8) hands over the fstab entry's settings with every remount: they are the node's,
  // fixed when it was made (as at any later mount of it).
  for (const std::string &key : opt.given_settings)
    spdlog::debug("{}= is kept from the first mount; a remount changes only ro/rw and the mount "
                  "flags", key);
  std::vector<std::string> options = opt.fuse_options;
  options.insert(options.end(), opt.atime_options.begin(), opt.atime_options.end());
  unsigned long flags = apply_mount_flag_options(mount_flags_of(*mount), options);
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
  // The daemon stamps atime itself (S_NOATIME inodes): tell it what the mount says now.
  if (!opt.atime_options.empty()) {
    if (!named) {
      error = "'" + mnt + "' is an anonymous pkramfs, whose daemon cannot be told the new atime "
              "options; mount it again with them";
      return false;
    }
    if (!ask(opt, node, atime_request(flags), 10'000, reply, error))
      return false;
  }
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
