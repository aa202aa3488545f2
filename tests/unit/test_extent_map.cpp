// ExtentMap: file blocks to arena blocks, with holes and unwritten (fallocated) extents.
#include "storage/extent_map.h"

#include <catch2/catch.hpp>

#include <tuple>
#include <vector>

using namespace pkramfs;

namespace {

// (file block, arena block, count, unwritten) for every extent, in file order.
using Row = std::tuple<uint64_t, uint64_t, uint64_t, bool>;

std::vector<Row> rows(const ExtentMap &m) {
  std::vector<Row> out;
  for (auto &[f, e] : m.extents())
    out.emplace_back(f, e.block, e.count, e.unwritten);
  return out;
}

std::vector<std::pair<uint64_t, uint64_t>> remove(ExtentMap &m, uint64_t first, uint64_t end) {
  std::vector<std::pair<uint64_t, uint64_t>> freed;
  m.remove(first, end, [&](BlockRun r) { freed.emplace_back(r.start, r.count); });
  return freed;
}

using Runs = std::vector<std::pair<uint64_t, uint64_t>>;

} // namespace

TEST_CASE("ExtentMap: an empty map is one trailing hole", "[extent]") {
  ExtentMap m;
  CHECK(m.empty());
  CHECK(m.allocated_blocks() == 0);
  const auto l = m.find(12345);
  CHECK_FALSE(l.mapped);
  CHECK(l.count == UINT64_MAX);
  CHECK_FALSE(m.next_data(0).has_value());
  CHECK(m.next_hole(0) == 0);
  CHECK(m.next_hole(77) == 77);
}

TEST_CASE("ExtentMap: insert merges runs contiguous in file and arena", "[extent]") {
  ExtentMap m;
  m.insert(0, {100, 2}, false);
  m.insert(2, {102, 3}, false);
  CHECK(rows(m) == std::vector<Row>{{0, 100, 5, false}});
  CHECK(m.allocated_blocks() == 5);

  SECTION("not contiguous in the arena: separate extents") {
    m.insert(5, {200, 1}, false);
    CHECK(rows(m) == std::vector<Row>{{0, 100, 5, false}, {5, 200, 1, false}});
  }
  SECTION("not contiguous in the file: separate extents") {
    m.insert(6, {105, 1}, false);
    CHECK(rows(m) == std::vector<Row>{{0, 100, 5, false}, {6, 105, 1, false}});
  }
  SECTION("unwritten does not merge with written") {
    m.insert(5, {105, 2}, true);
    CHECK(rows(m) == std::vector<Row>{{0, 100, 5, false}, {5, 105, 2, true}});
    CHECK(m.allocated_blocks() == 7);
  }
  SECTION("filling a gap joins both neighbours") {
    m.insert(7, {107, 3}, false);
    REQUIRE(rows(m).size() == 2);
    m.insert(5, {105, 2}, false);
    CHECK(rows(m) == std::vector<Row>{{0, 100, 10, false}});
    CHECK(m.allocated_blocks() == 10);
  }
  SECTION("inserting before an extent merges with the following one") {
    ExtentMap n;
    n.insert(10, {50, 5}, true);
    n.insert(8, {48, 2}, true);
    CHECK(rows(n) == std::vector<Row>{{8, 48, 7, true}});
  }
}

TEST_CASE("ExtentMap: find in extents, holes and the trailing hole", "[extent]") {
  ExtentMap m;
  m.insert(2, {100, 3}, false); // [2,5)
  m.insert(8, {300, 2}, true);  // [8,10) unwritten

  auto l = m.find(0);
  CHECK_FALSE(l.mapped);
  CHECK(l.count == 2);

  l = m.find(3);
  CHECK(l.mapped);
  CHECK(l.block == 101);
  CHECK(l.count == 2);
  CHECK_FALSE(l.unwritten);

  l = m.find(5);
  CHECK_FALSE(l.mapped);
  CHECK(l.count == 3);

  l = m.find(9);
  CHECK(l.mapped);
  CHECK(l.block == 301);
  CHECK(l.count == 1);
  CHECK(l.unwritten);

  l = m.find(10);
  CHECK_FALSE(l.mapped);
  CHECK(l.count == UINT64_MAX);
}

TEST_CASE("ExtentMap: remove splits extents and reports freed runs exactly", "[extent]") {
  ExtentMap m;
  m.insert(0, {100, 10}, false); // [0,10) -> 100..109
  m.insert(20, {500, 5}, true);  // [20,25) -> 500..504

  SECTION("middle of one extent") {
    CHECK(remove(m, 3, 5) == Runs{{103, 2}});
    CHECK(rows(m) == std::vector<Row>{{0, 100, 3, false}, {5, 105, 5, false}, {20, 500, 5, true}});
    CHECK(m.allocated_blocks() == 13);
    CHECK(m.find(3).mapped == false);
    CHECK(m.find(5).block == 105);
  }
  SECTION("across a hole and into the next extent") {
    CHECK(remove(m, 8, 22) == Runs{{108, 2}, {500, 2}});
    CHECK(rows(m) == std::vector<Row>{{0, 100, 8, false}, {22, 502, 3, true}});
    CHECK(m.allocated_blocks() == 11);
  }
  SECTION("a range that is all hole frees nothing") {
    CHECK(remove(m, 12, 18).empty());
    CHECK(m.allocated_blocks() == 15);
    CHECK(rows(m).size() == 2);
  }
  SECTION("an empty range frees nothing") {
    CHECK(remove(m, 5, 5).empty());
    CHECK(remove(m, 6, 2).empty());
    CHECK(m.allocated_blocks() == 15);
  }
  SECTION("to the end of the file") {
    CHECK(remove(m, 1, UINT64_MAX >> kBlockShift) == Runs{{101, 9}, {500, 5}});
    CHECK(rows(m) == std::vector<Row>{{0, 100, 1, false}});
    CHECK(m.allocated_blocks() == 1);
  }
  SECTION("everything") {
    CHECK(remove(m, 0, 25) == Runs{{100, 10}, {500, 5}});
    CHECK(m.empty());
    CHECK(m.allocated_blocks() == 0);
  }
  SECTION("the removed range can be mapped again") {
    REQUIRE(remove(m, 3, 5).size() == 1);
    m.insert(3, {103, 2}, false);
    CHECK(rows(m) == std::vector<Row>{{0, 100, 10, false}, {20, 500, 5, true}});
  }
}

TEST_CASE("ExtentMap: mark_written splits unwritten extents and merges them back", "[extent]") {
  ExtentMap m;
  m.insert(0, {100, 4}, true);

  m.mark_written(1, 2);
  CHECK(rows(m) == std::vector<Row>{{0, 100, 1, true}, {1, 101, 1, false}, {2, 102, 2, true}});
  CHECK(m.allocated_blocks() == 4);

  m.mark_written(0, 1);
  CHECK(rows(m) == std::vector<Row>{{0, 100, 2, false}, {2, 102, 2, true}});

  m.mark_written(2, 4);
  CHECK(rows(m) == std::vector<Row>{{0, 100, 4, false}});
  CHECK(m.allocated_blocks() == 4);

  SECTION("over holes and several extents") {
    ExtentMap n;
    n.insert(0, {10, 2}, true);
    n.insert(5, {20, 2}, true);
    n.insert(7, {22, 3}, false); // arena-contiguous with the previous one
    REQUIRE(rows(n).size() == 3);
    n.mark_written(1, 6);
    CHECK(rows(n) == std::vector<Row>{{0, 10, 1, true},
                                      {1, 11, 1, false},
                                      {5, 20, 1, false},
                                      {6, 21, 1, true},
                                      {7, 22, 3, false}});
    n.mark_written(6, 7);
    CHECK(rows(n) == std::vector<Row>{{0, 10, 1, true}, {1, 11, 1, false}, {5, 20, 5, false}});
  }
  SECTION("on a hole it changes nothing") {
    ExtentMap n;
    n.insert(0, {10, 2}, true);
    n.mark_written(5, 9);
    CHECK(rows(n) == std::vector<Row>{{0, 10, 2, true}});
  }
}

TEST_CASE("ExtentMap: next_data and next_hole treat unwritten extents as holes", "[extent]") {
  ExtentMap m;
  m.insert(2, {100, 2}, false); // data [2,4)
  m.insert(4, {102, 2}, true);  // unwritten [4,6), arena-contiguous but not merged
  m.insert(8, {200, 1}, false); // data [8,9)
  m.insert(9, {300, 3}, true);  // unwritten [9,12)

  CHECK(m.next_data(0) == 2u);
  CHECK(m.next_data(2) == 2u);
  CHECK(m.next_data(3) == 3u);
  CHECK(m.next_data(4) == 8u);
  CHECK(m.next_data(6) == 8u);
  CHECK(m.next_data(8) == 8u);
  CHECK_FALSE(m.next_data(9).has_value());
  CHECK_FALSE(m.next_data(100).has_value());

  CHECK(m.next_hole(0) == 0);
  CHECK(m.next_hole(2) == 4);
  CHECK(m.next_hole(3) == 4);
  CHECK(m.next_hole(4) == 4);
  CHECK(m.next_hole(5) == 5);
  CHECK(m.next_hole(6) == 6);
  CHECK(m.next_hole(8) == 9);
  CHECK(m.next_hole(10) == 10);
  CHECK(m.next_hole(12) == 12);

  SECTION("written neighbours in different arena runs are still one data region") {
    ExtentMap n;
    n.insert(0, {10, 2}, false);
    n.insert(2, {50, 2}, false);
    REQUIRE(rows(n).size() == 2);
    CHECK(n.next_hole(0) == 4);
    CHECK(n.next_hole(1) == 4);
  }
  SECTION("after mark_written the unwritten part becomes data") {
    m.mark_written(4, 6);
    CHECK(m.next_hole(2) == 6);
    CHECK(m.next_data(4) == 4u);
  }
}

TEST_CASE("ExtentMap: allocated_blocks counts written and unwritten blocks", "[extent]") {
  ExtentMap m;
  m.insert(0, {10, 3}, false);
  m.insert(100, {20, 7}, true);
  CHECK(m.allocated_blocks() == 10);
  m.mark_written(100, 103);
  CHECK(m.allocated_blocks() == 10);
  uint64_t freed = 0;
  m.remove(1, 102, [&](BlockRun r) { freed += r.count; });
  CHECK(freed == 4);
  CHECK(m.allocated_blocks() == 6);
}
