// How the ACME client reaches its CA: one HTTP(S) request and its answer. The real transport,
// POCO's HTTP(S) client, lives in the net module (reconciler/net/module.h), loaded on first use.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "schema/result.h"

namespace edgeplane::acme {

// An answer as the server sent it; a header it did not send is "".
struct HttpAnswer {
  int status = 0;
  std::string contentType;
  std::string location;
  std::string nonce;       // Replay-Nonce
  std::string retryAfter;  // Retry-After, unparsed
  std::string body;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // One request, within `timeout`. A POST carries `body` as application/jose+json. An answer
  // whose body is larger than `maxBody` and a URL that is not http(s) are terminal errors; the
  // network and TLS failures are retryable, and say "<method> <url>: " and why.
  virtual Result<HttpAnswer> exchange(const std::string& method, const std::string& url,
                                      const std::string& body, std::chrono::milliseconds timeout,
                                      size_t maxBody) = 0;
};

// POCO's client: one connection per request; https verified against the PEM file `caRoots`,
// or the system's roots when it is "".
std::unique_ptr<HttpTransport> makeHttpsTransport(const std::string& caRoots);

}  // namespace edgeplane::acme
