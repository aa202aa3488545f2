#include "fs/xattrs.h"

#include "util/fault.h"
#include "fs/posix_acl.h"

#include <cerrno>
#include <linux/xattr.h>

namespace pkramfs {

Result<void> check_xattr_name(std::string_view name) {
  if (is_acl_name(name))
    return {};
  bool known = false;
  for (std::string_view prefix : {XATTR_USER_PREFIX, XATTR_TRUSTED_PREFIX, XATTR_SECURITY_PREFIX})
    known |= name.starts_with(prefix);
  if (!known)
    return Errno{EOPNOTSUPP};
  if (name.find('.') + 1 == name.size())
    return Errno{EINVAL};
  return {};
}

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

void Xattrs::prepare(std::string_view name) {
  if (get(name))
    return; // put() swaps the value in
  fault::heap();
  if (items_.size() == items_.capacity())
    items_.reserve(2 * items_.size() + 1);
}

void Xattrs::put(std::string &&name, std::string &&value) noexcept {
  for (auto &[n, v] : items_)
    if (n == name) {
      v.swap(value);
      return;
    }
  items_.emplace_back(std::move(name), std::move(value));
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
