// Checkpoint images written by hand, for the tests and fuzzers of crafted nodes (docs/security.md,
// "Damaged and foreign nodes and images"): directories only, with the parents and entries given,
// whatever the tree they make; and the payload of a journal record, to replay crafted ones.
// Header-only: the fuzzers (tests/fuzz) build without Catch2.
#pragma once
#include "journal/codec.h"
#include "journal/records.h"

#include <pkramfs/format.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
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
    c.btime_sec = 1000;    // version 3
    e.raw(&c, version >= 3 ? sizeof c : PKRAMFS_CKPT_INODE_V2_BYTES);
    // Version 4: the next cookie, then each entry's cookie, numbered as a restore of an older
    // version would number them.
    uint64_t cookie = PKRAMFS_FIRST_COOKIE;
    if (version >= 4)
      e.u64(cookie + d.entries.size());
    for (const auto &[name, ino] : d.entries) {
      e.u64(ino);
      if (version >= 4)
        e.u64(cookie++);
      e.str(name);
    }
  }
  h.bytes = image.size();
  std::memcpy(image.data(), &h, sizeof h);
  return image;
}

// A checkpoint image of this build's version written again as version 1 or 2 wrote it: the
// inode records without the birth time, directories without readdir cookies (format.h),
// everything else as it was. No check beyond what walking it needs: the images are this
// build's own.
inline std::string older_image(std::string_view image, uint32_t version) {
  std::string out;
  Encoder e(out);
  Decoder d(image.data(), image.size());
  pkramfs_ckpt_header h{};
  d.raw(&h, sizeof h);
  h.version = version;
  e.raw(&h, sizeof h);
  for (uint64_t n = 0; n < h.nr_inodes && d.ok(); ++n) {
    pkramfs_ckpt_inode c{};
    d.raw(&c, sizeof c);
    e.raw(&c, PKRAMFS_CKPT_INODE_V2_BYTES);
    e.bytes(d.bytes(c.target_bytes));
    for (uint32_t x = 0; x < c.nr_xattrs; ++x) {
      const uint32_t name_len = d.u32(), value_len = d.u32();
      e.u32(name_len);
      e.u32(value_len);
      e.bytes(d.bytes(name_len));
      e.bytes(d.bytes(value_len));
    }
    if (S_ISDIR(c.mode))
      (void)d.u64(); // next cookie
    for (uint64_t k = 0; k < c.nr_items; ++k) {
      if (S_ISDIR(c.mode)) {
        e.u64(d.u64());
        (void)d.u64(); // cookie
        e.str(d.str(UINT32_MAX));
      } else {
        e.bytes(d.bytes(32));
      }
    }
  }
  h.bytes = out.size();
  std::memcpy(out.data(), &h, sizeof h);
  return out;
}

// A journal record's payload, as Filesystem::replay takes it.
template <class R> std::string payload_of(const R &record) {
  std::string out;
  Encoder e(out);
  encode(e, record);
  return out;
}

} // namespace pkramfs::test
