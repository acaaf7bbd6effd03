// The state store: one SQLite database per host (apply history, owned resources, proxy snapshots,
// API-key verifiers, usage, traffic).
#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "schema/model.h"
#include "schema/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace edgeplane {

// ---- apply history ----

enum class RunResult : uint8_t { Running, Ok, Partial, Failed, Refused };
enum class OpAction : uint8_t { Create, Update, Delete };

// The stored spelling: "running", "ok", ... / "create", "update", "delete".
std::string_view toString(RunResult r);
std::string_view toString(OpAction a);

struct RunStart {
  std::optional<std::string> commitId;   // unset for a plain --config directory
  std::string configSource;              // repository URL + ref, or the config directory
  int64_t startedAt = 0;                 // unix ms
  std::optional<std::string> author{};   // the commit's author, "Name <email>"
  std::optional<std::string> subject{};  // the commit message's first line
};

struct RunCounts {
  int64_t added = 0;
  int64_t changed = 0;
  int64_t destroyed = 0;
  int64_t failed = 0;
  auto operator<=>(const RunCounts&) const = default;
};

struct RunFinish {
  int64_t finishedAt = 0;  // unix ms
  RunResult result = RunResult::Ok;
  std::string summary;
  RunCounts counts;
  // Everything the summary line cannot hold: all diagnostics of a refused config, why a
  // commit or a fetch was refused. "" when there is nothing to add.
  std::string detail{};
};

struct ApplyRun {
  int64_t id = 0;
  std::optional<std::string> commitId;
  std::string configSource;
  int64_t startedAt = 0;
  std::optional<int64_t> finishedAt;  // unset while running (or if the run died)
  RunResult result = RunResult::Running;
  std::string summary;
  RunCounts counts;
  std::optional<std::string> author{};
  std::optional<std::string> subject{};
  std::string detail{};
};

// One plan operation's outcome. `seq` is the operation's position in the plan, unique per run.
struct OpOutcome {
  int64_t seq = 0;
  OpAction action = OpAction::Create;
  std::string kind;
  std::string name;
  bool ok = false;
  std::optional<std::string> error;
  auto operator<=>(const OpOutcome&) const = default;
};

// ---- owned resources, snapshots ----

struct OwnedResource {
  std::string kind;
  std::string name;
  std::string data;  // JSON, written and read by the reconciler
  int64_t updatedAt = 0;
  auto operator<=>(const OwnedResource&) const = default;
};

struct Snapshot {
  int64_t generation = 0;  // strictly increasing, never reused
  int64_t createdAt = 0;
  std::optional<int64_t> runId;
  std::string body;  // JSON
};

// ---- API keys, usage, traffic ----

struct ApiKeyRecord {
  std::string id;  // public id
  std::string name;
  std::string sha256;  // 64 hex digits: the verifier, never the key; stored lower-case
  std::vector<std::string> gateways;  // empty: every gateway (an admin key)
  std::string role;                   // "worker" | "admin"
  bool enabled = true;
  std::vector<std::string> endpoints{};  // paths; empty: every endpoint of its gateways
  auto operator<=>(const ApiKeyRecord&) const = default;
};

struct StoredApiKey : ApiKeyRecord {
  int64_t updatedAt = 0;  // when the record last changed (not when it was last synced)
  // When the id was first synced, and the commit that sync applied; never changed after.
  std::optional<std::string> firstSeenCommit;
  int64_t firstSeenAt = 0;
};

struct ApiKeyUsage {
  std::string keyId;
  int64_t requestCount = 0;
  std::optional<int64_t> lastUsedAt;
  std::optional<std::string> lastIp;
  std::array<int64_t, 5> responses{};  // by status class: [0] 1xx … [4] 5xx
  auto operator<=>(const ApiKeyUsage&) const = default;
};

// What the proxy counted for one key since its last flush.
struct UsageDelta {
  std::string keyId;
  int64_t requests = 0;
  int64_t lastUsedAt = 0;              // unix ms; 0: unknown (the stored value is kept)
  std::string lastIp;                  // "": unknown (the stored value is kept)
  std::array<int64_t, 5> responses{};  // by status class: [0] 1xx … [4] 5xx
};

// A key refused on this host whatever the config says (`edgeplane apikey block`).
struct ApiKeyBlock {
  std::string keyId;
  int64_t blockedAt = 0;  // unix ms
  auto operator<=>(const ApiKeyBlock&) const = default;
};

// A pending ACME HTTP-01 answer: GET /.well-known/acme-challenge/<token> on :80 returns
// keyAuthorization while the reconciler's order runs.
struct AcmeChallenge {
  std::string token;  // base64url, as the CA gave it
  std::string domain;
  std::string keyAuthorization;
  int64_t createdAt = 0;  // unix ms
  // http-01: served on :80 by token; tls-alpn-01: a certificate on :443 for `domain`;
  // dns-01: a TXT record _acme-challenge.<domain> on the proxy's --dns responder (`domain`
  // is the authorization's, a wildcard's base name).
  AcmeChallengeType type = AcmeChallengeType::Http01;
  auto operator<=>(const AcmeChallenge&) const = default;
};

// One ACME certificate's lifecycle on this host, kept by the reconciler's ACME step.
struct AcmeState {
  std::string name;  // the certificate's
  // What the failures were for, "<challenge> <domain>,<domain>…": a certificate whose
  // challenge or domains changed since is not held back by them.
  std::string spec;
  int64_t failures = 0;   // consecutive failed orders; 0 after a success
  std::string lastError;  // the CA's problem ("urn:…:type: detail") or the local reason
  std::optional<int64_t> lastAttempt;  // unix ms of the last order
  std::optional<int64_t> nextAttempt;  // unix ms: no order before (the backoff); unset: none
  std::optional<int64_t> renewAt;      // unix ms: the certificate in place is due for renewal
  // RFC 9773 (ARI): the CA's suggested renewal window for the certificate in place, the time
  // chosen in it, and when the CA is asked again. Only for the certificate whose fingerprint
  // is ariCert ("": no window; another certificate's window is void).
  // Initialized here, so that a state built from the fields above alone has no window.
  std::string ariCert = {};
  std::optional<int64_t> ariStart = {};      // unix ms
  std::optional<int64_t> ariEnd = {};        // unix ms
  std::optional<int64_t> ariRenewAt = {};    // unix ms, in [ariStart, ariEnd)
  std::optional<int64_t> ariNextCheck = {};  // unix ms: no renewalInfo request before
  std::string ariExplanation = {};           // the CA's explanationURL; "" when none
  auto operator<=>(const AcmeState&) const = default;
};

struct TrafficSample {
  std::string route;
  int64_t at = 0;  // unix ms
  int64_t bytesIn = 0;
  int64_t bytesOut = 0;
  int64_t connections = 0;
  auto operator<=>(const TrafficSample&) const = default;
};

// Creates the state directory owner-only (0700) if missing. An existing one must be a
// directory owned by the effective user and not writable by group or others: whoever can
// write there can swap the store, the keys or the lock. Errors name the path and what is wrong.
Result<void> ensureStateDir(std::filesystem::path dir);

struct StoreOptions {
  std::chrono::milliseconds busyTimeout{5000};
  int snapshotsKept = 20;  // proxy snapshots retained; older generations are pruned
  // The database's name in the directory: the reconciler's state.db, or the proxy's own
  // counters (proxy_feed.h), which has the same schema and uses only the usage and traffic.
  std::string fileName = "state.db";
};

// One connection to <stateDir>/state.db (or StoreOptions::fileName). Not thread-safe: each thread
// (and each process — the reconciler and the proxy) opens its own Store; SQLite's WAL mode lets
// readers and one writer proceed concurrently across them. Every method returns a Result;
// SQLITE_BUSY and SQLITE_LOCKED errors are retryable, everything else is terminal. Times are unix
// milliseconds passed in by the caller: the store reads no clock.
class Store {
 public:
  // Creates stateDir (0700) and the database (0600) if missing, enables WAL and foreign keys and
  // applies pending schema migrations. A store written by a newer edgeplane is refused.
  static Result<std::unique_ptr<Store>> open(const std::filesystem::path& stateDir,
                                             const StoreOptions& options = {});

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  Store(Store&&) = delete;
  Store& operator=(Store&&) = delete;

  int schemaVersion() const { return schemaVersion_; }
  static int knownSchemaVersion();
  const std::filesystem::path& path() const { return path_; }

  // Runs `body` (a callable returning Result<T>) in one transaction: committed when it returns
  // a value, rolled back when it returns an Error (which is passed through). Nests: an inner
  // transaction is a savepoint, so its failure undoes only its own writes.
  template <typename F>
  requires std::invocable<F&> std::invoke_result_t<F&> transaction(F&& body);

  // Makes every transaction committed so far, by any connection, durable now: one sync of the
  // WAL. Closing does it for what the connection itself changed beyond history (~Store); this is
  // for what another left, e.g. a process killed before its close.
  Result<void> syncWal();
  // What closing does, now, so that its failure can be told: one sync of the WAL if this
  // connection changed more than history since it opened or last synced. An error means what it
  // committed may not survive a crash or power loss (the disk refused to sync).
  Result<void> syncChanges();

  // Apply history.
  Result<int64_t> beginRun(const RunStart& start);
  Result<void> recordOp(int64_t runId, const OpOutcome& op);
  // recordOp for each of `ops`, several rows to a statement (an apply of 10k forwards has 10k).
  Result<void> recordOps(int64_t runId, std::span<const OpOutcome> ops);
  Result<void> finishRun(int64_t runId, const RunFinish& finish);
  Result<std::vector<ApplyRun>> recentRuns(int limit) const;  // newest first
  Result<std::optional<ApplyRun>> run(int64_t runId) const;   // nullopt: no such run
  // The newest run that applied a commit from Git (result ok or partial): the state the host
  // was last converged to on purpose. nullopt when no commit was ever applied.
  Result<std::optional<ApplyRun>> lastGoodCommitRun() const;
  Result<std::vector<OpOutcome>> runOps(int64_t runId) const;  // by seq

  // Resources edgeplane owns, and stable allocations, keyed by (kind, name).
  Result<void> putOwned(std::string_view kind, std::string_view name, std::string_view dataJson,
                        int64_t at);
  // putOwned for each of `rows`, several to a statement.
  Result<void> putOwnedRows(std::span<const OwnedResource> rows);
  Result<void> removeOwned(std::string_view kind, std::string_view name);  // absent is fine
  Result<std::vector<OwnedResource>> listOwned(std::optional<std::string> kind) const;
  Result<std::optional<OwnedResource>> getOwned(std::string_view kind, std::string_view name) const;

  // Proxy snapshots. writeSnapshot returns the new generation and prunes old ones.
  Result<int64_t> writeSnapshot(std::string_view bodyJson, int64_t at,
                                std::optional<int64_t> runId);
  Result<std::optional<Snapshot>> latestSnapshot() const;
  Result<int64_t> latestGeneration() const;  // 0 when there is none

  // API-key verifiers: after syncApiKeys the table equals `keys` (sorted by id when listed).
  // A newly inserted id records `at` and `commit` as first seen; later syncs keep them.
  // Usage of kept keys is untouched; usage of ids no longer configured is deleted.
  Result<void> syncApiKeys(const std::vector<ApiKeyRecord>& keys, int64_t at,
                           std::optional<std::string> commit = std::nullopt);
  Result<std::vector<StoredApiKey>> listApiKeys() const;
  // Adds the proxy's counts in one transaction, also for ids api_keys does not know (yet):
  // counts add up, last_used_at is the newest, last_ip comes with the newest last_used_at.
  // Returns how many deltas were recorded (all of them, or an error and none).
  Result<int64_t> addUsageBatch(const std::vector<UsageDelta>& deltas);
  Result<std::optional<ApiKeyUsage>> usage(std::string_view keyId) const;
  Result<std::vector<ApiKeyUsage>> listUsage() const;  // by key id

  // Blocks: kept across restarts and syncs, whatever the config says. The id must be 4 to 64
  // of [A-Za-z0-9_-]. block: false when it was blocked already; unblock: false when not.
  Result<bool> blockApiKey(std::string_view keyId, int64_t at);
  Result<bool> unblockApiKey(std::string_view keyId);
  Result<std::vector<ApiKeyBlock>> listApiKeyBlocks() const;  // by key id

  // ACME HTTP-01 answers (store_acme.cpp): put replaces a token's answer; remove deletes the
  // given tokens (absent ones are no error); list is by token.
  Result<void> putAcmeChallenge(const AcmeChallenge& challenge);
  Result<void> removeAcmeChallenges(const std::vector<std::string>& tokens);
  Result<std::vector<AcmeChallenge>> listAcmeChallenges() const;
  // ACME lifecycle state (store_acme.cpp): put replaces a certificate's row; retain deletes
  // the rows of every certificate not in `names`; list is by name.
  Result<void> putAcmeState(const AcmeState& state);
  Result<void> retainAcmeStates(const std::vector<std::string>& names);
  Result<std::vector<AcmeState>> listAcmeStates() const;

  // Traffic counters written by the proxy.
  Result<void> addTraffic(const TrafficSample& sample);
  Result<std::vector<TrafficSample>> trafficSince(int64_t at) const;  // at >= `at`, oldest first
  Result<int64_t> pruneTrafficBefore(int64_t at);  // returns how many samples were deleted

 private:
  struct DbCloser {
    void operator()(sqlite3* db) const;
  };
  // Rolls back a transaction the body left by throwing (bad_alloc): the store stays usable.
  class TxGuard {
   public:
    explicit TxGuard(Store& store) : store_(store) {}
    ~TxGuard() {
      if (!done_) {
        store_.rollbackTx();
      }
    }
    TxGuard(const TxGuard&) = delete;
    TxGuard& operator=(const TxGuard&) = delete;
    void release() { done_ = true; }

   private:
    Store& store_;
    bool done_ = false;
  };

  Store(std::filesystem::path path, std::unique_ptr<sqlite3, DbCloser> db,
        const StoreOptions& options);
  Result<void> configure();
  Result<void> migrate();

  Result<void> beginTx();
  Result<void> commitTx();
  void rollbackTx();

  // Around a method whose rows are history or counters (runs and their operations, traffic,
  // usage): what it changes is not synced when the store closes (~Store).
  int64_t totalChanges() const;
  class LightWrites {
   public:
    explicit LightWrites(Store& store) : store_(store), before_(store.totalChanges()) {}
    ~LightWrites() { store_.lightChanges_ += store_.totalChanges() - before_; }
    LightWrites(const LightWrites&) = delete;
    LightWrites& operator=(const LightWrites&) = delete;

   private:
    Store& store_;
    int64_t before_;
  };

  std::filesystem::path path_;
  std::unique_ptr<sqlite3, DbCloser> db_;
  StoreOptions options_;
  int schemaVersion_ = 0;
  int txDepth_ = 0;
  int64_t lightChanges_ = 0;   // rows LightWrites changed
  int64_t syncedChanges_ = 0;  // the other rows changed, as of the last successful sync
  // Prepared statements by SQL text, reused across calls (finalized by DbCloser).
  mutable std::unordered_map<std::string, sqlite3_stmt*> statements_;
};

template <typename F>
requires std::invocable<F&> std::invoke_result_t<F&> Store::transaction(F&& body) {
  if (auto begun = beginTx(); !begun) {
    return begun.error();
  }
  TxGuard guard(*this);
  auto result = body();
  guard.release();
  if (!result) {
    rollbackTx();
    return result;
  }
  if (auto committed = commitTx(); !committed) {
    return committed.error();
  }
  return result;
}

}  // namespace edgeplane
