// WireGuard generic netlink codec (WG_CMD_*): pure, round-tripped without a kernel.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "reconciler/system/netlink_attr.h"
#include "reconciler/system/wireguard.h"
#include "schema/result.h"

struct nl_msg;

namespace edgeplane::sys {

// The size wireguard-tools gives each WG_CMD_SET_DEVICE message (mnl_ideal_socket_buffer_size:
// one page, at most 8 KiB). Larger peer sets are split across messages.
size_t defaultGenlBudget();

// Messages carry NL_AUTO_PORT / NL_AUTO_SEQ for the sending socket (NlSocket) to fill in.

// WG_CMD_SET_DEVICE, NLM_F_REQUEST|NLM_F_ACK, at most `budget` bytes each, split the way
// wireguard-tools' ipc-linux.h does: device fields and WGDEVICE_F_REPLACE_PEERS in the first
// message only; a peer that does not fit moves to the next message; a peer whose allowed IPs
// do not fit continues in the next message with its public key and the remaining allowed IPs
// (without WGPEER_F_REPLACE_ALLOWEDIPS, so the earlier ones stay). Unlike wireguard-tools, a
// peer none of whose allowed IPs would fit after its head moves whole to the next message, so
// the kernel never holds it with an emptied list in between. Every message names the device
// (WGDEVICE_A_IFNAME). A peer that cannot fit even alone is an error.
Result<std::vector<NlMsgPtr>> buildSetDeviceMessages(const WgSetRequest& request, int familyId,
                                                     size_t budget);
// WG_CMD_GET_DEVICE, NLM_F_REQUEST|NLM_F_DUMP, for one device by name.
Result<NlMsgPtr> buildGetDeviceRequest(std::string_view ifname, int familyId);
// The dump the kernel answers GET_DEVICE with, for tests and fakes: device attributes in the
// first message, peers split across messages of at most `budget` bytes, a continued peer
// repeating only its public key.
Result<std::vector<NlMsgPtr>> buildGetDeviceReplies(const WgDevice& device, int familyId,
                                                    size_t budget, int ifindex = 0);

// Reassembles a GET_DEVICE dump fed message by message, in order.
class WgGetDeviceParser {
 public:
  Result<void> add(nl_msg* msg);
  // listenPort/fwmark are 0 when the dump had none; all-zero keys, keepalive 0 and a zero
  // handshake time come back unset.
  WgDevice take();

 private:
  Result<void> addDevice(nlattr* const* tb);
  Result<void> addPeer(nlattr* entry);

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
  Result<void> addDevice(nlattr* const* tb);
  Result<void> addPeer(nlattr* entry);

  WgSetRequest request_;
  bool sawFirst_ = false;
  bool lastContinuable_ = false;  // the last peer may continue in the next peer entry
};

}  // namespace edgeplane::sys
