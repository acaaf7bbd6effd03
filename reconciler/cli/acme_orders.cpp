// apply's ACME step (see acme_orders.h).
#include "reconciler/cli/acme_orders.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>

#include "reconciler/acme/cert_id.h"
#include "reconciler/cli/history.h"
#include "reconciler/core/acme_lifecycle.h"
#include "reconciler/system/file_write.h"

namespace edgeplane {

namespace {

int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The certificate in place, when it is one an order renews (issued, readable, for these
// domains).
bool renewable(const core::CertTarget& c, const core::CertView* v) {
  return v != nullptr && v->error.empty() && !v->selfIssued && v->domains == c.domains;
}

// When the certificate in place is due for renewal (unix ms); unset when there is none to renew
// (not issued yet, unreadable, the placeholder, other domains).
std::optional<int64_t> renewAtMs(const core::CertTarget& c, const core::CertView* v) {
  if (!renewable(c, v)) {
    return std::nullopt;
  }
  return core::acmeRenewAt(c, *v) * 1000;
}

// One order (a renewal of `replaces`, "" none), installed: the CA's or the local error.
Result<core::CertView> orderOne(const core::CertTarget& c, sys::CertStore& certs,
                                acme::CertificateIssuer& issuer, acme::ChallengeSink& sink,
                                std::chrono::steady_clock::time_point deadline,
                                const std::string& replaces) {
  auto issued = issuer.obtain(c.domains, c.challenge.value_or(AcmeChallengeType::Http01), sink,
                              deadline, replaces);
  if (!issued) {
    return issued.error();
  }
  // The CA's answer must be for the names ordered and valid now, else the one in place stays.
  return certs.install(c.name, issued->chainPem, std::move(issued->keyPem), "",
                       sys::CertInstallCheck{c.domains, true});
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
      unread_ = true;
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

  // Writes the changed rows and drops those of certificates not in `wanted`. False when the
  // store's rows are as they were (as far as this book read them).
  bool save(const std::vector<std::string>& wanted) {
    bool changed = unread_;
    for (const auto& [name, row] : now_) {
      auto old = before_.find(name);
      if (old != before_.end() && old->second == row) {
        continue;
      }
      changed = true;
      if (auto put = store_.putAcmeState(row); !put) {
        log_("certificate " + name + ": ACME state not recorded: " + put.error().message);
      }
    }
    changed = changed || std::any_of(before_.begin(), before_.end(), [&](const auto& row) {
                return std::find(wanted.begin(), wanted.end(), row.first) == wanted.end();
              });
    if (auto kept = store_.retainAcmeStates(wanted); !kept) {
      log_("ACME state of removed certificates not dropped: " + kept.error().message);
    }
    return changed;
  }

 private:
  Store& store_;
  const std::function<void(const std::string&)>& log_;
  std::map<std::string, AcmeState> before_;
  std::map<std::string, AcmeState> now_;
  bool unread_ = false;  // the rows could not be listed: what save() changes is unknown
};

// The RFC 9773 CertID of the certificate in place; "" (logged) when it has none: no ARI, no
// `replaces`, the lifetime rule.
std::string certIdOf(const core::CertTarget& c, const core::CertView& v,
                     const std::function<void(const std::string&)>& log) {
  auto pem = sys::readOwnFile(v.certFile);
  auto id = !pem   ? Result<std::string>(pem.error())
            : *pem ? acme::ariCertId(**pem)
                   : Result<std::string>(terminal(v.certFile + ": gone"));
  if (!id) {
    log("certificate " + c.name + ": no ARI certificate ID (" + id.error().message +
        "); renewal by its lifetime");
    return "";
  }
  return std::move(id).value();
}

void clearAri(AcmeState& st) {
  st.ariCert.clear();
  st.ariStart.reset();
  st.ariEnd.reset();
  st.ariRenewAt.reset();
  st.ariNextCheck.reset();
  st.ariExplanation.clear();
}

// RFC 9773: `st`'s window brought up to date for the certificate in place `v` (CertID `certId`):
// the CA is asked when the window is another certificate's or its Retry-After has passed. A
// time is drawn in a new window; an unchanged window keeps the time drawn before. A CA without
// ARI leaves no window (asked again after kAriDefaultRecheck); a failed or malformed answer
// neither (the lifetime rule holds; asked again after kAriErrorRecheck). Never an error: ARI
// only advises.
void refreshAri(AcmeState& st, const core::CertTarget& c, const core::CertView& v,
                const std::string& certId, acme::CertificateIssuer& issuer,
                const AcmeRunClock& clock, const std::function<void(const std::string&)>& log) {
  const int64_t nowMs = clock.now * 1000;
  if (st.ariCert != v.fingerprint) {
    clearAri(st);
  } else if (st.ariNextCheck && *st.ariNextCheck > nowMs) {
    return;
  }
  auto answer = issuer.renewalInfo(certId, clock.deadline);
  if (!answer) {
    clearAri(st);
    st.ariCert = v.fingerprint;
    st.ariNextCheck = (clock.now + core::kAriErrorRecheck) * 1000;
    log("certificate " + c.name + ": the CA's renewal information failed (" +
        answer.error().message + "); renewal by its lifetime until it is asked again at " +
        cli::isoTime(*st.ariNextCheck));
    return;
  }
  if (!*answer) {
    // No ARI at this CA: asked again in kAriDefaultRecheck (its directory may gain it), not at
    // every run.
    clearAri(st);
    st.ariCert = v.fingerprint;
    st.ariNextCheck = (clock.now + core::kAriDefaultRecheck) * 1000;
    return;
  }
  const acme::RenewalInfo& w = (*answer)->info;
  const bool same = st.ariStart == w.start * 1000 && st.ariEnd == w.end * 1000 && st.ariRenewAt;
  st.ariCert = v.fingerprint;
  st.ariNextCheck = (clock.now + core::ariRecheckSeconds((*answer)->retryAfter)) * 1000;
  st.ariExplanation = w.explanationUrl;
  if (same) {
    return;
  }
  st.ariStart = w.start * 1000;
  st.ariEnd = w.end * 1000;
  st.ariRenewAt = core::ariRenewAt(w.start, w.end, clock.random ? clock.random() : 0.0) * 1000;
  log("certificate " + c.name + ": the CA suggests renewal between " + cli::isoTime(*st.ariStart) +
      " and " + cli::isoTime(*st.ariEnd) + " (RFC 9773), chosen " + cli::isoTime(*st.ariRenewAt) +
      (w.explanationUrl.empty() ? std::string() : "; see " + w.explanationUrl));
}

// What the certificate in place tells a renewal: its CertID ("" when none; the order's
// `replaces`) and, when the CA's ARI window applies (no renew_before), the time drawn in it
// (unix seconds). Keeps `st`'s window up to date (refreshAri).
struct RenewalHint {
  std::string certId;
  std::optional<int64_t> ariAt;
};
RenewalHint renewalHint(AcmeState& st, const core::CertTarget& c, const core::CertView* view,
                        acme::CertificateIssuer& issuer, const AcmeRunClock& clock,
                        const std::function<void(const std::string&)>& log) {
  RenewalHint hint;
  if (!renewable(c, view)) {
    clearAri(st);
    return hint;
  }
  hint.certId = certIdOf(c, *view, log);
  if (c.renewBefore) {
    clearAri(st);  // the operator's override: the CA is not asked
    return hint;
  }
  if (!hint.certId.empty()) {
    refreshAri(st, c, *view, hint.certId, issuer, clock, log);
  }
  // A time too close to the expiry is not used (acmeOrderDue): not shown as the renewal time
  // either.
  if (st.ariCert == view->fingerprint && st.ariRenewAt &&
      *st.ariRenewAt / 1000 < core::ariLatest(*view)) {
    hint.ariAt = *st.ariRenewAt / 1000;
  }
  return hint;
}

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

void clearFailures(AcmeState& st) {
  st.failures = 0;
  st.lastError.clear();
  st.nextAttempt.reset();
}

// What runAcmeOrders orders with.
struct OrderTools {
  sys::CertStore& certs;
  acme::CertificateIssuer& issuer;
  acme::ChallengeSink& sink;
  const AcmeRunClock& clock;
  const std::function<void(const std::string&)>& log;
};

// One ACME certificate's turn: ordered when due and not held back by earlier failures, its
// state updated either way; an issued one goes into `result`.
void orderIfDue(const core::CertTarget& c, const core::CertView* view, AcmeState& st,
                const OrderTools& t, AcmeOrders& out, core::ApplyResult& result) {
  const std::string spec = core::acmeSpec(c);
  if (st.spec != spec) {
    // Other domains or another challenge: earlier failures say nothing about this order.
    st.spec = spec;
    clearFailures(st);
    st.renewAt.reset();
  }
  const RenewalHint hint = renewalHint(st, c, view, t.issuer, t.clock, t.log);
  st.renewAt = hint.ariAt ? std::optional<int64_t>(*hint.ariAt * 1000) : renewAtMs(c, view);
  auto why = core::acmeOrderDue(c, view, t.clock.now, hint.ariAt);
  if (!why) {
    clearFailures(st);  // nothing is owed (renewed by hand, renew_before shortened)
    return;
  }
  if (inBackoff(st, spec, t.clock.now * 1000)) {
    t.log("certificate " + c.name + ": due (" + *why + ") but held back after " +
          std::to_string(st.failures) + " failed order(s) until " + cli::isoTime(*st.nextAttempt) +
          " (last: " + st.lastError + ")");
    return;
  }
  t.log("certificate " + c.name + ": ordering from the ACME CA (" + *why + ")");
  auto issued = orderOne(c, t.certs, t.issuer, t.sink, t.clock.deadline, hint.certId);
  if (!issued) {
    recordFailure(st, issued.error().message, t.clock);
    out.failed.push_back("certificate " + c.name + ": " + issued.error().message);
    t.log("certificate " + c.name + ": ACME order failed: " + issued.error().message +
          "; the certificate in place stays; next attempt not before " +
          cli::isoTime(*st.nextAttempt));
    return;
  }
  t.log("certificate " + c.name + ": issued, " + issued->fingerprint.substr(0, 16) +
        "…, valid until " + cli::isoTime(issued->notAfter * 1000));
  // A new certificate: no failures, and its own ARI window asked for at the next run.
  clearFailures(st);
  st.lastAttempt = t.clock.now * 1000;
  st.renewAt = renewAtMs(c, &*issued);
  clearAri(st);
  result.certificates[c.name] = std::move(issued).value();
  out.issued.push_back(c.name);
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
  if (acmeTargets.empty()) {
    out.stateChanged = book.save(names);  // drops the state of certificates that left
    return out;
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
  const OrderTools tools{certs, issuer, sink, clock, log};
  for (const auto& c : acmeTargets) {
    auto it = seen.generatedCerts.find(c.name);
    const core::CertView* view = it == seen.generatedCerts.end() ? nullptr : &it->second;
    orderIfDue(c, view, book.at(c.name), tools, out, result);
  }
  out.stateChanged = book.save(names);
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
    return notify_();
  }
  return {};
}

void StoreChallengeSink::withdraw(const std::vector<std::string>& tokens) {
  (void)store_.removeAcmeChallenges(tokens);
  if (notify_) {
    (void)notify_();  // an answer served a little longer is harmless
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
