// The rebuild's in-memory image against the apply script: the same plans,
// applied once through Redis (scripts/apply_event.lua) and once in memory
// then written in bulk to another Redis, must leave identical keys, values
// and expiry times, including periods whose retention already ended.
#include "services/leaderboard/projection_image.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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
      std::string kudos_id = absl::StrCat("K", step);
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
    std::string id = absl::StrCat("K", entry);
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

}  // namespace
