// Journal records, checkpoints and restore, in-process: a node file in a temporary directory,
// a tree built through the Filesystem API, then a second Node + Filesystem restoring it.
#include "util/crc32c.h"
#include "fs/filesystem.h"
#include "util/geometry.h"
#include "journal/journal.h"
#include "node/node.h"
#include "node/node_inspect.h"
#include "support/fs_calls.h"
#include "support/mounted_node.h"
#include "support/temp_dir.h"

#include <catch2/catch.hpp>
#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

using namespace pkramfs;
using namespace pkramfs::test;

TEST_CASE("crc32c matches the Castagnoli check value", "[persistence]") {
  CHECK(crc32c("123456789", 9) == 0xe3069283u);
}

TEST_CASE("journal: records scan back in order, a torn last record ends the log", "[persistence]") {
  std::vector<std::byte> region(64 * 1024);
  Journal j(region.data(), region.size());
  j.resume(7, 0, 1);
  REQUIRE(j.append(1, "first").ok());
  REQUIRE(j.append(2, "second").ok());
  REQUIRE(j.append(3, "third").ok());
  std::vector<std::string> seen;
  auto scan = Journal::scan(region.data(), region.size(), 7,
                            [&](uint32_t, std::string_view p) { seen.emplace_back(p); });
  CHECK(seen == std::vector<std::string>{"first", "second", "third"});
  CHECK(scan.next_sequence == 4);
  CHECK(scan.corruption.empty());

  SECTION("another epoch's records are not replayed") {
    auto other = Journal::scan(region.data(), region.size(), 8, [](uint32_t, std::string_view) {});
    CHECK(other.records == 0);
  }
  SECTION("a damaged last record is dropped") {
    region[scan.end - 4] ^= std::byte{0x40}; // the last payload byte, before the padding
    seen.clear();
    auto torn = Journal::scan(region.data(), region.size(), 7,
                              [&](uint32_t, std::string_view p) { seen.emplace_back(p); });
    CHECK(seen == std::vector<std::string>{"first", "second"});
    CHECK(torn.corruption.empty());
  }
  SECTION("a damaged record followed by valid ones is corruption") {
    // The second record's payload sits after the first record (header + padded "first").
    region[2 * sizeof(pkramfs_jrec_header) + 8 + 1] ^= std::byte{0x40};
    auto bad = Journal::scan(region.data(), region.size(), 7, [](uint32_t, std::string_view) {});
    CHECK(bad.records == 1);
    CHECK_FALSE(bad.corruption.empty());
  }
  SECTION("a full journal refuses a record") {
    std::string big(region.size(), 'x');
    CHECK(j.append(4, big).error() == ENOSPC);
  }
}

TEST_CASE("restore: a tree survives a crash (journal) and a clean close (checkpoint)",
          "[persistence]") {
  const std::string path = temp_node();
  const Caller root;
  std::string big(3 * kMiB + 123, '\0');
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 7 + 3);
  {
    Mounted m(path);
    Filesystem &fs = *m.fs;
    auto dir = fs.mkdir(kRootIno, "d", 0755, root);
    REQUIRE(dir.ok());
    auto f = fs.create(dir->st_ino, "f", 0644, root);
    REQUIRE(f.ok());
    REQUIRE(fs.write(f->st_ino, 0, big.data(), big.size(), root).ok());
    REQUIRE(fs.setxattr(f->st_ino, "user.k", "v", 0).ok());
    REQUIRE(fs.link(f->st_ino, kRootIno, "hard").ok());
    REQUIRE(fs.symlink(kRootIno, "long", std::string(300, 'x'), root).ok());
    auto gone = fs.create(kRootIno, "gone", 0644, root);
    REQUIRE(gone.ok());
    REQUIRE(fs.write(gone->st_ino, 0, "bye", 3, root).ok());
    fs.release(gone->st_ino);
    REQUIRE(fs.unlink(kRootIno, "gone").ok());
    REQUIRE(fs.rename(kRootIno, "hard", dir->st_ino, "moved", 0, Caller{0, 0}).ok());
    SetAttr a;
    a.valid = SetAttr::kSize;
    a.size = 2 * kMiB + 5;
    REQUIRE(fs.setattr(f->st_ino, a, root).ok());
    // No checkpoint: the Mounted goes away like a killed daemon.
  }
  const std::string expected = big.substr(0, 2 * kMiB + 5);
  uint64_t used_after_crash;
  {
    Mounted m(path);
    Filesystem &fs = *m.fs;
    const uint64_t d = lookup(fs, kRootIno, "d");
    const uint64_t f = lookup(fs, d, "f");
    CHECK(lookup(fs, d, "moved") == f);
    CHECK(fs.getattr(f)->st_nlink == 2);
    CHECK(read_all(fs, f) == expected);
    CHECK(*fs.getxattr(f, "user.k") == "v");
    CHECK(fs.readlink(lookup(fs, kRootIno, "long"))->size() == 300);
    CHECK(fs.lookup(kRootIno, "gone").error() == ENOENT);
    // The data's free blocks: a checkpoint changes the metadata charge (a second slot).
    used_after_crash = fs.statfs().f_bfree + fs.usage().metadata_blocks;
    std::vector<std::string> problems;
    fs.verify(problems);
    CHECK(problems.empty());
    REQUIRE(m.node->checkpoint(*m.fs).ok()); // a clean close
  }
  {
    Mounted m(path);
    Filesystem &fs = *m.fs;
    const uint64_t f = lookup(fs, lookup(fs, kRootIno, "d"), "f");
    CHECK(read_all(fs, f) == expected);
    CHECK(fs.statfs().f_bfree + fs.usage().metadata_blocks == used_after_crash);
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST_CASE("restore: changes through a kernel reference to an unlinked, closed file are not "
          "journaled",
          "[persistence]") {
  // The kernel may still reach such an inode (a lookup reference, an O_PATH descriptor) after
  // its RELEASE record: a record naming it would make the journal unreplayable.
  const std::string path = temp_node();
  const Caller root;
  {
    Mounted m(path);
    Filesystem &fs = *m.fs;
    auto f = fs.create(kRootIno, "f", 0644, root);
    REQUIRE(f.ok());
    REQUIRE(fs.write(f->st_ino, 0, "data", 4, root).ok());
    fs.release(f->st_ino);
    REQUIRE(fs.unlink(kRootIno, "f").ok()); // released: the kernel still holds its lookup
    const uint64_t ino = f->st_ino;
    const uint64_t free_blocks = fs.statfs().f_bfree;
    SetAttr a;
    a.valid = SetAttr::kMode;
    a.mode = 0600;
    CHECK(fs.setattr(ino, a, root).ok());
    CHECK(fs.setxattr(ino, "user.k", "v", 0).ok());
    CHECK(fs.removexattr(ino, "user.k").ok());
    CHECK(fs.write(ino, 0, "more", 4, root).error() == ENOENT);
    a.valid = SetAttr::kSize;
    a.size = 1 << 20;
    CHECK(fs.setattr(ino, a, root).error() == ENOENT);
    CHECK(fs.fallocate(ino, 0, 0, 1 << 20, root).error() == ENOENT);
    CHECK(fs.statfs().f_bfree == free_blocks); // it took no blocks
    REQUIRE(fs.create(kRootIno, "after", 0644, root).ok());
    // No checkpoint: the next mount replays all of it.
  }
  Mounted m(path);
  CHECK(m.fs->lookup(kRootIno, "after").ok());
  CHECK(m.fs->lookup(kRootIno, "f").error() == ENOENT);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST_CASE("restore: an O_TMPFILE file that was linked comes back whole, one never linked is "
          "gone with its blocks",
          "[persistence][tmpfile]") {
  const std::string path = temp_node();
  const Caller root;
  const std::string before_link(5 * kMiB + 7, 'b'), after_link(3 * kMiB, 'a');
  uint64_t data_limit = 0;
  for (const bool through_checkpoint : {false, true}) {
    DYNAMIC_SECTION((through_checkpoint ? "with a checkpoint while unnamed" : "journal only")) {
      {
        Mounted m(path);
        Filesystem &fs = *m.fs;
        data_limit = fs.statfs().f_blocks;
        auto kept = fs.tmpfile(kRootIno, 0640, true, root);
        REQUIRE(kept.ok());
        REQUIRE(fs.write(kept->st_ino, 0, before_link.data(), before_link.size(), root).ok());
        REQUIRE(fs.setxattr(kept->st_ino, "user.k", "v", 0).ok());
        auto dropped = fs.tmpfile(kRootIno, 0600, true, root);
        REQUIRE(dropped.ok());
        REQUIRE(fs.write(dropped->st_ino, 0, after_link.data(), after_link.size(), root).ok());
        // A checkpoint holds both without a name; the journal after it names one.
        if (through_checkpoint)
          REQUIRE(m.node->checkpoint(fs).ok());
        REQUIRE(fs.link(kept->st_ino, kRootIno, "kept").ok());
        REQUIRE(
            fs.write(kept->st_ino, before_link.size(), after_link.data(), after_link.size(), root)
                .ok());
        // Killed with both still open: no RELEASE, no checkpoint.
      }
      auto report = check_node(path);
      REQUIRE(report.ok());
      CHECK(report->clean);
      Mounted m(path);
      Filesystem &fs = *m.fs;
      const uint64_t kept = lookup(fs, kRootIno, "kept");
      CHECK(read_all(fs, kept) == before_link + after_link);
      CHECK(fs.getattr(kept)->st_nlink == 1u);
      CHECK((fs.getattr(kept)->st_mode & 07777) == 0640u);
      CHECK(*fs.getxattr(kept, "user.k") == "v");
      CHECK(fs.inode_count() == 2); // the root and "kept"
      // Only "kept"'s blocks are in use: the other one's went back at the restore.
      const uint64_t kept_blocks = (before_link.size() + after_link.size() + kBlockSize - 1) /
                                   kBlockSize;
      CHECK(fs.usage().data_blocks == kept_blocks);
      CHECK(fs.statfs().f_bfree + fs.usage().metadata_blocks + kept_blocks == data_limit);
      std::vector<std::string> problems;
      fs.verify(problems);
      CHECK(problems.empty());
      std::filesystem::remove_all(std::filesystem::path(path).parent_path());
    }
  }
}

TEST_CASE("restore: a node whose superblocks are damaged is refused and left as it was",
          "[persistence]") {
  const std::string path = temp_node();
  { Mounted m(path); }
  const int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  const char junk[8] = {'j', 'u', 'n', 'k', 'j', 'u', 'n', 'k'};
  REQUIRE(pwrite(fd, junk, sizeof junk, 0) == sizeof junk);
  REQUIRE(pwrite(fd, junk, sizeof junk, PKRAMFS_SB_COPY_OFFSET) == sizeof junk);
  ::close(fd);
  std::string why;
  auto opened = Node::open_shm(path, NodeParams{64 * kMiB / kBlockSize, UINT64_MAX, {}}, why);
  CHECK(opened.error() == EUCLEAN);
  CHECK(why.find("magic") != std::string::npos);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST_CASE("inspect: a node reads the same through any pread-able fd, which is never written",
          "[persistence]") {
  const std::string path = temp_node();
  const Caller root;
  {
    Mounted m(path);
    auto f = m.fs->create(kRootIno, "f", 0644, root);
    REQUIRE(f.ok());
    REQUIRE(m.fs->write(f->st_ino, 0, "hello", 5, root).ok());
    REQUIRE(m.fs->mkdir(kRootIno, "d", 0755, root).ok());
    REQUIRE(m.node->checkpoint(*m.fs).ok());
    m.node->set_state(PKRAMFS_STATE_CLEAN);
  }
  std::string why;
  auto by_path = inspect_node(path, why);
  INFO(why);
  REQUIRE(by_path.ok());
  CHECK(by_path->state == "clean");
  CHECK(by_path->files == 1);
  CHECK(by_path->directories == 2);

  // As /dev/pkram shows a node: a copy whose size is whole 2 MiB frames, the tail a hole.
  const int file = ::open(path.c_str(), O_RDONLY);
  REQUIRE(file >= 0);
  const off_t file_bytes = lseek(file, 0, SEEK_END);
  const int mem = memfd_create("node", 0);
  REQUIRE(mem >= 0);
  std::string buf(1 << 20, '\0');
  for (off_t off = 0; off < file_bytes;) {
    const ssize_t n = pread(file, buf.data(), buf.size(), off);
    REQUIRE(n > 0);
    REQUIRE(pwrite(mem, buf.data(), static_cast<size_t>(n), off) == n);
    off += n;
  }
  ::close(file);
  const uint64_t span = (static_cast<uint64_t>(file_bytes) + kFrameSize - 1) / kFrameSize;
  REQUIRE(ftruncate(mem, static_cast<off_t>(span * kFrameSize)) == 0);
  const NodeBytes node{mem, span * kFrameSize, "pkram node"};

  auto by_fd = inspect_node(node, why);
  INFO(why);
  REQUIRE(by_fd.ok());
  CHECK(by_fd->state == by_path->state);
  CHECK(by_fd->files == by_path->files);
  CHECK(by_fd->directories == by_path->directories);
  CHECK(by_fd->checkpoint_generation == by_path->checkpoint_generation);
  CHECK(by_fd->node_bytes == span * kFrameSize);
  auto checked = check_node(node);
  REQUIRE(checked.ok());
  CHECK(checked->clean);
  CHECK(checked->problems.empty());

  // An empty node is named by its label.
  auto empty = inspect_node(NodeBytes{mem, 0, "pkram node"}, why);
  CHECK(empty.error() == EINVAL);
  CHECK(why.find("pkram node is empty") != std::string::npos);

  // Garbage: reported as a problem, and every byte stays as it was.
  const char junk[8] = {'j', 'u', 'n', 'k', 'j', 'u', 'n', 'k'};
  REQUIRE(pwrite(mem, junk, sizeof junk, 0) == sizeof junk);
  REQUIRE(pwrite(mem, junk, sizeof junk, PKRAMFS_SB_COPY_OFFSET) == sizeof junk);
  auto contents = [&] {
    std::string all(span * kFrameSize, '\0');
    REQUIRE(pread(mem, all.data(), all.size(), 0) == static_cast<ssize_t>(all.size()));
    return all;
  };
  const std::string before = contents();
  auto bad = check_node(node);
  REQUIRE(bad.ok());
  CHECK_FALSE(bad->clean);
  REQUIRE(bad->problems.size() == 1);
  CHECK(bad->problems[0].find("magic") != std::string::npos);
  CHECK(inspect_node(node, why).error() == EINVAL);
  CHECK(contents() == before);
  ::close(mem);

  // The path versions: a missing file, and something that is not a regular file.
  CHECK(inspect_node(path + ".missing", why).error() == ENOENT);
  CHECK(check_node(path + ".missing").error() == ENOENT);
  auto dir = check_node(std::filesystem::path(path).parent_path().string());
  REQUIRE(dir.ok());
  CHECK_FALSE(dir->clean);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

namespace {

// Every entry of a directory with the readdir position that resumes after it.
struct Positions final : DirSink {
  std::vector<std::pair<std::string, uint64_t>> seen;
  bool add(std::string_view name, const struct stat &, uint64_t next_offset) override {
    seen.emplace_back(std::string(name), next_offset);
    return true;
  }
};

std::vector<std::pair<std::string, uint64_t>> positions(Filesystem &fs, uint64_t dir) {
  Positions p;
  REQUIRE(fs.readdir(dir, 0, false, p).ok());
  return p.seen;
}

} // namespace

// Format version 4: a checkpoint keeps every entry's readdir cookie and the next one to hand
// out, and journal replay assigns them as the daemon did, so a listing the kernel is in the
// middle of (a serving process taking the mount over) resumes where it was.
TEST_CASE("restore: readdir positions survive a checkpoint and journal replay",
          "[persistence][readdir]") {
  const std::string path = temp_node();
  const Caller root;
  std::vector<std::pair<std::string, uint64_t>> before, before_replay, resumed;
  uint64_t dir = 0, resume_at = 0;
  {
    Mounted m(path);
    Filesystem &fs = *m.fs;
    auto d = fs.mkdir(kRootIno, "d", 0755, root);
    REQUIRE(d.ok());
    dir = d->st_ino;
    // Gaps: removed entries, renamed ones (a new cookie), one removed after the newest.
    for (int i = 0; i < 20; ++i) {
      auto f = fs.create(dir, "f" + std::to_string(i), 0644, root);
      REQUIRE(f.ok());
      fs.release(f->st_ino);
    }
    for (int i = 0; i < 20; i += 3)
      REQUIRE(fs.unlink(dir, "f" + std::to_string(i)).ok());
    REQUIRE(fs.rename(dir, "f1", dir, "r1", 0, root).ok());
    REQUIRE(fs.mkdir(dir, "sub", 0755, root).ok());
    REQUIRE(fs.unlink(dir, "f19").ok()); // the newest: next_cookie stays above its cookie
    before = positions(fs, dir);
    REQUIRE(before.size() > 4);
    resume_at = before[5].second; // a listing stopped after its sixth entry
    REQUIRE(m.node->checkpoint(fs).ok());
    // After the checkpoint, in the journal only: more entries and removals.
    REQUIRE(fs.unlink(dir, "f2").ok());
    auto g = fs.create(dir, "g", 0644, root);
    REQUIRE(g.ok());
    fs.release(g->st_ino);
    REQUIRE(fs.rename(dir, "f4", dir, "r4", 0, root).ok());
    before_replay = positions(fs, dir);
    Positions p;
    REQUIRE(fs.readdir(dir, resume_at, false, p).ok());
    resumed = p.seen;
    // No checkpoint: the Mounted goes away like a killed daemon.
  }
  {
    Mounted m(path);
    Filesystem &fs = *m.fs;
    CHECK(positions(fs, dir) == before_replay);
    Positions p;
    REQUIRE(fs.readdir(dir, resume_at, false, p).ok());
    CHECK(p.seen == resumed);
    // The next entry takes a cookie above every one handed out before the restore.
    uint64_t highest = 0;
    for (const auto &[name, pos] : before_replay)
      highest = std::max(highest, pos);
    auto h = fs.create(dir, "h", 0644, root);
    REQUIRE(h.ok());
    fs.release(h->st_ino);
    const auto now = positions(fs, dir);
    REQUIRE(now.size() > 2);
    CHECK(now[2].first == "h"); // after "." and "..", newest first
    CHECK(now[2].second > highest);
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}
