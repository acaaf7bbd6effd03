// The agent's optional HTTP trigger: `POST /trigger` on a loopback address, authenticated with
// a shared secret, from edgeplane's post-receive hook or a forge's push webhook (GitHub,
// Gitea/Forgejo, GitLab); `GET /healthz` for load balancers and monitoring.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::cli {

inline constexpr std::string_view kSignatureHeader = "X-Edgeplane-Signature";
// A forge's push payload lists the commits and files pushed: well over a few KiB.
inline constexpr size_t kMaxWebhookBody = 1024 * 1024;

// "sha256=" + lowercase hex HMAC-SHA256(secret, body): what a sender puts in the header.
std::string webhookSignature(std::string_view secret, std::string_view body);

// True when `header` is exactly "sha256=" + 64 lowercase hex digits and the digest equals
// HMAC-SHA256(secret, body), compared in constant time. Missing, malformed or wrong: false.
bool verifyWebhookSignature(std::string_view secret, std::string_view body,
                            const std::optional<std::string>& header);

// Whether a push of `pushed` ("refs/heads/main") concerns the source ref the agent follows:
// the same full ref, or for a bare name ("main") that branch or tag. A commit id follows no
// push; no ref at all (a plain directory) takes every push.
bool pushConcernsRef(std::string_view pushed, const std::optional<std::string>& tracked);

// One request as the server read it.
struct WebhookRequest {
  std::string method;
  std::string path;  // without the query
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case; the first of repeats
};

// What the webhook checks requests against; replaced on SIGHUP.
struct WebhookConfig {
  std::string secret;
  std::optional<std::string> trackedRef;  // the agent's [source] ref; nullopt: --config DIR
};

struct WebhookReply {
  int status = 0;
  std::string body;
  std::string allow{};  // the Allow header of a 405
};

// What the server answers (pure, so it is tested without a socket). The first authentication
// header present names the sender:
//   X-Edgeplane-Signature: sha256=<hex HMAC>  edgeplane's post-receive hook: 202, a run, when
//                                             the body is a commit id (40/64 hex), else 400
//   X-Hub-Signature-256: sha256=<hex HMAC>    GitHub (X-GitHub-Event: push; ping -> 200 pong)
//   X-Gitea-Signature / X-Forgejo-Signature: <hex HMAC>   Gitea, Forgejo (X-Gitea-Event)
//   X-Gitlab-Token: <the secret>              GitLab (X-Gitlab-Event: Push Hook), constant time
// A forge's push triggers a run (202) only when its payload's `ref` concerns the tracked ref
// (else 200, and why); other events 200; a bad or missing signature 401; a push payload
// without a `ref` 400. `onTrigger` runs only for an authenticated request that triggers.
// GET /healthz answers 200 "ok" to anyone (it says no more than that the agent listens).
WebhookReply handleWebhook(const WebhookRequest& request, const WebhookConfig& config,
                           const std::function<void()>& onTrigger);

// A small HTTP server on `listen`: one thread polls every connection, so that none waits for
// another; a connection is taken once its client has sent something, or after 1 s
// (TCP_DEFER_ACCEPT). Each request must arrive whole within 5 s of its accept (head at most 8 KiB,
// a body only with a Content-Length), else it is answered 408 and dropped, so slow clients cannot
// hold the trigger up. A Content-Length that is not one decimal number (400) or is over
// kMaxWebhookBody (413) is refused before any of the body is read, and no more than the head
// and the announced length is ever held. At most 128 connections are held (a new one closes
// one already answered, else one that has sent nothing, else the oldest), and 16 MiB of
// request bytes as received (a request over 64 KiB that takes them past it is answered 503).
// The secret stays in memory, never logged.
class WebhookServer {
 public:
  // In the net module (reconciler/net/module.h): the agent starts it through that.
  static Result<std::unique_ptr<WebhookServer>> start(const Endpoint& listen, WebhookConfig config,
                                                      std::function<void()> onTrigger);
  // Stops: no connection can call `onTrigger` once this returns.
  virtual ~WebhookServer() = default;
  // A new secret or tracked ref (the agent file re-read on SIGHUP): requests whose reading
  // starts after this returns are checked against it.
  virtual void setConfig(WebhookConfig config) = 0;
  // The bound port (listen.port, or the kernel's pick for port 0).
  virtual uint16_t port() const = 0;
  // The most bytes of one request (head and body) the server has held so far; for tests of
  // the limits.
  virtual size_t largestRequest() const = 0;
};

}  // namespace edgeplane::cli
