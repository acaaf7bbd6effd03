// The reconciler's client of edgeplane-proxy's admin API: the reload notice, the listeners
// query and the API keys' usage the proxy counts.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/result.h"
#include "schema/store.h"

namespace edgeplane::cli {

struct AdminAnswer {
  int status = 0;
  std::string statusText;  // "503 Service Unavailable", unprintable bytes as '?'
  std::string body;
};

inline constexpr size_t kMaxAdminAnswer = 64 * 1024;
// Enough for the usage of 40k keys.
inline constexpr size_t kMaxUsageAnswer = 16 * 1024 * 1024;

// One request to the proxy's admin API ("unix:/path" or "ADDR:PORT", IPv6 as "[::1]:PORT"),
// the whole exchange bounded by `timeout` and the answer by `maxAnswer` bytes. With `tokenFile`
// (owner-only) its text goes along as `Authorization: Bearer`, as a TCP admin address
// requires. Errors are retryable, except for a malformed address or an unusable token file.
Result<AdminAnswer> proxyAdminRequest(const std::string& adminAddress, std::string_view method,
                                      std::string_view path, std::chrono::milliseconds timeout,
                                      const std::optional<std::filesystem::path>& tokenFile,
                                      size_t maxAnswer = kMaxAdminAnswer);

// Best effort: POST /api/v1/reload; a 2xx answer is success. An error means only that the
// proxy was not told; it polls the published files anyway.
Result<void> notifyProxy(const std::string& adminAddress, std::chrono::milliseconds timeout,
                         const std::optional<std::filesystem::path>& tokenFile = std::nullopt);

// What the proxy listens on (GET /api/v1/listeners): each "ADDR:PORT" or "off".
struct ProxyListeners {
  std::string https;
  std::string http;
  std::string dns;
};

Result<ProxyListeners> queryProxyListeners(
    const std::string& adminAddress, std::chrono::milliseconds timeout,
    const std::optional<std::filesystem::path>& tokenFile = std::nullopt);

// The usage of each API key of the proxy's active config (GET /api/v1/apikeys), as the proxy
// counts it in its own store; the reconciler's store no longer gets it. The answer is read as
// written by a process that may be taken over: strictly, and bounded by kMaxUsageAnswer.
Result<std::vector<ApiKeyUsage>> queryProxyUsage(
    const std::string& adminAddress, std::chrono::milliseconds timeout,
    const std::optional<std::filesystem::path>& tokenFile = std::nullopt);

}  // namespace edgeplane::cli
