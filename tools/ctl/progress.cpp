// Progress of export and import, and their interruption (progress.h).
#include "progress.h"

#include "text.h"

#include <cstdio>
#include <unistd.h>

namespace pkramfs::ctl {

volatile sig_atomic_t g_interrupted = 0;

namespace {
void on_interrupt(int) { g_interrupted = 1; }
} // namespace

void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (const int sig : {SIGINT, SIGTERM, SIGHUP})
    sigaction(sig, &sa, nullptr);
}

void Progress::update(uint64_t done, uint64_t total) {
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
void Progress::clear() {
  if (shown_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    shown_ = false;
  }
}
TransferHooks Progress::hooks() {
  TransferHooks h;
  h.progress = [this](uint64_t done, uint64_t total) { update(done, total); };
  h.cancelled = [] { return g_interrupted != 0; };
  return h;
}

bool show_progress(const Settings &s) { return !s.quiet && !s.json && ::isatty(2); }

} // namespace pkramfs::ctl
