#include "backing_files.h"

#include "device_io.h"

#include <spdlog/spdlog.h>

namespace pkramfs {

int32_t BackingFiles::open(uint64_t ino, int object_fd, const std::function<bool()> &eligible,
                           uint64_t *fh) {
  std::lock_guard lock(mu_);
  Opens &o = opens_[ino];
  if (o.passthrough == 0 && (o.cached > 0 || !eligible())) {
    o.cached++;
    *fh = kCachedOpen;
    return 0;
  }
  if (o.backing_id == 0) {
    const int32_t id = open_backing_file(object_fd);
    if (id <= 0) {
      spdlog::debug("passthrough: the kernel refused inode {}'s object ({})", ino, -id);
      o.cached++;
      *fh = kCachedOpen;
      return 0;
    }
    o.backing_id = id;
  }
  o.passthrough++;
  *fh = kPassthroughOpen;
  return o.backing_id;
}

void BackingFiles::release(uint64_t ino, uint64_t fh) {
  std::lock_guard lock(mu_);
  auto it = opens_.find(ino);
  if (it == opens_.end())
    return;
  Opens &o = it->second;
  if (fh == kPassthroughOpen && o.passthrough > 0)
    o.passthrough--;
  else if (fh == kCachedOpen && o.cached > 0)
    o.cached--;
  if (o.passthrough == 0 && o.backing_id != 0) {
    // The kernel's open files hold the backing file themselves; the id was only for replies.
    close_backing_file(o.backing_id);
    o.backing_id = 0;
  }
  if (o.passthrough == 0 && o.cached == 0)
    opens_.erase(it);
}

} // namespace pkramfs
