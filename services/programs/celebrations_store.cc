#include "services/programs/celebrations_store.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"
#include "services/programs/celebrations_rules.h"

namespace programs::celebrations {
namespace {

using common::redis::Reply;

// KEYS: profiles, due, next. ARGV: person, profile, has_expected ("1"/"0"),
// expected, max_people, then (kind, year or "" to remove, due_ms) triples.
// Compare-and-set on the profile, so two setters never lose each other's field.
constexpr char kPutProfileLua[] = R"lua(
local person = ARGV[1]
local current = redis.call('HGET', KEYS[1], person)
if ARGV[3] == '1' then
  if current ~= ARGV[4] then
    return redis.error_reply('ABORTED the celebration profile of ' .. person .. ' changed meanwhile; read it again')
  end
else
  if current then
    return redis.error_reply('ABORTED the celebration profile of ' .. person .. ' was created meanwhile; read it again')
  end
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
    return redis.error_reply('RESOURCE_EXHAUSTED the org has celebration profiles for ' .. ARGV[5] .. ' people, the most it may have')
  end
end
redis.call('HSET', KEYS[1], person, ARGV[2])
for i = 6, #ARGV, 3 do
  local member = ARGV[i] .. '\t' .. person
  if ARGV[i + 1] == '' then
    redis.call('ZREM', KEYS[2], member)
    redis.call('HDEL', KEYS[3], member)
  else
    redis.call('ZADD', KEYS[2], ARGV[i + 2], member)
    redis.call('HSET', KEYS[3], member, ARGV[i + 1])
  end
end
return 1
)lua";

// KEYS: due, next, fired:<year>, pending, pending_data. ARGV: member, year,
// next_year ("" = none), next_due_ms, pending member ("" = only move the
// schedule), celebration, retry_at_ms, marker TTL seconds.
// The marker (HSETNX) and the pending payment are set in the same script
// that moves the schedule on: a second claimer finds the marker.
constexpr char kClaimLua[] = R"lua(
local member = ARGV[1]
if redis.call('HGET', KEYS[2], member) ~= ARGV[2] then return 'STALE' end
local function move()
  if ARGV[3] == '' then
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
  else
    redis.call('ZADD', KEYS[1], ARGV[4], member)
    redis.call('HSET', KEYS[2], member, ARGV[3])
  end
end
if ARGV[5] == '' then
  move()
  return 'MOVED'
end
if redis.call('HSETNX', KEYS[3], member, 'pending') == 0 then
  move()
  return 'ALREADY'
end
redis.call('EXPIRE', KEYS[3], ARGV[8])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[5])
redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])
move()
return 'CLAIMED'
)lua";

// KEYS: fired:<year>, pending, pending_data, feed. ARGV: marker member,
// pending member, celebration, feed bound. Paid once: only a "pending"
// marker turns "paid" and reaches the feed.
constexpr char kCompleteLua[] = R"lua(
local state = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
if state ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], 'paid')
redis.call('LPUSH', KEYS[4], ARGV[3])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[4]) - 1)
return 1
)lua";

int64_t ToMillis(absl::Time t) { return absl::ToUnixMillis(t); }

absl::Status Malformed(absl::string_view what) {
  return absl::InternalError(absl::StrCat("celebrations: malformed ", what, " in Redis"));
}

template <typename Message>
absl::StatusOr<Message> Parse(const Reply& reply, absl::string_view what) {
  Message message;
  if (reply.type != Reply::Type::kString || !message.ParseFromString(reply.str)) {
    return Malformed(what);
  }
  return message;
}

std::string Serialized(const google::protobuf::Message& message) {
  std::string bytes;
  KUDOS_CHECK(message.SerializeToString(&bytes), "an in-memory message serializes");
  return bytes;
}

absl::StatusOr<int64_t> IntOf(const Reply& reply, absl::string_view what) {
  absl::StatusOr<long long> value = reply.AsInteger();
  if (!value.ok()) return Malformed(what);
  return static_cast<int64_t>(*value);
}

}  // namespace

Keys::Keys(absl::string_view org) : prefix_(absl::StrCat("programs:{", org, "}:celebrations:")) {
  profiles = prefix_ + "profiles";
  due = prefix_ + "due";
  next = prefix_ + "next";
  pending = prefix_ + "pending";
  pending_data = prefix_ + "pending_data";
  feed = prefix_ + "feed";
  settings = prefix_ + "settings";
}

std::string Keys::Fired(int year) const { return absl::StrCat(prefix_, "fired:", year); }

std::string ScheduleMember(v1::CelebrationKind kind, absl::string_view person) {
  return absl::StrCat(KindName(kind), "\t", person);
}

std::string PendingMember(v1::CelebrationKind kind, int year, absl::string_view person) {
  return absl::StrCat(KindName(kind), "\t", year, "\t", person);
}

CelebrationsStore::CelebrationsStore(common::redis::Pool& pool, StoreOptions options)
    : pool_(pool),
      options_(options),
      put_profile_("celebrations_put_profile", kPutProfileLua),
      claim_("celebrations_claim", kClaimLua),
      complete_("celebrations_complete", kCompleteLua) {}

absl::StatusOr<std::optional<v1::CelebrationProfile>> CelebrationsStore::GetProfile(
    const std::string& org, const std::string& person) {
  absl::StatusOr<Reply> reply = pool_.Run({"HGET", Keys(org).profiles, person});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::optional<v1::CelebrationProfile>();
  absl::StatusOr<v1::CelebrationProfile> profile =
      Parse<v1::CelebrationProfile>(*reply, "celebration profile");
  if (!profile.ok()) return profile.status();
  return std::optional<v1::CelebrationProfile>(*std::move(profile));
}

absl::Status CelebrationsStore::PutProfile(const std::string& org,
                                           const v1::CelebrationProfile& profile,
                                           const std::optional<v1::CelebrationProfile>& expected,
                                           const std::vector<Schedule>& schedules) {
  const Keys keys(org);
  std::vector<std::string> args = {profile.person_id(), Serialized(profile),
                                   expected.has_value() ? "1" : "0",
                                   expected.has_value() ? Serialized(*expected) : "",
                                   absl::StrCat(options_.max_people)};
  for (const Schedule& schedule : schedules) {
    args.push_back(std::string(KindName(schedule.kind)));
    args.push_back(schedule.year.has_value() ? absl::StrCat(*schedule.year) : "");
    args.push_back(absl::StrCat(ToMillis(schedule.time)));
  }
  return pool_.Eval(put_profile_, {keys.profiles, keys.due, keys.next}, args).status();
}

absl::StatusOr<v1::CelebrationSettings> CelebrationsStore::GetSettings(const std::string& org) {
  absl::StatusOr<Reply> reply = pool_.Run(
      {"HMGET", Keys(org).settings, "birthday_points", "anniversary_points_per_year"});
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 2) return Malformed("settings reply");
  v1::CelebrationSettings settings = DefaultSettings();
  if (!reply->elements[0].is_nil()) {
    absl::StatusOr<int64_t> points = IntOf(reply->elements[0], "birthday_points");
    if (!points.ok()) return points.status();
    settings.set_birthday_points(*points);
  }
  if (!reply->elements[1].is_nil()) {
    absl::StatusOr<int64_t> points = IntOf(reply->elements[1], "anniversary_points_per_year");
    if (!points.ok()) return points.status();
    settings.set_anniversary_points_per_year(*points);
  }
  return settings;
}

absl::Status CelebrationsStore::PutSettings(const std::string& org,
                                            const v1::CelebrationSettings& settings) {
  return pool_
      .Run({"HSET", Keys(org).settings, "birthday_points",
            absl::StrCat(settings.birthday_points()), "anniversary_points_per_year",
            absl::StrCat(settings.anniversary_points_per_year())})
      .status();
}

absl::StatusOr<std::vector<DueEntry>> CelebrationsStore::Due(const std::string& org,
                                                             absl::Time now, int limit) {
  const Keys keys(org);
  absl::StatusOr<Reply> due =
      pool_.Run({"ZRANGEBYSCORE", keys.due, "-inf", absl::StrCat(ToMillis(now)), "WITHSCORES",
                 "LIMIT", "0", absl::StrCat(limit)});
  if (!due.ok()) return due.status();
  std::vector<DueEntry> entries;
  if (due->elements.empty()) return entries;
  if (due->elements.size() % 2 != 0) return Malformed("due reply");
  common::redis::Command years = {"HMGET", keys.next};
  for (size_t i = 0; i < due->elements.size(); i += 2) {
    const std::string& member = due->elements[i].str;
    std::pair<std::string, std::string> parts = absl::StrSplit(member, absl::MaxSplits('\t', 1));
    DueEntry entry;
    entry.kind = KindFromName(parts.first);
    entry.person = parts.second;
    double due_ms = 0;
    if (entry.kind == v1::CELEBRATION_KIND_UNSPECIFIED || entry.person.empty() ||
        !absl::SimpleAtod(due->elements[i + 1].str, &due_ms)) {
      return Malformed(absl::StrCat("due member '", member, "'"));
    }
    entry.due = absl::FromUnixMillis(static_cast<int64_t>(due_ms));
    entries.push_back(std::move(entry));
    years.push_back(member);
  }
  absl::StatusOr<Reply> year_reply = pool_.Run(years);
  if (!year_reply.ok()) return year_reply.status();
  if (year_reply->elements.size() != entries.size()) return Malformed("next reply");
  for (size_t i = 0; i < entries.size(); ++i) {
    // A schedule removed between the two reads: its claim will be STALE.
    if (year_reply->elements[i].is_nil()) continue;
    absl::StatusOr<int64_t> year = IntOf(year_reply->elements[i], "next year");
    if (!year.ok()) return year.status();
    entries[i].year = static_cast<int>(*year);
  }
  return entries;
}

absl::StatusOr<ClaimResult> CelebrationsStore::Claim(
    const std::string& org, const DueEntry& entry,
    const std::optional<v1::Celebration>& celebration, absl::Time retry_at,
    const Schedule& next) {
  const Keys keys(org);
  KUDOS_CHECK(next.kind == entry.kind, "a schedule moves within its kind");
  KUDOS_CHECK(!celebration.has_value() || (celebration->year() == entry.year &&
                                           celebration->person_id() == entry.person),
              "a claim pays the entry it was found for");
  const std::string member = ScheduleMember(entry.kind, entry.person);
  std::vector<std::string> args = {
      member,
      absl::StrCat(entry.year),
      next.year.has_value() ? absl::StrCat(*next.year) : "",
      absl::StrCat(ToMillis(next.time)),
      celebration.has_value() ? PendingMember(entry.kind, entry.year, entry.person) : "",
      celebration.has_value() ? Serialized(*celebration) : "",
      absl::StrCat(ToMillis(retry_at)),
      absl::StrCat(kFiredTtlSeconds)};
  absl::StatusOr<Reply> reply = pool_.Eval(
      claim_, {keys.due, keys.next, keys.Fired(entry.year), keys.pending, keys.pending_data},
      args);
  if (!reply.ok()) return reply.status();
  if (reply->str == "CLAIMED" || reply->str == "MOVED") return ClaimResult::kClaimed;
  if (reply->str == "ALREADY") return ClaimResult::kAlready;
  if (reply->str == "STALE") return ClaimResult::kStale;
  return Malformed(absl::StrCat("claim answer '", reply->str, "'"));
}

absl::StatusOr<std::vector<v1::Celebration>> CelebrationsStore::DuePending(const std::string& org,
                                                                           absl::Time now,
                                                                           int limit) {
  const Keys keys(org);
  absl::StatusOr<Reply> members = pool_.Run({"ZRANGEBYSCORE", keys.pending, "-inf",
                                             absl::StrCat(ToMillis(now)), "LIMIT", "0",
                                             absl::StrCat(limit)});
  if (!members.ok()) return members.status();
  std::vector<v1::Celebration> celebrations;
  if (members->elements.empty()) return celebrations;
  common::redis::Command read = {"HMGET", keys.pending_data};
  for (const Reply& member : members->elements) read.push_back(member.str);
  absl::StatusOr<Reply> data = pool_.Run(read);
  if (!data.ok()) return data.status();
  for (const Reply& record : data->elements) {
    if (record.is_nil()) continue;  // completed between the two reads
    absl::StatusOr<v1::Celebration> celebration = Parse<v1::Celebration>(record, "pending");
    if (!celebration.ok()) return celebration.status();
    celebrations.push_back(*std::move(celebration));
  }
  return celebrations;
}

absl::Status CelebrationsStore::Postpone(const std::string& org,
                                         const v1::Celebration& celebration, absl::Time retry_at) {
  return pool_
      .Run({"ZADD", Keys(org).pending, "XX", absl::StrCat(ToMillis(retry_at)),
            PendingMember(celebration.kind(), celebration.year(), celebration.person_id())})
      .status();
}

absl::StatusOr<bool> CelebrationsStore::Complete(const std::string& org,
                                                 const v1::Celebration& celebration) {
  const Keys keys(org);
  absl::StatusOr<Reply> reply = pool_.Eval(
      complete_, {keys.Fired(celebration.year()), keys.pending, keys.pending_data, keys.feed},
      {ScheduleMember(celebration.kind(), celebration.person_id()),
       PendingMember(celebration.kind(), celebration.year(), celebration.person_id()),
       Serialized(celebration), absl::StrCat(options_.max_feed_entries)});
  if (!reply.ok()) return reply.status();
  return reply->integer == 1;
}

absl::StatusOr<std::vector<v1::Celebration>> CelebrationsStore::Feed(const std::string& org,
                                                                     int offset, int limit) {
  KUDOS_CHECK(offset >= 0 && limit > 0, "pages are validated by the caller");
  absl::StatusOr<Reply> reply = pool_.Run(
      {"LRANGE", Keys(org).feed, absl::StrCat(offset), absl::StrCat(offset + limit - 1)});
  if (!reply.ok()) return reply.status();
  std::vector<v1::Celebration> celebrations;
  for (const Reply& entry : reply->elements) {
    absl::StatusOr<v1::Celebration> celebration = Parse<v1::Celebration>(entry, "feed entry");
    if (!celebration.ok()) return celebration.status();
    celebrations.push_back(*std::move(celebration));
  }
  return celebrations;
}

absl::StatusOr<std::string> CelebrationsStore::Marker(const std::string& org,
                                                      v1::CelebrationKind kind, int year,
                                                      const std::string& person) {
  absl::StatusOr<Reply> reply =
      pool_.Run({"HGET", Keys(org).Fired(year), ScheduleMember(kind, person)});
  if (!reply.ok()) return reply.status();
  return reply->is_nil() ? std::string() : reply->str;
}

}  // namespace programs::celebrations
