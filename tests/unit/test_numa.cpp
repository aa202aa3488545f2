// --numa: parsing, how placements print (as numa_maps does), and the choices for a pkram.ko
// region from its per-node frame counts. Real placement is tested through mounts
// (tests/integration/numa.sh) and with two NUMA nodes in QEMU (tests/vm/scenarios/m-numa.sh).
#include "storage/numa_placement.h"

#include <catch2/catch.hpp>
#include <numa.h>

using namespace pkramfs;

TEST_CASE("numa: --numa values", "[numa]") {
  NumaRequest r;
  CHECK(parse_numa("auto", r));
  CHECK(r.mode == NumaRequest::Mode::kAuto);
  CHECK(parse_numa("interleave", r));
  CHECK(r.mode == NumaRequest::Mode::kInterleave);
  CHECK(parse_numa("1", r));
  CHECK(r.mode == NumaRequest::Mode::kNode);
  CHECK(r.node == 1);
  for (const char *bad : {"", "-1", "x", "1x", "0x1", "99999", "Auto", "local"})
    CHECK_FALSE(parse_numa(bad, r));
}

TEST_CASE("numa: placements print as numa_maps prints policies", "[numa]") {
  CHECK(Placement{}.describe() == "default");
  CHECK(Placement{Placement::Kind::kBind, 1, {}}.describe() == "bind:1");
  CHECK(Placement{Placement::Kind::kPreferred, 0, {}}.describe() == "prefer:0");
  CHECK(Placement{Placement::Kind::kInterleave, -1, {0, 1, 2, 5}}.describe() == "interleave:0-2,5");
  CHECK(format_list({}).empty());
  CHECK(format_list({3}) == "3");
}

TEST_CASE("numa: a pkram.ko region's node for NODE, interleave and auto", "[numa]") {
  if (numa_available() < 0)
    return; // a kernel without NUMA: nothing to choose from
  const std::vector<RegionNumaNode> region = {{0, 15, 15}, {1, 16, 2}};
  std::string error;
  auto node = plan_region_numa({NumaRequest::Mode::kNode, 1}, region, error);
  REQUIRE(node);
  CHECK(node->placement.describe() == "bind:1");
  auto il = plan_region_numa({NumaRequest::Mode::kInterleave, -1}, region, error);
  REQUIRE(il);
  CHECK(il->placement.describe() == "interleave:0-1");
  // auto: the node holding most of the region, however full it is now
  auto au = plan_region_numa({NumaRequest::Mode::kAuto, -1}, region, error);
  REQUIRE(au);
  CHECK(au->placement.describe() == "prefer:1");
  auto missing = plan_region_numa({NumaRequest::Mode::kNode, 2}, region, error);
  CHECK(missing.error() == ENODEV);
  CHECK(error == "--numa=2: pkram.ko's region has no frames on NUMA node 2 (it spans nodes 0-1); "
                 "give one of those, auto or interleave, or reserve the region on node 2");
  auto none = plan_region_numa({}, region, error);
  REQUIRE(none);
  CHECK(none->placement.kind == Placement::Kind::kNone);
  CHECK(none->cpus.empty());
}

TEST_CASE("numa: a node that does not exist is refused in one line", "[numa]") {
  if (numa_available() < 0)
    return; // a kernel without NUMA: nothing to choose from
  std::string error;
  auto plan = plan_memory_numa({NumaRequest::Mode::kNode, 4000}, error);
  CHECK(plan.error() == ENODEV);
  CHECK(error.find("--numa=4000: NUMA node 4000 does not exist (nodes with memory: ") == 0);
  CHECK(error.find('\n') == std::string::npos);
}
