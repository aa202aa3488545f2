// The control socket protocol between pkramfs-fuse (fuse/control_server.cpp) and pkramfs-ctl
// (tools/ctl): socket and lock names. The replies are JSON (common/json.h).
//
// Transport: a SOCK_STREAM unix socket <run-dir>/NAME.sock (see socket_file_name), mode 0600,
// served by the daemon that holds <run-dir>/NAME.lock. Only root may talk to it (SO_PEERCRED). One
// request per connection.
//
// Request: one line, the command word alone, ended by '\n' (or by the client shutting down its
// writing side): "status", "preserve", "unpreserve", "node-fd" or "atime=MODE[,nodiratime]"
// (atime_request). At most kMaxRequestBytes bytes
// before the newline; the whole request must arrive within kRequestTimeoutMs.
//
// Reply: one line of JSON, a flat object (string, integer, floating point and boolean values
// only), then the server closes the connection.
//   error:      {"ok":false,"error":"<one line>"[,"errno":N]}
//   status:     {"ok":true,"name":..,"backend":..,"state":..,"mountpoint":..,"pid":N,
//                "holder_pid":N,"serving_pid":N,"restarts":N,"last_restart_cause":..,
//                "last_takeover_ms":X (-1: none),"lookups_exact":B,
//                "files":N,"directories":N,"other_inodes":N,"data_bytes":N,"limit_bytes":N,
//                "inodes_used":N,"inodes_limit":N,"unlinked_inodes":N,"journal_used_bytes":N,"journal_bytes":N,
//                "checkpoint_bytes":N,"checkpoint_generation":N,"node_bytes":N,
//                "metadata_bytes":N,"free_bytes":N,"data_held_bytes":N,
//                "metadata_held_bytes":N,"superblock_bytes":N,"held_bytes":N}
//   preserve:   {"ok":true,"files":N,"bytes":N,"checkpoint_bytes":N,"milliseconds":F}
//   unpreserve: {"ok":true}
//   atime=...:  {"ok":true}; MODE relatime, strictatime or noatime, and nodiratime: how reads and
//               readdir stamp atime from now on (pkramfs-fuse -o remount with atime options)
//   node-fd:    {"ok":true,"backend":"kmod","node_bytes":N}, sent with one descriptor
//               (SCM_RIGHTS, on the reply's first bytes): a /dev/pkram file opened read-only
//               and attached to the node for reading only (PKRAM_ATTACH_READER: no mmap, no
//               change to the node; EPROTO from an older module); pread() reads the node's bytes,
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/un.h>

#include "util/result.h"
#include "util/unique_fd.h"

namespace pkramfs::control {

inline constexpr size_t kMaxRequestBytes = 256;
inline constexpr int kRequestTimeoutMs = 2000;
inline constexpr size_t kMaxReplyBytes = 64 * 1024;

// The request that sets how reads stamp atime: "atime=MODE[,nodiratime]".
std::string atime_request(std::string_view mode, bool nodiratime);

// NAME.sock; a node name longer than kMaxPlainSocketName (a unix socket address holds at most
// 107 bytes) gets "<its first 40 bytes>~<FNV-1a 64 of the name in hex>.sock" instead: '~' is
// not valid in node names, so this cannot be another node's socket.
inline constexpr size_t kMaxPlainSocketName = 80;
std::string socket_file_name(std::string_view node);
std::string socket_path(const std::string &run_dir, const std::string &node);

// A new socket (AF_UNIX, SOCK_STREAM, nonblocking, close-on-exec) and the address of `path` for
// its bind() or connect(). A path too long for sun_path is reached through its directory: `dir`
// holds an O_PATH descriptor of it, to be kept until bind/connect is done, and the address is
// /proc/self/fd/N/FILE.
struct UnixEndpoint {
  UniqueFd sock;
  UniqueFd dir;
  sockaddr_un addr{};
  socklen_t len = 0;
  const sockaddr *sockaddr_ptr() const { return reinterpret_cast<const sockaddr *>(&addr); }
};
Result<UnixEndpoint> unix_endpoint(const std::string &path);

// Deadlines of both sides: milliseconds left until `deadline`, 0 once it has passed (a poll()
// timeout); and poll() for `events` on `fd` until `deadline` (0, ETIMEDOUT or an errno).
using Clock = std::chrono::steady_clock;
int remaining_ms(Clock::time_point deadline);
int wait_for(int fd, short events, Clock::time_point deadline);

// <run-dir>/NAME.lock, the node lock its daemon holds.
std::string lock_path(const std::string &run_dir, const std::string &node);

} // namespace pkramfs::control
