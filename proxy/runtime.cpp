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
    case ErrorKind::Relay:
      return "relay";
    case ErrorKind::HttpMalformed:
      return "http_malformed";
    case ErrorKind::kCount:
      break;
  }
  return "unknown";
}

}  // namespace edgeplane::proxy
