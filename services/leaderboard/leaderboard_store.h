// Redis access of the leaderboard: the apply script, board reads, the
// directory copy (people, teams, settings), streak days and badges.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/redis/async_client.h"
#include "common/redis/org_registry.h"
#include "common/redis/redis_client.h"
#include "services/leaderboard/apply_batch.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "services/leaderboard/name_cache.h"

namespace leaderboard {

class SeasonStore;

struct BoardPage {
  int64_t total = 0;
  bool has_prev = false;
  bool has_next = false;
  std::vector<RankedEntry> entries;
};

struct BoardAround {
  int64_t total = 0;
  bool ranked = false;
  RankedEntry entry;
  int64_t below_count = 0;
  std::vector<RankedEntry> above;
  std::vector<RankedEntry> below;
  // Read with NamesFrom::kPeople/kTeams: the display name of the member and
  // of each neighbour (the id when the directory has none).
  std::map<std::string, std::string> names;
};

// Whose directory names a read brings back in the same script call.
enum class NamesFrom { kNone, kPeople, kTeams };

// A key of a rebuilt image under its temporary name, with its final name
// and expiry (unix seconds, 0 = none).
struct StagedKey {
  std::string staging;
  std::string final_key;
  int64_t expire_at = 0;
};

struct StreamEntry {
  std::string id;
  std::string event;  // the "event" field; empty when missing
};

// The continuation of an asynchronous read: runs exactly once, with the
// answer or the error (UNAVAILABLE, DEADLINE_EXCEEDED, ... as the Redis
// clients map them).
template <typename T>
using Then = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

// What GetStreaks reads of one person, in one pipeline.
struct PersonDays {
  std::optional<kudos::v1::Person> person;  // absent from the directory copy
  std::vector<absl::CivilDay> giving;
  std::vector<absl::CivilDay> receiving;
};

class Store {
 public:
  // `async`: the client of the RPC handlers' reads (the ...Async methods);
  // the consumer, the rebuild and the watch notifier use the blocking pool.
  explicit Store(common::redis::Pool& pool, common::redis::AsyncClient* async = nullptr);

  common::redis::Pool& pool() { return pool_; }
  // Issue 18: the org's seasons, attached to the calendars the consumer and
  // the rebuild plan with (nullptr: none are read).
  void set_seasons(SeasonStore* seasons) { seasons_ = seasons; }
  SeasonStore* seasons() const { return seasons_; }
  bool has_async() const { return async_ != nullptr; }

  absl::StatusOr<std::vector<std::string>> Orgs();

  // The org's settings as last seen on its kudos stream (defaults if none).
  absl::StatusOr<kudos::v1::OrgSettings> Settings(const std::string& org);
  // Read from Redis every time: what the consumer plans events with.
  absl::StatusOr<OrgCalendar> Calendar(const std::string& org);
  // For reads (boards, ranks, streaks, watch): the calendar cached for up
  // to a second, so a read costs no settings round trip. This replica drops
  // it when its consumer applies a directory change; another replica's
  // change shows within the second (boards themselves trail the events).
  absl::StatusOr<OrgCalendar> CachedCalendar(const std::string& org);
  // Drops the org's cached calendar and display names.
  void ForgetDirectory(const std::string& org);

  // People by id (missing ones are absent from the map).
  absl::StatusOr<std::map<std::string, kudos::v1::Person>> People(
      const std::string& org, const std::vector<std::string>& ids);
  absl::StatusOr<std::map<std::string, kudos::v1::Person>> AllPeople(const std::string& org);
  absl::StatusOr<std::map<std::string, kudos::v1::Team>> Teams(
      const std::string& org, const std::vector<std::string>& ids);
  // Display names of people (or of teams), falling back to the id. Cached
  // for a second like the calendar (a board page needs no extra round trip).
  absl::StatusOr<std::map<std::string, std::string>> DisplayNames(
      const std::string& org, bool teams, const std::vector<std::string>& ids);

  // The org calendar and the given people of each org, in one round trip
  // (what the consumer plans a run of entries with).
  struct Directory {
    OrgCalendar calendar;
    std::map<std::string, kudos::v1::Person> people;
  };
  absl::StatusOr<std::map<std::string, Directory>> ReadDirectories(
      const std::map<std::string, std::vector<std::string>>& people_by_org);

  // Runs plans with one script per org (apply_batch.h), all orgs in one
  // pipeline, and awards the giving-streak badge (kGivingStreakBadgeDays)
  // where a plan's streak checks reach it: the givers' days are read in the
  // same pipeline, the awards (HSETNX) take one more round trip when there
  // are any. Per plan, true when its entry was new (above its stream's
  // mark). The first failing script's error fails the call (the other orgs'
  // scripts took effect; running them again is a no-op). ABORTED while a
  // rebuild holds an org, or when entries before an org's batch are held by
  // another consumer (a gap before its marks).
  struct PlanToApply {
    const ApplyPlan* plan;
    const std::string* org;
    const OrgCalendar* calendar;
  };
  absl::StatusOr<std::vector<bool>> ApplyAll(const std::vector<PlanToApply>& plans);

  // Fault injection for tests: `hook(step)` returning true makes the
  // caller stop at that step of a batch as a crash would (CANCELLED, and
  // crashed() turns true so the consumer stops dead). Steps: "read",
  // "planned", "applied", "awarded", "acked", "dead_lettered".
  // The consumer group whose pending entries the apply script consults while
  // a stream has no mark yet (apply_event.lua); "" = none.
  void set_consumer_group(std::string group) { consumer_group_ = std::move(group); }
  void set_crash_hook(std::function<bool(absl::string_view step)> hook) {
    crash_hook_ = std::move(hook);
  }
  bool Crash(absl::string_view step);
  static absl::Status Crashed(absl::string_view step);
  bool crashed() const { return crashed_.load(); }

  absl::StatusOr<BoardPage> FirstPage(const std::string& board_key, int n);
  absl::StatusOr<BoardPage> Page(const std::string& board_key, char direction, int64_t score,
                                 const std::string& member, int n);
  // `viewer`: the person asking, who sees their own rank even when hidden
  // from leaderboards (others see hidden people nowhere; "" = nobody).
  // `names`: the display names of the member and its neighbours come back
  // with them (BoardAround::names), read by the same script call.
  absl::StatusOr<BoardAround> Around(const std::string& board_key, const std::string& member,
                                     int n, const std::string& viewer = "",
                                     NamesFrom names = NamesFrom::kNone);
  // Scores of `members` on a board (absent ones are missing from the map).
  absl::StatusOr<std::map<std::string, int64_t>> Scores(const std::string& board_key,
                                                        const std::vector<std::string>& members);

  // ---- Asynchronous reads (issue 13), for the RPC handlers: the same
  // answers as the blocking methods above, through the AsyncClient, each
  // Redis call bounded by `deadline`. `done` runs exactly once: on a Redis
  // loop thread, or on the caller's thread before the method returns when
  // no Redis call is needed (a cached calendar or names, a malformed key).
  // It must not block. Requires an AsyncClient (KUDOS_CHECK).
  using Deadline = common::redis::Deadline;
  void CachedCalendarAsync(const std::string& org, Deadline deadline, Then<OrgCalendar> done);
  // The same without a copy: the cached calendar itself (never null).
  void SharedCalendarAsync(const std::string& org, Deadline deadline,
                           Then<std::shared_ptr<const OrgCalendar>> done);
  void FirstPageAsync(const std::string& board_key, int n, Deadline deadline,
                      Then<BoardPage> done);
  void PageAsync(const std::string& board_key, char direction, int64_t score,
                 const std::string& member, int n, Deadline deadline, Then<BoardPage> done);
  void AroundAsync(const std::string& board_key, const std::string& member, int n,
                   const std::string& viewer, NamesFrom names, Deadline deadline,
                   Then<BoardAround> done);
  void DisplayNamesAsync(const std::string& org, bool teams, const std::vector<std::string>& ids,
                         Deadline deadline, Then<std::map<std::string, std::string>> done);
  void TeamsAsync(const std::string& org, const std::vector<std::string>& ids, Deadline deadline,
                  Then<std::map<std::string, kudos::v1::Team>> done);
  // The person (HMGET) and both day sets in one pipeline.
  void PersonDaysAsync(const std::string& org, const std::string& person, Deadline deadline,
                       Then<PersonDays> done);
  // A season's stored definition (nullopt: none), for a season board's read.
  void SeasonAsync(const std::string& org, const std::string& season_id, Deadline deadline,
                   Then<std::optional<v1::Season>> done);
  void BadgesAsync(const std::string& org, const std::string& person, Deadline deadline,
                   Then<std::map<std::string, int64_t>> done);

  absl::StatusOr<std::vector<absl::CivilDay>> Days(const std::string& org,
                                                   const std::string& kind,
                                                   const std::string& person);
  // badge id -> earn time (unix ms).
  absl::StatusOr<std::map<std::string, int64_t>> Badges(const std::string& org,
                                                        const std::string& person);

  // Starts a rebuild: takes the org's rebuild lock (ABORTED when another
  // rebuild holds it) and, unless `min_interval` is 0, its rebuild budget
  // (RESOURCE_EXHAUSTED "retry after N ms" while the last rebuild's interval
  // runs; RetryAfterMs reads N back). One script: a refusal takes nothing.
  // The lock lapses after `lock_ttl` unless refreshed (a crashed rebuild
  // does not hold the org for long).
  absl::Status BeginRebuild(const std::string& org, const std::string& token,
                            std::chrono::milliseconds lock_ttl,
                            std::chrono::milliseconds min_interval);
  // ABORTED when the lock is no longer `token`'s.
  absl::Status RefreshRebuildLock(const std::string& org, const std::string& token,
                                  std::chrono::milliseconds ttl);
  // Releases the lock if still `token`'s; `refund_budget`: gives the budget
  // back too (the rebuild failed, the admin may retry at once).
  absl::Status EndRebuild(const std::string& org, const std::string& token, bool refund_budget);

  // Every lb:{org}:* key (SCAN).
  absl::StatusOr<std::vector<std::string>> ProjectionKeys(const std::string& org);
  // Upgrade from a version that wrote the sub-scope all-time boards (one of
  // its `teams` all-time boards exists) and kept no YearsKey: adds the years
  // of the org-scope year boards (1990 .. next year) to YearsKey, so the
  // derived all-time boards read the years written before the upgrade too.
  // Nothing otherwise. Returns the years added.
  absl::StatusOr<int> SeedYearsAfterUpgrade(const std::string& org, absl::Time now);
  // Upgrade from a version that kept one guard zset per stream
  // (LegacyGuardKey): moves its ids into their buckets (GuardKey), at most
  // kSplitGuardsChunk per script call, until none is left; the apply script
  // refuses the org's batches (ABORTED) meanwhile. Safe with several
  // replicas splitting at once. Returns the ids moved.
  static constexpr int kSplitGuardsChunk = 1000;
  absl::StatusOr<int64_t> SplitLegacyGuards(const std::string& org);
  // One atomic script: checks the lock is still `token`'s (else ABORTED,
  // nothing changed) and that every staged key is there, deletes
  // `old_keys`, renames each staged key to its final name and sets its
  // expiry (or none).
  absl::Status SwapInProjections(const std::string& org, const std::string& token,
                                 const std::vector<std::string>& old_keys,
                                 const std::vector<StagedKey>& staged);
  // Entries of a stream with id > after ("-" for the start), at most count.
  absl::StatusOr<std::vector<StreamEntry>> Range(const std::string& stream,
                                                 const std::string& after, int count);

 private:
  // The KEYS of a board_read.lua call for `board_key`: the board itself, or
  // for a derived board (BoardDerived) its cached union, the version keys and
  // the boards it sums (a derived all-time board of one year reads that year).
  absl::StatusOr<std::vector<std::string>> ReadKeys(const std::string& board_key);
  // The boards a derived board sums (nullopt: `board_key` is materialized).
  absl::StatusOr<std::optional<std::vector<std::string>>> DerivedSources(
      const std::string& board_key);
  // ReadKeys without blocking: a derived all-time board reads its years.
  void ReadKeysAsync(const std::string& board_key, Deadline deadline,
                     Then<std::vector<std::string>> done);
  // board_read.lua on the board's read keys with `args`.
  void BoardReadAsync(const std::string& board_key, std::vector<std::string> args,
                      Deadline deadline, Then<common::redis::Reply> done);
  // The cached calendar of `org` if still fresh; the cache's bookkeeping.
  std::shared_ptr<const OrgCalendar> FreshCalendar(const std::string& org, absl::Time now);
  void RememberCalendar(const std::string& org, std::shared_ptr<const OrgCalendar> calendar,
                        absl::Time now);
  // Splits `ids` into cached names (into `out`) and the missing ones.
  std::vector<std::string> CachedNames(const std::string& org, bool teams,
                                       const std::vector<std::string>& ids, absl::Time now,
                                       std::map<std::string, std::string>& out);
  void RememberNames(const std::string& org, bool teams,
                     const std::map<std::string, std::string>& found, absl::Time now,
                     std::map<std::string, std::string>& out);

  // Remembers the boards an applied call left with their expiry (bounded).
  void LearnExpiries(const std::string& org, const BatchCall& call,
                     const std::string& generation, int64_t now_s);
  // Pipeline on a standalone Redis; on a cluster each command on its own.
  absl::StatusOr<std::vector<absl::StatusOr<common::redis::Reply>>> PipelinePerSlot(
      const std::vector<common::redis::Command>& commands);

  common::redis::Pool& pool_;
  common::redis::AsyncClient* async_;
  SeasonStore* seasons_ = nullptr;
  common::redis::OrgRegistry org_registry_;  // shared by the consumer, insights and compactor loops
  absl::Mutex calendars_mu_;
  // Shared, immutable: a read takes a reference, not a copy of the sets.
  absl::flat_hash_map<std::string, std::pair<std::shared_ptr<const OrgCalendar>, absl::Time>>
      calendars_ ABSL_GUARDED_BY(calendars_mu_);
  // (org, people or teams, id) -> display name, fresh for a second; at most
  // kMaxCachedNames, the oldest evicted first.
  static constexpr size_t kMaxCachedNames = 100000;
  NameCache names_{kMaxCachedNames, absl::Seconds(1)};
  // Per org, the boards this replica saw with their expiry (apply_batch.h),
  // so a board's EXPIREAT is sent once, not in every batch; at most
  // kMaxKnownBoards per org and kMaxKnownBoardsTotal over all orgs
  // (BoundExpiries: lapsed ones dropped first, then all).
  static constexpr size_t kMaxKnownBoards = 100000;
  static constexpr size_t kMaxKnownBoardsTotal = 1000000;
  absl::Mutex expiries_mu_;
  absl::flat_hash_map<std::string, KnownExpiries> expiries_ ABSL_GUARDED_BY(expiries_mu_);
  common::redis::Script apply_script_;
  common::redis::Script read_script_;
  common::redis::Script rebuild_begin_script_;
  common::redis::Script rebuild_end_script_;
  common::redis::Script swap_script_;
  common::redis::Script split_guards_script_;
  std::function<bool(absl::string_view)> crash_hook_;
  std::string consumer_group_;
  std::atomic<bool> crashed_{false};
};

// The retry delay a RESOURCE_EXHAUSTED status from BeginRebuild carries.
std::optional<int64_t> RetryAfterMs(const absl::Status& status);

// Where a rebuild stages its image: lbstage:{org}: (the org's slot).
std::string StagingPrefix(const std::string& org);
// The key holding an org's rebuild budget (its value: the last rebuild's token).
std::string RebuildBudgetKey(const std::string& org);

// Parses XRANGE / XREADGROUP entries ([id, [field, value, ...]], ...).
std::vector<StreamEntry> ParseEntries(const common::redis::Reply& reply);

}  // namespace leaderboard
