// RFC 9773 (ARI) certificate identifiers: which issued certificate a renewalInfo request or a
// renewal order's `replaces` names. Pure: parses the PEM it is given, no I/O.
#pragma once

#include <string>
#include <string_view>

#include "schema/result.h"

namespace edgeplane::acme {

// The CertID of the first certificate in `chainPem` (the leaf): base64url of its Authority Key
// Identifier's keyIdentifier, ".", base64url of its serial number's DER content octets (the
// INTEGER without tag and length, so a leading 0x00 sign byte stays). RFC 9773 section 4.1. An
// error when the PEM holds no certificate or the leaf has no keyIdentifier.
Result<std::string> ariCertId(std::string_view chainPem);

}  // namespace edgeplane::acme
