#include "tuning.h"

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <string_view>

namespace pkramfs {
namespace {

bool parse_number(std::string_view text, size_t &out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool apply(Tuning &t, std::string_view key, std::string_view value) {
  size_t n = 0;
  if (!parse_number(value, n))
    return false;
  if (key == "readahead_kb" && n <= (1u << 20)) {
    t.readahead_kb = static_cast<unsigned>(n);
    return true;
  }
  if (key == "spin_us" && n <= 100000) {
    t.spin_us = static_cast<unsigned>(n);
    return true;
  }
  if (key == "threads" && n <= 64) {
    t.threads = static_cast<unsigned>(n);
    return true;
  }
  if (key == "killpriv_v2" && n <= 1) {
    t.killpriv_v2 = n == 1;
    return true;
  }
  return false;
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
      error = "PKRAMFS_TUNE: cannot use '" + std::string(item) +
              "' (keys: readahead_kb=KIB, killpriv_v2=0|1, spin_us=US, threads=N)";
  }
  return t;
}

} // namespace pkramfs
