// Birth time (statx btime, format version 3): set when an inode is made, from the clock of its
// first ctime, never changed afterwards, kept by checkpoints and rebuilt by journal replay from
// the creating record's time; unknown for inodes of a version-1/2 image, and still unknown
// after such a node is checkpointed again.
#include "support/crafted_checkpoint.h"
#include "fs/filesystem.h"
#include "support/mounted_node.h"
#include "support/temp_dir.h"
#include "storage/frame_source.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <linux/fs.h>
#include <optional>
#include <string>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <vector>

using namespace pkramfs;
using pkramfs::test::crafted_dirs_image;
using pkramfs::test::Mounted;
using pkramfs::test::temp_node;

namespace {

const Caller kRoot{0, 0};

bool same(const timespec &a, const timespec &b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

std::optional<timespec> btime_of(Filesystem &fs, uint64_t ino) {
  auto r = fs.statx(ino);
  REQUIRE(r.ok());
  return r->btime;
}

timespec ctime_of(Filesystem &fs, uint64_t ino) {
  auto r = fs.getattr(ino);
  REQUIRE(r.ok());
  return r->st_ctim;
}

uint64_t lookup(Filesystem &fs, uint64_t dir, const char *name) {
  auto r = fs.lookup(dir, name);
  REQUIRE(r.ok());
  fs.forget(r->st_ino, 1);
  return r->st_ino;
}

// Makes one inode of every kind in the root; their inode numbers.
struct Tree {
  uint64_t file, dir, link, fifo, dev, tmp, whiteout;
};

Tree make_tree(Filesystem &fs) {
  Tree t{};
  auto f = fs.mknod(kRootIno, "f", S_IFREG | 0644, 0, kRoot);
  auto d = fs.mkdir(kRootIno, "d", 0755, kRoot);
  auto l = fs.symlink(kRootIno, "l", "f", kRoot);
  auto p = fs.mknod(kRootIno, "p", S_IFIFO | 0644, 0, kRoot);
  auto c = fs.mknod(kRootIno, "c", S_IFCHR | 0644, makedev(1, 3), kRoot);
  auto tmp = fs.tmpfile(kRootIno, S_IFREG | 0600, true, kRoot);
  REQUIRE((f.ok() && d.ok() && l.ok() && p.ok() && c.ok() && tmp.ok()));
  REQUIRE(fs.link(tmp->st_ino, kRootIno, "t").ok());
  REQUIRE(fs.mknod(d->st_ino, "moved", S_IFREG | 0644, 0, kRoot).ok());
  REQUIRE(fs.rename(d->st_ino, "moved", kRootIno, "moved", RENAME_WHITEOUT, kRoot).ok());
  t = {f->st_ino,
       d->st_ino,
       l->st_ino,
       p->st_ino,
       c->st_ino,
       tmp->st_ino,
       lookup(fs, d->st_ino, "moved")};
  return t;
}

} // namespace

TEST_CASE("btime: every new inode is born at its first ctime, which no change moves", "[btime]") {
  const std::string path = temp_node();
  Mounted m(path);
  Filesystem &fs = *m.fs;
  REQUIRE(btime_of(fs, kRootIno)); // a fresh node's root too
  const Tree t = make_tree(fs);
  for (uint64_t ino : {t.file, t.link, t.fifo, t.dev, t.whiteout}) {
    INFO("inode " << ino);
    auto b = btime_of(fs, ino);
    REQUIRE(b);
    CHECK(same(*b, ctime_of(fs, ino))); // nothing changed them since
  }
  // The directory's ctime moved with the entries made in it, the tmpfile's with its link.
  for (uint64_t ino : {t.dir, t.tmp}) {
    auto b = btime_of(fs, ino);
    REQUIRE(b);
    CHECK(b->tv_sec <= ctime_of(fs, ino).tv_sec);
  }
  const std::optional<timespec> born = btime_of(fs, t.file);
  usleep(2000);
  SetAttr a;
  a.valid = SetAttr::kMode | SetAttr::kAtime | SetAttr::kMtime;
  a.mode = 0600;
  a.atime = a.mtime = {12345, 6};
  REQUIRE(fs.setattr(t.file, a, kRoot).ok());
  REQUIRE(fs.write(t.file, 0, "data", 4, kRoot).ok());
  REQUIRE(fs.set_flags(t.file, FS_NODUMP_FL).ok());
  REQUIRE(fs.setxattr(t.file, "user.k", "v", 0).ok());
  REQUIRE(fs.link(t.file, kRootIno, "f2").ok());
  REQUIRE(fs.rename(kRootIno, "f", t.dir, "f", 0, kRoot).ok());
  CHECK(!same(ctime_of(fs, t.file), *born));
  CHECK(same(*btime_of(fs, t.file), *born));
  auto sx = fs.statx(t.file);
  REQUIRE(sx.ok());
  CHECK(sx->flags == FS_NODUMP_FL);
  CHECK(sx->st.st_size == 4);
  // A later inode is born later.
  usleep(2000);
  auto g = fs.mknod(kRootIno, "g", S_IFREG | 0644, 0, kRoot);
  REQUIRE(g.ok());
  const timespec later = *btime_of(fs, g->st_ino);
  CHECK((later.tv_sec > born->tv_sec ||
         (later.tv_sec == born->tv_sec && later.tv_nsec > born->tv_nsec)));
  CHECK(fs.statx(999999).error() == ENOENT);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST_CASE("btime: kept by a checkpoint, rebuilt by journal replay", "[btime][persistence]") {
  const std::string path = temp_node();
  Tree t{};
  std::vector<std::pair<uint64_t, timespec>> born;
  auto record = [&](Filesystem &fs) {
    born.clear();
    for (uint64_t ino : {kRootIno, t.file, t.dir, t.link, t.fifo, t.dev, t.tmp, t.whiteout})
      born.emplace_back(ino, *btime_of(fs, ino));
  };
  auto expect_same = [&](Filesystem &fs) {
    for (auto &[ino, b] : born) {
      INFO("inode " << ino);
      auto now = btime_of(fs, ino);
      REQUIRE(now);
      CHECK(same(*now, b));
    }
  };
  {
    Mounted m(path); // every inode only in the journal
    t = make_tree(*m.fs);
    record(*m.fs);
  }
  {
    Mounted m(path); // replayed
    expect_same(*m.fs);
    REQUIRE(m.node->checkpoint(*m.fs).ok());
    m.node->set_state(PKRAMFS_STATE_CLEAN);
  }
  {
    Mounted m(path); // from the checkpoint
    expect_same(*m.fs);
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST_CASE("btime: unknown for the inodes of a version-1 or version-2 image, and stays unknown",
          "[btime][persistence]") {
  using pkramfs::test::CraftedDir;
  const std::vector<CraftedDir> dirs = {{1, 1, {{"a", 10}}, 1}, {10, 1, {}, 0}};
  auto make_fs = [] {
    auto source = make_anon_frame_source(4);
    REQUIRE(source.ok());
    return source;
  };
  for (uint32_t version : {1u, 2u}) {
    INFO("version " << version);
    auto source = make_fs();
    Filesystem fs(std::make_unique<Arena>(**source, 0, 4 * kBlocksPerFrame), FsConfig{100});
    std::string why;
    REQUIRE(fs.load_image(crafted_dirs_image(dirs, 11, 3, version), why).ok());
    fs.finish_restore();
    CHECK(!btime_of(fs, kRootIno));
    CHECK(!btime_of(fs, 10));
    // What is made now has one; what was there keeps having none through a new checkpoint.
    auto f = fs.mknod(10, "new", S_IFREG | 0644, 0, kRoot);
    REQUIRE(f.ok());
    CHECK(btime_of(fs, f->st_ino));
    std::string image;
    REQUIRE(fs.checkpoint(4, [&](std::string_view i) -> Result<void> {
                image = i;
                return {};
              }).ok());
    pkramfs_ckpt_header h{};
    std::memcpy(&h, image.data(), sizeof h);
    CHECK(h.version == PKRAMFS_FORMAT_VERSION);
    auto source2 = make_fs();
    Filesystem again(std::make_unique<Arena>(**source2, 0, 4 * kBlocksPerFrame), FsConfig{100});
    REQUIRE(again.load_image(image, why).ok());
    again.finish_restore();
    CHECK(!btime_of(again, kRootIno));
    CHECK(!btime_of(again, 10));
    auto b = btime_of(again, f->st_ino);
    REQUIRE(b);
    CHECK(same(*b, *btime_of(fs, f->st_ino)));
  }
  {
    // The crafted version-3 image's birth times (1000 s) load as they are.
    auto source = make_fs();
    Filesystem fs(std::make_unique<Arena>(**source, 0, 4 * kBlocksPerFrame), FsConfig{100});
    std::string why;
    REQUIRE(fs.load_image(crafted_dirs_image(dirs, 11, 3, 3), why).ok());
    auto b = btime_of(fs, 10);
    REQUIRE(b);
    CHECK(same(*b, timespec{1000, 0}));
  }
}

TEST_CASE("btime: a checkpoint's impossible birth time or reserved word is refused",
          "[btime][persistence]") {
  using pkramfs::test::CraftedDir;
  const std::vector<CraftedDir> dirs = {{1, 1, {}, 0}};
  const std::string good = crafted_dirs_image(dirs, 2, 3, 3);
  const size_t inode_at = sizeof(pkramfs_ckpt_header);
  auto with = [&](size_t field, uint32_t value, int64_t sec) {
    std::string image = good;
    std::memcpy(image.data() + inode_at + field, &value, sizeof value);
    std::memcpy(image.data() + inode_at + offsetof(pkramfs_ckpt_inode, btime_sec), &sec,
                sizeof sec);
    return image;
  };
  const size_t nsec = offsetof(pkramfs_ckpt_inode, btime_nsec);
  const size_t reserved = offsetof(pkramfs_ckpt_inode, reserved);
  struct Case {
    std::string image;
    bool ok;
  };
  const Case cases[] = {
      {with(nsec, 999999999, 5), true},
      {with(nsec, PKRAMFS_BTIME_UNKNOWN, 0), true},
      {with(nsec, 1000000000, 5), false},
      {with(nsec, PKRAMFS_BTIME_UNKNOWN, 5), false}, // unknown has no seconds
      {with(reserved, 1, 5), false},
  };
  for (const Case &c : cases) {
    auto source = make_anon_frame_source(4);
    REQUIRE(source.ok());
    Filesystem fs(std::make_unique<Arena>(**source, 0, 4 * kBlocksPerFrame), FsConfig{100});
    std::string why;
    auto loaded = fs.load_image(c.image, why);
    INFO(why);
    CHECK(loaded.ok() == c.ok);
    if (!c.ok)
      CHECK(loaded.error() == EUCLEAN);
  }
}
