// The :80 handler: redirect to HTTPS (see http80.h).
#include "proxy/handlers/http80.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

#include "proxy/acme_challenges.h"
#include "proxy/engine/access_log.h"
#include "proxy/handlers/linger.h"
#include "proxy/http/message.h"
#include "proxy/http_redirect.h"

namespace edgeplane::proxy {

namespace {

constexpr int64_t kLingerMs = 1000;
constexpr size_t kLingerMaxBytes = size_t{64} * 1024;
// One parser for the proxy: the codec's, within this listener's smaller head budget.
const http::Limits kLimits{kMaxHttpHead, kMaxHttpHead, 100};

class Http80Handler final : public Handler {
 public:
  explicit Http80Handler(Connection& conn) : Handler(conn) {}

  // Interface
  void start() override;
  void onIo(uint32_t tag, uint32_t events) override;
  void onTimer() override;
  void onClose(Outcome outcome) override;

 private:
  enum class Phase : uint8_t { Read, Write, Linger };

  void read();
  static bool redirects(const ActiveConfig* config, const std::string& host);
  void answer(const http::RequestHead& req);
  void answerBadRequest();
  void write();
  void linger();
  Outcome outcome() const {
    return status_ == 400 ? Outcome::fail(ErrorKind::HttpMalformed) : Outcome::ok();
  }

  Phase phase_ = Phase::Read;
  bool readable_ = false;
  bool writable_ = false;
  int status_ = 0;
  std::string head_;
  std::string response_;
  size_t sent_ = 0;
  size_t lingered_ = 0;
};

class Http80Protocol final : public Protocol {
 public:
  std::unique_ptr<Handler> create(Connection& conn) override {
    return std::make_unique<Http80Handler>(conn);
  }
};

void Http80Handler::start() {
  readable_ = conn().readable();
  writable_ = conn().writable();
  ctx().schedule(this, conn().startMs() + ctx().options().helloTimeout.count());
}

void Http80Handler::onIo(uint32_t, uint32_t events) {
  readable_ |= (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  writable_ |= (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
  switch (phase_) {
    case Phase::Read:
      read();
      return;
    case Phase::Write:
      write();
      return;
    case Phase::Linger:
      linger();
      return;
  }
}

void Http80Handler::onTimer() {
  conn().finish(phase_ == Phase::Read ? Outcome::fail(ErrorKind::HelloTimeout) : outcome());
}

void Http80Handler::onClose(Outcome result) {
  if (!ctx().options().accessLog) {
    return;
  }
  char client[64];
  formatEndpoint(conn().client(), client, sizeof client);
  std::string_view name = outcomeName(result);
  const std::string& host = conn().serverName();
  long long ms = static_cast<long long>(ctx().now() - conn().startMs());
  char line[kMaxLogLine];
  int n = std::snprintf(
      line, sizeof line, "access-http client=%s host=%s status=%d ms=%lld outcome=%.*s\n", client,
      host.empty() ? "-" : host.c_str(), status_, ms, static_cast<int>(name.size()), name.data());
  writeLogLine(ctx(), line, sizeof line, n);
}

void Http80Handler::read() {
  std::span<uint8_t> scratch = ctx().scratch();
  while (readable_) {
    size_t have = head_.size();
    if (have >= kMaxHttpHead) {
      answerBadRequest();  // no end of head within the limit
      return;
    }
    ssize_t n =
        ::recv(conn().fd(), scratch.data(), std::min(scratch.size(), kMaxHttpHead - have), 0);
    if (n > 0) {
      head_.append(reinterpret_cast<const char*>(scratch.data()), static_cast<size_t>(n));
      http::RequestHead req;
      http::ParseResult r = http::parseRequestHead(head_, req, kLimits);
      if (r.status == http::ParseStatus::Done) {
        answer(req);
        return;
      }
      if (r.status == http::ParseStatus::Error) {
        answerBadRequest();  // whatever the codec's status: this listener only redirects
        return;
      }
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      conn().finish(have == 0 ? Outcome::empty() : Outcome::fail(ErrorKind::HttpMalformed));
      return;
    }
    if (errno == EAGAIN) {
      readable_ = false;
    }
  }
}

void Http80Handler::answerBadRequest() {
  status_ = 400;
  response_.assign(httpBadRequestResponse());
  std::string().swap(head_);
  phase_ = Phase::Write;
  write();
}

// A host of a passthrough or a gateway (HTTPS is all they serve), or of a site that says
// redirect_http = true.
bool Http80Handler::redirects(const ActiveConfig* config, const std::string& host) {
  if (host.empty() || config == nullptr || !config->table) {
    return false;
  }
  std::optional<RouteId> id = config->table->lookup(host);
  if (!id || *id >= config->routes.size() || !config->routes[*id]) {
    return false;
  }
  const SnapshotRoute& spec = config->routes[*id]->spec;
  return spec.kind != RouteKind::Site || spec.redirect_http;
}

void Http80Handler::answer(const http::RequestHead& req) {
  std::string host = redirectHost(req.host);
  conn().serverName() = host.empty() ? std::string(req.host) : host;
  std::shared_ptr<const ActiveConfig> config = ctx().currentConfig();
  // ACME HTTP-01 before any redirect: the CA follows redirects, but the answer must not
  // depend on the HTTPS side of a name whose certificate is being issued.
  std::optional<std::string> keyAuth;
  const AcmeChallengeBoard* board = ctx().options().acmeChallenges.get();
  if (board != nullptr && (req.method == "GET" || req.method == "HEAD")) {
    std::string_view token = acmeChallengeToken(req.originTarget);
    if (!token.empty()) {
      keyAuth = board->lookup(token);
    }
  }
  if (keyAuth) {
    status_ = 200;
    response_ = httpChallengeResponse(*keyAuth, req.method == "HEAD");
  } else if (redirects(config.get(), host) && req.targetForm != http::TargetForm::Asterisk) {
    status_ = 308;
    response_ = httpRedirectResponse(host, req.originTarget);
  } else {
    status_ = 404;
    response_.assign(httpNotFoundResponse());
  }
  std::string().swap(head_);
  phase_ = Phase::Write;
  write();
}

void Http80Handler::write() {
  while (sent_ < response_.size()) {
    if (!writable_) {
      return;
    }
    ssize_t n =
        ::send(conn().fd(), response_.data() + sent_, response_.size() - sent_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN) {
        writable_ = false;
        return;
      }
      conn().finish(outcome());
      return;
    }
    sent_ += static_cast<size_t>(n);
  }
  // Half-close and read what the client still sends until it closes: closing a socket with
  // unread bytes would RST it, and the RST can destroy the response before the client reads it.
  ::shutdown(conn().fd(), SHUT_WR);
  phase_ = Phase::Linger;
  ctx().schedule(this,
                 ctx().now() + std::min<int64_t>(kLingerMs, ctx().options().helloTimeout.count()));
  linger();
}

void Http80Handler::linger() {
  if (!readable_) {
    return;
  }
  if (drainReadable(conn().fd(), ctx().scratch(), lingered_, kLingerMaxBytes) ==
      Drained::WouldBlock) {
    readable_ = false;
    return;
  }
  conn().finish(outcome());
}

}  // namespace

std::unique_ptr<Protocol> makeHttp80Protocol(Context&) {
  return std::make_unique<Http80Protocol>();
}

}  // namespace edgeplane::proxy
