// The planner's proxy half: certificate ops from observed facts, route ops from the snapshot.
//
// Routes are diffed against the last published snapshot. Pure, like the rest of plan().
#include <algorithm>
#include <map>
#include <set>

#include "reconciler/core/plan.h"

namespace edgeplane::core {
namespace {

constexpr int64_t kDay = 86400;

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string out;
  for (const auto& s : v) {
    out += (out.empty() ? "" : std::string(sep)) + s;
  }
  return out;
}

std::string plural(size_t n, std::string_view one) {
  return std::to_string(n) + " " + std::string(one) + (n == 1 ? "" : "s");
}

// "+ a, - b": what is added to and removed from a list.
std::string listDelta(std::vector<std::string> before, std::vector<std::string> after) {
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  std::vector<std::string> parts;
  for (const auto& a : after) {
    if (!std::binary_search(before.begin(), before.end(), a)) {
      parts.push_back("+ " + a);
    }
  }
  for (const auto& b : before) {
    if (!std::binary_search(after.begin(), after.end(), b)) {
      parts.push_back("- " + b);
    }
  }
  return join(parts);
}

std::string expiresIn(int64_t notAfter, int64_t now) {
  const int64_t left = notAfter - now;
  if (left < 0) {
    return "expired " + plural(static_cast<size_t>((-left) / kDay), "day") + " ago";
  }
  return "expires in " + plural(static_cast<size_t>(left / kDay), "day");
}

// A generated certificate is renewed when renew_before is left, or else a third of its
// lifetime. A renew_before as long as the lifetime would renew on every run: a third, then.
bool dueForRenewal(const CertView& v, const CertTarget& c, int64_t now) {
  const int64_t lifetime = std::max<int64_t>(v.notAfter - v.notBefore, 0);
  const int64_t threshold =
      c.renewBefore && *c.renewBefore < lifetime ? *c.renewBefore : lifetime / 3;
  return v.notAfter - now <= threshold;
}

std::string backendsText(const std::vector<Endpoint>& v) {
  std::vector<std::string> s;
  for (const auto& e : v) {
    s.push_back(e.str());
  }
  return join(s);
}

// The health check of a site route or a gateway endpoint (the same health_* fields in both).
template <typename T>
std::string healthText(const T& r) {
  if (!r.health_path) {
    return "";
  }
  return *r.health_path + " every " + formatDuration(r.health_interval.value_or(Duration{})) +
         " timeout " + formatDuration(r.health_timeout.value_or(Duration{})) + " up " +
         std::to_string(r.health_healthy_threshold.value_or(0)) + " down " +
         std::to_string(r.health_unhealthy_threshold.value_or(0)) + " expect " +
         r.health_expect_status.value_or("");
}

std::string endpointsText(const SnapshotRoute& r) {
  std::vector<std::string> s;
  for (const auto& e : r.endpoints) {
    // An endpoint's health check is part of its text, so changing it changes "endpoints".
    s.push_back(e.method + " " + e.path + " → " + backendsText(e.backends) + " (" +
                std::string(toString(e.balance)) +
                (e.health_path ? ", health_check " + healthText(e) : "") + ")");
  }
  return join(s, "; ");
}

// The "namespace" of a site of the host itself (not a namespace name: those have no spaces).
constexpr std::string_view kHostSite = "(none: the host)";

// The route's fields as (name, text) pairs; a field a kind does not use is left out.
std::vector<std::pair<std::string, std::string>> routeFields(const SnapshotRoute& r) {
  std::vector<std::pair<std::string, std::string>> f;
  f.emplace_back("hostnames", join(r.hostnames));
  f.emplace_back("namespace", r.namespace_name.empty() ? kHostSite : r.namespace_name);
  if (r.kind != RouteKind::Gateway) {
    f.emplace_back("backends", backendsText(r.backends));
    f.emplace_back("balance", std::string(toString(r.balance)));
  }
  if (r.kind == RouteKind::Passthrough) {
    f.emplace_back("proxy_protocol", std::string(toString(r.proxy_protocol)));
  }
  if (r.certificate) {
    f.emplace_back("certificate", *r.certificate);
  }
  if (r.kind == RouteKind::Site) {
    f.emplace_back("redirect_http", r.redirect_http ? "true" : "false");
    if (r.health_path) {
      f.emplace_back("health_check", healthText(r));
    }
  }
  if (r.kind == RouteKind::Gateway) {
    if (r.rate_limit) {
      f.emplace_back("rate_limit", *r.rate_limit);
    }
    f.emplace_back("endpoints", endpointsText(r));
  }
  return f;
}

Kind kindOf(RouteKind k) {
  switch (k) {
    case RouteKind::Site:
      return Kind::Site;
    case RouteKind::Passthrough:
      return Kind::Passthrough;
    case RouteKind::Gateway:
      return Kind::Gateway;
  }
  return Kind::Site;
}

// "shop.example.net → 2 backends in blue"
std::string routeSummary(const SnapshotRoute& r) {
  std::string where = r.hostnames.empty() ? "?" : r.hostnames.front();
  if (r.hostnames.size() > 1) {
    where += " +" + std::to_string(r.hostnames.size() - 1);
  }
  const std::string to = r.kind == RouteKind::Gateway ? plural(r.endpoints.size(), "endpoint")
                                                      : plural(r.backends.size(), "backend");
  return where + " → " + to +
         (r.namespace_name.empty() ? " on the host" : " in " + r.namespace_name);
}

class ProxyPlanner {
 public:
  ProxyPlanner(const Target& t, const HostState& o, const StoreView& s, Plan& p)
      : t_(t), o_(o), s_(s), p_(p) {}

  void run() {
    for (const auto& c : t_.certificates) {
      planCertificate(c);
    }
    for (const auto& r : t_.proxy.routes) {
      planRoute(r);
    }
    planRouteDeletes();
    planCertificateDeletes();
    planApiKeys();
  }

 private:
  const SnapshotCertificate* appliedCert(std::string_view name) const {
    if (!s_.snapshot) {
      return nullptr;
    }
    for (const auto& c : s_.snapshot->certificates) {
      if (c.name == name) {
        return &c;
      }
    }
    return nullptr;
  }

  const SnapshotRoute* appliedRoute(RouteKind kind, std::string_view name) const {
    if (!s_.snapshot) {
      return nullptr;
    }
    for (const auto& r : s_.snapshot->routes) {
      if (r.kind == kind && r.name == name) {
        return &r;
      }
    }
    return nullptr;
  }

  // The routes that name certificate `name`, as "site shop, gateway ping".
  std::string routesUsing(std::string_view name) const {
    std::vector<std::string> keys;
    for (const auto& r : t_.proxy.routes) {
      if (r.certificate == name) {
        keys.push_back(r.key());
      }
    }
    return join(keys);
  }

  static Op certOp(Action a, const CertTarget& c, std::string summary) {
    Op op;
    op.action = a;
    op.kind = Kind::Certificate;
    op.name = c.name;
    op.summary = std::move(summary);
    return op;
  }

  void add(Op op) {
    const std::string name = op.name;
    const bool failing = !op.error.empty();
    const bool create = op.action == Action::Create;
    p_.ops.push_back(std::move(op));
    if (failing) {
      failingCerts_.insert(name);
    }
    if (create || failing) {
      certOps_[name] = p_.ops.size() - 1;
    }
  }

  void planCertificate(const CertTarget& c) {
    if (c.source == CertSource::Files) {
      planFilesCertificate(c);
      return;
    }
    const std::string what =
        std::string(toString(c.source)) + (c.source == CertSource::Acme && c.challenge
                                               ? " " + std::string(toString(*c.challenge))
                                               : "");
    auto seen = o_.generatedCerts.find(c.name);
    const bool acme = c.source == CertSource::Acme;
    if (seen == o_.generatedCerts.end()) {
      Op op = certOp(Action::Create, c, what + ", " + plural(c.domains.size(), "domain"));
      op.changes.push_back({"domains", "", join(c.domains)});
      op.placeholder = acme;
      add(std::move(op));
      return;
    }
    const CertView& v = seen->second;
    if (!v.error.empty()) {
      Op op = certOp(Action::Update, c, "re-issue: " + v.error);
      op.changes.push_back({"domains", "", join(c.domains)});
      op.placeholder = acme;
      add(std::move(op));
      return;
    }
    if (acme) {
      // The window the CA gave for this very certificate, as apply's ACME step will use it.
      std::optional<int64_t> ariAt;
      if (auto ari = s_.ariRenewals.find(c.name);
          ari != s_.ariRenewals.end() && ari->second.fingerprint == v.fingerprint) {
        ariAt = ari->second.at;
      }
      if (auto why = acmeOrderDue(c, &v, o_.now, ariAt)) {
        Op op = certOp(Action::Update, c, "acme: " + *why);
        if (v.domains != c.domains) {
          op.changes.push_back({"domains", join(v.domains), join(c.domains)});
        }
        op.changes.push_back({"fingerprint", v.fingerprint, "(new, ordered on apply)"});
        add(std::move(op));
      }
      return;
    }
    if (v.domains != c.domains) {
      Op op = certOp(Action::Update, c, "domains: " + listDelta(v.domains, c.domains));
      op.changes.push_back({"domains", join(v.domains), join(c.domains)});
      add(std::move(op));
      return;
    }
    if (dueForRenewal(v, c, o_.now)) {
      Op op = certOp(Action::Update, c, "renew: " + expiresIn(v.notAfter, o_.now));
      op.changes.push_back({"fingerprint", v.fingerprint, "(new, generated on apply)"});
      add(std::move(op));
    }
  }

  void planFilesCertificate(const CertTarget& c) {
    const SnapshotCertificate* applied = appliedCert(c.name);
    auto seen = o_.fileCerts.find(c.name);
    if (seen == o_.fileCerts.end()) {
      // Not observed (plan --offline): read on apply.
      Op op = certOp(Action::Create, c, "files, " + plural(c.domains.size(), "domain"));
      op.changes.push_back({"cert_file", "", c.certFile});
      op.changes.push_back({"fingerprint", "", "(read on apply)"});
      add(std::move(op));
      return;
    }
    const CertView& v = seen->second;
    std::string error = v.error;
    if (error.empty()) {
      std::vector<std::string> uncovered;
      for (const auto& d : c.domains) {
        if (!certCovers(v.domains, d)) {
          uncovered.push_back(d);
        }
      }
      if (!uncovered.empty()) {
        error = c.certFile + " does not cover " + join(uncovered) + " (it has " +
                (v.domains.empty() ? std::string("no DNS names") : join(v.domains)) + ")";
      }
    }
    if (!error.empty()) {
      Op op = certOp(applied != nullptr ? Action::Update : Action::Create, c, "files: error");
      op.changes.push_back({"routes_left_out", "", routesUsing(c.name)});
      op.error = error;
      add(std::move(op));
      return;
    }
    if (applied == nullptr) {
      Op op = certOp(Action::Create, c, "files, " + plural(c.domains.size(), "domain"));
      op.changes.push_back({"cert_file", "", c.certFile});
      op.changes.push_back({"fingerprint", "", v.fingerprint});
      add(std::move(op));
      return;
    }
    if (applied->fingerprint != v.fingerprint) {
      Op op = certOp(Action::Update, c,
                     "files: new fingerprint " + v.fingerprint.substr(0, 16) + "…, " +
                         expiresIn(v.notAfter, o_.now));
      op.changes.push_back({"fingerprint", applied->fingerprint, v.fingerprint});
      add(std::move(op));
    } else if (v.certFile == c.certFile && v.keyFile == c.keyFile) {
      // Observed straight from the operator's files: no copy of them in the state directory
      // yet (applied before copies were made, or the files moved). The proxy serves the copy.
      Op op = certOp(Action::Update, c, "files: copy into the state directory");
      op.changes.push_back({"cert_file", applied->cert_file, "(a copy of " + c.certFile + ")"});
      add(std::move(op));
    } else if (applied->cert_file != v.certFile || applied->key_file != v.keyFile) {
      Op op = certOp(Action::Update, c, "files: moved");
      op.changes.push_back({"cert_file", applied->cert_file, v.certFile});
      op.changes.push_back({"key_file", applied->key_file, v.keyFile});
      add(std::move(op));
    }
  }

  size_t nsOp(const std::string& ns) const {
    for (size_t i = 0; i < p_.ops.size(); ++i) {
      const Op& op = p_.ops[i];
      if (op.kind == Kind::Namespace && op.action == Action::Create && op.name == ns) {
        return i;
      }
    }
    return static_cast<size_t>(-1);
  }

  void planRoute(const SnapshotRoute& r) {
    const SnapshotRoute* applied = appliedRoute(r.kind, r.name);
    Op op;
    op.kind = kindOf(r.kind);
    op.name = r.name;
    op.scope = r.namespace_name;
    if (r.certificate && failingCerts_.count(*r.certificate) != 0) {
      // Its certificate cannot be used: the route is left out of the snapshot.
      if (applied != nullptr) {
        op.action = Action::Delete;
        op.summary = "withdrawn: certificate " + *r.certificate + " has an error";
        op.changes.push_back({"hostnames", join(applied->hostnames), ""});
        p_.ops.push_back(std::move(op));
      }
      return;
    }
    if (applied == nullptr) {
      op.action = Action::Create;
      op.summary = routeSummary(r);
      for (auto& [field, text] : routeFields(r)) {
        op.changes.push_back({field, "", text});
      }
    } else if (*applied != r) {
      op.action = Action::Update;
      diffRoute(*applied, r, op);
    } else {
      return;
    }
    if (size_t ns = nsOp(r.namespace_name); ns != static_cast<size_t>(-1)) {
      op.dependsOn.push_back(ns);
    }
    if (r.certificate) {
      if (auto it = certOps_.find(*r.certificate); it != certOps_.end()) {
        op.dependsOn.push_back(it->second);
      }
    }
    p_.ops.push_back(std::move(op));
  }

  // Every field that differs, in the route's field order (then fields it no longer has).
  static void diffRoute(const SnapshotRoute& before, const SnapshotRoute& after, Op& op) {
    const auto was = routeFields(before);
    const auto now = routeFields(after);
    auto find = [](const auto& fields, const std::string& name) -> const std::string* {
      for (const auto& [f, text] : fields) {
        if (f == name) {
          return &text;
        }
      }
      return nullptr;
    };
    std::vector<std::string> parts;
    for (const auto& [field, text] : now) {
      const std::string* old = find(was, field);
      if (old != nullptr && *old == text) {
        continue;
      }
      op.changes.push_back({field, old != nullptr ? *old : "", text});
      parts.push_back(field + ": " +
                      (field == "hostnames" ? listDelta(before.hostnames, after.hostnames)
                                            : (old != nullptr ? *old : "(none)") + " → " + text));
    }
    for (const auto& [field, text] : was) {
      if (find(now, field) == nullptr) {
        op.changes.push_back({field, text, ""});
        parts.push_back(field + ": removed");
      }
    }
    op.summary = join(parts, "; ");
  }

  void planRouteDeletes() {
    if (!s_.snapshot) {
      return;
    }
    for (const auto& r : s_.snapshot->routes) {
      const bool wanted =
          std::any_of(t_.proxy.routes.begin(), t_.proxy.routes.end(),
                      [&](const SnapshotRoute& w) { return w.kind == r.kind && w.name == r.name; });
      if (wanted) {
        continue;
      }
      Op op;
      op.action = Action::Delete;
      op.kind = kindOf(r.kind);
      op.name = r.name;
      op.scope = r.namespace_name;
      op.changes.push_back({"hostnames", join(r.hostnames), ""});
      p_.ops.push_back(std::move(op));
    }
  }

  // Generated files no served route needs any more; removed after the routes stop naming them.
  void planCertificateDeletes() {
    for (const auto& [name, v] : o_.generatedCerts) {
      const CertTarget* c = t_.certificate(name);
      if (c != nullptr) {
        continue;
      }
      Op op;
      op.action = Action::Delete;
      op.kind = Kind::Certificate;
      op.name = name;
      op.changes.push_back({"cert_file", v.certFile, ""});
      p_.ops.push_back(std::move(op));
    }
  }

  // API keys: diffed against the applied snapshot's, like routes. Digests are never shown.
  void planApiKeys() {
    static const std::vector<SnapshotApiKey> kNone;
    const auto& applied = s_.snapshot ? s_.snapshot->api_keys : kNone;
    for (const auto& k : t_.proxy.api_keys) {
      auto was = std::find_if(applied.begin(), applied.end(),
                              [&](const SnapshotApiKey& a) { return a.id == k.id; });
      if (was == applied.end()) {
        Op op = keyOp(Action::Create, k.id, k.name);
        for (auto& [field, text] : keyFields(k)) {
          op.changes.push_back({field, "", text});
        }
        p_.ops.push_back(std::move(op));
      } else if (*was != k) {
        p_.ops.push_back(diffKey(*was, k));
      }
    }
    for (const auto& a : applied) {
      const bool wanted = std::any_of(t_.proxy.api_keys.begin(), t_.proxy.api_keys.end(),
                                      [&](const SnapshotApiKey& k) { return k.id == a.id; });
      if (!wanted) {
        Op op = keyOp(Action::Delete, a.id, a.name);
        op.changes.push_back({"name", a.name, ""});
        p_.ops.push_back(std::move(op));
      }
    }
    for (const auto& id : s_.blockedApiKeys) {
      p_.notes.push_back("api_key " + id + " is blocked on this host (edgeplane apikey unblock " +
                         id + ")");
    }
  }

  static Op keyOp(Action a, const std::string& id, std::string summary) {
    Op op;
    op.action = a;
    op.kind = Kind::ApiKey;
    op.name = id;
    op.summary = std::move(summary);
    return op;
  }

  // The key's fields as (name, text) pairs, without its digest.
  static std::vector<std::pair<std::string, std::string>> keyFields(const SnapshotApiKey& k) {
    std::vector<std::pair<std::string, std::string>> f;
    f.emplace_back("name", k.name);
    f.emplace_back("gateways", k.gateways.empty() ? "all" : join(k.gateways));  // admin
    if (!k.endpoints.empty()) {
      f.emplace_back("endpoints", join(k.endpoints));
    }
    f.emplace_back("role", std::string(toString(k.role)));
    f.emplace_back("enabled", k.enabled ? "true" : "false");
    return f;
  }

  static Op diffKey(const SnapshotApiKey& before, const SnapshotApiKey& after) {
    Op op = keyOp(Action::Update, after.id, "");
    std::vector<std::string> parts;
    auto field = [&](const std::string& name, const std::string& was, const std::string& now,
                     const std::string& shown) {
      if (was != now) {
        op.changes.push_back({name, was, now});
        parts.push_back(name + ": " + shown);
      }
    };
    field("name", before.name, after.name, before.name + " → " + after.name);
    const std::string enabledWas = before.enabled ? "true" : "false";
    const std::string enabledNow = after.enabled ? "true" : "false";
    field("enabled", enabledWas, enabledNow, enabledWas + " → " + enabledNow);
    // An empty list means all: "all → ping" reads better than "+ ping" then.
    auto list = [&](const std::string& name, const std::vector<std::string>& was,
                    const std::vector<std::string>& now) {
      const std::string wasText = was.empty() ? "all" : join(was);
      const std::string nowText = now.empty() ? "all" : join(now);
      field(name, wasText, nowText,
            was.empty() || now.empty() ? wasText + " → " + nowText : listDelta(was, now));
    };
    list("gateways", before.gateways, after.gateways);
    list("endpoints", before.endpoints, after.endpoints);
    const std::string roleWas(toString(before.role));
    const std::string roleNow(toString(after.role));
    field("role", roleWas, roleNow, roleWas + " → " + roleNow);
    if (before.sha256 != after.sha256) {
      op.changes.push_back({"sha256", "(previous digest)", "(new digest)"});
      parts.push_back("sha256: changed");
    }
    op.summary = join(parts, "; ");
    return op;
  }

  const Target& t_;
  const HostState& o_;
  const StoreView& s_;
  Plan& p_;
  std::map<std::string, size_t, std::less<>> certOps_;  // creates and failing ones
  std::set<std::string, std::less<>> failingCerts_;
};

}  // namespace

void planProxy(const Target& target, const HostState& observed, const StoreView& store, Plan& p) {
  ProxyPlanner(target, observed, store, p).run();
}

}  // namespace edgeplane::core
