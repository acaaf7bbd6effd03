// edgeplane-proxy entry point: command line, startup order, signals and the orderly shutdown.
// The Engine serves the traffic; the Controller feeds it snapshots; the AdminServer answers.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "edgeplane_version.h"
#include "proxy/admin.h"
#include "proxy/control.h"
#include "proxy/dns/responder.h"
#include "proxy/engine.h"
#include "proxy/health/prober.h"
#include "reconciler/system/local_http.h"
#include "reconciler/system/service_manager.h"
#include "schema/net.h"
#include "schema/proxy_feed.h"

namespace {

using namespace edgeplane;
using namespace edgeplane::proxy;
namespace fs = std::filesystem;

constexpr const char* kUsage =
    "Usage: edgeplane-proxy [OPTION]...\n"
    "Serve this edge host's public traffic from the routing snapshot that edgeplane published\n"
    "in the state directory: TLS passthrough by SNI, TLS termination with HTTP/1.1 reverse\n"
    "proxying, the worker gateway, ACME challenges, and an admin API. A new snapshot is swapped\n"
    "in without dropping established connections (SIGHUP: re-read it now); SIGTERM drains, then\n"
    "exits.\n"
    "\n"
    "Options:\n"
    "  --state-dir DIR             the state directory: published/ read, proxy/ written (default\n"
    "                              $EDGEPLANE_STATE_DIR, else /var/lib/edgeplane)\n"
    "  --https ADDR:PORT           the TLS listener (default 0.0.0.0:443)\n"
    "  --http ADDR:PORT|off        the HTTP listener: ACME HTTP-01 answers and redirects to\n"
    "                              HTTPS (default 0.0.0.0:80)\n"
    "  --dns ADDR:PORT|off         an authoritative DNS responder (UDP and TCP) for the TXT\n"
    "                              records _acme-challenge.<domain> of pending ACME DNS-01\n"
    "                              challenges, REFUSED for everything else; delegate\n"
    "                              _acme-challenge.<domain> to it with an NS record (default\n"
    "                              off)\n"
    "  --admin unix:PATH|ADDR:PORT\n"
    "                              the admin API, on loopback or a unix socket only (default\n"
    "                              unix:<state-dir>/proxy/admin.sock); on the unix socket only\n"
    "                              root and the proxy's own user may talk to it\n"
    "  --admin-allow-gid GID       also group GID on the admin unix socket (the socket becomes\n"
    "                              0660, that group's)\n"
    "  --admin-token-file FILE     required by a TCP --admin: a file of mode 0600 holding at\n"
    "                              least 16 characters; every request carries\n"
    "                              Authorization: Bearer <its text>, else 401\n"
    "  --metrics ADDR:PORT|off     a loopback address serving GET /metrics (Prometheus) and\n"
    "                              /healthz without the admin token, and nothing else\n"
    "                              (read-only; default off)\n"
    "  --netns-dir DIR             where the routes' network namespaces are named (default\n"
    "                              /run/netns)\n"
    "  --workers N                 event loops (default 0: one per CPU)\n"
    "  --max-connections N         connections of the whole process (default 20000)\n"
    "  --max-connections-per-ip N  per client IPv4 address or IPv6 /64 (default 1000); a\n"
    "                              connection over a cap is reset at accept; 0: no cap\n"
    "  --max-pending-hellos-per-ip N\n"
    "                              :443 connections still in their ClientHello, per client\n"
    "                              IPv4 address or IPv6 /64 (default 100; 0: no cap)\n"
    "  --hello-timeout D           for the ClientHello (default 5s)\n"
    "  --connect-timeout D         for a backend's connect (default 3s)\n"
    "  --idle-timeout D            a connection that moves no bytes (default 5m)\n"
    "  --header-timeout D          sites: for a request head (default 10s)\n"
    "  --keep-alive-timeout D      sites: idle between requests (default 60s)\n"
    "  --response-timeout D        sites: for a backend's response head (default 60s)\n"
    "  --drain-timeout D           on SIGTERM, for connections in flight (default 30s)\n"
    "  --no-access-log             no access log lines\n"
    "  -h, --help                  print this help and exit\n"
    "  --version                   print the version and exit\n"
    "\n"
    "Durations D are like 500ms, 1.5s, 2m or 1h30m. Every option also takes the form "
    "--option=VALUE.\n";

struct Options {
  fs::path stateDir;
  EngineOptions engine;
  std::optional<std::string> admin;  // unset: the unix socket in the state directory
  std::optional<fs::path> adminTokenFile;
  std::optional<gid_t> adminAllowGid;
  std::optional<LocalAddress> metrics;  // unset: no metrics-only endpoint
  std::optional<Endpoint> dns;          // unset: no DNS-01 responder
  std::chrono::milliseconds drainTimeout{30000};
  bool help = false;  // --help, -h: the usage on stdout, exit 0 (help2man reads it)
  bool version = false;
};

Result<Endpoint> parseListen(std::string_view flag, std::string_view value) {
  auto endpoint = parseListenAddress(value);
  if (!endpoint) {
    return terminal(std::string(flag) + ": expected ADDR:PORT (an IP literal), got \"" +
                    std::string(value) + "\"");
  }
  return *endpoint;
}

Result<std::chrono::milliseconds> parseTimeout(std::string_view flag, std::string_view value) {
  auto d = parseDuration(value);
  if (!d) {
    return terminal(std::string(flag) + ": " + durationProblem(value, kMaxDuration));
  }
  return *d;
}

Result<uint64_t> parseCount(std::string_view flag, std::string_view value, uint64_t min,
                            uint64_t max) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || end != value.data() + value.size() || n < min || n > max) {
    return terminal(std::string(flag) + ": expected an integer from " + std::to_string(min) +
                    " to " + std::to_string(max) + ", got \"" + std::string(value) + "\"");
  }
  return n;
}

// --metrics off | a loopback ADDR:PORT. Not a unix socket: Prometheus cannot scrape one, and
// the admin socket already serves /metrics to local clients.
Result<void> parseMetricsFlag(Options& o, std::string_view v) {
  if (v == "off") {
    o.metrics.reset();
    return {};
  }
  auto address = LocalAddress::parse(v, "--metrics");
  if (!address) {
    return address.error();
  }
  if (address->unixPath) {
    return terminal("--metrics takes a loopback ADDR:PORT, got \"" + std::string(v) +
                    "\" (the admin socket serves /metrics on a unix socket)");
  }
  o.metrics = *address;
  return {};
}

template <typename Field>  // fs::path or std::string
Result<void> setPath(Field& field, std::string_view flag, std::string_view v) {
  if (v.empty()) {
    return terminal(std::string(flag) + ": empty path");
  }
  field = Field(v);
  return {};
}

// A listener's ADDR:PORT, or "off" where the listener may be off (`field` optional).
template <typename Field>
Result<void> setListener(Field& field, std::string_view flag, std::string_view v) {
  if constexpr (std::is_same_v<Field, std::optional<Endpoint>>) {
    if (v == "off") {
      field.reset();
      return {};
    }
  }
  auto endpoint = parseListen(flag, v);
  if (!endpoint) {
    return endpoint.error();
  }
  field = *endpoint;
  return {};
}

Result<void> setDuration(std::chrono::milliseconds& field, std::string_view flag,
                         std::string_view v) {
  auto d = parseTimeout(flag, v);
  if (!d) {
    return d.error();
  }
  field = *d;
  return {};
}

template <typename Field>
Result<void> setCount(Field& field, std::string_view flag, std::string_view v, uint64_t min,
                      uint64_t max) {
  auto n = parseCount(flag, v, min, max);
  if (!n) {
    return n.error();
  }
  field = static_cast<Field>(*n);
  return {};
}

// A flag that takes a value, and what it does with it.
struct ValueFlag {
  std::string_view name;
  Result<void> (*apply)(Options& o, std::string_view flag, std::string_view value);
};

using SV = std::string_view;
constexpr ValueFlag kValueFlags[] = {
    {"--state-dir", [](Options& o, SV f, SV v) { return setPath(o.stateDir, f, v); }},
    {"--https", [](Options& o, SV f, SV v) { return setListener(o.engine.https, f, v); }},
    {"--http", [](Options& o, SV f, SV v) { return setListener(o.engine.http, f, v); }},
    {"--dns", [](Options& o, SV f, SV v) { return setListener(o.dns, f, v); }},
    {"--metrics", [](Options& o, SV, SV v) { return parseMetricsFlag(o, v); }},
    {"--admin",
     [](Options& o, SV, SV v) -> Result<void> {
       o.admin = std::string(v);
       return {};
     }},
    {"--admin-token-file",
     [](Options& o, SV f, SV v) { return setPath(o.adminTokenFile.emplace(), f, v); }},
    {"--admin-allow-gid",
     [](Options& o, SV f, SV v) {
       return setCount(o.adminAllowGid.emplace(), f, v, 0, 0xFFFFFFFEu);
     }},
    {"--netns-dir", [](Options& o, SV f, SV v) { return setPath(o.engine.netnsDir, f, v); }},
    {"--workers", [](Options& o, SV f, SV v) { return setCount(o.engine.workers, f, v, 0, 1024); }},
    {"--max-connections",
     [](Options& o, SV f, SV v) { return setCount(o.engine.maxConnections, f, v, 1, 10'000'000); }},
    {"--max-connections-per-ip",
     [](Options& o, SV f, SV v) {
       return setCount(o.engine.maxConnectionsPerIp, f, v, 0, 10'000'000);
     }},
    {"--max-pending-hellos-per-ip",
     [](Options& o, SV f, SV v) {
       return setCount(o.engine.maxPendingHellosPerIp, f, v, 0, 10'000'000);
     }},
    {"--hello-timeout",
     [](Options& o, SV f, SV v) { return setDuration(o.engine.helloTimeout, f, v); }},
    {"--idle-timeout",
     [](Options& o, SV f, SV v) { return setDuration(o.engine.idleTimeout, f, v); }},
    {"--connect-timeout",
     [](Options& o, SV f, SV v) { return setDuration(o.engine.connectTimeout, f, v); }},
    {"--header-timeout",
     [](Options& o, SV f, SV v) { return setDuration(o.engine.headerTimeout, f, v); }},
    {"--keep-alive-timeout",
     [](Options& o, SV f, SV v) { return setDuration(o.engine.keepAliveTimeout, f, v); }},
    {"--response-timeout",
     [](Options& o, SV f, SV v) { return setDuration(o.engine.responseTimeout, f, v); }},
    {"--drain-timeout", [](Options& o, SV f, SV v) { return setDuration(o.drainTimeout, f, v); }},
};

// "--flag value" and "--flag=value" alike.
Result<Options> parseArgs(int argc, char** argv) {
  Options o;
  o.engine.https = *Endpoint::parse("0.0.0.0:443");
  o.engine.http = *Endpoint::parse("0.0.0.0:80");
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view flag = arg;
    std::optional<std::string_view> value;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (flag == "--help" || flag == "-h" || flag == "--version" || flag == "--no-access-log") {
      if (value) {
        return terminal(std::string(flag) + " takes no value");
      }
      if (flag == "--version") {
        o.version = true;
      } else if (flag == "--no-access-log") {
        o.engine.accessLog = false;
      } else {
        o.help = true;
      }
      continue;
    }
    const auto known = std::find_if(std::begin(kValueFlags), std::end(kValueFlags),
                                    [&](const ValueFlag& f) { return f.name == flag; });
    if (known == std::end(kValueFlags)) {
      return terminal("unknown argument \"" + std::string(arg) + "\"");
    }
    if (!value) {
      if (i + 1 >= argc) {
        return terminal(std::string(flag) + " needs a value");
      }
      value = std::string_view(argv[++i]);
    }
    if (auto applied = known->apply(o, flag, *value); !applied) {
      return applied.error();
    }
  }
  if (o.stateDir.empty()) {  // no --state-dir (which refuses an empty path)
    const char* env = std::getenv("EDGEPLANE_STATE_DIR");
    o.stateDir = env != nullptr && *env != '\0' ? env : "/var/lib/edgeplane";
  }
  return o;
}

// Who may use the admin API: a TCP address needs the token file, the unix socket checks peers.
Result<AdminAccess> adminAccess(const Options& o, const AdminAddress& admin) {
  AdminAccess access;
  access.ownUid = ::geteuid();
  if (admin.unixPath) {
    if (o.adminTokenFile) {
      return terminal(
          "--admin-token-file is for a TCP --admin address; the unix socket checks "
          "its peer's user instead (see --admin-allow-gid)");
    }
    access.allowedGid = o.adminAllowGid;
    return access;
  }
  if (o.adminAllowGid) {
    return terminal(
        "--admin-allow-gid is for the unix socket; a TCP --admin address is "
        "guarded by --admin-token-file");
  }
  if (!o.adminTokenFile) {
    return terminal("--admin " + admin.str() +
                    " is TCP, which every local user can reach: give --admin-token-file FILE "
                    "(mode 0600), or use a unix socket");
  }
  auto token = loadAdminToken(*o.adminTokenFile);
  if (!token) {
    return token.error();
  }
  access.token = *token;
  return access;
}

// The proxy's own log lines (not the access log): with a syslog priority under journald.
void logLine(const std::string& line, LogPriority priority = LogPriority::kInfo) {
  const std::string_view prefix = logPrefix(priority);
  std::fprintf(stderr, "%.*sedgeplane-proxy: %s\n", static_cast<int>(prefix.size()), prefix.data(),
               line.c_str());
}

// The state directory, and the proxy's own directory in it (its admin socket by default, its
// store). The rest is the reconciler's: the proxy only reads what it publishes (published/)
// and the certificates (certs/), and under its unit sees nothing else of the state directory.
bool ensureStateDir(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    return true;
  }
  if (!fs::create_directories(dir, ec)) {
    logLine("cannot create the state directory " + dir.string() + ": " + ec.message(),
            LogPriority::kErr);
    return false;
  }
  ::chmod(dir.c_str(), 0700);
  return true;
}

// Prometheus' read-only endpoint (--metrics), or none.
Result<std::unique_ptr<MetricsServer>> startMetrics(const Options& o, Controller& controller,
                                                    Metrics& metrics) {
  if (!o.metrics) {
    return std::unique_ptr<MetricsServer>();
  }
  auto started = MetricsServer::start(
      *o.metrics, {[&controller, &metrics] { return metricsText(controller, metrics); },
                   [&controller] { return healthzText(controller); }});
  if (!started) {
    return started.error();
  }
  std::printf("edgeplane-proxy: metrics on %s\n", (*started)->address().c_str());
  return std::move(*started);
}

// The DNS-01 responder (--dns), or none; `listener` is its bound address, or "off".
Result<std::unique_ptr<dns::Responder>> startDns(
    const Options& o, const std::shared_ptr<AcmeChallengeBoard>& challenges,
    std::string& listener) {
  listener = "off";
  if (!o.dns) {
    return std::unique_ptr<dns::Responder>();
  }
  dns::ResponderOptions options;
  options.address = *o.dns;
  options.board = challenges;
  options.log = [](const std::string& line) { logLine(line, LogPriority::kWarning); };
  auto started = dns::Responder::start(std::move(options));
  if (!started) {
    return started.error();
  }
  Endpoint bound = *o.dns;
  bound.port = (*started)->port();
  listener = bound.str();
  logLine("DNS-01 responder on " + listener + " (udp, tcp)");
  return std::move(*started);
}

// One stable line the tests and the lab scripts parse; keep its shape.
void announceListeners(const Options& o, const Engine& e, Controller& controller,
                       const std::string& admin, const std::string& dnsListener) {
  Endpoint https = o.engine.https;
  https.port = e.httpsPort();
  std::string http = "off";
  if (o.engine.http && e.httpPort()) {
    Endpoint bound = *o.engine.http;
    bound.port = *e.httpPort();
    http = bound.str();
  }
  controller.setListeners(Listeners{https.str(), http, dnsListener});
  std::printf("edgeplane-proxy: listening https=%s http=%s admin=%s generation=%lld\n",
              https.str().c_str(), http.c_str(), admin.c_str(),
              static_cast<long long>(controller.current()->generation));
  std::fflush(stdout);
}

// Serves until SIGTERM or SIGINT, reloading the snapshot on SIGHUP; returns the signal.
int serveUntilStopped(const sigset_t& signals, Controller& controller) {
  auto serving = [&controller] {
    return "serving snapshot generation " + std::to_string(controller.current()->generation);
  };
  ServiceManager::ready(serving());
  int signal = 0;
  for (;;) {
    if (sigwait(&signals, &signal) != 0) {
      continue;
    }
    if (signal != SIGHUP) {
      return signal;
    }
    ServiceManager::reloading();
    ReloadOutcome r = controller.reload();
    if (!r.changed && r.error.empty()) {
      logLine("SIGHUP: generation " + std::to_string(r.active) + " is already the newest");
    }
    ServiceManager::ready(serving());
  }
}

// Stops accepting and lets the open connections finish, for up to --drain-timeout.
void drain(const Options& o, int signal, Engine& e) {
  const std::string upTo = "draining for up to " + formatDuration(o.drainTimeout);
  ServiceManager::stopping(upTo);
  logLine(std::string(signal == SIGINT ? "SIGINT" : "SIGTERM") + ": no longer accepting; " + upTo);
  e.stopAccepting();
  // The count comes from the drain itself: by the time it returns, none are open any more.
  size_t cut = 0;
  bool drained = e.drain(o.drainTimeout, &cut);
  logLine(drained ? "all connections finished"
                  : "drain timeout: closed " + std::to_string(cut) + " open connections",
          drained ? LogPriority::kInfo : LogPriority::kWarning);
}

// Health checks follow the same configs as the engine; transitions are logged here, once.
Result<std::unique_ptr<health::Prober>> startProber(const Options& o, Controller& controller) {
  health::ProberOptions options;
  options.netnsDir = o.engine.netnsDir;
  options.onEvent = [](const health::HealthEvent& event) { logLine(health::formatEvent(event)); };
  return health::Prober::start(controller.health(), options, controller.current());
}

// The command line, the admin address and its access: an exit status when it stops here.
std::optional<int> parseCommandLine(int argc, char** argv, Options& o, AdminAddress& admin,
                                    AdminAccess& access) {
  auto parsed = parseArgs(argc, argv);
  if (!parsed) {
    std::fprintf(stderr,
                 "edgeplane-proxy: %s\nTry 'edgeplane-proxy --help' for more information.\n",
                 parsed.error().message.c_str());
    return 2;
  }
  o = std::move(*parsed);
  if (o.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (o.version) {
    std::printf("edgeplane-proxy %s\n", EDGEPLANE_VERSION);
    return 0;
  }
  auto address = AdminAddress::parse(o.admin.value_or(defaultProxyAdmin(o.stateDir)));
  if (!address) {
    std::fprintf(stderr, "edgeplane-proxy: --admin: %s\n", address.error().message.c_str());
    return 2;
  }
  admin = *address;
  auto allowed = adminAccess(o, admin);
  if (!allowed) {
    std::fprintf(stderr, "edgeplane-proxy: %s\n", allowed.error().message.c_str());
    return 2;
  }
  access = *allowed;
  return std::nullopt;
}

int run(int argc, char** argv) {
  // Before any thread exists, so that every thread inherits the mask and only sigwait below
  // sees these signals.
  const sigset_t signals = blockDaemonSignals();
  Options o;
  AdminAddress admin;
  AdminAccess access;
  if (auto status = parseCommandLine(argc, argv, o, admin, access)) {
    return *status;
  }
  if (!ensureStateDir(o.stateDir) || !ensureStateDir(proxyOwnDir(o.stateDir))) {
    return 1;
  }

  Metrics metrics;
  ControllerOptions controlOptions;
  controlOptions.stateDir = o.stateDir;
  auto challenges = std::make_shared<AcmeChallengeBoard>();
  controlOptions.acmeChallenges = challenges;
  controlOptions.dnsResponder = o.dns.has_value();
  o.engine.acmeChallenges = challenges;
  Controller controller(controlOptions, metrics);
  (void)controller.reload();  // a store problem is logged by the controller, once

  // The admin socket first: it refuses to start next to a running proxy (a live socket)
  // before any public port is taken; Prometheus' endpoint too: a taken port stops startup.
  auto server = AdminServer::start(admin, controller, metrics, access);
  if (!server) {
    logLine(server.error().message, LogPriority::kErr);
    return 1;
  }
  auto metricsServer = startMetrics(o, controller, metrics);
  if (!metricsServer) {
    logLine(metricsServer.error().message, LogPriority::kErr);
    return 1;
  }

  // With the config loaded above, so the first connections (already queued when the
  // listeners are bound, on a restart under load) are routed rather than closed as no_route.
  auto engine = Engine::start(o.engine, metrics, controller.current());
  if (!engine) {
    logLine(engine.error().message, LogPriority::kErr);
    return 1;
  }
  Engine& e = **engine;
  auto prober = startProber(o, controller);
  if (!prober) {
    logLine(prober.error().message, LogPriority::kErr);
    return 1;
  }
  health::Prober& p = **prober;
  std::string dnsListener;
  auto dnsResponder = startDns(o, challenges, dnsListener);
  if (!dnsResponder) {
    logLine(dnsResponder.error().message);
    return 1;
  }
  controller.setSink([&e, &p](std::shared_ptr<const ActiveConfig> config) {
    p.setConfig(config);
    e.setConfig(std::move(config));
  });
  announceListeners(o, e, controller, (*server)->address(), dnsListener);

  controller.startWatcher();
  drain(o, serveUntilStopped(signals, controller), e);
  p.stop();  // joins the prober; its probes in flight are closed
  if (*dnsResponder) {
    (*dnsResponder)->stop();  // joins its thread; a TCP query in flight is cut
  }
  controller.stopWatcher();  // joins the watcher and writes the last traffic deltas
  metricsServer->reset();
  server->reset();
  engine->reset();
  logLine("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Startup and shutdown run POCO and the standard library, which may throw (bad_alloc, a
  // POCO exception at an edge): report it once and exit non-zero rather than abort.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgeplane-proxy: fatal: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "edgeplane-proxy: fatal: unknown exception\n");
  }
  return 1;
}
