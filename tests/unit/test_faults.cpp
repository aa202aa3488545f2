// Allocation failures injected into the backend (backend/util/fault.h): for every kind of mutating
// operation and every allocation it makes, the Nth one fails. The operation must then fail with
// ENOMEM/ENOSPC (or, for a write, come back short) or succeed, and leave a consistent tree: no
// half-built inode (Filesystem::verify: names, link counts, parents, directory sizes), nothing
// leaked (free blocks and inodes), and a journal that says exactly what the tree holds (a
// restore of a copy of the node gives the same tree, times included). The same operation
// without the fault then succeeds: nothing half-done blocks it.
#ifdef PKRAMFS_FAULT_INJECTION

#include "util/fault.h"
#include "fs/filesystem.h"
#include "util/geometry.h"
#include "node/node.h"
#include "support/callers.h"
#include "support/mounted_node.h"
#include "support/temp_dir.h"

#include <catch2/catch.hpp>
#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <map>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace pkramfs;
using namespace pkramfs::test;

namespace {

struct Names final : DirSink {
  std::vector<std::pair<std::string, uint64_t>> entries;
  bool add(std::string_view name, const struct stat &st, uint64_t) override {
    if (name != "." && name != "..")
      entries.emplace_back(name, st.st_ino);
    return true;
  }
};

// Everything a user can see of the tree, one line per inode reached by a name, sorted by path.
// `times`: also mtime and ctime (equal between a tree and its restored copy, not between two
// runs of the same operation). atime is left out: reading the tree to dump it changes it.
std::string dump(Filesystem &fs, bool times) {
  std::map<std::string, std::string> lines;
  std::function<void(uint64_t, const std::string &)> walk = [&](uint64_t dir,
                                                                const std::string &path) {
    Names names;
    REQUIRE(fs.readdir(dir, 0, false, names).ok());
    for (auto &[name, ino] : names.entries) {
      auto st = fs.getattr(ino);
      REQUIRE(st.ok());
      std::ostringstream line;
      line << (times ? std::to_string(ino) : "") << " mode=" << std::oct << st->st_mode << std::dec
           << " nlink=" << st->st_nlink << " size=" << st->st_size << " blocks=" << st->st_blocks
           << " uid=" << st->st_uid;
      if (auto flags = fs.get_flags(ino); flags.ok())
        line << " flags=" << *flags;
      if (times)
        line << " mtime=" << st->st_mtim.tv_sec << "." << st->st_mtim.tv_nsec
             << " ctime=" << st->st_ctim.tv_sec << "." << st->st_ctim.tv_nsec;
      if (S_ISLNK(st->st_mode))
        line << " -> " << *fs.readlink(ino);
      if (S_ISREG(st->st_mode)) {
        Collect c;
        REQUIRE(fs.read(ino, 0, 1 << 30, c).ok());
        line << " data=" << std::hash<std::string>{}(c.bytes);
      }
      auto list = fs.listxattr(ino, kAdmin);
      REQUIRE(list.ok());
      for (size_t at = 0; at < list->size(); at = list->find('\0', at) + 1) {
        const std::string name(list->c_str() + at);
        line << " " << name << "=" << *fs.getxattr(ino, name);
      }
      lines[path + "/" + name] = line.str();
      if (S_ISDIR(st->st_mode))
        walk(ino, path + "/" + name);
    }
  };
  walk(kRootIno, "");
  std::string out;
  for (auto &[path, line] : lines)
    out += path + line + "\n";
  return out;
}

std::string usage(Filesystem &fs) {
  const struct statvfs st = fs.statfs();
  return "free blocks " + std::to_string(st.f_bfree) + ", free inodes " +
         std::to_string(st.f_ffree);
}

std::vector<std::string> problems(Filesystem &fs) {
  std::vector<std::string> p;
  fs.verify(p);
  return p;
}

std::string pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>(seed + i * 7 + i / 4096);
  return s;
}

// The tree every operation starts from: /d with files f (10000 bytes, user.a), g (an xattr),
// h (1 MiB fallocated, unwritten, KEEP_SIZE), an empty directory /d/e, a symlink.
struct Setup {
  uint64_t d, f, g, h, e;
};
Setup build(Filesystem &fs) {
  Setup s{};
  s.d = fs.mkdir(kRootIno, "d", 0755, kRoot)->st_ino;
  s.f = fs.create(s.d, "f", 0644, kRoot)->st_ino;
  const std::string data = pattern(10000, 'a');
  REQUIRE(*fs.write(s.f, 0, data.data(), data.size(), kRoot) == data.size());
  REQUIRE(fs.setxattr(s.f, "user.a", "1", 0).ok());
  s.g = fs.create(s.d, "g", 0600, kRoot)->st_ino;
  REQUIRE(fs.setxattr(s.g, "user.g", "gee", 0).ok());
  s.h = fs.create(s.d, "h", 0644, kRoot)->st_ino;
  REQUIRE(fs.fallocate(s.h, FALLOC_FL_KEEP_SIZE, 0, kMiB, kRoot).ok());
  s.e = fs.mkdir(s.d, "e", 0700, kRoot)->st_ino;
  REQUIRE(fs.symlink(s.d, "s", "f", kRoot).ok());
  for (uint64_t ino : {s.f, s.g, s.h})
    fs.release(ino);
  return s;
}

// One operation: what it does, and whether a short write counts as a success.
struct Op {
  const char *name;
  std::function<Result<size_t>(Filesystem &, const Setup &)> run;
  size_t full = 0; // for writes: the byte count of a complete one
};

Result<size_t> done(Result<void> r) { return r ? Result<size_t>(0) : Errno{r.error()}; }
template <class T> Result<size_t> done(const Result<T> &r) {
  return r ? Result<size_t>(0) : Errno{r.error()};
}

const std::string kBig = pattern(300 * 1024, 'q');

std::vector<Op> operations() {
  const std::string long_target(300, 't');
  return {
      {"create",
       [](Filesystem &fs, const Setup &s) { return done(fs.create(s.d, "new", 0644, kRoot)); }},
      {"mkdir",
       [](Filesystem &fs, const Setup &s) { return done(fs.mkdir(s.d, "nd", 0755, kRoot)); }},
      {"mknod-fifo",
       [](Filesystem &fs, const Setup &s) {
         return done(fs.mknod(s.d, "p", S_IFIFO | 0644, 0, kRoot));
       }},
      {"symlink",
       [](Filesystem &fs, const Setup &s) { return done(fs.symlink(s.d, "ln", "f", kRoot)); }},
      {"symlink-long",
       [long_target](Filesystem &fs, const Setup &) {
         return done(fs.symlink(kRootIno, "long", long_target, kRoot));
       }},
      {"link", [](Filesystem &fs, const Setup &s) { return done(fs.link(s.f, kRootIno, "f2")); }},
      {"rename-across",
       [](Filesystem &fs, const Setup &s) {
         return done(fs.rename(s.d, "f", kRootIno, "moved", 0, kRoot));
       }},
      {"rename-over", [](Filesystem &fs,
                         const Setup &s) { return done(fs.rename(s.d, "f", s.d, "g", 0, kRoot)); }},
      {"rename-dir",
       [](Filesystem &fs, const Setup &s) {
         return done(fs.rename(s.d, "e", kRootIno, "e2", 0, kRoot));
       }},
      {"rename-exchange",
       [](Filesystem &fs, const Setup &s) {
         return done(fs.rename(s.d, "f", s.d, "e", RENAME_EXCHANGE, kRoot));
       }},
      {"rename-whiteout",
       [](Filesystem &fs, const Setup &s) {
         return done(fs.rename(s.d, "f", s.d, "g", RENAME_WHITEOUT, kRoot));
       }},
      {"rename-whiteout-across",
       [](Filesystem &fs, const Setup &s) {
         return done(fs.rename(s.d, "f", kRootIno, "moved", RENAME_WHITEOUT, kRoot));
       }},
      {"set-flags",
       [](Filesystem &fs, const Setup &s) { return done(fs.set_flags(s.f, FS_NODUMP_FL)); }},
      {"unlink", [](Filesystem &fs, const Setup &s) { return done(fs.unlink(s.d, "g")); }},
      {"rmdir", [](Filesystem &fs, const Setup &s) { return done(fs.rmdir(s.d, "e")); }},
      {"write-extend",
       [](Filesystem &fs, const Setup &s) {
         return fs.write(s.f, 9000, kBig.data(), kBig.size(), kRoot);
       },
       kBig.size()},
      {"write-far-hole",
       [](Filesystem &fs, const Setup &s) {
         return fs.write(s.f, 5 * kMiB + 100, kBig.data(), kBig.size(), kRoot);
       },
       kBig.size()},
      {"write-into-fallocated",
       [](Filesystem &fs, const Setup &s) {
         return fs.write(s.h, 4096 * 3 + 5, kBig.data(), 20000, kRoot);
       },
       20000},
      {"truncate-up",
       [](Filesystem &fs, const Setup &s) {
         SetAttr a;
         a.valid = SetAttr::kSize;
         a.size = 3 * kMiB;
         return done(fs.setattr(s.f, a, kRoot));
       }},
      {"truncate-down-mid-extent",
       [](Filesystem &fs, const Setup &s) {
         SetAttr a;
         a.valid = SetAttr::kSize;
         a.size = 5000;
         return done(fs.setattr(s.f, a, kRoot));
       }},
      {"open-trunc", [](Filesystem &fs,
                        const Setup &s) { return done(fs.open(s.f, O_WRONLY | O_TRUNC, kRoot)); }},
      {"fallocate",
       [](Filesystem &fs, const Setup &s) {
         return done(fs.fallocate(s.f, 0, 4096, 3 * kMiB, kRoot));
       }},
      {"fallocate-over-unwritten",
       [](Filesystem &fs, const Setup &s) {
         return done(fs.fallocate(s.h, 0, 8192, 2 * kMiB, kRoot));
       }},
      {"punch-hole-mid-extent",
       [](Filesystem &fs, const Setup &s) {
         return done(
             fs.fallocate(s.h, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 40960, 8192, kRoot));
       }},
      {"setxattr-new",
       [](Filesystem &fs, const Setup &s) { return done(fs.setxattr(s.f, "user.new", "v", 0)); }},
      {"setxattr-replace",
       [](Filesystem &fs, const Setup &s) {
         return done(fs.setxattr(s.g, "user.g", "longer value", 0));
       }},
      {"removexattr",
       [](Filesystem &fs, const Setup &s) { return done(fs.removexattr(s.g, "user.g")); }},
      {"copy_file_range",
       [](Filesystem &fs, const Setup &s) {
         return fs.copy_file_range(s.f, 0, s.g, 100, 10000, kRoot);
       },
       10000},
  };
}

// Restores a copy of the node (its journal as the operation left it) and returns its tree.
struct Restored {
  std::string tree, usage;
  std::vector<std::string> problems;
};
Restored restore_copy(const std::string &node, const std::string &copy) {
  std::filesystem::copy_file(node, copy, std::filesystem::copy_options::overwrite_existing);
  Mounted m(copy, 16 * kMiB, 1000);
  Restored r{dump(*m.fs, true), usage(*m.fs), problems(*m.fs)};
  m.fs.reset();
  m.node.reset();
  std::filesystem::remove(copy);
  return r;
}

// Runs `op` with the Nth pass through `point` failing, for N = 1 .. every pass it makes.
void sweep(fault::Point point, const char *point_name, const Op &op, const std::string &dir) {
  // The tree a successful run gives, without times (they differ from run to run).
  std::string after;
  {
    Mounted ref(dir + "/ref", 16 * kMiB, 1000);
    const Setup s = build(*ref.fs);
    fault::disarm_all();
    auto r = op.run(*ref.fs, s);
    INFO(op.name);
    REQUIRE(r.ok());
    after = dump(*ref.fs, false);
    ref.fs.reset();
    ref.node.reset();
    std::filesystem::remove(dir + "/ref");
  }
  for (uint64_t n = 1;; ++n) {
    const std::string node = dir + "/node";
    Mounted m(node, 16 * kMiB, 1000);
    const Setup s = build(*m.fs);
    const std::string before = dump(*m.fs, false);
    fault::arm(point, n);
    auto r = op.run(*m.fs, s);
    const uint64_t passes = fault::hits(point);
    fault::disarm_all();
    const bool fired = passes >= n;
    INFO(op.name << " with " << point_name << ":" << n << " (" << passes << " passes): "
                 << (r ? "ok " + std::to_string(*r) : std::string(strerror(r.error()))));
    if (!fired) {
      // Past the last pass: the operation ran unharmed; the sweep is done.
      CHECK(r.ok());
      m.fs.reset();
      m.node.reset();
      std::filesystem::remove(node);
      break;
    }
    // 1. It failed cleanly, or did what it should (a write may come back short).
    if (!r)
      CHECK((r.error() == ENOMEM || r.error() == ENOSPC));
    const std::string tree = dump(*m.fs, false);
    const bool complete = r && (op.full == 0 || *r == op.full);
    if (!r)
      CHECK(tree == before);
    else if (complete)
      CHECK(tree == after);
    // 2. No half-built inode, nothing leaked, and the journal holds exactly this tree.
    CHECK(problems(*m.fs) == std::vector<std::string>{});
    const std::string live = dump(*m.fs, true);
    const Restored restored = restore_copy(node, dir + "/copy");
    CHECK(restored.problems == std::vector<std::string>{});
    CHECK(restored.tree == live);
    CHECK(restored.usage == usage(*m.fs));
    // 3. Nothing half-done is in the way: the operation works now (unless it already did).
    if (!complete && op.full == 0) {
      auto again = op.run(*m.fs, s);
      CHECK(again.ok());
      CHECK(dump(*m.fs, false) == after);
      CHECK(problems(*m.fs) == std::vector<std::string>{});
      CHECK(restore_copy(node, dir + "/copy").tree == dump(*m.fs, true));
    }
    m.fs.reset();
    m.node.reset();
    std::filesystem::remove(node);
    REQUIRE(n < 200); // every operation makes far fewer passes
  }
}

} // namespace

TEST_CASE("faults: an operation whose Nth heap allocation fails leaves a consistent tree",
          "[faults]") {
  const std::string dir = temp_dir("/tmp/pkramfs-faults");
  for (const Op &op : operations()) {
    DYNAMIC_SECTION(op.name) { sweep(fault::Point::kHeap, "heap", op, dir); }
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("faults: an operation whose Nth block or frame allocation fails leaves a consistent tree",
          "[faults]") {
  const std::string dir = temp_dir("/tmp/pkramfs-faults");
  for (const Op &op : operations()) {
    DYNAMIC_SECTION(op.name << " arena") { sweep(fault::Point::kArena, "arena", op, dir); }
    DYNAMIC_SECTION(op.name << " frame") { sweep(fault::Point::kFrame, "frame", op, dir); }
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("faults: the heap sweep reaches every allocation site", "[faults]") {
  // Without this the sweeps above could pass by never failing anything.
  const std::string dir = temp_dir("/tmp/pkramfs-faults");
  Mounted m(dir + "/node", 16 * kMiB, 1000);
  const Setup s = build(*m.fs);
  std::map<std::string, uint64_t> passes;
  for (const Op &op : operations()) {
    fault::disarm_all();
    (void)op.run(*m.fs, s);
    passes[op.name] = fault::hits(fault::Point::kHeap);
  }
  fault::disarm_all();
  for (const char *name : {"create", "mkdir", "symlink-long", "link", "rename-across",
                           "write-extend", "fallocate", "setxattr-new", "punch-hole-mid-extent"}) {
    INFO(name);
    CHECK(passes[name] >= 1);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("faults: a spec names points and passes", "[faults]") {
  std::string error;
  CHECK(fault::configure("heap:3,arena:1", error));
  CHECK(fault::hit(fault::Point::kArena)); // the first pass fires
  CHECK_FALSE(fault::hit(fault::Point::kArena));
  CHECK_FALSE(fault::configure("heap", error));
  CHECK_FALSE(fault::configure("heap:0", error));
  CHECK_FALSE(fault::configure("nosuch:1", error));
  CHECK(error.find("unknown fault point 'nosuch'") == 0);
  fault::disarm_all();
}

#endif
