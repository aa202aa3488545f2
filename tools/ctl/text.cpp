// Text for pkramfs-ctl's messages and tables (text.h).
#include "text.h"

#include <cstdio>
#include <cstring>

namespace pkramfs::ctl {

std::string why(int err) { return std::strerror(err); }

std::string in_quotes(std::string_view name) { return "'" + printable(name) + "'"; }

std::string human_bytes(uint64_t n) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (n < 1024)
    return std::to_string(n) + " B";
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

} // namespace pkramfs::ctl
