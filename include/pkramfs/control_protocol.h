// The control socket protocol between pkramfs-fuse (fuse/control_server.cpp) and pkramfs-ctl
// (tools/ctl), plus the small JSON writer and reader both sides use. Header-only, no libraries.
//
// Transport: a SOCK_STREAM unix socket <run-dir>/NAME.sock (see socket_file_name), mode 0600,
// served by the daemon that holds <run-dir>/NAME.lock. Only root may talk to it (SO_PEERCRED). One
// request per connection.
//
// Request: one line, the command word alone, ended by '\n' (or by the client shutting down its
// writing side): "status", "preserve", "unpreserve", "node-fd" or "atime=MODE[,nodiratime]"
// (atime_request). At most kMaxRequestBytes bytes
// before the newline; the whole request must arrive within kRequestTimeoutMs.
//
// Reply: one line of JSON, a flat object (string, integer, floating point and boolean values
// only), then the server closes the connection.
//   error:      {"ok":false,"error":"<one line>"[,"errno":N]}
//   status:     {"ok":true,"name":..,"backend":..,"state":..,"mountpoint":..,"pid":N,
//                "files":N,"directories":N,"other_inodes":N,"data_bytes":N,"limit_bytes":N,
//                "inodes_used":N,"inodes_limit":N,"journal_used_bytes":N,"journal_bytes":N,
//                "checkpoint_bytes":N,"checkpoint_generation":N,"node_bytes":N,
//                "metadata_bytes":N,"free_bytes":N,"data_held_bytes":N,
//                "metadata_held_bytes":N,"superblock_bytes":N,"held_bytes":N}
//   preserve:   {"ok":true,"files":N,"bytes":N,"checkpoint_bytes":N,"milliseconds":F}
//   unpreserve: {"ok":true}
//   atime=...:  {"ok":true}; MODE relatime, strictatime or noatime, and nodiratime: how reads and
//               readdir stamp atime from now on (pkramfs-fuse -o remount with atime options)
//   node-fd:    {"ok":true,"backend":"kmod","node_bytes":N}, sent with one descriptor
//               (SCM_RIGHTS, on the reply's first bytes): a /dev/pkram file opened read-only
//               and attached to the node for reading only (PKRAM_ATTACH_READER: no mmap, no
//               change to the node; EPROTO from an older module); pread() reads the node's bytes,
//               holes as zeros, node_bytes of them. Only for a pkram.ko node that is
//               preserved (a consistent cut): refused with errno EOPNOTSUPP for any other
//               backend and EBUSY when not preserved. For pkramfs-ctl export of a mounted node.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <map>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <variant>
#include <vector>

namespace pkramfs::control {

inline constexpr size_t kMaxRequestBytes = 256;
inline constexpr int kRequestTimeoutMs = 2000;
inline constexpr size_t kMaxReplyBytes = 64 * 1024;

// NAME.sock; a node name longer than kMaxPlainSocketName (a unix socket address holds at most
// 107 bytes) gets "<its first 40 bytes>~<FNV-1a 64 of the name in hex>.sock" instead: '~' is
// not valid in node names, so this cannot be another node's socket.
inline constexpr size_t kMaxPlainSocketName = 80;
inline std::string atime_request(std::string_view mode, bool nodiratime) {
  return "atime=" + std::string(mode) + (nodiratime ? ",nodiratime" : "");
}

inline std::string socket_file_name(std::string_view node) {
  if (node.size() <= kMaxPlainSocketName)
    return std::string(node) + ".sock";
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char c : node)
    h = (h ^ c) * 0x100000001b3ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string(node.substr(0, 40)) + "~" + hex + ".sock";
}
inline std::string socket_path(const std::string &run_dir, const std::string &node) {
  return run_dir + "/" + socket_file_name(node);
}

// The address of a socket at `path` for bind() or connect(). A path too long for sun_path is
// reached through its directory: `dir_fd` gets an O_PATH descriptor of it (the caller closes it
// after bind/connect) and the address becomes /proc/self/fd/N/FILE. Returns 0 or an errno.
inline int unix_address(const std::string &path, sockaddr_un &addr, socklen_t &len, int &dir_fd) {
  dir_fd = -1;
  addr = {};
  addr.sun_family = AF_UNIX;
  std::string target = path;
  if (target.size() >= sizeof addr.sun_path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos)
      return ENAMETOOLONG;
    const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    dir_fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
      return errno;
    target = "/proc/self/fd/" + std::to_string(dir_fd) + path.substr(slash);
    if (target.size() >= sizeof addr.sun_path) {
      ::close(dir_fd);
      dir_fd = -1;
      return ENAMETOOLONG;
    }
  }
  target.copy(addr.sun_path, target.size());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + target.size() + 1);
  return 0;
}
inline std::string lock_path(const std::string &run_dir, const std::string &node) {
  return run_dir + "/" + node + ".lock";
}

// ------------------------------------------------------------------------------- writer --

inline void json_escape(std::string &out, std::string_view s) {
  out += '"';
  for (const unsigned char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20 || c == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c); // UTF-8 and other bytes pass through unchanged
      }
    }
  }
  out += '"';
}

// Streaming writer: objects and arrays nest; commas are placed automatically.
//   JsonWriter w; w.begin_object(); w.key("ok").value(true); w.end_object(); w.str()
class JsonWriter {
public:
  JsonWriter &begin_object() { return open('{'); }
  JsonWriter &end_object() { return close('}'); }
  JsonWriter &begin_array() { return open('['); }
  JsonWriter &end_array() { return close(']'); }
  JsonWriter &key(std::string_view k) {
    separate();
    json_escape(out_, k);
    out_ += ':';
    after_key_ = true;
    return *this;
  }
  JsonWriter &value(std::string_view s) {
    separate();
    json_escape(out_, s);
    return *this;
  }
  JsonWriter &value(const char *s) { return value(std::string_view(s)); }
  JsonWriter &value(const std::string &s) { return value(std::string_view(s)); }
  JsonWriter &value(bool b) {
    separate();
    out_ += b ? "true" : "false";
    return *this;
  }
  JsonWriter &value(uint64_t n) {
    separate();
    out_ += std::to_string(n);
    return *this;
  }
  JsonWriter &value(int64_t n) {
    separate();
    out_ += std::to_string(n);
    return *this;
  }
  JsonWriter &value(int n) { return value(static_cast<int64_t>(n)); }
  JsonWriter &value(double d) {
    separate();
    if (!std::isfinite(d)) {
      out_ += "null";
    } else {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.3f", d);
      out_ += buf;
    }
    return *this;
  }
  JsonWriter &null() {
    separate();
    out_ += "null";
    return *this;
  }
  template <class T> JsonWriter &field(std::string_view k, const T &v) { return key(k).value(v); }
  const std::string &str() const { return out_; }

private:
  JsonWriter &open(char c) {
    separate();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  JsonWriter &close(char c) {
    out_ += c;
    if (!first_.empty())
      first_.pop_back();
    return *this;
  }
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back())
        out_ += ',';
      first_.back() = false;
    }
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

// ------------------------------------------------------------------------------- reader --

// A value of a flat reply object. Integers that fit stay exact; other numbers are doubles.
struct JsonValue {
  std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string> v;

  bool is_string() const { return std::holds_alternative<std::string>(v); }
  bool is_bool() const { return std::holds_alternative<bool>(v); }
  bool is_number() const {
    return std::holds_alternative<int64_t>(v) || std::holds_alternative<uint64_t>(v) ||
           std::holds_alternative<double>(v);
  }
  std::string as_string() const { return is_string() ? std::get<std::string>(v) : std::string(); }
  bool as_bool() const { return is_bool() && std::get<bool>(v); }
  uint64_t as_u64() const {
    if (auto *u = std::get_if<uint64_t>(&v))
      return *u;
    if (auto *i = std::get_if<int64_t>(&v))
      return *i < 0 ? 0 : static_cast<uint64_t>(*i);
    if (auto *d = std::get_if<double>(&v))
      return *d < 0 ? 0 : static_cast<uint64_t>(*d);
    return 0;
  }
  int64_t as_i64() const {
    if (auto *i = std::get_if<int64_t>(&v))
      return *i;
    if (auto *u = std::get_if<uint64_t>(&v))
      return static_cast<int64_t>(*u);
    if (auto *d = std::get_if<double>(&v))
      return static_cast<int64_t>(*d);
    return 0;
  }
  double as_double() const {
    if (auto *d = std::get_if<double>(&v))
      return *d;
    if (auto *u = std::get_if<uint64_t>(&v))
      return static_cast<double>(*u);
    if (auto *i = std::get_if<int64_t>(&v))
      return static_cast<double>(*i);
    return 0;
  }
};

using JsonObject = std::map<std::string, JsonValue, std::less<>>;

namespace detail {

class FlatParser {
public:
  explicit FlatParser(std::string_view s) : s_(s) {}

  bool parse(JsonObject &out, std::string &error) {
    ws();
    if (!eat('{'))
      return fail(error, "expected '{'");
    ws();
    if (eat('}'))
      return end(error);
    for (;;) {
      ws();
      std::string k;
      if (!string(k))
        return fail(error, "expected a key");
      ws();
      if (!eat(':'))
        return fail(error, "expected ':'");
      ws();
      JsonValue v;
      if (!value(v))
        return fail(error, "bad value for key '" + k + "'");
      out[k] = std::move(v);
      ws();
      if (eat(','))
        continue;
      if (eat('}'))
        return end(error);
      return fail(error, "expected ',' or '}'");
    }
  }

private:
  bool end(std::string &error) {
    ws();
    return pos_ == s_.size() ? true : fail(error, "trailing bytes");
  }
  bool fail(std::string &error, const std::string &what) {
    error = what + " at byte " + std::to_string(pos_);
    return false;
  }
  void ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word)
      return false;
    pos_ += word.size();
    return true;
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  }
  static void utf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  bool hex4(uint32_t &cp) {
    if (pos_ + 4 > s_.size())
      return false;
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex(s_[pos_++]);
      if (h < 0)
        return false;
      cp = cp << 4 | static_cast<uint32_t>(h);
    }
    return true;
  }
  bool string(std::string &out) {
    if (!eat('"'))
      return false;
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"')
        return true;
      if (static_cast<unsigned char>(c) < 0x20)
        return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size())
        return false;
      const char e = s_[pos_++];
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out += e;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint32_t cp = 0;
        if (!hex4(cp))
          return false;
        if (cp >= 0xd800 && cp < 0xdc00 && s_.substr(pos_, 2) == "\\u") {
          pos_ += 2;
          uint32_t lo = 0;
          if (!hex4(lo) || lo < 0xdc00 || lo >= 0xe000)
            return false;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        utf8(out, cp);
        break;
      }
      default:
        return false;
      }
    }
    return false;
  }
  bool number(JsonValue &out) {
    const size_t start = pos_;
    bool integral = true;
    (void)eat('-');
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c >= '0' && c <= '9') {
      } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
        integral = false;
      } else {
        break;
      }
      ++pos_;
    }
    const std::string text(s_.substr(start, pos_ - start));
    if (text.empty() || text == "-")
      return false;
    char *end = nullptr;
    errno = 0;
    if (integral && text[0] == '-') {
      const long long n = std::strtoll(text.c_str(), &end, 10);
      if (errno == 0 && *end == '\0') {
        out.v = static_cast<int64_t>(n);
        return true;
      }
    } else if (integral) {
      const unsigned long long n = std::strtoull(text.c_str(), &end, 10);
      if (errno == 0 && *end == '\0') {
        out.v = static_cast<uint64_t>(n);
        return true;
      }
    }
    errno = 0;
    const double d = std::strtod(text.c_str(), &end);
    if (*end != '\0')
      return false;
    out.v = d;
    return true;
  }
  bool value(JsonValue &out) {
    if (pos_ >= s_.size())
      return false;
    const char c = s_[pos_];
    if (c == '"') {
      std::string s;
      if (!string(s))
        return false;
      out.v = std::move(s);
      return true;
    }
    if (literal("true")) {
      out.v = true;
      return true;
    }
    if (literal("false")) {
      out.v = false;
      return true;
    }
    if (literal("null")) {
      out.v = std::monostate{};
      return true;
    }
    return number(out);
  }

  std::string_view s_;
  size_t pos_ = 0;
};

} // namespace detail

// Parses one flat JSON object (no nested objects or arrays). On failure says why in `error`.
inline bool parse_flat_object(std::string_view text, JsonObject &out, std::string &error) {
  out.clear();
  return detail::FlatParser(text).parse(out, error);
}

} // namespace pkramfs::control
