// The social rules as plain functions, and the retraction's ledger side
// against a fake ledger (issue 18 part 6).
#include "services/kudos/social_rules.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "services/kudos/social_ledger.h"
#include "tests/kudos/social_fake_ledger.h"

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
  EXPECT_FALSE(ValidateText("text",
                            "a\x01"
                            "b",
                            500, true)
                   .ok());
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
  for (const char* who : {"alice", "bob", "mona"})
    EXPECT_TRUE(CanSeeKudos(kudos, who, false, people));
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

// The retraction's ledger side against a fake ledger (library level).
namespace kudos {
namespace {

using social_test::FakeLedger;
using social_test::Posted;

TEST(SocialLedgerTest, FindKudosTransfers_KeepsTheKudosAndBoostsAndStopsAtItsCreateTime) {
  const absl::Time sent = absl::FromUnixSeconds(1800000000);
  FakeLedger ledger;
  ledger.accounts["bob"] = {
      Posted("b2:bob", "k1", ledger::v1::TRANSFER_KIND_BOOST, "bob", sent + absl::Hours(2)),
      Posted("k9:bob", "k9", ledger::v1::TRANSFER_KIND_KUDOS, "bob", sent + absl::Hours(1)),
      Posted("k1:bob", "k1", ledger::v1::TRANSFER_KIND_KUDOS, "bob", sent),
      Posted("k0:bob", "k0", ledger::v1::TRANSFER_KIND_KUDOS, "bob", sent - absl::Hours(48)),
      Posted("old:bob", "k1", ledger::v1::TRANSFER_KIND_KUDOS, "bob", sent - absl::Hours(49)),
  };
  TransferSearch search;
  search.page_size = 2;
  absl::StatusOr<std::vector<ledger::v1::Transfer>> found =
      FindKudosTransfers(ledger, "acme", "k1", {"bob"}, sent, search);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0].transfer_id(), "b2:bob");
  EXPECT_EQ((*found)[1].transfer_id(), "k1:bob");
  EXPECT_EQ(ledger.list_calls, 2);  // stopped at k0, older than the kudos
}

TEST(SocialLedgerTest, FindKudosTransfers_PastThePageBoundIsFailedPrecondition) {
  const absl::Time sent = absl::FromUnixSeconds(1800000000);
  FakeLedger ledger;
  for (int i = 0; i < 7; ++i) {
    ledger.accounts["bob"].push_back(Posted("x" + std::to_string(i) + ":bob", "other",
                                            ledger::v1::TRANSFER_KIND_KUDOS, "bob",
                                            sent + absl::Hours(10 - i)));
  }
  TransferSearch search;
  search.page_size = 2;
  search.max_pages = 3;
  absl::StatusOr<std::vector<ledger::v1::Transfer>> found =
      FindKudosTransfers(ledger, "acme", "k1", {"bob"}, sent, search);
  EXPECT_EQ(found.status().code(), absl::StatusCode::kFailedPrecondition) << found.status();
  EXPECT_EQ(ledger.list_calls, 3);
}

TEST(SocialLedgerTest, PostReversals_LinkedCallsOfAtMostOneHundred) {
  FakeLedger ledger;
  std::vector<ledger::v1::Transfer> originals;
  for (int i = 0; i < 250; ++i) {
    originals.push_back(Posted("b" + std::to_string(i) + ":bob", "k1",
                               ledger::v1::TRANSFER_KIND_BOOST, "bob", absl::Now()));
  }
  ASSERT_TRUE(PostReversals(ledger, "acme", originals).ok());
  ASSERT_EQ(ledger.posts.size(), 3u);
  EXPECT_EQ(ledger.posts[0].transfers_size(), 100);
  EXPECT_EQ(ledger.posts[2].transfers_size(), 50);
  for (const auto& post : ledger.posts) EXPECT_TRUE(post.linked());
  EXPECT_EQ(ledger.posts[0].transfers(0).transfer_id(), "retract:b0:bob");
  EXPECT_EQ(ledger.posts[0].transfers(0).reverses_transfer_id(), "b0:bob");
}

}  // namespace
}  // namespace kudos
