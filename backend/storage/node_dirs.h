// Where nodes live when no --shm-dir is given: /dev/shm/pkramfs, or a hugetlbfs mount with
// 2 MiB pages free for the whole node, so that every frame is one huge page.
#pragma once

#include "util/result.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pkramfs {

inline constexpr const char *kDefaultShmDir = "/dev/shm/pkramfs";

// /dev/shm/pkramfs, then <mount>/pkramfs for every hugetlbfs mount with 2 MiB pages.
std::vector<std::string> default_node_dirs();
// The default directory for node `name`: the one that already holds it; for a new node the
// first hugetlbfs mount whose free pages cover `bytes`, else /dev/shm/pkramfs.
std::string default_node_dir(const std::string &name, uint64_t bytes);

// Creates `dir` (mode 0700, parents 0755) if missing; refuses one that others could write
// into (EPERM) or that is not a directory (ENOTDIR).
Result<void> ensure_private_dir(const std::string &dir);

} // namespace pkramfs
