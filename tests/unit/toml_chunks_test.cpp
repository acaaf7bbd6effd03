// A TOML document loaded in chunks means what it means whole (schema/toml_chunks.h): the cuts,
// the shapes that may combine, and the loader's result at every chunk size.
#include "schema/toml_chunks.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "schema/chunk_memo.h"
#include "schema/desired_codec.h"
#include "schema/loader.h"

namespace edgeplane {
namespace {

using detail::ChunkShape;
using detail::splitTomlChunks;
using detail::TomlChunk;

// `count` forwards, a fleet and a certificate: valid; 30 make about 3.5 KB.
std::string manyForwards(int count = 30) {
  std::string doc =
      "[fleet]\nbase_domain = \"x.example.com\"\n\n"
      "[[namespace]]\nname = \"a\"\n[namespace.wireguard]\naddress = [\"10.50.0.1/24\"]\n"
      "listen_port = 51820\n\n";
  for (int i = 0; i < count; ++i) {
    doc += "[[forward]]\nname = \"f" + std::to_string(i) +
           "\"\nnamespace = \"a\"\nprotocol = \"tcp\"\npublic_port = " + std::to_string(20000 + i) +
           "\ntarget = \"10.50." + std::to_string(i / 200) + "." + std::to_string(10 + i % 200) +
           ":80\"\n\n";
  }
  return doc + "[[certificate]]\nname = \"c\"\ndomains = [\"s.x.example.com\"]\n";
}

// What loadDocument reads from `doc` when cut in chunks of at least `chunkBytes` (0: whole): the
// encoded Desired and the diagnostics.
std::pair<std::string, std::string> loadAt(std::string_view doc, size_t chunkBytes) {
  Desired d;
  Diagnostics diags;
  detail::loadDocument(doc, "cfg/t.toml", d, diags, chunkBytes);
  return {encodeDesired(d, ""), diags.format()};
}

// Every chunk size gives what the whole document gives.
void expectSameAtEveryChunkSize(std::string_view doc) {
  const auto whole = loadAt(doc, 0);
  for (size_t bytes : {1, 2, 10, 60, 200, 1000}) {
    const auto chunked = loadAt(doc, bytes);
    EXPECT_EQ(chunked.second, whole.second) << "chunks of " << bytes << " in:\n" << doc;
    EXPECT_TRUE(chunked.first == whole.first) << "chunks of " << bytes << " in:\n" << doc;
  }
}

// Whether the chunks of `doc` (at least `bytes` each) combine, parsed on their own.
bool combines(std::string_view doc, size_t bytes) {
  const std::array<std::string_view, 3> arrays = {"namespace", "forward", "certificate"};
  std::vector<ChunkShape> shapes;
  for (const TomlChunk& c : splitTomlChunks(doc, bytes)) {
    toml::parse_result r = toml::parse(c.text);
    if (!r) {
      return false;
    }
    shapes.push_back(detail::chunkShape(r.table(), arrays));
  }
  return detail::chunksCombine(shapes);
}

TEST(TomlChunks, CutsOnlyBeforeTopLevelArrayTableLinesAndCountsLines) {
  const std::string doc = manyForwards();
  const std::vector<TomlChunk> chunks = splitTomlChunks(doc, 100);
  ASSERT_GT(chunks.size(), 5U);
  // The first chunk ends at the first cut, however short: the fleet.
  EXPECT_EQ(chunks[0].text, "[fleet]\nbase_domain = \"x.example.com\"\n\n");
  std::string joined;
  uint32_t lines = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const TomlChunk& c = chunks[i];
    EXPECT_EQ(c.linesBefore, lines);
    if (i > 0) {
      EXPECT_TRUE(c.text.starts_with("[[namespace]]\n") || c.text.starts_with("[[forward]]\n") ||
                  c.text.starts_with("[[certificate]]\n"))
          << c.text;
    }
    if (i > 0 && i + 1 < chunks.size()) {
      EXPECT_GE(c.text.size(), 100U);
    }
    joined += c.text;
    lines += static_cast<uint32_t>(std::count(c.text.begin(), c.text.end(), '\n'));
  }
  EXPECT_EQ(joined, doc);
}

// Many forwards: 400 of them, about 40 KB.
std::string moreForwards() {
  std::string doc = manyForwards();
  for (int i = 30; i < 400; ++i) {
    doc += "[[forward]]\nname = \"f" + std::to_string(i) +
           "\"\nnamespace = \"a\"\nprotocol = \"udp\"\npublic_port = " + std::to_string(20000 + i) +
           "\ntarget = \"10.50.0.9:" + std::to_string(1000 + i) + "\"\n\n";
  }
  return doc;
}

TEST(TomlChunks, AnEditChangesTheChunksAroundItAndNoOther) {
  const std::string doc = moreForwards();
  auto texts = [](std::string_view d) {
    std::set<std::string_view> out;
    for (const TomlChunk& c : splitTomlChunks(d, 1000)) {
      out.insert(c.text);
    }
    return out;
  };
  const auto before = texts(doc);
  ASSERT_GT(before.size(), 10U);
  // Lines of every length added early in the file: cuts at fixed distances would move for some.
  for (size_t added = 2; added < 120; added += 9) {
    std::string edited = doc;
    edited.insert(edited.find("[[forward]]\nname = \"f40\""),
                  "#" + std::string(added - 2, 'x') + "\n");
    const auto after = texts(edited);
    size_t same = 0;
    for (std::string_view t : after) {
      same += before.count(t);
    }
    EXPECT_GE(same + 2, after.size())
        << added << " bytes added: " << same << " of " << after.size();
  }
}

TEST(TomlChunks, ShortTextsAndTextsWithoutCutsAreOneChunk) {
  EXPECT_EQ(splitTomlChunks(manyForwards(), 4096).size(), 1U);  // shorter than 2 * 4096
  EXPECT_EQ(splitTomlChunks(manyForwards(), 0).size(), 1U);
  // Nested, quoted, dotted or spaced headers are not cuts: only "[[bare]]" at a line's start.
  const std::string noCuts =
      "[[namespace]]\nname = \"a\"\n[[namespace.peer]]\nname = \"p\"\n [[forward]]\n"
      "[[ forward ]]\n[[\"forward\"]]\n[[a.b]]\n[forward]\nx = \"\"\"\n[[y]\n\"\"\"\n";
  const auto chunks = splitTomlChunks(noCuts, 1);
  EXPECT_EQ(chunks.size(), 1U) << chunks.back().text;
}

TEST(TomlChunks, AValidDocumentCombines) {
  EXPECT_TRUE(combines(manyForwards(), 100));
  expectSameAtEveryChunkSize(manyForwards());
}

TEST(TomlChunks, AHeaderLineInsideAMultiLineStringOrArrayIsNoCut) {
  // The chunk before such a "header" ends inside the string or array: it does not parse alone,
  // so the whole document is parsed.
  const std::string inString = "[[forward]]\nname = \"\"\"\n[[forward]]\nname = \"b\"\n\"\"\"\n";
  EXPECT_FALSE(combines(inString, 1));
  expectSameAtEveryChunkSize(inString);
  const std::string inArray =
      "[[forward]]\nname = \"a\"\nx = [\n[[1]]\n]\n[[forward]]\nname = \"b\"\n";
  EXPECT_FALSE(combines(inArray, 1));
  expectSameAtEveryChunkSize(inArray);
  const std::string literal =
      "[[forward]]\nname = '''\n[[forward]]\n'''\n[[forward]]\nname = \"c\"\n";
  EXPECT_FALSE(combines(literal, 1));
  expectSameAtEveryChunkSize(literal);
}

TEST(TomlChunks, AChunkThatDoesMoreThanAppendIsRefused) {
  // A later chunk defining a table, a key of another chunk's element, or an unknown array.
  for (const std::string tail : {
           "[[forward]]\nname = \"b\"\n[fleet]\nbase_domain = \"y.example.com\"\n",
           "[[certificate]]\nname = \"c\"\n[forward.extra]\nx = 1\n",
           "[[certificate]]\nname = \"c\"\n[[forward.extra]]\nx = 1\n",
           "[[forwrd]]\nname = \"b\"\n",
           "[[forward]]\nname = \"b\"\n[forward]\nname = \"c\"\n",
       }) {
    const std::string doc =
        "[fleet]\nbase_domain = \"x.example.com\"\n[[forward]]\nname = \"a\"\n" + tail;
    EXPECT_FALSE(combines(doc, 1)) << doc;
    expectSameAtEveryChunkSize(doc);
  }
}

TEST(TomlChunks, AnArrayTheFirstChunkClosedIsNotAppendedTo) {
  for (const std::string head : {"forward = []\n", "forward = [{name = \"a\"}]\n",
                                 "[forward]\nname = \"a\"\n", "[forward.x]\ny = 1\n"}) {
    const std::string doc = head + "[[forward]]\nname = \"b\"\n";
    EXPECT_FALSE(combines(doc, 1)) << doc;
    expectSameAtEveryChunkSize(doc);
  }
}

TEST(TomlChunks, ErrorsInElementsKeepTheirLinesAcrossChunks) {
  std::string doc = manyForwards();
  doc.replace(doc.find("public_port = 20017"), 19, "public_port = \"x\"");
  doc.replace(doc.find("name = \"f25\""), 12, "nmae = \"f25\"");
  doc +=
      "[[forward]]\nname = \"f0\"\nnamespace = \"a\"\nprotocol = \"tcp\"\npublic_port = 1\n"
      "target = \"10.50.0.1:1\"\ncolour = 1\n";
  EXPECT_TRUE(combines(doc, 100));
  const auto whole = loadAt(doc, 0);
  EXPECT_NE(whole.second.find("t.toml:"), std::string::npos);
  EXPECT_NE(whole.second.find("'public_port'"), std::string::npos) << whole.second;
  EXPECT_NE(whole.second.find("did you mean 'name'"), std::string::npos) << whole.second;
  EXPECT_NE(whole.second.find("unknown key 'colour'"), std::string::npos) << whole.second;
  expectSameAtEveryChunkSize(doc);
}

TEST(TomlChunks, ASyntaxErrorIsReportedAsForTheWholeDocument) {
  std::string doc = manyForwards();
  doc.replace(doc.find("protocol = \"tcp\"\npublic_port = 20020"), 16, "protocol = \"tcp");
  const auto whole = loadAt(doc, 0);
  EXPECT_NE(whole.second.find("error: Error while parsing"), std::string::npos) << whole.second;
  expectSameAtEveryChunkSize(doc);
}

// ---------------------------------------------------------------------------------------------
// Chunks remembered between runs (chunk_memo.h).

// What loadDocument gives for `doc` (chunks of at least 200 bytes) with `memo`.
std::pair<std::string, std::string> loadWith(std::string_view doc, ChunkMemo* memo) {
  Desired d;
  Diagnostics diags;
  detail::loadDocument(doc, "cfg/t.toml", d, diags, 200, memo);
  return {encodeDesired(d, ""), diags.format()};
}

// A memo holding what `doc` kept in a first load.
std::string keptBy(std::string_view doc) {
  ChunkMemo first("cfg");
  loadWith(doc, &first);
  return first.encodeKept();
}

TEST(ChunkMemo, AnUnchangedDocumentIsDecodedChunkForChunkAndLoadsTheSame) {
  const std::string doc = manyForwards();
  const size_t chunks = splitTomlChunks(doc, 200).size();
  ASSERT_GT(chunks, 5U);
  ChunkMemo first("cfg");
  EXPECT_TRUE(loadWith(doc, &first) == loadAt(doc, 0));
  EXPECT_EQ(first.keptCount(), chunks - 1);  // all but the first
  ChunkMemo second("cfg", first.encodeKept());
  EXPECT_EQ(second.earlierCount(), chunks - 1);
  EXPECT_TRUE(loadWith(doc, &second) == loadAt(doc, 0));
  EXPECT_EQ(second.keptCount(), chunks - 1);
  // What it found it keeps for the next run, as it was.
  ChunkMemo third("cfg", second.encodeKept());
  EXPECT_EQ(third.earlierCount(), chunks - 1);
}

// As config_cache.cpp writes them: after the file's header, with room for its seal.
TEST(ChunkMemo, KeptChunksEncodeAfterAPrefixWithRoomToSpare) {
  const std::string doc = manyForwards();
  ChunkMemo first("cfg");
  loadWith(doc, &first);
  const std::string plain = first.encodeKept();
  const std::string framed = first.encodeKept("header\n\n", 32);
  EXPECT_EQ(framed, "header\n\n" + plain);
  EXPECT_GE(framed.capacity(), framed.size() + 32);
  ChunkMemo second("cfg", framed, std::string_view("header\n\n").size());
  EXPECT_EQ(second.earlierCount(), first.keptCount());
  EXPECT_TRUE(loadWith(doc, &second) == loadAt(doc, 0));
  EXPECT_EQ(second.recalledCount(), first.keptCount());
}

// The earlier run's chunks are replaced when they would serve the next run worse than this load's:
// none were kept, or many chunks were parsed or are no longer in the files.
TEST(ChunkMemo, WhatWasKeptIsReplacedOnlyWhenMuchOfItChanged) {
  const std::string doc = manyForwards(1000);
  ChunkMemo first("cfg");
  loadWith(doc, &first);
  const size_t kept = first.keptCount();
  ASSERT_GE(kept, 96U);
  EXPECT_TRUE(first.worthStoring());  // nothing was kept before
  const std::string earlier = first.encodeKept();

  ChunkMemo same("cfg", earlier);
  loadWith(doc, &same);
  EXPECT_EQ(same.recalledCount(), kept);
  EXPECT_FALSE(same.worthStoring());

  // `n` forwards 20 apart (so each in a chunk of its own: a chunk is at most 800 bytes here) sent
  // to another port, each edit the same length, so no cut moves: n chunks are parsed, and n of
  // the earlier ones are left unused. The file is replaced once 2n is more than kept / 16.
  const size_t most = kept / 32;
  for (size_t n : {size_t{1}, size_t{2}, most, most + 1}) {
    std::string edited = doc;
    for (size_t i = 0; i < n; ++i) {
      const size_t named = edited.find("name = \"f" + std::to_string(20 * i + 5) + "\"");
      const size_t port = edited.find(":80\"", named);
      ASSERT_NE(port, std::string::npos);
      edited.replace(port, 4, ":81\"");
    }
    ChunkMemo memo("cfg", earlier);
    EXPECT_TRUE(loadWith(edited, &memo) == loadAt(edited, 0)) << n;
    EXPECT_EQ(memo.recalledCount() + n, memo.keptCount()) << n;
    EXPECT_EQ(memo.worthStoring(), n > most) << n << " of " << kept;
  }

  // Every forward changed: nothing is recalled.
  std::string all = doc;
  for (size_t at = all.find("\"tcp\""); at != std::string::npos; at = all.find("\"tcp\"", at)) {
    all.replace(at, 5, "\"udp\"");
  }
  ChunkMemo much("cfg", earlier);
  loadWith(all, &much);
  EXPECT_EQ(much.recalledCount(), 0U);
  EXPECT_TRUE(much.worthStoring());

  // A document too small to be cut: the kept chunks are all unused, and are replaced by none.
  ChunkMemo none("cfg", earlier);
  loadWith(manyForwards(1), &none);
  EXPECT_EQ(none.keptCount(), 0U);
  EXPECT_TRUE(none.worthStoring());
  ChunkMemo nothing("cfg");
  loadWith(manyForwards(1), &nothing);
  EXPECT_FALSE(nothing.worthStoring());
}

// An earlier entry that does not decode is parsed instead, and the file that holds it replaced,
// however few chunks changed; the file that replaces it holds the chunk as parsed.
TEST(ChunkMemo, AnEntryThatDoesNotDecodeHasItsFileReplaced) {
  const std::string doc = manyForwards(1000);
  const std::vector<TomlChunk> chunks = splitTomlChunks(doc, 200);
  // encodeKept's form: file, text and elements, each after its length (8 bytes, little-endian).
  auto sized = [](std::string_view s) {
    std::string out;
    for (int i = 0; i < 8; ++i) {
      out.push_back(static_cast<char>(static_cast<uint64_t>(s.size()) >> (8 * i)));
    }
    return out + std::string(s);
  };
  // The later of two entries for one chunk counts: this one's elements are not an encoding.
  const std::string earlier = keptBy(doc) + sized("t.toml") + sized(chunks[3].text) + sized("x");
  ChunkMemo memo("cfg", earlier);
  EXPECT_TRUE(loadWith(doc, &memo) == loadAt(doc, 0));
  EXPECT_EQ(memo.recalledCount() + 1, memo.keptCount());
  EXPECT_TRUE(memo.worthStoring());
  ChunkMemo next("cfg", memo.encodeKept());
  EXPECT_TRUE(loadWith(doc, &next) == loadAt(doc, 0));
  EXPECT_EQ(next.recalledCount(), next.keptCount());  // chunk 3 too: nothing was parsed
  EXPECT_FALSE(next.worthStoring());
}

// A chunk recalled twice (the same text twice in a file) is kept, and counted used, once; so is
// one parsed twice. With as many earlier chunks left unused as make the file worth replacing, a
// second recall does not hide one of them.
TEST(ChunkMemo, AChunkRecalledTwiceIsKeptOnce) {
  const std::string doc = manyForwards(1000);
  const std::vector<TomlChunk> chunks = splitTomlChunks(doc, 200);
  const size_t earlier = chunks.size() - 1;  // all but the first
  const size_t unused = earlier / 17 + 1;    // the fewest with unused * 16 > what is kept
  ASSERT_LE((unused - 1) * 16, earlier - (unused - 1));
  ChunkMemo memo("cfg", keptBy(doc));
  ASSERT_EQ(memo.earlierCount(), earlier);
  for (size_t i = 1 + unused; i < chunks.size(); ++i) {
    EXPECT_TRUE(memo.recall("t.toml", chunks[i].text, chunks[i].linesBefore).has_value()) << i;
  }
  const size_t kept = memo.keptCount();
  EXPECT_EQ(kept, earlier - unused);
  EXPECT_TRUE(memo.worthStoring());
  EXPECT_TRUE(memo.recall("t.toml", chunks[1 + unused].text, 0).has_value());
  EXPECT_EQ(memo.keptCount(), kept);
  EXPECT_EQ(memo.recalledCount(), kept);
  EXPECT_TRUE(memo.worthStoring());
  memo.keep("u.toml", "text", "elements");
  memo.keep("u.toml", "text", "elements");
  EXPECT_EQ(memo.keptCount(), kept + 1);
  EXPECT_EQ(memo.recalledCount(), kept);
  EXPECT_EQ(ChunkMemo("cfg", memo.encodeKept()).earlierCount(), kept + 1);
}

TEST(ChunkMemo, AChunkIsFoundOnlyForItsFileAndExactText) {
  const std::string doc = manyForwards();
  const std::vector<TomlChunk> chunks = splitTomlChunks(doc, 200);
  ChunkMemo memo("cfg", keptBy(doc));
  EXPECT_EQ(memo.relative("cfg/t.toml"), "t.toml");
  EXPECT_EQ(memo.relative("/elsewhere/t.toml"), "/elsewhere/t.toml");
  const uint32_t lines = chunks[1].linesBefore;
  EXPECT_TRUE(memo.recall("t.toml", chunks[1].text, lines).has_value());
  EXPECT_FALSE(memo.recall("u.toml", chunks[1].text, lines).has_value());
  std::string edited(chunks[1].text);
  edited.back() = ' ';
  EXPECT_FALSE(memo.recall("t.toml", edited, lines).has_value());
  EXPECT_FALSE(memo.recall("t.toml", chunks[0].text, 0).has_value());  // the first is never kept
}

TEST(ChunkMemo, AnEditedDocumentLoadsAsIfParsedWholeWithItsLinesWhereTheyAre) {
  const std::string doc = manyForwards();
  // One value changed; lines added early, so every later chunk sits further down the file; and
  // a mistake after them, whose line must be the new one.
  std::string edited = doc;
  edited.replace(edited.find("10.50.0.25:80"), 13, "10.50.0.99:81");
  edited.insert(edited.find("[[forward]]\nname = \"f2\""), "# two\n# new lines\n");
  edited.replace(edited.find("public_port = 20027"), 19, "public_port = -1");
  ChunkMemo memo("cfg", keptBy(doc));
  const auto got = loadWith(edited, &memo);
  EXPECT_TRUE(got == loadWith(edited, nullptr)) << got.second;
  EXPECT_NE(got.second.find("t.toml:"), std::string::npos) << got.second;
  // Most chunks were found again: those the edits did not touch.
  ChunkMemo again("cfg", keptBy(doc));
  loadWith(edited, &again);
  EXPECT_GT(again.earlierCount(), 0U);
}

TEST(ChunkMemo, AChunkWithDiagnosticsIsNotKept) {
  std::string doc = manyForwards();
  doc.replace(doc.find("public_port = 20017"), 19, "public_port = \"x\"");
  ChunkMemo memo("cfg");
  const auto got = loadWith(doc, &memo);
  EXPECT_NE(got.second, "");
  EXPECT_EQ(memo.keptCount(), splitTomlChunks(doc, 200).size() - 2);
}

TEST(ChunkMemo, MalformedEarlierBytesAreTakenForNothing) {
  const std::string kept = keptBy(manyForwards());
  ASSERT_GT(kept.size(), 100U);
  for (size_t cut : {size_t{1}, size_t{7}, size_t{8}, kept.size() / 2, kept.size() - 1}) {
    ChunkMemo memo("cfg", kept.substr(0, cut));
    EXPECT_EQ(memo.earlierCount(), 0U) << cut;
    EXPECT_TRUE(loadWith(manyForwards(), &memo) == loadAt(manyForwards(), 0));
  }
  ChunkMemo offset("cfg", "xyz" + kept, 3);
  EXPECT_GT(offset.earlierCount(), 0U);
}

}  // namespace
}  // namespace edgeplane
