// Directory: name index plus cookie-ordered entries for readdir.
#include "fs/directory.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace pkramfs;

namespace {

struct Seen {
  uint64_t cookie;
  std::string name;
  uint64_t ino;
  bool operator==(const Seen &) const = default;
};

std::vector<Seen> list_after(const Directory &d, uint64_t after, size_t max = SIZE_MAX) {
  std::vector<Seen> out;
  d.for_each_after(after, [&](uint64_t cookie, const DirEntry &e) {
    if (out.size() == max)
      return false;
    out.push_back({cookie, e.name, e.ino});
    return true;
  });
  return out;
}

} // namespace

TEST_CASE("Directory: add, find, remove", "[directory]") {
  Directory d;
  CHECK(d.empty());
  CHECK(d.size() == 0);
  CHECK_FALSE(d.find("a").has_value());

  d.add("a", 10);
  d.add("b", 11);
  CHECK_FALSE(d.empty());
  CHECK(d.size() == 2);
  CHECK(d.find("a") == 10u);
  CHECK(d.find("b") == 11u);
  CHECK_FALSE(d.find("c").has_value());
  CHECK_FALSE(d.find("A").has_value());

  CHECK(d.remove("a"));
  CHECK_FALSE(d.remove("a"));
  CHECK_FALSE(d.find("a").has_value());
  CHECK(d.find("b") == 11u);
  CHECK(d.size() == 1);

  SECTION("a removed name can come back") {
    d.add("a", 12);
    CHECK(d.find("a") == 12u);
  }
  SECTION("names are not views into the caller's buffer") {
    std::string name = "temporary-name-long-enough-to-avoid-sso";
    d.add(name, 99);
    name.assign(name.size(), 'x');
    CHECK(d.find("temporary-name-long-enough-to-avoid-sso") == 99u);
    CHECK_FALSE(d.find(name).has_value());
  }
  SECTION("removing the last entry leaves an empty directory") {
    CHECK(d.remove("b"));
    CHECK(d.empty());
    CHECK(list_after(d, 0).empty());
  }
}

TEST_CASE("Directory: cookies increase and stay stable across removals", "[directory]") {
  Directory d;
  d.add("a", 1);
  d.add("b", 2);
  d.add("c", 3);
  CHECK(list_after(d, 0) == std::vector<Seen>{{kFirstCookie, "a", 1},
                                              {kFirstCookie + 1, "b", 2},
                                              {kFirstCookie + 2, "c", 3}});
  // Offsets 1 and 2 belong to "." and "..": entries still all come after them.
  CHECK(list_after(d, 2).size() == 3);

  REQUIRE(d.remove("b"));
  d.add("d", 4);
  // "c" keeps its cookie; "d" gets a fresh one, never a reused one.
  CHECK(list_after(d, 0) == std::vector<Seen>{{kFirstCookie, "a", 1},
                                              {kFirstCookie + 2, "c", 3},
                                              {kFirstCookie + 3, "d", 4}});
  REQUIRE(d.remove("d"));
  d.add("b", 5);
  CHECK(list_after(d, kFirstCookie + 2) == std::vector<Seen>{{kFirstCookie + 4, "b", 5}});
}

TEST_CASE("Directory: for_each_after resumes from a cookie after changes", "[directory]") {
  Directory d;
  for (int i = 0; i < 10; ++i)
    d.add("e" + std::to_string(i), 100 + i);

  // A reader takes the first four entries...
  auto page = list_after(d, 0, 4);
  REQUIRE(page.size() == 4);
  const uint64_t resume = page.back().cookie;
  CHECK(page.back().name == "e3");

  // ...meanwhile entries it has seen and entries it has not are removed, and one is added...
  REQUIRE(d.remove("e3")); // the very entry it resumes after
  REQUIRE(d.remove("e1"));
  REQUIRE(d.remove("e5"));
  d.add("new", 200);

  // ...and it continues with exactly the entries it has not seen.
  std::vector<std::string> rest;
  for (auto &s : list_after(d, resume))
    rest.push_back(s.name);
  CHECK(rest == std::vector<std::string>{"e4", "e6", "e7", "e8", "e9", "new"});

  SECTION("stopping early stops the walk") {
    CHECK(list_after(d, resume, 2).size() == 2);
    CHECK(list_after(d, resume, 0).empty());
  }
  SECTION("a cookie past the end yields nothing") { CHECK(list_after(d, 1000).empty()); }
}

TEST_CASE("Directory: for_each_before walks newest first below a cookie", "[directory]") {
  Directory d;
  for (int i = 0; i < 6; ++i)
    d.add("e" + std::to_string(i), 100 + i);
  auto names_before = [&](uint64_t before, size_t max = SIZE_MAX) {
    std::vector<std::string> out;
    d.for_each_before(before, [&](uint64_t, const DirEntry &e) {
      if (out.size() == max)
        return false;
      out.push_back(e.name);
      return true;
    });
    return out;
  };
  CHECK(names_before(UINT64_MAX) == std::vector<std::string>{"e5", "e4", "e3", "e2", "e1", "e0"});
  const uint64_t e3 = kFirstCookie + 3;
  CHECK(names_before(e3) == std::vector<std::string>{"e2", "e1", "e0"});
  CHECK(names_before(e3, 1) == std::vector<std::string>{"e2"});
  // The entry a position names is gone, one is re-added under its old name: the walk resumes
  // with the next older entry and never meets the re-added one.
  REQUIRE(d.remove("e3"));
  REQUIRE(d.remove("e1"));
  d.add("e1", 101);
  CHECK(names_before(e3) == std::vector<std::string>{"e2", "e0"});
  CHECK(names_before(kFirstCookie).empty());
}

TEST_CASE("Directory: repoint keeps the entry's position", "[directory]") {
  Directory d;
  d.add("a", 1);
  d.add("b", 2);
  d.add("c", 3);
  d.repoint("b", 42);
  CHECK(d.find("b") == 42u);
  CHECK(d.size() == 3);
  CHECK(list_after(d, 0) == std::vector<Seen>{{kFirstCookie, "a", 1},
                                              {kFirstCookie + 1, "b", 42},
                                              {kFirstCookie + 2, "c", 3}});
}

TEST_CASE("Directory: 100,000 entries in linear-ish time", "[directory]") {
  using Clock = std::chrono::steady_clock;
  constexpr int kN = 100000;
  const auto start = Clock::now();

  Directory d;
  for (int i = 0; i < kN; ++i)
    d.add("file-" + std::to_string(i), static_cast<uint64_t>(i) + 1000);
  REQUIRE(d.size() == kN);

  int found = 0;
  for (int i = 0; i < kN; i += 7)
    found += d.find("file-" + std::to_string(i)) == static_cast<uint64_t>(i) + 1000;
  CHECK(found == (kN + 6) / 7);

  // Remove every other entry, then page through the rest like readdir does.
  for (int i = 0; i < kN; i += 2)
    REQUIRE(d.remove("file-" + std::to_string(i)));
  CHECK(d.size() == kN / 2);

  uint64_t cookie = 0;
  size_t seen = 0;
  uint64_t last = 0;
  bool ordered = true;
  for (;;) {
    auto page = list_after(d, cookie, 100);
    if (page.empty())
      break;
    for (auto &s : page) {
      ordered = ordered && s.cookie > last && (s.ino - 1000) % 2 == 1;
      last = s.cookie;
    }
    seen += page.size();
    cookie = page.back().cookie;
  }
  CHECK(ordered);
  CHECK(seen == kN / 2);

  const auto elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  // A quadratic structure needs minutes here; a hash plus a tree needs a fraction of a second.
  CHECK(elapsed < 3.0);
}
