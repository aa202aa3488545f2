// Parsing of the values operators type: sizes in tmpfs's forms and node names.
#pragma once

#include "util/result.h"

#include <cstdint>
#include <string_view>

namespace pkramfs {

inline constexpr size_t kNodeNameMax = 127;

// "4096", "512k", "512m", "4g", "1t" (binary units, any case) or "10%" of `total_ram`.
Result<uint64_t> parse_size(std::string_view text, uint64_t total_ram);
// A count with an optional k/m/g suffix, as tmpfs's nr_inodes= takes it.
Result<uint64_t> parse_count(std::string_view text);
// 1-127 bytes of [A-Za-z0-9._-], not starting with '.': safe as a file name anywhere.
bool valid_node_name(std::string_view name);

} // namespace pkramfs
