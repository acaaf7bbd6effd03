// WireGuard UAPI text codec, the direction edgeplane speaks: set requests encoded, get and set
// replies parsed strictly; the line-level pieces (wg_uapi_lines.h). No I/O.
#include "reconciler/system/wg_uapi_codec.h"

#include "reconciler/system/wg_uapi_lines.h"

#include <algorithm>
#include <cerrno>
#include <vector>

#include "reconciler/system/wg_keys.h"
#include "schema/encoding.h"

namespace edgeplane::sys {

namespace {

bool validKeyName(std::string_view key) {
  return !key.empty() && key.size() <= 64 && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

namespace uapi_detail {

std::string hexKey(const WgKey& key) {
  return toHex(key.bytes.data(), key.bytes.size());
}

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

Result<std::vector<std::string_view>> splitMessage(std::string_view text, std::string_view what,
                                                   size_t maxBytes) {
  if (text.size() > maxBytes) {
    return terminal("UAPI " + std::string(what) + " exceeds " + std::to_string(maxBytes) +
                    " bytes");
  }
  std::vector<std::string_view> lines;
  lines.reserve(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')));
  size_t pos = 0;
  while (true) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      return malformed(what, "it does not end with a blank line");
    }
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) {
      if (pos != text.size()) {
        return malformed(what, "bytes follow its terminating blank line");
      }
      return lines;
    }
    lines.push_back(line);
  }
}

Error malformed(std::string_view what, std::string_view why) {
  return terminal("malformed UAPI " + std::string(what) + ": " + std::string(why));
}

Error malformed(std::string_view what, size_t lineNo, std::string_view why) {
  return malformed(what, "line " + std::to_string(lineNo) + ": " + std::string(why));
}

std::optional<std::pair<std::string_view, std::string_view>> splitLine(std::string_view line) {
  const size_t eq = line.find('=');
  if (eq == std::string_view::npos || !validKeyName(line.substr(0, eq))) {
    return std::nullopt;
  }
  return std::pair{line.substr(0, eq), line.substr(eq + 1)};
}

}  // namespace uapi_detail

using namespace uapi_detail;  // the line-level pieces (wg_uapi_lines.h)

namespace {

std::optional<int64_t> parseErrno(std::string_view text) {
  bool negative = false;
  if (!text.empty() && text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  auto v = parseDecimal(text, 1000000, LeadingZeros::Allowed);
  if (!v) {
    return std::nullopt;
  }
  return negative ? -static_cast<int64_t>(*v) : static_cast<int64_t>(*v);
}

std::string errnoReply(int64_t code) {
  const int e = static_cast<int>(code < 0 ? -code : code);
  return "errno " + std::to_string(code) + " (" + errnoText(e) + ")";
}

// Sets `bit` in `seen`; false when it was set already (a duplicate key).
bool once(uint32_t& seen, uint32_t bit) {
  const bool first = (seen & bit) == 0;
  seen |= bit;
  return first;
}

// The lines of a get reply before its errno line, one at a time.
class GetReplyParser {
 public:
  explicit GetReplyParser(const UapiLimits& limits) : limits_(limits) {}

  // Room for `peers` peers (a hint: the reply's public_key lines).
  void reserve(size_t peers);
  Result<void> line(size_t lineNo, std::string_view key, std::string_view value);
  // The device; an error when two peers have one key.
  Result<WgDevice> finish();

 private:
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

  Result<void> deviceKey(size_t lineNo, std::string_view key, std::string_view value);
  Result<void> publicKey(size_t lineNo, std::string_view value);
  Result<void> allowedIp(size_t lineNo, std::string_view value);
  Result<void> peerKey(size_t lineNo, std::string_view key, std::string_view value);
  Result<void> peerNumber(size_t lineNo, uint32_t bit, std::string_view value);
  void finishPeer();

  const UapiLimits& limits_;
  WgDevice dev_;
  uint32_t deviceSeen_ = 0;
  uint32_t peerSeen_ = 0;
  WgPeer* peer_ = nullptr;
  std::optional<int64_t> sec_;
  std::optional<int64_t> nsec_;
  std::vector<size_t> peerLines_;  // the public_key line of each peer, for a duplicate's error
  size_t allowedIps_ = 0;
};

void GetReplyParser::reserve(size_t peers) {
  peers = std::min(peers, limits_.maxPeers);
  dev_.peers.reserve(peers);
  peerLines_.reserve(peers);
}

bool isDeviceKey(std::string_view key) {
  return key == "private_key" || key == "listen_port" || key == "fwmark";
}

bool isPeerKey(std::string_view key) {
  return key == "preshared_key" || key == "protocol_version" || key == "endpoint" ||
         key == "last_handshake_time_sec" || key == "last_handshake_time_nsec" ||
         key == "tx_bytes" || key == "rx_bytes" || key == "persistent_keepalive_interval";
}

Result<void> GetReplyParser::line(size_t lineNo, std::string_view key, std::string_view value) {
  if (key == "errno") {
    return malformed(kGetWhat, lineNo, "errno before the end");
  }
  if (isDeviceKey(key)) {
    return deviceKey(lineNo, key, value);
  }
  if (key == "public_key") {
    return publicKey(lineNo, value);
  }
  if (key != "allowed_ip" && !isPeerKey(key)) {
    return {};  // a key from a newer or extended implementation
  }
  if (peer_ == nullptr) {
    return malformed(kGetWhat, lineNo, "peer key '" + std::string(key) + "' before any public_key");
  }
  if (key == "allowed_ip") {
    return allowedIp(lineNo, value);
  }
  return peerKey(lineNo, key, value);
}

Result<void> GetReplyParser::deviceKey(size_t lineNo, std::string_view key,
                                       std::string_view value) {
  if (peer_ != nullptr) {
    return malformed(kGetWhat, lineNo, "device key '" + std::string(key) + "' after a peer");
  }
  const uint32_t bit = key == "private_key" ? kPrivate : key == "listen_port" ? kPort : kMark;
  if (!once(deviceSeen_, bit)) {
    return malformed(kGetWhat, lineNo, "duplicate '" + std::string(key) + "'");
  }
  if (bit == kPrivate) {
    auto k = parseHexKey(value);
    if (!k) {
      return malformed(kGetWhat, lineNo, "bad private_key");
    }
    dev_.privateKey = isZeroKey(*k) ? std::nullopt : k;
  } else if (bit == kPort) {
    auto v = parseDecimal(value, UINT16_MAX, LeadingZeros::Allowed);
    if (!v) {
      return malformed(kGetWhat, lineNo, "bad listen_port");
    }
    dev_.listenPort = static_cast<uint16_t>(*v);
  } else {
    auto v = parseDecimal(value, UINT32_MAX, LeadingZeros::Allowed);
    if (!v) {
      return malformed(kGetWhat, lineNo, "bad fwmark");
    }
    dev_.fwmark = static_cast<uint32_t>(*v);
  }
  return {};
}

Result<void> GetReplyParser::publicKey(size_t lineNo, std::string_view value) {
  auto k = parseHexKey(value);
  if (!k) {
    return malformed(kGetWhat, lineNo, "bad public_key");
  }
  if (dev_.peers.size() >= limits_.maxPeers) {
    return terminal("UAPI get reply has more than " + std::to_string(limits_.maxPeers) + " peers");
  }
  finishPeer();
  dev_.peers.emplace_back();
  peerLines_.push_back(lineNo);
  peer_ = &dev_.peers.back();
  peer_->publicKey = *k;
  peerSeen_ = 0;
  return {};
}

Result<void> GetReplyParser::allowedIp(size_t lineNo, std::string_view value) {
  auto p = parsePrefix(value);
  if (!p) {
    return malformed(kGetWhat, lineNo, "bad allowed_ip");
  }
  if (++allowedIps_ > limits_.maxAllowedIps) {
    return terminal("UAPI get reply has more than " + std::to_string(limits_.maxAllowedIps) +
                    " allowed IPs");
  }
  peer_->allowedIps.push_back(p->network());
  return {};
}

Result<void> GetReplyParser::peerKey(size_t lineNo, std::string_view key, std::string_view value) {
  const uint32_t bit = key == "preshared_key"              ? kPsk
                       : key == "protocol_version"         ? kProto
                       : key == "endpoint"                 ? kEndpoint
                       : key == "last_handshake_time_sec"  ? kSec
                       : key == "last_handshake_time_nsec" ? kNsec
                       : key == "tx_bytes"                 ? kTx
                       : key == "rx_bytes"                 ? kRx
                                                           : kKeepalive;
  if (!once(peerSeen_, bit)) {
    return malformed(kGetWhat, lineNo, "duplicate '" + std::string(key) + "'");
  }
  if (bit == kPsk) {
    auto k = parseHexKey(value);
    if (!k) {
      return malformed(kGetWhat, lineNo, "bad preshared_key");
    }
    peer_->presharedKey = isZeroKey(*k) ? std::nullopt : k;
    return {};
  }
  if (bit == kProto) {
    if (value != "1") {
      return malformed(kGetWhat, lineNo, "unsupported protocol_version");
    }
    return {};
  }
  if (bit == kEndpoint) {
    auto ep = Endpoint::parse(value);
    if (!ep) {
      return malformed(kGetWhat, lineNo, "bad endpoint");
    }
    peer_->endpoint = ep;
    return {};
  }
  return peerNumber(lineNo, bit, value);
}

Result<void> GetReplyParser::peerNumber(size_t lineNo, uint32_t bit, std::string_view value) {
  if (bit == kSec || bit == kNsec) {
    auto v = parseDecimal(value, bit == kSec ? INT64_MAX : 999999999, LeadingZeros::Allowed);
    if (!v) {
      return malformed(
          kGetWhat, lineNo,
          bit == kSec ? "bad last_handshake_time_sec" : "bad last_handshake_time_nsec");
    }
    (bit == kSec ? sec_ : nsec_) = static_cast<int64_t>(*v);
    return {};
  }
  if (bit == kTx || bit == kRx) {
    auto v = parseDecimal(value, UINT64_MAX, LeadingZeros::Allowed);
    if (!v) {
      return malformed(kGetWhat, lineNo, "bad transfer counter");
    }
    (bit == kTx ? peer_->txBytes : peer_->rxBytes) = *v;
    return {};
  }
  auto v = parseDecimal(value, UINT16_MAX, LeadingZeros::Allowed);
  if (!v) {
    return malformed(kGetWhat, lineNo, "bad persistent_keepalive_interval");
  }
  if (*v != 0) {
    peer_->persistentKeepalive = static_cast<uint16_t>(*v);
  }
  return {};
}

void GetReplyParser::finishPeer() {
  if (peer_ != nullptr && ((sec_ && *sec_ != 0) || (nsec_ && *nsec_ != 0))) {
    peer_->lastHandshake = sec_.value_or(0);
  }
  sec_.reset();
  nsec_.reset();
}

Result<WgDevice> GetReplyParser::finish() {
  finishPeer();
  // Two peers with one key: sorted by key, they are neighbours; the later one is named.
  std::vector<size_t> order(dev_.peers.size());
  for (size_t i = 0; i < order.size(); ++i) {
    order[i] = i;
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return dev_.peers[a].publicKey < dev_.peers[b].publicKey; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (dev_.peers[order[i - 1]].publicKey == dev_.peers[order[i]].publicKey) {
      return malformed(kGetWhat, std::max(peerLines_[order[i - 1]], peerLines_[order[i]]),
                       "duplicate peer");
    }
  }
  if (!dev_.listenPort) {
    dev_.listenPort = 0;
  }
  if (!dev_.fwmark) {
    dev_.fwmark = 0;
  }
  return std::move(dev_);
}

}  // namespace

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
  auto lines = splitMessage(reply, kGetWhat, limits.maxReplyBytes);
  if (!lines) {
    return lines.error();
  }
  if (lines->empty() || lines->back().substr(0, 6) != "errno=") {
    return malformed(kGetWhat, "it does not end with an errno line");
  }
  // errno first: a failed get carries nothing else worth parsing.
  auto code = parseErrno(lines->back().substr(6));
  if (!code) {
    return malformed(kGetWhat, lines->size(), "bad errno value");
  }
  if (*code != 0) {
    return retryable("wireguard-go failed the get request: " + errnoReply(*code));
  }
  GetReplyParser parser(limits);
  parser.reserve(
      static_cast<size_t>(std::count_if(lines->begin(), lines->end(), [](std::string_view l) {
        return l.starts_with("public_key=");
      })));
  for (size_t i = 0; i + 1 < lines->size(); ++i) {
    const std::string_view line = (*lines)[i];
    if (line.find('=') == std::string_view::npos) {
      return malformed(kGetWhat, i + 1, "not key=value");
    }
    auto kv = splitLine(line);
    if (!kv) {
      return malformed(kGetWhat, i + 1, "bad key name");
    }
    if (auto r = parser.line(i + 1, kv->first, kv->second); !r) {
      return r.error();
    }
  }
  return parser.finish();
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

}  // namespace edgeplane::sys
