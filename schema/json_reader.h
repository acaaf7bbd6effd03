// A strict JSON reader (snapshots, ACME messages, owned rows): integers only, unique keys, UTF-8.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgeplane::strict_json {

struct Json {
  enum class Type : uint8_t { Null, Bool, Int, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  int64_t integer = 0;
  std::string string;
  std::vector<Json> array;
  // An object's members in document order, keys unique. Two vectors, not one of pairs: a
  // std::pair cannot hold Json while Json is still incomplete.
  std::vector<std::string> keys;
  std::vector<Json> values;
};

std::string_view typeName(Json::Type t);

// RFC 8259 JSON, with the limits of the snapshot format: numbers must be integers that fit
// int64 (the snapshot has no fractions, and a double would silently round a large one),
// strings must be valid UTF-8, an object may not repeat a key (which of two values wins is
// not something two programs agree on), nesting is bounded. False with `error` ("JSON, byte
// N: …") when the text is not such a document. `out` is reset first.
bool parse(std::string_view text, Json& out, std::string& error);

// The value of an object's member `key`; nullptr when it has none (or is not an object).
const Json* member(const Json& object, std::string_view key);

}  // namespace edgeplane::strict_json
