// Insights (issue 16), pure domain: key names, the plan of a batch of kudos
// events (summed increments for insights_apply.lua) and the figures of a
// scope computed from per-person counters. No Redis, no gRPC.
//
// Counters are per window (day, week, month, quarter, year) and period, in
// the org's time zone; see services/leaderboard/README.md "Insights".
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/calendar/calendar.h"
#include "kudos/v1/kudos.pb.h"
#include "leaderboard/v1/leaderboard.pb.h"

namespace leaderboard::insights {

// The consumer group of the insights on kudos:{org}:events.
inline constexpr char kGroup[] = "insights";

// The windows insights keep counters for (not WINDOW_ALL_TIME: unbounded).
const std::vector<v1::Window>& Windows();
bool SupportedWindow(v1::Window window);
absl::string_view WindowKeyName(v1::Window window);  // "day", "week", ...
common::calendar::PeriodUnit Unit(v1::Window window);

// Keys (all in the org's slot, outside lb:{org}:* so that RebuildProjections,
// which drops and replaces lb:{org}:*, leaves them alone).
std::string HwmKey(absl::string_view org);       // HASH "k" -> last applied entry id
std::string SettingsKey(absl::string_view org);  // STRING: serialized OrgSettings as last seen
std::string LastKey(absl::string_view org);      // HASH person -> ms of last kudos received
// HASH person id -> small integer, "=<value id>" -> small integer, "#" ->
// the last integer handed out: the period keys name people and values by
// these integers (a few bytes a field).
std::string IdsKey(absl::string_view org);
inline constexpr char kLastIdField[] = "#";
std::string ValueName(absl::string_view value);  // "=<value>": its name in the ids hash
// ZSET kudos id -> unix seconds: the retractions applied (issue 18), each
// kept until the last period it took counts from expires (the guard against
// the kudos service appending the same KudosRetracted twice).
std::string RetractedKey(absl::string_view org);

// Windows whose counters are written (day, week, month); quarter and year
// are the sums of their months, read from the month keys.
bool Written(v1::Window window);
// The written periods a period is read from: itself, or its months (keys
// "2026-10" ..., at most 12). Empty for a malformed key.
std::vector<std::string> SourcePeriods(v1::Window window, absl::string_view period);
v1::Window SourceWindow(v1::Window window);  // the window of SourcePeriods
// "ins:{org}:<window>:<period>:"; the period's keys are this plus
//   u<n> HASH people counters of the people with ids n*8 .. n*8+7
//   q<n> HASH pair counters of the givers with ids n*8 .. n*8+7
//   c    SET "<a>|<b>" (ids, a < b): pairs with >= 3 kudos each way
//   m    HASH "n" pairs kept, "d" kudos left out past the pair cap
// Buckets of 8 people keep each hash within Redis's listpack thresholds
// (hash-max-listpack-entries 128) for the usual counts.
std::string PeriodPrefix(absl::string_view org, v1::Window window, absl::string_view period);
inline constexpr int64_t kPeoplePerBucket = 8;
inline constexpr int64_t kGiversPerBucket = 8;
std::string PeopleKey(absl::string_view prefix, int64_t person);
std::string PairsKey(absl::string_view prefix, int64_t giver);
std::string RecipKey(absl::string_view prefix);
std::string MetaKey(absl::string_view prefix);

// Fields of a people hash: "<id><counter>".
inline constexpr char kGiven[] = "g";      // kudos given (per recipient)
inline constexpr char kReceived[] = "r";   // kudos received (per recipient)
inline constexpr char kPoints[] = "p";     // points received (kudos and boosts)
inline constexpr char kCross[] = "x";      // kudos received from another team's giver
inline constexpr char kUniqueGivers[] = "u";
std::string PersonField(int64_t person, absl::string_view counter);
std::string ValueField(int64_t person, int64_t value);  // "<p>v<value>"
std::string PairField(int64_t giver, int64_t recipient);  // "<g>><r>"
// Parses a pair field; false when malformed.
bool ParsePairField(absl::string_view field, int64_t* giver, int64_t* recipient);

// The org's RetentionPolicy.kudos_live_days when it is 0 (docs/retention.md).
inline constexpr int kDefaultKudosLiveDays = 400;

// When a period's counters expire, with the org's retention (issue 15): the
// period's end plus, for a day, 90 days and for a week 366 days, at most
// `kudos_live_days` either way; a month `kudos_live_days` (at most 1096)
// after the end of its year, so that a year (and each quarter), summed
// from its months, reads whole for that long after it ends (the previous
// year of a trend is whole all through the current one), and then goes
// with the kudos it counted, which have left for the archive by then.
// `kudos_live_days` <= 0 = the default.
absl::Time Expiry(v1::Window window, const common::calendar::Period& period,
                  const absl::TimeZone& zone, int kudos_live_days);

// (prefix, person, counter, value) -> increment; value only for "v"
using IncrOps = std::map<std::tuple<std::string, std::string, std::string, std::string>, int64_t>;
// (prefix, giver, recipient) -> kudos
using PairOps = std::map<std::tuple<std::string, std::string, std::string>, int64_t>;

// What one KudosRetracted takes back (negative amounts), applied by the
// script only if its guard (RetractedKey) does not hold the kudos yet.
struct RetractionOps {
  std::string kudos_id;
  int64_t guard_until = 0;  // unix seconds: the last expiry of its periods
  IncrOps incr;
  PairOps pairs;
};

// The summed effect of a run of entries, by names (people and values);
// Args() turns it into KEYS and ARGV once the names have ids.
struct BatchOps {
  // period prefix -> unix seconds of its expiry
  std::map<std::string, int64_t> periods;
  IncrOps incr;
  PairOps pairs;
  // In stream order; applied after the increments (a kudos and its
  // retraction in one batch: the retraction finds what it takes back).
  std::vector<RetractionOps> retractions;
  // person -> latest ms received
  std::map<std::string, int64_t> last;
  // The last OrgSettingsChanged of the run, serialized.
  std::optional<std::string> settings;
  bool empty() const {
    return incr.empty() && pairs.empty() && last.empty() && retractions.empty() &&
           !settings.has_value();
  }
};

// KEYS after the fixed five and ARGV after the entry ids of
// insights_apply.lua (see the script).
struct ApplyArgs {
  std::vector<std::string> keys;
  std::vector<std::string> args;
};

// Plans entries in stream order with the org's settings as of each entry
// (an OrgSettingsChanged changes the calendar and the retention of the
// entries after it). PRIVATE kudos, their boosts and their retractions
// plan nothing: insights never show them (README "Insights", privacy).
class Planner {
 public:
  Planner(std::string org, kudos::v1::OrgSettings settings);
  // `now`: periods whose keys would already have expired are skipped.
  Planner(std::string org, kudos::v1::OrgSettings settings, absl::Time now);
  // Unparsable payloads and other kinds of events plan nothing.
  void Add(const std::string& payload);
  const BatchOps& ops() const { return ops_; }
  // Every name the plan needs an id for: people, and values as ValueName.
  std::vector<std::string> Names() const;
  // `ids` holds an id for every name of Names().
  ApplyArgs Args(const std::map<std::string, int64_t>& ids) const;

 private:
  // One recipient's kudos (or boost: no giver) in one window, `sign` +1
  // or -1 (a retraction), into `incr`/`pairs`. Returns the period's expiry
  // (unix seconds), 0 when the period is past it (nothing planned).
  int64_t Count(v1::Window window, absl::Time t, const std::string& giver,
                const std::string& giver_team, const std::string& recipient,
                const std::string& recipient_team, int64_t points,
                const std::vector<std::string>& values, int64_t sign, IncrOps& incr,
                PairOps& pairs);
  void UseSettings(kudos::v1::OrgSettings settings);
  void AddSent(const kudos::v1::KudosEvent& event);
  void AddBoosted(const kudos::v1::KudosEvent& event);
  void AddRetracted(const kudos::v1::KudosEvent& event);
  std::string org_;
  kudos::v1::OrgSettings settings_;
  absl::TimeZone zone_;
  int week_start_ = 1;
  int kudos_live_days_ = kDefaultKudosLiveDays;
  int64_t now_ = 0;  // unix seconds: periods already expired are skipped
  BatchOps ops_;
};

// ----------------------------------------------------------------- reads

struct PersonCounters {
  int64_t given = 0;
  int64_t received = 0;
  int64_t points = 0;
  int64_t cross = 0;
  int64_t unique_givers = 0;
  std::map<std::string, int64_t> values;  // value id -> kudos received carrying it
};

struct PairCounts {
  std::string a, b;  // a < b
  int64_t a_to_b = 0, b_to_a = 0, a_given = 0, b_given = 0;
};

// The reciprocity rule: each sent the other at least 3 kudos, and the other
// got at least 80% of the kudos each gave.
inline constexpr int64_t kReciprocityMinEachWay = 3;
inline constexpr int64_t kReciprocityMinSharePercent = 80;
bool Reciprocal(const PairCounts& pair);
inline constexpr int kMaxReciprocityFlags = 100;

// Gini of `values` (zeros included); 0 when empty or all zero.
double Gini(std::vector<int64_t> values);
// Share (0..100) of the total held by the ceil(10%) largest values.
double Top10Percent(std::vector<int64_t> values);
double Median(std::vector<int64_t> values);

// The figures of a scope: `members` (active people of the scope), their
// counters (absent = zeros), the catalog (id, display name), the pairs the
// candidate set held (any pair, filtered here: one side in the scope).
void ComputeFigures(const std::vector<std::string>& members,
                    const std::map<std::string, PersonCounters>& counters,
                    const std::vector<std::pair<std::string, std::string>>& catalog,
                    const std::vector<PairCounts>& pairs, v1::InsightFigures* out);
void ComputeTrend(const v1::InsightFigures& current, const v1::InsightFigures& previous,
                  v1::InsightTrend* out);

// ListUnrecognized page tokens: the position (ms, -1 = never; person id)
// of the last person served, bound to the team and days asked.
struct UnrecognizedToken {
  std::string team_id;
  int32_t days = 0;
  int64_t last_ms = -1;
  std::string person_id;
};
std::string EncodeUnrecognizedToken(const UnrecognizedToken& token);
absl::StatusOr<UnrecognizedToken> DecodeUnrecognizedToken(absl::string_view token);

}  // namespace leaderboard::insights
