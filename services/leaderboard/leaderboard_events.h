// Issue 17: the leaderboard's own events (badge earned, streak extended,
// period closed) on `lb:{org}:events`, field `event` = serialized
// leaderboard.v1.LeaderboardEvent (services/leaderboard/README.md, "Events").
//
// Badges and streaks are appended by the consumer's apply script in the
// same atomic call that writes them (exactly once, guarded by the marks):
// the live consumer adds an "E" op to each kudos plan (AddEmitOp) and
// BuildBatchCall (apply_batch.cc) turns the plan's badge and streak-day ops
// into ops that append their event when they change something. A rebuild's
// plans carry no "E" op: it appends nothing.
//
// Period closes come from PeriodCloser::RunOnce, run from the consumer's
// loop: per org, once the consumer's position is past a period's end plus a
// grace, one script sets the period's marker (NX, expiring) and appends the
// final top N of every org-scope and team-scope board of it, or does
// nothing when another sweep did: exactly once across replicas.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.pb.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "services/leaderboard/leaderboard_rules.h"

namespace leaderboard {

class Store;

// lb:{org}:events. Not a projection: a rebuild keeps it as it is.
std::string EventsStream(absl::string_view org);
// lbctl:{org}:closed:<window>:<period>: set (NX, expiring) by the script
// that appends the period's PeriodClosed events.
std::string PeriodClosedMarkerKey(absl::string_view org, absl::string_view window,
                                  absl::string_view period);

struct EventsOptions {
  bool enabled = true;
  // XADD MAXLEN ~ this (the stream's bound).
  int64_t max_len = 100000;
  // Entries of a PeriodClosed (the final top N).
  int top_n = 10;
  // A period closes once the consumer's position is this far past its end
  // (late events in the streams still land in it meanwhile).
  absl::Duration close_grace = absl::Minutes(5);
  // Periods that ended within this span before (position - grace) are
  // closed; older ones are not looked at (a sweep down longer misses them).
  absl::Duration close_lookback = absl::Hours(24 * 7);
  // How often the consumer's loop runs the sweep.
  absl::Duration sweep_interval = absl::Minutes(1);
  // Teams of one period whose boards are closed, at most (bounded work).
  int max_teams = 500;
  // Periods one RunOnce closes per org, at most: the sweep runs on the
  // consumer's thread, so one org's closes (up to 3 x (1 + teams) board
  // reads a period) hold the other orgs' entries back only this long; the
  // rest follow on the next sweeps, oldest first.
  int max_periods_per_run = 2;
  // Time one consumer turn of the sweep takes, about (checked after each
  // org): the round resumes at the next org on the next turn.
  absl::Duration sweep_turn_budget = absl::Milliseconds(50);
};
// From the flags --lb_events, --lb_events_max_len, --lb_events_top_n,
// --lb_events_close_grace_s, --lb_events_sweep_interval_s (env LB_EVENTS_*).
EventsOptions EventsOptionsFromFlags();

// Stable event ids (see LeaderboardEvent.event_id; the formats are
// common/events/leaderboard_event.h's, which a reader derives them with).
std::string BadgeEventId(absl::string_view person, absl::string_view badge);
std::string StreakEventId(absl::string_view kind, absl::string_view person, absl::CivilDay day);
std::string PeriodClosedEventId(leaderboard::v1::Metric metric, leaderboard::v1::Window window,
                                absl::string_view period, absl::string_view scope);

// Serialized LeaderboardEvent of a badge earned at `earn_ms`.
std::string BadgeEarnedEvent(absl::string_view org, absl::string_view person,
                             absl::string_view badge, int64_t earn_ms,
                             absl::string_view cause_kudos_id);
// Serialized LeaderboardEvent of a streak extended, without its length: the
// script appends `streak_extended { length_days: n }` (protobuf merges a
// repeated embedded message field), since only it knows the streak.
std::string StreakExtendedEventPrefix(absl::string_view org, absl::string_view kind,
                                      absl::string_view person, absl::CivilDay day, int64_t ms,
                                      absl::string_view cause_kudos_id);

// The live consumer's switch: appends to a KudosSent plan the "E" op
//   E <k events> <max len> <cause kudos id> <ms> <freezes> <work days> <holidays>
// (work days "12345", holidays "YYYY-MM-DD,..."): the plan's badge and
// streak ops then append their events (apply_batch.cc). Nothing for other
// events or when disabled.
void AddEmitOp(ApplyPlan& plan, absl::string_view org, const kudos::v1::KudosEvent& event,
               const OrgCalendar& calendar, const EventsOptions& options);

// The org's period closes (see the top of this file).
class SeasonCloser;

class PeriodCloser {
 public:
  PeriodCloser(Store& store, EventsOptions options);
  // Issue 18: each RunOnce also closes the org's ended seasons (SeasonCloser,
  // seasons.h) with the same position; nullptr: none.
  void set_seasons(SeasonCloser* seasons) { seasons_ = seasons; }

  struct Result {
    int periods_closed = 0;  // by this call (another sweep's are not counted)
    int events = 0;          // appended by this call
    int seasons_closed = 0;  // by this call
  };
  // Closes every period due at `now` (its end + grace passed by the
  // consumer's position, within the lookback) not closed before.
  absl::StatusOr<Result> RunOnce(const std::string& org, absl::Time now);

  // Where the consumer has applied everything appended before: the older of
  // the two streams' marks, or `now` for a stream with nothing left after
  // its mark; the Unix epoch while a stream with entries has no mark yet
  // (RunOnce then closes nothing).
  absl::StatusOr<absl::Time> Position(const std::string& org, absl::Time now);

 private:
  // The period's PeriodClosed events (serialized), boards with entries only.
  absl::StatusOr<std::vector<std::string>> BuildEvents(const std::string& org,
                                                       leaderboard::v1::Window window,
                                                       const common::calendar::Period& period);
  absl::StatusOr<std::vector<std::string>> TeamsOf(const std::string& org,
                                                   leaderboard::v1::Window window,
                                                   const common::calendar::Period& period);

  Store& store_;
  EventsOptions options_;
  common::redis::Script close_script_;
  SeasonCloser* seasons_ = nullptr;
};

// The consumer's sweep over its orgs, in turns: a turn runs RunOnce for the
// orgs from where the last turn stopped until `over_budget` (asked after
// each org) says stop, so one turn holds entries back about one budget plus
// one org's RunOnce. Re-running an org is safe (the markers).
class PeriodSweep {
 public:
  explicit PeriodSweep(PeriodCloser& closer) : closer_(closer) {}

  struct Turn {
    int orgs = 0;  // RunOnce calls made by this turn
    int periods_closed = 0;
    int events = 0;
    bool round_done = false;  // every org was visited since the round began
  };
  // One org's failure is logged and skips only it.
  Turn RunTurn(const std::set<std::string>& orgs, absl::Time now,
               const std::function<bool()>& over_budget);

 private:
  PeriodCloser& closer_;
  std::string resume_at_;  // the round goes on at the first org >= this
  bool in_round_ = false;
};

}  // namespace leaderboard
