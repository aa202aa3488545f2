// pkramfs-ctl import: a node made from an export image, every CRC checked before it appears.
#include "commands.h"

#include "daemon.h"
#include "failure.h"
#include "node_access.h"
#include "progress.h"
#include "text.h"
#include "transfer_text.h"

#include "control_protocol.h"
#include "util/geometry.h"
#include "json.h"
#include "node/node.h"
#include "storage/node_dirs.h"
#include "export/node_export.h"
#include "node/node_inspect.h"
#include "node/locate.h"
#include "util/parse.h"

#include <cstdio>
#include <fcntl.h>
#include <iomanip>
#include <iostream>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace pkramfs::ctl {
using control::JsonWriter;

namespace {

// A new node's size, for choosing its directory: superblock, journal, data, a checkpoint.
uint64_t import_node_bytes(const pkramfs_export_header &h) {
  const uint64_t data_frames = (h.limit_blocks + kBlocksPerFrame - 1) / kBlocksPerFrame;
  return (h.data_first_frame + data_frames + (h.checkpoint_bytes + kFrameSize - 1) / kFrameSize) *
         kFrameSize;
}

[[noreturn]] void import_failed(const Settings &s, int err, const std::string &detail,
                                const std::string &left) {
  const std::string file = "'" + printable(s.file) + "'";
  if (err == ECANCELED)
    fail("import of " + file + " interrupted; " + left, "");
  if (err == EINVAL)
    fail("cannot import " + file + ": " + printable(detail) + "; " + left, "");
  if (err == ENOENT && detail == why(ENOENT))
    fail("cannot import " + file + ": no such file", "check the path");
  std::string fix = "see the message";
  if (err == ENOSPC || err == ENOMEM)
    fix = "free memory (or pkram region space) for the node, or import elsewhere";
  else if (err == EFBIG)
    fix = "the node's size= does not fit a pkram node: import with --backend=shm";
  else if (err == EACCES || err == EPERM)
    fix = "check the permissions of the image";
  fail("cannot import " + file + ": " + printable(detail) + "; " + left, fix);
}

void print_imported(const Settings &s, const TransferReport &r, const std::string &where,
                    const std::string &backend) {
  if (s.json) {
    JsonWriter w;
    w.begin_object()
        .field("name", s.name)
        .field("file", s.file)
        .field("backend", backend)
        .field("node", where);
    write_transfer_json(w, r);
    w.end_object();
    std::cout << w.str() << "\n";
    return;
  }
  if (s.quiet)
    return;
  std::cout << "imported node " << in_quotes(s.name) << " (" << backend << ", " << printable(where)
            << ") from '" << printable(s.file) << "': " << tree_text(r.header) << ", "
            << human_bytes(r.bytes) << " in " << std::fixed << std::setprecision(2) << r.seconds
            << " s (" << rate_text(r.bytes, r.seconds) << ", " << io_text(r) << ")\n";
}

int import_shm(const Settings &s, bool exists) {
  const std::string &name = s.name;
  const std::string tmp = name + ".import-tmp"; // cmd_import checked that it is valid
  const std::string final_path = node_path(s, name), tmp_path = node_path(s, tmp);
  if (auto r = ensure_private_dir(s.shm_dir); !r)
    fail("cannot use shm directory '" + s.shm_dir + "' (" + why(r.error()) + ")",
         "it must be a directory owned by root and writable only by root: if another user made "
         "it, remove it and run systemd-tmpfiles --create pkramfs.conf (or pass --shm-dir)");
  LockProbe tmp_lock = probe(s, tmp, LockMode::kExclusive);
  if (tmp_lock.held)
    busy(s, tmp, tmp_lock.pid, "import builds the node under that name");
  // The temporary name's lock file goes with it, whatever happens.
  struct RemoveLock {
    std::string path;
    ~RemoveLock() { ::unlink(path.c_str()); }
  } remove_lock{control::lock_path(s.run_dir, tmp)};
  if (node_file(s, tmp) != NodeFile::kMissing)
    fail(tmp_path + " exists: an earlier import of " + in_quotes(name) + " was interrupted",
         "remove it with pkramfs-ctl destroy " + tmp + " and import again");
  // Set before the file is made: open_shm can create it and fail after; it did not exist
  // before, and its name's lock is ours.
  bool made = false;
  const MakeNode make = [&](const NodeParams &params, std::string &detail) -> Result<NewNode> {
    made = true;
    auto node = Node::open_shm(tmp_path, params, detail);
    if (!node && detail.empty())
      detail = "cannot create " + tmp_path + ": " + why(node.error());
    if (!node)
      return Errno{node.error()};
    NewNode n;
    n.node = std::move(node.value());
    // The data goes in with pwrite (no page faults on the mapping); hugetlbfs has no write().
    struct statfs fs {};
    if (::statfs(s.shm_dir.c_str(), &fs) != 0 || fs.f_type != HUGETLBFS_MAGIC)
      n.data_fd.reset(::open(tmp_path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
    return n;
  };
  const std::string left =
      exists ? "node " + in_quotes(name) + " was left as it was" : "nothing was imported";
  TransferReport report;
  {
    Progress progress("import", show_progress(s));
    std::string detail;
    auto r = import_image(s.file, &make, progress.hooks(), detail);
    progress.clear();
    if (!r) {
      if (made)
        ::unlink(tmp_path.c_str());
      import_failed(s, r.error(), detail, left);
    }
    report = std::move(r.value());
  }
  // The node appears whole, under its name, in one step; without --force never over another.
  const unsigned flags = s.force ? 0 : RENAME_NOREPLACE;
  if (::renameat2(AT_FDCWD, tmp_path.c_str(), AT_FDCWD, final_path.c_str(), flags) != 0) {
    const int err = errno;
    ::unlink(tmp_path.c_str());
    if (err == EEXIST)
      fail("node " + in_quotes(name) + " appeared while importing; nothing was imported",
           "import --force replaces it, or choose another name");
    fail("cannot rename " + tmp_path + " to " + final_path + " (" + why(err) + "); " + left,
         "check " + s.shm_dir);
  }
  print_imported(s, report, final_path, "shm");
  return 0;
}

int import_kmod(const Settings &s, Located &loc, bool exists) {
  const std::string &name = s.name;
  // pkram.ko cannot rename a node: the image is verified whole first, then written straight
  // into the node, which is destroyed again if that fails.
  {
    Progress progress("verify", show_progress(s));
    std::string detail;
    auto r = import_image(s.file, nullptr, progress.hooks(), detail);
    progress.clear();
    if (!r)
      import_failed(s, r.error(), detail,
                    exists ? "node " + in_quotes(name) + " was left as it was"
                           : "nothing was imported");
  }
  if (exists) {
    if (auto r = loc.dev->destroy(name); !r && r.error() != ENOENT) {
      if (r.error() == EBUSY)
        attached_elsewhere(s, name, "import --force replaces only a detached node");
      fail("cannot destroy pkram node " + in_quotes(name) + " to replace it (" + why(r.error()) +
               "); nothing was imported",
           "see the kernel log (dmesg | grep pkram)");
    }
  }
  // Set before the node is made: open_kmod can create the pkram node and fail after (too large
  // to map); NAME did not exist before (or --force destroyed it), and its lock is ours.
  bool made = false;
  const MakeNode make = [&](const NodeParams &params, std::string &detail) -> Result<NewNode> {
    made = true;
    auto node = Node::open_kmod(name, params, detail);
    if (!node && detail.empty())
      detail = node.error() == ENOSPC  ? "the pkram region has no room for the node"
               : node.error() == EFBIG ? "the node's size does not fit a pkram node"
               : node.error() == EBUSY
                   ? "pkram node " + in_quotes(name) + " is attached elsewhere"
                   : "cannot create pkram node " + in_quotes(name) + ": " + why(node.error());
    if (!node)
      return Errno{node.error()};
    NewNode n;
    n.node = std::move(node.value());
    return n;
  };
  const std::string left = exists
                               ? "node " + in_quotes(name) + " is gone (--force destroyed it first)"
                               : "nothing was imported";
  Progress progress("import", show_progress(s));
  std::string detail;
  auto r = import_image(s.file, &make, progress.hooks(), detail);
  progress.clear();
  if (!r) {
    if (made)
      (void)loc.dev->destroy(name);
    import_failed(s, r.error(), detail, left);
  }
  print_imported(s, *r, std::string(PkramDevice::kPath) + " node " + name, "kmod");
  return 0;
}

} // namespace

int cmd_import(Settings &s, bool shm_dir_given) {
  const std::string &name = s.name;
  // Everything about the image that can be checked cheaply, before anything is touched.
  std::string detail;
  auto header = read_export_header(s.file, detail);
  if (!header)
    import_failed(s, header.error(), detail, "nothing was imported");
  const pkramfs_export_header h = *header;
  if (!shm_dir_given)
    s.shm_dir = default_node_dir(name, import_node_bytes(h));

  // Where the node goes: where NAME is (--force), else as pkramfs-fuse would put a new node.
  Located loc;
  if (PkramDevice::present()) {
    // Also for --backend=shm: a name pkram.ko holds is refused, as two nodes of one name would be.
    auto dev = PkramDevice::open();
    if (dev) {
      loc.kind = Backend::kKmod;
      loc.dev.emplace(std::move(dev.value()));
      if (auto info = loc.dev->stat(name); info)
        loc.info = std::move(info.value());
    } else if (s.backend != Backend::kShm) {
      device_failed(dev.error());
    }
  }
  const bool in_kmod = loc.info.has_value();
  const bool in_shm = node_file(s, name) != NodeFile::kMissing;
  Backend target = s.backend;
  if (target == Backend::kAuto)
    target =
        auto_backend({.kmod_usable = loc.dev.has_value(), .in_kmod = in_kmod, .in_shm = in_shm}) ==
                NodeBackend::kKmod
            ? Backend::kKmod
            : Backend::kShm;
  if (target == Backend::kKmod && !loc.dev)
    device_failed(ENOENT);
  const bool exists = target == Backend::kKmod ? in_kmod : in_shm;
  if ((in_kmod && target != Backend::kKmod) || (in_shm && target != Backend::kShm))
    fail("node " + in_quotes(name) + " exists as " +
             (in_kmod ? "a pkram.ko node" : node_path(s, name)),
         "import into the same backend (--backend=" + std::string(in_kmod ? "kmod" : "shm") +
             "), or destroy it first");
  if (const std::string tmp = name + ".import-tmp";
      target == Backend::kShm && !valid_node_name(tmp))
    throw Failure{"node name " + in_quotes(name) + " is too long for an import into an shm " +
                      "node (at most " + std::to_string(127 - (tmp.size() - name.size())) +
                      " bytes: it is built as NAME.import-tmp)",
                  kExitUsage};
  // Held exclusively to the end: no daemon starts on the node meanwhile.
  LockProbe lock = probe(s, name, LockMode::kExclusive);
  if (lock.held)
    busy(s, name, lock.pid,
         s.force ? "import --force replaces only an unmounted node"
                 : "it exists: import --force replaces it once unmounted");
  if (exists && !s.force)
    fail("node " + in_quotes(name) + " exists",
         "import --force replaces it, or choose another name");
  if (target == Backend::kKmod)
    return import_kmod(s, loc, exists);
  loc.dev.reset();
  return import_shm(s, exists);
}

} // namespace pkramfs::ctl
