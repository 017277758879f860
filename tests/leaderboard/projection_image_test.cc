// The rebuild's in-memory image against the apply script: the same plans,
// applied once through Redis (scripts/apply_event.lua) and once in memory
// then written in bulk to another Redis, must leave identical keys, values
// and expiry times, including periods whose retention already ended.
#include "services/leaderboard/projection_image.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "services/leaderboard/apply_batch.h"
#include "services/leaderboard/leaderboard_store.h"
#include "tests/harness/process.h"
#include "tests/leaderboard/event_writer.h"

namespace {

using leaderboard::ApplyPlan;
using leaderboard::OrgCalendar;
using leaderboard::ProjectionImage;
using leaderboard::Store;

common::redis::PoolOptions PoolFor(const harness::RedisServer& redis) {
  common::redis::PoolOptions options;
  options.endpoint = {"127.0.0.1", redis.port()};
  options.size = 2;
  return options;
}

TEST(ProjectionImageTest, SameKeysValuesAndExpiryAsTheApplyScriptOnRandomEvents) {
  const std::string org = "img";
  harness::RedisServer script_redis;
  harness::RedisServer image_redis;
  common::redis::Pool script_pool(PoolFor(script_redis));
  common::redis::Pool image_pool(PoolFor(image_redis));
  Store store(script_pool);
  absl::Time now = absl::Now();
  ProjectionImage image(now);

  std::mt19937 rng(20261123);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const std::vector<std::string> zones = {"", "Europe/Paris", "America/New_York",
                                          "Pacific/Kiritimati", "Asia/Kolkata"};
  const std::vector<std::string> people = {"ann", "bob", "cem", "dia", "eli", "fay"};
  const std::vector<std::string> teams = {"", "ops", "dev"};
  std::vector<std::string> catalog = leaderboard::CalendarFromSettings(
                                         leaderboard::DefaultSettings()).values;
  ASSERT_FALSE(catalog.empty());

  int entry = 0;
  std::vector<kudos::v1::KudosEvent> sent_before;
  auto apply = [&](const ApplyPlan& plan, const OrgCalendar& calendar) {
    absl::StatusOr<std::vector<bool>> by_script = store.ApplyAll({{&plan, &org, &calendar}});
    ASSERT_TRUE(by_script.ok()) << by_script.status();
    absl::StatusOr<bool> by_image = image.Apply(plan);
    ASSERT_TRUE(by_image.ok()) << by_image.status();
    EXPECT_EQ((*by_script)[0], *by_image) << plan.args[0];
    for (const auto& check : plan.streak_checks) image.CheckGivingStreak(org, calendar, check);
  };
  for (int step = 0; step < 400; ++step) {
    absl::StatusOr<OrgCalendar> calendar = image.Calendar(org);
    ASSERT_TRUE(calendar.ok());
    absl::StatusOr<OrgCalendar> stored = store.Calendar(org);
    ASSERT_TRUE(stored.ok());
    ASSERT_EQ(calendar->zone_name, stored->zone_name);
    std::string dedupe = absl::StrCat("k:", ++entry, "-0");
    int kind = pick(20);
    kudos::v1::KudosEvent event;
    if (kind == 0) {
      kudos::v1::OrgSettings settings = leaderboard::DefaultSettings();
      settings.set_time_zone(zones[pick(zones.size())]);
      event = lbtest::SettingsEvent(settings);
    } else if (kind <= 3) {
      event = lbtest::PersonEvent(people[pick(people.size())], "Someone",
                                  teams[pick(teams.size())], "", zones[pick(zones.size())]);
    } else if (kind == 4 && !sent_before.empty()) {
      event = sent_before[pick(sent_before.size())];  // a producer's retry: counted once
    } else {
      // Over 500 days: day and week boards whose retention ended are
      // created and deleted at once, as EXPIREAT in the past does.
      absl::Time t = now - absl::Minutes(pick(500 * 24 * 60));
      std::string giver = people[pick(people.size())];
      std::string recipient = people[pick(people.size())];
      if (recipient == giver) continue;
      std::vector<std::string> values = {catalog[pick(catalog.size())]};
      if (pick(3) == 0) values.push_back(catalog[pick(catalog.size())]);
      int64_t points = 1 + pick(20);
      // Half the ids of the form the kudos service gives: guards pack them.
      std::string kudos_id = step % 2 == 0 ? absl::StrFormat("k%024x", step) : absl::StrCat("K", step);
      if (pick(2) == 0) {
        event = lbtest::SentEvent(org, kudos_id, giver, teams[pick(teams.size())],
                                  {{recipient, teams[pick(teams.size())]}}, values, points, t);
        sent_before.push_back(event);
      } else {
        ledger::v1::LedgerEvent posted = lbtest::TransfersEvent(
            org, kudos_id, kudos_id, ledger::v1::TRANSFER_KIND_KUDOS, giver,
            {{recipient, teams[pick(teams.size())]}}, values, points, t);
        ApplyPlan plan = leaderboard::PlanLedgerEvent(org, absl::StrCat("l:", entry, "-0"),
                                                      posted, *calendar);
        apply(plan, *calendar);
        continue;
      }
    }
    std::map<std::string, kudos::v1::Person> known =
        image.People(org, leaderboard::PeopleOfEvent(event));
    ApplyPlan plan = leaderboard::PlanKudosEvent(
        org, dedupe, event, *calendar, [&](const std::string& id) {
          auto it = known.find(id);
          return it == known.end() ? std::string() : it->second.time_zone();
        });
    apply(plan, *calendar);
  }
  ASSERT_TRUE(image.Write(image_pool, 50, nullptr).ok());
  std::map<std::string, std::string> by_script = lbtest::DumpProjections(script_pool, org);
  std::map<std::string, std::string> by_image = lbtest::DumpProjections(image_pool, org);
  EXPECT_GT(by_script.size(), 100u);
  EXPECT_EQ(by_script.size(), by_image.size());
  int differing = 0;
  for (const auto& [key, text] : by_script) {
    auto it = by_image.find(key);
    if (it == by_image.end() || it->second != text) {
      if (++differing <= 5) {
        ADD_FAILURE() << key << "\n script: " << text
                      << "\n image:  " << (it == by_image.end() ? "(missing)" : it->second);
      }
    }
  }
  EXPECT_EQ(differing, 0);
}

// The live consumer sends an org's batch as one script with its increments
// summed (apply_batch.h); the image applies entry by entry. Random batches,
// some delivered twice (a redelivery), must leave the same keys.
TEST(ProjectionImageTest, BatchedApplyWithSummedIncrementsMatchesTheImageEntryByEntry) {
  const std::string org = "imgb";
  harness::RedisServer script_redis;
  harness::RedisServer image_redis;
  common::redis::Pool script_pool(PoolFor(script_redis));
  common::redis::Pool image_pool(PoolFor(image_redis));
  Store store(script_pool);
  ProjectionImage image(absl::Now());
  std::mt19937 rng(20261129);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const std::vector<std::string> people = {"ann", "bob", "cem", "dia"};
  const std::vector<std::string> teams = {"", "ops", "dev"};
  std::vector<std::string> catalog =
      leaderboard::CalendarFromSettings(leaderboard::DefaultSettings()).values;
  std::vector<ApplyPlan> plans;
  std::vector<OrgCalendar> calendars;
  std::vector<kudos::v1::KudosEvent> sent_before;
  for (int entry = 1; entry <= 600; ++entry) {
    absl::StatusOr<OrgCalendar> calendar = image.Calendar(org);
    ASSERT_TRUE(calendar.ok());
    int kind = pick(30);
    std::string giver = people[pick(people.size())];
    std::string recipient = people[pick(people.size())];
    absl::Time t = absl::Now() - absl::Minutes(pick(400 * 24 * 60));
    std::vector<std::string> values = {catalog[pick(catalog.size())]};
    std::string id = entry % 2 == 0 ? absl::StrFormat("k%024x", entry) : absl::StrCat("K", entry);
    ApplyPlan plan;
    if (kind == 0) {
      plan = leaderboard::PlanKudosEvent(
          org, absl::StrCat("k:", entry, "-0"),
          lbtest::PersonEvent(giver, "Someone", teams[pick(teams.size())], "", "Asia/Kolkata"),
          *calendar, [](const std::string&) { return std::string(); });
    } else if (kind == 1 && !sent_before.empty()) {
      plan = leaderboard::PlanKudosEvent(org, absl::StrCat("k:", entry, "-0"),
                                         sent_before[pick(sent_before.size())], *calendar,
                                         [](const std::string&) { return std::string(); });
    } else if (kind % 2 == 0 && giver != recipient) {
      auto event = lbtest::SentEvent(org, id, giver, teams[pick(teams.size())],
                                     {{recipient, teams[pick(teams.size())]}}, values, 1, t);
      sent_before.push_back(event);
      std::map<std::string, kudos::v1::Person> known =
          image.People(org, leaderboard::PeopleOfEvent(event));
      plan = leaderboard::PlanKudosEvent(
          org, absl::StrCat("k:", entry, "-0"), event, *calendar, [&](const std::string& p) {
            auto it = known.find(p);
            return it == known.end() ? std::string() : it->second.time_zone();
          });
    } else {
      auto posted = lbtest::TransfersEvent(org, id, id, ledger::v1::TRANSFER_KIND_KUDOS, giver,
                                           {{recipient, teams[pick(teams.size())]}}, values,
                                           1 + pick(9), t);
      plan = leaderboard::PlanLedgerEvent(org, absl::StrCat("l:", entry, "-0"), posted, *calendar);
    }
    absl::StatusOr<bool> by_image = image.Apply(plan);
    ASSERT_TRUE(by_image.ok()) << by_image.status();
    for (const auto& check : plan.streak_checks) image.CheckGivingStreak(org, *calendar, check);
    plans.push_back(std::move(plan));
    calendars.push_back(*calendar);
  }
  size_t at = 0;
  int redelivered = 0;
  while (at < plans.size()) {
    size_t end = std::min(plans.size(), at + 1 + pick(40));
    std::vector<Store::PlanToApply> batch;
    for (size_t i = at; i < end; ++i) batch.push_back({&plans[i], &org, &calendars[i]});
    absl::StatusOr<std::vector<bool>> applied = store.ApplyAll(batch);
    ASSERT_TRUE(applied.ok()) << applied.status();
    for (bool one : *applied) EXPECT_TRUE(one);
    if (pick(5) == 0) {  // delivered again, with the next entry: only that one is new
      size_t next = std::min(plans.size(), end + 1);
      for (size_t i = end; i < next; ++i) batch.push_back({&plans[i], &org, &calendars[i]});
      applied = store.ApplyAll(batch);
      ASSERT_TRUE(applied.ok()) << applied.status();
      for (size_t i = 0; i < applied->size(); ++i) {
        EXPECT_EQ((*applied)[i], at + i >= end) << i;
      }
      end = next;
      ++redelivered;
    }
    at = end;
  }
  EXPECT_GT(redelivered, 0);
  ASSERT_TRUE(image.Write(image_pool, 50, nullptr).ok());
  std::map<std::string, std::string> by_script = lbtest::DumpProjections(script_pool, org);
  std::map<std::string, std::string> by_image = lbtest::DumpProjections(image_pool, org);
  EXPECT_GT(by_script.size(), 100u);
  EXPECT_EQ(by_script.size(), by_image.size());
  int differing = 0;
  for (const auto& [key, text] : by_script) {
    auto it = by_image.find(key);
    if (it == by_image.end() || it->second != text) {
      if (++differing <= 5) {
        ADD_FAILURE() << key << "\n script: " << text
                      << "\n image:  " << (it == by_image.end() ? "(missing)" : it->second);
      }
    }
  }
  EXPECT_EQ(differing, 0);
}

}  // namespace

namespace {

// A snapshot of a version that wrote the sub-scope quarter and all-time
// boards: those leave the image, the org-scope year boards' years are listed.
TEST(ProjectionImageTest, UpgradeDropsDerivedBoardsOfAnOlderSnapshotAndListsItsYears) {
  const std::string org = "up";
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  ProjectionImage image(absl::Now());
  ApplyPlan plan;
  const std::string p = leaderboard::Prefix(org);
  plan.keys = {leaderboard::MarksKey(org), leaderboard::RebuildLockKey(org),
               p + "points_received:year:2025:org", p + "kudos_given:year:2024:org",
               p + "points_received:year:2025:team:t1", p + "points_received:all:all:team:t1",
               p + "points_received:quarter:2025-Q4:value:v", p + "points_received:all:all:org"};
  plan.args = {"l:1-0", ""};
  for (int k = 3; k <= 8; ++k) {
    for (const char* arg : {"Z", "", "a", "5", "0"}) plan.args.push_back(arg);
    plan.args[plan.args.size() - 4] = absl::StrCat(k);
  }
  ASSERT_TRUE(image.Apply(plan).ok());
  EXPECT_EQ(image.UpgradeDerivedBoards(org), 2);
  EXPECT_EQ(image.UpgradeDerivedBoards(org), 0);  // nothing left to drop
  ASSERT_TRUE(image.Write(pool, 50, nullptr).ok());
  std::map<std::string, std::string> keys = lbtest::DumpProjections(pool, org);
  EXPECT_EQ(keys.count(p + "points_received:all:all:team:t1"), 0u);
  EXPECT_EQ(keys.count(p + "points_received:quarter:2025-Q4:value:v"), 0u);
  EXPECT_EQ(keys.count(p + "points_received:all:all:org"), 1u);  // org scope: materialized
  EXPECT_EQ(keys.count(p + "points_received:year:2025:team:t1"), 1u);
  ASSERT_EQ(keys.count(leaderboard::YearsKey(org)), 1u);
  EXPECT_NE(keys[leaderboard::YearsKey(org)].find("2024,2025"), std::string::npos)
      << keys[leaderboard::YearsKey(org)];
}

// A snapshot in the format before LBS2 (LBS1: every number a u64), written
// here by hand: one key of each kind, expiry, a score with a fraction.
std::string SnapshotV1(int64_t expire_at) {
  std::string raw = "LBS1";
  auto u64 = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) raw.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  auto str = [&](const std::string& v) {
    u64(v.size());
    raw += v;
  };
  auto score = [&](double v) {
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    u64(bits);
  };
  u64(5);
  str("lb:{v1}:str");
  u64(0), u64(0), str("text");
  str("lb:{v1}:hash");
  u64(1), u64(0), u64(2), str("b"), str("2"), str("a"), str("1");
  str("lb:{v1}:set");
  u64(2), u64(0), u64(2), str("y"), str("x");
  str("lb:{v1}:board");
  u64(3), u64(static_cast<uint64_t>(expire_at)), u64(3);
  str("zed"), score(-7), str("amy"), score(12.5), str("bo"), score(1700000000000);
  str("lb:{v1}:totals");  // integers only: LBS2 stores differences
  u64(3), u64(0), u64(3);
  str("zed"), score(-7), str("amy"), score(3), str("bo"), score(1700000000000);
  std::string compressed(ZSTD_compressBound(raw.size()), '\0');
  compressed.resize(ZSTD_compress(compressed.data(), compressed.size(), raw.data(), raw.size(), 3));
  return compressed;
}

std::string Decompressed(const std::string& compressed) {
  std::string raw(ZSTD_getFrameContentSize(compressed.data(), compressed.size()), '\0');
  raw.resize(ZSTD_decompress(raw.data(), raw.size(), compressed.data(), compressed.size()));
  return raw;
}

// Issue 15 (memory): snapshots are LBS2 (varints, sorted keys and members,
// a zset's scores as differences); one stored as LBS1 still loads the
// same keys, and writing it again gives byte for byte what the LBS2 copy
// gives. Bytes that are not a snapshot are DATA_LOSS.
TEST(ProjectionImageTest, Snapshot_WritesLbs2AndReadsLbs1IntoTheSameImage) {
  const int64_t expire_at = absl::ToUnixSeconds(absl::Now()) + 86400;
  absl::StatusOr<ProjectionImage> from_v1 = ProjectionImage::Parse(SnapshotV1(expire_at), absl::Now());
  ASSERT_TRUE(from_v1.ok()) << from_v1.status();
  absl::StatusOr<std::string> v2 = from_v1->Serialize();
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(Decompressed(*v2).substr(0, 4), "LBS2");
  absl::StatusOr<ProjectionImage> from_v2 = ProjectionImage::Parse(*v2, absl::Now());
  ASSERT_TRUE(from_v2.ok()) << from_v2.status();
  absl::StatusOr<std::string> again = from_v2->Serialize();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *v2);  // sorted: the same image, the same bytes

  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  ASSERT_TRUE(from_v2->Write(pool, 50, nullptr).ok());
  EXPECT_EQ(pool.Run({"GET", "lb:{v1}:str"})->str, "text");
  EXPECT_EQ(pool.Run({"HGET", "lb:{v1}:hash", "a"})->str, "1");
  EXPECT_EQ(pool.Run({"HGET", "lb:{v1}:hash", "b"})->str, "2");
  EXPECT_EQ(pool.Run({"SCARD", "lb:{v1}:set"})->integer, 2);
  EXPECT_EQ(pool.Run({"ZSCORE", "lb:{v1}:board", "amy"})->str, "12.5");
  EXPECT_EQ(pool.Run({"ZSCORE", "lb:{v1}:board", "zed"})->str, "-7");
  EXPECT_EQ(pool.Run({"ZSCORE", "lb:{v1}:board", "bo"})->str, "1700000000000");
  EXPECT_EQ(pool.Run({"EXPIRETIME", "lb:{v1}:board"})->integer, expire_at);
  for (const auto& [member, total] : std::vector<std::pair<std::string, std::string>>{
           {"zed", "-7"}, {"amy", "3"}, {"bo", "1700000000000"}}) {
    EXPECT_EQ(pool.Run({"ZSCORE", "lb:{v1}:totals", member})->str, total) << member;
  }

  const std::string raw = Decompressed(*v2);
  for (size_t cut : {raw.size() - 1, raw.size() / 2, size_t{5}}) {
    std::string truncated = raw.substr(0, cut);
    std::string compressed(ZSTD_compressBound(truncated.size()), '\0');
    compressed.resize(
        ZSTD_compress(compressed.data(), compressed.size(), truncated.data(), truncated.size(), 3));
    EXPECT_EQ(ProjectionImage::Parse(compressed, absl::Now()).status().code(), absl::StatusCode::kDataLoss)
        << "cut at " << cut;
  }
}

// A snapshot of a version that kept one guard zset per stream: its ids move
// into their buckets, with their scores; the old zset leaves the image.
TEST(ProjectionImageTest, UpgradeSplitsAnOlderSnapshotsGuardZsetIntoBuckets) {
  const std::string org = "guards";
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  ProjectionImage older(absl::Now());
  ApplyPlan plan;
  const std::string legacy = leaderboard::LegacyGuardKey(org, 'l');
  plan.keys = {leaderboard::MarksKey(org), leaderboard::RebuildLockKey(org), legacy};
  plan.args = {"l:1700000000000-0", ""};
  const std::vector<std::string> ids = {"transfer:a:r", "transfer:b:r", "transfer:c:r"};
  for (const std::string& id : ids) {
    plan.args.insert(plan.args.end(), {"G", id, "3", absl::StrCat(int64_t{30} * 86400 * 1000)});
  }
  ASSERT_TRUE(older.Apply(plan).ok());
  absl::StatusOr<std::string> snapshot = older.Serialize();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  absl::StatusOr<ProjectionImage> image = ProjectionImage::Parse(*snapshot, absl::Now());
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->SplitLegacyGuards(org), 3);
  EXPECT_EQ(image->SplitLegacyGuards(org), 0);  // nothing left to move
  ASSERT_TRUE(image->Write(pool, 50, nullptr).ok());
  std::map<std::string, std::string> keys = lbtest::DumpProjections(pool, org);
  EXPECT_EQ(keys.count(legacy), 0u);
  for (const std::string& id : ids) {
    const std::string bucket = leaderboard::GuardKey(org, 'l', id);
    auto score = pool.Run({"ZSCORE", bucket, id});
    ASSERT_TRUE(score.ok()) << score.status();
    EXPECT_EQ(score->str, "-1700000000") << bucket;  // GuardScore: -(the entry's seconds)
  }
}

// Issue 15 (memory): a snapshot of a version before guards were packed
// holds a logical id as its text. Within the window the image finds it
// there, as the apply script does, and skips the entry; a new id is stored
// packed (GuardMember).
TEST(ProjectionImageTest, AGuardAnOlderSnapshotHoldsAsTextStillSkipsItsIdOnce) {
  const std::string org = "packed";
  const std::string id = "kudos:k0123456789abcdef01234567";
  const std::string fresh = "kudos:k89abcdef0123456789abcdef";
  const std::string bucket = leaderboard::GuardKey(org, 'k', id);
  const std::string fresh_bucket = leaderboard::GuardKey(org, 'k', fresh);
  const std::string board = "lb:{packed}:probe";
  const std::string window = absl::StrCat(int64_t{30} * 86400 * 1000);
  ProjectionImage older(absl::Now());
  ApplyPlan stored;
  stored.keys = {leaderboard::MarksKey(org), leaderboard::RebuildLockKey(org), bucket};
  // What the older version's guard left: the text id scored by its entry's ms.
  stored.args = {"k:1700000000000-0", "", "Z", "3", id, "1700000000000", "0"};
  ASSERT_TRUE(older.Apply(stored).ok());
  absl::StatusOr<std::string> snapshot = older.Serialize();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  absl::StatusOr<ProjectionImage> image = ProjectionImage::Parse(*snapshot, absl::Now());
  ASSERT_TRUE(image.ok()) << image.status();
  auto counted = [&](const std::string& entry, const std::string& logical_id,
                     const std::string& guard_key, const std::string& member) {
    ApplyPlan plan;
    plan.keys = {leaderboard::MarksKey(org), leaderboard::RebuildLockKey(org), guard_key, board};
    plan.args = {entry, "", "G", logical_id, "3", window, "Z", "4", member, "1", "0"};
    EXPECT_TRUE(image->Apply(plan).ok());
  };
  counted("k:1700000001000-0", id, bucket, "retry");  // 1 s later: the producer's retry
  counted("k:1700000002000-0", fresh, fresh_bucket, "fresh");
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  ASSERT_TRUE(image->Write(pool, 50, nullptr).ok());
  EXPECT_TRUE(pool.Run({"ZSCORE", board, "retry"})->is_nil());
  EXPECT_EQ(pool.Run({"ZSCORE", board, "fresh"})->str, "1");
  EXPECT_EQ(pool.Run({"ZSCORE", bucket, id})->str, "1700000000000");
  EXPECT_EQ(pool.Run({"ZSCORE", fresh_bucket, leaderboard::GuardMember(fresh)})->str, "-1700000002");
  EXPECT_TRUE(pool.Run({"ZSCORE", fresh_bucket, fresh})->is_nil());
}

}  // namespace

namespace {

// The rebuild stages its image over several connections at once, in small
// pipelines here (7 commands), with boards over 500 members (chunked
// ZADDs): once swapped in, the keys equal the image written directly.
TEST(ProjectionImageTest, StagingOverSeveralConnectionsSwapsInExactlyTheImage) {
  const std::string org = "stage";
  harness::RedisServer direct_redis;
  harness::RedisServer staged_redis;
  common::redis::PoolOptions direct_options = PoolFor(direct_redis);
  common::redis::PoolOptions staged_options = PoolFor(staged_redis);
  staged_options.size = 4;
  common::redis::Pool direct_pool(direct_options);
  common::redis::Pool staged_pool(staged_options);
  Store store(staged_pool);
  absl::Time now = absl::Now();
  ProjectionImage image(now);
  absl::StatusOr<OrgCalendar> calendar = image.Calendar(org);
  ASSERT_TRUE(calendar.ok());
  std::vector<std::string> catalog = calendar->values;
  ASSERT_FALSE(catalog.empty());
  std::mt19937 rng(20261129);
  for (int k = 0; k < 1500; ++k) {
    std::string giver = absl::StrCat("p", rng() % 700);
    std::string recipient = absl::StrCat("p", rng() % 700);
    if (giver == recipient) continue;
    absl::Time t = now - absl::Minutes(static_cast<int>(rng() % (40 * 24 * 60)));
    kudos::v1::KudosEvent event = lbtest::SentEvent(
        org, absl::StrCat("K", k), giver, absl::StrCat("t", rng() % 5),
        {{recipient, absl::StrCat("t", rng() % 5)}}, {catalog[rng() % catalog.size()]},
        1 + static_cast<int64_t>(rng() % 7), t);
    ApplyPlan plan = leaderboard::PlanKudosEvent(org, absl::StrCat("k:", k + 1, "-0"), event,
                                                 *calendar,
                                                 [](const std::string&) { return std::string(); });
    ASSERT_TRUE(image.Apply(plan).ok());
  }
  ASSERT_TRUE(image.Write(direct_pool, 50, nullptr).ok());

  ASSERT_TRUE(store.BeginRebuild(org, "tok", std::chrono::seconds(30), std::chrono::milliseconds(0)).ok());
  int refreshes = 0;
  absl::StatusOr<std::vector<leaderboard::StagedKey>> staged = image.Stage(
      staged_pool, leaderboard::StagingPrefix(org) + "tok:", std::chrono::minutes(10), 7,
      [&] {
        ++refreshes;
        return absl::OkStatus();
      },
      /*connections=*/3);
  ASSERT_TRUE(staged.ok()) << staged.status();
  ASSERT_EQ(staged->size(), image.key_count());
  EXPECT_LE(refreshes, 60);  // at most once a second
  std::set<std::string> names;
  for (const leaderboard::StagedKey& key : *staged) {
    names.insert(key.staging);
    absl::StatusOr<common::redis::Reply> ttl = staged_pool.Run({"PTTL", key.staging});
    ASSERT_TRUE(ttl.ok());
    EXPECT_GT(ttl->integer, 0) << key.staging << " stages with an expiry";
  }
  EXPECT_EQ(names.size(), staged->size());
  ASSERT_TRUE(store.SwapInProjections(org, "tok", {}, *staged).ok());
  std::map<std::string, std::string> by_direct = lbtest::DumpProjections(direct_pool, org);
  std::map<std::string, std::string> by_staging = lbtest::DumpProjections(staged_pool, org);
  EXPECT_GT(by_direct.size(), 100u);
  size_t largest = 0;
  for (const auto& [key, text] : by_direct) largest = std::max(largest, text.size());
  EXPECT_GT(largest, 500u * 4);  // a board of over 500 members went in chunks
  EXPECT_TRUE(by_direct == by_staging);
  for (const leaderboard::StagedKey& key : *staged) {
    absl::StatusOr<common::redis::Reply> at = staged_pool.Run({"EXPIRETIME", key.final_key});
    ASSERT_TRUE(at.ok());
    EXPECT_EQ(at->integer, key.expire_at == 0 ? -1 : key.expire_at) << key.final_key;
  }
}

// Staging sends each key as one RESTORE of a DUMP payload built in C++
// (projection_image.cc): every kind of value (strings, hashes small and
// large, sets of integers and of strings, boards of a few members and of
// more than 16,384, fractional and negative scores) must arrive exactly as
// the plain commands leave it, with the same encoding Redis picks for
// those commands, the staging ttl and, after the swap, the final expiry.
TEST(ProjectionImageTest, StagingByRestoreLeavesTheKeysEncodingsAndExpiryThePlainCommandsLeave) {
  const std::string org = "dump";
  absl::Time now = absl::Now();
  ProjectionImage image(now);
  ApplyPlan plan;
  plan.keys = {leaderboard::MarksKey(org), leaderboard::RebuildLockKey(org)};
  plan.args = {"k:1-0", ""};
  auto key = [&](const std::string& suffix) {
    plan.keys.push_back(leaderboard::Prefix(org) + suffix);
    return absl::StrCat(plan.keys.size());
  };
  const int64_t later = absl::ToUnixSeconds(now + absl::Hours(24 * 40));
  const std::string small_board = key("points_received:day:2026-11-23:org");
  for (int i = 0; i < 7; ++i) {
    plan.args.insert(plan.args.end(), {"Z", small_board, absl::StrCat("p", i), i == 3 ? "2.5" : absl::StrCat(-i - 1),
                                       absl::StrCat(later)});
  }
  const std::string large_board = key("points_received:all:all:org");  // > 16,383: a 4-byte length
  for (int i = 0; i < 20000; ++i) {
    plan.args.insert(plan.args.end(), {"Z", large_board, absl::StrCat("person-", i), absl::StrCat(1 + i % 97), "0"});
  }
  const std::string listpack_limit = key("kudos_given:week:2026-W48:org");  // 200 members: a skiplist
  for (int i = 0; i < 200; ++i) {
    plan.args.insert(plan.args.end(), {"Z", listpack_limit, absl::StrCat("q", i), absl::StrCat(i + 1),
                                       absl::StrCat(later)});
  }
  const std::string long_member = key("kudos_given:month:2026-11:org");  // a member past 64 bytes
  plan.args.insert(plan.args.end(), {"Z", long_member, std::string(100, 'm'), "4", "0"});
  const std::string years = key("years");  // integers: an intset
  for (const char* year : {"2024", "2025", "2026"}) plan.args.insert(plan.args.end(), {"S", years, year});
  const std::string days = key("days:giving:p1");  // strings: a hashtable
  for (int d = 1; d <= 30; ++d) {
    plan.args.insert(plan.args.end(), {"S", days, absl::StrFormat("2026-11-%02d", d)});
  }
  const std::string badges = key("badges:p1");
  plan.args.insert(plan.args.end(), {"N", badges, "first_kudos_given", "1764000000000"});
  plan.args.insert(plan.args.end(), {"H", badges, "long", std::string(300, 'v')});
  const std::string people = key("dir:people");  // many fields: a hashtable
  for (int i = 0; i < 600; ++i) {
    plan.args.insert(plan.args.end(), {"H", people, absl::StrCat("p", i), absl::StrCat("person ", i)});
  }
  const std::string small_hash = key("dir:teams");  // a listpack
  plan.args.insert(plan.args.end(), {"H", small_hash, "t1", "ops"});
  const std::string settings = key("dir:settings");
  plan.args.insert(plan.args.end(), {"P", settings, std::string("\0binary\xff", 9)});
  absl::StatusOr<bool> applied = image.Apply(plan);
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_TRUE(*applied);

  struct Staged {
    harness::RedisServer redis;
    std::unique_ptr<common::redis::Pool> pool;
    std::vector<leaderboard::StagedKey> keys;
  };
  auto stage = [&](Staged& into, bool by_restore) {
    into.pool = std::make_unique<common::redis::Pool>(PoolFor(into.redis));
    Store store(*into.pool);
    image.set_stage_by_restore(by_restore);
    absl::StatusOr<std::vector<leaderboard::StagedKey>> staged = image.Stage(
        *into.pool, leaderboard::StagingPrefix(org) + "tok:", std::chrono::minutes(10), 5, nullptr,
        /*connections=*/2);
    ASSERT_TRUE(staged.ok()) << staged.status();
    EXPECT_EQ(image.staged_by_restore(), by_restore);
    into.keys = *staged;
    for (const leaderboard::StagedKey& key : into.keys) {
      absl::StatusOr<common::redis::Reply> ttl = into.pool->Run({"PTTL", key.staging});
      ASSERT_TRUE(ttl.ok());
      EXPECT_GT(ttl->integer, 0) << key.staging << " stages with an expiry";
    }
    ASSERT_TRUE(store.BeginRebuild(org, "tok", std::chrono::seconds(30), std::chrono::milliseconds(0)).ok());
    ASSERT_TRUE(store.SwapInProjections(org, "tok", {}, into.keys).ok());
  };
  Staged by_restore, by_commands;
  stage(by_restore, true);
  stage(by_commands, false);
  std::map<std::string, std::string> restored = lbtest::DumpProjections(*by_restore.pool, org);
  std::map<std::string, std::string> commanded = lbtest::DumpProjections(*by_commands.pool, org);
  EXPECT_EQ(restored.size(), image.key_count());
  EXPECT_TRUE(restored == commanded);
  for (const auto& [name, text] : commanded) {
    EXPECT_EQ(restored[name], text) << name;
    absl::StatusOr<common::redis::Reply> a = by_restore.pool->Run({"OBJECT", "ENCODING", name});
    absl::StatusOr<common::redis::Reply> b = by_commands.pool->Run({"OBJECT", "ENCODING", name});
    ASSERT_TRUE(a.ok() && b.ok()) << name;
    EXPECT_EQ(a->str, b->str) << name;
    absl::StatusOr<common::redis::Reply> at = by_restore.pool->Run({"EXPIRETIME", name});
    absl::StatusOr<common::redis::Reply> at_b = by_commands.pool->Run({"EXPIRETIME", name});
    ASSERT_TRUE(at.ok() && at_b.ok()) << name;
    EXPECT_EQ(at->integer, at_b->integer) << name;
  }
  EXPECT_EQ(restored[leaderboard::Prefix(org) + "points_received:all:all:org"].size(),
            commanded[leaderboard::Prefix(org) + "points_received:all:all:org"].size());
  EXPECT_EQ(by_restore.pool->Run({"ZCARD", leaderboard::Prefix(org) + "points_received:all:all:org"})->integer,
            20000);
  EXPECT_EQ(by_restore.pool->Run({"OBJECT", "ENCODING", leaderboard::Prefix(org) + "years"})->str, "intset");
  EXPECT_EQ(by_restore.pool->Run({"ZSCORE", leaderboard::Prefix(org) + "points_received:day:2026-11-23:org", "p3"})->str,
            "2.5");
}

}  // namespace

// ---------------------------------------------------------------- the rebuild's fast path
// Issue 15 part 5: RebuildPlanner's compact plans and ApplyCompact /
// ReplayStreams must leave exactly what the string plans leave.

namespace {

using leaderboard::CompactPlan;
using leaderboard::RebuildPlanner;

// One entry of an org's history: a kudos event ('k') or a ledger event ('l').
struct HistoryEntry {
  char stream = 'k';
  kudos::v1::KudosEvent kudos;
  ledger::v1::LedgerEvent ledger;
};

// Random history over 500 days: settings (zones, week starts), people (own
// zones, some hidden), teams, public and private kudos to 1-3 recipients
// (the giver and repeats among them), values (repeated, invalid), producer
// retries, retractions (KudosRetracted and the ledger's RETRACTION
// transfers), boosts, and one person giving every day for 30 days (the
// giving-streak badge).
std::vector<HistoryEntry> RandomHistory(const std::string& org, uint32_t seed, int n,
                                        absl::Time now) {
  std::mt19937 rng(seed);
  auto pick = [&](int k) { return static_cast<int>(rng() % static_cast<uint32_t>(k)); };
  const std::vector<std::string> zones = {"", "Europe/Paris", "America/New_York",
                                          "Pacific/Kiritimati", "Asia/Kolkata", "Not/AZone"};
  const std::vector<std::string> people = {"ann", "bob", "cem", "dia", "eli", "fay", "gus"};
  const std::vector<std::string> teams = {"", "ops", "dev", "bad team"};
  std::vector<std::string> catalog =
      leaderboard::CalendarFromSettings(leaderboard::DefaultSettings()).values;
  catalog.push_back("not in catalog");
  std::vector<HistoryEntry> out;
  std::vector<HistoryEntry> sent;  // kudos with their transfers, to retry or retract
  auto add_kudos = [&](kudos::v1::KudosEvent event) {
    HistoryEntry entry;
    entry.kudos = std::move(event);
    out.push_back(entry);
  };
  auto add_ledger = [&](ledger::v1::LedgerEvent event) {
    HistoryEntry entry;
    entry.stream = 'l';
    entry.ledger = std::move(event);
    out.push_back(entry);
  };
  for (int day = 0; day < 30; ++day) {  // the streaker: every day, same hour
    absl::Time t = now - absl::Hours(24 * (30 - day)) - absl::Hours(3);
    add_kudos(lbtest::SentEvent(org, absl::StrCat("S", day), "zed", "ops", {{"ann", "dev"}},
                                {catalog[0]}, 2, t));
  }
  for (int step = 0; static_cast<int>(out.size()) < n; ++step) {
    int kind = pick(24);
    if (kind == 0) {
      kudos::v1::OrgSettings settings = leaderboard::DefaultSettings();
      settings.set_time_zone(zones[pick(zones.size())]);
      settings.set_week_start(static_cast<common::v1::DayOfWeek>(1 + pick(7)));
      if (pick(3) == 0) settings.clear_values();
      add_kudos(lbtest::SettingsEvent(settings));
    } else if (kind <= 2) {
      kudos::v1::KudosEvent event = lbtest::PersonEvent(
          people[pick(people.size())], "Someone", teams[pick(teams.size())], "",
          zones[pick(zones.size())]);
      event.mutable_person_changed()->mutable_person()->set_hidden_from_leaderboards(pick(3) == 0);
      add_kudos(event);
    } else if (kind == 3) {
      add_kudos(lbtest::TeamEvent(teams[1 + pick(2)], "A team"));
    } else if (kind == 4 && !sent.empty()) {
      HistoryEntry retry = sent[pick(sent.size())];  // a producer's retry: counted once
      add_kudos(retry.kudos);
      if (pick(2) == 0) add_ledger(retry.ledger);
    } else if (kind == 5 && !sent.empty()) {
      const HistoryEntry& original = sent[pick(sent.size())];
      kudos::v1::KudosEvent retracted;
      *retracted.mutable_event_time() = original.kudos.event_time();
      kudos::v1::KudosRetracted* r = retracted.mutable_kudos_retracted();
      *r->mutable_kudos() = original.kudos.kudos_sent().kudos();
      r->set_giver_team_id(original.kudos.kudos_sent().giver_team_id());
      *r->mutable_recipient_team_ids() = original.kudos.kudos_sent().recipient_team_ids();
      add_kudos(retracted);
      ledger::v1::LedgerEvent reversal = original.ledger;
      for (ledger::v1::Transfer& t : *reversal.mutable_transfers_posted()->mutable_transfers()) {
        std::string original_id = t.transfer_id();
        std::swap(*t.mutable_debit_account(), *t.mutable_credit_account());
        t.set_kind(ledger::v1::TRANSFER_KIND_RETRACTION);
        t.set_transfer_id("retract:" + original_id);
        (*t.mutable_tags())["retracts"] = original_id;
        (*t.mutable_tags())["retracts_post_ms"] =
            absl::StrCat(absl::ToUnixMillis(leaderboard::FromProto(t.post_time())));
        leaderboard::ToProto(now, t.mutable_post_time());
      }
      add_ledger(reversal);
    } else if (kind == 6) {
      // A kudos from the company (issue 18 part 3): no giver, one recipient,
      // paid by a CELEBRATION transfer.
      absl::Time t = now - absl::Minutes(pick(500 * 24 * 60));
      std::string recipient = people[pick(people.size())];
      std::string kudos_id = absl::StrCat("C", step);
      HistoryEntry entry;
      entry.kudos = lbtest::SentEvent(org, kudos_id, "", "", {{recipient, teams[pick(teams.size())]}},
                                      {}, 10, t);
      entry.kudos.mutable_kudos_sent()->mutable_kudos()->set_from_company(true);
      entry.ledger = lbtest::TransfersEvent(org, kudos_id, "celebration:birthday:" + kudos_id,
                                            ledger::v1::TRANSFER_KIND_CELEBRATION, "",
                                            {{recipient, ""}}, {}, 10, t);
      add_kudos(entry.kudos);
      add_ledger(entry.ledger);
      sent.push_back(entry);
    } else {
      absl::Time t = now - absl::Minutes(pick(500 * 24 * 60));
      std::string giver = people[pick(people.size())];
      std::vector<lbtest::Recipient> recipients;
      for (int r = 1 + pick(3); r > 0; --r) {
        recipients.push_back({people[pick(people.size())], teams[pick(teams.size())]});
      }
      std::vector<std::string> values;
      for (int v = pick(3); v > 0; --v) values.push_back(catalog[pick(catalog.size())]);
      std::string kudos_id = step % 2 == 0 ? absl::StrFormat("k%024x", step) : absl::StrCat("K", step);
      HistoryEntry entry;
      entry.kudos = lbtest::SentEvent(org, kudos_id, giver, teams[pick(teams.size())], recipients,
                                      values, 1 + pick(20), t);
      bool boost = pick(8) == 0;
      entry.ledger = lbtest::TransfersEvent(
          org, kudos_id, kudos_id,
          boost ? ledger::v1::TRANSFER_KIND_BOOST : ledger::v1::TRANSFER_KIND_KUDOS, giver,
          recipients, values, 1 + pick(20), t);
      if (pick(6) == 0) {
        entry.kudos.mutable_kudos_sent()->mutable_kudos()->set_visibility(
            kudos::v1::KUDOS_VISIBILITY_PRIVATE);
        for (ledger::v1::Transfer& tr :
             *entry.ledger.mutable_transfers_posted()->mutable_transfers()) {
          (*tr.mutable_tags())["visibility"] = "private";
        }
      }
      add_kudos(entry.kudos);
      add_ledger(entry.ledger);
      sent.push_back(entry);
    }
  }
  return out;
}

// A plan's operations with every key index replaced by the key's name (the
// order of a plan's KEYS is no part of what it does).
std::vector<std::string> Resolved(const ApplyPlan& plan) {
  std::vector<std::string> out = {plan.args.at(0)};
  auto key = [&](size_t at) { return plan.keys.at(std::stoul(plan.args.at(at)) - 1); };
  size_t i = 2;
  while (i < plan.args.size()) {
    const std::string& op = plan.args[i];
    size_t count = 0;
    std::set<size_t> keys_at = {1};
    if (op == "G") {
      count = 4;
      keys_at = {2};
    } else if (op == "Z" ) {
      count = 5;
    } else if (op == "S" || op == "R" || op == "P") {
      count = 3;
    } else if (op == "H" || op == "N") {
      count = 4;
    } else if (op == "D") {
      count = 2;
    } else if (op == "T") {
      count = 7;
      keys_at = {1, 4};
    } else if (op == "V") {
      count = 6 + std::stoul(plan.args.at(i + 5));
      keys_at = {1, 4};
    } else {
      ADD_FAILURE() << "unknown op " << op;
      break;
    }
    std::string line;
    for (size_t j = 0; j < count; ++j) {
      absl::StrAppend(&line, "|", keys_at.count(j) ? key(i + j) : plan.args.at(i + j));
    }
    out.push_back(std::move(line));
    i += count;
  }
  for (const ApplyPlan::StreakCheck& check : plan.streak_checks) {
    out.push_back(absl::StrCat("streak|", check.person, "|", absl::FormatCivilTime(check.day), "|",
                               absl::ToUnixMillis(check.time)));
  }
  return out;
}

std::shared_ptr<const leaderboard::SeasonSet> SomeSeasons(absl::Time now) {
  auto seasons = std::make_shared<leaderboard::SeasonSet>();
  leaderboard::SeasonDef everyone;
  everyone.id = "all-people";
  everyone.start = now - absl::Hours(24 * 200);
  everyone.end = now - absl::Hours(24 * 20);
  everyone.expiry = absl::StrCat(absl::ToUnixSeconds(now + absl::Hours(24 * 70)));
  seasons->seasons.push_back(everyone);
  leaderboard::SeasonDef teams = everyone;
  teams.id = "teams";
  teams.teams = true;
  teams.metric = leaderboard::v1::METRIC_KUDOS_RECEIVED;
  teams.members = {"ops"};
  seasons->seasons.push_back(teams);
  leaderboard::SeasonDef joined = everyone;
  joined.id = "joined";
  joined.metric = leaderboard::v1::METRIC_KUDOS_GIVEN;
  joined.join_required = true;
  joined.joined_ms = {{"ann", absl::ToUnixMillis(now - absl::Hours(24 * 100))}, {"bob", 0}};
  seasons->seasons.push_back(joined);
  return seasons;
}

TEST(RebuildPlannerTest, CompactPlansAreTheStringPlansOnRandomEventsOfEveryKind) {
  const std::string org = "cp";
  absl::Time now = absl::Now();
  std::vector<HistoryEntry> history = RandomHistory(org, 20261129, 3000, now);
  RebuildPlanner planner(org);
  OrgCalendar calendar = leaderboard::CalendarFromSettings(leaderboard::DefaultSettings());
  calendar.seasons = SomeSeasons(now);
  std::map<std::string, std::string> zones;  // person -> zone, as PersonChanged left it
  auto zone = [&](const std::string& id) {
    auto it = zones.find(id);
    return it == zones.end() ? std::string() : it->second;
  };
  std::map<std::string, int> ops_seen;
  int differing = 0;
  for (size_t i = 0; i < history.size(); ++i) {
    const HistoryEntry& entry = history[i];
    std::string id = absl::StrCat(1000 + i, "-0");
    ApplyPlan by_strings;
    CompactPlan compact;
    if (entry.stream == 'l') {
      by_strings = leaderboard::PlanLedgerEvent(org, "l:" + id, entry.ledger, calendar, false);
      compact = planner.PlanLedger(id, entry.ledger, calendar);
    } else {
      by_strings = leaderboard::PlanKudosEvent(org, "k:" + id, entry.kudos, calendar, zone, false);
      compact = planner.PlanKudos(id, entry.kudos, calendar, zone);
    }
    ASSERT_TRUE(compact.error.empty()) << compact.error;
    std::vector<std::string> expected = Resolved(by_strings);
    std::vector<std::string> got =
        Resolved(leaderboard::ExpandCompactPlan(org, compact, planner.keys(), planner.atoms()));
    if (expected != got && ++differing <= 3) {
      ADD_FAILURE() << "entry " << i << ": " << entry.kudos.ShortDebugString()
                    << entry.ledger.ShortDebugString() << "\n strings: "
                    << absl::StrJoin(expected, "\n          ")
                    << "\n compact: " << absl::StrJoin(got, "\n          ");
    }
    for (const std::string& line : expected) ++ops_seen[line.substr(0, line.find('|', 1))];
    if (entry.kudos.has_org_settings_changed()) {
      auto seasons = calendar.seasons;
      calendar = leaderboard::CalendarFromSettings(entry.kudos.org_settings_changed().settings());
      calendar.seasons = seasons;
    }
    if (entry.kudos.has_person_changed()) {
      zones[entry.kudos.person_changed().person().person_id()] =
          entry.kudos.person_changed().person().time_zone();
    }
  }
  EXPECT_EQ(differing, 0);
  // Every kind of operation was compared.
  for (const char* op : {"|G", "|Z", "|S", "|R", "|H", "|N", "|P", "|T", "|V", "streak"}) {
    EXPECT_GT(ops_seen[op], 0) << op;
  }
}

TEST(RebuildPlannerTest, ReplayStreamsLeavesTheImageTheStringPlansLeaveAndResumesAfterItsMarks) {
  const std::string org = "rs";
  harness::RedisServer stream_redis;
  harness::RedisServer strings_redis;
  harness::RedisServer compact_redis;
  common::redis::Pool stream_pool(PoolFor(stream_redis));
  common::redis::Pool strings_pool(PoolFor(strings_redis));
  common::redis::Pool compact_pool(PoolFor(compact_redis));
  lbtest::EventWriter writer(stream_redis.address(), org);
  absl::Time now = absl::Now();
  std::vector<HistoryEntry> history = RandomHistory(org, 20261130, 2500, now);
  std::vector<std::pair<char, std::string>> ids;  // stream, entry id in append order
  for (const HistoryEntry& entry : history) {
    ids.emplace_back(entry.stream,
                     entry.stream == 'k' ? writer.Kudos(entry.kudos) : writer.Ledger(entry.ledger));
  }
  Store store(stream_pool);

  // The string plans, entry by entry in stream-id order, as the rebuild did.
  ProjectionImage by_strings(now);
  std::vector<std::pair<std::string, char>> order;
  for (const auto& [stream, id] : ids) order.emplace_back(id, stream);
  // Equal ids of the two streams: kudos first, as the rebuild merges them.
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    if (a.first == b.first) return a.second < b.second;
    return leaderboard::StreamIdLess(a.first, b.first);
  });
  std::map<std::pair<char, std::string>, const HistoryEntry*> entry_of;
  for (size_t i = 0; i < ids.size(); ++i) entry_of[ids[i]] = &history[i];
  for (const auto& [id, stream] : order) {
    absl::StatusOr<OrgCalendar> calendar = by_strings.Calendar(org);
    ASSERT_TRUE(calendar.ok());
    const HistoryEntry& entry = *entry_of[{stream, id}];
    ApplyPlan plan;
    if (stream == 'l') {
      plan = leaderboard::PlanLedgerEvent(org, "l:" + id, entry.ledger, *calendar, false);
    } else {
      std::map<std::string, kudos::v1::Person> known =
          by_strings.People(org, leaderboard::PeopleOfEvent(entry.kudos));
      plan = leaderboard::PlanKudosEvent(
          org, "k:" + id, entry.kudos, *calendar,
          [&](const std::string& p) {
            auto it = known.find(p);
            return it == known.end() ? std::string() : it->second.time_zone();
          },
          false);
    }
    ASSERT_TRUE(by_strings.Apply(plan).ok());
    for (const auto& check : plan.streak_checks) by_strings.CheckGivingStreak(org, *calendar, check);
  }

  // ReplayStreams: up to the 1200th entry of the merged history (each
  // stream's last id in it), then on from the image's marks to the end.
  ProjectionImage compact(now);
  std::string kudos_middle, ledger_middle;
  for (size_t i = 0; i < 1200; ++i) {
    (order[i].second == 'k' ? kudos_middle : ledger_middle) = order[i].first;
  }
  ASSERT_FALSE(kudos_middle.empty() || ledger_middle.empty());
  int refreshes = 0;
  auto refresh = [&] {
    ++refreshes;
    return absl::OkStatus();
  };
  leaderboard::ReplayCounts first, rest;
  ASSERT_TRUE(leaderboard::ReplayStreams(store, compact, org, refresh,
                                         {kudos_middle, ledger_middle}, first)
                  .ok());
  EXPECT_EQ(first.events_read, 1200);
  EXPECT_EQ(compact.Mark(org, 'k'), kudos_middle);
  EXPECT_EQ(compact.Mark(org, 'l'), ledger_middle);
  ASSERT_TRUE(leaderboard::ReplayStreams(store, compact, org, refresh, {"", ""}, rest).ok());
  EXPECT_EQ(first.events_read + rest.events_read, static_cast<int64_t>(history.size()));
  EXPECT_EQ(first.events_applied + rest.events_applied, first.events_read + rest.events_read);
  EXPECT_GT(refreshes, 0);

  ASSERT_TRUE(by_strings.Write(strings_pool, 50, nullptr).ok());
  ASSERT_TRUE(compact.Write(compact_pool, 50, nullptr).ok());
  std::map<std::string, std::string> expected = lbtest::DumpProjections(strings_pool, org);
  std::map<std::string, std::string> got = lbtest::DumpProjections(compact_pool, org);
  EXPECT_GT(expected.size(), 300u);
  EXPECT_EQ(expected.size(), got.size());
  int differing = 0;
  for (const auto& [key, text] : expected) {
    auto it = got.find(key);
    if (it == got.end() || it->second != text) {
      if (++differing <= 5) {
        ADD_FAILURE() << key << "\n strings: " << text
                      << "\n compact: " << (it == got.end() ? "(missing)" : it->second);
      }
    }
  }
  EXPECT_EQ(differing, 0);
  // The streaker's 30 days earned the giving-streak badge (the check ran).
  EXPECT_NE(got[leaderboard::BadgesKey(org, "zed")].find(leaderboard::kGivingStreakBadge),
            std::string::npos)
      << got[leaderboard::BadgesKey(org, "zed")];
}

}  // namespace
