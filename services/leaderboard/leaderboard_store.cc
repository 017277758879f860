#include "services/leaderboard/leaderboard_store.h"

#include "services/leaderboard/seasons.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/check/check.h"
#include "common/log/log.h"
#include "common/redis/cluster_slots.h"
#include "services/leaderboard/apply_batch.h"
#include "kApplyEventLua.h"
#include "kBoardReadLua.h"
#include "kRebuildBeginLua.h"
#include "kRebuildEndLua.h"
#include "kRebuildSwapLua.h"
#include "kSplitGuardsLua.h"

namespace leaderboard {

using common::redis::Reply;

namespace {

absl::StatusOr<int64_t> Int(const Reply& reply) {
  if (reply.type == Reply::Type::kString) {
    // Scores come back as strings; integral boards only.
    double value = 0;
    if (!absl::SimpleAtod(reply.str, &value)) {
      return absl::InternalError(absl::StrCat("not a number: '", reply.str, "'"));
    }
    return static_cast<int64_t>(value);
  }
  return reply.AsInteger();
}

absl::Status Shape(absl::string_view what) {
  return absl::InternalError(absl::StrCat("unexpected reply shape from ", what));
}

// Reads `count` triples (member, score, rank) starting at elements[at].
absl::Status ReadEntries(const Reply& reply, size_t& at, int64_t count,
                         std::vector<RankedEntry>& out) {
  for (int64_t i = 0; i < count; ++i) {
    if (at + 3 > reply.elements.size()) return Shape("board_read");
    RankedEntry entry;
    entry.subject_id = reply.elements[at].str;
    absl::StatusOr<int64_t> score = Int(reply.elements[at + 1]);
    absl::StatusOr<int64_t> rank = Int(reply.elements[at + 2]);
    if (!score.ok()) return score.status();
    if (!rank.ok()) return rank.status();
    entry.score = *score;
    entry.rank = *rank;
    out.push_back(std::move(entry));
    at += 3;
  }
  return absl::OkStatus();
}

absl::StatusOr<BoardPage> ParsePage(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() < 3 ||
      (reply.elements.size() - 3) % 3 != 0) {
    return Shape("board_read");
  }
  BoardPage page;
  page.total = reply.elements[0].integer;
  page.has_prev = reply.elements[1].integer != 0;
  page.has_next = reply.elements[2].integer != 0;
  size_t at = 3;
  if (absl::Status s = ReadEntries(reply, at, (reply.elements.size() - 3) / 3, page.entries);
      !s.ok()) {
    return s;
  }
  return page;
}

// Display names from HMGET values of serialized Person / Team protos (the
// id where there is none); `ids` in the order asked.
std::map<std::string, std::string> NamesOf(const Reply& values, const std::vector<std::string>& ids,
                                           NamesFrom from) {
  std::map<std::string, std::string> names;
  kudos::v1::Person person;
  kudos::v1::Team team;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string& name = names[ids[i]];
    if (i < values.elements.size() && !values.elements[i].is_nil()) {
      const std::string& value = values.elements[i].str;
      if (from == NamesFrom::kTeams) {
        if (team.ParseFromString(value)) name = team.display_name();
      } else if (person.ParseFromString(value)) {
        name = person.display_name();
      }
    }
    if (name.empty()) name = ids[i];
  }
  return names;
}

// board_read.lua's 'around' reply; with `names`, its last element holds the
// directory values of the member, the above and the below.
absl::StatusOr<BoardAround> ParseAround(const Reply& reply, const std::string& member,
                                        NamesFrom names) {
  const auto& e = reply.elements;
  if (reply.type != Reply::Type::kArray || e.size() < 2) return Shape("board_read");
  BoardAround around;
  around.total = e[0].integer;
  around.ranked = e[1].integer != 0;
  size_t at = 2;
  if (around.ranked) {
    if (e.size() < 6) return Shape("board_read");
    absl::StatusOr<int64_t> score = Int(e[2]);
    if (!score.ok()) return score.status();
    around.entry = RankedEntry{e[3].integer, member, *score};
    around.below_count = e[4].integer;
    at = 6;
    if (absl::Status s = ReadEntries(reply, at, e[5].integer, around.above); !s.ok()) return s;
    if (at >= e.size()) return Shape("board_read");
    int64_t below = e[at].integer;
    ++at;
    if (absl::Status s = ReadEntries(reply, at, below, around.below); !s.ok()) return s;
  }
  if (names == NamesFrom::kNone) return around;
  if (at + 1 != e.size() || e[at].type != Reply::Type::kArray) return Shape("board_read");
  std::vector<std::string> ids;
  ids.reserve(1 + around.above.size() + around.below.size());
  ids.push_back(member);
  for (const RankedEntry& entry : around.above) ids.push_back(entry.subject_id);
  for (const RankedEntry& entry : around.below) ids.push_back(entry.subject_id);
  around.names = NamesOf(e[at], ids, names);
  return around;
}

// HMGET replies of serialized Person / Team values, by the ids asked.
template <typename Proto>
std::map<std::string, Proto> ParseProtos(const Reply& reply, const std::vector<std::string>& ids) {
  std::map<std::string, Proto> out;
  for (size_t i = 0; i < reply.elements.size() && i < ids.size(); ++i) {
    Proto proto;
    if (!reply.elements[i].is_nil() && proto.ParseFromString(reply.elements[i].str)) {
      out[ids[i]] = std::move(proto);
    }
  }
  return out;
}

std::vector<absl::CivilDay> ParseDays(const Reply& reply) {
  std::vector<absl::CivilDay> days;
  for (const Reply& element : reply.elements) {
    absl::StatusOr<absl::CivilDay> day = ParseDay(element.str);
    if (day.ok()) days.push_back(*day);
  }
  return days;
}

std::map<std::string, int64_t> ParseBadges(const Reply& reply) {
  std::map<std::string, int64_t> out;
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    int64_t ms = 0;
    if (absl::SimpleAtoi(reply.elements[i + 1].str, &ms)) out[reply.elements[i].str] = ms;
  }
  return out;
}


// The years of a derived all-time board, from its org's YearsKey members.
std::vector<std::string> YearSources(const DerivedBoard& derived, const Reply& years) {
  std::vector<std::string> sources;
  for (const Reply& year : years.elements) sources.push_back(derived.YearBoard(year.str));
  std::sort(sources.begin(), sources.end());
  return sources;
}

// board_read.lua's KEYS for a derived board summing `from`.
std::vector<std::string> DerivedReadKeys(const std::string& board_key,
                                         const DerivedBoard& derived,
                                         const std::vector<std::string>& from) {
  if (from.size() == 1) return {from[0], HiddenKey(derived.org)};  // nothing to add up
  std::vector<std::string> keys = {DerivedCacheKey(board_key), HiddenKey(derived.org),
                                   DerivedVersionKey(board_key), MarksKey(derived.org),
                                   DerivedGenerationKey(derived.org)};
  keys.insert(keys.end(), from.begin(), from.end());
  return keys;
}

// board_read.lua's KEYS of a materialized board: itself and the org's hidden set.
absl::StatusOr<std::vector<std::string>> PlainReadKeys(const std::string& board_key) {
  std::optional<std::string> org = OrgOfKey(board_key);
  if (!org.has_value()) return absl::InvalidArgumentError("board_read: malformed board key");
  return std::vector<std::string>{board_key, HiddenKey(*org)};
}

// board_read.lua's ARGV: whether hidden people are left out (boards of
// people, not of teams), the viewer (never left out), then the mode's.
std::vector<std::string> ReadArgs(const std::string& board_key, const std::string& viewer,
                                  std::vector<std::string> mode) {
  std::vector<std::string> args = {BoardOfTeams(board_key) ? "" : "h", viewer};
  args.insert(args.end(), std::make_move_iterator(mode.begin()),
              std::make_move_iterator(mode.end()));
  return args;
}

// board_read.lua's ARGV for 'around'; with `names`, the org's directory hash
// joins `keys` as their last (the script reads the names in the same call).
absl::StatusOr<std::vector<std::string>> AroundArgs(const std::string& board_key,
                                                    const std::string& member, int n,
                                                    const std::string& viewer, NamesFrom names,
                                                    std::vector<std::string>& keys) {
  std::vector<std::string> mode = {"around", member, absl::StrCat(n)};
  if (names != NamesFrom::kNone) {
    std::optional<std::string> org = OrgOfKey(board_key);
    if (!org.has_value()) return absl::InvalidArgumentError("board_read: malformed board key");
    keys.push_back(names == NamesFrom::kTeams ? TeamsKey(*org) : PeopleKey(*org));
    mode.push_back("1");
  }
  return ReadArgs(board_key, viewer, std::move(mode));
}

}  // namespace

std::vector<StreamEntry> ParseEntries(const Reply& reply) {
  std::vector<StreamEntry> out;
  for (const Reply& item : reply.elements) {
    if (item.type != Reply::Type::kArray || item.elements.size() < 2) continue;
    StreamEntry entry;
    entry.id = item.elements[0].str;
    const Reply& fields = item.elements[1];
    for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
      if (fields.elements[i].str == "event") entry.event = fields.elements[i + 1].str;
    }
    out.push_back(std::move(entry));
  }
  return out;
}

Store::Store(common::redis::Pool& pool, common::redis::AsyncClient* async)
    : pool_(pool),
      async_(async),
      org_registry_(pool),
      apply_script_("leaderboard_apply_event", kApplyEventLua),
      read_script_("leaderboard_board_read", kBoardReadLua),
      rebuild_begin_script_("leaderboard_rebuild_begin", kRebuildBeginLua),
      rebuild_end_script_("leaderboard_rebuild_end", kRebuildEndLua),
      swap_script_("leaderboard_rebuild_swap", kRebuildSwapLua),
      split_guards_script_("leaderboard_split_guards", kSplitGuardsLua) {}

absl::StatusOr<std::vector<std::string>> Store::Orgs() {
  absl::StatusOr<std::vector<std::string>> registered = org_registry_.Orgs();
  if (!registered.ok()) return registered.status();
  std::vector<std::string> orgs;
  for (std::string& org : *registered) {
    if (ValidId(org)) orgs.push_back(std::move(org));
  }
  return orgs;
}

absl::StatusOr<kudos::v1::OrgSettings> Store::Settings(const std::string& org) {
  absl::StatusOr<Reply> reply = pool_.Run({"GET", SettingsKey(org)});
  if (!reply.ok()) return reply.status();
  return ParseStoredSettings(org, reply->is_nil() ? nullptr : &reply->str);
}

absl::StatusOr<OrgCalendar> Store::Calendar(const std::string& org) {
  absl::StatusOr<kudos::v1::OrgSettings> settings = Settings(org);
  if (!settings.ok()) return settings.status();
  return CalendarFromSettings(*settings);
}

namespace {
// How long a cached calendar or display name is used.
constexpr absl::Duration kFresh = absl::Seconds(1);
}  // namespace

std::shared_ptr<const OrgCalendar> Store::FreshCalendar(const std::string& org,
                                                        absl::Time now) {
  absl::MutexLock lock(&calendars_mu_);
  auto it = calendars_.find(org);
  if (it != calendars_.end() && now - it->second.second < kFresh) return it->second.first;
  return nullptr;
}

void Store::RememberCalendar(const std::string& org, std::shared_ptr<const OrgCalendar> calendar,
                             absl::Time now) {
  absl::MutexLock lock(&calendars_mu_);
  if (calendars_.size() > 10000) calendars_.clear();  // bounded; refilled on demand
  calendars_[org] = {std::move(calendar), now};
}

absl::StatusOr<OrgCalendar> Store::CachedCalendar(const std::string& org) {
  absl::Time now = absl::Now();
  if (std::shared_ptr<const OrgCalendar> cached = FreshCalendar(org, now)) return *cached;
  absl::StatusOr<OrgCalendar> calendar = Calendar(org);
  if (!calendar.ok()) return calendar.status();
  RememberCalendar(org, std::make_shared<const OrgCalendar>(*calendar), now);
  return calendar;
}

void Store::ForgetDirectory(const std::string& org) {
  {
    absl::MutexLock lock(&calendars_mu_);
    calendars_.erase(org);
  }
  // A directory change is rare: dropping every org's names is simpler than
  // an index by org, and costs one reread each.
  names_.Clear();
}

absl::StatusOr<std::map<std::string, kudos::v1::Person>> Store::People(
    const std::string& org, const std::vector<std::string>& ids) {
  std::map<std::string, kudos::v1::Person> out;
  if (ids.empty()) return out;
  common::redis::Command command = {"HMGET", PeopleKey(org)};
  command.insert(command.end(), ids.begin(), ids.end());
  absl::StatusOr<Reply> reply = pool_.Run(command);
  if (!reply.ok()) return reply.status();
  return ParseProtos<kudos::v1::Person>(*reply, ids);
}

absl::StatusOr<std::map<std::string, kudos::v1::Person>> Store::AllPeople(
    const std::string& org) {
  absl::StatusOr<Reply> reply = pool_.Run({"HGETALL", PeopleKey(org)});
  if (!reply.ok()) return reply.status();
  std::map<std::string, kudos::v1::Person> out;
  for (size_t i = 0; i + 1 < reply->elements.size(); i += 2) {
    kudos::v1::Person person;
    if (person.ParseFromString(reply->elements[i + 1].str)) {
      out[reply->elements[i].str] = std::move(person);
    }
  }
  return out;
}

absl::StatusOr<std::map<std::string, kudos::v1::Team>> Store::Teams(
    const std::string& org, const std::vector<std::string>& ids) {
  std::map<std::string, kudos::v1::Team> out;
  if (ids.empty()) return out;
  common::redis::Command command = {"HMGET", TeamsKey(org)};
  command.insert(command.end(), ids.begin(), ids.end());
  absl::StatusOr<Reply> reply = pool_.Run(command);
  if (!reply.ok()) return reply.status();
  return ParseProtos<kudos::v1::Team>(*reply, ids);
}

namespace {
// Ids and org ids never hold a space.
std::string NameCacheKey(const std::string& org, bool teams, const std::string& id) {
  return absl::StrCat(org, teams ? " t " : " p ", id);
}
}  // namespace

std::vector<std::string> Store::CachedNames(const std::string& org, bool teams,
                                            const std::vector<std::string>& ids, absl::Time now,
                                            std::map<std::string, std::string>& out) {
  std::vector<std::string> missing;
  absl::MutexLock lock(&names_.mutex());
  std::string name;
  for (const std::string& id : ids) {
    if (names_.GetLocked(NameCacheKey(org, teams, id), now, name)) {
      out[id] = name;
    } else {
      missing.push_back(id);
    }
  }
  return missing;
}

void Store::RememberNames(const std::string& org, bool teams,
                          const std::map<std::string, std::string>& found, absl::Time now,
                          std::map<std::string, std::string>& out) {
  absl::MutexLock lock(&names_.mutex());
  for (const auto& [id, name] : found) {
    names_.PutLocked(NameCacheKey(org, teams, id), name, now);  // bounded: evicts the oldest
    out[id] = name;
  }
}

absl::StatusOr<std::map<std::string, std::string>> Store::DisplayNames(
    const std::string& org, bool teams, const std::vector<std::string>& ids) {
  std::map<std::string, std::string> out;
  absl::Time now = absl::Now();
  std::vector<std::string> missing = CachedNames(org, teams, ids, now, out);
  if (missing.empty()) return out;
  std::map<std::string, std::string> found;
  for (const std::string& id : missing) found[id] = id;
  if (teams) {
    auto read = Teams(org, missing);
    if (!read.ok()) return read.status();
    for (const auto& [id, team] : *read) {
      if (!team.display_name().empty()) found[id] = team.display_name();
    }
  } else {
    auto read = People(org, missing);
    if (!read.ok()) return read.status();
    for (const auto& [id, person] : *read) {
      if (!person.display_name().empty()) found[id] = person.display_name();
    }
  }
  RememberNames(org, teams, found, now, out);
  return out;
}

absl::StatusOr<std::map<std::string, Store::Directory>> Store::ReadDirectories(
    const std::map<std::string, std::vector<std::string>>& people_by_org) {
  std::vector<common::redis::Command> commands;
  for (const auto& [org, ids] : people_by_org) {
    commands.push_back({"GET", SettingsKey(org)});
    common::redis::Command people = {"HMGET", PeopleKey(org)};
    people.insert(people.end(), ids.begin(), ids.end());
    // HMGET needs a field: an org without kudos in the run asks for none.
    if (ids.empty()) people.push_back("");
    commands.push_back(std::move(people));
    commands.push_back({"GET", SeasonsVersionKey(org)});
  }
  std::map<std::string, Directory> out;
  if (commands.empty()) return out;
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  size_t at = 0;
  for (const auto& [org, ids] : people_by_org) {
    const absl::StatusOr<Reply>& settings_reply = (*replies)[at++];
    const absl::StatusOr<Reply>& people_reply = (*replies)[at++];
    const absl::StatusOr<Reply>& seasons_reply = (*replies)[at++];
    if (!settings_reply.ok()) return settings_reply.status();
    if (!people_reply.ok()) return people_reply.status();
    if (!seasons_reply.ok()) return seasons_reply.status();
    absl::StatusOr<kudos::v1::OrgSettings> settings =
        ParseStoredSettings(org, settings_reply->is_nil() ? nullptr : &settings_reply->str);
    if (!settings.ok()) return settings.status();
    Directory& directory = out[org];
    directory.calendar = CalendarFromSettings(*settings);
    if (seasons_ != nullptr) {
      // Reloaded only when the org's seasons version moved.
      absl::StatusOr<std::shared_ptr<const SeasonSet>> seasons =
          seasons_->LoadAt(org, seasons_reply->is_nil() ? "" : seasons_reply->str);
      if (!seasons.ok()) return seasons.status();
      directory.calendar.seasons = *std::move(seasons);
    }
    for (size_t i = 0; i < ids.size() && i < people_reply->elements.size(); ++i) {
      kudos::v1::Person person;
      if (!people_reply->elements[i].is_nil() &&
          person.ParseFromString(people_reply->elements[i].str)) {
        directory.people[ids[i]] = std::move(person);
      }
    }
  }
  return out;
}

namespace {

// One org's share of ApplyAll.
struct OrgCall {
  const std::string* org = nullptr;
  std::vector<size_t> plans;  // indexes into ApplyAll's plans, in order
  std::vector<const ApplyPlan*> plan_ptrs;
  AppliedBefore before;
  std::optional<BatchCall> call;
  bool done = false;
};

// Tries of one batch: a refusal (entries or guards applied before, by a
// redelivery or another replica) drops those and tries again, NOSCRIPT
// loads the script.
constexpr int kApplyTries = 4;

}  // namespace

bool Store::Crash(absl::string_view step) {
  if (!crash_hook_ || !crash_hook_(step)) return false;
  crashed_.store(true);
  return true;
}

absl::Status Store::Crashed(absl::string_view step) {
  return absl::CancelledError(absl::StrCat("fault injection: crashed at ", step));
}

absl::StatusOr<std::vector<absl::StatusOr<Reply>>> Store::PipelinePerSlot(
    const std::vector<common::redis::Command>& commands) {
  // Standalone: one round trip for every org. A cluster refuses a pipeline
  // whose keys span slots: one per command there (each org's script is one
  // command; the streak reads are single keys).
  if (pool_.mode() != common::redis::Pool::Mode::kCluster) return pool_.Pipeline(commands);
  std::vector<absl::StatusOr<Reply>> out;
  out.reserve(commands.size());
  for (const common::redis::Command& command : commands) out.push_back(pool_.Run(command));
  return out;
}

void Store::LearnExpiries(const std::string& org, const BatchCall& call,
                          const std::string& generation, int64_t now_s) {
  absl::MutexLock lock(&expiries_mu_);
  KnownExpiries& known = expiries_[org];
  leaderboard::LearnExpiries(call, generation, &known);
  BoundExpiries(&known, kMaxKnownBoards, now_s);
  // And over all orgs (one replica serves many): past kMaxKnownBoardsTotal
  // everything is forgotten (relearnt at one EXPIREAT per board).
  size_t total = 0;
  for (const auto& [name, org_known] : expiries_) total += org_known.boards.size();
  if (total <= kMaxKnownBoardsTotal) return;
  for (auto& [name, org_known] : expiries_) BoundExpiries(&org_known, 0, now_s);
}

absl::StatusOr<std::vector<bool>> Store::ApplyAll(const std::vector<PlanToApply>& plans) {
  std::vector<bool> applied(plans.size(), false);
  if (plans.empty()) return applied;
  std::map<std::string, OrgCall> orgs;
  for (size_t i = 0; i < plans.size(); ++i) {
    OrgCall& org = orgs[*plans[i].org];
    org.org = plans[i].org;
    org.plans.push_back(i);
    org.plan_ptrs.push_back(plans[i].plan);
  }
  // The giving days of every streak check, read in the same pipeline after
  // the scripts, so they include what the scripts just added.
  struct Check {
    const PlanToApply* owner;
    const ApplyPlan::StreakCheck* check;
  };
  std::vector<Check> checks;
  for (const PlanToApply& plan : plans) {
    for (const ApplyPlan::StreakCheck& check : plan.plan->streak_checks) {
      checks.push_back({&plan, &check});
    }
  }
  std::vector<absl::StatusOr<Reply>> days;
  bool all_done = false;
  const int64_t now_s = absl::ToUnixSeconds(absl::Now());
  for (int attempt = 0; attempt < kApplyTries && !all_done; ++attempt) {
    std::vector<common::redis::Command> commands;
    std::vector<OrgCall*> sent;
    for (auto& [name, org] : orgs) {
      if (org.done) continue;
      absl::StatusOr<BatchCall> call;
      {
        absl::MutexLock lock(&expiries_mu_);
        call = BuildBatchCall(name, org.plan_ptrs, plans[org.plans[0]].plan->args[1], org.before,
                              &expiries_[name], now_s);
      }
      if (!call.ok()) return call.status();
      if (!consumer_group_.empty()) call->args.push_back(consumer_group_);
      if (call->entries == 0) {  // everything was applied before
        org.done = true;
        continue;
      }
      common::redis::Command command = {"EVALSHA", apply_script_.sha(),
                                        absl::StrCat(call->keys.size())};
      command.insert(command.end(), call->keys.begin(), call->keys.end());
      command.insert(command.end(), call->args.begin(), call->args.end());
      commands.push_back(std::move(command));
      org.call = *std::move(call);
      sent.push_back(&org);
    }
    for (const Check& check : checks) {
      commands.push_back({"SMEMBERS", DaysKey(*check.owner->org, "giving", check.check->person)});
    }
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = PipelinePerSlot(commands);
    if (!replies.ok()) return replies.status();
    days.assign(replies->begin() + sent.size(), replies->end());
    bool load = false;
    for (size_t k = 0; k < sent.size(); ++k) {
      const absl::StatusOr<Reply>& reply = (*replies)[k];
      if (!reply.ok()) {
        if (reply.status().code() == absl::StatusCode::kNotFound &&
            reply.status().message() == "NOSCRIPT") {
          load = true;
          continue;
        }
        return reply.status();
      }
      std::string generation;
      absl::StatusOr<bool> ok = ParseBatchReply(*reply, &sent[k]->before, &generation);
      if (!ok.ok()) return ok.status();
      if (!*ok) continue;  // applied before in part: those are dropped next try
      sent[k]->done = true;
      LearnExpiries(*sent[k]->org, *sent[k]->call, generation, now_s);
      for (size_t p = 0; p < sent[k]->plans.size(); ++p) {
        if (sent[k]->call->included[p]) applied[sent[k]->plans[p]] = true;
      }
    }
    if (load) {
      absl::StatusOr<Reply> loaded = pool_.Run({"SCRIPT", "LOAD", apply_script_.source()});
      if (!loaded.ok()) return loaded.status();
    }
    all_done = true;
    for (const auto& [name, org] : orgs) all_done = all_done && org.done;
  }
  if (!all_done) {
    return absl::AbortedError("apply_event: other consumers kept applying the same entries");
  }
  if (Crash("applied")) return Crashed("applied");
  // Streak badges are checked on redelivery too (HSETNX: idempotent), so a
  // crash between the scripts and the award cannot lose one.
  std::vector<common::redis::Command> awards;
  for (size_t c = 0; c < checks.size() && c < days.size(); ++c) {
    if (!days[c].ok()) return days[c].status();
    std::vector<absl::CivilDay> active;
    for (const Reply& element : days[c]->elements) {
      absl::StatusOr<absl::CivilDay> day = ParseDay(element.str);
      if (day.ok()) active.push_back(*day);
    }
    const ApplyPlan::StreakCheck& check = *checks[c].check;
    if (ReachesGivingStreakBadge(active, *checks[c].owner->calendar, check.day)) {
      awards.push_back({"HSETNX", BadgesKey(*checks[c].owner->org, check.person),
                        kGivingStreakBadge, absl::StrCat(absl::ToUnixMillis(check.time))});
    }
  }
  if (!awards.empty()) {
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> awarded = pool_.Pipeline(awards);
    if (!awarded.ok()) return awarded.status();
    for (const absl::StatusOr<Reply>& reply : *awarded) {
      if (!reply.ok()) return reply.status();
    }
  }
  if (Crash("awarded")) return Crashed("awarded");
  return applied;
}

absl::StatusOr<std::optional<std::vector<std::string>>> Store::DerivedSources(
    const std::string& board_key) {
  std::optional<DerivedBoard> derived = ParseDerivedBoard(board_key);
  if (!derived) return std::nullopt;
  if (derived->window == "quarter") return std::move(derived->sources);
  absl::StatusOr<Reply> years = pool_.Run({"SMEMBERS", YearsKey(derived->org)});
  if (!years.ok()) return years.status();
  return YearSources(*derived, *years);
}

absl::StatusOr<int> Store::SeedYearsAfterUpgrade(const std::string& org, absl::Time now) {
  const std::vector<v1::Metric> metrics = {v1::METRIC_POINTS_RECEIVED, v1::METRIC_KUDOS_RECEIVED,
                                           v1::METRIC_KUDOS_GIVEN};
  std::vector<common::redis::Command> evidence = {{"EXISTS", YearsKey(org)}};
  for (v1::Metric metric : metrics) {
    evidence.push_back(
        {"EXISTS", BoardKey(org, metric, v1::WINDOW_ALL_TIME, "all", v1::SCOPE_TEAMS, "")});
  }
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> found = pool_.Pipeline(evidence);
  if (!found.ok()) return found.status();
  for (const absl::StatusOr<Reply>& reply : *found) {
    if (!reply.ok()) return reply.status();
  }
  bool old_boards = false;
  for (size_t i = 1; i < found->size(); ++i) old_boards = old_boards || (*found)[i]->integer > 0;
  if ((*found)[0]->integer > 0 || !old_boards) return 0;
  const int last = static_cast<int>(absl::ToCivilYear(now, absl::UTCTimeZone()).year()) + 1;
  std::vector<common::redis::Command> probes;
  std::vector<std::string> years;
  for (int year = 1990; year <= last; ++year) {
    common::redis::Command probe = {"EXISTS"};
    for (v1::Metric metric : metrics) {
      probe.push_back(
          BoardKey(org, metric, v1::WINDOW_YEAR, absl::StrCat(year), v1::SCOPE_ORG, ""));
    }
    probes.push_back(std::move(probe));
    years.push_back(absl::StrCat(year));
  }
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> probed = pool_.Pipeline(probes);
  if (!probed.ok()) return probed.status();
  common::redis::Command add = {"SADD", YearsKey(org)};
  for (size_t i = 0; i < probed->size(); ++i) {
    if (!(*probed)[i].ok()) return (*probed)[i].status();
    if ((*probed)[i]->integer > 0) add.push_back(years[i]);
  }
  if (add.size() == 2) return 0;
  absl::StatusOr<Reply> added = pool_.Run(add);
  if (!added.ok()) return added.status();
  return static_cast<int>(add.size() - 2);
}

absl::StatusOr<int64_t> Store::SplitLegacyGuards(const std::string& org) {
  // A legacy zset holds one retry window of ids (30 days by default; three
  // years of retractions): the rounds' bound is far past any of them.
  constexpr int kMaxRounds = 100000;
  // Every org's discovery asks: one round trip when there is nothing to move.
  common::redis::Command exists = {"EXISTS"};
  for (char stream : kGuardStreams) exists.push_back(LegacyGuardKey(org, stream));
  absl::StatusOr<Reply> found = pool_.Run(exists);
  if (!found.ok()) return found.status();
  int64_t moved = 0;
  if (found->integer == 0) return moved;
  for (char stream : kGuardStreams) {
    const std::string legacy = LegacyGuardKey(org, stream);
    for (int round = 0;; ++round) {
      if (round == kMaxRounds) {
        return absl::ResourceExhaustedError(
            absl::StrCat(legacy, " still holds ids after ", kMaxRounds, " rounds"));
      }
      absl::StatusOr<Reply> chunk = pool_.Run(
          {"ZRANGE", legacy, "0", absl::StrCat(kSplitGuardsChunk - 1), "WITHSCORES"});
      if (!chunk.ok()) return chunk.status();
      if (chunk->elements.empty()) break;
      std::vector<std::string> keys = {legacy};
      absl::flat_hash_map<std::string, size_t> index;
      std::vector<std::string> args = {absl::StrCat(chunk->elements.size() / 2)};
      for (size_t i = 0; i + 1 < chunk->elements.size(); i += 2) {
        const std::string& id = chunk->elements[i].str;
        auto [it, added] = index.try_emplace(GuardKey(org, stream, id), keys.size() + 1);
        if (added) keys.push_back(it->first);
        args.insert(args.end(), {id, chunk->elements[i + 1].str, absl::StrCat(it->second)});
      }
      absl::StatusOr<Reply> split = pool_.Eval(split_guards_script_, keys, args);
      if (!split.ok()) return split.status();
      moved += split->integer;
    }
  }
  return moved;
}

absl::StatusOr<std::vector<std::string>> Store::ReadKeys(const std::string& board_key) {
  absl::StatusOr<std::optional<std::vector<std::string>>> sources = DerivedSources(board_key);
  if (!sources.ok()) return sources.status();
  if (!sources->has_value()) return PlainReadKeys(board_key);
  return DerivedReadKeys(board_key, *ParseDerivedBoard(board_key), **sources);
}

absl::StatusOr<BoardPage> Store::FirstPage(const std::string& board_key, int n) {
  absl::StatusOr<std::vector<std::string>> keys = ReadKeys(board_key);
  if (!keys.ok()) return keys.status();
  absl::StatusOr<Reply> reply =
      pool_.Eval(read_script_, *keys, ReadArgs(board_key, "", {"first", absl::StrCat(n)}));
  if (!reply.ok()) return reply.status();
  return ParsePage(*reply);
}

absl::StatusOr<BoardPage> Store::Page(const std::string& board_key, char direction,
                                      int64_t score, const std::string& member, int n) {
  absl::StatusOr<std::vector<std::string>> keys = ReadKeys(board_key);
  if (!keys.ok()) return keys.status();
  absl::StatusOr<Reply> reply =
      pool_.Eval(read_script_, *keys,
                 ReadArgs(board_key, "",
                          {"page", std::string(1, direction), absl::StrCat(score), member,
                           absl::StrCat(n)}));
  if (!reply.ok()) return reply.status();
  return ParsePage(*reply);
}

absl::StatusOr<BoardAround> Store::Around(const std::string& board_key,
                                          const std::string& member, int n,
                                          const std::string& viewer, NamesFrom names) {
  absl::StatusOr<std::vector<std::string>> keys = ReadKeys(board_key);
  if (!keys.ok()) return keys.status();
  absl::StatusOr<std::vector<std::string>> args =
      AroundArgs(board_key, member, n, viewer, names, *keys);
  if (!args.ok()) return args.status();
  absl::StatusOr<Reply> reply = pool_.Eval(read_script_, *keys, *args);
  if (!reply.ok()) return reply.status();
  return ParseAround(*reply, member, names);
}

absl::StatusOr<std::map<std::string, int64_t>> Store::Scores(
    const std::string& board_key, const std::vector<std::string>& members) {
  std::map<std::string, int64_t> out;
  if (members.empty()) return out;
  // A derived board's score is the sum of its sources' (absent on all: absent).
  absl::StatusOr<std::optional<std::vector<std::string>>> sources = DerivedSources(board_key);
  if (!sources.ok()) return sources.status();
  std::vector<std::string> boards =
      sources->has_value() ? **sources : std::vector<std::string>{board_key};
  if (boards.empty()) return out;
  std::vector<common::redis::Command> commands;
  for (const std::string& board : boards) {
    common::redis::Command command = {"ZMSCORE", board};
    command.insert(command.end(), members.begin(), members.end());
    commands.push_back(std::move(command));
  }
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  for (const absl::StatusOr<Reply>& reply : *replies) {
    if (!reply.ok()) return reply.status();
    for (size_t i = 0; i < reply->elements.size() && i < members.size(); ++i) {
      if (reply->elements[i].is_nil()) continue;
      absl::StatusOr<int64_t> score = Int(reply->elements[i]);
      if (score.ok()) out[members[i]] += *score;
    }
  }
  return out;
}

absl::StatusOr<std::vector<absl::CivilDay>> Store::Days(const std::string& org,
                                                        const std::string& kind,
                                                        const std::string& person) {
  absl::StatusOr<Reply> reply = pool_.Run({"SMEMBERS", DaysKey(org, kind, person)});
  if (!reply.ok()) return reply.status();
  return ParseDays(*reply);
}

absl::StatusOr<std::map<std::string, int64_t>> Store::Badges(const std::string& org,
                                                             const std::string& person) {
  absl::StatusOr<Reply> reply = pool_.Run({"HGETALL", BadgesKey(org, person)});
  if (!reply.ok()) return reply.status();
  return ParseBadges(*reply);
}

std::string StagingPrefix(const std::string& org) { return absl::StrCat("lbstage:{", org, "}:"); }

std::string RebuildBudgetKey(const std::string& org) {
  return absl::StrCat("lbctl:{", org, "}:rebuild_budget");
}

std::optional<int64_t> RetryAfterMs(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kResourceExhausted) return std::nullopt;
  absl::string_view message = status.message();
  constexpr absl::string_view kMarker = "retry after ";
  size_t at = message.rfind(kMarker);
  if (at == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = message.substr(at + kMarker.size());
  rest = rest.substr(0, rest.find(' '));
  int64_t ms = 0;
  if (!absl::SimpleAtoi(rest, &ms) || ms < 0) return std::nullopt;
  return ms;
}

absl::Status Store::BeginRebuild(const std::string& org, const std::string& token,
                                 std::chrono::milliseconds lock_ttl,
                                 std::chrono::milliseconds min_interval) {
  KUDOS_CHECK(lock_ttl.count() > 0 && min_interval.count() >= 0, "rebuild limits are sane");
  return pool_
      .Eval(rebuild_begin_script_, {RebuildLockKey(org), RebuildBudgetKey(org)},
            {token, absl::StrCat(lock_ttl.count()), absl::StrCat(min_interval.count())})
      .status();
}

absl::Status Store::RefreshRebuildLock(const std::string& org, const std::string& token,
                                       std::chrono::milliseconds ttl) {
  absl::StatusOr<Reply> reply = pool_.Run({"GET", RebuildLockKey(org)});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil() || reply->str != token) {
    return absl::AbortedError("the rebuild lock was lost (expired); run the rebuild again");
  }
  return pool_.Run({"PEXPIRE", RebuildLockKey(org), absl::StrCat(ttl.count())}).status();
}

absl::Status Store::EndRebuild(const std::string& org, const std::string& token,
                               bool refund_budget) {
  return pool_
      .Eval(rebuild_end_script_, {RebuildLockKey(org), RebuildBudgetKey(org)},
            {token, refund_budget ? "1" : "0"})
      .status();
}

absl::StatusOr<std::vector<std::string>> Store::ProjectionKeys(const std::string& org) {
  // Org ids are validated ([A-Za-z0-9._-]), so the pattern has no glob characters
  // besides the trailing star.
  std::string pattern = Prefix(org) + "*";
  // SCAN has no key: on a cluster it must go to the node of the org's slot.
  // A routed keyed call first lets the pool learn of a moved slot (MOVED).
  absl::StatusOr<Reply> routed = pool_.Run({"EXISTS", RebuildLockKey(org)});
  if (!routed.ok()) return routed.status();
  const int slot = common::redis::KeySlot(pattern);
  const std::string node = pool_.NodeForSlot(slot);
  if (node.empty()) return absl::UnavailableError("the org's slot has no node yet; rebuild again");
  std::string cursor = "0";
  std::vector<std::string> keys;
  do {
    absl::StatusOr<Reply> reply =
        pool_.RunOn(node, {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (!reply.ok()) return reply.status();
    if (reply->elements.size() != 2) return Shape("SCAN");
    cursor = reply->elements[0].str;
    for (const Reply& key : reply->elements[1].elements) keys.push_back(key.str);
  } while (cursor != "0");
  if (pool_.NodeForSlot(slot) != node) {
    return absl::AbortedError(
        "the org's slot moved during the rebuild's key listing; rebuild again");
  }
  return keys;
}

namespace {
constexpr std::chrono::milliseconds kSwapTimeout{60000};
}  // namespace

absl::Status Store::SwapInProjections(const std::string& org, const std::string& token,
                                      const std::vector<std::string>& old_keys,
                                      const std::vector<StagedKey>& staged) {
  std::string slot = absl::StrCat("{", org, "}");
  std::vector<std::string> keys = {RebuildLockKey(org)};
  keys.insert(keys.end(), old_keys.begin(), old_keys.end());
  std::vector<std::string> args = {token, absl::StrCat(old_keys.size()),
                                   absl::StrCat(staged.size())};
  for (const StagedKey& key : staged) {
    KUDOS_CHECK(absl::StartsWith(key.staging, StagingPrefix(org)) &&
                    absl::StartsWith(key.final_key, Prefix(org)),
                "a rebuild swaps only its own org's keys");
    keys.push_back(key.staging);
  }
  for (const StagedKey& key : staged) {
    keys.push_back(key.final_key);
    args.push_back(absl::StrCat(key.expire_at));
  }
  keys.push_back(DerivedGenerationKey(org));  // cached derived boards are stale now
  for (const std::string& key : keys) {
    KUDOS_CHECK(absl::StrContains(key, slot), "every key of the swap is in the org's slot");
  }
  // One atomic script whose run time grows with the org's key count (a
  // RENAME per key: seconds for a large org on a busy machine), so it runs
  // with a timeout to match, not the pool's (on the org's node of a cluster).
  common::redis::Command command = {"EVAL", swap_script_.source(), absl::StrCat(keys.size())};
  command.insert(command.end(), keys.begin(), keys.end());
  command.insert(command.end(), args.begin(), args.end());
  absl::Time start = absl::Now();
  absl::StatusOr<Reply> reply = pool_.RunWithTimeout(command, kSwapTimeout);
  if (!reply.ok()) return reply.status();
  common::log::Info(absl::StrCat("leaderboard: org '", org, "': swapped in ", staged.size(),
                                 " keys in ", absl::ToInt64Milliseconds(absl::Now() - start),
                                 " ms"));
  KUDOS_CHECK(reply->type == Reply::Type::kInteger &&
                  reply->integer == static_cast<long long>(staged.size()),
              "the swap renamed every staged key");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StreamEntry>> Store::Range(const std::string& stream,
                                                      const std::string& after, int count) {
  std::string start = after == "-" ? "-" : "(" + after;
  absl::StatusOr<Reply> reply =
      pool_.Run({"XRANGE", stream, start, "+", "COUNT", absl::StrCat(count)});
  if (!reply.ok()) return reply.status();
  return ParseEntries(*reply);
}

// ---------------------------------------------------------------- async reads

void Store::CachedCalendarAsync(const std::string& org, Deadline deadline,
                                Then<OrgCalendar> done) {
  SharedCalendarAsync(org, deadline,
                      [done = std::move(done)](
                          absl::StatusOr<std::shared_ptr<const OrgCalendar>> calendar) mutable {
                        if (!calendar.ok()) return std::move(done)(calendar.status());
                        std::move(done)(**calendar);
                      });
}

void Store::SharedCalendarAsync(const std::string& org, Deadline deadline,
                                Then<std::shared_ptr<const OrgCalendar>> done) {
  KUDOS_CHECK(async_ != nullptr, "asynchronous reads need the AsyncClient");
  absl::Time now = absl::Now();
  if (std::shared_ptr<const OrgCalendar> cached = FreshCalendar(org, now)) {
    return std::move(done)(std::move(cached));
  }
  async_->Run({"GET", SettingsKey(org)}, deadline,
              [this, org, now, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                if (!reply.ok()) return std::move(done)(reply.status());
                absl::StatusOr<kudos::v1::OrgSettings> settings =
                    ParseStoredSettings(org, reply->is_nil() ? nullptr : &reply->str);
                if (!settings.ok()) return std::move(done)(settings.status());
                auto calendar =
                    std::make_shared<const OrgCalendar>(CalendarFromSettings(*settings));
                RememberCalendar(org, calendar, now);
                std::move(done)(std::move(calendar));
              });
}

void Store::ReadKeysAsync(const std::string& board_key, Deadline deadline,
                          Then<std::vector<std::string>> done) {
  std::optional<DerivedBoard> derived = ParseDerivedBoard(board_key);
  if (!derived) return std::move(done)(PlainReadKeys(board_key));
  if (derived->window == "quarter") {
    return std::move(done)(DerivedReadKeys(board_key, *derived, derived->sources));
  }
  std::string years_key = YearsKey(derived->org);
  async_->Run({"SMEMBERS", std::move(years_key)}, deadline,
              [board_key, derived = *std::move(derived),
               done = std::move(done)](absl::StatusOr<Reply> years) mutable {
                if (!years.ok()) return std::move(done)(years.status());
                std::move(done)(DerivedReadKeys(board_key, derived, YearSources(derived, *years)));
              });
}

void Store::BoardReadAsync(const std::string& board_key, std::vector<std::string> args,
                           Deadline deadline, Then<Reply> done) {
  KUDOS_CHECK(async_ != nullptr, "asynchronous reads need the AsyncClient");
  ReadKeysAsync(board_key, deadline,
                [this, args = std::move(args), deadline,
                 done = std::move(done)](absl::StatusOr<std::vector<std::string>> keys) mutable {
                  if (!keys.ok()) return std::move(done)(keys.status());
                  async_->EvalSha(read_script_, *std::move(keys), std::move(args), deadline,
                                  std::move(done));
                });
}

void Store::FirstPageAsync(const std::string& board_key, int n, Deadline deadline,
                           Then<BoardPage> done) {
  BoardReadAsync(board_key, ReadArgs(board_key, "", {"first", absl::StrCat(n)}), deadline,
                 [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                   if (!reply.ok()) return std::move(done)(reply.status());
                   std::move(done)(ParsePage(*reply));
                 });
}

void Store::PageAsync(const std::string& board_key, char direction, int64_t score,
                      const std::string& member, int n, Deadline deadline, Then<BoardPage> done) {
  BoardReadAsync(board_key,
                 ReadArgs(board_key, "",
                          {"page", std::string(1, direction), absl::StrCat(score), member,
                           absl::StrCat(n)}),
                 deadline, [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                   if (!reply.ok()) return std::move(done)(reply.status());
                   std::move(done)(ParsePage(*reply));
                 });
}

void Store::SeasonAsync(const std::string& org, const std::string& season_id, Deadline deadline,
                        Then<std::optional<v1::Season>> done) {
  KUDOS_CHECK(async_ != nullptr, "asynchronous reads need the AsyncClient");
  async_->Run({"HGET", SeasonsKey(org), season_id}, deadline,
              [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                if (!reply.ok()) return std::move(done)(reply.status());
                if (reply->is_nil()) return std::move(done)(std::optional<v1::Season>());
                v1::Season season;
                if (!season.ParseFromString(reply->str)) {
                  return std::move(done)(absl::InternalError("a stored season does not parse"));
                }
                std::move(done)(std::optional<v1::Season>(std::move(season)));
              });
}

void Store::AroundAsync(const std::string& board_key, const std::string& member, int n,
                        const std::string& viewer, NamesFrom names, Deadline deadline,
                        Then<BoardAround> done) {
  KUDOS_CHECK(async_ != nullptr, "asynchronous reads need the AsyncClient");
  ReadKeysAsync(
      board_key, deadline,
      [this, board_key, member, n, viewer, names, deadline,
       done = std::move(done)](absl::StatusOr<std::vector<std::string>> keys) mutable {
        if (!keys.ok()) return std::move(done)(keys.status());
        absl::StatusOr<std::vector<std::string>> args =
            AroundArgs(board_key, member, n, viewer, names, *keys);
        if (!args.ok()) return std::move(done)(args.status());
        async_->EvalSha(read_script_, *std::move(keys), *std::move(args), deadline,
                        [member, names, done = std::move(done)](
                            absl::StatusOr<Reply> reply) mutable {
                          if (!reply.ok()) return std::move(done)(reply.status());
                          std::move(done)(ParseAround(*reply, member, names));
                        });
      });
}

void Store::TeamsAsync(const std::string& org, const std::vector<std::string>& ids,
                       Deadline deadline, Then<std::map<std::string, kudos::v1::Team>> done) {
  KUDOS_CHECK(async_ != nullptr, "asynchronous reads need the AsyncClient");
  if (ids.empty()) return std::move(done)(std::map<std::string, kudos::v1::Team>{});
  common::redis::Command command = {"HMGET", TeamsKey(org)};
  command.insert(command.end(), ids.begin(), ids.end());
  async_->Run(std::move(command), deadline,
              [ids, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                if (!reply.ok()) return std::move(done)(reply.status());
                std::move(done)(ParseProtos<kudos::v1::Team>(*reply, ids));
              });
}

void Store::DisplayNamesAsync(const std::string& org, bool teams,
                              const std::vector<std::string>& ids, Deadline deadline,
                              Then<std::map<std::string, std::string>> done) {
  KUDOS_CHECK(async_ != nullptr, "asynchronous reads need the AsyncClient");
  std::map<std::string, std::string> out;
  absl::Time now = absl::Now();
  std::vector<std::string> missing = CachedNames(org, teams, ids, now, out);
  if (missing.empty()) return std::move(done)(std::move(out));
  common::redis::Command command = {"HMGET", teams ? TeamsKey(org) : PeopleKey(org)};
  command.insert(command.end(), missing.begin(), missing.end());
  async_->Run(std::move(command), deadline,
              [this, org, teams, now, missing, out = std::move(out),
               done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                if (!reply.ok()) return std::move(done)(reply.status());
                std::map<std::string, std::string> found;
                for (const std::string& id : missing) found[id] = id;
                if (teams) {
                  for (const auto& [id, team] : ParseProtos<kudos::v1::Team>(*reply, missing)) {
                    if (!team.display_name().empty()) found[id] = team.display_name();
                  }
                } else {
                  for (const auto& [id, person] :
                       ParseProtos<kudos::v1::Person>(*reply, missing)) {
                    if (!person.display_name().empty()) found[id] = person.display_name();
                  }
                }
                RememberNames(org, teams, found, now, out);
                std::move(done)(std::move(out));
              });
}

void Store::PersonDaysAsync(const std::string& org, const std::string& person,
                            Deadline deadline, Then<PersonDays> done) {
  KUDOS_CHECK(async_ != nullptr, "asynchronous reads need the AsyncClient");
  async_->Pipeline(
      {{"HMGET", PeopleKey(org), person},
       {"SMEMBERS", DaysKey(org, "giving", person)},
       {"SMEMBERS", DaysKey(org, "receiving", person)}},
      deadline,
      [person, done = std::move(done)](
          absl::StatusOr<common::redis::PipelineReplies> replies) mutable {
        if (!replies.ok()) return std::move(done)(replies.status());
        KUDOS_CHECK(replies->size() == 3, "a pipeline answers each of its commands");
        for (const absl::StatusOr<Reply>& reply : *replies) {
          if (!reply.ok()) return std::move(done)(reply.status());
        }
        PersonDays out;
        std::map<std::string, kudos::v1::Person> people =
            ParseProtos<kudos::v1::Person>(*(*replies)[0], {person});
        if (auto it = people.find(person); it != people.end()) out.person = std::move(it->second);
        out.giving = ParseDays(*(*replies)[1]);
        out.receiving = ParseDays(*(*replies)[2]);
        std::move(done)(std::move(out));
      });
}

void Store::BadgesAsync(const std::string& org, const std::string& person, Deadline deadline,
                        Then<std::map<std::string, int64_t>> done) {
  KUDOS_CHECK(async_ != nullptr, "asynchronous reads need the AsyncClient");
  async_->Run({"HGETALL", BadgesKey(org, person)}, deadline,
              [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                if (!reply.ok()) return std::move(done)(reply.status());
                std::move(done)(ParseBadges(*reply));
              });
}

}  // namespace leaderboard
