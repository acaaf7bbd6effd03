// The driver contracts (tests/support/driver_contracts.h) kept by the kernel drivers, in the lab.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "reconciler/system/host_driver.h"
#include "tests/support/driver_contracts.h"

namespace edgeplane::contract {
namespace {

// Runs a shell command quietly; its exit status.
int sh(const std::string& cmd) {
  const int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// `ip` for a scope: the host's, or inside ep-<scope>.
std::string ipIn(const std::string& scope) {
  return scope.empty() ? "ip" : "ip -n ep-" + scope;
}
std::string execIn(const std::string& scope) {
  return scope.empty() ? "" : "ip netns exec ep-" + scope + " ";
}

// The kernel drivers on the lab's host (lab_main.cpp isolated the process); foreign objects
// are made with ip(8) and nft(8), as another program would. Everything is removed afterwards.
class KernelWorld {
 public:
  KernelWorld() {
    char tmpl[] = "/tmp/driver_contract_XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) {
      stateDir_ = tmpl;
    }
    set_ = std::make_unique<sys::KernelDriverSet>(stateDir_, sys::WgBackendChoice::Userspace);
  }
  ~KernelWorld() {
    (void)set_->wireguard.remove(kTenant);  // stops its wireguard-go, if a test started one
    sh("ip link del eph-" + kTenant);
    sh("ip link del other-ct");
    sh("nft delete table ip edgeplane");
    sh("nft delete table ip foreign");
    sh("ip netns del " + kNetns);
    sh("ip netns del blue");
    sh("sysctl -qw net.ipv4.ip_forward=0");
    if (!stateDir_.empty()) {
      std::filesystem::remove_all(stateDir_);
    }
  }
  KernelWorld(const KernelWorld&) = delete;
  KernelWorld& operator=(const KernelWorld&) = delete;

  const std::string& stateDir() const { return stateDir_; }
  core::HostDrivers drivers() {
    return {set_->namespaces, set_->uplinks, set_->routes, set_->nft, set_->wireguard};
  }
  void addForeignNamespace(const std::string& netns) { ASSERT_EQ(sh("ip netns add " + netns), 0); }
  void addForeignLink(const std::string& scope, const std::string& name) {
    ASSERT_EQ(sh(ipIn(scope) + " link add " + name + " type veth peer name " + name + "p"), 0);
  }
  bool hasLink(const std::string& scope, const std::string& name) {
    return sh(ipIn(scope) + " link show " + name) == 0;
  }
  void addForeignRoute(const std::string& scope, const IpPrefix& to, const IpAddress& via) {
    ASSERT_EQ(sh(ipIn(scope) + " route add " + to.str() + " via " + via.str() + " proto static"),
              0);
  }
  void addForeignTable(const std::string& scope) {
    ASSERT_EQ(sh(execIn(scope) + "nft add table ip foreign"), 0);
  }
  bool hasForeignTable(const std::string& scope) {
    return sh(execIn(scope) + "nft list table ip foreign") == 0;
  }

 private:
  std::string stateDir_;
  std::unique_ptr<sys::KernelDriverSet> set_;
};

// The backend is chosen per interface, as wireguard-tools does: an interface wireguard-go
// runs is driven over UAPI whatever the configured choice, here one that insists on the
// kernel (which, without the module, could not create it).
TEST(KernelWireGuardBackend, AnExistingInterfaceIsDrivenByWhatRunsIt) {
  KernelWorld world;
  core::HostDrivers d = world.drivers();
  ASSERT_TRUE(d.namespaces.create(kTenant).ok());
  ASSERT_TRUE(d.wireguard.ensure(wireguard()).ok());
  // Another run of the same host (same state directory), configured for the kernel.
  sys::KernelWireGuard kernelChoice(world.stateDir(), sys::WgBackendChoice::Kernel);
  auto synced = kernelChoice.syncPeers(wireguard({peer("a", kPeerA, "10.50.0.2/32", 25)}));
  ASSERT_TRUE(synced.ok()) << synced.error().message;
  auto seen = kernelChoice.observe(kTenant);
  ASSERT_TRUE(seen.ok()) << seen.error().message;
  ASSERT_TRUE(seen->device.has_value());
  ASSERT_EQ(seen->device->peers.size(), 1u);
  EXPECT_EQ(seen->device->peers[0].publicKey, key(kPeerA));
}

// observeEach asks the namespaces' interfaces on several threads at once: it answers what
// observe answers for each, in their order, a namespace without an interface included.
TEST(KernelWireGuardObserveEach, AnswersWhatObserveAnswersForEach) {
  KernelWorld world;
  core::HostDrivers d = world.drivers();
  const std::vector<std::string> tenants = {"owa", "owb", "owc", "owd", "owe"};
  for (size_t i = 0; i < tenants.size(); ++i) {
    ASSERT_TRUE(d.namespaces.create(tenants[i]).ok());
    if (i + 1 == tenants.size()) {
      break;  // the last one has no interface
    }
    core::WireGuardTarget wg = wireguard({peer("a", i % 2 == 0 ? kPeerA : kPeerB,
                                               ("10.50.0." + std::to_string(i + 2) + "/32").c_str(),
                                               static_cast<uint16_t>(20 + i))});
    wg.ns = tenants[i];
    wg.ifname = "wg-" + tenants[i];
    wg.listenPort = static_cast<uint16_t>(51910 + i);
    auto made = d.wireguard.ensure(wg);
    ASSERT_TRUE(made.ok()) << made.error().message;
    ASSERT_TRUE(d.wireguard.syncPeers(wg).ok());
  }
  std::vector<std::string> asked = tenants;
  asked.push_back("absent");
  auto each = d.wireguard.observeEach(asked);
  ASSERT_EQ(each.size(), asked.size());
  for (size_t i = 0; i < asked.size(); ++i) {
    auto one = d.wireguard.observe(asked[i]);
    ASSERT_EQ(each[i].ok(), one.ok()) << asked[i];
    if (!one.ok()) {
      EXPECT_EQ(each[i].error().message, one.error().message);
      continue;
    }
    EXPECT_EQ(each[i]->device, one->device) << asked[i];
    EXPECT_EQ(each[i]->storedPublicKey, one->storedPublicKey) << asked[i];
    EXPECT_EQ(each[i]->device.has_value(), i + 2 < asked.size()) << asked[i];
  }
  ASSERT_TRUE(each[0]->device.has_value());
  EXPECT_EQ(each[0]->device->listenPort, 51910);
  ASSERT_EQ(each[3]->device->peers.size(), 1u);
  EXPECT_EQ(each[3]->device->peers[0].publicKey, key(kPeerB));
  for (const auto& t : tenants) {
    (void)d.wireguard.remove(t);
    (void)d.namespaces.remove(t);
  }
}

INSTANTIATE_TYPED_TEST_SUITE_P(Kernel, NamespaceContract, KernelWorld);
INSTANTIATE_TYPED_TEST_SUITE_P(Kernel, UplinkContract, KernelWorld);
INSTANTIATE_TYPED_TEST_SUITE_P(Kernel, RouteContract, KernelWorld);
INSTANTIATE_TYPED_TEST_SUITE_P(Kernel, NftContract, KernelWorld);
INSTANTIATE_TYPED_TEST_SUITE_P(Kernel, WireGuardContract, KernelWorld);

}  // namespace
}  // namespace edgeplane::contract
