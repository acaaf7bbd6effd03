// The DNS-01 responder (`edgeplane-proxy --dns ADDR:PORT`): an authoritative server for the
// `_acme-challenge` TXT records of pending DNS-01 challenges, over UDP and TCP, on its own
// thread (it serves only a CA's validation traffic, never the data path).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "proxy/acme_challenges.h"
#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::proxy::dns {

struct ResponderOptions {
  Endpoint address;  // an IPv4 or IPv6 literal; port 0 picks one (the same for UDP and TCP)
  std::shared_ptr<const AcmeChallengeBoard> board;
  // TCP (RFC 7766): at most this many connections at once (a new one over it closes, of the
  // source holding the most, the one idle longest, RFC 7766 6.2.3, so that whoever holds every
  // slot cannot keep a CA out; never one just accepted and not yet answered: if all are such,
  // the new one is closed at accept), at
  // most maxTcpPerSource of them from one source (an IPv4 address or IPv6 /64; one more is
  // closed at accept), each closed after this long without a complete query or on a malformed
  // one.
  size_t maxTcpConnections = 64;
  size_t maxTcpPerSource = 8;
  std::chrono::milliseconds tcpIdleTimeout{10000};
  // UDP (whose source anyone can forge): at most this many datagrams answered per source (as
  // for TCP) in this period, after a burst of as many (GCRA, gateway/rate_limiter.h). Over it,
  // every second query gets a truncated reply (TC, no larger than the query: wire.h's
  // buildTruncated), so a resolver whose address is being forged asks again over TCP; the others
  // get nothing. A forged source thus draws at most this many full replies to its victim.
  RateLimit udpPerSource{20, std::chrono::seconds(1)};
  // Where the responder says that queries went over their source's rate: at the first, then at
  // most once a minute with how many since; null: nowhere. Called on the responder's thread.
  std::function<void(const std::string&)> log;
};

// Counters for tests and the log; relaxed, monotonic.
struct ResponderStats {
  std::atomic<uint64_t> udpQueries{0};
  std::atomic<uint64_t> tcpQueries{0};
  std::atomic<uint64_t> dropped{0};       // no reply: not a query, malformed over TCP, truncated
  std::atomic<uint64_t> tcpRefused{0};    // closed at accept: over their source's cap, or no room
  std::atomic<uint64_t> tcpEvicted{0};    // connections closed to make room for a new one
  std::atomic<uint64_t> udpLimited{0};    // datagrams over their source's udpPerSource
  std::atomic<uint64_t> udpTruncated{0};  // of those, answered with TC (the others: nothing)
};

class Responder {
 public:
  // Binds UDP and TCP on `options.address` and starts serving.
  static Result<std::unique_ptr<Responder>> start(ResponderOptions options);
  ~Responder();  // stop()
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

  // Closes the sockets and joins the thread; idempotent.
  void stop();
  uint16_t port() const { return port_; }
  const ResponderStats& stats() const { return stats_; }

 private:
  explicit Responder(ResponderOptions options) : options_(std::move(options)) {}
  void run();

  ResponderOptions options_;
  uint16_t port_ = 0;
  int udpFd_ = -1;
  int tcpFd_ = -1;
  int wakeFd_ = -1;
  ResponderStats stats_;
  std::thread thread_;
};

}  // namespace edgeplane::proxy::dns
