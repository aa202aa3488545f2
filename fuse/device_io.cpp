#include "device_io.h"
#include "operations.h" // FUSE_USE_VERSION and fuse_lowlevel.h
#include "session_state.h"
#include "statx_wire.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <linux/fuse.h>
#include <csignal>
#include <cstdlib>
#include <poll.h>
#include <string_view>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace pkramfs {
namespace {

struct DeviceIo {
  InitAmendments amendments;
  // The INIT request's unique id and the flags the kernel offered in it.
  std::atomic<uint64_t> init_unique{0};
  std::atomic<uint32_t> kernel_flags{0};
  std::atomic<uint32_t> kernel_flags2{0}; // FUSE_INIT_EXT: the flags' upper half
  std::atomic<bool> init_done{false};
  // FUSE_HANDLE_KILLPRIV_V2 was offered by the kernel and put in the INIT reply.
  std::atomic<bool> killpriv_v2{false};
  // The kernel's protocol minor version (from the INIT request).
  std::atomic<uint32_t> kernel_minor{0};
  // Takeover: the next read returns the saved INIT request.
  std::atomic<bool> replay_init{false};
  // Takeover with a saved INIT: its reply goes nowhere. Without one (the process that mounted
  // died before it read the INIT request), the kernel still has the request queued, and the
  // reply goes to the kernel as at a mount.
  bool init_replayed = false;
  // stop_reading_requests() was called.
  std::atomic<bool> draining{false};
  // Workers between their check of `draining` and the moment what they read is noted in the
  // session state (read_spinning, read_request): stop_reading_requests waits for none.
  std::atomic<int> readers{0};
  // Takeover: a reply went out (the takeover time ends there, session_state.h).
  std::atomic<bool> served_since_takeover{false};
  // The INIT reply asked for passthrough and the kernel had offered it.
  std::atomic<bool> passthrough{false};
  // PKRAMFS_TEST_KILL_BEFORE_REPLY: the opcode whose first reply this process does not send.
  uint32_t kill_before_reply = 0;
  int fd = -1;
};

// FUSE_NOTIFY_RESEND (include/uapi/linux/fuse.h, 7.40): the kernel puts every request it sent
// and has no reply for back in its queue, marked with FUSE_UNIQUE_RESEND. Debian 12's headers
// stop at 7.38.
constexpr int32_t kFuseNotifyResend = 7;
constexpr uint32_t kFuseResendMinor = 40;

// Requests that get no reply (fuse_lowlevel.c: do_forget, do_batch_forget, do_interrupt), so
// nothing waits on them.
bool expects_reply(uint32_t opcode) {
  return opcode != FUSE_FORGET && opcode != FUSE_BATCH_FORGET && opcode != FUSE_INTERRUPT &&
         opcode != FUSE_NOTIFY_REPLY;
}

DeviceIo device_io;

// The request this worker thread read last, which is the one it serves: libfuse's loops read
// and process a request on the same thread (fuse_do_work, fuse_session_loop).
thread_local std::optional<bool> request_fsetid;
// That request arrived as FUSE_TMPFILE and goes to libfuse as FUSE_CREATE (serving_tmpfile).
thread_local bool request_tmpfile = false;
// That request arrived as FUSE_STATX and goes to libfuse as FUSE_GETATTR (serving_statx).
thread_local std::optional<StatxRequest> request_statx;
// That request came again after a takeover and its change is in the journal already.
thread_local bool request_applied = false;
// The backing file id its OPEN or CREATE reply names (reply_with_backing_file), or 0.
thread_local int32_t reply_backing_id = 0;

// FUSE passthrough (include/uapi/linux/fuse.h, 7.40; Debian 12's headers stop at 7.38): the
// INIT flag, where max_stack_depth sits in fuse_init_out (unused[0] of 7.38's layout), the
// open flag and fuse_open_out's backing_id (7.38's padding), and the device ioctls.
constexpr uint64_t kFusePassthrough = 1ull << 37;
constexpr uint32_t kFopenPassthrough = 1u << 7;
struct FuseBackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kFuseDevIocBackingOpen = _IOW(229, 1, FuseBackingMap);
constexpr unsigned long kFuseDevIocBackingClose = _IOW(229, 2, uint32_t);
static_assert(offsetof(fuse_init_out, unused) == 36);
static_assert(sizeof(fuse_open_out) == 16 && offsetof(fuse_open_out, padding) == 12);

// A raw request's body as `In`, or null when the request is too short to hold one.
template <class In> const In *body(const void *buf, ssize_t n) {
  if (n < static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof(In)))
    return nullptr;
  return reinterpret_cast<const In *>(static_cast<const fuse_in_header *>(buf) + 1);
}

// FUSE_TMPFILE (protocol 7.37, sent by Linux 6.1+ for O_TMPFILE whatever minor version the
// INIT reply names: fuse_tmpfile checks nothing but fc->no_tmpfile). libfuse 3.14 answers an
// opcode it does not know with ENOSYS, which turns O_TMPFILE off for the connection
// (EOPNOTSUPP). The request is a CREATE's, fuse_create_in and the name ("/", vfs_tmpfile's
// dentry), and so is the reply the kernel expects (fuse_create_open: fuse_entry_out and
// fuse_open_out), so libfuse serves it as a CREATE; the create handler asks which it is.
void hand_tmpfile_over_as_create(void *buf, ssize_t n) {
  request_tmpfile = false;
  auto *in = static_cast<fuse_in_header *>(buf);
  if (!body<fuse_create_in>(buf, n) || in->opcode != FUSE_TMPFILE)
    return;
  in->opcode = FUSE_CREATE;
  request_tmpfile = true;
}

// FUSE_STATX (statx_wire.h): libfuse 3.14 would answer ENOSYS, after which the kernel never
// sends it again and statx(2) shows no birth time. Its request begins with a GETATTR's
// (getattr_flags, a padding word, fh), so libfuse serves it as a GETATTR; the getattr handler
// asks serving_statx() and replies with a fuse_statx_out of its own.
void hand_statx_over_as_getattr(void *buf, ssize_t n) {
  request_statx.reset();
  auto *in = static_cast<fuse_in_header *>(buf);
  const auto *sx = body<FuseStatxIn>(buf, n);
  if (!sx || in->opcode != kFuseStatx)
    return;
  request_statx = StatxRequest{sx->sx_flags, sx->sx_mask};
  in->opcode = FUSE_GETATTR;
}

// The CAP_FSETID verdict a raw request carries (kernel_fsetid_verdict in device_io.h).
std::optional<bool> fsetid_verdict_of(const void *buf, ssize_t n) {
  if (n < static_cast<ssize_t>(sizeof(fuse_in_header)))
    return std::nullopt;
  const bool v2 = device_io.killpriv_v2.load(std::memory_order_relaxed);
  // Flag set: the caller lacks CAP_FSETID. Flag clear: it has it where the kernel would have
  // set the flag otherwise (KILLPRIV_V2), else nothing is known.
  const auto verdict = [v2](bool kill) -> std::optional<bool> {
    if (kill)
      return false;
    if (v2)
      return true;
    return std::nullopt;
  };
  switch (static_cast<const fuse_in_header *>(buf)->opcode) {
  case FUSE_WRITE:
    if (const auto *in = body<fuse_write_in>(buf, n); in && !(in->write_flags & FUSE_WRITE_CACHE))
      return verdict(in->write_flags & FUSE_WRITE_KILL_SUIDGID);
    break;
  case FUSE_SETATTR:
    // A chown carries FATTR_KILL_SUIDGID whatever the caller's capabilities (fuse_do_setattr).
    if (const auto *in = body<fuse_setattr_in>(buf, n);
        in && (in->valid & FATTR_SIZE) && !(in->valid & (FATTR_UID | FATTR_GID)))
      return verdict(in->valid & FATTR_KILL_SUIDGID);
    break;
  case FUSE_OPEN:
    if (const auto *in = body<fuse_open_in>(buf, n); in && (in->flags & O_TRUNC))
      return verdict(in->open_flags & FUSE_OPEN_KILL_SUIDGID);
    break;
  case FUSE_CREATE:
    if (const auto *in = body<fuse_create_in>(buf, n); in && (in->flags & O_TRUNC))
      return verdict(in->open_flags & FUSE_OPEN_KILL_SUIDGID);
    break;
  default:
    break;
  }
  return std::nullopt;
}

// Polls the device for up to spin_us before sleeping in poll(2): a synchronous caller's next
// request then finds the daemon awake, without a wake-up (an IPI and a halt exit in a VM).
// `counted`: set when the read returned (the caller leaves `readers` once the request is noted).
ssize_t read_spinning(int fd, void *buf, size_t len, bool &counted) {
  thread_local int nonblocking_fd = -1;
  if (fd != nonblocking_fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    nonblocking_fd = fd;
  }
  using Clock = std::chrono::steady_clock;
  const auto spin = std::chrono::microseconds(device_io.amendments.spin_us);
  auto until = Clock::now() + spin;
  for (;;) {
    device_io.readers.fetch_add(1);
    if (device_io.draining.load()) {
      // stop_reading_requests: nothing more is taken; the loop ends meanwhile.
      device_io.readers.fetch_sub(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      errno = EINTR;
      return -1;
    }
    const ssize_t n = read(fd, buf, len);
    if (n >= 0 || errno != EAGAIN) {
      counted = true;
      return n;
    }
    device_io.readers.fetch_sub(1);
    if (Clock::now() < until) {
      __builtin_ia32_pause();
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, -1) < 0)
      return -1; // EINTR: libfuse checks whether the session is to exit
    until = Clock::now() + spin;
  }
}

// Takeover: the INIT request the connection began with, as if the kernel sent it now.
ssize_t replay_init_request(void *buf, size_t len) {
  const auto init = device_io.amendments.session->init_request();
  if (init.size() > len || init.size() < sizeof(fuse_in_header) + sizeof(fuse_init_in)) {
    errno = EPROTO;
    return -1;
  }
  std::memcpy(buf, init.data(), init.size());
  return static_cast<ssize_t>(init.size());
}

// What a process taking over must keep of a request it reads: the INIT request (the first
// process), and every request that waits for a reply until the reply is written, with a record
// of what serving it does (SessionState::serving()).
void note_request(const void *buf, ssize_t n, bool replayed) {
  SessionState::set_serving(nullptr);
  request_applied = false;
  SessionState *session = device_io.amendments.session;
  if (!session || replayed || n < static_cast<ssize_t>(sizeof(fuse_in_header)))
    return;
  const auto *in = static_cast<const fuse_in_header *>(buf);
  if (in->opcode == FUSE_INIT) {
    session->save_init({static_cast<const unsigned char *>(buf), static_cast<size_t>(n)});
    return;
  }
  if (!expects_reply(in->opcode))
    return;
  SessionState::RequestRecord *record = session->track(in->unique, in->opcode);
  // A request sent again after a takeover (FUSE_UNIQUE_RESEND): the process that died read it
  // and its reply never reached the kernel. Whether its change was logged stays with it, and
  // what it counted for a reply that never arrived is taken back, with no request served
  // meanwhile (nothing of that may be noted in this request's record).
  if (const auto carried = session->claim_carried(in->unique)) {
    request_applied = carried->applied;
    if (record && carried->applied)
      record->applied.store(1);
    if (device_io.amendments.undelivered)
      device_io.amendments.undelivered(*carried);
    spdlog::debug("takeover: request {:#x} (opcode {}) came again{}", in->unique, in->opcode,
                  carried->applied ? ", its change logged already" : "");
  }
  SessionState::set_serving(record);
}

ssize_t read_request(int fd, void *buf, size_t len, void *) {
  const bool replayed = device_io.replay_init.exchange(false);
  // With a holder every read goes through read_spinning (spinning or not), which waits in
  // poll(2) and reads without blocking: libfuse ends its loop by cancelling the workers, and a
  // worker cancelled inside a blocking read(2) that had just taken a request loses it (glibc
  // before 2.41 acts on a cancellation that arrives as the call returns).
  bool counted = false;
  const ssize_t n = replayed ? replay_init_request(buf, len)
                    : device_io.amendments.spin_us || device_io.amendments.session
                        ? read_spinning(fd, buf, len, counted)
                        : read(fd, buf, len);
  const int err = errno;
  note_request(buf, n, replayed);
  if (counted)
    device_io.readers.fetch_sub(1);
  errno = err;
  hand_tmpfile_over_as_create(buf, n);
  hand_statx_over_as_getattr(buf, n);
  request_fsetid = fsetid_verdict_of(buf, n);
  if (device_io.init_done.load(std::memory_order_relaxed) ||
      n < static_cast<ssize_t>(sizeof(fuse_in_header) + offsetof(fuse_init_in, flags) +
                               sizeof(uint32_t)))
    return n;
  const auto *in = static_cast<const fuse_in_header *>(buf);
  if (in->opcode == FUSE_INIT) {
    const auto *init = reinterpret_cast<const fuse_init_in *>(in + 1);
    device_io.kernel_flags = init->flags;
    if ((init->flags & FUSE_INIT_EXT) &&
        n >= static_cast<ssize_t>(sizeof(fuse_in_header) + offsetof(fuse_init_in, unused)))
      device_io.kernel_flags2 = init->flags2;
    device_io.kernel_minor = init->minor;
    device_io.init_unique = in->unique;
  }
  return n;
}

// The INIT reply is fuse_out_header in iov[0] and fuse_init_out in iov[1] (libfuse's
// send_reply_ok); fuse_init_out lives in libfuse's do_init, writable until it returns.
bool is_init_reply(const iovec *iov, int count) {
  if (count < 2 || iov[0].iov_len < sizeof(fuse_out_header) ||
      iov[1].iov_len < offsetof(fuse_init_out, flags) + sizeof(uint32_t))
    return false;
  const auto *out = static_cast<const fuse_out_header *>(iov[0].iov_base);
  return out->error == 0 && out->unique != 0 && out->unique == device_io.init_unique;
}

// Takeover, once the replayed INIT is answered: the requests the last process read and did not
// answer. Their callers still wait, since the holder kept the connection open.
void recover_inflight(int fd) {
  SessionState::set_serving(nullptr);
  SessionState &session = *device_io.amendments.session;
  if (device_io.kernel_minor >= kFuseResendMinor) {
    // The carried requests stay carried until each comes back (note_request).
    const fuse_out_header resend{sizeof(fuse_out_header), kFuseNotifyResend, 0};
    if (write(fd, &resend, sizeof resend) != sizeof resend)
      spdlog::error("takeover: the kernel refused FUSE_NOTIFY_RESEND ({}); requests in flight "
                    "stay unanswered",
                    std::strerror(errno));
    else
      spdlog::debug("takeover: asked the kernel to resend what was in flight");
    return;
  }
  // Protocol 7.39 and older (Linux 6.1): the kernel cannot send them again. EIO ends each one;
  // a reply to a request that had been answered already is refused by the kernel (ENOENT), and
  // where the kernel takes it, the first reply never arrived: what it counted is taken back.
  size_t failed = 0, applied = 0;
  for (const auto &[unique, request] : session.take_carried()) {
    const fuse_out_header eio{sizeof(fuse_out_header), -EIO, unique};
    if (write(fd, &eio, sizeof eio) != sizeof eio)
      continue;
    ++failed;
    if (request.applied) {
      ++applied;
      spdlog::warn("takeover: request {:#x} (opcode {}) failed with EIO after its change was "
                   "made (this kernel cannot resend it)",
                   unique, request.opcode);
    }
    if (device_io.amendments.undelivered)
      device_io.amendments.undelivered(request);
  }
  if (failed)
    spdlog::warn("takeover: {} requests in flight failed with EIO, {} of them after their "
                 "change was made (this kernel cannot resend them: FUSE protocol 7.{}, "
                 "resending needs 7.40)",
                 failed, applied, device_io.kernel_minor.load());
}

// PKRAMFS_TEST_KILL_BEFORE_REPLY (device_io.h).
uint32_t opcode_to_kill_before(const SessionState &session) {
  const char *list = std::getenv("PKRAMFS_TEST_KILL_BEFORE_REPLY");
  if (!list)
    return 0;
  static const std::pair<const char *, uint32_t> names[] = {
      {"LOOKUP", FUSE_LOOKUP},   {"MKNOD", FUSE_MKNOD},       {"MKDIR", FUSE_MKDIR},
      {"SYMLINK", FUSE_SYMLINK}, {"LINK", FUSE_LINK},         {"CREATE", FUSE_CREATE},
      {"TMPFILE", FUSE_TMPFILE}, {"UNLINK", FUSE_UNLINK},     {"RMDIR", FUSE_RMDIR},
      {"RENAME", FUSE_RENAME},   {"RENAME2", FUSE_RENAME2},   {"WRITE", FUSE_WRITE},
      {"SETATTR", FUSE_SETATTR}, {"SETXATTR", FUSE_SETXATTR}, {"REMOVEXATTR", FUSE_REMOVEXATTR},
      {"OPEN", FUSE_OPEN},       {"FALLOCATE", FUSE_FALLOCATE}, {"GETATTR", FUSE_GETATTR}};
  std::string_view rest(list);
  for (uint32_t k = session.restarts(); k > 0 && !rest.empty(); --k) {
    const size_t comma = rest.find(',');
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  const std::string_view name = rest.substr(0, rest.find(','));
  for (const auto &[n, opcode] : names)
    if (name == n)
      return opcode;
  return 0;
}

// An OPEN or CREATE reply (fuse_open_out last in its one argument) with the backing file the
// handler chose.
void add_backing_file(iovec *iov, int count) {
  const int32_t id = std::exchange(reply_backing_id, 0);
  if (id == 0 || count != 2 || iov[0].iov_len < sizeof(fuse_out_header) ||
      static_cast<const fuse_out_header *>(iov[0].iov_base)->error != 0 ||
      iov[1].iov_len < sizeof(fuse_open_out))
    return;
  auto *open = reinterpret_cast<fuse_open_out *>(static_cast<char *>(iov[1].iov_base) +
                                                 iov[1].iov_len - sizeof(fuse_open_out));
  open->open_flags |= kFopenPassthrough;
  std::memcpy(&open->padding, &id, sizeof id);
}

ssize_t write_reply(int fd, iovec *iov, int count, void *) {
  if (reply_backing_id)
    add_backing_file(iov, count);
  if (device_io.init_done.load(std::memory_order_relaxed) || !is_init_reply(iov, count)) {
    if (const SessionState::RequestRecord *r = SessionState::serving();
        r && device_io.kill_before_reply && r->opcode.load() == device_io.kill_before_reply) {
      spdlog::warn("PKRAMFS_TEST_KILL_BEFORE_REPLY: dying before the reply to opcode {}",
                   device_io.kill_before_reply);
      raise(SIGKILL);
    }
    const ssize_t n = writev(fd, iov, count);
    if (SessionState *session = device_io.amendments.session;
        session && count > 0 && iov[0].iov_len >= sizeof(fuse_out_header)) {
      const int err = errno;
      if (const uint64_t unique = static_cast<const fuse_out_header *>(iov[0].iov_base)->unique) {
        session->untrack(unique);
        SessionState::set_serving(nullptr);
      }
      if (device_io.amendments.takeover && !device_io.served_since_takeover.exchange(true))
        session->takeover_served();
      errno = err;
    }
    return n;
  }
  auto *init = static_cast<fuse_init_out *>(iov[1].iov_base);
  spdlog::debug("init reply: proto {}.{}", init->major, init->minor);
  const bool v2 =
      device_io.amendments.handle_killpriv_v2 && (device_io.kernel_flags & FUSE_HANDLE_KILLPRIV_V2);
  if (v2)
    init->flags |= FUSE_HANDLE_KILLPRIV_V2;
  // Before the reply: the kernel lets other workers read requests as soon as it has it.
  device_io.killpriv_v2 = v2;
  // Passthrough: the backing files are on tmpfs (stack depth 0), so a depth of 1 is enough
  // (process_init_reply accepts 1..FILESYSTEM_MAX_STACK_DEPTH).
  if (device_io.amendments.passthrough &&
      (device_io.kernel_flags2 & (kFusePassthrough >> 32)) &&
      iov[1].iov_len >= offsetof(fuse_init_out, unused) + sizeof(uint32_t)) {
    init->flags |= FUSE_INIT_EXT;
    init->flags2 |= static_cast<uint32_t>(kFusePassthrough >> 32);
    init->unused[0] = 1;
    device_io.passthrough = true;
  }
  ssize_t n;
  if (device_io.init_replayed) {
    // The kernel has this reply already, from the process that mounted.
    n = 0;
    for (int i = 0; i < count; ++i)
      n += static_cast<ssize_t>(iov[i].iov_len);
  } else {
    n = writev(fd, iov, count);
  }
  const int err = errno;
  device_io.init_done = true;
  if (device_io.amendments.takeover)
    recover_inflight(device_io.fd);
  // The kernel applied the reply inside writev (process_init_reply runs as the request ends).
  if (n >= 0 && device_io.amendments.after_init)
    device_io.amendments.after_init();
  errno = err;
  return n;
}

} // namespace

std::optional<bool> kernel_fsetid_verdict() { return request_fsetid; }

void stop_reading_requests() {
  device_io.draining.store(true);
  // Until no worker is between its check and its note, and every request noted is answered:
  // libfuse drops a request read once the session has exited (fuse_session_receive_buf_int),
  // and the loop's end cancels workers, so the session must not exit before. Bounded: a
  // request that never gets its answer is left to the next process (resent or failed).
  SessionState *session = device_io.amendments.session;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((device_io.readers.load() != 0 || (session && session->inflight_count() != 0)) &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
}

bool serving_tmpfile() { return request_tmpfile; }

bool serving_applied_request() { return request_applied; }

bool passthrough_negotiated() { return device_io.passthrough.load(); }

int32_t open_backing_file(int fd) {
  FuseBackingMap map{fd, 0, 0};
  const int id = ioctl(device_io.fd, kFuseDevIocBackingOpen, &map);
  return id < 0 ? -errno : id;
}

void close_backing_file(int32_t id) {
  uint32_t arg = static_cast<uint32_t>(id);
  if (ioctl(device_io.fd, kFuseDevIocBackingClose, &arg) != 0)
    spdlog::debug("passthrough: closing backing file {} failed: {}", id, std::strerror(errno));
}

void reply_with_backing_file(int32_t id) { reply_backing_id = id; }

std::optional<StatxRequest> serving_statx() { return request_statx; }

int install_device_io(fuse_session *se, int fd, InitAmendments amendments) {
  device_io.amendments = std::move(amendments);
  device_io.fd = fd;
  device_io.init_replayed = device_io.amendments.takeover && device_io.amendments.session &&
                            !device_io.amendments.session->init_request().empty();
  device_io.replay_init = device_io.init_replayed;
  if (device_io.amendments.session)
    device_io.kill_before_reply = opcode_to_kill_before(*device_io.amendments.session);
  static const fuse_custom_io io = {.writev = write_reply,
                                    .read = read_request,
                                    .splice_receive = nullptr,
                                    .splice_send = nullptr};
  return fuse_session_custom_io(se, &io, fd);
}

} // namespace pkramfs
