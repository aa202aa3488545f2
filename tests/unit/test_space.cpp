// Space accounting: what statfs and pkramfs-ctl status report, and that it is what writes get.
// The checkpoint slots of a node are charged against size= next to the data (docs/semantics.md,
// "Space: df, du and st_blocks").
#include "storage/arena.h"
#include "fs/filesystem.h"
#include "storage/frame_source.h"
#include "util/geometry.h"
#include "node/node.h"
#include "node/node_inspect.h"
#include "support/callers.h"
#include "support/mounted_node.h"
#include "support/temp_dir.h"

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace pkramfs;
using namespace pkramfs::test;

namespace {

std::unique_ptr<FrameSource> anon_frames(uint64_t frames) {
  auto made = make_anon_frame_source(frames);
  REQUIRE(made.ok());
  return std::move(made).value();
}

// Writes `bytes` to a new file `name` in chunks of at most 1 MiB; returns what was written.
uint64_t fill(Filesystem &fs, const std::string &name, uint64_t bytes) {
  auto made = fs.create(kRootIno, name, S_IFREG | 0644, kRoot);
  REQUIRE(made.ok());
  const std::string chunk(kMiB, 'x');
  uint64_t done = 0;
  while (done < bytes) {
    auto w =
        fs.write(made->st_ino, done, chunk.data(), std::min<uint64_t>(kMiB, bytes - done), kRoot);
    if (!w || *w == 0)
      break;
    done += *w;
  }
  fs.release(made->st_ino); // create() opened it
  return done;
}

uint64_t used_blocks(const struct statvfs &st) { return st.f_blocks - st.f_bfree; }

uint64_t file_held_bytes(const std::string &path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

} // namespace

TEST_CASE("Arena: reserved blocks are never handed out", "[space]") {
  auto frames = anon_frames(2);
  Arena arena(*frames, 0, 1000);
  arena.set_reserved_blocks(300);
  CHECK(arena.free_blocks() == 700);
  uint64_t got = 0;
  for (;;) {
    auto r = arena.allocate(64, UINT64_MAX);
    if (!r) {
      CHECK(r.error() == ENOSPC);
      break;
    }
    got += r->count;
  }
  CHECK(got == 700);
  CHECK(arena.free_blocks() == 0);
  SECTION("a smaller reserve makes room again, a larger one leaves none") {
    arena.set_reserved_blocks(290);
    CHECK(arena.free_blocks() == 10);
    auto r = arena.allocate(64, UINT64_MAX);
    REQUIRE(r.ok());
    CHECK(r->count == 10);
    arena.set_reserved_blocks(500); // metadata grew past the size: nothing free, no underflow
    CHECK(arena.free_blocks() == 0);
    CHECK_FALSE(arena.allocate(1, UINT64_MAX).ok());
  }
}

TEST_CASE("Filesystem: statfs counts metadata as used, and free is exactly what writes get",
          "[space]") {
  auto frames = anon_frames(4);
  const uint64_t limit = 8 * kMiB / kBlockSize;
  Filesystem fs(std::make_unique<Arena>(*frames, 0, limit), FsConfig{1000});
  fs.set_metadata_blocks(3);
  struct statvfs st = fs.statfs();
  CHECK(st.f_blocks == limit);
  CHECK(used_blocks(st) == 3);
  CHECK(st.f_bavail == st.f_bfree);
  CHECK(fs.usage().metadata_blocks == 3);

  const uint64_t promised = st.f_bfree * kBlockSize;
  CHECK(fill(fs, "big", promised + kMiB) == promised);
  st = fs.statfs();
  CHECK(st.f_bfree == 0);
  CHECK(used_blocks(st) == limit);
  const auto u = fs.usage();
  CHECK(u.data_blocks + u.metadata_blocks == limit);
  CHECK(u.data_frames == 4); // 8 MiB of blocks in four 2 MiB frames

  auto g = fs.create(kRootIno, "g", S_IFREG | 0644, kRoot);
  REQUIRE(g.ok());
  auto w = fs.write(g->st_ino, 0, "x", 1, kRoot);
  REQUIRE_FALSE(w.ok());
  CHECK(w.error() == ENOSPC);
  auto fa = fs.fallocate(g->st_ino, 0, 0, kBlockSize, kRoot);
  REQUIRE_FALSE(fa.ok());
  CHECK(fa.error() == ENOSPC);

  SECTION("metadata that outgrows the limit leaves nothing free, never a wrapped number") {
    fs.set_metadata_blocks(10);
    CHECK(fs.statfs().f_bfree == 0);
    CHECK(used_blocks(fs.statfs()) == limit);
  }
  SECTION("freeing data gives its blocks back, less nothing") {
    REQUIRE(fs.unlink(kRootIno, "big").ok());
    CHECK(fs.statfs().f_bfree == limit - 3);
  }
}

TEST_CASE("Node: the checkpoint slots are charged against size=, stale slot frames released",
          "[space][persistence]") {
  const std::string path = temp_node("/dev/shm/pkramfs-unit-space");
  const uint64_t limit = 64 * kMiB;
  {
    Mounted m(path, limit);
    // A fresh node holds one checkpoint: one block of metadata, in one frame.
    Node::Space space = m.node->space();
    CHECK(space.superblock_bytes == kFrameSize);
    CHECK(space.journal_bytes == Node::kJournalFrames * kFrameSize);
    CHECK(space.checkpoint_bytes == kBlockSize);
    CHECK(space.checkpoint_frame_bytes == kFrameSize);
    CHECK(m.fs->usage().metadata_blocks == 1);
    CHECK(used_blocks(m.fs->statfs()) == 1);

    // Enough inodes that an image takes two frames (~130 bytes each), over several
    // checkpoints: slots move around (before the current one when it fits, else after it).
    for (int i = 0; i < 20000; ++i)
      REQUIRE(m.fs->mknod(kRootIno, "file-" + std::to_string(i), S_IFREG | 0644, 0, kRoot).ok());
    REQUIRE(fill(*m.fs, "data", 3 * kMiB) == 3 * kMiB);
    for (int round = 0; round < 4; ++round) {
      INFO("checkpoint round " << round);
      REQUIRE(m.node->checkpoint(*m.fs).ok());
      space = m.node->space();
      const uint64_t image = m.node->checkpoint_bytes();
      CHECK(image > kFrameSize);
      // Both slots hold an image of the same tree from the second round on.
      if (round > 0)
        CHECK(space.checkpoint_bytes == 2 * ((image + kBlockSize - 1) / kBlockSize * kBlockSize));
      // The first round replaces the fresh node's one-frame image.
      CHECK(space.checkpoint_frame_bytes == (round == 0 ? 3 : 4) * kFrameSize);
      const auto u = m.fs->usage();
      CHECK(u.metadata_blocks * kBlockSize == space.checkpoint_bytes);
      CHECK(used_blocks(m.fs->statfs()) == u.data_blocks + u.metadata_blocks);
      // The node file holds the superblock, journal, slot and data frames, nothing more (an
      // older image's frames went back); tmpfs may add a page of its own.
      const uint64_t expected = space.superblock_bytes + space.journal_bytes +
                                space.checkpoint_frame_bytes + u.data_frames * kFrameSize;
      const uint64_t held = file_held_bytes(path);
      CHECK(held >= expected);
      CHECK(held < expected + kFrameSize);
    }
  }
  SECTION("an unmounted node reads the same numbers offline") {
    std::string why;
    auto s = inspect_node(path, why);
    INFO(why);
    REQUIRE(s.ok());
    CHECK(s->limit_bytes == limit);
    CHECK(s->data_bytes == 3 * kMiB);
    CHECK(s->metadata_bytes > 2 * kFrameSize);
    CHECK(s->data_bytes + s->metadata_bytes + s->free_bytes == limit);
    CHECK(s->metadata_held_bytes == 4 * kFrameSize);
    CHECK(s->data_held_bytes == 2 * kFrameSize);
    CHECK(s->superblock_bytes == kFrameSize);
    CHECK(s->journal_bytes == Node::kJournalFrames * kFrameSize);
    CHECK(s->inodes_used == 20002);
  }
  SECTION("a restored node charges its slots again before the first write") {
    Mounted again(path, limit);
    const auto u = again.fs->usage();
    CHECK(u.metadata_blocks * kBlockSize == again.node->space().checkpoint_bytes);
    CHECK(again.fs->statfs().f_bfree == limit / kBlockSize - u.data_blocks - u.metadata_blocks);
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}
