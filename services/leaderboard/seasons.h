// Seasons (issue 18 part 5): time-boxed boards of chosen people or teams,
// optionally joined, closed once with a PeriodClosed event carrying the
// final top N, and optional prizes for the top ranks paid once from the
// org's issuer through the ledger (TRANSFER_KIND_SEASON_PRIZE).
//
// Keys (slot {org}; leaderboard_rules.h): the definitions and joins outside
// the projection (lbseason:{org}:..., a rebuild keeps them), the board inside
// it (lb:{org}:season:<id>:people|teams, rebuilt from the streams with the
// same definitions). Exactly once, across replicas and restarts: the close
// script writes the season's close record and appends its event in one step
// (HSETNX: the first sweep wins); the prizes are the ones that record names,
// posted with deterministic transfer ids (the ledger applies an id once)
// until the record says paid.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "ledger/v1/ledger.pb.h"
#include "services/leaderboard/leaderboard_rules.h"

namespace leaderboard {

class Store;

struct SeasonLimits {
  // Seasons an org keeps (scheduled, running and closed within the
  // retention after their end); CreateSeason past it is RESOURCE_EXHAUSTED.
  int max_seasons_per_org = 20;
  // member_ids of a season, and people who joined one, at most each.
  int max_members = 1000;
};
inline constexpr int kMaxSeasonPrizes = 10;
inline constexpr int64_t kMaxSeasonPrizePoints = 1000000;
inline constexpr absl::Duration kMaxSeasonLength = absl::Hours(24 * 366);
// A season's winners read at its close, at most (ties at the last prized
// rank beyond it go without a prize).
inline constexpr int kMaxSeasonWinners = 100;

// INVALID_ARGUMENT naming the field when `season` is not a valid new
// season at `now` (see leaderboard.proto, Season).
absl::Status ValidateSeason(const v1::Season& season, absl::Time now, const SeasonLimits& limits);
// What is stored of a new season: its inputs (metric defaulted, member ids
// sorted and unique), create_time = now, no output fields.
v1::Season StoredDefinition(const v1::Season& season, absl::Time now);
// The planner's view of a stored season and its joins.
SeasonDef DefOf(const v1::Season& stored, std::map<std::string, int64_t> joined_ms);
// The board's retention end: the season's end + kSeasonRetentionDays.
absl::Time SeasonBoardExpiry(const v1::Season& season);
// The ResolvedBoard of a season's board (period key = the season id).
ResolvedBoard ResolveSeasonBoard(absl::string_view org, const v1::Season& season);
// The prize ledger transfers of a closed season (TRANSFER_KIND_SEASON_PRIZE,
// issuer -> earned, ids "season:<id>:<rank>:<person>").
ledger::v1::PostTransfersRequest PrizeTransfers(const std::string& season_id,
                                                const v1::PeriodClosed& closed);

// Redis access of seasons (blocking pool; the RPCs run on a worker).
class SeasonStore {
 public:
  SeasonStore(common::redis::Pool& pool, SeasonLimits limits);
  const SeasonLimits& limits() const { return limits_; }

  // Idempotent by season_id: the same definition again answers the stored
  // season; another one is ALREADY_EXISTS. RESOURCE_EXHAUSTED past the org's
  // bound (seasons past their retention are dropped first).
  absl::StatusOr<v1::Season> Create(const std::string& org, const v1::Season& season,
                                    absl::Time now);
  // The stored season with its state and close at `now`; NOT_FOUND.
  absl::StatusOr<v1::Season> Get(const std::string& org, const std::string& season_id,
                                 absl::Time now);
  absl::StatusOr<std::vector<v1::Season>> List(const std::string& org, absl::Time now);
  // The person's join time (the first join's on a repeat). NOT_FOUND,
  // FAILED_PRECONDITION (no join, ended), RESOURCE_EXHAUSTED (full).
  absl::StatusOr<std::pair<v1::Season, absl::Time>> Join(const std::string& org,
                                                         const std::string& season_id,
                                                         const std::string& person,
                                                         absl::Time now);
  // The org's seasons for planning, cached until their version moves.
  absl::StatusOr<std::shared_ptr<const SeasonSet>> Load(const std::string& org);
  // Same, when the caller read the version already (nil: never written).
  absl::StatusOr<std::shared_ptr<const SeasonSet>> LoadAt(const std::string& org,
                                                          const std::string& version);
  // Writes the close record and appends `event` once: true when this call did.
  absl::StatusOr<bool> Close(const std::string& org, const std::string& season_id,
                             const std::string& event, absl::Time expire, int64_t max_len);
  // The close record: the PeriodClosed event (nullopt: not closed) and paid.
  struct CloseRecord {
    std::optional<v1::LeaderboardEvent> event;
    bool paid = false;
  };
  absl::StatusOr<CloseRecord> ReadClose(const std::string& org, const std::string& season_id);
  absl::Status MarkPaid(const std::string& org, const std::string& season_id);

 private:
  absl::StatusOr<std::map<std::string, v1::Season>> Definitions(const std::string& org);
  v1::Season WithState(v1::Season season, const CloseRecord& close, int64_t joined,
                       absl::Time now) const;

  common::redis::Pool& pool_;
  SeasonLimits limits_;
  common::redis::Script create_script_;
  common::redis::Script join_script_;
  common::redis::Script close_script_;
  absl::Mutex mu_;
  // org -> (version, seasons)
  absl::flat_hash_map<std::string, std::pair<std::string, std::shared_ptr<const SeasonSet>>>
      cache_ ABSL_GUARDED_BY(mu_);
};

// Posts a season's prizes to the ledger (PostTransfers, the service token,
// a deadline); OK only when every transfer is posted (now or before).
using PrizePayer = std::function<absl::Status(const std::string& org,
                                              const ledger::v1::PostTransfersRequest& request)>;
// The ledger at `address` ("" = no ledger: prizes wait, logged).
PrizePayer MakeLedgerPrizePayer(const std::string& address, const std::string& service_secret,
                                absl::Duration timeout);

// Closes the org's ended seasons: run by the period sweep (PeriodCloser)
// with the consumer's position, so a season closes only once every event
// before its end + grace is applied.
class SeasonCloser {
 public:
  SeasonCloser(Store& store, SeasonStore& seasons, PrizePayer payer, int top_n, int64_t max_len,
               absl::Duration grace);
  struct Result {
    int closed = 0;  // by this call
    int paid = 0;    // seasons whose prizes this call posted
  };
  absl::StatusOr<Result> RunOnce(const std::string& org, absl::Time now, absl::Time position);

 private:
  absl::StatusOr<std::string> BuildEvent(const std::string& org, const v1::Season& season);

  Store& store_;
  SeasonStore& seasons_;
  PrizePayer payer_;
  int top_n_;
  int64_t max_len_;
  absl::Duration grace_;
};

}  // namespace leaderboard
