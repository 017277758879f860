#include "services/leaderboard/insights_rules.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth/ids.h"
#include "common/check/check.h"
#include "services/leaderboard/leaderboard_rules.h"

namespace leaderboard::insights {

namespace {

absl::Time TimeOf(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

double Percent(int64_t part, int64_t whole) {
  return whole <= 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace

const std::vector<v1::Window>& Windows() {
  static const std::vector<v1::Window> windows = {v1::WINDOW_DAY, v1::WINDOW_WEEK,
                                                  v1::WINDOW_MONTH, v1::WINDOW_QUARTER,
                                                  v1::WINDOW_YEAR};
  return windows;
}

bool SupportedWindow(v1::Window window) {
  const std::vector<v1::Window>& all = Windows();
  return std::find(all.begin(), all.end(), window) != all.end();
}

absl::string_view WindowKeyName(v1::Window window) {
  switch (window) {
    case v1::WINDOW_DAY: return "day";
    case v1::WINDOW_WEEK: return "week";
    case v1::WINDOW_MONTH: return "month";
    case v1::WINDOW_QUARTER: return "quarter";
    case v1::WINDOW_YEAR: return "year";
    default: return "all";
  }
}

common::calendar::PeriodUnit Unit(v1::Window window) {
  using common::calendar::PeriodUnit;
  switch (window) {
    case v1::WINDOW_DAY: return PeriodUnit::kDay;
    case v1::WINDOW_WEEK: return PeriodUnit::kWeek;
    case v1::WINDOW_MONTH: return PeriodUnit::kMonth;
    case v1::WINDOW_QUARTER: return PeriodUnit::kQuarter;
    case v1::WINDOW_YEAR: return PeriodUnit::kYear;
    default: return PeriodUnit::kAllTime;
  }
}

std::string HwmKey(absl::string_view org) { return absl::StrCat("ins:{", org, "}:hwm"); }
std::string SettingsKey(absl::string_view org) {
  return absl::StrCat("ins:{", org, "}:settings");
}
std::string LastKey(absl::string_view org) { return absl::StrCat("ins:{", org, "}:last"); }
std::string IdsKey(absl::string_view org) { return absl::StrCat("ins:{", org, "}:ids"); }
std::string ValueName(absl::string_view value) { return absl::StrCat("=", value); }
std::string RetractedKey(absl::string_view org) {
  return absl::StrCat("ins:{", org, "}:retracted");
}

bool Written(v1::Window window) {
  return window == v1::WINDOW_DAY || window == v1::WINDOW_WEEK || window == v1::WINDOW_MONTH;
}

v1::Window SourceWindow(v1::Window window) {
  return Written(window) ? window : v1::WINDOW_MONTH;
}

std::vector<std::string> SourcePeriods(v1::Window window, absl::string_view period) {
  if (Written(window)) return {std::string(period)};
  // Quarters and years are whole months in any zone: the calendar's civil
  // days are all that is used here.
  absl::StatusOr<common::calendar::Period> parsed =
      common::calendar::ParsePeriod(Unit(window), period, absl::UTCTimeZone(), 1);
  std::vector<std::string> months;
  if (!parsed.ok()) return months;
  absl::CivilDay day = parsed->first_day;
  for (int i = 0; i < 12 && day < parsed->end_day; ++i) {
    common::calendar::Period month = common::calendar::PeriodOfDay(
        common::calendar::PeriodUnit::kMonth, day, absl::UTCTimeZone(), 1);
    months.push_back(month.key);
    day = month.end_day;
  }
  return months;
}

std::string PeriodPrefix(absl::string_view org, v1::Window window, absl::string_view period) {
  return absl::StrCat("ins:{", org, "}:", WindowKeyName(window), ":", period, ":");
}
std::string PeopleKey(absl::string_view prefix, int64_t person) {
  return absl::StrCat(prefix, "u", person / kPeoplePerBucket);
}
std::string PairsKey(absl::string_view prefix, int64_t giver) {
  return absl::StrCat(prefix, "q", giver / kGiversPerBucket);
}
std::string RecipKey(absl::string_view prefix) { return absl::StrCat(prefix, "c"); }
std::string MetaKey(absl::string_view prefix) { return absl::StrCat(prefix, "m"); }

std::string PersonField(int64_t person, absl::string_view counter) {
  return absl::StrCat(person, counter);
}
std::string ValueField(int64_t person, int64_t value) { return absl::StrCat(person, "v", value); }
std::string PairField(int64_t giver, int64_t recipient) {
  return absl::StrCat(giver, ">", recipient);
}

bool ParsePairField(absl::string_view field, int64_t* giver, int64_t* recipient) {
  size_t at = field.find('>');
  return at != absl::string_view::npos && absl::SimpleAtoi(field.substr(0, at), giver) &&
         absl::SimpleAtoi(field.substr(at + 1), recipient);
}

absl::Time Expiry(v1::Window window, const common::calendar::Period& period,
                  const absl::TimeZone& zone, int kudos_live_days) {
  int64_t live_days = kudos_live_days > 0 ? kudos_live_days : kDefaultKudosLiveDays;
  auto days = [&](int64_t cap) { return absl::Hours(24 * std::min(cap, live_days)); };
  if (window == v1::WINDOW_DAY) return period.end + days(90);
  if (window == v1::WINDOW_WEEK) return period.end + days(366);
  common::calendar::Period year = common::calendar::PeriodOfDay(
      common::calendar::PeriodUnit::kYear, period.first_day, zone, 1);
  return year.end + days(1096);
}

namespace {

bool IsPrivate(kudos::v1::KudosVisibility visibility) {
  return visibility == kudos::v1::KUDOS_VISIBILITY_PRIVATE;
}

// The kudos' values as counted: valid ids, each once.
std::vector<std::string> CountedValues(const kudos::v1::Kudos& kudos) {
  std::vector<std::string> values;
  for (const std::string& value : kudos.values()) {
    if (common::auth::ValidId(value) &&
        std::find(values.begin(), values.end(), value) == values.end()) {
      values.push_back(value);
    }
  }
  return values;
}

// Recipients counted once each: valid ids, not the giver (a boost has no
// giver: every recipient).
std::vector<std::string> CountedRecipients(const google::protobuf::RepeatedPtrField<std::string>& ids,
                                           const std::string& giver) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& recipient : ids) {
    if (!common::auth::ValidId(recipient) || recipient == giver || !seen.insert(recipient).second) {
      continue;
    }
    out.push_back(recipient);
  }
  return out;
}

std::string TeamOf(const google::protobuf::Map<std::string, std::string>& teams,
                   const std::string& person) {
  auto team = teams.find(person);
  return team == teams.end() ? "" : team->second;
}

}  // namespace

Planner::Planner(std::string org, kudos::v1::OrgSettings settings)
    : Planner(std::move(org), std::move(settings), absl::Now()) {}

Planner::Planner(std::string org, kudos::v1::OrgSettings settings, absl::Time now)
    : org_(std::move(org)), now_(absl::ToUnixSeconds(now)) {
  UseSettings(std::move(settings));
}

void Planner::UseSettings(kudos::v1::OrgSettings settings) {
  settings_ = std::move(settings);
  OrgCalendar calendar = CalendarFromSettings(settings_);
  zone_ = calendar.zone;
  week_start_ = calendar.week_start;
  kudos_live_days_ = settings_.retention().kudos_live_days();
}

int64_t Planner::Count(v1::Window window, absl::Time t, const std::string& giver,
                       const std::string& giver_team, const std::string& recipient,
                       const std::string& recipient_team, int64_t points,
                       const std::vector<std::string>& values, int64_t sign, IncrOps& incr,
                       PairOps& pairs) {
  common::calendar::Period period = common::calendar::PeriodAt(Unit(window), t, zone_, week_start_);
  int64_t expire_at = absl::ToUnixSeconds(Expiry(window, period, zone_, kudos_live_days_));
  // A period past its retention (a replay of old history): its keys would
  // expire as they are written (or are gone: nothing to take back).
  if (expire_at <= now_) return 0;
  std::string prefix = PeriodPrefix(org_, window, period.key);
  ops_.periods[prefix] = expire_at;
  if (points != 0) incr[{prefix, recipient, kPoints, ""}] += sign * points;
  if (giver.empty()) return expire_at;  // a boost: points only
  incr[{prefix, giver, kGiven, ""}] += sign;
  incr[{prefix, recipient, kReceived, ""}] += sign;
  if (!giver_team.empty() && !recipient_team.empty() && giver_team != recipient_team) {
    incr[{prefix, recipient, kCross, ""}] += sign;
  }
  for (const std::string& value : values) incr[{prefix, recipient, "v", value}] += sign;
  pairs[{prefix, giver, recipient}] += sign;
  return expire_at;
}

void Planner::Add(const std::string& payload) {
  kudos::v1::KudosEvent event;
  if (payload.empty() || !event.ParseFromString(payload)) return;
  if (event.has_org_settings_changed()) {
    UseSettings(event.org_settings_changed().settings());
    ops_.settings = settings_.SerializeAsString();
    return;
  }
  if (event.has_kudos_sent()) AddSent(event);
  if (event.has_kudos_boosted()) AddBoosted(event);
  if (event.has_kudos_retracted()) AddRetracted(event);
}

void Planner::AddSent(const kudos::v1::KudosEvent& event) {
  const kudos::v1::KudosSent& sent = event.kudos_sent();
  const kudos::v1::Kudos& kudos = sent.kudos();
  const std::string& giver = kudos.giver_id();
  if (!common::auth::ValidId(giver) || IsPrivate(kudos.visibility())) return;
  absl::Time t = kudos.has_create_time() ? TimeOf(kudos.create_time()) : TimeOf(event.event_time());
  std::vector<std::string> values = CountedValues(kudos);
  for (const std::string& recipient : CountedRecipients(kudos.recipient_ids(), giver)) {
    std::string recipient_team = TeamOf(sent.recipient_team_ids(), recipient);
    for (v1::Window window : Windows()) {
      if (!Written(window)) continue;
      Count(window, t, giver, sent.giver_team_id(), recipient, recipient_team,
            kudos.points_per_recipient(), values, 1, ops_.incr, ops_.pairs);
    }
    int64_t ms = absl::ToUnixMillis(t);
    auto [it, inserted] = ops_.last.emplace(recipient, ms);
    if (!inserted) it->second = std::max(it->second, ms);
  }
}

void Planner::AddBoosted(const kudos::v1::KudosEvent& event) {
  const kudos::v1::KudosBoosted& boosted = event.kudos_boosted();
  int64_t points = boosted.boost().points_per_recipient();
  if (points == 0 || IsPrivate(boosted.visibility())) return;
  absl::Time t = boosted.boost().has_create_time() ? TimeOf(boosted.boost().create_time())
                                                   : TimeOf(event.event_time());
  for (const std::string& recipient : CountedRecipients(boosted.recipient_ids(), "")) {
    for (v1::Window window : Windows()) {
      if (Written(window)) Count(window, t, "", "", recipient, "", points, {}, 1, ops_.incr, ops_.pairs);
    }
  }
}

// Takes back what the kudos' KudosSent and each of its boosts (the event
// carries them) added, in their own periods. The last-recognized times are
// not taken back (a max cannot be undone; README "Insights", Limits).
void Planner::AddRetracted(const kudos::v1::KudosEvent& event) {
  const kudos::v1::KudosRetracted& retracted = event.kudos_retracted();
  const kudos::v1::Kudos& kudos = retracted.kudos();
  const std::string& giver = kudos.giver_id();
  if (!common::auth::ValidId(giver) || kudos.kudos_id().empty() || IsPrivate(kudos.visibility())) {
    return;
  }
  RetractionOps ops;
  ops.kudos_id = kudos.kudos_id();
  absl::Time t = kudos.has_create_time() ? TimeOf(kudos.create_time()) : TimeOf(event.event_time());
  std::vector<std::string> values = CountedValues(kudos);
  for (const std::string& recipient : CountedRecipients(kudos.recipient_ids(), giver)) {
    std::string recipient_team = TeamOf(retracted.recipient_team_ids(), recipient);
    for (v1::Window window : Windows()) {
      if (!Written(window)) continue;
      int64_t expire_at = Count(window, t, giver, retracted.giver_team_id(), recipient,
                                recipient_team, kudos.points_per_recipient(), values, -1,
                                ops.incr, ops.pairs);
      ops.guard_until = std::max(ops.guard_until, expire_at);
    }
  }
  for (const kudos::v1::Boost& boost : kudos.boosts()) {
    if (boost.points_per_recipient() == 0) continue;
    absl::Time at = boost.has_create_time() ? TimeOf(boost.create_time()) : t;
    for (const std::string& recipient : CountedRecipients(kudos.recipient_ids(), "")) {
      for (v1::Window window : Windows()) {
        if (!Written(window)) continue;
        int64_t expire_at = Count(window, at, "", "", recipient, "", boost.points_per_recipient(),
                                  {}, -1, ops.incr, ops.pairs);
        ops.guard_until = std::max(ops.guard_until, expire_at);
      }
    }
  }
  // Every period it counted in has expired: nothing left to take back.
  if (ops.guard_until == 0) return;
  ops_.retractions.push_back(std::move(ops));
}

std::vector<std::string> Planner::Names() const {
  std::set<std::string> names;
  for (const auto& [key, amount] : ops_.incr) {
    const auto& [prefix, person, counter, value] = key;
    names.insert(person);
    if (!value.empty()) names.insert(ValueName(value));
  }
  for (const auto& [key, amount] : ops_.pairs) {
    names.insert(std::get<1>(key));
    names.insert(std::get<2>(key));
  }
  for (const RetractionOps& retraction : ops_.retractions) {
    for (const auto& [key, amount] : retraction.incr) {
      names.insert(std::get<1>(key));
      if (!std::get<3>(key).empty()) names.insert(ValueName(std::get<3>(key)));
    }
    for (const auto& [key, amount] : retraction.pairs) {
      names.insert(std::get<1>(key));
      names.insert(std::get<2>(key));
    }
  }
  return {names.begin(), names.end()};
}

namespace {

// KEYS[1..5] of the script are the mark, the stream, the last-recognized
// hash, the settings and the retraction guard; period keys follow, each
// named once.
class KeyIndex {
 public:
  explicit KeyIndex(std::vector<std::string>* keys) : keys_(keys) {}
  int Of(const std::string& key) {
    auto [it, inserted] = index_.emplace(key, static_cast<int>(keys_->size()) + 6);
    if (inserted) keys_->push_back(key);
    return it->second;
  }

 private:
  std::vector<std::string>* keys_;
  std::map<std::string, int> index_;
};

int64_t IdOf(const std::map<std::string, int64_t>& ids, const std::string& name) {
  auto it = ids.find(name);
  KUDOS_CHECK(it != ids.end(), "insights: every name of a plan has an id before its apply");
  return it->second;
}

// Writes the counted sections of the script's ARGV ("m, (key, field,
// amount) * m" then "p, (pair tuple) * p") for `incr` and `pairs`;
// `key(name, prefix)` gives a key's KEYS index (and records its expiry when
// the keys may be created).
template <typename KeyFn>
void CountArgs(const IncrOps& incr, const PairOps& pairs, const std::map<std::string, int64_t>& ids,
               KeyIndex& keys, KeyFn key, std::vector<std::string>& args) {
  size_t m_at = args.size();
  args.push_back("");
  int64_t m = 0;
  for (const auto& [k, amount] : incr) {
    if (amount == 0) continue;  // a kudos and its retraction in one batch
    const auto& [prefix, person, counter, value] = k;
    int64_t id = IdOf(ids, person);
    args.push_back(key(PeopleKey(prefix, id), prefix));
    args.push_back(value.empty() ? PersonField(id, counter)
                                 : ValueField(id, IdOf(ids, ValueName(value))));
    args.push_back(absl::StrCat(amount));
    ++m;
  }
  args[m_at] = absl::StrCat(m);
  size_t p_at = args.size();
  args.push_back("");
  int64_t p = 0;
  for (const auto& [k, amount] : pairs) {
    if (amount == 0) continue;
    const auto& [prefix, giver, recipient] = k;
    int64_t g = IdOf(ids, giver), r = IdOf(ids, recipient);
    args.push_back(key(PeopleKey(prefix, r), prefix));
    args.push_back(key(PairsKey(prefix, g), prefix));
    // The recipient's pair bucket is only read (the way back): no expiry.
    args.push_back(absl::StrCat(keys.Of(PairsKey(prefix, r))));
    args.push_back(key(RecipKey(prefix), prefix));
    args.push_back(key(MetaKey(prefix), prefix));
    args.push_back(absl::StrCat(g));
    args.push_back(absl::StrCat(r));
    args.push_back(absl::StrCat(amount));
    ++p;
  }
  args[p_at] = absl::StrCat(p);
}

}  // namespace

ApplyArgs Planner::Args(const std::map<std::string, int64_t>& ids) const {
  ApplyArgs out;
  KeyIndex keys(&out.keys);
  std::map<int, int64_t> expire;  // key index -> unix seconds
  auto created = [&](const std::string& name, const std::string& prefix) {
    int index = keys.Of(name);
    expire[index] = ops_.periods.at(prefix);
    return absl::StrCat(index);
  };
  // A retraction only takes away: a key it would create holds nothing.
  auto existing = [&](const std::string& name, const std::string&) {
    return absl::StrCat(keys.Of(name));
  };
  std::vector<std::string>& args = out.args;
  CountArgs(ops_.incr, ops_.pairs, ids, keys, created, args);
  args.push_back(absl::StrCat(now_));
  args.push_back(absl::StrCat(ops_.retractions.size()));
  for (const RetractionOps& retraction : ops_.retractions) {
    args.push_back(retraction.kudos_id);
    args.push_back(absl::StrCat(retraction.guard_until));
    CountArgs(retraction.incr, retraction.pairs, ids, keys, existing, args);
  }
  args.push_back(absl::StrCat(ops_.last.size()));
  for (const auto& [person, ms] : ops_.last) {
    args.push_back(person);
    args.push_back(absl::StrCat(ms));
  }
  args.push_back(absl::StrCat(expire.size()));
  for (const auto& [index, at] : expire) {
    args.push_back(absl::StrCat(index));
    args.push_back(absl::StrCat(at));
  }
  args.push_back(ops_.settings ? "1" : "0");
  args.push_back(ops_.settings ? *ops_.settings : "");
  return out;
}

// ----------------------------------------------------------------- reads

bool Reciprocal(const PairCounts& pair) {
  return pair.a_to_b >= kReciprocityMinEachWay && pair.b_to_a >= kReciprocityMinEachWay &&
         pair.a_to_b * 100 >= kReciprocityMinSharePercent * pair.a_given &&
         pair.b_to_a * 100 >= kReciprocityMinSharePercent * pair.b_given;
}

double Gini(std::vector<int64_t> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  long double total = 0, weighted = 0;
  size_t n = values.size();
  for (size_t i = 0; i < n; ++i) {
    total += static_cast<long double>(values[i]);
    weighted += static_cast<long double>(i + 1) * static_cast<long double>(values[i]);
  }
  if (total <= 0) return 0;
  long double g = 2 * weighted / (static_cast<long double>(n) * total) -
                  static_cast<long double>(n + 1) / static_cast<long double>(n);
  return static_cast<double>(g);
}

double Top10Percent(std::vector<int64_t> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end(), std::greater<int64_t>());
  size_t k = (values.size() + 9) / 10;
  int64_t total = 0, top = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    total += values[i];
    if (i < k) top += values[i];
  }
  return Percent(top, total);
}

double Median(std::vector<int64_t> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  if (n % 2 == 1) return static_cast<double>(values[n / 2]);
  return (static_cast<double>(values[n / 2 - 1]) + static_cast<double>(values[n / 2])) / 2.0;
}

void ComputeFigures(const std::vector<std::string>& members,
                    const std::map<std::string, PersonCounters>& counters,
                    const std::vector<std::pair<std::string, std::string>>& catalog,
                    const std::vector<PairCounts>& pairs, v1::InsightFigures* out) {
  static const PersonCounters kZero;
  int64_t n = static_cast<int64_t>(members.size());
  int64_t giving = 0, receiving = 0, kudos = 0, points = 0, cross = 0;
  std::vector<int64_t> points_each, unique_each;
  std::map<std::string, int64_t> value_counts;
  std::vector<int64_t> histogram(6, 0);
  std::set<std::string> scope(members.begin(), members.end());
  for (const std::string& id : members) {
    auto it = counters.find(id);
    const PersonCounters& c = it == counters.end() ? kZero : it->second;
    if (c.given > 0) ++giving;
    if (c.received > 0) ++receiving;
    kudos += c.received;
    points += c.points;
    cross += c.cross;
    points_each.push_back(c.points);
    unique_each.push_back(c.unique_givers);
    histogram[static_cast<size_t>(std::min<int64_t>(5, std::max<int64_t>(0, c.unique_givers)))]++;
    for (const auto& [value, count] : c.values) value_counts[value] += count;
  }
  out->set_member_count(n);
  out->set_giving_count(giving);
  out->set_receiving_count(receiving);
  out->set_participation_percent(Percent(giving, n));
  out->set_reach_percent(Percent(receiving, n));
  out->set_kudos_received(kudos);
  out->set_points_received(points);
  out->set_points_gini(Gini(points_each));
  out->set_top10_points_percent(Top10Percent(points_each));
  out->set_cross_team_kudos(cross);
  out->set_cross_team_percent(Percent(cross, kudos));
  int64_t unique_total = 0;
  for (int64_t u : unique_each) unique_total += u;
  out->set_unique_givers_mean(n == 0 ? 0 : static_cast<double>(unique_total) / static_cast<double>(n));
  out->set_unique_givers_median(Median(unique_each));
  for (int64_t h : histogram) out->add_unique_givers_histogram(h);
  int64_t used = 0;
  for (const auto& [id, name] : catalog) {
    v1::ValueUse* use = out->add_values();
    use->set_value_id(id);
    use->set_display_name(name);
    auto it = value_counts.find(id);
    int64_t count = it == value_counts.end() ? 0 : it->second;
    use->set_kudos_count(count);
    if (count > 0) ++used;
  }
  out->set_values_used(used);
  out->set_values_in_catalog(static_cast<int64_t>(catalog.size()));
  out->set_values_coverage_percent(Percent(used, static_cast<int64_t>(catalog.size())));
  std::vector<PairCounts> flagged;
  for (const PairCounts& pair : pairs) {
    if (!scope.count(pair.a) && !scope.count(pair.b)) continue;
    if (Reciprocal(pair)) flagged.push_back(pair);
  }
  std::sort(flagged.begin(), flagged.end(), [](const PairCounts& x, const PairCounts& y) {
    int64_t tx = x.a_to_b + x.b_to_a, ty = y.a_to_b + y.b_to_a;
    if (tx != ty) return tx > ty;
    return std::tie(x.a, x.b) < std::tie(y.a, y.b);
  });
  if (flagged.size() > static_cast<size_t>(kMaxReciprocityFlags)) {
    flagged.resize(kMaxReciprocityFlags);
  }
  for (const PairCounts& pair : flagged) {
    v1::ReciprocityFlag* flag = out->add_reciprocity_flags();
    flag->set_person_a(pair.a);
    flag->set_person_b(pair.b);
    flag->set_a_to_b(pair.a_to_b);
    flag->set_b_to_a(pair.b_to_a);
    flag->set_a_given(pair.a_given);
    flag->set_b_given(pair.b_given);
  }
}

void ComputeTrend(const v1::InsightFigures& current, const v1::InsightFigures& previous,
                  v1::InsightTrend* out) {
  out->set_participation_percent(current.participation_percent() -
                                 previous.participation_percent());
  out->set_reach_percent(current.reach_percent() - previous.reach_percent());
  out->set_points_gini(current.points_gini() - previous.points_gini());
  out->set_top10_points_percent(current.top10_points_percent() - previous.top10_points_percent());
  out->set_cross_team_percent(current.cross_team_percent() - previous.cross_team_percent());
  out->set_unique_givers_mean(current.unique_givers_mean() - previous.unique_givers_mean());
  out->set_values_coverage_percent(current.values_coverage_percent() -
                                   previous.values_coverage_percent());
  out->set_kudos_received(current.kudos_received() - previous.kudos_received());
  out->set_points_received(current.points_received() - previous.points_received());
}

std::string EncodeUnrecognizedToken(const UnrecognizedToken& token) {
  return absl::WebSafeBase64Escape(absl::StrCat("u1|", token.team_id, "|", token.days, "|",
                                                token.last_ms, "|", token.person_id));
}

absl::StatusOr<UnrecognizedToken> DecodeUnrecognizedToken(absl::string_view token) {
  auto bad = [] { return absl::InvalidArgumentError("page_token: malformed"); };
  if (token.size() > 512) return bad();
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return bad();
  std::vector<std::string> parts = absl::StrSplit(raw, '|');
  if (parts.size() != 5 || parts[0] != "u1") return bad();
  UnrecognizedToken out;
  out.team_id = parts[1];
  if (!absl::SimpleAtoi(parts[2], &out.days) || !absl::SimpleAtoi(parts[3], &out.last_ms)) {
    return bad();
  }
  out.person_id = parts[4];
  if (out.last_ms < -1 || !common::auth::ValidId(out.person_id) ||
      (!out.team_id.empty() && !common::auth::ValidId(out.team_id))) {
    return bad();
  }
  return out;
}

}  // namespace leaderboard::insights
