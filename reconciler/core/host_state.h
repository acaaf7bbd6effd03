// What the planner knows of a host: the observed kernel state and the store's ownership view.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "schema/model.h"
#include "schema/net.h"
#include "schema/snapshot.h"

namespace edgeplane::core {

// Names edgeplane gives what it creates. Ownership is by these prefixes plus the store.
using ::edgeplane::kNetnsPrefix;  // /run/netns/ep-<namespace> (schema/model.h)
inline constexpr std::string_view kHostLinkPrefix = "eph-";  // uplink, host end
inline constexpr std::string_view kNsLinkPrefix = "epn-";    // uplink, namespace end
inline constexpr std::string_view kWgLinkPrefix = "wg-";     // WireGuard interface
inline constexpr std::string_view kTableName = "edgeplane";  // nftables table, family ip
// The sysctl op's name; "sysctl <it>" is owned in the store while edgeplane keeps it on.
inline constexpr std::string_view kHostForwardSysctl = "host net.ipv4.ip_forward";

using ::edgeplane::netnsName;
std::string hostLinkName(std::string_view ns);
std::string nsLinkName(std::string_view ns);
std::string wgLinkName(std::string_view ns);

// One port mapping in an nftables map. Host table: public port range -> namespace uplink
// address (port kept). Namespace table: public port -> target address and port.
struct PortMapping {
  Protocol protocol = Protocol::Tcp;
  PortRange port;
  IpAddress address;
  std::optional<uint16_t> targetPort;
  auto operator<=>(const PortMapping&) const = default;
};

struct NftTableView {
  bool intact = true;  // chains and rules exactly as edgeplane builds them
  std::vector<PortMapping> mappings;
  bool operator==(const NftTableView&) const = default;
};

struct RouteView {
  IpPrefix destination;
  std::optional<IpAddress> via;
  std::string device;
  bool owned = false;    // carries edgeplane's route protocol
  std::string protocol;  // "kernel", "static", "boot", "edgeplane", or a number
  auto operator<=>(const RouteView&) const = default;
};

// One WireGuard peer as the interface reports it.
struct PeerView {
  WgKey publicKey;
  std::optional<Endpoint> endpoint;
  std::vector<IpPrefix> allowedIps;  // sorted networks
  std::optional<uint16_t> keepalive;
  // Whether the peer has a preshared key, and which (a live observation knows it; the JSON form
  // of an observation says only whether one is set). Never printed.
  bool hasPsk = false;
  std::optional<WgKey> presharedKey;
  std::optional<int64_t> lastHandshake;  // unix seconds; unset: never
  uint64_t rxBytes = 0;
  uint64_t txBytes = 0;
  bool operator==(const PeerView&) const = default;
};

// A namespace's WireGuard interface, when it exists and answers (wireguard-go running).
struct WireGuardView {
  std::optional<WgKey> publicKey;
  uint16_t listenPort = 0;
  std::vector<PeerView> peers;
  bool operator==(const WireGuardView&) const = default;
};

struct LinkView {
  std::string name;
  bool up = false;
  std::vector<IpPrefix> addresses;
  bool operator==(const LinkView&) const = default;
};

// What was observed inside one network namespace.
struct NetnsView {
  std::vector<LinkView> links;
  std::vector<RouteView> routes;      // IPv4 main table
  std::optional<NftTableView> table;  // edgeplane's table, if present
  bool ipForward = false;
  std::optional<WireGuardView> wireguard;  // wg-<namespace>, if alive
  // The public key of the private key kept in <state-dir>/keys/<namespace>.key, if that file
  // exists. The private key itself never enters this model.
  std::optional<WgKey> storedPublicKey;
  // Why that key file exists but cannot be used (unreadable, not a key, a loose mode), or
  // empty. Such a key is never replaced on edgeplane's own: the namespace's WireGuard ops are
  // refused until the file is repaired or --rotate-key is given.
  std::string keyError;
  // Why edgeplane could not look into this namespace (its /run/netns entry cannot be entered,
  // a read inside failed), or empty. Nothing else of the view is known then, and its
  // operations fail alone: every other namespace still converges.
  std::string unobservable;

  const LinkView* link(std::string_view name) const;
  bool operator==(const NetnsView&) const = default;
};

// A certificate as found on the host (reconciler/system/certs.h reads it): one edgeplane
// generated under <state-dir>/certs/<name>/ (self-signed, or an ACME placeholder), or the
// operator's files (issuer "files"). Facts only; the planner judges them. The private key
// never enters this model, only whether it matches the certificate.
struct CertView {
  std::string certFile;
  std::string keyFile;
  std::string fingerprint;           // lower-case hex SHA-256 of the leaf certificate's DER
  std::vector<std::string> domains;  // the leaf's DNS SANs, lower-case, sorted
  int64_t notBefore = 0;             // unix seconds
  int64_t notAfter = 0;
  bool selfIssued = false;  // issuer == subject: self-signed, or the ACME placeholder
  // Why the files cannot be used (unreadable, not PEM, the key does not match), or empty.
  std::string error;
  bool operator==(const CertView&) const = default;
};

// The observed host: its own namespace and every named namespace under /run/netns (foreign
// ones included, with an empty view: edgeplane does not look inside what it does not own).
struct HostState {
  NetnsView host;
  std::map<std::string, NetnsView, std::less<>> namespaces;     // by netns name
  std::map<std::string, CertView, std::less<>> generatedCerts;  // <state-dir>/certs/<name>
  std::map<std::string, CertView, std::less<>> fileCerts;       // issuer "files", by name
  int64_t now = 0;  // unix seconds when observed: the planner's only clock
  bool operator==(const HostState&) const = default;
};

// What the store says edgeplane owns and has allocated on this host.
struct StoreView {
  // Resources the last applies created and still own, keyed "<kind> <name>" (e.g.
  // "namespace tenant-a", "forward vm-12-ssh"), each with the spec it was applied with
  // (a forward's "tcp/22012 -> 10.50.0.12:22 in tenant-a", a route's via, an uplink's
  // address). A namespace with edgeplane's prefix that is not recorded here is not
  // edgeplane's and is never deleted. A live resource that differs from the spec it was
  // applied with, while the config still asks for that spec, is drift.
  std::map<std::string, std::string, std::less<>> applied;
  bool owns(std::string_view kind, std::string_view name) const;
  // True when the resource was applied with exactly `spec`.
  bool appliedAs(std::string_view kind, std::string_view name, std::string_view spec) const;
  std::map<std::string, uint32_t, std::less<>> uplinkIndex;      // tenant -> /31 index in the pool
  std::map<std::string, std::string, std::less<>> forwardNames;  // "tcp/22012" -> forward name
  // The proxy snapshot last published (the store's latest generation): the routes and
  // certificates the proxy serves now. Unset: none was ever written.
  std::optional<ProxySnapshot> snapshot;
  // API key ids blocked on this host (`edgeplane apikey block`), whatever the config says.
  std::set<std::string, std::less<>> blockedApiKeys;
  // The renewal time the last ACME step chose in the CA's RFC 9773 window, by certificate
  // name: for the certificate with that fingerprint only (unix seconds).
  struct AriRenewal {
    std::string fingerprint;
    int64_t at = 0;
    bool operator==(const AriRenewal&) const = default;
  };
  std::map<std::string, AriRenewal, std::less<>> ariRenewals;
  bool operator==(const StoreView&) const = default;
  // The same owned rows (applied, uplinkIndex, forwardNames); the rest is kept elsewhere.
  bool sameOwnership(const StoreView& o) const {
    return applied == o.applied && uplinkIndex == o.uplinkIndex && forwardNames == o.forwardNames;
  }
};

}  // namespace edgeplane::core
