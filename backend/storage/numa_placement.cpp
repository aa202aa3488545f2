#include "storage/numa_placement.h"

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <numa.h>
#include <numaif.h>
#include <sched.h>

namespace pkramfs {
namespace {

struct BitmaskFree {
  void operator()(bitmask *b) const { numa_bitmask_free(b); }
};
using Bitmask = std::unique_ptr<bitmask, BitmaskFree>;

bool has_bit(const bitmask *b, int n) {
  return n >= 0 && static_cast<unsigned long>(n) < b->size && numa_bitmask_isbitset(b, n);
}

std::vector<int> bits_of(const bitmask *b) {
  std::vector<int> out;
  for (unsigned long i = 0; i < b->size; ++i)
    if (numa_bitmask_isbitset(b, static_cast<unsigned>(i)))
      out.push_back(static_cast<int>(i));
  return out;
}

// Nodes this process may allocate memory on (nodes with memory, within its cpuset).
std::vector<int> memory_nodes() { return bits_of(numa_all_nodes_ptr); }

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set))
      out.push_back(c);
  return out;
}

// The CPUs of `node` this process may run on.
std::vector<int> node_cpus(int node) {
  Bitmask cpus(numa_allocate_cpumask());
  if (!cpus || numa_node_to_cpus(node, cpus.get()) != 0)
    return {};
  std::vector<int> out;
  for (int c : allowed_cpus())
    if (has_bit(cpus.get(), c))
      out.push_back(c);
  return out;
}

std::string numa_name(const NumaRequest &req) {
  switch (req.mode) {
  case NumaRequest::Mode::kAuto:
    return "auto";
  case NumaRequest::Mode::kInterleave:
    return "interleave";
  default:
    return std::to_string(req.node);
  }
}

// The node most of the allowed CPUs belong to, among nodes with memory; the lowest on a tie.
int node_of_most_cpus(const std::vector<int> &mem_nodes) {
  std::map<int, int> count;
  for (int c : allowed_cpus()) {
    const int n = numa_node_of_cpu(c);
    if (std::find(mem_nodes.begin(), mem_nodes.end(), n) != mem_nodes.end())
      ++count[n];
  }
  int best = mem_nodes.front(), most = 0;
  for (auto [n, k] : count)
    if (k > most) {
      best = n;
      most = k;
    }
  return best;
}

// mbind(2)/set_mempolicy(2) arguments for a placement.
struct Policy {
  int mode = MPOL_DEFAULT;
  Bitmask nodes;
};

Policy policy_of(const Placement &p, bool strict) {
  Policy out;
  out.nodes.reset(numa_allocate_nodemask());
  switch (p.kind) {
  case Placement::Kind::kNone:
    break;
  case Placement::Kind::kBind:
  case Placement::Kind::kPreferred:
    out.mode = p.kind == Placement::Kind::kBind && strict ? MPOL_BIND : MPOL_PREFERRED;
    numa_bitmask_setbit(out.nodes.get(), static_cast<unsigned>(p.node));
    break;
  case Placement::Kind::kInterleave:
    out.mode = MPOL_INTERLEAVE;
    for (int n : p.nodes)
      numa_bitmask_setbit(out.nodes.get(), static_cast<unsigned>(n));
    break;
  }
  return out;
}

} // namespace

bool parse_numa(const std::string &text, NumaRequest &out) {
  if (text == "auto") {
    out = {NumaRequest::Mode::kAuto, -1};
    return true;
  }
  if (text == "interleave") {
    out = {NumaRequest::Mode::kInterleave, -1};
    return true;
  }
  if (text.empty() || text.size() > 4 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  out = {NumaRequest::Mode::kNode, std::stoi(text)};
  return true;
}

std::string format_list(const std::vector<int> &v) {
  std::string out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1)
      ++j;
    out += (out.empty() ? "" : ",") + std::to_string(v[i]);
    if (j > i)
      out += "-" + std::to_string(v[j]);
    i = j + 1;
  }
  return out;
}

std::string Placement::describe() const {
  switch (kind) {
  case Kind::kBind:
    return "bind:" + std::to_string(node);
  case Kind::kPreferred:
    return "prefer:" + std::to_string(node);
  case Kind::kInterleave:
    return "interleave:" + format_list(nodes);
  default:
    return "default";
  }
}

Result<NumaPlan> plan_memory_numa(const NumaRequest &req, std::string &error) {
  NumaPlan plan;
  if (req.mode == NumaRequest::Mode::kNone)
    return plan;
  const std::string what = "--numa=" + numa_name(req);
  if (numa_available() < 0) {
    error = what + ": this kernel has no NUMA support (CONFIG_NUMA); remove --numa";
    return Errno{ENOSYS};
  }
  const std::vector<int> mem = memory_nodes();
  if (mem.empty()) {
    error = what + ": this process may not allocate memory on any NUMA node; check its cpuset";
    return Errno{ENODEV};
  }
  const std::string choices =
      " (nodes with memory: " + format_list(mem) + "); give one of those, auto or interleave";
  switch (req.mode) {
  case NumaRequest::Mode::kNode:
    if (!has_bit(numa_nodes_ptr, req.node)) {
      error = what + ": NUMA node " + std::to_string(req.node) + " does not exist" + choices;
      return Errno{ENODEV};
    }
    if (std::find(mem.begin(), mem.end(), req.node) == mem.end()) {
      error = what + ": NUMA node " + std::to_string(req.node) +
              " has no memory this process may use" + choices;
      return Errno{ENODEV};
    }
    plan.placement = {Placement::Kind::kBind, req.node, {}};
    break;
  case NumaRequest::Mode::kInterleave:
    plan.placement = {Placement::Kind::kInterleave, -1, mem};
    break;
  default: {
    const int node = node_of_most_cpus(mem);
    plan.placement = {Placement::Kind::kPreferred, node, {}};
    plan.cpus = node_cpus(node);
    break;
  }
  }
  return plan;
}

Result<NumaPlan> plan_region_numa(const NumaRequest &req, const std::vector<RegionNumaNode> &region,
                                  std::string &error) {
  NumaPlan plan;
  if (req.mode == NumaRequest::Mode::kNone)
    return plan;
  const std::string what = "--numa=" + numa_name(req);
  // pkram.ko puts every frame on node 0 without NUMA: refuse the option as for anon and shm.
  if (numa_available() < 0) {
    error = what + ": this kernel has no NUMA support (CONFIG_NUMA); remove --numa";
    return Errno{ENOSYS};
  }
  std::vector<int> nodes;
  for (const RegionNumaNode &r : region)
    if (r.data_frames)
      nodes.push_back(r.node);
  if (nodes.empty()) {
    error = what + ": pkram.ko reports no NUMA node for its region; remove --numa";
    return Errno{ENODEV};
  }
  switch (req.mode) {
  case NumaRequest::Mode::kNode:
    if (std::find(nodes.begin(), nodes.end(), req.node) == nodes.end()) {
      error = what + ": pkram.ko's region has no frames on NUMA node " + std::to_string(req.node) +
              " (it spans node" + (nodes.size() > 1 ? "s " : " ") + format_list(nodes) +
              "); give one of those, auto or interleave, or reserve the region on node " +
              std::to_string(req.node);
      return Errno{ENODEV};
    }
    plan.placement = {Placement::Kind::kBind, req.node, {}};
    break;
  case NumaRequest::Mode::kInterleave:
    plan.placement = {Placement::Kind::kInterleave, -1, nodes};
    break;
  default: {
    const auto most = std::max_element(region.begin(), region.end(),
                                       [](const RegionNumaNode &a, const RegionNumaNode &b) {
                                         return a.data_frames < b.data_frames;
                                       });
    plan.placement = {Placement::Kind::kPreferred, most->node, {}};
    plan.cpus = node_cpus(most->node);
    break;
  }
  }
  return plan;
}

Result<void> bind_memory(const Placement &p, void *addr, size_t len) {
  if (p.kind == Placement::Kind::kNone)
    return {};
  const Policy pol = policy_of(p, true);
  // maxnode counts one more than the bits, as libnuma passes it (the kernel drops the last).
  if (mbind(addr, len, pol.mode, pol.nodes->maskp, pol.nodes->size + 1, 0) != 0)
    return Errno{errno};
  return {};
}

Result<void> set_thread_memory_policy(const Placement &p) {
  if (p.kind == Placement::Kind::kNone)
    return {};
  const Policy pol = policy_of(p, false);
  if (set_mempolicy(pol.mode, pol.nodes->maskp, pol.nodes->size + 1) != 0)
    return Errno{errno};
  return {};
}

Result<void> pin_thread(const std::vector<int> &cpus) {
  if (cpus.empty())
    return {};
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus)
    if (c >= 0 && c < CPU_SETSIZE)
      CPU_SET(c, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0)
    return Errno{errno};
  return {};
}

} // namespace pkramfs
