// Text for pkramfs-ctl's messages and tables.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "printable.h"

namespace pkramfs::ctl {

// strerror(err).
std::string why(int err);
// Anything a user typed, safe to print on one line (common/printable.h).
using pkramfs::printable;
// 'name', printable.
std::string in_quotes(std::string_view name);
// "512 B", "1.5 KiB", ... "2.0 PiB".
std::string human_bytes(uint64_t n);

} // namespace pkramfs::ctl
