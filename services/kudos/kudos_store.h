// The kudos service's Redis access. Key shapes (every key carries {org}):
//   kudos:{org}:settings                 serialized OrgSettings
//   kudos:{org}:person:<id>              hash {pb, team}; kudos:{org}:people ZSET
//   kudos:{org}:team:<id>                hash {pb}; kudos:{org}:teams ZSET
//   kudos:{org}:team_members:<team>      ZSET of person ids
//   kudos:{org}:directory_version        counter, INCR by every settings/person/team write
//                                        (the replicas' DirectoryCache, directory_cache.h)
//   kudos:{org}:kudos:<id>, boost:<id>   hash {pb, state, seq, transfers, event, ...,
//                                        reconcile_attempts, reconcile_error, dead_letter_time}
//                                        while PENDING; a committed kudos becomes a field of
//                                        kb:<n> (RecordBucketKey; before the buckets, or with
//                                        --write_record_keys, a STRING under its own key):
//                                        serialized KudosSent (the kudos and its teams);
//                                        committed boosts and aborted records keep
//                                        {state[, error_code, error_message]} (an aborted kudos
//                                        its fp too) and expire with
//                                        the retry window. Committed before 334bb16, a kudos
//                                        stayed a hash {pb: the Kudos, state: COMMITTED,
//                                        teams: "a,b"[, commit blobs]}: read like the STRING.
//                                        A record-keyed kudos (its id KudosIdOfRequest) is
//                                        its own request key: the hash keeps fp, the STRING
//                                        starts with kFingerprintInMarker and 8 bytes of it
//   kudos:{org}:kudosreq:<giver>:<request_id>, boostreq:...  boosts (kudos: written before
//                                        the record-keyed round, or with --write_request_keys):
//                                        STRING fp (16 raw bytes of
//                                        the fingerprint) + the kudos id packed (12 bytes,
//                                        PackedRequestValue); a hash {id, fp (64 hex digits
//                                        before)} for an id that does not pack and keys
//                                        written before; expire after
//                                        retention.idempotency_days
//   kudos:{org}:pairs:<giver>:<week>     hash recipient -> points given that week (8 days;
//                                        pair:<giver>:<recipient>:<week> counters before)
//   kudos:{org}:archive:...              archived kudos (services/kudos/kudos_archive.h)
//   kudos:{org}:feed:all|giver:<id>|recipient:<id>|team:<id>|value:<id>  ZSET by seq
//                                        of FeedMember(kudos id) (the id packed), the
//                                        feed's newest entries (at most 128); past
//                                        that the oldest 64 at a time move to sealed
//                                        chunks <feed>#<name> (ZSETs), listed in
//                                        <feed># (score = the chunk's max seq, member =
//                                        its name: that max seq before issue 14,
//                                        s<seq of the commit that sealed it> since):
//                                        every ZSET a listpack (finish_recognition.lua)
//   kudos:{org}:boosts:<kudos_id>        LIST of serialized Boost
//   kudos:{org}:pending                  ZSET "kind:id" by the reconciler's next attempt (ms)
//   kudos:{org}:deadletter               STREAM {kind, id, attempts, reason, time}, capped
//   kudos:{org}:events                   the event stream (field "event")
//   kudos:{org}:retracted                HASH kudos_id -> serialized KudosRetracted, written by
//                                        the retraction (social_*, issue 18); reads leave
//                                        those kudos out for all but admins
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "common/redis/async_client.h"
#include "common/redis/org_registry.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.pb.h"
#include "services/kudos/archive_chunk.h"
#include "services/kudos/directory_cache.h"
#include "services/kudos/kudos_rules.h"

namespace kudos {

enum class RecordKind { kKudos, kBoost };

struct BeginRecognition {
  RecordKind kind = RecordKind::kKudos;
  std::string actor;  // giver or booster
  std::string request_id;
  std::string fingerprint;
  std::string record_id;
  std::string record_pb;
  int64_t now_ms = 0;
  std::string minute_key;
  int rate_limit = 0;
  int retry_after_seconds = 0;
  std::string week_key;
  int64_t pair_cap = 0;
  int64_t points = 0;
  std::string kudos_id;  // boosts: the boosted kudos
  std::vector<std::string> recipients;
  std::string transfers_pb;  // ledger.v1.PostTransfersRequest, empty for 0 points
  std::string event_pb;
  std::vector<std::string> feeds;
  int64_t reconcile_at_ms = 0;  // the reconciler's first attempt, if still PENDING
  int64_t idempotency_ttl_s = 0;  // the org's retry window: the request_id is forgotten then
  // Issue 18, kudos only, may be empty: the record_pb and event_pb of the same
  // kudos with 0 points, committed instead when the ledger refuses the points
  // for a spent allowance (the org allows kudos without points).
  std::string zero_points_pb;
  std::string zero_points_event_pb;
  // The directory version the caller validated against when its directory
  // came from the DirectoryCache; empty when read for this call (unchecked).
  std::string directory_version;
  // A kudos whose id is KudosIdOfRequest(org, actor, request_id): its record
  // answers a retry (and the archive's index, an archived one), so no
  // request key is written unless `write_request_key` (a rolling upgrade
  // from a version that reads only request keys: docs/retention-kudos.md).
  // False (boosts): the request key alone answers retries.
  bool record_keyed = false;
  bool write_request_key = true;
};

// How the reconciler spaces and bounds its attempts at one record.
struct ReconcileBackoff {
  int64_t first_ms = 2000;   // after the first failed attempt; doubles each time
  int64_t max_ms = 300000;
  int max_attempts = 10;     // then the record goes to the dead-letter stream
  int max_dead_letters = 10000;  // per org; the oldest beyond are trimmed
};

struct BeginOutcome {
  bool is_new = false;
  std::string record_id;
  std::string fingerprint;
  std::string seq;  // the new record's seq (is_new only)
  // Nothing written: the directory changed since the version the caller
  // validated against (BeginRecognition::directory_version). Read it again.
  bool stale = false;
  // Nothing written: the record-keyed id is an archived kudos's (the
  // request_id was used before the org's live window; no fingerprint kept).
  bool archived = false;
};

// The fields of a PENDING record that finish_recognition.lua's keys are
// computed from (begin_recognition.lua stored them; they never change).
// Fields the caller does not know, or got wrong, cost one more call: the
// script answers with the record's own and Finish calls again.
struct FinishFields {
  std::string seq;
  std::string feeds;  // comma-separated, as stored
  std::string kudos_id;  // boosts: the boosted kudos
  std::string actor;
  std::string week;
  // Sealed chunks a seal by this commit moves late entries into, (feed,
  // chunk name), as the script asked for them (usually none).
  std::vector<std::pair<std::string, std::string>> late_chunks;
  // A commit of the record's 0-point form (zero_points_pb; issue 18).
  bool without_points = false;
};

// A kudos or boost record as stored.
struct Record {
  std::string pb;
  std::string state;  // PENDING, COMMITTED, ABORTED
  std::string transfers_pb;
  std::string kudos_id;
  std::string error_code;
  std::string error_message;
  FinishFields finish;  // what finishing it needs (PENDING records)
  // It holds a 0-point form to commit when the allowance is spent (issue 18).
  bool may_go_without_points = false;
};

struct FeedPage {
  std::vector<kudos::v1::Kudos> kudos;
  std::string next_cursor;  // the seq to continue below, or empty
};

// An asynchronous store call's answer: runs exactly once, on a Redis loop
// thread (it must not block; it may start further calls).
template <typename T>
using StoreCallback = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;
using StoreStatusCallback = absl::AnyInvocable<void(absl::Status) &&>;

class KudosStore {
 public:
  // `async` (optional) serves the asynchronous methods (the RPC handlers'
  // path); the blocking ones (reconciler, archiver, feedback) use `pool`.
  explicit KudosStore(common::redis::Pool& pool, common::redis::AsyncClient* async = nullptr,
                      DirectoryCacheOptions directory_cache = {});

  // Asynchronous forms of the methods below, each bounded by `deadline`
  // (DEADLINE_EXCEEDED past it). Same answers as the blocking forms.
  using Deadline = common::redis::Deadline;
  struct SettingsAndPeople;
  void GetSettingsAsync(const std::string& org, Deadline deadline,
                        StoreCallback<kudos::v1::OrgSettings> done);
  void GetSettingsAndPeopleAsync(const std::string& org, const std::vector<std::string>& ids,
                                 Deadline deadline, StoreCallback<SettingsAndPeople> done);
  // SendKudos' read of the directory: the settings and the people `ids`,
  // from the replica's DirectoryCache when `allow_cache` and it holds them
  // all (no round trip), else read (the version first) and kept there.
  struct DirectoryRead;
  void GetSendDirectoryAsync(const std::string& org, const std::vector<std::string>& ids,
                             bool allow_cache, Deadline deadline,
                             StoreCallback<DirectoryRead> done);
  // Forgets the org's cached directory (its version moved).
  void ForgetCachedDirectory(const std::string& org) { directory_cache_.Invalidate(org); }
  const DirectoryCache& directory_cache() const { return directory_cache_; }
  // Record-keyed kudos write their request key too (--write_request_keys):
  // only while replicas of a version that reads request keys alone still
  // run (docs/retention-kudos.md, rolling upgrade).
  void set_write_request_keys(bool write) { write_request_keys_ = write; }
  bool write_request_keys() const { return write_request_keys_; }
  // Committed kudos go to their own key (RecordKey), not their bucket
  // (--write_record_keys): only while replicas of a version before the
  // buckets, which read that key alone, still run (docs/retention-kudos.md).
  void set_write_record_keys(bool write) { write_record_keys_ = write; }
  bool write_record_keys() const { return write_record_keys_; }
  void GetPeopleAsync(const std::string& org, const std::vector<std::string>& ids,
                      Deadline deadline,
                      StoreCallback<std::map<std::string, kudos::v1::Person>> done);
  void PutSettingsAsync(const std::string& org, const kudos::v1::OrgSettings& settings,
                        const std::string& event_pb, const std::string& actor, Deadline deadline,
                        StoreStatusCallback done);
  void PutPersonAsync(const std::string& org, const kudos::v1::Person& person, bool create,
                      const std::string& event_pb, const std::string& actor, Deadline deadline,
                      StoreStatusCallback done);
  void PutTeamAsync(const std::string& org, const kudos::v1::Team& team,
                    const std::string& event_pb, const std::string& actor, Deadline deadline,
                    StoreStatusCallback done);
  void ListPeopleAsync(const std::string& org, const std::string& team_id,
                       const std::string& after_id, int limit, Deadline deadline,
                       StoreCallback<std::vector<kudos::v1::Person>> done);
  void ListTeamsAsync(const std::string& org, const std::string& after_id, int limit,
                      Deadline deadline, StoreCallback<std::vector<kudos::v1::Team>> done);
  void BeginAsync(const std::string& org, const BeginRecognition& begin, Deadline deadline,
                  StoreCallback<BeginOutcome> done);
  void FindRequestAsync(const std::string& org, RecordKind kind, const std::string& actor,
                        const std::string& request_id, Deadline deadline,
                        StoreCallback<std::optional<BeginOutcome>> done);
  void FinishAsync(const std::string& org, RecordKind kind, const std::string& id, bool commit,
                   const absl::Status& error, FinishFields fields, Deadline deadline,
                   StoreCallback<std::string> done);
  void GetRecordAsync(const std::string& org, RecordKind kind, const std::string& id,
                      Deadline deadline, StoreCallback<std::optional<Record>> done);
  void GetKudosAsync(const std::string& org, const std::string& kudos_id, Deadline deadline,
                     StoreCallback<kudos::v1::Kudos> done);
  void ListFeedAsync(const std::string& org, const std::string& feed_key,
                     const std::string& before_seq, int limit, Deadline deadline,
                     StoreCallback<FeedPage> done);
  // Issue 18: `kudos` without what `viewer` may not see (MaySee: private kudos
  // of others, retracted ones unless an admin), retracted ones marked
  // (Kudos.retracted), order kept. One HMGET of the retracted marks, plus the
  // recipients' managers only when a private kudos of others is among them.
  void FilterVisibleAsync(const std::string& org, const Viewer& viewer,
                          std::vector<kudos::v1::Kudos> kudos, Deadline deadline,
                          StoreCallback<std::vector<kudos::v1::Kudos>> done);
  // GetKudosAsync as `viewer` sees it: NOT_FOUND, worded as for an unknown
  // id, when they may not see it (existence does not leak).
  void GetKudosForViewerAsync(const std::string& org, const std::string& kudos_id,
                              const Viewer& viewer, Deadline deadline,
                              StoreCallback<kudos::v1::Kudos> done);

  // Directory
  absl::StatusOr<kudos::v1::OrgSettings> GetSettings(const std::string& org);
  absl::Status PutSettings(const std::string& org, const kudos::v1::OrgSettings& settings,
                           const std::string& event_pb, const std::string& actor);
  absl::Status PutPerson(const std::string& org, const kudos::v1::Person& person, bool create,
                         const std::string& event_pb, const std::string& actor);
  absl::Status PutTeam(const std::string& org, const kudos::v1::Team& team,
                       const std::string& event_pb, const std::string& actor);
  // The people found among `ids` (absent ones are left out).
  absl::StatusOr<std::map<std::string, kudos::v1::Person>> GetPeople(
      const std::string& org, const std::vector<std::string>& ids);
  // GetSettings and GetPeople in one round trip.
  struct SettingsAndPeople {
    kudos::v1::OrgSettings settings;
    std::map<std::string, kudos::v1::Person> people;
  };
  absl::StatusOr<SettingsAndPeople> GetSettingsAndPeople(const std::string& org,
                                                         const std::vector<std::string>& ids);
  // GetSendDirectoryAsync's answer.
  struct DirectoryRead {
    SettingsAndPeople read;
    std::string version;  // kudos:{org}:directory_version as read ("0" when unset)
    bool cached = false;
  };
  // Ordered by id, after `after_id`; `team_id` empty lists everyone.
  absl::StatusOr<std::vector<kudos::v1::Person>> ListPeople(const std::string& org,
                                                            const std::string& team_id,
                                                            const std::string& after_id,
                                                            int limit);
  absl::StatusOr<std::vector<kudos::v1::Team>> ListTeams(const std::string& org,
                                                         const std::string& after_id, int limit);

  // Recognition records
  absl::StatusOr<BeginOutcome> Begin(const std::string& org, const BeginRecognition& begin);
  // The record an earlier call with this (actor, request_id) made, if any.
  absl::StatusOr<std::optional<BeginOutcome>> FindRequest(const std::string& org, RecordKind kind,
                                                          const std::string& actor,
                                                          const std::string& request_id);
  // Returns the record's state after the call. `fields` are the record's
  // (FinishFieldsOf, or Record::finish); wrong or missing ones cost a call
  // more each (at most kMaxNeedRetries). UNAVAILABLE past that.
  absl::StatusOr<std::string> Finish(const std::string& org, RecordKind kind,
                                     const std::string& id, bool commit,
                                     const absl::Status& error, FinishFields fields);
  // The keys and arguments of begin_recognition.lua and
  // finish_recognition.lua for these calls (bench/ sends them as they are).
  static std::vector<std::string> BeginKeys(const std::string& org, const BeginRecognition& begin);
  static std::vector<std::string> BeginArgs(const BeginRecognition& begin);
  static std::vector<std::string> FinishKeys(const std::string& org, RecordKind kind,
                                             const std::string& id, const FinishFields& fields);
  // `write_record_key`: a committed kudos goes to its own key (RecordKey)
  // instead of its bucket (write_record_keys()).
  static std::vector<std::string> FinishArgs(RecordKind kind, const std::string& id, bool commit,
                                             const absl::Status& error, const FinishFields& fields,
                                             bool write_record_key = false);
  // The FinishFields of the record `begin` wrote (at `seq`, BeginOutcome::seq).
  static FinishFields FinishFieldsOf(const BeginRecognition& begin, const std::string& seq);
  // The sealed chunks a feed_range call declares: the feed's, and feed:all's
  // (where entries that are seqs resolve to ids).
  struct FeedRangeChunks {
    std::vector<std::string> feed;
    std::vector<std::string> all;
  };
  // How often a call whose script answered 'NEED' (the keys it was given
  // are not the ones the data names now) is made again with the keys named.
  static constexpr int kMaxNeedRetries = 3;
  absl::StatusOr<std::optional<Record>> GetRecord(const std::string& org, RecordKind kind,
                                                  const std::string& id);
  // A committed kudos with its boosts, live or archived; NOT_FOUND for
  // unknown, pending or aborted ones.
  absl::StatusOr<kudos::v1::Kudos> GetKudos(const std::string& org, const std::string& kudos_id);
  // Newest first, strictly below `before_seq` (empty: from the newest),
  // continuing from live kudos into archived ones in the same seq order. A
  // page may come back short (with a cursor) when the archive holds few
  // matches in the chunks one call may scan.
  absl::StatusOr<FeedPage> ListFeed(const std::string& org, const std::string& feed_key,
                                    const std::string& before_seq, int limit);
  // Up to `limit` live entries of a feed (head and sealed chunks): below
  // `bound` newest first (bound 0: from the newest), or above it oldest first.
  struct FeedEntry {
    std::string id;
    int64_t seq = 0;
  };
  absl::StatusOr<std::vector<FeedEntry>> LiveFeedRange(const std::string& org,
                                                       const std::string& feed_key, int64_t bound,
                                                       int limit, bool newest_first);
  // Pending records whose next reconcile attempt is due at `now_ms`, as
  // (kind, id), most overdue first.
  absl::StatusOr<std::vector<std::pair<RecordKind, std::string>>> DuePending(
      const std::string& org, int64_t now_ms, int limit);
  // Claims a due record for one attempt and schedules the next one after
  // its backoff. The attempt number, or 0 when there is nothing to attempt
  // (not due any more, or no longer PENDING).
  absl::StatusOr<int> ClaimAttempt(const std::string& org, RecordKind kind, const std::string& id,
                                   int64_t now_ms, const ReconcileBackoff& backoff,
                                   int64_t jitter_ms);
  // After attempt `attempt` left the record PENDING: keeps `reason`, and
  // after the last attempt moves the record to the dead-letter stream.
  // True when it was dead-lettered.
  absl::StatusOr<bool> AttemptFailed(const std::string& org, RecordKind kind,
                                     const std::string& id, int attempt,
                                     const ReconcileBackoff& backoff, const std::string& reason);
  // Every registered org (common/redis/org_registry.h: one registry set per
  // cluster slot), from one discovery shared by the process's loops for
  // --org_registry_refresh_ms.
  absl::StatusOr<std::vector<std::string>> Orgs();

  // The ledger profile mirror (issue 18 part 2). People whose ledger
  // allowance profile may be behind the directory, with the version each was
  // queued at: at most `max_count`, a random sample (replicas spread out).
  struct ProfileToSync {
    std::string person_id;
    std::string version;
  };
  absl::StatusOr<std::vector<ProfileToSync>> ProfilesToSync(const std::string& org, int max_count);
  // What the directory says of a person's profile: team_id and the number of
  // active people they manage (roles are the ledger's); nullopt: no person.
  struct ProfileSource {
    std::string team_id;
    int64_t direct_reports = 0;
  };
  absl::StatusOr<std::optional<ProfileSource>> ReadProfileSource(const std::string& org,
                                                                 const std::string& person_id);
  // Done with `queued` when it is still the queued version; otherwise
  // (queued again, or taken by another replica meanwhile) it stays or is
  // queued again, so the last state always reaches the ledger.
  absl::Status FinishProfileSync(const std::string& org, const ProfileToSync& queued);

  // A committed kudos, from either stored form (see the key shapes above).
  struct CommittedKudos {
    kudos::v1::Kudos kudos;          // state COMMITTED, no boosts
    std::vector<std::string> teams;  // sorted, unique, none empty
  };
  struct LiveRecord {
    bool absent = false;                      // no record: never was, or archived
    std::optional<CommittedKudos> committed;  // unset while PENDING or once ABORTED
  };
  // Interprets `get_reply`, the GET of kudos:<kudos_id>. A hash (GET answers
  // WRONGTYPE) is read again with HMGET: PENDING, ABORTED, or a committed
  // kudos from before 334bb16.
  static absl::StatusOr<LiveRecord> ReadLiveRecord(
      common::redis::Pool& pool, const std::string& org, const std::string& kudos_id,
      const absl::StatusOr<common::redis::Reply>& get_reply);

  // What a request key and a PENDING record keep of a request's
  // fingerprint (SendFingerprint, 64 hex digits): its first 16 bytes, raw
  // (the hash stays 48 bytes smaller). Keys written before kept all 64
  // digits: SameFingerprint accepts either against the full fingerprint.
  static std::string StoredFingerprint(const std::string& fingerprint);
  // `stored` may also be a committed record's kRecordFingerprintBytes.
  static bool SameFingerprint(const std::string& stored, const std::string& fingerprint);

  static std::string Prefix(const std::string& org) { return "kudos:{" + org + "}:"; }
  // One function per key name (the key shapes above). Scripts are given
  // every key they touch, computed here: Redis Cluster routes a script by
  // its keys, so only then does a slot migration never run it half on the
  // wrong node (docs/cluster.md).
  static std::string EventStream(const std::string& org) { return Prefix(org) + "events"; }
  static std::string SettingsKey(const std::string& org) { return Prefix(org) + "settings"; }
  static std::string PersonKey(const std::string& org, const std::string& person_id) {
    return Prefix(org) + "person:" + person_id;
  }
  static std::string TeamKey(const std::string& org, const std::string& team_id) {
    return Prefix(org) + "team:" + team_id;
  }
  static std::string PeopleKey(const std::string& org) { return Prefix(org) + "people"; }
  // Incremented by every directory write (settings, person, team): what a
  // DirectoryCache entry was read at, checked by begin_recognition.lua.
  static std::string DirectoryVersionKey(const std::string& org) {
    return Prefix(org) + "directory_version";
  }
  // The ledger profile mirror (issue 18 part 2), kept by put_directory_entry.lua.
  static std::string DirectReportsKey(const std::string& org) {
    return Prefix(org) + "direct_reports";
  }
  static std::string CountedManagerKey(const std::string& org) {
    return Prefix(org) + "counted_manager";
  }
  static std::string ProfileSyncKey(const std::string& org) { return Prefix(org) + "profile_sync"; }
  static std::string ProfileSyncSeqKey(const std::string& org) {
    return Prefix(org) + "profile_sync:seq";
  }
  static std::string TeamsKey(const std::string& org) { return Prefix(org) + "teams"; }
  static std::string TeamMembersKey(const std::string& org, const std::string& team_id) {
    return Prefix(org) + "team_members:" + team_id;
  }
  static std::string RecordKey(const std::string& org, RecordKind kind, const std::string& id);
  // Committed kudos are fields of kRecordBuckets hashes per org
  // (kb:<BucketOfId(id)>, field FeedMember(id), value what RecordKey held
  // before: StoredRecordPb), not a key each (issue 15, ~100 B a key).
  // PENDING and ABORTED records stay hashes under RecordKey; so do kudos
  // committed before the buckets (a STRING there), which every read still
  // finds.
  static constexpr int kRecordBuckets = 64;
  static std::string RecordBucketKey(const std::string& org, const std::string& kudos_id);
  // A kudos record's reads in both places, pipelined: its bucket's field
  // (HGET), then its own key (GET). RecordReply picks the reply that stands
  // for the record, to read as a GET of the key's was read before the
  // buckets (ReadLiveRecord): the field when it holds one, else the key's.
  static void AddRecordReads(std::vector<common::redis::Command>& commands, const std::string& org,
                             const std::string& kudos_id);
  static const absl::StatusOr<common::redis::Reply>& RecordReply(
      const absl::StatusOr<common::redis::Reply>& field,
      const absl::StatusOr<common::redis::Reply>& key);
  static std::string RequestKey(const std::string& org, RecordKind kind, const std::string& actor,
                                const std::string& request_id);
  static std::string RateKey(const std::string& org, const std::string& actor,
                             const std::string& minute_key) {
    return Prefix(org) + "rate:" + actor + ":" + minute_key;
  }
  static std::string PairsKey(const std::string& org, const std::string& actor,
                              const std::string& week_key) {
    return Prefix(org) + "pairs:" + actor + ":" + week_key;
  }
  // The per-pair counter before the pairs hash (still read, gone within 8 days).
  static std::string LegacyPairKey(const std::string& org, const std::string& actor,
                                   const std::string& recipient, const std::string& week_key) {
    return Prefix(org) + "pair:" + actor + ":" + recipient + ":" + week_key;
  }
  static std::string SeqKey(const std::string& org) { return Prefix(org) + "seq"; }
  static std::string PendingKey(const std::string& org) { return Prefix(org) + "pending"; }
  static std::string DeadLetterKey(const std::string& org) { return Prefix(org) + "deadletter"; }
  static std::string RetractedKey(const std::string& org) { return Prefix(org) + "retracted"; }
  static std::string BoostsKey(const std::string& org, const std::string& kudos_id) {
    return Prefix(org) + "boosts:" + kudos_id;
  }
  // A feed ("feed:all", "feed:giver:<id>", ...): its head, its chunk list,
  // one sealed chunk, and the name a seal by the commit at `seq` gives its
  // chunk (unique: a record commits once).
  static std::string FeedHeadKey(const std::string& org, const std::string& feed) {
    return Prefix(org) + feed;
  }
  static std::string FeedChunksKey(const std::string& org, const std::string& feed) {
    return Prefix(org) + feed + "#";
  }
  static std::string FeedChunkKey(const std::string& org, const std::string& feed,
                                  const std::string& chunk_name) {
    return Prefix(org) + feed + "#" + chunk_name;
  }
  static std::string SealedChunkName(const std::string& seq) { return "s" + seq; }
  // A kudos id as a feed entry's member (issue 15, memory). An id of the
  // form NewId gives is stored packed (common/ids/packed_id.h) as 13 bytes,
  // kPackedFeedMarker and its 12 bytes, not 25: about 20 B an entry instead
  // of 32 in a feed's listpack, five or more entries a kudos. Any other id
  // (and every entry written before) is its own member; ids are
  // [A-Za-z0-9._-], so no id starts with the marker.
  static constexpr char kPackedFeedMarker = '\x01';
  static std::string FeedMember(const std::string& kudos_id);
  // The kudos id of a feed member, packed or not.
  static std::string KudosIdOfFeedMember(const std::string& member);
  // A request key's value (issue 15, memory): a STRING of the stored
  // fingerprint's 16 bytes and the record id packed (common/ids), 28 bytes
  // (136 B a key by MEMORY USAGE instead of 168 for the hash {id, fp}).
  // "" when the id does not pack or the fingerprint is not 16 bytes: that
  // request key stays the hash. Readers take either form.
  static constexpr size_t kStoredFingerprintBytes = 16;
  // find_request's keys and arguments: the request key, and for a kudos the
  // record its request_id names (KudosIdOfRequest).
  static void FindRequestKeys(const std::string& org, RecordKind kind, const std::string& actor,
                              const std::string& request_id, std::vector<std::string>& keys,
                              std::vector<std::string>& args);
  static std::string PackedRequestValue(const std::string& record_id,
                                        const std::string& stored_fingerprint);
  // The record id and fingerprint of such a value (nullopt: not one).
  static std::optional<BeginOutcome> ParsePackedRequestValue(const std::string& value);
  // A committed kudos's record (STRING kudos:<id>): kIdLeftOutMarker, then
  // its KudosSent without the kudos id its key names (issue 15, memory: 26
  // bytes of about 170, so Redis's allocation for a typical record drops a
  // size class, 192 -> 160 B). No serialized KudosSent starts with the
  // marker (field 0 does not exist): versions before this one fail to parse
  // such a record (an error, retried) rather than read or archive a kudos
  // without its id. Records written before (no marker, the id in) read the
  // same.
  static constexpr char kIdLeftOutMarker = '\x01';
  // A record-keyed kudos's (BeginRecognition::record_keyed) committed record
  // starts with kFingerprintInMarker and the first kRecordFingerprintBytes of
  // its request's stored fingerprint, then the KudosSent without its id: the
  // record tells a retry from a different kudos under the same request_id
  // (SameFingerprint). 8 bytes keep a typical record in its 160 B class.
  static constexpr char kFingerprintInMarker = '\x02';
  static constexpr size_t kRecordFingerprintBytes = 8;
  // Every kudos is written in the kFingerprintInMarker form; the
  // kIdLeftOutMarker form and the unmarked one are only read.
  static std::string StoredRecordPb(const kudos::v1::KudosSent& sent,
                                    const std::string& fingerprint);
  // A record's bytes, any of the three forms, with its id in.
  static absl::StatusOr<kudos::v1::KudosSent> ParseStoredRecord(const std::string& kudos_id,
                                                                 const std::string& bytes);
  static std::string ArchiveMonths(const std::string& org) { return Prefix(org) + "archive:months"; }
  static std::string ArchiveLock(const std::string& org) { return Prefix(org) + "archive:lock"; }
  static std::string ArchiveChunks(const std::string& org) { return Prefix(org) + "archive:chunks"; }
  static std::string ArchiveIndex(const std::string& org) { return Prefix(org) + "archive:index"; }
  static std::string ArchiveChunk(const std::string& org, const std::string& chunk_name) {
    return Prefix(org) + "archive:" + chunk_name;
  }
  // A person or team as put_directory_entry.lua writes it.
  struct DirectoryEntry {
    std::string kind;  // "person" | "team"
    std::string mode;  // "create" | "update"
    std::string id;
    std::string pb;
    std::string team_id;
    std::string manager_id;
    std::string event_pb;
    std::string actor;
    bool active = false;  // persons: counted under their manager when active
  };
  // Chunks one ListFeed call reads at most.
  static constexpr int kMaxChunksPerPage = 16;

 private:
  absl::StatusOr<SettingsAndPeople> ReadDirectory(const std::string& org,
                                                  const std::vector<std::string>& ids,
                                                  bool with_settings);
  // The archived kudos `kudos_id`, with `live_boosts` (boosts committed
  // after it was archived) appended; nullopt when it is not archived.
  absl::StatusOr<std::optional<kudos::v1::Kudos>> GetArchivedKudos(
      const std::string& org, const std::string& kudos_id, const common::redis::Reply& live_boosts);
  struct ArchivedPage {
    std::vector<ArchivedKudos> entries;  // seq descending
    int64_t floor = 0;  // > 0: chunks below this seq were not scanned yet
  };
  // Each id's committed kudos with its boosts as of one moment, live or
  // archived (also when archived while being read); nullopt when neither.
  absl::StatusOr<std::vector<std::optional<kudos::v1::Kudos>>> ReadKudos(
      const std::string& org, const std::vector<std::string>& ids);
  absl::StatusOr<ArchivedPage> ListArchived(const std::string& org, const std::string& feed_key,
                                            int64_t before_seq, size_t wanted);
  // feed_range with its chunks declared: called again (at most
  // kMaxFeedRangeRetries times) with the chunks it asked for. Its reply
  // {entries, archive top}.
  struct FeedRangeQuery {
    std::string feed;
    std::string bound;  // '' = none
    int limit = 0;
    bool desc = true;
  };
  // One more than other scripts: a page may first name its feed's chunks,
  // then the feed:all chunks the entries found there resolve through.
  static constexpr int kMaxFeedRangeRetries = kMaxNeedRetries + 1;
  absl::StatusOr<common::redis::Reply> FeedRange(const std::string& org, const FeedRangeQuery& query);
  void FeedRangeAsync(const std::string& org, FeedRangeQuery query, FeedRangeChunks chunks,
                      int retries_left, Deadline deadline,
                      StoreCallback<common::redis::Reply> done);
  void FinishAttemptAsync(const std::string& org, RecordKind kind, const std::string& id,
                          bool commit, const absl::Status& error, FinishFields fields,
                          int retries_left, Deadline deadline, StoreCallback<std::string> done);
  absl::Status PutEntry(const std::string& org, const DirectoryEntry& entry);
  void PutEntryAsync(const std::string& org, DirectoryEntry entry, std::string expected_old_team,
                     int retries_left, Deadline deadline, StoreStatusCallback done);

  // Asynchronous halves of ReadKudos / GetArchivedKudos / ListArchived.
  using KudosList = std::vector<std::optional<kudos::v1::Kudos>>;
  void ReadKudosAsync(const std::string& org, std::vector<std::string> ids, Deadline deadline,
                      StoreCallback<KudosList> done);
  void GetArchivedKudosAsync(const std::string& org, const std::string& kudos_id,
                             common::redis::Reply live_boosts, Deadline deadline,
                             StoreCallback<std::optional<kudos::v1::Kudos>> done);
  void ListArchivedAsync(const std::string& org, const std::string& feed_key, int64_t before_seq,
                         size_t wanted, Deadline deadline, StoreCallback<ArchivedPage> done);
  struct ReadKudosState;
  void ReadKudosFollowUps(std::shared_ptr<ReadKudosState> state, size_t next);
  common::redis::AsyncClient& async() const;
  // GetSendDirectoryAsync's bulk read when the cache asks for it (ShouldWarmUp).
  void WarmUpDirectoryAsync(const std::string& org);
  // SADD of the org's slot to the registry's hint (IndexOrgSlotCommand),
  // beside each directory write; a failure is logged, never the write's.
  void HintOrgSlot(const std::string& org);
  void HintOrgSlotAsync(const std::string& org, Deadline deadline);

  common::redis::Pool& pool_;
  common::redis::AsyncClient* async_;
  common::redis::OrgRegistry org_registry_;
  common::redis::Script put_directory_entry_;
  common::redis::Script put_settings_;
  common::redis::Script begin_;
  common::redis::Script finish_;
  common::redis::Script claim_reconcile_;
  common::redis::Script reconcile_failed_;
  common::redis::Script feed_range_;
  common::redis::Script find_request_;
  common::redis::Script finish_profile_sync_;
  DirectoryCache directory_cache_;
  bool write_request_keys_ = false;
  bool write_record_keys_ = false;
};

const char* KindName(RecordKind kind);

}  // namespace kudos
