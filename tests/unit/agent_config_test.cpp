// Agent file tests: /etc/edgeplane/agent.toml -> AgentConfig, every rule's error at file:line:col.
#include "schema/agent_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace edgeplane {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// As if the file were /etc/edgeplane/agent.toml: relative paths resolve against /etc/edgeplane.
AgentConfig load(std::string_view toml, Diagnostics& diags) {
  return loadAgentConfigText(toml, "agent.toml", "/etc/edgeplane", diags);
}

// What `edgeplane agent` would print for this file: every diagnostic, sorted.
std::string check(std::string_view toml) {
  Diagnostics diags;
  load(toml, diags);
  return diags.format();
}

AgentConfig loadClean(std::string_view toml) {
  Diagnostics diags;
  AgentConfig c = load(toml, diags);
  EXPECT_EQ(diags.format(), "");
  return c;
}

std::string machineHostname() {
  char name[256] = {};
  EXPECT_EQ(::gethostname(name, sizeof(name) - 1), 0);
  return name;
}

Endpoint endpoint(std::string_view s) {
  auto e = Endpoint::parse(s);
  EXPECT_TRUE(e.has_value()) << s;
  return e.value_or(Endpoint{});
}

// The minimal valid file the error cases add to: [source] with its url, on lines 1-2.
constexpr std::string_view kSource = R"([source]
url = "ssh://git@git.example.com/ops/edge-config.git"
)";

std::string withSource(std::string_view rest) {
  return std::string(kSource) + std::string(rest);
}

// ---------------------------------------------------------------------------------------------
// Valid files.

TEST(AgentConfig, EveryField) {
  AgentConfig c = loadClean(R"(host = "edge-1"
state_dir = "/var/lib/edgeplane"
[source]
url = "ssh://git@git.example.com/ops/edge-config.git"
ref = "main"
path = "config"
ssh_key = "/etc/edgeplane/deploy_key"
allowed_signers = "/etc/edgeplane/allowed_signers"
fetch_timeout = "60s"
[reconcile]
interval = "5m"
jitter = "30s"
[wireguard]
backend = "userspace"
[proxy]
admin = "127.0.0.1:9190"
admin_token_file = "proxy-admin.token"
[webhook]
listen = "127.0.0.1:9180"
secret_file = "/etc/edgeplane/webhook.secret"
)");
  EXPECT_EQ(c.host, "edge-1");
  EXPECT_EQ(c.state_dir, "/var/lib/edgeplane");
  EXPECT_EQ(c.source.url, "ssh://git@git.example.com/ops/edge-config.git");
  EXPECT_EQ(c.source.ref, "main");
  EXPECT_EQ(c.source.path, "config");
  EXPECT_EQ(c.source.ssh_key, "/etc/edgeplane/deploy_key");
  EXPECT_EQ(c.source.allowed_signers, "/etc/edgeplane/allowed_signers");
  EXPECT_EQ(c.source.fetch_timeout, milliseconds(60000));
  EXPECT_EQ(c.source.fetch_max_size, kDefaultFetchMaxSize);
  EXPECT_EQ(c.interval, milliseconds(300000));
  EXPECT_EQ(c.jitter, milliseconds(30000));
  EXPECT_EQ(c.wireguard_backend, "userspace");
  EXPECT_EQ(c.proxy_admin, "127.0.0.1:9190");
  EXPECT_EQ(c.proxy_admin_token_file, "/etc/edgeplane/proxy-admin.token");
  ASSERT_TRUE(c.webhook.has_value());
  EXPECT_EQ(c.webhook->listen, endpoint("127.0.0.1:9180"));
  EXPECT_EQ(c.webhook->secret_file, "/etc/edgeplane/webhook.secret");
  // Locations for later checks (a signers file that is missing, say).
  EXPECT_TRUE(c.origin.isLoaded("host"));
  EXPECT_EQ(c.origin.at("source.allowed_signers"), (SourceLoc{"agent.toml", 8, 19}));
  EXPECT_EQ(c.origin.at("webhook.secret_file"), (SourceLoc{"agent.toml", 20, 15}));
  EXPECT_EQ(c.origin.at("proxy.admin_token_file"), (SourceLoc{"agent.toml", 17, 20}));
  EXPECT_EQ(c.origin.at("reconcile.interval"), (SourceLoc{"agent.toml", 11, 12}));
}

TEST(AgentConfig, Defaults) {
  AgentConfig c = loadClean(kSource);
  EXPECT_EQ(c.host, machineHostname());
  EXPECT_FALSE(c.origin.isLoaded("host"));
  EXPECT_EQ(c.state_dir, "/var/lib/edgeplane");
  EXPECT_EQ(c.source.ref, "main");
  EXPECT_EQ(c.source.path, "");
  EXPECT_FALSE(c.source.ssh_key.has_value());
  EXPECT_FALSE(c.source.allowed_signers.has_value());
  EXPECT_EQ(c.source.fetch_timeout, milliseconds(60000));
  EXPECT_FALSE(c.source.allow_rollback);
  EXPECT_EQ(c.interval, milliseconds(300000));
  EXPECT_EQ(c.jitter, milliseconds(30000));
  EXPECT_EQ(c.wireguard_backend, "auto");
  EXPECT_EQ(c.proxy_admin, "unix:/var/lib/edgeplane/proxy/admin.sock");
  EXPECT_FALSE(c.webhook.has_value());
}

// The anti-rollback override, for the time of a rollback; a boolean only.
TEST(AgentConfig, AllowRollback) {
  EXPECT_TRUE(loadClean(withSource("allow_rollback = true\n")).source.allow_rollback);
  EXPECT_FALSE(loadClean(withSource("allow_rollback = false\n")).source.allow_rollback);
  EXPECT_EQ(check(withSource("allow_rollback = \"yes\"\n")),
            "agent.toml:3:18: error: 'allow_rollback' must be a boolean, not a string\n");
}

TEST(AgentConfig, ProxyAdminDefaultFollowsTheStateDir) {
  AgentConfig c = loadClean(R"(state_dir = "/srv/edgeplane"
[source]
url = "/srv/git/edge-config.git"
)");
  EXPECT_EQ(c.proxy_admin, "unix:/srv/edgeplane/proxy/admin.sock");
}

TEST(AgentConfig, RelativePathsResolveAgainstTheFilesDirectory) {
  AgentConfig c = loadClean(R"(state_dir = "../../var/lib/ep"
[source]
url = "repos/edge-config.git"
allowed_signers = "./signers/allowed"
[proxy]
admin = "unix:admin.sock"
[webhook]
listen = "[::1]:9180"
secret_file = "webhook.secret"
)");
  EXPECT_EQ(c.state_dir, "/var/lib/ep");
  EXPECT_EQ(c.source.url, "/etc/edgeplane/repos/edge-config.git");
  EXPECT_EQ(c.source.allowed_signers, "/etc/edgeplane/signers/allowed");
  EXPECT_EQ(c.proxy_admin, "unix:/etc/edgeplane/admin.sock");
  ASSERT_TRUE(c.webhook.has_value());
  EXPECT_EQ(c.webhook->listen, endpoint("[::1]:9180"));
  EXPECT_EQ(c.webhook->secret_file, "/etc/edgeplane/webhook.secret");
}

TEST(AgentConfig, SshKeyIsAPathToo) {
  AgentConfig c = loadClean(R"([source]
url = "git@git.example.com:ops/edge-config.git"
ssh_key = "keys/deploy"
)");
  EXPECT_EQ(c.source.url, "git@git.example.com:ops/edge-config.git");  // scp-like: kept
  EXPECT_EQ(c.source.ssh_key, "/etc/edgeplane/keys/deploy");
}

TEST(AgentConfig, UrlsThatAreKeptAsGiven) {
  for (std::string_view url :
       {"https://git.example.com/ops/edge-config.git", "file:///srv/git/edge-config.git",
        "ssh://git@host:2222/x.git", "/srv/git/edge-config.git"}) {
    AgentConfig c = loadClean("[source]\nurl = \"" + std::string(url) + "\"\n");
    EXPECT_EQ(c.source.url, url);
  }
}

TEST(AgentConfig, RefsThatAreAccepted) {
  for (std::string_view ref : {"main", "release/2024-11", "v1.2.3", "refs/heads/main",
                               "refs/tags/v1", "0123456789abcdef0123456789ABCDEF01234567"}) {
    AgentConfig c = loadClean(withSource("ref = \"" + std::string(ref) + "\"\n"));
    EXPECT_EQ(c.source.ref, ref);
  }
}

TEST(AgentConfig, PathIsNormalised) {
  EXPECT_EQ(loadClean(withSource("path = \"./config//edge/\"\n")).source.path, "config/edge");
  EXPECT_EQ(loadClean(withSource("path = \".\"\n")).source.path, "");
}

TEST(AgentConfig, ZeroJitterIsAllowed) {
  AgentConfig c = loadClean(withSource("[reconcile]\ninterval = \"1s\"\njitter = \"0s\"\n"));
  EXPECT_EQ(c.interval, milliseconds(1000));
  EXPECT_EQ(c.jitter, milliseconds(0));
}

TEST(AgentConfig, LoadsFromAFileAndAnchorsPathsThere) {
  std::string pattern = (fs::temp_directory_path() / "edgeplane-agent-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const fs::path dir = pattern;
  {
    std::ofstream out(dir / "agent.toml");
    out << "[source]\nurl = \"edge-config.git\"\nallowed_signers = \"signers\"\n";
  }
  Diagnostics diags;
  AgentConfig c = loadAgentConfig(dir / "agent.toml", diags);
  EXPECT_EQ(diags.format(), "");
  EXPECT_EQ(c.source.url, (dir / "edge-config.git").string());
  EXPECT_EQ(c.source.allowed_signers, (dir / "signers").string());

  Diagnostics missing;
  loadAgentConfig(dir / "absent.toml", missing);
  EXPECT_EQ(missing.format(),
            (dir / "absent.toml").string() + ": error: the agent file does not exist\n");

  std::ofstream(dir / "empty.toml").close();
  Diagnostics empty;
  loadAgentConfig(dir / "empty.toml", empty);
  EXPECT_EQ(empty.format(), (dir / "empty.toml").string() +
                                ":1:1: error: the agent file has no [source] table; it needs at "
                                "least [source] url\n");

  Diagnostics unreadable;
  loadAgentConfig(dir, unreadable);
  EXPECT_EQ(unreadable.format(), dir.string() + ": error: the agent file is a directory\n");
  fs::remove_all(dir);
}

// The committed example must stay valid: it is what operators copy.
TEST(AgentConfig, ExampleFileLoadsClean) {
  const fs::path file = fs::path(EDGEPLANE_EXAMPLES_DIR) / "agent.toml";
  Diagnostics diags;
  AgentConfig c = loadAgentConfig(file, diags);
  EXPECT_EQ(diags.format(), "");
  EXPECT_EQ(c.host, "edge-1");
  EXPECT_EQ(c.source.ref, "main");
  EXPECT_EQ(c.source.path, "config");  // where tools/demo commits examples/demo
  EXPECT_TRUE(c.source.allowed_signers.has_value());
  EXPECT_FALSE(c.source.allow_rollback);  // documented there, left off
  EXPECT_TRUE(c.origin.isLoaded("source.allow_rollback"));
  EXPECT_TRUE(c.webhook.has_value());
  EXPECT_EQ(c.proxy_admin, "unix:/var/lib/edgeplane/proxy/admin.sock");
}

// ---------------------------------------------------------------------------------------------
// Errors: one rule per test, exact text and position.

TEST(AgentConfig, SyntaxError) {
  EXPECT_EQ(check("[source\nurl = \"x\"\n"),
            "agent.toml:1:8: error: Error while parsing table header: expected ']', saw '\\n'\n");
}

TEST(AgentConfig, NonAsciiOutsideAString) {
  EXPECT_EQ(check(withSource("ré = 1\n")),
            "agent.toml:3:2: error: non-ASCII character outside a string or comment\n");
}

TEST(AgentConfig, MissingSource) {
  EXPECT_EQ(check("host = \"edge-1\"\n"),
            "agent.toml:1:1: error: the agent file has no [source] table; it needs at least "
            "[source] url\n");
}

TEST(AgentConfig, MissingUrl) {
  EXPECT_EQ(check("[source]\nref = \"main\"\n"),
            "agent.toml:1:1: error: [source] is missing required key 'url'\n");
}

TEST(AgentConfig, EmptyUrl) {
  EXPECT_EQ(check("[source]\nurl = \"\"\n"), "agent.toml:2:7: error: 'url' must not be empty\n");
}

TEST(AgentConfig, UnknownKeysWithSuggestions) {
  EXPECT_EQ(check(R"(stat_dir = "/x"
[source]
url = "/srv/git/x.git"
refs = "main"
[reconcile]
intervall = "5m"
[wireguard]
mode = "kernel"
)"),
            "agent.toml:1:1: error: unknown key 'stat_dir' in the top level; did you mean "
            "'state_dir'?\n"
            "agent.toml:4:1: error: unknown key 'refs' in [source]; did you mean 'ref'?\n"
            "agent.toml:6:1: error: unknown key 'intervall' in [reconcile]; did you mean "
            "'interval'?\n"
            "agent.toml:8:1: error: unknown key 'mode' in [wireguard]\n");
}

TEST(AgentConfig, MisspeltTableIsOneError) {
  // Not also "no [source]": the suggestion is the one error for the one mistake.
  EXPECT_EQ(check("[sources]\nurl = \"/srv/git/x.git\"\n"),
            "agent.toml:1:2: error: unknown key 'sources' in the top level; did you mean "
            "'source'?\n");
}

TEST(AgentConfig, MisspeltUrlIsOneError) {
  EXPECT_EQ(check("[source]\nurll = \"/srv/git/x.git\"\n"),
            "agent.toml:2:1: error: unknown key 'urll' in [source]; did you mean 'url'?\n");
}

TEST(AgentConfig, WrongTypes) {
  EXPECT_EQ(check(R"(host = 1
state_dir = ["/x"]
[source]
url = "/srv/git/x.git"
fetch_timeout = 60
[reconcile]
interval = 300
[webhook]
listen = 9180
secret_file = "/etc/edgeplane/webhook.secret"
)"),
            "agent.toml:1:8: error: 'host' must be a string, not an integer\n"
            "agent.toml:2:13: error: 'state_dir' must be a string, not an array\n"
            "agent.toml:5:17: error: 'fetch_timeout' must be a string, not an integer\n"
            "agent.toml:7:12: error: 'interval' must be a string, not an integer\n"
            "agent.toml:9:10: error: 'listen' must be a string, not an integer\n");
}

TEST(AgentConfig, TablesMustBeTables) {
  EXPECT_EQ(check("proxy = \"127.0.0.1:9190\"\n" + std::string(kSource)),
            "agent.toml:1:9: error: 'proxy' must be a table, not a string\n");
}

TEST(AgentConfig, SourceAsArrayOfTables) {
  EXPECT_EQ(check("[[source]]\nurl = \"/srv/git/x.git\"\n"),
            "agent.toml:1:1: error: 'source' must be a table, not an array\n");
}

TEST(AgentConfig, MalformedDurations) {
  EXPECT_EQ(check(withSource(R"(fetch_timeout = "60"
[reconcile]
interval = "5 minutes"
jitter = "-1s"
)")),
            "agent.toml:3:17: error: invalid duration \"60\" in 'fetch_timeout' (like 5s, 1.5s, "
            "500ms, 2m or 1h30m)\n"
            "agent.toml:5:12: error: invalid duration \"5 minutes\" in 'interval' (like 5s, 1.5s, "
            "500ms, 2m or 1h30m)\n"
            "agent.toml:6:10: error: invalid duration \"-1s\" in 'jitter' (like 5s, 1.5s, 500ms, "
            "2m or 1h30m)\n");
}

TEST(AgentConfig, FetchMaxSize) {
  EXPECT_EQ(loadClean(withSource("fetch_max_size = 1048576\n")).source.fetch_max_size, 1048576u);
  EXPECT_EQ(check(withSource("fetch_max_size = 1000\n")),
            "agent.toml:3:18: error: 'fetch_max_size' must be between 1048576 and "
            "1099511627776, got 1000\n");
  EXPECT_EQ(check(withSource("fetch_max_size = \"512MiB\"\n")),
            "agent.toml:3:18: error: 'fetch_max_size' must be an integer, not a string\n");
}

TEST(AgentConfig, IntervalAtLeastOneSecond) {
  EXPECT_EQ(check(withSource("[reconcile]\ninterval = \"500ms\"\njitter = \"0s\"\n")),
            "agent.toml:4:12: error: reconcile interval 500ms is shorter than the minimum, 1s\n");
}

TEST(AgentConfig, JitterShorterThanInterval) {
  EXPECT_EQ(check(withSource("[reconcile]\ninterval = \"30s\"\njitter = \"30s\"\n")),
            "agent.toml:5:10: error: reconcile jitter 30s must be shorter than the interval, "
            "30s\n");
  // The default jitter (30s) against a short interval: pointed at the interval.
  EXPECT_EQ(check(withSource("[reconcile]\ninterval = \"20s\"\n")),
            "agent.toml:4:12: error: reconcile jitter 30s (the default) must be shorter than "
            "the interval, 20s\n");
}

TEST(AgentConfig, BadRefs) {
  EXPECT_EQ(check(withSource(R"(ref = "feature..x"
)")),
            "agent.toml:3:7: error: 'ref' \"feature..x\" is not a valid branch or tag name, nor "
            "a full 40-hex commit id\n");
  EXPECT_EQ(check(withSource("ref = \"refs/pull/1/head\"\n")),
            "agent.toml:3:7: error: 'ref' \"refs/pull/1/head\" is neither a branch "
            "(refs/heads/...) nor a tag (refs/tags/...)\n");
  for (std::string_view bad : {"main.lock", "a b", "-x:y", ".hidden", "x/", "a@{1}",
                               "refs/heads/a..b", "x^", "x~1", "x?", "x*", "x[1]", "x\\\\y"}) {
    const std::string out = check(withSource("ref = \"" + std::string(bad) + "\"\n"));
    EXPECT_NE(out.find("agent.toml:3:7: error: 'ref' "), std::string::npos) << bad << ": " << out;
  }
}

TEST(AgentConfig, BadPaths) {
  EXPECT_EQ(check(withSource("path = \"/config\"\n")),
            "agent.toml:3:8: error: 'path' \"/config\" must be relative to the repository's "
            "top, not absolute\n");
  EXPECT_EQ(check(withSource("path = \"config/../../etc\"\n")),
            "agent.toml:3:8: error: 'path' \"config/../../etc\" must not contain \"..\"\n");
}

TEST(AgentConfig, UnsupportedUrlSchemes) {
  EXPECT_EQ(check("[source]\nurl = \"git://git.example.com/x.git\"\n"),
            "agent.toml:2:7: error: unsupported url scheme \"git\" in "
            "\"git://git.example.com/x.git\"; use a local path, file://, https:// or ssh://\n");
  EXPECT_EQ(check("[source]\nurl = \"http://git.example.com/x.git\"\n"),
            "agent.toml:2:7: error: unsupported url scheme \"http\" in "
            "\"http://git.example.com/x.git\"; use a local path, file://, https:// or ssh://\n");
}

TEST(AgentConfig, SshKeyNeedsAnSshUrl) {
  EXPECT_EQ(check("[source]\nurl = \"https://git.example.com/x.git\"\nssh_key = \"k\"\n"),
            "agent.toml:3:11: error: 'ssh_key' is only used with an ssh:// or scp-like "
            "(user@host:path) url, and 'url' is \"https://git.example.com/x.git\"\n");
}

// The url's password never reaches a diagnostic (they go to the terminal and the journal).
TEST(AgentConfig, UrlErrorsDoNotShowItsPassword) {
  EXPECT_EQ(check("[source]\nurl = \"http://deploy:s3cr3t@git.example.com/x.git\"\n"),
            "agent.toml:2:7: error: unsupported url scheme \"http\" in "
            "\"http://deploy:***@git.example.com/x.git\"; use a local path, file://, https:// or "
            "ssh://\n");
  EXPECT_EQ(check("[source]\nurl = \"https://deploy:s3cr3t@git.example.com/x.git\"\nssh_key = "
                  "\"k\"\n"),
            "agent.toml:3:11: error: 'ssh_key' is only used with an ssh:// or scp-like "
            "(user@host:path) url, and 'url' is \"https://deploy:***@git.example.com/x.git\"\n");
}

// The agent file is screened like the config: a key of thousands of dotted parts is an error,
// not a stack overflow in toml++.
TEST(AgentConfig, DeeplyDottedKeysAreAnError) {
  std::string parts = "a";
  for (int i = 0; i < 200000; ++i) {
    parts += ".a";
  }
  EXPECT_EQ(check("[" + parts + "]\n"),
            "agent.toml:1:1: error: more than 128 dots outside strings on one line: keys nested "
            "deeper than this config allows\n");
}

TEST(AgentConfig, BadHostName) {
  EXPECT_EQ(check(withSource("")).empty(), true);
  EXPECT_EQ(check("host = \"Edge_1\"\n" + std::string(kSource)),
            "agent.toml:1:8: error: host name \"Edge_1\" must be lower-case letters, digits and "
            "inner hyphens (at most 64)\n");
}

TEST(AgentConfig, EmptyStrings) {
  EXPECT_EQ(check("state_dir = \"\"\n" + std::string(kSource) +
                  "allowed_signers = \"\"\n[webhook]\nlisten = \"127.0.0.1:1\"\nsecret_file = "
                  "\"\"\n"),
            "agent.toml:1:13: error: 'state_dir' must not be empty\n"
            "agent.toml:4:19: error: 'allowed_signers' must not be empty\n"
            "agent.toml:7:15: error: 'secret_file' must not be empty\n");
}

TEST(AgentConfig, BadBackend) {
  EXPECT_EQ(check(withSource("[wireguard]\nbackend = \"wireguard-go\"\n")),
            "agent.toml:4:11: error: 'backend' must be one of auto | kernel | userspace, got "
            "\"wireguard-go\"\n");
}

TEST(AgentConfig, AdminAddresses) {
  EXPECT_EQ(check(withSource("[proxy]\nadmin = \"0.0.0.0:9190\"\n")),
            "agent.toml:4:9: error: 'admin' \"0.0.0.0:9190\" is not a loopback address "
            "(127.0.0.0/8 or [::1]); it must not be reachable from the network\n");
  EXPECT_EQ(check(withSource("[proxy]\nadmin = \"localhost:9190\"\n")),
            "agent.toml:4:9: error: invalid address \"localhost:9190\" in 'admin' (want "
            "\"unix:/path\" or a loopback ADDR:PORT)\n");
  EXPECT_EQ(check(withSource("[proxy]\nadmin = \"unix:\"\n")),
            "agent.toml:4:9: error: 'admin' \"unix:\" names no socket path\n");
  const std::string longPath = "/" + std::string(110, 'a');
  EXPECT_EQ(check(withSource("[proxy]\nadmin = \"unix:" + longPath + "\"\n")),
            "agent.toml:4:9: error: 'admin' socket path \"" + longPath +
                "\" is longer than 107 bytes, too long for a unix socket\n");
  EXPECT_EQ(loadClean(withSource("[proxy]\nadmin = \"127.8.9.10:9190\"\n")).proxy_admin,
            "127.8.9.10:9190");
}

// The agent's metrics endpoint: loopback TCP or a unix socket (a relative path anchored at the
// agent file's directory); anything the network reaches is refused where it is written.
TEST(AgentConfig, MetricsAddress) {
  EXPECT_FALSE(loadClean(withSource("")).metrics.has_value());
  EXPECT_EQ(loadClean("metrics = \"127.0.0.1:9102\"\n" + withSource("")).metrics, "127.0.0.1:9102");
  EXPECT_EQ(loadClean("metrics = \"[::1]:9102\"\n" + withSource("")).metrics, "[::1]:9102");
  EXPECT_EQ(loadClean("metrics = \"unix:run/metrics.sock\"\n" + withSource("")).metrics,
            "unix:/etc/edgeplane/run/metrics.sock");
  EXPECT_EQ(check("metrics = \"0.0.0.0:9102\"\n" + withSource("")),
            "agent.toml:1:11: error: 'metrics' \"0.0.0.0:9102\" is not a loopback address "
            "(127.0.0.0/8 or [::1]); it must not be reachable from the network\n");
  EXPECT_EQ(check("metrics = \"[2001:db8::1]:9102\"\n" + withSource("")),
            "agent.toml:1:11: error: 'metrics' \"[2001:db8::1]:9102\" is not a loopback address "
            "(127.0.0.0/8 or [::1]); it must not be reachable from the network\n");
  EXPECT_EQ(check("metrics = \"9102\"\n" + withSource("")),
            "agent.toml:1:11: error: invalid address \"9102\" in 'metrics' (want \"unix:/path\" "
            "or a loopback ADDR:PORT)\n");
  EXPECT_EQ(check("metrics = \"unix:\"\n" + withSource("")),
            "agent.toml:1:11: error: 'metrics' \"unix:\" names no socket path\n");
  EXPECT_EQ(check("metrics = 9102\n" + withSource("")).substr(0, 18), "agent.toml:1:11: e");
}

TEST(AgentConfig, WebhookRules) {
  EXPECT_EQ(check(withSource(R"([webhook]
listen = "192.0.2.1:9180"
secret_file = "/etc/edgeplane/webhook.secret"
)")),
            "agent.toml:4:10: error: 'listen' \"192.0.2.1:9180\" is not a loopback address "
            "(127.0.0.0/8 or [::1]); it must not be reachable from the network\n");
  EXPECT_EQ(check(withSource("[webhook]\nlisten = \"[::]:9180\"\nsecret_file = \"s\"\n")),
            "agent.toml:4:10: error: 'listen' \"[::]:9180\" is not a loopback address "
            "(127.0.0.0/8 or [::1]); it must not be reachable from the network\n");
  EXPECT_EQ(check(withSource("[webhook]\nlisten = \"127.0.0.1\"\nsecret_file = \"s\"\n")),
            "agent.toml:4:10: error: invalid address \"127.0.0.1\" in 'listen' (want a "
            "loopback ADDR:PORT)\n");
  EXPECT_EQ(check(withSource("[webhook]\n")),
            "agent.toml:3:1: error: [webhook] is missing required key 'listen'\n"
            "agent.toml:3:1: error: [webhook] is missing required key 'secret_file'\n");
  Diagnostics diags;
  AgentConfig c = load(withSource("[webhook]\nlisten = \"127.0.0.1:9180\"\n"), diags);
  EXPECT_FALSE(c.webhook.has_value());  // half a webhook is never handed on
}

// Everything wrong at once is reported at once, not just the first.
TEST(AgentConfig, AllErrorsCollected) {
  EXPECT_EQ(check(R"(host = "EDGE"
[source]
url = "git://x/y.git"
ref = "a..b"
path = "../up"
[reconcile]
interval = "0s"
[wireguard]
backend = "tun"
)"),
            "agent.toml:1:8: error: host name \"EDGE\" must be lower-case letters, digits and "
            "inner hyphens (at most 64)\n"
            "agent.toml:3:7: error: unsupported url scheme \"git\" in \"git://x/y.git\"; use a "
            "local path, file://, https:// or ssh://\n"
            "agent.toml:4:7: error: 'ref' \"a..b\" is not a valid branch or tag name, nor a full "
            "40-hex commit id\n"
            "agent.toml:5:8: error: 'path' \"../up\" must not contain \"..\"\n"
            "agent.toml:7:12: error: invalid duration \"0s\" in 'interval' (like 5s, 1.5s, 500ms, "
            "2m or 1h30m)\n"
            "agent.toml:9:11: error: 'backend' must be one of auto | kernel | userspace, got "
            "\"tun\"\n");
}

}  // namespace
}  // namespace edgeplane
