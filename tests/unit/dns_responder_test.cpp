// The --dns responder on 127.0.0.1:0 / [::1]:0: UDP and TCP answers from the challenge board,
// TCP framing and its bounds, malformed input, a clean stop.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/dns/responder.h"
#include "proxy/dns/wire.h"
#include "tests/support/eventually.h"

namespace edgeplane::proxy::dns {
namespace {

using namespace std::chrono_literals;

// A TXT query for `name` (dotted, no trailing dot), ID `id`, without EDNS.
std::vector<uint8_t> txtQuery(uint16_t id, const std::string& name) {
  std::vector<uint8_t> q = {static_cast<uint8_t>(id >> 8),
                            static_cast<uint8_t>(id),
                            0x01,
                            0x00,
                            0x00,
                            0x01,
                            0,
                            0,
                            0,
                            0,
                            0,
                            0};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) {
      dot = name.size();
    }
    q.push_back(static_cast<uint8_t>(dot - start));
    q.insert(q.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
             name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  q.insert(q.end(), {0x00, 0x00, 0x10, 0x00, 0x01});
  return q;
}

int rcodeOf(const std::vector<uint8_t>& r) {
  return r.size() >= 4 ? r[3] & 0x0F : -1;
}
int answersOf(const std::vector<uint8_t>& r) {
  return r.size() >= 8 ? r[6] << 8 | r[7] : -1;
}
// The first answer's first character-string (our values are < 256 bytes).
std::string firstTxt(const std::vector<uint8_t>& r, size_t questionSize) {
  const size_t at = 12 + questionSize + 12;  // header, question, RR fixed part + RDLENGTH
  if (r.size() <= at) {
    return {};
  }
  return std::string(r.begin() + static_cast<std::ptrdiff_t>(at + 1),
                     r.begin() + static_cast<std::ptrdiff_t>(at + 1 + r[at]));
}

class DnsResponderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    board_->replace({}, {}, {{"_acme-challenge.example.com", {"value-1", "value-2"}}});
  }
  void start(const std::string& address, size_t maxTcp = 64, std::chrono::milliseconds idle = 10s,
             size_t perSource = 64, RateLimit udpPerSource = {1000, 1s}) {
    auto at = Endpoint::parse(address + ":1");
    ASSERT_TRUE(at.has_value());
    at->port = 0;  // the kernel picks one
    ResponderOptions o{
        *at, board_, maxTcp, perSource, idle, udpPerSource, [this](const std::string& line) {
          const std::lock_guard lock(logMutex_);
          logged_.push_back(line);
        }};
    auto r = Responder::start(o);
    ASSERT_TRUE(r.ok()) << r.error().message;
    responder_ = std::move(r).value();
    at_ = *at;
    at_.port = responder_->port();
  }
  int socketTo(int type) {
    sockaddr_storage ss{};
    socklen_t len = toSockaddr(at_, ss);
    int fd = ::socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0);
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len), 0);
    return fd;
  }
  // One UDP exchange; empty when nothing came back within `wait`.
  std::vector<uint8_t> udp(const std::vector<uint8_t>& q, std::chrono::milliseconds wait = 2s) {
    int fd = socketTo(SOCK_DGRAM);
    EXPECT_EQ(::send(fd, q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
    pollfd p{fd, POLLIN, 0};
    std::vector<uint8_t> out;
    if (::poll(&p, 1, static_cast<int>(wait.count())) == 1) {
      out.resize(65535);
      ssize_t got = ::recv(fd, out.data(), out.size(), 0);
      out.resize(got > 0 ? static_cast<size_t>(got) : 0);
    }
    ::close(fd);
    return out;
  }
  static void sendFramed(int fd, const std::vector<std::vector<uint8_t>>& messages) {
    std::vector<uint8_t> bytes;
    for (const auto& m : messages) {
      bytes.push_back(static_cast<uint8_t>(m.size() >> 8));
      bytes.push_back(static_cast<uint8_t>(m.size()));
      bytes.insert(bytes.end(), m.begin(), m.end());
    }
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  static bool readExact(int fd, uint8_t* out, size_t n) {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd, out + got, n - got, 0);
      if (r <= 0) {
        return false;
      }
      got += static_cast<size_t>(r);
    }
    return true;
  }
  // One framed response; empty on EOF, reset or timeout.
  static std::vector<uint8_t> readFramed(int fd) {
    uint8_t len[2];
    if (!readExact(fd, len, 2)) {
      return {};
    }
    std::vector<uint8_t> out(size_t{len[0]} << 8 | len[1]);
    if (!readExact(fd, out.data(), out.size())) {
      return {};
    }
    return out;
  }
  // True when the peer closed (EOF or reset) within the receive timeout.
  static bool closedByPeer(int fd) {
    uint8_t b;
    ssize_t r = ::recv(fd, &b, 1, 0);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

  std::vector<std::string> loggedLines() {
    const std::lock_guard lock(logMutex_);
    return logged_;
  }

  std::mutex logMutex_;
  std::vector<std::string> logged_;
  std::shared_ptr<AcmeChallengeBoard> board_ = std::make_shared<AcmeChallengeBoard>();
  std::unique_ptr<Responder> responder_;
  Endpoint at_;
  static constexpr size_t kQuestion = 1 + 15 + 1 + 7 + 1 + 3 + 1 + 4;  // the name + type/class
};

TEST_F(DnsResponderTest, UdpAnswersPendingValuesAndRefusesOtherNames) {
  start("127.0.0.1");
  auto r = udp(txtQuery(0x1234, "_ACME-challenge.Example.com"));
  ASSERT_GE(r.size(), 12U);
  EXPECT_EQ(r[0], 0x12);
  EXPECT_EQ(r[1], 0x34);
  EXPECT_EQ(rcodeOf(r), 0);
  EXPECT_EQ(answersOf(r), 2);
  EXPECT_EQ(firstTxt(r, kQuestion), "value-1");
  // The question comes back with the case it was sent in.
  EXPECT_EQ(std::string(r.begin() + 13, r.begin() + 28), "_ACME-challenge");

  auto refused = udp(txtQuery(7, "www.example.com"));
  EXPECT_EQ(rcodeOf(refused), static_cast<int>(Rcode::Refused));
  EXPECT_EQ(answersOf(refused), 0);

  board_->replace({}, {}, {});  // withdrawn
  EXPECT_EQ(rcodeOf(udp(txtQuery(8, "_acme-challenge.example.com"))),
            static_cast<int>(Rcode::Refused));
}

TEST_F(DnsResponderTest, UdpGarbageGetsNoReplyAndServiceGoesOn) {
  start("127.0.0.1");
  EXPECT_TRUE(udp({0x01, 0x02, 0x03}, 300ms).empty());
  auto response = txtQuery(9, "_acme-challenge.example.com");
  response[2] |= 0x80;  // QR: a response is never answered (no reflection loops)
  EXPECT_TRUE(udp(response, 300ms).empty());
  auto formerr = udp({0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});  // no question
  EXPECT_EQ(rcodeOf(formerr), static_cast<int>(Rcode::FormErr));
  EXPECT_EQ(answersOf(udp(txtQuery(10, "_acme-challenge.example.com"))), 2);
  EXPECT_GE(responder_->stats().dropped.load(), 2U);
}

// Past its source's burst, a UDP query gets no full reply: every second one a truncated one
// (TC, no answer), so a resolver retries over TCP, and the others nothing. Another source, and
// TCP, are answered as before.
TEST_F(DnsResponderTest, UdpRepliesToOneSourceAreRateLimited) {
  start("127.0.0.1", 64, 10s, 64, RateLimit{3, std::chrono::hours(1)});
  for (uint16_t id = 1; id <= 3; ++id) {
    EXPECT_EQ(answersOf(udp(txtQuery(id, "_acme-challenge.example.com"))), 2) << id;
  }
  const auto truncated = udp(txtQuery(4, "_acme-challenge.example.com"));
  ASSERT_GE(truncated.size(), 12U);
  EXPECT_EQ(truncated[0] << 8 | truncated[1], 4);
  EXPECT_NE(truncated[2] & 0x02, 0);  // TC
  EXPECT_EQ(answersOf(truncated), 0);
  EXPECT_LE(truncated.size(), txtQuery(4, "_acme-challenge.example.com").size());
  EXPECT_TRUE(udp(txtQuery(5, "www.example.com"), 300ms).empty());  // REFUSED is a reply too
  EXPECT_EQ(answersOf(udp(txtQuery(6, "_acme-challenge.example.com"))), 0);  // TC again

  // 127.0.0.2: another source.
  const int other = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(other, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl(0x7f000002);
  ASSERT_EQ(::bind(other, reinterpret_cast<sockaddr*>(&from), sizeof from), 0);
  sockaddr_storage to{};
  const socklen_t toLen = toSockaddr(at_, to);
  ASSERT_EQ(::connect(other, reinterpret_cast<sockaddr*>(&to), toLen), 0);
  const auto q = txtQuery(7, "_acme-challenge.example.com");
  ASSERT_EQ(::send(other, q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
  pollfd p{other, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  std::vector<uint8_t> reply(512);
  const ssize_t got = ::recv(other, reply.data(), reply.size(), 0);
  ::close(other);
  ASSERT_GT(got, 0);
  reply.resize(static_cast<size_t>(got));
  EXPECT_EQ(answersOf(reply), 2);
  // Read after that reply: the responder handled the earlier datagrams first.
  EXPECT_EQ(responder_->stats().udpLimited.load(), 3U);
  EXPECT_EQ(responder_->stats().udpTruncated.load(), 2U);
  // Said at the first, as the first such line (there was none before it); the next two wait
  // for the next line, a minute on.
  const std::vector<std::string> lines = loggedLines();
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0],
            "DNS-01 responder: 1 UDP query over their source's rate (3/hour per IPv4 address "
            "or IPv6 /64) since the responder started; every second one got a truncated reply");

  const int tcp = socketTo(SOCK_STREAM);
  sendFramed(tcp, {txtQuery(8, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(tcp)), 2);
  ::close(tcp);
}

TEST_F(DnsResponderTest, TcpServesSeveralQueriesPerConnection) {
  start("127.0.0.1");
  int fd = socketTo(SOCK_STREAM);
  sendFramed(fd, {txtQuery(1, "_acme-challenge.example.com"), txtQuery(2, "nope.example.com")});
  auto a = readFramed(fd);
  auto b = readFramed(fd);
  EXPECT_EQ(answersOf(a), 2);
  EXPECT_EQ(a[1], 1);
  EXPECT_EQ(rcodeOf(b), static_cast<int>(Rcode::Refused));
  EXPECT_EQ(b[1], 2);
  // A query split across two writes is answered once it is whole.
  auto q = txtQuery(3, "_acme-challenge.example.com");
  std::vector<uint8_t> framed = {0, static_cast<uint8_t>(q.size())};
  framed.insert(framed.end(), q.begin(), q.end());
  ASSERT_EQ(::send(fd, framed.data(), 5, 0), 5);
  std::this_thread::sleep_for(50ms);
  ASSERT_EQ(::send(fd, framed.data() + 5, framed.size() - 5, 0),
            static_cast<ssize_t>(framed.size() - 5));
  auto c = readFramed(fd);
  EXPECT_EQ(answersOf(c), 2);
  EXPECT_EQ(c[1], 3);
  ::close(fd);
}

TEST_F(DnsResponderTest, AMalformedTcpMessageClosesOnlyItsConnection) {
  start("127.0.0.1");
  int good = socketTo(SOCK_STREAM);
  int bad = socketTo(SOCK_STREAM);
  sendFramed(bad, {{0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}});  // no question
  EXPECT_TRUE(closedByPeer(bad));
  sendFramed(good, {txtQuery(4, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(good)), 2);
  ::close(good);
  ::close(bad);
}

// At the bound, a new connection closes the one idle longest (RFC 7766 6.2.3) instead of being
// refused: whoever holds every slot cannot keep a CA out. Idle ones are closed after the timeout.
TEST_F(DnsResponderTest, TcpConnectionsAreBoundedAndIdleOnesClosed) {
  start("127.0.0.1", 2, 1s);
  int a = socketTo(SOCK_STREAM);
  sendFramed(a, {txtQuery(1, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(a)), 2);
  std::this_thread::sleep_for(20ms);
  int b = socketTo(SOCK_STREAM);
  sendFramed(b, {txtQuery(2, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(b)), 2);
  int c = socketTo(SOCK_STREAM);  // the third: `a`, idle longest, makes room
  sendFramed(c, {txtQuery(3, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(c)), 2);
  EXPECT_TRUE(closedByPeer(a));
  EXPECT_EQ(responder_->stats().tcpEvicted.load(), 1U);
  EXPECT_EQ(responder_->stats().tcpRefused.load(), 0U);
  // Idle past 1 s: both closed by the responder, and a new connection is served.
  const auto before = std::chrono::steady_clock::now();
  EXPECT_TRUE(closedByPeer(b));
  EXPECT_TRUE(closedByPeer(c));
  EXPECT_LT(std::chrono::steady_clock::now() - before, 3s);
  int d = socketTo(SOCK_STREAM);
  sendFramed(d, {txtQuery(4, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(d)), 2);
  for (int fd : {a, b, c, d}) {
    ::close(fd);
  }
}

// Connections that keep every slot busy (a query now and then, never idle long) cannot keep a
// new client out: it is served, and one of theirs goes (found by an attacker's read: the new
// connection used to be reset at accept).
TEST_F(DnsResponderTest, BusyConnectionsHoldingEverySlotDoNotLockOutANewClient) {
  start("127.0.0.1", 2, 300ms);
  std::vector<int> held = {socketTo(SOCK_STREAM), socketTo(SOCK_STREAM)};
  const std::vector<uint8_t> notimp = {0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0};  // opcode 1
  for (int round = 0; round < 3; ++round) {
    for (int fd : held) {
      sendFramed(fd, {notimp});
    }
    std::this_thread::sleep_for(100ms);
  }
  int c = socketTo(SOCK_STREAM);
  sendFramed(c, {txtQuery(1, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(c)), 2);
  ::close(c);
  for (int fd : held) {
    ::close(fd);
  }
}

// Making room never closes a connection still owed its first answer: new connections opened
// while a client's query is on its way take the slots of answered ones, then are refused, and
// the client is answered (found by a review: the newest arrival could evict a connection
// accepted one round before, ahead of its first read).
TEST_F(DnsResponderTest, ANewConnectionIsNotClosedBeforeItsFirstAnswer) {
  start("127.0.0.1", 3, 10s);
  std::vector<int> fds = {socketTo(SOCK_STREAM), socketTo(SOCK_STREAM)};
  for (int fd : fds) {
    sendFramed(fd, {txtQuery(1, "_acme-challenge.example.com")});
    EXPECT_EQ(answersOf(readFramed(fd)), 2);
  }
  int client = socketTo(SOCK_STREAM);  // its query comes later
  std::this_thread::sleep_for(50ms);
  for (int i = 0; i < 3; ++i) {  // two take the answered ones' slots; the third is refused
    fds.push_back(socketTo(SOCK_STREAM));
    std::this_thread::sleep_for(50ms);
  }
  // The responder counts as it accepts: wait for both counts (a loaded machine may lag).
  EXPECT_TRUE(testing::eventually([&] {
    return responder_->stats().tcpEvicted.load() == 2 && responder_->stats().tcpRefused.load() == 1;
  }));
  EXPECT_EQ(responder_->stats().tcpEvicted.load(), 2U);
  EXPECT_EQ(responder_->stats().tcpRefused.load(), 1U);
  sendFramed(client, {txtQuery(2, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(client)), 2);
  ::close(client);
  for (int fd : fds) {
    ::close(fd);
  }
}

// One source holds at most maxTcpPerSource connections: one more from it is refused at accept,
// and none of the others it holds (nor anyone else's) is closed for it.
TEST_F(DnsResponderTest, OneSourceHoldsAtMostItsShareOfConnections) {
  start("127.0.0.1", 64, 10s, 2);
  int a = socketTo(SOCK_STREAM);
  int b = socketTo(SOCK_STREAM);
  sendFramed(a, {txtQuery(1, "_acme-challenge.example.com")});
  sendFramed(b, {txtQuery(2, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(a)), 2);
  EXPECT_EQ(answersOf(readFramed(b)), 2);
  int c = socketTo(SOCK_STREAM);
  EXPECT_TRUE(closedByPeer(c));
  EXPECT_EQ(responder_->stats().tcpRefused.load(), 1U);
  sendFramed(a, {txtQuery(3, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(a)), 2);
  for (int fd : {a, b, c}) {
    ::close(fd);
  }
}

// Out of file descriptors, a connection waits in the backlog and keeps the listener readable:
// the responder leaves the listener alone for a while instead of spinning on it, and accepts
// it once descriptors are back (found by an attacker's read: the thread spun at 100% CPU).
TEST_F(DnsResponderTest, OutOfFileDescriptorsPausesAcceptingInsteadOfSpinning) {
  start("127.0.0.1");
  int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(c, 0);
  timeval tv{2, 0};
  ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  const int lowestFree = ::dup(0);
  ASSERT_GE(lowestFree, 0);
  ::close(lowestFree);
  rlimit none = before;
  none.rlim_cur = static_cast<rlim_t>(lowestFree);  // no new descriptor in this process
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &none), 0);
  sockaddr_storage ss{};
  const socklen_t len = toSockaddr(at_, ss);
  const int connected = ::connect(c, reinterpret_cast<sockaddr*>(&ss), len);
  auto cpu = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return std::chrono::microseconds(u.ru_utime.tv_sec * 1000000 + u.ru_utime.tv_usec +
                                     u.ru_stime.tv_sec * 1000000 + u.ru_stime.tv_usec);
  };
  const auto cpuBefore = cpu();
  std::this_thread::sleep_for(500ms);
  const auto spent = cpu() - cpuBefore;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &before), 0);
  ASSERT_EQ(connected, 0);
  EXPECT_LT(spent, 150ms);
  sendFramed(c, {txtQuery(1, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(c)), 2);
  ::close(c);
}

TEST_F(DnsResponderTest, ServesIpv6AndStopsWithAConnectionOpen) {
  int probe = ::socket(AF_INET6, SOCK_DGRAM, 0);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  const bool v6 = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  if (probe >= 0) {
    ::close(probe);
  }
  if (!v6) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  start("[::1]");
  EXPECT_EQ(answersOf(udp(txtQuery(1, "_acme-challenge.example.com"))), 2);
  int fd = socketTo(SOCK_STREAM);
  const auto before = std::chrono::steady_clock::now();
  responder_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 1s);
  EXPECT_TRUE(closedByPeer(fd));
  ::close(fd);
}

// --dns [::]:PORT serves IPv4 clients on UDP as on TCP (both dual-stack): a CA that validates
// over IPv4 gets its answer over UDP first (found by an attacker's read: UDP was IPv6-only
// while TCP took both).
TEST_F(DnsResponderTest, TheIpv6WildcardServesIpv4OverUdpAndTcp) {
  int probe = ::socket(AF_INET6, SOCK_DGRAM, 0);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_any;
  const bool v6 = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  if (probe >= 0) {
    ::close(probe);
  }
  if (!v6) {
    GTEST_SKIP() << "no IPv6 here";
  }
  std::ifstream v6only("/proc/sys/net/ipv6/bindv6only");
  int only = 0;
  if (v6only >> only && only != 0) {
    GTEST_SKIP() << "net.ipv6.bindv6only is set: [::] takes IPv6 only, on TCP as on UDP";
  }
  start("[::]");
  at_ = Endpoint{*IpAddress::parse("127.0.0.1"), responder_->port()};
  EXPECT_EQ(answersOf(udp(txtQuery(1, "_acme-challenge.example.com"))), 2);
  int fd = socketTo(SOCK_STREAM);
  sendFramed(fd, {txtQuery(2, "_acme-challenge.example.com")});
  EXPECT_EQ(answersOf(readFramed(fd)), 2);
  ::close(fd);
}

}  // namespace
}  // namespace edgeplane::proxy::dns
