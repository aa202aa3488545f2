// POSIX ACLs (backend/fs/posix_acl.h) and the Filesystem rules built on them, as tmpfs with
// CONFIG_TMPFS_POSIX_ACL has them: validation (posix_acl_from_xattr, posix_acl_valid), mode and
// access ACL in step both ways (posix_acl_update_mode, posix_acl_chmod), inheritance
// (posix_acl_create), and all of it through the journal and a checkpoint.
#include "fs/filesystem.h"
#include "fs/posix_acl.h"
#include "support/anon_fs.h"
#include "support/callers.h"
#include "support/mounted_node.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <linux/xattr.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using namespace pkramfs;
using namespace pkramfs::test;

namespace {

constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10,
                   kOther = 0x20;
constexpr uint32_t kNone = 0xFFFFFFFFu; // ACL_UNDEFINED_ID

struct E {
  uint16_t tag, perm;
  uint32_t id = kNone;
};

// The xattr form (little endian), as setfacl hands it to setxattr(2).
std::string xattr(std::initializer_list<E> entries, uint32_t version = 2) {
  std::string v;
  auto put = [&](uint64_t x, int bytes) {
    for (int i = 0; i < bytes; ++i)
      v.push_back(static_cast<char>((x >> (8 * i)) & 0xFF));
  };
  put(version, 4);
  for (const E &e : entries) {
    put(e.tag, 2);
    put(e.perm, 2);
    put(e.id, 4);
  }
  return v;
}

// user::rw- user:1000:rwx group::r-- mask::rwx other::---
const std::string kNamedUser =
    xattr({{kUserObj, 6}, {kUser, 7, 1000}, {kGroupObj, 4}, {kMask, 7}, {kOther, 0}});

int acl_errno(std::string_view value) {
  auto r = canonical_acl(value);
  return r ? 0 : r.error();
}

// A Filesystem over a small anonymous arena (four frames).
struct TestFs : pkramfs::test::AnonFs {
  TestFs() : AnonFs(4 * kFrameSize) {}
};

uint32_t mode_of(Filesystem &fs, uint64_t ino) {
  auto st = fs.getattr(ino);
  REQUIRE(st.ok());
  return st->st_mode & 07777;
}

std::string acl_of(Filesystem &fs, uint64_t ino, std::string_view name = kAclAccess) {
  auto v = fs.getxattr(ino, name);
  return v ? *v : std::string("ENODATA");
}

} // namespace

TEST_CASE("posix_acl: values are checked as posix_acl_from_xattr and posix_acl_valid do",
          "[acl]") {
  CHECK(acl_errno(kNamedUser) == 0);
  // Malformed: shorter than the header, a partial entry.
  CHECK(acl_errno(std::string("\2\0", 2)) == EINVAL);
  CHECK(acl_errno(kNamedUser + "x") == EINVAL);
  // Another version.
  CHECK(acl_errno(xattr({{kUserObj, 7}, {kGroupObj, 5}, {kOther, 5}}, 1)) == EOPNOTSUPP);
  // Invalid: a named entry without a mask, a permission beyond rwx, an unknown tag, a named
  // entry with the undefined id, entries out of order, one missing, one twice.
  CHECK(acl_errno(xattr({{kUserObj, 7}, {kUser, 5, 7}, {kGroupObj, 5}, {kOther, 5}})) == EINVAL);
  CHECK(acl_errno(xattr({{kUserObj, 8}, {kGroupObj, 5}, {kOther, 5}})) == EINVAL);
  CHECK(acl_errno(xattr({{kUserObj, 7}, {0x03, 5}, {kGroupObj, 5}, {kOther, 5}})) == EINVAL);
  CHECK(acl_errno(xattr({{kUserObj, 7}, {kUser, 5}, {kGroupObj, 5}, {kMask, 5}, {kOther, 5}})) ==
        EINVAL);
  CHECK(acl_errno(xattr({{kGroupObj, 5}, {kUserObj, 7}, {kOther, 5}})) == EINVAL);
  CHECK(acl_errno(xattr({{kUserObj, 7}, {kGroupObj, 5}})) == EINVAL);
  CHECK(acl_errno(xattr({{kUserObj, 7}, {kUserObj, 7}, {kGroupObj, 5}, {kOther, 5}})) == EINVAL);
  CHECK(acl_errno(xattr({{kUserObj, 7}, {kGroupObj, 5}, {kOther, 5}, {kMask, 5}})) == EINVAL);
  CHECK(acl_errno(xattr({{kUserObj, 7}, {kGroupObj, 5}, {kGroup, 5, 3}, {kUser, 5, 2}, {kMask, 5},
                         {kOther, 5}})) == EINVAL);

  SECTION("no value, or a header alone, is no ACL") {
    CHECK(canonical_acl("").value().empty());
    CHECK(canonical_acl(xattr({})).value().empty());
  }
  SECTION("the ids of the class entries are written as -1, named ones are kept") {
    auto r = canonical_acl(xattr({{kUserObj, 6, 5}, {kUser, 4, 42}, {kGroupObj, 4, 5},
                                  {kMask, 4, 9}, {kOther, 0, 7}}));
    REQUIRE(r.ok());
    CHECK(*r == xattr({{kUserObj, 6}, {kUser, 4, 42}, {kGroupObj, 4}, {kMask, 4}, {kOther, 0}}));
  }
  SECTION("named entries unsorted or repeated pass, as the kernel takes them") {
    const std::string v = xattr({{kUserObj, 7}, {kUser, 5, 7}, {kUser, 5, 3}, {kUser, 4, 3},
                                 {kGroupObj, 5}, {kMask, 5}, {kOther, 5}});
    CHECK(canonical_acl(v).value() == v);
  }
  SECTION("acl_fits: canonical, default ACLs on directories only, none on symlinks") {
    CHECK(acl_fits(kAclAccess, kNamedUser, S_IFREG | 0674));
    CHECK(acl_fits(kAclDefault, kNamedUser, S_IFDIR | 0755));
    CHECK_FALSE(acl_fits(kAclDefault, kNamedUser, S_IFREG | 0644));
    CHECK_FALSE(acl_fits(kAclAccess, kNamedUser, S_IFLNK | 0777));
    CHECK_FALSE(acl_fits(kAclAccess, xattr({}), S_IFREG | 0644));
    CHECK_FALSE(acl_fits(kAclAccess, xattr({{kUserObj, 6, 0}, {kGroupObj, 4}, {kOther, 4}}),
                         S_IFREG | 0644));
  }
}

TEST_CASE("posix_acl: mode from an ACL, chmod of an ACL, inheritance", "[acl]") {
  SECTION("acl_mode: the mask is the group class; only mask or named entries extend") {
    CHECK(acl_mode(kNamedUser).permissions == 0670);
    CHECK(acl_mode(kNamedUser).extended);
    const AclMode plain = acl_mode(xattr({{kUserObj, 7}, {kGroupObj, 5}, {kOther, 1}}));
    CHECK(plain.permissions == 0751);
    CHECK_FALSE(plain.extended);
    CHECK(acl_mode(xattr({{kUserObj, 7}, {kGroupObj, 5}, {kMask, 1}, {kOther, 0}})).extended);
  }
  SECTION("chmod_acl: owner, mask and other follow the mode; named entries and group stay") {
    std::string acl = kNamedUser;
    chmod_acl(acl, S_IFREG | 04751);
    CHECK(acl == xattr({{kUserObj, 7}, {kUser, 7, 1000}, {kGroupObj, 4}, {kMask, 5}, {kOther, 1}}));
  }
  SECTION("chmod_acl without a mask sets group") {
    std::string acl = xattr({{kUserObj, 7}, {kGroupObj, 5}, {kOther, 5}});
    chmod_acl(acl, 0640);
    CHECK(acl == xattr({{kUserObj, 6}, {kGroupObj, 4}, {kOther, 0}}));
  }
  SECTION("inherit_acl: the default ACL masked by the mode, the mode by the ACL") {
    const std::string def = xattr({{kUserObj, 7}, {kUser, 7, 1000}, {kGroupObj, 5}, {kMask, 7},
                                   {kOther, 5}});
    std::string access;
    CHECK(inherit_acl(def, S_IFREG | 0640, access) == (S_IFREG | 0640));
    CHECK(access == xattr({{kUserObj, 6}, {kUser, 7, 1000}, {kGroupObj, 5}, {kMask, 4},
                           {kOther, 0}}));
    // Idempotent: the masked mode gives the same ACL (replay relies on it).
    std::string again;
    CHECK(inherit_acl(def, S_IFREG | 0640, again) == (S_IFREG | 0640));
    CHECK(again == access);
    // The default ACL narrows the mode too.
    const std::string narrow = xattr({{kUserObj, 6}, {kGroupObj, 4}, {kOther, 0}});
    CHECK(inherit_acl(narrow, S_IFDIR | 02777, access) == (S_IFDIR | 02640));
    CHECK(access.empty()); // says no more than the mode: no access ACL
  }
}

TEST_CASE("Filesystem: an access ACL and the mode stay in step", "[acl]") {
  TestFs t;
  Filesystem &fs = *t.fs;
  auto f = fs.create(kRootIno, "f", 0600, kRoot);
  REQUIRE(f.ok());
  const uint64_t ino = f->st_ino;
  fs.release(ino);

  REQUIRE(fs.setxattr(ino, kAclAccess, kNamedUser, 0).ok());
  CHECK(mode_of(fs, ino) == 0670); // posix_acl_update_mode
  CHECK(acl_of(fs, ino) == kNamedUser);

  SECTION("chmod rewrites owner, mask and other (posix_acl_chmod)") {
    SetAttr a;
    a.valid = SetAttr::kMode;
    a.mode = 0741;
    REQUIRE(fs.setattr(ino, a, kRoot).ok());
    CHECK(acl_of(fs, ino) ==
          xattr({{kUserObj, 7}, {kUser, 7, 1000}, {kGroupObj, 4}, {kMask, 4}, {kOther, 1}}));
  }
  SECTION("an ACL the mode can say alone sets the mode and is not kept") {
    REQUIRE(fs.setxattr(ino, kAclAccess, xattr({{kUserObj, 7}, {kGroupObj, 5}, {kOther, 1}}), 0)
                .ok());
    CHECK(mode_of(fs, ino) == 0751);
    CHECK(acl_of(fs, ino) == "ENODATA");
    CHECK(fs.listxattr(ino, kRoot).value().empty());
  }
  SECTION("removing it keeps the mode; removing a missing one succeeds and stamps ctime") {
    REQUIRE(fs.removexattr(ino, kAclAccess).ok());
    CHECK(mode_of(fs, ino) == 0670);
    CHECK(acl_of(fs, ino) == "ENODATA");
    const timespec before = fs.getattr(ino)->st_ctim;
    usleep(2000);
    CHECK(fs.removexattr(ino, kAclAccess).ok());
    const timespec after = fs.getattr(ino)->st_ctim;
    CHECK((after.tv_sec != before.tv_sec || after.tv_nsec != before.tv_nsec));
    CHECK(fs.removexattr(ino, kAclDefault).ok()); // a file's default ACL: nothing to do
  }
  SECTION("errors: EINVAL, EOPNOTSUPP, a default ACL on a file EACCES") {
    CHECK(fs.setxattr(ino, kAclAccess, kNamedUser + "x", 0).error() == EINVAL);
    CHECK(fs.setxattr(ino, kAclAccess, xattr({{kUserObj, 7}, {kGroupObj, 5}, {kOther, 5}}, 3), 0)
              .error() == EOPNOTSUPP);
    CHECK(fs.setxattr(ino, kAclDefault, kNamedUser, 0).error() == EACCES);
    CHECK(fs.setxattr(ino, "system.foo", "x", 0).error() == EOPNOTSUPP);
    CHECK(acl_of(fs, ino) == kNamedUser); // unchanged
  }
  SECTION("XATTR_CREATE and XATTR_REPLACE do not apply to ACLs (vfs_set_acl)") {
    CHECK(fs.setxattr(ino, kAclAccess, kNamedUser, XATTR_CREATE).ok());
    REQUIRE(fs.removexattr(ino, kAclAccess).ok());
    CHECK(fs.setxattr(ino, kAclAccess, kNamedUser, XATTR_REPLACE).ok());
  }
  SECTION("listed first, access before default") {
    auto d = fs.mkdir(kRootIno, "d", 0755, kRoot);
    REQUIRE(d.ok());
    REQUIRE(fs.setxattr(d->st_ino, "user.x", "1", 0).ok());
    REQUIRE(fs.setxattr(d->st_ino, kAclDefault, kNamedUser, 0).ok());
    REQUIRE(fs.setxattr(d->st_ino, kAclAccess, kNamedUser, 0).ok());
    CHECK(fs.listxattr(d->st_ino, kRoot).value() ==
          std::string("system.posix_acl_access\0system.posix_acl_default\0user.x\0", 56));
  }
  SECTION("without FUSE_POSIX_ACL the names are EOPNOTSUPP") {
    fs.set_posix_acl(false);
    CHECK(fs.setxattr(ino, kAclAccess, kNamedUser, 0).error() == EOPNOTSUPP);
    CHECK(fs.getxattr(ino, kAclAccess).error() == EOPNOTSUPP);
    CHECK(fs.removexattr(ino, kAclAccess).error() == EOPNOTSUPP);
  }
  SECTION("a symlink takes none") {
    auto s = fs.symlink(kRootIno, "s", "f", kRoot);
    REQUIRE(s.ok());
    CHECK(fs.setxattr(s->st_ino, kAclAccess, kNamedUser, 0).error() == EOPNOTSUPP);
    CHECK(fs.removexattr(s->st_ino, kAclAccess).error() == EOPNOTSUPP);
  }
}

TEST_CASE("Filesystem: setting an access ACL drops sgid for a caller outside the group",
          "[acl]") {
  TestFs t;
  Filesystem &fs = *t.fs;
  const Caller owner{1000, 1000};
  auto f = fs.mknod(kRootIno, "f", S_IFREG | 02770, 0, Caller{1000, 2000}); // group 2000
  REQUIRE(f.ok());
  REQUIRE(mode_of(fs, f->st_ino) == 02770);

  SECTION("in the group (supplementary): kept") {
    const Caller member{1000, 1000, [] { return Credentials{.groups = {2000}}; }};
    REQUIRE(fs.setxattr(f->st_ino, kAclAccess, kNamedUser, 0, member).ok());
    CHECK(mode_of(fs, f->st_ino) == 02670);
  }
  SECTION("with CAP_FSETID: kept") {
    const Caller capable{1000, 1000, [] { return Credentials{.groups = {}, .cap_fsetid = true}; }};
    REQUIRE(fs.setxattr(f->st_ino, kAclAccess, kNamedUser, 0, capable).ok());
    CHECK(mode_of(fs, f->st_ino) == 02670);
  }
  SECTION("otherwise: dropped, also by an ACL the mode says alone") {
    REQUIRE(fs.setxattr(f->st_ino, kAclAccess, xattr({{kUserObj, 7}, {kGroupObj, 5}, {kOther, 0}}),
                        0, owner)
                .ok());
    CHECK(mode_of(fs, f->st_ino) == 0750);
  }
}

TEST_CASE("Filesystem: new inodes inherit the parent's default ACL (posix_acl_create)",
          "[acl]") {
  TestFs t;
  Filesystem &fs = *t.fs;
  const Caller umask022{0, 0, [] { return Credentials{}; }, 022};
  auto d = fs.mkdir(kRootIno, "d", 0755, kRoot);
  REQUIRE(d.ok());
  // default: user::rwx user:1000:rwx group::r-x mask::rwx other::r-x
  const std::string def =
      xattr({{kUserObj, 7}, {kUser, 7, 1000}, {kGroupObj, 5}, {kMask, 7}, {kOther, 5}});
  REQUIRE(fs.setxattr(d->st_ino, kAclDefault, def, 0).ok());

  SECTION("a file: the default masked by the mode, no umask, no default of its own") {
    auto f = fs.create(d->st_ino, "f", 0664, umask022);
    REQUIRE(f.ok());
    CHECK((f->st_mode & 07777) == 0664); // not 0644: the umask does not apply
    CHECK(acl_of(fs, f->st_ino) ==
          xattr({{kUserObj, 6}, {kUser, 7, 1000}, {kGroupObj, 5}, {kMask, 6}, {kOther, 4}}));
    CHECK(acl_of(fs, f->st_ino, kAclDefault) == "ENODATA");
  }
  SECTION("a directory gets both, and passes the default on") {
    auto sub = fs.mkdir(d->st_ino, "sub", 0750, umask022);
    REQUIRE(sub.ok());
    CHECK((sub->st_mode & 07777) == 0750);
    CHECK(acl_of(fs, sub->st_ino, kAclDefault) == def);
    auto nested = fs.mkdir(sub->st_ino, "nested", 0777, umask022);
    REQUIRE(nested.ok());
    CHECK(acl_of(fs, nested->st_ino, kAclDefault) == def);
    CHECK(acl_of(fs, nested->st_ino) == def);
  }
  SECTION("mknod: a fifo inherits like a file") {
    auto p = fs.mknod(d->st_ino, "p", S_IFIFO | 0600, 0, umask022);
    REQUIRE(p.ok());
    CHECK((p->st_mode & 07777) == 0600);
    CHECK(acl_of(fs, p->st_ino) ==
          xattr({{kUserObj, 6}, {kUser, 7, 1000}, {kGroupObj, 5}, {kMask, 0}, {kOther, 0}}));
  }
  SECTION("a symlink gets nothing") {
    auto s = fs.symlink(d->st_ino, "s", "f", umask022);
    REQUIRE(s.ok());
    CHECK((s->st_mode & 07777) == 0777);
    CHECK(fs.listxattr(s->st_ino, kRoot).value().empty());
  }
  SECTION("without a default ACL the umask applies") {
    auto f = fs.create(kRootIno, "plain", 0666, umask022);
    REQUIRE(f.ok());
    CHECK((f->st_mode & 07777) == 0644);
    CHECK(fs.listxattr(f->st_ino, kRoot).value().empty());
  }
}

TEST_CASE("Filesystem: ACLs survive a crash (journal) and a clean close (checkpoint)",
          "[acl][persistence]") {
  char dir[] = "/tmp/pkramfs-unit.XXXXXX";
  REQUIRE(mkdtemp(dir));
  const std::string path = std::string(dir) + "/node";
  const std::string def =
      xattr({{kUserObj, 7}, {kUser, 7, 1000}, {kGroupObj, 5}, {kMask, 7}, {kOther, 5}});
  const Caller umask022{0, 0, [] { return Credentials{}; }, 022};
  const bool clean = GENERATE(false, true);
  uint64_t d = 0, f = 0, sub = 0, g = 0, eq = 0;
  {
    test::Mounted m(path);
    Filesystem &fs = *m.fs;
    d = fs.mkdir(kRootIno, "d", 0755, kRoot)->st_ino;
    REQUIRE(fs.setxattr(d, kAclDefault, def, 0).ok());
    f = fs.create(d, "f", 0666, umask022)->st_ino;  // inherited (CREATE record only)
    sub = fs.mkdir(d, "sub", 0777, umask022)->st_ino; // access + default inherited
    g = fs.create(kRootIno, "g", 0600, umask022)->st_ino;
    REQUIRE(fs.setxattr(g, kAclAccess, kNamedUser, 0).ok()); // mode from the ACL
    SetAttr a;
    a.valid = SetAttr::kMode;
    a.mode = 0751;
    REQUIRE(fs.setattr(g, a, kRoot).ok()); // ACL rewritten by an INODE record
    eq = fs.create(kRootIno, "eq", 0600, umask022)->st_ino;
    REQUIRE(fs.setxattr(eq, kAclAccess, kNamedUser, 0).ok());
    REQUIRE(fs.setxattr(eq, kAclAccess, xattr({{kUserObj, 7}, {kGroupObj, 0}, {kOther, 0}}), 0)
                .ok()); // equivalent: removed, mode 0700
    if (clean)
      REQUIRE(m.node->checkpoint(fs).ok());
  } // without the checkpoint: as after kill -9, the journal holds it all
  test::Mounted m(path);
  Filesystem &fs = *m.fs;
  CHECK(acl_of(fs, d, kAclDefault) == def);
  CHECK(mode_of(fs, f) == 0664); // other: r-x in the default ACL
  CHECK(acl_of(fs, f) ==
        xattr({{kUserObj, 6}, {kUser, 7, 1000}, {kGroupObj, 5}, {kMask, 6}, {kOther, 4}}));
  CHECK(acl_of(fs, sub) == def);
  CHECK(acl_of(fs, sub, kAclDefault) == def);
  CHECK(mode_of(fs, g) == 0751);
  CHECK(acl_of(fs, g) ==
        xattr({{kUserObj, 7}, {kUser, 7, 1000}, {kGroupObj, 4}, {kMask, 5}, {kOther, 1}}));
  CHECK(mode_of(fs, eq) == 0700);
  CHECK(acl_of(fs, eq) == "ENODATA");
  std::vector<std::string> problems;
  fs.verify(problems);
  CHECK(problems.empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("Filesystem: an O_TMPFILE file inherits its directory's default ACL and nodump, "
          "also in replay",
          "[acl][tmpfile][persistence]") {
  char dir[] = "/tmp/pkramfs-unit.XXXXXX";
  REQUIRE(mkdtemp(dir));
  const std::string path = std::string(dir) + "/node";
  const std::string def =
      xattr({{kUserObj, 7}, {kUser, 7, 1000}, {kGroupObj, 5}, {kMask, 7}, {kOther, 5}});
  const std::string inherited =
      xattr({{kUserObj, 6}, {kUser, 7, 1000}, {kGroupObj, 5}, {kMask, 6}, {kOther, 4}});
  constexpr uint32_t kNodump = 0x40; // FS_NODUMP_FL
  const Caller umask077{0, 0, [] { return Credentials{}; }, 077};
  const bool clean = GENERATE(false, true);
  uint64_t t = 0;
  {
    test::Mounted m(path);
    Filesystem &fs = *m.fs;
    const uint64_t d = fs.mkdir(kRootIno, "d", 0755, kRoot)->st_ino;
    REQUIRE(fs.setxattr(d, kAclDefault, def, 0).ok());
    REQUIRE(fs.set_flags(d, kNodump).ok());
    auto made = fs.tmpfile(d, 0666, true, umask077); // the default ACL, not the umask
    REQUIRE(made.ok());
    t = made->st_ino;
    CHECK(mode_of(fs, t) == 0664);
    CHECK(acl_of(fs, t) == inherited);
    CHECK(*fs.get_flags(t) == kNodump);
    REQUIRE(fs.link(t, kRootIno, "t").ok());
    if (clean)
      REQUIRE(m.node->checkpoint(fs).ok());
  } // without the checkpoint: the TMPFILE record is replayed
  test::Mounted m(path);
  Filesystem &fs = *m.fs;
  CHECK(mode_of(fs, t) == 0664);
  CHECK(acl_of(fs, t) == inherited);
  CHECK(*fs.get_flags(t) == kNodump);
  std::vector<std::string> problems;
  fs.verify(problems);
  CHECK(problems.empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("Filesystem: a checkpoint with an ACL setxattr would refuse is refused", "[acl]") {
  TestFs t;
  Filesystem &fs = *t.fs;
  auto f = fs.create(kRootIno, "f", 0600, kRoot);
  REQUIRE(f.ok());
  REQUIRE(fs.setxattr(f->st_ino, kAclAccess, kNamedUser, 0).ok());
  std::string image;
  REQUIRE(fs.checkpoint(1, [&](std::string_view i) -> Result<void> {
                image.assign(i);
                return {};
              }).ok());
  const size_t at = image.find(kNamedUser);
  REQUIRE(at != std::string::npos);

  const auto load = [&](const std::string &img) {
    TestFs other;
    std::string why;
    auto r = other.fs->load_image(img, why);
    return r.ok() ? std::string() : why;
  };
  CHECK(load(image).empty());
  SECTION("another version") {
    image[at] = 3;
    CHECK(load(image).find("invalid system.posix_acl_access") != std::string::npos);
  }
  SECTION("a named entry without the mask (posix_acl_valid)") {
    image[at + 4 + 3 * 8] = kOther; // the MASK entry's tag
    CHECK(load(image).find("invalid system.posix_acl_access") != std::string::npos);
  }
  SECTION("an ACL that disagrees with the mode") {
    image[at + 4 + 2] = 4; // user::r-- while the mode says rw-
    CHECK(load(image).find("does not go with its mode") != std::string::npos);
  }
}
