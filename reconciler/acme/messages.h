// The CA's RFC 8555 JSON documents decoded into types: pure, no I/O (client.cpp does the HTTP).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/result.h"

namespace edgeplane::acme {

// RFC 7807 / RFC 8555 section 6.7: a problem document; subproblems are one level deep.
struct Problem {
  std::string type;        // "urn:ietf:params:acme:error:…"; "" when absent
  std::string detail;      // "" when absent
  std::string identifier;  // a subproblem's identifier value; "" when absent
  std::vector<Problem> subproblems;
};

// Section 7.1.1.
struct Directory {
  std::string newNonce;
  std::string newAccount;
  std::string newOrder;
  std::string renewalInfo;  // RFC 9773 (ARI); "" when the CA offers none
  bool externalAccountRequired = false;
};

// Section 7.1.3.
struct Order {
  std::string status;
  std::optional<std::vector<std::string>> authorizations;  // nullopt: absent
  std::string finalize;
  std::string certificate;  // "" until the order is valid
  std::optional<Problem> error;
};

// Section 7.1.5.
struct Challenge {
  std::string type;
  std::string url;
  std::string token;
  std::string status;
  std::optional<Problem> error;
};

// Section 7.1.4.
struct Authorization {
  std::string status;
  std::string identifierType;
  std::string identifierValue;
  bool wildcard = false;
  std::vector<Challenge> challenges;
  std::optional<Problem> error;  // not in RFC 8555's object, but some CAs say why here
};

// RFC 9773 section 4.2: the CA's suggested renewal window for one certificate (its renewalInfo
// resource). The Retry-After header that came with it is the client's to read.
struct RenewalInfo {
  int64_t start = 0;           // unix seconds
  int64_t end = 0;             // unix seconds; after start
  std::string explanationUrl;  // "" when absent; shown to operators, never fetched
};

// Each decoder takes a response body and returns the document or a terminal error that says
// what is wrong with it ("the CA's answer is not a JSON object (…)"); the caller adds which
// request it was. Members of a known name but the wrong JSON type are errors; unknown
// members are ignored (section 7.1: clients must ignore them).
Result<Directory> parseDirectory(std::string_view body);
Result<Order> parseOrder(std::string_view body);
Result<Authorization> parseAuthorization(std::string_view body);
Result<Problem> parseProblem(std::string_view body);
// A window whose end is not after its start is an error (RFC 9773 section 4.2: the client treats
// it as no answer).
Result<RenewalInfo> parseRenewalInfo(std::string_view body);

// An RFC 3339 date-time ("2025-01-02T04:00:00Z", fractions and offsets allowed) as unix seconds,
// fractions dropped; nullopt when it is not one.
std::optional<int64_t> parseRfc3339(std::string_view text);

// "type: detail" (or "type"), how the client reports a CA's problem.
std::string problemSummary(const Problem& p);

// A machine value from the CA (a URL, a status, a token, an identifier, the Location header):
// printable ASCII without spaces, at most kMaxCaValueBytes, as RFC 8555 has them. What reaches
// messages and files as it is; only a problem's prose (type, detail) may hold anything, and
// messages escape it.
inline constexpr size_t kMaxCaValueBytes = 4096;
Result<void> checkCaValue(std::string_view key, std::string_view value);

}  // namespace edgeplane::acme
