#include "storage/pkram_device.h"

#include "pkramfs/pkram_uapi.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace pkramfs {
namespace {

Result<void> ioctl_result(int fd, unsigned long cmd, void *arg) {
  if (::ioctl(fd, cmd, arg) != 0)
    return Errno{errno};
  return {};
}

// Names are checked by the caller too; the module refuses anything else with EINVAL.
bool copy_name(char (&dst)[PKRAM_NAME_LEN], const std::string &name) {
  if (name.empty() || name.size() > PKRAM_NAME_MAX)
    return false;
  std::memset(dst, 0, sizeof dst);
  std::memcpy(dst, name.data(), name.size());
  return true;
}

PkramNodeInfo from_info(const pkram_node_info &i) {
  PkramNodeInfo n;
  n.name.assign(i.name, strnlen(i.name, sizeof i.name));
  n.preserved = i.state == PKRAM_STATE_PRESERVED;
  n.attached = i.attached != 0;
  n.span_frames = i.nr_frames;
  n.populated_frames = i.populated;
  n.generation = i.generation;
  return n;
}

Result<void> range_ioctl(int fd, unsigned long cmd, uint64_t first, uint64_t count) {
  if (count == 0 || first >= PKRAM_MAX_SPAN || count > PKRAM_MAX_SPAN - first)
    return Errno{EFBIG};
  pkram_range r{static_cast<uint32_t>(first), static_cast<uint32_t>(count)};
  return ioctl_result(fd, cmd, &r);
}

} // namespace

bool PkramDevice::present() { return ::access(kPath, F_OK) == 0; }

PkramDevice::OpenFailure PkramDevice::open_failure(int err, const std::string &tool) {
  if (absent(err))
    return {"no /dev/pkram: pkram.ko is not loaded",
            "load it with modprobe pkram region=SIZE@START (see docs/operations.md) or use "
            "--backend=shm"};
  if (err == EPROTO)
    return {"/dev/pkram speaks another interface version than this " + tool,
            "install the pkram.ko of the same release"};
  return {"cannot open /dev/pkram (" + std::string(std::strerror(err)) + ")",
          tool + " must run as root"};
}

namespace {

// /dev/pkram opened with `flags`, of a module that speaks this interface: an older one (no
// sparse nodes) is refused with EPROTO rather than its answers misread.
Result<UniqueFd> open_device(int flags) {
  UniqueFd fd(::open(PkramDevice::kPath, flags | O_CLOEXEC));
  if (!fd.valid())
    return Errno{errno};
  pkram_version v{};
  if (auto r = ioctl_result(fd.get(), PKRAM_IOC_VERSION, &v); !r)
    return Errno{r.error()};
  if (v.uapi_version != PKRAM_UAPI_VERSION || v.frame_size != PKRAM_FRAME_SIZE)
    return Errno{EPROTO};
  return fd;
}

} // namespace

Result<PkramDevice> PkramDevice::open() {
  auto fd = open_device(O_RDWR);
  if (!fd)
    return Errno{fd.error()};
  return PkramDevice(std::move(fd.value()));
}

Result<UniqueFd> PkramDevice::open_reader(const std::string &name) {
  auto fd = open_device(O_RDONLY);
  if (!fd)
    return Errno{fd.error()};
  pkram_attach a{};
  if (!copy_name(a.name, name))
    return Errno{EINVAL};
  a.flags = PKRAM_ATTACH_READER;
  if (auto r = ioctl_result(fd->get(), PKRAM_IOC_ATTACH, &a); !r)
    return Errno{r.error() == EINVAL ? EPROTO : r.error()}; // the name was valid: an older module
  return std::move(fd.value());
}

Result<PkramRegionInfo> PkramDevice::region() const {
  pkram_version v{};
  if (auto r = ioctl_result(fd_.get(), PKRAM_IOC_VERSION, &v); !r)
    return Errno{r.error()};
  return PkramRegionInfo{v.data_frames, v.free_frames, v.nr_nodes};
}

Result<std::vector<PkramNodeInfo>> PkramDevice::list() const {
  // capacity 0 asks for the count (E2BIG as soon as there is a node); the count can grow
  // between the two calls: retry on E2BIG.
  for (;;) {
    pkram_list l{};
    if (auto r = ioctl_result(fd_.get(), PKRAM_IOC_LIST, &l); !r && r.error() != E2BIG)
      return Errno{r.error()};
    std::vector<pkram_node_info> raw(l.count + 4);
    l.entries = reinterpret_cast<uintptr_t>(raw.data());
    l.capacity = static_cast<uint32_t>(raw.size());
    if (auto r = ioctl_result(fd_.get(), PKRAM_IOC_LIST, &l); !r) {
      if (r.error() == E2BIG)
        continue;
      return Errno{r.error()};
    }
    std::vector<PkramNodeInfo> out;
    for (uint32_t i = 0; i < l.count; ++i)
      out.push_back(from_info(raw[i]));
    return out;
  }
}

Result<PkramNodeInfo> PkramDevice::stat(const std::string &name) const {
  pkram_node_info i{};
  if (!copy_name(i.name, name))
    return Errno{EINVAL};
  if (auto r = ioctl_result(fd_.get(), PKRAM_IOC_STAT, &i); !r)
    return Errno{r.error()};
  return from_info(i);
}

Result<void> PkramDevice::destroy(const std::string &name) const {
  pkram_name n{};
  if (!copy_name(n.name, name))
    return Errno{EINVAL};
  return ioctl_result(fd_.get(), PKRAM_IOC_DESTROY, &n);
}

Result<PkramNodeInfo> PkramDevice::attach(const std::string &name, bool create, bool *created) {
  pkram_attach a{};
  if (!copy_name(a.name, name))
    return Errno{EINVAL};
  a.flags = create ? PKRAM_ATTACH_CREATE : 0;
  if (auto r = ioctl_result(fd_.get(), PKRAM_IOC_ATTACH, &a); !r)
    return Errno{r.error()};
  if (created)
    *created = a.created != 0;
  return stat(name);
}

Result<void> PkramDevice::populate(uint64_t first, uint64_t count) {
  return range_ioctl(fd_.get(), PKRAM_IOC_POPULATE, first, count);
}

Result<void> PkramDevice::punch(uint64_t first, uint64_t count) {
  return range_ioctl(fd_.get(), PKRAM_IOC_PUNCH, first, count);
}

Result<void> PkramDevice::set_preserved(bool preserved) {
  return ioctl_result(fd_.get(), preserved ? PKRAM_IOC_PRESERVE : PKRAM_IOC_UNPRESERVE, nullptr);
}

Result<void> PkramDevice::set_placement(const Placement &placement) {
  pkram_policy p{};
  switch (placement.kind) {
  case Placement::Kind::kNone:
    return {}; // the module's default; never ask an older module
  case Placement::Kind::kBind:
    p.mode = PKRAM_POLICY_BIND;
    p.nid = static_cast<uint32_t>(placement.node);
    break;
  case Placement::Kind::kPreferred:
    p.mode = PKRAM_POLICY_PREFERRED;
    p.nid = static_cast<uint32_t>(placement.node);
    break;
  case Placement::Kind::kInterleave:
    // The module interleaves over every node of its region.
    p.mode = PKRAM_POLICY_INTERLEAVE;
    break;
  }
  auto r = ioctl_result(fd_.get(), PKRAM_IOC_SET_POLICY, &p);
  if (!r && r.error() == ENOTTY)
    return Errno{EOPNOTSUPP};
  return r;
}

Result<std::vector<RegionNumaNode>> PkramDevice::numa_nodes() {
  FILE *f = fopen("/sys/kernel/pkram/numa", "re");
  if (!f)
    return Errno{errno == ENOENT ? EOPNOTSUPP : errno};
  std::vector<RegionNumaNode> out;
  RegionNumaNode n;
  unsigned long long data = 0, free = 0;
  while (fscanf(f, "%d %llu %llu", &n.node, &data, &free) == 3) {
    n.data_frames = data;
    n.free_frames = free;
    out.push_back(n);
  }
  fclose(f);
  return out;
}

} // namespace pkramfs
