// The RFC 8555 client (see client.h) over the net module's HTTPS transport: an order's
// HTTP-01 / TLS-ALPN-01 / DNS-01 authorizations, its finalize, polling and chain download, and
// resuming an order cut short after its finalize. Its session with the CA: client.cpp.
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <utility>

#include "reconciler/acme/acme_client.h"
#include "reconciler/system/file_write.h"
#include "schema/encoding.h"
#include "schema/json_text.h"
#include "schema/terminal_text.h"

namespace edgeplane::acme {
namespace fs = std::filesystem;

namespace detail {
namespace {

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

}  // namespace

Result<void> Client::authorize(const std::string& authzUrl, const std::vector<std::string>& domains,
                               AcmeChallengeType type, ChallengeSink& sink,
                               std::vector<std::string>& tokens,
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
  // Only names this order asked for: nothing is published, and no order finished, for another.
  if (std::find(domains.begin(), domains.end(), shown) == domains.end()) {
    return terminal("authorization " + authzUrl + " is for " + terminalText(shown) +
                    ", a name this order did not ask for");
  }
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
    if (auto r = authorize(a, domains, challenge, sink, tokens, pending); !r) {
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

}  // namespace detail

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
  return std::make_unique<detail::Client>(std::move(settings));
}

}  // namespace edgeplane::acme
