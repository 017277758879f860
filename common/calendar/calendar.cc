#include "common/calendar/calendar.h"

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check/check.h"

namespace common::calendar {
namespace {

int NormalizeWeekStart(int week_start) { return week_start >= 1 && week_start <= 7 ? week_start : 1; }

absl::CivilDay WeekFirstDay(absl::CivilDay day, int week_start) {
  int offset = (DayOfWeekNumber(day) - NormalizeWeekStart(week_start) + 7) % 7;
  return day - offset;
}

// Weeks are numbered like ISO 8601, generalised to any week start: a week
// belongs to the year of its fourth day, and week 1 is the first such week.
// With a Monday start this is exactly the ISO week.
std::pair<int, int> WeekYearAndNumber(absl::CivilDay first_day) {
  absl::CivilDay anchor = first_day + 3;
  int year = static_cast<int>(anchor.year());
  int day_of_year = static_cast<int>(anchor - absl::CivilDay(year, 1, 1));
  return {year, day_of_year / 7 + 1};
}

absl::CivilDay FirstDayOfWeekNumber(int year, int number, int week_start) {
  absl::CivilDay jan1(year, 1, 1);
  int anchor_weekday = (NormalizeWeekStart(week_start) - 1 + 3) % 7 + 1;
  int shift = (anchor_weekday - DayOfWeekNumber(jan1) + 7) % 7;
  absl::CivilDay anchor = jan1 + shift + 7 * (number - 1);
  return anchor - 3;
}

Period Make(std::string key, absl::CivilDay first, absl::CivilDay end,
            const absl::TimeZone& zone) {
  return Period{std::move(key), first, end, StartOfDay(first, zone), StartOfDay(end, zone)};
}

}  // namespace

// PeriodOfDay and ParsePeriod without their checks (defined below them).
Period PeriodOfDayUnchecked(PeriodUnit unit, absl::CivilDay day, const absl::TimeZone& zone,
                            int week_start);
absl::StatusOr<Period> ParsePeriodLoosely(PeriodUnit unit, absl::string_view key,
                                          const absl::TimeZone& zone, int week_start);

int DayOfWeekNumber(absl::CivilDay day) { return static_cast<int>(absl::GetWeekday(day)) + 1; }

absl::StatusOr<absl::TimeZone> LoadZone(absl::string_view name) {
  if (name.empty()) return absl::UTCTimeZone();
  absl::TimeZone zone;
  if (!absl::LoadTimeZone(std::string(name), &zone)) {
    return absl::InvalidArgumentError(
        absl::StrCat("time_zone: '", name, "' is not an IANA time zone"));
  }
  return zone;
}

absl::Time StartOfDay(absl::CivilDay day, const absl::TimeZone& zone) {
  absl::TimeZone::TimeInfo info = zone.At(absl::CivilSecond(day));
  return info.kind == absl::TimeZone::TimeInfo::SKIPPED ? info.trans : info.pre;
}

absl::CivilDay LocalDay(absl::Time t, const absl::TimeZone& zone) {
  return absl::ToCivilDay(t, zone);
}

Period PeriodOfDay(PeriodUnit unit, absl::CivilDay day, const absl::TimeZone& zone,
                   int week_start) {
  Period period = PeriodOfDayUnchecked(unit, day, zone, week_start);
  // Every board and allowance key is derived from this: a day outside its own
  // period would credit points to the wrong board.
  KUDOS_CHECK(period.first_day < period.end_day, "a period is never empty");
  KUDOS_CHECK(unit == PeriodUnit::kAllTime || (period.first_day <= day && day < period.end_day),
              "a day lies in the period computed for it");
  return period;
}

Period PeriodOfDayUnchecked(PeriodUnit unit, absl::CivilDay day, const absl::TimeZone& zone,
                            int week_start) {
  switch (unit) {
    case PeriodUnit::kDay:
      return Make(absl::FormatCivilTime(day), day, day + 1, zone);
    case PeriodUnit::kWeek: {
      absl::CivilDay first = WeekFirstDay(day, week_start);
      auto [year, number] = WeekYearAndNumber(first);
      return Make(absl::StrFormat("%04d-W%02d", year, number), first, first + 7, zone);
    }
    case PeriodUnit::kMonth: {
      absl::CivilMonth month(day);
      return Make(absl::StrFormat("%04d-%02d", month.year(), month.month()), absl::CivilDay(month),
                  absl::CivilDay(month + 1), zone);
    }
    case PeriodUnit::kQuarter: {
      int quarter = (day.month() - 1) / 3;
      absl::CivilMonth first(day.year(), quarter * 3 + 1);
      return Make(absl::StrFormat("%04d-Q%d", day.year(), quarter + 1), absl::CivilDay(first),
                  absl::CivilDay(first + 3), zone);
    }
    case PeriodUnit::kYear: {
      absl::CivilYear year(day);
      return Make(absl::StrFormat("%04d", year.year()), absl::CivilDay(year),
                  absl::CivilDay(year + 1), zone);
    }
    case PeriodUnit::kAllTime:
      break;
  }
  return Period{"all", absl::CivilDay(1970, 1, 1), absl::CivilDay(9999, 1, 1),
                absl::InfinitePast(), absl::InfiniteFuture()};
}

Period PeriodAt(PeriodUnit unit, absl::Time t, const absl::TimeZone& zone, int week_start) {
  return PeriodOfDay(unit, LocalDay(t, zone), zone, week_start);
}

absl::StatusOr<Period> ParsePeriod(PeriodUnit unit, absl::string_view key,
                                   const absl::TimeZone& zone, int week_start) {
  absl::StatusOr<Period> period = ParsePeriodLoosely(unit, key, zone, week_start);
  // sscanf accepts spaces and signs ("2026- 1"); only the canonical key names
  // a period, so that a key always parses back to the period it came from.
  if (period.ok() && unit != PeriodUnit::kAllTime && period->key != key) {
    return absl::InvalidArgumentError(absl::StrCat(
        "period: '", key, "' is not in canonical form (did you mean '", period->key, "'?)"));
  }
  return period;
}

absl::StatusOr<Period> ParsePeriodLoosely(PeriodUnit unit, absl::string_view key,
                                          const absl::TimeZone& zone, int week_start) {
  auto bad = [&](absl::string_view shape) {
    return absl::InvalidArgumentError(
        absl::StrCat("period: '", key, "' is not a ", shape));
  };
  int year = 0, number = 0, day_of_month = 0;
  char tail = 0;
  std::string text(key);
  switch (unit) {
    case PeriodUnit::kAllTime:
      return PeriodOfDay(unit, absl::CivilDay(), zone, week_start);
    case PeriodUnit::kDay: {
      if (std::sscanf(text.c_str(), "%4d-%2d-%2d%c", &year, &number, &day_of_month, &tail) != 3 ||
          text.size() != 10) {
        return bad("day (YYYY-MM-DD)");
      }
      absl::CivilDay day(year, number, day_of_month);
      if (day.year() != year || day.month() != number || day.day() != day_of_month) {
        return bad("valid date");
      }
      return PeriodOfDay(unit, day, zone, week_start);
    }
    case PeriodUnit::kWeek: {
      if (std::sscanf(text.c_str(), "%4d-W%2d%c", &year, &number, &tail) != 2 ||
          text.size() != 8 || number < 1 || number > 53) {
        return bad("week (YYYY-Www)");
      }
      Period period = PeriodOfDay(unit, FirstDayOfWeekNumber(year, number, week_start), zone,
                                  week_start);
      if (period.key != text) return bad("week of that year");
      return period;
    }
    case PeriodUnit::kMonth:
      if (std::sscanf(text.c_str(), "%4d-%2d%c", &year, &number, &tail) != 2 ||
          text.size() != 7 || number < 1 || number > 12) {
        return bad("month (YYYY-MM)");
      }
      return PeriodOfDay(unit, absl::CivilDay(year, number, 1), zone, week_start);
    case PeriodUnit::kQuarter:
      if (std::sscanf(text.c_str(), "%4d-Q%1d%c", &year, &number, &tail) != 2 ||
          text.size() != 7 || number < 1 || number > 4) {
        return bad("quarter (YYYY-Qn)");
      }
      return PeriodOfDay(unit, absl::CivilDay(year, (number - 1) * 3 + 1, 1), zone, week_start);
    case PeriodUnit::kYear:
      if (text.size() != 4 || !absl::SimpleAtoi(text, &year) || year < 1970) {
        return bad("year (YYYY)");
      }
      return PeriodOfDay(unit, absl::CivilDay(year, 1, 1), zone, week_start);
  }
  return bad("period");
}

}  // namespace common::calendar
