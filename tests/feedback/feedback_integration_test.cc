// The feedback service (hosted by the kudos binary) against a real
// redis-server and the real kudos + ledger binaries, over real gRPC. The
// sweep is driven from the test (Sampler::RunOnce with the clock injected)
// on the same Redis; the binary's own sweep is off (--survey_interval_s=0),
// its consumer of the kudos events is on.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/auth/auth.h"
#include "common/redis/redis_client.h"
#include "feedback/v1/feedback.grpc.pb.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "services/feedback/feedback_rules.h"
#include "services/feedback/feedback_sampler.h"
#include "services/feedback/feedback_service.h"
#include "services/feedback/feedback_store.h"
#include "services/kudos/kudos_store.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using feedback::v1::Answer;
using feedback::v1::FeedbackService;
using feedback::v1::Invitation;
using feedback::v1::Survey;
using harness::Context;
using harness::MintToken;

constexpr char kOrg[] = "acme";
const std::vector<std::string> kCustomers = {"cust1", "cust2", "cust3", "cust4", "cust5",
                                             "cust6", "cust7", "cust8", "cust9"};

std::unique_ptr<common::redis::Pool> MakePool(int port) {
  common::redis::PoolOptions options;
  options.endpoint.port = port;
  options.size = 4;
  return std::make_unique<common::redis::Pool>(options);
}

// An in-process view of the same Redis: the store, the directory and a sampler.
struct Replica {
  explicit Replica(int port)
      : pool(MakePool(port)), store(*pool), kudos(*pool), directory(kudos),
        sampler(store, directory) {}
  std::unique_ptr<common::redis::Pool> pool;
  feedback::FeedbackStore store;
  kudos::KudosStore kudos;
  feedback::Directory directory;
  feedback::Sampler sampler;
};

Answer Score(const std::string& question, int value) {
  Answer a;
  a.set_question_id(question);
  a.set_score(value);
  return a;
}

Answer Text(const std::string& question, const std::string& value) {
  Answer a;
  a.set_question_id(question);
  a.set_text(value);
  return a;
}

class FeedbackIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(),
        std::vector<std::string>{"--ledger=" + ledger_->address(), "--survey_interval_s=0"});
    auto channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    directory_stub_ = kudos::v1::DirectoryService::NewStub(channel);
    kudos_stub_ = kudos::v1::KudosService::NewStub(channel);
    feedback_ = FeedbackService::NewStub(channel);
    replica_ = std::make_unique<Replica>(redis_->port());
    admin_ = MintToken(kOrg, "root", {"admin"});
    manager_ = MintToken(kOrg, "mgr", {"member", "manager"});
    CreateTeam("eng");
    CreateTeam("ops");
    CreateTeam("sales");
    CreateTeam("lead");
    CreatePerson("mgr", "lead", "");
    CreatePerson("omgr", "lead", "");
    CreatePerson("alice", "eng", "mgr");
    CreatePerson("bob", "eng", "mgr");
    CreatePerson("olga", "ops", "omgr");
    for (const std::string& c : kCustomers) CreatePerson(c, "sales", "");
    CreatePerson("cust-gone", "sales", "", false);
  }

  void CreateTeam(const std::string& id) {
    kudos::v1::CreateTeamRequest request;
    request.mutable_team()->set_team_id(id);
    request.mutable_team()->set_display_name("Team " + id);
    kudos::v1::CreateTeamResponse response;
    ASSERT_TRUE(directory_stub_->CreateTeam(Context(admin_).get(), request, &response).ok());
  }

  void CreatePerson(const std::string& id, const std::string& team, const std::string& manager,
                    bool active = true) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_team_id(team);
    request.mutable_person()->set_manager_id(manager);
    request.mutable_person()->set_active(active);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory_stub_->CreatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  grpc::Status Serve(const std::string& customer, const std::string& team) {
    feedback::v1::RecordServiceRequestRequest request;
    request.set_provider_team_id(team);
    request.set_work_item_url("https://tracker.example/T-1");
    feedback::v1::RecordServiceRequestResponse response;
    return feedback_->RecordServiceRequest(Context(MintToken(kOrg, customer)).get(), request,
                                           &response);
  }

  void ServeAll(const std::string& team) {
    for (const std::string& c : kCustomers) ASSERT_TRUE(Serve(c, team).ok()) << c;
  }

  static Survey FullSurvey(const std::string& team, int per_period) {
    Survey survey;
    survey.set_team_id(team);
    survey.set_cadence(feedback::v1::CADENCE_WEEKLY);
    survey.set_invitations_per_period(per_period);
    auto add = [&](feedback::v1::QuestionKind kind,
                   feedback::v1::Dimension dimension = feedback::v1::DIMENSION_UNSPECIFIED) {
      feedback::v1::Question* q = survey.add_questions();
      q->set_kind(kind);
      q->set_dimension(dimension);
    };
    add(feedback::v1::QUESTION_KIND_CSAT);                                     // q1
    add(feedback::v1::QUESTION_KIND_RECOMMEND);                                // q2
    add(feedback::v1::QUESTION_KIND_TEXT);                                     // q3
    add(feedback::v1::QUESTION_KIND_DIMENSION, feedback::v1::DIMENSION_ON_TIME);    // q4
    add(feedback::v1::QUESTION_KIND_DIMENSION, feedback::v1::DIMENSION_FOLLOW_UP);  // q5
    add(feedback::v1::QUESTION_KIND_DIMENSION, feedback::v1::DIMENSION_CLARITY);    // q6
    add(feedback::v1::QUESTION_KIND_DIMENSION, feedback::v1::DIMENSION_RESPECT);    // q7
    return survey;
  }

  grpc::Status CreateSurvey(const std::string& token, const Survey& survey, Survey* created) {
    feedback::v1::CreateSurveyRequest request;
    *request.mutable_survey() = survey;
    feedback::v1::CreateSurveyResponse response;
    grpc::Status status = feedback_->CreateSurvey(Context(token).get(), request, &response);
    if (created != nullptr) *created = response.survey();
    return status;
  }

  Survey MustCreate(const Survey& survey) {
    Survey created;
    grpc::Status status = CreateSurvey(manager_, survey, &created);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return created;
  }

  std::vector<Invitation> Invitations(const std::string& person) {
    feedback::v1::ListInvitationsResponse response;
    grpc::Status status = feedback_->ListInvitations(Context(MintToken(kOrg, person)).get(), {},
                                                     &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.invitations().begin(), response.invitations().end()};
  }

  // A kudos from `giver` to `recipient` through the kudos service.
  grpc::Status SendKudos(const std::string& giver, const std::string& recipient,
                         const std::string& request_id,
                         kudos::v1::KudosVisibility visibility = kudos::v1::KUDOS_VISIBILITY_PUBLIC) {
    kudos::v1::SendKudosRequest request;
    request.set_request_id(request_id);
    request.add_recipient_ids(recipient);
    request.set_message("Thanks for the quick follow-up!");
    request.add_values("consistent-follow-up");
    request.set_points_per_recipient(1);
    request.set_visibility(visibility);
    kudos::v1::SendKudosResponse response;
    return kudos_stub_->SendKudos(Context(MintToken(kOrg, giver)).get(), request, &response);
  }

  grpc::Status Submit(const std::string& person, const std::string& request_id,
                      const std::string& invitation_id, const std::vector<Answer>& answers,
                      feedback::v1::SubmitResponseResponse* out = nullptr) {
    feedback::v1::SubmitResponseRequest request;
    request.set_request_id(request_id);
    request.set_invitation_id(invitation_id);
    for (const Answer& a : answers) *request.add_answers() = a;
    feedback::v1::SubmitResponseResponse response;
    grpc::Status status =
        feedback_->SubmitResponse(Context(MintToken(kOrg, person)).get(), request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  grpc::Status GetScore(const std::string& token, const std::string& team,
                        feedback::v1::ServiceScore* score, const std::string& period = "",
                        feedback::v1::ScoreWindow window = feedback::v1::SCORE_WINDOW_WEEK) {
    feedback::v1::GetServiceScoreRequest request;
    request.set_team_id(team);
    request.set_window(window);
    request.set_period(period);
    feedback::v1::GetServiceScoreResponse response;
    grpc::Status status = feedback_->GetServiceScore(Context(token).get(), request, &response);
    if (score != nullptr) *score = response.score();
    return status;
  }

  grpc::Status SetThreshold(int threshold) {
    feedback::v1::UpdateFeedbackSettingsRequest request;
    request.mutable_settings()->set_anonymity_threshold(threshold);
    feedback::v1::UpdateFeedbackSettingsResponse response;
    return feedback_->UpdateFeedbackSettings(Context(admin_).get(), request, &response);
  }

  // Every stored invitation: (survey, invitee) per invitation id.
  std::map<std::string, std::pair<std::string, std::string>> StoredInvitations() {
    std::map<std::string, std::pair<std::string, std::string>> out;
    std::string cursor = "0";
    const std::string prefix = feedback::FeedbackStore::Prefix(kOrg) + "inv:";
    do {
      auto reply = replica_->pool->Run({"SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"});
      EXPECT_TRUE(reply.ok());
      if (!reply.ok()) break;
      cursor = reply->elements[0].str;
      for (const auto& key : reply->elements[1].elements) {
        auto fields = replica_->pool->Run({"HMGET", key.str, "survey", "invitee"});
        EXPECT_TRUE(fields.ok());
        out[key.str.substr(prefix.size())] = {fields->elements[0].str, fields->elements[1].str};
      }
    } while (cursor != "0");
    return out;
  }

  int64_t StoredResponses(const std::string& team) {
    auto reply =
        replica_->pool->Run({"ZCARD", feedback::FeedbackStore::Prefix(kOrg) + "responses:" + team});
    EXPECT_TRUE(reply.ok());
    return reply.ok() ? reply->integer : -1;
  }

  // SubmitResponse through the service layer in this process, at `at` (the
  // binary's clock cannot be moved); the same respondent secret as the binary.
  absl::Status SubmitAt(const std::string& person, const std::string& invitation_id,
                        const std::vector<Answer>& answers, absl::Time at) {
    common::auth::Guard guard{common::auth::Authenticator(common::auth::JwtConfig())};
    feedback::FeedbackServiceImpl service(
        guard, replica_->store, replica_->directory,
        std::string("feedback-respondents:") + common::auth::kDevServiceSecret, [at] { return at; });
    feedback::v1::SubmitResponseRequest request;
    request.set_request_id("at-" + std::to_string(absl::ToUnixSeconds(at)));
    request.set_invitation_id(invitation_id);
    for (const Answer& a : answers) *request.add_answers() = a;
    feedback::v1::SubmitResponseResponse response;
    common::auth::Principal who;
    who.org = kOrg;
    who.subject = person;
    who.roles = static_cast<uint32_t>(common::auth::Role::kMember);
    return service.DoSubmitResponse(who, request, response);
  }

  feedback::v1::ServiceScore ScoreAt(const std::string& team, feedback::v1::ScoreWindow window,
                                     const std::string& period, const std::string& survey_id = "") {
    feedback::v1::GetServiceScoreRequest request;
    request.set_team_id(team);
    request.set_window(window);
    request.set_period(period);
    request.set_survey_id(survey_id);
    feedback::v1::GetServiceScoreResponse response;
    grpc::Status status = feedback_->GetServiceScore(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.score();
  }

  std::string WeekKey(absl::Time t) {
    return feedback::PeriodOf(feedback::v1::CADENCE_WEEKLY, t, absl::UTCTimeZone(), 1).key;
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_stub_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_stub_;
  std::unique_ptr<FeedbackService::Stub> feedback_;
  std::unique_ptr<Replica> replica_;
  std::string admin_;
  std::string manager_;
};

// ------------------------------------------------------------------ sampling

TEST_F(FeedbackIntegrationTest, Sampling_OnlyServedPeopleNeverMembersAtMostPerPeriod) {
  // cust1..cust6 were served by eng; cust7..9 never; bob (a member of eng)
  // is in the served set (e.g. he moved into the team since); cust-gone is
  // inactive.
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Serve(kCustomers[i], "eng").ok());
  ASSERT_TRUE(replica_->store.RecordServed(kOrg, {{"eng", {"bob", "cust-gone"}}},
                                           absl::ToUnixMillis(absl::Now())).ok());
  // A member cannot be recorded as the team's customer.
  feedback::v1::RecordServiceRequestRequest own;
  own.set_provider_team_id("eng");
  feedback::v1::RecordServiceRequestResponse own_response;
  EXPECT_EQ(feedback_->RecordServiceRequest(Context(MintToken(kOrg, "alice")).get(), own,
                                            &own_response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  Survey survey = MustCreate(FullSurvey("eng", 4));
  const absl::Time now = absl::Now();
  auto stats = replica_->sampler.RunOnce(kOrg, now);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->invitations, 4);
  // The same period again: nothing more.
  auto again = replica_->sampler.RunOnce(kOrg, now + absl::Minutes(5));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->invitations, 0);
  EXPECT_EQ(again->already_swept, 1);
  std::set<std::string> invited;
  for (const auto& [id, who] : StoredInvitations()) {
    EXPECT_EQ(who.first, survey.survey_id());
    EXPECT_TRUE(invited.insert(who.second).second) << "one invitation per person per period";
  }
  EXPECT_EQ(invited.size(), 4u);
  const std::set<std::string> served(kCustomers.begin(), kCustomers.begin() + 6);
  for (const std::string& person : invited) EXPECT_TRUE(served.count(person)) << person;
  // Each invitee sees exactly their own, with the survey's questions.
  for (const std::string& person : kCustomers) {
    std::vector<Invitation> mine = Invitations(person);
    ASSERT_EQ(mine.size(), invited.count(person)) << person;
    for (const Invitation& inv : mine) {
      EXPECT_EQ(inv.person_id(), person);
      EXPECT_EQ(inv.team_id(), "eng");
      EXPECT_EQ(inv.team_display_name(), "Team eng");
      EXPECT_EQ(inv.period(), WeekKey(now));
      EXPECT_EQ(inv.questions_size(), 7);
      EXPECT_GT(inv.closes_at().seconds(), absl::ToUnixSeconds(now));
    }
  }
  EXPECT_TRUE(Invitations("bob").empty());
  // The next period samples again.
  auto next = replica_->sampler.RunOnce(kOrg, now + absl::Hours(24 * 7));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->surveys_swept, 1);
  EXPECT_EQ(next->invitations, 4);
}

TEST_F(FeedbackIntegrationTest, Sampling_RespectsTheWeeklyCapPerPerson) {
  feedback::v1::UpdateFeedbackSettingsRequest request;
  request.mutable_settings()->set_max_invitations_per_person_per_week(1);
  feedback::v1::UpdateFeedbackSettingsResponse response;
  ASSERT_TRUE(feedback_->UpdateFeedbackSettings(Context(admin_).get(), request, &response).ok());
  ServeAll("eng");
  // Three surveys of eng, five invitations each: 15 wanted, 9 people, 1 a week.
  for (int i = 0; i < 3; ++i) MustCreate(FullSurvey("eng", 5));
  const absl::Time now = absl::Now();
  auto stats = replica_->sampler.RunOnce(kOrg, now);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->surveys_swept, 2) << "the third finds everyone at the cap";
  EXPECT_EQ(stats->invitations, 9);
  std::map<std::string, int> per_person;
  for (const auto& [id, who] : StoredInvitations()) ++per_person[who.second];
  EXPECT_EQ(per_person.size(), 9u);
  for (const auto& [person, count] : per_person) EXPECT_EQ(count, 1) << person;
}

TEST_F(FeedbackIntegrationTest, Sweep_APeriodWithNobodyToInviteYetIsSweptAgainLater) {
  MustCreate(FullSurvey("eng", 3));
  const absl::Time now = absl::Now();
  auto empty = replica_->sampler.RunOnce(kOrg, now);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->invitations, 0);
  EXPECT_EQ(empty->surveys_swept, 0);
  ServeAll("eng");
  auto later = replica_->sampler.RunOnce(kOrg, now + absl::Seconds(1));
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->surveys_swept, 1);
  EXPECT_EQ(later->invitations, 3);
  // Once it has invitations, the period is done.
  auto again = replica_->sampler.RunOnce(kOrg, now + absl::Seconds(2));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->invitations, 0);
  EXPECT_EQ(again->already_swept, 1);
  EXPECT_EQ(StoredInvitations().size(), 3u);
}

TEST_F(FeedbackIntegrationTest, Sweep_TwoConcurrentSweepsCreateEachPeriodsInvitationsExactlyOnce) {
  ServeAll("eng");
  ServeAll("ops");
  std::vector<Survey> surveys;
  for (int i = 0; i < 5; ++i) surveys.push_back(MustCreate(FullSurvey("eng", 2)));
  Survey ops = FullSurvey("ops", 2);
  Survey created;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(CreateSurvey(admin_, ops, &created).ok());
    surveys.push_back(created);
  }
  // Ten surveys x 2 = 20 invitations; 9 people x cap 3 = 27 >= 20, so every
  // survey fills its two whatever the order.
  const absl::Time now = absl::Now();
  for (int round = 0; round < 3; ++round) {
    const absl::Time at = now + absl::Hours(24 * 7 * round);
    Replica a(redis_->port()), b(redis_->port());
    std::atomic<int> ready{0};
    absl::StatusOr<feedback::SweepStats> sa, sb;
    auto run = [&](Replica& r, absl::StatusOr<feedback::SweepStats>& out) {
      ++ready;
      while (ready.load() < 2) std::this_thread::yield();
      out = r.sampler.RunOnce(kOrg, at);
    };
    std::thread ta([&] { run(a, sa); });
    std::thread tb([&] { run(b, sb); });
    ta.join();
    tb.join();
    ASSERT_TRUE(sa.ok()) << sa.status();
    ASSERT_TRUE(sb.ok()) << sb.status();
    EXPECT_EQ(sa->surveys_swept + sb->surveys_swept, 10) << "round " << round;
    EXPECT_EQ(sa->invitations + sb->invitations, 20) << "round " << round;
    EXPECT_EQ(sa->already_swept + sb->already_swept, 10) << "round " << round;
  }
  std::map<std::string, std::map<std::string, int>> per_survey;  // survey -> invitee -> count
  for (const auto& [id, who] : StoredInvitations()) ++per_survey[who.first][who.second];
  ASSERT_EQ(per_survey.size(), 10u);
  int total = 0;
  for (const auto& [survey, invitees] : per_survey) {
    for (const auto& [person, count] : invitees) {
      total += count;
      EXPECT_LE(count, 3) << "at most one per period, three periods";
    }
  }
  EXPECT_EQ(total, 60);
}

TEST_F(FeedbackIntegrationTest, Served_KudosBothWaysMakePeopleTheTeamsCustomers) {
  // cust1 thanks alice (eng); alice thanks cust2; bob thanks alice (same team).
  auto send = [&](const std::string& giver, const std::string& recipient, const std::string& id) {
    grpc::Status status = SendKudos(giver, recipient, id);
    ASSERT_TRUE(status.ok()) << status.error_message();
  };
  send("cust1", "alice", "k1");
  send("alice", "cust2", "k2");
  send("bob", "alice", "k3");
  const int64_t since = absl::ToUnixMillis(absl::Now() - absl::Hours(1));
  ASSERT_TRUE(harness::Eventually([&] {
    auto served = replica_->store.Served(kOrg, "eng", since);
    return served.ok() && std::set<std::string>(served->begin(), served->end()) ==
                              std::set<std::string>{"cust1", "cust2"};
  }));
  auto sales = replica_->store.Served(kOrg, "sales", since);
  ASSERT_TRUE(sales.ok());
  EXPECT_EQ(std::set<std::string>(sales->begin(), sales->end()), std::set<std::string>{"alice"});
  // The group is registered on the stream, so the leaderboard's compaction
  // keeps what it has not read.
  auto groups = replica_->pool->Run({"XINFO", "GROUPS", kudos::KudosStore::EventStream(kOrg)});
  ASSERT_TRUE(groups.ok());
  bool found = false;
  for (const auto& group : groups->elements) {
    for (size_t i = 0; i + 1 < group.elements.size(); i += 2) {
      if (group.elements[i].str == "name" && group.elements[i + 1].str == "feedback") found = true;
    }
  }
  EXPECT_TRUE(found);
}

// Issue 18: a private thank-you is for the people in it; a survey invitation
// built from it would tell others it happened.
TEST_F(FeedbackIntegrationTest, Served_PrivateKudosMakeNobodyACustomer) {
  auto send = [&](const std::string& giver, const std::string& recipient, const std::string& id,
                  kudos::v1::KudosVisibility visibility) {
    grpc::Status status = SendKudos(giver, recipient, id, visibility);
    ASSERT_TRUE(status.ok()) << status.error_message();
  };
  send("cust1", "alice", "p1", kudos::v1::KUDOS_VISIBILITY_PRIVATE);
  send("alice", "cust2", "p2", kudos::v1::KUDOS_VISIBILITY_PUBLIC);
  const int64_t since = absl::ToUnixMillis(absl::Now() - absl::Hours(1));
  // The public one is read after the private one: once it counts, both were read.
  ASSERT_TRUE(harness::Eventually([&] {
    auto served = replica_->store.Served(kOrg, "eng", since);
    return served.ok() && std::set<std::string>(served->begin(), served->end()).count("cust2");
  }));
  auto eng = replica_->store.Served(kOrg, "eng", since);
  ASSERT_TRUE(eng.ok());
  EXPECT_EQ(std::set<std::string>(eng->begin(), eng->end()), std::set<std::string>{"cust2"})
      << "cust1 thanked alice privately: eng did not serve cust1 as far as anyone knows";
}

// A pass that reads a full batch says more may be waiting (the consumer
// starts the next one at once); a pass that does not lets the consumer wait
// idle_sleep, so a pass serves many kudos at a time (bench/README.md).
TEST_F(FeedbackIntegrationTest, Served_OnlyAFullBatchMakesABacklogAndThePassesDrainTheStream) {
  for (int i = 0; i < 5; ++i) {
    grpc::Status status = SendKudos(kCustomers[i], "alice", absl::StrCat("b", i));
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  auto length = replica_->pool->Run({"XLEN", kudos::KudosStore::EventStream(kOrg)});
  ASSERT_TRUE(length.ok());
  ASSERT_GE(length->integer, 5);
  feedback::ConsumerOptions options;
  options.group = "feedback-backlog-test";  // its own group: the binary's reads nothing of it
  options.batch = 2;
  feedback::ServedConsumer consumer(replica_->store, replica_->kudos, options);
  int64_t applied = 0;
  int passes = 0;
  constexpr int kPassesMax = 100;
  do {
    const int n = consumer.PollOnce();
    EXPECT_LE(n, options.batch) << "one read of new entries per org and pass";
    EXPECT_EQ(consumer.backlog(), n == options.batch) << "pass " << passes;
    applied += n;
  } while (consumer.backlog() && ++passes < kPassesMax);
  EXPECT_FALSE(consumer.backlog());
  EXPECT_EQ(applied, length->integer) << "every entry once, the last pass short of a batch";
  EXPECT_EQ(consumer.PollOnce(), 0);
  EXPECT_FALSE(consumer.backlog()) << "nothing new: no backlog";
}

// ------------------------------------------------------------------ answers

TEST_F(FeedbackIntegrationTest, SubmitResponse_IsIdempotentByRequestIdAndOnePerInvitation) {
  ServeAll("eng");
  MustCreate(FullSurvey("eng", 9));
  ASSERT_TRUE(replica_->sampler.RunOnce(kOrg, absl::Now()).ok());
  std::vector<Invitation> mine = Invitations("cust1");
  ASSERT_EQ(mine.size(), 1u);
  const std::string id = mine[0].invitation_id();
  const std::vector<Answer> answers = {Score("q1", 4), Score("q2", 9), Text("q3", "Fast and kind")};
  feedback::v1::SubmitResponseResponse first, second;
  ASSERT_TRUE(Submit("cust1", "r-1", id, answers, &first).ok());
  // The same request again (a retry), answers in another order: the same answer.
  std::vector<Answer> reordered = {answers[2], answers[0], answers[1]};
  grpc::Status retry = Submit("cust1", "r-1", id, reordered, &second);
  ASSERT_TRUE(retry.ok()) << retry.error_message();
  EXPECT_EQ(first.SerializeAsString(), second.SerializeAsString());
  EXPECT_EQ(first.invitation_id(), id);
  EXPECT_EQ(first.team_id(), "eng");
  // Other answers under the same request_id, or a second answer: ALREADY_EXISTS.
  EXPECT_EQ(Submit("cust1", "r-1", id, {Score("q1", 1)}).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Submit("cust1", "r-2", id, answers).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(StoredResponses("eng"), 1);
  // Answered invitations leave the list.
  EXPECT_TRUE(Invitations("cust1").empty());
}

TEST_F(FeedbackIntegrationTest, BadInput_ClearStatusesAndNothingStored) {
  ServeAll("eng");
  Survey survey = MustCreate(FullSurvey("eng", 9));
  ASSERT_TRUE(replica_->sampler.RunOnce(kOrg, absl::Now()).ok());
  // Unknown team.
  Survey unknown = FullSurvey("no-such-team", 3);
  EXPECT_EQ(CreateSurvey(admin_, unknown, nullptr).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetScore(admin_, "no-such-team", nullptr).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Serve("cust1", "no-such-team").error_code(), grpc::StatusCode::NOT_FOUND);
  // Kinds out of range.
  Survey bad = FullSurvey("eng", 3);
  bad.mutable_questions(0)->set_kind(static_cast<feedback::v1::QuestionKind>(42));
  grpc::Status kind = CreateSurvey(manager_, bad, nullptr);
  EXPECT_EQ(kind.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(kind.error_message().find("survey.questions[0].kind"), std::string::npos);
  bad = FullSurvey("eng", 3);
  bad.set_cadence(static_cast<feedback::v1::Cadence>(9));
  EXPECT_EQ(CreateSurvey(manager_, bad, nullptr).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Who may create: a member, a manager of another team, a screen: refused.
  EXPECT_EQ(CreateSurvey(MintToken(kOrg, "alice"), FullSurvey("eng", 3), nullptr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CreateSurvey(MintToken(kOrg, "omgr", {"member", "manager"}), FullSurvey("eng", 3),
                         nullptr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CreateSurvey(MintToken(kOrg, "lobby", {"screen"}), FullSurvey("eng", 3), nullptr)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(GetScore(MintToken(kOrg, "omgr", {"member", "manager"}), "eng", nullptr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(GetScore(MintToken(kOrg, "alice"), "eng", nullptr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  feedback::v1::ListInvitationsResponse screen_list;
  EXPECT_EQ(feedback_->ListInvitations(Context(MintToken(kOrg, "lobby", {"screen"})).get(), {},
                                       &screen_list).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  feedback::v1::ListSurveysRequest list;
  feedback::v1::ListSurveysResponse surveys;
  ASSERT_TRUE(feedback_->ListSurveys(Context(manager_).get(), list, &surveys).ok());
  EXPECT_EQ(surveys.surveys_size(), 1) << "nothing stored by the refused creations";
  ASSERT_TRUE(feedback_->ListSurveys(Context(MintToken(kOrg, "omgr", {"manager"})).get(), list,
                                     &surveys).ok());
  EXPECT_EQ(surveys.surveys_size(), 0) << "a manager lists only their teams' surveys";

  std::vector<Invitation> mine = Invitations("cust1");
  ASSERT_EQ(mine.size(), 1u);
  const std::string id = mine[0].invitation_id();
  struct Case {
    std::vector<Answer> answers;
    std::string names;
  };
  for (const Case& c : std::vector<Case>{{{Score("q1", 6)}, "(q1)"},
                                         {{Score("q2", 11)}, "(q2)"},
                                         {{Score("q4", 0)}, "(q4)"},
                                         {{Text("q1", "great")}, "(q1)"},
                                         {{Score("q3", 5)}, "(q3)"},
                                         {{Score("q99", 5)}, "question_id"},
                                         {{}, "answers"}}) {
    grpc::Status status = Submit("cust1", "bad", id, c.answers);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.names;
    EXPECT_NE(status.error_message().find(c.names), std::string::npos) << status.error_message();
  }
  EXPECT_EQ(Submit("cust1", "", id, {Score("q1", 5)}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Submit("cust1", "x", "{bad}", {Score("q1", 5)}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Another person's invitation, and an unknown one: the same NOT_FOUND.
  grpc::Status other = Submit("cust2", "steal", id, {Score("q1", 1)});
  EXPECT_EQ(other.error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::Status missing = Submit("cust2", "steal", "no-such-invitation", {Score("q1", 1)});
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(other.error_message().find("cust1"), std::string::npos);
  // A screen or a service never answers.
  EXPECT_EQ(Submit("lobby", "x", id, {Score("q1", 5)}).error_code(),
            grpc::StatusCode::NOT_FOUND);  // a person without that invitation
  EXPECT_EQ(StoredResponses("eng"), 0);
  // Still open and answerable by its invitee after all that.
  EXPECT_EQ(Invitations("cust1").size(), 1u);

  // Closed: an invitation of a period that ended.
  ASSERT_TRUE(replica_->sampler.RunOnce(kOrg, absl::Now() - absl::Hours(24 * 14)).ok());
  std::string closed;
  for (const auto& [inv, who] : StoredInvitations()) {
    if (who.second == "cust1" && inv != id) closed = inv;
  }
  ASSERT_FALSE(closed.empty());
  grpc::Status late = Submit("cust1", "late", closed, {Score("q1", 5)});
  EXPECT_EQ(late.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << late.error_message();
  EXPECT_EQ(Invitations("cust1").size(), 1u) << "closed invitations are not listed";
  EXPECT_EQ(StoredResponses("eng"), 0);

  // Threshold below 3: refused, settings unchanged.
  EXPECT_EQ(SetThreshold(2).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SetThreshold(1).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  feedback::v1::GetFeedbackSettingsResponse settings;
  ASSERT_TRUE(feedback_->GetFeedbackSettings(Context(admin_).get(), {}, &settings).ok());
  EXPECT_EQ(settings.settings().anonymity_threshold(), 5);
  // Only admins change them.
  feedback::v1::UpdateFeedbackSettingsRequest update;
  update.mutable_settings()->set_anonymity_threshold(3);
  feedback::v1::UpdateFeedbackSettingsResponse updated;
  EXPECT_EQ(feedback_->UpdateFeedbackSettings(Context(manager_).get(), update, &updated).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A window out of range; a period that does not fit the window.
  feedback::v1::ServiceScore score;
  EXPECT_EQ(GetScore(manager_, "eng", &score, "", static_cast<feedback::v1::ScoreWindow>(7))
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GetScore(manager_, "eng", &score, "2026-13").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  (void)survey;
}

// ------------------------------------------------------------------ scores

TEST_F(FeedbackIntegrationTest, Anonymity_NothingBelowTheThresholdFiguresFromIt) {
  ServeAll("eng");
  MustCreate(FullSurvey("eng", 9));
  const absl::Time now = absl::Now();
  ASSERT_TRUE(replica_->sampler.RunOnce(kOrg, now).ok());
  const std::string week = WeekKey(now);
  for (int i = 0; i < 4; ++i) {
    std::vector<Invitation> mine = Invitations(kCustomers[i]);
    ASSERT_EQ(mine.size(), 1u);
    ASSERT_TRUE(Submit(kCustomers[i], "r", mine[0].invitation_id(),
                       {Score("q1", 5), Score("q2", 10), Text("q3", "secret from " + kCustomers[i])})
                    .ok());
  }
  feedback::v1::ServiceScore score;
  ASSERT_TRUE(GetScore(manager_, "eng", &score, week).ok());
  EXPECT_TRUE(score.below_threshold());
  EXPECT_EQ(score.threshold(), 5);
  EXPECT_EQ(score.responses(), 0);
  EXPECT_EQ(score.csat_mean(), 0);
  EXPECT_EQ(score.csat_distribution_size(), 0);
  EXPECT_EQ(score.comments_size(), 0);
  EXPECT_FALSE(score.has_trend());
  EXPECT_EQ(score.period(), week);
  // A lower threshold (never below 3) shows them; back to 5 hides them again.
  ASSERT_TRUE(SetThreshold(3).ok());
  ASSERT_TRUE(GetScore(manager_, "eng", &score, week).ok());
  EXPECT_FALSE(score.below_threshold());
  EXPECT_EQ(score.responses(), 4);
  ASSERT_TRUE(SetThreshold(0).ok());  // the default, 5
  ASSERT_TRUE(GetScore(manager_, "eng", &score, week).ok());
  EXPECT_TRUE(score.below_threshold());
  // The fifth answer.
  std::vector<Invitation> fifth = Invitations(kCustomers[4]);
  ASSERT_EQ(fifth.size(), 1u);
  ASSERT_TRUE(Submit(kCustomers[4], "r", fifth[0].invitation_id(), {Score("q1", 3)}).ok());
  ASSERT_TRUE(GetScore(manager_, "eng", &score, week).ok());
  EXPECT_FALSE(score.below_threshold());
  EXPECT_EQ(score.responses(), 5);
  EXPECT_DOUBLE_EQ(score.csat_mean(), (5 * 4 + 3) / 5.0);
  EXPECT_EQ(score.comments_size(), 4);
  // No RPC output, and nothing stored with the response, names who answered.
  ASSERT_TRUE(GetScore(admin_, "eng", &score, week).ok());
  for (int i = 0; i < 5; ++i) {
    const std::string& person = kCustomers[i];
    const std::string debug = score.ShortDebugString();
    for (const std::string& comment : score.comments()) EXPECT_NE(comment, "");
    EXPECT_EQ(debug.find("\"" + person + "\""), std::string::npos);
  }
  auto responses = replica_->pool->Run(
      {"ZRANGE", feedback::FeedbackStore::Prefix(kOrg) + "responses:eng", "0", "-1", "WITHSCORES"});
  ASSERT_TRUE(responses.ok());
  ASSERT_EQ(responses->elements.size(), 10u);
  std::set<std::string> invitation_ids;
  for (const auto& [id, who] : StoredInvitations()) invitation_ids.insert(id);
  std::set<std::string> scores;
  for (size_t i = 0; i < responses->elements.size(); i += 2) {
    const std::string& member = responses->elements[i].str;
    scores.insert(responses->elements[i + 1].str);
    for (const std::string& id : invitation_ids) EXPECT_EQ(member.find(id), std::string::npos);
    // Answers hold what people wrote (their own words may name them); the
    // record itself carries no person id field.
    feedback::v1::SubmitResponseRequest holder;
    ASSERT_TRUE(holder.ParseFromString(member.substr(member.find('|', member.find('|') + 1) + 1)));
    EXPECT_TRUE(holder.request_id().empty());
    EXPECT_TRUE(holder.invitation_id().empty());
  }
  EXPECT_EQ(scores.size(), 1u) << "stored by the period's start, not the time of answering";
  // The invitation keeps no readable link to the answers: only `answered`
  // and a salted hash.
  for (const auto& [id, who] : StoredInvitations()) {
    auto fields = replica_->pool->Run({"HGETALL", feedback::FeedbackStore::Prefix(kOrg) + "inv:" + id});
    ASSERT_TRUE(fields.ok());
    for (const auto& field : fields->elements) {
      EXPECT_EQ(field.str.find("secret"), std::string::npos);
    }
  }
}

TEST_F(FeedbackIntegrationTest, Score_MeanDistributionNetScoreDimensionsAndTrendMatchADirectComputation) {
  ServeAll("eng");
  MustCreate(FullSurvey("eng", 9));
  const absl::Time now = absl::Now();
  const absl::Time last_week = now - absl::Hours(24 * 7);
  std::mt19937 rng(1616);
  struct Direct {
    std::vector<int> csat, recommend;
    std::map<int, std::vector<int>> dims;
  };
  auto random_answers = [&](Direct& direct) {
    std::vector<Answer> answers;
    int csat = std::uniform_int_distribution<int>(1, 5)(rng);
    int recommend = std::uniform_int_distribution<int>(0, 10)(rng);
    answers.push_back(Score("q1", csat));
    answers.push_back(Score("q2", recommend));
    direct.csat.push_back(csat);
    direct.recommend.push_back(recommend);
    for (int d = 1; d <= 4; ++d) {
      if (std::uniform_int_distribution<int>(0, 2)(rng) == 0) continue;
      int v = std::uniform_int_distribution<int>(1, 5)(rng);
      answers.push_back(Score("q" + std::to_string(3 + d), v));
      direct.dims[d].push_back(v);
    }
    return answers;
  };
  // Last week: invitations and answers at that time (the store, with its clock).
  ASSERT_TRUE(replica_->sampler.RunOnce(kOrg, last_week).ok());
  Direct before;
  int answered_before = 0;
  for (const auto& [id, who] : StoredInvitations()) {
    if (answered_before == 6) break;
    absl::Status status = SubmitAt(who.second, id, random_answers(before), last_week);
    ASSERT_TRUE(status.ok()) << status;
    ++answered_before;
  }
  // This week: through the API.
  ASSERT_TRUE(replica_->sampler.RunOnce(kOrg, now).ok());
  Direct current;
  for (const std::string& person : kCustomers) {
    std::vector<Invitation> mine = Invitations(person);
    ASSERT_EQ(mine.size(), 1u) << person;
    grpc::Status status = Submit(person, "r", mine[0].invitation_id(), random_answers(current));
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  auto mean = [](const std::vector<int>& v) {
    double s = 0;
    for (int x : v) s += x;
    return v.empty() ? 0.0 : s / v.size();
  };
  auto net = [](const std::vector<int>& v) {
    int p = 0, d = 0;
    for (int x : v) {
      if (x >= 9) ++p;
      if (x <= 6) ++d;
    }
    return v.empty() ? 0.0 : 100.0 * (p - d) / v.size();
  };
  feedback::v1::ServiceScore score;
  ASSERT_TRUE(GetScore(manager_, "eng", &score, WeekKey(now)).ok());
  ASSERT_FALSE(score.below_threshold());
  EXPECT_EQ(score.responses(), 9);
  EXPECT_NEAR(score.csat_mean(), mean(current.csat), 1e-9);
  ASSERT_EQ(score.csat_distribution_size(), 5);
  for (int k = 1; k <= 5; ++k) {
    EXPECT_EQ(score.csat_distribution(k - 1),
              std::count(current.csat.begin(), current.csat.end(), k));
  }
  EXPECT_NEAR(score.net_score(), net(current.recommend), 1e-9);
  EXPECT_EQ(score.recommend_responses(), 9);
  for (const auto& d : score.dimensions()) {
    EXPECT_NEAR(d.mean(), mean(current.dims[d.dimension()]), 1e-9) << d.dimension();
    EXPECT_EQ(d.responses(), static_cast<int>(current.dims[d.dimension()].size()));
  }
  EXPECT_EQ(score.dimensions_size(), static_cast<int>(current.dims.size()));
  ASSERT_TRUE(score.has_trend());
  EXPECT_EQ(score.trend().previous_period(), WeekKey(last_week));
  EXPECT_EQ(score.trend().previous_responses(), 6);
  EXPECT_NEAR(score.trend().previous_csat_mean(), mean(before.csat), 1e-9);
  EXPECT_NEAR(score.trend().csat_mean_delta(), mean(current.csat) - mean(before.csat), 1e-9);
  EXPECT_NEAR(score.trend().net_score_delta(), net(current.recommend) - net(before.recommend), 1e-9);
  EXPECT_EQ(score.trend().responses_delta(), 3);
  // The previous week on its own.
  ASSERT_TRUE(GetScore(manager_, "eng", &score, WeekKey(last_week)).ok());
  EXPECT_EQ(score.responses(), 6);
  EXPECT_NEAR(score.net_score(), net(before.recommend), 1e-9);
}

TEST_F(FeedbackIntegrationTest, Anonymity_TheThresholdCountsPeopleNotResponses) {
  // One customer, invited every week of a quarter, answers six times: six
  // responses, one person: the quarter shows nothing.
  ASSERT_TRUE(Serve("cust1", "eng").ok());
  MustCreate(FullSurvey("eng", 1));
  const absl::Time monday = absl::FromCivil(absl::CivilSecond(2026, 1, 5, 12, 0, 0), absl::UTCTimeZone());
  for (int week = 0; week < 6; ++week) {
    const absl::Time at = monday + absl::Hours(24 * 7 * week);
    ASSERT_TRUE(replica_->store.RecordServed(kOrg, {{"eng", {"cust1"}}}, absl::ToUnixMillis(at)).ok());
    auto stats = replica_->sampler.RunOnce(kOrg, at);
    ASSERT_TRUE(stats.ok()) << stats.status();
    ASSERT_EQ(stats->invitations, 1) << week;
  }
  int answered = 0;
  for (const auto& [id, who] : StoredInvitations()) {
    auto stored = replica_->store.GetInvitation(kOrg, id);
    ASSERT_TRUE(stored.ok() && stored->has_value());
    absl::Status status = SubmitAt("cust1", id, {Score("q1", 2), Text("q3", "mine")},
                                   absl::FromUnixMillis((*stored)->period_start_ms) + absl::Hours(1));
    ASSERT_TRUE(status.ok()) << status;
    ++answered;
  }
  ASSERT_EQ(answered, 6);
  EXPECT_EQ(StoredResponses("eng"), 6);
  feedback::v1::ServiceScore score = ScoreAt("eng", feedback::v1::SCORE_WINDOW_QUARTER, "2026-Q1");
  EXPECT_TRUE(score.below_threshold());
  EXPECT_EQ(score.comments_size(), 0);
  EXPECT_EQ(score.csat_mean(), 0);
  score = ScoreAt("eng", feedback::v1::SCORE_WINDOW_MONTH, "2026-01");
  EXPECT_TRUE(score.below_threshold());
}

TEST_F(FeedbackIntegrationTest, Anonymity_ASurveysFiguresNeverLeaveTheRestOfTheTeamUnderTheThreshold) {
  ServeAll("eng");
  Survey a = MustCreate(FullSurvey("eng", 5));
  const absl::Time now = absl::Now();
  ASSERT_TRUE(replica_->sampler.RunOnce(kOrg, now).ok());
  Survey b = MustCreate(FullSurvey("eng", 1));
  ASSERT_TRUE(replica_->sampler.RunOnce(kOrg, now).ok());
  // Five people answer survey a; one answers survey b (with a comment).
  for (const std::string& person : kCustomers) {
    for (const Invitation& inv : Invitations(person)) {
      const bool of_b = inv.survey_id() == b.survey_id();
      ASSERT_TRUE(Submit(person, "r-" + inv.invitation_id(), inv.invitation_id(),
                         {Score("q1", of_b ? 1 : 5), Text("q3", of_b ? "only b" : "from a")})
                      .ok());
    }
  }
  const std::string week = WeekKey(now);
  feedback::v1::ServiceScore team = ScoreAt("eng", feedback::v1::SCORE_WINDOW_WEEK, week);
  ASSERT_FALSE(team.below_threshold());
  EXPECT_EQ(team.responses(), 6);
  // Survey a alone has five people, but the team minus a is one response: nothing.
  feedback::v1::ServiceScore only_a =
      ScoreAt("eng", feedback::v1::SCORE_WINDOW_WEEK, week, a.survey_id());
  EXPECT_TRUE(only_a.below_threshold());
  feedback::v1::ServiceScore only_b =
      ScoreAt("eng", feedback::v1::SCORE_WINDOW_WEEK, week, b.survey_id());
  EXPECT_TRUE(only_b.below_threshold());
  EXPECT_EQ(only_b.comments_size(), 0);
}

// ------------------------------------------------------------------ access

TEST_F(FeedbackIntegrationTest, Access_EveryRpcAuthenticatesScreensAndServicesReadNothingOrgsAreApart) {
  ServeAll("eng");
  Survey survey = MustCreate(FullSurvey("eng", 9));
  ASSERT_TRUE(replica_->sampler.RunOnce(kOrg, absl::Now()).ok());
  const std::string invitation = Invitations("cust1").at(0).invitation_id();
  auto service_token =
      common::auth::MintServiceToken("gateway", kOrg, common::auth::kDevServiceSecret, absl::Now());
  ASSERT_TRUE(service_token.ok());
  // Every RPC, called with `token`.
  auto every_rpc = [&](const std::string& token) {
    std::vector<std::pair<std::string, grpc::Status>> out;
    auto ctx = [&] {
      auto context = std::make_unique<grpc::ClientContext>();
      if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
      context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      return context;
    };
    {
      feedback::v1::CreateSurveyRequest r;
      *r.mutable_survey() = FullSurvey("eng", 3);
      feedback::v1::CreateSurveyResponse w;
      out.emplace_back("CreateSurvey", feedback_->CreateSurvey(ctx().get(), r, &w));
    }
    {
      feedback::v1::GetSurveyRequest r;
      r.set_survey_id(survey.survey_id());
      feedback::v1::GetSurveyResponse w;
      out.emplace_back("GetSurvey", feedback_->GetSurvey(ctx().get(), r, &w));
    }
    {
      feedback::v1::ListSurveysResponse w;
      out.emplace_back("ListSurveys", feedback_->ListSurveys(ctx().get(), {}, &w));
    }
    {
      feedback::v1::RecordServiceRequestRequest r;
      r.set_provider_team_id("eng");
      feedback::v1::RecordServiceRequestResponse w;
      out.emplace_back("RecordServiceRequest", feedback_->RecordServiceRequest(ctx().get(), r, &w));
    }
    {
      feedback::v1::ListInvitationsResponse w;
      out.emplace_back("ListInvitations", feedback_->ListInvitations(ctx().get(), {}, &w));
    }
    {
      feedback::v1::SubmitResponseRequest r;
      r.set_request_id("x");
      r.set_invitation_id(invitation);
      *r.add_answers() = Score("q1", 5);
      feedback::v1::SubmitResponseResponse w;
      out.emplace_back("SubmitResponse", feedback_->SubmitResponse(ctx().get(), r, &w));
    }
    {
      feedback::v1::GetServiceScoreRequest r;
      r.set_team_id("eng");
      feedback::v1::GetServiceScoreResponse w;
      out.emplace_back("GetServiceScore", feedback_->GetServiceScore(ctx().get(), r, &w));
    }
    {
      feedback::v1::GetFeedbackSettingsResponse w;
      out.emplace_back("GetFeedbackSettings", feedback_->GetFeedbackSettings(ctx().get(), {}, &w));
    }
    {
      feedback::v1::UpdateFeedbackSettingsRequest r;
      r.mutable_settings()->set_anonymity_threshold(3);
      feedback::v1::UpdateFeedbackSettingsResponse w;
      out.emplace_back("UpdateFeedbackSettings",
                       feedback_->UpdateFeedbackSettings(ctx().get(), r, &w));
    }
    return out;
  };
  for (const std::string& bad :
       {std::string(), std::string("not-a-jwt"), MintToken(kOrg, "root", {"admin"}) + "x"}) {
    for (const auto& [rpc, status] : every_rpc(bad)) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << rpc;
    }
  }
  for (const std::string& token : {MintToken(kOrg, "lobby", {"screen"}), *service_token}) {
    for (const auto& [rpc, status] : every_rpc(token)) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << rpc;
    }
  }
  // Org B's admin reaches nothing of acme: its teams, surveys and invitations are not there.
  const std::string other_admin = MintToken("globex", "root", {"admin"});
  for (const auto& [rpc, status] : every_rpc(other_admin)) {
    if (rpc == "ListSurveys" || rpc == "ListInvitations" || rpc == "GetFeedbackSettings" ||
        rpc == "UpdateFeedbackSettings") {
      continue;  // their own (empty) org
    }
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << rpc;
  }
  feedback::v1::ListSurveysResponse listed;
  ASSERT_TRUE(feedback_->ListSurveys(Context(other_admin).get(), {}, &listed).ok());
  EXPECT_EQ(listed.surveys_size(), 0);
  EXPECT_EQ(StoredResponses("eng"), 0);
  feedback::v1::GetFeedbackSettingsResponse settings;
  ASSERT_TRUE(feedback_->GetFeedbackSettings(Context(admin_).get(), {}, &settings).ok());
  EXPECT_EQ(settings.settings().anonymity_threshold(), 5) << "acme's settings untouched";
}

// ------------------------------------------------------------------ the push

TEST_F(FeedbackIntegrationTest, Invitation_IsPushedOnTheInviteesWatchFeed) {
  ServeAll("eng");
  MustCreate(FullSurvey("eng", 9));
  auto watch = [&](const std::string& token, grpc::ClientContext& context) {
    context.AddMetadata("authorization", "Bearer " + token);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto reader = kudos_stub_->WatchFeed(&context, kudos::v1::WatchFeedRequest());
    reader->WaitForInitialMetadata();
    return reader;
  };
  grpc::ClientContext mine_context, service_context;
  auto mine = watch(MintToken(kOrg, "cust3"), mine_context);
  auto service_token =
      common::auth::MintServiceToken("gateway", kOrg, common::auth::kDevServiceSecret, absl::Now());
  ASSERT_TRUE(service_token.ok());
  auto service = watch(*service_token, service_context);
  ASSERT_TRUE(replica_->sampler.RunOnce(kOrg, absl::Now()).ok());
  std::vector<Invitation> listed = Invitations("cust3");
  ASSERT_EQ(listed.size(), 1u);
  kudos::v1::WatchFeedResponse update;
  ASSERT_TRUE(mine->Read(&update));
  ASSERT_TRUE(update.has_invitation());
  EXPECT_FALSE(update.has_kudos());
  EXPECT_EQ(update.invitation().invitation_id(), listed[0].invitation_id());
  EXPECT_EQ(update.invitation().person_id(), "cust3");
  EXPECT_EQ(update.invitation().questions_size(), 7);
  // The service stream (the gateway) gets every invitee's, to route them.
  std::set<std::string> routed;
  while (routed.size() < kCustomers.size() && service->Read(&update)) {
    if (update.has_invitation()) routed.insert(update.invitation().person_id());
  }
  EXPECT_EQ(routed, std::set<std::string>(kCustomers.begin(), kCustomers.end()));
  mine_context.TryCancel();
  service_context.TryCancel();
}

}  // namespace
