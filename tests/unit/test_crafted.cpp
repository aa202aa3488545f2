// Crafted nodes, checkpoint images, journal records and export images (the outside review's
// M1-M3 and L6): values that pass every CRC but describe something impossible. Each is refused
// with one line naming the problem and the node's bytes unchanged, or gives a tree that is
// consistent; never a crash, an endless loop or memory that is not there.
#include "util/crc32c.h"
#include "fs/filesystem.h"
#include "storage/frame_source.h"
#include "util/geometry.h"
#include "node/node.h"
#include "export/node_export.h"
#include "node/node_inspect.h"
#include "journal/records.h"
#include "support/export_header.h"
#include "support/anon_fs.h"
#include "support/callers.h"
#include "support/crafted_checkpoint.h"
#include "support/mounted_node.h"
#include "support/temp_dir.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <future>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using namespace pkramfs;
using namespace pkramfs::test;

namespace {

// A Filesystem over a small anonymous arena (one frame, 4096 inodes), as a restore builds one.
struct SmallFs : pkramfs::test::AnonFs {
  SmallFs() : AnonFs(kFrameSize, 4096) {}
};

std::string checkpoint_of(Filesystem &fs) {
  std::string image;
  REQUIRE(fs.checkpoint(5, [&](std::string_view i) -> Result<void> {
              image.assign(i);
              return {};
            }).ok());
  return image;
}

void set_next_ino(std::string &image, uint64_t next_ino) {
  std::memcpy(image.data() + offsetof(pkramfs_ckpt_header, next_ino), &next_ino, 8);
}

// A whole file's CRC: "the node's bytes are unchanged".
uint32_t file_crc(const std::string &path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  uint32_t crc = 0;
  std::string buf(1 << 20, '\0');
  ssize_t n;
  while ((n = ::read(fd, buf.data(), buf.size())) > 0)
    crc = crc32c(crc, buf.data(), static_cast<size_t>(n));
  ::close(fd);
  return crc;
}

// Rewrites both superblock copies through `edit`, with valid CRCs: a crafted node.
template <class F> void edit_superblocks(const std::string &path, F &&edit) {
  const int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  for (off_t at : {off_t{0}, off_t{PKRAMFS_SB_COPY_OFFSET}}) {
    pkramfs_superblock sb{};
    REQUIRE(pread(fd, &sb, sizeof sb, at) == static_cast<ssize_t>(sizeof sb));
    edit(sb);
    sb.crc32c = crc32c(&sb, offsetof(pkramfs_superblock, crc32c));
    REQUIRE(pwrite(fd, &sb, sizeof sb, at) == static_cast<ssize_t>(sizeof sb));
  }
  ::close(fd);
}

// Mounting and `pkramfs-ctl check` both refuse the node at `path` naming `needle`, and leave it
// byte for byte as it was.
void expect_node_refused(const std::string &path, const std::string &needle) {
  const uint32_t before = file_crc(path);
  std::string why;
  {
    auto opened = Node::open_shm(path, NodeParams{8 * kMiB / kBlockSize, UINT64_MAX, {}}, why);
    if (opened) { // a node that opens must still refuse its tree
      auto fs = std::make_unique<Filesystem>(
          std::make_unique<Arena>(opened.value()->frames(), opened.value()->data_first_frame(),
                                  opened.value()->limit_blocks()),
          FsConfig{});
      auto restored = opened.value()->restore(*fs, why);
      CHECK_FALSE(restored.ok());
    } else {
      CHECK(opened.error() == EUCLEAN);
    }
  }
  INFO(why);
  CHECK(why.find(needle) != std::string::npos);
  CHECK(why.find('\n') == std::string::npos);
  auto report = check_node(path);
  REQUIRE(report.ok());
  CHECK_FALSE(report->clean);
  REQUIRE_FALSE(report->problems.empty());
  CHECK(report->problems.front().find(needle) != std::string::npos);
  CHECK(file_crc(path) == before);
}

} // namespace

TEST_CASE("crafted node: a checkpoint slot whose frame numbers wrap is refused (M1)", "[crafted]") {
  const std::string dir = temp_dir(), path = dir + "/node";
  {
    Mounted m(path, 8 * kMiB);
    REQUIRE(m.fs->mkdir(kRootIno, "d", 0755, kRoot).ok());
    REQUIRE(m.node->checkpoint(*m.fs).ok()); // both slots in use...
    m.node->set_state(PKRAMFS_STATE_CLEAN);  // ...in both superblock copies
  }
  edit_superblocks(path, [](pkramfs_superblock &sb) {
    REQUIRE((sb.slots[0].generation != 0 && sb.slots[1].generation != 0));
  });
  // 2^43 frames are 2^64 bytes: (first_frame + nr_frames) * 2 MiB wraps to the real offset, so
  // without the bound the image still reads back with its CRC.
  const uint64_t wrap = 1ull << 43;
  SECTION("the slot restored") {
    edit_superblocks(
        path, [&](pkramfs_superblock &sb) { sb.slots[sb.current_slot].first_frame += wrap; });
    expect_node_refused(path, "has an impossible location");
  }
  SECTION("the other slot (mounted, then swept at the next checkpoint)") {
    edit_superblocks(
        path, [&](pkramfs_superblock &sb) { sb.slots[1 - sb.current_slot].first_frame += wrap; });
    expect_node_refused(path, "has an impossible location");
  }
  SECTION("a slot past the checkpoint reserve, without wrapping") {
    edit_superblocks(path, [&](pkramfs_superblock &sb) {
      sb.slots[1 - sb.current_slot].first_frame = sb.ckpt_first_frame + 600;
    });
    expect_node_refused(path, "has an impossible location");
  }
  SECTION("nr_frames that wrap the end") {
    edit_superblocks(path, [&](pkramfs_superblock &sb) {
      sb.slots[1 - sb.current_slot].nr_frames = UINT64_MAX - sb.ckpt_first_frame;
    });
    expect_node_refused(path, "has an impossible location");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("frame sources refuse a frame count whose byte size wraps", "[crafted]") {
  auto anon = make_anon_frame_source((1ull << 43) + 1);
  CHECK(anon.error() == ENOMEM);
}

TEST_CASE("crafted checkpoint: next_ino out of range or not above every inode is refused (M2)",
          "[crafted]") {
  SmallFs t;
  REQUIRE(t.fs->mkdir(kRootIno, "d", 0755, kRoot).ok());
  std::string image = checkpoint_of(*t.fs); // inodes 1 and 2, next_ino 3
  std::string why;
  for (uint64_t bad : {UINT64_MAX, kInoLimit + 1, uint64_t{2}, uint64_t{1}, uint64_t{0}}) {
    set_next_ino(image, bad);
    SmallFs u;
    INFO("next_ino " << bad);
    CHECK(u.fs->load_image(image, why).error() == EUCLEAN);
    CHECK(why.find("next inode number") != std::string::npos);
  }
}

TEST_CASE("next_ino at the limit: creating fails with ENOSPC and changes nothing (M2)",
          "[crafted]") {
  SmallFs t;
  std::string image = checkpoint_of(*t.fs);
  set_next_ino(image, kInoLimit);
  SmallFs u;
  std::string why;
  REQUIRE(u.fs->load_image(image, why).ok());
  u.fs->finish_restore();
  // As user nobody: `touch n1; touch n2` was a use-after-free with next_ino 2^64-1.
  const Caller nobody{65534, 65534};
  CHECK(u.fs->create(kRootIno, "n1", 0644, nobody).error() == ENOSPC);
  CHECK(u.fs->create(kRootIno, "n2", 0644, nobody).error() == ENOSPC);
  CHECK(u.fs->mkdir(kRootIno, "d", 0755, nobody).error() == ENOSPC);
  CHECK(u.fs->inode_count() == 1);
  std::vector<std::string> problems;
  u.fs->verify(problems);
  CHECK(problems.empty());
}

TEST_CASE("crafted checkpoint: directories naming each other are refused (M3)", "[crafted]") {
  // 10 names 11 and 11 names 10: each named once, link counts right, neither under the root.
  const std::string image = crafted_dirs_image(
      {{1, 1, {{"x", 12}}, 1}, {10, 11, {{"b", 11}}, 1}, {11, 10, {{"a", 10}}, 1}, {12, 1, {}, 0}},
      13, 3);
  SmallFs t;
  std::string why;
  CHECK(t.fs->load_image(image, why).error() == EUCLEAN);
  CHECK(why.find("cannot be reached from the root") != std::string::npos);
  CHECK(why.find('\n') == std::string::npos);
  // The same tree with 10 under the root loads: the check is about reachability alone.
  const std::string fine = crafted_dirs_image({{1, 1, {{"x", 12}, {"top", 10}}, 2},
                                          {10, 1, {{"b", 11}}, 1},
                                          {11, 10, {}, 0},
                                          {12, 1, {}, 0}},
                                         13, 3);
  SmallFs u;
  INFO(why);
  REQUIRE(u.fs->load_image(fine, why).ok());
  // A RENAME record moving x into its own subtree, and a cycle-free one, replay in bounded time.
  const RenameRecord into_own{kRootIno, 10, 0, {}, "top", "again"};
  CHECK(u.fs->replay(PKRAMFS_JREC_RENAME, payload_of(into_own), why).error() == EUCLEAN);
  const RenameRecord move{kRootIno, 11, 0, {}, "x", "x"};
  CHECK(u.fs->replay(PKRAMFS_JREC_RENAME, payload_of(move), why).ok());
}

TEST_CASE("crafted checkpoint: xattr names setxattr would refuse are refused (L6)", "[crafted]") {
  for (const char *name : {"foo.bar", "user.", "", "trusted"}) {
    SmallFs t;
    auto f = t.fs->create(kRootIno, "f", 0644, kRoot);
    REQUIRE(f.ok());
    REQUIRE(t.fs->setxattr(f->st_ino, "user.abcdefg", "v", 0).ok());
    std::string image = checkpoint_of(*t.fs);
    // Same length, so the image's sizes stay right: only the name changes.
    const size_t at = image.find("user.abcdefg");
    REQUIRE(at != std::string::npos);
    std::string crafted = image.substr(0, at - 8);
    Encoder e(crafted);
    e.u32(static_cast<uint32_t>(std::strlen(name)));
    e.u32(1);
    e.bytes(name);
    crafted += image.substr(at + 12);
    pkramfs_ckpt_header h;
    std::memcpy(&h, crafted.data(), sizeof h);
    h.bytes = crafted.size();
    std::memcpy(crafted.data(), &h, sizeof h);
    SmallFs u;
    std::string why;
    INFO("name '" << name << "'");
    CHECK(u.fs->load_image(crafted, why).error() == EUCLEAN);
    CHECK(why.find("xattr") != std::string::npos);
  }
}

TEST_CASE("crafted journal: CREATE of inode 0, an old number or one past the limit, into a "
          "removed directory, and bad xattr names are refused (L6)",
          "[crafted]") {
  SmallFs t;
  REQUIRE(t.fs->mkdir(kRootIno, "gone", 0755, kRoot).ok());
  REQUIRE(t.fs->mkdir(kRootIno, "d", 0755, kRoot).ok()); // inode 3; next_ino 4
  const std::string image = checkpoint_of(*t.fs);
  auto create = [](uint64_t parent, uint64_t ino, const char *name) {
    CreateRecord r;
    r.parent = parent;
    r.ino = ino;
    r.mode = S_IFREG | 0644;
    r.name = name;
    return payload_of(r);
  };
  SmallFs u;
  std::string why;
  REQUIRE(u.fs->load_image(image, why).ok());
  for (uint64_t ino : {uint64_t{0}, kRootIno, uint64_t{3}, kInoLimit, UINT64_MAX}) {
    INFO("inode " << ino);
    CHECK(u.fs->replay(PKRAMFS_JREC_CREATE, create(kRootIno, ino, "n"), why).error() == EUCLEAN);
  }
  CHECK(u.fs->replay(PKRAMFS_JREC_RMDIR, payload_of(RemoveRecord{kRootIno, {}, "gone"}), why).ok());
  CHECK(u.fs->replay(PKRAMFS_JREC_CREATE, create(2, 4, "orphan"), why).error() == EUCLEAN);
  CHECK(u.fs->replay(PKRAMFS_JREC_CREATE, create(3, 4, "fine"), why).ok());
  for (const char *name : {"foo", "user.", "os2.x"}) {
    INFO("xattr '" << name << "'");
    CHECK(u.fs->replay(PKRAMFS_JREC_XATTR_SET, payload_of(XattrRecord{4, {}, name, "v"}), why)
              .error() == EUCLEAN);
  }
  CHECK(u.fs->replay(PKRAMFS_JREC_XATTR_SET, payload_of(XattrRecord{4, {}, "user.ok", "v"}), why)
            .ok());
  u.fs->finish_restore();
  std::vector<std::string> problems;
  u.fs->verify(problems);
  CHECK(problems.empty());
}

TEST_CASE("crafted journal: TMPFILE of inode 0, an old number, one past the limit or not a "
          "regular file is refused; a LINK names a good one, the rest go at the end",
          "[crafted][tmpfile]") {
  SmallFs t;
  REQUIRE(t.fs->mkdir(kRootIno, "d", 0755, kRoot).ok()); // inode 2; next_ino 3
  const std::string image = checkpoint_of(*t.fs);
  auto tmpfile = [](uint64_t ino, uint32_t mode) {
    return payload_of(TmpfileRecord{ino, 1, mode, 0, 0, {}});
  };
  SmallFs u;
  std::string why;
  REQUIRE(u.fs->load_image(image, why).ok());
  for (uint64_t ino : {uint64_t{0}, kRootIno, uint64_t{2}, kInoLimit, UINT64_MAX}) {
    INFO("inode " << ino);
    CHECK(u.fs->replay(PKRAMFS_JREC_TMPFILE, tmpfile(ino, S_IFREG | 0600), why).error() ==
          EUCLEAN);
  }
  for (uint32_t mode : {uint32_t{S_IFDIR | 0755}, uint32_t{S_IFLNK | 0777}, uint32_t{0600}}) {
    INFO("mode " << mode);
    CHECK(u.fs->replay(PKRAMFS_JREC_TMPFILE, tmpfile(3, mode), why).error() == EUCLEAN);
  }
  CHECK(u.fs->replay(PKRAMFS_JREC_TMPFILE, "short", why).error() == EUCLEAN);
  REQUIRE(u.fs->replay(PKRAMFS_JREC_TMPFILE, tmpfile(3, S_IFREG | 0600), why).ok());
  REQUIRE(u.fs->replay(PKRAMFS_JREC_TMPFILE, tmpfile(4, S_IFREG | 0600), why).ok());
  CHECK(u.fs->replay(PKRAMFS_JREC_LINK, payload_of(LinkRecord{3, 2, {}, "named"}), why).ok());
  CHECK(u.fs->inode_count() == 4);
  u.fs->finish_restore(); // 4 never got a name
  CHECK(u.fs->inode_count() == 3);
  CHECK(u.fs->lookup(2, "named")->st_nlink == 1u);
  CHECK(u.fs->statfs().f_ffree == u.fs->statfs().f_files - 3);
  std::vector<std::string> problems;
  u.fs->verify(problems);
  CHECK(problems.empty());
}

TEST_CASE("a FIFO where an image or a node file should be is refused without waiting for a "
          "writer (L6)",
          "[crafted]") {
  const std::string dir = temp_dir(), fifo = dir + "/fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  auto within = [&](auto &&f) {
    auto done = std::async(std::launch::async, f);
    if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      // Unblock the open so the test can end, then fail.
      const int w = ::open(fifo.c_str(), O_WRONLY);
      ::close(w);
      FAIL("blocked on the FIFO");
    }
    return done.get();
  };
  std::string why;
  CHECK(within([&] { return read_export_header(fifo, why).error(); }) == ESPIPE);
  CHECK(within([&] { return import_image(fifo, nullptr, {}, why).error(); }) == ESPIPE);
  auto report = within([&] { return check_node(fifo); });
  REQUIRE(report.ok());
  CHECK_FALSE(report->clean);
  std::filesystem::remove_all(dir);
}

TEST_CASE("an export image claiming a huge checkpoint over a sparse file is refused at once (L6)",
          "[crafted]") {
  const std::string dir = temp_dir(), path = dir + "/image";
  for (uint64_t bytes : {1ull << 40, 1ull << 30}) {
    const pkramfs_export_header h = export_header(bytes, 0, 0);
    REQUIRE(check_export_header(h).empty());
    std::filesystem::remove(path);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, &h, sizeof h) == static_cast<ssize_t>(sizeof h));
    REQUIRE(ftruncate(fd, static_cast<off_t>(h.image_bytes)) == 0);
    ::close(fd);
    std::string why;
    const auto start = std::chrono::steady_clock::now();
    auto r = import_image(path, nullptr, {}, why);
    INFO(why);
    CHECK_FALSE(r.ok());
    CHECK(why.find("the checkpoint image") != std::string::npos);
    CHECK(why.find('\n') == std::string::npos);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("crafted checkpoint and journal: file sizes and extents past 2^63 bytes are refused",
          "[crafted]") {
  SmallFs t;
  auto f = t.fs->create(kRootIno, "f", 0644, kRoot);
  REQUIRE(f.ok());
  REQUIRE(t.fs->write(f->st_ino, 0, "data", 4, kRoot).ok());
  const std::string image = checkpoint_of(*t.fs);
  const auto extents = t.fs->data_extents();
  REQUIRE(extents.size() == 1);
  std::string record;
  Encoder e(record);
  e.u64(0);
  e.u64(extents[0].block);
  e.u64(1);
  const size_t at = image.find(record);
  REQUIRE(at != std::string::npos);
  for (uint64_t fblock : {uint64_t{1} << 51, uint64_t{1} << 60, UINT64_MAX}) {
    std::string crafted = image;
    std::memcpy(crafted.data() + at, &fblock, 8);
    SmallFs u;
    std::string why;
    INFO("file block " << fblock);
    CHECK(u.fs->load_image(crafted, why).error() == EUCLEAN);
    CHECK(why.find("out-of-range extents") != std::string::npos);
  }
  SmallFs u;
  std::string why;
  REQUIRE(u.fs->load_image(image, why).ok());
  InodeRecord big;
  big.ino = f->st_ino;
  big.mode = S_IFREG | 0644;
  big.size = uint64_t{1} << 63;
  CHECK(u.fs->replay(PKRAMFS_JREC_INODE, payload_of(big), why).error() == EUCLEAN);
  big.size = (uint64_t{1} << 63) - 1;
  CHECK(u.fs->replay(PKRAMFS_JREC_INODE, payload_of(big), why).ok());
}
