// Retention and the archived checkpoint: the real ledger_server over gRPC and
// a real redis-server; the Archiver library runs against the same Redis with
// an injected `now` (no sleeping). Each test uses its own org.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include <google/protobuf/io/coded_stream.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/redis/org_registry.h"
#include "services/ledger/ledger_archive.h"
#include "services/ledger/ledger_keys.h"
#include "services/ledger/ledger_rules.h"
#include "services/ledger/ledger_store.h"
#include "tests/ledger/ledger_test_util.h"
#include "tests/ledger/stored_transfer.h"

namespace ledger_test {
namespace {

using ledger::ArchiveOptions;
using ledger::ArchiveStats;
using ledger::Archiver;
using ledger::v1::PostTransfersRequest;
using ledger::v1::PostTransfersResponse;

constexpr int kPeople = 6;

std::string TestOrg() {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string org = "arc-" + name;
  if (org.size() <= 64) return org;
  return absl::StrCat(org.substr(0, 55), "-",
                      absl::Hex(std::hash<std::string>()(name) & 0xffffffff, absl::kZeroPad8));
}

std::string Person(int i) { return absl::StrCat("p", i); }

class LedgerArchive : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { env_ = new LedgerEnv(); }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }

  void SetUp() override {
    org_ = TestOrg();
    stub_ = env_->NewStub();
    admin_ = harness::MintToken(org_, "root", {"admin"});
    service_ = ServiceToken(org_);
  }

  std::string Key(const std::string& suffix) { return "ledger:{" + org_ + "}:" + suffix; }

  common::redis::Reply Redis(const common::redis::Command& command) {
    absl::StatusOr<common::redis::Reply> reply = env_->pool().Run(command);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? *reply : common::redis::Reply();
  }

  grpc::Status SetRetention(const common::v1::RetentionPolicy& retention,
                            ledger::v1::SetAllowancePolicyResponse* out = nullptr,
                            bool with_retention = true) {
    ledger::v1::SetAllowancePolicyRequest request;
    request.mutable_policy()->set_points_per_period(1000000);
    if (with_retention) *request.mutable_retention() = retention;
    ledger::v1::SetAllowancePolicyResponse response;
    grpc::Status status =
        stub_->SetAllowancePolicy(harness::Context(service_).get(), request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  void AllowPlenty() {
    ASSERT_TRUE(SetRetention({}, nullptr, /*with_retention=*/false).ok());
  }

  // Kudos-shaped transfers: one giver per call to distinct recipients (at
  // most kPeople - 1), ids and references like the kudos service's
  // ("<kudos id>:<recipient>", the kudos id 'k' + 24 hex digits, the first 8
  // from `id_prefix`), tags giver/team/values; each call linked.
  void PostKudos(int count, int per_call = 5, const std::string& id_prefix = "kd") {
    per_call = std::min(per_call, people_ - 1);
    uint32_t tag = 0;
    for (char c : id_prefix) tag = tag * 131 + static_cast<unsigned char>(c);
    for (int done = 0, call = 0; done < count; ++call) {
      PostTransfersRequest request;
      request.set_linked(true);
      std::string kudos_id = absl::StrFormat("k%08x%016x", tag, call * 7919 + 17);
      int from = call % people_;
      for (int i = 0; i < per_call && done < count; ++i, ++done) {
        int to = (from + 1 + (i + call) % (people_ - 1)) % people_;
        Transfer t = Kudos(absl::StrCat(kudos_id, ":", Person(to)), Person(from), Person(to),
                           1 + done % 9, kudos_id);
        (*t.mutable_tags())["team"] = absl::StrCat("team-", to % 3);
        *request.add_transfers() = t;
      }
      PostTransfersResponse response;
      grpc::Status status =
          stub_->PostTransfers(harness::Context(service_).get(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }

  void Adjust(const std::string& request_id, const std::string& person, int64_t amount) {
    ledger::v1::AdjustBalanceRequest request;
    request.set_request_id(request_id);
    request.set_person_id(person);
    request.set_amount(amount);
    request.set_reason("correction");
    ledger::v1::AdjustBalanceResponse response;
    grpc::Status status =
        stub_->AdjustBalance(harness::Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  ledger::v1::Redemption Redeem(const std::string& request_id, const std::string& person,
                                int64_t points) {
    ledger::v1::CreateRedemptionRequest request;
    request.set_request_id(request_id);
    request.set_person_id(person);
    request.set_reward("mug");
    request.set_points(points);
    request.set_hold_seconds(30 * 24 * 3600);
    ledger::v1::CreateRedemptionResponse response;
    grpc::Status status =
        stub_->CreateRedemption(harness::Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.redemption();
  }

  void Fulfill(const std::string& redemption_id) {
    ledger::v1::FulfillRedemptionRequest request;
    request.set_redemption_id(redemption_id);
    ledger::v1::FulfillRedemptionResponse response;
    grpc::Status status =
        stub_->FulfillRedemption(harness::Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Kudos, adjustments both ways, a fulfilled redemption and a pending hold.
  void PostHistory(int kudos) {
    AllowPlenty();
    PostKudos(kudos);
    Adjust("bonus-1", Person(1), 50);
    Adjust("fix-1", Person(2), -1);
    Fulfill(Redeem("r-done", Person(1), 3).redemption_id());
    Redeem("r-pending", Person(3), 2);
  }

  std::vector<Account> Accounts() {
    std::vector<Account> accounts = {Issuer(), Rewards()};
    for (int i = 0; i < kPeople; ++i) {
      accounts.push_back(Allowance(Person(i)));
      accounts.push_back(Earned(Person(i)));
    }
    return accounts;
  }

  grpc::Status ListPage(const Account& account, int page_size, const std::string& token,
                        ledger::v1::ListTransfersResponse* out) {
    ledger::v1::ListTransfersRequest request;
    *request.mutable_account() = account;
    request.set_page_size(page_size);
    request.set_page_token(token);
    return stub_->ListTransfers(harness::Context(admin_).get(), request, out);
  }

  // Every page of every account (page sizes 1, 7 and 500), with its token.
  std::vector<std::string> AllPages() {
    std::vector<std::string> pages;
    for (const Account& account : Accounts()) {
      for (int page_size : {1, 7, 500}) {
        std::string token;
        for (int page = 0; page < 10000; ++page) {
          ledger::v1::ListTransfersResponse response;
          grpc::Status status = ListPage(account, page_size, token, &response);
          EXPECT_TRUE(status.ok()) << status.error_message();
          if (!status.ok()) return pages;
          pages.push_back(response.ShortDebugString());
          token = response.next_page_token();
          if (token.empty()) break;
        }
      }
    }
    return pages;
  }

  ledger::v1::VerifyLedgerResponse Verify(grpc::Status* status_out = nullptr) {
    ledger::v1::VerifyLedgerResponse response;
    grpc::Status status = stub_->VerifyLedger(harness::Context(admin_).get(), {}, &response);
    if (status_out != nullptr) {
      *status_out = status;
    } else {
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    return response;
  }

  // Everything a reader sees: balances (held, available), allowances, every
  // page of every account, and VerifyLedger.
  std::vector<std::string> Reads() {
    std::vector<std::string> reads;
    for (const Account& account : Accounts()) {
      ledger::v1::GetBalanceRequest request;
      *request.mutable_account() = account;
      ledger::v1::GetBalanceResponse response;
      grpc::Status status = stub_->GetBalance(harness::Context(admin_).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      reads.push_back(response.ShortDebugString());
    }
    for (int i = 0; i < kPeople; ++i) {
      ledger::v1::GetAllowanceRequest request;
      request.set_person_id(Person(i));
      ledger::v1::GetAllowanceResponse response;
      grpc::Status status =
          stub_->GetAllowance(harness::Context(admin_).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      reads.push_back(response.ShortDebugString());
    }
    for (std::string& page : AllPages()) reads.push_back(std::move(page));
    reads.push_back(Verify().ShortDebugString());
    return reads;
  }

  absl::StatusOr<ArchiveStats> Archive(absl::Duration ahead = absl::Hours(24 * 500),
                                       ArchiveOptions options = {}) {
    Archiver archiver(env_->pool(), options);
    return archiver.RunOnce(org_, absl::Now() + ahead);
  }

  // Runs until nothing is left to archive (bounded).
  int64_t ArchiveAll(ArchiveOptions options = {}) {
    int64_t total = 0;
    for (int run = 0; run < 1000; ++run) {
      absl::StatusOr<ArchiveStats> stats = Archive(absl::Hours(24 * 500), options);
      EXPECT_TRUE(stats.ok()) << stats.status();
      if (!stats.ok() || stats->transfers_archived == 0) break;
      total += stats->transfers_archived;
    }
    return total;
  }

  std::string BucketKey(const std::string& id) {
    return ledger::keys::TransferBucketKey(org_, id);
  }

  // Live transfers: the buckets' fields and the keys written before them.
  int64_t LiveTransfers() {
    int64_t found = 0;
    for (int bucket = 0; bucket < ledger::keys::kTransferBuckets; ++bucket) {
      found += Redis({"HLEN", Key(absl::StrCat("txb:", bucket))}).integer;
    }
    std::string cursor = "0";
    for (int i = 0; i < 10000; ++i) {
      common::redis::Reply reply =
          Redis({"SCAN", cursor, "MATCH", Key("tx:*"), "COUNT", "1000"});
      cursor = reply.elements[0].str;
      found += static_cast<int64_t>(reply.elements[1].elements.size());
      if (cursor == "0") break;
    }
    return found;
  }

  // A live transfer's stored value in the string form: its bucket's field,
  // or its own key (written before the buckets); "" when neither holds one.
  std::string StoredValue(const std::string& id) {
    common::redis::Reply field = Redis({"HGET", BucketKey(id), ledger::IndexMember(id)});
    if (field.type == common::redis::Reply::Type::kString) return field.str;
    if (Redis({"TYPE", Key("tx:" + id)}).str != "string") return "";
    return Redis({"GET", Key("tx:" + id)}).str;
  }

  // Writes `value` back where the transfer is stored.
  void PutStoredValue(const std::string& id, const std::string& value) {
    if (Redis({"HEXISTS", BucketKey(id), ledger::IndexMember(id)}).integer == 1) {
      Redis({"HSET", BucketKey(id), ledger::IndexMember(id), value});
    } else {
      Redis({"SET", Key("tx:" + id), value});
    }
  }

  // Moves a transfer from its bucket to its own key, as versions before the
  // buckets stored it.
  void MoveToOwnKey(const std::string& id, const std::string& value) {
    EXPECT_EQ(Redis({"HDEL", BucketKey(id), ledger::IndexMember(id)}).integer, 1) << id;
    Redis({"SET", Key("tx:" + id), value});
  }

  // Rewrites the stored post time of the transfer at journal position
  // `index` (as if posted then; the archive reads it from there).
  void Backdate(int index, absl::Time post_time) {
    std::string line = Redis({"LINDEX", Key("journal"), absl::StrCat(index)}).str;
    std::string id = ledger_test::JournalTransferId(line);
    Transfer transfer;
    if (Redis({"TYPE", Key("tx:" + id)}).str == "hash") {
      ASSERT_TRUE(transfer.ParseFromString(Redis({"HGET", Key("tx:" + id), "t"}).str));
      transfer.mutable_post_time()->set_seconds(absl::ToUnixSeconds(post_time));
      Redis({"HSET", Key("tx:" + id), "t", transfer.SerializeAsString()});
      return;
    }
    // The string form (scripts/lib.lua), written back with its whole body.
    const std::string value = StoredValue(id);
    std::optional<ledger_test::StoredTransfer> stored = ledger_test::ParseStoredTransfer(id, value);
    ASSERT_TRUE(stored.has_value()) << id;
    stored->transfer.mutable_post_time()->set_seconds(absl::ToUnixSeconds(post_time));
    PutStoredValue(id, ledger_test::WholeStoredTransfer(value, *stored));
  }

  // A live transfer in the string form (tests/ledger/stored_transfer.h),
  // the fields it leaves out put back.
  ledger_test::StoredTransfer ReadStoredTransfer(const std::string& id) {
    std::optional<ledger_test::StoredTransfer> stored =
        ledger_test::ParseStoredTransfer(id, StoredValue(id));
    EXPECT_TRUE(stored.has_value()) << id;
    return stored.value_or(ledger_test::StoredTransfer{});
  }

  // Moves every live transfer out of its bucket to its own key with its
  // whole body and 16 bytes of its fingerprint (the form before fields were
  // left out, and before the buckets). How many it rewrote.
  int RewriteAsWholeBodies() {
    int rewritten = 0;
    for (const common::redis::Reply& line : Redis({"LRANGE", Key("journal"), "0", "-1"}).elements) {
      std::string id = ledger_test::JournalTransferId(line.str);
      const std::string value = StoredValue(id);
      std::optional<ledger_test::StoredTransfer> stored = ledger_test::ParseStoredTransfer(id, value);
      EXPECT_TRUE(stored.has_value()) << id;
      if (!stored.has_value()) continue;
      stored->fp = absl::HexStringToBytes(ledger::Fingerprint(stored->transfer)).substr(0, 16);
      MoveToOwnKey(id, ledger_test::WholeStoredTransfer(value, *stored));
      ++rewritten;
    }
    return rewritten;
  }

  // Rewrites every live transfer in the form the ledger stored before the
  // string form: a hash {fp: hex sha256, t: body, seq}. How many it rewrote.
  int RewriteAsOldHashes() {
    int rewritten = 0;
    for (const common::redis::Reply& line : Redis({"LRANGE", Key("journal"), "0", "-1"}).elements) {
      std::string id = ledger_test::JournalTransferId(line.str);
      ledger_test::StoredTransfer stored = ReadStoredTransfer(id);
      EXPECT_EQ(stored.transfer.transfer_id(), id);
      // The old hash kept the whole fingerprint, in hex.
      const std::string fp_hex = ledger::Fingerprint(stored.transfer);
      EXPECT_EQ(absl::HexStringToBytes(fp_hex).substr(0, stored.fp.size()), stored.fp);
      Redis({"HDEL", BucketKey(id), ledger::IndexMember(id)});
      Redis({"DEL", Key("tx:" + id)});
      // Field order as posted: none of these tests' transfers reverses another
      // (a reversal's field 10 precedes its sequence, which lib.lua appends).
      Redis({"HSET", Key("tx:" + id), "fp", fp_hex, "t", stored.transfer.SerializeAsString(), "seq",
             absl::StrCat(stored.seq)});
      ++rewritten;
    }
    return rewritten;
  }

  static LedgerEnv* env_;
  int people_ = kPeople;
  std::string org_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> stub_;
  std::string admin_;
  std::string service_;
};

LedgerEnv* LedgerArchive::env_ = nullptr;

// ---- chunk format ------------------------------------------------------------------

TEST(ArchiveChunk, RoundTripsAndRefusesWhatIsNotAChunk) {
  ledger::v1::TransfersPosted chunk;
  chunk.set_org_id("acme");
  for (int i = 1; i <= 3; ++i) {
    Transfer t = Kudos(absl::StrCat("k", i), "a", "b", i);
    t.set_sequence(i);
    *chunk.add_transfers() = t;
  }
  absl::StatusOr<std::string> compressed = ledger::CompressChunk(chunk, 9);
  ASSERT_TRUE(compressed.ok()) << compressed.status();
  absl::StatusOr<ledger::v1::TransfersPosted> back = ledger::DecompressChunk(*compressed);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ShortDebugString(), chunk.ShortDebugString());

  for (const std::string& bad :
       {std::string(), std::string("not zstd at all"), compressed->substr(0, compressed->size() / 2),
        *compressed + *compressed}) {
    absl::StatusOr<ledger::v1::TransfersPosted> refused = ledger::DecompressChunk(bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss) << bad.size();
  }
}

// ---- retention policy -------------------------------------------------------------

TEST_F(LedgerArchive, Retention_DefaultsAreFilledInStoredAndReturned) {
  ledger::v1::SetAllowancePolicyResponse response;
  common::v1::RetentionPolicy retention;
  retention.set_transfers_live_days(500);
  ASSERT_TRUE(SetRetention(retention, &response).ok());
  EXPECT_EQ(response.retention().idempotency_days(), 30);
  EXPECT_EQ(response.retention().kudos_live_days(), 400);
  EXPECT_EQ(response.retention().transfers_live_days(), 500);
  EXPECT_EQ(response.retention().audit_days(), 400);
  common::v1::RetentionPolicy stored;
  ASSERT_TRUE(stored.ParseFromString(Redis({"GET", Key("retention")}).str));
  EXPECT_EQ(stored.ShortDebugString(), response.retention().ShortDebugString());

  // A policy push without retention keeps the stored one and returns it.
  ASSERT_TRUE(SetRetention({}, &response, /*with_retention=*/false).ok());
  EXPECT_EQ(response.retention().transfers_live_days(), 500);
}

TEST_F(LedgerArchive, Retention_NeverSetReturnsTheDefaults) {
  ledger::v1::SetAllowancePolicyResponse response;
  ASSERT_TRUE(SetRetention({}, &response, /*with_retention=*/false).ok());
  EXPECT_EQ(response.retention().idempotency_days(), 30);
  EXPECT_EQ(response.retention().transfers_live_days(), 400);
}

TEST_F(LedgerArchive, Retention_OutOfRangeDaysAreInvalidArgumentNamingTheField) {
  struct Case {
    void (common::v1::RetentionPolicy::*set)(int32_t);
    int32_t days;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {&common::v1::RetentionPolicy::set_transfers_live_days, 3651, "transfers_live_days"},
           {&common::v1::RetentionPolicy::set_idempotency_days, -1, "idempotency_days"},
           {&common::v1::RetentionPolicy::set_kudos_live_days, 4000, "kudos_live_days"},
           {&common::v1::RetentionPolicy::set_audit_days, -30, "audit_days"}}) {
    common::v1::RetentionPolicy retention;
    (retention.*c.set)(c.days);
    grpc::Status status = SetRetention(retention);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_TRUE(absl::StrContains(status.error_message(), "retention." + c.field))
        << status.error_message();
  }
  EXPECT_TRUE(Redis({"GET", Key("retention")}).is_nil());
}

TEST_F(LedgerArchive, Retention_TransfersLiveShorterThanTheRetryWindowIsRefused) {
  common::v1::RetentionPolicy retention;
  retention.set_idempotency_days(60);
  retention.set_transfers_live_days(59);
  grpc::Status status = SetRetention(retention);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "retention.transfers_live_days"))
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "idempotency_days"))
      << status.error_message();
  retention.set_transfers_live_days(60);
  EXPECT_TRUE(SetRetention(retention).ok());
}

// ---- archive ----------------------------------------------------------------------

TEST_F(LedgerArchive, Archive_500DaysLaterEveryReadGivesExactlyWhatItGaveBefore) {
  PostHistory(60);
  std::vector<std::string> before = Reads();
  int64_t journal = Redis({"LLEN", Key("journal")}).integer;

  absl::StatusOr<ArchiveStats> stats = Archive();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->transfers_archived, journal);
  // The live history is gone: no transfer hash, index or journal line left.
  EXPECT_EQ(LiveTransfers(), 0);
  EXPECT_EQ(Redis({"LLEN", Key("journal")}).integer, 0);
  EXPECT_EQ(Redis({"EXISTS", Key("acct:earned:p1")}).integer, 0);

  std::vector<std::string> after = Reads();
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(before[i], after[i]) << i;
  EXPECT_TRUE(Verify().consistent());
}

// Issue 15 (memory): a live transfer's STRING leaves out what its key and
// prefix name: its transfer_id, its sequence and, for an id
// "<reference>:<rest>", its reference (31 bytes of a kudos transfer).
// Strings written before with the whole body read, retry and list the same.
TEST_F(LedgerArchive, Transfer_StoredStringLeavesOutItsIdSequenceAndReferenceAndReadsTheSame) {
  PostKudos(12);
  const std::vector<std::string> before = Reads();
  const std::string line = Redis({"LINDEX", Key("journal"), "0"}).str;
  const std::string id = ledger_test::JournalTransferId(line);
  EXPECT_EQ(Redis({"EXISTS", Key("tx:" + id)}).integer, 0) << "a bucket's field, not a key";
  const std::string stored = StoredValue(id);
  // A bucket's value keeps 8 bytes of the fingerprint (16 under tx:<id>).
  constexpr size_t kFp = 8;
  ASSERT_GT(stored.size(), 6u + kFp + 1u);
  EXPECT_EQ(static_cast<unsigned char>(stored[5]), 128 + kFp);
  EXPECT_EQ(ReadStoredTransfer(id).fp,
            absl::HexStringToBytes(ledger::Fingerprint(ReadStoredTransfer(id).transfer)).substr(0, kFp));
  EXPECT_EQ(stored[6 + kFp], 3) << "marker: sequence and reference left out";
  Transfer unreadable;  // as a version before this one reads it: refused, not misread
  EXPECT_FALSE(unreadable.ParseFromString(stored.substr(6 + kFp)));
  const Transfer whole = ReadStoredTransfer(id).transfer;
  EXPECT_EQ(whole.transfer_id(), id);
  EXPECT_EQ(absl::StrCat(whole.reference(), ":"), id.substr(0, whole.reference().size() + 1));
  EXPECT_GT(whole.sequence(), 0);
  Transfer left;
  ASSERT_TRUE(left.ParseFromString(stored.substr(6 + kFp + 1)));
  EXPECT_EQ(left.transfer_id(), "");
  EXPECT_EQ(left.reference(), "");
  EXPECT_EQ(left.sequence(), 0);
  left.set_transfer_id(id);
  left.set_reference(whole.reference());
  left.set_sequence(whole.sequence());
  EXPECT_EQ(left.ShortDebugString(), whole.ShortDebugString());
  const size_t left_out = (2 + id.size()) + (2 + whole.reference().size()) +
                          (1 + google::protobuf::io::CodedOutputStream::VarintSize64(whole.sequence()));
  EXPECT_EQ(stored.size() - 6 - kFp - 1 + left_out, whole.ByteSizeLong());
  EXPECT_EQ(RewriteAsWholeBodies(), 12);
  const std::string rewritten = Redis({"GET", Key("tx:" + id)}).str;
  EXPECT_EQ(Redis({"HEXISTS", BucketKey(id), ledger::IndexMember(id)}).integer, 0);
  EXPECT_EQ(static_cast<unsigned char>(rewritten[5]), 16);
  Transfer whole_again;
  ASSERT_TRUE(whole_again.ParseFromString(rewritten.substr(6 + 16)));
  EXPECT_EQ(whole_again.ShortDebugString(), whole.ShortDebugString());
  EXPECT_EQ(Reads(), before);
  PostKudos(12);  // the same transfers again: recognised, applied once
  EXPECT_EQ(Redis({"LLEN", Key("journal")}).integer, 12);
  EXPECT_EQ(Reads(), before);
  EXPECT_EQ(Archive()->transfers_archived, 12);
  EXPECT_EQ(Reads(), before);
}

// Issue 15 (memory): an account index entry is the transfer's sequence (as
// member and score; ListTransfers reads the id off the journal line at that
// sequence), and the journal names a kudos transfer by its IndexMember
// ("\x01", the kudos id's 12 bytes, the recipient: 13 bytes fewer) between
// short account names (a byte each: 16 bytes fewer). Entries written before
// (the index naming the transfer packed, whole account names; ids
// everywhere) list, verify, retry and archive the same, and an index entry
// an archive run of a version before left behind is not listed twice.
TEST_F(LedgerArchive, IndexesAndJournal_NameKudosTransfersPackedAndEntriesWrittenAsIdsStillCount) {
  AllowPlenty();
  PostKudos(12, 4);
  const std::vector<std::string> before = Reads();
  const std::vector<common::redis::Reply> lines =
      Redis({"LRANGE", Key("journal"), "0", "-1"}).elements;
  ASSERT_EQ(lines.size(), 12u);
  for (size_t at = 0; at < lines.size(); ++at) {
    const std::string& line = lines[at].str;
    absl::StatusOr<ledger::JournalEntry> entry = ledger::ParseJournalEntry(line);
    ASSERT_TRUE(entry.ok()) << entry.status();
    const std::string& id = entry->transfer_id;
    const std::string member = ledger::IndexMember(id);
    ASSERT_EQ(member.size(), id.size() - 13) << id;  // 25 + 1 (the colon) -> 1 + 12
    EXPECT_EQ(member[0], '\x01');
    EXPECT_EQ(line, ledger::FormatJournalEntry(*entry));
    ASSERT_TRUE(absl::StartsWith(entry->debit, "allowance:")) << entry->debit;
    EXPECT_TRUE(absl::StartsWith(line, "\x02" + entry->debit.substr(10) + "\x03"))
        << "short account names: " << absl::CHexEscape(line);
    EXPECT_TRUE(absl::EndsWith(line, "\t" + member));
    const std::string seq = absl::StrCat(at + 1);  // nothing archived yet
    for (const std::string& account : {entry->debit, entry->credit}) {
      EXPECT_EQ(Redis({"ZSCORE", Key("acct:" + account), seq}).str, seq)
          << account << ": the index entry is the sequence";
    }
    const int form = static_cast<int>(at % 3);
    if (form == 0) continue;
    // As the version before these wrote it (form 1), or the one before the
    // packing (form 2: ids).
    const std::string name = form == 1 ? member : id;
    Redis({"LSET", Key("journal"), absl::StrCat(at),
           absl::StrCat(entry->debit, "\t", entry->credit, "\t", entry->amount, "\t", name)});
    for (const std::string& account : {entry->debit, entry->credit}) {
      EXPECT_EQ(Redis({"ZREM", Key("acct:" + account), seq}).integer, 1);
      EXPECT_EQ(Redis({"ZADD", Key("acct:" + account), seq, name}).integer, 1);
    }
  }
  EXPECT_EQ(Reads(), before);
  PostKudos(12, 4);  // the same transfers again: recognised, applied once
  EXPECT_EQ(Redis({"LLEN", Key("journal")}).integer, 12);
  EXPECT_EQ(Reads(), before);
  EXPECT_EQ(ArchiveAll(), 12);
  EXPECT_EQ(LiveTransfers(), 0);
  EXPECT_EQ(Redis({"LLEN", Key("journal")}).integer, 0);
  for (int i = 0; i < people_; ++i) {
    for (const char* kind : {"acct:allowance:", "acct:earned:"}) {
      EXPECT_EQ(Redis({"EXISTS", Key(kind + Person(i))}).integer, 0) << kind << i;
    }
  }
  EXPECT_EQ(Reads(), before);
  // Entries of archived transfers that an archive run of a version before
  // left in an index (it removed only the forms it knew): skipped.
  absl::StatusOr<ledger::JournalEntry> first = ledger::ParseJournalEntry(lines[0].str);
  ASSERT_TRUE(first.ok());
  Redis({"ZADD", Key("acct:" + first->debit), "1", "1"});
  Redis({"ZADD", Key("acct:" + first->credit), "1", ledger::IndexMember(first->transfer_id)});
  EXPECT_EQ(Reads(), before);
}

// Issue 15 (memory): live transfers are fields of kTransferBuckets hashes
// per org, not a key each. During a rolling upgrade a store with
// write_transfer_keys writes each new one under its own key instead, as the
// version before did (which reads only those); either store finds a
// transfer the other wrote, so a retry through either applies once.
TEST_F(LedgerArchive, Transfers_KeptInBucketsAndUnderTheirOwnKeyOnlyWhenAskedFor) {
  AllowPlenty();
  PostKudos(200, 4);
  std::set<std::string> buckets;
  int64_t fields = 0;
  for (int bucket = 0; bucket < ledger::keys::kTransferBuckets; ++bucket) {
    const int64_t count = Redis({"HLEN", Key(absl::StrCat("txb:", bucket))}).integer;
    if (count > 0) buckets.insert(absl::StrCat(bucket));
    fields += count;
  }
  EXPECT_EQ(fields, 200);
  EXPECT_GT(buckets.size(), 32u) << "ids spread over the buckets";
  EXPECT_EQ(LiveTransfers(), 200) << "no transfer has a key of its own, no other bucket holds one";

  ledger::LedgerStore upgrading(env_->pool(), {}, /*write_transfer_keys=*/true);
  ledger::LedgerStore current(env_->pool());
  ASSERT_TRUE(upgrading.write_transfer_keys());
  auto post = [&](ledger::LedgerStore& store, const Transfer& transfer) {
    absl::StatusOr<std::vector<ledger::PostResult>> out;
    store.Post(org_, {{0, transfer}}, true, absl::Now(),
               std::chrono::steady_clock::now() + std::chrono::seconds(10),
               [&out](absl::StatusOr<std::vector<ledger::PostResult>> r) { out = std::move(r); });
    EXPECT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out.ok() ? out->size() : 0u, 1u);
    return out.ok() && out->size() == 1 ? (*out)[0] : ledger::PostResult{};
  };
  const std::string id = "k0000000000000000000000aa:p1";
  const Transfer kudos = Kudos(id, Person(0), Person(1), 3, "k0000000000000000000000aa");
  ledger::PostResult first = post(upgrading, kudos);
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_TRUE(first.created);
  EXPECT_EQ(Redis({"TYPE", Key("tx:" + id)}).str, "string") << "its own key, as before";
  EXPECT_EQ(Redis({"HEXISTS", BucketKey(id), ledger::IndexMember(id)}).integer, 0);
  ledger::PostResult retried = post(current, kudos);
  ASSERT_TRUE(retried.status.ok()) << retried.status;
  EXPECT_FALSE(retried.created) << "the current store finds the key the upgrading one wrote";
  EXPECT_EQ(retried.transfer.ShortDebugString(), first.transfer.ShortDebugString());
  Transfer other = kudos;
  other.set_amount(4);
  EXPECT_EQ(post(current, other).status.code(), absl::StatusCode::kAlreadyExists);

  const std::string next_id = "k0000000000000000000000bb:p2";
  const Transfer next = Kudos(next_id, Person(0), Person(2), 2, "k0000000000000000000000bb");
  ASSERT_TRUE(post(current, next).created);
  EXPECT_EQ(Redis({"EXISTS", Key("tx:" + next_id)}).integer, 0);
  EXPECT_EQ(Redis({"HEXISTS", BucketKey(next_id), ledger::IndexMember(next_id)}).integer, 1);
  ledger::PostResult next_again = post(upgrading, next);
  EXPECT_TRUE(next_again.status.ok()) << next_again.status;
  EXPECT_FALSE(next_again.created) << "the upgrading store finds the bucket's field";
  EXPECT_EQ(Redis({"EXISTS", Key("tx:" + next_id)}).integer, 0);
  EXPECT_EQ(Redis({"LLEN", Key("journal")}).integer, 202);
  EXPECT_TRUE(Verify().consistent());

  ASSERT_EQ(ArchiveAll(), 202);
  EXPECT_EQ(LiveTransfers(), 0) << "the archive removes both forms";
  EXPECT_TRUE(Verify().consistent());
}

// A transfer is one STRING (seq, raw fingerprint, body) instead of a hash
// with field names; transfers an org stored as hashes before the upgrade
// read, retry, list, verify and archive exactly as before.
TEST_F(LedgerArchive, Upgrade_TransfersStoredAsHashesReadRetryAndArchiveExactly) {
  PostHistory(30);
  // A retry of the last kudos post, for after the rewrite.
  PostTransfersRequest retry;
  retry.set_linked(true);
  {
    std::string line = Redis({"LINDEX", Key("journal"), "0"}).str;  // the first kudos transfer
    std::string id = ledger_test::JournalTransferId(line);
    Transfer first = ReadStoredTransfer(id).transfer;
    ASSERT_EQ(first.transfer_id(), id);
    first.clear_sequence();
    first.clear_post_time();
    *retry.add_transfers() = first;
  }
  std::vector<std::string> before = Reads();
  EXPECT_EQ(RewriteAsOldHashes(), Redis({"LLEN", Key("journal")}).integer);
  EXPECT_EQ(Redis({"TYPE", Key("tx:" + retry.transfers(0).transfer_id())}).str, "hash");
  EXPECT_EQ(Reads(), before);

  // The same transfer id again: recognised, applied once, same answer.
  PostTransfersResponse again;
  grpc::Status status = stub_->PostTransfers(harness::Context(service_).get(), retry, &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(again.results_size(), 1);
  EXPECT_FALSE(again.results(0).created());
  EXPECT_GT(again.results(0).transfer().sequence(), 0);
  EXPECT_EQ(Reads(), before);
  // The same id with other content: refused, nothing written.
  (*retry.mutable_transfers(0)).set_amount(retry.transfers(0).amount() + 1);
  status = stub_->PostTransfers(harness::Context(service_).get(), retry, &again);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
  EXPECT_EQ(Reads(), before);

  // New transfers are strings beside the old hashes; then everything archives.
  PostKudos(10, 5, "new");
  std::vector<std::string> mixed = Reads();
  EXPECT_TRUE(Verify().consistent());
  const int64_t journal = Redis({"LLEN", Key("journal")}).integer;
  ASSERT_EQ(ArchiveAll(), journal);
  EXPECT_EQ(LiveTransfers(), 0);
  EXPECT_EQ(Reads(), mixed);
  EXPECT_TRUE(Verify().consistent());
}

TEST_F(LedgerArchive, Archive_OnlyTransfersOlderThanTheOrgsLiveWindowFold) {
  AllowPlenty();
  PostKudos(10);
  absl::StatusOr<ArchiveStats> stats = Archive(absl::Hours(24 * 399));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->transfers_archived, 0);  // default 400 days

  common::v1::RetentionPolicy retention;
  retention.set_transfers_live_days(100);
  ASSERT_TRUE(SetRetention(retention).ok());
  stats = Archive(absl::Hours(24 * 99));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->transfers_archived, 0);
  stats = Archive(absl::Hours(24 * 101));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->transfers_archived, 10);
}

TEST_F(LedgerArchive, Archive_NewTransfersAfterTheArchiveKeepEverythingExact) {
  PostHistory(30);
  ASSERT_GT(ArchiveAll(), 0);
  std::vector<std::string> archived_only = AllPages();
  PostKudos(25, 5, "late");
  Adjust("bonus-2", Person(4), 7);

  ledger::v1::VerifyLedgerResponse verify = Verify();
  EXPECT_TRUE(verify.consistent()) << verify.ShortDebugString();
  EXPECT_EQ(verify.transfer_count(), 30 + 3 + 25 + 1);
  // Pages run from the live tail into the archive, newest first, with no
  // sequence seen twice or skipped.
  for (const Account& account : Accounts()) {
    std::vector<int64_t> sequences;
    std::string token;
    for (int page = 0; page < 1000; ++page) {
      ledger::v1::ListTransfersResponse response;
      ASSERT_TRUE(ListPage(account, 4, token, &response).ok());
      for (const Transfer& t : response.transfers()) sequences.push_back(t.sequence());
      token = response.next_page_token();
      if (token.empty()) break;
    }
    for (size_t i = 1; i < sequences.size(); ++i) EXPECT_GT(sequences[i - 1], sequences[i]);
  }
  // Archiving the new ones too gives the same pages as reading them live.
  std::vector<std::string> mixed = AllPages();
  ASSERT_GT(ArchiveAll(), 0);
  EXPECT_EQ(AllPages(), mixed);
  EXPECT_TRUE(Verify().consistent());
  EXPECT_NE(mixed, archived_only);
}

TEST_F(LedgerArchive, Archive_PendingRedemptionHoldsStayAndStillCount) {
  PostHistory(20);
  ASSERT_GT(ArchiveAll(), 0);
  ledger::v1::GetBalanceRequest request;
  *request.mutable_account() = Earned(Person(3));
  ledger::v1::GetBalanceResponse response;
  ASSERT_TRUE(stub_->GetBalance(harness::Context(admin_).get(), request, &response).ok());
  EXPECT_EQ(response.held(), 2);
  EXPECT_EQ(Redis({"ZCARD", Key("holds:p3")}).integer, 1);
}

TEST_F(LedgerArchive, Archive_SecondRunIsANoOp) {
  PostHistory(20);
  ASSERT_GT(ArchiveAll(), 0);
  std::string checkpoint = Redis({"HGET", Key("ckpt"), "chain"}).str;
  int64_t chunks = Redis({"ZCARD", Key("arch:dir")}).integer;
  absl::StatusOr<ArchiveStats> again = Archive();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->transfers_archived, 0);
  EXPECT_EQ(again->chunks, 0);
  EXPECT_EQ(Redis({"HGET", Key("ckpt"), "chain"}).str, checkpoint);
  EXPECT_EQ(Redis({"ZCARD", Key("arch:dir")}).integer, chunks);
}

TEST_F(LedgerArchive, Archive_WorkPerRunAndChunkSizeAreBounded) {
  AllowPlenty();
  PostKudos(23);
  ArchiveOptions options;
  options.max_transfers_per_run = 10;
  options.max_transfers_per_chunk = 4;
  absl::StatusOr<ArchiveStats> stats = Archive(absl::Hours(24 * 500), options);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->transfers_archived, 10);
  EXPECT_EQ(stats->chunks, 3);  // 4 + 4 + 2
  EXPECT_EQ(Redis({"LLEN", Key("journal")}).integer, 13);
  EXPECT_EQ(ArchiveAll(options), 13);
  EXPECT_EQ(Redis({"ZCARD", Key("arch:dir")}).integer, 7);  // runs of 4+4+2, 4+4+2, 3
  EXPECT_TRUE(Verify().consistent());
}

TEST_F(LedgerArchive, Archive_AnotherReplicaHoldingTheLockMakesTheRunANoOp) {
  AllowPlenty();
  PostKudos(5);
  Redis({"SET", Key("arch:lock"), "other-replica", "PX", "60000"});
  absl::StatusOr<ArchiveStats> stats = Archive();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->lock_busy);
  EXPECT_EQ(stats->transfers_archived, 0);
  EXPECT_EQ(Redis({"LLEN", Key("journal")}).integer, 5);
  EXPECT_EQ(Redis({"GET", Key("arch:lock")}).str, "other-replica");  // not released by us
}

TEST_F(LedgerArchive, Archive_TwoRunsPlannedFromOneCheckpointCommitOnlyOnce) {
  AllowPlenty();
  PostKudos(12);
  std::vector<std::string> before = AllPages();
  ArchiveOptions options;
  options.max_transfers_per_chunk = 5;
  Archiver first(env_->pool(), options);
  Archiver second(env_->pool(), options);
  absl::Time later = absl::Now() + absl::Hours(24 * 500);
  absl::StatusOr<Archiver::ChunkPlan> plan_a = first.PlanChunk(org_, later);
  absl::StatusOr<Archiver::ChunkPlan> plan_b = second.PlanChunk(org_, later);
  ASSERT_TRUE(plan_a.ok() && plan_b.ok());
  ASSERT_EQ(plan_a->transfers.size(), 5u);
  ArchiveStats stats_a, stats_b;
  absl::StatusOr<bool> committed_a = first.Commit(org_, *plan_a, stats_a);
  absl::StatusOr<bool> committed_b = second.Commit(org_, *plan_b, stats_b);
  ASSERT_TRUE(committed_a.ok() && committed_b.ok());
  EXPECT_TRUE(*committed_a);
  EXPECT_FALSE(*committed_b);  // the checkpoint moved: nothing written
  EXPECT_EQ(stats_b.transfers_archived, 0);
  EXPECT_EQ(Redis({"HGET", Key("ckpt"), "count"}).str, "5");
  EXPECT_EQ(Redis({"ZCARD", Key("arch:dir")}).integer, 1);
  EXPECT_EQ(Redis({"LLEN", Key("journal")}).integer, 7);
  EXPECT_TRUE(Verify().consistent());
  EXPECT_EQ(AllPages(), before);
}

TEST_F(LedgerArchive, Archive_ConcurrentRunsArchiveEachTransferOnce) {
  AllowPlenty();
  PostKudos(120);
  std::vector<std::string> before = AllPages();
  // A lock that expires at once: the runs overlap and only the checkpoint's
  // compare-and-set keeps them apart.
  ArchiveOptions options;
  options.max_transfers_per_run = 40;
  options.max_transfers_per_chunk = 3;
  options.lock_ttl = absl::Milliseconds(1);
  std::atomic<int64_t> archived{0};
  std::atomic<int> raced{0};
  std::vector<std::thread> runners;
  for (int r = 0; r < 3; ++r) {
    runners.emplace_back([&] {
      common::redis::PoolOptions pool_options;
      pool_options.endpoint.port = env_->redis().port();
      pool_options.size = 1;
      common::redis::Pool pool(pool_options);  // a replica of its own
      Archiver archiver(pool, options);
      for (int run = 0; run < 200; ++run) {
        absl::StatusOr<ArchiveStats> stats = archiver.RunOnce(org_, absl::Now() + absl::Hours(24 * 500));
        ASSERT_TRUE(stats.ok()) << stats.status();
        archived += stats->transfers_archived;
        if (stats->raced) ++raced;
        if (stats->transfers_archived == 0 && !stats->raced && !stats->lock_busy) break;
      }
    });
  }
  for (std::thread& runner : runners) runner.join();
  EXPECT_EQ(archived.load(), 120);
  EXPECT_EQ(Redis({"HGET", Key("ckpt"), "count"}).str, "120");
  EXPECT_EQ(Redis({"HGET", Key("ckpt"), "through_seq"}).str, "120");
  ledger::v1::VerifyLedgerResponse verify = Verify();
  EXPECT_TRUE(verify.consistent()) << verify.ShortDebugString();
  EXPECT_EQ(verify.transfer_count(), 120);
  EXPECT_EQ(AllPages(), before);
  std::cout << "concurrent runs that lost the compare-and-set: " << raced.load() << "\n";
}

TEST_F(LedgerArchive, Verify_ReportsATamperedBalanceAfterTheArchive) {
  PostHistory(20);
  ASSERT_GT(ArchiveAll(), 0);
  int64_t stored = std::stoll(Redis({"HGET", Key("bal"), "earned:p2"}).str);
  Redis({"HINCRBY", Key("bal"), "earned:p2", "5"});
  ledger::v1::VerifyLedgerResponse verify = Verify();
  EXPECT_FALSE(verify.consistent());
  ASSERT_EQ(verify.differences_size(), 1) << verify.ShortDebugString();
  EXPECT_EQ(verify.differences(0).account().person_id(), "p2");
  EXPECT_EQ(verify.differences(0).stored_balance(), stored + 5);
  EXPECT_EQ(verify.differences(0).recomputed_balance(), stored);
}

TEST_F(LedgerArchive, Verify_ReportsATamperedArchiveChunkByName) {
  PostHistory(20);
  ASSERT_GT(ArchiveAll(), 0);
  common::redis::Reply dir = Redis({"ZRANGE", Key("arch:dir"), "0", "0"});
  ASSERT_EQ(dir.elements.size(), 1u);
  std::string chunk_id = dir.elements[0].str;
  // Re-encode the chunk with one amount raised: it still decompresses.
  std::string compressed = Redis({"GET", Key("arch:c:" + chunk_id)}).str;
  absl::StatusOr<ledger::v1::TransfersPosted> chunk = ledger::DecompressChunk(compressed);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  chunk->mutable_transfers(0)->set_amount(chunk->transfers(0).amount() + 1);
  absl::StatusOr<std::string> tampered = ledger::CompressChunk(*chunk, 3);
  ASSERT_TRUE(tampered.ok());
  Redis({"SET", Key("arch:c:" + chunk_id), *tampered});

  grpc::Status status;
  Verify(&status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_TRUE(absl::StrContains(status.error_message(), chunk_id)) << status.error_message();
}

TEST_F(LedgerArchive, Verify_ReportsATamperedCheckpointTotalByAccount) {
  PostHistory(20);
  ASSERT_GT(ArchiveAll(), 0);
  Redis({"HINCRBY", Key("ckpt:bal"), "earned:p4", "3"});
  grpc::Status status;
  Verify(&status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "earned:p4")) << status.error_message();
}

TEST_F(LedgerArchive, Verify_ReportsAMissingChunkAndATamperedListingIndex) {
  PostHistory(20);
  ASSERT_GT(ArchiveAll(), 0);
  // ListTransfers' index of one account loses its newest archived entry.
  std::string index = Redis({"GET", Key("arch:a:earned:p1")}).str;
  ASSERT_GE(index.size(), 10u);
  Redis({"SET", Key("arch:a:earned:p1"), index.substr(0, index.size() - 5)});
  grpc::Status status;
  Verify(&status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "index of earned:p1"))
      << status.error_message();
  Redis({"SET", Key("arch:a:earned:p1"), index});
  EXPECT_TRUE(Verify().consistent());

  std::string chunk_id = Redis({"ZRANGE", Key("arch:dir"), "0", "0"}).elements[0].str;
  Redis({"DEL", Key("arch:c:" + chunk_id)});
  Verify(&status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "'" + chunk_id + "' is missing"))
      << status.error_message();
  ledger::v1::ListTransfersResponse page;
  EXPECT_EQ(ListPage(Earned(Person(1)), 500, "", &page).error_code(),
            grpc::StatusCode::DATA_LOSS);
}

// An archive run that commits between VerifyLedger's snapshot and its index
// check appends to the account indexes: not data loss. The store runs in
// process so the run lands exactly there (the hook, no timing).
TEST_F(LedgerArchive, Verify_AnArchiveCommittingAfterTheSnapshotIsNotDataLoss) {
  PostHistory(20);
  ASSERT_GT(ArchiveAll(), 0);
  PostKudos(10, 5, "late");
  ledger::LedgerStore store(env_->pool());
  int runs_after_snapshot = 0;
  store.SetAfterVerifySnapshotForTest([&] {
    if (runs_after_snapshot++ > 0) return;  // the first attempt only
    absl::StatusOr<ArchiveStats> stats = Archive();
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->transfers_archived, 10);
  });
  absl::StatusOr<ledger::v1::VerifyLedgerResponse> verify = store.Verify(org_);
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_GE(runs_after_snapshot, 1);
  EXPECT_TRUE(verify->consistent()) << verify->ShortDebugString();
  EXPECT_TRUE(Verify().consistent());
}

// The same interleaving with a real tamper of the part of an index the
// snapshot covers, or an entry appended that no new chunk holds: DATA_LOSS.
TEST_F(LedgerArchive, Verify_ATamperedIndexIsDataLossEvenWhileAnArchiveCommits) {
  PostHistory(20);
  ASSERT_GT(ArchiveAll(), 0);
  PostKudos(10, 5, "late");
  PostKudos(10, 5, "later");
  const std::string index_key = Key("arch:a:earned:p1");
  const std::string original = Redis({"GET", index_key}).str;
  ASSERT_GE(original.size(), 10u);
  ledger::LedgerStore store(env_->pool());
  ArchiveOptions ten_per_run;
  ten_per_run.max_transfers_per_run = 10;

  // The snapshot's part of the index loses its newest entry.
  bool tampered_prefix = false;
  store.SetAfterVerifySnapshotForTest([&] {
    if (tampered_prefix) return;
    tampered_prefix = true;
    ASSERT_TRUE(Archive(absl::Hours(24 * 500), ten_per_run).ok());
    std::string grown = Redis({"GET", index_key}).str;
    ASSERT_GT(grown.size(), original.size());
    Redis({"SET", index_key, grown.substr(0, original.size() - 5) + grown.substr(original.size())});
  });
  absl::StatusOr<ledger::v1::VerifyLedgerResponse> verify = store.Verify(org_);
  EXPECT_EQ(verify.status().code(), absl::StatusCode::kDataLoss) << verify.status();
  EXPECT_TRUE(absl::StrContains(verify.status().message(), "index of earned:p1"))
      << verify.status();

  // Repaired, then an old sequence appended after the new chunk's entries.
  std::string repaired;
  {
    std::string grown = Redis({"GET", index_key}).str;
    repaired = original + grown.substr(original.size() - 5);
    Redis({"SET", index_key, repaired});
  }
  ASSERT_TRUE(Verify().consistent());
  bool appended = false;
  store.SetAfterVerifySnapshotForTest([&] {
    if (appended) return;
    appended = true;
    ASSERT_TRUE(Archive(absl::Hours(24 * 500), ten_per_run).ok());
    Redis({"APPEND", index_key, original.substr(0, 5)});
  });
  verify = store.Verify(org_);
  EXPECT_EQ(verify.status().code(), absl::StatusCode::kDataLoss) << verify.status();
  EXPECT_TRUE(absl::StrContains(verify.status().message(), "index of earned:p1"))
      << verify.status();
}

TEST_F(LedgerArchive, ListTransfers_AnArchiveIndexOutOfOrderIsDataLossNotACrash) {
  PostHistory(20);
  ASSERT_GT(ArchiveAll(), 0);
  std::string index = Redis({"GET", Key("arch:a:earned:p1")}).str;
  ASSERT_GE(index.size(), 10u);
  std::string reversed;
  for (size_t at = index.size(); at >= 5; at -= 5) reversed += index.substr(at - 5, 5);
  Redis({"SET", Key("arch:a:earned:p1"), reversed});
  ledger::v1::ListTransfersResponse page;
  grpc::Status status = ListPage(Earned(Person(1)), 500, "", &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "earned:p1")) << status.error_message();
  Redis({"SET", Key("arch:a:earned:p1"), index});
  EXPECT_TRUE(ListPage(Earned(Person(1)), 500, "", &page).ok());  // the server is still up
}

TEST_F(LedgerArchive, Round_OneOrgsFailureDoesNotStopAnotherOrgsArchive) {
  AllowPlenty();
  PostKudos(8);
  std::string broken = org_ + "-broken";
  Redis(common::redis::RegisterOrgCommand(broken));
  Redis(common::redis::IndexOrgSlotCommand(broken));
  Redis({"SET", "ledger:{" + broken + "}:retention", "not a policy \xff\xff"});
  Archiver archiver(env_->pool());
  ledger::RoundStats round = archiver.RunRound(absl::Now() + absl::Hours(24 * 500));
  EXPECT_GE(round.failed, 1);
  EXPECT_EQ(Redis({"LLEN", Key("journal")}).integer, 0);
  EXPECT_EQ(Redis({"HGET", Key("ckpt"), "count"}).str, "8");
  Redis({"SREM", common::redis::OrgRegistryKey(broken), broken});
}

TEST_F(LedgerArchive, Archive_ChunksArePerMonthOfPostTime) {
  AllowPlenty();
  PostKudos(5);
  absl::Time january = absl::FromCivil(absl::CivilSecond(2024, 1, 31, 23, 0, 0), absl::UTCTimeZone());
  for (int i = 0; i < 5; ++i) Backdate(i, january + absl::Hours(i < 2 ? 0 : 2));
  std::vector<std::string> before = AllPages();
  absl::StatusOr<ArchiveStats> stats = Archive(absl::ZeroDuration());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->transfers_archived, 5);
  common::redis::Reply dir = Redis({"ZRANGE", Key("arch:dir"), "0", "-1"});
  ASSERT_EQ(dir.elements.size(), 2u);
  EXPECT_EQ(dir.elements[0].str, "2024-01:1");
  EXPECT_EQ(dir.elements[1].str, "2024-02:3");
  EXPECT_EQ(AllPages(), before);
  EXPECT_TRUE(Verify().consistent());
}

// The ledger service's own rounds (--archive_interval_s): a transfer whose
// stored post time is two years old is folded by a second replica within a
// few rounds, and every read stays as it was.
TEST_F(LedgerArchive, Service_ArchivesEveryOrgOnItsInterval) {
  AllowPlenty();
  PostKudos(3);
  // The oldest transfer, as if posted two years ago (the sequence prefix
  // rule then archives it alone).
  Backdate(0, absl::Now() - absl::Hours(2 * 365 * 24));
  std::vector<std::string> before = AllPages();

  harness::Service replica(LEDGER_BINARY, env_->redis().address(), {"--archive_interval_s=1"});
  std::string count;
  for (int poll = 0; poll < 1500 && count != "1"; ++poll) {  // up to 30 s
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    count = Redis({"HGET", Key("ckpt"), "count"}).str;
  }
  EXPECT_EQ(count, "1");
  EXPECT_EQ(Redis({"LLEN", Key("journal")}).integer, 2);
  EXPECT_EQ(AllPages(), before);
  EXPECT_TRUE(Verify().consistent());
}

// The memory an archived transfer costs, all archive keys included, against
// the live keys it replaces (figure printed; target: a few hundred bytes).
TEST_F(LedgerArchive, Archive_CostsAtMostAFewHundredBytesPerTransfer) {
  AllowPlenty();
  people_ = 400;  // the bench's small org: 400 people, 4,000 kudos, 2 transfers each on average
  constexpr int kTransfers = 4000;
  PostKudos(kTransfers, 4);
  auto bytes_of = [&](const std::string& pattern) {
    int64_t bytes = 0;
    std::string cursor = "0";
    for (int i = 0; i < 100000; ++i) {
      common::redis::Reply reply = Redis({"SCAN", cursor, "MATCH", Key(pattern), "COUNT", "1000"});
      cursor = reply.elements[0].str;
      for (const common::redis::Reply& key : reply.elements[1].elements) {
        bytes += Redis({"MEMORY", "USAGE", key.str, "SAMPLES", "0"}).integer;
      }
      if (cursor == "0") break;
    }
    return bytes;
  };
  auto history_bytes = [&] {
    return bytes_of("tx*") + bytes_of("acct:*") + bytes_of("journal") + bytes_of("arch:*") +
           bytes_of("ckpt*");
  };
  int64_t live = history_bytes();
  absl::Time started = absl::Now();
  ASSERT_EQ(ArchiveAll(), kTransfers);
  absl::Duration took = absl::Now() - started;  // printed only, never asserted
  int64_t archived = history_bytes();
  std::cout << "history bytes per transfer: live " << live / kTransfers << ", archived "
            << archived / kTransfers << " (" << kTransfers << " kudos transfers among "
            << people_ << " people); archived: chunks " << bytes_of("arch:c:*") / kTransfers
            << ", account indexes " << bytes_of("arch:a:*") / kTransfers << "; archiving took "
            << absl::ToInt64Milliseconds(took) << " ms\n";
  EXPECT_LE(archived / kTransfers, 200);
  // Archived history is a small fraction of the live one (a quarter until
  // the live transfers moved into buckets: 260 B live since, 68 archived).
  EXPECT_LT(archived * 3, live);
}

}  // namespace
}  // namespace ledger_test
