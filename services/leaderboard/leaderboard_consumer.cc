#include "services/leaderboard/leaderboard_consumer.h"

#include <random>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log/log.h"
#include "services/leaderboard/projection_image.h"

namespace leaderboard {

using common::redis::Reply;

std::pair<uint64_t, uint64_t> ParseStreamId(const std::string& id) {
  std::pair<std::string, std::string> parts = absl::StrSplit(id, absl::MaxSplits('-', 1));
  uint64_t ms = 0, seq = 0;
  if (!absl::SimpleAtoi(parts.first, &ms) || !absl::SimpleAtoi(parts.second, &seq)) return {0, 0};
  return {ms, seq};
}

// ---------------------------------------------------------------- Projector

namespace {

// Where ApplyEntryTo reads the directory and writes projections: Redis
// (live), or the rebuild's in-memory image. Both run the same plans.
class RedisTarget {
 public:
  explicit RedisTarget(Store& store) : store_(store) {}
  absl::StatusOr<OrgCalendar> Calendar(const std::string& org) { return store_.Calendar(org); }
  absl::StatusOr<std::map<std::string, kudos::v1::Person>> People(
      const std::string& org, const std::vector<std::string>& ids) {
    return store_.People(org, ids);
  }
  absl::StatusOr<bool> Apply(const ApplyPlan& plan) { return store_.Apply(plan); }
  absl::Status CheckGivingStreak(const std::string& org, const OrgCalendar& calendar,
                                 const ApplyPlan::StreakCheck& check) {
    return store_.CheckGivingStreak(org, calendar, check);
  }

 private:
  Store& store_;
};

class ImageTarget {
 public:
  explicit ImageTarget(ProjectionImage& image) : image_(image) {}
  absl::StatusOr<OrgCalendar> Calendar(const std::string& org) { return image_.Calendar(org); }
  absl::StatusOr<std::map<std::string, kudos::v1::Person>> People(
      const std::string& org, const std::vector<std::string>& ids) {
    return image_.People(org, ids);
  }
  absl::StatusOr<bool> Apply(const ApplyPlan& plan) { return image_.Apply(plan); }
  absl::Status CheckGivingStreak(const std::string& org, const OrgCalendar& calendar,
                                 const ApplyPlan::StreakCheck& check) {
    image_.CheckGivingStreak(org, calendar, check);
    return absl::OkStatus();
  }

 private:
  ProjectionImage& image_;
};

template <typename Target>
absl::StatusOr<Projector::Result> ApplyEntryTo(Target& target, const std::string& org,
                                               StreamKind kind, const StreamEntry& entry,
                                               const std::string& rebuild_token) {
  Projector::Result result;
  absl::StatusOr<OrgCalendar> calendar = target.Calendar(org);
  if (!calendar.ok()) return calendar.status();
  ApplyPlan plan;
  if (kind == StreamKind::kLedger) {
    ledger::v1::LedgerEvent event;
    if (!event.ParseFromString(entry.event)) {
      common::log::Warning(absl::StrCat("leaderboard: skipping unparsable entry ", entry.id,
                                        " of ", LedgerStream(org)));
      return result;
    }
    plan = PlanLedgerEvent(org, "l:" + entry.id, event, *calendar);
  } else {
    kudos::v1::KudosEvent event;
    if (!event.ParseFromString(entry.event)) {
      common::log::Warning(absl::StrCat("leaderboard: skipping unparsable entry ", entry.id,
                                        " of ", KudosStream(org)));
      return result;
    }
    absl::StatusOr<std::map<std::string, kudos::v1::Person>> people =
        target.People(org, PeopleOfEvent(event));
    if (!people.ok()) return people.status();
    plan = PlanKudosEvent(org, "k:" + entry.id, event, *calendar, [&](const std::string& id) {
      auto it = people->find(id);
      return it == people->end() ? std::string() : it->second.time_zone();
    });
  }
  plan.args[1] = rebuild_token;
  absl::StatusOr<bool> applied = target.Apply(plan);
  if (!applied.ok()) return applied.status();
  // Streak badges are re-checked on redelivery too (idempotent), so a crash
  // between the script and this check cannot lose one.
  for (const ApplyPlan::StreakCheck& check : plan.streak_checks) {
    if (absl::Status s = target.CheckGivingStreak(org, *calendar, check); !s.ok()) return s;
  }
  result.applied = *applied;
  if (result.applied) result.touched_boards = std::move(plan.touched_boards);
  return result;
}

}  // namespace

absl::StatusOr<Projector::Result> Projector::ApplyEntry(const std::string& org, StreamKind kind,
                                                        const StreamEntry& entry,
                                                        const std::string& rebuild_token) {
  RedisTarget target(store_);
  return ApplyEntryTo(target, org, kind, entry, rebuild_token);
}

absl::StatusOr<Projector::RebuildResult> Projector::Rebuild(const std::string& org) {
  std::string token = absl::StrCat(absl::ToUnixNanos(absl::Now()), "-", std::random_device()());
  if (absl::Status s = store_.AcquireRebuildLock(org, token); !s.ok()) return s;
  absl::StatusOr<RebuildResult> result = Replay(org, token);
  absl::Status released = store_.ReleaseRebuildLock(org, token);
  if (!result.ok()) return result.status();
  if (!released.ok()) return released;
  return result;
}

absl::StatusOr<Projector::RebuildResult> Projector::Replay(const std::string& org,
                                                           const std::string& token) {
  RebuildResult result;
  ProjectionImage image(absl::Now());
  ImageTarget target(image);
  struct Cursor {
    Cursor(StreamKind k, std::string stream) : kind(k), key(std::move(stream)) {}
    StreamKind kind;
    std::string key;
    std::string after = "-";
    std::vector<StreamEntry> buffer;
    size_t at = 0;
    bool done = false;
  };
  Cursor cursors[2] = {Cursor(StreamKind::kKudos, KudosStream(org)),
                       Cursor(StreamKind::kLedger, LedgerStream(org))};
  constexpr int kBatch = 500;
  auto fill = [&](Cursor& c) -> absl::Status {
    if (c.done || c.at < c.buffer.size()) return absl::OkStatus();
    absl::StatusOr<std::vector<StreamEntry>> batch = store_.Range(c.key, c.after, kBatch);
    if (!batch.ok()) return batch.status();
    c.buffer = *std::move(batch);
    c.at = 0;
    if (c.buffer.empty()) c.done = true;
    else c.after = c.buffer.back().id;
    return store_.RefreshRebuildLock(org, token);
  };
  while (true) {
    for (Cursor& c : cursors) {
      if (absl::Status s = fill(c); !s.ok()) return s;
    }
    Cursor* next = nullptr;
    for (Cursor& c : cursors) {
      if (c.done) continue;
      if (next == nullptr ||
          ParseStreamId(c.buffer[c.at].id) < ParseStreamId(next->buffer[next->at].id)) {
        next = &c;
      }
    }
    if (next == nullptr) break;
    const StreamEntry& entry = next->buffer[next->at++];
    absl::StatusOr<Result> applied = ApplyEntryTo(target, org, next->kind, entry, token);
    if (!applied.ok()) return applied.status();
    ++result.events_read;
    if (applied->applied) ++result.events_applied;
  }
  // Only now are the old projections replaced: the lock keeps every other
  // writer out, and this replica's consumer waits on apply_mutex.
  if (absl::Status s = store_.RefreshRebuildLock(org, token); !s.ok()) return s;
  absl::StatusOr<int64_t> dropped = store_.DropProjections(org);
  if (!dropped.ok()) return dropped.status();
  if (absl::Status s = image.Write(store_.pool(), 200,
                                   [&] { return store_.RefreshRebuildLock(org, token); });
      !s.ok()) {
    return s;
  }
  return result;
}

// ---------------------------------------------------------------- Consumer

Consumer::Consumer(Store& store, Projector& projector, ConsumerOptions options,
                   OnApplied on_applied)
    : store_(store),
      projector_(projector),
      options_(std::move(options)),
      on_applied_(std::move(on_applied)),
      reader_(options_.endpoint, options_.block + std::chrono::milliseconds(3000)) {}

Consumer::~Consumer() { Stop(); }

void Consumer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Consumer::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

const Consumer::StreamRef* Consumer::Find(const std::string& key) const {
  for (const StreamRef& stream : streams_) {
    if (stream.key == key) return &stream;
  }
  return nullptr;
}

absl::Status Consumer::DiscoverOrgs() {
  absl::StatusOr<std::vector<std::string>> orgs = store_.Orgs();
  if (!orgs.ok()) return orgs.status();
  for (const std::string& org : *orgs) {
    if (known_orgs_.count(org) > 0) continue;
    std::vector<StreamRef> added = {{org, StreamKind::kKudos, KudosStream(org)},
                                    {org, StreamKind::kLedger, LedgerStream(org)}};
    for (const StreamRef& stream : added) {
      absl::StatusOr<Reply> created = store_.pool().Run(
          {"XGROUP", "CREATE", stream.key, options_.group, "0", "MKSTREAM"});
      if (!created.ok() && !absl::StrContains(created.status().message(), "BUSYGROUP")) {
        return created.status();
      }
    }
    for (const StreamRef& stream : added) {
      if (absl::Status s = Recover(stream); !s.ok()) return s;
    }
    streams_.insert(streams_.end(), added.begin(), added.end());
    known_orgs_.insert(org);
    common::log::Info(absl::StrCat("leaderboard: consuming org '", org, "'"));
  }
  return absl::OkStatus();
}

// Our own pending entries (a previous life of this consumer), then entries
// pending too long at other consumers (dead ones).
absl::Status Consumer::Recover(const StreamRef& stream) {
  std::string after = "0";
  while (!stop_.load()) {
    absl::StatusOr<Reply> reply = store_.pool().Run(
        {"XREADGROUP", "GROUP", options_.group, options_.consumer_name, "COUNT",
         absl::StrCat(options_.batch), "STREAMS", stream.key, after});
    if (!reply.ok()) return reply.status();
    if (reply->is_nil() || reply->elements.empty() || reply->elements[0].elements.size() < 2) break;
    std::vector<StreamEntry> entries = ParseEntries(reply->elements[0].elements[1]);
    if (entries.empty()) break;
    for (const StreamEntry& entry : entries) {
      if (!Handle(stream, entry)) return absl::UnavailableError("stopping");
    }
    after = entries.back().id;
  }
  std::string cursor = "0-0";
  do {
    absl::StatusOr<Reply> reply = store_.pool().Run(
        {"XAUTOCLAIM", stream.key, options_.group, options_.consumer_name,
         absl::StrCat(options_.claim_min_idle.count()), cursor, "COUNT",
         absl::StrCat(options_.batch)});
    if (!reply.ok()) return reply.status();
    if (reply->elements.size() < 2) break;
    cursor = reply->elements[0].str;
    for (const StreamEntry& entry : ParseEntries(reply->elements[1])) {
      if (!Handle(stream, entry)) return absl::UnavailableError("stopping");
    }
  } while (cursor != "0-0" && !stop_.load());
  return absl::OkStatus();
}

bool Consumer::Handle(const StreamRef& stream, const StreamEntry& entry) {
  std::chrono::milliseconds backoff(50);
  while (!stop_.load()) {
    absl::StatusOr<Projector::Result> result;
    {
      std::lock_guard<std::mutex> lock(projector_.apply_mutex());
      result = projector_.ApplyEntry(stream.org, stream.kind, entry);
    }
    if (result.ok()) {
      absl::StatusOr<Reply> acked =
          store_.pool().Run({"XACK", stream.key, options_.group, entry.id});
      if (!acked.ok()) {
        // Unacknowledged entries are redelivered and deduplicated.
        common::log::Warning(absl::StrCat("leaderboard: XACK failed: ", acked.status().message()));
      }
      if (result->applied && on_applied_) on_applied_(stream.org, result->touched_boards);
      return true;
    }
    common::log::Warning(absl::StrCat("leaderboard: applying ", stream.key, " ", entry.id,
                                      " failed: ", result.status().ToString()));
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
  return false;
}

void Consumer::Run() {
  while (!stop_.load()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_refresh_) {
      if (absl::Status s = DiscoverOrgs(); !s.ok()) {
        if (stop_.load()) break;
        common::log::Warning(absl::StrCat("leaderboard: org discovery: ", s.ToString()));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      next_refresh_ = now + options_.org_refresh;
    }
    if (now >= next_claim_) {
      // Periodically adopt entries stuck at consumers that died meanwhile.
      if (next_claim_ != std::chrono::steady_clock::time_point{}) {
        for (const StreamRef& stream : streams_) {
          if (absl::Status s = Recover(stream); !s.ok()) break;
        }
      }
      next_claim_ = now + options_.claim_min_idle;
    }
    if (streams_.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    common::redis::Command command = {"XREADGROUP", "GROUP", options_.group,
                                      options_.consumer_name, "COUNT",
                                      absl::StrCat(options_.batch), "BLOCK",
                                      absl::StrCat(options_.block.count()), "STREAMS"};
    for (const StreamRef& stream : streams_) command.push_back(stream.key);
    for (size_t i = 0; i < streams_.size(); ++i) command.push_back(">");
    absl::StatusOr<Reply> reply = reader_.Run(command);
    if (!reply.ok()) {
      if (absl::StrContains(reply.status().message(), "NOGROUP")) {
        // A stream was deleted under us: set everything up again.
        streams_.clear();
        known_orgs_.clear();
        next_refresh_ = {};
        continue;
      }
      common::log::Warning(absl::StrCat("leaderboard: XREADGROUP: ", reply.status().ToString()));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    if (reply->is_nil()) continue;
    // Entries of all streams in stream-id order (what a rebuild replays), so
    // an org's settings change and the points posted around it are applied
    // in the same order live and on rebuild (one replica, no backlog beyond
    // one batch; see README).
    std::vector<std::pair<StreamRef, StreamEntry>> batch;
    for (const Reply& per_stream : reply->elements) {
      if (per_stream.elements.size() < 2) continue;
      const StreamRef* stream = Find(per_stream.elements[0].str);
      if (stream == nullptr) continue;
      for (StreamEntry& entry : ParseEntries(per_stream.elements[1])) {
        batch.emplace_back(*stream, std::move(entry));
      }
    }
    std::stable_sort(batch.begin(), batch.end(), [](const auto& a, const auto& b) {
      return ParseStreamId(a.second.id) < ParseStreamId(b.second.id);
    });
    for (const auto& [stream, entry] : batch) {
      if (!Handle(stream, entry)) return;
    }
  }
}

}  // namespace leaderboard
