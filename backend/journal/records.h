// Journal records: what each mutating operation decided (inode numbers, times, blocks), so that
// replaying them rebuilds exactly the tree the daemon had acknowledged. Layouts in
// docs/format.md; the type numbers in pkramfs/format.h.
#pragma once

#include "journal/codec.h"
#include "storage/extent_map.h"
#include "pkramfs/format.h"

#include <ctime>
#include <string>
#include <vector>

namespace pkramfs {

// In memory also an O_TMPFILE inode's: then `name` is empty, `parent` is the directory it was
// made in (0 if that is gone, in replay) and the journal holds a TmpfileRecord.
struct CreateRecord {
  uint64_t parent = 0, ino = 0;
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t rdev = 0;
  timespec time{};
  std::string name, target;
  BlockRun target_block; // long symlinks
};

// O_TMPFILE: a new regular file with no name (nlink 0), open. A LINK may name it later; if
// none does, its RELEASE or the end of a restore (finish_restore) drops it. `parent`: the
// directory it was made in, whose nodump/noatime flags and default ACL it inherits (as a create
// in it would); replay inherits them again when that directory is still there.
struct TmpfileRecord {
  uint64_t ino = 0, parent = 0;
  uint32_t mode = 0, uid = 0, gid = 0;
  timespec time{};
};

struct LinkRecord {
  uint64_t ino = 0, parent = 0;
  timespec time{};
  std::string name;
};

// UNLINK and RMDIR.
struct RemoveRecord {
  uint64_t parent = 0;
  timespec time{};
  std::string name;
};

struct RenameRecord {
  uint64_t parent = 0, new_parent = 0;
  uint32_t flags = 0;
  timespec time{};
  std::string name, new_name;
};

// Attributes after the change, and the extent changes that made it.
struct InodeRecord {
  uint64_t ino = 0;
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t size = 0;
  timespec atime{}, mtime{}, ctime{};
  std::vector<ExtentChange> changes;
};

// XATTR_SET and XATTR_REMOVE.
struct XattrRecord {
  uint64_t ino = 0;
  timespec ctime{};
  std::string name, value;
};

struct ReleaseRecord {
  uint64_t ino = 0;
};

// A new regular file's data is its file object (format version 5).
struct ObjectRecord {
  uint64_t ino = 0;
};

// chattr: the inode's flags after the change (PKRAMFS_INODE_*).
struct FlagsRecord {
  uint64_t ino = 0;
  uint32_t flags = 0;
  timespec ctime{};
};

// renameat2(RENAME_WHITEOUT): the rename, and the whiteout that takes the old name in the
// same step (a character device 0/0 of mode 0, owned as a mknod by the caller would be, its
// times the rename's).
struct WhiteoutRenameRecord {
  RenameRecord rename;
  uint64_t whiteout_ino = 0;
  uint32_t uid = 0, gid = 0;
};

void encode(Encoder &e, const CreateRecord &r);
void encode(Encoder &e, const LinkRecord &r);
void encode(Encoder &e, const RemoveRecord &r);
void encode(Encoder &e, const RenameRecord &r);
void encode(Encoder &e, const InodeRecord &r);
void encode(Encoder &e, const XattrRecord &r);
void encode(Encoder &e, const ReleaseRecord &r);
void encode(Encoder &e, const ObjectRecord &r);
void encode(Encoder &e, const FlagsRecord &r);
void encode(Encoder &e, const WhiteoutRenameRecord &r);
void encode(Encoder &e, const TmpfileRecord &r);

// Each returns false when the payload is short or out of range.
bool decode(Decoder &d, CreateRecord &r);
bool decode(Decoder &d, LinkRecord &r);
bool decode(Decoder &d, RemoveRecord &r);
bool decode(Decoder &d, RenameRecord &r);
bool decode(Decoder &d, InodeRecord &r);
bool decode(Decoder &d, XattrRecord &r);
bool decode(Decoder &d, ReleaseRecord &r);
bool decode(Decoder &d, ObjectRecord &r);
bool decode(Decoder &d, FlagsRecord &r);
bool decode(Decoder &d, WhiteoutRenameRecord &r);
bool decode(Decoder &d, TmpfileRecord &r);

void encode_time(Encoder &e, const timespec &t);
timespec decode_time(Decoder &d);

} // namespace pkramfs
