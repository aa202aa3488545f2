// Text from outside (what a user typed, what a client sent), safe to print on one line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pkramfs {

// `s` with every byte outside printable ASCII written as \xNN; past `max` bytes cut, with "...".
std::string printable(std::string_view s, size_t max = std::string_view::npos);

} // namespace pkramfs
