// A file mode's permission bits as chmod takes them ("0750"), for error messages.
#pragma once

#include <string>

namespace edgeplane {

inline std::string modeText(unsigned mode) {
  static constexpr char kDigits[] = "01234567";
  std::string out = "0000";
  for (size_t i = 4; i-- > 0; mode >>= 3) {
    out[i] = kDigits[mode & 7];
  }
  return out;
}

}  // namespace edgeplane
