// Issue 17: the leaderboard's own events on lb:{org}:events (badge earned,
// streak extended, period closed), against a real redis-server and the real
// library (Store, Projector, Consumer, PeriodCloser), as main.cc wires them.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "common/events/leaderboard_event.h"
#include "services/leaderboard/leaderboard_consumer.h"
#include "services/leaderboard/leaderboard_events.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "services/leaderboard/leaderboard_store.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"
#include "tests/leaderboard/event_writer.h"

// The rolling upgrade's switch (leaderboard_events.cc).
ABSL_DECLARE_FLAG(bool, lb_events_full);

namespace {

using harness::Eventually;
namespace v1 = leaderboard::v1;

common::redis::PoolOptions PoolFor(const harness::RedisServer& redis) {
  common::redis::PoolOptions options;
  options.endpoint = {"127.0.0.1", redis.port()};
  options.size = 4;
  // Past the default 2 s: on a machine loaded by the parallel suite a
  // 200-entry batch script can run longer than that, and every retried batch
  // sends its reads again, which Events_CostOneXaddPerEventAndOneDaysReadPerNewActiveDay
  // counts (it failed so once, 2026-11-30, with 2x the reads; alone 3 of 3 pass).
  options.timeout = std::chrono::milliseconds(10000);
  return options;
}

leaderboard::EventsOptions Events(int64_t max_len = 100000) {
  leaderboard::EventsOptions events;
  events.enabled = true;
  events.max_len = max_len;
  events.top_n = 2;
  // The tests' sweeps run with an injected now (RunOnce), not the loop's.
  events.sweep_interval = absl::Hours(24);
  return events;
}

struct Replica {
  Replica(const harness::RedisServer& redis, const std::string& name, int batch,
          leaderboard::EventsOptions events = Events(),
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
    options.events = events;
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

struct StoredEvent {
  std::string entry_id;
  v1::LeaderboardEvent event;  // as a reader gets it (ParseStoredEvent)
  std::string bytes;           // as the stream holds it
};

// Every entry of the org's events stream, parsed (a field other than
// `event`, or bytes that do not parse, fail the test).
std::vector<StoredEvent> ReadEvents(common::redis::Pool& pool, const std::string& org) {
  std::vector<StoredEvent> out;
  auto range = pool.Run({"XRANGE", leaderboard::EventsStream(org), "-", "+"});
  EXPECT_TRUE(range.ok()) << range.status();
  if (!range.ok()) return out;
  for (const auto& entry : range->elements) {
    StoredEvent stored;
    stored.entry_id = entry.elements[0].str;
    const auto& fields = entry.elements[1].elements;
    EXPECT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[0].str, "event");
    absl::StatusOr<v1::LeaderboardEvent> event = common::events::ParseStoredEvent(org, fields[1].str);
    EXPECT_TRUE(event.ok()) << stored.entry_id << ": " << event.status();
    if (event.ok()) stored.event = *std::move(event);
    stored.bytes = fields[1].str;
    out.push_back(std::move(stored));
  }
  return out;
}

std::map<std::string, int> CountById(const std::vector<StoredEvent>& events) {
  std::map<std::string, int> out;
  for (const StoredEvent& e : events) ++out[e.event.event_id()];
  return out;
}

void People(lbtest::EventWriter& writer, const std::vector<std::string>& ids) {
  for (size_t i = 0; i < ids.size(); ++i) {
    writer.Kudos(lbtest::PersonEvent(ids[i], "Name " + ids[i], i % 2 ? "ops" : "dev"));
  }
}

void SendKudos(lbtest::EventWriter& writer, const std::string& id, const std::string& giver,
               const std::string& recipient, int64_t points, absl::Time time) {
  const std::string& org = writer.org();
  writer.Kudos(lbtest::SentEvent(org, id, giver, "dev", {{recipient, "ops"}}, {"teamwork"}, points,
                                 time));
  writer.Ledger(lbtest::TransfersEvent(org, id, id, ledger::v1::TRANSFER_KIND_KUDOS, giver,
                                       {{recipient, "ops"}}, {"teamwork"}, points, time));
}

absl::Time Utc(int y, int m, int d, int hour) {
  return absl::FromCivil(absl::CivilHour(y, m, d, hour), absl::UTCTimeZone());
}

TEST(LeaderboardEventsTest, Events_AKudosThatEarnsTheFirstBadgesEmitsExactlyOneBadgeEarnedEach) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "badges";
  lbtest::EventWriter writer(redis.address(), org);
  People(writer, {"ann", "bob"});
  absl::Time sent = Utc(2026, 11, 23, 10);
  SendKudos(writer, "K1", "ann", "bob", 3, sent);
  Replica replica(redis, "replica-a", 50);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));

  std::vector<StoredEvent> events = ReadEvents(pool, org);
  ASSERT_EQ(CountById(events),
            (std::map<std::string, int>{{"badge.earned/ann/first_kudos_given", 1},
                                        {"badge.earned/bob/first_kudos_received", 1}}));
  for (const StoredEvent& stored : events) {
    const v1::LeaderboardEvent& e = stored.event;
    ASSERT_TRUE(e.has_badge_earned());
    EXPECT_EQ(e.org_id(), org);
    EXPECT_EQ(e.badge_earned().cause_kudos_id(), "K1");
    EXPECT_EQ(leaderboard::FromProto(e.badge_earned().earned_time()), sent);
    EXPECT_EQ(leaderboard::FromProto(e.badge_earned().badge().earn_time()), sent);
    EXPECT_EQ(leaderboard::FromProto(e.event_time()), sent);
    const leaderboard::BadgeRule* rule = leaderboard::FindBadge(e.badge_earned().badge().badge_id());
    ASSERT_NE(rule, nullptr);
    EXPECT_EQ(e.badge_earned().badge().display_name(), rule->display_name);
    // The stream keeps the stored form: what the reader above put back is not in it.
    v1::LeaderboardEvent raw;
    ASSERT_TRUE(raw.ParseFromString(stored.bytes));
    EXPECT_EQ(raw.org_id(), "");
    EXPECT_EQ(raw.event_id(), "");
    EXPECT_FALSE(raw.badge_earned().has_earned_time());
  }
  // As ListBadges reports it: the stored badge has the event's earn time.
  auto badges = replica.store.Badges(org, "bob");
  ASSERT_TRUE(badges.ok());
  EXPECT_EQ(badges->at("first_kudos_received"), absl::ToUnixMillis(sent));

  // The same badges again, a redelivery of everything: nothing more.
  SendKudos(writer, "K2", "ann", "bob", 1, sent + absl::Minutes(5));
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  writer.ReplayAll();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();
  EXPECT_EQ(ReadEvents(pool, org).size(), 2u);
}

// Many kudos over several days: count badges, first badges, streaks.
void WriteBusyHistory(lbtest::EventWriter& writer) {
  People(writer, {"ann", "bob", "cem", "dia"});
  const std::vector<std::string> people = {"ann", "bob", "cem", "dia"};
  int n = 0;
  for (int day = 16; day <= 27; ++day) {  // 2026-11-16 (Monday) .. 27
    for (int i = 0; i < 4; ++i) {
      const std::string& giver = people[(day + i) % 4];
      const std::string& recipient = people[(day + i + 1 + i % 2) % 4];
      SendKudos(writer, absl::StrCat("K", ++n), giver, recipient, 1 + i, Utc(2026, 11, day, 9 + i));
    }
  }
}

// Killed at each step of a batch, then restarted: every event is in the
// stream once, and the same events as a run that never crashed.

// The rolling upgrade from a version whose readers take only the full form
// (org, event_id and earn times in each event): --lb_events_full writes it.
TEST(LeaderboardEventsTest, Events_LbEventsFullWritesTheFullFormForReadersOfTheVersionBefore) {
  absl::FlagSaver restore_flags;
  absl::SetFlag(&FLAGS_lb_events_full, true);
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "fullform";
  lbtest::EventWriter writer(redis.address(), org);
  People(writer, {"ann", "bob"});
  SendKudos(writer, "K1", "ann", "bob", 3, Utc(2026, 11, 23, 10));
  Replica replica(redis, "replica-a", 50);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));

  std::vector<StoredEvent> events = ReadEvents(pool, org);
  ASSERT_EQ(events.size(), 2u);
  for (const StoredEvent& stored : events) {
    v1::LeaderboardEvent raw;
    ASSERT_TRUE(raw.ParseFromString(stored.bytes));
    EXPECT_EQ(raw.SerializeAsString(), stored.event.SerializeAsString()) << raw.DebugString();
    EXPECT_EQ(raw.org_id(), org);
    EXPECT_EQ(raw.event_id(), common::events::DerivedEventId(raw));
  }
}
TEST(LeaderboardEventsTest, Events_AConsumerKilledMidBatchAndRestartedEmitsNoEventTwice) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  std::map<std::string, int> expected;
  {
    lbtest::EventWriter writer(redis.address(), "reference");
    WriteBusyHistory(writer);
    Replica clean(redis, "replica-a", 7);
    clean.consumer->Start();
    ASSERT_TRUE(Eventually([&] { return Backlog(pool, "reference") == 0; }));
    clean.consumer->Stop();
    expected = CountById(ReadEvents(pool, "reference"));
  }
  ASSERT_GT(expected.size(), 20u);
  for (const auto& [id, count] : expected) EXPECT_EQ(count, 1) << id;
  for (const std::string step : {"planned", "applied", "awarded", "acked"}) {
    for (int nth : {1, 3}) {
      std::string org = absl::StrCat("crash-", step, "-", nth);
      std::string where = absl::StrCat("killed at '", step, "' #", nth);
      lbtest::EventWriter writer(redis.address(), org);
      WriteBusyHistory(writer);
      {
        std::atomic<int> seen{0};
        Replica doomed(redis, "replica-a", 7, Events(), [&, step, nth](absl::string_view at) {
          return at == step && ++seen >= nth;
        });
        doomed.consumer->Start();
        ASSERT_TRUE(Eventually([&] { return doomed.store.crashed(); })) << where;
        doomed.consumer->Stop();
      }
      Replica restarted(redis, "replica-a", 7);
      restarted.consumer->Start();
      ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; })) << where;
      restarted.consumer->Stop();
      EXPECT_EQ(CountById(ReadEvents(pool, org)), expected) << where;
    }
  }
}

TEST(LeaderboardEventsTest, Events_ARebuildEmitsNothingAndKeepsTheStream) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "rebuild";
  lbtest::EventWriter writer(redis.address(), org);
  WriteBusyHistory(writer);
  Replica replica(redis, "replica-a", 20);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  std::vector<StoredEvent> before = ReadEvents(pool, org);
  ASSERT_FALSE(before.empty());
  std::map<std::string, std::string> live = lbtest::DumpProjections(pool, org);
  auto rebuilt = replica.projector.Rebuild(org);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_GT(rebuilt->events_applied, 0);
  // New entries after the rebuild still emit (the consumer goes on).
  SendKudos(writer, "after", "dia", "ann", 1, Utc(2026, 11, 28, 9));
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();
  std::vector<StoredEvent> after = ReadEvents(pool, org);
  ASSERT_GE(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(after[i].entry_id, before[i].entry_id) << "the rebuild kept the stream as it was";
  }
  for (size_t i = before.size(); i < after.size(); ++i) {
    EXPECT_TRUE(absl::StrContains(after[i].event.event_id(), "/2026-11-28") ||
                absl::StrContains(after[i].event.badge_earned().cause_kudos_id(), "after"))
        << after[i].event.event_id() << ": only the new kudos' events";
  }
  EXPECT_EQ(CountById(after).size(), after.size()) << "no event twice";
}

// Monday, Tuesday (twice), Thursday: the giving and receiving streaks are
// extended once on Tuesday (2 days) and once on Thursday (3: Wednesday
// frozen, 2 freezes a month by default), as GetStreaks counts them.
TEST(LeaderboardEventsTest, Events_AStreakIsExtendedOncePerDayWithItsLength) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "streaks";
  lbtest::EventWriter writer(redis.address(), org);
  People(writer, {"ann", "bob"});
  SendKudos(writer, "mon", "ann", "bob", 1, Utc(2026, 11, 23, 9));
  SendKudos(writer, "tue1", "ann", "bob", 1, Utc(2026, 11, 24, 9));
  SendKudos(writer, "tue2", "ann", "bob", 1, Utc(2026, 11, 24, 15));
  SendKudos(writer, "thu", "ann", "bob", 1, Utc(2026, 11, 26, 9));
  Replica replica(redis, "replica-a", 1);  // one entry per batch: days in separate scripts
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  writer.ReplayAll();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();

  std::map<std::string, v1::StreakExtended> streaks;
  std::map<std::string, int> count;
  for (const StoredEvent& stored : ReadEvents(pool, org)) {
    if (!stored.event.has_streak_extended()) continue;
    streaks[stored.event.event_id()] = stored.event.streak_extended();
    ++count[stored.event.event_id()];
  }
  EXPECT_EQ(count, (std::map<std::string, int>{{"streak.extended/giving/ann/2026-11-24", 1},
                                               {"streak.extended/giving/ann/2026-11-26", 1},
                                               {"streak.extended/receiving/bob/2026-11-24", 1},
                                               {"streak.extended/receiving/bob/2026-11-26", 1}}));
  const v1::StreakExtended& tuesday = streaks["streak.extended/giving/ann/2026-11-24"];
  EXPECT_EQ(tuesday.person_id(), "ann");
  EXPECT_EQ(tuesday.kind(), v1::STREAK_KIND_GIVING);
  EXPECT_EQ(tuesday.length_days(), 2);
  EXPECT_EQ(tuesday.day().year(), 2026);
  EXPECT_EQ(tuesday.day().month(), 11);
  EXPECT_EQ(tuesday.day().day(), 24);
  EXPECT_EQ(tuesday.cause_kudos_id(), "tue1");
  const v1::StreakExtended& thursday = streaks["streak.extended/receiving/bob/2026-11-26"];
  EXPECT_EQ(thursday.kind(), v1::STREAK_KIND_RECEIVING);
  EXPECT_EQ(thursday.cause_kudos_id(), "thu");
  // The length is the one GetStreaks computes (ComputeStreak) as of the day.
  leaderboard::OrgCalendar calendar =
      leaderboard::CalendarFromSettings(leaderboard::DefaultSettings());
  leaderboard::WorkCalendar work{calendar.work_days, calendar.holidays, calendar.freezes_per_month};
  auto days = replica.store.Days(org, "receiving", "bob");
  ASSERT_TRUE(days.ok());
  EXPECT_EQ(thursday.length_days(),
            leaderboard::ComputeStreak(*days, work, absl::CivilDay(2026, 11, 26)).current);
  EXPECT_EQ(thursday.length_days(), 3);
}

// Issue 15 (memory): active days are stored as day numbers and values as
// their ValueMember, intsets instead of hashtables. Sets a previous version
// wrote hold the date texts and value ids: the apply script's streak, the
// store's reads and the all-values badge count both forms together.
TEST(LeaderboardEventsTest, Events_DaysAndValuesStoredAsTextBeforeStillCountWithTheNewForms) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "upgraded";
  lbtest::EventWriter writer(redis.address(), org);
  kudos::v1::OrgSettings settings = leaderboard::DefaultSettings();
  settings.clear_values();
  settings.add_values()->set_value_id("teamwork");
  settings.add_values()->set_value_id("empathy");
  writer.Kudos(lbtest::SettingsEvent(settings));
  People(writer, {"ann", "bob", "cat"});
  // What the previous version left from Monday's kudos (value "empathy").
  const std::string ann_giving = leaderboard::DaysKey(org, "giving", "ann");
  const std::string bob_receiving = leaderboard::DaysKey(org, "receiving", "bob");
  const std::string bob_values = leaderboard::ValuesKey(org, "bob");
  ASSERT_TRUE(pool.Run({"SADD", ann_giving, "2026-11-23"}).ok());
  ASSERT_TRUE(pool.Run({"SADD", bob_receiving, "2026-11-23"}).ok());
  ASSERT_TRUE(pool.Run({"SADD", bob_values, "empathy"}).ok());
  SendKudos(writer, "tue", "ann", "bob", 1, Utc(2026, 11, 24, 9));  // value "teamwork"
  SendKudos(writer, "tue2", "bob", "cat", 1, Utc(2026, 11, 24, 10));
  Replica replica(redis, "replica-a", 50);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();

  std::map<std::string, int> lengths;
  for (const StoredEvent& stored : ReadEvents(pool, org)) {
    if (stored.event.has_streak_extended()) {
      lengths[stored.event.event_id()] = stored.event.streak_extended().length_days();
    }
  }
  EXPECT_EQ(lengths, (std::map<std::string, int>{{"streak.extended/giving/ann/2026-11-24", 2},
                                                 {"streak.extended/receiving/bob/2026-11-24", 2}}));
  auto members = [&](const std::string& key) {
    absl::StatusOr<common::redis::Reply> reply = pool.Run({"SMEMBERS", key});
    std::set<std::string> out;
    if (reply.ok()) {
      for (const auto& element : reply->elements) out.insert(element.str);
    }
    return out;
  };
  const std::string tuesday = leaderboard::DayMember(absl::CivilDay(2026, 11, 24));
  EXPECT_EQ(tuesday, "20781");
  EXPECT_EQ(members(ann_giving), (std::set<std::string>{"2026-11-23", tuesday}));
  EXPECT_EQ(members(bob_values),
            (std::set<std::string>{"empathy", leaderboard::ValueMember("teamwork")}));
  auto days = replica.store.Days(org, "giving", "ann");
  ASSERT_TRUE(days.ok()) << days.status();
  EXPECT_EQ(std::set<absl::CivilDay>(days->begin(), days->end()),
            (std::set<absl::CivilDay>{absl::CivilDay(2026, 11, 23), absl::CivilDay(2026, 11, 24)}));
  auto badges = replica.store.Badges(org, "bob");
  ASSERT_TRUE(badges.ok()) << badges.status();
  EXPECT_EQ(badges->count("all_values_received"), 1u);
  // Sets only this version wrote hold integers: Redis keeps them intsets.
  for (const std::string& key : {leaderboard::DaysKey(org, "receiving", "cat"),
                                 leaderboard::DaysKey(org, "giving", "bob"),
                                 leaderboard::ValuesKey(org, "cat")}) {
    EXPECT_EQ(pool.Run({"OBJECT", "ENCODING", key})->str, "intset") << key;
  }
}

// Random active days over three months with a Sunday-to-Thursday week, two
// holidays and one freeze a month: the script's streaks are GetStreaks'
// (ComputeStreak) for every day: an event exactly on each active work day
// whose streak reaches 2, with that length; the giving-streak badge's event
// exactly when the badge is held.
TEST(LeaderboardEventsTest, Events_StreakLengthsMatchComputeStreakOverARandomHistory) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "streak-model";
  lbtest::EventWriter writer(redis.address(), org);
  kudos::v1::OrgSettings settings = leaderboard::DefaultSettings();
  settings.clear_work_days();
  for (int day : {7, 1, 2, 3, 4}) {
    settings.add_work_days(static_cast<common::v1::DayOfWeek>(day));
  }
  for (absl::CivilDay holiday : {absl::CivilDay(2026, 10, 5), absl::CivilDay(2026, 11, 12)}) {
    common::v1::Date* date = settings.add_holidays();
    date->set_year(static_cast<int32_t>(holiday.year()));
    date->set_month(holiday.month());
    date->set_day(holiday.day());
  }
  settings.set_streak_freezes_per_month(1);
  writer.Kudos(lbtest::SettingsEvent(settings));
  People(writer, {"ann", "bob"});
  std::vector<absl::CivilDay> active;
  uint64_t seed = 7;
  int n = 0;
  for (absl::CivilDay day(2026, 9, 1); day <= absl::CivilDay(2026, 11, 30); ++day) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    if ((seed >> 33) % 10 < 3) continue;  // ~30% of days without a kudos
    active.push_back(day);
    absl::Time t = absl::FromCivil(absl::CivilSecond(day.year(), day.month(), day.day(), 10, 0, 0),
                                   absl::UTCTimeZone());
    SendKudos(writer, absl::StrCat("K", ++n), "ann", "bob", 1, t);
  }
  Replica replica(redis, "replica-a", 7);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();

  leaderboard::OrgCalendar calendar = leaderboard::CalendarFromSettings(settings);
  leaderboard::WorkCalendar work{calendar.work_days, calendar.holidays, calendar.freezes_per_month};
  std::map<std::string, int> expected;  // event id -> length
  int reaching_badge = 0;
  for (absl::CivilDay day : active) {
    leaderboard::StreakResult streak = leaderboard::ComputeStreak(active, work, day);
    if (work.IsWorkDay(day) && streak.current >= 2) {
      expected[leaderboard::StreakEventId("giving", "ann", day)] = streak.current;
    }
    if (streak.longest >= leaderboard::kGivingStreakBadgeDays) ++reaching_badge;
  }
  ASSERT_GT(expected.size(), 10u);
  std::map<std::string, int> lengths;
  int badge_events = 0;
  for (const StoredEvent& stored : ReadEvents(pool, org)) {
    const v1::LeaderboardEvent& e = stored.event;
    if (e.has_streak_extended() && e.streak_extended().kind() == v1::STREAK_KIND_GIVING) {
      EXPECT_EQ(lengths.count(e.event_id()), 0u) << e.event_id() << " twice";
      lengths[e.event_id()] = e.streak_extended().length_days();
    }
    if (e.event_id() == leaderboard::BadgeEventId("ann", leaderboard::kGivingStreakBadge)) {
      ++badge_events;
    }
  }
  EXPECT_EQ(lengths, expected);
  auto badges = replica.store.Badges(org, "ann");
  ASSERT_TRUE(badges.ok());
  bool held = badges->count(leaderboard::kGivingStreakBadge) > 0;
  EXPECT_EQ(held, reaching_badge > 0);
  EXPECT_EQ(badge_events, held ? 1 : 0);
}

// Two sweeps (two replicas' PeriodClosers) at once: each closed period's
// boards get one PeriodClosed, with the final top N.
TEST(LeaderboardEventsTest, Events_APeriodIsClosedExactlyOnceWithItsTopNWhenTwoSweepsRunAtOnce) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "periods";
  lbtest::EventWriter writer(redis.address(), org);
  People(writer, {"ann", "bob", "cem", "dia"});
  // Week 2026-W47 (Monday 16 .. Sunday 22): points received bob 7, cem 5, dia 5, ann 1.
  SendKudos(writer, "a", "ann", "bob", 4, Utc(2026, 11, 16, 9));
  SendKudos(writer, "b", "ann", "bob", 3, Utc(2026, 11, 17, 9));
  SendKudos(writer, "c", "bob", "dia", 5, Utc(2026, 11, 18, 9));
  SendKudos(writer, "d", "ann", "cem", 5, Utc(2026, 11, 19, 9));
  SendKudos(writer, "e", "cem", "ann", 1, Utc(2026, 11, 20, 9));
  Replica replica(redis, "replica-a", 50);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();
  size_t before = ReadEvents(pool, org).size();

  absl::Time now = Utc(2026, 11, 23, 6);  // Monday of W48, past W47's end + grace
  common::redis::Pool pool_b(PoolFor(redis));
  leaderboard::Store store_b(pool_b);
  leaderboard::EventsOptions options = Events();
  options.max_periods_per_run = 100;
  leaderboard::PeriodCloser first(replica.store, options);
  leaderboard::PeriodCloser second(store_b, options);
  absl::StatusOr<leaderboard::PeriodCloser::Result> result_a, result_b;
  std::thread a([&] { result_a = first.RunOnce(org, now); });
  std::thread b([&] { result_b = second.RunOnce(org, now); });
  a.join();
  b.join();
  ASSERT_TRUE(result_a.ok()) << result_a.status();
  ASSERT_TRUE(result_b.ok()) << result_b.status();
  // W47 and the days 16 .. 22 (a week of lookback): 8 periods, once.
  EXPECT_EQ(result_a->periods_closed + result_b->periods_closed, 8);
  std::vector<StoredEvent> all = ReadEvents(pool, org);
  std::vector<StoredEvent> closes(all.begin() + static_cast<std::ptrdiff_t>(before), all.end());
  EXPECT_EQ(static_cast<int>(closes.size()), result_a->events + result_b->events);
  std::map<std::string, int> count = CountById(closes);
  for (const auto& [id, n] : count) EXPECT_EQ(n, 1) << id;
  ASSERT_EQ(count.count("period.closed/points_received/week/2026-W47/org"), 1u);
  EXPECT_EQ(count.count("period.closed/points_received/week/2026-W47/team:ops"), 1u);
  EXPECT_EQ(count.count("period.closed/kudos_given/day/2026-11-16/org"), 1u);
  EXPECT_EQ(count.count("period.closed/kudos_given/week/2026-W48/org"), 0u) << "not over";
  EXPECT_EQ(count.count("period.closed/points_received/month/2026-10/org"), 0u) << "past lookback";
  for (const StoredEvent& stored : closes) {
    if (stored.event.event_id() != "period.closed/points_received/week/2026-W47/org") continue;
    const v1::PeriodClosed& closed = stored.event.period_closed();
    EXPECT_EQ(closed.board().metric(), v1::METRIC_POINTS_RECEIVED);
    EXPECT_EQ(closed.board().window(), v1::WINDOW_WEEK);
    EXPECT_EQ(closed.board().scope(), v1::SCOPE_ORG);
    EXPECT_EQ(closed.period(), "2026-W47");
    EXPECT_EQ(leaderboard::FromProto(closed.period_start()), Utc(2026, 11, 16, 0));
    EXPECT_EQ(leaderboard::FromProto(closed.period_end()), Utc(2026, 11, 23, 0));
    EXPECT_EQ(closed.total_entries(), 4);
    ASSERT_EQ(closed.entries_size(), 2);  // top_n
    EXPECT_EQ(closed.entries(0).subject_id(), "bob");
    EXPECT_EQ(closed.entries(0).score(), 7);
    EXPECT_EQ(closed.entries(0).rank(), 1);
    EXPECT_EQ(closed.entries(0).display_name(), "Name bob");
    EXPECT_EQ(closed.entries(1).subject_id(), "cem");  // ties by id: cem before dia
    EXPECT_EQ(closed.entries(1).rank(), 2);
  }
  // Later sweeps close nothing again (the markers), until the next period.
  auto again = first.RunOnce(org, now + absl::Hours(1));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->periods_closed, 0);
  // One sweep closes at most max_periods_per_run (2) periods, oldest first.
  leaderboard::PeriodCloser bounded(replica.store, Events());
  auto next_week = bounded.RunOnce(org, now + absl::Hours(24 * 7));
  ASSERT_TRUE(next_week.ok()) << next_week.status();
  EXPECT_EQ(next_week->periods_closed, 2);
  auto marker = pool.Run({"TTL", leaderboard::PeriodClosedMarkerKey(org, "week", "2026-W47")});
  ASSERT_TRUE(marker.ok());
  EXPECT_GT(marker->integer, 0) << "markers expire";
}

// The consumer's sweep in turns: a turn stops at its budget (here one org)
// and the next turn resumes at the next org; rounds of turns, repeated,
// close every due period of every org exactly once.
TEST(LeaderboardEventsTest, Events_ASweepTurnStopsAtItsBudgetAndRepeatedTurnsCloseEveryPeriodOnce) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::vector<std::string> orgs = {"org-a", "org-b", "org-c", "org-d", "org-e"};
  for (const std::string& org : orgs) {
    lbtest::EventWriter writer(redis.address(), org);
    People(writer, {"ann", "bob", "cem"});
    SendKudos(writer, org + "-1", "ann", "bob", 4, Utc(2026, 11, 16, 9));
    SendKudos(writer, org + "-2", "bob", "cem", 3, Utc(2026, 11, 18, 9));
  }
  Replica replica(redis, "replica-a", 50);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] {
    for (const std::string& org : orgs) {
      if (Backlog(pool, org) != 0) return false;
    }
    return true;
  }));
  replica.consumer->Stop();
  std::map<std::string, size_t> before;
  for (const std::string& org : orgs) before[org] = ReadEvents(pool, org).size();

  absl::Time now = Utc(2026, 11, 23, 6);  // past W47's end + grace
  leaderboard::PeriodCloser closer(replica.store, Events());  // 2 periods an org a run
  leaderboard::PeriodSweep sweep(closer);
  std::set<std::string> org_set(orgs.begin(), orgs.end());
  int budget_checks = 0;
  auto one_org_a_turn = [&] {
    ++budget_checks;
    return true;
  };
  int closed = 0;
  int rounds = 0;
  for (; rounds < 20; ++rounds) {
    int closed_this_round = 0;
    int turns = 0;
    for (bool done = false; !done && turns < 100; ++turns) {
      leaderboard::PeriodSweep::Turn turn = sweep.RunTurn(org_set, now, one_org_a_turn);
      EXPECT_EQ(turn.orgs, 1) << "a turn stops at its budget";
      closed_this_round += turn.periods_closed;
      done = turn.round_done;
    }
    EXPECT_EQ(turns, static_cast<int>(orgs.size())) << "each org once a round";
    closed += closed_this_round;
    if (closed_this_round == 0) break;
  }
  EXPECT_GT(budget_checks, 0);
  // W47 and the days 16 .. 22: 8 periods an org, 2 a run: 4 rounds, then none.
  EXPECT_EQ(rounds, 4);
  EXPECT_EQ(closed, 8 * static_cast<int>(orgs.size()));
  for (const std::string& org : orgs) {
    std::vector<StoredEvent> all = ReadEvents(pool, org);
    std::vector<StoredEvent> closes(all.begin() + static_cast<std::ptrdiff_t>(before[org]),
                                    all.end());
    std::map<std::string, int> count = CountById(closes);
    for (const auto& [id, n] : count) EXPECT_EQ(n, 1) << org << " " << id;
    EXPECT_EQ(count.count("period.closed/points_received/week/2026-W47/org"), 1u) << org;
    EXPECT_EQ(count.count("period.closed/points_received/day/2026-11-18/team:ops"), 1u) << org;
  }
  // A budget never reached: one turn is the whole round.
  leaderboard::PeriodSweep unbounded(closer);
  leaderboard::PeriodSweep::Turn whole =
      unbounded.RunTurn(org_set, now + absl::Hours(1), [] { return false; });
  EXPECT_TRUE(whole.round_done);
  EXPECT_EQ(whole.orgs, static_cast<int>(orgs.size()));
  EXPECT_EQ(whole.periods_closed, 0) << "closed before";
}

// The sweep waits for the consumer: entries after its mark hold the
// position at the mark.
TEST(LeaderboardEventsTest, Events_APeriodDoesNotCloseBeforeTheConsumerHasAppliedItsEntries) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  const std::string org = "lagging";
  lbtest::EventWriter writer(redis.address(), org);
  People(writer, {"ann", "bob"});
  leaderboard::Store store(pool);
  leaderboard::PeriodCloser closer(store, Events());
  absl::Time now = absl::Now();
  auto position = closer.Position(org, now);
  ASSERT_TRUE(position.ok()) << position.status();
  EXPECT_EQ(*position, absl::FromUnixMillis(0)) << "nothing applied yet";
  auto closed = closer.RunOnce(org, now);
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_EQ(closed->periods_closed, 0);
  {
    Replica replica(redis, "replica-a", 50);
    replica.consumer->Start();
    ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
    replica.consumer->Stop();
  }
  position = closer.Position(org, now);
  ASSERT_TRUE(position.ok());
  EXPECT_EQ(*position, now) << "caught up";
}

// More events than the bound: the stream keeps about max_len of them.
TEST(LeaderboardEventsTest, Events_TheStreamIsBoundedByMaxLen) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  // Small stream nodes, so MAXLEN ~ trims close to the bound.
  ASSERT_TRUE(pool.Run({"CONFIG", "SET", "stream-node-max-entries", "10"}).ok());
  const std::string org = "bounded";
  lbtest::EventWriter writer(redis.address(), org);
  std::vector<std::string> people;
  for (int i = 0; i < 60; ++i) people.push_back(absl::StrCat("p", i));
  People(writer, people);
  for (int i = 0; i < 60; ++i) {  // 120 first badges
    SendKudos(writer, absl::StrCat("K", i), people[i], people[(i + 1) % 60], 1,
              Utc(2026, 11, 23, 9));
  }
  Replica replica(redis, "replica-a", 50, Events(/*max_len=*/20));
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();
  auto length = pool.Run({"XLEN", leaderboard::EventsStream(org)});
  ASSERT_TRUE(length.ok());
  EXPECT_GE(length->integer, 20);
  EXPECT_LE(length->integer, 30) << "MAXLEN ~ 20 with nodes of 10";
  auto added = pool.Run({"XINFO", "STREAM", leaderboard::EventsStream(org)});
  ASSERT_TRUE(added.ok());
  for (size_t i = 0; i + 1 < added->elements.size(); i += 2) {
    if (added->elements[i].str == "entries-added") {
      EXPECT_EQ(added->elements[i + 1].integer, 120);
    }
  }
}

// Counts the SMEMBERS that scripts send on an org's days keys, from Redis's
// MONITOR feed (a script's own calls are the lines of client "lua"). Those
// are the reads the events add; the consumer's own streak-check reads are
// sent again with every retried batch, so they cannot be told apart by
// INFO's totals on a loaded machine. Bounded: the reader stops at the
// marker Stop() sends, or after 60 s without a line.
class ScriptDaysReads {
 public:
  explicit ScriptDaysReads(const harness::RedisServer& redis) {
    context_ = redisConnect("127.0.0.1", redis.port());
    EXPECT_TRUE(context_ != nullptr && context_->err == 0);
    if (context_ == nullptr || context_->err != 0) return;
    timeval read_timeout = {60, 0};
    redisSetTimeout(context_, read_timeout);
    auto* ok = static_cast<redisReply*>(redisCommand(context_, "MONITOR"));
    EXPECT_TRUE(ok != nullptr && ok->type == REDIS_REPLY_STATUS);
    if (ok != nullptr) freeReplyObject(ok);
    reader_ = std::thread([this] { Read(); });
  }
  // A test that ended early (a failed ASSERT) unblocks the reader by closing
  // the feed rather than waiting out its timeout.
  ~ScriptDaysReads() {
    if (reader_.joinable()) {
      closing_.store(true);
      shutdown(context_->fd, SHUT_RDWR);
      reader_.join();
    }
    if (context_ != nullptr) redisFree(context_);
  }
  // Ends the feed: sends the marker and waits for the reader to see it.
  void Stop(common::redis::Pool& pool) {
    EXPECT_TRUE(pool.Run({"ECHO", kStopMarker}).ok());
    if (reader_.joinable()) reader_.join();
  }
  // Script SMEMBERS on `org`'s days keys; call after Stop().
  int64_t For(const std::string& org) const {
    auto found = reads_.find(org);
    return found == reads_.end() ? 0 : found->second;
  }

 private:
  static constexpr const char* kStopMarker = "script-days-reads-stop";
  void Read() {
    while (true) {
      void* raw = nullptr;
      if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
        if (!closing_.load()) ADD_FAILURE() << "MONITOR feed ended before its stop marker";
        return;
      }
      auto* reply = static_cast<redisReply*>(raw);
      std::string line(reply->str != nullptr ? reply->str : "", reply->len);
      freeReplyObject(reply);
      if (absl::StrContains(line, kStopMarker)) return;
      // 1700000000.000000 [0 lua] "SMEMBERS" "lb:{org}:days:giving:p1"
      if (!absl::StrContains(line, " lua] \"SMEMBERS\" \"lb:{")) continue;
      size_t open = line.find("lb:{") + 4;
      size_t close = line.find("}:days:", open);
      if (close != std::string::npos) ++reads_[line.substr(open, close - open)];
    }
  }
  redisContext* context_ = nullptr;
  std::atomic<bool> closing_{false};
  std::map<std::string, int64_t> reads_;  // org -> script SMEMBERS on its days keys
  std::thread reader_;
};

// Redis's calls and CPU per command name since the last CONFIG RESETSTAT.
std::map<std::string, std::pair<int64_t, int64_t>> CommandStats(common::redis::Pool& pool) {
  std::map<std::string, std::pair<int64_t, int64_t>> out;  // name -> (calls, usec)
  auto info = pool.Run({"INFO", "commandstats"});
  EXPECT_TRUE(info.ok());
  if (!info.ok()) return out;
  for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
    if (!absl::StartsWith(line, "cmdstat_")) continue;
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(line, ':');
    std::string name(parts.first.substr(8));
    for (absl::string_view field : absl::StrSplit(parts.second, ',')) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(field, '=');
      int64_t value = 0;
      if (kv.first == "calls" && absl::SimpleAtoi(kv.second, &value)) out[name].first = value;
      if (kv.first == "usec" && absl::SimpleAtoi(kv.second, &value)) out[name].second = value;
    }
  }
  return out;
}

// The Redis cost of the events: only changes append (one XADD per event)
// and a new active day is the only one that reads the person's days (one
// SMEMBERS per person, kind and day). Prints the calls and script CPU per
// kudos with the events off and on (same history, same Redis, both under
// MONITOR, whose share inflates the CPU: compare the two, not the bench's).
TEST(LeaderboardEventsTest, Events_CostOneXaddPerEventAndOneDaysReadPerNewActiveDay) {
  harness::RedisServer redis;
  common::redis::Pool pool(PoolFor(redis));
  constexpr int kPeople = 200, kKudos = 1500, kDays = 5;
  std::map<std::string, std::map<std::string, std::pair<int64_t, int64_t>>> stats;
  std::set<std::string> person_days;  // kind|person|day
  ScriptDaysReads days_reads(redis);
  for (bool on : {false, true}) {
    const std::string org = on ? "cost-on" : "cost-off";
    lbtest::EventWriter writer(redis.address(), org);
    std::vector<std::string> people;
    for (int i = 0; i < kPeople; ++i) people.push_back(absl::StrCat("p", i));
    People(writer, people);
    uint64_t seed = 42;
    auto next = [&seed] {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      return static_cast<int>((seed >> 33) % kPeople);
    };
    for (int k = 0; k < kKudos; ++k) {
      int day = 23 + k * kDays / kKudos;  // Monday 2026-11-23 .. Friday 27
      int giver = next(), recipient = next();
      if (recipient == giver) recipient = (recipient + 1) % kPeople;
      SendKudos(writer, absl::StrCat("K", k), people[giver], people[recipient], 1,
                Utc(2026, 11, day, 9));
      person_days.insert(absl::StrCat("g|", giver, "|", day));
      person_days.insert(absl::StrCat("r|", recipient, "|", day));
    }
    leaderboard::EventsOptions events = Events();
    events.enabled = on;
    ASSERT_TRUE(pool.Run({"CONFIG", "RESETSTAT"}).ok());
    Replica replica(redis, "replica-a", 200, events);
    replica.consumer->Start();
    ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }, std::chrono::seconds(120)));
    replica.consumer->Stop();
    stats[org] = CommandStats(pool);
  }
  auto calls = [&](const std::string& org, const std::string& name) {
    return stats[org][name].first;
  };
  int64_t events = ReadEvents(pool, "cost-on").size();
  EXPECT_EQ(calls("cost-on", "xadd"), events) << "one XADD per event, nothing else appended";
  EXPECT_EQ(calls("cost-off", "xadd"), 0);
  days_reads.Stop(pool);
  EXPECT_EQ(days_reads.For("cost-on"), static_cast<int64_t>(person_days.size()))
      << "one days read per person, kind and new day";
  EXPECT_EQ(days_reads.For("cost-off"), 0) << "no days read by the scripts with the events off";
  int64_t total[2] = {0, 0};
  for (const auto& [name, value] : stats["cost-off"]) total[0] += value.first;
  for (const auto& [name, value] : stats["cost-on"]) total[1] += value.first;
  std::cout << "events: " << events << " for " << kKudos << " kudos; Redis calls per kudos "
            << static_cast<double>(total[0]) / kKudos << " off, "
            << static_cast<double>(total[1]) / kKudos << " on (xadd "
            << static_cast<double>(calls("cost-on", "xadd")) / kKudos << ", script days reads "
            << static_cast<double>(days_reads.For("cost-on")) / kKudos << "); script usec per kudos "
            << static_cast<double>(stats["cost-off"]["evalsha"].second) / kKudos << " off, "
            << static_cast<double>(stats["cost-on"]["evalsha"].second) / kKudos
            << " on, of which xadd " << static_cast<double>(stats["cost-on"]["xadd"].second) / kKudos
            << " and smembers " << static_cast<double>(stats["cost-on"]["smembers"].second) / kKudos
            << " (off: smembers " << static_cast<double>(stats["cost-off"]["smembers"].second) / kKudos
            << ", sadd " << static_cast<double>(stats["cost-off"]["sadd"].second) / kKudos << " / on "
            << static_cast<double>(stats["cost-on"]["sadd"].second) / kKudos << ", hsetnx "
            << static_cast<double>(stats["cost-off"]["hsetnx"].second) / kKudos << " / "
            << static_cast<double>(stats["cost-on"]["hsetnx"].second) / kKudos << ")\n";
}

}  // namespace
