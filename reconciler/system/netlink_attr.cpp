// Netlink attribute codec: bounds-checked readers over libnl's attribute parser.
#include "reconciler/system/netlink_attr.h"

#include <linux/netlink.h>
#include <netinet/in.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <sys/socket.h>

#include <cstring>

namespace edgeplane::sys {

void NlMsgFree::operator()(nl_msg* msg) const {
  nlmsg_free(msg);
}

std::string attrString(const nlattr* attr) {
  const char* data = static_cast<const char*>(nla_data(attr));
  return std::string(data, strnlen(data, static_cast<size_t>(nla_len(attr))));
}

std::optional<uint32_t> attrU32(const nlattr* attr) {
  if (attr == nullptr || nla_len(attr) < 4) {
    return std::nullopt;
  }
  return nla_get_u32(const_cast<nlattr*>(attr));
}

Extack parseExtack(const nlmsghdr* hdr) {
  Extack out;
  const char* base = reinterpret_cast<const char*>(hdr);
  const size_t end = hdr->nlmsg_len;
  if ((hdr->nlmsg_flags & NLM_F_ACK_TLVS) == 0 || end < NLMSG_HDRLEN + sizeof(nlmsgerr)) {
    return out;
  }
  nlmsgerr err{};
  std::memcpy(&err, base + NLMSG_HDRLEN, sizeof(err));
  // The TLVs follow the error and, unless the kernel capped it, the request it echoes.
  size_t offset = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if ((hdr->nlmsg_flags & NLM_F_CAPPED) == 0) {
    if (err.msg.nlmsg_len < NLMSG_HDRLEN) {
      return out;
    }
    offset += err.msg.nlmsg_len - NLMSG_HDRLEN;
  }
  offset = NLMSG_ALIGN(offset);
  while (offset + NLA_HDRLEN <= end) {
    nlattr attr{};
    std::memcpy(&attr, base + offset, sizeof(attr));
    if (attr.nla_len < NLA_HDRLEN || attr.nla_len > end - offset) {
      break;
    }
    const char* data = base + offset + NLA_HDRLEN;
    const size_t len = attr.nla_len - NLA_HDRLEN;
    const int type = attr.nla_type & NLA_TYPE_MASK;
    if (type == NLMSGERR_ATTR_MSG) {
      out.message.assign(data, strnlen(data, len));
    } else if (type == NLMSGERR_ATTR_OFFS && len == sizeof(uint32_t)) {
      uint32_t value = 0;
      std::memcpy(&value, data, sizeof(value));
      out.offset = value;
    }
    offset += NLA_ALIGN(attr.nla_len);
  }
  return out;
}

bool attrCopyExact(const nlattr* attr, void* out, size_t size) {
  if (attr == nullptr || nla_len(attr) != static_cast<int>(size)) {
    return false;
  }
  std::memcpy(out, nla_data(attr), size);
  return true;
}

std::optional<IpAddress> addressFromBytes(int family, const void* data, size_t len) {
  IpAddress a;
  if (family == AF_INET && len == 4) {
    a.family = IpAddress::Family::V4;
  } else if (family == AF_INET6 && len == 16) {
    a.family = IpAddress::Family::V6;
  } else {
    return std::nullopt;
  }
  std::memcpy(a.bytes.data(), data, len);
  return a;
}

std::optional<IpAddress> attrAddress(int family, const nlattr* attr) {
  return addressFromBytes(family, nla_data(attr), static_cast<size_t>(nla_len(attr)));
}

int addressFamily(IpAddress::Family family) {
  return family == IpAddress::Family::V4 ? AF_INET : AF_INET6;
}

Result<void> parseAttrs(nl_msg* msg, size_t headerLen, nlattr** tb, int maxType,
                        std::string_view what) {
  nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_len < NLMSG_HDRLEN || !nlmsg_valid_hdr(hdr, static_cast<int>(headerLen))) {
    return terminal(std::string(what) + " message too short");
  }
  int rc = nlmsg_parse(hdr, static_cast<int>(headerLen), tb, maxType, nullptr);
  if (rc < 0) {
    return terminal(std::string(what) + " message: " + nl_geterror(rc));
  }
  return {};
}

}  // namespace edgeplane::sys
