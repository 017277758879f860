#include "services/leaderboard/leaderboard_watch.h"

#include "services/leaderboard/seasons.h"

#include <algorithm>
#include <tuple>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/check/check.h"
#include "common/config/env.h"
#include "common/grpc/status.h"
#include "common/log/log.h"

ABSL_FLAG(int, max_watched_boards_per_org,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_MAX_WATCHED_BOARDS_PER_ORG", 256, 1)),
          "distinct boards one org may have watched at once on a replica; a watch of another "
          "board is RESOURCE_EXHAUSTED (env LEADERBOARD_MAX_WATCHED_BOARDS_PER_ORG)");
ABSL_FLAG(int, max_board_watchers,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_MAX_BOARD_WATCHERS", 20000, 1)),
          "open WatchLeaderboard streams on a replica, services included "
          "(env LEADERBOARD_MAX_BOARD_WATCHERS)");
ABSL_FLAG(int, board_page_cache_ms,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_PAGE_CACHE_MS",
                                                    leaderboard::kDefaultPageCacheMs, 0)),
          "GetLeaderboard's first pages are served from this replica's cache for at most this "
          "long after their read started (default 100, at most 200, the watch's coalescing); "
          "0: only reads arriving while the same page's read is in flight share it "
          "(env LEADERBOARD_PAGE_CACHE_MS)");
ABSL_FLAG(int, board_page_cache_entries,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_PAGE_CACHE_ENTRIES", 4096, 1)),
          "first pages cached by a replica (env LEADERBOARD_PAGE_CACHE_ENTRIES)");

namespace leaderboard {

common::grpc_util::ReadCacheOptions PageCacheOptionsFromFlags() {
  common::grpc_util::ReadCacheOptions options;
  options.ttl = std::chrono::milliseconds(std::clamp(absl::GetFlag(FLAGS_board_page_cache_ms), 0, 200));
  options.max_keys = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_board_page_cache_entries)));
  return options;
}

WatchLimits WatchLimitsFromFlags() {
  WatchLimits limits;
  limits.max_boards_per_org = std::max(1, absl::GetFlag(FLAGS_max_watched_boards_per_org));
  limits.max_watchers = std::max(1, absl::GetFlag(FLAGS_max_board_watchers));
  return limits;
}

absl::Status CheckEmptyBoardScope(Store& store, const std::string& org, const v1::Board& board,
                                  const OrgCalendar& calendar) {
  std::set<std::string> teams;
  if (board.scope() == v1::SCOPE_TEAM) {
    absl::StatusOr<std::map<std::string, kudos::v1::Team>> found =
        store.Teams(org, {board.scope_id()});
    if (!found.ok()) return found.status();
    for (const auto& [id, team] : *found) teams.insert(id);
  }
  return CheckScopeKnown(board, calendar, teams);
}

std::vector<std::string> FairRound(std::vector<RefreshCandidate> due) {
  auto before = [](const RefreshCandidate& a, const RefreshCandidate& b) {
    return std::make_tuple(!a.urgent, a.last_refresh, std::cref(a.hub_id)) <
           std::make_tuple(!b.urgent, b.last_refresh, std::cref(b.hub_id));
  };
  std::sort(due.begin(), due.end(), before);
  std::set<std::string> served;
  std::vector<std::string> round;
  for (RefreshCandidate& candidate : due) {
    if (served.insert(candidate.org).second) round.push_back(std::move(candidate.hub_id));
  }
  return round;
}

// ---------------------------------------------------------------- reactor

namespace {
std::string EntriesKey(const v1::WatchLeaderboardResponse& snapshot) {
  std::string out = snapshot.period();
  for (const v1::LeaderboardEntry& entry : snapshot.entries()) {
    absl::StrAppend(&out, "|", entry.rank(), ",", entry.subject_id(), ",", entry.score(), ",",
                    entry.display_name());
  }
  return out;
}
}  // namespace

std::shared_ptr<WatchReactor> WatchReactor::Create(Watchers& watchers, std::string hub_id,
                                                   int top_n,
                                                   common::ratelimit::StreamSlots::Slot slot) {
  KUDOS_CHECK(top_n >= 1 && top_n <= kMaxWatchTopN, "top_n is validated before a watch opens");
  std::shared_ptr<WatchReactor> reactor(
      new WatchReactor(watchers, std::move(hub_id), top_n, std::move(slot)));
  reactor->self_ = reactor;
  return reactor;
}

void WatchReactor::PrepareLocked(v1::WatchLeaderboardResponse snapshot) {
  last_entries_ = EntriesKey(snapshot);
  has_sent_ = true;
  in_flight_ = std::move(snapshot);
  writing_ = true;
}

void WatchReactor::Offer(const v1::WatchLeaderboardResponse& snapshot) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finish_called_ || close_requested_) return;
    if (writing_) {
      pending_ = snapshot;
      return;
    }
    if (has_sent_ && EntriesKey(snapshot) == last_entries_) return;
    PrepareLocked(snapshot);
  }
  StartWrite(&in_flight_);
}

void WatchReactor::Close(const grpc::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finish_called_) return;
    if (writing_) {
      close_requested_ = true;
      close_status_ = status;
      pending_.reset();
      return;
    }
    finish_called_ = true;
  }
  Finish(status);
}

void WatchReactor::OnWriteDone(bool ok) {
  enum { kNothing, kWrite, kFinish } action = kNothing;
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok || close_requested_) {
      if (!finish_called_) {
        finish_called_ = true;
        action = kFinish;
        status = ok ? close_status_ : grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
      }
    } else if (pending_) {
      v1::WatchLeaderboardResponse next = std::move(*pending_);
      pending_.reset();
      if (EntriesKey(next) != last_entries_) {
        PrepareLocked(std::move(next));
        action = kWrite;
      }
    }
  }
  if (action == kWrite) StartWrite(&in_flight_);
  if (action == kFinish) Finish(status);
}

void WatchReactor::OnCancel() { Close(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }

void WatchReactor::OnDone() {
  watchers_.Unregister(this);
  std::shared_ptr<WatchReactor> keep = std::move(self_);  // may delete this on return
}

// ---------------------------------------------------------------- watchers

namespace {
// How often every hub is re-read even when no event of this replica touched
// it: with several replicas another replica's consumer may apply the event,
// and display names and the org calendar change without touching boards.
// The notifier's fair rounds keep this from letting one org crowd out others.
constexpr auto kDirectoryRecheck = std::chrono::seconds(5);
}  // namespace

Watchers::Watchers(Store& store, WatchLimits limits, std::chrono::milliseconds min_interval,
                   common::grpc_util::ReadCacheOptions page_cache)
    : store_(store), limits_(limits), min_interval_(min_interval), pages_(page_cache) {}

Watchers::~Watchers() { Shutdown(); }

void Watchers::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Watchers::Shutdown() {
  std::vector<std::shared_ptr<WatchReactor>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& [id, hub] : hubs_) {
      for (auto& [raw, reactor] : hub.reactors) all.push_back(reactor);
    }
  }
  for (auto& reactor : all) {
    reactor->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string Watchers::HubId(const std::string& org, const v1::Board& board) {
  return absl::StrCat(org, "|", board.metric(), "|", board.window(), "|", board.scope(), "|",
                      board.scope_id(), "|", board.period());
}

size_t Watchers::watcher_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return watcher_total_;
}

absl::Status Watchers::Register(const std::string& org, const v1::Board& board,
                                std::shared_ptr<WatchReactor> reactor) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("server shutting down; reconnect");
    const int64_t retry_ms = limits_.retry_after.count();
    if (watcher_total_ >= static_cast<size_t>(limits_.max_watchers)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "too many watchers on this replica (", limits_.max_watchers,
          " streams open); retry after ", retry_ms, " ms"));
    }
    std::set<std::string>& org_hubs = hubs_of_org_[org];
    bool new_hub = hubs_.count(reactor->hub_id()) == 0;
    if (new_hub && org_hubs.size() >= static_cast<size_t>(limits_.max_boards_per_org)) {
      if (org_hubs.empty()) hubs_of_org_.erase(org);
      return absl::ResourceExhaustedError(absl::StrCat(
          "too many watched boards in this org: ", limits_.max_boards_per_org,
          " distinct boards are watched; watch one of them (e.g. the current period) or retry "
          "after ", retry_ms, " ms, when a board's last watcher has left"));
    }
    Hub& hub = hubs_[reactor->hub_id()];
    if (new_hub) {
      hub.org = org;
      hub.board = board;
      org_hubs.insert(reactor->hub_id());
    }
    hub.reactors[reactor.get()] = reactor;
    ++watcher_total_;
    hub.dirty = true;
    hub.urgent = true;
    KUDOS_CHECK(org_hubs.size() <= static_cast<size_t>(limits_.max_boards_per_org),
                "an org never holds more hubs than its cap");
    KUDOS_CHECK(watcher_total_ <= static_cast<size_t>(limits_.max_watchers),
                "a replica never holds more watchers than its cap");
  }
  cv_.notify_all();
  return absl::OkStatus();
}

void Watchers::EraseHubLocked(std::map<std::string, Hub>::iterator it) {
  auto org = hubs_of_org_.find(it->second.org);
  KUDOS_CHECK(org != hubs_of_org_.end() && org->second.count(it->first) == 1,
              "every hub is indexed under its org");
  org->second.erase(it->first);
  if (org->second.empty()) hubs_of_org_.erase(org);
  hubs_.erase(it);
}

Watchers::Hub& Watchers::IndexedHubLocked(const std::string& hub_id) {
  auto it = hubs_.find(hub_id);
  KUDOS_CHECK(it != hubs_.end(), "every hub indexed under an org exists");
  return it->second;
}

void Watchers::Unregister(WatchReactor* reactor) {
  std::shared_ptr<WatchReactor> released;  // dropped after the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hubs_.find(reactor->hub_id());
  if (it == hubs_.end()) return;
  auto found = it->second.reactors.find(reactor);
  if (found != it->second.reactors.end()) {
    released = std::move(found->second);
    it->second.reactors.erase(found);
    KUDOS_CHECK(watcher_total_ > 0, "the watcher count covers every registered reactor");
    --watcher_total_;
  }
  if (it->second.reactors.empty()) EraseHubLocked(it);
}

void Watchers::Reject(const std::string& hub_id, const absl::Status& status) {
  std::vector<std::shared_ptr<WatchReactor>> rejected;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = hubs_.find(hub_id);
    if (it == hubs_.end()) return;
    for (auto& [raw, reactor] : it->second.reactors) rejected.push_back(std::move(reactor));
    KUDOS_CHECK(watcher_total_ >= rejected.size(),
                "the watcher count covers every registered reactor");
    watcher_total_ -= rejected.size();
    EraseHubLocked(it);
  }
  for (auto& reactor : rejected) reactor->Close(common::grpc_util::ToGrpcStatus(status));
}

void Watchers::Touched(const std::string& org, const std::vector<std::string>& board_keys) {
  // Any board of the org: a derived board (all-time of a team) is read from
  // keys other than the ones an event names.
  pages_.Invalidate(org);
  bool any = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto org_hubs = hubs_of_org_.find(org);
    if (org_hubs == hubs_of_org_.end()) return;
    for (const std::string& id : org_hubs->second) {
      Hub& hub = IndexedHubLocked(id);
      if (hub.dirty) continue;
      if (hub.key.empty() ||
          std::find(board_keys.begin(), board_keys.end(), hub.key) != board_keys.end()) {
        hub.dirty = true;
        any = true;
      }
    }
  }
  if (any) cv_.notify_all();
}

void Watchers::TouchOrg(const std::string& org) {
  pages_.Invalidate(org);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto org_hubs = hubs_of_org_.find(org);
    if (org_hubs == hubs_of_org_.end()) return;
    for (const std::string& id : org_hubs->second) IndexedHubLocked(id).dirty = true;
  }
  cv_.notify_all();
}

void Watchers::MarkStaleLocked(std::chrono::steady_clock::time_point now,
                               std::chrono::steady_clock::time_point& next_recheck) {
  bool recheck = now >= next_recheck;
  if (recheck) next_recheck = now + kDirectoryRecheck;
  absl::Time wall = absl::Now();
  for (auto& [id, hub] : hubs_) {
    // A watch of the current period moves on when the period rolls over.
    bool rolled = hub.board.period().empty() && wall >= hub.period_end;
    if (recheck || rolled) hub.dirty = true;
  }
}

std::vector<RefreshCandidate> Watchers::DueLocked(std::chrono::steady_clock::time_point now,
                                                  std::chrono::steady_clock::time_point& wake) {
  std::vector<RefreshCandidate> due;
  for (auto& [id, hub] : hubs_) {
    if (!hub.dirty) continue;
    auto ready = hub.last_refresh + min_interval_;
    if (hub.urgent || ready <= now) {
      due.push_back({id, hub.org, hub.urgent, hub.last_refresh});
    } else {
      wake = std::min(wake, ready);
    }
  }
  return due;
}

void Watchers::Run() {
  auto next_recheck = std::chrono::steady_clock::now() + kDirectoryRecheck;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    MarkStaleLocked(now, next_recheck);
    // Wakes at least every second: period ends are checked on the wall clock.
    auto wake = std::min(next_recheck, now + std::chrono::seconds(1));
    std::vector<std::string> round = FairRound(DueLocked(now, wake));
    if (round.empty()) {
      cv_.wait_until(lock, wake);
      continue;
    }
    // One hub per org, then the loop looks again: a hub of another org
    // dirtied meanwhile waits for at most one hub of each busy org.
    lock.unlock();
    for (const std::string& id : round) Refresh(id);
    lock.lock();
  }
}

absl::Status Watchers::Validate(const std::string& org, const v1::Board& board,
                                const OrgCalendar& calendar, const BoardPage& page) {
  if (absl::Status period = CheckWatchablePeriod(board, calendar, absl::Now()); !period.ok()) {
    return period;
  }
  if (page.total > 0) return absl::OkStatus();
  return CheckEmptyBoardScope(store_, org, board, calendar);
}

void Watchers::Refresh(const std::string& hub_id) {
  std::string org;
  v1::Board board;
  bool validated = false;
  int max_n = 1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = hubs_.find(hub_id);
    if (it == hubs_.end()) return;
    Hub& hub = it->second;
    hub.dirty = false;
    hub.urgent = false;
    hub.last_refresh = std::chrono::steady_clock::now();
    org = hub.org;
    board = hub.board;
    validated = hub.validated;
    for (auto& [raw, reactor] : hub.reactors) max_n = std::max(max_n, reactor->top_n());
  }
  auto fail = [&](const absl::Status& status) {
    common::log::Warning(absl::StrCat("leaderboard: watch refresh failed: ", status.ToString()));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = hubs_.find(hub_id);
    if (it != hubs_.end()) it->second.dirty = true;  // retried after the interval
  };
  absl::StatusOr<OrgCalendar> calendar = store_.CachedCalendar(org);
  if (!calendar.ok()) return fail(calendar.status());
  bool teams = board.scope() == v1::SCOPE_TEAMS;
  absl::StatusOr<ResolvedBoard> resolved;
  if (board.season_id().empty()) {
    resolved = ResolveBoard(org, board, *calendar, absl::Now());
  } else if (store_.seasons() == nullptr) {
    resolved = absl::UnimplementedError("seasons are not served by this server");
  } else {
    // A season's board (issue 18): watchable while its definition is kept.
    absl::StatusOr<v1::Season> season =
        store_.seasons()->Get(org, board.season_id(), absl::Now());
    if (season.status().code() == absl::StatusCode::kUnavailable) return fail(season.status());
    if (season.ok()) {
      resolved = ResolveSeasonBoard(org, *season);
      teams = season->participants() == v1::SEASON_PARTICIPANTS_TEAMS;
      validated = true;
    } else {
      resolved = season.status();
    }
  }
  if (!resolved.ok()) return Reject(hub_id, resolved.status());
  KUDOS_CHECK(max_n >= 1 && max_n <= kMaxWatchTopN, "a hub reads at most the largest top_n");
  absl::StatusOr<BoardPage> page = store_.FirstPage(resolved->key, max_n);
  if (!page.ok()) return fail(page.status());
  KUDOS_CHECK(page->entries.size() <= static_cast<size_t>(max_n),
              "a board read returns at most the entries asked for");
  if (!validated) {
    absl::Status valid = Validate(org, board, *calendar, *page);
    if (valid.code() == absl::StatusCode::kUnavailable) return fail(valid);
    if (!valid.ok()) return Reject(hub_id, valid);
  }
  std::vector<std::string> ids;
  for (const RankedEntry& entry : page->entries) ids.push_back(entry.subject_id);
  absl::StatusOr<std::map<std::string, std::string>> names =
      store_.DisplayNames(org, teams, ids);
  if (!names.ok()) return fail(names.status());
  v1::WatchLeaderboardResponse full;
  full.set_period(resolved->period.key);
  ToProto(absl::Now(), full.mutable_snapshot_time());
  for (size_t i = 0; i < page->entries.size(); ++i) {
    const RankedEntry& entry = page->entries[i];
    KUDOS_CHECK(i == 0 || (entry.score <= page->entries[i - 1].score &&
                           entry.rank >= page->entries[i - 1].rank),
                "a board page is in rank order");
    v1::LeaderboardEntry* out = full.add_entries();
    out->set_rank(entry.rank);
    out->set_subject_id(entry.subject_id);
    out->set_display_name((*names)[entry.subject_id]);
    out->set_score(entry.score);
  }
  std::vector<std::shared_ptr<WatchReactor>> reactors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = hubs_.find(hub_id);
    if (it == hubs_.end()) return;
    Hub& hub = it->second;
    hub.key = resolved->key;
    hub.period = resolved->period.key;
    hub.period_end = board.window() == v1::WINDOW_ALL_TIME ? absl::InfiniteFuture()
                                                            : resolved->period.end;
    hub.validated = true;
    for (auto& [raw, reactor] : hub.reactors) reactors.push_back(reactor);
  }
  for (auto& reactor : reactors) {
    v1::WatchLeaderboardResponse snapshot;
    snapshot.set_period(full.period());
    *snapshot.mutable_snapshot_time() = full.snapshot_time();
    for (int i = 0; i < full.entries_size() && i < reactor->top_n(); ++i) {
      *snapshot.add_entries() = full.entries(i);
    }
    reactor->Offer(snapshot);
  }
}

}  // namespace leaderboard
