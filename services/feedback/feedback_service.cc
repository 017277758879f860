#include "services/feedback/feedback_service.h"

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/auth/ids.h"
#include "common/calendar/calendar.h"
#include "common/grpc/status.h"
#include "google/protobuf/util/time_util.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace feedback {
namespace {

using common::auth::Principal;
using common::grpc_util::ToGrpcStatus;

// Screens read nothing here; services never act as a person.
absl::Status RequireUser(const Principal& who) {
  if (who.is_service()) return absl::PermissionDeniedError("service tokens cannot use feedback");
  if (who.is_screen_only()) {
    return absl::PermissionDeniedError("screen tokens read nothing of feedback");
  }
  return absl::OkStatus();
}

absl::Status RequireAdminOrManager(const Principal& who) {
  if (absl::Status user = RequireUser(who); !user.ok()) return user;
  if (!who.is_admin() && !who.Has(common::auth::Role::kManager)) {
    return absl::PermissionDeniedError("surveys and scores are for the team's manager and admins");
  }
  return absl::OkStatus();
}

absl::Status TeamNotFound(const std::string& team_id) {
  return absl::NotFoundError(absl::StrCat("team_id: '", team_id, "' does not exist"));
}

absl::Status ValidateUrl(const std::string& url) {
  if (url.empty()) return absl::OkStatus();
  const bool scheme = absl::StartsWith(url, "https://") || absl::StartsWith(url, "http://");
  bool clean = ValidUtf8(url);
  for (unsigned char c : url) {
    if (c <= 0x20 || c == 0x7f) clean = false;
  }
  if (!scheme || !clean || url.size() > static_cast<size_t>(kMaxWorkItemUrlLength)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "work_item_url: an http(s) URL of at most ", kMaxWorkItemUrlLength,
        " bytes without spaces"));
  }
  return absl::OkStatus();
}

// A status message never carries a stored person's answers; the code and
// the message of the domain layer pass through.
template <typename Fn>
grpc::Status Serve(const common::auth::Guard& auth, grpc::ServerContext* context, Fn fn) {
  absl::StatusOr<Principal> who = auth.Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(fn(*who));
}

const char* UnitName(common::calendar::PeriodUnit unit) {
  switch (unit) {
    case common::calendar::PeriodUnit::kWeek: return "week";
    case common::calendar::PeriodUnit::kQuarter: return "quarter";
    default: return "month";
  }
}

constexpr common::calendar::PeriodUnit kScoreUnits[] = {common::calendar::PeriodUnit::kWeek,
                                                        common::calendar::PeriodUnit::kMonth,
                                                        common::calendar::PeriodUnit::kQuarter};

}  // namespace

std::string RespondentTag(const std::string& secret, const std::string& org,
                          const std::string& team, const std::string& person) {
  const std::string message = absl::StrCat("feedback-respondent", std::string(1, '\0'), org,
                                           std::string(1, '\0'), team, std::string(1, '\0'),
                                           person);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length && i < 16; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

FeedbackServiceImpl::FeedbackServiceImpl(const common::auth::Guard& auth, FeedbackStore& store,
                                         Directory& directory, std::string respondent_secret,
                                         std::function<absl::Time()> clock)
    : auth_(auth),
      store_(store),
      directory_(directory),
      respondent_secret_(std::move(respondent_secret)),
      clock_(std::move(clock)) {}

absl::Status FeedbackServiceImpl::RequireTeamReader(const Principal& who,
                                                    const std::string& team_id) {
  if (absl::Status role = RequireAdminOrManager(who); !role.ok()) return role;
  if (absl::Status id = common::auth::CheckId("team_id", team_id); !id.ok()) return id;
  absl::StatusOr<std::optional<kudos::v1::Team>> team = directory_.FindTeam(who.org, team_id);
  if (!team.ok()) return team.status();
  if (!team->has_value()) return TeamNotFound(team_id);
  if (who.is_admin()) return absl::OkStatus();
  absl::StatusOr<bool> manages = directory_.Manages(who.org, team_id, who.subject);
  if (!manages.ok()) return manages.status();
  if (!*manages) {
    return absl::PermissionDeniedError(
        absl::StrCat("team_id: '", team_id, "' has no active member managed by the caller"));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------ surveys

absl::Status FeedbackServiceImpl::DoCreateSurvey(const Principal& who,
                                                 const v1::CreateSurveyRequest& request,
                                                 v1::CreateSurveyResponse& response) {
  if (absl::Status role = RequireAdminOrManager(who); !role.ok()) return role;
  if (!request.has_survey()) return absl::InvalidArgumentError("survey: required");
  v1::Survey survey = request.survey();
  if (absl::Status valid = ValidateSurvey(survey); !valid.ok()) return valid;
  // The survey's team_id was checked above; now existence and the manager.
  std::string team_id = survey.team_id();
  if (absl::Status reader = RequireTeamReader(who, team_id); !reader.ok()) {
    if (reader.code() == absl::StatusCode::kNotFound || reader.code() == absl::StatusCode::kPermissionDenied) {
      return absl::Status(reader.code(), absl::StrCat("survey.", reader.message()));
    }
    return reader;
  }
  const absl::Time now = clock_();
  survey.set_survey_id("s" + RandomHex(8));
  *survey.mutable_create_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(now));
  survey.set_created_by(who.subject);
  if (absl::Status stored = store_.CreateSurvey(who.org, survey, absl::ToUnixMillis(now));
      !stored.ok()) {
    return stored;
  }
  *response.mutable_survey() = std::move(survey);
  return absl::OkStatus();
}

absl::Status FeedbackServiceImpl::DoGetSurvey(const Principal& who,
                                              const v1::GetSurveyRequest& request,
                                              v1::GetSurveyResponse& response) {
  if (absl::Status role = RequireAdminOrManager(who); !role.ok()) return role;
  if (absl::Status id = common::auth::CheckId("survey_id", request.survey_id()); !id.ok()) return id;
  absl::StatusOr<std::optional<v1::Survey>> survey = store_.GetSurvey(who.org, request.survey_id());
  if (!survey.ok()) return survey.status();
  if (!survey->has_value()) {
    return absl::NotFoundError(absl::StrCat("survey_id: '", request.survey_id(), "' does not exist"));
  }
  if (absl::Status reader = RequireTeamReader(who, (*survey)->team_id()); !reader.ok()) return reader;
  *response.mutable_survey() = **std::move(survey);
  return absl::OkStatus();
}

absl::Status FeedbackServiceImpl::DoListSurveys(const Principal& who,
                                                const v1::ListSurveysRequest& request,
                                                v1::ListSurveysResponse& response) {
  if (absl::Status role = RequireAdminOrManager(who); !role.ok()) return role;
  if (!request.team_id().empty()) {
    if (absl::Status reader = RequireTeamReader(who, request.team_id()); !reader.ok()) return reader;
  }
  absl::StatusOr<std::vector<v1::Survey>> surveys = store_.ListSurveys(who.org, request.team_id());
  if (!surveys.ok()) return surveys.status();
  std::map<std::string, bool> manages;  // team -> the caller manages it
  for (v1::Survey& survey : *surveys) {
    if (!who.is_admin() && request.team_id().empty()) {
      auto it = manages.find(survey.team_id());
      if (it == manages.end()) {
        absl::StatusOr<bool> m = directory_.Manages(who.org, survey.team_id(), who.subject);
        if (!m.ok()) return m.status();
        it = manages.emplace(survey.team_id(), *m).first;
      }
      if (!it->second) continue;
    }
    *response.add_surveys() = std::move(survey);
  }
  return absl::OkStatus();
}

// ------------------------------------------------------- who a team served

absl::Status FeedbackServiceImpl::DoRecordServiceRequest(
    const Principal& who, const v1::RecordServiceRequestRequest& request,
    v1::RecordServiceRequestResponse& response) {
  if (absl::Status user = RequireUser(who); !user.ok()) return user;
  std::string customer = request.customer_id().empty() ? who.subject : request.customer_id();
  if (!request.customer_id().empty() && request.customer_id() != who.subject && !who.is_admin()) {
    return absl::PermissionDeniedError("customer_id: only admins record for another person");
  }
  if (absl::Status id = common::auth::CheckId("customer_id", customer); !id.ok()) return id;
  if (request.provider_team_id().empty() && request.provider_person_id().empty()) {
    return absl::InvalidArgumentError("provider_team_id: required (or provider_person_id)");
  }
  if (!request.provider_team_id().empty()) {
    if (absl::Status id = common::auth::CheckId("provider_team_id", request.provider_team_id());
        !id.ok()) {
      return id;
    }
  }
  if (!request.provider_person_id().empty()) {
    if (absl::Status id = common::auth::CheckId("provider_person_id", request.provider_person_id());
        !id.ok()) {
      return id;
    }
  }
  if (absl::Status url = ValidateUrl(request.work_item_url()); !url.ok()) return url;
  std::vector<std::string> ids = {customer};
  if (!request.provider_person_id().empty()) ids.push_back(request.provider_person_id());
  absl::StatusOr<std::map<std::string, kudos::v1::Person>> people =
      directory_.kudos().GetPeople(who.org, ids);
  if (!people.ok()) return people.status();
  auto customer_it = people->find(customer);
  if (customer_it == people->end()) {
    return absl::NotFoundError(absl::StrCat("customer_id: '", customer, "' does not exist"));
  }
  std::string team_id = request.provider_team_id();
  if (!request.provider_person_id().empty()) {
    auto provider = people->find(request.provider_person_id());
    if (provider == people->end()) {
      return absl::NotFoundError(absl::StrCat("provider_person_id: '", request.provider_person_id(),
                                              "' does not exist"));
    }
    if (provider->second.team_id().empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "provider_person_id: '", request.provider_person_id(), "' belongs to no team"));
    }
    if (!team_id.empty() && team_id != provider->second.team_id()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "provider_team_id: '", team_id, "' is not the team of provider_person_id '",
          request.provider_person_id(), "'"));
    }
    team_id = provider->second.team_id();
  }
  absl::StatusOr<std::optional<kudos::v1::Team>> team = directory_.FindTeam(who.org, team_id);
  if (!team.ok()) return team.status();
  if (!team->has_value()) {
    return absl::NotFoundError(absl::StrCat("provider_team_id: '", team_id, "' does not exist"));
  }
  if (customer_it->second.team_id() == team_id) {
    return absl::InvalidArgumentError(absl::StrCat(
        "customer_id: '", customer, "' is a member of team '", team_id,
        "' (a team's feedback comes from the people it serves, not its members)"));
  }
  if (absl::Status stored =
          store_.RecordServiceRequest(who.org, team_id, customer, request.provider_person_id(),
                                      request.work_item_url(), absl::ToUnixMillis(clock_()));
      !stored.ok()) {
    return stored;
  }
  response.set_team_id(team_id);
  return absl::OkStatus();
}

// -------------------------------------------------------------- responses

absl::Status FeedbackServiceImpl::DoListInvitations(const Principal& who,
                                                    v1::ListInvitationsResponse& response) {
  if (absl::Status user = RequireUser(who); !user.ok()) return user;
  absl::StatusOr<std::vector<v1::Invitation>> open =
      store_.OpenInvitations(who.org, who.subject, absl::ToUnixMillis(clock_()));
  if (!open.ok()) return open.status();
  for (v1::Invitation& invitation : *open) *response.add_invitations() = std::move(invitation);
  return absl::OkStatus();
}

absl::Status FeedbackServiceImpl::DoSubmitResponse(const Principal& who,
                                                   const v1::SubmitResponseRequest& request,
                                                   v1::SubmitResponseResponse& response) {
  if (absl::Status user = RequireUser(who); !user.ok()) return user;
  if (absl::Status id = ValidateRequestId(request.request_id()); !id.ok()) return id;
  if (absl::Status id = common::auth::CheckId("invitation_id", request.invitation_id()); !id.ok()) {
    return id;
  }
  absl::StatusOr<std::optional<StoredInvitation>> stored =
      store_.GetInvitation(who.org, request.invitation_id());
  if (!stored.ok()) return stored.status();
  // Another person's invitation looks exactly like one that does not exist.
  if (!stored->has_value() || (*stored)->invitee != who.subject) {
    return absl::NotFoundError(absl::StrCat("invitation_id: '", request.invitation_id(),
                                            "' is not an invitation of yours"));
  }
  const v1::Invitation& invitation = (*stored)->invitation;
  v1::Survey questions;  // the invitation carries the survey's questions
  *questions.mutable_questions() = invitation.questions();
  if (absl::Status valid = ValidateAnswers(questions, request.answers()); !valid.ok()) return valid;
  absl::StatusOr<v1::FeedbackSettings> settings = store_.GetSettings(who.org);
  if (!settings.ok()) return settings.status();
  // The respondent sets of every score window holding this response (it
  // counts where its survey period starts), team-wide and for its survey.
  absl::StatusOr<kudos::v1::OrgSettings> org_settings = directory_.kudos().GetSettings(who.org);
  if (!org_settings.ok()) return org_settings.status();
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(org_settings->time_zone());
  if (!zone.ok()) return zone.status();
  const absl::Time bucket = absl::FromUnixMillis((*stored)->period_start_ms);
  std::vector<std::string> sets;
  for (common::calendar::PeriodUnit unit : kScoreUnits) {
    const std::string key =
        common::calendar::PeriodAt(unit, bucket, *zone, static_cast<int>(org_settings->week_start()))
            .key;
    sets.push_back(FeedbackStore::RespondentsKey(who.org, invitation.team_id(), "", UnitName(unit), key));
    sets.push_back(FeedbackStore::RespondentsKey(who.org, invitation.team_id(),
                                                 invitation.survey_id(), UnitName(unit), key));
  }
  absl::StatusOr<SubmitOutcome> outcome =
      store_.Submit(who.org, request.invitation_id(), invitation.team_id(), who.subject,
                    request.request_id(),
                    CanonicalAnswers(request.answers()), RandomHex(8),
                    EffectiveSettings(*settings).retention_days(), absl::ToUnixMillis(clock_()),
                    RespondentTag(respondent_secret_, who.org, invitation.team_id(), who.subject),
                    sets);
  if (!outcome.ok()) return outcome.status();
  response.set_invitation_id(invitation.invitation_id());
  response.set_survey_id(invitation.survey_id());
  response.set_team_id(invitation.team_id());
  response.set_period(invitation.period());
  return absl::OkStatus();
}

// ------------------------------------------------------------------ scores

absl::Status FeedbackServiceImpl::DoGetServiceScore(const Principal& who,
                                                    const v1::GetServiceScoreRequest& request,
                                                    v1::GetServiceScoreResponse& response) {
  if (absl::Status role = RequireAdminOrManager(who); !role.ok()) return role;
  const int window = static_cast<int>(request.window());
  if (window < v1::SCORE_WINDOW_UNSPECIFIED || window > v1::SCORE_WINDOW_QUARTER) {
    return absl::InvalidArgumentError(
        absl::StrCat("window: must be WEEK, MONTH or QUARTER (0..3), got ", window));
  }
  if (!request.survey_id().empty()) {
    if (absl::Status id = common::auth::CheckId("survey_id", request.survey_id()); !id.ok()) {
      return id;
    }
  }
  if (absl::Status reader = RequireTeamReader(who, request.team_id()); !reader.ok()) return reader;
  absl::StatusOr<std::vector<v1::Survey>> surveys = store_.ListSurveys(who.org, request.team_id());
  if (!surveys.ok()) return surveys.status();
  std::map<std::string, v1::Survey> by_id;
  for (v1::Survey& survey : *surveys) by_id[survey.survey_id()] = std::move(survey);
  if (!request.survey_id().empty() && by_id.count(request.survey_id()) == 0) {
    return absl::NotFoundError(absl::StrCat("survey_id: '", request.survey_id(),
                                            "' is not a survey of team '", request.team_id(), "'"));
  }
  absl::StatusOr<kudos::v1::OrgSettings> org_settings = directory_.kudos().GetSettings(who.org);
  if (!org_settings.ok()) return org_settings.status();
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(org_settings->time_zone());
  if (!zone.ok()) return zone.status();
  const int week_start = static_cast<int>(org_settings->week_start());
  const common::calendar::PeriodUnit unit = WindowUnit(request.window());
  common::calendar::Period period;
  if (request.period().empty()) {
    period = common::calendar::PeriodAt(unit, clock_(), *zone, week_start);
  } else {
    absl::StatusOr<common::calendar::Period> parsed =
        common::calendar::ParsePeriod(unit, request.period(), *zone, week_start);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("period: ", parsed.status().message()));
    }
    period = *parsed;
  }
  const common::calendar::Period previous =
      common::calendar::PeriodAt(unit, period.start - absl::Seconds(1), *zone, week_start);
  absl::StatusOr<v1::FeedbackSettings> settings = store_.GetSettings(who.org);
  if (!settings.ok()) return settings.status();
  const int threshold = EffectiveSettings(*settings).anonymity_threshold();
  auto score_of = [&](const common::calendar::Period& p) -> absl::StatusOr<v1::ServiceScore> {
    absl::StatusOr<std::vector<StoredResponse>> responses = store_.Responses(
        who.org, request.team_id(), absl::ToUnixMillis(p.start), absl::ToUnixMillis(p.end));
    if (!responses.ok()) return responses.status();
    const int team_responses = static_cast<int>(responses->size());
    if (!request.survey_id().empty()) {
      std::vector<StoredResponse> kept;
      for (StoredResponse& r : *responses) {
        if (r.survey_id == request.survey_id()) kept.push_back(std::move(r));
      }
      responses->swap(kept);
    }
    // The threshold counts distinct people (respondent tags), not responses.
    absl::StatusOr<int> respondents = store_.Respondents(FeedbackStore::RespondentsKey(
        who.org, request.team_id(), request.survey_id(), UnitName(unit), p.key));
    if (!respondents.ok()) return respondents.status();
    int shown_to = *respondents;
    if (!request.survey_id().empty()) {
      // A subset read: the team's figures minus this survey's must not leave
      // a group under the threshold either (1..threshold-1 responses).
      const int complement = team_responses - static_cast<int>(responses->size());
      if (complement > 0 && complement < threshold) shown_to = 0;
    }
    v1::ServiceScore score = ComputeScore(*responses, by_id, threshold, shown_to);
    // Comments only at the team level: a subset's comments could be
    // subtracted from the team's word for word.
    if (!request.survey_id().empty()) score.clear_comments();
    score.set_team_id(request.team_id());
    score.set_window(request.window() == v1::SCORE_WINDOW_UNSPECIFIED ? v1::SCORE_WINDOW_MONTH
                                                                      : request.window());
    score.set_period(p.key);
    return score;
  };
  absl::StatusOr<v1::ServiceScore> current = score_of(period);
  if (!current.ok()) return current.status();
  absl::StatusOr<v1::ServiceScore> before = score_of(previous);
  if (!before.ok()) return before.status();
  SetTrend(*current, *before);
  *response.mutable_score() = *std::move(current);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- settings

absl::Status FeedbackServiceImpl::DoGetSettings(const Principal& who,
                                                v1::GetFeedbackSettingsResponse& response) {
  if (absl::Status role = RequireAdminOrManager(who); !role.ok()) return role;
  absl::StatusOr<v1::FeedbackSettings> settings = store_.GetSettings(who.org);
  if (!settings.ok()) return settings.status();
  *response.mutable_settings() = EffectiveSettings(*settings);
  return absl::OkStatus();
}

absl::Status FeedbackServiceImpl::DoUpdateSettings(const Principal& who,
                                                   const v1::UpdateFeedbackSettingsRequest& request,
                                                   v1::UpdateFeedbackSettingsResponse& response) {
  if (absl::Status user = RequireUser(who); !user.ok()) return user;
  if (!who.is_admin()) return absl::PermissionDeniedError("only admins change feedback settings");
  if (absl::Status valid = ValidateSettings(request.settings()); !valid.ok()) return valid;
  if (absl::Status put = store_.PutSettings(who.org, request.settings()); !put.ok()) return put;
  *response.mutable_settings() = EffectiveSettings(request.settings());
  return absl::OkStatus();
}

// ---------------------------------------------------------------- gRPC edge

grpc::Status FeedbackServiceImpl::CreateSurvey(grpc::ServerContext* context,
                                               const v1::CreateSurveyRequest* request,
                                               v1::CreateSurveyResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoCreateSurvey(who, *request, *response);
  });
}

grpc::Status FeedbackServiceImpl::GetSurvey(grpc::ServerContext* context,
                                            const v1::GetSurveyRequest* request,
                                            v1::GetSurveyResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoGetSurvey(who, *request, *response);
  });
}

grpc::Status FeedbackServiceImpl::ListSurveys(grpc::ServerContext* context,
                                              const v1::ListSurveysRequest* request,
                                              v1::ListSurveysResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoListSurveys(who, *request, *response);
  });
}

grpc::Status FeedbackServiceImpl::RecordServiceRequest(
    grpc::ServerContext* context, const v1::RecordServiceRequestRequest* request,
    v1::RecordServiceRequestResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoRecordServiceRequest(who, *request, *response);
  });
}

grpc::Status FeedbackServiceImpl::ListInvitations(grpc::ServerContext* context,
                                                  const v1::ListInvitationsRequest* /*request*/,
                                                  v1::ListInvitationsResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoListInvitations(who, *response);
  });
}

grpc::Status FeedbackServiceImpl::SubmitResponse(grpc::ServerContext* context,
                                                 const v1::SubmitResponseRequest* request,
                                                 v1::SubmitResponseResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoSubmitResponse(who, *request, *response);
  });
}

grpc::Status FeedbackServiceImpl::GetServiceScore(grpc::ServerContext* context,
                                                  const v1::GetServiceScoreRequest* request,
                                                  v1::GetServiceScoreResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoGetServiceScore(who, *request, *response);
  });
}

grpc::Status FeedbackServiceImpl::GetFeedbackSettings(grpc::ServerContext* context,
                                                      const v1::GetFeedbackSettingsRequest* /*request*/,
                                                      v1::GetFeedbackSettingsResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) { return DoGetSettings(who, *response); });
}

grpc::Status FeedbackServiceImpl::UpdateFeedbackSettings(
    grpc::ServerContext* context, const v1::UpdateFeedbackSettingsRequest* request,
    v1::UpdateFeedbackSettingsResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoUpdateSettings(who, *request, *response);
  });
}

}  // namespace feedback
