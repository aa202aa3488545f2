// libFuzzer target for export images through `pkramfs-ctl import` (import_image): every input
// is refused with one line, or becomes a node that `pkramfs-ctl check` finds clean; never a
// crash, hang, out-of-bounds access or an allocation the image only claims (ASan/UBSan).
//
//   u8 flags   bit 0: reseal (the header's, checkpoint's, extent records', data and trailer
//                     CRCs recomputed, so that crafted values get past them);
//              bit 1: import into a new node (else only verify, into a throwaway arena)
//   the rest   the image
//
// Seeds: with PKRAMFS_FUZZ_WRITE_SEEDS=DIR the binary writes the export of a real node and
// crafted images (next_ino 2^64-1, directories naming each other, a huge checkpoint claim).
#include "../unit/support/crafted_checkpoint.h"
#include "util/crc32c.h"
#include "fs/filesystem.h"
#include "util/geometry.h"
#include "node/node.h"
#include "export/node_export.h"
#include "node/node_inspect.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <spdlog/spdlog.h>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace pkramfs;

namespace {

const Caller kRoot{0, 0};

[[noreturn]] void die(const std::string &what) {
  std::fprintf(stderr, "import_fuzzer: %s\n", what.c_str());
  std::abort();
}

// A directory of its own on /dev/shm (or /tmp), removed at exit. Never destroyed itself: the
// exit handler runs after static destructors would have.
const std::string &work_dir() {
  static const std::string *dir = [] {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    auto *t = new std::string(std::string(base) + "/pkramfs-import-fuzz.XXXXXX");
    if (!mkdtemp(t->data()))
      die("no temporary directory");
    std::atexit([] {
      for (const char *f : {"/image", "/node", "/seed-node", "/seed-image"})
        (void)unlink((work_dir() + f).c_str());
      (void)rmdir(work_dir().c_str());
    });
    return t;
  }();
  return *dir;
}

void write_file(const std::string &path, std::string_view bytes) {
  (void)unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
    die("cannot write " + path);
  ::close(fd);
}

template <class T> bool get(const std::string &s, uint64_t at, T &out) {
  if (at > s.size() || sizeof out > s.size() - at)
    return false;
  std::memcpy(&out, s.data() + at, sizeof out);
  return true;
}
template <class T> void set(std::string &s, uint64_t at, const T &v) {
  std::memcpy(s.data() + at, &v, sizeof v);
}

// Every CRC of the image recomputed where its parts are (as far as they are there).
void reseal(std::string &img) {
  pkramfs_export_header h;
  if (!get(img, 0, h))
    return;
  uint64_t at = sizeof h;
  if (h.checkpoint_bytes <= img.size() - at) {
    h.checkpoint_crc32c = crc32c(img.data() + at, h.checkpoint_bytes);
    at += h.checkpoint_bytes;
  } else {
    at = img.size();
  }
  seal(h);
  set(img, 0, h);
  pkramfs_export_extent e;
  while (get(img, at, e) && e.magic == PKRAMFS_EXPORT_EXTENT_MAGIC) {
    seal(e);
    set(img, at, e);
    at += sizeof e;
    const uint64_t data = uint64_t{e.count} * kBlockSize;
    pkramfs_export_extent_end end{};
    if (data > img.size() - at || !get(img, at + data, end))
      return;
    end.data_crc32c = crc32c(img.data() + at, data);
    set(img, at + data, end);
    at += data + sizeof end;
  }
  pkramfs_export_trailer t;
  if (!get(img, at, t))
    return;
  t.stream_bytes = at;
  t.stream_crc32c = crc32c(img.data(), at);
  seal(t);
  set(img, at, t);
}

void one_line(const std::string &why) {
  if (why.empty() || why.find('\n') != std::string::npos)
    die("refused without exactly one line: '" + why + "'");
}

void fuzz_image(std::string_view in) {
  if (in.empty())
    return;
  const uint8_t flags = static_cast<uint8_t>(in[0]);
  std::string img(in.substr(1));
  if (flags & 1)
    reseal(img);
  // The block allocator's bitmap and frame lists scale with size= (a node of 1 TiB holds
  // ~50 MiB of them, mounted or imported alike): an image may ask for any size up to 2^32
  // frames, and one that is larger than memory allows ends in bad_alloc as a mount of that
  // size would. Beyond the fuzzer's memory limit, so such headers are left out here.
  if (pkramfs_export_header h; get(img, 0, h) && h.limit_blocks > (1ull << 28))
    return;
  const std::string image_path = work_dir() + "/image", node_path = work_dir() + "/node";
  write_file(image_path, img);
  (void)unlink(node_path.c_str());
  const bool into_node = flags & 2;
  MakeNode make = [&](const NodeParams &params, std::string &why) -> Result<NewNode> {
    auto node = Node::open_shm(node_path, params, why);
    if (!node)
      return Errno{node.error()};
    return NewNode{std::move(node).value(), UniqueFd()};
  };
  std::string why;
  auto r = import_image(image_path, into_node ? &make : nullptr, {}, why);
  if (!r) {
    one_line(why);
    return;
  }
  if (!into_node)
    return;
  auto report = check_node(node_path);
  if (!report)
    die("check_node failed: errno " + std::to_string(report.error()));
  if (!report->clean)
    die("an imported node does not check clean: " +
        (report->problems.empty() ? std::string("?") : report->problems.front()));
}

// ----------------------------------------------------------------------------- seeds --

std::string read_file(const std::string &path) {
  std::string s;
  const int fd = ::open(path.c_str(), O_RDONLY);
  char buf[65536];
  ssize_t n;
  while (fd >= 0 && (n = ::read(fd, buf, sizeof buf)) > 0)
    s.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return s;
}

// The export of a node built by the daemon's code.
std::string real_export() {
  const std::string node_path = work_dir() + "/seed-node", out = work_dir() + "/seed-image";
  (void)unlink(node_path.c_str());
  (void)unlink(out.c_str());
  std::string why;
  NodeParams params;
  params.limit_blocks = 4 * kBlocksPerFrame;
  {
    auto opened = Node::open_shm(node_path, params, why);
    if (!opened)
      die("seed node: " + why);
    Node &node = **opened;
    Filesystem fs(
        std::make_unique<Arena>(node.frames(), node.data_first_frame(), node.limit_blocks()),
        FsConfig{node.max_inodes()});
    const uint64_t a = fs.mkdir(kRootIno, "a", 0755, kRoot)->st_ino;
    const uint64_t f = fs.create(a, "f", 0644, kRoot)->st_ino;
    const std::string data(9000, 'x');
    (void)fs.write(f, 0, data.data(), data.size(), kRoot);
    (void)fs.write(f, 40000, data.data(), 10, kRoot);
    (void)fs.setxattr(f, "user.k", "v", 0);
    (void)fs.symlink(kRootIno, "long", std::string(300, 'l'), kRoot);
    (void)fs.link(f, kRootIno, "hard");
    if (!node.checkpoint(fs))
      die("seed checkpoint");
    node.set_state(PKRAMFS_STATE_CLEAN);
  }
  const int fd = ::open(node_path.c_str(), O_RDONLY);
  struct stat st {};
  fstat(fd, &st);
  auto offline = load_node(NodeBytes{fd, static_cast<uint64_t>(st.st_size), "node file"}, why);
  if (!offline)
    die("seed load: " + why);
  if (!export_node(*offline, fd, out, {}, why))
    die("seed export: " + why);
  ::close(fd);
  std::string img = read_file(out);
  (void)unlink(out.c_str());
  (void)unlink(node_path.c_str());
  return img;
}

// An image of `ckpt` alone (no data), every CRC right.
std::string image_of(const pkramfs_export_header &like, const std::string &ckpt) {
  pkramfs_export_header h = like;
  pkramfs_ckpt_header c;
  std::memcpy(&c, ckpt.data(), sizeof c);
  h.checkpoint_bytes = ckpt.size();
  h.nr_inodes = c.nr_inodes;
  h.files = h.other_inodes = h.allocated_blocks = 0;
  h.directories = c.nr_inodes;
  h.nr_extents = h.data_blocks = 0;
  h.image_bytes = export_image_bytes(ckpt.size(), 0, 0);
  std::string img(reinterpret_cast<const char *>(&h), sizeof h);
  img += ckpt;
  pkramfs_export_trailer t{};
  t.magic = PKRAMFS_EXPORT_TRAILER_MAGIC;
  img.append(reinterpret_cast<const char *>(&t), sizeof t);
  reseal(img);
  return img;
}

// generation 2, as an import's first checkpoint
std::string dirs_image(const std::vector<test::CraftedDir> &dirs, uint64_t next_ino) {
  return test::crafted_dirs_image(dirs, next_ino, 2);
}

void write_seeds(const std::string &dir) {
  mkdir(dir.c_str(), 0755);
  int count = 0;
  auto seed = [&](const std::string &name, uint8_t flags, const std::string &img) {
    write_file(dir + "/" + name, std::string(1, static_cast<char>(flags)) + img);
    ++count;
  };
  const std::string real = real_export();
  seed("real-verify", 0, real);
  seed("real-import", 2, real);
  pkramfs_export_header h;
  std::memcpy(&h, real.data(), sizeof h);
  // M2 through import: next_ino 2^64-1 in the checkpoint.
  std::string m2 = real;
  const uint64_t top = UINT64_MAX;
  std::memcpy(m2.data() + sizeof h + offsetof(pkramfs_ckpt_header, next_ino), &top, 8);
  seed("m2-next-ino-max", 1 | 2, m2);
  // M3 through import: directories 10 and 11 naming each other.
  seed("m3-directory-cycle", 1 | 2,
       image_of(h, dirs_image({{1, 1, {{"x", 12}}, 1},
                               {10, 11, {{"b", 11}}, 1},
                               {11, 10, {{"a", 10}}, 1},
                               {12, 1, {}, 0}},
                              13)));
  seed("dirs-only", 1 | 2, image_of(h, dirs_image({{1, 1, {{"x", 12}}, 1}, {12, 1, {}, 0}}, 13)));
  // L6: a checkpoint claim of 1 GiB over a short image (what a sparse file would hold).
  pkramfs_export_header big = h;
  big.checkpoint_bytes = 1ull << 30;
  big.nr_extents = big.data_blocks = 0;
  big.image_bytes = export_image_bytes(big.checkpoint_bytes, 0, 0);
  seal(big);
  seed("l6-huge-checkpoint-claim", 0,
       std::string(reinterpret_cast<const char *>(&big), sizeof big));
  std::printf("import_fuzzer: wrote %d seeds to %s\n", count, dir.c_str());
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  spdlog::set_level(spdlog::level::off);
  if (const char *dir = std::getenv("PKRAMFS_FUZZ_WRITE_SEEDS")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_image(std::string_view(reinterpret_cast<const char *>(data), size));
  return 0;
}
