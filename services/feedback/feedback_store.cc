#include "services/feedback/feedback_store.h"

#include <algorithm>
#include <set>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"
#include "lua/kCreateInvitationsLua.h"
#include "lua/kCreateSurveyLua.h"
#include "lua/kSubmitResponseLua.h"
#include "services/kudos/feed_hub.h"

namespace feedback {
namespace {

using common::redis::Reply;

// Invitations kept in the push stream (it is read live only).
constexpr int kInvitationStreamCap = 10000;
constexpr int kMaxRequestsPerTeam = 1000;

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("stored ", what, " cannot be parsed"));
}

int64_t ServedTtlSeconds() { return int64_t{kServedLookbackDays} * 86400; }

}  // namespace

std::string RandomHex(int bytes) {
  static thread_local absl::BitGen gen;
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (int i = 0; i < bytes; ++i) {
    const uint8_t b = absl::Uniform<uint8_t>(gen);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

FeedbackStore::FeedbackStore(common::redis::Pool& pool)
    : pool_(pool),
      create_survey_("feedback_create_survey", kCreateSurveyLua),
      create_invitations_("feedback_create_invitations", kCreateInvitationsLua),
      submit_response_("feedback_submit_response", kSubmitResponseLua) {}

absl::StatusOr<feedback::v1::FeedbackSettings> FeedbackStore::GetSettings(const std::string& org) {
  absl::StatusOr<Reply> reply = pool_.Run({"GET", Prefix(org) + "settings"});
  if (!reply.ok()) return reply.status();
  feedback::v1::FeedbackSettings settings;
  if (!reply->is_nil() && !settings.ParseFromString(reply->str)) return Corrupt("feedback settings");
  return settings;
}

absl::Status FeedbackStore::PutSettings(const std::string& org,
                                        const feedback::v1::FeedbackSettings& settings) {
  absl::StatusOr<Reply> reply = pool_.Run({"SET", Prefix(org) + "settings", settings.SerializeAsString()});
  return reply.status();
}

absl::Status FeedbackStore::CreateSurvey(const std::string& org, const feedback::v1::Survey& survey,
                                         int64_t now_ms) {
  absl::StatusOr<Reply> reply = pool_.Eval(
      create_survey_,
      {SurveyKey(org, survey.survey_id()), SurveysKey(org), TeamSurveysKey(org, survey.team_id())},
      {survey.survey_id(), survey.team_id(), survey.SerializeAsString(), absl::StrCat(now_ms),
       absl::StrCat(kMaxSurveysPerTeam), absl::StrCat(kMaxSurveysPerOrg)});
  return reply.status();
}

absl::StatusOr<std::optional<feedback::v1::Survey>> FeedbackStore::GetSurvey(
    const std::string& org, const std::string& survey_id) {
  absl::StatusOr<Reply> reply = pool_.Run({"GET", SurveyKey(org, survey_id)});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::optional<feedback::v1::Survey>();
  feedback::v1::Survey survey;
  if (!survey.ParseFromString(reply->str)) return Corrupt("survey");
  return std::optional<feedback::v1::Survey>(std::move(survey));
}

absl::StatusOr<std::vector<feedback::v1::Survey>> FeedbackStore::ListSurveys(
    const std::string& org, const std::string& team_id) {
  const std::string index =
      team_id.empty() ? SurveysKey(org) : TeamSurveysKey(org, team_id);
  absl::StatusOr<Reply> ids = pool_.Run({"ZRANGE", index, "0", "-1"});
  if (!ids.ok()) return ids.status();
  std::vector<feedback::v1::Survey> surveys;
  if (ids->elements.empty()) return surveys;
  common::redis::Command mget = {"MGET"};
  for (const Reply& id : ids->elements) mget.push_back(SurveyKey(org, id.str));
  absl::StatusOr<Reply> values = pool_.Run(mget);
  if (!values.ok()) return values.status();
  for (const Reply& value : values->elements) {
    if (value.is_nil()) continue;
    feedback::v1::Survey survey;
    if (!survey.ParseFromString(value.str)) return Corrupt("survey");
    surveys.push_back(std::move(survey));
  }
  return surveys;
}

absl::Status FeedbackStore::RecordServed(
    const std::string& org, const std::map<std::string, std::vector<std::string>>& served,
    int64_t ms) {
  std::vector<common::redis::Command> commands;
  const std::string score = absl::StrCat(ms);
  for (const auto& [team, people] : served) {
    if (people.empty()) continue;
    const std::string key = Prefix(org) + "served:" + team;
    common::redis::Command zadd = {"ZADD", key, "GT"};
    for (const std::string& person : people) {
      zadd.push_back(score);
      zadd.push_back(person);
    }
    commands.push_back(std::move(zadd));
    commands.push_back({"ZREMRANGEBYRANK", key, "0", absl::StrCat(-kMaxServedPerTeam - 1)});
    commands.push_back({"EXPIRE", key, absl::StrCat(ServedTtlSeconds())});
  }
  if (commands.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  for (const auto& reply : *replies) {
    if (!reply.ok()) return reply.status();
  }
  return absl::OkStatus();
}

absl::Status FeedbackStore::RecordServiceRequest(const std::string& org, const std::string& team,
                                                 const std::string& customer,
                                                 const std::string& provider,
                                                 const std::string& url, int64_t ms) {
  const std::string requests = Prefix(org) + "requests:" + team;
  feedback::v1::RecordServiceRequestRequest entry;  // the record, as the request shape
  entry.set_provider_team_id(team);
  entry.set_provider_person_id(provider);
  entry.set_work_item_url(url);
  entry.set_customer_id(customer);
  std::vector<common::redis::Command> commands = {
      {"LPUSH", requests, absl::StrCat(ms, "|", entry.SerializeAsString())},
      {"LTRIM", requests, "0", absl::StrCat(kMaxRequestsPerTeam - 1)},
      {"EXPIRE", requests, absl::StrCat(ServedTtlSeconds())},
  };
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  for (const auto& reply : *replies) {
    if (!reply.ok()) return reply.status();
  }
  return RecordServed(org, {{team, {customer}}}, ms);
}

absl::StatusOr<std::vector<std::string>> FeedbackStore::Served(const std::string& org,
                                                               const std::string& team,
                                                               int64_t since_ms) {
  absl::StatusOr<Reply> reply =
      pool_.Run({"ZRANGE", Prefix(org) + "served:" + team, "+inf", absl::StrCat(since_ms),
                 "BYSCORE", "REV"});
  if (!reply.ok()) return reply.status();
  std::vector<std::string> people;
  for (const Reply& person : reply->elements) people.push_back(person.str);
  return people;
}

absl::StatusOr<std::optional<int>> FeedbackStore::CreateInvitations(const std::string& org,
                                                                    const InvitationBatch& batch,
                                                                    int64_t now_ms) {
  // At most the served set's bound: every candidate is two keys of the call.
  const size_t n = std::min(batch.candidates.size(), static_cast<size_t>(kMaxServedPerTeam));
  std::vector<std::string> keys = {SweptKey(org, batch.survey_id, batch.period),
                                   WeeklyKey(org, batch.week_key), kudos::InvitationStream(org)};
  std::vector<std::string> args = {
      batch.survey_id,
      batch.team_id,
      batch.period,
      absl::StrCat(batch.period_start_ms),
      absl::StrCat(batch.closes_ms),
      absl::StrCat(batch.max_invitations),
      absl::StrCat(batch.weekly_cap),
      absl::StrCat(int64_t{batch.retention_days} * 86400),
      batch.template_pb,
      absl::StrCat(now_ms),
      absl::StrCat(kInvitationStreamCap),
      absl::StrCat(n),
  };
  for (size_t i = 0; i < n; ++i) {
    // Ids and salts drawn here so the script is given the keys they name.
    const std::string id = RandomHex(12);
    keys.push_back(InvitationKey(org, id));
    keys.push_back(InboxKey(org, batch.candidates[i]));
    args.insert(args.end(), {batch.candidates[i], id, RandomHex(16)});
  }
  KUDOS_CHECK(keys.size() == 3 + 2 * n && args.size() == 12 + 3 * n,
              "create_invitations: two keys and three arguments per candidate");
  absl::StatusOr<Reply> reply = pool_.Eval(create_invitations_, keys, args);
  if (!reply.ok()) return reply.status();
  if (reply->integer < 0) return std::optional<int>();
  return std::optional<int>(static_cast<int>(reply->integer));
}

absl::StatusOr<bool> FeedbackStore::Swept(const std::string& org, const std::string& survey_id,
                                          const std::string& period) {
  absl::StatusOr<Reply> reply =
      pool_.Run({"EXISTS", SweptKey(org, survey_id, period)});
  if (!reply.ok()) return reply.status();
  return reply->integer == 1;
}

absl::StatusOr<std::optional<StoredInvitation>> FeedbackStore::GetInvitation(
    const std::string& org, const std::string& id) {
  absl::StatusOr<Reply> reply = pool_.Run(
      {"HMGET", InvitationKey(org, id), "pb", "invitee", "answered", "period_start"});
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() < 4 || reply->elements[0].is_nil()) {
    return std::optional<StoredInvitation>();
  }
  StoredInvitation stored;
  if (!stored.invitation.ParseFromString(reply->elements[0].str)) return Corrupt("invitation");
  stored.invitee = reply->elements[1].str;
  stored.answered = reply->elements[2].str == "1";
  absl::StatusOr<long long> start = reply->elements[3].AsInteger();
  if (start.ok()) stored.period_start_ms = *start;
  return std::optional<StoredInvitation>(std::move(stored));
}

absl::StatusOr<std::vector<feedback::v1::Invitation>> FeedbackStore::OpenInvitations(
    const std::string& org, const std::string& person, int64_t now_ms) {
  const std::string inbox = InboxKey(org, person);
  // Closed ones leave the inbox (scores are closing times).
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline(
      {{"ZREMRANGEBYSCORE", inbox, "-inf", absl::StrCat(now_ms)},
       {"ZRANGE", inbox, "0", "-1"}});
  if (!replies.ok()) return replies.status();
  for (const auto& reply : *replies) {
    if (!reply.ok()) return reply.status();
  }
  std::vector<feedback::v1::Invitation> open;
  const Reply& ids = *(*replies)[1];
  if (ids.elements.empty()) return open;
  std::vector<common::redis::Command> commands;
  for (const Reply& id : ids.elements) {
    commands.push_back({"HMGET", InvitationKey(org, id.str), "pb", "invitee", "answered"});
  }
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> invitations = pool_.Pipeline(commands);
  if (!invitations.ok()) return invitations.status();
  for (const auto& reply : *invitations) {
    if (!reply.ok()) return reply.status();
    if (reply->elements.size() < 3 || reply->elements[0].is_nil()) continue;  // expired
    if (reply->elements[1].str != person || reply->elements[2].str == "1") continue;
    feedback::v1::Invitation invitation;
    if (!invitation.ParseFromString(reply->elements[0].str)) return Corrupt("invitation");
    open.push_back(std::move(invitation));
  }
  return open;
}

absl::StatusOr<SubmitOutcome> FeedbackStore::Submit(const std::string& org,
                                                    const std::string& invitation_id,
                                                    const std::string& team_id,
                                                    const std::string& caller,
                                                    const std::string& request_id,
                                                    const std::string& canonical_answers,
                                                    const std::string& response_nonce,
                                                    int retention_days, int64_t now_ms,
                                                    const std::string& respondent_tag,
                                                    const std::vector<std::string>& respondent_sets) {
  std::vector<std::string> keys = {InvitationKey(org, invitation_id),
                                   InvitationRequestKey(org, invitation_id),
                                   ResponsesKey(org, team_id), InboxKey(org, caller)};
  keys.insert(keys.end(), respondent_sets.begin(), respondent_sets.end());
  std::vector<std::string> args = {invitation_id,   caller,
                                   request_id,      canonical_answers,
                                   response_nonce,  absl::StrCat(now_ms),
                                   absl::StrCat(int64_t{retention_days} * 86400),
                                   respondent_tag,  team_id};
  absl::StatusOr<Reply> reply = pool_.Eval(submit_response_, keys, args);
  if (!reply.ok()) return reply.status();
  SubmitOutcome outcome;
  outcome.replayed = reply->str == "REPLAY";
  return outcome;
}

std::string FeedbackStore::RespondentsKey(const std::string& org, const std::string& team,
                                          const std::string& survey, const std::string& unit,
                                          const std::string& period) {
  std::string key = Prefix(org) + "respondents:" + team + ":";
  if (!survey.empty()) key += survey + ":";
  return key + unit + ":" + period;
}

absl::StatusOr<int> FeedbackStore::Respondents(const std::string& key) {
  absl::StatusOr<Reply> reply = pool_.Run({"SCARD", key});
  if (!reply.ok()) return reply.status();
  return static_cast<int>(reply->integer);
}

absl::StatusOr<std::vector<StoredResponse>> FeedbackStore::Responses(const std::string& org,
                                                                     const std::string& team,
                                                                     int64_t start_ms,
                                                                     int64_t end_ms) {
  absl::StatusOr<Reply> reply =
      pool_.Run({"ZRANGE", ResponsesKey(org, team), absl::StrCat(start_ms),
                 absl::StrCat("(", end_ms), "BYSCORE"});
  if (!reply.ok()) return reply.status();
  std::vector<StoredResponse> responses;
  for (const Reply& member : reply->elements) {
    // "<nonce>|<survey id>|<answers>": ids never hold '|'.
    const size_t first = member.str.find('|');
    const size_t second = first == std::string::npos ? first : member.str.find('|', first + 1);
    if (second == std::string::npos) return Corrupt("response");
    StoredResponse response;
    response.survey_id = member.str.substr(first + 1, second - first - 1);
    feedback::v1::SubmitResponseRequest holder;
    if (!holder.ParseFromString(member.str.substr(second + 1))) return Corrupt("response");
    response.answers.assign(holder.answers().begin(), holder.answers().end());
    responses.push_back(std::move(response));
  }
  return responses;
}

}  // namespace feedback
