// The social rules as plain functions (issue 18 part 6).
#include "services/kudos/social_rules.h"

#include <gtest/gtest.h>

namespace kudos {
namespace {

TEST(SocialRulesTest, NormalizeEmoji_AcceptsShortCodesColonsAndTheEmojiItself) {
  EXPECT_EQ(*NormalizeEmoji("thumbsup"), "thumbsup");
  EXPECT_EQ(*NormalizeEmoji(":tada:"), "tada");
  EXPECT_EQ(*NormalizeEmoji("\xF0\x9F\x94\xA5"), "fire");
  EXPECT_EQ(*NormalizeEmoji("\xE2\x9D\xA4"), "heart");
  EXPECT_EQ(NormalizeEmoji("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizeEmoji("poop").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AllowedEmojis().size(), 10u);
}

TEST(SocialRulesTest, ValidateText_CountsCodePointsAndRefusesControlCharacters) {
  EXPECT_TRUE(ValidateText("text", std::string(500, 'a'), 500, true).ok());
  EXPECT_EQ(ValidateText("text", std::string(501, 'a'), 500, true).message(),
            "text: 501 characters, at most 500");
  EXPECT_FALSE(ValidateText("text", "", 500, true).ok());
  EXPECT_TRUE(ValidateText("note", "", 500, false).ok());
  EXPECT_FALSE(ValidateText("text", "a\x01" "b", 500, true).ok());
  EXPECT_TRUE(ValidateText("text", "line\nnext", 500, true).ok());
  EXPECT_FALSE(ValidateText("text", "caf\xC3", 500, true).ok());
}

TEST(SocialRulesTest, CanSeeKudos_PrivateOnlyForGiverRecipientsTheirManagersAndAdmins) {
  kudos::v1::Kudos kudos;
  kudos.set_giver_id("alice");
  kudos.add_recipient_ids("bob");
  std::map<std::string, kudos::v1::Person> people;
  people["bob"].set_manager_id("mona");
  EXPECT_TRUE(CanSeeKudos(kudos, "carol", false, people));  // public
  kudos.set_visibility(kudos::v1::KUDOS_VISIBILITY_PRIVATE);
  EXPECT_FALSE(CanSeeKudos(kudos, "carol", false, people));
  EXPECT_FALSE(CanSeeKudos(kudos, "", false, people));
  for (const char* who : {"alice", "bob", "mona"}) EXPECT_TRUE(CanSeeKudos(kudos, who, false, people));
  EXPECT_TRUE(CanSeeKudos(kudos, "root", true, people));
}

TEST(SocialRulesTest, ReversalOf_SwapsAccountsKeepsAmountAndDerivesItsId) {
  ledger::v1::Transfer original;
  original.set_transfer_id("k1:bob");
  original.mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  original.mutable_debit_account()->set_person_id("alice");
  original.mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  original.mutable_credit_account()->set_person_id("bob");
  original.set_amount(5);
  original.set_kind(ledger::v1::TRANSFER_KIND_KUDOS);
  original.set_reference("k1");
  (*original.mutable_tags())["team"] = "ops";
  ledger::v1::Transfer reversal = ReversalOf(original);
  EXPECT_EQ(reversal.transfer_id(), "retract:k1:bob");
  EXPECT_EQ(reversal.transfer_id(), ReversalOf(original).transfer_id());
  EXPECT_EQ(reversal.debit_account().person_id(), "bob");
  EXPECT_EQ(reversal.debit_account().type(), ledger::v1::ACCOUNT_TYPE_EARNED);
  EXPECT_EQ(reversal.credit_account().person_id(), "alice");
  EXPECT_EQ(reversal.credit_account().type(), ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  EXPECT_EQ(reversal.amount(), 5);
  EXPECT_EQ(reversal.kind(), ledger::v1::TRANSFER_KIND_RETRACTION);
  EXPECT_EQ(reversal.reverses_transfer_id(), "k1:bob");
  EXPECT_EQ(reversal.tags().at("team"), "ops");
}

TEST(SocialRulesTest, ReactionSummary_InTheAllowedOrderWithoutEmptyCounts) {
  auto summary = ReactionSummary({{"tada", 2}, {"thumbsup", 1}, {"fire", 0}}, {"tada"});
  ASSERT_EQ(summary.size(), 2u);
  EXPECT_EQ(summary[0].emoji(), "thumbsup");
  EXPECT_FALSE(summary[0].reacted_by_me());
  EXPECT_EQ(summary[1].emoji(), "tada");
  EXPECT_EQ(summary[1].count(), 2);
  EXPECT_TRUE(summary[1].reacted_by_me());
}

}  // namespace
}  // namespace kudos
