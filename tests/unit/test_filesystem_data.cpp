// Filesystem: open files and data (read, write, truncate, fallocate, lseek, copy_file_range),
// driven directly (no FUSE) over a real anonymous arena.
#include "fs/filesystem.h"
#include "support/filesystem_fixture.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/xattr.h>
#include <map>
#include <set>
#include <string>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <vector>

using namespace pkramfs;
using namespace pkramfs::test;

TEST_CASE("Filesystem: write/read round trips across block and frame boundaries", "[fs][data]") {
  TestFs t(64 * MiB);
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "f");

  const uint64_t offset = 4000;
  const std::string data = pattern(5 * MiB + 123);
  REQUIRE(write(fs, f, offset, data) == data.size());
  const uint64_t end = offset + data.size();
  const std::string expect = zeros(offset) + data;

  const auto st = attr(fs, f);
  CHECK(static_cast<uint64_t>(st.st_size) == end);
  CHECK(alloc_blocks(fs, f) == (end + kBlk - 1) / kBlk);
  CHECK(used_blocks(fs) == (end + kBlk - 1) / kBlk);

  CHECK(read(fs, f, 0, end + 100) == expect);

  const uint64_t F = kFrameSize;
  for (uint64_t off : {uint64_t{0}, uint64_t{1}, kBlk - 1, kBlk, 2 * kBlk - 1, F - 1, F, F + 4000,
                       2 * F - 5, end - 10}) {
    for (uint64_t len : {uint64_t{1}, uint64_t{2}, kBlk + 1, 3 * MiB}) {
      INFO("offset " << off << " length " << len);
      const std::string got = read(fs, f, off, len);
      CHECK(got == expect.substr(off, len));
    }
  }

  SECTION("reads at and past EOF are short or empty") {
    CHECK(read(fs, f, end, 10).empty());
    CHECK(read(fs, f, end + 5 * MiB, 10).empty());
    CHECK(read(fs, f, end - 3, 10) == expect.substr(end - 3));
    CHECK(read(fs, f, end - 3, UINT64_MAX) == expect.substr(end - 3));
    CHECK(read(fs, f, 0, UINT64_MAX) == expect);
  }
  SECTION("overwrites across a frame boundary") {
    const std::string patch = pattern(3 * kBlk, 7);
    REQUIRE(write(fs, f, F - kBlk - 17, patch) == patch.size());
    std::string want = expect;
    want.replace(F - kBlk - 17, patch.size(), patch);
    CHECK(read(fs, f, 0, end) == want);
    CHECK(used_blocks(fs) == (end + kBlk - 1) / kBlk);
  }
  SECTION("every delivered byte is accounted for in one call") {
    Bytes sink;
    REQUIRE(fs.read(f, 100, 3 * MiB, sink).ok());
    CHECK(sink.calls == 1);
    CHECK(sink.iovecs >= 1);
    CHECK(sink.data.size() == 3 * MiB);
  }
  SECTION("interleaved writes to two files keep their data apart") {
    const uint64_t g = mkfile(fs, kRootIno, "g");
    const uint64_t h = mkfile(fs, kRootIno, "h");
    std::string gd, hd;
    for (int i = 0; i < 40; ++i) {
      const std::string gb = pattern(kBlk + 100, 100 + i), hb = pattern(kBlk - 100, 200 + i);
      REQUIRE(write(fs, g, gd.size(), gb) == gb.size());
      REQUIRE(write(fs, h, hd.size(), hb) == hb.size());
      gd += gb;
      hd += hb;
    }
    CHECK(read(fs, g, 0, gd.size() + 1) == gd);
    CHECK(read(fs, h, 0, hd.size() + 1) == hd);
    CHECK(read(fs, f, 0, end) == expect);
  }
}

TEST_CASE("Filesystem: big writes through many frames", "[fs][data]") {
  TestFs t(256 * MiB);
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "big");
  const std::string chunk = pattern(MiB + 3, 99);
  uint64_t pos = 0;
  for (int i = 0; i < 40; ++i)
    pos += write(fs, f, pos, chunk);
  CHECK(attr(fs, f).st_size == static_cast<off_t>(pos));
  CHECK(used_blocks(fs) == (pos + kBlk - 1) / kBlk);
  for (int i : {0, 7, 13, 39})
    CHECK(read(fs, f, static_cast<uint64_t>(i) * chunk.size(), chunk.size()) == chunk);
  REQUIRE(fs.unlink(kRootIno, "big").ok());
  fs.forget(f, 1);
  CHECK(used_blocks(fs) == 0);
}

TEST_CASE("Filesystem: sparse files read zeros in their holes", "[fs][data]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "f");

  const uint64_t at = 3 * MiB + 10;
  REQUIRE(write(fs, f, at, "data") == 4);
  CHECK(attr(fs, f).st_size == static_cast<off_t>(at + 4));
  CHECK(alloc_blocks(fs, f) == 1);

  Bytes sink;
  REQUIRE(fs.read(f, 0, at + 100, sink).ok());
  CHECK(sink.data == zeros(at) + "data");
  CHECK(sink.iovecs >= 4); // the hole comes from a bounded zero buffer

  REQUIRE(write(fs, f, 0, "head") == 4);
  CHECK(read(fs, f, 0, 8) == std::string("head") + zeros(4));
  CHECK(read(fs, f, 2 * MiB - 2, 4) == zeros(4));
  CHECK(alloc_blocks(fs, f) == 2);

  SECTION("fresh blocks never show another file's old data") {
    // Keep the frame in use so that freed blocks keep their contents in memory.
    const uint64_t keep = mkfile(fs, kRootIno, "keep");
    REQUIRE(write(fs, keep, 0, "k") == 1);
    const uint64_t dirty = mkfile(fs, kRootIno, "dirty");
    // Small enough (< 1/8 frame) to be placed in the shared frame, not a fresh one.
    REQUIRE(write(fs, dirty, 0, std::string(32 * kBlk, '\xff')) == 32 * kBlk);
    REQUIRE(fs.unlink(kRootIno, "dirty").ok());
    fs.forget(dirty, 1);

    const uint64_t g = mkfile(fs, kRootIno, "g");
    REQUIRE(write(fs, g, 5000, "x") == 1);
    REQUIRE(write(fs, g, 3 * kBlk + 100, "y") == 1);
    CHECK(read(fs, g, 0, 5000) == zeros(5000));
    REQUIRE(fs.setattr(g, size_attr(8 * kBlk), kRootCaller).ok());
    std::string want = zeros(8 * kBlk);
    want[5000] = 'x';
    want[3 * kBlk + 100] = 'y';
    CHECK(read(fs, g, 0, 8 * kBlk) == want);
  }
}

TEST_CASE("Filesystem: truncate", "[fs][data]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "f");
  const std::string data = pattern(10000);
  REQUIRE(write(fs, f, 0, data) == data.size());
  REQUIRE(alloc_blocks(fs, f) == 3);
  REQUIRE(used_blocks(fs) == 3);

  SECTION("down then up reads zeros beyond the old EOF") {
    auto r = fs.setattr(f, size_attr(5000), kRootCaller);
    REQUIRE(r.ok());
    CHECK(r->st_size == 5000);
    CHECK(alloc_blocks(fs, f) == 2);
    CHECK(used_blocks(fs) == 2);
    CHECK(read(fs, f, 0, 10000) == data.substr(0, 5000));

    REQUIRE(fs.setattr(f, size_attr(10000), kRootCaller).ok());
    CHECK(attr(fs, f).st_size == 10000);
    CHECK(read(fs, f, 0, 10000) == data.substr(0, 5000) + zeros(5000));
    CHECK(alloc_blocks(fs, f) == 2);
  }
  SECTION("to a block boundary and back") {
    REQUIRE(fs.setattr(f, size_attr(kBlk), kRootCaller).ok());
    CHECK(alloc_blocks(fs, f) == 1);
    REQUIRE(fs.setattr(f, size_attr(10000), kRootCaller).ok());
    CHECK(read(fs, f, 0, 10000) == data.substr(0, kBlk) + zeros(10000 - kBlk));
  }
  SECTION("to zero frees everything; growing allocates nothing") {
    REQUIRE(fs.setattr(f, size_attr(0), kRootCaller).ok());
    CHECK(alloc_blocks(fs, f) == 0);
    CHECK(used_blocks(fs) == 0);
    CHECK(read(fs, f, 0, 100).empty());
    REQUIRE(fs.setattr(f, size_attr(MiB), kRootCaller).ok());
    CHECK(attr(fs, f).st_size == static_cast<off_t>(MiB));
    CHECK(alloc_blocks(fs, f) == 0);
    CHECK(read(fs, f, 0, MiB) == zeros(MiB));
  }
  SECTION("only regular files") {
    const uint64_t d = mkdir_(fs, kRootIno, "d");
    CHECK(fs.setattr(d, size_attr(0), kRootCaller).error() == EISDIR);
    auto s = fs.symlink(kRootIno, "s", "f", kRootCaller);
    REQUIRE(s.ok());
    CHECK(fs.setattr(s->st_ino, size_attr(0), kRootCaller).error() == EINVAL);
    CHECK(fs.setattr(999999, size_attr(0), kRootCaller).error() == ENOENT);
  }
}

TEST_CASE("Filesystem: write and read argument checks", "[fs][data]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "f");
  const uint64_t d = mkdir_(fs, kRootIno, "d");
  Bytes sink;
  CHECK(fs.read(d, 0, 10, sink).error() == EISDIR);
  CHECK(fs.read(999999, 0, 10, sink).error() == ENOENT);
  CHECK(fs.write(d, 0, "x", 1, kRootCaller).error() == EINVAL);
  CHECK(fs.write(999999, 0, "x", 1, kRootCaller).error() == ENOENT);
  CHECK(fs.write(f, static_cast<uint64_t>(LLONG_MAX), "x", 1, kRootCaller).error() == EFBIG);
  CHECK(fs.write(f, static_cast<uint64_t>(LLONG_MAX) - 1, "xx", 2, kRootCaller).error() == EFBIG);
  CHECK(attr(fs, f).st_size == 0);
  CHECK(used_blocks(fs) == 0);
}

TEST_CASE("Filesystem: a write of zero bytes does not change the file", "[fs][data]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "f");
  REQUIRE(write(fs, f, 0, "abc") == 3);
  const auto before = attr(fs, f);
  tick();
  auto r = fs.write(f, 1000, "", 0, kRootCaller);
  REQUIRE(r.ok());
  CHECK(*r == 0);
  const auto after = attr(fs, f);
  CHECK(after.st_size == 3); // as write(fd, buf, 0) on tmpfs: no size change
  CHECK(same(after.st_mtim, before.st_mtim));
}

TEST_CASE("Filesystem: fallocate", "[fs][data]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "f");

  SECTION("mode 0 grows the file with zeroed, unwritten blocks") {
    REQUIRE(fs.fallocate(f, 0, 0, 10000, kRootCaller).ok());
    CHECK(attr(fs, f).st_size == 10000);
    CHECK(alloc_blocks(fs, f) == 3);
    CHECK(used_blocks(fs) == 3);
    CHECK(read(fs, f, 0, 10000) == zeros(10000));
    CHECK(fs.lseek(f, 0, SEEK_DATA).error() == ENXIO);
    CHECK(fs.lseek(f, 0, SEEK_HOLE).value() == 0);
    // Writing into it turns the blocks written into data.
    REQUIRE(write(fs, f, 5000, "w") == 1);
    CHECK(fs.lseek(f, 0, SEEK_DATA).value() == kBlk);
    CHECK(fs.lseek(f, kBlk, SEEK_HOLE).value() == 2 * kBlk);
    CHECK(read(fs, f, 4999, 3) == std::string("\0w\0", 3));
    CHECK(used_blocks(fs) == 3);
    // A second fallocate over the range allocates nothing more but, as on tmpfs (shmem
    // initialises a folio an earlier fallocate left !uptodate), turns the rest into data.
    REQUIRE(fs.fallocate(f, 0, 0, 10000, kRootCaller).ok());
    CHECK(used_blocks(fs) == 3);
    CHECK(fs.lseek(f, 0, SEEK_DATA).value() == 0);
    CHECK(fs.lseek(f, 0, SEEK_HOLE).value() == 10000);
    CHECK(read(fs, f, 0, 10000) == zeros(5000) + "w" + zeros(4999));
  }
  SECTION("mode 0 never shrinks") {
    REQUIRE(write(fs, f, 0, pattern(20000)) == 20000);
    REQUIRE(fs.fallocate(f, 0, 0, 100, kRootCaller).ok());
    CHECK(attr(fs, f).st_size == 20000);
  }
  SECTION("KEEP_SIZE allocates without growing") {
    REQUIRE(write(fs, f, 0, std::string(100, 'a')) == 100);
    REQUIRE(fs.fallocate(f, FALLOC_FL_KEEP_SIZE, 0, MiB, kRootCaller).ok());
    CHECK(attr(fs, f).st_size == 100);
    CHECK(alloc_blocks(fs, f) == MiB / kBlk);
    CHECK(used_blocks(fs) == MiB / kBlk);
    CHECK(read(fs, f, 0, 200) == std::string(100, 'a'));
    CHECK(fs.lseek(f, 0, SEEK_HOLE).value() == 100);
    REQUIRE(write(fs, f, 500000, "x") == 1);
    CHECK(attr(fs, f).st_size == 500001);
    CHECK(read(fs, f, 100, 500000 - 100) == zeros(500000 - 100));
    CHECK(used_blocks(fs) == MiB / kBlk);
  }
  SECTION("truncate to the same size gives back what KEEP_SIZE left past EOF") {
    // shmem_setattr: newsize <= oldsize with blocks allocated -> shmem_truncate_range(newsize,
    // -1), which frees the preallocation and stamps the times; once nothing is left, a second
    // truncate to the same size stamps nothing.
    REQUIRE(write(fs, f, 0, std::string(100, 'a')) == 100);
    REQUIRE(fs.fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 4 * kBlk, kRootCaller).ok());
    CHECK(alloc_blocks(fs, f) == 4);
    REQUIRE(fs.setattr(f, size_attr(100), kRootCaller).ok());
    CHECK(attr(fs, f).st_size == 100);
    CHECK(alloc_blocks(fs, f) == 1);
    CHECK(used_blocks(fs) == 1);
    CHECK(read(fs, f, 0, 100) == std::string(100, 'a'));
    REQUIRE(fs.setattr(f, size_attr(0), kRootCaller).ok());
    REQUIRE(fs.fallocate(f, FALLOC_FL_KEEP_SIZE, 0, kBlk, kRootCaller).ok());
    REQUIRE(fs.setattr(f, size_attr(0), kRootCaller).ok());
    CHECK(alloc_blocks(fs, f) == 0);
    const auto before = attr(fs, f);
    tick();
    REQUIRE(fs.setattr(f, size_attr(0), kRootCaller).ok());
    CHECK(same(attr(fs, f).st_mtim, before.st_mtim));
  }
  SECTION("a write across preallocated and unallocated blocks") {
    REQUIRE(fs.fallocate(f, FALLOC_FL_KEEP_SIZE, 2 * kBlk, 2 * kBlk, kRootCaller).ok());
    const std::string data = pattern(5 * kBlk - 10);
    REQUIRE(write(fs, f, 5, data) == data.size());
    CHECK(read(fs, f, 0, 5 * kBlk) == zeros(5) + data);
    CHECK(alloc_blocks(fs, f) == 5);
    CHECK(used_blocks(fs) == 5);
    CHECK(fs.lseek(f, 0, SEEK_HOLE).value() == 5 * kBlk - 5);
    CHECK(fs.lseek(f, 0, SEEK_DATA).value() == 0);
  }
  SECTION("PUNCH_HOLE|KEEP_SIZE zeroes partial blocks and frees whole ones") {
    const std::string data = pattern(5 * kBlk);
    REQUIRE(write(fs, f, 0, data) == data.size());
    const uint64_t from = 1000, to = 3 * kBlk + 100;
    REQUIRE(
        fs.fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, from, to - from, kRootCaller)
            .ok());
    CHECK(attr(fs, f).st_size == static_cast<off_t>(5 * kBlk));
    CHECK(alloc_blocks(fs, f) == 3); // blocks 1 and 2 went, 0, 3 and 4 are partly kept
    CHECK(used_blocks(fs) == 3);
    CHECK(read(fs, f, 0, 5 * kBlk) == data.substr(0, from) + zeros(to - from) + data.substr(to));
    CHECK(fs.lseek(f, 0, SEEK_HOLE).value() == kBlk);
    CHECK(fs.lseek(f, kBlk, SEEK_DATA).value() == 3 * kBlk);

    SECTION("inside one block") {
      REQUIRE(fs.fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * kBlk + 10, 20,
                           kRootCaller)
                  .ok());
      CHECK(alloc_blocks(fs, f) == 3);
      CHECK(read(fs, f, 4 * kBlk, 40) ==
            data.substr(4 * kBlk, 10) + zeros(20) + data.substr(4 * kBlk + 30, 10));
    }
    SECTION("beyond EOF changes nothing") {
      REQUIRE(
          fs.fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10 * kBlk, kBlk, kRootCaller)
              .ok());
      CHECK(attr(fs, f).st_size == static_cast<off_t>(5 * kBlk));
      CHECK(alloc_blocks(fs, f) == 3);
    }
    SECTION("punching preallocated blocks frees them too") {
      REQUIRE(fs.fallocate(f, FALLOC_FL_KEEP_SIZE, 5 * kBlk, 4 * kBlk, kRootCaller).ok());
      CHECK(alloc_blocks(fs, f) == 7);
      REQUIRE(fs.fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * kBlk, 8 * kBlk,
                           kRootCaller)
                  .ok());
      CHECK(alloc_blocks(fs, f) == 2);
      CHECK(used_blocks(fs) == 2);
    }
  }
  SECTION("unsupported modes and bad arguments") {
    CHECK(fs.fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, kBlk, kRootCaller).error() == EOPNOTSUPP);
    CHECK(fs.fallocate(f, FALLOC_FL_ZERO_RANGE, 0, kBlk, kRootCaller).error() == EOPNOTSUPP);
    CHECK(
        fs.fallocate(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, kBlk, kRootCaller).error() ==
        EOPNOTSUPP);
    CHECK(fs.fallocate(f, FALLOC_FL_COLLAPSE_RANGE, 0, kBlk, kRootCaller).error() == EOPNOTSUPP);
    CHECK(fs.fallocate(f, FALLOC_FL_INSERT_RANGE, 0, kBlk, kRootCaller).error() == EOPNOTSUPP);
    CHECK(fs.fallocate(f, 0, 0, 0, kRootCaller).error() == EINVAL);
    CHECK(fs.fallocate(f, 0, static_cast<uint64_t>(LLONG_MAX), 2, kRootCaller).error() == EFBIG);
    const uint64_t d = mkdir_(fs, kRootIno, "d");
    CHECK(fs.fallocate(d, 0, 0, kBlk, kRootCaller).error() == EISDIR);
    auto fifo = fs.mknod(kRootIno, "fifo", S_IFIFO | 0600, 0, kRootCaller);
    REQUIRE(fifo.ok());
    CHECK(fs.fallocate(fifo->st_ino, 0, 0, kBlk, kRootCaller).error() == ENODEV);
    CHECK(fs.fallocate(999999, 0, 0, kBlk, kRootCaller).error() == ENOENT);
    CHECK(attr(fs, f).st_size == 0);
    CHECK(used_blocks(fs) == 0);
  }
}

TEST_CASE("Filesystem: fallocate beyond the free space is all or nothing", "[fs][data]") {
  TestFs t(MiB); // 256 blocks
  Filesystem &fs = *t;
  const uint64_t a = mkfile(fs, kRootIno, "a");
  REQUIRE(write(fs, a, 0, pattern(100 * kBlk)) == 100 * kBlk);
  const uint64_t b = mkfile(fs, kRootIno, "b");
  REQUIRE(write(fs, b, 0, "b") == 1);

  auto r = fs.fallocate(b, 0, 0, 200 * kBlk, kRootCaller);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == ENOSPC);
  CHECK(attr(fs, b).st_size == 1);
  CHECK(alloc_blocks(fs, b) == 1);
  CHECK(used_blocks(fs) == 101);
  CHECK(fs.fallocate(b, FALLOC_FL_KEEP_SIZE, kBlk, 155 * kBlk, kRootCaller)
            .ok()); // exactly what is free
  CHECK(used_blocks(fs) == 256);
}

TEST_CASE("Filesystem: fallocate over already allocated blocks needs no free space", "[fs][data]") {
  // tmpfs only refuses up front a range larger than the whole filesystem; blocks a file
  // already has cost nothing, so this succeeds there.
  TestFs t(MiB); // 256 blocks
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "f");
  REQUIRE(write(fs, f, 0, pattern(200 * kBlk)) == 200 * kBlk);
  REQUIRE(used_blocks(fs) == 200);

  auto same_range = fs.fallocate(f, 0, 0, 200 * kBlk, kRootCaller);
  CHECK(same_range.error() == 0);
  auto grow = fs.fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 250 * kBlk, kRootCaller); // 50 new of 56 free
  CHECK(grow.error() == 0);
  CHECK(used_blocks(fs) == 250);
}

TEST_CASE("Filesystem: lseek SEEK_DATA and SEEK_HOLE", "[fs][data]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "f");
  // Layout: data [0,1), hole [1,3), data [3,4), unwritten [4,6) in blocks; size 6 blocks.
  REQUIRE(write(fs, f, 0, pattern(kBlk)) == kBlk);
  REQUIRE(write(fs, f, 3 * kBlk, pattern(kBlk)) == kBlk);
  REQUIRE(fs.fallocate(f, 0, 4 * kBlk, 2 * kBlk, kRootCaller).ok());
  const uint64_t size = 6 * kBlk;
  REQUIRE(attr(fs, f).st_size == static_cast<off_t>(size));

  auto seek = [&](int64_t off, int whence) { return fs.lseek(f, off, whence); };
  CHECK(seek(0, SEEK_DATA).value() == 0);
  CHECK(seek(100, SEEK_DATA).value() == 100);
  CHECK(seek(0, SEEK_HOLE).value() == kBlk);
  CHECK(seek(100, SEEK_HOLE).value() == kBlk);
  CHECK(seek(kBlk, SEEK_DATA).value() == 3 * kBlk);
  CHECK(seek(kBlk + 5, SEEK_DATA).value() == 3 * kBlk);
  CHECK(seek(kBlk + 5, SEEK_HOLE).value() == kBlk + 5);
  CHECK(seek(3 * kBlk + 7, SEEK_DATA).value() == 3 * kBlk + 7);
  CHECK(seek(3 * kBlk, SEEK_HOLE).value() == 4 * kBlk); // unwritten counts as a hole
  CHECK(seek(4 * kBlk, SEEK_DATA).error() == ENXIO);    // only unwritten until EOF
  CHECK(seek(5 * kBlk, SEEK_HOLE).value() == 5 * kBlk);

  SECTION("at and after EOF, and before 0: ENXIO") {
    CHECK(seek(static_cast<int64_t>(size), SEEK_DATA).error() == ENXIO);
    CHECK(seek(static_cast<int64_t>(size), SEEK_HOLE).error() == ENXIO);
    CHECK(seek(static_cast<int64_t>(size) + 1, SEEK_HOLE).error() == ENXIO);
    CHECK(seek(-1, SEEK_DATA).error() == ENXIO);
    CHECK(seek(-1, SEEK_HOLE).error() == ENXIO);
  }
  SECTION("other whence values are not ours") {
    CHECK(seek(0, SEEK_SET).error() == EINVAL);
    CHECK(seek(0, SEEK_CUR).error() == EINVAL);
    CHECK(seek(0, SEEK_END).error() == EINVAL);
    CHECK(fs.lseek(999999, 0, SEEK_DATA).error() == ENOENT);
  }
  SECTION("the end of the file is a hole") {
    const uint64_t g = mkfile(fs, kRootIno, "g");
    REQUIRE(write(fs, g, 0, pattern(10000)) == 10000);
    CHECK(fs.lseek(g, 0, SEEK_HOLE).value() == 10000);
    CHECK(fs.lseek(g, 9999, SEEK_DATA).value() == 9999);
    CHECK(fs.lseek(g, 9999, SEEK_HOLE).value() == 10000);
    // Preallocation past EOF does not move it.
    REQUIRE(fs.fallocate(g, FALLOC_FL_KEEP_SIZE, 0, 10 * kBlk, kRootCaller).ok());
    CHECK(fs.lseek(g, 0, SEEK_HOLE).value() == 10000);
    // Growing by truncate: the last data block now ends the data, the rest is hole.
    REQUIRE(fs.setattr(g, size_attr(MiB), kRootCaller).ok());
    CHECK(fs.lseek(g, 0, SEEK_HOLE).value() == 3 * kBlk);
    CHECK(fs.lseek(g, 10000, SEEK_DATA).value() == 10000);
    CHECK(fs.lseek(g, 3 * kBlk, SEEK_DATA).error() == ENXIO);
  }
  SECTION("an empty file has neither") {
    const uint64_t g = mkfile(fs, kRootIno, "g");
    CHECK(fs.lseek(g, 0, SEEK_DATA).error() == ENXIO);
    CHECK(fs.lseek(g, 0, SEEK_HOLE).error() == ENXIO);
  }
}

TEST_CASE("Filesystem: copy_file_range", "[fs][data]") {
  TestFs t(32 * MiB);
  Filesystem &fs = *t;
  const uint64_t src = mkfile(fs, kRootIno, "src");
  const std::string head = pattern(10000, 3), tail = pattern(100, 4);
  REQUIRE(write(fs, src, 0, head) == head.size());
  REQUIRE(write(fs, src, 3 * MiB, tail) == tail.size());
  const uint64_t size = 3 * MiB + tail.size();
  const std::string content = read(fs, src, 0, size);
  REQUIRE(content.size() == size);

  SECTION("the whole file, holes becoming written zeros") {
    const uint64_t dst = mkfile(fs, kRootIno, "dst");
    auto n = fs.copy_file_range(src, 0, dst, 0, size, kRootCaller);
    REQUIRE(n.ok());
    CHECK(*n == size);
    CHECK(attr(fs, dst).st_size == static_cast<off_t>(size));
    CHECK(read(fs, dst, 0, size) == content);
    CHECK(alloc_blocks(fs, dst) == (size + kBlk - 1) / kBlk);
    CHECK(read(fs, src, 0, size) == content);
  }
  SECTION("a range at offsets in both files") {
    const uint64_t dst = mkfile(fs, kRootIno, "dst");
    REQUIRE(write(fs, dst, 0, std::string(200, 'd')) == 200);
    auto n = fs.copy_file_range(src, 5000, dst, 123, 3000, kRootCaller);
    REQUIRE(n.ok());
    CHECK(*n == 3000);
    CHECK(attr(fs, dst).st_size == 3123);
    CHECK(read(fs, dst, 0, 4000) == std::string(123, 'd') + head.substr(5000, 3000));
  }
  SECTION("within one file, to a range that does not overlap") {
    auto n = fs.copy_file_range(src, 0, src, 4 * MiB, 10000, kRootCaller);
    REQUIRE(n.ok());
    CHECK(*n == 10000);
    CHECK(attr(fs, src).st_size == static_cast<off_t>(4 * MiB + 10000));
    CHECK(read(fs, src, 4 * MiB, 20000) == head);
    CHECK(read(fs, src, 0, size) == content);
  }
  SECTION("at or across the source's EOF") {
    const uint64_t dst = mkfile(fs, kRootIno, "dst");
    CHECK(fs.copy_file_range(src, size, dst, 0, 100, kRootCaller).value() == 0);
    CHECK(fs.copy_file_range(src, size + 10, dst, 0, 100, kRootCaller).value() == 0);
    CHECK(attr(fs, dst).st_size == 0);
    CHECK(fs.copy_file_range(src, size - 10, dst, 0, 100, kRootCaller).value() == 10);
    CHECK(read(fs, dst, 0, 100) == tail.substr(tail.size() - 10));
  }
  SECTION("errors") {
    const uint64_t d = mkdir_(fs, kRootIno, "d");
    const uint64_t dst = mkfile(fs, kRootIno, "dst");
    CHECK(fs.copy_file_range(d, 0, dst, 0, 10, kRootCaller).error() == EISDIR);
    CHECK_FALSE(fs.copy_file_range(src, 0, d, 0, 10, kRootCaller).ok());
    CHECK(fs.copy_file_range(999999, 0, dst, 0, 10, kRootCaller).error() == ENOENT);
    CHECK(attr(fs, dst).st_size == 0);
  }
  SECTION("a full filesystem gives a short copy") {
    TestFs small(MiB);
    Filesystem &sfs = *small;
    const uint64_t a = mkfile(sfs, kRootIno, "a");
    const uint64_t b = mkfile(sfs, kRootIno, "b");
    REQUIRE(write(sfs, a, 0, pattern(600 * KiB)) == 600 * KiB);
    auto n = sfs.copy_file_range(a, 0, b, 0, 600 * KiB, kRootCaller);
    REQUIRE(n.ok());
    CHECK(*n == 1 * MiB - 600 * KiB);
    CHECK(read(sfs, b, 0, MiB) == read(sfs, a, 0, *n));
  }
}
