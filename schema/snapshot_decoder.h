// The strict reader behind snapshotFromJson (snapshot.h): JSON objects read member by member
// (Fields) and the Decoder, whose checks are in snapshot_decode.cpp (the document, its
// certificates, its list of routes, its API keys, and the field types) and
// snapshot_decode_routes.cpp (each route: site, passthrough or gateway, backends, health checks).
// Internal to the schema library.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schema/json_reader.h"
#include "schema/snapshot.h"

namespace edgeplane::snapshot_detail {

using strict_json::Json;
using strict_json::typeName;

// Reads the members of one JSON object by key; whatever is left unread is an unknown key.
// Errors name the JSON path ("routes[2].backends[0]").
class Fields {
 public:
  Fields(const Json& obj, std::string where) : obj_(obj), where_(std::move(where)) {
    used_.assign(obj.keys.size(), false);
  }

  const std::string& where() const { return where_; }
  std::string at(std::string_view key) const {
    return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
  }

  // The member, marked read; nullptr when absent.
  const Json* find(std::string_view key) {
    for (size_t i = 0; i < obj_.keys.size(); ++i) {
      if (obj_.keys[i] == key) {
        used_[i] = true;
        return &obj_.values[i];
      }
    }
    return nullptr;
  }

  // The first member nobody read, if any.
  std::optional<std::string> unknownKey() const {
    for (size_t i = 0; i < obj_.keys.size(); ++i) {
      if (!used_[i]) {
        return obj_.keys[i];
      }
    }
    return std::nullopt;
  }

 private:
  const Json& obj_;
  std::string where_;
  std::vector<bool> used_;
};

// Heterogeneous ordering for looking a route's certificate up in the sorted list.
struct CertificateByName {
  bool operator()(const SnapshotCertificate& a, const std::string& b) const { return a.name < b; }
  bool operator()(const std::string& a, const SnapshotCertificate& b) const { return a < b.name; }
};

class Decoder {
 public:
  Result<ProxySnapshot> snapshot(const Json& root);

 private:
  // snapshot_decode.cpp
  Result<void> certificates(const Json& certs, ProxySnapshot& s);
  Result<void> routes(const Json& list, ProxySnapshot& s);
  Result<void> apiKeys(const Json& keys, ProxySnapshot& s);
  static std::string quote(std::string_view s);
  bool fail(const std::string& where, const std::string& what);
  bool member(Fields& f, std::string_view key, Json::Type type, const Json*& out);
  bool str(Fields& f, std::string_view key, std::string& out);
  bool optStr(Fields& f, std::string_view key, std::optional<std::string>& out);
  bool integer(Fields& f, std::string_view key, int64_t& out);
  bool boolean(Fields& f, std::string_view key, bool& out);
  bool noUnknownKeys(const Fields& f, std::string_view what);
  bool checkText(const std::string& where, const std::string& v, size_t maxLen);
  bool stringArray(Fields& f, std::string_view key, std::vector<std::string>& out,
                   bool mayBeEmpty = false);
  bool httpPath(const std::string& where, const std::string& path);
  bool filePath(Fields& f, std::string_view key, std::string& out);
  bool certificate(const Json& v, const std::string& where, SnapshotCertificate& c);
  bool apiKey(const Json& v, const std::string& where,
              const std::set<std::string, std::less<>>& gateways, SnapshotApiKey& k);
  Error error() const { return terminal("snapshot: " + error_); }

  // snapshot_decode_routes.cpp
  bool backends(Fields& f, std::vector<Endpoint>& out);
  bool hostSiteBackends(Fields& f, const SnapshotRoute& r);
  bool hostnames(Fields& f, std::vector<std::string>& out);
  bool balance(Fields& f, Balance& out);
  bool durationMs(Fields& f, std::string_view key, std::optional<Duration>& out);
  bool namespaceName(Fields& f, SnapshotRoute& r);
  bool endpoint(const Json& v, const std::string& where, SnapshotEndpoint& e);
  bool threshold(Fields& f, std::string_view key, std::optional<uint32_t>& out);
  // Defined in snapshot_decode_routes.cpp, beside its only callers.
  template <typename T>
  bool health(Fields& f, T& r);
  bool route(const Json& v, const std::string& where, SnapshotRoute& r);
  bool passthroughRoute(Fields& f, SnapshotRoute& r);
  bool gatewayRoute(Fields& f, SnapshotRoute& r);

  std::string error_;
  int64_t version_ = kSnapshotVersion;  // of the document being read
};

}  // namespace edgeplane::snapshot_detail
