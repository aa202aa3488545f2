#include "credentials.h"

#include <fstream>
#include <linux/capability.h>
#include <sstream>
#include <string>
#include <sys/stat.h>

namespace pkramfs {
namespace {

// The initial user namespace's inode number in nsfs (PROC_USER_INIT_INO, include/linux/
// proc_ns.h), fixed since Linux 3.8: what /proc/<tid>/ns/user shows for init_user_ns.
constexpr ino_t kInitUserNsIno = 0xEFFFFFFDU;

bool in_initial_user_ns(const std::string &proc_dir) {
  struct stat st;
  return stat((proc_dir + "/ns/user").c_str(), &st) == 0 && st.st_ino == kInitUserNsIno;
}

} // namespace

Credentials read_credentials(pid_t tid) {
  Credentials creds;
  if (tid <= 0)
    return creds;
  const std::string proc_dir = "/proc/" + std::to_string(tid);
  std::ifstream status(proc_dir + "/status");
  std::string line;
  unsigned long long caps = 0;
  while (std::getline(status, line)) {
    if (line.starts_with("Groups:")) {
      std::istringstream in(line.substr(7));
      uint32_t gid;
      while (in >> gid)
        creds.groups.push_back(gid);
    } else if (line.starts_with("CapEff:")) {
      caps = std::stoull(line.substr(7), nullptr, 16);
    }
  }
  // The caller waits for the reply, so its tid names it while the request is served (one
  // killed meanwhile may see its id reused; for write, truncate and O_TRUNC the kernel's own
  // verdict, device_io.h, takes the place of this guess).
  if (caps != 0 && in_initial_user_ns(proc_dir)) {
    creds.cap_fsetid = caps & (1ull << CAP_FSETID);
    creds.cap_sys_admin = caps & (1ull << CAP_SYS_ADMIN);
  }
  return creds;
}

} // namespace pkramfs
