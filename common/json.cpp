// The JSON writer and flat-object reader (common/json.h).
#include "json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace pkramfs::control {

void json_escape(std::string &out, std::string_view s) {
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

JsonWriter &JsonWriter::value(double d) {
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

namespace {

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

} // namespace

// Parses one flat JSON object (no nested objects or arrays). On failure says why in `error`.
bool parse_flat_object(std::string_view text, JsonObject &out, std::string &error) {
  out.clear();
  return FlatParser(text).parse(out, error);
}

} // namespace pkramfs::control
