// The webhook's HTTP server (see webhook.h); what it answers is decided in webhook_request.cpp.
#include "reconciler/cli/webhook.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/String.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <list>
#include <mutex>
#include <sstream>
#include <thread>
#include <variant>
#include <vector>

namespace edgeplane::cli {

// One thread polls the listening socket and every connection, and reads each request itself
// against one deadline for the whole request counted from its accept: POCO's HTTPServer only
// bounds each read, so a client trickling a byte every few seconds would hold one of its
// threads for ever; and a pool of threads, however large, lets as many stalled clients as it
// has threads hold every other request back. Here a request that is not complete within
// kRequestDeadline of its accept is answered 408 and dropped, and no client waits for another.

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kRequestDeadline{5000};
constexpr std::chrono::milliseconds kReplyDeadline{2000};  // to send the answer
constexpr std::chrono::milliseconds kDrainTime{1000};      // reading what follows an answer
constexpr size_t kMaxDrain = 64 * 1024;
constexpr size_t kMaxHead = 8192;
// Connections held at once; a new one past this closes one held: first one already answered,
// then one that has sent nothing, then the oldest (victim()). A client that sends its request
// at once, as the hook and the forges do, is never the oldest for long.
constexpr size_t kMaxConnections = 128;
// Connections taken per turn of the loop, so that those taken are read before more come, and a
// flood of connections cannot keep the loop from serving, expiring or stopping.
constexpr size_t kAcceptsPerTurn = 16;
// Request bytes held across connections (heads and bodies as received): a request over
// kSmallBody whose bytes take the total past this is answered 503. The hook's commit id and
// most forges' pushes are small, and never refused for it: the connection cap bounds those.
constexpr size_t kMaxHeldBytes = 16 * 1024 * 1024;
constexpr size_t kSmallBody = 64 * 1024;
constexpr size_t kReadPerEvent = 64 * 1024;
// The kernel holds a connection until its client sends (TCP_DEFER_ACCEPT), at most this long.
constexpr std::chrono::seconds kDeferAccept{1};
// Without a descriptor for accept (EMFILE), the waiting connection keeps the listening socket
// readable: it is left out of the poll this long.
constexpr std::chrono::milliseconds kAcceptPause{100};

// The body's length from the head, or the answer refusing the request. One Content-Length
// (repeats must agree) of decimal digits only, at most kMaxWebhookBody: POCO's parser takes
// "-1" and "+5", and a negative length once made the reader take whatever came for the
// whole deadline. No Transfer-Encoding: a body comes with its length or not at all.
std::variant<size_t, WebhookReply> bodyLength(const Poco::Net::HTTPRequest& request) {
  if (request.has(Poco::Net::HTTPMessage::TRANSFER_ENCODING)) {
    return WebhookReply{411, "send the body with a Content-Length\n"};
  }
  std::optional<std::string> value;
  for (auto it = request.find(Poco::Net::HTTPMessage::CONTENT_LENGTH);
       it != request.end() &&
       Poco::icompare(it->first, Poco::Net::HTTPMessage::CONTENT_LENGTH) == 0;
       ++it) {
    if (value && *value != it->second) {
      return WebhookReply{400, "conflicting Content-Length headers\n"};
    }
    value = it->second;
  }
  if (!value) {
    return size_t{0};
  }
  if (value->empty() || value->find_first_not_of("0123456789") != std::string::npos) {
    return WebhookReply{400, "Content-Length is not a number of bytes\n"};
  }
  const size_t digits = value->find_first_not_of('0');
  if (digits != std::string::npos &&
      (value->size() - digits > 9 || std::stoul(value->substr(digits)) > kMaxWebhookBody)) {
    return WebhookReply{413, "body larger than " + std::to_string(kMaxWebhookBody) + " bytes\n"};
  }
  return digits == std::string::npos ? size_t{0} : std::stoul(value->substr(digits));
}

std::string_view reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

// One connection, from its accept to its close.
struct Conn {
  enum class Phase : uint8_t { Head, Body, Write, Drain };
  int fd = -1;
  Clock::time_point deadline;  // of the current phase
  // As it was at the accept: shared, so that the secret is not copied for each connection.
  std::shared_ptr<const WebhookConfig> config;
  Phase phase = Phase::Head;
  std::string in;                         // the head, then the body after it
  size_t bodyStart = 0;                   // where the body begins in `in`
  size_t want = 0;                        // the body's announced length
  std::optional<WebhookRequest> request;  // once the head is read
  std::string out;                        // the answer
  size_t sent = 0;
  size_t drained = 0;
};

// The head of `head` (up to and with its blank line): the request to answer, or the answer
// that refuses it.
std::variant<WebhookRequest, WebhookReply> parseHead(const std::string& head, size_t& want) {
  Poco::Net::HTTPRequest request;
  std::istringstream in(head);
  try {
    request.read(in);
  } catch (const Poco::Exception&) {
    return WebhookReply{400, "malformed request\n"};
  }
  const auto length = bodyLength(request);
  if (const auto* refused = std::get_if<WebhookReply>(&length)) {
    return *refused;
  }
  want = std::get<size_t>(length);
  std::string path = request.getURI();
  if (auto q = path.find('?'); q != std::string::npos) {
    path.resize(q);
  }
  WebhookRequest r{request.getMethod(), path, {}, {}};
  for (const auto& [name, value] : request) {
    r.headers.emplace(Poco::toLower(name), value);  // emplace keeps the first of repeats
  }
  return r;
}

// Where a complete head ends (its blank line after CRLF or a bare LF, the blank line itself
// CRLF or bare LF, as POCO's parser reads a head), and where the body begins.
bool findHeadEnd(const std::string& data, size_t& bodyStart) {
  size_t best = std::string::npos;
  for (const std::string_view end : {"\r\n\r\n", "\n\r\n", "\n\n"}) {
    const size_t at = data.find(end);
    if (at != std::string::npos && (best == std::string::npos || at + end.size() < best)) {
      best = at + end.size();
    }
  }
  if (best == std::string::npos) {
    return false;
  }
  bodyStart = best;
  return true;
}

class LoopWebhookServer : public WebhookServer {
 public:
  LoopWebhookServer(Poco::Net::ServerSocket socket, int wake, WebhookConfig config,
                    std::function<void()> onTrigger)
      : socket_(std::move(socket)),
        wake_(wake),
        config_(std::make_shared<const WebhookConfig>(std::move(config))),
        onTrigger_(std::move(onTrigger)),
        port_(socket_.address().port()) {
    thread_ = std::thread([this] { loop(); });
  }

  // Stops the loop and joins it: no connection can call onTrigger once this returns.
  ~LoopWebhookServer() override {
    stopping_ = true;
    const uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
    thread_.join();
    for (Conn& c : conns_) {
      ::close(c.fd);
    }
    ::close(wake_);
  }

  void setConfig(WebhookConfig config) override {
    auto next = std::make_shared<const WebhookConfig>(std::move(config));
    std::lock_guard lock(mu_);
    config_ = std::move(next);
  }

  uint16_t port() const override { return port_; }

  size_t largestRequest() const override { return largestRequest_.load(); }

 private:
  void loop() {
    std::vector<pollfd> fds;
    std::vector<Conn*> polled;
    while (!stopping_) {
      const bool listening = Clock::now() >= acceptPausedUntil_;
      fds.assign({{wake_, POLLIN, 0}, {listening ? socket_.impl()->sockfd() : -1, POLLIN, 0}});
      polled.clear();
      auto next = Clock::now() + std::chrono::seconds(1);
      if (!listening) {
        next = std::min(next, acceptPausedUntil_);
      }
      for (Conn& c : conns_) {
        fds.push_back(
            {c.fd, static_cast<short>(c.phase == Conn::Phase::Write ? POLLOUT : POLLIN), 0});
        polled.push_back(&c);
        next = std::min(next, c.deadline);
      }
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now());
      const int ready =
          ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(0, wait.count())));
      if (ready < 0) {
        if (errno != EINTR) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));  // ENOMEM: try again
        }
        continue;
      }
      for (size_t i = 0; i < polled.size(); ++i) {
        if (fds[i + 2].revents != 0) {
          guarded(*polled[i], [&](Conn& c) { serve(c); });
        }
      }
      const auto now = Clock::now();
      for (Conn& c : conns_) {
        if (c.fd >= 0 && now >= c.deadline) {
          guarded(c, [&](Conn& x) { expired(x); });
        }
      }
      if (fds[1].revents != 0) {
        try {
          acceptSome();
        } catch (const std::exception&) {
          acceptPausedUntil_ = Clock::now() + kAcceptPause;  // std::bad_alloc: room first
        }
      }
      conns_.remove_if([](const Conn& c) { return c.fd < 0; });
    }
  }

  // Runs `step` on `c`; what it throws (std::bad_alloc) closes that connection, not the agent.
  template <typename Step>
  void guarded(Conn& c, Step step) {
    try {
      step(c);
    } catch (const std::exception&) {
      close(c);
    }
  }

  // Takes up to kAcceptsPerTurn waiting connections; past kMaxConnections, victim() goes for
  // each new one.
  void acceptSome() {
    for (size_t taken = 0; taken < kAcceptsPerTurn && !stopping_; ++taken) {
      const int fd =
          ::accept4(socket_.impl()->sockfd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
          acceptPausedUntil_ = Clock::now() + kAcceptPause;  // EMFILE, ENFILE, ENOBUFS, ENOMEM
        }
        return;
      }
      conns_.remove_if([](const Conn& c) { return c.fd < 0; });
      if (conns_.size() >= kMaxConnections) {
        close(victim());
      }
      Conn* added = nullptr;
      try {
        added = &conns_.emplace_back();
      } catch (...) {
        ::close(fd);  // not yet held by a Conn
        throw;
      }
      Conn& c = *added;
      c.fd = fd;
      c.deadline = Clock::now() + kRequestDeadline;
      {
        std::lock_guard lock(mu_);
        c.config = config_;
      }
      // What already came is read now: a request that is there is never taken for silence.
      guarded(c, [&](Conn& x) { serve(x); });
    }
  }

  // The connection to close for a new one: the oldest already answered (draining or sending),
  // else the oldest that has sent nothing, else the oldest.
  Conn& victim() {
    auto first = [this](auto pred) {
      return std::find_if(conns_.begin(), conns_.end(),
                          [&](const Conn& c) { return c.fd >= 0 && pred(c); });
    };
    auto answered = first([](const Conn& c) {
      return c.phase == Conn::Phase::Drain || c.phase == Conn::Phase::Write;
    });
    if (answered != conns_.end()) {
      return *answered;
    }
    auto silent = first([](const Conn& c) { return c.phase == Conn::Phase::Head && c.in.empty(); });
    return silent != conns_.end() ? *silent : *first([](const Conn&) { return true; });
  }

  void serve(Conn& c) {
    switch (c.phase) {
      case Conn::Phase::Head:
      case Conn::Phase::Body:
        readRequest(c);
        return;
      case Conn::Phase::Write:
        write(c);
        return;
      case Conn::Phase::Drain:
        drain(c);
        return;
    }
  }

  // Reads what the phase still takes (never more than the head's limit or the body's
  // announced length; up to kReadPerEvent now), then moves on when the head or the body is
  // whole.
  void readRequest(Conn& c) {
    for (size_t got = 0; got < kReadPerEvent && c.fd >= 0 &&
                         (c.phase == Conn::Phase::Head || c.phase == Conn::Phase::Body);) {
      const size_t room = c.phase == Conn::Phase::Head ? kMaxHead + 1 - c.in.size()
                                                       : c.bodyStart + c.want - c.in.size();
      char buf[16384];
      const ssize_t n = ::recv(c.fd, buf, std::min(room, sizeof buf), 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
      }
      if (n == 0 && !c.in.empty()) {
        reply(c, {400, "the request ended before it was whole\n"});
        return;
      }
      if (n <= 0) {
        close(c);  // the client went
        return;
      }
      got += static_cast<size_t>(n);
      c.in.append(buf, static_cast<size_t>(n));
      heldBytes_ += static_cast<size_t>(n);
      held(c.in.size());
      if (c.in.size() > kSmallBody && heldBytes_ > kMaxHeldBytes) {
        reply(c, {503, "busy: too many request bytes held at once; send again\n"});
      } else if (c.phase == Conn::Phase::Body) {
        if (c.in.size() >= c.bodyStart + c.want) {
          answer(c);
        }
      } else if (findHeadEnd(c.in, c.bodyStart)) {
        headRead(c);
      } else if (c.in.size() > kMaxHead) {
        reply(c, {400, "request head larger than " + std::to_string(kMaxHead) + " bytes\n"});
      }
    }
  }

  void headRead(Conn& c) {
    auto parsed = parseHead(c.in.substr(0, c.bodyStart), c.want);
    if (const auto* refused = std::get_if<WebhookReply>(&parsed)) {
      reply(c, *refused);
      return;
    }
    c.request = std::move(std::get<WebhookRequest>(parsed));
    if (c.request->method != "POST" || c.request->path != "/trigger") {
      c.want = 0;  // no body is read for what is refused or needs none
    }
    if (c.in.size() >= c.bodyStart + c.want) {
      answer(c);
    } else {
      c.phase = Conn::Phase::Body;
    }
  }

  void answer(Conn& c) {
    c.request->body = c.in.substr(c.bodyStart, c.want);
    reply(c, handleWebhook(*c.request, *c.config, onTrigger_));
  }

  // Sends `r` (as much as the socket takes now), then drains what follows; the request's
  // buffers go.
  void reply(Conn& c, const WebhookReply& r) {
    c.out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason(r.status)) +
            "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(r.body.size()) +
            "\r\nConnection: close\r\n";
    if (!r.allow.empty()) {
      c.out += "Allow: " + r.allow + "\r\n";
    }
    c.out += "\r\n";
    if (!c.request || c.request->method != "HEAD") {
      c.out += r.body;  // a HEAD's answer has the GET's head and no body
    }
    release(c);
    c.phase = Conn::Phase::Write;
    c.deadline = Clock::now() + kReplyDeadline;
    write(c);
  }

  void write(Conn& c) {
    while (c.sent < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          close(c);
        }
        return;
      }
      c.sent += static_cast<size_t>(n);
    }
    // Whole: the client reads it before it sees the end. What it still sends is read and
    // dropped for a moment, so that unread bytes do not make the close a reset that could
    // take the answer with it.
    ::shutdown(c.fd, SHUT_WR);
    c.out = std::string();
    c.phase = Conn::Phase::Drain;
    c.deadline = Clock::now() + kDrainTime;
  }

  void drain(Conn& c) {
    char buf[4096];
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      return;
    }
    c.drained += n > 0 ? static_cast<size_t>(n) : 0;
    if (n <= 0 || c.drained > kMaxDrain) {
      close(c);
    }
  }

  // Past its phase's deadline: a request begun is answered 408 (the answer has its own
  // deadline); a connection that sent nothing, an answer not taken, a drain are closed.
  void expired(Conn& c) {
    if ((c.phase == Conn::Phase::Head || c.phase == Conn::Phase::Body) && !c.in.empty()) {
      reply(c, {408, "request not complete within " +
                         std::to_string(kRequestDeadline.count() / 1000) + " s\n"});
    } else {
      close(c);
    }
  }

  void release(Conn& c) {
    heldBytes_ -= c.in.size();
    c.in = std::string();
    c.request.reset();
  }

  void close(Conn& c) {
    if (c.fd < 0) {
      return;
    }
    release(c);
    ::close(c.fd);
    c.fd = -1;
  }

  void held(size_t bytes) {
    size_t seen = largestRequest_.load();
    while (bytes > seen && !largestRequest_.compare_exchange_weak(seen, bytes)) {
    }
  }

  Poco::Net::ServerSocket socket_;
  const int wake_;  // an eventfd: the destructor's stop
  std::mutex mu_;   // guards config_ (replaced on SIGHUP)
  std::shared_ptr<const WebhookConfig> config_;
  const std::function<void()> onTrigger_;  // points into the agent; called on the loop thread
  const uint16_t port_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> largestRequest_{0};  // see WebhookServer::largestRequest
  std::list<Conn> conns_;                  // the loop thread's only
  size_t heldBytes_ = 0;                   // the loop thread's only: of every Conn::in
  Clock::time_point acceptPausedUntil_{};  // the loop thread's only
  std::thread thread_;                     // last: started once everything else is
};

}  // namespace

Result<std::unique_ptr<WebhookServer>> WebhookServer::start(const Endpoint& listen,
                                                            WebhookConfig config,
                                                            std::function<void()> onTrigger) {
  const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    const int err = errno;
    return retryable("webhook: eventfd: " + errnoText(err));
  }
  try {
    Poco::Net::ServerSocket socket;
    socket.bind(Poco::Net::SocketAddress(listen.str()), true);
    socket.listen(128);
    socket.setBlocking(false);
    // A connection is taken once its client has sent something (or after kDeferAccept): one
    // that has not spoken takes no place here, and one that has is read as it is taken.
    const int defer = static_cast<int>(kDeferAccept.count());
    if (::setsockopt(socket.impl()->sockfd(), IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer,
                     sizeof defer) != 0) {
      const int err = errno;
      ::close(wake);
      return retryable("webhook: TCP_DEFER_ACCEPT: " + errnoText(err));
    }
    return std::unique_ptr<WebhookServer>(std::make_unique<LoopWebhookServer>(
        std::move(socket), wake, std::move(config), std::move(onTrigger)));
  } catch (const Poco::Exception& e) {
    ::close(wake);
    return retryable("webhook: cannot listen on " + listen.str() + ": " + e.displayText());
  } catch (const std::exception& e) {  // the server's thread could not be started
    ::close(wake);
    return retryable("webhook: " + std::string(e.what()));
  }
}

}  // namespace edgeplane::cli
