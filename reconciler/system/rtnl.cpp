// rtnetlink driver: links, addresses and routes through one NlSocket; per-namespace sysctls.
#include "reconciler/system/rtnl.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "reconciler/system/netns.h"

namespace edgeplane::sys {
namespace {

constexpr int kDumpAttempts = 3;

template <typename Header>
Result<NlMsgPtr> buildDump(int type, int family) {
  NlMsgPtr msg(nlmsg_alloc_simple(type, NLM_F_DUMP));
  Header header{};
  if constexpr (std::is_same_v<Header, ifinfomsg>) {
    header.ifi_family = static_cast<unsigned char>(family);
  } else if constexpr (std::is_same_v<Header, ifaddrmsg>) {
    header.ifa_family = static_cast<uint8_t>(family);
  } else {
    header.rtm_family = static_cast<unsigned char>(family);
  }
  if (!msg || nlmsg_append(msg.get(), &header, sizeof(header), NLMSG_ALIGNTO) < 0) {
    return terminal("build dump request: out of memory");
  }
  return msg;
}

// Runs a dump, decoding each reply; retries when the kernel flags it as interrupted.
template <typename Header, typename Decoded>
Result<std::vector<Decoded>> runDump(NlSocket& sock, int type, int family,
                                     Result<Decoded> (*decode)(nl_msg*), const std::string& what) {
  for (int attempt = 1;; ++attempt) {
    auto msg = buildDump<Header>(type, family);
    if (!msg) {
      return msg.error();
    }
    std::vector<Decoded> out;
    const NlReplyHandler onReply = [&](nl_msg* reply) -> Result<void> {
      if (nlmsg_hdr(reply)->nlmsg_type != type - 2) {  // RTM_GETx - 2 == RTM_NEWx
        return {};
      }
      auto decoded = decode(reply);
      if (!decoded) {
        return decoded.error();
      }
      out.push_back(std::move(decoded).value());
      return {};
    };
    NlOutcome x = sock.exchange(msg->get(), onReply);
    if (x.failed()) {
      return nlFailure(x, what);
    }
    if (x.replyError) {
      return terminal(what + ": " + x.replyError->message);
    }
    if (!x.interrupted) {
      return out;
    }
    if (attempt == kDumpAttempts) {
      return retryable(what + ": dump interrupted by concurrent changes " +
                       std::to_string(kDumpAttempts) + " times");
    }
  }
}

}  // namespace

Rtnl::Rtnl(NlSocket sock, std::string netns) : sock_(std::move(sock)), netns_(std::move(netns)) {}
Rtnl::Rtnl(Rtnl&&) noexcept = default;
Rtnl& Rtnl::operator=(Rtnl&&) noexcept = default;
Rtnl::~Rtnl() = default;

Result<Rtnl> Rtnl::open(std::string_view netns) {
  auto sock = NlSocket::open(NETLINK_ROUTE, netns);
  if (!sock) {
    return sock.error();
  }
  return Rtnl(std::move(sock).value(), std::string(netns));
}

std::string Rtnl::where() const {
  return inNamespace(netns_);
}

Result<void> Rtnl::execute(NlMsgPtr msg, const std::string& what) {
  NlOutcome x = sock_.exchange(msg.get());
  if (x.failed()) {
    return nlFailure(x, what);
  }
  return {};
}

Result<Removal> Rtnl::executeRemoval(NlMsgPtr msg, const std::string& what, int absentErrno) {
  NlOutcome x = sock_.exchange(msg.get());
  if (x.kernelErrno == absentErrno) {
    return Removal::AlreadyAbsent;
  }
  if (x.failed()) {
    return nlFailure(x, what);
  }
  return Removal::Removed;
}

Result<std::vector<LinkMessage>> Rtnl::dumpLinks(const std::string& what) {
  return runDump<ifinfomsg, LinkMessage>(sock_, RTM_GETLINK, AF_UNSPEC, decodeLinkMessage, what);
}

Result<std::vector<AddressMessage>> Rtnl::dumpAddresses(const std::string& what) {
  return runDump<ifaddrmsg, AddressMessage>(sock_, RTM_GETADDR, AF_UNSPEC, decodeAddressMessage,
                                            what);
}

Result<std::optional<LinkMessage>> Rtnl::getLink(std::string_view name, const std::string& what) {
  auto msg = buildLinkGet(name);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  std::optional<LinkMessage> found;
  const NlReplyHandler onReply = [&](nl_msg* reply) -> Result<void> {
    auto decoded = decodeLinkMessage(reply);
    if (!decoded) {
      return decoded.error();
    }
    found = std::move(decoded).value();
    return {};
  };
  NlOutcome x = sock_.exchange(msg->get(), onReply);
  if (x.kernelErrno == ENODEV) {
    return std::optional<LinkMessage>();
  }
  if (x.failed()) {
    return nlFailure(x, what);
  }
  if (x.replyError) {
    return terminal(what + ": " + x.replyError->message);
  }
  if (!found) {
    return terminal(what + ": the kernel sent no link");
  }
  return found;
}

Result<std::vector<LinkInfo>> Rtnl::links() {
  const std::string what = "list links" + where();
  auto links = dumpLinks(what);
  if (!links) {
    return links.error();
  }
  auto addresses = dumpAddresses("list addresses" + where());
  if (!addresses) {
    return addresses.error();
  }
  std::vector<LinkInfo> out;
  std::unordered_map<int, size_t> byIndex;
  for (auto& m : *links) {
    byIndex[m.link.ifindex] = out.size();
    out.push_back(std::move(m.link));
  }
  for (auto& a : *addresses) {
    if (auto it = byIndex.find(a.ifindex); it != byIndex.end()) {
      out[it->second].addresses.push_back(a.address);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const LinkInfo& a, const LinkInfo& b) { return a.ifindex < b.ifindex; });
  return out;
}

Result<std::optional<LinkInfo>> Rtnl::link(std::string_view name) {
  const std::string what = "get link " + std::string(name) + where();
  auto m = getLink(name, what);
  if (!m) {
    return m.error();
  }
  if (!m.value()) {
    return std::optional<LinkInfo>();
  }
  LinkInfo link = std::move(m.value()->link);
  auto addresses = dumpAddresses(what);
  if (!addresses) {
    return addresses.error();
  }
  for (const auto& a : *addresses) {
    if (a.ifindex == link.ifindex) {
      link.addresses.push_back(a.address);
    }
  }
  return std::optional<LinkInfo>(std::move(link));
}

Result<std::optional<LinkInfo>> Rtnl::findLink(std::string_view name) {
  auto m = getLink(name, "look up link " + std::string(name) + where());
  if (!m) {
    return m.error();
  }
  if (!m.value()) {
    return std::optional<LinkInfo>();
  }
  return std::optional<LinkInfo>(std::move(m.value()->link));
}

Result<Rtnl::Creation> Rtnl::createLink(std::string_view name, std::string_view kind,
                                        std::optional<uint32_t> mtu) {
  const std::string what = "create '" + std::string(kind) + "' link " + std::string(name) + where();
  auto msg = buildLinkCreate(name, kind, mtu);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  NlOutcome x = sock_.exchange(msg->get());
  if (x.kernelErrno == EOPNOTSUPP) {
    return Creation::Unsupported;
  }
  if (x.failed()) {
    return nlFailure(x, what);
  }
  return Creation::Created;
}

Result<void> Rtnl::moveLink(std::string_view name, std::string_view targetNetns) {
  const std::string what =
      "move " + std::string(name) + " into namespace " + std::string(targetNetns) + where();
  const int fd = openNetnsFd(targetNetns);
  if (fd < 0) {
    const int err = errno;
    return terminal(what + ": " + errnoText(err));
  }
  auto msg = buildLinkMove(name, fd);
  if (!msg) {
    ::close(fd);
    return Error{what + ": " + msg.error().message, false};
  }
  NlOutcome x = sock_.exchange(msg->get());
  ::close(fd);  // the kernel resolved it while handling the request
  if (x.kernelErrno == EEXIST) {
    return retryable(what + ": a link of that name is still there");
  }
  if (x.failed()) {
    return nlFailure(x, what);
  }
  return {};
}

Result<void> Rtnl::createVethPair(std::string_view name, std::string_view peerName,
                                  std::string_view peerNetns) {
  std::string what = "create veth " + std::string(name) + " (peer " + std::string(peerName);
  if (!peerNetns.empty()) {
    what += " in namespace " + std::string(peerNetns);
  }
  what += ")" + where();
  int fd = -1;
  if (!peerNetns.empty()) {
    fd = openNetnsFd(peerNetns);
    if (fd < 0) {
      const int err = errno;
      return terminal(what + ": open namespace " + std::string(peerNetns) + ": " + errnoText(err));
    }
  }
  auto msg = buildVethCreate(name, peerName, fd);
  Result<void> result = msg ? execute(std::move(msg).value(), what)
                            : Result<void>(Error{what + ": " + msg.error().message, false});
  if (fd >= 0) {
    ::close(fd);  // the kernel resolved it while handling the request
  }
  return result;
}

Result<Removal> Rtnl::deleteLink(std::string_view name) {
  const std::string what = "delete link " + std::string(name) + where();
  auto msg = buildLinkDelete(name);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return executeRemoval(std::move(msg).value(), what, ENODEV);
}

Result<void> Rtnl::setUp(std::string_view name, bool up) {
  const std::string what = "set link " + std::string(name) + (up ? " up" : " down") + where();
  auto msg = buildLinkSetUp(name, up);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return execute(std::move(msg).value(), what);
}

Result<void> Rtnl::setMtu(std::string_view name, uint32_t mtu) {
  const std::string what =
      "set link " + std::string(name) + " mtu " + std::to_string(mtu) + where();
  auto msg = buildLinkSetMtu(name, mtu);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return execute(std::move(msg).value(), what);
}

Result<void> Rtnl::addAddress(std::string_view link, const IpPrefix& prefix) {
  const std::string what = "add address " + prefix.str() + " to " + std::string(link) + where();
  auto found = getLink(link, what);
  if (!found) {
    return found.error();
  }
  if (!found.value()) {
    return terminal(what + ": " + errnoText(ENODEV));
  }
  auto msg = buildAddressAdd(found.value()->link.ifindex, prefix);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return execute(std::move(msg).value(), what);
}

Result<Removal> Rtnl::removeAddress(std::string_view link, const IpPrefix& prefix) {
  const std::string what =
      "remove address " + prefix.str() + " from " + std::string(link) + where();
  auto found = getLink(link, what);
  if (!found) {
    return found.error();
  }
  if (!found.value()) {
    return Removal::AlreadyAbsent;  // its addresses went with it
  }
  auto msg = buildAddressDelete(found.value()->link.ifindex, prefix);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return executeRemoval(std::move(msg).value(), what, EADDRNOTAVAIL);
}

Result<std::vector<RouteInfo>> Rtnl::routes(IpAddress::Family family, uint32_t table) {
  const std::string what = std::string("list ") +
                           (family == IpAddress::Family::V4 ? "IPv4" : "IPv6") +
                           " routes of table " + std::to_string(table) + where();
  auto links = dumpLinks(what);
  if (!links) {
    return links.error();
  }
  std::unordered_map<int, std::string> names;
  for (const auto& m : *links) {
    names[m.link.ifindex] = m.link.name;
  }
  auto messages = runDump<rtmsg, RouteMessage>(sock_, RTM_GETROUTE, addressFamily(family),
                                               decodeRouteMessage, what);
  if (!messages) {
    return messages.error();
  }
  std::vector<RouteInfo> out;
  for (auto& m : *messages) {
    // Without strict checking the kernel dumps every table; keep the one asked for.
    if (m.route.table != table) {
      continue;
    }
    if (m.oifIndex > 0) {
      auto it = names.find(m.oifIndex);
      m.route.device = it != names.end() ? it->second : "if" + std::to_string(m.oifIndex);
    }
    out.push_back(std::move(m.route));
  }
  return out;
}

Result<void> Rtnl::replaceRoute(const RouteInfo& route) {
  const std::string what = "add route " + route.str() + where();
  int oif = 0;
  if (!route.device.empty()) {
    auto found = getLink(route.device, what);
    if (!found) {
      return found.error();
    }
    if (!found.value()) {
      return terminal(what + ": " + errnoText(ENODEV));
    }
    oif = found.value()->link.ifindex;
  }
  auto msg = buildRouteReplace(route, oif);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return execute(std::move(msg).value(), what);
}

Result<Removal> Rtnl::deleteRoute(const RouteInfo& route) {
  const std::string what = "delete route " + route.str() + where();
  int oif = 0;
  if (!route.device.empty()) {
    auto found = getLink(route.device, what);
    if (!found) {
      return found.error();
    }
    if (!found.value()) {
      return Removal::AlreadyAbsent;  // routes through a device go with it
    }
    oif = found.value()->link.ifindex;
  }
  auto msg = buildRouteDelete(route, oif);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return executeRemoval(std::move(msg).value(), what, ESRCH);
}

// --- sysctl ---

namespace {

bool validSysctlKey(std::string_view key) {
  if (key.empty() || key.front() == '/' || key.back() == '/') {
    return false;
  }
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/';
    if (!ok) {
      return false;
    }
  }
  // No "." or ".." path component.
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    std::string_view part =
        key.substr(start, end == std::string_view::npos ? key.npos : end - start);
    if (part.empty() || part == "." || part == "..") {
      return false;
    }
    if (end == std::string_view::npos) {
      break;
    }
    start = end + 1;
  }
  return true;
}

}  // namespace

// /proc/sys/net resolves against the opening thread's network namespace, so the file is opened
// inside the namespace; the open descriptor keeps pointing there afterwards.
Result<void> setSysctl(std::string_view netns, std::string_view key, std::string_view value) {
  const std::string what =
      "set sysctl " + std::string(key) + "=" + std::string(value) + inNamespace(netns);
  if (!validSysctlKey(key)) {
    return terminal(what + ": invalid key");
  }
  int fd = -1;
  int openErr = 0;
  {
    auto scope = NetnsScope::enter(netns);
    if (!scope) {
      return Error{what + ": " + scope.error().message, false};
    }
    const std::string path = "/proc/sys/" + std::string(key);
    fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    openErr = errno;  // before the scope's destructor returns to the original namespace
  }
  if (fd < 0) {
    return terminal(what + ": " + errnoText(openErr));
  }
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n < 0) {
    return terminal(what + ": " + errnoText(err));
  }
  if (static_cast<size_t>(n) != value.size()) {
    return terminal(what + ": short write");
  }
  return {};
}

Result<std::string> getSysctl(std::string_view netns, std::string_view key) {
  const std::string what = "read sysctl " + std::string(key) + inNamespace(netns);
  if (!validSysctlKey(key)) {
    return terminal(what + ": invalid key");
  }
  int fd = -1;
  int openErr = 0;
  {
    auto scope = NetnsScope::enter(netns);
    if (!scope) {
      return Error{what + ": " + scope.error().message, false};
    }
    const std::string path = "/proc/sys/" + std::string(key);
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    openErr = errno;  // before the scope's destructor returns to the original namespace
  }
  if (fd < 0) {
    return terminal(what + ": " + errnoText(openErr));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return terminal(what + ": " + errnoText(err));
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  while (!out.empty() && out.back() == '\n') {
    out.pop_back();
  }
  return out;
}

}  // namespace edgeplane::sys
