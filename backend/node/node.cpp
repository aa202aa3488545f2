#include "node/node.h"

#include "util/crc32c.h"
#include "util/fault.h"
#include "util/geometry.h"
#include "storage/pkram_device.h"
#include "pkramfs/pkram_uapi.h"
#include "util/unique_fd.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace pkramfs {
namespace {

constexpr size_t kSbCrcBytes = offsetof(pkramfs_superblock, crc32c);

uint32_t superblock_crc(const pkramfs_superblock &sb) { return crc32c(&sb, kSbCrcBytes); }

uint64_t frames_for(uint64_t bytes) { return (bytes + kFrameSize - 1) / kFrameSize; }

// Address space for checkpoints beyond the data frames: it costs nothing until used.
uint64_t checkpoint_reserve(const pkramfs_superblock &sb) {
  return std::max<uint64_t>(512, sb.data_frames);
}

pkramfs_superblock new_superblock(const NodeParams &p) {
  pkramfs_superblock sb{};
  sb.magic = PKRAMFS_SB_MAGIC;
  sb.version = PKRAMFS_FORMAT_VERSION;
  sb.sb_bytes = sizeof sb;
  if (getrandom(sb.uuid, sizeof sb.uuid, 0) != sizeof sb.uuid)
    std::memset(sb.uuid, 0, sizeof sb.uuid);
  sb.frame_size = kFrameSize;
  sb.block_size = kBlockSize;
  sb.journal_first_frame = 1;
  sb.journal_frames = Node::kJournalFrames;
  sb.data_first_frame = 1 + Node::kJournalFrames;
  sb.data_limit_blocks = p.limit_blocks;
  sb.data_frames = (p.limit_blocks + kBlocksPerFrame - 1) / kBlocksPerFrame;
  sb.ckpt_first_frame = sb.data_first_frame + sb.data_frames;
  sb.max_inodes = p.max_inodes;
  sb.state = PKRAMFS_STATE_DIRTY;
  return sb;
}

// Where a slot may lie: write_checkpoint() puts every image between ckpt_first_frame and the
// end of the checkpoint reserve (docs/format.md, "Checkpoints"). check_superblock() holds every
// used slot to that, so no frame number or byte offset computed from a slot can wrap:
// data_frames <= 2^32, so the end is below 2^34 frames, 2^55 bytes.
uint64_t checkpoint_end_frame(const pkramfs_superblock &sb) {
  return sb.ckpt_first_frame + checkpoint_reserve(sb);
}

// What is wrong with the location of a used slot, or empty. Overflow-free: only differences
// of values already known to be in range.
std::string slot_location_problem(const pkramfs_superblock &sb, unsigned slot) {
  const pkramfs_ckpt_slot &s = sb.slots[slot];
  const uint64_t end = checkpoint_end_frame(sb);
  if (s.first_frame < sb.ckpt_first_frame || s.first_frame >= end || s.nr_frames == 0 ||
      s.nr_frames > end - s.first_frame || s.bytes > s.nr_frames * kFrameSize ||
      s.bytes < sizeof(pkramfs_ckpt_header))
    return "checkpoint slot " + std::to_string(slot) + " has an impossible location (frames " +
           std::to_string(s.first_frame) + "+" + std::to_string(s.nr_frames) + ", " +
           std::to_string(s.bytes) + " bytes; checkpoints lie in frames " +
           std::to_string(sb.ckpt_first_frame) + "-" + std::to_string(end - 1) + ")";
  return {};
}

std::string slot_problem(const pkramfs_superblock &sb, unsigned slot, uint64_t file_bytes) {
  const pkramfs_ckpt_slot &s = sb.slots[slot];
  if (s.generation == 0)
    return "checkpoint slot " + std::to_string(slot) + " is empty";
  // check_superblock() has bounded the location: the product cannot wrap.
  if ((s.first_frame + s.nr_frames) * kFrameSize > file_bytes)
    return "node file is shorter than checkpoint slot " + std::to_string(slot) +
           " says (truncated?)";
  return {};
}

} // namespace

Node::Space node_space(const pkramfs_superblock &sb) {
  Node::Space space;
  space.superblock_bytes = sb.journal_first_frame * kFrameSize;
  space.journal_bytes = sb.journal_frames * kFrameSize;
  for (const pkramfs_ckpt_slot &s : sb.slots) {
    if (s.generation == 0)
      continue;
    space.checkpoint_bytes += (s.bytes + kBlockSize - 1) / kBlockSize * kBlockSize;
    space.checkpoint_frame_bytes += s.nr_frames * kFrameSize;
  }
  return space;
}

std::string check_superblock(const pkramfs_superblock &sb) {
  if (sb.magic != PKRAMFS_SB_MAGIC)
    return "no pkramfs superblock (unknown magic)";
  if (sb.version > PKRAMFS_FORMAT_VERSION)
    return "format version " + std::to_string(sb.version) +
           " is newer than this build reads (version " + std::to_string(PKRAMFS_FORMAT_VERSION) +
           ")";
  if (sb.version < PKRAMFS_FORMAT_VERSION_OLDEST || sb.sb_bytes != sizeof sb)
    return "unknown format version " + std::to_string(sb.version);
  if (superblock_crc(sb) != sb.crc32c)
    return "superblock CRC mismatch";
  if (sb.frame_size != kFrameSize || sb.block_size != kBlockSize || sb.journal_first_frame != 1 ||
      sb.journal_frames == 0 || sb.journal_frames > 4096 ||
      sb.data_first_frame != 1 + sb.journal_frames || sb.data_frames > (1ull << 32) ||
      sb.ckpt_first_frame != sb.data_first_frame + sb.data_frames ||
      sb.data_limit_blocks > sb.data_frames * kBlocksPerFrame || sb.current_slot > 1 ||
      sb.state < PKRAMFS_STATE_CLEAN || sb.state > PKRAMFS_STATE_PRESERVED)
    return "superblock geometry is inconsistent";
  // Both slots, not only the one restored: the other one's frames are mapped, and swept when
  // the next checkpoint replaces it (release_stale_checkpoint_frames).
  for (unsigned slot : {0u, 1u})
    if (sb.slots[slot].generation != 0)
      if (std::string problem = slot_location_problem(sb, slot); !problem.empty())
        return problem;
  return {};
}

Result<NodeHeader> read_node_header(int fd, uint64_t file_bytes, std::string &why) {
  // Read-only checks first: a node we refuse keeps every byte.
  pkramfs_superblock copies[2];
  std::string problems[2];
  for (int c = 0; c < 2; ++c) {
    if (pread(fd, &copies[c], sizeof copies[c], c * PKRAMFS_SB_COPY_OFFSET) !=
        static_cast<ssize_t>(sizeof copies[c]))
      problems[c] = "node file is too short for a superblock";
    else
      problems[c] = check_superblock(copies[c]);
  }
  int best = -1;
  for (int c = 0; c < 2; ++c)
    if (problems[c].empty() && (best < 0 || copies[c].sequence > copies[best].sequence))
      best = c;
  if (best < 0) {
    why = problems[0];
    return Errno{EUCLEAN};
  }
  NodeHeader h;
  h.sb = copies[best];
  if (file_bytes < h.sb.ckpt_first_frame * kFrameSize) {
    why = "node file is shorter than its superblock says (truncated?)";
    return Errno{EUCLEAN};
  }
  // The current checkpoint, or the other one if the current one is damaged.
  const unsigned cur = h.sb.current_slot;
  std::string first_problem;
  for (unsigned slot : {cur, 1 - cur}) {
    std::string problem = slot_problem(h.sb, slot, file_bytes);
    const pkramfs_ckpt_slot &s = h.sb.slots[slot];
    if (problem.empty()) {
      h.image.assign(s.bytes, '\0');
      if (pread(fd, h.image.data(), h.image.size(),
                static_cast<off_t>(s.first_frame * kFrameSize)) !=
              static_cast<ssize_t>(h.image.size()) ||
          crc32c(h.image.data(), h.image.size()) != s.crc32c)
        problem = "checkpoint slot " + std::to_string(slot) + " fails its CRC";
    }
    if (problem.empty()) {
      h.slot = slot;
      if (slot != cur)
        h.warning = first_problem + "; using the older checkpoint " + std::to_string(s.generation) +
                    " (changes after it are lost)";
      return h;
    }
    if (first_problem.empty())
      first_problem = problem;
  }
  why = first_problem;
  return Errno{EUCLEAN};
}

Result<std::unique_ptr<Node>> Node::open_shm(const std::string &path, const NodeParams &params,
                                             std::string &why) {
  // Only a file this call creates is a new node: an existing empty one was emptied behind
  // our back (or its creation crashed) and is refused like any truncated node.
  Store store;
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid() && errno == ENOENT) {
    fd.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    store.created = fd.valid();
  }
  if (!fd.valid())
    return Errno{errno};
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return Errno{errno};
  if (!S_ISREG(st.st_mode)) {
    why = "node is not a regular file";
    return Errno{EUCLEAN};
  }
  // Someone else's file (made before the directory was ours: tmpfiles.d takes over an existing
  // /dev/shm/pkramfs) stays theirs to rewrite under the mount, as ensure_private_dir refuses
  // someone else's directory.
  if (st.st_uid != geteuid()) {
    why = "node file is owned by uid " + std::to_string(st.st_uid) +
          ", not by the daemon's user; remove it unless you know who made it";
    return Errno{EUCLEAN};
  }
  store.fd = fd.get();
  store.bytes = static_cast<uint64_t>(st.st_size);
  store.map = [&](uint64_t capacity) {
    return make_shm_frame_source(fd.release(), path, capacity, params.placement);
  };
  return open_store(store, "node file", params, why);
}

Result<std::unique_ptr<Node>> Node::open_kmod(const std::string &name, const NodeParams &params,
                                              std::string &why) {
  auto device = PkramDevice::open();
  if (!device)
    return Errno{device.error()};
  return open_kmod(std::move(device.value()), name, params, why);
}

Result<std::unique_ptr<Node>> Node::open_kmod(PkramDevice device, const std::string &name,
                                              const NodeParams &params, std::string &why) {
  Store store;
  auto info = device.attach(name, true, &store.created);
  if (!info)
    return Errno{info.error()};
  store.fd = device.fd();
  store.bytes = info->span_frames * kFrameSize;
  store.preserved = info->preserved;
  store.map = [&](uint64_t capacity) -> Result<std::unique_ptr<FrameSource>> {
    if (capacity > PKRAM_MAX_SPAN)
      return Errno{EFBIG};
    return make_kmod_frame_source(std::move(device), name, capacity, params.placement);
  };
  return open_store(store, "pkram node", params, why);
}

Result<std::unique_ptr<Node>> Node::open_store(Store &store, const std::string &label,
                                               const NodeParams &params, std::string &why) {
  std::unique_ptr<Node> node(new Node);
  if (!store.created && store.bytes == 0) {
    why = label + " is empty: it was truncated, or its creation was interrupted";
    return Errno{EUCLEAN};
  }
  if (store.created) {
    node->fresh_ = true;
    node->sb_ = new_superblock(params);
  } else {
    auto header = read_node_header(store.fd, store.bytes, why);
    if (!header)
      return Errno{header.error()};
    node->sb_ = header->sb;
    node->restored_slot_ = header->slot;
    if (!header->warning.empty())
      spdlog::warn("{}: {}", label, header->warning);
  }
  uint64_t capacity = node->sb_.ckpt_first_frame + checkpoint_reserve(node->sb_);
  for (const auto &s : node->sb_.slots)
    if (s.generation)
      capacity = std::max(capacity, s.first_frame + s.nr_frames);
  node->capacity_frames_ = capacity;
  node->source_preserved_ = store.preserved;
  auto source = store.map(capacity);
  if (!source)
    return Errno{source.error()};
  node->source_ = std::move(source.value());
  node->journal_ =
      std::make_unique<Journal>(node->source_->base() + node->sb_.journal_first_frame * kFrameSize,
                                node->sb_.journal_frames * kFrameSize);
  if (node->fresh_) {
    // The superblock and journal frames are written without going through the allocator, and
    // the node reaches its first checkpoint frame at once so that it never looks truncated.
    if (auto r = node->acquire_metadata_frames(); !r)
      return Errno{r.error()};
    if (auto r = node->source_->acquire(node->sb_.ckpt_first_frame); !r)
      return Errno{r.error()};
    node->write_superblock();
  }
  return node;
}

Result<void> Node::acquire_metadata_frames() {
  for (uint64_t f = 0; f < sb_.data_first_frame; ++f)
    if (auto r = source_->acquire(f); !r)
      return r;
  return {};
}

Result<void> Node::set_source_preserved(bool preserved) {
  if (preserved == source_preserved_)
    return {};
  if (auto r = source_->set_preserved(preserved); !r)
    return r;
  source_preserved_ = preserved;
  return {};
}

std::string_view Node::slot_image(unsigned slot) const {
  const pkramfs_ckpt_slot &s = sb_.slots[slot];
  return {reinterpret_cast<const char *>(source_->base() + s.first_frame * kFrameSize), s.bytes};
}

void Node::write_superblock([[maybe_unused]] fault::Point torn_at) {
  // Two copies written in turn: a write torn by a crash leaves the other one valid.
  sb_.sequence++;
  sb_.crc32c = superblock_crc(sb_);
  std::byte *copy = source_->base() + (sb_.sequence % 2) * PKRAMFS_SB_COPY_OFFSET;
  if (torn_at != fault::Point::kCount && fault::hit(torn_at)) {
    std::memcpy(copy, &sb_, sizeof sb_ / 2);
    raise(SIGKILL);
  }
  std::memcpy(copy, &sb_, sizeof sb_);
}

void Node::set_state(uint32_t state) {
  std::lock_guard lock(mu_);
  sb_.state = state;
  write_superblock();
  if (auto r = set_source_preserved(state == PKRAMFS_STATE_PRESERVED); !r)
    spdlog::error("cannot mark the frames {}: {}",
                  state == PKRAMFS_STATE_PRESERVED ? "preserved" : "active",
                  std::strerror(r.error()));
}

Result<Journal::ScanResult> replay_journal(Filesystem &fs, const std::byte *base, uint64_t bytes,
                                           uint64_t epoch, std::string &why) {
  Result<void> failed;
  auto scan = Journal::scan(base, bytes, epoch, [&](uint32_t type, std::string_view payload) {
    if (failed)
      failed = fs.replay(type, payload, why);
  });
  if (!failed) {
    why = "journal record " + std::to_string(scan.records) + ": " + why;
    return Errno{failed.error()};
  }
  if (!scan.corruption.empty()) {
    why = scan.corruption;
    return Errno{EUCLEAN};
  }
  // Each record was checked against the tree as it stood; the tree they leave must still be
  // what load_image accepts (link counts, every directory reachable from the root), or the
  // node is refused like a bad checkpoint. Before finish_restore(), which would already give
  // empty frames back. Without records the tree is the checkpoint's, which load_image verified.
  std::vector<std::string> problems;
  if (scan.records != 0)
    fs.verify(problems);
  if (!problems.empty()) {
    why = "after " + std::to_string(scan.records) + " journal records: " + problems.front();
    return Errno{EUCLEAN};
  }
  return scan;
}

std::string uuid_to_hex(const uint8_t (&uuid)[16]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t byte : uuid) {
    hex += kHex[byte >> 4];
    hex += kHex[byte & 15];
  }
  return hex;
}

Result<void> Node::restore(Filesystem &fs, std::string &why) {
  // Restoring gives empty frames back, which a preserved pkram node refuses; a refused image
  // leaves the node preserved as it was.
  const bool was_preserved = source_preserved_;
  if (auto r = set_source_preserved(false); !r) {
    why = std::string("cannot make the node writable: ") + std::strerror(r.error());
    return r;
  }
  // An existing node has them already (acquiring changes nothing), unless it was damaged: a
  // pkram node with a hole there would otherwise fault while the journal is read. After the
  // unpreserve above: a preserved pkram node refuses POPULATE.
  auto restored = acquire_metadata_frames();
  if (!restored)
    why = std::string("cannot map the node's journal: ") + std::strerror(restored.error());
  else
    restored = restore_tree(fs, why);
  if (!restored && was_preserved)
    (void)set_source_preserved(true);
  return restored;
}

Result<void> Node::restore_tree(Filesystem &fs, std::string &why) {
  if (auto r = fs.load_image(slot_image(restored_slot_), why); !r)
    return r;
  uint64_t epoch;
  Journal::ScanResult scan;
  {
    std::lock_guard lock(mu_);
    epoch = sb_.journal_epoch;
  }
  // After falling back to the older checkpoint the journal's records do not follow it.
  if (restored_slot_ == sb_.current_slot) {
    auto replayed = replay_journal(fs, source_->base() + sb_.journal_first_frame * kFrameSize,
                                   sb_.journal_frames * kFrameSize, epoch, why);
    if (!replayed)
      return Errno{replayed.error()};
    scan = *replayed;
  }
  fs.finish_restore();
  fs.set_metadata_blocks(space().checkpoint_bytes / kBlockSize);
  {
    // An older node becomes this build's version with the next superblock write (the mount's
    // state change, before any record of a new type): what it holds is read the same way,
    // and a build that knows only the old version must not replay the records that follow.
    std::lock_guard lock(mu_);
    sb_.version = PKRAMFS_FORMAT_VERSION;
  }
  journal_->resume(epoch, scan.end, scan.next_sequence);
  spdlog::debug("restored checkpoint {} and {} journal records",
                sb_.slots[restored_slot_].generation, scan.records);
  return {};
}

Result<void> Node::checkpoint(Filesystem &fs) {
  std::lock_guard lock(mu_);
  // A preserved pkram node refuses new frames: lift that for the checkpoint's own frames.
  const bool was_preserved = source_preserved_;
  if (auto r = set_source_preserved(false); !r)
    return r;
  auto written = write_checkpoint(fs);
  if (was_preserved)
    (void)set_source_preserved(true);
  return written;
}

Result<void> Node::write_checkpoint(Filesystem &fs) {
  const uint64_t generation = std::max(sb_.slots[0].generation, sb_.slots[1].generation) + 1;
  return fs.checkpoint(generation, [&](std::string_view image) -> Result<void> {
    const pkramfs_ckpt_slot &cur = sb_.slots[sb_.current_slot];
    const unsigned other = cur.generation ? 1 - sb_.current_slot : sb_.current_slot;
    const uint64_t need = std::max<uint64_t>(1, frames_for(image.size()));
    // Never overwrite the current checkpoint: before it if there is room, else after it.
    uint64_t first = sb_.ckpt_first_frame;
    if (cur.generation && first + need > cur.first_frame)
      first = cur.first_frame + cur.nr_frames;
    if (first + need > capacity_frames_)
      return Errno{ENOSPC};
    uint64_t end = first + need;
    for (const auto &s : sb_.slots)
      if (s.generation)
        end = std::max(end, s.first_frame + s.nr_frames);
    for (uint64_t f = first; f < first + need; ++f)
      if (auto r = source_->acquire(f); !r)
        return r;
    std::memcpy(source_->base() + first * kFrameSize, image.data(), image.size());
    fault::crash_point(fault::Point::kCheckpointWritten);
    sb_.slots[other] = {generation, first, need, image.size(), crc32c(image.data(), image.size()),
                        0};
    sb_.current_slot = other;
    sb_.journal_epoch = generation;
    write_superblock(fault::Point::kCheckpointTorn);
    fault::crash_point(fault::Point::kCheckpointSwitched);
    restored_slot_ = other;
    journal_->resume(generation, 0, 1);
    release_stale_checkpoint_frames(end);
    fs.set_metadata_blocks(node_space(sb_).checkpoint_bytes / kBlockSize);
    return {};
  });
}

// The image the switch above replaced is referenced by no superblock copy any more: its frames
// go back, so that the node holds the two slots and nothing more.
void Node::release_stale_checkpoint_frames(uint64_t end) {
  auto in_slot = [&](uint64_t f) {
    for (const auto &s : sb_.slots)
      if (s.generation && f >= s.first_frame && f < s.first_frame + s.nr_frames)
        return true;
    return false;
  };
  for (uint64_t f = sb_.ckpt_first_frame; f < end; ++f)
    if (!in_slot(f))
      source_->release(f);
}

uint64_t Node::checkpoint_bytes() const {
  std::lock_guard lock(mu_);
  return sb_.slots[sb_.current_slot].bytes;
}

uint64_t Node::checkpoint_generation() const {
  std::lock_guard lock(mu_);
  return sb_.slots[sb_.current_slot].generation;
}

Node::Space Node::space() const {
  std::lock_guard lock(mu_);
  return node_space(sb_);
}

uint64_t Node::node_bytes() const {
  std::lock_guard lock(mu_);
  uint64_t frames = sb_.ckpt_first_frame;
  for (const auto &s : sb_.slots)
    if (s.generation)
      frames = std::max(frames, s.first_frame + s.nr_frames);
  return frames * kFrameSize;
}

} // namespace pkramfs
