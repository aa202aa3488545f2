// Sinks for what the Filesystem hands back through a callback: the bytes of a read.
#pragma once
#include "fs/filesystem.h"

#include <span>
#include <string>
#include <sys/uio.h>

namespace pkramfs::test {

// The bytes of a read, concatenated.
struct Collect final : ReadSink {
  std::string bytes;
  void deliver(std::span<const iovec> iov) override {
    for (const iovec &v : iov)
      bytes.append(static_cast<const char *>(v.iov_base), v.iov_len);
  }
};

} // namespace pkramfs::test
