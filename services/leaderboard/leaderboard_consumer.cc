#include "services/leaderboard/leaderboard_consumer.h"

#include <map>
#include <optional>
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

// One entry into the rebuild's image, as ApplyBatch does it into Redis.
absl::StatusOr<Projector::Result> ApplyEntryTo(ProjectionImage& target, const std::string& org,
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
    std::map<std::string, kudos::v1::Person> people = target.People(org, PeopleOfEvent(event));
    plan = PlanKudosEvent(org, "k:" + entry.id, event, *calendar, [&](const std::string& id) {
      auto it = people.find(id);
      return it == people.end() ? std::string() : it->second.time_zone();
    });
  }
  plan.args[1] = rebuild_token;
  absl::StatusOr<bool> applied = target.Apply(plan);
  if (!applied.ok()) return applied.status();
  for (const ApplyPlan::StreakCheck& check : plan.streak_checks) {
    target.CheckGivingStreak(org, *calendar, check);
  }
  result.applied = *applied;
  if (result.applied) result.touched_boards = std::move(plan.touched_boards);
  return result;
}

}  // namespace

absl::StatusOr<std::vector<Projector::Result>> Projector::ApplyBatch(
    const std::vector<BatchItem>& items) {
  std::vector<Result> results(items.size());
  // Events parsed once; nullopt for entries skipped as unparsable.
  std::vector<std::optional<kudos::v1::KudosEvent>> kudos_events(items.size());
  std::vector<std::optional<ledger::v1::LedgerEvent>> ledger_events(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& item = items[i];
    bool parsed = item.kind == StreamKind::kLedger
                      ? ledger_events[i].emplace().ParseFromString(item.entry->event)
                      : kudos_events[i].emplace().ParseFromString(item.entry->event);
    if (!parsed) {
      kudos_events[i].reset();
      ledger_events[i].reset();
      common::log::Warning(absl::StrCat(
          "leaderboard: skipping unparsable entry ", item.entry->id, " of ",
          item.kind == StreamKind::kLedger ? LedgerStream(*item.org) : KudosStream(*item.org)));
    }
  }
  size_t begin = 0;
  while (begin < items.size()) {
    // The run: up to and including the first directory change.
    size_t end = begin;
    while (end < items.size()) {
      const auto& kudos_event = kudos_events[end++];
      if (kudos_event.has_value() && !kudos_event->has_kudos_sent()) break;
    }
    std::map<std::string, std::vector<std::string>> wanted;  // every org of the run
    for (size_t i = begin; i < end; ++i) {
      std::vector<std::string>& ids = wanted[*items[i].org];
      if (kudos_events[i].has_value()) {
        std::vector<std::string> people = PeopleOfEvent(*kudos_events[i]);
        ids.insert(ids.end(), people.begin(), people.end());
      }
    }
    for (auto& [org, ids] : wanted) {
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    }
    absl::StatusOr<std::map<std::string, Store::Directory>> directories =
        store_.ReadDirectories(wanted);
    if (!directories.ok()) return directories.status();
    std::vector<ApplyPlan> plans;
    std::vector<size_t> plan_items;
    plans.reserve(end - begin);
    for (size_t i = begin; i < end; ++i) {
      const std::string& org = *items[i].org;
      const Store::Directory& directory = directories->at(org);
      const OrgCalendar& calendar = directory.calendar;
      if (ledger_events[i].has_value()) {
        plans.push_back(
            PlanLedgerEvent(org, "l:" + items[i].entry->id, *ledger_events[i], calendar));
      } else if (kudos_events[i].has_value()) {
        const auto& known = directory.people;
        plans.push_back(PlanKudosEvent(org, "k:" + items[i].entry->id, *kudos_events[i],
                                       calendar, [&](const std::string& id) {
                                         auto it = known.find(id);
                                         return it == known.end() ? std::string()
                                                                  : it->second.time_zone();
                                       }));
      } else {
        continue;
      }
      plan_items.push_back(i);
    }
    std::vector<Store::PlanToApply> to_apply;
    to_apply.reserve(plans.size());
    for (size_t k = 0; k < plans.size(); ++k) {
      const std::string* org = items[plan_items[k]].org;
      to_apply.push_back({&plans[k], org, &directories->at(*org).calendar});
    }
    absl::StatusOr<std::vector<bool>> applied = store_.ApplyAll(to_apply);
    if (!applied.ok()) return applied.status();
    for (size_t k = 0; k < plans.size(); ++k) {
      Result& result = results[plan_items[k]];
      result.applied = (*applied)[k];
      // Boards of entries seen before too: a retried batch still wakes the
      // watchers of entries its first attempt applied (a spare wake-up is
      // only a re-read).
      result.touched_boards = std::move(plans[k].touched_boards);
    }
    if (kudos_events[end - 1].has_value() && !kudos_events[end - 1]->has_kudos_sent()) {
      store_.ForgetDirectory(*items[end - 1].org);
    }
    begin = end;
  }
  return results;
}

absl::StatusOr<Projector::RebuildResult> Projector::Rebuild(const std::string& org) {
  std::string token = absl::StrCat(absl::ToUnixNanos(absl::Now()), "-", std::random_device()());
  if (absl::Status s = store_.AcquireRebuildLock(org, token); !s.ok()) return s;
  absl::StatusOr<RebuildResult> result = Replay(org, token);
  store_.ForgetDirectory(org);
  absl::Status released = store_.ReleaseRebuildLock(org, token);
  if (!result.ok()) return result.status();
  if (!released.ok()) return released;
  return result;
}

absl::StatusOr<Projector::RebuildResult> Projector::Replay(const std::string& org,
                                                           const std::string& token) {
  RebuildResult result;
  ProjectionImage image(absl::Now());
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
    absl::StatusOr<Result> applied = ApplyEntryTo(image, org, next->kind, entry, token);
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
    after = entries.back().id;
    if (!HandleAll(stream, std::move(entries))) return absl::UnavailableError("stopping");
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
    if (!HandleAll(stream, ParseEntries(reply->elements[1]))) {
      return absl::UnavailableError("stopping");
    }
  } while (cursor != "0-0" && !stop_.load());
  return absl::OkStatus();
}

bool Consumer::HandleAll(const StreamRef& stream, std::vector<StreamEntry> entries) {
  std::vector<std::pair<const StreamRef*, StreamEntry>> batch;
  batch.reserve(entries.size());
  for (StreamEntry& entry : entries) batch.emplace_back(&stream, std::move(entry));
  return HandleBatch(batch);
}

bool Consumer::HandleBatch(const std::vector<std::pair<const StreamRef*, StreamEntry>>& batch) {
  if (batch.empty()) return true;
  std::vector<Projector::BatchItem> items;
  items.reserve(batch.size());
  for (const auto& [stream, entry] : batch) items.push_back({&stream->org, stream->kind, &entry});
  std::chrono::milliseconds backoff(50);
  while (!stop_.load()) {
    absl::StatusOr<std::vector<Projector::Result>> results;
    {
      std::lock_guard<std::mutex> lock(projector_.apply_mutex());
      results = projector_.ApplyBatch(items);
    }
    if (results.ok()) {
      // One XACK per stream; unacknowledged entries are redelivered and
      // deduplicated.
      std::map<std::string, common::redis::Command> acks;
      std::map<std::string, std::set<std::string>> touched;
      for (size_t i = 0; i < batch.size(); ++i) {
        const StreamRef& stream = *batch[i].first;
        common::redis::Command& ack = acks[stream.key];
        if (ack.empty()) ack = {"XACK", stream.key, options_.group};
        ack.push_back(batch[i].second.id);
        const std::vector<std::string>& boards = (*results)[i].touched_boards;
        touched[stream.org].insert(boards.begin(), boards.end());
      }
      std::vector<common::redis::Command> commands;
      for (auto& [key, ack] : acks) commands.push_back(std::move(ack));
      absl::StatusOr<std::vector<absl::StatusOr<Reply>>> acked = store_.pool().Pipeline(commands);
      if (!acked.ok()) {
        common::log::Warning(absl::StrCat("leaderboard: XACK failed: ", acked.status().message()));
      }
      if (on_applied_) {
        for (const auto& [org, boards] : touched) {
          if (!boards.empty()) on_applied_(org, std::vector<std::string>(boards.begin(), boards.end()));
        }
      }
      return true;
    }
    common::log::Warning(absl::StrCat("leaderboard: applying ", batch.size(), " entries from ",
                                      batch.front().first->key, " ", batch.front().second.id,
                                      " failed: ", results.status().ToString()));
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
    std::vector<std::pair<const StreamRef*, StreamEntry>> batch;
    for (const Reply& per_stream : reply->elements) {
      if (per_stream.elements.size() < 2) continue;
      const StreamRef* stream = Find(per_stream.elements[0].str);
      if (stream == nullptr) continue;
      for (StreamEntry& entry : ParseEntries(per_stream.elements[1])) {
        batch.emplace_back(stream, std::move(entry));
      }
    }
    std::stable_sort(batch.begin(), batch.end(), [](const auto& a, const auto& b) {
      return ParseStreamId(a.second.id) < ParseStreamId(b.second.id);
    });
    if (!HandleBatch(batch)) return;
  }
}

}  // namespace leaderboard
