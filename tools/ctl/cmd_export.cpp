// pkramfs-ctl export: a node's tree and data into a self-describing image.
#include "commands.h"

#include "daemon.h"
#include "failure.h"
#include "node_access.h"
#include "progress.h"
#include "text.h"
#include "transfer_text.h"

#include "json.h"
#include "export/node_export.h"
#include "storage/object_store.h"

#include <chrono>
#include <fcntl.h>
#include <iomanip>
#include <iostream>
#include <sys/stat.h>

namespace pkramfs::ctl {
using control::JsonObject;
using control::JsonWriter;

namespace {

// The export image `s.file` as the user named it, refused before anything is done when it exists.
void check_new_image_file(const Settings &s) {
  struct stat st {};
  if (::lstat(s.file.c_str(), &st) == 0)
    fail("'" + printable(s.file) + "' exists",
         "export writes a new file: remove it or choose another name");
}

[[noreturn]] void export_failed(const Settings &s, int err, const std::string &detail) {
  const std::string file = "'" + printable(s.file) + "'";
  if (err == EEXIST)
    fail(file + " exists", "export writes a new file: remove it or choose another name");
  if (err == ECANCELED)
    fail("export of node " + in_quotes(s.name) + " interrupted; the partial " + file +
             " was removed",
         "");
  std::string fix = "check the directory and its filesystem";
  if (err == ENOSPC || err == EDQUOT || err == EFBIG)
    fix = "free some space there, or export to another filesystem";
  else if (err == EACCES || err == EPERM || err == EROFS)
    fix = "export to a writable directory";
  else if (err == ENOENT || err == ENOTDIR)
    fix = "create the directory first";
  fail("cannot export node " + in_quotes(s.name) + " to " + file + ": " + printable(detail) +
           (err == ENOENT || err == EEXIST ? "" : "; the partial file was removed"),
       fix);
}

void verify_written(const Settings &s, const TransferReport &written, TransferReport &verified) {
  Progress progress("verify", show_progress(s));
  const TransferHooks hooks = progress.hooks();
  std::string detail;
  auto r = import_image(s.file, nullptr, hooks, detail);
  progress.clear();
  if (!r) {
    if (r.error() == ECANCELED)
      fail("verification of '" + printable(s.file) + "' interrupted; the image was written",
           "run export --verify again, or import it to check it");
    fail("'" + printable(s.file) + "' was written but does not read back: " + printable(detail),
         "the disk or its filesystem is damaging data; do not trust this image");
  }
  if (r->stream_crc32c != written.stream_crc32c)
    fail("'" + printable(s.file) + "' was written but reads back as another valid image",
         "something else wrote to it meanwhile");
  verified = std::move(r.value());
}

// Exports the node whose bytes `node` reads: restore offline, write, --verify.
int export_bytes(const Settings &s, const NodeBytes &node, const std::string &where) {
  std::string detail;
  TransferReport report;
  {
    auto loaded = load_node(node, detail);
    if (!loaded) {
      if (loaded.error() == EINVAL)
        fail("node " + in_quotes(s.name) + " is not a valid pkramfs node: " + printable(detail),
             "run pkramfs-ctl check " + s.name + " for details");
      fail("cannot read node " + in_quotes(s.name) + " (" + why(loaded.error()) + ")",
           "check " + where);
    }
    Progress progress("export", show_progress(s));
    auto r = export_node(*loaded, node.fd, s.file, progress.hooks(), detail);
    progress.clear();
    if (!r)
      export_failed(s, r.error(), detail);
    report = std::move(r.value());
  } // the throwaway tree goes before the verification's
  TransferReport verified;
  if (s.verify)
    verify_written(s, report, verified);
  if (s.json) {
    JsonWriter w;
    w.begin_object().field("name", s.name).field("file", s.file);
    write_transfer_json(w, report);
    w.field("verified", s.verify);
    if (s.verify)
      w.field("verify_seconds", verified.seconds);
    w.end_object();
    std::cout << w.str() << "\n";
  } else if (!s.quiet) {
    std::cout << "exported node " << in_quotes(s.name) << " to '" << printable(s.file)
              << "': " << tree_text(report.header) << ", " << human_bytes(report.bytes) << " in "
              << std::fixed << std::setprecision(2) << report.seconds << " s ("
              << rate_text(report.bytes, report.seconds) << ", " << io_text(report) << ")";
    if (s.verify)
      std::cout << "; verified in " << verified.seconds << " s ("
                << rate_text(verified.bytes, verified.seconds) << ")";
    std::cout << "\n";
  }
  return 0;
}

int export_shm_file(const Settings &s) {
  require_node_file(s, s.name);
  const std::string path = node_path(s, s.name);
  // O_NONBLOCK: had it become a FIFO since node_file() looked, the open would wait for a writer.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
    if (errno == ENOENT)
      no_such_node(s, s.name);
    fail("cannot open " + path + " (" + why(errno) + ")", "check --shm-dir");
  }
  if (!S_ISREG(st.st_mode))
    not_a_node_file(s, s.name);
  return export_bytes(s,
                      NodeBytes{fd.get(), static_cast<uint64_t>(st.st_size), "node file",
                                ObjectStore::path_for(s.shm_dir, s.name)},
                      path);
}

// A mounted kmod node, preserved: pkram.ko lets one file attach a node and the daemon holds it,
// so the daemon lends a duplicate of its /dev/pkram descriptor (node-fd), only while frozen.
int export_lent_node(const Settings &s, pid_t pid) {
  const std::string &name = s.name;
  UniqueFd fd;
  JsonObject r = ask(s, name, pid, "node-fd", 10, &fd);
  if (!r.at("ok").as_bool()) {
    if (auto it = r.find("errno"); it != r.end() && it->second.as_i64() == EINVAL)
      fail("the daemon of node " + in_quotes(name) +
               " cannot lend its node for export: " + printable(str(r, "error")),
           "it runs an older pkramfs-fuse: remount the node with this version, or unmount it "
           "and export it then");
    daemon_refused(name, "node-fd", r);
  }
  struct stat got {};
  struct stat dev {};
  if (!fd.valid())
    fail("the daemon of node " + in_quotes(name) + " replied to node-fd without a descriptor",
         "see the daemon's log (journalctl -t pkramfs-fuse)");
  if (::fstat(fd.get(), &got) != 0 || ::stat(PkramDevice::kPath, &dev) != 0 ||
      !S_ISCHR(got.st_mode) || got.st_rdev != dev.st_rdev)
    fail("the daemon of node " + in_quotes(name) + " lent a descriptor that is not " +
             PkramDevice::kPath,
         "check which process serves the node (pkramfs-ctl list)");
  // Reading is all an export does: refuse to hold more (PKRAM_ATTACH_READER).
  if ((::fcntl(fd.get(), F_GETFL) & O_ACCMODE) != O_RDONLY)
    fail("the daemon of node " + in_quotes(name) + " lent a writable descriptor of " +
             PkramDevice::kPath,
         "it runs an older pkramfs-fuse: remount the node with this version, or unmount it and "
         "export it then");
  return export_bytes(s, NodeBytes{fd.get(), u64(r, "node_bytes"), "pkram node"},
                      "the kernel log (dmesg | grep pkram)");
}

// A mounted node: its daemon preserves it (sync, freeze, checkpoint), the export reads the
// node (the shm node file, or the kmod node through the daemon's descriptor), and the daemon
// makes the mount writable again (unless it was preserved before).
int export_mounted(const Settings &s, pid_t pid) {
  const std::string &name = s.name;
  JsonObject st = ask(s, name, pid, "status", 10);
  if (!st.at("ok").as_bool())
    daemon_refused(name, "status", st);
  const std::string backend = str(st, "backend");
  const std::string mnt = printable(str(st, "mountpoint"));
  const bool kmod = backend == "kmod";
  if (!kmod && node_file(s, name) != NodeFile::kRegular)
    fail("node " + in_quotes(name) + " is mounted on " + mnt + " but its node file is not " +
             node_path(s, name),
         "pass the daemon's --shm-dir");
  const bool was_preserved = str(st, "state") == "preserved";
  if (!was_preserved) {
    JsonObject r = ask(s, name, pid, "preserve", 600);
    if (!r.at("ok").as_bool())
      daemon_refused(name, "preserve", r);
  }
  const auto frozen = std::chrono::steady_clock::now();
  auto thaw = [&]() -> std::string {
    if (was_preserved)
      return {};
    std::string detail;
    auto r = ask_daemon(sock_path(s, name), "unpreserve", timeout_ms(s, 10), detail);
    if (r && r->at("ok").as_bool())
      return {};
    return r ? str(*r, "error") : (detail.empty() ? why(r.error()) : detail);
  };
  int rc;
  try {
    rc = kmod ? export_lent_node(s, pid) : export_shm_file(s);
  } catch (const Failure &f) {
    if (std::string problem = thaw(); !problem.empty())
      throw Failure{f.message + "; and the mount stays read-only: unpreserve failed (" +
                        printable(problem) + "): run pkramfs-ctl unpreserve " + name,
                    f.code};
    throw;
  }
  if (std::string problem = thaw(); !problem.empty())
    fail("exported node " + in_quotes(name) + ", but the mount stays read-only: unpreserve " +
             "failed (" + printable(problem) + ")",
         "run pkramfs-ctl unpreserve " + name);
  if (!s.quiet && !s.json) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - frozen).count();
    std::cout << "node " << in_quotes(name) << " on " << mnt
              << (was_preserved ? " stays preserved (it was before the export)"
                                : " was read-only for " + std::to_string(secs).substr(0, 4) +
                                      " s and is writable again")
              << "\n";
  }
  return rc;
}

} // namespace

int cmd_export(const Settings &s) {
  const std::string &name = s.name;
  check_new_image_file(s);
  Located loc = locate(s, name);
  LockProbe lock = probe_to_read(s, name, loc);
  if (lock.held) {
    loc.dev.reset();
    return export_mounted(s, lock.pid);
  }
  if (loc.kind != Backend::kKmod)
    return export_shm_file(s);
  if (!loc.info)
    no_such_node(s, name);
  // Held exclusively and attached until the end: no daemon starts on it meanwhile.
  const AttachedNode node = attach_for_reading(s, name, *loc.dev, "export reads an unmounted node");
  return export_bytes(s, node.bytes, "the kernel log (dmesg | grep pkram)");
}

} // namespace pkramfs::ctl
