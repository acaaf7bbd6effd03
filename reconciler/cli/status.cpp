// `edgeplane history` and `edgeplane status`: what the store recorded, what the host looks
// like now (drift against the last applied config), WireGuard keys and certificates to hand
// out. Read-only: neither changes the host or the store.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "reconciler/cli/command_support.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/git_run.h"
#include "reconciler/cli/history.h"
#include "reconciler/core/owned_rows.h"
#include "reconciler/core/plan.h"
#include "reconciler/core/state_json.h"
#include "reconciler/core/target.h"
#include "reconciler/system/certs.h"
#include "reconciler/system/wg_keys.h"
#include "schema/snapshot.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;

// What operators hand to their peers: each namespace's public key and listen port. Only the
// public half is derived from the key file; the private key is never printed.
struct WgInfo {
  std::string ns;
  std::string publicKey;
  std::string listenPort;
};

std::vector<WgInfo> wireguardInfo(const Options& o, const std::vector<OwnedResource>& owned) {
  std::vector<WgInfo> out;
  auto view = core::storeViewFromOwned(owned);
  if (!view) {
    return out;
  }
  for (const auto& [key, spec] : view->applied) {
    if (key.rfind("wireguard ", 0) != 0) {
      continue;
    }
    WgInfo info{key.substr(10), "(key file missing)", "?"};
    if (auto k = sys::loadKey(sys::wireguardKeyPath(o.stateDir, info.ns)); !k) {
      info.publicKey = "(key file unusable: " + k.error().message + ")";
    } else if (*k) {
      info.publicKey = (*k)->publicKey.base64();
    }
    // The spec it was applied with: "wg-<ns> port=<listen port> address=…".
    std::istringstream words(spec);
    for (std::string word; words >> word;) {
      if (word.rfind("port=", 0) == 0) {
        info.listenPort = word.substr(5);
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

// The certificates the proxy serves now (the latest snapshot), with the issuer the apply
// recorded ("self-signed", "files", "acme"; "placeholder (acme pending)" from before the ACME
// client).
struct CertInfo {
  SnapshotCertificate cert;
  std::string issuer;
  std::optional<AcmeState> acme;  // the ACME step's record: challenge, renewal, failures
};

// "http-01" from the state's spec ("<challenge> <domains>").
std::string challengeOf(const AcmeState& st) {
  return st.spec.substr(0, st.spec.find(' '));
}

std::vector<CertInfo> certificateInfo(Store& store, const std::vector<OwnedResource>& owned) {
  std::vector<CertInfo> out;
  auto latest = store.latestSnapshot();
  if (!latest || !latest->has_value()) {
    return out;
  }
  auto decoded = snapshotFromJson((*latest)->body);
  if (!decoded) {
    return out;
  }
  auto view = core::storeViewFromOwned(owned);
  auto states = store.listAcmeStates();
  for (const auto& c : decoded->certificates) {
    CertInfo info{c, "?", std::nullopt};
    if (states) {
      for (const AcmeState& st : *states) {
        if (st.name == c.name) {
          info.acme = st;
        }
      }
    }
    if (view) {
      if (auto it = view->applied.find("certificate " + c.name); it != view->applied.end()) {
        const std::string kind = it->second.substr(0, it->second.find(' '));
        info.issuer = kind == "placeholder" ? "placeholder (acme pending)" : kind;
      }
    }
    // An ACME certificate not issued yet: the self-signed placeholder is what is served.
    if (info.issuer == "acme" && sys::readCertPair(c.cert_file, c.key_file).selfIssued) {
      info.issuer = "acme (pending: placeholder served)";
    }
    out.push_back(std::move(info));
  }
  return out;
}

// Everything `status` shows, gathered once.
struct Status {
  std::vector<ApplyRun> runs;  // the last one, if any
  std::optional<ApplyRun> lastGood;
  std::vector<OwnedResource> owned;
  std::vector<OpOutcome> failedOps;  // of the last run
  std::vector<std::string> drift;    // the plan of the last applied config against the host
  std::string driftNote;             // why drift was not checked
  std::string observedJson;          // the host as seen now, for `plan --offline --observed`
  std::vector<WgInfo> wireguard;
  std::vector<CertInfo> certificates;
  std::vector<ApiKeyBlock> blockedKeys;
};

// The config the last run applied: --config; a Git run's accepted tree (keptConfigDir); else
// the directory the run named.
std::optional<fs::path> lastConfigDir(const Options& o, const ApplyRun& last) {
  const fs::path kept = keptConfigDir(o.stateDir);
  std::error_code ec;
  if (o.config) {
    return fs::path(*o.config);
  }
  if (last.configSource == kDestroySource) {
    return std::nullopt;
  }
  if (last.commitId || !fs::is_directory(last.configSource, ec)) {
    if (fs::is_directory(kept, ec)) {
      return kept;
    }
    if (last.commitId) {
      // None kept yet (a host upgraded from a version that kept it at <state-dir>/config, before
      // its next Git run): no drift check, rather than the source's text taken for a directory.
      return std::nullopt;
    }
  }
  if (!last.configSource.empty()) {
    return fs::path(last.configSource);
  }
  return std::nullopt;
}

// Drift: re-plans the config in `dir` against the live host, if both can be had.
void checkDrift(const Options& o, Store& store, const fs::path& dir, Status& st) {
  LoadOutcome lo = loadConfig(dir, std::nullopt, o);
  auto view = readStoreView(store);
  sys::KernelHost kernel = makeHost(o);
  auto seen = view ? kernel.observe() : Result<core::HostState>(terminal("skip"));
  std::optional<Result<core::Target>> target;
  if (lo.loaded && view && seen) {
    target = buildHostTarget(*lo.loaded, *view, {}, true);
  }
  if (view && seen) {
    // The certificates too, so `plan --offline --observed` from this output agrees.
    const std::vector<core::CertTarget> none;
    (void)sys::CertStore(o.stateDir)
        .observe(target && *target ? (*target)->certificates : none, *seen);
    st.observedJson = core::toJson(*seen, *view);
  }
  if (target) {
    if (*target) {
      core::Plan p = core::plan(**target, *seen, *view);
      for (const auto& op : p.ops) {
        st.drift.push_back(std::string(core::toString(op.action)) + " " +
                           std::string(core::toString(op.kind)) + " " + op.name +
                           (op.error.empty() ? "" : ": fails: " + op.error) +
                           (op.drift.empty() ? "" : " (drift: " + op.drift + ")"));
      }
    } else {
      // Not "in sync": nothing could be compared.
      st.driftNote = "drift not checked: " + target->error().message;
    }
  } else {
    st.driftNote = "drift not checked: " +
                   (lo.errors != 0 ? std::string("the last applied config no longer validates")
                    : !lo.loaded   ? lo.hostError
                    : !view        ? view.error().message
                                   : seen.error().message);
  }
}

// A certificate's ACME lifecycle fields; null for certificates not from ACME (or not ordered
// yet by this edgeplane).
void setAcmeJson(Poco::JSON::Object& jo, const std::optional<AcmeState>& acme) {
  auto time = [](const std::optional<int64_t>& ms) {
    return ms ? Poco::Dynamic::Var(isoTime(*ms)) : Poco::Dynamic::Var();
  };
  if (!acme) {
    for (const char* key : {"challenge", "next_renewal", "failures", "last_error", "last_attempt",
                            "next_attempt", "ari_window"}) {
      jo.set(key, Poco::Dynamic::Var());
    }
    return;
  }
  jo.set("challenge", challengeOf(*acme));
  jo.set("next_renewal", time(acme->renewAt));
  jo.set("failures", acme->failures);
  jo.set("last_error",
         acme->lastError.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(acme->lastError));
  jo.set("last_attempt", time(acme->lastAttempt));
  jo.set("next_attempt", time(acme->nextAttempt));
  // RFC 9773: the CA's suggested window for the certificate in place; null without one.
  if (acme->ariStart && acme->ariEnd) {
    Poco::JSON::Object::Ptr ari = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    ari->set("start", time(acme->ariStart));
    ari->set("end", time(acme->ariEnd));
    ari->set("chosen", time(acme->ariRenewAt));
    ari->set("explanation_url", acme->ariExplanation.empty()
                                    ? Poco::Dynamic::Var()
                                    : Poco::Dynamic::Var(acme->ariExplanation));
    ari->set("next_check", time(acme->ariNextCheck));
    jo.set("ari_window", ari);
  } else {
    jo.set("ari_window", Poco::Dynamic::Var());
  }
}

// The ACME lines under a certificate: its challenge and next renewal, and while orders fail,
// how often, the CA's last word and when the next attempt is.
void printAcmeText(const AcmeState& st) {
  std::cout << "    acme " << challengeOf(st) << ", next renewal "
            << (st.renewAt ? isoTime(*st.renewAt) : std::string("when first issued")) << "\n";
  if (st.ariStart && st.ariEnd) {
    std::cout << "    the CA's renewal window (RFC 9773): " << isoTime(*st.ariStart) << " .. "
              << isoTime(*st.ariEnd)
              << (st.ariExplanation.empty() ? std::string() : " (" + st.ariExplanation + ")")
              << "\n";
  }
  if (st.failures > 0) {
    std::cout << "    " << st.failures << " failed order(s), last at "
              << (st.lastAttempt ? isoTime(*st.lastAttempt) : std::string("?")) << ": "
              << st.lastError << "\n"
              << "    next attempt not before "
              << (st.nextAttempt ? isoTime(*st.nextAttempt) : std::string("the next run"))
              << " (the certificate in place is still served)\n";
  }
}

// status --json's "last_run": the newest run with its failed operations; null when none.
Poco::Dynamic::Var lastRunJson(const Status& st) {
  using Poco::JSON::Array;
  using Poco::JSON::Object;
  if (st.runs.empty()) {
    return Poco::Dynamic::Var();
  }
  auto orNull = [](const std::optional<std::string>& s) {
    return s ? Poco::Dynamic::Var(*s) : Poco::Dynamic::Var();
  };
  const ApplyRun& r = st.runs.front();
  Object::Ptr jr = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  jr->set("id", r.id);
  jr->set("result", std::string(toString(r.result)));
  jr->set("started_at", isoTime(r.startedAt));
  jr->set("finished_at", r.finishedAt ? isoTime(*r.finishedAt) : std::string());
  jr->set("config", r.configSource);
  jr->set("commit", orNull(r.commitId));
  jr->set("author", orNull(r.author));
  jr->set("subject", orNull(r.subject));
  jr->set("summary", r.summary);
  jr->set("detail", r.detail);
  jr->set("added", r.counts.added);
  jr->set("changed", r.counts.changed);
  jr->set("destroyed", r.counts.destroyed);
  jr->set("failed", r.counts.failed);
  Array::Ptr fo = new Array;
  for (const auto& op : st.failedOps) {
    Object::Ptr jo = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    jo->set("action", std::string(toString(op.action)));
    jo->set("kind", op.kind);
    jo->set("name", op.name);
    jo->set("error", op.error.value_or(""));
    fo->add(jo);
  }
  jr->set("failed_ops", fo);
  return jr;
}

void printStatusJson(const Status& st) {
  using Poco::JSON::Array;
  using Poco::JSON::Object;
  auto orNull = [](const std::optional<std::string>& s) {
    return s ? Poco::Dynamic::Var(*s) : Poco::Dynamic::Var();
  };
  Object::Ptr root = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  root->set("last_run", lastRunJson(st));
  if (st.lastGood.has_value()) {
    const ApplyRun& g = *st.lastGood;
    Object::Ptr jg = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    jg->set("commit", orNull(g.commitId));
    jg->set("run", g.id);
    jg->set("applied_at", isoTime(g.startedAt));
    jg->set("author", orNull(g.author));
    jg->set("subject", orNull(g.subject));
    root->set("last_good", jg);
  } else {
    root->set("last_good", Poco::Dynamic::Var());
  }
  Array::Ptr res = new Array;
  for (const auto& row : st.owned) {
    Object::Ptr jo = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    jo->set("kind", row.kind);
    jo->set("name", row.name);
    jo->set("data", row.data);
    res->add(jo);
  }
  root->set("resources", res);
  Array::Ptr dr = new Array;
  for (const auto& d : st.drift) {
    dr->add(d);
  }
  root->set("pending", dr);
  if (!st.observedJson.empty()) {
    root->set("observed", Poco::JSON::Parser().parse(st.observedJson));
  }
  Array::Ptr wgs = new Array;
  for (const auto& w : st.wireguard) {
    Object::Ptr jo = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    jo->set("namespace", w.ns);
    jo->set("public_key", w.publicKey);
    jo->set("listen_port", w.listenPort);
    wgs->add(jo);
  }
  root->set("wireguard", wgs);
  Array::Ptr certs = new Array;
  for (const auto& c : st.certificates) {
    Object::Ptr jo = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    jo->set("name", c.cert.name);
    jo->set("issuer", c.issuer);
    Array::Ptr domains = new Array;
    for (const auto& d : c.cert.domains) {
      domains->add(d);
    }
    jo->set("domains", domains);
    jo->set("not_after", isoTime(c.cert.not_after * 1000));
    jo->set("fingerprint", c.cert.fingerprint);
    jo->set("cert_file", c.cert.cert_file);
    setAcmeJson(*jo, c.acme);
    certs->add(jo);
  }
  root->set("certificates", certs);
  Array::Ptr blocked = new Array;
  for (const auto& b : st.blockedKeys) {
    Object::Ptr jo = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    jo->set("id", b.keyId);
    jo->set("blocked_at", isoTime(b.blockedAt));
    blocked->add(jo);
  }
  root->set("blocked_api_keys", blocked);
  if (!st.driftNote.empty()) {
    root->set("note", st.driftNote);
  }
  Poco::JSON::Stringifier::stringify(root, std::cout, 2);
  std::cout << "\n";
}

void printStatusText(const Status& st) {
  const bool refused = !st.runs.empty() && st.runs.front().result == RunResult::Refused;
  if (st.runs.empty()) {
    std::cout << "No apply run recorded yet.\n";
  } else {
    const ApplyRun& r = st.runs.front();
    std::cout << "Last run #" << r.id << ": " << toString(r.result) << ", started "
              << isoTime(r.startedAt) << ", config " << r.configSource << "\n";
    if (r.commitId) {
      std::cout << "  commit " << *r.commitId << " \"" << r.subject.value_or("") << "\" by "
                << r.author.value_or("?") << "\n";
    }
    std::cout << "  " << r.summary << "\n";
    for (const auto& op : st.failedOps) {
      std::cout << "  failed: " << toString(op.action) << " " << op.kind << " " << op.name << ": "
                << op.error.value_or("") << "\n";
    }
    if (!r.detail.empty() && (refused || r.result == RunResult::Failed)) {
      std::cout << (refused ? "  Refused, nothing applied:\n" : "  Detail:\n");
      std::istringstream lines(r.detail);
      for (std::string line; std::getline(lines, line);) {
        std::cout << "    " << line << "\n";
      }
    }
  }
  if (st.lastGood.has_value()) {
    const ApplyRun& g = *st.lastGood;
    std::cout << "Last good commit: " << g.commitId.value_or("") << " (run #" << g.id << ", "
              << isoTime(g.startedAt) << ", \"" << g.subject.value_or("") << "\" by "
              << g.author.value_or("?") << ")\n";
  }
  auto wgs = st.wireguard;
  if (!wgs.empty()) {
    std::cout << "\nWireGuard (give peers the public key and <host address>:<listen port>):\n";
    for (const auto& w : wgs) {
      std::cout << "  " << w.ns << ": public key " << w.publicKey << ", listen port "
                << w.listenPort << "\n";
    }
  }
  auto certs = st.certificates;
  if (!certs.empty()) {
    std::cout << "\nCertificates served by the proxy:\n";
    for (const auto& c : certs) {
      std::string domains;
      for (const auto& d : c.cert.domains) {
        domains += (domains.empty() ? "" : ", ") + d;
      }
      std::cout << "  " << c.cert.name << ": " << c.issuer << ", " << domains << ", not after "
                << isoTime(c.cert.not_after * 1000) << ", sha256 " << c.cert.fingerprint << "\n";
      if (c.acme) {
        printAcmeText(*c.acme);
      }
    }
  }
  if (!st.blockedKeys.empty()) {
    std::cout << "\nAPI keys blocked on this host (lift with: edgeplane apikey unblock ID):\n";
    for (const auto& b : st.blockedKeys) {
      std::cout << "  " << b.keyId << " since " << isoTime(b.blockedAt) << "\n";
    }
  }
  std::cout << "\nResources owned (" << st.owned.size() << "):\n";
  for (const auto& row : st.owned) {
    std::cout << "  " << row.kind << " " << row.name << "\n";
  }
  if (!st.driftNote.empty()) {
    std::cout << "\n" << st.driftNote << "\n";
  } else if (st.drift.empty()) {
    std::cout << "\nIn sync: the host matches the last applied config.\n";
  } else {
    std::cout << "\nPending changes (" << st.drift.size() << "):\n";
    for (const auto& d : st.drift) {
      std::cout << "  " << d << "\n";
    }
  }
}

}  // namespace

int cmdHistory(const Options& o) {
  auto storeResult = openStoreIfPresent(o.stateDir);
  if (!storeResult) {
    std::cerr << "edgeplane history: " << storeResult.error().message << "\n";
    return 1;
  }
  std::vector<ApplyRun> runs;
  if (*storeResult) {
    auto r = (*storeResult)->recentRuns(o.limit);
    if (!r) {
      std::cerr << "edgeplane history: " << r.error().message << "\n";
      return 1;
    }
    runs = std::move(*r);
  }
  std::cout << (o.json ? renderHistoryJson(runs) : renderHistoryText(runs));
  return 0;
}

namespace {

// `status --check`, for monitoring: kCheckRun when there is no run yet or the last one did not
// end ok, kCheckDrift when the host differs from the last applied config or could not be
// compared with it; one line saying which (or "check: ok").
int checkExit(const Status& st, std::ostream& out) {
  if (st.runs.empty()) {
    out << "check: nothing applied yet\n";
    return kCheckRun;
  }
  const ApplyRun& last = st.runs.front();
  if (last.result != RunResult::Ok) {
    out << "check: last run " << last.id << " " << toString(last.result) << "\n";
    return kCheckRun;
  }
  if (!st.driftNote.empty()) {
    out << "check: " << st.driftNote << "\n";
    return kCheckDrift;
  }
  if (!st.drift.empty()) {
    out << "check: drift: " << st.drift.size() << " pending change(s) against the last applied "
        << "config\n";
    return kCheckDrift;
  }
  out << "check: ok\n";
  return 0;
}

}  // namespace

int cmdStatus(const Options& o) {
  auto storeResult = openStoreIfPresent(o.stateDir);
  if (!storeResult) {
    std::cerr << "edgeplane status: " << storeResult.error().message << "\n";
    return 1;
  }
  if (!*storeResult) {
    std::cout << (o.json ? "{\"last_run\":null,\"last_good\":null,\"resources\":[],\"pending\":[],"
                           "\"blocked_api_keys\":[]}\n"
                         : "Nothing applied yet (no state in " + o.stateDir + ").\n");
    return o.check ? checkExit(Status{}, o.json ? std::cerr : std::cout) : 0;
  }
  Store& store = **storeResult;
  auto runs = store.recentRuns(1);
  auto owned = store.listOwned(std::nullopt);
  auto lastGood = store.lastGoodCommitRun();
  if (!runs || !owned || !lastGood) {
    std::cerr << "edgeplane status: "
              << (!runs    ? runs.error()
                  : !owned ? owned.error()
                           : lastGood.error())
                     .message
              << "\n";
    return 1;
  }
  Status st;
  st.runs = std::move(*runs);
  st.lastGood = std::move(*lastGood);
  st.owned = std::move(*owned);
  if (!st.runs.empty()) {
    if (auto ops = store.runOps(st.runs.front().id)) {
      for (const auto& op : *ops) {
        if (!op.ok) {
          st.failedOps.push_back(op);
        }
      }
    }
    if (std::optional<fs::path> dir = lastConfigDir(o, st.runs.front())) {
      checkDrift(o, store, *dir, st);
    }
  }
  st.wireguard = wireguardInfo(o, st.owned);
  st.certificates = certificateInfo(store, st.owned);
  if (auto blocks = store.listApiKeyBlocks()) {
    st.blockedKeys = std::move(*blocks);
  }
  if (o.json) {
    printStatusJson(st);
  } else {
    printStatusText(st);
  }
  return o.check ? checkExit(st, o.json ? std::cerr : std::cout) : 0;
}

}  // namespace edgeplane::cli
