// libFuzzer target: the CA's ACME JSON documents through the decoders of messages.h.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "reconciler/acme/messages.h"
#include "tests/fuzz/fuzz_check.h"

using edgeplane::fuzz::check;

// The first byte picks the decoder, the rest is the response body.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeplane::acme;
  if (size == 0) {
    return 0;
  }
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: {
      auto d = parseDirectory(body);
      // A directory decoded is one the client can use.
      check(!d || (!d->newNonce.empty() && !d->newAccount.empty() && !d->newOrder.empty()));
      check(d || !d.error().message.empty());
      break;
    }
    case 1: {
      auto o = parseOrder(body);
      check(o || !o.error().message.empty());
      break;
    }
    case 2: {
      auto a = parseAuthorization(body);
      check(a || !a.error().message.empty());
      break;
    }
    case 3: {
      auto p = parseProblem(body);
      if (p) {
        // Subproblems do not nest (RFC 8555 section 6.7.1).
        for (const Problem& s : p->subproblems) {
          check(s.subproblems.empty());
        }
        (void)problemSummary(*p);
      } else {
        check(!p.error().message.empty());
      }
      break;
    }
    default: {
      // RFC 9773's renewalInfo answer: a decoded window is never empty or backwards.
      auto r = parseRenewalInfo(body);
      check(!r || r->end > r->start);
      check(r || !r.error().message.empty());
      break;
    }
  }
  return 0;
}
