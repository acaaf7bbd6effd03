// Where a daemon's host-only HTTP endpoint listens (admin API, metrics): a unix socket or a
// loopback TCP address, never one the network reaches.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane {

// 127.0.0.0/8 or ::1.
bool isLoopback(const IpAddress& address);

// A listening address "ADDR:PORT" (IP literal, IPv6 in brackets) where port 0 asks the kernel
// for an ephemeral port (Endpoint::parse refuses port 0: it is no place to connect to).
std::optional<Endpoint> parseListenAddress(std::string_view text);

// "unix:/path/to.sock" or "127.0.0.1:9000" / "[::1]:9000" (port 0: the kernel picks one).
// Anything not loopback is refused: only the host itself may reach these endpoints.
struct LocalAddress {
  std::optional<std::filesystem::path> unixPath;
  Endpoint tcp;  // when unixPath is unset

  // `what` names the setting in the errors ("admin address", "--metrics").
  static Result<LocalAddress> parse(std::string_view text, std::string_view what = "admin address");
  std::string str() const;
};

// Gives the unix socket file a listener just bound at `path` its group (when given) and `mode`,
// without following a symbolic link: a link put in its place meanwhile (whoever else writes the
// directory) is refused, and what it points to is left as it was. Errors name the path.
Result<void> restrictSocketFile(const std::filesystem::path& path, mode_t mode,
                                std::optional<gid_t> group = std::nullopt);

}  // namespace edgeplane
