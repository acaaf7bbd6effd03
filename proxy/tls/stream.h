// A non-blocking TLS server connection over an accepted socket, for the engine's event loops.
//
// The engine reads the ClientHello off the socket to route by SNI before it knows which
// certificate to use, so those bytes are gone from the socket: they are handed over as
// `replay` and OpenSSL reads them first, then the socket (a custom BIO: replay, then recv();
// writes are send(MSG_NOSIGNAL)). No exceptions; every call returns what to wait for.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace edgeplane::proxy::tls {

class ServerStream {
 public:
  // Ok: progress (see each call). WantRead / WantWrite: call again once the socket is
  // readable / writable. Eof: the peer closed (close_notify, or a FIN without one, also
  // during the handshake). Error: the connection is unusable; errorText() says why.
  enum class Io : uint8_t { Ok, WantRead, WantWrite, Eof, Error };

  // `ctx` from a ContextSet (the stream takes its own reference, so the set may go away);
  // `fd` an accepted non-blocking socket the stream never closes. nullptr if OpenSSL cannot
  // allocate the connection.
  static std::unique_ptr<ServerStream> create(SSL_CTX* ctx, int fd, std::vector<uint8_t> replay);
  ~ServerStream();
  ServerStream(const ServerStream&) = delete;
  ServerStream& operator=(const ServerStream&) = delete;

  // Ok once the handshake is complete (and on every later call).
  Io handshake();
  // Ok with 0 < *n <= cap decrypted bytes. Drives the handshake first if it is not done.
  Io read(uint8_t* buf, size_t cap, size_t* n);
  // Ok with 0 < *n <= len bytes taken (partial writes). After WantWrite call again with the
  // same bytes, or more of them (the buffer may move; it must not shrink below what was
  // offered).
  Io write(const uint8_t* buf, size_t len, size_t* n);
  // Sends close_notify once, best effort: Ok (sent, or nothing can be sent after an error or
  // before the handshake), WantWrite (call again when writable), Error. It does not wait for
  // the peer's close_notify.
  Io shutdown();

  bool handshakeDone() const;
  // Bytes to be read without the socket becoming readable: decrypted bytes buffered inside
  // SSL plus replay bytes not consumed yet. A level-triggered loop that stops reading while
  // pending() > 0 must read again without waiting for epoll.
  size_t pending() const;
  // The socket signalled readability (edge-triggered epoll): recv() again. After a short
  // recv() the stream does not touch the socket again until this is called; a caller that
  // polls instead calls it before each read. `hup`: the event
  // carried EPOLLRDHUP/HUP/ERR, after which a short read no longer proves the socket empty.
  void readable(bool hup) {
    transport_.drained = false;
    transport_.hup = transport_.hup || hup;
  }
  std::string_view alpn() const;     // "" when none was negotiated
  std::string_view version() const;  // "TLSv1.3", "TLSv1.2"; "" before the handshake
  bool resumed() const;              // the session was resumed from a ticket
  std::string errorText() const;     // the last Error's cause, for logs (no secrets)

  // The BIO's state; public only for the BIO method's callbacks.
  struct Transport {
    int fd = -1;
    std::vector<uint8_t> replay;
    size_t replayOffset = 0;
    bool sawFin = false;   // recv() returned 0
    int lastErrno = 0;     // recv()/send() failed with this
    bool drained = false;  // a short recv() emptied the socket: no recv() until readable()
    bool hup = false;      // the peer's FIN or an error was signalled: always recv()
  };

 private:
  ServerStream() = default;
  Io fail(int ret, const char* what);

  SSL* ssl_ = nullptr;
  Transport transport_;
  bool failed_ = false;  // a fatal error: no shutdown, no more I/O
  bool shutdownSent_ = false;
  std::string error_;
};

}  // namespace edgeplane::proxy::tls
