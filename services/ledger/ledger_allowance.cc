// LedgerStore's allowance rules, profiles and boosts (issue 18 part 2):
// stored in the org's slot (ledger_keys.h: alw:*), written by
// scripts/allowance.lua under the write concern, read in one pipeline.
#include <algorithm>
#include <memory>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "common/audit.h"
#include "common/check/check.h"
#include "services/ledger/ledger_store.h"

namespace ledger {
namespace {

using common::redis::Reply;

absl::Status Malformed(absl::string_view what) {
  return absl::InternalError(absl::StrCat("ledger allowance script returned a malformed ", what));
}

std::vector<std::string> AuditFields(absl::string_view org, absl::string_view actor,
                                     absl::string_view action, absl::string_view target,
                                     absl::string_view reason,
                                     std::vector<std::string> extra_pairs = {}) {
  if (actor.empty()) return {};
  common::redis::Command entry = common::audit::AppendCommand(org, actor, action, target, reason);
  std::vector<std::string> fields(entry.begin() + 3, entry.end());
  for (std::string& field : extra_pairs) fields.push_back(std::move(field));
  return fields;
}

void Append(std::vector<std::string>& args, std::vector<std::string> more) {
  for (std::string& arg : more) args.push_back(std::move(arg));
}

// The op's key, the org's allowance version (allowance.lua moves it with
// every change: allowance_cache.h) and, for admins' changes, the audit stream.
std::vector<std::string> WithAudit(absl::string_view org, std::vector<std::string> keys,
                                   bool audited) {
  keys.push_back(keys::AllowanceVersion(org));
  if (audited) keys.push_back(common::audit::StreamKey(org));
  return keys;
}

template <typename T>
absl::StatusOr<T> ParseBody(const std::string& body, absl::string_view what) {
  T message;
  if (!message.ParseFromString(body)) {
    return absl::DataLossError(absl::StrCat("stored ", what, " does not parse"));
  }
  return message;
}

absl::StatusOr<std::vector<AllowanceRule>> ParseRules(const Reply& reply) {
  std::vector<AllowanceRule> rules;
  if (reply.type != Reply::Type::kArray || reply.elements.size() % 2 != 0) {
    return Malformed("rule list");
  }
  for (size_t i = 1; i < reply.elements.size(); i += 2) {
    absl::StatusOr<AllowanceRule> rule =
        ParseBody<AllowanceRule>(reply.elements[i].str, "allowance rule");
    if (!rule.ok()) return rule.status();
    rules.push_back(*std::move(rule));
  }
  std::sort(rules.begin(), rules.end(), [](const AllowanceRule& a, const AllowanceRule& b) {
    return a.rule_id() < b.rule_id();
  });
  return rules;
}

// HGETALL of alw:boosts:<person>: the <id> fields (not <id>:meta), oldest first.
absl::StatusOr<std::vector<AllowanceBoost>> ParseBoosts(const Reply& reply) {
  std::vector<AllowanceBoost> boosts;
  if (reply.type != Reply::Type::kArray || reply.elements.size() % 2 != 0) {
    return Malformed("boost list");
  }
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    const std::string& field = reply.elements[i].str;
    if (field.size() > 5 && field.compare(field.size() - 5, 5, ":meta") == 0) continue;
    absl::StatusOr<AllowanceBoost> boost =
        ParseBody<AllowanceBoost>(reply.elements[i + 1].str, "allowance boost");
    if (!boost.ok()) return boost.status();
    boosts.push_back(*std::move(boost));
  }
  std::sort(boosts.begin(), boosts.end(), [](const AllowanceBoost& a, const AllowanceBoost& b) {
    if (a.grant_time().seconds() != b.grant_time().seconds()) {
      return a.grant_time().seconds() < b.grant_time().seconds();
    }
    return a.boost_id() < b.boost_id();
  });
  return boosts;
}

absl::StatusOr<AllowanceProfile> ParseProfile(const Reply& reply, absl::string_view person) {
  if (reply.is_nil()) {
    AllowanceProfile profile;
    profile.set_person_id(std::string(person));
    return profile;
  }
  return ParseBody<AllowanceProfile>(reply.str, "allowance profile");
}

absl::StatusOr<AllowancePolicy> ParsePolicyReply(const Reply& reply) {
  if (reply.is_nil()) return DefaultPolicy();
  return ParseBody<AllowancePolicy>(reply.str, "allowance policy");
}

// Pipeline replies: the first error, else OK.
absl::Status FirstError(const common::redis::PipelineReplies& replies) {
  for (const absl::StatusOr<Reply>& reply : replies) {
    if (!reply.ok()) return reply.status();
  }
  return absl::OkStatus();
}

const std::string& Code(const Reply& reply) {
  static const std::string kNone;
  if (reply.type != Reply::Type::kArray || reply.elements.empty()) return kNone;
  return reply.elements[0].str;
}

int64_t Count(const Reply& reply) {
  return reply.elements.size() > 1 ? reply.elements[1].AsInteger().value_or(0) : 0;
}

// allowance.lua changed something without moving the org's version (a
// profile in an org without rules): what this replica holds stays right.
bool VersionKept(const absl::StatusOr<Reply>& reply) {
  return reply.ok() && Code(*reply) == "OK" && reply->elements.size() > 1 &&
         reply->elements[1].str == "VERSION_KEPT";
}

}  // namespace

void LedgerStore::EvalAllowance(absl::string_view org, std::vector<std::string> keys,
                                std::vector<std::string> args, Deadline deadline,
                                common::redis::ReplyCallback done) {
  // This replica's own change is seen by its next post without a stale
  // round (another replica's by post.lua's check: allowance_cache.h).
  EvalWrite(allowance_, org, std::move(keys), std::move(args), deadline,
            [this, org = std::string(org), done = std::move(done)](
                absl::StatusOr<Reply> reply) mutable {
              if (!VersionKept(reply)) AllowanceChanged(org);
              std::move(done)(std::move(reply));
            });
}

void LedgerStore::ReadAllowanceInputs(absl::string_view org, absl::string_view person,
                                      Deadline deadline, Callback<AllowanceInputs> done) {
  Pipeline({{"GET", keys::Policy(org)},
            {"HGETALL", keys::AllowanceRules(org)},
            {"HGET", keys::AllowanceProfiles(org), std::string(person)},
            {"HGETALL", keys::AllowanceBoosts(org, person)}},
           deadline,
           [person = std::string(person), done = std::move(done)](
               absl::StatusOr<common::redis::PipelineReplies> replies) mutable {
             if (!replies.ok()) return std::move(done)(replies.status());
             if (absl::Status s = FirstError(*replies); !s.ok()) return std::move(done)(s);
             KUDOS_CHECK(replies->size() == 4, "one reply per command of the pipeline");
             AllowanceInputs inputs;
             absl::StatusOr<AllowancePolicy> policy = ParsePolicyReply(*(*replies)[0]);
             absl::StatusOr<std::vector<AllowanceRule>> rules = ParseRules(*(*replies)[1]);
             absl::StatusOr<AllowanceProfile> profile = ParseProfile(*(*replies)[2], person);
             absl::StatusOr<std::vector<AllowanceBoost>> boosts = ParseBoosts(*(*replies)[3]);
             for (const absl::Status& s :
                  {policy.status(), rules.status(), profile.status(), boosts.status()}) {
               if (!s.ok()) return std::move(done)(s);
             }
             inputs.policy = *std::move(policy);
             inputs.rules = *std::move(rules);
             inputs.profile = *std::move(profile);
             inputs.boosts = *std::move(boosts);
             std::move(done)(std::move(inputs));
           });
}

void LedgerStore::ReadGiversAllowance(absl::string_view org,
                                      const std::vector<std::string>& givers, Deadline deadline,
                                      Callback<PostAllowance> done) {
  // The version first: everything read after it is at least as new, so a
  // post whose script still finds this version used current inputs.
  std::vector<common::redis::Command> commands = {{"GET", keys::AllowanceVersion(org)},
                                                  {"GET", keys::Policy(org)},
                                                  {"HGETALL", keys::AllowanceRules(org)}};
  for (const std::string& giver : givers) {
    commands.push_back({"HGET", keys::AllowanceProfiles(org), giver});
    commands.push_back({"HGETALL", keys::AllowanceBoosts(org, giver)});
  }
  Pipeline(std::move(commands), deadline,
           [givers, done = std::move(done)](
               absl::StatusOr<common::redis::PipelineReplies> replies) mutable {
             if (!replies.ok()) return std::move(done)(replies.status());
             if (absl::Status s = FirstError(*replies); !s.ok()) return std::move(done)(s);
             KUDOS_CHECK(replies->size() == 3 + 2 * givers.size(),
                         "one reply per command of the pipeline");
             PostAllowance out;
             const Reply& version = *(*replies)[0];
             out.version = version.is_nil() ? "0" : version.str;
             absl::StatusOr<AllowancePolicy> policy = ParsePolicyReply(*(*replies)[1]);
             if (!policy.ok()) return std::move(done)(policy.status());
             out.inputs.policy = *std::move(policy);
             absl::StatusOr<std::vector<AllowanceRule>> rules = ParseRules(*(*replies)[2]);
             if (!rules.ok()) return std::move(done)(rules.status());
             out.inputs.rules = *std::move(rules);
             for (size_t i = 0; i < givers.size(); ++i) {
               absl::StatusOr<AllowanceProfile> profile =
                   ParseProfile(*(*replies)[3 + 2 * i], givers[i]);
               if (!profile.ok()) return std::move(done)(profile.status());
               absl::StatusOr<std::vector<AllowanceBoost>> boosts =
                   ParseBoosts(*(*replies)[4 + 2 * i]);
               if (!boosts.ok()) return std::move(done)(boosts.status());
               out.inputs.profiles[givers[i]] = *std::move(profile);
               out.inputs.boosts[givers[i]] = *std::move(boosts);
             }
             std::move(done)(std::move(out));
           });
}

std::map<std::string, int64_t> GiversAllowance::Limits(
    const common::calendar::Period& period) const {
  std::map<std::string, int64_t> limits;
  if (rules.empty() && absl::c_all_of(boosts, [](const auto& b) { return b.second.empty(); })) {
    return limits;
  }
  for (const auto& [giver, profile] : profiles) {
    auto found = boosts.find(giver);
    EffectiveAllowance effective =
        ComputeAllowance(policy, period, rules, profile,
                         found == boosts.end() ? std::vector<AllowanceBoost>() : found->second);
    if (effective.points != policy.points_per_period()) limits[giver] = effective.points;
  }
  return limits;
}

void LedgerStore::ListAllowanceRules(absl::string_view org, Deadline deadline,
                                     Callback<std::vector<AllowanceRule>> done) {
  Run({"HGETALL", keys::AllowanceRules(org)}, deadline,
      [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) return std::move(done)(reply.status());
        std::move(done)(ParseRules(*reply));
      });
}

void LedgerStore::SetAllowanceRule(absl::string_view org, absl::string_view actor,
                                   const AllowanceRule& rule, Deadline deadline,
                                   Callback<bool> done) {
  std::vector<std::string> args = {"set_rule", rule.rule_id(), rule.SerializeAsString(),
                                   absl::StrCat(kMaxAllowanceRules)};
  Append(args, AuditFields(org, actor, "ledger.set_allowance_rule", rule.rule_id(),
                           rule.description().empty() ? "allowance rule set" : rule.description(),
                           {"extra_points", absl::StrCat(rule.extra_points()),
                            "points_per_direct_report",
                            absl::StrCat(rule.points_per_direct_report())}));
  EvalAllowance(org, WithAudit(org, {keys::AllowanceRules(org)}, !actor.empty()),
                std::move(args), deadline,
                [rule_id = rule.rule_id(), done = std::move(done)](
                    absl::StatusOr<Reply> reply) mutable {
                  if (!reply.ok()) return std::move(done)(reply.status());
                  const std::string& code = Code(*reply);
                  if (code == "FULL") {
                    return std::move(done)(absl::FailedPreconditionError(absl::StrCat(
                        "rule.rule_id: the org already has ", Count(*reply),
                        " allowance rules, the most it may have (", kMaxAllowanceRules,
                        "); delete one before adding '", rule_id, "'")));
                  }
                  if (code != "OK" && code != "SAME") return std::move(done)(Malformed("reply"));
                  std::move(done)(code == "OK");
                });
}

void LedgerStore::DeleteAllowanceRule(absl::string_view org, absl::string_view actor,
                                      absl::string_view rule_id, Deadline deadline,
                                      Callback<bool> done) {
  std::vector<std::string> args = {"delete_rule", std::string(rule_id)};
  Append(args, AuditFields(org, actor, "ledger.delete_allowance_rule", rule_id,
                           "allowance rule deleted"));
  EvalAllowance(org, WithAudit(org, {keys::AllowanceRules(org)}, !actor.empty()),
                std::move(args), deadline,
                [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                  if (!reply.ok()) return std::move(done)(reply.status());
                  const std::string& code = Code(*reply);
                  if (code != "OK" && code != "SAME") return std::move(done)(Malformed("reply"));
                  std::move(done)(code == "OK");
                });
}

void LedgerStore::SetAllowanceProfile(absl::string_view org, absl::string_view actor,
                                      const AllowanceProfile& profile, Deadline deadline,
                                      StatusCallback done) {
  std::vector<std::string> args = {"set_profile", profile.person_id(),
                                   profile.SerializeAsString(),
                                   absl::StrCat(kMaxAllowanceProfiles)};
  Append(args, AuditFields(org, actor, "ledger.set_allowance_profile", profile.person_id(),
                           "allowance profile set",
                           {"team_id", profile.team_id(), "direct_reports",
                            absl::StrCat(profile.direct_reports())}));
  EvalAllowance(org,
                WithAudit(org, {keys::AllowanceProfiles(org), keys::AllowanceRules(org)},
                          !actor.empty()),
                std::move(args), deadline,
                [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                  if (!reply.ok()) return std::move(done)(reply.status());
                  const std::string& code = Code(*reply);
                  if (code == "FULL") {
                    return std::move(done)(absl::FailedPreconditionError(absl::StrCat(
                        "profile.person_id: the org already has ", Count(*reply),
                        " allowance profiles, the most it may have (", kMaxAllowanceProfiles,
                        ")")));
                  }
                  if (code != "OK" && code != "SAME") return std::move(done)(Malformed("reply"));
                  std::move(done)(absl::OkStatus());
                });
}

void LedgerStore::GrantBoost(absl::string_view org, absl::string_view actor,
                             const AllowanceBoost& boost, absl::string_view fingerprint,
                             absl::Time now, Deadline deadline,
                             Callback<std::pair<AllowanceBoost, bool>> done) {
  std::vector<std::string> args = {"grant",
                                   boost.person_id(),
                                   boost.boost_id(),
                                   boost.SerializeAsString(),
                                   std::string(fingerprint),
                                   absl::StrCat(absl::ToUnixMillis(FromTimestamp(boost.end_time()))),
                                   absl::StrCat(absl::ToUnixMillis(now)),
                                   absl::StrCat(kMaxBoostsPerPerson)};
  Append(args, AuditFields(org, actor, "ledger.grant_allowance_boost", boost.person_id(),
                           boost.reason(),
                           {"boost_id", boost.boost_id(), "points", absl::StrCat(boost.points()),
                            "recurring", boost.recurring() ? "true" : "false"}));
  EvalAllowance(
      org, WithAudit(org, {keys::AllowanceBoosts(org, boost.person_id())}, !actor.empty()),
      std::move(args), deadline,
      [boost, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) return std::move(done)(reply.status());
        const std::string& code = Code(*reply);
        if (code == "OK") return std::move(done)(std::make_pair(boost, true));
        if (code == "FULL") {
          return std::move(done)(absl::FailedPreconditionError(absl::StrCat(
              "person_id: '", boost.person_id(), "' already has ", Count(*reply),
              " allowance boosts, the most a person may have (", kMaxBoostsPerPerson,
              "); cancelled boosts count until they end")));
        }
        if (code != "EXISTS" && code != "CONFLICT") return std::move(done)(Malformed("reply"));
        absl::StatusOr<AllowanceBoost> stored =
            ParseBody<AllowanceBoost>(reply->elements.size() > 1 ? reply->elements[1].str : "",
                                      "allowance boost");
        if (!stored.ok()) return std::move(done)(stored.status());
        if (code == "CONFLICT") {
          return std::move(done)(absl::AlreadyExistsError(absl::StrCat(
              "request_id: already granted boost '", stored->boost_id(), "' to '",
              stored->person_id(), "' with other fields (", stored->points(),
              " points); use a new request_id for another boost")));
        }
        std::move(done)(std::make_pair(*std::move(stored), false));
      });
}

void LedgerStore::CancelBoost(absl::string_view org, absl::string_view actor,
                              absl::string_view person, absl::string_view boost_id,
                              Deadline deadline, Callback<AllowanceBoost> done) {
  auto not_found = [person = std::string(person), id = std::string(boost_id)]() {
    return absl::NotFoundError(
        absl::StrCat("boost_id: '", person, "' has no allowance boost '", id, "'"));
  };
  Run({"HGET", keys::AllowanceBoosts(org, person), std::string(boost_id)}, deadline,
      [this, org = std::string(org), actor = std::string(actor), person = std::string(person),
       deadline, not_found, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) return std::move(done)(reply.status());
        if (reply->is_nil()) return std::move(done)(not_found());
        absl::StatusOr<AllowanceBoost> boost =
            ParseBody<AllowanceBoost>(reply->str, "allowance boost");
        if (!boost.ok()) return std::move(done)(boost.status());
        if (boost->cancelled()) return std::move(done)(*std::move(boost));  // a retry
        boost->set_cancelled(true);
        std::vector<std::string> args = {"cancel", person, boost->boost_id(),
                                         boost->SerializeAsString()};
        Append(args, AuditFields(org, actor, "ledger.cancel_allowance_boost", person,
                                 "allowance boost cancelled", {"boost_id", boost->boost_id()}));
        EvalAllowance(org, WithAudit(org, {keys::AllowanceBoosts(org, person)}, !actor.empty()),
                      std::move(args), deadline,
                      [boost = *boost, not_found, done = std::move(done)](
                          absl::StatusOr<Reply> cancelled) mutable {
                        if (!cancelled.ok()) return std::move(done)(cancelled.status());
                        if (Code(*cancelled) == "NOT_FOUND") return std::move(done)(not_found());
                        if (Code(*cancelled) != "OK") return std::move(done)(Malformed("reply"));
                        std::move(done)(std::move(boost));
                      });
      });
}

// ---- AllowanceCache (allowance_cache.h) ----

std::optional<PostAllowance> AllowanceCache::Lookup(absl::string_view org,
                                                    const std::vector<std::string>& givers,
                                                    Clock::time_point now) {
  absl::MutexLock lock(&mu_);
  auto found = orgs_.find(org);
  if (found == orgs_.end()) return std::nullopt;
  OrgEntry& entry = *found->second;
  if (now - entry.read_at > options_.max_age) return std::nullopt;
  const bool rules = !entry.rules.empty();
  PostAllowance out;
  for (const std::string& giver : givers) {
    auto person = entry.people.find(giver);
    if (person == entry.people.end()) {
      // Without rules a profile counts for nothing, and no entry means no
      // boosts. With rules the profile must be read.
      if (rules) return std::nullopt;
      out.inputs.profiles[giver].set_person_id(giver);
      out.inputs.boosts[giver];
      continue;
    }
    out.inputs.profiles[giver] = person->second.profile;
    out.inputs.boosts[giver] = person->second.boosts;
  }
  entry.last_used = ++clock_;
  out.inputs.policy = entry.policy;
  out.inputs.rules = entry.rules;
  out.version = entry.version;
  return out;
}

void AllowanceCache::Put(absl::string_view org, const PostAllowance& read,
                         Clock::time_point now) {
  absl::MutexLock lock(&mu_);
  auto found = orgs_.find(org);
  if (found == orgs_.end()) {
    if (orgs_.size() >= options_.max_orgs) {
      // The least recently used org leaves (a scan: only when an org is new
      // and the cache full).
      auto oldest = orgs_.begin();
      for (auto it = orgs_.begin(); it != orgs_.end(); ++it) {
        if (it->second->last_used < oldest->second->last_used) oldest = it;
      }
      people_ -= oldest->second->people.size();
      orgs_.erase(oldest);
    }
    found = orgs_.emplace(std::string(org), std::make_shared<OrgEntry>()).first;
  }
  OrgEntry& entry = *found->second;
  if (entry.version != read.version) {
    // People read under another version may be out of date.
    people_ -= entry.people.size();
    entry.people.clear();
  }
  entry.version = read.version;
  entry.read_at = now;
  entry.last_used = ++clock_;
  entry.policy = read.inputs.policy;
  entry.rules = read.inputs.rules;
  const bool rules = !entry.rules.empty();
  for (const auto& [giver, profile] : read.inputs.profiles) {
    auto boosts = read.inputs.boosts.find(giver);
    const bool boosted = boosts != read.inputs.boosts.end() && !boosts->second.empty();
    auto person = entry.people.find(giver);
    if (!rules && !boosted) {
      // Nothing to keep: no entry already says "no boosts".
      if (person != entry.people.end()) {
        entry.people.erase(person);
        --people_;
      }
      continue;
    }
    if (person == entry.people.end()) {
      if (people_ >= options_.max_people) {
        people_ -= entry.people.size();
        entry.people.clear();
      }
      if (people_ >= options_.max_people) continue;  // other orgs hold the room
      person = entry.people.try_emplace(giver).first;
      ++people_;
    }
    person->second.profile = profile;
    person->second.boosts = boosted ? boosts->second : std::vector<AllowanceBoost>();
  }
}

void AllowanceCache::DropOrg(absl::string_view org) {
  absl::MutexLock lock(&mu_);
  auto found = orgs_.find(org);
  if (found == orgs_.end()) return;
  people_ -= found->second->people.size();
  orgs_.erase(found);
}

size_t AllowanceCache::org_count() const {
  absl::MutexLock lock(&mu_);
  return orgs_.size();
}

size_t AllowanceCache::person_count() const {
  absl::MutexLock lock(&mu_);
  return people_;
}

}  // namespace ledger
