#include "journal/records.h"

#include <linux/limits.h>

namespace pkramfs {
namespace {
// The format's limits are the kernel's (pkramfs/format.h).
static_assert(PKRAMFS_NAME_MAX == NAME_MAX && PKRAMFS_SYMLINK_MAX == PATH_MAX - 1 &&
              PKRAMFS_XATTR_NAME_MAX == XATTR_NAME_MAX && PKRAMFS_XATTR_VALUE_MAX == XATTR_SIZE_MAX);
constexpr size_t kNameLimit = PKRAMFS_NAME_MAX;
constexpr size_t kTargetLimit = PKRAMFS_SYMLINK_MAX;
constexpr size_t kValueLimit = PKRAMFS_XATTR_VALUE_MAX;
constexpr uint64_t kMaxChanges = 1 << 20;
} // namespace

void encode_time(Encoder &e, const timespec &t) {
  e.i64(t.tv_sec);
  e.u32(static_cast<uint32_t>(t.tv_nsec));
}

timespec decode_time(Decoder &d) {
  timespec t{};
  t.tv_sec = d.i64();
  const uint32_t ns = d.u32();
  if (ns >= 1000000000u)
    d.fail();
  t.tv_nsec = ns;
  return t;
}

void encode(Encoder &e, const CreateRecord &r) {
  e.u64(r.parent);
  e.u64(r.ino);
  e.u32(r.mode);
  e.u32(r.uid);
  e.u32(r.gid);
  e.u64(r.rdev);
  encode_time(e, r.time);
  e.str(r.name);
  e.str(r.target);
  e.u64(r.target_block.start);
  e.u64(r.target_block.count);
}

bool decode(Decoder &d, CreateRecord &r) {
  r.parent = d.u64();
  r.ino = d.u64();
  r.mode = d.u32();
  r.uid = d.u32();
  r.gid = d.u32();
  r.rdev = d.u64();
  r.time = decode_time(d);
  r.name = d.str(kNameLimit);
  r.target = d.str(kTargetLimit);
  r.target_block.start = d.u64();
  r.target_block.count = d.u64();
  return d.ok() && r.target_block.count <= 1;
}

void encode(Encoder &e, const TmpfileRecord &r) {
  e.u64(r.ino);
  e.u64(r.parent);
  e.u32(r.mode);
  e.u32(r.uid);
  e.u32(r.gid);
  encode_time(e, r.time);
}

bool decode(Decoder &d, TmpfileRecord &r) {
  r.ino = d.u64();
  r.parent = d.u64();
  r.mode = d.u32();
  r.uid = d.u32();
  r.gid = d.u32();
  r.time = decode_time(d);
  return d.ok();
}

void encode(Encoder &e, const LinkRecord &r) {
  e.u64(r.ino);
  e.u64(r.parent);
  encode_time(e, r.time);
  e.str(r.name);
}

bool decode(Decoder &d, LinkRecord &r) {
  r.ino = d.u64();
  r.parent = d.u64();
  r.time = decode_time(d);
  r.name = d.str(kNameLimit);
  return d.ok();
}

void encode(Encoder &e, const RemoveRecord &r) {
  e.u64(r.parent);
  encode_time(e, r.time);
  e.str(r.name);
}

bool decode(Decoder &d, RemoveRecord &r) {
  r.parent = d.u64();
  r.time = decode_time(d);
  r.name = d.str(kNameLimit);
  return d.ok();
}

void encode(Encoder &e, const RenameRecord &r) {
  e.u64(r.parent);
  e.u64(r.new_parent);
  e.u32(r.flags);
  encode_time(e, r.time);
  e.str(r.name);
  e.str(r.new_name);
}

bool decode(Decoder &d, RenameRecord &r) {
  r.parent = d.u64();
  r.new_parent = d.u64();
  r.flags = d.u32();
  r.time = decode_time(d);
  r.name = d.str(kNameLimit);
  r.new_name = d.str(kNameLimit);
  return d.ok();
}

void encode(Encoder &e, const InodeRecord &r) {
  e.u64(r.ino);
  e.u32(r.mode);
  e.u32(r.uid);
  e.u32(r.gid);
  e.u64(r.size);
  encode_time(e, r.atime);
  encode_time(e, r.mtime);
  encode_time(e, r.ctime);
  e.u64(r.changes.size());
  for (const ExtentChange &c : r.changes) {
    e.u32(c.kind);
    e.u32(c.unwritten);
    e.u64(c.a);
    e.u64(c.b);
    e.u64(c.c);
  }
}

bool decode(Decoder &d, InodeRecord &r) {
  r.ino = d.u64();
  r.mode = d.u32();
  r.uid = d.u32();
  r.gid = d.u32();
  r.size = d.u64();
  r.atime = decode_time(d);
  r.mtime = decode_time(d);
  r.ctime = decode_time(d);
  const uint64_t n = d.u64();
  if (n > kMaxChanges || n * 32 > d.remaining())
    return false;
  r.changes.resize(n);
  for (ExtentChange &c : r.changes) {
    c.kind = d.u32();
    c.unwritten = d.u32();
    c.a = d.u64();
    c.b = d.u64();
    c.c = d.u64();
    if (c.kind < ExtentChange::kInsert || c.kind > ExtentChange::kWritten)
      d.fail();
  }
  return d.ok();
}

void encode(Encoder &e, const XattrRecord &r) {
  e.u64(r.ino);
  encode_time(e, r.ctime);
  e.str(r.name);
  e.str(r.value);
}

bool decode(Decoder &d, XattrRecord &r) {
  r.ino = d.u64();
  r.ctime = decode_time(d);
  r.name = d.str(kNameLimit);
  r.value = d.str(kValueLimit);
  return d.ok();
}

void encode(Encoder &e, const ReleaseRecord &r) { e.u64(r.ino); }

bool decode(Decoder &d, ReleaseRecord &r) {
  r.ino = d.u64();
  return d.ok();
}

void encode(Encoder &e, const ObjectRecord &r) { e.u64(r.ino); }

bool decode(Decoder &d, ObjectRecord &r) {
  r.ino = d.u64();
  return d.ok();
}

void encode(Encoder &e, const FlagsRecord &r) {
  e.u64(r.ino);
  e.u32(r.flags);
  encode_time(e, r.ctime);
}

bool decode(Decoder &d, FlagsRecord &r) {
  r.ino = d.u64();
  r.flags = d.u32();
  r.ctime = decode_time(d);
  return d.ok() && (r.flags & ~PKRAMFS_INODE_FLAGS) == 0;
}

void encode(Encoder &e, const WhiteoutRenameRecord &r) {
  encode(e, r.rename);
  e.u64(r.whiteout_ino);
  e.u32(r.uid);
  e.u32(r.gid);
}

bool decode(Decoder &d, WhiteoutRenameRecord &r) {
  if (!decode(d, r.rename))
    return false;
  r.whiteout_ino = d.u64();
  r.uid = d.u32();
  r.gid = d.u32();
  return d.ok();
}

} // namespace pkramfs
