// Private to the files that implement Filesystem -- fs/filesystem*.cpp, fs/checkpoint_image.cpp
// and fs/journal_replay.cpp -- and to no one else: the helpers more than one of them needs.
// They keep the internal linkage they had as file-local helpers (an unnamed namespace: every
// file gets its own copy); functions are inline so that a file that uses none is not warned.
#pragma once

#include "fs/filesystem.h"
#include "util/fault.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>
#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace pkramfs {
namespace {

// ---------------------------------------------------------------------------------------------
// The operations (fs/filesystem*.cpp)

// tmpfs reports directory sizes as 20 bytes per entry plus two for "." and "..".
constexpr uint64_t kBogoDirentSize = 20;

inline timespec now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

inline bool older(const timespec &a, const timespec &b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

inline void touch_mc(Inode &i) { i.mtime = i.ctime = now(); }

// Runs `f`, turning a failed heap allocation into ENOMEM: no exception crosses into the FUSE
// callbacks. Operations allocate before their journal record and change the tree only after
// it, with nothing left that allocates, so a failure here has changed nothing.
template <class F> auto enomem_on_bad_alloc(F &&f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc &) {
    return Errno{ENOMEM};
  }
}

// Grows `v` geometrically so that the next push_back cannot fail.
template <class T> void room_for_one(std::vector<T> &v) {
  if (v.size() < v.capacity())
    return;
  fault::heap();
  v.reserve(2 * v.size() + 4);
}

// The VFS's in_group_p for a file's group: the caller's fsgid or a supplementary group.
inline bool in_file_group(const Inode &inode, const Caller &who, const Credentials &creds) {
  return inode.gid == who.gid ||
         std::find(creds.groups.begin(), creds.groups.end(), inode.gid) != creds.groups.end();
}

// ---------------------------------------------------------------------------------------------
// Reading untrusted bytes (fs/checkpoint_image.cpp, fs/journal_replay.cpp)

inline bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= kNameMax && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

inline bool valid_type(uint32_t mode) {
  switch (mode & S_IFMT) {
  case S_IFREG:
  case S_IFDIR:
  case S_IFLNK:
  case S_IFCHR:
  case S_IFBLK:
  case S_IFIFO:
  case S_IFSOCK:
    return true;
  default:
    return false;
  }
}

// Files end before 2^63 bytes (off_t; the kernel's limit for a FUSE file): a size or an
// extent read from a node beyond it would make byte offsets (block << 12) wrap.
constexpr uint64_t kMaxFileBytes = uint64_t{INT64_MAX};
constexpr uint64_t kMaxFileBlocks = (kMaxFileBytes >> kBlockShift) + 1;
inline bool within_max_file(uint64_t fblock, uint64_t count) {
  return fblock < kMaxFileBlocks && count <= kMaxFileBlocks - fblock;
}

inline Errno corrupt(std::string &why, std::string what) {
  why = std::move(what);
  return Errno{EUCLEAN};
}

} // namespace
} // namespace pkramfs
