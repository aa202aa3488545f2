// Temporary directories (mkdtemp) for the tests that need real files: node files, images.
#pragma once
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

namespace pkramfs::test {

// A new directory `prefix`.XXXXXX.
inline std::string temp_dir(const std::string &prefix = "/tmp/pkramfs-unit") {
  std::string dir = prefix + ".XXXXXX";
  REQUIRE(mkdtemp(dir.data()));
  return dir;
}

// The path of a node file, "node" in a new temporary directory.
inline std::string temp_node(const std::string &prefix = "/tmp/pkramfs-unit") {
  return temp_dir(prefix) + "/node";
}

} // namespace pkramfs::test
