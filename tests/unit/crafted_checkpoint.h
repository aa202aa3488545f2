// Checkpoint images written by hand, for the tests and fuzzers of crafted nodes (docs/security.md,
// "Damaged and foreign nodes and images"): directories only, with the parents and entries given,
// whatever the tree they make. Header-only: the fuzzers (tests/fuzz) build without Catch2.
#pragma once
#include "journal/codec.h"

#include <pkramfs/format.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <utility>
#include <vector>

namespace pkramfs::test {

struct CraftedDir {
  uint64_t ino, parent;
  std::vector<std::pair<std::string, uint64_t>> entries; // name, inode
  uint32_t subdirs;                                      // for the link count
};

inline std::string crafted_dirs_image(const std::vector<CraftedDir> &dirs, uint64_t next_ino,
                                      uint64_t generation,
                                      uint32_t version = PKRAMFS_FORMAT_VERSION,
                                      uint32_t inode_flags = 0) {
  std::string image;
  Encoder e(image);
  pkramfs_ckpt_header h{};
  h.magic = PKRAMFS_CKPT_MAGIC;
  h.version = version;
  h.header_bytes = sizeof h;
  h.generation = generation;
  h.nr_inodes = dirs.size();
  h.next_ino = next_ino;
  e.raw(&h, sizeof h);
  for (const CraftedDir &d : dirs) {
    pkramfs_ckpt_inode c{};
    c.ino = d.ino;
    c.parent = d.parent;
    c.size = 40 + 20 * d.entries.size();
    c.mode = S_IFDIR | 0777;
    c.nlink = 2 + d.subdirs;
    c.nr_items = d.entries.size();
    c.flags = inode_flags; // "reserved" in version 1
    e.raw(&c, sizeof c);
    for (const auto &[name, ino] : d.entries) {
      e.u64(ino);
      e.str(name);
    }
  }
  h.bytes = image.size();
  std::memcpy(image.data(), &h, sizeof h);
  return image;
}

} // namespace pkramfs::test
