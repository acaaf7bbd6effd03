// Test peers for the https handler: a self-signed certificate, a blocking TLS client, and
// plain-HTTP backends (one thread per connection) speaking through the proxy/http codec.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "proxy/http/chunked.h"
#include "proxy/http/message.h"
#include "schema/net.h"
#include "schema/snapshot.h"
#include "tests/support/eventually.h"
#include "tests/support/test_cert.h"

namespace edgeplane::testing {

using namespace std::chrono_literals;

inline void setSocketTimeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000),
             static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline bool sendBytes(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return false;
    }
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// A self-signed certificate for `domains` (tests/support/test_cert.h), placed as
// NAME.crt/NAME.key under `dir` and described as the snapshot would.
inline SnapshotCertificate makeCertificate(const std::filesystem::path& dir,
                                           const std::string& name,
                                           const std::vector<std::string>& domains) {
  TestCertificate pair = makeTestCertificate(domains);
  SnapshotCertificate c;
  c.name = name;
  c.fingerprint = pair.fingerprint;
  c.cert_file = (dir / (name + ".crt")).string();
  c.key_file = (dir / (name + ".key")).string();
  c.domains = domains;
  std::ofstream(c.cert_file, std::ios::binary) << pair.certPem;
  std::ofstream(c.key_file, std::ios::binary) << pair.keyPem;
  return c;
}

// A parsed response as the client saw it.
struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names, last value wins
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// A blocking TLS client (no certificate verification: the test trusts its own proxy).
class TlsClient {
 public:
  // `alpnWire`: the protocols to offer, in wire form ("\x08http/1.1"); empty: no ALPN.
  TlsClient(uint16_t port, const std::string& sni, std::chrono::milliseconds timeout = 20s,
            const std::string& alpnWire = "") {
    ctx_ = SSL_CTX_new(TLS_client_method());
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
      return;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setSocketTimeouts(fd_, timeout);
    ssl_ = SSL_new(ctx_);
    SSL_set_tlsext_host_name(ssl_, sni.c_str());
    if (!alpnWire.empty()) {
      SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(alpnWire.data()),
                          static_cast<unsigned>(alpnWire.size()));
    }
    SSL_set_fd(ssl_, fd_);
    connected_ = SSL_connect(ssl_) == 1;
  }
  ~TlsClient() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
    }
    if (fd_ >= 0) {
      ::close(fd_);
    }
    SSL_CTX_free(ctx_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_; }

  bool write(std::string_view s) {
    while (!s.empty()) {
      int n = SSL_write(ssl_, s.data(), static_cast<int>(std::min<size_t>(s.size(), 1 << 20)));
      if (n <= 0) {
        return false;
      }
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Fills the buffer with at least one more byte; false at EOF, error or timeout.
  bool fill() {
    char buf[65536];
    int n = SSL_read(ssl_, buf, sizeof buf);
    if (n <= 0) {
      return false;
    }
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }
  // True when the proxy ended the connection (no further bytes, EOF or reset).
  bool closedByPeer() { return buffer_.empty() && !fill(); }

  // True if the proxy ends the connection within `wait`, false if it stays open (or sends).
  bool closedWithin(std::chrono::milliseconds wait) {
    if (!buffer_.empty() || SSL_pending(ssl_) > 0) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) == 0) {
      return false;
    }
    return !fill();
  }

  // One response; `headRequest` when it answers a HEAD. nullopt if the connection ended first.
  // `sink`, if set, takes the body instead of ClientResponse::body (for big bodies).
  std::optional<ClientResponse> readResponse(
      bool headRequest = false, const std::function<void(std::string_view)>& sink = {}) {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) {
        return std::nullopt;
      }
    }
    ClientResponse r;
    std::string head = buffer_.substr(0, end + 2);
    buffer_.erase(0, end + 4);
    if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) {
      return std::nullopt;
    }
    r.status = std::stoi(head.substr(9, 3));
    size_t at = head.find("\r\n") + 2;
    while (at < head.size()) {
      size_t eol = head.find("\r\n", at);
      std::string line = head.substr(at, eol - at);
      at = eol + 2;
      size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& ch : name) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      }
      size_t v = line.find_first_not_of(' ', colon + 1);
      r.headers[name] = v == std::string::npos ? "" : line.substr(v);
    }
    auto emit = [&](std::string_view s) {
      if (sink) {
        sink(s);
      } else {
        r.body.append(s);
      }
    };
    bool noBody = headRequest || r.status < 200 || r.status == 204 || r.status == 304;
    if (noBody) {
      return r;
    }
    if (r.headers.count("content-length") != 0) {
      uint64_t left = std::stoull(r.header("content-length"));
      while (left > 0) {
        if (buffer_.empty() && !fill()) {
          return std::nullopt;
        }
        size_t k = static_cast<size_t>(std::min<uint64_t>(left, buffer_.size()));
        emit(std::string_view(buffer_).substr(0, k));
        buffer_.erase(0, k);
        left -= k;
      }
      return r;
    }
    if (r.header("transfer-encoding") == "chunked") {
      proxy::http::ChunkedDecoder decoder;
      while (!decoder.done()) {
        if (buffer_.empty() && !fill()) {
          return std::nullopt;
        }
        proxy::http::ChunkedDecoder::Step s = decoder.feed(buffer_);
        if (s.status == proxy::http::ChunkedDecoder::Status::Error) {
          return std::nullopt;
        }
        if (s.dataLength > 0) {
          emit(std::string_view(buffer_).substr(s.dataOffset, s.dataLength));
        }
        buffer_.erase(0, s.consumed);
      }
      return r;
    }
    while (fill()) {  // until close
    }
    emit(buffer_);
    buffer_.clear();
    return r;
  }

  std::string& buffered() { return buffer_; }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

// A request as a backend received it (the codec's view, copied out).
struct BackendRequest {
  std::string method;
  std::string target;
  std::string host;
  std::string head;  // the raw head
  std::string body;  // decoded
  bool expectContinue = false;
  bool upgrade = false;
};

// Reads one request off a backend connection through the proxy/http codec; `buffer` keeps
// bytes past it. `onHead` runs once the head is in (e.g. to send 100 Continue); `bodySink`
// takes big bodies instead of BackendRequest::body.
inline std::optional<BackendRequest> readBackendRequest(
    int fd, std::string& buffer, const std::function<void(const BackendRequest&)>& onHead = {},
    const std::function<void(std::string_view)>& bodySink = {}) {
  proxy::http::RequestHead head;
  proxy::http::ParseResult r;
  char chunk[65536];
  while ((r = proxy::http::parseRequestHead(buffer, head, proxy::http::Limits{})).status ==
         proxy::http::ParseStatus::NeedMore) {
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
      return std::nullopt;
    }
    buffer.append(chunk, static_cast<size_t>(n));
  }
  if (r.status != proxy::http::ParseStatus::Done) {
    return std::nullopt;
  }
  BackendRequest req;
  req.method = head.method;
  req.target = head.target;
  req.host = head.host;
  req.head = buffer.substr(0, r.length);
  req.expectContinue = head.expectContinue;
  req.upgrade = !head.upgrade.empty();
  proxy::http::BodyFraming framing = head.framing;
  uint64_t left = head.contentLength;
  buffer.erase(0, r.length);
  if (onHead) {
    onHead(req);
  }
  auto emit = [&](std::string_view s) {
    if (bodySink) {
      bodySink(s);
    } else {
      req.body.append(s);
    }
  };
  proxy::http::ChunkedDecoder decoder;
  while (true) {
    if (framing == proxy::http::BodyFraming::ContentLength && left > 0 && !buffer.empty()) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
      emit(std::string_view(buffer).substr(0, k));
      buffer.erase(0, k);
      left -= k;
    }
    if (framing == proxy::http::BodyFraming::Chunked) {
      while (!buffer.empty() && !decoder.done()) {
        proxy::http::ChunkedDecoder::Step s = decoder.feed(buffer);
        if (s.status == proxy::http::ChunkedDecoder::Status::Error) {
          return std::nullopt;
        }
        if (s.dataLength > 0) {
          emit(std::string_view(buffer).substr(s.dataOffset, s.dataLength));
        }
        buffer.erase(0, s.consumed);
      }
    }
    bool done = framing == proxy::http::BodyFraming::None ||
                (framing == proxy::http::BodyFraming::ContentLength && left == 0) || decoder.done();
    if (done) {
      return req;
    }
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
      return std::nullopt;
    }
    buffer.append(chunk, static_cast<size_t>(n));
  }
}

inline std::string okResponse(std::string_view body, std::string_view extra = "") {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra) + "\r\n" + std::string(body);
}

// A plain TCP backend on 127.0.0.1: each accepted connection runs `handler` on its own thread.
class TestBackend {
 public:
  using Handler = std::function<void(int fd)>;

  explicit TestBackend(Handler handler) : handler_(std::move(handler)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    EXPECT_EQ(::listen(listener_, 128), 0);
    socklen_t len = sizeof sin;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&sin), &len);
    port_ = ntohs(sin.sin_port);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }
  ~TestBackend() {
    stop_ = true;
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : open_) {
        ::shutdown(fd, SHUT_RDWR);  // handlers blocked in recv() on a pooled connection return
      }
    }
    for (std::thread& t : threads_) {  // the acceptor is gone: nobody adds threads any more
      t.join();
    }
    ::close(listener_);
  }
  TestBackend(const TestBackend&) = delete;
  TestBackend& operator=(const TestBackend&) = delete;

  Endpoint endpoint() const { return *Endpoint::parse("127.0.0.1:" + std::to_string(port_)); }
  int accepts() const { return accepts_.load(); }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        continue;
      }
      int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      setSocketTimeouts(fd, 20s);
      ++accepts_;
      std::lock_guard lock(mu_);
      open_.push_back(fd);
      threads_.emplace_back([this, fd] {
        handler_(fd);
        std::lock_guard closing(mu_);
        open_.erase(std::find(open_.begin(), open_.end(), fd));
        ::close(fd);
      });
    }
  }

  Handler handler_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepts_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<int> open_;  // accepted and not closed yet
};

// A keep-alive backend answering every request with `respond(request)` (a whole response).
inline TestBackend::Handler keepAliveBackend(
    std::function<std::string(const BackendRequest&)> respond) {
  return [respond = std::move(respond)](int fd) {
    std::string buffer;
    while (auto req = readBackendRequest(fd, buffer)) {
      if (!sendBytes(fd, respond(*req))) {
        return;
      }
    }
  };
}

}  // namespace edgeplane::testing
