// CRC32C (Castagnoli), as the kernel's crc32c(): every persistent structure carries one.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pkramfs {

uint32_t crc32c(uint32_t crc, const void *data, size_t len);
inline uint32_t crc32c(const void *data, size_t len) { return crc32c(0, data, len); }
// The CRC of A followed by B from crc32c(A), crc32c(B) and B's length, without reading A or B.
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

} // namespace pkramfs
