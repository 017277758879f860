// The kudos store's scripts on a real 3-primary Redis Cluster on loopback
// (tests/harness/redis_cluster.h), issue 14: every script is given every key
// it touches, so while the org's slot migrates a script runs only where all
// of them are (Redis answers TRYAGAIN while they are split, the pool retries)
// and never half on the target; and where the keys depend on stored data
// (a record's feeds, a person's old team, a feed's sealed chunks) the script
// answers 'NEED' and the store calls it again with the keys named.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/redis/cluster_slots.h"
#include "common/redis/redis_client.h"
#include "services/kudos/kudos_store.h"
#include "tests/harness/redis_cluster.h"

namespace kudos {
namespace {

class KudosDeclaredKeysTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new harness::RedisCluster();
    orgs_ = cluster_->OneNamePerPrimary("dk");
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    absl::StatusOr<common::redis::PoolOptions> options =
        common::redis::PoolOptionsFor(cluster_->address(0));
    ASSERT_TRUE(options.ok()) << options.status();
    // TRYAGAIN is retried within this; a migration held open outlasts it.
    options->timeout = std::chrono::milliseconds(1000);
    pool_ = std::make_unique<common::redis::Pool>(*options);
    store_ = std::make_unique<KudosStore>(*pool_);
  }

  // A kudos from `actor` to `recipient`, as the workflow would begin it.
  static BeginRecognition Kudos(const std::string& actor, const std::string& recipient,
                                const std::string& request_id, const std::string& record_id) {
    BeginRecognition begin;
    begin.kind = RecordKind::kKudos;
    begin.actor = actor;
    begin.request_id = request_id;
    begin.fingerprint = std::string(64, 'a');
    begin.record_id = record_id;
    begin.record_pb = "pb-" + record_id;
    begin.now_ms = absl::ToUnixMillis(absl::Now());
    begin.minute_key = std::to_string(begin.now_ms / 60000);
    begin.rate_limit = 100000;
    begin.retry_after_seconds = 1;
    begin.week_key = "2026-W48";
    begin.pair_cap = 1000000;
    begin.points = 5;
    begin.recipients = {recipient};
    begin.event_pb = "event-" + record_id;
    begin.feeds = {"feed:all", "feed:giver:" + actor, "feed:recipient:" + recipient};
    begin.reconcile_at_ms = begin.now_ms + 60000;
    begin.idempotency_ttl_s = 86400;
    return begin;
  }

  // The primary serving `org` now, and another one.
  static int PrimaryOf(const std::string& org) {
    return cluster_->PrimaryOfSlot(common::redis::KeySlot(org));
  }

  static harness::RedisCluster* cluster_;
  static std::map<int, std::string> orgs_;  // primary -> an org it serves
  std::unique_ptr<common::redis::Pool> pool_;
  std::unique_ptr<KudosStore> store_;
};
harness::RedisCluster* KudosDeclaredKeysTest::cluster_ = nullptr;
std::map<int, std::string> KudosDeclaredKeysTest::orgs_;

// Before issue 14 the script declared only the prefix key (which never
// exists): the source answered ASK, and the retry ran on the target, which
// did not hold the request key yet: a second kudos, and keys on both nodes
// (MIGRATE then stops with BUSYKEY).
TEST_F(KudosDeclaredKeysTest, SlotMigration_ARetryDuringTheMigrationIsNeverBegunTwice) {
  const std::string org = orgs_.at(1);
  const int slot = common::redis::KeySlot(org);
  const int from = PrimaryOf(org);
  const int to = (from + 1) % 3;
  absl::StatusOr<BeginOutcome> first = store_->Begin(org, Kudos("alice", "bob", "r1", "k1"));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->is_new);

  cluster_->BeginSlotMigration(slot, to);
  // A client's retry makes a new kudos id; the request key is what counts.
  absl::StatusOr<BeginOutcome> during = store_->Begin(org, Kudos("alice", "bob", "r1", "k2"));
  if (during.ok()) {
    EXPECT_FALSE(during->is_new) << "a retry during the migration began a second kudos";
    EXPECT_EQ(during->record_id, "k1");
  } else {
    EXPECT_EQ(during.status().code(), absl::StatusCode::kUnavailable) << during.status();
  }
  EXPECT_NO_THROW(cluster_->FinishSlotMigration(slot));

  absl::StatusOr<BeginOutcome> after = store_->Begin(org, Kudos("alice", "bob", "r1", "k3"));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_FALSE(after->is_new);
  EXPECT_EQ(after->record_id, "k1");
  absl::StatusOr<std::string> state =
      store_->Finish(org, RecordKind::kKudos, "k1", /*commit=*/true, absl::OkStatus(),
                     KudosStore::FinishFieldsOf(Kudos("alice", "bob", "r1", "k1"), first->seq));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, "COMMITTED");
  EXPECT_EQ(cluster_->Command(to, {"EXISTS", KudosStore::RecordKey(org, RecordKind::kKudos, "k2")})
                ->integer,
            0);
  EXPECT_EQ(cluster_->Command(to, {"ZCARD", KudosStore::FeedHeadKey(org, "feed:all")})->integer, 1);
}

// The reconciler and retries know a record by its id: its feeds, seq, actor
// and week (which name finish_recognition.lua's keys) come back from the
// script first, nothing written, then it commits exactly once.
TEST_F(KudosDeclaredKeysTest, Finish_WithoutTheRecordsFieldsLearnsThemAndCommitsOnce) {
  const std::string org = orgs_.at(0);
  ASSERT_TRUE(store_->Begin(org, Kudos("carol", "dave", "f1", "kf1")).ok());
  absl::StatusOr<std::string> state =
      store_->Finish(org, RecordKind::kKudos, "kf1", /*commit=*/true, absl::OkStatus(), {});
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, "COMMITTED");
  auto seq = pool_->Run({"ZSCORE", KudosStore::FeedHeadKey(org, "feed:all"), "kf1"});
  ASSERT_TRUE(seq.ok()) << seq.status();
  ASSERT_FALSE(seq->is_nil());
  // A public kudos's entry in its other feeds is its seq (finish_recognition.lua).
  for (const char* feed : {"feed:giver:carol", "feed:recipient:dave"}) {
    auto score = pool_->Run({"ZSCORE", KudosStore::FeedHeadKey(org, feed), seq->str});
    ASSERT_TRUE(score.ok()) << score.status();
    EXPECT_EQ(score->str, seq->str) << feed;
  }
  auto events = pool_->Run({"XLEN", KudosStore::EventStream(org)});
  ASSERT_TRUE(events.ok());
  const long long events_after_commit = events->integer;
  state = store_->Finish(org, RecordKind::kKudos, "kf1", /*commit=*/true, absl::OkStatus(), {});
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, "COMMITTED");
  EXPECT_EQ(pool_->Run({"XLEN", KudosStore::EventStream(org)})->integer, events_after_commit);

  // An abort with wrong fields (another actor and week): the caps it
  // releases are the record's own.
  ASSERT_TRUE(store_->Begin(org, Kudos("carol", "erin", "f2", "kf2")).ok());
  const std::string pairs = KudosStore::PairsKey(org, "carol", "2026-W48");
  EXPECT_EQ(pool_->Run({"HGET", pairs, "erin"})->str, "5");
  FinishFields wrong{"1", "feed:all", "", "mallory", "2020-W01", {}};
  state = store_->Finish(org, RecordKind::kKudos, "kf2", /*commit=*/false,
                         absl::FailedPreconditionError("refused"), wrong);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, "ABORTED");
  EXPECT_EQ(pool_->Run({"HGET", pairs, "erin"})->str, "0");
  EXPECT_EQ(pool_->Run({"EXISTS", KudosStore::PairsKey(org, "mallory", "2020-W01")})->integer, 0);
}

// An update usually keeps the person's team (the team the call expects);
// a move learns the old team from the script and leaves it.
TEST_F(KudosDeclaredKeysTest, PutPerson_AMoveToAnotherTeamLeavesTheOldTeamsMembers) {
  const std::string org = orgs_.at(2);
  for (const char* id : {"t1", "t2"}) {
    kudos::v1::Team team;
    team.set_team_id(id);
    ASSERT_TRUE(store_->PutTeam(org, team, "event", "admin").ok());
  }
  kudos::v1::Person person;
  person.set_person_id("pat");
  person.set_team_id("t1");
  ASSERT_TRUE(store_->PutPerson(org, person, /*create=*/true, "event", "admin").ok());
  person.set_team_id("t2");
  absl::Status moved = store_->PutPerson(org, person, /*create=*/false, "event", "admin");
  ASSERT_TRUE(moved.ok()) << moved;
  auto in_t1 = store_->ListPeople(org, "t1", "", 10);
  auto in_t2 = store_->ListPeople(org, "t2", "", 10);
  ASSERT_TRUE(in_t1.ok() && in_t2.ok());
  EXPECT_TRUE(in_t1->empty());
  ASSERT_EQ(in_t2->size(), 1u);
  EXPECT_EQ((*in_t2)[0].person_id(), "pat");
  person.set_team_id("");
  ASSERT_TRUE(store_->PutPerson(org, person, /*create=*/false, "event", "admin").ok());
  in_t2 = store_->ListPeople(org, "t2", "", 10);
  ASSERT_TRUE(in_t2.ok());
  EXPECT_TRUE(in_t2->empty());
}

// Past 128 entries a feed seals chunks named by the sealing commit's seq;
// a range reaching into chunks declares them after the script named them.
TEST_F(KudosDeclaredKeysTest, LiveFeedRange_ReadsSealedChunksItWasNotToldAboutFirst) {
  const std::string org = orgs_.at(1) + "f";
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    const std::string id = absl::StrCat("s", 1000 + i);
    BeginRecognition begin = Kudos("gina", "hank", id, id);
    absl::StatusOr<BeginOutcome> begun = store_->Begin(org, begin);
    ASSERT_TRUE(begun.ok()) << begun.status();
    absl::StatusOr<std::string> state =
        store_->Finish(org, RecordKind::kKudos, id, /*commit=*/true, absl::OkStatus(),
                       KudosStore::FinishFieldsOf(begin, begun->seq));
    ASSERT_TRUE(state.ok()) << state.status();
    ids.push_back(id);
  }
  EXPECT_LE(pool_->Run({"ZCARD", KudosStore::FeedHeadKey(org, "feed:all")})->integer, 128);
  EXPECT_GE(pool_->Run({"ZCARD", KudosStore::FeedChunksKey(org, "feed:all")})->integer, 2);
  auto oldest = store_->LiveFeedRange(org, "feed:all", 0, 250, /*newest_first=*/false);
  ASSERT_TRUE(oldest.ok()) << oldest.status();
  ASSERT_EQ(oldest->size(), 250u);
  for (size_t i = 0; i < oldest->size(); ++i) EXPECT_EQ((*oldest)[i].id, ids[i]) << i;
  auto newest = store_->LiveFeedRange(org, "feed:all", (*oldest)[100].seq, 50, /*newest_first=*/true);
  ASSERT_TRUE(newest.ok()) << newest.status();
  ASSERT_EQ(newest->size(), 50u);
  for (size_t i = 0; i < newest->size(); ++i) EXPECT_EQ((*newest)[i].id, ids[99 - i]) << i;
}

}  // namespace
}  // namespace kudos
