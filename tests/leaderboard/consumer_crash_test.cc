// Issue 15, item 1: the consumer's exactly-once by per-stream high-water
// marks, against a real redis-server and the real library (Store, Projector,
// Consumer). A fault-injection hook stops the consumer dead at a step of a
// batch (as SIGKILL would: nothing after it runs, nothing is cleaned up);
// a new consumer then takes over its pending entries.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/redis/org_registry.h"
#include "services/leaderboard/apply_batch.h"
#include "services/leaderboard/leaderboard_consumer.h"
#include "services/leaderboard/leaderboard_store.h"
#include "services/leaderboard/projection_image.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"
#include "tests/leaderboard/event_writer.h"

ABSL_DECLARE_FLAG(bool, lb_guard_scores_ms);

namespace {

using harness::Eventually;
namespace v1 = leaderboard::v1;

common::redis::PoolOptions PoolFor(const harness::RedisServer& redis) {
  common::redis::PoolOptions options;
  options.endpoint = {"127.0.0.1", redis.port()};
  options.size = 4;
  return options;
}

// Store + Projector + Consumer, as main.cc wires them.
struct Replica {
  Replica(const harness::RedisServer& redis, const std::string& name, int batch,
          std::function<bool(absl::string_view)> crash_hook = nullptr)
      : pool(PoolFor(redis)), store(pool), projector(store, RebuildFor()) {
    store.set_crash_hook(std::move(crash_hook));
    leaderboard::ConsumerOptions options;
    options.endpoint = {"127.0.0.1", redis.port()};
    options.consumer_name = name;
    options.block = std::chrono::milliseconds(50);
    options.claim_min_idle = std::chrono::milliseconds(200);
    options.org_refresh = std::chrono::milliseconds(50);
    options.batch = batch;
    consumer = std::make_unique<leaderboard::Consumer>(store, projector, options, nullptr);
  }
  static leaderboard::RebuildOptions RebuildFor() {
    leaderboard::RebuildOptions options;
    options.min_interval = std::chrono::milliseconds(0);
    return options;
  }
  common::redis::Pool pool;
  leaderboard::Store store;
  leaderboard::Projector projector;
  std::unique_ptr<leaderboard::Consumer> consumer;
};

// Entries of the org's streams not yet acknowledged by the group (pending
// + never delivered); -1 before the group exists.
int64_t Backlog(common::redis::Pool& pool, const std::string& org) {
  int64_t total = 0;
  for (const std::string& stream : {leaderboard::KudosStream(org), leaderboard::LedgerStream(org)}) {
    auto groups = pool.Run({"XINFO", "GROUPS", stream});
    if (!groups.ok() || groups->elements.empty()) return -1;
    const auto& fields = groups->elements[0].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].str == "pending" || fields[i].str == "lag") total += fields[i + 1].integer;
    }
  }
  return total;
}

// Runs `replica`'s consumer until the org's streams have no backlog, then
// stops it; false when the backlog did not reach 0 in time.
bool ConsumeAll(Replica& replica, common::redis::Pool& pool, const std::string& org) {
  replica.consumer->Start();
  const bool drained = Eventually([&] { return Backlog(pool, org) == 0; });
  replica.consumer->Stop();
  return drained;
}

int64_t ZScore(common::redis::Pool& pool, const std::string& key, const std::string& member) {
  auto reply = pool.Run({"ZSCORE", key, member});
  if (!reply.ok() || reply->is_nil()) return 0;
  return std::stoll(reply->str);
}

// The org's all-time points_received board.
std::string AllTimePoints(const std::string& org) {
  return leaderboard::BoardKey(org, v1::METRIC_POINTS_RECEIVED, v1::WINDOW_ALL_TIME, "all",
                               v1::SCOPE_ORG, "");
}

// A kudos transfer `id` (its reference too) of `points` from g to r, no
// team, no values, posted at `t`.
ledger::v1::LedgerEvent TransferToR(const std::string& org, const std::string& id, int64_t points,
                                    absl::Time t) {
  return lbtest::TransfersEvent(org, id, id, ledger::v1::TRANSFER_KIND_KUDOS, "g", {{"r", ""}}, {},
                                points, t);
}

// Moves a guard entry to another key or member, its score kept: how an
// older version would have stored it.
void MoveGuardEntry(common::redis::Pool& pool, const std::string& from_key,
                    const std::string& from_member, const std::string& to_key,
                    const std::string& to_member) {
  auto score = pool.Run({"ZSCORE", from_key, from_member});
  ASSERT_TRUE(score.ok() && !score->is_nil()) << from_key;
  ASSERT_TRUE(pool.Run({"ZREM", from_key, from_member}).ok());
  ASSERT_TRUE(pool.Run({"ZADD", to_key, score->str, to_member}).ok());
}

// Up to `count` transfers named `prefix`0, `prefix`1, ... (the first
// 100,000) whose guard for recipient "r" is in the bucket of `like`'s (trims
// are per bucket).
std::vector<std::string> TransfersInGuardBucketOf(const std::string& like, const std::string& prefix,
                                                  size_t count) {
  const int bucket = leaderboard::GuardBucket("transfer:" + like + ":r");
  std::vector<std::string> names;
  for (int i = 0; i < 100000 && names.size() < count; ++i) {
    const std::string name = absl::StrCat(prefix, i);
    if (leaderboard::GuardBucket("transfer:" + name + ":r") == bucket) names.push_back(name);
  }
  return names;
}

// An org whose ledger stream the tests append to at chosen times.
void RegisterOrg(common::redis::Pool& pool, const std::string& org) {
  ASSERT_TRUE(pool.Run(common::redis::RegisterOrgCommand(org)).ok());
  ASSERT_TRUE(pool.Run(common::redis::IndexOrgSlotCommand(org)).ok());
}

// A transfer to "r" appended to the org's ledger stream at `at_ms` (its
// entry id, the time its guard is scored by).
void AppendTransferAt(common::redis::Pool& pool, const std::string& org, const std::string& transfer,
                      int64_t points, int64_t at_ms) {
  auto event = TransferToR(org, transfer, points, absl::Now());
  auto added = pool.Run({"XADD", leaderboard::LedgerStream(org), absl::StrCat(at_ms, "-0"), "event",
                         event.SerializeAsString()});
  ASSERT_TRUE(added.ok()) << added.status();
}

// Every applied id in the guard buckets of `stream` ('k', 'l', 'r').
std::set<std::string> GuardIds(common::redis::Pool& pool, const std::string& org, char stream) {
  std::set<std::string> ids;
  for (const std::string& key : lbtest::ScanKeys(pool, leaderboard::LegacyGuardKey(org, stream) + ":*")) {
    auto members = pool.Run({"ZRANGE", key, "0", "-1"});
    if (!members.ok()) {
      ADD_FAILURE() << members.status();
      return ids;
    }
    for (const auto& member : members->elements) ids.insert(member.str);
  }
  return ids;
}

// A history with every kind of entry: directory changes between kudos,
// kudos with their transfers, a producer's duplicate append, a boost.
struct History {
  std::map<std::string, int64_t> points;    // all-time points received
  std::map<std::string, int64_t> received;  // all-time kudos received
  int entries = 0;
};

History WriteHistory(lbtest::EventWriter& writer) {
  const std::string& org = writer.org();
  History h;
  const std::vector<std::string> people = {"ann", "bob", "cem", "dia", "eli"};
  for (size_t i = 0; i < people.size(); ++i) {
    writer.Kudos(lbtest::PersonEvent(people[i], people[i], i % 2 ? "ops" : "dev", "",
                                     i == 2 ? "Asia/Kolkata" : ""));
    ++h.entries;
  }
  // Yesterday 21:30 UTC, whatever the hour the test runs: K20 (20 hours
  // earlier) then falls on one day in UTC and the day before in New York,
  // the zone the settings change written right after it sets, so the order
  // in which that change and K20's points are applied shows on the boards.
  const absl::TimeZone utc = absl::UTCTimeZone();
  absl::Time now = absl::FromCivil(absl::ToCivilDay(absl::Now(), utc) - 1, utc) +
                   absl::Hours(21) + absl::Minutes(30);
  for (int i = 0; i < 36; ++i) {
    const std::string& giver = people[i % people.size()];
    const std::string& recipient = people[(i * 3 + 1) % people.size()];
    if (giver == recipient) continue;
    std::string id = absl::StrCat("K", i);
    int64_t points = 1 + i % 4;
    auto sent = lbtest::SentEvent(org, id, giver, "dev", {{recipient, "ops"}}, {"teamwork"},
                                  points, now - absl::Hours(i));
    auto posted = lbtest::TransfersEvent(org, id, id, ledger::v1::TRANSFER_KIND_KUDOS, giver,
                                         {{recipient, "ops"}}, {"teamwork"}, points,
                                         now - absl::Hours(i));
    writer.Kudos(sent);
    writer.Ledger(posted);
    h.entries += 2;
    if (i % 9 == 4) {  // the producers retried after a timeout
      writer.Kudos(sent);
      writer.Ledger(posted);
      h.entries += 2;
    }
    h.points[recipient] += points;
    h.received[recipient] += 1;
    if (i == 20) {
      kudos::v1::OrgSettings settings = leaderboard::DefaultSettings();
      settings.set_time_zone("America/New_York");
      writer.Kudos(lbtest::SettingsEvent(settings));
      writer.Kudos(lbtest::PersonEvent("bob", "bob", "dev", "", "Europe/Paris"));
      h.entries += 2;
    }
  }
  return h;
}

void ExpectTotals(common::redis::Pool& pool, const std::string& org, const History& h,
                  const std::string& where) {
  std::string points = AllTimePoints(org);
  std::string received = leaderboard::BoardKey(org, v1::METRIC_KUDOS_RECEIVED,
                                               v1::WINDOW_ALL_TIME, "all", v1::SCOPE_ORG, "");
  for (const auto& [person, total] : h.points) {
    EXPECT_EQ(ZScore(pool, points, person), total) << where << ": points of " << person;
    EXPECT_EQ(ZScore(pool, received, person), h.received.at(person)) << where << ": " << person;
  }
}

// The keys whose dumps differ (the whole maps are too long to read).
std::string DifferingKeys(const std::map<std::string, std::string>& live,
                          const std::map<std::string, std::string>& replayed) {
  std::string out;
  auto value = [](const std::map<std::string, std::string>& m, const std::string& key) {
    auto it = m.find(key);
    return it == m.end() ? std::string("(absent)") : it->second;
  };
  std::set<std::string> keys;
  for (const auto& [key, dump] : live) keys.insert(key);
  for (const auto& [key, dump] : replayed) keys.insert(key);
  for (const std::string& key : keys) {
    if (value(live, key) == value(replayed, key)) continue;
    absl::StrAppend(&out, "\n", key, "\n  live:    ", value(live, key), "\n  rebuilt: ",
                    value(replayed, key));
  }
  return out;
}

// Kill at each step of a batch (its 1st, 2nd and 4th time), then a new
// consumer takes over: the boards hold every entry exactly once, and equal
// what a rebuild from the streams makes of them (marks included).
TEST(ConsumerCrashTest, Consumer_KilledBetweenAnyTwoStepsAppliesEveryEntryExactlyOnce) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::vector<std::string> steps = {"read", "planned", "applied", "awarded", "acked"};
  for (const std::string& step : steps) {
    for (int nth : {1, 2, 4}) {
      std::string org = absl::StrCat("crash-", step, "-", nth);
      std::string where = absl::StrCat("killed at '", step, "' #", nth);
      lbtest::EventWriter writer(redis.address(), org);
      History history = WriteHistory(writer);
      {
        std::atomic<int> seen{0};
        Replica doomed(redis, "replica-a", 7, [&, step, nth](absl::string_view at) {
          return at == step && ++seen >= nth;
        });
        doomed.consumer->Start();
        ASSERT_TRUE(Eventually([&] { return doomed.store.crashed(); })) << where;
        doomed.consumer->Stop();
      }
      // The same replica restarted (its own pending entries first) ...
      Replica restarted(redis, "replica-a", 7);
      restarted.consumer->Start();
      ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; })) << where;
      restarted.consumer->Stop();
      ExpectTotals(pool, org, history, where);
      auto marks = pool.Run({"HGETALL", leaderboard::MarksKey(org)});
      ASSERT_TRUE(marks.ok());
      EXPECT_EQ(marks->elements.size(), 4u) << where << ": a mark per stream";
      std::map<std::string, std::string> live = lbtest::DumpProjections(pool, org);
      auto rebuilt = restarted.projector.Rebuild(org);
      ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
      EXPECT_EQ(rebuilt->events_read, history.entries);
      std::map<std::string, std::string> replayed = lbtest::DumpProjections(pool, org);
      EXPECT_EQ(live, replayed) << where << DifferingKeys(live, replayed);
    }
  }
}

// Entries claimed from a dead replica after another replica applied the
// entries after them, and a whole stream delivered again: at or below the
// marks, nothing is applied twice; no set of applied ids grows.
TEST(ConsumerCrashTest, Consumer_MarksMakeRedeliveriesAndClaimsNoOpsWithoutAnAppliedSet) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "marks";
  lbtest::EventWriter writer(redis.address(), org);
  History history = WriteHistory(writer);
  {
    std::atomic<int> seen{0};
    Replica doomed(redis, "replica-a", 5, [&](absl::string_view at) {
      return at == "applied" && ++seen >= 3;
    });
    doomed.consumer->Start();
    ASSERT_TRUE(Eventually([&] { return doomed.store.crashed(); }));
    doomed.consumer->Stop();
  }
  Replica other(redis, "replica-b", 5);  // claims replica-a's entries when idle
  other.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  ExpectTotals(pool, org, history, "after the claim");
  writer.ReplayAll();  // every entry delivered again
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  other.consumer->Stop();
  ExpectTotals(pool, org, history, "after a full redelivery");
  auto exists = pool.Run({"EXISTS", leaderboard::AppliedKey(org)});
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(exists->integer, 0) << "no applied set";
  auto last_kudos = pool.Run({"XREVRANGE", leaderboard::KudosStream(org), "+", "-", "COUNT", "1"});
  auto last_ledger = pool.Run({"XREVRANGE", leaderboard::LedgerStream(org), "+", "-", "COUNT", "1"});
  auto marks = pool.Run({"HMGET", leaderboard::MarksKey(org), "k", "l"});
  ASSERT_TRUE(last_kudos.ok() && last_ledger.ok() && marks.ok());
  EXPECT_EQ(marks->elements[0].str, last_kudos->elements[0].elements[0].str);
  EXPECT_EQ(marks->elements[1].str, last_ledger->elements[0].elements[0].str);
}

// A producer's duplicate append (the same transfer id) counts once within
// the retry window (the retention policy's idempotency days, 30 by
// default) after the entry that applied it; ids older than the window
// leave their bucket when a later guard touches it, so a bucket holds only
// the window behind its newest id.
TEST(ConsumerCrashTest, Consumer_DuplicatesWithinTheRetryWindowCountOnceAndOlderIdsAreTrimmed) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "window";
  RegisterOrg(pool, org);
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  const int64_t day_ms = 86400 * 1000;
  auto append = [&](const std::string& transfer, int64_t at_ms) {
    AppendTransferAt(pool, org, transfer, 1, at_ms);
  };
  append("old", now_ms - 100 * day_ms);
  append("recent", now_ms - 40 * day_ms);
  append("recent", now_ms - 35 * day_ms);  // 5 days later: a retry, counted once
  append("old", now_ms - 1 * day_ms);      // 99 days later: outside the window, counted again
  // The newest id shares the bucket of "recent", so its guard trims that bucket.
  const std::vector<std::string> lasts = TransfersInGuardBucketOf("recent", "last", 1);
  ASSERT_EQ(lasts.size(), 1u);
  const std::string& last = lasts[0];
  append(last, now_ms);
  Replica replica(redis, "replica-a", 200);
  ASSERT_TRUE(ConsumeAll(replica, pool, org));
  std::string all = AllTimePoints(org);
  EXPECT_EQ(ZScore(pool, all, "r"), 4);
  // Left: the ids applied within 30 days of the newest entry of their bucket.
  EXPECT_EQ(GuardIds(pool, org, 'l'), (std::set<std::string>{"transfer:old:r", "transfer:" + last + ":r"}));
}

// Issue 15 (memory): a guard is scored -(its entry's unix seconds), a
// 32-bit listpack integer; a guard a version before wrote holds the ms.
// Either form counts a producer's duplicate once within the window, and
// one trim removes both forms once they are older than the window.
TEST(ConsumerCrashTest, Consumer_GuardsScoredInSecondsAndGuardsScoredInMsBeforeCountOnceAndLeaveTogether) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "seconds";
  RegisterOrg(pool, org);
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  const int64_t day_ms = 86400 * 1000;
  // Four transfers whose guards share one bucket (trims are per bucket).
  const std::vector<std::string> names = TransfersInGuardBucketOf("t0", "t", 4);
  ASSERT_EQ(names.size(), 4u);
  const std::string& old_ms = names[0];
  const std::string& old_s = names[1];
  const std::string& recent_s = names[2];
  const std::string& recent_ms = names[3];
  auto append = [&](const std::string& transfer, int64_t at_ms) {
    AppendTransferAt(pool, org, transfer, 1, at_ms);
  };
  auto applied = [&] {
    Replica replica(redis, "replica-a", 200);
    EXPECT_TRUE(ConsumeAll(replica, pool, org));
  };
  const std::string key = leaderboard::GuardKey(org, 'l', "transfer:t0:r");
  auto score = [&](const std::string& transfer) {
    auto reply = pool.Run({"ZSCORE", key, "transfer:" + transfer + ":r"});
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? reply->str : "";
  };
  // Within 30 days of each other: nothing trimmed yet.
  const std::map<std::string, int64_t> at_ms = {{old_ms, now_ms - 41 * day_ms + 123},
                                                {old_s, now_ms - 40 * day_ms + 456},
                                                {recent_s, now_ms - 13 * day_ms + 789},
                                                {recent_ms, now_ms - 12 * day_ms + 999}};
  for (const std::string& name : names) append(name, at_ms.at(name));
  applied();
  for (const std::string& name : names) {
    EXPECT_EQ(score(name), absl::StrCat(-(at_ms.at(name) / 1000))) << name;
  }
  // As a version before left two of them: scored by the entry's ms.
  for (const std::string& name : {old_ms, recent_ms}) {
    ASSERT_TRUE(pool.Run({"ZADD", key, absl::StrCat(at_ms.at(name)), "transfer:" + name + ":r"}).ok());
  }
  // The producers' retries 4 and 5 days later: counted once. The first's
  // cut (38 days back) takes both old guards, whatever their form.
  append(recent_s, now_ms - 9 * day_ms);
  append(recent_ms, now_ms - 8 * day_ms);
  applied();
  EXPECT_EQ(ZScore(pool, AllTimePoints(org), "r"), 4);
  EXPECT_EQ(GuardIds(pool, org, 'l'),
            (std::set<std::string>{"transfer:" + recent_s + ":r", "transfer:" + recent_ms + ":r"}));
  EXPECT_EQ(score(recent_s), absl::StrCat(-(at_ms.at(recent_s) / 1000)));
  EXPECT_EQ(score(recent_ms), absl::StrCat(at_ms.at(recent_ms)));
}

// During the rolling upgrade (--lb_guard_scores_ms) a guard is scored by
// its entry's ms, the form consumers of the version before compare and
// keep; it counts a duplicate once all the same.
TEST(ConsumerCrashTest, Consumer_GuardScoresInMsForARollingUpgradeAreTheEntrysMsAndStillCountOnce) {
  absl::FlagSaver restores_the_flags;
  absl::SetFlag(&FLAGS_lb_guard_scores_ms, true);
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "upgrading";
  RegisterOrg(pool, org);
  const int64_t at_ms = absl::ToUnixMillis(absl::Now()) - 86400 * 1000 + 321;
  AppendTransferAt(pool, org, "T1", 2, at_ms);
  AppendTransferAt(pool, org, "T1", 2, at_ms + 3600 * 1000);  // the producer's retry an hour later
  Replica replica(redis, "replica-a", 200);
  ASSERT_TRUE(ConsumeAll(replica, pool, org));
  EXPECT_EQ(ZScore(pool, AllTimePoints(org), "r"), 2);
  auto score = pool.Run({"ZSCORE", leaderboard::GuardKey(org, 'l', "transfer:T1:r"), "transfer:T1:r"});
  ASSERT_TRUE(score.ok() && !score->is_nil());
  EXPECT_EQ(score->str, absl::StrCat(at_ms));
}

// Upgrading from one guard zset per stream: while it exists every batch of
// the org is refused (ABORTED, retried); the consumer moves its ids into
// their buckets before its first batch of the org, and an id applied before
// the upgrade is still counted once when its producer appends it again.
TEST(ConsumerCrashTest, Consumer_UpgradeMovesAnOlderVersionsAppliedIdsIntoBucketsAndCountsThemOnce) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "split";
  lbtest::EventWriter writer(redis.address(), org);
  absl::Time t = absl::Now();
  writer.Ledger(TransferToR(org, "T1", 3, t));
  std::string all = AllTimePoints(org);
  const std::string legacy = leaderboard::LegacyGuardKey(org, 'l');
  const std::string id = "transfer:T1:r";
  {
    Replica older(redis, "replica-a", 200);
    older.consumer->Start();
    ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
    // As an older version left it: T1's id in the one zset of the stream.
    MoveGuardEntry(pool, leaderboard::GuardKey(org, 'l', id), id, legacy, id);
    // A replica that started before: refused while the zset is there.
    writer.Ledger(TransferToR(org, "T2", 3, t));
    absl::SleepFor(absl::Milliseconds(500));
    EXPECT_EQ(Backlog(pool, org), 1);
    EXPECT_EQ(ZScore(pool, all, "r"), 3);
    older.consumer->Stop();
  }
  writer.Ledger(TransferToR(org, "T1", 3, t));  // the producer's retry, after the upgrade
  Replica replica(redis, "replica-b", 200);
  ASSERT_TRUE(ConsumeAll(replica, pool, org));
  EXPECT_EQ(ZScore(pool, all, "r"), 6) << "T1 once, T2 once";
  EXPECT_EQ(pool.Run({"EXISTS", legacy})->integer, 0);
  EXPECT_EQ(GuardIds(pool, org, 'l'), (std::set<std::string>{id, "transfer:T2:r"}));
}

// Issue 15 (memory): a guard stores its logical id's kudos id packed
// (GuardMember); an id a version before the packing stored as its text
// still counts once when its producer appends it again within the window.
TEST(ConsumerCrashTest, Consumer_GuardsStoreIdsPackedAndAnIdStoredAsTextStillCountsOnce) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "packed";
  lbtest::EventWriter writer(redis.address(), org);
  absl::Time t = absl::Now();
  const std::string t1 = "k0123456789abcdef01234567";
  const std::string t2 = "k89abcdef0123456789abcdef";
  const std::string id = "transfer:" + t1 + ":r";
  const std::string bucket = leaderboard::GuardKey(org, 'l', id);
  std::string all = AllTimePoints(org);
  Replica replica(redis, "replica-a", 200);
  replica.consumer->Start();
  writer.Ledger(TransferToR(org, t1, 3, t));
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  EXPECT_EQ(GuardIds(pool, org, 'l'), (std::set<std::string>{leaderboard::GuardMember(id)}));
  EXPECT_EQ(leaderboard::GuardMember(id).size(), 15u);  // kind, 12 bytes, ":r"
  // As a version before the packing left it: the text.
  MoveGuardEntry(pool, bucket, leaderboard::GuardMember(id), bucket, id);
  writer.Ledger(TransferToR(org, t1, 3, t));  // the producer's retry
  writer.Ledger(TransferToR(org, t2, 3, t));
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();
  EXPECT_EQ(ZScore(pool, all, "r"), 6) << "t1 once, t2 once";
  EXPECT_EQ(GuardIds(pool, org, 'l'),
            (std::set<std::string>{id, leaderboard::GuardMember("transfer:" + t2 + ":r")}));
}

// Upgrading from the applied set: while a stream has no mark yet, its
// entries in the old `lb:{org}:applied` set (and logical ids there) are
// applied already; the first batch sets the marks.
TEST(ConsumerCrashTest, Consumer_UpgradeReadsTheOldAppliedSetUntilTheStreamHasAMark) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "upgrade";
  lbtest::EventWriter writer(redis.address(), org);
  absl::Time t = absl::Now();
  auto transfer = [&](const std::string& id, int64_t points) {
    return writer.Ledger(TransferToR(org, id, points, t));
  };
  std::string applied_before = transfer("A", 1);  // applied by the old version, still pending
  transfer("B", 10);
  transfer("A", 1);  // a producer's duplicate of A, after the upgrade
  transfer("C", 100);
  ASSERT_TRUE(pool.Run({"SADD", leaderboard::AppliedKey(org), "l:" + applied_before,
                        "transfer:A:r"}).ok());
  Replica replica(redis, "replica-a", 200);
  ASSERT_TRUE(ConsumeAll(replica, pool, org));
  std::string all = AllTimePoints(org);
  EXPECT_EQ(ZScore(pool, all, "r"), 110);  // B and C only
  auto mark = pool.Run({"HGET", leaderboard::MarksKey(org), "l"});
  ASSERT_TRUE(mark.ok());
  EXPECT_FALSE(mark->str.empty());
}

// Upgrade window: an old version's consumer read e1..e5 (pending, never
// applied) and died; the new consumer reads e6..e10 while the stream has no
// mark yet. It must not apply them (that would set the mark past e1..e5,
// which are then dropped as applied once claimed): it waits until it claimed
// e1..e5, then applies all ten exactly once.
TEST(ConsumerCrashTest, Consumer_UpgradeWaitsForAnotherConsumersEarlierPendingEntries) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "upgrade-pending";
  lbtest::EventWriter writer(redis.address(), org);
  std::string stream = leaderboard::LedgerStream(org);
  int64_t total = 0;
  for (int i = 0; i < 10; ++i) {
    std::string id = absl::StrCat("T", i);
    writer.Ledger(TransferToR(org, id, 1 << i, absl::Now()));
    total += 1 << i;
  }
  // The old version's applied set exists (other entries of it).
  ASSERT_TRUE(pool.Run({"SADD", leaderboard::AppliedKey(org), "l:1-1"}).ok());
  leaderboard::ConsumerOptions defaults;
  ASSERT_TRUE(pool.Run({"XGROUP", "CREATE", stream, defaults.group, "0"}).ok());
  auto old_read = pool.Run({"XREADGROUP", "GROUP", defaults.group, "old-pod", "COUNT", "5",
                            "STREAMS", stream, ">"});
  ASSERT_TRUE(old_read.ok());
  Replica replica(redis, "new-pod", 5);
  ASSERT_TRUE(ConsumeAll(replica, pool, org));
  std::string all = AllTimePoints(org);
  EXPECT_EQ(ZScore(pool, all, "r"), total) << "every entry applied exactly once";
}

// A batch's increments are summed per (board, member) before they are sent:
// 40 kudos to one person in one batch are one ZINCRBY per board.
TEST(ConsumerCrashTest, Consumer_SendsOneIncrementPerBoardAndMemberPerBatch) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "agg";
  lbtest::EventWriter writer(redis.address(), org);
  absl::Time t = absl::Now();
  for (int i = 0; i < 40; ++i) {
    std::string id = absl::StrCat("K", i);
    writer.Ledger(lbtest::TransfersEvent(org, id, id, ledger::v1::TRANSFER_KIND_KUDOS, "g",
                                         {{"r", "ops"}}, {"teamwork"}, 2, t));
  }
  ASSERT_TRUE(pool.Run({"CONFIG", "RESETSTAT"}).ok());
  Replica replica(redis, "replica-a", 200);
  ASSERT_TRUE(ConsumeAll(replica, pool, org));
  std::string all = AllTimePoints(org);
  EXPECT_EQ(ZScore(pool, all, "r"), 80);
  auto info = pool.Run({"INFO", "commandstats"});
  ASSERT_TRUE(info.ok());
  std::string stats = info->str;
  size_t at = stats.find("cmdstat_zincrby:calls=");
  ASSERT_NE(at, std::string::npos);
  int64_t calls = std::stoll(stats.substr(at + 22));
  // points_received x (6 windows of org; day, week, month, year of team,
  // teams and value: their quarter and all-time are derived on read) boards,
  // one member each (24 before sub-scope boards were derived).
  EXPECT_EQ(calls, 6 + 3 * 4) << stats;
}

// The logical guards of a batch (one per transfer here) are read with one
// ZMSCORE and written with one ZADD per guard bucket they fall in, not a
// ZSCORE and a ZADD per entry (issue 15: fewest commands per batch).
TEST(ConsumerCrashTest, Consumer_ReadsAndWritesABatchsGuardsWithOneCommandPerBucket) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "guards";
  lbtest::EventWriter writer(redis.address(), org);
  absl::Time t = absl::Now();
  for (int i = 0; i < 40; ++i) {
    std::string id = absl::StrCat("K", i);
    writer.Ledger(lbtest::TransfersEvent(org, id, id, ledger::v1::TRANSFER_KIND_KUDOS, "g",
                                         {{"r", "ops"}}, {"teamwork"}, 2, t));
  }
  ASSERT_TRUE(pool.Run({"CONFIG", "RESETSTAT"}).ok());
  Replica replica(redis, "replica-a", 200);
  ASSERT_TRUE(ConsumeAll(replica, pool, org));
  auto info = pool.Run({"INFO", "commandstats"});  // before this test's own reads
  ASSERT_TRUE(info.ok());
  std::string all = AllTimePoints(org);
  EXPECT_EQ(ZScore(pool, all, "r"), 80);
  EXPECT_EQ(GuardIds(pool, org, 'l').size(), 40u);
  std::set<int> buckets;
  for (int i = 0; i < 40; ++i) buckets.insert(leaderboard::GuardBucket(absl::StrCat("transfer:K", i, ":r")));
  auto calls = [&](const std::string& command) -> int64_t {
    std::string field = absl::StrCat("cmdstat_", command, ":calls=");
    size_t at = info->str.find(field);
    return at == std::string::npos ? 0 : std::stoll(info->str.substr(at + field.size()));
  };
  EXPECT_EQ(calls("zscore"), 0) << info->str;
  EXPECT_EQ(calls("zmscore"), static_cast<int64_t>(buckets.size())) << info->str;
  EXPECT_EQ(calls("zadd"), static_cast<int64_t>(buckets.size())) << info->str;
}

// Calls of `command` in an INFO commandstats text (0 when never called).
int64_t CommandCalls(const std::string& stats, const std::string& command) {
  std::string field = absl::StrCat("cmdstat_", command, ":calls=");
  size_t at = stats.find(field);
  return at == std::string::npos ? 0 : std::stoll(stats.substr(at + field.size()));
}

// A board's expiry depends only on its period, so a replica sets it once,
// when it first sees the board, not in every batch that brings the board a
// new member (issue 15: fewest commands; a board's members arrive over many
// batches). 40 transfers to 40 people, 10 per batch: every batch has new
// members on every board; each board with an expiry gets one EXPIREAT.
TEST(ConsumerCrashTest, Consumer_SetsEachBoardsExpiryOnceNotInEveryBatch) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "expiry";
  lbtest::EventWriter writer(redis.address(), org);
  absl::Time t = absl::Now();
  for (int i = 0; i < 40; ++i) {
    std::string id = absl::StrCat("K", i);
    writer.Ledger(lbtest::TransfersEvent(org, id, id, ledger::v1::TRANSFER_KIND_KUDOS, "g",
                                         {{absl::StrCat("r", i), "ops"}}, {"teamwork"}, 2, t));
  }
  ASSERT_TRUE(pool.Run({"CONFIG", "RESETSTAT"}).ok());
  Replica replica(redis, "replica-a", 10);
  ASSERT_TRUE(ConsumeAll(replica, pool, org));
  auto info = pool.Run({"INFO", "commandstats"});  // before this test's own reads
  ASSERT_TRUE(info.ok());
  int64_t boards_with_expiry = 0;
  auto keys = replica.store.ProjectionKeys(org);
  ASSERT_TRUE(keys.ok());
  for (const std::string& key : *keys) {
    if (key.find(":points_received:") == std::string::npos) continue;
    auto ttl = pool.Run({"PEXPIRETIME", key});
    ASSERT_TRUE(ttl.ok());
    if (ttl->integer > 0) ++boards_with_expiry;
  }
  // Day, week, month and quarter of the org; day, week and month of team,
  // teams and value (years and all-time are kept forever).
  EXPECT_EQ(boards_with_expiry, 4 + 3 * 3);
  EXPECT_EQ(CommandCalls(info->str, "expireat"), boards_with_expiry) << info->str;
  std::string day = leaderboard::BoardKey(org, v1::METRIC_POINTS_RECEIVED, v1::WINDOW_DAY,
                                          absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone()),
                                          v1::SCOPE_ORG, "");
  EXPECT_EQ(pool.Run({"ZCARD", day})->integer, 40);
}

// A batch's increments are sent grouped per board: each board's key index
// and expiry once, then (member, total) per member, not four arguments per
// (board, member) (issue 15: Redis reads every argument into the script).
TEST(ConsumerCrashTest, Consumer_SendsEachBoardsKeyAndExpiryOncePerBatchNotPerMember) {
  const std::string org = "grouped";
  const leaderboard::OrgCalendar calendar =
      leaderboard::CalendarFromSettings(leaderboard::DefaultSettings());
  absl::Time t = absl::Now();
  std::vector<leaderboard::ApplyPlan> plans;
  for (int i = 0; i < 40; ++i) {
    std::string id = absl::StrCat("K", i);
    plans.push_back(leaderboard::PlanLedgerEvent(
        org, absl::StrCat("l:1700000000000-", i),
        lbtest::TransfersEvent(org, id, id, ledger::v1::TRANSFER_KIND_KUDOS, "g",
                               {{absl::StrCat("r", i), "ops"}}, {"teamwork"}, 2, t),
        calendar));
  }
  std::vector<const leaderboard::ApplyPlan*> batch;
  for (const auto& plan : plans) batch.push_back(&plan);
  auto call = leaderboard::BuildBatchCall(org, batch, "", leaderboard::AppliedBefore{});
  ASSERT_TRUE(call.ok()) << call.status();
  // 18 boards (6 org windows; day, week, month, year of team, teams, value),
  // 40 members each except teams (one member: the team).
  const size_t boards = 18, pairs = 15 * 40 + 3 * 1;
  EXPECT_EQ(call->boards.size(), boards);
  size_t other = 0;  // the plans' arguments but their increments (Z, 5 each)
  for (const auto& plan : plans) {
    other += plan.args.size() - 5 * std::count(plan.args.begin(), plan.args.end(), "Z");
  }
  EXPECT_LE(call->args.size(), 2 * pairs + 4 * boards + other) << "four per pair: " << 4 * pairs;
}

// What a replica remembers of boards' expiries is bounded: past the bound
// the boards whose expiry passed go first, then all of them.
TEST(ConsumerCrashTest, Consumer_KnownExpiriesStayWithinTheirBound) {
  leaderboard::KnownExpiries known;
  const int64_t now_s = 1800000000;
  for (int i = 0; i < 10; ++i) {
    known.boards[absl::StrCat("lb:{b}:points_received:day:", i, ":org")] =
        i < 4 ? now_s - 1 : now_s + 86400;
  }
  EXPECT_EQ(leaderboard::BoundExpiries(&known, 10, now_s), 10u) << "within the bound: kept";
  EXPECT_EQ(leaderboard::BoundExpiries(&known, 8, now_s), 6u) << "the lapsed ones go first";
  EXPECT_TRUE(known.Knows("lb:{b}:points_received:day:5:org", now_s + 86400, now_s));
  EXPECT_FALSE(known.Knows("lb:{b}:points_received:day:5:org", now_s + 86400, now_s + 86000))
      << "an expiry within the margin is not trusted";
  EXPECT_EQ(leaderboard::BoundExpiries(&known, 5, now_s), 0u) << "still past it: all go";
}

// The entries of `stream` after `after` (advanced past them), applied by
// `replica`'s projector as one batch.
void ApplyNew(Replica& replica, const std::string& org, leaderboard::StreamKind kind,
              std::string& after) {
  const std::string stream =
      kind == leaderboard::StreamKind::kKudos ? leaderboard::KudosStream(org)
                                              : leaderboard::LedgerStream(org);
  auto entries = replica.store.Range(stream, after, 100);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_FALSE(entries->empty());
  std::vector<leaderboard::Projector::BatchItem> items;
  for (const auto& entry : *entries) items.push_back({&org, kind, &entry});
  auto applied = replica.projector.ApplyBatch(items);
  ASSERT_TRUE(applied.ok()) << applied.status();
  after = entries->back().id;
}

// The ledger's reversal of every transfer of `original` (a RETRACTION:
// the recipient's EARNED debited, tagged with the original and its time).
ledger::v1::LedgerEvent Reversal(const ledger::v1::LedgerEvent& original) {
  ledger::v1::LedgerEvent event = original;
  for (auto& transfer : *event.mutable_transfers_posted()->mutable_transfers()) {
    (*transfer.mutable_tags())["retracts"] = transfer.transfer_id();
    (*transfer.mutable_tags())["retracts_post_ms"] =
        absl::StrCat(absl::ToUnixMillis(leaderboard::FromProto(transfer.post_time())));
    transfer.set_transfer_id("retract:" + transfer.transfer_id());
    std::swap(*transfer.mutable_debit_account(), *transfer.mutable_credit_account());
    transfer.set_kind(ledger::v1::TRANSFER_KIND_RETRACTION);
  }
  return event;
}

// What a replica knows of boards' expiries goes stale when a board is
// removed: another replica's retraction takes a board's only member back
// (the board leaves Redis), or a rebuild swaps the projections. A board
// made again afterwards still gets its expiry.
TEST(ConsumerCrashTest, Consumer_ABoardRemovedByAnotherReplicaGetsItsExpiryWhenMadeAgain) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "expiry2";
  lbtest::EventWriter writer(redis.address(), org);
  Replica a(redis, "replica-a", 10), b(redis, "replica-b", 10);
  absl::Time t = absl::Now();
  std::string day = leaderboard::BoardKey(org, v1::METRIC_POINTS_RECEIVED, v1::WINDOW_DAY,
                                          absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone()),
                                          v1::SCOPE_ORG, "");
  auto expiry_of = [&] { return pool.Run({"PEXPIRETIME", day})->integer; };
  std::string after = "-";
  ledger::v1::LedgerEvent first = lbtest::TransfersEvent(
      org, "K1", "K1", ledger::v1::TRANSFER_KIND_KUDOS, "g", {{"x", "ops"}}, {"teamwork"}, 3, t);
  writer.Ledger(first);
  ApplyNew(a, org, leaderboard::StreamKind::kLedger, after);
  const int64_t expiry = expiry_of();
  ASSERT_GT(expiry, 0);
  // b takes K1's points back: x was the board's only member.
  ledger::v1::LedgerEvent reversal = Reversal(first);
  writer.Ledger(reversal);
  ApplyNew(b, org, leaderboard::StreamKind::kLedger, after);
  ASSERT_EQ(pool.Run({"EXISTS", day})->integer, 0);
  writer.Ledger(lbtest::TransfersEvent(org, "K2", "K2", ledger::v1::TRANSFER_KIND_KUDOS, "g",
                                       {{"y", "ops"}}, {"teamwork"}, 2, t));
  ApplyNew(a, org, leaderboard::StreamKind::kLedger, after);
  EXPECT_EQ(ZScore(pool, day, "y"), 2);
  EXPECT_EQ(expiry_of(), expiry) << "made again by a replica that had set its expiry before";
  // After a rebuild (its swap sets every kept key's expiry itself), the
  // same again: y's points taken back by b, then a gives z a kudos.
  ASSERT_TRUE(b.projector.Rebuild(org).ok());
  writer.Ledger(Reversal(lbtest::TransfersEvent(org, "K2", "K2", ledger::v1::TRANSFER_KIND_KUDOS,
                                                "g", {{"y", "ops"}}, {"teamwork"}, 2, t)));
  ApplyNew(b, org, leaderboard::StreamKind::kLedger, after);
  ASSERT_EQ(pool.Run({"EXISTS", day})->integer, 0);
  writer.Ledger(lbtest::TransfersEvent(org, "K3", "K3", ledger::v1::TRANSFER_KIND_KUDOS, "g",
                                       {{"z", "ops"}}, {"teamwork"}, 1, t));
  ApplyNew(a, org, leaderboard::StreamKind::kLedger, after);
  EXPECT_EQ(ZScore(pool, day, "z"), 1);
  EXPECT_EQ(expiry_of(), expiry);
}

// Both streams of `org` copied from one Redis to another with the same ids,
// from after `after` (stream key -> last id copied).
void CopyStreams(common::redis::Pool& from, common::redis::Pool& to, const std::string& org,
                 std::map<std::string, std::string>& after) {
  for (const std::string& stream : {leaderboard::KudosStream(org), leaderboard::LedgerStream(org)}) {
    std::string start = after.count(stream) ? "(" + after[stream] : "-";
    auto entries = from.Run({"XRANGE", stream, start, "+"});
    ASSERT_TRUE(entries.ok());
    for (const auto& entry : entries->elements) {
      const auto& fields = entry.elements[1].elements;
      ASSERT_TRUE(to.Run({"XADD", stream, entry.elements[0].str, fields[0].str, fields[1].str}).ok());
      after[stream] = entry.elements[0].str;
    }
  }
  ASSERT_TRUE(to.Run(common::redis::RegisterOrgCommand(org)).ok());
  ASSERT_TRUE(to.Run(common::redis::IndexOrgSlotCommand(org)).ok());
}

// Issue 15, item 3: a compaction stores the projection as a snapshot and
// trims the streams below it; a rebuild from the snapshot + the tails gives
// the same projection as a full replay of the untrimmed streams (a second
// Redis holding the same entries, never compacted).
TEST(SnapshotTest, Compact_RebuildFromSnapshotAndTrimmedStreamsEqualsAFullReplay) {
  harness::RedisServer redis;
  harness::RedisServer untrimmed_redis;
  common::redis::Pool pool(PoolFor(redis));
  common::redis::Pool untrimmed(PoolFor(untrimmed_redis));
  const std::string org = "snap";
  // The trim removes whole macro nodes only: small ones, so it removes some.
  ASSERT_TRUE(pool.Run({"CONFIG", "SET", "stream-node-max-entries", "4"}).ok());
  lbtest::EventWriter writer(redis.address(), org);
  std::map<std::string, std::string> copied;
  WriteHistory(writer);
  CopyStreams(pool, untrimmed, org, copied);
  Replica replica(redis, "replica-a", 50);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  auto compacted = replica.projector.Compact(org);
  ASSERT_TRUE(compacted.ok()) << compacted.status();
  EXPECT_GT(compacted->trimmed, 0);
  auto length = pool.Run({"XLEN", leaderboard::LedgerStream(org)});
  ASSERT_TRUE(length.ok());
  EXPECT_LE(length->integer, 4) << "trimmed to the macro node holding the snapshot's mark";
  // More history after the snapshot (the tail), then a second compaction
  // starts from the first snapshot.
  WriteHistory(writer);
  CopyStreams(pool, untrimmed, org, copied);
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  ASSERT_TRUE(replica.projector.Compact(org).ok());
  WriteHistory(writer);
  CopyStreams(pool, untrimmed, org, copied);
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();
  std::map<std::string, std::string> live = lbtest::DumpProjections(pool, org);
  auto rebuilt = replica.projector.Rebuild(org);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  std::map<std::string, std::string> from_snapshot = lbtest::DumpProjections(pool, org);
  EXPECT_EQ(from_snapshot, live);
  Replica other(untrimmed_redis, "replica-b", 50);
  auto full = other.projector.Rebuild(org);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_GT(full->events_read, rebuilt->events_read) << "the full replay read the trimmed entries";
  EXPECT_EQ(lbtest::DumpProjections(untrimmed, org), from_snapshot);
}

// The trim keeps every entry another consumer group has not acknowledged
// or not been delivered yet.
TEST(SnapshotTest, Compact_NeverTrimsWhatAConsumerGroupHasNotAcknowledged) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "groups";
  // Macro nodes of 2 entries: the approximate trim can stop exactly at ids[2].
  ASSERT_TRUE(pool.Run({"CONFIG", "SET", "stream-node-max-entries", "2"}).ok());
  lbtest::EventWriter writer(redis.address(), org);
  std::string stream = leaderboard::LedgerStream(org);
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(writer.Ledger(TransferToR(org, absl::StrCat("T", i), 1, absl::Now())));
  }
  // Another reader's group: entries 0..4 delivered, 2..4 still pending.
  ASSERT_TRUE(pool.Run({"XGROUP", "CREATE", stream, "other", "0"}).ok());
  ASSERT_TRUE(pool.Run({"XREADGROUP", "GROUP", "other", "o1", "COUNT", "5", "STREAMS", stream, ">"}).ok());
  ASSERT_TRUE(pool.Run({"XACK", stream, "other", ids[0], ids[1]}).ok());
  Replica replica(redis, "replica-a", 200);
  ASSERT_TRUE(ConsumeAll(replica, pool, org));
  auto compacted = replica.projector.Compact(org);
  ASSERT_TRUE(compacted.ok()) << compacted.status();
  auto first = pool.Run({"XRANGE", stream, "-", "+", "COUNT", "1"});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->elements[0].elements[0].str, ids[2]) << "the oldest pending entry stays";
  // Once the other group acknowledged everything, the next compaction trims
  // to the snapshot's mark.
  ASSERT_TRUE(pool.Run({"XREADGROUP", "GROUP", "other", "o1", "STREAMS", stream, ">"}).ok());
  common::redis::Command ack = {"XACK", stream, "other"};
  ack.insert(ack.end(), ids.begin(), ids.end());
  ASSERT_TRUE(pool.Run(ack).ok());
  ASSERT_TRUE(replica.projector.Compact(org).ok());
  first = pool.Run({"XRANGE", stream, "-", "+"});
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->elements.size(), 2u) << "the macro node holding the mark stays";
  EXPECT_EQ(first->elements[1].elements[0].str, ids.back());
}

// The background compactor: an org past the stream length gets a snapshot
// and trimmed streams; a smaller org is left alone.
TEST(SnapshotTest, Compactor_CompactsOnlyOrgsWhoseStreamsPassTheLength) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  lbtest::EventWriter big(redis.address(), "big");
  lbtest::EventWriter small(redis.address(), "small");
  WriteHistory(big);
  for (int i = 0; i < 3; ++i) {
    small.Ledger(TransferToR("small", absl::StrCat("S", i), 1, absl::Now()));
  }
  Replica replica(redis, "replica-a", 200);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, "big") == 0 && Backlog(pool, "small") == 0; }));
  leaderboard::Compactor::Options options;
  options.min_entries = 20;
  leaderboard::Compactor compactor(replica.store, replica.projector, options);
  EXPECT_EQ(compactor.RunOnce(), 1);
  replica.consumer->Stop();
  auto exists = pool.Pipeline({{"EXISTS", leaderboard::SnapshotKey("big")},
                               {"EXISTS", leaderboard::SnapshotKey("small")},
                               {"XLEN", leaderboard::LedgerStream("small")}});
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ((*exists)[0]->integer, 1);
  EXPECT_EQ((*exists)[1]->integer, 0);
  EXPECT_EQ((*exists)[2]->integer, 3);
}

// Due by length whatever the bytes; by bytes only past min_bytes, past the
// snapshot's size and with entries the snapshot does not cover.
TEST(SnapshotTest, CompactionDue_OnceTheStreamsOutweighTheSnapshotOrPassTheLength) {
  leaderboard::Compactor::Options options;
  options.min_entries = 1000;
  options.min_bytes = 100;
  auto due = [&](int64_t entries, int64_t bytes, int64_t snapshot, bool past) {
    leaderboard::CompactionSizes sizes;
    sizes.stream_entries = entries;
    sizes.stream_bytes = bytes;
    sizes.snapshot_bytes = snapshot;
    sizes.marks_past_snapshot = past;
    return leaderboard::CompactionDue(sizes, options);
  };
  EXPECT_TRUE(due(1000, 0, 0, false)) << "the length alone";
  EXPECT_FALSE(due(999, 100, 0, true)) << "not past min_bytes";
  EXPECT_TRUE(due(999, 101, 0, true)) << "no snapshot yet";
  EXPECT_FALSE(due(999, 5000, 5000, true)) << "not heavier than the snapshot";
  EXPECT_TRUE(due(999, 5001, 5000, true));
  EXPECT_FALSE(due(999, 5001, 5000, false)) << "nothing new to cover: a lagging group holds the trim";
}

// The background compactor by bytes: an org whose streams outweigh its
// (absent) snapshot is compacted; the next pass leaves it alone, though its
// streams still hold the macro nodes the trim keeps, until the consumer
// applied entries the snapshot does not cover.
TEST(SnapshotTest, Compactor_CompactsByBytesOnlyWhenThereIsSomethingNewToCover) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "grow";
  lbtest::EventWriter writer(redis.address(), org);
  WriteHistory(writer);
  Replica replica(redis, "replica-a", 200);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  leaderboard::Compactor::Options options;
  options.min_entries = 1000000;
  options.min_bytes = 1;
  leaderboard::Compactor compactor(replica.store, replica.projector, options);
  EXPECT_EQ(compactor.RunOnce(), 1);
  auto marks = [&] {
    auto reply = pool.Run({"HMGET", leaderboard::SnapshotMarksKey(org), "k", "l"});
    return reply.ok() ? reply->elements[0].str + " " + reply->elements[1].str : reply.status().ToString();
  };
  const std::string first = marks();
  EXPECT_EQ(compactor.RunOnce(), 0) << "nothing new since the snapshot";
  EXPECT_EQ(marks(), first);

  WriteHistory(writer);
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  leaderboard::Compactor::Options heavy = options;
  heavy.min_bytes = 1 << 30;
  leaderboard::Compactor waiting(replica.store, replica.projector, heavy);
  EXPECT_EQ(waiting.RunOnce(), 0) << "under min_bytes";
  EXPECT_EQ(compactor.RunOnce(), 1) << "new entries past the snapshot, streams heavier than it";
  replica.consumer->Stop();
  EXPECT_NE(marks(), first);
}

// A compaction whose lock lapsed to another replica (it paused past the
// lock's TTL) can neither extend the other's lock nor store its snapshot;
// once it holds the lock again, a snapshot older than the stored one's marks
// is refused (the streams may be trimmed up to those marks already).
TEST(SnapshotTest, Compact_AStaleCompactionNeitherRefreshesNorStoresOverANewerSnapshot) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "stale";
  Replica replica(redis, "replica-a", 50);
  leaderboard::Projector& projector = replica.projector;
  const std::string lock = leaderboard::CompactLockKey(org);
  // A took the lock, it lapsed; B holds it now.
  ASSERT_TRUE(pool.Run({"SET", lock, "token-b", "PX", "600000"}).ok());
  absl::Status refreshed = projector.RefreshCompactLock(org, "token-a");
  EXPECT_EQ(refreshed.code(), absl::StatusCode::kAborted) << refreshed;
  absl::Status stored = projector.StoreSnapshot(org, "token-a", "snapshot-a", "5-0", "5-0");
  EXPECT_EQ(stored.code(), absl::StatusCode::kAborted) << stored;
  EXPECT_TRUE(projector.RefreshCompactLock(org, "token-b").ok());
  ASSERT_TRUE(projector.StoreSnapshot(org, "token-b", "snapshot-b", "9-0", "9-0").ok());
  // B released; A takes the lock again, with its older image.
  ASSERT_TRUE(pool.Run({"DEL", lock}).ok());
  ASSERT_TRUE(pool.Run({"SET", lock, "token-a", "PX", "600000"}).ok());
  stored = projector.StoreSnapshot(org, "token-a", "snapshot-a", "5-0", "9-0");
  EXPECT_EQ(stored.code(), absl::StatusCode::kFailedPrecondition) << stored;
  stored = projector.StoreSnapshot(org, "token-a", "snapshot-a", "10-0", "8-5");
  EXPECT_EQ(stored.code(), absl::StatusCode::kFailedPrecondition) << stored;
  auto snapshot = pool.Run({"GET", leaderboard::SnapshotKey(org)});
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->str, "snapshot-b");
  // Covering at least the stored marks replaces it.
  ASSERT_TRUE(projector.StoreSnapshot(org, "token-a", "snapshot-a2", "9-0", "10-0").ok());
  snapshot = pool.Run({"GET", leaderboard::SnapshotKey(org)});
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->str, "snapshot-a2");
}

// A stream trimmed above the snapshot's mark lost entries no snapshot
// covers: the rebuild says so (DATA_LOSS) and keeps the live boards instead
// of swapping in boards missing them.
TEST(SnapshotTest, Rebuild_RefusesWhenAStreamWasTrimmedPastTheSnapshotsMark) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "overtrim";
  lbtest::EventWriter writer(redis.address(), org);
  std::string stream = leaderboard::LedgerStream(org);
  std::vector<std::string> ids;
  auto write = [&](int count) {
    for (int i = 0; i < count; ++i) {
      std::string id = absl::StrCat("T", ids.size());
      ids.push_back(writer.Ledger(TransferToR(org, id, 1, absl::Now())));
    }
  };
  write(10);
  Replica replica(redis, "replica-a", 50);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  ASSERT_TRUE(replica.projector.Compact(org).ok());  // the snapshot covers ids[9]
  write(10);
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();
  // Trimmed up to ids[15]: ids[10..14] are neither in the snapshot nor the tail.
  ASSERT_TRUE(pool.Run({"XTRIM", stream, "MINID", ids[15]}).ok());
  std::map<std::string, std::string> live = lbtest::DumpProjections(pool, org);
  auto rebuilt = replica.projector.Rebuild(org);
  ASSERT_FALSE(rebuilt.ok());
  EXPECT_EQ(rebuilt.status().code(), absl::StatusCode::kDataLoss) << rebuilt.status();
  EXPECT_NE(rebuilt.status().message().find(ids[15]), std::string::npos) << rebuilt.status();
  EXPECT_EQ(lbtest::DumpProjections(pool, org), live) << "the live boards are kept";
  auto compacted = replica.projector.Compact(org);
  EXPECT_EQ(compacted.status().code(), absl::StatusCode::kDataLoss) << compacted.status();
}

// The trim is approximate and bounded: each compaction removes at most
// trim_limit entries of a stream, never one at or past the snapshot's mark;
// the next compactions continue it.
TEST(SnapshotTest, Compact_TrimIsBoundedPerCallAndNeverPassesTheMark) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "long";
  ASSERT_TRUE(pool.Run({"CONFIG", "SET", "stream-node-max-entries", "10"}).ok());
  lbtest::EventWriter writer(redis.address(), org);
  std::string stream = leaderboard::LedgerStream(org);
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    std::string id = absl::StrCat("T", i);
    ids.push_back(writer.Ledger(TransferToR(org, id, 1, absl::Now())));
  }
  Replica replica(redis, "replica-a", 200);
  ASSERT_TRUE(ConsumeAll(replica, pool, org));
  leaderboard::RebuildOptions options = Replica::RebuildFor();
  options.trim_limit = 50;
  leaderboard::Projector projector(replica.store, options);
  int64_t total = 0;
  int rounds = 0;
  for (; rounds < 20; ++rounds) {
    auto compacted = projector.Compact(org);
    ASSERT_TRUE(compacted.ok()) << compacted.status();
    EXPECT_LE(compacted->trimmed, 50) << "round " << rounds;
    auto first = pool.Run({"XRANGE", stream, "-", "+", "COUNT", "1"});
    ASSERT_TRUE(first.ok());
    ASSERT_EQ(first->elements.size(), 1u);
    EXPECT_FALSE(leaderboard::StreamIdLess(ids.back(), first->elements[0].elements[0].str))
        << "round " << rounds << ": trimmed past the mark";
    if (compacted->trimmed == 0) break;
    total += compacted->trimmed;
  }
  EXPECT_GE(rounds, 6) << "one compaction removed more than its limit";
  EXPECT_GE(total, 290) << "all but the macro node holding the mark";
  std::map<std::string, std::string> live = lbtest::DumpProjections(pool, org);
  auto rebuilt = projector.Rebuild(org);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(lbtest::DumpProjections(pool, org), live);
}

}  // namespace
