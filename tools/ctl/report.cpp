// pkramfs-ctl's output pieces shared by its commands (report.h).
#include "report.h"

#include "text.h"

#include <algorithm>
#include <iostream>

namespace pkramfs::ctl {
using control::JsonWriter;

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

void print_kv(const std::string &k, const std::string &v) {
  std::cout << k << ":" << std::string(k.size() < 13 ? 13 - k.size() : 1, ' ') << v << "\n";
}

} // namespace pkramfs::ctl
