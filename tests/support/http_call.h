// One HTTP/1.1 request to a loopback port with POCO's client, for tests of the local endpoints.
#pragma once

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>

#include <cstdint>
#include <sstream>
#include <string>

namespace edgeplane::testing {

struct HttpCallReply {
  int status = -1;  // -1: nothing answered (nothing listens, or the connection broke)
  std::string contentType;
  std::string allow;
  std::string body;
};

// `method` `path` on 127.0.0.1:`port` with an empty body, 5 s timeout.
inline HttpCallReply httpCall(uint16_t port, const std::string& method, const std::string& path) {
  HttpCallReply r;
  try {
    Poco::Net::HTTPClientSession session("127.0.0.1", port);
    session.setTimeout(Poco::Timespan(5, 0));
    Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    request.setContentLength(0);
    session.sendRequest(request);
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    std::ostringstream body;
    body << in.rdbuf();
    r.status = static_cast<int>(response.getStatus());
    r.contentType = response.getContentType();
    r.allow = response.get("Allow", "");
    r.body = body.str();
  } catch (const Poco::Exception&) {
    r = HttpCallReply{};
  }
  return r;
}

}  // namespace edgeplane::testing
