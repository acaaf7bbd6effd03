// The agent's optional HTTP trigger: `POST /trigger` on a loopback address, authenticated by an
// HMAC-SHA256 of the body with a shared secret (GitHub/Gitea style `sha256=<hex>` header).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::cli {

inline constexpr std::string_view kSignatureHeader = "X-Edgeplane-Signature";
inline constexpr size_t kMaxWebhookBody = 4096;

// "sha256=" + lowercase hex HMAC-SHA256(secret, body): what a sender puts in the header.
std::string webhookSignature(std::string_view secret, std::string_view body);

// True when `header` is exactly "sha256=" + 64 lowercase hex digits and the digest equals
// HMAC-SHA256(secret, body), compared in constant time. Missing, malformed or wrong: false.
bool verifyWebhookSignature(std::string_view secret, std::string_view body,
                            const std::optional<std::string>& header);

// What the server answers a request (status and body); pure, so it can be tested without a
// socket. `onTrigger` runs only for an authenticated POST /trigger.
struct WebhookReply {
  int status = 0;
  std::string body;
};
WebhookReply handleWebhook(std::string_view method, std::string_view path, std::string_view body,
                           const std::optional<std::string>& signature, std::string_view secret,
                           const std::function<void()>& onTrigger);

// A small HTTP server on `listen` (POCO's TCP server, requests read here): each request must
// arrive whole within 5 s (head at most 8 KiB, a body only with a Content-Length), else it is
// dropped, so slow clients cannot hold the trigger up. A Content-Length that is not one decimal
// number (400) or is over kMaxWebhookBody (413) is refused before any of the body is read, and
// no more than the head and the announced length is ever held. The secret stays in memory, never
// logged.
class WebhookServer {
 public:
  static Result<std::unique_ptr<WebhookServer>> start(const Endpoint& listen, std::string secret,
                                                      std::function<void()> onTrigger);
  ~WebhookServer();
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;
  uint16_t port() const;  // the bound port (listen.port, or the kernel's pick for port 0)
  // The most bytes of one request (head and body) the server has held so far; for tests of
  // the limits.
  size_t largestRequest() const;

  struct Impl;

 private:
  explicit WebhookServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgeplane::cli
