// Active health checks, the pure part: a route's probe spec, expect_status ranges and the
// per-backend up/down state machine (no I/O, no clock: times are passed in).
//
// A backend starts UP, unchecked: a freshly started proxy serves at once instead of refusing
// every request for healthy_threshold x interval, and a backend that is really down is taken
// out after unhealthy_threshold failed probes (or as many failed connects from the workers).
// A backend carried from the previous snapshot generation keeps its state (registry.h).
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "schema/net.h"
#include "schema/result.h"
#include "schema/snapshot.h"

namespace edgeplane::proxy::health {

inline constexpr uint32_t kDefaultHealthyThreshold = 2;
inline constexpr uint32_t kDefaultUnhealthyThreshold = 3;
inline constexpr Duration kDefaultInterval{10000};
inline constexpr Duration kDefaultTimeout{2000};

// An inclusive range of HTTP status codes a probe answer must fall into.
struct ExpectStatus {
  uint16_t low = 200;
  uint16_t high = 399;

  // "200" or "200-399"; codes 100..599, low <= high, nothing else (no spaces, no lists).
  static Result<ExpectStatus> parse(std::string_view text);
  bool matches(int status) const { return status >= low && status <= high; }
  std::string str() const;
  auto operator<=>(const ExpectStatus&) const = default;
};

// What one backend of a route is probed with. Part of the registry key: two routes share a
// backend's health only when they would send the very same probe (the Host header included).
struct HealthSpec {
  std::string path = "/";
  std::string host;  // the route's first hostname ("*." of a wildcard dropped)
  Duration interval = kDefaultInterval;
  Duration timeout = kDefaultTimeout;
  uint32_t healthyThreshold = kDefaultHealthyThreshold;
  uint32_t unhealthyThreshold = kDefaultUnhealthyThreshold;
  ExpectStatus expect;
  auto operator<=>(const HealthSpec&) const = default;

  // The route's health check, or nullopt when it has none (every health_* field unset). An
  // error for a bad expect_status, a zero threshold, interval or timeout, or a path/host that
  // would not make a well-formed request line.
  static Result<std::optional<HealthSpec>> of(const SnapshotRoute& route);
  // The same for the backends of one endpoint of a gateway route: the endpoint's health_*
  // fields, the route's host.
  static Result<std::optional<HealthSpec>> of(const SnapshotRoute& route,
                                              const SnapshotEndpoint& endpoint);
};

// One probe's outcome, as the prober judged it.
struct ProbeResult {
  bool ok = false;
  std::string error;  // why it failed ("connect: Connection refused", "status 500", ...)
};

enum class Transition : uint8_t { None, Up, Down };

// The state machine of one backend. Only the prober mutates it.
struct HealthState {
  bool up = true;            // see the file comment: a backend starts up
  bool checked = false;      // at least one probe finished
  uint32_t passes = 0;       // consecutive passed probes
  uint32_t failures = 0;     // consecutive failed probes (or a passive mark)
  int64_t lastChangeMs = 0;  // wall clock (unix ms) of the last transition or the creation
  std::string lastError;     // of the last failed probe; kept after passes, for the admin API

  // A finished probe: passes/failures count consecutively; down after unhealthyThreshold
  // failures in a row, up again after healthyThreshold passes in a row.
  Transition record(const HealthSpec& spec, const ProbeResult& result, int64_t nowMs);

  // Passive marking, at the prober's turn: `passiveFailures` consecutive connect failures
  // seen by the workers take an up backend down once they reach unhealthyThreshold; only the
  // prober's passes bring it back. The caller resets the workers' counter when this returns
  // Down.
  Transition markPassive(const HealthSpec& spec, uint32_t passiveFailures, int64_t nowMs);
};

std::string_view toString(Transition t);

// The status code of a complete HTTP status line ("HTTP/1.1 200 OK"), or nullopt when `line`
// (without its CRLF) is not one.
std::optional<int> parseStatusLine(std::string_view line);

}  // namespace edgeplane::proxy::health
