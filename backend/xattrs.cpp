#include "xattrs.h"

#include <cerrno>

namespace pkramfs {

Result<void> Xattrs::set(std::string_view name, std::string_view value, bool create, bool replace) {
  for (auto &[n, v] : items_) {
    if (n != name)
      continue;
    if (create)
      return Errno{EEXIST};
    v.assign(value);
    return {};
  }
  if (replace)
    return Errno{ENODATA};
  items_.emplace_back(std::string(name), std::string(value));
  return {};
}

Result<void> Xattrs::remove(std::string_view name) {
  for (auto it = items_.begin(); it != items_.end(); ++it) {
    if (it->first == name) {
      items_.erase(it);
      return {};
    }
  }
  return Errno{ENODATA};
}

} // namespace pkramfs
