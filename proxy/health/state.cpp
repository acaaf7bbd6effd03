// Health check specs, expect_status ranges and the per-backend state machine (see state.h).
#include "proxy/health/state.h"

#include <charconv>

namespace edgeplane::proxy::health {

namespace {

std::optional<uint16_t> statusCode(std::string_view text) {
  if (text.size() != 3) {
    return std::nullopt;
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 100 || value > 599) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

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
  auto bad = [&](std::string_view why) {
    return terminal("expect_status \"" + std::string(text.substr(0, 32)) +
                    "\": " + std::string(why));
  };
  size_t dash = text.find('-');
  auto low = statusCode(text.substr(0, dash));
  if (!low) {
    return bad("expected a status code 100-599 or a range like 200-399");
  }
  ExpectStatus e{*low, *low};
  if (dash != std::string_view::npos) {
    auto high = statusCode(text.substr(dash + 1));
    if (!high) {
      return bad("expected a status code 100-599 or a range like 200-399");
    }
    if (*high < *low) {
      return bad("the range is empty (its end is below its start)");
    }
    e.high = *high;
  }
  return e;
}

std::string ExpectStatus::str() const {
  return low == high ? std::to_string(low) : std::to_string(low) + "-" + std::to_string(high);
}

Result<std::optional<HealthSpec>> HealthSpec::of(const SnapshotRoute& route) {
  if (!route.health_path && !route.health_interval && !route.health_timeout &&
      !route.health_healthy_threshold && !route.health_unhealthy_threshold &&
      !route.health_expect_status) {
    return std::optional<HealthSpec>();
  }
  std::string where = "route \"" + route.key() + "\" health check: ";
  HealthSpec spec;
  spec.path = route.health_path.value_or("/");
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
  spec.interval = route.health_interval.value_or(kDefaultInterval);
  spec.timeout = route.health_timeout.value_or(kDefaultTimeout);
  if (spec.interval.count() <= 0 || spec.timeout.count() <= 0) {
    return terminal(where + "interval and timeout must be positive");
  }
  spec.healthyThreshold = route.health_healthy_threshold.value_or(kDefaultHealthyThreshold);
  spec.unhealthyThreshold = route.health_unhealthy_threshold.value_or(kDefaultUnhealthyThreshold);
  if (spec.healthyThreshold == 0 || spec.unhealthyThreshold == 0) {
    return terminal(where + "thresholds must be at least 1");
  }
  if (route.health_expect_status) {
    auto expect = ExpectStatus::parse(*route.health_expect_status);
    if (!expect) {
      return terminal(where + expect.error().message);
    }
    spec.expect = *expect;
  }
  return std::optional<HealthSpec>(std::move(spec));
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
  // "HTTP/1.x SP 3DIGIT [SP reason]"; HTTP/1.0 servers answer probes too.
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || line[8] != ' ') {
    return std::nullopt;
  }
  if (line[7] != '0' && line[7] != '1') {
    return std::nullopt;
  }
  auto code = statusCode(line.substr(9, 3));
  if (!code || (line.size() > 12 && line[12] != ' ')) {
    return std::nullopt;
  }
  return *code;
}

}  // namespace edgeplane::proxy::health
