// Several threads on one Filesystem with a journal, as the daemon's FUSE workers, its control
// thread (status, preserve's checkpoint) and the journal-full checkpoint use it. Meant for the
// ThreadSanitizer build (tools/run-sanitized tsan), where a race is a report; in every build the
// tree must stay consistent and restore to the same tree.
#include "fs/filesystem.h"
#include "util/geometry.h"
#include "node/node.h"
#include "support/callers.h"
#include "support/mounted_node.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace pkramfs;
using namespace pkramfs::test;

namespace {

struct Names final : DirSink {
  std::vector<std::pair<std::string, struct stat>> entries;
  uint64_t next = 0;
  bool add(std::string_view name, const struct stat &st, uint64_t next_offset) override {
    if (name != "." && name != "..")
      entries.emplace_back(std::string(name), st);
    next = next_offset;
    return entries.size() < 16; // small batches: a listing takes several calls, as over FUSE
  }
};

std::vector<std::pair<std::string, struct stat>> list(Filesystem &fs, uint64_t dir) {
  std::vector<std::pair<std::string, struct stat>> all;
  uint64_t offset = 0;
  for (;;) {
    Names batch;
    if (!fs.readdir(dir, offset, false, batch).ok() || batch.entries.empty())
      break;
    all.insert(all.end(), batch.entries.begin(), batch.entries.end());
    offset = batch.next;
  }
  return all;
}

// path -> "mode size nlink content-hash" for the whole tree
void manifest(Filesystem &fs, uint64_t dir, const std::string &path,
              std::map<std::string, std::string> &out) {
  for (auto &[name, st] : list(fs, dir)) {
    const std::string p = path + "/" + name;
    std::string line = std::to_string(st.st_mode) + " " + std::to_string(st.st_size) + " " +
                       std::to_string(st.st_nlink);
    if (S_ISDIR(st.st_mode)) {
      manifest(fs, st.st_ino, p, out);
    } else {
      Collect c;
      REQUIRE(fs.read(st.st_ino, 0, 1 << 30, c).ok());
      line += " " + std::to_string(std::hash<std::string>{}(c.bytes));
    }
    out[p] = line;
  }
}

// One FUSE worker's worth of mixed requests in its own directory and a shared one.
void churn(Filesystem &fs, uint64_t own, uint64_t shared, unsigned seed, int ops) {
  std::mt19937 rng(seed);
  const std::string data(9000, static_cast<char>('a' + seed % 26));
  auto pick_dir = [&] { return rng() % 2 ? own : shared; };
  auto name = [&] { return "f" + std::to_string(rng() % 24); };
  for (int i = 0; i < ops; ++i) {
    const uint64_t dir = pick_dir();
    const std::string n = name();
    switch (rng() % 10) {
    case 0:
    case 1:
      if (auto c = fs.create(dir, n, 0644, kRoot); c.ok()) {
        (void)fs.write(c->st_ino, 0, data.data(), rng() % data.size(), kRoot);
        fs.release(c->st_ino);
        fs.forget(c->st_ino, 1);
      }
      break;
    case 2:
    case 3:
      if (auto l = fs.lookup(dir, n); l.ok()) {
        (void)fs.write(l->st_ino, rng() % 20000, data.data(), 1 + rng() % 5000, kRoot);
        Collect c;
        (void)fs.read(l->st_ino, 0, 30000, c);
        fs.forget(l->st_ino, 1);
      }
      break;
    case 4:
      (void)fs.rename(dir, n, pick_dir(), name(), 0, kRoot);
      break;
    case 5:
      (void)fs.unlink(dir, n);
      break;
    case 6:
      if (auto l = fs.lookup(dir, n); l.ok()) {
        (void)fs.setxattr(l->st_ino, "user.t", data.substr(0, 1 + rng() % 100), 0);
        SetAttr a;
        a.valid = rng() % 2 ? SetAttr::kMode : SetAttr::kSize;
        a.mode = rng() % 2 ? 04755 : 0644;
        a.size = rng() % 30000;
        (void)fs.setattr(l->st_ino, a, kRoot);
        fs.forget(l->st_ino, 1);
      }
      break;
    case 7:
      (void)list(fs, dir);
      break;
    case 8:
      if (auto d = fs.mkdir(dir, "d" + n, 0755, kRoot); d.ok())
        fs.forget(d->st_ino, 1);
      else
        (void)fs.rmdir(dir, "d" + n);
      break;
    default:
      if (auto l = fs.lookup(dir, n); l.ok()) {
        (void)fs.getattr(l->st_ino);
        fs.forget(l->st_ino, 1);
      }
    }
  }
}

} // namespace

TEST_CASE("concurrency: FUSE-like workers, status and checkpoints on one node", "[concurrency]") {
  char tmp[] = "/tmp/pkramfs-unit.XXXXXX";
  REQUIRE(mkdtemp(tmp));
  const std::string path = std::string(tmp) + "/node";
  std::map<std::string, std::string> before;
  {
    Mounted m(path);
    Filesystem &fs = *m.fs;
    auto shared = fs.mkdir(kRootIno, "shared", 0755, kRoot);
    REQUIRE(shared.ok());
    constexpr int kWorkers = 4;
    std::vector<uint64_t> own;
    for (int w = 0; w < kWorkers; ++w) {
      auto d = fs.mkdir(kRootIno, "w" + std::to_string(w), 0755, kRoot);
      REQUIRE(d.ok());
      own.push_back(d->st_ino);
    }
    std::atomic<int> running{kWorkers};
    // The workers go on until several checkpoints have run among them, however fast they are.
    std::atomic<int> checkpoints{0};
    std::vector<std::thread> threads;
    for (int w = 0; w < kWorkers; ++w)
      threads.emplace_back([&, w] {
        for (unsigned round = 0; round < 15 || checkpoints.load() < 3; ++round)
          churn(fs, own[w], shared->st_ino, 1000 + w + 16 * round, 100);
        running.fetch_sub(1);
      });
    // The control thread: status, and the checkpoint of a preserve, while requests run.
    threads.emplace_back([&] {
      while (running.load() > 0) {
        (void)fs.usage();
        (void)fs.statfs();
        (void)m.node->journal().used();
        (void)m.node->checkpoint_bytes();
        if (m.node->checkpoint(fs).ok())
          ++checkpoints;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
    for (auto &t : threads)
      t.join();
    CHECK(checkpoints.load() >= 3);
    std::vector<std::string> problems;
    fs.verify(problems);
    INFO((problems.empty() ? std::string() : problems.front()));
    CHECK(problems.empty());
    manifest(fs, kRootIno, "", before);
    CHECK(before.size() > 4);
    // No final checkpoint: the next mount replays the journal on top of the last one.
  }
  Mounted again(path);
  std::vector<std::string> problems;
  again.fs->verify(problems);
  CHECK(problems.empty());
  std::map<std::string, std::string> after;
  manifest(*again.fs, kRootIno, "", after);
  CHECK(after == before);
  std::filesystem::remove_all(tmp);
}
