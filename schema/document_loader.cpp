// TOML documents -> Desired: a config root's files, each parsed whole or, when large, in chunks
// on every core (toml_chunks.h), loaded by table_loader.h.
#include "schema/loader.h"

#include <algorithm>
#include <exception>
#include <thread>

#include "schema/chunk_memo.h"
#include "schema/desired_codec.h"
#include "schema/parallel.h"
#include "schema/table_loader.h"
#include "schema/toml_chunks.h"
#include "schema/toml_reader.h"

namespace edgeplane {

using detail::appendElements;
using detail::chunksCombine;
using detail::ChunkShape;
using detail::chunkShape;
using detail::finishLoading;
using detail::loadTopLevel;
using detail::locOf;
using detail::nonAsciiOutsideStrings;
using detail::splitTomlChunks;
using detail::TomlChunk;
using detail::topLevelArrays;

namespace {

// A document at least twice this long is parsed in chunks of at least this size, in parallel:
// about 60 chunks for 1 MiB (10k forwards): shared evenly between cores, and a change to one
// forward parses one of them again (chunk_memo.h).
constexpr size_t kChunkBytes = 16 * 1024;

// One chunk, parsed and (but for the first) loaded on its own, on any thread.
struct ChunkLoad {
  toml::parse_result parsed;  // kept for the first chunk, which loadDocument loads itself
  ChunkShape shape;
  bool parsedOk = false;
  Desired desired;
  Diagnostics diags;
  std::exception_ptr failure;
};

// What loading one document's chunks shares.
struct Document {
  const std::string& name;
  const SourceFile& file;
  ChunkMemo* memo;  // may be null
};

// A chunk an earlier run kept (chunk_memo.h), decoded; false when there is none or it does not
// decode (the chunk is then parsed).
bool recall(const TomlChunk& chunk, const Document& doc, ChunkLoad& out) {
  std::optional<Desired> d =
      doc.memo->recall(doc.memo->relative(doc.name), chunk.text, chunk.linesBefore);
  if (!d) {
    return false;
  }
  out.desired = std::move(*d);
  out.parsedOk = true;
  out.shape = ChunkShape{.appendsOnly = true, .closesAnArray = false};
  return true;
}

void loadChunk(const TomlChunk& chunk, bool first, const Document& doc, ChunkLoad& out) {
  if (!first && doc.memo != nullptr && recall(chunk, doc, out)) {
    return;
  }
  out.parsed = toml::parse(chunk.text, doc.name);
  out.parsedOk = static_cast<bool>(out.parsed);
  if (!out.parsedOk) {
    return;
  }
  out.shape = chunkShape(out.parsed.table(), topLevelArrays());
  if (first || !out.shape.appendsOnly) {
    return;
  }
  loadTopLevel(out.parsed.table(), out.desired, out.diags, doc.file, chunk.linesBefore);
  out.parsed = toml::parse_result{};
  if (doc.memo != nullptr && out.diags.empty()) {
    doc.memo->keep(std::string(doc.memo->relative(doc.name)), std::string(chunk.text),
                   encodeDesired(out.desired, doc.memo->root(), chunk.linesBefore));
  }
}

// Parses and loads `chunks` on up to as many threads as there are cores (four at most).
std::vector<ChunkLoad> loadChunks(const std::vector<TomlChunk>& chunks, const Document& doc) {
  std::vector<ChunkLoad> loads(chunks.size());
  const size_t threads = std::min<size_t>(std::max(1U, std::thread::hardware_concurrency()), 4);
  forEachIndex(chunks.size(), threads, [&](size_t i) {
    try {
      loadChunk(chunks[i], i == 0, doc, loads[i]);
    } catch (...) {
      loads[i].failure = std::current_exception();
    }
  });
  for (const ChunkLoad& l : loads) {
    if (l.failure) {
      std::rethrow_exception(l.failure);
    }
  }
  return loads;
}

// Loads a document cut into chunks into `out`; false, with nothing loaded, when the chunks do not
// mean what the whole document means (toml_chunks.h) or one does not parse.
bool loadInChunks(const std::vector<TomlChunk>& chunks, const Document& doc, Desired& out,
                  Diagnostics& diags) {
  std::vector<ChunkLoad> loads = loadChunks(chunks, doc);
  std::vector<ChunkShape> shapes;
  for (const ChunkLoad& l : loads) {
    if (!l.parsedOk) {
      return false;
    }
    shapes.push_back(l.shape);
  }
  if (!chunksCombine(shapes)) {
    return false;
  }
  loadTopLevel(loads.front().parsed.table(), out, diags, doc.file);
  std::vector<Desired> rest;
  rest.reserve(loads.size() - 1);
  for (size_t i = 1; i < loads.size(); ++i) {
    rest.push_back(std::move(loads[i].desired));
    diags.append(std::move(loads[i].diags));
  }
  appendElements(out, std::move(rest));
  return true;
}

}  // namespace

void loadDocument(std::string_view text, const std::string& displayName, Desired& out,
                  Diagnostics& diags, ChunkMemo* memo) {
  detail::loadDocument(text, displayName, out, diags, kChunkBytes, memo);
}

void detail::loadDocument(std::string_view text, const std::string& displayName, Desired& out,
                          Diagnostics& diags, size_t chunkBytes, ChunkMemo* memo) {
  if (auto at = nonAsciiOutsideStrings(text)) {
    diags.error(SourceLoc{displayName, at->first, at->second},
                "non-ASCII character outside a string or comment");
    return;
  }
  if (auto line = detail::tooManyDotsOutsideStrings(text)) {
    diags.error(SourceLoc{displayName, *line, 1}, std::string(detail::kTooManyDots));
    return;
  }
  const SourceFile file(displayName);
  const std::vector<TomlChunk> chunks = splitTomlChunks(text, chunkBytes);
  if (chunks.size() > 1 && loadInChunks(chunks, Document{displayName, file, memo}, out, diags)) {
    return;
  }
  toml::parse_result result = toml::parse(text, displayName);
  if (!result) {
    const toml::parse_error& err = result.error();
    diags.error(locOf(err.source(), file), std::string(err.description()));
    return;
  }
  loadTopLevel(result.table(), out, diags, file);
}

Desired loadFiles(const std::vector<ConfigFile>& files, Diagnostics& diags, ChunkMemo* memo) {
  Desired out;
  for (const ConfigFile& file : files) {
    if (!file.text) {
      diags.error(SourceLoc{file.name, 0, 0}, "cannot read file");
      continue;
    }
    loadDocument(*file.text, file.name, out, diags, memo);
  }
  finishLoading(out, diags);
  return out;
}

}  // namespace edgeplane
