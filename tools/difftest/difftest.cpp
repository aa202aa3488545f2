// pkramfs-difftest: differential tester for pkramfs against kernel tmpfs.
//
//   pkramfs-difftest [--seed N] [--ops M] [--seeds K] [--verbose] [--stats] REF_DIR TEST_DIR
//   pkramfs-difftest --list-exclusions
//
// REF_DIR lives on kernel tmpfs (mounted with huge=never so holes are page-granular), TEST_DIR on
// the filesystem under test; both must be empty directories. Must run as root. For every seed a
// random sequence of M operations is generated up front (from the seed only, never from results),
// then replayed on both trees with identical relative paths. After every op the return value,
// errno and returned data are compared, then both trees are scanned and compared (names, types,
// modes, owners, sizes, nlink, rdev, symlink targets, and whether mtime/ctime changed). After the
// last op contents (data/hole map and bytes) and xattrs are compared too. On a divergence the op
// list is shrunk with delta debugging (ddmin) and the shortest reproducer is printed.
// Exit status: 0 no divergence, 1 divergence, 2 usage error.
//
// Process set-up that makes runs deterministic: supplementary groups are dropped (setgroups 0) so
// "nobody" (fsuid/fsgid 65534 via raw setfsuid/setfsgid) is in no extra group, and umask is 0.
//
// DELIBERATE EXCLUSIONS. Everything that is not compared, or never generated, because the result
// legitimately differs between two filesystems or between tmpfs and any FUSE filesystem, is listed
// in kExclusions right below (it is also printed by --list-exclusions). This is the one place to
// review; the two exclusions enforced at run time have their switches next to the table.

#include "splitmix64.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace {

// ================================ Exclusions (review here) ================================

struct Exclusion {
  const char *what;
  const char *why;
};

constexpr Exclusion kExclusions[] = {
    {"atime", "relatime/noatime and FUSE's own atime policy differ; only an atime set explicitly "
              "by utimensat is compared (right after that utimensat)"},
    {"exact mtime/ctime", "clocks differ: per op and per path only 'changed or not' is compared; "
                          "exact values only when set explicitly by utimensat"},
    {"mtime/ctime when the inode at a path was replaced",
     "tmpfs hands out coarse (jiffy) times to new inodes, so two inodes created by different ops "
     "may carry equal times; the changed/unchanged relation is only compared while the path "
     "keeps the same inode on both sides"},
    {"st_ino, st_dev", "allocation-specific; st_ino is only used as identity within one tree"},
    {"st_blocks, st_blksize", "allocation and I/O granularity are filesystem-specific"},
    {"statfs", "capacity and usage numbers differ"},
    {"lseek on directory fds", "FUSE implements directory lseek in the kernel with its own offset "
                               "cookies (skipped at run time, kSkipLseekOnDirectories)"},
    {"readdir order, d_off, telldir/seekdir",
     "readdir is compared as a sorted set of (name,type); readdir_churn compares what any "
     "filesystem must give: no name twice, every name present all along, an end"},
    {"opening fifos and device nodes", "a fifo open blocks or depends on peers, and device opens "
                                       "depend on the nodev mount flag, which FUSE sets by default "
                                       "(skipped at run time, kSkipOpenOfSpecialFiles)"},
    {"ENOSPC, EDQUOT, EMFILE, ENOMEM", "capacity limits differ; sizes are kept small (I/O and "
                                       "copies <= 256 KiB, fallocate <= 1 MiB, xattrs <= 64 KiB)"},
    {"security.* xattrs, system.* other than POSIX ACLs", "depend on the LSM configuration"},
    {"absolute symlink targets and '..'", "would resolve outside the trees under test"},
    {"O_DIRECT, O_PATH, O_NONBLOCK, O_SYNC", "availability depends on FUSE kernel and "
                                             "daemon capabilities, not on tmpfs"},
    {"flock/fcntl/OFD locks, leases, dnotify/inotify", "handled in the FUSE kernel module unless "
                                                       "the daemon opts in"},
    {"ioctls other than FS_IOC_GETFLAGS/SETFLAGS, statx btime", "not part of the observable "
                                                                "tmpfs contract pkramfs mirrors"},
    {"chown(f, -1, -1) of a setuid or setgid file by a non-owner",
     "the VFS makes it a mode change that tmpfs refuses (EPERM); kernel FUSE strips that change "
     "before its permission check (skipped at run time, kSkipChownNoopOfSetgidByNonOwner)"},
    {"immutable and append-only inode flags",
     "kernel FUSE inodes are never S_IMMUTABLE/S_APPEND, so where the VFS checks them before its "
     "own checks (may_delete, a default ACL on a file, mmap) the errno differs "
     "(docs/semantics.md); the daemon's enforcement is compared with tmpfs by inode_flags.sh"},
    {"chmod of a symlink itself (fchmodat2 NOFOLLOW)",
     "not generated: it is rejected in the VFS for every filesystem"},
    {"mmap writes beyond EOF, MAP_PRIVATE", "bytes past EOF are not persisted anywhere; private "
                                            "maps never reach the filesystem"},
    {"concurrency", "single-threaded; interleavings would not be deterministic"},
    {"SEEK_DATA/SEEK_HOLE map in the last pages below LLONG_MAX",
     "tmpfs reports no data in a page written just below LLONG_MAX (its seek arithmetic "
     "overflows, and may come back as any errno); the final data map stops there (kSeekMapLimit), "
     "and an lseek op of a file larger than that which lands there or fails is skipped (the file "
     "position restored on both sides)"},
    {"fallocate modes tmpfs refuses (ZERO_RANGE), run unprivileged",
     "kernel FUSE drops suid/sgid (file_modified) before sending FALLOCATE, tmpfs checks the mode "
     "first; generated as root only (kRootOnlyUnsupportedFallocate)"},
};

// Run-time switches for the exclusions that cannot be avoided at generation time.
constexpr bool kSkipLseekOnDirectories = true;
constexpr bool kSkipOpenOfSpecialFiles = true;
constexpr bool kRootOnlyUnsupportedFallocate = true;
constexpr bool kSkipChownNoopOfSetgidByNonOwner = true;
// tmpfs finds no data in the last page below LLONG_MAX (its seek arithmetic overflows there).
constexpr int64_t kSeekMapLimit = (INT64_MAX & ~int64_t{4095}) - 4096;

// ===================================== Basics ======================================

constexpr int kSlots = 4;               // fd table size (same slot on both sides)
constexpr uint32_t kNobody = 65534;     // fsuid/fsgid of unprivileged ops
constexpr int64_t kMaxIo = 256 * 1024;  // largest single read/write/copy/mmap write
constexpr int64_t kMaxFalloc = 1 << 20; // largest fallocate length
constexpr int kMaxReplays = 4000;       // shrinker budget per divergence

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...) {
  va_list ap, ap2;
  va_start(ap, f);
  va_copy(ap2, ap);
  int n = vsnprintf(nullptr, 0, f, ap);
  va_end(ap);
  std::string out(static_cast<size_t>(std::max(n, 0)), '\0');
  vsnprintf(out.data(), out.size() + 1, f, ap2);
  va_end(ap2);
  return out;
}

const char *errName(int err) {
  const char *n = strerrorname_np(err);
  return n ? n : "E?";
}

// Compresses runs of one repeated character ("LLLL...L" -> "L{255}") for readable output.
std::string pretty(const std::string &s) {
  if (s.empty())
    return "''";
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t j = i;
    while (j < s.size() && s[j] == s[i])
      ++j;
    if (j - i > 8)
      out += fmt("%c{%zu}", s[i], j - i);
    else
      out.append(s, i, j - i);
    i = j;
  }
  return out;
}

using Rng = pkramfs::tools::SplitMix64;

std::string makeData(size_t len, uint64_t seed) {
  std::string buf(len, '\0');
  Rng r(seed);
  for (size_t i = 0; i < len; i += 8) {
    uint64_t v = r.next();
    memcpy(&buf[i], &v, std::min<size_t>(8, len - i));
  }
  return buf;
}

// ================================ Ops, results, sides ================================

// One generated operation. Fields are generic; each op kind documents (in its show function)
// which it uses. Everything needed to replay the op is in here, so any subsequence can be rerun.
struct Op {
  int kind = 0;    // index into kOps
  uint32_t id = 0; // index in the originally generated sequence
  bool nobody = false;
  std::string path, path2, name;
  std::string value; // setacl: the ACL's xattr bytes
  int slot = 0, slot2 = 0;
  int flags = 0;
  unsigned mode = 0;
  int64_t off = 0, off2 = 0, len = 0;
  uint32_t uid = 0, gid = 0;
  dev_t dev = 0;
  bool nofollow = false;
  bool null_times = false;
  timespec times[2] = {};
  uint64_t dseed = 0;
};

struct Result {
  long rc = 0;
  int err = 0;
  bool skipped = false;
  std::string text; // deterministic details, printed verbatim
  std::string data; // returned bytes, printed as a summary
};

bool sameResult(const Result &a, const Result &b) {
  return a.skipped == b.skipped && a.rc == b.rc && a.err == b.err && a.text == b.text &&
         a.data == b.data;
}

Result sysResult(long rc) {
  Result r;
  r.rc = rc < 0 ? -1 : rc;
  r.err = rc < 0 ? errno : 0;
  return r;
}

Result skipped(const char *why) {
  Result r;
  r.skipped = true;
  r.text = why;
  return r;
}

uint64_t fnv1a(const std::string &s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s)
    h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

std::string describe(const Result &r) {
  if (r.skipped)
    return "skipped (" + r.text + ")";
  std::string s = r.rc < 0 ? fmt("-1 %s", errName(r.err)) : fmt("%ld", r.rc);
  if (!r.text.empty())
    s += " " + r.text;
  if (!r.data.empty())
    s += fmt(" <%zu bytes fnv=%016" PRIx64 ">", r.data.size(), fnv1a(r.data));
  return s;
}

struct Side {
  const char *label;
  std::string dir;
  int root = -1;
  bool is_test = false;
  std::array<int, kSlots> fd = emptySlots();

  static std::array<int, kSlots> emptySlots() {
    std::array<int, kSlots> a;
    a.fill(-1);
    return a;
  }
};

// ===================================== Generators ======================================

// Names have soft roles so that enough ops succeed while collisions stay frequent: directories
// (and every non-final component) prefer "a"/"b", files prefer "c"/"d", symlinks and special
// nodes prefer "e" (80% each); otherwise any of a-e.
enum class Role { Any, Dir, File, Node };

std::string genName(Rng &r, Role role = Role::Any) {
  uint64_t x = r.below(1000);
  if (x < 12)
    return std::string(255, 'L'); // longest valid name
  if (x < 18)
    return std::string(256, 'M'); // ENAMETOOLONG
  if (role == Role::Dir && r.chance(80))
    return std::string(1, "ab"[r.below(2)]);
  if (role == Role::File && r.chance(80))
    return std::string(1, "cd"[r.below(2)]);
  if (role == Role::Node && r.chance(80))
    return "e";
  return std::string(1, "abcde"[r.below(5)]);
}

std::string genPath(Rng &r, Role role = Role::Any, int max_depth = 3) {
  if (r.chance(3))
    return ".";
  uint64_t x = r.below(100);
  int depth = std::min(max_depth, x < 45 ? 1 : x < 80 ? 2 : 3);
  std::string p;
  for (int i = 1; i < depth; ++i)
    p += genName(r, Role::Dir) + "/";
  p += genName(r, role);
  if (r.chance(2))
    p += "/";
  return p;
}

// Same parent directory as path, new final component: makes link/rename targets plausible.
std::string genSibling(Rng &r, const std::string &path, Role role) {
  size_t slash = path.find_last_of('/', path.size() > 1 ? path.size() - 2 : 0);
  std::string parent = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  return parent + genName(r, role);
}

// Symlink targets stay relative and never contain "..", so nothing resolves outside the tree.
std::string genTarget(Rng &r) {
  uint64_t x = r.below(100);
  if (x < 2)
    return std::string(4095, 'T'); // longest storable target
  if (x < 3)
    return std::string(4096, 'U'); // ENAMETOOLONG
  if (x < 6)
    return ""; // ENOENT
  if (x < 14)
    return ".";
  return genPath(r);
}

int64_t genOffset(Rng &r) {
  switch (r.below(20)) {
  case 0:
    return 0;
  case 1:
    return r.chance(50) ? -1 : -4096;
  case 2:
    return INT64_MAX - static_cast<int64_t>(r.below(8192));
  case 3:
  case 4:
    return static_cast<int64_t>(r.below(int64_t{1} << 40));
  case 5:
    return int64_t{1} << 40;
  case 6:
  case 7:
    return static_cast<int64_t>(r.below(64)) * 4096 + static_cast<int64_t>(r.below(7)) - 3;
  case 8:
  case 9:
    return static_cast<int64_t>(r.below(1 << 20));
  default:
    return static_cast<int64_t>(r.below(16384));
  }
}

int64_t genIoLen(Rng &r) {
  switch (r.below(10)) {
  case 0:
    return 0;
  case 1:
    return 4096 * static_cast<int64_t>(1 + r.below(4));
  case 2:
    return static_cast<int64_t>(r.below(kMaxIo)) + 1;
  case 3:
  case 4:
    return static_cast<int64_t>(r.below(65536)) + 1;
  default:
    return static_cast<int64_t>(r.below(4096)) + 1;
  }
}

int64_t genFileSize(Rng &r) {
  switch (r.below(12)) {
  case 0:
    return 0;
  case 1:
    return -static_cast<int64_t>(1 + r.below(4096));
  case 2:
    return static_cast<int64_t>(r.below(int64_t{1} << 40));
  case 3:
    return INT64_MAX - static_cast<int64_t>(r.below(2));
  case 4:
  case 5:
    return 4096 * static_cast<int64_t>(r.below(32));
  case 6:
    return static_cast<int64_t>(r.below(1 << 20));
  default:
    return static_cast<int64_t>(r.below(16384));
  }
}

unsigned genPerm(Rng &r) {
  static const unsigned kCommon[] = {0644, 0755, 0777, 0600, 0666, 0700, 0444, 0000, 0640, 0750};
  unsigned m = r.chance(60) ? r.pick(kCommon) : static_cast<unsigned>(r.below(01000));
  if (r.chance(8))
    m |= S_ISUID;
  if (r.chance(10))
    m |= S_ISGID;
  if (r.chance(10))
    m |= S_ISVTX;
  return m;
}

uint32_t genId(Rng &r) {
  static const uint32_t kIds[] = {0, kNobody, 1000, static_cast<uint32_t>(-1)};
  return r.pick(kIds);
}

int genSlot(Rng &r) { return static_cast<int>(r.below(kSlots)); }

timespec genTime(Rng &r) {
  uint64_t x = r.below(100);
  if (x < 15)
    return {0, UTIME_NOW};
  if (x < 30)
    return {0, UTIME_OMIT};
  if (x < 33)
    return {static_cast<time_t>(r.below(1 << 30)), 1000000000 + static_cast<long>(r.below(10))};
  time_t sec = static_cast<time_t>(r.below(2000000000));
  if (x < 40)
    sec = -static_cast<time_t>(r.below(1000000000));
  else if (x < 45)
    sec = (time_t{1} << 34) + static_cast<time_t>(r.below(1000));
  return {sec, static_cast<long>(r.below(1000000000))};
}

// xattr ops use shallow paths and few names so that get/replace/remove often find a value.
std::string genXattrPath(Rng &r) { return genPath(r, Role::Any, r.chance(70) ? 1 : 3); }

std::string genXattrName(Rng &r) {
  static const char *const kNames[] = {"user.a", "user.a", "user.b", "trusted.a", "trusted.b"};
  uint64_t x = r.below(100);
  if (x < 2)
    return "user."; // empty suffix: EINVAL
  if (x < 4)
    return "foo.bar"; // unsupported namespace: EOPNOTSUPP
  if (x < 5)
    return ""; // ERANGE
  if (x < 7)
    return "user." + std::string(250, 'x'); // 255 bytes, the maximum
  if (x < 8)
    return "user." + std::string(251, 'y'); // 256 bytes: ERANGE
  return r.pick(kNames);
}

// ===================================== Flag names ======================================

std::string flagList(int v, std::initializer_list<std::pair<int, const char *>> names) {
  std::string s;
  for (auto [bit, name] : names)
    if (v & bit)
      s += (s.empty() ? "" : "|") + std::string(name);
  return s.empty() ? "0" : s;
}

// Inode flags (chattr) as names.
std::string chattrStr(int f) {
  return flagList(f, {{FS_IMMUTABLE_FL, "IMMUTABLE"},
                      {FS_APPEND_FL, "APPEND"},
                      {FS_NODUMP_FL, "NODUMP"},
                      {FS_NOATIME_FL, "NOATIME"},
                      {FS_COMPR_FL, "COMPR"}});
}

std::string openFlagsStr(int f) {
  int acc = f & O_ACCMODE;
  std::string s = acc == O_RDONLY ? "RDONLY" : acc == O_WRONLY ? "WRONLY" : "RDWR";
  std::string rest = flagList(f, {{O_CREAT, "CREAT"},
                                  {O_EXCL, "EXCL"},
                                  {O_TRUNC, "TRUNC"},
                                  {O_APPEND, "APPEND"},
                                  {O_DIRECTORY, "DIRECTORY"},
                                  {O_NOFOLLOW, "NOFOLLOW"},
                                  {__O_TMPFILE, "TMPFILE"}});
  return rest == "0" ? s : s + "|" + rest;
}

std::string modeStr(unsigned m) { return fmt("0%o", m); }

std::string slotStr(int slot) { return fmt("#%d", slot); }

std::string timeStr(const timespec &t) {
  if (t.tv_nsec == UTIME_NOW)
    return "NOW";
  if (t.tv_nsec == UTIME_OMIT)
    return "OMIT";
  return fmt("%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
}

std::string idStr(uint32_t id) {
  return id == static_cast<uint32_t>(-1) ? "-1" : std::to_string(id);
}

std::string statStr(const struct stat &st) {
  std::string s = fmt("mode=0%o nlink=%lu uid=%u gid=%u size=%lld", st.st_mode,
                      static_cast<unsigned long>(st.st_nlink), st.st_uid, st.st_gid,
                      static_cast<long long>(st.st_size));
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
    s += fmt(" rdev=%u:%u", major(st.st_rdev), minor(st.st_rdev));
  return s;
}

// ================================== Shared helpers ==================================

std::vector<std::pair<std::string, unsigned char>> readEntries(int dirfd) {
  std::vector<std::pair<std::string, unsigned char>> out;
  alignas(8) char buf[32768];
  for (;;) {
    ssize_t n = getdents64(dirfd, buf, sizeof buf);
    if (n <= 0)
      break;
    for (ssize_t pos = 0; pos < n;) {
      auto *d = reinterpret_cast<struct dirent64 *>(buf + pos);
      out.emplace_back(d->d_name, d->d_type);
      pos += d->d_reclen;
    }
  }
  return out;
}

std::vector<std::string> splitNames(const char *buf, size_t len) {
  std::vector<std::string> names;
  for (size_t i = 0; i < len;) {
    size_t n = strnlen(buf + i, len - i);
    names.emplace_back(buf + i, n);
    i += n + 1;
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string joinNames(const std::vector<std::string> &v) {
  std::string s;
  for (const auto &n : v)
    s += (s.empty() ? "" : ",") + pretty(n);
  return s;
}

// Clears a file's or directory's inode flags (chattr -i -a ...), as root; errors ignored.
void clearInodeFlags(int dirfd, const char *name) {
  int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return;
  int none = 0;
  (void)ioctl(fd, FS_IOC_SETFLAGS, &none);
  close(fd);
}

// rm -rf of everything below dirfd; returns the number of entries removed. `force`: clear
// immutable and append-only flags first (resetting a side), else they refuse as they should.
long removeChildren(int dirfd, bool force = false) {
  long removed = 0;
  for (const auto &[name, type] : readEntries(dirfd)) {
    if (name == "." || name == "..")
      continue;
    struct stat st;
    int flags = 0;
    const bool known = fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (force && known && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
      clearInodeFlags(dirfd, name.c_str());
    if (known && S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        removed += removeChildren(sub, force);
        close(sub);
      }
      flags = AT_REMOVEDIR;
    }
    if (unlinkat(dirfd, name.c_str(), flags) == 0)
      ++removed;
  }
  return removed;
}

sigjmp_buf g_bus_jmp;
volatile sig_atomic_t g_bus_armed = 0;

void onSigbus(int) {
  if (g_bus_armed)
    siglongjmp(g_bus_jmp, 1);
  signal(SIGBUS, SIG_DFL);
  raise(SIGBUS);
}

// memcpy into a shared mapping; a broken filesystem can answer a page fault with SIGBUS.
bool guardedCopy(char *dst, const std::string *src) {
  if (sigsetjmp(g_bus_jmp, 1)) {
    g_bus_armed = 0;
    return false;
  }
  g_bus_armed = 1;
  memcpy(dst, src->data(), src->size());
  g_bus_armed = 0;
  return true;
}

// ========================== Op kinds: generate / run / show ==========================
// Each run function executes on one side with the cwd at that side's root and the op's
// credentials already in place; paths are relative.

// ---- open / close ----
void genOpen(Rng &r, Op &op) {
  static const int kAcc[] = {O_RDONLY, O_WRONLY, O_RDWR, O_RDWR, O_RDWR};
  op.flags = r.pick(kAcc);
  if (r.chance(65))
    op.flags |= O_CREAT;
  if (r.chance(10))
    op.flags |= O_EXCL;
  if (r.chance(12))
    op.flags |= O_TRUNC;
  if (r.chance(12))
    op.flags |= O_APPEND;
  if (r.chance(6))
    op.flags |= O_DIRECTORY;
  if (r.chance(8))
    op.flags |= O_NOFOLLOW;
  op.path = genPath(r, (op.flags & O_DIRECTORY) ? Role::Dir : Role::File);
  op.mode = genPerm(r);
  op.slot = genSlot(r);
}
Result runOpen(Side &s, const Op &op) {
  struct stat st;
  int sflags = (op.flags & O_NOFOLLOW) ? AT_SYMLINK_NOFOLLOW : 0;
  if (kSkipOpenOfSpecialFiles && fstatat(AT_FDCWD, op.path.c_str(), &st, sflags) == 0 &&
      (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
    return skipped("fifo/device");
  int fd = openat(AT_FDCWD, op.path.c_str(), op.flags | O_CLOEXEC, op.mode);
  Result r = sysResult(fd);
  if (fd >= 0) {
    if (s.fd[op.slot] >= 0)
      close(s.fd[op.slot]);
    s.fd[op.slot] = fd;
    r.rc = 0; // fd numbers are not compared
  }
  return r;
}
std::string showOpen(const Op &op) {
  return fmt("%s flags=%s mode=%s -> %s", pretty(op.path).c_str(), openFlagsStr(op.flags).c_str(),
             modeStr(op.mode).c_str(), slotStr(op.slot).c_str());
}

void genSlotOnly(Rng &r, Op &op) { op.slot = genSlot(r); }
Result runClose(Side &s, const Op &op) {
  Result r = sysResult(close(s.fd[op.slot]));
  s.fd[op.slot] = -1;
  return r;
}
std::string showSlot(const Op &op) { return slotStr(op.slot); }

// ---- write / read (flags bit 0: positional pwrite/pread at off) ----
void genIo(Rng &r, Op &op) {
  op.slot = genSlot(r);
  op.flags = r.chance(60);
  op.off = genOffset(r);
  op.len = genIoLen(r);
}
Result runWrite(Side &s, const Op &op) {
  std::string data = makeData(static_cast<size_t>(op.len), op.dseed);
  int fd = s.fd[op.slot];
  return sysResult(op.flags ? pwrite(fd, data.data(), data.size(), op.off)
                            : write(fd, data.data(), data.size()));
}
std::string showIo(const Op &op) {
  std::string where = op.flags ? fmt("off=%" PRId64, op.off) : std::string("at-pos");
  return fmt("%s %s len=%" PRId64, slotStr(op.slot).c_str(), where.c_str(), op.len);
}

Result runRead(Side &s, const Op &op) {
  static std::vector<char> buf(kMaxIo);
  int fd = s.fd[op.slot];
  size_t len = static_cast<size_t>(op.len);
  Result r = sysResult(op.flags ? pread(fd, buf.data(), len, op.off) : read(fd, buf.data(), len));
  if (r.rc > 0)
    r.data.assign(buf.data(), static_cast<size_t>(r.rc));
  return r;
}

// ---- lseek (flags = whence) ----
void genLseek(Rng &r, Op &op) {
  static const int kWhence[] = {SEEK_SET,  SEEK_CUR,  SEEK_END, SEEK_DATA,
                                SEEK_DATA, SEEK_HOLE, SEEK_HOLE};
  op.slot = genSlot(r);
  op.flags = r.pick(kWhence);
  op.off = r.chance(30) ? static_cast<int64_t>(r.below(8192)) : genOffset(r);
}
Result runLseek(Side &s, const Op &op) {
  struct stat st;
  int fd = s.fd[op.slot];
  if (kSkipLseekOnDirectories && fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
    return skipped("directory");
  const off_t before = lseek(fd, 0, SEEK_CUR);
  const off_t off = lseek(fd, op.off, op.flags);
  const int err = errno;
  // The exclusion of kSeekMapLimit: near LLONG_MAX tmpfs's seek arithmetic overflows, and the
  // overflowed offset comes back as an arbitrary errno (ENXIO, ENOENT, EACCES, ...).
  if ((op.flags == SEEK_DATA || op.flags == SEEK_HOLE) && fstat(fd, &st) == 0 &&
      st.st_size > kSeekMapLimit && (off >= kSeekMapLimit || off < 0)) {
    // One side may have moved and the other not: both go back, so later at-pos I/O agrees.
    if (before >= 0)
      lseek(fd, before, SEEK_SET);
    return skipped("data map in the last pages below LLONG_MAX");
  }
  errno = err;
  return sysResult(off);
}
std::string showLseek(const Op &op) {
  static const char *const kNames[] = {"SET", "CUR", "END", "DATA", "HOLE"};
  return fmt("%s off=%" PRId64 " whence=%s", slotStr(op.slot).c_str(), op.off, kNames[op.flags]);
}

// ---- ftruncate / truncate ----
void genFtruncate(Rng &r, Op &op) {
  op.slot = genSlot(r);
  op.len = genFileSize(r);
}
Result runFtruncate(Side &s, const Op &op) { return sysResult(ftruncate(s.fd[op.slot], op.len)); }
std::string showFtruncate(const Op &op) {
  return fmt("%s len=%" PRId64, slotStr(op.slot).c_str(), op.len);
}

void genTruncate(Rng &r, Op &op) {
  op.path = genPath(r, Role::File);
  op.len = genFileSize(r);
}
Result runTruncate(Side &, const Op &op) { return sysResult(truncate(op.path.c_str(), op.len)); }
std::string showTruncate(const Op &op) {
  return fmt("%s len=%" PRId64, pretty(op.path).c_str(), op.len);
}

// ---- fallocate (flags = mode) ----
void genFallocate(Rng &r, Op &op) {
  static const int kModes[] = {0,
                               FALLOC_FL_KEEP_SIZE,
                               FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               FALLOC_FL_ZERO_RANGE,
                               FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                               FALLOC_FL_PUNCH_HOLE};
  op.slot = genSlot(r);
  op.flags = r.pick(kModes);
  op.off = genOffset(r);
  uint64_t x = r.below(10);
  // FUSE kills suid/sgid before asking the daemon, so a mode that tmpfs refuses would still
  // strip them for an unprivileged caller (see the exclusion table).
  if (kRootOnlyUnsupportedFallocate && (op.flags & FALLOC_FL_ZERO_RANGE))
    op.nobody = false;
  op.len = x == 0  ? 0
           : x < 3 ? static_cast<int64_t>(r.below(kMaxFalloc)) + 1
           : x < 5 ? 4096 * static_cast<int64_t>(1 + r.below(16))
                   : static_cast<int64_t>(r.below(65536)) + 1;
}
Result runFallocate(Side &s, const Op &op) {
  return sysResult(fallocate(s.fd[op.slot], op.flags, op.off, op.len));
}
std::string showFallocate(const Op &op) {
  std::string mode = flagList(op.flags, {{FALLOC_FL_KEEP_SIZE, "KEEP_SIZE"},
                                         {FALLOC_FL_PUNCH_HOLE, "PUNCH_HOLE"},
                                         {FALLOC_FL_ZERO_RANGE, "ZERO_RANGE"}});
  return fmt("%s mode=%s off=%" PRId64 " len=%" PRId64, slotStr(op.slot).c_str(), mode.c_str(),
             op.off, op.len);
}

// ---- fsync (flags: 1 = fdatasync) / fstat ----
void genFsync(Rng &r, Op &op) {
  op.slot = genSlot(r);
  op.flags = r.chance(30);
}
Result runFsync(Side &s, const Op &op) {
  int fd = s.fd[op.slot];
  return sysResult(op.flags ? fdatasync(fd) : fsync(fd));
}
std::string showFsync(const Op &op) { return slotStr(op.slot) + (op.flags ? " (fdatasync)" : ""); }

Result runFstat(Side &s, const Op &op) {
  struct stat st;
  Result r = sysResult(fstat(s.fd[op.slot], &st));
  if (r.rc == 0)
    r.text = statStr(st);
  return r;
}

// ---- copy_file_range (flags bit 0: explicit off_in, bit 1: explicit off_out) ----
void genCopyRange(Rng &r, Op &op) {
  op.slot = genSlot(r);
  op.slot2 = r.chance(20) ? op.slot : genSlot(r);
  op.flags = static_cast<int>(r.below(4));
  op.off = r.chance(70) ? static_cast<int64_t>(r.below(65536)) : genOffset(r);
  op.off2 = r.chance(70) ? static_cast<int64_t>(r.below(65536)) : genOffset(r);
  op.len = genIoLen(r);
}
Result runCopyRange(Side &s, const Op &op) {
  loff_t in = op.off, out = op.off2;
  Result r =
      sysResult(copy_file_range(s.fd[op.slot], (op.flags & 1) ? &in : nullptr, s.fd[op.slot2],
                                (op.flags & 2) ? &out : nullptr, static_cast<size_t>(op.len), 0));
  if (op.flags & 1)
    r.text += fmt("off_in=%lld ", static_cast<long long>(in));
  if (op.flags & 2)
    r.text += fmt("off_out=%lld", static_cast<long long>(out));
  return r;
}
std::string showCopyRange(const Op &op) {
  std::string in = (op.flags & 1) ? fmt("%" PRId64, op.off) : std::string("pos");
  std::string out = (op.flags & 2) ? fmt("%" PRId64, op.off2) : std::string("pos");
  return fmt("%s@%s -> %s@%s len=%" PRId64, slotStr(op.slot).c_str(), in.c_str(),
             slotStr(op.slot2).c_str(), out.c_str(), op.len);
}

// ---- mmap shared write: off is a position in 1/65536ths of the current size ----
void genMmapWrite(Rng &r, Op &op) {
  op.slot = genSlot(r);
  op.off = static_cast<int64_t>(r.below(65536));
  op.len = static_cast<int64_t>(r.below(r.chance(70) ? 4096 : 65536)) + 1;
}
Result runMmapWrite(Side &s, const Op &op) {
  int fd = s.fd[op.slot];
  struct stat st;
  if (fstat(fd, &st) != 0)
    return sysResult(-1);
  if (!S_ISREG(st.st_mode) || st.st_size == 0) { // let the kernel judge; nothing to write
    void *p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
      return sysResult(-1);
    munmap(p, 4096);
    return Result{};
  }
  int64_t size = st.st_size;
  int64_t start = static_cast<int64_t>((static_cast<__int128>(size) * op.off) >> 16);
  int64_t len = std::min(op.len, size - start);
  int64_t pgoff = start & ~int64_t{4095};
  size_t maplen = static_cast<size_t>(start + len - pgoff);
  void *p = mmap(nullptr, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, pgoff);
  Result r = sysResult(p == MAP_FAILED ? -1 : 0);
  r.text = fmt("range=[%" PRId64 ",+%" PRId64 ")", start, len);
  if (p == MAP_FAILED)
    return r;
  std::string data = makeData(static_cast<size_t>(len), op.dseed);
  if (!guardedCopy(static_cast<char *>(p) + (start - pgoff), &data))
    r.text += " SIGBUS";
  else if (msync(p, maplen, MS_SYNC) != 0)
    r.text += fmt(" msync:%s", errName(errno));
  munmap(p, maplen);
  return r;
}
std::string showMmapWrite(const Op &op) {
  return fmt("%s at=%" PRId64 "/65536*size len=%" PRId64, slotStr(op.slot).c_str(), op.off, op.len);
}

// ---- namespace ops ----
void genMkdir(Rng &r, Op &op) {
  op.path = genPath(r, Role::Dir);
  op.mode = genPerm(r);
}
void genChmod(Rng &r, Op &op) {
  op.path = genPath(r);
  op.mode = genPerm(r);
}
Result runMkdir(Side &, const Op &op) { return sysResult(mkdir(op.path.c_str(), op.mode)); }
std::string showPathMode(const Op &op) {
  return fmt("%s mode=%s", pretty(op.path).c_str(), modeStr(op.mode).c_str());
}

void genDirPath(Rng &r, Op &op) { op.path = genPath(r, Role::Dir); }
void genUnlinkPath(Rng &r, Op &op) { op.path = genPath(r, r.chance(40) ? Role::Node : Role::File); }
std::string showPath(const Op &op) { return pretty(op.path); }
Result runRmdir(Side &, const Op &op) { return sysResult(rmdir(op.path.c_str())); }
Result runUnlink(Side &, const Op &op) { return sysResult(unlink(op.path.c_str())); }

void genRename(Rng &r, Op &op) {
  op.path = genPath(r);
  uint64_t x = r.below(100);
  op.path2 = x < 12 && op.path != "." ? op.path + "/" + genName(r) // into its own subtree
             : x < 50                 ? genSibling(r, op.path, Role::Any)
                                      : genPath(r);
  x = r.below(100);
  op.flags = x < 50   ? 0
             : x < 70 ? RENAME_NOREPLACE
             : x < 95 ? RENAME_EXCHANGE
                      : RENAME_NOREPLACE | RENAME_EXCHANGE;
}
Result runRename(Side &, const Op &op) {
  return sysResult(syscall(SYS_renameat2, AT_FDCWD, op.path.c_str(), AT_FDCWD, op.path2.c_str(),
                           static_cast<unsigned>(op.flags)));
}
std::string showRename(const Op &op) {
  std::string f = flagList(op.flags, {{RENAME_NOREPLACE, "NOREPLACE"},
                                      {RENAME_EXCHANGE, "EXCHANGE"},
                                      {RENAME_WHITEOUT, "WHITEOUT"}});
  return fmt("%s -> %s flags=%s", pretty(op.path).c_str(), pretty(op.path2).c_str(), f.c_str());
}

void genLink(Rng &r, Op &op) {
  op.path = genPath(r, Role::File);
  op.path2 = r.chance(50) ? genSibling(r, op.path, Role::File) : genPath(r, Role::File);
  op.flags = r.chance(30) ? AT_SYMLINK_FOLLOW : 0;
}
Result runLink(Side &, const Op &op) {
  return sysResult(linkat(AT_FDCWD, op.path.c_str(), AT_FDCWD, op.path2.c_str(), op.flags));
}
std::string showLink(const Op &op) {
  return fmt("%s -> %s%s", pretty(op.path).c_str(), pretty(op.path2).c_str(),
             op.flags ? " flags=SYMLINK_FOLLOW" : "");
}

void genSymlink(Rng &r, Op &op) {
  op.path = genPath(r, Role::Node);
  op.path2 = genTarget(r);
}
Result runSymlink(Side &, const Op &op) {
  return sysResult(symlink(op.path2.c_str(), op.path.c_str()));
}
std::string showSymlink(const Op &op) {
  return fmt("%s -> target %s", pretty(op.path).c_str(), pretty(op.path2).c_str());
}

void genReadlink(Rng &r, Op &op) {
  op.path = genPath(r, Role::Node);
  uint64_t x = r.below(10);
  op.len = x == 0 ? 0 : x < 3 ? static_cast<int64_t>(1 + r.below(8)) : 8192;
}
Result runReadlink(Side &, const Op &op) {
  std::vector<char> buf(static_cast<size_t>(std::max<int64_t>(op.len, 1)));
  Result r = sysResult(readlink(op.path.c_str(), buf.data(), static_cast<size_t>(op.len)));
  if (r.rc > 0)
    r.text = pretty(std::string(buf.data(), static_cast<size_t>(r.rc)));
  return r;
}
std::string showReadlink(const Op &op) {
  return fmt("%s bufsize=%" PRId64, pretty(op.path).c_str(), op.len);
}

void genMknod(Rng &r, Op &op) {
  op.path = genPath(r, Role::Node);
  uint64_t x = r.below(100);
  unsigned type = x < 33   ? S_IFIFO
                  : x < 53 ? S_IFCHR
                  : x < 68 ? S_IFBLK
                  : x < 85 ? S_IFSOCK
                  : x < 95 ? S_IFREG
                  : x < 98 ? 0
                           : S_IFDIR;
  op.mode = type | genPerm(r);
  op.dev = type == S_IFCHR ? makedev(1, 3) : type == S_IFBLK ? makedev(7, 0) : 0;
}
Result runMknod(Side &, const Op &op) { return sysResult(mknod(op.path.c_str(), op.mode, op.dev)); }
std::string showMknod(const Op &op) {
  return fmt("%s mode=%s dev=%u:%u", pretty(op.path).c_str(), modeStr(op.mode).c_str(),
             major(op.dev), minor(op.dev));
}

// rm -rf of a shallow path, always as root. Renames can bury directories deeper than generated
// paths reach; this keeps the tree bounded (and exercises readdir + unlink + rmdir in bulk).
void genRmtree(Rng &r, Op &op) {
  op.path = genName(r, Role::Dir);
  if (r.chance(75))
    op.path += "/" + genName(r);
  op.nobody = false;
}
Result runRmtree(Side &, const Op &op) {
  int fd = open(op.path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return sysResult(unlink(op.path.c_str())); // not a directory (or missing)
  long removed = removeChildren(fd);
  close(fd);
  Result r = sysResult(rmdir(op.path.c_str()));
  r.text = fmt("removed=%ld", removed);
  return r;
}

// ---- attribute ops ----
Result runChmod(Side &, const Op &op) { return sysResult(chmod(op.path.c_str(), op.mode)); }

void genChown(Rng &r, Op &op) {
  op.path = genPath(r);
  op.uid = genId(r);
  op.gid = genId(r);
  op.flags = r.chance(30) ? AT_SYMLINK_NOFOLLOW : 0;
}
Result runChown(Side &, const Op &op) {
  // chown(f, -1, -1) of a setuid file (notify_change: ATTR_KILL_SUID), or of a setgid one by
  // someone who may not drop the bit (setattr_should_drop_sgid), by a non-owner: the VFS turns
  // the kill into a mode change, which tmpfs refuses to a non-owner (EPERM); kernel
  // FUSE strips the mode change before its permission check and asks the daemon only to kill
  // the bit (docs/semantics.md). Skipped on both sides.
  struct stat st;
  if (kSkipChownNoopOfSetgidByNonOwner && op.nobody && op.uid == static_cast<uint32_t>(-1) &&
      op.gid == static_cast<uint32_t>(-1) &&
      fstatat(AT_FDCWD, op.path.c_str(), &st, op.flags) == 0 && !S_ISDIR(st.st_mode) &&
      st.st_uid != kNobody &&
      ((st.st_mode & S_ISUID) || ((st.st_mode & S_ISGID) && st.st_gid != kNobody)))
    return skipped("chown -1 -1 of a setuid/setgid file by a non-owner");
  return sysResult(fchownat(AT_FDCWD, op.path.c_str(), op.uid, op.gid, op.flags));
}
std::string showChown(const Op &op) {
  return fmt("%s uid=%s gid=%s%s", pretty(op.path).c_str(), idStr(op.uid).c_str(),
             idStr(op.gid).c_str(), op.flags ? " flags=SYMLINK_NOFOLLOW" : "");
}

void genUtimens(Rng &r, Op &op) {
  op.path = genPath(r);
  op.null_times = r.chance(10);
  op.times[0] = genTime(r);
  op.times[1] = genTime(r);
  op.flags = r.chance(25) ? AT_SYMLINK_NOFOLLOW : 0;
}
Result runUtimens(Side &, const Op &op) {
  // Read back through a descriptor taken before: resolving the path again would walk its
  // symlinks, and a walk stamps a symlink's atime (relatime) if it is the file itself (a -> .).
  const int nofollow = op.flags & AT_SYMLINK_NOFOLLOW ? O_NOFOLLOW : 0;
  const int target = open(op.path.c_str(), O_PATH | O_CLOEXEC | nofollow);
  Result r =
      sysResult(utimensat(AT_FDCWD, op.path.c_str(), op.null_times ? nullptr : op.times, op.flags));
  struct stat st;
  if (r.rc == 0 && !op.null_times && target >= 0 && fstat(target, &st) == 0) {
    // Explicitly set times must come back exactly.
    if (op.times[0].tv_nsec != UTIME_NOW && op.times[0].tv_nsec != UTIME_OMIT)
      r.text += "atime=" + timeStr(st.st_atim) + " ";
    if (op.times[1].tv_nsec != UTIME_NOW && op.times[1].tv_nsec != UTIME_OMIT)
      r.text += "mtime=" + timeStr(st.st_mtim);
  }
  if (target >= 0)
    close(target);
  return r;
}
std::string showUtimens(const Op &op) {
  std::string t = op.null_times
                      ? std::string("NULL")
                      : "atime=" + timeStr(op.times[0]) + " mtime=" + timeStr(op.times[1]);
  return fmt("%s %s%s", pretty(op.path).c_str(), t.c_str(),
             op.flags ? " flags=SYMLINK_NOFOLLOW" : "");
}

void genStat(Rng &r, Op &op) {
  op.path = genPath(r);
  op.flags = r.chance(50) ? AT_SYMLINK_NOFOLLOW : 0;
}
Result runStat(Side &, const Op &op) {
  struct stat st;
  Result r = sysResult(fstatat(AT_FDCWD, op.path.c_str(), &st, op.flags));
  if (r.rc == 0)
    r.text = statStr(st);
  return r;
}
std::string showStat(const Op &op) { return pretty(op.path) + (op.flags ? " (lstat)" : " (stat)"); }

void genAccess(Rng &r, Op &op) {
  static const unsigned kModes[] = {F_OK, R_OK, W_OK, X_OK, R_OK | W_OK, R_OK | X_OK};
  static const int kFlags[] = {0, 0, AT_EACCESS, AT_SYMLINK_NOFOLLOW};
  op.path = genPath(r);
  op.mode = r.pick(kModes);
  op.flags = r.pick(kFlags);
}
Result runAccess(Side &, const Op &op) {
  return sysResult(faccessat(AT_FDCWD, op.path.c_str(), static_cast<int>(op.mode), op.flags));
}
std::string showAccess(const Op &op) {
  std::string m = op.mode == F_OK ? std::string("F_OK")
                                  : flagList(static_cast<int>(op.mode),
                                             {{R_OK, "R_OK"}, {W_OK, "W_OK"}, {X_OK, "X_OK"}});
  std::string f = flagList(op.flags, {{AT_EACCESS, "EACCESS"}, {AT_SYMLINK_NOFOLLOW, "NOFOLLOW"}});
  return fmt("%s mode=%s flags=%s", pretty(op.path).c_str(), m.c_str(), f.c_str());
}

Result runReaddir(Side &, const Op &op) {
  int fd = open(op.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return sysResult(-1);
  auto entries = readEntries(fd);
  close(fd);
  std::sort(entries.begin(), entries.end());
  Result r;
  for (const auto &[name, type] : entries)
    r.text += fmt("%s%s:%u", r.text.empty() ? "" : " ", pretty(name).c_str(), type);
  return r;
}

// ---- readdir while the directory changes (xfstests generic/736) ----
// Adds op.len files to the directory, then reads it with getdents64 buffers of op.off bytes;
// after each chunk every added file just returned is renamed away and back (generic/736), the
// first of them is replaced by a new file of the same name, and a new name is created. POSIX
// leaves open whether names added during the read are returned, so only what must hold on any
// filesystem is compared: how many names the directory held when the read began, how many
// were returned twice, how many of those present all along were never returned, and whether
// the listing ends (within three times the names it began with). The files added are removed
// again.
void genReaddirChurn(Rng &r, Op &op) {
  op.path = genPath(r, Role::Dir);
  op.len = 8 + static_cast<int64_t>(r.below(120));
  op.off = 288 + 8 * static_cast<int64_t>(r.below(64)); // room for one 255-byte name at least
}
Result runReaddirChurn(Side &, const Op &op) {
  auto at = [&](const std::string &name) { return op.path + "/" + name; };
  auto create = [&](const std::string &name) {
    int fd = open(at(name).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    return fd < 0 ? -1 : close(fd);
  };
  std::vector<std::string> added;
  auto remove_added = [&] {
    for (const auto &name : added)
      unlink(at(name).c_str());
  };
  int probe = open(op.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (probe < 0)
    return sysResult(-1);
  close(probe);
  for (int64_t i = 0; i < op.len; ++i) {
    added.push_back(fmt("churn.%lld", static_cast<long long>(i)));
    if (create(added.back()) != 0) {
      Result res = sysResult(-1);
      added.pop_back();
      remove_added();
      return res;
    }
  }
  int fd = open(op.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    Result res = sysResult(-1);
    remove_added();
    return res;
  }
  std::map<std::string, int> before, seen;
  for (const auto &e : readEntries(fd))
    before[e.first] = 0;
  lseek(fd, 0, SEEK_SET);
  alignas(8) char buf[1024];
  Result res;
  size_t read = 0;
  bool ends = true;
  for (int created = 0;; ++created) {
    ssize_t n = getdents64(fd, buf, static_cast<size_t>(op.off));
    if (n <= 0) {
      if (n < 0)
        res = sysResult(-1);
      break;
    }
    if (read > 3 * before.size()) { // a listing that meets what it adds never ends
      ends = false;
      break;
    }
    bool replaced = false;
    for (ssize_t pos = 0; pos < n;) {
      auto *d = reinterpret_cast<struct dirent64 *>(buf + pos);
      const std::string name = d->d_name;
      pos += d->d_reclen;
      seen[name]++;
      read++;
      if (name.rfind("churn.", 0) != 0 || name == "churn.tmp" || name.rfind("churn.new", 0) == 0)
        continue;
      rename(at(name).c_str(), at("churn.tmp").c_str());
      rename(at("churn.tmp").c_str(), at(name).c_str());
      if (!replaced) {
        unlink(at(name).c_str());
        create(name);
        replaced = true;
      }
    }
    added.push_back(fmt("churn.new%d", created));
    create(added.back());
  }
  close(fd);
  remove_added();
  if (res.rc < 0)
    return res;
  size_t twice = 0, missing = 0;
  for (const auto &[name, times] : seen)
    twice += times > 1;
  for (const auto &[name, unused] : before)
    missing += !seen.contains(name);
  res.text = fmt("entries=%zu returned-twice=%zu never-returned=%zu%s", before.size(), twice,
                 missing, ends ? "" : " (the listing did not end)");
  return res;
}
std::string showReaddirChurn(const Op &op) {
  return fmt("%s files=%lld bufsize=%lld", pretty(op.path).c_str(), static_cast<long long>(op.len),
             static_cast<long long>(op.off));
}

// ---- xattrs (len: value size for set, buffer size for get/list) ----
void genSetxattr(Rng &r, Op &op) {
  static const int kFlags[] = {0, 0, XATTR_CREATE, XATTR_REPLACE, XATTR_CREATE | XATTR_REPLACE};
  op.path = genXattrPath(r);
  op.name = genXattrName(r);
  op.flags = r.pick(kFlags);
  op.nofollow = r.chance(30);
  uint64_t x = r.below(100);
  op.len = x < 10   ? 0
           : x < 80 ? static_cast<int64_t>(r.below(64))
           : x < 96 ? static_cast<int64_t>(r.below(4096))
           : x < 98 ? 65536
                    : 65537;
}
Result runSetxattr(Side &, const Op &op) {
  std::string v = makeData(static_cast<size_t>(op.len), op.dseed);
  auto fn = op.nofollow ? lsetxattr : setxattr;
  return sysResult(fn(op.path.c_str(), op.name.c_str(), v.data(), v.size(), op.flags));
}
std::string showSetxattr(const Op &op) {
  std::string f = flagList(op.flags, {{XATTR_CREATE, "CREATE"}, {XATTR_REPLACE, "REPLACE"}});
  return fmt("%s%s name=%s size=%" PRId64 " flags=%s", op.nofollow ? "(l) " : "",
             pretty(op.path).c_str(), pretty(op.name).c_str(), op.len, f.c_str());
}

int64_t genXattrBuf(Rng &r) {
  uint64_t x = r.below(4);
  return x == 0 ? 0 : x == 1 ? static_cast<int64_t>(1 + r.below(8)) : 65536;
}
void genGetxattr(Rng &r, Op &op) {
  op.path = genXattrPath(r);
  op.name = genXattrName(r);
  op.nofollow = r.chance(30);
  op.len = genXattrBuf(r);
}
Result runGetxattr(Side &, const Op &op) {
  static std::vector<char> buf(65536);
  auto fn = op.nofollow ? lgetxattr : getxattr;
  size_t n = static_cast<size_t>(op.len);
  Result r = sysResult(fn(op.path.c_str(), op.name.c_str(), n ? buf.data() : nullptr, n));
  if (r.rc > 0 && n > 0)
    r.data.assign(buf.data(), static_cast<size_t>(r.rc));
  return r;
}
std::string showGetxattr(const Op &op) {
  return fmt("%s%s name=%s bufsize=%" PRId64, op.nofollow ? "(l) " : "", pretty(op.path).c_str(),
             pretty(op.name).c_str(), op.len);
}

void genListxattr(Rng &r, Op &op) {
  op.path = genXattrPath(r);
  op.nofollow = r.chance(30);
  op.len = genXattrBuf(r);
}
Result runListxattr(Side &, const Op &op) {
  static std::vector<char> buf(65536);
  auto fn = op.nofollow ? llistxattr : listxattr;
  size_t n = static_cast<size_t>(op.len);
  Result r = sysResult(fn(op.path.c_str(), n ? buf.data() : nullptr, n));
  if (r.rc > 0 && n > 0)
    r.text = joinNames(splitNames(buf.data(), static_cast<size_t>(r.rc)));
  return r;
}
std::string showListxattr(const Op &op) {
  return fmt("%s%s bufsize=%" PRId64, op.nofollow ? "(l) " : "", pretty(op.path).c_str(), op.len);
}

void genRemovexattr(Rng &r, Op &op) {
  op.path = genXattrPath(r);
  op.name = genXattrName(r);
  op.nofollow = r.chance(30);
}
Result runRemovexattr(Side &, const Op &op) {
  auto fn = op.nofollow ? lremovexattr : removexattr;
  return sysResult(fn(op.path.c_str(), op.name.c_str()));
}
std::string showRemovexattr(const Op &op) {
  return fmt("%s%s name=%s", op.nofollow ? "(l) " : "", pretty(op.path).c_str(),
             pretty(op.name).c_str());
}

// ---- the op table ----
struct OpKind {
  const char *name;
  unsigned weight;
  void (*gen)(Rng &, Op &);
  Result (*run)(Side &, const Op &);
  std::string (*show)(const Op &);
};

// ---- POSIX ACLs, inode flags, whiteouts, O_TMPFILE ----

// An ACL in the kernel's xattr form (include/uapi/linux/posix_acl_xattr.h): u32 version 2, then
// entries {u16 tag, u16 perm, u32 id}. Mostly valid (sorted, a mask when there are named
// entries); sometimes not (no mask, a duplicate, unsorted, version 1, a bad perm): EINVAL.
std::string genAclBytes(Rng &r) {
  enum : uint16_t {
    kUserObj = 1,
    kUser = 2,
    kGroupObj = 4,
    kGroup = 8,
    kMask = 0x10,
    kOther = 0x20
  };
  struct Entry {
    uint16_t tag, perm;
    uint32_t id;
  };
  static const uint32_t kIds[] = {0, kNobody, 1000};
  auto perm = [&r] { return static_cast<uint16_t>(r.below(8)); };
  std::vector<Entry> e = {{kUserObj, perm(), ~0u}};
  const bool named_user = r.chance(50), named_group = r.chance(40);
  if (named_user)
    e.push_back({kUser, perm(), r.pick(kIds)});
  e.push_back({kGroupObj, perm(), ~0u});
  if (named_group)
    e.push_back({kGroup, perm(), r.pick(kIds)});
  if ((named_user || named_group) ? !r.chance(5) : r.chance(20))
    e.push_back({kMask, perm(), ~0u});
  e.push_back({kOther, perm(), ~0u});
  uint32_t version = 2;
  const uint64_t bad = r.below(100);
  if (bad < 3)
    e.push_back(e.front()); // duplicate USER_OBJ
  else if (bad < 5)
    std::swap(e.front(), e.back()); // unsorted
  else if (bad < 6)
    version = 1;
  else if (bad < 7)
    e.back().perm = 8; // not rwx
  std::string out(reinterpret_cast<const char *>(&version), 4);
  for (const Entry &x : e)
    out.append(reinterpret_cast<const char *>(&x), sizeof x);
  return out;
}
void genSetacl(Rng &r, Op &op) {
  op.path = genXattrPath(r);
  op.name = r.chance(70) ? "system.posix_acl_access" : "system.posix_acl_default";
  op.value = genAclBytes(r);
}
Result runSetacl(Side &, const Op &op) {
  return sysResult(setxattr(op.path.c_str(), op.name.c_str(), op.value.data(), op.value.size(), 0));
}
std::string showSetacl(const Op &op) {
  std::string entries;
  for (size_t i = 4; i + 8 <= op.value.size(); i += 8) {
    uint16_t tag, perm;
    uint32_t id;
    memcpy(&tag, op.value.data() + i, 2);
    memcpy(&perm, op.value.data() + i + 2, 2);
    memcpy(&id, op.value.data() + i + 4, 4);
    entries += fmt("%s%x:%u:%s", entries.empty() ? "" : ",", tag, perm,
                   id == ~0u ? "-" : std::to_string(id).c_str());
  }
  return fmt("%s %s [%s]", pretty(op.path).c_str(), op.name.c_str(), entries.c_str());
}

// chattr: FS_IOC_SETFLAGS through an O_RDONLY|O_NONBLOCK open, as chattr(1) does. Flags tmpfs
// keeps (mm/shmem.c: nodump, noatime) and one it refuses; immutable and append-only are not
// generated (see kExclusions: inode_flags.sh compares them with tmpfs).
constexpr int kChattrFlags[] = {0, FS_NODUMP_FL, FS_NOATIME_FL, FS_NODUMP_FL | FS_NOATIME_FL,
                                FS_COMPR_FL};
void genChattr(Rng &r, Op &op) {
  op.path = genPath(r);
  op.flags = r.pick(kChattrFlags);
  if (r.chance(10))
    op.flags |= r.pick(kChattrFlags);
}
// FS_IOC_GETFLAGS or SETFLAGS (`cmd`) on `path`, opened as chattr(1) and lsattr(1) open it;
// fifos and devices are skipped like their opens (kSkipOpenOfSpecialFiles).
Result inodeFlagsIoctl(const std::string &path, unsigned long cmd, int &flags) {
  struct stat st;
  if (kSkipOpenOfSpecialFiles && lstat(path.c_str(), &st) == 0 &&
      (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
    return skipped("fifo/device");
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return sysResult(fd);
  Result r = sysResult(ioctl(fd, cmd, &flags));
  close(fd);
  return r;
}
Result runChattr(Side &, const Op &op) {
  int flags = op.flags;
  return inodeFlagsIoctl(op.path, FS_IOC_SETFLAGS, flags);
}
std::string showChattr(const Op &op) {
  return fmt("%s flags=%s", pretty(op.path).c_str(), chattrStr(op.flags).c_str());
}
// lsattr: FS_IOC_GETFLAGS.
Result runLsattr(Side &, const Op &op) {
  int flags = 0;
  Result r = inodeFlagsIoctl(op.path, FS_IOC_GETFLAGS, flags);
  if (!r.skipped && r.rc == 0)
    r.text = chattrStr(flags);
  return r;
}

// renameat2(RENAME_WHITEOUT), alone or with RENAME_NOREPLACE or RENAME_EXCHANGE (EINVAL).
void genRenameWhiteout(Rng &r, Op &op) {
  genRename(r, op);
  static const int kFlags[] = {RENAME_WHITEOUT, RENAME_WHITEOUT, RENAME_WHITEOUT | RENAME_NOREPLACE,
                               RENAME_WHITEOUT | RENAME_EXCHANGE};
  op.flags = r.pick(kFlags);
}

// open(O_TMPFILE) of a directory into a slot; linking it in is linkat_slot.
void genTmpfile(Rng &r, Op &op) {
  op.path = genPath(r, Role::Dir);
  op.flags = O_TMPFILE | (r.chance(80) ? O_RDWR : O_WRONLY) | (r.chance(15) ? O_EXCL : 0);
  op.mode = genPerm(r);
  op.slot = genSlot(r);
}
// linkat of a slot's file through /proc/self/fd (AT_SYMLINK_FOLLOW), as unprivileged programs
// link an O_TMPFILE in.
void genLinkSlot(Rng &r, Op &op) {
  op.slot = genSlot(r);
  op.path = genPath(r, Role::File);
}
Result runLinkSlot(Side &s, const Op &op) {
  if (s.fd[op.slot] < 0)
    return sysResult(-(errno = EBADF, 1));
  const std::string proc = fmt("/proc/self/fd/%d", s.fd[op.slot]);
  return sysResult(linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, op.path.c_str(), AT_SYMLINK_FOLLOW));
}
std::string showLinkSlot(const Op &op) {
  return fmt("%s -> %s", slotStr(op.slot).c_str(), pretty(op.path).c_str());
}

const OpKind kOps[] = {
    {"open", 12, genOpen, runOpen, showOpen},
    {"close", 2, genSlotOnly, runClose, showSlot},
    {"write", 10, genIo, runWrite, showIo},
    {"read", 6, genIo, runRead, showIo},
    {"lseek", 4, genLseek, runLseek, showLseek},
    {"ftruncate", 3, genFtruncate, runFtruncate, showFtruncate},
    {"truncate", 2, genTruncate, runTruncate, showTruncate},
    {"fallocate", 4, genFallocate, runFallocate, showFallocate},
    {"fsync", 1, genFsync, runFsync, showFsync},
    {"fstat", 2, genSlotOnly, runFstat, showSlot},
    {"copy_file_range", 3, genCopyRange, runCopyRange, showCopyRange},
    {"mmap_write", 3, genMmapWrite, runMmapWrite, showMmapWrite},
    {"mkdir", 5, genMkdir, runMkdir, showPathMode},
    {"rmdir", 3, genDirPath, runRmdir, showPath},
    {"unlink", 4, genUnlinkPath, runUnlink, showPath},
    {"rename", 8, genRename, runRename, showRename},
    {"link", 3, genLink, runLink, showLink},
    {"symlink", 3, genSymlink, runSymlink, showSymlink},
    {"readlink", 2, genReadlink, runReadlink, showReadlink},
    {"mknod", 3, genMknod, runMknod, showMknod},
    {"rmtree", 1, genRmtree, runRmtree, showPath},
    {"chmod", 4, genChmod, runChmod, showPathMode},
    {"chown", 3, genChown, runChown, showChown},
    {"utimensat", 3, genUtimens, runUtimens, showUtimens},
    {"setxattr", 4, genSetxattr, runSetxattr, showSetxattr},
    {"getxattr", 3, genGetxattr, runGetxattr, showGetxattr},
    {"listxattr", 2, genListxattr, runListxattr, showListxattr},
    {"removexattr", 2, genRemovexattr, runRemovexattr, showRemovexattr},
    {"stat", 3, genStat, runStat, showStat},
    {"access", 2, genAccess, runAccess, showAccess},
    {"readdir", 2, genDirPath, runReaddir, showPath},
    {"readdir_churn", 1, genReaddirChurn, runReaddirChurn, showReaddirChurn},
    {"setacl", 3, genSetacl, runSetacl, showSetacl},
    {"chattr", 2, genChattr, runChattr, showChattr},
    {"lsattr", 1, genStat, runLsattr, showPath},
    {"rename_whiteout", 2, genRenameWhiteout, runRename, showRename},
    {"o_tmpfile", 2, genTmpfile, runOpen, showOpen},
    {"linkat_slot", 2, genLinkSlot, runLinkSlot, showLinkSlot},
};
constexpr size_t kNumOps = sizeof kOps / sizeof kOps[0];

std::string showOp(const Op &op) {
  const OpKind &k = kOps[op.kind];
  return fmt("#%-5u %s%s %s", op.id, op.nobody ? "[nobody] " : "", k.name, k.show(op).c_str());
}

std::vector<Op> generate(uint64_t seed, uint64_t count) {
  unsigned total = 0;
  for (const OpKind &k : kOps)
    total += k.weight;
  Rng r(seed);
  std::vector<Op> ops;
  ops.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    Op op;
    uint64_t x = r.below(total);
    while (x >= kOps[op.kind].weight)
      x -= kOps[op.kind++].weight;
    op.id = static_cast<uint32_t>(i);
    op.nobody = r.chance(20);
    kOps[op.kind].gen(r, op);
    op.dseed = r.next();
    ops.push_back(std::move(op));
  }
  return ops;
}

// ================================= Trees and comparison =================================

struct Node {
  struct stat st;
  std::string target;
};
using Tree = std::map<std::string, Node>;

void scanDir(int dirfd, const std::string &prefix, Tree &tree) {
  for (const auto &[name, type] : readEntries(dirfd)) {
    if (name == "." || name == "..")
      continue;
    std::string path = prefix.empty() ? name : prefix + "/" + name;
    Node n;
    if (fstatat(dirfd, name.c_str(), &n.st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if (S_ISLNK(n.st.st_mode)) {
      char buf[8192];
      ssize_t len = readlinkat(dirfd, name.c_str(), buf, sizeof buf);
      n.target.assign(buf, static_cast<size_t>(std::max<ssize_t>(len, 0)));
    }
    bool dir = S_ISDIR(n.st.st_mode);
    tree.emplace(path, std::move(n));
    if (dir) {
      int sub = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        scanDir(sub, path, tree);
        close(sub);
      }
    }
  }
}

// Must be called with fsuid 0 (the harness always restores it after an op).
Tree scan(const Side &s) {
  Tree tree;
  Node root;
  fstat(s.root, &root.st);
  tree.emplace(".", root);
  int fd = openat(s.root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    scanDir(fd, "", tree);
    close(fd);
  }
  return tree;
}

std::string diffNode(const Node &a, const Node &b) {
  const struct stat &x = a.st, &y = b.st;
  if (x.st_mode != y.st_mode)
    return fmt("mode 0%o vs 0%o", x.st_mode, y.st_mode);
  if (x.st_uid != y.st_uid || x.st_gid != y.st_gid)
    return fmt("owner %u:%u vs %u:%u", x.st_uid, x.st_gid, y.st_uid, y.st_gid);
  if (x.st_nlink != y.st_nlink)
    return fmt("nlink %lu vs %lu", static_cast<unsigned long>(x.st_nlink),
               static_cast<unsigned long>(y.st_nlink));
  if (x.st_size != y.st_size)
    return fmt("size %lld vs %lld", static_cast<long long>(x.st_size),
               static_cast<long long>(y.st_size));
  if ((S_ISCHR(x.st_mode) || S_ISBLK(x.st_mode)) && x.st_rdev != y.st_rdev)
    return fmt("rdev %u:%u vs %u:%u", major(x.st_rdev), minor(x.st_rdev), major(y.st_rdev),
               minor(y.st_rdev));
  if (a.target != b.target)
    return "symlink target " + pretty(a.target) + " vs " + pretty(b.target);
  return "";
}

std::string diffTrees(const Tree &ref, const Tree &test) {
  auto i = ref.begin();
  auto j = test.begin();
  while (i != ref.end() || j != test.end()) {
    if (j == test.end() || (i != ref.end() && i->first < j->first))
      return fmt("%s exists only on ref (%s)", pretty(i->first).c_str(),
                 statStr(i->second.st).c_str());
    if (i == ref.end() || j->first < i->first)
      return fmt("%s exists only on test (%s)", pretty(j->first).c_str(),
                 statStr(j->second.st).c_str());
    std::string d = diffNode(i->second, j->second);
    if (!d.empty())
      return pretty(i->first) + ": " + d;
    ++i;
    ++j;
  }
  return "";
}

bool sameTime(const timespec &a, const timespec &b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// Did the op change mtime/ctime of each path on one side but not on the other? Only paths that
// existed before and still refer to the same inode on both sides are judged (see kExclusions).
std::string diffTimes(const Tree &refBefore, const Tree &refAfter, const Tree &testBefore,
                      const Tree &testAfter) {
  for (const auto &[path, ra] : refAfter) {
    auto rb = refBefore.find(path);
    auto tb = testBefore.find(path);
    auto ta = testAfter.find(path);
    if (rb == refBefore.end() || tb == testBefore.end() || ta == testAfter.end())
      continue;
    if (rb->second.st.st_ino != ra.st.st_ino || tb->second.st.st_ino != ta->second.st.st_ino)
      continue;
    bool rm = !sameTime(rb->second.st.st_mtim, ra.st.st_mtim);
    bool tm = !sameTime(tb->second.st.st_mtim, ta->second.st.st_mtim);
    bool rc = !sameTime(rb->second.st.st_ctim, ra.st.st_ctim);
    bool tc = !sameTime(tb->second.st.st_ctim, ta->second.st.st_ctim);
    if (rm != tm)
      return fmt("%s: mtime %s on ref but %s on test", pretty(path).c_str(),
                 rm ? "changed" : "unchanged", tm ? "changed" : "unchanged");
    if (rc != tc)
      return fmt("%s: ctime %s on ref but %s on test", pretty(path).c_str(),
                 rc ? "changed" : "unchanged", tc ? "changed" : "unchanged");
  }
  return "";
}

using Extents = std::vector<std::pair<int64_t, int64_t>>;

Extents dataMap(int fd, int64_t size) {
  Extents ext;
  const int64_t limit = std::min(size, kSeekMapLimit);
  for (int64_t pos = 0; pos < limit;) {
    off_t d = lseek(fd, pos, SEEK_DATA);
    if (d < 0 || d >= limit)
      break;
    off_t h = lseek(fd, d, SEEK_HOLE);
    if (h <= d || h > limit)
      h = limit;
    ext.emplace_back(d, h);
    pos = h;
  }
  return ext;
}

std::string extentsStr(const Extents &e) {
  std::string s;
  for (size_t i = 0; i < e.size() && i < 8; ++i)
    s += fmt("%s[%" PRId64 ",%" PRId64 ")", i ? " " : "", e[i].first, e[i].second);
  if (e.size() > 8)
    s += fmt(" ... (%zu extents)", e.size());
  return s.empty() ? "none" : s;
}

std::string compareContents(const Side &ref, const Side &test, const std::string &path,
                            int64_t size) {
  int a = openat(ref.root, path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  int err_a = errno;
  int b = openat(test.root, path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  int err_b = errno;
  std::string diff;
  if (a < 0 || b < 0) {
    diff = fmt("open for compare failed (ref %s, test %s)", a < 0 ? errName(err_a) : "ok",
               b < 0 ? errName(err_b) : "ok");
  } else {
    Extents ea = dataMap(a, size), eb = dataMap(b, size);
    if (ea != eb)
      diff = "data/hole map " + extentsStr(ea) + " vs " + extentsStr(eb);
    Extents all = ea; // compare bytes over the union of both maps
    all.insert(all.end(), eb.begin(), eb.end());
    std::vector<char> ba(1 << 20), bb(1 << 20);
    for (auto [from, to] : all) {
      for (int64_t pos = from; pos < to && diff.empty();) {
        size_t n = static_cast<size_t>(std::min<int64_t>(to - pos, 1 << 20));
        ssize_t ra = pread(a, ba.data(), n, pos), rb = pread(b, bb.data(), n, pos);
        if (ra != rb) {
          diff = fmt("read at %" PRId64 " returned %zd vs %zd", pos, ra, rb);
        } else if (ra > 0 && memcmp(ba.data(), bb.data(), static_cast<size_t>(ra)) != 0) {
          size_t k = 0;
          while (ba[k] == bb[k])
            ++k;
          diff = fmt("content differs at offset %" PRId64 " (0x%02x vs 0x%02x)",
                     pos + static_cast<int64_t>(k), static_cast<unsigned char>(ba[k]),
                     static_cast<unsigned char>(bb[k]));
        }
        if (ra <= 0)
          break;
        pos += ra;
      }
    }
  }
  if (a >= 0)
    close(a);
  if (b >= 0)
    close(b);
  return diff;
}

std::map<std::string, std::string> xattrsOf(const Side &s, const std::string &path) {
  std::map<std::string, std::string> out;
  if (fchdir(s.root) != 0)
    return out;
  std::vector<char> names(1 << 17), value(65536);
  ssize_t n = llistxattr(path.c_str(), names.data(), names.size());
  for (const auto &name : splitNames(names.data(), static_cast<size_t>(std::max<ssize_t>(n, 0)))) {
    ssize_t v = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    out[name] = v < 0 ? fmt("<error %s>", errName(errno))
                      : std::string(value.data(), static_cast<size_t>(v));
  }
  return out;
}

// A file's or directory's inode flags (FS_IOC_GETFLAGS) as text, or the error.
std::string inodeFlagsOf(const Side &s, const std::string &path) {
  int fd = openat(s.root, path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return fmt("<open %s>", errName(errno));
  int flags = 0;
  const bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  const int err = errno;
  close(fd);
  return ok ? chattrStr(flags) : fmt("<error %s>", errName(err));
}

std::string compareFinal(const Side &ref, const Side &test, const Tree &tree) {
  for (const auto &[path, node] : tree) {
    if (S_ISREG(node.st.st_mode)) {
      std::string d = compareContents(ref, test, path, node.st.st_size);
      if (!d.empty())
        return pretty(path) + ": " + d;
    }
    if (S_ISREG(node.st.st_mode) || S_ISDIR(node.st.st_mode)) {
      const std::string fa = inodeFlagsOf(ref, path), fb = inodeFlagsOf(test, path);
      if (fa != fb)
        return fmt("%s: inode flags %s vs %s", pretty(path).c_str(), fa.c_str(), fb.c_str());
    }
    auto xa = xattrsOf(ref, path), xb = xattrsOf(test, path);
    if (xa == xb)
      continue;
    std::vector<std::string> na, nb;
    for (const auto &kv : xa)
      na.push_back(kv.first);
    for (const auto &kv : xb)
      nb.push_back(kv.first);
    if (na != nb)
      return fmt("%s: xattr names {%s} vs {%s}", pretty(path).c_str(), joinNames(na).c_str(),
                 joinNames(nb).c_str());
    for (const auto &[name, value] : xa) {
      const std::string &other = xb[name];
      if (value != other)
        return fmt("%s: xattr %s value <%zu bytes fnv=%016" PRIx64 "> vs <%zu bytes fnv=%016" PRIx64
                   ">",
                   pretty(path).c_str(), pretty(name).c_str(), value.size(), fnv1a(value),
                   other.size(), fnv1a(other));
    }
  }
  return "";
}

// =================================== Harness ======================================

// Close all fds and wipe a side back to an empty root with mode 0777, owner 0:0, no xattrs.
void resetSide(Side &s) {
  for (int &fd : s.fd) {
    if (fd >= 0)
      close(fd);
    fd = -1;
  }
  clearInodeFlags(s.root, ".");
  int fd = openat(s.root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    removeChildren(fd, /*force=*/true);
    close(fd);
  }
  std::vector<char> names(1 << 17);
  ssize_t n = flistxattr(s.root, names.data(), names.size());
  for (const auto &name : splitNames(names.data(), static_cast<size_t>(std::max<ssize_t>(n, 0))))
    fremovexattr(s.root, name.c_str());
  if (fchown(s.root, 0, 0) != 0 || fchmod(s.root, 0777) != 0)
    fprintf(stderr, "difftest: warning: cannot reset %s root: %s\n", s.label, strerror(errno));
}

// Switches the thread's filesystem credentials for the lifetime of the object.
class FsCreds {
public:
  explicit FsCreds(bool nobody) : on_(nobody) {
    if (on_) {
      syscall(SYS_setfsgid, kNobody);
      syscall(SYS_setfsuid, kNobody);
    }
  }
  ~FsCreds() {
    if (on_) {
      syscall(SYS_setfsuid, 0);
      syscall(SYS_setfsgid, 0);
    }
  }
  FsCreds(const FsCreds &) = delete;
  FsCreds &operator=(const FsCreds &) = delete;

private:
  bool on_;
};

// Linux >= 6.13 gives tmpfs multigrain timestamps: a change gets a fine-grained time when the old
// one was queried (our per-op scan queries them all), so "changed" is always observable. But
// tmpfs unlink/rmdir/link stamp the *directory* with the victim's new ctime, which can equal the
// directory's current time when that was the newest fine-grained stamp handed out. To rule that
// out, before every op this ticks the global ctime floor past every existing stamp by updating a
// queried memfd (same shmem filesystem type) twice. See also probeMultigrain().
class ClockTicker {
public:
  ClockTicker() : fd_(memfd_create("difftest-clock", MFD_CLOEXEC)) {}
  ~ClockTicker() {
    if (fd_ >= 0)
      close(fd_);
  }
  ClockTicker(const ClockTicker &) = delete;
  ClockTicker &operator=(const ClockTicker &) = delete;

  void tick() {
    struct stat st;
    for (int i = 0; i < 2; ++i) {
      if (fd_ < 0 || ftruncate(fd_, ++size_ % 2) != 0 || fstat(fd_, &st) != 0)
        return;
    }
  }

  // True when back-to-back changes of a queried inode always get distinct ctimes.
  bool probeMultigrain() {
    struct stat a, b;
    for (int i = 0; i < 200; ++i) {
      if (fd_ < 0 || fstat(fd_, &a) != 0 || ftruncate(fd_, ++size_ % 2) != 0 || fstat(fd_, &b) != 0)
        return false;
      if (sameTime(a.st_ctim, b.st_ctim))
        return false;
    }
    return true;
  }

private:
  int fd_;
  uint64_t size_ = 0;
};

struct Divergence {
  size_t index; // op index in the replayed list; == list size for the final-tree comparison
  std::string report;
  std::string signature; // what kind of check failed on which op kind; kept while shrinking
};

// Per op kind outcome counts on the reference side (--stats): shows what the mix exercises.
struct Stats {
  std::array<std::map<std::string, uint64_t>, kNumOps> outcomes;

  void add(const Op &op, const Result &r) {
    std::string key = r.skipped ? "skipped" : r.rc < 0 ? errName(r.err) : "ok";
    ++outcomes[static_cast<size_t>(op.kind)][key];
  }
  void print() const {
    for (size_t k = 0; k < kNumOps; ++k) {
      uint64_t total = 0;
      for (const auto &kv : outcomes[k])
        total += kv.second;
      std::vector<std::pair<uint64_t, std::string>> sorted;
      for (const auto &kv : outcomes[k])
        sorted.emplace_back(kv.second, kv.first);
      std::sort(sorted.rbegin(), sorted.rend());
      std::string line;
      for (const auto &[n, what] : sorted)
        line += fmt(" %s:%" PRIu64, what.c_str(), n);
      printf("  %-16s %6" PRIu64 "%s\n", kOps[k].name, total, line.c_str());
    }
  }
};

struct Harness {
  Side ref{"ref", "", -1, false};
  Side test{"test", "", -1, true};
  int64_t inject = -1; // hidden --inject-fault N: op id N returns EIO on the test side when it
                       // succeeded (so it must succeed on the reference to show anything)
  bool injected = false;
  bool compare_times = true; // mtime/ctime changed-relation (off if tmpfs is not multigrain)
  ClockTicker clock;
  Stats *stats = nullptr; // collected for the main runs only, not while shrinking

  Result execute(Side &s, const Op &op) {
    if (fchdir(s.root) != 0)
      return skipped("fchdir failed");
    Result r;
    {
      FsCreds creds(op.nobody);
      r = kOps[op.kind].run(s, op);
    }
    if (s.is_test && static_cast<int64_t>(op.id) == inject && !r.skipped && r.rc >= 0) {
      r = Result{}; // the test side "fails" an op that succeeded, like a buggy daemon would
      r.rc = -1;
      r.err = EIO;
      injected = true;
    }
    return r;
  }

  std::optional<Divergence> replay(const std::vector<Op> &ops, bool verbose) {
    resetSide(ref);
    resetSide(test);
    Tree prevRef = scan(ref), prevTest = scan(test);
    for (size_t i = 0; i < ops.size(); ++i) {
      const Op &op = ops[i];
      clock.tick();
      Result a = execute(ref, op);
      Result b = execute(test, op);
      if (stats)
        stats->add(op, a);
      if (verbose)
        printf("%s => %s\n", showOp(op).c_str(), describe(a).c_str());
      if (!sameResult(a, b)) {
        std::string rep = fmt("op %s\n    ref : %s\n    test: %s", showOp(op).c_str(),
                              describe(a).c_str(), describe(b).c_str());
        if (a.data != b.data && !a.data.empty() && !b.data.empty()) {
          size_t k = 0;
          while (k < a.data.size() && k < b.data.size() && a.data[k] == b.data[k])
            ++k;
          rep += fmt("\n    data first differs at byte %zu", k);
        }
        return Divergence{i, rep, std::string("result:") + kOps[op.kind].name};
      }
      Tree curRef = scan(ref), curTest = scan(test);
      std::string d = diffTrees(curRef, curTest);
      if (d.empty() && compare_times)
        d = diffTimes(prevRef, curRef, prevTest, curTest);
      if (!d.empty())
        return Divergence{i, fmt("after op %s\n    tree: %s", showOp(op).c_str(), d.c_str()),
                          std::string("tree:") + kOps[op.kind].name};
      prevRef = std::move(curRef);
      prevTest = std::move(curTest);
    }
    std::string d = diffTrees(prevRef, prevTest);
    if (d.empty())
      d = compareFinal(ref, test, prevRef);
    if (!d.empty())
      return Divergence{ops.size(), "final tree comparison\n    " + d, "final"};
    return std::nullopt;
  }

  // ddmin over the op list (complement reduction). A candidate counts as failing when it diverges
  // with the same signature as the original; it is then cut after the op where it diverged,
  // since later ops cannot matter.
  std::vector<Op> shrink(std::vector<Op> ops, const std::string &signature, int &replays) {
    auto fails = [&](std::vector<Op> &cand) {
      ++replays;
      auto d = replay(cand, false);
      if (!d || d->signature != signature)
        return false;
      if (d->index + 1 < cand.size())
        cand.resize(d->index + 1);
      return true;
    };
    size_t n = 2;
    while (ops.size() >= 2 && replays < kMaxReplays) {
      size_t chunk = (ops.size() + n - 1) / n;
      bool reduced = false;
      for (size_t start = 0; start < ops.size() && !reduced && replays < kMaxReplays;
           start += chunk) {
        std::vector<Op> cand(ops.begin(), ops.begin() + static_cast<ptrdiff_t>(start));
        size_t end = std::min(ops.size(), start + chunk);
        cand.insert(cand.end(), ops.begin() + static_cast<ptrdiff_t>(end), ops.end());
        if (fails(cand)) {
          ops = std::move(cand);
          n = std::max<size_t>(n - 1, 2);
          reduced = true;
        }
      }
      if (!reduced) {
        if (n >= ops.size())
          break;
        n = std::min(n * 2, ops.size());
      }
    }
    return ops;
  }
};

// ==================================== main ======================================

void usage(FILE *f) {
  fprintf(f, "usage: pkramfs-difftest [--seed N] [--ops M] [--seeds K] [--verbose] [--stats]\n"
             "                        [--list-exclusions] REF_DIR TEST_DIR\n"
             "  REF_DIR   empty directory on kernel tmpfs (mount with -o huge=never)\n"
             "  TEST_DIR  empty directory on the filesystem under test\n"
             "  --seed N  first seed (default 1)     --ops M    ops per seed (default 1000)\n"
             "  --seeds K number of seeds (default 1) --verbose print every op and result\n"
             "  --stats   print outcome counts per op kind\n"
             "Must run as root. Exit: 0 no divergence, 1 divergence, 2 usage error.\n");
}

bool parseU64(const char *s, uint64_t &out) {
  if (!s || !*s || *s == '-')
    return false;
  char *end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end)
    return false;
  out = v;
  return true;
}

bool openSide(Side &s, const std::string &dir) {
  s.dir = dir;
  s.root = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s.root < 0) {
    fprintf(stderr, "difftest: cannot open %s directory %s: %s\n", s.label, dir.c_str(),
            strerror(errno));
    return false;
  }
  int fd = openat(s.root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  size_t entries = fd >= 0 ? readEntries(fd).size() : 0;
  if (fd >= 0)
    close(fd);
  if (entries > 2) { // refuse to wipe a directory that is not empty to begin with
    fprintf(stderr, "difftest: %s directory %s is not empty\n", s.label, dir.c_str());
    return false;
  }
  return true;
}

struct Options {
  uint64_t seed = 1, ops = 1000, seeds = 1;
  bool verbose = false;
  bool stats = false;
  int64_t inject = -1;
  std::vector<std::string> dirs;
};

// Returns 0 on success, 2 on usage error, -1 when the program should just exit 0.
int parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string val;
    bool has_val = false;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      val = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      has_val = true;
    }
    auto number = [&](uint64_t &out) {
      if (!has_val) {
        if (i + 1 >= argc)
          return false;
        val = argv[++i];
      }
      return parseU64(val.c_str(), out);
    };
    uint64_t v = 0;
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return -1;
    } else if (a == "--list-exclusions") {
      for (const Exclusion &e : kExclusions)
        printf("- %s: %s\n", e.what, e.why);
      return -1;
    } else if (a == "--stats") {
      o.stats = true;
    } else if (a == "--verbose" || a == "-v") {
      o.verbose = true;
    } else if (a == "--seed") {
      if (!number(o.seed))
        return 2;
    } else if (a == "--ops") {
      if (!number(o.ops))
        return 2;
    } else if (a == "--seeds") {
      if (!number(o.seeds) || o.seeds == 0)
        return 2;
    } else if (a == "--inject-fault") { // hidden: demonstrates detection and shrinking
      if (!number(v))
        return 2;
      o.inject = static_cast<int64_t>(v);
    } else if (a.rfind("-", 0) == 0 && a != "-") {
      fprintf(stderr, "difftest: unknown option %s\n", a.c_str());
      return 2;
    } else {
      o.dirs.push_back(a);
    }
  }
  return o.dirs.size() == 2 ? 0 : 2;
}

} // namespace

int main(int argc, char **argv) {
  Options opt;
  int prc = parseArgs(argc, argv, opt);
  if (prc < 0)
    return 0;
  if (prc != 0) {
    usage(stderr);
    return 2;
  }
  if (geteuid() != 0) {
    fprintf(stderr, "difftest: must run as root (uses setfsuid, chown, mknod)\n");
    return 2;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  umask(0);
  if (setgroups(0, nullptr) != 0 || syscall(SYS_setfsgid, 0) < 0) {
    fprintf(stderr, "difftest: cannot drop supplementary groups: %s\n", strerror(errno));
    return 2;
  }
  syscall(SYS_setfsuid, kNobody);
  bool fsuid_ok = syscall(SYS_setfsuid, 0) == static_cast<long>(kNobody);
  if (!fsuid_ok || syscall(SYS_setfsuid, 0) != 0) {
    fprintf(stderr, "difftest: setfsuid does not work here\n");
    return 2;
  }

  Harness h;
  h.inject = opt.inject;
  if (!openSide(h.ref, opt.dirs[0]) || !openSide(h.test, opt.dirs[1]))
    return 2;
  struct stat sr, stt;
  fstat(h.ref.root, &sr);
  fstat(h.test.root, &stt);
  if (sr.st_dev == stt.st_dev && sr.st_ino == stt.st_ino) {
    fprintf(stderr, "difftest: REF_DIR and TEST_DIR are the same directory\n");
    return 2;
  }
  h.compare_times = h.clock.probeMultigrain();
  if (!h.compare_times)
    fprintf(stderr, "difftest: warning: kernel tmpfs timestamps are not multigrain here; "
                    "mtime/ctime change relations are not compared\n");
  struct sigaction sa = {};
  sa.sa_handler = onSigbus;
  sigaction(SIGBUS, &sa, nullptr);

  resetSide(h.ref);
  resetSide(h.test);
  if (std::string d = diffTrees(scan(h.ref), scan(h.test)); !d.empty()) {
    printf("difftest: DIVERGENCE before any op: the empty trees differ\n    %s\n", d.c_str());
    printf("difftest: 0 seeds, 0 ops, 1 divergences\n");
    return 1;
  }

  auto t0 = std::chrono::steady_clock::now();
  uint64_t total_ops = 0, divergences = 0;
  Stats stats;
  for (uint64_t seed = opt.seed; seed < opt.seed + opt.seeds; ++seed) {
    std::vector<Op> ops = generate(seed, opt.ops);
    if (opt.verbose)
      printf("difftest: seed %" PRIu64 ", %zu ops\n", seed, ops.size());
    h.stats = opt.stats ? &stats : nullptr;
    auto d = h.replay(ops, opt.verbose);
    h.stats = nullptr;
    total_ops += d ? std::min(d->index + 1, ops.size()) : ops.size();
    if (!d)
      continue;
    ++divergences;
    printf("difftest: DIVERGENCE seed=%" PRIu64 " at op index %zu%s\n  %s\n", seed, d->index,
           d->index == ops.size() ? " (after the last op)" : "", d->report.c_str());
    printf("difftest: reproduce with: %s --seed %" PRIu64 " --ops %zu %s %s\n", argv[0], seed,
           std::min(d->index + 1, ops.size()), opt.dirs[0].c_str(), opt.dirs[1].c_str());
    if (d->index < ops.size())
      ops.resize(d->index + 1);
    printf("difftest: shrinking %zu ops...\n", ops.size());
    int replays = 0;
    std::vector<Op> small = h.shrink(ops, d->signature, replays);
    auto again = h.replay(small, false);
    printf("difftest: shortest reproducer for seed %" PRIu64 " (%zu ops, %d replays):\n", seed,
           small.size(), replays);
    for (const Op &op : small)
      printf("    %s\n", showOp(op).c_str());
    if (again)
      printf("  which diverges at: %s\n", again->report.c_str());
    else
      printf("  (warning: reproducer no longer diverges; divergence may be flaky)\n");
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  resetSide(h.ref);
  resetSide(h.test);
  // Leave the roots as we found them.
  if (fchown(h.ref.root, sr.st_uid, sr.st_gid) != 0 ||
      fchmod(h.ref.root, sr.st_mode & 07777) != 0 ||
      fchown(h.test.root, stt.st_uid, stt.st_gid) != 0 ||
      fchmod(h.test.root, stt.st_mode & 07777) != 0)
    fprintf(stderr, "difftest: warning: could not restore root modes\n");
  if (opt.inject >= 0 && !h.injected)
    printf("difftest: note: op %" PRId64 " never succeeded on the reference; nothing injected\n",
           opt.inject);
  if (opt.stats) {
    printf("difftest: outcomes per op kind (reference side):\n");
    stats.print();
  }
  printf("difftest: elapsed %.2f s\n", secs);
  printf("difftest: %" PRIu64 " seeds, %" PRIu64 " ops, %" PRIu64 " divergences\n", opt.seeds,
         total_ops, divergences);
  return divergences ? 1 : 0;
}
