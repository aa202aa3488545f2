// The filesystem model with tmpfs semantics: inodes, directories, data in the arena. No FUSE in
// here; the adapter in fuse/ turns requests into these calls and results into replies.
//
// Locking: `tree_` guards the inode table and the namespace. Namespace changes take it
// exclusively; everything else takes it shared plus the inode's own lock for data and
// attributes. The arena has its own lock.
#pragma once

#include "storage/arena.h"
#include "storage/object_store.h"
#include "fs/inode.h"
#include "fs/lookup_mirror.h"
#include "journal/journal.h"
#include "journal/records.h"
#include "util/result.h"

#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unordered_map>
#include <vector>

namespace pkramfs {

inline constexpr uint64_t kRootIno = 1;
// Inode numbers are below this (docs/format.md): a checkpoint's next_ino is at most this, a
// journal record names none at or above it, and once next_ino reaches it creating a file fails
// with ENOSPC. Far beyond what any node holds; it keeps ino + 1 from wrapping.
inline constexpr uint64_t kInoLimit = 1ull << 63;
inline constexpr size_t kNameMax = PKRAMFS_NAME_MAX;

struct FsConfig {
  uint64_t max_inodes = 0;
  uint32_t root_mode = 01777;
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
};

// When reads and readdir stamp atime, as the mount options say (kernel FUSE marks its inodes
// S_NOATIME and leaves atime to the daemon, so the VFS's own rules never run).
struct AtimePolicy {
  enum class Mode : uint8_t {
    kRelatime,    // the first access after a change, or once a day (the kernel's default)
    kStrictatime, // every access
    kNoatime,     // never
  };
  Mode mode = Mode::kRelatime;
  bool nodiratime = false; // directories never
};

// What the kernel does not put in a request but some tmpfs rules depend on.
struct Credentials {
  std::vector<uint32_t> groups; // supplementary groups
  bool cap_fsetid = false;      // keeps suid/sgid on write and truncate
  bool cap_sys_admin = false;   // sees trusted.* xattrs in listings
};

// Who asks: the filesystem uid and gid of the calling process, and a way to look up the rest
// only when a rule needs it (it costs a read of /proc).
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::function<Credentials()> credentials = [] { return Credentials{}; };
  // The caller's umask, for mknod/mkdir/create: with POSIX ACLs the kernel leaves it to the
  // filesystem, which applies it only where the parent has no default ACL (posix_acl_create).
  uint32_t umask = 0;
};

struct SetAttr {
  enum : uint32_t {
    kMode = 1 << 0,
    kUid = 1 << 1,
    kGid = 1 << 2,
    kSize = 1 << 3,
    kAtime = 1 << 4,
    kMtime = 1 << 5,
    kAtimeNow = 1 << 6,
    kMtimeNow = 1 << 7,
    kCtime = 1 << 8,
    kThroughFile = 1 << 9, // ftruncate rather than truncate: stamps times even at the same size
  };
  uint32_t valid = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  timespec atime{}, mtime{}, ctime{};
};

// Receives the data of a read as an iovec list into arena memory (and a shared zero page for
// holes); called while the file's lock is held, so it must consume the memory before returning.
class ReadSink {
public:
  virtual void deliver(std::span<const iovec> iov) = 0;

protected:
  ~ReadSink() = default;
};

// A ReadSink that appends what a read delivers to a buffer.
class AppendSink final : public ReadSink {
public:
  explicit AppendSink(std::vector<std::byte> &bytes) : bytes_(bytes) {}
  void deliver(std::span<const iovec> iov) override {
    for (const iovec &v : iov) {
      const auto *p = static_cast<const std::byte *>(v.iov_base);
      bytes_.insert(bytes_.end(), p, p + v.iov_len);
    }
  }

private:
  std::vector<std::byte> &bytes_;
};

// Receives directory entries; returns false when it has no room for this one.
class DirSink {
public:
  virtual bool add(std::string_view name, const struct stat &st, uint64_t next_offset) = 0;

protected:
  ~DirSink() = default;
};

// What statx(2) shows besides getattr's stat: the birth time (none where it is not known,
// pkramfs/format.h) and the chattr flags (PKRAMFS_INODE_*), as tmpfs's shmem_getattr reports
// them.
struct StatxAttr {
  struct stat st {};
  std::optional<timespec> btime;
  uint32_t flags = 0;
};

class Filesystem {
public:
  Filesystem(std::unique_ptr<Arena> arena, const FsConfig &config);
  ~Filesystem();

  // Name space. Calls that return a stat for a new or looked-up entry count one kernel
  // reference (lookup count) on it; forget() drops them.
  Result<struct stat> lookup(uint64_t parent, std::string_view name);
  void forget(uint64_t ino, uint64_t nlookup);
  Result<struct stat> mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                            const Caller &who);
  Result<struct stat> mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                            const Caller &who);
  Result<struct stat> symlink(uint64_t parent, std::string_view name, std::string_view target,
                              const Caller &who);
  Result<struct stat> link(uint64_t ino, uint64_t parent, std::string_view name);
  Result<void> unlink(uint64_t parent, std::string_view name);
  Result<void> rmdir(uint64_t parent, std::string_view name);
  // RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT, as tmpfs (shmem_rename2).
  Result<void> rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                      std::string_view new_name, unsigned flags, const Caller &who);
  Result<std::string> readlink(uint64_t ino);
  Result<void> readdir(uint64_t ino, uint64_t offset, bool plus, DirSink &sink);

  // Attributes.
  Result<struct stat> getattr(uint64_t ino);
  Result<StatxAttr> statx(uint64_t ino);
  Result<struct stat> setattr(uint64_t ino, const SetAttr &attr, const Caller &who);
  // `who` matters only for an access ACL, which drops sgid for a caller outside the file's
  // group without CAP_FSETID (posix_acl_update_mode).
  Result<void> setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags,
                        const Caller &who = {});
  Result<std::string> getxattr(uint64_t ino, std::string_view name);
  // trusted.* names are listed only to callers with CAP_SYS_ADMIN, as on tmpfs.
  Result<std::string> listxattr(uint64_t ino, const Caller &who);
  Result<void> removexattr(uint64_t ino, std::string_view name);
  // chattr (FS_IOC_GETFLAGS/SETFLAGS): PKRAMFS_INODE_* flags of a regular file or directory
  // (ENOTTY for other types, as the kernel answers). set_flags refuses bits tmpfs does not keep
  // with EOPNOTSUPP; the VFS has checked ownership and CAP_LINUX_IMMUTABLE already
  // (vfs_fileattr_set, fileattr_set_prepare).
  Result<uint32_t> get_flags(uint64_t ino);
  Result<void> set_flags(uint64_t ino, uint32_t flags);

  // Open files and data.
  Result<struct stat> create(uint64_t parent, std::string_view name, uint32_t mode,
                             const Caller &who);
  // O_TMPFILE: an open regular file with no name (nlink 0) whose owner and mode follow the
  // rules of create() in `parent`; it counts one kernel reference like create(). `linkable`
  // (not O_EXCL): link() may give it its first name, which makes it a file like any other.
  // Left without a name, it goes when it is closed, or at a restore.
  Result<struct stat> tmpfile(uint64_t parent, uint32_t mode, bool linkable, const Caller &who);
  // `flags` are open(2)'s. O_TRUNC empties the file, sets mtime and ctime and drops suid/sgid
  // as the kernel would for this caller; the access mode, O_APPEND and O_TRUNC are checked
  // against the immutable and append-only flags (may_open).
  Result<void> open(uint64_t ino, int flags, const Caller &who);
  void release(uint64_t ino);
  Result<void> read(uint64_t ino, uint64_t offset, uint64_t size, ReadSink &sink);
  Result<size_t> write(uint64_t ino, uint64_t offset, const void *buf, size_t size,
                       const Caller &who);
  Result<void> fallocate(uint64_t ino, int mode, uint64_t offset, uint64_t length,
                         const Caller &who);

  // Called, outside every lock, when the daemon changed attributes that the kernel caches and
  // does not expect to change (the suid/sgid bits the kernel leaves for the daemon to drop).
  void on_attributes_changed(std::function<void(uint64_t ino)> callback) {
    attributes_changed_ = std::move(callback);
  }
  Result<uint64_t> lseek(uint64_t ino, int64_t offset, int whence);
  Result<size_t> copy_file_range(uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
                                 uint64_t off_out, size_t len, const Caller &who);

  struct statvfs statfs() const;
  uint64_t inode_count() const;

  // Persistence. With a journal attached, every mutation appends a record before it returns.
  void attach_journal(Journal *journal, std::function<void()> checkpoint_when_full) {
    journal_ = journal;
    checkpoint_when_full_ = std::move(checkpoint_when_full);
  }
  // Serialises the whole tree as a checkpoint image and hands it to `store` while every
  // operation waits, so that the image and the journal reset `store` does are one cut.
  Result<void> checkpoint(uint64_t generation,
                          const std::function<Result<void>(std::string_view image)> &store);
  // Rebuilds the tree from a checkpoint image (replacing the empty root), then from journal
  // records; finish_restore() drops what was unlinked but still open at the crash. On failure
  // `why` names what is wrong.
  Result<void> load_image(std::string_view image, std::string &why);
  Result<void> replay(uint32_t type, std::string_view payload, std::string &why);
  void finish_restore();
  // A process taking a live mount over (fuse/holder.h): the kernel still references inodes the
  // journal shows unlinked (an open file, a deleted working directory), so finish_restore()
  // keeps them, for adopt_kernel_references() to decide.
  // REQUIRES: called before load_image().
  void keep_unlinked_on_restore() { keep_unlinked_ = true; }
  // After such a restore: `open_files` holds, per inode, the files the kernel has open on it
  // (the holder's handle table), and `lookups` its lookup references (the lookup ledger), or is
  // null where they are not known: then every inode that exists now gets one too many to be
  // forgotten, so that no inode the kernel may name is dropped (an unlinked one stays in the
  // inode table, without its data once closed, until unmount). An unlinked inode that nothing
  // references goes at once; one that is not open gives its data back, as release() would have.
  void adopt_kernel_references(const std::unordered_map<uint64_t, uint32_t> &open_files,
                               const std::unordered_map<uint64_t, uint64_t> *lookups);
  // Every change of a lookup count goes to `mirror` too (null: none). REQUIRES: before serving.
  void set_lookup_mirror(LookupMirror *mirror) { lookup_mirror_ = mirror; }
  // The file objects of this tree are in `store` (storage/object_store.h; null: none), which
  // outlives the tree. A node's store is given before its restore (its files' objects are
  // there, and its releases remove theirs); a read-only store (offline reading) is only read.
  void use_objects(const ObjectStore *store);
  // Regular files made from now on keep their data in objects (logged: OBJECT records), not in
  // the arena. REQUIRES: use_objects() gave a writable store.
  void make_objects(bool on);
  // After a restore: regular files whose data is an object that `objects` does not hold (the
  // store is gone, or was never given). A node that has any is refused.
  std::vector<uint64_t> missing_objects() const;
  // The regular files whose data is an object, ascending.
  std::vector<uint64_t> object_inodes() const;
  // An import into a node without file objects: every file that was an object is an arena
  // file from now on, with no data until restore_object_data() gives it its bytes (its size
  // and times stay). REQUIRES: offline (no journal), no store.
  void objects_to_arena();
  // Writes an imported object's bytes into its arena file, at `offset`, cut at its size; its
  // size and times stay as restored. REQUIRES: offline, after objects_to_arena().
  Result<void> restore_object_data(uint64_t ino, uint64_t offset, const void *buf, size_t size);
  // After a restore: removes the objects no inode has (a daemon that died between making an
  // object and logging its file, or between a RELEASE and the object's removal). Returns how
  // many went.
  uint64_t sweep_orphan_objects();
  // Sizes the objects' tmpfs to what the arena leaves of size= (its metadata, long symlinks,
  // files from before objects), so that writes the daemon never sees stop where statfs says.
  // Done when the store is given and at every checkpoint: arena writes in between may let the
  // objects take that much more until the next.
  void fit_objects();
  // The object of a regular file, or -1 (its data is in the arena). Valid while it is open.
  int object_fd(uint64_t ino) const;
  // Inodes without a name that are kept because the kernel references them or they are open.
  uint64_t unlinked_inodes() const;
  void set_atime_policy(AtimePolicy policy) {
    atime_mode_ = policy.mode;
    nodiratime_ = policy.nodiratime;
  }
  // POSIX ACLs (system.posix_acl_access/default, posix_acl.h): on unless the kernel cannot check
  // permissions against them (no FUSE_POSIX_ACL); off, their names are EOPNOTSUPP as on a tmpfs
  // without CONFIG_TMPFS_POSIX_ACL. A default ACL already stored is still inherited.
  void set_posix_acl(bool on) { posix_acl_ = on; }
  // Refuses every mutation with EROFS (preserve).
  void set_frozen(bool frozen) { frozen_ = frozen; }
  bool frozen() const { return frozen_; }

  // Checks the tree's invariants (link counts, parent/child agreement, directory sizes) and
  // appends one line per problem.
  void verify(std::vector<std::string> &problems) const;

  struct Usage {
    uint64_t files = 0, directories = 0, others = 0, data_blocks = 0;
    uint64_t metadata_blocks = 0; // charged against size= besides the data (set_metadata_blocks)
    uint64_t data_frames = 0;     // data frames holding at least one block
    uint64_t object_blocks = 0;   // of data_blocks, in file objects (their tmpfs's pages)
  };
  Usage usage() const;

  // How much of the size limit metadata kept outside the data frames takes (a node's checkpoint
  // slots, in blocks); writes get only what is left, and statfs counts it as used.
  // The file objects' tmpfs gets the room the arena leaves, so that df's free space is what
  // writes to objects can still take (fit_objects).
  void set_metadata_blocks(uint64_t blocks);

  // One mapped run of a regular file or long symlink, as a checkpoint image records it.
  struct DataExtent {
    uint64_t ino = 0;
    uint64_t file_block = 0;
    uint64_t block = 0; // first arena block: the node's own block number
    uint64_t count = 0;
    bool unwritten = false;
  };
  // Every extent of every inode a checkpoint would hold, in no particular order.
  std::vector<DataExtent> data_extents() const;

private:
  // Collects the extent changes an operation makes, for its journal record.
  class ChangeRecorder {
  public:
    explicit ChangeRecorder(ExtentMap &map) : map_(map) { map_.record_into(&changes_); }
    ~ChangeRecorder() { map_.record_into(nullptr); }
    std::vector<ExtentChange> take() { return std::move(changes_); }

  private:
    ExtentMap &map_;
    std::vector<ExtentChange> changes_;
  };

  using InodeTable = std::unordered_map<uint64_t, std::unique_ptr<Inode>>;
  // A new inode with all its memory allocated (table node, directory entry): committing it
  // after the journal record cannot fail.
  struct PreparedCreate {
    InodeTable::node_type node;
    std::optional<Directory::Slot> entry; // none for an O_TMPFILE inode (no name)
  };
  // What make_node leaves behind besides the inode: a name in the parent (and an open file),
  // or an open file without a name (O_TMPFILE), which link() may name or not.
  enum class NewInode : uint8_t { kNamed, kNamedOpen, kTmpfileLinkable, kTmpfileExclusive };

  template <class R> Result<void> log_record(uint32_t type, const R &record);
  Result<void> log_inode(const Inode &inode, std::vector<ExtentChange> &&changes);
  void release_pending();
  void maybe_checkpoint();
  Inode &apply_create(const CreateRecord &r);
  PreparedCreate prepare_create(const CreateRecord &r);
  Inode &commit_create(const CreateRecord &r, PreparedCreate &&prepared) noexcept;
  void apply_link(const LinkRecord &r, Directory::Slot &&entry) noexcept;
  // `entry`: the new name's slot in the new parent, prepared unless RENAME_EXCHANGE.
  Inode *apply_rename(const RenameRecord &r, Directory::Slot &&entry) noexcept;
  Result<void> rename_with_whiteout(Inode &old_dir, Inode &new_dir, RenameRecord &&rename,
                                    const Caller &who);
  void apply_flags(const FlagsRecord &r) noexcept;
  void apply_xattr(XattrRecord &&r, bool remove) noexcept;
  Result<void> set_acl(Inode &inode, std::string_view name, std::string_view value,
                       const Caller &who);
  Result<void> remove_acl(Inode &inode, std::string_view name);
  void apply_release(Inode &inode);
  Result<bool> check_rename(Inode &od, std::string_view name, Inode &nd, std::string_view new_name,
                            unsigned flags) const;
  Result<void> replay_inode(const InodeRecord &r, std::string &why);
  void detach_dir(Inode &parent, std::string_view name, Inode &child, const timespec &t);
  Inode *find(uint64_t ino) const;
  void verify_locked(std::vector<std::string> &problems) const;
  Result<Inode *> find_dir(uint64_t ino) const;
  void drop_inode_if_unused(Inode &inode);
  void release_if_dead(Inode &inode);
  bool drop_privileges_locked(Inode &inode, const Caller &who);
  bool kill_on_chown_locked(Inode &inode, const Caller &who);
  void notify_attributes_changed(uint64_t ino);
  void free_data(Inode &inode, uint64_t first_block, uint64_t end_block);
  void attach(Inode &parent, Directory::Slot &&entry, Inode &child, const timespec &t) noexcept;
  void detach_nondir(Inode &parent, std::string_view name, Inode &child, const timespec &t);
  CreateRecord new_inode_record(const Inode &dir, std::string_view name, uint32_t mode,
                                const Caller &who) const;
  Result<struct stat> make_node(uint64_t parent, std::string_view name, uint32_t mode,
                                uint64_t rdev, std::string_view target, const Caller &who,
                                NewInode how);
  bool is_ancestor(uint64_t ancestor, const Inode &dir) const;
  // `through_file`: ftruncate(2) or O_TRUNC, which stamp mtime and ctime whatever the size
  // (do_truncate with ATTR_MTIME | ATTR_CTIME); truncate(2) does only when the size changes.
  Result<void> truncate_locked(Inode &inode, uint64_t size, bool through_file = true);
  Result<size_t> write_locked(Inode &inode, uint64_t offset, const void *buf, size_t size);
  Result<size_t> write_object_locked(Inode &inode, uint64_t offset, const void *buf, size_t size);
  Result<void> read_object(Inode &inode, uint64_t offset, uint64_t size, ReadSink &sink);
  // The descriptor of `inode`'s object: its own while the file is open, else one opened into
  // `scratch`; -1 (errno set) when it cannot be opened. REQUIRES: inode.has_object.
  int object_fd_locked(const Inode &inode, UniqueFd &scratch) const;
  Result<void> undo_allocation(Inode &inode,
                               const std::vector<std::pair<uint64_t, BlockRun>> &added, int error);
  Result<void> allocate_range(Inode &inode, uint64_t first, uint64_t end, bool keep_size,
                              uint64_t new_size);
  void zero_range_locked(Inode &inode, uint64_t offset, uint64_t length);
  void touch_atime(Inode &inode);
  void punch_hole_locked(Inode &inode, uint64_t offset, uint64_t end);
  struct stat stat_of(const Inode &inode) const;
  bool reserve_inode();
  void unreserve_inode();
  // An entry reply names `inode`: one more lookup reference (mirrored).
  void add_lookup(Inode &inode);

  std::unique_ptr<Arena> arena_;
  const FsConfig config_;
  mutable std::shared_mutex tree_;
  InodeTable inodes_;
  uint64_t next_ino_ = kRootIno + 1;
  std::atomic<uint64_t> used_inodes_{0};
  std::function<void(uint64_t)> attributes_changed_;
  Journal *journal_ = nullptr;
  std::function<void()> checkpoint_when_full_;
  std::atomic<bool> frozen_{false};
  std::atomic<bool> posix_acl_{true};
  std::atomic<AtimePolicy::Mode> atime_mode_{AtimePolicy::Mode::kRelatime};
  std::atomic<bool> nodiratime_{false};
  bool replaying_ = false;
  bool keep_unlinked_ = false; // keep_unlinked_on_restore
  LookupMirror *lookup_mirror_ = nullptr;
  const ObjectStore *objects_ = nullptr;
  bool make_objects_ = false;
};

template <class R> Result<void> Filesystem::log_record(uint32_t type, const R &record) {
  if (!journal_ || replaying_)
    return {};
  // Encoded straight into the journal (sized by a counting pass first): logging allocates
  // nothing, so once an operation has changed the tree its record cannot fail for lack of
  // memory.
  Encoder counter(nullptr, 0);
  encode(counter, record);
  return journal_->append_encoded(type, counter.size(), [&](Encoder &e) { encode(e, record); });
}

} // namespace pkramfs
