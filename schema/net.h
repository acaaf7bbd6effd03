// Value types for addresses, prefixes, ports and durations, with strict parsers (libc only).
#pragma once

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace edgeplane {

// An IPv4 or IPv6 address. IPv4 is kept in the first 4 bytes.
struct IpAddress {
  enum class Family : uint8_t { V4, V6 };
  Family family = Family::V4;
  std::array<uint8_t, 16> bytes{};

  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(uint32_t hostOrder);
  std::string str() const;
  int bits() const { return family == Family::V4 ? 32 : 128; }
  uint32_t v4HostOrder() const;
  bool isLoopback() const;  // 127.0.0.0/8 or ::1
  auto operator<=>(const IpAddress&) const = default;
};

// An address with a prefix length. `10.50.0.1/24` keeps its host bits (interface address);
// network() masks them off.
struct IpPrefix {
  IpAddress address;
  uint8_t length = 0;

  static std::optional<IpPrefix> parse(std::string_view text);
  std::string str() const;
  IpPrefix network() const;
  bool contains(const IpAddress& a) const;
  bool overlaps(const IpPrefix& other) const;
  auto operator<=>(const IpPrefix&) const = default;
};

// An IP address and a port: `10.50.0.12:22` or `[fd00::12]:22`.
struct Endpoint {
  IpAddress address;
  uint16_t port = 0;

  static std::optional<Endpoint> parse(std::string_view text);
  std::string str() const;
  auto operator<=>(const Endpoint&) const = default;
};

// A host (IP literal or DNS name) and a port, for WireGuard peer endpoints.
struct HostPort {
  std::string host;
  uint16_t port = 0;

  static std::optional<HostPort> parse(std::string_view text);
  std::string str() const;
  auto operator<=>(const HostPort&) const = default;
};

// An inclusive port range; a single port has first == last.
struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;

  static std::optional<PortRange> parse(std::string_view text);  // "22" or "30000-30010"
  std::string str() const;
  bool overlaps(const PortRange& o) const { return first <= o.last && o.first <= last; }
  auto operator<=>(const PortRange&) const = default;
};

using Duration = std::chrono::milliseconds;
// The one duration syntax of every flag and key (both programs, the TOML and the agent file):
// Go's time.ParseDuration restricted to the units h, m, s and ms — "500ms", "10s", "1.5s",
// "2m", "1h30m". Each component is a decimal number (no sign, no leading zero, an optional
// fraction) and its unit; components go from the largest unit down, each unit at most once;
// the total is a whole number of milliseconds, positive, and at most 7 days. A bare number,
// "0" included, is refused everywhere: the unit is not guessable.
std::optional<Duration> parseDuration(std::string_view text);
// parseDuration's upper bound: every timeout and interval in the model is far shorter.
inline constexpr Duration kMaxDuration = std::chrono::hours(7 * 24);
// The same with another upper bound (a certificate's renew_before runs to weeks). `max` is at
// most 9'999'999'999 hours' worth, so no step overflows.
std::optional<Duration> parseDurationUpTo(std::string_view text, Duration max);
// The same, where zero means something ("0s": do not wait, no jitter).
std::optional<Duration> parseDurationOrZero(std::string_view text);
// Why `text` is not a positive duration of at most `max`, for a message: "'1.5' is not a
// duration (like 5s, 1.5s, 500ms, 2m or 1h30m)", "'2h' is longer than the maximum, 1h".
std::string durationProblem(std::string_view text, Duration max);
// The expected form, for messages that phrase the problem themselves.
inline constexpr std::string_view kDurationExamples = "like 5s, 1.5s, 500ms, 2m or 1h30m";
// `d` in the largest unit that says it exactly ("2m", "1500ms"); zero is "0s". parseDuration
// reads it back; zero only parseDurationOrZero, past kMaxDuration only parseDurationUpTo.
std::string formatDuration(Duration d);

// "100/minute": `count` requests per `period`.
struct RateLimit {
  uint32_t count = 0;
  std::chrono::seconds period{0};

  static std::optional<RateLimit> parse(std::string_view text);
  std::string str() const;
  auto operator<=>(const RateLimit&) const = default;
};

// A DNS name (RFC 1123 labels); with allowWildcard, one leading "*." label is allowed.
bool isValidDnsName(std::string_view name, bool allowWildcard);

// Endpoint <-> socket address. toSockaddr fills `ss` and returns the length to pass to
// bind/connect; fromSockaddr reads AF_INET/AF_INET6 (an IPv4-mapped IPv6 address comes back
// as IPv4) and returns a zero Endpoint for any other family.
socklen_t toSockaddr(const Endpoint& e, sockaddr_storage& ss);
Endpoint fromSockaddr(const sockaddr_storage& ss);

// A 32-byte WireGuard key in standard base64 (44 characters ending in '='; encoding.h).
struct WgKey {
  std::array<uint8_t, 32> bytes{};

  static std::optional<WgKey> parseBase64(std::string_view text);
  std::string base64() const;
  auto operator<=>(const WgKey&) const = default;
};

}  // namespace edgeplane
