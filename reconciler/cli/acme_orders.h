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
  bool stateChanged = false;        // the stored lifecycle (what /metrics shows) was written
};

// The run's clock and randomness, and the backoff's floor (seconds).
struct AcmeRunClock {
  std::chrono::steady_clock::time_point deadline;  // the run's ACME budget ends
  int64_t now = 0;                                 // unix seconds
  // core::kAcmeBackoffFloor; only the lab scales it, by acmeBackoffFloorFromEnv().
  int64_t backoffFloor = 60;
  std::function<double()> random;  // [0, 1), the backoff's jitter; unset: none
};

// Orders the due ACME certificates of `target` (acmeOrderDue on what is on disk now) one after
// the other through `issuer`, until `clock.deadline`; each one issued is installed with `certs`
// and put in `result.certificates`. A failure keeps the certificate in place, does not stop the
// others, and is recorded in `store`'s ACME state with a backoff (core::acmeBackoffSeconds):
// until its next attempt the certificate is skipped, unless its challenge or domains changed.
// Those that failed least order first, so a CA that refuses one spends the budget last on it.
// When the CA offers ACME Renewal Information (RFC 9773) and the certificate has no
// renew_before, the CA's suggested window for the certificate in place (asked at most once per
// its Retry-After, 6 h by default; kept in the store) sets the renewal time: a random time drawn
// in it, kept while the window stays; a renewal's order then carries `replaces`. A failed or
// malformed answer is logged and the lifetime rule holds; it never holds an order back.
// Success clears the failures; every certificate's renewal time is kept there for `status`
// and /metrics, and the state of certificates no longer wanted is dropped. `log` gets one
// line per order or skip.
AcmeOrders runAcmeOrders(const core::Target& target, sys::CertStore& certs,
                         acme::CertificateIssuer& issuer, acme::ChallengeSink& sink, Store& store,
                         const AcmeRunClock& clock, core::ApplyResult& result,
                         const std::function<void(const std::string&)>& log);

// The backoff's floor in seconds: core::kAcmeBackoffFloor, or the lab's
// EDGEPLANE_TEST_ACME_BACKOFF_FLOOR=<seconds> (1..60; a test knob, so that a lab test sees
// the agent recover within seconds; it can only shorten the first wait, never lengthen any,
// and the doubling and the day's ceiling stay). Anything else in it is ignored.
int64_t acmeBackoffFloorFromEnv();

// Challenge answers through the store; `notify` hands them to the proxy after each change (the
// files it reads and its reload notice), so that an answer is served at once. A new answer the
// proxy cannot be handed is an error: the CA would find nothing.
class StoreChallengeSink final : public acme::ChallengeSink {
 public:
  StoreChallengeSink(Store& store, std::function<Result<void>()> notify)
      : store_(store), notify_(std::move(notify)) {}

  // Interface
  Result<void> publish(AcmeChallengeType type, const std::string& domain, const std::string& token,
                       const std::string& keyAuthorization) override;
  void withdraw(const std::vector<std::string>& tokens) override;

 private:
  Store& store_;
  std::function<Result<void>()> notify_;
};

}  // namespace edgeplane
