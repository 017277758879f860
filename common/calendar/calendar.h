// Periods on an org's calendar: days, weeks (from the org's week start),
// months, quarters and years in an IANA time zone, named by stable keys.
// Used by the ledger (allowance periods) and the leaderboard (windows).
// All arithmetic is on civil dates in the zone, never on divided timestamps,
// so daylight-saving changes cannot shift a day.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace common::calendar {

enum class PeriodUnit { kDay, kWeek, kMonth, kQuarter, kYear, kAllTime };

struct Period {
  // "2026-11-23", "2026-W48", "2026-11", "2026-Q4", "2026" or "all".
  std::string key;
  absl::CivilDay first_day;  // inclusive
  absl::CivilDay end_day;    // exclusive
  absl::Time start;
  absl::Time end;
};

// Monday = 1 ... Sunday = 7 (common.v1.DayOfWeek); 0 is treated as Monday.
int DayOfWeekNumber(absl::CivilDay day);

// "" means UTC; an unknown zone is INVALID_ARGUMENT naming it.
absl::StatusOr<absl::TimeZone> LoadZone(absl::string_view name);

// The instant a local day begins (the transition, if midnight is skipped).
absl::Time StartOfDay(absl::CivilDay day, const absl::TimeZone& zone);

absl::CivilDay LocalDay(absl::Time t, const absl::TimeZone& zone);

Period PeriodOfDay(PeriodUnit unit, absl::CivilDay day, const absl::TimeZone& zone,
                   int week_start);
Period PeriodAt(PeriodUnit unit, absl::Time t, const absl::TimeZone& zone, int week_start);

// The period a key names; INVALID_ARGUMENT when the key does not fit the unit.
absl::StatusOr<Period> ParsePeriod(PeriodUnit unit, absl::string_view key,
                                   const absl::TimeZone& zone, int week_start);

}  // namespace common::calendar
