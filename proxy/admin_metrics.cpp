// Prometheus text for the proxy's counters (GET /metrics of the admin API, see admin.h).
#include "proxy/admin.h"

#include <cstdio>
#include <set>
#include <string>
#include <string_view>

#include "proxy/gateway/config.h"
#include "proxy/tls/context.h"

namespace edgeplane::proxy {

namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string labelValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

template <typename T>
void sample(std::string& out, std::string_view name, std::string_view labels, T value) {
  out.append(name);
  if (!labels.empty()) {
    out.append("{").append(labels).append("}");
  }
  out.append(" ").append(std::to_string(value)).append("\n");
}

// The worker gateway's requests by gateway, API key id ("" for the refused ones: missing or
// invalid keys, rate limited) and status code, since the proxy started.
void renderGatewayMetrics(std::string& out, gateway::Runtime& runtime) {
  runtime.collect();
  family(out, "edgeplane_gateway_requests_total", "counter",
         "Worker gateway requests by gateway, API key id (empty: not authenticated) and status.");
  for (const auto& [key, count] : runtime.totals()) {
    const auto& [gw, keyId, code] = key;
    sample(out, "edgeplane_gateway_requests_total",
           "gateway=\"" + labelValue(gw) + "\",key_id=\"" + labelValue(keyId) + "\",code=\"" +
               std::to_string(code) + "\"",
           count);
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
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    for (size_t i = 0; i < route->stats->responses.size(); ++i) {
      sample(out, "edgeplane_proxy_route_http_responses_total",
             labels + ",class=\"" + std::to_string(i + 1) + "xx\"",
             route->stats->responses[i].load());
    }
  }
  family(out, "edgeplane_proxy_route_http_request_duration_seconds", "histogram",
         "Time from a request head to its response's last byte, per terminated route.");
  for (const auto& route : config.routes) {
    if (route->spec.kind == RouteKind::Passthrough) {
      continue;
    }
    const RouteStats& st = *route->stats;
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < st.durationBuckets.size(); ++i) {
      cumulative += st.durationBuckets[i].load();
      char le[32];
      if (i < RouteStats::kDurationBucketsMs.size()) {
        std::snprintf(le, sizeof le, "%g", RouteStats::kDurationBucketsMs[i] / 1000.0);
      } else {
        std::snprintf(le, sizeof le, "+Inf");
      }
      sample(out, "edgeplane_proxy_route_http_request_duration_seconds_bucket",
             labels + ",le=\"" + le + "\"", cumulative);
    }
    char sum[32];
    std::snprintf(sum, sizeof sum, "%.3f", static_cast<double>(st.durationMsSum.load()) / 1000);
    out += "edgeplane_proxy_route_http_request_duration_seconds_sum{" + labels + "} " + sum + "\n";
    sample(out, "edgeplane_proxy_route_http_request_duration_seconds_count", labels, cumulative);
  }
  family(out, "edgeplane_proxy_route_upstream_connect_errors_total", "counter",
         "Failed backend connects of each terminated route (every attempt).");
  for (const auto& route : config.routes) {
    if (route->spec.kind == RouteKind::Passthrough) {
      continue;
    }
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    sample(out, "edgeplane_proxy_route_upstream_connect_errors_total", labels,
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
      sample(out, "edgeplane_certificate_not_after_seconds",
             "certificate=\"" + labelValue(c.name) + "\"", c.not_after);
    }
  }
  family(out, "edgeplane_acme_consecutive_failures", "gauge",
         "Failed ACME orders of each certificate since its last success (0: none).");
  for (const AcmeState& st : acme) {
    sample(out, "edgeplane_acme_consecutive_failures",
           "certificate=\"" + labelValue(st.name) + "\"", st.failures);
  }
  family(out, "edgeplane_acme_renewal_seconds", "gauge",
         "When each issued ACME certificate is due for renewal (unix seconds).");
  for (const AcmeState& st : acme) {
    if (st.renewAt) {
      sample(out, "edgeplane_acme_renewal_seconds", "certificate=\"" + labelValue(st.name) + "\"",
             *st.renewAt / 1000);
    }
  }
}

}  // namespace

std::string renderMetrics(const Metrics& m, const ActiveConfig& config, uint64_t refused,
                          const std::vector<AcmeState>& acme) {
  std::string out;
  out.reserve(4096);
  family(out, "edgeplane_proxy_connections_open", "gauge", "Client connections open now.");
  sample(out, "edgeplane_proxy_connections_open", "", m.connectionsOpen.load());
  family(out, "edgeplane_proxy_connections_total", "counter", "Client connections accepted.");
  sample(out, "edgeplane_proxy_connections_total", "", m.connectionsTotal.load());
  family(out, "edgeplane_proxy_bytes_total", "counter",
         "Bytes relayed; in: client to backend, out: backend to client.");
  sample(out, "edgeplane_proxy_bytes_total", "direction=\"in\"", m.bytesIn.load());
  sample(out, "edgeplane_proxy_bytes_total", "direction=\"out\"", m.bytesOut.load());
  family(out, "edgeplane_proxy_backend_attempt_failures_total", "counter",
         "Backend connect attempts that failed (refused, timed out, no namespace); the "
         "connection may still have reached another backend.");
  sample(out, "edgeplane_proxy_backend_attempt_failures_total", "",
         m.backendAttemptFailures.load());
  family(out, "edgeplane_proxy_errors_total", "counter", "Connections that ended badly, by kind.");
  for (size_t i = 0; i < kErrorKinds; ++i) {
    std::string labels = "kind=\"" + labelValue(toString(static_cast<ErrorKind>(i))) + "\"";
    sample(out, "edgeplane_proxy_errors_total", labels, m.errors[i].load());
  }
  family(out, "edgeplane_proxy_reloads_total", "counter",
         "Routing snapshots swapped in after the one loaded at startup.");
  sample(out, "edgeplane_proxy_reloads_total", "", m.reloads.load());
  family(out, "edgeplane_proxy_tls_certificate_errors_total", "counter",
         "Certificates left out of a snapshot generation (unreadable, not PEM, key mismatch, "
         "fingerprint mismatch); their routes cannot terminate TLS.");
  sample(out, "edgeplane_proxy_tls_certificate_errors_total", "", m.tlsCertificateErrors.load());
  family(out, "edgeplane_proxy_snapshot_refused_total", "counter",
         "Routing snapshots refused (undecodable or with routing table issues).");
  sample(out, "edgeplane_proxy_snapshot_refused_total", "", refused);
  family(out, "edgeplane_proxy_snapshot_generation", "gauge",
         "Generation of the active routing snapshot (0: none yet).");
  sample(out, "edgeplane_proxy_snapshot_generation", "", m.generation.load());
  family(out, "edgeplane_proxy_routes", "gauge", "Routes in the active snapshot.");
  sample(out, "edgeplane_proxy_routes", "", config.routes.size());
  if (config.gateway) {
    renderGatewayMetrics(out, config.gateway->runtime());
  }

  family(out, "edgeplane_proxy_route_connections_total", "counter",
         "Connections routed to each active route.");
  for (const auto& route : config.routes) {
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    sample(out, "edgeplane_proxy_route_connections_total", labels,
           route->stats->connections.load());
  }
  family(out, "edgeplane_proxy_route_bytes_total", "counter",
         "Bytes relayed for each active route; in: client to backend, out: backend to client.");
  for (const auto& route : config.routes) {
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    sample(out, "edgeplane_proxy_route_bytes_total", labels + ",direction=\"in\"",
           route->stats->bytesIn.load());
    sample(out, "edgeplane_proxy_route_bytes_total", labels + ",direction=\"out\"",
           route->stats->bytesOut.load());
  }
  family(out, "edgeplane_proxy_route_failures_total", "counter",
         "Connections of each active route that reached no backend or failed mid-relay.");
  for (const auto& route : config.routes) {
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    sample(out, "edgeplane_proxy_route_failures_total", labels, route->stats->failures.load());
  }
  renderHttpRouteMetrics(out, config);
  renderCertificateMetrics(out, config, acme);
  family(out, "edgeplane_proxy_backend_up", "gauge",
         "1 when the backend gets traffic (its health check passes, or it has none), else 0.");
  for (const auto& route : config.routes) {
    auto keys = health::healthKeys(route->spec);
    if (!keys || keys->size() != route->health.size()) {
      continue;  // a config built without health entries
    }
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\",backend=\"";
    std::set<Endpoint> seen;  // a gateway may list one backend under several endpoints
    for (size_t i = 0; i < keys->size(); ++i) {
      if (!seen.insert((*keys)[i].backend).second) {
        continue;
      }
      sample(out, "edgeplane_proxy_backend_up",
             labels + labelValue((*keys)[i].backend.str()) + "\"",
             route->health[i]->up.load() ? 1 : 0);
    }
  }
  return out;
}

}  // namespace edgeplane::proxy
