// The filesystem model with tmpfs semantics: inodes, directories, data in the arena. No FUSE in
// here; the adapter in fuse/ turns requests into these calls and results into replies.
//
// Locking: `tree_` guards the inode table and the namespace. Namespace changes take it
// exclusively; everything else takes it shared plus the inode's own lock for data and
// attributes. The arena has its own lock.
#pragma once

#include "arena.h"
#include "inode.h"
#include "result.h"

#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unordered_map>

namespace pkramfs {

inline constexpr uint64_t kRootIno = 1;
inline constexpr size_t kNameMax = 255;

struct FsConfig {
  uint64_t max_inodes = 0;
  uint32_t root_mode = 01777;
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
};

// Who asks: the filesystem uid and gid of the calling process.
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

struct SetAttr {
  enum : uint32_t {
    kMode = 1 << 0,
    kUid = 1 << 1,
    kGid = 1 << 2,
    kSize = 1 << 3,
    kAtime = 1 << 4,
    kMtime = 1 << 5,
    kAtimeNow = 1 << 6,
    kMtimeNow = 1 << 7,
    kCtime = 1 << 8,
  };
  uint32_t valid = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  timespec atime{}, mtime{}, ctime{};
};

// Receives the data of a read as an iovec list into arena memory (and a shared zero page for
// holes); called while the file's lock is held, so it must consume the memory before returning.
class ReadSink {
public:
  virtual void deliver(std::span<const iovec> iov) = 0;

protected:
  ~ReadSink() = default;
};

// Receives directory entries; returns false when it has no room for this one.
class DirSink {
public:
  virtual bool add(std::string_view name, const struct stat &st, uint64_t next_offset) = 0;

protected:
  ~DirSink() = default;
};

class Filesystem {
public:
  Filesystem(std::unique_ptr<Arena> arena, const FsConfig &config);
  ~Filesystem();

  // Name space. Calls that return a stat for a new or looked-up entry count one kernel
  // reference (lookup count) on it; forget() drops them.
  Result<struct stat> lookup(uint64_t parent, std::string_view name);
  void forget(uint64_t ino, uint64_t nlookup);
  Result<struct stat> mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                            const Caller &who);
  Result<struct stat> mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                            const Caller &who);
  Result<struct stat> symlink(uint64_t parent, std::string_view name, std::string_view target,
                              const Caller &who);
  Result<struct stat> link(uint64_t ino, uint64_t parent, std::string_view name);
  Result<void> unlink(uint64_t parent, std::string_view name);
  Result<void> rmdir(uint64_t parent, std::string_view name);
  Result<void> rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                      std::string_view new_name, unsigned flags);
  Result<std::string> readlink(uint64_t ino);
  Result<void> readdir(uint64_t ino, uint64_t offset, bool plus, DirSink &sink);

  // Attributes.
  Result<struct stat> getattr(uint64_t ino);
  Result<struct stat> setattr(uint64_t ino, const SetAttr &attr);
  Result<void> setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags);
  Result<std::string> getxattr(uint64_t ino, std::string_view name, bool privileged);
  Result<std::string> listxattr(uint64_t ino, bool privileged);
  Result<void> removexattr(uint64_t ino, std::string_view name);

  // Open files and data.
  Result<struct stat> create(uint64_t parent, std::string_view name, uint32_t mode,
                             const Caller &who);
  Result<void> open(uint64_t ino);
  void release(uint64_t ino);
  Result<void> read(uint64_t ino, uint64_t offset, uint64_t size, ReadSink &sink);
  Result<size_t> write(uint64_t ino, uint64_t offset, const void *buf, size_t size);
  Result<void> fallocate(uint64_t ino, int mode, uint64_t offset, uint64_t length);
  Result<uint64_t> lseek(uint64_t ino, int64_t offset, int whence);
  Result<size_t> copy_file_range(uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
                                 uint64_t off_out, size_t len);

  struct statvfs statfs() const;
  uint64_t inode_count() const;

private:
  Inode *find(uint64_t ino) const;
  Result<Inode *> find_dir(uint64_t ino) const;
  Result<Inode *> new_inode(Inode &parent, uint32_t mode, const Caller &who);
  void drop_inode_if_unused(Inode &inode);
  void free_data(Inode &inode, uint64_t first_block, uint64_t end_block);
  void attach(Inode &parent, std::string_view name, Inode &child);
  void detach_nondir(Inode &parent, std::string_view name, Inode &child);
  Result<struct stat> make_node(uint64_t parent, std::string_view name, uint32_t mode,
                                uint64_t rdev, std::string_view target, const Caller &who,
                                bool open);
  Result<void> rename_exchange(Inode &old_dir, std::string_view name, Inode &new_dir,
                               std::string_view new_name);
  bool is_ancestor(uint64_t ancestor, const Inode &dir) const;
  Result<void> truncate_locked(Inode &inode, uint64_t size);
  Result<size_t> write_locked(Inode &inode, uint64_t offset, const void *buf, size_t size);
  Result<void> allocate_range(Inode &inode, uint64_t first, uint64_t end, bool keep_size,
                              uint64_t new_size);
  void zero_range_locked(Inode &inode, uint64_t offset, uint64_t length);
  struct stat stat_of(const Inode &inode) const;
  bool reserve_inode();
  void unreserve_inode();

  std::unique_ptr<Arena> arena_;
  const FsConfig config_;
  mutable std::shared_mutex tree_;
  std::unordered_map<uint64_t, std::unique_ptr<Inode>> inodes_;
  uint64_t next_ino_ = kRootIno + 1;
  std::atomic<uint64_t> used_inodes_{0};
};

} // namespace pkramfs
