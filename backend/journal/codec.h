// Little-endian encoding of journal records and checkpoint images. The Decoder never reads out
// of bounds: a short or bad input makes it fail, and every read after a failure returns zero.
//
// Byte order: integers are copied in the host's order, which is the format's little-endian order
// because pkramfs builds only for little-endian machines (asserted below and in
// pkramfs/format.h): the one place a big-endian port would have to convert.
#pragma once

#include <bit>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace pkramfs {

static_assert(std::endian::native == std::endian::little,
              "the node and export formats are little-endian; see pkramfs/format.h");

class Encoder {
public:
  // Appends to `out`.
  explicit Encoder(std::string &out) : out_(&out) {}
  // Writes into `buf` (at most `capacity` bytes) without allocating; with a null `buf` it only
  // counts, so that a record's size is known before any space is taken for it.
  Encoder(std::byte *buf, size_t capacity) : buf_(buf), capacity_(capacity) {}
  void u32(uint32_t v) { put(&v, 4); }
  void u64(uint64_t v) { put(&v, 8); }
  void i64(int64_t v) { put(&v, 8); }
  void bytes(std::string_view s) { put(s.data(), s.size()); }
  // A length-prefixed string.
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    bytes(s);
  }
  void raw(const void *p, size_t n) { put(p, n); }
  // Bytes encoded so far (buffer and counting modes).
  size_t size() const { return size_; }

private:
  void put(const void *p, size_t n) {
    if (out_) {
      out_->append(static_cast<const char *>(p), n);
      return;
    }
    if (buf_ && size_ + n <= capacity_)
      std::memcpy(buf_ + size_, p, n);
    size_ += n;
  }
  std::string *out_ = nullptr;
  std::byte *buf_ = nullptr;
  size_t capacity_ = 0;
  size_t size_ = 0;
};

class Decoder {
public:
  Decoder(const void *data, size_t size) : p_(static_cast<const char *>(data)), end_(p_ + size) {}
  uint32_t u32() { return get<uint32_t>(); }
  uint64_t u64() { return get<uint64_t>(); }
  int64_t i64() { return get<int64_t>(); }
  std::string_view bytes(size_t n) {
    if (!ok_ || static_cast<size_t>(end_ - p_) < n) {
      ok_ = false;
      return {};
    }
    std::string_view s(p_, n);
    p_ += n;
    return s;
  }
  std::string_view str(size_t max) {
    const uint32_t n = u32();
    if (n > max)
      ok_ = false;
    return bytes(ok_ ? n : 0);
  }
  bool raw(void *out, size_t n) {
    auto s = bytes(n);
    if (ok_)
      std::memcpy(out, s.data(), n);
    return ok_;
  }
  bool ok() const { return ok_; }
  void fail() { ok_ = false; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

private:
  template <class T> T get() {
    T v{};
    if (!ok_ || static_cast<size_t>(end_ - p_) < sizeof v) {
      ok_ = false;
      return T{};
    }
    std::memcpy(&v, p_, sizeof v);
    p_ += sizeof v;
    return v;
  }
  const char *p_;
  const char *end_;
  bool ok_ = true;
};

} // namespace pkramfs
