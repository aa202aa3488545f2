#include "util/parse.h"

#include <cctype>
#include <cerrno>
#include <charconv>

namespace pkramfs {
namespace {

Result<uint64_t> parse_number(std::string_view text, std::string_view *rest) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data())
    return Errno{EINVAL};
  *rest = text.substr(static_cast<size_t>(end - text.data()));
  return value;
}

Result<uint64_t> apply_suffix(uint64_t value, std::string_view suffix) {
  if (suffix.empty())
    return value;
  if (suffix.size() != 1)
    return Errno{EINVAL};
  int shift;
  switch (std::tolower(static_cast<unsigned char>(suffix[0]))) {
  case 'k':
    shift = 10;
    break;
  case 'm':
    shift = 20;
    break;
  case 'g':
    shift = 30;
    break;
  case 't':
    shift = 40;
    break;
  case 'p':
    shift = 50;
    break;
  case 'e':
    shift = 60;
    break;
  default:
    return Errno{EINVAL};
  }
  if (value > (UINT64_MAX >> shift))
    return Errno{ERANGE};
  return value << shift;
}

} // namespace

Result<uint64_t> parse_size(std::string_view text, uint64_t total_ram) {
  std::string_view rest;
  auto value = parse_number(text, &rest);
  if (!value)
    return value;
  if (rest == "%") {
    if (*value > 100)
      return Errno{ERANGE};
    // As tmpfs computes it: bytes first, rounded up to whole blocks by the caller.
    return total_ram * *value / 100;
  }
  return apply_suffix(*value, rest);
}

Result<uint64_t> parse_count(std::string_view text) {
  std::string_view rest;
  auto value = parse_number(text, &rest);
  if (!value)
    return value;
  return apply_suffix(*value, rest);
}

bool valid_node_name(std::string_view name) {
  if (name.empty() || name.size() > kNodeNameMax || name[0] == '.')
    return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  return true;
}

} // namespace pkramfs
