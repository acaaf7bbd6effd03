// The inverses of the UAPI codec (wg_uapi_codec.h): set requests parsed and get replies encoded,
// as wireguard-go would; for the unit tests' and the fuzzer's round trips.
#include "reconciler/system/wg_uapi_codec.h"

#include "reconciler/system/wg_keys.h"
#include "reconciler/system/wg_uapi_lines.h"
#include "schema/encoding.h"

namespace edgeplane::sys {

using namespace uapi_detail;  // the line-level pieces (wg_uapi_lines.h)

namespace {

// The lines of a set request after its set=1, one at a time. Accepts only what encodeUapiSet
// produces: a peer either removed or with replace_allowed_ips.
class SetRequestParser {
 public:
  explicit SetRequestParser(const UapiLimits& limits) : limits_(limits) {}

  Result<void> line(size_t lineNo, std::string_view key, std::string_view value);
  // The last peer neither removed nor replacing its allowed IPs: it would append to them.
  bool peerAppends() const {
    return op_ != nullptr && op_->kind != WgPeerOp::Kind::Remove && !replaceAllowed_;
  }
  WgSetRequest finish() { return std::move(req_); }

 private:
  Result<void> publicKey(size_t lineNo, std::string_view value);
  Result<void> deviceKey(size_t lineNo, std::string_view key, std::string_view value);
  Result<void> peerKey(size_t lineNo, std::string_view key, std::string_view value);

  const UapiLimits& limits_;
  WgSetRequest req_;
  WgPeerOp* op_ = nullptr;
  bool replaceAllowed_ = false;
  size_t allowedIps_ = 0;
};

Result<void> SetRequestParser::line(size_t lineNo, std::string_view key, std::string_view value) {
  if (key == "public_key") {
    return publicKey(lineNo, value);
  }
  if (op_ == nullptr) {
    return deviceKey(lineNo, key, value);
  }
  return peerKey(lineNo, key, value);
}

Result<void> SetRequestParser::publicKey(size_t lineNo, std::string_view value) {
  auto k = parseHexKey(value);
  if (!k) {
    return malformed(kSetWhat, lineNo, "bad public_key");
  }
  if (peerAppends()) {
    return malformed(kSetWhat, lineNo, "previous peer appends allowed IPs");
  }
  if (req_.peers.size() >= limits_.maxPeers) {
    return terminal("UAPI set request has too many peers");
  }
  req_.peers.emplace_back();
  op_ = &req_.peers.back();
  op_->kind = WgPeerOp::Kind::Add;
  op_->peer.publicKey = *k;
  replaceAllowed_ = false;
  return {};
}

Result<void> SetRequestParser::deviceKey(size_t lineNo, std::string_view key,
                                         std::string_view value) {
  if (key == "private_key") {
    req_.privateKey = parseHexKey(value);
    if (!req_.privateKey) {
      return malformed(kSetWhat, lineNo, "bad private_key");
    }
  } else if (key == "listen_port") {
    auto v = parseDecimal(value, UINT16_MAX, LeadingZeros::Allowed);
    if (!v) {
      return malformed(kSetWhat, lineNo, "bad listen_port");
    }
    req_.listenPort = static_cast<uint16_t>(*v);
  } else if (key == "fwmark") {
    auto v = parseDecimal(value, UINT32_MAX, LeadingZeros::Allowed);
    if (!v) {
      return malformed(kSetWhat, lineNo, "bad fwmark");
    }
    req_.fwmark = static_cast<uint32_t>(*v);
  } else if (key == "replace_peers" && value == "true") {
    req_.replacePeers = true;
  } else {
    return malformed(kSetWhat, lineNo, "unknown device key");
  }
  return {};
}

Result<void> SetRequestParser::peerKey(size_t lineNo, std::string_view key,
                                       std::string_view value) {
  WgPeer& peer = op_->peer;
  if (key == "remove" && value == "true") {
    op_->kind = WgPeerOp::Kind::Remove;
  } else if (key == "preshared_key") {
    auto k = parseHexKey(value);
    if (!k) {
      return malformed(kSetWhat, lineNo, "bad preshared_key");
    }
    peer.presharedKey = isZeroKey(*k) ? std::nullopt : k;
  } else if (key == "endpoint") {
    peer.endpoint = Endpoint::parse(value);
    if (!peer.endpoint) {
      return malformed(kSetWhat, lineNo, "bad endpoint");
    }
  } else if (key == "persistent_keepalive_interval") {
    auto v = parseDecimal(value, UINT16_MAX, LeadingZeros::Allowed);
    if (!v) {
      return malformed(kSetWhat, lineNo, "bad persistent_keepalive_interval");
    }
    peer.persistentKeepalive =
        *v == 0 ? std::nullopt : std::optional<uint16_t>(static_cast<uint16_t>(*v));
  } else if (key == "replace_allowed_ips" && value == "true") {
    replaceAllowed_ = true;
  } else if (key == "allowed_ip") {
    auto p = parsePrefix(value);
    if (!p) {
      return malformed(kSetWhat, lineNo, "bad allowed_ip");
    }
    if (++allowedIps_ > limits_.maxAllowedIps) {
      return terminal("UAPI set request has too many allowed IPs");
    }
    peer.allowedIps.push_back(*p);
  } else if (key != "protocol_version" || value != "1") {
    return malformed(kSetWhat, lineNo, "unknown or unsupported peer key");
  }
  return {};
}

}  // namespace

std::string encodeUapiGetReply(const WgDevice& device) {
  std::string out;
  if (device.privateKey && !isZeroKey(*device.privateKey)) {
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
  auto lines = splitMessage(request, kSetWhat, limits.maxReplyBytes);
  if (!lines) {
    return lines.error();
  }
  if (lines->empty() || lines->front() != "set=1") {
    return malformed(kSetWhat, "it does not start with set=1");
  }
  SetRequestParser parser(limits);
  for (size_t i = 1; i < lines->size(); ++i) {
    auto kv = splitLine((*lines)[i]);
    if (!kv) {
      return malformed(kSetWhat, i + 1, "not key=value");
    }
    if (auto r = parser.line(i + 1, kv->first, kv->second); !r) {
      return r.error();
    }
  }
  if (parser.peerAppends()) {
    return malformed(kSetWhat, "last peer appends allowed IPs");
  }
  return parser.finish();
}

}  // namespace edgeplane::sys
