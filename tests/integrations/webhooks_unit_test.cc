// The webhooks area's pure parts: the Standard Webhooks signature against
// the scheme's published example, the backoff, URL rules and the events'
// JSON and Slack bodies.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "feedback/v1/feedback.pb.h"
#include "kudos/v1/kudos.pb.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "services/integrations/webhooks_dispatcher.h"
#include "services/integrations/webhooks_events.h"
#include "services/integrations/webhooks_http.h"
#include "services/integrations/webhooks_service.h"
#include "services/integrations/webhooks_signature.h"
#include "tests/integrations/webhooks_receiver.h"

namespace integrations::webhooks {
namespace {

TEST(WebhookSignature, MatchesTheStandardWebhooksExample) {
  // From the Standard Webhooks specification's reference libraries.
  absl::StatusOr<std::string> signature =
      Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
           R"({"test": 2432232314})");
  ASSERT_TRUE(signature.ok());
  EXPECT_EQ(*signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // The test receiver's independent check agrees.
  EXPECT_EQ(webhooks_test::ExpectedSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                             "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                             R"({"test": 2432232314})"),
            *signature);
  EXPECT_EQ(Sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "id", 1, "{}").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(WebhookSignature, NewSecretsAreDistinctWhsecKeysOf32Bytes) {
  absl::StatusOr<std::string> a = NewSigningSecret();
  absl::StatusOr<std::string> b = NewSigningSecret();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(absl::StartsWith(*a, "whsec_"));
  EXPECT_EQ(a->size(), 6u + 44u);  // base64 of 32 bytes
}

TEST(WebhookBackoff, FullJitterUnderADoublingCeilingThatIsCapped) {
  const absl::Duration base = absl::Seconds(1), max = absl::Hours(1);
  EXPECT_EQ(Dispatcher::Backoff(1, base, max, 1.0), absl::Seconds(1));
  EXPECT_EQ(Dispatcher::Backoff(2, base, max, 1.0), absl::Seconds(2));
  EXPECT_EQ(Dispatcher::Backoff(5, base, max, 1.0), absl::Seconds(16));
  EXPECT_EQ(Dispatcher::Backoff(5, base, max, 0.5), absl::Seconds(8));
  EXPECT_EQ(Dispatcher::Backoff(40, base, max, 1.0), absl::Hours(1));
  EXPECT_EQ(Dispatcher::Backoff(1000000, base, max, 1.0), absl::Hours(1));
  // Never zero: a retry never spins.
  EXPECT_EQ(Dispatcher::Backoff(3, base, max, 0.0), absl::Milliseconds(1));
}

TEST(WebhookUrl, PrivateIpLiteralsAreRefusedUnlessAllowed) {
  for (const char* url : {"https://10.0.0.5:8443/", "https://127.0.0.1/x", "https://172.16.0.1/",
                          "https://192.168.1.1/", "https://100.64.0.1/", "https://169.254.169.254/",
                          "https://0.0.0.0/", "https://224.0.0.1/", "https://[::1]:8443/",
                          "https://[fe80::1]/", "https://[fd00::1]/", "https://[::]/",
                          "https://[ff02::1]/", "https://[::ffff:10.0.0.5]/"}) {
    absl::Status refused = CheckUrlHost(url, /*allow_private_addresses=*/false);
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_TRUE(absl::StrContains(refused.message(), "private")) << url << ": " << refused;
    EXPECT_TRUE(CheckUrlHost(url, /*allow_private_addresses=*/true).ok()) << url;
  }
  // Public literals and names pass here; names are checked when curl connects.
  EXPECT_TRUE(CheckUrlHost("https://8.8.8.8/x", false).ok());
  EXPECT_TRUE(CheckUrlHost("https://172.32.0.1/", false).ok());
  EXPECT_TRUE(CheckUrlHost("https://[2001:db8::1]:443/", false).ok());
  EXPECT_TRUE(CheckUrlHost("https://hooks.example/x", false).ok());
}

TEST(WebhookHttp, LoopbackReceiver_IsNotContactedWhenPrivateAddressesAreRefused) {
  webhooks_test::Receiver receiver;
  HttpSender sender;
  // "localhost" is a name: only the connect-time check can refuse it.
  std::string url = receiver.Url();
  url.replace(url.find("127.0.0.1"), 9, "localhost");
  for (bool allow_private : {false, true}) {
    HttpPost post;
    post.url = url;
    post.body = "{}";
    post.allow_http = true;
    post.allow_private_addresses = allow_private;
    post.timeout = std::chrono::milliseconds(30000);
    ASSERT_TRUE(sender.Start(std::move(post)).ok());
    std::vector<HttpResult> results;
    for (int round = 0; round < 600 && results.empty(); ++round) {
      results = sender.Poll(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(results.size(), 1u);
    if (allow_private) {
      EXPECT_TRUE(results[0].ok) << results[0].error;
      EXPECT_EQ(receiver.Count(), 1u);
    } else {
      EXPECT_FALSE(results[0].ok);
      EXPECT_EQ(results[0].http_status, 0);
      EXPECT_EQ(results[0].error, "address not allowed");
      EXPECT_EQ(receiver.Count(), 0u);
    }
  }
}

TEST(WebhookUrl, HttpsOnlyUnlessDevelopment) {
  EXPECT_TRUE(CheckUrl("https://hooks.example/x?y=1", false, 2048).ok());
  EXPECT_FALSE(CheckUrl("http://hooks.example/x", false, 2048).ok());
  EXPECT_TRUE(CheckUrl("http://127.0.0.1:8080/x", true, 2048).ok());
  EXPECT_FALSE(CheckUrl("https://hooks.example/a b", false, 2048).ok());
  EXPECT_FALSE(CheckUrl("https:///path", false, 2048).ok());
  EXPECT_FALSE(CheckUrl("https://a@b/", false, 2048).ok());
  EXPECT_FALSE(CheckUrl("https://hooks.example/" + std::string(2048, 'x'), false, 2048).ok());
  EXPECT_FALSE(CheckUrl("", false, 2048).ok());
}

TEST(WebhookEvents, KudosSentBecomesOneEventWithAStableIdAndBothBodies) {
  kudos::v1::KudosEvent event;
  event.set_org_id("acme");
  event.mutable_event_time()->set_seconds(1764400000);
  kudos::v1::Kudos* kudos = event.mutable_kudos_sent()->mutable_kudos();
  kudos->set_kudos_id("k1");
  kudos->set_giver_id("alice");
  kudos->add_recipient_ids("bob");
  kudos->set_message("a \"quoted\" <thanks>");
  kudos->add_values("teamwork");
  kudos->set_points_per_recipient(5);
  StreamEntry entry{"1764400000123-0", {{"event", event.SerializeAsString()}}};
  std::vector<OutboundEvent> out;
  ASSERT_TRUE(Translate(Source::kKudos, "acme", entry, out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, "evt_kudos_1764400000123-0");
  EXPECT_EQ(out[0].type, "kudos.sent");
  EXPECT_EQ(out[0].created_ms, 1764400000000);
  EXPECT_TRUE(absl::StartsWith(out[0].json_body,
                               R"({"id":"evt_kudos_1764400000123-0","type":"kudos.sent","org":"acme","created_at":"2025-11-29T07:06:40.000Z","data":{)"))
      << out[0].json_body;
  EXPECT_TRUE(absl::StrContains(out[0].json_body, R"("message":"a \"quoted\" \u003cthanks\u003e")") ||
              absl::StrContains(out[0].json_body, R"("message":"a \"quoted\" <thanks>")"))
      << out[0].json_body;
  EXPECT_EQ(out[0].slack_body,
            R"({"text":"alice gave 5 points to bob: a \"quoted\" &lt;thanks&gt; #teamwork"})");

  // A person change carries no webhook; a broken entry is DATA_LOSS, not a crash.
  kudos::v1::KudosEvent person;
  person.mutable_person_changed()->mutable_person()->set_person_id("bob");
  out.clear();
  ASSERT_TRUE(Translate(Source::kKudos, "acme", {"1-0", {{"event", person.SerializeAsString()}}}, out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(Translate(Source::kKudos, "acme", {"1-1", {{"event", "\xff\xff"}}}, out).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(Translate(Source::kKudos, "acme", {"1-2", {}}, out).code(), absl::StatusCode::kDataLoss);
}

// Issue 18: a private kudos and its boosts are for the people in it only.
TEST(WebhookEvents, PrivateKudosAndItsBoostsBecomeNoEvent) {
  kudos::v1::KudosEvent sent;
  kudos::v1::Kudos* kudos = sent.mutable_kudos_sent()->mutable_kudos();
  kudos->set_kudos_id("k1");
  kudos->set_giver_id("alice");
  kudos->add_recipient_ids("bob");
  kudos->set_visibility(kudos::v1::KUDOS_VISIBILITY_PRIVATE);
  kudos::v1::KudosEvent boosted;
  boosted.mutable_kudos_boosted()->set_kudos_id("k1");
  boosted.mutable_kudos_boosted()->add_recipient_ids("bob");
  boosted.mutable_kudos_boosted()->set_visibility(kudos::v1::KUDOS_VISIBILITY_PRIVATE);
  std::vector<OutboundEvent> out;
  ASSERT_TRUE(Translate(Source::kKudos, "acme", {"1-0", {{"event", sent.SerializeAsString()}}}, out).ok());
  ASSERT_TRUE(
      Translate(Source::kKudos, "acme", {"1-1", {{"event", boosted.SerializeAsString()}}}, out).ok());
  EXPECT_TRUE(out.empty());
  // The same kudos made public is one event each.
  kudos->set_visibility(kudos::v1::KUDOS_VISIBILITY_PUBLIC);
  boosted.mutable_kudos_boosted()->set_visibility(kudos::v1::KUDOS_VISIBILITY_PUBLIC);
  ASSERT_TRUE(Translate(Source::kKudos, "acme", {"1-2", {{"event", sent.SerializeAsString()}}}, out).ok());
  ASSERT_TRUE(
      Translate(Source::kKudos, "acme", {"1-3", {{"event", boosted.SerializeAsString()}}}, out).ok());
  EXPECT_EQ(out.size(), 2u);
}

TEST(WebhookEvents, CompanyKudosIsAnnouncedAsFromTheCompany) {
  kudos::v1::KudosEvent sent;
  kudos::v1::Kudos* kudos = sent.mutable_kudos_sent()->mutable_kudos();
  kudos->set_kudos_id("k1");
  kudos->set_from_company(true);
  kudos->add_recipient_ids("ana");
  kudos->set_points_per_recipient(10);
  kudos->set_message("Happy birthday, Ana!");
  std::vector<OutboundEvent> out;
  ASSERT_TRUE(Translate(Source::kKudos, "acme", {"1-0", {{"event", sent.SerializeAsString()}}}, out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, "kudos.sent");
  EXPECT_TRUE(absl::StrContains(out[0].slack_body, "The company gave 10 points to ana"))
      << out[0].slack_body;
}

TEST(WebhookEvents, InvitationsAndLeaderboardEventsBecomeTheirTypes) {
  feedback::v1::Invitation invitation;
  invitation.set_invitation_id("inv1");
  invitation.set_person_id("carol");
  invitation.set_team_display_name("Platform");
  invitation.set_period("2026-W48");
  std::vector<OutboundEvent> out;
  ASSERT_TRUE(Translate(Source::kFeedback, "acme",
                        {"1764400000000-3", {{"invitation", invitation.SerializeAsString()}}}, out)
                  .ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, "evt_feedback_1764400000000-3");
  EXPECT_EQ(out[0].type, "survey.invitation");
  EXPECT_EQ(out[0].created_ms, 1764400000000);
  EXPECT_TRUE(absl::StrContains(out[0].json_body, R"("invitation_id":"inv1")")) << out[0].json_body;

  leaderboard::v1::LeaderboardEvent streak;
  streak.set_event_id("streak.extended/giving/alice/2026-11-27");
  streak.mutable_streak_extended()->set_person_id("alice");
  streak.mutable_streak_extended()->set_length_days(3);
  leaderboard::v1::LeaderboardEvent closed;
  closed.set_event_id("period.closed/points_received/week/2026-W47/org");
  closed.mutable_period_closed()->set_period("2026-W47");
  auto* first = closed.mutable_period_closed()->add_entries();
  first->set_rank(1);
  first->set_subject_id("bob");
  first->set_score(40);
  out.clear();
  ASSERT_TRUE(Translate(Source::kLeaderboard, "acme", {"5-0", {{"event", streak.SerializeAsString()}}}, out).ok());
  ASSERT_TRUE(Translate(Source::kLeaderboard, "acme", {"6-0", {{"event", closed.SerializeAsString()}}}, out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].type, "streak.extended");
  EXPECT_EQ(out[0].id, "evt_lb_streak.extended/giving/alice/2026-11-27");
  EXPECT_EQ(out[0].slack_body, R"({"text":"alice is on a 3-day streak"})");
  EXPECT_EQ(out[1].type, "period.closed");
  EXPECT_EQ(out[1].slack_body, R"js({"text":"Period 2026-W47 closed: 1. bob (40)"})js");
  EXPECT_TRUE(absl::StrContains(out[1].json_body, R"("subject_id":"bob")")) << out[1].json_body;
}

TEST(WebhookEvents, EveryTypeComesFromOneOfTheOrgsStreams) {
  for (const auto& [type, source] : EventTypes()) {
    EXPECT_TRUE(CheckEventType(type).ok()) << type;
    Source back;
    EXPECT_TRUE(SourceOfStream("acme", StreamKey(source, "acme"), &back));
    EXPECT_EQ(back, source);
    EXPECT_TRUE(absl::StrContains(StreamKey(source, "acme"), "{acme}"));
  }
  EXPECT_FALSE(CheckEventType("redemption.cancelled").ok());
}

}  // namespace
}  // namespace integrations::webhooks
