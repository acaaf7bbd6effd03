// The proxy routing snapshot read back from JSON: strict (strict_json), every field checked,
// unknown keys refused, errors naming the JSON path (see snapshot.h).
#include "schema/encoding.h"
#include "schema/snapshot.h"

#include "schema/json_reader.h"
#include "schema/json_text.h"
#include "schema/snapshot_decoder.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

namespace edgeplane {
namespace snapshot_detail {

Result<ProxySnapshot> Decoder::snapshot(const Json& root) {
  if (root.type != Json::Type::Object) {
    return terminal("snapshot: the document must be a JSON object, not " +
                    std::string(typeName(root.type)));
  }
  ProxySnapshot s;
  Fields f(root, "");
  // The version first: a newer snapshot is refused as such, not for its unknown keys.
  int64_t version = 0;
  if (!integer(f, "version", version)) {
    return error();
  }
  // Version 2 (no API keys) is still read: the snapshot a host stored before an upgrade
  // keeps serving until the reconciler publishes the next one.
  if (version != kSnapshotVersion && version != 2) {
    return terminal("snapshot: version " + std::to_string(version) +
                    " is not supported (this build reads version " +
                    std::to_string(kSnapshotVersion) + ")");
  }
  version_ = version;
  if (!str(f, "host", s.host) || !checkText(f.at("host"), s.host, 253)) {
    return error();
  }
  if (!optStr(f, "commit", s.commit) || (s.commit && !checkText(f.at("commit"), *s.commit, 128))) {
    return error();
  }
  const Json* routeList = nullptr;
  const Json* certList = nullptr;
  const Json* keyList = nullptr;
  if (!member(f, "routes", Json::Type::Array, routeList) ||
      !member(f, "certificates", Json::Type::Array, certList) ||
      (version >= 3 && !member(f, "api_keys", Json::Type::Array, keyList))) {
    return error();
  }
  if (!noUnknownKeys(f, "the snapshot")) {
    return error();
  }
  if (auto r = certificates(*certList, s); !r) {
    return r.error();
  }
  if (auto r = routes(*routeList, s); !r) {
    return r.error();
  }
  if (keyList != nullptr) {
    if (auto r = apiKeys(*keyList, s); !r) {
      return r.error();
    }
  }
  return s;
}

// "certificates": each one valid, in strictly ascending name order.
Result<void> Decoder::certificates(const Json& certs, ProxySnapshot& s) {
  for (size_t i = 0; i < certs.array.size(); ++i) {
    const std::string where = "certificates[" + std::to_string(i) + "]";
    SnapshotCertificate c;
    if (!certificate(certs.array[i], where, c)) {
      return error();
    }
    if (!s.certificates.empty() && s.certificates.back().name >= c.name) {
      return terminal(
          "snapshot: " + where + ": certificate " + quote(c.name) +
          (s.certificates.back().name == c.name ? " appears twice" : " is out of name order"));
    }
    s.certificates.push_back(std::move(c));
  }
  return {};
}

// "routes": each one valid, in (kind, name) order, naming certificates the snapshot has, no
// hostname claimed twice.
Result<void> Decoder::routes(const Json& list, ProxySnapshot& s) {
  std::set<std::string, std::less<>> hostnames;
  for (size_t i = 0; i < list.array.size(); ++i) {
    const std::string where = "routes[" + std::to_string(i) + "]";
    SnapshotRoute r;
    if (!route(list.array[i], where, r)) {
      return error();
    }
    if (!s.routes.empty() &&
        std::tie(s.routes.back().kind, s.routes.back().name) >= std::tie(r.kind, r.name)) {
      return terminal(
          "snapshot: " + where + ": route " + quote(r.key()) +
          (s.routes.back().key() == r.key() ? " appears twice" : " is out of (kind, name) order"));
    }
    if (r.certificate && !std::binary_search(s.certificates.begin(), s.certificates.end(),
                                             *r.certificate, CertificateByName{})) {
      return terminal("snapshot: " + where + ".certificate: " + quote(*r.certificate) +
                      " is not in \"certificates\"");
    }
    for (const auto& h : r.hostnames) {
      if (!hostnames.insert(h).second) {
        return terminal("snapshot: " + where + ": hostname " + quote(h) +
                        " is claimed by another route");
      }
    }
    s.routes.push_back(std::move(r));
  }
  return {};
}

// "api_keys": each one valid, for the snapshot's gateways, in strictly ascending id order.
Result<void> Decoder::apiKeys(const Json& keys, ProxySnapshot& s) {
  std::set<std::string, std::less<>> gateways;
  for (const SnapshotRoute& r : s.routes) {
    if (r.kind == RouteKind::Gateway) {
      gateways.insert(r.name);
    }
  }
  for (size_t i = 0; i < keys.array.size(); ++i) {
    const std::string where = "api_keys[" + std::to_string(i) + "]";
    SnapshotApiKey k;
    if (!apiKey(keys.array[i], where, gateways, k)) {
      return error();
    }
    if (!s.api_keys.empty() && s.api_keys.back().id >= k.id) {
      return terminal("snapshot: " + where + ": key " + quote(k.id) +
                      (s.api_keys.back().id == k.id ? " appears twice" : " is out of id order"));
    }
    s.api_keys.push_back(std::move(k));
  }
  return {};
}

std::string Decoder::quote(std::string_view s) {
  std::string out;
  appendJsonString(out, s);
  return out;
}

// `where` is a JSON path; empty for the top-level object.
bool Decoder::fail(const std::string& where, const std::string& what) {
  error_ = where.empty() ? what : where + ": " + what;
  return false;
}

// Required member of a given type.
bool Decoder::member(Fields& f, std::string_view key, Json::Type type, const Json*& out) {
  out = f.find(key);
  if (out == nullptr) {
    return fail(f.where(), "missing key \"" + std::string(key) + "\"");
  }
  if (out->type != type) {
    return fail(f.at(key), "must be " + std::string(typeName(type)) + ", not " +
                               std::string(typeName(out->type)));
  }
  return true;
}

bool Decoder::str(Fields& f, std::string_view key, std::string& out) {
  const Json* v = nullptr;
  if (!member(f, key, Json::Type::String, v)) {
    return false;
  }
  out = v->string;
  return true;
}

bool Decoder::optStr(Fields& f, std::string_view key, std::optional<std::string>& out) {
  if (f.find(key) == nullptr) {
    return true;
  }
  std::string v;
  if (!str(f, key, v)) {
    return false;
  }
  out = std::move(v);
  return true;
}

bool Decoder::integer(Fields& f, std::string_view key, int64_t& out) {
  const Json* v = nullptr;
  if (!member(f, key, Json::Type::Int, v)) {
    return false;
  }
  out = v->integer;
  return true;
}

bool Decoder::boolean(Fields& f, std::string_view key, bool& out) {
  const Json* v = nullptr;
  if (!member(f, key, Json::Type::Bool, v)) {
    return false;
  }
  out = v->boolean;
  return true;
}

bool Decoder::noUnknownKeys(const Fields& f, std::string_view what) {
  if (auto k = f.unknownKey()) {
    return fail(f.where(), "unknown key " + quote(*k) + " in " + std::string(what));
  }
  return true;
}

// Non-empty, bounded, no control characters: names that end up in logs and metric labels.
bool Decoder::checkText(const std::string& where, const std::string& v, size_t maxLen) {
  if (v.empty()) {
    return fail(where, "must not be empty");
  }
  if (v.size() > maxLen) {
    return fail(where, "longer than " + std::to_string(maxLen) + " bytes");
  }
  for (char c : v) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return fail(where, "contains a control character");
    }
  }
  return true;
}

bool Decoder::stringArray(Fields& f, std::string_view key, std::vector<std::string>& out,
                          bool mayBeEmpty) {
  const Json* a = nullptr;
  if (!member(f, key, Json::Type::Array, a)) {
    return false;
  }
  if (a->array.empty() && !mayBeEmpty) {
    return fail(f.at(key), "must not be empty");
  }
  for (size_t i = 0; i < a->array.size(); ++i) {
    const Json& e = a->array[i];
    if (e.type != Json::Type::String) {
      return fail(f.at(key) + "[" + std::to_string(i) + "]",
                  "must be a string, not " + std::string(typeName(e.type)));
    }
    out.push_back(e.string);
  }
  return true;
}

bool Decoder::httpPath(const std::string& where, const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return fail(where, quote(path) + " must start with '/'");
  }
  if (path.size() > 4096) {
    return fail(where, "longer than 4096 bytes");
  }
  for (char c : path) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) {
      return fail(where, "contains a space or control character");
    }
  }
  return true;
}

// An absolute path without control characters: the proxy opens it as is.
bool Decoder::filePath(Fields& f, std::string_view key, std::string& out) {
  if (!str(f, key, out) || !checkText(f.at(key), out, 4096)) {
    return false;
  }
  if (out[0] != '/') {
    return fail(f.at(key), quote(out) + " is not an absolute path");
  }
  return true;
}

bool Decoder::certificate(const Json& v, const std::string& where, SnapshotCertificate& c) {
  if (v.type != Json::Type::Object) {
    return fail(where, "must be an object, not " + std::string(typeName(v.type)));
  }
  Fields f(v, where);
  if (!str(f, "name", c.name) || !checkText(f.at("name"), c.name, 256) ||
      !str(f, "fingerprint", c.fingerprint)) {
    return false;
  }
  const bool hex = c.fingerprint.size() == 64 &&
                   std::all_of(c.fingerprint.begin(), c.fingerprint.end(), [](char ch) {
                     return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
                   });
  if (!hex) {
    return fail(f.at("fingerprint"), "must be 64 lower-case hex digits (SHA-256)");
  }
  if (!filePath(f, "cert_file", c.cert_file) || !filePath(f, "key_file", c.key_file) ||
      !stringArray(f, "domains", c.domains) || !integer(f, "not_after", c.not_after)) {
    return false;
  }
  std::set<std::string_view> seen;
  for (size_t i = 0; i < c.domains.size(); ++i) {
    const std::string at = f.at("domains") + "[" + std::to_string(i) + "]";
    if (!isValidDnsName(c.domains[i], true)) {
      return fail(at, quote(c.domains[i]) + " is not a lower-case DNS name");
    }
    if (!seen.insert(c.domains[i]).second) {
      return fail(at, quote(c.domains[i]) + " appears twice");
    }
  }
  if (c.not_after <= 0) {
    return fail(f.at("not_after"), "must be a positive unix time");
  }
  return noUnknownKeys(f, "a certificate");
}

bool Decoder::apiKey(const Json& v, const std::string& where,
                     const std::set<std::string, std::less<>>& gateways, SnapshotApiKey& k) {
  if (v.type != Json::Type::Object) {
    return fail(where, "must be an object, not " + std::string(typeName(v.type)));
  }
  Fields f(v, where);
  if (!str(f, "id", k.id) || !str(f, "name", k.name) || !checkText(f.at("name"), k.name, 256) ||
      !str(f, "sha256", k.sha256)) {
    return false;
  }
  if (!isValidApiKeyId(k.id)) {
    return fail(f.at("id"), quote(k.id) + " is not 4 to 64 of [A-Za-z0-9_-]");
  }
  if (!parseHex32(k.sha256) || k.sha256.size() != 64 ||
      !std::all_of(k.sha256.begin(), k.sha256.end(),
                   [](char ch) { return !(ch >= 'A' && ch <= 'F'); })) {
    return fail(f.at("sha256"), "must be 64 lower-case hex digits (SHA-256)");
  }
  if (!stringArray(f, "gateways", k.gateways, true) ||
      !stringArray(f, "endpoints", k.endpoints, true)) {
    return false;
  }
  for (size_t i = 0; i < k.gateways.size(); ++i) {
    if (!gateways.contains(k.gateways[i])) {
      return fail(f.at("gateways") + "[" + std::to_string(i) + "]",
                  quote(k.gateways[i]) + " is not a gateway route");
    }
  }
  for (size_t i = 0; i < k.endpoints.size(); ++i) {
    if (!httpPath(f.at("endpoints") + "[" + std::to_string(i) + "]", k.endpoints[i])) {
      return false;
    }
  }
  std::string role;
  if (!str(f, "role", role)) {
    return false;
  }
  if (role == "worker") {
    k.role = ApiKeyRole::Worker;
  } else if (role == "admin") {
    k.role = ApiKeyRole::Admin;
  } else {
    return fail(f.at("role"), quote(role) + " is not \"worker\" or \"admin\"");
  }
  if (k.role == ApiKeyRole::Worker && k.gateways.empty()) {
    return fail(f.at("gateways"), "a worker key must name its gateways");
  }
  return boolean(f, "enabled", k.enabled) && noUnknownKeys(f, "an API key");
}

}  // namespace snapshot_detail

Result<ProxySnapshot> snapshotFromJson(std::string_view json) {
  if (json.size() > kMaxSnapshotBytes) {
    return terminal("snapshot: " + std::to_string(json.size()) + " bytes is over the limit of " +
                    std::to_string(kMaxSnapshotBytes));
  }
  strict_json::Json root;
  std::string error;
  if (!strict_json::parse(json, root, error)) {
    return terminal("snapshot " + error);
  }
  return snapshot_detail::Decoder().snapshot(root);
}

}  // namespace edgeplane
