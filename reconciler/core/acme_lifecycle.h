// When an ACME certificate is renewed and how long a failed order holds it back: pure, no clock
// (the caller passes the time and the randomness).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "reconciler/core/host_state.h"
#include "reconciler/core/target.h"

namespace edgeplane::core {

// The backoff after a failed order starts here (seconds) and doubles per consecutive failure.
inline constexpr int64_t kAcmeBackoffFloor = 60;
// ... up to a day.
inline constexpr int64_t kAcmeBackoffCeiling = 86400;

// Seconds to wait after the `failures`-th consecutive failed order (>= 1): floor * 2^(failures
// - 1), at most a day, plus up to a quarter of it more by `unit` (in [0, 1)), so that hosts
// that failed together do not all return to the CA at the same second. Never below the floor.
int64_t acmeBackoffSeconds(int64_t failures, double unit, int64_t floor = kAcmeBackoffFloor);

// When the certificate `v` in place for `c` is due for renewal (unix seconds): notAfter minus
// renew_before, or minus a third of its lifetime, minus a jitter of up to a tenth of the
// smaller of that threshold and the rest of the lifetime. The jitter is a hash of the name and
// the fingerprint: stable across runs (plan does not flap), different between certificates and
// between one certificate and its successor. renew_before at least the lifetime means at once
// (a forced renewal).
int64_t acmeRenewAt(const CertTarget& c, const CertView& v);

// RFC 9773 (ARI): how long the CA's renewalInfo answer holds when it says nothing (Retry-After
// absent), and the bounds a Retry-After is held to (a minute to a day), so that neither a CA's
// typo nor a huge value stops the checking or floods the CA.
inline constexpr int64_t kAriDefaultRecheck = 6 * 3600;
inline constexpr int64_t kAriMinRecheck = 60;
inline constexpr int64_t kAriMaxRecheck = 86400;
// After a failed renewalInfo request (an error, a malformed reply): the lifetime rule holds
// until the next check, this much later.
inline constexpr int64_t kAriErrorRecheck = 3600;

// Seconds until a certificate's renewalInfo is asked again after an answer with `retryAfter`
// (seconds; nullopt: none): kAriDefaultRecheck, or retryAfter within [kAriMinRecheck,
// kAriMaxRecheck].
int64_t ariRecheckSeconds(std::optional<int64_t> retryAfter);

// The renewal time chosen in the CA's suggested window [start, end) (unix seconds): start plus
// `unit` (in [0, 1), clamped) of its length, uniformly, as RFC 9773 section 4.2 asks. A time
// already past means renew now.
int64_t ariRenewAt(int64_t start, int64_t end, double unit);

// What an order is for, as the lifecycle state records it: "<challenge> <domain>,<domain>…".
// Failures of another spec do not hold an order back.
std::string acmeSpec(const CertTarget& c);

}  // namespace edgeplane::core
