// apply's ACME step (see acme_orders.h).
#include "reconciler/cli/acme_orders.h"

#include <chrono>

namespace edgeplane {

namespace {

int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

AcmeOrders runAcmeOrders(const core::Target& target, sys::CertStore& certs,
                         acme::CertificateIssuer& issuer, acme::ChallengeSink& sink,
                         std::chrono::steady_clock::time_point deadline, int64_t now,
                         core::ApplyResult& result,
                         const std::function<void(const std::string&)>& log) {
  AcmeOrders out;
  core::HostState seen;
  std::vector<core::CertTarget> acmeTargets;
  for (const auto& c : target.certificates) {
    if (c.source == core::CertSource::Acme) {
      acmeTargets.push_back(c);
    }
  }
  if (acmeTargets.empty()) {
    return out;
  }
  if (auto observed = certs.observe(acmeTargets, seen); !observed) {
    for (const auto& c : acmeTargets) {
      out.failed.push_back("certificate " + c.name + ": " + observed.error().message);
    }
    return out;
  }
  for (const auto& c : acmeTargets) {
    auto it = seen.generatedCerts.find(c.name);
    auto why = core::acmeOrderDue(c, it == seen.generatedCerts.end() ? nullptr : &it->second, now);
    if (!why) {
      continue;
    }
    log("certificate " + c.name + ": ordering from the ACME CA (" + *why + ")");
    auto issued =
        issuer.obtain(c.domains, c.challenge.value_or(AcmeChallengeType::Http01), sink, deadline);
    if (!issued) {
      out.failed.push_back("certificate " + c.name + ": " + issued.error().message);
      log("certificate " + c.name + ": ACME order failed: " + issued.error().message +
          "; the certificate in place stays");
      continue;
    }
    auto installed = certs.install(c.name, issued->chainPem, std::move(issued->keyPem));
    if (!installed) {
      out.failed.push_back("certificate " + c.name + ": " + installed.error().message);
      log("certificate " + c.name + ": " + installed.error().message);
      continue;
    }
    log("certificate " + c.name + ": issued, " + installed->fingerprint.substr(0, 16) +
        "…, valid until " + std::to_string(installed->notAfter));
    result.certificates[c.name] = std::move(installed).value();
    out.issued.push_back(c.name);
  }
  return out;
}

Result<void> StoreChallengeSink::publish(AcmeChallengeType type, const std::string& domain,
                                         const std::string& token,
                                         const std::string& keyAuthorization) {
  auto r = store_.putAcmeChallenge({token, domain, keyAuthorization, unixMs(), type});
  if (!r) {
    return r.error();
  }
  if (notify_) {
    notify_();
  }
  return {};
}

void StoreChallengeSink::withdraw(const std::vector<std::string>& tokens) {
  (void)store_.removeAcmeChallenges(tokens);
  if (notify_) {
    notify_();
  }
}

}  // namespace edgeplane
