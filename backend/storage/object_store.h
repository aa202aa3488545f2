// File objects: regular files whose data lives outside the arena, each in a file of its own on
// a tmpfs the daemon owns, so that the kernel can read, write and map them without the daemon
// (FUSE passthrough, Linux 6.9+: fuse/backing_files.h). One copy of each page, as on tmpfs.
//
// Two kinds of store:
// - private (create): made with the new mount API (fsopen/fsmount) and attached nowhere: only
//   the daemon's descriptor reaches it, and it goes with the daemon. For a tree that need not
//   outlive the daemon (the anon backend).
// - a node's (attach): a tmpfs mounted beside a node file on /dev/shm or hugetlbfs, at
//   <dir>/.<node>.objects, so that it outlives the daemon as the node file does (a crash, an
//   upgrade, an unmount) and goes where the node goes (pkramfs-ctl destroy, a reboot). Its
//   size= and nr_inodes= are the node's: the kernel enforces them on writes the daemon never
//   sees (passthrough). An xattr of its root names the node's uuid, so that objects of an
//   earlier node of the same name are never taken for this one's (docs/format.md, "File
//   objects").
// An object is named after its inode's number; the daemon holds a descriptor of it only while
// the file is open (Filesystem), so that a tree of many files needs no descriptor per file.
#pragma once

#include "util/result.h"
#include "util/unique_fd.h"

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <vector>
#include <sys/stat.h>

namespace pkramfs {

class ObjectStore {
public:
  // A tmpfs of `limit_bytes` (rounded up to pages) and `max_inodes` files (UINT64_MAX: no
  // limit). EPERM without CAP_SYS_ADMIN; ENOSYS on a kernel without fsopen (before 5.2).
  static Result<std::unique_ptr<ObjectStore>> create(uint64_t limit_bytes, uint64_t max_inodes);

  // The object directory of node `node` in `dir`.
  static std::string path_for(const std::string &dir, const std::string &node);
  // A node's store at `path`, mounted there if it is not yet, for the node whose uuid is
  // `uuid` (32 hex digits). `fresh`: the node was just made, so objects of an earlier node of
  // that name are thrown away; otherwise a store of another node is refused (EEXIST) and left
  // as it is. EPERM without CAP_SYS_ADMIN.
  static Result<std::unique_ptr<ObjectStore>> attach(const std::string &path, uint64_t limit_bytes,
                                                     uint64_t max_inodes, const std::string &uuid,
                                                     bool fresh);
  // Whether a store is mounted at `path` (an object tmpfs, whoever's).
  static bool mounted(const std::string &path);
  // The store of the node whose uuid is `uuid` as it is, mounting nothing (offline reading:
  // pkramfs-ctl check, export). ENOENT: there is none; EEXIST: it is another node's.
  static Result<std::unique_ptr<ObjectStore>> open_existing(const std::string &path,
                                                            const std::string &uuid);
  // Unmounts and removes a node's store (pkramfs-ctl destroy); ENOENT when there is none.
  static Result<void> detach(const std::string &path);

  // A new empty object for inode `ino`, open read-write. ENOSPC when the tmpfs has no inode.
  Result<UniqueFd> make(uint64_t ino) const;
  // The object of `ino`, open read-write.
  Result<UniqueFd> open(uint64_t ino) const;
  bool stat(uint64_t ino, struct stat &st) const;
  // truncate(2) of the object, which stamps mtime and ctime only when the size changes
  // (shmem_setattr); ftruncate(2) of its descriptor always stamps them.
  bool truncate(uint64_t ino, uint64_t size) const;
  // atime and mtime as utimensat(2) takes them.
  bool set_times(uint64_t ino, const timespec times[2]) const;
  // The object goes (its pages with the last reference: an open file, a backing file).
  void remove(uint64_t ino) const;
  // The 4 KiB blocks the objects use (statfs of the tmpfs).
  uint64_t used_blocks() const;
  // The tmpfs's size= from now on (EINVAL: less than the objects use, which stays as it was).
  Result<void> resize(uint64_t limit_bytes) const;
  // The inode numbers that have an object.
  Result<std::vector<uint64_t>> list() const;

  // A store opened for offline reading (open_existing): make, truncate, set_times and remove
  // change nothing (EROFS, false, nothing), and open() gives read-only descriptors.
  bool read_only() const { return read_only_; }

private:
  ObjectStore(UniqueFd root, bool read_only) : root_(std::move(root)), read_only_(read_only) {}
  UniqueFd root_; // the tmpfs's root directory
  bool read_only_ = false;
};

} // namespace pkramfs
