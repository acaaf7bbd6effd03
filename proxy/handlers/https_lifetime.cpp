// The https handler's connection lifetime: each state's deadline, the timer, the recheck of a
// long exchange's credential, draining, and the close (close_notify, FIN, lingering reads).
#include <sys/socket.h>

#include <algorithm>

#include "proxy/engine/access_log.h"
#include "proxy/handlers/https_handler.h"
#include "proxy/handlers/linger.h"

namespace edgeplane::proxy {

namespace {

constexpr int64_t kLingerMs = 1000;
constexpr size_t kLingerMaxBytes = size_t{256} * 1024;

}  // namespace

// close_notify (best effort), our FIN, then read what the client still sends until it closes:
// closing with unread bytes would reset the connection and could destroy the answer.
void HttpsHandler::startClosing() {
  logRequest(closeOutcome_);
  closeUpstream(false);
  tls_->shutdown();
  ::shutdown(conn().fd(), SHUT_WR);
  state_ = State::Linger;
  stateSinceMs_ = ctx().now();
  clientReadable_ = true;
}

bool HttpsHandler::linger() {
  size_t total = 0;  // per wake-up; the linger's deadline bounds the whole
  if (clientReadable_ &&
      drainReadable(conn().fd(), ctx().scratch(), total, kLingerMaxBytes) == Drained::WouldBlock) {
    clientReadable_ = false;
    return false;
  }
  conn().finish(closeOutcome_);
  return false;
}

// The deadline of the state itself (timeouts), without the admission check.
int64_t HttpsHandler::stateDeadline() {
  const EngineOptions& o = ctx().options();
  int64_t deadline = 0;
  switch (state_) {
    case State::Handshake:
      deadline = conn().startMs() + o.helloTimeout.count();
      break;
    case State::Idle:
      deadline = stateSinceMs_ + o.keepAliveTimeout.count();
      if (closeAfter_) {
        deadline = std::min(deadline, drainSinceMs_ + kDrainIdleGraceMs);
      }
      break;
    case State::Head:
      deadline = stateSinceMs_ + o.headerTimeout.count();
      break;
    case State::Exchange:
      if (upConnecting_) {
        deadline = attemptMs_ + o.connectTimeout.count();
      } else if (resp_ == Resp::Head && reqBodyDone_) {
        deadline = std::max(attemptMs_, sentMs_) + o.responseTimeout.count();
      } else {
        deadline = lastActivityMs_ + o.idleTimeout.count();
      }
      break;
    case State::Tunnel:
      deadline = lastActivityMs_ + o.idleTimeout.count();
      break;
    case State::Closing:
    case State::Linger:
      deadline = stateSinceMs_ + kLingerMs;
      break;
  }
  return deadline;
}

void HttpsHandler::armTimer() {
  const int64_t deadline = stateDeadline();
  ctx().schedule(this, admissionChecked() ? std::min(deadline, admissionCheckMs_) : deadline);
}

// A request the filter let through, while its exchange or tunnel lasts: a streamed response or
// body, or a WebSocket, can go on for as long as both ends like.
bool HttpsHandler::admissionChecked() const {
  return protocol_.filter_ != nullptr && (state_ == State::Exchange || state_ == State::Tunnel) &&
         ex_ != nullptr && ex_->verdict.status == 0;
}

// The credential checked again against the config published last (onTimer calls it once
// kAdmissionRecheckMs has passed since the last check): a key revoked meanwhile ends the
// connection (the filter logs why). False when it ended.
bool HttpsHandler::stillAdmitted() {
  admissionCheckMs_ = ctx().now() + kAdmissionRecheckMs;
  std::shared_ptr<const ActiveConfig> config = ctx().currentConfig();
  if (config != nullptr && protocol_.filter_->stillAdmits(ex().verdict, *config, conn().client())) {
    return true;
  }
  closeOutcome_ = Outcome::revoked();  // ended by policy, not a failure
  startClosing();
  return false;
}

void HttpsHandler::onTimer() {
  if (admissionChecked() && ctx().now() >= admissionCheckMs_) {
    if (!stillAdmitted() || ctx().now() < stateDeadline()) {
      pump();  // closing, or only the check was due
      return;
    }
  }
  switch (state_) {
    case State::Handshake:
      conn().finish(Outcome::fail(ErrorKind::TlsHandshake));
      return;
    case State::Idle:
      startClosing();
      break;
    case State::Head:
      method_ = '-';  // as a string literal, GCC 12 warns wrongly (-Wrestrict)
      answerError(408, "");
      break;
    case State::Exchange:
      if (upConnecting_) {
        upstreamFailed(true);
      } else if (resp_ == Resp::Head && reqBodyDone_ && !respStarted_) {
        answerError(504, "Gateway Timeout\n");
      } else if (ctx().now() < lastActivityMs_ + ctx().options().idleTimeout.count()) {
        break;  // bytes moved since the timer was set: pump() re-arms it
      } else {
        logRequest(Outcome::fail(ErrorKind::IdleTimeout));
        conn().finish(Outcome::fail(ErrorKind::IdleTimeout));
        return;
      }
      break;
    case State::Tunnel:
      conn().finish(Outcome::fail(ErrorKind::IdleTimeout));
      return;
    case State::Closing:
    case State::Linger:
      conn().finish(closeOutcome_);
      return;
  }
  pump();
}

// A busy connection ends after its exchange (the response says Connection: close); an idle one
// after kDrainIdleGraceMs, unless a request arrives first.
void HttpsHandler::onDrain() {
  closeAfter_ = true;
  drainSinceMs_ = ctx().now();
  if (state_ == State::Idle) {
    armTimer();
  }
}

void HttpsHandler::onClose(Outcome outcome) {
  logRequest(outcome);
  closeUpstream(false);
  if (!anyRequest_ && outcome.kind == Outcome::Error) {
    logConnection(conn(), nullptr, 0, 0, outcome);
  }
  tls_.reset();
  cin_.release(protocol_.buffers_);
  uin_.release(protocol_.buffers_);
}

}  // namespace edgeplane::proxy
