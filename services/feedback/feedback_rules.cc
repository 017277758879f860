#include "services/feedback/feedback_rules.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/auth/ids.h"

namespace feedback {
namespace {

using feedback::v1::Answer;
using feedback::v1::Question;
using feedback::v1::Survey;

absl::Status Invalid(const std::string& field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

bool ValidQuestionId(const std::string& id) {
  return id.size() <= 32 && common::auth::ValidId(id);
}

struct Range {
  int min;
  int max;
};

// The score range of a kind that takes a score.
bool ScoreRange(feedback::v1::QuestionKind kind, Range* range) {
  switch (kind) {
    case feedback::v1::QUESTION_KIND_CSAT:
    case feedback::v1::QUESTION_KIND_DIMENSION:
      *range = {1, 5};
      return true;
    case feedback::v1::QUESTION_KIND_RECOMMEND:
      *range = {0, 10};
      return true;
    default:
      return false;
  }
}

const char* KindName(feedback::v1::QuestionKind kind) {
  switch (kind) {
    case feedback::v1::QUESTION_KIND_CSAT: return "a CSAT";
    case feedback::v1::QUESTION_KIND_RECOMMEND: return "a RECOMMEND";
    case feedback::v1::QUESTION_KIND_DIMENSION: return "a DIMENSION";
    case feedback::v1::QUESTION_KIND_TEXT: return "a TEXT";
    default: return "an unknown";
  }
}

}  // namespace

bool ValidUtf8(const std::string& text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    int extra = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (int k = 1; k <= extra; ++k) {
      if (i + k >= n) return false;
      unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

absl::Status ValidateSurvey(Survey& survey) {
  if (absl::Status id = common::auth::CheckId("survey.team_id", survey.team_id()); !id.ok()) {
    return id;
  }
  if (survey.questions_size() < 1 || survey.questions_size() > kMaxQuestions) {
    return Invalid("survey.questions", absl::StrCat("1..", kMaxQuestions, " questions"));
  }
  std::set<std::string> ids;
  std::set<int> single_kinds, dimensions;
  for (int i = 0; i < survey.questions_size(); ++i) {
    Question& q = *survey.mutable_questions(i);
    const std::string field = absl::StrCat("survey.questions[", i, "]");
    if (q.question_id().empty()) q.set_question_id(absl::StrCat("q", i + 1));
    if (!ValidQuestionId(q.question_id())) {
      return Invalid(field + ".question_id", "1..32 characters of [A-Za-z0-9._-]");
    }
    if (!ids.insert(q.question_id()).second) {
      return Invalid(field + ".question_id", absl::StrCat("'", q.question_id(), "' is repeated"));
    }
    const int kind = static_cast<int>(q.kind());
    if (kind < feedback::v1::QUESTION_KIND_CSAT || kind > feedback::v1::QUESTION_KIND_DIMENSION) {
      return Invalid(field + ".kind", absl::StrCat("must be CSAT, RECOMMEND, TEXT or DIMENSION (1..4), got ", kind));
    }
    if (q.text().size() > static_cast<size_t>(kMaxQuestionTextLength) || !ValidUtf8(q.text())) {
      return Invalid(field + ".text", absl::StrCat("0..", kMaxQuestionTextLength, " bytes of UTF-8"));
    }
    const int dimension = static_cast<int>(q.dimension());
    if (q.kind() == feedback::v1::QUESTION_KIND_DIMENSION) {
      if (dimension < feedback::v1::DIMENSION_ON_TIME || dimension > feedback::v1::DIMENSION_RESPECT) {
        return Invalid(field + ".dimension", absl::StrCat("a DIMENSION question needs ON_TIME, FOLLOW_UP, CLARITY or RESPECT (1..4), got ", dimension));
      }
      if (!dimensions.insert(dimension).second) {
        return Invalid(field + ".dimension", "each dimension is asked at most once");
      }
    } else {
      if (dimension != 0) return Invalid(field + ".dimension", "only DIMENSION questions have one");
      if (q.kind() != feedback::v1::QUESTION_KIND_TEXT && !single_kinds.insert(kind).second) {
        return Invalid(field + ".kind", absl::StrCat("at most one ", KindName(q.kind()), " question"));
      }
    }
  }
  const int cadence = static_cast<int>(survey.cadence());
  if (cadence < feedback::v1::CADENCE_WEEKLY || cadence > feedback::v1::CADENCE_MONTHLY) {
    return Invalid("survey.cadence", absl::StrCat("must be WEEKLY, BIWEEKLY or MONTHLY (1..3), got ", cadence));
  }
  if (survey.invitations_per_period() < 1 || survey.invitations_per_period() > kMaxInvitationsPerPeriod) {
    return Invalid("survey.invitations_per_period", absl::StrCat("1..", kMaxInvitationsPerPeriod));
  }
  return absl::OkStatus();
}

absl::Status ValidateAnswers(const Survey& survey,
                             const google::protobuf::RepeatedPtrField<Answer>& answers) {
  if (answers.empty()) return Invalid("answers", "at least one answer");
  if (answers.size() > survey.questions_size()) {
    return Invalid("answers", absl::StrCat("at most one per question (", survey.questions_size(), ")"));
  }
  std::map<std::string, const Question*> questions;
  for (const Question& q : survey.questions()) questions[q.question_id()] = &q;
  std::set<std::string> seen;
  for (int i = 0; i < answers.size(); ++i) {
    const Answer& a = answers[i];
    auto it = questions.find(a.question_id());
    if (it == questions.end()) {
      return Invalid(absl::StrCat("answers[", i, "].question_id"),
                     "is not a question of the survey");
    }
    const std::string field = absl::StrCat("answers[", i, "] (", a.question_id(), ")");
    if (!seen.insert(a.question_id()).second) return Invalid(field, "answered twice");
    const Question& q = *it->second;
    Range range;
    if (ScoreRange(q.kind(), &range)) {
      if (a.value_case() != Answer::kScore) {
        return Invalid(field, absl::StrCat(KindName(q.kind()), " question takes a score, not text"));
      }
      if (a.score() < range.min || a.score() > range.max) {
        return Invalid(field, absl::StrCat(KindName(q.kind()), " score is ", range.min, "..",
                                           range.max, ", got ", a.score()));
      }
    } else {
      if (a.value_case() != Answer::kText) {
        return Invalid(field, "a TEXT question takes text, not a score");
      }
      if (a.text().empty() || a.text().size() > static_cast<size_t>(kMaxAnswerTextLength) ||
          !ValidUtf8(a.text())) {
        return Invalid(field, absl::StrCat("text is 1..", kMaxAnswerTextLength, " bytes of UTF-8"));
      }
    }
  }
  return absl::OkStatus();
}

std::string CanonicalAnswers(const google::protobuf::RepeatedPtrField<Answer>& answers) {
  std::vector<const Answer*> sorted;
  for (const Answer& a : answers) sorted.push_back(&a);
  std::sort(sorted.begin(), sorted.end(),
            [](const Answer* a, const Answer* b) { return a->question_id() < b->question_id(); });
  feedback::v1::SubmitResponseRequest holder;  // only its answers are set
  for (const Answer* a : sorted) *holder.add_answers() = *a;
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  holder.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

absl::Status ValidateSettings(const feedback::v1::FeedbackSettings& settings) {
  const int threshold = settings.anonymity_threshold();
  if (threshold != 0 && (threshold < kMinThreshold || threshold > kMaxThreshold)) {
    return Invalid("settings.anonymity_threshold",
                   absl::StrCat("0 (default ", kDefaultThreshold, ") or ", kMinThreshold, "..",
                                kMaxThreshold, ": never below ", kMinThreshold, ", got ", threshold));
  }
  const int cap = settings.max_invitations_per_person_per_week();
  if (cap < 0 || cap > kMaxWeeklyCap) {
    return Invalid("settings.max_invitations_per_person_per_week",
                   absl::StrCat("0 (default ", kDefaultWeeklyCap, ") or 1..", kMaxWeeklyCap));
  }
  const int days = settings.retention_days();
  if (days < 0 || days > kMaxRetentionDays) {
    return Invalid("settings.retention_days",
                   absl::StrCat("0 (default ", kDefaultRetentionDays, ") or 1..", kMaxRetentionDays));
  }
  return absl::OkStatus();
}

feedback::v1::FeedbackSettings EffectiveSettings(const feedback::v1::FeedbackSettings& settings) {
  feedback::v1::FeedbackSettings out = settings;
  if (out.anonymity_threshold() == 0) out.set_anonymity_threshold(kDefaultThreshold);
  // Never below the floor, whatever is stored.
  out.set_anonymity_threshold(std::max(out.anonymity_threshold(), kMinThreshold));
  if (out.max_invitations_per_person_per_week() <= 0) {
    out.set_max_invitations_per_person_per_week(kDefaultWeeklyCap);
  }
  if (out.retention_days() <= 0) out.set_retention_days(kDefaultRetentionDays);
  return out;
}

absl::Status ValidateRequestId(const std::string& request_id) {
  if (request_id.empty() || request_id.size() > static_cast<size_t>(kMaxRequestIdLength) ||
      !ValidUtf8(request_id)) {
    return Invalid("request_id", absl::StrCat("1..", kMaxRequestIdLength, " bytes of UTF-8"));
  }
  return absl::OkStatus();
}

SurveyPeriod PeriodOf(feedback::v1::Cadence cadence, absl::Time t, const absl::TimeZone& zone,
                      int week_start) {
  using common::calendar::PeriodAt;
  using common::calendar::PeriodUnit;
  if (cadence == feedback::v1::CADENCE_MONTHLY) {
    common::calendar::Period p = PeriodAt(PeriodUnit::kMonth, t, zone, week_start);
    return {p.key, p.start, p.end};
  }
  common::calendar::Period week = PeriodAt(PeriodUnit::kWeek, t, zone, week_start);
  if (cadence != feedback::v1::CADENCE_BIWEEKLY) return {week.key, week.start, week.end};
  // Weeks all start on the same weekday, so whole weeks since 1970-01-01
  // number them consecutively; pairs start on even numbers.
  const int64_t days = week.first_day - absl::CivilDay(1970, 1, 1);
  const int64_t index = days >= 0 ? days / 7 : -((-days + 6) / 7);
  absl::CivilDay first = week.first_day;
  if (index % 2 != 0) first -= 7;
  common::calendar::Period first_week =
      common::calendar::PeriodOfDay(PeriodUnit::kWeek, first, zone, week_start);
  return {first_week.key + "/2", common::calendar::StartOfDay(first, zone),
          common::calendar::StartOfDay(first + 14, zone)};
}

common::calendar::PeriodUnit WindowUnit(feedback::v1::ScoreWindow window) {
  switch (window) {
    case feedback::v1::SCORE_WINDOW_WEEK: return common::calendar::PeriodUnit::kWeek;
    case feedback::v1::SCORE_WINDOW_QUARTER: return common::calendar::PeriodUnit::kQuarter;
    default: return common::calendar::PeriodUnit::kMonth;
  }
}

feedback::v1::ServiceScore ComputeScore(const std::vector<StoredResponse>& responses,
                                        const std::map<std::string, Survey>& surveys,
                                        int threshold, int respondents) {
  feedback::v1::ServiceScore score;
  score.set_threshold(threshold);
  const int n = static_cast<int>(responses.size());
  // People, not responses: one person answering every week is still one.
  if (respondents < threshold || n < threshold) {
    score.set_below_threshold(true);
    return score;
  }
  score.set_responses(n);
  int64_t csat_sum = 0;
  int csat_count[5] = {0, 0, 0, 0, 0};
  int recommend = 0, promoters = 0, passives = 0, detractors = 0;
  std::map<int, std::pair<int64_t, int>> dimension_sums;  // dimension -> (sum, count)
  std::vector<std::string> comments;
  for (const StoredResponse& response : responses) {
    auto survey = surveys.find(response.survey_id);
    if (survey == surveys.end()) continue;
    std::map<std::string, const Question*> questions;
    for (const Question& q : survey->second.questions()) questions[q.question_id()] = &q;
    for (const Answer& a : response.answers) {
      auto it = questions.find(a.question_id());
      if (it == questions.end()) continue;
      const Question& q = *it->second;
      switch (q.kind()) {
        case feedback::v1::QUESTION_KIND_CSAT:
          if (a.score() >= 1 && a.score() <= 5) {
            csat_sum += a.score();
            ++csat_count[a.score() - 1];
          }
          break;
        case feedback::v1::QUESTION_KIND_RECOMMEND:
          if (a.score() < 0 || a.score() > 10) break;
          ++recommend;
          if (a.score() >= 9) {
            ++promoters;
          } else if (a.score() >= 7) {
            ++passives;
          } else {
            ++detractors;
          }
          break;
        case feedback::v1::QUESTION_KIND_DIMENSION:
          if (a.score() >= 1 && a.score() <= 5) {
            auto& [sum, count] = dimension_sums[static_cast<int>(q.dimension())];
            sum += a.score();
            ++count;
          }
          break;
        case feedback::v1::QUESTION_KIND_TEXT:
          if (!a.text().empty()) comments.push_back(a.text());
          break;
        default:
          break;
      }
    }
  }
  int csat_total = 0;
  for (int c : csat_count) csat_total += c;
  score.set_csat_responses(csat_total);
  if (csat_total > 0) score.set_csat_mean(static_cast<double>(csat_sum) / csat_total);
  for (int c : csat_count) score.add_csat_distribution(c);
  score.set_recommend_responses(recommend);
  score.set_promoters(promoters);
  score.set_passives(passives);
  score.set_detractors(detractors);
  if (recommend > 0) {
    score.set_net_score(100.0 * static_cast<double>(promoters - detractors) / recommend);
  }
  for (const auto& [dimension, sums] : dimension_sums) {
    feedback::v1::DimensionScore* d = score.add_dimensions();
    d->set_dimension(static_cast<feedback::v1::Dimension>(dimension));
    d->set_responses(sums.second);
    d->set_mean(static_cast<double>(sums.first) / sums.second);
  }
  // Sorted: the order says nothing of when, or by whom, each was written.
  std::sort(comments.begin(), comments.end());
  for (std::string& c : comments) score.add_comments(std::move(c));
  return score;
}

void SetTrend(feedback::v1::ServiceScore& score, const feedback::v1::ServiceScore& previous) {
  score.clear_trend();
  if (score.below_threshold() || previous.below_threshold()) return;
  feedback::v1::ScoreTrend* trend = score.mutable_trend();
  trend->set_previous_period(previous.period());
  trend->set_previous_responses(previous.responses());
  trend->set_previous_csat_mean(previous.csat_mean());
  trend->set_previous_net_score(previous.net_score());
  trend->set_csat_mean_delta(score.csat_mean() - previous.csat_mean());
  trend->set_net_score_delta(score.net_score() - previous.net_score());
  trend->set_responses_delta(score.responses() - previous.responses());
}

}  // namespace feedback
