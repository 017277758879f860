// The feedback rules in isolation: survey and answer validation, settings,
// survey periods, and the score's arithmetic against a direct computation
// over random answers.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

#include "services/feedback/feedback_rules.h"

namespace {

using feedback::v1::Answer;
using feedback::v1::Question;
using feedback::v1::Survey;

Survey FullSurvey() {
  Survey survey;
  survey.set_team_id("eng");
  survey.set_cadence(feedback::v1::CADENCE_WEEKLY);
  survey.set_invitations_per_period(5);
  auto add = [&](feedback::v1::QuestionKind kind, feedback::v1::Dimension dimension =
                                                       feedback::v1::DIMENSION_UNSPECIFIED) {
    Question* q = survey.add_questions();
    q->set_kind(kind);
    q->set_dimension(dimension);
  };
  add(feedback::v1::QUESTION_KIND_CSAT);
  add(feedback::v1::QUESTION_KIND_RECOMMEND);
  add(feedback::v1::QUESTION_KIND_TEXT);
  add(feedback::v1::QUESTION_KIND_DIMENSION, feedback::v1::DIMENSION_ON_TIME);
  add(feedback::v1::QUESTION_KIND_DIMENSION, feedback::v1::DIMENSION_FOLLOW_UP);
  add(feedback::v1::QUESTION_KIND_DIMENSION, feedback::v1::DIMENSION_CLARITY);
  add(feedback::v1::QUESTION_KIND_DIMENSION, feedback::v1::DIMENSION_RESPECT);
  return survey;
}

TEST(FeedbackRulesTest, ValidateSurvey_AssignsQuestionIdsAndAcceptsEveryKind) {
  Survey survey = FullSurvey();
  ASSERT_TRUE(feedback::ValidateSurvey(survey).ok());
  for (int i = 0; i < survey.questions_size(); ++i) {
    EXPECT_EQ(survey.questions(i).question_id(), "q" + std::to_string(i + 1));
  }
}

TEST(FeedbackRulesTest, ValidateSurvey_RefusesKindsDimensionsCadencesAndCountsOutOfRange) {
  auto refused = [](Survey survey, const std::string& field) {
    absl::Status status = feedback::ValidateSurvey(survey);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(status.message().find(field), std::string::npos) << status.message();
  };
  Survey s = FullSurvey();
  s.mutable_questions(0)->set_kind(static_cast<feedback::v1::QuestionKind>(9));
  refused(s, "survey.questions[0].kind");
  s = FullSurvey();
  s.mutable_questions(0)->set_kind(feedback::v1::QUESTION_KIND_UNSPECIFIED);
  refused(s, "survey.questions[0].kind");
  s = FullSurvey();
  s.mutable_questions(3)->set_dimension(feedback::v1::DIMENSION_UNSPECIFIED);
  refused(s, "survey.questions[3].dimension");
  s = FullSurvey();
  s.mutable_questions(3)->set_dimension(static_cast<feedback::v1::Dimension>(7));
  refused(s, "survey.questions[3].dimension");
  s = FullSurvey();
  s.mutable_questions(0)->set_dimension(feedback::v1::DIMENSION_CLARITY);
  refused(s, "survey.questions[0].dimension");
  s = FullSurvey();
  s.mutable_questions(4)->set_dimension(feedback::v1::DIMENSION_ON_TIME);
  refused(s, "survey.questions[4].dimension");  // asked twice
  s = FullSurvey();
  s.mutable_questions(1)->set_kind(feedback::v1::QUESTION_KIND_CSAT);
  refused(s, "survey.questions[1].kind");  // two CSAT questions
  s = FullSurvey();
  s.mutable_questions(1)->set_question_id("q1");
  s.mutable_questions(0)->set_question_id("q1");
  refused(s, "survey.questions[1].question_id");
  s = FullSurvey();
  s.set_cadence(static_cast<feedback::v1::Cadence>(4));
  refused(s, "survey.cadence");
  s = FullSurvey();
  s.set_cadence(feedback::v1::CADENCE_UNSPECIFIED);
  refused(s, "survey.cadence");
  s = FullSurvey();
  s.set_invitations_per_period(0);
  refused(s, "survey.invitations_per_period");
  s.set_invitations_per_period(101);
  refused(s, "survey.invitations_per_period");
  s = FullSurvey();
  s.clear_questions();
  refused(s, "survey.questions");
  s = FullSurvey();
  s.set_team_id("{evil}");
  refused(s, "survey.team_id");
}

TEST(FeedbackRulesTest, ValidateAnswers_NamesTheQuestionOfEachBadAnswer) {
  Survey survey = FullSurvey();
  ASSERT_TRUE(feedback::ValidateSurvey(survey).ok());
  auto answers = [](std::vector<Answer> list) {
    google::protobuf::RepeatedPtrField<Answer> out;
    for (Answer& a : list) *out.Add() = a;
    return out;
  };
  auto score = [](const std::string& q, int value) {
    Answer a;
    a.set_question_id(q);
    a.set_score(value);
    return a;
  };
  auto text = [](const std::string& q, const std::string& value) {
    Answer a;
    a.set_question_id(q);
    a.set_text(value);
    return a;
  };
  EXPECT_TRUE(feedback::ValidateAnswers(
                  survey, answers({score("q1", 5), score("q2", 0), text("q3", "great"),
                                   score("q4", 1), score("q7", 5)}))
                  .ok());
  struct Case {
    std::vector<Answer> answers;
    std::string names;
  };
  std::vector<Case> cases = {
      {{score("q1", 6)}, "answers[0] (q1)"},
      {{score("q1", 0)}, "answers[0] (q1)"},
      {{score("q1", 3), score("q2", 11)}, "answers[1] (q2)"},
      {{score("q2", -1)}, "answers[0] (q2)"},
      {{score("q4", 6)}, "answers[0] (q4)"},
      {{text("q1", "five")}, "answers[0] (q1)"},      // text for a score
      {{score("q3", 4)}, "answers[0] (q3)"},          // a score for text
      {{text("q3", "")}, "answers[0] (q3)"},
      {{text("q3", std::string(1001, 'x'))}, "answers[0] (q3)"},
      {{text("q3", "\xff\xfe")}, "answers[0] (q3)"},  // not UTF-8
      {{score("q9", 3)}, "answers[0].question_id"},
      {{score("q1", 3), score("q1", 4)}, "answers[1] (q1)"},
      {{}, "answers"},
      {{Answer()}, "answers[0].question_id"},
  };
  for (const Case& c : cases) {
    absl::Status status = feedback::ValidateAnswers(survey, answers(c.answers));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.names;
    EXPECT_NE(status.message().find(c.names), std::string::npos) << status.message();
  }
  // An answer with no value at all is the wrong kind for every question.
  Answer empty;
  empty.set_question_id("q1");
  EXPECT_EQ(feedback::ValidateAnswers(survey, answers({empty})).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FeedbackRulesTest, CanonicalAnswers_IgnoreTheClientsOrder) {
  google::protobuf::RepeatedPtrField<Answer> a, b;
  Answer x, y;
  x.set_question_id("q1");
  x.set_score(4);
  y.set_question_id("q2");
  y.set_score(9);
  *a.Add() = x;
  *a.Add() = y;
  *b.Add() = y;
  *b.Add() = x;
  EXPECT_EQ(feedback::CanonicalAnswers(a), feedback::CanonicalAnswers(b));
  y.set_score(8);
  *b.Mutable(0) = y;
  EXPECT_NE(feedback::CanonicalAnswers(a), feedback::CanonicalAnswers(b));
}

TEST(FeedbackRulesTest, Settings_ThresholdIsNeverBelowThreeAndZerosAreDefaults) {
  feedback::v1::FeedbackSettings settings;
  EXPECT_TRUE(feedback::ValidateSettings(settings).ok());
  feedback::v1::FeedbackSettings effective = feedback::EffectiveSettings(settings);
  EXPECT_EQ(effective.anonymity_threshold(), 5);
  EXPECT_EQ(effective.max_invitations_per_person_per_week(), 3);
  EXPECT_EQ(effective.retention_days(), 400);
  for (int refused : {1, 2, -1, 101}) {
    settings.set_anonymity_threshold(refused);
    absl::Status status = feedback::ValidateSettings(settings);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << refused;
    EXPECT_NE(status.message().find("settings.anonymity_threshold"), std::string::npos);
  }
  settings.set_anonymity_threshold(3);
  EXPECT_TRUE(feedback::ValidateSettings(settings).ok());
  // Whatever is stored, the floor holds.
  settings.set_anonymity_threshold(2);
  EXPECT_EQ(feedback::EffectiveSettings(settings).anonymity_threshold(), 3);
  settings = {};
  settings.set_max_invitations_per_person_per_week(51);
  EXPECT_EQ(feedback::ValidateSettings(settings).code(), absl::StatusCode::kInvalidArgument);
  settings = {};
  settings.set_retention_days(3651);
  EXPECT_EQ(feedback::ValidateSettings(settings).code(), absl::StatusCode::kInvalidArgument);
}

TEST(FeedbackRulesTest, Periods_FollowTheCadenceInTheOrgsZone) {
  absl::TimeZone paris;
  ASSERT_TRUE(absl::LoadTimeZone("Europe/Paris", &paris));
  // Sunday 2026-11-29 23:30 in Paris: still week 48 there, Monday in UTC+1.
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 11, 29, 23, 30, 0), paris);
  feedback::SurveyPeriod weekly = feedback::PeriodOf(feedback::v1::CADENCE_WEEKLY, t, paris, 1);
  EXPECT_EQ(weekly.key, "2026-W48");
  EXPECT_EQ(weekly.end, absl::FromCivil(absl::CivilSecond(2026, 11, 30, 0, 0, 0), paris));
  feedback::SurveyPeriod monthly = feedback::PeriodOf(feedback::v1::CADENCE_MONTHLY, t, paris, 1);
  EXPECT_EQ(monthly.key, "2026-11");
  EXPECT_EQ(monthly.start, absl::FromCivil(absl::CivilSecond(2026, 11, 1, 0, 0, 0), paris));
  // Bi-weekly: 14 days, consecutive pairs, each week in exactly one.
  std::set<std::string> keys;
  absl::Time previous_end = absl::InfinitePast();
  for (int day = 0; day < 120; ++day) {
    absl::Time at = absl::FromCivil(absl::CivilSecond(2026, 1, 1, 12, 0, 0), paris) +
                    absl::Hours(24 * day);
    feedback::SurveyPeriod p = feedback::PeriodOf(feedback::v1::CADENCE_BIWEEKLY, at, paris, 1);
    EXPECT_LE(p.start, at);
    EXPECT_LT(at, p.end);
    EXPECT_EQ(absl::ToCivilDay(p.end, paris) - absl::ToCivilDay(p.start, paris), 14);
    if (keys.insert(p.key).second) {
      if (previous_end != absl::InfinitePast()) {
        EXPECT_EQ(p.start, previous_end) << p.key;
      }
      previous_end = p.end;
    }
    EXPECT_EQ(p.key.substr(p.key.size() - 2), "/2");
  }
  EXPECT_GE(keys.size(), 8u);
}

// A direct computation of the figures, written independently of ComputeScore.
struct Direct {
  int responses = 0;
  std::vector<int> csat;
  std::vector<int> recommend;
  std::map<int, std::vector<int>> dimensions;
  std::multiset<std::string> comments;
};

TEST(FeedbackRulesTest, ComputeScore_MatchesADirectComputationOverRandomAnswers) {
  Survey survey = FullSurvey();
  ASSERT_TRUE(feedback::ValidateSurvey(survey).ok());
  std::map<std::string, Survey> surveys = {{"s1", survey}};
  std::mt19937 rng(16);
  for (int round = 0; round < 200; ++round) {
    const int n = std::uniform_int_distribution<int>(0, 30)(rng);
    std::vector<feedback::StoredResponse> responses;
    Direct direct;
    for (int i = 0; i < n; ++i) {
      feedback::StoredResponse r;
      r.survey_id = "s1";
      ++direct.responses;
      auto maybe = [&] { return std::uniform_int_distribution<int>(0, 3)(rng) != 0; };
      if (maybe()) {
        Answer a;
        a.set_question_id("q1");
        a.set_score(std::uniform_int_distribution<int>(1, 5)(rng));
        direct.csat.push_back(a.score());
        r.answers.push_back(a);
      }
      if (maybe()) {
        Answer a;
        a.set_question_id("q2");
        a.set_score(std::uniform_int_distribution<int>(0, 10)(rng));
        direct.recommend.push_back(a.score());
        r.answers.push_back(a);
      }
      if (maybe()) {
        Answer a;
        a.set_question_id("q3");
        a.set_text("comment " + std::to_string(std::uniform_int_distribution<int>(0, 9)(rng)));
        direct.comments.insert(a.text());
        r.answers.push_back(a);
      }
      for (int d = 1; d <= 4; ++d) {
        if (!maybe()) continue;
        Answer a;
        a.set_question_id("q" + std::to_string(3 + d));
        a.set_score(std::uniform_int_distribution<int>(1, 5)(rng));
        direct.dimensions[d].push_back(a.score());
        r.answers.push_back(a);
      }
      responses.push_back(std::move(r));
    }
    const int threshold = std::uniform_int_distribution<int>(3, 8)(rng);
    feedback::v1::ServiceScore score = feedback::ComputeScore(responses, surveys, threshold, n);
    // The same responses from fewer people than the threshold: nothing.
    feedback::v1::ServiceScore few =
        feedback::ComputeScore(responses, surveys, threshold, threshold - 1);
    EXPECT_TRUE(few.below_threshold());
    EXPECT_EQ(few.responses(), 0);
    EXPECT_EQ(few.comments_size(), 0);
    EXPECT_EQ(score.threshold(), threshold);
    if (n < threshold) {
      EXPECT_TRUE(score.below_threshold());
      EXPECT_EQ(score.responses(), 0);
      EXPECT_EQ(score.csat_distribution_size(), 0);
      EXPECT_EQ(score.comments_size(), 0);
      EXPECT_EQ(score.dimensions_size(), 0);
      EXPECT_EQ(score.csat_mean(), 0);
      EXPECT_EQ(score.net_score(), 0);
      continue;
    }
    EXPECT_FALSE(score.below_threshold());
    EXPECT_EQ(score.responses(), direct.responses);
    double sum = 0;
    int dist[5] = {0, 0, 0, 0, 0};
    for (int v : direct.csat) {
      sum += v;
      ++dist[v - 1];
    }
    EXPECT_EQ(score.csat_responses(), static_cast<int>(direct.csat.size()));
    EXPECT_NEAR(score.csat_mean(), direct.csat.empty() ? 0 : sum / direct.csat.size(), 1e-9);
    ASSERT_EQ(score.csat_distribution_size(), 5);
    for (int k = 0; k < 5; ++k) EXPECT_EQ(score.csat_distribution(k), dist[k]);
    int promoters = 0, detractors = 0, passives = 0;
    for (int v : direct.recommend) {
      if (v >= 9) ++promoters;
      else if (v <= 6) ++detractors;
      else ++passives;
    }
    EXPECT_EQ(score.promoters(), promoters);
    EXPECT_EQ(score.passives(), passives);
    EXPECT_EQ(score.detractors(), detractors);
    const double net = direct.recommend.empty()
                           ? 0
                           : 100.0 * (promoters - detractors) / direct.recommend.size();
    EXPECT_NEAR(score.net_score(), net, 1e-9);
    EXPECT_GE(score.net_score(), -100);
    EXPECT_LE(score.net_score(), 100);
    std::map<int, const feedback::v1::DimensionScore*> got;
    for (const auto& d : score.dimensions()) got[d.dimension()] = &d;
    EXPECT_EQ(got.size(), direct.dimensions.size());
    for (const auto& [d, values] : direct.dimensions) {
      ASSERT_TRUE(got.count(d)) << d;
      double s = 0;
      for (int v : values) s += v;
      EXPECT_EQ(got[d]->responses(), static_cast<int>(values.size()));
      EXPECT_NEAR(got[d]->mean(), s / values.size(), 1e-9);
    }
    std::multiset<std::string> comments(score.comments().begin(), score.comments().end());
    EXPECT_EQ(comments, direct.comments);
    EXPECT_TRUE(std::is_sorted(score.comments().begin(), score.comments().end()));
  }
}

TEST(FeedbackRulesTest, Trend_IsTheDifferenceWithThePreviousPeriodOnlyWhenBothAreShown) {
  feedback::v1::ServiceScore now, before;
  now.set_responses(7);
  now.set_csat_mean(4.5);
  now.set_net_score(40);
  before.set_period("2026-10");
  before.set_responses(5);
  before.set_csat_mean(3.0);
  before.set_net_score(-20);
  feedback::SetTrend(now, before);
  ASSERT_TRUE(now.has_trend());
  EXPECT_EQ(now.trend().previous_period(), "2026-10");
  EXPECT_DOUBLE_EQ(now.trend().csat_mean_delta(), 1.5);
  EXPECT_DOUBLE_EQ(now.trend().net_score_delta(), 60);
  EXPECT_EQ(now.trend().responses_delta(), 2);
  before.set_below_threshold(true);
  feedback::SetTrend(now, before);
  EXPECT_FALSE(now.has_trend());
}

}  // namespace
