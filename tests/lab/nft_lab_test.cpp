// Lab tests of the nftables driver against the real kernel, in throw-away namespaces, checked
// with the real `nft` (JSON and text) and, end to end, with TCP and UDP traffic.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "reconciler/system/netns.h"
#include "reconciler/system/nft.h"
#include "tests/support/command.h"
#include "tests/support/tool_json.h"

namespace edgeplane::sys {
namespace {

// `nft -j` output.
using Json = edgeplane::testing::ToolJson;

// ---- Running tools inside a namespace ----

using testing::CommandResult;

CommandResult run(const std::string& command) {
  return testing::runCommand(command);
}

std::string in(const std::string& ns, const std::string& command) {
  return "nsenter --net=" + netnsPath(ns) + " " + command;
}

CommandResult nft(const std::string& ns, const std::string& args) {
  return run(in(ns, "nft " + args));
}

void sh(const std::string& ns, const std::string& command) {
  const CommandResult r = run(in(ns, command));
  ASSERT_EQ(r.status, 0) << command << ": " << r.output;
}

// Whitespace runs (line breaks included) as one space.
std::string squeezed(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) != 0) {
      if (!out.empty() && out.back() != ' ') {
        out += ' ';
      }
    } else {
      out += c;
    }
  }
  return out;
}

// What `nft -j list ruleset` shows of one table, each object as compact JSON.
struct TableView {
  bool present = false;
  std::string table;
  std::map<std::string, std::string> maps;
  std::map<std::string, std::string> chains;
  std::vector<std::string> rules;      // "chain: [exprs]", in order
  std::vector<std::string> allTables;  // "family name" of every table in the namespace
};

TableView viewOf(const std::string& ns, const std::string& family = "ip",
                 const std::string& name = "edgeplane") {
  TableView v;
  const CommandResult r = nft(ns, "-j list ruleset");
  EXPECT_EQ(r.status, 0) << r.output;
  Json doc;
  EXPECT_TRUE(edgeplane::testing::parseToolJson(r.output, doc)) << r.output;
  const Json* list = doc.get("nftables");
  if (list == nullptr) {
    ADD_FAILURE() << "no nftables array: " << r.output;
    return v;
  }
  for (const Json& item : list->items) {
    if (item.members.empty()) {
      continue;
    }
    const auto& [kind, obj] = item.members.front();
    if (kind == "table") {
      v.allTables.push_back(obj.str("family") + " " + obj.str("name"));
    }
    const bool ours = obj.str("family") == family &&
                      (kind == "table" ? obj.str("name") : obj.str("table")) == name;
    if (!ours) {
      continue;
    }
    if (kind == "table") {
      v.present = true;
      v.table = obj.dump();
    } else if (kind == "map" || kind == "set") {
      v.maps[obj.str("name")] = obj.dump();
    } else if (kind == "chain") {
      v.chains[obj.str("name")] = obj.dump();
    } else if (kind == "rule") {
      const Json* expr = obj.get("expr");
      v.rules.push_back(obj.str("chain") + ": " + (expr != nullptr ? expr->dump() : "?"));
    }
  }
  return v;
}

// The JSON nft prints for the maps and rules we build (nftables 1.0.6).
std::string hostMapJson(const std::string& name, const std::string& elems) {
  return R"({"family":"ip","name":")" + name +
         R"(","table":"edgeplane","type":"inet_service","map":"ipv4_addr","flags":["interval"])" +
         (elems.empty() ? "" : R"(,"elem":[)" + elems + "]") + "}";
}

std::string nsMapJson(const std::string& name, const std::string& elems) {
  return R"({"family":"ip","name":")" + name +
         R"(","table":"edgeplane","type":"inet_service","map":"ipv4_addr . inet_service")" +
         (elems.empty() ? "" : R"(,"elem":[)" + elems + "]") + "}";
}

std::string chainJson(const std::string& name, const std::string& type, const std::string& hook,
                      int prio) {
  return R"({"family":"ip","table":"edgeplane","name":")" + name + R"(","type":")" + type +
         R"(","hook":")" + hook + R"(","prio":)" + std::to_string(prio) + R"(,"policy":"accept"})";
}

// `tcp dport @fwd_tcp`: only forwarded connections reach the counter.
std::string membership(const std::string& proto) {
  return R"({"match":{"op":"==","left":{"payload":{"protocol":")" + proto +
         R"(","field":"dport"}},"right":"@fwd_)" + proto + R"("}})";
}

// `iifname "eph-*"` and the like.
std::string nameMatch(const std::string& key, const std::string& op, const std::string& prefix) {
  return R"({"match":{"op":")" + op + R"(","left":{"meta":{"key":")" + key + R"("}},"right":")" +
         prefix + R"(*"}})";
}

const std::string kCounter = R"({"counter":{"packets":0,"bytes":0}})";

std::string dnat(const std::string& proto, bool withFamily) {
  return std::string(R"({"dnat":{)") + (withFamily ? R"("family":"ip",)" : "") +
         R"("addr":{"map":{"key":{"payload":{"protocol":")" + proto +
         R"(","field":"dport"}},"data":"@fwd_)" + proto + R"("}}}})";
}

std::string hostDnatRule(const std::string& chain, const std::string& proto) {
  return chain + R"(: [{"match":{"op":"==","left":{"fib":{"result":"type","flags":["daddr"]}},)" +
         R"("right":"local"}},)" + membership(proto) + "," + kCounter + "," + dnat(proto, false) +
         "]";
}

std::string nsDnatRule(const std::string& proto) {
  return "prerouting: [" + membership(proto) + "," + kCounter + "," + dnat(proto, true) + "]";
}

const std::map<std::string, std::string> kHostChains = {
    {"prerouting", chainJson("prerouting", "nat", "prerouting", -100)},
    {"output", chainJson("output", "nat", "output", -100)},
    {"forward", chainJson("forward", "filter", "forward", 0)},
    {"postrouting", chainJson("postrouting", "nat", "postrouting", 100)},
};
const std::vector<std::string> kHostRules = {
    hostDnatRule("prerouting", "tcp"),
    hostDnatRule("prerouting", "udp"),
    hostDnatRule("output", "tcp"),
    hostDnatRule("output", "udp"),
    "forward: [" + nameMatch("iifname", "==", "eph-") + "," + nameMatch("oifname", "==", "eph-") +
        "," + kCounter + R"(,{"drop":null}])",
    "postrouting: [" + nameMatch("iifname", "==", "eph-") + "," +
        nameMatch("oifname", "!=", "eph-") + R"(,{"masquerade":null}])",
};
const std::map<std::string, std::string> kNsChains = {
    {"prerouting", chainJson("prerouting", "nat", "prerouting", -100)},
    {"postrouting", chainJson("postrouting", "nat", "postrouting", 100)},
};
const std::vector<std::string> kNsRules = {
    nsDnatRule("tcp"),
    nsDnatRule("udp"),
    R"(postrouting: [{"match":{"op":"in","left":{"ct":{"key":"status"}},"right":"dnat"}},)" +
        nameMatch("oifname", "!=", "epn-") + R"(,{"masquerade":null}])",
};

// ---- Desired states ----

NftMapping hostMapping(uint16_t first, uint16_t last, const std::string& address) {
  NftMapping m;
  m.port = {first, last};
  m.address = *IpAddress::parse(address);
  return m;
}

NftMapping nsMapping(uint16_t port, const std::string& address, uint16_t targetPort) {
  NftMapping m;
  m.port = {port, port};
  m.address = *IpAddress::parse(address);
  m.targetPort = targetPort;
  return m;
}

NftTableState hostDesired() {
  NftTableState s;
  s.role = NftRole::Host;
  s.tcp = {hostMapping(22015, 22015, "100.64.0.1"), hostMapping(30000, 30010, "100.64.0.3"),
           hostMapping(30011, 30020, "100.64.0.5"), hostMapping(65000, 65535, "100.64.0.7")};
  s.udp = {hostMapping(53, 53, "100.64.0.9")};
  return s;
}

NftTableState nsDesired() {
  NftTableState s;
  s.role = NftRole::Namespace;
  s.tcp = {nsMapping(22015, "10.50.0.12", 22), nsMapping(22016, "10.50.0.13", 22)};
  s.udp = {nsMapping(5353, "10.50.0.12", 53)};
  return s;
}

NftTableState sorted(NftTableState s) {
  std::sort(s.tcp.begin(), s.tcp.end());
  std::sort(s.udp.begin(), s.udp.end());
  return s;
}

// The driver's whole cycle as the reconciler runs it: observe, diff, build, send.
NftChange::Kind converge(NftSocket& socket, const std::optional<NftTableState>& desired,
                         NftBatch* sent = nullptr) {
  Result<std::optional<NftTableState>> observed = socket.observe();
  EXPECT_TRUE(observed.ok()) << observed.error().message;
  if (!observed) {
    return NftChange::Kind::None;
  }
  const NftChange change = diffTable(*observed, desired);
  Result<NftBatch> batch = buildChange(change, desired);
  EXPECT_TRUE(batch.ok()) << batch.error().message;
  if (!batch) {
    return change.kind;
  }
  Result<void> r = socket.send(*batch);
  EXPECT_TRUE(r.ok()) << r.error().message;
  if (sent != nullptr) {
    *sent = std::move(batch).value();
  }
  return change.kind;
}

void expectObserved(NftSocket& socket, const NftTableState& desired) {
  Result<std::optional<NftTableState>> observed = socket.observe();
  ASSERT_TRUE(observed.ok()) << observed.error().message;
  ASSERT_TRUE(observed->has_value());
  const NftTableState& o = **observed;
  const NftTableState want = sorted(desired);
  EXPECT_TRUE(o.intact);
  EXPECT_EQ(o.role, want.role);
  EXPECT_EQ(o.tcp, want.tcp);
  EXPECT_EQ(o.udp, want.udp);
  EXPECT_EQ(diffTable(*observed, desired), NftChange{});
}

// Each test gets fresh namespaces (deleted afterwards) inside the lab's private /run/netns.
class NftLab : public ::testing::Test {
 protected:
  void SetUp() override {
    // Refuse to run in the machine's own network namespace (the lab binary isolates itself).
    struct stat self {};
    struct stat init {};
    if (::getpid() != 1 && ::stat("/proc/self/ns/net", &self) == 0 &&
        ::stat("/proc/1/ns/net", &init) == 0 && self.st_ino == init.st_ino &&
        self.st_dev == init.st_dev) {
      GTEST_SKIP() << "not isolated: run inside the lab (private network namespace)";
    }
    if (run("nft --version").status != 0 || run("nsenter --version").status != 0) {
      GTEST_SKIP() << "needs nft and nsenter";
    }
  }

  void TearDown() override {
    for (const std::string& ns : namespaces_) {
      (void)deleteNamedNetns(ns);
    }
  }

  std::string makeNetns(const std::string& role) {
    static int counter = 0;
    const std::string name =
        "nftlab-" + role + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    Result<void> r = createNamedNetns(name);
    EXPECT_TRUE(r.ok()) << r.error().message;
    namespaces_.push_back(name);
    return name;
  }

  NftSocket open(const std::string& ns) {
    Result<NftSocket> s = NftSocket::open(ns);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return std::move(s).value();
  }

 private:
  std::vector<std::string> namespaces_;
};

TEST_F(NftLab, HostTableIsExactlyTheDesiredOne) {
  const std::string ns = makeNetns("host");
  NftSocket socket = open(ns);
  EXPECT_EQ(converge(socket, hostDesired()), NftChange::Kind::CreateTable);

  const TableView v = viewOf(ns);
  ASSERT_TRUE(v.present);
  EXPECT_EQ(v.table, R"({"family":"ip","name":"edgeplane"})");
  const std::map<std::string, std::string> maps = {
      {"fwd_tcp",
       hostMapJson(
           "fwd_tcp",
           R"([22015,"100.64.0.1"],[{"range":[30000,30010]},"100.64.0.3"],)"
           R"([{"range":[30011,30020]},"100.64.0.5"],[{"range":[65000,65535]},"100.64.0.7"])")},
      {"fwd_udp", hostMapJson("fwd_udp", R"([53,"100.64.0.9"])")},
  };
  EXPECT_EQ(v.maps, maps);
  EXPECT_EQ(v.chains, kHostChains);
  EXPECT_EQ(v.rules, kHostRules);

  // The readable form, as an operator sees it (nft wraps long lines as it likes).
  const CommandResult text = nft(ns, "list table ip edgeplane");
  EXPECT_EQ(squeezed(text.output), squeezed(R"(table ip edgeplane {
	map fwd_tcp {
		type inet_service : ipv4_addr
		flags interval
		elements = { 22015 : 100.64.0.1, 30000-30010 : 100.64.0.3,
			     30011-30020 : 100.64.0.5, 65000-65535 : 100.64.0.7 }
	}

	map fwd_udp {
		type inet_service : ipv4_addr
		flags interval
		elements = { 53 : 100.64.0.9 }
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local tcp dport @fwd_tcp counter packets 0 bytes 0 dnat to tcp dport map @fwd_tcp
		fib daddr type local udp dport @fwd_udp counter packets 0 bytes 0 dnat to udp dport map @fwd_udp
	}

	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local tcp dport @fwd_tcp counter packets 0 bytes 0 dnat to tcp dport map @fwd_tcp
		fib daddr type local udp dport @fwd_udp counter packets 0 bytes 0 dnat to udp dport map @fwd_udp
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "eph-*" oifname "eph-*" counter packets 0 bytes 0 drop
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		iifname "eph-*" oifname != "eph-*" masquerade
	}
}
)"));

  expectObserved(socket, hostDesired());
  EXPECT_EQ(converge(socket, hostDesired()), NftChange::Kind::None);
}

TEST_F(NftLab, NamespaceTableIsExactlyTheDesiredOne) {
  const std::string ns = makeNetns("tenant");
  NftSocket socket = open(ns);
  EXPECT_EQ(converge(socket, nsDesired()), NftChange::Kind::CreateTable);

  const TableView v = viewOf(ns);
  ASSERT_TRUE(v.present);
  const std::map<std::string, std::string> maps = {
      {"fwd_tcp", nsMapJson("fwd_tcp", R"([22015,{"concat":["10.50.0.12",22]}],)"
                                       R"([22016,{"concat":["10.50.0.13",22]}])")},
      {"fwd_udp", nsMapJson("fwd_udp", R"([5353,{"concat":["10.50.0.12",53]}])")},
  };
  EXPECT_EQ(v.maps, maps);
  EXPECT_EQ(v.chains, kNsChains);
  EXPECT_EQ(v.rules, kNsRules);

  const CommandResult text = nft(ns, "list chain ip edgeplane postrouting");
  EXPECT_NE(text.output.find("ct status dnat oifname != \"epn-*\" masquerade"), std::string::npos)
      << text.output;
  const CommandResult pre = nft(ns, "list chain ip edgeplane prerouting");
  EXPECT_NE(pre.output.find(
                "tcp dport @fwd_tcp counter packets 0 bytes 0 dnat ip to tcp dport map @fwd_tcp"),
            std::string::npos)
      << pre.output;

  expectObserved(socket, nsDesired());
  EXPECT_EQ(converge(socket, nsDesired()), NftChange::Kind::None);
}

TEST_F(NftLab, EmptyMapsRoundTrip) {
  const std::string ns = makeNetns("empty");
  NftSocket socket = open(ns);
  NftTableState empty;
  empty.role = NftRole::Host;
  EXPECT_EQ(converge(socket, empty), NftChange::Kind::CreateTable);
  const TableView v = viewOf(ns);
  EXPECT_EQ(v.maps.at("fwd_tcp"), hostMapJson("fwd_tcp", ""));
  expectObserved(socket, empty);
}

TEST_F(NftLab, OneChangedForwardAmongHundredIsOneDeleteAndOneAdd) {
  const std::string ns = makeNetns("tenant");
  NftSocket socket = open(ns);
  NftTableState desired;
  desired.role = NftRole::Namespace;
  for (uint16_t i = 0; i < 100; ++i) {
    desired.tcp.push_back(
        nsMapping(static_cast<uint16_t>(20000 + i), "10.50.0." + std::to_string(10 + i), 22));
  }
  EXPECT_EQ(converge(socket, desired), NftChange::Kind::CreateTable);
  const std::string tableBefore = nft(ns, "-j list table ip edgeplane").output;

  const NftMapping old = desired.tcp[57];
  desired.tcp[57].address = *IpAddress::parse("10.50.1.200");
  desired.tcp[57].targetPort = 2200;
  NftBatch batch;
  EXPECT_EQ(converge(socket, desired, &batch), NftChange::Kind::Elements);
  ASSERT_EQ(batch.ops().size(), 2u);
  EXPECT_EQ(batch.messageCount(), 4u);
  EXPECT_EQ(batch.ops()[0].kind, NftBatchOp::Kind::DeleteElement);
  EXPECT_EQ(batch.ops()[0].mapping, old);
  EXPECT_EQ(batch.ops()[1].kind, NftBatchOp::Kind::AddElement);
  EXPECT_EQ(batch.ops()[1].mapping, desired.tcp[57]);

  const CommandResult elems = nft(ns, "list map ip edgeplane fwd_tcp");
  EXPECT_NE(elems.output.find("20057 : 10.50.1.200 . 2200"), std::string::npos) << elems.output;
  EXPECT_EQ(elems.output.find("10.50.0.67 . 22"), std::string::npos) << elems.output;
  expectObserved(socket, desired);
  // Not a table rewrite: the table and chain handles are those of the first apply.
  const auto handles = [](const std::string& json) {
    std::string out;
    for (size_t p = json.find("\"chain\": {"); p != std::string::npos;
         p = json.find("\"chain\": {", p + 1)) {
      out += json.substr(json.find("\"handle\"", p), 14);
    }
    return out;
  };
  EXPECT_EQ(handles(nft(ns, "-j list table ip edgeplane").output), handles(tableBefore));
  EXPECT_EQ(converge(socket, desired), NftChange::Kind::None);
}

TEST_F(NftLab, HostIntervalEditsKeepNeighboursIntact) {
  const std::string ns = makeNetns("host");
  NftSocket socket = open(ns);
  NftTableState desired;
  desired.role = NftRole::Host;
  desired.tcp = {hostMapping(100, 199, "100.64.0.1"), hostMapping(200, 299, "100.64.0.3"),
                 hostMapping(300, 300, "100.64.0.5"), hostMapping(301, 400, "100.64.0.7")};
  EXPECT_EQ(converge(socket, desired), NftChange::Kind::CreateTable);
  expectObserved(socket, desired);

  // Re-point a range that touches both neighbours; shrink another; drop one; add two more,
  // one adjacent to an existing range and one open-ended.
  desired.tcp = {hostMapping(100, 199, "100.64.0.1"),  hostMapping(200, 299, "100.64.0.9"),
                 hostMapping(300, 300, "100.64.0.5"),  hostMapping(301, 350, "100.64.0.7"),
                 hostMapping(351, 351, "100.64.0.11"), hostMapping(60000, 65535, "100.64.0.13")};
  NftBatch batch;
  EXPECT_EQ(converge(socket, desired, &batch), NftChange::Kind::Elements);
  EXPECT_EQ(batch.ops().size(), 6u);  // 2 deletes, 4 adds
  expectObserved(socket, desired);
  const TableView v = viewOf(ns);
  EXPECT_EQ(v.maps.at("fwd_tcp"),
            hostMapJson("fwd_tcp",
                        R"([{"range":[100,199]},"100.64.0.1"],[{"range":[200,299]},"100.64.0.9"],)"
                        R"([300,"100.64.0.5"],[{"range":[301,350]},"100.64.0.7"],)"
                        R"([351,"100.64.0.11"],[{"range":[60000,65535]},"100.64.0.13"])"));

  desired.tcp.erase(desired.tcp.begin() + 1);
  EXPECT_EQ(converge(socket, desired), NftChange::Kind::Elements);
  expectObserved(socket, desired);
}

TEST_F(NftLab, FlushedOrAlteredTableIsReplacedWhole) {
  const std::string ns = makeNetns("host");
  NftSocket socket = open(ns);
  ASSERT_EQ(converge(socket, hostDesired()), NftChange::Kind::CreateTable);

  const std::vector<std::string> tamperings = {
      "flush chain ip edgeplane prerouting",
      "add rule ip edgeplane forward ip saddr 10.0.0.1 accept",
      "add chain ip edgeplane extra",
      "add set ip edgeplane extra { type ipv4_addr; }",
      "delete chain ip edgeplane output",
      "chain ip edgeplane forward { policy drop; }",
      "flush table ip edgeplane",
  };
  for (const std::string& tamper : tamperings) {
    SCOPED_TRACE(tamper);
    const CommandResult r = nft(ns, "'" + tamper + "'");
    ASSERT_EQ(r.status, 0) << r.output;
    Result<std::optional<NftTableState>> observed = socket.observe();
    ASSERT_TRUE(observed.ok()) << observed.error().message;
    ASSERT_TRUE(observed->has_value());
    EXPECT_FALSE((*observed)->intact);
    EXPECT_EQ(diffTable(*observed, hostDesired()).kind, NftChange::Kind::ReplaceTable);

    EXPECT_EQ(converge(socket, hostDesired()), NftChange::Kind::ReplaceTable);
    const TableView v = viewOf(ns);
    EXPECT_EQ(v.chains, kHostChains);
    EXPECT_EQ(v.rules, kHostRules);
    EXPECT_EQ(v.maps.size(), 2u);
    expectObserved(socket, hostDesired());
  }

  // A lost element is element drift, repaired without touching the rest of the table.
  ASSERT_EQ(nft(ns, "'delete element ip edgeplane fwd_tcp { 30000-30010 }'").status, 0);
  NftBatch batch;
  EXPECT_EQ(converge(socket, hostDesired(), &batch), NftChange::Kind::Elements);
  ASSERT_EQ(batch.ops().size(), 1u);
  EXPECT_EQ(batch.ops()[0].str(), "add element 30000-30010 : 100.64.0.3 to map fwd_tcp");
  expectObserved(socket, hostDesired());
}

TEST_F(NftLab, WrongRoleIsReplaced) {
  const std::string ns = makeNetns("tenant");
  NftSocket socket = open(ns);
  ASSERT_EQ(converge(socket, hostDesired()), NftChange::Kind::CreateTable);
  Result<std::optional<NftTableState>> observed = socket.observe();
  ASSERT_TRUE(observed.ok());
  EXPECT_EQ((*observed)->role, NftRole::Host);
  EXPECT_EQ(converge(socket, nsDesired()), NftChange::Kind::ReplaceTable);
  expectObserved(socket, nsDesired());
  EXPECT_EQ(viewOf(ns).rules, kNsRules);
}

TEST_F(NftLab, DeletedTableIsCreatedAndUndesiredTableDeleted) {
  const std::string ns = makeNetns("host");
  NftSocket socket = open(ns);
  ASSERT_EQ(converge(socket, nsDesired()), NftChange::Kind::CreateTable);
  ASSERT_EQ(nft(ns, "delete table ip edgeplane").status, 0);
  Result<std::optional<NftTableState>> observed = socket.observe();
  ASSERT_TRUE(observed.ok());
  EXPECT_FALSE(observed->has_value());
  EXPECT_EQ(converge(socket, nsDesired()), NftChange::Kind::CreateTable);
  expectObserved(socket, nsDesired());

  EXPECT_EQ(converge(socket, std::nullopt), NftChange::Kind::DeleteTable);
  EXPECT_FALSE(viewOf(ns).present);
  EXPECT_EQ(converge(socket, std::nullopt), NftChange::Kind::None);
  // Deleting a table that is not there is not an error either.
  EXPECT_TRUE(socket.send(buildDeleteTable()).ok());
}

TEST_F(NftLab, ForeignTablesAreLeftAlone) {
  const std::string ns = makeNetns("host");
  const std::string foreign =
      "add table ip foreign\n"
      "add chain ip foreign input { type filter hook input priority 0; policy accept; }\n"
      "add rule ip foreign input tcp dport 22 counter accept\n"
      "add table inet edgeplane\n"
      "add chain inet edgeplane prerouting { type nat hook prerouting priority dstnat; }\n"
      "add rule inet edgeplane prerouting tcp dport 8080 redirect to :80\n";
  const std::string file = "/tmp/nftlab-foreign-" + std::to_string(::getpid()) + ".nft";
  FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs(foreign.c_str(), f);
  std::fclose(f);
  const CommandResult loaded = nft(ns, "-f " + file);
  std::remove(file.c_str());
  ASSERT_EQ(loaded.status, 0) << loaded.output;
  const std::string before =
      nft(ns, "list table ip foreign").output + nft(ns, "list table inet edgeplane").output;

  NftSocket socket = open(ns);
  NftTableState desired = hostDesired();
  EXPECT_EQ(converge(socket, desired), NftChange::Kind::CreateTable);
  desired.tcp.pop_back();
  EXPECT_EQ(converge(socket, desired), NftChange::Kind::Elements);
  ASSERT_EQ(nft(ns, "flush chain ip edgeplane prerouting").status, 0);
  EXPECT_EQ(converge(socket, desired), NftChange::Kind::ReplaceTable);
  expectObserved(socket, desired);
  EXPECT_EQ(converge(socket, std::nullopt), NftChange::Kind::DeleteTable);

  const std::string after =
      nft(ns, "list table ip foreign").output + nft(ns, "list table inet edgeplane").output;
  EXPECT_EQ(after, before);
  const TableView v = viewOf(ns);
  EXPECT_EQ(v.allTables, (std::vector<std::string>{"ip foreign", "inet edgeplane"}));
}

TEST_F(NftLab, KernelRejectionsNameTheObjectAndChangeNothing) {
  const std::string ns = makeNetns("host");
  NftSocket socket = open(ns);
  NftTableState desired;
  desired.role = NftRole::Host;
  desired.tcp = {hostMapping(100, 200, "100.64.0.1")};
  ASSERT_EQ(converge(socket, desired), NftChange::Kind::CreateTable);
  const std::string before = nft(ns, "list ruleset").output;

  // An interval overlapping one already in the map: the kernel refuses it.
  NftElementDelta overlap;
  overlap.add = {hostMapping(150, 250, "100.64.0.9")};
  Result<NftBatch> batch = buildElementChanges(NftRole::Host, overlap, {});
  ASSERT_TRUE(batch.ok());
  Result<void> r = socket.send(*batch);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("add element 150-250 : 100.64.0.9 to map fwd_tcp"),
            std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("namespace " + ns), std::string::npos) << r.error().message;
  EXPECT_FALSE(r.error().retryable);
  std::printf("kernel rejection: %s\n", r.error().message.c_str());

  // A valid add and a delete of a missing element in one batch: all or nothing.
  NftElementDelta mixed;
  mixed.add = {hostMapping(1000, 1000, "100.64.0.3")};
  NftElementDelta missing;
  missing.remove = {hostMapping(53, 53, "100.64.0.9")};
  batch = buildElementChanges(NftRole::Host, mixed, missing);
  ASSERT_TRUE(batch.ok());
  r = socket.send(*batch);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("delete element 53 : 100.64.0.9 from map fwd_udp"),
            std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("No such file or directory"), std::string::npos);
  std::printf("kernel rejection: %s\n", r.error().message.c_str());

  EXPECT_EQ(nft(ns, "list ruleset").output, before);
  expectObserved(socket, desired);

  // The socket stays usable after rejected batches.
  desired.tcp.push_back(hostMapping(1000, 1000, "100.64.0.3"));
  EXPECT_EQ(converge(socket, desired), NftChange::Kind::Elements);
  expectObserved(socket, desired);
}

TEST_F(NftLab, ARefusedElementAmongHundredsInOneMessageIsNamed) {
  const std::string ns = makeNetns("host");
  NftSocket socket = open(ns);
  NftTableState desired;
  desired.role = NftRole::Host;
  desired.tcp = {hostMapping(20300, 20300, "100.64.0.1")};
  ASSERT_EQ(converge(socket, desired), NftChange::Kind::CreateTable);
  const std::string before = nft(ns, "list ruleset").output;

  // 600 new mappings, 20000-20599: the one at 20300 is already there. They span several
  // messages; the refused one sits in the middle of one of them.
  NftElementDelta add;
  for (uint16_t port = 20000; port < 20600; ++port) {
    add.add.push_back(hostMapping(port, port, "100.64.0.9"));
  }
  Result<NftBatch> batch = buildElementChanges(NftRole::Host, add, {});
  ASSERT_TRUE(batch.ok());
  ASSERT_GT(batch->messages().size(), 1u);
  ASSERT_LT(batch->messages().size(), 20u);
  Result<void> r = socket.send(*batch);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("add element 20300 : 100.64.0.9 to map fwd_tcp: "),
            std::string::npos)
      << r.error().message;
  std::printf("kernel rejection: %s\n", r.error().message.c_str());
  EXPECT_EQ(nft(ns, "list ruleset").output, before);
  expectObserved(socket, desired);
}

TEST_F(NftLab, LargeBatchesGoThroughWhole) {
  const std::string ns = makeNetns("tenant");
  NftSocket socket = open(ns);
  NftTableState desired;
  desired.role = NftRole::Namespace;
  for (uint32_t i = 0; i < 20000; ++i) {
    const auto port = static_cast<uint16_t>(1 + i);
    NftMapping m = nsMapping(port, "10.50.0.2", static_cast<uint16_t>(port));
    m.address.bytes[2] = static_cast<uint8_t>(i >> 8);
    m.address.bytes[3] = static_cast<uint8_t>(i & 0xff);
    (i % 2 == 0 ? desired.tcp : desired.udp).push_back(m);
  }
  NftBatch batch;
  EXPECT_EQ(converge(socket, desired, &batch), NftChange::Kind::CreateTable);
  EXPECT_GT(batch.size(), 512u << 10);
  expectObserved(socket, desired);

  // And a batch too big to acknowledge into a small receive queue still reports success.
  desired.tcp.clear();
  EXPECT_EQ(converge(socket, desired), NftChange::Kind::Elements);
  expectObserved(socket, desired);
}

TEST_F(NftLab, OpenFailsForMissingNamespace) {
  Result<NftSocket> s = NftSocket::open("nftlab-does-not-exist");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("nftlab-does-not-exist"), std::string::npos);
}

// ---- End to end: a client reaches a backend through host DNAT and namespace DNAT ----

int socketIn(const std::string& ns, int type, int timeoutSeconds = 3) {
  Result<NetnsScope> scope = NetnsScope::enter(ns);
  if (!scope) {
    ADD_FAILURE() << scope.error().message;
    return -1;
  }
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  timeval tv{timeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

sockaddr_in sockaddrOf(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

std::string ipOf(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return buf;
}

// Answers every TCP connection and UDP datagram with "<tag> peer=<source address>".
class Backend {
 public:
  Backend(const std::string& ns, const std::string& tag, const std::string& ip, uint16_t tcpPort,
          uint16_t udpPort)
      : tag_(tag) {
    tcp_ = socketIn(ns, SOCK_STREAM);
    udp_ = socketIn(ns, SOCK_DGRAM);
    const int on = 1;
    ::setsockopt(tcp_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    sockaddr_in t = sockaddrOf(ip, tcpPort);
    sockaddr_in u = sockaddrOf(ip, udpPort);
    ok_ = ::bind(tcp_, reinterpret_cast<sockaddr*>(&t), sizeof(t)) == 0 &&
          ::listen(tcp_, 16) == 0 && ::bind(udp_, reinterpret_cast<sockaddr*>(&u), sizeof(u)) == 0;
    thread_ = std::thread([this] { serve(); });
  }
  ~Backend() {
    stop_ = true;
    thread_.join();
    ::close(tcp_);
    ::close(udp_);
  }
  bool ok() const { return ok_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd fds[2] = {{tcp_, POLLIN, 0}, {udp_, POLLIN, 0}};
      if (::poll(fds, 2, 50) <= 0) {
        continue;
      }
      if ((fds[0].revents & POLLIN) != 0) {
        sockaddr_in peer{};
        socklen_t len = sizeof(peer);
        const int c = ::accept4(tcp_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
        if (c >= 0) {
          const std::string reply = tag_ + " peer=" + ipOf(peer);
          (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
          ::close(c);
        }
      }
      if ((fds[1].revents & POLLIN) != 0) {
        sockaddr_in peer{};
        socklen_t len = sizeof(peer);
        char buf[512];
        if (::recvfrom(udp_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &len) >= 0) {
          const std::string reply = tag_ + " peer=" + ipOf(peer);
          (void)::sendto(udp_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer),
                         len);
        }
      }
    }
  }

  std::string tag_;
  int tcp_ = -1;
  int udp_ = -1;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Connects from `ns` and returns what the backend said ("" if nothing got through).
std::string tcpExchange(const std::string& ns, const std::string& ip, uint16_t port,
                        int timeoutSeconds = 3) {
  const int fd = socketIn(ns, SOCK_STREAM, timeoutSeconds);
  sockaddr_in a = sockaddrOf(ip, port);
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    char buf[128];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      got.assign(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return got;
}

std::string udpExchange(const std::string& ns, const std::string& ip, uint16_t port,
                        std::string* from) {
  const int fd = socketIn(ns, SOCK_DGRAM);
  sockaddr_in a = sockaddrOf(ip, port);
  std::string got;
  if (::sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 4) {
    char buf[128];
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    const ssize_t n = ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &len);
    if (n > 0) {
      got.assign(buf, static_cast<size_t>(n));
      *from = ipOf(peer) + ":" + std::to_string(ntohs(peer.sin_port));
    }
  }
  ::close(fd);
  return got;
}

TEST_F(NftLab, EndToEndForwardingThroughHostAndNamespace) {
  const std::string host = makeNetns("edge");
  const std::string tenant = makeNetns("tenant");
  const std::string other = makeNetns("other");
  const std::string client = makeNetns("client");
  const std::string backend = makeNetns("backend");

  // client 10.99.0.2 --- 10.99.0.1 host ("public" address)
  sh(host, "ip link add pub0 type veth peer name cli0 netns " + netnsPath(client));
  sh(host, "ip addr add 10.99.0.1/24 dev pub0");
  sh(host, "ip link set pub0 up");
  sh(client, "ip addr add 10.99.0.2/24 dev cli0");
  sh(client, "ip link set cli0 up");
  // host eph-t 100.64.0.0/31 --- epn-t 100.64.0.1/31 tenant, and a second tenant likewise.
  sh(host, "ip link add eph-t type veth peer name epn-t netns " + netnsPath(tenant));
  sh(host, "ip addr add 100.64.0.0/31 dev eph-t");
  sh(host, "ip link set eph-t up");
  sh(tenant, "ip addr add 100.64.0.1/31 dev epn-t");
  sh(tenant, "ip link set epn-t up");
  sh(tenant, "ip route add default via 100.64.0.0");
  sh(host, "ip link add eph-o type veth peer name epn-o netns " + netnsPath(other));
  sh(host, "ip addr add 100.64.0.2/31 dev eph-o");
  sh(host, "ip link set eph-o up");
  sh(other, "ip addr add 100.64.0.3/31 dev epn-o");
  sh(other, "ip link set epn-o up");
  sh(other, "ip route add default via 100.64.0.2");
  // tenant wg0 10.50.0.1/24 --- 10.50.0.12 backend (stands in for a WireGuard peer); the
  // backend has no route back to the client, so replies only work through masquerade.
  sh(tenant, "ip link add wg0 type veth peer name bk0 netns " + netnsPath(backend));
  sh(tenant, "ip addr add 10.50.0.1/24 dev wg0");
  sh(tenant, "ip link set wg0 up");
  sh(backend, "ip addr add 10.50.0.12/24 dev bk0");
  sh(backend, "ip link set bk0 up");
  sh(host, "sysctl -qw net.ipv4.ip_forward=1");
  sh(tenant, "sysctl -qw net.ipv4.ip_forward=1");

  NftTableState hostState;
  hostState.role = NftRole::Host;
  hostState.tcp = {hostMapping(22015, 22015, "100.64.0.1"),
                   hostMapping(30000, 30009, "100.64.0.1")};
  hostState.udp = {hostMapping(5353, 5353, "100.64.0.1")};
  NftTableState tenantState;
  tenantState.role = NftRole::Namespace;
  tenantState.tcp = {nsMapping(22015, "10.50.0.12", 22)};
  for (uint16_t p = 30000; p <= 30009; ++p) {
    tenantState.tcp.push_back(nsMapping(p, "10.50.0.12", 8000));
  }
  tenantState.udp = {nsMapping(5353, "10.50.0.12", 53)};
  NftSocket hostSocket = open(host);
  NftSocket tenantSocket = open(tenant);
  ASSERT_EQ(converge(hostSocket, hostState), NftChange::Kind::CreateTable);
  ASSERT_EQ(converge(tenantSocket, tenantState), NftChange::Kind::CreateTable);

  Backend ssh(backend, "ssh", "10.50.0.12", 22, 53);
  Backend web(backend, "web", "10.50.0.12", 8000, 54);
  ASSERT_TRUE(ssh.ok());
  ASSERT_TRUE(web.ok());

  // The backend sees the tenant's address: the namespace masqueraded the DNATed connection.
  EXPECT_EQ(tcpExchange(client, "10.99.0.1", 22015), "ssh peer=10.50.0.1");
  EXPECT_EQ(tcpExchange(client, "10.99.0.1", 30005), "web peer=10.50.0.1");  // inside a range
  // The host reaches a forward on its own address (output chain).
  EXPECT_EQ(tcpExchange(host, "10.99.0.1", 22015), "ssh peer=10.50.0.1");
  std::string from;
  EXPECT_EQ(udpExchange(client, "10.99.0.1", 5353, &from), "ssh peer=10.50.0.1");
  EXPECT_EQ(from, "10.99.0.1:5353");  // the reply is un-NATed on the way back
  // A port without a forward is not forwarded.
  EXPECT_EQ(tcpExchange(client, "10.99.0.1", 22016), "");

  // Tenants cannot reach each other through the host.
  EXPECT_EQ(tcpExchange(other, "100.64.0.1", 22015, 1), "");

  Result<std::optional<NftTableState>> h = hostSocket.observe();
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(h->has_value());
  const NftCounters& hc = (*h)->counters;
  // NAT chains see the first packet of each connection; unforwarded ports are not counted.
  EXPECT_EQ(hc.dnatTcp.packets, 2u);
  EXPECT_GT(hc.dnatTcp.bytes, 0u);
  EXPECT_EQ(hc.localDnatTcp.packets, 1u);
  EXPECT_EQ(hc.dnatUdp.packets, 1u);
  EXPECT_GE(hc.tenantDrop.packets, 1u);
  Result<std::optional<NftTableState>> t = tenantSocket.observe();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->counters.dnatTcp.packets, 3u);
  EXPECT_EQ((*t)->counters.dnatUdp.packets, 1u);

  // Re-point the forward to another backend port with an element change only.
  tenantState.tcp[0].targetPort = 8000;
  EXPECT_EQ(converge(tenantSocket, tenantState), NftChange::Kind::Elements);
  EXPECT_EQ(tcpExchange(client, "10.99.0.1", 22015), "web peer=10.50.0.1");
  Result<std::optional<NftTableState>> t2 = tenantSocket.observe();
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ((*t2)->counters.dnatTcp.packets, 4u);  // counters survive element changes
}

}  // namespace
}  // namespace edgeplane::sys
