#include "services/leaderboard/leaderboard_watch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"

namespace leaderboard {

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
                                                   int top_n) {
  std::shared_ptr<WatchReactor> reactor(new WatchReactor(watchers, std::move(hub_id), top_n));
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

Watchers::Watchers(Store& store, std::chrono::milliseconds min_interval)
    : store_(store), min_interval_(min_interval) {}

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
  size_t n = 0;
  for (const auto& [id, hub] : hubs_) n += hub.reactors.size();
  return n;
}

void Watchers::Register(const std::string& org, const v1::Board& board,
                        std::shared_ptr<WatchReactor> reactor) {
  bool refused = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    refused = stopping_;
    if (!refused) {
      Hub& hub = hubs_[reactor->hub_id()];
      if (hub.reactors.empty()) {
        hub.org = org;
        hub.board = board;
      }
      hub.reactors[reactor.get()] = reactor;
      hub.dirty = true;
      hub.urgent = true;
    }
  }
  if (refused) {
    reactor->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    return;
  }
  cv_.notify_all();
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
  }
  if (it->second.reactors.empty()) hubs_.erase(it);
}

void Watchers::Touched(const std::string& org, const std::vector<std::string>& board_keys) {
  bool any = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, hub] : hubs_) {
      if (hub.org != org || hub.dirty) continue;
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, hub] : hubs_) {
      if (hub.org == org) hub.dirty = true;
    }
  }
  cv_.notify_all();
}

void Watchers::Run() {
  // Boards on the current period are re-resolved now and then, so a
  // watcher moves on to the new day / week when the period rolls over.
  constexpr auto kRollCheck = std::chrono::seconds(5);
  auto next_roll_check = std::chrono::steady_clock::now() + kRollCheck;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_roll_check) {
      for (auto& [id, hub] : hubs_) {
        if (hub.board.period().empty()) hub.dirty = true;
      }
      next_roll_check = now + kRollCheck;
    }
    std::vector<std::string> due;
    auto wake = std::min(next_roll_check, now + std::chrono::seconds(1));
    for (auto& [id, hub] : hubs_) {
      if (!hub.dirty) continue;
      auto ready = hub.last_refresh + min_interval_;
      if (hub.urgent || ready <= now) {
        due.push_back(id);
      } else {
        wake = std::min(wake, ready);
      }
    }
    if (due.empty()) {
      cv_.wait_until(lock, wake);
      continue;
    }
    lock.unlock();
    for (const std::string& id : due) Refresh(id);
    lock.lock();
  }
}

void Watchers::Refresh(const std::string& hub_id) {
  std::string org;
  v1::Board board;
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
  absl::StatusOr<ResolvedBoard> resolved = ResolveBoard(org, board, *calendar, absl::Now());
  if (!resolved.ok()) return fail(resolved.status());
  absl::StatusOr<BoardPage> page = store_.FirstPage(resolved->key, max_n);
  if (!page.ok()) return fail(page.status());
  std::vector<std::string> ids;
  for (const RankedEntry& entry : page->entries) ids.push_back(entry.subject_id);
  absl::StatusOr<std::map<std::string, std::string>> names =
      store_.DisplayNames(org, board.scope() == v1::SCOPE_TEAMS, ids);
  if (!names.ok()) return fail(names.status());
  v1::WatchLeaderboardResponse full;
  full.set_period(resolved->period.key);
  ToProto(absl::Now(), full.mutable_snapshot_time());
  for (const RankedEntry& entry : page->entries) {
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
    it->second.key = resolved->key;
    it->second.period = resolved->period.key;
    for (auto& [raw, reactor] : it->second.reactors) reactors.push_back(reactor);
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
