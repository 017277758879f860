// SCIM 2.0 (RFC 7643/7644) for an identity provider (Okta, Entra ID) at
// /scim/{org}/v2/...: Users and Groups over kudos's people and teams, the
// discovery endpoints, bearer tokens per org. Reached through
// HttpIngressService (the gateway forwards /scim/ unchanged). Every error is
// a SCIM error body with its HTTP status; a refused request changes nothing.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "integrations/v1/http_ingress.pb.h"
#include "services/integrations/directory_sync_directory.h"
#include "services/integrations/directory_sync_scim_store.h"

namespace integrations {

struct ScimOptions {
  // Most resources in one list response (a larger count is cut to it).
  long long max_page_size = 200;
  // Most members a group holds (a larger team is refused with tooMany).
  size_t max_group_members = 10000;
  // The audit stream's actor of SCIM's directory writes.
  std::string actor = "scim";
};

class ScimHandler {
 public:
  ScimHandler(ScimStore& store, KudosDirectory& directory, ScimOptions options);

  v1::HandleResponse Handle(const v1::HandleRequest& request, absl::Time now);

  struct Call;
  struct Reply;

 private:
  absl::StatusOr<Reply> Route(const Call& call);
  absl::StatusOr<Reply> Users(const Call& call);
  absl::StatusOr<Reply> Groups(const Call& call);

  ScimStore& store_;
  KudosDirectory& directory_;
  ScimOptions options_;
};

// A person id from a SCIM userName (or a team id from a group's
// displayName): every character outside [A-Za-z0-9._-] becomes '_', cut to
// 64 characters; "x" when nothing is left.
std::string IdFromName(absl::string_view name);
// The id used when IdFromName(name) is another resource's: its first 47
// characters, '-', then 16 hex digits of the SHA-256 of the lower-cased name.
std::string DisambiguatedId(absl::string_view name);

}  // namespace integrations
