#include "services/leaderboard/insights_store.h"

#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "common/check/check.h"
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
// Commands per pipelined write (a year's read may need thousands).
constexpr size_t kCommandsPerPipeline = 512;

// The prefixes of the written periods a period is read from.
std::vector<std::string> Prefixes(const std::string& org, v1::Window window,
                                  const std::string& period) {
  std::vector<std::string> out;
  for (const std::string& p : SourcePeriods(window, period)) {
    out.push_back(PeriodPrefix(org, SourceWindow(window), p));
  }
  return out;
}

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

absl::StatusOr<std::vector<Reply>> InsightsStore::RunAll(const std::vector<Command>& commands) {
  std::vector<Reply> out;
  out.reserve(commands.size());
  for (size_t at = 0; at < commands.size(); at += kCommandsPerPipeline) {
    std::vector<Command> chunk(commands.begin() + static_cast<std::ptrdiff_t>(at),
                               commands.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                      commands.size(), at + kCommandsPerPipeline)));
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline(chunk);
    if (!replies.ok()) return replies.status();
    for (absl::StatusOr<Reply>& reply : *replies) {
      if (!reply.ok()) return reply.status();
      out.push_back(*std::move(reply));
    }
  }
  KUDOS_CHECK(out.size() == commands.size(), "insights: one reply per command");
  return out;
}

absl::StatusOr<std::map<std::string, int64_t>> InsightsStore::Ids(
    const std::string& org, const std::vector<std::string>& names) {
  std::vector<Command> commands;
  for (size_t at = 0; at < names.size(); at += kChunk * 4) {
    Command command = {"HMGET", IdsKey(org)};
    for (size_t i = at; i < std::min(names.size(), at + kChunk * 4); ++i) command.push_back(names[i]);
    commands.push_back(std::move(command));
  }
  absl::StatusOr<std::vector<Reply>> replies = RunAll(commands);
  if (!replies.ok()) return replies.status();
  std::map<std::string, int64_t> out;
  size_t at = 0;
  for (const Reply& reply : *replies) {
    for (const Reply& r : reply.elements) {
      if (at < names.size() && !r.is_nil()) out[names[at]] = IntOf(r);
      ++at;
    }
  }
  if (at != names.size()) return absl::InternalError("insights: unexpected HMGET reply of the ids");
  return out;
}

absl::StatusOr<std::map<std::string, int64_t>> InsightsStore::Intern(
    const std::string& org, const std::vector<std::string>& names) {
  absl::StatusOr<std::map<std::string, int64_t>> ids = Ids(org, names);
  if (!ids.ok()) return ids.status();
  std::vector<std::string> missing;
  for (const std::string& name : names) {
    if (!ids->count(name)) missing.push_back(name);
  }
  if (missing.empty()) return ids;
  // Plain commands, no script: a number is taken (HINCRBY) and offered
  // (HSETNX); a replica that lost the race reads the winner's id, and its
  // number stays unused.
  std::vector<Command> take(missing.size(), Command{"HINCRBY", IdsKey(org), kLastIdField, "1"});
  absl::StatusOr<std::vector<Reply>> taken = RunAll(take);
  if (!taken.ok()) return taken.status();
  std::vector<Command> offer;
  for (size_t i = 0; i < missing.size(); ++i) {
    offer.push_back({"HSETNX", IdsKey(org), missing[i], absl::StrCat(IntOf((*taken)[i]))});
  }
  absl::StatusOr<std::vector<Reply>> offered = RunAll(offer);
  if (!offered.ok()) return offered.status();
  std::vector<std::string> lost;
  for (size_t i = 0; i < missing.size(); ++i) {
    if (IntOf((*offered)[i]) == 1) {
      (*ids)[missing[i]] = IntOf((*taken)[i]);
    } else {
      lost.push_back(missing[i]);
    }
  }
  if (lost.empty()) return ids;
  absl::StatusOr<std::map<std::string, int64_t>> winners = Ids(org, lost);
  if (!winners.ok()) return winners.status();
  if (winners->size() != lost.size()) return absl::InternalError("insights: an id vanished");
  ids->insert(winners->begin(), winners->end());
  return ids;
}

absl::StatusOr<std::map<int64_t, std::string>> InsightsStore::NamesById(const std::string& org) {
  absl::StatusOr<Reply> all = pool_.Run({"HGETALL", IdsKey(org)});
  if (!all.ok()) return all.status();
  std::map<int64_t, std::string> out;
  for (size_t i = 0; i + 1 < all->elements.size(); i += 2) {
    const std::string& name = all->elements[i].str;
    if (name == kLastIdField) continue;
    out[IntOf(all->elements[i + 1])] = name;
  }
  return out;
}

absl::StatusOr<ApplyResult> InsightsStore::Apply(const std::string& org,
                                                 const std::vector<std::string>& ids,
                                                 const Planner& planner, int64_t pair_cap) {
  std::vector<std::string> names = planner.Names();
  absl::StatusOr<std::map<std::string, int64_t>> name_ids = Intern(org, names);
  if (!name_ids.ok()) return name_ids.status();
  KUDOS_CHECK(name_ids->size() == names.size(), "insights: every name of the batch has an id");
  ApplyArgs plan = planner.Args(*name_ids);
  std::vector<std::string> keys = {HwmKey(org), KudosStream(org), LastKey(org), SettingsKey(org),
                                   RetractedKey(org)};
  keys.insert(keys.end(), plan.keys.begin(), plan.keys.end());
  std::vector<std::string> args = {absl::StrCat(pair_cap), absl::StrCat(ids.size())};
  args.insert(args.end(), ids.begin(), ids.end());
  args.insert(args.end(), plan.args.begin(), plan.args.end());
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

absl::StatusOr<InsightsStore::PairSums> InsightsStore::SummedPairs(
    const std::string& org, const std::vector<std::string>& prefixes) {
  absl::StatusOr<Reply> last = pool_.Run({"HGET", IdsKey(org), kLastIdField});
  if (!last.ok()) return last.status();
  int64_t last_id = last->is_nil() ? 0 : IntOf(*last);
  std::vector<Command> commands;
  for (const std::string& prefix : prefixes) {
    for (int64_t giver = 0; giver <= last_id; giver += kGiversPerBucket) {
      commands.push_back({"HGETALL", PairsKey(prefix, giver)});
    }
  }
  absl::StatusOr<std::vector<Reply>> replies = RunAll(commands);
  if (!replies.ok()) return replies.status();
  PairSums out;
  for (const Reply& reply : *replies) {
    for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
      int64_t giver = 0, recipient = 0;
      if (!ParsePairField(reply.elements[i].str, &giver, &recipient)) continue;
      out[{giver, recipient}] += IntOf(reply.elements[i + 1]);
    }
  }
  return out;
}

absl::StatusOr<std::map<std::string, PersonCounters>> InsightsStore::Counters(
    const std::string& org, v1::Window window, const std::string& period,
    const std::vector<std::string>& members, const std::vector<std::string>& values) {
  std::vector<std::string> prefixes = Prefixes(org, window, period);
  std::vector<std::string> names = members;
  for (const std::string& v : values) names.push_back(ValueName(v));
  absl::StatusOr<std::map<std::string, int64_t>> ids = Ids(org, names);
  if (!ids.ok()) return ids.status();
  // Unique givers of a written window are counted as pairs appear; a
  // quarter's or year's are recounted from its months' summed pairs.
  std::vector<std::string> counters = {kGiven, kReceived, kPoints, kCross};
  if (Written(window)) counters.push_back(kUniqueGivers);
  std::vector<std::pair<std::string, int64_t>> known_values;  // catalog order
  for (const std::string& v : values) {
    auto it = ids->find(ValueName(v));
    if (it != ids->end()) known_values.emplace_back(v, it->second);
  }
  std::map<int64_t, std::vector<std::pair<std::string, int64_t>>> buckets;  // bucket -> (member, id)
  for (const std::string& m : members) {
    auto it = ids->find(m);
    if (it != ids->end()) buckets[it->second / kPeoplePerBucket].emplace_back(m, it->second);
  }
  std::vector<Command> commands;
  std::vector<const std::vector<std::pair<std::string, int64_t>>*> command_people;
  for (const std::string& prefix : prefixes) {
    for (const auto& [bucket, people] : buckets) {
      Command command = {"HMGET", PeopleKey(prefix, people.front().second)};
      for (const auto& [member, id] : people) {
        for (const std::string& c : counters) command.push_back(PersonField(id, c));
        for (const auto& [v, vid] : known_values) command.push_back(ValueField(id, vid));
      }
      commands.push_back(std::move(command));
      command_people.push_back(&people);
    }
  }
  absl::StatusOr<std::vector<Reply>> replies = RunAll(commands);
  if (!replies.ok()) return replies.status();
  size_t per_person = counters.size() + known_values.size();
  std::map<std::string, PersonCounters> sums;
  for (size_t i = 0; i < replies->size(); ++i) {
    const std::vector<std::pair<std::string, int64_t>>& people = *command_people[i];
    if ((*replies)[i].elements.size() != people.size() * per_person) {
      return absl::InternalError("insights: unexpected HMGET reply");
    }
    for (size_t k = 0; k < people.size(); ++k) {
      const Reply* r = &(*replies)[i].elements[k * per_person];
      PersonCounters& c = sums[people[k].first];
      c.given += IntOf(r[0]);
      c.received += IntOf(r[1]);
      c.points += IntOf(r[2]);
      c.cross += IntOf(r[3]);
      if (Written(window)) c.unique_givers += IntOf(r[4]);
      for (size_t v = 0; v < known_values.size(); ++v) {
        int64_t n = IntOf(r[counters.size() + v]);
        if (n != 0) c.values[known_values[v].first] += n;
      }
    }
  }
  if (!Written(window)) {
    absl::StatusOr<PairSums> pairs = SummedPairs(org, prefixes);
    if (!pairs.ok()) return pairs.status();
    std::map<int64_t, int64_t> givers_of;  // recipient id -> distinct givers
    for (const auto& [pair, kudos] : *pairs) {
      if (kudos > 0) ++givers_of[pair.second];
    }
    for (const auto& [bucket, people] : buckets) {
      for (const auto& [member, id] : people) {
        auto it = givers_of.find(id);
        if (it != givers_of.end()) sums[member].unique_givers = it->second;
      }
    }
  }
  std::map<std::string, PersonCounters> out;
  for (auto& [member, c] : sums) {
    if (c.given || c.received || c.points || c.cross || c.unique_givers || !c.values.empty()) {
      out.emplace(member, std::move(c));
    }
  }
  return out;
}

absl::StatusOr<std::vector<PairCounts>> InsightsStore::Candidates(const std::string& org,
                                                                 v1::Window window,
                                                                 const std::string& period) {
  std::vector<std::string> prefixes = Prefixes(org, window, period);
  std::vector<PairCounts> out;
  if (prefixes.empty()) return out;
  // Candidate id pairs (a < b) with their counts each way.
  std::map<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>> candidates;
  if (Written(window)) {
    absl::StatusOr<Reply> members = pool_.Run({"SMEMBERS", RecipKey(prefixes.front())});
    if (!members.ok()) return members.status();
    for (const Reply& m : members->elements) {
      std::vector<std::string> parts = absl::StrSplit(m.str, '|');
      int64_t a = 0, b = 0;
      if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &a) || !absl::SimpleAtoi(parts[1], &b)) {
        continue;
      }
      candidates[{std::min(a, b), std::max(a, b)}] = {0, 0};
    }
    std::vector<Command> commands;
    for (const auto& [pair, counts] : candidates) {
      const auto& [a, b] = pair;
      commands.push_back({"HGET", PairsKey(prefixes.front(), a), PairField(a, b)});
      commands.push_back({"HGET", PairsKey(prefixes.front(), b), PairField(b, a)});
    }
    absl::StatusOr<std::vector<Reply>> replies = RunAll(commands);
    if (!replies.ok()) return replies.status();
    size_t i = 0;
    for (auto& [pair, counts] : candidates) {
      counts = {IntOf((*replies)[2 * i]), IntOf((*replies)[2 * i + 1])};
      ++i;
    }
  } else {
    absl::StatusOr<PairSums> pairs = SummedPairs(org, prefixes);
    if (!pairs.ok()) return pairs.status();
    for (const auto& [pair, kudos] : *pairs) {
      const auto& [a, b] = pair;
      if (a >= b || kudos < kReciprocityMinEachWay) continue;
      auto back = pairs->find({b, a});
      if (back == pairs->end() || back->second < kReciprocityMinEachWay) continue;
      candidates[{a, b}] = {kudos, back->second};
    }
  }
  if (candidates.empty()) return out;
  // Kudos each side gave in the period, summed over its written periods.
  std::vector<Command> given;
  for (const auto& [pair, counts] : candidates) {
    for (int64_t id : {pair.first, pair.second}) {
      for (const std::string& prefix : prefixes) {
        given.push_back({"HGET", PeopleKey(prefix, id), PersonField(id, kGiven)});
      }
    }
  }
  absl::StatusOr<std::vector<Reply>> given_replies = RunAll(given);
  if (!given_replies.ok()) return given_replies.status();
  absl::StatusOr<std::map<int64_t, std::string>> names = NamesById(org);
  if (!names.ok()) return names.status();
  size_t at = 0;
  for (const auto& [pair, counts] : candidates) {
    int64_t gave[2] = {0, 0};
    for (int side = 0; side < 2; ++side) {
      for (size_t p = 0; p < prefixes.size(); ++p) gave[side] += IntOf((*given_replies)[at++]);
    }
    auto a = names->find(pair.first), b = names->find(pair.second);
    if (a == names->end() || b == names->end()) continue;
    PairCounts pc{a->second, b->second, counts.first, counts.second, gave[0], gave[1]};
    if (pc.b < pc.a) {
      std::swap(pc.a, pc.b);
      std::swap(pc.a_to_b, pc.b_to_a);
      std::swap(pc.a_given, pc.b_given);
    }
    out.push_back(std::move(pc));
  }
  return out;
}

absl::StatusOr<bool> InsightsStore::PairsTruncated(const std::string& org, v1::Window window,
                                                   const std::string& period) {
  std::vector<Command> commands;
  for (const std::string& prefix : Prefixes(org, window, period)) {
    commands.push_back({"HGET", MetaKey(prefix), "d"});
  }
  absl::StatusOr<std::vector<Reply>> replies = RunAll(commands);
  if (!replies.ok()) return replies.status();
  for (const Reply& reply : *replies) {
    if (IntOf(reply) > 0) return true;
  }
  return false;
}

absl::StatusOr<int64_t> InsightsStore::StoredPairs(const std::string& org, v1::Window window,
                                                   const std::string& period) {
  absl::StatusOr<Reply> last = pool_.Run({"HGET", IdsKey(org), kLastIdField});
  if (!last.ok()) return last.status();
  int64_t last_id = last->is_nil() ? 0 : IntOf(*last);
  std::vector<Command> commands;
  for (const std::string& prefix : Prefixes(org, window, period)) {
    for (int64_t giver = 0; giver <= last_id; giver += kGiversPerBucket) {
      commands.push_back({"HLEN", PairsKey(prefix, giver)});
    }
  }
  absl::StatusOr<std::vector<Reply>> replies = RunAll(commands);
  if (!replies.ok()) return replies.status();
  int64_t total = 0;
  for (const Reply& reply : *replies) total += IntOf(reply);
  return total;
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
