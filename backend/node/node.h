// A persistent node: its frames, superblock, journal and checkpoint slots (layout in
// pkramfs/format.h). Opening validates everything through a read-only view first, so a node
// that is refused keeps every byte it had.
#pragma once

#include "util/fault.h"
#include "fs/filesystem.h"
#include "storage/frame_source.h"
#include "journal/journal.h"
#include "storage/pkram_device.h"
#include "pkramfs/format.h"
#include "util/result.h"

#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace pkramfs {

struct NodeParams {
  uint64_t limit_blocks = 0; // for a new node; an existing one keeps its own
  uint64_t max_inodes = UINT64_MAX;
  Placement placement; // NUMA placement of the frames allocated from now on (--numa)
};

// A node uuid as 32 lowercase hex digits.
std::string uuid_to_hex(const uint8_t (&uuid)[16]);

class Node {
public:
  static constexpr uint64_t kJournalFrames = 8; // 16 MiB

  // Opens the node file at `path` (creating it if missing). EUCLEAN/EINVAL with `why` set when
  // an existing file is not a node this build can use.
  static Result<std::unique_ptr<Node>> open_shm(const std::string &path, const NodeParams &params,
                                                std::string &why);
  // Attaches pkram.ko node `name` (creating it if missing) through `device`, an open
  // /dev/pkram not attached yet. EBUSY when another process holds it, EFBIG when the size does
  // not fit a pkram node.
  static Result<std::unique_ptr<Node>> open_kmod(PkramDevice device, const std::string &name,
                                                 const NodeParams &params, std::string &why);
  // The same on a /dev/pkram of its own; ENOENT without the module.
  static Result<std::unique_ptr<Node>> open_kmod(const std::string &name, const NodeParams &params,
                                                 std::string &why);

  FrameSource &frames() { return *source_; }
  uint64_t data_first_frame() const { return sb_.data_first_frame; }
  uint64_t limit_blocks() const { return sb_.data_limit_blocks; }
  uint64_t max_inodes() const { return sb_.max_inodes; }
  // The file handle generation of every inode of this node: the first bytes of its uuid (made
  // at random when the node was made), so that a handle of another node, or of an earlier node
  // of the same name, is stale here. Never 0.
  uint32_t handle_generation() const {
    return (uint32_t{sb_.uuid[0]} | uint32_t{sb_.uuid[1]} << 8 | uint32_t{sb_.uuid[2]} << 16 |
            uint32_t{sb_.uuid[3]} << 24) | 1u;
  }
  // The uuid as 32 lowercase hex digits: what a node's file objects are marked with
  // (storage/object_store.h).
  std::string uuid_hex() const { return uuid_to_hex(sb_.uuid); }
  // True when the node holds no tree yet (just created).
  bool fresh() const { return fresh_; }
  Journal &journal() { return *journal_; }

  // Loads the newest valid checkpoint and replays the journal into `fs`.
  Result<void> restore(Filesystem &fs, std::string &why);
  // Writes a checkpoint of `fs` into the other slot, switches to it and starts a new journal
  // epoch. Every operation waits meanwhile.
  Result<void> checkpoint(Filesystem &fs);
  void set_state(uint32_t state);
  // PKRAMFS_STATE_* as the superblock holds it (before restore: how the last daemon left it).
  uint32_t state() const {
    std::lock_guard lock(mu_);
    return sb_.state;
  }

  uint64_t checkpoint_bytes() const;
  uint64_t checkpoint_generation() const;
  uint64_t node_bytes() const;
  // Where the node's memory goes, by kind (docs/operations.md, "Space").
  struct Space;
  Space space() const;

private:
  // What a node lives in, before its frames are mapped.
  struct Store {
    int fd = -1;          // pread() reads the node's bytes; holes read as zeros
    uint64_t bytes = 0;   // the node's size: file size, or the pkram node's span
    bool created = false; // this open made it
    bool preserved = false;
    std::function<Result<std::unique_ptr<FrameSource>>(uint64_t capacity_frames)> map;
  };
  static Result<std::unique_ptr<Node>> open_store(Store &store, const std::string &label,
                                                  const NodeParams &params, std::string &why);
  Result<void> set_source_preserved(bool preserved);
  Result<void> acquire_metadata_frames(); // superblock and journal
  Result<void> restore_tree(Filesystem &fs, std::string &why);
  Result<void> write_checkpoint(Filesystem &fs);      // mu_ held
  void release_stale_checkpoint_frames(uint64_t end); // mu_ held

  Node() = default;
  // `torn_at`: a crash point that tears this write in half (tests).
  void write_superblock(fault::Point torn_at = fault::Point::kCount);
  std::string_view slot_image(unsigned slot) const;

  std::unique_ptr<FrameSource> source_;
  std::unique_ptr<Journal> journal_;
  mutable std::mutex mu_; // superblock
  pkramfs_superblock sb_{};
  uint64_t capacity_frames_ = 0;
  unsigned restored_slot_ = 0;
  bool fresh_ = false;
  bool source_preserved_ = false;
};

// A node's metadata by kind. The superblock frame and the journal are fixed, outside size=;
// the checkpoint slots (the serialised tree: inodes, directories, xattrs, extent lists) are
// charged against size= in 4 KiB blocks, next to the data, and held in whole frames.
struct Node::Space {
  uint64_t superblock_bytes = 0;       // frame 0
  uint64_t journal_bytes = 0;          // the journal frames
  uint64_t checkpoint_bytes = 0;       // both valid slots' images, in blocks: charged to size=
  uint64_t checkpoint_frame_bytes = 0; // the frames holding them
};
Node::Space node_space(const pkramfs_superblock &sb);

// Validates a superblock copy; empty string when valid, else what is wrong.
std::string check_superblock(const pkramfs_superblock &sb);

// A node's superblock and the checkpoint to restore, read and checked with pread only.
struct NodeHeader {
  pkramfs_superblock sb{};
  unsigned slot = 0;   // the checkpoint slot to restore
  std::string image;   // its bytes, CRC checked
  std::string warning; // set when falling back to the older checkpoint
};
Result<NodeHeader> read_node_header(int fd, uint64_t file_bytes, std::string &why);

// Replays the records of `epoch` from a journal region into `fs` (after load_image).
Result<Journal::ScanResult> replay_journal(Filesystem &fs, const std::byte *base, uint64_t bytes,
                                           uint64_t epoch, std::string &why);

} // namespace pkramfs
