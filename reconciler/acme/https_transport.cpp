// The ACME client's transport over POCO's HTTP(S) client (part of the net module).
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/URI.h>

#include <mutex>

#include "reconciler/acme/http_transport.h"

namespace edgeplane::acme {
namespace {

class PocoTransport : public HttpTransport {
 public:
  explicit PocoTransport(std::string caRoots) : caRoots_(std::move(caRoots)) {}

  Result<HttpAnswer> exchange(const std::string& method, const std::string& url,
                              const std::string& body, std::chrono::milliseconds timeout,
                              size_t maxBody) override {
    try {
      return request(method, url, body, timeout, maxBody);
    } catch (const Poco::Exception& e) {
      return retryable(method + " " + url + ": " + e.displayText());
    } catch (const std::exception& e) {
      return retryable(method + " " + url + ": " + e.what());
    }
  }

 private:
  Result<HttpAnswer> request(const std::string& method, const std::string& url,
                             const std::string& body, std::chrono::milliseconds timeout,
                             size_t maxBody) {
    Poco::URI uri(url);
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    if (uri.getScheme() == "https") {
      if (!tls_) {
        tls_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", caRoots_,
                                      Poco::Net::Context::VERIFY_RELAXED, 9, caRoots_.empty());
      }
      session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), tls_);
    } else if (uri.getScheme() == "http") {
      session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
    } else {
      return terminal("not an http(s) URL: " + url);
    }
    session->setTimeout(Poco::Timespan(timeout.count() * 1000));
    Poco::Net::HTTPRequest req(method, uri.getPathAndQuery(), Poco::Net::HTTPMessage::HTTP_1_1);
    req.set("User-Agent", "edgeplane-acme");
    if (method == Poco::Net::HTTPRequest::HTTP_POST) {
      req.setContentType("application/jose+json");
      req.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    session->sendRequest(req) << body;
    Poco::Net::HTTPResponse res;
    std::istream& in = session->receiveResponse(res);
    HttpAnswer out;
    out.status = static_cast<int>(res.getStatus());
    out.contentType = res.getContentType();
    out.location = res.get("Location", "");
    out.nonce = res.get("Replay-Nonce", "");
    out.retryAfter = res.get("Retry-After", "");
    char buf[8192];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      out.body.append(buf, static_cast<size_t>(in.gcount()));
      if (out.body.size() > maxBody) {
        return terminal(method + " " + url + ": response larger than " + std::to_string(maxBody) +
                        " bytes");
      }
    }
    return out;
  }

  std::string caRoots_;
  Poco::Net::Context::Ptr tls_;
};

}  // namespace

std::unique_ptr<HttpTransport> makeHttpsTransport(const std::string& caRoots) {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
  return std::make_unique<PocoTransport>(caRoots);
}

}  // namespace edgeplane::acme
