// The CA's RFC 8555 JSON documents decoded into types (see messages.h).
#include "reconciler/acme/messages.h"

#include <initializer_list>
#include <utility>

#include "schema/json_reader.h"

namespace edgeplane::acme {
namespace {

using strict_json::Json;

const Json* member(const Json& j, std::string_view key) {
  for (size_t i = 0; i < j.keys.size(); ++i) {
    if (j.keys[i] == key) {
      return &j.values[i];
    }
  }
  return nullptr;
}

Result<Json> object(std::string_view body) {
  Json j;
  std::string error;
  if (!strict_json::parse(body, j, error) || j.type != Json::Type::Object) {
    return terminal("the CA's answer is not a JSON object" +
                    (error.empty() ? std::string() : " (" + error + ")"));
  }
  return j;
}

Error wrongType(std::string_view key, std::string_view want) {
  return terminal("'" + std::string(key) + "' is not " + std::string(want));
}

// `out` set when `key` is a string, left alone when absent; an error otherwise.
Result<void> readString(const Json& j, std::string_view key, std::string& out) {
  const Json* m = member(j, key);
  if (m == nullptr) {
    return {};
  }
  if (m->type != Json::Type::String) {
    return wrongType(key, "a string");
  }
  out = m->string;
  return {};
}

Result<void> readBool(const Json& j, std::string_view key, bool& out) {
  const Json* m = member(j, key);
  if (m == nullptr) {
    return {};
  }
  if (m->type != Json::Type::Bool) {
    return wrongType(key, "a boolean");
  }
  out = m->boolean;
  return {};
}

// Each named member read with readString.
Result<void> readStrings(const Json& j,
                         std::initializer_list<std::pair<std::string_view, std::string*>> fields) {
  for (const auto& [name, out] : fields) {
    if (auto r = readString(j, name, *out); !r) {
      return r.error();
    }
  }
  return {};
}

Result<Problem> problemFrom(const Json& j, bool nested) {
  if (j.type != Json::Type::Object) {
    return terminal("a problem document is not a JSON object");
  }
  Problem p;
  if (auto r = readStrings(j, {{"type", &p.type}, {"detail", &p.detail}}); !r) {
    return r.error();
  }
  if (const Json* id = member(j, "identifier"); id != nullptr) {
    if (id->type != Json::Type::Object) {
      return wrongType("identifier", "an object");
    }
    if (auto r = readString(*id, "value", p.identifier); !r) {
      return r.error();
    }
  }
  const Json* subs = member(j, "subproblems");
  if (subs == nullptr) {
    return p;
  }
  // Section 6.7.1: subproblems do not nest.
  if (nested || subs->type != Json::Type::Array) {
    return wrongType("subproblems", nested ? "allowed in a subproblem" : "an array");
  }
  for (const Json& s : subs->array) {
    auto sub = problemFrom(s, true);
    if (!sub) {
      return sub.error();
    }
    p.subproblems.push_back(std::move(sub).value());
  }
  return p;
}

// The optional "error" member of an order, authorization or challenge.
Result<void> readError(const Json& j, std::optional<Problem>& out) {
  const Json* e = member(j, "error");
  if (e == nullptr) {
    return {};
  }
  auto p = problemFrom(*e, false);
  if (!p) {
    return terminal("'error': " + p.error().message);
  }
  out = std::move(p).value();
  return {};
}

Result<Challenge> challengeFrom(const Json& j) {
  if (j.type != Json::Type::Object) {
    return terminal("a challenge is not a JSON object");
  }
  Challenge c;
  if (auto r = readStrings(
          j, {{"type", &c.type}, {"url", &c.url}, {"token", &c.token}, {"status", &c.status}});
      !r) {
    return r.error();
  }
  if (auto r = readError(j, c.error); !r) {
    return r.error();
  }
  return c;
}

}  // namespace

Result<Directory> parseDirectory(std::string_view body) {
  auto j = object(body);
  if (!j) {
    return j.error();
  }
  Directory d;
  if (auto r = readStrings(*j, {{"newNonce", &d.newNonce},
                                {"newAccount", &d.newAccount},
                                {"newOrder", &d.newOrder},
                                {"renewalInfo", &d.renewalInfo}});
      !r) {
    return r.error();
  }
  if (d.newNonce.empty() || d.newAccount.empty() || d.newOrder.empty()) {
    return terminal("lacks newNonce, newAccount or newOrder");
  }
  if (const Json* meta = member(*j, "meta"); meta != nullptr) {
    if (meta->type != Json::Type::Object) {
      return wrongType("meta", "an object");
    }
    if (auto r = readBool(*meta, "externalAccountRequired", d.externalAccountRequired); !r) {
      return r.error();
    }
  }
  return d;
}

Result<Order> parseOrder(std::string_view body) {
  auto j = object(body);
  if (!j) {
    return j.error();
  }
  Order o;
  if (auto r = readStrings(
          *j, {{"status", &o.status}, {"finalize", &o.finalize}, {"certificate", &o.certificate}});
      !r) {
    return r.error();
  }
  if (const Json* as = member(*j, "authorizations"); as != nullptr) {
    if (as->type != Json::Type::Array) {
      return wrongType("authorizations", "an array");
    }
    o.authorizations.emplace();
    for (const Json& a : as->array) {
      if (a.type != Json::Type::String) {
        return terminal("an authorization URL is not a string");
      }
      o.authorizations->push_back(a.string);
    }
  }
  if (auto r = readError(*j, o.error); !r) {
    return r.error();
  }
  return o;
}

Result<Authorization> parseAuthorization(std::string_view body) {
  auto j = object(body);
  if (!j) {
    return j.error();
  }
  Authorization a;
  if (auto r = readString(*j, "status", a.status); !r) {
    return r.error();
  }
  if (const Json* id = member(*j, "identifier"); id != nullptr) {
    if (id->type != Json::Type::Object) {
      return wrongType("identifier", "an object");
    }
    if (auto r = readStrings(*id, {{"type", &a.identifierType}, {"value", &a.identifierValue}});
        !r) {
      return r.error();
    }
  }
  if (auto r = readBool(*j, "wildcard", a.wildcard); !r) {
    return r.error();
  }
  if (const Json* cs = member(*j, "challenges"); cs != nullptr) {
    if (cs->type != Json::Type::Array) {
      return wrongType("challenges", "an array");
    }
    for (const Json& c : cs->array) {
      auto ch = challengeFrom(c);
      if (!ch) {
        return ch.error();
      }
      a.challenges.push_back(std::move(ch).value());
    }
  }
  if (auto r = readError(*j, a.error); !r) {
    return r.error();
  }
  return a;
}

Result<Problem> parseProblem(std::string_view body) {
  auto j = object(body);
  if (!j) {
    return j.error();
  }
  return problemFrom(*j, false);
}

std::string problemSummary(const Problem& p) {
  return p.detail.empty() ? p.type : p.type + ": " + p.detail;
}

}  // namespace edgeplane::acme
