// pkramfs-ctl: the operator's tool for pkramfs nodes. Talks to a mounted node's daemon over
// <run-dir>/NAME.sock and reads unmounted nodes directly (read-only): shm node files, and
// pkram.ko nodes through /dev/pkram.
#include "control_client.h"
#include "geometry.h"
#include "node_dirs.h"
#include "node_export.h"
#include "node_inspect.h"
#include "parse.h"
#include "pkram_device.h"

#include "control_protocol.h"
#include "json.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <iomanip>
#include <iostream>
#include <linux/magic.h>
#include <optional>
#include <set>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <vector>

using namespace pkramfs;
using pkramfs::control::JsonObject;
using pkramfs::control::JsonWriter;

namespace {

// Exit codes: 0 done, 1 failed (for check: problems found), 2 usage error (for check: any
// error, since 1 means problems).
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// Where nodes live: pkram.ko nodes (/dev/pkram) or files in the shm dir. auto: a name that
// pkram.ko holds is a kmod node, else an shm node (as pkramfs-fuse chooses).
enum class Backend { kAuto, kKmod, kShm };

struct Settings {
  Backend backend = Backend::kAuto;
  std::string shm_dir; // empty: the defaults of node_dirs.h
  std::string run_dir = "/run/pkramfs";
  bool json = false;
  std::optional<double> timeout_s;
  std::string command;
  std::string name;
  std::string file;    // export, import: the image
  bool verify = false; // export --verify
  bool quiet = false;  // export, import --quiet
  bool force = false;  // import --force
  bool debug = false;
};

// An error for the user: printed as one line "pkramfs-ctl: <problem>; <fix>".
struct Failure {
  std::string message;
  int code = kExitFailed;
};

[[noreturn]] void fail(const std::string &problem, const std::string &fix, int code = 0) {
  throw Failure{fix.empty() ? problem : problem + "; " + fix, code};
}

std::string why(int err) { return std::strerror(err); }

// Anything a user typed, safe to print on one line.
std::string printable(std::string_view s) {
  std::string out;
  for (const unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string in_quotes(std::string_view name) { return "'" + printable(name) + "'"; }

std::string human_bytes(uint64_t n) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (n < 1024)
    return std::to_string(n) + " B";
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

bool pid_alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// Who holds a node's lock. The pid is what the daemon wrote after starting: missing or dead
// while a daemon is still starting, or when something else holds the lock.
std::string holder_text(pid_t pid) {
  return pid_alive(pid) ? "pkramfs-fuse pid " + std::to_string(pid) : "an unknown process";
}
std::string holder_note(pid_t pid) {
  if (pid_alive(pid))
    return "";
  return pid > 0 ? " (its lock names pid " + std::to_string(pid) + ", which is not running)"
                 : " (its lock names no pid)";
}

int timeout_ms(const Settings &s, double default_s) {
  const double t = s.timeout_s.value_or(default_s);
  return static_cast<int>(std::min(t, 86400.0) * 1000);
}

std::string node_path(const Settings &s, const std::string &name) { return s.shm_dir + "/" + name; }
std::string sock_path(const Settings &s, const std::string &name) {
  return control::socket_path(s.run_dir, name);
}

// --------------------------------------------------------------------- the node lock --

ctl::LockProbe probe(const Settings &s, const std::string &name, ctl::LockMode mode) {
  auto r = ctl::probe_lock(s.run_dir, name, mode);
  if (!r)
    fail("cannot read the lock of node " + in_quotes(name) + " in '" + s.run_dir + "' (" +
             why(r.error()) + ")",
         "check --run-dir (it must be the daemon's, default /run/pkramfs)");
  return std::move(r.value());
}

// Where the daemon serving `name` mounted it, if it says so within a second.
std::string mountpoint_of(const Settings &s, const std::string &name) {
  std::string detail;
  auto r = ctl::ask_daemon(control::socket_path(s.run_dir, name), "status", 1000, detail);
  if (!r || !r->at("ok").as_bool())
    return {};
  auto it = r->find("mountpoint");
  return it == r->end() ? std::string() : it->second.as_string();
}

// "node 'x' is busy: pkramfs-fuse pid N serves it; <what>: umount MNT"
[[noreturn]] void busy(const Settings &s, const std::string &name, pid_t pid,
                       const std::string &what) {
  std::string how;
  if (pid_alive(pid)) {
    const std::string mnt = mountpoint_of(s, name);
    how = mnt.empty() ? " (umount its mount point, or kill -TERM " + std::to_string(pid) + ")"
                      : ": umount " + printable(mnt);
  } else {
    how = " (or try again: another pkramfs-ctl may hold the node's lock)";
  }
  fail("node " + in_quotes(name) + " is busy: " + holder_text(pid) + " serves it" +
           holder_note(pid),
       what + how);
}

// ----------------------------------------------------------------- daemon requests --

// The daemon's reply to `command`; fails with a one-line error when it cannot be asked.
JsonObject ask(const Settings &s, const std::string &name, pid_t pid, const std::string &command,
               double default_timeout_s, UniqueFd *received = nullptr) {
  std::string detail;
  const int ms = timeout_ms(s, default_timeout_s);
  auto r = ctl::ask_daemon(sock_path(s, name), command, ms, detail, received);
  if (r)
    return std::move(r.value());
  const std::string who = "the daemon of node " + in_quotes(name) + " (" +
                          (pid_alive(pid) ? holder_text(pid) : "pid unknown") + ")";
  const std::string lock = control::lock_path(s.run_dir, name);
  std::string hint = pid_alive(pid) ? "check that pid " + std::to_string(pid) +
                                          " is alive (ps -p " + std::to_string(pid) +
                                          ") and read its log (journalctl -t pkramfs-fuse)"
                                    : "find who holds " + lock + " (fuser -v " + lock + ")";
  if (r.error() == ENOENT || r.error() == ECONNREFUSED)
    hint += "; a daemon that has just started may still be restoring the node: try again";
  switch (r.error()) {
  case ENOENT:
    fail(who + " is not answering: no control socket " + sock_path(s, name), hint);
  case ECONNREFUSED:
    fail(who + " is not answering: connection refused on " + sock_path(s, name), hint);
  case ETIMEDOUT:
    fail(who + " is not answering: no reply within " + std::to_string(ms / 1000.0).substr(0, 4) +
             " s",
         hint + "; a longer --timeout may help");
  case EPROTO:
    fail(who + " gave a bad reply: " + detail, "is it the same version as pkramfs-ctl?");
  default:
    fail("cannot talk to " + who + " on " + sock_path(s, name) + " (" + why(r.error()) + ")", hint);
  }
}

// The error of an "ok":false reply as a one-line failure.
[[noreturn]] void daemon_refused(const std::string &name, const std::string &command,
                                 const JsonObject &reply) {
  std::string message = "(no message)";
  if (auto it = reply.find("error"); it != reply.end())
    message = printable(it->second.as_string());
  int err = 0;
  if (auto it = reply.find("errno"); it != reply.end())
    err = static_cast<int>(it->second.as_i64());
  std::string fix = "see the daemon's log (journalctl -t pkramfs-fuse)";
  if (err == EPERM)
    fix = "run pkramfs-ctl as root";
  fail("node " + in_quotes(name) + ": " + command + " refused by the daemon: " + message, fix);
}

uint64_t u64(const JsonObject &o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? 0 : it->second.as_u64();
}
std::string str(const JsonObject &o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? std::string() : it->second.as_string();
}

void write_json_value(JsonWriter &w, const control::JsonValue &v) {
  if (auto *b = std::get_if<bool>(&v.v))
    w.value(*b);
  else if (auto *i = std::get_if<int64_t>(&v.v))
    w.value(*i);
  else if (auto *u = std::get_if<uint64_t>(&v.v))
    w.value(*u);
  else if (auto *d = std::get_if<double>(&v.v))
    w.value(*d);
  else if (auto *s = std::get_if<std::string>(&v.v))
    w.value(*s);
  else
    w.null();
}

void write_summary_fields(JsonWriter &w, const NodeSummary &n) {
  w.field("state", n.state)
      .field("node_bytes", n.node_bytes)
      .field("limit_bytes", n.limit_bytes)
      .field("inodes_limit", n.inodes_limit)
      .field("checkpoint_generation", n.checkpoint_generation)
      .field("checkpoint_bytes", n.checkpoint_bytes)
      .field("journal_records", n.journal_records)
      .field("files", n.files)
      .field("directories", n.directories)
      .field("other_inodes", n.other_inodes)
      .field("data_bytes", n.data_bytes)
      .field("metadata_bytes", n.metadata_bytes)
      .field("free_bytes", n.free_bytes)
      .field("inodes_used", n.inodes_used)
      .field("journal_bytes", n.journal_bytes)
      .field("superblock_bytes", n.superblock_bytes)
      .field("data_held_bytes", n.data_held_bytes)
      .field("metadata_held_bytes", n.metadata_held_bytes)
      .field("held_bytes", n.held_bytes);
}

// A node's space by kind: what counts against size= and the frames each kind holds.
struct SpaceByKind {
  uint64_t limit = 0, data = 0, metadata = 0, free = 0;
  uint64_t data_held = 0, metadata_held = 0, journal = 0, journal_used = 0, superblock = 0;
  uint64_t held = 0;
  bool journal_use_known = false;
};

void print_space(const SpaceByKind &k) {
  auto frames = [](uint64_t bytes) {
    const uint64_t n = bytes / kFrameSize;
    return human_bytes(bytes) + " (" + std::to_string(n) + (n == 1 ? " frame)" : " frames)");
  };
  std::vector<std::vector<std::string>> table = {
      {"  KIND", "OF SIZE=", "FRAMES HELD"},
      {"  data", human_bytes(k.data), frames(k.data_held)},
      {"  metadata", human_bytes(k.metadata), frames(k.metadata_held)},
      {"  journal", "-",
       frames(k.journal) +
           (k.journal_use_known ? ", " + human_bytes(k.journal_used) + " used" : "")},
      {"  superblock", "-", frames(k.superblock)},
      {"  free", human_bytes(k.free), "-"},
      {"  total", human_bytes(k.limit), frames(k.held)}};
  std::cout << "space:\n";
  std::vector<size_t> width(3, 0);
  for (auto &line : table)
    for (size_t i = 0; i < line.size(); ++i)
      width[i] = std::max(width[i], line[i].size());
  for (auto &line : table)
    std::cout << line[0] << std::string(width[0] - line[0].size() + 2, ' ') << line[1]
              << std::string(width[1] - line[1].size() + 2, ' ') << line[2] << "\n";
}

// ----------------------------------------------------------------------- offline --

enum class NodeFile { kMissing, kRegular, kOther };

NodeFile node_file(const Settings &s, const std::string &name, struct stat *out = nullptr) {
  struct stat st {};
  if (::lstat(node_path(s, name).c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return NodeFile::kMissing;
    fail("cannot look at " + node_path(s, name) + " (" + why(errno) + ")",
         "check --shm-dir (default /dev/shm/pkramfs)");
  }
  if (out)
    *out = st;
  return S_ISREG(st.st_mode) ? NodeFile::kRegular : NodeFile::kOther;
}

[[noreturn]] void no_such_node(const Settings &s, const std::string &name) {
  if (s.backend == Backend::kKmod)
    fail("no such node " + in_quotes(name) + " in " + PkramDevice::kPath, "see pkramfs-ctl list");
  const std::string where = s.backend == Backend::kAuto && PkramDevice::present()
                                ? std::string(PkramDevice::kPath) + " or " + s.shm_dir
                                : s.shm_dir;
  fail("no such node " + in_quotes(name) + " in " + where,
       "see pkramfs-ctl list (or pass the daemon's --shm-dir/--run-dir)");
}

[[noreturn]] void not_a_node_file(const Settings &s, const std::string &name) {
  fail(node_path(s, name) + " is not a node (not a regular file)",
       "remove it by hand if it is not pkramfs's");
}

// A summary from inspect_node(), or a one-line failure; `where` names what to look at.
NodeSummary inspected(const Settings &s, const std::string &name, Result<NodeSummary> r,
                      const std::string &detail, const std::string &where) {
  if (r)
    return std::move(r.value());
  if (r.error() == ENOENT)
    no_such_node(s, name);
  if (r.error() == EINVAL)
    fail("node " + in_quotes(name) + " is not a valid pkramfs node: " + printable(detail),
         "run pkramfs-ctl check " + name + " for details; destroy it if it is not needed");
  fail("cannot read node " + in_quotes(name) + " (" + why(r.error()) + ")", "check " + where);
}

NodeSummary inspect(const Settings &s, const std::string &name) {
  std::string detail;
  auto r = inspect_node(node_path(s, name), detail);
  return inspected(s, name, std::move(r), detail, node_path(s, name));
}

// ---------------------------------------------------------------------- pkram.ko --

bool device_absent(int err) { return err == ENOENT || err == ENXIO || err == ENODEV; }

[[noreturn]] void device_failed(int err) {
  if (device_absent(err))
    fail("no /dev/pkram: pkram.ko is not loaded",
         "load it (modprobe pkram region=SIZE@START, see docs/pkram-module.md) or use "
         "--backend=shm");
  if (err == EPROTO)
    fail("/dev/pkram speaks another interface version than this pkramfs-ctl",
         "install the pkram.ko of the same release");
  fail("cannot open /dev/pkram (" + why(err) + ")", "pkramfs-ctl must run as root");
}

PkramDevice open_device() {
  auto dev = PkramDevice::open();
  if (!dev)
    device_failed(dev.error());
  return std::move(dev.value());
}

uint64_t held_bytes(const PkramNodeInfo &n) { return n.populated_frames * kFrameSize; }
std::string pkram_state(const PkramNodeInfo &n) { return n.preserved ? "preserved" : "active"; }

// A node attached to another /dev/pkram file than a daemon of this run dir: a daemon started
// with another --run-dir, or a test tool.
[[noreturn]] void attached_elsewhere(const Settings &s, const std::string &name,
                                     const std::string &what) {
  fail("node " + in_quotes(name) + " is busy: another process holds /dev/pkram node " +
           in_quotes(name) + " (no pkramfs-fuse of run dir " + s.run_dir + " serves it)",
       what + ": stop that process (a pkramfs-fuse with another --run-dir?) and try again");
}

// Where node `name` is, as --backend says.
struct Located {
  Backend kind = Backend::kShm;      // kKmod or kShm
  std::optional<PkramDevice> dev;    // kKmod: /dev/pkram, not attached
  std::optional<PkramNodeInfo> info; // kKmod: the node; empty when there is no such node
};

Located locate(const Settings &s, const std::string &name) {
  Located loc;
  if (s.backend == Backend::kShm || (s.backend == Backend::kAuto && !PkramDevice::present()))
    return loc;
  auto dev = PkramDevice::open();
  if (!dev) {
    if (s.backend == Backend::kAuto &&
        (device_absent(dev.error()) || node_file(s, name) != NodeFile::kMissing))
      return loc;
    device_failed(dev.error());
  }
  auto info = dev->stat(name);
  if (!info && info.error() != ENOENT)
    fail("cannot look up pkram node " + in_quotes(name) + " (" + why(info.error()) + ")",
         "see the kernel log (dmesg | grep pkram)");
  if (!info && s.backend == Backend::kAuto && node_file(s, name) != NodeFile::kMissing)
    return loc;
  loc.kind = Backend::kKmod;
  loc.dev.emplace(std::move(dev.value()));
  if (info)
    loc.info = std::move(info.value());
  return loc;
}

bool exists(const Settings &s, const std::string &name, const Located &loc) {
  return loc.kind == Backend::kKmod ? loc.info.has_value()
                                    : node_file(s, name) != NodeFile::kMissing;
}

// An unmounted pkram node attached to `dev` for reading: pread() only, never a write.
// Closing `dev` detaches it. The caller holds the node's lock, so no daemon starts meanwhile.
struct AttachedNode {
  NodeBytes bytes;
  PkramNodeInfo info;
};

AttachedNode attach_for_reading(const Settings &s, const std::string &name, PkramDevice &dev,
                                const std::string &what) {
  bool created = false;
  auto info = dev.attach(name, false, &created);
  if (!info) {
    if (info.error() == ENOENT)
      no_such_node(s, name);
    if (info.error() == EBUSY)
      attached_elsewhere(s, name, what);
    fail("cannot attach pkram node " + in_quotes(name) + " (" + why(info.error()) + ")",
         "see the kernel log (dmesg | grep pkram)");
  }
  return {NodeBytes{dev.fd(), info->span_frames * kFrameSize, "pkram node"}, info.value()};
}

NodeSummary inspect_kmod(const Settings &s, const std::string &name, PkramDevice &dev,
                         PkramNodeInfo &info) {
  AttachedNode node = attach_for_reading(s, name, dev, "status reads an unmounted node");
  info = node.info;
  std::string detail;
  auto r = inspect_node(node.bytes, detail);
  return inspected(s, name, std::move(r), detail, "the kernel log (dmesg | grep pkram)");
}

// A node state, and pkram.ko's flag when it says otherwise.
std::string kmod_state(const std::string &state, const PkramNodeInfo &info) {
  if (info.preserved == (state == "preserved"))
    return state;
  return state + "/pkram-" + pkram_state(info);
}

// ---------------------------------------------------------------------- commands --

struct ListRow {
  std::string name;
  std::string backend; // "shm" or "kmod"
  bool mounted = false;
  pid_t pid = 0;
  std::string state;
  uint64_t size = 0; // shm: the node's size; kmod: the frames it holds
  std::optional<uint64_t> files;
  std::string error;
  std::optional<PkramNodeInfo> pkram; // kmod: what pkram.ko says
};

// A mounted node's row, from its daemon.
void ask_for_row(const Settings &s, ListRow &row) {
  std::string detail;
  auto r = ctl::ask_daemon(sock_path(s, row.name), "status", timeout_ms(s, 2), detail);
  if (!r) {
    row.state = "not-answering";
    row.error = "daemon not answering (" + (detail.empty() ? why(r.error()) : detail) + ")";
  } else if (!r->at("ok").as_bool()) {
    row.state = "error";
    row.error = "daemon: " + str(*r, "error");
  } else {
    row.state = str(*r, "state");
    if (row.backend == "shm")
      row.size = u64(*r, "node_bytes");
    row.files = u64(*r, "files");
  }
}

void list_shm(const Settings &s, std::vector<ListRow> &rows) {
  std::vector<std::string> names;
  if (DIR *d = ::opendir(s.shm_dir.c_str())) {
    while (dirent *e = ::readdir(d))
      if (valid_node_name(e->d_name))
        names.emplace_back(e->d_name);
    ::closedir(d);
  } else if (errno != ENOENT) {
    fail("cannot read the shm directory '" + s.shm_dir + "' (" + why(errno) + ")",
         "check --shm-dir (default /dev/shm/pkramfs)");
  }
  std::sort(names.begin(), names.end());

  for (const std::string &name : names) {
    struct stat st {};
    ListRow row;
    row.name = name;
    row.backend = "shm";
    try {
      if (node_file(s, name, &st) != NodeFile::kRegular)
        continue;
      row.size = static_cast<uint64_t>(st.st_size);
      ctl::LockProbe lock = probe(s, name, ctl::LockMode::kShared);
      row.mounted = lock.held;
      row.pid = lock.pid;
      if (lock.held) {
        ask_for_row(s, row);
      } else {
        std::string detail;
        auto r = inspect_node(node_path(s, name), detail);
        if (r) {
          row.state = r->state;
          row.size = r->node_bytes ? r->node_bytes : row.size;
          row.files = r->files;
        } else if (r.error() == ENOENT) {
          continue; // destroyed meanwhile
        } else if (r.error() == EINVAL) {
          row.state = "invalid";
          row.error = detail;
        } else {
          row.state = "unknown";
          row.error = "cannot read: " + why(r.error());
        }
      }
    } catch (const Failure &f) {
      row.state = "unknown";
      row.error = f.message;
    }
    rows.push_back(std::move(row));
  }
}

// pkram.ko's nodes. An unmounted one is attached for reading while its lock is held.
void list_kmod(const Settings &s, const PkramDevice &dev, std::vector<ListRow> &rows) {
  auto nodes = dev.list();
  if (!nodes)
    fail("cannot list the nodes of /dev/pkram (" + why(nodes.error()) + ")",
         "see the kernel log (dmesg | grep pkram)");
  std::sort(nodes->begin(), nodes->end(),
            [](const PkramNodeInfo &a, const PkramNodeInfo &b) { return a.name < b.name; });
  for (const PkramNodeInfo &info : *nodes) {
    ListRow row;
    row.name = info.name;
    row.backend = "kmod";
    row.size = held_bytes(info);
    row.pkram = info;
    try {
      if (!valid_node_name(info.name)) {
        row.state = pkram_state(info);
        row.error = "not a valid pkramfs node name";
        rows.push_back(std::move(row));
        continue;
      }
      ctl::LockProbe lock = probe(s, info.name, ctl::LockMode::kExclusive);
      row.mounted = lock.held;
      row.pid = lock.pid;
      if (lock.held) {
        ask_for_row(s, row);
        if (row.error.empty())
          row.state = kmod_state(row.state, info);
      } else if (info.attached) {
        row.state = pkram_state(info);
        row.error =
            "attached by another process (no pkramfs-fuse of run dir " + s.run_dir + " serves it)";
      } else {
        PkramDevice reader = open_device();
        bool created = false;
        auto attached = reader.attach(info.name, false, &created);
        if (!attached && attached.error() == ENOENT)
          continue; // destroyed meanwhile
        if (!attached) {
          row.state = pkram_state(info);
          row.error = "cannot attach it: " + why(attached.error());
        } else {
          row.size = held_bytes(*attached);
          row.pkram = *attached;
          std::string detail;
          auto r = inspect_node(
              NodeBytes{reader.fd(), attached->span_frames * kFrameSize, "pkram node"}, detail);
          if (r) {
            row.state = kmod_state(r->state, *attached);
            row.files = r->files;
          } else if (r.error() == EINVAL) {
            row.state = "invalid";
            row.error = detail;
          } else {
            row.state = "unknown";
            row.error = "cannot read: " + why(r.error());
          }
        }
      }
    } catch (const Failure &f) {
      row.state = "unknown";
      row.error = f.message;
    }
    rows.push_back(std::move(row));
  }
}

// Every node of the shm dirs `dirs` and of pkram.ko, as --backend says.
int cmd_list(const Settings &s, const std::vector<std::string> &dirs) {
  std::vector<ListRow> rows;
  std::vector<std::string> places;
  int rc = 0;
  if (s.backend != Backend::kKmod) {
    for (const std::string &dir : dirs) {
      Settings one = s;
      one.shm_dir = dir;
      list_shm(one, rows);
      places.push_back(dir);
    }
  }
  if (s.backend == Backend::kKmod || (s.backend == Backend::kAuto && PkramDevice::present())) {
    try {
      auto dev = PkramDevice::open();
      if (dev) {
        list_kmod(s, *dev, rows);
        places.push_back(PkramDevice::kPath);
      } else if (s.backend == Backend::kKmod || !device_absent(dev.error())) {
        device_failed(dev.error());
      }
    } catch (const Failure &f) {
      if (s.backend == Backend::kKmod)
        throw;
      // auto: the shm nodes are still worth listing
      std::cerr << "pkramfs-ctl: " << f.message << "\n";
      rc = kExitFailed;
    }
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const ListRow &a, const ListRow &b) { return a.name < b.name; });

  if (s.json) {
    JsonWriter w;
    w.begin_object().key("nodes").begin_array();
    for (const ListRow &r : rows) {
      w.begin_object()
          .field("name", r.name)
          .field("backend", r.backend)
          .field("mounted", r.mounted);
      if (r.mounted)
        w.field("pid", static_cast<int64_t>(r.pid));
      else
        w.key("pid").null();
      w.field("state", r.state).field("node_bytes", r.size);
      if (r.files)
        w.field("files", *r.files);
      else
        w.key("files").null();
      if (r.pkram)
        w.field("pkram_state", pkram_state(*r.pkram))
            .field("attached", r.pkram->attached)
            .field("span_bytes", r.pkram->span_frames * kFrameSize)
            .field("generation", r.pkram->generation);
      if (!r.error.empty())
        w.field("error", r.error);
      w.end_object();
    }
    w.end_array().end_object();
    std::cout << w.str() << "\n";
    return rc;
  }

  if (rows.empty()) {
    std::string where;
    for (size_t i = 0; i < places.size(); ++i)
      where += (i == 0 ? "" : i + 1 == places.size() ? " or " : ", ") + places[i];
    std::cout << "no nodes in " << where << "\n";
    return rc;
  }
  std::vector<std::vector<std::string>> table = {
      {"NAME", "BACKEND", "MOUNTED", "PID", "STATE", "SIZE", "FILES"}};
  for (const ListRow &r : rows)
    table.push_back({r.name, r.backend, r.mounted ? "yes" : "no",
                     r.mounted ? std::to_string(r.pid) : "-", r.state, human_bytes(r.size),
                     r.files ? std::to_string(*r.files) : "-"});
  std::vector<size_t> width(table[0].size(), 0);
  for (auto &line : table)
    for (size_t i = 0; i < line.size(); ++i)
      width[i] = std::max(width[i], line[i].size());
  for (auto &line : table) {
    std::string out;
    for (size_t i = 0; i < line.size(); ++i) {
      out += line[i];
      if (i + 1 < line.size())
        out += std::string(width[i] - line[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  }
  for (const ListRow &r : rows)
    if (!r.error.empty())
      std::cerr << "pkramfs-ctl: node " << in_quotes(r.name) << ": " << printable(r.error) << "\n";
  return rc;
}

void print_kv(const std::string &k, const std::string &v) {
  std::cout << k << ":" << std::string(k.size() < 13 ? 13 - k.size() : 1, ' ') << v << "\n";
}

int cmd_status(const Settings &s) {
  const std::string &name = s.name;
  Located loc = locate(s, name);
  // A pkram node is attached to read it: held exclusively, so that a daemon starting meanwhile
  // is told the node is busy rather than finding it attached.
  const bool kmod = loc.kind == Backend::kKmod && loc.info;
  ctl::LockProbe lock = probe(s, name, kmod ? ctl::LockMode::kExclusive : ctl::LockMode::kShared);
  if (lock.held) {
    JsonObject r = ask(s, name, lock.pid, "status", 10);
    if (!r.at("ok").as_bool())
      daemon_refused(name, "status", r);
    if (s.json) {
      JsonWriter w;
      w.begin_object().field("name", name).field("mounted", true);
      for (const auto &[k, v] : r) {
        if (k == "ok" || k == "name")
          continue;
        w.key(k);
        write_json_value(w, v);
      }
      w.end_object();
      std::cout << w.str() << "\n";
      return 0;
    }
    const uint64_t limit = u64(r, "limit_bytes"), ilimit = u64(r, "inodes_limit");
    print_kv("node", name);
    print_kv("mounted", "yes, pid " + std::to_string(u64(r, "pid")) + ", on " +
                            printable(str(r, "mountpoint")));
    print_kv("backend", str(r, "backend"));
    print_kv("state", str(r, "state"));
    print_kv("files", std::to_string(u64(r, "files")) + " (" +
                          std::to_string(u64(r, "directories")) + " directories, " +
                          std::to_string(u64(r, "other_inodes")) + " other inodes)");
    print_kv("data", human_bytes(u64(r, "data_bytes")) +
                         (limit ? " of " + human_bytes(limit) + " limit" : ""));
    print_kv("inodes", std::to_string(u64(r, "inodes_used")) +
                           (ilimit ? " of " + std::to_string(ilimit) : " (no limit)"));
    print_kv("journal", human_bytes(u64(r, "journal_used_bytes")) + " of " +
                            human_bytes(u64(r, "journal_bytes")) + " used");
    print_kv("checkpoint", human_bytes(u64(r, "checkpoint_bytes")) + ", generation " +
                               std::to_string(u64(r, "checkpoint_generation")));
    print_kv("node size", human_bytes(u64(r, "node_bytes")));
    print_space({.limit = limit,
                 .data = u64(r, "data_bytes"),
                 .metadata = u64(r, "metadata_bytes"),
                 .free = u64(r, "free_bytes"),
                 .data_held = u64(r, "data_held_bytes"),
                 .metadata_held = u64(r, "metadata_held_bytes"),
                 .journal = u64(r, "journal_bytes"),
                 .journal_used = u64(r, "journal_used_bytes"),
                 .superblock = u64(r, "superblock_bytes"),
                 .held = u64(r, "held_bytes"),
                 .journal_use_known = true});
    return 0;
  }

  NodeSummary n;
  std::optional<PkramNodeInfo> pkram;
  if (loc.kind == Backend::kKmod) {
    if (!loc.info)
      no_such_node(s, name);
    PkramNodeInfo info;
    n = inspect_kmod(s, name, *loc.dev, info);
    loc.dev.reset(); // detaches
    n.node_bytes = held_bytes(info);
    n.held_bytes = held_bytes(info);
    pkram = info;
  } else {
    struct stat st {};
    switch (node_file(s, name, &st)) {
    case NodeFile::kMissing:
      no_such_node(s, name);
    case NodeFile::kOther:
      not_a_node_file(s, name);
    case NodeFile::kRegular:
      break;
    }
    n = inspect(s, name);
    n.held_bytes = static_cast<uint64_t>(st.st_blocks) * 512; // a sparse file: frames in use
  }
  lock.fd.reset();
  if (s.json) {
    JsonWriter w;
    w.begin_object()
        .field("name", name)
        .field("mounted", false)
        .field("backend", pkram ? "kmod" : "shm");
    write_summary_fields(w, n);
    if (pkram)
      w.field("pkram_state", pkram_state(*pkram))
          .field("span_bytes", pkram->span_frames * kFrameSize)
          .field("generation", pkram->generation);
    w.end_object();
    std::cout << w.str() << "\n";
    return 0;
  }
  print_kv("node", name);
  print_kv("mounted", "no");
  print_kv("backend", pkram ? "kmod" : "shm");
  print_kv("state", n.state);
  if (pkram)
    print_kv("pkram state", pkram_state(*pkram));
  print_kv("files", std::to_string(n.files) + " (" + std::to_string(n.directories) +
                        " directories, " + std::to_string(n.other_inodes) + " other inodes)");
  print_kv("data", human_bytes(n.data_bytes) +
                       (n.limit_bytes ? " of " + human_bytes(n.limit_bytes) + " limit" : ""));
  if (n.inodes_limit)
    print_kv("inode limit", std::to_string(n.inodes_limit));
  print_kv("journal", std::to_string(n.journal_records) + " records to replay");
  print_kv("checkpoint", human_bytes(n.checkpoint_bytes) + ", generation " +
                             std::to_string(n.checkpoint_generation));
  if (pkram)
    print_kv("node size", human_bytes(held_bytes(*pkram)) + " held (" +
                              std::to_string(pkram->populated_frames) + " frames of 2 MiB; span " +
                              std::to_string(pkram->span_frames) + ")");
  else
    print_kv("node size", human_bytes(n.node_bytes));
  print_space({.limit = n.limit_bytes,
               .data = n.data_bytes,
               .metadata = n.metadata_bytes,
               .free = n.free_bytes,
               .data_held = n.data_held_bytes,
               .metadata_held = n.metadata_held_bytes,
               .journal = n.journal_bytes,
               .superblock = n.superblock_bytes,
               .held = n.held_bytes});
  return 0;
}

// preserve and unpreserve: both need a daemon.
int cmd_preserve(const Settings &s, bool preserve) {
  const std::string &name = s.name;
  const std::string command = preserve ? "preserve" : "unpreserve";
  ctl::LockProbe lock = probe(s, name, ctl::LockMode::kShared);
  if (!lock.held) {
    if (const Located loc = locate(s, name); !exists(s, name, loc))
      no_such_node(s, name);
    fail("node " + in_quotes(name) + " is not mounted",
         preserve ? "preserve acts on a mounted node; an unmounted node keeps its tree already"
                  : "unpreserve acts on a mounted node; the next mount is writable anyway");
  }
  lock.fd.reset();
  // A preserve syncs the mount first: with much dirty data in the page cache that takes time.
  JsonObject r = ask(s, name, lock.pid, command, preserve ? 600 : 10);
  if (!r.at("ok").as_bool())
    daemon_refused(name, command, r);
  if (!preserve) {
    if (s.json)
      std::cout << JsonWriter().begin_object().field("name", name).end_object().str() << "\n";
    else
      std::cout << "node " << in_quotes(name) << " is writable again\n";
    return 0;
  }
  double ms = 0;
  if (auto it = r.find("milliseconds"); it != r.end())
    ms = it->second.as_double();
  if (s.json) {
    JsonWriter w;
    w.begin_object()
        .field("name", name)
        .field("files", u64(r, "files"))
        .field("bytes", u64(r, "bytes"))
        .field("checkpoint_bytes", u64(r, "checkpoint_bytes"))
        .field("milliseconds", ms)
        .end_object();
    std::cout << w.str() << "\n";
    return 0;
  }
  char took[32];
  std::snprintf(took, sizeof took, "%.1f ms", ms);
  std::cout << "preserved node " << in_quotes(name) << ": " << u64(r, "files") << " files, "
            << human_bytes(u64(r, "bytes")) << " of data, checkpoint "
            << human_bytes(u64(r, "checkpoint_bytes")) << ", in " << took << "\n";
  return 0;
}

// A socket left behind by a daemon that died: nobody serves it.
void remove_stale_socket(const Settings &s, const std::string &name) {
  struct stat sock {};
  if (::lstat(sock_path(s, name).c_str(), &sock) == 0 && S_ISSOCK(sock.st_mode))
    ::unlink(sock_path(s, name).c_str());
}

int destroy_kmod(const Settings &s, Located &loc) {
  const std::string &name = s.name;
  if (!loc.info)
    no_such_node(s, name);
  // Held exclusively until we are done: no daemon can start on the node meanwhile.
  ctl::LockProbe lock = probe(s, name, ctl::LockMode::kExclusive);
  if (lock.held)
    busy(s, name, lock.pid, "destroy needs it unmounted first");
  // What it holds now is what the destroy frees.
  auto info = loc.dev->stat(name);
  if (!info && info.error() == ENOENT)
    no_such_node(s, name);
  if (!info)
    fail("cannot look up pkram node " + in_quotes(name) + " (" + why(info.error()) + ")",
         "see the kernel log (dmesg | grep pkram)");
  if (auto r = loc.dev->destroy(name); !r) {
    if (r.error() == ENOENT)
      no_such_node(s, name);
    if (r.error() == EBUSY)
      attached_elsewhere(s, name, "destroy needs it detached first");
    fail("cannot destroy pkram node " + in_quotes(name) + " (" + why(r.error()) + ")",
         "see the kernel log (dmesg | grep pkram)");
  }
  remove_stale_socket(s, name);
  std::cout << "destroyed node " << in_quotes(name) << " (" << human_bytes(held_bytes(*info))
            << " freed)\n";
  return 0;
}

int cmd_destroy(const Settings &s) {
  const std::string &name = s.name;
  if (Located loc = locate(s, name); loc.kind == Backend::kKmod)
    return destroy_kmod(s, loc);
  struct stat st {};
  switch (node_file(s, name, &st)) {
  case NodeFile::kMissing:
    no_such_node(s, name);
  case NodeFile::kOther:
    not_a_node_file(s, name);
  case NodeFile::kRegular:
    break;
  }
  // Held exclusively until we are done: no daemon can start on the node meanwhile.
  ctl::LockProbe lock = probe(s, name, ctl::LockMode::kExclusive);
  if (lock.held)
    busy(s, name, lock.pid, "destroy needs it unmounted first");
  if (::unlink(node_path(s, name).c_str()) != 0) {
    if (errno == ENOENT)
      no_such_node(s, name);
    fail("cannot remove " + node_path(s, name) + " (" + why(errno) + ")",
         "check the permissions of " + s.shm_dir);
  }
  remove_stale_socket(s, name);
  std::cout << "destroyed node " << in_quotes(name) << " ("
            << human_bytes(static_cast<uint64_t>(st.st_blocks) * 512) << " freed)\n";
  return 0;
}

// The check of an unmounted pkram node, attached for reading meanwhile.
CheckReport check_kmod(const Settings &s, const std::string &name, PkramDevice &dev) {
  const AttachedNode node = attach_for_reading(s, name, dev, "check reads an unmounted node");
  auto r = check_node(node.bytes);
  if (!r)
    fail("cannot check node " + in_quotes(name) + " (" + why(r.error()) + ")",
         "see the kernel log (dmesg | grep pkram)");
  return std::move(r.value());
}

CheckReport check_shm(const Settings &s, const std::string &name) {
  switch (node_file(s, name)) {
  case NodeFile::kMissing:
    no_such_node(s, name);
  case NodeFile::kOther:
    not_a_node_file(s, name);
  case NodeFile::kRegular:
    break;
  }
  auto r = check_node(node_path(s, name));
  if (!r) {
    if (r.error() == ENOENT)
      no_such_node(s, name);
    fail("cannot check node " + in_quotes(name) + " (" + why(r.error()) + ")",
         "check " + node_path(s, name));
  }
  return std::move(r.value());
}

int cmd_check(const Settings &s) {
  const std::string &name = s.name;
  Located loc = locate(s, name);
  const bool kmod = loc.kind == Backend::kKmod && loc.info;
  ctl::LockProbe lock = probe(s, name, kmod ? ctl::LockMode::kExclusive : ctl::LockMode::kShared);
  if (lock.held)
    busy(s, name, lock.pid,
         "check reads unmounted nodes only (pkramfs-ctl status " + name +
             " reads a mounted one); unmount it first");
  if (loc.kind == Backend::kKmod && !loc.info)
    no_such_node(s, name);
  const CheckReport c =
      loc.kind == Backend::kKmod ? check_kmod(s, name, *loc.dev) : check_shm(s, name);
  loc.dev.reset(); // detaches
  lock.fd.reset();
  const bool clean = c.clean && c.problems.empty();
  if (s.json) {
    JsonWriter w;
    w.begin_object()
        .field("name", name)
        .field("backend", loc.kind == Backend::kKmod ? "kmod" : "shm")
        .field("clean", clean)
        .key("problems")
        .begin_array();
    for (const std::string &p : c.problems)
      w.value(p);
    w.end_array().key("summary").begin_object();
    write_summary_fields(w, c.summary);
    w.end_object().end_object();
    std::cout << w.str() << "\n";
    return clean ? 0 : 1;
  }
  if (clean) {
    std::cout << "node " << in_quotes(name) << " is clean: " << c.summary.files << " files, "
              << c.summary.directories << " directories, " << human_bytes(c.summary.data_bytes)
              << " of data, checkpoint generation " << c.summary.checkpoint_generation << "\n";
    return 0;
  }
  for (const std::string &p : c.problems)
    std::cout << printable(p) << "\n";
  std::cout << "node " << in_quotes(name) << ": " << c.problems.size()
            << (c.problems.size() == 1 ? " problem" : " problems") << " found\n";
  return 1;
}

// ------------------------------------------------------------------ export, import --

// Set by SIGINT/SIGTERM/SIGHUP during export and import: they stop, clean up and say so.
volatile sig_atomic_t g_interrupted = 0;

void on_interrupt(int) { g_interrupted = 1; }

void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (const int sig : {SIGINT, SIGTERM, SIGHUP})
    sigaction(sig, &sa, nullptr);
}

// "42%  123.4 MiB/s  ETA 0:07" on one line of stderr, redrawn in place at most 10 times a
// second; only on a terminal and without --quiet.
class Progress {
public:
  Progress(std::string label, bool enabled) : label_(std::move(label)), enabled_(enabled) {}
  ~Progress() { clear(); }

  void update(uint64_t done, uint64_t total) {
    if (!enabled_)
      return;
    const auto now = Clock::now();
    if (shown_ && done < total && now - last_ < std::chrono::milliseconds(100))
      return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    const double pct = total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100;
    char line[160];
    std::string eta = "--:--";
    if (rate > 0 && done > 0) {
      const auto left = static_cast<uint64_t>(static_cast<double>(total - done) / rate);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%llu:%02llu", static_cast<unsigned long long>(left / 60),
                    static_cast<unsigned long long>(left % 60));
      eta = buf;
    }
    std::snprintf(line, sizeof line, "\r%s %3.0f%%  %s of %s  %.1f MiB/s  ETA %s\033[K",
                  label_.c_str(), pct, human_bytes(done).c_str(), human_bytes(total).c_str(),
                  rate / (1 << 20), eta.c_str());
    std::fputs(line, stderr);
    std::fflush(stderr);
    shown_ = true;
  }
  void clear() {
    if (shown_) {
      std::fputs("\r\033[K", stderr);
      std::fflush(stderr);
      shown_ = false;
    }
  }
  TransferHooks hooks() {
    TransferHooks h;
    h.progress = [this](uint64_t done, uint64_t total) { update(done, total); };
    h.cancelled = [] { return g_interrupted != 0; };
    return h;
  }

private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  bool enabled_;
  bool shown_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_{};
};

bool show_progress(const Settings &s) { return !s.quiet && !s.json && ::isatty(2); }

std::string rate_text(uint64_t bytes, double seconds) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB/s", seconds > 0 ? bytes / seconds / (1 << 20) : 0.0);
  return buf;
}

std::string io_text(const TransferReport &r) {
  return std::string(r.direct ? "O_DIRECT" : "buffered") +
         (r.uring ? ", io_uring" : ", pread/pwrite");
}

std::string uuid_text(const uint8_t (&u)[16]) {
  char buf[40];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                u[15]);
  return buf;
}

std::string tree_text(const pkramfs_export_header &h) {
  return std::to_string(h.files) + " files, " + std::to_string(h.directories) + " directories, " +
         std::to_string(h.other_inodes) + " other inodes, " +
         human_bytes(h.data_blocks * kBlockSize) + " of data";
}

void write_transfer_json(JsonWriter &w, const TransferReport &r) {
  const pkramfs_export_header &h = r.header;
  w.field("uuid", uuid_text(h.uuid))
      .field("files", h.files)
      .field("directories", h.directories)
      .field("other_inodes", h.other_inodes)
      .field("data_bytes", h.data_blocks * kBlockSize)
      .field("extent_records", h.nr_extents)
      .field("checkpoint_bytes", h.checkpoint_bytes)
      .field("image_bytes", h.image_bytes)
      .field("seconds", r.seconds)
      .field("direct", r.direct)
      .field("io_uring", r.uring);
}

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
  switch (node_file(s, s.name)) {
  case NodeFile::kMissing:
    no_such_node(s, s.name);
  case NodeFile::kOther:
    not_a_node_file(s, s.name);
  case NodeFile::kRegular:
    break;
  }
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
  return export_bytes(s, NodeBytes{fd.get(), static_cast<uint64_t>(st.st_size), "node file"}, path);
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
    auto r = ctl::ask_daemon(sock_path(s, name), "unpreserve", timeout_ms(s, 10), detail);
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

int cmd_export(const Settings &s) {
  const std::string &name = s.name;
  check_new_image_file(s);
  Located loc = locate(s, name);
  const bool kmod = loc.kind == Backend::kKmod && loc.info;
  ctl::LockProbe lock = probe(s, name, kmod ? ctl::LockMode::kExclusive : ctl::LockMode::kShared);
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
  ctl::LockProbe tmp_lock = probe(s, tmp, ctl::LockMode::kExclusive);
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
    target = in_kmod   ? Backend::kKmod
             : in_shm  ? Backend::kShm
             : loc.dev ? Backend::kKmod
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
  ctl::LockProbe lock = probe(s, name, ctl::LockMode::kExclusive);
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

} // namespace

int main(int argc, char **argv) {
  Settings s;
  CLI::App app{"pkramfs-ctl: list, inspect, preserve, check, destroy, export and import pkramfs "
               "nodes",
               "pkramfs-ctl"};
  app.fallthrough(); // global options are accepted after the command too
  app.require_subcommand(1);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--shm-dir", s.shm_dir,
                 "where shm nodes live (default /dev/shm/pkramfs, or a hugetlbfs mount with 2 MiB "
                 "pages that holds the node)");
  std::string backend = "auto";
  app.add_option("--backend", backend,
                 "which nodes: kmod (pkram.ko, /dev/pkram), shm (files in --shm-dir) or auto "
                 "(default: a name pkram.ko holds is a kmod node, else an shm node; list shows "
                 "both)")
      ->check(CLI::IsMember({"auto", "kmod", "shm"}));
  app.add_option("--run-dir", s.run_dir,
                 "where daemons keep their locks and control sockets (default /run/pkramfs)");
  app.add_flag("--json", s.json,
               "print JSON instead of a table (list, status, check, export, import)");
  app.add_flag("--debug", s.debug, "log what export and import do (I/O modes) on stderr");
  app.add_option("--timeout", s.timeout_s,
                 "seconds to wait for a daemon's reply (default 10; 600 for preserve)")
      ->check(CLI::PositiveNumber);
  app.footer("Exit status: 0 done; 1 failed (check: problems found); 2 usage error (check: "
             "any error).\nMust run as root.\n");

  auto named = [&](const char *cmd, const char *help) {
    CLI::App *sub = app.add_subcommand(cmd, help);
    sub->add_option("NAME", s.name, "node name")->required();
    return sub;
  };
  app.add_subcommand("list", "every node (pkram.ko and shm dir): backend, mounted or not, pid, "
                             "state, size, files");
  named("status", "a node's state and usage (from its daemon when mounted)");
  named("preserve", "freeze a mounted node (EROFS), sync it, checkpoint it, mark it preserved");
  named("unpreserve", "make a preserved mounted node writable again");
  named("destroy", "throw a node away (refused while it is mounted)");
  named("check", "verify an unmounted node: every CRC and the tree; exit 1 if problems");
  CLI::App *exp = app.add_subcommand(
      "export", "write a node's tree and data to FILE, a self-describing image with CRCs (a "
                "mounted node is preserved, read-only, meanwhile)");
  exp->add_option("NAME", s.name, "node name")->required();
  exp->add_option("FILE", s.file, "the image to write (must not exist)")->required();
  exp->add_flag("--verify", s.verify, "read the image back and check every CRC");
  exp->add_flag("--quiet", s.quiet, "no progress bar and no summary line");
  CLI::App *imp = app.add_subcommand(
      "import", "make node NAME from an export image; every CRC is checked before the node "
                "appears (--backend picks where it goes)");
  imp->add_option("FILE", s.file, "the image to read")->required();
  imp->add_option("NAME", s.name, "node name")->required();
  imp->add_flag("--force", s.force, "replace an existing (unmounted) node NAME");
  imp->add_flag("--quiet", s.quiet, "no progress bar and no summary line");

  // CLI11 would take the next argument as the value of "--shm-dir=": refuse it here instead.
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--") && arg.ends_with("=")) {
      std::cerr << "pkramfs-ctl: option " << arg.substr(0, arg.size() - 1)
                << " needs a value; write " << arg << "VALUE\n";
      return kExitUsage;
    }
  }
  // Name the command CLI11 would only call "extra" or "required".
  static const std::set<std::string_view> kCommands = {
      "list", "status", "preserve", "unpreserve", "destroy", "check", "export", "import"};
  bool has_command = false, help = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help" || arg == "--help-all")
      help = true;
    if (arg == "--shm-dir" || arg == "--run-dir" || arg == "--timeout" || arg == "--backend") {
      ++i; // its value follows
      continue;
    }
    if (arg.starts_with("-"))
      continue;
    if (!kCommands.contains(arg)) {
      if (help)
        break;
      std::cerr << "pkramfs-ctl: unknown command '" << printable(arg)
                << "'; the commands are list, status, preserve, unpreserve, destroy, check, "
                   "export, import\n";
      return kExitUsage;
    }
    has_command = true;
    break;
  }
  if (!has_command && !help) {
    std::cerr << "pkramfs-ctl: no command given; usage: pkramfs-ctl [--backend=auto|kmod|shm] "
                 "[--shm-dir=DIR] [--run-dir=DIR] [--json] "
                 "list|status|preserve|unpreserve|destroy|check [NAME] | export NAME FILE | "
                 "import FILE NAME\n";
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp &) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError &e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::cerr << "pkramfs-ctl: " << what << "; see pkramfs-ctl --help\n";
    return kExitUsage;
  }
  s.command = app.get_subcommands().front()->get_name();
  s.backend = backend == "kmod"  ? Backend::kKmod
              : backend == "shm" ? Backend::kShm
                                 : Backend::kAuto;

  // check reserves 1 for "problems found".
  const int error_exit = s.command == "check" ? kExitUsage : kExitFailed;
  try {
    if (s.command != "list" && !valid_node_name(s.name))
      throw Failure{"invalid node name " + in_quotes(s.name) +
                        "; a node name is 1-127 bytes of [A-Za-z0-9._-], not starting with '.'",
                    kExitUsage};
    if (s.run_dir.empty())
      throw Failure{"--run-dir cannot be empty; omit it for the default", kExitUsage};
    if (::geteuid() != 0)
      fail("must run as root (nodes and control sockets belong to root)",
           "run it with sudo or as root");
    if (s.backend == Backend::kKmod && !PkramDevice::present())
      device_failed(ENOENT);
    if (s.command == "list") {
      std::vector<std::string> dirs;
      if (!s.shm_dir.empty())
        dirs.push_back(s.shm_dir);
      else
        // Every default place that holds nodes: /dev/shm/pkramfs and hugetlbfs mounts.
        for (const std::string &dir : default_node_dirs()) {
          struct stat st {};
          if (dir == kDefaultShmDir || ::stat(dir.c_str(), &st) == 0)
            dirs.push_back(dir);
        }
      return cmd_list(s, dirs);
    }
    const bool shm_dir_given = !s.shm_dir.empty();
    if (s.shm_dir.empty())
      s.shm_dir = default_node_dir(s.name, 0);
    if (s.command == "export" || s.command == "import") {
      // Messages of the I/O layer (--debug) go to stderr, like every other message.
      auto logger = spdlog::stderr_logger_mt("pkramfs-ctl");
      logger->set_pattern("pkramfs-ctl: %l: %v");
      spdlog::set_default_logger(logger);
      spdlog::set_level(s.debug ? spdlog::level::debug : spdlog::level::warn);
      catch_interrupts();
      if (s.file.empty())
        throw Failure{"the image file name cannot be empty", kExitUsage};
    }
    if (s.command == "export")
      return cmd_export(s);
    if (s.command == "import")
      return cmd_import(s, shm_dir_given);
    if (s.command == "status")
      return cmd_status(s);
    if (s.command == "preserve")
      return cmd_preserve(s, true);
    if (s.command == "unpreserve")
      return cmd_preserve(s, false);
    if (s.command == "destroy")
      return cmd_destroy(s);
    if (s.command == "check")
      return cmd_check(s);
    throw Failure{"unknown command '" + s.command + "'; see pkramfs-ctl --help", kExitUsage};
  } catch (const Failure &f) {
    std::cerr << "pkramfs-ctl: " << f.message << "\n";
    return f.code ? f.code : error_exit;
  } catch (const std::exception &e) {
    std::cerr << "pkramfs-ctl: internal error: " << e.what()
              << "; please report it with the command line\n";
    return error_exit;
  }
}
