// The target host state derived from one host's desired state: what should exist, concretely.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "reconciler/core/host_state.h"
#include "schema/model.h"
#include "schema/result.h"
#include "schema/snapshot.h"

namespace edgeplane::core {

struct UplinkTarget {
  std::string ns;
  uint32_t index = 0;    // which /31 of the pool
  IpPrefix hostAddress;  // /31, host end
  IpPrefix nsAddress;    // /31, namespace end; the default gateway inside is hostAddress
};

struct ForwardTarget {
  std::string name;
  std::string ns;
  Protocol protocol = Protocol::Tcp;
  PortRange publicPort;
  Endpoint target;               // first port of the range maps to target.port
  std::string key() const;       // "tcp/22012", "udp/30000-30010"
  std::string describe() const;  // "tcp/22012 -> 10.50.0.12:22 in tenant-a"
};

struct RouteTarget {
  std::string ns;
  IpPrefix destination;
  IpAddress via;
};

struct PeerTarget {
  std::string name;
  WgKey publicKey;
  std::vector<IpPrefix> allowedIps;  // sorted networks
  std::optional<HostPort> endpoint;
  std::optional<uint16_t> keepalive;
  // The peer's preshared key: the host-local file it comes from (the config), and the key read
  // from it (loadPresharedKeys, cli) before planning. An offline plan has the file only, and
  // compares whether a key is set, not which.
  std::optional<std::string> pskFile;
  std::optional<WgKey> presharedKey;  // never printed, recorded or logged
  std::string describe() const;       // the spec recorded when applied: the psk's file, no key
};

struct WireGuardTarget {
  std::string ns;
  std::string ifname;
  uint16_t listenPort = 0;
  std::vector<IpPrefix> addresses;  // sorted
  std::optional<uint16_t> mtu;
  std::vector<PeerTarget> peers;
  // A new private key may be made: the interface was never applied, or --rotate-key.
  bool allowNewKey = true;
  bool rotateKey = false;
  std::string describe() const;
};

// Where a certificate comes from on this host; the one place that decides it is certSourceOf()
// (target.cpp). Acme: ordered after the run's first snapshot (HTTP-01); until the first one is
// issued, a self-signed placeholder for the same domains is served.
enum class CertSource : uint8_t { SelfSigned, Files, Acme };
std::string_view toString(CertSource s);  // "self-signed", "files", "acme"

struct CertTarget {
  std::string name;
  CertSource source = CertSource::SelfSigned;
  std::vector<std::string> domains;  // lower-case, sorted
  std::string certFile;              // files: the operator's paths; empty otherwise
  std::string keyFile;
  std::optional<int64_t> renewBefore;  // seconds; unset: a third of the lifetime
  // acme: how its orders validate; unset: chosen when ordering (acmeDefaultChallenge).
  std::optional<AcmeChallengeType> challenge;
  // Under <state-dir>/certs (self-signed, the ACME placeholder and ACME certificates).
  bool generated() const { return source != CertSource::Files; }
  std::string describe() const;  // the spec recorded when applied: "self-signed a.com,b.com"
};

// The latest renewal time taken from a CA's window (RFC 9773): a tenth of the certificate's
// lifetime, at most a day, before its expiry.
int64_t ariLatest(const CertView& v);

// Why an ACME certificate should be ordered now, or nullopt: there is none yet (or it cannot
// be read), the placeholder is served (self-issued), its domains differ, or its renewal is due
// (acmeRenewAt: renewBefore when set, even longer than the lifetime; else a third of the
// lifetime left; with a jitter stable per certificate). `ariRenewAt` (unix seconds), when set,
// is the time chosen in the CA's RFC 9773 window for this very certificate: it replaces the
// lifetime rule, but not an explicit renewBefore (the operator's override), and not when it is
// at or after ariLatest (too close to the expiry to renew in time: the lifetime rule decides).
std::optional<std::string> acmeOrderDue(const CertTarget& c, const CertView* v, int64_t now,
                                        std::optional<int64_t> ariRenewAt = std::nullopt);

// The challenge of an ACME certificate that names none: HTTP-01 on the proxy's :80, or
// TLS-ALPN-01 on :443 when the proxy says its :80 is off (`proxyHttpOff`).
AcmeChallengeType acmeDefaultChallenge(bool proxyHttpOff);

// Whether a certificate's SANs cover `domain` (exactly, or by a "*.parent" wildcard one label
// deep).
bool certCovers(const std::vector<std::string>& sans, std::string_view domain);

struct Target {
  std::string host;
  std::vector<std::string> namespaces;  // tenant names, sorted
  std::map<std::string, UplinkTarget, std::less<>> uplinks;
  std::vector<RouteTarget> routes;
  std::vector<ForwardTarget> forwards;  // active ones (suspended namespaces withdrawn)
  std::map<std::string, WireGuardTarget, std::less<>> wireguard;  // by namespace
  std::vector<CertTarget> certificates;  // sorted by name: those the routes here use
  // The proxy's routes (suspended namespaces withdrawn); its certificates are filled in from
  // what apply materialised (snapshotAfter, apply.h).
  ProxySnapshot proxy;
  const CertTarget* certificate(std::string_view name) const;

  // The full contents of edgeplane's nftables table in the host or a tenant namespace.
  NftTableView hostTable() const;
  NftTableView namespaceTable(std::string_view ns) const;
};

// Stable /31 allocation: namespaces keep the index the store recorded; new ones take the
// lowest free one. Fails when the pool is exhausted.
Result<std::map<std::string, uint32_t, std::less<>>> allocateUplinks(
    const std::vector<std::string>& namespaces,
    const std::map<std::string, uint32_t, std::less<>>& existing, const IpPrefix& pool);

// Builds the target from the part of the desired state one host converges (resolveFor).
// `rotateKeys`: namespaces whose WireGuard private key apply may replace (--rotate-key). The
// forwards come from `forwards` when given (the whole config's, with hostDesired resolved
// without them: those of namespaces not in hostDesired are left out), else from hostDesired.
Result<Target> buildTarget(const Desired& hostDesired, std::string_view host,
                           const StoreView& store, const std::set<std::string>& rotateKeys = {},
                           const std::vector<Forward>* forwards = nullptr);

}  // namespace edgeplane::core
