// The FUSE low-level handlers: each translates one request into a Filesystem call and ends in
// exactly one fuse_reply_*. Lookup counts are taken by the backend for every entry reply and
// dropped in forget.
#include "operations.h"

#include "backing_files.h"
#include "credentials.h"
#include "device_io.h"
#include "session_state.h"
#include "direct_write.h"
#include "fs/filesystem.h"
#include "fs/inode_flags.h"
#include "statx_wire.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <vector>

namespace pkramfs {
namespace {

// The daemon is the only writer, so the kernel may cache names and attributes for long.
constexpr double kTimeout = 86400.0;

const ServeContext &context_of(fuse_req_t req) {
  return *static_cast<const ServeContext *>(fuse_req_userdata(req));
}
Filesystem &fs_of(fuse_req_t req) { return context_of(req).fs; }

// The request's uid and gid, and the rest from /proc when a rule needs it; CAP_FSETID as the
// kernel judged it wherever the request says (kernel_fsetid_verdict).
Caller caller_of(fuse_req_t req) {
  const fuse_ctx *ctx = fuse_req_ctx(req);
  const pid_t tid = ctx->pid;
  const std::optional<bool> fsetid = kernel_fsetid_verdict();
  return {ctx->uid, ctx->gid,
          [tid, fsetid] {
            Credentials creds = read_credentials(tid);
            if (fsetid)
              creds.cap_fsetid = *fsetid;
            return creds;
          },
          ctx->umask}; // MKNOD, MKDIR and CREATE carry it; 0 in every other request
}

// The entry of an inode the kernel may keep (and look up by handle): its attributes, for kTimeout.
fuse_entry_param entry_of(fuse_req_t req, const struct stat &st) {
  fuse_entry_param e{};
  e.ino = st.st_ino;
  e.generation = context_of(req).handle_generation;
  e.attr = st;
  e.attr_timeout = e.entry_timeout = kTimeout;
  return e;
}

void reply_entry(fuse_req_t req, const Result<struct stat> &r) {
  if (!r) {
    fuse_reply_err(req, r.error());
    return;
  }
  const fuse_entry_param e = entry_of(req, *r);
  fuse_reply_entry(req, &e);
}

void reply_status(fuse_req_t req, const Result<void> &r) { fuse_reply_err(req, r.error()); }

// A request the kernel sent again after a takeover (FUSE_NOTIFY_RESEND) whose change is in the
// journal: the process that died made it and was killed before its reply went out. It is
// answered from the tree as it stands and never applied twice (a CREATE with O_EXCL would
// fail with EEXIST, an UNLINK with ENOENT, an O_APPEND WRITE would append again). A change
// not logged is made as if it were new.
bool applied_before() { return serving_applied_request(); }

// The entry such a request made: the name as it is now.
void reply_made_before(fuse_req_t req, fuse_ino_t parent, const char *name) {
  reply_entry(req, fs_of(req).lookup(parent, name));
}

void op_init(void *userdata, fuse_conn_info *conn) {
  conn->max_write = 1 << 20;
  // POSIX ACLs as tmpfs has them: the kernel checks permissions against the ACL it reads back
  // (GETXATTR system.posix_acl_access) and leaves the rest to us (posix_acl.h). DONT_MASK: the
  // kernel sends the umask instead of applying it, as posix_acl_create applies it only where
  // the parent has no default ACL. Without them, ACL names are EOPNOTSUPP.
  const auto &ctx = *static_cast<const ServeContext *>(userdata);
  Filesystem &fs = ctx.fs;
  const unsigned acl_caps = FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  if ((conn->capable & acl_caps) == acl_caps)
    conn->want |= acl_caps;
  else
    fs.set_posix_acl(false);
  // Not v1, which keeps the kernel's security.capability lookup before every write; v2, which
  // drops it, is added to the INIT reply by device_io.h (libfuse 3.14 cannot ask for it).
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  // Nobody else changes data behind the kernel's back.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  // O_TRUNC comes with the open: the kernel sends no truncate for an already empty file, yet
  // tmpfs stamps mtime and ctime on every O_TRUNC.
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
    conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  // File handles (name_to_handle_at, open_by_handle_at, NFS export) of inodes the kernel has
  // dropped: it looks up "." of the handle's node id (Filesystem::lookup). Node ids (inode
  // numbers) are never reused, within a mount or across restarts, so one generation per node
  // serves every inode; it only tells this node's handles from another's.
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
    conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  // chattr/lsattr on directories come as FUSE_IOCTL with FUSE_IOCTL_DIR (op_ioctl).
  if (conn->capable & FUSE_CAP_IOCTL_DIR)
    conn->want |= FUSE_CAP_IOCTL_DIR;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
    conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_READDIRPLUS)
    conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
  // The kernel keeps written data, mtime, ctime and size in its page cache and inode and hands
  // them to us later (writeback, setattr); see docs/performance.md for what that changes.
  if (ctx.cache == CacheMode::kWriteback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
    conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  spdlog::debug("init: proto {}.{}, max_write {}, want {:#x}", conn->proto_major, conn->proto_minor,
                conn->max_write, conn->want);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  auto r = fs_of(req).lookup(parent, name);
  if (!r && r.error() == ENOENT) {
    // A negative entry: the kernel remembers the miss until it creates the name itself.
    fuse_entry_param e{};
    e.entry_timeout = kTimeout;
    fuse_reply_entry(req, &e);
    return;
  }
  reply_entry(req, r);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  fs_of(req).forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data *forgets) {
  for (size_t i = 0; i < count; ++i)
    fs_of(req).forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

FuseSxTime sx_time(const timespec &t) { return {t.tv_sec, static_cast<uint32_t>(t.tv_nsec), 0}; }

// FUSE_STATX, served by op_getattr (device_io.h): what tmpfs's shmem_getattr reports, the basic
// stats, the birth time where the caller asks for it (not where it is unknown: an inode from a
// version-1/2 checkpoint) and the chattr flags as STATX_ATTR_*, cached by the kernel as long as
// a GETATTR's answer. The checks are GETATTR's: none beyond the inode's existence.
void reply_statx(fuse_req_t req, fuse_ino_t ino, const StatxRequest &want) {
  auto r = fs_of(req).statx(ino);
  if (!r) {
    fuse_reply_err(req, r.error());
    return;
  }
  const struct stat &st = r->st;
  FuseStatxOut out{};
  out.attr_valid = static_cast<uint64_t>(kTimeout);
  FuseStatx &sx = out.stat;
  sx.mask = STATX_BASIC_STATS;
  sx.blksize = static_cast<uint32_t>(st.st_blksize);
  sx.nlink = static_cast<uint32_t>(st.st_nlink);
  sx.uid = st.st_uid;
  sx.gid = st.st_gid;
  sx.mode = static_cast<uint16_t>(st.st_mode);
  sx.ino = st.st_ino;
  sx.size = static_cast<uint64_t>(st.st_size);
  sx.blocks = static_cast<uint64_t>(st.st_blocks);
  sx.atime = sx_time(st.st_atim);
  sx.mtime = sx_time(st.st_mtim);
  sx.ctime = sx_time(st.st_ctim);
  sx.rdev_major = major(st.st_rdev);
  sx.rdev_minor = minor(st.st_rdev);
  if ((want.sx_mask & STATX_BTIME) && r->btime) {
    sx.mask |= STATX_BTIME;
    sx.btime = sx_time(*r->btime);
  }
  const StatxAttributes attributes = statx_attributes_of_flags(r->flags);
  sx.attributes = attributes.attributes;
  sx.attributes_mask = attributes.mask;
  fuse_reply_buf(req, reinterpret_cast<const char *>(&out), sizeof out);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info *) {
  if (const std::optional<StatxRequest> statx = serving_statx()) {
    reply_statx(req, ino, *statx);
    return;
  }
  auto r = fs_of(req).getattr(ino);
  if (!r)
    fuse_reply_err(req, r.error());
  else
    fuse_reply_attr(req, &*r, kTimeout);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, fuse_file_info *fi) {
  if (applied_before()) {
    op_getattr(req, ino, fi);
    return;
  }
  SetAttr a;
  const std::pair<int, uint32_t> bits[] = {{FUSE_SET_ATTR_MODE, SetAttr::kMode},
                                           {FUSE_SET_ATTR_UID, SetAttr::kUid},
                                           {FUSE_SET_ATTR_GID, SetAttr::kGid},
                                           {FUSE_SET_ATTR_SIZE, SetAttr::kSize},
                                           {FUSE_SET_ATTR_ATIME, SetAttr::kAtime},
                                           {FUSE_SET_ATTR_MTIME, SetAttr::kMtime},
                                           {FUSE_SET_ATTR_ATIME_NOW, SetAttr::kAtimeNow},
                                           {FUSE_SET_ATTR_MTIME_NOW, SetAttr::kMtimeNow},
                                           {FUSE_SET_ATTR_CTIME, SetAttr::kCtime}};
  for (auto [fuse_bit, our_bit] : bits)
    if (to_set & fuse_bit)
      a.valid |= our_bit;
  if (fi)
    a.valid |= SetAttr::kThroughFile;
  a.mode = attr->st_mode;
  a.uid = attr->st_uid;
  a.gid = attr->st_gid;
  a.size = static_cast<uint64_t>(attr->st_size);
  a.atime = attr->st_atim;
  a.mtime = attr->st_mtim;
  a.ctime = attr->st_ctim;
  auto r = fs_of(req).setattr(ino, a, caller_of(req));
  if (!r)
    fuse_reply_err(req, r.error());
  else
    fuse_reply_attr(req, &*r, kTimeout);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = fs_of(req).readlink(ino);
  if (!r)
    fuse_reply_err(req, r.error());
  else
    fuse_reply_readlink(req, r->c_str());
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  if (applied_before())
    return reply_made_before(req, parent, name);
  reply_entry(req, fs_of(req).mknod(parent, name, mode, rdev, caller_of(req)));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  if (applied_before())
    return reply_made_before(req, parent, name);
  reply_entry(req, fs_of(req).mkdir(parent, name, mode, caller_of(req)));
}

void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name) {
  if (applied_before())
    return reply_made_before(req, parent, name);
  reply_entry(req, fs_of(req).symlink(parent, name, target, caller_of(req)));
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name) {
  if (applied_before())
    return reply_made_before(req, parent, name);
  reply_entry(req, fs_of(req).link(ino, parent, name));
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (applied_before())
    return reply_status(req, {});
  reply_status(req, fs_of(req).unlink(parent, name));
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (applied_before())
    return reply_status(req, {});
  reply_status(req, fs_of(req).rmdir(parent, name));
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t new_parent,
               const char *new_name, unsigned int flags) {
  // RENAME_WHITEOUT arrives as the caller asked it (fuse_rename2, FUSE_RENAME2); the whiteout
  // is owned by the caller.
  if (applied_before())
    return reply_status(req, {});
  reply_status(req, fs_of(req).rename(parent, name, new_parent, new_name, flags, caller_of(req)));
}

void set_caching(fuse_req_t req, fuse_file_info *fi) {
  if (context_of(req).cache == CacheMode::kDirect)
    fi->direct_io = 1;
  else
    fi->keep_cache = 1; // nobody changes the data behind the kernel's back
}

// An open file's handle: with a holder, the slot that records the open for a process taking
// the mount over (session_state.h); READ and WRITE need nothing of it. A file with an object:
// passthrough or not (backing_files.h), which the slot records too (without a holder the fh is
// that word); the kernel's page cache is not kept for a passthrough file (it has none:
// FOPEN_KEEP_CACHE is refused with FOPEN_PASSTHROUGH).
void set_handle(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) {
  const ServeContext &ctx = context_of(req);
  if (ctx.session)
    fi->fh = ctx.session->open_handle(ino);
  const int object = ctx.backing ? ctx.fs.object_fd(ino) : -1;
  if (object < 0)
    return;
  const auto eligible = [&ctx, ino] {
    auto a = ctx.fs.statx(ino); // mode and flags in one look
    return ctx.cache != CacheMode::kDirect && a && !(a->st.st_mode & S_ISUID) &&
           !((a->st.st_mode & S_ISGID) && (a->st.st_mode & S_IXGRP)) &&
           !(a->flags & (PKRAMFS_INODE_APPEND | PKRAMFS_INODE_IMMUTABLE));
  };
  const uint32_t word = ctx.backing->open(ino, object, eligible);
  if (ctx.session)
    ctx.session->set_handle_backing(fi->fh, word); // before the reply, as the handle
  else
    fi->fh = word;
  if (word != BackingFiles::kCached) {
    fi->keep_cache = 0;
    fi->direct_io = 0;
    reply_with_backing_file(static_cast<int32_t>(word));
  }
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) {
  // Logged: the O_TRUNC was done; doing it again would cut what was written since.
  const int flags = applied_before() ? fi->flags & ~O_TRUNC : fi->flags;
  if (auto r = fs_of(req).open(ino, flags, caller_of(req)); !r) {
    fuse_reply_err(req, r.error());
    return;
  }
  set_caching(req, fi);
  set_handle(req, ino, fi);
  fuse_reply_open(req, fi);
}

// A new open file: the entry (a lookup reference, which FORGET drops) and the open (RELEASE).
void reply_created(fuse_req_t req, const Result<struct stat> &r, fuse_file_info *fi) {
  if (!r) {
    fuse_reply_err(req, r.error());
    return;
  }
  const fuse_entry_param e = entry_of(req, *r);
  set_caching(req, fi);
  set_handle(req, r->st_ino, fi);
  fuse_reply_create(req, &e, fi);
}

// FUSE_TMPFILE, which reaches libfuse as a CREATE (device_io.h). vfs_tmpfile makes the inode
// linkable (I_LINKABLE) unless the caller asked for O_EXCL; the kernel has applied the umask to
// `mode` as for a create (fuse_create_open), and Filesystem::tmpfile the rest of create's rules.
void op_tmpfile(fuse_req_t req, fuse_ino_t parent, mode_t mode, fuse_file_info *fi) {
  reply_created(req, fs_of(req).tmpfile(parent, mode, !(fi->flags & O_EXCL), caller_of(req)), fi);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               fuse_file_info *fi) {
  if (serving_tmpfile()) {
    op_tmpfile(req, parent, mode, fi);
    return;
  }
  if (applied_before()) {
    // The file is there (or was renamed or removed since, as after any create); the open the
    // dying process counted was taken back with its handle (device_io.h).
    Filesystem &fs = fs_of(req);
    auto r = fs.lookup(parent, name);
    if (r)
      if (auto opened = fs.open(r->st_ino, fi->flags & ~O_TRUNC, caller_of(req)); !opened) {
        fs.forget(r->st_ino, 1);
        r = Errno{opened.error()};
      }
    return reply_created(req, r, fi);
  }
  reply_created(req, fs_of(req).create(parent, name, mode, caller_of(req)), fi);
}

// Replies to a read straight from arena memory: the kernel copies it, we do not.
class IovReply final : public ReadSink {
public:
  explicit IovReply(fuse_req_t req) : req_(req) {}
  void deliver(std::span<const iovec> iov) override {
    fuse_reply_iov(req_, iov.data(), static_cast<int>(iov.size()));
  }

private:
  fuse_req_t req_;
};

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info *) {
  note_page_cache_use(ino); // direct_write.h
  IovReply reply(req);
  if (auto r = fs_of(req).read(ino, static_cast<uint64_t>(off), size, reply); !r)
    fuse_reply_err(req, r.error());
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              fuse_file_info *fi) {
  Caller who = caller_of(req);
  // Writeback of cached pages: the kernel removed suid/sgid when the data was written into the
  // page cache; the request's sender (a flusher thread) is not the writer.
  if (fi && fi->writepage)
    who.credentials = [] { return Credentials{.groups = {}, .cap_fsetid = true}; };
  if (!fi || fi->writepage || !(fi->flags & O_DIRECT))
    note_page_cache_use(ino); // direct_write.h
  if (applied_before()) {
    fuse_reply_write(req, size);
    return;
  }
  auto r = fs_of(req).write(ino, static_cast<uint64_t>(off), buf, size, who);
  if (!r)
    fuse_reply_err(req, r.error());
  else if (!(fi && (fi->flags & O_DIRECT) && !fi->writepage && *r > 0 &&
             reply_after_invalidation(req, ino, off, *r))) // page cache modes: direct_write.h
    fuse_reply_write(req, *r);
}

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) {
  // With a holder, a RELEASE whose handle is gone was served before a crash and is sent again
  // (FUSE_NOTIFY_RESEND): the open it ends is counted no more (adopt_kernel_references).
  // The handle is forgotten before its backing id may be closed: a process taking over after
  // a kill in between leaks the id (until unmount), never reuses a closed one.
  const ServeContext &ctx = context_of(req);
  SessionState *session = ctx.session;
  uint32_t backing = session ? 0 : static_cast<uint32_t>(fi->fh);
  if (!session || fi->fh == 0 || session->close_handle(fi->fh, &backing) == ino) {
    if (ctx.backing && backing)
      ctx.backing->release(ino, backing);
    fs_of(req).release(ino);
  }
  fuse_reply_err(req, 0);
}

// Data and metadata are in the arena the moment a request is answered, so fsync has nothing
// to do here. ENOSYS tells the kernel so for good (fc->no_fsync): from then on fsync(2) and
// fdatasync(2) still write back dirty pages (mmap, --cache=writeback) and wait for them, then
// succeed without a round trip. pgbench: one FSYNC per transaction, half the requests.
void op_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info *) { fuse_reply_err(req, ENOSYS); }

// Packs entries into the reply buffer with fuse_add_direntry[_plus].
class DirBuffer final : public DirSink {
public:
  DirBuffer(fuse_req_t req, size_t size, bool plus) : req_(req), plus_(plus) {
    thread_local std::vector<char> storage;
    storage.resize(size);
    buf_ = storage.data();
    size_ = size;
  }
  bool add(std::string_view name, const struct stat &st, uint64_t next_offset) override {
    const std::string n(name);
    const off_t off = static_cast<off_t>(next_offset);
    size_t need;
    if (plus_) {
      fuse_entry_param e = entry_of(req_, st);
      // "." and ".." take no lookup reference in the kernel, so they must not carry an ino.
      if (name == "." || name == "..") {
        e.ino = 0;
        e.attr_timeout = e.entry_timeout = 0;
      }
      need = fuse_add_direntry_plus(req_, buf_ + used_, size_ - used_, n.c_str(), &e, off);
    } else {
      need = fuse_add_direntry(req_, buf_ + used_, size_ - used_, n.c_str(), &st, off);
    }
    if (need > size_ - used_)
      return false;
    used_ += need;
    return true;
  }
  void reply() { fuse_reply_buf(req_, buf_, used_); }

private:
  fuse_req_t req_;
  bool plus_;
  char *buf_;
  size_t size_;
  size_t used_ = 0;
};

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  DirBuffer buf(req, size, plus);
  if (auto r = fs_of(req).readdir(ino, static_cast<uint64_t>(off), plus, buf); !r)
    fuse_reply_err(req, r.error());
  else
    buf.reply();
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info *) {
  do_readdir(req, ino, size, off, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info *) {
  do_readdir(req, ino, size, off, true);
}

// As op_fsync (fc->no_fsyncdir).
void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info *) { fuse_reply_err(req, ENOSYS); }

void op_statfs(fuse_req_t req, fuse_ino_t) {
  const struct statvfs st = fs_of(req).statfs();
  fuse_reply_statfs(req, &st);
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags) {
  if (applied_before())
    return reply_status(req, {});
  reply_status(req,
               fs_of(req).setxattr(ino, name, std::string_view(value, size), flags, caller_of(req)));
}

// getxattr and listxattr share the size protocol: 0 asks for the length, too small is ERANGE.
void reply_xattr_value(fuse_req_t req, const Result<std::string> &r, size_t size) {
  if (!r)
    fuse_reply_err(req, r.error());
  else if (size == 0)
    fuse_reply_xattr(req, r->size());
  else if (r->size() > size)
    fuse_reply_err(req, ERANGE);
  else
    fuse_reply_buf(req, r->data(), r->size());
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  reply_xattr_value(req, fs_of(req).getxattr(ino, name), size);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  reply_xattr_value(req, fs_of(req).listxattr(ino, caller_of(req)), size);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  if (applied_before())
    return reply_status(req, {});
  reply_status(req, fs_of(req).removexattr(ino, name));
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                  fuse_file_info *) {
  if (offset < 0 || length <= 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  if (applied_before())
    return reply_status(req, {});
  reply_status(req, fs_of(req).fallocate(ino, mode, static_cast<uint64_t>(offset),
                                         static_cast<uint64_t>(length), caller_of(req)));
}

void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info *) {
  auto r = fs_of(req).lseek(ino, off, whence);
  if (!r)
    fuse_reply_err(req, r.error());
  else
    fuse_reply_lseek(req, static_cast<off_t>(*r));
}

// Copied again when it comes back after a takeover with its change logged: the same bytes to
// the same place (its count depends on the source's size, which a reply from the tree cannot
// know).
void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info *,
                        fuse_ino_t ino_out, off_t off_out, fuse_file_info *, size_t len, int) {
  auto r = fs_of(req).copy_file_range(ino_in, static_cast<uint64_t>(off_in), ino_out,
                                      static_cast<uint64_t>(off_out), len, caller_of(req));
  if (!r)
    fuse_reply_err(req, r.error());
  else
    fuse_reply_write(req, *r);
}

// chattr and lsattr. The VFS turns FS_IOC_GETFLAGS/SETFLAGS and FS_IOC_FSGETXATTR/FSSETXATTR
// into these restricted ioctls on a file it opens read-only for the purpose (fs/fuse/ioctl.c,
// fuse_fileattr_get/set), after checking ownership and CAP_LINUX_IMMUTABLE itself
// (vfs_fileattr_set, fileattr_set_prepare); only regular files and directories get here. The
// flags travel as an unsigned int, not the long the command's number encodes; the xattr form
// as struct fsxattr. Every other ioctl: ENOTTY, as tmpfs answers.
void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *, fuse_file_info *,
              unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz) {
  Filesystem &fs = fs_of(req);
  if (flags & FUSE_IOCTL_COMPAT) { // a 32-bit caller's numbers: the VFS never sends these here
    fuse_reply_err(req, ENOTTY);
    return;
  }
  Result<void> set;
  switch (cmd) {
  case FS_IOC_GETFLAGS: {
    auto r = fs.get_flags(ino);
    const uint64_t value = r ? *r : 0; // little-endian: the first 4 bytes are the unsigned int
    if (!r)
      fuse_reply_err(req, r.error());
    else if (out_bufsz < sizeof(uint32_t))
      fuse_reply_err(req, EINVAL);
    else
      fuse_reply_ioctl(req, 0, &value, std::min(out_bufsz, sizeof value));
    return;
  }
  case FS_IOC_FSGETXATTR: {
    auto r = fs.get_flags(ino);
    const struct fsxattr fa = fsxattr_of_flags(r ? *r : 0);
    if (!r)
      fuse_reply_err(req, r.error());
    else if (out_bufsz < sizeof fa)
      fuse_reply_err(req, EINVAL);
    else
      fuse_reply_ioctl(req, 0, &fa, sizeof fa);
    return;
  }
  case FS_IOC_SETFLAGS: {
    uint32_t value = 0;
    if (in_bufsz < sizeof value) {
      fuse_reply_err(req, EINVAL);
      return;
    }
    std::memcpy(&value, in_buf, sizeof value);
    set = applied_before() ? Result<void>{} : fs.set_flags(ino, value);
    break;
  }
  case FS_IOC_FSSETXATTR: {
    struct fsxattr fa {};
    if (in_bufsz < sizeof fa) {
      fuse_reply_err(req, EINVAL);
      return;
    }
    std::memcpy(&fa, in_buf, sizeof fa);
    auto value = flags_of_fsxattr(fa);
    set = !value            ? Result<void>{Errno{value.error()}}
          : applied_before() ? Result<void>{}
                             : fs.set_flags(ino, *value);
    break;
  }
  default:
    fuse_reply_err(req, ENOTTY);
    return;
  }
  if (!set)
    fuse_reply_err(req, set.error());
  else
    fuse_reply_ioctl(req, 0, nullptr, 0);
}

} // namespace

fuse_lowlevel_ops make_operations(CacheMode cache) {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.symlink = op_symlink;
  ops.link = op_link;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.rename = op_rename;
  ops.open = op_open;
  ops.create = op_create;
  ops.read = op_read;
  ops.write = op_write;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.fsyncdir = op_fsyncdir;
  ops.statfs = op_statfs;
  ops.setxattr = op_setxattr;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.removexattr = op_removexattr;
  ops.fallocate = op_fallocate;
  // With the writeback cache, data and size may still sit in dirty pages the daemon has not
  // seen, and the kernel does not flush them before FUSE_LSEEK: SEEK_DATA would answer ENXIO
  // inside the file and SEEK_HOLE a hole where there is data. Without an lseek handler the
  // kernel answers from its own size (data everywhere below EOF).
  ops.lseek = cache == CacheMode::kWriteback ? nullptr : op_lseek;
  ops.copy_file_range = op_copy_file_range;
  ops.ioctl = op_ioctl;
  return ops;
}

} // namespace pkramfs
