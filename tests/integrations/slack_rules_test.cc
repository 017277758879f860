// The Slack app's pure parts: Slack's request signature, the form body and
// the command text, the retry-stable request id, the error texts; and its
// Redis state (settings without the secret, the bounded user links) against
// a real redis-server.
#include <gtest/gtest.h>

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/redis/redis_client.h"
#include "services/integrations/slack_command.h"
#include "services/integrations/slack_commands.h"
#include "services/integrations/slack_signature.h"
#include "services/integrations/slack_store.h"
#include "services/integrations/slack_user_map.h"
#include "tests/harness/process.h"

namespace integrations {
namespace {

// The worked example of https://api.slack.com/authentication/verifying-requests-from-slack.
constexpr char kDocSecret[] = "8f742231b10e8888abcd99yyyzzz85a5";
constexpr char kDocTimestamp[] = "1531420618";
constexpr char kDocBody[] =
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977008"
    "85554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447"
    "fce8b6703c";
constexpr char kDocSignature[] =
    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

TEST(SlackSignatureTest, MatchesSlacksWorkedExample) {
  EXPECT_EQ(SlackSignature(kDocSecret, kDocTimestamp, kDocBody), kDocSignature);
  const absl::Time then = absl::FromUnixSeconds(1531420618);
  EXPECT_TRUE(VerifySlackSignature(kDocSecret, kDocTimestamp, kDocSignature, kDocBody,
                                   then + absl::Seconds(30))
                  .ok());
}

TEST(SlackSignatureTest, StaleFutureTamperedOrMissingIsUnauthenticated) {
  const absl::Time then = absl::FromUnixSeconds(1531420618);
  auto verify = [&](absl::string_view secret, absl::string_view timestamp,
                    absl::string_view signature, absl::string_view body, absl::Time now) {
    return VerifySlackSignature(secret, timestamp, signature, body, now).code();
  };
  const auto kRefused = absl::StatusCode::kUnauthenticated;
  EXPECT_EQ(verify(kDocSecret, kDocTimestamp, kDocSignature, kDocBody,
                   then + absl::Minutes(5) + absl::Seconds(1)),
            kRefused);
  EXPECT_EQ(verify(kDocSecret, kDocTimestamp, kDocSignature, kDocBody,
                   then - absl::Minutes(5) - absl::Seconds(1)),
            kRefused);
  EXPECT_EQ(verify(kDocSecret, kDocTimestamp, kDocSignature, std::string(kDocBody) + "&x=1", then),
            kRefused);
  EXPECT_EQ(verify("another-secret", kDocTimestamp, kDocSignature, kDocBody, then), kRefused);
  std::string flipped = kDocSignature;
  flipped.back() = flipped.back() == '3' ? '4' : '3';
  EXPECT_EQ(verify(kDocSecret, kDocTimestamp, flipped, kDocBody, then), kRefused);
  EXPECT_EQ(verify(kDocSecret, kDocTimestamp, "v0=ab", kDocBody, then), kRefused);
  EXPECT_EQ(verify(kDocSecret, "", kDocSignature, kDocBody, then), kRefused);
  EXPECT_EQ(verify(kDocSecret, kDocTimestamp, "", kDocBody, then), kRefused);
  EXPECT_EQ(verify(kDocSecret, "1531420618.5", kDocSignature, kDocBody, then), kRefused);
  EXPECT_EQ(verify(kDocSecret, "-1531420618", kDocSignature, kDocBody, then), kRefused);
}

TEST(SlackFormTest, DecodesPairsInOrderAndRefusesBadEscapes) {
  auto form = ParseForm("user_id=U1&text=%3C%40U2%7Cbob%3E+5+%23teamwork+thanks&empty=&flag");
  ASSERT_TRUE(form.ok()) << form.status();
  EXPECT_EQ(FormValue(*form, "user_id"), "U1");
  EXPECT_EQ(FormValue(*form, "text"), "<@U2|bob> 5 #teamwork thanks");
  EXPECT_EQ(FormValue(*form, "empty"), "");
  EXPECT_EQ(FormValue(*form, "missing"), "");
  EXPECT_EQ(form->size(), 4u);
  EXPECT_EQ(ParseForm("text=%zz").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseForm("text=%4").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SlackTextTest, MentionsPointsValuesThenTheMessage) {
  auto command = ParseKudosText("  @bob <@U0CAROL|carol> 5 #teamwork <#C123|empathy> thanks for "
                                "the quick fix #42 @dave ");
  ASSERT_TRUE(command.ok()) << command.status();
  ASSERT_EQ(command->recipients.size(), 2u);
  EXPECT_EQ(command->recipients[0].person_id, "bob");
  EXPECT_EQ(command->recipients[0].slack_user_id, "");
  EXPECT_EQ(command->recipients[0].as_written, "@bob");
  EXPECT_EQ(command->recipients[1].slack_user_id, "U0CAROL");
  EXPECT_EQ(command->recipients[1].as_written, "<@U0CAROL|carol>");
  ASSERT_TRUE(command->points.has_value());
  EXPECT_EQ(*command->points, 5);
  EXPECT_EQ(command->values, (std::vector<std::string>{"teamwork", "empathy"}));
  // What follows the leading tokens is the message, as written.
  EXPECT_EQ(command->message, "thanks for the quick fix #42 @dave");

  auto any_order = ParseKudosText("#teamwork 3 <@U1> merci");
  ASSERT_TRUE(any_order.ok()) << any_order.status();
  EXPECT_EQ(any_order->recipients[0].slack_user_id, "U1");
  EXPECT_EQ(*any_order->points, 3);
  EXPECT_EQ(any_order->message, "merci");

  auto no_points = ParseKudosText("@bob thanks");
  ASSERT_TRUE(no_points.ok());
  EXPECT_FALSE(no_points->points.has_value());
  EXPECT_TRUE(no_points->values.empty());

  auto negative = ParseKudosText("@bob -5 #teamwork thanks");
  ASSERT_TRUE(negative.ok());
  EXPECT_EQ(*negative->points, -5);  // kudos refuses it with the org's bounds
}

TEST(SlackTextTest, MissingRecipientMessageOrHugePointsSaysWhatToFix) {
  auto no_one = ParseKudosText("5 #teamwork thanks");
  EXPECT_EQ(no_one.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_one.status().message().find("recipient"), absl::string_view::npos);
  EXPECT_NE(no_one.status().message().find("/kudos @bob"), absl::string_view::npos);
  auto no_message = ParseKudosText("@bob 5 #teamwork");
  EXPECT_NE(no_message.status().message().find("add a message"), absl::string_view::npos);
  auto huge = ParseKudosText("@bob 99999999999999999999 #teamwork thanks");
  EXPECT_NE(huge.status().message().find("points"), absl::string_view::npos);
  EXPECT_EQ(ParseKudosText("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SlackRequestIdTest, StableForRetriesOfOneCommandDistinctOtherwise) {
  const std::string id = SlackRequestId("T1", "123.456.abc", "body-1");
  EXPECT_EQ(id, SlackRequestId("T1", "123.456.abc", "body-2"));  // a retry: same trigger
  EXPECT_NE(id, SlackRequestId("T1", "123.456.abd", "body-1"));
  EXPECT_NE(id, SlackRequestId("T2", "123.456.abc", "body-1"));
  EXPECT_EQ(SlackRequestId("T1", "", "body-1"), SlackRequestId("T1", "", "body-1"));
  EXPECT_NE(SlackRequestId("T1", "", "body-1"), SlackRequestId("T1", "", "body-2"));
  EXPECT_LE(id.size(), 128u);
  EXPECT_EQ(id.find(' '), std::string::npos);
}

TEST(SlackTextTest, EscapesRoundTripAndErrorsNameWhatTheUserWrote) {
  EXPECT_EQ(SlackUnescape("Tom &amp; Jerry &lt;3 &gt;"), "Tom & Jerry <3 >");
  EXPECT_EQ(SlackEscape("Tom & Jerry <3 >"), "Tom &amp; Jerry &lt;3 &gt;");
  auto command = ParseKudosText("@bob <@U2|carol> 5 #teamwork thanks");
  ASSERT_TRUE(command.ok());
  const std::vector<std::string> values = {"teamwork", "nope"};
  std::string text = SlackErrorText(
      absl::NotFoundError("recipient_ids[1]: 'carl' is not a person of this org"), *command,
      values);
  EXPECT_NE(text.find("<@U2|carol>: 'carl' is not a person"), std::string::npos) << text;
  text = SlackErrorText(
      absl::InvalidArgumentError("values[1]: 'nope' is not in the org's values catalog"),
      *command, values);
  EXPECT_NE(text.find("#nope: 'nope' is not in the org's values catalog"), std::string::npos)
      << text;
  text = SlackErrorText(absl::InvalidArgumentError(
                            "points_per_recipient: 50 is outside the org's bounds 1..10"),
                        *command, values);
  EXPECT_NE(text.find("points: 50 is outside the org's bounds 1..10"), std::string::npos) << text;
  text = SlackErrorText(absl::ResourceExhaustedError("allowance: 95 of 100 points spent"),
                        *command, values);
  EXPECT_NE(text.find("allowance"), std::string::npos) << text;
  text = SlackErrorText(absl::DeadlineExceededError("deadline"), *command, values);
  EXPECT_NE(text.find("may still arrive"), std::string::npos) << text;
}

// ---- Redis state ------------------------------------------------------------

class SlackStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    common::redis::PoolOptions options;
    options.endpoint.port = redis_.port();
    pool_ = std::make_unique<common::redis::Pool>(options);
  }
  harness::RedisServer redis_;
  std::unique_ptr<common::redis::Pool> pool_;
};

TEST_F(SlackStoreTest, SettingsNeverReadBackTheSecretAndAnEmptyOneKeepsIt) {
  SlackStore store(*pool_);
  v1::SlackSettings settings;
  settings.set_signing_secret("s3cr3t");
  settings.set_default_points(3);
  auto stored = store.SetSettings("acme", settings);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->signing_secret(), "");
  EXPECT_TRUE(stored->signing_secret_set());
  EXPECT_EQ(stored->default_points(), 3);
  settings.clear_signing_secret();
  settings.set_default_points(4);
  ASSERT_TRUE(store.SetSettings("acme", settings).ok());
  auto loaded = store.Load("acme");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->signing_secret, "s3cr3t");
  EXPECT_EQ(loaded->settings.signing_secret(), "");
  EXPECT_EQ(loaded->settings.default_points(), 4);
  auto other = store.Load("globex");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->settings.signing_secret_set());
  EXPECT_EQ(other->signing_secret, "");

  v1::SlackSettings bad;
  bad.set_signing_secret("has space");
  EXPECT_EQ(ValidateSlackSettings(bad).code(), absl::StatusCode::kInvalidArgument);
  bad.set_signing_secret(std::string(257, 'a'));
  EXPECT_EQ(ValidateSlackSettings(bad).code(), absl::StatusCode::kInvalidArgument);
  bad.set_signing_secret("ok");
  bad.set_default_points(-1);
  EXPECT_EQ(ValidateSlackSettings(bad).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SlackStoreTest, UserLinks_BoundedPerOrgReplaceableAndListedInOrder) {
  ASSERT_TRUE(PutSlackUserMapping(*pool_, "acme", "U3", "carol", 3).ok());
  ASSERT_TRUE(PutSlackUserMapping(*pool_, "acme", "U1", "alice", 3).ok());
  ASSERT_TRUE(PutSlackUserMapping(*pool_, "acme", "U2", "bob", 3).ok());
  // At the bound: a new Slack user is refused, relinking a known one is not.
  absl::Status full = PutSlackUserMapping(*pool_, "acme", "U4", "dave", 3);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_NE(full.message().find("maximum of 3"), absl::string_view::npos) << full;
  EXPECT_TRUE(PutSlackUserMapping(*pool_, "acme", "U2", "bobby", 3).ok());
  // Another org has its own bound.
  EXPECT_TRUE(PutSlackUserMapping(*pool_, "globex", "U4", "dave", 3).ok());
  EXPECT_EQ(PutSlackUserMapping(*pool_, "acme", "U 5", "x", 3).code(),
            absl::StatusCode::kInvalidArgument);

  auto people = LookupSlackUsers(*pool_, "acme", {"U2", "U9", "U1"});
  ASSERT_TRUE(people.ok());
  EXPECT_EQ((*people)[0], std::optional<std::string>("bobby"));
  EXPECT_FALSE((*people)[1].has_value());
  EXPECT_EQ((*people)[2], std::optional<std::string>("alice"));

  SlackStore store(*pool_);
  auto first = store.ListMappings("acme", 2, "");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->mappings.size(), 2u);
  EXPECT_EQ(first->mappings[0].slack_user_id(), "U1");
  EXPECT_EQ(first->mappings[1].slack_user_id(), "U2");
  ASSERT_FALSE(first->next_page_token.empty());
  auto second = store.ListMappings("acme", 2, first->next_page_token);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->mappings.size(), 1u);
  EXPECT_EQ(second->mappings[0].person_id(), "carol");
  EXPECT_TRUE(second->next_page_token.empty());

  auto deleted = DeleteSlackUserMapping(*pool_, "acme", "U3");
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  auto again = DeleteSlackUserMapping(*pool_, "acme", "U3");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  // Room again after the delete.
  EXPECT_TRUE(PutSlackUserMapping(*pool_, "acme", "U4", "dave", 3).ok());
}

}  // namespace
}  // namespace integrations
