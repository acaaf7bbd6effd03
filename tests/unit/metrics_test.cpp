// Prometheus exposition shared by both daemons: the text writer, the test parser's own checks,
// process_* from /proc, the read-only metrics server, and the agent's run series.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "edgeplane_version.h"
#include "reconciler/cli/agent_metrics.h"
#include "reconciler/system/local_http.h"
#include "reconciler/system/process_metrics.h"
#include "schema/local_address.h"
#include "schema/prometheus_text.h"
#include "schema/store.h"
#include "tests/support/http_call.h"
#include "tests/support/prometheus_parse.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;
using testing::ParsedMetrics;
using testing::parseMetrics;
using testing::TempDir;

// ---- the writer ----

// A unix socket just bound gets its group and mode by path, in a directory others may write
// (the state directory, which the proxy writes): a link put in the socket's place is refused
// and what it points to keeps its owner and mode.
TEST(RestrictSocketFile, ASocketGetsItsModeALinkInItsPlaceIsRefused) {
  testing::TempDir dir;
  const std::filesystem::path sock = dir.path() / "s.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  const Result<void> made = restrictSocketFile(sock, 0600, ::getgid());
  EXPECT_TRUE(made.ok()) << made.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  const std::filesystem::path victim = dir.path() / "victim";
  std::ofstream(victim) << "x";
  ASSERT_EQ(::chmod(victim.c_str(), 0640), 0);
  ::unlink(sock.c_str());
  ASSERT_EQ(::symlink(victim.c_str(), sock.c_str()), 0);
  const Result<void> refused = restrictSocketFile(sock, 0666, ::getgid());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("symbolic link"), std::string::npos);
  ASSERT_EQ(::stat(victim.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ::close(fd);
}

TEST(PrometheusText, EscapesLabelValuesAndHelp) {
  std::string out;
  prometheus::family(out, "x_total", "counter", "a \\ back\nslash");
  prometheus::sample(out, "x_total", {{"l", "a\"b\\c\nd"}, {"m", ""}}, 1);
  EXPECT_EQ(out,
            "# HELP x_total a \\\\ back\\nslash\n"
            "# TYPE x_total counter\n"
            "x_total{l=\"a\\\"b\\\\c\\nd\",m=\"\"} 1\n");
  ParsedMetrics p = parseMetrics(out);
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
}

TEST(PrometheusText, FormatsValuesAsTheFormatReadsThem) {
  EXPECT_EQ(prometheus::formatValue(3), "3");
  EXPECT_EQ(prometheus::formatValue(0.005), "0.005");
  EXPECT_EQ(prometheus::formatValue(20.043), "20.043");
  EXPECT_EQ(prometheus::formatValue(1.5e300), "1.5e+300");
  EXPECT_EQ(prometheus::formatValue(-2.25), "-2.25");
  EXPECT_EQ(prometheus::formatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(prometheus::formatValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(prometheus::formatValue(0.0 / 0.0), "NaN");
}

TEST(PrometheusText, HistogramBucketsAreCumulativeAndInfIsTheCount) {
  std::string out;
  prometheus::family(out, "d_seconds", "histogram", "durations");
  const double bounds[] = {0.1, 1};
  const uint64_t perBucket[] = {2, 0, 3};
  prometheus::histogram(out, "d_seconds", {{"k", "v"}}, bounds, perBucket, 9.5);
  EXPECT_EQ(out,
            "# HELP d_seconds durations\n"
            "# TYPE d_seconds histogram\n"
            "d_seconds_bucket{k=\"v\",le=\"0.1\"} 2\n"
            "d_seconds_bucket{k=\"v\",le=\"1\"} 2\n"
            "d_seconds_bucket{k=\"v\",le=\"+Inf\"} 5\n"
            "d_seconds_sum{k=\"v\"} 9.5\n"
            "d_seconds_count{k=\"v\"} 5\n");
  EXPECT_TRUE(parseMetrics(out).errors.empty());
}

// The parser the other tests lean on must be able to fail: each text breaks one rule.
TEST(PrometheusParse, RefusesTextThatBreaksTheFormat) {
  const std::string head = "# HELP a_total h\n# TYPE a_total counter\n";
  const std::string hist = "# HELP h h\n# TYPE h histogram\n";
  const std::pair<std::string, std::string> cases[] = {
      {"a_total 1", "does not end with a newline"},
      {"# TYPE a_total counter\na_total 1\n", "TYPE without HELP"},
      {head + "a_total 1\n" + head, "HELP given twice"},
      {head + "b_total 1\n", "sample outside its family"},
      {head + "a_total{l=\"x\\t\"} 1\n", "unparsable line"},
      {head + "a_total{l=\"x\"\"} 1\n", "unparsable line"},
      {head + "a_total 1e\n", "unparsable line"},
      {head + "a_total{l=\"x\",l=\"y\"} 1\n", "label given twice"},
      {head + "a_total 1\na_total 2\n", "duplicate series"},
      {"# HELP g h\n# TYPE g counter\ng 1\n", "counter not named *_total"},
      {hist + "h_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
       "not cumulative"},
      {hist + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
       "_count differs from its +Inf bucket"},
      {hist + "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "without a final +Inf bucket"},
      {hist + "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
              "h_count 1\n",
       "ascending le order"},
  };
  for (const auto& [text, want] : cases) {
    ParsedMetrics p = parseMetrics(text);
    bool found = false;
    for (const std::string& e : p.errors) {
      found = found || e.find(want) != std::string::npos;
    }
    EXPECT_TRUE(found) << "want \"" << want << "\" for:\n"
                       << text << "got: " << ::testing::PrintToString(p.errors);
  }
}

// ---- process_* ----

TEST(ProcessMetrics, ParsesProcStatWhateverTheCommandName) {
  // Fields 14, 15 (utime, stime) = 250, 150 ticks; 22 (starttime) = 1000 ticks; 23 (vsize);
  // 24 (rss) = 300 pages.
  const std::string stat =
      "4242 (we) ird (name)) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 1 0 1000 123456789 300 "
      "18446744073709551615 1 2 3 4 5 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  auto s = parseProcStat(stat, 100, 4096, 1'700'000'000);
  ASSERT_TRUE(s);
  EXPECT_DOUBLE_EQ(s->cpuSeconds, 4.0);
  EXPECT_DOUBLE_EQ(s->startTimeSeconds, 1'700'000'010.0);
  EXPECT_EQ(s->virtualBytes, 123456789u);
  EXPECT_EQ(s->residentBytes, 300u * 4096);
  EXPECT_FALSE(parseProcStat("4242 (x) S 1 2", 100, 4096, 0));
  EXPECT_FALSE(parseProcStat("no parenthesis", 100, 4096, 0));
}

TEST(ProcessMetrics, DescribeThisProcess) {
  auto s = readProcessStats();
  ASSERT_TRUE(s);
  EXPECT_GT(s->residentBytes, 0u);
  EXPECT_GE(s->openFds, 3u);  // stdin, stdout, stderr at least
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(s->maxFds, limit.rlim_cur);
  const double now = static_cast<double>(::time(nullptr));
  EXPECT_LE(s->startTimeSeconds, now + 1);
  EXPECT_GT(s->startTimeSeconds, now - 24 * 3600);  // a test binary started today
  std::string out;
  appendProcessMetrics(out);
  ParsedMetrics p = parseMetrics(out);
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
  EXPECT_EQ(p.types["process_cpu_seconds_total"], "counter");
  EXPECT_EQ(p.samples["process_max_fds"], static_cast<double>(limit.rlim_cur));
}

// ---- addresses and the server ----

TEST(LocalAddress, RefusesAnythingTheNetworkReaches) {
  for (const char* bad : {"0.0.0.0:9102", "10.0.0.1:9102", "[::]:9102", "[fd00::1]:9102"}) {
    auto r = LocalAddress::parse(bad, "metrics");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message, "metrics " + std::string(bad) +
                                     " is not loopback: it may listen only on 127.0.0.0/8, ::1 "
                                     "or a unix socket");
  }
  EXPECT_TRUE(LocalAddress::parse("127.0.0.1:9102", "metrics").ok());
  EXPECT_TRUE(LocalAddress::parse("[::1]:0", "metrics").ok());
  EXPECT_TRUE(LocalAddress::parse("unix:/run/edgeplane/metrics.sock", "metrics").ok());
}

using testing::httpCall;
using Reply = testing::HttpCallReply;

// Serves nothing in particular: for the tests of the socket file.
MetricsSource emptySource() {
  return {[] { return std::string(); }, [] { return std::string(); }};
}

uint16_t portOf(const std::string& address) {
  return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

TEST(MetricsServer, ServesOnlyMetricsAndHealthz) {
  int scrapes = 0;
  auto address = LocalAddress::parse("127.0.0.1:0", "metrics");
  ASSERT_TRUE(address.ok());
  auto server = MetricsServer::start(
      *address, {[&scrapes] {
                   ++scrapes;
                   return std::string("# HELP s_total s\n# TYPE s_total counter\ns_total 7\n");
                 },
                 [] { return std::string("{\"status\":\"ok\"}\n"); }});
  ASSERT_TRUE(server.ok()) << server.error().message;
  const uint16_t port = portOf((*server)->address());
  ASSERT_NE(port, 0);

  Reply m = httpCall(port, "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.contentType, prometheus::kContentType);
  EXPECT_EQ(parseMetrics(m.body).samples["s_total"], 7);
  EXPECT_EQ(scrapes, 1);
  Reply h = httpCall(port, "GET", "/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "{\"status\":\"ok\"}\n");
  EXPECT_EQ(httpCall(port, "POST", "/api/v1/reload").status, 404);
  EXPECT_EQ(httpCall(port, "GET", "/api/v1/config").status, 404);
  Reply post = httpCall(port, "POST", "/metrics");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.allow, "GET, HEAD");
  EXPECT_EQ(scrapes, 1);  // nothing but GET renders

  server->reset();
  EXPECT_EQ(httpCall(port, "GET", "/metrics").status, -1);  // stopped: nothing listens
}

TEST(MetricsServer, UnixSocketIsGroupOnlyAndRemovedAtStop) {
  TempDir dir;
  const fs::path sock = dir.path() / "metrics.sock";
  std::ofstream(dir.path() / "plain") << "x";
  auto plain = LocalAddress::parse("unix:" + (dir.path() / "plain").string(), "metrics");
  ASSERT_TRUE(plain.ok());
  auto refused = MetricsServer::start(*plain, emptySource());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("is not a socket"), std::string::npos);

  auto address = LocalAddress::parse("unix:" + sock.string(), "metrics");
  ASSERT_TRUE(address.ok());
  {
    auto server = MetricsServer::start(*address, emptySource());
    ASSERT_TRUE(server.ok()) << server.error().message;
    struct stat st {};
    ASSERT_EQ(::lstat(sock.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    // A second server on the same live socket is refused, the first one untouched.
    auto second = MetricsServer::start(*address, emptySource());
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message.find("another process is serving"), std::string::npos);
    EXPECT_TRUE(fs::exists(sock));
  }
  EXPECT_FALSE(fs::exists(sock));
}

// ---- the agent's series ----

OpOutcome op(std::string kind, bool ok) {
  OpOutcome o;
  o.kind = std::move(kind);
  o.ok = ok;
  return o;
}

TEST(AgentMetrics, RunsChangeTheSeries) {
  cli::AgentMetrics metrics;
  ParsedMetrics before = parseMetrics(metrics.render());
  ASSERT_TRUE(before.errors.empty()) << ::testing::PrintToString(before.errors);
  EXPECT_EQ(before.samples["edgeplane_build_info{version=\"" EDGEPLANE_VERSION "\"}"], 1);
  EXPECT_EQ(before.samples["edgeplane_last_run_timestamp_seconds"], 0);
  EXPECT_EQ(before.samples["edgeplane_last_run_success"], 0);
  EXPECT_EQ(before.samples["edgeplane_run_duration_seconds_count"], 0);
  EXPECT_EQ(before.samples["edgeplane_runs_total{result=\"ok\"}"], 0);
  EXPECT_EQ(before.types["edgeplane_config_info"], "gauge");
  EXPECT_EQ(before.types["edgeplane_operations_total"], "counter");
  EXPECT_EQ(before.types.count("process_open_fds"), 1u);

  cli::RunObservation ok;
  ok.result = RunResult::Ok;
  ok.finishedAtMs = 1'700'000'000'500;
  ok.duration = std::chrono::milliseconds(1200);
  ok.commit = "0123456789abcdef0123456789abcdef01234567";
  ok.ops = {op("wireguard", true), op("wireguard", true), op("forward", false)};
  metrics.recordRun(ok);
  ParsedMetrics p = parseMetrics(metrics.render());
  ASSERT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
  EXPECT_EQ(p.samples["edgeplane_last_run_timestamp_seconds"], 1'700'000'000.5);
  EXPECT_EQ(p.samples["edgeplane_last_run_success"], 1);
  EXPECT_EQ(p.samples["edgeplane_last_successful_apply_timestamp_seconds"], 1'700'000'000.5);
  EXPECT_EQ(p.samples["edgeplane_runs_total{result=\"ok\"}"], 1);
  EXPECT_EQ(p.samples["edgeplane_run_duration_seconds_bucket{le=\"1\"}"], 0);
  EXPECT_EQ(p.samples["edgeplane_run_duration_seconds_bucket{le=\"2.5\"}"], 1);
  EXPECT_EQ(p.samples["edgeplane_run_duration_seconds_count"], 1);
  EXPECT_DOUBLE_EQ(p.samples["edgeplane_run_duration_seconds_sum"], 1.2);
  EXPECT_EQ(p.samples["edgeplane_operations_total{kind=\"wireguard\",result=\"ok\"}"], 2);
  EXPECT_EQ(p.samples["edgeplane_operations_total{kind=\"forward\",result=\"failed\"}"], 1);
  EXPECT_EQ(p.samples["edgeplane_config_info{commit=\"" + *ok.commit + "\"}"], 1);
  EXPECT_EQ(p.samples["edgeplane_drift_detected"], 0);

  // A failed run: the last run says so; the last success and the applied commit stay.
  cli::RunObservation failed;
  failed.result = RunResult::Failed;
  failed.finishedAtMs = 1'700'000'060'000;
  failed.duration = std::chrono::milliseconds(40);
  failed.commit = "fedcba9876543210fedcba9876543210fedcba98";
  metrics.recordRun(failed);
  p = parseMetrics(metrics.render());
  ASSERT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
  EXPECT_EQ(p.samples["edgeplane_last_run_timestamp_seconds"], 1'700'000'060);
  EXPECT_EQ(p.samples["edgeplane_last_run_success"], 0);
  EXPECT_EQ(p.samples["edgeplane_last_successful_apply_timestamp_seconds"], 1'700'000'000.5);
  EXPECT_EQ(p.samples["edgeplane_runs_total{result=\"failed\"}"], 1);
  EXPECT_EQ(p.samples["edgeplane_run_duration_seconds_bucket{le=\"0.1\"}"], 1);
  EXPECT_EQ(p.samples["edgeplane_run_duration_seconds_count"], 2);
  EXPECT_EQ(p.samples.count("edgeplane_config_info{commit=\"" + *failed.commit + "\"}"), 0u);
  EXPECT_EQ(p.samples["edgeplane_config_info{commit=\"" + *ok.commit + "\"}"], 1);

  // The same commit again, with work to do: drift.
  cli::RunObservation repaired = ok;
  repaired.drift = true;
  repaired.ops = {op("nft", true)};
  metrics.recordRun(repaired);
  p = parseMetrics(metrics.render());
  EXPECT_EQ(p.samples["edgeplane_drift_detected"], 1);
  EXPECT_EQ(p.samples["edgeplane_operations_total{kind=\"nft\",result=\"ok\"}"], 1);
  EXPECT_EQ(p.samples["edgeplane_operations_total{kind=\"wireguard\",result=\"ok\"}"], 2);
}

// A restarted agent reports the last success and the applied commit the store recorded, not 0.
TEST(AgentMetrics, RestoresWhatTheStoreRecorded) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto run = (*store)->beginRun(
      {"0123456789abcdef0123456789abcdef01234567", "repo main", 1'700'000'000'000});
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE((*store)->finishRun(*run, {1'700'000'003'000, RunResult::Ok, "ok", {}}).ok());
  auto later = (*store)->beginRun({std::nullopt, "repo main", 1'700'000'100'000});
  ASSERT_TRUE(later.ok());
  ASSERT_TRUE((*store)->finishRun(*later, {1'700'000'101'000, RunResult::Failed, "no", {}}).ok());

  cli::AgentMetrics metrics;
  metrics.restore(cli::recordedState(**store));
  ParsedMetrics p = parseMetrics(metrics.render());
  ASSERT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
  EXPECT_EQ(p.samples["edgeplane_last_successful_apply_timestamp_seconds"], 1'700'000'003);
  EXPECT_EQ(p.samples["edgeplane_config_info{commit=\"0123456789abcdef0123456789abcdef01234567\"}"],
            1);
  EXPECT_EQ(p.samples["edgeplane_last_run_timestamp_seconds"], 0);  // none since it started
}

}  // namespace
}  // namespace edgeplane
