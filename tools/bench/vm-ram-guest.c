/* vm-ram-guest -- the guest side of tools/bench/vm-ram, which compiles it with cc -static and
 * puts it into the guest's initramfs (its /init script runs it as PID 1).
 *
 *   vm-ram-guest [MIB [PAUSE]]   (defaults: $vmram_mib and $vmram_pause from the kernel command
 *                                 line, which the kernel hands init as environment; else 1024, 0)
 *
 * Prints "VMRAM ready uptime_s=T" as soon as it runs (T: CLOCK_BOOTTIME, the guest's time since
 * its kernel started: boot-to-ready), then maps MIB MiB of anonymous private memory and
 *   write    stores a pattern into every 8-byte word (the first touch of each page: the guest
 *            kernel's fault and page clearing, and the host's first touch of the guest RAM file)
 *   (pause)  sleeps PAUSE seconds, if asked: longer than the host's dirty expiry (30 s), a FUSE
 *            host writes the guest's dirty pages back and write-protects them meanwhile
 *   rewrite  stores a second pattern into every word (pages already present)
 *   read     reads every word back and checks the second pattern
 * printing "VMRAM write_s=T write_mbps=X" (and rewrite_, read_; MB = 10^6 bytes), then
 * "VMRAM done" or "VMRAM FAIL reason", syncs and powers the machine off (reboot(RB_POWER_OFF));
 * if that fails it exits, which as PID 1 panics the kernel, and panic=-1 with QEMU -no-reboot
 * ends QEMU too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void power_off(int status) {
  fflush(stdout);
  sync();
  if (getpid() == 1) {
    reboot(RB_POWER_OFF);
    printf("VMRAM FAIL reboot(RB_POWER_OFF): %s\n", strerror(errno));
    fflush(stdout);
  }
  exit(status);
}

/* every word gets its index mixed with a seed: a missing or misplaced page shows */
static inline uint64_t pattern(uint64_t i, uint64_t seed) { return (i * 0x9e3779b97f4a7c15ull) ^ seed; }

static void fill(uint64_t *p, size_t words, uint64_t seed) {
  for (size_t i = 0; i < words; i++)
    p[i] = pattern(i, seed);
}

static size_t check(const uint64_t *p, size_t words, uint64_t seed) {
  size_t bad = 0;
  for (size_t i = 0; i < words; i++)
    bad += p[i] != pattern(i, seed);
  return bad;
}

static void report(const char *what, double t0, size_t bytes) {
  double s = clock_s(CLOCK_MONOTONIC) - t0;
  printf("VMRAM %s_s=%.3f %s_mbps=%.1f\n", what, s, what, s > 0 ? (double)bytes / s / 1e6 : 0.0);
  fflush(stdout);
}

int main(int argc, char **argv) {
  double up = clock_s(CLOCK_BOOTTIME);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("VMRAM ready uptime_s=%.3f\n", up);
  fflush(stdout);

  const char *arg = argc > 1 ? argv[1] : getenv("vmram_mib");
  long mib = arg ? strtol(arg, NULL, 10) : 1024;
  const char *parg = argc > 2 ? argv[2] : getenv("vmram_pause");
  long pause = parg ? strtol(parg, NULL, 10) : 0;
  if (mib <= 0) {
    printf("VMRAM FAIL bad size '%s'\n", arg);
    power_off(1);
  }
  size_t bytes = (size_t)mib << 20, words = bytes / sizeof(uint64_t);
  uint64_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    printf("VMRAM FAIL mmap %ld MiB: %s\n", mib, strerror(errno));
    power_off(1);
  }
  printf("VMRAM size_mib=%ld\n", mib);

  double t0 = clock_s(CLOCK_MONOTONIC);
  fill(p, words, 0x5555aaaa5555aaaaull);
  report("write", t0, bytes);

  if (pause > 0) {
    printf("VMRAM pause_s=%ld\n", pause);
    fflush(stdout);
    sleep((unsigned)pause);
  }

  t0 = clock_s(CLOCK_MONOTONIC);
  fill(p, words, 0x0123456789abcdefull);
  report("rewrite", t0, bytes);

  t0 = clock_s(CLOCK_MONOTONIC);
  size_t bad = check(p, words, 0x0123456789abcdefull);
  report("read", t0, bytes);

  if (bad) {
    printf("VMRAM FAIL %zu of %zu words differ\n", bad, words);
    power_off(1);
  }
  printf("VMRAM done\n");
  power_off(0);
  return 0;
}
