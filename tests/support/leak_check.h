// Asks LeakSanitizer, in a build that has it (ASan), whether memory has leaked by now.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define EDGEPLANE_HAS_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDGEPLANE_HAS_LSAN 1
#endif
#endif

#if defined(EDGEPLANE_HAS_LSAN)
#include <sanitizer/lsan_interface.h>
#endif

namespace edgeplane::testing {

// True when LeakSanitizer finds unreachable memory now (it prints the report). Without a
// sanitizer nothing can be checked and this is false: the CI's ASan tree runs the check.
inline bool leaksFoundNow() {
#if defined(EDGEPLANE_HAS_LSAN)
  return __lsan_do_recoverable_leak_check() != 0;
#else
  return false;
#endif
}

}  // namespace edgeplane::testing
