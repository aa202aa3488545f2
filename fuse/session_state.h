// What a serving process knows about the live FUSE connection that the kernel does not tell a
// new one: kept in a memfd that the holder (holder.h) owns, so that it outlives a crash of the
// serving process and the next one takes the connection over where the last one stopped.
//
// - the INIT request: the kernel sends it once per connection; a new serving process hands
//   libfuse a copy (device_io.h) so that libfuse negotiates the same connection again;
// - requests in flight: read from /dev/fuse and not yet answered. The kernel keeps them on the
//   connection (the holder's descriptor is the same open file) and their callers wait; the new
//   process asks the kernel to send them again (FUSE_NOTIFY_RESEND, Linux 6.9+) or, where the
//   kernel cannot, answers them with EIO so that no caller waits forever (there the workers
//   also read through cloned descriptors, whose requests the kernel fails as they close: a
//   request read in the instant of a kill is never noted here);
// - what each request in flight has done so far (RequestRecord): whether its change reached
//   the journal, which inode its entry reply counted, which handle its open gave. A request the
//   kernel sends again after a takeover is matched with it (carried): its change is not
//   applied twice, and what the kernel never received is uncounted (device_io.h);
// - open files: the handle (fh) the kernel got for each OPEN and CREATE and its inode, so that
//   a new process knows which inodes are open (an unlinked file lives while it is open);
// - the kernel's lookup references, kept by the lookup ledger (lookup_ledger.h) in regions of
//   the same memfd after the layout;
// - who serves, how often it was restarted and why, for pkramfs-ctl status.
//
// Only processes of one pkramfs build family share it: the layout has a magic and a version,
// and a serving process that finds another refuses to take over (the old one keeps serving).
// Version 2 is version 1 with fields appended: a version-2 process takes a version-1 state
// over by growing it (its lookup references stay unknown, lookups_exact 0); a version-1
// process refuses a version-2 state. Version 3 gives the high half of each handle's generation
// a meaning (its backing word); a version-3 process takes over versions 1 and 2, whose high
// halves are 0 (no open had a backing file), and an older process refuses version 3.
#pragma once

#include "journal/journal.h"
#include "util/result.h"
#include "util/unique_fd.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace pkramfs {

class SessionState {
public:
  static constexpr uint64_t kMagic = 0x5441545353465250ull; // "PRFSSTAT"
  // Bump when the layout below or a field's meaning changes; a process refuses a state of
  // another version (versions 1 and 2 are taken over: see above).
  static constexpr uint32_t kVersion = 3;
  static constexpr size_t kInitMax = 512;
  static constexpr size_t kInflightSlots = 1024;
  static constexpr size_t kCarriedSlots = 1024;
  static constexpr size_t kHandleSlots = 1u << 20;
  static constexpr size_t kCauseMax = 128;
  static constexpr size_t kMountpointMax = 4096;

  struct Handle {
    std::atomic<uint64_t> ino; // 0: free
    // Low half: the generation, in the fh's upper half, so a stale fh matches nothing. High
    // half (version 3; 0 before): how the open reached its file object (kBacking*), so that a
    // process taking over opens an inode that is open passthrough with the same backing file.
    std::atomic<uint64_t> generation;
  };
  // The backing word of a handle: 0, an open of a file without an object or from before
  // version 3; a backing id (1 .. INT_MAX), an open passthrough to that backing file;
  // kBackingCached, an open of a file with an object that goes through the daemon.
  static constexpr uint32_t kBackingCached = 0x80000000u;

  // What a request in flight has done so far, for the process that takes over if this one dies
  // before answering it. A slot not in use is all zeros. Each field is stored after what it
  // records happened (the journal position before the record is sealed, which is the same:
  // the record counts only once sealed): a kill between the two leaves a later process
  // believing less happened than did, which costs at most a reference counted once too often
  // (a leak until unmount), never one counted too few.
  struct RequestRecord {
    std::atomic<uint32_t> opcode;  // as read from the device (FUSE_TMPFILE, not the CREATE)
    std::atomic<uint32_t> applied; // a process before this one logged its change (resent)
    std::atomic<uint32_t> logged;  // journal_* name its first record
    uint32_t reserved;
    std::atomic<uint64_t> journal_epoch;
    std::atomic<uint64_t> journal_sequence;
    std::atomic<uint64_t> entry_ino; // its entry reply's inode, counted in the lookup ledger
    std::atomic<uint64_t> fh;        // the handle its OPEN or CREATE reply gives
  };
  // A request of a process that died, kept until the kernel sends it again.
  struct Carried {
    std::atomic<uint64_t> unique; // as it comes back: FUSE_UNIQUE_RESEND set; 0: free
    RequestRecord record;         // `applied` resolved against the journal at the takeover
  };
  struct LedgerRegion {
    std::atomic<uint64_t> offset; // in the memfd, 2 MiB aligned
    std::atomic<uint64_t> capacity; // entries, a power of two; 0: none
  };

  // The copy of a record a process acts on.
  struct RequestSummary {
    uint32_t opcode = 0;
    bool applied = false;
    uint64_t entry_ino = 0;
    uint64_t fh = 0;
  };

  struct Layout {
    uint64_t magic;
    uint32_t version;
    uint32_t init_bytes;
    unsigned char init_request[kInitMax];
    std::atomic<int32_t> holder_pid;
    std::atomic<int32_t> serving_pid;
    std::atomic<uint32_t> restarts;
    std::atomic<uint32_t> handles_lost; // an OPEN found the handle table full
    std::atomic<uint32_t> handles_high; // slots at and above were never used
    std::atomic<uint64_t> takeover_started_ns; // CLOCK_MONOTONIC: the holder saw the crash
    std::atomic<uint64_t> takeover_served_ns;  // the first request served after it
    char last_cause[kCauseMax];
    // The mount point as an absolute path. A process taking over must not look the path up
    // itself: the lookup would reach the very mount it is about to serve, and wait for it.
    char mountpoint[kMountpointMax];
    std::atomic<uint64_t> inflight[kInflightSlots];
    Handle handles[kHandleSlots];
    // Version 2 on.
    RequestRecord records[kInflightSlots]; // of inflight[i]
    Carried carried[kCarriedSlots];
    std::atomic<uint32_t> lookups_exact; // the ledger has every lookup reference of the mount
    std::atomic<uint32_t> ledger_active; // which of ledger[] the ledger uses
    LedgerRegion ledger[2];
  };
  // The size of a version-1 layout: what version 2 appends starts there.
  static constexpr size_t kVersion1Bytes = offsetof(Layout, records);

  // A new state (the holder, before the first serving process starts).
  static Result<SessionState> create();
  // The state behind an inherited descriptor (a serving process started by the holder).
  // EPROTO: not a state of this layout version.
  static Result<SessionState> adopt(UniqueFd fd);

  SessionState(SessionState &&) noexcept;
  SessionState &operator=(SessionState &&) = delete;
  ~SessionState();

  int fd() const { return fd_.get(); }
  Layout &layout() { return *layout_; }

  // The connection's INIT request as the kernel sent it (header and fuse_init_in).
  void save_init(std::span<const unsigned char> request);
  std::span<const unsigned char> init_request() const;

  // A request read from the device, and its record (null when every slot is taken); forgotten
  // when its reply is written.
  RequestRecord *track(uint64_t unique, uint32_t opcode);
  void untrack(uint64_t unique);
  size_t inflight_count() const;

  // Takeover, after the node is restored and before anything is logged: the requests the
  // process that died had read and not answered become carried, each `applied` when
  // `logged(position)` says the journal holds its record.
  void carry_inflight(const std::function<bool(Journal::Position)> &logged);
  // The carried request that comes back as `unique` (FUSE_UNIQUE_RESEND set), which stops
  // being carried.
  std::optional<RequestSummary> claim_carried(uint64_t unique);
  // Every carried request, which stop being carried (a kernel that cannot resend them).
  std::vector<std::pair<uint64_t, RequestSummary>> take_carried();

  // The record of the request this thread serves (device_io.h sets it as it reads one), or
  // null; the journal position of its first record and its open's handle go there.
  static RequestRecord *serving();
  static void set_serving(RequestRecord *record);
  static void note_journal_record(Journal::Position at);

  // Open files. open_handle returns the fh to give the kernel (0 when the table is full: that
  // file's open is then unknown to a later process, which counts every inode as open).
  uint64_t open_handle(uint64_t ino);
  // How the open behind `fh` reached its file object (kBackingCached, a backing id); stored
  // before the reply that gives `fh` is written.
  void set_handle_backing(uint64_t fh, uint32_t backing);
  // The inode of a valid fh, which it forgets; 0 for a stale or unknown fh (its RELEASE was
  // served already, before a crash, and is being sent again). *backing: its backing word.
  uint64_t close_handle(uint64_t fh, uint32_t *backing = nullptr);
  // Per inode open with an object: its backing id (0: none) and its opens passthrough and
  // through the daemon. REQUIRES: after open_files() rebuilt the table, before serving.
  struct BackedOpens {
    int32_t backing_id = 0;
    uint32_t passthrough = 0;
    uint32_t cached = 0;
  };
  std::unordered_map<uint64_t, BackedOpens> backed_opens() const;
  // How many handles each inode has, and rebuilds the free list (a serving process that
  // takes over). REQUIRES: no open_handle/close_handle meanwhile.
  std::unordered_map<uint64_t, uint32_t> open_files();

  // How many serving processes died or were replaced so far on this mount.
  uint32_t restarts() const { return layout_->restarts.load(); }
  void set_cause(const std::string &cause);
  std::string cause() const;
  void set_mountpoint(const std::string &path);
  std::string mountpoint() const;

  // The takeover time pkramfs-ctl status shows: from the holder seeing a serving process die
  // (takeover_started) to the next one's first reply (takeover_served); -1 before one ended.
  void takeover_started();
  void takeover_served();
  double last_takeover_ms() const;

private:
  SessionState(UniqueFd fd, Layout *layout) : fd_(std::move(fd)), layout_(layout) {}

  UniqueFd fd_;
  Layout *layout_ = nullptr;
  std::mutex free_lock_;
  std::vector<uint32_t> free_; // handle slots known free; the rest above next_
  uint32_t next_ = 0;
};

} // namespace pkramfs
