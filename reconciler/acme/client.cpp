// The ACME client's session with its CA (see acme_client.h): the HTTPS transport, the
// directory, nonces, JWS requests retried on badNonce, the account, polling and renewal info.
#include <sys/stat.h>

#include <openssl/sha.h>

#include <algorithm>
#include <filesystem>
#include <thread>
#include <utility>

#include "reconciler/acme/acme_client.h"
#include "reconciler/net/module.h"
#include "reconciler/system/file_write.h"
#include "schema/encoding.h"
#include "schema/json_text.h"

namespace edgeplane::acme {
namespace fs = std::filesystem;

namespace detail {
namespace {

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

}  // namespace

// `dir` and its parents created; `dir` itself owner-only (it holds private keys).
Result<void> makePrivateDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec && ::chmod(dir.c_str(), 0700) != 0) {
    ec = std::error_code(errno, std::system_category());
  }
  if (ec) {
    return terminal("create " + dir.string() + ": " + ec.message());
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
  if (auto checked = checkCaValue("Location", answer->location); !checked) {
    return terminal(method + " " + url + ": " + checked.error().message);
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
    // ACME redirects nothing: a 3xx is a failure, not an answer to read as what was asked.
    if (r->status >= 300) {
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

}  // namespace detail

std::string accountKeyPath(const ClientSettings& s) {
  const std::string id = s.directory + "\n" + s.email.value_or("");
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(id.data()), id.size(), md);
  return (fs::path(s.stateDir) / "acme" / "accounts" / toHex(md, 8) / "key.pem").string();
}

}  // namespace edgeplane::acme
