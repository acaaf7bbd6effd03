// Names of the proxy's shared counters (see runtime.h).
#include "proxy/runtime.h"

namespace edgeplane::proxy {

std::string_view toString(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::HelloMalformed:
      return "hello_malformed";
    case ErrorKind::HelloTimeout:
      return "hello_timeout";
    case ErrorKind::NoRoute:
      return "no_route";
    case ErrorKind::RouteUnsupported:
      return "route_unsupported";
    case ErrorKind::UpstreamConnect:
      return "upstream_connect";
    case ErrorKind::IdleTimeout:
      return "idle_timeout";
    case ErrorKind::ConnectionLimit:
      return "connection_limit";
    case ErrorKind::IpConnectionLimit:
      return "ip_connection_limit";
    case ErrorKind::IpHelloLimit:
      return "ip_hello_limit";
    case ErrorKind::Relay:
      return "relay";
    case ErrorKind::HttpMalformed:
      return "http_malformed";
    case ErrorKind::TlsCertificate:
      return "tls_certificate";
    case ErrorKind::TlsHandshake:
      return "tls_handshake";
    case ErrorKind::UpstreamTimeout:
      return "upstream_timeout";
    case ErrorKind::kCount:
      break;
  }
  return "unknown";
}

void RouteStats::observeRequest(int status, int64_t ms) {
  if (status >= 100 && status < 600) {
    responses[static_cast<size_t>(status / 100 - 1)].fetch_add(1, std::memory_order_relaxed);
  }
  size_t i = 0;
  while (i < kDurationBucketsMs.size() && ms > static_cast<int64_t>(kDurationBucketsMs[i])) {
    ++i;
  }
  durationBuckets[i].fetch_add(1, std::memory_order_relaxed);
  durationMsSum.fetch_add(static_cast<uint64_t>(ms < 0 ? 0 : ms), std::memory_order_relaxed);
}

}  // namespace edgeplane::proxy
