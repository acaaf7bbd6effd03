// Netlink attribute codec shared by the rtnetlink and generic netlink codecs (pure, no socket).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "schema/net.h"
#include "schema/result.h"

struct nl_msg;
struct nlattr;
struct nlmsghdr;

namespace edgeplane::sys {

struct NlMsgFree {
  void operator()(nl_msg* msg) const;
};
using NlMsgPtr = std::unique_ptr<nl_msg, NlMsgFree>;

// Readers are bounds-checked: a short attribute is an error (nullopt), never a read past it.

// The bytes up to the first NUL, or all of them.
std::string attrString(const nlattr* attr);
// Absent (nullptr) or shorter than 4 bytes: nullopt.
std::optional<uint32_t> attrU32(const nlattr* attr);
// Copies an attribute of exactly `size` bytes; false for any other length.
bool attrCopyExact(const nlattr* attr, void* out, size_t size);
template <typename T>
std::optional<T> attrExact(const nlattr* attr) {
  T value;
  if (!attrCopyExact(attr, &value, sizeof(T))) {
    return std::nullopt;
  }
  return value;
}
// An address of the family's exact length (AF_INET: 4 bytes, AF_INET6: 16).
std::optional<IpAddress> addressFromBytes(int family, const void* data, size_t len);
std::optional<IpAddress> attrAddress(int family, const nlattr* attr);
// AF_INET or AF_INET6.
int addressFamily(IpAddress::Family family);

// The kernel's extended ACK in an NLMSG_ERROR message (NLM_F_ACK_TLVS): its text, and the
// offset within the request of the attribute it blames. Read within hdr->nlmsg_len only: a
// short or malformed attribute ends the reading; a message without TLVs gives neither.
struct Extack {
  std::string message;
  std::optional<uint32_t> offset;
};
Extack parseExtack(const nlmsghdr* hdr);

// Parses the attributes of `msg` after a fixed header of `headerLen` bytes into tb[0..maxType]
// (which the caller sized maxType + 1). Errors start with `what`: "route message too short".
Result<void> parseAttrs(nl_msg* msg, size_t headerLen, nlattr** tb, int maxType,
                        std::string_view what);

}  // namespace edgeplane::sys
