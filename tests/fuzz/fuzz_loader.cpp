// libFuzzer target for the desired-state loader: untrusted TOML -> Desired -> validate -> text.
//
// Every byte string must come back as diagnostics, never as a crash, a hang or a leak. The
// whole path `edgeplane validate` takes for one file is exercised: toml++ parsing, the
// loader's type and value checks (net.h parsers included), semantic validation across kinds,
// and the formatting of every diagnostic. And a document cut into chunks that are parsed on
// their own (schema/toml_chunks.h, here at almost every "[[name]]" line) means what it means
// whole, also when the chunks are decoded from what a first load kept (chunk_memo.h).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "schema/chunk_memo.h"
#include "schema/desired_codec.h"
#include "schema/diagnostic.h"
#include "schema/loader.h"
#include "schema/model.h"
#include "schema/validate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  edgeplane::Desired desired;
  edgeplane::Diagnostics diags;
  edgeplane::detail::loadDocument(text, "fuzz.toml", desired, diags, 0);  // whole
  const std::string whole = edgeplane::encodeDesired(desired, "");
  auto sameAsWhole = [&](edgeplane::ChunkMemo* memo) {
    edgeplane::Desired chunked;
    edgeplane::Diagnostics chunkedDiags;
    edgeplane::detail::loadDocument(text, "fuzz.toml", chunked, chunkedDiags, 1, memo);
    if (chunkedDiags.format() != diags.format() || edgeplane::encodeDesired(chunked, "") != whole) {
      __builtin_trap();
    }
  };
  edgeplane::ChunkMemo first("");
  sameAsWhole(&first);
  edgeplane::ChunkMemo second("", first.encodeKept());
  sameAsWhole(&second);
  if (second.recalledCount() != first.keptCount()) {  // each kept chunk is found again
    __builtin_trap();
  }
  edgeplane::validate(desired, diags);
  // Also covers the per-host view the reconciler and `validate --host` compute.
  for (const std::string& host : edgeplane::targetHosts(desired)) {
    (void)edgeplane::resolveFor(desired, host);
  }
  const std::string out = diags.format();
  // A config is rejected exactly when it has diagnostics, and then every one is printed.
  if (diags.empty() != out.empty()) {
    __builtin_trap();
  }
  return 0;
}
