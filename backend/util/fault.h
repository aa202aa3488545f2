// Fault injection for tests (docs/security.md, "Fault injection"): named points in the
// allocation, journal, checkpoint and preserve paths where a test makes the Nth pass fail (an
// arena allocation returns ENOSPC, a heap allocation throws std::bad_alloc as operator new
// would) or kills the process with SIGKILL at that exact instant.
//
// Compiled in only with -DPKRAMFS_FAULT_INJECTION=ON (tools/build, the test builds); without
// it every check below is an empty inline function and the switch does not exist.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pkramfs::fault {

enum class Point : unsigned {
  kArena, // Arena::allocate hands out a run of blocks: fails with ENOSPC
  kFrame, // Arena::allocate needs a new frame from the frame source: fails like the source
  kHeap,  // an operation allocates heap memory (inode, entry, xattr, extent): std::bad_alloc
  kJournalBeforeHeader,  // a journal record's payload is written, its header not: SIGKILL
  kJournalTorn,          // half of a journal record's header is written: SIGKILL
  kCheckpointWritten,    // a checkpoint image is in its new slot, the superblock not switched
  kCheckpointTorn,       // half of the superblock copy that switches slots is written
  kCheckpointSwitched,   // the superblock points at the new slot, the journal not reset
  kPreserveSynced,       // preserve: after syncfs, before mutations are refused
  kPreserveFrozen,       // preserve: mutations refused, before the checkpoint
  kPreserveCheckpointed, // preserve: checkpoint written, before the node is marked preserved
  kPreserveMarked,       // preserve: marked preserved, before the reply
  kCount
};

#ifdef PKRAMFS_FAULT_INJECTION
inline constexpr bool kEnabled = true;

// Counts a pass through `p`; true when it is the pass the test armed (fail points).
bool hit(Point p);
// Counts a pass; on the armed one the process dies with SIGKILL (crash points).
void crash_point(Point p);
// A heap allocation is about to happen: throws std::bad_alloc on the armed pass.
void heap();

// Arms `p` to fire on its `nth` pass from now (1 = the next one); 0 disarms it.
void arm(Point p, uint64_t nth);
void disarm_all();
// Passes through `p` since the last arm() or disarm_all() (armed or not).
uint64_t hits(Point p);
// "POINT:N[,POINT:N...]": arms each; false with `error` set on a bad spec.
bool configure(std::string_view spec, std::string &error);
// One line per armed point: "POINT:N passes=K" (K >= N: it fired), for tests to know when a
// sweep over N has gone past the last pass. Empty when nothing is armed.
std::string report();
// The names configure() accepts, one per line with what each does.
std::string describe_points();
#else
inline constexpr bool kEnabled = false;

inline bool hit(Point) { return false; }
inline void crash_point(Point) {}
inline void heap() {}
#endif

} // namespace pkramfs::fault
