// What the `edgeplane` commands share (see command_support.h): loading a config directory, the
// store's view of the host, the kernel host and this host's target.
#include "reconciler/cli/command_support.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "reconciler/core/owned_rows.h"
#include "reconciler/system/certs.h"
#include "reconciler/system/wg_keys.h"
#include "schema/loader.h"
#include "schema/snapshot.h"
#include "schema/validate.h"

namespace edgeplane::cli {

std::string plural(size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

namespace {

namespace fs = std::filesystem;

// The host this run converges: --host, which must be declared; else the agent file's host
// (for a config without [[host]] tables, "default"); else the machine's name if the config
// declares it, or "default" for a config without [[host]].
Result<std::string> chooseHost(const Desired& d, const Options& o) {
  auto hosts = targetHosts(d);
  if (o.host) {
    if (std::find(hosts.begin(), hosts.end(), *o.host) == hosts.end()) {
      return terminal("host \"" + *o.host + "\" is not declared in the config");
    }
    return *o.host;
  }
  if (d.hosts.empty()) {
    return std::string("default");
  }
  if (o.agentHost) {
    if (std::find(hosts.begin(), hosts.end(), *o.agentHost) == hosts.end()) {
      return terminal("the agent file's host \"" + *o.agentHost +
                      "\" is not a declared [[host]] in the config");
    }
    return *o.agentHost;
  }
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  if (std::find(hosts.begin(), hosts.end(), name) != hosts.end()) {
    return std::string(name);
  }
  return terminal("this machine (\"" + std::string(name) +
                  "\") is not a declared [[host]]; pass --host NAME");
}

}  // namespace

LoadOutcome loadConfig(const fs::path& dir, const std::optional<std::string>& displayRoot,
                       const Options& o, const std::optional<ConfigCache>& cache,
                       const std::vector<ConfigFile>* files) {
  LoadOutcome out;
  Diagnostics diags;
  CachedLoad d = loadAndValidateCached(dir, cache, diags, nullptr, nullptr, files);
  if (!diags.empty()) {
    const std::string root = dir.lexically_normal().string();
    for (Diagnostic diag : diags.sorted()) {
      if (displayRoot) {
        const std::string& file = diag.loc.file.str();
        if (file == root) {
          diag.loc.file = displayRoot->empty() ? "." : *displayRoot;
        } else if (file.starts_with(root + "/")) {
          diag.loc.file =
              (displayRoot->empty() ? "" : *displayRoot + "/") + file.substr(root.size() + 1);
        }
      }
      out.diagnostics += formatDiagnostic(diag) + "\n";
      out.items.push_back(diag);
      ++out.errors;
    }
    return out;
  }
  auto host = chooseHost(*d.desired, o);
  if (!host) {
    out.hostError = host.error().message;
    return out;
  }
  out.loaded = Loaded{std::move(d.desired), *host, std::move(d.writes)};
  return out;
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<core::StoreView> readStoreView(Store& store) {
  auto rows = store.listOwned(std::nullopt);
  if (!rows) {
    return rows.error();
  }
  auto view = core::storeViewFromOwned(*rows);
  if (!view) {
    return view;
  }
  // The routes the proxy serves now: what route ops are diffed against. A stored snapshot of
  // an older codec version is treated as none (every route plans as added, and is rewritten).
  auto latest = store.latestSnapshot();
  if (!latest) {
    return latest.error();
  }
  if (latest->has_value()) {
    if (auto decoded = snapshotFromJson((*latest)->body)) {
      view->snapshot = std::move(*decoded);
    }
  }
  auto acme = store.listAcmeStates();
  if (!acme) {
    return acme.error();
  }
  for (const AcmeState& st : *acme) {
    if (!st.ariCert.empty() && st.ariRenewAt) {
      view->ariRenewals[st.name] = {st.ariCert, *st.ariRenewAt / 1000};
    }
  }
  auto blocks = store.listApiKeyBlocks();
  if (!blocks) {
    return blocks.error();
  }
  for (const ApiKeyBlock& b : *blocks) {
    view->blockedApiKeys.insert(b.keyId);
  }
  return view;
}

StateDirReading readStateDirInBackground(const std::string& stateDir) {
  auto view = std::make_shared<std::promise<Result<core::StoreView>>>();
  StateDirReading reading;
  reading.view = view->get_future();
  reading.certs = std::async(std::launch::async, [stateDir, view] {
    view->set_value([&]() -> Result<core::StoreView> {
      auto store = openStoreIfPresent(stateDir);
      if (!store) {
        return store.error();
      }
      if (!*store) {
        return core::StoreView{};
      }
      return readStoreView(**store);
    }());
    core::HostState certs;
    auto generated = sys::CertStore(stateDir).observeGenerated(certs);
    return generated ? Result<core::HostState>(std::move(certs))
                     : Result<core::HostState>(generated.error());
  });
  return reading;
}

Result<std::unique_ptr<Store>> openStoreIfPresent(const std::string& stateDir) {
  if (!fs::exists(fs::path(stateDir) / "state.db")) {
    return std::unique_ptr<Store>();
  }
  return Store::open(stateDir);
}

sys::WgBackendChoice backendChoice(const Options& o) {
  return sys::parseBackendChoice(o.wireguardBackend).value_or(sys::WgBackendChoice::Auto);
}

sys::KernelHost makeHost(const Options& o) {
  return sys::KernelHost(o.stateDir, backendChoice(o));
}

std::future<Result<core::HostState>> observeInBackground(sys::KernelHost& host) {
  return std::async(std::launch::async, [&host] { return host.observe(); });
}

Result<core::Target> buildHostTarget(const Loaded& loaded, const core::StoreView& view,
                                     const std::set<std::string>& rotateKeys, bool readKeys) {
  // The forwards from the whole config: resolveFor would copy each with its origin.
  auto target = core::buildTarget(resolveFor(*loaded.all, loaded.host, Resolve::AllButForwards),
                                  loaded.host, view, rotateKeys, &loaded.all->forwards);
  if (!target || !readKeys) {
    return target;
  }
  std::string problems;
  for (auto& [ns, wg] : target->wireguard) {
    for (auto& p : wg.peers) {
      if (!p.pskFile) {
        continue;
      }
      auto key = sys::readPresharedKeyFile(*p.pskFile);
      if (!key) {
        problems += (problems.empty() ? "" : "; ") + ("peer " + ns + "/" + p.name + ": ") +
                    key.error().message;
        continue;
      }
      p.presharedKey = *key;
    }
  }
  if (!problems.empty()) {
    return terminal(problems);
  }
  return target;
}

void observeCertificates(const Options& o, const core::Target& target, core::HostState& seen,
                         core::HostState& observed) {
  observed.now = seen.now;
  observed.generatedCerts = std::move(seen.generatedCerts);
  sys::CertStore(o.stateDir).observeFiles(target.certificates, observed);
}

}  // namespace edgeplane::cli
