// What the tests of the Filesystem model (test_filesystem*.cpp) share: a filesystem over an
// anonymous arena driven directly (no FUSE, no node), callers, and one-line forms of its calls
// that must succeed, with the sinks for read and readdir.
#pragma once
#include "fs/filesystem.h"
#include "support/anon_fs.h"
#include "support/callers.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <sys/statvfs.h>
#include <thread>
#include <vector>

namespace pkramfs::test {

inline constexpr uint64_t KiB = 1ull << 10, MiB = 1ull << 20;
inline constexpr uint64_t kBlk = kBlockSize;
inline const Caller kRootCaller{0, 0};
inline const Caller kUser{1000, 1000};
inline constexpr uint64_t kUnlimited = UINT64_MAX;

using TestFs = AnonFs;

inline uint64_t mkfile(Filesystem &fs, uint64_t parent, std::string_view name, uint32_t mode = 0644,
                       const Caller &who = kRootCaller) {
  auto r = fs.mknod(parent, name, S_IFREG | mode, 0, who);
  INFO("mknod " << name << ": errno " << r.error());
  REQUIRE(r.ok());
  return r->st_ino;
}

inline uint64_t mkdir_(Filesystem &fs, uint64_t parent, std::string_view name, uint32_t mode = 0755,
                       const Caller &who = kRootCaller) {
  auto r = fs.mkdir(parent, name, mode, who);
  INFO("mkdir " << name << ": errno " << r.error());
  REQUIRE(r.ok());
  return r->st_ino;
}

inline struct stat attr(Filesystem &fs, uint64_t ino) {
  auto r = fs.getattr(ino);
  INFO("getattr " << ino << ": errno " << r.error());
  REQUIRE(r.ok());
  return *r;
}

inline bool alive(Filesystem &fs, uint64_t ino) { return fs.getattr(ino).ok(); }

inline uint64_t ino_of(Filesystem &fs, uint64_t parent, std::string_view name) {
  auto r = fs.lookup(parent, name);
  if (!r)
    return 0;
  fs.forget(r->st_ino, 1); // keep lookup counts as they were
  return r->st_ino;
}

// Collects what a read delivers, keeping the iovec shape too.
struct Bytes final : ReadSink {
  std::string data;
  size_t calls = 0;
  size_t iovecs = 0;
  void deliver(std::span<const iovec> iov) override {
    ++calls;
    iovecs += iov.size();
    for (const iovec &v : iov)
      data.append(static_cast<const char *>(v.iov_base), v.iov_len);
  }
};

inline std::string read(Filesystem &fs, uint64_t ino, uint64_t offset, uint64_t size) {
  Bytes sink;
  auto r = fs.read(ino, offset, size, sink);
  INFO("read " << ino << ": errno " << r.error());
  REQUIRE(r.ok());
  CHECK(sink.calls == 1);
  return sink.data;
}

inline size_t write(Filesystem &fs, uint64_t ino, uint64_t offset, std::string_view data) {
  auto r = fs.write(ino, offset, data.data(), data.size(), kRootCaller);
  INFO("write " << ino << ": errno " << r.error());
  REQUIRE(r.ok());
  return *r;
}

inline std::string pattern(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    s[i] = static_cast<char>('a' + (seed >> 24) % 26);
  }
  return s;
}

inline std::string zeros(size_t n) { return std::string(n, '\0'); }

inline uint64_t used_blocks(Filesystem &fs) {
  const struct statvfs st = fs.statfs();
  return st.f_blocks - st.f_bfree;
}

inline uint64_t alloc_blocks(Filesystem &fs, uint64_t ino) {
  return static_cast<uint64_t>(attr(fs, ino).st_blocks) / (kBlk / 512);
}

struct Entry {
  std::string name;
  uint64_t ino;
  uint64_t next;
};

struct Dir final : DirSink {
  size_t room = SIZE_MAX;
  std::vector<Entry> entries;
  bool add(std::string_view name, const struct stat &st, uint64_t next_offset) override {
    if (entries.size() >= room)
      return false;
    entries.push_back({std::string(name), static_cast<uint64_t>(st.st_ino), next_offset});
    return true;
  }
};

inline std::vector<Entry> readdir(Filesystem &fs, uint64_t dir, uint64_t offset = 0,
                                  size_t room = SIZE_MAX, bool plus = false) {
  Dir sink;
  sink.room = room;
  auto r = fs.readdir(dir, offset, plus, sink);
  REQUIRE(r.ok());
  return sink.entries;
}

// Names in a directory, without "." and "..".
inline std::set<std::string> names(Filesystem &fs, uint64_t dir) {
  std::set<std::string> out;
  for (auto &e : readdir(fs, dir))
    if (e.name != "." && e.name != "..")
      out.insert(e.name);
  return out;
}

inline uint64_t dotdot(Filesystem &fs, uint64_t dir) {
  for (auto &e : readdir(fs, dir))
    if (e.name == "..")
      return e.ino;
  FAIL("no .. entry");
  return 0;
}

inline bool same(const timespec &a, const timespec &b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}
inline bool later(const timespec &a, const timespec &b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}
// Lets the clock move on so that a changed timestamp is visibly later.
inline void tick() { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }

inline SetAttr size_attr(uint64_t size) {
  SetAttr a;
  a.valid = SetAttr::kSize;
  a.size = size;
  return a;
}

inline SetAttr mode_attr(uint32_t mode) {
  SetAttr a;
  a.valid = SetAttr::kMode;
  a.mode = mode;
  return a;
}

} // namespace pkramfs::test
