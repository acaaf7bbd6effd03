// Lab tests of the namespace and rtnetlink drivers on the real kernel, checked with `ip -j`.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "reconciler/system/netns.h"
#include "reconciler/system/rtnl.h"
#include "tests/support/command.h"
#include "tests/support/tool_json.h"

namespace edgeplane::sys {
namespace {

// `ip -j` output.
using Json = edgeplane::testing::ToolJson;

// Shell commands run outside any NetnsScope: the child inherits the calling thread's namespace.
using edgeplane::testing::runCommandStdout;

// `ip -j ...`, parsed. A failing command or unparsable output fails the test.
Json ipJson(const std::string& args) {
  const std::string command = "ip -j " + args;
  const auto [status, out] = runCommandStdout(command);
  Json j;
  EXPECT_EQ(status, 0) << command;
  EXPECT_TRUE(edgeplane::testing::parseToolJson(out, j)) << command << " printed: " << out;
  return j;
}

void runOk(const std::string& command) {
  ASSERT_EQ(runCommandStdout(command).status, 0) << command;
}

IpPrefix prefix(std::string_view text) {
  return IpPrefix::parse(text).value();
}

IpAddress address(std::string_view text) {
  return IpAddress::parse(text).value();
}

ino_t inodeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st.st_ino;
}

ino_t threadNetns() {
  return inodeOf("/proc/thread-self/ns/net");
}

// The lab must have moved this process into namespaces of its own (lab_main does, before any
// test runs). Anything else would put these tests' links and routes on the real host.
::testing::AssertionResult isolated() {
  const std::string parent = "/proc/" + std::to_string(::getppid()) + "/ns/";
  for (const char* kind : {"net", "mnt"}) {
    struct stat mine {};
    struct stat theirs {};
    if (::stat((std::string("/proc/self/ns/") + kind).c_str(), &mine) != 0 ||
        ::stat((parent + kind).c_str(), &theirs) != 0) {
      return ::testing::AssertionFailure() << "cannot compare " << kind << " namespaces";
    }
    if (mine.st_ino == theirs.st_ino) {
      return ::testing::AssertionFailure()
             << "refusing to run: this process shares its parent's " << kind
             << " namespace (run lab_tests through its own main, which isolates it)";
    }
  }
  return ::testing::AssertionSuccess();
}

// The value, or the test stops here (gtest reports the exception and runs TearDown).
template <typename T>
T take(Result<T> r) {
  if (!r.ok()) {
    throw std::runtime_error(r.error().message);
  }
  return std::move(r).value();
}

#define ASSERT_OK(expr)                                                           \
  do {                                                                            \
    auto&& r_ = (expr);                                                           \
    ASSERT_TRUE(r_.ok()) << #expr << ": " << (r_.ok() ? "" : r_.error().message); \
  } while (0)

// A TCP listener on ip:0 in the calling thread's namespace.
int listenOn(const char* ip, uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  ::inet_pton(AF_INET, ip, &sa.sin_addr);
  socklen_t len = sizeof(sa);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
      ::listen(fd, 4) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    ADD_FAILURE() << "listen on " << ip << ": " << std::strerror(errno);
    if (fd >= 0) {
      ::close(fd);
    }
    return -1;
  }
  port = ntohs(sa.sin_port);
  return fd;
}

// Connects `fd` (wherever it was made) to ip:port within a bounded time; 0 or an errno.
int connectWithin(int fd, const char* ip, uint16_t port, int timeoutMs) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) {
    return 0;
  }
  if (errno != EINPROGRESS) {
    return errno;
  }
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, timeoutMs) != 1) {
    return ETIMEDOUT;
  }
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

// A socket created while inside `netns`; it stays there after the scope ends.
int socketIn(const std::string& netns, int type) {
  auto scope = NetnsScope::enter(netns);
  EXPECT_TRUE(scope.ok()) << (scope.ok() ? "" : scope.error().message);
  return ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
}

std::set<std::string> ifnames(const Json& links) {
  std::set<std::string> out;
  for (const Json& l : links.items) {
    out.insert(l["ifname"].text);
  }
  return out;
}

// --- fixture ---

class NetnsLab : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(isolated()); }

  void TearDown() override {
    if (!hostLinks_.empty()) {
      if (auto host = Rtnl::open(""); host.ok()) {
        for (const auto& link : hostLinks_) {
          (void)host->deleteLink(link);
        }
      }
    }
    for (const auto& ns : namespaces_) {
      (void)deleteNamedNetns(ns);
    }
  }

  void makeNetns(const std::string& name) {
    ASSERT_OK(createNamedNetns(name));
    namespaces_.push_back(name);
  }

  // The uplink the reconciler builds for tenant `tag`: namespace ep-TAG, veth eph-TAG (host)
  // <-> epn-TAG (namespace), 100.64.N.0/31 on the host end, .1 inside, both up, and a default
  // route inside via the host end, owned by edgeplane.
  void makeUplink(const std::string& tag, int n) {
    const std::string ns = "ep-" + tag;
    ASSERT_NO_FATAL_FAILURE(makeNetns(ns));
    Rtnl host = take(Rtnl::open(""));
    Rtnl inside = take(Rtnl::open(ns));
    ASSERT_OK(host.createVethPair("eph-" + tag, "epn-" + tag, ns));
    hostLinks_.push_back("eph-" + tag);
    const std::string net = "100.64." + std::to_string(n) + ".";
    ASSERT_OK(host.addAddress("eph-" + tag, prefix(net + "0/31")));
    ASSERT_OK(inside.addAddress("epn-" + tag, prefix(net + "1/31")));
    ASSERT_OK(host.setUp("eph-" + tag, true));
    ASSERT_OK(inside.setUp("epn-" + tag, true));
    RouteInfo def;
    def.destination = prefix("0.0.0.0/0");
    def.gateway = address(net + "0");
    def.device = "epn-" + tag;
    ASSERT_OK(inside.replaceRoute(def));
  }

  std::vector<std::string> namespaces_;
  std::vector<std::string> hostLinks_;
};

// The same fixture under the names of what each group of tests exercises.
using RtnlLab = NetnsLab;
using SysctlLab = NetnsLab;

// --- namespaces ---

TEST_F(NetnsLab, CreateListDelete) {
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-b"));
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-a"));
  EXPECT_EQ(listNamedNetns(), (std::vector<std::string>{"ep-a", "ep-b"}));
  EXPECT_TRUE(namedNetnsExists("ep-a"));
  EXPECT_FALSE(namedNetnsExists("ep-zz"));

  // iproute2 sees the same namespaces.
  std::set<std::string> seen;
  for (const Json& ns : ipJson("netns list").items) {
    seen.insert(ns["name"].text);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"ep-a", "ep-b"}));

  auto again = createNamedNetns("ep-a");
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("ep-a"), std::string::npos) << again.error().message;
  EXPECT_NE(again.error().message.find("File exists"), std::string::npos) << again.error().message;
  EXPECT_TRUE(namedNetnsExists("ep-a"));  // the failed create left the original alone

  ASSERT_OK(deleteNamedNetns("ep-a"));
  EXPECT_FALSE(namedNetnsExists("ep-a"));
  EXPECT_EQ(listNamedNetns(), (std::vector<std::string>{"ep-b"}));
  auto missing = deleteNamedNetns("ep-a");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("ep-a"), std::string::npos) << missing.error().message;

  for (const char* bad : {"", "a/b", "..", "."}) {
    EXPECT_FALSE(createNamedNetns(bad).ok()) << bad;
  }
}

// A namespace is made under a temporary name and bound under its own only once it works: the
// directory never holds a half-made entry, and a temporary one a crashed run left behind is
// neither listed nor in the way.
TEST_F(NetnsLab, CreateGoesThroughATemporaryNameAndCleansUpALeftover) {
  const std::string leftover = netnsDir() + "/.edgeplane-new-ep-c";
  const int fd = ::open(leftover.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ::close(fd);
  EXPECT_EQ(listNamedNetns(), std::vector<std::string>{});
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-c"));
  EXPECT_EQ(listNamedNetns(), (std::vector<std::string>{"ep-c"}));
  struct stat st {};
  EXPECT_NE(::lstat(leftover.c_str(), &st), 0) << "the leftover is still there";
  Rtnl inside = take(Rtnl::open("ep-c"));  // and the entry is a namespace one can enter
  auto lo = take(inside.link("lo"));
  ASSERT_TRUE(lo.has_value());
  EXPECT_TRUE(lo->up);
}

// A create killed after making the entry's file and before binding the namespace on it leaves
// an empty file beside its bound temporary entry (lab.crash_e2e hit it with timed kills): it
// is listed as no namespace, and the next create takes it over; delete drops a temporary too.
TEST_F(NetnsLab, AnInterruptedCreateIsNoNamespaceAndTheNextCreateTakesItOver) {
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-src"));
  const std::string tmp = netnsDir() + "/.edgeplane-new-ep-i";
  const std::string path = netnsDir() + "/ep-i";
  for (const std::string& f : {tmp, path}) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    ASSERT_GE(fd, 0) << f << ": " << std::strerror(errno);
    ::close(fd);
  }
  ASSERT_EQ(::mount(netnsPath("ep-src").c_str(), tmp.c_str(), "none", MS_BIND, nullptr), 0)
      << std::strerror(errno);
  EXPECT_EQ(listNamedNetns(), std::vector<std::string>{"ep-src"});
  EXPECT_FALSE(namedNetnsExists("ep-i"));
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-i"));
  EXPECT_EQ(listNamedNetns(), (std::vector<std::string>{"ep-i", "ep-src"}));
  struct stat st {};
  EXPECT_NE(::lstat(tmp.c_str(), &st), 0) << "the temporary entry is still there";
  EXPECT_NE(inodeOf(path), inodeOf(netnsPath("ep-src")));  // a namespace of its own
  Rtnl inside = take(Rtnl::open("ep-i"));
  ASSERT_TRUE(take(inside.link("lo")).has_value());

  // A create killed after binding NAME but before dropping its temporary: delete drops both.
  const int fd = ::open(tmp.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ::close(fd);
  ASSERT_EQ(::mount(path.c_str(), tmp.c_str(), "none", MS_BIND, nullptr), 0);
  EXPECT_EQ(listNamedNetns(), (std::vector<std::string>{"ep-i", "ep-src"}));
  ASSERT_TRUE(deleteNamedNetns("ep-i").ok());
  EXPECT_NE(::lstat(tmp.c_str(), &st), 0) << "delete left the temporary entry";
  EXPECT_EQ(listNamedNetns(), std::vector<std::string>{"ep-src"});
}

// The same leftover beside a namespace that stays (lab.crash_e2e: the converging apply left
// .edgeplane-new-ep-beta for ever): the next apply's sweep drops it and keeps the namespace.
TEST_F(NetnsLab, ALeftoverTemporaryOfACompleteNamespaceIsSwept) {
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-k"));
  const std::string tmp = netnsDir() + "/.edgeplane-new-ep-k";
  const std::string stray = netnsDir() + "/.edgeplane-new-ep-gone";  // its NAME is no namespace
  for (const std::string& f : {tmp, stray}) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    ASSERT_GE(fd, 0) << f << ": " << std::strerror(errno);
    ::close(fd);
  }
  ASSERT_EQ(::mount(netnsPath("ep-k").c_str(), tmp.c_str(), "none", MS_BIND, nullptr), 0)
      << std::strerror(errno);
  sweepInterruptedCreates();
  struct stat st {};
  EXPECT_NE(::lstat(tmp.c_str(), &st), 0) << "the temporary entry is still there";
  EXPECT_EQ(::lstat(stray.c_str(), &st), 0)
      << "an entry without its namespace is the next create's";
  EXPECT_EQ(listNamedNetns(), std::vector<std::string>{"ep-k"});
  Rtnl inside = take(Rtnl::open("ep-k"));
  ASSERT_TRUE(take(inside.link("lo")).has_value());
  ::unlink(stray.c_str());
}

TEST_F(NetnsLab, LoopbackIsUpInside) {
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-lo"));
  Json links = ipJson("-n ep-lo link show");
  ASSERT_EQ(links.size(), 1u);  // a fresh namespace: nothing but lo
  EXPECT_EQ(links.items[0]["ifname"].text, "lo");
  EXPECT_TRUE(links.items[0]["flags"].contains("UP"));

  Rtnl rtnl = take(Rtnl::open("ep-lo"));
  auto lo = take(rtnl.link("lo"));
  ASSERT_TRUE(lo.has_value());
  EXPECT_TRUE(lo->up);
  EXPECT_EQ(lo->kind, "");
  std::set<std::string> addrs;
  for (const auto& a : lo->addresses) {
    addrs.insert(a.prefix.str());
  }
  EXPECT_TRUE(addrs.count("127.0.0.1/8")) << ::testing::PrintToString(addrs);
}

TEST_F(NetnsLab, ScopeEntersAndRestores) {
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-s1"));
  const ino_t home = threadNetns();
  const ino_t target = inodeOf(netnsPath("ep-s1"));
  ASSERT_NE(home, target);
  {
    auto scope = NetnsScope::enter("ep-s1");
    ASSERT_OK(scope);
    EXPECT_EQ(threadNetns(), target);
    {
      NetnsScope moved(std::move(scope.value()));  // the moved-from scope must not restore
      EXPECT_EQ(threadNetns(), target);
    }
    EXPECT_EQ(threadNetns(), home);
  }
  EXPECT_EQ(threadNetns(), home);
  {
    auto none = NetnsScope::enter("");  // "" = stay
    ASSERT_OK(none);
    EXPECT_EQ(threadNetns(), home);
  }
  auto missing = NetnsScope::enter("ep-missing");
  EXPECT_FALSE(missing.ok());
  EXPECT_EQ(threadNetns(), home);
}

TEST_F(NetnsLab, SocketsMadeInsideStayInside) {
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-s2"));
  const int fd = socketIn("ep-s2", SOCK_STREAM);
  ASSERT_GE(fd, 0);
  EXPECT_NE(threadNetns(), inodeOf(netnsPath("ep-s2")));  // we are back home...
  const int nsfd = ::ioctl(fd, SIOCGSKNS);                // ...the socket is not
  ASSERT_GE(nsfd, 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(::fstat(nsfd, &st), 0);
  EXPECT_EQ(st.st_ino, inodeOf(netnsPath("ep-s2")));
  ::close(nsfd);

  // It listens on the namespace's loopback: reachable from inside, not from here.
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  const uint16_t port = ntohs(sa.sin_port);

  const int outside = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(connectWithin(outside, "127.0.0.1", port, 2000), ECONNREFUSED);
  ::close(outside);
  const int inside = socketIn("ep-s2", SOCK_STREAM);
  EXPECT_EQ(connectWithin(inside, "127.0.0.1", port, 2000), 0);
  ::close(inside);
  ::close(fd);
}

// --- rtnetlink ---

TEST_F(RtnlLab, UplinkIsBuiltExactly) {
  ASSERT_NO_FATAL_FAILURE(makeUplink("t1", 0));
  Rtnl host = take(Rtnl::open(""));
  Rtnl inside = take(Rtnl::open("ep-t1"));

  // The host end, as iproute2 sees it.
  Json h = ipJson("-d link show dev eph-t1");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h.items[0]["linkinfo"]["info_kind"].text, "veth");
  EXPECT_TRUE(h.items[0]["flags"].contains("UP"));
  Json ha = ipJson("-4 addr show dev eph-t1");
  ASSERT_EQ(ha.size(), 1u);
  ASSERT_EQ(ha.items[0]["addr_info"].size(), 1u);
  EXPECT_EQ(ha.items[0]["addr_info"].items[0]["local"].text, "100.64.0.0");
  EXPECT_EQ(ha.items[0]["addr_info"].items[0]["prefixlen"].text, "31");

  // The peer was created inside the namespace: it never shows up on the host...
  EXPECT_FALSE(take(host.link("epn-t1")).has_value());
  EXPECT_EQ(ifnames(ipJson("link show")).count("epn-t1"), 0u);
  // ...and inside there is exactly lo and the peer.
  Json n = ipJson("-n ep-t1 -d link show");
  EXPECT_EQ(ifnames(n), (std::set<std::string>{"lo", "epn-t1"}));
  Json peer = ipJson("-n ep-t1 -d link show dev epn-t1");
  ASSERT_EQ(peer.size(), 1u);
  EXPECT_EQ(peer.items[0]["linkinfo"]["info_kind"].text, "veth");
  EXPECT_TRUE(peer.items[0]["flags"].contains("UP"));
  EXPECT_TRUE(peer.items[0]["flags"].contains("LOWER_UP"));  // both ends up: carrier
  Json na = ipJson("-n ep-t1 -4 addr show dev epn-t1");
  ASSERT_EQ(na.size(), 1u);
  ASSERT_EQ(na.items[0]["addr_info"].size(), 1u);
  EXPECT_EQ(na.items[0]["addr_info"].items[0]["local"].text, "100.64.0.1");
  EXPECT_EQ(na.items[0]["addr_info"].items[0]["prefixlen"].text, "31");

  // Routes inside: our default (protocol 237) and the kernel's connected /31, nothing else.
  Json routes = ipJson("-n ep-t1 -4 route show table main");
  ASSERT_EQ(routes.size(), 2u) << ::testing::PrintToString(routes.size());
  const Json& def = routes.items[0]["dst"].text == "default" ? routes.items[0] : routes.items[1];
  const Json& connected = &def == &routes.items[0] ? routes.items[1] : routes.items[0];
  EXPECT_EQ(def["dst"].text, "default");
  EXPECT_EQ(def["gateway"].text, "100.64.0.0");
  EXPECT_EQ(def["dev"].text, "epn-t1");
  EXPECT_EQ(def["protocol"].text, "237");
  EXPECT_EQ(connected["dst"].text, "100.64.0.0/31");
  EXPECT_EQ(connected["protocol"].text, "kernel");

  // The driver observes the same.
  auto observed = take(inside.routes(IpAddress::Family::V4));
  RouteInfo expectedDefault;
  expectedDefault.destination = prefix("0.0.0.0/0");
  expectedDefault.gateway = address("100.64.0.0");
  expectedDefault.device = "epn-t1";
  RouteInfo expectedConnected;
  expectedConnected.destination = prefix("100.64.0.0/31");
  expectedConnected.device = "epn-t1";
  expectedConnected.protocol = RTPROT_KERNEL;
  std::sort(observed.begin(), observed.end());
  std::vector<RouteInfo> expected{expectedDefault, expectedConnected};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(observed, expected);

  auto links = take(inside.links());
  ASSERT_EQ(links.size(), 2u);
  EXPECT_EQ(links[0].name, "lo");
  const LinkInfo& l = links[1];
  EXPECT_EQ(l.name, "epn-t1");
  EXPECT_EQ(l.kind, "veth");
  EXPECT_TRUE(l.up);
  EXPECT_TRUE(l.lowerUp);
  EXPECT_EQ(l.mtu, 1500u);
  EXPECT_EQ(std::to_string(l.ifindex), peer.items[0]["ifindex"].text);
  std::vector<IpPrefix> v4;
  for (const auto& a : l.addresses) {
    if (a.prefix.address.family == IpAddress::Family::V4) {
      v4.push_back(a.prefix);
      EXPECT_EQ(a.scope, RT_SCOPE_UNIVERSE);
    } else {
      EXPECT_EQ(a.scope, RT_SCOPE_LINK);  // only the kernel's fe80:: address
    }
  }
  EXPECT_EQ(v4, std::vector<IpPrefix>{prefix("100.64.0.1/31")});

  // Applying the same again changes nothing and fails nothing.
  ASSERT_OK(host.addAddress("eph-t1", prefix("100.64.0.0/31")));
  ASSERT_OK(host.setUp("eph-t1", true));
  ASSERT_OK(inside.replaceRoute(expectedDefault));
  EXPECT_EQ(ipJson("-4 addr show dev eph-t1").items[0]["addr_info"].size(), 1u);
  EXPECT_EQ(ipJson("-n ep-t1 -4 route show table main").size(), 2u);
}

TEST_F(RtnlLab, TcpFromInsideReachesTheHostEnd) {
  ASSERT_NO_FATAL_FAILURE(makeUplink("t2", 2));
  // The kernel activates a link's qdisc asynchronously (linkwatch) after it comes up; until
  // then packets are dropped, and a lost SYN costs a 1 s retransmit. Wait for operstate UP.
  auto operUp = [](const std::string& args) {
    Json l = ipJson(args);
    return l.size() == 1 && l.items[0]["operstate"].text == "UP";
  };
  for (int i = 0;
       i < 100 && !(operUp("link show dev eph-t2") && operUp("-n ep-t2 link show dev epn-t2"));
       ++i) {
    ::usleep(20 * 1000);
  }
  uint16_t port = 0;
  const int listener = listenOn("100.64.2.0", port);
  ASSERT_GE(listener, 0);
  const int client = socketIn("ep-t2", SOCK_STREAM);
  ASSERT_GE(client, 0);
  EXPECT_EQ(connectWithin(client, "100.64.2.0", port, 5000), 0);

  pollfd p{listener, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  const int conn = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof(text));
  EXPECT_STREQ(text, "100.64.2.1");  // it came from inside, over the uplink
  ::close(conn);
  ::close(client);
  ::close(listener);
}

TEST_F(RtnlLab, ForeignRoutesAreSeenAndLeftAlone) {
  ASSERT_NO_FATAL_FAILURE(makeUplink("t3", 3));
  runOk("ip -n ep-t3 route add 10.99.0.0/24 via 100.64.3.0 proto static");
  runOk("ip -n ep-t3 route add 10.98.0.0/24 dev epn-t3 table 100");
  Rtnl inside = take(Rtnl::open("ep-t3"));

  auto routes = take(inside.routes(IpAddress::Family::V4));
  auto it = std::find_if(routes.begin(), routes.end(), [](const RouteInfo& r) {
    return r.destination == prefix("10.99.0.0/24");
  });
  ASSERT_NE(it, routes.end());
  EXPECT_EQ(it->protocol, RTPROT_STATIC);
  EXPECT_FALSE(it->owned());
  EXPECT_EQ(it->gateway, address("100.64.3.0"));
  EXPECT_EQ(it->device, "epn-t3");
  EXPECT_EQ(
      std::count_if(routes.begin(), routes.end(), [](const RouteInfo& r) { return r.owned(); }),
      1);  // only our default
  // Other tables are listed only when asked for.
  EXPECT_EQ(
      std::count_if(routes.begin(), routes.end(),
                    [](const RouteInfo& r) { return r.destination == prefix("10.98.0.0/24"); }),
      0);
  auto table100 = take(inside.routes(IpAddress::Family::V4, 100));
  ASSERT_EQ(table100.size(), 1u);
  EXPECT_EQ(table100[0].destination, prefix("10.98.0.0/24"));
  EXPECT_EQ(table100[0].table, 100u);
  EXPECT_EQ(table100[0].protocol, RTPROT_BOOT);  // what `ip route add` uses by default

  // Deleting "our" route with the same destination cannot take the foreign one.
  RouteInfo ours = *it;
  ours.protocol = kRouteProtocol;
  EXPECT_EQ(take(inside.deleteRoute(ours)), Removal::AlreadyAbsent);
  bool stillThere = false;
  for (const Json& r : ipJson("-n ep-t3 -4 route show table main").items) {
    stillThere = stillThere || (r["dst"].text == "10.99.0.0/24" && r["protocol"].text == "static");
  }
  EXPECT_TRUE(stillThere);
}

TEST_F(RtnlLab, DeleteRouteAddressAndLink) {
  ASSERT_NO_FATAL_FAILURE(makeUplink("t4", 4));
  Rtnl host = take(Rtnl::open(""));
  Rtnl inside = take(Rtnl::open("ep-t4"));
  auto routeCount = [](const std::string& dst) {
    int n = 0;
    for (const Json& r : ipJson("-n ep-t4 -4 route show table main").items) {
      n += r["dst"].text == dst ? 1 : 0;
    }
    return n;
  };

  RouteInfo r;
  r.destination = prefix("10.60.0.0/16");
  r.gateway = address("100.64.4.0");
  r.device = "epn-t4";
  ASSERT_OK(inside.replaceRoute(r));
  EXPECT_EQ(routeCount("10.60.0.0/16"), 1);
  EXPECT_EQ(take(inside.deleteRoute(r)), Removal::Removed);
  EXPECT_EQ(routeCount("10.60.0.0/16"), 0);
  EXPECT_EQ(take(inside.deleteRoute(r)), Removal::AlreadyAbsent);

  // The default route goes too; then the address (and with it the connected route).
  RouteInfo def;
  def.destination = prefix("0.0.0.0/0");
  def.gateway = address("100.64.4.0");
  def.device = "epn-t4";
  EXPECT_EQ(take(inside.deleteRoute(def)), Removal::Removed);
  EXPECT_EQ(routeCount("default"), 0);
  EXPECT_EQ(take(inside.removeAddress("epn-t4", prefix("100.64.4.1/31"))), Removal::Removed);
  EXPECT_EQ(ipJson("-n ep-t4 -4 addr show dev epn-t4").size(), 0u);
  EXPECT_EQ(ipJson("-n ep-t4 -4 route show table main").size(), 0u);
  EXPECT_EQ(take(inside.removeAddress("epn-t4", prefix("100.64.4.1/31"))), Removal::AlreadyAbsent);

  // Deleting the host end takes the pair.
  EXPECT_EQ(take(host.deleteLink("eph-t4")), Removal::Removed);
  EXPECT_EQ(ifnames(ipJson("link show")).count("eph-t4"), 0u);
  EXPECT_EQ(ifnames(ipJson("-n ep-t4 link show")), (std::set<std::string>{"lo"}));
  EXPECT_EQ(take(host.deleteLink("eph-t4")), Removal::AlreadyAbsent);
  EXPECT_EQ(take(inside.removeAddress("epn-t4", prefix("100.64.4.1/31"))), Removal::AlreadyAbsent);
  EXPECT_EQ(take(inside.deleteRoute(r)), Removal::AlreadyAbsent);  // its device is gone
  EXPECT_FALSE(take(inside.link("epn-t4")).has_value());
}

TEST_F(RtnlLab, MtuAndDown) {
  ASSERT_NO_FATAL_FAILURE(makeUplink("t5", 5));
  Rtnl inside = take(Rtnl::open("ep-t5"));
  ASSERT_OK(inside.setMtu("epn-t5", 1420));
  ASSERT_OK(inside.setUp("epn-t5", false));
  Json l = ipJson("-n ep-t5 link show dev epn-t5");
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l.items[0]["mtu"].text, "1420");
  EXPECT_FALSE(l.items[0]["flags"].contains("UP"));
  auto link = take(inside.link("epn-t5"));
  ASSERT_TRUE(link.has_value());
  EXPECT_EQ(link->mtu, 1420u);
  EXPECT_FALSE(link->up);
  EXPECT_FALSE(link->lowerUp);
  // The host end lost its carrier with it.
  Rtnl host = take(Rtnl::open(""));
  auto hostEnd = take(host.link("eph-t5"));
  ASSERT_TRUE(hostEnd.has_value());
  EXPECT_TRUE(hostEnd->up);
  EXPECT_FALSE(hostEnd->lowerUp);
}

TEST_F(RtnlLab, Ipv6AddressAndRoute) {
  ASSERT_NO_FATAL_FAILURE(makeUplink("t6", 6));
  Rtnl host = take(Rtnl::open(""));
  Rtnl inside = take(Rtnl::open("ep-t6"));
  // (`ip -j addr show scope global` prints an empty {} for each address it filters out.)
  auto globalV6 = [] {
    std::vector<std::string> out;
    for (const Json& l : ipJson("-n ep-t6 -6 addr show dev epn-t6").items) {
      for (const Json& a : l["addr_info"].items) {
        if (a["scope"].text == "global") {
          out.push_back(a["local"].text + "/" + a["prefixlen"].text);
        }
      }
    }
    return out;
  };
  // No duplicate address detection on a point-to-point veth: usable at once.
  ASSERT_OK(setSysctl("", "net/ipv6/conf/eph-t6/accept_dad", "0"));
  ASSERT_OK(setSysctl("ep-t6", "net/ipv6/conf/epn-t6/accept_dad", "0"));
  ASSERT_OK(host.addAddress("eph-t6", prefix("fd00:64::/127")));
  ASSERT_OK(inside.addAddress("epn-t6", prefix("fd00:64::1/127")));
  ASSERT_OK(inside.addAddress("epn-t6", prefix("fd00:64::1/127")));  // idempotent

  EXPECT_EQ(globalV6(), std::vector<std::string>{"fd00:64::1/127"});

  RouteInfo r;
  r.destination = prefix("fd00:99::/64");
  r.gateway = address("fd00:64::");
  r.device = "epn-t6";
  ASSERT_OK(inside.replaceRoute(r));
  auto routes = take(inside.routes(IpAddress::Family::V6));
  auto it = std::find_if(routes.begin(), routes.end(),
                         [&](const RouteInfo& x) { return x.destination == r.destination; });
  ASSERT_NE(it, routes.end());
  EXPECT_EQ(it->gateway, r.gateway);
  EXPECT_EQ(it->device, "epn-t6");
  EXPECT_TRUE(it->owned());
  EXPECT_EQ(it->metric, 1024u);  // the kernel's default for IPv6
  bool seen = false;
  for (const Json& j : ipJson("-n ep-t6 -6 route show table main").items) {
    seen = seen || (j["dst"].text == "fd00:99::/64" && j["gateway"].text == "fd00:64::" &&
                    j["protocol"].text == "237");
  }
  EXPECT_TRUE(seen);

  EXPECT_EQ(take(inside.deleteRoute(r)), Removal::Removed);  // metric 0 matches any
  EXPECT_EQ(take(inside.removeAddress("epn-t6", prefix("fd00:64::1/127"))), Removal::Removed);
  EXPECT_EQ(globalV6(), std::vector<std::string>{});
}

TEST_F(RtnlLab, ErrorsNameTheObjectAndTheErrno) {
  ASSERT_NO_FATAL_FAILURE(makeUplink("t7", 7));
  Rtnl host = take(Rtnl::open(""));
  Rtnl inside = take(Rtnl::open("ep-t7"));

  RouteInfo unreachable;
  unreachable.destination = prefix("10.60.0.0/16");
  unreachable.gateway = address("10.50.0.12");
  auto r = inside.replaceRoute(unreachable);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(
      r.error().message.rfind(
          "add route 10.60.0.0/16 via 10.50.0.12 in namespace ep-t7: Network is unreachable", 0),
      0u)
      << r.error().message;
  EXPECT_FALSE(r.error().retryable);

  auto dup = host.createVethPair("eph-t7", "epn-x7", "ep-t7");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message.find("create veth eph-t7"), std::string::npos);
  EXPECT_NE(dup.error().message.find("File exists"), std::string::npos) << dup.error().message;

  auto up = inside.setUp("nope0", true);
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.error().message, "set link nope0 up in namespace ep-t7: No such device");

  auto addr = inside.addAddress("nope0", prefix("10.1.0.1/24"));
  ASSERT_FALSE(addr.ok());
  EXPECT_EQ(addr.error().message,
            "add address 10.1.0.1/24 to nope0 in namespace ep-t7: No such device");

  auto missingPeerNs = host.createVethPair("eph-x7", "epn-x7", "ep-missing");
  ASSERT_FALSE(missingPeerNs.ok());
  EXPECT_NE(missingPeerNs.error().message.find("ep-missing"), std::string::npos);
  EXPECT_EQ(ifnames(ipJson("link show")).count("eph-x7"), 0u);

  EXPECT_FALSE(Rtnl::open("ep-missing").ok());
}

TEST_F(RtnlLab, LinksWithoutANamespaceNameUseTheCurrentOne) {
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-t8"));
  Rtnl host = take(Rtnl::open(""));
  ASSERT_OK(host.createVethPair("eph-t8a", "eph-t8b", ""));
  hostLinks_.push_back("eph-t8a");
  auto links = take(host.links());
  std::set<std::string> names;
  for (const auto& l : links) {
    names.insert(l.name);
  }
  EXPECT_TRUE(names.count("eph-t8a") && names.count("eph-t8b"));
  EXPECT_EQ(ifnames(ipJson("-n ep-t8 link show")), (std::set<std::string>{"lo"}));
}

// --- sysctl ---

TEST_F(SysctlLab, IsPerNamespace) {
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-f1"));
  ASSERT_NO_FATAL_FAILURE(makeNetns("ep-f2"));
  const std::string key = "net/ipv4/ip_forward";
  const std::string before2 = take(getSysctl("ep-f2", key));
  const std::string beforeHere = take(getSysctl("", key));
  const std::string before1 = take(getSysctl("ep-f1", key));
  ASSERT_TRUE(before1 == "0" || before1 == "1") << before1;
  const std::string flipped = before1 == "0" ? "1" : "0";

  ASSERT_OK(setSysctl("ep-f1", key, flipped));
  EXPECT_EQ(take(getSysctl("ep-f1", key)), flipped);
  EXPECT_EQ(take(getSysctl("ep-f2", key)), before2);
  EXPECT_EQ(take(getSysctl("", key)), beforeHere);
  EXPECT_EQ(runCommandStdout("ip netns exec ep-f1 cat /proc/sys/net/ipv4/ip_forward").output,
            flipped + "\n");
  EXPECT_EQ(runCommandStdout("ip netns exec ep-f2 cat /proc/sys/net/ipv4/ip_forward").output,
            before2 + "\n");

  for (const char* bad : {"", "/etc/passwd", "net/../../etc/passwd", "net/ipv4/", "net ipv4"}) {
    EXPECT_FALSE(setSysctl("ep-f1", bad, "1").ok()) << bad;
    EXPECT_FALSE(getSysctl("ep-f1", bad).ok()) << bad;
  }
  auto missing = getSysctl("ep-f1", "net/ipv4/no_such_knob");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("No such file or directory"), std::string::npos);
  EXPECT_FALSE(setSysctl("ep-missing", key, "1").ok());
}

}  // namespace
}  // namespace edgeplane::sys
