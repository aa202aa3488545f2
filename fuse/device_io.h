// The session's reads and writes of /dev/fuse (fuse_session_custom_io), which let the daemon
// amend the INIT exchange with what libfuse 3.14 cannot negotiate and act right after it:
// - FUSE_HANDLE_KILLPRIV_V2 (libfuse 3.16+ has FUSE_CAP_HANDLE_KILLPRIV_V2). Without it the
//   kernel asks for the security.capability xattr before every write(2), a second round trip
//   per write (fio 4 KiB random writes: 1000 WRITE + 1000 GETXATTR). With it the superblock is
//   SB_NOSEC and the daemon clears suid/sgid itself on write, truncate and chown, which
//   Filesystem does for every caller already (drop_privileges_locked, kill_on_chown_locked).
// - after_init: runs once the kernel has processed the INIT reply, which sets the bdi's
//   readahead window to the smaller of its own and the reply's; bdi.h tunes the bdi there.
// - kernel_fsetid_verdict: what the kernel decided about the caller's CAP_FSETID for the request
//   being served, read from the raw request (libfuse 3.14 drops these bits).
// - FUSE_TMPFILE (O_TMPFILE), which libfuse 3.14 does not know: read off the device and handed
//   to libfuse as the FUSE_CREATE it resembles; serving_tmpfile() tells the create handler.
// - FUSE_STATX (statx(2) asking for the birth time, Linux 6.6+), which libfuse 3.14 does not
//   know either: handed to libfuse as the FUSE_GETATTR it begins with; serving_statx() tells
//   the getattr handler, which answers with the statx reply (statx_wire.h).
// - with a holder (holder.h): the INIT request, every request in flight and what it did, kept
//   in the session state for a process that takes over; a takeover's own INIT exchange and
//   the requests the last process left unanswered (resent by the kernel, or failed).
// - PKRAMFS_TEST_KILL_BEFORE_REPLY=OP[,OP...] (tests only): serving process number k (k
//   takeovers so far) dies by SIGKILL instead of replying to its first request of the k-th
//   opcode named (LOOKUP, MKDIR, CREATE, WRITE, ...; "-" for none).
#pragma once
#include "session_state.h"

#include <cstdint>
#include <functional>
#include <optional>

struct fuse_session;

namespace pkramfs {

struct InitAmendments {
  bool handle_killpriv_v2 = false;
  std::function<void()> after_init;
  unsigned spin_us = 0; // see read_spinning
  // The holder's session state (holder.h), or null without a holder: the INIT request and the
  // requests in flight are kept there, for a process that takes the connection over.
  SessionState *session = nullptr;
  // This process takes a live connection over (REQUIRES: session). libfuse reads the saved INIT
  // request first and its reply goes nowhere (the kernel negotiated once, with the same
  // answer); then the requests the last process left unanswered are sent again by the kernel
  // (FUSE_NOTIFY_RESEND, protocol 7.40, Linux 6.9+) or, on older kernels, answered with EIO so
  // that their callers do not wait forever.
  bool takeover = false;
  // A reply the kernel never received, of a request a process that died had read (it is sent
  // again, or failed with EIO): what its handling counted is taken back, the entry reply's
  // lookup reference and the open's handle. Runs on a worker thread, serving no request.
  std::function<void(const SessionState::RequestSummary &)> undelivered;
  // Ask for FUSE passthrough (backing_files.h) where the kernel offers it (protocol 7.40,
  // Linux 6.9+ built with CONFIG_FUSE_PASSTHROUGH); passthrough_negotiated() says the answer.
  bool passthrough = false;
};

// Installs the hooks on a session that serves the connection `fd` (mounted by
// fuse_session_mount(), or taken over); 0 or a negative errno. One session per process.
int install_device_io(fuse_session *se, int fd, InitAmendments amendments);

// Whether the INIT reply turned FUSE passthrough on (InitAmendments::passthrough).
bool passthrough_negotiated();
// Registers `fd` as a backing file of the connection (FUSE_DEV_IOC_BACKING_OPEN): its id, or a
// negative errno. REQUIRES: passthrough_negotiated().
int32_t open_backing_file(int fd);
void close_backing_file(int32_t id);
// The OPEN or CREATE reply this thread sends next opens its file passthrough to backing file
// `id` (FOPEN_PASSTHROUGH and backing_id, which libfuse 3.14 cannot set).
void reply_with_backing_file(int32_t id);

// Whether the request this thread serves is one the kernel sent again after a takeover
// (FUSE_NOTIFY_RESEND) whose change a process that died had logged in the journal: the handler
// answers from the tree as it is and does not apply it again (session_state.h).
bool serving_applied_request();

// pkramfs-ctl upgrade: from now on no worker takes a request from the device (those it took
// are served); call it before ending the session loop, so that the loop's end (which cancels
// idle workers) cannot cancel one that has just read a request. Requests wait in the kernel
// for the next serving process.
void stop_reading_requests();

// Whether the caller of the request this thread is serving holds CAP_FSETID, as the kernel
// judged it with capable(), i.e. in the initial user namespace (fs/fuse/file.c, dir.c):
// - a WRITE (not a writeback of cached pages), a SETATTR that truncates (without chown), an
//   OPEN or CREATE with O_TRUNC: with FUSE_HANDLE_KILLPRIV_V2 negotiated the kernel sets
//   FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID or FUSE_OPEN_KILL_SUIDGID exactly when the
//   caller lacks it; a direct-I/O WRITE carries the flag on any connection;
// - any other request: nullopt (the daemon judges from /proc, credentials.h).
// A user namespace's root shows every capability in /proc/<tid>/status, so the kernel's
// verdict is the only reliable one where it exists.
// REQUIRES: called on the worker thread that read the request, while its handler runs.
std::optional<bool> kernel_fsetid_verdict();

// Whether the FUSE_CREATE this thread is serving is a FUSE_TMPFILE (O_TMPFILE in the request's
// directory; the name is meaningless). Same request and reply layout as a CREATE, so libfuse's
// create path serves it, and the open file's handle is like any other.
// REQUIRES: as kernel_fsetid_verdict.
bool serving_tmpfile();

// The FUSE_GETATTR this thread is serving is a FUSE_STATX: what its caller asked for. The
// request is a GETATTR's (fuse_statx_in begins with fuse_getattr_in: flags, padding, fh), so
// libfuse's getattr path serves it; the reply must be a fuse_statx_out (statx_wire.h).
// REQUIRES: as kernel_fsetid_verdict.
struct StatxRequest {
  uint32_t sx_flags = 0;
  uint32_t sx_mask = 0;
};
std::optional<StatxRequest> serving_statx();

} // namespace pkramfs
