// The webhook's HTTP server (see webhook.h); what it answers is decided in webhook_request.cpp.
#include "reconciler/cli/webhook.h"

#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/Net/TCPServerParams.h>
#include <Poco/String.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <variant>

namespace edgeplane::cli {

// A plain TCP server (POCO's) that reads each request itself, against one deadline for the whole
// request: POCO's HTTPServer only bounds each read, so a client trickling a byte every few
// seconds would hold one of its threads for ever, and two such clients would silence the
// webhook. Here a request that is not complete within kRequestDeadline is dropped.

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kRequestDeadline{5000};
constexpr size_t kMaxHead = 8192;
constexpr int kMaxConnections = 4;

// What the connections share with the server; kept alive by each connection, so a connection
// still winding down never reads a destroyed secret.
struct Shared {
  std::mutex mu;  // guards config (replaced on SIGHUP) and onTrigger (cleared at stop)
  WebhookConfig config;
  std::function<void()> onTrigger;  // points into the agent
  std::atomic<bool> stopping{false};
  std::atomic<size_t> largestRequest{0};  // see WebhookServer::largestRequest

  void held(size_t bytes) {
    size_t seen = largestRequest.load();
    while (bytes > seen && !largestRequest.compare_exchange_weak(seen, bytes)) {
    }
  }

  WebhookConfig currentConfig() {
    std::lock_guard lock(mu);
    return config;
  }

  void trigger() {
    std::lock_guard lock(mu);
    if (onTrigger) {
      onTrigger();
    }
  }
};

// The body's length from the head, or the answer refusing the request. One Content-Length
// (repeats must agree) of decimal digits only, at most kMaxWebhookBody: POCO's parser takes
// "-1" and "+5", and a negative length once made the reader take whatever came for the
// whole deadline. No Transfer-Encoding: a body comes with its length or not at all.
std::variant<size_t, WebhookReply> bodyLength(const Poco::Net::HTTPRequest& request) {
  if (request.has(Poco::Net::HTTPMessage::TRANSFER_ENCODING)) {
    return WebhookReply{411, "send the body with a Content-Length\n"};
  }
  std::optional<std::string> value;
  for (auto it = request.find(Poco::Net::HTTPMessage::CONTENT_LENGTH);
       it != request.end() &&
       Poco::icompare(it->first, Poco::Net::HTTPMessage::CONTENT_LENGTH) == 0;
       ++it) {
    if (value && *value != it->second) {
      return WebhookReply{400, "conflicting Content-Length headers\n"};
    }
    value = it->second;
  }
  if (!value) {
    return size_t{0};
  }
  if (value->empty() || value->find_first_not_of("0123456789") != std::string::npos) {
    return WebhookReply{400, "Content-Length is not a number of bytes\n"};
  }
  const size_t digits = value->find_first_not_of('0');
  if (digits != std::string::npos &&
      (value->size() - digits > 9 || std::stoul(value->substr(digits)) > kMaxWebhookBody)) {
    return WebhookReply{413, "body larger than " + std::to_string(kMaxWebhookBody) + " bytes\n"};
  }
  return digits == std::string::npos ? size_t{0} : std::stoul(value->substr(digits));
}

std::string_view reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    default:
      return "Error";
  }
}

class TriggerConnection : public Poco::Net::TCPServerConnection {
 public:
  TriggerConnection(const Poco::Net::StreamSocket& socket, std::shared_ptr<Shared> shared)
      : Poco::Net::TCPServerConnection(socket), shared_(std::move(shared)) {}

  // Interface
  void run() override {
    try {
      serve();
    } catch (const Poco::Exception&) {
      // A client that went away or a broken socket: nothing to answer.
    } catch (const std::exception&) {
    }
  }

 private:
  // Reads more bytes into `data`, at most `max`, before the deadline; false on timeout, EOF,
  // stop or error.
  bool readMore(std::string& data, size_t max, Clock::time_point deadline) {
    Poco::Net::StreamSocket& s = socket();
    for (;;) {
      if (shared_->stopping.load()) {
        return false;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        return false;
      }
      // Short slices, so that a stopping server is not kept waiting.
      const auto slice = std::min<int64_t>(left.count(), 100);
      if (!s.poll(Poco::Timespan(slice * 1000), Poco::Net::Socket::SELECT_READ)) {
        continue;
      }
      char buf[2048];
      const int n = s.receiveBytes(buf, static_cast<int>(std::min(sizeof(buf), max)));
      if (n <= 0) {
        return false;
      }
      data.append(buf, static_cast<size_t>(n));
      shared_->held(data.size());
      return true;
    }
  }

  // Takes (and drops) a bounded amount of what the client still sends, so that closing with
  // it unread does not reset the connection under the client before it reads the answer.
  void drain(Clock::time_point deadline) {
    const auto until = std::min(deadline, Clock::now() + std::chrono::seconds(1));
    std::string buf;
    for (size_t dropped = 0; dropped < 64 * 1024 && readMore(buf, 2048, until); buf.clear()) {
      dropped += buf.size();
    }
  }

  void reply(const WebhookReply& r) {
    std::string out =
        "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason(r.status)) +
        "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(r.body.size()) +
        "\r\nConnection: close\r\n";
    if (!r.allow.empty()) {
      out += "Allow: " + r.allow + "\r\n";
    }
    out += "\r\n" + r.body;
    Poco::Net::StreamSocket& s = socket();
    s.setSendTimeout(Poco::Timespan(2, 0));
    s.sendBytes(out.data(), static_cast<int>(out.size()));
    s.shutdownSend();
  }

  void serve() {
    const auto deadline = Clock::now() + kRequestDeadline;
    const WebhookConfig config = shared_->currentConfig();
    std::string data;
    // Where the head ends and the body starts: CRLF CRLF, or bare LF LF from lax clients.
    size_t headEnd = std::string::npos;
    size_t bodyStart = 0;
    auto findHeadEnd = [&] {
      const size_t crlf = data.find("\r\n\r\n");
      const size_t lf = data.find("\n\n");
      if (crlf != std::string::npos && (lf == std::string::npos || crlf < lf)) {
        headEnd = crlf;
        bodyStart = crlf + 4;
      } else if (lf != std::string::npos) {
        headEnd = lf;
        bodyStart = lf + 2;
      }
      return headEnd != std::string::npos;
    };
    while (!findHeadEnd()) {
      if (data.size() > kMaxHead) {
        reply({400, "request head larger than " + std::to_string(kMaxHead) + " bytes\n"});
        return;
      }
      if (!readMore(data, kMaxHead + 1 - data.size(), deadline)) {
        if (!data.empty() && !shared_->stopping.load()) {
          reply({408, "request not complete within " +
                          std::to_string(kRequestDeadline.count() / 1000) + " s\n"});
        }
        return;
      }
    }
    Poco::Net::HTTPRequest request;
    {
      std::istringstream head(data.substr(0, bodyStart));
      try {
        request.read(head);
      } catch (const Poco::Exception&) {
        reply({400, "malformed request\n"});
        return;
      }
    }
    std::string path = request.getURI();
    if (auto q = path.find('?'); q != std::string::npos) {
      path.resize(q);
    }
    // The length is checked before any of the body is read, and no more than it is held.
    const auto length = bodyLength(request);
    if (const auto* refused = std::get_if<WebhookReply>(&length)) {
      reply(*refused);
      drain(deadline);
      return;
    }
    const size_t want = std::get<size_t>(length);
    std::string body = data.substr(bodyStart, want);
    data = std::string();
    if (request.getMethod() == "POST" && path == "/trigger") {
      while (body.size() < want) {
        if (!readMore(body, want - body.size(), deadline)) {
          if (!shared_->stopping.load()) {
            reply({408, "request not complete within " +
                            std::to_string(kRequestDeadline.count() / 1000) + " s\n"});
          }
          return;
        }
      }
    }
    WebhookRequest r{request.getMethod(), path, std::move(body), {}};
    for (const auto& [name, value] : request) {
      r.headers.emplace(Poco::toLower(name), value);  // emplace keeps the first of repeats
    }
    reply(handleWebhook(r, config, [this] { shared_->trigger(); }));
  }

  std::shared_ptr<Shared> shared_;
};

class TriggerFactory : public Poco::Net::TCPServerConnectionFactory {
 public:
  explicit TriggerFactory(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  // Interface
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new TriggerConnection(socket, shared_);
  }

 private:
  std::shared_ptr<Shared> shared_;
};

class PocoWebhookServer : public WebhookServer {
 public:
  PocoWebhookServer(std::shared_ptr<Shared> shared, std::unique_ptr<Poco::Net::TCPServer> server,
                    uint16_t port)
      : shared_(std::move(shared)), server_(std::move(server)), port_(port) {}

  ~PocoWebhookServer() override {
    shared_->stopping = true;
    server_->stop();
    // onTrigger points into the agent: no connection may still be able to call it after this
    // returns. Each one ends within a read slice once `stopping` is set; the bound is a
    // backstop.
    const auto until = Clock::now() + kRequestDeadline + std::chrono::seconds(2);
    while (server_->currentConnections() > 0 && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // A connection the dispatcher picked up just before the stop finds nothing to call.
    std::lock_guard lock(shared_->mu);
    shared_->onTrigger = nullptr;
  }

  void setConfig(WebhookConfig config) override {
    std::lock_guard lock(shared_->mu);
    shared_->config = std::move(config);
  }

  uint16_t port() const override { return port_; }

  size_t largestRequest() const override { return shared_->largestRequest.load(); }

 private:
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Poco::Net::TCPServer> server_;
  uint16_t port_;
};

}  // namespace

Result<std::unique_ptr<WebhookServer>> WebhookServer::start(const Endpoint& listen,
                                                            WebhookConfig config,
                                                            std::function<void()> onTrigger) {
  auto shared = std::make_shared<Shared>();
  shared->config = std::move(config);
  shared->onTrigger = std::move(onTrigger);
  try {
    Poco::Net::ServerSocket socket;
    socket.bind(Poco::Net::SocketAddress(listen.str()), true);
    socket.listen(16);
    const uint16_t port = socket.address().port();
    auto* params = new Poco::Net::TCPServerParams;
    params->setMaxThreads(kMaxConnections);
    params->setMaxQueued(16);
    auto server =
        std::make_unique<Poco::Net::TCPServer>(new TriggerFactory(shared), socket, params);
    server->start();
    return std::unique_ptr<WebhookServer>(
        std::make_unique<PocoWebhookServer>(shared, std::move(server), port));
  } catch (const Poco::Exception& e) {
    return retryable("webhook: cannot listen on " + listen.str() + ": " + e.displayText());
  }
}

}  // namespace edgeplane::cli
