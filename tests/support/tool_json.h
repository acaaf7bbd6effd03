// The JSON that `ip -j` and `nft -j` print, for the lab's independent checks: read with
// Poco::JSON (objects in document order) into a tree the tests walk and print.
#pragma once

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgeplane::testing {

struct ToolJson {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  std::string text;  // Bool/Number: the literal; String: the decoded value
  std::vector<ToolJson> items;
  std::vector<std::pair<std::string, ToolJson>> members;  // in document order

  const ToolJson* get(std::string_view key) const {
    for (const auto& [k, v] : members) {
      if (k == key) {
        return &v;
      }
    }
    return nullptr;
  }
  // The member, or null when there is none.
  const ToolJson& operator[](std::string_view key) const {
    static const ToolJson null;
    const ToolJson* v = get(key);
    return v != nullptr ? *v : null;
  }
  bool has(std::string_view key) const { return get(key) != nullptr; }
  // A member's text ("" when there is none).
  std::string str(std::string_view key) const { return (*this)[key].text; }
  size_t size() const { return items.size(); }
  // An array holding the string s.
  bool contains(std::string_view s) const {
    return std::any_of(items.begin(), items.end(), [&](const ToolJson& j) { return j.text == s; });
  }

  // Compact, in document order, without "handle" members (nft's differ from run to run).
  std::string dump() const {
    switch (type) {
      case Type::Null:
        return "null";
      case Type::Bool:
      case Type::Number:
        return text;
      case Type::String:
        return quote(text);
      case Type::Array: {
        std::string out = "[";
        for (size_t i = 0; i < items.size(); ++i) {
          out += (i > 0 ? "," : "") + items[i].dump();
        }
        return out + "]";
      }
      case Type::Object: {
        std::string out = "{";
        bool first = true;
        for (const auto& [k, v] : members) {
          if (k == "handle") {
            continue;
          }
          out += (first ? "" : ",") + quote(k) + ":" + v.dump();
          first = false;
        }
        return out + "}";
      }
    }
    return "";
  }

  static std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
      }
      out += c;
    }
    return out + "\"";
  }

  static ToolJson from(const Poco::Dynamic::Var& v) {
    ToolJson j;
    if (v.isEmpty()) {
      return j;
    }
    if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
      const auto o = v.extract<Poco::JSON::Object::Ptr>();
      j.type = Type::Object;
      for (const std::string& name : o->getNames()) {
        j.members.emplace_back(name, from(o->get(name)));
      }
    } else if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
      const auto a = v.extract<Poco::JSON::Array::Ptr>();
      j.type = Type::Array;
      for (size_t i = 0; i < a->size(); ++i) {
        j.items.push_back(from(a->get(static_cast<unsigned>(i))));
      }
    } else if (v.isString()) {
      j.type = Type::String;
      j.text = v.extract<std::string>();
    } else if (v.isBoolean()) {
      j.type = Type::Bool;
      j.text = v.extract<bool>() ? "true" : "false";
    } else {
      j.type = Type::Number;
      j.text = v.toString();
    }
    return j;
  }
};

// `text` as a ToolJson; false (and `out` null) when it is not one JSON document.
inline bool parseToolJson(const std::string& text, ToolJson& out) {
  out = ToolJson{};
  try {
    Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));
    out = ToolJson::from(parser.parse(text));
    return true;
  } catch (const Poco::Exception&) {
    return false;
  }
}

}  // namespace edgeplane::testing
