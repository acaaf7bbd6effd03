// apply's ownership record: only the owned rows a plan changed are written, and the store ends
// up with the same rows the full rewrite (every owned row serialised and put) left.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <utility>

#include "reconciler/cli/apply_record.h"
#include "reconciler/core/owned_rows.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

// A host with `forwards` forwards over three namespaces with their uplinks.
core::StoreView hostWith(int forwards) {
  core::StoreView v;
  for (int t = 0; t < 3; ++t) {
    const std::string ns = "t" + std::to_string(t);
    v.applied["namespace " + ns] = "";
    v.applied["uplink " + ns] = "100.64.0." + std::to_string(2 * t) + "/31";
    v.uplinkIndex[ns] = static_cast<uint32_t>(t);
  }
  for (int i = 0; i < forwards; ++i) {
    const std::string name = "f" + std::to_string(i);
    const std::string port = std::to_string(20000 + i);
    v.applied["forward " + name] = "tcp/" + port + " -> 10.50.0." + std::to_string(10 + i % 200) +
                                   ":80 in t" + std::to_string(i % 3);
    v.forwardNames["tcp/" + port] = name;
  }
  return v;
}

// What writeOwnership did before it wrote changes only: every row of `next` serialised and put
// (putOwned skips a row whose data is unchanged), every other owned row removed.
void rewriteAll(Store& store, const core::StoreView& next, int64_t at) {
  auto old = store.listOwned(std::nullopt);
  ASSERT_TRUE(old.ok()) << old.error().message;
  auto rows = core::ownedFromStoreView(next, at);
  std::set<std::pair<std::string, std::string>> kept;
  for (const auto& r : rows) {
    kept.emplace(r.kind, r.name);
  }
  for (const auto& row : *old) {
    if (kept.count({row.kind, row.name}) == 0) {
      ASSERT_TRUE(store.removeOwned(row.kind, row.name).ok());
    }
  }
  for (const auto& row : rows) {
    ASSERT_TRUE(store.putOwned(row.kind, row.name, row.data, row.updatedAt).ok());
  }
}

std::vector<OwnedResource> rowsOf(Store& store) {
  auto rows = store.listOwned(std::nullopt);
  EXPECT_TRUE(rows.ok()) << rows.error().message;
  return rows.ok() ? *rows : std::vector<OwnedResource>{};
}

class OwnershipWrite : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = Store::open(dirA_.path());
    auto b = Store::open(dirB_.path());
    ASSERT_TRUE(a.ok() && b.ok());
    changesOnly_ = std::move(*a);
    reference_ = std::move(*b);
    ASSERT_TRUE(cli::writeOwnership(*changesOnly_, {}, base_, 1000).ok());
    rewriteAll(*reference_, base_, 1000);
    ASSERT_EQ(rowsOf(*changesOnly_), rowsOf(*reference_));
  }

  // Moves both stores from base_ to `next` at time 2000; returns the rows written.
  size_t moveTo(const core::StoreView& next) {
    auto written = cli::writeOwnership(*changesOnly_, base_, next, 2000);
    EXPECT_TRUE(written.ok()) << written.error().message;
    rewriteAll(*reference_, next, 2000);
    const auto rows = rowsOf(*changesOnly_);
    EXPECT_EQ(rows, rowsOf(*reference_));
    auto back = core::storeViewFromOwned(rows);
    EXPECT_TRUE(back.ok());
    if (back.ok()) {
      EXPECT_TRUE(back->sameOwnership(next));
    }
    return written.ok() ? *written : 0;
  }

  testing::TempDir dirA_;
  testing::TempDir dirB_;
  std::unique_ptr<Store> changesOnly_;
  std::unique_ptr<Store> reference_;
  const core::StoreView base_ = hostWith(500);
};

TEST_F(OwnershipWrite, OneChangedForwardWritesOneRowAndTheSameRowsAsARewrite) {
  core::StoreView next = base_;
  next.applied["forward f250"] = "tcp/20250 -> 10.50.0.200:80 in t1";
  EXPECT_EQ(moveTo(next), 1u);
  auto row = changesOnly_->getOwned("forward", "f250");
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->updatedAt, 2000);
  auto other = changesOnly_->getOwned("forward", "f251");
  ASSERT_TRUE(other.ok() && other->has_value());
  EXPECT_EQ((*other)->updatedAt, 1000);
}

TEST_F(OwnershipWrite, NothingChangedWritesNothing) {
  EXPECT_EQ(moveTo(base_), 0u);
}

TEST_F(OwnershipWrite, AddedAndRemovedRowsAreWrittenAndNothingElse) {
  core::StoreView next = base_;
  next.applied.erase("forward f7");
  next.forwardNames.erase("tcp/20007");
  next.applied["forward new"] = "udp/30000 -> 10.50.0.9:53 in t0";
  next.forwardNames["udp/30000"] = "new";
  next.applied.erase("uplink t2");
  next.applied.erase("namespace t2");
  next.uplinkIndex.erase("t2");
  EXPECT_EQ(moveTo(next), 4u);
}

TEST_F(OwnershipWrite, AChangeOutsideTheSpecStillRewritesItsRow) {
  core::StoreView next = base_;
  next.uplinkIndex["t1"] = 7;  // the uplink row's "index"
  next.forwardNames.erase("tcp/20003");
  next.forwardNames["tcp/21003"] = "f3";  // the forward row's "key"
  EXPECT_EQ(moveTo(next), 2u);
}

// What apply compares before it writes ownership: the rows' parts, not the rest of the view (a
// no-op apply over a store with a proxy snapshot has nothing to write).
TEST(OwnedRows, SameOwnershipIsTheOwnedRowsAlone) {
  const core::StoreView base = hostWith(5);
  core::StoreView more = base;
  more.snapshot = ProxySnapshot{};
  more.blockedApiKeys.insert("k1");
  more.ariRenewals["c"] = {"ab", 5};
  EXPECT_TRUE(more.sameOwnership(base));
  EXPECT_FALSE(more == base);
  for (int part = 0; part < 3; ++part) {
    core::StoreView other = base;
    if (part == 0) {
      other.applied["forward f1"] = "tcp/20001 -> 10.50.0.99:80 in t1";
    } else if (part == 1) {
      other.uplinkIndex["t1"] = 9;
    } else {
      other.forwardNames["udp/1"] = "f1";
    }
    EXPECT_FALSE(other.sameOwnership(base)) << part;
  }
}

// A row the store hands back damaged is an error naming the row, never an exception or a guess.
TEST(OwnedRows, ADamagedRowIsAnErrorNamingIt) {
  const std::pair<std::string, std::string> bad[] = {
      {"uplink", R"({"spec": "100.64.0.0/31", "index": "7"})"},
      {"uplink", R"({"spec": "100.64.0.0/31", "index": -1})"},
      {"uplink", R"({"spec": "100.64.0.0/31", "index": 4294967296})"},
      {"forward", R"({"spec": "tcp/1 -> 10.0.0.1:1 in t0", "key": 5})"},
      {"forward", R"({"spec": 5})"},
      {"forward", R"(["spec"])"},
      {"forward", R"({"spec": "a", "spec": "b"})"},
      {"forward", R"({"spec": "a")"},
  };
  for (const auto& [kind, data] : bad) {
    auto view = core::storeViewFromOwned({{kind, "x", data, 1}});
    ASSERT_FALSE(view.ok()) << data;
    EXPECT_NE(view.error().message.find("owned resource " + kind + " x: "), std::string::npos)
        << view.error().message;
  }
  auto view = core::storeViewFromOwned(
      {{"uplink", "t0", R"({"spec": "100.64.0.0/31", "index": 4294967295, "later": [1]})", 1},
       {"namespace", "t0", "{}", 1}});
  ASSERT_TRUE(view.ok()) << view.error().message;
  EXPECT_EQ(view->uplinkIndex.at("t0"), 4294967295u);
  EXPECT_EQ(view->applied.at("uplink t0"), "100.64.0.0/31");
  EXPECT_EQ(view->applied.at("namespace t0"), "");
}

// The rows are JSON written by hand: a spec or key with quotes, backslashes, control characters
// and UTF-8 reads back as it was.
TEST(OwnedRows, AnySpecReadsBackAsWritten) {
  core::StoreView v;
  v.applied["uplink t\"0"] = "100.64.0.0/31";
  v.uplinkIndex["t\"0"] = 4294967295u;
  v.applied["forward f\\1"] = "a \"quoted\" \\ back\nslash\t\x01 caf\xc3\xa9";
  v.forwardNames["tcp/1\"\x1f"] = "f\\1";
  v.applied["namespace n"] = "";
  auto back = core::storeViewFromOwned(core::ownedFromStoreView(v, 1));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->applied, v.applied);
  EXPECT_EQ(back->uplinkIndex, v.uplinkIndex);
  EXPECT_EQ(back->forwardNames, v.forwardNames);
}

OwnedResource rowOf(std::string kind, std::string name, std::string data) {
  return OwnedResource{std::move(kind), std::move(name), std::move(data), 1};
}

// Rows as apply writes them are read by a direct reader; any other spelling of the same JSON
// by the strict one: the two agree on every field.
TEST(OwnedRows, PlainAndOtherwiseSpelledRowsReadTheSame) {
  const std::vector<std::pair<std::string, std::string>> spellings = {
      {R"({"spec":"tcp/1 -> 10.0.0.1:2 in t"})", R"({ "spec" : "tcp/1 -> 10.0.0.1:2 in t" })"},
      {R"({"spec":"100.64.0.0/31","index":7})", R"({"index":7,"spec":"100.64.0.0/31"})"},
      {R"({"spec":"a","key":"tcp/1"})", R"({"spec":"a","key":"tcp\/1"})"},
      {R"({"spec":"","index":0,"key":"udp/9"})", R"({"key":"udp/9","spec":"","index":0})"},
      {R"({"spec":"x","index":4294967295})", R"({"spec":"x","index":4294967295 })"},
  };
  for (const char* kind : {"forward", "uplink", "namespace"}) {
    for (const auto& [plain, other] : spellings) {
      auto a = core::storeViewFromOwned({rowOf(kind, "n", plain)});
      auto b = core::storeViewFromOwned({rowOf(kind, "n", other)});
      ASSERT_TRUE(a.ok()) << plain << ": " << a.error().message;
      ASSERT_TRUE(b.ok()) << other << ": " << b.error().message;
      EXPECT_EQ(*a, *b) << kind << " " << plain;
    }
  }
  auto uplink = core::storeViewFromOwned({rowOf("uplink", "t", R"({"spec":"s","index":7})")});
  ASSERT_TRUE(uplink.ok());
  EXPECT_EQ(uplink->uplinkIndex.at("t"), 7u);
  EXPECT_EQ(uplink->applied.at("uplink t"), "s");
  auto forward = core::storeViewFromOwned({rowOf("forward", "f", R"({"spec":"s","key":"tcp/1"})")});
  ASSERT_TRUE(forward.ok());
  EXPECT_EQ(forward->forwardNames.at("tcp/1"), "f");
}

// Rows as the writer writes them, from random views, read the same as the same JSON with one
// more space (which only the strict reader takes).
TEST(OwnedRows, WrittenRowsReadAsTheStrictReaderReadsThem) {
  std::mt19937 rng(15);
  const std::vector<std::string> alphabet = {"a",  "z",    "0",    "9",       " ",  "-",
                                             "/",  ">",    ".",    ":",       "\"", "\\",
                                             "\t", "\x01", "\x7f", "\xc3\xa9"};
  auto text = [&](size_t max) {
    std::string out;
    for (size_t n = rng() % (max + 1); n > 0; --n) {
      out += alphabet[rng() % alphabet.size()];
    }
    return out;
  };
  for (int round = 0; round < 300; ++round) {
    core::StoreView v;
    const std::string name = "n" + std::to_string(round);
    const char* kind = round % 3 == 0 ? "uplink" : round % 3 == 1 ? "forward" : "route";
    v.applied[std::string(kind) + " " + name] = text(rng() % 2 == 0 ? 3 : 40);
    if (rng() % 2 == 0) {
      v.uplinkIndex[name] = round % 5 == 0 ? 4294967295u : static_cast<uint32_t>(rng() % 1000);
    }
    if (rng() % 2 == 0) {
      v.forwardNames[text(12)] = name;
    }
    for (const OwnedResource& row : core::ownedFromStoreView(v, 1)) {
      OwnedResource spaced = row;
      spaced.data.insert(1, " ");
      auto plain = core::storeViewFromOwned({row});
      auto strict = core::storeViewFromOwned({spaced});
      ASSERT_TRUE(plain.ok()) << row.data << ": " << plain.error().message;
      ASSERT_TRUE(strict.ok()) << spaced.data << ": " << strict.error().message;
      EXPECT_EQ(*plain, *strict) << row.data;
      // And as written: an index is an uplink's, a key a forward's.
      const std::string k = kind;
      EXPECT_EQ(plain->applied, v.applied);
      EXPECT_EQ(plain->uplinkIndex, k == "uplink" ? v.uplinkIndex : decltype(v.uplinkIndex){});
      EXPECT_EQ(plain->forwardNames, k == "forward" ? v.forwardNames : decltype(v.forwardNames){});
    }
  }
}

// What is not an unsigned 32-bit index, or not JSON, is an error however it is spelled.
TEST(OwnedRows, ABadIndexOrJsonIsAnErrorInEitherReader) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"uplink", R"({"spec":"x","index":01})"},
      {"uplink", R"({"spec":"x","index":4294967296})"},
      {"uplink", R"({"spec":"x","index":-1})"},
      {"uplink", R"({"spec":"x","index":1.5})"},
      {"forward", R"({"spec":"x"}})"},
      {"forward", R"({"spec":"x","key":"y","key":"z"})"},
      {"forward", R"({"spec":"x)"},
      {"forward", "{\"spec\":\"x\ty\"}"},  // a raw tab: not JSON
  };
  for (const auto& [kind, data] : bad) {
    EXPECT_FALSE(core::storeViewFromOwned({rowOf(kind, "n", data)}).ok()) << kind << " " << data;
  }
}

}  // namespace
}  // namespace edgeplane
