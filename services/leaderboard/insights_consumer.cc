#include "services/leaderboard/insights_consumer.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "services/leaderboard/leaderboard_rules.h"

namespace leaderboard::insights {

using common::redis::Command;
using common::redis::Reply;

namespace {

// "ms-seq" as a pair for ordering; malformed ids sort first.
std::pair<uint64_t, uint64_t> IdOf(const std::string& id) {
  std::pair<uint64_t, uint64_t> out{0, 0};
  size_t dash = id.find('-');
  try {
    out.first = std::stoull(id.substr(0, dash));
    if (dash != std::string::npos) out.second = std::stoull(id.substr(dash + 1));
  } catch (...) {
    return {0, 0};
  }
  return out;
}

}  // namespace

Consumer::Consumer(Store& store, InsightsStore& insights, ConsumerOptions options)
    : store_(store), insights_(insights), options_(std::move(options)) {}

Consumer::~Consumer() { Stop(); }

void Consumer::Start() {
  thread_ = std::thread([this] {
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
      }
      int64_t applied = RunOnce();
      if (applied == 0) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait_for(lock, options_.idle_wait, [this] { return stop_; });
      }
    }
  });
}

void Consumer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t Consumer::RunOnce() {
  auto now = std::chrono::steady_clock::now();
  if (org_list_.empty() || now - orgs_read_ >= std::chrono::seconds(1)) {
    absl::StatusOr<std::vector<std::string>> orgs = store_.Orgs();
    if (!orgs.ok()) {
      common::log::Warning(absl::StrCat("insights: orgs: ", orgs.status().ToString()));
      return 0;
    }
    org_list_ = *std::move(orgs);
    orgs_read_ = now;
  }
  int64_t total = 0;
  for (const std::string& org : org_list_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
    }
    OrgState& state = orgs_[org];
    if (std::chrono::steady_clock::now() < state.next_try) continue;
    absl::StatusOr<int64_t> applied = Step(org, state);
    if (applied.ok()) {
      state.failures = 0;
      total += *applied;
      continue;
    }
    // This org alone waits; the others carry on in this round. What it read
    // stays pending with us: read it again first.
    state.pending = true;
    state.failures = std::min(state.failures + 1, 20);
    auto wait = options_.min_backoff * (1LL << std::min(state.failures - 1, 10));
    state.next_try = std::chrono::steady_clock::now() +
                     std::min<std::chrono::milliseconds>(
                         std::chrono::duration_cast<std::chrono::milliseconds>(wait),
                         options_.max_backoff);
    if (applied.status().code() != absl::StatusCode::kAborted || state.failures > 3) {
      common::log::Warning(absl::StrCat("insights: org '", org, "': ", applied.status().ToString()));
    }
  }
  return total;
}

absl::StatusOr<std::vector<StreamEntry>> Consumer::Read(const std::string& org,
                                                        const std::string& from) {
  absl::StatusOr<Reply> reply = store_.pool().Run(
      {"XREADGROUP", "GROUP", options_.group, options_.consumer_name, "COUNT",
       absl::StrCat(options_.batch), "STREAMS", KudosStream(org), from});
  if (!reply.ok()) return reply.status();
  std::vector<StreamEntry> out;
  for (const Reply& stream : reply->elements) {
    if (stream.elements.size() < 2) continue;
    std::vector<StreamEntry> entries = ParseEntries(stream.elements[1]);
    out.insert(out.end(), entries.begin(), entries.end());
  }
  return out;
}

absl::Status Consumer::Ack(const std::string& org, const std::vector<std::string>& ids) {
  if (ids.empty()) return absl::OkStatus();
  Command command = {"XACK", KudosStream(org), options_.group};
  command.insert(command.end(), ids.begin(), ids.end());
  absl::StatusOr<Reply> reply = store_.pool().Run(command);
  return reply.ok() ? absl::OkStatus() : reply.status();
}

absl::StatusOr<int64_t> Consumer::Step(const std::string& org, OrgState& state) {
  const std::string stream = KudosStream(org);
  if (!state.group) {
    absl::StatusOr<Reply> created =
        store_.pool().Run({"XGROUP", "CREATE", stream, options_.group, "0", "MKSTREAM"});
    if (!created.ok() && !absl::StrContains(created.status().message(), "BUSYGROUP")) {
      return created.status();
    }
    state.group = true;
  }
  auto now = std::chrono::steady_clock::now();
  if (now - state.last_claim >= options_.claim_every) {
    state.last_claim = now;
    // Entries a dead consumer of the group held: ours now, read below.
    absl::StatusOr<Reply> claimed = store_.pool().Run(
        {"XAUTOCLAIM", stream, options_.group, options_.consumer_name,
         absl::StrCat(options_.claim_min_idle.count()), "0-0", "COUNT",
         absl::StrCat(options_.batch), "JUSTID"});
    if (!claimed.ok()) return claimed.status();
    if (claimed->elements.size() >= 2 && !claimed->elements[1].elements.empty()) {
      state.pending = true;
    }
  }
  std::vector<StreamEntry> entries;
  if (state.pending) {
    absl::StatusOr<std::vector<StreamEntry>> own = Read(org, "0");
    if (!own.ok()) return own.status();
    entries = *std::move(own);
    if (entries.empty()) state.pending = false;
  }
  if (entries.empty()) {
    absl::StatusOr<std::vector<StreamEntry>> fresh = Read(org, ">");
    if (!fresh.ok()) return fresh.status();
    entries = *std::move(fresh);
  }
  if (entries.empty()) return 0;
  return Apply(org, std::move(entries), state);
}

absl::StatusOr<int64_t> Consumer::Apply(const std::string& org, std::vector<StreamEntry> entries,
                                        OrgState& state) {
  std::sort(entries.begin(), entries.end(), [](const StreamEntry& a, const StreamEntry& b) {
    return IdOf(a.id) < IdOf(b.id);
  });
  std::vector<std::string> done;  // to acknowledge
  int64_t applied = 0;
  for (int attempt = 0; attempt < 8 && !entries.empty(); ++attempt) {
    absl::StatusOr<kudos::v1::OrgSettings> settings = insights_.PlanningSettings(org);
    if (!settings.ok()) return settings.status();
    Planner planner(org, *settings);
    std::vector<std::string> ids;
    for (const StreamEntry& entry : entries) {
      planner.Add(entry.event);
      ids.push_back(entry.id);
    }
    absl::StatusOr<ApplyResult> result = insights_.Apply(org, ids, planner, options_.pair_cap);
    if (!result.ok()) return result.status();
    switch (result->kind) {
      case ApplyResult::Kind::kApplied: {
        done.insert(done.end(), ids.begin(), ids.end());
        applied += static_cast<int64_t>(ids.size());
        entries.clear();
        break;
      }
      case ApplyResult::Kind::kBelowMark: {
        // Applied before (a redelivery, a claim, a group reset): acknowledge.
        auto mark = IdOf(result->mark);
        auto first_new = std::find_if(entries.begin(), entries.end(), [&](const StreamEntry& e) {
          return IdOf(e.id) > mark;
        });
        for (auto it = entries.begin(); it != first_new; ++it) done.push_back(it->id);
        entries.erase(entries.begin(), first_new);
        break;
      }
      case ApplyResult::Kind::kGap: {
        if (result->prefix <= 0) {
          state.pending = true;  // ours stay pending; read again later
          if (absl::Status s = Ack(org, done); !s.ok()) return s;
          return absl::AbortedError(absl::StrCat(
              "insights: entries before ", entries.front().id,
              " are not applied yet (held by another consumer); waiting"));
        }
        // Apply the run that follows the mark; the rest stays pending.
        entries.resize(static_cast<size_t>(result->prefix));
        state.pending = true;
        break;
      }
    }
  }
  if (absl::Status s = Ack(org, done); !s.ok()) return s;
  return applied;
}

}  // namespace leaderboard::insights
