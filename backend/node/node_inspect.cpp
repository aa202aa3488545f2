// Offline reading of a node: the same checks and the same restore code as a mount, into a
// throwaway tree over anonymous memory, never writing to the node.
#include "node/node_inspect.h"

#include "fs/filesystem.h"
#include "util/geometry.h"
#include "node/node.h"
#include "util/unique_fd.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pkramfs {
namespace {

const char *state_name(uint32_t state) {
  switch (state) {
  case PKRAMFS_STATE_CLEAN:
    return "clean";
  case PKRAMFS_STATE_DIRTY:
    return "dirty";
  case PKRAMFS_STATE_PRESERVED:
    return "preserved";
  default:
    return "unknown";
  }
}

using Offline = OfflineNode;

} // namespace

// Restores `node` offline. A problem that stops the restore goes to `why`.
Result<OfflineNode> load_node(const NodeBytes &node, std::string &why) {
  OfflineNode o;
  if (node.bytes == 0) {
    why = node.label + " is empty: it was truncated, or its creation was interrupted";
    return Errno{EINVAL};
  }
  auto header = read_node_header(node.fd, node.bytes, why);
  if (!header)
    return Errno{EINVAL};
  o.header = std::move(header.value());
  const pkramfs_superblock &sb = o.header.sb;
  auto frames = make_anon_frame_source(sb.ckpt_first_frame);
  if (!frames)
    return Errno{frames.error()};
  o.frames = std::move(frames.value());
  FsConfig config;
  config.max_inodes = sb.max_inodes;
  o.fs = std::make_unique<Filesystem>(
      std::make_unique<Arena>(*o.frames, sb.data_first_frame, sb.data_limit_blocks), config);
  o.objects_path = node.objects_path;
  if (!node.objects_path.empty())
    if (auto store = ObjectStore::open_existing(node.objects_path, uuid_to_hex(sb.uuid))) {
      o.objects = std::move(store.value());
      o.fs->use_objects(o.objects.get());
    }
  if (auto r = o.fs->load_image(o.header.image, why); !r)
    return Errno{EINVAL};
  if (o.header.slot == sb.current_slot) {
    std::string journal(sb.journal_frames * kFrameSize, '\0');
    if (pread(node.fd, journal.data(), journal.size(),
              static_cast<off_t>(sb.journal_first_frame * kFrameSize)) !=
        static_cast<ssize_t>(journal.size()))
      return Errno{EIO};
    auto scan = replay_journal(*o.fs, reinterpret_cast<const std::byte *>(journal.data()),
                               journal.size(), sb.journal_epoch, why);
    if (!scan)
      return Errno{EINVAL};
    o.journal_records = scan->records;
  }
  o.fs->finish_restore();
  o.fs->set_metadata_blocks(node_space(sb).checkpoint_bytes / kBlockSize);
  return o;
}

namespace {

NodeSummary summarize(const Offline &o, uint64_t node_bytes) {
  NodeSummary s;
  s.node_bytes = node_bytes;
  if (!o.fs) {
    s.state = "empty";
    return s;
  }
  const pkramfs_superblock &sb = o.header.sb;
  s.state = state_name(sb.state);
  s.limit_bytes = sb.data_limit_blocks * kBlockSize;
  s.inodes_limit = sb.max_inodes == UINT64_MAX ? 0 : sb.max_inodes;
  s.checkpoint_generation = sb.slots[o.header.slot].generation;
  s.checkpoint_bytes = sb.slots[o.header.slot].bytes;
  s.journal_records = o.journal_records;
  const auto u = o.fs->usage();
  s.files = u.files;
  s.directories = u.directories;
  s.other_inodes = u.others;
  s.data_bytes = u.data_blocks * kBlockSize;
  const Node::Space space = node_space(sb);
  const struct statvfs v = o.fs->statfs();
  s.metadata_bytes = u.metadata_blocks * kBlockSize;
  s.free_bytes = v.f_bfree * kBlockSize;
  s.inodes_used = v.f_files ? v.f_files - v.f_ffree : o.fs->inode_count();
  s.journal_bytes = space.journal_bytes;
  s.superblock_bytes = space.superblock_bytes;
  s.object_bytes = u.object_blocks * kBlockSize;
  s.data_held_bytes = u.data_frames * kFrameSize + s.object_bytes;
  s.metadata_held_bytes = space.checkpoint_frame_bytes;
  return s;
}

// The object directory of the node file at `path` (ObjectStore::path_for).
std::string objects_beside(const std::string &path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos
             ? ObjectStore::path_for(".", path)
             : ObjectStore::path_for(path.substr(0, slash), path.substr(slash + 1));
}

// An open node file: refuses anything but a regular file (with `why` set).
struct NodeFile {
  UniqueFd fd;
  uint64_t bytes = 0;
};
Result<NodeFile> open_node_file(const std::string &path, std::string &why) {
  NodeFile f;
  // O_NONBLOCK: a FIFO would block the open for a writer before the check below. It changes
  // nothing for pread() of a regular file.
  f.fd.reset(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!f.fd.valid())
    return Errno{errno};
  struct stat st {};
  if (fstat(f.fd.get(), &st) != 0)
    return Errno{errno};
  if (!S_ISREG(st.st_mode)) {
    why = "not a regular file";
    return Errno{EINVAL};
  }
  f.bytes = static_cast<uint64_t>(st.st_size);
  return f;
}

} // namespace

std::string missing_objects_problem(const std::vector<uint64_t> &missing,
                                    const std::string &objects_path,
                                    const std::string &store_problem) {
  const std::string files =
      std::to_string(missing.size()) + " files keep their data in file objects";
  if (objects_path.empty())
    return files + ", and the node has no object directory";
  return files + " at " + objects_path + ", which " +
         (store_problem.empty() ? "lacks inode " + std::to_string(missing.front()) + "'s object"
                                : store_problem);
}

Result<NodeSummary> inspect_node(const NodeBytes &node, std::string &why) {
  auto o = load_node(node, why);
  if (!o)
    return Errno{o.error()};
  return summarize(*o, node.bytes);
}

Result<CheckReport> check_node(const NodeBytes &node) {
  std::string why;
  auto o = load_node(node, why);
  CheckReport report;
  if (!o) {
    if (why.empty())
      return Errno{o.error()};
    report.problems.push_back(why);
    return report;
  }
  report.summary = summarize(*o, node.bytes);
  if (!o->header.warning.empty())
    report.problems.push_back(o->header.warning);
  if (o->fs) {
    o->fs->verify(report.problems);
    if (const auto missing = o->fs->missing_objects(); !missing.empty())
      report.problems.push_back(missing_objects_problem(
          missing, o->objects_path,
          o->objects ? std::string() : "is not this node's object tmpfs (not mounted, or another "
                                       "node's)"));
  }
  report.clean = report.problems.empty();
  return report;
}

Result<NodeSummary> inspect_node(const std::string &path, std::string &why) {
  auto f = open_node_file(path, why);
  if (!f)
    return Errno{f.error()};
  return inspect_node(NodeBytes{f->fd.get(), f->bytes, "node file", objects_beside(path)}, why);
}

Result<CheckReport> check_node(const std::string &path) {
  std::string why;
  auto f = open_node_file(path, why);
  if (!f && why.empty())
    return Errno{f.error()};
  if (!f) {
    CheckReport report;
    report.problems.push_back(why);
    return report;
  }
  return check_node(NodeBytes{f->fd.get(), f->bytes, "node file", objects_beside(path)});
}

} // namespace pkramfs
