// File objects (storage/object_store.h): a tree whose regular files keep their data in files
// of a private tmpfs, as a mount without a node does for FUSE passthrough. In-process; needs
// CAP_SYS_ADMIN for fsopen (skipped without). Through a mount: semantics.sh (anon mounts),
// difftest.sh with DIFFTEST_BACKEND=anon, fsx.sh's passthrough run, VM scenario s-passthrough.
#include "fs/filesystem.h"
#include "storage/object_store.h"
#include "support/callers.h"
#include "support/filesystem_fixture.h"
#include "support/fs_calls.h"
#include "support/mounted_node.h"
#include "support/temp_dir.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <linux/falloc.h>
#include <string>
#include <unistd.h>
#include <vector>

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
  t->make_objects(true);
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

// A node's file objects (format version 5): the tree says which files are objects (OBJECT
// records, the checkpoint's flag), the store holds their bytes; both come back after a crash
// and after a checkpoint. The node's own store is a tmpfs mounted beside it
// (ObjectStore::attach, through a mount: objects.sh); a private one stands in for it here.
TEST_CASE("restore: a node's file objects survive a crash and a checkpoint", "[objects]") {
  auto store = ObjectStore::create(64 << 20, UINT64_MAX);
  if (!store) {
    WARN("no private tmpfs for objects (" << store.error() << "): skipped; run as root");
    return;
  }
  const ObjectStore &objects = **store;
  const std::string path = temp_node();
  uint64_t obj = 0, arena = 0, open_unlinked = 0;
  {
    Mounted m(path); // an arena file from before objects
    auto a = m.fs->create(kRootIno, "arena", 0644, kRoot);
    REQUIRE(a.ok());
    arena = a->st_ino;
    REQUIRE(m.fs->write(arena, 0, "in the arena", 12, kRoot).ok());
    m.fs->release(arena);
  }
  {
    Mounted m(path, 64 * kMiB, 0, &objects);
    auto f = m.fs->create(kRootIno, "obj", 0644, kRoot);
    REQUIRE(f.ok());
    obj = f->st_ino;
    REQUIRE(m.fs->write(obj, 0, "by the daemon", 13, kRoot).ok());
    const int fd = m.fs->object_fd(obj);
    REQUIRE(fd >= 0);
    CHECK(pwrite(fd, "by the kernel", 13, 1 << 20) == 13); // passthrough
    m.fs->release(obj);
    auto u = m.fs->create(kRootIno, "unlinked", 0644, kRoot);
    REQUIRE(u.ok());
    open_unlinked = u->st_ino;
    REQUIRE(m.fs->unlink(kRootIno, "unlinked").ok()); // open at the crash
    CHECK(m.fs->object_inodes().size() == 2);
    REQUIRE(objects.make(9999).ok()); // a daemon that died before logging its file
    // No checkpoint: the Mounted goes away like a killed daemon.
  }
  const auto check_tree = [&](Filesystem &fs) {
    CHECK(fs.object_inodes().size() == 1);
    CHECK(fs.missing_objects().empty());
    CHECK(fs.getattr(obj)->st_size == (1 << 20) + 13);
    CHECK(read_all(fs, obj).substr(0, 13) == "by the daemon");
    Collect tail; // a read of the kernel's size (max_read): one MiB at most
    REQUIRE(fs.read(obj, 1 << 20, 4096, tail).ok());
    CHECK(tail.bytes == "by the kernel");
    CHECK(read_all(fs, arena) == "in the arena");
    CHECK(fs.object_fd(arena) < 0);
    struct stat st {};
    CHECK(!objects.stat(open_unlinked, st)); // swept with its file
    CHECK(!objects.stat(9999, st));          // swept: no file has it
  };
  {
    Mounted m(path, 64 * kMiB, 0, &objects); // journal replay
    check_tree(*m.fs);
    REQUIRE(m.node->checkpoint(*m.fs).ok());
  }
  {
    Mounted m(path, 64 * kMiB, 0, &objects); // the checkpoint
    check_tree(*m.fs);
  }
  { // without its objects, the node names the files whose data is missing
    std::string why;
    NodeParams params;
    params.limit_blocks = 64 * kMiB / kBlockSize;
    auto opened = Node::open_shm(path, params, why);
    REQUIRE(opened.ok());
    Filesystem fs(std::make_unique<Arena>((*opened)->frames(), (*opened)->data_first_frame(),
                                          (*opened)->limit_blocks()),
                  FsConfig{(*opened)->max_inodes()});
    REQUIRE((*opened)->restore(fs, why).ok());
    CHECK(fs.missing_objects() == std::vector<uint64_t>{obj});
  }
}
