// The feedback service's domain rules, plain C++ (no gRPC, no Redis):
// validation of surveys, answers and settings, survey periods (cadence in
// the org's calendar), and the service score's arithmetic.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/calendar/calendar.h"
#include "feedback/v1/feedback.pb.h"

namespace feedback {

// Bounds (documented in services/feedback/README.md).
inline constexpr int kMaxQuestions = 20;
inline constexpr int kMaxQuestionTextLength = 500;
inline constexpr int kMaxAnswerTextLength = 1000;
inline constexpr int kMaxInvitationsPerPeriod = 100;
inline constexpr int kMaxSurveysPerTeam = 20;
inline constexpr int kMaxSurveysPerOrg = 1000;
inline constexpr int kMaxServedPerTeam = 1000;     // most recent people kept per team
inline constexpr int kServedLookbackDays = 90;     // served longer ago: not sampled, expires
inline constexpr int kMaxRequestIdLength = 128;
inline constexpr int kMaxWorkItemUrlLength = 500;
inline constexpr int kDefaultThreshold = 5;
inline constexpr int kMinThreshold = 3;
inline constexpr int kMaxThreshold = 100;
inline constexpr int kDefaultWeeklyCap = 3;
inline constexpr int kMaxWeeklyCap = 50;
inline constexpr int kDefaultRetentionDays = 400;
inline constexpr int kMaxRetentionDays = 3650;

// OK, or INVALID_ARGUMENT naming the field. Fills in question ids ("q1",
// "q2", ... by position) left empty.
absl::Status ValidateSurvey(feedback::v1::Survey& survey);

// Checks `answers` against the survey's questions: INVALID_ARGUMENT naming
// the answer and its question ("answers[1] (q2): ...").
absl::Status ValidateAnswers(const feedback::v1::Survey& survey,
                             const google::protobuf::RepeatedPtrField<feedback::v1::Answer>& answers);

// The answers in a canonical order (by question id), serialized: the same
// answers give the same bytes however a client ordered them.
std::string CanonicalAnswers(
    const google::protobuf::RepeatedPtrField<feedback::v1::Answer>& answers);

absl::Status ValidateSettings(const feedback::v1::FeedbackSettings& settings);
// The settings with every 0 replaced by its default.
feedback::v1::FeedbackSettings EffectiveSettings(const feedback::v1::FeedbackSettings& settings);

absl::Status ValidateRequestId(const std::string& request_id);
bool ValidUtf8(const std::string& text);

// One survey period in the org's calendar.
struct SurveyPeriod {
  std::string key;  // "2026-W48", "2026-W47/2", "2026-11"
  absl::Time start;
  absl::Time end;  // exclusive: invitations close then
};
// The period of `cadence` holding `t`. week_start: 1 = Monday ... 7.
SurveyPeriod PeriodOf(feedback::v1::Cadence cadence, absl::Time t, const absl::TimeZone& zone,
                      int week_start);

// The calendar unit of a score window (unspecified: the month).
common::calendar::PeriodUnit WindowUnit(feedback::v1::ScoreWindow window);

// A stored response: which survey, and its answers (never who gave them).
struct StoredResponse {
  std::string survey_id;
  std::vector<feedback::v1::Answer> answers;
};

// The figures of one period. `respondents` (distinct people who answered) is what the threshold counts:
// below it, only team_id, window, period, threshold and below_threshold are
// set. `surveys` gives each question's kind (answers to unknown surveys or
// questions are ignored).
feedback::v1::ServiceScore ComputeScore(const std::vector<StoredResponse>& responses,
                                        const std::map<std::string, feedback::v1::Survey>& surveys,
                                        int threshold, int respondents);
// Sets score.trend from the previous period's score (left unset when either
// is below the threshold).
void SetTrend(feedback::v1::ServiceScore& score, const feedback::v1::ServiceScore& previous);

}  // namespace feedback
