// The https handler's client side: TLS, request heads, routing by Host, errors, the log
// (its timers and closing: https_lifetime.cpp; its upstream side: https_upstream.cpp).
#include "proxy/handlers/https.h"

#include <sys/epoll.h>

#include <cctype>
#include <cstdio>
#include <cstring>

#include "proxy/engine/access_log.h"
#include "proxy/handlers/https_handler.h"
#include "proxy/http/serialize.h"
#include "proxy/http/syntax.h"
#include "proxy/tls/context.h"

namespace edgeplane::proxy {

namespace {

using Io = tls::ServerStream::Io;

constexpr int kPumpBudget = 16;  // steps per turn

// How a connection that answered `status` and closed counts.
Outcome errorOutcome(int status) {
  switch (status) {
    case 408:
      return Outcome::fail(ErrorKind::IdleTimeout);
    case 421:
      return Outcome::fail(ErrorKind::NoRoute);
    case 502:
    case 503:
      return Outcome::fail(ErrorKind::UpstreamConnect);
    case 504:
      return Outcome::fail(ErrorKind::UpstreamTimeout);
    default:
      return Outcome::fail(ErrorKind::HttpMalformed);  // the codec's refusals
  }
}

bool isIdempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

}  // namespace

size_t ByteBuffer::room() {
  if (!bytes_) {
    return 0;
  }
  if (begin_ > 0 && (begin_ == end_ || end_ == BufferCache::kBufferBytes)) {
    std::memmove(bytes_.get(), bytes_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  return BufferCache::kBufferBytes - end_;
}

void ByteBuffer::consume(size_t n) {
  begin_ += n;
  if (begin_ == end_) {
    begin_ = end_ = 0;
  }
}

std::unique_ptr<Handler> HttpsProtocol::create(Connection& conn) {
  return std::make_unique<HttpsHandler>(conn, *this);
}

std::unique_ptr<Protocol> makeHttpsProtocol(Context& ctx, std::unique_ptr<RequestFilter> filter) {
  return std::make_unique<HttpsProtocol>(ctx, std::move(filter));
}

void HttpsHandler::start() {
  const ActiveRoute* route = conn().route();
  const std::shared_ptr<const ActiveConfig>& config = conn().config();
  SSL_CTX* sslCtx = nullptr;
  if (route->spec.certificate && config->tls) {
    certName_ = *route->spec.certificate;
    sslCtx = config->tls->find(certName_);
  }
  if (sslCtx == nullptr) {
    conn().finish(Outcome::fail(ErrorKind::TlsCertificate));
    return;
  }
  tls_ = tls::ServerStream::create(sslCtx, conn().fd(), std::move(conn().hello()));
  if (!tls_) {
    conn().finish(Outcome::fail(ErrorKind::TlsHandshake));
    return;
  }
  clientReadable_ = conn().readable();
  clientWritable_ = conn().writable();
  stateSinceMs_ = conn().startMs();
  lastActivityMs_ = ctx().now();
  pump();
}

void HttpsHandler::onIo(uint32_t tag, uint32_t events) {
  bool readable = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  bool writable = (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
  bool hup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  if (tag == kClientTag) {
    if (readable && tls_) {
      tls_->readable(hup);
    }
    clientReadable_ |= readable;
    clientWritable_ |= writable;
  } else {
    if (upConnecting_) {
      onConnectEvent(events);
      if (conn().finished()) {
        return;
      }
    }
    upReadable_ |= readable;
    upHup_ = upHup_ || hup;
    upWritable_ |= writable;
  }
  pump();
}

// Steps until nothing moves; a busy connection yields after kPumpBudget steps.
void HttpsHandler::pump() {
  for (int i = 0; i < kPumpBudget; ++i) {
    if (conn().finished()) {
      return;
    }
    if (!step()) {
      if (!conn().finished()) {
        armTimer();
      }
      return;
    }
    lastActivityMs_ = ctx().now();
  }
  if (!conn().finished()) {
    armTimer();
    ctx().markReady(this);
  }
}

// One round over both sides; true if anything moved.
bool HttpsHandler::step() {
  switch (state_) {
    case State::Handshake:
      return handshake();
    case State::Linger:
      return linger();
    default:
      break;
  }
  bool moved = flushClient();
  if (conn().finished()) {
    return false;
  }
  if (state_ == State::Closing) {
    if (cout_.empty()) {
      startClosing();
      return true;
    }
    return moved;
  }
  moved |= readClient();
  if (conn().finished()) {
    return false;
  }
  switch (state_) {
    case State::Idle:
      moved |= processIdle();
      break;
    case State::Head:
      moved |= processHead();
      break;
    case State::Exchange:
      moved |= forwardRequestBody();
      if (!conn().finished() && state_ == State::Exchange) {
        moved |= flushUpstream();
      }
      if (!conn().finished() && state_ == State::Exchange) {
        moved |= readUpstream();
      }
      if (!conn().finished() && state_ == State::Exchange) {
        moved |= processResponse();
      }
      break;
    case State::Tunnel:
      moved |= tunnel();
      break;
    default:
      break;
  }
  return moved && !conn().finished();
}

bool HttpsHandler::handshake() {
  switch (tls_->handshake()) {
    case Io::Ok:
      state_ = State::Idle;
      stateSinceMs_ = ctx().now();
      return true;
    case Io::WantRead:
      clientReadable_ = false;
      return false;
    case Io::WantWrite:
      clientWritable_ = false;
      return false;
    case Io::Eof:
    case Io::Error:
      break;
  }
  conn().finish(Outcome::fail(ErrorKind::TlsHandshake));
  return false;
}

bool HttpsHandler::flushClient() {
  bool moved = false;
  while (!cout_.empty() && clientWritable_) {
    size_t n = 0;
    Io r = tls_->write(reinterpret_cast<const uint8_t*>(cout_.bytes.data() + cout_.sent),
                       cout_.size(), &n);
    if (r == Io::Ok) {
      cout_.sent += n;
      out_ += n;
      moved = true;
      continue;
    }
    if (r == Io::WantWrite) {
      clientWritable_ = false;
    } else if (r == Io::WantRead) {
      clientReadable_ = false;
    } else {
      logRequest(Outcome::fail(ErrorKind::Relay));
      conn().finish(Outcome::fail(ErrorKind::Relay));
      return false;
    }
    break;
  }
  cout_.clearIfDone();
  return moved;
}

bool HttpsHandler::wantClientBytes() {
  switch (state_) {
    case State::Idle:
    case State::Head:
    case State::Tunnel:
      return true;
    case State::Exchange:
      return !reqBodyDone_;
    default:
      return false;
  }
}

bool HttpsHandler::readClient() {
  bool moved = false;
  while (!clientEof_ && wantClientBytes() && (clientReadable_ || tls_->pending() > 0)) {
    cin_.acquire(protocol_.buffers_);
    size_t room = cin_.room();
    if (room == 0) {
      break;
    }
    size_t n = 0;
    Io r = tls_->read(reinterpret_cast<uint8_t*>(cin_.tail()), room, &n);
    if (r == Io::Ok) {
      cin_.produced(n);
      moved = true;
      continue;
    }
    if (r == Io::WantRead) {
      clientReadable_ = false;
    } else if (r == Io::WantWrite) {
      clientWritable_ = false;
    } else {
      clientEof_ = true;  // Eof, or an error: no more client bytes either way
      moved = true;
    }
    break;
  }
  return moved;
}

bool HttpsHandler::processIdle() {
  if (!cin_.empty()) {
    state_ = State::Head;
    stateSinceMs_ = ctx().now();
    return true;
  }
  if (clientEof_ || (closeAfter_ && ctx().now() >= drainSinceMs_ + kDrainIdleGraceMs)) {
    startClosing();  // the client ended its keep-alive connection, or the drain grace is over
    return true;
  }
  return false;
}

bool HttpsHandler::processHead() {
  http::Limits limits;
  http::ParseResult r = http::parseRequestHead(cin_.data(), ex().req, limits);
  if (r.status == http::ParseStatus::NeedMore) {
    if (clientEof_) {
      closeOutcome_ = Outcome::fail(ErrorKind::HttpMalformed);
      startClosing();
      return true;
    }
    return false;
  }
  if (r.status == http::ParseStatus::Error) {
    in_ = cin_.size();
    method_ = "-";  // logged without a method, host or path: the head is not trusted
    host_.clear();
    path_.clear();
    answerError(r.code, r.reason);
    return true;
  }
  startRequest(r.length);
  return true;
}

// The head is complete: route it, filter it, forward it.
void HttpsHandler::startRequest(size_t headLength) {
  anyRequest_ = true;
  method_.assign(ex().req.method);
  host_.assign(ex().req.host);
  path_.assign(ex().req.path);
  in_ = headLength;
  out_ = 0;
  reqConfig_ = ctx().currentConfig();
  route_ = resolveHost(reqConfig_);
  if (route_ == nullptr) {
    answerError(421, "Misdirected Request\n");
    return;
  }
  ex().verdict.reset();
  ex().verdict.choice =
      BackendChoice{&route_->spec.backends, route_->health, &route_->cursor, route_->spec.balance};
  if (protocol_.filter_ != nullptr) {
    filterPending_ = true;
    protocol_.filter_->check(ex().req, *reqConfig_, *route_, conn().client(), ex().verdict);
    if (ex().verdict.status != 0) {
      answerError(ex().verdict.status, ex().verdict.body);
      closeOutcome_ = Outcome::ok();  // an answer by policy, not a failure
      return;
    }
    admissionCheckMs_ = ctx().now() + kAdmissionRecheckMs;
  }
  reqFraming_ = ex().req.framing;
  reqRemaining_ = ex().req.framing == http::BodyFraming::ContentLength ? ex().req.contentLength : 0;
  reqBodyDone_ = reqFraming_ == http::BodyFraming::None ||
                 (reqFraming_ == http::BodyFraming::ContentLength && reqRemaining_ == 0);
  ex().reqChunks.reset();
  sentMs_ = ctx().now();
  reqKeepAlive_ = ex().req.keepAlive;
  http10_ = ex().req.version == http::Version::Http10;
  // WebSocket only: after a 101 the proxy relays raw bytes, and another protocol there (h2c)
  // would carry requests no per-request check sees. Any other Upgrade is dropped (hop-by-hop).
  upgrade_ = http::equalsIgnoreCase(ex().req.upgrade, "websocket");
  retryable_ = isIdempotent(method_) && reqFraming_ == http::BodyFraming::None && !upgrade_;
  char ip[64];
  formatEndpoint(conn().client(), ip, sizeof ip);
  std::string_view clientIp(ip);
  clientIp = clientIp.substr(0, clientIp.rfind(':'));
  if (clientIp.size() >= 2 && clientIp.front() == '[') {
    clientIp = clientIp.substr(1, clientIp.size() - 2);
  }
  http::UpstreamRequestOptions options;
  options.clientIp = clientIp;
  options.forwardUpgrade = upgrade_;
  options.dropHeaders = ex().verdict.drop;
  options.addHeaders =
      std::span<const http::HeaderField>(ex().verdict.add.data(), ex().verdict.addCount);
  ex().headBytes.clear();
  http::writeUpstreamRequest(ex().req, options, ex().headBytes);
  cin_.consume(headLength);  // ex().req's views die here
  state_ = State::Exchange;
  stateSinceMs_ = ctx().now();
  resp_ = Resp::Head;
  respStarted_ = false;
  status_ = 0;
  tried_ = 0;
  chooseBackend();
}

// The route for the request's Host: a site or gateway in `config` whose certificate is the
// one this connection was terminated with; else null (421).
const ActiveRoute* HttpsHandler::resolveHost(const std::shared_ptr<const ActiveConfig>& config) {
  if (!config || !config->table) {
    return nullptr;
  }
  std::string_view host = host_;
  if (host.empty() || host.front() == '[') {
    return nullptr;  // IP literals name no route
  }
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  std::optional<RouteId> id = config->table->lookup(host);
  if (!id || *id >= config->routes.size() || !config->routes[*id]) {
    return nullptr;
  }
  const ActiveRoute* route = config->routes[*id].get();
  // Same certificate and same kind as the route the SNI chose: a site's connection never
  // reaches a gateway's backends (nor a passthrough's).
  const ActiveRoute* chosen = conn().route();
  if (chosen == nullptr || route->spec.kind != chosen->spec.kind ||
      route->spec.certificate != certName_) {
    return nullptr;
  }
  return route;
}

// A complete error answer, then the connection ends.
void HttpsHandler::answerError(int status, std::string_view body) {
  status_ = status;
  std::string text;
  if (body.empty()) {
    text.assign(http::reasonPhrase(status)).push_back('\n');
    body = text;
  }
  std::string json;
  if (ex().verdict.jsonErrors && status >= 500) {
    json.assign(R"({"error":")");
    for (char c : http::reasonPhrase(status)) {
      json.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    if (status == 503) {
      json.assign(R"({"error":"no healthy backends available)");
    }
    json.append("\"}\n");
    body = json;
    ex().verdict.headers.clear();
    ex().verdict.headers.emplace_back("Content-Type", "application/json");
  }
  std::vector<http::HeaderField> extra;
  if (!ex().verdict.headers.empty()) {
    extra.reserve(ex().verdict.headers.size());
    for (const auto& [name, value] : ex().verdict.headers) {
      extra.push_back(http::HeaderField{name, value});
    }
  }
  http::writeSimpleResponse(status, body, true, extra, cout_.bytes);
  if (route_ != nullptr && route_->stats) {
    route_->stats->observeRequest(status, ctx().now() - stateSinceMs_);
  }
  closeOutcome_ = errorOutcome(status);
  closeUpstream(false);
  state_ = State::Closing;
  stateSinceMs_ = ctx().now();
}

// The request's line; only once per request.
void HttpsHandler::logRequest(Outcome outcome) {
  filterFinished();
  if (method_.empty() || !ctx().options().accessLog) {
    method_.clear();
    return;
  }
  char client[64];
  formatEndpoint(conn().client(), client, sizeof client);
  char backend[64] = "-";
  if (route_ != nullptr && backend_ >= 0) {
    formatEndpoint(backends()[static_cast<size_t>(backend_)], backend, sizeof backend);
  }
  std::string_view kind = route_ != nullptr ? toString(route_->spec.kind) : "";
  std::string_view name = route_ != nullptr ? std::string_view(route_->spec.name) : "-";
  std::string_view result = outcomeName(outcome);
  char line[kMaxLogLine];
  int n = std::snprintf(
      line, sizeof line,
      "access-https client=%s host=%s method=%s path=%s status=%d in=%llu out=%llu ms=%lld "
      "route=\"%.*s%s%.*s\" backend=%s outcome=%.*s\n",
      client, host_.empty() ? "-" : host_.c_str(), method_.c_str(),
      path_.empty() ? "-" : path_.c_str(), status_, static_cast<unsigned long long>(in_),
      static_cast<unsigned long long>(out_), static_cast<long long>(ctx().now() - stateSinceMs_),
      static_cast<int>(kind.size()), kind.data(), kind.empty() ? "" : " ",
      static_cast<int>(name.size()), name.data(), backend, static_cast<int>(result.size()),
      result.data());
  writeLogLine(ctx(), line, sizeof line, n);
  method_.clear();
}

void HttpsHandler::filterFinished() {
  if (filterPending_) {
    filterPending_ = false;
    protocol_.filter_->finished(ex().verdict, conn().client(), status_);
  }
}

// The response went out completely (and the request came in completely): next request, or
// the end of the connection.
void HttpsHandler::completeExchange() {
  Metrics& m = ctx().metrics();
  m.bytesIn.fetch_add(in_, std::memory_order_relaxed);
  m.bytesOut.fetch_add(out_, std::memory_order_relaxed);
  if (RouteStats* s = route_->stats.get()) {
    s->bytesIn.fetch_add(in_, std::memory_order_relaxed);
    s->bytesOut.fetch_add(out_, std::memory_order_relaxed);
    s->observeRequest(status_, ctx().now() - stateSinceMs_);
  }
  logRequest(Outcome::ok());
  // Reused only when both messages are whole: a backend that answered before the request's body
  // was all sent (a 404, a redirect) still expects the rest, and would take the next request's
  // bytes for it.
  bool reusable = ex().respHead.keepAlive && respFraming_ != http::BodyFraming::UntilClose &&
                  reqBodyDone_ && uout_.empty() && uin_.empty() && !upEof_;
  closeUpstream(reusable);
  if (respClose_) {
    startClosing();
    return;
  }
  resetRequest();
  state_ = State::Idle;
  stateSinceMs_ = ctx().now();
  releaseIdleMemory();
}

// Between requests a connection keeps no buffer it does not need (the next request's bytes
// may already be in cin_: pipelining). resetRequest() dropped the heads that pointed into them.
void HttpsHandler::releaseIdleMemory() {
  if (cin_.empty()) {
    cin_.release(protocol_.buffers_);
  }
  if (cout_.empty()) {
    cout_.release();
  }
  uin_.release(protocol_.buffers_);
  uout_.release();
}

void HttpsHandler::resetRequest() {
  ex_.reset();  // the heads, the decoders, the verdict and the kept upstream head
  reqConfig_.reset();
  route_ = nullptr;
  backend_ = -1;
  in_ = out_ = 0;
  status_ = 0;
  uin_.clear();
  uout_.release();
}

}  // namespace edgeplane::proxy
