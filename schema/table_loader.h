// A parsed TOML document (or a chunk of one, toml_chunks.h) -> Desired: the loader proper, for
// document_loader.cpp, which reads files and cuts them into chunks. Internal to schema.
#pragma once

#include "schema/toml_include.h"

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "schema/diagnostic.h"
#include "schema/model.h"

namespace edgeplane::detail {

// Loads the top level of one parsed document into `out`, appending to what is there. Type errors,
// unknown keys and malformed values go to `diags`; well-formed parts are still loaded so that
// validation can report everything at once. `linesBefore`: the lines of the file before the
// parsed text (a chunk).
void loadTopLevel(const toml::table& root, Desired& out, Diagnostics& diags, const SourceFile& file,
                  uint32_t linesBefore = 0);

// The top-level keys that are arrays of [[tables]] ("namespace", "forward", ...).
std::span<const std::string_view> topLevelArrays();

// Appends, in order, what the chunks after a document's first one loaded: only elements of the
// top level's arrays of [[tables]], no [fleet]. Every member of Desired but `fleet` is appended
// here.
void appendElements(Desired& to, std::vector<Desired>&& from);

// What follows loading every file: `subdomain`s expanded under [fleet]'s base_domain, the
// certificates edgeplane manages added.
void finishLoading(Desired& d, Diagnostics& diags);

}  // namespace edgeplane::detail
