// The net module: the parts of edgeplane that reach other hosts through large libraries, behind
// one table of entry points: HTTP with POCO Net and NetSSL (the ACME client's transport, the
// agent's webhook and metrics servers) and the config repository with libgit2 (its cache, its
// fetches). The `edgeplane` executable loads it on first use from the file installed beside it
// (loader.cpp), so that runs which need neither (plan, status, an apply from a directory
// without an ACME order) do not map and bind those libraries at start-up; the tests link it in
// (linked.cpp). Both halves are built from one tree in one build: the table is plain C++.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "reconciler/acme/http_transport.h"
#include "reconciler/cli/webhook.h"
#include "reconciler/source/git_source.h"
#include "reconciler/system/metrics_server.h"
#include "schema/local_address.h"
#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::net {

// What the module offers. The loader has refused a module of another build by its ELF build
// ID before any of it ran, so the two halves agree on this table's layout.
struct Module {
  std::unique_ptr<acme::HttpTransport> (*httpsTransport)(const std::string& caRoots);
  Result<std::unique_ptr<cli::WebhookServer>> (*startWebhook)(const Endpoint& listen,
                                                              cli::WebhookConfig config,
                                                              std::function<void()> onTrigger);
  Result<std::unique_ptr<MetricsServer>> (*startMetrics)(const LocalAddress& address,
                                                         MetricsSource source);
  Result<std::unique_ptr<source::GitRepo>> (*openGit)(const std::filesystem::path& cacheDir,
                                                      source::SourceSpec spec);
};

// The module, loaded at the first call (thread-safe) and kept: later calls give the same
// answer. An error names the file and says why it was not loaded (missing, on an untrusted
// path: module_file.h, from another build: its ELF build ID); terminal, as no retry mends it.
Result<const Module*> module();

// The loaded module's file, open close-on-exec; -1 when the module is not loaded or is linked
// in. A child of this process (the fetch process) loads the module from it rather than from
// the file on disk, which an upgrade may have replaced with another build's meanwhile.
int moduleFile();
// In such a child, before the first module(): load the module from `fd` (the parent's
// moduleFile(), inherited), checking its build ID as module() checks a file's. Linked in: no-op.
void inheritModuleFile(int fd);

// The table itself: defined only where the net code is linked in (the module, the tests).
const Module& linkedTable();

}  // namespace edgeplane::net
