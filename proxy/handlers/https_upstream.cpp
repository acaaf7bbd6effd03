// The https handler's upstream side: backend choice, pooled and new connections, failover,
// the request body, the response, and upgraded (tunnelled) connections.
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "proxy/engine/listeners.h"
#include "proxy/handlers/https_handler.h"
#include "proxy/http/serialize.h"

namespace edgeplane::proxy {

namespace {

// Response bytes queued for the client below which more may join them (forwardResponseBody).
constexpr size_t kCoalesceBytes = size_t{16} * 1024;

// No more response bytes join the client's queue: a write of it has begun, or it is full.
bool backlogged(const OutQueue& q) {
  return q.sent != 0 || q.size() >= kCoalesceBytes;
}

// How moveChunked writes a chunked body on: as it came (a response: the backend's framing,
// trailers and all), re-framed (a request: the data in chunks of canonical sizes, no extensions,
// no trailers, so nothing the client wrote past the data reaches the backend), or only the data
// bytes (a response re-framed as until-close for an HTTP/1.0 client).
enum class ChunkOut : uint8_t { Verbatim, Reframed, DataOnly };

// Appends what a chunked body's next bytes hold up to the end of the body; false on a framing
// error. `done` is set at the end of the last chunk's trailers; `moved` counts the bytes read.
bool moveChunked(ByteBuffer& from, std::string& to, http::ChunkedDecoder& decoder, bool& done,
                 uint64_t& moved, ChunkOut out) {
  while (!from.empty() && !done) {
    std::span<const char> in = from.data();
    http::ChunkedDecoder::Step s = decoder.feed(in);
    if (s.status == http::ChunkedDecoder::Status::Error) {
      return false;
    }
    if (out == ChunkOut::Verbatim) {
      to.append(in.data(), s.consumed);
    } else if (s.dataLength > 0) {
      if (out == ChunkOut::Reframed) {
        char size[24];
        const auto end = std::to_chars(size, size + sizeof size, s.dataLength, 16).ptr;
        to.append(size, end).append("\r\n");
      }
      to.append(in.data() + s.dataOffset, s.dataLength);
      if (out == ChunkOut::Reframed) {
        to.append("\r\n");
      }
    }
    from.consume(s.consumed);
    moved += s.consumed;
    done = s.status == http::ChunkedDecoder::Status::Done;
    if (done && out == ChunkOut::Reframed) {
      to.append("0\r\n\r\n");
    }
    if (s.consumed == 0) {
      break;
    }
  }
  return true;
}

}  // namespace

bool HttpsHandler::backendUp(size_t index) {
  const auto& health = ex().verdict.choice.health;
  return index >= health.size() || !health[index] ||
         health[index]->up.load(std::memory_order_relaxed);
}

void HttpsHandler::chooseBackend() {
  const std::vector<Endpoint>& list = backends();
  auto n = static_cast<uint32_t>(list.size());
  bool anyUp = false;
  for (size_t i = 0; i < n && !anyUp; ++i) {
    anyUp = backendUp(i);
  }
  if (!anyUp) {
    answerError(503, "No healthy backends available\n");
    return;
  }
  if (ex().verdict.choice.balance == Balance::Random) {
    firstBackend_ = ctx().random() % n;
  } else {
    firstBackend_ = ex().verdict.choice.cursor->fetch_add(1, std::memory_order_relaxed) % n;
  }
  tried_ = 0;
  connectNext();
}

// The next healthy backend not tried yet: an idle pooled connection to it, else a new one.
void HttpsHandler::connectNext() {
  const std::vector<Endpoint>& list = backends();
  auto n = static_cast<uint32_t>(list.size());
  const std::string& netns = route_->spec.netns;
  while (tried_ < n) {
    auto index = static_cast<int>((firstBackend_ + tried_) % n);
    ++tried_;
    if (!backendUp(static_cast<size_t>(index))) {
      continue;
    }
    backend_ = index;
    const Endpoint& be = list[static_cast<size_t>(index)];
    attemptMs_ = ctx().now();
    upEof_ = false;
    upHup_ = false;
    upReadable_ = false;
    uin_.clear();
    uin_.acquire(protocol_.buffers_);
    uout_ = OutQueue{ex().headBytes, 0};
    link_ = protocol_.pool_.take(netns, be, this, kUpstreamTag);
    if (link_ != nullptr) {
      up_ = link_->fd();
      upReused_ = true;
      upConnecting_ = false;
      upWritable_ = true;
      return;
    }
    upReused_ = false;
    int fd = ctx().upstreamSocket(netns,
                                  be.address.family == IpAddress::Family::V4 ? AF_INET : AF_INET6);
    int rc = -1;
    if (fd >= 0) {
      setNoDelay(fd);
      sockaddr_storage ss{};
      socklen_t len = toSockaddr(be, ss);
      rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
      if (rc != 0 && errno != EINPROGRESS) {
        ::close(fd);
        fd = -1;
      }
    }
    link_ = fd >= 0 ? protocol_.pool_.adopt(netns, be, fd, this, kUpstreamTag) : nullptr;
    if (link_ == nullptr) {
      up_ = -1;
      upstreamFailed(true);
      return;
    }
    up_ = fd;
    upConnecting_ = rc != 0;
    upWritable_ = rc == 0;
    return;
  }
  answerError(502, "Bad Gateway\n");
}

void HttpsHandler::onConnectEvent(uint32_t events) {
  if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
    return;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(up_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    err = errno;
  }
  if (err != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
    upstreamFailed(true);
    return;
  }
  upConnecting_ = false;
  size_t index = static_cast<size_t>(backend_);
  if (index < ex().verdict.choice.health.size() && ex().verdict.choice.health[index]) {
    ex().verdict.choice.health[index]->connectSucceeded();
  }
}

// A backend attempt failed. Connect failures (nothing of the request sent) try the next
// backend; a reused pooled connection that failed before any response byte retries an
// idempotent request without a body; anything else is a 502 or, mid-response, the end.
void HttpsHandler::upstreamFailed(bool connectFailure) {
  if (connectFailure) {
    ctx().metrics().backendAttemptFailures.fetch_add(1, std::memory_order_relaxed);
    if (RouteStats* s = route_->stats.get()) {
      s->upstreamConnectErrors.fetch_add(1, std::memory_order_relaxed);
    }
    size_t index = static_cast<size_t>(backend_);
    if (index < ex().verdict.choice.health.size() && ex().verdict.choice.health[index]) {
      ex().verdict.choice.health[index]->connectFailed();
    }
    closeUpstream(false);
    connectNext();
    return;
  }
  bool retry = upReused_ && retryable_ && !respStarted_;
  closeUpstream(false);
  if (retry) {
    --tried_;  // the same backend again, on another pooled or a new connection
    connectNext();
    return;
  }
  if (!respStarted_) {
    answerError(502, "Bad Gateway\n");
    return;
  }
  logRequest(Outcome::fail(ErrorKind::Relay));
  conn().finish(Outcome::fail(ErrorKind::Relay));
}

void HttpsHandler::closeUpstream(bool reusable) {
  if (link_ == nullptr) {
    return;
  }
  protocol_.pool_.release(link_, reusable);
  link_ = nullptr;
  up_ = -1;
  upConnecting_ = false;
  upReadable_ = false;
  upWritable_ = false;
}

bool HttpsHandler::flushUpstream() {
  bool moved = false;
  while (up_ >= 0 && !upConnecting_ && upWritable_ && !uout_.empty()) {
    ssize_t n = ::send(up_, uout_.bytes.data() + uout_.sent, uout_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      uout_.sent += static_cast<size_t>(n);
      moved = true;
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      upWritable_ = false;
      break;
    }
    upstreamFailed(false);
    return false;
  }
  uout_.clearIfDone();
  return moved;
}

bool HttpsHandler::readUpstream() {
  bool moved = false;
  while (up_ >= 0 && !upConnecting_ && upReadable_ && !upEof_ && resp_ != Resp::Done) {
    if (uin_.room() == 0) {
      break;
    }
    size_t room = uin_.room();
    ssize_t n = ::recv(up_, uin_.tail(), room, 0);
    if (n > 0) {
      uin_.produced(static_cast<size_t>(n));
      respStarted_ = true;
      moved = true;
      if (static_cast<size_t>(n) < room && !upHup_) {
        upReadable_ = false;  // a short read emptied the socket: the next bytes bring an event
        break;
      }
      continue;
    }
    if (n == 0) {
      upEof_ = true;
      moved = true;
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN) {
      upReadable_ = false;
      break;
    }
    upstreamFailed(false);  // a reset: what was received already is still relayed
    return false;
  }
  return moved;
}

// Moves request body bytes to the upstream queue once the head (and the bytes before) went.
bool HttpsHandler::forwardRequestBody() {
  if (reqBodyDone_ || up_ < 0 || upConnecting_ || !uout_.empty()) {
    return false;
  }
  uint64_t moved = 0;
  if (reqFraming_ == http::BodyFraming::ContentLength) {
    size_t k = static_cast<size_t>(std::min<uint64_t>(cin_.size(), reqRemaining_));
    uout_.bytes.append(cin_.data().data(), k);
    cin_.consume(k);
    reqRemaining_ -= k;
    moved = k;
    reqBodyDone_ = reqRemaining_ == 0;
    if (reqBodyDone_) {
      sentMs_ = ctx().now();
    }
  } else if (moveChunked(cin_, uout_.bytes, ex().reqChunks, reqBodyDone_, moved,
                         ChunkOut::Reframed)) {
    if (reqBodyDone_) {
      sentMs_ = ctx().now();
    }
  } else {
    in_ += moved;
    if (respStarted_) {
      logRequest(Outcome::fail(ErrorKind::HttpMalformed));
      conn().finish(Outcome::fail(ErrorKind::HttpMalformed));
    } else {
      answerError(400, "Bad Request\n");
    }
    return true;
  }
  in_ += moved;
  if (!reqBodyDone_ && clientEof_ && cin_.empty()) {
    logRequest(Outcome::fail(ErrorKind::Relay));  // the client left mid-body
    conn().finish(Outcome::fail(ErrorKind::Relay));
    return false;
  }
  return moved > 0;
}

bool HttpsHandler::processResponse() {
  bool moved = false;
  if (resp_ == Resp::Head) {
    moved = responseHead();
  }
  if (state_ == State::Exchange && resp_ == Resp::Body) {
    moved |= forwardResponseBody();
  }
  if (state_ == State::Exchange && resp_ == Resp::Done && cout_.empty() && !conn().finished()) {
    completeExchange();
    return true;
  }
  return moved;
}

bool HttpsHandler::responseHead() {
  if (uin_.empty()) {
    if (upEof_) {
      upstreamFailed(false);  // closed without a byte of response
      return true;
    }
    return false;
  }
  http::Limits limits;
  http::ParseResult r = http::parseResponseHead(uin_.data(), ex().respHead, limits, method_);
  if (r.status == http::ParseStatus::NeedMore) {
    if (upEof_ || uin_.room() == 0) {
      answerError(502, "Bad Gateway\n");
      return true;
    }
    return false;
  }
  if (r.status == http::ParseStatus::Error) {
    answerError(502, "Bad Gateway\n");
    return true;
  }
  int status = ex().respHead.status;
  if (status == 101 && !upgrade_) {
    answerError(502, "Bad Gateway\n");
    return true;
  }
  if (status < 200 && status != 101) {  // 100 Continue and friends
    if (!http10_) {  // RFC 9110 15.2: an HTTP/1.0 client would take it for the final answer
      if (backlogged(cout_)) {
        return false;  // only as fast as the client takes them: they may come without end
      }
      http::writeClientResponse(ex().respHead, {}, cout_.bytes);
    }
    uin_.consume(r.length);
    return true;
  }
  status_ = status;
  respFraming_ = ex().respHead.framing;
  respRemaining_ = ex().respHead.contentLength;
  ex().respChunks.reset();
  // An HTTP/1.0 client cannot read chunked: it gets the data bytes until we close.
  dechunk_ = http10_ && respFraming_ == http::BodyFraming::Chunked;
  respClose_ = closeAfter_ || ctx().draining() || !reqKeepAlive_ || !reqBodyDone_ ||
               respFraming_ == http::BodyFraming::UntilClose || dechunk_;
  http::ClientResponseOptions options;
  options.close = respClose_;
  options.forwardUpgrade = status == 101;
  if (dechunk_) {
    ex().respHead.framing = http::BodyFraming::UntilClose;
  }
  http::writeClientResponse(ex().respHead, options, cout_.bytes);
  uin_.consume(r.length);
  if (status == 101) {
    if (RouteStats* s = route_->stats.get()) {
      s->observeRequest(status, ctx().now() - stateSinceMs_);
    }
    state_ = State::Tunnel;
    resp_ = Resp::Body;
    reqBodyDone_ = true;
    return true;
  }
  bool empty = respFraming_ == http::BodyFraming::None ||
               (respFraming_ == http::BodyFraming::ContentLength && respRemaining_ == 0);
  resp_ = empty ? Resp::Done : Resp::Body;
  return true;
}

bool HttpsHandler::forwardResponseBody() {
  // Bytes join those waiting for the client only while none of them has left yet and they are
  // few: a head and a small body then leave in one TLS record and one send() (two would cost
  // the client, the proxy and the kernel a second segment, wake-up and read per response).
  // Once a write has begun, the queue drains first, so it never grows past this plus a read.
  if (backlogged(cout_)) {
    return false;
  }
  uint64_t moved = 0;
  bool done = false;
  switch (respFraming_) {
    case http::BodyFraming::ContentLength: {
      size_t k = static_cast<size_t>(std::min<uint64_t>(uin_.size(), respRemaining_));
      cout_.bytes.append(uin_.data().data(), k);
      uin_.consume(k);
      respRemaining_ -= k;
      moved = k;
      done = respRemaining_ == 0;
      break;
    }
    case http::BodyFraming::Chunked:
      if (!moveChunked(uin_, cout_.bytes, ex().respChunks, done, moved,
                       dechunk_ ? ChunkOut::DataOnly : ChunkOut::Verbatim)) {
        logRequest(Outcome::fail(ErrorKind::Relay));
        conn().finish(Outcome::fail(ErrorKind::Relay));
        return false;
      }
      break;
    case http::BodyFraming::UntilClose:
      moved = uin_.size();
      cout_.bytes.append(uin_.data().data(), uin_.size());
      uin_.clear();
      done = upEof_;
      break;
    case http::BodyFraming::None:
      done = true;
      break;
  }
  if (done) {
    resp_ = Resp::Done;
  } else if (upEof_ && uin_.empty()) {
    logRequest(Outcome::fail(ErrorKind::Relay));  // the backend cut the body short
    conn().finish(Outcome::fail(ErrorKind::Relay));
    return false;
  }
  return moved > 0 || done;
}

// After a 101: raw bytes both ways (TLS to the client, plain to the backend) until one ends.
bool HttpsHandler::tunnel() {
  bool moved = false;
  if (uout_.empty() && !cin_.empty()) {
    in_ += cin_.size();
    uout_.bytes.append(cin_.data().data(), cin_.size());
    cin_.clear();
    moved = true;
  }
  moved |= flushUpstream();
  if (conn().finished()) {
    return false;
  }
  moved |= readUpstream();
  if (conn().finished()) {
    return false;
  }
  if (cout_.empty() && !uin_.empty()) {
    cout_.bytes.append(uin_.data().data(), uin_.size());
    uin_.clear();
    moved = true;
  }
  bool clientDone = clientEof_ && cin_.empty() && uout_.empty();
  bool upstreamDone = upEof_ && uin_.empty() && cout_.empty();
  if (clientDone || upstreamDone) {
    closeOutcome_ = Outcome::ok();
    startClosing();
    return true;
  }
  return moved;
}

}  // namespace edgeplane::proxy
