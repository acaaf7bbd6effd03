// WireGuard userspace backend: wireguard-go supervised per interface, configured over UAPI.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "reconciler/system/wireguard.h"
#include "schema/result.h"

namespace edgeplane::sys {

// Bounds on what a UAPI peer may send us; anything beyond is an error, never a crash.
struct UapiLimits {
  size_t maxReplyBytes = size_t{64} << 20;
  size_t maxPeers = 100000;
  size_t maxAllowedIps = 1000000;  // over all peers
};

// --- The cross-platform text protocol (https://www.wireguard.com/xplatform/) ---
// Keys are lowercase hex; every line is key=value; a request and a reply end with a blank line.

// "set=1\n" + the request's device fields and peer operations + "\n".
std::string encodeUapiSet(const WgSetRequest& request);
inline constexpr std::string_view kUapiGet = "get=1\n\n";

// Parses the whole reply to get=1, through its final "errno=N\n\n". Unknown keys with a
// well-formed name are skipped (forward compatibility); anything else out of shape -- a
// duplicate or misplaced key, a bad number, key, endpoint or prefix, bytes after the end,
// a reply over the limits -- is an error. errno != 0 is an error carrying that errno.
// The device's ifname and publicKey are left empty (UAPI reports neither).
Result<WgDevice> parseUapiGetReply(std::string_view reply, const UapiLimits& limits = {});
// "errno=0\n\n" -> ok; "errno=N\n\n" -> an error naming N; anything else is malformed.
Result<void> parseUapiSetReply(std::string_view reply);

// What wireguard-go answers get=1 with, for tests and fakes (the inverse of the parser).
std::string encodeUapiGetReply(const WgDevice& device);
// Parses a set request back into a WgSetRequest, for tests and fakes. As with generic
// netlink, peers that are not removed come back as Kind::Add, zero keys/keepalive unset.
Result<WgSetRequest> parseUapiSet(std::string_view request, const UapiLimits& limits = {});

// Writes one request on a connected stream socket and reads one reply, through its blank
// line. `timeout` bounds each wait for the peer (not the whole exchange).
Result<std::string> uapiExchange(int fd, std::string_view request, size_t maxReplyBytes,
                                 std::chrono::milliseconds timeout);

// --- The backend ---

// wireguard-go, one process per interface, started in the current (host) namespace so its
// UDP socket and UAPI socket live there; its TUN device is then moved into the interface's
// namespace. The process outlives the reconciler run that started it; its pid (and start
// time, against pid reuse) is recorded in <stateDir>/wireguard/<ifname>.pid and its output
// goes to <stateDir>/wireguard/<ifname>.log.
class UapiBackend final : public WgBackend {
 public:
  explicit UapiBackend(WgEnv env) : env_(std::move(env)) {}

  // Interface
  WgBackendKind kind() const override { return WgBackendKind::Userspace; }
  Result<void> createInterface(std::string_view ifname, std::string_view netns,
                               std::optional<uint32_t> mtu) override;
  Result<WgRemoval> deleteInterface(std::string_view ifname, std::string_view netns) override;
  Result<bool> interfaceAlive(std::string_view ifname, std::string_view netns) override;
  Result<WgDevice> getDevice(std::string_view ifname, std::string_view netns) override;
  Result<void> setDevice(const WgSetRequest& request) override;

  std::string socketPath(std::string_view ifname) const;
  std::string pidFilePath(std::string_view ifname) const;
  std::string logFilePath(std::string_view ifname) const;
  // The recorded wireguard-go, if that process is still running (zombies of ours are reaped).
  // With no record (a lost state directory), the `wireguard-go -f <ifname>` that serves the
  // UAPI socket (SO_PEERCRED), so that it can still be checked and stopped.
  std::optional<pid_t> runningPid(std::string_view ifname) const;

 private:
  std::optional<pid_t> socketOwner(std::string_view ifname) const;
  Result<int> connect(std::string_view ifname) const;
  Result<std::string> request(std::string_view ifname, std::string_view text) const;
  Result<void> stop(std::string_view ifname, bool& stopped);

  WgEnv env_;
};

// Checks that wireguard-go is executable and the state directory is set.
Result<std::unique_ptr<WgBackend>> makeUapiBackend(const WgEnv& env);

}  // namespace edgeplane::sys
