// The ACME client behind an interface: what apply needs to obtain a certificate, the real RFC
// 8555 implementation over HTTPS (client.cpp), and a fake for tests (tests/support).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reconciler/acme/messages.h"
#include "schema/model.h"
#include "schema/result.h"

namespace edgeplane::acme {

// Where pending challenge answers go while an order runs: the store, which the proxy reads
// (HTTP-01: token -> key authorization on :80; TLS-ALPN-01: domain -> the RFC 8737
// certificate made from the key authorization, on :443; DNS-01: the authorization's domain -
// a wildcard's base name - -> a TXT value for _acme-challenge.<domain> on the --dns responder).
class ChallengeSink {
 public:
  virtual ~ChallengeSink() = default;
  virtual Result<void> publish(AcmeChallengeType type, const std::string& domain,
                               const std::string& token, const std::string& keyAuthorization) = 0;
  // Called once the authorizations are settled, valid or not; best effort.
  virtual void withdraw(const std::vector<std::string>& tokens) = 0;
};

// A certificate as the CA issued it: the PEM chain (leaf first) and its fresh private key.
struct Issued {
  std::string chainPem;
  std::string keyPem;  // PKCS#8 PEM; never logged
};

// RFC 9773: the CA's renewalInfo answer for one certificate and how long it holds.
struct RenewalWindow {
  RenewalInfo info;
  std::optional<int64_t> retryAfter;  // seconds, as the CA sent it (unclamped); nullopt: none
};

class CertificateIssuer {
 public:
  virtual ~CertificateIssuer() = default;
  // Runs one order for `domains`, each authorization by a `challenge` challenge, to its end or
  // until `deadline`. `replaces` (RFC 9773 section 5): the CertID of the certificate this order
  // renews, sent when the CA offers ARI; a new order the CA refuses with it is placed once more
  // without it (a renewal is never lost to the hint). "": none. An error carries
  // the CA's problem document ("urn:ietf:params:acme:error:…: detail") when there was one;
  // retryable when another run may well succeed (timeouts, network, 5xx, rate limits).
  virtual Result<Issued> obtain(const std::vector<std::string>& domains,
                                AcmeChallengeType challenge, ChallengeSink& sink,
                                std::chrono::steady_clock::time_point deadline,
                                const std::string& replaces) = 0;
  // RFC 9773: the CA's suggested renewal window for the certificate `certId` (cert_id.h);
  // nullopt when the CA offers no ARI (no renewalInfo in its directory). An error when the CA
  // fails or its answer is malformed (a window ending before it starts included).
  virtual Result<std::optional<RenewalWindow>> renewalInfo(
      const std::string& certId, std::chrono::steady_clock::time_point deadline) = 0;
};

struct ClientSettings {
  std::string directory;             // the directory URL
  std::optional<std::string> email;  // the account's contact
  std::string caRoots;               // a PEM file the CA's API is trusted with; "": system roots
  std::string stateDir;              // the account key lives under <state-dir>/acme/accounts/
  // The CA's external account binding file (schema/acme_eab.h), read at each newAccount; "":
  // none, and a CA whose directory says externalAccountRequired is refused.
  std::string eabFile;
};

// The account key's file for (directory, email): <state-dir>/acme/accounts/<16 hex of
// SHA-256("directory\nemail")>/key.pem.
std::string accountKeyPath(const ClientSettings& s);

// Where an order taken to its finalize is recorded, so that a run cut short (the time budget,
// a crash) resumes it rather than ordering again: <state-dir>/acme/orders/<16 hex of
// SHA-256("directory\nemail\ndomain\n…")>/ holding `order` (its URL) and `key.pem` (the
// CSR's key, 0600), both written temp + rename. Dropped once the order is settled.
std::string pendingOrderDir(const ClientSettings& s, const std::vector<std::string>& domains);

// The RFC 8555 client (HTTP-01, TLS-ALPN-01 and DNS-01; wildcards by DNS-01).
std::unique_ptr<CertificateIssuer> makeAcmeClient(ClientSettings settings);

}  // namespace edgeplane::acme
