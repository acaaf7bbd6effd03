// The read-only Prometheus endpoint of both daemons (GET /metrics and GET /healthz) on a
// LocalAddress, as an interface free of POCO: the agent reaches it through the net module
// (reconciler/net/module.h), the proxy links it in (local_http.cpp).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "schema/local_address.h"
#include "schema/result.h"

namespace edgeplane {

// What the metrics endpoint serves, each called per request on a server thread.
struct MetricsSource {
  std::function<std::string()> metrics;  // the Prometheus text of GET /metrics
  std::function<std::string()> health;   // the JSON body of GET /healthz
};

// GET (or HEAD) /metrics and /healthz, nothing else: another method on them is 405, any other
// path 404, so no admin action is reachable through it. It needs no token: it only reads, and
// listens only where the host itself reaches it (a unix socket is made 0660). Poco's
// HTTPServer on the server's own small thread pool, one request per connection, 5 s timeouts.
class MetricsServer {
 public:
  static Result<std::unique_ptr<MetricsServer>> start(const LocalAddress& address,
                                                      MetricsSource source);
  virtual ~MetricsServer() = default;  // stops serving, joins its threads, removes the socket file

  // "unix:/p" or "127.0.0.1:40125" (the real port when 0 was asked).
  virtual const std::string& address() const = 0;
};

}  // namespace edgeplane
