// tlsbench server: the TLS backend of tools/bench/passthrough ("P\n" -> "pong\n",
// "S <n>\n" -> n bytes), full handshakes only (no tickets, no session cache), epoll, one
// SO_REUSEPORT listener per thread.
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "tlsbench_common.h"

namespace tlsbench {
namespace {

struct ServerConn {
  int fd = -1;
  SSL* ssl = nullptr;
  enum class State { Handshake, Command, Reply, Source } state = State::Handshake;
  std::string line;
  uint64_t remaining = 0;  // Source: bytes still to send; Reply: offset into kPong
  uint32_t events = 0;
};

// Advances one connection until OpenSSL wants I/O; false when it is finished or broken.
bool stepServer(ServerConn& c, const char* chunk, uint32_t& want) {
  for (;;) {
    switch (c.state) {
      case ServerConn::State::Handshake: {
        int r = SSL_accept(c.ssl);
        if (r != 1) {
          want = wantedEvents(c.ssl, r);
          return want != 0;
        }
        c.state = ServerConn::State::Command;
        break;
      }
      case ServerConn::State::Command: {
        char buf[256];
        int r = SSL_read(c.ssl, buf, sizeof buf);
        if (r <= 0) {
          want = wantedEvents(c.ssl, r);
          return want != 0;
        }
        c.line.append(buf, static_cast<size_t>(r));
        if (c.line.size() > 128) {
          return false;
        }
        size_t nl = c.line.find('\n');
        if (nl == std::string::npos) {
          break;
        }
        std::string cmd = c.line.substr(0, nl);
        c.line.erase(0, nl + 1);
        if (cmd == "P") {
          c.state = ServerConn::State::Reply;
          c.remaining = 0;
        } else if (cmd.size() > 2 && cmd[0] == 'S' && cmd[1] == ' ') {
          c.remaining = std::strtoull(cmd.c_str() + 2, nullptr, 10);
          c.state = ServerConn::State::Source;
        } else {
          return false;
        }
        break;
      }
      case ServerConn::State::Reply: {
        int r = SSL_write(c.ssl, kPong + c.remaining, static_cast<int>(kPongLen - c.remaining));
        if (r <= 0) {
          want = wantedEvents(c.ssl, r);
          return want != 0;
        }
        c.remaining += static_cast<uint64_t>(r);
        if (c.remaining == kPongLen) {
          c.state = ServerConn::State::Command;
        }
        break;
      }
      case ServerConn::State::Source: {
        if (c.remaining == 0) {
          c.state = ServerConn::State::Command;
          break;
        }
        int n = static_cast<int>(std::min<uint64_t>(c.remaining, kChunk));
        int r = SSL_write(c.ssl, chunk, n);
        if (r <= 0) {
          want = wantedEvents(c.ssl, r);
          return want != 0;
        }
        c.remaining -= static_cast<uint64_t>(r);
        break;
      }
    }
  }
}

void serverThread(SSL_CTX* ctx, sockaddr_in addr) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(lfd, 4096) != 0) {
    std::perror("tlsbench: bind/listen");
    std::exit(2);
  }
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
  std::vector<char> chunk(kChunk, 'x');
  std::vector<epoll_event> events(256);
  for (;;) {
    int n = epoll_wait(epfd, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<ServerConn*>(events[i].data.ptr);
      if (c == nullptr) {
        for (;;) {
          int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            break;
          }
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = new ServerConn;
          c->fd = fd;
          c->ssl = SSL_new(ctx);
          SSL_set_fd(c->ssl, fd);
          uint32_t want = 0;
          if (stepServer(*c, chunk.data(), want)) {
            setEvents(epfd, fd, c->events, want, c);
          } else {
            SSL_free(c->ssl);
            close(fd);
            delete c;
          }
        }
        continue;
      }
      uint32_t want = 0;
      if (stepServer(*c, chunk.data(), want)) {
        setEvents(epfd, c->fd, c->events, want, c);
      } else {
        SSL_free(c->ssl);
        close(c->fd);  // also removes it from the epoll set
        delete c;
      }
    }
  }
}

}  // namespace

int runServer(const Args& args) {
  sockaddr_in addr = parseAddress(args.need("listen"));
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx, args.need("cert").c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, args.need("key").c_str(), SSL_FILETYPE_PEM) != 1) {
    die("cannot load --cert/--key");
  }
  unsigned threads = static_cast<unsigned>(args.number("threads", 2));
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < std::max(1u, threads); ++i) {
    pool.emplace_back(serverThread, ctx, addr);
  }
  std::fprintf(stdout, "tlsbench: serving %s with %u threads\n", args.need("listen").c_str(),
               std::max(1u, threads));
  std::fflush(stdout);
  for (auto& t : pool) {
    t.join();
  }
  return 0;
}

}  // namespace tlsbench
