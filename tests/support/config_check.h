// Helpers the loader and validator tests share: a valid base document and "what would
// `edgeplane validate` print for this TOML".
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "schema/loader.h"
#include "schema/validate.h"

namespace edgeplane::testing {

// A valid namespace the cases build on. It is exactly 10 lines, so the case under test
// starts on line 11. Its one peer owns 10.50.0.0-10.50.0.15.
inline constexpr std::string_view kBase = R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28"]
# The case under test starts on line 11.
)";

inline std::string withBase(std::string_view rest) {
  return std::string(kBase) + std::string(rest);
}

// Loads one document as t.toml and validates it: exactly what `edgeplane validate` prints.
// Validation runs too, so a loader error is seen not to cascade into validator errors.
inline std::string check(std::string_view toml) {
  Desired d;
  Diagnostics diags;
  loadDocument(toml, "t.toml", d, diags);
  validate(d, diags);
  return diags.format();
}

// Loads and validates a document that must be clean, for the tests that inspect values.
inline Desired loadClean(std::string_view toml) {
  Desired d;
  Diagnostics diags;
  loadDocument(toml, "t.toml", d, diags);
  validate(d, diags);
  EXPECT_EQ(diags.format(), "");
  return d;
}

}  // namespace edgeplane::testing
