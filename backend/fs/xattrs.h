// Extended attributes of one inode. Few per inode, so a flat vector beats a map.
#pragma once

#include "util/result.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pkramfs {

// The names setxattr accepts (tmpfs's namespaces, something after the prefix, and the two POSIX
// ACLs of posix_acl.h): EOPNOTSUPP for another namespace, EINVAL for a bare prefix. Names read from a checkpoint or a journal record
// are held to the same rule (and to XATTR_NAME_MAX, which the kernel enforces for setxattr).
Result<void> check_xattr_name(std::string_view name);

class Xattrs {
public:
  const std::string *get(std::string_view name) const {
    for (auto &[n, v] : items_)
      if (n == name)
        return &v;
    return nullptr;
  }
  std::string *get(std::string_view name) {
    return const_cast<std::string *>(std::as_const(*this).get(name));
  }

  // `create`: fail with EEXIST if present; `replace`: fail with ENODATA if absent.
  Result<void> set(std::string_view name, std::string_view value, bool create, bool replace);
  Result<void> remove(std::string_view name);
  // Allocates ahead what put() of `name` needs, so that put() cannot fail.
  void prepare(std::string_view name);
  // Sets `name` to `value`, taking both strings; after prepare(name), allocates nothing.
  void put(std::string &&name, std::string &&value) noexcept;

  const std::vector<std::pair<std::string, std::string>> &items() const { return items_; }

private:
  std::vector<std::pair<std::string, std::string>> items_;
};

} // namespace pkramfs
