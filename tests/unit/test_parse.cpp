// Parsing of sizes, counts and node names as operators type them.
#include "util/parse.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>

using namespace pkramfs;

namespace {
constexpr uint64_t KiB = 1ull << 10, MiB = 1ull << 20, GiB = 1ull << 30, TiB = 1ull << 40;
}

TEST_CASE("parse_size: plain numbers and binary suffixes", "[parse]") {
  const uint64_t ram = 16 * GiB;
  CHECK(parse_size("0", ram).value() == 0);
  CHECK(parse_size("4096", ram).value() == 4096);
  CHECK(parse_size("512k", ram).value() == 512 * KiB);
  CHECK(parse_size("512m", ram).value() == 512 * MiB);
  CHECK(parse_size("512M", ram).value() == 512 * MiB);
  CHECK(parse_size("4g", ram).value() == 4 * GiB);
  CHECK(parse_size("4G", ram).value() == 4 * GiB);
  CHECK(parse_size("1t", ram).value() == TiB);
  CHECK(parse_size("2T", ram).value() == 2 * TiB);
}

TEST_CASE("parse_size: percentages of RAM", "[parse]") {
  CHECK(parse_size("10%", 1000 * MiB).value() == 100 * MiB);
  CHECK(parse_size("50%", 100 * GiB).value() == 50 * GiB);
  CHECK(parse_size("0%", 16 * GiB).value() == 0);
  CHECK(parse_size("100%", 3 * 4096).value() == 3 * 4096);
  auto over = parse_size("101%", 16 * GiB);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error() == ERANGE);
}

TEST_CASE("parse_size: percentages are exact, as tmpfs computes them", "[parse]") {
  // tmpfs: size = percent * total_ram / 100. Half of 1 GiB is 512 MiB, and all of it is all.
  CHECK(parse_size("50%", GiB).value() == 512 * MiB);
  CHECK(parse_size("100%", GiB + 4096).value() == GiB + 4096);
  CHECK(parse_size("50%", 16 * GiB).value() == 8 * GiB);
  // tmpfs: bytes = percent * RAM / 100, then rounded *up* to whole pages. Half of a three-page
  // machine is a page and a half: two pages, not one.
  auto pages = [](uint64_t bytes) { return (bytes + 4095) / 4096; };
  CHECK(pages(parse_size("50%", 3 * 4096).value()) == 2);
  CHECK(pages(parse_size("1%", 150 * 4096).value()) == 2);
  CHECK(pages(parse_size("33%", 1000 * 4096).value()) == 330);
}

TEST_CASE("parse_size: malformed input and overflow", "[parse]") {
  const uint64_t ram = 16 * GiB;
  for (const char *bad : {"", "bad", "m", "-1", "12mb", "1.5g", "10 m", "4x", "%", "5%%", " 1"}) {
    INFO("input: '" << bad << "'");
    auto r = parse_size(bad, ram);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == EINVAL);
  }
  // Too large for 64 bits, either as digits or once the suffix is applied.
  CHECK_FALSE(parse_size("18446744073709551616", ram).ok());
  CHECK(parse_size("18446744073709551615", ram).value() == UINT64_MAX);
  auto shifted = parse_size("16777216t", ram); // 2^24 * 2^40 = 2^64
  REQUIRE_FALSE(shifted.ok());
  CHECK(shifted.error() == ERANGE);
  CHECK(parse_size("16777215t", ram).value() == 16777215 * TiB);
  auto exa = parse_size("16e", ram);
  REQUIRE_FALSE(exa.ok());
  CHECK(exa.error() == ERANGE);
}

TEST_CASE("parse_count: numbers with k/m/g suffixes", "[parse]") {
  CHECK(parse_count("0").value() == 0);
  CHECK(parse_count("1234").value() == 1234);
  CHECK(parse_count("100k").value() == 100 * KiB);
  CHECK(parse_count("100K").value() == 100 * KiB);
  CHECK(parse_count("2m").value() == 2 * MiB);
  CHECK(parse_count("1g").value() == GiB);
  for (const char *bad : {"", "k", "10%", "1kk", "abc", "-5"}) {
    INFO("input: '" << bad << "'");
    auto r = parse_count(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == EINVAL);
  }
  CHECK_FALSE(parse_count("99999999999999999999").ok());
  CHECK_FALSE(parse_count("17179869184g").ok()); // 2^34 * 2^30
}

TEST_CASE("valid_node_name", "[parse]") {
  SECTION("good names") {
    for (const char *good : {"a", "node-1", "Node_2", "a.b", "x.", "0", "rack3.node-17_a"})
      CHECK(valid_node_name(good));
    CHECK(valid_node_name(std::string(kNodeNameMax, 'n')));
  }
  SECTION("bad names") {
    CHECK_FALSE(valid_node_name(""));
    CHECK_FALSE(valid_node_name(std::string(kNodeNameMax + 1, 'n'))); // 128 bytes
    CHECK_FALSE(valid_node_name("../x"));
    CHECK_FALSE(valid_node_name("a/b"));
    CHECK_FALSE(valid_node_name(".hidden"));
    CHECK_FALSE(valid_node_name("."));
    CHECK_FALSE(valid_node_name(".."));
    CHECK_FALSE(valid_node_name("a b"));
    CHECK_FALSE(valid_node_name("a\\b"));
    CHECK_FALSE(valid_node_name("caf\xc3\xa9"));
    CHECK_FALSE(valid_node_name(std::string_view("a\0b", 3)));
    CHECK_FALSE(valid_node_name("a\n"));
  }
}
