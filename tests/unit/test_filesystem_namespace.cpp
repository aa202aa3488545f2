// Filesystem: the name space (lookup, mknod, mkdir, symlink, link, unlink, rmdir, rename,
// O_TMPFILE, readdir), driven directly (no FUSE) over a real anonymous arena.
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

TEST_CASE("Filesystem: the root directory", "[fs]") {
  SECTION("defaults") {
    TestFs t;
    const auto st = attr(*t, kRootIno);
    CHECK(st.st_ino == kRootIno);
    CHECK(st.st_mode == (S_IFDIR | 01777));
    CHECK(st.st_nlink == 2u);
    CHECK(st.st_size == 40);
    CHECK(st.st_uid == 0u);
    CHECK(st.st_blocks == 0);
    CHECK(t->inode_count() == 1);
    CHECK(dotdot(*t, kRootIno) == kRootIno);
  }
  SECTION("configured owner and mode") {
    FsConfig c;
    c.root_mode = 040750; // the type bits are the filesystem's business
    c.root_uid = 1000;
    c.root_gid = 100;
    TestFs t(4 * MiB, kUnlimited, c);
    const auto st = attr(*t, kRootIno);
    CHECK(st.st_mode == (S_IFDIR | 0750));
    CHECK(st.st_uid == 1000u);
    CHECK(st.st_gid == 100u);
  }
}

TEST_CASE("Filesystem: mkdir, mknod, symlink create entries with tmpfs attributes", "[fs]") {
  TestFs t;
  Filesystem &fs = *t;

  auto d = fs.mkdir(kRootIno, "d", 0750, kUser);
  REQUIRE(d.ok());
  CHECK(S_ISDIR(d->st_mode));
  CHECK((d->st_mode & 07777) == 0750);
  CHECK(d->st_nlink == 2u);
  CHECK(d->st_size == 40);
  CHECK(d->st_uid == 1000u);
  CHECK(d->st_gid == 1000u);
  CHECK(attr(fs, kRootIno).st_nlink == 3u);
  CHECK(attr(fs, kRootIno).st_size == 60);

  auto f = fs.mknod(kRootIno, "f", S_IFREG | 0640, 0, kUser);
  REQUIRE(f.ok());
  CHECK(f->st_mode == (S_IFREG | 0640));
  CHECK(f->st_nlink == 1u);
  CHECK(f->st_size == 0);
  CHECK(f->st_blocks == 0);
  CHECK(f->st_blksize == 4096);

  auto plain = fs.mknod(kRootIno, "plain", 0600, 0, kUser); // no type: a regular file
  REQUIRE(plain.ok());
  CHECK(plain->st_mode == (S_IFREG | 0600));

  auto fifo = fs.mknod(kRootIno, "fifo", S_IFIFO | 0600, 0, kUser);
  REQUIRE(fifo.ok());
  CHECK(S_ISFIFO(fifo->st_mode));
  auto chr = fs.mknod(kRootIno, "null", S_IFCHR | 0666, makedev(1, 3), kUser);
  REQUIRE(chr.ok());
  CHECK(S_ISCHR(chr->st_mode));
  CHECK(chr->st_rdev == makedev(1, 3));
  auto sock = fs.mknod(kRootIno, "sock", S_IFSOCK | 0600, 0, kUser);
  REQUIRE(sock.ok());
  CHECK(S_ISSOCK(sock->st_mode));

  CHECK(fs.mknod(kRootIno, "x", S_IFDIR | 0755, 0, kUser).error() == EINVAL);
  CHECK(fs.mknod(kRootIno, "x", S_IFLNK | 0777, 0, kUser).error() == EINVAL);

  auto s = fs.symlink(kRootIno, "s", "target/path", kUser);
  REQUIRE(s.ok());
  CHECK(s->st_mode == (S_IFLNK | 0777));
  CHECK(s->st_size == 11);
  CHECK(s->st_blocks == 0); // short targets live in the inode
  CHECK(fs.readlink(s->st_ino).value() == "target/path");
  auto longer = fs.symlink(kRootIno, "long", std::string(128, 't'), kUser);
  REQUIRE(longer.ok());
  CHECK(longer->st_blocks == 8); // a page, as on tmpfs
  CHECK(fs.readlink(f->st_ino).error() == EINVAL);
  CHECK(fs.readlink(12345).error() == ENOENT);

  // Every node has a fresh inode number and is found by name.
  std::set<uint64_t> inos{kRootIno};
  for (auto *r : {&d, &f, &plain, &fifo, &chr, &sock, &s, &longer})
    CHECK(inos.insert((*r)->st_ino).second);
  CHECK(ino_of(fs, kRootIno, "d") == d->st_ino);
  CHECK(ino_of(fs, kRootIno, "s") == s->st_ino);
  CHECK(names(fs, kRootIno) ==
        std::set<std::string>{"d", "f", "plain", "fifo", "null", "sock", "s", "long"});
  CHECK(attr(fs, kRootIno).st_size == 40 + 8 * 20);
  CHECK(t->inode_count() == 9);

  SECTION("existing names give EEXIST and change nothing") {
    CHECK(fs.mknod(kRootIno, "f", S_IFREG | 0644, 0, kUser).error() == EEXIST);
    CHECK(fs.mkdir(kRootIno, "f", 0755, kUser).error() == EEXIST);
    CHECK(fs.symlink(kRootIno, "d", "x", kUser).error() == EEXIST);
    CHECK(fs.create(kRootIno, "s", 0644, kUser).error() == EEXIST);
    CHECK(fs.link(f->st_ino, kRootIno, "d").error() == EEXIST);
    CHECK(attr(fs, kRootIno).st_size == 40 + 8 * 20);
    CHECK(attr(fs, kRootIno).st_nlink == 3u);
    CHECK(t->inode_count() == 9);
  }
  SECTION("lookup errors") {
    CHECK(fs.lookup(kRootIno, "nope").error() == ENOENT);
    CHECK(fs.lookup(f->st_ino, "x").error() == ENOTDIR);
    CHECK(fs.lookup(999999, "x").error() == ENOENT);
    CHECK(fs.mknod(f->st_ino, "x", S_IFREG | 0644, 0, kUser).error() == ENOTDIR);
    CHECK(fs.mkdir(999999, "x", 0755, kUser).error() == ENOENT);
    CHECK(fs.getattr(999999).error() == ENOENT);
  }
  SECTION("create returns a regular file") {
    auto c = fs.create(d->st_ino, "c", 0600, kUser);
    REQUIRE(c.ok());
    CHECK(c->st_mode == (S_IFREG | 0600));
    CHECK(ino_of(fs, d->st_ino, "c") == c->st_ino);
    fs.release(c->st_ino);
  }
}

TEST_CASE("Filesystem: names longer than 255 bytes give ENAMETOOLONG", "[fs]") {
  TestFs t;
  Filesystem &fs = *t;
  const std::string n255(255, 'a'), n256(256, 'b');

  const uint64_t f = mkfile(fs, kRootIno, n255);
  CHECK(ino_of(fs, kRootIno, n255) == f);
  const uint64_t d = mkdir_(fs, kRootIno, "d");

  CHECK(fs.mknod(kRootIno, n256, S_IFREG | 0644, 0, kUser).error() == ENAMETOOLONG);
  CHECK(fs.mkdir(kRootIno, n256, 0755, kUser).error() == ENAMETOOLONG);
  CHECK(fs.symlink(kRootIno, n256, "x", kUser).error() == ENAMETOOLONG);
  CHECK(fs.create(kRootIno, n256, 0644, kUser).error() == ENAMETOOLONG);
  CHECK(fs.link(f, d, n256).error() == ENAMETOOLONG);
  CHECK(fs.rename(kRootIno, n255, d, n256, 0, kRootCaller).error() == ENAMETOOLONG);
  CHECK(fs.lookup(kRootIno, n256).error() == ENAMETOOLONG);
  CHECK(names(fs, d).empty());
  CHECK(fs.statfs().f_namemax == 255);

  SECTION("symlink targets up to 4095 bytes") {
    CHECK(fs.symlink(kRootIno, "ok", std::string(4095, 'x'), kUser).ok());
    CHECK(fs.symlink(kRootIno, "long", std::string(4096, 'x'), kUser).error() == ENAMETOOLONG);
    CHECK(fs.lookup(kRootIno, "long").error() == ENOENT);
  }
}

TEST_CASE("Filesystem: link", "[fs]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t d = mkdir_(fs, kRootIno, "d");
  const uint64_t f = mkfile(fs, kRootIno, "f");
  REQUIRE(write(fs, f, 0, "shared") == 6);

  auto l = fs.link(f, d, "g");
  REQUIRE(l.ok());
  CHECK(l->st_ino == f);
  CHECK(l->st_nlink == 2u);
  CHECK(attr(fs, f).st_nlink == 2u);
  CHECK(ino_of(fs, d, "g") == f);
  CHECK(attr(fs, d).st_size == 60);
  CHECK(attr(fs, d).st_nlink == 2u); // a file link is no subdirectory

  REQUIRE(fs.unlink(kRootIno, "f").ok());
  CHECK(attr(fs, f).st_nlink == 1u);
  CHECK(read(fs, ino_of(fs, d, "g"), 0, 100) == "shared");

  CHECK(fs.link(d, kRootIno, "dlink").error() == EPERM);
  CHECK(fs.link(f, d, "g").error() == EEXIST);
  CHECK(fs.link(f, f, "x").error() == ENOTDIR);
  CHECK(fs.link(999999, d, "x").error() == ENOENT);

  SECTION("an inode without links cannot get one back") {
    const uint64_t h = mkfile(fs, kRootIno, "h");
    REQUIRE(fs.unlink(kRootIno, "h").ok());
    REQUIRE(alive(fs, h)); // still looked up
    CHECK(fs.link(h, kRootIno, "h2").error() == ENOENT);
    CHECK(fs.lookup(kRootIno, "h2").error() == ENOENT);
  }
}

TEST_CASE("Filesystem: unlink and rmdir", "[fs]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t d = mkdir_(fs, kRootIno, "d");
  const uint64_t f = mkfile(fs, kRootIno, "f");
  mkfile(fs, d, "x");

  CHECK(fs.unlink(kRootIno, "d").error() == EISDIR);
  CHECK(fs.rmdir(kRootIno, "f").error() == ENOTDIR);
  CHECK(fs.rmdir(kRootIno, "d").error() == ENOTEMPTY);
  CHECK(fs.unlink(kRootIno, "nope").error() == ENOENT);
  CHECK(fs.rmdir(kRootIno, "nope").error() == ENOENT);
  CHECK(fs.unlink(f, "x").error() == ENOTDIR);
  CHECK(names(fs, kRootIno) == std::set<std::string>{"d", "f"});

  REQUIRE(fs.unlink(d, "x").ok());
  CHECK(attr(fs, d).st_size == 40);
  CHECK(names(fs, d).empty());
  REQUIRE(fs.rmdir(kRootIno, "d").ok());
  CHECK(attr(fs, kRootIno).st_nlink == 2u);
  CHECK(attr(fs, kRootIno).st_size == 60);
  CHECK(fs.lookup(kRootIno, "d").error() == ENOENT);

  SECTION("a removed directory that is still referenced is empty and closed to new entries") {
    REQUIRE(alive(fs, d));
    CHECK(attr(fs, d).st_nlink == 0u);
    CHECK(fs.mknod(d, "y", S_IFREG | 0644, 0, kUser).error() == ENOENT);
    CHECK(fs.mkdir(d, "y", 0755, kUser).error() == ENOENT);
    CHECK(fs.symlink(d, "y", "t", kUser).error() == ENOENT);
    CHECK(fs.link(f, d, "y").error() == ENOENT);
    CHECK(fs.rename(kRootIno, "f", d, "f", 0, kRootCaller).error() == ENOENT);
    CHECK(ino_of(fs, kRootIno, "f") == f);
    auto entries = readdir(fs, d);
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].name == ".");
    CHECK(entries[1].name == "..");
    fs.forget(d, 1);
    CHECK_FALSE(alive(fs, d));
  }
}

TEST_CASE("Filesystem: directory nlink and size follow tmpfs", "[fs]") {
  TestFs t;
  Filesystem &fs = *t;
  auto root = [&] { return attr(fs, kRootIno); };

  const uint64_t a = mkdir_(fs, kRootIno, "a");
  mkdir_(fs, kRootIno, "b");
  CHECK(root().st_nlink == 4u);
  CHECK(root().st_size == 80);
  mkfile(fs, kRootIno, "f");
  REQUIRE(fs.symlink(kRootIno, "s", "f", kRootCaller).ok());
  CHECK(root().st_nlink == 4u);
  CHECK(root().st_size == 120);

  mkdir_(fs, a, "c");
  mkfile(fs, a, "g");
  CHECK(attr(fs, a).st_nlink == 3u);
  CHECK(attr(fs, a).st_size == 80);
  CHECK(root().st_nlink == 4u);

  REQUIRE(fs.rmdir(a, "c").ok());
  CHECK(attr(fs, a).st_nlink == 2u);
  CHECK(attr(fs, a).st_size == 60);
  REQUIRE(fs.unlink(a, "g").ok());
  CHECK(attr(fs, a).st_size == 40);
  REQUIRE(fs.rmdir(kRootIno, "b").ok());
  CHECK(root().st_nlink == 3u);
  CHECK(root().st_size == 100);
}

TEST_CASE("Filesystem: rename", "[fs]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t a = mkdir_(fs, kRootIno, "a");
  const uint64_t b = mkdir_(fs, kRootIno, "b");
  const uint64_t f = mkfile(fs, a, "f");
  REQUIRE(write(fs, f, 0, "F") == 1);

  SECTION("within a directory") {
    REQUIRE(fs.rename(a, "f", a, "g", 0, kRootCaller).ok());
    CHECK(fs.lookup(a, "f").error() == ENOENT);
    CHECK(ino_of(fs, a, "g") == f);
    CHECK(attr(fs, a).st_size == 60);
    CHECK(attr(fs, f).st_nlink == 1u);
  }
  SECTION("across directories") {
    REQUIRE(fs.rename(a, "f", b, "f", 0, kRootCaller).ok());
    CHECK(names(fs, a).empty());
    CHECK(ino_of(fs, b, "f") == f);
    CHECK(attr(fs, a).st_size == 40);
    CHECK(attr(fs, b).st_size == 60);
    CHECK(attr(fs, a).st_nlink == 2u);
    CHECK(attr(fs, b).st_nlink == 2u);
  }
  SECTION("a directory across parents moves its '..' link") {
    const uint64_t c = mkdir_(fs, a, "c");
    REQUIRE(attr(fs, a).st_nlink == 3u);
    REQUIRE(fs.rename(a, "c", b, "c", 0, kRootCaller).ok());
    CHECK(attr(fs, a).st_nlink == 2u);
    CHECK(attr(fs, b).st_nlink == 3u);
    CHECK(attr(fs, kRootIno).st_nlink == 4u);
    CHECK(dotdot(fs, c) == b);
    CHECK(fs.rmdir(a, "c").error() == ENOENT);
    REQUIRE(fs.rmdir(b, "c").ok());
    CHECK(attr(fs, b).st_nlink == 2u);
  }
  SECTION("over an existing file, which loses its link") {
    const uint64_t g = mkfile(fs, b, "g");
    REQUIRE(write(fs, g, 0, std::string(3 * kBlk, 'G')) == 3 * kBlk);
    const uint64_t used = used_blocks(fs);
    REQUIRE(fs.rename(a, "f", b, "g", 0, kRootCaller).ok());
    CHECK(ino_of(fs, b, "g") == f);
    CHECK(read(fs, f, 0, 10) == "F");
    CHECK(attr(fs, b).st_size == 60);
    CHECK(attr(fs, a).st_size == 40);
    // The old g is unlinked and not open: its blocks come back at once, while the kernel's
    // reference keeps the inode itself known until it is forgotten.
    CHECK(attr(fs, g).st_nlink == 0u);
    CHECK(used_blocks(fs) == used - 3);
    fs.forget(g, 1);
    CHECK_FALSE(alive(fs, g));
    CHECK(used_blocks(fs) == used - 3);
  }
  SECTION("over an empty directory") {
    const uint64_t c = mkdir_(fs, a, "c");
    REQUIRE(fs.rename(kRootIno, "b", a, "c", 0, kRootCaller).ok());
    CHECK(ino_of(fs, a, "c") == b);
    CHECK(attr(fs, c).st_nlink == 0u);
    CHECK(attr(fs, a).st_nlink == 3u);
    CHECK(attr(fs, a).st_size == 80);
    CHECK(attr(fs, kRootIno).st_nlink == 3u);
    CHECK(attr(fs, kRootIno).st_size == 60);
    CHECK(dotdot(fs, b) == a);
  }
  SECTION("a directory over an empty directory in another parent") {
    const uint64_t c = mkdir_(fs, a, "c");
    const uint64_t e = mkdir_(fs, b, "e");
    REQUIRE(fs.rename(a, "c", b, "e", 0, kRootCaller).ok());
    CHECK(ino_of(fs, b, "e") == c);
    CHECK(names(fs, a) == std::set<std::string>{"f"});
    CHECK(attr(fs, a).st_nlink == 2u);
    CHECK(attr(fs, b).st_nlink == 3u);
    CHECK(attr(fs, a).st_size == 60);
    CHECK(attr(fs, b).st_size == 60);
    CHECK(attr(fs, e).st_nlink == 0u);
    CHECK(dotdot(fs, c) == b);
    fs.forget(e, 1);
    CHECK_FALSE(alive(fs, e));
  }
  SECTION("type and emptiness conflicts") {
    mkdir_(fs, b, "sub");
    mkfile(fs, b, "file");
    CHECK(fs.rename(kRootIno, "a", kRootIno, "b", 0, kRootCaller).error() == ENOTEMPTY);
    CHECK(fs.rename(a, "f", kRootIno, "b", 0, kRootCaller).error() == EISDIR);
    CHECK(fs.rename(kRootIno, "a", b, "file", 0, kRootCaller).error() == ENOTDIR);
    CHECK(names(fs, kRootIno) == std::set<std::string>{"a", "b"});
    CHECK(names(fs, b) == std::set<std::string>{"sub", "file"});
    CHECK(ino_of(fs, a, "f") == f);
  }
  SECTION("into its own subtree: EINVAL") {
    const uint64_t c = mkdir_(fs, a, "c");
    CHECK(fs.rename(kRootIno, "a", a, "x", 0, kRootCaller).error() == EINVAL);
    CHECK(fs.rename(kRootIno, "a", c, "x", 0, kRootCaller).error() == EINVAL);
    CHECK(ino_of(fs, kRootIno, "a") == a);
    CHECK(dotdot(fs, a) == kRootIno);
  }
  SECTION("RENAME_NOREPLACE") {
    mkfile(fs, b, "g");
    CHECK(fs.rename(a, "f", b, "g", RENAME_NOREPLACE, kRootCaller).error() == EEXIST);
    CHECK(ino_of(fs, a, "f") == f);
    CHECK(ino_of(fs, b, "g") != f);
    REQUIRE(fs.rename(a, "f", b, "h", RENAME_NOREPLACE, kRootCaller).ok());
    CHECK(ino_of(fs, b, "h") == f);
  }
  SECTION("invalid flags") {
    CHECK(fs.rename(a, "f", b, "g", RENAME_NOREPLACE | RENAME_EXCHANGE, kRootCaller).error() ==
          EINVAL);
    CHECK(fs.rename(a, "f", b, "g", RENAME_WHITEOUT | RENAME_EXCHANGE, kRootCaller).error() ==
          EINVAL);
    CHECK(fs.rename(a, "f", b, "g", 1 << 3, kRootCaller).error() == EINVAL); // no such flag
    CHECK(ino_of(fs, a, "f") == f);
  }
  SECTION("two names of one inode: a no-op") {
    REQUIRE(fs.link(f, b, "g").ok());
    REQUIRE(fs.rename(a, "f", b, "g", 0, kRootCaller).ok());
    CHECK(ino_of(fs, a, "f") == f);
    CHECK(ino_of(fs, b, "g") == f);
    CHECK(attr(fs, f).st_nlink == 2u);
    CHECK(attr(fs, a).st_size == 60);
    CHECK(attr(fs, b).st_size == 60);
    REQUIRE(fs.rename(a, "f", a, "f", 0, kRootCaller).ok());
    CHECK(ino_of(fs, a, "f") == f);
  }
  SECTION("missing source or bad parents") {
    CHECK(fs.rename(a, "nope", b, "x", 0, kRootCaller).error() == ENOENT);
    CHECK(fs.rename(f, "x", b, "x", 0, kRootCaller).error() == ENOTDIR);
    CHECK(fs.rename(a, "f", f, "x", 0, kRootCaller).error() == ENOTDIR);
    CHECK(fs.rename(999999, "x", b, "x", 0, kRootCaller).error() == ENOENT);
  }
}

TEST_CASE("Filesystem: rename with RENAME_EXCHANGE", "[fs]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t p1 = mkdir_(fs, kRootIno, "p1");
  const uint64_t p2 = mkdir_(fs, kRootIno, "p2");

  SECTION("two files in one directory") {
    const uint64_t x = mkfile(fs, p1, "x");
    const uint64_t y = mkfile(fs, p1, "y");
    REQUIRE(fs.rename(p1, "x", p1, "y", RENAME_EXCHANGE, kRootCaller).ok());
    CHECK(ino_of(fs, p1, "x") == y);
    CHECK(ino_of(fs, p1, "y") == x);
    CHECK(attr(fs, p1).st_size == 80);
    CHECK(attr(fs, p1).st_nlink == 2u);
  }
  SECTION("a directory and a file across parents") {
    const uint64_t d = mkdir_(fs, p1, "d");
    const uint64_t f = mkfile(fs, p2, "f");
    REQUIRE(attr(fs, p1).st_nlink == 3u);
    REQUIRE(attr(fs, p2).st_nlink == 2u);
    REQUIRE(fs.rename(p1, "d", p2, "f", RENAME_EXCHANGE, kRootCaller).ok());
    CHECK(ino_of(fs, p1, "d") == f);
    CHECK(ino_of(fs, p2, "f") == d);
    CHECK(attr(fs, p1).st_nlink == 2u);
    CHECK(attr(fs, p2).st_nlink == 3u);
    CHECK(attr(fs, p1).st_size == 60);
    CHECK(attr(fs, p2).st_size == 60);
    CHECK(attr(fs, d).st_nlink == 2u);
    CHECK(attr(fs, f).st_nlink == 1u);
    CHECK(dotdot(fs, d) == p2);
    // The namespace is consistent afterwards: the directory can be removed from its new home.
    CHECK(fs.rmdir(p1, "d").error() == ENOTDIR);
    REQUIRE(fs.rmdir(p2, "f").ok());
    CHECK(attr(fs, p2).st_nlink == 2u);
  }
  SECTION("a file and a directory across parents (the other way round)") {
    const uint64_t f = mkfile(fs, p1, "f");
    const uint64_t d = mkdir_(fs, p2, "d");
    REQUIRE(fs.rename(p1, "f", p2, "d", RENAME_EXCHANGE, kRootCaller).ok());
    CHECK(ino_of(fs, p1, "f") == d);
    CHECK(ino_of(fs, p2, "d") == f);
    CHECK(attr(fs, p1).st_nlink == 3u);
    CHECK(attr(fs, p2).st_nlink == 2u);
    CHECK(dotdot(fs, d) == p1);
  }
  SECTION("two directories across parents swap their '..'") {
    const uint64_t d1 = mkdir_(fs, p1, "d1");
    const uint64_t d2 = mkdir_(fs, p2, "d2");
    REQUIRE(fs.rename(p1, "d1", p2, "d2", RENAME_EXCHANGE, kRootCaller).ok());
    CHECK(attr(fs, p1).st_nlink == 3u);
    CHECK(attr(fs, p2).st_nlink == 3u);
    CHECK(dotdot(fs, d1) == p2);
    CHECK(dotdot(fs, d2) == p1);
  }
  SECTION("a directory and a file in the same parent") {
    const uint64_t d = mkdir_(fs, p1, "d");
    const uint64_t f = mkfile(fs, p1, "f");
    REQUIRE(fs.rename(p1, "d", p1, "f", RENAME_EXCHANGE, kRootCaller).ok());
    CHECK(ino_of(fs, p1, "f") == d);
    CHECK(ino_of(fs, p1, "d") == f);
    CHECK(attr(fs, p1).st_nlink == 3u);
  }
  SECTION("into its own subtree: EINVAL either way round") {
    mkfile(fs, p1, "x");
    CHECK(fs.rename(kRootIno, "p1", p1, "x", RENAME_EXCHANGE, kRootCaller).error() == EINVAL);
    CHECK(fs.rename(p1, "x", kRootIno, "p1", RENAME_EXCHANGE, kRootCaller).error() == EINVAL);
    CHECK(ino_of(fs, kRootIno, "p1") == p1);
    CHECK(dotdot(fs, p1) == kRootIno);
  }
  SECTION("both names must exist") {
    mkfile(fs, p1, "x");
    CHECK(fs.rename(p1, "x", p2, "nope", RENAME_EXCHANGE, kRootCaller).error() == ENOENT);
    CHECK(fs.rename(p2, "nope", p1, "x", RENAME_EXCHANGE, kRootCaller).error() == ENOENT);
    CHECK(names(fs, p2).empty());
  }
  SECTION("two names of one inode: a no-op") {
    const uint64_t x = mkfile(fs, p1, "x");
    REQUIRE(fs.link(x, p2, "y").ok());
    REQUIRE(fs.rename(p1, "x", p2, "y", RENAME_EXCHANGE, kRootCaller).ok());
    CHECK(ino_of(fs, p1, "x") == x);
    CHECK(ino_of(fs, p2, "y") == x);
    CHECK(attr(fs, x).st_nlink == 2u);
  }
}

TEST_CASE("Filesystem: setgid directories hand down their group", "[fs]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t g = mkdir_(fs, kRootIno, "g", 0775);
  SetAttr sa;
  sa.valid = SetAttr::kMode | SetAttr::kGid;
  sa.mode = 02775;
  sa.gid = 50;
  REQUIRE(fs.setattr(g, sa, kRootCaller).ok());
  REQUIRE((attr(fs, g).st_mode & S_ISGID) != 0);

  const auto file = attr(fs, mkfile(fs, g, "file", 0644, kUser));
  CHECK(file.st_uid == 1000u);
  CHECK(file.st_gid == 50u);
  CHECK((file.st_mode & S_ISGID) == 0);

  const uint64_t sub = mkdir_(fs, g, "sub", 0755, kUser);
  CHECK(attr(fs, sub).st_gid == 50u);
  CHECK((attr(fs, sub).st_mode & S_ISGID) != 0);
  CHECK(attr(fs, mkfile(fs, sub, "deeper", 0644, kUser)).st_gid == 50u);

  auto s = fs.symlink(g, "s", "file", kUser);
  REQUIRE(s.ok());
  CHECK(s->st_gid == 50u);

  const uint64_t plain = mkdir_(fs, kRootIno, "plain", 0755, kUser);
  CHECK(attr(fs, plain).st_gid == 1000u);
  CHECK((attr(fs, plain).st_mode & S_ISGID) == 0);
  CHECK(attr(fs, mkfile(fs, plain, "f", 0644, kUser)).st_gid == 1000u);
}

TEST_CASE("Filesystem: O_TMPFILE makes an open file with no name, linkable unless O_EXCL",
          "[fs][tmpfile]") {
  TestFs t(16 * MiB, 4);
  Filesystem &fs = *t;
  const uint64_t g = mkdir_(fs, kRootIno, "g", 0775); // 2 of 4 inode slots
  SetAttr sa;
  sa.valid = SetAttr::kMode | SetAttr::kGid;
  sa.mode = 02777;
  sa.gid = 50;
  REQUIRE(fs.setattr(g, sa, kRootCaller).ok());
  const auto dir_before = attr(fs, g);
  tick();
  auto made = fs.tmpfile(g, 0640, true, kUser);
  REQUIRE(made.ok());
  const uint64_t f = made->st_ino;
  // Owner and group as a create in a setgid directory gives them; no name, and the directory
  // keeps its times (shmem_tmpfile).
  CHECK(S_ISREG(made->st_mode));
  CHECK((made->st_mode & 07777) == 0640u);
  CHECK(made->st_nlink == 0u);
  CHECK(made->st_uid == 1000u);
  CHECK(made->st_gid == 50u);
  CHECK(names(fs, g).empty());
  CHECK(attr(fs, g).st_size == dir_before.st_size);
  CHECK(same(attr(fs, g).st_mtim, dir_before.st_mtim));
  CHECK(same(attr(fs, g).st_ctim, dir_before.st_ctim));
  // Charged like any file: an inode slot and its data blocks.
  CHECK(fs.statfs().f_ffree == 1u);
  REQUIRE(write(fs, f, 0, pattern(3 * kBlk)) == 3 * kBlk);
  CHECK(used_blocks(fs) == 3);

  SECTION("its first link uses its own inode slot; a second one takes another") {
    auto linked = fs.link(f, kRootIno, "named");
    REQUIRE(linked.ok());
    CHECK(linked->st_nlink == 1u);
    CHECK(fs.statfs().f_ffree == 1u);
    CHECK(ino_of(fs, kRootIno, "named") == f);
    CHECK(read(fs, f, 0, 3 * kBlk) == pattern(3 * kBlk));
    REQUIRE(fs.link(f, g, "second").ok());
    CHECK(fs.statfs().f_ffree == 0u);
    CHECK(fs.link(f, g, "third").error() == ENOSPC);
    fs.release(f);
    CHECK(used_blocks(fs) == 3); // named now: closing it keeps it
  }
  SECTION("linked and unlinked again, it cannot be linked once more (I_LINKABLE is gone)") {
    REQUIRE(fs.link(f, kRootIno, "named").ok());
    REQUIRE(fs.unlink(kRootIno, "named").ok());
    CHECK(fs.link(f, kRootIno, "again").error() == ENOENT);
    fs.release(f);
    CHECK(used_blocks(fs) == 0);
    CHECK(fs.statfs().f_ffree == 2u);
  }
  SECTION("closed, it keeps its data while the kernel can still name it (an O_PATH fd)") {
    fs.release(f);
    CHECK(used_blocks(fs) == 3);
    REQUIRE(fs.link(f, kRootIno, "late").ok());
    CHECK(read(fs, ino_of(fs, kRootIno, "late"), 0, 3 * kBlk) == pattern(3 * kBlk));
  }
  SECTION("closed and forgotten, it is gone with its blocks and inode slot") {
    fs.release(f);
    fs.forget(f, 1);
    CHECK_FALSE(alive(fs, f));
    CHECK(used_blocks(fs) == 0);
    CHECK(fs.statfs().f_ffree == 2u);
  }
  SECTION("O_EXCL: never linkable, given back as soon as it is closed") {
    auto excl = fs.tmpfile(kRootIno, 0600, false, kRootCaller);
    REQUIRE(excl.ok());
    REQUIRE(write(fs, excl->st_ino, 0, "x") == 1);
    CHECK(fs.link(excl->st_ino, kRootIno, "x").error() == ENOENT);
    CHECK(fs.tmpfile(kRootIno, 0600, true, kRootCaller).error() == ENOSPC); // 4 of 4 in use
    fs.release(excl->st_ino);
    CHECK(used_blocks(fs) == 3);
    CHECK(fs.statfs().f_ffree == 1u);
  }
  SECTION("in a removed directory, as on tmpfs") {
    REQUIRE(fs.rmdir(kRootIno, "g").ok());
    auto orphan = fs.tmpfile(g, 0600, true, kRootCaller);
    REQUIRE(orphan.ok());
    REQUIRE(fs.link(orphan->st_ino, kRootIno, "rescued").ok());
    CHECK(fs.mknod(g, "named", S_IFREG | 0644, 0, kRootCaller).error() == ENOENT);
  }
  SECTION("not in a file, and not while frozen") {
    const uint64_t plain = mkfile(fs, kRootIno, "plain");
    CHECK(fs.tmpfile(plain, 0600, true, kRootCaller).error() == ENOTDIR);
    fs.set_frozen(true);
    CHECK(fs.tmpfile(kRootIno, 0600, true, kRootCaller).error() == EROFS);
    CHECK(fs.link(f, kRootIno, "named").error() == EROFS);
  }
  std::vector<std::string> problems;
  fs.verify(problems);
  CHECK(problems.empty());
}

TEST_CASE("Filesystem: readdir offsets stay valid across changes", "[fs]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t d = mkdir_(fs, kRootIno, "d");
  for (int i = 0; i < 20; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "e%02d", i);
    mkfile(fs, d, name);
  }

  // Newest first, as on tmpfs.
  auto first = readdir(fs, d, 0, 5);
  REQUIRE(first.size() == 5);
  CHECK(first[0].name == ".");
  CHECK(first[0].ino == d);
  CHECK(first[0].next == 1);
  CHECK(first[1].name == "..");
  CHECK(first[1].ino == kRootIno);
  CHECK(first[1].next == 2);
  CHECK(first[2].name == "e19");
  CHECK(first[4].name == "e17");

  // Between two readdir calls: the last entry returned and some not yet returned go away, a
  // new one arrives, one returned and one not yet returned are renamed away and back, and one
  // not yet returned is renamed to a new name.
  REQUIRE(fs.unlink(d, "e17").ok());
  REQUIRE(fs.unlink(d, "e14").ok());
  REQUIRE(fs.unlink(d, "e09").ok());
  REQUIRE(fs.unlink(d, "e19").ok());
  mkfile(fs, d, "late");
  for (const char *name : {"e18", "e03"}) {
    REQUIRE(fs.rename(d, name, d, "tmp", 0, kRootCaller).ok());
    REQUIRE(fs.rename(d, "tmp", d, name, 0, kRootCaller).ok());
  }
  REQUIRE(fs.rename(d, "e05", d, "e05b", 0, kRootCaller).ok());

  // The listing goes on with the entries it has not returned that were there all along, and
  // none that arrived after it began (the renamed ones count as new entries).
  std::vector<std::string> rest;
  uint64_t offset = first.back().next;
  uint64_t last = offset;
  bool decreasing = true;
  for (;;) {
    auto page = readdir(fs, d, offset, 4);
    if (page.empty())
      break;
    for (auto &e : page) {
      decreasing = decreasing && e.next < last && e.next >= kFirstCookie;
      last = e.next;
      rest.push_back(e.name);
    }
    offset = page.back().next;
  }
  CHECK(decreasing);
  CHECK(rest == std::vector<std::string>{"e16", "e15", "e13", "e12", "e11", "e10", "e08", "e07",
                                         "e06", "e04", "e02", "e01", "e00"});

  SECTION("a new listing has everything, newest first") {
    std::vector<std::string> all;
    for (auto &e : readdir(fs, d))
      all.push_back(e.name);
    CHECK(all == std::vector<std::string>{".", "..", "e05b", "e03", "e18", "late", "e16", "e15",
                                          "e13", "e12", "e11", "e10", "e08", "e07", "e06", "e04",
                                          "e02", "e01", "e00"});
  }
  SECTION("resuming after '.' starts with '..'") {
    auto page = readdir(fs, d, 1, 2);
    REQUIRE(page.size() == 2);
    CHECK(page[0].name == "..");
    CHECK(page[1].name == "e05b");
  }
  SECTION("a full sink at '.' returns nothing") { CHECK(readdir(fs, d, 0, 0).empty()); }
  SECTION("not a directory") {
    Dir sink;
    const uint64_t f = ino_of(fs, d, "e01");
    CHECK(fs.readdir(f, 0, false, sink).error() == ENOTDIR);
    CHECK(fs.readdir(999999, 0, false, sink).error() == ENOENT);
  }
}

TEST_CASE("Filesystem: readdir returns no entry twice while each is renamed away and back",
          "[fs]") {
  // xfstests generic/736: readdir(3) of a large directory, each entry renamed to TEMPFILE and
  // back as it is returned; with positions that let a re-added name come again it never ends.
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t d = mkdir_(fs, kRootIno, "d");
  constexpr int kFiles = 500;
  for (int i = 0; i < kFiles; ++i)
    mkfile(fs, d, std::to_string(i));
  std::map<std::string, int> seen;
  uint64_t offset = 2; // after "." and ".."
  for (int pages = 0; pages < 3 * kFiles; ++pages) {
    auto page = readdir(fs, d, offset, 7);
    if (page.empty())
      break;
    for (auto &e : page) {
      seen[e.name]++;
      REQUIRE(fs.rename(d, e.name.c_str(), d, "TEMPFILE", 0, kRootCaller).ok());
      REQUIRE(fs.rename(d, "TEMPFILE", d, e.name.c_str(), 0, kRootCaller).ok());
    }
    offset = page.back().next;
  }
  CHECK(seen.size() == kFiles);
  CHECK(std::all_of(seen.begin(), seen.end(), [](auto &kv) { return kv.second == 1; }));
}
