// Filesystem: the tmpfs-semantics model, driven directly (no FUSE) over a real anonymous arena:
// its limits and accounting (statfs, blocks and inodes running out, lookup counts). The
// operations are tested in test_filesystem_namespace.cpp, test_filesystem_data.cpp and
// test_filesystem_attributes.cpp.
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

TEST_CASE("Filesystem: statfs", "[fs][limits]") {
  TestFs t(8 * MiB, 100);
  Filesystem &fs = *t;
  struct statvfs st = fs.statfs();
  CHECK(st.f_bsize == 4096);
  CHECK(st.f_frsize == 4096);
  CHECK(st.f_blocks == 2048);
  CHECK(st.f_bfree == 2048);
  CHECK(st.f_bavail == 2048);
  CHECK(st.f_files == 100);
  CHECK(st.f_ffree == 99); // the root
  CHECK(st.f_favail == 99);
  CHECK(st.f_namemax == 255);

  const uint64_t f = mkfile(fs, kRootIno, "f");
  REQUIRE(write(fs, f, 0, pattern(10 * kBlk)) == 10 * kBlk);
  CHECK(fs.statfs().f_bfree == 2038);
  CHECK(fs.statfs().f_bavail == 2038);
  const uint64_t g = mkfile(fs, kRootIno, "g");
  REQUIRE(write(fs, g, 7, "x") == 1);
  CHECK(fs.statfs().f_bfree == 2037);
  REQUIRE(write(fs, g, 8, "y") == 1); // same block
  CHECK(fs.statfs().f_bfree == 2037);
  CHECK(fs.statfs().f_ffree == 97);

  mkdir_(fs, kRootIno, "d");
  REQUIRE(fs.symlink(kRootIno, "s", "f", kRootCaller).ok());
  CHECK(fs.statfs().f_ffree == 95);
  CHECK(t->inode_count() == 5);

  SECTION("a hard link takes an inode slot, as on tmpfs") {
    REQUIRE(fs.link(f, kRootIno, "l").ok());
    CHECK(fs.statfs().f_ffree == 94);
    CHECK(t->inode_count() == 5);
    REQUIRE(fs.unlink(kRootIno, "l").ok());
    CHECK(fs.statfs().f_ffree == 95);
    // The last link's slot and the data go when the file is unlinked and not open, as on
    // tmpfs, even though the kernel still holds references (from mknod and from link).
    REQUIRE(fs.unlink(kRootIno, "f").ok());
    CHECK(fs.statfs().f_ffree == 96);
    CHECK(fs.statfs().f_bfree == 2047);
    CHECK(alive(fs, f));
    fs.forget(f, 2);
    CHECK_FALSE(alive(fs, f));
    CHECK(fs.statfs().f_ffree == 96);
    CHECK(fs.statfs().f_bfree == 2047);
  }
  SECTION("rename over a file releases the replaced inode's slot and blocks") {
    REQUIRE(fs.rename(kRootIno, "g", kRootIno, "f", 0, kRootCaller).ok());
    CHECK(fs.statfs().f_ffree == 96);
    CHECK(fs.statfs().f_bfree == 2047);
    fs.forget(f, 1);
    CHECK(fs.statfs().f_ffree == 96);
  }
  SECTION("an open file keeps its slot and blocks after unlink until released") {
    REQUIRE(fs.open(g, O_RDONLY, kRootCaller).ok());
    REQUIRE(fs.unlink(kRootIno, "g").ok());
    CHECK(fs.statfs().f_ffree == 95);
    CHECK(fs.statfs().f_bfree == 2037);
    fs.release(g);
    CHECK(fs.statfs().f_ffree == 96);
    CHECK(fs.statfs().f_bfree == 2038);
  }
  SECTION("no inode limit shows as zero") {
    TestFs u(4 * MiB, kUnlimited);
    CHECK(u->statfs().f_files == 0);
    CHECK(u->statfs().f_ffree == 0);
    CHECK(u->statfs().f_blocks == 1024);
  }
  SECTION("a size that is not a whole number of frames") {
    TestFs u(3 * MiB + 5 * kBlk, 10);
    CHECK(u->statfs().f_blocks == 3 * MiB / kBlk + 5);
  }
}

TEST_CASE("Filesystem: ENOSPC when blocks run out", "[fs][limits]") {
  TestFs t(MiB); // 256 blocks
  Filesystem &fs = *t;
  const uint64_t a = mkfile(fs, kRootIno, "a");
  const std::string big = pattern(2 * MiB);

  auto w = fs.write(a, 0, big.data(), big.size(), kRootCaller);
  REQUIRE(w.ok());
  CHECK(*w == MiB); // a short write, as far as the space went
  CHECK(attr(fs, a).st_size == static_cast<off_t>(MiB));
  CHECK(fs.statfs().f_bfree == 0);
  CHECK(read(fs, a, 0, 2 * MiB) == big.substr(0, MiB));

  CHECK(fs.write(a, MiB, "x", 1, kRootCaller).error() == ENOSPC);
  CHECK(attr(fs, a).st_size == static_cast<off_t>(MiB));
  const uint64_t b = mkfile(fs, kRootIno, "b");
  CHECK(fs.write(b, 0, "x", 1, kRootCaller).error() == ENOSPC);
  CHECK(attr(fs, b).st_size == 0);
  CHECK(fs.fallocate(b, 0, 0, 1, kRootCaller).error() == ENOSPC);

  // Overwriting blocks a file has needs no space.
  CHECK(write(fs, a, 10, "hello") == 5);

  SECTION("a write that starts in an allocated block is short") {
    REQUIRE(fs.setattr(a, size_attr(MiB - 100), kRootCaller).ok()); // keeps the last block
    REQUIRE(fs.statfs().f_bfree == 0);
    auto s = fs.write(a, MiB - 200, std::string(300, 'z').data(), 300, kRootCaller);
    REQUIRE(s.ok());
    CHECK(*s == 200);
    CHECK(attr(fs, a).st_size == static_cast<off_t>(MiB));
  }
  SECTION("space comes back after unlink, and stays back after forget") {
    REQUIRE(fs.unlink(kRootIno, "a").ok());
    CHECK(fs.statfs().f_bfree == 256);
    fs.forget(a, 1);
    CHECK(fs.statfs().f_bfree == 256);
    CHECK(write(fs, b, 0, big.substr(0, MiB)) == MiB);
    CHECK(read(fs, b, 0, MiB) == big.substr(0, MiB));
  }
  SECTION("an open file's space comes back at release") {
    REQUIRE(fs.open(a, O_RDONLY, kRootCaller).ok());
    REQUIRE(fs.unlink(kRootIno, "a").ok());
    CHECK(fs.statfs().f_bfree == 0);
    CHECK(fs.write(b, 0, "x", 1, kRootCaller).error() == ENOSPC);
    fs.release(a);
    CHECK(fs.statfs().f_bfree == 256);
    CHECK(write(fs, b, 0, "x") == 1);
  }
  SECTION("space comes back after truncate") {
    REQUIRE(fs.setattr(a, size_attr(0), kRootCaller).ok());
    CHECK(fs.statfs().f_bfree == 256);
    CHECK(write(fs, b, 0, "x") == 1);
  }
}

TEST_CASE("Filesystem: ENOSPC when inodes run out", "[fs][limits]") {
  TestFs t(4 * MiB, 4);
  Filesystem &fs = *t;
  const uint64_t f1 = mkfile(fs, kRootIno, "f1");
  mkfile(fs, kRootIno, "f2");
  mkdir_(fs, kRootIno, "d");
  CHECK(fs.statfs().f_ffree == 0);

  CHECK(fs.mknod(kRootIno, "x", S_IFREG | 0644, 0, kUser).error() == ENOSPC);
  CHECK(fs.mkdir(kRootIno, "x", 0755, kUser).error() == ENOSPC);
  CHECK(fs.symlink(kRootIno, "x", "t", kUser).error() == ENOSPC);
  CHECK(fs.create(kRootIno, "x", 0644, kUser).error() == ENOSPC);
  CHECK(fs.link(f1, kRootIno, "x").error() == ENOSPC);
  CHECK(fs.lookup(kRootIno, "x").error() == ENOENT);
  CHECK(attr(fs, f1).st_nlink == 1u);
  CHECK(t->inode_count() == 4);
  CHECK(attr(fs, kRootIno).st_size == 100);

  SECTION("an unlinked file's slot comes back at once") {
    REQUIRE(fs.unlink(kRootIno, "f1").ok());
    CHECK(fs.statfs().f_ffree == 1);
    mkfile(fs, kRootIno, "x");
    CHECK(fs.statfs().f_ffree == 0);
    fs.forget(f1, 1);
    CHECK(fs.statfs().f_ffree == 0);
  }
  SECTION("an open file's slot comes back at release") {
    REQUIRE(fs.open(f1, O_RDONLY, kRootCaller).ok());
    REQUIRE(fs.unlink(kRootIno, "f1").ok());
    CHECK(fs.mknod(kRootIno, "x", S_IFREG | 0644, 0, kUser).error() == ENOSPC);
    fs.release(f1);
    mkfile(fs, kRootIno, "x");
  }
  SECTION("rmdir gives the slot back") {
    REQUIRE(fs.rmdir(kRootIno, "d").ok());
    mkfile(fs, kRootIno, "x");
  }
}

TEST_CASE("Filesystem: lookup counts keep unlinked inodes alive", "[fs][limits]") {
  TestFs t;
  Filesystem &fs = *t;

  SECTION("an unlinked inode with lookups stays known until forgotten") {
    const uint64_t f = mkfile(fs, kRootIno, "f"); // one lookup
    REQUIRE(write(fs, f, 0, "hello") == 5);
    REQUIRE(fs.lookup(kRootIno, "f").ok()); // two
    REQUIRE(fs.unlink(kRootIno, "f").ok());
    CHECK(fs.lookup(kRootIno, "f").error() == ENOENT);
    CHECK(attr(fs, f).st_nlink == 0u);
    CHECK(used_blocks(fs) == 0); // not open: the data is gone already, as on tmpfs
    CHECK(t->inode_count() == 2);
    fs.forget(f, 1);
    CHECK(alive(fs, f));
    fs.forget(f, 1);
    CHECK_FALSE(alive(fs, f));
    CHECK(t->inode_count() == 1);
    Bytes sink;
    CHECK(fs.read(f, 0, 10, sink).error() == ENOENT);
    fs.forget(f, 1); // a stray forget for a dropped inode is harmless
  }
  SECTION("an unlinked inode that is open stays readable and writable until released") {
    const uint64_t f = mkfile(fs, kRootIno, "f");
    REQUIRE(write(fs, f, 0, "hello") == 5);
    REQUIRE(fs.open(f, O_RDONLY, kRootCaller).ok());
    REQUIRE(fs.unlink(kRootIno, "f").ok());
    CHECK(read(fs, f, 0, 10) == "hello");
    CHECK(write(fs, f, 5, std::string(2 * kBlk, 'w')) == 2 * kBlk);
    CHECK(read(fs, f, 0, 7) == "helloww");
    CHECK(used_blocks(fs) == 3);
    fs.release(f);
    CHECK(used_blocks(fs) == 0);
    CHECK(alive(fs, f)); // the kernel still remembers it
    fs.forget(f, 1);
    CHECK_FALSE(alive(fs, f));
    CHECK(used_blocks(fs) == 0);
  }
  SECTION("forgetting a linked inode keeps it") {
    const uint64_t f = mkfile(fs, kRootIno, "f");
    fs.forget(f, 1);
    CHECK(alive(fs, f));
    CHECK(ino_of(fs, kRootIno, "f") == f);
  }
  SECTION("open + unlink + release frees the inode") {
    const uint64_t f = mkfile(fs, kRootIno, "f");
    REQUIRE(write(fs, f, 0, pattern(3 * kBlk)) == 3 * kBlk);
    fs.forget(f, 1); // the kernel dropped its reference; only the open file remains
    REQUIRE(fs.open(f, O_RDONLY, kRootCaller).ok());
    REQUIRE(fs.unlink(kRootIno, "f").ok());
    CHECK(alive(fs, f));
    CHECK(read(fs, f, 0, 3 * kBlk).size() == 3 * kBlk);
    CHECK(used_blocks(fs) == 3);
    fs.release(f);
    CHECK_FALSE(alive(fs, f));
    CHECK(used_blocks(fs) == 0);
  }
  SECTION("two opens need two releases") {
    const uint64_t f = mkfile(fs, kRootIno, "f");
    fs.forget(f, 1);
    REQUIRE(fs.open(f, O_RDONLY, kRootCaller).ok());
    REQUIRE(fs.open(f, O_RDONLY, kRootCaller).ok());
    REQUIRE(fs.unlink(kRootIno, "f").ok());
    fs.release(f);
    CHECK(alive(fs, f));
    fs.release(f);
    CHECK_FALSE(alive(fs, f));
  }
  SECTION("link counts a lookup, as its reply is an entry") {
    const uint64_t f = mkfile(fs, kRootIno, "f");
    REQUIRE(fs.link(f, kRootIno, "g").ok());
    REQUIRE(fs.unlink(kRootIno, "f").ok());
    REQUIRE(fs.unlink(kRootIno, "g").ok());
    fs.forget(f, 1);
    CHECK(alive(fs, f));
    fs.forget(f, 1);
    CHECK_FALSE(alive(fs, f));
  }
  SECTION("create counts one lookup and one open") {
    auto c = fs.create(kRootIno, "c", 0644, kUser);
    REQUIRE(c.ok());
    const uint64_t ino = c->st_ino;
    REQUIRE(fs.unlink(kRootIno, "c").ok());
    fs.release(ino);
    CHECK(alive(fs, ino));
    fs.forget(ino, 1);
    CHECK_FALSE(alive(fs, ino));
  }
  SECTION("readdirplus counts a lookup per entry, not for '.' and '..'") {
    const uint64_t d = mkdir_(fs, kRootIno, "d");
    const uint64_t f = mkfile(fs, d, "f");
    fs.forget(f, 1);
    auto entries = readdir(fs, d, 0, SIZE_MAX, true);
    REQUIRE(entries.size() == 3);
    REQUIRE(fs.unlink(d, "f").ok());
    CHECK(alive(fs, f));
    fs.forget(f, 1);
    CHECK_FALSE(alive(fs, f));
    // '.' was not counted: forgetting d's one lookup after rmdir drops it.
    REQUIRE(fs.rmdir(kRootIno, "d").ok());
    fs.forget(d, 1);
    CHECK_FALSE(alive(fs, d));
  }
  SECTION("plain readdir counts nothing") {
    const uint64_t f = mkfile(fs, kRootIno, "f");
    fs.forget(f, 1);
    REQUIRE(readdir(fs, kRootIno).size() == 3);
    REQUIRE(fs.unlink(kRootIno, "f").ok());
    CHECK_FALSE(alive(fs, f));
  }
  SECTION("readdirplus counts only the entries the sink took") {
    const uint64_t d = mkdir_(fs, kRootIno, "d");
    const uint64_t x = mkfile(fs, d, "x");
    const uint64_t y = mkfile(fs, d, "y");
    fs.forget(x, 1);
    fs.forget(y, 1);
    REQUIRE(readdir(fs, d, 0, 3, true).size() == 3); // ".", "..", "y" (newest first)
    REQUIRE(fs.unlink(d, "x").ok());
    REQUIRE(fs.unlink(d, "y").ok());
    CHECK_FALSE(alive(fs, x));
    CHECK(alive(fs, y));
  }
}
