// WireGuard userspace backend: the UAPI socket client; wireguard-go started, checked, stopped.
#include "reconciler/system/wg_uapi.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "reconciler/system/netlink.h"
#include "reconciler/system/rtnl.h"
#include "reconciler/system/wg_keys.h"
#include "reconciler/system/wg_netlink.h"
#include "reconciler/system/wg_uapi_codec.h"
#include "schema/net.h"
#include "schema/unique_fd.h"

namespace edgeplane::sys {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Error inContext(const std::string& what, Error e) {
  e.message = what + ": " + e.message;
  return e;
}

// A get reply as the device of `ifname`, its public key derived from its private key.
Result<WgDevice> deviceOf(std::string_view ifname, const std::string& reply) {
  auto device = parseUapiGetReply(reply);
  if (!device) {
    return inContext(std::string(ifname), device.error());
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

}  // namespace

// --- client ---

Result<int> uapiConnect(const std::string& path, std::string_view ifname) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return terminal("UAPI socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    return terminal("socket: " + errnoText(err));
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return retryable("wireguard-go for " + std::string(ifname) + " is not answering on " + path +
                     ": " + errnoText(err));
  }
  return fd;
}

namespace {

// Waits for `events` on `fd` until `deadline`: poll's result; 0 once the deadline passed, even
// when `fd` is ready (a peer that keeps bytes queued does not stretch the exchange).
int pollUntil(int fd, short events, Clock::time_point deadline) {
  const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) {
    return 0;
  }
  pollfd pfd{fd, events, 0};
  return ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count(), INT32_MAX)));
}

}  // namespace

Result<std::string> uapiExchange(int fd, std::string_view request, size_t maxReplyBytes,
                                 milliseconds timeout) {
  // One deadline for the whole exchange: a peer that trickles bytes does not hold it longer.
  const auto deadline = Clock::now() + std::min(timeout, milliseconds(INT32_MAX));
  size_t sent = 0;
  while (sent < request.size()) {
    const int pr = pollUntil(fd, POLLOUT, deadline);
    if (pr < 0 && errno == EINTR) {
      continue;
    }
    if (pr == 0) {
      return retryable("UAPI request timed out after " + formatDuration(timeout) + " (writing)");
    }
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR || err == EAGAIN) {
        continue;
      }
      return retryable("UAPI write: " + errnoText(err));
    }
    sent += static_cast<size_t>(n);
  }
  std::string reply;
  char buf[65536];
  while (true) {
    const int pr = pollUntil(fd, POLLIN, deadline);
    if (pr < 0 && errno == EINTR) {
      continue;
    }
    if (pr == 0) {
      return retryable("UAPI reply timed out after " + formatDuration(timeout));
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR || err == EAGAIN) {
        continue;
      }
      return retryable("UAPI read: " + errnoText(err));
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

Result<std::string> UapiBackend::request(std::string_view ifname, std::string_view text) const {
  auto fd = uapiConnect(socketPath(ifname), ifname);
  if (!fd) {
    return fd.error();
  }
  const UniqueFd owned(*fd);
  return exchange(owned.get(), ifname, text);
}

Result<std::string> UapiBackend::exchange(int fd, std::string_view ifname,
                                          std::string_view text) const {
  auto reply = uapiExchange(fd, text, UapiLimits{}.maxReplyBytes, env_.ioTimeout);
  if (!reply) {
    return inContext(std::string(ifname), reply.error());
  }
  return reply;
}

// Stops an earlier wireguard-go for the name, then waits until nothing else holds the name: no
// other process on its socket, no TUN device of a dying instance, no host link of that name.
Result<void> UapiBackend::clearTheWay(std::string_view ifname, std::string_view netns) {
  const std::string name(ifname);
  if (auto r = go_.stop(ifname); !r) {
    return terminal(r.error().message);
  }
  if (go_.socketAnswers(ifname)) {
    return terminal("a process that is not wireguard-go for " + name + " serves " +
                    socketPath(ifname) + "; stop it first");
  }
  // The TUN device of an instance that just died goes away with its last file descriptor.
  for (const auto deadline = Clock::now() + milliseconds(3000);;) {
    auto link = wgLinkGet(netns, ifname);
    if (!link) {
      return terminal(link.error().message);
    }
    if (!*link) {
      break;
    }
    if ((*link)->kind != "tun" || Clock::now() >= deadline) {
      return retryable("a '" + (*link)->kind + "' link named " + name + " is in the way");
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  if (!netns.empty()) {
    auto hostLink = wgLinkGet("", ifname);
    if (!hostLink) {
      return terminal(hostLink.error().message);
    }
    if (*hostLink) {
      return terminal("a '" + (*hostLink)->kind + "' link named " + name +
                      " exists in the host namespace");
    }
  }
  return {};
}

// Gives the TUN device wireguard-go made in the host namespace its MTU, then moves it.
Result<void> UapiBackend::placeTun(std::string_view ifname, std::string_view netns,
                                   std::optional<uint32_t> mtu) {
  auto host = Rtnl::open("");
  if (!host) {
    return host.error();
  }
  auto link = host->findLink(ifname);
  if (!link) {
    return link.error();
  }
  if (!*link || (*link)->kind != "tun") {
    return terminal("its TUN device did not appear in the host namespace");
  }
  // Before the move, so that wireguard-go, whose netlink listener stays in the host namespace,
  // sees the new MTU.
  if (mtu) {
    if (auto r = host->setMtu(ifname, *mtu); !r) {
      return r;
    }
  }
  if (!netns.empty()) {
    return host->moveLink(ifname, netns);
  }
  return {};
}

Result<void> UapiBackend::createInterface(std::string_view ifname, std::string_view netns,
                                          std::optional<uint32_t> mtu) {
  const std::string what = "start wireguard-go for " + std::string(ifname) + inNamespace(netns);
  if (!isValidIfname(ifname)) {
    return terminal(what + ": invalid interface name");
  }
  auto exe = findExecutable(env_.wireguardGo);
  if (!exe) {
    return terminal(what + ": " + env_.wireguardGo + " is not an executable");
  }
  if (auto r = clearTheWay(ifname, netns); !r) {
    return inContext(what, r.error());
  }
  auto pid = go_.start(ifname, *exe);
  if (!pid) {
    return inContext(what, pid.error());
  }
  if (auto r = placeTun(ifname, netns, mtu); !r) {
    go_.abandon(ifname, *pid);
    return inContext(what, r.error());
  }
  return {};
}

Result<WgRemoval> UapiBackend::deleteInterface(std::string_view ifname, std::string_view netns) {
  auto stopped = go_.stop(ifname);
  if (!stopped) {
    return stopped.error();
  }
  // Without a recorded process, deleting its TUN device makes wireguard-go exit too.
  auto link = wgLinkGet(netns, ifname);
  if (!link) {
    return link.error();
  }
  bool removed = *stopped;
  if (*link && (*link)->kind == "tun") {
    auto del = wgLinkDelete(netns, ifname);
    if (!del) {
      return del.error();
    }
    removed = removed || *del == WgRemoval::Removed;
  } else if (*link) {
    return terminal("delete WireGuard interface " + std::string(ifname) + inNamespace(netns) +
                    ": it is a '" + (*link)->kind + "' link, not wireguard-go's TUN device");
  }
  return removed ? WgRemoval::Removed : WgRemoval::AlreadyAbsent;
}

Result<bool> UapiBackend::linkAlive(std::string_view ifname,
                                    const Result<std::optional<LinkInfo>>& link) {
  if (!runningPid(ifname) || !go_.socketAnswers(ifname)) {
    return false;
  }
  if (!link) {
    return link.error();
  }
  return link.value().has_value() && link.value()->kind == "tun";
}

Result<WgDevice> UapiBackend::getDevice(std::string_view ifname, std::string_view netns) {
  (void)netns;  // the UAPI socket lives in the host's socket directory
  auto reply = request(ifname, kUapiGet);
  if (!reply) {
    return reply.error();
  }
  return deviceOf(ifname, *reply);
}

// linkAlive and getDevice over one connection: a socket that refuses is not alive, as in
// linkAlive; once connected, a failed get is an error, as in getDevice.
Result<std::optional<WgDevice>> UapiBackend::liveDevice(
    std::string_view ifname, std::string_view netns, const Result<std::optional<LinkInfo>>& link) {
  (void)netns;
  if (!runningPid(ifname)) {
    return std::optional<WgDevice>();
  }
  auto fd = uapiConnect(socketPath(ifname), ifname);
  if (!fd) {
    return std::optional<WgDevice>();
  }
  const UniqueFd owned(*fd);
  if (!link) {
    return link.error();
  }
  if (!link.value() || link.value()->kind != "tun") {
    return std::optional<WgDevice>();
  }
  auto reply = exchange(owned.get(), ifname, kUapiGet);
  if (!reply) {
    return reply.error();
  }
  auto device = deviceOf(ifname, *reply);
  if (!device) {
    return device.error();
  }
  return std::optional<WgDevice>(std::move(*device));
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
    return inContext("configure WireGuard interface " + req.ifname + inNamespace(req.netns),
                     r.error());
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
