// The proxy's admin API (loopback or a unix socket only): config, traffic, keys, metrics, reload.
//
//   GET  /api/v1/config             {"generation":N,"snapshot":<the stored snapshot JSON>|null}
//   GET  /api/v1/traffic?since=S    {"since":S,"until":T,"routes":[{"route","bytes_in",
//                                    "bytes_out","connections"}]} (S, T: unix seconds)
//   GET  /api/v1/backends           [{"route","netns","backend","up","checked","last_change"
//                                    (RFC 3339, UTC),"consecutive_failures","last_error"}]
//                                    per route of the active config, per backend in order
//   GET  /api/v1/apikeys            [{"id","name","gateways","role","enabled","blocked",
//                                    "request_count","last_used_at" (unix ms|null),"last_ip",
//                                    "responses":{"1xx".."5xx"}}] per key of the active config
//                                    (usage flushed to the store first); never a key or digest
//   GET  /api/v1/listeners          {"https","http","dns"}: each bound "ADDR:PORT", or "off"
//   GET  /metrics                   Prometheus text exposition format 0.0.4
//   GET  /healthz                   {"status":"ok","generation":N}: the admin API answers
//   POST /api/v1/reload             {"generation":N,"changed":bool[,"refused_generation":G,
//                                    "error":"..."]}: 200, or 503 if the published snapshot
//                                    is unreadable
// Anything else: 404 (unknown path) or 405 (known path, other method, with Allow).
// Before any of that, admission (admin_access.h): on TCP a request without the right
// `Authorization: Bearer <token>` gets 401 (with `WWW-Authenticate: Bearer`); on the unix
// socket a peer that is not root, the proxy's user or the allowed group gets 403.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/admin_access.h"
#include "proxy/control.h"
#include "proxy/runtime.h"
#include "schema/local_address.h"
#include "schema/net.h"
#include "schema/result.h"
#include "schema/store.h"

namespace edgeplane::proxy {

// The admin API's address: unix:PATH or a loopback ADDR:PORT (local_address.h). A token
// guards a TCP one from the host's other users.
using AdminAddress = LocalAddress;

// Prometheus text for the process counters, the active config's per-route counters and the
// count of refused snapshots. Every ErrorKind appears, zero or not. Route series are labelled
// kind="passthrough|site|gateway" and route="<name>"; edgeplane_proxy_build_info{version} and
// the process_* series come with them. The certificates: each
// served one's expiry, and from `acme` (the lifecycle state the reconciler publishes) each ACME
// certificate's consecutive failed orders and its renewal time.
std::string renderMetrics(const Metrics& metrics, const ActiveConfig& config, uint64_t refused,
                          const std::vector<AcmeState>& acme = {});

// The body of GET /metrics: renderMetrics of the controller's active config and the published
// ACME state (left out when it cannot be read).
std::string metricsText(Controller& controller, const Metrics& metrics);

// The body of GET /healthz: {"status":"ok","generation":N}.
std::string healthzText(Controller& controller);

// The JSON array of GET /api/v1/backends for `config` (see the table above).
std::string renderBackends(const health::HealthRegistry& registry, const ActiveConfig& config);

struct AdminResponse {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
  std::string allow;  // the Allow header of a 405
};

// One request, without any HTTP machinery: `target` is the request target ("/a/b?x=1").
AdminResponse handleAdminRequest(Controller& controller, const Metrics& metrics,
                                 std::string_view method, std::string_view target);

class AdminServer {
 public:
  // Binds and starts serving on its own small thread pool. A unix socket path left over by a
  // dead process is replaced; one with a live listener, or a non-socket file, is refused. The
  // socket file is made 0600, or 0660 owned by access.allowedGid when set. A TCP address
  // without access.token is refused: it would serve no one.
  static Result<std::unique_ptr<AdminServer>> start(const AdminAddress& address,
                                                    Controller& controller, const Metrics& metrics,
                                                    const AdminAccess& access);
  ~AdminServer();  // stops serving; removes the socket file
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The bound address, with the real port when 0 was asked: "unix:/p" or "127.0.0.1:40125".
  const std::string& address() const;

  struct Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgeplane::proxy
