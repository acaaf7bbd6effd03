// The model's own small types: SourceFile (a shared file name) and LocationMap (a table's key
// locations, a sorted vector standing in for a map).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "schema/model.h"

namespace edgeplane {
namespace {

TEST(SourceFile, ComparesAndPrintsAsItsName) {
  const SourceFile a("a.toml");
  const SourceFile copy = a;
  EXPECT_EQ(&copy.str(), &a.str());    // a copy shares the string
  EXPECT_EQ(a, SourceFile("a.toml"));  // equal by name, not by identity
  EXPECT_LT(a, SourceFile("b.toml"));
  EXPECT_NE(a, SourceFile("b.toml"));
  EXPECT_TRUE(SourceFile().empty());
  EXPECT_EQ(SourceFile(), SourceFile(""));
  std::ostringstream out;
  out << a;
  EXPECT_EQ(out.str(), "a.toml");
  const std::string& name = a;
  EXPECT_EQ(name, "a.toml");
}

// LocationMap answers as std::map would for the same operations, in any order.
TEST(LocationMap, AnswersAsAMapDoes) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    LocationMap flat;
    std::map<std::string, SourceLoc, std::less<>> tree;
    for (int step = 0; step < 60; ++step) {
      const std::string key = "k" + std::to_string(rng() % 20);
      const SourceLoc loc{"f.toml", static_cast<uint32_t>(step + 1), 1};
      switch (rng() % 4) {
        case 0:
          flat[key] = loc;
          tree[key] = loc;
          break;
        case 1:
          flat.insert_or_assign(key, loc);
          tree.insert_or_assign(key, loc);
          break;
        case 2:
          EXPECT_EQ(flat.erase(key), tree.erase(key));
          break;
        default:
          EXPECT_EQ(flat.count(key), tree.count(key));
          if (auto it = flat.find(key); it != flat.end()) {
            EXPECT_EQ(it->second, tree.at(key));
          }
      }
      ASSERT_EQ(flat.size(), tree.size());
      EXPECT_TRUE(std::equal(
          flat.begin(), flat.end(), tree.begin(), tree.end(),
          [](const auto& x, const auto& y) { return x.first == y.first && x.second == y.second; }));
    }
  }
}

TEST(LocationMap, OriginFallsBackFromElementToKeyToTable) {
  Origin o;
  o.table = SourceLoc{"t.toml", 3, 1};
  o.fields["hostnames"] = SourceLoc{"t.toml", 5, 13};
  o.fields[Origin::elementKey("hostnames", 1)] = SourceLoc{"t.toml", 5, 30};
  EXPECT_EQ(o.at("hostnames", 1), (SourceLoc{"t.toml", 5, 30}));
  EXPECT_EQ(o.at("hostnames", 0), (SourceLoc{"t.toml", 5, 13}));
  EXPECT_EQ(o.at("name"), (SourceLoc{"t.toml", 3, 1}));
  EXPECT_TRUE(o.isLoaded("hostnames"));
  EXPECT_FALSE(o.isLoaded("name"));
}

}  // namespace
}  // namespace edgeplane
