// The Slack slash command end to end: a fake of the Slack side (this test)
// signs form bodies with the org's signing secret exactly as Slack does and
// posts them to the real gateway, which forwards them to the real
// integrations service, which sends the kudos through the real kudos and
// ledger services as the mapped giver. Everything on loopback.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "integrations/v1/slack.grpc.pb.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "services/integrations/slack_signature.h"
#include "tests/gateway/http_client.h"
#include "tests/harness/loopback.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using gwtest::HttpResponse;
using harness::Context;
using harness::MintToken;
using integrations::v1::SlackService;
using namespace std::chrono_literals;

constexpr char kOrg[] = "acme";
constexpr char kSecret[] = "8f742231b10e8888abcd99yyyzzz85a5";
constexpr char kTeam[] = "T0ACME";

// Form-encodes one value as Slack does (application/x-www-form-urlencoded).
std::string FormEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof(escaped), "%%%02X", c);
      out += escaped;
    }
  }
  return out;
}

class SlackCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(),
        std::vector<std::string>{"--ledger=" + ledger_->address()});
    const std::string unused = "127.0.0.1:" + std::to_string(harness::FreePort());
    integrations_ = std::make_unique<harness::Service>(
        INTEGRATIONS_BINARY, redis_->address(),
        std::vector<std::string>{"--kudos=" + kudos_->address(), "--ledger=" + ledger_->address(),
                                 "--leaderboard=" + unused});
    gateway_ = std::make_unique<harness::Service>(
        GATEWAY_BINARY, unused,
        std::vector<std::string>{"--integrations=" + integrations_->address(),
                                 "--kudos=" + kudos_->address(), "--ledger=" + ledger_->address(),
                                 "--leaderboard=" + unused});
    auto kudos_channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    directory_ = kudos::v1::DirectoryService::NewStub(kudos_channel);
    kudos_stub_ = kudos::v1::KudosService::NewStub(kudos_channel);
    slack_ = SlackService::NewStub(
        grpc::CreateChannel(integrations_->address(), grpc::InsecureChannelCredentials()));
    admin_ = MintToken(kOrg, "root", {"admin"});
    for (const char* person : {"alice", "bob", "carol", "dave"}) CreatePerson(person);

    integrations::v1::SetSlackSettingsRequest settings;
    settings.mutable_settings()->set_signing_secret(kSecret);
    settings.mutable_settings()->set_team_id(kTeam);
    integrations::v1::SetSlackSettingsResponse stored;
    grpc::Status set = slack_->SetSlackSettings(Context(admin_).get(), settings, &stored);
    ASSERT_TRUE(set.ok()) << set.error_message();
    Link("U0ALICE", "alice");
    Link("U0BOB", "bob");
    Link("U0CAROL", "carol");
  }

  void CreatePerson(const std::string& id) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory_->CreatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  grpc::Status PutMapping(const std::string& token, const std::string& slack_user,
                          const std::string& person) {
    integrations::v1::PutUserMappingRequest request;
    request.mutable_mapping()->set_slack_user_id(slack_user);
    request.mutable_mapping()->set_person_id(person);
    integrations::v1::PutUserMappingResponse response;
    return slack_->PutUserMapping(Context(token).get(), request, &response);
  }

  void Link(const std::string& slack_user, const std::string& person) {
    grpc::Status status = PutMapping(admin_, slack_user, person);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // The form body Slack posts for `/kudos <text>` typed by `user_id`.
  static std::string CommandBody(const std::string& user_id, const std::string& text,
                                 const std::string& trigger_id) {
    return absl::StrCat("token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=", kTeam,
                        "&team_domain=acme&channel_id=C2147483705&channel_name=general&user_id=",
                        user_id, "&user_name=someone&command=%2Fkudos&text=", FormEncode(text),
                        "&api_app_id=A123456&response_url=",
                        FormEncode("https://hooks.slack.com/commands/1234/5678"),
                        "&trigger_id=", FormEncode(trigger_id));
  }

  // Posts like Slack: signed with `secret` at `timestamp`.
  HttpResponse Post(const std::string& body, absl::Time timestamp,
                    const std::string& secret = kSecret,
                    std::map<std::string, std::string> extra_headers = {}) {
    const std::string seconds = absl::StrCat(absl::ToUnixSeconds(timestamp));
    std::map<std::string, std::string> headers = {
        {"Content-Type", "application/x-www-form-urlencoded"},
        {"X-Slack-Request-Timestamp", seconds},
        {"X-Slack-Signature", integrations::SlackSignature(secret, seconds, body)},
        {"User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)"}};
    for (auto& [name, value] : extra_headers) headers[name] = value;
    return gwtest::Http(gateway_->port(), "POST", absl::StrCat("/slack/", kOrg, "/commands"),
                        body, headers);
  }

  HttpResponse Command(const std::string& user_id, const std::string& text,
                       const std::string& trigger_id) {
    return Post(CommandBody(user_id, text, trigger_id), absl::Now());
  }

  std::vector<kudos::v1::Kudos> AllKudos() {
    kudos::v1::ListKudosRequest request;
    request.set_page_size(100);
    kudos::v1::ListKudosResponse response;
    grpc::Status status = kudos_stub_->ListKudos(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.kudos().begin(), response.kudos().end()};
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_, kudos_, integrations_, gateway_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_stub_;
  std::unique_ptr<SlackService::Stub> slack_;
  std::string admin_;
};

TEST_F(SlackCommandTest, Command_SendsTheKudosAsTheMappedGiverAndAnswersInChannel) {
  HttpResponse response =
      Command("U0ALICE", "<@U0BOB|bob> @carol 5 #teamwork thanks for the quick fix & more",
              "13345224609.738474920.8088930838d88f008e0");
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.headers["content-type"], "application/json");
  EXPECT_NE(response.body.find("\"response_type\":\"in_channel\""), std::string::npos)
      << response.body;
  EXPECT_NE(response.body.find("<@U0ALICE> gave 5 points each to <@U0BOB|bob> and @carol for "
                               "#teamwork: thanks for the quick fix &amp; more"),
            std::string::npos)
      << response.body;

  std::vector<kudos::v1::Kudos> sent = AllKudos();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].giver_id(), "alice");
  EXPECT_EQ(std::vector<std::string>(sent[0].recipient_ids().begin(),
                                     sent[0].recipient_ids().end()),
            (std::vector<std::string>{"bob", "carol"}));
  EXPECT_EQ(sent[0].points_per_recipient(), 5);
  EXPECT_EQ(sent[0].values(0), "teamwork");
  EXPECT_EQ(sent[0].message(), "thanks for the quick fix & more");  // Slack's escape undone
  EXPECT_EQ(sent[0].state(), kudos::v1::KUDOS_STATE_COMMITTED);
}

TEST_F(SlackCommandTest, Replay_SameTriggerGivesOneKudos) {
  const std::string body = CommandBody("U0ALICE", "<@U0BOB> 3 #empathy thank you", "111.222.aaa");
  HttpResponse first = Post(body, absl::Now());
  ASSERT_EQ(first.status, 200) << first.body;
  // Slack's retry: the same command, re-signed with a new timestamp.
  HttpResponse retry = Post(body, absl::Now() + absl::Seconds(2), kSecret,
                            {{"X-Slack-Retry-Num", "1"}, {"X-Slack-Retry-Reason", "http_timeout"}});
  ASSERT_EQ(retry.status, 200) << retry.body;
  EXPECT_NE(retry.body.find("in_channel"), std::string::npos) << retry.body;
  // A replay of the very same signed request.
  const absl::Time at = absl::Now();
  HttpResponse replay_a = Post(body, at);
  HttpResponse replay_b = Post(body, at);
  EXPECT_EQ(replay_a.status, 200);
  EXPECT_EQ(replay_b.status, 200);
  std::vector<kudos::v1::Kudos> sent = AllKudos();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].points_per_recipient(), 3);
  // A new command (another trigger) is a new kudos.
  HttpResponse next = Command("U0ALICE", "<@U0BOB> 3 #empathy thank you", "111.222.bbb");
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(AllKudos().size(), 2u);
}

TEST_F(SlackCommandTest, StaleTimestampOrBadSignature_RefusedWithNothingChanged) {
  const std::string body = CommandBody("U0ALICE", "<@U0BOB> 5 #teamwork thanks", "1.2.3");
  HttpResponse stale = Post(body, absl::Now() - absl::Minutes(5) - absl::Seconds(30));
  EXPECT_EQ(stale.status, 401) << stale.body;
  EXPECT_NE(stale.body.find("5 minutes"), std::string::npos) << stale.body;
  HttpResponse future = Post(body, absl::Now() + absl::Minutes(6));
  EXPECT_EQ(future.status, 401) << future.body;
  HttpResponse wrong_secret = Post(body, absl::Now(), "not-the-signing-secret");
  EXPECT_EQ(wrong_secret.status, 401) << wrong_secret.body;
  EXPECT_NE(wrong_secret.body.find("X-Slack-Signature"), std::string::npos) << wrong_secret.body;
  // Signed, then tampered with: 50 points instead of 5.
  const std::string seconds = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
  const std::string signature = integrations::SlackSignature(kSecret, seconds, body);
  std::string tampered = body;
  tampered.replace(tampered.find("+5+"), 3, "+50+");
  HttpResponse changed = gwtest::Http(
      gateway_->port(), "POST", "/slack/acme/commands", tampered,
      {{"Content-Type", "application/x-www-form-urlencoded"},
       {"X-Slack-Request-Timestamp", seconds},
       {"X-Slack-Signature", signature}});
  EXPECT_EQ(changed.status, 401) << changed.body;
  HttpResponse unsigned_request =
      gwtest::Http(gateway_->port(), "POST", "/slack/acme/commands", body,
                   {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(unsigned_request.status, 401) << unsigned_request.body;
  // Another org has no Slack app: its secret is not acme's.
  HttpResponse other_org = gwtest::Http(
      gateway_->port(), "POST", "/slack/globex/commands", body,
      {{"Content-Type", "application/x-www-form-urlencoded"},
       {"X-Slack-Request-Timestamp", seconds},
       {"X-Slack-Signature", signature}});
  EXPECT_EQ(other_org.status, 401) << other_org.body;
  EXPECT_TRUE(AllKudos().empty());
}

TEST_F(SlackCommandTest, UnknownSlackUser_EphemeralSaysToLinkIt) {
  HttpResponse giver = Command("U0NOBODY", "<@U0BOB> 5 #teamwork thanks", "9.9.1");
  ASSERT_EQ(giver.status, 200) << giver.body;
  EXPECT_NE(giver.body.find("\"response_type\":\"ephemeral\""), std::string::npos) << giver.body;
  EXPECT_NE(giver.body.find("Link your Slack user"), std::string::npos) << giver.body;
  EXPECT_NE(giver.body.find("ask an admin"), std::string::npos) << giver.body;
  HttpResponse recipient = Command("U0ALICE", "<@U0GHOST|ghost> 5 #teamwork thanks", "9.9.2");
  ASSERT_EQ(recipient.status, 200) << recipient.body;
  EXPECT_NE(recipient.body.find("ephemeral"), std::string::npos) << recipient.body;
  EXPECT_NE(recipient.body.find("<@U0GHOST|ghost> is not linked"), std::string::npos)
      << recipient.body;
  HttpResponse not_a_person = Command("U0ALICE", "@zed 5 #teamwork thanks", "9.9.3");
  EXPECT_NE(not_a_person.body.find("@zed: 'zed' is not a person of this org"), std::string::npos)
      << not_a_person.body;
  EXPECT_TRUE(AllKudos().empty());
}

TEST_F(SlackCommandTest, BadPointsUnknownValueOrExhaustedAllowance_EphemeralSaysWhatToFix) {
  HttpResponse points = Command("U0ALICE", "<@U0BOB> 500 #teamwork thanks", "8.8.1");
  EXPECT_NE(points.body.find("ephemeral"), std::string::npos) << points.body;
  EXPECT_NE(points.body.find("points: 500 is outside the org's bounds 1..50"), std::string::npos)
      << points.body;
  HttpResponse value = Command("U0ALICE", "<@U0BOB> 5 #synergy thanks", "8.8.2");
  EXPECT_NE(value.body.find("#synergy: 'synergy' is not in the org's values catalog"),
            std::string::npos)
      << value.body;
  HttpResponse no_value = Command("U0ALICE", "<@U0BOB> 5 thanks", "8.8.3");
  EXPECT_NE(no_value.body.find("Name a value with #"), std::string::npos) << no_value.body;
  HttpResponse no_points = Command("U0ALICE", "<@U0BOB> #teamwork thanks", "8.8.4");
  EXPECT_NE(no_points.body.find("Name the points"), std::string::npos) << no_points.body;
  HttpResponse self = Command("U0ALICE", "@alice 5 #teamwork me", "8.8.5");
  EXPECT_NE(self.body.find("@alice: you cannot recognize yourself"), std::string::npos)
      << self.body;
  EXPECT_TRUE(AllKudos().empty());

  // The monthly allowance (100 by default) spent, the next kudos is refused.
  ASSERT_NE(Command("U0ALICE", "<@U0BOB> <@U0CAROL> 50 #teamwork big one", "8.8.6")
                .body.find("in_channel"),
            std::string::npos);
  HttpResponse exhausted = Command("U0ALICE", "@dave 5 #teamwork one more", "8.8.7");
  EXPECT_NE(exhausted.body.find("ephemeral"), std::string::npos) << exhausted.body;
  EXPECT_NE(exhausted.body.find("allowance"), std::string::npos) << exhausted.body;
  EXPECT_EQ(AllKudos().size(), 1u);
}

TEST_F(SlackCommandTest, SettingsAndMappingRpcs_AdminOnlyAndTheSecretNeverReadBack) {
  const std::string member = MintToken(kOrg, "alice");
  EXPECT_EQ(PutMapping(member, "U0EVE", "alice").error_code(), grpc::PERMISSION_DENIED);
  integrations::v1::DeleteUserMappingRequest del;
  del.set_slack_user_id("U0BOB");
  integrations::v1::DeleteUserMappingResponse deleted;
  EXPECT_EQ(slack_->DeleteUserMapping(Context(member).get(), del, &deleted).error_code(),
            grpc::PERMISSION_DENIED);
  integrations::v1::ListUserMappingsRequest list;
  integrations::v1::ListUserMappingsResponse listed;
  EXPECT_EQ(slack_->ListUserMappings(Context(member).get(), list, &listed).error_code(),
            grpc::PERMISSION_DENIED);
  integrations::v1::SetSlackSettingsRequest set;
  set.mutable_settings()->set_signing_secret("mine-now");
  integrations::v1::SetSlackSettingsResponse set_response;
  EXPECT_EQ(slack_->SetSlackSettings(Context(member).get(), set, &set_response).error_code(),
            grpc::PERMISSION_DENIED);
  integrations::v1::GetSlackSettingsRequest get;
  integrations::v1::GetSlackSettingsResponse got;
  EXPECT_EQ(slack_->GetSlackSettings(Context(member).get(), get, &got).error_code(),
            grpc::PERMISSION_DENIED);
  EXPECT_EQ(slack_->GetSlackSettings(Context("not-a-token").get(), get, &got).error_code(),
            grpc::UNAUTHENTICATED);

  // The admin reads the settings without the secret, and the links.
  ASSERT_TRUE(slack_->GetSlackSettings(Context(admin_).get(), get, &got).ok());
  EXPECT_EQ(got.settings().signing_secret(), "");
  EXPECT_TRUE(got.settings().signing_secret_set());
  EXPECT_EQ(got.settings().team_id(), kTeam);
  EXPECT_EQ(got.DebugString().find(kSecret), std::string::npos);
  ASSERT_TRUE(slack_->ListUserMappings(Context(admin_).get(), list, &listed).ok());
  ASSERT_EQ(listed.mappings_size(), 3);
  EXPECT_EQ(listed.mappings(0).slack_user_id(), "U0ALICE");
  EXPECT_EQ(listed.mappings(0).person_id(), "alice");
  // Unlinked, bob's Slack user can no longer give kudos.
  ASSERT_TRUE(slack_->DeleteUserMapping(Context(admin_).get(), del, &deleted).ok());
  EXPECT_TRUE(deleted.deleted());
  HttpResponse unlinked = Command("U0BOB", "<@U0ALICE> 5 #teamwork thanks", "7.7.1");
  EXPECT_NE(unlinked.body.find("Link your Slack user"), std::string::npos) << unlinked.body;
  // Another org's admin sees none of acme's links.
  integrations::v1::ListUserMappingsResponse other;
  ASSERT_TRUE(slack_->ListUserMappings(Context(MintToken("globex", "root", {"admin"})).get(),
                                       list, &other)
                  .ok());
  EXPECT_EQ(other.mappings_size(), 0);
}

// An admin sets the Slack app up through the gateway's JSON routes.
TEST_F(SlackCommandTest, AdminJsonRoutes_ThroughTheGateway) {
  const std::map<std::string, std::string> admin = {{"Authorization", "Bearer " + admin_}};
  HttpResponse linked = gwtest::Http(gateway_->port(), "PUT",
                                     "/v1/integrations/slack/users/U0DAVE", "{\"personId\":\"dave\"}",
                                     admin);
  ASSERT_EQ(linked.status, 200) << linked.body;
  HttpResponse listed = gwtest::Http(gateway_->port(), "GET",
                                     "/v1/integrations/slack/users?page_size=2", "", admin);
  ASSERT_EQ(listed.status, 200) << listed.body;
  EXPECT_NE(listed.body.find("\"slackUserId\":\"U0ALICE\""), std::string::npos) << listed.body;
  EXPECT_NE(listed.body.find("\"nextPageToken\":\"U0BOB\""), std::string::npos) << listed.body;
  HttpResponse set = gwtest::Http(
      gateway_->port(), "PUT", "/v1/integrations/slack/settings",
      absl::StrCat("{\"teamId\":\"", kTeam, "\",\"defaultPoints\":2,\"defaultValueId\":\"teamwork\","
                   "\"responseVisibility\":\"SLACK_RESPONSE_VISIBILITY_EPHEMERAL\"}"),
      admin);
  ASSERT_EQ(set.status, 200) << set.body;
  HttpResponse got = gwtest::Http(gateway_->port(), "GET", "/v1/integrations/slack/settings", "",
                                  admin);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_NE(got.body.find("\"signingSecretSet\":true"), std::string::npos) << got.body;
  EXPECT_EQ(got.body.find(kSecret), std::string::npos) << got.body;
  // The kept secret still verifies; the defaults fill points and value; the
  // answer is only for the giver.
  HttpResponse sent = Command("U0DAVE", "<@U0BOB> thanks for the review", "5.5.1");
  EXPECT_NE(sent.body.find("\"response_type\":\"ephemeral\""), std::string::npos) << sent.body;
  EXPECT_NE(sent.body.find("gave 2 points to <@U0BOB> for #teamwork"), std::string::npos)
      << sent.body;
  std::vector<kudos::v1::Kudos> kudos = AllKudos();
  ASSERT_EQ(kudos.size(), 1u);
  EXPECT_EQ(kudos[0].giver_id(), "dave");
  HttpResponse unlinked = gwtest::Http(gateway_->port(), "DELETE",
                                       "/v1/integrations/slack/users/U0DAVE", "", admin);
  ASSERT_EQ(unlinked.status, 200) << unlinked.body;
  EXPECT_NE(unlinked.body.find("\"deleted\":true"), std::string::npos) << unlinked.body;
  HttpResponse member = gwtest::Http(gateway_->port(), "GET", "/v1/integrations/slack/users", "",
                                     {{"Authorization", "Bearer " + MintToken(kOrg, "alice")}});
  EXPECT_EQ(member.status, 403) << member.body;
}

TEST_F(SlackCommandTest, OtherWorkspaceOrPaths_Refused) {
  std::string body = CommandBody("U0ALICE", "<@U0BOB> 5 #teamwork thanks", "6.6.1");
  body.replace(body.find(kTeam), strlen(kTeam), "T0OTHER");
  HttpResponse other = Post(body, absl::Now());
  EXPECT_NE(other.body.find("not the one linked"), std::string::npos) << other.body;
  HttpResponse unknown_path = gwtest::Http(gateway_->port(), "POST", "/slack/acme/events", "a=1",
                                           {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(unknown_path.status, 404) << unknown_path.body;
  HttpResponse get = gwtest::Http(gateway_->port(), "GET", "/slack/acme/commands");
  EXPECT_EQ(get.status, 405) << get.body;
  EXPECT_TRUE(AllKudos().empty());
}

}  // namespace
