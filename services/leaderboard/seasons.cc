#include "services/leaderboard/seasons.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/auth/auth.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "services/leaderboard/leaderboard_events.h"
#include "services/leaderboard/leaderboard_store.h"

namespace leaderboard {

using common::redis::Reply;

namespace {

// KEYS[1] definitions, KEYS[2] their ends (ZSET id -> end ms), KEYS[3] version.
// ARGV: id, definition, end ms, drop-before ms, max seasons.
// Returns {1, definition} when created, {0, stored} when the id exists.
constexpr char kCreateLua[] = R"lua(
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
for _, id in ipairs(old) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
if #old > 0 then redis.call('INCR', KEYS[3]) end
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then return {0, stored} end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
  return redis.error_reply('RESOURCE_EXHAUSTED seasons: the org keeps at most ' .. ARGV[5] ..
                           ' seasons (a closed one leaves its retention after its end)')
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('INCR', KEYS[3])
return {1, ARGV[2]}
)lua";

// KEYS[1] the season's joins, KEYS[2] version. ARGV: person, now ms, max, expire s.
constexpr char kJoinLua[] = R"lua(
local at = redis.call('HGET', KEYS[1], ARGV[1])
if at then return at end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return redis.error_reply('RESOURCE_EXHAUSTED season: at most ' .. ARGV[3] .. ' people may join')
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[4])
redis.call('INCR', KEYS[2])
return ARGV[2]
)lua";

// KEYS[1] the season's close record, KEYS[2] the org's events stream.
// ARGV: event, expire s, max len. 1 when this call closed it, 0 otherwise.
constexpr char kSeasonCloseLua[] = R"lua(
if redis.call('HSETNX', KEYS[1], 'event', ARGV[1]) == 0 then return 0 end
redis.call('EXPIREAT', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[1])
return 1
)lua";

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

std::string EndsKey(absl::string_view org) { return absl::StrCat("lbseason:{", org, "}:ends"); }

bool TeamsSeason(const v1::Season& season) {
  return season.participants() == v1::SEASON_PARTICIPANTS_TEAMS;
}

}  // namespace

absl::Status ValidateSeason(const v1::Season& season, absl::Time now,
                            const SeasonLimits& limits) {
  if (!ValidId(season.season_id())) {
    return Invalid("season_id", "must be 1..64 characters of [A-Za-z0-9._-]");
  }
  if (season.display_name().empty() || season.display_name().size() > 200) {
    return Invalid("display_name", "must be 1..200 bytes");
  }
  if (!season.has_start_time() || !season.has_end_time()) {
    return Invalid("start_time", "start_time and end_time are required");
  }
  absl::Time start = FromProto(season.start_time()), end = FromProto(season.end_time());
  // Events before its creation were applied without it: a rebuild would count them.
  if (start < now) return Invalid("start_time", "must not be in the past");
  if (end <= start) return Invalid("end_time", "must be after start_time");
  if (end - start > kMaxSeasonLength) return Invalid("end_time", "a season lasts at most 366 days");
  switch (season.metric()) {
    case v1::METRIC_UNSPECIFIED:
    case v1::METRIC_POINTS_RECEIVED:
    case v1::METRIC_KUDOS_RECEIVED:
    case v1::METRIC_KUDOS_GIVEN:
      break;
    default:
      return Invalid("metric", "unknown metric");
  }
  if (season.participants() != v1::SEASON_PARTICIPANTS_UNSPECIFIED &&
      season.participants() != v1::SEASON_PARTICIPANTS_PEOPLE && !TeamsSeason(season)) {
    return Invalid("participants", "unknown participants");
  }
  if (season.member_ids_size() > limits.max_members) {
    return Invalid("member_ids", absl::StrCat("at most ", limits.max_members));
  }
  for (int i = 0; i < season.member_ids_size(); ++i) {
    if (!ValidId(season.member_ids(i))) {
      return Invalid(absl::StrCat("member_ids[", i, "]"),
                     "must be 1..64 characters of [A-Za-z0-9._-]");
    }
  }
  if (season.join_required() && TeamsSeason(season)) {
    return Invalid("join_required", "only people join a season (participants is TEAMS)");
  }
  if (season.join_required() && season.member_ids_size() > 0) {
    return Invalid("member_ids", "must be empty when join_required (people join themselves)");
  }
  if (season.prize_points_size() > kMaxSeasonPrizes) {
    return Invalid("prize_points", absl::StrCat("at most ", kMaxSeasonPrizes, " prizes"));
  }
  if (season.prize_points_size() > 0 && TeamsSeason(season)) {
    return Invalid("prize_points", "prizes are paid to people: not for a season of teams");
  }
  for (int i = 0; i < season.prize_points_size(); ++i) {
    if (season.prize_points(i) < 1 || season.prize_points(i) > kMaxSeasonPrizePoints) {
      return Invalid(absl::StrCat("prize_points[", i, "]"),
                     absl::StrCat("must be 1..", kMaxSeasonPrizePoints));
    }
  }
  return absl::OkStatus();
}

v1::Season StoredDefinition(const v1::Season& season, absl::Time now) {
  v1::Season stored;
  stored.set_season_id(season.season_id());
  stored.set_display_name(season.display_name());
  *stored.mutable_start_time() = season.start_time();
  *stored.mutable_end_time() = season.end_time();
  stored.set_metric(season.metric() == v1::METRIC_UNSPECIFIED ? v1::METRIC_POINTS_RECEIVED
                                                              : season.metric());
  stored.set_participants(TeamsSeason(season) ? v1::SEASON_PARTICIPANTS_TEAMS
                                              : v1::SEASON_PARTICIPANTS_PEOPLE);
  std::set<std::string> members(season.member_ids().begin(), season.member_ids().end());
  for (const std::string& id : members) stored.add_member_ids(id);
  stored.set_join_required(season.join_required());
  *stored.mutable_prize_points() = season.prize_points();
  ToProto(now, stored.mutable_create_time());
  return stored;
}

absl::Time SeasonBoardExpiry(const v1::Season& season) {
  return FromProto(season.end_time()) + absl::Hours(24 * kSeasonRetentionDays);
}

SeasonDef DefOf(const v1::Season& stored, std::map<std::string, int64_t> joined_ms) {
  SeasonDef def;
  def.id = stored.season_id();
  def.start = FromProto(stored.start_time());
  def.end = FromProto(stored.end_time());
  def.metric = stored.metric();
  def.teams = TeamsSeason(stored);
  def.members.insert(stored.member_ids().begin(), stored.member_ids().end());
  def.join_required = stored.join_required();
  def.joined_ms = std::move(joined_ms);
  def.expiry = absl::StrCat(absl::ToUnixSeconds(SeasonBoardExpiry(stored)));
  return def;
}

ResolvedBoard ResolveSeasonBoard(absl::string_view org, const v1::Season& season) {
  ResolvedBoard resolved;
  resolved.key = SeasonBoardKey(org, season.season_id(), TeamsSeason(season));
  resolved.period.key = season.season_id();
  resolved.period.start = FromProto(season.start_time());
  resolved.period.end = FromProto(season.end_time());
  return resolved;
}

ledger::v1::PostTransfersRequest PrizeTransfers(const std::string& season_id,
                                                const v1::PeriodClosed& closed) {
  ledger::v1::PostTransfersRequest request;
  request.set_linked(true);  // a season's prizes are paid together or not at all
  for (const v1::SeasonPrize& prize : closed.prizes()) {
    ledger::v1::Transfer* transfer = request.add_transfers();
    transfer->set_transfer_id(prize.transfer_id());
    transfer->mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ISSUER);
    transfer->mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    transfer->mutable_credit_account()->set_person_id(prize.subject_id());
    transfer->set_amount(prize.points());
    transfer->set_kind(ledger::v1::TRANSFER_KIND_SEASON_PRIZE);
    transfer->set_reference(absl::StrCat("season:", season_id));
    (*transfer->mutable_tags())["season"] = season_id;
    (*transfer->mutable_tags())["rank"] = absl::StrCat(prize.rank());
  }
  return request;
}

// ---------------------------------------------------------------- SeasonStore

SeasonStore::SeasonStore(common::redis::Pool& pool, SeasonLimits limits)
    : pool_(pool),
      limits_(limits),
      create_script_("leaderboard_season_create", kCreateLua),
      join_script_("leaderboard_season_join", kJoinLua),
      close_script_("leaderboard_season_close", kSeasonCloseLua) {
  KUDOS_CHECK(limits_.max_seasons_per_org >= 1 && limits_.max_members >= 1,
              "season bounds are positive");
}

absl::StatusOr<v1::Season> SeasonStore::Create(const std::string& org, const v1::Season& season,
                                               absl::Time now) {
  if (absl::Status valid = ValidateSeason(season, now, limits_); !valid.ok()) return valid;
  v1::Season stored = StoredDefinition(season, now);
  absl::Time drop_before = now - absl::Hours(24 * kSeasonRetentionDays);
  absl::StatusOr<Reply> reply = pool_.Eval(
      create_script_, {SeasonsKey(org), EndsKey(org), SeasonsVersionKey(org)},
      {stored.season_id(), stored.SerializeAsString(),
       absl::StrCat(absl::ToUnixMillis(FromProto(stored.end_time()))),
       absl::StrCat(absl::ToUnixMillis(drop_before)), absl::StrCat(limits_.max_seasons_per_org)});
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 2) return absl::InternalError("season create: unexpected reply");
  v1::Season existing;
  if (!existing.ParseFromString(reply->elements[1].str)) {
    return absl::InternalError("season create: a stored season does not parse");
  }
  if (reply->elements[0].integer == 0) {
    // A retry of the same definition answers it; create_time is the first's.
    v1::Season again = stored;
    *again.mutable_create_time() = existing.create_time();
    if (again.SerializeAsString() != existing.SerializeAsString()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "season_id: '", season.season_id(), "' exists with another definition"));
    }
  }
  return Get(org, season.season_id(), now);
}

absl::StatusOr<std::map<std::string, v1::Season>> SeasonStore::Definitions(
    const std::string& org) {
  absl::StatusOr<Reply> all = pool_.Run({"HGETALL", SeasonsKey(org)});
  if (!all.ok()) return all.status();
  std::map<std::string, v1::Season> out;
  for (size_t i = 0; i + 1 < all->elements.size(); i += 2) {
    v1::Season season;
    if (!season.ParseFromString(all->elements[i + 1].str)) {
      return absl::InternalError(
          absl::StrCat("season '", all->elements[i].str, "' does not parse"));
    }
    out[all->elements[i].str] = std::move(season);
  }
  return out;
}

v1::Season SeasonStore::WithState(v1::Season season, const CloseRecord& close, int64_t joined,
                                  absl::Time now) const {
  season.set_joined_count(joined);
  if (close.event.has_value()) {
    const v1::PeriodClosed& closed = close.event->period_closed();
    *season.mutable_final_entries() = closed.entries();
    *season.mutable_prizes() = closed.prizes();
    bool settled = closed.prizes().empty() || close.paid;
    season.set_state(settled ? v1::SEASON_STATE_CLOSED : v1::SEASON_STATE_ENDED);
  } else if (now < FromProto(season.start_time())) {
    season.set_state(v1::SEASON_STATE_SCHEDULED);
  } else if (now < FromProto(season.end_time())) {
    season.set_state(v1::SEASON_STATE_RUNNING);
  } else {
    season.set_state(v1::SEASON_STATE_ENDED);
  }
  return season;
}

absl::StatusOr<std::vector<v1::Season>> SeasonStore::List(const std::string& org,
                                                          absl::Time now) {
  absl::StatusOr<std::map<std::string, v1::Season>> defs = Definitions(org);
  if (!defs.ok()) return defs.status();
  std::vector<common::redis::Command> reads;
  for (const auto& [id, season] : *defs) {
    reads.push_back({"HMGET", SeasonCloseKey(org, id), "event", "paid"});
    reads.push_back({"HLEN", SeasonJoinsKey(org, id)});
  }
  std::vector<v1::Season> out;
  if (reads.empty()) return out;
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline(reads);
  if (!replies.ok()) return replies.status();
  size_t at = 0;
  for (const auto& [id, season] : *defs) {
    const absl::StatusOr<Reply>& close_reply = (*replies)[at++];
    const absl::StatusOr<Reply>& joined = (*replies)[at++];
    if (!close_reply.ok()) return close_reply.status();
    if (!joined.ok()) return joined.status();
    CloseRecord close;
    if (close_reply->elements.size() == 2 && !close_reply->elements[0].is_nil()) {
      close.event.emplace();
      if (!close.event->ParseFromString(close_reply->elements[0].str)) {
        return absl::InternalError(absl::StrCat("season '", id, "': close record does not parse"));
      }
      close.paid = !close_reply->elements[1].is_nil();
    }
    out.push_back(WithState(season, close, joined->integer, now));
  }
  std::sort(out.begin(), out.end(), [](const v1::Season& a, const v1::Season& b) {
    absl::Time sa = FromProto(a.start_time()), sb = FromProto(b.start_time());
    return sa != sb ? sa < sb : a.season_id() < b.season_id();
  });
  return out;
}

absl::StatusOr<v1::Season> SeasonStore::Get(const std::string& org, const std::string& season_id,
                                            absl::Time now) {
  if (!ValidId(season_id)) {
    return Invalid("season_id", "must be 1..64 characters of [A-Za-z0-9._-]");
  }
  absl::StatusOr<std::vector<v1::Season>> all = List(org, now);
  if (!all.ok()) return all.status();
  for (v1::Season& season : *all) {
    if (season.season_id() == season_id) return std::move(season);
  }
  return absl::NotFoundError(absl::StrCat("season_id: no season '", season_id, "'"));
}

absl::StatusOr<std::pair<v1::Season, absl::Time>> SeasonStore::Join(const std::string& org,
                                                                    const std::string& season_id,
                                                                    const std::string& person,
                                                                    absl::Time now) {
  absl::StatusOr<v1::Season> season = Get(org, season_id, now);
  if (!season.ok()) return season.status();
  if (!season->join_required()) {
    return absl::FailedPreconditionError(
        absl::StrCat("season '", season_id, "' needs no join: its members are set"));
  }
  if (now >= FromProto(season->end_time())) {
    return absl::FailedPreconditionError(absl::StrCat("season '", season_id, "' has ended"));
  }
  absl::StatusOr<Reply> at = pool_.Eval(
      join_script_, {SeasonJoinsKey(org, season_id), SeasonsVersionKey(org)},
      {person, absl::StrCat(absl::ToUnixMillis(now)), absl::StrCat(limits_.max_members),
       absl::StrCat(absl::ToUnixSeconds(SeasonBoardExpiry(*season)))});
  if (!at.ok()) return at.status();
  int64_t ms = 0;
  if (!absl::SimpleAtoi(at->str, &ms)) return absl::InternalError("season join: unexpected reply");
  absl::StatusOr<v1::Season> joined = Get(org, season_id, now);
  if (!joined.ok()) return joined.status();
  return std::make_pair(*std::move(joined), absl::FromUnixMillis(ms));
}

absl::StatusOr<std::shared_ptr<const SeasonSet>> SeasonStore::Load(const std::string& org) {
  absl::StatusOr<Reply> version = pool_.Run({"GET", SeasonsVersionKey(org)});
  if (!version.ok()) return version.status();
  return LoadAt(org, version->is_nil() ? "" : version->str);
}

absl::StatusOr<std::shared_ptr<const SeasonSet>> SeasonStore::LoadAt(const std::string& org,
                                                                     const std::string& version) {
  if (version.empty()) return std::shared_ptr<const SeasonSet>();  // never had a season
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(org);
    if (it != cache_.end() && it->second.first == version) return it->second.second;
  }
  absl::StatusOr<std::map<std::string, v1::Season>> defs = Definitions(org);
  if (!defs.ok()) return defs.status();
  std::vector<common::redis::Command> joins;
  for (const auto& [id, season] : *defs) joins.push_back({"HGETALL", SeasonJoinsKey(org, id)});
  std::vector<absl::StatusOr<Reply>> replies;
  if (!joins.empty()) {
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> got = pool_.Pipeline(joins);
    if (!got.ok()) return got.status();
    replies = *std::move(got);
  }
  auto set = std::make_shared<SeasonSet>();
  size_t at = 0;
  for (const auto& [id, season] : *defs) {
    const absl::StatusOr<Reply>& reply = replies[at++];
    if (!reply.ok()) return reply.status();
    std::map<std::string, int64_t> joined;
    for (size_t i = 0; i + 1 < reply->elements.size(); i += 2) {
      int64_t ms = 0;
      if (absl::SimpleAtoi(reply->elements[i + 1].str, &ms)) joined[reply->elements[i].str] = ms;
    }
    set->seasons.push_back(DefOf(season, std::move(joined)));
  }
  absl::MutexLock lock(&mu_);
  if (cache_.size() > 10000) cache_.clear();  // bounded; reloaded on demand
  cache_[org] = {version, set};
  return std::shared_ptr<const SeasonSet>(set);
}

absl::StatusOr<bool> SeasonStore::Close(const std::string& org, const std::string& season_id,
                                        const std::string& event, absl::Time expire,
                                        int64_t max_len) {
  std::string record = SeasonCloseKey(org, season_id);
  KUDOS_CHECK(OrgOfKey(record) == org && OrgOfKey(EventsStream(org)) == org,
              "a season's close touches only its org's slot");
  absl::StatusOr<Reply> closed =
      pool_.Eval(close_script_, {record, EventsStream(org)},
                 {event, absl::StrCat(absl::ToUnixSeconds(expire)), absl::StrCat(max_len)});
  if (!closed.ok()) return closed.status();
  return closed->integer == 1;
}

absl::StatusOr<SeasonStore::CloseRecord> SeasonStore::ReadClose(const std::string& org,
                                                                const std::string& season_id) {
  absl::StatusOr<Reply> reply =
      pool_.Run({"HMGET", SeasonCloseKey(org, season_id), "event", "paid"});
  if (!reply.ok()) return reply.status();
  CloseRecord record;
  if (reply->elements.size() != 2 || reply->elements[0].is_nil()) return record;
  record.event.emplace();
  if (!record.event->ParseFromString(reply->elements[0].str)) {
    return absl::InternalError(
        absl::StrCat("season '", season_id, "': close record does not parse"));
  }
  record.paid = !reply->elements[1].is_nil();
  return record;
}

absl::Status SeasonStore::MarkPaid(const std::string& org, const std::string& season_id) {
  absl::StatusOr<Reply> reply = pool_.Run({"HSET", SeasonCloseKey(org, season_id), "paid", "1"});
  return reply.ok() ? absl::OkStatus() : reply.status();
}

// ---------------------------------------------------------------- prizes

PrizePayer MakeLedgerPrizePayer(const std::string& address, const std::string& service_secret,
                                absl::Duration timeout) {
  if (address.empty()) {
    return [](const std::string&, const ledger::v1::PostTransfersRequest&) {
      return absl::FailedPreconditionError("no ledger configured (--ledger): prizes wait");
    };
  }
  std::shared_ptr<ledger::v1::LedgerService::Stub> stub = ledger::v1::LedgerService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  return [stub, service_secret, timeout](const std::string& org,
                                         const ledger::v1::PostTransfersRequest& request) {
    absl::StatusOr<std::string> token =
        common::auth::MintServiceToken("leaderboard", org, service_secret, absl::Now());
    if (!token.ok()) return token.status();
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + *token);
    common::grpc_util::SetDeadline(context, absl::ToChronoMilliseconds(timeout));
    ledger::v1::PostTransfersResponse response;
    grpc::Status status = stub->PostTransfers(&context, request, &response);
    if (!status.ok()) return common::grpc_util::FromGrpcStatus(status);
    for (const ledger::v1::TransferResult& result : response.results()) {
      if (result.status_code() != 0) {
        return absl::Status(static_cast<absl::StatusCode>(result.status_code()),
                            absl::StrCat(result.transfer_id(), ": ", result.error_message()));
      }
    }
    return absl::OkStatus();
  };
}

// ---------------------------------------------------------------- closing

SeasonCloser::SeasonCloser(Store& store, SeasonStore& seasons, PrizePayer payer, int top_n,
                           int64_t max_len, absl::Duration grace)
    : store_(store),
      seasons_(seasons),
      payer_(std::move(payer)),
      top_n_(top_n),
      max_len_(max_len),
      grace_(grace) {
  KUDOS_CHECK(top_n_ >= 1 && max_len_ >= 1, "a season's close lists a bounded number of entries");
}

absl::StatusOr<std::string> SeasonCloser::BuildEvent(const std::string& org,
                                                     const v1::Season& season) {
  ResolvedBoard board = ResolveSeasonBoard(org, season);
  int prizes = season.prize_points_size();
  int want = prizes > 0 ? kMaxSeasonWinners : top_n_;
  absl::StatusOr<BoardPage> page = store_.FirstPage(board.key, std::max(want, top_n_));
  if (!page.ok()) return page.status();
  std::vector<RankedEntry> kept;
  for (size_t i = 0; i < page->entries.size(); ++i) {
    const RankedEntry& entry = page->entries[i];
    if (static_cast<int>(i) < top_n_ || entry.rank <= prizes) kept.push_back(entry);
  }
  std::vector<std::string> ids;
  for (const RankedEntry& entry : kept) ids.push_back(entry.subject_id);
  absl::StatusOr<std::map<std::string, std::string>> names =
      store_.DisplayNames(org, TeamsSeason(season), ids);
  if (!names.ok()) return names.status();
  v1::LeaderboardEvent event;
  event.set_event_id(absl::StrCat("period.closed/season/", season.season_id()));
  event.set_org_id(org);
  *event.mutable_event_time() = season.end_time();
  v1::PeriodClosed* closed = event.mutable_period_closed();
  closed->mutable_board()->set_season_id(season.season_id());
  closed->mutable_board()->set_metric(season.metric());
  closed->set_period(season.season_id());
  *closed->mutable_period_start() = season.start_time();
  *closed->mutable_period_end() = season.end_time();
  closed->set_total_entries(page->total);
  for (const RankedEntry& entry : kept) {
    v1::LeaderboardEntry* e = closed->add_entries();
    e->set_rank(entry.rank);
    e->set_subject_id(entry.subject_id);
    auto name = names->find(entry.subject_id);
    e->set_display_name(name == names->end() ? entry.subject_id : name->second);
    e->set_score(entry.score);
    // Only a positive score wins: a board left at 0 or below by retractions pays nobody.
    if (entry.rank <= prizes && entry.score > 0) {
      v1::SeasonPrize* prize = closed->add_prizes();
      prize->set_rank(entry.rank);
      prize->set_subject_id(entry.subject_id);
      prize->set_points(season.prize_points(static_cast<int>(entry.rank - 1)));
      prize->set_transfer_id(
          absl::StrCat("season:", season.season_id(), ":", entry.rank, ":", entry.subject_id));
    }
  }
  return event.SerializeAsString();
}

absl::StatusOr<SeasonCloser::Result> SeasonCloser::RunOnce(const std::string& org, absl::Time now,
                                                           absl::Time position) {
  Result result;
  absl::StatusOr<std::vector<v1::Season>> seasons = seasons_.List(org, now);
  if (!seasons.ok()) return seasons.status();
  for (const v1::Season& season : *seasons) {
    if (season.state() == v1::SEASON_STATE_CLOSED) continue;
    // Due once every event before its end (and the grace) is applied.
    if (FromProto(season.end_time()) + grace_ > position) continue;
    const std::string& id = season.season_id();
    if (season.prizes().empty() && season.final_entries().empty()) {
      absl::StatusOr<std::string> event = BuildEvent(org, season);
      if (!event.ok()) return event.status();
      absl::StatusOr<bool> closed =
          seasons_.Close(org, id, *event, SeasonBoardExpiry(season), max_len_);
      if (!closed.ok()) return closed.status();
      if (*closed) ++result.closed;
    }
    // The prizes the record names (the first close's), whoever wrote it.
    absl::StatusOr<SeasonStore::CloseRecord> record = seasons_.ReadClose(org, id);
    if (!record.ok()) return record.status();
    if (!record->event.has_value() || record->paid) continue;
    const v1::PeriodClosed& closed = record->event->period_closed();
    if (closed.prizes().empty()) continue;
    if (absl::Status paid = payer_(org, PrizeTransfers(id, closed)); !paid.ok()) {
      common::log::Warning(absl::StrCat("leaderboard: season '", id, "' of org '", org,
                                        "': prizes not paid yet: ", paid.ToString()));
      continue;  // the next sweep posts the same transfer ids again
    }
    if (absl::Status marked = seasons_.MarkPaid(org, id); !marked.ok()) return marked;
    ++result.paid;
  }
  return result;
}

}  // namespace leaderboard
