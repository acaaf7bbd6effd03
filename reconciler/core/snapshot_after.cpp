// The proxy snapshot an apply leaves: routes whose certificate is usable, and those certificates.
//
// Pure: everything comes from the plan, the result and the observation.
#include <algorithm>
#include <map>

#include "reconciler/core/apply.h"

namespace edgeplane::core {
namespace {

struct Usable {
  const CertView* view = nullptr;  // set: the routes naming it are served
  std::string reason;              // otherwise: why not
};

Usable judge(const CertTarget& c, const CertView* view, const std::string& opError, int64_t now) {
  if (view == nullptr) {
    return {nullptr, opError.empty() ? "not materialised" : opError};
  }
  if (!view->error.empty()) {
    return {nullptr, view->error};
  }
  for (const auto& d : c.domains) {
    if (!certCovers(view->domains, d)) {
      return {nullptr, view->certFile + " does not cover " + d};
    }
  }
  // A generated certificate whose renewal failed still serves until it expires.
  if (now != 0 && view->notAfter <= now) {
    return {nullptr, (opError.empty() ? "" : opError + "; ") + "the certificate on disk expired"};
  }
  return {view, ""};
}

}  // namespace

ProxySnapshot snapshotAfter(const Plan& plan, const ApplyResult& result, const HostState& observed,
                            std::vector<std::string>& leftOut) {
  const Target& t = plan.target;
  std::map<std::string, std::string, std::less<>> opErrors;  // failed certificate ops
  for (size_t i = 0; i < plan.ops.size() && i < result.ops.size(); ++i) {
    const Op& op = plan.ops[i];
    if (op.kind == Kind::Certificate && op.action != Action::Delete && !result.ops[i].ok) {
      opErrors[op.name] = result.ops[i].error;
    }
  }
  std::map<std::string, Usable, std::less<>> usable;
  for (const auto& c : t.certificates) {
    const auto& seen = c.generated() ? observed.generatedCerts : observed.fileCerts;
    const CertView* view = nullptr;
    if (auto it = result.certificates.find(c.name); it != result.certificates.end()) {
      view = &it->second;
    } else if (auto o = seen.find(c.name); o != seen.end()) {
      view = &o->second;
    }
    auto err = opErrors.find(c.name);
    Usable u = judge(c, view, err != opErrors.end() ? err->second : "", observed.now);
    if (u.view != nullptr && err != opErrors.end() && !c.generated()) {
      u = {nullptr, err->second};  // a files certificate that failed is not served
    }
    usable[c.name] = std::move(u);
  }
  ProxySnapshot s = t.proxy;
  s.routes.clear();
  std::map<std::string, SnapshotCertificate, std::less<>> named;
  for (const auto& r : t.proxy.routes) {
    if (r.certificate) {
      auto u = usable.find(*r.certificate);
      if (u == usable.end() || u->second.view == nullptr) {
        leftOut.push_back(r.key() + ": certificate " + *r.certificate + ": " +
                          (u == usable.end() ? "not defined" : u->second.reason));
        continue;
      }
      const CertView& v = *u->second.view;
      SnapshotCertificate sc{*r.certificate, v.fingerprint, v.certFile, v.keyFile, {}, v.notAfter};
      for (const auto& d : v.domains) {
        if (isValidDnsName(d, true)) {
          sc.domains.push_back(d);
        }
      }
      if (sc.domains.empty()) {
        sc.domains = t.certificate(*r.certificate)->domains;
      }
      named[*r.certificate] = std::move(sc);
    }
    s.routes.push_back(r);
  }
  for (auto& [name, c] : named) {
    s.certificates.push_back(std::move(c));
  }
  // Keys name only the gateways served (the proxy's decoder refuses a key naming another),
  // and go when none of theirs is left, as in buildSnapshot.
  auto served = [&](const std::string& g) {
    return std::any_of(s.routes.begin(), s.routes.end(), [&](const SnapshotRoute& r) {
      return r.kind == RouteKind::Gateway && (g.empty() || r.name == g);
    });
  };
  std::vector<SnapshotApiKey> keys;
  for (SnapshotApiKey k : s.api_keys) {
    const bool scoped = !k.gateways.empty();
    std::erase_if(k.gateways, [&](const std::string& g) { return !served(g); });
    if ((scoped && k.gateways.empty()) || !served("")) {
      continue;
    }
    keys.push_back(std::move(k));
  }
  s.api_keys = std::move(keys);
  return s;
}

}  // namespace edgeplane::core
