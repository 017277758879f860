#include "services/programs/programs_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/audit.h"
#include "common/check/check.h"
#include "common/redis/org_registry.h"
#include "kProgramsWriteLua.h"

namespace programs {
namespace keys {
namespace {
std::string Prefix(absl::string_view org) { return absl::StrCat("programs:{", org, "}:"); }
}  // namespace

std::string Budgets(absl::string_view org) { return Prefix(org) + "budgets"; }
std::string Budget(absl::string_view org, absl::string_view budget_id) {
  return absl::StrCat(Prefix(org), "budget:", budget_id);
}
std::string BudgetHistory(absl::string_view org, absl::string_view budget_id) {
  return absl::StrCat(Budget(org, budget_id), ":history");
}
std::string Awards(absl::string_view org) { return Prefix(org) + "awards"; }
std::string Award(absl::string_view org, absl::string_view award_id) {
  return absl::StrCat(Prefix(org), "award:", award_id);
}
std::string Nominations(absl::string_view org, absl::string_view award_id) {
  return absl::StrCat(Award(org, award_id), ":noms");
}
std::string Pairs(absl::string_view org, absl::string_view award_id) {
  return absl::StrCat(Award(org, award_id), ":pairs");
}
std::string Nomination(absl::string_view org, absl::string_view award_id,
                       absl::string_view nomination_id) {
  return absl::StrCat(Award(org, award_id), ":nom:", nomination_id);
}
std::string Payments(absl::string_view org) { return Prefix(org) + "payments"; }
std::string Request(absl::string_view org, absl::string_view subject,
                    absl::string_view request_id) {
  return absl::StrCat(Prefix(org), "req:", subject, ":", request_id);
}
}  // namespace keys

void WriteBatch::Idempotent(absl::string_view subject, absl::string_view request_id,
                            std::string fingerprint, std::string result) {
  KUDOS_CHECK(request_index_ == 0, "one idempotency record per batch");
  request_index_ = KeyIndex(keys::Request(org_, subject, request_id));
  fingerprint_ = std::move(fingerprint);
  result_ = std::move(result);
}

void WriteBatch::Put(std::string key, int64_t expected_version, std::string pb) {
  Op("PUT", std::move(key), {absl::StrCat(expected_version), std::move(pb)});
}

void WriteBatch::Expect(std::string key, int64_t expected_version) {
  Op("EXPECT", std::move(key), {absl::StrCat(expected_version)});
}

void WriteBatch::ZAddBounded(std::string key, int64_t score, std::string member, int max) {
  Op("ZADDB", std::move(key), {absl::StrCat(score), std::move(member), absl::StrCat(max)});
}

void WriteBatch::ZRem(std::string key, std::string member) {
  Op("ZREM", std::move(key), {std::move(member)});
}

void WriteBatch::Unique(std::string key, std::string field, std::string value) {
  Op("UNIQUE", std::move(key), {std::move(field), std::move(value)});
}

void WriteBatch::Append(std::string key, int max_length, std::string field, std::string value) {
  Op("XADD", std::move(key), {absl::StrCat(max_length), std::move(field), std::move(value)});
}

void WriteBatch::Audit(absl::string_view actor, absl::string_view action,
                       absl::string_view target, absl::string_view reason, absl::Time now) {
  Op("AUDIT", common::audit::StreamKey(org_),
     {std::string(actor), std::string(action), std::string(target), std::string(reason),
      absl::FormatTime(absl::RFC3339_sec, now, absl::UTCTimeZone())});
}

void WriteBatch::RegisterOrg() {
  Op("SADD", common::redis::OrgRegistryKey(org_), {org_});
}

int WriteBatch::KeyIndex(std::string key) {
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i] == key) return static_cast<int>(i) + 1;
  }
  keys_.push_back(std::move(key));
  return static_cast<int>(keys_.size());
}

void WriteBatch::Op(absl::string_view name, std::string key, std::vector<std::string> args) {
  int index = KeyIndex(std::move(key));
  ops_.push_back(std::string(name));
  ops_.push_back(absl::StrCat(index));
  ops_.push_back(absl::StrCat(args.size()));
  for (std::string& arg : args) ops_.push_back(std::move(arg));
}

std::vector<std::string> WriteBatch::Args() const {
  std::vector<std::string> args = {absl::StrCat(request_index_), fingerprint_, result_,
                                   absl::StrCat(kRequestTtlSeconds)};
  args.insert(args.end(), ops_.begin(), ops_.end());
  return args;
}

ProgramsStore::ProgramsStore(common::redis::Pool& pool)
    : pool_(pool), write_("programs_write", kProgramsWriteLua) {}

absl::StatusOr<WriteOutcome> ProgramsStore::Write(const WriteBatch& batch) {
  absl::StatusOr<common::redis::Reply> reply = pool_.Eval(write_, batch.keys(), batch.Args());
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) return absl::InternalError("programs_write: empty reply");
  const std::string& kind = reply->elements[0].str;
  WriteOutcome outcome;
  auto op_of = [&]() -> int {
    absl::StatusOr<long long> n =
        reply->elements.size() > 1 ? reply->elements[1].AsInteger() : absl::StatusOr<long long>(0);
    return n.ok() ? static_cast<int>(*n) - 1 : -1;
  };
  if (kind == "OK") {
    outcome.kind = WriteOutcome::Kind::kOk;
  } else if (kind == "DONE") {
    outcome.kind = WriteOutcome::Kind::kDone;
    if (reply->elements.size() > 1) outcome.value = reply->elements[1].str;
  } else if (kind == "MISMATCH") {
    outcome.kind = WriteOutcome::Kind::kMismatch;
  } else if (kind == "CONFLICT") {
    outcome.kind = WriteOutcome::Kind::kConflict;
    outcome.op = op_of();
  } else if (kind == "EXISTS") {
    outcome.kind = WriteOutcome::Kind::kExists;
    outcome.op = op_of();
    if (reply->elements.size() > 2) outcome.value = reply->elements[2].str;
  } else if (kind == "FULL") {
    outcome.kind = WriteOutcome::Kind::kFull;
    outcome.op = op_of();
  } else {
    return absl::InternalError(absl::StrCat("programs_write: unexpected reply ", kind));
  }
  return outcome;
}

absl::StatusOr<Record> ProgramsStore::Get(const std::string& key) {
  absl::StatusOr<std::vector<Record>> records = GetMany({key});
  if (!records.ok()) return records.status();
  return std::move((*records)[0]);
}

absl::StatusOr<std::vector<Record>> ProgramsStore::GetMany(const std::vector<std::string>& keys) {
  std::vector<common::redis::Command> commands;
  commands.reserve(keys.size());
  for (const std::string& key : keys) commands.push_back({"HMGET", key, "v", "pb"});
  std::vector<Record> out(keys.size());
  if (keys.empty()) return out;
  absl::StatusOr<std::vector<absl::StatusOr<common::redis::Reply>>> replies =
      pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  for (size_t i = 0; i < keys.size(); ++i) {
    const absl::StatusOr<common::redis::Reply>& reply = (*replies)[i];
    if (!reply.ok()) return reply.status();
    if (reply->elements.size() != 2 || reply->elements[0].is_nil()) continue;
    absl::StatusOr<long long> version = reply->elements[0].AsInteger();
    if (!version.ok()) return version.status();
    out[i].version = *version;
    out[i].pb = reply->elements[1].str;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ProgramsStore::Range(const std::string& key,
                                                              int64_t start, int64_t stop,
                                                              bool newest_first) {
  common::redis::Command command = {"ZRANGE", key, absl::StrCat(start), absl::StrCat(stop)};
  if (newest_first) command.push_back("REV");
  absl::StatusOr<common::redis::Reply> reply = pool_.Run(command);
  if (!reply.ok()) return reply.status();
  std::vector<std::string> out;
  for (const common::redis::Reply& element : reply->elements) out.push_back(element.str);
  return out;
}

absl::StatusOr<std::vector<std::string>> ProgramsStore::RangeByScore(const std::string& key,
                                                                     int64_t max_score,
                                                                     int limit) {
  absl::StatusOr<common::redis::Reply> reply =
      pool_.Run({"ZRANGEBYSCORE", key, "-inf", absl::StrCat(max_score), "LIMIT", "0",
                 absl::StrCat(limit)});
  if (!reply.ok()) return reply.status();
  std::vector<std::string> out;
  for (const common::redis::Reply& element : reply->elements) out.push_back(element.str);
  return out;
}

absl::StatusOr<std::vector<std::string>> ProgramsStore::NewestEntries(const std::string& key,
                                                                      absl::string_view field,
                                                                      int count) {
  absl::StatusOr<common::redis::Reply> reply =
      pool_.Run({"XREVRANGE", key, "+", "-", "COUNT", absl::StrCat(count)});
  if (!reply.ok()) return reply.status();
  std::vector<std::string> out;
  for (const common::redis::Reply& entry : reply->elements) {
    if (entry.elements.size() != 2) continue;
    const std::vector<common::redis::Reply>& fields = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].str == field) out.push_back(fields[i + 1].str);
    }
  }
  return out;
}

}  // namespace programs
