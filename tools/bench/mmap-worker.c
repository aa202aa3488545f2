/* mmap-worker -- the timed part of tools/bench/mmap-workloads, which compiles it with cc.
 *
 *   mmap-worker shm-cache FILE PROCS SECONDS [warm]   PROCS processes map FILE MAP_SHARED and
 *       do read-modify-write of random 8 KiB blocks for SECONDS; prints "ops_per_s N". With
 *       "warm", each process first writes every page of its mapping once, before the clock
 *       starts (a cache that has run for a while: no first-touch faults in the timed part).
 *   mmap-worker first-touch FILE MIB           creates FILE, ftruncate to MIB, maps it shared
 *       and writes one byte per 4 KiB page; prints "touch_s T" and "msync_s T" (the msync(MS_SYNC)
 *       after it, which on FUSE writes every page back through the daemon).
 *   mmap-worker mem FILE MIB                   creates FILE, writes MIB through a shared mapping,
 *       msync(MS_SYNC), prints "resident_pages N" (mincore: the mapping's pages in memory) and
 *       "ready", and keeps the mapping until stdin closes.
 * Errors: one line on stderr, exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define BLOCK 8192u

static void die(const char *what, const char *path) {
  fprintf(stderr, "mmap-worker: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static unsigned char *map_file(const char *path, int flags, size_t *size, size_t want) {
  int fd = open(path, flags, 0644);
  if (fd < 0)
    die("cannot open", path);
  if (want && ftruncate(fd, (off_t)want) != 0)
    die("cannot ftruncate", path);
  struct stat st;
  if (fstat(fd, &st) != 0)
    die("cannot stat", path);
  *size = (size_t)st.st_size;
  void *p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    die("cannot mmap", path);
  close(fd);
  return p;
}

static uint64_t xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* One process of shm-cache: read a random block into a private buffer, change it, write it
 * back (a buffer pool's page update); ops per second written to `out`. */
static void shm_cache_process(const char *path, double seconds, int warm, int out, int ready,
                              int go) {
  size_t size;
  unsigned char *p = map_file(path, O_RDWR, &size, 0);
  const uint64_t blocks = size / BLOCK;
  if (blocks == 0) {
    fprintf(stderr, "mmap-worker: %s is smaller than one 8 KiB block\n", path);
    exit(1);
  }
  uint64_t seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;
  unsigned char buf[BLOCK];
  if (warm)
    for (size_t off = 0; off < size; off += PAGE)
      ((volatile unsigned char *)p)[off] = p[off];
  char c = 'r';
  if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1) /* all processes start together */
    exit(1);
  const double start = now(), end = start + seconds;
  double t = start;
  uint64_t ops = 0;
  while (t < end) {
    for (int i = 0; i < 64; i++) {
      unsigned char *b = p + (xorshift(&seed) % blocks) * BLOCK;
      memcpy(buf, b, BLOCK);
      for (unsigned off = 0; off < BLOCK; off += 512)
        buf[off]++;
      memcpy(b, buf, BLOCK);
    }
    ops += 64;
    t = now();
  }
  const double rate = (double)ops / (t - start);
  if (write(out, &rate, sizeof rate) != sizeof rate)
    exit(1);
  exit(0);
}

static int shm_cache(const char *path, int procs, double seconds, int warm) {
  int res[2], ready[2], go[2];
  if (pipe(res) != 0 || pipe(ready) != 0 || pipe(go) != 0)
    die("cannot create a pipe for", path);
  for (int i = 0; i < procs; i++) {
    pid_t pid = fork();
    if (pid < 0)
      die("cannot fork for", path);
    if (pid == 0) {
      close(res[0]);
      close(ready[0]);
      close(go[1]);
      shm_cache_process(path, seconds, warm, res[1], ready[1], go[0]);
    }
  }
  close(res[1]);
  close(ready[1]);
  close(go[0]);
  char c;
  for (int i = 0; i < procs; i++) /* every process has mapped the file (and warmed it) */
    if (read(ready[0], &c, 1) != 1)
      break;
  for (int i = 0; i < procs; i++)
    if (write(go[1], "g", 1) != 1)
      break; /* a process failed: reported below */
  double total = 0, rate;
  int got = 0;
  while (read(res[0], &rate, sizeof rate) == sizeof rate) {
    total += rate;
    got++;
  }
  int failed = 0, status;
  while (wait(&status) > 0)
    failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  if (failed || got != procs) {
    fprintf(stderr, "mmap-worker: %d of %d shm-cache processes on %s failed\n", procs - got, procs,
            path);
    return 1;
  }
  printf("ops_per_s %.0f\n", total);
  return 0;
}

static int first_touch(const char *path, size_t mib) {
  size_t size;
  const double t0 = now();
  unsigned char *p = map_file(path, O_RDWR | O_CREAT | O_EXCL, &size, mib << 20);
  for (size_t off = 0; off < size; off += PAGE)
    p[off] = 1;
  const double t1 = now();
  if (msync(p, size, MS_SYNC) != 0)
    die("cannot msync", path);
  const double t2 = now();
  munmap(p, size);
  printf("touch_s %.6f\nmsync_s %.6f\n", t1 - t0, t2 - t1);
  return 0;
}

static int mem(const char *path, size_t mib) {
  size_t size;
  unsigned char *p = map_file(path, O_RDWR | O_CREAT | O_EXCL, &size, mib << 20);
  for (size_t off = 0; off < size; off += 64)
    p[off] = (unsigned char)(off >> 6 | 1);
  if (msync(p, size, MS_SYNC) != 0)
    die("cannot msync", path);
  unsigned char *vec = malloc(size / PAGE + 1);
  if (!vec || mincore(p, size, vec) != 0)
    die("cannot mincore", path);
  size_t resident = 0;
  for (size_t i = 0; i < size / PAGE; i++)
    resident += vec[i] & 1;
  free(vec);
  printf("resident_pages %zu\nready\n", resident);
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  munmap(p, size);
  return 0;
}

int main(int argc, char **argv) {
  if ((argc == 5 || (argc == 6 && strcmp(argv[5], "warm") == 0)) && strcmp(argv[1], "shm-cache") == 0)
    return shm_cache(argv[2], atoi(argv[3]), atof(argv[4]), argc == 6);
  if (argc == 4 && strcmp(argv[1], "first-touch") == 0)
    return first_touch(argv[2], strtoull(argv[3], NULL, 10));
  if (argc == 4 && strcmp(argv[1], "mem") == 0)
    return mem(argv[2], strtoull(argv[3], NULL, 10));
  fprintf(stderr, "usage: mmap-worker shm-cache FILE PROCS SECONDS [warm] | first-touch FILE MIB | "
                  "mem FILE MIB\n");
  return 2;
}
