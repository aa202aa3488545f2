// pkramfs-ctl list: every node of the shm dirs and of pkram.ko.
#include "commands.h"

#include "daemon.h"
#include "failure.h"
#include "node_access.h"
#include "text.h"

#include "json.h"
#include "storage/node_dirs.h"
#include "node/node_inspect.h"
#include "util/parse.h"

#include <algorithm>
#include <cerrno>
#include <dirent.h>
#include <iostream>
#include <sys/stat.h>

namespace pkramfs::ctl {
using control::JsonWriter;

namespace {

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

// The row of an unmounted node inspect_node() could not read (`err`, `detail` from it).
void mark_unreadable(ListRow &row, int err, const std::string &detail) {
  row.state = err == EINVAL ? "invalid" : "unknown";
  row.error = err == EINVAL ? detail : "cannot read: " + why(err);
}

// A mounted node's row, from its daemon.
void ask_for_row(const Settings &s, ListRow &row) {
  std::string detail;
  auto r = ask_daemon(sock_path(s, row.name), "status", timeout_ms(s, 2), detail);
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
      LockProbe lock = probe(s, name, LockMode::kShared);
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
        } else {
          mark_unreadable(row, r.error(), detail);
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
      LockProbe lock = probe(s, info.name, LockMode::kExclusive);
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
          } else {
            mark_unreadable(row, r.error(), detail);
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

} // namespace

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
      } else if (s.backend == Backend::kKmod || !PkramDevice::absent(dev.error())) {
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

} // namespace pkramfs::ctl
