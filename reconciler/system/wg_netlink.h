// WireGuard kernel backend: the generic netlink codec (WG_CMD_*), rtnetlink link helpers.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconciler/system/wireguard.h"
#include "schema/result.h"

struct nl_msg;

namespace edgeplane::sys {

struct WgMsgFree {
  void operator()(nl_msg* msg) const;
};
using WgMsgPtr = std::unique_ptr<nl_msg, WgMsgFree>;

// The size wireguard-tools gives each WG_CMD_SET_DEVICE message (mnl_ideal_socket_buffer_size:
// one page, at most 8 KiB). Larger peer sets are split across messages.
size_t defaultGenlBudget();

// --- Generic netlink codec. No kernel needed: exposed for round-trip tests and fakes. ---
// Messages carry NL_AUTO_PORT / NL_AUTO_SEQ for the sending socket to fill in.

// WG_CMD_SET_DEVICE, NLM_F_REQUEST|NLM_F_ACK, at most `budget` bytes each, split the way
// wireguard-tools' ipc-linux.h does: device fields and WGDEVICE_F_REPLACE_PEERS in the first
// message only; a peer that does not fit moves to the next message; a peer whose allowed IPs
// do not fit continues in the next message with its public key and the remaining allowed IPs
// (without WGPEER_F_REPLACE_ALLOWEDIPS, so the earlier ones stay). Unlike wireguard-tools, a
// peer none of whose allowed IPs would fit after its head moves whole to the next message, so
// the kernel never holds it with an emptied list in between. Every message names the device
// (WGDEVICE_A_IFNAME). A peer that cannot fit even alone is an error.
Result<std::vector<WgMsgPtr>> buildSetDeviceMessages(const WgSetRequest& request, int familyId,
                                                     size_t budget);
// WG_CMD_GET_DEVICE, NLM_F_REQUEST|NLM_F_DUMP, for one device by name.
Result<WgMsgPtr> buildGetDeviceRequest(std::string_view ifname, int familyId);
// The dump the kernel answers GET_DEVICE with, for tests and fakes: device attributes in the
// first message, peers split across messages of at most `budget` bytes, a continued peer
// repeating only its public key.
Result<std::vector<WgMsgPtr>> buildGetDeviceReplies(const WgDevice& device, int familyId,
                                                    size_t budget, int ifindex = 0);

// Reassembles a GET_DEVICE dump fed message by message, in order.
class WgGetDeviceParser {
 public:
  Result<void> add(nl_msg* msg);
  // listenPort/fwmark are 0 when the dump had none; all-zero keys, keepalive 0 and a zero
  // handshake time come back unset.
  WgDevice take();

 private:
  WgDevice device_;
  std::vector<WgKey> seen_;  // sorted
};

// Reassembles SET_DEVICE messages into the request they carry. The wire cannot tell an add
// from an update: every peer that is not removed comes back as Kind::Add, with an all-zero
// preshared key and keepalive 0 unset. Descriptions stay empty.
class WgSetDeviceParser {
 public:
  Result<void> add(nl_msg* msg);
  WgSetRequest take();

 private:
  WgSetRequest request_;
  bool sawFirst_ = false;
  bool lastContinuable_ = false;  // the last peer may continue in the next peer entry
};

// --- rtnetlink for WireGuard links (create by kind, move between namespaces). ---
// Namespaces are names under /run/netns; "" is the calling thread's current namespace.

struct WgLinkState {
  int ifindex = 0;
  std::string kind;  // IFLA_INFO_KIND: "wireguard", "tun", ...
  uint32_t mtu = 0;
  bool up = false;
};

Result<WgMsgPtr> buildWgLinkCreate(std::string_view ifname, std::string_view kind,
                                   std::optional<uint32_t> mtu);
Result<WgMsgPtr> buildWgLinkMove(std::string_view ifname, int netnsFd);
Result<WgMsgPtr> buildWgLinkSetMtu(std::string_view ifname, uint32_t mtu);
Result<WgMsgPtr> buildWgLinkGet(std::string_view ifname);
Result<WgMsgPtr> buildWgLinkDelete(std::string_view ifname);

Result<std::optional<WgLinkState>> wgLinkGet(std::string_view netns, std::string_view ifname);
// Creates the link in the current namespace.
Result<void> wgLinkCreate(std::string_view ifname, std::string_view kind,
                          std::optional<uint32_t> mtu);
Result<void> wgLinkSetMtu(std::string_view netns, std::string_view ifname, uint32_t mtu);
// Moves a link of the current namespace into `targetNetns`.
Result<void> wgLinkMove(std::string_view ifname, std::string_view targetNetns);
Result<WgRemoval> wgLinkDelete(std::string_view netns, std::string_view ifname);

// The kernel backend: `type wireguard` links, configured over generic netlink from a socket
// opened in the interface's namespace (the family is per network namespace).
std::unique_ptr<WgBackend> makeNetlinkBackend();

}  // namespace edgeplane::sys
