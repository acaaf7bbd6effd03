// `edgeplane peer-config`: a wg-quick configuration for one peer of a namespace (and its QR
// code), to hand to the person on the other end of the tunnel.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "schema/model.h"
#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::cli {

struct Options;

// The placeholder for what only the peer's owner knows or holds (its private key, the
// preshared key): the tool never prints a secret, and wg-quick refuses the file until it is
// filled in.
inline constexpr std::string_view kFillIn = "<fill in>";

// The `Endpoint =` line's value: `flag` (HOST or HOST:PORT; the namespace's listen port when
// it names none), else an error telling to pass --endpoint (a [[host]] has no public address
// in the config).
Result<std::string> peerEndpoint(const std::optional<std::string>& flag, uint16_t listenPort,
                                 std::string_view host);

// The wg-quick .conf for peer `peer` of namespace `ns` in `hostDesired` (the config resolved for
// this host). [Interface]: the private key placeholder and the peer's addresses (its
// allowed_ips inside the namespace's WireGuard networks; all of them when none is). [Peer]:
// this host's public key for the namespace, a PresharedKey placeholder when the peer has a
// preshared_key_file, the endpoint, AllowedIPs = the namespace's WireGuard networks, and its
// keepalive. Errors name the unknown namespace or peer and what exists.
Result<std::string> renderPeerConfig(const Desired& hostDesired, std::string_view ns,
                                     std::string_view peer, const WgKey& hostPublicKey,
                                     std::string_view endpoint);

// The command: reads the config (--config; with --source, the head commit of that repository,
// fetched into a throw-away cache, its signature checked when allowed signers are named, so a
// peer's config can be printed before the commit is applied; else the state directory's kept
// config), the namespace's public key from the state directory's key store, and prints the
// .conf, or with --qr a QR code of it without its comment lines.
int cmdPeerConfig(const Options& o);

}  // namespace edgeplane::cli
