// The TLS-ALPN-01 responder (see acme_tls_alpn.h).
#include "proxy/handlers/acme_tls_alpn.h"

#include <sys/epoll.h>

#include <map>
#include <string>
#include <utility>

#include "proxy/engine/access_log.h"
#include "proxy/tls/acme_alpn.h"
#include "proxy/tls/stream.h"

namespace edgeplane::proxy {

namespace {

using Io = tls::ServerStream::Io;

class AcmeTlsAlpnHandler final : public Handler {
 public:
  AcmeTlsAlpnHandler(Connection& conn, SSL_CTX* sslCtx) : Handler(conn), sslCtx_(sslCtx) {}

  void start() override {
    tls_ = tls::ServerStream::create(sslCtx_, conn().fd(), std::move(conn().hello()));
    if (!tls_) {
      conn().finish(Outcome::fail(ErrorKind::TlsHandshake));
      return;
    }
    ctx().schedule(this, conn().startMs() + ctx().options().helloTimeout.count());
    pump();
  }

  void onIo(uint32_t /*tag*/, uint32_t events) override {
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
      tls_->readable((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
    }
    pump();
  }

  void onTimer() override { conn().finish(Outcome::fail(ErrorKind::TlsHandshake)); }

  void onClose(Outcome outcome) override { logConnection(conn(), "acme-tls/1", 0, 0, outcome); }

 private:
  // Handshake, then close_notify, then the end: the CA has seen the certificate.
  void pump() {
    if (!done_) {
      Io r = tls_->handshake();
      if (r == Io::WantRead || r == Io::WantWrite) {
        return;
      }
      if (r != Io::Ok) {
        conn().finish(Outcome::fail(ErrorKind::TlsHandshake));
        return;
      }
      done_ = true;
    }
    Io r = tls_->shutdown();
    if (r == Io::WantWrite) {
      return;
    }
    conn().finish(Outcome::ok());
  }

  SSL_CTX* sslCtx_;  // the Protocol's; the stream holds its own reference
  std::unique_ptr<tls::ServerStream> tls_;
  bool done_ = false;
};

class AcmeTlsAlpnProtocol final : public Protocol {
 public:
  explicit AcmeTlsAlpnProtocol(Context& ctx) : board_(ctx.options().acmeChallenges) {}

  std::unique_ptr<Handler> create(Connection& conn) override {
    std::optional<std::string> keyAuth =
        board_ ? board_->lookupTlsAlpn(conn.serverName()) : std::nullopt;
    if (!keyAuth) {
      return nullptr;  // withdrawn meanwhile
    }
    auto it = contexts_.find(conn.serverName());
    if (it == contexts_.end() || it->second.first != *keyAuth) {
      auto made = tls::acmeTlsAlpnContext(conn.serverName(), *keyAuth);
      if (!made) {
        return nullptr;
      }
      it = contexts_
               .insert_or_assign(conn.serverName(),
                                 std::make_pair(std::move(*keyAuth), std::move(*made)))
               .first;
    }
    return std::make_unique<AcmeTlsAlpnHandler>(conn, it->second.second.get());
  }

  // Contexts of challenges no longer pending go (a live stream keeps its own reference). No
  // virtual call: this also runs while the process is out of fds, where UBSan's vptr check
  // cannot probe memory and calls every object invalid.
  void sweep() override {
    for (auto it = contexts_.begin(); it != contexts_.end();) {
      it = board_ && board_->hasTlsAlpn(it->first) ? std::next(it) : contexts_.erase(it);
    }
  }

 private:
  std::shared_ptr<const AcmeChallengeBoard> board_;
  std::map<std::string, std::pair<std::string, tls::SslCtxPtr>, std::less<>> contexts_;
};

}  // namespace

std::unique_ptr<Protocol> makeAcmeTlsAlpnProtocol(Context& ctx) {
  return std::make_unique<AcmeTlsAlpnProtocol>(ctx);
}

}  // namespace edgeplane::proxy
