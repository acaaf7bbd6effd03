// `edgeplane apikey` through the real binary: a new key and its stanza (valid TOML the config
// accepts), usage errors, list/block/unblock/status against a state store, and that no key
// text appears anywhere but in `apikey new`'s own output.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <fstream>
#include <set>

#include "reconciler/cli/apikey_listing.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/publish.h"
#include "reconciler/core/state_json.h"
#include "schema/api_key.h"
#include "schema/encoding.h"
#include "schema/proxy_feed.h"
#include "tests/support/command.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

using testing::readFile;
using Ran = testing::SplitResult;

// Runs the edgeplane binary with `args` (already shell-quoted), capturing both streams.
Ran edgeplane(const TempDir& dir, const std::string& args) {
  return testing::runCommandSplit(std::string(EDGEPLANE_BINARY) + " " + args, dir.path());
}

bool has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

fs::path golden() {
  return fs::path(EDGEPLANE_SOURCE_DIR) / "tests" / "golden";
}

TEST(ApiKeyCli, NewPrintsTheKeyOnceAndAStanzaTheConfigAccepts) {
  TempDir dir;
  Ran r = edgeplane(dir, R"(apikey new --name 'Ping "W" #1' --gateway ping --json)");
  ASSERT_EQ(r.status, 0) << r.err;
  Poco::JSON::Object::Ptr j = Poco::JSON::Parser().parse(r.out).extract<Poco::JSON::Object::Ptr>();
  const std::string key = j->getValue<std::string>("key");
  const std::string id = j->getValue<std::string>("id");
  ASSERT_EQ(apiKeyId(key), std::optional<std::string_view>(id)) << key;
  const ApiKeyDigest digest = apiKeyDigest(key);
  EXPECT_EQ(j->getValue<std::string>("sha256"), toHex(digest.data(), digest.size()));
  const std::string toml = j->getValue<std::string>("toml");
  EXPECT_TRUE(has(toml, "[[api_key]]\nname = \"Ping \\\"W\\\" #1\"\nid = \"" + id + "\"\n"))
      << toml;
  EXPECT_TRUE(has(toml, "gateways = [\"ping\"]\nrole = \"worker\"\nenabled = true\n")) << toml;
  EXPECT_FALSE(has(toml, key.substr(key.find('.') + 1)));  // the stanza holds no secret

  // The stanza goes into a config as it is: it validates and plans as a new key.
  const fs::path config = dir.path() / "config";
  fs::copy(golden() / "demo-converged" / "desired", config);
  std::ofstream(config / "keys.toml") << toml;
  Ran valid = edgeplane(dir, "validate --config " + config.string());
  EXPECT_EQ(valid.status, 0) << valid.err;
  Ran plan = edgeplane(dir, "plan --offline --detailed-exitcode --observed " +
                                (golden() / "demo-converged" / "observed.json").string() +
                                " --config " + config.string());
  EXPECT_EQ(plan.status, 2) << plan.err;
  EXPECT_TRUE(has(plan.out, "+ api_key " + id + " (Ping \"W\" #1)")) << plan.out;
  EXPECT_FALSE(has(plan.out, key.substr(key.find('.') + 1)));

  // Text: the key, clearly labelled, then the stanza; a fresh key each time.
  Ran text = edgeplane(dir, "apikey new --name Admin --role admin --endpoint /api/stats");
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_TRUE(has(text.out, "shown once, store it now")) << text.out;
  EXPECT_TRUE(has(text.out, "\n  ep_")) << text.out;
  EXPECT_TRUE(has(text.out, "endpoints = [\"/api/stats\"]\nrole = \"admin\"\n")) << text.out;
  EXPECT_FALSE(has(text.out, "gateways")) << text.out;  // an admin key: every gateway
  EXPECT_FALSE(has(text.out, key));
}

TEST(ApiKeyCli, UsageErrorsExitTwo) {
  TempDir dir;
  Ran worker = edgeplane(dir, "apikey new --name W");
  EXPECT_EQ(worker.status, 2);
  EXPECT_TRUE(has(worker.err, "a worker key needs at least one --gateway")) << worker.err;
  EXPECT_TRUE(worker.out.empty()) << worker.out;
  Ran role = edgeplane(dir, "apikey new --name W --gateway ping --role root");
  EXPECT_EQ(role.status, 2);
  EXPECT_TRUE(has(role.err, "--role is worker or admin")) << role.err;
  EXPECT_EQ(edgeplane(dir, "apikey new --gateway ping").status, 2);
  EXPECT_EQ(edgeplane(dir, "apikey new --name \"$(printf 'a\\tb')\" --gateway ping").status, 2);
  EXPECT_EQ(edgeplane(dir, "apikey frobnicate").status, 2);
  EXPECT_EQ(edgeplane(dir, "apikey").status, 2);
  Ran help = edgeplane(dir, "apikey --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_TRUE(has(help.out, "block ID")) << help.out;
  Ran bad = edgeplane(dir, "apikey block 'no!' --state-dir " + (dir.path() / "s").string());
  EXPECT_EQ(bad.status, 2);
  EXPECT_TRUE(has(bad.err, "\"no!\" is not an API key id")) << bad.err;
  EXPECT_EQ(edgeplane(dir, "apikey unblock --state-dir " + (dir.path() / "s").string()).status, 2);
}

// The store's usage from before and the proxy's add up; the last use is the newer one's, and
// of two at the same time the later one's; a use without a time keeps the time there was.
TEST(ApiKeyListing, UsageAddsUpAndTheNewerLastUseWins) {
  std::optional<ApiKeyUsage> u;
  addUsage(u, ApiKeyUsage{"k", 3, 2000, "192.0.2.1", {0, 3, 0, 0, 0}});
  addUsage(u, ApiKeyUsage{"k", 2, 1000, "192.0.2.2", {0, 1, 0, 1, 0}});
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->requestCount, 5);
  EXPECT_EQ(u->responses, (std::array<int64_t, 5>{0, 4, 0, 1, 0}));
  EXPECT_EQ(u->lastUsedAt, 2000);
  EXPECT_EQ(u->lastIp, "192.0.2.1");
  addUsage(u, ApiKeyUsage{"k", 1, 2000, "192.0.2.3", {}});
  EXPECT_EQ(u->lastIp, "192.0.2.3");
  addUsage(u, ApiKeyUsage{"k", 1, std::nullopt, std::nullopt, {}});
  EXPECT_EQ(u->requestCount, 7);
  EXPECT_EQ(u->lastUsedAt, 2000);
  EXPECT_EQ(u->lastIp, "192.0.2.3");
}

TEST(ApiKeyListing, EachKeyGetsItsOwnRecordUsageAndBlock) {
  std::vector<SnapshotApiKey> keys(3);
  keys[0].id = "b";
  keys[1].id = "a";
  keys[2].id = "c";
  std::vector<StoredApiKey> stored(3);
  stored[0].id = "a";
  stored[0].firstSeenAt = 1;
  stored[1].id = "b";
  stored[2].id = "a";
  stored[2].firstSeenAt = 2;  // the last of an id counts
  const std::vector<ApiKeyUsage> before{{"a", 4, 100, "192.0.2.4", {}}, {"x", 9, 900, {}, {}}};
  const std::vector<ApiKeyUsage> live{{"a", 1, 200, "192.0.2.5", {}}, {"b", 2, 50, {}, {}}};
  const std::vector<ApiKeyBlock> blocks{{"b", 10}, {"x", 10}};
  const std::vector<ListedKey> listed = joinListedKeys(keys, stored, before, live, blocks);
  ASSERT_EQ(listed.size(), 3U);
  EXPECT_EQ(listed[0].key.id, "b");
  EXPECT_TRUE(listed[0].blocked);
  ASSERT_TRUE(listed[0].usage.has_value());
  EXPECT_EQ(listed[0].usage->requestCount, 2);
  ASSERT_TRUE(listed[0].stored.has_value());
  EXPECT_EQ(listed[0].stored->id, "b");

  EXPECT_EQ(listed[1].key.id, "a");
  EXPECT_FALSE(listed[1].blocked);
  ASSERT_TRUE(listed[1].stored.has_value());
  EXPECT_EQ(listed[1].stored->firstSeenAt, 2);
  ASSERT_TRUE(listed[1].usage.has_value());
  EXPECT_EQ(listed[1].usage->requestCount, 5);
  EXPECT_EQ(listed[1].usage->lastIp, "192.0.2.5");

  EXPECT_EQ(listed[2].key.id, "c");  // known to nothing but the snapshot
  EXPECT_FALSE(listed[2].blocked);
  EXPECT_FALSE(listed[2].stored.has_value());
  EXPECT_FALSE(listed[2].usage.has_value());
}

// A host that applied the converged demo with a real key in place of the demo's, and usage.
struct AppliedHost {
  TempDir dir;
  fs::path state = dir.path() / "state";
  GeneratedApiKey key = *generateApiKey();
  std::string secret = key.key.substr(key.key.find('.') + 1);
  std::string commit = "0123456789abcdef0123456789abcdef01234567";

  AppliedHost() {
    auto observed = core::observedFromJson(readFile(golden() / "demo-converged" / "observed.json"));
    EXPECT_TRUE(observed.ok());
    ProxySnapshot snapshot = *observed->store.snapshot;
    snapshot.api_keys.at(0).id = key.id;
    snapshot.api_keys.at(0).sha256 = toHex(key.sha256.data(), key.sha256.size());
    auto store = Store::open(state);
    EXPECT_TRUE(store.ok());
    EXPECT_TRUE(publishSnapshot(**store, snapshot, std::nullopt, 1000).ok());
    EXPECT_TRUE(publishApiKeys(**store, snapshot, commit, 1000).ok());
    EXPECT_TRUE((*store)->addUsageBatch({{key.id, 3, 1764547200000, "198.51.100.7", {}}}).ok());
  }
  std::string stateArgs() const { return " --state-dir " + state.string(); }
  // block and unblock also tell the proxy: not this host's (there is none).
  std::string blockArgs() const {
    return stateArgs() + " --proxy-admin unix:" + (dir.path() / "no-proxy.sock").string();
  }
};

TEST(ApiKeyCli, ListShowsTheAppliedKeysWithUsageAndNoSecret) {
  AppliedHost h;
  Ran list = edgeplane(h.dir, "apikey list" + h.stateArgs());
  ASSERT_EQ(list.status, 0) << list.err;
  EXPECT_TRUE(has(list.out, "NAME")) << list.out;
  EXPECT_TRUE(has(list.out, "Demo Ping Worker  " + h.key.id + "  ep_" + h.key.id + ".…"))
      << list.out;
  EXPECT_TRUE(has(list.out, "  ping  ")) << list.out;
  EXPECT_TRUE(has(list.out, "  enabled  0123456789ab  2025-12-01T00:00:00Z  198.51.100.7  3\n"))
      << list.out;
  EXPECT_FALSE(has(list.out, h.secret));

  Ran json = edgeplane(h.dir, "apikey list --json" + h.stateArgs());
  ASSERT_EQ(json.status, 0) << json.err;
  EXPECT_FALSE(has(json.out, h.secret));
  auto arr = Poco::JSON::Parser().parse(json.out).extract<Poco::JSON::Array::Ptr>();
  ASSERT_EQ(arr->size(), 1u);
  Poco::JSON::Object::Ptr k = arr->getObject(0);
  EXPECT_EQ(k->getValue<std::string>("id"), h.key.id);
  EXPECT_EQ(k->getValue<std::string>("name"), "Demo Ping Worker");
  EXPECT_EQ(k->getArray("gateways")->getElement<std::string>(0), "ping");
  EXPECT_EQ(k->getValue<std::string>("role"), "worker");
  EXPECT_TRUE(k->getValue<bool>("enabled"));
  EXPECT_FALSE(k->getValue<bool>("blocked"));
  EXPECT_EQ(k->getObject("first_seen")->getValue<std::string>("commit"), h.commit);
  EXPECT_EQ(k->getValue<std::string>("last_used_at"), "2025-12-01T00:00:00Z");
  EXPECT_EQ(k->getValue<std::string>("last_ip"), "198.51.100.7");
  EXPECT_EQ(k->getValue<int64_t>("request_count"), 3);
}

TEST(ApiKeyCli, BlockIsStoredShownAndLifted) {
  AppliedHost h;
  Ran block = edgeplane(h.dir, "apikey block " + h.key.id + h.blockArgs());
  EXPECT_EQ(block.status, 0) << block.err;  // the proxy is not there: said, not an error
  EXPECT_EQ(block.out, "blocked " + h.key.id +
                           " on this host; lift with: edgeplane apikey unblock " + h.key.id + "\n");
  EXPECT_TRUE(has(block.err, "the proxy was not told")) << block.err;
  EXPECT_FALSE(has(block.err, "warning"));  // the key is in the applied config
  // Handed to the proxy in the files it reads (it never reads the store).
  auto published = readPublishedState(h.state);
  ASSERT_TRUE(published.ok()) << published.error().message;
  ASSERT_EQ(published->blocks.size(), 1U);
  EXPECT_EQ(published->blocks[0].keyId, h.key.id);
  Ran again = edgeplane(h.dir, "apikey block " + h.key.id + h.blockArgs());
  EXPECT_EQ(again.status, 0);
  EXPECT_TRUE(has(again.out, "was already blocked")) << again.out;
  Ran stranger = edgeplane(h.dir, "apikey block notInConfig" + h.blockArgs());
  EXPECT_EQ(stranger.status, 0);
  EXPECT_TRUE(has(stranger.err, "warning: the applied config has no API key notInConfig"))
      << stranger.err;

  Ran list = edgeplane(h.dir, "apikey list" + h.stateArgs());
  EXPECT_TRUE(has(list.out, "  blocked  ")) << list.out;
  Ran status = edgeplane(h.dir, "status" + h.stateArgs());
  EXPECT_TRUE(has(status.out, "API keys blocked on this host")) << status.out;
  EXPECT_TRUE(has(status.out, "  " + h.key.id + " since ")) << status.out;
  EXPECT_FALSE(has(status.out, h.secret));
  Ran statusJson = edgeplane(h.dir, "status --json" + h.stateArgs());
  auto root = Poco::JSON::Parser().parse(statusJson.out).extract<Poco::JSON::Object::Ptr>();
  auto blocked = root->getArray("blocked_api_keys");
  ASSERT_EQ(blocked->size(), 2u) << statusJson.out;
  std::set<std::string> ids;
  for (size_t i = 0; i < blocked->size(); ++i) {
    ids.insert(blocked->getObject(static_cast<unsigned>(i))->getValue<std::string>("id"));
  }
  EXPECT_EQ(ids, (std::set<std::string>{h.key.id, "notInConfig"}));
  EXPECT_FALSE(has(statusJson.out, h.secret));

  Ran unblock = edgeplane(h.dir, "apikey unblock " + h.key.id + h.blockArgs());
  EXPECT_EQ(unblock.status, 0);
  EXPECT_EQ(unblock.out, "unblocked " + h.key.id + " on this host\n");
  published = readPublishedState(h.state);
  ASSERT_TRUE(published.ok()) << published.error().message;
  ASSERT_EQ(published->blocks.size(), 1U);
  EXPECT_EQ(published->blocks[0].keyId, "notInConfig");
  Ran notBlocked = edgeplane(h.dir, "apikey unblock " + h.key.id + h.blockArgs());
  EXPECT_TRUE(has(notBlocked.out, "was not blocked")) << notBlocked.out;
  list = edgeplane(h.dir, "apikey list --json" + h.stateArgs());
  EXPECT_TRUE(has(list.out, "\"blocked\":false")) << list.out;
}

TEST(ApiKeyCli, ListWithoutAnAppliedConfigSaysSo) {
  TempDir dir;
  Ran list = edgeplane(dir, "apikey list --state-dir " + (dir.path() / "none").string());
  EXPECT_EQ(list.status, 0);
  EXPECT_TRUE(has(list.out, "No applied config on this host")) << list.out;
  Ran json = edgeplane(dir, "apikey list --json --state-dir " + (dir.path() / "none").string());
  EXPECT_EQ(json.out, "[]\n");
}

TEST(ApiKeyStanza, AnAdminKeyWithoutGatewaysHasNoGatewaysLine) {
  EXPECT_EQ(apiKeyStanza("a\\b", "abcd", std::string(64, 'f'), {}, {}, "admin"),
            "[[api_key]]\nname = \"a\\\\b\"\nid = \"abcd\"\nsha256 = \"" + std::string(64, 'f') +
                "\"\nrole = \"admin\"\nenabled = true\n");
}

}  // namespace
}  // namespace edgeplane::cli
