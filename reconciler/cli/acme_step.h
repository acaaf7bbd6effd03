// apply's ACME step on this host: the client from [fleet], challenge answers through the store
// and the proxy, the default challenge from the proxy's listeners, the run's clock and budget.
#pragma once

#include "reconciler/cli/acme_orders.h"
#include "reconciler/cli/command_support.h"
#include "reconciler/core/apply.h"
#include "reconciler/core/target.h"
#include "reconciler/system/certs.h"
#include "schema/model.h"
#include "schema/store.h"

namespace edgeplane::cli {

// The due orders of `target` against [fleet]'s CA, within acme_timeout; each certificate that
// names no challenge gets HTTP-01, or TLS-ALPN-01 when the proxy says its :80 is off.
AcmeOrders orderAcmeCertificates(const Options& o, const Desired& all, const core::Target& target,
                                 Store& store, sys::CertStore& certs, core::ApplyResult& result);

}  // namespace edgeplane::cli
