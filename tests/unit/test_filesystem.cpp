// Filesystem: the tmpfs-semantics model, driven directly (no FUSE) over a real anonymous arena.
#include "fs/filesystem.h"
#include "storage/frame_source.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
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
#include <thread>
#include <unistd.h>
#include <vector>

using namespace pkramfs;

namespace {

constexpr uint64_t KiB = 1ull << 10, MiB = 1ull << 20;
constexpr uint64_t kBlk = kBlockSize;
const Caller kRootCaller{0, 0};
const Caller kUser{1000, 1000};
// A caller with CAP_SYS_ADMIN (sees trusted.* in listings).
const Caller kAdmin{0, 0, [] {
                      Credentials c;
                      c.cap_sys_admin = true;
                      return c;
                    }};
constexpr uint64_t kUnlimited = UINT64_MAX;

// A filesystem over an anonymous arena of `bytes` (whole blocks) and an inode limit.
struct TestFs {
  explicit TestFs(uint64_t bytes = 16 * MiB, uint64_t max_inodes = kUnlimited,
                  FsConfig config = {}) {
    const uint64_t blocks = bytes / kBlockSize;
    const uint64_t frames = (blocks + kBlocksPerFrame - 1) / kBlocksPerFrame;
    auto made = make_anon_frame_source(frames);
    REQUIRE(made.ok());
    source = std::move(made).value();
    config.max_inodes = max_inodes;
    fs = std::make_unique<Filesystem>(std::make_unique<Arena>(*source, 0, blocks), config);
  }
  Filesystem &operator*() { return *fs; }
  Filesystem *operator->() { return fs.get(); }
  std::unique_ptr<FrameSource> source; // outlives the arena inside fs
  std::unique_ptr<Filesystem> fs;
};

uint64_t mkfile(Filesystem &fs, uint64_t parent, std::string_view name, uint32_t mode = 0644,
                const Caller &who = kRootCaller) {
  auto r = fs.mknod(parent, name, S_IFREG | mode, 0, who);
  INFO("mknod " << name << ": errno " << r.error());
  REQUIRE(r.ok());
  return r->st_ino;
}

uint64_t mkdir_(Filesystem &fs, uint64_t parent, std::string_view name, uint32_t mode = 0755,
                const Caller &who = kRootCaller) {
  auto r = fs.mkdir(parent, name, mode, who);
  INFO("mkdir " << name << ": errno " << r.error());
  REQUIRE(r.ok());
  return r->st_ino;
}

struct stat attr(Filesystem &fs, uint64_t ino) {
  auto r = fs.getattr(ino);
  INFO("getattr " << ino << ": errno " << r.error());
  REQUIRE(r.ok());
  return *r;
}

bool alive(Filesystem &fs, uint64_t ino) { return fs.getattr(ino).ok(); }

uint64_t ino_of(Filesystem &fs, uint64_t parent, std::string_view name) {
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

std::string read(Filesystem &fs, uint64_t ino, uint64_t offset, uint64_t size) {
  Bytes sink;
  auto r = fs.read(ino, offset, size, sink);
  INFO("read " << ino << ": errno " << r.error());
  REQUIRE(r.ok());
  CHECK(sink.calls == 1);
  return sink.data;
}

size_t write(Filesystem &fs, uint64_t ino, uint64_t offset, std::string_view data) {
  auto r = fs.write(ino, offset, data.data(), data.size(), kRootCaller);
  INFO("write " << ino << ": errno " << r.error());
  REQUIRE(r.ok());
  return *r;
}

std::string pattern(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    s[i] = static_cast<char>('a' + (seed >> 24) % 26);
  }
  return s;
}

std::string zeros(size_t n) { return std::string(n, '\0'); }

uint64_t used_blocks(Filesystem &fs) {
  const struct statvfs st = fs.statfs();
  return st.f_blocks - st.f_bfree;
}

uint64_t alloc_blocks(Filesystem &fs, uint64_t ino) {
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

std::vector<Entry> readdir(Filesystem &fs, uint64_t dir, uint64_t offset = 0,
                           size_t room = SIZE_MAX, bool plus = false) {
  Dir sink;
  sink.room = room;
  auto r = fs.readdir(dir, offset, plus, sink);
  REQUIRE(r.ok());
  return sink.entries;
}

// Names in a directory, without "." and "..".
std::set<std::string> names(Filesystem &fs, uint64_t dir) {
  std::set<std::string> out;
  for (auto &e : readdir(fs, dir))
    if (e.name != "." && e.name != "..")
      out.insert(e.name);
  return out;
}

uint64_t dotdot(Filesystem &fs, uint64_t dir) {
  for (auto &e : readdir(fs, dir))
    if (e.name == "..")
      return e.ino;
  FAIL("no .. entry");
  return 0;
}

bool same(const timespec &a, const timespec &b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}
bool later(const timespec &a, const timespec &b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}
// Lets the clock move on so that a changed timestamp is visibly later.
void tick() { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }

SetAttr size_attr(uint64_t size) {
  SetAttr a;
  a.valid = SetAttr::kSize;
  a.size = size;
  return a;
}

SetAttr mode_attr(uint32_t mode) {
  SetAttr a;
  a.valid = SetAttr::kMode;
  a.mode = mode;
  return a;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Name space

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

// ---------------------------------------------------------------------------------------------
// Data

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

// ---------------------------------------------------------------------------------------------
// Limits and accounting

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

// ---------------------------------------------------------------------------------------------
// suid/sgid

namespace {
// A caller whose credentials (supplementary groups, CAP_FSETID) are given; `lookups` counts
// how often the filesystem asked for them.
Caller caller_with(uint32_t uid, uint32_t gid, std::vector<uint32_t> groups, bool fsetid,
                   int *lookups = nullptr) {
  return Caller{uid, gid, [groups = std::move(groups), fsetid, lookups] {
                  if (lookups)
                    ++*lookups;
                  Credentials c;
                  c.groups = groups;
                  c.cap_fsetid = fsetid;
                  return c;
                }};
}
} // namespace

TEST_CASE("Filesystem: data changes drop suid/sgid as the VFS does", "[fs][privs]") {
  TestFs t;
  Filesystem &fs = *t;
  std::vector<uint64_t> notified;
  fs.on_attributes_changed([&](uint64_t ino) { notified.push_back(ino); });
  int lookups = 0;
  auto caller = [&lookups](uint32_t uid, uint32_t gid, std::vector<uint32_t> groups = {},
                           bool fsetid = false) {
    return caller_with(uid, gid, std::move(groups), fsetid, &lookups);
  };
  const uint64_t f = mkfile(fs, kRootIno, "f", 0755, kUser); // 1000:1000
  auto chmod = [&](uint32_t mode) { REQUIRE(fs.setattr(f, mode_attr(mode), kRootCaller).ok()); };
  auto mode = [&] { return attr(fs, f).st_mode & 07777; };
  auto write_as = [&](const Caller &who) {
    auto r = fs.write(f, 0, "x", 1, who);
    REQUIRE(r.ok());
    CHECK(*r == 1);
  };

  SECTION("a file without them: no credentials looked up, nothing reported") {
    write_as(caller(1000, 1000));
    CHECK(lookups == 0);
    CHECK(notified.empty());
    CHECK(mode() == 0755);
  }
  SECTION("suid always goes, and the change is reported") {
    chmod(04755);
    write_as(caller(1000, 1000));
    CHECK(mode() == 0755);
    CHECK(notified == std::vector<uint64_t>{f});
    CHECK(attr(fs, f).st_mode == (S_IFREG | 0755));
  }
  SECTION("CAP_FSETID keeps both") {
    chmod(06755);
    write_as(caller(2000, 2000, {}, true));
    CHECK(mode() == 06755);
    CHECK(notified.empty());
  }
  SECTION("sgid with group-exec goes") {
    chmod(02775);
    write_as(caller(1000, 1000));
    CHECK(mode() == 0775);
  }
  SECTION("sgid without group-exec stays for a member of the group") {
    chmod(02644);
    write_as(caller(1000, 1000));
    CHECK(mode() == 02644);
    CHECK(notified.empty());
  }
  SECTION("sgid without group-exec stays for a supplementary member") {
    chmod(02644);
    write_as(caller(2000, 2000, {5, 1000}));
    CHECK(mode() == 02644);
  }
  SECTION("sgid without group-exec goes for anyone else") {
    chmod(02644);
    write_as(caller(2000, 2000, {3000}));
    CHECK(mode() == 0644);
    CHECK(notified == std::vector<uint64_t>{f});
  }
  SECTION("a write of nothing drops nothing") {
    chmod(04755);
    REQUIRE(fs.write(f, 0, "", 0, caller(1000, 1000)).ok());
    CHECK(mode() == 04755);
  }
  SECTION("truncate drops them") {
    chmod(04755);
    REQUIRE(fs.setattr(f, size_attr(0), caller(1000, 1000)).ok());
    CHECK(mode() == 0755);
  }
  SECTION("fallocate drops them") {
    chmod(04755);
    REQUIRE(fs.fallocate(f, 0, 0, 100, caller(1000, 1000)).ok());
    CHECK(mode() == 0755);
    CHECK(notified == std::vector<uint64_t>{f});
  }
  SECTION("open with O_TRUNC drops them, a plain open does not") {
    chmod(04755);
    REQUIRE(fs.open(f, O_RDONLY, caller(1000, 1000)).ok());
    CHECK(mode() == 04755);
    REQUIRE(fs.open(f, O_WRONLY | O_TRUNC, caller(1000, 1000)).ok());
    CHECK(mode() == 0755);
    CHECK(notified == std::vector<uint64_t>{f});
    fs.release(f);
    fs.release(f);
  }
  SECTION("copy_file_range drops them on the destination") {
    const uint64_t src = mkfile(fs, kRootIno, "src");
    REQUIRE(write(fs, src, 0, "abc") == 3);
    chmod(04755);
    REQUIRE(fs.copy_file_range(src, 0, f, 0, 3, caller(1000, 1000)).value() == 3);
    CHECK(mode() == 0755);
  }
  SECTION("chmod and reads leave them alone") {
    chmod(06755);
    (void)read(fs, f, 0, 10);
    CHECK(mode() == 06755);
    CHECK(notified.empty());
  }
}

TEST_CASE("Filesystem: chown drops suid/sgid as the VFS does", "[fs][privs]") {
  // With FUSE_HANDLE_KILLPRIV_V2 the kernel leaves this to the daemon (fuse/device_io.h).
  TestFs t;
  Filesystem &fs = *t;
  auto caller = [](uint32_t uid, uint32_t gid, std::vector<uint32_t> groups = {}) {
    return caller_with(uid, gid, std::move(groups), false);
  };
  const uint64_t f = mkfile(fs, kRootIno, "f", 0755, kUser); // 1000:1000
  auto chmod = [&](uint32_t mode) { REQUIRE(fs.setattr(f, mode_attr(mode), kRootCaller).ok()); };
  auto mode = [&] { return attr(fs, f).st_mode & 07777; };
  auto chown = [&](uint64_t ino, uint32_t valid, uint32_t gid, const Caller &who) {
    SetAttr a;
    a.valid = valid;
    a.gid = gid;
    REQUIRE(fs.setattr(ino, a, who).ok());
  };
  const Caller fsetid = caller_with(0, 0, {}, true);

  SECTION("suid goes even with CAP_FSETID, sgid with group-exec too") {
    chmod(06755);
    chown(f, SetAttr::kGid, 1000, fsetid);
    CHECK(mode() == 0755);
  }
  SECTION("sgid without group-exec stays with CAP_FSETID") {
    chmod(02745);
    chown(f, SetAttr::kGid, 1000, fsetid);
    CHECK(mode() == 02745);
  }
  SECTION("sgid without group-exec stays for a member of the file's group") {
    chmod(02745);
    chown(f, SetAttr::kGid, 1000, caller(1000, 1000));
    CHECK(mode() == 02745);
    chown(f, SetAttr::kGid, 1000, caller(1000, 5, {1000}));
    CHECK(mode() == 02745);
  }
  SECTION("sgid without group-exec goes for an owner outside the file's group") {
    chmod(02745);
    chown(f, SetAttr::kGid, 1000, caller(1000, 5, {6}));
    CHECK(mode() == 0745);
  }
  SECTION("chown(-1, -1) arrives with nothing to set and still drops them") {
    chmod(06755);
    chown(f, 0, 0, fsetid);
    CHECK(mode() == 0755);
  }
  SECTION("a directory keeps them") {
    const uint64_t d = mkdir_(fs, kRootIno, "d", 0775);
    REQUIRE(fs.setattr(d, mode_attr(06775), kRootCaller).ok());
    chown(d, SetAttr::kGid, 1000, fsetid);
    CHECK((attr(fs, d).st_mode & 07777) == 06775);
  }
  SECTION("chmod and utimes do not drop them") {
    chmod(06755);
    SetAttr a;
    a.valid = SetAttr::kMtimeNow | SetAttr::kAtimeNow;
    REQUIRE(fs.setattr(f, a, caller(1000, 1000)).ok());
    CHECK(mode() == 06755);
  }
}

// ---------------------------------------------------------------------------------------------
// Extended attributes

TEST_CASE("Filesystem: extended attributes", "[fs][xattr]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "f");

  SECTION("namespaces") {
    CHECK(fs.setxattr(f, "foo.bar", "v", 0).error() == EOPNOTSUPP);
    CHECK(fs.getxattr(f, "foo.bar").error() == EOPNOTSUPP);
    CHECK(fs.removexattr(f, "foo.bar").error() == EOPNOTSUPP);
    CHECK(fs.setxattr(f, "user", "v", 0).error() == EOPNOTSUPP);
    CHECK(fs.setxattr(f, "user.", "v", 0).error() == EINVAL);
    CHECK(fs.getxattr(f, "user.").error() == EINVAL);
    CHECK(fs.removexattr(f, "user.").error() == EINVAL);
    CHECK(fs.setxattr(f, "trusted.", "v", 0).error() == EINVAL);
    CHECK(fs.listxattr(f, kAdmin).value().empty());
    CHECK(fs.setxattr(f, "user.a", "1", 0).ok());
    CHECK(fs.setxattr(f, "trusted.t", "2", 0).ok());
    CHECK(fs.setxattr(f, "security.s", "3", 0).ok());
  }
  SECTION("create and replace flags") {
    REQUIRE(fs.setxattr(f, "user.a", "one", 0).ok());
    CHECK(fs.getxattr(f, "user.a").value() == "one");
    CHECK(fs.setxattr(f, "user.a", "two", XATTR_CREATE).error() == EEXIST);
    CHECK(fs.getxattr(f, "user.a").value() == "one");
    CHECK(fs.setxattr(f, "user.b", "two", XATTR_REPLACE).error() == ENODATA);
    CHECK(fs.getxattr(f, "user.b").error() == ENODATA);
    CHECK(fs.setxattr(f, "user.a", "two", XATTR_REPLACE).ok());
    CHECK(fs.getxattr(f, "user.a").value() == "two");
    CHECK(fs.setxattr(f, "user.c", "three", XATTR_CREATE).ok());
    CHECK(fs.setxattr(f, "user.a", "x", 4).error() == EINVAL);
    CHECK(fs.getxattr(f, "user.a").value() == "two");
    CHECK(fs.setxattr(999999, "user.a", "x", 0).error() == ENOENT);
    CHECK(fs.getxattr(999999, "user.a").error() == ENOENT);
    CHECK(fs.listxattr(999999, kUser).error() == ENOENT);
  }
  SECTION("binary values") {
    const std::string v("\0\1\2\xff", 4);
    REQUIRE(fs.setxattr(f, "user.bin", v, 0).ok());
    CHECK(fs.getxattr(f, "user.bin").value() == v);
  }
  SECTION("capabilities are looked up only when a trusted.* name is there to hide") {
    int lookups = 0;
    const Caller counted{1000, 1000, [&lookups] {
                           ++lookups;
                           return Credentials{};
                         }};
    REQUIRE(fs.setxattr(f, "user.a", "1", 0).ok());
    CHECK(fs.listxattr(f, counted).value() == std::string("user.a\0", 7));
    CHECK(lookups == 0);
    REQUIRE(fs.setxattr(f, "trusted.t", "2", 0).ok());
    REQUIRE(fs.setxattr(f, "trusted.u", "3", 0).ok());
    CHECK(fs.listxattr(f, counted).value() == std::string("user.a\0", 7));
    CHECK(lookups == 1);
  }
  SECTION("trusted.* is listed only to CAP_SYS_ADMIN") {
    REQUIRE(fs.setxattr(f, "user.a", "1", 0).ok());
    REQUIRE(fs.setxattr(f, "trusted.t", "secret", 0).ok());
    REQUIRE(fs.setxattr(f, "security.s", "label", 0).ok());
    CHECK(fs.listxattr(f, kUser).value() == std::string("user.a\0security.s\0", 18));
    CHECK(fs.listxattr(f, kAdmin).value() == std::string("user.a\0trusted.t\0security.s\0", 28));
    // getxattr of trusted.* is refused by the VFS before it reaches us.
    CHECK(fs.getxattr(f, "trusted.t").value() == "secret");
    CHECK(fs.getxattr(f, "security.s").value() == "label");
  }
  SECTION("remove") {
    REQUIRE(fs.setxattr(f, "user.a", "1", 0).ok());
    REQUIRE(fs.setxattr(f, "user.b", "2", 0).ok());
    REQUIRE(fs.removexattr(f, "user.a").ok());
    CHECK(fs.getxattr(f, "user.a").error() == ENODATA);
    CHECK(fs.removexattr(f, "user.a").error() == ENODATA);
    CHECK(fs.removexattr(f, "user.zzz").error() == ENODATA);
    CHECK(fs.listxattr(f, kUser).value() == std::string("user.b\0", 7));
  }
  SECTION("directories and symlinks carry them too") {
    const uint64_t d = mkdir_(fs, kRootIno, "d");
    REQUIRE(fs.setxattr(d, "user.d", "dir", 0).ok());
    CHECK(fs.getxattr(d, "user.d").value() == "dir");
    CHECK(fs.getxattr(f, "user.d").error() == ENODATA);
    auto s = fs.symlink(kRootIno, "s", "f", kRootCaller);
    REQUIRE(s.ok());
    REQUIRE(fs.setxattr(s->st_ino, "trusted.x", "lnk", 0).ok());
    CHECK(fs.getxattr(s->st_ino, "trusted.x").value() == "lnk");
  }
}

// ---------------------------------------------------------------------------------------------
// Timestamps

TEST_CASE("Filesystem: timestamps change where tmpfs changes them", "[fs][time]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t a = mkdir_(fs, kRootIno, "a");
  const uint64_t b = mkdir_(fs, kRootIno, "b");
  const uint64_t f = mkfile(fs, a, "f");
  REQUIRE(write(fs, f, 0, "data") == 4);
  REQUIRE(fs.setxattr(f, "user.x", "1", 0).ok());

  const auto root0 = attr(fs, kRootIno), a0 = attr(fs, a), b0 = attr(fs, b), f0 = attr(fs, f);
  tick();

  SECTION("a new node has all three times equal and its parent's mtime/ctime move") {
    auto g = fs.mknod(a, "g", S_IFREG | 0644, 0, kUser);
    REQUIRE(g.ok());
    CHECK(same(g->st_atim, g->st_mtim));
    CHECK(same(g->st_mtim, g->st_ctim));
    CHECK(later(g->st_mtim, f0.st_mtim));
    const auto a1 = attr(fs, a);
    CHECK(later(a1.st_mtim, a0.st_mtim));
    CHECK(later(a1.st_ctim, a0.st_ctim));
    CHECK(same(a1.st_atim, a0.st_atim));
    CHECK(same(attr(fs, kRootIno).st_mtim, root0.st_mtim));
    CHECK(same(attr(fs, b).st_mtim, b0.st_mtim));
  }
  SECTION("mkdir and symlink move the parent's mtime/ctime too") {
    mkdir_(fs, a, "sub");
    const auto a1 = attr(fs, a);
    CHECK(later(a1.st_mtim, a0.st_mtim));
    tick();
    REQUIRE(fs.symlink(b, "s", "x", kRootCaller).ok());
    CHECK(later(attr(fs, b).st_mtim, b0.st_mtim));
    CHECK(later(attr(fs, b).st_ctim, b0.st_ctim));
  }
  SECTION("failed creates change nothing") {
    CHECK(fs.mknod(a, "f", S_IFREG | 0644, 0, kUser).error() == EEXIST);
    CHECK(fs.mkdir(a, "f", 0755, kUser).error() == EEXIST);
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
    CHECK(same(attr(fs, a).st_ctim, a0.st_ctim));
  }
  SECTION("unlink moves the parent's mtime/ctime and the inode's ctime, not its mtime") {
    REQUIRE(fs.unlink(a, "f").ok());
    const auto a1 = attr(fs, a), f1 = attr(fs, f);
    CHECK(later(a1.st_mtim, a0.st_mtim));
    CHECK(later(a1.st_ctim, a0.st_ctim));
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(same(attr(fs, kRootIno).st_mtim, root0.st_mtim));
  }
  SECTION("rmdir moves the parent's mtime/ctime") {
    REQUIRE(fs.rmdir(kRootIno, "b").ok());
    CHECK(later(attr(fs, kRootIno).st_mtim, root0.st_mtim));
    CHECK(later(attr(fs, kRootIno).st_ctim, root0.st_ctim));
    CHECK(later(attr(fs, b).st_ctim, b0.st_ctim));
  }
  SECTION("rename moves both parents' mtime/ctime and the inode's ctime, not its mtime") {
    REQUIRE(fs.rename(a, "f", b, "f", 0, kRootCaller).ok());
    const auto a1 = attr(fs, a), b1 = attr(fs, b), f1 = attr(fs, f);
    CHECK(later(a1.st_mtim, a0.st_mtim));
    CHECK(later(a1.st_ctim, a0.st_ctim));
    CHECK(later(b1.st_mtim, b0.st_mtim));
    CHECK(later(b1.st_ctim, b0.st_ctim));
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(same(attr(fs, kRootIno).st_mtim, root0.st_mtim));
  }
  SECTION("rename within one directory moves its mtime/ctime") {
    REQUIRE(fs.rename(a, "f", a, "g", 0, kRootCaller).ok());
    CHECK(later(attr(fs, a).st_mtim, a0.st_mtim));
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));
    CHECK(same(attr(fs, b).st_mtim, b0.st_mtim));
  }
  SECTION("rename over a file moves the replaced inode's ctime") {
    const uint64_t g = mkfile(fs, b, "g");
    const auto g0 = attr(fs, g);
    tick();
    REQUIRE(fs.rename(a, "f", b, "g", 0, kRootCaller).ok());
    CHECK(later(attr(fs, g).st_ctim, g0.st_ctim));
    CHECK(same(attr(fs, g).st_mtim, g0.st_mtim));
  }
  SECTION("rename exchange moves both parents and both inodes' ctime") {
    const uint64_t g = mkfile(fs, b, "g");
    const auto g0 = attr(fs, g);
    const auto b1 = attr(fs, b);
    tick();
    REQUIRE(fs.rename(a, "f", b, "g", RENAME_EXCHANGE, kRootCaller).ok());
    CHECK(later(attr(fs, a).st_mtim, a0.st_mtim));
    CHECK(later(attr(fs, b).st_mtim, b1.st_mtim));
    CHECK(later(attr(fs, b).st_ctim, b1.st_ctim));
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));
    CHECK(later(attr(fs, g).st_ctim, g0.st_ctim));
    CHECK(same(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(same(attr(fs, g).st_mtim, g0.st_mtim));
  }
  SECTION("a rename between two names of one inode changes nothing") {
    REQUIRE(fs.link(f, b, "l").ok());
    const auto a1 = attr(fs, a), b1 = attr(fs, b), f1 = attr(fs, f);
    tick();
    REQUIRE(fs.rename(a, "f", b, "l", 0, kRootCaller).ok());
    CHECK(same(attr(fs, a).st_mtim, a1.st_mtim));
    CHECK(same(attr(fs, b).st_mtim, b1.st_mtim));
    CHECK(same(attr(fs, f).st_ctim, f1.st_ctim));
  }
  SECTION("link moves the inode's ctime and the new parent's mtime/ctime") {
    REQUIRE(fs.link(f, b, "l").ok());
    const auto f1 = attr(fs, f), b1 = attr(fs, b);
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(later(b1.st_mtim, b0.st_mtim));
    CHECK(later(b1.st_ctim, b0.st_ctim));
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
  }
  SECTION("chmod and chown move ctime only") {
    REQUIRE(fs.setattr(f, mode_attr(0600), kRootCaller).ok());
    const auto f1 = attr(fs, f);
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(same(f1.st_atim, f0.st_atim));
    CHECK((f1.st_mode & 07777) == 0600);
    CHECK(S_ISREG(f1.st_mode));
    tick();
    SetAttr own;
    own.valid = SetAttr::kUid | SetAttr::kGid;
    own.uid = 7;
    own.gid = 8;
    REQUIRE(fs.setattr(f, own, kRootCaller).ok());
    const auto f2 = attr(fs, f);
    CHECK(later(f2.st_ctim, f1.st_ctim));
    CHECK(same(f2.st_mtim, f0.st_mtim));
    CHECK(f2.st_uid == 7u);
    CHECK(f2.st_gid == 8u);
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
  }
  SECTION("explicit times are stored and move ctime") {
    SetAttr st;
    st.valid = SetAttr::kAtime | SetAttr::kMtime;
    st.atime = {1000, 1};
    st.mtime = {2000, 2};
    REQUIRE(fs.setattr(f, st, kRootCaller).ok());
    const auto f1 = attr(fs, f);
    CHECK(same(f1.st_atim, timespec{1000, 1}));
    CHECK(same(f1.st_mtim, timespec{2000, 2}));
    CHECK(later(f1.st_ctim, f0.st_ctim));
    SetAttr now;
    now.valid = SetAttr::kMtimeNow;
    REQUIRE(fs.setattr(f, now, kRootCaller).ok());
    CHECK(later(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(same(attr(fs, f).st_atim, timespec{1000, 1}));
  }
  SECTION("setxattr and removexattr move ctime only; failures change nothing") {
    CHECK(fs.setxattr(f, "user.x", "2", XATTR_CREATE).error() == EEXIST);
    CHECK(fs.removexattr(f, "user.nope").error() == ENODATA);
    CHECK(same(attr(fs, f).st_ctim, f0.st_ctim));
    REQUIRE(fs.setxattr(f, "user.y", "1", 0).ok());
    const auto f1 = attr(fs, f);
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    tick();
    REQUIRE(fs.removexattr(f, "user.y").ok());
    CHECK(later(attr(fs, f).st_ctim, f1.st_ctim));
    CHECK(same(attr(fs, f).st_mtim, f0.st_mtim));
  }
  SECTION("write moves the file's mtime/ctime, not its parent's") {
    REQUIRE(write(fs, f, 100, "more") == 4);
    const auto f1 = attr(fs, f);
    CHECK(later(f1.st_mtim, f0.st_mtim));
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
  }
  SECTION("truncate to a new size moves mtime/ctime") {
    REQUIRE(fs.setattr(f, size_attr(2), kRootCaller).ok());
    CHECK(later(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
  }
  SECTION("truncate to the same size: tmpfs stamps only a file that holds blocks") {
    // shmem_setattr() skips the times at the same size, but shmem_truncate_range(), which it
    // runs whenever the file has pages, stamps them.
    REQUIRE(fs.setattr(f, size_attr(4), kRootCaller).ok());
    CHECK(later(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));

    const uint64_t sparse = mkfile(fs, a, "sparse");
    REQUIRE(fs.setattr(sparse, size_attr(100000), kRootCaller).ok());
    const auto s0 = attr(fs, sparse);
    REQUIRE(s0.st_blocks == 0);
    tick();
    REQUIRE(fs.setattr(sparse, size_attr(100000), kRootCaller).ok());
    CHECK(same(attr(fs, sparse).st_mtim, s0.st_mtim));
    CHECK(same(attr(fs, sparse).st_ctim, s0.st_ctim));

    SECTION("ftruncate to the same size stamps both anyway") {
      SetAttr ft = size_attr(100000);
      ft.valid |= SetAttr::kThroughFile;
      REQUIRE(fs.setattr(sparse, ft, kRootCaller).ok());
      CHECK(later(attr(fs, sparse).st_mtim, s0.st_mtim));
      CHECK(later(attr(fs, sparse).st_ctim, s0.st_ctim));
      CHECK(attr(fs, sparse).st_size == 100000);
    }
  }

  SECTION("open with O_TRUNC empties the file and stamps mtime/ctime, even if empty") {
    REQUIRE(fs.open(f, O_WRONLY | O_TRUNC, kRootCaller).ok());
    CHECK(attr(fs, f).st_size == 0);
    CHECK(alloc_blocks(fs, f) == 0);
    CHECK(later(attr(fs, f).st_mtim, f0.st_mtim));
    const auto f1 = attr(fs, f);
    tick();
    REQUIRE(fs.open(f, O_WRONLY | O_TRUNC, kRootCaller).ok());
    CHECK(later(attr(fs, f).st_mtim, f1.st_mtim));
    CHECK(later(attr(fs, f).st_ctim, f1.st_ctim));
    fs.release(f);
    fs.release(f);
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
  }
  SECTION("open without O_TRUNC changes nothing") {
    REQUIRE(fs.open(f, O_RDONLY, kRootCaller).ok());
    fs.release(f);
    CHECK(attr(fs, f).st_size == 4);
    CHECK(same(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(same(attr(fs, f).st_ctim, f0.st_ctim));
  }
  SECTION("a setattr with nothing to set (chown -1 -1) stamps ctime only") {
    REQUIRE(fs.setattr(f, SetAttr{}, kRootCaller).ok());
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));
    CHECK(same(attr(fs, f).st_mtim, f0.st_mtim));
  }
  SECTION("punching a hole moves mtime/ctime") {
    REQUIRE(fs.fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2, kRootCaller).ok());
    CHECK(later(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));
  }
  SECTION("lookups, reads and listings change no mtime or ctime") {
    REQUIRE(fs.lookup(a, "f").ok());
    (void)read(fs, f, 0, 10);
    (void)readdir(fs, a);
    (void)readdir(fs, a, 0, SIZE_MAX, true);
    REQUIRE(fs.getxattr(f, "user.x").ok());
    REQUIRE(fs.listxattr(f, kUser).ok());
    REQUIRE(fs.lseek(f, 0, SEEK_HOLE).ok());
    REQUIRE(fs.open(f, O_RDONLY, kRootCaller).ok());
    fs.release(f);
    const auto a1 = attr(fs, a), f1 = attr(fs, f);
    CHECK(same(a1.st_mtim, a0.st_mtim));
    CHECK(same(a1.st_ctim, a0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(same(f1.st_ctim, f0.st_ctim));
  }
  SECTION("reads move atime the first time after a change (relatime)") {
    (void)read(fs, f, 0, 10);
    const auto f1 = attr(fs, f);
    CHECK(later(f1.st_atim, f0.st_atim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(same(f1.st_ctim, f0.st_ctim));
    tick();
    (void)read(fs, f, 0, 10);
    CHECK(same(attr(fs, f).st_atim, f1.st_atim));
    tick();
    REQUIRE(write(fs, f, 0, "x") == 1);
    tick();
    (void)read(fs, f, 0, 10);
    CHECK(later(attr(fs, f).st_atim, f1.st_atim));
  }
}

TEST_CASE("Filesystem: readdir and readlink move atime like reads (relatime)", "[fs][time]") {
  // On tmpfs iterate_dir() and readlink() call touch_atime(); FUSE inodes are S_NOATIME in
  // the kernel, so the filesystem itself has to do it, as read() here does.
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t d = mkdir_(fs, kRootIno, "d");
  auto s = fs.symlink(kRootIno, "s", "target", kRootCaller);
  REQUIRE(s.ok());
  const auto d0 = attr(fs, d), s0 = attr(fs, s->st_ino);
  tick();

  SECTION("readdir") {
    (void)readdir(fs, d);
    CHECK(later(attr(fs, d).st_atim, d0.st_atim));
    CHECK(same(attr(fs, d).st_mtim, d0.st_mtim));
  }
  SECTION("readlink") {
    REQUIRE(fs.readlink(s->st_ino).ok());
    CHECK(later(attr(fs, s->st_ino).st_atim, s0.st_atim));
    CHECK(same(attr(fs, s->st_ino).st_mtim, s0.st_mtim));
  }
}
