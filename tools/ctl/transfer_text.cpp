// What pkramfs-ctl says about an export or import (transfer_text.h).
#include "transfer_text.h"

#include "text.h"

#include "util/geometry.h"

#include <cstdio>

namespace pkramfs::ctl {
using control::JsonWriter;

std::string rate_text(uint64_t bytes, double seconds) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB/s", seconds > 0 ? bytes / seconds / (1 << 20) : 0.0);
  return buf;
}

std::string io_text(const TransferReport &r) {
  return std::string(r.direct ? "O_DIRECT" : "buffered") +
         (r.uring ? ", io_uring" : ", pread/pwrite");
}

std::string uuid_text(const uint8_t (&u)[16]) {
  char buf[40];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                u[15]);
  return buf;
}

std::string tree_text(const pkramfs_export_header &h) {
  return std::to_string(h.files) + " files, " + std::to_string(h.directories) + " directories, " +
         std::to_string(h.other_inodes) + " other inodes, " +
         human_bytes(h.data_blocks * kBlockSize) + " of data";
}

void write_transfer_json(JsonWriter &w, const TransferReport &r) {
  const pkramfs_export_header &h = r.header;
  w.field("uuid", uuid_text(h.uuid))
      .field("files", h.files)
      .field("directories", h.directories)
      .field("other_inodes", h.other_inodes)
      .field("data_bytes", h.data_blocks * kBlockSize)
      .field("extent_records", h.nr_extents)
      .field("checkpoint_bytes", h.checkpoint_bytes)
      .field("image_bytes", h.image_bytes)
      .field("seconds", r.seconds)
      .field("direct", r.direct)
      .field("io_uring", r.uring);
}

} // namespace pkramfs::ctl
