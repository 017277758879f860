// Directory sync's view of kudos's DirectoryService: the people and teams it
// reads and writes, over gRPC with a deadline on every call, authorized as
// an admin of the org (a token delegated to the integrations service, whose
// subject is the actor the audit stream names: "scim", or the admin who ran
// a CSV import).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kudos/v1/kudos.grpc.pb.h"

namespace integrations {

// "authorization" metadata value acting as admin `actor` of `org`.
using AdminAuthorization =
    std::function<absl::StatusOr<std::string>(const std::string& org, const std::string& actor)>;

class KudosDirectory {
 public:
  KudosDirectory(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds call_timeout,
                 AdminAuthorization authorization);

  // nullopt when the person does not exist.
  absl::StatusOr<std::optional<kudos::v1::Person>> GetPerson(const std::string& org,
                                                              const std::string& actor,
                                                              const std::string& person_id);
  absl::Status CreatePerson(const std::string& org, const std::string& actor,
                            const kudos::v1::Person& person);
  absl::Status UpdatePerson(const std::string& org, const std::string& actor,
                            const kudos::v1::Person& person);
  // The members of `team_id`, at most `max_members` (more is RESOURCE_EXHAUSTED).
  absl::StatusOr<std::vector<kudos::v1::Person>> ListTeamMembers(const std::string& org,
                                                                 const std::string& actor,
                                                                 const std::string& team_id,
                                                                 size_t max_members);
  // Every team of the org by id, at most `max_teams` (more is RESOURCE_EXHAUSTED).
  absl::StatusOr<std::map<std::string, kudos::v1::Team>> ListTeams(const std::string& org,
                                                                   const std::string& actor,
                                                                   size_t max_teams);
  // ALREADY_EXISTS when the team exists (kudos has no team update).
  absl::Status CreateTeam(const std::string& org, const std::string& actor,
                          const kudos::v1::Team& team);

 private:
  // A client context with the deadline and the admin authorization.
  absl::StatusOr<std::unique_ptr<grpc::ClientContext>> Context(const std::string& org,
                                                               const std::string& actor);

  std::unique_ptr<kudos::v1::DirectoryService::Stub> stub_;
  std::chrono::milliseconds call_timeout_;
  AdminAuthorization authorization_;
};

}  // namespace integrations
