#include "services/integrations/delegation.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"

namespace integrations {

absl::StatusOr<std::string> DelegatedAuthorization(const Host& host, absl::string_view org,
                                                   absl::string_view person,
                                                   const std::vector<std::string>& roles) {
  absl::StatusOr<std::string> token = common::auth::MintDelegatedToken(
      kDelegatingService, org, person, roles, host.options().delegation_secret, absl::Now());
  if (!token.ok()) return token.status();
  return absl::StrCat("Bearer ", *token);
}

}  // namespace integrations
