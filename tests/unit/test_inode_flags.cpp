// Inode flags (chattr: immutable, append-only, nodump, noatime) and RENAME_WHITEOUT: the rules
// the VFS applies to tmpfs and leaves to us for FUSE inodes, their journal records and
// checkpoint field, and version-1 images and nodes (format version 2 added all of this).
#include "util/crc32c.h"
#include "fs/filesystem.h"
#include "fs/inode_flags.h"
#include "node/node.h"
#include "node/node_inspect.h"
#include "journal/records.h"
#include "support/anon_fs.h"
#include "support/callers.h"
#include "support/crafted_checkpoint.h"
#include "support/mounted_node.h"
#include "support/temp_dir.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <map>
#include <string>
#include <sys/sysmacros.h>
#include <unistd.h>

using namespace pkramfs;
using namespace pkramfs::test;

namespace {

const Caller kUser{1000, 2000};
constexpr uint32_t kImmutable = FS_IMMUTABLE_FL, kAppend = FS_APPEND_FL, kNodump = FS_NODUMP_FL,
                   kNoatime = FS_NOATIME_FL;

// A Filesystem over a small anonymous arena (four frames).
struct SmallFs : pkramfs::test::AnonFs {
  explicit SmallFs(uint64_t max_inodes = UINT64_MAX) : AnonFs(4 * kFrameSize, max_inodes) {}
};

uint64_t mkfile(Filesystem &fs, uint64_t dir, const char *name, uint32_t mode = 0666) {
  auto r = fs.mknod(dir, name, S_IFREG | mode, 0, kRoot);
  REQUIRE(r.ok());
  return r->st_ino;
}

uint64_t mkdir_(Filesystem &fs, uint64_t dir, const char *name) {
  auto r = fs.mkdir(dir, name, 0777, kRoot);
  REQUIRE(r.ok());
  return r->st_ino;
}

uint64_t lookup(Filesystem &fs, uint64_t dir, const char *name) {
  auto r = fs.lookup(dir, name);
  if (!r)
    return 0;
  fs.forget(r->st_ino, 1);
  return r->st_ino;
}

SetAttr attr_with(uint32_t valid) {
  SetAttr a;
  a.valid = valid;
  a.mode = 0600;
  a.atime = a.mtime = a.ctime = {12345, 0};
  return a;
}

} // namespace

TEST_CASE("flags: set and get as tmpfs keeps them", "[flags]") {
  SmallFs t;
  Filesystem &fs = *t.fs;
  const uint64_t f = mkfile(fs, kRootIno, "f");
  CHECK(*fs.get_flags(f) == 0);
  const timespec before = fs.getattr(f)->st_ctim;
  usleep(2000);
  REQUIRE(fs.set_flags(f, kNodump | kNoatime).ok());
  CHECK(*fs.get_flags(f) == (kNodump | kNoatime));
  const timespec after = fs.getattr(f)->st_ctim;
  CHECK((after.tv_sec > before.tv_sec ||
         (after.tv_sec == before.tv_sec && after.tv_nsec > before.tv_nsec)));
  // SHMEM_FL_USER_MODIFIABLE only: sync, compression, casefold... change nothing.
  for (uint32_t other : std::initializer_list<uint32_t>{FS_SYNC_FL, FS_COMPR_FL, FS_DIRSYNC_FL,
                                                        FS_CASEFOLD_FL, 0x80000000u})
    CHECK(fs.set_flags(f, other | kImmutable).error() == EOPNOTSUPP);
  CHECK(*fs.get_flags(f) == (kNodump | kNoatime));
  // Only regular files and directories have them (the kernel says ENOTTY for the rest).
  auto fifo = fs.mknod(kRootIno, "p", S_IFIFO | 0644, 0, kRoot);
  auto link = fs.symlink(kRootIno, "l", "f", kRoot);
  CHECK(fs.get_flags(fifo->st_ino).error() == ENOTTY);
  CHECK(fs.set_flags(link->st_ino, kNodump).error() == ENOTTY);
  CHECK(*fs.get_flags(kRootIno) == 0);
  CHECK(fs.get_flags(999).error() == ENOENT);
}

TEST_CASE("flags: fsxattr form as fileattr_fill_flags/xflags and shmem_fileattr_set", "[flags]") {
  const struct fsxattr fa = fsxattr_of_flags(kImmutable | kAppend | kNodump | kNoatime);
  CHECK(fa.fsx_xflags ==
        (FS_XFLAG_IMMUTABLE | FS_XFLAG_APPEND | FS_XFLAG_NODUMP | FS_XFLAG_NOATIME));
  CHECK(fa.fsx_extsize == 0);
  CHECK(*flags_of_fsxattr(fa) == (kImmutable | kAppend | kNodump | kNoatime));
  struct fsxattr sync = fa;
  sync.fsx_xflags |= FS_XFLAG_SYNC; // common, but not kept by tmpfs
  CHECK(flags_of_fsxattr(sync).error() == EOPNOTSUPP);
  struct fsxattr realtime {};
  realtime.fsx_xflags = FS_XFLAG_REALTIME; // fileattr_has_fsx
  CHECK(flags_of_fsxattr(realtime).error() == EOPNOTSUPP);
  struct fsxattr projid {};
  projid.fsx_projid = 7;
  CHECK(flags_of_fsxattr(projid).error() == EOPNOTSUPP);
}

TEST_CASE("flags: an immutable file", "[flags]") {
  SmallFs t;
  Filesystem &fs = *t.fs;
  const uint64_t f = mkfile(fs, kRootIno, "f");
  const uint64_t other = mkfile(fs, kRootIno, "other");
  REQUIRE(fs.open(f, O_RDWR, kRoot).ok()); // opened before: writes still go through (tmpfs)
  REQUIRE(fs.set_flags(f, kImmutable).ok());
  // may_open
  CHECK(fs.open(f, O_WRONLY, kRoot).error() == EPERM);
  CHECK(fs.open(f, O_RDWR | O_APPEND, kRoot).error() == EPERM);
  CHECK(fs.open(f, O_RDONLY | O_TRUNC, kRoot).error() == EPERM);
  REQUIRE(fs.open(f, O_RDONLY, kRoot).ok());
  fs.release(f);
  CHECK(fs.write(f, 0, "abc", 3, kRoot).ok());
  // notify_change and truncate
  for (uint32_t valid : std::initializer_list<uint32_t>{
           SetAttr::kMode, SetAttr::kUid, SetAttr::kGid, SetAttr::kSize,
           SetAttr::kAtime | SetAttr::kMtime, SetAttr::kMtime,
           SetAttr::kAtime | SetAttr::kAtimeNow | SetAttr::kMtime | SetAttr::kMtimeNow,
           SetAttr::kAtime | SetAttr::kAtimeNow}) {
    INFO("valid " << valid);
    CHECK(fs.setattr(f, attr_with(valid), kRoot).error() == EPERM);
  }
  CHECK(fs.setattr(f, attr_with(SetAttr::kSize | SetAttr::kThroughFile), kRoot).ok());
  CHECK(fs.setattr(f, attr_with(0), kRoot).ok()); // chown(f, -1, -1)
  // The kernel's own mtime and ctime back from the writeback cache (fuse_flush_times, through
  // a file open for writing); the same without a file is utimensat(UTIME_OMIT, t).
  CHECK(fs.setattr(f, attr_with(SetAttr::kMtime | SetAttr::kCtime | SetAttr::kThroughFile), kRoot)
            .ok());
  CHECK(fs.setattr(f, attr_with(SetAttr::kMtime | SetAttr::kCtime), kRoot).error() == EPERM);
  CHECK(fs.setxattr(f, "user.a", "1", 0).error() == EPERM);
  CHECK(fs.removexattr(f, "user.a").error() == EPERM);
  CHECK(fs.fallocate(f, 0, 0, 4096, kRoot).error() == EPERM);
  CHECK(fs.fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 4096, kRoot).error() == EPERM);
  CHECK(fs.copy_file_range(other, 0, f, 0, 1, kRoot).error() == EPERM);
  CHECK(fs.link(f, kRootIno, "hard").error() == EPERM);
  CHECK(fs.unlink(kRootIno, "f").error() == EPERM);
  CHECK(fs.rename(kRootIno, "f", kRootIno, "g", 0, kRoot).error() == EPERM);
  CHECK(fs.rename(kRootIno, "other", kRootIno, "f", 0, kRoot).error() == EPERM);
  CHECK(fs.rename(kRootIno, "other", kRootIno, "f", RENAME_EXCHANGE, kRoot).error() == EPERM);
  // The same inode under both names: nothing to do, nothing refused (vfs_rename).
  CHECK(fs.rename(kRootIno, "f", kRootIno, "f", 0, kRoot).ok());
  // And everything works again once the flag is gone.
  REQUIRE(fs.set_flags(f, 0).ok());
  CHECK(fs.setattr(f, attr_with(SetAttr::kMode), kRoot).ok());
  CHECK(fs.link(f, kRootIno, "hard").ok());
  CHECK(fs.unlink(kRootIno, "f").ok());
}

TEST_CASE("flags: an append-only file", "[flags]") {
  SmallFs t;
  Filesystem &fs = *t.fs;
  const uint64_t f = mkfile(fs, kRootIno, "f");
  REQUIRE(fs.set_flags(f, kAppend).ok());
  CHECK(fs.open(f, O_WRONLY, kRoot).error() == EPERM);
  CHECK(fs.open(f, O_RDWR, kRoot).error() == EPERM);
  CHECK(fs.open(f, O_WRONLY | O_APPEND | O_TRUNC, kRoot).error() == EPERM);
  REQUIRE(fs.open(f, O_WRONLY | O_APPEND, kRoot).ok());
  CHECK(fs.write(f, 0, "abc", 3, kRoot).ok());
  // A touch passes (ATTR_TOUCH), in both forms the kernel sends it; explicit times do not.
  CHECK(fs.setattr(f,
                   attr_with(SetAttr::kAtime | SetAttr::kAtimeNow | SetAttr::kMtime |
                             SetAttr::kMtimeNow),
                   kRoot)
            .ok());
  CHECK(fs.setattr(
              f,
              attr_with(SetAttr::kAtime | SetAttr::kAtimeNow | SetAttr::kMtime | SetAttr::kCtime),
              kRoot)
            .ok());
  CHECK(fs.setattr(f, attr_with(SetAttr::kAtime | SetAttr::kMtime), kRoot).error() == EPERM);
  CHECK(fs.setattr(f, attr_with(SetAttr::kMtime | SetAttr::kMtimeNow), kRoot).error() == EPERM);
  CHECK(fs.setattr(f, attr_with(SetAttr::kSize | SetAttr::kThroughFile), kRoot).error() == EPERM);
  CHECK(fs.setattr(f, attr_with(SetAttr::kMode), kRoot).error() == EPERM);
  // vfs_fallocate: plain allocation only.
  CHECK(fs.fallocate(f, 0, 0, 8192, kRoot).ok());
  CHECK(fs.fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 16384, kRoot).ok());
  CHECK(fs.fallocate(f, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 4096, kRoot).error() ==
        EPERM);
  CHECK(fs.fallocate(f, FALLOC_FL_ZERO_RANGE, 0, 4096, kRoot).error() == EPERM);
  CHECK(fs.setxattr(f, "user.a", "1", 0).error() == EPERM);
  CHECK(fs.unlink(kRootIno, "f").error() == EPERM);
  CHECK(fs.link(f, kRootIno, "hard").error() == EPERM);
  fs.release(f);
}

TEST_CASE("flags: immutable and append-only directories", "[flags]") {
  SmallFs t;
  Filesystem &fs = *t.fs;
  const uint64_t imm = mkdir_(fs, kRootIno, "imm");
  const uint64_t app = mkdir_(fs, kRootIno, "app");
  const uint64_t other = mkdir_(fs, kRootIno, "other");
  mkfile(fs, imm, "in");
  mkdir_(fs, imm, "sub");
  mkfile(fs, app, "in");
  mkdir_(fs, app, "sub");
  const uint64_t loose = mkfile(fs, other, "loose");
  mkfile(fs, other, "loose2");
  REQUIRE(fs.set_flags(imm, kImmutable).ok());
  REQUIRE(fs.set_flags(app, kAppend).ok());
  // Nothing new in an immutable directory; an append-only one takes new names.
  CHECK(fs.create(imm, "new", 0644, kRoot).error() == EPERM);
  CHECK(fs.mkdir(imm, "new", 0755, kRoot).error() == EPERM);
  CHECK(fs.symlink(imm, "new", "x", kRoot).error() == EPERM);
  CHECK(fs.mknod(imm, "new", S_IFIFO | 0644, 0, kRoot).error() == EPERM);
  CHECK(fs.link(loose, imm, "new").error() == EPERM);
  CHECK(fs.create(imm, "in", 0644, kRoot).error() == EEXIST); // may_create: EEXIST first
  CHECK(fs.rename(other, "loose", imm, "new", 0, kRoot).error() == EPERM);
  CHECK(fs.mknod(app, "new", S_IFREG | 0644, 0, kRoot).ok());
  CHECK(fs.link(loose, app, "hard").ok());
  CHECK(fs.rename(other, "loose2", app, "moved", 0, kRoot).ok());
  // Neither gives a name up.
  for (uint64_t d : {imm, app}) {
    CHECK(fs.unlink(d, "in").error() == EPERM);
    CHECK(fs.rmdir(d, "sub").error() == EPERM);
    CHECK(fs.rename(d, "in", other, "x", 0, kRoot).error() == EPERM);
    CHECK(fs.rename(d, "in", d, "x", 0, kRoot).error() == EPERM);
    CHECK(fs.rename(other, "loose", d, "in", 0, kRoot).error() == EPERM); // over a name
    CHECK(fs.rename(other, "loose", d, "in", RENAME_EXCHANGE, kRoot).error() == EPERM);
    CHECK(fs.setxattr(d, "user.a", "1", 0).error() == EPERM);
    CHECK(fs.setattr(d, attr_with(SetAttr::kMode), kRoot).error() == EPERM);
  }
  // The directory itself keeps its name too.
  CHECK(fs.rename(kRootIno, "imm", kRootIno, "imm2", 0, kRoot).error() == EPERM);
  CHECK(fs.rmdir(kRootIno, "app").error() == EPERM);
  // Entries of such a directory are not themselves protected.
  CHECK(fs.write(lookup(fs, imm, "in"), 0, "x", 1, kRoot).ok());
}

TEST_CASE("flags: new inodes take nodump and noatime from their directory", "[flags]") {
  SmallFs t;
  Filesystem &fs = *t.fs;
  const uint64_t d = mkdir_(fs, kRootIno, "d");
  REQUIRE(fs.set_flags(d, kNodump | kNoatime).ok());
  CHECK(*fs.get_flags(mkfile(fs, d, "f")) == (kNodump | kNoatime));
  CHECK(*fs.get_flags(mkdir_(fs, d, "sub")) == (kNodump | kNoatime));
  const uint64_t e = mkdir_(fs, kRootIno, "e");
  REQUIRE(fs.set_flags(e, kAppend | kNodump).ok());
  CHECK(*fs.get_flags(mkfile(fs, e, "f")) == kNodump); // never immutable or append-only
}

TEST_CASE("flags: noatime keeps atime under strictatime", "[flags]") {
  SmallFs t;
  Filesystem &fs = *t.fs;
  fs.set_atime_policy({AtimePolicy::Mode::kStrictatime, false});
  const uint64_t f = mkfile(fs, kRootIno, "f");
  REQUIRE(fs.setattr(f, attr_with(SetAttr::kAtime), kRoot).ok());
  REQUIRE(fs.set_flags(f, kNoatime).ok());
  struct Sink final : ReadSink {
    void deliver(std::span<const iovec>) override {}
  } sink;
  REQUIRE(fs.read(f, 0, 10, sink).ok());
  CHECK(fs.getattr(f)->st_atim.tv_sec == 12345);
  REQUIRE(fs.set_flags(f, 0).ok());
  REQUIRE(fs.read(f, 0, 10, sink).ok());
  CHECK(fs.getattr(f)->st_atim.tv_sec != 12345);
}

TEST_CASE("RENAME_WHITEOUT: the old name becomes a whiteout, as shmem_whiteout makes it",
          "[flags][whiteout]") {
  SmallFs t;
  Filesystem &fs = *t.fs;
  const uint64_t d = mkdir_(fs, kRootIno, "d");
  REQUIRE(fs.setattr(
                d,
                [] {
                  SetAttr a;
                  a.valid = SetAttr::kMode | SetAttr::kGid;
                  a.mode = 02777;
                  a.gid = 777;
                  return a;
                }(),
                kRoot)
              .ok());
  const uint64_t f = mkfile(fs, d, "f");
  const uint64_t size_before = fs.getattr(d)->st_size;
  REQUIRE(fs.rename(d, "f", kRootIno, "moved", RENAME_WHITEOUT, kUser).ok());
  CHECK(lookup(fs, kRootIno, "moved") == f);
  const uint64_t w = lookup(fs, d, "f");
  REQUIRE(w != 0);
  CHECK(w != f);
  const struct stat st = *fs.getattr(w);
  CHECK(st.st_mode == S_IFCHR);
  CHECK(st.st_rdev == makedev(0, 0));
  CHECK(st.st_uid == 1000);
  CHECK(st.st_gid == 777); // the setgid directory's group (inode_init_owner)
  CHECK(st.st_nlink == 1);
  CHECK(fs.getattr(d)->st_size == static_cast<off_t>(size_before));
  CHECK(fs.getattr(d)->st_mtim.tv_nsec == st.st_mtim.tv_nsec);
  // With RENAME_NOREPLACE, over an existing name: EEXIST and no whiteout.
  mkfile(fs, kRootIno, "a");
  mkfile(fs, kRootIno, "b");
  CHECK(
      fs.rename(kRootIno, "a", kRootIno, "b", RENAME_WHITEOUT | RENAME_NOREPLACE, kRoot).error() ==
      EEXIST);
  REQUIRE(fs.rename(kRootIno, "a", kRootIno, "c", RENAME_WHITEOUT | RENAME_NOREPLACE, kRoot).ok());
  CHECK(S_ISCHR(fs.getattr(lookup(fs, kRootIno, "a"))->st_mode));
  // Over an existing name, and a directory.
  REQUIRE(fs.rename(kRootIno, "c", kRootIno, "b", RENAME_WHITEOUT, kRoot).ok());
  CHECK(S_ISCHR(fs.getattr(lookup(fs, kRootIno, "c"))->st_mode));
  mkdir_(fs, kRootIno, "dir");
  REQUIRE(fs.rename(kRootIno, "dir", d, "dir", RENAME_WHITEOUT, kRoot).ok());
  CHECK(S_ISCHR(fs.getattr(lookup(fs, kRootIno, "dir"))->st_mode));
  CHECK(fs.rename(kRootIno, "b", kRootIno, "x", RENAME_WHITEOUT | RENAME_EXCHANGE, kRoot).error() ==
        EINVAL);
  std::vector<std::string> problems;
  fs.verify(problems);
  CHECK(problems.empty());
}

TEST_CASE("RENAME_WHITEOUT: no inode left for the whiteout is ENOSPC with nothing changed",
          "[flags][whiteout]") {
  SmallFs t(3); // the root and two files
  Filesystem &fs = *t.fs;
  const uint64_t a = mkfile(fs, kRootIno, "a");
  mkfile(fs, kRootIno, "b");
  CHECK(fs.rename(kRootIno, "a", kRootIno, "c", RENAME_WHITEOUT, kRoot).error() == ENOSPC);
  CHECK(lookup(fs, kRootIno, "a") == a);
  CHECK(lookup(fs, kRootIno, "c") == 0);
  // Two links of one inode: vfs_rename does nothing, so no whiteout and no ENOSPC.
  REQUIRE(fs.unlink(kRootIno, "b").ok());
  REQUIRE(fs.link(a, kRootIno, "a2").ok());
  CHECK(fs.rename(kRootIno, "a", kRootIno, "a2", RENAME_WHITEOUT, kRoot).ok());
  CHECK(lookup(fs, kRootIno, "a") == a);
}

TEST_CASE("flags and whiteouts: records encode and decode, bad ones are refused",
          "[flags][persistence]") {
  const FlagsRecord flags{42, kImmutable | kNoatime, {7, 8}};
  std::string bytes = payload_of(flags);
  Decoder d(bytes.data(), bytes.size());
  FlagsRecord back;
  REQUIRE(decode(d, back));
  CHECK(back.ino == 42);
  CHECK(back.flags == (kImmutable | kNoatime));
  CHECK(back.ctime.tv_sec == 7);
  CHECK(back.ctime.tv_nsec == 8);
  const std::string bad = payload_of(FlagsRecord{42, FS_SYNC_FL, {}});
  Decoder bd(bad.data(), bad.size());
  CHECK_FALSE(decode(bd, back));

  WhiteoutRenameRecord w;
  w.rename = {1, 2, RENAME_WHITEOUT, {3, 4}, "old", "new"};
  w.whiteout_ino = 9;
  w.uid = 10;
  w.gid = 11;
  bytes = payload_of(w);
  Decoder wd(bytes.data(), bytes.size());
  WhiteoutRenameRecord wback;
  REQUIRE(decode(wd, wback));
  CHECK(wback.rename.name == "old");
  CHECK(wback.rename.new_name == "new");
  CHECK(wback.rename.flags == RENAME_WHITEOUT);
  CHECK(wback.whiteout_ino == 9);
  CHECK(wback.gid == 11);
  Decoder shortd(bytes.data(), bytes.size() - 1);
  CHECK_FALSE(decode(shortd, wback));

  // Replay refuses what the live operation could not have written.
  SmallFs t;
  Filesystem &fs = *t.fs;
  const uint64_t f = mkfile(fs, kRootIno, "f");
  std::string image;
  REQUIRE(fs.checkpoint(2, [&](std::string_view i) -> Result<void> {
              image.assign(i);
              return {};
            }).ok());
  SmallFs u;
  std::string why;
  REQUIRE(u->load_image(image, why).ok());
  auto flags_ok = u->replay(PKRAMFS_JREC_FLAGS, payload_of(FlagsRecord{f, kAppend, {}}), why);
  CHECK(flags_ok.ok());
  CHECK(u->replay(PKRAMFS_JREC_FLAGS, payload_of(FlagsRecord{999, kAppend, {}}), why).error() ==
        EUCLEAN);
  WhiteoutRenameRecord exchange;
  exchange.rename = {kRootIno, kRootIno, RENAME_WHITEOUT | RENAME_EXCHANGE, {}, "f", "g"};
  exchange.whiteout_ino = f + 1;
  CHECK(u->replay(PKRAMFS_JREC_RENAME_WHITEOUT, payload_of(exchange), why).error() == EUCLEAN);
  WhiteoutRenameRecord reused = exchange;
  reused.rename.flags = RENAME_WHITEOUT;
  reused.whiteout_ino = f; // a number in use
  CHECK(u->replay(PKRAMFS_JREC_RENAME_WHITEOUT, payload_of(reused), why).error() == EUCLEAN);
  const RenameRecord plain_with_whiteout{kRootIno, kRootIno, RENAME_WHITEOUT, {}, "f", "g"};
  CHECK(u->replay(PKRAMFS_JREC_RENAME, payload_of(plain_with_whiteout), why).error() == EUCLEAN);
}

TEST_CASE("flags and whiteouts survive a crash (journal) and a clean close (checkpoint)",
          "[flags][persistence]") {
  const std::string path = temp_node();
  const Caller user{1000, 1000};
  auto expect_tree = [](Filesystem &fs) {
    const uint64_t d = lookup(fs, kRootIno, "d");
    CHECK(*fs.get_flags(d) == (kNodump | kAppend));
    const uint64_t f = lookup(fs, d, "f");
    CHECK(*fs.get_flags(f) == (kImmutable | kNodump));
    CHECK(fs.unlink(d, "f").error() == EPERM);
    const uint64_t w = lookup(fs, kRootIno, "moved-from");
    REQUIRE(w != 0);
    const struct stat st = *fs.getattr(w);
    CHECK(st.st_mode == S_IFCHR);
    CHECK(st.st_rdev == 0);
    CHECK(st.st_uid == 1000);
    CHECK(lookup(fs, kRootIno, "moved-to") != 0);
    std::vector<std::string> problems;
    fs.verify(problems);
    CHECK(problems.empty());
  };
  {
    Mounted m(path);
    Filesystem &fs = *m.fs;
    const uint64_t d = mkdir_(fs, kRootIno, "d");
    REQUIRE(fs.set_flags(d, kNodump).ok());
    const uint64_t f = mkfile(fs, d, "f"); // nodump, inherited
    REQUIRE(fs.set_flags(f, *fs.get_flags(f) | kImmutable).ok());
    REQUIRE(fs.set_flags(d, kNodump | kAppend).ok());
    mkfile(fs, kRootIno, "moved-from");
    REQUIRE(fs.rename(kRootIno, "moved-from", kRootIno, "moved-to", RENAME_WHITEOUT, user).ok());
  }
  {
    Mounted m(path); // journal replay
    expect_tree(*m.fs);
    REQUIRE(m.node->checkpoint(*m.fs).ok());
  }
  {
    Mounted m(path); // the checkpoint
    expect_tree(*m.fs);
    auto report = check_node(path);
    REQUIRE(report.ok());
    CHECK(report->clean);
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST_CASE("format version 1: images and nodes still load, and a node is upgraded",
          "[flags][persistence]") {
  using pkramfs::test::CraftedDir;
  const std::vector<CraftedDir> dirs = {{1, 1, {{"a", 10}}, 1}, {10, 1, {}, 0}};
  {
    SmallFs t;
    std::string why;
    INFO(why);
    CHECK(t->load_image(crafted_dirs_image(dirs, 11, 3, 1), why).ok());
    CHECK(*t->get_flags(10) == 0);
  }
  {
    // Version 1 had no flags: its reserved field must be 0.
    SmallFs t;
    std::string why;
    CHECK(t->load_image(crafted_dirs_image(dirs, 11, 3, 1, kNodump), why).error() == EUCLEAN);
  }
  {
    SmallFs t;
    std::string why;
    REQUIRE(t->load_image(crafted_dirs_image(dirs, 11, 3, 2, kNodump), why).ok());
    CHECK(*t->get_flags(10) == kNodump);
  }
  for (uint32_t version : {0u, PKRAMFS_FORMAT_VERSION + 1}) {
    SmallFs t;
    std::string why;
    CHECK(t->load_image(crafted_dirs_image(dirs, 11, 3, version), why).error() == EUCLEAN);
  }

  // A node as version 1 wrote it: superblocks and checkpoint image say 1.
  const std::string path = temp_node();
  {
    Mounted m(path);
    mkfile(*m.fs, kRootIno, "old");
    REQUIRE(m.node->checkpoint(*m.fs).ok());
    m.node->set_state(PKRAMFS_STATE_CLEAN);
  }
  const int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  std::map<off_t, std::string> rewritten; // both copies may name the same image
  for (off_t at : {off_t{0}, off_t{PKRAMFS_SB_COPY_OFFSET}}) {
    pkramfs_superblock sb{};
    REQUIRE(pread(fd, &sb, sizeof sb, at) == static_cast<ssize_t>(sizeof sb));
    pkramfs_ckpt_slot &slot = sb.slots[sb.current_slot];
    const off_t image_at = static_cast<off_t>(slot.first_frame * kFrameSize);
    std::string &image = rewritten[image_at];
    if (image.empty()) {
      image.resize(slot.bytes);
      REQUIRE(pread(fd, image.data(), image.size(), image_at) ==
              static_cast<ssize_t>(image.size()));
      image = pkramfs::test::older_image(image, 1); // shorter: no birth times
      REQUIRE(pwrite(fd, image.data(), image.size(), image_at) ==
              static_cast<ssize_t>(image.size()));
    }
    slot.bytes = image.size();
    slot.crc32c = crc32c(image.data(), image.size());
    sb.version = 1;
    sb.crc32c = crc32c(&sb, offsetof(pkramfs_superblock, crc32c));
    REQUIRE(pwrite(fd, &sb, sizeof sb, at) == static_cast<ssize_t>(sizeof sb));
  }
  auto report = check_node(path);
  REQUIRE(report.ok());
  CHECK(report->clean);
  {
    Mounted m(path);
    CHECK(lookup(*m.fs, kRootIno, "old") != 0);
    m.node->set_state(PKRAMFS_STATE_DIRTY); // what a mount writes first
    REQUIRE(m.fs->set_flags(lookup(*m.fs, kRootIno, "old"), kNodump).ok());
  }
  pkramfs_superblock sb{};
  REQUIRE(pread(fd, &sb, sizeof sb, 0) == static_cast<ssize_t>(sizeof sb));
  pkramfs_superblock sb2{};
  REQUIRE(pread(fd, &sb2, sizeof sb2, PKRAMFS_SB_COPY_OFFSET) == static_cast<ssize_t>(sizeof sb2));
  ::close(fd);
  CHECK((sb.sequence > sb2.sequence ? sb : sb2).version == PKRAMFS_FORMAT_VERSION);
  {
    Mounted m(path);
    CHECK(*m.fs->get_flags(lookup(*m.fs, kRootIno, "old")) == kNodump);
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}
