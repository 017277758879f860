// The leaderboard's domain, plain C++ (no gRPC, no Redis I/O): board keys,
// the org calendar, rank math, streaks on civil dates, badge rules, page
// tokens, and the translation of one stream event into an ApplyPlan (the
// list of Redis operations the apply script runs atomically).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/calendar/calendar.h"
#include "kudos/v1/kudos.pb.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "ledger/v1/ledger.pb.h"

namespace leaderboard {

// ---------------------------------------------------------------- keys

// The org's key prefix with its hash tag: "lb:{org}:".
std::string Prefix(absl::string_view org);
// HASH of the consumer's high-water marks: field "k" / "l" = the last
// applied entry id of the kudos / ledger stream (exactly once per entry).
std::string MarksKey(absl::string_view org);
// SET of applied entry and logical ids of older versions (replaced by the
// marks; read only while a stream has no mark yet, dropped by a rebuild).
std::string AppliedKey(absl::string_view org);
// ZSET of logical ids (kudos, transfers) the stream (`k` / `l`; `r` the
// retractions' long guard) applied, scored by the time of their entry (the
// ms of its stream id): a producer's duplicate append within
// OrgCalendar::guard_days of the first is counted once; older ids are
// removed from a bucket when a later guard touches it. Split into
// kGuardBuckets zsets by a hash of the id (`lb:{org}:seen:k:3f`), so that
// each stays a listpack (about 50 B per id instead of about 130 B in one
// large zset): 128 x 512 (zset-max-listpack-entries, scripts/
// redis-platform.conf) = 65,536 ids per stream within the window, while a
// catch-up batch's guards cost at most 3 commands per bucket (read, add,
// trim), 384 per stream, whatever its size.
inline constexpr int kGuardBuckets = 128;
std::string GuardKey(absl::string_view org, char stream, absl::string_view logical_id);
// The member a logical id ("kudos:<id>", "retracted:<id>", "transfer:<id>")
// is stored as in its bucket (issue 15, memory): a kind byte (\x01 kudos,
// \x02 retracted, \x03 transfer) and the kudos id packed into 12 bytes
// (common/ids/packed_id.h), then the rest of the id as it is (a transfer's
// ":<recipient>"): 13 B for a kudos instead of 31, about 26 B an entry
// less in the listpack. A logical id of another form is its own member; no
// logical id starts with those bytes. Versions before stored every logical
// id as its text: the apply script and ProjectionImage also look for that
// form (until it leaves the window), and GuardBucket stays the text's.
std::string GuardMember(absl::string_view logical_id);
// A guard's score (issue 15, memory): −(the unix seconds of the entry that
// applied the id), a listpack's 32-bit integer (5 bytes, until 2038) instead
// of the entry's unix ms (9 bytes), which guards written before still hold
// (scores >= 0). Either form is older than the window behind an entry when
// GuardSeconds(score) < the cut (GuardCutSeconds of the entry's ms minus the
// window): the scores in (−cut, cut × 1000), one ZREMRANGEBYSCORE
// (apply_event.lua) for both forms. With --lb_guard_scores_ms (a rolling
// upgrade's) GuardScore is the entry's ms, as before.
int64_t GuardScore(int64_t entry_ms);
int64_t GuardCutSeconds(int64_t oldest_ms);
int64_t GuardSeconds(double score);
// The bucket of a logical id: FNV-1a (32 bits) of its bytes, mod kGuardBuckets.
// Stored keys depend on it: never change it without moving the stored ids.
int GuardBucket(absl::string_view logical_id);
// The one zset per stream of versions before the buckets. While one exists
// the apply script refuses the org's batches (ABORTED, retried) and the
// consumer moves its ids into their buckets (Store::SplitLegacyGuards).
std::string LegacyGuardKey(absl::string_view org, char stream);
inline constexpr char kGuardStreams[] = {'k', 'l', 'r'};
// Held (value = owner token) while a rebuild runs; outside lb:{org}:* so the
// rebuild's drop keeps it. Every replica's apply script refuses to write
// while another owner holds it.
std::string RebuildLockKey(absl::string_view org);
std::string SettingsKey(absl::string_view org);       // STRING: serialized OrgSettings
std::string PeopleKey(absl::string_view org);         // HASH person id -> serialized Person
std::string TeamsKey(absl::string_view org);          // HASH team id -> serialized Team
std::string BadgesKey(absl::string_view org, absl::string_view person);  // HASH badge -> ms
std::string DaysKey(absl::string_view org, absl::string_view kind,
                    absl::string_view person);  // SET of DayMember; kind giving|receiving
std::string ValuesKey(absl::string_view org, absl::string_view person);  // SET of ValueMember
// A member of a person's values set (ValuesKey): a 48-bit hash of the value
// id in decimal (FNV-1a), which Redis keeps in an intset (~100 B for a key
// of 7 values; the value ids made it a hashtable, ~550 B). Only the
// all-values badge reads these sets: its "V" op lists each value as
// (ValueMember, the id), and either counts, so sets written before (ids)
// still count. Two of an org's values colliding in 48 bits (~n^2 / 2^49)
// would only let one stand for the other in that badge.
std::string ValueMember(absl::string_view value);
// SET of the people hidden from leaderboards (Person.hidden_from_leaderboards,
// issue 18): board reads leave them out for everyone but themselves.
std::string HiddenKey(absl::string_view org);
// The org of a key "<prefix>:{org}:..." (nullopt when it has no hash tag).
std::optional<std::string> OrgOfKey(absl::string_view key);
// Whether a board key names a SCOPE_TEAMS board (its members are teams).
bool BoardOfTeams(absl::string_view board_key);

// Input streams of an org.
std::string LedgerStream(absl::string_view org);  // ledger:{org}:outbox
std::string KudosStream(absl::string_view org);   // kudos:{org}:events

absl::string_view MetricName(leaderboard::v1::Metric metric);  // "points_received", ...
absl::string_view WindowName(leaderboard::v1::Window window);  // "day", ..., "all"
common::calendar::PeriodUnit WindowUnit(leaderboard::v1::Window window);
// "org", "team:<id>", "value:<id>", "teams".
std::string ScopeName(leaderboard::v1::Scope scope, absl::string_view scope_id);
// lb:{org}:<metric>:<window>:<period>:<scope>
std::string BoardKey(absl::string_view org, leaderboard::v1::Metric metric,
                     leaderboard::v1::Window window, absl::string_view period_key,
                     leaderboard::v1::Scope scope, absl::string_view scope_id);

// Ids that may appear in keys: 1..64 of [A-Za-z0-9._-].
bool ValidId(absl::string_view id);

// ---------------------------------------------------------------- derived boards
//
// Not every board is written (issue 15: board writes per kudos). The boards of
// SCOPE_ORG are materialized for every window (the ones screens watch, the
// badges read, the most read). The sub-scope boards (SCOPE_TEAM, SCOPE_VALUE,
// SCOPE_TEAMS) are materialized for day, week, month and year only; their
// quarter is the sum of its three months and their all-time board the sum of
// the years (the org's years with boards: YearsKey), computed on read
// (Store) from the same ZSETs, so every board reads exactly as if written.
bool BoardDerived(leaderboard::v1::Window window, leaderboard::v1::Scope scope);
// SET of the year period keys ("2026") the org has sub-scope boards of.
std::string YearsKey(absl::string_view org);

// A derived board named by its key: where its sources are.
struct DerivedBoard {
  std::string org;
  std::string metric;   // "points_received", ...
  std::string window;   // "quarter" | "all"
  std::string period;   // "2026-Q4" | "all"
  std::string scope;    // "team:<id>" | "value:<id>" | "teams"
  // quarter: its three month boards; all: empty (the years are in YearsKey).
  std::vector<std::string> sources;
  // The board of one year of the same metric and scope (window "all").
  std::string YearBoard(absl::string_view year) const;
};
// nullopt when `board_key` names a materialized board (or is malformed).
std::optional<DerivedBoard> ParseDerivedBoard(absl::string_view board_key);
// Where a derived board's union is cached (outside lb:{org}:*, so it is
// never part of the projection) and the version it was made at.
std::string DerivedCacheKey(absl::string_view board_key);
std::string DerivedVersionKey(absl::string_view board_key);
// INCRed by every rebuild swap: cached unions made before it are stale.
std::string DerivedGenerationKey(absl::string_view org);

// ---------------------------------------------------------------- calendar

// ---------------------------------------------------------------- seasons
//
// Issue 18: a season is a time-boxed board of chosen people or teams. Its
// definition lives outside the projection (lbseason:{org}:..., kept by a
// rebuild); its board is a projection (SeasonBoardKey), fed by the same
// plans as every board: an event of time t in [start, end) of a member adds
// to it.
struct SeasonDef {
  std::string id;
  absl::Time start, end;
  leaderboard::v1::Metric metric = leaderboard::v1::METRIC_POINTS_RECEIVED;
  bool teams = false;                   // teams ranked, else people
  std::set<std::string> members;        // empty: everyone (unless join_required)
  bool join_required = false;
  std::map<std::string, int64_t> joined_ms;  // person -> join time (unix ms)
  std::string expiry;                   // the board's EXPIREAT (unix seconds)
  // Whether `subject` (a person, or a team for team seasons) counts at `t`.
  bool Counts(const std::string& subject, absl::Time t) const;
};
struct SeasonSet {
  std::vector<SeasonDef> seasons;
};
// HASH season id -> serialized leaderboard.v1.Season (the definition).
std::string SeasonsKey(absl::string_view org);
// HASH person -> join time (unix ms) of a season with join_required.
std::string SeasonJoinsKey(absl::string_view org, absl::string_view season);
// STRING counter, INCRed by every definition or join change (the consumer
// reloads the org's seasons when it moved).
std::string SeasonsVersionKey(absl::string_view org);
// HASH of a season's close: "event" = its serialized PeriodClosed
// LeaderboardEvent (written once), "paid" = "1" once its prizes are posted.
std::string SeasonCloseKey(absl::string_view org, absl::string_view season);
// The season's board: lb:{org}:season:<id>:people | :teams (members are
// people or teams).
std::string SeasonBoardKey(absl::string_view org, absl::string_view season, bool teams);
// A season board is kept this long after the season's end (its definition too).
inline constexpr int kSeasonRetentionDays = 90;

// The org's settings as the leaderboard uses them (defaults filled in).
struct OrgCalendar {
  std::string zone_name = "UTC";
  absl::TimeZone zone = absl::UTCTimeZone();
  int week_start = 1;               // 1 = Monday .. 7 = Sunday
  std::set<int> work_days = {1, 2, 3, 4, 5};
  std::set<absl::CivilDay> holidays;
  int freezes_per_month = 0;
  std::vector<std::string> values;  // the catalog's value ids
  // How long a logical event id is remembered (the retention policy's
  // idempotency window: a producer's retries happen within it).
  int guard_days = 30;
  // The org's seasons (nullptr: none): the consumer's and the rebuild's
  // planners add their boards' increments.
  std::shared_ptr<const SeasonSet> seasons;
};

// The defaults when an org never published settings (mirrors the kudos
// service's defaults: UTC, Monday, Mon-Fri, the seven values, 2 freezes).
kudos::v1::OrgSettings DefaultSettings();
// The org's settings as stored at SettingsKey (nullptr: none yet, the
// defaults); INTERNAL when the stored bytes do not parse.
absl::StatusOr<kudos::v1::OrgSettings> ParseStoredSettings(absl::string_view org,
                                                          const std::string* stored);
OrgCalendar CalendarFromSettings(const kudos::v1::OrgSettings& settings);

// Retention of a board: the instant its key expires (period end + retention),
// or nullopt for boards kept forever (year, all time).
std::optional<absl::Time> BoardExpiry(leaderboard::v1::Window window,
                                      const common::calendar::Period& period);

struct ResolvedBoard {
  std::string key;
  common::calendar::Period period;
};

// Validates a Board and resolves its period ("" = the period containing now).
absl::StatusOr<ResolvedBoard> ResolveBoard(absl::string_view org, const leaderboard::v1::Board& board,
                                           const OrgCalendar& calendar, absl::Time now);

// NOT_FOUND naming the scope_id when a SCOPE_TEAM board names a team not in
// `teams` (the org's directory) or a SCOPE_VALUE board a value not in the
// org's catalog; OK for every other board. Callers check it where a board is
// empty (a board with entries names a team or value its events carried).
absl::Status CheckScopeKnown(const leaderboard::v1::Board& board, const OrgCalendar& calendar,
                             const std::set<std::string>& teams);

// A watch follows the current period (period empty, or its key) or the
// previous one (late events may still move it); older and future periods are
// INVALID_ARGUMENT (read them with GetLeaderboard). Bounds the distinct boards
// watchers can make the service keep fresh.
absl::Status CheckWatchablePeriod(const leaderboard::v1::Board& board, const OrgCalendar& calendar,
                                  absl::Time now);

// ---------------------------------------------------------------- ranks

struct RankedEntry {
  int64_t rank = 0;
  std::string subject_id;
  int64_t score = 0;
  bool operator==(const RankedEntry& o) const {
    return rank == o.rank && subject_id == o.subject_id && score == o.score;
  }
};

// Display order: score descending, ties by subject_id ascending (bytewise);
// rank = 1 + number of strictly greater scores (1, 2, 2, 4).
std::vector<RankedEntry> RankEntries(std::vector<std::pair<std::string, int64_t>> scores);

// Share of entries strictly below, 0..100.
double Percentile(int64_t strictly_below, int64_t total);

// ---------------------------------------------------------------- paging

// A keyset position: the boundary entry of a page and the direction to go.
struct PageToken {
  // 'f': entries after the boundary, 'F': from it (inclusive),
  // 'b': entries before the boundary, 'B': up to it (inclusive).
  char direction = 'f';
  int64_t score = 0;
  std::string subject_id;
  std::string period;        // the resolved period key the token belongs to
  std::string board_key;     // the full board key, checked on use
};
std::string EncodePageToken(const PageToken& token);
// INVALID_ARGUMENT "page_token: ..." when malformed.
absl::StatusOr<PageToken> DecodePageToken(absl::string_view text);

// ---------------------------------------------------------------- streaks

struct WorkCalendar {
  std::set<int> work_days = {1, 2, 3, 4, 5};
  std::set<absl::CivilDay> holidays;
  int freezes_per_month = 0;
  bool IsWorkDay(absl::CivilDay day) const;
};

struct StreakResult {
  int current = 0;
  int longest = 0;
  std::optional<absl::CivilDay> last_active;
  int freezes_used = 0;  // freezes spent in today's month by the current streak
};

// Counts work days with activity. Non-work days and holidays neither count
// nor break a streak; a missed work day breaks it unless a freeze of that
// calendar month is left (spent greedily, only while a streak is running);
// today, if it is a work day without activity yet, does not break it.
// Dates after `today` are ignored.
StreakResult ComputeStreak(const std::vector<absl::CivilDay>& active_days,
                           const WorkCalendar& calendar, absl::CivilDay today);

// A member of a person's active-days set (DaysKey): the day's number since
// 1970-01-01 in decimal, which Redis keeps in an intset (2-4 bytes a day,
// ~100 B for a key of a few days; the date text made the set a hashtable:
// 216 B for one day, 5,000 B for 100). Sets written before hold
// 'YYYY-MM-DD' members: ParseDay reads both forms.
std::string DayMember(absl::CivilDay day);
absl::StatusOr<absl::CivilDay> ParseDay(absl::string_view text);

// ---------------------------------------------------------------- badges

struct BadgeRule {
  const char* id;
  const char* display_name;
};
// Every badge the service knows, in display order.
const std::vector<BadgeRule>& BadgeRules();
const BadgeRule* FindBadge(absl::string_view id);
inline constexpr int kGivingStreakBadgeDays = 20;
inline constexpr char kGivingStreakBadge[] = "giving_streak_20";
// Whether giving on `active_days` makes a streak of kGivingStreakBadgeDays
// by `day` (the giving-streak badge, checked after each kudos given).
bool ReachesGivingStreakBadge(const std::vector<absl::CivilDay>& active_days,
                              const OrgCalendar& calendar, absl::CivilDay day);

// ---------------------------------------------------------------- events

// The Redis work for one stream entry. keys[0] is the org's marks hash,
// keys[1] the rebuild lock. args[0] is the entry's id with its stream
// ("k:<stream id>" / "l:<stream id>"), args[1] the rebuild token ("" for
// the live consumer); then operations, each naming its keys by index into
// `keys` (1-based). Store::ApplyAll (apply_batch.h) sends the plans of an
// org's batch as one call of apply_event.lua, its Z ops summed per (board,
// member); ProjectionImage applies them one by one with the same result.
//   G <logical id> <k zset> <window ms> guard: skip the next ops if the id was
//                                     applied from an entry at most window ms
//                                     older than this one ("" = none); ids
//                                     older than the window leave the zset
//   Z <k> <member> <incr> <expireat>  ZINCRBY, then EXPIREAT unless 0; a
//                                     member whose score is then 0 is removed
//   S <k> <member>                    SADD
//   R <k> <member>                    SREM
//   H <k> <field> <value>             HSET
//   N <k> <field> <value>             HSETNX
//   P <k> <value>                     SET
//   D <k>                             DEL
//   T <k badges> <badge> <ms> <k board> <member> <threshold>
//                                      HSETNX badge when ZSCORE >= threshold
//   V <k badges> <badge> <ms> <k set> <n> <m1 v1 .. mn/2 vn/2>
//                                      HSETNX badge when the set holds every value
//                                      (as its ValueMember m or its id v; n even)
struct ApplyPlan {
  std::vector<std::string> keys;
  std::vector<std::string> args;
  // Board keys changed (for watchers).
  std::vector<std::string> touched_boards;
  // Givers whose giving-streak badge to evaluate after applying: person,
  // local date of the event, event time.
  struct StreakCheck {
    std::string person;
    absl::CivilDay day;
    absl::Time time;
  };
  std::vector<StreakCheck> streak_checks;

  bool empty() const { return args.size() <= 2; }
  // 'k' or 'l' and the stream id of args[0]; false when malformed.
  bool EntryId(char* stream, std::string* id) const;
};

// The people the plan needs to know about (their time zones).
std::vector<std::string> PeopleOfEvent(const kudos::v1::KudosEvent& event);

// `person_zone` returns a person's IANA zone name ("" = the org's).
using ZoneLookup = std::function<std::string(const std::string& person)>;

// `list_touched` false: touched_boards stays empty (a rebuild notifies every
// watcher of the org at once and need not name, sort or copy the boards).
ApplyPlan PlanKudosEvent(absl::string_view org, absl::string_view dedupe_id,
                         const kudos::v1::KudosEvent& event, const OrgCalendar& calendar,
                         const ZoneLookup& person_zone, bool list_touched = true);
ApplyPlan PlanLedgerEvent(absl::string_view org, absl::string_view dedupe_id,
                          const ledger::v1::LedgerEvent& event, const OrgCalendar& calendar,
                          bool list_touched = true);

// What a ledger transfer moves on the points boards: a KUDOS or BOOST
// transfer adds its amount for the credited person; a RETRACTION (issue 18,
// tag "retracts" = the reversed transfer) takes it back (negative amount) in
// the periods of the original's post time (tag "retracts_post_ms"; else its
// own). nullopt: no board change (other kinds, private kudos' transfers,
// malformed ones).
struct BoardPoints {
  std::string person;
  std::string team;
  std::vector<std::string> values;
  int64_t amount = 0;
  absl::Time time;
};
std::optional<BoardPoints> PointsOf(const ledger::v1::Transfer& transfer, absl::Time posted);

// How long a retracted kudos' id is remembered (its counts are taken back
// once): as long as its boards are kept, but for year and all time.
inline constexpr int64_t kRetractionGuardDays = 1096;

// The windows every event updates.
const std::vector<leaderboard::v1::Window>& AllWindows();

absl::Time FromProto(const google::protobuf::Timestamp& ts);
void ToProto(absl::Time t, google::protobuf::Timestamp* ts);

// ---------------------------------------------------------------- the rebuild's plans
//
// Issue 15 part 5: a rebuild plans an org's whole history. RebuildPlanner
// plans exactly the operations PlanKudosEvent / PlanLedgerEvent plan (with
// list_touched false; ExpandCompactPlan gives that ApplyPlan back, tested),
// but names keys and strings by small ids interned once per rebuild and keeps
// numbers as numbers: board keys come from a table per (metric, window,
// period, scope), periods from a table per local day, so no key string is
// built or hashed per event (ProjectionImage::ApplyCompact applies them).
struct CompactOp {
  enum Code : uint8_t {
    kGuard,      // G: text = logical id, key = its zset, number = window ms
    kZincr,      // Z: key, atom = member, number = increment, expire_at (0: none)
    kSadd,       // S: key, atom = member
    kSrem,       // R: key, atom = member
    kHset,       // H: key, atom = field, text = value
    kHsetnx,     // N: key, atom = field, text = value
    kSet,        // P: key, text = value
    kDel,        // D: key
    kThreshold,  // T: key = badges, atom = badge, text = ms, key2 = board,
                 //    atom2 = member, number = threshold
    kAllValues,  // V: key = badges, atom = badge, text = ms, key2 = set,
                 //    lists[atom2 .. atom2 + number) = each value's
                 //    (ValueMember, id) pair: number is even
  };
  Code code = kGuard;
  uint32_t key = 0;    // key ids: RebuildPlanner::keys()
  uint32_t key2 = 0;
  uint32_t atom = 0;   // string ids: RebuildPlanner::atoms()
  uint32_t atom2 = 0;
  uint32_t text = 0;   // index into CompactPlan::texts
  int64_t number = 0;
  int64_t expire_at = 0;
};

struct CompactPlan {
  char stream = 'k';     // 'k' kudos, 'l' ledger
  std::string entry_id;  // its stream id
  std::vector<CompactOp> ops;
  std::vector<std::string> texts;
  std::vector<uint32_t> lists;
  // A giver's giving-streak badge to evaluate after applying (ApplyPlan's
  // streak_checks): their giving days set and badges hash.
  struct StreakCheck {
    uint32_t days_key = 0;
    uint32_t badges_key = 0;
    absl::CivilDay day;
    absl::Time time;
  };
  std::vector<StreakCheck> streak_checks;
  // Non-empty: the ApplyPlan would be malformed at op `error_at` (applying
  // fails there as ProjectionImage::Apply does).
  std::string error;
  size_t error_at = 0;
};

class RebuildPlanner {
 public:
  // Key id 0 is the org's marks hash, atom 0 the empty string.
  explicit RebuildPlanner(std::string org);

  CompactPlan PlanKudos(absl::string_view entry_id, const kudos::v1::KudosEvent& event,
                        const OrgCalendar& calendar, const ZoneLookup& person_zone);
  CompactPlan PlanLedger(absl::string_view entry_id, const ledger::v1::LedgerEvent& event,
                         const OrgCalendar& calendar);

  // Every id given so far (append-only: id = index).
  const std::vector<std::string>& keys() const { return keys_; }
  const std::vector<std::string>& atoms() const { return atoms_; }

 private:
  class Builder;
  struct PeriodIds {
    uint32_t atom = 0;      // the period key ("2026-11-23", ..., "all")
    int64_t expire_at = 0;  // unix seconds, 0: kept forever
  };
  struct PersonKeys {
    uint32_t giving = UINT32_MAX, receiving = UINT32_MAX, badges = UINT32_MAX,
             values = UINT32_MAX;
  };
  uint32_t Key(std::string key);
  uint32_t Atom(absl::string_view text);
  // Atom(ValueMember(value)), hashed once per value id.
  uint32_t ValueMemberAtom(absl::string_view value);
  const std::vector<PeriodIds>& PeriodsAt(absl::Time t, const OrgCalendar& calendar);
  uint32_t BoardId(leaderboard::v1::Metric metric, size_t window, uint32_t period_atom,
                   leaderboard::v1::Scope scope, uint32_t scope_atom);
  PersonKeys& KeysOf(uint32_t person_atom);

  std::string org_;
  std::vector<std::string> keys_, atoms_;
  absl::flat_hash_map<std::string, uint32_t> key_ids_, atom_ids_;
  // (period atom << 32 | scope atom, metric/window/scope) -> key id.
  absl::flat_hash_map<std::pair<uint64_t, uint32_t>, uint32_t> boards_;
  absl::flat_hash_map<uint32_t, PersonKeys> people_;
  absl::flat_hash_map<uint32_t, uint32_t> value_members_;  // value id's atom -> its member's
  // Periods per local day of one (zone, week start).
  std::string periods_zone_;
  int periods_week_start_ = 0;
  absl::flat_hash_map<int64_t, std::vector<PeriodIds>> periods_;
  absl::flat_hash_map<std::string, std::optional<absl::TimeZone>> zones_;
};

// The ApplyPlan a CompactPlan stands for (args[0] "<stream>:<id>", args[1]
// the rebuild token "").
ApplyPlan ExpandCompactPlan(absl::string_view org, const CompactPlan& plan,
                            const std::vector<std::string>& keys,
                            const std::vector<std::string>& atoms);

}  // namespace leaderboard
