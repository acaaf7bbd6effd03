// Access-log formatting (see access_log.h).
#include "proxy/engine/access_log.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>

namespace edgeplane::proxy {

void formatEndpoint(const Endpoint& e, char* out, size_t size) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (e.address.family == IpAddress::Family::V4) {
    ::inet_ntop(AF_INET, e.address.bytes.data(), ip, sizeof ip);
    std::snprintf(out, size, "%s:%u", ip, static_cast<unsigned>(e.port));
  } else {
    ::inet_ntop(AF_INET6, e.address.bytes.data(), ip, sizeof ip);
    std::snprintf(out, size, "[%s]:%u", ip, static_cast<unsigned>(e.port));
  }
}

std::string_view outcomeName(Outcome outcome) {
  switch (outcome.kind) {
    case Outcome::Ok:
      return "ok";
    case Outcome::Error:
      return toString(outcome.error);
    case Outcome::Empty:
      return "empty";
    case Outcome::Shutdown:
      return "shutdown";
    case Outcome::Revoked:
      return "revoked";
  }
  return "ok";
}

void writeLogLine(Context& ctx, char* line, size_t capacity, int len) {
  if (len <= 0) {
    return;
  }
  size_t n = std::min(static_cast<size_t>(len), capacity - 1);
  line[n - 1] = '\n';  // a truncated line still ends the record
  ctx.accessLog(std::string_view(line, n));
}

void logConnection(const Connection& conn, const char* backend, uint64_t in, uint64_t out,
                   Outcome outcome) {
  Context& ctx = conn.context();
  if (!ctx.options().accessLog) {
    return;
  }
  char client[64];
  formatEndpoint(conn.client(), client, sizeof client);
  const ActiveRoute* route = conn.route();
  std::string_view kind = route != nullptr ? toString(route->spec.kind) : "";
  std::string_view name = route != nullptr ? std::string_view(route->spec.name) : "-";
  std::string_view result = outcomeName(outcome);
  const std::string& sni = conn.serverName();
  long long ms = static_cast<long long>(ctx.now() - conn.startMs());
  char line[kMaxLogLine];
  int n = std::snprintf(line, sizeof line,
                        "access client=%s sni=%s route=\"%.*s%s%.*s\" backend=%s in=%llu "
                        "out=%llu ms=%lld outcome=%.*s\n",
                        client, sni.empty() ? "-" : sni.c_str(), static_cast<int>(kind.size()),
                        kind.data(), kind.empty() ? "" : " ", static_cast<int>(name.size()),
                        name.data(), backend != nullptr ? backend : "-",
                        static_cast<unsigned long long>(in), static_cast<unsigned long long>(out),
                        ms, static_cast<int>(result.size()), result.data());
  writeLogLine(ctx, line, sizeof line, n);
}

}  // namespace edgeplane::proxy
