// RoutingTable: exact before wildcard, one-label wildcards, case, bad input, thread sharing.
#include "proxy/sni_router.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace edgeplane::proxy {
namespace {

std::shared_ptr<const RoutingTable> make(std::vector<RouteHosts> routes,
                                         WildcardDepth depth = WildcardDepth::OneLabel) {
  std::vector<RouteTableIssue> issues;
  auto table = RoutingTable::build(routes, issues, depth);
  EXPECT_TRUE(issues.empty()) << issues.front().hostname << ": " << issues.front().reason;
  return table;
}

TEST(RoutingTable, ExactMatch) {
  auto t = make({{1, {"example.com", "www.example.com"}}, {2, {"api.example.com"}}});
  EXPECT_EQ(t->lookup("example.com"), 1u);
  EXPECT_EQ(t->lookup("www.example.com"), 1u);
  EXPECT_EQ(t->lookup("api.example.com"), 2u);
  EXPECT_EQ(t->lookup("other.example.com"), std::nullopt);
  EXPECT_EQ(t->lookup("example.org"), std::nullopt);
  EXPECT_EQ(t->exactCount(), 3u);
  EXPECT_EQ(t->wildcardCount(), 0u);
}

TEST(RoutingTable, CaseInsensitiveAndTrailingDot) {
  auto t = make({{1, {"Www.Example.COM"}}, {2, {"*.APPS.example.com"}}});
  EXPECT_EQ(t->lookup("www.example.com"), 1u);
  EXPECT_EQ(t->lookup("WWW.EXAMPLE.COM"), 1u);
  EXPECT_EQ(t->lookup("www.example.com."), 1u);
  EXPECT_EQ(t->lookup("X.Apps.Example.Com"), 2u);
  EXPECT_EQ(t->lookup("www.example.com.."), std::nullopt);
}

TEST(RoutingTable, WildcardMatchesExactlyOneLabel) {
  auto t = make({{7, {"*.apps.example.com"}}});
  EXPECT_EQ(t->lookup("x.apps.example.com"), 7u);
  EXPECT_EQ(t->lookup("my-app.apps.example.com"), 7u);
  EXPECT_EQ(t->lookup("apps.example.com"), std::nullopt);      // zero labels
  EXPECT_EQ(t->lookup("a.b.apps.example.com"), std::nullopt);  // two labels
  EXPECT_EQ(t->lookup("xapps.example.com"), std::nullopt);     // not a label boundary
  EXPECT_EQ(t->lookup(".apps.example.com"), std::nullopt);     // empty label
  EXPECT_EQ(t->lookup("*.apps.example.com"), std::nullopt);    // literal '*'
}

TEST(RoutingTable, ExactBeatsWildcard) {
  auto t = make({{1, {"*.example.com"}}, {2, {"www.example.com"}}});
  EXPECT_EQ(t->lookup("www.example.com"), 2u);
  EXPECT_EQ(t->lookup("mail.example.com"), 1u);
  EXPECT_EQ(t->lookup("example.com"), std::nullopt);
}

TEST(RoutingTable, NestedWildcardsOneLabel) {
  // With one-label wildcards each name has a single candidate wildcard: its parent.
  auto t = make({{1, {"*.example.com"}}, {2, {"*.apps.example.com"}}});
  EXPECT_EQ(t->lookup("x.example.com"), 1u);
  EXPECT_EQ(t->lookup("apps.example.com"), 1u);
  EXPECT_EQ(t->lookup("x.apps.example.com"), 2u);
  EXPECT_EQ(t->lookup("a.b.example.com"), std::nullopt);
  EXPECT_EQ(t->lookup("a.x.apps.example.com"), std::nullopt);
}

TEST(RoutingTable, AnyDepthTakesTheLongestWildcard) {
  auto t = make({{1, {"*.example.com"}}, {2, {"*.apps.example.com"}}, {3, {"a.apps.example.com"}}},
                WildcardDepth::AnyDepth);
  EXPECT_EQ(t->depth(), WildcardDepth::AnyDepth);
  EXPECT_EQ(t->lookup("a.apps.example.com"), 3u);
  EXPECT_EQ(t->lookup("x.apps.example.com"), 2u);
  EXPECT_EQ(t->lookup("a.b.c.apps.example.com"), 2u);
  EXPECT_EQ(t->lookup("a.b.example.com"), 1u);
  EXPECT_EQ(t->lookup("apps.example.com"), 1u);
  EXPECT_EQ(t->lookup("example.com"), std::nullopt);
  EXPECT_EQ(t->lookup("a..example.com"), std::nullopt);
}

TEST(RoutingTable, InvalidAndContestedNamesAreReported) {
  std::vector<RouteHosts> routes = {
      {1,
       {"example.com", "*.example.com", "bad_name.com", "*.com", "localhost", "*.*.x.com",
        "a.*.example.com", "", "example.com"}},
      {2, {"example.com", "*.example.com", "ok.example.net"}},
  };
  std::vector<RouteTableIssue> issues;
  auto t = RoutingTable::build(routes, issues);
  std::vector<std::string> flagged;
  for (const RouteTableIssue& i : issues) {
    flagged.push_back(std::to_string(i.route) + ":" + i.hostname);
  }
  EXPECT_EQ(flagged, (std::vector<std::string>{"1:bad_name.com", "1:*.com", "1:localhost",
                                               "1:*.*.x.com", "1:a.*.example.com",
                                               "1:", "2:example.com", "2:*.example.com"}));
  // The first route keeps a contested name; a name repeated within a route is harmless.
  EXPECT_EQ(t->lookup("example.com"), 1u);
  EXPECT_EQ(t->lookup("x.example.com"), 1u);
  EXPECT_EQ(t->lookup("ok.example.net"), 2u);
}

TEST(RoutingTable, HostileLookupsMatchNothing) {
  auto t = make({{1, {"*.example.com", "example.com"}}});
  std::string longName(300, 'a');
  for (std::string_view name :
       {std::string_view(""), std::string_view("."), std::string_view(".."),
        std::string_view("com"), std::string_view(".com"), std::string_view("x..example.com"),
        std::string_view("x .example.com"), std::string_view("x\0.example.com", 14),
        std::string_view("\xC3\xA9.example.com"), std::string_view(longName),
        std::string_view("x_y.example.com")}) {
    EXPECT_EQ(t->lookup(name), std::nullopt) << name;
  }
  std::string max = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') +
                    "." + std::string(49, 'd') + ".example.com";
  ASSERT_EQ(max.size(), 253u);
  auto t2 = make({{9, {max}}});
  EXPECT_EQ(t2->lookup(max), 9u);
  EXPECT_EQ(t2->lookup(max + "."), 9u);
}

TEST(RoutingTable, EmptyTable) {
  auto t = make({});
  EXPECT_EQ(t->lookup("example.com"), std::nullopt);
}

TEST(RoutingTable, SharedAcrossThreadsWhileSwapped) {
  // Each generation g maps both names to g: a reader that sees a mix has seen a torn table.
  auto gen = [](RouteId g) { return make({{g, {"a.example.com", "*.b.example.com"}}}); };
  std::atomic<std::shared_ptr<const RoutingTable>> current(gen(1));
  std::atomic<bool> stop(false);
  std::atomic<int> torn(0);
  std::atomic<long> lookups(0);
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        std::shared_ptr<const RoutingTable> t = current.load();
        auto a = t->lookup("a.example.com");
        auto b = t->lookup("x.b.example.com");
        if (!a || !b || *a != *b) {
          torn.fetch_add(1);
        }
        lookups.fetch_add(1);
      }
    });
  }
  for (RouteId g = 2; g <= 200; ++g) {
    current.store(gen(g));
  }
  while (lookups.load() < 1000) {
    std::this_thread::yield();
  }
  stop.store(true);
  for (std::thread& t : readers) {
    t.join();
  }
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(current.load()->lookup("a.example.com"), 200u);
}

}  // namespace
}  // namespace edgeplane::proxy
