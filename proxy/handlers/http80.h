// The :80 listener's handler: reads one request head (the proxy/http codec, at most
// kMaxHttpHead bytes, within the hello timeout), answers 308 to https://<host><target> when
// the host is a passthrough's or gateway's, or a site's with redirect_http = true; 404 otherwise,
// 400 for any head the codec refuses, always with `Connection: close`; then half-closes and lingers
// briefly so the client reads the answer before our close. Before any redirect, a GET or HEAD
// of /.well-known/acme-challenge/<token> with a pending token (EngineOptions::acmeChallenges)
// gets 200 and the key authorization.
//
// Access log: access-http client=IP:PORT host=NAME status=N ms=N outcome=OUTCOME
// A head not complete within helloTimeout counts as HelloTimeout; a 400 as HttpMalformed.
#pragma once

#include <memory>

#include "proxy/engine/handler.h"

namespace edgeplane::proxy {

std::unique_ptr<Protocol> makeHttp80Protocol(Context& ctx);

}  // namespace edgeplane::proxy
