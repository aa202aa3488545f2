// pkramfs-ctl check: verify an unmounted node, every CRC and the tree.
#include "commands.h"

#include "daemon.h"
#include "failure.h"
#include "node_access.h"
#include "report.h"
#include "text.h"

#include "json.h"
#include "node/node_inspect.h"

#include <iostream>

namespace pkramfs::ctl {
using control::JsonWriter;

namespace {

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
  require_node_file(s, name);
  auto r = check_node(node_path(s, name));
  if (!r) {
    if (r.error() == ENOENT)
      no_such_node(s, name);
    fail("cannot check node " + in_quotes(name) + " (" + why(r.error()) + ")",
         "check " + node_path(s, name));
  }
  return std::move(r.value());
}

} // namespace

int cmd_check(const Settings &s) {
  const std::string &name = s.name;
  Located loc = locate(s, name);
  LockProbe lock = probe_to_read(s, name, loc);
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

} // namespace pkramfs::ctl
