#include "util/fault.h"

#include <array>
#include <atomic>
#include <charconv>
#include <csignal>
#include <new>

namespace pkramfs::fault {
namespace {

struct PointInfo {
  const char *name;
  const char *what;
};

constexpr std::array<PointInfo, static_cast<size_t>(Point::kCount)> kPoints{{
    {"arena", "the Nth allocation of data blocks fails with ENOSPC"},
    {"frame", "the Nth new frame for data blocks cannot be had (ENOSPC)"},
    {"heap", "the Nth heap allocation of an operation throws std::bad_alloc (ENOMEM)"},
    {"journal-before-header", "die after the Nth journal record's payload, before its header"},
    {"journal-torn", "die after half of the Nth journal record's header is written"},
    {"checkpoint-written", "die after the Nth checkpoint image is written, before the switch"},
    {"checkpoint-torn", "die after half of the Nth checkpoint's switching superblock is written"},
    {"checkpoint-switched", "die after the Nth checkpoint's superblock switch"},
    {"preserve-synced", "die in the Nth preserve after syncfs, before refusing mutations"},
    {"preserve-frozen", "die in the Nth preserve after refusing mutations, before the checkpoint"},
    {"preserve-checkpointed", "die in the Nth preserve after the checkpoint, before marking"},
    {"preserve-marked", "die in the Nth preserve after marking the node, before the reply"},
}};

struct Counter {
  std::atomic<uint64_t> armed{0}; // 0: never fires
  std::atomic<uint64_t> hits{0};
};
std::array<Counter, static_cast<size_t>(Point::kCount)> counters;

Counter &counter(Point p) { return counters[static_cast<size_t>(p)]; }

} // namespace

bool hit(Point p) {
  Counter &c = counter(p);
  const uint64_t n = c.hits.fetch_add(1, std::memory_order_relaxed) + 1;
  const uint64_t armed = c.armed.load(std::memory_order_relaxed);
  return armed != 0 && n == armed;
}

void crash_point(Point p) {
  if (hit(p))
    raise(SIGKILL);
}

void heap() {
  if (hit(Point::kHeap))
    throw std::bad_alloc();
}

void arm(Point p, uint64_t nth) {
  Counter &c = counter(p);
  c.hits.store(0);
  c.armed.store(nth);
}

void disarm_all() {
  for (Counter &c : counters) {
    c.armed.store(0);
    c.hits.store(0);
  }
}

uint64_t hits(Point p) { return counter(p).hits.load(); }

bool configure(std::string_view spec, std::string &error) {
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    const std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
    const size_t colon = item.rfind(':');
    const std::string_view name = item.substr(0, colon);
    uint64_t nth = 0;
    const char *num = colon == std::string_view::npos ? nullptr : item.data() + colon + 1;
    const char *end = item.data() + item.size();
    if (!num || std::from_chars(num, end, nth).ptr != end || nth == 0) {
      error = "fault point '" + std::string(item) + "': write POINT:N with N >= 1";
      return false;
    }
    size_t i = 0;
    while (i < kPoints.size() && name != kPoints[i].name)
      ++i;
    if (i == kPoints.size()) {
      error = "unknown fault point '" + std::string(name) + "'; the points:\n" + describe_points();
      return false;
    }
    arm(static_cast<Point>(i), nth);
  }
  return true;
}

std::string report() {
  std::string s;
  for (size_t i = 0; i < kPoints.size(); ++i)
    if (const uint64_t armed = counters[i].armed.load())
      s += std::string(kPoints[i].name) + ":" + std::to_string(armed) +
           " passes=" + std::to_string(counters[i].hits.load()) + "\n";
  return s;
}

std::string describe_points() {
  std::string s;
  for (const PointInfo &p : kPoints)
    s += std::string(p.name) + ": " + p.what + "\n";
  return s;
}

} // namespace pkramfs::fault
