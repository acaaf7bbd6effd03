// Golden plans: each tests/golden/<case>/ holds desired/ (a config root), observed.json (the
// host and store as observed; absent = an empty host) and the expected plan.txt + plan.json.
// EDGEPLANE_UPDATE_GOLDEN=1 rewrites the expected files (review the diff before committing).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "reconciler/core/plan.h"
#include "reconciler/core/state_json.h"
#include "schema/loader.h"
#include "schema/validate.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, PlanMatches) {
  const fs::path dir = fs::path(EDGEPLANE_GOLDEN_DIR) / GetParam();
  Diagnostics diags;
  Desired all = loadAndValidate(dir / "desired", diags);
  ASSERT_TRUE(diags.empty()) << diags.format();

  core::ObservedJson observed;
  if (fs::exists(dir / "observed.json")) {
    auto parsed = core::observedFromJson(readFile(dir / "observed.json"));
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    observed = std::move(parsed.value());
  }
  const std::string host = targetHosts(all).front();
  auto target = core::buildTarget(resolveFor(all, host), host, observed.store);
  ASSERT_TRUE(target.ok()) << target.error().message;
  core::Plan plan = core::plan(*target, observed.host, observed.store);
  const std::string text = core::renderText(plan);
  const std::string json = core::renderJson(plan);

  const char* update = std::getenv("EDGEPLANE_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(dir / "plan.txt", std::ios::binary) << text;
    std::ofstream(dir / "plan.json", std::ios::binary) << json;
    GTEST_SKIP() << "updated " << dir.string();
  }
  EXPECT_EQ(readFile(dir / "plan.txt"), text) << "in " << dir.string();
  EXPECT_EQ(readFile(dir / "plan.json"), json) << "in " << dir.string();
}

std::vector<std::string> cases() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(EDGEPLANE_GOLDEN_DIR)) {
    if (e.is_directory() && fs::exists(e.path() / "desired")) {
      out.push_back(e.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string caseName(const ::testing::TestParamInfo<std::string>& param) {
  std::string n = param.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

INSTANTIATE_TEST_SUITE_P(Cases, Golden, ::testing::ValuesIn(cases()), caseName);

}  // namespace
}  // namespace edgeplane
