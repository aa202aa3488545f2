// The holder's session state (fuse/session_state.h) and the lookup ledger in it
// (fuse/lookup_ledger.h), in-process: what a serving process leaves there and what the next one
// finds. Through a mount and real kills: tests/integration/resend.sh and takeover.sh.
#include "fs/filesystem.h"
#include "lookup_ledger.h"
#include "session_state.h"
#include "support/callers.h"
#include "support/filesystem_fixture.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <linux/fuse.h>
#include <sys/mman.h>
#include <unistd.h>

using namespace pkramfs;
using namespace pkramfs::test;

namespace {

constexpr uint64_t kResend = 1ull << 63;

SessionState fresh_state() {
  auto s = SessionState::create();
  REQUIRE(s.ok());
  return std::move(s.value());
}

// A second view of the same memfd, as a process that takes over has.
SessionState adopted(const SessionState &s) {
  auto a = SessionState::adopt(UniqueFd(dup(s.fd())));
  REQUIRE(a.ok());
  return std::move(a.value());
}

// Counts what a Filesystem reports.
struct CountingMirror final : LookupMirror {
  std::unordered_map<uint64_t, int64_t> counts;
  void added(uint64_t ino, uint64_t n) noexcept override { counts[ino] += int64_t(n); }
  void dropped(uint64_t ino, uint64_t n) noexcept override { counts[ino] -= int64_t(n); }
};

} // namespace

TEST_CASE("SessionState: a request's record, carried to the next process", "[session]") {
  SessionState s = fresh_state();
  SessionState::RequestRecord *r = s.track(10, FUSE_MKDIR);
  REQUIRE(r != nullptr);
  SessionState::set_serving(r);
  SessionState::note_journal_record({3, 7});
  SessionState::note_journal_record({3, 8}); // only the first record counts
  CHECK(r->journal_sequence.load() == 7);
  SessionState::RequestRecord *other = s.track(12, FUSE_LOOKUP);
  REQUIRE(other != nullptr);
  SessionState::set_serving(other);
  CHECK(s.open_handle(42) != 0);
  CHECK(other->fh.load() != 0);
  SessionState::set_serving(nullptr);
  SessionState::RequestRecord *answered = s.track(14, FUSE_UNLINK);
  s.untrack(14);
  CHECK(answered->opcode.load() == 0); // a free slot's record is all zeros
  CHECK(s.inflight_count() == 2);

  SessionState next = adopted(s);
  // The journal ends at (3, 8) after the restore: record (3, 7) was sealed.
  next.carry_inflight([](Journal::Position at) { return at < Journal::Position{3, 8}; });
  CHECK(next.inflight_count() == 0);
  CHECK_FALSE(next.claim_carried(10).has_value()); // a request that was not resent
  const auto mkdir = next.claim_carried(10 | kResend);
  REQUIRE(mkdir.has_value());
  CHECK(mkdir->applied);
  CHECK(mkdir->opcode == FUSE_MKDIR);
  CHECK_FALSE(next.claim_carried(10 | kResend).has_value()); // claimed once
  const auto lookup = next.claim_carried(12 | kResend);
  REQUIRE(lookup.has_value());
  CHECK_FALSE(lookup->applied);
  CHECK(lookup->fh != 0);
  CHECK(next.take_carried().empty());
}

TEST_CASE("SessionState: an unsealed record is not applied; a kernel without resend",
          "[session]") {
  SessionState s = fresh_state();
  SessionState::RequestRecord *r = s.track(20, FUSE_CREATE);
  SessionState::set_serving(r);
  SessionState::note_journal_record({5, 1});
  SessionState::set_serving(nullptr);
  r->entry_ino.store(99);
  SessionState next = adopted(s);
  next.carry_inflight([](Journal::Position at) { return at < Journal::Position{5, 1}; });
  const auto all = next.take_carried();
  REQUIRE(all.size() == 1);
  CHECK(all[0].first == 20); // the unique the kernel knows, for the EIO reply
  CHECK_FALSE(all[0].second.applied);
  CHECK(all[0].second.entry_ino == 99);
}

TEST_CASE("SessionState: a version-1 state is taken over, its references unknown",
          "[session]") {
  UniqueFd fd(memfd_create("v1", MFD_CLOEXEC));
  REQUIRE(ftruncate(fd.get(), SessionState::kVersion1Bytes) == 0);
  const uint64_t magic = SessionState::kMagic;
  const uint32_t version = 1;
  REQUIRE(pwrite(fd.get(), &magic, sizeof magic, 0) == sizeof magic);
  REQUIRE(pwrite(fd.get(), &version, sizeof version, 8) == sizeof version);
  auto s = SessionState::adopt(std::move(fd));
  REQUIRE(s.ok());
  CHECK(s->layout().version == SessionState::kVersion);
  LookupLedger ledger(*s);
  CHECK_FALSE(ledger.exact());

  UniqueFd foreign(memfd_create("foreign", MFD_CLOEXEC));
  REQUIRE(ftruncate(foreign.get(), sizeof(SessionState::Layout)) == 0);
  auto refused = SessionState::adopt(std::move(foreign));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error() == EPROTO);
}

TEST_CASE("SessionState: how each open reached its file object outlives the process",
          "[session]") {
  SessionState s = fresh_state();
  const uint64_t a1 = s.open_handle(10), a2 = s.open_handle(10), b = s.open_handle(11);
  const uint64_t plain = s.open_handle(12);
  s.set_handle_backing(a1, 7); // passthrough to backing id 7
  s.set_handle_backing(a2, 7);
  s.set_handle_backing(b, SessionState::kBackingCached);
  SessionState next = adopted(s);
  auto open = next.open_files();
  CHECK(open[10] == 2);
  CHECK(open[12] == 1);
  auto backed = next.backed_opens();
  CHECK(backed.size() == 2); // the plain open has no word
  CHECK(backed[10].backing_id == 7);
  CHECK(backed[10].passthrough == 2);
  CHECK(backed[10].cached == 0);
  CHECK(backed[11].cached == 1);
  CHECK(backed[11].passthrough == 0);
  // The word comes back with the handle, which is still valid with it set; then it is gone.
  uint32_t word = 0;
  CHECK(next.close_handle(a1, &word) == 10);
  CHECK(word == 7);
  CHECK(next.close_handle(a1, &word) == 0); // served already
  CHECK(word == 0);
  CHECK(next.close_handle(plain, &word) == 12);
  CHECK(word == 0);
  CHECK(next.backed_opens()[10].passthrough == 1);
  // A reused slot starts without a word.
  const uint64_t again = next.open_handle(13);
  CHECK(next.close_handle(again, &word) == 13);
  CHECK(word == 0);
}

TEST_CASE("LookupLedger: counts outlive the process and the table grows", "[session]") {
  SessionState s = fresh_state();
  {
    LookupLedger ledger(s);
    CHECK(ledger.exact());
    const uint64_t n = LookupLedger::kMinCapacity; // past three quarters: it grows
    for (uint64_t ino = 2; ino < n + 2; ++ino)
      ledger.added(ino, ino % 3 + 1);
    ledger.dropped(5, 1);
    ledger.dropped(6, 100); // never below 0
    ledger.dropped(n + 100, 1); // never counted
    CHECK(ledger.exact());
  }
  SessionState next = adopted(s);
  LookupLedger ledger(next);
  auto counts = ledger.counts();
  CHECK(counts.size() == LookupLedger::kMinCapacity - 1); // ino 6 fell to 0
  CHECK(counts.at(2) == 3);
  CHECK(counts.at(5) == 2);
  CHECK(counts.count(6) == 0);
  counts.erase(3);
  ledger.rebuild(counts);
  CHECK(ledger.counts() == counts);
  SessionState third = adopted(s);
  CHECK(LookupLedger(third).counts() == counts);
}

TEST_CASE("Filesystem: lookup references mirrored, and adopted exactly", "[session]") {
  TestFs t;
  CountingMirror mirror;
  t->set_lookup_mirror(&mirror);
  auto f = t->create(kRootIno, "f", 0644, kRoot);
  REQUIRE(f.ok());
  const uint64_t ino = f->st_ino;
  REQUIRE(t->lookup(kRootIno, "f").ok());
  CHECK(mirror.counts[ino] == 2);
  t->forget(ino, 1);
  CHECK(mirror.counts[ino] == 1);
  // Unlinked and closed: the kernel's last reference keeps it until the kernel forgets it.
  t->release(ino);
  REQUIRE(t->unlink(kRootIno, "f").ok());
  CHECK(t->unlinked_inodes() == 1);
  std::unordered_map<uint64_t, uint64_t> none;
  t->adopt_kernel_references({}, &none); // a takeover whose ledger shows no reference
  CHECK(t->unlinked_inodes() == 0);
}
