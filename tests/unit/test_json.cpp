// common/json.h: the control socket's JSON, written by the daemon and read by pkramfs-ctl.
#include "json.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>

using namespace pkramfs::control;

TEST_CASE("json: what the writer writes, the flat reader reads back exactly") {
  const std::string odd = std::string("quote\" back\\ nl\n tab\t ctl\x01 del\x7f utf8 \xc3\xa9");
  JsonWriter w;
  w.begin_object()
      .field("ok", true)
      .field("name", odd)
      .field("big", std::numeric_limits<uint64_t>::max())
      .field("neg", int64_t{-42})
      .field("ms", 1.5)
      .key("none")
      .null()
      .end_object();
  JsonObject o;
  std::string error;
  REQUIRE(parse_flat_object(w.str(), o, error));
  CHECK(o.at("ok").as_bool());
  CHECK(o.at("name").as_string() == odd);
  CHECK(o.at("big").as_u64() == std::numeric_limits<uint64_t>::max());
  CHECK(o.at("neg").as_i64() == -42);
  CHECK(o.at("ms").as_double() == 1.5);
  CHECK_FALSE(o.at("none").is_string());
  CHECK(o.size() == 6);
}

TEST_CASE("json: nesting is written with commas in the right places") {
  JsonWriter w;
  w.begin_object().key("a").begin_array().value(1).value("x").end_array().field("b", false);
  w.end_object();
  CHECK(w.str() == R"({"a":[1,"x"],"b":false})");
}

TEST_CASE("json: a non-finite double is written as null") {
  JsonWriter w;
  w.begin_object().field("d", std::numeric_limits<double>::infinity()).end_object();
  CHECK(w.str() == R"({"d":null})");
}

TEST_CASE("json: \\u escapes, surrogate pairs included, become UTF-8") {
  JsonObject o;
  std::string error;
  REQUIRE(parse_flat_object(R"({"s":"\u00e9\ud83d\ude00\/"})", o, error));
  CHECK(o.at("s").as_string() == "\xc3\xa9\xf0\x9f\x98\x80/");
}

TEST_CASE("json: malformed replies are refused with the byte offset") {
  for (const char *bad : {"", "[]", "{", R"({"a"})", R"({"a":})", R"({"a":1,})", R"({"a":1} x)",
                          R"({"a":"\q"})", R"({"a":"\ud800\u0041"})", "{\"a\":\"\x01\"}",
                          R"({"a":tru})", R"({"a":-})", R"({"a":{"b":1}})"}) {
    JsonObject o;
    std::string error;
    INFO(bad);
    CHECK_FALSE(parse_flat_object(bad, o, error));
    CHECK(error.find("at byte") != std::string::npos);
  }
}
