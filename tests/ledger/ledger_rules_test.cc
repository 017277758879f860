#include "services/ledger/ledger_rules.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "services/ledger/ledger_keys.h"

namespace ledger {
namespace {

using ::ledger::v1::LedgerEvent;

Transfer Kudos(const std::string& id, const std::string& from, const std::string& to,
               int64_t amount) {
  Transfer t;
  t.set_transfer_id(id);
  *t.mutable_debit_account() = PersonAccount(ledger::v1::ACCOUNT_TYPE_ALLOWANCE, from);
  *t.mutable_credit_account() = PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, to);
  t.set_amount(amount);
  t.set_kind(ledger::v1::TRANSFER_KIND_KUDOS);
  t.set_reference("kudos-1");
  (*t.mutable_tags())["giver"] = from;
  (*t.mutable_tags())["values"] = "teamwork,empathy";
  return t;
}

void ExpectInvalid(const Transfer& t, const std::string& message_part) {
  absl::Status s = ValidatePostedTransfer(t, "transfers[1]");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), message_part)) << s.message();
}

TEST(LedgerRules, ValidTransferPasses) {
  EXPECT_TRUE(ValidatePostedTransfer(Kudos("k1", "alice", "bob", 5), "transfers[0]").ok());
}

TEST(LedgerRules, ValidationMessagesNameTheField) {
  Transfer t = Kudos("k1", "alice", "bob", 5);
  t.set_kind(ledger::v1::TRANSFER_KIND_ADJUSTMENT);
  ExpectInvalid(t, "transfers[1].kind: only KUDOS and BOOST may be posted");

  t = Kudos("k1", "alice", "alice", 5);
  ExpectInvalid(t, "transfers[1].credit_account.person_id: 'alice' cannot receive");

  t = Kudos("k1", "alice", "bob", 0);
  ExpectInvalid(t, "transfers[1].amount: must be in 1..1000000000000, got 0");
  t.set_amount(kMaxAmount + 1);
  ExpectInvalid(t, "transfers[1].amount");

  t = Kudos("", "alice", "bob", 5);
  ExpectInvalid(t, "transfers[1].transfer_id: is required");
  t = Kudos(std::string(129, 'x'), "alice", "bob", 5);
  ExpectInvalid(t, "transfers[1].transfer_id: at most 128 characters");
  t = Kudos("bad\tid", "alice", "bob", 5);
  ExpectInvalid(t, "transfers[1].transfer_id: must be printable ASCII");
  t = Kudos("adjustment:x", "alice", "bob", 5);
  ExpectInvalid(t, "reserved");

  t = Kudos("k1", "alice", "bob", 5);
  t.mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ISSUER);
  ExpectInvalid(t, "transfers[1].debit_account.type: must be ALLOWANCE");
  t = Kudos("k1", "alice", "bob", 5);
  t.mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_REWARDS);
  ExpectInvalid(t, "transfers[1].credit_account.type: must be EARNED");
  t = Kudos("k1", "", "bob", 5);
  ExpectInvalid(t, "transfers[1].debit_account.person_id: is required");

  t = Kudos("k1", "alice", "bob", 5);
  for (int i = 0; i < 17; ++i) (*t.mutable_tags())["t" + std::to_string(i)] = "v";
  ExpectInvalid(t, "transfers[1].tags: at most 16 tags");
  t = Kudos("k1", "alice", "bob", 5);
  (*t.mutable_tags())["team"] = std::string(257, 'x');
  ExpectInvalid(t, "transfers[1].tags['team']");
}

TEST(LedgerRules, RequestShapeLimitsTransferCount) {
  EXPECT_TRUE(ValidatePostRequestShape(1).ok());
  EXPECT_TRUE(ValidatePostRequestShape(100).ok());
  EXPECT_EQ(ValidatePostRequestShape(0).code(), absl::StatusCode::kInvalidArgument);
  absl::Status s = ValidatePostRequestShape(101);
  EXPECT_EQ(s.message(), "transfers: at most 100 per call, got 101");
}

TEST(LedgerRules, FingerprintIgnoresIdTimeSequenceAndTagOrder) {
  Transfer a = Kudos("k1", "alice", "bob", 5);
  Transfer b = Kudos("other-id", "alice", "bob", 5);
  b.set_sequence(42);
  b.mutable_post_time()->set_seconds(1234);
  b.mutable_tags()->clear();
  (*b.mutable_tags())["values"] = "teamwork,empathy";
  (*b.mutable_tags())["giver"] = "alice";
  EXPECT_EQ(Fingerprint(a), Fingerprint(b));
  EXPECT_EQ(Fingerprint(a).size(), 64u);
}

TEST(LedgerRules, FingerprintChangesWithEveryPayloadField) {
  const Transfer base = Kudos("k1", "alice", "bob", 5);
  std::vector<Transfer> variants(6, base);
  variants[0].mutable_debit_account()->set_person_id("carol");
  variants[1].mutable_credit_account()->set_person_id("carol");
  variants[2].set_amount(6);
  variants[3].set_kind(ledger::v1::TRANSFER_KIND_BOOST);
  variants[4].set_reference("kudos-2");
  (*variants[5].mutable_tags())["team"] = "";
  for (const Transfer& v : variants) EXPECT_NE(Fingerprint(base), Fingerprint(v));
  // Length prefixes keep field boundaries apart.
  Transfer x = base, y = base;
  x.set_reference("ab");
  (*x.mutable_tags()).clear();
  y.set_reference("a");
  (*y.mutable_tags()).clear();
  (*y.mutable_tags())["b"] = "";
  EXPECT_NE(Fingerprint(x), Fingerprint(y));
}

TEST(LedgerRules, ConflictMessageNamesFieldAndDifference) {
  Transfer posted = Kudos("k1", "alice", "bob", 5);
  Transfer now = Kudos("k1", "alice", "bob", 7);
  EXPECT_EQ(ConflictMessage("transfers[2]", posted, now),
            "transfers[2]: transfer_id 'k1' was already posted with a different payload "
            "(amount: posted 5, now 7)");
  now = Kudos("k1", "alice", "carol", 5);
  EXPECT_EQ(DescribeDifference(posted, now), "credit_account: posted earned:bob, now earned:carol");
}

TEST(LedgerRules, EventFragmentsConcatenatedWithHeaderMergeIntoOneEvent) {
  absl::Time now = absl::FromUnixMillis(1795000000123);
  Transfer t1 = Kudos("k1", "alice", "bob", 5);
  Transfer t2 = Kudos("k2", "alice", "carol", 7);
  SetTimestamp(t1.mutable_post_time(), now);
  SetTimestamp(t2.mutable_post_time(), now);
  std::string full1 = AppendSequence(t1.SerializeAsString(), 1);
  std::string full2 = AppendSequence(t2.SerializeAsString(), 300);  // 2-byte varint

  std::string bytes = EventHeader("acme", now) + EventFragment(full1) + EventFragment(full2);
  LedgerEvent event;
  ASSERT_TRUE(event.ParseFromString(bytes));
  ASSERT_TRUE(event.has_transfers_posted());
  const auto& posted = event.transfers_posted();
  EXPECT_EQ(posted.org_id(), "acme");
  EXPECT_EQ(FromTimestamp(posted.post_time()), now);
  ASSERT_EQ(posted.transfers_size(), 2);
  t1.set_sequence(1);
  t2.set_sequence(300);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(posted.transfers(0), t1));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(posted.transfers(1), t2));

  // A fragment is exactly LedgerEvent{transfers_posted{transfers:[t]}}.
  LedgerEvent single;
  *single.mutable_transfers_posted()->add_transfers() = t2;
  LedgerEvent parsed;
  ASSERT_TRUE(parsed.ParseFromString(EventFragment(full2)));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, single));
}

TEST(LedgerRules, AppendSequenceSetsTheSequence) {
  Transfer t = Kudos("k1", "alice", "bob", 5);
  for (int64_t seq : {1LL, 127LL, 128LL, 16384LL, (1LL << 53) - 1}) {
    Transfer parsed;
    ASSERT_TRUE(parsed.ParseFromString(AppendSequence(t.SerializeAsString(), seq)));
    EXPECT_EQ(parsed.sequence(), seq);
    EXPECT_EQ(parsed.amount(), 5);
  }
}

TEST(LedgerRules, PageTokenRoundTripsAndRejectsGarbage) {
  std::string token = EncodePageToken(42, "earned:bob");
  EXPECT_EQ(*DecodePageToken(token, "earned:bob"), 42);
  EXPECT_EQ(DecodePageToken(token, "earned:carol").status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const char* bad : {"!!!", "djE=", "abc", "djF8eHx5"}) {
    absl::StatusOr<int64_t> decoded = DecodePageToken(bad, "earned:bob");
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  // A well-formed token for a key no account has is refused by its length
  // alone, like the kudos and leaderboard tokens.
  std::string huge_key(2000, 'k');
  EXPECT_EQ(DecodePageToken(EncodePageToken(7, huge_key), huge_key).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*NormalizePageSize(0), 50);
  EXPECT_EQ(*NormalizePageSize(500), 500);
  EXPECT_EQ(NormalizePageSize(501).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizePageSize(-1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LedgerRules, AllowancePeriodFollowsPolicyZone) {
  AllowancePolicy policy = DefaultPolicy();
  EXPECT_EQ(policy.points_per_period(), 100);
  // 2026-11-30 23:30 UTC is already December in Paris.
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 11, 30, 23, 30, 0), absl::UTCTimeZone());
  EXPECT_EQ(AllowancePeriodAt(policy, t)->key, "2026-11");
  policy.set_time_zone("Europe/Paris");
  EXPECT_EQ(AllowancePeriodAt(policy, t)->key, "2026-12");
  policy.set_period(common::v1::ALLOWANCE_PERIOD_WEEK);
  EXPECT_EQ(AllowancePeriodAt(policy, t)->key, "2026-W49");
}

TEST(LedgerRules, NormalizePolicyFillsDefaultsAndRejectsBadValues) {
  AllowancePolicy policy;
  policy.set_points_per_period(50);
  absl::StatusOr<AllowancePolicy> normalized = NormalizePolicy(policy);
  ASSERT_TRUE(normalized.ok());
  EXPECT_EQ(normalized->period(), common::v1::ALLOWANCE_PERIOD_MONTH);
  EXPECT_EQ(normalized->week_start(), common::v1::DAY_OF_WEEK_MONDAY);
  policy.set_time_zone("Mars/Olympus");
  EXPECT_TRUE(absl::StartsWith(NormalizePolicy(policy).status().message(), "policy.time_zone"));
  policy.set_time_zone("");
  policy.set_points_per_period(-1);
  EXPECT_TRUE(absl::StartsWith(NormalizePolicy(policy).status().message(),
                               "policy.points_per_period"));
}

TEST(LedgerRules, AllowanceExhaustedMessageNamesPersonNumbersAndPeriod) {
  EXPECT_EQ(AllowanceExhaustedMessage("alice", 80, 100, "2026-11"),
            "allowance: 'alice' has 20 of 100 points left in period 2026-11");
  EXPECT_EQ(AllowanceExhaustedMessage("alice", 120, 100, "2026-11"),
            "allowance: 'alice' has 0 of 100 points left in period 2026-11");
}

TEST(LedgerRules, AccountKeysRoundTrip) {
  for (const Account& a :
       {PersonAccount(ledger::v1::ACCOUNT_TYPE_ALLOWANCE, "alice"),
        PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, "a:b"),
        OrgAccount(ledger::v1::ACCOUNT_TYPE_ISSUER), OrgAccount(ledger::v1::ACCOUNT_TYPE_REWARDS)}) {
    absl::StatusOr<Account> parsed = ParseAccountKey(AccountKey(a));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed->SerializeAsString(), a.SerializeAsString());
  }
  EXPECT_FALSE(ParseAccountKey("earned:").ok());
  EXPECT_EQ(ValidateAccount(OrgAccount(ledger::v1::ACCOUNT_TYPE_UNSPECIFIED), "account").message(),
            "account.type: is required");
}

TEST(LedgerRules, VerifierFindsDifferencesAndNegativeEarned) {
  Verifier verifier;
  verifier.Add({"allowance:alice", "earned:bob", 5, "k1"});
  verifier.Add({"earned:bob", "rewards", 3, "r1"});
  ledger::v1::VerifyLedgerResponse ok =
      verifier.Finish({{"allowance:alice", -5}, {"earned:bob", 2}, {"rewards", 3}});
  EXPECT_TRUE(ok.consistent());
  EXPECT_EQ(ok.transfer_count(), 2);
  EXPECT_EQ(ok.sum_of_balances(), 0);

  ledger::v1::VerifyLedgerResponse bad =
      verifier.Finish({{"allowance:alice", -5}, {"earned:bob", -1}, {"rewards", 3}});
  EXPECT_FALSE(bad.consistent());
  EXPECT_EQ(bad.sum_of_balances(), -3);
  ASSERT_EQ(bad.differences_size(), 1);
  EXPECT_EQ(bad.differences(0).account().person_id(), "bob");
  EXPECT_EQ(bad.differences(0).stored_balance(), -1);
  EXPECT_EQ(bad.differences(0).recomputed_balance(), 2);
  ASSERT_EQ(bad.negative_earned_accounts_size(), 1);
}

// Stored transfers are fields of the bucket this names (lib.lua tx_bucket
// computes the same in Lua): pinned, since a change would hide every stored
// transfer from its reads.
TEST(LedgerRules, TransferBucket_IsStableBoundedAndSpreadsKudosTransferIds) {
  EXPECT_EQ(ledger::keys::TransferBucket("k9e52453204650e31011fed9a:bob"), 1);
  EXPECT_EQ(ledger::keys::TransferBucket("adjustment:r1"), 19);
  EXPECT_EQ(ledger::keys::TransferBucket("celebration:birthday:2026:ana"), 32);
  EXPECT_EQ(ledger::keys::TransferBucketKey("acme", "adjustment:r1"), "ledger:{acme}:txb:19");
  std::set<int> used;
  for (int i = 0; i < 640; ++i) {
    const int bucket = ledger::keys::TransferBucket(absl::StrFormat("k%024x:p%d", i * 7919, i % 7));
    ASSERT_GE(bucket, 0);
    ASSERT_LT(bucket, ledger::keys::kTransferBuckets);
    used.insert(bucket);
  }
  EXPECT_EQ(used.size(), static_cast<size_t>(ledger::keys::kTransferBuckets));
}

TEST(LedgerRules, JournalEntriesRoundTrip) {
  JournalEntry e{"earned:bob", "issuer", 12, "adjustment:r 1"};
  absl::StatusOr<JournalEntry> parsed = ParseJournalEntry(FormatJournalEntry(e));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->transfer_id, "adjustment:r 1");
  EXPECT_EQ(parsed->amount, 12);
  EXPECT_FALSE(ParseJournalEntry("a\tb\tx\tid").ok());
}

// Issue 15 (memory): a kudos transfer's id ('k' + 24 lower-case hex digits
// + ':' + the recipient) is packed where the indexes and the journal name it;
// every other id is itself, and lines written with ids parse the same.
TEST(LedgerRules, IndexMember_PacksKudosTransferIdsAndJournalLinesReadBothForms) {
  const std::string id = "k0123456789abcdef09090909:p42";  // 0x09 bytes: tabs once packed
  const std::string member = IndexMember(id);
  EXPECT_EQ(member, std::string("\x01\x01\x23\x45\x67\x89\xab\xcd\xef\x09\x09\x09\x09p42", 16));
  EXPECT_EQ(TransferIdOfIndexMember(member), id);
  JournalEntry e{"allowance:g", "earned:p42", 3, id};
  const std::string line = FormatJournalEntry(e);
  EXPECT_EQ(line, "\x02g\x03p42\t3\t" + member);
  // The forms written before: whole account names, the member packed or the id.
  for (const std::string& form : {line, std::string("allowance:g\tearned:p42\t3\t") + member,
                                  std::string("allowance:g\tearned:p42\t3\t") + id}) {
    absl::StatusOr<JournalEntry> parsed = ParseJournalEntry(form);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->transfer_id, id);
    EXPECT_EQ(parsed->debit, "allowance:g");
    EXPECT_EQ(parsed->credit, "earned:p42");
    EXPECT_EQ(parsed->amount, 3);
  }
  for (const char* other :
       {"kd_00ff:p1", "k0123456789ABCDEF01234567:p1", "k0123456789abcdef01234567:",
        "k0123456789abcdef01234567", "k0123456789abcdef0123456:p1", "adjustment:r1",
        "celebration:birthday:2026:ana"}) {
    EXPECT_EQ(IndexMember(other), other);
    EXPECT_EQ(TransferIdOfIndexMember(other), other);
  }
}

// Issue 15 (memory): a line between two allowance or earned accounts (every
// kudos, boost and retraction transfer) names them by a byte each; any other
// pair, or a person id with a control byte, keeps the whole names. A version
// before refuses a short line (it splits it into three fields, not four).
TEST(LedgerRules, JournalEntries_ShortAccountNamesOnlyBetweenPeopleAndEveryFormReadsBack) {
  const JournalEntry reversal{"earned:bob", "allowance:ann", 7, "retract:k1"};
  EXPECT_EQ(FormatJournalEntry(reversal), "\x03" "bob\x02" "ann\t7\tretract:k1");
  const JournalEntry whole_names[] = {{"issuer", "earned:bob", 5, "adjustment:a"},
                                      {"allowance:ann", "rewards", 5, "rdm:r1"},
                                      {"allowance:a\tb", "earned:bob", 5, "odd"},
                                      {"allowance:a\x03" "b", "earned:bob", 5, "odd"}};
  for (const JournalEntry& e : whole_names) {
    EXPECT_EQ(FormatJournalEntry(e), absl::StrCat(e.debit, "\t", e.credit, "\t", e.amount, "\t",
                                                  IndexMember(e.transfer_id)));
  }
  for (const JournalEntry& e : {reversal, whole_names[0], whole_names[1], whole_names[3]}) {
    absl::StatusOr<JournalEntry> parsed = ParseJournalEntry(FormatJournalEntry(e));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(std::tie(parsed->debit, parsed->credit, parsed->amount, parsed->transfer_id),
              std::tie(e.debit, e.credit, e.amount, e.transfer_id));
  }
  for (const char* malformed : {"\x02" "ann\t7\tid", "\x02" "ann\x03" "bob\tseven\tid",
                                "\x02" "ann\x03" "bob\t7", ""}) {
    EXPECT_EQ(ParseJournalEntry(malformed).status().code(), absl::StatusCode::kDataLoss)
        << absl::CHexEscape(malformed);
  }
}

TEST(LedgerRules, PermissionsFollowRolesAndOnlyKudosPostsKudos) {
  using common::auth::Principal;
  using common::auth::Role;
  Principal member{"alice", "acme", static_cast<uint32_t>(Role::kMember)};
  Principal admin{"root", "acme", static_cast<uint32_t>(Role::kAdmin)};
  Principal service{"kudos", "acme", static_cast<uint32_t>(Role::kService)};
  Principal screen{"tv", "acme", static_cast<uint32_t>(Role::kScreen)};
  EXPECT_EQ(CanPost(member).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CanPost(screen).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CanPost(service).ok());
  // Admins adjust (audited); other services move no points.
  EXPECT_EQ(CanPost(admin).code(), absl::StatusCode::kPermissionDenied);
  Principal gateway{"gateway", "acme", static_cast<uint32_t>(Role::kService)};
  Principal service_admin{"gateway", "acme",
                          static_cast<uint32_t>(Role::kService) | static_cast<uint32_t>(Role::kAdmin)};
  EXPECT_EQ(CanPost(gateway).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CanSetPolicy(gateway).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(RequireAdmin(service_admin, "AdjustBalance").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(RequireAdmin(service, "AdjustBalance").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(RequireAdmin(admin, "AdjustBalance").ok());
  Account alice = PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, "alice");
  Account bob = PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, "bob");
  Account issuer = OrgAccount(ledger::v1::ACCOUNT_TYPE_ISSUER);
  EXPECT_TRUE(CanReadAccount(member, alice).ok());
  EXPECT_EQ(CanReadAccount(member, bob).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CanReadAccount(member, issuer).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CanReadAccount(screen, alice).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CanReadAccount(service, bob).ok());
  EXPECT_EQ(CanReadAccount(service, issuer).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CanReadAccount(admin, issuer).ok());
  EXPECT_TRUE(CanRedeemFor(member, "alice").ok());
  EXPECT_EQ(CanRedeemFor(member, "bob").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CanRedeemFor(admin, "bob").ok());
  EXPECT_TRUE(CanCancelRedemption(member, "alice").ok());
  EXPECT_EQ(CanCancelRedemption(member, "bob").code(), absl::StatusCode::kPermissionDenied);
}

TEST(LedgerRules, NetMovementsFollowDoubleEntry) {
  Transfer a = Kudos("k1", "alice", "bob", 5);
  Transfer b = Kudos("k2", "alice", "carol", 7);
  std::map<std::string, int64_t> movements = NetMovements({&a, &b});
  EXPECT_EQ(movements["allowance:alice"], -12);
  EXPECT_EQ(movements["earned:bob"], 5);
  EXPECT_EQ(movements["earned:carol"], 7);
  EXPECT_EQ(SumOfMovements(movements), 0);
}

TEST(LedgerRules, BoundAndCapMessagesNameTheAccountAndTheLimit) {
  EXPECT_EQ(BalanceBoundMessage("earned:bob", "999999999999999", "crediting", 5),
            "earned:bob holds 999999999999999 points; crediting 5 would take it past the "
            "ledger's bound of +-1000000000000000 points");
  std::string cap = PendingRedemptionsCapMessage("bob");
  EXPECT_TRUE(absl::StrContains(cap, "'bob' already has 20 pending redemptions")) << cap;
  EXPECT_TRUE(absl::StrContains(cap, "cancel")) << cap;
  // The bounds keep every script number exact in a double.
  static_assert(kMaxBalance + kMaxTransfersPerCall * kMaxAmount < (int64_t{1} << 53));
}

TEST(LedgerRules, RedemptionAndAdjustValidation) {
  ledger::v1::CreateRedemptionRequest r;
  r.set_request_id("r1");
  r.set_reward("mug");
  r.set_points(10);
  EXPECT_TRUE(ValidateRedemptionRequest(r).ok());
  r.set_hold_seconds(91 * 24 * 3600);
  EXPECT_TRUE(absl::StartsWith(ValidateRedemptionRequest(r).message(), "hold_seconds"));
  EXPECT_EQ(*HoldSeconds(0), 7 * 24 * 3600);
  EXPECT_EQ(RedemptionId("alice", "r1"), RedemptionId("alice", "r1"));
  EXPECT_NE(RedemptionId("alice", "r1"), RedemptionId("bob", "r1"));

  ledger::v1::AdjustBalanceRequest a;
  a.set_request_id("a1");
  a.set_person_id("bob");
  a.set_amount(-5);
  a.set_reason("  ");
  EXPECT_EQ(ValidateAdjustRequest(a).message(), "reason: is required");
  a.set_reason("duplicate kudos");
  EXPECT_TRUE(ValidateAdjustRequest(a).ok());
  a.set_amount(0);
  EXPECT_TRUE(absl::StartsWith(ValidateAdjustRequest(a).message(), "amount"));
}

}  // namespace
}  // namespace ledger
