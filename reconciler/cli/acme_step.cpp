// apply's ACME step on this host (see acme_step.h).
#include "reconciler/cli/acme_step.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <optional>
#include <random>
#include <string>

#include "reconciler/acme/client.h"
#include "reconciler/cli/proxy_admin.h"
#include "reconciler/cli/publish.h"

namespace edgeplane::cli {
namespace {

// `target` with a challenge for each ACME certificate that names none: HTTP-01, or TLS-ALPN-01
// when the proxy says its :80 is off (HTTP-01 when it cannot be asked: it may be starting).
// A DNS-01 certificate while the proxy's DNS responder is off is said in the log: its order
// can only fail.
core::Target withAcmeChallenges(const Options& o, const core::Target& target,
                                const std::function<void(const std::string&)>& log) {
  core::Target out = target;
  auto acme = [](const core::CertTarget& c, std::optional<AcmeChallengeType> challenge) {
    return c.source == core::CertSource::Acme && c.challenge == challenge;
  };
  const bool unset = std::any_of(out.certificates.begin(), out.certificates.end(),
                                 [&](auto& c) { return acme(c, std::nullopt); });
  const bool dns = std::any_of(out.certificates.begin(), out.certificates.end(),
                               [&](auto& c) { return acme(c, AcmeChallengeType::Dns01); });
  if (!unset && !dns) {
    return out;
  }
  auto listeners = queryProxyListeners(o.proxyAdmin, kProxyNotifyTimeout, o.proxyAdminTokenFile);
  if (!listeners) {
    log("cannot ask the proxy for its listeners (" + listeners.error().message +
        (unset ? "); certificates without 'challenge' use http-01" : ")"));
  }
  const bool httpOff = listeners && listeners->http == "off";
  for (auto& c : out.certificates) {
    if (acme(c, std::nullopt)) {
      c.challenge = core::acmeDefaultChallenge(httpOff);
    } else if (listeners && listeners->dns == "off" && acme(c, AcmeChallengeType::Dns01)) {
      log("certificate " + c.name +
          " is validated by DNS-01 but the proxy's DNS responder is off (edgeplane-proxy --dns "
          "ADDR:PORT, with _acme-challenge delegated to it)");
    }
  }
  return out;
}

}  // namespace

AcmeOrders orderAcmeCertificates(const Options& o, const Desired& all, const core::Target& target,
                                 Store& store, sys::CertStore& certs, core::ApplyResult& result) {
  const Fleet fleet = all.fleet.value_or(Fleet{});
  acme::ClientSettings settings{fleet.acme_directory.value_or(std::string(kDefaultAcmeDirectory)),
                                fleet.acme_email, fleet.acme_ca_roots.value_or(""), o.stateDir,
                                fleet.acme_eab_file.value_or("")};
  auto client = acme::makeAcmeClient(std::move(settings));
  // The proxy serves the answers from the files published for it, told at once.
  StoreChallengeSink sink(store, [&o, &store]() -> Result<void> {
    if (auto fed = publishProxyFeed(o.stateDir, store); !fed) {
      return Error{"the proxy's files not written: " + fed.error().message, false};
    }
    (void)notifyProxy(o.proxyAdmin, kProxyNotifyTimeout, o.proxyAdminTokenFile);
    return {};
  });
  AcmeRunClock clock;
  clock.deadline =
      std::chrono::steady_clock::now() + fleet.acme_timeout.value_or(kDefaultAcmeTimeout);
  clock.now = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  clock.backoffFloor = acmeBackoffFloorFromEnv();
  std::mt19937_64 rng{std::random_device{}()};
  clock.random = [&rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); };
  auto log = [](const std::string& line) { std::cerr << "edgeplane apply: " << line << "\n"; };
  AcmeOrders orders = runAcmeOrders(withAcmeChallenges(o, target, log), certs, *client, sink, store,
                                    clock, result, log);
  // The lifecycle the proxy's /metrics shows, when it changed (the run's feed was published
  // before this step; the challenges' answers are published as they come and go).
  if (orders.stateChanged) {
    if (auto fed = publishProxyFeed(o.stateDir, store); !fed) {
      log("the ACME state is not published for the proxy: " + fed.error().message);
    }
  }
  return orders;
}

}  // namespace edgeplane::cli
