// Answers an O_DIRECT write only after the kernel has dropped its cached pages of the written
// range, with --cache=auto and writeback (files opened with FOPEN_KEEP_CACHE).
//
// Why: kernel FUSE (Debian's 6.1 and 6.18 alike) writes O_DIRECT data of such a file through
// generic_file_direct_write(), which drops the range's cached pages before it sends the WRITE
// and again afterwards only when the write completed synchronously. An asynchronous one
// (io_uring, libaio: fuse_direct_IO() returns -EIOCBQUEUED and fuse_aio_complete() ends the
// kiocb) is followed by no invalidation at all, so a buffered read that ran while the WRITE was
// in flight leaves the old bytes in the page cache for good: xfstests generic/451. (A kernel
// patch that invalidates in fuse_aio_complete() was posted to linux-fsdevel by Jingbo Xu in
// January 2026; in a kernel with it this hold is redundant, not harmful.)
//
// How: the worker applies (and journals) the write as usual, then hands the request to
// reply_after_invalidation() instead of answering. A thread of ours sends
// FUSE_NOTIFY_INVAL_INODE for the range and only then answers, so the kiocb completes after the
// stale pages are gone. Not from the worker itself: the kernel's fuse_reverse_inval_inode()
// runs invalidate_inode_pages2_range(), which takes each cached folio's lock and so waits for
// the buffered READs in flight on the range; the workers must stay free to answer those (there
// may be only one).
//
// Only for inodes whose pages the kernel may cache: pages come from READs and from writes
// through the page cache, which note_page_cache_use() marks. An inode never read and only
// written with O_DIRECT (a log) pays nothing: the answer goes out at once, as before (the
// thread switch cost ~60 us per write on a loaded 2-CPU machine). Every READ counts, also one
// with O_DIRECT in its flags: the page faults of an mmap of an O_DIRECT descriptor and the
// buffered remainder of a short O_DIRECT read fill the page cache with such READs.
//
// The kernel holds no page lock of the range while a direct WRITE is in flight, with one
// exception: when it could not drop the pages beforehand (-EBUSY, e.g. a page dirtied through
// mmap meanwhile) it writes buffered instead (fuse_perform_write()), sending the WRITE, with the
// file's O_DIRECT flag, while it holds the locks of the pages written. The invalidation then
// waits for the very answer it holds back: a watchdog answers every WRITE still held after
// kReplyDeadline. Those pages already hold the new bytes, so nothing stale is left; the cost
// is that delay, on that rare path only.
#pragma once

#include "operations.h" // FUSE_USE_VERSION and fuse_lowlevel.h

#include <chrono>

namespace pkramfs {

inline constexpr std::chrono::seconds kReplyDeadline{5};

// Starts the invalidation and watchdog threads. Call once the session is mounted, after the
// stop signals are blocked (SignalStop), before the session loop.
void start_direct_write_replies(fuse_session *se);

// Marks inode `ino` as one whose data the kernel may keep in its page cache. Call for every
// READ, and every WRITE whose open flags lack O_DIRECT, before the data is read or written:
// the daemon reads and writes a file's data under the inode's lock, so a READ that returned
// bytes from before an O_DIRECT write is seen by the check after that write. Lock-free, never
// forgotten; a bitmap indexed by a hash of `ino`, so a collision costs an invalidation, no more.
void note_page_cache_use(fuse_ino_t ino);

// For an applied O_DIRECT write of [off, off + written) of inode `ino` by WRITE request `req`:
// queues its answer behind the invalidation of the range and returns true, or returns false
// when the kernel cannot cache that inode's pages or nothing was started (the caller answers).
bool reply_after_invalidation(fuse_req_t req, fuse_ino_t ino, off_t off, size_t written);

// Call after the session loop returned: answers what is still queued and stops the threads.
// False if the invalidation thread is still blocked in the kernel after kReplyDeadline (a READ
// that the ended loop will never answer holds a page lock): the threads are then left running
// and the session must not be destroyed while the process lives (they may still touch it).
bool stop_direct_write_replies();

} // namespace pkramfs
