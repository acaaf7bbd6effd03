// Reading TOML with toml++ into typed values with file:line:col diagnostics: the helpers the
// desired-state loader and the agent-file loader share. Internal to the schema library (it
// includes toml++, which only schema compiles against).
#pragma once

#include "schema/toml_include.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schema/diagnostic.h"
#include "schema/model.h"

namespace edgeplane::detail {

// `linesBefore`: the lines of the file before the parsed text (a chunk, see toml_chunks.h).
inline SourceLoc locOf(const toml::source_region& src, const SourceFile& file,
                       uint32_t linesBefore = 0) {
  return SourceLoc{file, src.begin.line + linesBefore, src.begin.column};
}

inline std::string_view typeName(toml::node_type t) {
  switch (t) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

inline size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// Tracks which keys of a table were read, reports type errors and leftover (unknown) keys.
class TableReader {
 public:
  // Keeps a reference to `file`: a temporary would not outlive the reader.
  TableReader(const toml::table&, std::string, SourceFile&&, Diagnostics&, uint32_t = 0) = delete;
  // `linesBefore`: as for locOf.
  TableReader(const toml::table& table, std::string context, const SourceFile& file,
              Diagnostics& diags, uint32_t linesBefore = 0)
      : table_(table),
        context_(std::move(context)),
        file_(file),
        linesBefore_(linesBefore),
        diags_(diags) {
    origin_.table = locOf(table.source(), file, linesBefore);
    origin_.fields.reserve(table.size());
  }

  const SourceLoc& tableLoc() const { return origin_.table; }
  Origin& origin() { return origin_; }
  const std::string& context() const { return context_; }

  // The node under `key` if present and of type `want`; reports a type error otherwise.
  const toml::node* get(std::string_view key, toml::node_type want) {
    known_.insert(std::string(key));
    const toml::node* n = table_.get(key);
    if (n == nullptr) {
      return nullptr;
    }
    origin_.fields[key] = locOf(n->source(), file_, linesBefore_);
    if (n->type() != want) {
      error(key, "'" + std::string(key) + "' must be " + std::string(typeName(want)) + ", not " +
                     std::string(typeName(n->type())));
      reject(key);
      return nullptr;
    }
    return n;
  }

  // Marks the value under `key` as rejected; the caller has reported why.
  void reject(std::string_view key) { origin_.rejected.insert(std::string(key)); }
  bool rejected(std::string_view key) const { return origin_.isRejected(key); }

  bool has(std::string_view key) const { return table_.contains(key); }

  // True when `key` is an array with no elements (so "empty" is not confused with "malformed").
  bool isEmptyArray(std::string_view key) const {
    const toml::node* n = table_.get(key);
    return n != nullptr && n->is_array() && n->as_array()->empty();
  }

  // The node under `key` whatever its type (the caller checks), marked as known.
  const toml::node* raw(std::string_view key) {
    known_.insert(std::string(key));
    const toml::node* n = table_.get(key);
    if (n != nullptr) {
      origin_.fields[key] = locOf(n->source(), file_, linesBefore_);
    }
    return n;
  }

  void missing(std::string_view key) {
    require(key, origin_.table, context_ + " is missing required key '" + std::string(key) + "'");
  }

  // Reports that `key` is needed, unless an unknown key turns out to be a misspelling of it:
  // then the "did you mean" is the one error for the one mistake (see finish()).
  void require(std::string_view key, const SourceLoc& loc, std::string message) {
    required_.push_back(Required{std::string(key), loc, std::move(message)});
  }

  std::optional<std::string> str(std::string_view key, bool required = false) {
    const toml::node* n = get(key, toml::node_type::string);
    if (n == nullptr) {
      if (required && !has(key)) {
        missing(key);
      }
      return std::nullopt;
    }
    return std::string(n->as_string()->get());
  }

  std::optional<int64_t> integer(std::string_view key, int64_t min, int64_t max,
                                 bool required = false) {
    const toml::node* n = get(key, toml::node_type::integer);
    if (n == nullptr) {
      if (required && !has(key)) {
        missing(key);
      }
      return std::nullopt;
    }
    int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      error(key, "'" + std::string(key) + "' must be between " + std::to_string(min) + " and " +
                     std::to_string(max) + ", got " + std::to_string(v));
      reject(key);
      return std::nullopt;
    }
    return v;
  }

  std::optional<bool> boolean(std::string_view key) {
    const toml::node* n = get(key, toml::node_type::boolean);
    return n != nullptr ? std::optional<bool>(n->as_boolean()->get()) : std::nullopt;
  }

  // An array of strings; element locations are recorded as "key#i".
  std::optional<std::vector<std::string>> strings(std::string_view key, bool required = false) {
    const toml::node* n = get(key, toml::node_type::array);
    if (n == nullptr) {
      if (required && !has(key)) {
        missing(key);
      }
      return std::nullopt;
    }
    std::vector<std::string> out;
    const toml::array& arr = *n->as_array();
    bool ok = true;
    for (size_t i = 0; i < arr.size(); ++i) {
      const toml::node& e = arr[i];
      SourceLoc loc = locOf(e.source(), file_, linesBefore_);
      origin_.fields[Origin::elementKey(key, i)] = loc;
      if (!e.is_string()) {
        diags_.error(loc, "elements of '" + std::string(key) + "' must be strings, not " +
                              std::string(typeName(e.type())));
        ok = false;
        continue;
      }
      out.emplace_back(e.as_string()->get());
    }
    if (!ok) {
      reject(key);
      return std::nullopt;
    }
    return out;
  }

  // A table ([key]). A one-element array of tables ([[key]]) is reported but still read, so
  // that what it holds is checked and what refers to it does not dangle.
  const toml::table* table(std::string_view key) {
    const toml::node* n = raw(key);
    if (n != nullptr && n->is_array_of_tables() && n->as_array()->size() == 1) {
      error(key, "'" + std::string(key) + "' must be a table, not an array");
      return n->as_array()->get(0)->as_table();
    }
    n = get(key, toml::node_type::table);
    return n != nullptr ? n->as_table() : nullptr;
  }

  // An array of tables ([[key]]). A single table ([key]) is reported but still read, as one
  // element, for the same reason as in table(); anything else is rejected.
  std::vector<const toml::table*> tables(std::string_view key) {
    std::vector<const toml::table*> out;
    const toml::node* n = raw(key);
    if (n == nullptr || (n->is_array() && n->as_array()->empty())) {
      return out;
    }
    if (!n->is_array_of_tables()) {
      error(key, "'" + std::string(key) + "' must be an array of tables ([[" + context_prefix() +
                     std::string(key) + "]]), not " + std::string(typeName(n->type())));
      if (n->is_table()) {
        out.push_back(n->as_table());
      } else {
        reject(key);
      }
      return out;
    }
    for (const toml::node& e : *n->as_array()) {
      out.push_back(e.as_table());
    }
    return out;
  }

  void error(std::string_view key, std::string message) {
    diags_.error(origin_.at(key), std::move(message));
  }
  void errorAt(const SourceLoc& loc, std::string message) { diags_.error(loc, std::move(message)); }

  // Reports every key that no getter asked for, with a suggestion when one is close, then the
  // required keys that are missing and were not misspelt.
  void finish() {
    std::set<std::string, std::less<>> suggested;
    for (auto&& [k, v] : table_) {
      std::string key(k.str());
      if (known_.count(key) != 0) {
        continue;
      }
      std::string message = "unknown key '" + key + "' in " + context_;
      std::string best;
      size_t bestDistance = 3;
      for (const auto& candidate : known_) {
        size_t d = editDistance(key, candidate);
        if (d < bestDistance) {
          bestDistance = d;
          best = candidate;
        }
      }
      if (!best.empty()) {
        message += "; did you mean '" + best + "'?";
        suggested.insert(best);
      }
      diags_.error(locOf(k.source(), file_, linesBefore_), message);
    }
    for (Required& r : required_) {
      if (suggested.count(r.key) == 0) {
        diags_.error(r.loc, std::move(r.message));
      }
    }
    required_.clear();
  }

 private:
  // A required key found missing, reported by finish() unless it was misspelt.
  struct Required {
    std::string key;
    SourceLoc loc;
    std::string message;
  };

  // "namespace." for a context like "[[namespace]]", so nested hints read [[namespace.peer]];
  // nothing at the top level.
  std::string context_prefix() const {
    if (context_.empty() || context_.front() != '[') {
      return "";
    }
    std::string c = context_;
    c.erase(std::remove_if(c.begin(), c.end(), [](char ch) { return ch == '[' || ch == ']'; }),
            c.end());
    return c.empty() ? c : c + ".";
  }

  const toml::table& table_;
  std::string context_;
  const SourceFile& file_;
  uint32_t linesBefore_;
  Diagnostics& diags_;
  Origin origin_;
  std::set<std::string, std::less<>> known_;
  std::vector<Required> required_;
};

// Parses a required-or-optional string key with `parse`, reporting `what` on failure, and the
// expected form when there is a `hint` ("like 5s, 1.5s, ...").
template <typename T, typename Parse>
std::optional<T> parsed(TableReader& r, std::string_view key, bool required, Parse parse,
                        std::string_view what, std::string_view hint = {}) {
  auto s = r.str(key, required);
  if (!s) {
    return std::nullopt;
  }
  auto v = parse(*s);
  if (!v) {
    r.error(key, "invalid " + std::string(what) + " " + quote(*s) + " in '" + std::string(key) +
                     "'" + (hint.empty() ? "" : " (" + std::string(hint) + ")"));
    r.reject(key);
  }
  return v;
}

// Parses every element of a string array with `parse`. Malformed elements are reported and
// left out; the element locations are renumbered to match what is kept, so that a later error
// about element i of the result points at the element it is about.
template <typename T, typename Parse>
std::vector<T> parsedList(TableReader& r, std::string_view key, bool required, Parse parse,
                          std::string_view what) {
  std::vector<T> out;
  auto list = r.strings(key, required);
  if (!list) {
    return out;
  }
  std::vector<SourceLoc> kept;
  for (size_t i = 0; i < list->size(); ++i) {
    const SourceLoc loc = r.origin().at(key, i);
    auto v = parse((*list)[i]);
    if (!v) {
      r.errorAt(loc, "invalid " + std::string(what) + " " + quote((*list)[i]) + " in '" +
                         std::string(key) + "'");
      continue;
    }
    out.push_back(*v);
    kept.push_back(loc);
  }
  if (kept.size() != list->size()) {
    r.reject(key);
    for (size_t i = 0; i < list->size(); ++i) {
      r.origin().fields.erase(Origin::elementKey(key, i));
    }
    for (size_t i = 0; i < kept.size(); ++i) {
      r.origin().fields[Origin::elementKey(key, i)] = kept[i];
    }
  }
  return out;
}

template <typename E>
std::optional<E> enumValue(TableReader& r, std::string_view key,
                           std::initializer_list<std::pair<std::string_view, E>> options) {
  auto s = r.str(key);
  if (!s) {
    return std::nullopt;
  }
  std::string allowed;
  for (const auto& [name, value] : options) {
    if (*s == name) {
      return value;
    }
    allowed += (allowed.empty() ? "" : " | ") + std::string(name);
  }
  r.error(key, "'" + std::string(key) + "' must be one of " + allowed + ", got " + quote(*s));
  r.reject(key);
  return std::nullopt;
}

// Walks `t` as TOML's lexer does for strings and comments, calling `visit(c)` for each byte
// outside them (the newlines between lines included, but not the one that ends an unterminated
// single-line string: a parse error anyway); stops at the first byte for which it returns
// true and gives its 1-based line and column. This scanner's idea of a string can differ from
// the parser's (`a =1'` is a bad number to toml++, not a literal string): it only screens.
template <typename Visit>
std::optional<std::pair<uint32_t, uint32_t>> findOutsideStrings(std::string_view t, Visit visit) {
  uint32_t line = 1;
  uint32_t col = 1;
  size_t i = 0;
  auto advance = [&](size_t n) {
    for (size_t k = 0; k < n && i < t.size(); ++k, ++i) {
      if (t[i] == '\n') {
        ++line;
        col = 1;
      } else if ((static_cast<unsigned char>(t[i]) & 0xC0) != 0x80) {
        ++col;  // count characters, not UTF-8 continuation bytes
      }
    }
  };
  auto startsWith = [&](std::string_view s) { return t.substr(i, s.size()) == s; };
  while (i < t.size()) {
    const char c = t[i];
    if (c == '#') {  // comment: to the end of the line
      while (i < t.size() && t[i] != '\n') {
        advance(1);
      }
    } else if (startsWith("\"\"\"") || startsWith("'''")) {  // multi-line string
      const std::string_view close = t.substr(i, 3);
      const bool escapes = close[0] == '"';
      advance(3);
      while (i < t.size() && !startsWith(close)) {
        advance(escapes && t[i] == '\\' ? 2 : 1);
      }
      advance(3);
      while (i < t.size() && t[i] == close[0]) {  // up to two quotes may end the content
        advance(1);
      }
    } else if (c == '"' || c == '\'') {  // single-line string; a newline ends it (an error
      advance(1);                        // toml++ reports itself)
      while (i < t.size() && t[i] != c && t[i] != '\n') {
        advance(c == '"' && t[i] == '\\' ? 2 : 1);
      }
      advance(1);
    } else if (visit(c)) {
      return std::make_pair(line, col);
    } else {
      advance(1);
    }
  }
  return std::nullopt;
}

// TOML allows non-ASCII only inside strings and comments. toml++ 3.3.0 reaches an
// `unreachable` (undefined behaviour) on some non-ASCII code points elsewhere (upstream
// issue #295, fixed after 3.3.0), so such bytes are found and reported before it parses,
// with a clear position. The root fix is in schema/toml_include.h; this stays for its error
// message. Returns the 1-based line and column of the first one, if any.
inline std::optional<std::pair<uint32_t, uint32_t>> nonAsciiOutsideStrings(std::string_view t) {
  // All ASCII, the usual case, is seen a word at a time, without following strings and comments.
  uint64_t any = 0;
  size_t at = 0;
  for (; at + 8 <= t.size(); at += 8) {
    uint64_t word = 0;
    std::memcpy(&word, t.data() + at, 8);
    any |= word;
  }
  for (; at < t.size(); ++at) {
    any |= static_cast<unsigned char>(t[at]);
  }
  if ((any & 0x8080808080808080ULL) == 0) {
    return std::nullopt;
  }
  return findOutsideStrings(t, [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

// toml++ recurses once per part of a dotted key or a table header, with no bound of its own, so
// a long one overflows the stack. The most dots one line may hold outside strings and comments
// (a key of 129 parts is far beyond any config's), and the line of the first line that holds
// more, if any.
inline constexpr size_t kMaxDotsPerLine = 128;
inline constexpr std::string_view kTooManyDots =
    "more than 128 dots outside strings on one line: keys nested deeper than this config allows";
inline std::optional<uint32_t> tooManyDotsOutsideStrings(std::string_view t) {
  // The usual case, seen in one plain pass: no line holds that many dots at all (addresses in
  // strings count here, so a config of many forwards is not walked).
  size_t most = 0;
  for (size_t line = 0, i = 0; i < t.size(); ++i) {
    line = t[i] == '\n' ? 0 : line + (t[i] == '.' ? 1 : 0);
    most = std::max(most, line);
  }
  if (most <= kMaxDotsPerLine) {
    return std::nullopt;
  }
  size_t dots = 0;
  auto at = findOutsideStrings(t, [&](char c) {
    dots = c == '\n' ? 0 : dots + (c == '.' ? 1 : 0);
    return dots > kMaxDotsPerLine;
  });
  return at ? std::optional<uint32_t>(at->first) : std::nullopt;
}

}  // namespace edgeplane::detail
