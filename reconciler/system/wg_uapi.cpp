// WireGuard userspace backend: the UAPI text codec, the socket client, wireguard-go supervision.
#include "reconciler/system/wg_uapi.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>

#include "reconciler/system/file_write.h"
#include "reconciler/system/wg_keys.h"
#include "reconciler/system/wg_netlink.h"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace edgeplane::sys {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string where(std::string_view netns) {
  return netns.empty() ? std::string() : " in namespace " + std::string(netns);
}

bool isZero(const WgKey& key) {
  return std::all_of(key.bytes.begin(), key.bytes.end(), [](uint8_t b) { return b == 0; });
}

std::string hexKey(const WgKey& key) {
  return toHex(key.bytes.data(), key.bytes.size());
}

// --- strict scalar parsers ---

bool validKeyName(std::string_view key) {
  return !key.empty() && key.size() <= 64 && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Decimal digits only (no sign, no spaces), at most 20 of them, within `max`.
std::optional<uint64_t> parseUnsigned(std::string_view text, uint64_t max) {
  if (text.empty() || text.size() > 20 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v > max) {
    return std::nullopt;
  }
  return v;
}

std::optional<int64_t> parseErrno(std::string_view text) {
  bool negative = false;
  if (!text.empty() && text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  auto v = parseUnsigned(text, 1000000);
  if (!v) {
    return std::nullopt;
  }
  return negative ? -static_cast<int64_t>(*v) : static_cast<int64_t>(*v);
}

// 64 lowercase or uppercase hex digits.
std::optional<WgKey> parseHexKey(std::string_view text) {
  auto bytes = parseHex32(text);
  if (!bytes) {
    return std::nullopt;
  }
  return WgKey{*bytes};
}

std::optional<IpPrefix> parsePrefix(std::string_view text) {
  auto p = IpPrefix::parse(text);
  if (!p || text.find('/') == std::string_view::npos) {
    return std::nullopt;
  }
  return p;
}

std::string errnoReply(int64_t code) {
  const int e = static_cast<int>(code < 0 ? -code : code);
  return "errno " + std::to_string(code) + " (" + errnoText(e) + ")";
}

// Splits a complete message into its lines. The message must end with "\n\n" and hold no
// other empty line; `lines` excludes that final empty line.
Result<std::vector<std::string_view>> splitMessage(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (true) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      return terminal("it does not end with a blank line");
    }
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) {
      if (pos != text.size()) {
        return terminal("bytes follow its terminating blank line");
      }
      return lines;
    }
    lines.push_back(line);
  }
}

Error malformed(std::string_view what, size_t lineNo, std::string_view why) {
  // Never the line itself: it may carry a private or preshared key.
  return terminal("malformed UAPI " + std::string(what) + ": line " + std::to_string(lineNo) +
                  ": " + std::string(why));
}

// --- process helpers ---

struct ProcStat {
  char state = 0;
  uint64_t startTime = 0;
};

std::optional<ProcStat> readProcStat(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) {
    return std::nullopt;
  }
  std::string_view text(buf, static_cast<size_t>(n));
  const size_t close = text.rfind(')');
  if (close == std::string_view::npos || close + 2 >= text.size()) {
    return std::nullopt;
  }
  // After "(comm) ": field 3 is the state, field 22 the start time.
  std::string_view rest = text.substr(close + 2);
  ProcStat st;
  st.state = rest.front();
  for (int field = 3; field < 22; ++field) {
    const size_t sp = rest.find(' ');
    if (sp == std::string_view::npos) {
      return std::nullopt;
    }
    rest.remove_prefix(sp + 1);
  }
  const size_t end = std::min(rest.find(' '), rest.size());
  auto start = parseUnsigned(rest.substr(0, end), UINT64_MAX);
  if (!start) {
    return std::nullopt;
  }
  st.startTime = *start;
  return st;
}

// Whether `pid` (started at `startTime`) still runs. Reaps it when it is our exited child.
bool processRunning(pid_t pid, uint64_t startTime) {
  int status = 0;
  (void)::waitpid(pid, &status, WNOHANG);  // ECHILD when it is not ours: fine
  auto st = readProcStat(pid);
  if (!st || st->startTime != startTime) {
    return false;
  }
  if (st->state == 'Z' || st->state == 'X') {
    // Dead. If it is our child, reap it: a multi-threaded one shows as a zombie a little
    // before it can be reaped, so wait (it is exiting already); ECHILD at once if not ours.
    (void)::waitpid(pid, &status, 0);
    return false;
  }
  return true;
}

// Waits until the process is gone, up to `timeout`.
bool waitGone(pid_t pid, uint64_t startTime, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (processRunning(pid, startTime)) {
    if (Clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

Result<void> mkdirPrivate(const std::string& dir) {
  if (dir.empty()) {
    return terminal("no state directory configured for wireguard-go");
  }
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos == dir.size() || dir[pos] == '/') {
      const std::string prefix = dir.substr(0, pos);
      if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
        return terminal("create " + prefix + ": " + errnoText(errno));
      }
    }
  }
  return {};
}

// The last non-empty line of a log file, for error messages (wireguard-go's logs hold no
// keys).
std::string lastLogLine(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return {};
  }
  char buf[2048];
  const off_t size = ::lseek(fd, 0, SEEK_END);
  const off_t from = size > static_cast<off_t>(sizeof(buf)) ? size - sizeof(buf) : 0;
  const ssize_t n = ::pread(fd, buf, sizeof(buf), from);
  ::close(fd);
  if (n <= 0) {
    return {};
  }
  std::string_view text(buf, static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  const size_t nl = text.rfind('\n');
  std::string_view line = nl == std::string_view::npos ? text : text.substr(nl + 1);
  return std::string(line.substr(0, 300));
}

bool isExecutable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::optional<std::string> findExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return isExecutable(name) ? std::optional(name) : std::nullopt;
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs =
      path != nullptr ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  while (!dirs.empty()) {
    const size_t colon = std::min(dirs.find(':'), dirs.size());
    std::string dir(dirs.substr(0, colon));
    dirs.remove_prefix(std::min(colon + 1, dirs.size()));
    if (dir.empty()) {
      continue;
    }
    const std::string candidate = dir + "/" + name;
    if (isExecutable(candidate)) {
      return candidate;
    }
  }
  return std::nullopt;
}

}  // namespace

// --- codec ---

std::string encodeUapiSet(const WgSetRequest& request) {
  std::string out = "set=1\n";
  if (request.privateKey) {
    out += "private_key=" + hexKey(*request.privateKey) + "\n";
  }
  if (request.listenPort) {
    out += "listen_port=" + std::to_string(*request.listenPort) + "\n";
  }
  if (request.fwmark) {
    out += "fwmark=" + std::to_string(*request.fwmark) + "\n";
  }
  if (request.replacePeers) {
    out += "replace_peers=true\n";
  }
  for (const WgPeerOp& op : request.peers) {
    const WgWirePeer w = wireForm(op);
    out += "public_key=" + hexKey(w.publicKey) + "\n";
    if (w.remove) {
      out += "remove=true\n";
      continue;
    }
    if (w.presharedKey) {
      out += "preshared_key=" + hexKey(*w.presharedKey) + "\n";
    }
    if (w.endpoint) {
      out += "endpoint=" + w.endpoint->str() + "\n";
    }
    if (w.persistentKeepalive) {
      out += "persistent_keepalive_interval=" + std::to_string(*w.persistentKeepalive) + "\n";
    }
    if (w.replaceAllowedIps) {
      out += "replace_allowed_ips=true\n";
    }
    for (const IpPrefix& p : w.allowedIps) {
      out += "allowed_ip=" + p.str() + "\n";
    }
  }
  out += "\n";
  return out;
}

Result<WgDevice> parseUapiGetReply(std::string_view reply, const UapiLimits& limits) {
  constexpr std::string_view kWhat = "get reply";
  if (reply.size() > limits.maxReplyBytes) {
    return terminal("UAPI get reply exceeds " + std::to_string(limits.maxReplyBytes) + " bytes");
  }
  auto lines = splitMessage(reply);
  if (!lines) {
    return terminal("malformed UAPI get reply: " + lines.error().message);
  }
  if (lines->empty() || lines->back().substr(0, 6) != "errno=") {
    return terminal("malformed UAPI get reply: it does not end with an errno line");
  }
  // errno first: a failed get carries nothing else worth parsing.
  auto code = parseErrno(lines->back().substr(6));
  if (!code) {
    return malformed(kWhat, lines->size(), "bad errno value");
  }
  if (*code != 0) {
    return retryable("wireguard-go failed the get request: " + errnoReply(*code));
  }

  WgDevice dev;
  enum DeviceKey : uint32_t { kPrivate = 1, kPort = 2, kMark = 4 };
  enum PeerKey : uint32_t {
    kPsk = 1,
    kProto = 2,
    kEndpoint = 4,
    kSec = 8,
    kNsec = 16,
    kTx = 32,
    kRx = 64,
    kKeepalive = 128
  };
  uint32_t deviceSeen = 0;
  uint32_t peerSeen = 0;
  WgPeer* peer = nullptr;
  std::optional<int64_t> sec;
  std::optional<int64_t> nsec;
  std::set<WgKey> keys;
  size_t allowedIps = 0;
  auto finishPeer = [&] {
    if (peer != nullptr && ((sec && *sec != 0) || (nsec && *nsec != 0))) {
      peer->lastHandshake = sec.value_or(0);
    }
    sec.reset();
    nsec.reset();
  };

  for (size_t i = 0; i + 1 < lines->size(); ++i) {
    const size_t lineNo = i + 1;
    std::string_view line = (*lines)[i];
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return malformed(kWhat, lineNo, "not key=value");
    }
    const std::string_view key = line.substr(0, eq);
    const std::string_view value = line.substr(eq + 1);
    if (!validKeyName(key)) {
      return malformed(kWhat, lineNo, "bad key name");
    }
    auto once = [&](uint32_t& seen, uint32_t bit) {
      const bool first = (seen & bit) == 0;
      seen |= bit;
      return first;
    };
    if (key == "errno") {
      return malformed(kWhat, lineNo, "errno before the end");
    }
    if (key == "private_key" || key == "listen_port" || key == "fwmark") {
      if (peer != nullptr) {
        return malformed(kWhat, lineNo, "device key '" + std::string(key) + "' after a peer");
      }
      const uint32_t bit = key == "private_key" ? kPrivate : key == "listen_port" ? kPort : kMark;
      if (!once(deviceSeen, bit)) {
        return malformed(kWhat, lineNo, "duplicate '" + std::string(key) + "'");
      }
      if (bit == kPrivate) {
        auto k = parseHexKey(value);
        if (!k) {
          return malformed(kWhat, lineNo, "bad private_key");
        }
        dev.privateKey = isZero(*k) ? std::nullopt : k;
      } else if (bit == kPort) {
        auto v = parseUnsigned(value, UINT16_MAX);
        if (!v) {
          return malformed(kWhat, lineNo, "bad listen_port");
        }
        dev.listenPort = static_cast<uint16_t>(*v);
      } else {
        auto v = parseUnsigned(value, UINT32_MAX);
        if (!v) {
          return malformed(kWhat, lineNo, "bad fwmark");
        }
        dev.fwmark = static_cast<uint32_t>(*v);
      }
      continue;
    }
    if (key == "public_key") {
      auto k = parseHexKey(value);
      if (!k) {
        return malformed(kWhat, lineNo, "bad public_key");
      }
      if (!keys.insert(*k).second) {
        return malformed(kWhat, lineNo, "duplicate peer");
      }
      if (dev.peers.size() >= limits.maxPeers) {
        return terminal("UAPI get reply has more than " + std::to_string(limits.maxPeers) +
                        " peers");
      }
      finishPeer();
      dev.peers.emplace_back();
      peer = &dev.peers.back();
      peer->publicKey = *k;
      peerSeen = 0;
      continue;
    }
    const bool peerKey = key == "preshared_key" || key == "protocol_version" || key == "endpoint" ||
                         key == "last_handshake_time_sec" || key == "last_handshake_time_nsec" ||
                         key == "tx_bytes" || key == "rx_bytes" ||
                         key == "persistent_keepalive_interval" || key == "allowed_ip";
    if (!peerKey) {
      continue;  // a key from a newer or extended implementation
    }
    if (peer == nullptr) {
      return malformed(kWhat, lineNo, "peer key '" + std::string(key) + "' before any public_key");
    }
    if (key == "allowed_ip") {
      auto p = parsePrefix(value);
      if (!p) {
        return malformed(kWhat, lineNo, "bad allowed_ip");
      }
      if (++allowedIps > limits.maxAllowedIps) {
        return terminal("UAPI get reply has more than " + std::to_string(limits.maxAllowedIps) +
                        " allowed IPs");
      }
      peer->allowedIps.push_back(p->network());
      continue;
    }
    const uint32_t bit = key == "preshared_key"              ? kPsk
                         : key == "protocol_version"         ? kProto
                         : key == "endpoint"                 ? kEndpoint
                         : key == "last_handshake_time_sec"  ? kSec
                         : key == "last_handshake_time_nsec" ? kNsec
                         : key == "tx_bytes"                 ? kTx
                         : key == "rx_bytes"                 ? kRx
                                                             : kKeepalive;
    if (!once(peerSeen, bit)) {
      return malformed(kWhat, lineNo, "duplicate '" + std::string(key) + "'");
    }
    switch (bit) {
      case kPsk: {
        auto k = parseHexKey(value);
        if (!k) {
          return malformed(kWhat, lineNo, "bad preshared_key");
        }
        peer->presharedKey = isZero(*k) ? std::nullopt : k;
        break;
      }
      case kProto:
        if (value != "1") {
          return malformed(kWhat, lineNo, "unsupported protocol_version");
        }
        break;
      case kEndpoint: {
        auto ep = Endpoint::parse(value);
        if (!ep) {
          return malformed(kWhat, lineNo, "bad endpoint");
        }
        peer->endpoint = ep;
        break;
      }
      case kSec: {
        auto v = parseUnsigned(value, INT64_MAX);
        if (!v) {
          return malformed(kWhat, lineNo, "bad last_handshake_time_sec");
        }
        sec = static_cast<int64_t>(*v);
        break;
      }
      case kNsec: {
        auto v = parseUnsigned(value, 999999999);
        if (!v) {
          return malformed(kWhat, lineNo, "bad last_handshake_time_nsec");
        }
        nsec = static_cast<int64_t>(*v);
        break;
      }
      case kTx:
      case kRx: {
        auto v = parseUnsigned(value, UINT64_MAX);
        if (!v) {
          return malformed(kWhat, lineNo, "bad transfer counter");
        }
        (bit == kTx ? peer->txBytes : peer->rxBytes) = *v;
        break;
      }
      default: {
        auto v = parseUnsigned(value, UINT16_MAX);
        if (!v) {
          return malformed(kWhat, lineNo, "bad persistent_keepalive_interval");
        }
        if (*v != 0) {
          peer->persistentKeepalive = static_cast<uint16_t>(*v);
        }
        break;
      }
    }
  }
  finishPeer();
  if (!dev.listenPort) {
    dev.listenPort = 0;
  }
  if (!dev.fwmark) {
    dev.fwmark = 0;
  }
  return dev;
}

Result<void> parseUapiSetReply(std::string_view reply) {
  if (reply.size() > 64 || reply.substr(0, 6) != "errno=" || reply.size() < 9 ||
      reply.substr(reply.size() - 2) != "\n\n") {
    return terminal("malformed UAPI set reply: expected errno=N and a blank line");
  }
  auto code = parseErrno(reply.substr(6, reply.size() - 8));
  if (!code) {
    return terminal("malformed UAPI set reply: bad errno value");
  }
  if (*code == EADDRINUSE || *code == -EADDRINUSE) {
    // The listen port is taken, perhaps by an instance still shutting down.
    return retryable("wireguard-go rejected the configuration: " + errnoReply(*code));
  }
  if (*code != 0) {
    return terminal("wireguard-go rejected the configuration: " + errnoReply(*code));
  }
  return {};
}

std::string encodeUapiGetReply(const WgDevice& device) {
  std::string out;
  if (device.privateKey && !isZero(*device.privateKey)) {
    out += "private_key=" + hexKey(*device.privateKey) + "\n";
  }
  if (device.listenPort.value_or(0) != 0) {
    out += "listen_port=" + std::to_string(*device.listenPort) + "\n";
  }
  if (device.fwmark.value_or(0) != 0) {
    out += "fwmark=" + std::to_string(*device.fwmark) + "\n";
  }
  for (const WgPeer& p : device.peers) {
    out += "public_key=" + hexKey(p.publicKey) + "\n";
    out += "preshared_key=" + hexKey(p.presharedKey.value_or(WgKey{})) + "\n";
    out += "protocol_version=1\n";
    if (p.endpoint) {
      out += "endpoint=" + p.endpoint->str() + "\n";
    }
    out += "last_handshake_time_sec=" + std::to_string(p.lastHandshake.value_or(0)) + "\n";
    out += "last_handshake_time_nsec=0\n";
    out += "tx_bytes=" + std::to_string(p.txBytes) + "\n";
    out += "rx_bytes=" + std::to_string(p.rxBytes) + "\n";
    out +=
        "persistent_keepalive_interval=" + std::to_string(p.persistentKeepalive.value_or(0)) + "\n";
    for (const IpPrefix& ip : p.allowedIps) {
      out += "allowed_ip=" + ip.network().str() + "\n";
    }
  }
  out += "errno=0\n\n";
  return out;
}

Result<WgSetRequest> parseUapiSet(std::string_view request, const UapiLimits& limits) {
  constexpr std::string_view kWhat = "set request";
  if (request.size() > limits.maxReplyBytes) {
    return terminal("UAPI set request exceeds " + std::to_string(limits.maxReplyBytes) + " bytes");
  }
  auto lines = splitMessage(request);
  if (!lines) {
    return terminal("malformed UAPI set request: " + lines.error().message);
  }
  if (lines->empty() || lines->front() != "set=1") {
    return terminal("malformed UAPI set request: it does not start with set=1");
  }
  WgSetRequest req;
  WgPeerOp* op = nullptr;
  bool replaceAllowed = false;
  size_t allowedIps = 0;
  auto finishOp = [&]() -> bool {
    // Only what encodeUapiSet produces: a peer either removed or with replace_allowed_ips.
    return op == nullptr || op->kind == WgPeerOp::Kind::Remove || replaceAllowed;
  };
  for (size_t i = 1; i < lines->size(); ++i) {
    const size_t lineNo = i + 1;
    std::string_view line = (*lines)[i];
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos || !validKeyName(line.substr(0, eq))) {
      return malformed(kWhat, lineNo, "not key=value");
    }
    const std::string_view key = line.substr(0, eq);
    const std::string_view value = line.substr(eq + 1);
    if (key == "public_key") {
      auto k = parseHexKey(value);
      if (!k) {
        return malformed(kWhat, lineNo, "bad public_key");
      }
      if (!finishOp()) {
        return malformed(kWhat, lineNo, "previous peer appends allowed IPs");
      }
      if (req.peers.size() >= limits.maxPeers) {
        return terminal("UAPI set request has too many peers");
      }
      req.peers.emplace_back();
      op = &req.peers.back();
      op->kind = WgPeerOp::Kind::Add;
      op->peer.publicKey = *k;
      replaceAllowed = false;
      continue;
    }
    if (op == nullptr) {
      if (key == "private_key") {
        req.privateKey = parseHexKey(value);
        if (!req.privateKey) {
          return malformed(kWhat, lineNo, "bad private_key");
        }
      } else if (key == "listen_port") {
        auto v = parseUnsigned(value, UINT16_MAX);
        if (!v) {
          return malformed(kWhat, lineNo, "bad listen_port");
        }
        req.listenPort = static_cast<uint16_t>(*v);
      } else if (key == "fwmark") {
        auto v = parseUnsigned(value, UINT32_MAX);
        if (!v) {
          return malformed(kWhat, lineNo, "bad fwmark");
        }
        req.fwmark = static_cast<uint32_t>(*v);
      } else if (key == "replace_peers" && value == "true") {
        req.replacePeers = true;
      } else {
        return malformed(kWhat, lineNo, "unknown device key");
      }
      continue;
    }
    if (key == "remove" && value == "true") {
      op->kind = WgPeerOp::Kind::Remove;
    } else if (key == "preshared_key") {
      auto k = parseHexKey(value);
      if (!k) {
        return malformed(kWhat, lineNo, "bad preshared_key");
      }
      op->peer.presharedKey = isZero(*k) ? std::nullopt : k;
    } else if (key == "endpoint") {
      op->peer.endpoint = Endpoint::parse(value);
      if (!op->peer.endpoint) {
        return malformed(kWhat, lineNo, "bad endpoint");
      }
    } else if (key == "persistent_keepalive_interval") {
      auto v = parseUnsigned(value, UINT16_MAX);
      if (!v) {
        return malformed(kWhat, lineNo, "bad persistent_keepalive_interval");
      }
      op->peer.persistentKeepalive =
          *v == 0 ? std::nullopt : std::optional<uint16_t>(static_cast<uint16_t>(*v));
    } else if (key == "replace_allowed_ips" && value == "true") {
      replaceAllowed = true;
    } else if (key == "allowed_ip") {
      auto p = parsePrefix(value);
      if (!p) {
        return malformed(kWhat, lineNo, "bad allowed_ip");
      }
      if (++allowedIps > limits.maxAllowedIps) {
        return terminal("UAPI set request has too many allowed IPs");
      }
      op->peer.allowedIps.push_back(*p);
    } else if (key == "protocol_version" && value == "1") {
      // nothing to keep
    } else {
      return malformed(kWhat, lineNo, "unknown or unsupported peer key");
    }
  }
  if (!finishOp()) {
    return terminal("malformed UAPI set request: last peer appends allowed IPs");
  }
  return req;
}

Result<std::string> uapiExchange(int fd, std::string_view request, size_t maxReplyBytes,
                                 milliseconds timeout) {
  const int waitMs = static_cast<int>(std::min<int64_t>(timeout.count(), INT32_MAX));
  size_t sent = 0;
  while (sent < request.size()) {
    pollfd pfd{fd, POLLOUT, 0};
    const int pr = ::poll(&pfd, 1, waitMs);
    if (pr < 0 && errno == EINTR) {
      continue;
    }
    if (pr == 0) {
      return retryable("UAPI request timed out after " + std::to_string(timeout.count()) +
                       " ms (writing)");
    }
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      return retryable("UAPI write: " + errnoText(errno));
    }
    sent += static_cast<size_t>(n);
  }
  std::string reply;
  char buf[65536];
  while (true) {
    pollfd pfd{fd, POLLIN, 0};
    const int pr = ::poll(&pfd, 1, waitMs);
    if (pr < 0 && errno == EINTR) {
      continue;
    }
    if (pr == 0) {
      return retryable("UAPI reply timed out after " + std::to_string(timeout.count()) + " ms");
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      return retryable("UAPI read: " + errnoText(errno));
    }
    if (n == 0) {
      return retryable("UAPI connection closed before the end of the reply");
    }
    const size_t scanFrom = reply.empty() ? 0 : reply.size() - 1;
    reply.append(buf, static_cast<size_t>(n));
    if (reply.size() > maxReplyBytes) {
      return terminal("UAPI reply exceeds " + std::to_string(maxReplyBytes) + " bytes");
    }
    const size_t end = reply.find("\n\n", scanFrom);
    if (end != std::string::npos) {
      if (end + 2 != reply.size()) {
        return terminal("malformed UAPI reply: bytes follow its terminating blank line");
      }
      return reply;
    }
  }
}

// --- backend ---

std::string UapiBackend::socketPath(std::string_view ifname) const {
  return env_.socketDir + "/" + std::string(ifname) + ".sock";
}

std::string UapiBackend::pidFilePath(std::string_view ifname) const {
  return env_.stateDir + "/wireguard/" + std::string(ifname) + ".pid";
}

std::string UapiBackend::logFilePath(std::string_view ifname) const {
  return env_.stateDir + "/wireguard/" + std::string(ifname) + ".log";
}

std::optional<pid_t> UapiBackend::socketOwner(std::string_view ifname) const {
  auto fd = connect(ifname);
  if (!fd) {
    return std::nullopt;
  }
  ucred cred{};
  socklen_t len = sizeof(cred);
  const bool ok = ::getsockopt(*fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 1;
  ::close(*fd);
  if (!ok) {
    return std::nullopt;
  }
  // Only a process whose last argument is this interface: `wireguard-go -f <ifname>`.
  const std::string path = "/proc/" + std::to_string(cred.pid) + "/cmdline";
  const int cmd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (cmd < 0) {
    return std::nullopt;
  }
  char buf[4096];
  const ssize_t n = ::read(cmd, buf, sizeof(buf));
  ::close(cmd);
  if (n <= 1 || buf[n - 1] != '\0') {
    return std::nullopt;
  }
  std::string_view args(buf, static_cast<size_t>(n - 1));
  const size_t lastNul = args.rfind('\0');
  const std::string_view last = lastNul == std::string_view::npos ? args : args.substr(lastNul + 1);
  if (last != ifname) {
    return std::nullopt;
  }
  return cred.pid;
}

std::optional<pid_t> UapiBackend::runningPid(std::string_view ifname) const {
  // The pid file: "<pid> <start time>\n" (the start time guards against a reused pid).
  auto stored = readOwnFile(pidFilePath(ifname));  // a symlink there counts as no record
  if (stored && *stored) {
    std::string_view text = **stored;
    if (!text.empty() && text.back() == '\n') {
      text.remove_suffix(1);
    }
    const size_t sp = text.find(' ');
    if (sp != std::string_view::npos) {
      auto pid = parseUnsigned(text.substr(0, sp), INT32_MAX);
      auto start = parseUnsigned(text.substr(sp + 1), UINT64_MAX);
      if (pid && start && *pid > 1 && processRunning(static_cast<pid_t>(*pid), *start)) {
        return static_cast<pid_t>(*pid);
      }
    }
  }
  // Not recorded, or not that process any more (a lost state directory, a manual restart):
  // whoever serves the socket, if it is a wireguard-go for this interface.
  return socketOwner(ifname);
}

Result<int> UapiBackend::connect(std::string_view ifname) const {
  const std::string path = socketPath(ifname);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return terminal("UAPI socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return terminal("socket: " + errnoText(errno));
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return retryable("wireguard-go for " + std::string(ifname) + " is not answering on " + path +
                     ": " + errnoText(err));
  }
  return fd;
}

Result<std::string> UapiBackend::request(std::string_view ifname, std::string_view text) const {
  auto fd = connect(ifname);
  if (!fd) {
    return fd.error();
  }
  auto reply = uapiExchange(*fd, text, UapiLimits{}.maxReplyBytes, env_.ioTimeout);
  ::close(*fd);
  if (!reply) {
    Error e = reply.error();
    e.message = std::string(ifname) + ": " + e.message;
    return e;
  }
  return reply;
}

Result<void> UapiBackend::stop(std::string_view ifname, bool& stopped) {
  stopped = false;
  const std::string pidFile = pidFilePath(ifname);
  if (auto pid = runningPid(ifname)) {
    auto st = readProcStat(*pid);
    const uint64_t start = st ? st->startTime : 0;
    ::kill(*pid, SIGTERM);
    if (!waitGone(*pid, start, milliseconds(3000))) {
      ::kill(*pid, SIGKILL);
      if (!waitGone(*pid, start, milliseconds(2000))) {
        return retryable("wireguard-go for " + std::string(ifname) + " (pid " +
                         std::to_string(*pid) + ") does not exit");
      }
    }
    stopped = true;
  }
  ::unlink(pidFile.c_str());
  // A killed wireguard-go leaves its socket behind; a live foreign one keeps answering.
  if (auto fd = connect(ifname)) {
    ::close(*fd);
  } else {
    ::unlink(socketPath(ifname).c_str());
  }
  return {};
}

Result<void> UapiBackend::createInterface(std::string_view ifname, std::string_view netns,
                                          std::optional<uint32_t> mtu) {
  const std::string name(ifname);
  const std::string what = "start wireguard-go for " + name + where(netns);
  if (!isValidIfname(ifname)) {
    return terminal(what + ": invalid interface name");
  }
  auto exe = findExecutable(env_.wireguardGo);
  if (!exe) {
    return terminal(what + ": " + env_.wireguardGo + " is not an executable");
  }
  bool stopped = false;
  if (auto r = stop(ifname, stopped); !r) {
    return terminal(what + ": " + r.error().message);
  }
  if (auto fd = connect(ifname)) {
    ::close(*fd);
    return terminal(what + ": a process that is not wireguard-go for " + name + " serves " +
                    socketPath(ifname) + "; stop it first");
  }
  // The TUN device of an instance that just died goes away with its last file descriptor.
  for (const auto deadline = Clock::now() + milliseconds(3000);;) {
    auto link = wgLinkGet(netns, ifname);
    if (!link) {
      return terminal(what + ": " + link.error().message);
    }
    if (!*link) {
      break;
    }
    if ((*link)->kind != "tun" || Clock::now() >= deadline) {
      return retryable(what + ": a '" + (*link)->kind + "' link named " + name + " is in the way");
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  if (!netns.empty()) {
    auto hostLink = wgLinkGet("", ifname);
    if (!hostLink) {
      return terminal(what + ": " + hostLink.error().message);
    }
    if (*hostLink) {
      return terminal(what + ": a '" + (*hostLink)->kind + "' link named " + name +
                      " exists in the host namespace");
    }
  }

  if (auto r = mkdirPrivate(env_.stateDir + "/wireguard"); !r) {
    return terminal(what + ": " + r.error().message);
  }
  const std::string logPath = logFilePath(ifname);
  struct stat logStat {};
  if (::stat(logPath.c_str(), &logStat) == 0 && logStat.st_size > (1 << 20)) {
    ::rename(logPath.c_str(), (logPath + ".old").c_str());
  }
  const int logFd = ::open(logPath.c_str(),
                           O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
  if (logFd < 0) {
    return terminal(what + ": open " + logPath + ": " + errnoText(errno));
  }

  // The environment, minus what would make wireguard-go adopt descriptors it does not have.
  std::vector<std::string> envStore;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("WG_TUN_FD=") || kv.starts_with("WG_UAPI_FD=") ||
        kv.starts_with("WG_PROCESS_FOREGROUND=")) {
      continue;
    }
    envStore.emplace_back(kv);
  }
  envStore.emplace_back("WG_PROCESS_FOREGROUND=1");
  std::vector<char*> envp;
  for (std::string& s : envStore) {
    envp.push_back(s.data());
  }
  envp.push_back(nullptr);
  std::string arg0 = *exe;
  std::string arg1 = "-f";
  std::string arg2 = name;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, logFd, 1);
  posix_spawn_file_actions_adddup2(&actions, logFd, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own session: it outlives this run and ignores our terminal's signals.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t mask;
  sigemptyset(&mask);
  posix_spawnattr_setsigmask(&attr, &mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);
  pid_t pid = -1;
  const int spawnErr = ::posix_spawn(&pid, arg0.c_str(), &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(logFd);
  if (spawnErr != 0) {
    return terminal(what + ": spawn " + arg0 + ": " + errnoText(spawnErr));
  }

  auto fail = [&](Error e) -> Result<void> {
    ::kill(pid, SIGTERM);
    if (!waitGone(pid, readProcStat(pid).value_or(ProcStat{}).startTime, milliseconds(2000))) {
      ::kill(pid, SIGKILL);
    }
    int status = 0;
    (void)::waitpid(pid, &status, 0);
    ::unlink(pidFilePath(ifname).c_str());
    e.message = what + ": " + e.message;
    return e;
  };

  auto st = readProcStat(pid);
  if (!st) {
    int status = 0;
    (void)::waitpid(pid, &status, 0);
    return terminal(what + ": wireguard-go exited at once: " + lastLogLine(logPath));
  }
  const std::string pidFile = pidFilePath(ifname);
  if (auto r = replaceFile(pidFile, pidFile + ".tmp",
                           std::to_string(pid) + " " + std::to_string(st->startTime) + "\n", 0600);
      !r) {
    return fail(r.error());
  }

  const auto deadline = Clock::now() + env_.startTimeout;
  while (true) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      ::unlink(pidFilePath(ifname).c_str());
      const std::string how = WIFEXITED(status)
                                  ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                  : "was killed by signal " + std::to_string(WTERMSIG(status));
      return terminal(what + ": wireguard-go " + how + ": " + lastLogLine(logPath) + " (log " +
                      logPath + ")");
    }
    if (auto fd = connect(ifname)) {
      ::close(*fd);
      break;
    }
    if (Clock::now() >= deadline) {
      return fail(retryable("its UAPI socket " + socketPath(ifname) + " did not appear within " +
                            std::to_string(env_.startTimeout.count()) + " ms"));
    }
    std::this_thread::sleep_for(milliseconds(5));
  }

  auto link = wgLinkGet("", ifname);
  if (!link) {
    return fail(link.error());
  }
  if (!*link || (*link)->kind != "tun") {
    return fail(terminal("its TUN device did not appear in the host namespace"));
  }
  // Before the move, so that wireguard-go, whose netlink listener stays in the host namespace,
  // sees the new MTU.
  if (mtu) {
    if (auto r = wgLinkSetMtu("", ifname, *mtu); !r) {
      return fail(r.error());
    }
  }
  if (!netns.empty()) {
    if (auto r = wgLinkMove(ifname, netns); !r) {
      return fail(r.error());
    }
  }
  return {};
}

Result<WgRemoval> UapiBackend::deleteInterface(std::string_view ifname, std::string_view netns) {
  bool stopped = false;
  if (auto r = stop(ifname, stopped); !r) {
    return r.error();
  }
  // Without a recorded process, deleting its TUN device makes wireguard-go exit too.
  auto link = wgLinkGet(netns, ifname);
  if (!link) {
    return link.error();
  }
  bool removed = stopped;
  if (*link && (*link)->kind == "tun") {
    auto del = wgLinkDelete(netns, ifname);
    if (!del) {
      return del.error();
    }
    removed = removed || *del == WgRemoval::Removed;
  } else if (*link) {
    return terminal("delete WireGuard interface " + std::string(ifname) + where(netns) +
                    ": it is a '" + (*link)->kind + "' link, not wireguard-go's TUN device");
  }
  return removed ? WgRemoval::Removed : WgRemoval::AlreadyAbsent;
}

Result<bool> UapiBackend::interfaceAlive(std::string_view ifname, std::string_view netns) {
  if (!runningPid(ifname)) {
    return false;
  }
  auto fd = connect(ifname);
  if (!fd) {
    return false;
  }
  ::close(*fd);
  auto link = wgLinkGet(netns, ifname);
  if (!link) {
    return link.error();
  }
  return link->has_value() && (*link)->kind == "tun";
}

Result<WgDevice> UapiBackend::getDevice(std::string_view ifname, std::string_view netns) {
  (void)netns;  // the UAPI socket lives in the host's socket directory
  auto reply = request(ifname, kUapiGet);
  if (!reply) {
    return reply.error();
  }
  auto device = parseUapiGetReply(*reply);
  if (!device) {
    Error e = device.error();
    e.message = std::string(ifname) + ": " + e.message;
    return e;
  }
  device->ifname = std::string(ifname);
  if (device->privateKey) {
    auto pub = publicKeyFor(*device->privateKey);
    if (!pub) {
      return pub.error();
    }
    device->publicKey = *pub;
  }
  return device;
}

Result<void> UapiBackend::setDevice(const WgSetRequest& req) {
  if (!isValidIfname(req.ifname)) {
    return terminal("invalid interface name '" + req.ifname + "'");
  }
  auto reply = request(req.ifname, encodeUapiSet(req));
  if (!reply) {
    return reply.error();
  }
  if (auto r = parseUapiSetReply(*reply); !r) {
    Error e = r.error();
    e.message = "configure WireGuard interface " + req.ifname + where(req.netns) + ": " + e.message;
    return e;
  }
  return {};
}

Result<std::unique_ptr<WgBackend>> makeUapiBackend(const WgEnv& env) {
  if (env.stateDir.empty()) {
    return terminal("the userspace WireGuard backend needs a state directory");
  }
  if (!findExecutable(env.wireguardGo)) {
    return terminal("the userspace WireGuard backend needs wireguard-go, and '" + env.wireguardGo +
                    "' is not an executable (install wireguard-go or set its path)");
  }
  return std::unique_ptr<WgBackend>(std::make_unique<UapiBackend>(env));
}

}  // namespace edgeplane::sys
