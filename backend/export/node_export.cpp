#include "export/node_export.h"

#include "storage/arena.h"
#include "util/crc32c.h"
#include "util/geometry.h"
#include "export/image_io.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <new>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

namespace pkramfs {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kHeaderBytes = sizeof(pkramfs_export_header);
constexpr uint64_t kExtentBytes = sizeof(pkramfs_export_extent);
constexpr uint64_t kExtentEndBytes = sizeof(pkramfs_export_extent_end);
constexpr uint64_t kTrailerBytes = sizeof(pkramfs_export_trailer);
constexpr uint64_t kMaxRecordBlocks = PKRAMFS_EXPORT_MAX_EXTENT_BLOCKS;

static_assert(kHeaderBytes == 240 && kExtentBytes == 40 && kExtentEndBytes == 8 &&
              kTrailerBytes == 64);

template <class T> uint32_t crc_before(const T &v, const uint32_t T::*field) {
  const size_t n =
      reinterpret_cast<const std::byte *>(&(v.*field)) - reinterpret_cast<const std::byte *>(&v);
  return crc32c(&v, n);
}

std::string range(uint64_t first, uint64_t end) {
  return "bytes " + std::to_string(first) + "-" + std::to_string(end - 1);
}

std::string describe(uint64_t index, const Filesystem::DataExtent &e) {
  return "extent record " + std::to_string(index) + " (inode " + std::to_string(e.ino) +
         ", file block " + std::to_string(e.file_block) + ", node blocks " +
         std::to_string(e.block) + "+" + std::to_string(e.count) + ")";
}

std::string io_error(const std::string &what, uint64_t offset, int err) {
  return what + " at byte offset " + std::to_string(offset) + ": " + std::strerror(err);
}

Result<void> pread_full(int fd, std::byte *out, size_t n, uint64_t off) {
  while (n) {
    const ssize_t got = ::pread(fd, out, n, static_cast<off_t>(off));
    if (got > 0) {
      out += got;
      off += static_cast<uint64_t>(got);
      n -= static_cast<size_t>(got);
    } else if (got == 0) {
      return Errno{ENODATA};
    } else if (errno != EINTR) {
      return Errno{errno};
    }
  }
  return {};
}

Errno invalid(std::string &why, std::string what) {
  why = std::move(what);
  return Errno{EINVAL};
}

// "truncated: it ends at byte offset N, inside <part>; the header says M bytes"
Errno truncated(std::string &why, const pkramfs_export_header &h, uint64_t at) {
  return invalid(why, "truncated: it ends at byte offset " + std::to_string(at) + ", inside " +
                          export_part_at(h, at) + "; its header says " +
                          std::to_string(h.image_bytes) + " bytes");
}

// Reads and checks the header; the reader is left just after it.
Result<pkramfs_export_header> read_header(ImageReader &in, std::string &why) {
  pkramfs_export_header h{};
  if (in.size() == 0)
    return invalid(why, "the file is empty (0 bytes): not a pkramfs export image");
  auto n = in.read(&h, sizeof h);
  if (!n) {
    why = io_error("reading the header", in.error_offset(), n.error());
    return Errno{n.error()};
  }
  const uint64_t magic = PKRAMFS_EXPORT_MAGIC;
  if (*n < sizeof magic ? std::memcmp(&h, &magic, *n) != 0 : h.magic != magic)
    return invalid(why, "not a pkramfs export image (no PKRXPRT1 magic at byte offset 0)");
  if (*n < sizeof h)
    return invalid(why, "truncated: it ends at byte offset " + std::to_string(*n) +
                            ", inside the header (" + range(0, kHeaderBytes) + ")");
  if (std::string problem = check_export_header(h); !problem.empty())
    return invalid(why, "the header (" + range(0, kHeaderBytes) + ", at byte offset 0) " + problem);
  if (in.size() < h.image_bytes)
    return truncated(why, h, in.size());
  if (in.size() > h.image_bytes)
    return invalid(why, std::to_string(in.size() - h.image_bytes) +
                            " bytes of something else follow the image at byte offset " +
                            std::to_string(h.image_bytes));
  return h;
}

void report_io(TransferReport &r, const ImageReader &in) {
  r.direct = in.direct();
  r.uring = in.uring();
}

} // namespace

// ------------------------------------------------------------------ the format --

std::vector<Filesystem::DataExtent> export_records(const Filesystem &fs) {
  std::vector<Filesystem::DataExtent> all = fs.data_extents();
  std::erase_if(all, [](const Filesystem::DataExtent &e) { return e.unwritten || e.count == 0; });
  std::sort(all.begin(), all.end(), [](const auto &a, const auto &b) {
    return a.ino != b.ino ? a.ino < b.ino : a.file_block < b.file_block;
  });
  // Join runs contiguous in the file and in the node, however the maps split them.
  std::vector<Filesystem::DataExtent> runs;
  for (const auto &e : all) {
    if (!runs.empty()) {
      auto &last = runs.back();
      if (last.ino == e.ino && last.file_block + last.count == e.file_block &&
          last.block + last.count == e.block) {
        last.count += e.count;
        continue;
      }
    }
    runs.push_back(e);
  }
  std::vector<Filesystem::DataExtent> out;
  for (const auto &r : runs)
    for (uint64_t k = 0; k < r.count; k += kMaxRecordBlocks)
      out.push_back(
          {r.ino, r.file_block + k, r.block + k, std::min(kMaxRecordBlocks, r.count - k), false});
  std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.block < b.block; });
  return out;
}

std::vector<Filesystem::DataExtent> export_object_records(Filesystem &fs) {
  std::vector<Filesystem::DataExtent> out;
  for (const uint64_t ino : fs.object_inodes()) {
    auto st = fs.getattr(ino);
    if (!st || st->st_size <= 0)
      continue;
    const uint64_t size = static_cast<uint64_t>(st->st_size), end_block = (size + kBlockSize - 1) / kBlockSize;
    // Its data runs (SEEK_DATA/SEEK_HOLE on the object), in whole blocks.
    for (uint64_t pos = 0; pos < size;) {
      auto data = fs.lseek(ino, static_cast<int64_t>(pos), SEEK_DATA);
      if (!data || *data >= size)
        break;
      auto hole = fs.lseek(ino, static_cast<int64_t>(*data), SEEK_HOLE);
      const uint64_t hole_at = hole ? std::min(*hole, size) : size;
      const uint64_t first = *data / kBlockSize;
      const uint64_t last = std::min(end_block, (hole_at + kBlockSize - 1) / kBlockSize);
      for (uint64_t b = first; b < last; b += kMaxRecordBlocks)
        out.push_back({ino, b, PKRAMFS_EXPORT_OBJECT_BLOCK, std::min(kMaxRecordBlocks, last - b),
                       false});
      pos = last * kBlockSize;
    }
  }
  return out;
}

uint64_t export_image_bytes(uint64_t checkpoint_bytes, uint64_t nr_extents, uint64_t data_blocks) {
  return kHeaderBytes + checkpoint_bytes + nr_extents * (kExtentBytes + kExtentEndBytes) +
         data_blocks * kBlockSize + kTrailerBytes;
}

void seal(pkramfs_export_header &h) { h.crc32c = crc_before(h, &pkramfs_export_header::crc32c); }
void seal(pkramfs_export_extent &e) { e.crc32c = crc_before(e, &pkramfs_export_extent::crc32c); }
void seal(pkramfs_export_trailer &t) { t.crc32c = crc_before(t, &pkramfs_export_trailer::crc32c); }

bool crc_ok(const pkramfs_export_extent &e) {
  return e.crc32c == crc_before(e, &pkramfs_export_extent::crc32c);
}
bool crc_ok(const pkramfs_export_trailer &t) {
  return t.crc32c == crc_before(t, &pkramfs_export_trailer::crc32c);
}

std::string check_export_header(const pkramfs_export_header &h) {
  if (h.magic != PKRAMFS_EXPORT_MAGIC)
    return "has no PKRXPRT1 magic: not a pkramfs export image";
  if (h.version > PKRAMFS_EXPORT_VERSION)
    return "says export format version " + std::to_string(h.version) +
           ", newer than this build reads (version " + std::to_string(PKRAMFS_EXPORT_VERSION) + ")";
  if (h.version < PKRAMFS_EXPORT_VERSION_OLDEST || h.header_bytes != sizeof h)
    return "has an unknown export format version " + std::to_string(h.version);
  if (h.crc32c != crc_before(h, &pkramfs_export_header::crc32c))
    return "fails its CRC";
  // The container is the same for every node version; its checkpoint image is the node's
  // (format.h), read as a mount reads it.
  if (h.node_format_version < PKRAMFS_FORMAT_VERSION_OLDEST ||
      h.node_format_version > PKRAMFS_FORMAT_VERSION)
    return "holds a node of format version " + std::to_string(h.node_format_version) +
           "; this build reads versions " + std::to_string(PKRAMFS_FORMAT_VERSION_OLDEST) + " to " +
           std::to_string(PKRAMFS_FORMAT_VERSION);
  if (h.block_size != kBlockSize || h.frame_size != kFrameSize ||
      h.data_first_frame != 1 + Node::kJournalFrames)
    return "describes a node geometry this build does not make (data from frame " +
           std::to_string(h.data_first_frame) + ", blocks of " + std::to_string(h.block_size) +
           " bytes)";
  if (h.limit_blocks > (1ull << 32) * kBlocksPerFrame ||
      h.checkpoint_bytes < sizeof(pkramfs_ckpt_header) || h.checkpoint_bytes > (1ull << 40) ||
      h.nr_extents > h.data_blocks || h.data_blocks > h.nr_extents * kMaxRecordBlocks ||
      h.data_blocks > h.limit_blocks || h.allocated_blocks > h.limit_blocks)
    return "has impossible sizes";
  if (h.image_bytes != export_image_bytes(h.checkpoint_bytes, h.nr_extents, h.data_blocks))
    return "has sizes that do not add up to its image size";
  return {};
}

std::string export_part_at(const pkramfs_export_header &h, uint64_t offset) {
  const uint64_t ckpt_end = kHeaderBytes + h.checkpoint_bytes;
  const uint64_t trailer = h.image_bytes - kTrailerBytes;
  if (offset < kHeaderBytes)
    return "the header (" + range(0, kHeaderBytes) + ")";
  if (offset < ckpt_end)
    return "the checkpoint image (" + range(kHeaderBytes, ckpt_end) + ")";
  if (offset < trailer)
    return "the extent records (" + range(ckpt_end, trailer) + ")";
  return "the trailer (" + range(trailer, h.image_bytes) + ")";
}

// ------------------------------------------------------------------------ export --

Result<TransferReport> export_node(const OfflineNode &node, int node_fd, const std::string &path,
                                   const TransferHooks &hooks, std::string &why) {
  const auto start = Clock::now();
  const pkramfs_superblock &sb = node.header.sb;
  Filesystem &fs = *node.fs;
  // The restored tree (checkpoint + journal) as one checkpoint image.
  std::string image;
  (void)fs.checkpoint(sb.slots[node.header.slot].generation,
                      [&](std::string_view bytes) -> Result<void> {
                        image.assign(bytes);
                        return {};
                      });
  if (const auto missing = fs.missing_objects(); !missing.empty()) {
    why = missing_objects_problem(missing, node.objects_path,
                                  node.objects ? std::string()
                                               : "is not this node's object tmpfs") +
          "; pkramfs-ctl check tells more";
    return Errno{ENOENT};
  }
  // The node's blocks, then the file objects' data.
  std::vector<Filesystem::DataExtent> records = export_records(fs);
  const auto object_records = export_object_records(fs);
  records.insert(records.end(), object_records.begin(), object_records.end());
  const auto usage = fs.usage();
  const auto planned = Clock::now();
  pkramfs_ckpt_header ckpt{};
  std::memcpy(&ckpt, image.data(), sizeof ckpt);

  pkramfs_export_header h{};
  h.magic = PKRAMFS_EXPORT_MAGIC;
  h.version = PKRAMFS_EXPORT_VERSION;
  h.header_bytes = sizeof h;
  h.node_format_version = PKRAMFS_FORMAT_VERSION;
  h.block_size = kBlockSize;
  h.frame_size = kFrameSize;
  std::memcpy(h.uuid, sb.uuid, sizeof h.uuid);
  h.created_sec = static_cast<int64_t>(::time(nullptr));
  h.data_first_frame = sb.data_first_frame;
  h.limit_blocks = sb.data_limit_blocks;
  h.max_inodes = sb.max_inodes;
  h.checkpoint_generation = ckpt.generation;
  h.checkpoint_bytes = image.size();
  h.checkpoint_crc32c = crc32c(image.data(), image.size());
  h.nr_inodes = ckpt.nr_inodes;
  h.files = usage.files;
  h.directories = usage.directories;
  h.other_inodes = usage.others;
  h.allocated_blocks = usage.data_blocks;
  h.nr_extents = records.size();
  for (const auto &r : records)
    h.data_blocks += r.count;
  h.image_bytes = export_image_bytes(h.checkpoint_bytes, h.nr_extents, h.data_blocks);
  seal(h);

  auto created = ImageWriter::create(path, h.image_bytes);
  if (!created) {
    why = created.error() == EEXIST ? std::string(std::strerror(EEXIST))
                                    : "allocating " + std::to_string(h.image_bytes) +
                                          " bytes for the image: " + std::strerror(created.error());
    return Errno{created.error()};
  }
  ImageWriter &out = **created;
  auto write_failed = [&](int err) {
    why = io_error("writing the image", out.error_offset(), err);
    return Errno{err};
  };
  uint32_t stream = crc32c(&h, sizeof h);
  stream = crc32c(stream, image.data(), image.size());
  if (auto r = out.write(&h, sizeof h); !r)
    return write_failed(r.error());
  if (auto r = out.write(image.data(), image.size()); !r)
    return write_failed(r.error());
  image = std::string();
  if (hooks.progress)
    hooks.progress(out.offset(), h.image_bytes);

  // Each record's data straight into the write buffers: a node block's read from the node, a
  // file object's through the tree (the objects opened read-only), zero-padded to whole blocks.
  std::vector<std::byte> object_data;
  for (const auto &rec : records) {
    if (hooks.cancelled && hooks.cancelled()) {
      why = "interrupted";
      return Errno{ECANCELED};
    }
    const bool object = rec.block == PKRAMFS_EXPORT_OBJECT_BLOCK;
    if (object) {
      object_data.clear();
      AppendSink sink(object_data);
      if (auto r = fs.read(rec.ino, rec.file_block * kBlockSize, rec.count * kBlockSize, sink);
          !r) {
        why = "reading the file object of inode " + std::to_string(rec.ino) + ": " +
              std::strerror(r.error());
        return Errno{r.error()};
      }
      object_data.resize(rec.count * kBlockSize); // zeros past the end of the file
    }
    pkramfs_export_extent e{};
    e.magic = PKRAMFS_EXPORT_EXTENT_MAGIC;
    e.count = static_cast<uint32_t>(rec.count);
    e.ino = rec.ino;
    e.file_block = rec.file_block;
    e.block = rec.block;
    seal(e);
    stream = crc32c(stream, &e, sizeof e);
    if (auto r = out.write(&e, sizeof e); !r)
      return write_failed(r.error());
    uint32_t data_crc = 0;
    uint64_t left = rec.count * kBlockSize;
    uint64_t from = object ? 0 : rec.block * kBlockSize; // in object_data, or in the node
    while (left) {
      const auto room = out.space();
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, room.size()));
      if (object) {
        std::memcpy(room.data(), object_data.data() + from, n);
      } else if (auto r = pread_full(node_fd, room.data(), n, from); !r) {
        why = "reading node block " + std::to_string(from / kBlockSize) + " (byte offset " +
              std::to_string(from) + " of the node): " +
              (r.error() == ENODATA ? std::string("the node ends before it")
                                    : std::strerror(r.error()));
        return Errno{r.error() == ENODATA ? EIO : r.error()};
      }
      data_crc = crc32c(data_crc, room.data(), n);
      if (auto r = out.commit(n); !r)
        return write_failed(r.error());
      left -= n;
      from += n;
    }
    stream = crc32c_combine(stream, data_crc, rec.count * kBlockSize);
    pkramfs_export_extent_end end{data_crc, 0};
    stream = crc32c(stream, &end, sizeof end);
    if (auto r = out.write(&end, sizeof end); !r)
      return write_failed(r.error());
    if (hooks.progress)
      hooks.progress(out.offset(), h.image_bytes);
  }

  pkramfs_export_trailer t{};
  t.magic = PKRAMFS_EXPORT_TRAILER_MAGIC;
  t.nr_extents = h.nr_extents;
  t.data_blocks = h.data_blocks;
  t.stream_bytes = out.offset();
  t.stream_crc32c = stream;
  seal(t);
  if (auto r = out.write(&t, sizeof t); !r)
    return write_failed(r.error());
  if (out.offset() != h.image_bytes) {
    why = "internal error: wrote " + std::to_string(out.offset()) + " bytes, the header says " +
          std::to_string(h.image_bytes);
    return Errno{EIO};
  }
  const auto written = Clock::now();
  if (auto r = out.finish(); !r)
    return write_failed(r.error());
  spdlog::debug("exported {}: image planned in {:.3f} s, written in {:.3f} s, synced in {:.3f} s",
                path, std::chrono::duration<double>(planned - start).count(),
                std::chrono::duration<double>(written - planned).count(),
                std::chrono::duration<double>(Clock::now() - written).count());
  if (hooks.progress)
    hooks.progress(h.image_bytes, h.image_bytes);

  TransferReport report;
  report.header = h;
  report.stream_crc32c = stream;
  report.bytes = h.image_bytes;
  report.direct = out.direct();
  report.uring = out.uring();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

// ------------------------------------------------------------------------ import --

Result<pkramfs_export_header> read_export_header(const std::string &path, std::string &why) {
  auto opened = ImageReader::open(path);
  if (!opened) {
    why = std::strerror(opened.error());
    return Errno{opened.error()};
  }
  return read_header(**opened, why);
}

Result<TransferReport> import_image(const std::string &path, const MakeNode *make,
                                    const TransferHooks &hooks, std::string &why) {
  const auto start = Clock::now();
  auto opened = ImageReader::open(path);
  if (!opened) {
    why = std::strerror(opened.error());
    return Errno{opened.error()};
  }
  ImageReader &in = **opened;
  auto read_failed = [&](int err) {
    why = io_error("reading the image", in.error_offset(), err);
    return Errno{err};
  };
  FrameSource *frames = nullptr;
  auto node_write_failed = [&](int err) {
    const uint64_t at = in.write_error_offset();
    why = "writing node block " + std::to_string(at / kBlockSize) + " (byte offset " +
          std::to_string(at) + " of " + frames->describe() + "): " + std::strerror(err);
    return Errno{err};
  };
  auto header = read_header(in, why);
  if (!header)
    return Errno{header.error()};
  const pkramfs_export_header h = *header;
  uint32_t stream = crc32c(&h, sizeof h);

  // The checkpoint image, whole: the tree is checked before anything is made. Its size is the
  // header's claim (up to 1 TiB, over a file that may be sparse): nothing is allocated for it
  // up front, it grows as its bytes arrive, its own header is checked in the first piece, and a
  // size beyond this machine's memory is refused before anything is read.
  const std::string ckpt_part = "the checkpoint image (" +
                                range(kHeaderBytes, kHeaderBytes + h.checkpoint_bytes) +
                                ", at byte offset " + std::to_string(kHeaderBytes) + ")";
  const uint64_t memory =
      static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (h.checkpoint_bytes > memory) {
    why =
        ckpt_part + " is larger than this machine's memory (" + std::to_string(memory) + " bytes)";
    return Errno{ENOMEM};
  }
  std::string image;
  Result<size_t> n = size_t{0};
  try {
    constexpr uint64_t kPiece = 64 << 20;
    while (image.size() < h.checkpoint_bytes) {
      const size_t had = image.size();
      image.resize(had + std::min<uint64_t>(kPiece, h.checkpoint_bytes - had));
      n = in.read(image.data() + had, image.size() - had);
      if (!n)
        return read_failed(n.error());
      if (had + *n < image.size())
        return truncated(why, h, in.offset());
      if (had == 0) {
        pkramfs_ckpt_header first{};
        std::memcpy(&first, image.data(), sizeof first);
        if (first.magic != PKRAMFS_CKPT_MAGIC || first.bytes != h.checkpoint_bytes)
          return invalid(why, ckpt_part + " has no valid checkpoint header");
      }
    }
  } catch (const std::bad_alloc &) {
    why = ckpt_part + " does not fit in memory";
    return Errno{ENOMEM};
  }
  if (crc32c(image.data(), image.size()) != h.checkpoint_crc32c)
    return invalid(why, ckpt_part + " fails its CRC");
  pkramfs_ckpt_header ckpt{};
  std::memcpy(&ckpt, image.data(), sizeof ckpt);
  if (ckpt.nr_inodes != h.nr_inodes)
    return invalid(why, ckpt_part + " holds " + std::to_string(ckpt.nr_inodes) +
                            " inodes, the header says " + std::to_string(h.nr_inodes));
  stream = crc32c(stream, image.data(), image.size());

  // Where the tree goes: the new node, or a throwaway arena when only verifying.
  std::unique_ptr<Node> node;
  UniqueFd data_fd;
  std::unique_ptr<FrameSource> scratch;
  if (make) {
    NodeParams params;
    params.limit_blocks = h.limit_blocks;
    params.max_inodes = h.max_inodes;
    auto made = (*make)(params, why);
    if (!made)
      return Errno{made.error()};
    node = std::move(made->node);
    data_fd = std::move(made->data_fd);
    if (!node || !node->fresh() || node->data_first_frame() != h.data_first_frame ||
        node->limit_blocks() != h.limit_blocks) {
      why = "internal error: the new node is not empty or has another geometry";
      return Errno{EEXIST};
    }
    frames = &node->frames();
  } else {
    const uint64_t data_frames = (h.limit_blocks + kBlocksPerFrame - 1) / kBlocksPerFrame;
    auto anon = make_anon_frame_source(h.data_first_frame + data_frames);
    if (!anon) {
      why = std::string("cannot map a scratch arena: ") + std::strerror(anon.error());
      return Errno{anon.error()};
    }
    scratch = std::move(anon.value());
    frames = scratch.get();
  }
  FsConfig config;
  config.max_inodes = h.max_inodes;
  auto fs = std::make_unique<Filesystem>(
      std::make_unique<Arena>(*frames, h.data_first_frame, h.limit_blocks), config);
  std::string problem;
  if (auto r = fs->load_image(image, problem); !r)
    return invalid(why, ckpt_part + " is not a valid tree: " + problem);
  image = std::string();
  // File objects (export version 2) come into the new node's arena: their records follow the
  // node's blocks' (docs/format.md, "Export images").
  const std::vector<uint64_t> object_inodes = fs->object_inodes();
  fs->objects_to_arena();
  // Memory for every frame the tree uses. Copied through the mapping, the data needs it first
  // (a full /dev/shm or pkram region is then an error here rather than a fault while copying);
  // written with pwrite, it comes after the data, which then needs no zeroed pages first.
  std::vector<uint64_t> used;
  for (const auto &e : fs->data_extents())
    for (uint64_t f = e.block / kBlocksPerFrame; f <= (e.block + e.count - 1) / kBlocksPerFrame;
         ++f)
      used.push_back(f);
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  auto acquire_used = [&]() -> Result<void> {
    for (const uint64_t f : used)
      if (auto r = frames->acquire(f); !r) {
        why = "cannot give the new node its memory (frame " + std::to_string(f) + " of " +
              frames->describe() + "): " + std::strerror(r.error());
        return r;
      }
    return {};
  };
  if (node && !data_fd.valid())
    if (auto r = acquire_used(); !r)
      return Errno{r.error()};
  // Before finish_restore(), which could only drop what a valid image does not hold (inodes
  // unlinked but open): the records follow the image.
  const auto records = export_records(*fs);
  uint64_t data_blocks = 0;
  for (const auto &r : records)
    data_blocks += r.count;
  // What is left are object records: none without file objects, at least one block each.
  const uint64_t object_records = h.nr_extents - std::min<uint64_t>(h.nr_extents, records.size());
  const uint64_t object_blocks = h.data_blocks - std::min(h.data_blocks, data_blocks);
  if (records.size() > h.nr_extents || data_blocks > h.data_blocks ||
      (object_inodes.empty() && object_records != 0) || object_records > object_blocks ||
      (object_records == 0) != (object_blocks == 0))
    return invalid(why, "the header (at byte offset 0) says " + std::to_string(h.nr_extents) +
                            " extent records of " + std::to_string(h.data_blocks) +
                            " blocks, its checkpoint image maps " + std::to_string(records.size()) +
                            " of " + std::to_string(data_blocks) + " and has " +
                            std::to_string(object_inodes.size()) + " file objects");

  // `bytes` bytes of the file, whole: Errno with `why` set when it cannot give them.
  auto read_whole = [&](void *to, size_t bytes) -> Result<void> {
    n = in.read(to, bytes);
    if (!n)
      return read_failed(n.error());
    if (*n < bytes)
      return truncated(why, h, in.offset());
    return {};
  };
  // The next record's header.
  auto read_record = [&](pkramfs_export_extent &e) -> Result<void> {
    if (hooks.cancelled && hooks.cancelled()) {
      why = "interrupted";
      return Errno{ECANCELED};
    }
    if (auto r = read_whole(&e, sizeof e); !r)
      return r;
    stream = crc32c(stream, &e, sizeof e);
    return {};
  };
  // The end of a record `what` whose data (at `data_at`) had CRC `data_crc`.
  auto read_record_end = [&](const std::string &what, uint64_t data_at, uint64_t count,
                             uint32_t data_crc) -> Result<void> {
    pkramfs_export_extent_end end{};
    if (auto r = read_whole(&end, sizeof end); !r)
      return r;
    if (end.data_crc32c != data_crc)
      return invalid(why, what + ": its data (" + range(data_at, data_at + count * kBlockSize) +
                              ") fails its CRC");
    stream = crc32c_combine(stream, data_crc, count * kBlockSize);
    stream = crc32c(stream, &end, sizeof end);
    if (hooks.progress)
      hooks.progress(in.offset(), h.image_bytes);
    return {};
  };
  // A record's `count` blocks of data, each piece handed to `take` as it arrives; their CRC.
  auto read_record_data = [&](uint64_t count, const auto &take) -> Result<uint32_t> {
    uint64_t left = count * kBlockSize;
    uint32_t data_crc = 0;
    while (left) {
      auto got = in.next(static_cast<size_t>(std::min<uint64_t>(left, SIZE_MAX)));
      if (!got)
        return read_failed(got.error());
      if (got->empty())
        return truncated(why, h, in.offset());
      if (auto r = take(*got); !r)
        return Errno{r.error()};
      data_crc = crc32c(data_crc, got->data(), got->size());
      left -= got->size();
    }
    return data_crc;
  };
  for (uint64_t i = 0; i < records.size(); ++i) {
    const auto &want = records[i];
    const uint64_t at = in.offset();
    pkramfs_export_extent e{};
    if (auto r = read_record(e); !r)
      return Errno{r.error()};
    const std::string where = " at byte offset " + std::to_string(at);
    if (e.magic != PKRAMFS_EXPORT_EXTENT_MAGIC)
      return invalid(why, "extent record " + std::to_string(i) + where +
                              " has no record magic (damaged, or cut and spliced)");
    if (!crc_ok(e))
      return invalid(why, "extent record " + std::to_string(i) + where +
                              ": its record header fails its CRC");
    if (e.count != want.count || e.ino != want.ino || e.file_block != want.file_block ||
        e.block != want.block) {
      Filesystem::DataExtent got{e.ino, e.file_block, e.block, e.count, false};
      return invalid(why, describe(i, got) + where + " does not match the checkpoint image, " +
                              "which maps inode " + std::to_string(want.ino) + ", file block " +
                              std::to_string(want.file_block) + ", node blocks " +
                              std::to_string(want.block) + "+" + std::to_string(want.count) +
                              " there");
    }
    std::byte *to = nullptr;
    uint64_t to_off = want.block * kBlockSize;
    if (node && !data_fd.valid()) {
      to = frames->base() + to_off;
      // One call maps the pages instead of a fault for each (best effort: not every mapping
      // can be populated this way).
      (void)madvise(to, want.count * kBlockSize, MADV_POPULATE_WRITE);
    }
    const uint64_t data_at = in.offset();
    auto data_crc = read_record_data(want.count, [&](std::span<const std::byte> got) -> Result<void> {
      if (to) {
        std::memcpy(to, got.data(), got.size());
        to += got.size();
      } else if (data_fd.valid()) {
        // Written by a kernel worker meanwhile (io_uring), or here.
        if (auto r = in.write_out(data_fd.get(), got, to_off); !r)
          return node_write_failed(r.error());
        to_off += got.size();
      }
      return {};
    });
    if (!data_crc)
      return Errno{data_crc.error()};
    if (auto r = read_record_end(describe(i, want) + where, data_at, want.count, *data_crc); !r)
      return Errno{r.error()};
  }

  // File objects' records, which become arena files' data.
  uint64_t prev_ino = 0, prev_end = 0;
  for (uint64_t i = records.size(); i < h.nr_extents; ++i) {
    const uint64_t at = in.offset();
    pkramfs_export_extent e{};
    if (auto r = read_record(e); !r)
      return Errno{r.error()};
    const std::string where = "object record " + std::to_string(i) + " at byte offset " +
                              std::to_string(at);
    if (e.magic != PKRAMFS_EXPORT_EXTENT_MAGIC || !crc_ok(e))
      return invalid(why, where + " has no record magic or fails its CRC");
    auto st = fs->getattr(e.ino);
    const uint64_t size = st ? static_cast<uint64_t>(st->st_size) : 0;
    if (e.block != PKRAMFS_EXPORT_OBJECT_BLOCK || e.count == 0 || e.count > kMaxRecordBlocks ||
        !std::binary_search(object_inodes.begin(), object_inodes.end(), e.ino) ||
        (e.ino == prev_ino && e.file_block < prev_end) || e.ino < prev_ino ||
        e.file_block >= (size + kBlockSize - 1) / kBlockSize)
      return invalid(why, where + " (inode " + std::to_string(e.ino) + ", file block " +
                              std::to_string(e.file_block) +
                              ") names no file object's data, or comes out of order");
    prev_ino = e.ino;
    prev_end = e.file_block + e.count;
    const uint64_t data_at = in.offset();
    uint64_t pos = e.file_block * kBlockSize;
    auto data_crc = read_record_data(e.count, [&](std::span<const std::byte> got) -> Result<void> {
      if (node)
        if (auto r = fs->restore_object_data(e.ino, pos, got.data(), got.size()); !r) {
          why = "writing inode " + std::to_string(e.ino) + "'s data into the new node: " +
                std::strerror(r.error()) + " (its file objects and blocks exceed its size)";
          return Errno{r.error()};
        }
      pos += got.size();
      return {};
    });
    if (!data_crc)
      return Errno{data_crc.error()};
    if (auto r = read_record_end(where, data_at, e.count, *data_crc); !r)
      return Errno{r.error()};
  }

  if (data_fd.valid())
    if (auto r = in.flush_writes(); !r)
      return node_write_failed(r.error());
  const uint64_t at = in.offset();
  pkramfs_export_trailer t{};
  if (auto r = read_whole(&t, sizeof t); !r)
    return Errno{r.error()};
  const std::string trailer = "the trailer (at byte offset " + std::to_string(at) + ")";
  if (t.magic != PKRAMFS_EXPORT_TRAILER_MAGIC)
    return invalid(why, trailer + " has no trailer magic");
  if (!crc_ok(t))
    return invalid(why, trailer + " fails its CRC");
  if (t.nr_extents != h.nr_extents || t.data_blocks != h.data_blocks || t.stream_bytes != at)
    return invalid(why, trailer + " disagrees with the header about the extent records");
  if (t.stream_crc32c != stream)
    return invalid(why, "the image's CRC in " + trailer + " does not match its " + range(0, at) +
                            " (every record passed its own CRC)");
  auto rest = in.next(1);
  if (!rest)
    return read_failed(rest.error());
  if (!rest->empty())
    return invalid(why, "something follows the trailer at byte offset " +
                            std::to_string(in.offset() - 1));

  if (hooks.progress)
    hooks.progress(h.image_bytes, h.image_bytes);
  const auto data_done = Clock::now();
  if (node && data_fd.valid())
    if (auto r = acquire_used(); !r)
      return Errno{r.error()};
  fs->finish_restore();
  if (node) {
    if (auto r = node->checkpoint(*fs); !r) {
      why = std::string("cannot write the new node's checkpoint: ") + std::strerror(r.error());
      return Errno{r.error()};
    }
    node->set_state(PKRAMFS_STATE_CLEAN);
  }
  TransferReport report;
  report.header = h;
  report.stream_crc32c = stream;
  report.bytes = h.image_bytes;
  report_io(report, in);
  fs.reset();
  data_fd.reset();
  node.reset();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  spdlog::debug("{} {}: tree and data {:.3f} s, node finished in {:.3f} s",
                node ? "imported" : "verified", path,
                std::chrono::duration<double>(data_done - start).count(),
                std::chrono::duration<double>(Clock::now() - data_done).count());
  return report;
}

} // namespace pkramfs
