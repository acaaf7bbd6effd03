// The reconciler's client of edgeplane-proxy's admin API: the reload notice and the listeners
// query.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace edgeplane::cli {

struct AdminAnswer {
  int status = 0;
  std::string statusText;  // "503 Service Unavailable", unprintable bytes as '?'
  std::string body;
};

// One request to the proxy's admin API ("unix:/path" or "ADDR:PORT", IPv6 as "[::1]:PORT"),
// the whole exchange bounded by `timeout` and the answer by 64 KiB. With `tokenFile`
// (owner-only) its text goes along as `Authorization: Bearer`, as a TCP admin address
// requires. Errors are retryable, except for a malformed address or an unusable token file.
Result<AdminAnswer> proxyAdminRequest(const std::string& adminAddress, std::string_view method,
                                      std::string_view path, std::chrono::milliseconds timeout,
                                      const std::optional<std::filesystem::path>& tokenFile);

// Best effort: POST /api/v1/reload; a 2xx answer is success. An error means only that the
// proxy was not told; it polls the store anyway.
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

}  // namespace edgeplane::cli
