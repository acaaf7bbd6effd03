// The real `edgeplane agent` as a child process: SIGHUP re-reads the agent file (a bad file is
// logged and changes nothing), SIGTERM stops it cleanly, and systemd's notification socket
// hears READY, STATUS, WATCHDOG, RELOADING and STOPPING.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <fcntl.h>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "reconciler/cli/webhook.h"
#include "tests/support/command.h"
#include "tests/support/http_call.h"
#include "tests/support/notify_socket.h"
#include "tests/support/prometheus_parse.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::TempDir;

// A loopback port the kernel just handed out and that is free again.
uint16_t freePort() {
  Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
  return probe.address().port();
}

// Two such ports, distinct: the first is held while the second is asked for (two calls of
// freePort can be handed the same port).
std::pair<uint16_t, uint16_t> twoFreePorts() {
  Poco::Net::ServerSocket first(Poco::Net::SocketAddress("127.0.0.1", 0));
  Poco::Net::ServerSocket second(Poco::Net::SocketAddress("127.0.0.1", 0));
  return {first.address().port(), second.address().port()};
}

void writeSecret(const fs::path& file, const std::string& text) {
  std::ofstream(file, std::ios::trunc) << text << "\n";
  ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
}

// POST /trigger signed with `secret`: the status, or -1 when nothing listens.
int postTrigger(uint16_t port, const std::string& secret) {
  const std::string body = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
  try {
    Poco::Net::HTTPClientSession session("127.0.0.1", port);
    session.setTimeout(Poco::Timespan(5, 0));
    Poco::Net::HTTPRequest request("POST", "/trigger", Poco::Net::HTTPMessage::HTTP_1_1);
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    request.set(std::string(kSignatureHeader), webhookSignature(secret, body));
    session.sendRequest(request) << body;
    Poco::Net::HTTPResponse response;
    session.receiveResponse(response);
    return static_cast<int>(response.getStatus());
  } catch (const Poco::Exception&) {
    return -1;
  }
}

// The agent as a child process, its stdout and stderr in one log file; killed if still
// running at the end of the test. `env` is added to (or replaces in) its environment. Between
// fork and exec the child only opens, dups and execs: everything else is prepared before.
class AgentProcess {
 public:
  AgentProcess(const fs::path& agentFile, fs::path log,
               const std::vector<std::pair<std::string, std::string>>& env = {},
               std::string bin = EDGEPLANE_BINARY)
      : log_(std::move(log)) {
    std::vector<std::string> vars;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view var(*e);
      bool replaced = false;
      for (const auto& [name, value] : env) {
        replaced = replaced || var.starts_with(name + "=");
      }
      if (!replaced) {
        vars.emplace_back(var);
      }
    }
    for (const auto& [name, value] : env) {
      vars.push_back(name + "=" + value);
    }
    std::vector<char*> envp;
    for (std::string& v : vars) {
      envp.push_back(v.data());
    }
    envp.push_back(nullptr);
    std::string command = "agent";
    std::string flag = "--agent";
    std::string file = agentFile.string();
    char* argv[] = {bin.data(), command.data(), flag.data(), file.data(), nullptr};
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execve(bin.c_str(), argv, envp.data());
      ::_exit(127);
    }
  }
  ~AgentProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  std::string log() const { return edgeplane::testing::readFile(log_); }
  // Waits until the log holds `text` `count` times; false after `timeout`.
  bool waitFor(const std::string& text, size_t count = 1,
               std::chrono::milliseconds timeout = 20s) const {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      const std::string l = log();
      size_t seen = 0;
      for (size_t at = l.find(text); at != std::string::npos; at = l.find(text, at + 1)) {
        ++seen;
      }
      if (seen >= count) {
        return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  bool running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
  void signal(int sig) const { ASSERT_EQ(::kill(pid_, sig), 0); }
  // The exit status once it ends (-1: killed by a signal or still running after `timeout`).
  int wait(std::chrono::milliseconds timeout = 20s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
};

// An agent file whose runs fail at once (the source does not exist, so nothing on this host is
// looked at), with its webhook on `port` and the secret in `secretFile`.
std::string agentFile(const TempDir& dir, uint16_t port, const fs::path& secretFile) {
  return "host = \"edge-1\"\nstate_dir = \"" + (dir.path() / "state").string() +
         "\"\n[source]\nurl = \"" + (dir.path() / "no-such-repo").string() +
         "\"\n[reconcile]\ninterval = \"1h\"\njitter = \"0s\"\n[webhook]\nlisten = "
         "\"127.0.0.1:" +
         std::to_string(port) + "\"\nsecret_file = \"" + secretFile.string() + "\"\n";
}

// SIGHUP used to end the agent (exit 129), which Restart=on-failure does not bring back. Now
// the agent re-reads its file: a broken file is reported and changes nothing; a new webhook
// secret and then a new webhook address take effect without a restart.
TEST(AgentProcessTest, SighupRereadsTheAgentFile) {
  TempDir dir;
  const fs::path file = dir.path() / "agent.toml";
  const fs::path one = dir.path() / "one.secret";
  const fs::path two = dir.path() / "two.secret";
  writeSecret(one, "one");
  writeSecret(two, "two");
  const uint16_t port = freePort();
  std::ofstream(file) << agentFile(dir, port, one);

  AgentProcess agent(file, dir.path() / "agent.log");
  ASSERT_TRUE(agent.waitFor("edgeplane agent: started:")) << agent.log();
  ASSERT_TRUE(agent.waitFor("run ")) << agent.log();  // the first run, at start
  EXPECT_EQ(postTrigger(port, "one"), 202) << agent.log();

  // A broken file: an error naming it, the agent still running on the old settings.
  std::ofstream(file, std::ios::trunc) << "host = \"edge-1\"\n[source\n";
  agent.signal(SIGHUP);
  ASSERT_TRUE(agent.waitFor("has errors (above); the previous settings stay in force"))
      << agent.log();
  EXPECT_NE(agent.log().find(file.string() + ":2:"), std::string::npos) << agent.log();
  EXPECT_TRUE(agent.running()) << agent.log();
  EXPECT_EQ(postTrigger(port, "one"), 202) << agent.log();

  // A new secret on the same address.
  std::ofstream(file, std::ios::trunc) << agentFile(dir, port, two);
  agent.signal(SIGHUP);
  ASSERT_TRUE(agent.waitFor("SIGHUP: reloaded " + file.string())) << agent.log();
  EXPECT_EQ(postTrigger(port, "one"), 401) << agent.log();
  EXPECT_EQ(postTrigger(port, "two"), 202) << agent.log();

  // A new address: the old one is closed, the new one answers.
  const uint16_t moved = freePort();
  std::ofstream(file, std::ios::trunc) << agentFile(dir, moved, two);
  agent.signal(SIGHUP);
  ASSERT_TRUE(agent.waitFor("SIGHUP: reloaded " + file.string(), 2)) << agent.log();
  EXPECT_NE(agent.log().find("webhook 127.0.0.1:" + std::to_string(moved)), std::string::npos);
  EXPECT_EQ(postTrigger(port, "two"), -1) << agent.log();
  EXPECT_EQ(postTrigger(moved, "two"), 202) << agent.log();
  EXPECT_TRUE(agent.running()) << agent.log();

  agent.signal(SIGTERM);
  EXPECT_EQ(agent.wait(), 0) << agent.log();
  EXPECT_NE(agent.log().find("edgeplane agent: stopped"), std::string::npos) << agent.log();
}

// GET `path` on 127.0.0.1:`port`: the status and body; status -1 when nothing listens.
std::pair<int, std::string> httpGet(uint16_t port, const std::string& path) {
  auto r = edgeplane::testing::httpCall(port, "GET", path);
  return {r.status, r.body};
}

// `metrics = "127.0.0.1:PORT"`: the agent's series are served, parse as the text format, and
// follow its runs; a SIGHUP with another address moves them there and closes the old one.
TEST(AgentProcessTest, ServesMetricsThatFollowItsRuns) {
  TempDir dir;
  const fs::path file = dir.path() / "agent.toml";
  const fs::path secret = dir.path() / "webhook.secret";
  writeSecret(secret, "s");
  const std::pair<uint16_t, uint16_t> ports = twoFreePorts();
  const uint16_t webhook = ports.first;
  const uint16_t port = ports.second;
  auto write = [&](uint16_t metrics) {
    std::ofstream(file, std::ios::trunc) << "metrics = \"127.0.0.1:" << metrics << "\"\n"
                                         << agentFile(dir, webhook, secret);
  };
  write(port);
  AgentProcess agent(file, dir.path() / "agent.log");
  ASSERT_TRUE(agent.waitFor("run 1 ")) << agent.log();
  EXPECT_NE(agent.log().find(", metrics 127.0.0.1:" + std::to_string(port)), std::string::npos);

  auto scrape = [&](uint16_t at) {
    auto [status, body] = httpGet(at, "/metrics");
    EXPECT_EQ(status, 200) << agent.log();
    edgeplane::testing::ParsedMetrics p = edgeplane::testing::parseMetrics(body);
    EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors) << body;
    return p;
  };
  // The first run failed (its source does not exist).
  edgeplane::testing::ParsedMetrics p = scrape(port);
  EXPECT_EQ(p.samples["edgeplane_runs_total{result=\"failed\"}"], 1);
  EXPECT_EQ(p.samples["edgeplane_last_run_success"], 0);
  EXPECT_GT(p.samples["edgeplane_last_run_timestamp_seconds"], 1.7e9);
  EXPECT_EQ(p.samples["edgeplane_last_successful_apply_timestamp_seconds"], 0);
  EXPECT_EQ(p.samples["edgeplane_run_duration_seconds_count"], 1);
  EXPECT_GT(p.samples["process_resident_memory_bytes"], 0);
  EXPECT_EQ(httpGet(port, "/healthz"), std::make_pair(200, std::string("{\"status\":\"ok\"}\n")));
  EXPECT_EQ(httpGet(port, "/trigger").first, 404);

  // Another run (the webhook triggers it): the series move on.
  EXPECT_EQ(postTrigger(webhook, "s"), 202) << agent.log();
  ASSERT_TRUE(agent.waitFor("run 2 ")) << agent.log();
  p = scrape(port);
  EXPECT_EQ(p.samples["edgeplane_runs_total{result=\"failed\"}"], 2);
  EXPECT_EQ(p.samples["edgeplane_run_duration_seconds_count"], 2);

  // SIGHUP with a new address: served there, the old one closed, the counts kept.
  const uint16_t moved = freePort();
  write(moved);
  agent.signal(SIGHUP);
  ASSERT_TRUE(agent.waitFor("SIGHUP: reloaded " + file.string())) << agent.log();
  EXPECT_EQ(httpGet(port, "/metrics").first, -1) << agent.log();
  p = scrape(moved);
  EXPECT_EQ(p.samples["edgeplane_runs_total{result=\"failed\"}"], 2);

  // A file with a non-loopback address is refused on SIGHUP; the endpoint stays.
  std::ofstream(file, std::ios::trunc) << "metrics = \"0.0.0.0:" << moved << "\"\n"
                                       << agentFile(dir, webhook, secret);
  agent.signal(SIGHUP);
  ASSERT_TRUE(agent.waitFor("has errors (above); the previous settings stay in force"))
      << agent.log();
  EXPECT_NE(agent.log().find("is not a loopback address"), std::string::npos) << agent.log();
  EXPECT_EQ(httpGet(moved, "/metrics").first, 200);

  agent.signal(SIGTERM);
  EXPECT_EQ(agent.wait(), 0) << agent.log();
  EXPECT_EQ(httpGet(moved, "/metrics").first, -1);
}

// Under systemd (Type=notify, WatchdogSec=): READY=1 once the first run ended, with the run's
// outcome as STATUS; WATCHDOG=1 at half of WATCHDOG_USEC; RELOADING=1 then READY=1 around a
// SIGHUP; STOPPING=1 on SIGTERM. The listener stands in for systemd's socket.
TEST(AgentProcessTest, NotifiesTheServiceManager) {
  TempDir dir;
  edgeplane::testing::NotifySocket notify(dir.path() / "notify.sock");
  ASSERT_TRUE(notify.bound());
  const fs::path file = dir.path() / "agent.toml";
  const fs::path secret = dir.path() / "webhook.secret";
  writeSecret(secret, "s");
  std::ofstream(file) << agentFile(dir, freePort(), secret);

  AgentProcess agent(file, dir.path() / "agent.log",
                     {{"NOTIFY_SOCKET", notify.path().string()}, {"WATCHDOG_USEC", "400000"}});
  ASSERT_TRUE(notify.waitFor("READY=1")) << agent.log();
  ASSERT_TRUE(agent.waitFor("run ")) << agent.log();
  const auto status = notify.linesStarting("STATUS=");
  ASSERT_FALSE(status.empty());
  // The run fails (the source does not exist): the status says so, and the agent is up anyway.
  EXPECT_TRUE(status[0].starts_with("STATUS=run 1 commit ")) << status[0];
  EXPECT_NE(status[0].find(" failed: "), std::string::npos) << status[0];
  // 200 ms apart: five within 2 s.
  EXPECT_TRUE(notify.waitFor("WATCHDOG=1", 5, 2s)) << notify.seen("WATCHDOG=1");

  const size_t before = notify.messages().size();
  agent.signal(SIGHUP);
  ASSERT_TRUE(notify.waitFor("READY=1", 2)) << agent.log();
  const int reloading = notify.indexOf("RELOADING=1", before);
  ASSERT_GE(reloading, 0);
  EXPECT_NE(notify.messages()[reloading].find("MONOTONIC_USEC="), std::string::npos);
  EXPECT_GT(notify.indexOf("READY=1", before), reloading);

  agent.signal(SIGTERM);
  EXPECT_TRUE(notify.waitFor("STOPPING=1")) << agent.log();
  EXPECT_EQ(agent.wait(), 0) << agent.log();
}

// Under journald (JOURNAL_STREAM names stderr's device and inode) each log line starts with its
// syslog priority, so `journalctl -p err` finds failed runs; elsewhere the lines stay plain,
// including when JOURNAL_STREAM was inherited but stderr is another file.
TEST(AgentProcessTest, SyslogPrioritiesOnlyWhenStderrIsTheJournal) {
  for (const bool journal : {true, false}) {
    TempDir dir;
    const fs::path file = dir.path() / "agent.toml";
    const fs::path secret = dir.path() / "webhook.secret";
    writeSecret(secret, "s");
    std::ofstream(file) << agentFile(dir, freePort(), secret);
    const fs::path log = dir.path() / "agent.log";
    std::ofstream(log) << "";
    struct stat st {};
    ASSERT_EQ(::stat(log.c_str(), &st), 0);
    const std::string stream =
        std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + (journal ? 0 : 1));
    AgentProcess agent(file, log, {{"JOURNAL_STREAM", stream}});
    ASSERT_TRUE(agent.waitFor("run 1 ")) << agent.log();
    agent.signal(SIGTERM);
    EXPECT_EQ(agent.wait(), 0) << agent.log();
    std::istringstream lines(agent.log());
    std::vector<std::string> got;
    for (std::string line; std::getline(lines, line);) {
      got.push_back(line);
    }
    ASSERT_EQ(got.size(), 3u) << agent.log();
    const std::string info = journal ? "<6>" : "";
    const std::string err = journal ? "<3>" : "";
    EXPECT_TRUE(got[0].starts_with(info + "edgeplane agent: started: ")) << got[0];
    // The schedule as the agent file says it (interval "1h", jitter "0s").
    EXPECT_NE(got[0].find(", every 1h ± 0s, trigger "), std::string::npos) << got[0];
    // The failed run: an error, with its reason.
    EXPECT_TRUE(got[1].starts_with(err + "run 1 commit - failed: fetch ")) << got[1];
    EXPECT_NE(got[1].find("no repository at"), std::string::npos) << got[1];
    EXPECT_EQ(got[2], info + "edgeplane agent: stopped");
  }
}

// edgeplane with its net module copied to where it looks for it (beside the executable, as
// installed); `moduleMode`, or no module when 0, or another ELF file when 01755.
fs::path installedCopy(const TempDir& dir, mode_t moduleMode) {
  const fs::path exe = dir.path() / "bin" / "edgeplane";
  const fs::path module =
      exe.parent_path() / fs::path(EDGEPLANE_NET_MODULE_FILE)
                              .lexically_relative(fs::path(EDGEPLANE_BINARY).parent_path());
  fs::create_directories(exe.parent_path());
  fs::copy_file(EDGEPLANE_BINARY, exe);
  if (moduleMode != 0) {
    fs::create_directories(module.parent_path());
    // 01755 (a marker, not a mode the loader looks at): another ELF file in the module's
    // place, this test program, whose build ID is not the module's.
    const bool other = moduleMode == 01755;
    fs::copy_file(other ? fs::read_symlink("/proc/self/exe") : fs::path(EDGEPLANE_NET_MODULE_FILE),
                  module);
    EXPECT_EQ(::chmod(module.c_str(), other ? 0755 : moduleMode), 0);
  }
  return exe;
}

// The executable links no POCO Net: the agent loads the net module at start from beside the
// executable (here a copy, as an install would place it), and refuses one that others can
// write, that is missing or that is from another build, saying which file and why.
TEST(AgentProcessTest, LoadsTheNetModuleFromBesideItOnlyWhenTrusted) {
  struct Case {
    mode_t mode;
    std::string expected;  // in the log
  };
  for (const Case& c : {Case{0755, "edgeplane agent: started"},
                        Case{0775, "edgeplane-net.so: writable by its group or others"},
                        Case{0, "/lib: No such file or directory"},
                        Case{01755, "edgeplane-net.so is from another build"}}) {
    TempDir dir;
    const fs::path file = dir.path() / "agent.toml";
    const fs::path secret = dir.path() / "webhook.secret";
    writeSecret(secret, "s");
    const uint16_t port = freePort();
    std::ofstream(file) << agentFile(dir, port, secret);
    AgentProcess agent(file, dir.path() / "agent.log", {}, installedCopy(dir, c.mode).string());
    ASSERT_TRUE(agent.waitFor(c.expected)) << agent.log();
    if (c.mode == 0755) {
      EXPECT_EQ(postTrigger(port, "s"), 202) << agent.log();  // its webhook, from the module
    } else {
      EXPECT_EQ(agent.wait(), 1) << agent.log();
      EXPECT_NE(agent.log().find("the net module"), std::string::npos) << agent.log();
    }
  }
}

// After an upgrade, the module beside a running edgeplane is another build's; its fetch child
// (its old executable, run again) loads the module the parent passed it, not that file.
TEST(AgentProcessTest, TheFetchChildLoadsTheModuleItsParentPassed) {
  TempDir dir;
  const fs::path exe = installedCopy(dir, 01755);  // another ELF file in the module's place
  const fs::path repo = dir.path() / "repo.git";
  const fs::path work = dir.path() / "work";
  const std::string git = "git -c user.name=T -c user.email=t@example.com -C " + work.string();
  ASSERT_EQ(testing::runCommand("git init -q --bare -b main " + repo.string() +
                                " && git init -q -b main " + work.string() + " && " + git +
                                " commit -q --allow-empty -m one && " + git + " push -q " +
                                repo.string() + " main")
                .status,
            0);
  const std::string fetch = exe.string() + " __fetch " + (dir.path() / "cache").string() + " " +
                            repo.string() + " main 1000000";
  const testing::CommandResult alone = testing::runCommandStdout(fetch);
  EXPECT_NE(alone.output.find("edgeplane-net.so is from another build"), std::string::npos)
      << alone.output;
  const testing::CommandResult passed = testing::runCommandStdout(
      "EDGEPLANE_NET_MODULE_FD=3 " + fetch + " 3<" + std::string(EDGEPLANE_NET_MODULE_FILE));
  EXPECT_EQ(passed.status, 0) << passed.output;
  EXPECT_EQ(passed.output.rfind("ok ", 0), 0u) << passed.output;
}

}  // namespace
}  // namespace edgeplane::cli
