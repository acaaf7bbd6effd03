// The RFC 8555 client (see client.h) over the net module's HTTPS transport: directory, nonces,
// account, order, HTTP-01 / TLS-ALPN-01 / DNS-01 authorizations, finalize, polling, chain download,
// resuming an order cut short after its finalize.
#include "reconciler/acme/client.h"

#include <sys/stat.h>

#include <openssl/sha.h>

#include <algorithm>
#include <filesystem>
#include <thread>
#include <utility>

#include "reconciler/acme/http_transport.h"
#include "reconciler/acme/jws.h"
#include "reconciler/acme/messages.h"
#include "reconciler/net/module.h"
#include "reconciler/system/file_write.h"
#include "schema/acme_eab.h"
#include "schema/json_text.h"
#include "schema/net.h"

namespace edgeplane::acme {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kBadNonceRetries = 5;
constexpr std::chrono::seconds kMaxRequest{30};
constexpr std::chrono::seconds kMaxRetryAfter{60};
constexpr std::chrono::milliseconds kDefaultPoll{500};
constexpr size_t kMaxBody = size_t{1} << 20;

struct Response {
  int status = 0;
  std::string body;
  std::string contentType;
  std::string location;
  std::string nonce;
  std::optional<std::chrono::seconds> retryAfter;  // as sent; polls hold it to kMaxRetryAfter
};

// The response's problem document, when it is one.
std::optional<Problem> problemOf(const Response& r) {
  if (r.contentType.rfind("application/problem+json", 0) != 0) {
    return std::nullopt;
  }
  auto p = parseProblem(r.body);
  return p ? std::optional<Problem>(std::move(p).value()) : std::nullopt;
}

// "urn:ietf:params:acme:error:badNonce: detail" from a problem document, else the status.
std::string problemText(const Response& r, const std::string& what) {
  if (auto p = problemOf(r)) {
    return what + ": " + problemSummary(*p);
  }
  return what + ": HTTP " + std::to_string(r.status);
}

bool problemIs(const Response& r, std::string_view type) {
  auto p = problemOf(r);
  return p && p->type == "urn:ietf:params:acme:error:" + std::string(type);
}

// A decoder's result with its error prefixed by the request it answered.
template <typename T>
Result<T> decoded(Result<T> r, const std::string& what) {
  if (!r) {
    return terminal(what + ": " + r.error().message);
  }
  return r;
}

Error failure(const Response& r, const std::string& what) {
  const bool again = r.status >= 500 || r.status == 429 || problemIs(r, "rateLimited");
  Error e = again ? retryable(problemText(r, what)) : terminal(problemText(r, what));
  return e;
}

std::optional<std::chrono::seconds> parseRetryAfter(const std::string& v) {
  if (v.empty() || v.size() > 9 ||
      !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;  // an HTTP-date is not worth honouring over the default poll
  }
  return std::chrono::seconds(std::stoll(v));
}

// `dir` and its parents created; `dir` itself owner-only (it holds private keys).
Result<void> makePrivateDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0) {
    return terminal("create " + dir.string() + ": " + (ec ? ec.message() : errnoText(errno)));
  }
  return {};
}

// A fresh P-256 key and its PKCS#8 PEM; the caller wipes the PEM once written.
Result<std::pair<Pkey, std::string>> freshKey() {
  auto key = generateP256();
  if (!key) {
    return key.error();
  }
  auto pem = privateKeyPem(key->get());
  if (!pem) {
    return pem.error();
  }
  return std::pair<Pkey, std::string>(std::move(key).value(), std::move(pem).value());
}

class Client final : public CertificateIssuer {
 public:
  explicit Client(ClientSettings s) : s_(std::move(s)) {}

  // Interface
  Result<Issued> obtain(const std::vector<std::string>& domains, AcmeChallengeType challenge,
                        ChallengeSink& sink, Clock::time_point deadline,
                        const std::string& replaces) override;
  Result<std::optional<RenewalWindow>> renewalInfo(const std::string& certId,
                                                   Clock::time_point deadline) override;

 private:
  Result<Response> http(const std::string& method, const std::string& url, const std::string& body);
  Result<void> loadDirectory();
  Result<void> freshNonce();
  // A JWS POST (payload nullopt: POST-as-GET), retried on badNonce with the nonce it brought.
  Result<Response> post(const std::string& url, const std::optional<std::string>& payload,
                        const std::string& what);
  Result<void> loadAccount();
  // newOrder for `domains` (with `replaces` when set and the CA offers ARI): the order's URL
  // and the order.
  Result<std::pair<std::string, Order>> newOrder(const std::vector<std::string>& domains,
                                                 const std::string& replaces);
  // [fleet] acme_eab_file's binding (nullopt: none); refused when the CA requires one.
  Result<std::optional<AcmeEab>> loadEab() const;
  // newAccount's payload: terms, contact, and the external account binding when set.
  Result<std::string> newAccountPayload(const std::optional<AcmeEab>& eab) const;
  // POST-as-GET `url` until its status leaves `pending` (and `processing`), each answer
  // decoded by `decode` (an order or an authorization).
  template <typename T>
  Result<T> poll(const std::string& url, const std::string& what,
                 Result<T> (*decode)(std::string_view));
  Result<void> sleepFor(std::chrono::milliseconds d, const std::string& what) const;
  // One authorization of an order: nothing when it is valid already; else its `type`
  // challenge's answer is published (the token added to `tokens`) and the CA told to
  // validate (the URL added to `pending`).
  Result<void> authorize(const std::string& authzUrl, AcmeChallengeType type, ChallengeSink& sink,
                         std::vector<std::string>& tokens, std::vector<std::string>& pending);
  // An order whose authorizations are valid: a fresh key, recorded with the order's URL
  // before the finalize (so that a run cut short resumes it), then complete().
  Result<Issued> finalizeNew(const std::string& orderUrl, const Order& order,
                             const std::vector<std::string>& domains);
  // The order recorded for `domains` by an earlier run, if any: ready -> finalized with the
  // recorded key, processing or valid -> downloaded; nullopt when there is none or it cannot
  // be continued (invalid, expired, gone: the record is dropped and a new order starts). A
  // network or server error is returned as it is (the record stays for the next run).
  Result<std::optional<Issued>> resume(const std::vector<std::string>& domains);
  // Finalize (when `finalize`), wait for the certificate, download it; the record is dropped
  // once the order is settled (issued or failed for good).
  Result<Issued> complete(const std::string& orderUrl, const Order& order, EVP_PKEY* key,
                          const std::vector<std::string>& domains, bool finalize);

  ClientSettings s_;
  Clock::time_point deadline_;
  std::string newNonceUrl_;
  std::string newAccountUrl_;
  bool eabRequired_ = false;  // the directory's meta.externalAccountRequired
  std::string newOrderUrl_;
  std::string renewalInfoUrl_;  // RFC 9773; "" when the CA offers none
  std::string nonce_;
  std::string kid_;
  Pkey account_;
  std::unique_ptr<HttpTransport> transport_;  // made at the first request
};

Result<Response> Client::http(const std::string& method, const std::string& url,
                              const std::string& body) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
  if (left.count() <= 0) {
    return retryable(method + " " + url + ": the order's time budget is spent");
  }
  if (!transport_) {
    auto loaded = net::module();
    if (!loaded) {
      return terminal(method + " " + url + ": " + loaded.error().message);
    }
    transport_ = (*loaded)->httpsTransport(s_.caRoots);
  }
  const auto budget = std::min<std::chrono::milliseconds>(left, kMaxRequest);
  auto answer = transport_->exchange(method, url, body, budget, kMaxBody);
  if (!answer) {
    return answer.error();
  }
  Response out;
  out.status = answer->status;
  out.contentType = std::move(answer->contentType);
  out.location = std::move(answer->location);
  out.nonce = std::move(answer->nonce);
  out.retryAfter = parseRetryAfter(answer->retryAfter);
  out.body = std::move(answer->body);
  if (!out.nonce.empty()) {
    nonce_ = out.nonce;
  }
  return out;
}

Result<void> Client::loadDirectory() {
  auto r = http("GET", s_.directory, "");
  if (!r) {
    return r.error();
  }
  if (r->status != 200) {
    return failure(*r, "directory " + s_.directory);
  }
  auto d = decoded(parseDirectory(r->body), "directory " + s_.directory);
  if (!d) {
    return d.error();
  }
  newNonceUrl_ = d->newNonce;
  newAccountUrl_ = d->newAccount;
  newOrderUrl_ = d->newOrder;
  renewalInfoUrl_ = d->renewalInfo;
  eabRequired_ = d->externalAccountRequired;
  return {};
}

Result<void> Client::freshNonce() {
  auto r = http("HEAD", newNonceUrl_, "");
  if (!r) {
    return r.error();
  }
  if (r->nonce.empty()) {
    return failure(*r, "newNonce gave no Replay-Nonce");
  }
  return {};
}

Result<Response> Client::post(const std::string& url, const std::optional<std::string>& payload,
                              const std::string& what) {
  for (int attempt = 0;; ++attempt) {
    if (nonce_.empty()) {
      if (auto n = freshNonce(); !n) {
        return n.error();
      }
    }
    auto header = protectedHeader(account_.get(), kid_, nonce_, url);
    if (!header) {
      return header.error();
    }
    auto jws = signJws(account_.get(), *header, payload.value_or(""));
    if (!jws) {
      return jws.error();
    }
    nonce_.clear();  // used; the response brings the next one
    auto r = http("POST", url, *jws);
    if (!r) {
      return r.error();
    }
    // RFC 8555 section 6.5: a badNonce is retried with the nonce its answer carries.
    if (r->status == 400 && problemIs(*r, "badNonce") && attempt < kBadNonceRetries) {
      continue;
    }
    if (r->status >= 400) {
      return failure(*r, what);
    }
    return r;
  }
}

Result<std::string> Client::newAccountPayload(const std::optional<AcmeEab>& eab) const {
  std::string payload = R"({"termsOfServiceAgreed":true)";
  if (s_.email) {
    payload += R"(,"contact":[)";
    appendJsonString(payload, "mailto:" + *s_.email);
    payload += "]";
  }
  if (eab) {
    auto binding = externalAccountBinding(account_.get(), eab->kid, eab->macKey, newAccountUrl_);
    if (!binding) {
      return binding.error();
    }
    payload += R"(,"externalAccountBinding":)" + *binding;
  }
  return payload + "}";
}

// The binding, read before any account key is made: a missing or malformed one changes nothing.
Result<std::optional<AcmeEab>> Client::loadEab() const {
  if (s_.eabFile.empty()) {
    if (eabRequired_) {
      return terminal("the CA at " + s_.directory +
                      " requires an external account binding (its directory's "
                      "meta.externalAccountRequired); set [fleet] acme_eab_file");
    }
    return std::optional<AcmeEab>();
  }
  auto eab = readAcmeEabFile(s_.eabFile);
  if (!eab) {
    return eab.error();
  }
  return std::optional<AcmeEab>(std::move(eab).value());
}

Result<void> Client::loadAccount() {
  auto eab = loadEab();
  if (!eab) {
    return eab.error();
  }
  const std::string path = accountKeyPath(s_);
  // A key that exists but cannot be read is an error, not a reason to make a new account.
  auto stored = sys::readOwnFile(path);
  if (!stored) {
    return stored.error();
  }
  if (*stored) {
    auto key = readP256Pem(**stored);
    std::fill((*stored)->begin(), (*stored)->end(), '\0');
    if (!key) {
      return terminal(path + ": " + key.error().message);
    }
    account_ = std::move(key).value();
  } else {
    auto key = freshKey();
    if (!key) {
      return key.error();
    }
    const fs::path dir = fs::path(path).parent_path();
    if (auto made = makePrivateDir(dir); !made) {
      return made.error();
    }
    auto written = sys::replaceFile(path, path + ".tmp", key->second, 0600);
    std::fill(key->second.begin(), key->second.end(), '\0');
    if (!written) {
      return written.error();
    }
    if (auto synced = sys::fsyncDir(dir.string()); !synced) {
      return synced.error();
    }
    account_ = std::move(key->first);
  }
  // newAccount with an existing key returns that account (200) and its URL.
  auto payload = newAccountPayload(*eab);
  if (*eab) {
    std::fill((*eab)->macKey.begin(), (*eab)->macKey.end(), '\0');
  }
  if (!payload) {
    return payload.error();
  }
  kid_.clear();
  auto r = post(newAccountUrl_, *payload, "newAccount");
  if (!r) {
    return r.error();
  }
  if (r->location.empty()) {
    return terminal("newAccount: the CA gave no account URL");
  }
  kid_ = r->location;
  return {};
}

Result<void> Client::sleepFor(std::chrono::milliseconds d, const std::string& what) const {
  if (Clock::now() + d >= deadline_) {
    return retryable(what + ": not done within the order's time budget");
  }
  std::this_thread::sleep_for(d);
  return {};
}

template <typename T>
Result<T> Client::poll(const std::string& url, const std::string& what,
                       Result<T> (*decode)(std::string_view)) {
  for (;;) {
    auto r = post(url, std::nullopt, what);
    if (!r) {
      return r.error();
    }
    auto j = decoded(decode(r->body), what);
    if (!j) {
      return j.error();
    }
    const std::string status = j->status;
    if (status != "pending" && status != "processing") {
      return j;
    }
    const auto wait = r->retryAfter
                          ? std::chrono::milliseconds(std::min(*r->retryAfter, kMaxRetryAfter))
                          : kDefaultPoll;
    if (auto slept = sleepFor(std::max(wait, kDefaultPoll), what + " (" + status + ")"); !slept) {
      return slept.error();
    }
  }
}

// Why an order failed: its error, as the CA put it.
std::string errorOf(const Order& o) {
  return o.error ? problemSummary(*o.error) : "status " + o.status;
}

// Why an authorization failed: its own or its challenge's error, as the CA put it.
std::string errorOf(const Authorization& a) {
  if (a.error) {
    return problemSummary(*a.error);
  }
  for (const Challenge& c : a.challenges) {
    if (c.error) {
      return problemSummary(*c.error);
    }
  }
  return "status " + a.status;
}

Result<void> Client::authorize(const std::string& authzUrl, AcmeChallengeType type,
                               ChallengeSink& sink, std::vector<std::string>& tokens,
                               std::vector<std::string>& pending) {
  auto r = post(authzUrl, std::nullopt, "authorization");
  if (!r) {
    return r.error();
  }
  auto authz = decoded(parseAuthorization(r->body), "authorization " + authzUrl);
  if (!authz) {
    return authz.error();
  }
  const std::string& status = authz->status;
  // RFC 8555 section 7.1.4: a wildcard's authorization names the base domain and says
  // "wildcard": true; its DNS-01 TXT name is _acme-challenge.<base domain>.
  const std::string& domain = authz->identifierValue;
  const std::string shown = authz->wildcard ? "*." + domain : domain;
  if (status == "valid") {
    return {};
  }
  if (status != "pending") {
    return terminal("authorization for " + shown + ": " + errorOf(*authz));
  }
  const std::string typeName(toString(type));
  const Challenge* chosen = nullptr;
  for (const Challenge& c : authz->challenges) {
    if (c.type == typeName) {
      chosen = &c;
    }
  }
  if (chosen == nullptr) {
    return terminal("authorization for " + shown + ": the CA offers no " + typeName + " challenge");
  }
  const std::string token = chosen->token;
  const std::string url = chosen->url;
  // RFC 8555 section 8.3: the token is base64url, so it is safe in a path and a store key.
  if (token.empty() || url.empty() || !std::all_of(token.begin(), token.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
      })) {
    return terminal("authorization for " + shown + ": malformed " + typeName + " challenge");
  }
  auto keyAuth = keyAuthorization(token, account_.get());
  if (!keyAuth) {
    return keyAuth.error();
  }
  if (auto p = sink.publish(type, domain, token, *keyAuth); !p) {
    return p.error();
  }
  tokens.push_back(token);
  if (auto r2 = post(url, "{}", "challenge for " + shown); !r2) {
    return r2.error();
  }
  pending.push_back(authzUrl);
  return {};
}

// An order taken to its finalize, on disk (see pendingOrderDir): the URL and the CSR's key.
struct PendingOrder {
  std::string dir;
  std::string url() const { return dir + "/order"; }
  std::string key() const { return dir + "/key.pem"; }

  // The key first, then the URL: an `order` file always has its key.
  Result<void> record(const std::string& orderUrl, const std::string& keyPem) const {
    if (auto made = makePrivateDir(dir); !made) {
      return made.error();
    }
    if (auto w = sys::replaceFile(key(), key() + ".tmp", keyPem, 0600); !w) {
      return w.error();
    }
    if (auto w = sys::replaceFile(url(), url() + ".tmp", orderUrl, 0600); !w) {
      return w.error();
    }
    return sys::fsyncDir(dir);
  }
  // The URL goes first: a key without it is never used.
  void drop() const {
    std::error_code ec;
    fs::remove(url(), ec);
    fs::remove(key(), ec);
    fs::remove(dir, ec);
  }
};

Result<Issued> Client::complete(const std::string& orderUrl, const Order& order, EVP_PKEY* key,
                                const std::vector<std::string>& domains, bool finalize) {
  const PendingOrder pending{pendingOrderDir(s_, domains)};
  auto settled = [&](Error e) {
    if (!e.retryable) {
      pending.drop();
    }
    return e;
  };
  if (finalize) {
    auto csr = buildCsr(key, domains);
    if (!csr) {
      return csr.error();
    }
    auto finalized = post(order.finalize, R"({"csr":")" + base64url(*csr) + R"("})", "finalize");
    if (!finalized) {
      return settled(finalized.error());
    }
  }
  auto done = poll(orderUrl, "order", parseOrder);
  if (!done) {
    return settled(done.error());
  }
  if (done->status != "valid" || done->certificate.empty()) {
    return settled(terminal("order " + orderUrl + ": " + errorOf(*done)));
  }
  auto cert = post(done->certificate, std::nullopt, "certificate download");
  if (!cert) {
    return settled(cert.error());
  }
  if (cert->body.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return settled(terminal("certificate download: not a PEM chain"));
  }
  auto keyPem = privateKeyPem(key);
  if (!keyPem) {
    return keyPem.error();
  }
  pending.drop();
  return Issued{cert->body, std::move(keyPem).value()};
}

Result<Issued> Client::finalizeNew(const std::string& orderUrl, const Order& order,
                                   const std::vector<std::string>& domains) {
  auto key = freshKey();
  if (!key) {
    return key.error();
  }
  auto recorded = PendingOrder{pendingOrderDir(s_, domains)}.record(orderUrl, key->second);
  std::fill(key->second.begin(), key->second.end(), '\0');
  if (!recorded) {
    return recorded.error();
  }
  return complete(orderUrl, order, key->first.get(), domains, true);
}

Result<std::optional<Issued>> Client::resume(const std::vector<std::string>& domains) {
  const PendingOrder pending{pendingOrderDir(s_, domains)};
  auto url = sys::readOwnFile(pending.url());
  if (!url) {
    return url.error();
  }
  if (!*url) {
    return std::optional<Issued>();
  }
  auto keyText = sys::readOwnFile(pending.key());
  if (!keyText) {
    return keyText.error();
  }
  auto key = *keyText ? readP256Pem(**keyText) : Result<Pkey>(terminal("no key"));
  if (*keyText) {
    std::fill((*keyText)->begin(), (*keyText)->end(), '\0');
  }
  if (!key) {
    pending.drop();  // unusable: start over
    return std::optional<Issued>();
  }
  auto r = post(**url, std::nullopt, "order " + **url);
  if (!r && r.error().retryable) {
    return r.error();
  }
  auto order = r ? decoded(parseOrder(r->body), "order " + **url) : Result<Order>(r.error());
  const std::string status = order ? order->status : "";
  if (status != "ready" && status != "processing" && status != "valid") {
    pending.drop();  // gone, invalid, expired or back to pending: a new order
    return std::optional<Issued>();
  }
  auto issued = complete(**url, *order, key->get(), domains, status == "ready");
  if (!issued) {
    return issued.error();
  }
  return std::optional<Issued>(std::move(issued).value());
}

Result<std::pair<std::string, Order>> Client::newOrder(const std::vector<std::string>& domains,
                                                       const std::string& replaces) {
  std::string payload = R"({"identifiers":[)";
  for (size_t i = 0; i < domains.size(); ++i) {
    payload += i == 0 ? R"({"type":"dns","value":)" : R"(,{"type":"dns","value":)";
    appendJsonString(payload, domains[i]);
    payload += "}";
  }
  payload += "]";
  // A CA without ARI may not know the member; one with it may refuse it (alreadyReplaced, a
  // certificate it did not issue): the order then goes without the hint.
  const bool hint = !replaces.empty() && !renewalInfoUrl_.empty();
  std::string withReplaces = payload;
  if (hint) {
    withReplaces += R"(,"replaces":)";
    appendJsonString(withReplaces, replaces);
  }
  auto created = post(newOrderUrl_, withReplaces + "}", "newOrder");
  if (hint && !created && !created.error().retryable) {
    created = post(newOrderUrl_, payload + "}", "newOrder");
  }
  if (!created) {
    return created.error();
  }
  auto order = decoded(parseOrder(created->body), "newOrder");
  if (!order) {
    return order.error();
  }
  if (created->location.empty()) {
    return terminal("newOrder: the CA gave no order URL");
  }
  return std::pair<std::string, Order>(created->location, std::move(order).value());
}

Result<std::optional<RenewalWindow>> Client::renewalInfo(const std::string& certId,
                                                         Clock::time_point deadline) {
  deadline_ = deadline;
  if (auto d = loadDirectory(); !d) {
    return d.error();
  }
  if (renewalInfoUrl_.empty()) {
    return std::optional<RenewalWindow>();
  }
  // Section 4.1: <renewalInfo>/<CertID>, a plain GET (no account, no JWS).
  const std::string url = renewalInfoUrl_ + (renewalInfoUrl_.back() == '/' ? "" : "/") + certId;
  const std::string what = "renewalInfo " + url;
  auto r = http("GET", url, "");
  if (!r) {
    return r.error();
  }
  if (r->status != 200) {
    return failure(*r, what);
  }
  auto info = decoded(parseRenewalInfo(r->body), what);
  if (!info) {
    return info.error();
  }
  std::optional<int64_t> retryAfter;
  if (r->retryAfter) {
    retryAfter = r->retryAfter->count();
  }
  return std::optional<RenewalWindow>(RenewalWindow{std::move(info).value(), retryAfter});
}

Result<Issued> Client::obtain(const std::vector<std::string>& domains, AcmeChallengeType challenge,
                              ChallengeSink& sink, Clock::time_point deadline,
                              const std::string& replaces) {
  deadline_ = deadline;
  nonce_.clear();
  if (auto d = loadDirectory(); !d) {
    return d.error();
  }
  if (auto a = loadAccount(); !a) {
    return a.error();
  }
  if (auto resumed = resume(domains); !resumed) {
    return resumed.error();
  } else if (*resumed) {
    return std::move(**resumed);
  }
  auto created = newOrder(domains, replaces);
  if (!created) {
    return created.error();
  }
  const std::string orderUrl = created->first;
  const Order order = std::move(created->second);
  // Authorizations: publish each answer and tell the CA, then wait for all of them.
  std::vector<std::string> tokens;
  struct Withdraw {
    ChallengeSink& sink;
    std::vector<std::string>& tokens;
    ~Withdraw() {
      if (!tokens.empty()) {
        sink.withdraw(tokens);
      }
    }
  } withdraw{sink, tokens};
  if (!order.authorizations) {
    return terminal("newOrder: no authorizations in the order");
  }
  std::vector<std::string> pending;
  for (const std::string& a : *order.authorizations) {
    if (auto r = authorize(a, challenge, sink, tokens, pending); !r) {
      return r.error();
    }
  }
  for (const std::string& a : pending) {
    auto authz = poll(a, "authorization", parseAuthorization);
    if (!authz) {
      return authz.error();
    }
    if (authz->status != "valid") {
      // An absent identifier names the authorization by its URL.
      const std::string& who = authz->identifierValue.empty() ? a : authz->identifierValue;
      return terminal("authorization for " + who + ": " + errorOf(*authz));
    }
  }
  sink.withdraw(tokens);
  tokens.clear();
  return finalizeNew(orderUrl, order, domains);
}

}  // namespace

std::string accountKeyPath(const ClientSettings& s) {
  const std::string id = s.directory + "\n" + s.email.value_or("");
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(id.data()), id.size(), md);
  return (fs::path(s.stateDir) / "acme" / "accounts" / toHex(md, 8) / "key.pem").string();
}

std::string pendingOrderDir(const ClientSettings& s, const std::vector<std::string>& domains) {
  std::string id = s.directory + "\n" + s.email.value_or("");
  for (const std::string& d : domains) {
    id += "\n" + d;
  }
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(id.data()), id.size(), md);
  return (fs::path(s.stateDir) / "acme" / "orders" / toHex(md, 8)).string();
}

std::unique_ptr<CertificateIssuer> makeAcmeClient(ClientSettings settings) {
  return std::make_unique<Client>(std::move(settings));
}

}  // namespace edgeplane::acme
