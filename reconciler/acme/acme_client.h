// The ACME client's state (internal to reconciler/acme; see client.h for the behaviour): its
// session with the CA in client.cpp (directory, nonces, signed requests, the account, renewal
// info; the polling loop, a template, is below), the order flow in client_order.cpp
// (authorizations, finalize, resuming).
#pragma once

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reconciler/acme/client.h"
#include "reconciler/acme/http_transport.h"
#include "reconciler/acme/jws.h"
#include "reconciler/acme/messages.h"
#include "schema/acme_eab.h"
#include "schema/result.h"

namespace edgeplane::acme::detail {

using Clock = std::chrono::steady_clock;

inline constexpr int kBadNonceRetries = 5;
inline constexpr std::chrono::seconds kMaxRequest{30};
inline constexpr std::chrono::seconds kMaxRetryAfter{60};
inline constexpr std::chrono::milliseconds kDefaultPoll{500};
inline constexpr size_t kMaxBody = size_t{1} << 20;

struct Response {
  int status = 0;
  std::string body;
  std::string contentType;
  std::string location;
  std::string nonce;
  std::optional<std::chrono::seconds> retryAfter;  // as sent; polls hold it to kMaxRetryAfter
};

// A decoder's result with its error prefixed by the request it answered.
template <typename T>
Result<T> decoded(Result<T> r, const std::string& what) {
  if (!r) {
    return terminal(what + ": " + r.error().message);
  }
  return r;
}

// `dir` and its parents created; `dir` itself owner-only (it holds private keys).
Result<void> makePrivateDir(const std::filesystem::path& dir);

// A fresh P-256 key and its PKCS#8 PEM; the caller wipes the PEM once written.
Result<std::pair<Pkey, std::string>> freshKey();

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
  // One authorization of an order for `domains`: refused when it is for another name; nothing
  // when it is valid already; else its `type` challenge's answer is published (the token added
  // to `tokens`) and the CA told to validate (the URL added to `pending`).
  Result<void> authorize(const std::string& authzUrl, const std::vector<std::string>& domains,
                         AcmeChallengeType type, ChallengeSink& sink,
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

}  // namespace edgeplane::acme::detail
