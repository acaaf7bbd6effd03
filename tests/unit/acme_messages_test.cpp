// The ACME JSON decoders (messages.h) on RFC 8555 section 7 examples and malformed documents.
#include <gtest/gtest.h>

#include "reconciler/acme/messages.h"

namespace edgeplane::acme {
namespace {

// RFC 8555 section 7.1.1, plus RFC 9773's renewalInfo.
TEST(AcmeMessagesTest, DirectoryFromRfc8555) {
  auto d = parseDirectory(R"({
    "newNonce": "https://example.com/acme/new-nonce",
    "newAccount": "https://example.com/acme/new-account",
    "newOrder": "https://example.com/acme/new-order",
    "newAuthz": "https://example.com/acme/new-authz",
    "revokeCert": "https://example.com/acme/revoke-cert",
    "keyChange": "https://example.com/acme/key-change",
    "renewalInfo": "https://example.com/acme/renewal-info",
    "meta": {
      "termsOfService": "https://example.com/acme/terms/2017-5-30",
      "website": "https://www.example.com/",
      "caaIdentities": ["example.com"],
      "externalAccountRequired": true
    }
  })");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->newNonce, "https://example.com/acme/new-nonce");
  EXPECT_EQ(d->newAccount, "https://example.com/acme/new-account");
  EXPECT_EQ(d->newOrder, "https://example.com/acme/new-order");
  EXPECT_EQ(d->renewalInfo, "https://example.com/acme/renewal-info");
  EXPECT_TRUE(d->externalAccountRequired);
}

TEST(AcmeMessagesTest, DirectoryErrors) {
  auto missing = parseDirectory(R"({"newNonce":"n","newAccount":"a"})");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "lacks newNonce, newAccount or newOrder");
  auto notObject = parseDirectory("[]");
  ASSERT_FALSE(notObject);
  EXPECT_EQ(notObject.error().message, "the CA's answer is not a JSON object");
  auto eab = parseDirectory(
      R"({"newNonce":"n","newAccount":"a","newOrder":"o","meta":{"externalAccountRequired":1}})");
  ASSERT_FALSE(eab);
  EXPECT_EQ(eab.error().message, "'externalAccountRequired' is not a boolean");
  EXPECT_FALSE(parseDirectory(R"({"newNonce":7,"newAccount":"a","newOrder":"o"})"));
  EXPECT_FALSE(parseDirectory("{\"newNonce\":\"n\""));
}

// Section 7.1.3.
TEST(AcmeMessagesTest, OrderFromRfc8555) {
  auto o = parseOrder(R"({
    "status": "valid",
    "expires": "2016-01-20T14:09:07.99Z",
    "identifiers": [
      { "type": "dns", "value": "www.example.org" },
      { "type": "dns", "value": "example.org" }
    ],
    "notBefore": "2016-01-01T00:00:00Z",
    "notAfter": "2016-01-08T00:00:00Z",
    "authorizations": [
      "https://example.com/acme/authz/PAniVnsZcis",
      "https://example.com/acme/authz/r4HqLzrSrpI"
    ],
    "finalize": "https://example.com/acme/order/TOlocE8rfgo/finalize",
    "certificate": "https://example.com/acme/cert/mAt3xBGaobw"
  })");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->status, "valid");
  ASSERT_TRUE(o->authorizations);
  EXPECT_EQ(*o->authorizations,
            (std::vector<std::string>{"https://example.com/acme/authz/PAniVnsZcis",
                                      "https://example.com/acme/authz/r4HqLzrSrpI"}));
  EXPECT_EQ(o->finalize, "https://example.com/acme/order/TOlocE8rfgo/finalize");
  EXPECT_EQ(o->certificate, "https://example.com/acme/cert/mAt3xBGaobw");
  EXPECT_FALSE(o->error);
}

TEST(AcmeMessagesTest, OrderErrorAndMalformed) {
  auto o =
      parseOrder(R"({"status":"invalid","error":{"type":"urn:ietf:params:acme:error:unauthorized",)"
                 R"("detail":"no TXT record"}})");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_FALSE(o->authorizations);
  ASSERT_TRUE(o->error);
  EXPECT_EQ(problemSummary(*o->error), "urn:ietf:params:acme:error:unauthorized: no TXT record");
  auto badUrl = parseOrder(R"({"status":"pending","authorizations":["a",1]})");
  ASSERT_FALSE(badUrl);
  EXPECT_EQ(badUrl.error().message, "an authorization URL is not a string");
  EXPECT_FALSE(parseOrder(R"({"status":"pending","authorizations":"a"})"));
  EXPECT_FALSE(parseOrder(R"({"status":"invalid","error":"x"})"));
}

// Section 7.1.4 (with the challenge of section 8.3).
TEST(AcmeMessagesTest, AuthorizationFromRfc8555) {
  auto a = parseAuthorization(R"({
    "status": "valid",
    "expires": "2015-03-01T14:09:07.99Z",
    "identifier": { "type": "dns", "value": "www.example.org" },
    "challenges": [
      {
        "url": "https://example.com/acme/chall/prV_B7yEyA4",
        "type": "http-01",
        "status": "valid",
        "token": "DGyRejmCefe7v4NfDGDKfA",
        "validated": "2014-12-01T12:05:58.16Z"
      }
    ],
    "wildcard": false
  })");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->status, "valid");
  EXPECT_EQ(a->identifierType, "dns");
  EXPECT_EQ(a->identifierValue, "www.example.org");
  EXPECT_FALSE(a->wildcard);
  ASSERT_EQ(a->challenges.size(), 1u);
  EXPECT_EQ(a->challenges[0].type, "http-01");
  EXPECT_EQ(a->challenges[0].url, "https://example.com/acme/chall/prV_B7yEyA4");
  EXPECT_EQ(a->challenges[0].token, "DGyRejmCefe7v4NfDGDKfA");
  EXPECT_EQ(a->challenges[0].status, "valid");
  EXPECT_FALSE(a->challenges[0].error);
}

TEST(AcmeMessagesTest, AuthorizationChallengeErrorAndMalformed) {
  auto a = parseAuthorization(
      R"({"status":"invalid","identifier":{"type":"dns","value":"example.org"},"wildcard":true,)"
      R"("challenges":[{"type":"dns-01","url":"u","token":"t","status":"invalid",)"
      R"("error":{"type":"urn:ietf:params:acme:error:dns","detail":"NXDOMAIN"}}]})");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(a->wildcard);
  ASSERT_EQ(a->challenges.size(), 1u);
  ASSERT_TRUE(a->challenges[0].error);
  EXPECT_EQ(a->challenges[0].error->detail, "NXDOMAIN");
  EXPECT_FALSE(parseAuthorization(R"({"status":"pending","challenges":[3]})"));
  EXPECT_FALSE(parseAuthorization(R"({"status":"pending","wildcard":"yes"})"));
  EXPECT_FALSE(parseAuthorization(R"({"status":"pending","identifier":"example.org"})"));
  auto token = parseAuthorization(R"({"status":"pending","challenges":[{"token":5}]})");
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().message, "'token' is not a string");
}

// Section 6.7.1.
TEST(AcmeMessagesTest, ProblemWithSubproblemsFromRfc8555) {
  auto p = parseProblem(R"({
    "type": "urn:ietf:params:acme:error:malformed",
    "detail": "Some of the identifiers requested were rejected",
    "subproblems": [
      {
        "type": "urn:ietf:params:acme:error:malformed",
        "detail": "Invalid underscore in DNS name \"_example.org\"",
        "identifier": { "type": "dns", "value": "_example.org" }
      },
      {
        "type": "urn:ietf:params:acme:error:rejectedIdentifier",
        "detail": "This CA will not issue for \"example.net\"",
        "identifier": { "type": "dns", "value": "example.net" }
      }
    ]
  })");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->type, "urn:ietf:params:acme:error:malformed");
  EXPECT_EQ(p->detail, "Some of the identifiers requested were rejected");
  ASSERT_EQ(p->subproblems.size(), 2u);
  EXPECT_EQ(p->subproblems[0].identifier, "_example.org");
  EXPECT_EQ(p->subproblems[1].type, "urn:ietf:params:acme:error:rejectedIdentifier");
  EXPECT_EQ(p->subproblems[1].detail, "This CA will not issue for \"example.net\"");
  EXPECT_EQ(
      problemSummary(*p),
      "urn:ietf:params:acme:error:malformed: Some of the identifiers requested were rejected");
}

TEST(AcmeMessagesTest, ProblemMalformed) {
  EXPECT_FALSE(parseProblem(R"({"type":"t","subproblems":[{"subproblems":[]}]})"));
  EXPECT_FALSE(parseProblem(R"({"type":"t","subproblems":{}})"));
  EXPECT_FALSE(parseProblem(R"({"type":1})"));
  EXPECT_FALSE(parseProblem("not json"));
  auto bare = parseProblem(R"({"type":"urn:ietf:params:acme:error:badNonce"})");
  ASSERT_TRUE(bare);
  EXPECT_EQ(problemSummary(*bare), "urn:ietf:params:acme:error:badNonce");
}

// What the CA writes goes into log lines, the journal and `status`: a problem's type and
// detail and an explanationURL come out with their control bytes escaped and at most 512 bytes
// each, so a CA cannot forge log lines or drive a terminal (found by an attacker's read).
TEST(AcmeMessagesTest, TextFromTheCaIsEscapedAndBounded) {
  auto p = parseProblem(
      R"({"type":"urn:ietf:params:acme:error:x\u001b[2J","detail":"no\nedgeplane apply: forged)" +
      std::string(4000, 'a') + R"("})");
  ASSERT_TRUE(p) << p.error().message;
  const std::string summary = problemSummary(*p);
  EXPECT_EQ(summary.find_first_of(std::string("\x1b\n\r", 3)), std::string::npos) << summary;
  EXPECT_NE(summary.find("x\\x1b[2J: no\\x0aedgeplane apply: forged"), std::string::npos)
      << summary;
  EXPECT_LT(summary.size(), 1200u);  // the 4000-byte detail cut to 512
  auto r = parseRenewalInfo(
      R"({"suggestedWindow":{"start":"2025-01-02T04:00:00Z","end":"2025-01-03T04:00:00Z"},)"
      R"("explanationURL":"https://ca.example/\r\nforged)" +
      std::string(4000, 'b') + R"("})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->explanationUrl.find_first_of("\r\n"), std::string::npos) << r->explanationUrl;
  EXPECT_LE(r->explanationUrl.size(), 4 * 512u + 3);  // an escape is 4 bytes
}

// The CA's machine values (URLs, statuses, identifiers) reach messages as they are, so one
// holding a control character is refused where it is parsed (found by a review).
TEST(AcmeMessagesTest, MachineValuesWithControlCharactersAreRefused) {
  EXPECT_FALSE(parseOrder(R"({"status":"valid\u001b[2J"})"));
  EXPECT_FALSE(parseOrder(R"({"status":"valid","finalize":"https://ca.example/f\r\nforged"})"));
  EXPECT_FALSE(parseOrder(R"({"status":"pending","authorizations":["https://ca.example/a\n"]})"));
  EXPECT_FALSE(parseAuthorization(R"({"status":"pending\n"})"));
  EXPECT_FALSE(parseAuthorization(
      R"({"status":"pending","identifier":{"type":"dns","value":"a.example\u0007"}})"));
  EXPECT_FALSE(parseOrder(R"({"status":")" + std::string(5000, 'a') + R"("})"));
  // C1 controls and other bytes past ASCII (a review: U+009B starts a terminal escape).
  EXPECT_FALSE(parseOrder(R"({"status":"valid\u009b2J"})"));
  EXPECT_FALSE(parseOrder("{\"status\":\"valid\xc2\x9b\"}"));
  EXPECT_FALSE(checkCaValue("Location", "https://ca.example/o/1 x"));
  EXPECT_TRUE(checkCaValue("Location", "https://ca.example/acme/order/1/2"));
  EXPECT_TRUE(checkCaValue("Location", ""));
  EXPECT_TRUE(parseOrder(R"({"status":"valid","finalize":"https://ca.example/f"})"));
}

// RFC 9773 section 4.2's example.
TEST(AcmeMessagesTest, RenewalInfoFromRfc9773) {
  auto r = parseRenewalInfo(R"({
    "suggestedWindow": {
      "start": "2025-01-02T04:00:00Z",
      "end": "2025-01-03T04:00:00Z"
    },
    "explanationURL": "https://acme.example.com/docs/ari"
  })");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->start, 1735790400);
  EXPECT_EQ(r->end, 1735876800);
  EXPECT_EQ(r->explanationUrl, "https://acme.example.com/docs/ari");
  auto bare = parseRenewalInfo(
      R"({"suggestedWindow":{"start":"2025-01-02T04:00:00.5+01:00","end":"2025-01-02T05:00:00Z"}})");
  ASSERT_TRUE(bare) << bare.error().message;
  EXPECT_EQ(bare->start, 1735790400 - 3600);
  EXPECT_EQ(bare->explanationUrl, "");
}

// Section 4.2: a window whose end is not after its start is as good as no answer.
TEST(AcmeMessagesTest, RenewalInfoErrors) {
  auto backwards = parseRenewalInfo(
      R"({"suggestedWindow":{"start":"2025-01-03T04:00:00Z","end":"2025-01-02T04:00:00Z"}})");
  ASSERT_FALSE(backwards);
  EXPECT_EQ(backwards.error().message, "suggestedWindow ends before it starts");
  EXPECT_FALSE(parseRenewalInfo(
      R"({"suggestedWindow":{"start":"2025-01-02T04:00:00Z","end":"2025-01-02T04:00:00Z"}})"));
  auto missing = parseRenewalInfo(R"({"explanationURL":"x"})");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "lacks suggestedWindow");
  EXPECT_FALSE(parseRenewalInfo(R"({"suggestedWindow":[]})"));
  EXPECT_FALSE(parseRenewalInfo(R"({"suggestedWindow":{"start":"2025-01-02T04:00:00Z"}})"));
  EXPECT_FALSE(parseRenewalInfo(R"({"suggestedWindow":{"start":1,"end":2}})"));
  EXPECT_FALSE(
      parseRenewalInfo(R"({"suggestedWindow":{"start":"2025-01-02","end":"2025-01-03"}})"));
  EXPECT_FALSE(parseRenewalInfo(
      R"({"suggestedWindow":{"start":"2025-01-02T04:00:00Z","end":"2025-01-03T04:00:00Z"},)"
      R"("explanationURL":7})"));
}

TEST(AcmeMessagesTest, Rfc3339DateTimes) {
  EXPECT_EQ(parseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseRfc3339("2000-02-29T23:59:59z"), 951868799);
  EXPECT_EQ(parseRfc3339("2025-01-02T04:00:00-02:30"), 1735790400 + 9000);
  EXPECT_EQ(parseRfc3339("2025-01-02t04:00:00.123456789Z"), 1735790400);
  for (const char* bad :
       {"", "2025-01-02T04:00:00", "2025-13-02T04:00:00Z", "2025-02-29T04:00:00Z",
        "2025-01-02T24:00:00Z", "2025-01-02T04:00:00.Z", "2025-01-02T04:00:00+0100",
        "2025-01-02T04:00:00Zjunk", "2025-01-02 04:00:00Z", "+025-01-02T04:00:00Z"}) {
    EXPECT_FALSE(parseRfc3339(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace edgeplane::acme
