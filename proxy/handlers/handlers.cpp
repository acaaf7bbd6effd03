// The protocols every worker serves, by entry point (see Protocols in engine/handler.h).
#include "proxy/gateway/filter.h"
#include "proxy/handlers/acme_tls_alpn.h"
#include "proxy/handlers/http80.h"
#include "proxy/handlers/https.h"
#include "proxy/handlers/passthrough.h"

namespace edgeplane::proxy {

Protocols defaultProtocols(Context& ctx) {
  Protocols p;
  p.entries[static_cast<size_t>(Entry::Passthrough)] = makePassthroughProtocol(ctx);
  p.entries[static_cast<size_t>(Entry::Terminate)] = makeHttpsProtocol(ctx);
  p.entries[static_cast<size_t>(Entry::Gateway)] = gateway::makeGatewayProtocol(ctx);
  p.entries[static_cast<size_t>(Entry::PlainHttp)] = makeHttp80Protocol(ctx);
  p.entries[static_cast<size_t>(Entry::AcmeTlsAlpn)] = makeAcmeTlsAlpnProtocol(ctx);
  return p;
}

}  // namespace edgeplane::proxy
