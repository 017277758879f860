#include "services/feedback/feedback_sampler.h"

#include <unistd.h>

#include <algorithm>
#include <set>
#include <string_view>
#include <thread>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/calendar/calendar.h"
#include "common/log/log.h"
#include "google/protobuf/util/time_util.h"

namespace feedback {
namespace {

using common::redis::Reply;

int64_t Ms(absl::Time t) { return absl::ToUnixMillis(t); }

// The greatest string below every id >= `id` and above every id < `id`
// (ids are 1..64 of [A-Za-z0-9._-], all above ',' and below 0x7f): the
// exclusive "after" bound that makes a lexicographic range start at `id`.
std::string Before(const std::string& id) {
  std::string out = id;
  out.back() = static_cast<char>(out.back() - 1);
  out.push_back('\x7f');
  return out;
}

// The entries of an XREADGROUP reply, over its streams.
size_t StreamEntries(const Reply& reply) {
  size_t n = 0;
  for (const Reply& stream : reply.elements) {
    if (stream.elements.size() >= 2) n += stream.elements[1].elements.size();
  }
  return n;
}

}  // namespace

absl::StatusOr<std::optional<kudos::v1::Team>> Directory::FindTeam(const std::string& org,
                                                                   const std::string& team_id) {
  absl::StatusOr<std::vector<kudos::v1::Team>> teams = kudos_.ListTeams(org, Before(team_id), 1);
  if (!teams.ok()) return teams.status();
  if (teams->empty() || teams->front().team_id() != team_id) {
    return std::optional<kudos::v1::Team>();
  }
  return std::optional<kudos::v1::Team>(teams->front());
}

absl::StatusOr<bool> Directory::Manages(const std::string& org, const std::string& team_id,
                                        const std::string& person) {
  std::string after;
  for (;;) {
    absl::StatusOr<std::vector<kudos::v1::Person>> page =
        kudos_.ListPeople(org, team_id, after, 1000);
    if (!page.ok()) return page.status();
    for (const kudos::v1::Person& member : *page) {
      if (member.active() && member.manager_id() == person) return true;
    }
    if (page->size() < 1000) return false;
    after = page->back().person_id();
  }
}

absl::StatusOr<SweepStats> Sampler::RunOnce(const std::string& org, absl::Time now) {
  SweepStats stats;
  absl::StatusOr<std::vector<feedback::v1::Survey>> surveys = store_.ListSurveys(org, "");
  if (!surveys.ok()) return surveys.status();
  if (surveys->empty()) return stats;
  absl::StatusOr<kudos::v1::OrgSettings> org_settings = directory_.kudos().GetSettings(org);
  if (!org_settings.ok()) return org_settings.status();
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(org_settings->time_zone());
  if (!zone.ok()) return zone.status();
  const int week_start = static_cast<int>(org_settings->week_start());
  absl::StatusOr<feedback::v1::FeedbackSettings> stored = store_.GetSettings(org);
  if (!stored.ok()) return stored.status();
  const feedback::v1::FeedbackSettings settings = EffectiveSettings(*stored);
  const std::string week_key =
      common::calendar::PeriodAt(common::calendar::PeriodUnit::kWeek, now, *zone, week_start).key;
  absl::BitGen gen;
  for (const feedback::v1::Survey& survey : *surveys) {
    const SurveyPeriod period = PeriodOf(survey.cadence(), now, *zone, week_start);
    absl::StatusOr<bool> swept = store_.Swept(org, survey.survey_id(), period.key);
    if (!swept.ok()) return swept.status();
    if (*swept) {
      ++stats.already_swept;
      continue;
    }
    absl::StatusOr<std::optional<kudos::v1::Team>> team =
        directory_.FindTeam(org, survey.team_id());
    if (!team.ok()) return team.status();
    absl::StatusOr<std::vector<std::string>> served =
        store_.Served(org, survey.team_id(), Ms(now - absl::Hours(24 * kServedLookbackDays)));
    if (!served.ok()) return served.status();
    absl::StatusOr<std::map<std::string, kudos::v1::Person>> people =
        directory_.kudos().GetPeople(org, *served);
    if (!people.ok()) return people.status();
    std::vector<std::string> candidates;
    for (const std::string& id : *served) {
      auto it = people->find(id);
      // Never a member of the team itself; only active people of the directory.
      if (it == people->end() || !it->second.active()) continue;
      if (it->second.team_id() == survey.team_id()) continue;
      candidates.push_back(id);
    }
    std::shuffle(candidates.begin(), candidates.end(), gen);
    feedback::v1::Invitation invitation;
    invitation.set_survey_id(survey.survey_id());
    invitation.set_team_id(survey.team_id());
    invitation.set_period(period.key);
    *invitation.mutable_closes_at() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(Ms(period.end));
    *invitation.mutable_questions() = survey.questions();
    if (team->has_value()) invitation.set_team_display_name((*team)->display_name());
    FeedbackStore::InvitationBatch batch;
    batch.survey_id = survey.survey_id();
    batch.team_id = survey.team_id();
    batch.period = period.key;
    batch.period_start_ms = Ms(period.start);
    batch.closes_ms = Ms(period.end);
    batch.max_invitations = survey.invitations_per_period();
    batch.week_key = week_key;
    batch.weekly_cap = settings.max_invitations_per_person_per_week();
    batch.retention_days = settings.retention_days();
    batch.template_pb = invitation.SerializeAsString();
    batch.candidates = std::move(candidates);
    absl::StatusOr<std::optional<int>> created = store_.CreateInvitations(org, batch, Ms(now));
    if (!created.ok()) return created.status();
    if (!created->has_value()) {
      ++stats.already_swept;
      continue;
    }
    if (**created == 0) continue;  // nobody to invite yet: a later sweep tries again
    ++stats.surveys_swept;
    stats.invitations += **created;
  }
  return stats;
}

SweepStats Sampler::RunAllOrgs(absl::Time now, const std::function<bool()>& stop) {
  SweepStats total;
  absl::StatusOr<std::vector<std::string>> orgs = directory_.kudos().Orgs();
  if (!orgs.ok()) {
    common::log::Warning(absl::StrCat("feedback sweep: ", orgs.status().ToString()));
    return total;
  }
  for (const std::string& org : *orgs) {
    if (stop()) break;
    absl::StatusOr<SweepStats> stats = RunOnce(org, now);
    if (!stats.ok()) {
      common::log::Warning(absl::StrCat("feedback sweep of org ", org, ": ", stats.status().ToString()));
      continue;
    }
    total.surveys_swept += stats->surveys_swept;
    total.invitations += stats->invitations;
    total.already_swept += stats->already_swept;
  }
  return total;
}

ServedConsumer::ServedConsumer(FeedbackStore& store, kudos::KudosStore& kudos,
                               ConsumerOptions options)
    : store_(store), kudos_(kudos), options_(std::move(options)) {
  if (options_.consumer_name.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    options_.consumer_name = absl::StrCat(host, "-", getpid());
  }
}

absl::Status ServedConsumer::Apply(const std::string& org, const Reply& reply,
                                   std::vector<std::string>* ids) {
  std::map<std::string, std::set<std::string>> served;  // team -> people
  int64_t latest_ms = 0;
  auto serve = [&](const std::string& team, const std::string& person, const std::string& other) {
    // A team does not serve its own members.
    if (team.empty() || person.empty() || team == other) return;
    served[team].insert(person);
  };
  for (const Reply& stream : reply.elements) {
    if (stream.elements.size() < 2) continue;
    for (const Reply& entry : stream.elements[1].elements) {
      if (entry.elements.empty()) continue;
      ids->push_back(entry.elements[0].str);
      if (entry.elements.size() < 2) continue;  // deleted meanwhile
      const auto& fields = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str != "event") continue;
        kudos::v1::KudosEvent event;
        if (!event.ParseFromString(fields[i + 1].str)) continue;  // not ours to judge
        latest_ms = std::max<int64_t>(
            latest_ms, google::protobuf::util::TimeUtil::TimestampToMilliseconds(event.event_time()));
        // A survey invitation must not reveal a private thank-you (issue 18).
        if (event.has_kudos_sent() &&
            event.kudos_sent().kudos().visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE) {
          continue;
        }
        if (event.has_kudos_boosted() &&
            event.kudos_boosted().visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE) {
          continue;
        }
        if (event.has_kudos_sent()) {
          const kudos::v1::KudosSent& sent = event.kudos_sent();
          const std::string& giver = sent.kudos().giver_id();
          for (const std::string& recipient : sent.kudos().recipient_ids()) {
            auto team = sent.recipient_team_ids().find(recipient);
            const std::string recipient_team =
                team == sent.recipient_team_ids().end() ? "" : team->second;
            serve(recipient_team, giver, sent.giver_team_id());       // thanked a member
            serve(sent.giver_team_id(), recipient, recipient_team);   // a member thanked them
          }
        } else if (event.has_kudos_boosted()) {
          const kudos::v1::KudosBoosted& boosted = event.kudos_boosted();
          for (const std::string& recipient : boosted.recipient_ids()) {
            auto team = boosted.recipient_team_ids().find(recipient);
            if (team == boosted.recipient_team_ids().end()) continue;
            // The booster's team is not in the event: the sampler skips members.
            serve(team->second, boosted.boost().booster_id(), "");
          }
        }
      }
    }
  }
  if (served.empty()) return absl::OkStatus();
  std::map<std::string, std::vector<std::string>> lists;
  for (auto& [team, people] : served) lists[team].assign(people.begin(), people.end());
  return store_.RecordServed(org, lists, latest_ms > 0 ? latest_ms : Ms(absl::Now()));
}

absl::StatusOr<int> ServedConsumer::PollOrg(const std::string& org) {
  const std::string stream = kudos::KudosStore::EventStream(org);
  common::redis::Pool& pool = store_.pool();
  OrgState& state = orgs_[org];
  if (!state.group_ready) {
    // Without MKSTREAM: an org with no kudos stream yet has nothing to
    // consume, and this background reader never creates keys of its own.
    absl::StatusOr<Reply> created = pool.Run({"XGROUP", "CREATE", stream, options_.group, "0"});
    if (!created.ok()) {
      if (absl::StrContains(created.status().message(), "requires the key to exist")) return 0;
      if (!absl::StrContains(created.status().message(), "BUSYGROUP")) return created.status();
    }
    state.group_ready = true;
  }
  const auto now = std::chrono::steady_clock::now();
  if (now >= state.next_claim) {
    // Entries a dead replica read but never acknowledged come to us.
    absl::StatusOr<Reply> claimed =
        pool.Run({"XAUTOCLAIM", stream, options_.group, options_.consumer_name,
                  absl::StrCat(options_.claim_min_idle.count()), "0", "COUNT",
                  absl::StrCat(options_.batch), "JUSTID"});
    if (!claimed.ok()) return claimed.status();
    state.next_claim = now + std::chrono::seconds(30);
  }
  int applied = 0;
  // Our own pending entries first (a failed earlier pass), then new ones.
  for (const char* from : {"0", ">"}) {
    absl::StatusOr<Reply> reply =
        pool.Run({"XREADGROUP", "GROUP", options_.group, options_.consumer_name, "COUNT",
                  absl::StrCat(options_.batch), "STREAMS", stream, from});
    if (!reply.ok()) {
      if (absl::StrContains(reply.status().message(), "NOGROUP")) state.group_ready = false;
      return reply.status();
    }
    if (reply->is_nil()) continue;
    const bool new_entries = std::string_view(from) == ">";
    if (new_entries && StreamEntries(*reply) >= static_cast<size_t>(options_.batch)) {
      backlog_ = true;  // a full batch: more may be waiting
    }
    std::vector<std::string> ids;
    if (absl::Status s = Apply(org, *reply, &ids); !s.ok()) return s;
    if (ids.empty()) continue;
    common::redis::Command ack = {"XACK", stream, options_.group};
    ack.insert(ack.end(), ids.begin(), ids.end());
    absl::StatusOr<Reply> acked = pool.Run(ack);
    if (!acked.ok()) return acked.status();
    applied += static_cast<int>(ids.size());
  }
  return applied;
}

int ServedConsumer::PollOnce() {
  backlog_ = false;
  absl::StatusOr<std::vector<std::string>> orgs = kudos_.Orgs();
  if (!orgs.ok()) return 0;
  int applied = 0;
  const auto now = std::chrono::steady_clock::now();
  for (const std::string& org : *orgs) {
    OrgState& state = orgs_[org];
    if (now < state.next_attempt) continue;  // this org backs off alone
    absl::StatusOr<int> n = PollOrg(org);
    if (!n.ok()) {
      state.backoff = std::min(options_.max_backoff,
                               std::max(std::chrono::milliseconds(500), state.backoff * 2));
      state.next_attempt = now + state.backoff;
      common::log::Warning(absl::StrCat("feedback consumer, org ", org, ": ", n.status().ToString(),
                                        "; retry in ", state.backoff.count(), " ms"));
      continue;
    }
    state.backoff = std::chrono::milliseconds(0);
    applied += *n;
  }
  return applied;
}

void ServedConsumer::Run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    PollOnce();
    if (backlog_) continue;
    for (auto waited = std::chrono::milliseconds(0); waited < options_.idle_sleep && !stop.load();
         waited += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace feedback
