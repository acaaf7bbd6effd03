// ServerStream: OpenSSL over a replay-then-socket BIO, mapped to the event loop's Io results.
#include "proxy/tls/stream.h"

#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

namespace edgeplane::proxy::tls {

namespace {

using Transport = ServerStream::Transport;

Transport* transportOf(BIO* bio) {
  return static_cast<Transport*>(BIO_get_data(bio));
}

int bioRead(BIO* bio, char* data, size_t len, size_t* done) {
  BIO_clear_retry_flags(bio);
  Transport* t = transportOf(bio);
  *done = 0;
  if (len == 0) {
    return 0;
  }
  if (t->replayOffset < t->replay.size()) {
    size_t take = std::min(len, t->replay.size() - t->replayOffset);
    std::memcpy(data, t->replay.data() + t->replayOffset, take);
    t->replayOffset += take;
    if (t->replayOffset == t->replay.size()) {
      // Up to 16 KiB per connection for the rest of its life otherwise.
      std::vector<uint8_t>().swap(t->replay);
      t->replayOffset = 0;
    }
    *done = take;
    return 1;
  }
  if (t->drained) {  // a short read emptied the socket; the next edge clears this
    BIO_set_retry_read(bio);
    return 0;
  }
  while (true) {
    ssize_t n = ::recv(t->fd, data, len, 0);
    if (n > 0) {
      *done = static_cast<size_t>(n);
      // A stream socket returns all it holds: a short read saves the recv() that would only
      // say EAGAIN (with edge-triggered epoll the next bytes bring a new event).
      t->drained = static_cast<size_t>(n) < len && !t->hup;
      return 1;
    }
    if (n == 0) {
      t->sawFin = true;
      return 0;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_read(bio);
      return 0;
    }
    t->lastErrno = errno;
    return 0;
  }
}

int bioWrite(BIO* bio, const char* data, size_t len, size_t* done) {
  BIO_clear_retry_flags(bio);
  Transport* t = transportOf(bio);
  *done = 0;
  while (true) {
    ssize_t n = ::send(t->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) {
      *done = static_cast<size_t>(n);
      return 1;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_write(bio);
      return 0;
    }
    t->lastErrno = errno;
    return 0;
  }
}

long bioCtrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // send() has no buffer of ours to flush
    case BIO_CTRL_EOF:
      return transportOf(bio)->sawFin ? 1 : 0;
    default:
      return 0;
  }
}

int bioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

int bioDestroy(BIO* bio) {
  BIO_set_data(bio, nullptr);  // the Transport belongs to the ServerStream
  return 1;
}

// One method for the process, made on first use and never freed (it is a table of pointers).
BIO_METHOD* replaySocketMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "edgeplane replay+socket");
    if (m != nullptr) {
      BIO_meth_set_read_ex(m, bioRead);
      BIO_meth_set_write_ex(m, bioWrite);
      BIO_meth_set_ctrl(m, bioCtrl);
      BIO_meth_set_create(m, bioCreate);
      BIO_meth_set_destroy(m, bioDestroy);
    }
    return m;
  }();
  return method;
}

// The thread's OpenSSL error queue as text ("error:0A00010B:SSL routines::wrong version
// number"); these strings name a library, function and reason, never data.
std::string drainErrors() {
  std::string out;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    out += out.empty() ? "" : "; ";
    out += text;
  }
  return out;
}

}  // namespace

std::unique_ptr<ServerStream> ServerStream::create(SSL_CTX* ctx, int fd,
                                                   std::vector<uint8_t> replay) {
  BIO_METHOD* method = replaySocketMethod();
  if (ctx == nullptr || method == nullptr) {
    return nullptr;
  }
  std::unique_ptr<ServerStream> stream(new ServerStream());
  stream->transport_.fd = fd;
  stream->transport_.replay = std::move(replay);
  stream->ssl_ = SSL_new(ctx);
  if (stream->ssl_ == nullptr) {
    return nullptr;
  }
  BIO* bio = BIO_new(method);
  if (bio == nullptr) {
    return nullptr;
  }
  BIO_set_data(bio, &stream->transport_);
  SSL_set_bio(stream->ssl_, bio, bio);  // one reference, owned by the SSL
  SSL_set_accept_state(stream->ssl_);
  SSL_set_read_ahead(stream->ssl_, 1);  // one recv() per socket read, not one per record part
  return stream;
}

ServerStream::~ServerStream() {
  SSL_free(ssl_);
}

ServerStream::Io ServerStream::fail(int ret, const char* what) {
  int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return Io::WantRead;
    case SSL_ERROR_WANT_WRITE:
      return Io::WantWrite;
    case SSL_ERROR_ZERO_RETURN:
      ERR_clear_error();
      return Io::Eof;  // close_notify
    default:
      break;
  }
  // Past here the connection is dead for OpenSSL: no shutdown may follow.
  failed_ = true;
  bool eofError = ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
  std::string queue = drainErrors();
  if (transport_.sawFin && (err == SSL_ERROR_SYSCALL || (err == SSL_ERROR_SSL && eofError))) {
    // A FIN without close_notify. OpenSSL 3 reports it as "unexpected eof while reading";
    // for the engine it is the peer going away, like close_notify (HTTP framing catches a
    // truncated body).
    error_ = std::string(what) + ": the peer closed the connection without close_notify";
    return Io::Eof;
  }
  if (transport_.lastErrno != 0) {
    error_ = std::string(what) + ": " + std::system_category().message(transport_.lastErrno);
  } else if (!queue.empty()) {
    error_ = std::string(what) + ": " + queue;
  } else {
    error_ = std::string(what) + ": SSL error " + std::to_string(err);
  }
  return Io::Error;
}

ServerStream::Io ServerStream::handshake() {
  if (failed_) {
    return Io::Error;
  }
  if (SSL_is_init_finished(ssl_)) {
    return Io::Ok;
  }
  ERR_clear_error();
  int ret = SSL_do_handshake(ssl_);
  if (ret == 1) {
    return Io::Ok;
  }
  return fail(ret, "handshake");
}

ServerStream::Io ServerStream::read(uint8_t* buf, size_t cap, size_t* n) {
  *n = 0;
  if (failed_) {
    return Io::Error;
  }
  if (cap == 0) {
    return Io::Ok;
  }
  ERR_clear_error();
  int ret = SSL_read_ex(ssl_, buf, cap, n);
  if (ret == 1) {
    return Io::Ok;
  }
  return fail(ret, "read");
}

ServerStream::Io ServerStream::write(const uint8_t* buf, size_t len, size_t* n) {
  *n = 0;
  if (failed_) {
    return Io::Error;
  }
  if (len == 0) {
    return Io::Ok;
  }
  ERR_clear_error();
  int ret = SSL_write_ex(ssl_, buf, len, n);
  if (ret == 1) {
    return Io::Ok;
  }
  return fail(ret, "write");
}

ServerStream::Io ServerStream::shutdown() {
  if (failed_ || !SSL_is_init_finished(ssl_) || shutdownSent_) {
    return Io::Ok;
  }
  ERR_clear_error();
  int ret = SSL_shutdown(ssl_);
  if (ret >= 0) {
    shutdownSent_ = true;  // 0: ours is out, the peer's not seen; we do not wait for it
    return Io::Ok;
  }
  int err = SSL_get_error(ssl_, ret);
  if (err == SSL_ERROR_WANT_WRITE) {
    return Io::WantWrite;
  }
  if (err == SSL_ERROR_WANT_READ) {
    shutdownSent_ = true;
    return Io::Ok;
  }
  failed_ = true;
  std::string queue = drainErrors();
  error_ = "shutdown: " + (transport_.lastErrno != 0
                               ? std::system_category().message(transport_.lastErrno)
                               : (queue.empty() ? "SSL error " + std::to_string(err) : queue));
  return Io::Error;
}

bool ServerStream::handshakeDone() const {
  return SSL_is_init_finished(ssl_) == 1;
}

size_t ServerStream::pending() const {
  size_t buffered = static_cast<size_t>(std::max(SSL_pending(ssl_), 0));
  if (buffered == 0 && SSL_has_pending(ssl_) == 1) {
    buffered = 1;  // read-ahead holds record bytes not decrypted yet: at least one byte
  }
  return buffered + (transport_.replay.size() - transport_.replayOffset);
}

std::string_view ServerStream::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data == nullptr ? std::string_view()
                         : std::string_view(reinterpret_cast<const char*>(data), len);
}

std::string_view ServerStream::version() const {
  if (!handshakeDone()) {
    return {};
  }
  return SSL_get_version(ssl_);
}

bool ServerStream::resumed() const {
  return SSL_session_reused(ssl_) == 1;
}

std::string ServerStream::errorText() const {
  return error_;
}

}  // namespace edgeplane::proxy::tls
