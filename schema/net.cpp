// Strict parsers and canonical printers for the network value types of the model.
//
// Every parser takes untrusted text (the loader is fuzzed), never throws, never reads past the
// view it was given, and rejects anything it would have to guess at: an operator's typo must
// become a diagnostic, not a silently different address.
#include "schema/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>

#include "schema/encoding.h"

namespace edgeplane {
namespace {

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

std::optional<uint16_t> parsePort(std::string_view text) {
  auto value = parseDecimal(text, 65535, LeadingZeros::Refused);
  if (!value || *value < 1) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(*value);
}

std::optional<IpAddress> parseV4(std::string_view text) {
  IpAddress out;
  out.family = IpAddress::Family::V4;
  size_t octet = 0;
  size_t pos = 0;
  while (true) {
    size_t dot = text.find('.', pos);
    std::string_view part =
        text.substr(pos, dot == std::string_view::npos ? std::string_view::npos : dot - pos);
    auto value = parseDecimal(part, 255, LeadingZeros::Refused);
    if (!value || octet >= 4) {
      return std::nullopt;
    }
    out.bytes[octet++] = static_cast<uint8_t>(*value);
    if (dot == std::string_view::npos) {
      break;
    }
    pos = dot + 1;
  }
  if (octet != 4) {
    return std::nullopt;
  }
  return out;
}

std::optional<IpAddress> parseV6(std::string_view text) {
  // inet_pton needs a NUL-terminated string; the longest textual IPv6 address
  // ("ffff:...:255.255.255.255") is INET6_ADDRSTRLEN - 1 characters.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
    return std::nullopt;
  }
  // Only hex digits, ':' and '.' (embedded IPv4); this also rejects zone ids ("%eth0"),
  // whitespace and embedded NULs, which would otherwise truncate the string for inet_pton.
  for (char c : text) {
    bool ok =
        isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
    if (!ok) {
      return std::nullopt;
    }
  }
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  IpAddress out;
  out.family = IpAddress::Family::V6;
  if (inet_pton(AF_INET6, buf, out.bytes.data()) != 1) {
    return std::nullopt;
  }
  return out;
}

// `address` with every bit past the first `length` cleared.
IpAddress masked(const IpAddress& address, int length) {
  IpAddress out = address;
  for (int i = 0; i < 16; ++i) {
    int keep = length - i * 8;  // bits of byte i that belong to the prefix
    if (keep >= 8) {
      continue;
    }
    out.bytes[static_cast<size_t>(i)] &=
        keep <= 0 ? uint8_t{0} : static_cast<uint8_t>(0xFF << (8 - keep));
  }
  return out;
}

bool isDnsLabel(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
    return false;
  }
  for (char c : label) {
    // Lower case only, so that names from different files compare byte for byte.
    if (!((c >= 'a' && c <= 'z') || isDigit(c) || c == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace

// IpAddress

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // A colon can only be IPv6; otherwise it must be a dotted quad (inet_pton's AF_INET is not
  // used: its leading-zero handling differs between libcs).
  if (text.find(':') != std::string_view::npos) {
    return parseV6(text);
  }
  return parseV4(text);
}

IpAddress IpAddress::v4(uint32_t hostOrder) {
  IpAddress out;
  out.family = Family::V4;
  out.bytes[0] = static_cast<uint8_t>(hostOrder >> 24);
  out.bytes[1] = static_cast<uint8_t>(hostOrder >> 16);
  out.bytes[2] = static_cast<uint8_t>(hostOrder >> 8);
  out.bytes[3] = static_cast<uint8_t>(hostOrder);
  return out;
}

uint32_t IpAddress::v4HostOrder() const {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
         uint32_t{bytes[3]};
}

bool IpAddress::isLoopback() const {
  if (family == Family::V4) {
    return bytes[0] == 127;
  }
  return std::all_of(bytes.begin(), bytes.begin() + 15, [](uint8_t b) { return b == 0; }) &&
         bytes[15] == 1;
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == Family::V4) {  // as inet_ntop writes it, without its printf (a hot path)
    char* p = buf;
    for (size_t i = 0; i < 4; ++i) {
      if (i > 0) {
        *p++ = '.';
      }
      p = std::to_chars(p, buf + sizeof(buf), bytes[i]).ptr;
    }
    return std::string(buf, p);
  }
  if (inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf)) == nullptr) {
    return {};  // unreachable: the buffer is large enough for either family
  }
  return buf;
}

// IpPrefix

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;  // the length is required: "10.0.0.1" is not a /32 by guesswork
  }
  auto address = IpAddress::parse(text.substr(0, slash));
  auto length = parseDecimal(text.substr(slash + 1), 128, LeadingZeros::Refused);
  if (!address || !length || *length > static_cast<uint64_t>(address->bits())) {
    return std::nullopt;
  }
  return IpPrefix{*address, static_cast<uint8_t>(*length)};
}

std::string IpPrefix::str() const {
  return address.str() + "/" + std::to_string(length);
}

IpPrefix IpPrefix::network() const {
  return IpPrefix{masked(address, length), length};
}

bool IpPrefix::contains(const IpAddress& a) const {
  return a.family == address.family && masked(a, length) == masked(address, length);
}

bool IpPrefix::overlaps(const IpPrefix& other) const {
  if (other.address.family != address.family) {
    return false;
  }
  // Two prefixes overlap exactly when they agree on the bits of the shorter one.
  int shorter = length < other.length ? length : other.length;
  return masked(address, shorter) == masked(other.address, shorter);
}

// Endpoint

namespace {

// Splits "[v6]:port" or "v4-or-name:port" into host text and port. The brackets are
// mandatory around IPv6 and refused around anything else (`bracketed` tells which).
struct HostPortText {
  std::string_view host;
  uint16_t port = 0;
  bool bracketed = false;
};

std::optional<HostPortText> splitHostPort(std::string_view text) {
  HostPortText out;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    out.host = text.substr(1, close - 1);
    out.bracketed = true;
    rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return std::nullopt;
    }
    rest.remove_prefix(1);
  } else {
    size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
      return std::nullopt;  // the port is required
    }
    out.host = text.substr(0, colon);
    rest = text.substr(colon + 1);
    if (out.host.find_first_of("[]") != std::string_view::npos) {
      return std::nullopt;
    }
  }
  // A second colon in the port means an unbracketed IPv6 address: rejected by parsePort.
  auto port = parsePort(rest);
  if (!port) {
    return std::nullopt;
  }
  out.port = *port;
  return out;
}

}  // namespace

std::optional<Endpoint> Endpoint::parse(std::string_view text) {
  auto parts = splitHostPort(text);
  if (!parts) {
    return std::nullopt;
  }
  auto address = IpAddress::parse(parts->host);
  if (!address || (address->family == IpAddress::Family::V6) != parts->bracketed) {
    return std::nullopt;
  }
  return Endpoint{*address, parts->port};
}

std::string Endpoint::str() const {
  if (address.family == IpAddress::Family::V6) {
    return "[" + address.str() + "]:" + std::to_string(port);
  }
  return address.str() + ":" + std::to_string(port);
}

// HostPort

std::optional<HostPort> HostPort::parse(std::string_view text) {
  auto parts = splitHostPort(text);
  if (!parts) {
    return std::nullopt;
  }
  // IP literals are stored in canonical form ("FD00:0::1" -> "fd00::1") so that a desired
  // endpoint compares equal to the one the kernel reports back.
  if (auto address = IpAddress::parse(parts->host)) {
    if ((address->family == IpAddress::Family::V6) != parts->bracketed) {
      return std::nullopt;
    }
    return HostPort{address->str(), parts->port};
  }
  if (parts->bracketed || !isValidDnsName(parts->host, false)) {
    return std::nullopt;
  }
  return HostPort{std::string(parts->host), parts->port};
}

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

// PortRange

std::optional<PortRange> PortRange::parse(std::string_view text) {
  size_t dash = text.find('-');
  if (dash == std::string_view::npos) {
    auto port = parsePort(text);
    if (!port) {
      return std::nullopt;
    }
    return PortRange{*port, *port};
  }
  auto first = parsePort(text.substr(0, dash));
  auto last = parsePort(text.substr(dash + 1));  // a second '-' fails here
  if (!first || !last || *first > *last) {
    return std::nullopt;
  }
  return PortRange{*first, *last};
}

std::string PortRange::str() const {
  if (first == last) {
    return std::to_string(first);
  }
  return std::to_string(first) + "-" + std::to_string(last);
}

// Duration

namespace {
constexpr int64_t kMsPerSecond = 1000;
constexpr int64_t kMsPerMinute = 60 * kMsPerSecond;
constexpr int64_t kMsPerHour = 60 * kMsPerMinute;
// Anything longer than kMaxDuration is a typo; the bound also keeps every arithmetic step far
// from overflow.
constexpr int64_t kMaxDurationMs = kMaxDuration.count();

// One "<number><unit>" component at the front of `text`, in milliseconds; `text` is advanced
// past it. `scale` receives the unit's size, so the caller can check the order of units.
std::optional<int64_t> durationComponent(std::string_view& text, int64_t& scale) {
  size_t i = 0;
  while (i < text.size() && isDigit(text[i])) {
    ++i;
  }
  // At most 9'999'999'999 * kMsPerHour ~ 3.6e16, well inside int64.
  auto whole = parseDecimal(text.substr(0, i), 9'999'999'999, LeadingZeros::Refused);
  if (!whole) {
    return std::nullopt;
  }
  std::string_view fraction;
  if (i < text.size() && text[i] == '.') {
    const size_t start = ++i;
    while (i < text.size() && isDigit(text[i])) {
      ++i;
    }
    fraction = text.substr(start, i - start);
    // 9 digits are more than any unit needs for milliseconds (an hour's ms has 7).
    if (fraction.empty() || fraction.size() > 9) {
      return std::nullopt;
    }
  }
  std::string_view rest = text.substr(i);
  size_t unitLength = 1;
  if (rest.starts_with("ms")) {
    scale = 1;
    unitLength = 2;
  } else if (rest.starts_with("s")) {
    scale = kMsPerSecond;
  } else if (rest.starts_with("m")) {
    scale = kMsPerMinute;
  } else if (rest.starts_with("h")) {
    scale = kMsPerHour;
  } else {
    return std::nullopt;  // no unit, or an unknown one
  }
  text = rest.substr(unitLength);
  int64_t ms = static_cast<int64_t>(*whole) * scale;
  if (!fraction.empty()) {
    int64_t digits = 0;
    int64_t denominator = 1;
    for (char c : fraction) {
      digits = digits * 10 + (c - '0');
      denominator *= 10;
    }
    // < 1e9 * 3.6e6: inside int64. A part of a millisecond is refused, not rounded.
    if (digits * scale % denominator != 0) {
      return std::nullopt;
    }
    ms += digits * scale / denominator;
  }
  return ms;
}

// The whole duration in milliseconds (zero allowed, no upper bound but the digit limits).
std::optional<int64_t> durationMs(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  int64_t total = 0;
  int64_t previousScale = INT64_MAX;
  while (!text.empty()) {
    int64_t scale = 0;
    auto ms = durationComponent(text, scale);
    if (!ms || scale >= previousScale) {
      return std::nullopt;
    }
    previousScale = scale;
    total += *ms;  // four components of at most ~3.6e16 each
  }
  return total;
}

}  // namespace

std::optional<Duration> parseDuration(std::string_view text) {
  return parseDurationUpTo(text, Duration{kMaxDurationMs});
}

std::optional<Duration> parseDurationUpTo(std::string_view text, Duration max) {
  auto ms = durationMs(text);
  if (!ms || *ms == 0 || *ms > max.count()) {
    return std::nullopt;
  }
  return Duration{*ms};
}

std::optional<Duration> parseDurationOrZero(std::string_view text) {
  auto ms = durationMs(text);
  if (!ms || *ms > kMaxDurationMs) {
    return std::nullopt;
  }
  return Duration{*ms};
}

std::string durationProblem(std::string_view text, Duration max) {
  const std::string quoted = "'" + std::string(text) + "'";
  auto ms = durationMs(text);
  if (!ms) {
    return quoted + " is not a duration (" + std::string(kDurationExamples) + ")";
  }
  if (*ms == 0) {
    return quoted + " is not a positive duration";
  }
  return quoted + " is longer than the maximum, " + formatDuration(max);
}

std::string formatDuration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0) {
    return "0s";
  }
  if (ms % kMsPerHour == 0) {
    return std::to_string(ms / kMsPerHour) + "h";
  }
  if (ms % kMsPerMinute == 0) {
    return std::to_string(ms / kMsPerMinute) + "m";
  }
  if (ms % kMsPerSecond == 0) {
    return std::to_string(ms / kMsPerSecond) + "s";
  }
  return std::to_string(ms) + "ms";
}

// RateLimit

std::optional<RateLimit> RateLimit::parse(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  auto count = parseDecimal(text.substr(0, slash), 1'000'000'000, LeadingZeros::Refused);
  if (!count || *count < 1) {
    return std::nullopt;
  }
  // One spelling per period ("second", never "s" or "sec"), so configs read alike.
  std::string_view period = text.substr(slash + 1);
  std::chrono::seconds seconds{0};
  if (period == "second") {
    seconds = std::chrono::seconds{1};
  } else if (period == "minute") {
    seconds = std::chrono::minutes{1};
  } else if (period == "hour") {
    seconds = std::chrono::hours{1};
  } else {
    return std::nullopt;
  }
  return RateLimit{static_cast<uint32_t>(*count), seconds};
}

std::string RateLimit::str() const {
  std::string out = std::to_string(count) + "/";
  if (period == std::chrono::seconds{1}) {
    return out + "second";
  }
  if (period == std::chrono::minutes{1}) {
    return out + "minute";
  }
  if (period == std::chrono::hours{1}) {
    return out + "hour";
  }
  // Not produced by parse(); printed readably rather than dropped.
  return out + std::to_string(period.count()) + "s";
}

// DNS names

bool isValidDnsName(std::string_view name, bool allowWildcard) {
  // 253 is the longest name in dotted text without the root's trailing dot, which is refused.
  if (name.empty() || name.size() > 253) {
    return false;
  }
  std::string_view rest = name;
  if (allowWildcard && rest.size() >= 2 && rest[0] == '*' && rest[1] == '.') {
    rest.remove_prefix(2);
  }
  size_t labels = 0;
  std::string_view last;
  while (true) {
    size_t dot = rest.find('.');
    std::string_view label = rest.substr(0, dot);
    if (!isDnsLabel(label)) {
      return false;  // also an empty label: leading, trailing or doubled dots
    }
    ++labels;
    last = label;
    if (dot == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(dot + 1);
  }
  // At least two labels besides any wildcard: "localhost" and "*.com" are refused.
  if (labels < 2) {
    return false;
  }
  // An all-numeric last label would make "10.0.0.256" or "1.2.3" pass as a name.
  for (char c : last) {
    if (!isDigit(c)) {
      return true;
    }
  }
  return false;
}

// Socket addresses

socklen_t toSockaddr(const Endpoint& e, sockaddr_storage& ss) {
  std::memset(&ss, 0, sizeof ss);
  if (e.address.family == IpAddress::Family::V4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(e.port);
    std::memcpy(&sin->sin_addr, e.address.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(e.port);
  std::memcpy(&sin6->sin6_addr, e.address.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

Endpoint fromSockaddr(const sockaddr_storage& ss) {
  Endpoint e;
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    e.address.family = IpAddress::Family::V4;
    std::memcpy(e.address.bytes.data(), &sin->sin_addr, 4);
    e.port = ntohs(sin->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    e.port = ntohs(sin6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      e.address.family = IpAddress::Family::V4;
      std::memcpy(e.address.bytes.data(), sin6->sin6_addr.s6_addr + 12, 4);
    } else {
      e.address.family = IpAddress::Family::V6;
      std::memcpy(e.address.bytes.data(), &sin6->sin6_addr, 16);
    }
  }
  return e;
}

// WgKey

std::optional<WgKey> WgKey::parseBase64(std::string_view text) {
  // 44 characters ending in one '=': 32 bytes, the 2 unused bits zero (one key, one spelling).
  auto bytes = text.size() == 44 ? decodeBase64(text) : std::nullopt;
  if (!bytes || bytes->size() != 32) {
    return std::nullopt;
  }
  WgKey key;
  std::memcpy(key.bytes.data(), bytes->data(), key.bytes.size());
  return key;
}

std::string WgKey::base64() const {
  return encodeBase64(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace edgeplane
