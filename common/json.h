// The small JSON writer and reader of the control socket's replies (common/control_protocol.h)
// and of pkramfs-ctl's --json output: flat objects on the wire, nesting when writing.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pkramfs::control {

// Appends `s` to `out` as a JSON string: quotes, escapes for '"', '\\' and control bytes; other
// bytes (UTF-8) pass through unchanged.
void json_escape(std::string &out, std::string_view s);

// Streaming writer: objects and arrays nest; commas are placed automatically.
//   JsonWriter w; w.begin_object(); w.key("ok").value(true); w.end_object(); w.str()
class JsonWriter {
public:
  JsonWriter &begin_object() { return open('{'); }
  JsonWriter &end_object() { return close('}'); }
  JsonWriter &begin_array() { return open('['); }
  JsonWriter &end_array() { return close(']'); }
  JsonWriter &key(std::string_view k) {
    separate();
    json_escape(out_, k);
    out_ += ':';
    after_key_ = true;
    return *this;
  }
  JsonWriter &value(std::string_view s) {
    separate();
    json_escape(out_, s);
    return *this;
  }
  JsonWriter &value(const char *s) { return value(std::string_view(s)); }
  JsonWriter &value(const std::string &s) { return value(std::string_view(s)); }
  JsonWriter &value(bool b) {
    separate();
    out_ += b ? "true" : "false";
    return *this;
  }
  JsonWriter &value(uint64_t n) {
    separate();
    out_ += std::to_string(n);
    return *this;
  }
  JsonWriter &value(int64_t n) {
    separate();
    out_ += std::to_string(n);
    return *this;
  }
  JsonWriter &value(int n) { return value(static_cast<int64_t>(n)); }
  JsonWriter &value(double d); // 3 decimals; null when not finite
  JsonWriter &null() {
    separate();
    out_ += "null";
    return *this;
  }
  template <class T> JsonWriter &field(std::string_view k, const T &v) { return key(k).value(v); }
  const std::string &str() const { return out_; }

private:
  JsonWriter &open(char c) {
    separate();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  JsonWriter &close(char c) {
    out_ += c;
    if (!first_.empty())
      first_.pop_back();
    return *this;
  }
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back())
        out_ += ',';
      first_.back() = false;
    }
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};


// A value of a flat reply object. Integers that fit stay exact; other numbers are doubles.
struct JsonValue {
  std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string> v;

  bool is_string() const { return std::holds_alternative<std::string>(v); }
  bool is_bool() const { return std::holds_alternative<bool>(v); }
  bool is_number() const {
    return std::holds_alternative<int64_t>(v) || std::holds_alternative<uint64_t>(v) ||
           std::holds_alternative<double>(v);
  }
  std::string as_string() const { return is_string() ? std::get<std::string>(v) : std::string(); }
  bool as_bool() const { return is_bool() && std::get<bool>(v); }
  uint64_t as_u64() const {
    if (auto *u = std::get_if<uint64_t>(&v))
      return *u;
    if (auto *i = std::get_if<int64_t>(&v))
      return *i < 0 ? 0 : static_cast<uint64_t>(*i);
    if (auto *d = std::get_if<double>(&v))
      return *d < 0 ? 0 : static_cast<uint64_t>(*d);
    return 0;
  }
  int64_t as_i64() const {
    if (auto *i = std::get_if<int64_t>(&v))
      return *i;
    if (auto *u = std::get_if<uint64_t>(&v))
      return static_cast<int64_t>(*u);
    if (auto *d = std::get_if<double>(&v))
      return static_cast<int64_t>(*d);
    return 0;
  }
  double as_double() const {
    if (auto *d = std::get_if<double>(&v))
      return *d;
    if (auto *u = std::get_if<uint64_t>(&v))
      return static_cast<double>(*u);
    if (auto *i = std::get_if<int64_t>(&v))
      return static_cast<double>(*i);
    return 0;
  }
};

using JsonObject = std::map<std::string, JsonValue, std::less<>>;

// Parses one flat JSON object (no nested objects or arrays). On failure says why in `error`.
bool parse_flat_object(std::string_view text, JsonObject &out, std::string &error);

} // namespace pkramfs::control
