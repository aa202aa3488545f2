// Export images: the format's encode/decode helpers, and a round trip node -> image -> node
// in-process (a node file in a temporary directory, built through the Filesystem API).
#include "util/crc32c.h"
#include "fs/filesystem.h"
#include "util/geometry.h"
#include "node/node.h"
#include "export/node_export.h"
#include "node/node_inspect.h"
#include "support/export_header.h"
#include "support/fs_calls.h"
#include "support/mounted_node.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <linux/falloc.h>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using namespace pkramfs;
using namespace pkramfs::test;

namespace {

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::string s(n, '\0');
  for (auto &c : s)
    c = static_cast<char>(g());
  return s;
}

std::string file_bytes(const std::string &path) {
  std::string s;
  const int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0)
    s.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return s;
}

void put_bytes(const std::string &path, const std::string &s) {
  std::filesystem::remove(path);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
  ::close(fd);
}

pkramfs_export_header sample_header() { return export_header(4096, 2, 300); }

} // namespace

TEST_CASE("crc32c_combine gives the CRC of the concatenation", "[export]") {
  const std::string a = random_bytes(12345, 1), b = random_bytes(kMiB + 3, 2);
  for (size_t cut : {size_t{0}, size_t{1}, size_t{4096}, a.size()}) {
    const std::string left = a.substr(0, cut), right = a.substr(cut) + b;
    const uint32_t whole = crc32c((left + right).data(), left.size() + right.size());
    CHECK(crc32c_combine(crc32c(left.data(), left.size()), crc32c(right.data(), right.size()),
                         right.size()) == whole);
  }
}

TEST_CASE("crc32c of large buffers (three lanes) equals the byte-wise CRC", "[export]") {
  const std::string data = random_bytes(kMiB + 100, 4);
  for (size_t off : {size_t{0}, size_t{1}, size_t{7}})
    for (size_t n :
         {size_t{8191}, size_t{8192}, size_t{8193}, size_t{3 * 8192 + 7}, size_t{kMiB}}) {
      uint32_t small = 0x12345678;
      for (size_t k = 0; k < n; k += 1000)
        small = crc32c(small, data.data() + off + k, std::min<size_t>(1000, n - k));
      INFO(off << "+" << n);
      CHECK(crc32c(0x12345678, data.data() + off, n) == small);
    }
}

TEST_CASE("export format: fixed sizes, header checks", "[export]") {
  CHECK(sizeof(pkramfs_export_header) == 240);
  CHECK(sizeof(pkramfs_export_extent) == 40);
  CHECK(sizeof(pkramfs_export_extent_end) == 8);
  CHECK(sizeof(pkramfs_export_trailer) == 64);
  CHECK(export_image_bytes(100, 2, 3) == 240 + 100 + 2 * 48 + 3 * 4096 + 64);

  pkramfs_export_header h = sample_header();
  CHECK(check_export_header(h).empty());
  CHECK(export_part_at(h, 0) == "the header (bytes 0-239)");
  CHECK(export_part_at(h, 240) == "the checkpoint image (bytes 240-4335)");
  CHECK(export_part_at(h, 4336).starts_with("the extent records (bytes 4336-"));
  CHECK(export_part_at(h, h.image_bytes - 1).starts_with("the trailer"));

  SECTION("a flipped byte fails the CRC") {
    reinterpret_cast<unsigned char *>(&h)[100] ^= 1;
    CHECK(check_export_header(h) == "fails its CRC");
  }
  SECTION("a newer version is named") {
    h.version = 7;
    seal(h);
    CHECK(check_export_header(h).find("version 7, newer than this build") != std::string::npos);
  }
  SECTION("sizes must add up") {
    h.image_bytes += 1;
    seal(h);
    CHECK(check_export_header(h).find("do not add up") != std::string::npos);
  }
  SECTION("impossible counts") {
    h.nr_extents = 1; // 300 blocks cannot fit one record of at most 256
    h.image_bytes = export_image_bytes(h.checkpoint_bytes, h.nr_extents, h.data_blocks);
    seal(h);
    CHECK(check_export_header(h) == "has impossible sizes");
  }
  SECTION("another geometry") {
    h.data_first_frame = 3;
    seal(h);
    CHECK(check_export_header(h).find("geometry") != std::string::npos);
  }
  SECTION("extent and trailer CRCs") {
    pkramfs_export_extent e{PKRAMFS_EXPORT_EXTENT_MAGIC, 3, 7, 0, 4608, 0, 0};
    seal(e);
    CHECK(crc_ok(e));
    e.block++;
    CHECK_FALSE(crc_ok(e));
    pkramfs_export_trailer t{};
    t.magic = PKRAMFS_EXPORT_TRAILER_MAGIC;
    seal(t);
    CHECK(crc_ok(t));
    t.stream_crc32c ^= 1;
    CHECK_FALSE(crc_ok(t));
  }
}

TEST_CASE("export and import: a node comes back whole, damaged images are refused", "[export]") {
  char dir[] = "/tmp/pkramfs-unit.XXXXXX";
  REQUIRE(mkdtemp(dir));
  const std::string src = std::string(dir) + "/src", dst = std::string(dir) + "/dst",
                    img = std::string(dir) + "/img";
  const Caller root;
  const std::string big = random_bytes(3 * kMiB + 1234, 3);
  const std::string target(300, 't'); // a long symlink: a block of its own
  {
    Mounted m(src, 64 * kMiB, 1000);
    auto f = m.fs->create(kRootIno, "big", 0644, root);
    REQUIRE(f.ok());
    REQUIRE(m.fs->write(f->st_ino, 0, big.data(), big.size(), root).ok());
    auto sparse = m.fs->create(kRootIno, "sparse", 0600, root);
    REQUIRE(sparse.ok());
    REQUIRE(m.fs->write(sparse->st_ino, 5 * kMiB, "tail", 4, root).ok());
    auto fa = m.fs->create(kRootIno, "fallocated", 0600, root);
    REQUIRE(fa.ok());
    REQUIRE(m.fs->fallocate(fa->st_ino, 0, 0, 64 * 1024, root).ok());
    auto d = m.fs->mkdir(kRootIno, "d", 0755, root);
    REQUIRE(d.ok());
    REQUIRE(m.fs->symlink(d->st_ino, "long", target, root).ok());
    REQUIRE(m.fs->setxattr(d->st_ino, "user.k", "v", 0).ok());
    REQUIRE(m.fs->link(f->st_ino, d->st_ino, "hard").ok());
    REQUIRE(m.fs->mknod(d->st_ino, "fifo", S_IFIFO | 0644, 0, root).ok());
    // No checkpoint at the end: the export must replay the journal like a mount.
  }
  std::string why;
  {
    const int fd = ::open(src.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    struct stat st {};
    REQUIRE(fstat(fd, &st) == 0);
    auto loaded = load_node(NodeBytes{fd, static_cast<uint64_t>(st.st_size), "node file"}, why);
    INFO(why);
    REQUIRE(loaded.ok());
    CHECK(loaded->journal_records > 0);
    auto exported = export_node(*loaded, fd, img, {}, why);
    INFO(why);
    REQUIRE(exported.ok());
    CHECK(exported->header.files == 3);
    CHECK(exported->header.directories == 2);
    CHECK(exported->header.other_inodes == 2);
    // big (769 blocks: 4 records), sparse (1), the symlink's block (1); fallocated: none
    CHECK(exported->header.nr_extents == 6);
    CHECK(exported->header.data_blocks == 769 + 1 + 1);
    CHECK(exported->bytes == std::filesystem::file_size(img));
    CHECK(export_node(*loaded, fd, img, {}, why).error() == EEXIST);
    ::close(fd);
  }
  const std::string image = file_bytes(img);

  SECTION("verify only, then import into a new node that mounts with the same tree") {
    auto verified = import_image(img, nullptr, {}, why);
    INFO(why);
    REQUIRE(verified.ok());
    uint64_t last = 0;
    TransferHooks hooks;
    hooks.progress = [&](uint64_t done, uint64_t total) {
      CHECK(done >= last);
      CHECK(total == image.size());
      last = done;
    };
    const MakeNode make = [&](const NodeParams &params, std::string &w) -> Result<NewNode> {
      CHECK(params.max_inodes == 1000);
      auto n = Node::open_shm(dst, params, w);
      if (!n)
        return Errno{n.error()};
      NewNode out;
      out.node = std::move(n.value());
      return out;
    };
    auto imported = import_image(img, &make, hooks, why);
    INFO(why);
    REQUIRE(imported.ok());
    CHECK(last == image.size());
    CHECK(imported->stream_crc32c == verified->stream_crc32c);
    auto checked = check_node(dst);
    REQUIRE(checked.ok());
    CHECK(checked->clean);
    CHECK(checked->summary.state == "clean");

    Mounted m(dst, 64 * kMiB, 1000);
    const uint64_t f = lookup(*m.fs, kRootIno, "big");
    CHECK(read_all(*m.fs, f) == big);
    const uint64_t sparse = lookup(*m.fs, kRootIno, "sparse");
    const std::string s = read_all(*m.fs, sparse);
    CHECK(s.size() == 5 * kMiB + 4);
    CHECK(s.substr(5 * kMiB) == "tail");
    CHECK(s.find_first_not_of('\0') == 5 * kMiB);
    const uint64_t fa = lookup(*m.fs, kRootIno, "fallocated");
    CHECK(m.fs->getattr(fa)->st_blocks == 128);
    CHECK(read_all(*m.fs, fa) == std::string(64 * 1024, '\0'));
    const uint64_t d = lookup(*m.fs, kRootIno, "d");
    CHECK(*m.fs->readlink(lookup(*m.fs, d, "long")) == target);
    CHECK(*m.fs->getxattr(d, "user.k") == "v");
    CHECK(lookup(*m.fs, d, "hard") == f);
    CHECK(m.fs->getattr(f)->st_nlink == 2);
    CHECK(S_ISFIFO(m.fs->getattr(lookup(*m.fs, d, "fifo"))->st_mode));
  }

  SECTION("a truncated image is refused with the offset where it ends") {
    for (size_t cut :
         {size_t{0}, size_t{5}, size_t{239}, size_t{300}, size_t{2 * kMiB}, image.size() - 1}) {
      put_bytes(img, image.substr(0, cut));
      auto r = import_image(img, nullptr, {}, why);
      INFO(cut << ": " << why);
      CHECK(r.error() == EINVAL);
      if (cut == 0)
        CHECK(why.find("empty") != std::string::npos);
      else
        CHECK(why.find("truncated: it ends at byte offset " + std::to_string(cut)) !=
              std::string::npos);
    }
  }

  SECTION("a flipped bit is refused, naming what and where") {
    pkramfs_export_header h{};
    std::memcpy(&h, image.data(), sizeof h);
    const uint64_t rec = 240 + h.checkpoint_bytes; // the first extent record
    pkramfs_export_extent e{};
    std::memcpy(&e, image.data() + rec, sizeof e);
    const uint64_t end = rec + 40 + e.count * kBlockSize; // its extent_end
    const struct {
      uint64_t at;
      const char *what;
    } cases[] = {
        {100, "the header (bytes 0-239, at byte offset 0) fails its CRC"},
        {250, "the checkpoint image (bytes 240-"},
        {rec + 20, "extent record 0 at byte offset"},
        {rec + 40 + 4095, "fails its CRC"},
        {end + 5, "the image's CRC in the trailer"}, // a reserved field: only the image CRC
        {image.size() - 3, "the trailer (at byte offset"},
    };
    for (const auto &c : cases) {
      std::string bad = image;
      bad[c.at] ^= 0x10;
      put_bytes(img, bad);
      bool made = false;
      const MakeNode make = [&](const NodeParams &params, std::string &w) -> Result<NewNode> {
        made = true;
        auto n = Node::open_shm(dst, params, w);
        if (!n)
          return Errno{n.error()};
        NewNode out;
        out.node = std::move(n.value());
        return out;
      };
      auto r = import_image(img, &make, {}, why);
      INFO(c.at << ": " << why);
      CHECK(r.error() == EINVAL);
      CHECK(why.find(c.what) != std::string::npos);
      CHECK(why.find("byte offset") != std::string::npos);
      CHECK(made == (c.at >= rec)); // header and checkpoint are checked before any node exists
      std::filesystem::remove(dst);
    }
  }

  SECTION("foreign files are refused") {
    put_bytes(img, random_bytes(100000, 9));
    CHECK(import_image(img, nullptr, {}, why).error() == EINVAL);
    CHECK(why == "not a pkramfs export image (no PKRXPRT1 magic at byte offset 0)");
    put_bytes(img, image + "x");
    CHECK(import_image(img, nullptr, {}, why).error() == EINVAL);
    CHECK(why.find("1 bytes of something else follow the image at byte offset " +
                   std::to_string(image.size())) != std::string::npos);
  }

  std::filesystem::remove_all(dir);
}
