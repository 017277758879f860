#include "services/kudos/kudos_service.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/status.h"
#include "services/kudos/feed_writer.h"
#include "services/kudos/kudos_rules.h"

namespace kudos {
namespace {

using common::auth::Principal;
using common::grpc_util::ToGrpcStatus;

// Anyone of the org may read; a person acts only as themself; screens
// and services never act as a person.
absl::Status RequirePerson(const Principal& principal) {
  if (principal.is_service() || principal.is_screen_only()) {
    return absl::PermissionDeniedError("this token cannot act as a person (screens are read-only)");
  }
  return absl::OkStatus();
}

// A service token is never an org's admin, whatever roles it lists: the
// kudos service acts for people only through their own tokens.
absl::Status RequireAdmin(const Principal& principal) {
  if (principal.is_service()) {
    return absl::PermissionDeniedError("service tokens cannot manage the directory");
  }
  if (!principal.is_admin()) return absl::PermissionDeniedError("only admins manage the directory");
  return absl::OkStatus();
}

std::string FeedKey(const kudos::v1::KudosFilter& filter) {
  if (!filter.giver_id().empty()) return "feed:giver:" + filter.giver_id();
  if (!filter.recipient_id().empty()) return "feed:recipient:" + filter.recipient_id();
  if (!filter.team_id().empty()) return "feed:team:" + filter.team_id();
  if (!filter.value().empty()) return "feed:value:" + filter.value();
  return "feed:all";
}

// A directory change for the org's event stream, stamped now; the caller
// sets the change itself.
kudos::v1::KudosEvent DirectoryEvent(const std::string& org) {
  kudos::v1::KudosEvent event;
  event.set_org_id(org);
  *event.mutable_event_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
  return event;
}

// The id a directory listing continues after ("" for the first page).
absl::StatusOr<std::string> ListCursor(const std::string& page_token) {
  if (page_token.empty()) return std::string();
  return DecodePageToken(page_token);
}

}  // namespace

bool MatchesFilter(const kudos::v1::KudosSent& sent, const kudos::v1::KudosFilter& filter) {
  const kudos::v1::Kudos& kudos = sent.kudos();
  const auto& recipients = kudos.recipient_ids();
  if (!filter.giver_id().empty()) return kudos.giver_id() == filter.giver_id();
  if (!filter.recipient_id().empty()) {
    return std::find(recipients.begin(), recipients.end(), filter.recipient_id()) != recipients.end();
  }
  if (!filter.team_id().empty()) {
    if (sent.giver_team_id() == filter.team_id()) return true;
    for (const auto& [recipient, team] : sent.recipient_team_ids()) {
      if (team == filter.team_id()) return true;
    }
    return false;
  }
  if (!filter.value().empty()) {
    return std::find(kudos.values().begin(), kudos.values().end(), filter.value()) !=
           kudos.values().end();
  }
  return true;
}

KudosServiceImpl::KudosServiceImpl(const common::auth::Guard& auth, KudosStore& store,
                                   KudosWorkflow& workflow, FeedHub& feeds)
    : auth_(auth), store_(store), workflow_(workflow), feeds_(feeds) {}

grpc::Status KudosServiceImpl::SendKudos(grpc::ServerContext* context,
                                         const kudos::v1::SendKudosRequest* request,
                                         kudos::v1::SendKudosResponse* response) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (absl::Status role = RequirePerson(*principal); !role.ok()) return ToGrpcStatus(role);
  absl::StatusOr<kudos::v1::Kudos> kudos =
      workflow_.SendKudos(principal->org, principal->subject, *request);
  if (!kudos.ok()) return ToGrpcStatus(kudos.status());
  *response->mutable_kudos() = *std::move(kudos);
  return grpc::Status::OK;
}

grpc::Status KudosServiceImpl::GetKudos(grpc::ServerContext* context,
                                        const kudos::v1::GetKudosRequest* request,
                                        kudos::v1::GetKudosResponse* response) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (absl::Status id = ValidateId("kudos_id", request->kudos_id()); !id.ok()) {
    return ToGrpcStatus(id);
  }
  absl::StatusOr<kudos::v1::Kudos> kudos = store_.GetKudos(principal->org, request->kudos_id());
  if (!kudos.ok()) return ToGrpcStatus(kudos.status());
  *response->mutable_kudos() = *std::move(kudos);
  return grpc::Status::OK;
}

grpc::Status KudosServiceImpl::ListKudos(grpc::ServerContext* context,
                                         const kudos::v1::ListKudosRequest* request,
                                         kudos::v1::ListKudosResponse* response) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (absl::Status filter = ValidateFilter(request->filter()); !filter.ok()) {
    return ToGrpcStatus(filter);
  }
  absl::StatusOr<int> page_size = PageSize(request->page_size(), 20, 100);
  if (!page_size.ok()) return ToGrpcStatus(page_size.status());
  std::string cursor;
  if (!request->page_token().empty()) {
    absl::StatusOr<std::string> decoded = DecodePageToken(request->page_token());
    int64_t seq = 0;
    if (!decoded.ok() || !absl::SimpleAtoi(*decoded, &seq) || seq <= 0) {
      return ToGrpcStatus(absl::InvalidArgumentError("page_token: is not a token this API returned"));
    }
    cursor = *decoded;
  }
  absl::StatusOr<FeedPage> page =
      store_.ListFeed(principal->org, FeedKey(request->filter()), cursor, *page_size);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (kudos::v1::Kudos& kudos : page->kudos) *response->add_kudos() = std::move(kudos);
  if (!page->next_cursor.empty()) response->set_next_page_token(EncodePageToken(page->next_cursor));
  return grpc::Status::OK;
}

grpc::Status KudosServiceImpl::BoostKudos(grpc::ServerContext* context,
                                          const kudos::v1::BoostKudosRequest* request,
                                          kudos::v1::BoostKudosResponse* response) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (absl::Status role = RequirePerson(*principal); !role.ok()) return ToGrpcStatus(role);
  absl::StatusOr<kudos::v1::Kudos> kudos =
      workflow_.BoostKudos(principal->org, principal->subject, *request);
  if (!kudos.ok()) return ToGrpcStatus(kudos.status());
  *response->mutable_kudos() = *std::move(kudos);
  return grpc::Status::OK;
}

grpc::ServerWriteReactor<kudos::v1::WatchFeedResponse>* KudosServiceImpl::WatchFeed(
    grpc::CallbackServerContext* context, const kudos::v1::WatchFeedRequest* request) {
  const size_t max_queued = static_cast<size_t>(feeds_.options().max_queued_per_watcher);
  auto refuse = [&](const absl::Status& status) {
    std::shared_ptr<FeedWriter> writer = FeedWriter::Create({}, max_queued);
    writer->Close(ToGrpcStatus(status));
    return writer.get();  // alive until its OnDone
  };
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return refuse(principal.status());
  if (absl::Status filter = ValidateFilter(request->filter()); !filter.ok()) return refuse(filter);
  // A slot among the person's open streams, held until the stream is done.
  auto slot = auth_.OpenStream(*principal);
  if (!slot.ok()) return refuse(slot.status());
  std::shared_ptr<FeedWriter> writer =
      FeedWriter::Create(request->filter(), max_queued, *std::move(slot));
  // Feedback invitations: a person gets their own, a service (the gateway,
  // which routes each to its invitee's SSE clients) every one, a screen none.
  InvitationAudience invitations;
  if (principal->is_service()) {
    invitations.all = true;
  } else if (!principal->is_screen_only()) {
    invitations.person_id = principal->subject;
  }
  absl::StatusOr<std::unique_ptr<FeedHub::Subscription>> subscription =
      feeds_.Subscribe(principal->org, writer, std::move(invitations));
  if (!subscription.ok()) {
    if (subscription.status().code() == absl::StatusCode::kResourceExhausted) {
      const std::string retry_ms = absl::StrCat(feeds_.options().retry_after_ms);
      context->AddTrailingMetadata(common::auth::kRetryAfterMetadata, retry_ms);
      context->AddTrailingMetadata(common::auth::kRetryPushbackMetadata, retry_ms);
    }
    writer->Close(ToGrpcStatus(subscription.status()));
    return writer.get();
  }
  writer->Attach(*std::move(subscription));
  // The watch is live: every kudos committed after the client sees these
  // headers is delivered (clients may wait for them before acting).
  writer->GoLive();
  return writer.get();
}

DirectoryServiceImpl::DirectoryServiceImpl(const common::auth::Guard& auth,
                                           KudosStore& store, LedgerClient& ledger)
    : auth_(auth), store_(store), ledger_(ledger) {}

grpc::Status DirectoryServiceImpl::PutPerson(grpc::ServerContext* context,
                                             const kudos::v1::Person& person, bool create,
                                             kudos::v1::Person* stored) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (absl::Status role = RequireAdmin(*principal); !role.ok()) return ToGrpcStatus(role);
  if (absl::Status valid = ValidatePerson(person); !valid.ok()) return ToGrpcStatus(valid);
  kudos::v1::KudosEvent event = DirectoryEvent(principal->org);
  *event.mutable_person_changed()->mutable_person() = person;
  absl::Status put = store_.PutPerson(principal->org, person, create, event.SerializeAsString(),
                                      principal->subject);
  if (!put.ok()) return ToGrpcStatus(put);
  *stored = person;
  return grpc::Status::OK;
}

grpc::Status DirectoryServiceImpl::CreatePerson(grpc::ServerContext* context,
                                                const kudos::v1::CreatePersonRequest* request,
                                                kudos::v1::CreatePersonResponse* response) {
  return PutPerson(context, request->person(), true, response->mutable_person());
}

grpc::Status DirectoryServiceImpl::UpdatePerson(grpc::ServerContext* context,
                                                const kudos::v1::UpdatePersonRequest* request,
                                                kudos::v1::UpdatePersonResponse* response) {
  return PutPerson(context, request->person(), false, response->mutable_person());
}

grpc::Status DirectoryServiceImpl::GetPerson(grpc::ServerContext* context,
                                             const kudos::v1::GetPersonRequest* request,
                                             kudos::v1::GetPersonResponse* response) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (absl::Status id = ValidateId("person_id", request->person_id()); !id.ok()) {
    return ToGrpcStatus(id);
  }
  auto people = store_.GetPeople(principal->org, {request->person_id()});
  if (!people.ok()) return ToGrpcStatus(people.status());
  auto it = people->find(request->person_id());
  if (it == people->end()) {
    return ToGrpcStatus(absl::NotFoundError(
        absl::StrCat("person_id: '", request->person_id(), "' does not exist")));
  }
  *response->mutable_person() = it->second;
  return grpc::Status::OK;
}

grpc::Status DirectoryServiceImpl::ListPeople(grpc::ServerContext* context,
                                              const kudos::v1::ListPeopleRequest* request,
                                              kudos::v1::ListPeopleResponse* response) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (!request->team_id().empty()) {
    if (absl::Status id = ValidateId("team_id", request->team_id()); !id.ok()) return ToGrpcStatus(id);
  }
  absl::StatusOr<int> page_size = PageSize(request->page_size(), 100, 1000);
  if (!page_size.ok()) return ToGrpcStatus(page_size.status());
  absl::StatusOr<std::string> after = ListCursor(request->page_token());
  if (!after.ok()) return ToGrpcStatus(after.status());
  auto people = store_.ListPeople(principal->org, request->team_id(), *after, *page_size + 1);
  if (!people.ok()) return ToGrpcStatus(people.status());
  bool more = static_cast<int>(people->size()) > *page_size;
  if (more) people->resize(*page_size);
  for (auto& person : *people) *response->add_people() = std::move(person);
  if (more) response->set_next_page_token(EncodePageToken(response->people().rbegin()->person_id()));
  return grpc::Status::OK;
}

grpc::Status DirectoryServiceImpl::CreateTeam(grpc::ServerContext* context,
                                              const kudos::v1::CreateTeamRequest* request,
                                              kudos::v1::CreateTeamResponse* response) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (absl::Status role = RequireAdmin(*principal); !role.ok()) return ToGrpcStatus(role);
  if (absl::Status valid = ValidateTeam(request->team()); !valid.ok()) return ToGrpcStatus(valid);
  kudos::v1::KudosEvent event = DirectoryEvent(principal->org);
  *event.mutable_team_changed()->mutable_team() = request->team();
  absl::Status put = store_.PutTeam(principal->org, request->team(), event.SerializeAsString(),
                                    principal->subject);
  if (!put.ok()) return ToGrpcStatus(put);
  *response->mutable_team() = request->team();
  return grpc::Status::OK;
}

grpc::Status DirectoryServiceImpl::ListTeams(grpc::ServerContext* context,
                                             const kudos::v1::ListTeamsRequest* request,
                                             kudos::v1::ListTeamsResponse* response) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  absl::StatusOr<int> page_size = PageSize(request->page_size(), 100, 1000);
  if (!page_size.ok()) return ToGrpcStatus(page_size.status());
  absl::StatusOr<std::string> after = ListCursor(request->page_token());
  if (!after.ok()) return ToGrpcStatus(after.status());
  auto teams = store_.ListTeams(principal->org, *after, *page_size + 1);
  if (!teams.ok()) return ToGrpcStatus(teams.status());
  bool more = static_cast<int>(teams->size()) > *page_size;
  if (more) teams->resize(*page_size);
  for (auto& team : *teams) *response->add_teams() = std::move(team);
  if (more) response->set_next_page_token(EncodePageToken(response->teams().rbegin()->team_id()));
  return grpc::Status::OK;
}

grpc::Status DirectoryServiceImpl::GetOrgSettings(grpc::ServerContext* context,
                                                  const kudos::v1::GetOrgSettingsRequest*,
                                                  kudos::v1::GetOrgSettingsResponse* response) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  auto settings = store_.GetSettings(principal->org);
  if (!settings.ok()) return ToGrpcStatus(settings.status());
  *response->mutable_settings() = *std::move(settings);
  return grpc::Status::OK;
}

grpc::Status DirectoryServiceImpl::UpdateOrgSettings(
    grpc::ServerContext* context, const kudos::v1::UpdateOrgSettingsRequest* request,
    kudos::v1::UpdateOrgSettingsResponse* response) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (absl::Status role = RequireAdmin(*principal); !role.ok()) return ToGrpcStatus(role);
  absl::StatusOr<kudos::v1::OrgSettings> settings = NormalizeOrgSettings(request->settings());
  if (!settings.ok()) return ToGrpcStatus(settings.status());
  // The ledger enforces the allowance: it learns the policy first, so a
  // stored setting is never looser than what the ledger applies.
  if (absl::Status policy = ledger_.SetAllowancePolicy(principal->org, settings->allowance(),
                                                       settings->retention());
      !policy.ok()) {
    return ToGrpcStatus(absl::Status(
        policy.code() == absl::StatusCode::kInvalidArgument ? policy.code()
                                                            : absl::StatusCode::kUnavailable,
        absl::StrCat("the ledger did not accept the allowance policy: ", policy.message())));
  }
  kudos::v1::KudosEvent event = DirectoryEvent(principal->org);
  *event.mutable_org_settings_changed()->mutable_settings() = *settings;
  absl::Status put =
      store_.PutSettings(principal->org, *settings, event.SerializeAsString(), principal->subject);
  if (!put.ok()) return ToGrpcStatus(put);
  *response->mutable_settings() = *std::move(settings);
  return grpc::Status::OK;
}

}  // namespace kudos
