// The journal: a log region in the node where every mutating operation appends a record before
// its reply goes to the kernel. Records of one epoch (the generation of the checkpoint they
// follow) are packed from the start of the region; a checkpoint starts a new epoch.
#pragma once

#include "journal/codec.h"
#include "util/result.h"

#include "pkramfs/format.h"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace pkramfs {

class Journal {
public:
  // Space kept free so that operations in flight always fit; below it, checkpoint first.
  static constexpr uint64_t kReserve = 4 << 20;

  Journal(std::byte *base, uint64_t bytes) : base_(base), bytes_(bytes) {}

  // Where a record is in the node's history: its epoch, and its sequence within it. A record
  // at a position before position() survives a crash (it is in the journal, or in the
  // checkpoint that began a later epoch); one at or after it was never sealed.
  struct Position {
    uint64_t epoch = 0;
    uint64_t sequence = 0;
    friend auto operator<=>(const Position &, const Position &) = default;
  };
  // Where the next record goes.
  Position position() const;
  // Called with each record's position just before it is sealed, under the journal's lock, on
  // the thread that appends (a taking-over process learns from it whether a request's change
  // was logged: fuse/session_state.h). REQUIRES: no append meanwhile.
  void on_record(std::function<void(Position)> observer) { observer_ = std::move(observer); }

  // Continues an epoch after `records` valid records ending at `end` (from scan()).
  void resume(uint64_t epoch, uint64_t end, uint64_t next_sequence);
  Result<void> append(uint32_t type, std::string_view payload) {
    return append_encoded(type, payload.size(), [&](Encoder &e) { e.bytes(payload); });
  }
  // Appends a record of `payload_bytes` that `encode(Encoder &)` writes straight into the
  // journal region: no heap allocation, so a record that fits is always written.
  template <class F> Result<void> append_encoded(uint32_t type, size_t payload_bytes, F &&encode);

  uint64_t used() const;
  uint64_t capacity() const { return bytes_; }
  bool needs_checkpoint() const { return used() + kReserve > bytes_; }

  struct ScanResult {
    uint64_t records = 0;
    uint64_t end = 0; // offset after the last valid record
    uint64_t next_sequence = 1;
    std::string corruption; // non-empty: a bad record is followed by valid ones
  };
  // Calls f(type, payload) for each valid record of `epoch`, in order. A torn last record is
  // normal and ends the scan.
  template <class F>
  static ScanResult scan(const std::byte *base, uint64_t bytes, uint64_t epoch, F &&f);

private:
  struct Record {
    uint32_t type;
    std::string_view payload;
    uint64_t next; // offset of the following record
  };
  enum class Check { kValid, kEnd, kTorn };
  // Where a record of `payload_bytes` goes, or null when the journal is full (mu_ held).
  std::byte *reserve_record(size_t payload_bytes) const;
  // Writes the header of the record whose payload is at `at` + header and moves on (mu_ held).
  void seal_record(std::byte *at, uint32_t type, size_t payload_bytes);
  static Check check(const std::byte *base, uint64_t bytes, uint64_t off, uint64_t epoch,
                     uint64_t sequence, Record *out);

  mutable std::mutex mu_;
  std::byte *base_;
  uint64_t bytes_;
  uint64_t pos_ = 0;
  uint64_t sequence_ = 1;
  uint64_t epoch_ = 0;
  std::function<void(Position)> observer_;
};

template <class F>
Result<void> Journal::append_encoded(uint32_t type, size_t payload_bytes, F &&encode) {
  std::lock_guard lock(mu_);
  std::byte *at = reserve_record(payload_bytes);
  if (!at)
    return Errno{ENOSPC};
  Encoder e(at + sizeof(pkramfs_jrec_header), payload_bytes);
  encode(e);
  if (observer_)
    observer_(Position{epoch_, sequence_});
  seal_record(at, type, payload_bytes);
  return {};
}

template <class F>
Journal::ScanResult Journal::scan(const std::byte *base, uint64_t bytes, uint64_t epoch, F &&f) {
  ScanResult r;
  Record rec;
  for (;;) {
    const Check c = check(base, bytes, r.end, epoch, r.next_sequence, &rec);
    if (c == Check::kValid) {
      f(rec.type, rec.payload);
      r.end = rec.next;
      r.records++;
      r.next_sequence++;
      continue;
    }
    // The first record that fails is the last one written (torn), unless a later record of
    // this epoch is still valid: then the journal was damaged in the middle. The failed
    // record's own length may be what is damaged, so look at every aligned offset after it.
    for (uint64_t off = r.end + 8; off + sizeof(uint64_t) <= bytes; off += 8) {
      Record later;
      if (check(base, bytes, off, epoch, 0, &later) == Check::kValid) {
        r.corruption = "journal record " + std::to_string(r.next_sequence) + " at offset " +
                       std::to_string(r.end) + " is damaged but later records are valid";
        break;
      }
    }
    return r;
  }
}

} // namespace pkramfs
