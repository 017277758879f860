#include "services/integrations/directory_sync_directory.h"

#include "absl/strings/str_cat.h"
#include "common/grpc/status.h"

namespace integrations {
namespace {

using common::grpc_util::FromGrpcStatus;

// Pages of kudos's directory listings (its maximum).
constexpr int kListPageSize = 1000;

}  // namespace

KudosDirectory::KudosDirectory(std::shared_ptr<grpc::Channel> channel,
                               std::chrono::milliseconds call_timeout,
                               AdminAuthorization authorization)
    : stub_(kudos::v1::DirectoryService::NewStub(std::move(channel))),
      call_timeout_(call_timeout),
      authorization_(std::move(authorization)) {}

absl::StatusOr<std::unique_ptr<grpc::ClientContext>> KudosDirectory::Context(
    const std::string& org, const std::string& actor) {
  absl::StatusOr<std::string> authorization = authorization_(org, actor);
  if (!authorization.ok()) return authorization.status();
  auto context = std::make_unique<grpc::ClientContext>();
  common::grpc_util::SetDeadline(*context, call_timeout_);
  context->AddMetadata("authorization", *authorization);
  return context;
}

absl::StatusOr<std::optional<kudos::v1::Person>> KudosDirectory::GetPerson(
    const std::string& org, const std::string& actor, const std::string& person_id) {
  auto context = Context(org, actor);
  if (!context.ok()) return context.status();
  kudos::v1::GetPersonRequest request;
  request.set_person_id(person_id);
  kudos::v1::GetPersonResponse response;
  grpc::Status status = stub_->GetPerson(context->get(), request, &response);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) return std::nullopt;
  if (!status.ok()) return FromGrpcStatus(status);
  return response.person();
}

absl::Status KudosDirectory::CreatePerson(const std::string& org, const std::string& actor,
                                          const kudos::v1::Person& person) {
  auto context = Context(org, actor);
  if (!context.ok()) return context.status();
  kudos::v1::CreatePersonRequest request;
  *request.mutable_person() = person;
  kudos::v1::CreatePersonResponse response;
  return FromGrpcStatus(stub_->CreatePerson(context->get(), request, &response));
}

absl::Status KudosDirectory::UpdatePerson(const std::string& org, const std::string& actor,
                                          const kudos::v1::Person& person) {
  auto context = Context(org, actor);
  if (!context.ok()) return context.status();
  kudos::v1::UpdatePersonRequest request;
  *request.mutable_person() = person;
  kudos::v1::UpdatePersonResponse response;
  return FromGrpcStatus(stub_->UpdatePerson(context->get(), request, &response));
}

absl::StatusOr<std::vector<kudos::v1::Person>> KudosDirectory::ListTeamMembers(
    const std::string& org, const std::string& actor, const std::string& team_id,
    size_t max_members) {
  std::vector<kudos::v1::Person> members;
  std::string page_token;
  // Bounded: each page adds up to kListPageSize members, and more than
  // max_members ends the loop with an error.
  do {
    auto context = Context(org, actor);
    if (!context.ok()) return context.status();
    kudos::v1::ListPeopleRequest request;
    request.set_team_id(team_id);
    request.set_page_size(kListPageSize);
    request.set_page_token(page_token);
    kudos::v1::ListPeopleResponse response;
    grpc::Status status = stub_->ListPeople(context->get(), request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    for (const kudos::v1::Person& person : response.people()) members.push_back(person);
    if (members.size() > max_members) {
      return absl::ResourceExhaustedError(
          absl::StrCat("team '", team_id, "' has more than ", max_members, " members"));
    }
    page_token = response.next_page_token();
  } while (!page_token.empty());
  return members;
}

absl::StatusOr<std::map<std::string, kudos::v1::Team>> KudosDirectory::ListTeams(
    const std::string& org, const std::string& actor, size_t max_teams) {
  std::map<std::string, kudos::v1::Team> teams;
  std::string page_token;
  do {
    auto context = Context(org, actor);
    if (!context.ok()) return context.status();
    kudos::v1::ListTeamsRequest request;
    request.set_page_size(kListPageSize);
    request.set_page_token(page_token);
    kudos::v1::ListTeamsResponse response;
    grpc::Status status = stub_->ListTeams(context->get(), request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    for (const kudos::v1::Team& team : response.teams()) teams[team.team_id()] = team;
    if (teams.size() > max_teams) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the org has more than ", max_teams, " teams"));
    }
    page_token = response.next_page_token();
  } while (!page_token.empty());
  return teams;
}

absl::Status KudosDirectory::CreateTeam(const std::string& org, const std::string& actor,
                                        const kudos::v1::Team& team) {
  auto context = Context(org, actor);
  if (!context.ok()) return context.status();
  kudos::v1::CreateTeamRequest request;
  *request.mutable_team() = team;
  kudos::v1::CreateTeamResponse response;
  return FromGrpcStatus(stub_->CreateTeam(context->get(), request, &response));
}

}  // namespace integrations
