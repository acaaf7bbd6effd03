// Host-only HTTP endpoints of both daemons on a LocalAddress (unix socket or loopback TCP):
// binding the socket and serving it with POCO, under the read-only Prometheus endpoint
// (metrics_server.h) and the proxy's admin API.
#pragma once

#include <sys/types.h>

#include <Poco/Net/ServerSocket.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "reconciler/system/metrics_server.h"
#include "schema/local_address.h"
#include "schema/result.h"

namespace Poco::Net {
class HTTPRequestHandlerFactory;
class HTTPServerResponse;
}  // namespace Poco::Net

namespace edgeplane {

struct LocalSocket {
  Poco::Net::ServerSocket socket;                   // bound and listening
  std::optional<std::filesystem::path> socketPath;  // the unix socket file, to remove at stop
  std::string address;  // the bound address, with the real port when 0 was asked
};

// Binds and listens on `address`. A unix socket file left by a dead process is replaced; one
// with a live listener, or a file that is not a socket, is refused. The socket file gets
// `mode`, and the group `group` when set.
Result<LocalSocket> listenLocal(const LocalAddress& address, mode_t mode,
                                std::optional<gid_t> group = std::nullopt);

// Poco's HTTPServer on a LocalSocket with its own thread pool (at most `maxThreads`), one
// request per connection, 5 s timeouts. The destructor stops the server, then joins every thread
// of its pool (Poco 1.11 leaks the dispatcher if the pool goes while a thread it started has not
// yet run), then removes the socket file.
class LocalHttpServer {
 public:
  // Takes `factory` (Poco deletes it with the server).
  static Result<std::unique_ptr<LocalHttpServer>> start(
      LocalSocket socket, Poco::Net::HTTPRequestHandlerFactory* factory, int maxThreads);
  ~LocalHttpServer();
  LocalHttpServer(const LocalHttpServer&) = delete;
  LocalHttpServer& operator=(const LocalHttpServer&) = delete;

  const std::string& address() const;  // LocalSocket::address

  struct Impl;

 private:
  explicit LocalHttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A whole answer, Content-Length set; `allow` (a 405's Allow header) when not empty; the body
// left out for a HEAD request (`withBody` false). A client that went away is ignored.
void sendLocalReply(Poco::Net::HTTPServerResponse& response, int status,
                    const std::string& contentType, const std::string& body,
                    const std::string& allow, bool withBody = true);

}  // namespace edgeplane
