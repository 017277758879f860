#include "services/kudos/kudos_store.h"

#include <algorithm>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/check/check.h"
#include "lua/kBeginRecognitionLua.h"
#include "lua/kClaimReconcileLua.h"
#include "lua/kFinishRecognitionLua.h"
#include "lua/kPutDirectoryEntryLua.h"
#include "lua/kPutSettingsLua.h"
#include "lua/kReconcileFailedLua.h"
#include "services/kudos/kudos_rules.h"

namespace kudos {
namespace {

using common::redis::Reply;

// A feed's entries in one direction across its head and sealed chunks
// (finish_recognition.lua writes them, archive_batch.lua removes them).
// KEYS[1] = "kudos:{org}:". ARGV: feed, bound ('' = none), limit, order
// ('desc': seq < bound, newest first; 'asc': seq > bound, oldest first).
// Returns {{id, seq, id, seq, ...} (at most limit), the archive's top chunk
// {name, score} or {}}. The head is read as a whole range and merged, so an
// entry a replica of the previous version added to the head below the top
// chunk is still listed in its place.
constexpr char kFeedRangeLua[] = R"lua(
local p, feed = KEYS[1], ARGV[1]
local head = p .. feed
local dir = head .. '#'
local bound, limit, desc = ARGV[2], tonumber(ARGV[3]), ARGV[4] == 'desc'
local lo, hi = '-inf', '+inf'
if bound ~= '' then
  if desc then hi = '(' .. bound else lo = '(' .. bound end
end
local function range(key, n)
  if desc then
    return redis.call('ZRANGE', key, hi, lo, 'BYSCORE', 'REV', 'LIMIT', 0, n, 'WITHSCORES')
  end
  return redis.call('ZRANGE', key, lo, hi, 'BYSCORE', 'LIMIT', 0, n, 'WITHSCORES')
end
local found = {}
local function keep(entries)
  for i = 1, #entries, 2 do
    found[#found + 1] = {entries[i], entries[i + 1], tonumber(entries[i + 1])}
  end
  return #entries / 2
end
keep(range(head, limit))
-- Chunks in order (their ranges do not overlap) until they gave `limit`.
local from_chunks = 0
if desc and bound ~= '' then
  local straddle = redis.call('ZRANGE', dir, bound, '+inf', 'BYSCORE', 'LIMIT', 0, 1)[1]
  if straddle then from_chunks = from_chunks + keep(range(dir .. straddle, limit)) end
end
local offset = 0
while from_chunks < limit do
  local chunks
  if desc then
    chunks = redis.call('ZRANGE', dir, hi, '-inf', 'BYSCORE', 'REV', 'LIMIT', offset, 16)
  else
    chunks = redis.call('ZRANGE', dir, lo, '+inf', 'BYSCORE', 'LIMIT', offset, 16)
  end
  if #chunks == 0 then break end
  for _, chunk in ipairs(chunks) do
    if from_chunks >= limit then break end
    from_chunks = from_chunks + keep(range(dir .. chunk, limit - from_chunks))
  end
  offset = offset + #chunks
end
if desc then
  table.sort(found, function(a, b) return a[3] > b[3] end)
else
  table.sort(found, function(a, b) return a[3] < b[3] end)
end
local out = {}
for i = 1, math.min(#found, limit) do
  out[#out + 1] = found[i][1]
  out[#out + 1] = found[i][2]
end
return {out, redis.call('ZRANGE', p .. 'archive:chunks', -1, -1, 'WITHSCORES')}
)lua";

std::string NowText() { return absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()); }

absl::Status Corrupt(absl::string_view what) {
  return absl::InternalError(absl::StrCat("stored ", what, " cannot be parsed"));
}

}  // namespace

const char* KindName(RecordKind kind) { return kind == RecordKind::kKudos ? "kudos" : "boost"; }

std::string KudosStore::StoredFingerprint(const std::string& fingerprint) {
  if (fingerprint.size() != 64) return fingerprint;
  return absl::HexStringToBytes(fingerprint.substr(0, 32));
}

bool KudosStore::SameFingerprint(const std::string& stored, const std::string& fingerprint) {
  return stored == fingerprint || (fingerprint.size() == 64 && stored == StoredFingerprint(fingerprint));
}

KudosStore::KudosStore(common::redis::Pool& pool)
    : pool_(pool),
      put_directory_entry_("put_directory_entry", kPutDirectoryEntryLua),
      put_settings_("put_settings", kPutSettingsLua),
      begin_("begin_recognition", kBeginRecognitionLua),
      finish_("finish_recognition", kFinishRecognitionLua),
      claim_reconcile_("claim_reconcile", kClaimReconcileLua),
      reconcile_failed_("reconcile_failed", kReconcileFailedLua),
      feed_range_("feed_range", kFeedRangeLua) {}

namespace {

absl::StatusOr<kudos::v1::OrgSettings> ParseSettings(const Reply& reply) {
  if (reply.is_nil()) return DefaultOrgSettings();
  kudos::v1::OrgSettings settings;
  if (!settings.ParseFromString(reply.str)) return Corrupt("org settings");
  // Settings stored before the retention policy existed read with its defaults.
  *settings.mutable_retention() = RetentionWithDefaults(settings.retention());
  return settings;
}

}  // namespace

absl::StatusOr<kudos::v1::OrgSettings> KudosStore::GetSettings(const std::string& org) {
  absl::StatusOr<Reply> reply = pool_.Run({"GET", Prefix(org) + "settings"});
  if (!reply.ok()) return reply.status();
  return ParseSettings(*reply);
}

absl::Status KudosStore::PutSettings(const std::string& org,
                                     const kudos::v1::OrgSettings& settings,
                                     const std::string& event_pb, const std::string& actor) {
  return pool_
      .Eval(put_settings_, {Prefix(org), common::audit::StreamKey(org)},
            {settings.SerializeAsString(), event_pb, org, actor, NowText()})
      .status();
}

absl::Status KudosStore::PutPerson(const std::string& org, const kudos::v1::Person& person,
                                   bool create, const std::string& event_pb,
                                   const std::string& actor) {
  return pool_
      .Eval(put_directory_entry_, {Prefix(org), common::audit::StreamKey(org)},
            {"person", create ? "create" : "update", person.person_id(),
             person.SerializeAsString(), person.team_id(), person.manager_id(), event_pb, org,
             actor, NowText()})
      .status();
}

absl::Status KudosStore::PutTeam(const std::string& org, const kudos::v1::Team& team,
                                 const std::string& event_pb, const std::string& actor) {
  return pool_
      .Eval(put_directory_entry_, {Prefix(org), common::audit::StreamKey(org)},
            {"team", "create", team.team_id(), team.SerializeAsString(), "", "", event_pb, org,
             actor, NowText()})
      .status();
}

absl::StatusOr<std::map<std::string, kudos::v1::Person>> KudosStore::GetPeople(
    const std::string& org, const std::vector<std::string>& ids) {
  if (ids.empty()) return std::map<std::string, kudos::v1::Person>();
  absl::StatusOr<SettingsAndPeople> read = ReadDirectory(org, ids, /*with_settings=*/false);
  if (!read.ok()) return read.status();
  return std::move(read->people);
}

absl::StatusOr<KudosStore::SettingsAndPeople> KudosStore::GetSettingsAndPeople(
    const std::string& org, const std::vector<std::string>& ids) {
  return ReadDirectory(org, ids, /*with_settings=*/true);
}

absl::StatusOr<KudosStore::SettingsAndPeople> KudosStore::ReadDirectory(
    const std::string& org, const std::vector<std::string>& ids, bool with_settings) {
  std::vector<common::redis::Command> commands;
  for (const std::string& id : ids) commands.push_back({"HGET", Prefix(org) + "person:" + id, "pb"});
  if (with_settings) commands.push_back({"GET", Prefix(org) + "settings"});
  auto replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  SettingsAndPeople read;
  for (size_t i = 0; i < ids.size(); ++i) {
    const absl::StatusOr<Reply>& reply = (*replies)[i];
    if (!reply.ok()) return reply.status();
    if (reply->is_nil()) continue;
    kudos::v1::Person person;
    if (!person.ParseFromString(reply->str)) return Corrupt("person");
    read.people[ids[i]] = std::move(person);
  }
  if (with_settings) {
    const absl::StatusOr<Reply>& reply = replies->back();
    if (!reply.ok()) return reply.status();
    absl::StatusOr<kudos::v1::OrgSettings> settings = ParseSettings(*reply);
    if (!settings.ok()) return settings.status();
    read.settings = *std::move(settings);
  }
  return read;
}

namespace {
// Ids in a lexicographic ZSET strictly after `after_id`.
common::redis::Command RangeAfter(const std::string& key, const std::string& after_id, int limit) {
  return {"ZRANGE", key, after_id.empty() ? "-" : "(" + after_id, "+", "BYLEX", "LIMIT", "0",
          std::to_string(limit)};
}
}  // namespace

absl::StatusOr<std::vector<kudos::v1::Person>> KudosStore::ListPeople(const std::string& org,
                                                                      const std::string& team_id,
                                                                      const std::string& after_id,
                                                                      int limit) {
  std::string index = team_id.empty() ? Prefix(org) + "people" : Prefix(org) + "team_members:" + team_id;
  absl::StatusOr<Reply> ids = pool_.Run(RangeAfter(index, after_id, limit));
  if (!ids.ok()) return ids.status();
  std::vector<std::string> id_list;
  for (const Reply& id : ids->elements) id_list.push_back(id.str);
  auto people = GetPeople(org, id_list);
  if (!people.ok()) return people.status();
  std::vector<kudos::v1::Person> ordered;
  for (const std::string& id : id_list) {
    auto it = people->find(id);
    if (it != people->end()) ordered.push_back(it->second);
  }
  return ordered;
}

absl::StatusOr<std::vector<kudos::v1::Team>> KudosStore::ListTeams(const std::string& org,
                                                                   const std::string& after_id,
                                                                   int limit) {
  absl::StatusOr<Reply> ids = pool_.Run(RangeAfter(Prefix(org) + "teams", after_id, limit));
  if (!ids.ok()) return ids.status();
  std::vector<common::redis::Command> commands;
  for (const Reply& id : ids->elements) commands.push_back({"HGET", Prefix(org) + "team:" + id.str, "pb"});
  std::vector<kudos::v1::Team> teams;
  if (commands.empty()) return teams;
  auto replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  for (const auto& reply : *replies) {
    if (!reply.ok()) return reply.status();
    if (reply->is_nil()) continue;
    kudos::v1::Team team;
    if (!team.ParseFromString(reply->str)) return Corrupt("team");
    teams.push_back(std::move(team));
  }
  return teams;
}

absl::StatusOr<BeginOutcome> KudosStore::Begin(const std::string& org,
                                               const BeginRecognition& begin) {
  std::vector<std::string> args = {KindName(begin.kind),
                                   begin.actor,
                                   begin.request_id,
                                   StoredFingerprint(begin.fingerprint),
                                   begin.record_id,
                                   begin.record_pb,
                                   std::to_string(begin.now_ms),
                                   begin.minute_key,
                                   std::to_string(begin.rate_limit),
                                   std::to_string(begin.retry_after_seconds),
                                   begin.week_key,
                                   std::to_string(begin.pair_cap),
                                   std::to_string(begin.points),
                                   begin.kudos_id,
                                   std::to_string(begin.recipients.size())};
  args.insert(args.end(), begin.recipients.begin(), begin.recipients.end());
  args.push_back(begin.transfers_pb);
  args.push_back(begin.event_pb);
  args.push_back(absl::StrJoin(begin.feeds, ","));
  KUDOS_CHECK(begin.reconcile_at_ms >= begin.now_ms, "the reconciler waits for the caller first");
  args.push_back(std::to_string(begin.reconcile_at_ms));
  KUDOS_CHECK(begin.idempotency_ttl_s >= 86400, "a request_id is remembered for at least a day");
  args.push_back(std::to_string(begin.idempotency_ttl_s));
  absl::StatusOr<Reply> reply = pool_.Eval(begin_, {Prefix(org)}, args);
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 3) return absl::InternalError("begin_recognition: bad reply");
  BeginOutcome outcome{reply->elements[0].str == "NEW", reply->elements[1].str,
                       reply->elements[2].str};
  // The caller compares fingerprints in full.
  if (SameFingerprint(outcome.fingerprint, begin.fingerprint)) outcome.fingerprint = begin.fingerprint;
  return outcome;
}

absl::StatusOr<std::optional<BeginOutcome>> KudosStore::FindRequest(
    const std::string& org, RecordKind kind, const std::string& actor,
    const std::string& request_id) {
  absl::StatusOr<Reply> reply = pool_.Run(
      {"HMGET", Prefix(org) + KindName(kind) + "req:" + actor + ":" + request_id, "id", "fp"});
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 2 || reply->elements[0].is_nil()) {
    return std::optional<BeginOutcome>();
  }
  return std::optional<BeginOutcome>(
      BeginOutcome{false, reply->elements[0].str, reply->elements[1].str});
}

absl::StatusOr<std::string> KudosStore::Finish(const std::string& org, RecordKind kind,
                                               const std::string& id, bool commit,
                                               const absl::Status& error) {
  absl::StatusOr<Reply> reply =
      pool_.Eval(finish_, {Prefix(org)},
                 {KindName(kind), id, commit ? "COMMITTED" : "ABORTED",
                  std::to_string(static_cast<int>(error.code())), std::string(error.message())});
  if (!reply.ok()) return reply.status();
  return reply->str;
}

absl::StatusOr<std::optional<Record>> KudosStore::GetRecord(const std::string& org,
                                                            RecordKind kind,
                                                            const std::string& id) {
  const std::string key = Prefix(org) + KindName(kind) + ":" + id;
  auto replies = pool_.Pipeline({{"TYPE", key},
                                 {"HMGET", key, "pb", "state", "transfers", "kudos_id",
                                  "error_code", "error_message"}});
  if (!replies.ok()) return replies.status();
  const absl::StatusOr<Reply>& type = (*replies)[0];
  if (!type.ok()) return type.status();
  if (type->str == "string") {
    // A committed kudos: its pb alone (finish_recognition.lua).
    Record committed;
    committed.state = "COMMITTED";
    return std::optional<Record>(std::move(committed));
  }
  const absl::StatusOr<Reply>& reply = (*replies)[1];
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 6) return absl::InternalError("HMGET: bad reply");
  if (reply->elements[1].is_nil()) return std::optional<Record>();
  Record record;
  record.pb = reply->elements[0].str;
  record.state = reply->elements[1].str;
  record.transfers_pb = reply->elements[2].str;
  record.kudos_id = reply->elements[3].str;
  record.error_code = reply->elements[4].str;
  record.error_message = reply->elements[5].str;
  return std::optional<Record>(std::move(record));
}

namespace {

bool IsWrongType(const absl::Status& status) {
  // ("redis: WRONGTYPE ..."): GET of a hash.
  return status.code() == absl::StatusCode::kInternal &&
         absl::StrContains(status.message(), "WRONGTYPE");
}

void AppendBoosts(const Reply& boosts, kudos::v1::Kudos& kudos, absl::Status& status) {
  for (const Reply& boost_pb : boosts.elements) {
    if (!kudos.add_boosts()->ParseFromString(boost_pb.str)) status = Corrupt("boost");
  }
}

}  // namespace

absl::StatusOr<KudosStore::LiveRecord> KudosStore::ReadLiveRecord(
    common::redis::Pool& pool, const std::string& org, const std::string& kudos_id,
    const absl::StatusOr<Reply>& get_reply) {
  LiveRecord live;
  if (get_reply.ok()) {
    if (get_reply->is_nil()) {
      live.absent = true;
      return live;
    }
    kudos::v1::KudosSent sent;
    if (!sent.ParseFromString(get_reply->str)) return Corrupt("kudos");
    CommittedKudos committed;
    committed.kudos = std::move(*sent.mutable_kudos());
    committed.teams.push_back(sent.giver_team_id());
    for (const auto& [recipient, team] : sent.recipient_team_ids()) committed.teams.push_back(team);
    live.committed = std::move(committed);
  } else {
    if (!IsWrongType(get_reply.status())) return get_reply.status();
    absl::StatusOr<Reply> fields =
        pool.Run({"HMGET", Prefix(org) + "kudos:" + kudos_id, "state", "pb", "teams"});
    if (!fields.ok()) return fields.status();
    if (fields->elements.size() != 3) return absl::InternalError("HMGET: bad reply");
    if (fields->elements[0].is_nil()) {
      live.absent = true;  // gone since the GET (archived)
      return live;
    }
    if (fields->elements[0].str != "COMMITTED") return live;
    // Before 334bb16: pb is the Kudos as begun, teams those of its team feeds.
    CommittedKudos committed;
    if (!committed.kudos.ParseFromString(fields->elements[1].str)) return Corrupt("kudos");
    committed.teams = absl::StrSplit(fields->elements[2].str, ',', absl::SkipEmpty());
    live.committed = std::move(committed);
  }
  std::vector<std::string>& teams = live.committed->teams;
  std::sort(teams.begin(), teams.end());
  teams.erase(std::unique(teams.begin(), teams.end()), teams.end());
  teams.erase(std::remove(teams.begin(), teams.end(), ""), teams.end());
  live.committed->kudos.set_state(kudos::v1::KUDOS_STATE_COMMITTED);
  return live;
}

absl::StatusOr<std::vector<std::optional<kudos::v1::Kudos>>> KudosStore::ReadKudos(
    const std::string& org, const std::vector<std::string>& ids) {
  // Per id: boosts, record, boosts. The archive moves the record and its
  // boosts at once, so a live record means the boosts read before it are
  // all of them, and an absent one that the boosts read after it are the
  // live ones left beside the archived.
  std::vector<common::redis::Command> commands;
  for (const std::string& id : ids) {
    commands.push_back({"LRANGE", Prefix(org) + "boosts:" + id, "0", "-1"});
    commands.push_back({"GET", Prefix(org) + "kudos:" + id});
    commands.push_back({"LRANGE", Prefix(org) + "boosts:" + id, "0", "-1"});
  }
  std::vector<std::optional<kudos::v1::Kudos>> result;
  if (commands.empty()) return result;
  auto replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  for (size_t i = 0; i < ids.size(); ++i) {
    const absl::StatusOr<Reply>& boosts_before = (*replies)[3 * i];
    const absl::StatusOr<Reply>& boosts_after = (*replies)[3 * i + 2];
    if (!boosts_before.ok()) return boosts_before.status();
    if (!boosts_after.ok()) return boosts_after.status();
    auto live = ReadLiveRecord(pool_, org, ids[i], (*replies)[3 * i + 1]);
    if (!live.ok()) return live.status();
    if (live->committed.has_value()) {
      kudos::v1::Kudos kudos = std::move(live->committed->kudos);
      absl::Status boosts_ok;
      AppendBoosts(*boosts_before, kudos, boosts_ok);
      if (!boosts_ok.ok()) return boosts_ok;
      result.push_back(std::move(kudos));
      continue;
    }
    if (!live->absent) {
      result.push_back(std::nullopt);  // PENDING or ABORTED
      continue;
    }
    absl::StatusOr<Reply> boosts_now = boosts_after;
    if (!(*replies)[3 * i + 1].ok()) {
      // A hash archived after boosts_after was read: read them again.
      boosts_now = pool_.Run({"LRANGE", Prefix(org) + "boosts:" + ids[i], "0", "-1"});
      if (!boosts_now.ok()) return boosts_now.status();
    }
    auto archived = GetArchivedKudos(org, ids[i], *boosts_now);
    if (!archived.ok()) return archived.status();
    result.push_back(*std::move(archived));
  }
  return result;
}

absl::StatusOr<kudos::v1::Kudos> KudosStore::GetKudos(const std::string& org,
                                                      const std::string& kudos_id) {
  auto read = ReadKudos(org, {kudos_id});
  if (!read.ok()) return read.status();
  if (read->size() == 1 && read->front().has_value()) return *std::move(read->front());
  return absl::NotFoundError(absl::StrCat("kudos_id: '", kudos_id, "' does not exist"));
}

namespace {

absl::StatusOr<int64_t> SeqOf(const Reply& score) {
  int64_t seq = 0;
  if (!absl::SimpleAtoi(score.str, &seq) || seq <= 0) return Corrupt("feed position");
  return seq;
}

}  // namespace

absl::StatusOr<std::optional<kudos::v1::Kudos>> KudosStore::GetArchivedKudos(
    const std::string& org, const std::string& kudos_id, const Reply& live_boosts) {
  const uint64_t digest = IdDigest(kudos_id);
  absl::StatusOr<Reply> field = pool_.Run({"HGET", ArchiveIndex(org), IndexField(digest)});
  if (!field.ok()) return field.status();
  for (const ChunkRef& ref : FindInIndex(field->str, digest)) {
    absl::StatusOr<Reply> chunk = pool_.Run({"GET", ArchiveChunk(org, ChunkName(ref))});
    if (!chunk.ok()) return chunk.status();
    if (chunk->is_nil()) return Corrupt(absl::StrCat("archive chunk ", ChunkName(ref), " (missing)"));
    auto entries = DecodeChunk(chunk->str);
    if (!entries.ok()) return entries.status();
    for (ArchivedKudos& entry : *entries) {
      if (entry.kudos.kudos_id() != kudos_id) continue;
      absl::Status boosts_ok;
      AppendBoosts(live_boosts, entry.kudos, boosts_ok);
      if (!boosts_ok.ok()) return boosts_ok;
      return std::optional<kudos::v1::Kudos>(std::move(entry.kudos));
    }
  }
  return std::optional<kudos::v1::Kudos>();
}

absl::StatusOr<KudosStore::ArchivedPage> KudosStore::ListArchived(const std::string& org,
                                                                  const std::string& feed_key,
                                                                  int64_t before_seq,
                                                                  size_t wanted) {
  // Chunks never overlap: the one holding `before_seq` (highest seq at or
  // above it), then every chunk below, newest first.
  const std::string limit = std::to_string(kMaxChunksPerPage);
  std::vector<common::redis::Command> commands;
  if (before_seq > 0) {
    commands.push_back({"ZRANGE", ArchiveChunks(org), std::to_string(before_seq), "+inf", "BYSCORE",
                        "LIMIT", "0", "1", "WITHSCORES"});
  }
  commands.push_back({"ZRANGE", ArchiveChunks(org),
                      before_seq > 0 ? "(" + std::to_string(before_seq) : "+inf", "-inf",
                      "BYSCORE", "REV", "LIMIT", "0", limit, "WITHSCORES"});
  auto replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  std::vector<std::string> chunks;
  for (const auto& reply : *replies) {
    if (!reply.ok()) return reply.status();
    for (size_t i = 0; i + 1 < reply->elements.size(); i += 2) chunks.push_back(reply->elements[i].str);
  }
  const bool more_chunks = (*replies).back()->elements.size() / 2 >= static_cast<size_t>(kMaxChunksPerPage);
  if (chunks.size() > static_cast<size_t>(kMaxChunksPerPage)) chunks.resize(kMaxChunksPerPage);
  ArchivedPage page;
  for (size_t c = 0; c < chunks.size() && page.entries.size() < wanted; ++c) {
    absl::StatusOr<Reply> chunk = pool_.Run({"GET", ArchiveChunk(org, chunks[c])});
    if (!chunk.ok()) return chunk.status();
    // Chunks keep their names and are never deleted: a listed one is there.
    if (chunk->is_nil()) return Corrupt(absl::StrCat("archive chunk ", chunks[c], " (missing)"));
    auto entries = DecodeChunk(chunk->str);
    if (!entries.ok()) return entries.status();
    for (auto it = entries->rbegin(); it != entries->rend(); ++it) {
      if (before_seq > 0 && it->seq >= before_seq) continue;
      const std::vector<std::string> feeds = FeedKeysOf(it->kudos, it->teams);
      if (std::find(feeds.begin(), feeds.end(), feed_key) == feeds.end()) continue;
      page.entries.push_back(std::move(*it));
    }
    if (c + 1 == chunks.size() && more_chunks && page.entries.size() < wanted && !entries->empty()) {
      page.floor = entries->front().seq;  // the next call continues below this chunk
    }
  }
  return page;
}

absl::StatusOr<std::vector<KudosStore::FeedEntry>> KudosStore::LiveFeedRange(
    const std::string& org, const std::string& feed_key, int64_t bound, int limit,
    bool newest_first) {
  absl::StatusOr<Reply> reply = pool_.Eval(
      feed_range_, {Prefix(org)},
      {feed_key, bound > 0 ? std::to_string(bound) : "", std::to_string(limit),
       newest_first ? "desc" : "asc"});
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 2) return absl::InternalError("feed_range: bad reply");
  std::vector<FeedEntry> entries;
  const Reply& flat = reply->elements[0];
  for (size_t i = 0; i + 1 < flat.elements.size(); i += 2) {
    auto seq = SeqOf(flat.elements[i + 1]);
    if (!seq.ok()) return seq.status();
    entries.push_back({flat.elements[i].str, *seq});
  }
  return entries;
}

absl::StatusOr<FeedPage> KudosStore::ListFeed(const std::string& org, const std::string& feed_key,
                                              const std::string& before_seq, int limit) {
  // Scores are sequence numbers: a page continues strictly below the last
  // one seen, so kudos arriving meanwhile never shift or repeat entries.
  int64_t before = 0;
  if (!before_seq.empty() && (!absl::SimpleAtoi(before_seq, &before) || before <= 0)) {
    return absl::InvalidArgumentError("page_token: is not a token this API returned");
  }
  // The live feed (head and sealed chunks) and the archive's top, at once.
  absl::StatusOr<Reply> heads = pool_.Eval(
      feed_range_, {Prefix(org)},
      {feed_key, before_seq, std::to_string(limit + 1), "desc"});
  if (!heads.ok()) return heads.status();
  if (heads->elements.size() != 2) return absl::InternalError("feed_range: bad reply");
  // Candidates by seq, newest first: live ids, then archived entries.
  struct Candidate {
    int64_t seq;
    std::string live_id;        // set for a live kudos
    ArchivedKudos* archived;    // set for an archived one
  };
  std::vector<Candidate> candidates;
  const Reply& live = heads->elements[0];
  for (size_t i = 0; i + 1 < live.elements.size(); i += 2) {
    auto seq = SeqOf(live.elements[i + 1]);
    if (!seq.ok()) return seq.status();
    candidates.push_back({*seq, live.elements[i].str, nullptr});
  }
  const Reply& top_chunk = heads->elements[1];
  int64_t archived_up_to = 0;
  if (top_chunk.elements.size() == 2) {
    auto seq = SeqOf(top_chunk.elements[1]);
    if (!seq.ok()) return seq.status();
    archived_up_to = *seq;
  }
  const bool live_fills_page = candidates.size() > static_cast<size_t>(limit) &&
                               candidates.back().seq > archived_up_to;
  ArchivedPage archived;
  if (archived_up_to > 0 && !live_fills_page) {
    auto read = ListArchived(org, feed_key, before, static_cast<size_t>(limit) + 1);
    if (!read.ok()) return read.status();
    archived = *std::move(read);
    // A live candidate archived since the ZRANGE is listed once, from the archive.
    std::set<int64_t> archived_seqs;
    for (const ArchivedKudos& entry : archived.entries) archived_seqs.insert(entry.seq);
    candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                    [&](const Candidate& c) { return archived_seqs.count(c.seq) > 0; }),
                     candidates.end());
    for (ArchivedKudos& entry : archived.entries) candidates.push_back({entry.seq, "", &entry});
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.seq > b.seq; });
    // Below an unscanned part of the archive the order is not known yet.
    candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                    [&](const Candidate& c) { return c.seq < archived.floor; }),
                     candidates.end());
  }
  FeedPage page;
  if (candidates.size() > static_cast<size_t>(limit)) {
    candidates.resize(limit);
    page.next_cursor = std::to_string(candidates.back().seq);
  } else if (archived.floor > 0) {
    page.next_cursor = std::to_string(archived.floor);
  }
  std::vector<std::string> live_ids;
  std::vector<common::redis::Command> archived_boosts;
  for (const Candidate& c : candidates) {
    if (c.archived == nullptr) {
      live_ids.push_back(c.live_id);
    } else {
      archived_boosts.push_back({"LRANGE", Prefix(org) + "boosts:" + c.archived->kudos.kudos_id(), "0", "-1"});
    }
  }
  // A live candidate archived since the ZRANGE reads from the archive.
  auto live_kudos = ReadKudos(org, live_ids);
  if (!live_kudos.ok()) return live_kudos.status();
  std::vector<absl::StatusOr<Reply>> boosts_replies;
  if (!archived_boosts.empty()) {
    auto replies = pool_.Pipeline(archived_boosts);
    if (!replies.ok()) return replies.status();
    boosts_replies = *std::move(replies);
  }
  size_t next_live = 0, next_archived = 0;
  for (Candidate& c : candidates) {
    if (c.archived == nullptr) {
      std::optional<kudos::v1::Kudos>& kudos = (*live_kudos)[next_live++];
      if (kudos.has_value()) page.kudos.push_back(*std::move(kudos));
      continue;
    }
    const absl::StatusOr<Reply>& boosts = boosts_replies[next_archived++];
    if (!boosts.ok()) return boosts.status();
    absl::Status boosts_ok;
    AppendBoosts(*boosts, c.archived->kudos, boosts_ok);
    if (!boosts_ok.ok()) return boosts_ok;
    page.kudos.push_back(std::move(c.archived->kudos));
  }
  return page;
}

absl::StatusOr<std::vector<std::pair<RecordKind, std::string>>> KudosStore::DuePending(
    const std::string& org, int64_t now_ms, int limit) {
  absl::StatusOr<Reply> reply =
      pool_.Run({"ZRANGE", Prefix(org) + "pending", "-inf", std::to_string(now_ms), "BYSCORE",
                 "LIMIT", "0", std::to_string(limit)});
  if (!reply.ok()) return reply.status();
  std::vector<std::pair<RecordKind, std::string>> pending;
  for (const Reply& member : reply->elements) {
    std::pair<std::string, std::string> parts = absl::StrSplit(member.str, absl::MaxSplits(':', 1));
    if (parts.second.empty() || (parts.first != "kudos" && parts.first != "boost")) continue;
    pending.emplace_back(parts.first == "boost" ? RecordKind::kBoost : RecordKind::kKudos,
                         parts.second);
  }
  return pending;
}

absl::StatusOr<int> KudosStore::ClaimAttempt(const std::string& org, RecordKind kind,
                                             const std::string& id, int64_t now_ms,
                                             const ReconcileBackoff& backoff, int64_t jitter_ms) {
  KUDOS_CHECK(backoff.first_ms > 0 && backoff.max_ms >= backoff.first_ms && jitter_ms >= 0,
              "each attempt moves the next one into the future");
  absl::StatusOr<Reply> reply =
      pool_.Eval(claim_reconcile_, {Prefix(org)},
                 {KindName(kind), id, std::to_string(now_ms), std::to_string(backoff.first_ms),
                  std::to_string(backoff.max_ms), std::to_string(jitter_ms)});
  if (!reply.ok()) return reply.status();
  KUDOS_CHECK(reply->type == Reply::Type::kInteger && reply->integer >= 0,
              "claim_reconcile answers an attempt number");
  return static_cast<int>(reply->integer);
}

absl::StatusOr<bool> KudosStore::AttemptFailed(const std::string& org, RecordKind kind,
                                               const std::string& id, int attempt,
                                               const ReconcileBackoff& backoff,
                                               const std::string& reason) {
  KUDOS_CHECK(attempt >= 1 && backoff.max_dead_letters >= 1, "only a claimed attempt can fail");
  absl::StatusOr<Reply> reply =
      pool_.Eval(reconcile_failed_, {Prefix(org)},
                 {KindName(kind), id, std::to_string(attempt), std::to_string(backoff.max_attempts),
                  reason, NowText(), std::to_string(backoff.max_dead_letters)});
  if (!reply.ok()) return reply.status();
  const bool dead = reply->str == "DEAD";
  KUDOS_CHECK(dead || reply->str == "RETRY" || reply->str == "SETTLED",
              "reconcile_failed answers DEAD, RETRY or SETTLED");
  KUDOS_CHECK(!dead || attempt >= backoff.max_attempts, "dead-lettered only after the last attempt");
  return dead;
}

absl::StatusOr<std::vector<std::string>> KudosStore::Orgs() {
  absl::StatusOr<Reply> reply = pool_.Run({"SMEMBERS", "platform:orgs"});
  if (!reply.ok()) return reply.status();
  std::vector<std::string> orgs;
  for (const Reply& org : reply->elements) orgs.push_back(org.str);
  return orgs;
}

}  // namespace kudos
