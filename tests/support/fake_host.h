// An in-memory HostDriver: the fake subsystem drivers composed over one FakeKernel.
#pragma once

#include "reconciler/core/drivers.h"
#include "tests/support/fake_drivers.h"

namespace edgeplane::testing {

// Tests read and change `state` directly, tell calls to fail through `failOn` and check
// `calls`, `syncs`, `peerSyncs` and `keyFiles` (FakeKernel).
class FakeHost : public FakeKernel, private FakeDriverSet, public core::ComposedHost {
 public:
  FakeHost() : FakeDriverSet(static_cast<FakeKernel&>(*this)), ComposedHost(drivers()) {}
  // The composition refers to this object's own drivers.
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;
};

}  // namespace edgeplane::testing
