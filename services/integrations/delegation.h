// Calls to kudos (and ledger) on behalf of a person of an org: the Slack app
// sends a kudos as the mapped giver, SCIM and the CSV import write the
// directory as an admin would. A plain service token (Host::ServiceAuthorization)
// never acts as a person or admin; a delegated token (common/auth
// MintDelegatedToken) does, with exactly the roles given here, and the callee
// sees Principal::actor = "integrations".
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/integrations/host.h"

namespace integrations {

// The service name every delegated token of this binary carries in `act.sub`.
inline constexpr char kDelegatingService[] = "integrations";

// "Bearer <token>" for the "authorization" metadata of a call made for
// `person` of `org` with `roles` (one or both of "member", "admin"). Minted
// per call (an HMAC with HostOptions::delegation_secret; valid
// kDelegatedTokenTtl = 2 min). FAILED_PRECONDITION "delegation disabled: ..."
// without a delegation secret; INVALID_ARGUMENT when
// `org` or `person` breaks the id rule or a role is not member/admin.
absl::StatusOr<std::string> DelegatedAuthorization(const Host& host, absl::string_view org,
                                                   absl::string_view person,
                                                   const std::vector<std::string>& roles);

}  // namespace integrations
