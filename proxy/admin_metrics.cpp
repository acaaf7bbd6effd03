// Prometheus text for the proxy's counters (GET /metrics of the admin API and of --metrics).
#include "proxy/admin.h"

#include <array>
#include <set>
#include <string>
#include <string_view>

#include "edgeplane_version.h"
#include "proxy/gateway/config.h"
#include "proxy/tls/context.h"
#include "reconciler/system/process_metrics.h"
#include "schema/prometheus_text.h"

namespace edgeplane::proxy {

namespace {

using prometheus::family;
using prometheus::Labels;
using prometheus::sample;

// A route's series carry its kind and its name as two labels (a name is unique per kind only),
// so `sum by (kind)` and `{route="x"}` work without splitting a packed value.
Labels routeLabels(const SnapshotRoute& spec) {
  return {{"kind", toString(spec.kind)}, {"route", spec.name}};
}

// The worker gateway's requests by gateway, API key id ("" for the refused ones: missing or
// invalid keys, rate limited) and status code, since the proxy started.
void renderGatewayMetrics(std::string& out, gateway::Runtime& runtime) {
  runtime.collect();
  family(out, "edgeplane_gateway_requests_total", "counter",
         "Worker gateway requests by gateway, API key id (empty: not authenticated) and status.");
  for (const auto& [key, count] : runtime.totals()) {
    const auto& [gw, keyId, code] = key;
    const std::string status = std::to_string(code);
    sample(out, "edgeplane_gateway_requests_total",
           {{"gateway", gw}, {"key_id", keyId}, {"code", status}}, count);
  }
}

// The terminated routes' per-request series (the https handler's RouteStats fields).
void renderHttpRouteMetrics(std::string& out, const ActiveConfig& config) {
  family(out, "edgeplane_proxy_route_http_responses_total", "counter",
         "HTTP responses of each terminated route, by status class.");
  for (const auto& route : config.routes) {
    if (route->spec.kind == RouteKind::Passthrough) {
      continue;
    }
    for (size_t i = 0; i < route->stats->responses.size(); ++i) {
      Labels labels = routeLabels(route->spec);
      const std::string statusClass = std::to_string(i + 1) + "xx";
      labels.emplace_back("class", statusClass);
      sample(out, "edgeplane_proxy_route_http_responses_total", labels,
             route->stats->responses[i].load());
    }
  }
  family(out, "edgeplane_proxy_route_http_request_duration_seconds", "histogram",
         "Time from a request head to its response's last byte, per terminated route.");
  std::array<double, RouteStats::kDurationBucketsMs.size()> bounds{};
  for (size_t i = 0; i < bounds.size(); ++i) {
    bounds[i] = RouteStats::kDurationBucketsMs[i] / 1000.0;
  }
  for (const auto& route : config.routes) {
    if (route->spec.kind == RouteKind::Passthrough) {
      continue;
    }
    const RouteStats& st = *route->stats;
    std::array<uint64_t, RouteStats::kDurationBucketsMs.size() + 1> counts{};
    for (size_t i = 0; i < counts.size(); ++i) {
      counts[i] = st.durationBuckets[i].load();
    }
    prometheus::histogram(out, "edgeplane_proxy_route_http_request_duration_seconds",
                          routeLabels(route->spec), bounds, counts,
                          static_cast<double>(st.durationMsSum.load()) / 1000);
  }
  family(out, "edgeplane_proxy_route_upstream_connect_errors_total", "counter",
         "Failed backend connects of each terminated route (every attempt).");
  for (const auto& route : config.routes) {
    if (route->spec.kind == RouteKind::Passthrough) {
      continue;
    }
    sample(out, "edgeplane_proxy_route_upstream_connect_errors_total", routeLabels(route->spec),
           route->stats->upstreamConnectErrors.load());
  }
}

// The served certificates' expiry, and the ACME lifecycle the reconciler recorded: alert on
// failures > 0 for long, or on time() past a renewal time.
void renderCertificateMetrics(std::string& out, const ActiveConfig& config,
                              const std::vector<AcmeState>& acme) {
  family(out, "edgeplane_certificate_not_after_seconds", "gauge",
         "Expiry (unix seconds) of each certificate the proxy serves.");
  if (config.tls) {
    for (const SnapshotCertificate& c : config.tls->loaded()) {
      sample(out, "edgeplane_certificate_not_after_seconds", {{"certificate", c.name}},
             c.not_after);
    }
  }
  family(out, "edgeplane_acme_consecutive_failures", "gauge",
         "Failed ACME orders of each certificate since its last success (0: none).");
  for (const AcmeState& st : acme) {
    sample(out, "edgeplane_acme_consecutive_failures", {{"certificate", st.name}}, st.failures);
  }
  family(out, "edgeplane_acme_renewal_seconds", "gauge",
         "When each issued ACME certificate is due for renewal (unix seconds).");
  for (const AcmeState& st : acme) {
    if (st.renewAt) {
      sample(out, "edgeplane_acme_renewal_seconds", {{"certificate", st.name}}, *st.renewAt / 1000);
    }
  }
}

// Connections, bytes and failures of each active route.
void renderRouteMetrics(std::string& out, const ActiveConfig& config) {
  family(out, "edgeplane_proxy_route_connections_total", "counter",
         "Connections routed to each active route.");
  for (const auto& route : config.routes) {
    sample(out, "edgeplane_proxy_route_connections_total", routeLabels(route->spec),
           route->stats->connections.load());
  }
  family(out, "edgeplane_proxy_route_bytes_total", "counter",
         "Bytes relayed for each active route; in: client to backend, out: backend to client.");
  for (const auto& route : config.routes) {
    Labels in = routeLabels(route->spec);
    Labels outLabels = in;
    in.emplace_back("direction", "in");
    outLabels.emplace_back("direction", "out");
    sample(out, "edgeplane_proxy_route_bytes_total", in, route->stats->bytesIn.load());
    sample(out, "edgeplane_proxy_route_bytes_total", outLabels, route->stats->bytesOut.load());
  }
  family(out, "edgeplane_proxy_route_failures_total", "counter",
         "Connections of each active route that reached no backend or failed mid-relay.");
  for (const auto& route : config.routes) {
    sample(out, "edgeplane_proxy_route_failures_total", routeLabels(route->spec),
           route->stats->failures.load());
  }
}

void renderBackendUp(std::string& out, const ActiveConfig& config) {
  family(out, "edgeplane_proxy_backend_up", "gauge",
         "1 when the backend gets traffic (its health check passes, or it has none), else 0.");
  for (const auto& route : config.routes) {
    auto keys = health::healthKeys(route->spec);
    if (!keys || keys->size() != route->health.size()) {
      continue;  // a config built without health entries
    }
    std::set<Endpoint> seen;  // a gateway may list one backend under several endpoints
    for (size_t i = 0; i < keys->size(); ++i) {
      if (!seen.insert((*keys)[i].backend).second) {
        continue;
      }
      Labels labels = routeLabels(route->spec);
      const std::string backend = (*keys)[i].backend.str();
      labels.emplace_back("backend", backend);
      sample(out, "edgeplane_proxy_backend_up", labels, route->health[i]->up.load() ? 1 : 0);
    }
  }
}

// The process-wide counters of the engine (Metrics).
void renderProcessCounters(std::string& out, const Metrics& m, uint64_t refused) {
  family(out, "edgeplane_proxy_build_info", "gauge",
         "Always 1; the labels say which edgeplane-proxy build runs.");
  sample(out, "edgeplane_proxy_build_info", {{"version", EDGEPLANE_VERSION}}, 1);
  family(out, "edgeplane_proxy_connections_open", "gauge", "Client connections open now.");
  sample(out, "edgeplane_proxy_connections_open", {}, m.connectionsOpen.load());
  family(out, "edgeplane_proxy_connections_total", "counter", "Client connections accepted.");
  sample(out, "edgeplane_proxy_connections_total", {}, m.connectionsTotal.load());
  family(out, "edgeplane_proxy_bytes_total", "counter",
         "Bytes relayed; in: client to backend, out: backend to client.");
  sample(out, "edgeplane_proxy_bytes_total", {{"direction", "in"}}, m.bytesIn.load());
  sample(out, "edgeplane_proxy_bytes_total", {{"direction", "out"}}, m.bytesOut.load());
  family(out, "edgeplane_proxy_backend_attempt_failures_total", "counter",
         "Backend connect attempts that failed (refused, timed out, no namespace); the "
         "connection may still have reached another backend.");
  sample(out, "edgeplane_proxy_backend_attempt_failures_total", {},
         m.backendAttemptFailures.load());
  family(out, "edgeplane_proxy_errors_total", "counter", "Connections that ended badly, by kind.");
  for (size_t i = 0; i < kErrorKinds; ++i) {
    sample(out, "edgeplane_proxy_errors_total", {{"kind", toString(static_cast<ErrorKind>(i))}},
           m.errors[i].load());
  }
  family(out, "edgeplane_proxy_reloads_total", "counter",
         "Routing snapshots swapped in after the one loaded at startup.");
  sample(out, "edgeplane_proxy_reloads_total", {}, m.reloads.load());
  family(out, "edgeplane_proxy_tls_certificate_errors_total", "counter",
         "Certificates left out of a snapshot generation (unreadable, not PEM, key mismatch, "
         "fingerprint mismatch); their routes cannot terminate TLS.");
  sample(out, "edgeplane_proxy_tls_certificate_errors_total", {}, m.tlsCertificateErrors.load());
  family(out, "edgeplane_proxy_snapshot_refused_total", "counter",
         "Routing snapshots refused (undecodable or with routing table issues).");
  sample(out, "edgeplane_proxy_snapshot_refused_total", {}, refused);
  family(out, "edgeplane_proxy_snapshot_generation", "gauge",
         "Generation of the active routing snapshot (0: none yet).");
  sample(out, "edgeplane_proxy_snapshot_generation", {}, m.generation.load());
}

}  // namespace

std::string renderMetrics(const Metrics& m, const ActiveConfig& config, uint64_t refused,
                          const std::vector<AcmeState>& acme) {
  std::string out;
  out.reserve(4096);
  renderProcessCounters(out, m, refused);
  family(out, "edgeplane_proxy_routes", "gauge", "Routes in the active snapshot.");
  sample(out, "edgeplane_proxy_routes", {}, config.routes.size());
  if (config.gateway) {
    renderGatewayMetrics(out, config.gateway->runtime());
  }
  renderRouteMetrics(out, config);
  renderHttpRouteMetrics(out, config);
  renderCertificateMetrics(out, config, acme);
  renderBackendUp(out, config);
  appendProcessMetrics(out);
  return out;
}

std::string metricsText(Controller& controller, const Metrics& metrics) {
  // An unreadable published state leaves the ACME series out; the proxy's own counters still
  // matter.
  auto acme = controller.acmeStates();
  return renderMetrics(metrics, *controller.current(), controller.refusedCount(),
                       acme ? *acme : std::vector<AcmeState>{});
}

std::string healthzText(Controller& controller) {
  return "{\"status\":\"ok\",\"generation\":" + std::to_string(controller.current()->generation) +
         "}\n";
}

}  // namespace edgeplane::proxy
