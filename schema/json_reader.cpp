// The strict JSON reader behind the snapshot codec (see json_reader.h).
#include "schema/json_reader.h"

#include <limits>
#include <set>

namespace edgeplane::strict_json {

std::string_view typeName(Json::Type t) {
  switch (t) {
    case Json::Type::Null:
      return "null";
    case Json::Type::Bool:
      return "a boolean";
    case Json::Type::Int:
      return "an integer";
    case Json::Type::String:
      return "a string";
    case Json::Type::Array:
      return "an array";
    case Json::Type::Object:
      return "an object";
  }
  return "?";
}

namespace {

// The snapshot nests five levels deep; anything much deeper is not a snapshot, and the bound
// keeps the recursive reader's stack small whatever the input.
constexpr int kMaxDepth = 16;

// Recursive descent over the text, bounded by kMaxDepth; the first error stops it.
class Reader {
 public:
  explicit Reader(std::string_view text) : text_(text) {}

  bool document(Json& out) {
    skipSpace();
    if (!value(out, 0)) {
      return false;
    }
    skipSpace();
    if (pos_ != text_.size()) {
      return fail("unexpected data after the JSON value");
    }
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  bool fail(std::string_view what) {
    error_ = "JSON, byte " + std::to_string(pos_) + ": " + std::string(what);
    return false;
  }
  bool atEnd() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }
  void skipSpace() {
    while (!atEnd() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      ++pos_;
    }
  }
  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) {
      return fail("invalid literal");
    }
    pos_ += word.size();
    return true;
  }

  bool value(Json& out, int depth) {
    if (atEnd()) {
      return fail("unexpected end of input");
    }
    switch (peek()) {
      case '{':
        return object(out, depth + 1);
      case '[':
        return array(out, depth + 1);
      case '"':
        out.type = Json::Type::String;
        return string(out.string);
      case 't':
        out.type = Json::Type::Bool;
        out.boolean = true;
        return literal("true");
      case 'f':
        out.type = Json::Type::Bool;
        out.boolean = false;
        return literal("false");
      case 'n':
        out.type = Json::Type::Null;
        return literal("null");
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
          out.type = Json::Type::Int;
          return number(out.integer);
        }
        return fail("expected a JSON value");
    }
  }

  bool object(Json& out, int depth) {
    if (depth > kMaxDepth) {
      return fail("nested too deeply");
    }
    out.type = Json::Type::Object;
    ++pos_;  // '{'
    skipSpace();
    if (!atEnd() && peek() == '}') {
      ++pos_;
      return true;
    }
    std::set<std::string, std::less<>> keys;
    for (;;) {
      skipSpace();
      if (atEnd() || peek() != '"') {
        return fail("expected a string key");
      }
      const size_t keyAt = pos_;
      std::string key;
      if (!string(key)) {
        return false;
      }
      if (!keys.insert(key).second) {
        pos_ = keyAt;
        return fail("duplicate key \"" + key + "\"");
      }
      skipSpace();
      if (atEnd() || peek() != ':') {
        return fail("expected ':'");
      }
      ++pos_;
      skipSpace();
      Json member;
      if (!value(member, depth)) {
        return false;
      }
      out.keys.push_back(std::move(key));
      out.values.push_back(std::move(member));
      skipSpace();
      if (atEnd()) {
        return fail("unterminated object");
      }
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  bool array(Json& out, int depth) {
    if (depth > kMaxDepth) {
      return fail("nested too deeply");
    }
    out.type = Json::Type::Array;
    ++pos_;  // '['
    skipSpace();
    if (!atEnd() && peek() == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      skipSpace();
      Json element;
      if (!value(element, depth)) {
        return false;
      }
      out.array.push_back(std::move(element));
      skipSpace();
      if (atEnd()) {
        return fail("unterminated array");
      }
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  bool number(int64_t& out) {
    const size_t start = pos_;
    const bool negative = peek() == '-';
    if (negative) {
      ++pos_;
    }
    if (atEnd() || peek() < '0' || peek() > '9') {
      return fail("invalid number");
    }
    if (peek() == '0' && pos_ + 1 < text_.size() && text_[pos_ + 1] >= '0' &&
        text_[pos_ + 1] <= '9') {
      return fail("leading zero in a number");
    }
    // Accumulate negatively: the magnitude of INT64_MIN does not fit a positive int64.
    int64_t v = 0;
    constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
    while (!atEnd() && peek() >= '0' && peek() <= '9') {
      const int digit = peek() - '0';
      if (v < (kMin + digit) / 10) {
        pos_ = start;
        return fail("integer out of range");
      }
      v = v * 10 - digit;
      ++pos_;
    }
    if (!atEnd() && (peek() == '.' || peek() == 'e' || peek() == 'E')) {
      pos_ = start;
      return fail("numbers must be integers");
    }
    if (!negative) {
      if (v == kMin) {
        pos_ = start;
        return fail("integer out of range");
      }
      v = -v;
    }
    out = v;
    return true;
  }

  static void appendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  bool hex4(uint32_t& out) {
    if (text_.size() - pos_ < 4) {
      return fail("truncated \\u escape");
    }
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_ + i];
      uint32_t d = 0;
      if (c >= '0' && c <= '9') {
        d = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return fail("invalid \\u escape");
      }
      out = out * 16 + d;
    }
    pos_ += 4;
    return true;
  }

  bool escape(std::string& out) {
    ++pos_;  // '\\'
    if (atEnd()) {
      return fail("unterminated string");
    }
    const char c = peek();
    ++pos_;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        out.push_back(c);
        return true;
      case 'b':
        out.push_back('\b');
        return true;
      case 'f':
        out.push_back('\f');
        return true;
      case 'n':
        out.push_back('\n');
        return true;
      case 'r':
        out.push_back('\r');
        return true;
      case 't':
        out.push_back('\t');
        return true;
      case 'u':
        break;
      default:
        --pos_;
        return fail("invalid escape");
    }
    uint32_t cp = 0;
    if (!hex4(cp)) {
      return false;
    }
    if (cp >= 0xdc00 && cp <= 0xdfff) {
      return fail("unpaired low surrogate");
    }
    if (cp >= 0xd800 && cp <= 0xdbff) {
      if (text_.substr(pos_, 2) != "\\u") {
        return fail("unpaired high surrogate");
      }
      pos_ += 2;
      uint32_t low = 0;
      if (!hex4(low)) {
        return false;
      }
      if (low < 0xdc00 || low > 0xdfff) {
        return fail("unpaired high surrogate");
      }
      cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
    }
    appendUtf8(out, cp);
    return true;
  }

  // One raw UTF-8 sequence starting at pos_ (RFC 3629: shortest form, no surrogates).
  bool utf8(std::string& out) {
    const auto b0 = static_cast<unsigned char>(peek());
    size_t len = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      len = 2;
      cp = b0 & 0x1f;
      min = 0x80;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      len = 3;
      cp = b0 & 0x0f;
      min = 0x800;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      len = 4;
      cp = b0 & 0x07;
      min = 0x10000;
    } else {
      return fail("invalid UTF-8");
    }
    if (text_.size() - pos_ < len) {
      return fail("invalid UTF-8");
    }
    for (size_t i = 1; i < len; ++i) {
      const auto b = static_cast<unsigned char>(text_[pos_ + i]);
      if ((b & 0xc0) != 0x80) {
        return fail("invalid UTF-8");
      }
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return fail("invalid UTF-8");
    }
    out.append(text_.substr(pos_, len));
    pos_ += len;
    return true;
  }

  bool string(std::string& out) {
    ++pos_;  // '"'
    for (;;) {
      if (atEnd()) {
        return fail("unterminated string");
      }
      const auto c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (!escape(out)) {
          return false;
        }
      } else if (c < 0x20) {
        return fail("control character in a string");
      } else if (c < 0x80) {
        out.push_back(static_cast<char>(c));
        ++pos_;
      } else if (!utf8(out)) {
        return false;
      }
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

bool parse(std::string_view text, Json& out, std::string& error) {
  out = Json{};  // a reused document starts empty, not with the last one's members
  Reader reader(text);
  if (!reader.document(out)) {
    error = reader.error();
    return false;
  }
  return true;
}

const Json* member(const Json& object, std::string_view key) {
  for (size_t i = 0; i < object.keys.size(); ++i) {
    if (object.keys[i] == key) {
      return &object.values[i];
    }
  }
  return nullptr;
}

}  // namespace edgeplane::strict_json
