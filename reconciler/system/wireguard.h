// WireGuard driver: the shared device model, the per-peer diff, and the backend interface.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::sys {

struct LinkInfo;  // rtnl_codec.h

// Linux interface names: 1..15 bytes, no '/', no whitespace, not "." or "..".
inline constexpr size_t kMaxIfnameLength = 15;
bool isValidIfname(std::string_view name);

// A peer as desired (from the config) or as observed (from the device).
//
// Peer fields in a desired device are authoritative: an unset preshared key or keepalive
// means "none" and is enforced. The one exception is the endpoint: an unset desired
// endpoint means "whatever the peer roams from", so an observed endpoint is not drift.
struct WgPeer {
  std::string name;  // the config's peer name, for plan output only; never sent, never compared
  WgKey publicKey;
  std::optional<WgKey> presharedKey;  // never printed
  std::optional<Endpoint> endpoint;   // resolved: kernel and UAPI take IP:port only
  std::vector<IpPrefix> allowedIps;
  std::optional<uint16_t> persistentKeepalive;  // seconds; 0 and unset both mean "off"

  // Observed only; ignored by the diff and by the encoders.
  std::optional<int64_t> lastHandshake;  // unix seconds; unset = never
  uint64_t rxBytes = 0;
  uint64_t txBytes = 0;
};

// A device. In a desired device, unset device fields mean "leave as it is"; an observed
// device has listenPort and fwmark always set (0 = random port / no mark).
struct WgDevice {
  std::string ifname;
  std::optional<WgKey> privateKey;  // never printed
  std::optional<WgKey> publicKey;   // derived from privateKey; unset while there is none
  std::optional<uint16_t> listenPort;
  std::optional<uint32_t> fwmark;
  std::vector<WgPeer> peers;
};

// One peer operation of a set request.
struct WgPeerOp {
  enum class Kind : uint8_t { Add, Update, Remove };
  Kind kind = Kind::Add;
  // Add/Update: the whole desired peer. Its allowed IPs replace the device's list for the
  // peer; an Update also sends "no preshared key" / "keepalive 0" explicitly. Remove: only
  // publicKey (and name) matter.
  WgPeer peer;
  std::string description;  // plan line ("+ peer vm-12"); no secrets
};

// What to change on one device: only the fields that are set and only the peers listed.
struct WgSetRequest {
  std::string ifname;
  std::string netns;  // where the interface lives ("" = the current namespace)
  std::optional<WgKey> privateKey;
  std::optional<uint16_t> listenPort;
  std::optional<uint32_t> fwmark;  // 0 removes the mark
  bool replacePeers = false;       // drop every peer not in `peers` first (like `wg setconf`)
  std::vector<WgPeerOp> peers;
  std::vector<std::string> deviceChanges;  // plan lines for the device fields; no secrets

  bool empty() const {
    return !privateKey && !listenPort && !fwmark && !replacePeers && peers.empty();
  }
};

// Per-peer diff, like `wg syncconf`: peers are keyed by public key; an unchanged peer gets no
// operation at all (so its session, handshake and counters survive); a changed one gets one
// Update; a missing one an Add; an extra one a Remove. Device fields set in `desired` that
// differ from `observed` are set too. Operations come in a stable order: removes, then
// adds/updates in desired order. The result's ifname is desired.ifname; netns is left empty.
WgSetRequest diffPeers(const WgDevice& observed, const WgDevice& desired);

// The wire meaning of one peer operation, shared by the UAPI and generic netlink encoders
// (wireguard-tools' `struct wgpeer` with its WGPEER_* flags).
struct WgWirePeer {
  WgKey publicKey;
  bool remove = false;
  bool replaceAllowedIps = false;
  std::optional<WgKey> presharedKey;  // all zeros removes the key
  std::optional<Endpoint> endpoint;
  std::optional<uint16_t> persistentKeepalive;  // 0 turns it off
  std::vector<IpPrefix> allowedIps;             // networks, sorted, no duplicates
};
// Add: what the peer has. Update: every field, "none" stated as zero. Remove: the key.
WgWirePeer wireForm(const WgPeerOp& op);

// Every plan line of a request: device changes, then one line per peer operation.
std::vector<std::string> describe(const WgSetRequest& request);

// "vm-12" when the peer has a name, else the first 8 base64 characters of its key and "…".
std::string peerLabel(const WgPeer& peer);

// The configuration part of two peers is the same (what diffPeers compares): preshared key,
// endpoint (only when `desired` has one), allowed IPs as a set of networks, keepalive.
bool samePeerConfig(const WgPeer& observed, const WgPeer& desired);

// Resolves a config endpoint (an IP literal or a DNS name) to the IP:port the device takes.
// IP literals never touch DNS. Resolution failures are retryable.
Result<Endpoint> resolveEndpoint(const HostPort& hostPort);

enum class WgBackendKind : uint8_t { Kernel, Userspace };
enum class WgBackendChoice : uint8_t { Auto, Kernel, Userspace };
std::string_view toString(WgBackendKind kind);
std::string_view toString(WgBackendChoice choice);
// "auto", "kernel", "userspace".
std::optional<WgBackendChoice> parseBackendChoice(std::string_view text);

// Where the backends keep their state and find their tools.
struct WgEnv {
  std::string stateDir;  // wireguard-go pid and log files go in stateDir/wireguard
  std::string wireguardGo = "wireguard-go";      // a path, or a name looked up in PATH
  std::string socketDir = "/run/wireguard";      // where wireguard-go puts its UAPI sockets
  std::chrono::milliseconds startTimeout{5000};  // wireguard-go start -> UAPI socket ready
  std::chrono::milliseconds ioTimeout{5000};     // one UAPI request/response
};

// What deleteInterface found.
enum class WgRemoval : uint8_t { Removed, AlreadyAbsent };

// One way of running WireGuard interfaces. Interfaces live in a named network namespace
// (`netns`, "" = the current one); their UDP socket stays in the namespace the backend runs
// in (the host's), WireGuard's documented netns pattern.
class WgBackend {
 public:
  virtual ~WgBackend() = default;

  virtual WgBackendKind kind() const = 0;
  // Creates `ifname` (down, no addresses) in the current namespace, sets the MTU, moves it
  // into `netns`. Userspace: an earlier wireguard-go for the name is stopped first (this is
  // how a dead or half-dead one is restarted). Kernel: a taken name is an error.
  virtual Result<void> createInterface(std::string_view ifname, std::string_view netns,
                                       std::optional<uint32_t> mtu) = 0;
  virtual Result<WgRemoval> deleteInterface(std::string_view ifname, std::string_view netns) = 0;
  // false when the interface is missing or cannot be configured any more (wireguard-go
  // dead, its socket refusing): drift, repaired by createInterface + setDevice. Reads the
  // link (wgLinkGet), then asks linkAlive.
  Result<bool> interfaceAlive(std::string_view ifname, std::string_view netns);
  // The same, given the link as the caller has just read it (wgLinkGet's answer, an error
  // included): the kernel is not asked again.
  virtual Result<bool> linkAlive(std::string_view ifname,
                                 const Result<std::optional<LinkInfo>>& link) = 0;
  virtual Result<WgDevice> getDevice(std::string_view ifname, std::string_view netns) = 0;
  // The device of an alive interface (linkAlive, given the link just read), nullopt when it is
  // not alive: linkAlive, then getDevice. The userspace backend connects to wireguard-go once
  // for both (its socket answering is the liveness, and the get goes over that connection);
  // once more only when no pid file names it, to find who serves the socket.
  virtual Result<std::optional<WgDevice>> liveDevice(std::string_view ifname,
                                                     std::string_view netns,
                                                     const Result<std::optional<LinkInfo>>& link);
  virtual Result<void> setDevice(const WgSetRequest& request) = 0;
};

// Whether the running kernel can create `type wireguard` links. Probes by creating and
// deleting one in a throw-away network namespace, so nothing the host can see changes.
Result<bool> kernelWireGuardAvailable();

// auto: kernel if kernelWireGuardAvailable(), else userspace. A forced kernel backend is
// returned even where the kernel lacks WireGuard (its createInterface then says so); a
// forced or auto-selected userspace backend needs an executable wireguard-go.
Result<std::unique_ptr<WgBackend>> selectBackend(WgBackendChoice choice, const WgEnv& env);

// Which backend runs an existing interface: the link kind in `netns` ("wireguard" = kernel,
// "tun" = userspace). std::nullopt when there is no such link.
Result<std::optional<WgBackendKind>> detectBackend(std::string_view ifname, std::string_view netns);

}  // namespace edgeplane::sys
