// The webhook's pure part (see webhook.h): signatures, and what a request is answered, for
// edgeplane's own hook and the forges' push webhooks. No I/O.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <array>

#include "reconciler/cli/webhook.h"
#include "schema/encoding.h"

namespace edgeplane::cli {

namespace {

constexpr std::string_view kPrefix = "sha256=";

std::array<unsigned char, 32> hmacSha256(std::string_view secret, std::string_view body) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), out.data(), &len);
  return out;
}

// Lower-case hex only: that is the wire form of every sender here.
int lowerHexValue(char c) {
  return (c >= 'A' && c <= 'F') ? -1 : hexValue(c);
}

// A header's value, or nullopt.
std::optional<std::string> header(const WebhookRequest& r, const std::string& lowerName) {
  auto it = r.headers.find(lowerName);
  return it == r.headers.end() ? std::nullopt : std::optional(it->second);
}

// GitLab sends the secret itself. Compared as SHA-256 digests, in constant time, so neither
// the content nor the length of the secret shows in the timing.
bool tokenMatches(std::string_view secret, std::string_view token) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> a{};
  std::array<unsigned char, SHA256_DIGEST_LENGTH> b{};
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), a.data());
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), b.data());
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// The sender, told by the first authentication header present (Gitea sends GitHub's too, and
// is then taken as GitHub: the two agree on the payload's `ref`).
struct Sender {
  std::string forge;  // "edgeplane", "GitHub", "Gitea", "GitLab"
  bool authentic = false;
  std::optional<std::string> event;  // the forge's event header; none for edgeplane's hook
};

std::optional<Sender> identify(const WebhookRequest& r, std::string_view secret) {
  if (auto sig = header(r, "x-edgeplane-signature")) {
    return Sender{"edgeplane", verifyWebhookSignature(secret, r.body, sig), std::nullopt};
  }
  if (auto sig = header(r, "x-hub-signature-256")) {
    return Sender{"GitHub", verifyWebhookSignature(secret, r.body, sig),
                  header(r, "x-github-event")};
  }
  auto gitea = header(r, "x-gitea-signature");
  if (!gitea) {
    gitea = header(r, "x-forgejo-signature");
  }
  if (gitea) {
    auto event = header(r, "x-gitea-event");
    if (!event) {
      event = header(r, "x-forgejo-event");
    }
    return Sender{"Gitea", verifyWebhookSignature(secret, r.body, std::string(kPrefix) + *gitea),
                  event};
  }
  if (auto token = header(r, "x-gitlab-token")) {
    return Sender{"GitLab", tokenMatches(secret, *token), header(r, "x-gitlab-event")};
  }
  return std::nullopt;
}

// The `ref` of a push payload (GitHub, Gitea/Forgejo and GitLab all carry it at the top).
std::optional<std::string> pushedRef(std::string_view body) {
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var parsed = parser.parse(std::string(body));
    auto object = parsed.extract<Poco::JSON::Object::Ptr>();
    if (!object || !object->has("ref") || !object->get("ref").isString()) {
      return std::nullopt;
    }
    return object->getValue<std::string>("ref");
  } catch (const Poco::Exception&) {
    return std::nullopt;
  } catch (const std::exception&) {  // Poco's extract throws BadCastException, but be sure
    return std::nullopt;
  }
}

// What edgeplane's hook sends: the pushed commit's id, SHA-1 or SHA-256 (40 or 64 lowercase hex
// digits), nothing else.
bool isHookBody(std::string_view body) {
  return (body.size() == 40 || body.size() == 64) &&
         std::all_of(body.begin(), body.end(), [](char c) { return lowerHexValue(c) >= 0; });
}

// A forge's push notification: a run when it pushed the tracked ref, else a 200 saying why not.
WebhookReply forgePush(const WebhookRequest& r, const Sender& sender,
                       const std::optional<std::string>& trackedRef,
                       const std::function<void()>& onTrigger) {
  const std::string event = sender.event.value_or("");
  if (sender.forge == "GitHub" && event == "ping") {
    return {200, "pong\n"};
  }
  const bool push = event == "push" || event == "Push Hook" || event == "Tag Push Hook";
  if (!push) {
    return {200, "ignored: " + sender.forge + " event '" + event + "' (only pushes trigger)\n"};
  }
  auto ref = pushedRef(r.body);
  if (!ref) {
    return {400, sender.forge + " push payload without a \"ref\" string\n"};
  }
  if (!pushConcernsRef(*ref, trackedRef)) {
    return {200, "ignored: push to " + *ref + "; this host follows " +
                     trackedRef.value_or("a directory") + "\n"};
  }
  onTrigger();
  return {202, "accepted: push to " + *ref + "\n"};
}

}  // namespace

std::string webhookSignature(std::string_view secret, std::string_view body) {
  const auto mac = hmacSha256(secret, body);
  return std::string(kPrefix) + toHex(mac.data(), mac.size());
}

bool verifyWebhookSignature(std::string_view secret, std::string_view body,
                            const std::optional<std::string>& header) {
  if (!header || header->size() != kPrefix.size() + 64 || !header->starts_with(kPrefix)) {
    return false;
  }
  std::array<unsigned char, 32> given{};
  for (size_t i = 0; i < given.size(); ++i) {
    const int hi = lowerHexValue((*header)[kPrefix.size() + 2 * i]);
    const int lo = lowerHexValue((*header)[kPrefix.size() + 2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    given[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  const auto want = hmacSha256(secret, body);
  return CRYPTO_memcmp(given.data(), want.data(), want.size()) == 0;
}

bool pushConcernsRef(std::string_view pushed, const std::optional<std::string>& tracked) {
  if (!tracked) {
    return true;  // no Git source to compare with: any push may matter
  }
  if (isFullCommitId(*tracked)) {
    return false;  // pinned: a push changes nothing this host applies
  }
  if (tracked->starts_with("refs/")) {
    return pushed == *tracked;
  }
  // A bare name is a branch or a tag (the agent file's `ref = "main"`).
  return pushed == "refs/heads/" + *tracked || pushed == "refs/tags/" + *tracked;
}

WebhookReply handleWebhook(const WebhookRequest& r, const WebhookConfig& config,
                           const std::function<void()>& onTrigger) {
  if (r.path == "/healthz") {
    return r.method == "GET" || r.method == "HEAD"
               ? WebhookReply{200, "ok\n"}
               : WebhookReply{405, "method not allowed\n", "GET, HEAD"};
  }
  if (r.path != "/trigger") {
    return {404, "not found\n"};
  }
  if (r.method != "POST") {
    return {405, "method not allowed: POST /trigger\n", "POST"};
  }
  const auto sender = identify(r, config.secret);
  if (!sender || !sender->authentic) {
    return {401, std::string(sender ? "bad " + sender->forge + " signature or token"
                                    : "missing signature: X-Edgeplane-Signature, "
                                      "X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token") +
                     "\n"};
  }
  if (sender->forge == "edgeplane") {
    // The forges sign the same way (GitHub exactly so, Gitea without "sha256="): only the
    // hook's own body runs here, so a forge's delivery replayed under this header cannot run
    // past the forge checks of its event and ref.
    if (!isHookBody(r.body)) {
      return {400, "an edgeplane trigger's body is the pushed commit id (40 or 64 hex digits)\n"};
    }
    onTrigger();
    return {202, "accepted\n"};
  }
  return forgePush(r, *sender, config.trackedRef, onTrigger);
}

}  // namespace edgeplane::cli
