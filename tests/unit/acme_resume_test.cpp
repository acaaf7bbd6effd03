// The ACME client resuming an interrupted order against a scripted fake CA on loopback (plain
// HTTP, no JWS checks: the CA's side is scripted, the client's requests are what is tested):
// an order cut short after its finalize is continued with the recorded key (processing/valid
// -> download, ready -> finalize) and never ordered again; an order that is gone or invalid is
// dropped and a new one starts.
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "reconciler/acme/client.h"
#include "reconciler/acme/jws.h"
#include "schema/encoding.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;
using Poco::Net::HTTPResponse;

std::string readText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The CA's side, scripted by the test: one order at a time, its authorizations already valid.
class FakeCa {
 public:
  FakeCa() : socket_(Poco::Net::SocketAddress("127.0.0.1", 0)) {
    auto* params = new Poco::Net::HTTPServerParams;
    params->setKeepAlive(false);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), socket_, params);
    server_->start();
    base = "http://127.0.0.1:" + std::to_string(socket_.address().port());
  }
  ~FakeCa() { server_->stopAll(true); }

  std::string base;
  std::mutex mu;
  std::string orderStatus = "ready";  // what the order's POST-as-GET says
  bool orderGone = false;             // the order's URL answers 404
  bool finalizeFails = false;         // finalize answers 500 (serverInternal)
  bool holdProcessing = false;        // after finalize: processing until the test says valid
  bool eabRequired = false;           // the directory's meta.externalAccountRequired
  // RFC 9773: the directory's renewalInfo, and what GET <renewalInfo>/<CertID> answers.
  bool offerAri = false;
  int ariStatus = 200;
  std::string ariBody;
  std::string ariRetryAfter;    // the Retry-After header; "": none
  std::string lastAriPath;      // the last renewalInfo request's path
  bool refuseReplaces = false;  // newOrder with `replaces` answers 409 alreadyReplaced
  // The directory's answer sends its head, then one body byte every 50 ms for up to 10 s.
  std::atomic<bool> dripDirectory{false};
  std::string authzName = "a.example.com";  // the authorization's identifier
  std::string authzStatus = "valid";
  int certStatus = 200;  // the certificate download's status (a 3xx: Location elsewhere)
  std::vector<std::string> newOrderPayloads;
  int newAccounts = 0;
  std::string lastAccountJws;
  int newOrders = 0;
  int finalizes = 0;
  std::string lastCsrDer;

 private:
  struct Reply {
    int status = 200;
    std::string body;
    std::string contentType = "application/json";
    std::string location;
    std::string retryAfter = {};  // the Retry-After header; "": none
  };

  Reply order() const {
    std::string j = R"({"status":")" + orderStatus + R"(","identifiers":[{"type":"dns","value":)" +
                    R"("a.example.com"}],"authorizations":[")" + base +
                    R"(/authz/1"],"finalize":")" + base + R"(/order/1/finalize")";
    if (orderStatus == "valid") {
      j += R"(,"certificate":")" + base + R"(/cert/1")";
    }
    return {200, j + "}", "application/json", ""};
  }
  static Reply problem(int status, const std::string& type, const std::string& detail) {
    return {status,
            R"({"type":"urn:ietf:params:acme:error:)" + type + R"(","detail":")" + detail + "\"}",
            "application/problem+json", ""};
  }

  Reply handle(const std::string& method, const std::string& path, const std::string& body) {
    std::lock_guard lock(mu);
    if (path == "/dir") {
      return {200,
              R"({"newNonce":")" + base + R"(/nonce","newAccount":")" + base +
                  R"(/acct","newOrder":")" + base + R"(/new-order")" +
                  (offerAri ? R"(,"renewalInfo":")" + base + R"(/renewal-info")" : "") +
                  (eabRequired ? R"(,"meta":{"externalAccountRequired":true}})" : "}"),
              "application/json", ""};
    }
    if (path == "/nonce") {
      return {200, "", "", ""};
    }
    if (method == "GET" && path.rfind("/renewal-info/", 0) == 0) {
      lastAriPath = path;
      return {ariStatus, ariBody,
              ariStatus == 200 ? "application/json" : "application/problem+json", "",
              ariRetryAfter};
    }
    if (method != "POST") {
      return problem(405, "malformed", "POST only");
    }
    if (path == "/acct") {
      ++newAccounts;
      lastAccountJws = body;
      return {201, R"({"status":"valid"})", "application/json", base + "/acct/1"};
    }
    if (path == "/new-order") {
      const std::string payload = payloadOf(body);
      newOrderPayloads.push_back(payload);
      if (refuseReplaces && payload.find("\"replaces\"") != std::string::npos) {
        return problem(409, "alreadyReplaced", "that certificate was replaced already");
      }
      ++newOrders;
      orderStatus = "ready";
      orderGone = false;
      Reply r = order();
      r.status = 201;
      r.location = base + "/order/1";
      return r;
    }
    if (path == "/authz/1") {
      return {200,
              R"({"status":")" + authzStatus + R"(","identifier":{"type":"dns","value":")" +
                  authzName + R"("},"challenges":[{"type":"http-01","url":")" + base +
                  R"(/chall/1","token":"tok1","status":"pending"}]})",
              "application/json", ""};
    }
    if (path == "/order/1") {
      return orderGone ? problem(404, "malformed", "no such order") : order();
    }
    if (path == "/order/1/finalize") {
      ++finalizes;
      if (finalizeFails) {
        return problem(500, "serverInternal", "try again");
      }
      recordCsr(body);
      orderStatus = holdProcessing ? "processing" : "valid";
      return order();
    }
    if (path == "/cert/1") {
      return {certStatus, "-----BEGIN CERTIFICATE-----\nRkFLRQ==\n-----END CERTIFICATE-----\n",
              "application/pem-certificate-chain",
              certStatus / 100 == 3 ? base + "/elsewhere" : ""};
    }
    return problem(404, "malformed", "unknown " + path);
  }

  static std::string payloadOf(const std::string& jws) {
    auto outer = Poco::JSON::Parser().parse(jws).extract<Poco::JSON::Object::Ptr>();
    return decodeBase64Url(outer->getValue<std::string>("payload")).value_or("");
  }

  void recordCsr(const std::string& jws) {
    auto outer = Poco::JSON::Parser().parse(jws).extract<Poco::JSON::Object::Ptr>();
    auto payload = decodeBase64Url(outer->getValue<std::string>("payload"));
    if (!payload) {
      return;
    }
    auto inner = Poco::JSON::Parser().parse(*payload).extract<Poco::JSON::Object::Ptr>();
    lastCsrDer = decodeBase64Url(inner->getValue<std::string>("csr")).value_or("");
  }

  class Handler final : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handler(FakeCa& ca) : ca_(ca) {}
    void handleRequest(Poco::Net::HTTPServerRequest& req,
                       Poco::Net::HTTPServerResponse& res) override {
      std::string body;
      Poco::StreamCopier::copyToString(req.stream(), body);
      if (ca_.dripDirectory && req.getURI() == "/dir") {
        res.setContentType("application/json");
        res.setContentLength(200);
        std::ostream& out = res.send();
        for (int i = 0; i < 200 && out.good(); ++i) {
          out << ' ' << std::flush;
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return;
      }
      const Reply r = ca_.handle(req.getMethod(), req.getURI(), body);
      res.setStatus(static_cast<HTTPResponse::HTTPStatus>(r.status));
      res.set("Replay-Nonce", "nonce-" + std::to_string(++nonces_));
      if (!r.location.empty()) {
        res.set("Location", r.location);
      }
      if (!r.retryAfter.empty()) {
        res.set("Retry-After", r.retryAfter);
      }
      if (!r.contentType.empty()) {
        res.setContentType(r.contentType);
      }
      res.setContentLength(static_cast<std::streamsize>(r.body.size()));
      res.send() << r.body;
    }

   private:
    FakeCa& ca_;
    static inline std::atomic<int> nonces_{0};
  };
  class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
   public:
    explicit Factory(FakeCa& ca) : ca_(ca) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(
        const Poco::Net::HTTPServerRequest&) override {
      return new Handler(ca_);
    }

   private:
    FakeCa& ca_;
  };

  Poco::Net::ServerSocket socket_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

class NoChallenges final : public acme::ChallengeSink {
 public:
  Result<void> publish(AcmeChallengeType, const std::string&, const std::string&,
                       const std::string&) override {
    ++published;
    return {};
  }
  void withdraw(const std::vector<std::string>&) override {}
  int published = 0;
};

struct ResumeCase {
  FakeCa ca;
  testing::TempDir dir;
  acme::ClientSettings settings{ca.base + "/dir", std::nullopt, "", dir.path().string(), ""};
  std::unique_ptr<acme::CertificateIssuer> client = acme::makeAcmeClient(settings);
  NoChallenges sink;
  const std::vector<std::string> domains{"a.example.com"};
  const fs::path pending{acme::pendingOrderDir(settings, domains)};

  Result<acme::Issued> obtain(std::chrono::milliseconds budget = std::chrono::seconds(10),
                              const std::string& replaces = "") {
    return client->obtain(domains, AcmeChallengeType::Http01, sink,
                          std::chrono::steady_clock::now() + budget, replaces);
  }
  Result<std::optional<acme::RenewalWindow>> renewalInfo(const std::string& certId) {
    return client->renewalInfo(certId, std::chrono::steady_clock::now() + std::chrono::seconds(10));
  }
  void setCa(const std::function<void(FakeCa&)>& f) {
    std::lock_guard lock(ca.mu);
    f(ca);
  }
};

// Cut short while the CA processes the finalize (the run's budget spent): the order's URL and
// the key are on disk (0600); the next run downloads that order's certificate with that key and
// places no new order.
TEST(AcmeResume, ProcessingOrderIsDownloadedWithTheRecordedKey) {
  ResumeCase t;
  t.setCa([](FakeCa& ca) { ca.holdProcessing = true; });
  auto first = t.obtain(std::chrono::milliseconds(1500));
  ASSERT_FALSE(first.ok());
  EXPECT_TRUE(first.error().retryable) << first.error().message;
  EXPECT_EQ(t.ca.newOrders, 1);
  EXPECT_EQ(t.ca.finalizes, 1);
  EXPECT_EQ(readText(t.pending / "order"), t.ca.base + "/order/1");
  struct stat st {};
  ASSERT_EQ(::stat((t.pending / "key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  const std::string key = readText(t.pending / "key.pem");
  ASSERT_NE(key.find("PRIVATE KEY"), std::string::npos);

  t.setCa([](FakeCa& ca) { ca.orderStatus = "valid"; });
  auto second = t.obtain();
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(t.ca.newOrders, 1);
  EXPECT_EQ(t.ca.finalizes, 1);
  EXPECT_EQ(second->keyPem, key);
  EXPECT_NE(second->chainPem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_FALSE(fs::exists(t.pending));
}

// The finalize failed (a 5xx: retryable), the order is still ready: the next run finalizes it
// with a CSR of the recorded key.
TEST(AcmeResume, ReadyOrderIsFinalizedWithTheRecordedKey) {
  ResumeCase t;
  t.setCa([](FakeCa& ca) { ca.finalizeFails = true; });
  auto first = t.obtain();
  ASSERT_FALSE(first.ok());
  EXPECT_TRUE(first.error().retryable) << first.error().message;
  const std::string key = readText(t.pending / "key.pem");
  ASSERT_FALSE(key.empty());

  t.setCa([](FakeCa& ca) { ca.finalizeFails = false; });
  auto second = t.obtain();
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(t.ca.newOrders, 1);
  EXPECT_EQ(t.ca.finalizes, 2);
  EXPECT_EQ(second->keyPem, key);
  const auto* der = reinterpret_cast<const unsigned char*>(t.ca.lastCsrDer.data());
  X509_REQ* csr = d2i_X509_REQ(nullptr, &der, static_cast<long>(t.ca.lastCsrDer.size()));
  ASSERT_NE(csr, nullptr);
  auto recorded = acme::readP256Pem(key);
  ASSERT_TRUE(recorded.ok());
  EXPECT_EQ(EVP_PKEY_eq(X509_REQ_get0_pubkey(csr), recorded->get()), 1);
  X509_REQ_free(csr);
  EXPECT_FALSE(fs::exists(t.pending));
}

// An order the CA no longer has (404), or one that went invalid, is dropped: a new order
// starts in the same run and is issued with a new key.
TEST(AcmeResume, GoneOrInvalidOrderStartsOver) {
  for (const bool gone : {true, false}) {
    ResumeCase t;
    t.setCa([](FakeCa& ca) { ca.holdProcessing = true; });
    ASSERT_FALSE(t.obtain(std::chrono::milliseconds(1500)).ok());
    const std::string key = readText(t.pending / "key.pem");
    t.setCa([gone](FakeCa& ca) {
      ca.holdProcessing = false;
      ca.orderGone = gone;
      ca.orderStatus = gone ? "processing" : "invalid";
    });
    auto again = t.obtain();
    ASSERT_TRUE(again.ok()) << (gone ? "gone: " : "invalid: ") << again.error().message;
    EXPECT_EQ(t.ca.newOrders, 2) << gone;
    EXPECT_EQ(t.ca.finalizes, 2) << gone;
    EXPECT_NE(again->keyPem, key) << gone;
    EXPECT_FALSE(fs::exists(t.pending)) << gone;
  }
}

// The run's budget bounds each request whole, not each read: a CA that keeps sending a byte
// now and then (never idle long enough for a read timeout) is cut at the deadline.
TEST(AcmeResume, ASlowlyDrippingAnswerEndsAtTheDeadline) {
  ResumeCase t;
  t.ca.dripDirectory = true;
  const auto start = std::chrono::steady_clock::now();
  auto r = t.obtain(std::chrono::milliseconds(1000));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().retryable) << r.error().message;
  EXPECT_LT(took, std::chrono::milliseconds(4000)) << r.error().message;
}

// An order's authorizations must be for the names ordered: a CA that sends one for another
// name does not get a challenge answer published for it, and the order fails (found by an
// attacker's read).
TEST(AcmeResume, AnAuthorizationForANameNotOrderedIsRefused) {
  for (const std::string status : {"pending", "valid"}) {
    ResumeCase t;
    t.setCa([&](FakeCa& ca) {
      ca.authzName = "evil.example";
      ca.authzStatus = status;
    });
    auto r = t.obtain();
    ASSERT_FALSE(r.ok()) << status;
    EXPECT_NE(r.error().message.find("evil.example"), std::string::npos) << r.error().message;
    EXPECT_EQ(t.sink.published, 0) << status;
    EXPECT_EQ(t.ca.finalizes, 0) << status;
  }
}

// ACME answers nothing with a redirect (and POCO follows none): a 3xx is a failure, not an
// answer whose body is taken for what was asked (here the certificate chain).
TEST(AcmeResume, ARedirectIsAFailureNotAnAnswer) {
  ResumeCase t;
  t.setCa([](FakeCa& ca) { ca.certStatus = 302; });
  auto r = t.obtain();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("HTTP 302"), std::string::npos) << r.error().message;
}

// The CA unreachable while an order is recorded: the error is returned as retryable and the
// record stays for the run after.
TEST(AcmeResume, UnreachableCaKeepsTheRecord) {
  ResumeCase t;
  t.setCa([](FakeCa& ca) { ca.holdProcessing = true; });
  ASSERT_FALSE(t.obtain(std::chrono::milliseconds(1500)).ok());
  ASSERT_TRUE(fs::exists(t.pending / "order"));
  // A directory that answers, an order URL that does not: the recorded URL is the CA's; point
  // the record at a closed port to stand for the CA going away between runs.
  {
    Poco::Net::ServerSocket closed(Poco::Net::SocketAddress("127.0.0.1", 0));
    const std::string dead =
        "http://127.0.0.1:" + std::to_string(closed.address().port()) + "/order/1";
    closed.close();
    std::ofstream(t.pending / "order", std::ios::trunc) << dead;
  }
  auto r = t.obtain();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().retryable) << r.error().message;
  EXPECT_TRUE(fs::exists(t.pending / "order"));
  EXPECT_TRUE(fs::exists(t.pending / "key.pem"));
  EXPECT_EQ(t.ca.newOrders, 1);
}

}  // namespace
}  // namespace edgeplane

namespace edgeplane {
namespace {

Poco::JSON::Object::Ptr jsonObject(const std::string& text) {
  return Poco::JSON::Parser().parse(text).extract<Poco::JSON::Object::Ptr>();
}

// A CA that requires an external account binding: without [fleet] acme_eab_file the run stops
// with an error saying so, before any account key is made or newAccount sent.
TEST(AcmeEabClient, RequiredBindingWithoutAFileIsRefused) {
  ResumeCase t;
  t.setCa([](FakeCa& ca) { ca.eabRequired = true; });
  auto r = t.obtain();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("requires an external account binding"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("acme_eab_file"), std::string::npos);
  EXPECT_FALSE(fs::exists(acme::accountKeyPath(t.settings)));
  std::lock_guard lock(t.ca.mu);
  EXPECT_EQ(t.ca.newAccounts, 0);
}

// With the file, newAccount's payload carries the binding: HS256 under the file's kid, for the
// newAccount URL, over the very JWK the outer JWS carries.
TEST(AcmeEabClient, NewAccountCarriesTheBinding) {
  FakeCa ca;
  {
    std::lock_guard lock(ca.mu);
    ca.eabRequired = true;
  }
  testing::TempDir dir;
  const fs::path eabFile = dir.path() / "eab.toml";
  std::ofstream(eabFile) << "kid = \"kid-1\"\nhmac_key = \"c2VjcmV0LWtleQ\"\n";
  ::chmod(eabFile.c_str(), 0600);
  acme::ClientSettings settings{ca.base + "/dir", std::nullopt, "", dir.path().string(),
                                eabFile.string()};
  auto client = acme::makeAcmeClient(settings);
  NoChallenges sink;
  auto r = client->obtain({"a.example.com"}, AcmeChallengeType::Http01, sink,
                          std::chrono::steady_clock::now() + std::chrono::seconds(10), "");
  ASSERT_TRUE(r.ok()) << r.error().message;
  std::lock_guard lock(ca.mu);
  ASSERT_EQ(ca.newAccounts, 1);
  auto outer = jsonObject(ca.lastAccountJws);
  auto outerProt = jsonObject(decodeBase64Url(outer->getValue<std::string>("protected")).value());
  auto payload = jsonObject(decodeBase64Url(outer->getValue<std::string>("payload")).value());
  auto binding = payload->getObject("externalAccountBinding");
  ASSERT_TRUE(binding);
  const std::string bindingProt =
      decodeBase64Url(binding->getValue<std::string>("protected")).value();
  EXPECT_EQ(bindingProt, R"({"alg":"HS256","kid":"kid-1","url":")" + ca.base + R"(/acct"})");
  // The inner payload is the outer JWK, member for member.
  auto innerJwk = jsonObject(decodeBase64Url(binding->getValue<std::string>("payload")).value());
  auto outerJwk = outerProt->getObject("jwk");
  ASSERT_TRUE(outerJwk);
  for (const char* k : {"crv", "kty", "x", "y"}) {
    EXPECT_EQ(innerJwk->getValue<std::string>(k), outerJwk->getValue<std::string>(k)) << k;
  }
  EXPECT_EQ(decodeBase64Url(binding->getValue<std::string>("signature")).value_or("").size(), 32U);
}

}  // namespace
}  // namespace edgeplane

namespace edgeplane {
namespace {

constexpr const char* kRfcCertId = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";

// RFC 9773 section 4.2: a plain GET of <renewalInfo>/<CertID>, the window decoded, the
// Retry-After handed back as the CA sent it (not the polling clamp of a minute).
TEST(AcmeAriClient, RenewalInfoIsAskedByCertIdWithItsRetryAfter) {
  ResumeCase t;
  t.setCa([](FakeCa& ca) {
    ca.offerAri = true;
    ca.ariBody = R"({"suggestedWindow":{"start":"2025-01-02T04:00:00Z",)"
                 R"("end":"2025-01-03T04:00:00Z"},"explanationURL":"https://ca/why"})";
    ca.ariRetryAfter = "21600";
  });
  auto w = t.renewalInfo(kRfcCertId);
  ASSERT_TRUE(w.ok()) << w.error().message;
  ASSERT_TRUE(w->has_value());
  EXPECT_EQ((*w)->info.start, 1735790400);
  EXPECT_EQ((*w)->info.end, 1735876800);
  EXPECT_EQ((*w)->info.explanationUrl, "https://ca/why");
  EXPECT_EQ((*w)->retryAfter, 21600);
  std::lock_guard lock(t.ca.mu);
  EXPECT_EQ(t.ca.lastAriPath, std::string("/renewal-info/") + kRfcCertId);
  EXPECT_EQ(t.ca.newAccounts, 0);  // no account needed
}

// A CA without renewalInfo: nothing (not an error), and it is not asked. A 500 is a retryable
// error with the CA's problem; a window ending before it starts is a terminal one.
TEST(AcmeAriClient, NoAriServerErrorAndMalformedWindow) {
  ResumeCase t;
  auto none = t.renewalInfo(kRfcCertId);
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(t.ca.lastAriPath, "");

  t.setCa([](FakeCa& ca) {
    ca.offerAri = true;
    ca.ariStatus = 500;
    ca.ariBody = R"({"type":"urn:ietf:params:acme:error:serverInternal","detail":"down"})";
  });
  auto down = t.renewalInfo(kRfcCertId);
  ASSERT_FALSE(down.ok());
  EXPECT_TRUE(down.error().retryable);
  EXPECT_NE(down.error().message.find("serverInternal: down"), std::string::npos)
      << down.error().message;

  t.setCa([](FakeCa& ca) {
    ca.ariStatus = 200;
    ca.ariBody = R"({"suggestedWindow":{"start":"2025-01-03T04:00:00Z",)"
                 R"("end":"2025-01-02T04:00:00Z"}})";
  });
  auto backwards = t.renewalInfo(kRfcCertId);
  ASSERT_FALSE(backwards.ok());
  EXPECT_FALSE(backwards.error().retryable);
  EXPECT_NE(backwards.error().message.find("ends before it starts"), std::string::npos)
      << backwards.error().message;
}

// Section 5: a renewal's newOrder carries `replaces` when the CA offers ARI, not when it does
// not; a CA refusing it (alreadyReplaced) gets the order again without it.
TEST(AcmeAriClient, NewOrderCarriesReplacesWhenTheCaOffersAri) {
  {
    ResumeCase t;
    ASSERT_TRUE(t.obtain(std::chrono::seconds(10), kRfcCertId).ok());
    std::lock_guard lock(t.ca.mu);
    ASSERT_EQ(t.ca.newOrderPayloads.size(), 1U);
    EXPECT_EQ(t.ca.newOrderPayloads[0].find("replaces"), std::string::npos);
  }
  {
    ResumeCase t;
    t.setCa([](FakeCa& ca) { ca.offerAri = true; });
    auto r = t.obtain(std::chrono::seconds(10), kRfcCertId);
    ASSERT_TRUE(r.ok()) << r.error().message;
    std::lock_guard lock(t.ca.mu);
    ASSERT_EQ(t.ca.newOrderPayloads.size(), 1U);
    auto payload =
        Poco::JSON::Parser().parse(t.ca.newOrderPayloads[0]).extract<Poco::JSON::Object::Ptr>();
    EXPECT_EQ(payload->getValue<std::string>("replaces"), kRfcCertId);
  }
  {
    ResumeCase t;
    t.setCa([](FakeCa& ca) {
      ca.offerAri = true;
      ca.refuseReplaces = true;
    });
    auto r = t.obtain(std::chrono::seconds(10), kRfcCertId);
    ASSERT_TRUE(r.ok()) << r.error().message;
    std::lock_guard lock(t.ca.mu);
    ASSERT_EQ(t.ca.newOrderPayloads.size(), 2U);
    EXPECT_NE(t.ca.newOrderPayloads[0].find("replaces"), std::string::npos);
    EXPECT_EQ(t.ca.newOrderPayloads[1].find("replaces"), std::string::npos);
    EXPECT_EQ(t.ca.newOrders, 1);
  }
}

}  // namespace
}  // namespace edgeplane
