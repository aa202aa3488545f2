#include "tuning.h"

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>

namespace pkramfs {
namespace {

bool parse_number(std::string_view text, size_t &out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// Every key with its largest value and where it goes.
struct Key {
  std::string_view name;
  size_t max;
  void (*set)(Tuning &, size_t);
};
constexpr Key kKeys[] = {
    {"readahead_kb", 1u << 20, [](Tuning &t, size_t n) { t.readahead_kb = unsigned(n); }},
    {"bdi_max_ratio", 100, [](Tuning &t, size_t n) { t.bdi_max_ratio = unsigned(n); }},
    {"bdi_strict_limit", 1, [](Tuning &t, size_t n) { t.bdi_strict_limit = n == 1; }},
    {"killpriv_v2", 1, [](Tuning &t, size_t n) { t.killpriv_v2 = n == 1; }},
    {"spin_us", 100000, [](Tuning &t, size_t n) { t.spin_us = unsigned(n); }},
    {"threads", 64, [](Tuning &t, size_t n) { t.threads = unsigned(n); }},
    {"passthrough", 1, [](Tuning &t, size_t n) { t.passthrough = n == 1; }},
};

bool apply(Tuning &t, std::string_view key, std::string_view value) {
  size_t n = 0;
  if (!parse_number(value, n))
    return false;
  for (const Key &k : kKeys)
    if (key == k.name && n <= k.max) {
      k.set(t, n);
      return true;
    }
  return false;
}

std::string known_keys() {
  std::string list;
  for (const Key &k : kKeys)
    list += (list.empty() ? "" : ", ") + std::string(k.name) + "=0.." + std::to_string(k.max);
  return list;
}

} // namespace

Tuning tuning_from_environment(std::string &error) {
  Tuning t;
  const char *env = std::getenv("PKRAMFS_TUNE");
  if (!env)
    return t;
  std::string_view rest(env);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos || !apply(t, item.substr(0, eq), item.substr(eq + 1)))
      error = "PKRAMFS_TUNE: cannot use '" + std::string(item) + "' (keys: " + known_keys() + ")";
  }
  return t;
}

} // namespace pkramfs
