// Filesystem: attributes -- the suid/sgid rules of the VFS, extended attributes, timestamps --
// driven directly (no FUSE) over a real anonymous arena.
#include "fs/filesystem.h"
#include "support/filesystem_fixture.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/xattr.h>
#include <map>
#include <set>
#include <string>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <vector>

using namespace pkramfs;
using namespace pkramfs::test;

// ---------------------------------------------------------------------------------------------
// suid/sgid

TEST_CASE("Filesystem: data changes drop suid/sgid as the VFS does", "[fs][privs]") {
  TestFs t;
  Filesystem &fs = *t;
  std::vector<uint64_t> notified;
  fs.on_attributes_changed([&](uint64_t ino) { notified.push_back(ino); });
  int lookups = 0;
  auto caller = [&lookups](uint32_t uid, uint32_t gid, std::vector<uint32_t> groups = {},
                           bool fsetid = false) {
    return caller_with(uid, gid, std::move(groups), fsetid, &lookups);
  };
  const uint64_t f = mkfile(fs, kRootIno, "f", 0755, kUser); // 1000:1000
  auto chmod = [&](uint32_t mode) { REQUIRE(fs.setattr(f, mode_attr(mode), kRootCaller).ok()); };
  auto mode = [&] { return attr(fs, f).st_mode & 07777; };
  auto write_as = [&](const Caller &who) {
    auto r = fs.write(f, 0, "x", 1, who);
    REQUIRE(r.ok());
    CHECK(*r == 1);
  };

  SECTION("a file without them: no credentials looked up, nothing reported") {
    write_as(caller(1000, 1000));
    CHECK(lookups == 0);
    CHECK(notified.empty());
    CHECK(mode() == 0755);
  }
  SECTION("suid always goes, and the change is reported") {
    chmod(04755);
    write_as(caller(1000, 1000));
    CHECK(mode() == 0755);
    CHECK(notified == std::vector<uint64_t>{f});
    CHECK(attr(fs, f).st_mode == (S_IFREG | 0755));
  }
  SECTION("CAP_FSETID keeps both") {
    chmod(06755);
    write_as(caller(2000, 2000, {}, true));
    CHECK(mode() == 06755);
    CHECK(notified.empty());
  }
  SECTION("sgid with group-exec goes") {
    chmod(02775);
    write_as(caller(1000, 1000));
    CHECK(mode() == 0775);
  }
  SECTION("sgid without group-exec stays for a member of the group") {
    chmod(02644);
    write_as(caller(1000, 1000));
    CHECK(mode() == 02644);
    CHECK(notified.empty());
  }
  SECTION("sgid without group-exec stays for a supplementary member") {
    chmod(02644);
    write_as(caller(2000, 2000, {5, 1000}));
    CHECK(mode() == 02644);
  }
  SECTION("sgid without group-exec goes for anyone else") {
    chmod(02644);
    write_as(caller(2000, 2000, {3000}));
    CHECK(mode() == 0644);
    CHECK(notified == std::vector<uint64_t>{f});
  }
  SECTION("a write of nothing drops nothing") {
    chmod(04755);
    REQUIRE(fs.write(f, 0, "", 0, caller(1000, 1000)).ok());
    CHECK(mode() == 04755);
  }
  SECTION("truncate drops them") {
    chmod(04755);
    REQUIRE(fs.setattr(f, size_attr(0), caller(1000, 1000)).ok());
    CHECK(mode() == 0755);
  }
  SECTION("fallocate drops them") {
    chmod(04755);
    REQUIRE(fs.fallocate(f, 0, 0, 100, caller(1000, 1000)).ok());
    CHECK(mode() == 0755);
    CHECK(notified == std::vector<uint64_t>{f});
  }
  SECTION("open with O_TRUNC drops them, a plain open does not") {
    chmod(04755);
    REQUIRE(fs.open(f, O_RDONLY, caller(1000, 1000)).ok());
    CHECK(mode() == 04755);
    REQUIRE(fs.open(f, O_WRONLY | O_TRUNC, caller(1000, 1000)).ok());
    CHECK(mode() == 0755);
    CHECK(notified == std::vector<uint64_t>{f});
    fs.release(f);
    fs.release(f);
  }
  SECTION("copy_file_range drops them on the destination") {
    const uint64_t src = mkfile(fs, kRootIno, "src");
    REQUIRE(write(fs, src, 0, "abc") == 3);
    chmod(04755);
    REQUIRE(fs.copy_file_range(src, 0, f, 0, 3, caller(1000, 1000)).value() == 3);
    CHECK(mode() == 0755);
  }
  SECTION("chmod and reads leave them alone") {
    chmod(06755);
    (void)read(fs, f, 0, 10);
    CHECK(mode() == 06755);
    CHECK(notified.empty());
  }
}

TEST_CASE("Filesystem: chown drops suid/sgid as the VFS does", "[fs][privs]") {
  // With FUSE_HANDLE_KILLPRIV_V2 the kernel leaves this to the daemon (fuse/device_io.h).
  TestFs t;
  Filesystem &fs = *t;
  auto caller = [](uint32_t uid, uint32_t gid, std::vector<uint32_t> groups = {}) {
    return caller_with(uid, gid, std::move(groups), false);
  };
  const uint64_t f = mkfile(fs, kRootIno, "f", 0755, kUser); // 1000:1000
  auto chmod = [&](uint32_t mode) { REQUIRE(fs.setattr(f, mode_attr(mode), kRootCaller).ok()); };
  auto mode = [&] { return attr(fs, f).st_mode & 07777; };
  auto chown = [&](uint64_t ino, uint32_t valid, uint32_t gid, const Caller &who) {
    SetAttr a;
    a.valid = valid;
    a.gid = gid;
    REQUIRE(fs.setattr(ino, a, who).ok());
  };
  const Caller fsetid = caller_with(0, 0, {}, true);

  SECTION("suid goes even with CAP_FSETID, sgid with group-exec too") {
    chmod(06755);
    chown(f, SetAttr::kGid, 1000, fsetid);
    CHECK(mode() == 0755);
  }
  SECTION("sgid without group-exec stays with CAP_FSETID") {
    chmod(02745);
    chown(f, SetAttr::kGid, 1000, fsetid);
    CHECK(mode() == 02745);
  }
  SECTION("sgid without group-exec stays for a member of the file's group") {
    chmod(02745);
    chown(f, SetAttr::kGid, 1000, caller(1000, 1000));
    CHECK(mode() == 02745);
    chown(f, SetAttr::kGid, 1000, caller(1000, 5, {1000}));
    CHECK(mode() == 02745);
  }
  SECTION("sgid without group-exec goes for an owner outside the file's group") {
    chmod(02745);
    chown(f, SetAttr::kGid, 1000, caller(1000, 5, {6}));
    CHECK(mode() == 0745);
  }
  SECTION("chown(-1, -1) arrives with nothing to set and still drops them") {
    chmod(06755);
    chown(f, 0, 0, fsetid);
    CHECK(mode() == 0755);
  }
  SECTION("a directory keeps them") {
    const uint64_t d = mkdir_(fs, kRootIno, "d", 0775);
    REQUIRE(fs.setattr(d, mode_attr(06775), kRootCaller).ok());
    chown(d, SetAttr::kGid, 1000, fsetid);
    CHECK((attr(fs, d).st_mode & 07777) == 06775);
  }
  SECTION("chmod and utimes do not drop them") {
    chmod(06755);
    SetAttr a;
    a.valid = SetAttr::kMtimeNow | SetAttr::kAtimeNow;
    REQUIRE(fs.setattr(f, a, caller(1000, 1000)).ok());
    CHECK(mode() == 06755);
  }
}

// ---------------------------------------------------------------------------------------------
// Extended attributes

TEST_CASE("Filesystem: extended attributes", "[fs][xattr]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t f = mkfile(fs, kRootIno, "f");

  SECTION("namespaces") {
    CHECK(fs.setxattr(f, "foo.bar", "v", 0).error() == EOPNOTSUPP);
    CHECK(fs.getxattr(f, "foo.bar").error() == EOPNOTSUPP);
    CHECK(fs.removexattr(f, "foo.bar").error() == EOPNOTSUPP);
    CHECK(fs.setxattr(f, "user", "v", 0).error() == EOPNOTSUPP);
    CHECK(fs.setxattr(f, "user.", "v", 0).error() == EINVAL);
    CHECK(fs.getxattr(f, "user.").error() == EINVAL);
    CHECK(fs.removexattr(f, "user.").error() == EINVAL);
    CHECK(fs.setxattr(f, "trusted.", "v", 0).error() == EINVAL);
    CHECK(fs.listxattr(f, kAdmin).value().empty());
    CHECK(fs.setxattr(f, "user.a", "1", 0).ok());
    CHECK(fs.setxattr(f, "trusted.t", "2", 0).ok());
    CHECK(fs.setxattr(f, "security.s", "3", 0).ok());
  }
  SECTION("create and replace flags") {
    REQUIRE(fs.setxattr(f, "user.a", "one", 0).ok());
    CHECK(fs.getxattr(f, "user.a").value() == "one");
    CHECK(fs.setxattr(f, "user.a", "two", XATTR_CREATE).error() == EEXIST);
    CHECK(fs.getxattr(f, "user.a").value() == "one");
    CHECK(fs.setxattr(f, "user.b", "two", XATTR_REPLACE).error() == ENODATA);
    CHECK(fs.getxattr(f, "user.b").error() == ENODATA);
    CHECK(fs.setxattr(f, "user.a", "two", XATTR_REPLACE).ok());
    CHECK(fs.getxattr(f, "user.a").value() == "two");
    CHECK(fs.setxattr(f, "user.c", "three", XATTR_CREATE).ok());
    CHECK(fs.setxattr(f, "user.a", "x", 4).error() == EINVAL);
    CHECK(fs.getxattr(f, "user.a").value() == "two");
    CHECK(fs.setxattr(999999, "user.a", "x", 0).error() == ENOENT);
    CHECK(fs.getxattr(999999, "user.a").error() == ENOENT);
    CHECK(fs.listxattr(999999, kUser).error() == ENOENT);
  }
  SECTION("binary values") {
    const std::string v("\0\1\2\xff", 4);
    REQUIRE(fs.setxattr(f, "user.bin", v, 0).ok());
    CHECK(fs.getxattr(f, "user.bin").value() == v);
  }
  SECTION("capabilities are looked up only when a trusted.* name is there to hide") {
    int lookups = 0;
    const Caller counted{1000, 1000, [&lookups] {
                           ++lookups;
                           return Credentials{};
                         }};
    REQUIRE(fs.setxattr(f, "user.a", "1", 0).ok());
    CHECK(fs.listxattr(f, counted).value() == std::string("user.a\0", 7));
    CHECK(lookups == 0);
    REQUIRE(fs.setxattr(f, "trusted.t", "2", 0).ok());
    REQUIRE(fs.setxattr(f, "trusted.u", "3", 0).ok());
    CHECK(fs.listxattr(f, counted).value() == std::string("user.a\0", 7));
    CHECK(lookups == 1);
  }
  SECTION("trusted.* is listed only to CAP_SYS_ADMIN") {
    REQUIRE(fs.setxattr(f, "user.a", "1", 0).ok());
    REQUIRE(fs.setxattr(f, "trusted.t", "secret", 0).ok());
    REQUIRE(fs.setxattr(f, "security.s", "label", 0).ok());
    CHECK(fs.listxattr(f, kUser).value() == std::string("user.a\0security.s\0", 18));
    CHECK(fs.listxattr(f, kAdmin).value() == std::string("user.a\0trusted.t\0security.s\0", 28));
    // getxattr of trusted.* is refused by the VFS before it reaches us.
    CHECK(fs.getxattr(f, "trusted.t").value() == "secret");
    CHECK(fs.getxattr(f, "security.s").value() == "label");
  }
  SECTION("remove") {
    REQUIRE(fs.setxattr(f, "user.a", "1", 0).ok());
    REQUIRE(fs.setxattr(f, "user.b", "2", 0).ok());
    REQUIRE(fs.removexattr(f, "user.a").ok());
    CHECK(fs.getxattr(f, "user.a").error() == ENODATA);
    CHECK(fs.removexattr(f, "user.a").error() == ENODATA);
    CHECK(fs.removexattr(f, "user.zzz").error() == ENODATA);
    CHECK(fs.listxattr(f, kUser).value() == std::string("user.b\0", 7));
  }
  SECTION("directories and symlinks carry them too") {
    const uint64_t d = mkdir_(fs, kRootIno, "d");
    REQUIRE(fs.setxattr(d, "user.d", "dir", 0).ok());
    CHECK(fs.getxattr(d, "user.d").value() == "dir");
    CHECK(fs.getxattr(f, "user.d").error() == ENODATA);
    auto s = fs.symlink(kRootIno, "s", "f", kRootCaller);
    REQUIRE(s.ok());
    REQUIRE(fs.setxattr(s->st_ino, "trusted.x", "lnk", 0).ok());
    CHECK(fs.getxattr(s->st_ino, "trusted.x").value() == "lnk");
  }
}

// ---------------------------------------------------------------------------------------------
// Timestamps

TEST_CASE("Filesystem: timestamps change where tmpfs changes them", "[fs][time]") {
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t a = mkdir_(fs, kRootIno, "a");
  const uint64_t b = mkdir_(fs, kRootIno, "b");
  const uint64_t f = mkfile(fs, a, "f");
  REQUIRE(write(fs, f, 0, "data") == 4);
  REQUIRE(fs.setxattr(f, "user.x", "1", 0).ok());

  const auto root0 = attr(fs, kRootIno), a0 = attr(fs, a), b0 = attr(fs, b), f0 = attr(fs, f);
  tick();

  SECTION("a new node has all three times equal and its parent's mtime/ctime move") {
    auto g = fs.mknod(a, "g", S_IFREG | 0644, 0, kUser);
    REQUIRE(g.ok());
    CHECK(same(g->st_atim, g->st_mtim));
    CHECK(same(g->st_mtim, g->st_ctim));
    CHECK(later(g->st_mtim, f0.st_mtim));
    const auto a1 = attr(fs, a);
    CHECK(later(a1.st_mtim, a0.st_mtim));
    CHECK(later(a1.st_ctim, a0.st_ctim));
    CHECK(same(a1.st_atim, a0.st_atim));
    CHECK(same(attr(fs, kRootIno).st_mtim, root0.st_mtim));
    CHECK(same(attr(fs, b).st_mtim, b0.st_mtim));
  }
  SECTION("mkdir and symlink move the parent's mtime/ctime too") {
    mkdir_(fs, a, "sub");
    const auto a1 = attr(fs, a);
    CHECK(later(a1.st_mtim, a0.st_mtim));
    tick();
    REQUIRE(fs.symlink(b, "s", "x", kRootCaller).ok());
    CHECK(later(attr(fs, b).st_mtim, b0.st_mtim));
    CHECK(later(attr(fs, b).st_ctim, b0.st_ctim));
  }
  SECTION("failed creates change nothing") {
    CHECK(fs.mknod(a, "f", S_IFREG | 0644, 0, kUser).error() == EEXIST);
    CHECK(fs.mkdir(a, "f", 0755, kUser).error() == EEXIST);
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
    CHECK(same(attr(fs, a).st_ctim, a0.st_ctim));
  }
  SECTION("unlink moves the parent's mtime/ctime and the inode's ctime, not its mtime") {
    REQUIRE(fs.unlink(a, "f").ok());
    const auto a1 = attr(fs, a), f1 = attr(fs, f);
    CHECK(later(a1.st_mtim, a0.st_mtim));
    CHECK(later(a1.st_ctim, a0.st_ctim));
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(same(attr(fs, kRootIno).st_mtim, root0.st_mtim));
  }
  SECTION("rmdir moves the parent's mtime/ctime") {
    REQUIRE(fs.rmdir(kRootIno, "b").ok());
    CHECK(later(attr(fs, kRootIno).st_mtim, root0.st_mtim));
    CHECK(later(attr(fs, kRootIno).st_ctim, root0.st_ctim));
    CHECK(later(attr(fs, b).st_ctim, b0.st_ctim));
  }
  SECTION("rename moves both parents' mtime/ctime and the inode's ctime, not its mtime") {
    REQUIRE(fs.rename(a, "f", b, "f", 0, kRootCaller).ok());
    const auto a1 = attr(fs, a), b1 = attr(fs, b), f1 = attr(fs, f);
    CHECK(later(a1.st_mtim, a0.st_mtim));
    CHECK(later(a1.st_ctim, a0.st_ctim));
    CHECK(later(b1.st_mtim, b0.st_mtim));
    CHECK(later(b1.st_ctim, b0.st_ctim));
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(same(attr(fs, kRootIno).st_mtim, root0.st_mtim));
  }
  SECTION("rename within one directory moves its mtime/ctime") {
    REQUIRE(fs.rename(a, "f", a, "g", 0, kRootCaller).ok());
    CHECK(later(attr(fs, a).st_mtim, a0.st_mtim));
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));
    CHECK(same(attr(fs, b).st_mtim, b0.st_mtim));
  }
  SECTION("rename over a file moves the replaced inode's ctime") {
    const uint64_t g = mkfile(fs, b, "g");
    const auto g0 = attr(fs, g);
    tick();
    REQUIRE(fs.rename(a, "f", b, "g", 0, kRootCaller).ok());
    CHECK(later(attr(fs, g).st_ctim, g0.st_ctim));
    CHECK(same(attr(fs, g).st_mtim, g0.st_mtim));
  }
  SECTION("rename exchange moves both parents and both inodes' ctime") {
    const uint64_t g = mkfile(fs, b, "g");
    const auto g0 = attr(fs, g);
    const auto b1 = attr(fs, b);
    tick();
    REQUIRE(fs.rename(a, "f", b, "g", RENAME_EXCHANGE, kRootCaller).ok());
    CHECK(later(attr(fs, a).st_mtim, a0.st_mtim));
    CHECK(later(attr(fs, b).st_mtim, b1.st_mtim));
    CHECK(later(attr(fs, b).st_ctim, b1.st_ctim));
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));
    CHECK(later(attr(fs, g).st_ctim, g0.st_ctim));
    CHECK(same(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(same(attr(fs, g).st_mtim, g0.st_mtim));
  }
  SECTION("a rename between two names of one inode changes nothing") {
    REQUIRE(fs.link(f, b, "l").ok());
    const auto a1 = attr(fs, a), b1 = attr(fs, b), f1 = attr(fs, f);
    tick();
    REQUIRE(fs.rename(a, "f", b, "l", 0, kRootCaller).ok());
    CHECK(same(attr(fs, a).st_mtim, a1.st_mtim));
    CHECK(same(attr(fs, b).st_mtim, b1.st_mtim));
    CHECK(same(attr(fs, f).st_ctim, f1.st_ctim));
  }
  SECTION("link moves the inode's ctime and the new parent's mtime/ctime") {
    REQUIRE(fs.link(f, b, "l").ok());
    const auto f1 = attr(fs, f), b1 = attr(fs, b);
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(later(b1.st_mtim, b0.st_mtim));
    CHECK(later(b1.st_ctim, b0.st_ctim));
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
  }
  SECTION("chmod and chown move ctime only") {
    REQUIRE(fs.setattr(f, mode_attr(0600), kRootCaller).ok());
    const auto f1 = attr(fs, f);
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(same(f1.st_atim, f0.st_atim));
    CHECK((f1.st_mode & 07777) == 0600);
    CHECK(S_ISREG(f1.st_mode));
    tick();
    SetAttr own;
    own.valid = SetAttr::kUid | SetAttr::kGid;
    own.uid = 7;
    own.gid = 8;
    REQUIRE(fs.setattr(f, own, kRootCaller).ok());
    const auto f2 = attr(fs, f);
    CHECK(later(f2.st_ctim, f1.st_ctim));
    CHECK(same(f2.st_mtim, f0.st_mtim));
    CHECK(f2.st_uid == 7u);
    CHECK(f2.st_gid == 8u);
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
  }
  SECTION("explicit times are stored and move ctime") {
    SetAttr st;
    st.valid = SetAttr::kAtime | SetAttr::kMtime;
    st.atime = {1000, 1};
    st.mtime = {2000, 2};
    REQUIRE(fs.setattr(f, st, kRootCaller).ok());
    const auto f1 = attr(fs, f);
    CHECK(same(f1.st_atim, timespec{1000, 1}));
    CHECK(same(f1.st_mtim, timespec{2000, 2}));
    CHECK(later(f1.st_ctim, f0.st_ctim));
    SetAttr now;
    now.valid = SetAttr::kMtimeNow;
    REQUIRE(fs.setattr(f, now, kRootCaller).ok());
    CHECK(later(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(same(attr(fs, f).st_atim, timespec{1000, 1}));
  }
  SECTION("setxattr and removexattr move ctime only; failures change nothing") {
    CHECK(fs.setxattr(f, "user.x", "2", XATTR_CREATE).error() == EEXIST);
    CHECK(fs.removexattr(f, "user.nope").error() == ENODATA);
    CHECK(same(attr(fs, f).st_ctim, f0.st_ctim));
    REQUIRE(fs.setxattr(f, "user.y", "1", 0).ok());
    const auto f1 = attr(fs, f);
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    tick();
    REQUIRE(fs.removexattr(f, "user.y").ok());
    CHECK(later(attr(fs, f).st_ctim, f1.st_ctim));
    CHECK(same(attr(fs, f).st_mtim, f0.st_mtim));
  }
  SECTION("write moves the file's mtime/ctime, not its parent's") {
    REQUIRE(write(fs, f, 100, "more") == 4);
    const auto f1 = attr(fs, f);
    CHECK(later(f1.st_mtim, f0.st_mtim));
    CHECK(later(f1.st_ctim, f0.st_ctim));
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
  }
  SECTION("truncate to a new size moves mtime/ctime") {
    REQUIRE(fs.setattr(f, size_attr(2), kRootCaller).ok());
    CHECK(later(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
  }
  SECTION("truncate to the same size: tmpfs stamps only a file that holds blocks") {
    // shmem_setattr() skips the times at the same size, but shmem_truncate_range(), which it
    // runs whenever the file has pages, stamps them.
    REQUIRE(fs.setattr(f, size_attr(4), kRootCaller).ok());
    CHECK(later(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));

    const uint64_t sparse = mkfile(fs, a, "sparse");
    REQUIRE(fs.setattr(sparse, size_attr(100000), kRootCaller).ok());
    const auto s0 = attr(fs, sparse);
    REQUIRE(s0.st_blocks == 0);
    tick();
    REQUIRE(fs.setattr(sparse, size_attr(100000), kRootCaller).ok());
    CHECK(same(attr(fs, sparse).st_mtim, s0.st_mtim));
    CHECK(same(attr(fs, sparse).st_ctim, s0.st_ctim));

    SECTION("ftruncate to the same size stamps both anyway") {
      SetAttr ft = size_attr(100000);
      ft.valid |= SetAttr::kThroughFile;
      REQUIRE(fs.setattr(sparse, ft, kRootCaller).ok());
      CHECK(later(attr(fs, sparse).st_mtim, s0.st_mtim));
      CHECK(later(attr(fs, sparse).st_ctim, s0.st_ctim));
      CHECK(attr(fs, sparse).st_size == 100000);
    }
  }

  SECTION("open with O_TRUNC empties the file and stamps mtime/ctime, even if empty") {
    REQUIRE(fs.open(f, O_WRONLY | O_TRUNC, kRootCaller).ok());
    CHECK(attr(fs, f).st_size == 0);
    CHECK(alloc_blocks(fs, f) == 0);
    CHECK(later(attr(fs, f).st_mtim, f0.st_mtim));
    const auto f1 = attr(fs, f);
    tick();
    REQUIRE(fs.open(f, O_WRONLY | O_TRUNC, kRootCaller).ok());
    CHECK(later(attr(fs, f).st_mtim, f1.st_mtim));
    CHECK(later(attr(fs, f).st_ctim, f1.st_ctim));
    fs.release(f);
    fs.release(f);
    CHECK(same(attr(fs, a).st_mtim, a0.st_mtim));
  }
  SECTION("open without O_TRUNC changes nothing") {
    REQUIRE(fs.open(f, O_RDONLY, kRootCaller).ok());
    fs.release(f);
    CHECK(attr(fs, f).st_size == 4);
    CHECK(same(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(same(attr(fs, f).st_ctim, f0.st_ctim));
  }
  SECTION("a setattr with nothing to set (chown -1 -1) stamps ctime only") {
    REQUIRE(fs.setattr(f, SetAttr{}, kRootCaller).ok());
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));
    CHECK(same(attr(fs, f).st_mtim, f0.st_mtim));
  }
  SECTION("punching a hole moves mtime/ctime") {
    REQUIRE(fs.fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2, kRootCaller).ok());
    CHECK(later(attr(fs, f).st_mtim, f0.st_mtim));
    CHECK(later(attr(fs, f).st_ctim, f0.st_ctim));
  }
  SECTION("lookups, reads and listings change no mtime or ctime") {
    REQUIRE(fs.lookup(a, "f").ok());
    (void)read(fs, f, 0, 10);
    (void)readdir(fs, a);
    (void)readdir(fs, a, 0, SIZE_MAX, true);
    REQUIRE(fs.getxattr(f, "user.x").ok());
    REQUIRE(fs.listxattr(f, kUser).ok());
    REQUIRE(fs.lseek(f, 0, SEEK_HOLE).ok());
    REQUIRE(fs.open(f, O_RDONLY, kRootCaller).ok());
    fs.release(f);
    const auto a1 = attr(fs, a), f1 = attr(fs, f);
    CHECK(same(a1.st_mtim, a0.st_mtim));
    CHECK(same(a1.st_ctim, a0.st_ctim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(same(f1.st_ctim, f0.st_ctim));
  }
  SECTION("reads move atime the first time after a change (relatime)") {
    (void)read(fs, f, 0, 10);
    const auto f1 = attr(fs, f);
    CHECK(later(f1.st_atim, f0.st_atim));
    CHECK(same(f1.st_mtim, f0.st_mtim));
    CHECK(same(f1.st_ctim, f0.st_ctim));
    tick();
    (void)read(fs, f, 0, 10);
    CHECK(same(attr(fs, f).st_atim, f1.st_atim));
    tick();
    REQUIRE(write(fs, f, 0, "x") == 1);
    tick();
    (void)read(fs, f, 0, 10);
    CHECK(later(attr(fs, f).st_atim, f1.st_atim));
  }
}

TEST_CASE("Filesystem: readdir and readlink move atime like reads (relatime)", "[fs][time]") {
  // On tmpfs iterate_dir() and readlink() call touch_atime(); FUSE inodes are S_NOATIME in
  // the kernel, so the filesystem itself has to do it, as read() here does.
  TestFs t;
  Filesystem &fs = *t;
  const uint64_t d = mkdir_(fs, kRootIno, "d");
  auto s = fs.symlink(kRootIno, "s", "target", kRootCaller);
  REQUIRE(s.ok());
  const auto d0 = attr(fs, d), s0 = attr(fs, s->st_ino);
  tick();

  SECTION("readdir") {
    (void)readdir(fs, d);
    CHECK(later(attr(fs, d).st_atim, d0.st_atim));
    CHECK(same(attr(fs, d).st_mtim, d0.st_mtim));
  }
  SECTION("readlink") {
    REQUIRE(fs.readlink(s->st_ino).ok());
    CHECK(later(attr(fs, s->st_ino).st_atim, s0.st_atim));
    CHECK(same(attr(fs, s->st_ino).st_mtim, s0.st_mtim));
  }
}
