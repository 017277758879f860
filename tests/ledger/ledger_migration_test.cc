// Issue 14: the ledger's scripts during a slot migration. A real 3-primary
// Redis Cluster on loopback (tests/harness/redis_cluster.h), the ledger's
// own LedgerStore over the asynchronous client, as ledger_server runs it.
// The slot is left half-moved (target IMPORTING, source MIGRATING, no key
// moved yet), the state in which a script that declares a missing key
// prefix instead of its keys is sent (ASK) to the target, which holds none
// of the org's data yet. With every key in KEYS the source runs a script
// whose keys it all holds, and a script with keys on both sides waits
// (TRYAGAIN, retried by the client) until the migration ends.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/redis/async_client.h"
#include "common/redis/cluster_slots.h"
#include "services/ledger/ledger_store.h"
#include "tests/harness/redis_cluster.h"

namespace ledger_test {
namespace {

using namespace std::chrono_literals;
using common::redis::KeySlot;
using ledger::v1::Account;
using ledger::v1::Transfer;

Account Earned(const std::string& person) {
  Account account;
  account.set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  account.set_person_id(person);
  return account;
}

// A KUDOS transfer as the kudos service posts it.
Transfer Kudos(const std::string& id, const std::string& from, const std::string& to,
               int64_t amount) {
  Transfer transfer;
  transfer.set_transfer_id(id);
  transfer.mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  transfer.mutable_debit_account()->set_person_id(from);
  *transfer.mutable_credit_account() = Earned(to);
  transfer.set_amount(amount);
  transfer.set_kind(ledger::v1::TRANSFER_KIND_KUDOS);
  transfer.set_reference("kudos-" + id);
  (*transfer.mutable_tags())["giver"] = from;
  return transfer;
}

// Blocks until a store call answers (the store's callbacks run on a loop).
template <typename T, typename Call>
absl::StatusOr<T> Await(Call call) {
  std::promise<absl::StatusOr<T>> answered;
  call([&answered](absl::StatusOr<T> result) { answered.set_value(std::move(result)); });
  return answered.get_future().get();
}

class LedgerMigrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new harness::RedisCluster(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(cluster_->WaitUntilStable());
    absl::StatusOr<common::redis::AsyncClientOptions> options =
        common::redis::AsyncClientOptionsFor(cluster_->seeds());
    ASSERT_TRUE(options.ok()) << options.status();
    options->loops = 1;
    redis_ = std::make_unique<common::redis::AsyncClient>(*options);
    store_ = std::make_unique<ledger::LedgerStore>(*redis_);
  }

  absl::StatusOr<std::vector<ledger::PostResult>> Post(const std::string& org,
                                                       const Transfer& transfer,
                                                       std::chrono::milliseconds timeout) {
    return Await<std::vector<ledger::PostResult>>([&](auto done) {
      store_->Post(org, {{0, transfer}}, /*linked=*/true, absl::Now(),
                   common::redis::DeadlineIn(timeout), std::move(done));
    });
  }

  absl::StatusOr<ledger::BalanceInfo> Balance(const std::string& org, const std::string& person,
                                              absl::Time now) {
    return Await<ledger::BalanceInfo>([&](auto done) {
      store_->GetBalance(org, Earned(person), now, common::redis::DeadlineIn(30s),
                         std::move(done));
    });
  }

  // The org's slot moves to another primary; returns that primary.
  static int BeginMigrationOf(const std::string& org) {
    const int slot = KeySlot(org);
    const int to = (cluster_->PrimaryOfSlot(slot) + 1) % 3;
    cluster_->BeginSlotMigration(slot, to);
    return to;
  }

  static harness::RedisCluster* cluster_;
  std::unique_ptr<common::redis::AsyncClient> redis_;
  std::unique_ptr<ledger::LedgerStore> store_;
};

harness::RedisCluster* LedgerMigrationTest::cluster_ = nullptr;

TEST_F(LedgerMigrationTest, SlotMigration_RetriedTransferDuringMigrationIsAppliedOnce) {
  const std::string org = "migretry";
  const Transfer first = Kudos("k-first", "alice", "bob", 5);
  absl::StatusOr<std::vector<ledger::PostResult>> posted = Post(org, first, 30s);
  ASSERT_TRUE(posted.ok()) << posted.status();
  ASSERT_TRUE((*posted)[0].status.ok()) << (*posted)[0].status;
  ASSERT_TRUE((*posted)[0].created);

  const int target = BeginMigrationOf(org);
  // The client's retry of the acknowledged transfer while the slot is half
  // moved, and a new transfer. Each declares a key that exists on neither
  // side: the transfer's own key (tx:<id>), which only versions before the
  // transfer buckets wrote. Redis answers TRYAGAIN until the migration ends
  // and the client retries within the call's deadline; no script runs on
  // the empty target, so the retry is not applied again.
  std::future<absl::StatusOr<std::vector<ledger::PostResult>>> retry =
      std::async(std::launch::async, [&] { return Post(org, first, 60s); });
  std::future<absl::StatusOr<std::vector<ledger::PostResult>>> second = std::async(
      std::launch::async, [&] { return Post(org, Kudos("k-second", "alice", "bob", 7), 60s); });
  std::this_thread::sleep_for(300ms);  // both calls meet the half-moved slot
  cluster_->FinishSlotMigration(KeySlot(org));  // throws on BUSYKEY: keys on both sides
  absl::StatusOr<std::vector<ledger::PostResult>> retried = retry.get();
  ASSERT_TRUE(retried.ok()) << retried.status();
  ASSERT_EQ(retried->size(), 1u);
  ASSERT_TRUE((*retried)[0].status.ok()) << (*retried)[0].status;
  EXPECT_FALSE((*retried)[0].created) << "a retry during a migration applied the transfer again";
  EXPECT_EQ((*retried)[0].transfer.sequence(), (*posted)[0].transfer.sequence());
  absl::StatusOr<std::vector<ledger::PostResult>> applied = second.get();
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_TRUE((*applied)[0].status.ok()) << (*applied)[0].status;
  EXPECT_TRUE((*applied)[0].created);
  EXPECT_EQ(cluster_->PrimaryOfSlot(KeySlot(org)), target);

  absl::StatusOr<ledger::BalanceInfo> bob = Balance(org, "bob", absl::Now());
  ASSERT_TRUE(bob.ok()) << bob.status();
  EXPECT_EQ(bob->balance, 12) << "each transfer counted exactly once";
  absl::StatusOr<ledger::v1::VerifyLedgerResponse> verified = store_->Verify(org);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verified->consistent()) << verified->DebugString();
}

TEST_F(LedgerMigrationTest, SlotMigration_ExpiredHoldIsReleasedWhereTheOrgsDataIs) {
  const std::string org = "mighold";
  const absl::Time now = absl::Now();
  absl::StatusOr<std::vector<ledger::PostResult>> posted =
      Post(org, Kudos("k-fund", "alice", "bob", 20), 30s);
  ASSERT_TRUE(posted.ok()) << posted.status();
  ASSERT_TRUE((*posted)[0].status.ok()) << (*posted)[0].status;
  ledger::v1::CreateRedemptionRequest request;
  request.set_request_id("r-1");
  request.set_reward("mug");
  request.set_points(8);
  request.set_hold_seconds(60);
  absl::StatusOr<ledger::v1::Redemption> held =
      Await<ledger::v1::Redemption>([&](auto done) {
        store_->CreateRedemption(org, "", "bob", request, now, common::redis::DeadlineIn(30s),
                                 std::move(done));
      });
  ASSERT_TRUE(held.ok()) << held.status();
  absl::StatusOr<ledger::BalanceInfo> before = Balance(org, "bob", now);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->held, 8);

  BeginMigrationOf(org);
  // After the hold's expiry: the balance read releases it, reading the
  // redemption record it learns about from the holds (asked for, then
  // declared), on the node that holds the org's data.
  absl::StatusOr<ledger::BalanceInfo> after = Balance(org, "bob", now + absl::Seconds(61));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->balance, 20) << "read where the org's data is";
  EXPECT_EQ(after->held, 0) << "the expired hold is released";
  cluster_->FinishSlotMigration(KeySlot(org));  // throws on BUSYKEY: keys on both sides

  absl::StatusOr<ledger::v1::Redemption> expired =
      Await<ledger::v1::Redemption>([&](auto done) {
        store_->GetRedemption(org, held->redemption_id(), now + absl::Seconds(61),
                              common::redis::DeadlineIn(30s), std::move(done));
      });
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_EQ(expired->state(), ledger::v1::REDEMPTION_STATE_EXPIRED);
  absl::StatusOr<ledger::BalanceInfo> settled = Balance(org, "bob", now + absl::Seconds(62));
  ASSERT_TRUE(settled.ok()) << settled.status();
  EXPECT_EQ(settled->balance, 20);
  EXPECT_EQ(settled->held, 0);
}

}  // namespace
}  // namespace ledger_test
