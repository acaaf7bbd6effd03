// The host-local agent file (/etc/edgeplane/agent.toml, never in Git): which repository, ref
// and config root this host pulls, who it is, where its state lives, and how often it runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "schema/diagnostic.h"
#include "schema/model.h"
#include "schema/net.h"

namespace edgeplane {

inline constexpr std::string_view kDefaultAgentFile = "/etc/edgeplane/agent.toml";
inline constexpr std::string_view kDefaultStateDir = "/var/lib/edgeplane";

// [source] fetch_max_size when the agent file does not say (and for --source runs).
inline constexpr std::uint64_t kDefaultFetchMaxSize = std::uint64_t{512} << 20;

struct AgentSource {
  // A local path, file://, https:// or ssh:// (also scp-like user@host:path). A relative local
  // path is anchored at the agent file's directory; git:// and http:// are refused (neither
  // authenticated nor encrypted).
  std::string url;
  // A branch, a tag or a full 40-hex commit id ("refs/heads/X" or "refs/tags/X" when a name is
  // both), checked with git's ref-name rules.
  std::string ref = "main";
  // The config root inside the repository; "" is the repository's top.
  std::string path;
  // ssh:// (or scp-like) only, else an error: the deploy key; without it the SSH agent is asked.
  std::optional<std::string> ssh_key;
  // An OpenSSH allowed_signers file. Set: every commit applied must carry a valid SSH
  // signature (namespace "git") by a key listed there.
  std::optional<std::string> allowed_signers;
  // How long one fetch may take before the run gives up on it (retryable).
  Duration fetch_timeout{60000};
  // The most bytes one fetch may receive (packs as sent); more aborts the fetch and the
  // cache stays as it was. An integer, at least 1 MiB; default 512 MiB.
  std::uint64_t fetch_max_size = kDefaultFetchMaxSize;
  // The anti-rollback override, set for the time of a deliberate rollback: a commit that does
  // not descend from the last applied one (or is dated before it) is applied, and the run is
  // recorded as a rollback. Default false: such a commit is refused.
  bool allow_rollback = false;
};

struct AgentWebhook {
  // A loopback address:port ("127.0.0.1:9180", "[::1]:9180"); anything else is an error.
  Endpoint listen;
  // A file (0600) holding the HMAC-SHA256 shared secret; its text, trailing newline removed.
  std::string secret_file;
};

struct AgentConfig {
  // Default: this machine's hostname, verbatim (unchecked). Given: lower-case letters, digits
  // and inner hyphens, like a [[host]] name. origin.isLoaded("host") tells which.
  std::string host;
  std::string state_dir{kDefaultStateDir};  // default: /var/lib/edgeplane
  AgentSource source;                       // [source], required
  // [reconcile] interval (default 5m, at least 1s) and jitter (default 30s; each run moves by
  // up to ± this; "0s" allowed; shorter than the interval).
  Duration interval{300000};
  Duration jitter{30000};
  std::string wireguard_backend = "auto";  // [wireguard] backend: auto|kernel|userspace
  // [proxy] admin: "unix:/absolute/path" or a loopback "ADDR:PORT" ("[::1]:PORT"). Always set
  // after loading: when [proxy] is absent it is "unix:<state_dir>/proxy/admin.sock".
  std::optional<std::string> proxy_admin;
  // [proxy] admin_token_file: the proxy's --admin-token-file (0600), sent as
  // `Authorization: Bearer` when admin is a TCP address.
  std::optional<std::string> proxy_admin_token_file;
  std::optional<AgentWebhook> webhook;  // [webhook], optional; set only when it loaded clean
  // Top-level `metrics`: where the agent serves Prometheus text (GET /metrics) and GET
  // /healthz: a loopback "ADDR:PORT" ("127.0.0.1:9102", "[::1]:9102") or "unix:/path". Unset:
  // no metrics endpoint. A change takes effect on SIGHUP.
  std::optional<std::string> metrics;
  // origin.table is the file; origin.fields holds "host", "state_dir", and "TABLE.KEY" for the
  // tables' keys ("source.url", "source.allowed_signers", "reconcile.interval",
  // "webhook.secret_file", ...), so a later check (a missing key file) can point at its line.
  Origin origin;
};

// Reads and checks an agent file; every problem goes to `diags` as file:line:col, like the
// desired state's. Unknown keys, wrong types, malformed durations/addresses, a missing
// [source] url, a non-loopback webhook, admin or metrics TCP address, interval < 1s or jitter >=
// interval are errors. Relative paths (allowed_signers, ssh_key, secret_file, a local source
// url, state_dir, a unix: admin socket) are taken relative to the agent file's directory;
// every path in the result is absolute (lexically normalised) when the file's path is. The
// files named are not opened here: whoever uses them reports a missing or unreadable one.
// [source] path comes back normalised ("./config/" is "config", "." is "").
AgentConfig loadAgentConfig(const std::filesystem::path& file, Diagnostics& diags);

// The same, from text already in memory (tests, fuzzing); `baseDir` anchors relative paths.
AgentConfig loadAgentConfigText(std::string_view text, const std::string& displayName,
                                const std::filesystem::path& baseDir, Diagnostics& diags);

}  // namespace edgeplane
