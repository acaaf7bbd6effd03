// JSON string literals for the hand-written JSON outputs (plans, snapshots, the admin API).
#pragma once

#include <string>
#include <string_view>

namespace edgeplane {

// Appends `s` to `out` as a quoted JSON string: '"' and '\' escaped, control characters as
// \b \f \n \r \t or \u00xx (lower-case hex); everything else, UTF-8 included, as is. One
// spelling everywhere, so equal values always give equal text (the snapshot is compared as
// text).
inline void appendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 0xf]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

}  // namespace edgeplane
