#include "services/kudos/kudos_store.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
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
#include "common/ids/packed_id.h"
#include "common/log/log.h"
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
// KEYS[1] = the feed's head, KEYS[2] = its chunk list (<feed>#), KEYS[3] =
// archive:chunks, KEYS[4], KEYS[5] = feed:all's head and chunk list,
// KEYS[5 + i] = <feed>#<chunk_i> for the feed's chunks declared, then
// feed:all#<chunk_j> for feed:all's chunks declared.
// ARGV: bound ('' = none), limit, order ('desc': seq < bound, newest first;
// 'asc': seq > bound, oldest first), n, chunk_1..chunk_n (the feed's chunk
// names declared), m, chunk_1..chunk_m (feed:all's). Returns {{id, seq, id,
// seq, ...} (at most limit), the archive's top chunk {name, score} or {}},
// or, when the listing reaches chunks not declared, {'NEED', {chunk, ...},
// {feed:all's chunk, ...}}: those chunks and the ones after them it may read
// (one entry each at least), nothing read from them; call again with them
// declared too. The head is read as a whole range and merged, so an entry a
// replica of the previous version added to the head below the top chunk is
// still listed in its place. An entry that is a seq (a public kudos in a feed
// other than feed:all, finish_recognition.lua's feed_entry) lists as the id
// feed:all holds at that seq (its head, else the chunk whose range holds
// it); one feed:all no longer holds (archived by a replica of the previous
// version) lists as the seq, which reads as a kudos gone to the archive.
constexpr char kFeedRangeLua[] = R"lua(
local head, dir, archive_chunks, all_head, all_dir = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local bound, limit, desc = ARGV[1], tonumber(ARGV[2]), ARGV[3] == 'desc'
local n_chunks = tonumber(ARGV[4])
local declared, all_declared = {}, {}
for i = 1, n_chunks do declared[ARGV[4 + i]] = KEYS[5 + i] end
for j = 1, tonumber(ARGV[5 + n_chunks]) do
  all_declared[ARGV[5 + n_chunks + j]] = KEYS[5 + n_chunks + j]
end
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
-- Chunks in order (their ranges do not overlap) until they gave `limit`;
-- an undeclared one counts as one entry until it is read.
local from_chunks, missing = 0, {}
local function take(chunk)
  local key = declared[chunk]
  if key then
    from_chunks = from_chunks + keep(range(key, limit - from_chunks))
  else
    missing[#missing + 1] = chunk
    from_chunks = from_chunks + 1
  end
end
if desc and bound ~= '' then
  local straddle = redis.call('ZRANGE', dir, bound, '+inf', 'BYSCORE', 'LIMIT', 0, 1)[1]
  if straddle then take(straddle) end
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
    take(chunk)
  end
  offset = offset + #chunks
end
if desc then
  table.sort(found, function(a, b) return a[3] > b[3] end)
else
  table.sort(found, function(a, b) return a[3] < b[3] end)
end
-- The id feed:all holds at `seq`; nil when a chunk it needs is not declared
-- (added to all_missing), the seq itself when feed:all no longer holds it.
-- The chunk whose range holds `seq` first (a lookup in the chunk list, not a
-- scan of the head), then the head (newer than every chunk, or committed late).
local all_missing = {}
local function id_at(seq)
  local chunk = redis.call('ZRANGE', all_dir, seq, '+inf', 'BYSCORE', 'LIMIT', 0, 1)[1]
  if chunk then
    local key = all_declared[chunk]
    if not key then
      all_missing[#all_missing + 1] = chunk
      return nil
    end
    local id = redis.call('ZRANGE', key, seq, seq, 'BYSCORE')[1]
    if id then return id end
  end
  return redis.call('ZRANGE', all_head, seq, seq, 'BYSCORE')[1] or seq
end
local out = {}
for i = 1, math.min(#found, limit) do
  local member = found[i][1]
  if head ~= all_head and member == found[i][2] then member = id_at(member) end
  out[#out + 1] = member
  out[#out + 1] = found[i][2]
end
if #missing > 0 or #all_missing > 0 then return {'NEED', missing, all_missing} end
return {out, redis.call('ZRANGE', archive_chunks, -1, -1, 'WITHSCORES')}
)lua";

// KEYS[1] = a request key: {'P', value} for the packed STRING
// (KudosStore::PackedRequestValue), the hash's {id, fp} (keys written before,
// and ids that do not pack). Then, if given, KEYS[2] = the record-keyed
// record (ARGV[1] its id: KudosIdOfRequest) and KEYS[3] its bucket (ARGV[2]
// its field there), as begin_recognition.lua reads them: {id, fp}. {} when
// there is neither.
constexpr char kFindRequestLua[] = R"lua(
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'string' then return {'P', value} end
if value then return redis.call('HMGET', KEYS[1], 'id', 'fp') end
if not KEYS[2] then return {} end
local function committed_fp(bytes)
  return string.byte(bytes, 1) == 2 and string.sub(bytes, 2, 9) or ''
end
local committed = redis.call('HGET', KEYS[3], ARGV[2])
if committed then return {ARGV[1], committed_fp(committed)} end
local type_of = redis.call('TYPE', KEYS[2]).ok
if type_of == 'hash' then return {ARGV[1], redis.call('HGET', KEYS[2], 'fp') or ''} end
if type_of ~= 'string' then return {} end
return {ARGV[1], committed_fp(redis.call('GETRANGE', KEYS[2], 0, 8))}
)lua";

// KEYS[1] = profile_sync, KEYS[2] = profile_sync:seq; ARGV = person, version.
// Done when the version is still the queued one; gone (another replica
// finished it, possibly with an older state than ours): queued again.
constexpr char kFinishProfileSyncLua[] = R"lua(
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
if not current then redis.call('HSET', KEYS[1], ARGV[1], redis.call('INCR', KEYS[2])) end
return 0
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
  if (stored == fingerprint) return true;
  if (fingerprint.size() != 64) return false;
  const std::string full = StoredFingerprint(fingerprint);
  if (stored.size() == kRecordFingerprintBytes) return stored == full.substr(0, kRecordFingerprintBytes);
  return stored == full;
}

std::string KudosStore::FeedMember(const std::string& kudos_id) {
  std::optional<std::string> packed = common::ids::PackKudosId(kudos_id);
  if (!packed.has_value()) return kudos_id;
  return kPackedFeedMarker + *packed;
}

std::string KudosStore::KudosIdOfFeedMember(const std::string& member) {
  if (member.size() != 1 + common::ids::kPackedKudosIdBytes || member[0] != kPackedFeedMarker) {
    return member;
  }
  return common::ids::UnpackKudosId(absl::string_view(member).substr(1));
}

KudosStore::KudosStore(common::redis::Pool& pool, common::redis::AsyncClient* async,
                       DirectoryCacheOptions directory_cache)
    : pool_(pool),
      async_(async),
      org_registry_(pool),
      put_directory_entry_("put_directory_entry", kPutDirectoryEntryLua),
      put_settings_("put_settings", kPutSettingsLua),
      begin_("begin_recognition", kBeginRecognitionLua),
      finish_("finish_recognition", kFinishRecognitionLua),
      claim_reconcile_("claim_reconcile", kClaimReconcileLua),
      reconcile_failed_("reconcile_failed", kReconcileFailedLua),
      feed_range_("feed_range", kFeedRangeLua),
      find_request_("find_request", kFindRequestLua),
      finish_profile_sync_("finish_profile_sync", kFinishProfileSyncLua),
      directory_cache_(directory_cache) {}

std::string KudosStore::RecordKey(const std::string& org, RecordKind kind, const std::string& id) {
  return Prefix(org) + KindName(kind) + ":" + id;
}

std::string KudosStore::RecordBucketKey(const std::string& org, const std::string& kudos_id) {
  return absl::StrCat(Prefix(org), "kb:", common::ids::BucketOfId(kudos_id, kRecordBuckets));
}

std::string KudosStore::RequestKey(const std::string& org, RecordKind kind,
                                   const std::string& actor, const std::string& request_id) {
  return Prefix(org) + KindName(kind) + "req:" + actor + ":" + request_id;
}

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
  absl::StatusOr<Reply> reply = pool_.Run({"GET", SettingsKey(org)});
  if (!reply.ok()) return reply.status();
  return ParseSettings(*reply);
}

namespace {

// The keys of put_settings.lua: all in the org's slot (its registry too).
std::vector<std::string> SettingsWriteKeys(const std::string& org) {
  return {KudosStore::SettingsKey(org), KudosStore::EventStream(org),
          common::audit::StreamKey(org), common::redis::OrgRegistryKey(org),
          KudosStore::DirectoryVersionKey(org)};
}

// The keys of put_directory_entry.lua (its header): a key that does not
// apply is the entry's own again.
std::vector<std::string> DirectoryEntryKeys(const std::string& org,
                                            const KudosStore::DirectoryEntry& entry,
                                            const std::string& expected_old_team) {
  const bool person = entry.kind == "person";
  const std::string key =
      person ? KudosStore::PersonKey(org, entry.id) : KudosStore::TeamKey(org, entry.id);
  auto when = [&key](bool applies, std::string k) { return applies ? k : key; };
  return {key,
          person ? KudosStore::PeopleKey(org) : KudosStore::TeamsKey(org),
          KudosStore::EventStream(org),
          common::audit::StreamKey(org),
          common::redis::OrgRegistryKey(org),
          when(person && !entry.team_id.empty(), KudosStore::TeamKey(org, entry.team_id)),
          when(person && !entry.team_id.empty(), KudosStore::TeamMembersKey(org, entry.team_id)),
          when(person && !entry.manager_id.empty(), KudosStore::PersonKey(org, entry.manager_id)),
          when(person && !expected_old_team.empty(),
               KudosStore::TeamMembersKey(org, expected_old_team)),
          KudosStore::DirectReportsKey(org),
          KudosStore::CountedManagerKey(org),
          KudosStore::ProfileSyncKey(org),
          KudosStore::ProfileSyncSeqKey(org),
          KudosStore::DirectoryVersionKey(org)};
}

std::vector<std::string> DirectoryEntryArgs(const std::string& org,
                                            const KudosStore::DirectoryEntry& entry,
                                            const std::string& expected_old_team) {
  return {entry.kind,       entry.mode,     entry.id,    entry.pb,  entry.team_id,
          entry.manager_id, entry.event_pb, org,         entry.actor, NowText(),
          expected_old_team, entry.active ? "1" : "0"};
}

KudosStore::DirectoryEntry PersonEntry(const kudos::v1::Person& person, bool create,
                                       const std::string& event_pb, const std::string& actor) {
  return {"person", create ? "create" : "update", person.person_id(), person.SerializeAsString(),
          person.team_id(), person.manager_id(), event_pb, actor, person.active()};
}

KudosStore::DirectoryEntry TeamEntry(const kudos::v1::Team& team, const std::string& event_pb,
                                     const std::string& actor) {
  return {"team", "create", team.team_id(), team.SerializeAsString(), "", "", event_pb, actor};
}

// A person's update usually keeps their team: expect that, and learn
// otherwise from the script ('NEED'). A new entry has none.
std::string ExpectedOldTeam(const KudosStore::DirectoryEntry& entry) {
  return entry.mode == "update" ? entry.team_id : "";
}

// A script's 'NEED' answer ({'NEED', ...}): the keys it was given are not
// the ones its data names now; nothing was written.
bool IsNeed(const Reply& reply) {
  return reply.type == Reply::Type::kArray && !reply.elements.empty() &&
         reply.elements[0].type == Reply::Type::kString && reply.elements[0].str == "NEED";
}

// The team put_directory_entry.lua found the person in, when it said 'NEED'.
std::optional<std::string> NeededOldTeam(const Reply& reply) {
  if (!IsNeed(reply)) return std::nullopt;
  KUDOS_CHECK(reply.elements.size() == 2, "put_directory_entry answers {'NEED', old_team}");
  return reply.elements[1].str;
}

absl::Status EntryKeptChanging(const KudosStore::DirectoryEntry& entry) {
  return absl::AbortedError(absl::StrCat(entry.kind, ".", entry.kind, "_id: '", entry.id,
                                         "' changed team during every attempt to write it; retry"));
}

}  // namespace

void KudosStore::HintOrgSlot(const std::string& org) {
  // The script registers the org in its slot; this hint (another slot, so a
  // call of its own) lets discovery read that slot at once. Lost, it costs
  // latency only (common/redis/org_registry.h).
  absl::StatusOr<Reply> hinted = pool_.Run(common::redis::IndexOrgSlotCommand(org));
  if (!hinted.ok()) common::log::Warning(absl::StrCat("org slot hint: ", hinted.status().ToString()));
}

void KudosStore::HintOrgSlotAsync(const std::string& org, Deadline deadline) {
  async().Run(common::redis::IndexOrgSlotCommand(org), deadline, [](absl::StatusOr<Reply> hinted) {
    if (!hinted.ok()) {
      common::log::Warning(absl::StrCat("org slot hint: ", hinted.status().ToString()));
    }
  });
}

absl::Status KudosStore::PutSettings(const std::string& org,
                                     const kudos::v1::OrgSettings& settings,
                                     const std::string& event_pb, const std::string& actor) {
  HintOrgSlot(org);
  absl::Status written = pool_
                             .Eval(put_settings_, SettingsWriteKeys(org),
                                   {settings.SerializeAsString(), event_pb, org, actor, NowText()})
                             .status();
  directory_cache_.Invalidate(org);
  return written;
}

absl::Status KudosStore::PutEntry(const std::string& org, const DirectoryEntry& entry) {
  HintOrgSlot(org);
  std::string expected_old_team = ExpectedOldTeam(entry);
  for (int attempt = 0; attempt <= kMaxNeedRetries; ++attempt) {
    absl::StatusOr<Reply> reply =
        pool_.Eval(put_directory_entry_, DirectoryEntryKeys(org, entry, expected_old_team),
                   DirectoryEntryArgs(org, entry, expected_old_team));
    directory_cache_.Invalidate(org);
    if (!reply.ok()) return reply.status();
    std::optional<std::string> old_team = NeededOldTeam(*reply);
    if (!old_team.has_value()) return absl::OkStatus();
    expected_old_team = *std::move(old_team);
  }
  return EntryKeptChanging(entry);
}

absl::Status KudosStore::PutPerson(const std::string& org, const kudos::v1::Person& person,
                                   bool create, const std::string& event_pb,
                                   const std::string& actor) {
  return PutEntry(org, PersonEntry(person, create, event_pb, actor));
}

absl::Status KudosStore::PutTeam(const std::string& org, const kudos::v1::Team& team,
                                 const std::string& event_pb, const std::string& actor) {
  return PutEntry(org, TeamEntry(team, event_pb, actor));
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

namespace {

std::vector<common::redis::Command> DirectoryReads(const std::string& org,
                                                   const std::vector<std::string>& ids,
                                                   bool with_settings) {
  std::vector<common::redis::Command> commands;
  for (const std::string& id : ids) {
    commands.push_back({"HGET", KudosStore::PersonKey(org, id), "pb"});
  }
  if (with_settings) commands.push_back({"GET", KudosStore::SettingsKey(org)});
  return commands;
}

// The directory's version, then DirectoryReads' commands: what follows the
// version is at least as new, so entries cached under it can only be refused
// as stale, never pass for newer.
std::vector<common::redis::Command> VersionedDirectoryReads(const std::string& org,
                                                            const std::vector<std::string>& ids) {
  std::vector<common::redis::Command> commands = {{"GET", KudosStore::DirectoryVersionKey(org)}};
  std::vector<common::redis::Command> reads = DirectoryReads(org, ids, /*with_settings=*/true);
  commands.insert(commands.end(), std::make_move_iterator(reads.begin()),
                  std::make_move_iterator(reads.end()));
  return commands;
}

// The people (and settings) read by DirectoryReads' commands.
absl::StatusOr<KudosStore::SettingsAndPeople> ParseDirectory(
    const std::vector<std::string>& ids, bool with_settings,
    const absl::StatusOr<std::vector<absl::StatusOr<Reply>>>& replies) {
  if (!replies.ok()) return replies.status();
  KudosStore::SettingsAndPeople read;
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

}  // namespace

absl::StatusOr<KudosStore::SettingsAndPeople> KudosStore::ReadDirectory(
    const std::string& org, const std::vector<std::string>& ids, bool with_settings) {
  return ParseDirectory(ids, with_settings, pool_.Pipeline(DirectoryReads(org, ids, with_settings)));
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
  std::string index = team_id.empty() ? PeopleKey(org) : TeamMembersKey(org, team_id);
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
  absl::StatusOr<Reply> ids = pool_.Run(RangeAfter(TeamsKey(org), after_id, limit));
  if (!ids.ok()) return ids.status();
  std::vector<common::redis::Command> commands;
  for (const Reply& id : ids->elements) commands.push_back({"HGET", TeamKey(org, id.str), "pb"});
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

// The keys of begin_recognition.lua (its header), the legacy pair counters
// of every recipient included.
std::vector<std::string> KudosStore::BeginKeys(const std::string& org,
                                               const BeginRecognition& begin) {
  KUDOS_CHECK(begin.recipients.size() <= static_cast<size_t>(kMaxRecipients),
              "a kudos or boost names at most kMaxRecipients recipients (validated)");
  std::vector<std::string> keys = {
      KudosStore::RequestKey(org, begin.kind, begin.actor, begin.request_id),
      KudosStore::RateKey(org, begin.actor, begin.minute_key),
      KudosStore::PairsKey(org, begin.actor, begin.week_key),
      KudosStore::SeqKey(org),
      KudosStore::RecordKey(org, begin.kind, begin.record_id),
      KudosStore::PendingKey(org)};
  for (const std::string& recipient : begin.recipients) {
    keys.push_back(KudosStore::LegacyPairKey(org, begin.actor, recipient, begin.week_key));
  }
  keys.push_back(KudosStore::DirectoryVersionKey(org));
  keys.push_back(KudosStore::ArchiveIndex(org));
  keys.push_back(KudosStore::RecordBucketKey(org, begin.record_id));
  return keys;
}

std::vector<std::string> KudosStore::BeginArgs(const BeginRecognition& begin) {
  std::vector<std::string> args = {KindName(begin.kind),
                                   begin.actor,
                                   begin.request_id,
                                   KudosStore::StoredFingerprint(begin.fingerprint),
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
  KUDOS_CHECK(begin.zero_points_pb.empty() == begin.zero_points_event_pb.empty(),
              "a 0-point form has both its record and its event");
  args.push_back(begin.zero_points_pb);
  args.push_back(begin.zero_points_event_pb);
  args.push_back(begin.directory_version);
  args.push_back(PackedRequestValue(begin.record_id, KudosStore::StoredFingerprint(begin.fingerprint)));
  // A record-keyed kudos: where the archive's index would name its id.
  KUDOS_CHECK(!begin.record_keyed || begin.kind == RecordKind::kKudos, "only kudos are record-keyed");
  const uint64_t digest = IdDigest(begin.record_id);
  args.push_back(begin.record_keyed ? "1" : "");
  args.push_back(begin.record_keyed && begin.write_request_key ? "1" : "");
  args.push_back(IndexField(digest));
  args.push_back(IndexRecord(digest, {}).substr(0, 8));
  args.push_back(FeedMember(begin.record_id));  // its field in the bucket
  return args;
}

std::string KudosStore::StoredRecordPb(const kudos::v1::KudosSent& sent,
                                       const std::string& fingerprint) {
  KUDOS_CHECK(!sent.kudos().kudos_id().empty(), "a record is stored under its kudos's id");
  kudos::v1::KudosSent stored = sent;
  stored.mutable_kudos()->clear_kudos_id();
  const std::string kept = StoredFingerprint(fingerprint).substr(0, kRecordFingerprintBytes);
  KUDOS_CHECK(kept.size() == kRecordFingerprintBytes, "a fingerprint is a SHA-256's 64 hex digits");
  return kFingerprintInMarker + kept + stored.SerializeAsString();
}

absl::StatusOr<kudos::v1::KudosSent> KudosStore::ParseStoredRecord(const std::string& kudos_id,
                                                                   const std::string& bytes) {
  const char marker = bytes.empty() ? '\0' : bytes[0];
  const bool marked = marker == kIdLeftOutMarker || marker == kFingerprintInMarker;
  if (marker == kFingerprintInMarker && bytes.size() < 1 + kRecordFingerprintBytes) {
    return Corrupt("kudos (shorter than its fingerprint)");
  }
  const size_t header = marker == kFingerprintInMarker ? 1 + kRecordFingerprintBytes : marked ? 1 : 0;
  const absl::string_view pb = absl::string_view(bytes).substr(header);
  kudos::v1::KudosSent sent;
  if (!sent.ParseFromArray(pb.data(), static_cast<int>(pb.size()))) return Corrupt("kudos");
  if (!marked) return sent;  // written before: the id in
  if (!sent.kudos().kudos_id().empty()) return Corrupt("kudos (an id where it is left out)");
  sent.mutable_kudos()->set_kudos_id(kudos_id);
  return sent;
}

std::string KudosStore::PackedRequestValue(const std::string& record_id,
                                           const std::string& stored_fingerprint) {
  std::optional<std::string> packed = common::ids::PackKudosId(record_id);
  if (!packed.has_value() || stored_fingerprint.size() != kStoredFingerprintBytes) return "";
  return stored_fingerprint + *packed;
}

std::optional<BeginOutcome> KudosStore::ParsePackedRequestValue(const std::string& value) {
  if (value.size() != kStoredFingerprintBytes + common::ids::kPackedKudosIdBytes) return std::nullopt;
  return BeginOutcome{false, common::ids::UnpackKudosId(
                                 absl::string_view(value).substr(kStoredFingerprintBytes)),
                      value.substr(0, kStoredFingerprintBytes), ""};
}

namespace {

absl::StatusOr<BeginOutcome> ParseBegin(const std::string& fingerprint,
                                        const absl::StatusOr<Reply>& reply) {
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() == 1 && reply->elements[0].str == "STALE") {
    BeginOutcome stale;
    stale.stale = true;
    return stale;
  }
  BeginOutcome outcome;
  if (reply->elements.size() == 2 && reply->elements[0].str == "ARCHIVED") {
    outcome.record_id = reply->elements[1].str;
    outcome.archived = true;
    return outcome;
  }
  if (reply->elements.size() == 2 && reply->elements[0].str == "EXISTING_PACKED") {
    std::optional<BeginOutcome> earlier = KudosStore::ParsePackedRequestValue(reply->elements[1].str);
    if (!earlier.has_value()) return absl::InternalError("begin_recognition: bad request key");
    outcome = *std::move(earlier);
  } else if (reply->elements.size() >= 3) {
    outcome = {reply->elements[0].str == "NEW", reply->elements[1].str, reply->elements[2].str, ""};
  } else {
    return absl::InternalError("begin_recognition: bad reply");
  }
  if (outcome.is_new) {
    if (reply->elements.size() != 4) return absl::InternalError("begin_recognition: bad reply");
    absl::StatusOr<long long> seq = reply->elements[3].AsInteger();
    if (!seq.ok()) return seq.status();
    outcome.seq = std::to_string(*seq);
  }
  // The caller compares fingerprints in full.
  if (KudosStore::SameFingerprint(outcome.fingerprint, fingerprint)) outcome.fingerprint = fingerprint;
  return outcome;
}

// find_request's answer: {'P', packed value}, or the hash's {id, fp}, or {}.
absl::StatusOr<std::optional<BeginOutcome>> ParseFindRequest(const absl::StatusOr<Reply>& reply) {
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() == 2 && reply->elements[0].str == "P") {
    std::optional<BeginOutcome> earlier = KudosStore::ParsePackedRequestValue(reply->elements[1].str);
    if (!earlier.has_value()) return absl::InternalError("find_request: bad request key");
    return earlier;
  }
  if (reply->elements.size() != 2 || reply->elements[0].is_nil()) {
    return std::optional<BeginOutcome>();
  }
  return std::optional<BeginOutcome>(
      BeginOutcome{false, reply->elements[0].str, reply->elements[1].str, ""});
}

}  // namespace

absl::StatusOr<BeginOutcome> KudosStore::Begin(const std::string& org,
                                               const BeginRecognition& begin) {
  return ParseBegin(begin.fingerprint, pool_.Eval(begin_, BeginKeys(org, begin), BeginArgs(begin)));
}

absl::StatusOr<std::optional<BeginOutcome>> KudosStore::FindRequest(
    const std::string& org, RecordKind kind, const std::string& actor,
    const std::string& request_id) {
  std::vector<std::string> keys, args;
  FindRequestKeys(org, kind, actor, request_id, keys, args);
  return ParseFindRequest(pool_.Eval(find_request_, keys, args));
}

void KudosStore::FindRequestKeys(const std::string& org, RecordKind kind, const std::string& actor,
                                 const std::string& request_id, std::vector<std::string>& keys,
                                 std::vector<std::string>& args) {
  keys = {RequestKey(org, kind, actor, request_id)};
  if (kind != RecordKind::kKudos) return;
  const std::string id = KudosIdOfRequest(org, actor, request_id);
  keys.push_back(RecordKey(org, kind, id));
  keys.push_back(RecordBucketKey(org, id));
  args.push_back(id);
  args.push_back(FeedMember(id));
}

FinishFields KudosStore::FinishFieldsOf(const BeginRecognition& begin, const std::string& seq) {
  return {seq, absl::StrJoin(begin.feeds, ","), begin.kudos_id, begin.actor, begin.week_key, {}, false};
}

// The keys of finish_recognition.lua (its header).
std::vector<std::string> KudosStore::FinishKeys(const std::string& org, RecordKind kind,
                                                const std::string& id, const FinishFields& fields) {
  const std::string record = KudosStore::RecordKey(org, kind, id);
  std::vector<std::string> keys = {
      record, KudosStore::PendingKey(org), KudosStore::EventStream(org),
      KudosStore::PairsKey(org, fields.actor, fields.week),
      kind == RecordKind::kBoost ? KudosStore::BoostsKey(org, fields.kudos_id)
                                 : KudosStore::RecordBucketKey(org, id)};
  const std::string new_chunk = KudosStore::SealedChunkName(fields.seq);
  for (absl::string_view feed : absl::StrSplit(fields.feeds, ',', absl::SkipEmpty())) {
    const std::string name(feed);
    keys.push_back(KudosStore::FeedHeadKey(org, name));
    keys.push_back(KudosStore::FeedChunksKey(org, name));
    keys.push_back(KudosStore::FeedChunkKey(org, name, new_chunk));
  }
  for (const auto& [feed, chunk] : fields.late_chunks) {
    keys.push_back(KudosStore::FeedChunkKey(org, feed, chunk));
  }
  return keys;
}

std::vector<std::string> KudosStore::FinishArgs(RecordKind kind, const std::string& id,
                                                bool commit, const absl::Status& error,
                                                const FinishFields& fields,
                                                bool write_record_key) {
  std::vector<std::string> args = {KindName(kind),
                                   id,
                                   !commit                 ? "ABORTED"
                                   : fields.without_points ? "COMMITTED_WITHOUT_POINTS"
                                                           : "COMMITTED",
                                   std::to_string(static_cast<int>(error.code())),
                                   std::string(error.message()),
                                   fields.feeds,
                                   fields.seq,
                                   fields.kudos_id,
                                   fields.actor,
                                   fields.week,
                                   KudosStore::SealedChunkName(fields.seq),
                                   std::to_string(fields.late_chunks.size())};
  for (const auto& [feed, chunk] : fields.late_chunks) {
    args.push_back(feed);
    args.push_back(chunk);
  }
  args.push_back(FeedMember(id));
  args.push_back(write_record_key ? "1" : "");
  return args;
}

namespace {

// Takes finish_recognition.lua's 'NEED' answer into `fields`: the record's
// own fields (new ones drop the late chunks learned for the old), and the
// late chunks it asked for.
absl::Status LearnFinishFields(const Reply& need, FinishFields& fields) {
  if (need.elements.size() < 6 || need.elements.size() % 2 != 0) {
    return absl::InternalError("finish_recognition: bad NEED reply");
  }
  FinishFields stored{need.elements[1].str, need.elements[2].str, need.elements[3].str,
                      need.elements[4].str, need.elements[5].str, {}, false};
  if (stored.seq != fields.seq || stored.feeds != fields.feeds ||
      stored.kudos_id != fields.kudos_id || stored.actor != fields.actor ||
      stored.week != fields.week) {
    stored.without_points = fields.without_points;  // the caller's choice, not the record's
    fields = std::move(stored);
  }
  for (size_t i = 6; i + 1 < need.elements.size(); i += 2) {
    std::pair<std::string, std::string> chunk = {need.elements[i].str, need.elements[i + 1].str};
    if (std::find(fields.late_chunks.begin(), fields.late_chunks.end(), chunk) ==
        fields.late_chunks.end()) {
      fields.late_chunks.push_back(std::move(chunk));
    }
  }
  return absl::OkStatus();
}

absl::Status KeysKeptChanging(absl::string_view script) {
  return absl::UnavailableError(absl::StrCat(
      script, ": the keys its data names changed during every attempt; retry"));
}

}  // namespace

absl::StatusOr<std::string> KudosStore::Finish(const std::string& org, RecordKind kind,
                                               const std::string& id, bool commit,
                                               const absl::Status& error, FinishFields fields) {
  for (int attempt = 0; attempt <= kMaxNeedRetries; ++attempt) {
    absl::StatusOr<Reply> reply =
        pool_.Eval(finish_, FinishKeys(org, kind, id, fields),
                   FinishArgs(kind, id, commit, error, fields, write_record_keys_));
    if (!reply.ok()) return reply.status();
    if (!IsNeed(*reply)) return reply->str;
    if (absl::Status learned = LearnFinishFields(*reply, fields); !learned.ok()) return learned;
  }
  return KeysKeptChanging("finish_recognition");
}

namespace {

std::vector<common::redis::Command> RecordReads(const std::string& org, RecordKind kind,
                                                const std::string& id) {
  const std::string key = KudosStore::RecordKey(org, kind, id);
  std::vector<common::redis::Command> reads = {
      {"TYPE", key},
      {"HMGET", key, "pb", "state", "transfers", "kudos_id", "error_code", "error_message", "seq",
       "feeds", "actor", "week"},
      {"HEXISTS", key, "zero_pb"}};
  // A committed kudos is a field of its bucket (before the buckets, a STRING).
  if (kind == RecordKind::kKudos) {
    reads.push_back({"HEXISTS", KudosStore::RecordBucketKey(org, id), KudosStore::FeedMember(id)});
  }
  return reads;
}

absl::StatusOr<std::optional<Record>> ParseRecord(
    const absl::StatusOr<std::vector<absl::StatusOr<Reply>>>& replies) {
  if (!replies.ok()) return replies.status();
  const absl::StatusOr<Reply>& type = (*replies)[0];
  if (!type.ok()) return type.status();
  bool in_bucket = false;
  if (replies->size() > 3) {
    const absl::StatusOr<Reply>& bucket = (*replies)[3];
    if (!bucket.ok()) return bucket.status();
    in_bucket = bucket->integer == 1;
  }
  if (in_bucket || type->str == "string") {
    // A committed kudos: its pb alone (finish_recognition.lua).
    Record committed;
    committed.state = "COMMITTED";
    return std::optional<Record>(std::move(committed));
  }
  const absl::StatusOr<Reply>& reply = (*replies)[1];
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 10) return absl::InternalError("HMGET: bad reply");
  if (reply->elements[1].is_nil()) return std::optional<Record>();
  Record record;
  record.pb = reply->elements[0].str;
  record.state = reply->elements[1].str;
  record.transfers_pb = reply->elements[2].str;
  record.kudos_id = reply->elements[3].str;
  record.error_code = reply->elements[4].str;
  record.error_message = reply->elements[5].str;
  record.finish = {reply->elements[6].str, reply->elements[7].str, record.kudos_id,
                   reply->elements[8].str, reply->elements[9].str, {}, false};
  const absl::StatusOr<Reply>& zero_form = (*replies)[2];
  if (!zero_form.ok()) return zero_form.status();
  absl::StatusOr<long long> has_zero_form = zero_form->AsInteger();
  if (!has_zero_form.ok()) return has_zero_form.status();
  record.may_go_without_points = *has_zero_form == 1;
  return std::optional<Record>(std::move(record));
}

}  // namespace

absl::StatusOr<std::optional<Record>> KudosStore::GetRecord(const std::string& org,
                                                            RecordKind kind,
                                                            const std::string& id) {
  return ParseRecord(pool_.Pipeline(RecordReads(org, kind, id)));
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

namespace {

// Sorted, unique, none empty; the kudos marked COMMITTED.
KudosStore::LiveRecord Normalized(KudosStore::LiveRecord live) {
  std::vector<std::string>& teams = live.committed->teams;
  std::sort(teams.begin(), teams.end());
  teams.erase(std::unique(teams.begin(), teams.end()), teams.end());
  teams.erase(std::remove(teams.begin(), teams.end(), ""), teams.end());
  live.committed->kudos.set_state(kudos::v1::KUDOS_STATE_COMMITTED);
  return live;
}

// The record from the GET of kudos:<id> when that answers it; nullopt for a
// hash (GET answers WRONGTYPE): read it with LegacyRecordRead.
std::optional<absl::StatusOr<KudosStore::LiveRecord>> LiveFromGet(
    const std::string& kudos_id, const absl::StatusOr<Reply>& get_reply) {
  KudosStore::LiveRecord live;
  if (!get_reply.ok()) {
    if (!IsWrongType(get_reply.status())) return absl::StatusOr<KudosStore::LiveRecord>(get_reply.status());
    return std::nullopt;
  }
  if (get_reply->is_nil()) {
    live.absent = true;
    return absl::StatusOr<KudosStore::LiveRecord>(live);
  }
  absl::StatusOr<kudos::v1::KudosSent> sent = KudosStore::ParseStoredRecord(kudos_id, get_reply->str);
  if (!sent.ok()) return absl::StatusOr<KudosStore::LiveRecord>(sent.status());
  KudosStore::CommittedKudos committed;
  committed.kudos = std::move(*sent->mutable_kudos());
  committed.teams.push_back(sent->giver_team_id());
  for (const auto& [recipient, team] : sent->recipient_team_ids()) committed.teams.push_back(team);
  live.committed = std::move(committed);
  return absl::StatusOr<KudosStore::LiveRecord>(Normalized(std::move(live)));
}

common::redis::Command LegacyRecordRead(const std::string& org, const std::string& kudos_id) {
  return {"HMGET", KudosStore::Prefix(org) + "kudos:" + kudos_id, "state", "pb", "teams"};
}

// A record stored as a hash: PENDING, ABORTED, or committed before 334bb16.
absl::StatusOr<KudosStore::LiveRecord> LiveFromHash(const absl::StatusOr<Reply>& fields) {
  if (!fields.ok()) return fields.status();
  KudosStore::LiveRecord live;
  if (fields->elements.size() != 3) return absl::InternalError("HMGET: bad reply");
  if (fields->elements[0].is_nil()) {
    live.absent = true;  // gone since the GET (archived)
    return live;
  }
  if (fields->elements[0].str != "COMMITTED") return live;
  // Before 334bb16: pb is the Kudos as begun, teams those of its team feeds.
  KudosStore::CommittedKudos committed;
  if (!committed.kudos.ParseFromString(fields->elements[1].str)) return Corrupt("kudos");
  committed.teams = absl::StrSplit(fields->elements[2].str, ',', absl::SkipEmpty());
  live.committed = std::move(committed);
  return Normalized(std::move(live));
}

}  // namespace

absl::StatusOr<KudosStore::LiveRecord> KudosStore::ReadLiveRecord(
    common::redis::Pool& pool, const std::string& org, const std::string& kudos_id,
    const absl::StatusOr<Reply>& get_reply) {
  std::optional<absl::StatusOr<LiveRecord>> live = LiveFromGet(kudos_id, get_reply);
  if (live.has_value()) return *std::move(live);
  return LiveFromHash(pool.Run(LegacyRecordRead(org, kudos_id)));
}

void KudosStore::AddRecordReads(std::vector<common::redis::Command>& commands,
                                const std::string& org, const std::string& kudos_id) {
  commands.push_back({"HGET", RecordBucketKey(org, kudos_id), FeedMember(kudos_id)});
  commands.push_back({"GET", RecordKey(org, RecordKind::kKudos, kudos_id)});
}

const absl::StatusOr<Reply>& KudosStore::RecordReply(const absl::StatusOr<Reply>& field,
                                                     const absl::StatusOr<Reply>& key) {
  if (!field.ok() || !field->is_nil()) return field;
  return key;
}

absl::StatusOr<std::vector<std::optional<kudos::v1::Kudos>>> KudosStore::ReadKudos(
    const std::string& org, const std::vector<std::string>& ids) {
  // Per id: boosts, record (AddRecordReads: two commands), boosts. The
  // archive moves the record and its boosts at once, so a live record means
  // the boosts read before it are all of them, and an absent one that the
  // boosts read after it are the live ones left beside the archived.
  std::vector<common::redis::Command> commands;
  for (const std::string& id : ids) {
    commands.push_back({"LRANGE", Prefix(org) + "boosts:" + id, "0", "-1"});
    AddRecordReads(commands, org, id);
    commands.push_back({"LRANGE", Prefix(org) + "boosts:" + id, "0", "-1"});
  }
  std::vector<std::optional<kudos::v1::Kudos>> result;
  if (commands.empty()) return result;
  auto replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  for (size_t i = 0; i < ids.size(); ++i) {
    const absl::StatusOr<Reply>& boosts_before = (*replies)[4 * i];
    const absl::StatusOr<Reply>& record = RecordReply((*replies)[4 * i + 1], (*replies)[4 * i + 2]);
    const absl::StatusOr<Reply>& boosts_after = (*replies)[4 * i + 3];
    if (!boosts_before.ok()) return boosts_before.status();
    if (!boosts_after.ok()) return boosts_after.status();
    auto live = ReadLiveRecord(pool_, org, ids[i], record);
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
    if (!record.ok()) {
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

namespace {

// Chunks never overlap: the one holding `before_seq` (highest seq at or
// above it), then every chunk below, newest first.
std::vector<common::redis::Command> ArchiveChunkLists(const std::string& org, int64_t before_seq) {
  const std::string limit = std::to_string(KudosStore::kMaxChunksPerPage);
  std::vector<common::redis::Command> commands;
  if (before_seq > 0) {
    commands.push_back({"ZRANGE", KudosStore::ArchiveChunks(org), std::to_string(before_seq), "+inf",
                        "BYSCORE", "LIMIT", "0", "1", "WITHSCORES"});
  }
  commands.push_back({"ZRANGE", KudosStore::ArchiveChunks(org),
                      before_seq > 0 ? "(" + std::to_string(before_seq) : "+inf", "-inf",
                      "BYSCORE", "REV", "LIMIT", "0", limit, "WITHSCORES"});
  return commands;
}

// The chunk names ArchiveChunkLists' replies list (at most a page's), and
// whether more chunks lie below them.
absl::Status ChunkNames(const absl::StatusOr<std::vector<absl::StatusOr<Reply>>>& replies,
                        std::vector<std::string>& chunks, bool& more_chunks) {
  if (!replies.ok()) return replies.status();
  for (const auto& reply : *replies) {
    if (!reply.ok()) return reply.status();
    for (size_t i = 0; i + 1 < reply->elements.size(); i += 2) chunks.push_back(reply->elements[i].str);
  }
  more_chunks = replies->back()->elements.size() / 2 >= static_cast<size_t>(KudosStore::kMaxChunksPerPage);
  if (chunks.size() > static_cast<size_t>(KudosStore::kMaxChunksPerPage)) {
    chunks.resize(KudosStore::kMaxChunksPerPage);
  }
  return absl::OkStatus();
}

// Fills `page` from the chunks in order until it holds `wanted` entries of
// the feed; `fetch(c)` is the GET of chunks[c].
template <typename Page>
absl::Status ScanChunks(const std::vector<std::string>& chunks, bool more_chunks,
                        const std::function<absl::StatusOr<Reply>(size_t)>& fetch,
                        const std::string& feed_key, int64_t before_seq, size_t wanted,
                        Page& page) {
  for (size_t c = 0; c < chunks.size() && page.entries.size() < wanted; ++c) {
    absl::StatusOr<Reply> chunk = fetch(c);
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
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<KudosStore::ArchivedPage> KudosStore::ListArchived(const std::string& org,
                                                                  const std::string& feed_key,
                                                                  int64_t before_seq,
                                                                  size_t wanted) {
  std::vector<std::string> chunks;
  bool more_chunks = false;
  absl::Status listed =
      ChunkNames(pool_.Pipeline(ArchiveChunkLists(org, before_seq)), chunks, more_chunks);
  if (!listed.ok()) return listed;
  ArchivedPage page;
  absl::Status scanned = ScanChunks(
      chunks, more_chunks,
      [&](size_t c) { return pool_.Run({"GET", ArchiveChunk(org, chunks[c])}); }, feed_key,
      before_seq, wanted, page);
  if (!scanned.ok()) return scanned;
  return page;
}

namespace {

// The keys and arguments of feed_range (kFeedRangeLua) with `chunks` declared.
std::vector<std::string> FeedRangeKeys(const std::string& org, const std::string& feed,
                                       const KudosStore::FeedRangeChunks& chunks) {
  constexpr char kAll[] = "feed:all";
  std::vector<std::string> keys = {
      KudosStore::FeedHeadKey(org, feed), KudosStore::FeedChunksKey(org, feed),
      KudosStore::ArchiveChunks(org), KudosStore::FeedHeadKey(org, kAll),
      KudosStore::FeedChunksKey(org, kAll)};
  for (const std::string& chunk : chunks.feed) keys.push_back(KudosStore::FeedChunkKey(org, feed, chunk));
  for (const std::string& chunk : chunks.all) keys.push_back(KudosStore::FeedChunkKey(org, kAll, chunk));
  return keys;
}

std::vector<std::string> FeedRangeArgs(const std::string& bound, int limit, bool desc,
                                       const KudosStore::FeedRangeChunks& chunks) {
  std::vector<std::string> args = {bound, std::to_string(limit), desc ? "desc" : "asc",
                                   std::to_string(chunks.feed.size())};
  args.insert(args.end(), chunks.feed.begin(), chunks.feed.end());
  args.push_back(std::to_string(chunks.all.size()));
  args.insert(args.end(), chunks.all.begin(), chunks.all.end());
  return args;
}

// Adds the chunks feed_range's 'NEED' answer names to `chunks`.
absl::Status LearnChunks(const Reply& need, KudosStore::FeedRangeChunks& chunks) {
  if (need.elements.size() != 3 ||
      (need.elements[1].elements.empty() && need.elements[2].elements.empty())) {
    return absl::InternalError("feed_range: bad NEED reply");
  }
  auto learn = [](const Reply& named, std::vector<std::string>& declared) {
    for (const Reply& chunk : named.elements) {
      if (std::find(declared.begin(), declared.end(), chunk.str) == declared.end()) {
        declared.push_back(chunk.str);
      }
    }
  };
  learn(need.elements[1], chunks.feed);
  learn(need.elements[2], chunks.all);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Reply> KudosStore::FeedRange(const std::string& org, const FeedRangeQuery& query) {
  // Most calls stay in the heads: no chunk declared, one call.
  FeedRangeChunks chunks;
  for (int attempt = 0; attempt <= kMaxFeedRangeRetries; ++attempt) {
    absl::StatusOr<Reply> reply =
        pool_.Eval(feed_range_, FeedRangeKeys(org, query.feed, chunks),
                   FeedRangeArgs(query.bound, query.limit, query.desc, chunks));
    if (!reply.ok() || !IsNeed(*reply)) return reply;
    if (absl::Status learned = LearnChunks(*reply, chunks); !learned.ok()) return learned;
  }
  return KeysKeptChanging("feed_range");
}

void KudosStore::FeedRangeAsync(const std::string& org, FeedRangeQuery query,
                                FeedRangeChunks chunks, int retries_left, Deadline deadline,
                                StoreCallback<Reply> done) {
  std::vector<std::string> keys = FeedRangeKeys(org, query.feed, chunks);
  std::vector<std::string> args = FeedRangeArgs(query.bound, query.limit, query.desc, chunks);
  async().EvalSha(
      feed_range_, std::move(keys), std::move(args), deadline,
      [this, org, query = std::move(query), chunks = std::move(chunks), retries_left, deadline,
       done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok() || !IsNeed(*reply)) return std::move(done)(std::move(reply));
        if (retries_left == 0) return std::move(done)(KeysKeptChanging("feed_range"));
        if (absl::Status learned = LearnChunks(*reply, chunks); !learned.ok()) {
          return std::move(done)(learned);
        }
        FeedRangeAsync(org, std::move(query), std::move(chunks), retries_left - 1, deadline,
                       std::move(done));
      });
}

absl::StatusOr<std::vector<KudosStore::FeedEntry>> KudosStore::LiveFeedRange(
    const std::string& org, const std::string& feed_key, int64_t bound, int limit,
    bool newest_first) {
  absl::StatusOr<Reply> reply =
      FeedRange(org, {feed_key, bound > 0 ? std::to_string(bound) : "", limit, newest_first});
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 2) return absl::InternalError("feed_range: bad reply");
  std::vector<FeedEntry> entries;
  const Reply& flat = reply->elements[0];
  for (size_t i = 0; i + 1 < flat.elements.size(); i += 2) {
    auto seq = SeqOf(flat.elements[i + 1]);
    if (!seq.ok()) return seq.status();
    entries.push_back({KudosIdOfFeedMember(flat.elements[i].str), *seq});
  }
  return entries;
}

namespace {

// A ListFeed candidate by seq, newest first: a live id or an archived entry.
struct Candidate {
  int64_t seq;
  std::string live_id;      // set for a live kudos
  ArchivedKudos* archived;  // set for an archived one
};

// What a ListFeed call has gathered so far.
template <typename ArchivedPageT>
struct FeedListing {
  int64_t before = 0;
  int limit = 0;
  std::vector<Candidate> candidates;
  int64_t archived_up_to = 0;
  bool read_archive = false;
  ArchivedPageT archived;
  FeedPage page;
  std::vector<std::string> live_ids;
  std::vector<common::redis::Command> archived_boosts;
};

absl::StatusOr<int64_t> BeforeSeq(const std::string& before_seq) {
  int64_t before = 0;
  if (!before_seq.empty() && (!absl::SimpleAtoi(before_seq, &before) || before <= 0)) {
    return absl::InvalidArgumentError("page_token: is not a token this API returned");
  }
  return before;
}

// The live feed's candidates and the archive's top, from feed_range.
template <typename Listing>
absl::Status TakeHeads(const absl::StatusOr<Reply>& heads, Listing& listing) {
  if (!heads.ok()) return heads.status();
  if (heads->elements.size() != 2) return absl::InternalError("feed_range: bad reply");
  const Reply& live = heads->elements[0];
  for (size_t i = 0; i + 1 < live.elements.size(); i += 2) {
    auto seq = SeqOf(live.elements[i + 1]);
    if (!seq.ok()) return seq.status();
    listing.candidates.push_back({*seq, KudosStore::KudosIdOfFeedMember(live.elements[i].str), nullptr});
  }
  const Reply& top_chunk = heads->elements[1];
  if (top_chunk.elements.size() == 2) {
    auto seq = SeqOf(top_chunk.elements[1]);
    if (!seq.ok()) return seq.status();
    listing.archived_up_to = *seq;
  }
  const bool live_fills_page = listing.candidates.size() > static_cast<size_t>(listing.limit) &&
                               listing.candidates.back().seq > listing.archived_up_to;
  listing.read_archive = listing.archived_up_to > 0 && !live_fills_page;
  return absl::OkStatus();
}

// Merges the archived entries (once read) and cuts the page.
template <typename Listing>
void CutPage(Listing& listing) {
  std::vector<Candidate>& candidates = listing.candidates;
  if (listing.read_archive) {
    // A live candidate archived since the ZRANGE is listed once, from the archive.
    std::set<int64_t> archived_seqs;
    for (const ArchivedKudos& entry : listing.archived.entries) archived_seqs.insert(entry.seq);
    candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                    [&](const Candidate& c) { return archived_seqs.count(c.seq) > 0; }),
                     candidates.end());
    for (ArchivedKudos& entry : listing.archived.entries) candidates.push_back({entry.seq, "", &entry});
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.seq > b.seq; });
    // Below an unscanned part of the archive the order is not known yet.
    const int64_t floor = listing.archived.floor;
    candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                    [&](const Candidate& c) { return c.seq < floor; }),
                     candidates.end());
  }
  if (candidates.size() > static_cast<size_t>(listing.limit)) {
    candidates.resize(listing.limit);
    listing.page.next_cursor = std::to_string(candidates.back().seq);
  } else if (listing.read_archive && listing.archived.floor > 0) {
    listing.page.next_cursor = std::to_string(listing.archived.floor);
  }
}

// The reads the page still needs: live kudos by id, archived ones' boosts.
template <typename Listing>
void PlanReads(const std::string& org, Listing& listing) {
  for (const Candidate& c : listing.candidates) {
    if (c.archived == nullptr) {
      listing.live_ids.push_back(c.live_id);
    } else {
      listing.archived_boosts.push_back(
          {"LRANGE", KudosStore::Prefix(org) + "boosts:" + c.archived->kudos.kudos_id(), "0", "-1"});
    }
  }
}

template <typename Listing>
absl::Status Assemble(std::vector<std::optional<kudos::v1::Kudos>>& live_kudos,
                      const std::vector<absl::StatusOr<Reply>>& boosts_replies, Listing& listing) {
  size_t next_live = 0, next_archived = 0;
  for (Candidate& c : listing.candidates) {
    if (c.archived == nullptr) {
      std::optional<kudos::v1::Kudos>& kudos = live_kudos[next_live++];
      if (kudos.has_value()) listing.page.kudos.push_back(*std::move(kudos));
      continue;
    }
    const absl::StatusOr<Reply>& boosts = boosts_replies[next_archived++];
    if (!boosts.ok()) return boosts.status();
    absl::Status boosts_ok;
    AppendBoosts(*boosts, c.archived->kudos, boosts_ok);
    if (!boosts_ok.ok()) return boosts_ok;
    listing.page.kudos.push_back(std::move(c.archived->kudos));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FeedPage> KudosStore::ListFeed(const std::string& org, const std::string& feed_key,
                                              const std::string& before_seq, int limit) {
  // Scores are sequence numbers: a page continues strictly below the last
  // one seen, so kudos arriving meanwhile never shift or repeat entries.
  absl::StatusOr<int64_t> before = BeforeSeq(before_seq);
  if (!before.ok()) return before.status();
  FeedListing<ArchivedPage> listing;
  listing.before = *before;
  listing.limit = limit;
  // The live feed (head and sealed chunks) and the archive's top, at once.
  absl::Status heads = TakeHeads(
      FeedRange(org, {feed_key, before_seq, limit + 1, /*desc=*/true}), listing);
  if (!heads.ok()) return heads;
  if (listing.read_archive) {
    auto read = ListArchived(org, feed_key, listing.before, static_cast<size_t>(limit) + 1);
    if (!read.ok()) return read.status();
    listing.archived = *std::move(read);
  }
  CutPage(listing);
  PlanReads(org, listing);
  // A live candidate archived since the ZRANGE reads from the archive.
  auto live_kudos = ReadKudos(org, listing.live_ids);
  if (!live_kudos.ok()) return live_kudos.status();
  std::vector<absl::StatusOr<Reply>> boosts_replies;
  if (!listing.archived_boosts.empty()) {
    auto replies = pool_.Pipeline(listing.archived_boosts);
    if (!replies.ok()) return replies.status();
    boosts_replies = *std::move(replies);
  }
  absl::Status assembled = Assemble(*live_kudos, boosts_replies, listing);
  if (!assembled.ok()) return assembled;
  return std::move(listing.page);
}

absl::StatusOr<std::vector<std::pair<RecordKind, std::string>>> KudosStore::DuePending(
    const std::string& org, int64_t now_ms, int limit) {
  absl::StatusOr<Reply> reply =
      pool_.Run({"ZRANGE", PendingKey(org), "-inf", std::to_string(now_ms), "BYSCORE",
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
      pool_.Eval(claim_reconcile_, {PendingKey(org), RecordKey(org, kind, id)},
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
      pool_.Eval(reconcile_failed_, {RecordKey(org, kind, id), PendingKey(org), DeadLetterKey(org)},
                 {KindName(kind), id, std::to_string(attempt), std::to_string(backoff.max_attempts),
                  reason, NowText(), std::to_string(backoff.max_dead_letters)});
  if (!reply.ok()) return reply.status();
  const bool dead = reply->str == "DEAD";
  KUDOS_CHECK(dead || reply->str == "RETRY" || reply->str == "SETTLED",
              "reconcile_failed answers DEAD, RETRY or SETTLED");
  KUDOS_CHECK(!dead || attempt >= backoff.max_attempts, "dead-lettered only after the last attempt");
  return dead;
}

absl::StatusOr<std::vector<std::string>> KudosStore::Orgs() { return org_registry_.Orgs(); }

absl::StatusOr<std::vector<KudosStore::ProfileToSync>> KudosStore::ProfilesToSync(
    const std::string& org, int max_count) {
  absl::StatusOr<Reply> sample = pool_.Run(
      {"HRANDFIELD", ProfileSyncKey(org), absl::StrCat(std::max(1, max_count)), "WITHVALUES"});
  if (!sample.ok()) return sample.status();
  std::vector<ProfileToSync> out;
  if (sample->type != Reply::Type::kArray) return out;  // nil: nothing queued
  KUDOS_CHECK(sample->elements.size() % 2 == 0, "HRANDFIELD WITHVALUES answers field, value pairs");
  for (size_t i = 0; i + 1 < sample->elements.size(); i += 2) {
    out.push_back({sample->elements[i].str, sample->elements[i + 1].str});
  }
  return out;
}

absl::StatusOr<std::optional<KudosStore::ProfileSource>> KudosStore::ReadProfileSource(
    const std::string& org, const std::string& person_id) {
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies =
      pool_.Pipeline({{"HGET", PersonKey(org, person_id), "pb"},
                      {"HGET", DirectReportsKey(org), person_id}});
  if (!replies.ok()) return replies.status();
  KUDOS_CHECK(replies->size() == 2, "one reply per pipelined command");
  for (const absl::StatusOr<Reply>& reply : *replies) {
    if (!reply.ok()) return reply.status();
  }
  const Reply& pb = *(*replies)[0];
  if (pb.is_nil()) return std::optional<ProfileSource>();
  kudos::v1::Person person;
  if (!person.ParseFromString(pb.str)) {
    return absl::DataLossError(absl::StrCat("person '", person_id, "': stored record does not parse"));
  }
  ProfileSource source{person.team_id(), 0};
  const Reply& count = *(*replies)[1];
  if (!count.is_nil()) {
    absl::StatusOr<long long> reports = count.AsInteger();
    if (!reports.ok()) return reports.status();
    source.direct_reports = std::max<long long>(0, *reports);
  }
  return std::optional<ProfileSource>(source);
}

absl::Status KudosStore::FinishProfileSync(const std::string& org, const ProfileToSync& queued) {
  return pool_
      .Eval(finish_profile_sync_, {ProfileSyncKey(org), ProfileSyncSeqKey(org)},
            {queued.person_id, queued.version})
      .status();
}

// ---------------------------------------------------------------------------
// Asynchronous forms (the RPC handlers' path): the same commands and the same
// parsing as the blocking forms above, over the AsyncClient.

namespace {

using common::redis::PipelineReplies;

}  // namespace

common::redis::AsyncClient& KudosStore::async() const {
  KUDOS_CHECK(async_ != nullptr, "the asynchronous store methods need an AsyncClient");
  return *async_;
}

void KudosStore::GetSettingsAsync(const std::string& org, Deadline deadline,
                                  StoreCallback<kudos::v1::OrgSettings> done) {
  async().Run({"GET", SettingsKey(org)}, deadline,
              [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                if (!reply.ok()) return std::move(done)(reply.status());
                std::move(done)(ParseSettings(*reply));
              });
}

void KudosStore::GetSettingsAndPeopleAsync(const std::string& org,
                                           const std::vector<std::string>& ids, Deadline deadline,
                                           StoreCallback<SettingsAndPeople> done) {
  async().Pipeline(DirectoryReads(org, ids, /*with_settings=*/true), deadline,
                   [ids, done = std::move(done)](absl::StatusOr<PipelineReplies> replies) mutable {
                     std::move(done)(ParseDirectory(ids, /*with_settings=*/true, replies));
                   });
}

void KudosStore::GetSendDirectoryAsync(const std::string& org, const std::vector<std::string>& ids,
                                       bool allow_cache, Deadline deadline,
                                       StoreCallback<DirectoryRead> done) {
  if (allow_cache) {
    std::optional<DirectoryCache::Hit> hit = directory_cache_.Find(org, ids);
    if (hit.has_value()) {
      DirectoryRead read;
      read.read.settings = std::move(hit->settings);
      read.read.people = std::move(hit->people);
      read.version = std::move(hit->version);
      read.cached = true;
      return std::move(done)(std::move(read));
    }
  }
  async().Pipeline(
      VersionedDirectoryReads(org, ids), deadline,
      [this, org, ids, done = std::move(done)](absl::StatusOr<PipelineReplies> replies) mutable {
        if (!replies.ok()) return std::move(done)(replies.status());
        if (replies->empty()) return std::move(done)(absl::InternalError("directory read: no replies"));
        const absl::StatusOr<Reply> version = std::move(replies->front());
        if (!version.ok()) return std::move(done)(version.status());
        replies->erase(replies->begin());
        absl::StatusOr<SettingsAndPeople> parsed =
            ParseDirectory(ids, /*with_settings=*/true, replies);
        if (!parsed.ok()) return std::move(done)(parsed.status());
        DirectoryRead read;
        read.version = version->is_nil() ? "0" : version->str;
        directory_cache_.Put(org, read.version, parsed->settings, parsed->people);
        if (directory_cache_.ShouldWarmUp(org)) WarmUpDirectoryAsync(org);
        read.read = *std::move(parsed);
        std::move(done)(std::move(read));
      });
}

// The org's whole directory into the cache: its people ids (at most the
// cache's max_people_warmed; a bigger org is not warmed), then the version
// first, the settings and every person in one pipeline. Best effort: a
// failure only leaves the cache as it was.
void KudosStore::WarmUpDirectoryAsync(const std::string& org) {
  const size_t limit = directory_cache_.max_people_warmed();
  const Deadline deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  async().Run(
      {"ZRANGE", PeopleKey(org), "0", std::to_string(limit)}, deadline,
      [this, org, limit, deadline](absl::StatusOr<Reply> listed) {
        if (!listed.ok() || listed->elements.empty() || listed->elements.size() > limit) return;
        std::vector<std::string> ids;
        ids.reserve(listed->elements.size());
        for (const Reply& id : listed->elements) ids.push_back(id.str);
        std::vector<common::redis::Command> commands = VersionedDirectoryReads(org, ids);
        async().Pipeline(
            std::move(commands), deadline,
            [this, org, ids = std::move(ids)](absl::StatusOr<PipelineReplies> replies) mutable {
              if (!replies.ok() || replies->empty() || !replies->front().ok()) return;
              const std::string version =
                  replies->front()->is_nil() ? "0" : replies->front()->str;
              replies->erase(replies->begin());
              absl::StatusOr<SettingsAndPeople> parsed =
                  ParseDirectory(ids, /*with_settings=*/true, replies);
              if (!parsed.ok()) return;
              directory_cache_.Put(org, version, parsed->settings, parsed->people);
            });
      });
}

void KudosStore::GetPeopleAsync(const std::string& org, const std::vector<std::string>& ids,
                                Deadline deadline,
                                StoreCallback<std::map<std::string, kudos::v1::Person>> done) {
  if (ids.empty()) return std::move(done)(std::map<std::string, kudos::v1::Person>());
  async().Pipeline(DirectoryReads(org, ids, /*with_settings=*/false), deadline,
                   [ids, done = std::move(done)](absl::StatusOr<PipelineReplies> replies) mutable {
                     auto read = ParseDirectory(ids, /*with_settings=*/false, replies);
                     if (!read.ok()) return std::move(done)(read.status());
                     std::move(done)(std::move(read->people));
                   });
}

void KudosStore::PutSettingsAsync(const std::string& org, const kudos::v1::OrgSettings& settings,
                                  const std::string& event_pb, const std::string& actor,
                                  Deadline deadline, StoreStatusCallback done) {
  HintOrgSlotAsync(org, deadline);
  async().EvalSha(put_settings_, SettingsWriteKeys(org),
                  {settings.SerializeAsString(), event_pb, org, actor, NowText()}, deadline,
                  [this, org, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                    // Written or not (a timeout may have written it): read again.
                    directory_cache_.Invalidate(org);
                    std::move(done)(reply.status());
                  });
}

void KudosStore::PutEntryAsync(const std::string& org, DirectoryEntry entry,
                               std::string expected_old_team, int retries_left, Deadline deadline,
                               StoreStatusCallback done) {
  std::vector<std::string> keys = DirectoryEntryKeys(org, entry, expected_old_team);
  std::vector<std::string> args = DirectoryEntryArgs(org, entry, expected_old_team);
  async().EvalSha(put_directory_entry_, std::move(keys), std::move(args), deadline,
                  [this, org, entry = std::move(entry), retries_left, deadline,
                   done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                    directory_cache_.Invalidate(org);
                    if (!reply.ok()) return std::move(done)(reply.status());
                    std::optional<std::string> old_team = NeededOldTeam(*reply);
                    if (!old_team.has_value()) return std::move(done)(absl::OkStatus());
                    if (retries_left == 0) return std::move(done)(EntryKeptChanging(entry));
                    PutEntryAsync(org, std::move(entry), *std::move(old_team), retries_left - 1,
                                  deadline, std::move(done));
                  });
}

void KudosStore::PutPersonAsync(const std::string& org, const kudos::v1::Person& person,
                                bool create, const std::string& event_pb, const std::string& actor,
                                Deadline deadline, StoreStatusCallback done) {
  HintOrgSlotAsync(org, deadline);
  DirectoryEntry entry = PersonEntry(person, create, event_pb, actor);
  std::string expected_old_team = ExpectedOldTeam(entry);
  PutEntryAsync(org, std::move(entry), std::move(expected_old_team), kMaxNeedRetries, deadline,
                std::move(done));
}

void KudosStore::PutTeamAsync(const std::string& org, const kudos::v1::Team& team,
                              const std::string& event_pb, const std::string& actor,
                              Deadline deadline, StoreStatusCallback done) {
  HintOrgSlotAsync(org, deadline);
  PutEntryAsync(org, TeamEntry(team, event_pb, actor), "", kMaxNeedRetries, deadline,
                std::move(done));
}

void KudosStore::ListPeopleAsync(const std::string& org, const std::string& team_id,
                                 const std::string& after_id, int limit, Deadline deadline,
                                 StoreCallback<std::vector<kudos::v1::Person>> done) {
  std::string index =
      team_id.empty() ? PeopleKey(org) : TeamMembersKey(org, team_id);
  async().Run(
      RangeAfter(index, after_id, limit), deadline,
      [this, org, deadline, done = std::move(done)](absl::StatusOr<Reply> ids) mutable {
        if (!ids.ok()) return std::move(done)(ids.status());
        std::vector<std::string> id_list;
        for (const Reply& id : ids->elements) id_list.push_back(id.str);
        GetPeopleAsync(
            org, id_list, deadline,
            [id_list, done = std::move(done)](
                absl::StatusOr<std::map<std::string, kudos::v1::Person>> people) mutable {
              if (!people.ok()) return std::move(done)(people.status());
              std::vector<kudos::v1::Person> ordered;
              for (const std::string& id : id_list) {
                auto it = people->find(id);
                if (it != people->end()) ordered.push_back(it->second);
              }
              std::move(done)(std::move(ordered));
            });
      });
}

void KudosStore::ListTeamsAsync(const std::string& org, const std::string& after_id, int limit,
                                Deadline deadline,
                                StoreCallback<std::vector<kudos::v1::Team>> done) {
  async().Run(
      RangeAfter(TeamsKey(org), after_id, limit), deadline,
      [this, org, deadline, done = std::move(done)](absl::StatusOr<Reply> ids) mutable {
        if (!ids.ok()) return std::move(done)(ids.status());
        std::vector<common::redis::Command> commands;
        for (const Reply& id : ids->elements) {
          commands.push_back({"HGET", TeamKey(org, id.str), "pb"});
        }
        if (commands.empty()) return std::move(done)(std::vector<kudos::v1::Team>());
        async().Pipeline(std::move(commands), deadline,
                         [done = std::move(done)](absl::StatusOr<PipelineReplies> replies) mutable {
                           if (!replies.ok()) return std::move(done)(replies.status());
                           std::vector<kudos::v1::Team> teams;
                           for (const auto& reply : *replies) {
                             if (!reply.ok()) return std::move(done)(reply.status());
                             if (reply->is_nil()) continue;
                             kudos::v1::Team team;
                             if (!team.ParseFromString(reply->str)) {
                               return std::move(done)(Corrupt("team"));
                             }
                             teams.push_back(std::move(team));
                           }
                           std::move(done)(std::move(teams));
                         });
      });
}

void KudosStore::BeginAsync(const std::string& org, const BeginRecognition& begin,
                            Deadline deadline, StoreCallback<BeginOutcome> done) {
  async().EvalSha(begin_, BeginKeys(org, begin), BeginArgs(begin), deadline,
                  [fingerprint = begin.fingerprint, done = std::move(done)](
                      absl::StatusOr<Reply> reply) mutable {
                    std::move(done)(ParseBegin(fingerprint, reply));
                  });
}

void KudosStore::FindRequestAsync(const std::string& org, RecordKind kind,
                                  const std::string& actor, const std::string& request_id,
                                  Deadline deadline,
                                  StoreCallback<std::optional<BeginOutcome>> done) {
  std::vector<std::string> keys, args;
  FindRequestKeys(org, kind, actor, request_id, keys, args);
  async().EvalSha(find_request_, keys, args, deadline,
                  [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                    std::move(done)(ParseFindRequest(reply));
                  });
}

void KudosStore::FinishAsync(const std::string& org, RecordKind kind, const std::string& id,
                             bool commit, const absl::Status& error, FinishFields fields,
                             Deadline deadline, StoreCallback<std::string> done) {
  FinishAttemptAsync(org, kind, id, commit, error, std::move(fields), kMaxNeedRetries, deadline,
                     std::move(done));
}

void KudosStore::FinishAttemptAsync(const std::string& org, RecordKind kind,
                                    const std::string& id, bool commit, const absl::Status& error,
                                    FinishFields fields, int retries_left, Deadline deadline,
                                    StoreCallback<std::string> done) {
  std::vector<std::string> keys = FinishKeys(org, kind, id, fields);
  std::vector<std::string> args = FinishArgs(kind, id, commit, error, fields, write_record_keys_);
  async().EvalSha(
      finish_, std::move(keys), std::move(args), deadline,
      [this, org, kind, id, commit, error, fields = std::move(fields), retries_left, deadline,
       done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) return std::move(done)(reply.status());
        if (!IsNeed(*reply)) return std::move(done)(std::move(reply->str));
        if (retries_left == 0) return std::move(done)(KeysKeptChanging("finish_recognition"));
        if (absl::Status learned = LearnFinishFields(*reply, fields); !learned.ok()) {
          return std::move(done)(learned);
        }
        FinishAttemptAsync(org, kind, id, commit, error, std::move(fields), retries_left - 1,
                           deadline, std::move(done));
      });
}

void KudosStore::GetRecordAsync(const std::string& org, RecordKind kind, const std::string& id,
                                Deadline deadline, StoreCallback<std::optional<Record>> done) {
  async().Pipeline(RecordReads(org, kind, id), deadline,
                   [done = std::move(done)](absl::StatusOr<PipelineReplies> replies) mutable {
                     std::move(done)(ParseRecord(replies));
                   });
}

void KudosStore::GetKudosAsync(const std::string& org, const std::string& kudos_id,
                               Deadline deadline, StoreCallback<kudos::v1::Kudos> done) {
  ReadKudosAsync(org, {kudos_id}, deadline,
                 [kudos_id, done = std::move(done)](absl::StatusOr<KudosList> read) mutable {
                   if (!read.ok()) return std::move(done)(read.status());
                   if (read->size() == 1 && read->front().has_value()) {
                     return std::move(done)(*std::move(read->front()));
                   }
                   std::move(done)(absl::NotFoundError(
                       absl::StrCat("kudos_id: '", kudos_id, "' does not exist")));
                 });
}

// One ReadKudosAsync call: the ids whose first read did not settle them
// (a hash to read with HMGET, or an archived kudos) are read one by one.
struct KudosStore::ReadKudosState {
  std::string org;
  std::vector<std::string> ids;
  PipelineReplies replies;  // per id: boosts, record (two: AddRecordReads), boosts
  KudosList result;
  std::vector<size_t> follow_ups;  // indexes into ids
  Deadline deadline;
  StoreCallback<KudosList> done;

  const absl::StatusOr<Reply>& RecordOf(size_t i) const {
    return RecordReply(replies[4 * i + 1], replies[4 * i + 2]);
  }
};

void KudosStore::ReadKudosAsync(const std::string& org, std::vector<std::string> ids,
                                Deadline deadline, StoreCallback<KudosList> done) {
  // Per id: boosts, record, boosts (see ReadKudos for why).
  std::vector<common::redis::Command> commands;
  for (const std::string& id : ids) {
    commands.push_back({"LRANGE", Prefix(org) + "boosts:" + id, "0", "-1"});
    AddRecordReads(commands, org, id);
    commands.push_back({"LRANGE", Prefix(org) + "boosts:" + id, "0", "-1"});
  }
  if (commands.empty()) return std::move(done)(KudosList());
  auto state = std::make_shared<ReadKudosState>();
  state->org = org;
  state->ids = std::move(ids);
  state->deadline = deadline;
  state->done = std::move(done);
  async().Pipeline(
      std::move(commands), deadline,
      [this, state](absl::StatusOr<PipelineReplies> replies) mutable {
        if (!replies.ok()) return std::move(state->done)(replies.status());
        state->replies = *std::move(replies);
        state->result.resize(state->ids.size());
        for (size_t i = 0; i < state->ids.size(); ++i) {
          const absl::StatusOr<Reply>& boosts_before = state->replies[4 * i];
          const absl::StatusOr<Reply>& boosts_after = state->replies[4 * i + 3];
          if (!boosts_before.ok()) return std::move(state->done)(boosts_before.status());
          if (!boosts_after.ok()) return std::move(state->done)(boosts_after.status());
          std::optional<absl::StatusOr<LiveRecord>> live =
              LiveFromGet(state->ids[i], state->RecordOf(i));
          if (!live.has_value()) {
            state->follow_ups.push_back(i);  // a hash
            continue;
          }
          if (!live->ok()) return std::move(state->done)(live->status());
          if ((*live)->committed.has_value()) {
            kudos::v1::Kudos kudos = std::move((*live)->committed->kudos);
            absl::Status boosts_ok;
            AppendBoosts(*boosts_before, kudos, boosts_ok);
            if (!boosts_ok.ok()) return std::move(state->done)(boosts_ok);
            state->result[i] = std::move(kudos);
          } else if ((*live)->absent) {
            state->follow_ups.push_back(i);  // archived, or never was
          }  // else PENDING or ABORTED: nullopt
        }
        ReadKudosFollowUps(std::move(state), 0);
      });
}

void KudosStore::ReadKudosFollowUps(std::shared_ptr<ReadKudosState> state, size_t next) {
  if (next == state->follow_ups.size()) return std::move(state->done)(std::move(state->result));
  const size_t i = state->follow_ups[next];
  const std::string& id = state->ids[i];
  auto archived = [this, state, i, next](Reply live_boosts) {
    GetArchivedKudosAsync(state->org, state->ids[i], std::move(live_boosts), state->deadline,
                          [this, state, i, next](
                              absl::StatusOr<std::optional<kudos::v1::Kudos>> kudos) mutable {
                            if (!kudos.ok()) return std::move(state->done)(kudos.status());
                            state->result[i] = *std::move(kudos);
                            ReadKudosFollowUps(std::move(state), next + 1);
                          });
  };
  if (state->RecordOf(i).ok()) return archived(*state->replies[4 * i + 3]);
  // A hash (WRONGTYPE): PENDING, ABORTED, or committed before 334bb16.
  async().Run(
      LegacyRecordRead(state->org, id), state->deadline,
      [this, state, i, next, archived](absl::StatusOr<Reply> fields) mutable {
        absl::StatusOr<LiveRecord> live = LiveFromHash(fields);
        if (!live.ok()) return std::move(state->done)(live.status());
        if (live->committed.has_value()) {
          kudos::v1::Kudos kudos = std::move(live->committed->kudos);
          absl::Status boosts_ok;
          AppendBoosts(*state->replies[4 * i], kudos, boosts_ok);
          if (!boosts_ok.ok()) return std::move(state->done)(boosts_ok);
          state->result[i] = std::move(kudos);
          return ReadKudosFollowUps(std::move(state), next + 1);
        }
        if (!live->absent) return ReadKudosFollowUps(std::move(state), next + 1);
        // Archived after boosts_after was read: read them again.
        async().Run({"LRANGE", Prefix(state->org) + "boosts:" + state->ids[i], "0", "-1"},
                    state->deadline, [state, archived](absl::StatusOr<Reply> boosts) mutable {
                      if (!boosts.ok()) return std::move(state->done)(boosts.status());
                      archived(*std::move(boosts));
                    });
      });
}

void KudosStore::GetArchivedKudosAsync(const std::string& org, const std::string& kudos_id,
                                       Reply live_boosts, Deadline deadline,
                                       StoreCallback<std::optional<kudos::v1::Kudos>> done) {
  const uint64_t digest = IdDigest(kudos_id);
  async().Run(
      {"HGET", ArchiveIndex(org), IndexField(digest)}, deadline,
      [this, org, kudos_id, digest, deadline, live_boosts = std::move(live_boosts),
       done = std::move(done)](absl::StatusOr<Reply> field) mutable {
        if (!field.ok()) return std::move(done)(field.status());
        std::vector<ChunkRef> refs = FindInIndex(field->str, digest);
        if (refs.empty()) return std::move(done)(std::optional<kudos::v1::Kudos>());
        std::vector<common::redis::Command> gets;
        for (const ChunkRef& ref : refs) gets.push_back({"GET", ArchiveChunk(org, ChunkName(ref))});
        // Every candidate chunk in one round trip, taken in index order.
        async().Pipeline(
            std::move(gets), deadline,
            [kudos_id, refs, live_boosts = std::move(live_boosts),
             done = std::move(done)](absl::StatusOr<PipelineReplies> chunks) mutable {
              if (!chunks.ok()) return std::move(done)(chunks.status());
              for (size_t c = 0; c < refs.size(); ++c) {
                const absl::StatusOr<Reply>& chunk = (*chunks)[c];
                if (!chunk.ok()) return std::move(done)(chunk.status());
                if (chunk->is_nil()) {
                  return std::move(done)(
                      Corrupt(absl::StrCat("archive chunk ", ChunkName(refs[c]), " (missing)")));
                }
                auto entries = DecodeChunk(chunk->str);
                if (!entries.ok()) return std::move(done)(entries.status());
                for (ArchivedKudos& entry : *entries) {
                  if (entry.kudos.kudos_id() != kudos_id) continue;
                  absl::Status boosts_ok;
                  AppendBoosts(live_boosts, entry.kudos, boosts_ok);
                  if (!boosts_ok.ok()) return std::move(done)(boosts_ok);
                  return std::move(done)(std::optional<kudos::v1::Kudos>(std::move(entry.kudos)));
                }
              }
              std::move(done)(std::optional<kudos::v1::Kudos>());
            });
      });
}

void KudosStore::ListArchivedAsync(const std::string& org, const std::string& feed_key,
                                   int64_t before_seq, size_t wanted, Deadline deadline,
                                   StoreCallback<ArchivedPage> done) {
  async().Pipeline(
      ArchiveChunkLists(org, before_seq), deadline,
      [this, org, feed_key, before_seq, wanted, deadline,
       done = std::move(done)](absl::StatusOr<PipelineReplies> lists) mutable {
        auto chunks = std::make_shared<std::vector<std::string>>();
        bool more_chunks = false;
        if (absl::Status listed = ChunkNames(lists, *chunks, more_chunks); !listed.ok()) {
          return std::move(done)(listed);
        }
        if (chunks->empty()) return std::move(done)(ArchivedPage());
        std::vector<common::redis::Command> gets;
        for (const std::string& chunk : *chunks) gets.push_back({"GET", ArchiveChunk(org, chunk)});
        // The page's chunks (at most kMaxChunksPerPage) in one round trip.
        async().Pipeline(
            std::move(gets), deadline,
            [chunks, more_chunks, feed_key, before_seq, wanted,
             done = std::move(done)](absl::StatusOr<PipelineReplies> replies) mutable {
              if (!replies.ok()) return std::move(done)(replies.status());
              ArchivedPage page;
              absl::Status scanned = ScanChunks(
                  *chunks, more_chunks, [&](size_t c) { return (*replies)[c]; }, feed_key,
                  before_seq, wanted, page);
              if (!scanned.ok()) return std::move(done)(scanned);
              std::move(done)(std::move(page));
            });
      });
}

void KudosStore::ListFeedAsync(const std::string& org, const std::string& feed_key,
                               const std::string& before_seq, int limit, Deadline deadline,
                               StoreCallback<FeedPage> done) {
  absl::StatusOr<int64_t> before = BeforeSeq(before_seq);
  if (!before.ok()) return std::move(done)(before.status());
  using Listing = FeedListing<ArchivedPage>;
  auto listing = std::make_shared<Listing>();
  listing->before = *before;
  listing->limit = limit;
  // Once the candidates are known: the page's kudos and archived boosts.
  auto read_page = [this, org, deadline](std::shared_ptr<Listing> listing,
                                         StoreCallback<FeedPage> done) {
    CutPage(*listing);
    PlanReads(org, *listing);
    ReadKudosAsync(
        org, listing->live_ids, deadline,
        [this, listing, deadline, done = std::move(done)](absl::StatusOr<KudosList> live) mutable {
          if (!live.ok()) return std::move(done)(live.status());
          auto live_kudos = std::make_shared<KudosList>(*std::move(live));
          auto assemble = [listing, live_kudos](const PipelineReplies& boosts,
                                                StoreCallback<FeedPage> done) {
            absl::Status assembled = Assemble(*live_kudos, boosts, *listing);
            if (!assembled.ok()) return std::move(done)(assembled);
            std::move(done)(std::move(listing->page));
          };
          if (listing->archived_boosts.empty()) return assemble({}, std::move(done));
          async().Pipeline(listing->archived_boosts, deadline,
                           [assemble, done = std::move(done)](
                               absl::StatusOr<PipelineReplies> boosts) mutable {
                             if (!boosts.ok()) return std::move(done)(boosts.status());
                             assemble(*boosts, std::move(done));
                           });
        });
  };
  FeedRangeAsync(
      org, {feed_key, before_seq, limit + 1, /*desc=*/true}, {}, kMaxFeedRangeRetries, deadline,
      [this, org, feed_key, limit, deadline, listing, read_page,
       done = std::move(done)](absl::StatusOr<Reply> heads) mutable {
        if (absl::Status taken = TakeHeads(heads, *listing); !taken.ok()) {
          return std::move(done)(taken);
        }
        if (!listing->read_archive) return read_page(listing, std::move(done));
        ListArchivedAsync(org, feed_key, listing->before, static_cast<size_t>(limit) + 1, deadline,
                          [listing, read_page, done = std::move(done)](
                              absl::StatusOr<ArchivedPage> archived) mutable {
                            if (!archived.ok()) return std::move(done)(archived.status());
                            listing->archived = *std::move(archived);
                            read_page(listing, std::move(done));
                          });
      });
}

// ---------------------------------------------------------------------------
// Who sees what (issue 18): private kudos only their giver, recipients and the
// recipients' managers; retracted kudos only admins.

namespace {

// Marks each kudos retracted whose id `marks` (HMGET of the retracted hash) names.
absl::Status MarkRetracted(const absl::StatusOr<Reply>& marks,
                           std::vector<kudos::v1::Kudos>& kudos) {
  if (!marks.ok()) return marks.status();
  if (marks->elements.size() != kudos.size()) return absl::InternalError("HMGET: bad reply");
  for (size_t i = 0; i < kudos.size(); ++i) {
    if (!marks->elements[i].is_nil()) kudos[i].set_retracted(true);
  }
  return absl::OkStatus();
}

// The recipients of the kudos `viewer` needs to know they manage.
std::vector<std::string> RecipientsToCheck(const std::vector<kudos::v1::Kudos>& kudos,
                                           const Viewer& viewer) {
  std::set<std::string> ids;
  for (const kudos::v1::Kudos& k : kudos) {
    if (!NeedsManagers(k, viewer) || !MaySee(k, viewer, true)) continue;
    ids.insert(k.recipient_ids().begin(), k.recipient_ids().end());
  }
  return std::vector<std::string>(ids.begin(), ids.end());
}

std::vector<kudos::v1::Kudos> Visible(std::vector<kudos::v1::Kudos> kudos, const Viewer& viewer,
                                      const std::map<std::string, kudos::v1::Person>& people) {
  std::vector<kudos::v1::Kudos> visible;
  for (kudos::v1::Kudos& k : kudos) {
    bool manages = false;
    for (const std::string& recipient : k.recipient_ids()) {
      auto person = people.find(recipient);
      if (person != people.end() && !viewer.person_id.empty() &&
          person->second.manager_id() == viewer.person_id) {
        manages = true;
      }
    }
    if (MaySee(k, viewer, manages)) visible.push_back(std::move(k));
  }
  return visible;
}

}  // namespace

void KudosStore::FilterVisibleAsync(const std::string& org, const Viewer& viewer,
                                    std::vector<kudos::v1::Kudos> kudos, Deadline deadline,
                                    StoreCallback<std::vector<kudos::v1::Kudos>> done) {
  if (kudos.empty()) return std::move(done)(std::move(kudos));
  common::redis::Command marks_read = {"HMGET", RetractedKey(org)};
  for (const kudos::v1::Kudos& k : kudos) marks_read.push_back(k.kudos_id());
  auto shared = std::make_shared<std::vector<kudos::v1::Kudos>>(std::move(kudos));
  async().Run(
      std::move(marks_read), deadline,
      [this, org, viewer, shared, deadline,
       done = std::move(done)](absl::StatusOr<Reply> marks) mutable {
        if (absl::Status marked = MarkRetracted(marks, *shared); !marked.ok()) {
          return std::move(done)(marked);
        }
        const std::vector<std::string> recipients = RecipientsToCheck(*shared, viewer);
        // Usually none: no private kudos of others on the page.
        GetPeopleAsync(org, recipients, deadline,
                       [viewer, shared, done = std::move(done)](
                           absl::StatusOr<std::map<std::string, kudos::v1::Person>> people) mutable {
                         if (!people.ok()) return std::move(done)(people.status());
                         std::move(done)(Visible(std::move(*shared), viewer, *people));
                       });
      });
}

void KudosStore::GetKudosForViewerAsync(const std::string& org, const std::string& kudos_id,
                                        const Viewer& viewer, Deadline deadline,
                                        StoreCallback<kudos::v1::Kudos> done) {
  GetKudosAsync(
      org, kudos_id, deadline,
      [this, org, kudos_id, viewer, deadline,
       done = std::move(done)](absl::StatusOr<kudos::v1::Kudos> kudos) mutable {
        if (!kudos.ok()) return std::move(done)(kudos.status());
        std::vector<kudos::v1::Kudos> one;
        one.push_back(*std::move(kudos));
        FilterVisibleAsync(
            org, viewer, std::move(one), deadline,
            [kudos_id, done = std::move(done)](
                absl::StatusOr<std::vector<kudos::v1::Kudos>> visible) mutable {
              if (!visible.ok()) return std::move(done)(visible.status());
              if (visible->empty()) {
                // Worded as GetKudosAsync's for an unknown id.
                return std::move(done)(absl::NotFoundError(
                    absl::StrCat("kudos_id: '", kudos_id, "' does not exist")));
              }
              std::move(done)(std::move(visible->front()));
            });
      });
}

}  // namespace kudos
