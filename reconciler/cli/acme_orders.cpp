// apply's ACME step (see acme_orders.h).
#include "reconciler/cli/acme_orders.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>

#include "reconciler/cli/history.h"
#include "reconciler/core/acme_lifecycle.h"

namespace edgeplane {

namespace {

int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// When the certificate in place is due for renewal (unix ms); unset when there is none to renew
// (not issued yet, unreadable, the placeholder, other domains).
std::optional<int64_t> renewAtMs(const core::CertTarget& c, const core::CertView* v) {
  if (v == nullptr || !v->error.empty() || v->selfIssued || v->domains != c.domains) {
    return std::nullopt;
  }
  return core::acmeRenewAt(c, *v) * 1000;
}

// One order, installed: the CA's or the local error.
Result<core::CertView> orderOne(const core::CertTarget& c, sys::CertStore& certs,
                                acme::CertificateIssuer& issuer, acme::ChallengeSink& sink,
                                std::chrono::steady_clock::time_point deadline) {
  auto issued =
      issuer.obtain(c.domains, c.challenge.value_or(AcmeChallengeType::Http01), sink, deadline);
  if (!issued) {
    return issued.error();
  }
  return certs.install(c.name, issued->chainPem, std::move(issued->keyPem));
}

// One run's view of a certificate's lifecycle state, written back only when it changed.
class AcmeStateBook {
 public:
  AcmeStateBook(Store& store, const std::function<void(const std::string&)>& log)
      : store_(store), log_(log) {
    if (auto rows = store_.listAcmeStates()) {
      for (AcmeState& row : *rows) {
        std::string name = row.name;
        before_.emplace(name, row);
        now_.emplace(std::move(name), std::move(row));
      }
    } else {
      log_("ACME state unreadable, orders go on without backoff: " + rows.error().message);
    }
  }

  AcmeState& at(const std::string& name) {
    auto [it, inserted] = now_.try_emplace(name);
    if (inserted) {
      it->second.name = name;
    }
    return it->second;
  }
  int64_t failures(const std::string& name) const {
    auto it = now_.find(name);
    return it == now_.end() ? 0 : it->second.failures;
  }

  // Writes the changed rows and drops those of certificates not in `wanted`.
  void save(const std::vector<std::string>& wanted) {
    for (const auto& [name, row] : now_) {
      auto old = before_.find(name);
      if (old != before_.end() && old->second == row) {
        continue;
      }
      if (auto put = store_.putAcmeState(row); !put) {
        log_("certificate " + name + ": ACME state not recorded: " + put.error().message);
      }
    }
    if (auto kept = store_.retainAcmeStates(wanted); !kept) {
      log_("ACME state of removed certificates not dropped: " + kept.error().message);
    }
  }

 private:
  Store& store_;
  const std::function<void(const std::string&)>& log_;
  std::map<std::string, AcmeState> before_;
  std::map<std::string, AcmeState> now_;
};

// Held back by earlier failures of the same spec until their next attempt.
bool inBackoff(const AcmeState& st, const std::string& spec, int64_t nowMs) {
  return st.failures > 0 && st.spec == spec && st.nextAttempt && *st.nextAttempt > nowMs;
}

void recordFailure(AcmeState& st, const std::string& error, const AcmeRunClock& clock) {
  const int64_t wait = core::acmeBackoffSeconds(
      st.failures + 1, clock.random ? clock.random() : 0.0, clock.backoffFloor);
  ++st.failures;
  st.lastError = error;
  st.lastAttempt = clock.now * 1000;
  st.nextAttempt = (clock.now + wait) * 1000;
}

}  // namespace

AcmeOrders runAcmeOrders(const core::Target& target, sys::CertStore& certs,
                         acme::CertificateIssuer& issuer, acme::ChallengeSink& sink, Store& store,
                         const AcmeRunClock& clock, core::ApplyResult& result,
                         const std::function<void(const std::string&)>& log) {
  AcmeOrders out;
  AcmeStateBook book(store, log);
  core::HostState seen;
  std::vector<core::CertTarget> acmeTargets;
  std::vector<std::string> names;
  for (const auto& c : target.certificates) {
    if (c.source == core::CertSource::Acme) {
      acmeTargets.push_back(c);
      names.push_back(c.name);
    }
  }
  if (auto observed = certs.observe(acmeTargets, seen); !observed) {
    for (const auto& c : acmeTargets) {
      out.failed.push_back("certificate " + c.name + ": " + observed.error().message);
    }
    return out;
  }
  std::stable_sort(acmeTargets.begin(), acmeTargets.end(),
                   [&book](const core::CertTarget& a, const core::CertTarget& b) {
                     return book.failures(a.name) < book.failures(b.name);
                   });
  for (const auto& c : acmeTargets) {
    auto it = seen.generatedCerts.find(c.name);
    const core::CertView* view = it == seen.generatedCerts.end() ? nullptr : &it->second;
    AcmeState& st = book.at(c.name);
    const std::string spec = core::acmeSpec(c);
    if (st.spec != spec) {
      // Other domains or another challenge: earlier failures say nothing about this order.
      st = AcmeState{c.name, spec, 0, "", st.lastAttempt, std::nullopt, std::nullopt};
    }
    st.renewAt = renewAtMs(c, view);
    auto why = core::acmeOrderDue(c, view, clock.now);
    if (!why) {
      // Nothing is owed (renewed by hand, renew_before shortened): no failure is pending.
      st.failures = 0;
      st.lastError.clear();
      st.nextAttempt.reset();
      continue;
    }
    if (inBackoff(st, spec, clock.now * 1000)) {
      log("certificate " + c.name + ": due (" + *why + ") but held back after " +
          std::to_string(st.failures) + " failed order(s) until " + cli::isoTime(*st.nextAttempt) +
          " (last: " + st.lastError + ")");
      continue;
    }
    log("certificate " + c.name + ": ordering from the ACME CA (" + *why + ")");
    auto issued = orderOne(c, certs, issuer, sink, clock.deadline);
    if (!issued) {
      recordFailure(st, issued.error().message, clock);
      out.failed.push_back("certificate " + c.name + ": " + issued.error().message);
      log("certificate " + c.name + ": ACME order failed: " + issued.error().message +
          "; the certificate in place stays; next attempt not before " +
          cli::isoTime(*st.nextAttempt));
      continue;
    }
    log("certificate " + c.name + ": issued, " + issued->fingerprint.substr(0, 16) +
        "…, valid until " + cli::isoTime(issued->notAfter * 1000));
    st = AcmeState{c.name, spec, 0, "", clock.now * 1000, std::nullopt, renewAtMs(c, &*issued)};
    result.certificates[c.name] = std::move(issued).value();
    out.issued.push_back(c.name);
  }
  book.save(names);
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

int64_t acmeBackoffFloorFromEnv() {
  const char* env = std::getenv("EDGEPLANE_TEST_ACME_BACKOFF_FLOOR");
  if (env == nullptr) {
    return core::kAcmeBackoffFloor;
  }
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  if (end == env || *end != '\0' || v < 1 || v > core::kAcmeBackoffFloor) {
    return core::kAcmeBackoffFloor;
  }
  return v;
}

}  // namespace edgeplane
