// Issue 16 through the gateway and kudosctl, against the real platform:
// redis-server, ledger, kudos (hosting the feedback service, survey sweep
// every second), leaderboard and the gateway as processes. Plain HTTP and
// SSE over loopback; kudosctl run as a process.
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <iostream>
#include <functional>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/gateway/http_client.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using gwtest::Http;
using gwtest::HttpResponse;
using gwtest::SseEvent;
using gwtest::SseReader;
using namespace std::chrono_literals;

using Headers = std::map<std::string, std::string>;

class GatewayFeedbackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    redis_ = new harness::RedisServer();
    ledger_ = new harness::Service(LEDGER_BINARY, redis_->address());
    // The survey sweep every second (default: minutes).
    kudos_ = new harness::Service(KUDOS_BINARY, redis_->address(),
                                  {"--ledger=" + ledger_->address(), "--survey_interval_s=1"});
    leaderboard_ = new harness::Service(LEADERBOARD_BINARY, redis_->address());
    gateway_ = new harness::Service(
        GATEWAY_BINARY, redis_->address(),
        {"--kudos=" + kudos_->address(), "--ledger=" + ledger_->address(),
         "--leaderboard=" + leaderboard_->address(), "--heartbeat_ms=500",
         "--max_backoff_ms=1000"});
    port_ = gateway_->port();
    const Headers admin = As("root", {"admin"});
    // t1, t2 and t4 are managed by mgr (manager_id of their members); the
    // people of t3 are the customers the other teams serve.
    for (const char* team : {"t1", "t2", "t3", "t4", "leads"}) {
      ASSERT_EQ(Post("/v1/teams", absl::StrCat(R"({"teamId":")", team, R"(","displayName":")", team, R"("})"), admin).status,
                200);
    }
    const std::vector<std::array<const char*, 3>> people = {
        {"mgr", "leads", ""},  {"alice", "t1", "mgr"}, {"bob", "t1", "mgr"},
        {"gus", "t2", "mgr"},  {"hal", "t2", "mgr"},   {"carol", "t3", ""},
        {"dan", "t3", ""},     {"erin", "t3", ""},     {"fay", "t3", ""},
        {"lou", "t4", "mgr"},  {"ivy", "t3", ""},      {"jon", "t3", ""},
        {"kim", "t3", ""}};
    for (const auto& [id, team, manager] : people) {
      HttpResponse r = Post("/v1/people",
                            absl::StrCat(R"({"personId":")", id, R"(","displayName":")", id,
                                         R"(","teamId":")", team, R"(","managerId":")", manager,
                                         R"(","active":true})"),
                            admin);
      ASSERT_EQ(r.status, 200) << r.body;
    }
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete leaderboard_;
    delete kudos_;
    delete ledger_;
    delete redis_;
  }

  static Headers As(const std::string& who, std::vector<std::string> roles = {"member"}) {
    return {{"Authorization", "Bearer " + harness::MintToken("acme", who, roles)}};
  }
  static Headers Manager() { return As("mgr", {"member", "manager"}); }
  static HttpResponse Get(const std::string& target, const Headers& headers) {
    return Http(port_, "GET", target, "", headers);
  }
  static HttpResponse Post(const std::string& target, const std::string& body,
                           const Headers& headers) {
    return Http(port_, "POST", target, body, headers);
  }
  static std::string Field(const std::string& json, const std::string& name) {
    std::string key = "\"" + name + "\":\"";
    size_t at = json.find(key);
    if (at == std::string::npos) return "";
    at += key.size();
    return json.substr(at, json.find('"', at) - at);
  }
  static bool Has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }
  // Polls until pred holds (true) or the time is up (false).
  static bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(200ms);
    }
    return pred();
  }
  static std::string CreateSurvey(const std::string& team) {
    HttpResponse r = Post("/v1/surveys",
                          absl::StrCat(R"({"teamId":")", team,
                                       R"(","cadence":"CADENCE_WEEKLY","invitationsPerPeriod":10,)",
                                       R"("questions":[{"kind":"QUESTION_KIND_CSAT"},)",
                                       R"({"kind":"QUESTION_KIND_RECOMMEND"},)",
                                       R"({"kind":"QUESTION_KIND_TEXT"}]})"),
                          Manager());
    EXPECT_EQ(r.status, 200) << r.body;
    return Field(r.body, "surveyId");
  }

  static harness::RedisServer* redis_;
  static harness::Service *ledger_, *kudos_, *leaderboard_, *gateway_;
  static int port_;
};

harness::RedisServer* GatewayFeedbackTest::redis_ = nullptr;
harness::Service* GatewayFeedbackTest::ledger_ = nullptr;
harness::Service* GatewayFeedbackTest::kudos_ = nullptr;
harness::Service* GatewayFeedbackTest::leaderboard_ = nullptr;
harness::Service* GatewayFeedbackTest::gateway_ = nullptr;
int GatewayFeedbackTest::port_ = 0;

// Surveys, service requests, invitations, answers and the score, with their
// statuses.
TEST_F(GatewayFeedbackTest, SurveyToScoreThroughJson) {
  // Who may create a survey, about which team.
  HttpResponse r = Post("/v1/surveys",
                        R"({"teamId":"t1","questions":[{"kind":"QUESTION_KIND_CSAT"}]})",
                        As("alice"));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(Field(r.body, "code"), "PERMISSION_DENIED");
  // A dimension question without its dimension; a team that does not exist.
  r = Post("/v1/surveys", R"({"teamId":"t1","cadence":"CADENCE_WEEKLY","invitationsPerPeriod":5,)"
                          R"("questions":[{"kind":"QUESTION_KIND_DIMENSION"}]})",
           Manager());
  EXPECT_EQ(r.status, 400) << r.body;
  r = Post("/v1/surveys", R"({"teamId":"nope","cadence":"CADENCE_WEEKLY",)"
                          R"("invitationsPerPeriod":5,"questions":[{"kind":"QUESTION_KIND_CSAT"}]})",
           As("root", {"admin"}));
  EXPECT_EQ(r.status, 404) << r.body;
  // carol and dan got work from t1 (the sweep of a period invites whom the
  // team served when it runs: before the survey here).
  for (const char* customer : {"carol", "dan"}) {
    r = Post("/v1/service-requests",
             R"({"providerTeamId":"t1","workItemUrl":"https://tracker.example/T-1"})",
             As(customer));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Field(r.body, "teamId"), "t1");
  }
  r = Post("/v1/service-requests", R"({"providerTeamId":"nope"})", As("erin"));
  EXPECT_EQ(r.status, 404) << r.body;

  // The survey's first sweep invites whom the team served by then.
  const std::string survey = CreateSurvey("t1");
  ASSERT_FALSE(survey.empty());
  r = Get("/v1/surveys?team_id=t1", Manager());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Has(r.body, survey)) << r.body;
  r = Get("/v1/surveys/" + survey, Manager());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Field(r.body, "teamId"), "t1");

  // The sweep invites both customers, each to answer once.
  std::string carol_invitation;
  ASSERT_TRUE(Eventually([&] {
    r = Get("/v1/invitations", As("carol"));
    carol_invitation = r.status == 200 && Has(r.body, survey) ? Field(r.body, "invitationId") : "";
    return !carol_invitation.empty();
  }, 20s)) << r.body;
  EXPECT_EQ(Field(r.body, "personId"), "carol") << r.body;
  ASSERT_TRUE(Eventually([&] { return Has(Get("/v1/invitations", As("dan")).body, survey); }, 20s));
  EXPECT_FALSE(Has(Get("/v1/invitations", As("dan")).body, carol_invitation));

  r = Get("/v1/invitations", As("carol"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Has(r.body, carol_invitation)) << r.body;
  EXPECT_FALSE(Has(Get("/v1/invitations", As("fay")).body, carol_invitation));

  // Answers: another person's invitation, out of range, then once only.
  const std::string target = "/v1/invitations/" + carol_invitation + ":respond";
  const std::string good = R"({"requestId":"ans-1","answers":[{"questionId":"q1","score":4},)"
                           R"({"questionId":"q2","score":9},{"questionId":"q3","text":"Quick"}]})";
  r = Post(target, good, As("dan"));
  EXPECT_TRUE(r.status == 403 || r.status == 404) << r.status << " " << r.body;
  r = Post(target, R"({"requestId":"ans-0","answers":[{"questionId":"q1","score":9}]})",
           As("carol"));
  EXPECT_EQ(r.status, 400) << r.body;
  r = Post(target, good, As("carol"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Field(r.body, "invitationId"), carol_invitation);
  r = Post(target, good, As("carol"));  // a retry: the same answer
  EXPECT_EQ(r.status, 200) << r.body;
  r = Post(target, R"({"requestId":"ans-2","answers":[{"questionId":"q1","score":1}]})",
           As("carol"));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(Field(r.body, "code"), "ALREADY_EXISTS") << r.body;
  EXPECT_FALSE(Has(Get("/v1/invitations", As("carol")).body, carol_invitation));

  // One answer: below the anonymity threshold, nothing but the reason.
  r = Get("/v1/teams/t1/service-score?window=week", Manager());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Has(r.body, R"("belowThreshold":true)")) << r.body;
  EXPECT_FALSE(Has(r.body, "Quick")) << r.body;
  EXPECT_EQ(Get("/v1/teams/t1/service-score", As("alice")).status, 403);
  EXPECT_EQ(Get("/v1/teams/t1/service-score?window=fortnight", Manager()).status, 400);

  r = Get("/v1/feedback/settings", Manager());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Has(r.body, R"("anonymityThreshold":5)")) << r.body;
  r = Http(port_, "PUT", "/v1/feedback/settings", R"({"anonymityThreshold":2})",
           As("root", {"admin"}));
  EXPECT_EQ(r.status, 400) << r.body;
}

// An invitation is pushed on the SSE feed as `event: invitation` to its
// invitee's streams only: not to a screen, another customer or someone the
// team never served (the feed watch is shared, under the gateway's identity).
TEST_F(GatewayFeedbackTest, SseFeedPushesEachInvitationToItsInviteeOnly) {
  const std::string screen = harness::MintToken("acme", "wall", {"screen"});
  SseReader wall(port_, "/v1/stream/feed?access_token=" + screen);
  SseReader ivy(port_, "/v1/stream/feed?access_token=" + harness::MintToken("acme", "ivy"));
  SseReader jon(port_, "/v1/stream/feed", As("jon"));
  SseReader kim(port_, "/v1/stream/feed", As("kim"));
  ASSERT_TRUE(Eventually([&] { return wall.status() && ivy.status() && jon.status() &&
                                      kim.status(); }, 5s));
  ASSERT_EQ(ivy.status(), 200);
  ASSERT_EQ(jon.status(), 200);
  // The upstream watches are open once a kudos reaches every stream (a watch
  // starts at "now": an invitation created before it would be missed). The
  // kudos is between people the survey's team never served.
  std::vector<SseReader*> streams = {&wall, &ivy, &jon, &kim};
  auto opened = [](const SseEvent& e) {
    return e.event == "kudos" && Has(e.data, "Watches are open");
  };
  for (int attempt = 0; attempt < 8; ++attempt) {  // under the 10 kudos a minute per giver
    HttpResponse sent = Post("/v1/kudos",
                             absl::StrCat(R"({"requestId":"open-)", attempt,
                                          R"(","recipientIds":["fay"],"message":"Watches are open",)"
                                          R"("values":["teamwork"],"pointsPerRecipient":1})"),
                             As("erin"));
    ASSERT_EQ(sent.status, 200) << sent.body;
    bool all = true;
    for (SseReader* stream : streams) all = all && !stream->WaitFor(opened, 1500ms).event.empty();
    if (all) break;
  }
  for (SseReader* stream : streams) ASSERT_FALSE(stream->WaitFor(opened, 1s).event.empty());
  for (const char* customer : {"ivy", "jon"}) {
    HttpResponse r = Post("/v1/service-requests", R"({"providerTeamId":"t4"})", As(customer));
    ASSERT_EQ(r.status, 200) << r.body;
  }
  const std::string survey = CreateSurvey("t4");
  ASSERT_FALSE(survey.empty());
  auto invitation = [](const SseEvent& e) { return e.event == "invitation"; };
  SseEvent ivys = ivy.WaitFor(invitation, 20s);
  ASSERT_EQ(ivys.event, "invitation") << ivy.raw();
  EXPECT_TRUE(Has(ivys.data, R"({"invitation":{)")) << ivys.data;
  EXPECT_TRUE(Has(ivys.data, survey)) << ivys.data;
  EXPECT_EQ(Field(ivys.data, "personId"), "ivy") << ivys.data;
  EXPECT_EQ(Field(ivys.data, "teamId"), "t4") << ivys.data;
  EXPECT_TRUE(Has(ivys.data, R"("questions":[)")) << ivys.data;
  SseEvent jons = jon.WaitFor(invitation, 20s);
  ASSERT_EQ(jons.event, "invitation") << jon.raw();
  EXPECT_EQ(Field(jons.data, "personId"), "jon");
  const std::string ivy_invitation = Field(ivys.data, "invitationId");
  ASSERT_FALSE(ivy_invitation.empty());
  EXPECT_NE(Field(jons.data, "invitationId"), ivy_invitation);
  // The pushed invitation is the listed one, and can be answered.
  HttpResponse listed = Get("/v1/invitations", As("ivy"));
  EXPECT_TRUE(Has(listed.body, ivy_invitation)) << listed.body;
  std::this_thread::sleep_for(1s);
  EXPECT_FALSE(Has(wall.raw(), "invitation")) << wall.raw();
  EXPECT_FALSE(Has(kim.raw(), "invitation")) << kim.raw();
  EXPECT_FALSE(Has(ivy.raw(), Field(jons.data, "invitationId"))) << ivy.raw();
  EXPECT_FALSE(Has(ivy.raw(), R"("personId":"jon")")) << ivy.raw();
}

TEST_F(GatewayFeedbackTest, InsightsAndUnrecognizedForManagersOnly) {
  for (const char* giver : {"carol", "dan"}) {
    HttpResponse sent = Post("/v1/kudos",
                             absl::StrCat(R"({"requestId":"ins-)", giver,
                                          R"(","recipientIds":["alice"],"message":"Thanks",)"
                                          R"("values":["teamwork"],"pointsPerRecipient":2})"),
                             As(giver));
    ASSERT_EQ(sent.status, 200) << sent.body;
  }
  HttpResponse r;
  ASSERT_TRUE(Eventually([&] {
    r = Get("/v1/teams/t1/insights?window=week", Manager());
    return r.status == 200 && Has(r.body, R"("kudosReceived":"2")");
  }, 15s)) << r.status << " " << r.body;
  EXPECT_EQ(Field(r.body, "teamId"), "t1");
  EXPECT_TRUE(Has(r.body, R"("reachPercent":50)")) << r.body;  // alice of alice and bob
  EXPECT_TRUE(Has(r.body, R"("crossTeamPercent":100)")) << r.body;
  // The same through the query form; a window with no insights is refused.
  EXPECT_EQ(Get("/v1/insights?team_id=t1&window=week", Manager()).status, 200);
  EXPECT_EQ(Get("/v1/insights?team_id=t1&window=all_time", Manager()).status, 400);
  // Members, screens, managers of other teams and org-wide for a manager: no.
  EXPECT_EQ(Get("/v1/teams/t1/insights", As("alice")).status, 403);
  EXPECT_EQ(Get("/v1/teams/t1/insights", As("wall", {"screen"})).status, 403);
  EXPECT_EQ(Get("/v1/teams/t3/insights", Manager()).status, 403);
  EXPECT_EQ(Get("/v1/insights", Manager()).status, 403);
  EXPECT_EQ(Get("/v1/insights", As("root", {"admin"})).status, 200);

  // bob was never thanked; alice was today.
  r = Get("/v1/teams/t1/unrecognized?days=1", Manager());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Has(r.body, R"("personId":"bob")")) << r.body;
  EXPECT_TRUE(Has(r.body, R"("daysSinceRecognized":"-1")")) << r.body;
  EXPECT_FALSE(Has(r.body, R"("personId":"alice")")) << r.body;
  r = Get("/v1/insights/unrecognized?team_id=t1&days=1&page_size=1", Manager());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Has(r.body, R"("personId":"bob")")) << r.body;
  EXPECT_EQ(Get("/v1/insights/unrecognized?team_id=t1&days=0x", Manager()).status, 400);
  EXPECT_EQ(Get("/v1/teams/t1/unrecognized", As("bob")).status, 403);
}

// ---- kudosctl ---------------------------------------------------------------

struct CtlRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CtlRun Kudosctl(const std::vector<std::string>& args, const std::string& kudos,
             const std::string& leaderboard) {
  std::string command = absl::StrCat(
      "KUDOS_DEV_INSECURE_DEFAULTS=1 ", KUDOSCTL_BINARY, " --org=acme --kudos=", kudos,
      " --leaderboard=", leaderboard);
  for (const std::string& arg : args) absl::StrAppend(&command, " '", arg, "'");
  absl::StrAppend(&command, " 2>&1");
  CtlRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) run.output.append(buffer, n);
  int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// A manager's flow with kudosctl (tools/README.md): a survey, service
// requests, answers, the threshold, the score, insights, unrecognized.
TEST_F(GatewayFeedbackTest, KudosctlSurveyInsightsAndUnrecognized) {
  auto ctl = [&](std::vector<std::string> args) {
    CtlRun run = Kudosctl(args, kudos_->address(), leaderboard_->address());
    std::cout << "$ kudosctl " << absl::StrJoin(args, " ") << "\n" << run.output;
    return run;
  };
  // Three customers got work from t2, then its manager creates the survey.
  CtlRun run;
  const std::vector<std::string> customers = {"carol", "dan", "erin"};
  for (const std::string& who : customers) {
    run = ctl({"survey", "request", "--as=" + who, "--team=t2",
               "--url=https://tracker.example/T2-" + who});
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_TRUE(absl::StrContains(run.output, who + " was served by team t2")) << run.output;
  }
  run = ctl({"survey", "create", "--as=mgr", "--team=t2", "--cadence=weekly", "--per_period=10",
             "--questions=csat,recommend,text,on_time"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "team t2  weekly, 10 invitations per period"))
      << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "=on_time")) << run.output;
  run = ctl({"survey", "create", "--as=alice", "--roles=member", "--team=t2"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "CreateSurvey failed: 7")) << run.output;
  run = ctl({"survey", "list", "--as=mgr", "--team=t2"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "team t2")) << run.output;

  for (const std::string& who : customers) {
    ASSERT_TRUE(Eventually([&] {
      return absl::StrContains(ctl({"survey", "invitations", "--as=" + who}).output,
                               "how was the service of t2");
    }, 20s)) << who << " was not invited";
  }
  run = ctl({"survey", "answer", "--as=carol", "--team=t2", "--csat=5", "--recommend=10",
             "--on_time=4", "--comment=Always on time"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "csat=5, recommend=10")) << run.output;
  run = ctl({"survey", "answer", "--as=carol", "--team=t2", "--csat=5"});  // none left open
  EXPECT_EQ(run.exit_code, 1) << run.output;

  // Below the threshold (5): the reason only.
  run = ctl({"survey", "results", "--as=mgr", "--team=t2", "--window=week"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "no score: fewer than 5 answers")) << run.output;
  // The admin lowers the threshold to 3 (never below); two more answers.
  run = ctl({"survey", "settings", "--as=root", "--roles=admin", "--threshold=2"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  run = ctl({"survey", "settings", "--as=root", "--roles=admin", "--threshold=3"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "anonymity threshold 3")) << run.output;
  ASSERT_EQ(ctl({"survey", "answer", "--as=dan", "--team=t2", "--csat=4", "--recommend=9",
                 "--on_time=5"}).exit_code, 0);
  ASSERT_EQ(ctl({"survey", "answer", "--as=erin", "--team=t2", "--csat=3", "--recommend=6",
                 "--on_time=3"}).exit_code, 0);
  run = ctl({"survey", "results", "--as=mgr", "--team=t2", "--window=week"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  // CSAT (5 + 4 + 3) / 3 = 4.00; recommend 10, 9, 6: 2 promoters, 1
  // detractor: net (2 - 1) / 3 = +33.
  EXPECT_TRUE(absl::StrContains(run.output, "responses 3")) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "CSAT 4.00 of 5 (3 answers; 1..5: 0/0/1/1/1)"))
      << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "net score +33 (2 promoters, 0 passives, 1 detractors)"))
      << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "on_time    4.00 (3 answers)")) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "\"Always on time\"")) << run.output;

  // Insights and the unrecognized list of t2: gus thanked, hal never.
  ASSERT_EQ(ctl({"send", "--as=carol", "--to=gus", "--points=3", "--values=teamwork",
                 "--message=Thanks for the help"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] {
    run = ctl({"insights", "--as=mgr", "--team=t2", "--window=week"});
    return absl::StrContains(run.output, "1 of 1 kudos received");
  }, 15s)) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "insights of team t2, week")) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "reach           50.0%  1 recognized")) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "participation    0.0%  0 gave")) << run.output;
  run = ctl({"insights", "--as=gus", "--roles=member", "--team=t2"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "GetInsights failed: 7")) << run.output;
  run = ctl({"unrecognized", "--as=mgr", "--team=t2", "--days=1"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "hal (hal)  never recognized")) << run.output;
  EXPECT_FALSE(absl::StrContains(run.output, "gus (gus)")) << run.output;
}

}  // namespace
