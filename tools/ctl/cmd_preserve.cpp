// pkramfs-ctl preserve and unpreserve: both ask a mounted node's daemon.
#include "commands.h"

#include "daemon.h"
#include "failure.h"
#include "node_access.h"
#include "text.h"

#include "json.h"

#include <cstdio>
#include <iostream>

namespace pkramfs::ctl {
using control::JsonObject;
using control::JsonWriter;

int cmd_preserve(const Settings &s, bool preserve) {
  const std::string &name = s.name;
  const std::string command = preserve ? "preserve" : "unpreserve";
  LockProbe lock = probe(s, name, LockMode::kShared);
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

} // namespace pkramfs::ctl
