// File objects (storage/object_store.h): a tree whose regular files keep their data in files
// of a private tmpfs, as a mount without a node does for FUSE passthrough. In-process; needs
// CAP_SYS_ADMIN for fsopen (skipped without). Through a mount: semantics.sh (anon mounts),
// difftest.sh with DIFFTEST_BACKEND=anon, fsx.sh's passthrough run, VM scenario s-passthrough.
#include "fs/filesystem.h"
#include "storage/object_store.h"
#include "support/callers.h"
#include "support/filesystem_fixture.h"
#include "support/fs_calls.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <linux/falloc.h>
#include <string>
#include <unistd.h>

using namespace pkramfs;
using namespace pkramfs::test;

TEST_CASE("Filesystem: regular files in objects", "[objects]") {
  auto store = ObjectStore::create(64 << 20, UINT64_MAX);
  if (!store) {
    WARN("no private tmpfs for objects (" << store.error() << "): skipped; run as root");
    return;
  }
  TestFs t;
  t->use_objects(store->get());
  auto f = t->create(kRootIno, "f", 0644, kRoot);
  REQUIRE(f.ok());
  const uint64_t ino = f->st_ino;
  const int fd = t->object_fd(ino);
  REQUIRE(fd >= 0); // open: create() counts an open

  SECTION("data goes to the object and back") {
    REQUIRE(t->write(ino, 4096, "hello", 5, kRoot).ok());
    char buf[5] = {};
    CHECK(pread(fd, buf, 5, 4096) == 5);
    CHECK(std::string(buf, 5) == "hello");
    CHECK(read_all(*t, ino) == std::string(4096, '\0') + "hello");
    // A write the kernel makes itself (passthrough) shows in the attributes.
    CHECK(pwrite(fd, "0123456789", 10, 8192) == 10);
    CHECK(t->getattr(ino)->st_size == 8202);
    CHECK((*store)->used_blocks() >= 2);
  }
  SECTION("truncate, fallocate and lseek are the object's") {
    REQUIRE(t->write(ino, 0, "abc", 3, kRoot).ok());
    SetAttr a;
    a.valid = SetAttr::kSize;
    a.size = 1 << 20;
    REQUIRE(t->setattr(ino, a, kRoot).ok());
    CHECK(t->getattr(ino)->st_size == 1 << 20);
    CHECK(t->lseek(ino, 4096, SEEK_DATA).error() == ENXIO); // a hole to the end
    REQUIRE(t->fallocate(ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096, kRoot).ok());
    CHECK(read_all(*t, ino).substr(0, 3) == std::string(3, '\0'));
    CHECK(t->fallocate(ino, FALLOC_FL_ZERO_RANGE, 0, 4096, kRoot).error() == EOPNOTSUPP);
  }
  SECTION("times set by utimes hold, also into the past") {
    SetAttr a;
    a.valid = SetAttr::kMtime;
    a.mtime = {1000, 5};
    REQUIRE(t->setattr(ino, a, kRoot).ok());
    CHECK(t->getattr(ino)->st_mtim.tv_sec == 1000);
    REQUIRE(t->write(ino, 0, "x", 1, kRoot).ok()); // a write stamps it again
    CHECK(t->getattr(ino)->st_mtim.tv_sec > 1000);
  }
  SECTION("the object goes with the file, and its descriptor with the last close") {
    REQUIRE(t->write(ino, 0, std::string(1 << 20, 'x').data(), 1 << 20, kRoot).ok());
    t->release(ino);
    CHECK(t->object_fd(ino) == -1); // closed, still there
    REQUIRE(t->open(ino, O_RDONLY, kRoot).ok());
    CHECK(read_all(*t, ino).size() == 1 << 20);
    t->release(ino);
    REQUIRE(t->unlink(kRootIno, "f").ok());
    struct stat st {};
    CHECK_FALSE((*store)->stat(ino, st));
    CHECK((*store)->used_blocks() == 0);
  }
}
