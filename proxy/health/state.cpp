// Health check specs, expect_status ranges and the per-backend state machine (see state.h).
#include "proxy/health/state.h"

#include "proxy/http/head_parser.h"
#include "schema/model.h"

namespace edgeplane::proxy::health {

namespace {

// Bytes that would break the request line or the Host header we write.
bool requestSafe(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) {
      return false;
    }
  }
  return !s.empty();
}

}  // namespace

Result<ExpectStatus> ExpectStatus::parse(std::string_view text) {
  auto range = parseStatusRange(text);
  if (!range) {
    return terminal("expect_status \"" + std::string(text.substr(0, 32)) +
                    "\": expected a status code 100-599 or a range like 200-399");
  }
  return ExpectStatus{static_cast<uint16_t>(range->first), static_cast<uint16_t>(range->second)};
}

std::string ExpectStatus::str() const {
  return low == high ? std::to_string(low) : std::to_string(low) + "-" + std::to_string(high);
}

namespace {

// From the health_* fields of a site route or a gateway endpoint (the same names in both);
// `where` opens the error messages.
template <typename T>
Result<std::optional<HealthSpec>> specOf(const T& fields, const SnapshotRoute& route,
                                         const std::string& where) {
  if (!fields.health_path && !fields.health_interval && !fields.health_timeout &&
      !fields.health_healthy_threshold && !fields.health_unhealthy_threshold &&
      !fields.health_expect_status) {
    return std::optional<HealthSpec>();
  }
  HealthSpec spec;
  spec.path = fields.health_path.value_or("/");
  if (!requestSafe(spec.path) || spec.path.front() != '/') {
    return terminal(where + "the path must start with '/' and hold no spaces or controls");
  }
  if (!route.hostnames.empty()) {
    std::string_view host = route.hostnames.front();
    if (host.starts_with("*.")) {
      host.remove_prefix(2);
    }
    spec.host = std::string(host);
  }
  if (!spec.host.empty() && !requestSafe(spec.host)) {
    return terminal(where + "the host name holds spaces or controls");
  }
  spec.interval = fields.health_interval.value_or(kDefaultInterval);
  spec.timeout = fields.health_timeout.value_or(kDefaultTimeout);
  if (spec.interval.count() <= 0 || spec.timeout.count() <= 0) {
    return terminal(where + "interval and timeout must be positive");
  }
  spec.healthyThreshold = fields.health_healthy_threshold.value_or(kDefaultHealthyThreshold);
  spec.unhealthyThreshold = fields.health_unhealthy_threshold.value_or(kDefaultUnhealthyThreshold);
  if (spec.healthyThreshold == 0 || spec.unhealthyThreshold == 0) {
    return terminal(where + "thresholds must be at least 1");
  }
  if (fields.health_expect_status) {
    auto expect = ExpectStatus::parse(*fields.health_expect_status);
    if (!expect) {
      return terminal(where + expect.error().message);
    }
    spec.expect = *expect;
  }
  return std::optional<HealthSpec>(std::move(spec));
}

}  // namespace

Result<std::optional<HealthSpec>> HealthSpec::of(const SnapshotRoute& route) {
  return specOf(route, route, "route \"" + route.key() + "\" health check: ");
}

Result<std::optional<HealthSpec>> HealthSpec::of(const SnapshotRoute& route,
                                                 const SnapshotEndpoint& endpoint) {
  return specOf(endpoint, route,
                "route \"" + route.key() + "\" endpoint " + endpoint.method + " " + endpoint.path +
                    " health check: ");
}

Transition HealthState::record(const HealthSpec& spec, const ProbeResult& result, int64_t nowMs) {
  checked = true;
  if (result.ok) {
    failures = 0;
    passes = passes < UINT32_MAX ? passes + 1 : passes;
    if (!up && passes >= spec.healthyThreshold) {
      up = true;
      lastChangeMs = nowMs;
      return Transition::Up;
    }
    return Transition::None;
  }
  passes = 0;
  failures = failures < UINT32_MAX ? failures + 1 : failures;
  lastError = result.error;
  if (up && failures >= spec.unhealthyThreshold) {
    up = false;
    lastChangeMs = nowMs;
    return Transition::Down;
  }
  return Transition::None;
}

Transition HealthState::markPassive(const HealthSpec& spec, uint32_t passiveFailures,
                                    int64_t nowMs) {
  if (!up || passiveFailures < spec.unhealthyThreshold) {
    return Transition::None;
  }
  up = false;
  passes = 0;
  failures = passiveFailures;
  lastError = std::to_string(passiveFailures) + " consecutive connect failures in traffic";
  lastChangeMs = nowMs;
  return Transition::Down;
}

std::string_view toString(Transition t) {
  switch (t) {
    case Transition::Up:
      return "up";
    case Transition::Down:
      return "down";
    case Transition::None:
      break;
  }
  return "none";
}

std::optional<int> parseStatusLine(std::string_view line) {
  http::ResponseHead head;  // HTTP/1.0 servers answer probes too
  if (http::parseStatusLine(line, head).status != http::ParseStatus::Done) {
    return std::nullopt;
  }
  return head.status;
}

}  // namespace edgeplane::proxy::health
