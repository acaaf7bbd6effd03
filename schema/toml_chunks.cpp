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

}  // namespace

std::vector<TomlChunk> splitTomlChunks(std::string_view text, size_t minBytes) {
  std::vector<TomlChunk> chunks;
  size_t start = 0;
  uint32_t linesBefore = 0;
  if (minBytes > 0 && text.size() / 2 >= minBytes) {
    size_t from = minBytes;
    while (from < text.size()) {
      const size_t nl = text.find("\n[[", from - 1);
      if (nl == std::string_view::npos) {
        break;
      }
      const size_t at = nl + 1;
      if (!opensTopLevelArrayTable(text, at)) {
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
