// Output pieces that several pkramfs-ctl commands print: JSON fields of a node summary, the
// space table, "key:   value" lines.
#pragma once

#include "json.h"
#include "node/node_inspect.h"

#include <cstdint>
#include <string>

namespace pkramfs::ctl {

// Writes a reply's value as it came (pkramfs-ctl status --json of a mounted node).
void write_json_value(control::JsonWriter &w, const control::JsonValue &v);
// The fields of `n` that status and check print with --json.
void write_summary_fields(control::JsonWriter &w, const NodeSummary &n);

// A node's space by kind: what counts against size= and the frames each kind holds.
struct SpaceByKind {
  uint64_t limit = 0, data = 0, metadata = 0, free = 0;
  uint64_t data_held = 0, metadata_held = 0, journal = 0, journal_used = 0, superblock = 0;
  uint64_t held = 0;
  bool journal_use_known = false;
};
void print_space(const SpaceByKind &k);

// "key:" and `v`, aligned in a column.
void print_kv(const std::string &k, const std::string &v);

} // namespace pkramfs::ctl
