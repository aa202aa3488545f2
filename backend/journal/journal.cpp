#include "journal/journal.h"

#include "util/crc32c.h"
#include "util/fault.h"
#include "pkramfs/format.h"

#include <cerrno>
#include <csignal>
#include <cstring>

namespace pkramfs {
namespace {

constexpr uint64_t kHeader = sizeof(pkramfs_jrec_header);
constexpr size_t kCrcSkip = offsetof(pkramfs_jrec_header, sequence);

uint64_t padded(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

uint32_t record_crc(const pkramfs_jrec_header &h, const std::byte *payload) {
  const uint32_t c = crc32c(reinterpret_cast<const char *>(&h) + kCrcSkip, kHeader - kCrcSkip);
  return crc32c(c, payload, h.payload_bytes);
}

} // namespace

void Journal::resume(uint64_t epoch, uint64_t end, uint64_t next_sequence) {
  std::lock_guard lock(mu_);
  epoch_ = epoch;
  pos_ = end;
  sequence_ = next_sequence;
}

Journal::Position Journal::position() const {
  std::lock_guard lock(mu_);
  return {epoch_, sequence_};
}

uint64_t Journal::used() const {
  std::lock_guard lock(mu_);
  return pos_;
}

std::byte *Journal::reserve_record(size_t payload_bytes) const {
  const uint64_t total = kHeader + padded(payload_bytes);
  if (payload_bytes > UINT32_MAX || pos_ + total > bytes_)
    return nullptr;
  return base_ + pos_;
}

void Journal::seal_record(std::byte *at, uint32_t type, size_t payload_bytes) {
  pkramfs_jrec_header h{};
  h.magic = PKRAMFS_JREC_MAGIC;
  h.sequence = sequence_;
  h.epoch = epoch_;
  h.type = type;
  h.payload_bytes = static_cast<uint32_t>(payload_bytes);
  h.crc32c = record_crc(h, at + kHeader);
  // The payload is in place; the header makes the record count. A crash between the two
  // stores, or in the middle of the header, leaves a torn record that a scan drops.
  fault::crash_point(fault::Point::kJournalBeforeHeader);
  if (fault::hit(fault::Point::kJournalTorn)) {
    std::memcpy(at, &h, kHeader / 2);
    raise(SIGKILL);
  }
  std::memcpy(at, &h, kHeader);
  pos_ += kHeader + padded(payload_bytes);
  sequence_++;
}

Journal::Check Journal::check(const std::byte *base, uint64_t bytes, uint64_t off, uint64_t epoch,
                              uint64_t sequence, Record *out) {
  out->next = 0;
  if (off + kHeader > bytes)
    return Check::kEnd;
  pkramfs_jrec_header h;
  std::memcpy(&h, base + off, kHeader);
  // sequence 0: any sequence after the ones already replayed (the search for later records).
  if (h.magic != PKRAMFS_JREC_MAGIC || h.epoch != epoch ||
      (sequence ? h.sequence != sequence : h.sequence == 0))
    return Check::kEnd;
  const uint64_t next = off + kHeader + padded(h.payload_bytes);
  if (h.payload_bytes > bytes || next > bytes)
    return Check::kTorn;
  out->next = next;
  if (record_crc(h, base + off + kHeader) != h.crc32c)
    return Check::kTorn;
  out->type = h.type;
  out->payload = {reinterpret_cast<const char *>(base + off + kHeader), h.payload_bytes};
  return Check::kValid;
}

} // namespace pkramfs
