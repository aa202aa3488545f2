// Where the arena's 2 MiB frames come from. The arena is one contiguous virtual range; a frame
// source backs frame i of it with memory and gives that memory back.
#pragma once

#include "storage/numa_placement.h"
#include "util/result.h"
#include "util/unique_fd.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace pkramfs {

class FrameSource {
public:
  virtual ~FrameSource() = default;

  // Start of the mapping; frame i lives at base() + i * kFrameSize.
  virtual std::byte *base() const = 0;
  virtual uint64_t capacity_frames() const = 0;
  // Make frame i usable; its contents read as zero if it was never used or was released.
  virtual Result<void> acquire(uint64_t frame) = 0;
  // Give frame i's memory back; its contents become zero.
  virtual void release(uint64_t frame) = 0;
  // Human-readable description for logs ("anon (THP)", "shm /dev/shm/pkramfs/x").
  virtual std::string describe() const = 0;
  // Marks the frames as a consistent image to keep (pkram.ko refuses to change them meanwhile).
  virtual Result<void> set_preserved(bool) { return {}; }
  // A new read-only descriptor (close-on-exec) whose pread() reads the node's bytes, holes as
  // zeros, and nothing else, and the node's size in bytes: for pkramfs-ctl export of a frozen
  // node. EOPNOTSUPP from a source without one, EPROTO from a pkram.ko too old to make one.
  struct NodeReader {
    UniqueFd fd;
    uint64_t bytes = 0;
  };
  virtual Result<NodeReader> node_reader() const { return Errno{EOPNOTSUPP}; }
};

class PkramDevice;

// Private anonymous memory: MAP_HUGETLB when the hugepage pool can hold the whole arena,
// transparent hugepages otherwise. Volatile. `placement` is applied (mbind) before first use.
Result<std::unique_ptr<FrameSource>> make_anon_frame_source(uint64_t capacity_frames,
                                                            const Placement &placement = {});

// One file per node (on /dev/shm or hugetlbfs), mapped shared, grown in 2 MiB steps.
// The file must already be open; the source takes ownership of fd. `placement` becomes the
// file's shared memory policy (mbind) for the frames allocated from now on.
Result<std::unique_ptr<FrameSource>> make_shm_frame_source(int fd, const std::string &path,
                                                           uint64_t capacity_frames,
                                                           const Placement &placement = {});

// A pkram.ko node: frames in a reserved physical region that survive kexec. `device` must be
// attached to the node; frames are populated and punched one by one, like a file with holes.
// `placement` is the module's frame policy for this attachment (PKRAM_IOC_SET_POLICY).
Result<std::unique_ptr<FrameSource>> make_kmod_frame_source(PkramDevice device,
                                                            const std::string &name,
                                                            uint64_t capacity_frames,
                                                            const Placement &placement = {});

} // namespace pkramfs
