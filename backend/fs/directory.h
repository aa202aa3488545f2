// A directory's entries: a hash index by name for lookups and an ordered map by cookie for
// readdir. Every entry added (create, mkdir, link, a rename's new name) takes a cookie above
// all earlier ones, never reused in the directory's life, so a readdir position stays valid
// while entries come and go (see Filesystem::readdir for how positions map to cookies).
#pragma once

#include "pkramfs/format.h"
#include "util/fault.h"

#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pkramfs {

// Grows `table` (geometrically) so that inserting one more element cannot rehash, the only
// allocation an insert of an already built node makes.
template <class Table> void make_room_for_one(Table &table) {
  if (static_cast<double>(table.size() + 1) >=
      static_cast<double>(table.bucket_count()) * table.max_load_factor())
    table.reserve(2 * (table.size() + 1));
}

// Readdir positions 1 and 2 follow "." and ".."; entry cookies start at kFirstCookie.
inline constexpr uint64_t kFirstCookie = PKRAMFS_FIRST_COOKIE;

struct DirEntry {
  std::string name;
  uint64_t ino;
};

class Directory {
public:
  std::optional<uint64_t> find(std::string_view name) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end())
      return std::nullopt;
    return by_cookie_.at(it->second).ino;
  }

  // An entry whose memory is allocated ahead: an operation prepares it before its journal
  // record (where running out of memory fails the operation cleanly) and commits it after,
  // where nothing may fail. At most one prepared slot per directory at a time.
  struct Slot {
    std::map<uint64_t, DirEntry>::node_type entry;
    std::unordered_map<std::string_view, uint64_t>::node_type index;
  };
  Slot prepare(std::string_view name, uint64_t ino) {
    fault::heap();
    std::map<uint64_t, DirEntry> one;
    const DirEntry &e = one.emplace(0, DirEntry{std::string(name), ino}).first->second;
    std::unordered_map<std::string_view, uint64_t> index;
    index.emplace(e.name, 0); // views the name inside the node, which commit() moves intact
    make_room_for_one(by_name_);
    return {one.extract(one.begin()), index.extract(index.begin())};
  }
  void commit(Slot &&slot) noexcept {
    const uint64_t cookie = next_cookie_++;
    slot.entry.key() = cookie;
    slot.index.mapped() = cookie;
    by_cookie_.insert(std::move(slot.entry));
    by_name_.insert(std::move(slot.index));
  }
  void add(std::string_view name, uint64_t ino) { commit(prepare(name, ino)); }
  // A checkpoint's entry with the cookie it had (format version 4). REQUIRES: cookies are
  // given rising, each >= kFirstCookie; the caller sets next_cookie afterwards.
  void add_with_cookie(std::string_view name, uint64_t ino, uint64_t cookie) {
    next_cookie_ = cookie;
    add(name, ino);
  }
  // The cookie the next entry gets; a checkpoint keeps it, so that a restored directory goes
  // on numbering where the daemon stopped.
  uint64_t next_cookie() const { return next_cookie_; }
  void set_next_cookie(uint64_t cookie) { next_cookie_ = cookie; }

  // Points an existing name at another inode, keeping its position (rename over, exchange).
  void repoint(std::string_view name, uint64_t ino) { by_cookie_.at(by_name_.at(name)).ino = ino; }

  bool remove(std::string_view name) {
    auto it = by_name_.find(name);
    if (it == by_name_.end())
      return false;
    const uint64_t cookie = it->second;
    by_name_.erase(it); // before the string it views dies
    by_cookie_.erase(cookie);
    return true;
  }

  bool empty() const { return by_cookie_.empty(); }
  size_t size() const { return by_cookie_.size(); }

  // Calls f(cookie, entry) for entries with a cookie greater than `after`, in cookie order,
  // until f returns false.
  template <class F> void for_each_after(uint64_t after, F &&f) const {
    for (auto it = by_cookie_.upper_bound(after); it != by_cookie_.end(); ++it)
      if (!f(it->first, it->second))
        return;
  }
  // Calls f(cookie, entry) for entries with a cookie less than `before`, newest (highest
  // cookie) first, until f returns false.
  template <class F> void for_each_before(uint64_t before, F &&f) const {
    for (auto it = std::make_reverse_iterator(by_cookie_.lower_bound(before));
         it != by_cookie_.rend(); ++it)
      if (!f(it->first, it->second))
        return;
  }

private:
  std::map<uint64_t, DirEntry> by_cookie_;
  std::unordered_map<std::string_view, uint64_t> by_name_; // views into by_cookie_'s names
  uint64_t next_cookie_ = kFirstCookie;
};

} // namespace pkramfs
