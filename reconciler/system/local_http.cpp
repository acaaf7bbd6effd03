// Host-only HTTP endpoints: socket binding and the read-only metrics server (see local_http.h).
#include "reconciler/system/local_http.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/ThreadPool.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <thread>

#include "schema/prometheus_text.h"

namespace edgeplane {

namespace fs = std::filesystem;

namespace {

// A socket file at `path`: stale (its process died) -> removed; live or not a socket -> error.
Result<void> clearStaleSocket(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      return {};
    }
    return terminal("cannot inspect " + path.string() + ": " + errnoText(err));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return terminal(path.string() + " exists and is not a socket; refusing to replace it");
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    return terminal(std::string("socket: ") + errnoText(err));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::close(fd);
  if (rc == 0) {
    return terminal("another process is serving " + path.string() +
                    " (is another instance already running?)");
  }
  if (err != ECONNREFUSED && err != ENOENT) {
    return terminal("cannot probe " + path.string() + ": " + errnoText(err));
  }
  if (::unlink(path.c_str()) != 0) {
    const int unlinkErr = errno;
    if (unlinkErr != ENOENT) {
      return terminal("cannot remove the stale socket " + path.string() + ": " +
                      errnoText(unlinkErr));
    }
  }
  return {};
}

struct Reply {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
  std::string allow;
};

Reply answer(const MetricsSource& source, const std::string& method, const std::string& uri) {
  const std::string path = uri.substr(0, uri.find('?'));
  Reply r;
  if (path != "/metrics" && path != "/healthz") {
    r.status = 404;
    r.body = "{\"error\":\"not found: this endpoint serves only GET /metrics and /healthz\"}\n";
    return r;
  }
  if (method != "GET" && method != "HEAD") {
    r.status = 405;
    r.allow = "GET, HEAD";
    r.body = "{\"error\":\"method not allowed; use GET\"}\n";
    return r;
  }
  if (path == "/metrics") {
    r.contentType = std::string(prometheus::kContentType);
    r.body = source.metrics();
  } else {
    r.body = source.health();
  }
  return r;
}

class MetricsHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit MetricsHandler(const MetricsSource& source) : source_(source) {}

  // Interface
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    Reply r;
    try {
      r = answer(source_, request.getMethod(), request.getURI());
    } catch (const std::exception&) {
      r = Reply{500, "application/json", "{\"error\":\"internal error\"}\n", ""};
    }
    sendLocalReply(response, r.status, r.contentType, r.body, r.allow,
                   request.getMethod() != "HEAD");
  }

 private:
  const MetricsSource& source_;
};

class MetricsFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit MetricsFactory(const MetricsSource& source) : source_(source) {}

  // Interface
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new MetricsHandler(source_);
  }

 private:
  const MetricsSource& source_;
};

}  // namespace

void sendLocalReply(Poco::Net::HTTPServerResponse& response, int status,
                    const std::string& contentType, const std::string& body,
                    const std::string& allow, bool withBody) {
  try {
    response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
    response.setReason(Poco::Net::HTTPResponse::getReasonForStatus(response.getStatus()));
    response.setContentType(contentType);
    response.setContentLength(static_cast<std::streamsize>(body.size()));
    if (!allow.empty()) {
      response.set("Allow", allow);
    }
    std::ostream& out = response.send();
    if (withBody) {
      out.write(body.data(), static_cast<std::streamsize>(body.size()));
    }
  } catch (...) {
    // The client went away; nothing to tell it.
  }
}

Result<LocalSocket> listenLocal(const LocalAddress& address, mode_t mode,
                                std::optional<gid_t> group) {
  LocalSocket out;
  try {
    if (address.unixPath) {
      if (auto cleared = clearStaleSocket(*address.unixPath); !cleared) {
        return cleared.error();
      }
      out.socket.bind(Poco::Net::SocketAddress(Poco::Net::SocketAddress::UNIX_LOCAL,
                                               address.unixPath->string()),
                      false);
      out.socketPath = *address.unixPath;
      if (auto restricted = restrictSocketFile(*address.unixPath, mode, group); !restricted) {
        struct stat st {};
        if (::lstat(address.unixPath->c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
          ::unlink(address.unixPath->c_str());  // ours; a link put there is not ours to remove
        }
        return restricted.error();
      }
      out.address = address.str();
    } else {
      out.socket.bind(Poco::Net::SocketAddress(address.tcp.address.str(), address.tcp.port), true);
      Endpoint bound = address.tcp;
      bound.port = out.socket.address().port();
      out.address = bound.str();
    }
    out.socket.listen(16);
  } catch (const Poco::Exception& e) {
    if (out.socketPath) {
      ::unlink(out.socketPath->c_str());
    }
    return terminal("cannot listen on " + address.str() + ": " + e.displayText());
  }
  return out;
}

struct LocalHttpServer::Impl {
  // The server's own pool: stopping joins only this server's threads.
  std::unique_ptr<Poco::ThreadPool> pool;
  std::unique_ptr<Poco::Net::HTTPServer> server;
  std::optional<fs::path> socketPath;
  std::string address;
};

LocalHttpServer::LocalHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LocalHttpServer::~LocalHttpServer() {
  // stopAll(true) aborts the connections that exist when it is called; one a worker picks up
  // just after would wait out its request timeout (5 s) before the pool can be joined. So the
  // abort is repeated while workers still run, for a bounded time.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(6);
  try {
    impl_->server->stopAll(true);
    while (impl_->pool->used() > 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (impl_->server->currentConnections() > 0) {
        impl_->server->stopAll(true);
      }
    }
  } catch (...) {
    // Shutting down regardless.
  }
  // A worker the dispatcher started just before the stop holds a reference to it that only its
  // run() drops: let every started worker run before the pool goes, or Poco leaks the
  // dispatcher.
  impl_->pool->joinAll();
  if (impl_->socketPath) {
    ::unlink(impl_->socketPath->c_str());
  }
}

const std::string& LocalHttpServer::address() const {
  return impl_->address;
}

Result<std::unique_ptr<LocalHttpServer>> LocalHttpServer::start(
    LocalSocket socket, Poco::Net::HTTPRequestHandlerFactory* factory, int maxThreads) {
  auto impl = std::make_unique<Impl>();
  impl->socketPath = socket.socketPath;
  impl->address = socket.address;
  try {
    impl->pool = std::make_unique<Poco::ThreadPool>(1, maxThreads);
    auto params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(maxThreads);
    params->setMaxQueued(16);
    params->setKeepAlive(false);  // one request per connection: nothing lingers
    params->setTimeout(Poco::Timespan(5, 0));
    // An idle dispatcher thread waits this long for work, and stopping waits for it.
    params->setThreadIdleTime(Poco::Timespan(0, 500000));
    impl->server =
        std::make_unique<Poco::Net::HTTPServer>(factory, *impl->pool, socket.socket, params);
    impl->server->start();
  } catch (const Poco::Exception& e) {
    if (impl->socketPath) {
      ::unlink(impl->socketPath->c_str());
    }
    return terminal("cannot serve on " + socket.address + ": " + e.displayText());
  }
  return std::unique_ptr<LocalHttpServer>(new LocalHttpServer(std::move(impl)));
}

namespace {

class PocoMetricsServer : public MetricsServer {
 public:
  explicit PocoMetricsServer(MetricsSource source) : source_(std::move(source)) {}
  Result<void> serve(LocalSocket socket) {
    auto server = LocalHttpServer::start(std::move(socket), new MetricsFactory(source_), 2);
    if (!server) {
      return server.error();
    }
    server_ = std::move(*server);
    return {};
  }
  const std::string& address() const override { return server_->address(); }

 private:
  MetricsSource source_;
  std::unique_ptr<LocalHttpServer> server_;  // stopped before `source_` goes
};

}  // namespace

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const LocalAddress& address,
                                                            MetricsSource source) {
  auto bound = listenLocal(address, 0660);
  if (!bound) {
    return terminal("metrics: " + bound.error().message);
  }
  auto server = std::make_unique<PocoMetricsServer>(std::move(source));
  if (auto served = server->serve(std::move(*bound)); !served) {
    return terminal("metrics: " + served.error().message);
  }
  return std::unique_ptr<MetricsServer>(std::move(server));
}

}  // namespace edgeplane
