// pkramfs-fuse: checks everything it can before touching anything, mounts, then serves.
#include "storage/arena.h"
#include "bdi.h"
#include "control_server.h"
#include "device_io.h"
#include "direct_write.h"
#include "backing_files.h"
#include "holder.h"
#include "lookup_ledger.h"
#include "util/fault.h"
#include "fs/filesystem.h"
#include "util/geometry.h"
#include "mount_sync.h"
#include "node/node.h"
#include "node/node_inspect.h"
#include "storage/node_dirs.h"
#include "node/locate.h"
#include "node_lock.h"
#include "operations.h"
#include "options.h"
#include "util/parse.h"
#include "storage/pkram_device.h"
#include "mount_table.h"
#include "remount.h"
#include "signal_stop.h"
#include "tuning.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <iostream>
#include <optional>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

using namespace pkramfs;

namespace {

[[noreturn]] void die(const std::string &message) {
  std::cerr << "pkramfs-fuse: " << message << std::endl;
  std::exit(1);
}

std::string why(int err) { return std::strerror(err); }

void check_mountpoint(const std::string &path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    die("mount point '" + path + "' does not exist (" + why(errno) + "); create it with mkdir");
  if (!S_ISDIR(st.st_mode))
    die("mount point '" + path + "' is not a directory; give a directory to mount on");
}

void check_fuse_device() {
  if (access("/dev/fuse", R_OK | W_OK) != 0)
    die("cannot open /dev/fuse (" + why(errno) +
        "); load the fuse module (modprobe fuse) or run where /dev/fuse is available");
}

// The storage behind a mount: a persistent node (kmod or shm) or volatile anonymous memory.
struct Storage {
  std::string backend; // "kmod", "shm" or "anon"
  std::unique_ptr<Node> node;
  std::string node_path; // shm: the node file
  std::unique_ptr<FrameSource> anon;
  std::unique_ptr<Filesystem> fs;
  // A process taking a live mount over restores what the kernel still references
  // (Filesystem::keep_unlinked_on_restore).
  bool takeover = false;
  // File objects: an shm node's beside it (objects_path), or a private store of a tree
  // without a node. Null: none.
  std::unique_ptr<ObjectStore> objects;
  std::string objects_path;
};

FsConfig fs_config(const Options &opt, uint64_t max_inodes) {
  FsConfig config;
  config.max_inodes = max_inodes;
  config.root_mode = opt.mode;
  config.root_uid = opt.uid;
  config.root_gid = opt.gid;
  return config;
}

[[noreturn]] void die_refused(const Options &opt, const std::string &where,
                              const std::string &problem) {
  die("node '" + opt.node + "' (" + where + ") cannot be restored: " + problem +
      "; it was left untouched: inspect it with pkramfs-ctl check " + opt.node +
      " or remove it with pkramfs-ctl destroy " + opt.node);
}

NodeParams node_params(const Options &opt, uint64_t limit_blocks, const Placement &placement) {
  NodeParams params;
  params.limit_blocks = limit_blocks;
  params.max_inodes = opt.nr_inodes ? opt.nr_inodes : UINT64_MAX;
  params.placement = placement;
  return params;
}

// Restores the node's tree, or writes a new node's first checkpoint, then journals every change.
void start_node(const Options &opt, const std::string &where, Storage &st) {
  Node &n = *st.node;
  spdlog::debug("node {} ({})", where, n.frames().describe());
  auto arena = std::make_unique<Arena>(n.frames(), n.data_first_frame(), n.limit_blocks());
  st.fs = std::make_unique<Filesystem>(std::move(arena), fs_config(opt, n.max_inodes()));
  if (st.takeover)
    st.fs->keep_unlinked_on_restore();
  // An shm node's file objects (object_store.h), before the restore: the tree it gives may
  // name them. A store that cannot be had is fatal only for a node whose files are there. None
  // is mounted for a node that has none yet: the INIT hook in main() mounts it once new files
  // are to be objects (the kernel agreed to passthrough).
  std::string objects_problem;
  if (!st.objects_path.empty() && ObjectStore::mounted(st.objects_path)) {
    auto store = ObjectStore::attach(st.objects_path, n.limit_blocks() * kBlockSize,
                                     n.max_inodes(), n.uuid_hex(), n.fresh());
    if (store) {
      st.objects = std::move(store.value());
      st.fs->use_objects(st.objects.get());
    } else {
      objects_problem = store.error() == EEXIST
                            ? "holds the objects of another node"
                            : "cannot be used (" + why(store.error()) + ")";
      spdlog::debug("file objects: {} {}; files stay in the arena", st.objects_path,
                    objects_problem);
    }
  }
  std::string problem;
  // A preserved node taken over stays preserved: the mount is the same, frozen.
  const bool preserved = st.takeover && n.state() == PKRAMFS_STATE_PRESERVED;
  if (n.fresh()) {
    if (auto r = n.checkpoint(*st.fs); !r)
      die("cannot write the first checkpoint of node '" + opt.node + "' (" + why(r.error()) + ")");
  } else if (auto r = n.restore(*st.fs, problem); !r) {
    die_refused(opt, where, problem);
  }
  if (const auto missing = st.fs->missing_objects(); !missing.empty())
    die_refused(opt, where,
                missing_objects_problem(
                    missing, st.objects_path,
                    st.objects || !objects_problem.empty()
                        ? objects_problem
                        : "is not mounted any more (its mount namespace or the machine ended)") +
                    "; their data cannot be restored");
  if (const uint64_t swept = st.fs->sweep_orphan_objects())
    spdlog::debug("file objects: removed {} that no file had", swept);
  st.fs->set_frozen(preserved);
  n.set_state(preserved ? PKRAMFS_STATE_PRESERVED : PKRAMFS_STATE_DIRTY);
  Filesystem &fs = *st.fs;
  fs.attach_journal(&n.journal(), [&n, &fs] {
    if (auto r = n.checkpoint(fs); !r)
      spdlog::error("checkpoint failed ({}); the journal cannot be emptied",
                    std::strerror(r.error()));
  });
}

std::string shm_node_dir(const Options &opt, uint64_t node_bytes) {
  return opt.shm_dir.empty() ? default_node_dir(opt.node, node_bytes) : opt.shm_dir;
}

void open_shm_storage(const Options &opt, uint64_t limit_blocks, const Placement &placement,
                      Storage &st) {
  // Frames of the superblock, the journal, the data and a first checkpoint.
  const uint64_t node_bytes =
      (2 + Node::kJournalFrames + (limit_blocks + kBlocksPerFrame - 1) / kBlocksPerFrame) *
      kFrameSize;
  const std::string shm_dir = shm_node_dir(opt, node_bytes);
  if (auto r = ensure_private_dir(shm_dir); !r)
    die("cannot use shm directory '" + shm_dir + "' (" + why(r.error()) +
        "); it must be a directory owned by root and writable only by root: if another user "
        "made it, remove it, then run systemd-tmpfiles --create pkramfs.conf or mount again");
  const std::string path = shm_dir + "/" + opt.node;
  std::string problem;
  auto node = Node::open_shm(path, node_params(opt, limit_blocks, placement), problem);
  if (!node && !problem.empty())
    die_refused(opt, path, problem);
  if (!node)
    die("cannot open node file '" + path + "' (" + why(node.error()) + "); check --shm-dir");
  st.backend = "shm";
  st.node = std::move(node.value());
  st.node_path = path;
  st.objects_path = ObjectStore::path_for(shm_dir, opt.node);
  struct statvfs vfs {};
  if (statvfs(shm_dir.c_str(), &vfs) == 0 && vfs.f_bsize != kFrameSize &&
      vfs.f_blocks * vfs.f_frsize < st.node->limit_blocks() * kBlockSize)
    spdlog::warn("{} holds at most {} MiB, less than the node's size; writes fail with ENOSPC "
                 "there",
                 shm_dir, vfs.f_blocks * vfs.f_frsize >> 20);
  start_node(opt, path, st);
}

[[noreturn]] void die_old_module_numa() {
  die("--numa needs a pkram.ko with NUMA placement (PKRAM_IOC_SET_POLICY, "
      "/sys/kernel/pkram/numa); install the pkram.ko of this release or remove --numa");
}

[[noreturn]] void die_pkram_device(int err) {
  const PkramDevice::OpenFailure f = PkramDevice::open_failure(err, "pkramfs-fuse");
  die(f.problem + "; " + f.fix);
}

PkramDevice open_pkram_device() {
  auto dev = PkramDevice::open();
  if (!dev)
    die_pkram_device(dev.error());
  return std::move(dev.value());
}

// Without --size a new pkram node takes the region's free frames, less its superblock,
// journal and room for two checkpoints.
uint64_t kmod_default_blocks(const Options &opt, const PkramDevice &dev) {
  auto region = dev.region();
  const uint64_t free = region ? region->free_frames : 0;
  const uint64_t overhead = 1 + Node::kJournalFrames + std::max<uint64_t>(2, free / 32);
  if (free <= overhead)
    die("the pkram region has no room for a new node '" + opt.node + "' (" + std::to_string(free) +
        " free frames of 2 MiB); destroy a node with pkramfs-ctl "
        "destroy, or reserve a larger region");
  return (free - overhead) * kBlocksPerFrame;
}

void open_kmod_storage(const Options &opt, uint64_t limit_blocks, const Placement &placement,
                       Storage &st) {
  PkramDevice dev = open_pkram_device();
  const bool exists = dev.stat(opt.node).ok();
  if (!exists && !opt.size_given)
    limit_blocks = kmod_default_blocks(opt, dev);
  else if (!exists) {
    auto region = dev.region();
    if (region && region->free_frames * kBlocksPerFrame < limit_blocks)
      spdlog::warn("the pkram region has {} MiB free, less than --size; writes fail with ENOSPC "
                   "once it is full",
                   region->free_frames * 2);
  }
  std::string problem;
  const std::string where = "pkram.ko node";
  auto node =
      Node::open_kmod(std::move(dev), opt.node, node_params(opt, limit_blocks, placement), problem);
  if (!node && !problem.empty())
    die_refused(opt, where, problem);
  if (!node && node.error() == EBUSY)
    die("pkram node '" + opt.node +
        "' is attached by another process; stop the daemon or "
        "pkramfs-ctl that holds it (see pkramfs-ctl list)");
  if (!node && node.error() == ENOSPC)
    die("the pkram region is full: no room for node '" + opt.node +
        "'; destroy a node with pkramfs-ctl destroy, or reserve a larger region");
  if (!node && node.error() == EFBIG)
    die("--size is too large for a pkram node (at most about 1 TiB); give a smaller --size");
  if (!node && node.error() == EOPNOTSUPP)
    die_old_module_numa();
  if (!node)
    die("cannot attach pkram node '" + opt.node + "' (" + why(node.error()) + ")");
  st.backend = "kmod";
  st.node = std::move(node.value());
  start_node(opt, where, st);
}

// auto: the rule of node/locate.h. pkram.ko counts as usable when its device exists: should it
// fail to open, the kmod path says why.
BackendKind choose_backend(const Options &opt) {
  if (opt.node.empty())
    return BackendKind::kAnon;
  NodePresence p;
  p.kmod_usable = PkramDevice::present();
  if (p.kmod_usable)
    if (auto dev = PkramDevice::open(); dev && dev->stat(opt.node))
      p.in_kmod = true;
  const std::string shm_file = shm_node_dir(opt, 0) + "/" + opt.node;
  p.in_shm = access(shm_file.c_str(), F_OK) == 0;
  return auto_backend(p) == NodeBackend::kKmod ? BackendKind::kKmod : BackendKind::kShm;
}

BackendKind resolve_backend(const Options &opt) {
  const BackendKind kind = opt.backend == BackendKind::kAuto ? choose_backend(opt) : opt.backend;
  if ((kind == BackendKind::kShm || kind == BackendKind::kKmod) && opt.node.empty())
    die(std::string("--backend=") + (kind == BackendKind::kShm ? "shm" : "kmod") +
        " needs a node name; add --pkram=NAME");
  return kind;
}

// --numa for this backend: pkram.ko frames come from its region, others from the kernel.
NumaPlan plan_numa(const Options &opt, BackendKind kind) {
  std::string error;
  if (opt.numa.mode == NumaRequest::Mode::kNone)
    return {};
  if (kind != BackendKind::kKmod) {
    auto plan = plan_memory_numa(opt.numa, error);
    if (!plan)
      die(error);
    return std::move(plan.value());
  }
  auto region = PkramDevice::numa_nodes();
  if (!region && region.error() == EOPNOTSUPP)
    die_old_module_numa();
  if (!region)
    die("cannot read /sys/kernel/pkram/numa (" + why(region.error()) + "); remove --numa");
  auto plan = plan_region_numa(opt.numa, *region, error);
  if (!plan)
    die(error);
  return std::move(plan.value());
}

// Before any other thread exists: the FUSE workers and the control thread inherit both.
void apply_numa_to_threads(const NumaPlan &plan) {
  if (auto r = set_thread_memory_policy(plan.placement); !r)
    spdlog::warn("--numa: cannot set the daemon's memory policy to {} ({})",
                 plan.placement.describe(), why(r.error()));
  if (auto r = pin_thread(plan.cpus); !r)
    spdlog::warn("--numa: cannot pin the daemon to CPUs {} ({})", format_list(plan.cpus),
                 why(r.error()));
  spdlog::debug("numa: frames {}, threads on CPUs {}", plan.placement.describe(),
                plan.cpus.empty() ? std::string("(not pinned)") : format_list(plan.cpus));
}

void open_storage(const Options &opt, BackendKind kind, const Placement &placement, Storage &st) {
  const uint64_t limit_blocks = (opt.size_bytes + kBlockSize - 1) / kBlockSize;
  if (kind == BackendKind::kShm) {
    open_shm_storage(opt, limit_blocks, placement, st);
    return;
  }
  if (kind == BackendKind::kKmod) {
    open_kmod_storage(opt, limit_blocks, placement, st);
    return;
  }
  st.backend = "anon";
  const uint64_t frames = (limit_blocks + kBlocksPerFrame - 1) / kBlocksPerFrame;
  auto source = make_anon_frame_source(frames, placement);
  if (!source)
    die("not enough memory for a " + std::to_string(frames * 2) + " MiB arena (" +
        why(source.error()) + "); use a smaller --size");
  st.anon = std::move(source.value());
  auto arena = std::make_unique<Arena>(*st.anon, 0, limit_blocks);
  st.fs = std::make_unique<Filesystem>(std::move(arena),
                                       fs_config(opt, opt.nr_inodes ? opt.nr_inodes : UINT64_MAX));
}

// What pkramfs-ctl can ask a mounted node.
class DaemonControl final : public ControlHandler {
public:
  DaemonControl(const Options &opt, Storage &st, HolderLink *holder)
      : opt_(opt), st_(st), holder_(holder) {}

  // How the serving loop is ended for an upgrade (SignalStop::stop_for_upgrade).
  void on_upgrade(std::function<void()> stop_serving) { stop_serving_ = std::move(stop_serving); }
  bool upgrading() const { return upgrading_; }

  NodeStatus status() override {
    NodeStatus s;
    s.name = opt_.node;
    s.backend = st_.backend;
    s.state = st_.fs->frozen() ? "preserved" : "active";
    s.mountpoint = opt_.mountpoint;
    s.pid = getpid();
    s.serving_pid = getpid();
    if (holder_) {
      SessionState &session = holder_->state();
      s.pid = s.holder_pid = session.layout().holder_pid.load();
      s.restarts = session.layout().restarts.load();
      s.last_restart_cause = session.cause();
      s.last_takeover_ms = session.last_takeover_ms();
      s.lookups_exact = session.layout().lookups_exact.load() != 0;
    }
    const auto u = st_.fs->usage();
    const struct statvfs v = st_.fs->statfs();
    s.usage.files = u.files;
    s.usage.directories = u.directories;
    s.usage.other_inodes = u.others;
    s.usage.data_bytes = u.data_blocks * kBlockSize;
    s.usage.limit_bytes = v.f_blocks * kBlockSize;
    s.usage.inodes_used = v.f_files - v.f_ffree;
    s.usage.inodes_limit = v.f_files;
    s.usage.unlinked_inodes = st_.fs->unlinked_inodes();
    s.usage.journal_used_bytes = st_.node->journal().used();
    s.usage.journal_bytes = st_.node->journal().capacity();
    s.usage.checkpoint_bytes = st_.node->checkpoint_bytes();
    s.usage.checkpoint_generation = st_.node->checkpoint_generation();
    s.usage.node_bytes = st_.node->node_bytes();
    const Node::Space space = st_.node->space();
    s.usage.metadata_bytes = u.metadata_blocks * kBlockSize;
    s.usage.free_bytes = v.f_bfree * kBlockSize;
    // Memory held for data: the arena's frames and the file objects' pages.
    s.usage.data_held_bytes = u.data_frames * kFrameSize + u.object_blocks * kBlockSize;
    s.usage.metadata_held_bytes = space.checkpoint_frame_bytes;
    s.usage.superblock_bytes = space.superblock_bytes;
    s.usage.held_bytes = held_bytes(u.object_blocks * kBlockSize);
    // A pkram node holds only its populated frames.
    if (st_.backend == "kmod")
      s.usage.node_bytes = s.usage.held_bytes;
    return s;
  }

  Result<PreserveReport> preserve() override {
    const auto start = std::chrono::steady_clock::now();
    // Dirty pages of shared mappings reach the daemon only through writeback: flush them while
    // writes are still accepted, then refuse every mutation with EROFS.
    if (const int err = sync_mount(opt_.mountpoint))
      spdlog::warn("preserve: syncfs of {} failed: {}", opt_.mountpoint, std::strerror(err));
    fault::crash_point(fault::Point::kPreserveSynced);
    st_.fs->set_frozen(true);
    fault::crash_point(fault::Point::kPreserveFrozen);
    if (auto r = st_.node->checkpoint(*st_.fs); !r) {
      st_.fs->set_frozen(false);
      return Errno{r.error()};
    }
    fault::crash_point(fault::Point::kPreserveCheckpointed);
    st_.node->set_state(PKRAMFS_STATE_PRESERVED);
    fault::crash_point(fault::Point::kPreserveMarked);
    const auto u = st_.fs->usage();
    PreserveReport report;
    report.files = u.files;
    report.bytes = u.data_blocks * kBlockSize;
    report.checkpoint_bytes = st_.node->checkpoint_bytes();
    report.milliseconds =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("preserved {}: {} files, {} bytes, checkpoint {} bytes, {:.1f} ms", opt_.node,
                 report.files, report.bytes, report.checkpoint_bytes, report.milliseconds);
    return report;
  }

  Result<void> unpreserve() override {
    st_.node->set_state(PKRAMFS_STATE_DIRTY);
    st_.fs->set_frozen(false);
    return {};
  }

  void set_atime(const AtimePolicy &policy) override { st_.fs->set_atime_policy(policy); }

  Result<std::string> upgrade(const std::string &requested) override {
    if (!holder_ || !stop_serving_)
      return Errno{EOPNOTSUPP};
    std::string path = requested.empty() ? installed_binary() : requested;
    struct stat sb {};
    if (path.empty() || path[0] != '/')
      return Errno{ENOENT};
    if (stat(path.c_str(), &sb) != 0)
      return Errno{errno};
    if (!S_ISREG(sb.st_mode) || access(path.c_str(), X_OK) != 0)
      return Errno{EACCES};
    if (upgrading_.exchange(true))
      return Errno{EALREADY};
    if (auto r = holder_->send_upgrade(path); !r) {
      upgrading_ = false;
      return Errno{r.error()};
    }
    stop_reading_requests();
    stop_serving_();
    return path;
  }

  Result<NodeDescriptor> node_fd() override {
    if (st_.backend != "kmod" || !st_.node)
      return Errno{EOPNOTSUPP};
    // Only a frozen node is a consistent cut: what is read must not change meanwhile.
    if (!st_.fs->frozen())
      return Errno{EBUSY};
    auto r = st_.node->frames().node_reader();
    if (!r)
      return Errno{r.error()};
    return NodeDescriptor{std::move(r->fd), r->bytes};
  }

private:
  // The binary this process runs, by the name it was installed under: a package upgrade
  // replaces the file there (/proc/self/exe then ends in " (deleted)").
  static std::string installed_binary() {
    char buf[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
      return {};
    std::string path(buf, static_cast<size_t>(n));
    constexpr std::string_view kDeleted = " (deleted)";
    if (path.ends_with(kDeleted))
      path.resize(path.size() - kDeleted.size());
    return path;
  }

  // The memory the node really holds: pkram.ko knows its populated frames, an shm node file's
  // allocated blocks are its frames.
  // The memory the node holds; `object_bytes`: its file objects' pages (Usage::object_blocks).
  uint64_t held_bytes(uint64_t object_bytes) const {
    if (st_.backend == "kmod") {
      if (auto dev = PkramDevice::open(); dev)
        if (auto info = dev->stat(opt_.node); info)
          return info->populated_frames * kFrameSize;
      return 0;
    }
    struct stat sb {};
    if (stat(st_.node_path.c_str(), &sb) != 0)
      return 0;
    // The node file's frames in use, and its file objects' pages.
    return static_cast<uint64_t>(sb.st_blocks) * 512 + object_bytes;
  }

  const Options &opt_;
  Storage &st_;
  HolderLink *holder_;
  std::function<void()> stop_serving_;
  std::atomic<bool> upgrading_{false};
};

// Leaves the node holding the whole tree in its checkpoint.
void close_storage(Storage &st) {
  if (!st.node)
    return;
  const bool preserved = st.fs->frozen();
  if (auto r = st.node->checkpoint(*st.fs); !r) {
    spdlog::error("final checkpoint failed ({}); the journal still holds every change",
                  std::strerror(r.error()));
    return;
  }
  st.node->set_state(preserved ? PKRAMFS_STATE_PRESERVED : PKRAMFS_STATE_CLEAN);
}

std::string fuse_option_string(const Options &opt) {
  std::string s = "default_permissions";
  bool fsname = false, subtype = false, dev = false, suid = false;
  for (const std::string &o : opt.fuse_options) {
    s += "," + o;
    fsname |= o.starts_with("fsname=");
    subtype |= o.starts_with("subtype=");
    dev |= o == "dev" || o == "nodev";
    suid |= o == "suid" || o == "nosuid";
  }
  // libfuse mounts nodev,nosuid unless told otherwise; tmpfs allows both.
  if (!dev)
    s += ",dev";
  if (!suid)
    s += ",suid";
  if (!fsname)
    s += ",fsname=" + (opt.node.empty() ? std::string("pkramfs") : opt.node);
  if (!subtype)
    s += ",subtype=pkramfs-fuse";
  return s;
}

// The atime options on the mount itself, so that it shows them (libfuse 3.14 refuses most):
// a bind remount changes the per-mount flags alone and sends the daemon nothing, so it can run
// before the session serves.
void apply_atime_flags(const Options &opt, fuse_session *se) {
  const std::optional<MountEntry> mount = last_mount_on(opt.mountpoint);
  const unsigned long flags =
      mount ? apply_mount_flag_options(mount_flags_of(*mount), opt.atime_options) : 0;
  if (!mount || ::mount(nullptr, opt.mountpoint.c_str(), nullptr,
                        MS_REMOUNT | MS_BIND | flags, nullptr) != 0) {
    const int err = mount ? errno : ENOENT;
    fuse_session_unmount(se);
    die("cannot set the atime options on '" + opt.mountpoint + "' (" + why(err) + ")");
  }
}

// FUSE_NOTIFY_RESEND: Linux 6.9 and later (protocol 7.40).
bool kernel_resends_requests() {
  struct utsname u {};
  unsigned major = 0, minor = 0;
  if (uname(&u) != 0 || std::sscanf(u.release, "%u.%u", &major, &minor) != 2)
    return false;
  return major > 6 || (major == 6 && minor >= 9);
}

// One worker per two CPUs: on a 2-CPU machine 16 workers made cold random reads 3-6x slower
// than one and creates no faster (docs/performance.md, "Throughput and metadata"); a request
// costs a switch to the daemon and back, and idle workers only add switches.
unsigned worker_threads() {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<unsigned>(std::clamp<long>(cpus / 2, 1, 8));
}

void setup_logging(const Options &opt) {
  auto logger = spdlog::stderr_logger_mt("pkramfs");
  logger->set_pattern("pkramfs-fuse: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(opt.debug ? spdlog::level::debug : spdlog::level::warn);
}

// In the background stderr is gone; keep logging through syslog.
void log_to_syslog(const Options &opt) {
  auto logger = spdlog::syslog_logger_mt("pkramfs-syslog", "pkramfs-fuse", LOG_PID);
  logger->set_level(opt.debug ? spdlog::level::debug : spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

// The first serving process under a holder in the background, once it serves: what
// fuse_daemonize does to a daemon's stdio and working directory.
void detach_stdio(const Options &opt) {
  if (chdir("/") != 0)
    spdlog::debug("cannot change to /: {}", why(errno));
  if (const int null = open("/dev/null", O_RDWR); null >= 0) {
    for (int fd = 0; fd <= 2; ++fd)
      dup2(null, fd);
    if (null > 2)
      close(null);
  }
  log_to_syslog(opt);
}

// The end of a mount this process took over: libfuse did not mount it, so it does not unmount
// it either (fuse_session_unmount). As libfuse's fuse_kern_unmount: nothing if the kernel has
// ended the connection already, else a lazy unmount.
void unmount_taken_over(const std::string &mountpoint, int fuse_fd) {
  pollfd p{fuse_fd, 0, 0};
  if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
    return;
  if (umount2(mountpoint.c_str(), MNT_DETACH) != 0 && errno != EINVAL)
    spdlog::warn("cannot unmount {}: {}", mountpoint, why(errno));
}

// Arms the fault points named by PKRAMFS_FAULT and --debug-fail (builds with the switch only).
// Called once to refuse a bad spec before anything happens, and again when the mount is ready,
// so that passes are counted from there: restoring the node is not part of what a test aims at.
void arm_faults([[maybe_unused]] const Options &opt, [[maybe_unused]] bool arm) {
#ifdef PKRAMFS_FAULT_INJECTION
  fault::disarm_all();
  std::vector<std::string> specs = opt.debug_fail;
  if (const char *env = getenv("PKRAMFS_FAULT"); env && *env)
    specs.insert(specs.begin(), env);
  std::string error;
  for (const std::string &spec : specs)
    if (!fault::configure(spec, error))
      die(error.substr(0, error.find('\n')) + "; see pkramfs-fuse --debug-fail=list");
  if (!arm)
    fault::disarm_all();
  else if (!specs.empty())
    spdlog::warn("fault injection armed: {}", specs.front() + (specs.size() > 1 ? ", ..." : ""));
#endif
}

// Fault injection (test builds) is aimed at a crash of the daemon and what the node holds
// after it: such a mount has no holder, so a crash point ends the mount as a crash did.
bool faults_armed([[maybe_unused]] const Options &opt) {
#ifdef PKRAMFS_FAULT_INJECTION
  const char *env = getenv("PKRAMFS_FAULT");
  return !opt.debug_fail.empty() || (env && *env);
#else
  return false;
#endif
}

} // namespace

int main(int argc, char **argv) {
  Options opt;
  std::string error;
  if (!parse_options(argc, argv, opt, error)) {
    if (error.empty())
      return 0;
    die(error);
  }
  setup_logging(opt);
  arm_faults(opt, false);
  // Before anything is created: a mistyped key leaves nothing behind.
  std::string tuning_error;
  const Tuning tuning = tuning_from_environment(tuning_error);
  if (!tuning_error.empty())
    die(tuning_error);
  std::optional<HolderLink> holder;
  if (!opt.takeover.empty()) { // started by the holder, which holds the node lock
    if (opt.node.empty())
      die("--takeover is for the holder's own use, with a node");
    auto link = takeover_link(opt.takeover, error);
    if (!link)
      die(error);
    holder.emplace(std::move(*link));
    opt.mountpoint = holder->state().mountpoint();
  } else {
    check_mountpoint(opt.mountpoint);
    // The daemon leaves its working directory when it goes to the background; pkramfs-ctl
    // preserve and the signal path open the mount point by name later.
    if (char *absolute = realpath(opt.mountpoint.c_str(), nullptr)) {
      opt.mountpoint = absolute;
      free(absolute);
    }
  }
  // mount -o remount: this process only changes an existing mount, then exits.
  if (opt.remount) {
    if (!remount(opt, error))
      die(error);
    return 0;
  }
  check_fuse_device();

  // Before the node lock, so that a missing module leaves nothing behind.
  if (opt.backend == BackendKind::kKmod && !opt.node.empty() && !PkramDevice::present())
    die_pkram_device(ENOENT);
  // Also before the lock: a refused --numa leaves nothing behind either.
  const BackendKind kind = resolve_backend(opt);
  const NumaPlan numa = plan_numa(opt, kind);
  apply_numa_to_threads(numa);
  std::optional<NodeLock> lock;
  if (!opt.node.empty() && !holder) {
    if (auto r = ensure_private_dir(opt.run_dir); !r)
      die("cannot use run directory '" + opt.run_dir + "' (" + why(r.error()) +
          "); it must be a directory owned by root and writable only by root: if another user "
        "made it, remove it, then run systemd-tmpfiles --create pkramfs.conf or mount again");
    pid_t lock_holder = 0;
    auto l = NodeLock::acquire(opt.run_dir, opt.node, &lock_holder);
    if (!l && l.error() == EWOULDBLOCK)
      die("node '" + opt.node + "' is busy: pkramfs-fuse pid " + std::to_string(lock_holder) +
          " serves it; unmount that first or choose another --pkram name");
    if (!l)
      die("cannot lock node '" + opt.node + "' in '" + opt.run_dir + "' (" + why(l.error()) + ")");
    lock.emplace(std::move(l.value()));
    // From here on the mount outlives the process that serves it (holder.h): this returns in
    // the serving process. Not for anonymous memory, which dies with the process: a takeover
    // would serve an empty tree in its place.
    if (kind != BackendKind::kAnon && !faults_armed(opt)) {
      holder.emplace(start_holder(argc, argv, opt.foreground, lock->fd(),
                                  [&lock] { lock->write_pid(getpid()); }));
      holder->state().set_mountpoint(opt.mountpoint);
    }
  }

  Storage storage;
  storage.takeover = holder && holder->takeover();
  open_storage(opt, kind, numa.placement, storage);
  Filesystem &fs = *storage.fs;
  // With a holder, the kernel's lookup references, and what each request in flight did, are
  // kept where the next serving process finds them (lookup_ledger.h, session_state.h).
  std::optional<LookupLedger> ledger;
  if (holder) {
    SessionState &session = holder->state();
    ledger.emplace(session);
    Journal &journal = storage.node->journal();
    if (storage.takeover) {
      // Before anything is logged: what the process that died logged ends before here.
      session.carry_inflight(
          [end = journal.position()](Journal::Position at) { return at < end; });
      const auto lookups = ledger->counts();
      fs.adopt_kernel_references(session.open_files(), ledger->exact() ? &lookups : nullptr);
      ledger->rebuild(lookups);
    }
    fs.set_lookup_mirror(&*ledger);
    journal.on_record(SessionState::note_journal_record);
  }
  arm_faults(opt, true);
  spdlog::debug("storage: {}",
                storage.node ? storage.backend + " node " + opt.node : "anonymous memory");

  const std::string fuse_opts = fuse_option_string(opt);
  std::vector<const char *> fuse_argv = {argv[0], "-o", fuse_opts.c_str()};
  fuse_args args =
      FUSE_ARGS_INIT(static_cast<int>(fuse_argv.size()), const_cast<char **>(fuse_argv.data()));
  uint32_t generation = 1;
  if (storage.node)
    generation = storage.node->handle_generation();
  else if (getrandom(&generation, sizeof generation, 0) == sizeof generation)
    generation |= 1; // an anonymous tree is new at every mount: so are its handles
  const fuse_lowlevel_ops ops = make_operations(opt.cache);
  // Regular files made from now on may be file objects opened passthrough, once the kernel has
  // agreed to passthrough (after INIT): an shm node's store (open_storage), or for a tree
  // without a node a private tmpfs made now. Not with --numa, whose placement the arena
  // applies (numa_placement.h) and the objects would not, nor with --cache=direct.
  const bool objects_for_new_files = tuning.passthrough && opt.cache != CacheMode::kDirect &&
                                     opt.numa.mode == NumaRequest::Mode::kNone;
  if (!storage.node && objects_for_new_files) {
    const struct statvfs limits = fs.statfs();
    auto store = ObjectStore::create(limits.f_blocks * kBlockSize,
                                     opt.nr_inodes ? opt.nr_inodes : UINT64_MAX);
    if (store) {
      storage.objects = std::move(store.value());
      fs.use_objects(storage.objects.get());
    } else {
      spdlog::debug("passthrough: no tmpfs for file objects ({}); files stay in the arena",
                    why(store.error()));
    }
  }
  // Opens of objects go passthrough, also those of a node whose new files stay in the arena.
  const bool may_have_objects = storage.objects || !storage.objects_path.empty();
  BackingFiles backing;
  if (holder && storage.takeover && storage.objects)
    for (const auto &[ino, o] : holder->state().backed_opens())
      backing.adopt(ino, o.backing_id, o.passthrough, o.cached);
  ServeContext serve{fs, opt.cache, generation, holder ? &holder->state() : nullptr,
                     may_have_objects && tuning.passthrough ? &backing : nullptr};
  fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, &serve);
  if (!se)
    die("cannot start a FUSE session with options '" + fuse_opts + "'; check the -o options");
  fs.on_attributes_changed(
      [se](uint64_t ino) { fuse_lowlevel_notify_inval_inode(se, ino, -1, 0); });
  const bool takeover = storage.takeover;
  int fuse_fd = -1;
  if (takeover) {
    fuse_fd = holder->fuse_fd();
  } else {
    if (fuse_session_mount(se, opt.mountpoint.c_str()) != 0)
      die("cannot mount on '" + opt.mountpoint + "'; see the message above");
    fuse_fd = fuse_session_fd(se);
    if (holder)
      if (auto r = holder->send_mounted(fuse_fd); !r)
        spdlog::warn("cannot hand the connection to the holder ({}); the mount ends if this "
                     "process dies",
                     why(r.error()));
  }
  fs.set_atime_policy(opt.atime);
  if (!opt.atime_options.empty() && !takeover) // the mount keeps the flags
    apply_atime_flags(opt, se);
  InitAmendments amendments;
  amendments.handle_killpriv_v2 = tuning.killpriv_v2;
  amendments.spin_us = tuning.spin_us;
  const BdiSettings bdi{.readahead_kb = tuning.readahead_kb,
                        .max_ratio = tuning.bdi_max_ratio,
                        .clear_strict_limit = !tuning.bdi_strict_limit};
  amendments.after_init = [mountpoint = opt.mountpoint, bdi, &fs, &storage,
                           objects_for_new_files] {
    tune_mount_bdi(mountpoint, bdi);
    if (!objects_for_new_files || !passthrough_negotiated())
      return;
    if (!storage.objects && !storage.objects_path.empty()) { // an shm node's first
      const Node &n = *storage.node;
      auto store = ObjectStore::attach(storage.objects_path, n.limit_blocks() * kBlockSize,
                                       n.max_inodes(), n.uuid_hex(), true);
      if (!store) {
        spdlog::warn("cannot mount the file object tmpfs {} ({}); new files stay in the node "
                     "file, without passthrough",
                     storage.objects_path, why(store.error()));
        return;
      }
      storage.objects = std::move(store.value());
      fs.use_objects(storage.objects.get());
    }
    if (storage.objects) {
      fs.make_objects(true);
      spdlog::debug("passthrough: new regular files are objects opened passthrough");
    }
  };
  amendments.passthrough = may_have_objects && tuning.passthrough &&
                           opt.cache != CacheMode::kDirect;
  amendments.session = holder ? &holder->state() : nullptr;
  amendments.takeover = takeover;
  if (holder)
    amendments.undelivered = [&fs, &session = holder->state(),
                              backing_files = serve.backing](
                                 const SessionState::RequestSummary &request) {
      if (request.entry_ino)
        fs.forget(request.entry_ino, 1);
      if (request.fh) {
        uint32_t word = 0;
        if (const uint64_t ino = session.close_handle(request.fh, &word)) {
          if (backing_files && word)
            backing_files->release(ino, word);
          fs.release(ino);
        }
      }
    };
  if (const int err = install_device_io(se, fuse_fd, std::move(amendments)))
    die("cannot install the FUSE device hooks: " + std::string(std::strerror(-err)));
  spdlog::debug("{} {} on {}", takeover ? "took over" : "mounted",
                opt.node.empty() ? "anonymous node" : opt.node, opt.mountpoint);
  if (!holder) {
    if (fuse_daemonize(opt.foreground) != 0)
      die("cannot go to the background");
    if (!opt.foreground)
      log_to_syslog(opt);
    if (lock)
      lock->write_pid(getpid());
  }
  // Before any other thread exists, so that every thread blocks the stop signals.
  std::function<uint64_t()> activity;
  if (storage.node)
    activity = [&storage] { return storage.node->journal().used(); };
  std::optional<SignalStop> signal_stop(std::in_place, se, opt.mountpoint, activity);
  DaemonControl control(opt, storage, holder ? &*holder : nullptr);
  if (holder)
    control.on_upgrade([&signal_stop] { signal_stop->stop_for_upgrade(); });
  std::unique_ptr<ControlServer> control_server;
  if (storage.node) {
    auto server = ControlServer::start(opt.run_dir, opt.node, control);
    if (server)
      control_server = std::move(server.value());
    else
      spdlog::error("no control socket in {} ({}); pkramfs-ctl cannot reach this daemon",
                    opt.run_dir, why(server.error()));
  }

  if (opt.cache != CacheMode::kDirect)
    start_direct_write_replies(se);
  if (holder) {
    holder->send_ready();
    if (!opt.foreground && !takeover)
      detach_stdio(opt);
    else if (!opt.foreground)
      log_to_syslog(opt);
  }

  fuse_loop_config *loop = fuse_loop_cfg_create();
  // The kernel ends the requests read through a cloned descriptor when that descriptor closes
  // (fuse_dev_release: ECONNABORTED). With a holder on a kernel that resends (6.9+), every
  // worker reads the holder's own connection, so that what a dying process had read stays
  // with the connection for FUSE_NOTIFY_RESEND. Where the kernel cannot resend (6.1), clones
  // are what bounds a crash: a request the process read in the instant it was killed, before
  // it could note it in the session state, would otherwise wait for ever; with a clone the
  // kernel fails it (ECONNABORTED) as the process dies.
  fuse_loop_cfg_set_clone_fd(loop, holder && kernel_resends_requests() ? 0 : 1);
  fuse_loop_cfg_set_max_threads(loop, tuning.threads ? tuning.threads : worker_threads());
  const int rc = fuse_session_loop_mt(se, loop);
  fuse_loop_cfg_destroy(loop);
  signal_stop.reset();
  control_server.reset();
  const bool replies_stopped = stop_direct_write_replies();
  if (control.upgrading()) {
    // The mount stays: the holder keeps the connection and starts the new binary, which
    // restores this checkpoint. Requests that arrive meanwhile wait in the kernel.
    if (replies_stopped)
      fuse_session_destroy(se);
    fuse_opt_free_args(&args);
    close_storage(storage);
    // Every request taken was answered; one still noted here would reach the next process
    // as in flight (resent on 6.9+, failed on older kernels).
    if (const size_t left = holder->state().inflight_count())
      spdlog::warn("upgrade: {} requests taken and not answered", left);
    spdlog::info("node {}: checkpointed for the upgrade; the holder starts the new binary",
                 opt.node);
    return kExitUpgrade;
  }
  if (takeover)
    unmount_taken_over(opt.mountpoint, fuse_fd);
  else
    fuse_session_unmount(se);
  if (replies_stopped)
    fuse_session_destroy(se);
  else // a thread still waits in the kernel and may use the session: exit closes the device
    spdlog::warn("an O_DIRECT write's page cache invalidation did not end; exiting without it");
  // fuse_session_new() replaced `args` with a heap copy (fuse_opt_parse); ours to free
  // (LeakSanitizer reported it at every clean exit).
  fuse_opt_free_args(&args);
  close_storage(storage);
#ifdef PKRAMFS_FAULT_INJECTION
  if (const std::string r = fault::report(); !r.empty())
    spdlog::warn("fault injection: {}", r.substr(0, r.size() - 1));
#endif
  spdlog::debug("unmounted, exiting");
  return rc == 0 ? 0 : 1;
}
