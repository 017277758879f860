#include "services/programs/celebrations_rules.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check/check.h"
#include "google/protobuf/util/time_util.h"

namespace programs::celebrations {
namespace {

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && IsLeapYear(year)) return 29;
  return kDays[month - 1];
}

absl::Status CheckPoints(int64_t points, absl::string_view field) {
  if (points >= 0 && points <= kMaxPointsSetting) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must be in 0..", kMaxPointsSetting, ", got ", points));
}

}  // namespace

absl::string_view KindName(CelebrationKind kind) {
  switch (kind) {
    case v1::CELEBRATION_KIND_BIRTHDAY:
      return "birthday";
    case v1::CELEBRATION_KIND_WORK_ANNIVERSARY:
      return "anniversary";
    default:
      return "";
  }
}

CelebrationKind KindFromName(absl::string_view name) {
  if (name == "birthday") return v1::CELEBRATION_KIND_BIRTHDAY;
  if (name == "anniversary") return v1::CELEBRATION_KIND_WORK_ANNIVERSARY;
  return v1::CELEBRATION_KIND_UNSPECIFIED;
}

absl::Status ValidateMonthDay(const v1::MonthDay& day, absl::string_view field) {
  if (day.month() < 1 || day.month() > 12) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".month: must be in 1..12, got ", day.month()));
  }
  // A leap year: 29 February is a birthday.
  const int max_day = DaysInMonth(2000, day.month());
  if (day.day() < 1 || day.day() > max_day) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".day: month ", day.month(), " has days 1..",
                                                   max_day, ", got ", day.day()));
  }
  return absl::OkStatus();
}

absl::Status ValidateHireDate(const common::v1::Date& date, absl::string_view field) {
  if (date.year() < kMinHireYear || date.year() > kMaxHireYear) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".year: must be in ", kMinHireYear,
                                                   "..", kMaxHireYear, ", got ", date.year()));
  }
  if (date.month() < 1 || date.month() > 12) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".month: must be in 1..12, got ", date.month()));
  }
  const int max_day = DaysInMonth(date.year(), date.month());
  if (date.day() < 1 || date.day() > max_day) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".day: ", date.year(), "-", date.month(),
                                                   " has days 1..", max_day, ", got ", date.day()));
  }
  return absl::OkStatus();
}

absl::Status ValidateSettings(const v1::CelebrationSettings& settings) {
  if (absl::Status s = CheckPoints(settings.birthday_points(), "settings.birthday_points");
      !s.ok()) {
    return s;
  }
  return CheckPoints(settings.anniversary_points_per_year(),
                     "settings.anniversary_points_per_year");
}

v1::CelebrationSettings DefaultSettings() {
  v1::CelebrationSettings settings;
  settings.set_birthday_points(kDefaultBirthdayPoints);
  settings.set_anniversary_points_per_year(kDefaultAnniversaryPointsPerYear);
  return settings;
}

absl::CivilDay DayInYear(int year, int month, int day) {
  KUDOS_CHECK(month >= 1 && month <= 12, "months are validated before they are stored");
  return absl::CivilDay(year, month, std::min(day, DaysInMonth(year, month)));
}

absl::Time CelebrateTime(absl::CivilDay day, const absl::TimeZone& zone) {
  return absl::FromCivil(absl::CivilSecond(day.year(), day.month(), day.day(), kCelebrateHour, 0, 0),
                         zone);
}

Occurrence OccurrenceInYear(int month, int day, int year, const absl::TimeZone& zone) {
  Occurrence occurrence;
  occurrence.year = year;
  occurrence.day = DayInYear(year, month, day);
  occurrence.time = CelebrateTime(occurrence.day, zone);
  return occurrence;
}

Occurrence NextOccurrence(int month, int day, int min_year, absl::Time now,
                          const absl::TimeZone& zone) {
  const absl::CivilDay today = absl::ToCivilDay(now, zone);
  const int year = std::max(min_year, static_cast<int>(today.year()));
  Occurrence occurrence = OccurrenceInYear(month, day, year, zone);
  if (occurrence.day < today) occurrence = OccurrenceInYear(month, day, year + 1, zone);
  return occurrence;
}

std::optional<Occurrence> NextCelebration(const v1::CelebrationProfile& profile,
                                          CelebrationKind kind, absl::Time now,
                                          const absl::TimeZone& zone) {
  if (profile.opted_out()) return std::nullopt;
  if (kind == v1::CELEBRATION_KIND_BIRTHDAY) {
    if (!profile.has_birthday()) return std::nullopt;
    return NextOccurrence(profile.birthday().month(), profile.birthday().day(), 0, now, zone);
  }
  if (kind == v1::CELEBRATION_KIND_WORK_ANNIVERSARY) {
    if (!profile.has_hire_date()) return std::nullopt;
    const common::v1::Date& hired = profile.hire_date();
    return NextOccurrence(hired.month(), hired.day(), hired.year() + 1, now, zone);
  }
  return std::nullopt;
}

std::string CelebrationId(CelebrationKind kind, int year, absl::string_view person) {
  return absl::StrCat(KindName(kind), ":", year, ":", person);
}

std::string TransferIdFor(absl::string_view celebration_id) {
  return absl::StrCat("celebration:", celebration_id);
}

v1::Celebration MakeCelebration(const v1::CelebrationProfile& profile, CelebrationKind kind,
                                const Occurrence& occurrence,
                                const v1::CelebrationSettings& settings,
                                absl::string_view display_name) {
  v1::Celebration celebration;
  const std::string& person = profile.person_id();
  const std::string name = display_name.empty() ? person : std::string(display_name);
  celebration.set_celebration_id(CelebrationId(kind, occurrence.year, person));
  celebration.set_person_id(person);
  celebration.set_kind(kind);
  celebration.set_year(occurrence.year);
  if (kind == v1::CELEBRATION_KIND_WORK_ANNIVERSARY) {
    const int tenure = occurrence.year - profile.hire_date().year();
    KUDOS_CHECK(tenure >= 1, "anniversaries are scheduled from one year after the hire date");
    celebration.set_tenure_years(tenure);
    celebration.set_points(settings.anniversary_points_per_year() * tenure);
    celebration.set_message(absl::StrCat("Happy ", tenure, "-year work anniversary, ", name, "!"));
  } else {
    celebration.set_points(settings.birthday_points());
    celebration.set_message(absl::StrCat("Happy birthday, ", name, "!"));
  }
  if (celebration.points() > 0) {
    celebration.set_transfer_id(TransferIdFor(celebration.celebration_id()));
  }
  common::v1::Date* day = celebration.mutable_day();
  day->set_year(static_cast<int32_t>(occurrence.day.year()));
  day->set_month(occurrence.day.month());
  day->set_day(occurrence.day.day());
  *celebration.mutable_celebrate_time() = google::protobuf::util::TimeUtil::SecondsToTimestamp(
      absl::ToUnixSeconds(occurrence.time));
  return celebration;
}

}  // namespace programs::celebrations
