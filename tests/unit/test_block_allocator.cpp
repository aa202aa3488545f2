// BlockAllocator: which 4 KiB blocks are in use, frame by frame; and the Arena on top of it,
// which acquires a frame's memory with its first block and releases it with its last.
#include "storage/arena.h"
#include "storage/block_allocator.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <set>
#include <vector>

using namespace pkramfs;

namespace {

constexpr uint64_t kNoHint = UINT64_MAX;
constexpr uint64_t kFrame = kBlocksPerFrame;

uint64_t frame_of(uint64_t block) { return block / kFrame; }

bool within_one_frame(BlockRun r) {
  return r.count > 0 && frame_of(r.start) == frame_of(r.start + r.count - 1);
}

} // namespace

TEST_CASE("BlockAllocator: frames cover the limit rounded up to whole frames", "[allocator]") {
  BlockAllocator one(kFrame);
  CHECK(one.frames() == 1);
  BlockAllocator three(2 * kFrame + 1);
  CHECK(three.frames() == 3);
  CHECK(three.limit_blocks() == 2 * kFrame + 1);
  CHECK(three.used_blocks() == 0);
  for (uint64_t f = 0; f < three.frames(); ++f)
    CHECK(three.frame_used(f) == 0);
}

TEST_CASE("BlockAllocator: a request of zero blocks gets nothing", "[allocator]") {
  BlockAllocator a(kFrame);
  CHECK(a.allocate(0, kNoHint).count == 0);
  CHECK(a.allocate(0, 7).count == 0);
  CHECK(a.used_blocks() == 0);
}

TEST_CASE("BlockAllocator: the limit caps blocks in use, not frame capacity", "[allocator]") {
  const uint64_t limit = kFrame + 100; // two frames, the second one mostly beyond the limit
  BlockAllocator a(limit);
  REQUIRE(a.frames() == 2);

  const BlockRun r1 = a.allocate(kFrame, kNoHint);
  CHECK(r1.start == 0);
  CHECK(r1.count == kFrame);
  const BlockRun r2 = a.allocate(kFrame, kNoHint);
  CHECK(r2.start == kFrame);
  CHECK(r2.count == 100); // cut to what the limit leaves
  CHECK(a.used_blocks() == limit);

  SECTION("nothing more, not even at a free hinted block") {
    CHECK(a.allocate(1, kNoHint).count == 0);
    REQUIRE_FALSE(a.is_used(kFrame + 200));
    CHECK(a.allocate(1, kFrame + 200).count == 0);
    CHECK(a.used_blocks() == limit);
  }
  SECTION("freeing gives back exactly what was freed") {
    a.free({5, 3});
    CHECK(a.used_blocks() == limit - 3);
    const BlockRun r = a.allocate(10, kNoHint);
    CHECK(r.start == 5);
    CHECK(r.count == 3);
    CHECK(a.allocate(1, kNoHint).count == 0);
  }
  SECTION("claim refuses to go past the limit") {
    a.free({0, 10});
    CHECK_FALSE(a.claim({kFrame + 200, 11}));
    CHECK(a.used_blocks() == limit - 10);
    CHECK(a.claim({kFrame + 200, 10}));
    CHECK(a.used_blocks() == limit);
  }
}

TEST_CASE("BlockAllocator: runs never cross a frame boundary", "[allocator]") {
  BlockAllocator a(4 * kFrame);

  SECTION("a hinted run stops at the end of its frame") {
    const BlockRun r = a.allocate(10, kFrame - 2);
    CHECK(r.start == kFrame - 2);
    CHECK(r.count == 2);
    CHECK(a.frame_used(0) == 2);
    CHECK(a.frame_used(1) == 0);
  }
  SECTION("a request larger than a frame gets one frame") {
    const BlockRun r = a.allocate(3 * kFrame, kNoHint);
    CHECK(r.start == 0);
    CHECK(r.count == kFrame);
  }
  SECTION("many mixed requests") {
    uint64_t sizes[] = {1, 7, 63, 64, 100, 511, 512, 700, 3, 200};
    for (int round = 0; round < 3; ++round)
      for (uint64_t n : sizes) {
        const BlockRun r = a.allocate(n, kNoHint);
        if (r.count == 0)
          break;
        CHECK(r.count <= n);
        CHECK(within_one_frame(r));
      }
  }
}

TEST_CASE("BlockAllocator: the hint is honoured when that block is free", "[allocator]") {
  BlockAllocator a(4 * kFrame);

  const BlockRun r = a.allocate(5, 1000);
  CHECK(r.start == 1000);
  CHECK(r.count == 5);
  CHECK(a.frame_used(1) == 5);

  SECTION("growing contiguously from the end of the previous run") {
    const BlockRun next = a.allocate(5, r.start + r.count);
    CHECK(next.start == 1005);
    CHECK(next.count == 5);
  }
  SECTION("the run stops at the next used block") {
    REQUIRE(a.claim({1010, 1}));
    const BlockRun next = a.allocate(20, 1005);
    CHECK(next.start == 1005);
    CHECK(next.count == 5);
  }
  SECTION("a used hint falls back to the normal policy") {
    const BlockRun other = a.allocate(5, 1002);
    CHECK(other.count == 5);
    CHECK((other.start + other.count <= 1000 || other.start >= 1005));
    // Small request, one partial frame (1): it is shared.
    CHECK(frame_of(other.start) == 1);
  }
  SECTION("a hint beyond the arena is ignored") {
    const BlockRun other = a.allocate(5, a.frames() * kFrame + 3);
    CHECK(other.count == 5);
    CHECK(other.start < a.frames() * kFrame);
  }
}

TEST_CASE("BlockAllocator: large requests take empty frames, small ones share", "[allocator]") {
  BlockAllocator a(4 * kFrame);

  const BlockRun small = a.allocate(1, kNoHint);
  CHECK(small.start == 0);

  SECTION("a large request skips the partial frame") {
    const BlockRun large = a.allocate(kFrame / 8, kNoHint);
    CHECK(large.start == kFrame);
    CHECK(large.count == kFrame / 8);
    CHECK(a.frame_used(0) == 1);
    CHECK(a.frame_used(1) == kFrame / 8);
  }
  SECTION("small requests pack into the partial frame") {
    const BlockRun s1 = a.allocate(8, kNoHint);
    const BlockRun s2 = a.allocate(kFrame / 8 - 1, kNoHint);
    const BlockRun s3 = a.allocate(3, kNoHint);
    CHECK(s1.start == 1);
    CHECK(s2.start == 9);
    CHECK(s3.start == 9 + kFrame / 8 - 1);
    CHECK(a.frame_used(0) == 1 + 8 + kFrame / 8 - 1 + 3);
    for (uint64_t f = 1; f < a.frames(); ++f)
      CHECK(a.frame_used(f) == 0);
  }
  SECTION("the lowest empty frame is taken first") {
    CHECK(a.allocate(kFrame, kNoHint).start == kFrame);
    CHECK(a.allocate(kFrame, kNoHint).start == 2 * kFrame);
    a.free({kFrame, kFrame});
    CHECK(a.allocate(kFrame, kNoHint).start == kFrame);
  }
  SECTION("with no empty frame left, a large request takes room in a partial one") {
    for (uint64_t f = 1; f < a.frames(); ++f)
      REQUIRE(a.allocate(kFrame, kNoHint).count == kFrame);
    const BlockRun r = a.allocate(kFrame, kNoHint);
    CHECK(r.start == 1);
    CHECK(r.count == kFrame - 1);
    CHECK(a.allocate(1, kNoHint).count == 0);
    CHECK(a.used_blocks() == 4 * kFrame);
  }
}

TEST_CASE("BlockAllocator: free and reuse", "[allocator]") {
  BlockAllocator a(2 * kFrame);
  REQUIRE(a.allocate(kFrame, kNoHint).count == kFrame);
  REQUIRE(a.frame_used(0) == kFrame);

  a.free({100, 50});
  CHECK(a.used_blocks() == kFrame - 50);
  CHECK(a.frame_used(0) == kFrame - 50);
  CHECK_FALSE(a.is_used(100));
  CHECK_FALSE(a.is_used(149));
  CHECK(a.is_used(99));
  CHECK(a.is_used(150));

  // Frame 1 is empty, but small requests go to the partial frame first.
  const BlockRun r = a.allocate(50, kNoHint);
  CHECK(r.start == 100);
  CHECK(r.count == 50);
  CHECK(a.frame_used(0) == kFrame);
  CHECK(a.frame_used(1) == 0);

  SECTION("a frame freed completely counts as empty again") {
    a.free({0, kFrame});
    CHECK(a.frame_used(0) == 0);
    CHECK(a.used_blocks() == 0);
    const BlockRun big = a.allocate(kFrame, kNoHint);
    CHECK(big.start == 0);
    CHECK(big.count == kFrame);
  }
  SECTION("free splits a run that spans frames") {
    REQUIRE(a.allocate(kFrame, kNoHint).start == kFrame);
    a.free({kFrame - 10, 20});
    CHECK(a.frame_used(0) == kFrame - 10);
    CHECK(a.frame_used(1) == kFrame - 10);
    CHECK(a.used_blocks() == 2 * kFrame - 20);
  }
}

TEST_CASE("BlockAllocator: claim marks specific runs and detects conflicts", "[allocator]") {
  BlockAllocator a(4 * kFrame);

  REQUIRE(a.claim({10, 5}));
  CHECK(a.used_blocks() == 5);
  CHECK(a.frame_used(0) == 5);
  for (uint64_t b = 10; b < 15; ++b)
    CHECK(a.is_used(b));
  CHECK_FALSE(a.is_used(9));
  CHECK_FALSE(a.is_used(15));

  SECTION("an overlapping claim fails and changes nothing") {
    CHECK_FALSE(a.claim({12, 10}));
    CHECK(a.used_blocks() == 5);
    CHECK(a.frame_used(0) == 5);
    CHECK_FALSE(a.is_used(15));
    CHECK_FALSE(a.is_used(21));
  }
  SECTION("a claim past the end of the arena fails") {
    CHECK_FALSE(a.claim({4 * kFrame - 2, 3}));
    CHECK(a.used_blocks() == 5);
  }
  SECTION("a claim may span frames and is counted in each") {
    CHECK(a.claim({kFrame - 2, 4}));
    CHECK(a.frame_used(0) == 5 + 2);
    CHECK(a.frame_used(1) == 2);
    CHECK(a.used_blocks() == 9);
  }
  SECTION("allocation never hands out claimed blocks") {
    const BlockRun r = a.allocate(10, 8);
    CHECK(r.start == 8);
    CHECK(r.count == 2);
    std::set<uint64_t> seen;
    for (;;) {
      const BlockRun x = a.allocate(3, kNoHint);
      if (x.count == 0)
        break;
      for (uint64_t b = x.start; b < x.start + x.count; ++b) {
        CHECK((b < 8 || b >= 15));
        CHECK(seen.insert(b).second);
      }
    }
    CHECK(a.used_blocks() == 4 * kFrame);
  }
  SECTION("claimed blocks can be freed") {
    a.free({10, 5});
    CHECK(a.used_blocks() == 0);
    CHECK(a.claim({10, 5}));
  }
}

TEST_CASE("BlockAllocator: used counts stay exact through churn", "[allocator]") {
  BlockAllocator a(8 * kFrame);
  std::vector<BlockRun> live;
  uint64_t expect = 0;
  uint32_t seed = 12345;
  auto rnd = [&] { return seed = seed * 1103515245u + 12345u, (seed >> 8); };
  for (int i = 0; i < 2000; ++i) {
    if (!live.empty() && rnd() % 3 == 0) {
      const size_t k = rnd() % live.size();
      a.free(live[k]);
      expect -= live[k].count;
      live.erase(live.begin() + static_cast<ptrdiff_t>(k));
    } else {
      const BlockRun r = a.allocate(1 + rnd() % 100, kNoHint);
      if (r.count == 0)
        continue;
      REQUIRE(within_one_frame(r));
      live.push_back(r);
      expect += r.count;
    }
    REQUIRE(a.used_blocks() == expect);
  }
  std::vector<uint64_t> per_frame(a.frames());
  for (const BlockRun &r : live)
    per_frame[frame_of(r.start)] += r.count;
  for (uint64_t f = 0; f < a.frames(); ++f)
    CHECK(a.frame_used(f) == per_frame[f]);
}

// ---------------------------------------------------------------------------------------------
// Arena

namespace {

class FakeFrameSource final : public FrameSource {
public:
  explicit FakeFrameSource(uint64_t frames) : mem_(frames * kFrameSize), frames_(frames) {}

  std::byte *base() const override { return const_cast<std::byte *>(mem_.data()); }
  uint64_t capacity_frames() const override { return frames_; }
  Result<void> acquire(uint64_t frame) override {
    acquired.push_back(frame);
    if (frame == fail_frame)
      return Errno{ENOMEM};
    return {};
  }
  void release(uint64_t frame) override { released.push_back(frame); }
  std::string describe() const override { return "fake"; }

  std::vector<uint64_t> acquired, released;
  uint64_t fail_frame = UINT64_MAX;

private:
  std::vector<std::byte> mem_;
  uint64_t frames_;
};

} // namespace

TEST_CASE("Arena: frames are acquired with their first block and released with the last",
          "[arena]") {
  auto owned = std::make_unique<FakeFrameSource>(2);
  FakeFrameSource &src = *owned;
  Arena arena(*owned, 0, 2 * kFrame);
  CHECK(arena.describe() == "fake");
  CHECK(arena.limit_blocks() == 2 * kFrame);

  auto r1 = arena.allocate(4, kNoHint);
  REQUIRE(r1.ok());
  CHECK(src.acquired == std::vector<uint64_t>{0});
  auto r2 = arena.allocate(4, kNoHint);
  REQUIRE(r2.ok());
  CHECK(src.acquired == std::vector<uint64_t>{0}); // same frame, already there
  CHECK(arena.used_blocks() == 8);
  CHECK(arena.block(r2->start) == src.base() + r2->start * kBlockSize);

  auto r3 = arena.allocate(kFrame, kNoHint);
  REQUIRE(r3.ok());
  CHECK(r3->start == kFrame);
  CHECK(src.acquired == std::vector<uint64_t>{0, 1});

  arena.free(*r1);
  CHECK(src.released.empty()); // r2 still lives in frame 0
  arena.free(*r2);
  CHECK(src.released == std::vector<uint64_t>{0});
  arena.free(*r3);
  CHECK(src.released == std::vector<uint64_t>{0, 1});
  CHECK(arena.used_blocks() == 0);
}

TEST_CASE("Arena: ENOSPC at the limit and when the frame source runs dry", "[arena]") {
  auto owned = std::make_unique<FakeFrameSource>(2);
  FakeFrameSource &src = *owned;
  Arena arena(*owned, 0, kFrame + 10);

  SECTION("limit") {
    REQUIRE(arena.allocate(kFrame, kNoHint).ok());
    auto r = arena.allocate(kFrame, kNoHint);
    REQUIRE(r.ok());
    CHECK(r->count == 10);
    auto none = arena.allocate(1, kNoHint);
    REQUIRE_FALSE(none.ok());
    CHECK(none.error() == ENOSPC);
  }
  SECTION("memory: ENOMEM from the source becomes ENOSPC and the blocks are given back") {
    src.fail_frame = 0;
    auto r = arena.allocate(3, kNoHint);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == ENOSPC);
    CHECK(arena.used_blocks() == 0);
    src.fail_frame = UINT64_MAX;
    auto again = arena.allocate(3, kNoHint);
    REQUIRE(again.ok());
    CHECK(again->start == 0);
    CHECK(again->count == 3);
    CHECK(arena.used_blocks() == 3);
  }
}
