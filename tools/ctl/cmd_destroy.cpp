// pkramfs-ctl destroy: throw an unmounted node away.
#include "commands.h"

#include "daemon.h"
#include "failure.h"
#include "node_access.h"
#include "text.h"
#include "storage/object_store.h"

#include <cerrno>
#include <iostream>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace pkramfs::ctl {

namespace {

// A socket left behind by a daemon that died: nobody serves it.
void remove_stale_socket(const Settings &s, const std::string &name) {
  struct stat sock {};
  if (::lstat(sock_path(s, name).c_str(), &sock) == 0 && S_ISSOCK(sock.st_mode))
    ::unlink(sock_path(s, name).c_str());
}

int destroy_kmod(const Settings &s, Located &loc) {
  const std::string &name = s.name;
  if (!loc.info)
    no_such_node(s, name);
  // Held exclusively until we are done: no daemon can start on the node meanwhile.
  LockProbe lock = probe(s, name, LockMode::kExclusive);
  if (lock.held)
    busy(s, name, lock.pid, "destroy needs it unmounted first");
  // What it holds now is what the destroy frees.
  auto info = loc.dev->stat(name);
  if (!info && info.error() == ENOENT)
    no_such_node(s, name);
  if (!info)
    fail("cannot look up pkram node " + in_quotes(name) + " (" + why(info.error()) + ")",
         "see the kernel log (dmesg | grep pkram)");
  if (auto r = loc.dev->destroy(name); !r) {
    if (r.error() == ENOENT)
      no_such_node(s, name);
    if (r.error() == EBUSY)
      attached_elsewhere(s, name, "destroy needs it detached first");
    fail("cannot destroy pkram node " + in_quotes(name) + " (" + why(r.error()) + ")",
         "see the kernel log (dmesg | grep pkram)");
  }
  remove_stale_socket(s, name);
  std::cout << "destroyed node " << in_quotes(name) << " (" << human_bytes(held_bytes(*info))
            << " freed)\n";
  return 0;
}

} // namespace

int cmd_destroy(const Settings &s) {
  const std::string &name = s.name;
  if (Located loc = locate(s, name); loc.kind == Backend::kKmod)
    return destroy_kmod(s, loc);
  struct stat st {};
  require_node_file(s, name, &st);
  // Held exclusively until we are done: no daemon can start on the node meanwhile.
  LockProbe lock = probe(s, name, LockMode::kExclusive);
  if (lock.held)
    busy(s, name, lock.pid, "destroy needs it unmounted first");
  if (::unlink(node_path(s, name).c_str()) != 0) {
    if (errno == ENOENT)
      no_such_node(s, name);
    fail("cannot remove " + node_path(s, name) + " (" + why(errno) + ")",
         "check the permissions of " + s.shm_dir);
  }
  remove_stale_socket(s, name);
  // Its file objects go with it: the tmpfs mounted beside it, whose pages are its files' data.
  uint64_t object_bytes = 0;
  const std::string objects = ObjectStore::path_for(s.shm_dir, name);
  struct statvfs vfs {};
  if (::statvfs(objects.c_str(), &vfs) == 0 && vfs.f_frsize)
    object_bytes = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
  if (auto r = ObjectStore::detach(objects); !r && r.error() != ENOENT)
    fail("removed the node file, but not its file objects at " + objects + " (" +
             why(r.error()) + ")",
         "unmount and remove " + objects + " by hand (umount " + objects + "; rmdir " + objects +
             ")");
  std::cout << "destroyed node " << in_quotes(name) << " ("
            << human_bytes(static_cast<uint64_t>(st.st_blocks) * 512 + object_bytes)
            << " freed)\n";
  return 0;
}

} // namespace pkramfs::ctl
