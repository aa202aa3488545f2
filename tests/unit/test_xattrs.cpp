// Xattrs: one inode's extended attributes, with setxattr's create/replace flags.
#include "fs/xattrs.h"

#include <catch2/catch.hpp>

#include <cerrno>

using namespace pkramfs;

TEST_CASE("Xattrs: set and get", "[xattrs]") {
  Xattrs x;
  CHECK(x.get("user.a") == nullptr);
  CHECK(x.items().empty());

  REQUIRE(x.set("user.a", "one", false, false).ok());
  REQUIRE(x.set("user.b", std::string_view("\0bin\0", 5), false, false).ok());
  REQUIRE(x.get("user.a") != nullptr);
  CHECK(*x.get("user.a") == "one");
  CHECK(*x.get("user.b") == std::string("\0bin\0", 5));
  CHECK(x.get("user.") == nullptr);
  CHECK(x.get("user.ab") == nullptr);
  CHECK(x.items().size() == 2);

  SECTION("plain set replaces an existing value") {
    REQUIRE(x.set("user.a", "two", false, false).ok());
    CHECK(*x.get("user.a") == "two");
    CHECK(x.items().size() == 2);
  }
  SECTION("an empty value is a value") {
    REQUIRE(x.set("user.empty", "", false, false).ok());
    REQUIRE(x.get("user.empty") != nullptr);
    CHECK(x.get("user.empty")->empty());
  }
}

TEST_CASE("Xattrs: create and replace flags", "[xattrs]") {
  Xattrs x;
  REQUIRE(x.set("user.a", "one", false, false).ok());

  SECTION("create fails with EEXIST on an existing name and keeps the value") {
    auto r = x.set("user.a", "two", true, false);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == EEXIST);
    CHECK(*x.get("user.a") == "one");
  }
  SECTION("create succeeds on a new name") {
    REQUIRE(x.set("user.b", "b", true, false).ok());
    CHECK(*x.get("user.b") == "b");
  }
  SECTION("replace fails with ENODATA on a missing name and adds nothing") {
    auto r = x.set("user.b", "b", false, true);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == ENODATA);
    CHECK(x.get("user.b") == nullptr);
    CHECK(x.items().size() == 1);
  }
  SECTION("replace succeeds on an existing name") {
    REQUIRE(x.set("user.a", "two", false, true).ok());
    CHECK(*x.get("user.a") == "two");
  }
}

TEST_CASE("Xattrs: remove", "[xattrs]") {
  Xattrs x;
  REQUIRE(x.set("user.a", "1", false, false).ok());
  REQUIRE(x.set("user.b", "2", false, false).ok());
  REQUIRE(x.set("user.c", "3", false, false).ok());

  REQUIRE(x.remove("user.b").ok());
  CHECK(x.get("user.b") == nullptr);
  CHECK(*x.get("user.a") == "1");
  CHECK(*x.get("user.c") == "3");
  CHECK(x.items().size() == 2);

  auto again = x.remove("user.b");
  REQUIRE_FALSE(again.ok());
  CHECK(again.error() == ENODATA);
  auto never = x.remove("user.zzz");
  REQUIRE_FALSE(never.ok());
  CHECK(never.error() == ENODATA);
  CHECK(x.items().size() == 2);
}
