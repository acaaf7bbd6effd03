// The net module's table of entry points (module.h): linked into the module and the tests.
#include "reconciler/net/module.h"
#include "reconciler/source/libgit2_repo.h"

namespace edgeplane::net {

const Module& linkedTable() {
  static const Module table{&acme::makeHttpsTransport, &cli::WebhookServer::start,
                            &MetricsServer::start, &source::LibGit2Repo::open};
  return table;
}

}  // namespace edgeplane::net
