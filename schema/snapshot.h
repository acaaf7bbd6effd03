// The proxy's routing snapshot: what the reconciler hands edgeplane-proxy through the store.
//
// Built from the desired state resolved for one host (suspended namespaces left out), written
// as JSON into the store with a new generation after the system operations of an apply, read
// back by the proxy. The JSON form is the contract between the two programs; both sides use
// this codec, and an unknown "version" is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/model.h"
#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane {

// 2: certificates (name, fingerprint, files) and the health thresholds.
// 3: the API keys of the host's gateways (verifiers only), the gateway endpoints' health checks.
inline constexpr int kSnapshotVersion = 3;
// snapshotFromJson refuses longer input: a few thousand routes take well under 2 MiB.
inline constexpr size_t kMaxSnapshotBytes = size_t{32} << 20;

enum class RouteKind : uint8_t { Passthrough, Site, Gateway };
std::string_view toString(RouteKind k);

struct SnapshotEndpoint {  // a gateway endpoint
  std::string path;
  std::string method;
  std::vector<Endpoint> backends;
  Balance balance = Balance::RoundRobin;
  // Its health_check, for its backends: the same fields, with the same meaning, as a site
  // route's (SnapshotRoute::health_*). Initialised, so that {path, method, backends, balance}
  // stays a complete initialiser.
  std::optional<Duration> health_interval = std::nullopt;
  std::optional<Duration> health_timeout = std::nullopt;
  std::optional<std::string> health_path = std::nullopt;
  std::optional<uint32_t> health_healthy_threshold = std::nullopt;
  std::optional<uint32_t> health_unhealthy_threshold = std::nullopt;
  std::optional<std::string> health_expect_status = std::nullopt;
  auto operator<=>(const SnapshotEndpoint&) const = default;
};

struct SnapshotRoute {
  RouteKind kind = RouteKind::Passthrough;
  std::string name;                    // the passthrough/site/gateway name, unique per kind
  std::vector<std::string> hostnames;  // lower-case; "*.x.y" wildcards allowed
  std::string namespace_name;          // the tenant namespace ("tenant-a"); "": a host site
  std::string netns;                   // its network namespace ("ep-tenant-a"); "": the proxy's own
  std::vector<Endpoint> backends;      // passthrough and site
  Balance balance = Balance::RoundRobin;
  ProxyProtocol proxy_protocol = ProxyProtocol::None;  // passthrough
  std::optional<std::string> certificate;              // site and gateway
  bool redirect_http = false;                          // site
  std::optional<Duration> health_interval;             // site (health_check)
  std::optional<Duration> health_timeout;
  std::optional<std::string> health_path;
  std::optional<uint32_t> health_healthy_threshold;    // consecutive passes to come up (2)
  std::optional<uint32_t> health_unhealthy_threshold;  // consecutive failures to go down (3)
  std::optional<std::string> health_expect_status;     // "200-399"
  std::optional<std::string> rate_limit;               // gateway, as written ("100/minute")
  std::vector<SnapshotEndpoint> endpoints;             // gateway
  auto operator<=>(const SnapshotRoute&) const = default;

  // "passthrough secure": unique across kinds; the key for traffic counters.
  std::string key() const;
};

// A certificate the proxy terminates TLS with, as materialised on the host by the reconciler
// (self-signed, ACME: generated under <state-dir>/certs; files: copied there on apply). The key
// itself never enters the snapshot (the admin API serves it), only the path of its 0600 file.
// A route names its certificate by `name`; the proxy reloads a certificate only when its
// fingerprint changed.
struct SnapshotCertificate {
  std::string name;                  // the [[certificate]] name (or a placeholder's name)
  std::string fingerprint;           // lower-case hex SHA-256 of the leaf certificate's DER
  std::string cert_file;             // PEM: leaf first, then the chain
  std::string key_file;              // PEM private key, 0600
  std::vector<std::string> domains;  // as in the certificate's SANs
  int64_t not_after = 0;             // unix seconds
  auto operator<=>(const SnapshotCertificate&) const = default;
};

// An API key of the host's gateways: its verifier, never the key (see schema/api_key.h).
struct SnapshotApiKey {
  std::string id;
  std::string name;
  std::string sha256;                  // 64 lower-case hex digits
  std::vector<std::string> gateways;   // gateway route names; empty: every gateway (admin)
  std::vector<std::string> endpoints;  // paths; empty: every endpoint of those gateways
  ApiKeyRole role = ApiKeyRole::Worker;
  bool enabled = true;
  auto operator<=>(const SnapshotApiKey&) const = default;
};

struct ProxySnapshot {
  std::string host;
  std::optional<std::string> commit;              // the config commit, when applied from Git
  std::vector<SnapshotRoute> routes;              // sorted by (kind, name)
  std::vector<SnapshotCertificate> certificates;  // sorted by name; every route's is here
  std::vector<SnapshotApiKey> api_keys;           // sorted by id
  auto operator<=>(const ProxySnapshot&) const = default;
};

// The routes of `resolved` (a Desired already passed through resolveFor(all, host)), with
// suspended namespaces' routes left out, and the API keys of the gateways that remain (a key's
// `gateways` cut down to those; a key left with none is left out). `certificates` stays empty: only
// the reconciler knows what it materialised on the host, and fills it in before publishing.
ProxySnapshot buildSnapshot(const Desired& resolved, const std::string& host,
                            std::optional<std::string> commit);

// Canonical JSON (stable key order, no whitespace, integers only): equal snapshots give equal
// text, so the reconciler can skip writing a generation that changes nothing.
//   {"version":3,"host":"edge-1","commit":"<id>"(if set),"routes":[ROUTE,...],
//    "certificates":[CERT,...],"api_keys":[KEY,...]}
// ROUTE starts with "kind","name","hostnames","namespace","netns", then per kind:
//   passthrough: "backends":["10.0.0.1:443",...],"balance","proxy_protocol"
//   site:        "backends","balance","certificate","redirect_http", and if set
//                "health_path","health_interval_ms","health_timeout_ms",
//                "health_healthy_threshold","health_unhealthy_threshold","health_expect_status"
//   gateway:     "certificate","rate_limit"(if set),
//                "endpoints":[{"path","method","backends","balance", and if set the six
//                "health_*" members of a site},...]
// CERT: {"name","fingerprint","cert_file","key_file","domains":[…],"not_after"}
// KEY:  {"id","name","sha256","gateways":[…],"endpoints":[…],"role","enabled"}
// Members a kind does not use are not written (and refused when read).
std::string snapshotToJson(const ProxySnapshot& s);
// Strict: a document over kMaxSnapshotBytes, invalid JSON (fractions, duplicate keys, bad
// UTF-8 included), a "version" other than 3 or 2 (2: no "api_keys", read as none), missing or
// unknown keys, wrong types, bad addresses, hostnames that are not lower-case DNS names, a netns
// other than netnsName(namespace) (both empty only for a site whose backends are all loopback
// addresses: a site of the host itself), routes out of (kind, name) order or repeated, a hostname
// claimed by two routes, certificates out of name order or repeated, a fingerprint that is not 64
// lower-case hex digits, a relative file path, a route naming a certificate that is not in the
// list, keys out of id order or repeated, a key id outside [A-Za-z0-9_-]{4,64}, a key naming a
// gateway that is not a gateway route, and a worker key without gateways are errors (terminal,
// naming the JSON path).
Result<ProxySnapshot> snapshotFromJson(std::string_view json);

}  // namespace edgeplane
