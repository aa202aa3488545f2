// File objects: regular files whose data lives outside the arena, each in a file of its own on
// a tmpfs the daemon owns, so that the kernel can read, write and map them without the daemon
// (FUSE passthrough, Linux 6.9+: fuse/backing_files.h). One copy of each page, as on tmpfs.
//
// The tmpfs is made with the new mount API (fsopen/fsmount) and attached nowhere: only the
// daemon's descriptor reaches it, and it goes with the daemon. So objects are for trees that
// need not outlive the daemon (the anon backend); a node keeps its files in its arena.
// An object is named after its inode's number; the daemon holds a descriptor of it only while
// the file is open (Filesystem), so that a tree of many files needs no descriptor per file.
#pragma once

#include "util/result.h"
#include "util/unique_fd.h"

#include <cstdint>
#include <ctime>
#include <memory>
#include <sys/stat.h>

namespace pkramfs {

class ObjectStore {
public:
  // A tmpfs of `limit_bytes` (rounded up to pages) and `max_inodes` files (UINT64_MAX: no
  // limit). EPERM without CAP_SYS_ADMIN; ENOSYS on a kernel without fsopen (before 5.2).
  static Result<std::unique_ptr<ObjectStore>> create(uint64_t limit_bytes, uint64_t max_inodes);

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

private:
  explicit ObjectStore(UniqueFd root) : root_(std::move(root)) {}
  UniqueFd root_; // the tmpfs's root directory (fsmount)
};

} // namespace pkramfs
