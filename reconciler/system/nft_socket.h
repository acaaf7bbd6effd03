// The nftables driver's only I/O: a netfilter netlink socket (libmnl) inside one network
// namespace that sends batches, collects the kernel's acknowledgements and dumps the table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "reconciler/system/nft_codec.h"
#include "reconciler/system/nft_table.h"
#include "schema/result.h"

struct mnl_socket;

namespace edgeplane::sys {

// A netfilter netlink socket bound inside one network namespace.
class NftSocket {
 public:
  // `netns` as for NetnsScope::enter: empty = the caller's namespace.
  static Result<NftSocket> open(std::string_view netns);
  NftSocket(NftSocket&& other) noexcept;
  NftSocket& operator=(NftSocket&& other) noexcept;
  NftSocket(const NftSocket&) = delete;
  NftSocket& operator=(const NftSocket&) = delete;
  ~NftSocket();

  // Sends the batch and reads the kernel's answer to every message. The kernel applies all of
  // it or nothing; an error names the first failing message's object, within a message of
  // elements the one the kernel points at ("add element ... to map fwd_tcp: File exists"), and
  // how many other messages failed.
  Result<void> send(const NftBatch& batch);
  // Reads table, maps, chains, rules and elements of `ip edgeplane` as one consistent
  // snapshot (retried if the ruleset generation changes meanwhile). Absent table -> nullopt.
  // `generation` (when given) is set to the ruleset generation the snapshot was read at.
  Result<std::optional<NftTableState>> observe(uint32_t* generation = nullptr);
  // The namespace's ruleset generation id (NFT_MSG_GETGEN): every committed nftables
  // transaction in the namespace, by anyone, increments it by one.
  Result<uint32_t> generation();
  // The namespace's cookie (SO_NETNS_COOKIE): unique among the namespaces of one boot.
  Result<uint64_t> netnsCookie() const;

 private:
  NftSocket(mnl_socket* socket, std::string netns);
  mnl_socket* socket_ = nullptr;
  uint32_t portId_ = 0;
  uint32_t seq_ = 0;
  std::string netns_;  // for error messages
};

}  // namespace edgeplane::sys
