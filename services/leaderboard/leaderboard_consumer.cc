#include "services/leaderboard/leaderboard_consumer.h"

#include "services/leaderboard/seasons.h"

#include <map>
#include <set>
#include <thread>
#include <memory>
#include <deque>
#include <condition_variable>
#include <optional>
#include <random>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"
#include "common/log/log.h"
#include "services/leaderboard/apply_batch.h"
#include "kStoreSnapshotLua.h"
#include "kTrimStreamLua.h"
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

std::string StreamPrefix(StreamKind kind) { return kind == StreamKind::kKudos ? "k:" : "l:"; }


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
        // Live only: its badge and streak changes append their events.
        AddEmitOp(plans.back(), org, *kudos_events[i], calendar, events_);
      } else {
        // Unparsable: applied as nothing, so its stream's mark moves past it.
        plans.push_back(PlanLedgerEvent(org, StreamPrefix(items[i].kind) + items[i].entry->id,
                                        ledger::v1::LedgerEvent(), calendar));
      }
      plan_items.push_back(i);
    }
    std::vector<Store::PlanToApply> to_apply;
    to_apply.reserve(plans.size());
    for (size_t k = 0; k < plans.size(); ++k) {
      const std::string* org = items[plan_items[k]].org;
      to_apply.push_back({&plans[k], org, &directories->at(*org).calendar});
    }
    if (store_.Crash("planned")) return Store::Crashed("planned");
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

absl::StatusOr<bool> Projector::Skip(const std::string& org, StreamKind kind,
                                     const std::string& entry_id) {
  OrgCalendar calendar;  // an empty plan reads no calendar
  ApplyPlan plan = PlanLedgerEvent(org, StreamPrefix(kind) + entry_id, ledger::v1::LedgerEvent(),
                                   calendar);
  KUDOS_CHECK(plan.empty(), "a skipped entry changes nothing but its stream's mark");
  absl::StatusOr<std::vector<bool>> applied = store_.ApplyAll({{&plan, &org, &calendar}});
  if (!applied.ok()) return applied.status();
  return (*applied)[0];
}

absl::StatusOr<Projector::RebuildResult> Projector::Rebuild(const std::string& org) {
  std::string token = absl::StrCat(absl::ToUnixNanos(absl::Now()), "-", std::random_device()());
  if (absl::Status s = store_.BeginRebuild(org, token, rebuild_.lock_ttl, rebuild_.min_interval);
      !s.ok()) {
    return s;  // refused: nothing taken
  }
  absl::StatusOr<RebuildResult> result = Replay(org, token);
  // A failed rebuild gives its budget back: the admin may simply retry.
  absl::Status ended = store_.EndRebuild(org, token, /*refund_budget=*/!result.ok());
  if (!result.ok()) return result.status();
  if (!ended.ok()) return ended;
  return result;
}

absl::Status Projector::ReplayInto(ProjectionImage& image, const std::string& org,
                                   const std::string& /*token*/,
                                   const std::function<absl::Status()>& refresh,
                                   const std::pair<std::string, std::string>& until,
                                   RebuildResult& result) {
  // The rebuild's fast path (issue 15 part 5): projection_image.h.
  ReplayCounts counts;
  absl::Status replayed = ReplayStreams(store_, image, org, refresh, until, counts);
  result.events_read += counts.events_read;
  result.events_applied += counts.events_applied;
  return replayed;
}

absl::StatusOr<std::optional<ProjectionImage>> Projector::LoadSnapshot(const std::string& org) {
  absl::StatusOr<Reply> stored = store_.pool().Run({"GET", SnapshotKey(org)});
  if (!stored.ok()) return stored.status();
  if (stored->is_nil()) return std::optional<ProjectionImage>();
  absl::StatusOr<ProjectionImage> image = ProjectionImage::Parse(stored->str, absl::Now());
  if (!image.ok()) return image.status();
  // A snapshot stored by a version that wrote the now derived boards.
  if (int dropped = image->UpgradeDerivedBoards(org); dropped > 0) {
    common::log::Info(absl::StrCat("leaderboard: org '", org, "': ", dropped,
                                   " derived boards of an older snapshot dropped"));
  }
  // A snapshot stored by a version that kept one guard zset per stream.
  if (int64_t moved = image->SplitLegacyGuards(org); moved > 0) {
    common::log::Info(absl::StrCat("leaderboard: org '", org, "': ", moved,
                                   " applied ids of an older snapshot moved into their buckets"));
  }
  return std::optional<ProjectionImage>(*std::move(image));
}

const char* Projector::TrimStreamLua() { return kTrimStreamLua; }
const char* Projector::StoreSnapshotLua() { return kStoreSnapshotLua; }

std::string SnapshotKey(const std::string& org) {
  return absl::StrCat("lbctl:{", org, "}:snapshot");
}
std::string CompactLockKey(const std::string& org) {
  return absl::StrCat("lbctl:{", org, "}:compact");
}
std::string SnapshotMarksKey(const std::string& org) {
  return absl::StrCat("lbctl:{", org, "}:snapshot_marks");
}

absl::Status Projector::RefreshCompactLock(const std::string& org, const std::string& token) {
  absl::StatusOr<Reply> refreshed = store_.pool().Run(
      {"EVAL",
       "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
       "return redis.call('PEXPIRE', KEYS[1], ARGV[2])",
       "1", CompactLockKey(org), token, absl::StrCat(rebuild_.lock_ttl.count())});
  if (!refreshed.ok()) return refreshed.status();
  if (refreshed->integer != 1) {
    return absl::AbortedError("the compaction lock lapsed to another replica; compaction abandoned");
  }
  return absl::OkStatus();
}

absl::Status Projector::StoreSnapshot(const std::string& org, const std::string& token,
                                      const std::string& bytes, const std::string& kudos_mark,
                                      const std::string& ledger_mark) {
  absl::StatusOr<Reply> stored = store_.pool().Eval(
      store_snapshot_script_, {CompactLockKey(org), SnapshotKey(org), SnapshotMarksKey(org)},
      {token, bytes, kudos_mark.empty() ? "0-0" : kudos_mark,
       ledger_mark.empty() ? "0-0" : ledger_mark});
  if (!stored.ok()) return stored.status();
  if (stored->integer == 0) {
    return absl::AbortedError("the compaction lock lapsed to another replica; snapshot not stored");
  }
  if (stored->integer < 0) {
    return absl::FailedPreconditionError(
        "the stored snapshot covers newer stream entries than this one; snapshot not stored");
  }
  return absl::OkStatus();
}

absl::Status Projector::CheckTailsIntact(const std::string& org, const ProjectionImage& image) {
  for (char kind : {'k', 'l'}) {
    std::string stream = kind == 'k' ? KudosStream(org) : LedgerStream(org);
    absl::StatusOr<Reply> exists = store_.pool().Run({"EXISTS", stream});
    if (!exists.ok()) return exists.status();
    if (exists->integer == 0) continue;
    absl::StatusOr<Reply> info = store_.pool().Run({"XINFO", "STREAM", stream});
    if (!info.ok()) return info.status();
    // Redis 7: XDEL sets max-deleted-entry-id, XTRIM only moves the first
    // entry; entries-added > length says something was removed.
    std::map<std::string, const Reply*> fields;
    for (size_t i = 0; i + 1 < info->elements.size(); i += 2) {
      fields[info->elements[i].str] = &info->elements[i + 1];
    }
    for (const char* name : {"length", "entries-added", "max-deleted-entry-id",
                             "recorded-first-entry-id", "last-generated-id"}) {
      if (fields.count(name) == 0) {
        return absl::InternalError(absl::StrCat("XINFO STREAM without ", name, " (Redis 7 or later)"));
      }
    }
    std::string mark = image.Mark(org, kind);
    if (mark.empty()) mark = "0-0";
    // A trim stops below the mark, whose entry stays: anything removed
    // above the mark, or the mark's entry gone, is history no snapshot holds.
    std::string lost;
    if (StreamIdLess(mark, fields["max-deleted-entry-id"]->str)) {
      lost = absl::StrCat("entries up to ", fields["max-deleted-entry-id"]->str, " were deleted");
    } else if (fields["entries-added"]->integer > fields["length"]->integer) {
      if (fields["length"]->integer == 0 && StreamIdLess(mark, fields["last-generated-id"]->str)) {
        lost = absl::StrCat("it is empty, its last entry was ", fields["last-generated-id"]->str);
      } else if (fields["length"]->integer > 0 &&
                 StreamIdLess(mark, fields["recorded-first-entry-id"]->str)) {
        lost = absl::StrCat("it was trimmed to start at ", fields["recorded-first-entry-id"]->str);
      }
    }
    if (!lost.empty()) {
      return absl::DataLossError(absl::StrCat(
          "stream ", stream, " lost entries after the snapshot's mark ", mark, " (", lost,
          "): replaying would miss them; refused, the live boards are kept"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Projector::CompactResult> Projector::Compact(const std::string& org) {
  std::string token = absl::StrCat(absl::ToUnixNanos(absl::Now()), "-", std::random_device()());
  absl::StatusOr<Reply> locked = store_.pool().Run(
      {"SET", CompactLockKey(org), token, "NX", "PX", absl::StrCat(rebuild_.lock_ttl.count())});
  if (!locked.ok()) return locked.status();
  if (locked->is_nil()) return absl::AbortedError("another replica compacts this org");
  auto refresh = [&]() -> absl::Status { return RefreshCompactLock(org, token); };
  CompactResult out;
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<Reply> marks = store_.pool().Run({"HMGET", MarksKey(org), "k", "l"});
    if (!marks.ok()) return marks.status();
    if (marks->elements.size() != 2) return absl::InternalError("HMGET: unexpected reply");
    // A stream without a mark has nothing applied: nothing of it is covered.
    auto covered = [](const Reply& mark) { return mark.is_nil() ? "0-0" : mark.str; };
    absl::StatusOr<std::optional<ProjectionImage>> snapshot = LoadSnapshot(org);
    if (!snapshot.ok()) return snapshot.status();
    ProjectionImage image =
        snapshot->has_value() ? **std::move(snapshot) : ProjectionImage(absl::Now());
    if (absl::Status s = CheckTailsIntact(org, image); !s.ok()) return s;
    RebuildResult replayed;
    if (absl::Status s = ReplayInto(image, org, "", refresh,
                                    {covered(marks->elements[0]), covered(marks->elements[1])},
                                    replayed);
        !s.ok()) {
      return s;
    }
    out.events_read = replayed.events_read;
    absl::StatusOr<std::string> bytes = image.Serialize();
    if (!bytes.ok()) return bytes.status();
    if (absl::Status s =
            StoreSnapshot(org, token, *bytes, image.Mark(org, 'k'), image.Mark(org, 'l'));
        !s.ok()) {
      return s;
    }
    for (char stream : {'k', 'l'}) {
      std::string mark = image.Mark(org, stream);
      if (mark.empty()) continue;
      absl::StatusOr<int64_t> trimmed =
          TrimStream(org, stream == 'k' ? KudosStream(org) : LedgerStream(org), mark);
      if (!trimmed.ok()) return trimmed.status();
      out.trimmed += *trimmed;
    }
    return absl::OkStatus();
  }();
  // Released only if still ours (it may have lapsed to another replica).
  absl::StatusOr<Reply> released = store_.pool().Run(
      {"EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
       "1", CompactLockKey(org), token});
  if (!status.ok()) return status;
  if (!released.ok()) return released.status();
  return out;
}

absl::StatusOr<int64_t> Projector::TrimStream(const std::string& org, const std::string& stream,
                                              const std::string& covered) {
  std::string min_id = covered;
  absl::StatusOr<Reply> groups = store_.pool().Run({"XINFO", "GROUPS", stream});
  if (!groups.ok()) return groups.status();
  for (const Reply& group : groups->elements) {
    std::string name, last_delivered;
    for (size_t i = 0; i + 1 < group.elements.size(); i += 2) {
      if (group.elements[i].str == "name") name = group.elements[i + 1].str;
      if (group.elements[i].str == "last-delivered-id") last_delivered = group.elements[i + 1].str;
    }
    if (StreamIdLess(last_delivered, min_id)) min_id = last_delivered;
    absl::StatusOr<Reply> pending = store_.pool().Run({"XPENDING", stream, name});
    if (!pending.ok()) return pending.status();
    // Summary form: count, smallest id, greatest id, consumers.
    if (pending->elements.size() >= 2 && pending->elements[0].integer > 0 &&
        StreamIdLess(pending->elements[1].str, min_id)) {
      min_id = pending->elements[1].str;
    }
  }
  KUDOS_CHECK(!StreamIdLess(covered, min_id), "a trim never passes the snapshot's mark");
  // LIMIT 0 would mean no limit to Redis.
  KUDOS_CHECK(rebuild_.trim_limit > 0, "a trim removes a bounded number of entries");
  absl::StatusOr<Reply> trimmed =
      store_.pool().Eval(trim_script_, {RebuildLockKey(org), stream},
                         {min_id, absl::StrCat(rebuild_.trim_limit)});
  if (!trimmed.ok()) return trimmed.status();
  if (trimmed->integer < 0) return absl::AbortedError("a rebuild holds the org; trim later");
  return trimmed->integer;
}

namespace {
// The staging's pipelines: commands per round trip, round trips at once
// (Redis runs one connection's while the next is built).
constexpr int kStageBatch = 1000;
constexpr int kStageConnections = 3;
}  // namespace

absl::StatusOr<Projector::RebuildResult> Projector::Replay(const std::string& org,
                                                           const std::string& token) {
  RebuildResult result;
  auto refresh = [&] { return store_.RefreshRebuildLock(org, token, rebuild_.lock_ttl); };
  // The snapshot's image, then the streams after its marks (issue 15).
  absl::StatusOr<std::optional<ProjectionImage>> snapshot = LoadSnapshot(org);
  if (!snapshot.ok()) return snapshot.status();
  ProjectionImage image = snapshot->has_value() ? **std::move(snapshot) : ProjectionImage(absl::Now());
  if (absl::Status s = CheckTailsIntact(org, image); !s.ok()) return s;
  absl::Time started = absl::Now();
  if (absl::Status s = ReplayInto(image, org, token, refresh, {"", ""}, result); !s.ok()) return s;
  absl::Time replayed = absl::Now();
  // The new image goes under temporary keys first; the live boards stay as
  // they are until the swap below replaces them all at once.
  absl::StatusOr<std::vector<StagedKey>> staged =
      image.Stage(store_.pool(), absl::StrCat(StagingPrefix(org), token, ":"),
                  rebuild_.staging_ttl, kStageBatch, refresh, kStageConnections);
  if (!staged.ok()) return staged.status();
  // Where a rebuild's time goes (bench/README.md reads these).
  common::log::Info(absl::StrCat(
      "leaderboard: org '", org, "': replayed ", result.events_read, " entries into ",
      image.key_count(), " keys in ", absl::ToInt64Milliseconds(replayed - started),
      " ms, staged them in ", absl::ToInt64Milliseconds(absl::Now() - replayed), " ms"));
  KUDOS_CHECK(staged->size() == image.key_count(), "every key of the image is staged");
  absl::StatusOr<std::vector<std::string>> old_keys = store_.ProjectionKeys(org);
  if (!old_keys.ok()) return old_keys.status();
  // The org's events stream is not a projection: the swap keeps it as it is
  // (the rebuild appends nothing to it, nor takes anything away).
  old_keys->erase(std::remove(old_keys->begin(), old_keys->end(), EventsStream(org)),
                  old_keys->end());
  if (absl::Status s = refresh(); !s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(apply_mu_);
    absl::Status swapped = store_.SwapInProjections(org, token, *old_keys, *staged);
    store_.ForgetDirectory(org);
    if (!swapped.ok()) return swapped;
  }
  return result;
}

// ---------------------------------------------------------------- Compactor

Compactor::Compactor(Store& store, Projector& projector, Options options)
    : store_(store), projector_(projector), options_(options) {
  KUDOS_CHECK(options_.interval.count() > 0 && options_.min_entries > 0 && options_.min_bytes > 0,
              "compaction runs at an interval, past a stream length or size");
}

Compactor::~Compactor() { Stop(); }

void Compactor::Start() {
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      auto due = std::chrono::steady_clock::now() + options_.interval;
      while (!stop_.load() && std::chrono::steady_clock::now() < due) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (!stop_.load()) RunOnce();
    }
  });
}

void Compactor::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

bool CompactionDue(const CompactionSizes& sizes, const Compactor::Options& options) {
  if (sizes.stream_entries >= options.min_entries) return true;
  return sizes.marks_past_snapshot && sizes.stream_bytes > options.min_bytes &&
         sizes.stream_bytes > sizes.snapshot_bytes;
}

namespace {

// The org's sizes for CompactionDue.
absl::StatusOr<CompactionSizes> ReadCompactionSizes(Store& store, const std::string& org) {
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = store.pool().Pipeline(
      {{"XLEN", KudosStream(org)},
       {"XLEN", LedgerStream(org)},
       {"MEMORY", "USAGE", KudosStream(org)},
       {"MEMORY", "USAGE", LedgerStream(org)},
       {"STRLEN", SnapshotKey(org)},
       {"HMGET", MarksKey(org), "k", "l"},
       {"HMGET", SnapshotMarksKey(org), "k", "l"}});
  if (!replies.ok()) return replies.status();
  const std::vector<absl::StatusOr<Reply>>& r = *replies;
  for (size_t i : {0, 1, 4, 5, 6}) {
    if (!r[i].ok()) return r[i].status();
  }
  CompactionSizes sizes;
  sizes.stream_entries = r[0]->integer + r[1]->integer;
  // A Redis that refuses MEMORY (a managed service's ACL) leaves the length
  // bound alone in force. A missing stream (nil) reads as 0.
  for (size_t i : {2, 3}) {
    if (r[i].ok()) sizes.stream_bytes += r[i]->integer;
  }
  sizes.snapshot_bytes = r[4]->integer;
  for (size_t i = 0; i < 2 && i < r[5]->elements.size(); ++i) {
    const std::string& mark = r[5]->elements[i].str;
    const std::string covered =
        i < r[6]->elements.size() && !r[6]->elements[i].str.empty() ? r[6]->elements[i].str : "0-0";
    if (!mark.empty() && StreamIdLess(covered, mark)) sizes.marks_past_snapshot = true;
  }
  return sizes;
}

}  // namespace

absl::StatusOr<std::optional<Projector::CompactResult>> Compactor::CompactIfDue(
    const std::string& org) {
  absl::StatusOr<CompactionSizes> sizes = ReadCompactionSizes(store_, org);
  if (!sizes.ok()) return sizes.status();
  if (!CompactionDue(*sizes, options_)) return std::nullopt;
  absl::StatusOr<Projector::CompactResult> result = projector_.Compact(org);
  if (!result.ok()) return result.status();
  return *result;
}

int Compactor::RunOnce() {
  absl::StatusOr<std::vector<std::string>> orgs = store_.Orgs();
  if (!orgs.ok()) return 0;
  int compacted = 0;
  for (const std::string& org : *orgs) {
    if (stop_.load()) break;
    // One org's failure (or another replica compacting it) skips only it.
    absl::StatusOr<std::optional<Projector::CompactResult>> result = CompactIfDue(org);
    if (!result.ok()) {
      common::log::Warning(absl::StrCat("leaderboard: compacting org '", org, "': ",
                                        result.status().ToString()));
      continue;
    }
    if (!result->has_value()) continue;
    ++compacted;
    common::log::Info(absl::StrCat("leaderboard: compacted org '", org, "': ",
                                   (*result)->events_read, " entries into its snapshot, ",
                                   (*result)->trimmed, " trimmed"));
  }
  return compacted;
}

// ---------------------------------------------------------------- OrgRetries

OrgRetries::OrgRetries(Options options) : options_(options) {
  KUDOS_CHECK(options_.min_backoff.count() > 0 && options_.max_backoff >= options_.min_backoff,
              "backoff bounds are positive and ordered");
  KUDOS_CHECK(options_.max_attempts >= 1, "an entry is tried at least once");
}

bool OrgRetries::Live(const std::string& org) const { return orgs_.count(org) == 0; }

std::vector<std::string> OrgRetries::Due(Clock::time_point now) const {
  std::vector<std::string> due;
  for (const auto& [org, state] : orgs_) {
    if (state.due <= now) due.push_back(org);
  }
  return due;
}

std::optional<OrgRetries::Clock::time_point> OrgRetries::NextDue() const {
  std::optional<Clock::time_point> next;
  for (const auto& [org, state] : orgs_) {
    if (!next.has_value() || state.due < *next) next = state.due;
  }
  return next;
}

void OrgRetries::CatchUp(const std::string& org, Clock::time_point now) {
  State& state = orgs_[org];  // keeps the failure history of a waiting org
  if (state.failures == 0) state.due = now;
}

void OrgRetries::Progressed(const std::string& org, Clock::time_point now) {
  State& state = orgs_[org];
  state.due = now;
  state.failures = 0;
  state.isolate = false;
  state.entry_id.clear();
  state.attempts = 0;
}

void OrgRetries::Drained(const std::string& org) { orgs_.erase(org); }

bool OrgRetries::Failed(const std::string& org, const std::string& entry_id, bool counts,
                        Clock::time_point now) {
  State& state = orgs_[org];
  state.failures = std::min(state.failures + 1, 30);
  auto backoff = options_.min_backoff * (int64_t{1} << std::min(state.failures - 1, 20));
  state.due = now + std::min<std::chrono::milliseconds>(backoff, options_.max_backoff);
  if (!counts) return false;
  if (entry_id.empty()) {
    state.isolate = true;  // pin the failure on the oldest entry next time
    return false;
  }
  if (state.entry_id != entry_id) {
    state.entry_id = entry_id;
    state.attempts = 0;
  }
  ++state.attempts;
  return state.attempts >= options_.max_attempts;
}

int OrgRetries::NextCount(const std::string& org, int batch) const {
  auto it = orgs_.find(org);
  return it != orgs_.end() && it->second.isolate ? 1 : batch;
}

int OrgRetries::attempts(const std::string& org) const {
  auto it = orgs_.find(org);
  return it == orgs_.end() ? 0 : it->second.attempts;
}

// ---------------------------------------------------------------- Consumer

std::string DeadLetterStream(const std::string& org) {
  return absl::StrCat("lbctl:{", org, "}:deadletter");
}

namespace {

// ConsumerOptions::on_writes around one apply: begun for each org of the
// batch, ended on every way out (an error or a crash hook included), so a
// page cache is never left bypassed.
class WritesBracket {
 public:
  WritesBracket(const std::function<void(const std::string&, bool)>& on_writes,
                std::set<std::string> orgs)
      : on_writes_(on_writes), orgs_(std::move(orgs)) {
    if (!on_writes_) return;
    for (const std::string& org : orgs_) on_writes_(org, true);
  }
  ~WritesBracket() {
    if (!on_writes_) return;
    for (const std::string& org : orgs_) on_writes_(org, false);
  }
  WritesBracket(const WritesBracket&) = delete;
  WritesBracket& operator=(const WritesBracket&) = delete;

 private:
  const std::function<void(const std::string&, bool)>& on_writes_;
  const std::set<std::string> orgs_;
};

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Waiting cures these (a rebuild holds the org, Redis is away): they are
// retried without end and never dead-letter an entry.
bool Transient(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted ||
         status.code() == absl::StatusCode::kUnavailable;
}

// Entries of several streams of one org in stream-id order, cut where a
// stream that returned a full `count` may have more: nothing after the cut
// is applied before what may precede it.
std::vector<std::pair<size_t, StreamEntry>> MergeInOrder(
    std::vector<std::vector<StreamEntry>> per_stream, size_t count) {
  std::optional<std::pair<uint64_t, uint64_t>> horizon;
  for (const std::vector<StreamEntry>& entries : per_stream) {
    if (entries.size() < count || entries.empty()) continue;
    auto last = ParseStreamId(entries.back().id);
    if (!horizon.has_value() || last < *horizon) horizon = last;
  }
  std::vector<std::pair<size_t, StreamEntry>> merged;
  for (size_t s = 0; s < per_stream.size(); ++s) {
    for (StreamEntry& entry : per_stream[s]) {
      if (horizon.has_value() && ParseStreamId(entry.id) > *horizon) break;
      merged.emplace_back(s, std::move(entry));
    }
  }
  std::stable_sort(merged.begin(), merged.end(), [](const auto& a, const auto& b) {
    return ParseStreamId(a.second.id) < ParseStreamId(b.second.id);
  });
  return merged;
}

}  // namespace

Consumer::Consumer(Store& store, Projector& projector, ConsumerOptions options,
                   OnApplied on_applied)
    : store_(store),
      projector_(projector),
      options_(std::move(options)),
      on_applied_(std::move(on_applied)),
      reader_(options_.endpoint, options_.block + std::chrono::milliseconds(3000)),
      retries_(options_.retries),
      closer_(store, options_.events),
      sweep_(closer_) {
  KUDOS_CHECK(options_.batch >= 1 && options_.block.count() >= 1,
              "the consumer reads at least one entry and never blocks forever");
  // Before any thread starts: the apply script reads the group's pending
  // entries while a stream has no mark yet (upgrade).
  store_.set_consumer_group(options_.group);
  projector_.set_events(options_.events);
  closer_.set_seasons(options_.seasons);
  progress_ms_.store(SteadyMs());
}

Consumer::~Consumer() { Stop(); }

void Consumer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Consumer::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

std::chrono::milliseconds Consumer::SinceProgress() const {
  return std::chrono::milliseconds(SteadyMs() - progress_ms_.load());
}

void Consumer::MarkProgress() { progress_ms_.store(SteadyMs()); }

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
      if (absl::Status s = ClaimIdle(stream); !s.ok()) return s;
    }
    // Before its first batch: the years an older version's boards hold
    // (derived sub-scope all-time boards read them; rules.h BoardDerived).
    absl::StatusOr<int> seeded = store_.SeedYearsAfterUpgrade(org, absl::Now());
    if (!seeded.ok()) return seeded.status();
    if (*seeded > 0) {
      common::log::Info(absl::StrCat("leaderboard: org '", org, "': ", *seeded,
                                     " years of boards written before the upgrade listed"));
    }
    // And the applied ids an older version kept in one zset per stream, moved
    // into their buckets (the apply script refuses the org's batches until
    // that is done, here or by another replica).
    absl::StatusOr<int64_t> split = store_.SplitLegacyGuards(org);
    if (!split.ok()) return split.status();
    if (*split > 0) {
      common::log::Info(absl::StrCat("leaderboard: org '", org, "': ", *split,
                                     " applied ids of an older version moved into their buckets"));
    }
    streams_.insert(streams_.end(), added.begin(), added.end());
    known_orgs_.insert(org);
    // Entries pending at a previous life of this consumer come first.
    retries_.CatchUp(org, std::chrono::steady_clock::now());
    common::log::Info(absl::StrCat("leaderboard: consuming org '", org, "'"));
  }
  return absl::OkStatus();
}

absl::Status Consumer::ClaimIdle(const StreamRef& stream) {
  std::string cursor = "0-0";
  bool claimed = false;
  // Bounded: a stream's pending list is walked at most this many pages per pass.
  for (int page = 0; page < 100 && !stop_.load(); ++page) {
    absl::StatusOr<Reply> reply = store_.pool().Run(
        {"XAUTOCLAIM", stream.key, options_.group, options_.consumer_name,
         absl::StrCat(options_.claim_min_idle.count()), cursor, "COUNT",
         absl::StrCat(options_.batch), "JUSTID"});
    if (!reply.ok()) return reply.status();
    if (reply->elements.size() < 2) break;
    cursor = reply->elements[0].str;
    if (!reply->elements[1].elements.empty()) claimed = true;
    if (cursor == "0-0") break;
  }
  if (claimed) retries_.CatchUp(stream.org, std::chrono::steady_clock::now());
  return absl::OkStatus();
}

void Consumer::ClaimAll() {
  for (const StreamRef& stream : streams_) {
    if (absl::Status s = ClaimIdle(stream); !s.ok()) {
      common::log::Warning(absl::StrCat("leaderboard: XAUTOCLAIM ", stream.key, ": ", s.ToString()));
      return;
    }
  }
}

void Consumer::RetryDue() {
  for (const std::string& org : retries_.Due(std::chrono::steady_clock::now())) {
    if (stop_.load()) return;
    RetryPending(org);
  }
}

// The org's own pending entries (XREADGROUP from id 0), oldest first.
void Consumer::RetryPending(const std::string& org) {
  std::vector<const StreamRef*> streams;
  for (const StreamRef& stream : streams_) {
    if (stream.org == org) streams.push_back(&stream);
  }
  if (streams.empty()) {  // forgotten (streams reset): rediscovery catches it up
    retries_.Drained(org);
    return;
  }
  int count = retries_.NextCount(org, options_.batch);
  common::redis::Command command = {"XREADGROUP", "GROUP", options_.group, options_.consumer_name,
                                    "COUNT", absl::StrCat(count), "STREAMS"};
  for (const StreamRef* stream : streams) command.push_back(stream->key);
  for (size_t i = 0; i < streams.size(); ++i) command.push_back("0");
  absl::StatusOr<Reply> reply = store_.pool().Run(command);
  if (!reply.ok()) {
    if (ResetOnNoGroup(reply.status())) return;
    Defer(org, {}, reply.status());
    return;
  }
  std::vector<std::vector<StreamEntry>> per_stream(streams.size());
  for (const Reply& item : reply->elements) {
    if (item.elements.size() < 2) continue;
    for (size_t s = 0; s < streams.size(); ++s) {
      if (streams[s]->key == item.elements[0].str) per_stream[s] = ParseEntries(item.elements[1]);
    }
  }
  std::vector<std::pair<size_t, StreamEntry>> merged =
      MergeInOrder(std::move(per_stream), static_cast<size_t>(count));
  if (merged.empty()) {
    retries_.Drained(org);
    return;
  }
  Batch batch;
  for (auto& [s, entry] : merged) {
    batch.emplace_back(streams[s], std::move(entry));
    if (static_cast<int>(batch.size()) == count) break;
  }
  if (store_.Crash("read")) return;
  absl::Status status = CutAtGaps(batch);
  if (status.ok()) status = ApplyAndAck(batch);
  if (status.ok()) {
    retries_.Progressed(org, std::chrono::steady_clock::now());
  } else {
    Defer(org, batch, status);
  }
}

absl::Status Consumer::CutAtGaps(Batch& batch) {
  std::map<const StreamRef*, std::vector<std::string>> ids;
  for (const auto& [stream, entry] : batch) ids[stream].push_back(entry.id);
  std::vector<common::redis::Command> ranges;
  for (const auto& [stream, list] : ids) {
    ranges.push_back({"XRANGE", stream->key, list.front(), list.back(), "COUNT",
                      absl::StrCat(list.size())});
  }
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = store_.pool().Pipeline(ranges);
  if (!replies.ok()) return replies.status();
  // Per stream, the first id that is not the stream's next entry: there and
  // after, the stream has entries this consumer does not hold.
  std::map<const StreamRef*, std::string> cut;
  size_t r = 0;
  for (const auto& [stream, list] : ids) {
    const absl::StatusOr<Reply>& reply = (*replies)[r++];
    if (!reply.ok()) return reply.status();
    std::vector<StreamEntry> present = ParseEntries(*reply);
    for (size_t i = 0; i < list.size(); ++i) {
      if (i >= present.size() || present[i].id != list[i]) {
        cut[stream] = list[i];
        break;
      }
    }
  }
  if (cut.empty()) return absl::OkStatus();
  Batch kept;
  std::set<const StreamRef*> stopped;
  for (auto& item : batch) {
    auto it = cut.find(item.first);
    if (it != cut.end() && it->second == item.second.id) stopped.insert(item.first);
    if (stopped.count(item.first) == 0) kept.push_back(std::move(item));
  }
  batch = std::move(kept);
  return absl::OkStatus();
}

bool Consumer::ResetOnNoGroup(const absl::Status& status) {
  if (!absl::StrContains(status.message(), "NOGROUP")) return false;
  // A stream was deleted under us: set everything up again (every org
  // catches up on its pending entries once rediscovered).
  streams_.clear();
  known_orgs_.clear();
  held_.clear();  // still pending in the group: caught up on like the rest
  next_refresh_ = {};
  return true;
}

bool Consumer::ReadLive() {
  common::redis::Command command = {"XREADGROUP", "GROUP", options_.group,
                                    options_.consumer_name, "COUNT",
                                    absl::StrCat(options_.batch), "BLOCK", "", "STREAMS"};
  size_t live = 0;
  for (const StreamRef& stream : streams_) {
    if (!retries_.Live(stream.org)) continue;
    command.push_back(stream.key);
    ++live;
  }
  // Block no longer than until the next org's retry is due, and not at
  // all while entries are held: they wait for nothing but this read.
  auto block = options_.block;
  if (std::optional<std::chrono::steady_clock::time_point> due = retries_.NextDue()) {
    auto until = std::chrono::duration_cast<std::chrono::milliseconds>(
        *due - std::chrono::steady_clock::now());
    block = std::clamp(until, std::chrono::milliseconds(1), block);
  }
  if (!held_.empty()) block = std::chrono::milliseconds(1);
  if (live == 0) {
    held_.clear();  // every org waits: its pending entries, held ones too, are retried
    std::this_thread::sleep_for(std::min(block, std::chrono::milliseconds(100)));
    return false;
  }
  std::vector<Reply> per_streams;  // each [stream key, entries]
  if (store_.pool().mode() == common::redis::Pool::Mode::kCluster) {
    if (!ReadLivePerOrg(block, per_streams) && held_.empty()) return false;
  } else {
    command[7] = absl::StrCat(block.count());
    for (size_t i = 0; i < live; ++i) command.push_back(">");
    absl::StatusOr<Reply> reply = reader_.Run(command);
    if (!reply.ok()) {
      if (ResetOnNoGroup(reply.status())) return false;
      common::log::Warning(absl::StrCat("leaderboard: XREADGROUP: ", reply.status().ToString()));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      return false;
    }
    if (reply->is_nil() && held_.empty()) return false;
    if (!reply->is_nil()) per_streams = std::move(reply->elements);
  }
  Batch batch = TakeHeld();
  std::set<const StreamRef*> full;  // returned `batch` entries: may have more
  for (const Reply& per_stream : per_streams) {
    if (per_stream.elements.size() < 2) continue;
    const StreamRef* stream = Find(per_stream.elements[0].str);
    if (stream == nullptr) continue;
    std::vector<StreamEntry> entries = ParseEntries(per_stream.elements[1]);
    if (entries.size() >= static_cast<size_t>(options_.batch)) full.insert(stream);
    for (StreamEntry& entry : entries) batch.emplace_back(stream, std::move(entry));
  }
  if (store_.Crash("read")) return false;
  HoldPastHorizon(batch, full);
  // Each org's entries in stream-id order (what a rebuild replays), so an
  // org's settings change and the points posted around it are applied in
  // the same order live and on rebuild (see README).
  // Equal ids (two streams, one millisecond): kudos first, as the rebuild.
  std::stable_sort(batch.begin(), batch.end(), [](const auto& a, const auto& b) {
    auto a_id = ParseStreamId(a.second.id), b_id = ParseStreamId(b.second.id);
    if (a_id != b_id) return a_id < b_id;
    return a.first->kind == StreamKind::kKudos && b.first->kind != StreamKind::kKudos;
  });
  Apply(batch);
  return !batch.empty();
}

bool Consumer::ReadLivePerOrg(std::chrono::milliseconds block, std::vector<Reply>& per_streams) {
  // A cluster refuses one XREADGROUP over several slots (CROSSSLOT): one per
  // live org (its two streams share its slot), routed to its node by the
  // pool, without BLOCK; one org's failure skips only that org this pass.
  std::map<std::string, common::redis::Command> by_org;
  for (const StreamRef& stream : streams_) {
    if (!retries_.Live(stream.org)) continue;
    common::redis::Command& command = by_org[stream.org];
    if (command.empty()) {
      command = {"XREADGROUP", "GROUP", options_.group, options_.consumer_name,
                 "COUNT",      absl::StrCat(options_.batch), "STREAMS"};
    }
    command.push_back(stream.key);
  }
  for (auto& [org, command] : by_org) {
    if (stop_.load()) return false;
    size_t keys = command.size() - 7;
    for (size_t i = 0; i < keys; ++i) command.push_back(">");
    absl::StatusOr<Reply> reply = store_.pool().Run(command);
    if (!reply.ok()) {
      if (ResetOnNoGroup(reply.status())) return false;
      common::log::Warning(absl::StrCat("leaderboard: org '", org, "': XREADGROUP: ",
                                        reply.status().ToString()));
      continue;
    }
    for (Reply& per_stream : reply->elements) per_streams.push_back(std::move(per_stream));
  }
  if (per_streams.empty()) {
    // Nothing anywhere: pause as a BLOCK would, briefly (new entries wait at most this).
    std::this_thread::sleep_for(std::min(block, std::chrono::milliseconds(50)));
    return false;
  }
  return true;
}

Consumer::Batch Consumer::TakeHeld() {
  Batch batch;
  for (auto& [key, entries] : held_) {
    const StreamRef* stream = Find(key);
    // An org that left the live read catches up on its pending entries,
    // these among them (they were read, never acknowledged).
    if (stream == nullptr || !retries_.Live(stream->org)) continue;
    for (StreamEntry& entry : entries) batch.emplace_back(stream, std::move(entry));
  }
  held_.clear();
  return batch;
}

void Consumer::HoldPastHorizon(Batch& batch, const std::set<const StreamRef*>& full) {
  // Per org, the smallest last id among its streams that came back full:
  // past it, an entry of another stream may precede entries not read yet.
  std::map<std::string, std::pair<uint64_t, uint64_t>> horizon;
  std::map<const StreamRef*, std::pair<uint64_t, uint64_t>> last;
  for (const auto& [stream, entry] : batch) {
    last[stream] = std::max(last[stream], ParseStreamId(entry.id));
  }
  for (const StreamRef* stream : full) {
    auto it = horizon.find(stream->org);
    if (it == horizon.end() || last[stream] < it->second) horizon[stream->org] = last[stream];
  }
  if (horizon.empty()) return;
  Batch kept;
  kept.reserve(batch.size());
  size_t held = 0;
  for (auto& item : batch) {
    auto it = horizon.find(item.first->org);
    if (it != horizon.end() && ParseStreamId(item.second.id) > it->second) {
      held_[item.first->key].push_back(std::move(item.second));
      ++held;
    } else {
      kept.push_back(std::move(item));
    }
  }
  // Each full stream's own entries are all at or below its org's horizon.
  KUDOS_CHECK(kept.size() + held == batch.size() && !kept.empty(),
              "a live read past the horizon keeps at least one stream's entries");
  batch = std::move(kept);
}

void Consumer::Apply(const Batch& batch) {
  if (batch.empty()) return;
  std::map<std::string, Batch> by_org;
  for (const auto& item : batch) by_org[item.first->org].push_back(item);
  // Together first (fewest round trips); only when that fails is each org
  // applied alone, so one org's failure holds back no other.
  absl::Status together = ApplyAndAck(batch);
  if (together.ok()) return;
  // Redis itself is away (one endpoint for all orgs): every org waits, and
  // no org pays a timeout per try of the others.
  if (by_org.size() == 1 || together.code() == absl::StatusCode::kUnavailable) {
    for (const auto& [org, entries] : by_org) Defer(org, entries, together);
    return;
  }
  for (const auto& [org, entries] : by_org) {
    if (stop_.load()) return;
    if (absl::Status s = ApplyAndAck(entries); !s.ok()) Defer(org, entries, s);
  }
}

absl::Status Consumer::ApplyAndAck(const Batch& batch) {
  std::vector<Projector::BatchItem> items;
  items.reserve(batch.size());
  std::set<std::string> orgs;
  for (const auto& [stream, entry] : batch) {
    items.push_back({&stream->org, stream->kind, &entry});
    orgs.insert(stream->org);
  }
  absl::StatusOr<std::vector<Projector::Result>> results;
  {
    WritesBracket writes(options_.on_writes, std::move(orgs));
    std::lock_guard<std::mutex> lock(projector_.apply_mutex());
    results = projector_.ApplyBatch(items);
  }
  if (!results.ok()) return results.status();
  KUDOS_CHECK(results->size() == batch.size(), "one apply result per entry");
  // One XACK per stream; unacknowledged entries are re-read and deduplicated.
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
  if (store_.crashed()) return Store::Crashed("applied");
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> acked = store_.pool().Pipeline(commands);
  if (store_.Crash("acked")) return Store::Crashed("acked");
  if (!acked.ok()) {
    // Applied but still pending: each org re-reads its pending entries
    // (a no-op apply) and acknowledges them then.
    common::log::Warning(absl::StrCat("leaderboard: XACK failed: ", acked.status().message()));
    for (const auto& [org, boards] : touched) {
      retries_.CatchUp(org, std::chrono::steady_clock::now());
    }
  } else {
    MarkProgress();
  }
  if (on_applied_) {
    for (const auto& [org, boards] : touched) {
      if (!boards.empty()) on_applied_(org, std::vector<std::string>(boards.begin(), boards.end()));
    }
  }
  return absl::OkStatus();
}

void Consumer::Defer(const std::string& org, const Batch& entries, const absl::Status& status) {
  if (store_.crashed()) return;  // a crash stops dead: nothing after it runs
  bool counts = !Transient(status);
  std::string entry_id = entries.size() == 1 ? entries.front().second.id : "";
  bool give_up = retries_.Failed(org, entry_id, counts, std::chrono::steady_clock::now());
  common::log::Warning(absl::StrCat(
      "leaderboard: org '", org, "': applying ", entries.size(), " entries",
      entries.empty() ? "" : absl::StrCat(" from ", entries.front().second.id), " failed (",
      counts ? absl::StrCat("attempt ", retries_.attempts(org)) : "will wait",
      "): ", status.ToString()));
  if (!give_up) return;
  KUDOS_CHECK(entries.size() == 1, "only an entry tried alone is dead-lettered");
  if (absl::Status s = DeadLetter(*entries.front().first, entries.front().second, status,
                                  retries_.attempts(org));
      !s.ok()) {
    common::log::Warning(absl::StrCat("leaderboard: dead-lettering failed: ", s.ToString()));
    return;  // retried with the next attempt
  }
  retries_.Progressed(org, std::chrono::steady_clock::now());
  MarkProgress();
}

absl::Status Consumer::DeadLetter(const StreamRef& stream, const StreamEntry& entry,
                                  const absl::Status& reason, int attempts) {
  std::string dead = DeadLetterStream(stream.org);
  KUDOS_CHECK(absl::StrContains(dead, absl::StrCat("{", stream.org, "}")) &&
                  absl::StrContains(stream.key, absl::StrCat("{", stream.org, "}")),
              "an org's dead letters stay in its own slot");
  // The letter first, then the entry's mark moves past it (applied as
  // nothing, so the entries after it can follow), then the XACK: a crash in
  // between writes a second letter, never loses one.
  absl::StatusOr<Reply> added = store_.pool().Run(
      {"XADD", dead, "MAXLEN", "~", absl::StrCat(options_.dead_letter_max_len), "*", "stream",
       stream.key, "id", entry.id, "event", entry.event, "reason", reason.ToString(), "attempts",
       absl::StrCat(attempts), "time", absl::StrCat(absl::ToUnixMillis(absl::Now()))});
  if (!added.ok()) return added.status();
  if (store_.Crash("dead_lettered")) return Store::Crashed("dead_lettered");
  absl::StatusOr<bool> skipped;
  {
    std::lock_guard<std::mutex> lock(projector_.apply_mutex());
    skipped = projector_.Skip(stream.org, stream.kind, entry.id);
  }
  if (!skipped.ok()) return skipped.status();
  absl::StatusOr<Reply> acked = store_.pool().Run({"XACK", stream.key, options_.group, entry.id});
  if (!acked.ok()) return acked.status();
  common::log::Error(absl::StrCat("leaderboard: org '", stream.org, "': entry ", entry.id, " of ",
                                  stream.key, " dead-lettered to ", dead, " after ", attempts,
                                  " attempts: ", reason.ToString()));
  return absl::OkStatus();
}

bool Consumer::SweepPeriods() {
  if (stop_.load() || store_.crashed()) return false;  // the loop ends
  auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(options_.events.sweep_turn_budget);
  PeriodSweep::Turn turn = sweep_.RunTurn(known_orgs_, absl::Now(), [&] {
    return stop_.load() || store_.crashed() || std::chrono::steady_clock::now() >= deadline;
  });
  return turn.round_done;
}

void Consumer::Run() {
  while (!stop_.load() && !store_.crashed()) {
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
      if (next_claim_ != std::chrono::steady_clock::time_point{}) ClaimAll();
      next_claim_ = now + options_.claim_min_idle;
    }
    RetryDue();
    if (next_sweep_ == std::chrono::steady_clock::time_point{}) {
      next_sweep_ = now + absl::ToChronoMilliseconds(options_.events.sweep_interval);
    }
    if (options_.events.enabled && (sweep_in_round_ || now >= next_sweep_)) {
      if (!sweep_in_round_) {
        next_sweep_ = now + absl::ToChronoMilliseconds(options_.events.sweep_interval);
      }
      sweep_in_round_ = !SweepPeriods();
    }
    if (streams_.empty()) {
      MarkProgress();  // nothing to consume
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    bool read = ReadLive();
    // Idle with no org waiting: there is no backlog, which is progress too.
    if (!read && retries_.waiting() == 0) MarkProgress();
  }
}

}  // namespace leaderboard
