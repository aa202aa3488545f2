// pkramfs-aiodio: asynchronous O_DIRECT writes (io_uring) mixed with buffered reads of the same
// range, after xfstests generic/451 ("get stale data from buffer read"). Each round writes the
// whole range with one byte value (0x55 and 0xaa in turn) through an O_DIRECT descriptor and,
// once the write has completed, reads it back through a second, buffered descriptor, which
// must return the new bytes. Meanwhile a thread keeps reading the range through a third
// buffered descriptor, so that the page cache holds the range while the writes are in flight:
// a filesystem that does not drop those pages after the write serves the old bytes.
//
//   pkramfs-aiodio [--rounds N] [--size BYTES] [--readers N] [--sync] FILE
//
// --sync writes with pwrite(2) instead (the kernel invalidates after a synchronous direct
// write itself). Exit 0: every read-back matched; 1: stale data (the first mismatch is
// printed); 2: usage or I/O error.
#include <liburing.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

[[noreturn]] void die(const std::string &what, int err) {
  std::fprintf(stderr, "pkramfs-aiodio: %s: %s\n", what.c_str(), std::strerror(err));
  std::exit(2);
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: pkramfs-aiodio [--rounds N] [--size BYTES] [--readers N] [--sync] FILE\n");
  std::exit(2);
}

unsigned long number(const char *s) {
  char *end;
  errno = 0;
  const unsigned long v = std::strtoul(s, &end, 0);
  if (errno || *end || v == 0)
    usage();
  return v;
}

} // namespace

int main(int argc, char **argv) {
  unsigned long rounds = 2000, size = 256 * 1024, readers = 2;
  bool sync_writes = false;
  const char *path = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc)
      rounds = number(argv[++i]);
    else if (a == "--size" && i + 1 < argc)
      size = number(argv[++i]);
    else if (a == "--readers" && i + 1 < argc)
      readers = number(argv[++i]);
    else if (a == "--sync")
      sync_writes = true;
    else if (!path && a[0] != '-')
      path = argv[i];
    else
      usage();
  }
  if (!path || size % 4096)
    usage();

  const int dfd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0644);
  if (dfd < 0)
    die(std::string("open O_DIRECT ") + path, errno);
  const int bfd = open(path, O_RDONLY);
  if (bfd < 0)
    die(std::string("open ") + path, errno);
  void *wbuf;
  if (posix_memalign(&wbuf, 4096, size))
    die("posix_memalign", ENOMEM);
  const std::unique_ptr<void, decltype(&std::free)> wbuf_owner(wbuf, &std::free);
  std::vector<unsigned char> rbuf(size);

  // The first contents, so that the background readers cache something from the start.
  std::memset(wbuf, 0x55, size);
  if (pwrite(dfd, wbuf, size, 0) != static_cast<ssize_t>(size))
    die("initial write", errno);

  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (unsigned long t = 0; t < readers; ++t)
    threads.emplace_back([&] {
      const int fd = open(path, O_RDONLY);
      if (fd < 0)
        die(std::string("open ") + path, errno);
      std::vector<unsigned char> buf(size);
      while (!stop.load(std::memory_order_relaxed))
        if (pread(fd, buf.data(), size, 0) < 0)
          die("background read", errno);
      close(fd);
    });

  io_uring ring;
  if (const int err = io_uring_queue_init(4, &ring, 0))
    die("io_uring_queue_init", -err);
  int status = 0;
  for (unsigned long r = 1; r <= rounds && status == 0; ++r) {
    const unsigned char value = r % 2 ? 0xaa : 0x55;
    std::memset(wbuf, value, size);
    ssize_t n;
    if (sync_writes) {
      n = pwrite(dfd, wbuf, size, 0);
      if (n < 0)
        die("pwrite O_DIRECT", errno);
    } else {
      io_uring_sqe *sqe = io_uring_get_sqe(&ring);
      io_uring_prep_write(sqe, dfd, wbuf, static_cast<unsigned>(size), 0);
      if (const int err = io_uring_submit(&ring); err != 1)
        die("io_uring_submit", err < 0 ? -err : EIO);
      io_uring_cqe *cqe;
      if (const int err = io_uring_wait_cqe(&ring, &cqe))
        die("io_uring_wait_cqe", -err);
      n = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
      if (n < 0)
        die("O_DIRECT write", static_cast<int>(-n));
    }
    if (static_cast<unsigned long>(n) != size) {
      std::fprintf(stderr, "pkramfs-aiodio: round %lu: short O_DIRECT write: %zd of %lu bytes\n", r,
                   n, size);
      status = 2;
      break;
    }
    if (const ssize_t got = pread(bfd, rbuf.data(), size, 0); got < 0)
      die("buffered read", errno);
    else if (static_cast<unsigned long>(got) != size)
      die("buffered read: " + std::to_string(got) + " of " + std::to_string(size) + " bytes", EIO);
    for (unsigned long off = 0; off < size; ++off)
      if (rbuf[off] != value) {
        std::fprintf(stderr,
                     "pkramfs-aiodio: round %lu: stale data from a buffered read after the "
                     "O_DIRECT write: byte %lu is 0x%02x, 0x%02x was written\n",
                     r, off, rbuf[off], value);
        status = 1;
        break;
      }
  }
  stop = true;
  for (auto &t : threads)
    t.join();
  io_uring_queue_exit(&ring);
  close(bfd);
  close(dfd);
  if (status == 0)
    std::printf("pkramfs-aiodio: %lu rounds of %lu bytes (%s O_DIRECT writes), every buffered "
                "read-back current\n",
                rounds, size, sync_writes ? "synchronous" : "io_uring");
  return status;
}
