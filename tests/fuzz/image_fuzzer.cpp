// libFuzzer target for the node image reader: arbitrary bytes must never crash it or make it read
// out of bounds (run under ASan/UBSan). The first input byte picks what the rest is:
//
//   0  a checkpoint image for Filesystem::load_image on a small anonymous arena. When it loads,
//      its own checkpoint must load again (and with PKRAMFS_FUZZ_STRICT=1 the tree must also
//      pass verify(): load_image does not check everything verify() does, e.g. link counts).
//   1  journal records {u32 type, u32 length, payload}... appended through Journal::append (so
//      their CRCs hold), then Journal::scan + Filesystem::replay on top of a small valid image.
//   2  raw bytes of a journal region for Journal::scan + replay on top of the same image.
//
// Seeds: with PKRAMFS_FUZZ_WRITE_SEEDS=DIR the binary writes valid inputs of every kind into DIR
// and exits (tests/fuzz/run.sh does that before fuzzing).
#include "fs/filesystem.h"
#include "storage/frame_source.h"
#include "util/geometry.h"
#include "journal/journal.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <utility>
#include <vector>

using namespace pkramfs;

namespace {

constexpr uint64_t kArenaBlocks = kBlocksPerFrame; // 2 MiB of data blocks
constexpr uint64_t kJournalBytes = 1 << 20;
constexpr uint64_t kEpoch = 7;
const Caller kRoot{0, 0};

struct SmallFs {
  std::unique_ptr<FrameSource> source;
  std::unique_ptr<Filesystem> fs;
  SmallFs() {
    auto made = make_anon_frame_source((kArenaBlocks + kBlocksPerFrame - 1) / kBlocksPerFrame);
    if (!made) {
      std::fprintf(stderr, "image_fuzzer: no anonymous arena\n");
      std::abort();
    }
    source = std::move(made).value();
    FsConfig config;
    config.max_inodes = 4096;
    fs = std::make_unique<Filesystem>(std::make_unique<Arena>(*source, 0, kArenaBlocks), config);
  }
};

bool strict() {
  static const bool s = std::getenv("PKRAMFS_FUZZ_STRICT") != nullptr;
  return s;
}

[[noreturn]] void die(const std::string &what) {
  std::fprintf(stderr, "image_fuzzer: %s\n", what.c_str());
  std::abort();
}

std::string checkpoint_of(Filesystem &fs, uint64_t generation) {
  std::string image;
  auto r = fs.checkpoint(generation, [&](std::string_view i) -> Result<void> {
    image.assign(i);
    return {};
  });
  if (!r)
    die("checkpoint failed");
  return image;
}

// The valid image everything replays on, and the records of a workload that follows it.
struct Seeds {
  std::string base_image;
  std::vector<std::pair<uint32_t, std::string>> records;
  std::string journal;    // the raw journal region holding `records`
  std::string full_image; // the tree after the records
};

uint64_t ino_of(Result<struct stat> r, const char *what) {
  if (!r)
    die(std::string("seed workload: ") + what + " failed");
  return r->st_ino;
}

Seeds make_seeds() {
  Seeds s;
  SmallFs t;
  Filesystem &fs = *t.fs;
  const uint64_t a = ino_of(fs.mkdir(1, "a", 0755, kRoot), "mkdir a");
  const uint64_t f = ino_of(fs.create(a, "f", 0644, kRoot), "create f");
  std::string data(9000, 'x');
  (void)fs.write(f, 0, data.data(), data.size(), kRoot);
  (void)fs.setxattr(f, "user.k", "v", 0);
  // POSIX ACLs (backend/fs/posix_acl.h): user::rwx user:7:r-x group::r-x mask::rwx other::r-x
  const std::string acl("\2\0\0\0"
                        "\1\0\7\0\377\377\377\377"
                        "\2\0\5\0\7\0\0\0"
                        "\4\0\5\0\377\377\377\377"
                        "\20\0\7\0\377\377\377\377"
                        "\40\0\5\0\377\377\377\377",
                        44);
  if (!fs.setxattr(f, kAclAccess, acl, 0) ||
      !fs.setxattr(a, kAclDefault, acl, 0))
    die("seed workload: setting the ACLs failed");
  (void)fs.symlink(1, "short", "a/f", kRoot);
  (void)fs.symlink(1, "long", std::string(300, 'l'), kRoot);
  (void)fs.mknod(a, "null", S_IFCHR | 0666, makedev(1, 3), kRoot);
  (void)fs.mknod(a, "fifo", S_IFIFO | 0644, 0, kRoot);
  s.base_image = checkpoint_of(fs, kEpoch);

  std::string region(kJournalBytes, '\0');
  Journal journal(reinterpret_cast<std::byte *>(region.data()), region.size());
  journal.resume(kEpoch, 0, 1);
  fs.attach_journal(&journal, [] {});
  const uint64_t b = ino_of(fs.mkdir(1, "b", 0700, kRoot), "mkdir b");
  (void)fs.setxattr(b, kAclDefault, acl, 0);
  const uint64_t g = ino_of(fs.create(b, "g", 0600, kRoot), "create g"); // inherits it
  (void)fs.write(g, 4096 * 3, data.data(), 5000, kRoot);
  (void)fs.link(f, b, "hard");
  (void)fs.rename(1, "short", b, "short2", 0, kRoot);
  (void)fs.setxattr(b, "user.dir", "value", 0);
  (void)fs.removexattr(f, "user.k");
  SetAttr sa{};
  sa.valid = SetAttr::kSize;
  sa.size = 100;
  (void)fs.setattr(f, sa, kRoot);
  (void)fs.open(f, O_WRONLY | O_TRUNC, kRoot);
  (void)fs.fallocate(g, 0, 0, 20000, kRoot);
  (void)fs.unlink(a, "fifo");
  ino_of(fs.create(a, "tmp", 0644, kRoot), "create tmp");
  const uint64_t tmp = ino_of(fs.lookup(a, "tmp"), "lookup tmp");
  (void)fs.open(tmp, O_RDONLY, kRoot);
  (void)fs.unlink(a, "tmp");
  fs.release(tmp);
  (void)fs.mkdir(b, "gone", 0755, kRoot);
  (void)fs.rmdir(b, "gone");
  Journal::scan(reinterpret_cast<const std::byte *>(region.data()), region.size(), kEpoch,
                [&](uint32_t type, std::string_view payload) {
                  s.records.emplace_back(type, std::string(payload));
                });
  s.journal = region.substr(0, journal.used());
  fs.attach_journal(nullptr, [] {});
  s.full_image = checkpoint_of(fs, kEpoch + 1);
  return s;
}

const Seeds &seeds() {
  static const Seeds s = make_seeds();
  return s;
}

void write_file(const std::string &dir, const std::string &name, char kind, std::string_view body) {
  const std::string path = dir + "/" + name;
  FILE *out = std::fopen(path.c_str(), "wb");
  if (!out)
    die("cannot write " + path);
  std::fputc(kind, out);
  std::fwrite(body.data(), 1, body.size(), out);
  std::fclose(out);
}

void put_u32(std::string &out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}

void fuzz_image(std::string_view image) {
  SmallFs t;
  std::string why;
  if (!t.fs->load_image(image, why))
    return;
  t.fs->finish_restore();
  std::vector<std::string> problems;
  t.fs->verify(problems);
  if (strict() && !problems.empty())
    die("load_image accepted an image that fails verify(): " + problems.front());
  const std::string again = checkpoint_of(*t.fs, 99);
  SmallFs u;
  if (!u.fs->load_image(again, why))
    die("the checkpoint of a loaded image does not load: " + why);
}

// Replays the journal region on the base image.
void replay_region(std::string_view region) {
  SmallFs t;
  std::string why;
  if (!t.fs->load_image(seeds().base_image, why))
    die("the base image does not load: " + why);
  Result<void> failed;
  Journal::scan(reinterpret_cast<const std::byte *>(region.data()), region.size(), kEpoch,
                [&](uint32_t type, std::string_view payload) {
                  if (failed)
                    failed = t.fs->replay(type, payload, why);
                });
  if (!failed)
    return; // refused: fine, as long as nothing crashed
  t.fs->finish_restore();
  std::vector<std::string> problems;
  t.fs->verify(problems);
  if (strict() && !problems.empty())
    die("replay accepted records that leave a tree failing verify(): " + problems.front());
  (void)checkpoint_of(*t.fs, 99);
}

void fuzz_records(std::string_view in) {
  std::string region(kJournalBytes, '\0');
  Journal journal(reinterpret_cast<std::byte *>(region.data()), region.size());
  journal.resume(kEpoch, 0, 1);
  while (in.size() >= 8) {
    uint32_t type, len;
    std::memcpy(&type, in.data(), 4);
    std::memcpy(&len, in.data() + 4, 4);
    in.remove_prefix(8);
    len = std::min<uint64_t>(len, in.size());
    if (!journal.append(type, in.substr(0, len)))
      break;
    in.remove_prefix(len);
  }
  replay_region(std::string_view(region).substr(0, journal.used()));
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const Seeds &s = seeds();
  if (const char *dir = std::getenv("PKRAMFS_FUZZ_WRITE_SEEDS")) {
    mkdir(dir, 0755);
    write_file(dir, "image-base", 0, s.base_image);
    write_file(dir, "image-full", 0, s.full_image);
    std::string recs;
    for (const auto &[type, payload] : s.records) {
      put_u32(recs, type);
      put_u32(recs, static_cast<uint32_t>(payload.size()));
      recs += payload;
    }
    write_file(dir, "records", 1, recs);
    for (size_t i = 0; i < s.records.size(); ++i) {
      std::string one;
      put_u32(one, s.records[i].first);
      put_u32(one, static_cast<uint32_t>(s.records[i].second.size()));
      one += s.records[i].second;
      write_file(dir, "record-" + std::to_string(i), 1, one);
    }
    write_file(dir, "journal", 2, s.journal);
    std::printf("image_fuzzer: wrote %zu seeds to %s\n", 4 + s.records.size(), dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const std::string_view in(reinterpret_cast<const char *>(data) + 1, size - 1);
  switch (data[0] % 3) {
  case 0:
    fuzz_image(in);
    break;
  case 1:
    fuzz_records(in);
    break;
  case 2:
    replay_region(in);
    break;
  }
  return 0;
}
