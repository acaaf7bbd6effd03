// Automatic HTTPS: a managed ACME certificate for each [[site]] and [[gateway]] that names no
// `certificate`, added to the desired state after every file is read.
#pragma once

#include <string>
#include <string_view>

#include "schema/model.h"

namespace edgeplane {

// Managed certificates are named "auto.<kind>.<route>" (auto.site.shop); a [[certificate]]
// may not use the prefix.
inline constexpr std::string_view kManagedCertPrefix = "auto.";

// The managed certificate's name for a route of `kind` ("site", "gateway") named `route`.
std::string managedCertName(std::string_view kind, std::string_view route);

// Gives every site and gateway without `certificate` its managed certificate: issuer acme,
// the route's hostnames, the challenge chosen at order time (Certificate::challenge unset),
// DNS-01 for a wildcard hostname. With [fleet].wildcard the routes that use `subdomain` share
// "auto.wildcard" instead: *.<base_domain> by DNS-01.
// Routes whose hostnames did not load are left alone (their error is reported already); a
// [[certificate]] that takes a managed name is refused by the validator.
void addManagedCertificates(Desired& d);

}  // namespace edgeplane
