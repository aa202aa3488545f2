// The random numbers of the test tools (pkramfs-difftest, pkramfs-fsx): splitmix64, tiny and
// fast, with the whole state in one word, so that a run is replayed exactly from its seed.
// REQUIRES of callers: draw only from the seed and the tool's own model, never from a result of
// the filesystem under test, or a replay diverges.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pkramfs::tools {

struct SplitMix64 {
  uint64_t s;
  explicit SplitMix64(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform enough in [0, n); 0 when n is 0.
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  bool chance(unsigned percent) { return below(100) < percent; }
  template <class T, size_t N> T pick(const T (&a)[N]) { return a[below(N)]; }
};

} // namespace pkramfs::tools
