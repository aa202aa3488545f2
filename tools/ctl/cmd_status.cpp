// pkramfs-ctl status: a node's state and usage, from its daemon when mounted.
#include "commands.h"

#include "daemon.h"
#include "failure.h"
#include "node_access.h"
#include "report.h"
#include "text.h"

#include "json.h"

#include <cstdio>
#include <iostream>
#include <sys/stat.h>

namespace pkramfs::ctl {
using control::JsonObject;
using control::JsonWriter;

int cmd_status(const Settings &s) {
  const std::string &name = s.name;
  Located loc = locate(s, name);
  LockProbe lock = probe_to_read(s, name, loc);
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
    if (const uint64_t holder = u64(r, "holder_pid")) {
      std::string serving = "pid " + std::to_string(u64(r, "serving_pid")) + " (holder pid " +
                            std::to_string(holder) + "), " + std::to_string(u64(r, "restarts")) +
                            " restarts";
      if (const std::string cause = str(r, "last_restart_cause"); !cause.empty()) {
        char took[48] = "";
        if (auto it = r.find("last_takeover_ms"); it != r.end() && it->second.as_double() >= 0)
          std::snprintf(took, sizeof took, ", took over in %.1f ms", it->second.as_double());
        serving += "; last: " + printable(cause) + took;
      }
      print_kv("serving", serving);
    }
    print_kv("backend", str(r, "backend"));
    print_kv("state", str(r, "state"));
    print_kv("files", std::to_string(u64(r, "files")) + " (" +
                          std::to_string(u64(r, "directories")) + " directories, " +
                          std::to_string(u64(r, "other_inodes")) + " other inodes)");
    print_kv("data", human_bytes(u64(r, "data_bytes")) +
                         (limit ? " of " + human_bytes(limit) + " limit" : ""));
    const uint64_t unlinked = u64(r, "unlinked_inodes");
    print_kv("inodes", std::to_string(u64(r, "inodes_used")) +
                           (ilimit ? " of " + std::to_string(ilimit) : " (no limit)") +
                           (unlinked ? ", " + std::to_string(unlinked) +
                                           " unlinked and still open or referenced"
                                     : ""));
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
    require_node_file(s, name, &st);
    n = inspect(s, name);
    // A sparse file: frames in use; and its file objects' pages.
    n.held_bytes = static_cast<uint64_t>(st.st_blocks) * 512 + n.object_bytes;
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

} // namespace pkramfs::ctl
