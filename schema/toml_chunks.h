// One TOML document cut into chunks that toml++ parses on their own (in parallel), and the test
// that what the chunks hold is what the whole document holds. Internal to the schema library.
//
// A chunk after the first starts at a line "[[name]]": an element of a top-level array of
// tables. Parsed alone it means what it means in the document when (1) the text before it parses
// as a whole on its own, so the line is a header and not text inside a multi-line string or
// array, and (2) each of its top-level keys is an array of [[tables]] that the document's
// earlier part leaves absent or also made of [[tables]]: then the chunk only appends elements,
// and every header inside it refers to its own elements. The caller parses every chunk; when one
// fails to parse or breaks (2), it parses the whole document instead, which reports the error.
#pragma once

#include "schema/toml_include.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace edgeplane::detail {

struct TomlChunk {
  std::string_view text;
  uint32_t linesBefore = 0;  // lines of the document before the chunk's first line
};

// Cuts `text` before lines that start with "[[name]]" (name: a bare key). The first chunk is
// what comes before the first such line (past the text's first byte): it may hold [fleet], is
// never memoised (chunk_memo.h), and stays short. Every other chunk is at least `minBytes` long
// (but the last) and ends where the text says (about one such line in 16, chosen by its own
// bytes; where none is for 4 * minBytes, at the next such line), so that an edit changes the
// chunks around it and no other. A text with no such line, or shorter than 2 * minBytes, is one
// chunk.
std::vector<TomlChunk> splitTomlChunks(std::string_view text, size_t minBytes);

// How a parsed chunk's top level may combine with the others' under condition (2) above, for
// `arrays`, the top-level keys that are arrays of [[tables]].
struct ChunkShape {
  // Every top-level key is one of `arrays` and made of [[tables]]: required of every chunk but
  // the first.
  bool appendsOnly = true;
  // One of `arrays` is present and not made of [[tables]] (`forward = []`, `[forward]`): no later
  // chunk may append, as it could be to that key.
  bool closesAnArray = false;
};
ChunkShape chunkShape(const toml::table& root, std::span<const std::string_view> arrays);

// Whether chunks of these shapes, the first one first, mean the whole document (condition (2)).
bool chunksCombine(std::span<const ChunkShape> shapes);

}  // namespace edgeplane::detail
