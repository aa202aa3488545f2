#include "credentials.h"

#include <fstream>
#include <linux/capability.h>
#include <sstream>
#include <string>

namespace pkramfs {

Credentials read_credentials(pid_t tid) {
  Credentials creds;
  // Requests the kernel makes on its own (writeback of mmap'ed pages) carry pid 0: they are
  // not a user's write, and the kernel already dealt with privileges when the page was dirtied.
  if (tid == 0) {
    creds.cap_fsetid = creds.cap_sys_admin = true;
    return creds;
  }
  // A caller that is gone has no privileges to keep.
  std::ifstream status("/proc/" + std::to_string(tid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("Groups:")) {
      std::istringstream in(line.substr(7));
      uint32_t gid;
      while (in >> gid)
        creds.groups.push_back(gid);
    } else if (line.starts_with("CapEff:")) {
      const unsigned long long caps = std::stoull(line.substr(7), nullptr, 16);
      creds.cap_fsetid = caps & (1ull << CAP_FSETID);
      creds.cap_sys_admin = caps & (1ull << CAP_SYS_ADMIN);
    }
  }
  return creds;
}

} // namespace pkramfs
