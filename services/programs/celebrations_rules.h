// Automatic celebrations (issue 18, part 3): the domain rules, plain C++.
// When a birthday or work anniversary falls (09:00 local on the day, 29 Feb
// on 28 Feb in other years), what it pays, and what input is valid.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "programs/v1/celebrations.pb.h"

namespace programs::celebrations {

using v1::CelebrationKind;

// The local hour a celebration is given at.
inline constexpr int kCelebrateHour = 9;
inline constexpr int64_t kDefaultBirthdayPoints = 10;
inline constexpr int64_t kDefaultAnniversaryPointsPerYear = 10;
inline constexpr int64_t kMaxPointsSetting = 1000;
inline constexpr int kMinHireYear = 1900;
inline constexpr int kMaxHireYear = 9999;

// "birthday" / "anniversary": in keys, transfer ids and celebration ids.
absl::string_view KindName(CelebrationKind kind);
// The kind a KindName names, or UNSPECIFIED.
CelebrationKind KindFromName(absl::string_view name);

// INVALID_ARGUMENT naming `field` unless month 1..12 and a day the month can
// have (29 February is valid).
absl::Status ValidateMonthDay(const v1::MonthDay& day, absl::string_view field);
// INVALID_ARGUMENT naming `field` unless a real date, year 1900..9999.
absl::Status ValidateHireDate(const common::v1::Date& date, absl::string_view field);
// INVALID_ARGUMENT unless each value is in 0..1000.
absl::Status ValidateSettings(const v1::CelebrationSettings& settings);
// The defaults for an org that never set any.
v1::CelebrationSettings DefaultSettings();

// The day a (month, day) falls on in `year`: 29 February is 28 February in
// a year that is not a leap year.
absl::CivilDay DayInYear(int year, int month, int day);
// 09:00 of `day` in `zone` (a skipped hour moves forward, as absl does).
absl::Time CelebrateTime(absl::CivilDay day, const absl::TimeZone& zone);

// One celebration as scheduled: its year, local day and instant.
struct Occurrence {
  int year = 0;
  absl::CivilDay day;
  absl::Time time;
};

// The first occurrence of (month, day) in a year >= min_year whose local day
// is today or later at `now` in `zone` (so a date set on the day, after
// 09:00, is still celebrated that day).
Occurrence NextOccurrence(int month, int day, int min_year, absl::Time now,
                          const absl::TimeZone& zone);
// The occurrence of (month, day) in `year` in `zone`.
Occurrence OccurrenceInYear(int month, int day, int year, const absl::TimeZone& zone);

// The next celebration of `kind` for `profile` at `now`, or nullopt when it
// has none (no date for it, or opted out). Anniversaries start one year
// after the hire date.
std::optional<Occurrence> NextCelebration(const v1::CelebrationProfile& profile,
                                          CelebrationKind kind, absl::Time now,
                                          const absl::TimeZone& zone);

// "<kind>:<year>:<person>": the celebration's id. The ledger transfer id is
// "celebration:" + this; the org is the ledger's own namespace (the token's
// org), so org + person + kind + year identify it.
std::string CelebrationId(CelebrationKind kind, int year, absl::string_view person);
std::string TransferIdFor(absl::string_view celebration_id);

// The celebration of `kind` in `occurrence`'s year for `profile` with the
// org's settings: points (birthday_points, or per year of tenure), ids,
// day, time and message. `display_name` may be empty (the id is used).
v1::Celebration MakeCelebration(const v1::CelebrationProfile& profile, CelebrationKind kind,
                                const Occurrence& occurrence,
                                const v1::CelebrationSettings& settings,
                                absl::string_view display_name);

}  // namespace programs::celebrations
