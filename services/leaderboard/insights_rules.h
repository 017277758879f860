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
// ins:{org}:<window>:<period>:people|pairs|recip|meta
std::string PeriodKey(absl::string_view org, v1::Window window, absl::string_view period,
                      absl::string_view kind);

// Fields of the people hash: "<person>|<counter>".
inline constexpr char kGiven[] = "g";      // kudos given (per recipient)
inline constexpr char kReceived[] = "r";   // kudos received (per recipient)
inline constexpr char kPoints[] = "p";     // points received (kudos and boosts)
inline constexpr char kCross[] = "x";      // kudos received from another team's giver
inline constexpr char kUniqueGivers[] = "ug";
std::string PersonField(absl::string_view person, absl::string_view counter);
std::string ValueField(absl::string_view person, absl::string_view value);  // "<p>|v|<value>"
std::string PairField(absl::string_view giver, absl::string_view recipient);  // "<g>><r>"

// When a period's counters expire: the period's end plus day 90 days, week
// 366 days, month, quarter and year 3 years (1096 days).
absl::Time Expiry(v1::Window window, const common::calendar::Period& period);

// The summed effect of a run of entries.
struct BatchOps {
  std::vector<std::string> keys;  // period keys, in first-use order
  std::map<std::string, int> key_index;
  // (key, field) -> increment
  std::map<std::pair<int, std::string>, int64_t> incr;
  // (people key, pairs key, recip key, meta key, giver, recipient) -> kudos
  std::map<std::tuple<int, int, int, int, std::string, std::string>, int64_t> pairs;
  // person -> latest ms received
  std::map<std::string, int64_t> last;
  // key -> unix seconds
  std::map<int, int64_t> expire;
  // The last OrgSettingsChanged of the run, serialized.
  std::optional<std::string> settings;
  int Key(const std::string& key);
  bool empty() const {
    return incr.empty() && pairs.empty() && last.empty() && !settings.has_value();
  }
};

// Plans entries in stream order with the org's settings as of each entry
// (an OrgSettingsChanged changes the calendar of the entries after it).
class Planner {
 public:
  Planner(std::string org, kudos::v1::OrgSettings settings);
  // Unparsable payloads and other kinds of events plan nothing.
  void Add(const std::string& payload);
  const BatchOps& ops() const { return ops_; }
  // ARGV of insights_apply.lua after the entry ids (see the script).
  std::vector<std::string> Args() const;

 private:
  void Count(v1::Window window, absl::Time t, const std::string& giver,
             const std::string& giver_team, const std::string& recipient,
             const std::string& recipient_team, int64_t points,
             const std::vector<std::string>& values);
  std::string org_;
  kudos::v1::OrgSettings settings_;
  absl::TimeZone zone_;
  int week_start_ = 1;
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
