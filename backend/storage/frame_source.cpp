#include "storage/frame_source.h"

#include "util/geometry.h"
#include "storage/pkram_device.h"
#include "util/unique_fd.h"

#include <cerrno>
#include <fcntl.h>
#include <mutex>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace pkramfs {
namespace {

// Whether `frames` frames, plus the frame of slack map_aligned() adds, have a byte size that
// fits in 64 bits: a count read from a node is never multiplied blindly (ENOMEM otherwise,
// which no address space could map anyway).
bool mappable(uint64_t frames) { return frames < UINT64_MAX / kFrameSize; }

// Maps `bytes` at a 2 MiB-aligned address so that every frame can be one huge page.
std::byte *map_aligned(uint64_t bytes, int prot, int flags, int fd) {
  const uint64_t span = bytes + kFrameSize;
  void *raw = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED)
    return nullptr;
  auto addr = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (addr + kFrameSize - 1) & ~(kFrameSize - 1);
  void *p = mmap(reinterpret_cast<void *>(aligned), bytes, prot, flags | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    munmap(raw, span);
    return nullptr;
  }
  if (aligned > addr)
    munmap(raw, aligned - addr);
  const uintptr_t tail = aligned + bytes;
  if (addr + span > tail)
    munmap(reinterpret_cast<void *>(tail), addr + span - tail);
  return static_cast<std::byte *>(p);
}

class AnonFrameSource final : public FrameSource {
public:
  AnonFrameSource(std::byte *base, uint64_t frames, bool hugetlb)
      : base_(base), frames_(frames), hugetlb_(hugetlb) {}
  ~AnonFrameSource() override { munmap(base_, frames_ * kFrameSize); }

  std::byte *base() const override { return base_; }
  uint64_t capacity_frames() const override { return frames_; }
  Result<void> acquire(uint64_t) override { return {}; }
  void release(uint64_t frame) override {
    madvise(base_ + frame * kFrameSize, kFrameSize, MADV_DONTNEED);
  }
  std::string describe() const override {
    return hugetlb_ ? "anon (hugetlb)" : "anon (transparent hugepages)";
  }

private:
  std::byte *base_;
  uint64_t frames_;
  bool hugetlb_;
};

class ShmFrameSource final : public FrameSource {
public:
  ShmFrameSource(UniqueFd fd, std::string path, std::byte *base, uint64_t frames,
                 uint64_t file_bytes)
      : fd_(std::move(fd)), path_(std::move(path)), base_(base), frames_(frames),
        file_bytes_(file_bytes) {}
  ~ShmFrameSource() override { munmap(base_, frames_ * kFrameSize); }

  std::byte *base() const override { return base_; }
  uint64_t capacity_frames() const override { return frames_; }

  Result<void> acquire(uint64_t frame) override {
    const uint64_t end = (frame + 1) * kFrameSize;
    if (end > file_bytes_) {
      if (ftruncate(fd_.get(), static_cast<off_t>(end)) != 0)
        return Errno{errno};
      file_bytes_ = end;
    }
    // Reserve the memory now so that a full /dev/shm is an ENOSPC here, not a SIGBUS later.
    if (fallocate(fd_.get(), 0, static_cast<off_t>(frame * kFrameSize), kFrameSize) != 0 &&
        errno != EOPNOTSUPP)
      return Errno{errno};
    return {};
  }
  void release(uint64_t frame) override {
    fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
              static_cast<off_t>(frame * kFrameSize), kFrameSize);
  }
  std::string describe() const override { return "shm " + path_; }

private:
  UniqueFd fd_;
  std::string path_;
  std::byte *base_;
  uint64_t frames_;
  uint64_t file_bytes_;
};

class KmodFrameSource final : public FrameSource {
public:
  KmodFrameSource(PkramDevice device, std::string name, std::byte *base, uint64_t frames)
      : device_(std::move(device)), name_(std::move(name)), base_(base), frames_(frames),
        populated_(frames) {}
  ~KmodFrameSource() override { munmap(base_, frames_ * kFrameSize); }

  std::byte *base() const override { return base_; }
  uint64_t capacity_frames() const override { return frames_; }

  Result<void> acquire(uint64_t frame) override {
    std::lock_guard lock(mu_);
    // POPULATE leaves a frame that is already there alone, so frames held before this daemon
    // started need no bookkeeping: the first acquire of each asks the module once.
    if (populated_[frame])
      return {};
    if (auto r = device_.populate(frame, 1); !r)
      return r;
    populated_[frame] = true;
    return {};
  }
  void release(uint64_t frame) override {
    std::lock_guard lock(mu_);
    if (device_.punch(frame, 1))
      populated_[frame] = false;
  }
  std::string describe() const override { return "pkram.ko node " + name_; }
  Result<void> set_preserved(bool preserved) override { return device_.set_preserved(preserved); }
  Result<NodeReader> node_reader() const override {
    auto info = device_.stat(name_);
    if (!info)
      return Errno{info.error()};
    // A file of its own, read-only and attached for reading only: not a duplicate of ours,
    // which could populate, punch and map the node.
    auto fd = PkramDevice::open_reader(name_);
    if (!fd)
      return Errno{fd.error()};
    return NodeReader{std::move(fd.value()), info->span_frames * kFrameSize};
  }

private:
  PkramDevice device_;
  std::string name_;
  std::byte *base_;
  uint64_t frames_;
  std::mutex mu_;
  std::vector<bool> populated_;
};

// Free 2 MiB pages in the pool of one NUMA node.
uint64_t node_free_hugepages(int node) {
  const std::string path = "/sys/devices/system/node/node" + std::to_string(node) +
                           "/hugepages/hugepages-2048kB/free_hugepages";
  FILE *f = fopen(path.c_str(), "re");
  unsigned long long n = 0;
  if (!f)
    return 0;
  if (fscanf(f, "%llu", &n) != 1)
    n = 0;
  fclose(f);
  return n;
}

bool hugetlb_pool_can_hold(uint64_t frames, const Placement &placement) {
  // Bound to one node, a fault finds no page elsewhere: a short pool there would be a SIGBUS.
  if (placement.kind == Placement::Kind::kBind)
    return node_free_hugepages(placement.node) >= frames;
  // Only take hugetlb pages the administrator set aside and nobody uses yet.
  FILE *f = fopen("/proc/meminfo", "re");
  if (!f)
    return false;
  char line[256];
  unsigned long long free_pages = 0, page_kb = 0;
  while (fgets(line, sizeof line, f)) {
    sscanf(line, "HugePages_Free: %llu", &free_pages);
    sscanf(line, "Hugepagesize: %llu kB", &page_kb);
  }
  fclose(f);
  return page_kb * 1024 == kFrameSize && free_pages >= frames;
}

} // namespace

Result<std::unique_ptr<FrameSource>> make_anon_frame_source(uint64_t frames,
                                                            const Placement &placement) {
  if (!mappable(frames))
    return Errno{ENOMEM};
  const uint64_t bytes = frames * kFrameSize;
  if (hugetlb_pool_can_hold(frames, placement)) {
    void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (p != MAP_FAILED) {
      std::unique_ptr<FrameSource> source(
          new AnonFrameSource(static_cast<std::byte *>(p), frames, true));
      if (auto r = bind_memory(placement, p, bytes); !r)
        return Errno{r.error()};
      return source;
    }
  }
  std::byte *p =
      map_aligned(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
  if (!p)
    return Errno{errno ? errno : ENOMEM};
  std::unique_ptr<FrameSource> source(new AnonFrameSource(p, frames, false));
  madvise(p, bytes, MADV_HUGEPAGE);
  if (auto r = bind_memory(placement, p, bytes); !r)
    return Errno{r.error()};
  return source;
}

Result<std::unique_ptr<FrameSource>> make_shm_frame_source(int raw_fd, const std::string &path,
                                                           uint64_t frames,
                                                           const Placement &placement) {
  UniqueFd fd(raw_fd);
  if (!mappable(frames))
    return Errno{ENOMEM};
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return Errno{errno};
  // Mapping past the end of the file is allowed; frames are only touched once acquired.
  // MAP_NORESERVE: on hugetlbfs a shared mapping would otherwise reserve huge pages for the
  // whole address range; frames are fallocated one by one as they come into use instead.
  std::byte *p = map_aligned(frames * kFrameSize, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_NORESERVE, fd.get());
  if (!p)
    return Errno{errno ? errno : ENOMEM};
  std::unique_ptr<FrameSource> source(
      new ShmFrameSource(std::move(fd), path, p, frames, static_cast<uint64_t>(st.st_size)));
  madvise(p, frames * kFrameSize, MADV_HUGEPAGE);
  // On tmpfs this sets the file's shared policy, which fallocate in acquire() follows too;
  // hugetlbfs keeps no shared policy and allocates by the thread's policy instead.
  if (auto r = bind_memory(placement, p, frames * kFrameSize); !r)
    return Errno{r.error()};
  return source;
}

Result<std::unique_ptr<FrameSource>> make_kmod_frame_source(PkramDevice device,
                                                            const std::string &name,
                                                            uint64_t frames,
                                                            const Placement &placement) {
  if (!mappable(frames))
    return Errno{ENOMEM};
  if (auto r = device.set_placement(placement); !r)
    return Errno{r.error()};
  // The whole address space is mapped once; holes fault with SIGBUS until acquired.
  std::byte *p = map_aligned(frames * kFrameSize, PROT_READ | PROT_WRITE, MAP_SHARED, device.fd());
  if (!p)
    return Errno{errno ? errno : ENOMEM};
  return std::unique_ptr<FrameSource>(new KmodFrameSource(std::move(device), name, p, frames));
}

} // namespace pkramfs
