// CRC32C (Castagnoli), as the kernel's crc32c(): every persistent structure carries one.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pkramfs {

uint32_t crc32c(uint32_t crc, const void *data, size_t len);
inline uint32_t crc32c(const void *data, size_t len) { return crc32c(0, data, len); }

} // namespace pkramfs
