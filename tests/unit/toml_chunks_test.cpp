// A TOML document loaded in chunks means what it means whole (schema/toml_chunks.h): the cuts,
// the shapes that may combine, and the loader's result at every chunk size.
#include "schema/toml_chunks.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "schema/desired_codec.h"
#include "schema/loader.h"

namespace edgeplane {
namespace {

using detail::ChunkShape;
using detail::splitTomlChunks;
using detail::TomlChunk;

// 30 forwards over two namespaces, a fleet and a certificate: valid, about 3.5 KB.
std::string manyForwards() {
  std::string doc =
      "[fleet]\nbase_domain = \"x.example.com\"\n\n"
      "[[namespace]]\nname = \"a\"\n[namespace.wireguard]\naddress = [\"10.50.0.1/24\"]\n"
      "listen_port = 51820\n\n";
  for (int i = 0; i < 30; ++i) {
    doc += "[[forward]]\nname = \"f" + std::to_string(i) +
           "\"\nnamespace = \"a\"\nprotocol = \"tcp\"\npublic_port = " + std::to_string(20000 + i) +
           "\ntarget = \"10.50.0." + std::to_string(10 + i) + ":80\"\n\n";
  }
  return doc + "[[certificate]]\nname = \"c\"\ndomains = [\"s.x.example.com\"]\n";
}

// What loadDocument reads from `doc` when cut in chunks of at least `chunkBytes` (0: whole): the
// encoded Desired and the diagnostics.
std::pair<std::string, std::string> loadAt(std::string_view doc, size_t chunkBytes) {
  Desired d;
  Diagnostics diags;
  detail::loadDocument(doc, "t.toml", d, diags, chunkBytes);
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
  const std::vector<TomlChunk> chunks = splitTomlChunks(doc, 300);
  ASSERT_GT(chunks.size(), 5U);
  std::string joined;
  uint32_t lines = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const TomlChunk& c = chunks[i];
    EXPECT_EQ(c.linesBefore, lines);
    if (i > 0) {
      EXPECT_TRUE(c.text.starts_with("[[forward]]\n") || c.text.starts_with("[[certificate]]\n"))
          << c.text;
    }
    if (i + 1 < chunks.size()) {
      EXPECT_GE(c.text.size(), 300U);
    }
    joined += c.text;
    lines += static_cast<uint32_t>(std::count(c.text.begin(), c.text.end(), '\n'));
  }
  EXPECT_EQ(joined, doc);
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

}  // namespace
}  // namespace edgeplane
