// TLS-ALPN-01 answers on :443 (RFC 8737): the engine hands over a ClientHello that offers only
// "acme-tls/1" for a name with a pending tls-alpn-01 challenge
// (AcmeChallengeBoard::answersTlsAlpn), whatever route the name has;
// the handshake completes with that challenge's validation certificate, close_notify is sent
// and the connection ends. Nothing else is served on it; no backend is involved.
//
// Each worker keeps the contexts it made, by domain, while the challenge is pending (a new key
// authorization for the domain makes a new one), so a CA validating from several vantage
// points costs one key generation per worker.
//
// Access log: the connection record with backend=acme-tls/1; a handshake not done within the
// hello timeout, or refused, counts as TlsHandshake.
#pragma once

#include <memory>

#include "proxy/engine/handler.h"

namespace edgeplane::proxy {

std::unique_ptr<Protocol> makeAcmeTlsAlpnProtocol(Context& ctx);

}  // namespace edgeplane::proxy
