#include "fs/posix_acl.h"

#include <cerrno>
#include <sys/stat.h>

namespace pkramfs {
namespace {

// include/uapi/linux/posix_acl.h and posix_acl_xattr.h.
constexpr uint32_t kXattrVersion = 2;
constexpr size_t kHeaderBytes = 4;
constexpr size_t kEntryBytes = 8;
constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10,
                   kOther = 0x20;
constexpr uint16_t kPermBits = 07; // ACL_READ | ACL_WRITE | ACL_EXECUTE
constexpr uint32_t kUndefinedId = 0xFFFFFFFFu;

uint16_t le16(const char *p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | static_cast<uint8_t>(p[1]) << 8);
}
uint32_t le32(const char *p) {
  return static_cast<uint32_t>(le16(p)) | static_cast<uint32_t>(le16(p + 2)) << 16;
}
void put16(char *p, uint16_t v) {
  p[0] = static_cast<char>(v & 0xFF);
  p[1] = static_cast<char>(v >> 8);
}
void put32(char *p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v & 0xFFFF));
  put16(p + 2, static_cast<uint16_t>(v >> 16));
}

struct Entry {
  uint16_t tag, perm;
  uint32_t id;
};

Entry entry_at(std::string_view acl, size_t n) {
  const char *p = acl.data() + kHeaderBytes + n * kEntryBytes;
  return {le16(p), le16(p + 2), le32(p + 4)};
}

size_t entry_count(std::string_view acl) { return (acl.size() - kHeaderBytes) / kEntryBytes; }

void set_perm(std::string &acl, size_t n, uint32_t perm) {
  put16(acl.data() + kHeaderBytes + n * kEntryBytes + 2, static_cast<uint16_t>(perm & kPermBits));
}

// posix_acl_valid: the entries in tag order, each *_OBJ, MASK and OTHER once, a MASK whenever
// there is a named entry. (Like the kernel, it does not ask for named entries sorted by id or
// unique: setfacl sorts them, the kernel takes them as they come.)
bool valid_order(std::string_view acl) {
  enum { kWantUserObj, kInUsers, kInGroups, kWantOther, kDone } state = kWantUserObj;
  bool needs_mask = false;
  for (size_t n = 0; n < entry_count(acl); ++n) {
    const Entry e = entry_at(acl, n);
    if (e.perm & ~kPermBits)
      return false;
    switch (e.tag) {
    case kUserObj:
      if (state != kWantUserObj)
        return false;
      state = kInUsers;
      break;
    case kUser:
      if (state != kInUsers)
        return false;
      needs_mask = true;
      break;
    case kGroupObj:
      if (state != kInUsers)
        return false;
      state = kInGroups;
      break;
    case kGroup:
      if (state != kInGroups)
        return false;
      needs_mask = true;
      break;
    case kMask:
      if (state != kInGroups)
        return false;
      state = kWantOther;
      break;
    case kOther:
      if (state != kWantOther && !(state == kInGroups && !needs_mask))
        return false;
      state = kDone;
      break;
    default:
      return false;
    }
  }
  return state == kDone;
}

} // namespace

Result<std::string> canonical_acl(std::string_view value) {
  // posix_acl_from_xattr: no value is no ACL; a header of another version is not ours.
  if (value.empty())
    return std::string();
  if (value.size() < kHeaderBytes)
    return Errno{EINVAL};
  if (le32(value.data()) != kXattrVersion)
    return Errno{EOPNOTSUPP};
  if ((value.size() - kHeaderBytes) % kEntryBytes)
    return Errno{EINVAL};
  if (value.size() == kHeaderBytes)
    return std::string();
  std::string acl(value);
  for (size_t n = 0; n < entry_count(acl); ++n) {
    const Entry e = entry_at(acl, n);
    char *id = acl.data() + kHeaderBytes + n * kEntryBytes + 4;
    switch (e.tag) {
    case kUser:
    case kGroup:
      if (e.id == kUndefinedId) // make_kuid/make_kgid: not a valid id
        return Errno{EINVAL};
      break;
    case kUserObj:
    case kGroupObj:
    case kMask:
    case kOther:
      put32(id, kUndefinedId); // posix_acl_to_xattr writes no id for these
      break;
    default:
      return Errno{EINVAL};
    }
  }
  if (!valid_order(acl))
    return Errno{EINVAL};
  return acl;
}

bool acl_fits(std::string_view name, std::string_view value, uint32_t mode) {
  if (name == kAclDefault ? !S_ISDIR(mode) : S_ISLNK(mode))
    return false;
  auto canonical = canonical_acl(value);
  return canonical && !canonical->empty() && *canonical == value;
}

AclMode acl_mode(std::string_view acl) noexcept {
  AclMode m;
  for (size_t n = 0; n < entry_count(acl); ++n) {
    const Entry e = entry_at(acl, n);
    switch (e.tag) {
    case kUserObj:
      m.permissions |= static_cast<uint32_t>(e.perm) << 6;
      break;
    case kGroupObj:
      m.permissions |= static_cast<uint32_t>(e.perm) << 3;
      break;
    case kOther:
      m.permissions |= e.perm;
      break;
    case kMask: // comes after GROUP_OBJ: the group class is the mask
      m.permissions = (m.permissions & ~static_cast<uint32_t>(S_IRWXG)) |
                      static_cast<uint32_t>(e.perm) << 3;
      m.extended = true;
      break;
    default: // named users and groups
      m.extended = true;
      break;
    }
  }
  return m;
}

void chmod_acl(std::string &acl, uint32_t mode) noexcept {
  size_t group_obj = SIZE_MAX, mask = SIZE_MAX;
  for (size_t n = 0; n < entry_count(acl); ++n) {
    switch (entry_at(acl, n).tag) {
    case kUserObj:
      set_perm(acl, n, (mode & S_IRWXU) >> 6);
      break;
    case kGroupObj:
      group_obj = n;
      break;
    case kMask:
      mask = n;
      break;
    case kOther:
      set_perm(acl, n, mode & S_IRWXO);
      break;
    default:
      break;
    }
  }
  const size_t group_class = mask != SIZE_MAX ? mask : group_obj;
  if (group_class != SIZE_MAX) // a canonical ACL always has GROUP_OBJ
    set_perm(acl, group_class, (mode & S_IRWXG) >> 3);
}

uint32_t inherit_acl(std::string_view default_acl, uint32_t mode, std::string &access) {
  // posix_acl_create_masq: each class entry keeps only what the mode grants, and the mode only
  // what the entry grants.
  access.assign(default_acl);
  uint32_t perms = mode & kPermissionBits;
  size_t group_obj = SIZE_MAX, mask = SIZE_MAX;
  bool extended = false;
  for (size_t n = 0; n < entry_count(access); ++n) {
    const Entry e = entry_at(access, n);
    switch (e.tag) {
    case kUserObj: {
      const uint32_t p = e.perm & (perms >> 6);
      set_perm(access, n, p);
      perms &= (p << 6) | ~static_cast<uint32_t>(S_IRWXU);
      break;
    }
    case kGroupObj:
      group_obj = n;
      break;
    case kMask:
      mask = n;
      extended = true;
      break;
    case kOther: {
      const uint32_t p = e.perm & perms & S_IRWXO;
      set_perm(access, n, p);
      perms &= p | ~static_cast<uint32_t>(S_IRWXO);
      break;
    }
    default:
      extended = true;
      break;
    }
  }
  const size_t group_class = mask != SIZE_MAX ? mask : group_obj;
  if (group_class != SIZE_MAX) {
    const uint32_t p = entry_at(access, group_class).perm & (perms >> 3) & kPermBits;
    set_perm(access, group_class, p);
    perms &= (p << 3) | ~static_cast<uint32_t>(S_IRWXG);
  }
  if (!extended)
    access.clear();
  return (mode & ~kPermissionBits) | perms;
}

} // namespace pkramfs
