// WireGuard userspace backend: the UAPI unix-socket client, and the backend that runs
// wireguard-go per interface (wireguard_go.h) and configures it over UAPI (wg_uapi_codec.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "reconciler/system/wireguard.h"
#include "reconciler/system/wireguard_go.h"
#include "schema/result.h"

namespace edgeplane::sys {

// --- The client ---

// Connects to the UAPI socket at `path` (wireguard-go's for `ifname`); not answering is
// retryable. The caller closes the descriptor.
Result<int> uapiConnect(const std::string& path, std::string_view ifname);

// Writes one request on a connected stream socket and reads one reply, through its blank
// line. `timeout` bounds the whole exchange, not each wait for the peer: one that trickles bytes
// times out like one that never answers.
Result<std::string> uapiExchange(int fd, std::string_view request, size_t maxReplyBytes,
                                 std::chrono::milliseconds timeout);

// --- The backend ---

// wireguard-go, one process per interface (see WireguardGo), started in the current (host)
// namespace so its UDP socket and UAPI socket live there; its TUN device is then moved into
// the interface's namespace.
class UapiBackend final : public WgBackend {
 public:
  explicit UapiBackend(WgEnv env) : env_(env), go_(std::move(env)) {}

  // Interface
  WgBackendKind kind() const override { return WgBackendKind::Userspace; }
  Result<void> createInterface(std::string_view ifname, std::string_view netns,
                               std::optional<uint32_t> mtu) override;
  Result<WgRemoval> deleteInterface(std::string_view ifname, std::string_view netns) override;
  Result<bool> linkAlive(std::string_view ifname,
                         const Result<std::optional<LinkInfo>>& link) override;
  Result<WgDevice> getDevice(std::string_view ifname, std::string_view netns) override;
  Result<std::optional<WgDevice>> liveDevice(std::string_view ifname, std::string_view netns,
                                             const Result<std::optional<LinkInfo>>& link) override;
  Result<void> setDevice(const WgSetRequest& request) override;

  std::string socketPath(std::string_view ifname) const { return go_.socketPath(ifname); }
  std::string pidFilePath(std::string_view ifname) const { return go_.pidFilePath(ifname); }
  std::string logFilePath(std::string_view ifname) const { return go_.logFilePath(ifname); }
  // See WireguardGo::runningPid.
  std::optional<pid_t> runningPid(std::string_view ifname) const { return go_.runningPid(ifname); }

 private:
  Result<void> clearTheWay(std::string_view ifname, std::string_view netns);
  Result<void> placeTun(std::string_view ifname, std::string_view netns,
                        std::optional<uint32_t> mtu);
  Result<std::string> request(std::string_view ifname, std::string_view text) const;
  Result<std::string> exchange(int fd, std::string_view ifname, std::string_view text) const;

  WgEnv env_;
  WireguardGo go_;
};

// Checks that wireguard-go is executable and the state directory is set.
Result<std::unique_ptr<WgBackend>> makeUapiBackend(const WgEnv& env);

}  // namespace edgeplane::sys
