// tlsbench's client connections: see tlsbench_client.h.
#include "tlsbench_client.h"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace tlsbench {

SSL_CTX* clientContext() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

Target targetOf(const Args& args) {
  Target t;
  t.addr = parseAddress(args.need("connect"));
  t.sni = args.need("sni");
  if (args.number("plain", 0) == 0) {
    t.ctx = clientContext();
  }
  return t;
}

// An HTTP/1.1 GET of `path` for the --http modes; `close` asks for one request per connection.
std::string httpGet(const std::string& path, const std::string& host, bool close) {
  return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" +
         (close ? "Connection: close\r\n" : "") + "\r\n";
}

// One read or write on a connection, TLS or plain (ssl == nullptr): the bytes moved (> 0),
// or 0 with `want` set to the epoll events to wait for (0: the connection is dead).
int ioRead(int fd, SSL* ssl, char* buf, size_t n, uint32_t& want) {
  if (ssl != nullptr) {
    int r = SSL_read(ssl, buf, static_cast<int>(n));
    want = r > 0 ? 0 : wantedEvents(ssl, r);
    return std::max(r, 0);
  }
  ssize_t r = recv(fd, buf, n, 0);
  want = r < 0 && errno == EAGAIN ? uint32_t{EPOLLIN} : 0;
  return r > 0 ? static_cast<int>(r) : 0;
}

int ioWrite(int fd, SSL* ssl, const char* buf, size_t n, uint32_t& want) {
  if (ssl != nullptr) {
    int r = SSL_write(ssl, buf, static_cast<int>(n));
    want = r > 0 ? 0 : wantedEvents(ssl, r);
    return std::max(r, 0);
  }
  ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);
  want = r < 0 && errno == EAGAIN ? uint32_t{EPOLLOUT} : 0;
  return r > 0 ? static_cast<int>(r) : 0;
}

ClientConn* startConn(const Target& t, Clock::time_point scheduled, const std::string* request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return nullptr;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bool connected = connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), sizeof t.addr) == 0;
  if (!connected && errno != EINPROGRESS) {
    close(fd);
    return nullptr;
  }
  auto* c = new ClientConn;
  if (connected) {
    c->state = ClientConn::State::Handshake;
  }
  c->fd = fd;
  if (t.ctx != nullptr) {
    c->ssl = SSL_new(t.ctx);
    SSL_set_fd(c->ssl, fd);
    SSL_set_tlsext_host_name(c->ssl, t.sni.c_str());
  }
  c->request = request;
  c->scheduled = scheduled;
  c->deadline = Clock::now() + kConnTimeout;
  return c;
}

void finishConn(ClientConn* c, bool clean) {
  if (c->ssl != nullptr) {
    if (clean) {
      SSL_shutdown(c->ssl);  // one try: sends close_notify, does not wait for the peer's
    }
    SSL_free(c->ssl);
  }
  close(c->fd);
  delete c;
}

namespace {

// Reads the reply to the command; Done once it is complete and as expected.
Step readReply(ClientConn& c, uint32_t& want) {
  char buf[16384];
  size_t room = c.request != nullptr ? sizeof buf : kPongLen - c.progress;
  int r = ioRead(c.fd, c.ssl, buf, room, want);
  if (r == 0) {
    return want != 0 ? Step::Pending : Step::Failed;
  }
  if (c.request != nullptr) {
    int f = c.reply.feed(buf, static_cast<size_t>(r));
    if (f < 0 || (f == 1 && c.reply.status != 200)) {
      return Step::Failed;
    }
    return f == 1 ? Step::Done : Step::Pending;
  }
  if (std::memcmp(buf, kPong + c.progress, static_cast<size_t>(r)) != 0) {
    return Step::Failed;
  }
  c.progress += static_cast<size_t>(r);
  return c.progress == kPongLen ? Step::Done : Step::Pending;
}

}  // namespace

// Connect, handshake, the command ("P\n" or the HTTP request), its reply; then Done, or Hold
// when `hold` is set (a held connection may be given another command by the caller).
Step stepClient(ClientConn& c, bool hold, uint32_t& want) {
  for (;;) {
    switch (c.state) {
      case ClientConn::State::Connecting: {  // only reached once the socket is writable
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
          return Step::Failed;
        }
        c.state = ClientConn::State::Handshake;
        break;
      }
      case ClientConn::State::Handshake: {
        if (c.ssl != nullptr) {
          int r = SSL_connect(c.ssl);
          if (r != 1) {
            want = wantedEvents(c.ssl, r);
            return want != 0 ? Step::Pending : Step::Failed;
          }
        }
        c.handshakeSeconds = secondsSince(c.scheduled);
        c.state = ClientConn::State::Command;
        c.progress = 0;
        c.reply.reset();
        break;
      }
      case ClientConn::State::Command: {
        const char* cmd = c.request != nullptr ? c.request->data() : "P\n";
        size_t len = c.request != nullptr ? c.request->size() : 2;
        int r = ioWrite(c.fd, c.ssl, cmd + c.progress, len - c.progress, want);
        if (r == 0) {
          return want != 0 ? Step::Pending : Step::Failed;
        }
        c.progress += static_cast<size_t>(r);
        if (c.progress == len) {
          c.state = ClientConn::State::Reply;
          c.progress = 0;
        }
        break;
      }
      case ClientConn::State::Reply: {
        Step s = readReply(c, want);
        if (s != Step::Done) {
          if (s == Step::Pending && want == 0) {
            break;  // a part of the reply arrived: read on
          }
          return s;
        }
        if (!hold) {
          return Step::Done;
        }
        c.state = ClientConn::State::Hold;
        break;
      }
      case ClientConn::State::Hold: {
        char buf[64];
        int r = ioRead(c.fd, c.ssl, buf, sizeof buf, want);
        if (r > 0) {
          return Step::Failed;  // nothing is expected on an idle connection
        }
        return want != 0 ? Step::Pending : Step::Failed;
      }
    }
  }
}

}  // namespace tlsbench
