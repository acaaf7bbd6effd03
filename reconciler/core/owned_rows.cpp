// The store's owned rows <-> StoreView: rows as OwnedRows::row writes them are read directly,
// others with the strict JSON reader; a changed view is written back as only the rows it changed.
#include "reconciler/core/owned_rows.h"

#include "schema/json_reader.h"
#include "schema/json_text.h"

#include <charconv>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace edgeplane::core {

namespace {

// A JSON string of printable ASCII without escapes at the front of `in` ("…"): its text, and
// `in` moved past it; nullopt (and `in` as it was) for anything else.
std::optional<std::string_view> plainString(std::string_view& in) {
  if (in.empty() || in.front() != '"') {
    return std::nullopt;
  }
  for (size_t i = 1; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '"') {
      const std::string_view text = in.substr(1, i - 1);
      in.remove_prefix(i + 1);
      return text;
    }
    if (c == '\\' || c < 0x20 || c > 0x7e) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

// The parts of a row's data in exactly the form OwnedRows::row writes when no string needs an
// escape: {"spec":"…"[,"index":N][,"key":"…"]}. Anything else (an escape, a non-ASCII byte,
// other spacing or order) is nullopt, and goes to the strict reader, which gives the same
// result for these and an error for what is not JSON: a no-op run reads every row.
struct PlainRow {
  std::string_view spec;
  std::optional<uint32_t> index;
  std::optional<std::string_view> key;
};
std::optional<PlainRow> plainRow(std::string_view in) {
  PlainRow row;
  auto take = [&in](std::string_view literal) {
    if (!in.starts_with(literal)) {
      return false;
    }
    in.remove_prefix(literal.size());
    return true;
  };
  if (!take("{\"spec\":")) {
    return std::nullopt;
  }
  auto spec = plainString(in);
  if (!spec) {
    return std::nullopt;
  }
  row.spec = *spec;
  if (take(",\"index\":")) {
    size_t digits = 0;
    while (digits < in.size() && in[digits] >= '0' && in[digits] <= '9') {
      ++digits;
    }
    uint32_t value = 0;
    auto [end, ec] = std::from_chars(in.data(), in.data() + digits, value);
    if (digits == 0 || (digits > 1 && in.front() == '0') || ec != std::errc() ||
        end != in.data() + digits) {
      return std::nullopt;
    }
    row.index = value;
    in.remove_prefix(digits);
  }
  if (take(",\"key\":")) {
    auto key = plainString(in);
    if (!key) {
      return std::nullopt;
    }
    row.key = *key;
  }
  if (in != "}") {
    return std::nullopt;
  }
  return row;
}

}  // namespace

// One owned row's data: {"spec": "…", "index": N (uplinks), "key": "…" (forwards)}. Rows as
// OwnedRows::row writes them are read directly (plainRow); others with the strict reader.
Result<core::StoreView> storeViewFromOwned(const std::vector<OwnedResource>& rows) {
  using strict_json::Json;
  core::StoreView v;
  std::string error;
  for (const auto& row : rows) {
    std::string key;
    key.reserve(row.kind.size() + 1 + row.name.size());
    key.append(row.kind).append(" ").append(row.name);
    if (const std::optional<PlainRow> plain = plainRow(row.data)) {
      if (plain->key && row.kind == "forward") {
        v.forwardNames.insert_or_assign(std::string(*plain->key), row.name);
      }
      if (plain->index && row.kind == "uplink") {
        v.uplinkIndex[row.name] = *plain->index;
      }
      v.applied.insert_or_assign(v.applied.end(), std::move(key), std::string(plain->spec));
      continue;
    }
    Json data;
    auto bad = [&](std::string_view why) {
      return terminal("owned resource " + key + ": " + std::string(why));
    };
    if (!strict_json::parse(row.data, data, error)) {
      return bad(error);
    }
    if (data.type != Json::Type::Object) {
      return bad("data is not an object");
    }
    std::string spec;
    for (size_t i = 0; i < data.keys.size(); ++i) {
      const std::string& name = data.keys[i];
      Json& value = data.values[i];
      if (name == "spec" || name == "key") {
        if (value.type != Json::Type::String) {
          return bad("'" + name + "' is not a string");
        }
        if (name == "spec") {
          spec = std::move(value.string);
        } else if (row.kind == "forward") {
          v.forwardNames[std::move(value.string)] = row.name;
        }
      } else if (name == "index" && row.kind == "uplink") {
        if (value.type != Json::Type::Int || value.integer < 0 ||
            value.integer > std::numeric_limits<uint32_t>::max()) {
          return bad("'index' is not an unsigned 32-bit integer");
        }
        v.uplinkIndex[row.name] = static_cast<uint32_t>(value.integer);
      }
    }
    // Rows come ordered by kind and name, which is the order of "<kind> <name>": each key
    // goes at the end (the hint is only that: rows in another order still land in place).
    v.applied.insert_or_assign(v.applied.end(), key, std::move(spec));
  }
  return v;
}

namespace {

// What an owned row's data is made of: the spec, an uplink's pool index, a forward's key.
struct RowParts {
  std::string_view spec;
  std::optional<uint32_t> index;
  std::optional<std::string_view> forwardKey;
  bool operator==(const RowParts&) const = default;
};

// The rows of one view, built on demand: a row is serialised only when it is asked for.
class OwnedRows {
 public:
  explicit OwnedRows(const core::StoreView& view) : view_(view) {
    // A name claimed by several keys keeps the last, as the view's row always did.
    keyOfForward_.reserve(view.forwardNames.size());
    for (const auto& [key, name] : view.forwardNames) {
      keyOfForward_.insert_or_assign(name, key);
    }
  }

  static std::pair<std::string_view, std::string_view> split(std::string_view key) {
    auto space = key.find(' ');
    return {key.substr(0, space),
            space == std::string_view::npos ? std::string_view() : key.substr(space + 1)};
  }

  RowParts parts(std::string_view key, std::string_view spec) const {
    auto [kind, name] = split(key);
    RowParts p{spec, std::nullopt, std::nullopt};
    if (kind == "uplink") {
      if (auto it = view_.uplinkIndex.find(name); it != view_.uplinkIndex.end()) {
        p.index = it->second;
      }
    }
    if (kind == "forward") {
      if (auto it = keyOfForward_.find(name); it != keyOfForward_.end()) {
        p.forwardKey = it->second;
      }
    }
    return p;
  }

  static OwnedResource row(std::string_view key, const RowParts& p, int64_t at) {
    auto [kind, name] = split(key);
    OwnedResource row;
    row.kind = std::string(kind);
    row.name = std::string(name);
    // {"spec":…,"index":N,"key":…}, written directly: an apply of 10k forwards writes 10k.
    row.data = "{\"spec\":";
    appendJsonString(row.data, p.spec);
    if (p.index) {
      row.data += ",\"index\":" + std::to_string(*p.index);
    }
    if (p.forwardKey) {
      row.data += ",\"key\":";
      appendJsonString(row.data, *p.forwardKey);
    }
    row.data += '}';
    row.updatedAt = at;
    return row;
  }

 private:
  const core::StoreView& view_;
  std::unordered_map<std::string_view, std::string_view> keyOfForward_;
};

}  // namespace

std::vector<OwnedResource> ownedFromStoreView(const core::StoreView& view, int64_t at) {
  const OwnedRows rows(view);
  std::vector<OwnedResource> out;
  out.reserve(view.applied.size());
  for (const auto& [key, spec] : view.applied) {
    out.push_back(OwnedRows::row(key, rows.parts(key, spec), at));
  }
  return out;
}

OwnedChanges ownedChanges(const core::StoreView& before, const core::StoreView& after, int64_t at) {
  // A row is its spec plus, for a forward, its key and, for an uplink, its index, from the
  // views' side maps. When those maps are equal (the usual case: a change of targets, not of
  // ports or uplinks), a row changed exactly when its spec did, and the maps are read only for
  // the rows written.
  const bool sameSides =
      before.forwardNames == after.forwardNames && before.uplinkIndex == after.uplinkIndex;
  std::optional<OwnedRows> was;
  std::optional<OwnedRows> is;
  auto rowsOf = [](std::optional<OwnedRows>& rows, const core::StoreView& view) -> OwnedRows& {
    if (!rows) {
      rows.emplace(view);
    }
    return *rows;
  };
  OwnedChanges changes;
  auto b = before.applied.begin();
  auto a = after.applied.begin();
  // Both maps are sorted by key: one merge pass.
  while (b != before.applied.end() || a != after.applied.end()) {
    if (a == after.applied.end() || (b != before.applied.end() && b->first < a->first)) {
      auto [kind, name] = OwnedRows::split(b->first);
      changes.removed.emplace_back(std::string(kind), std::string(name));
      ++b;
      continue;
    }
    const bool added = b == before.applied.end() || a->first < b->first;
    const bool changed = added || (sameSides ? b->second != a->second
                                             : rowsOf(was, before).parts(b->first, b->second) !=
                                                   rowsOf(is, after).parts(a->first, a->second));
    if (changed) {
      changes.put.push_back(
          OwnedRows::row(a->first, rowsOf(is, after).parts(a->first, a->second), at));
    }
    ++a;
    if (!added) {
      ++b;
    }
  }
  return changes;
}

}  // namespace edgeplane::core
