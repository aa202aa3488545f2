// Callers of the Filesystem: root, and callers with the credentials a rule asks for.
#pragma once
#include "fs/filesystem.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace pkramfs::test {

inline const Caller kRoot{0, 0};

// A caller with CAP_SYS_ADMIN (sees trusted.* in listings).
inline const Caller kAdmin{0, 0, [] {
                             Credentials c;
                             c.cap_sys_admin = true;
                             return c;
                           }};

// A caller whose credentials (supplementary groups, CAP_FSETID) are given; `lookups` counts
// how often the filesystem asked for them.
inline Caller caller_with(uint32_t uid, uint32_t gid, std::vector<uint32_t> groups, bool fsetid,
                          int *lookups = nullptr) {
  return Caller{uid, gid, [groups = std::move(groups), fsetid, lookups] {
                  if (lookups)
                    ++*lookups;
                  Credentials c;
                  c.groups = groups;
                  c.cap_fsetid = fsetid;
                  return c;
                }};
}

} // namespace pkramfs::test
