// Text from Git, a config or a peer made safe to show on a terminal (issue 13, finding 8).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace edgeplane {

// `s` with everything a terminal could act on written out as an escape: C0 controls (all of
// them, '\n' and '\t' too) and DEL as \xNN, C1 controls (U+0080..U+009F) as \u00NN, and each
// byte that is not part of valid UTF-8 (stray, truncated, overlong, surrogate, > U+10FFFF) as
// \xNN. Valid UTF-8 printable text is kept as it is; a backslash is not escaped, so escaping
// twice changes nothing.
std::string terminalText(std::string_view s);

// The same, but '\n' is kept: for multi-line text (diagnostics, whole outputs).
std::string terminalLines(std::string_view s);

// How many bytes at the end of `s` begin a valid UTF-8 sequence that is not complete yet (0 to
// 3): what a stream should hold back until the rest arrives.
size_t incompleteUtf8Tail(std::string_view s);

// The colours of human output on a terminal (issue 14): SGR sequences, the only escapes
// edgeplane writes itself. Text around them is escaped as above, so none can come from a config.
namespace sgr {
inline constexpr std::string_view kReset = "\x1b[0m";
inline constexpr std::string_view kRed = "\x1b[31m";
inline constexpr std::string_view kGreen = "\x1b[32m";
inline constexpr std::string_view kYellow = "\x1b[33m";
}  // namespace sgr

// The length of the sgr:: sequence `s` begins with, else 0.
size_t sgrAt(std::string_view s);

}  // namespace edgeplane
