#include "services/leaderboard/insights_store.h"

#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kInsightsApplyLua.h"
#include "services/leaderboard/leaderboard_rules.h"

namespace leaderboard::insights {

using common::redis::Command;
using common::redis::Reply;

namespace {

// People per HMGET.
constexpr size_t kChunk = 256;

int64_t IntOf(const Reply& reply) {
  if (reply.type == Reply::Type::kInteger) return reply.integer;
  int64_t v = 0;
  if (reply.type == Reply::Type::kString && absl::SimpleAtoi(reply.str, &v)) return v;
  return 0;
}

}  // namespace

InsightsStore::InsightsStore(common::redis::Pool& pool)
    : pool_(pool), apply_script_("leaderboard_insights_apply", kInsightsApplyLua) {}

absl::StatusOr<kudos::v1::OrgSettings> InsightsStore::PlanningSettings(const std::string& org) {
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies =
      pool_.Pipeline({{"GET", SettingsKey(org)}, {"GET", leaderboard::SettingsKey(org)}});
  if (!replies.ok()) return replies.status();
  for (const absl::StatusOr<Reply>& reply : *replies) {
    if (!reply.ok()) return reply.status();
    if (reply->is_nil()) continue;
    kudos::v1::OrgSettings settings;
    if (settings.ParseFromString(reply->str)) return settings;
  }
  return DefaultSettings();
}

absl::StatusOr<ApplyResult> InsightsStore::Apply(const std::string& org,
                                                 const std::vector<std::string>& ids,
                                                 const Planner& planner, int64_t pair_cap) {
  std::vector<std::string> keys = {HwmKey(org), KudosStream(org), LastKey(org), SettingsKey(org)};
  keys.insert(keys.end(), planner.ops().keys.begin(), planner.ops().keys.end());
  std::vector<std::string> args = {absl::StrCat(pair_cap), absl::StrCat(ids.size())};
  args.insert(args.end(), ids.begin(), ids.end());
  std::vector<std::string> rest = planner.Args();
  args.insert(args.end(), rest.begin(), rest.end());
  absl::StatusOr<Reply> reply = pool_.Eval(apply_script_, keys, args);
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 2) return absl::InternalError("insights_apply: unexpected reply");
  ApplyResult result;
  int64_t kind = IntOf(reply->elements[0]);
  if (kind == 1) {
    result.kind = ApplyResult::Kind::kApplied;
    result.mark = reply->elements[1].str;
  } else if (kind == 0) {
    result.kind = ApplyResult::Kind::kBelowMark;
    result.mark = reply->elements[1].str;
  } else {
    result.kind = ApplyResult::Kind::kGap;
    result.prefix = static_cast<int>(IntOf(reply->elements[1]));
  }
  return result;
}

absl::StatusOr<std::string> InsightsStore::Mark(const std::string& org) {
  absl::StatusOr<Reply> reply = pool_.Run({"HGET", HwmKey(org), "k"});
  if (!reply.ok()) return reply.status();
  return reply->is_nil() ? std::string() : reply->str;
}

absl::StatusOr<std::map<std::string, PersonCounters>> InsightsStore::Counters(
    const std::string& org, v1::Window window, const std::string& period,
    const std::vector<std::string>& members, const std::vector<std::string>& values) {
  std::string key = PeriodKey(org, window, period, "people");
  const std::vector<std::string> counters = {kGiven, kReceived, kPoints, kCross, kUniqueGivers};
  size_t per_person = counters.size() + values.size();
  std::vector<Command> commands;
  for (size_t at = 0; at < members.size(); at += kChunk) {
    Command command = {"HMGET", key};
    for (size_t i = at; i < std::min(members.size(), at + kChunk); ++i) {
      for (const std::string& c : counters) command.push_back(PersonField(members[i], c));
      for (const std::string& v : values) command.push_back(ValueField(members[i], v));
    }
    commands.push_back(std::move(command));
  }
  std::map<std::string, PersonCounters> out;
  if (commands.empty()) return out;
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  for (size_t chunk = 0; chunk < replies->size(); ++chunk) {
    const absl::StatusOr<Reply>& reply = (*replies)[chunk];
    if (!reply.ok()) return reply.status();
    size_t at = chunk * kChunk;
    size_t count = std::min(members.size(), at + kChunk) - at;
    if (reply->elements.size() != count * per_person) {
      return absl::InternalError("insights: unexpected HMGET reply");
    }
    for (size_t i = 0; i < count; ++i) {
      const Reply* r = &reply->elements[i * per_person];
      PersonCounters c;
      c.given = IntOf(r[0]);
      c.received = IntOf(r[1]);
      c.points = IntOf(r[2]);
      c.cross = IntOf(r[3]);
      c.unique_givers = IntOf(r[4]);
      bool any = c.given || c.received || c.points || c.cross || c.unique_givers;
      for (size_t v = 0; v < values.size(); ++v) {
        int64_t n = IntOf(r[counters.size() + v]);
        if (n != 0) {
          c.values[values[v]] = n;
          any = true;
        }
      }
      if (any) out.emplace(members[at + i], std::move(c));
    }
  }
  return out;
}

absl::StatusOr<std::vector<PairCounts>> InsightsStore::Candidates(const std::string& org,
                                                                 v1::Window window,
                                                                 const std::string& period) {
  absl::StatusOr<Reply> members = pool_.Run({"SMEMBERS", PeriodKey(org, window, period, "recip")});
  if (!members.ok()) return members.status();
  std::set<std::pair<std::string, std::string>> unique;
  for (const Reply& m : members->elements) {
    std::vector<std::string> parts = absl::StrSplit(m.str, '|');
    if (parts.size() != 2) continue;
    if (parts[1] < parts[0]) std::swap(parts[0], parts[1]);
    unique.emplace(parts[0], parts[1]);
  }
  std::vector<PairCounts> out;
  if (unique.empty()) return out;
  Command pairs = {"HMGET", PeriodKey(org, window, period, "pairs")};
  Command given = {"HMGET", PeriodKey(org, window, period, "people")};
  for (const auto& [a, b] : unique) {
    pairs.push_back(PairField(a, b));
    pairs.push_back(PairField(b, a));
    given.push_back(PersonField(a, kGiven));
    given.push_back(PersonField(b, kGiven));
  }
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline({pairs, given});
  if (!replies.ok()) return replies.status();
  for (const absl::StatusOr<Reply>& reply : *replies) {
    if (!reply.ok()) return reply.status();
    if (reply->elements.size() != 2 * unique.size()) {
      return absl::InternalError("insights: unexpected HMGET reply");
    }
  }
  const std::vector<Reply>& p = (*replies)[0]->elements;
  const std::vector<Reply>& g = (*replies)[1]->elements;
  size_t i = 0;
  for (const auto& [a, b] : unique) {
    PairCounts pc;
    pc.a = a;
    pc.b = b;
    pc.a_to_b = IntOf(p[2 * i]);
    pc.b_to_a = IntOf(p[2 * i + 1]);
    pc.a_given = IntOf(g[2 * i]);
    pc.b_given = IntOf(g[2 * i + 1]);
    out.push_back(std::move(pc));
    ++i;
  }
  return out;
}

absl::StatusOr<bool> InsightsStore::PairsTruncated(const std::string& org, v1::Window window,
                                                   const std::string& period) {
  absl::StatusOr<Reply> reply =
      pool_.Run({"HGET", PeriodKey(org, window, period, "meta"), "pairs_dropped"});
  if (!reply.ok()) return reply.status();
  return !reply->is_nil() && IntOf(*reply) > 0;
}

absl::StatusOr<std::map<std::string, int64_t>> InsightsStore::LastRecognized(
    const std::string& org, const std::vector<std::string>& people) {
  std::vector<Command> commands;
  for (size_t at = 0; at < people.size(); at += kChunk * 4) {
    Command command = {"HMGET", LastKey(org)};
    for (size_t i = at; i < std::min(people.size(), at + kChunk * 4); ++i) {
      command.push_back(people[i]);
    }
    commands.push_back(std::move(command));
  }
  std::map<std::string, int64_t> out;
  if (commands.empty()) return out;
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  size_t at = 0;
  for (const absl::StatusOr<Reply>& reply : *replies) {
    if (!reply.ok()) return reply.status();
    for (const Reply& r : reply->elements) {
      if (at >= people.size()) break;
      if (!r.is_nil()) out[people[at]] = IntOf(r);
      ++at;
    }
  }
  return out;
}

}  // namespace leaderboard::insights
