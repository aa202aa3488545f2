// Progress of export and import on a terminal, and their interruption by SIGINT/SIGTERM/SIGHUP
// (they stop, clean up and say so).
#pragma once

#include "settings.h"

#include "export/node_export.h"

#include <chrono>
#include <csignal>
#include <cstdint>
#include <string>

namespace pkramfs::ctl {

// Set by SIGINT/SIGTERM/SIGHUP once catch_interrupts() ran.
extern volatile sig_atomic_t g_interrupted;
void catch_interrupts();

// "42%  123.4 MiB/s  ETA 0:07" on one line of stderr, redrawn in place at most 10 times a
// second; only on a terminal and without --quiet.
class Progress {
public:
  Progress(std::string label, bool enabled) : label_(std::move(label)), enabled_(enabled) {}
  ~Progress() { clear(); }
  Progress(const Progress &) = delete;
  Progress &operator=(const Progress &) = delete;

  void update(uint64_t done, uint64_t total);
  void clear();
  // Hooks for export_node/import_image: progress, and cancelled once interrupted.
  TransferHooks hooks();

private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  bool enabled_;
  bool shown_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_{};
};

// Whether to show progress: on a terminal, without --quiet or --json.
bool show_progress(const Settings &s);

} // namespace pkramfs::ctl
