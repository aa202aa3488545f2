// pkramfs-fsx: an fsx-style file exerciser. One file is driven through a random sequence of
// reads, writes, truncates, fallocates (plain, KEEP_SIZE, PUNCH_HOLE), mmap reads and writes
// (MAP_SHARED + msync), copy_file_range (from a second file and within the file), SEEK_DATA /
// SEEK_HOLE, fsync/fdatasync and close+reopen, while an in-memory model tracks what the file must
// hold. Every read is compared with the model, the size is checked (fstat) after every op, and the
// whole file is compared every --check-every ops and at the end.
//
//   pkramfs-fsx [options] FILE
//
//   --seed N             random seed (default: from the clock; always printed)
//   --ops N              number of operations (default 10000)
//   --max-size N         largest file size (default 256k; k/m suffixes)
//   --max-op N           largest single read/write/copy/mmap length (default 64k)
//   --check-every N      compare the whole file every N ops (default 1000, 0: only at the end)
//   --shared-mmap-errno E  MAP_SHARED is expected to fail with errno E (name or number, e.g.
//                        ENODEV on a FOPEN_DIRECT_IO file): every mmap write checks exactly that
//                        and changes nothing; mmap reads use MAP_PRIVATE instead
//   --no-mmap --no-fallocate --no-punch --no-copy --no-seek --no-reopen   leave an op kind out
//   --save PATH          after a clean run, write the model (the expected final bytes) to PATH
//   --log PATH           write the complete op log to PATH (always on failure, at exit otherwise)
//   --log-tail N         ops printed on failure (default 20)
//   --verbose            print every op as it runs
//   --stats              print the time spent in each op kind at the end
//   --self-test-corrupt  flip one byte of the model half-way through (and again whenever later
//                        ops overwrite it): the run must then fail with a MISMATCH, which proves
//                        that the checks see a wrong byte
//
// The op sequence depends only on the seed and the options (offsets are drawn from the model's
// size, never from a result), so "--seed S" with the same options replays a failure exactly. The
// copy source is FILE.src, created (random bytes, --max-size/2 long) at start.
// Exit status: 0 all checks passed, 1 a check failed, 2 usage or set-up error.

#include "splitmix64.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using Rng = pkramfs::tools::SplitMix64;

enum Kind {
  kRead,
  kWrite,
  kMapRead,
  kMapWrite,
  kTruncate,
  kFalloc,
  kFallocKeep,
  kPunch,
  kCopy,
  kCopySelf,
  kSeekData,
  kSeekHole,
  kFsync,
  kFdatasync,
  kReopen,
  kKinds
};

struct KindInfo {
  const char *name;
  unsigned weight;
};
constexpr KindInfo kKindInfo[kKinds] = {
    {"read", 18},       {"write", 20},     {"mapread", 8}, {"mapwrite", 8},  {"truncate", 6},
    {"falloc", 4},      {"falloc_keep", 3}, {"punch", 6},  {"copy", 6},      {"copy_self", 3},
    {"seek_data", 3},   {"seek_hole", 3},  {"fsync", 2},   {"fdatasync", 2}, {"reopen", 2},
};

struct Options {
  uint64_t seed = 0;
  bool seed_given = false;
  uint64_t ops = 10000;
  int64_t max_size = 256 * 1024;
  int64_t max_op = 64 * 1024;
  uint64_t check_every = 1000;
  int shared_mmap_errno = 0; // 0: MAP_SHARED works
  bool no_mmap = false, no_falloc = false, no_punch = false, no_copy = false, no_seek = false,
       no_reopen = false;
  std::string save, log;
  int log_tail = 20;
  bool verbose = false;
  bool stats = false;
  bool self_test_corrupt = false;
  std::string file;
};

// One executed op, as logged.
struct LogEntry {
  uint64_t n;
  Kind kind;
  int64_t off, len, off2; // off2: copy source offset
  int64_t size_before, size_after;
  long rc;
  int err;
  const char *note; // static string or nullptr
};

Options opt;
std::vector<uint8_t> model; // expected file contents; size = expected file size
std::vector<uint8_t> src_model;
std::vector<LogEntry> oplog;
std::vector<std::string> cmdline;
int fd = -1, src_fd = -1;
uint64_t opnum = 0;
long pagesize = 4096;
uint64_t counts[kKinds] = {};
uint64_t skipped_counts[kKinds] = {};
double seconds_by_kind[kKinds] = {};
// --self-test-corrupt: the model offset flipped on purpose, -1 none.
int64_t corrupt_off = -1;

sigjmp_buf fault_jmp;
volatile sig_atomic_t fault_armed = 0;
volatile sig_atomic_t fault_sig = 0;

void on_fault(int sig) {
  if (!fault_armed) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  fault_sig = sig;
  siglongjmp(fault_jmp, 1);
}

const char *errname(int e) {
  const char *n = strerrorname_np(e);
  return n ? n : "E?";
}

int errno_from_name(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s && !*end)
    return static_cast<int>(v);
  for (int e = 1; e < 200; ++e)
    if (const char *n = strerrorname_np(e); n && strcmp(n, s) == 0)
      return e;
  return -1;
}

std::string describe(const LogEntry &e) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "%7" PRIu64 " %-11s", e.n, kKindInfo[e.kind].name);
  auto add = [&](const char *f, auto... a) {
    if (n < static_cast<int>(sizeof buf))
      n += snprintf(buf + n, sizeof buf - static_cast<size_t>(n), f, a...);
  };
  switch (e.kind) {
  case kCopy:
  case kCopySelf:
    add(" 0x%" PRIx64 " thru 0x%" PRIx64 " (0x%" PRIx64 " bytes) from %s 0x%" PRIx64,
        static_cast<uint64_t>(e.off), static_cast<uint64_t>(e.off + e.len),
        static_cast<uint64_t>(e.len), e.kind == kCopy ? "src" : "self",
        static_cast<uint64_t>(e.off2));
    break;
  case kTruncate:
    add(" to 0x%" PRIx64, static_cast<uint64_t>(e.off));
    break;
  case kSeekData:
  case kSeekHole:
    add(" from 0x%" PRIx64, static_cast<uint64_t>(e.off));
    break;
  case kFsync:
  case kFdatasync:
  case kReopen:
    break;
  default:
    add(" 0x%" PRIx64 " thru 0x%" PRIx64 " (0x%" PRIx64 " bytes)", static_cast<uint64_t>(e.off),
        static_cast<uint64_t>(e.off + e.len), static_cast<uint64_t>(e.len));
  }
  add("  size 0x%" PRIx64 "->0x%" PRIx64, static_cast<uint64_t>(e.size_before),
      static_cast<uint64_t>(e.size_after));
  if (e.rc < 0)
    add("  = -1 %s", errname(e.err));
  else if (e.kind == kSeekData || e.kind == kSeekHole)
    add("  = 0x%lx", e.rc);
  if (e.note)
    add("  [%s]", e.note);
  return buf;
}

void write_log(FILE *out) {
  fprintf(out, "# pkramfs-fsx op log, seed %" PRIu64 ":", opt.seed);
  for (auto &a : cmdline)
    fprintf(out, " %s", a.c_str());
  fprintf(out, "\n");
  for (auto &e : oplog)
    fprintf(out, "%s\n", describe(e).c_str());
}

void save_log() {
  if (opt.log.empty())
    return;
  if (FILE *f = fopen(opt.log.c_str(), "w")) {
    write_log(f);
    fclose(f);
  } else {
    fprintf(stderr, "pkramfs-fsx: cannot write %s: %s\n", opt.log.c_str(), strerror(errno));
  }
}

void report_and_exit(const char *what, ...) __attribute__((format(printf, 1, 2), noreturn));
void report_and_exit(const char *what, ...) {
  fflush(stdout);
  va_list ap;
  va_start(ap, what);
  fprintf(stderr, "pkramfs-fsx: FAILURE at op %" PRIu64 ": ", opnum);
  vfprintf(stderr, what, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  size_t from = oplog.size() > static_cast<size_t>(opt.log_tail)
                    ? oplog.size() - static_cast<size_t>(opt.log_tail)
                    : 0;
  fprintf(stderr, "LOG DUMP (last %zu of %zu ops; the last one failed):\n", oplog.size() - from,
          oplog.size());
  for (size_t i = from; i < oplog.size(); ++i)
    fprintf(stderr, "  %s\n", describe(oplog[i]).c_str());
  fprintf(stderr, "seed %" PRIu64 "; reproduce with:", opt.seed);
  for (size_t i = 0; i < cmdline.size(); ++i) {
    if (cmdline[i] == "--seed" && i + 1 < cmdline.size()) {
      ++i;
      continue;
    }
    fprintf(stderr, " %s", cmdline[i].c_str());
    if (i == 0)
      fprintf(stderr, " --seed %" PRIu64, opt.seed);
  }
  fprintf(stderr, "\n");
  save_log();
  if (!opt.log.empty())
    fprintf(stderr, "complete op log: %s\n", opt.log.c_str());
  exit(1);
}

// The newest logged op that wrote value v at offset off with its pattern, to name the culprit.
long find_writer(int64_t off, uint8_t v);

uint8_t pattern(uint64_t n, int64_t pos) {
  return static_cast<uint8_t>(n * 29 + static_cast<uint64_t>(pos) * 7 + (static_cast<uint64_t>(pos) >> 12));
}

long find_writer(int64_t off, uint8_t v) {
  for (size_t i = oplog.size(); i-- > 0;) {
    const LogEntry &e = oplog[i];
    if ((e.kind == kWrite || e.kind == kMapWrite) && e.rc >= 0 && off >= e.off &&
        off < e.off + e.len && pattern(e.n, off) == v)
      return static_cast<long>(e.n);
  }
  return -1;
}

// Compares got (read at file offset off) with the model; reports and exits on a difference.
void compare(const uint8_t *got, int64_t off, int64_t len, const char *how) {
  const uint8_t *want = model.data() + off;
  if (memcmp(got, want, static_cast<size_t>(len)) == 0)
    return;
  int64_t first = 0;
  while (got[first] == want[first])
    ++first;
  int64_t last = len - 1;
  while (got[last] == want[last])
    --last;
  int64_t nbad = 0;
  for (int64_t i = first; i <= last; ++i)
    nbad += got[i] != want[i];
  std::string detail;
  char line[200];
  snprintf(line, sizeof line,
           "\n  %" PRId64 " bytes differ between file offsets 0x%" PRIx64 " and 0x%" PRIx64
           "\n  OFFSET      GOOD  BAD  (bad looks like data of op)",
           nbad, static_cast<uint64_t>(off + first), static_cast<uint64_t>(off + last));
  detail += line;
  int shown = 0;
  for (int64_t i = first; i <= last && shown < 16; ++i) {
    if (got[i] == want[i])
      continue;
    long w = find_writer(off + i, got[i]);
    snprintf(line, sizeof line, "\n  0x%08" PRIx64 "  0x%02x  0x%02x  %s", static_cast<uint64_t>(off + i),
             want[i], got[i], w >= 0 ? std::to_string(w).c_str() : (got[i] ? "?" : "(zero)"));
    detail += line;
    ++shown;
  }
  if (corrupt_off >= off && corrupt_off < off + len)
    detail += "\n  (the model byte at 0x" + [] {
      char b[32];
      snprintf(b, sizeof b, "%" PRIx64, static_cast<uint64_t>(corrupt_off));
      return std::string(b);
    }() + " was corrupted on purpose by --self-test-corrupt)";
  report_and_exit("MISMATCH in %s of 0x%" PRIx64 " thru 0x%" PRIx64 " (file size 0x%zx)%s", how,
                  static_cast<uint64_t>(off), static_cast<uint64_t>(off + len), model.size(),
                  detail.c_str());
}

int64_t size() { return static_cast<int64_t>(model.size()); }

void resize_model(int64_t n) {
  model.resize(static_cast<size_t>(n), 0); // growing fills with zeros
}

// Whether the byte at corrupt_off was overwritten by a model update of [off, off+len).
void model_touched(int64_t off, int64_t len) {
  if (corrupt_off >= 0 && corrupt_off >= off && corrupt_off < off + len)
    corrupt_off = -1;
}

// ---------------------------------------------------------------------------- plain I/O --

void full_pread(int f, uint8_t *buf, int64_t len, int64_t off, int64_t *got) {
  int64_t done = 0;
  while (done < len) {
    ssize_t r = pread(f, buf + done, static_cast<size_t>(len - done), off + done);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      report_and_exit("pread(0x%" PRIx64 ", 0x%" PRIx64 "): %s", static_cast<uint64_t>(off + done),
                      static_cast<uint64_t>(len - done), strerror(errno));
    }
    if (r == 0)
      break;
    done += r;
  }
  *got = done;
}

void full_pwrite(int f, const uint8_t *buf, int64_t len, int64_t off) {
  int64_t done = 0;
  while (done < len) {
    ssize_t r = pwrite(f, buf + done, static_cast<size_t>(len - done), off + done);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      report_and_exit("pwrite(0x%" PRIx64 ", 0x%" PRIx64 "): %s", static_cast<uint64_t>(off + done),
                      static_cast<uint64_t>(len - done), strerror(errno));
    }
    if (r == 0)
      report_and_exit("pwrite returned 0");
    done += r;
  }
}

std::vector<uint8_t> iobuf;

void do_read(int64_t off, int64_t len) {
  int64_t got;
  full_pread(fd, iobuf.data(), len, off, &got);
  int64_t want = std::clamp<int64_t>(size() - off, 0, len);
  if (got != want)
    report_and_exit("short read: pread(0x%" PRIx64 ", 0x%" PRIx64 ") returned 0x%" PRIx64
                    " bytes, file size 0x%" PRIx64 " says 0x%" PRIx64,
                    static_cast<uint64_t>(off), static_cast<uint64_t>(len),
                    static_cast<uint64_t>(got), static_cast<uint64_t>(size()),
                    static_cast<uint64_t>(want));
  compare(iobuf.data(), off, got, "read");
}

void do_write(int64_t off, int64_t len) {
  for (int64_t i = 0; i < len; ++i)
    iobuf[static_cast<size_t>(i)] = pattern(opnum, off + i);
  full_pwrite(fd, iobuf.data(), len, off);
  if (off + len > size())
    resize_model(off + len);
  memcpy(model.data() + off, iobuf.data(), static_cast<size_t>(len));
  model_touched(off, len);
}

// ----------------------------------------------------------------------------------- mmap --

// Maps [off, off+len) of fd; returns the address of byte off (and the mapping's base/length).
uint8_t *map_range(int prot, int flags, int64_t off, int64_t len, void **base, size_t *maplen,
                   int *err) {
  int64_t pg = off & ~static_cast<int64_t>(pagesize - 1);
  *maplen = static_cast<size_t>(off - pg + len);
  void *p = mmap(nullptr, *maplen, prot, flags, fd, pg);
  if (p == MAP_FAILED) {
    *err = errno;
    return nullptr;
  }
  *base = p;
  return static_cast<uint8_t *>(p) + (off - pg);
}

void do_mapread(int64_t off, int64_t len, const char **note) {
  const int flags = opt.shared_mmap_errno ? MAP_PRIVATE : MAP_SHARED;
  if (opt.shared_mmap_errno)
    *note = "MAP_PRIVATE";
  void *base;
  size_t maplen;
  int err = 0;
  uint8_t *p = map_range(PROT_READ, flags, off, len, &base, &maplen, &err);
  if (!p)
    report_and_exit("mmap(PROT_READ, %s) of 0x%" PRIx64 " thru 0x%" PRIx64 ": %s",
                    flags == MAP_SHARED ? "MAP_SHARED" : "MAP_PRIVATE", static_cast<uint64_t>(off),
                    static_cast<uint64_t>(off + len), strerror(err));
  fault_armed = 1;
  if (sigsetjmp(fault_jmp, 1)) {
    fault_armed = 0;
    report_and_exit("%s while reading the mapping of 0x%" PRIx64 " thru 0x%" PRIx64
                    " (file size 0x%" PRIx64 ")",
                    strsignal(fault_sig), static_cast<uint64_t>(off),
                    static_cast<uint64_t>(off + len), static_cast<uint64_t>(size()));
  }
  memcpy(iobuf.data(), p, static_cast<size_t>(len));
  // Like classic fsx: the rest of the page that holds EOF must read as zeros.
  const int64_t map_end = off + len;
  const int64_t page_end = (map_end + pagesize - 1) & ~static_cast<int64_t>(pagesize - 1);
  bool tail_ok = true;
  int64_t bad_at = 0;
  if (map_end == size() && page_end > map_end) {
    // The mapping covers whole pages; map one more byte-range check through a fresh view.
    const uint8_t *tail = p + len;
    for (int64_t i = 0; i < page_end - map_end; ++i)
      if (tail[i] != 0) {
        tail_ok = false;
        bad_at = map_end + i;
        break;
      }
  }
  fault_armed = 0;
  munmap(base, maplen);
  compare(iobuf.data(), off, len, "mmap read");
  if (!tail_ok)
    report_and_exit("mapped page beyond EOF 0x%" PRIx64 " is not zero at 0x%" PRIx64,
                    static_cast<uint64_t>(size()), static_cast<uint64_t>(bad_at));
}

// Returns false when the op was refused as expected (--shared-mmap-errno).
bool do_mapwrite(int64_t off, int64_t len, const char **note) {
  if (opt.shared_mmap_errno) {
    // Check the refusal on an existing part of the file (or page 0 of an empty file).
    void *p = mmap(nullptr, static_cast<size_t>(pagesize), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED)
      report_and_exit("mmap(MAP_SHARED) succeeded, expected %s", errname(opt.shared_mmap_errno));
    if (errno != opt.shared_mmap_errno)
      report_and_exit("mmap(MAP_SHARED) failed with %s, expected %s", errname(errno),
                      errname(opt.shared_mmap_errno));
    *note = "refused as expected";
    return false;
  }
  if (off + len > size()) {
    if (ftruncate(fd, off + len) != 0)
      report_and_exit("ftruncate(0x%" PRIx64 ") before mapwrite: %s",
                      static_cast<uint64_t>(off + len), strerror(errno));
    resize_model(off + len);
    *note = "extended first";
  }
  void *base;
  size_t maplen;
  int err = 0;
  uint8_t *p = map_range(PROT_READ | PROT_WRITE, MAP_SHARED, off, len, &base, &maplen, &err);
  if (!p)
    report_and_exit("mmap(MAP_SHARED, PROT_WRITE) of 0x%" PRIx64 " thru 0x%" PRIx64 ": %s",
                    static_cast<uint64_t>(off), static_cast<uint64_t>(off + len), strerror(err));
  for (int64_t i = 0; i < len; ++i)
    iobuf[static_cast<size_t>(i)] = pattern(opnum, off + i);
  fault_armed = 1;
  if (sigsetjmp(fault_jmp, 1)) {
    fault_armed = 0;
    report_and_exit("%s while writing the mapping of 0x%" PRIx64 " thru 0x%" PRIx64,
                    strsignal(fault_sig), static_cast<uint64_t>(off),
                    static_cast<uint64_t>(off + len));
  }
  memcpy(p, iobuf.data(), static_cast<size_t>(len));
  fault_armed = 0;
  if (msync(base, maplen, MS_SYNC) != 0)
    report_and_exit("msync: %s", strerror(errno));
  munmap(base, maplen);
  memcpy(model.data() + off, iobuf.data(), static_cast<size_t>(len));
  model_touched(off, len);
  return true;
}

// ------------------------------------------------------------------------------ the rest --

void do_truncate(int64_t n) {
  if (ftruncate(fd, n) != 0)
    report_and_exit("ftruncate(0x%" PRIx64 "): %s", static_cast<uint64_t>(n), strerror(errno));
  if (n < size())
    model_touched(n, size() - n);
  resize_model(n);
}

void do_falloc(int mode, int64_t off, int64_t len) {
  if (fallocate(fd, mode, off, len) != 0)
    report_and_exit("fallocate(mode %#x, 0x%" PRIx64 ", 0x%" PRIx64 "): %s", mode,
                    static_cast<uint64_t>(off), static_cast<uint64_t>(len), strerror(errno));
  if (mode & FALLOC_FL_PUNCH_HOLE) {
    int64_t end = std::min(off + len, size());
    if (end > off) {
      memset(model.data() + off, 0, static_cast<size_t>(end - off));
      model_touched(off, end - off);
    }
  } else if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > size()) {
    resize_model(off + len);
  }
}

void do_copy(int from, int64_t off_in, int64_t off_out, int64_t len) {
  const std::vector<uint8_t> &srcm = from == src_fd ? src_model : model;
  // The bytes to land, taken before the model changes (a self copy never overlaps).
  std::vector<uint8_t> bytes(srcm.begin() + off_in, srcm.begin() + off_in + len);
  int64_t done = 0;
  while (done < len) {
    loff_t in = off_in + done, out = off_out + done;
    ssize_t r = copy_file_range(from, &in, fd, &out, static_cast<size_t>(len - done), 0);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      report_and_exit("copy_file_range(in 0x%" PRIx64 ", out 0x%" PRIx64 ", 0x%" PRIx64 "): %s",
                      static_cast<uint64_t>(off_in + done), static_cast<uint64_t>(off_out + done),
                      static_cast<uint64_t>(len - done), strerror(errno));
    }
    if (r == 0)
      report_and_exit("copy_file_range(in 0x%" PRIx64 ", out 0x%" PRIx64 ", 0x%" PRIx64
                      ") returned 0 inside the source",
                      static_cast<uint64_t>(off_in + done), static_cast<uint64_t>(off_out + done),
                      static_cast<uint64_t>(len - done));
    done += r;
  }
  if (off_out + len > size())
    resize_model(off_out + len);
  memcpy(model.data() + off_out, bytes.data(), static_cast<size_t>(len));
  model_touched(off_out, len);
}

long do_seek(int whence, int64_t off) {
  off_t r = lseek(fd, off, whence);
  const char *w = whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE";
  if (off >= size()) {
    if (r >= 0 || errno != ENXIO)
      report_and_exit("lseek(0x%" PRIx64 ", %s) at/after EOF 0x%" PRIx64 " returned %s, expected ENXIO",
                      static_cast<uint64_t>(off), w, static_cast<uint64_t>(size()),
                      r >= 0 ? std::to_string(r).c_str() : errname(errno));
    return -1;
  }
  if (r < 0) {
    // SEEK_DATA: no data up to EOF, so everything from off must read as zeros.
    if (whence == SEEK_DATA && errno == ENXIO) {
      for (int64_t i = off; i < size(); ++i)
        if (model[static_cast<size_t>(i)] != 0)
          report_and_exit("lseek(0x%" PRIx64 ", SEEK_DATA) = ENXIO, but the file holds data at 0x%" PRIx64,
                          static_cast<uint64_t>(off), static_cast<uint64_t>(i));
      return -1;
    }
    report_and_exit("lseek(0x%" PRIx64 ", %s): %s", static_cast<uint64_t>(off), w, strerror(errno));
  }
  if (r < off || r > size() || (whence == SEEK_DATA && r == size()))
    report_and_exit("lseek(0x%" PRIx64 ", %s) = 0x%lx, outside [0x%" PRIx64 ", 0x%" PRIx64 "%s",
                    static_cast<uint64_t>(off), w, static_cast<long>(r), static_cast<uint64_t>(off),
                    static_cast<uint64_t>(size()), whence == SEEK_DATA ? ")" : "]");
  // A hole reads as zeros, so SEEK_HOLE may not land on a non-zero byte.
  if (whence == SEEK_HOLE && r < size() && model[static_cast<size_t>(r)] != 0)
    report_and_exit("lseek(0x%" PRIx64 ", SEEK_HOLE) = 0x%lx, but the file holds data there",
                    static_cast<uint64_t>(off), static_cast<long>(r));
  if (whence == SEEK_DATA)
    for (int64_t i = off; i < r; ++i)
      if (model[static_cast<size_t>(i)] != 0)
        report_and_exit("lseek(0x%" PRIx64 ", SEEK_DATA) = 0x%lx skips data at 0x%" PRIx64,
                        static_cast<uint64_t>(off), static_cast<long>(r), static_cast<uint64_t>(i));
  return r;
}

int open_file() {
  int f = open(opt.file.c_str(), O_RDWR | O_CLOEXEC);
  if (f < 0)
    report_and_exit("open %s: %s", opt.file.c_str(), strerror(errno));
  return f;
}

void check_size(const char *when) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    report_and_exit("fstat: %s", strerror(errno));
  if (st.st_size != size())
    report_and_exit("%s: file size is 0x%" PRIx64 ", expected 0x%" PRIx64, when,
                    static_cast<uint64_t>(st.st_size), static_cast<uint64_t>(size()));
}

void check_whole(const char *how) {
  std::vector<uint8_t> buf(model.size());
  int64_t got;
  full_pread(fd, buf.data(), size(), 0, &got);
  if (got != size())
    report_and_exit("%s: whole-file read returned 0x%" PRIx64 " of 0x%" PRIx64 " bytes", how,
                    static_cast<uint64_t>(got), static_cast<uint64_t>(size()));
  compare(buf.data(), 0, got, how);
}

// Draws offset and length the way classic fsx does: lengths up to --max-op, offsets anywhere
// below --max-size (writes) or below the size (reads).
int64_t draw_len(Rng &rng) { return static_cast<int64_t>(rng.below(static_cast<uint64_t>(opt.max_op))) + 1; }

bool enabled(Kind k) {
  switch (k) {
  case kMapRead:
  case kMapWrite:
    return !opt.no_mmap;
  case kFalloc:
  case kFallocKeep:
    return !opt.no_falloc;
  case kPunch:
    return !opt.no_punch;
  case kCopy:
  case kCopySelf:
    return !opt.no_copy;
  case kSeekData:
  case kSeekHole:
    return !opt.no_seek;
  case kReopen:
    return !opt.no_reopen;
  default:
    return true;
  }
}

void step(Rng &rng) {
  unsigned total = 0;
  for (auto &k : kKindInfo)
    total += k.weight;
  unsigned pickw = static_cast<unsigned>(rng.below(total));
  Kind kind = kRead;
  for (int k = 0; k < kKinds; ++k) {
    if (pickw < kKindInfo[k].weight) {
      kind = static_cast<Kind>(k);
      break;
    }
    pickw -= kKindInfo[k].weight;
  }
  // A left-out kind becomes a read or a write (the draw below stays the same either way).
  const uint64_t alt = rng.next();
  if (!enabled(kind))
    kind = alt & 1 ? kWrite : kRead;
  const uint64_t r1 = rng.next(), r2 = rng.next(), r3 = rng.next();
  int64_t len = draw_len(rng);

  LogEntry e{opnum, kind, 0, 0, 0, size(), size(), 0, 0, nullptr};
  const int64_t sz = size();
  switch (kind) {
  case kRead:
    // Sometimes past EOF, to check short reads.
    e.off = static_cast<int64_t>(r1 % static_cast<uint64_t>(sz + sz / 8 + 1));
    e.len = len;
    break;
  case kMapRead:
    if (sz == 0) {
      e.note = "empty file";
      break;
    }
    e.off = static_cast<int64_t>(r1 % static_cast<uint64_t>(sz));
    e.len = std::min(len, sz - e.off);
    break;
  case kWrite:
  case kMapWrite:
    e.len = std::min(len, opt.max_size);
    e.off = static_cast<int64_t>(r1 % static_cast<uint64_t>(opt.max_size - e.len + 1));
    break;
  case kTruncate:
    e.off = static_cast<int64_t>(r1 % static_cast<uint64_t>(opt.max_size + 1));
    break;
  case kFalloc:
  case kFallocKeep:
    e.len = std::min(len, opt.max_size);
    e.off = static_cast<int64_t>(r1 % static_cast<uint64_t>(opt.max_size - e.len + 1));
    break;
  case kPunch:
    e.off = static_cast<int64_t>(r1 % static_cast<uint64_t>(sz + 1));
    e.len = len;
    break;
  case kCopy: {
    const int64_t ssz = static_cast<int64_t>(src_model.size());
    e.off2 = static_cast<int64_t>(r2 % static_cast<uint64_t>(ssz));
    e.len = std::min(len, ssz - e.off2);
    e.off = static_cast<int64_t>(r1 % static_cast<uint64_t>(opt.max_size - e.len + 1));
    break;
  }
  case kCopySelf: {
    // Source inside the file, destination anywhere not overlapping it.
    if (sz < 2) {
      e.note = "file too small";
      break;
    }
    e.off2 = static_cast<int64_t>(r2 % static_cast<uint64_t>(sz - 1));
    e.len = std::min(len, sz - e.off2);
    e.off = static_cast<int64_t>(r1 % static_cast<uint64_t>(opt.max_size - e.len + 1));
    if (e.off < e.off2 + e.len && e.off2 < e.off + e.len) {
      // Overlaps: move the destination just past the source, or before it.
      if (e.off2 + 2 * e.len <= opt.max_size)
        e.off = e.off2 + e.len + static_cast<int64_t>(r3 % 4096);
      else
        e.off = std::max<int64_t>(0, e.off2 - e.len - static_cast<int64_t>(r3 % 4096));
      if (e.off + e.len > opt.max_size || (e.off < e.off2 + e.len && e.off2 < e.off + e.len)) {
        e.note = "no room";
        e.len = 0;
      }
    }
    break;
  }
  case kSeekData:
  case kSeekHole:
    e.off = static_cast<int64_t>(r1 % static_cast<uint64_t>(sz + 2));
    break;
  default:
    break;
  }
  if (opt.verbose) {
    LogEntry pre = e;
    pre.size_after = pre.size_before;
    printf("%s\n", describe(pre).c_str());
  }
  oplog.push_back(e);
  LogEntry &le = oplog.back();
  ++counts[kind];
  const auto t0 = std::chrono::steady_clock::now();
  bool did = true;
  switch (kind) {
  case kRead:
    do_read(le.off, le.len);
    break;
  case kWrite:
    do_write(le.off, le.len);
    break;
  case kMapRead:
    if (sz == 0)
      did = false;
    else
      do_mapread(le.off, le.len, &le.note);
    break;
  case kMapWrite:
    did = do_mapwrite(le.off, le.len, &le.note);
    break;
  case kTruncate:
    do_truncate(le.off);
    break;
  case kFalloc:
    do_falloc(0, le.off, le.len);
    break;
  case kFallocKeep:
    do_falloc(FALLOC_FL_KEEP_SIZE, le.off, le.len);
    break;
  case kPunch:
    do_falloc(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, le.off, le.len);
    break;
  case kCopy:
    do_copy(src_fd, le.off2, le.off, le.len);
    break;
  case kCopySelf:
    if (le.len == 0)
      did = false;
    else
      do_copy(fd, le.off2, le.off, le.len);
    break;
  case kSeekData:
    le.rc = do_seek(SEEK_DATA, le.off);
    if (le.rc < 0)
      le.err = ENXIO;
    break;
  case kSeekHole:
    le.rc = do_seek(SEEK_HOLE, le.off);
    if (le.rc < 0)
      le.err = ENXIO;
    break;
  case kFsync:
    if (fsync(fd) != 0)
      report_and_exit("fsync: %s", strerror(errno));
    break;
  case kFdatasync:
    if (fdatasync(fd) != 0)
      report_and_exit("fdatasync: %s", strerror(errno));
    break;
  case kReopen:
    if (close(fd) != 0)
      report_and_exit("close: %s", strerror(errno));
    fd = open_file();
    break;
  default:
    break;
  }
  if (!did)
    ++skipped_counts[kind];
  seconds_by_kind[kind] +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  le.size_after = size();
  check_size("after the op");
}

void corrupt_model(Rng &rng) {
  if (corrupt_off >= 0 || model.empty())
    return;
  corrupt_off = static_cast<int64_t>(rng.below(model.size()));
  model[static_cast<size_t>(corrupt_off)] ^= 0x5a;
  printf("pkramfs-fsx: --self-test-corrupt: flipped the model byte at 0x%" PRIx64 " after op %" PRIu64 "\n",
         static_cast<uint64_t>(corrupt_off), opnum);
}

[[noreturn]] void usage(const char *why) {
  fprintf(stderr, "pkramfs-fsx: %s\n", why);
  fprintf(stderr,
          "usage: pkramfs-fsx [--seed N] [--ops N] [--max-size N] [--max-op N] [--check-every N]\n"
          "                   [--shared-mmap-errno E] [--no-mmap] [--no-fallocate] [--no-punch]\n"
          "                   [--no-copy] [--no-seek] [--no-reopen] [--save PATH] [--log PATH]\n"
          "                   [--log-tail N] [--verbose] [--stats] [--self-test-corrupt] FILE\n");
  exit(2);
}

int64_t parse_size(const char *s) {
  char *end;
  long long v = strtoll(s, &end, 0);
  if (end == s || v < 0)
    usage("bad number");
  switch (*end) {
  case 'k':
  case 'K':
    v <<= 10;
    ++end;
    break;
  case 'm':
  case 'M':
    v <<= 20;
    ++end;
    break;
  default:
    break;
  }
  if (*end)
    usage("bad number");
  return v;
}

} // namespace

int main(int argc, char **argv) {
  for (int i = 0; i < argc; ++i)
    cmdline.emplace_back(argv[i]);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> const char * {
      if (i + 1 >= argc)
        usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--seed") {
      opt.seed = static_cast<uint64_t>(parse_size(val()));
      opt.seed_given = true;
    } else if (a == "--ops")
      opt.ops = static_cast<uint64_t>(parse_size(val()));
    else if (a == "--max-size")
      opt.max_size = parse_size(val());
    else if (a == "--max-op")
      opt.max_op = parse_size(val());
    else if (a == "--check-every")
      opt.check_every = static_cast<uint64_t>(parse_size(val()));
    else if (a == "--shared-mmap-errno") {
      opt.shared_mmap_errno = errno_from_name(val());
      if (opt.shared_mmap_errno <= 0)
        usage("unknown errno name");
    } else if (a == "--no-mmap")
      opt.no_mmap = true;
    else if (a == "--no-fallocate")
      opt.no_falloc = true;
    else if (a == "--no-punch")
      opt.no_punch = true;
    else if (a == "--no-copy")
      opt.no_copy = true;
    else if (a == "--no-seek")
      opt.no_seek = true;
    else if (a == "--no-reopen")
      opt.no_reopen = true;
    else if (a == "--save")
      opt.save = val();
    else if (a == "--log")
      opt.log = val();
    else if (a == "--log-tail")
      opt.log_tail = static_cast<int>(parse_size(val()));
    else if (a == "--verbose")
      opt.verbose = true;
    else if (a == "--stats")
      opt.stats = true;
    else if (a == "--self-test-corrupt")
      opt.self_test_corrupt = true;
    else if (a == "--help" || a == "-h")
      usage("fsx-style file exerciser");
    else if (!a.empty() && a[0] == '-')
      usage(("unknown option " + a).c_str());
    else if (opt.file.empty())
      opt.file = a;
    else
      usage("one FILE only");
  }
  if (opt.file.empty())
    usage("FILE missing");
  if (opt.max_size < 2 * 4096 || opt.max_op < 1 || opt.max_op > opt.max_size)
    usage("need --max-size >= 8192 and 1 <= --max-op <= --max-size");
  if (!opt.seed_given)
    opt.seed = static_cast<uint64_t>(
                   std::chrono::steady_clock::now().time_since_epoch().count()) ^
               static_cast<uint64_t>(getpid()) * 0x9e3779b97f4a7c15ULL;
  opt.seed %= 1000000000000ULL; // short enough to type
  pagesize = sysconf(_SC_PAGESIZE);

  struct sigaction sa{};
  sa.sa_handler = on_fault;
  sigaction(SIGBUS, &sa, nullptr);
  sigaction(SIGSEGV, &sa, nullptr);

  fd = open(opt.file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "pkramfs-fsx: cannot create %s: %s\n", opt.file.c_str(), strerror(errno));
    return 2;
  }
  const std::string src = opt.file + ".src";
  src_fd = open(src.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (src_fd < 0) {
    fprintf(stderr, "pkramfs-fsx: cannot create %s: %s\n", src.c_str(), strerror(errno));
    return 2;
  }
  Rng data_rng(opt.seed ^ 0x5eedULL);
  src_model.resize(static_cast<size_t>(opt.max_size / 2));
  for (auto &b : src_model)
    b = static_cast<uint8_t>(data_rng.next());
  full_pwrite(src_fd, src_model.data(), static_cast<int64_t>(src_model.size()), 0);
  iobuf.resize(static_cast<size_t>(opt.max_size));

  printf("pkramfs-fsx: seed %" PRIu64 ", %" PRIu64 " ops on %s (max size 0x%" PRIx64
         ", max op 0x%" PRIx64 "%s)\n",
         opt.seed, opt.ops, opt.file.c_str(), static_cast<uint64_t>(opt.max_size),
         static_cast<uint64_t>(opt.max_op),
         opt.shared_mmap_errno ? (std::string(", MAP_SHARED expected to fail with ") +
                                  errname(opt.shared_mmap_errno)).c_str()
                               : "");
  const auto t0 = std::chrono::steady_clock::now();
  Rng rng(opt.seed);
  Rng corrupt_rng(opt.seed ^ 0xc0ffeeULL);
  oplog.reserve(static_cast<size_t>(opt.ops));
  for (opnum = 1; opnum <= opt.ops; ++opnum) {
    step(rng);
    if (opt.check_every && opnum % opt.check_every == 0) {
      check_whole("periodic whole-file check");
    }
    if (opt.self_test_corrupt && opnum >= opt.ops / 2)
      corrupt_model(corrupt_rng); // again whenever an op overwrote the flipped byte
  }
  opnum = opt.ops;
  // Final checks: the whole file through read, through a fresh descriptor, and the source.
  check_whole("final whole-file check");
  close(fd);
  fd = open_file();
  check_size("after reopen");
  check_whole("final whole-file check after reopen");
  {
    std::vector<uint8_t> buf(src_model.size());
    int64_t got;
    full_pread(src_fd, buf.data(), static_cast<int64_t>(buf.size()), 0, &got);
    if (got != static_cast<int64_t>(buf.size()) || memcmp(buf.data(), src_model.data(), buf.size()))
      report_and_exit("the copy source %s changed", src.c_str());
  }
  if (opt.self_test_corrupt)
    report_and_exit("--self-test-corrupt: the flipped model byte was never detected");
  close(fd);
  close(src_fd);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!opt.save.empty()) {
    FILE *f = fopen(opt.save.c_str(), "wb");
    if (!f || fwrite(model.data(), 1, model.size(), f) != model.size() || fclose(f) != 0) {
      fprintf(stderr, "pkramfs-fsx: cannot write %s\n", opt.save.c_str());
      return 2;
    }
  }
  save_log();
  std::string summary;
  for (int k = 0; k < kKinds; ++k) {
    if (!counts[k])
      continue;
    char b[80];
    if (skipped_counts[k])
      snprintf(b, sizeof b, " %s %" PRIu64 " (%" PRIu64 " not done)", kKindInfo[k].name,
               counts[k], skipped_counts[k]);
    else
      snprintf(b, sizeof b, " %s %" PRIu64, kKindInfo[k].name, counts[k]);
    summary += b;
  }
  printf("pkramfs-fsx: seed %" PRIu64 ": %" PRIu64 " ops passed in %.1f s (%.0f ops/s), final size 0x%zx\n"
         "  %s\n",
         opt.seed, opt.ops, secs, static_cast<double>(opt.ops) / secs, model.size(),
         summary.c_str() + 1);
  if (opt.stats)
    for (int k = 0; k < kKinds; ++k)
      if (counts[k])
        printf("  %-11s %7" PRIu64 " ops %8.3f s %8.1f us/op\n", kKindInfo[k].name, counts[k],
               seconds_by_kind[k], seconds_by_kind[k] * 1e6 / static_cast<double>(counts[k]));
  return 0;
}
