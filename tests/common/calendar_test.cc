#include "common/calendar/calendar.h"

#include <gtest/gtest.h>

#include <utility>

namespace common::calendar {
namespace {

absl::TimeZone Zone(const char* name) { return *LoadZone(name); }

TEST(CalendarTest, MondayWeekKeyMatchesIsoWeek) {
  // 2026-11-23 is a Monday in ISO week 48; 2021-01-03 belongs to 2020-W53.
  EXPECT_EQ(PeriodOfDay(PeriodUnit::kWeek, absl::CivilDay(2026, 11, 23), absl::UTCTimeZone(), 1).key,
            "2026-W48");
  EXPECT_EQ(PeriodOfDay(PeriodUnit::kWeek, absl::CivilDay(2021, 1, 3), absl::UTCTimeZone(), 1).key,
            "2020-W53");
}

TEST(CalendarTest, SundayWeekStartMovesTheWeekBoundary) {
  Period monday_week = PeriodOfDay(PeriodUnit::kWeek, absl::CivilDay(2026, 11, 22), absl::UTCTimeZone(), 1);
  Period sunday_week = PeriodOfDay(PeriodUnit::kWeek, absl::CivilDay(2026, 11, 22), absl::UTCTimeZone(), 7);
  EXPECT_EQ(monday_week.first_day, absl::CivilDay(2026, 11, 16));
  EXPECT_EQ(sunday_week.first_day, absl::CivilDay(2026, 11, 22));
}

TEST(CalendarTest, WeekKeysRoundTripForEveryWeekStart) {
  for (int week_start = 1; week_start <= 7; ++week_start) {
    for (absl::CivilDay day(2019, 12, 1); day < absl::CivilDay(2027, 2, 1); day += 1) {
      Period period = PeriodOfDay(PeriodUnit::kWeek, day, absl::UTCTimeZone(), week_start);
      absl::StatusOr<Period> parsed =
          ParsePeriod(PeriodUnit::kWeek, period.key, absl::UTCTimeZone(), week_start);
      ASSERT_TRUE(parsed.ok()) << period.key << " " << parsed.status();
      ASSERT_EQ(parsed->first_day, period.first_day) << period.key << " start " << week_start;
      ASSERT_LE(period.first_day, day);
      ASSERT_GT(period.end_day, day);
    }
  }
}

TEST(CalendarTest, DayPeriodFollowsTheZoneNotUtc) {
  // 23:30 UTC on Nov 22 is already Nov 23 in Paris.
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 11, 22, 23, 30, 0), absl::UTCTimeZone());
  EXPECT_EQ(PeriodAt(PeriodUnit::kDay, t, Zone("Europe/Paris"), 1).key, "2026-11-23");
  EXPECT_EQ(PeriodAt(PeriodUnit::kDay, t, absl::UTCTimeZone(), 1).key, "2026-11-22");
}

TEST(CalendarTest, DaylightSavingDayIsTwentyThreeHoursLong) {
  Period day = PeriodOfDay(PeriodUnit::kDay, absl::CivilDay(2026, 3, 29), Zone("Europe/Paris"), 1);
  EXPECT_EQ(day.end - day.start, absl::Hours(23));
}

TEST(CalendarTest, MonthQuarterYearKeys) {
  absl::CivilDay day(2026, 11, 23);
  EXPECT_EQ(PeriodOfDay(PeriodUnit::kMonth, day, absl::UTCTimeZone(), 1).key, "2026-11");
  EXPECT_EQ(PeriodOfDay(PeriodUnit::kQuarter, day, absl::UTCTimeZone(), 1).key, "2026-Q4");
  EXPECT_EQ(PeriodOfDay(PeriodUnit::kYear, day, absl::UTCTimeZone(), 1).key, "2026");
  EXPECT_EQ(PeriodOfDay(PeriodUnit::kQuarter, day, absl::UTCTimeZone(), 1).end_day,
            absl::CivilDay(2027, 1, 1));
}

TEST(CalendarTest, ParsePeriod_RejectsMalformedKeys) {
  for (const char* key : {"2026-13", "2026-W60", "2026-Q5", "26", "2026-02-30", "x"}) {
    EXPECT_FALSE(ParsePeriod(PeriodUnit::kMonth, key, absl::UTCTimeZone(), 1).ok() &&
                 ParsePeriod(PeriodUnit::kWeek, key, absl::UTCTimeZone(), 1).ok() &&
                 ParsePeriod(PeriodUnit::kQuarter, key, absl::UTCTimeZone(), 1).ok() &&
                 ParsePeriod(PeriodUnit::kDay, key, absl::UTCTimeZone(), 1).ok())
        << key;
  }
  EXPECT_FALSE(ParsePeriod(PeriodUnit::kDay, "2026-02-30", absl::UTCTimeZone(), 1).ok());
  EXPECT_FALSE(ParsePeriod(PeriodUnit::kMonth, "2026-13", absl::UTCTimeZone(), 1).ok());
  EXPECT_TRUE(ParsePeriod(PeriodUnit::kMonth, "2026-12", absl::UTCTimeZone(), 1).ok());
}

TEST(CalendarTest, LoadZone_RejectsUnknownZone) {
  absl::StatusOr<absl::TimeZone> zone = LoadZone("Mars/Olympus");
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CalendarTest, ParsePeriod_RefusesKeysThatAreNotCanonical) {
  // sscanf alone would read these as 2026-01, 2026-Q1 and 2026-11-02.
  for (auto [unit, key] : {std::pair{PeriodUnit::kMonth, "2026- 1"},
                           std::pair{PeriodUnit::kMonth, "2026-+1"},
                           std::pair{PeriodUnit::kDay, "2026-11- 2"},
                           std::pair{PeriodUnit::kWeek, "2026-W 8"}}) {
    absl::StatusOr<Period> parsed = ParsePeriod(unit, key, absl::UTCTimeZone(), 1);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << key;
  }
}

TEST(CalendarTest, EveryUnitsKeyParsesBackToItsPeriod) {
  absl::TimeZone zone = Zone("America/New_York");
  for (PeriodUnit unit : {PeriodUnit::kDay, PeriodUnit::kWeek, PeriodUnit::kMonth,
                          PeriodUnit::kQuarter, PeriodUnit::kYear}) {
    for (absl::CivilDay day(2025, 12, 20); day < absl::CivilDay(2026, 4, 10); day += 1) {
      Period period = PeriodOfDay(unit, day, zone, 1);
      absl::StatusOr<Period> parsed = ParsePeriod(unit, period.key, zone, 1);
      ASSERT_TRUE(parsed.ok()) << period.key << " " << parsed.status();
      EXPECT_EQ(parsed->key, period.key);
      EXPECT_EQ(parsed->first_day, period.first_day) << period.key;
      EXPECT_EQ(parsed->end_day, period.end_day) << period.key;
    }
  }
}

}  // namespace
}  // namespace common::calendar
