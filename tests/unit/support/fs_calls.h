// Filesystem calls the tests of mounted nodes make in one line, where they must succeed.
#pragma once
#include "fs/filesystem.h"
#include "support/sinks.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

namespace pkramfs::test {

// The inode `name` in `parent`; the lookup counts a kernel reference, as a FUSE lookup would.
inline uint64_t lookup(Filesystem &fs, uint64_t parent, const char *name) {
  auto r = fs.lookup(parent, name);
  REQUIRE(r.ok());
  return r->st_ino;
}

// The whole content of a file (up to 1 GiB).
inline std::string read_all(Filesystem &fs, uint64_t ino) {
  Collect c;
  REQUIRE(fs.read(ino, 0, 1 << 30, c).ok());
  return c.bytes;
}

} // namespace pkramfs::test
