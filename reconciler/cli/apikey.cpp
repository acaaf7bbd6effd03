// `edgeplane apikey`: new keys (printed once, with the [[api_key]] stanza for Git), the applied
// keys with their usage, and this host's blocks. No key text is ever stored or printed again.
#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>

#include "reconciler/cli/apikey_listing.h"
#include "reconciler/cli/command_support.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/history.h"
#include "reconciler/cli/publish.h"
#include "schema/api_key.h"
#include "schema/encoding.h"
#include "schema/json_text.h"
#include "schema/snapshot.h"

namespace edgeplane::cli {
namespace {

constexpr int kUsageError = 2;
constexpr std::chrono::milliseconds kNotifyTimeout{2000};

constexpr const char* kApiKeyUsage = R"(Usage: edgeplane apikey ACTION [OPTIONS]

  new --name NAME [--gateway G]... [--role worker|admin] [--endpoint PATH]... [--json]
        generate a key: prints it once (store it now) and the [[api_key]] stanza to commit;
        a worker key needs at least one --gateway; an admin key without one has them all
  list [--state-dir DIR] [--agent FILE] [--json]
        the keys of the applied config with their usage on this host (never a key's secret)
  block ID [--state-dir DIR] [--agent FILE] [--proxy-admin ADDR]
        refuse key ID on this host at once, whatever the config says (kept across restarts)
  unblock ID [--state-dir DIR] [--agent FILE] [--proxy-admin ADDR]
        lift a block
)";

// A quoted string for JSON and for TOML alike: JSON's escapes are all valid TOML basic-string
// escapes (DEL, which TOML would also want escaped, is refused in names beforehand).
std::string quotedText(std::string_view s) {
  std::string out;
  appendJsonString(out, s);
  return out;
}

std::string quotedList(const std::vector<std::string>& items, std::string_view sep) {
  std::string out = "[";
  for (const auto& item : items) {
    out += (out.size() > 1 ? std::string(sep) : "") + quotedText(item);
  }
  return out + "]";
}

// Why a `new` request is malformed, or "" when it is fine.
std::string newKeyProblem(const ApiKeyArgs& a, const std::string& role) {
  if (!a.name || a.name->empty()) {
    return "--name NAME is required";
  }
  if (a.name->size() > 256) {
    return "--name: at most 256 bytes";
  }
  if (std::any_of(a.name->begin(), a.name->end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return "--name: no control characters";
  }
  if (role != "worker" && role != "admin") {
    return "--role is worker or admin, not \"" + role + "\"";
  }
  if (role == "worker" && a.gateways.empty()) {
    return "a worker key needs at least one --gateway NAME (an admin key without --gateway "
           "may use every gateway)";
  }
  for (const auto& g : a.gateways) {
    if (g.empty()) {
      return "--gateway: empty name";
    }
  }
  for (const auto& e : a.endpoints) {
    if (e.empty() || e.front() != '/') {
      return "--endpoint " + e + ": a path starting with '/'";
    }
  }
  if (a.id) {
    return "new takes no ID";
  }
  return "";
}

int cmdNew(const Options& o) {
  const ApiKeyArgs& a = o.apikey;
  const std::string role = a.role.value_or("worker");
  if (const std::string problem = newKeyProblem(a, role); !problem.empty()) {
    std::cerr << "edgeplane apikey new: " << problem << "\n";
    return kUsageError;
  }
  auto key = generateApiKey();
  if (!key) {
    std::cerr << "edgeplane apikey new: the system's random generator failed\n";
    return 1;
  }
  const std::string digest = toHex(key->sha256.data(), key->sha256.size());
  const std::string stanza = apiKeyStanza(*a.name, key->id, digest, a.gateways, a.endpoints, role);
  if (o.json) {
    std::cout << "{\"key\":" << quotedText(key->key) << ",\"id\":" << quotedText(key->id)
              << ",\"sha256\":" << quotedText(digest) << ",\"toml\":" << quotedText(stanza)
              << "}\n";
    return 0;
  }
  std::cout << "API key " << key->id << " for " << quotedText(*a.name)
            << " — shown once, store it now (it is kept nowhere):\n\n  " << key->key
            << "\n\nCommit this stanza to the config repository (the key itself never goes into "
               "Git):\n\n"
            << stanza;
  return 0;
}

// ---- list ----

std::string stateText(const ListedKey& k) {
  return k.blocked ? "blocked" : k.key.enabled ? "enabled" : "disabled";
}

std::string gatewaysText(const SnapshotApiKey& k) {
  std::string out;
  for (const auto& g : k.gateways) {
    out += (out.empty() ? "" : ",") + g;
  }
  return out.empty() ? "all" : out;
}

std::string renderListText(const std::vector<ListedKey>& keys) {
  std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "KEY", "GATEWAYS", "ROLE", "STATE",
                                                 "FIRST SEEN", "LAST USED", "LAST IP", "REQUESTS"}};
  for (const auto& k : keys) {
    const auto& seen = k.stored;
    rows.push_back({k.key.name, k.key.id, std::string(kApiKeyPrefix) + k.key.id + ".…",
                    gatewaysText(k.key), std::string(toString(k.key.role)), stateText(k),
                    seen ? (seen->firstSeenCommit ? seen->firstSeenCommit->substr(0, 12)
                                                  : isoTime(seen->firstSeenAt))
                         : "-",
                    k.usage && k.usage->lastUsedAt ? isoTime(*k.usage->lastUsedAt) : "-",
                    k.usage && k.usage->lastIp ? *k.usage->lastIp : "-",
                    std::to_string(k.usage ? k.usage->requestCount : 0)});
  }
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      // "…" is three bytes but one column.
      const size_t shown = row[i].size() - (row[i].find("…") != std::string::npos ? 2 : 0);
      width[i] = std::max(width[i], shown);
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const size_t shown = row[i].size() - (row[i].find("…") != std::string::npos ? 2 : 0);
      line += row[i] + (i + 1 < row.size() ? std::string(width[i] - shown + 2, ' ') : "");
    }
    out += line + "\n";
  }
  return out;
}

std::string renderListJson(const std::vector<ListedKey>& keys) {
  std::string out = "[";
  for (const auto& k : keys) {
    std::string firstSeen = "null";
    if (k.stored) {
      firstSeen = "{\"commit\":" +
                  (k.stored->firstSeenCommit ? quotedText(*k.stored->firstSeenCommit) : "null") +
                  ",\"at\":" + quotedText(isoTime(k.stored->firstSeenAt)) + "}";
    }
    const bool used = k.usage && k.usage->lastUsedAt;
    out += (out.size() > 1 ? "," : "") + std::string("{\"id\":") + quotedText(k.key.id) +
           ",\"name\":" + quotedText(k.key.name) +
           ",\"gateways\":" + quotedList(k.key.gateways, ",") +
           ",\"endpoints\":" + quotedList(k.key.endpoints, ",") +
           ",\"role\":" + quotedText(toString(k.key.role)) +
           ",\"enabled\":" + (k.key.enabled ? "true" : "false") +
           ",\"blocked\":" + (k.blocked ? "true" : "false") + ",\"first_seen\":" + firstSeen +
           ",\"last_used_at\":" + (used ? quotedText(isoTime(*k.usage->lastUsedAt)) : "null") +
           ",\"last_ip\":" + (k.usage && k.usage->lastIp ? quotedText(*k.usage->lastIp) : "null") +
           ",\"request_count\":" + std::to_string(k.usage ? k.usage->requestCount : 0) + "}";
  }
  return out + "]\n";
}

// The applied snapshot's keys joined with the store's first-seen and blocks, and the usage the
// proxy counts (`live`) plus what the store holds of it from before.
Result<std::optional<std::vector<ListedKey>>> listedKeys(Store& store,
                                                         const std::vector<ApiKeyUsage>& live) {
  auto latest = store.latestSnapshot();
  if (!latest) {
    return latest.error();
  }
  if (!latest->has_value()) {
    return std::optional<std::vector<ListedKey>>();
  }
  auto snapshot = snapshotFromJson((*latest)->body);
  auto stored = store.listApiKeys();
  auto usage = store.listUsage();
  auto blocks = store.listApiKeyBlocks();
  if (!snapshot || !stored || !usage || !blocks) {
    return !snapshot ? snapshot.error()
           : !stored ? stored.error()
           : !usage  ? usage.error()
                     : blocks.error();
  }
  // The store's usage is what it kept from before the proxy counted in a store of its own.
  return std::optional(joinListedKeys(snapshot->api_keys, *stored, *usage, live, *blocks));
}

int cmdList(const Options& o) {
  auto storeResult = openStoreIfPresent(o.stateDir);
  if (!storeResult) {
    std::cerr << "edgeplane apikey list: " << storeResult.error().message << "\n";
    return 1;
  }
  std::optional<std::vector<ListedKey>> keys;
  if (*storeResult) {
    // The proxy counts the usage, in a store of its own: asked for it, not read from its files.
    auto live = queryProxyUsage(o.proxyAdmin, kProxyNotifyTimeout, o.proxyAdminTokenFile);
    if (!live) {
      std::cerr << "edgeplane apikey list: warning: usage shown without the proxy's counts "
                << "(it did not answer: " << live.error().message << ")\n";
    }
    auto listed = listedKeys(**storeResult, live ? *live : std::vector<ApiKeyUsage>{});
    if (!listed) {
      std::cerr << "edgeplane apikey list: " << listed.error().message << "\n";
      return 1;
    }
    keys = std::move(*listed);
  }
  if (o.json) {
    std::cout << renderListJson(keys.value_or(std::vector<ListedKey>{}));
  } else if (!keys) {
    std::cout << "No applied config on this host (no proxy snapshot in " << o.stateDir
              << "): no API keys.\n";
  } else if (keys->empty()) {
    std::cout << "The applied config has no API keys for this host's gateways.\n";
  } else {
    std::cout << renderListText(*keys);
  }
  return 0;
}

// ---- block, unblock ----

// Whether the applied config has key `id`; nullopt when there is no applied config.
std::optional<bool> appliedHasKey(Store& store, const std::string& id) {
  auto latest = store.latestSnapshot();
  if (!latest || !latest->has_value()) {
    return std::nullopt;
  }
  auto snapshot = snapshotFromJson((*latest)->body);
  if (!snapshot) {
    return std::nullopt;
  }
  return std::any_of(snapshot->api_keys.begin(), snapshot->api_keys.end(),
                     [&](const SnapshotApiKey& k) { return k.id == id; });
}

int cmdBlock(const Options& o, bool block) {
  const std::string verb = block ? "block" : "unblock";
  const std::string cmd = "edgeplane apikey " + verb + ": ";
  if (!o.apikey.id || !isValidApiKeyId(*o.apikey.id)) {
    std::cerr << cmd
              << (o.apikey.id ? "\"" + *o.apikey.id +
                                    "\" is not an API key id (4 to 64 letters, "
                                    "digits, '_' or '-')"
                              : "which key? edgeplane apikey " + verb + " ID")
              << "\n";
    return kUsageError;
  }
  const std::string& id = *o.apikey.id;
  auto store = Store::open(o.stateDir);
  if (!store) {
    std::cerr << cmd << store.error().message << "\n";
    return 1;
  }
  auto changed = block ? (*store)->blockApiKey(id, nowMs()) : (*store)->unblockApiKey(id);
  if (!changed) {
    std::cerr << cmd << changed.error().message << "\n";
    return 1;
  }
  // Told now, not at the close: a block lost in a crash would let the key back in. Handed to
  // the proxy either way (it reads the files the reconciler publishes, never the store).
  auto synced = (*store)->syncChanges();
  auto fed = publishProxyFeed(o.stateDir, **store);
  if (!fed) {
    std::cerr << cmd << "the " << verb
              << " is recorded but the proxy cannot see it yet: " << fed.error().message
              << "; run this command again (or any apply) to hand it over\n";
  }
  if (!synced) {
    std::cerr << cmd << synced.error().message << "; the " << verb
              << (fed ? " is in effect" : " is recorded") << " but may not survive a crash\n";
  }
  if (!synced || !fed) {
    return 1;
  }
  if (block && appliedHasKey(**store, id) != std::optional(true)) {
    std::cerr << cmd << "warning: the applied config has no API key " << id
              << "; the block takes effect if it appears\n";
  }
  if (!*changed) {
    std::cout << id << (block ? " was already blocked on this host\n" : " was not blocked\n");
    return 0;
  }
  std::cout << (block ? "blocked " + id + " on this host; lift with: edgeplane apikey unblock " + id
                      : "unblocked " + id + " on this host")
            << "\n";
  if (auto told = notifyProxy(o.proxyAdmin, kNotifyTimeout, o.proxyAdminTokenFile); !told) {
    std::cerr << cmd << "the proxy was not told (" << o.proxyAdmin << "): " << told.error().message
              << "; it picks the " << verb << " up within a second\n";
  }
  return 0;
}

}  // namespace

std::string apiKeyStanza(const std::string& name, const std::string& id, const std::string& sha256,
                         const std::vector<std::string>& gateways,
                         const std::vector<std::string>& endpoints, const std::string& role) {
  std::string out = "[[api_key]]\nname = " + quotedText(name) + "\nid = " + quotedText(id) +
                    "\nsha256 = " + quotedText(sha256) + "\n";
  if (!gateways.empty()) {
    out += "gateways = " + quotedList(gateways, ", ") + "\n";
  }
  if (!endpoints.empty()) {
    out += "endpoints = " + quotedList(endpoints, ", ") + "\n";
  }
  return out + "role = " + quotedText(role) + "\nenabled = true\n";
}

std::string_view apiKeyUsage() {
  return kApiKeyUsage;
}

int cmdApiKey(const Options& o) {
  const std::string& action = o.apikey.action;
  if (action == "new") {
    return cmdNew(o);
  }
  if (action == "list") {
    return cmdList(o);
  }
  if (action == "block" || action == "unblock") {
    return cmdBlock(o, action == "block");
  }
  std::cerr << (action.empty() ? "edgeplane apikey: which action?\n"
                               : "edgeplane apikey: unknown action '" + action + "'\n")
            << kApiKeyUsage;
  return kUsageError;
}

}  // namespace edgeplane::cli
