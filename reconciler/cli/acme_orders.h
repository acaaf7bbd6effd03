// apply's ACME step: after the kernel operations and the run's first snapshot, every due
// `issuer = "acme"` certificate is ordered (within the run's budget) and installed under
// <state-dir>/certs; the caller republishes the snapshot with what was issued.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "reconciler/acme/client.h"
#include "reconciler/core/apply.h"
#include "reconciler/core/target.h"
#include "reconciler/system/certs.h"
#include "schema/store.h"

namespace edgeplane {

struct AcmeOrders {
  std::vector<std::string> issued;  // certificate names
  std::vector<std::string> failed;  // "certificate shop: <the CA's problem>"
};

// Orders the due ACME certificates of `target` (acmeOrderDue on what is on disk now) one after
// the other through `issuer`, until `deadline`; each one issued is installed with `certs` and
// put in `result.certificates`. A failure keeps the certificate in place and does not stop
// the others. `log` gets one line per order.
AcmeOrders runAcmeOrders(const core::Target& target, sys::CertStore& certs,
                         acme::CertificateIssuer& issuer, acme::ChallengeSink& sink,
                         std::chrono::steady_clock::time_point deadline, int64_t now,
                         core::ApplyResult& result,
                         const std::function<void(const std::string&)>& log);

// Challenge answers through the store; `notify` tells the proxy (its reload notice) after each
// change so the answer is served at once rather than at the proxy's next poll.
class StoreChallengeSink final : public acme::ChallengeSink {
 public:
  StoreChallengeSink(Store& store, std::function<void()> notify)
      : store_(store), notify_(std::move(notify)) {}

  // Interface
  Result<void> publish(AcmeChallengeType type, const std::string& domain, const std::string& token,
                       const std::string& keyAuthorization) override;
  void withdraw(const std::vector<std::string>& tokens) override;

 private:
  Store& store_;
  std::function<void()> notify_;
};

}  // namespace edgeplane
