// The feedback service's Redis access. Every key carries {org} (one slot per
// org, each script atomic). P = "feedback:{org}:".
//   P settings                   serialized FeedbackSettings
//   P survey:<id>                serialized Survey (kept while its team's responses may be read)
//   P surveys                    ZSET survey id by create time (ms), <= kMaxSurveysPerOrg
//   P team_surveys:<team>        ZSET survey id by create time, <= kMaxSurveysPerTeam
//   P served:<team>              ZSET person -> last time served (ms): who thanked a member,
//                                whom a member thanked, recorded service requests; the
//                                kMaxServedPerTeam most recent, expires kServedLookbackDays
//   P requests:<team>            LIST of recorded service requests (customer, provider,
//                                url, ms), the 1000 newest, expires kServedLookbackDays
//   P swept:<survey>:<period>    the period's invitations were created (count); expires a
//                                day after the period: the exactly-once marker
//   P weekly:<week>              HASH person -> invitations this week (cap), expires 8 days
//   P inv:<id>                   HASH {pb, invitee, team, survey, period_start, closes,
//                                salt, answered}; expires after retention_days
//   P invreq:<id>                sha1(salt, request_id, answers) of the accepted answer:
//                                idempotency only; expires a day after the invitation closes
//   P inbox:<person>             ZSET open invitation ids by closes_at (ms)
//   P respondents:<team>[:<survey>]:<unit>:<period>
//                                SET of opaque respondent tags (HMAC of org, team, person with
//                                a server secret not in Redis) per score window period: the
//                                threshold counts people, not responses; expires with retention
//   P responses:<team>           ZSET "<random>|<survey>|<answers>" by the start (ms) of the
//                                survey period answered; no person, no invitation, no time
//                                of answering; older than retention_days removed on write
//   feedback:{org}:invitations   STREAM of new invitations (field "invitation"), capped:
//                                read by the kudos FeedHub to push them on WatchFeed
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "feedback/v1/feedback.pb.h"
#include "services/feedback/feedback_rules.h"

namespace feedback {

// One stored invitation (the HASH P inv:<id>).
struct StoredInvitation {
  feedback::v1::Invitation invitation;
  std::string invitee;
  bool answered = false;
  int64_t period_start_ms = 0;
};

struct SubmitOutcome {
  bool replayed = false;  // an earlier identical call was accepted
};

class FeedbackStore {
 public:
  explicit FeedbackStore(common::redis::Pool& pool);

  static std::string Prefix(const std::string& org) { return "feedback:{" + org + "}:"; }
  // One function per key name (the key shapes above); scripts are given
  // every key they touch (a slot migration routes a script by them).
  static std::string SurveyKey(const std::string& org, const std::string& survey_id) {
    return Prefix(org) + "survey:" + survey_id;
  }
  static std::string SurveysKey(const std::string& org) { return Prefix(org) + "surveys"; }
  static std::string TeamSurveysKey(const std::string& org, const std::string& team_id) {
    return Prefix(org) + "team_surveys:" + team_id;
  }
  static std::string SweptKey(const std::string& org, const std::string& survey_id,
                              const std::string& period) {
    return Prefix(org) + "swept:" + survey_id + ":" + period;
  }
  static std::string WeeklyKey(const std::string& org, const std::string& week_key) {
    return Prefix(org) + "weekly:" + week_key;
  }
  static std::string InvitationKey(const std::string& org, const std::string& invitation_id) {
    return Prefix(org) + "inv:" + invitation_id;
  }
  static std::string InvitationRequestKey(const std::string& org, const std::string& invitation_id) {
    return Prefix(org) + "invreq:" + invitation_id;
  }
  static std::string InboxKey(const std::string& org, const std::string& person_id) {
    return Prefix(org) + "inbox:" + person_id;
  }
  static std::string ResponsesKey(const std::string& org, const std::string& team_id) {
    return Prefix(org) + "responses:" + team_id;
  }

  // Settings as stored (zeros: defaults).
  absl::StatusOr<feedback::v1::FeedbackSettings> GetSettings(const std::string& org);
  absl::Status PutSettings(const std::string& org, const feedback::v1::FeedbackSettings& settings);

  // FAILED_PRECONDITION past kMaxSurveysPerTeam or kMaxSurveysPerOrg (nothing stored).
  absl::Status CreateSurvey(const std::string& org, const feedback::v1::Survey& survey,
                            int64_t now_ms);
  absl::StatusOr<std::optional<feedback::v1::Survey>> GetSurvey(const std::string& org,
                                                                const std::string& survey_id);
  // Every survey of the org, or of one team; oldest first.
  absl::StatusOr<std::vector<feedback::v1::Survey>> ListSurveys(const std::string& org,
                                                                const std::string& team_id);

  // People served by each team (team -> people), at `ms`; bounded and
  // expiring. A person listed under their own team is kept (sampling skips
  // them with the directory as it is then).
  absl::Status RecordServed(const std::string& org,
                            const std::map<std::string, std::vector<std::string>>& served,
                            int64_t ms);
  absl::Status RecordServiceRequest(const std::string& org, const std::string& team,
                                    const std::string& customer, const std::string& provider,
                                    const std::string& url, int64_t ms);
  // The team's served people since `since_ms`, most recent first.
  absl::StatusOr<std::vector<std::string>> Served(const std::string& org, const std::string& team,
                                                  int64_t since_ms);

  struct InvitationBatch {
    std::string survey_id;
    std::string team_id;
    std::string period;
    int64_t period_start_ms = 0;
    int64_t closes_ms = 0;
    int max_invitations = 0;
    std::string week_key;  // the week of the sweep (weekly cap)
    int weekly_cap = 0;
    int retention_days = 0;
    std::string template_pb;  // the Invitation without invitation_id and person_id
    // Eligible, in the order to try; past kMaxServedPerTeam (the served
    // set's bound) the rest are not tried. Ids and salts are drawn per call.
    std::vector<std::string> candidates;
  };
  // Creates the period's invitations atomically, once: the number created,
  // or nullopt when the period was already swept (another replica, an
  // earlier run). A period where none could be created (nobody eligible)
  // is not marked: a later sweep tries again.
  absl::StatusOr<std::optional<int>> CreateInvitations(const std::string& org,
                                                       const InvitationBatch& batch,
                                                       int64_t now_ms);
  absl::StatusOr<bool> Swept(const std::string& org, const std::string& survey_id,
                             const std::string& period);

  absl::StatusOr<std::optional<StoredInvitation>> GetInvitation(const std::string& org,
                                                                const std::string& id);
  // The person's open invitations (not answered, not closed), oldest first.
  absl::StatusOr<std::vector<feedback::v1::Invitation>> OpenInvitations(const std::string& org,
                                                                        const std::string& person,
                                                                        int64_t now_ms);

  // Records the answer to an invitation atomically: NOT_FOUND when it is not
  // the caller's, ALREADY_EXISTS when answered before with another
  // request_id or other answers, FAILED_PRECONDITION once closed; a replay
  // of the accepted call is OK (replayed). Stores the response unlinked.
  // `team_id` is the invitation's (as read by GetInvitation; the responses
  // key and `respondent_sets` are its): ABORTED, nothing stored, when the
  // stored invitation names another team.
  absl::StatusOr<SubmitOutcome> Submit(const std::string& org, const std::string& invitation_id,
                                       const std::string& team_id, const std::string& caller, const std::string& request_id,
                                       const std::string& canonical_answers,
                                       const std::string& response_nonce, int retention_days,
                                       int64_t now_ms, const std::string& respondent_tag,
                                       const std::vector<std::string>& respondent_sets);
  // The key of a respondents set ("" survey: the whole team).
  static std::string RespondentsKey(const std::string& org, const std::string& team,
                                    const std::string& survey, const std::string& unit,
                                    const std::string& period);
  absl::StatusOr<int> Respondents(const std::string& key);

  // The team's responses to periods starting in [start_ms, end_ms).
  absl::StatusOr<std::vector<StoredResponse>> Responses(const std::string& org,
                                                        const std::string& team,
                                                        int64_t start_ms, int64_t end_ms);

  common::redis::Pool& pool() { return pool_; }

 private:
  common::redis::Pool& pool_;
  common::redis::Script create_survey_;
  common::redis::Script create_invitations_;
  common::redis::Script submit_response_;
};

// Random lowercase hex (ids, nonces).
std::string RandomHex(int bytes);

}  // namespace feedback
