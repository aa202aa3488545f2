// Where a Filesystem reports the kernel's lookup references (Inode::nlookup) as they change, so
// that a process taking a live mount over starts from the kernel's exact counts
// (fuse/lookup_ledger.h keeps them in memory that outlives the serving process).
#pragma once

#include <cstdint>

namespace pkramfs {

class LookupMirror {
public:
  virtual ~LookupMirror() = default;
  // An entry reply about to go to the kernel gives it `n` more references to `ino`. Called
  // before the reply is sent: a crash in between counts a reference the kernel never got,
  // which keeps an unlinked inode until unmount but never frees one the kernel still names.
  virtual void added(uint64_t ino, uint64_t n) noexcept = 0;
  // A FORGET gave `n` of them back.
  virtual void dropped(uint64_t ino, uint64_t n) noexcept = 0;
};

} // namespace pkramfs
