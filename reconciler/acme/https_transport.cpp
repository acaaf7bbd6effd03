// The ACME client's transport over POCO's HTTP(S) client (part of the net module).
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/URI.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "reconciler/acme/http_transport.h"
#include "schema/net.h"

namespace edgeplane::acme {
namespace {

// Shuts a connection down at `deadline` unless dismissed first: the bound of a whole exchange,
// which POCO's timeouts (per connect, per send, per read) are not: a server that sends a byte
// now and then never lets a read time out.
class Watchdog {
 public:
  // Works on a duplicate of `fd`: POCO may close the session's own descriptor on an error
  // before the watchdog is dismissed, and its number may then be another socket's. Shutting the
  // duplicate down shuts the connection down (one socket, two descriptors).
  Watchdog(int fd, std::chrono::steady_clock::time_point deadline)
      : fd_(::fcntl(fd, F_DUPFD_CLOEXEC, 0)), thread_([this, deadline] {
          std::unique_lock lock(mu_);
          if (!cv_.wait_until(lock, deadline, [this] { return dismissed_; })) {
            fired_ = true;
            if (fd_ >= 0) {
              ::shutdown(fd_, SHUT_RDWR);  // the blocked read returns
            }
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      dismissed_ = true;
    }
    cv_.notify_one();
    thread_.join();
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  // Dismisses it now: whether it had fired (then the answer read so far is cut short).
  bool dismiss() {
    std::lock_guard lock(mu_);
    dismissed_ = true;
    return fired_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool dismissed_ = false;
  bool fired_ = false;
  const int fd_;
  std::thread thread_;  // last: started once the members above exist
};

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
    const auto deadline = std::chrono::steady_clock::now() + timeout;
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
    std::ostream& sending = session->sendRequest(req);  // connected here
    // The TLS handshake is done by now, under POCO's per-read timeouts only (the descriptor
    // exists from the connect on, inside sendRequest).
    Watchdog watchdog(session->socket().impl()->sockfd(), deadline);
    std::optional<Result<HttpAnswer>> got;
    try {
      got = answer(*session, sending, body, maxBody, method + " " + url);
    } catch (const Poco::Exception&) {
      if (!watchdog.dismiss()) {
        throw;
      }
    } catch (const std::exception&) {
      if (!watchdog.dismiss()) {
        throw;
      }
    }
    if (watchdog.dismiss()) {
      return retryable(method + " " + url + ": no whole answer within " + formatDuration(timeout));
    }
    return std::move(*got);
  }

  // Sends the body and reads the answer. A connection the watchdog shut down ends it early:
  // an exception, or an answer cut short, which the caller tells by the watchdog.
  static Result<HttpAnswer> answer(Poco::Net::HTTPClientSession& session, std::ostream& sending,
                                   const std::string& body, size_t maxBody,
                                   const std::string& what) {
    sending << body;
    Poco::Net::HTTPResponse res;
    std::istream& in = session.receiveResponse(res);
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
        return terminal(what + ": response larger than " + std::to_string(maxBody) + " bytes");
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
