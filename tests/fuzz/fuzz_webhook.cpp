// libFuzzer target for the agent's webhook answer (handleWebhook): the authentication headers
// of edgeplane's hook and the forges, and the forges' push payloads (Poco::JSON) behind them.
//
// Input layout: byte 0 = flags (bits 0-2: the header that carries the value, 0 edgeplane,
// 1 GitHub, 2 Gitea, 3 Forgejo, 4 GitLab, 5-7 none; bit 3: replace the value by the right
// signature or token for the body, so that the payload parser is reached; bits 4-5: the event
// header, 0 push, 1 ping, 2 "Push Hook", 3 the input's), then the header value up to the first
// '\n', then the body. Properties: no crash, no exception; a status among those documented; a
// run exactly for a 202, never without the right secret.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "reconciler/cli/webhook.h"

namespace {

using edgeplane::cli::handleWebhook;
using edgeplane::cli::WebhookConfig;
using edgeplane::cli::WebhookReply;
using edgeplane::cli::WebhookRequest;

constexpr const char* kSecret = "fuzz secret";

[[noreturn]] void fail() {
  __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  const uint8_t flags = data[0];
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t newline = rest.find('\n');
  std::string value = rest.substr(0, newline);
  const std::string body = newline == std::string::npos ? "" : rest.substr(newline + 1);
  const int which = flags & 7;
  const bool sign = (flags & 8) != 0;
  if (sign) {
    const std::string sig = edgeplane::cli::webhookSignature(kSecret, body);
    value = which == 4 ? std::string(kSecret) : (which == 2 || which == 3) ? sig.substr(7) : sig;
  }
  static const char* const kHeaders[] = {"x-edgeplane-signature", "x-hub-signature-256",
                                         "x-gitea-signature", "x-forgejo-signature",
                                         "x-gitlab-token"};
  static const char* const kEvents[] = {"x-github-event", "x-github-event", "x-gitea-event",
                                        "x-forgejo-event", "x-gitlab-event"};
  WebhookRequest r{"POST", "/trigger", body, {}};
  if (which < 5) {
    r.headers[kHeaders[which]] = value;
    const int event = (flags >> 4) & 3;
    r.headers[kEvents[which]] = event == 0   ? "push"
                                : event == 1 ? "ping"
                                : event == 2 ? "Push Hook"
                                             : value;
  }
  int triggered = 0;
  const WebhookReply reply =
      handleWebhook(r, WebhookConfig{kSecret, "main"}, [&triggered] { ++triggered; });
  switch (reply.status) {
    case 200:
    case 202:
    case 400:
    case 401:
      break;
    default:
      fail();
  }
  if ((reply.status == 202) != (triggered == 1) || triggered > 1) {
    fail();
  }
  if (triggered != 0 && !sign) {
    // Without the right signature a run needs a forged HMAC or token: never by chance.
    const std::string want = edgeplane::cli::webhookSignature(kSecret, body);
    if (value != want && value != want.substr(7) && value != kSecret) {
      fail();
    }
  }
  return 0;
}
