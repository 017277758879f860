#include "services/kudos/kudos_service.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/status.h"
#include "services/kudos/feed_writer.h"
#include "services/kudos/kudos_rules.h"

namespace kudos {
namespace {

using common::auth::Principal;
using common::grpc_util::Call;
using common::grpc_util::Done;
using common::grpc_util::Into;
using common::grpc_util::ToGrpcStatus;

// Asked by the workflow before each step that writes or calls the ledger.
KudosWorkflow::StopCheck StopWhenInterrupted(const Call& call) {
  const Call* c = &call;  // alive until the call finishes, after the workflow's answer
  return [c]() -> absl::Status {
    if (c->cancelled()) {
      return absl::CancelledError("the call was cancelled (by the client, or its deadline passed)");
    }
    if (std::chrono::steady_clock::now() >= c->deadline()) {
      return absl::DeadlineExceededError("kudos: the call's deadline passed before it could finish");
    }
    return absl::OkStatus();
  };
}

// Anyone of the org may read; a person acts only as themself; screens
// and services never act as a person.
absl::Status RequirePerson(const Principal& principal) {
  if (principal.is_service() || principal.is_screen_only()) {
    return absl::PermissionDeniedError("this token cannot act as a person (screens are read-only)");
  }
  return absl::OkStatus();
}

// A person (not a service or screen) acting on their own directory entry.
bool SelfService(const Principal& principal, const std::string& person_id) {
  return RequirePerson(principal).ok() && !principal.is_admin() && principal.subject == person_id;
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

bool MatchesFilter(const kudos::v1::KudosSent& sent, const kudos::v1::KudosFilter& filter,
                   const Viewer& viewer) {
  const kudos::v1::Kudos& kudos = sent.kudos();
  const auto& recipients = kudos.recipient_ids();
  if (IsPrivate(kudos)) {
    const bool personal_feed = !filter.giver_id().empty() || !filter.recipient_id().empty();
    if (!personal_feed || !IsPartyTo(kudos, viewer.person_id)) return false;
  }
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

common::grpc_util::UnaryOptions KudosServiceImpl::KudosCallOptions() {
  common::grpc_util::UnaryOptions options;
  options.service_name = "kudos";
  options.default_timeout = std::chrono::milliseconds(5000);
  return options;
}

KudosServiceImpl::KudosServiceImpl(const common::auth::Guard& auth, KudosStore& store,
                                   KudosWorkflow& workflow, FeedHub& feeds,
                                   common::grpc_util::UnaryOptions options)
    : auth_(auth),
      store_(store),
      workflow_(workflow),
      feeds_(feeds),
      calls_(auth, std::move(options)) {}

grpc::ServerUnaryReactor* KudosServiceImpl::SendKudos(grpc::CallbackServerContext* context,
                                                      const kudos::v1::SendKudosRequest* request,
                                                      kudos::v1::SendKudosResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status role = RequirePerson(call.principal()); !role.ok()) return role;
    call.Then([this, &call, request, response](Done done) {
      workflow_.SendKudosAsync(call.principal().org, call.principal().subject, *request,
                               call.deadline(), StopWhenInterrupted(call),
                               Into(response->mutable_kudos(), std::move(done)));
    });
    call.Then([request, response]() -> absl::Status {
      // The allowance was spent and the org let the kudos go out without points.
      response->set_sent_without_points(request->points_per_recipient() > 0 &&
                                        response->kudos().points_per_recipient() == 0);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* KudosServiceImpl::RecordCompanyKudos(
    grpc::CallbackServerContext* context, const kudos::v1::RecordCompanyKudosRequest* request,
    kudos::v1::RecordCompanyKudosResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status role = RequireProgramsService(call.principal()); !role.ok()) return role;
    call.Then([this, &call, request, response](Done done) {
      workflow_.RecordCompanyKudosAsync(call.principal().org, *request, call.deadline(),
                                        StopWhenInterrupted(call),
                                        Into(response->mutable_kudos(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* KudosServiceImpl::GetKudos(grpc::CallbackServerContext* context,
                                                     const kudos::v1::GetKudosRequest* request,
                                                     kudos::v1::GetKudosResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status id = ValidateId("kudos_id", request->kudos_id()); !id.ok()) return id;
    call.Then([this, &call, request, response](Done done) {
      store_.GetKudosForViewerAsync(call.principal().org, request->kudos_id(),
                                    ViewerOf(call.principal()), call.deadline(),
                                    Into(response->mutable_kudos(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* KudosServiceImpl::ListKudos(grpc::CallbackServerContext* context,
                                                      const kudos::v1::ListKudosRequest* request,
                                                      kudos::v1::ListKudosResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status filter = ValidateFilter(request->filter()); !filter.ok()) return filter;
    absl::StatusOr<int> page_size = PageSize(request->page_size(), 20, 100);
    if (!page_size.ok()) return page_size.status();
    std::string cursor;
    if (!request->page_token().empty()) {
      absl::StatusOr<std::string> decoded = DecodePageToken(request->page_token());
      int64_t seq = 0;
      if (!decoded.ok() || !absl::SimpleAtoi(*decoded, &seq) || seq <= 0) {
        return absl::InvalidArgumentError("page_token: is not a token this API returned");
      }
      cursor = *decoded;
    }
    auto page = std::make_shared<FeedPage>();
    call.Then([this, &call, request, cursor, size = *page_size, page](Done done) {
          store_.ListFeedAsync(call.principal().org, FeedKey(request->filter()), cursor, size,
                               call.deadline(), Into(page.get(), std::move(done)));
        })
        .Then([this, &call, page](Done done) {
          // Private kudos of others and retracted ones (issue 18) leave the
          // page; it may come back short, with its cursor.
          store_.FilterVisibleAsync(call.principal().org, ViewerOf(call.principal()),
                                    std::move(page->kudos), call.deadline(),
                                    Into(&page->kudos, std::move(done)));
        })
        .Then([page, response]() -> absl::Status {
          for (kudos::v1::Kudos& kudos : page->kudos) *response->add_kudos() = std::move(kudos);
          if (!page->next_cursor.empty()) {
            response->set_next_page_token(EncodePageToken(page->next_cursor));
          }
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* KudosServiceImpl::BoostKudos(grpc::CallbackServerContext* context,
                                                       const kudos::v1::BoostKudosRequest* request,
                                                       kudos::v1::BoostKudosResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status role = RequirePerson(call.principal()); !role.ok()) return role;
    call.Then([this, &call, request, response](Done done) {
      workflow_.BoostKudosAsync(call.principal().org, call.principal().subject, *request,
                                call.deadline(), StopWhenInterrupted(call),
                                Into(response->mutable_kudos(), std::move(done)));
    });
    return absl::OkStatus();
  });
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
      FeedWriter::Create(request->filter(), max_queued, *std::move(slot), ViewerOf(*principal));
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

DirectoryServiceImpl::DirectoryServiceImpl(const common::auth::Guard& auth, KudosStore& store,
                                           LedgerClient& ledger,
                                           common::grpc_util::UnaryOptions options)
    : store_(store), ledger_(ledger), calls_(auth, std::move(options)) {}

grpc::ServerUnaryReactor* DirectoryServiceImpl::PutPerson(grpc::CallbackServerContext* context,
                                                          const kudos::v1::Person& person,
                                                          bool create, kudos::v1::Person* stored) {
  return calls_.Serve(context, [this, &person, create, stored](Call& call) -> absl::Status {
    // Issue 18: a person may update themself, but only hidden_from_leaderboards.
    const bool self_update = !create && SelfService(call.principal(), person.person_id());
    if (!self_update) {
      if (absl::Status role = RequireAdmin(call.principal()); !role.ok()) return role;
    }
    if (absl::Status valid = ValidatePerson(person); !valid.ok()) return valid;
    if (self_update) {
      auto people = std::make_shared<std::map<std::string, kudos::v1::Person>>();
      call.Then([this, &call, &person, people](Done done) {
            store_.GetPeopleAsync(call.principal().org, {person.person_id()}, call.deadline(),
                                  Into(people.get(), std::move(done)));
          })
          .Then([&person, people]() -> absl::Status {
            auto it = people->find(person.person_id());
            if (it == people->end()) {
              return absl::NotFoundError(
                  absl::StrCat("person.person_id: '", person.person_id(), "' does not exist"));
            }
            return ValidateSelfUpdate(it->second, person);
          });
    }
    call.Then([this, &call, &person, create](Done done) {
          const Principal& principal = call.principal();
          kudos::v1::KudosEvent event = DirectoryEvent(principal.org);
          *event.mutable_person_changed()->mutable_person() = person;
          store_.PutPersonAsync(principal.org, person, create, event.SerializeAsString(),
                                principal.subject, call.deadline(), std::move(done));
        })
        .Then([&person, stored]() -> absl::Status {
          *stored = person;
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* DirectoryServiceImpl::CreatePerson(
    grpc::CallbackServerContext* context, const kudos::v1::CreatePersonRequest* request,
    kudos::v1::CreatePersonResponse* response) {
  return PutPerson(context, request->person(), true, response->mutable_person());
}

grpc::ServerUnaryReactor* DirectoryServiceImpl::UpdatePerson(
    grpc::CallbackServerContext* context, const kudos::v1::UpdatePersonRequest* request,
    kudos::v1::UpdatePersonResponse* response) {
  return PutPerson(context, request->person(), false, response->mutable_person());
}

grpc::ServerUnaryReactor* DirectoryServiceImpl::GetPerson(grpc::CallbackServerContext* context,
                                                          const kudos::v1::GetPersonRequest* request,
                                                          kudos::v1::GetPersonResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status id = ValidateId("person_id", request->person_id()); !id.ok()) return id;
    auto people = std::make_shared<std::map<std::string, kudos::v1::Person>>();
    call.Then([this, &call, request, people](Done done) {
          store_.GetPeopleAsync(call.principal().org, {request->person_id()}, call.deadline(),
                                Into(people.get(), std::move(done)));
        })
        .Then([request, response, people]() -> absl::Status {
          auto it = people->find(request->person_id());
          if (it == people->end()) {
            return absl::NotFoundError(
                absl::StrCat("person_id: '", request->person_id(), "' does not exist"));
          }
          *response->mutable_person() = it->second;
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* DirectoryServiceImpl::ListPeople(
    grpc::CallbackServerContext* context, const kudos::v1::ListPeopleRequest* request,
    kudos::v1::ListPeopleResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (!request->team_id().empty()) {
      if (absl::Status id = ValidateId("team_id", request->team_id()); !id.ok()) return id;
    }
    absl::StatusOr<int> page_size = PageSize(request->page_size(), 100, 1000);
    if (!page_size.ok()) return page_size.status();
    absl::StatusOr<std::string> after = ListCursor(request->page_token());
    if (!after.ok()) return after.status();
    auto people = std::make_shared<std::vector<kudos::v1::Person>>();
    call.Then([this, &call, request, after = *after, size = *page_size, people](Done done) {
          store_.ListPeopleAsync(call.principal().org, request->team_id(), after, size + 1,
                                 call.deadline(), Into(people.get(), std::move(done)));
        })
        .Then([response, size = *page_size, people]() -> absl::Status {
          bool more = static_cast<int>(people->size()) > size;
          if (more) people->resize(size);
          for (auto& person : *people) *response->add_people() = std::move(person);
          if (more) {
            response->set_next_page_token(EncodePageToken(response->people().rbegin()->person_id()));
          }
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* DirectoryServiceImpl::CreateTeam(grpc::CallbackServerContext* context,
                                                           const kudos::v1::CreateTeamRequest* request,
                                                           kudos::v1::CreateTeamResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status role = RequireAdmin(call.principal()); !role.ok()) return role;
    if (absl::Status valid = ValidateTeam(request->team()); !valid.ok()) return valid;
    call.Then([this, &call, request](Done done) {
          const Principal& principal = call.principal();
          kudos::v1::KudosEvent event = DirectoryEvent(principal.org);
          *event.mutable_team_changed()->mutable_team() = request->team();
          store_.PutTeamAsync(principal.org, request->team(), event.SerializeAsString(),
                              principal.subject, call.deadline(), std::move(done));
        })
        .Then([request, response]() -> absl::Status {
          *response->mutable_team() = request->team();
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* DirectoryServiceImpl::ListTeams(grpc::CallbackServerContext* context,
                                                          const kudos::v1::ListTeamsRequest* request,
                                                          kudos::v1::ListTeamsResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    absl::StatusOr<int> page_size = PageSize(request->page_size(), 100, 1000);
    if (!page_size.ok()) return page_size.status();
    absl::StatusOr<std::string> after = ListCursor(request->page_token());
    if (!after.ok()) return after.status();
    auto teams = std::make_shared<std::vector<kudos::v1::Team>>();
    call.Then([this, &call, after = *after, size = *page_size, teams](Done done) {
          store_.ListTeamsAsync(call.principal().org, after, size + 1, call.deadline(),
                                Into(teams.get(), std::move(done)));
        })
        .Then([response, size = *page_size, teams]() -> absl::Status {
          bool more = static_cast<int>(teams->size()) > size;
          if (more) teams->resize(size);
          for (auto& team : *teams) *response->add_teams() = std::move(team);
          if (more) {
            response->set_next_page_token(EncodePageToken(response->teams().rbegin()->team_id()));
          }
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* DirectoryServiceImpl::GetOrgSettings(
    grpc::CallbackServerContext* context, const kudos::v1::GetOrgSettingsRequest*,
    kudos::v1::GetOrgSettingsResponse* response) {
  return calls_.Serve(context, [this, response](Call& call) -> absl::Status {
    call.Then([this, &call, response](Done done) {
      store_.GetSettingsAsync(call.principal().org, call.deadline(),
                              Into(response->mutable_settings(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* DirectoryServiceImpl::UpdateOrgSettings(
    grpc::CallbackServerContext* context, const kudos::v1::UpdateOrgSettingsRequest* request,
    kudos::v1::UpdateOrgSettingsResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status role = RequireAdmin(call.principal()); !role.ok()) return role;
    absl::StatusOr<kudos::v1::OrgSettings> normalized = NormalizeOrgSettings(request->settings());
    if (!normalized.ok()) return normalized.status();
    kudos::v1::OrgSettings* settings = response->mutable_settings();
    *settings = *std::move(normalized);
    // The ledger enforces the allowance: it learns the policy first, so a
    // stored setting is never looser than what the ledger applies.
    call.Then([this, &call, settings](Done done) {
          ledger_.SetAllowancePolicyAsync(
              call.principal().org, settings->allowance(), settings->retention(), call.deadline(),
              [done = std::move(done)](absl::Status policy) mutable {
                if (policy.ok()) return std::move(done)(policy);
                std::move(done)(absl::Status(
                    policy.code() == absl::StatusCode::kInvalidArgument
                        ? policy.code()
                        : absl::StatusCode::kUnavailable,
                    absl::StrCat("the ledger did not accept the allowance policy: ",
                                 policy.message())));
              });
        })
        .Then([this, &call, settings](Done done) {
          const Principal& principal = call.principal();
          kudos::v1::KudosEvent event = DirectoryEvent(principal.org);
          *event.mutable_org_settings_changed()->mutable_settings() = *settings;
          store_.PutSettingsAsync(principal.org, *settings, event.SerializeAsString(),
                                  principal.subject, call.deadline(), std::move(done));
        });
    return absl::OkStatus();
  });
}

}  // namespace kudos
