// The ledger's write concern (issue 14, item 5): WAIT after each write
// script. A real Redis Cluster on loopback with one replica per primary
// (tests/harness/redis_cluster.h), the ledger's own LedgerStore over the
// asynchronous client, as ledger_server runs it. A stalled replica is a
// SIGSTOP (harness::Paused waits until every thread of it has stopped).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/redis/async_client.h"
#include "common/redis/cluster_slots.h"
#include "services/ledger/ledger_keys.h"
#include "services/ledger/ledger_rules.h"
#include "services/ledger/ledger_store.h"
#include "tests/harness/eventually.h"
#include "tests/harness/redis_cluster.h"
#include "tests/harness/stall.h"

namespace ledger_test {
namespace {

using namespace std::chrono_literals;
using common::redis::KeySlot;
using common::redis::Reply;
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

// "field:value" of an INFO reply.
std::string InfoField(const absl::StatusOr<Reply>& info, absl::string_view field) {
  if (!info.ok()) return "";
  for (absl::string_view line : absl::StrSplit(info->str, absl::ByAnyChar("\r\n"))) {
    if (absl::ConsumePrefix(&line, field) && absl::ConsumePrefix(&line, ":")) {
      return std::string(line);
    }
  }
  return "";
}

class LedgerWaitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    harness::RedisCluster::Options options;
    options.replicas_per_primary = 1;
    cluster_ = new harness::RedisCluster(options);
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(cluster_->WaitUntilStable());
    // A cluster just formed still runs its replicas' first full sync: until
    // then WAIT cannot be answered (a write would wait its whole timeout).
    ASSERT_TRUE(harness::Eventually([] {
      for (int node = 0; node < cluster_->size(); ++node) {
        absl::StatusOr<Reply> info = cluster_->Command(node, {"INFO", "replication"});
        if (InfoField(info, "role") == "slave" && InfoField(info, "master_link_status") != "up") {
          return false;
        }
      }
      return true;
    }));
    absl::StatusOr<common::redis::AsyncClientOptions> options =
        common::redis::AsyncClientOptionsFor(cluster_->seeds());
    ASSERT_TRUE(options.ok()) << options.status();
    options->loops = 1;
    redis_ = std::make_unique<common::redis::AsyncClient>(*options);
  }

  // The node replicating `primary` (INFO replication's master_port).
  static int ReplicaOf(int primary) {
    for (int node = 0; node < cluster_->size(); ++node) {
      absl::StatusOr<Reply> info = cluster_->Command(node, {"INFO", "replication"});
      if (InfoField(info, "role") == "slave" &&
          InfoField(info, "master_port") == std::to_string(cluster_->port(primary))) {
        return node;
      }
    }
    return -1;
  }

  static pid_t PidOf(int node) {
    int64_t pid = -1;
    std::string field = InfoField(cluster_->Command(node, {"INFO", "server"}), "process_id");
    return absl::SimpleAtoi(field, &pid) ? static_cast<pid_t>(pid) : -1;
  }

  // A read on the replica itself (READONLY: it serves its primary's slots).
  static absl::StatusOr<Reply> ReadOnReplica(int replica, const common::redis::Command& command) {
    common::redis::Endpoint endpoint;
    endpoint.port = cluster_->port(replica);
    common::redis::Connection connection(endpoint, 10s);
    absl::StatusOr<Reply> readonly = connection.Run({"READONLY"});
    if (!readonly.ok()) return readonly.status();
    return connection.Run(command);
  }

  // A linked post of one transfer through the store; blocks until it answers.
  static absl::StatusOr<std::vector<ledger::PostResult>> Post(ledger::LedgerStore& store,
                                                              const std::string& org,
                                                              const Transfer& transfer,
                                                              std::chrono::milliseconds timeout) {
    std::promise<absl::StatusOr<std::vector<ledger::PostResult>>> answered;
    store.Post(org, {{0, transfer}}, /*linked=*/true, absl::Now(),
               common::redis::DeadlineIn(timeout),
               [&answered](absl::StatusOr<std::vector<ledger::PostResult>> results) {
                 answered.set_value(std::move(results));
               });
    return answered.get_future().get();
  }

  static int64_t Balance(ledger::LedgerStore& store, const std::string& org,
                         const std::string& person) {
    std::promise<absl::StatusOr<ledger::BalanceInfo>> answered;
    store.GetBalance(org, Earned(person), absl::Now(), common::redis::DeadlineIn(10s),
                     [&answered](absl::StatusOr<ledger::BalanceInfo> balance) {
                       answered.set_value(std::move(balance));
                     });
    absl::StatusOr<ledger::BalanceInfo> balance = answered.get_future().get();
    EXPECT_TRUE(balance.ok()) << balance.status();
    return balance.ok() ? balance->balance : -1;
  }

  // Outbox entries of `org` naming `transfer_id`.
  int OutboxCount(const std::string& org, const std::string& transfer_id) {
    absl::StatusOr<Reply> entries = redis_->RunSync(
        {"XRANGE", ledger::LedgerStore::Prefix(org) + "outbox", "-", "+"}, 10s);
    EXPECT_TRUE(entries.ok()) << entries.status();
    int count = 0;
    if (!entries.ok()) return count;
    for (const Reply& entry : entries->elements) {
      ledger::v1::LedgerEvent event;
      EXPECT_TRUE(event.ParseFromString(entry.elements[1].elements[1].str));
      for (const Transfer& t : event.transfers_posted().transfers()) {
        if (t.transfer_id() == transfer_id) ++count;
      }
    }
    return count;
  }

  // Whether the transfer is stored (its bucket's field, scripts/lib.lua).
  static common::redis::Command TxExists(const std::string& org, const std::string& transfer_id) {
    return {"HEXISTS", ledger::keys::TransferBucketKey(org, transfer_id),
            ledger::IndexMember(transfer_id)};
  }

  static harness::RedisCluster* cluster_;
  std::unique_ptr<common::redis::AsyncClient> redis_;
};

harness::RedisCluster* LedgerWaitTest::cluster_ = nullptr;

ledger::WriteConcern WaitForOne(std::chrono::milliseconds timeout) {
  ledger::WriteConcern concern;
  concern.replicas = 1;
  concern.timeout = timeout;
  return concern;
}

TEST_F(LedgerWaitTest, WaitOne_AnAcknowledgedTransferIsAlreadyOnTheReplica) {
  const std::string org = "waitack";
  const int primary = cluster_->PrimaryOfSlot(KeySlot(org));
  const int replica = ReplicaOf(primary);
  ASSERT_GE(replica, 0) << "every primary has a replica";
  ledger::LedgerStore store(*redis_, WaitForOne(5000ms));
  // The first write on a fresh node also exercises the script's reload
  // (NOSCRIPT inside the transaction), and so does one after SCRIPT FLUSH.
  for (int round = 0; round < 2; ++round) {
    const std::string id = absl::StrCat("k-ack-", round);
    absl::StatusOr<std::vector<ledger::PostResult>> posted =
        Post(store, org, Kudos(id, "alice", "bob", 5), 20s);
    ASSERT_TRUE(posted.ok()) << posted.status();
    ASSERT_EQ(posted->size(), 1u);
    ASSERT_TRUE((*posted)[0].status.ok()) << (*posted)[0].status;
    EXPECT_TRUE((*posted)[0].created);
    // Acknowledged means replicated: read at once on the replica, no waiting.
    absl::StatusOr<Reply> exists = ReadOnReplica(replica, TxExists(org, id));
    ASSERT_TRUE(exists.ok()) << exists.status();
    EXPECT_EQ(exists->integer, 1) << id << " is on the replica when the post is acknowledged";
    ASSERT_TRUE(cluster_->Command(primary, {"SCRIPT", "FLUSH"}).ok());
  }
  EXPECT_EQ(Balance(store, org, "bob"), 10);
}

TEST_F(LedgerWaitTest, WaitOne_ReplicaStoppedIsUnavailableOnTimeAndARetryAfterResumeAppliesOnce) {
  const std::string org = "waitstall";
  const int primary = cluster_->PrimaryOfSlot(KeySlot(org));
  const int replica = ReplicaOf(primary);
  ASSERT_GE(replica, 0);
  // Another org on another primary, whose replica keeps answering.
  std::string other;
  for (int i = 0; other.empty() && i < 1000; ++i) {
    std::string candidate = absl::StrCat("waitother", i);
    if (cluster_->PrimaryOfSlot(KeySlot(candidate)) != primary) other = candidate;
  }
  ASSERT_FALSE(other.empty());
  // The stalled call waits 300 ms; every other call a generous 10 s (the
  // machine is noisy: a healthy replica's ack is not a race against a clock).
  ledger::LedgerStore store(*redis_, WaitForOne(300ms));
  ledger::LedgerStore patient(*redis_, WaitForOne(10000ms));
  // Warm: the script is loaded on both primaries and the connections are up.
  for (const std::string& warm : {org, other}) {
    absl::StatusOr<std::vector<ledger::PostResult>> posted =
        Post(patient, warm, Kudos("k-warm", "alice", "carol", 1), 30s);
    ASSERT_TRUE(posted.ok()) << posted.status();
  }

  const Transfer transfer = Kudos("k-stalled", "alice", "bob", 7);
  {
    harness::Paused paused(PidOf(replica));
    ASSERT_TRUE(paused.stopped());
    // Well inside the call's deadline: UNAVAILABLE saying why, not a
    // DEADLINE_EXCEEDED that says nothing.
    absl::StatusOr<std::vector<ledger::PostResult>> posted = Post(store, org, transfer, 10s);
    ASSERT_FALSE(posted.ok());
    EXPECT_TRUE(absl::IsUnavailable(posted.status())) << posted.status();
    EXPECT_TRUE(absl::StrContains(posted.status().message(), "0 of 1 replicas"))
        << posted.status();
    // The write is on the primary all the same (a failover now could lose it).
    absl::StatusOr<Reply> on_primary = redis_->RunSync(TxExists(org, "k-stalled"), 10s);
    ASSERT_TRUE(on_primary.ok()) << on_primary.status();
    EXPECT_EQ(on_primary->integer, 1);
    // Another primary's org is served meanwhile.
    absl::StatusOr<std::vector<ledger::PostResult>> elsewhere =
        Post(patient, other, Kudos("k-meanwhile", "alice", "bob", 2), 30s);
    ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
    EXPECT_TRUE((*elsewhere)[0].status.ok()) << (*elsewhere)[0].status;
  }
  // Resumed: the client's retry with the same transfer id is acknowledged,
  // applied once.
  absl::StatusOr<std::vector<ledger::PostResult>> retried = Post(patient, org, transfer, 30s);
  ASSERT_TRUE(retried.ok()) << retried.status();
  ASSERT_TRUE((*retried)[0].status.ok()) << (*retried)[0].status;
  EXPECT_FALSE((*retried)[0].created) << "the first attempt had applied it";
  EXPECT_EQ(Balance(patient, org, "bob"), 7);
  EXPECT_EQ(OutboxCount(org, "k-stalled"), 1);
  absl::StatusOr<Reply> on_replica = ReadOnReplica(replica, TxExists(org, "k-stalled"));
  ASSERT_TRUE(on_replica.ok()) << on_replica.status();
  EXPECT_EQ(on_replica->integer, 1);
}

// Off (the default): no WAIT, a stalled replica changes nothing.
TEST_F(LedgerWaitTest, WaitOff_AStoppedReplicaDoesNotHoldWrites) {
  const std::string org = "waitoff";
  const int replica = ReplicaOf(cluster_->PrimaryOfSlot(KeySlot(org)));
  ASSERT_GE(replica, 0);
  ledger::LedgerStore store(*redis_);
  harness::Paused paused(PidOf(replica));
  ASSERT_TRUE(paused.stopped());
  absl::StatusOr<std::vector<ledger::PostResult>> posted =
      Post(store, org, Kudos("k-off", "alice", "bob", 3), 20s);
  ASSERT_TRUE(posted.ok()) << posted.status();
  EXPECT_TRUE((*posted)[0].status.ok()) << (*posted)[0].status;
}

}  // namespace
}  // namespace ledger_test
