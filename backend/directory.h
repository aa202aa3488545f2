// A directory's entries: a hash index by name for lookups and an ordered map by cookie for
// readdir. Cookies only grow, so a readdir offset stays valid while entries come and go.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pkramfs {

// Readdir offsets 1 and 2 are "." and ".."; entries start at kFirstCookie.
inline constexpr uint64_t kFirstCookie = 3;

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

  void add(std::string_view name, uint64_t ino) {
    const uint64_t cookie = next_cookie_++;
    auto &entry = by_cookie_.emplace(cookie, DirEntry{std::string(name), ino}).first->second;
    by_name_.emplace(entry.name, cookie);
  }

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

private:
  std::map<uint64_t, DirEntry> by_cookie_;
  std::unordered_map<std::string_view, uint64_t> by_name_; // views into by_cookie_'s names
  uint64_t next_cookie_ = kFirstCookie;
};

} // namespace pkramfs
