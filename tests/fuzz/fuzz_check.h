// What the fuzz targets assert with: an invariant that fails aborts, which libFuzzer reports.
#pragma once

#include <cstdlib>

namespace edgeplane::fuzz {

inline void check(bool condition) {
  if (!condition) {
    std::abort();
  }
}

}  // namespace edgeplane::fuzz
