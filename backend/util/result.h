// Error-code results across layer boundaries: a value or a positive errno, never an exception.
#pragma once

#include <cassert>
#include <utility>
#include <variant>

namespace pkramfs {

struct Errno {
  int value;
};

template <class T> class [[nodiscard]] Result {
public:
  Result(T value) : v_(std::move(value)) {}
  Result(Errno e) : v_(e) { assert(e.value > 0); }

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return ok() ? 0 : std::get<1>(v_).value; }
  T &value() & { return std::get<0>(v_); }
  T &&value() && { return std::get<0>(std::move(v_)); }
  const T &value() const & { return std::get<0>(v_); }
  T *operator->() { return &std::get<0>(v_); }
  const T *operator->() const { return &std::get<0>(v_); }
  T &operator*() & { return std::get<0>(v_); }
  const T &operator*() const & { return std::get<0>(v_); }

private:
  std::variant<T, Errno> v_;
};

template <> class [[nodiscard]] Result<void> {
public:
  Result() = default;
  Result(Errno e) : err_(e.value) { assert(e.value > 0); }

  bool ok() const { return err_ == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return err_; }

private:
  int err_ = 0;
};

} // namespace pkramfs
