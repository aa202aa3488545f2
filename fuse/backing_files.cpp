#include "backing_files.h"

#include "device_io.h"

#include <spdlog/spdlog.h>

namespace pkramfs {

uint32_t BackingFiles::open(uint64_t ino, int object_fd, const std::function<bool()> &eligible) {
  std::lock_guard lock(mu_);
  Opens &o = opens_[ino];
  if (o.passthrough == 0 && (o.cached > 0 || !eligible())) {
    o.cached++;
    return kCached;
  }
  if (o.backing_id == 0) {
    const int32_t id = open_backing_file(object_fd);
    if (id <= 0) {
      spdlog::debug("passthrough: the kernel refused inode {}'s object ({})", ino, -id);
      o.cached++;
      return kCached;
    }
    o.backing_id = id;
  }
  o.passthrough++;
  return static_cast<uint32_t>(o.backing_id);
}

void BackingFiles::release(uint64_t ino, uint32_t word) {
  std::lock_guard lock(mu_);
  auto it = opens_.find(ino);
  if (it == opens_.end())
    return;
  Opens &o = it->second;
  if (word == kCached && o.cached > 0)
    o.cached--;
  else if (word != kCached && word != 0 && o.passthrough > 0)
    o.passthrough--;
  if (o.passthrough == 0 && o.backing_id != 0) {
    // The kernel's open files hold the backing file themselves; the id was only for replies.
    close_backing_file(o.backing_id);
    o.backing_id = 0;
  }
  if (o.passthrough == 0 && o.cached == 0)
    opens_.erase(it);
}

void BackingFiles::adopt(uint64_t ino, int32_t backing_id, uint32_t passthrough, uint32_t cached) {
  std::lock_guard lock(mu_);
  opens_[ino] = Opens{passthrough ? backing_id : 0, passthrough, cached};
}

} // namespace pkramfs
