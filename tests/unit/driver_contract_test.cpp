// The driver contracts (tests/support/driver_contracts.h) kept by the in-memory fakes.
#include <set>

#include "tests/support/driver_contracts.h"
#include "tests/support/fake_drivers.h"

namespace edgeplane::contract {
namespace {

// The fakes over a fresh FakeKernel; foreign objects go straight into its state.
class FakeWorld {
 public:
  core::HostDrivers drivers() { return set_.drivers(); }
  void addForeignNamespace(const std::string& netns) { kernel_.state.namespaces[netns] = {}; }
  void addForeignLink(const std::string& scope, const std::string& name) {
    kernel_.view(scope)->links.push_back(core::LinkView{name, true, {}});
  }
  bool hasLink(const std::string& scope, const std::string& name) {
    const core::NetnsView* v = kernel_.view(scope);
    return v != nullptr && v->link(name) != nullptr;
  }
  void addForeignRoute(const std::string& scope, const IpPrefix& to, const IpAddress& via) {
    kernel_.view(scope)->routes.push_back(core::RouteView{to, via, "dummy", false, "static"});
  }
  // The fake models edgeplane's table only: another one is a name kept beside it.
  void addForeignTable(const std::string& scope) { foreignTables_.insert(scope); }
  bool hasForeignTable(const std::string& scope) { return foreignTables_.count(scope) == 1; }

 private:
  testing::FakeKernel kernel_;
  testing::FakeDriverSet set_{kernel_};
  std::set<std::string> foreignTables_;
};

INSTANTIATE_TYPED_TEST_SUITE_P(Fake, NamespaceContract, FakeWorld);
INSTANTIATE_TYPED_TEST_SUITE_P(Fake, UplinkContract, FakeWorld);
INSTANTIATE_TYPED_TEST_SUITE_P(Fake, RouteContract, FakeWorld);
INSTANTIATE_TYPED_TEST_SUITE_P(Fake, NftContract, FakeWorld);
INSTANTIATE_TYPED_TEST_SUITE_P(Fake, WireGuardContract, FakeWorld);

}  // namespace
}  // namespace edgeplane::contract
