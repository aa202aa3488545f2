#include "util/crc32c.h"

#include <array>
#include <cstring>

namespace pkramfs {
namespace {

constexpr uint32_t kPoly = 0x82f63b78; // reflected Castagnoli polynomial

constexpr std::array<std::array<uint32_t, 256>, 8> make_tables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c >> 1) ^ ((c & 1) ? kPoly : 0);
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i)
    for (size_t s = 1; s < 8; ++s)
      t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  return t;
}

constexpr auto kTables = make_tables();

__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n; --n)
    c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n) {
  for (; n >= 8; n -= 8, p += 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = kTables[7][lo & 0xff] ^ kTables[6][(lo >> 8) & 0xff] ^ kTables[5][(lo >> 16) & 0xff] ^
          kTables[4][lo >> 24] ^ kTables[3][hi & 0xff] ^ kTables[2][(hi >> 8) & 0xff] ^
          kTables[1][(hi >> 16) & 0xff] ^ kTables[0][hi >> 24];
  }
  for (; n; --n)
    crc = (crc >> 8) ^ kTables[0][(crc ^ *p++) & 0xff];
  return crc;
}

// a(x) * b(x) modulo the polynomial, in the reflected bit order (as zlib's multmodp).
constexpr uint32_t multmodp(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0)
        break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

// x^(2^k) modulo the polynomial, k = 0..31.
constexpr std::array<uint32_t, 32> make_x2n() {
  std::array<uint32_t, 32> t{};
  uint32_t p = 1u << 30; // x^1
  t[0] = p;
  for (size_t n = 1; n < 32; ++n)
    t[n] = p = multmodp(p, p);
  return t;
}

constexpr auto kX2n = make_x2n();

// x^(n * 2^k) modulo the polynomial.
uint32_t x2nmodp(uint64_t n, unsigned k) {
  uint32_t p = 1u << 31; // x^0
  for (; n; n >>= 1, ++k)
    if (n & 1)
      p = multmodp(kX2n[k & 31], p);
  return p;
}

} // namespace

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  return multmodp(x2nmodp(len_b, 3), crc_a) ^ crc_b;
}

namespace {

// The crc32 instruction has a latency of three cycles and a throughput of one: three
// independent lanes over thirds of a large buffer run three times as fast as one, and
// crc32c_combine() joins them. `crc` and the result are the inverted (public) values.
__attribute__((target("sse4.2"))) uint32_t crc32c_hw_3way(uint32_t crc, const uint8_t *p,
                                                          size_t n) {
  const size_t lane = n / 3 / 8 * 8;
  uint64_t c0 = ~crc, c1 = 0xffffffffu, c2 = 0xffffffffu;
  const uint8_t *p1 = p + lane, *p2 = p + 2 * lane;
  for (size_t i = 0; i < lane; i += 8) {
    uint64_t v0, v1, v2;
    std::memcpy(&v0, p + i, 8);
    std::memcpy(&v1, p1 + i, 8);
    std::memcpy(&v2, p2 + i, 8);
    c0 = __builtin_ia32_crc32di(c0, v0);
    c1 = __builtin_ia32_crc32di(c1, v1);
    c2 = __builtin_ia32_crc32di(c2, v2);
  }
  const size_t rest = n - 3 * lane;
  const uint32_t last = crc32c_hw(static_cast<uint32_t>(c2), p2 + lane, rest);
  uint32_t out = crc32c_combine(~static_cast<uint32_t>(c0), ~static_cast<uint32_t>(c1), lane);
  return crc32c_combine(out, ~last, lane + rest);
}

} // namespace

uint32_t crc32c(uint32_t crc, const void *data, size_t len) {
  static const bool hw = __builtin_cpu_supports("sse4.2");
  const auto *p = static_cast<const uint8_t *>(data);
  if (hw && len >= 8192)
    return crc32c_hw_3way(crc, p, len);
  crc = ~crc;
  crc = hw ? crc32c_hw(crc, p, len) : crc32c_sw(crc, p, len);
  return ~crc;
}

} // namespace pkramfs
