// libFuzzer target for a whole node file: superblocks, checkpoint slots, checkpoint image and
// journal go through the real restore (Node::open_shm + Node::restore, as pkramfs-fuse does),
// then a short sequence of live operations, a checkpoint and `pkramfs-ctl check` (check_node).
// Run under ASan/UBSan. Every input must be refused with one line and the node's bytes
// unchanged, or mount as a consistent tree (verify() clean) that checks clean after the
// operations; never a crash, hang or out-of-bounds access (docs/security.md).
//
// A node file is tens of MiB, mostly holes, so the input describes one compactly:
//
//   u8 flags    bit 0: reseal (set the current slot's bytes and CRC to the checkpoint below,
//                      the journal records' CRCs, the superblock CRCs), so that crafted values
//                      get past the CRCs; bit 1: write superblock copy 1 too (one sequence
//                      older), else it stays zeros
//   u32 n, n bytes     the superblock (zero padded / cut to its size)
//   u32 n, n bytes     the checkpoint image, written where the current slot says
//   u32 n, n bytes     the journal region from its start
//   the rest           live operations (run_ops below)
//
// The file is as long as the superblock and its slots say, at most kMaxFileFrames (sparse).
// Seeds: with PKRAMFS_FUZZ_WRITE_SEEDS=DIR the binary writes real nodes (crashed: checkpoint
// plus journal) and the crafted nodes of the security review (docs/security.md) and exits.
#include "../unit/support/crafted_checkpoint.h"
#include "util/crc32c.h"
#include "fs/filesystem.h"
#include "util/geometry.h"
#include "journal/journal.h"
#include "node/node.h"
#include "node/node_inspect.h"
#include "journal/records.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iterator>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <memory>
#include <spdlog/spdlog.h>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace pkramfs;

namespace {

constexpr uint64_t kMaxFileFrames = 2048; // 4 GiB of holes at most
constexpr size_t kMaxOps = 24;
const Caller kRoot{0, 0};

[[noreturn]] void die(const std::string &what) {
  std::fprintf(stderr, "node_fuzzer: %s\n", what.c_str());
  std::abort();
}

// A directory of its own on /dev/shm (or /tmp), removed at exit. Never destroyed itself: the
// exit handler runs after static destructors would have.
const std::string &work_dir() {
  static const std::string *dir = [] {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    auto *t = new std::string(std::string(base) + "/pkramfs-node-fuzz.XXXXXX");
    if (!mkdtemp(t->data()))
      die("no temporary directory");
    std::atexit([] {
      (void)unlink((work_dir() + "/node").c_str());
      (void)unlink((work_dir() + "/seed").c_str());
      (void)rmdir(work_dir().c_str());
    });
    return t;
  }();
  return *dir;
}

struct Reader {
  std::string_view in;
  uint8_t u8() {
    if (in.empty())
      return 0;
    const uint8_t v = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    return v;
  }
  uint32_t u32() {
    uint32_t v = 0;
    const size_t n = std::min<size_t>(4, in.size());
    std::memcpy(&v, in.data(), n);
    in.remove_prefix(n);
    return v;
  }
  std::string_view part() {
    const size_t n = std::min<size_t>(u32(), in.size());
    const std::string_view p = in.substr(0, n);
    in.remove_prefix(n);
    return p;
  }
};

uint64_t padded(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

// Gives every record-shaped header in the journal bytes a valid CRC.
void reseal_journal(std::string &j) {
  constexpr uint64_t kHeader = sizeof(pkramfs_jrec_header);
  constexpr size_t kSkip = offsetof(pkramfs_jrec_header, sequence);
  for (uint64_t off = 0; off + kHeader <= j.size();) {
    pkramfs_jrec_header h;
    std::memcpy(&h, j.data() + off, kHeader);
    if (h.magic != PKRAMFS_JREC_MAGIC || h.payload_bytes > j.size() - off - kHeader)
      break;
    const uint32_t c = crc32c(reinterpret_cast<const char *>(&h) + kSkip, kHeader - kSkip);
    h.crc32c = crc32c(c, j.data() + off + kHeader, h.payload_bytes);
    std::memcpy(j.data() + off, &h, kHeader);
    off += kHeader + padded(h.payload_bytes);
  }
}

uint32_t sb_crc(const pkramfs_superblock &sb) {
  return crc32c(&sb, offsetof(pkramfs_superblock, crc32c));
}

// The node file the input describes, and a CRC of what was written (the bytes a refusal
// must leave alone).
struct Built {
  std::string path;
  uint32_t crc = 0;
  uint64_t bytes = 0;
};

// A CRC of the file's contents: its non-zero 4 KiB blocks and where they are. Holes and
// blocks of zeros count the same, so giving a hole memory (fallocate) is no change.
uint32_t crc_of_file(const std::string &path, uint64_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0)
    die("cannot reopen the node");
  std::string buf(1 << 20, '\0');
  static const std::string zeros(kBlockSize, '\0');
  uint32_t crc = 0;
  for (off_t at = lseek(fd, 0, SEEK_DATA); at >= 0 && static_cast<uint64_t>(at) < limit;
       at = lseek(fd, at, SEEK_DATA)) {
    at &= ~static_cast<off_t>(kBlockSize - 1);
    const ssize_t n = pread(fd, buf.data(), buf.size(), at);
    if (n <= 0)
      break;
    for (ssize_t b = 0; b < n; b += kBlockSize) {
      const size_t len = std::min<size_t>(kBlockSize, static_cast<size_t>(n - b));
      if (std::memcmp(buf.data() + b, zeros.data(), len) == 0)
        continue;
      const off_t where = at + b;
      crc = crc32c(crc32c(crc, &where, sizeof where), buf.data() + b, len);
    }
    at += n;
  }
  ::close(fd);
  return crc;
}

Built build_node(Reader &r) {
  const uint8_t flags = r.u8();
  pkramfs_superblock sb{};
  const std::string_view sb_part = r.part();
  std::memcpy(&sb, sb_part.data(), std::min(sb_part.size(), sizeof sb));
  std::string image(r.part());
  std::string journal(r.part());
  const unsigned cur = sb.current_slot & 1;
  if (flags & 1) {
    sb.slots[cur].bytes = image.size();
    sb.slots[cur].crc32c = crc32c(image.data(), image.size());
    reseal_journal(journal);
  }
  // How long the file is: to the end of the checkpoint area and the slots, within bounds.
  uint64_t frames = std::min<uint64_t>(sb.ckpt_first_frame, kMaxFileFrames);
  for (const auto &s : sb.slots)
    if (s.generation && s.first_frame < kMaxFileFrames && s.nr_frames < kMaxFileFrames)
      frames = std::max(frames, std::min(kMaxFileFrames, s.first_frame + s.nr_frames));
  frames = std::max<uint64_t>(frames, 1);

  Built b;
  b.path = work_dir() + "/node";
  (void)unlink(b.path.c_str());
  const int fd = ::open(b.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    die("cannot create " + b.path);
  b.bytes = frames * kFrameSize;
  if (ftruncate(fd, static_cast<off_t>(b.bytes)) != 0)
    die("ftruncate");
  auto put = [&](const void *p, size_t n, uint64_t at) {
    if (at < b.bytes && n <= b.bytes - at)
      (void)!pwrite(fd, p, n, static_cast<off_t>(at));
  };
  pkramfs_superblock copy1 = sb;
  sb.crc32c = (flags & 1) ? sb_crc(sb) : sb.crc32c;
  put(&sb, sizeof sb, 0);
  if (flags & 2) {
    copy1.sequence--;
    copy1.crc32c = (flags & 1) ? sb_crc(copy1) : copy1.crc32c;
    put(&copy1, sizeof copy1, PKRAMFS_SB_COPY_OFFSET);
  }
  if (sb.slots[cur].first_frame < kMaxFileFrames)
    put(image.data(), image.size(), sb.slots[cur].first_frame * kFrameSize);
  if (sb.journal_first_frame < kMaxFileFrames)
    put(journal.data(), journal.size(), sb.journal_first_frame * kFrameSize);
  ::close(fd);
  b.crc = crc_of_file(b.path, b.bytes);
  return b;
}

// Names the operations pick from: the tree's own (found by readdir) and a few new ones.
struct Names final : DirSink {
  std::vector<std::string> names{"a", "b", "c", "d"};
  std::vector<uint64_t> inos{kRootIno};
  std::vector<uint64_t> dirs{kRootIno};
  bool add(std::string_view name, const struct stat &st, uint64_t) override {
    if (name == "." || name == "..")
      return true;
    if (names.size() < 32)
      names.emplace_back(name);
    if (inos.size() < 64) {
      inos.push_back(st.st_ino);
      if (S_ISDIR(st.st_mode))
        dirs.push_back(st.st_ino);
    }
    return true;
  }
};

void run_ops(Node &node, Filesystem &fs, Reader &r) {
  Names n;
  for (size_t i = 0; i < n.dirs.size() && i < 16; ++i)
    (void)fs.readdir(n.dirs[i], 0, true, n);
  auto dir = [&] { return n.dirs[r.u8() % n.dirs.size()]; };
  auto ino = [&] { return n.inos[r.u8() % n.inos.size()]; };
  auto name = [&]() -> const std::string & { return n.names[r.u8() % n.names.size()]; };
  auto learn = [&](Result<struct stat> st) {
    if (st && n.inos.size() < 64) {
      n.inos.push_back(st->st_ino);
      if (S_ISDIR(st->st_mode))
        n.dirs.push_back(st->st_ino);
    }
  };
  const Caller nobody{65534, 65534};
  static const std::string data(64 << 10, 'd');
  for (size_t k = 0; k < kMaxOps && !r.in.empty(); ++k) {
    const uint8_t op = r.u8();
    const Caller &who = (op & 0x80) ? nobody : kRoot;
    switch (op % 14) {
    case 0: {
      const uint64_t d = dir();
      learn(fs.mkdir(d, name(), 0777, who));
      break;
    }
    case 1: {
      const uint64_t d = dir();
      learn(fs.create(d, name(), 0666, who));
      break;
    }
    case 2: {
      const uint64_t i = ino();
      const uint64_t off = r.u8() * 3001ull;
      (void)fs.write(i, off, data.data(), r.u8() * 211ull, who);
      break;
    }
    case 3: {
      const uint64_t d1 = dir();
      const std::string a = name();
      const uint64_t d2 = dir();
      static constexpr unsigned kFlags[] = {0, RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT,
                                            RENAME_WHITEOUT | RENAME_NOREPLACE};
      (void)fs.rename(d1, a, d2, name(), kFlags[r.u8() % std::size(kFlags)], who);
      break;
    }
    case 4: {
      const uint64_t d = dir();
      (void)fs.unlink(d, name());
      break;
    }
    case 5: {
      const uint64_t d = dir();
      (void)fs.rmdir(d, name());
      break;
    }
    case 6: {
      const uint64_t i = ino();
      const uint64_t d = dir();
      learn(fs.link(i, d, name()));
      break;
    }
    case 7: {
      const uint64_t i = ino();
      if (!(op & 0x40)) {
        (void)fs.setxattr(i, "user." + name(), name(), 0);
        break;
      }
      // A POSIX ACL of up to 7 entries with tags of the six kinds (backend/fs/posix_acl.h):
      // mostly refused, sometimes valid, which sets the mode or is inherited by creates.
      std::string acl("\2\0\0\0", 4);
      for (unsigned e = 0, count = r.u8() % 8; e < count; ++e) {
        const uint8_t tag = static_cast<uint8_t>(1u << (r.u8() % 6)), perm = r.u8() % 8;
        const uint8_t id = r.u8();
        const char entry[8] = {static_cast<char>(tag), 0, static_cast<char>(perm), 0,
                               static_cast<char>(id), 0, 0, 0};
        acl.append(entry, 8);
      }
      (void)fs.setxattr(i, (op & 0x20) ? kAclDefault : kAclAccess, acl, 0, who);
      break;
    }
    case 8: {
      SetAttr sa{};
      const uint64_t i = ino();
      if (op & 0x40) { // chmod, which rewrites an access ACL
        sa.valid = SetAttr::kMode;
        sa.mode = r.u8() * 17u % 07777;
      } else {
        sa.valid = SetAttr::kSize;
        sa.size = r.u8() * 4099ull;
      }
      (void)fs.setattr(i, sa, who);
      break;
    }
    case 9: {
      const uint64_t i = ino();
      const uint64_t off = r.u8() * 1000ull;
      (void)fs.fallocate(i, (op & 0x40) ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : 0, off,
                         r.u8() * 997ull + 1, who);
      break;
    }
    case 10:
      (void)node.checkpoint(fs);
      break;
    case 11: {
      const uint64_t d = dir();
      learn(fs.symlink(d, name(), std::string(r.u8(), 't') + "x", who));
      break;
    }
    case 12: {
      const uint64_t i = ino();
      (void)fs.removexattr(i, "user." + name());
      break;
    }
    case 13: {
      const uint64_t i = ino();
      (void)fs.set_flags(i, r.u8() & 0xf0); // immutable, append, nodump, noatime
      break;
    }
    }
  }
}

void one_line(const std::string &why, const char *what) {
  if (why.find('\n') != std::string::npos)
    die(std::string(what) + " refused with more than one line: " + why);
}

void fuzz_node(std::string_view in) {
  Reader r{in};
  const Built b = build_node(r);
  std::string why;
  NodeParams params;
  params.limit_blocks = 8 * kBlocksPerFrame;
  auto opened = Node::open_shm(b.path, params, why);
  if (!opened) {
    one_line(why, "open");
    if (crc_of_file(b.path, b.bytes) != b.crc)
      die("a refused node was changed (open): " + why);
    return;
  }
  std::unique_ptr<Node> node = std::move(opened).value();
  auto fs = std::make_unique<Filesystem>(
      std::make_unique<Arena>(node->frames(), node->data_first_frame(), node->limit_blocks()),
      FsConfig{node->max_inodes()});
  if (node->fresh())
    die("an existing file was taken for a new node");
  if (auto restored = node->restore(*fs, why); !restored) {
    one_line(why, "restore");
    fs.reset();
    node.reset();
    if (crc_of_file(b.path, b.bytes) != b.crc)
      die("a refused node was changed (restore): " + why);
    return;
  }
  std::vector<std::string> problems;
  fs->verify(problems);
  if (!problems.empty())
    die("restore accepted a tree that fails verify(): " + problems.front());
  fs->attach_journal(&node->journal(), [&] { (void)node->checkpoint(*fs); });
  run_ops(*node, *fs, r);
  fs->verify(problems);
  if (!problems.empty())
    die("live operations left a tree that fails verify(): " + problems.front());
  const bool checkpointed = node->checkpoint(*fs).ok();
  node->set_state(PKRAMFS_STATE_CLEAN);
  fs.reset();
  node.reset();
  auto report = check_node(b.path);
  if (!report)
    die("check_node failed: errno " + std::to_string(report.error()));
  if (checkpointed && !report->clean)
    die("a node written by a clean checkpoint does not check clean: " +
        (report->problems.empty() ? std::string("?") : report->problems.front()));
}

// ----------------------------------------------------------------------------- seeds --

void put_u32(std::string &out, uint32_t v) { out.append(reinterpret_cast<const char *>(&v), 4); }

struct NodeParts {
  pkramfs_superblock sb{};
  std::string image, journal;
};

std::string encode_input(const NodeParts &p, uint8_t flags, std::string_view ops) {
  std::string out(1, static_cast<char>(flags));
  put_u32(out, sizeof p.sb);
  out.append(reinterpret_cast<const char *>(&p.sb), sizeof p.sb);
  put_u32(out, static_cast<uint32_t>(p.image.size()));
  out += p.image;
  put_u32(out, static_cast<uint32_t>(p.journal.size()));
  out += p.journal;
  out += ops;
  return out;
}

// A node built by the daemon's code: a tree, two checkpoints, then journaled operations and a
// "crash" (no checkpoint). Its newest superblock, current image and used journal.
NodeParts real_node() {
  const std::string path = work_dir() + "/seed";
  (void)unlink(path.c_str());
  std::string why;
  NodeParams params;
  params.limit_blocks = 8 * kBlocksPerFrame;
  auto opened = Node::open_shm(path, params, why);
  if (!opened)
    die("seed node: " + why);
  Node &node = **opened;
  Filesystem fs(
      std::make_unique<Arena>(node.frames(), node.data_first_frame(), node.limit_blocks()),
      FsConfig{node.max_inodes()});
  if (!node.checkpoint(fs))
    die("seed checkpoint");
  const uint64_t a = fs.mkdir(kRootIno, "a", 0755, kRoot)->st_ino;
  const uint64_t f = fs.create(a, "f", 0644, kRoot)->st_ino;
  const std::string data(9000, 'x');
  (void)fs.write(f, 0, data.data(), data.size(), kRoot);
  (void)fs.setxattr(f, "user.k", "v", 0);
  (void)fs.symlink(kRootIno, "long", std::string(300, 'l'), kRoot);
  (void)fs.mkdir(a, "b", 0755, kRoot);
  if (!node.checkpoint(fs))
    die("seed checkpoint");
  fs.attach_journal(&node.journal(), [] {});
  const uint64_t c = fs.mkdir(kRootIno, "c", 0700, kRoot)->st_ino;
  (void)fs.link(f, c, "hard");
  (void)fs.rename(a, "b", c, "b2", 0, kRoot);
  (void)fs.write(f, 20000, data.data(), 100, kRoot);
  (void)fs.setxattr(c, "trusted.t", "x", 0);
  (void)fs.unlink(kRootIno, "long");
  NodeParts p;
  const int fd = ::open(path.c_str(), O_RDONLY);
  pkramfs_superblock copies[2];
  (void)!pread(fd, &copies[0], sizeof copies[0], 0);
  (void)!pread(fd, &copies[1], sizeof copies[1], PKRAMFS_SB_COPY_OFFSET);
  p.sb = copies[0].sequence > copies[1].sequence ? copies[0] : copies[1];
  const pkramfs_ckpt_slot &s = p.sb.slots[p.sb.current_slot];
  p.image.resize(s.bytes);
  (void)!pread(fd, p.image.data(), s.bytes, static_cast<off_t>(s.first_frame * kFrameSize));
  p.journal.resize(node.journal().used());
  (void)!pread(fd, p.journal.data(), p.journal.size(),
               static_cast<off_t>(p.sb.journal_first_frame * kFrameSize));
  ::close(fd);
  (void)unlink(path.c_str());
  return p;
}

std::string journal_of(uint64_t epoch, uint32_t type, const std::string &payload) {
  std::string region(1 << 16, '\0');
  Journal j(reinterpret_cast<std::byte *>(region.data()), region.size());
  j.resume(epoch, 0, 1);
  (void)j.append(type, payload);
  region.resize(j.used());
  return region;
}

using test::payload_of;

// A checkpoint image of directories only (inode, parent, entries, subdirectories).
std::string dirs_image(const std::vector<test::CraftedDir> &dirs, uint64_t generation,
                       uint64_t next_ino) {
  return test::crafted_dirs_image(dirs, next_ino, generation);
}

void write_seed(const std::string &dir, const std::string &name, const std::string &body) {
  const std::string path = dir + "/" + name;
  FILE *out = std::fopen(path.c_str(), "wb");
  if (!out)
    die("cannot write " + path);
  std::fwrite(body.data(), 1, body.size(), out);
  std::fclose(out);
}

void write_seeds(const std::string &dir) {
  mkdir(dir.c_str(), 0755);
  const NodeParts real = real_node();
  const uint64_t epoch = real.sb.journal_epoch;
  // Operations: mkdir, create, write, rename, link, setxattr, checkpoint, unlink, rmdir.
  const std::string ops(
      "\x00\x00\x01\x01\x01\x02\x02\x02\x05\x05\x03\x00\x00\x01\x00\x00"
      "\x06\x02\x00\x03\x07\x01\x01\x01\x0a\x04\x00\x02\x05\x00\x01\x0b\x00\x02\x80",
      35);
  const uint8_t reseal = 1 | 2;
  int count = 0;
  auto seed = [&](const std::string &name, const NodeParts &p, std::string_view o = {}) {
    write_seed(dir, name, encode_input(p, reseal, o.empty() ? std::string_view(ops) : o));
    ++count;
  };
  seed("real", real);
  NodeParts no_journal = real;
  no_journal.journal.clear();
  seed("real-no-journal", no_journal);

  // M1: a slot whose frame numbers wrap (2^43 frames are 2^64 bytes), the restored one or the
  // other; and one past the checkpoint reserve.
  for (int which : {0, 1}) {
    NodeParts p = real;
    p.sb.slots[which ? 1 - p.sb.current_slot : p.sb.current_slot].first_frame += 1ull << 43;
    seed(which ? "m1-wrap-other-slot" : "m1-wrap-current-slot", p);
  }
  NodeParts far = real;
  far.sb.slots[1 - far.sb.current_slot].first_frame = far.sb.ckpt_first_frame + 4000;
  seed("m1-slot-past-reserve", far);

  // M2: next_ino 2^64-1, then `touch n1; touch n2` as nobody (ops 0x81 0x81: create).
  NodeParts m2 = real;
  const uint64_t top = UINT64_MAX;
  std::memcpy(m2.image.data() + offsetof(pkramfs_ckpt_header, next_ino), &top, 8);
  m2.journal.clear();
  seed("m2-next-ino-max", m2, std::string_view("\x81\x00\x01\x81\x00\x02", 6));

  // M3: directories 10 and 11 naming each other, and a RENAME record into 10.
  NodeParts m3 = real;
  m3.image = dirs_image(
      {{1, 1, {{"x", 12}}, 1}, {10, 11, {{"b", 11}}, 1}, {11, 10, {{"a", 10}}, 1}, {12, 1, {}, 0}},
      real.sb.slots[real.sb.current_slot].generation, 13);
  m3.journal = journal_of(epoch, PKRAMFS_JREC_RENAME,
                          payload_of(RenameRecord{kRootIno, 10, 0, {}, "x", "x"}));
  seed("m3-directory-cycle", m3);

  // L6: CREATE of inode 0; an xattr name of no namespace in the checkpoint.
  NodeParts l6 = real;
  CreateRecord cr;
  cr.parent = kRootIno;
  cr.mode = S_IFREG | 0644;
  cr.name = "zero";
  l6.journal = journal_of(epoch, PKRAMFS_JREC_CREATE, payload_of(cr));
  seed("l6-create-inode-0", l6);
  NodeParts x = real;
  if (const size_t at = x.image.find("user.k"); at != std::string::npos) {
    std::memcpy(x.image.data() + at, "bogus.", 6);
    seed("l6-xattr-name", x);
  }
  std::printf("node_fuzzer: wrote %d seeds to %s\n", count, dir.c_str());
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
  fuzz_node(std::string_view(reinterpret_cast<const char *>(data), size));
  return 0;
}
