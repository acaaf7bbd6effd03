// Cutting a TOML document into chunks that parse on their own (see toml_chunks.h).
#include "schema/toml_chunks.h"

#include <algorithm>

namespace edgeplane::detail {
namespace {

bool bareKeyChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// Whether the line starting at `at` opens with "[[name]]".
bool opensTopLevelArrayTable(std::string_view text, size_t at) {
  if (text.compare(at, 2, "[[") != 0) {
    return false;
  }
  size_t i = at + 2;
  while (i < text.size() && bareKeyChar(text[i])) {
    ++i;
  }
  return i > at + 2 && text.compare(i, 2, "]]") == 0;
}

bool isArrayOfHeaderTables(const toml::node& n) {
  const toml::array* a = n.as_array();
  return a != nullptr && !a->empty() && std::all_of(a->begin(), a->end(), [](const toml::node& e) {
           return e.is_table() && !e.as_table()->is_inline();
         });
}

// Whether a chunk may end before the "[[name]]" line at `at`, decided by the line's own text and
// what follows it (48 bytes): about one such line in 16. An edit then moves only the cuts near
// it; the chunks after keep their text, which is what chunk_memo.h finds them by (cuts at fixed
// distances would all shift with one added line).
bool endsAChunk(std::string_view text, size_t at) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (char c : text.substr(at, 48)) {
    h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  }
  return (h >> 60) == 0;
}

}  // namespace

std::vector<TomlChunk> splitTomlChunks(std::string_view text, size_t minBytes) {
  std::vector<TomlChunk> chunks;
  size_t start = 0;
  uint32_t linesBefore = 0;
  if (minBytes > 0 && text.size() / 2 >= minBytes) {
    size_t from = 1;  // the first chunk: up to the first cut
    while (from < text.size()) {
      const size_t nl = text.find("\n[[", from - 1);
      if (nl == std::string_view::npos) {
        break;
      }
      const size_t at = nl + 1;
      // The first chunk ends at the first such line; a later one at a line that ends a chunk,
      // or at any once it is 4 * minBytes long (text where none does: the same lines repeated).
      const bool first = start == 0;
      if (!opensTopLevelArrayTable(text, at) ||
          (!first && at - start < 4 * minBytes && !endsAChunk(text, at))) {
        from = at + 1;
        continue;
      }
      const std::string_view chunk = text.substr(start, at - start);
      chunks.push_back(TomlChunk{chunk, linesBefore});
      linesBefore += static_cast<uint32_t>(std::count(chunk.begin(), chunk.end(), '\n'));
      start = at;
      from = at + minBytes;
    }
  }
  chunks.push_back(TomlChunk{text.substr(start), linesBefore});
  return chunks;
}

ChunkShape chunkShape(const toml::table& root, std::span<const std::string_view> arrays) {
  ChunkShape shape;
  for (auto&& [key, node] : root) {
    const bool known = std::find(arrays.begin(), arrays.end(), key.str()) != arrays.end();
    if (known && isArrayOfHeaderTables(node)) {
      continue;
    }
    shape.appendsOnly = false;
    shape.closesAnArray = shape.closesAnArray || known;
  }
  return shape;
}

bool chunksCombine(std::span<const ChunkShape> shapes) {
  if (shapes.size() < 2) {
    return true;
  }
  return !shapes[0].closesAnArray && std::all_of(shapes.begin() + 1, shapes.end(),
                                                 [](const ChunkShape& s) { return s.appendsOnly; });
}

}  // namespace edgeplane::detail
