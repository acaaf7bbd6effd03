// The agent's HMAC-authenticated HTTP trigger (see webhook.h).
#include "reconciler/cli/webhook.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace edgeplane::cli {

namespace {

constexpr std::string_view kPrefix = "sha256=";
constexpr char kHex[] = "0123456789abcdef";

std::array<unsigned char, 32> hmacSha256(std::string_view secret, std::string_view body) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), out.data(), &len);
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;  // upper case is not the wire form either
}

}  // namespace

std::string webhookSignature(std::string_view secret, std::string_view body) {
  const auto mac = hmacSha256(secret, body);
  std::string out(kPrefix);
  for (unsigned char b : mac) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

bool verifyWebhookSignature(std::string_view secret, std::string_view body,
                            const std::optional<std::string>& header) {
  if (!header || header->size() != kPrefix.size() + 64 || !header->starts_with(kPrefix)) {
    return false;
  }
  std::array<unsigned char, 32> given{};
  for (size_t i = 0; i < given.size(); ++i) {
    const int hi = hexValue((*header)[kPrefix.size() + 2 * i]);
    const int lo = hexValue((*header)[kPrefix.size() + 2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    given[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  const auto want = hmacSha256(secret, body);
  return CRYPTO_memcmp(given.data(), want.data(), want.size()) == 0;
}

Result<std::string> readSecretFile(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return terminal("webhook secret file " + file.string() + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return terminal("webhook secret file " + file.string() + " is not a regular file");
  }
  if ((st.st_mode & 0077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return terminal("webhook secret file " + file.string() + " has mode " + mode +
                    "; it must be readable by its owner only (chmod 600)");
  }
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    return terminal("webhook secret file " + file.string() + ": cannot read it");
  }
  std::string secret = text.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
    secret.pop_back();
  }
  if (secret.empty()) {
    return terminal("webhook secret file " + file.string() + " is empty");
  }
  return secret;
}

WebhookReply handleWebhook(std::string_view method, std::string_view path, std::string_view body,
                           bool bodyTooLarge, const std::optional<std::string>& signature,
                           std::string_view secret, const std::function<void()>& onTrigger) {
  if (path != "/trigger") {
    return {404, "not found\n"};
  }
  if (method != "POST") {
    return {405, "method not allowed: POST /trigger\n"};
  }
  if (bodyTooLarge) {
    return {413, "body larger than 4096 bytes\n"};
  }
  if (!verifyWebhookSignature(secret, body, signature)) {
    return {401, "bad or missing " + std::string(kSignatureHeader) + "\n"};
  }
  onTrigger();
  return {202, "accepted\n"};
}

// ---- the POCO server ----

namespace {

class TriggerHandler : public Poco::Net::HTTPRequestHandler {
 public:
  TriggerHandler(const std::string& secret, const std::function<void()>& onTrigger)
      : secret_(secret), onTrigger_(onTrigger) {}

  // Interface
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    std::string path = request.getURI();
    if (auto q = path.find('?'); q != std::string::npos) {
      path.resize(q);
    }
    std::string body;
    bool tooLarge = request.hasContentLength() &&
                    request.getContentLength64() > static_cast<int64_t>(kMaxWebhookBody);
    if (!tooLarge && request.getMethod() == "POST" && path == "/trigger") {
      // Read at most one byte more than allowed: enough to know it is too much.
      std::istream& in = request.stream();
      std::array<char, kMaxWebhookBody + 1> buf{};
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const auto n = static_cast<size_t>(in.gcount());
      tooLarge = n > kMaxWebhookBody;
      body.assign(buf.data(), std::min(n, kMaxWebhookBody));
    }
    std::optional<std::string> signature;
    if (request.has(std::string(kSignatureHeader))) {
      signature = request.get(std::string(kSignatureHeader));
    }
    const WebhookReply reply =
        handleWebhook(request.getMethod(), path, body, tooLarge, signature, secret_, onTrigger_);
    response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
    response.setContentType("text/plain");
    response.setKeepAlive(false);
    if (reply.status == 405) {
      response.set("Allow", "POST");
    }
    response.sendBuffer(reply.body.data(), reply.body.size());
  }

 private:
  const std::string& secret_;
  const std::function<void()>& onTrigger_;
};

class TriggerFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  TriggerFactory(const std::string& secret, const std::function<void()>& onTrigger)
      : secret_(secret), onTrigger_(onTrigger) {}
  // Interface
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new TriggerHandler(secret_, onTrigger_);
  }

 private:
  const std::string& secret_;
  const std::function<void()>& onTrigger_;
};

}  // namespace

struct WebhookServer::Impl {
  std::string secret;
  std::function<void()> onTrigger;
  std::unique_ptr<Poco::Net::HTTPServer> server;
  uint16_t port = 0;
};

WebhookServer::WebhookServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebhookServer::~WebhookServer() {
  if (impl_ && impl_->server) {
    impl_->server->stopAll(true);
  }
}

uint16_t WebhookServer::port() const {
  return impl_->port;
}

Result<std::unique_ptr<WebhookServer>> WebhookServer::start(const Endpoint& listen,
                                                            std::string secret,
                                                            std::function<void()> onTrigger) {
  auto impl = std::make_unique<Impl>();
  impl->secret = std::move(secret);
  impl->onTrigger = std::move(onTrigger);
  try {
    Poco::Net::ServerSocket socket;
    socket.bind(Poco::Net::SocketAddress(listen.str()), true);
    socket.listen(16);
    impl->port = socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(2);
    params->setMaxQueued(16);
    params->setTimeout(Poco::Timespan(5, 0));
    params->setKeepAlive(false);
    params->setMaxKeepAliveRequests(1);
    impl->server = std::make_unique<Poco::Net::HTTPServer>(
        new TriggerFactory(impl->secret, impl->onTrigger), socket, params);
    impl->server->start();
  } catch (const Poco::Exception& e) {
    return retryable("webhook: cannot listen on " + listen.str() + ": " + e.displayText());
  }
  return std::unique_ptr<WebhookServer>(new WebhookServer(std::move(impl)));
}

}  // namespace edgeplane::cli
