#include "services/programs/awards_store.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/auth/ids.h"
#include "common/check/check.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/time_util.h"
#include "services/programs/budget_rules.h"

namespace programs {
namespace {

using common::auth::Principal;
using Kind = WriteOutcome::Kind;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

template <typename T>
absl::StatusOr<T> Parse(const Record& record, absl::string_view what) {
  T message;
  if (!message.ParseFromString(record.pb)) {
    return absl::DataLossError(absl::StrCat(what, ": stored record does not parse"));
  }
  return message;
}

void AppendHistory(WriteBatch& batch, const v1::Budget& budget, absl::string_view action,
                   absl::string_view actor, int64_t points, absl::string_view award_id,
                   absl::Time now) {
  v1::BudgetHistoryEntry entry;
  *entry.mutable_time() = ToProto(now);
  entry.set_action(std::string(action));
  entry.set_actor(std::string(actor));
  entry.set_points(points);
  entry.set_period(budget.period());
  entry.set_award_id(std::string(award_id));
  entry.set_spent_after(budget.spent());
  batch.Append(keys::BudgetHistory(batch.org(), budget.budget_id()), kMaxHistory, "e",
               entry.SerializeAsString());
}

absl::Status PageSize(int32_t requested, int32_t* out) {
  if (requested < 0 || requested > 200) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: 0..200, got ", requested));
  }
  *out = requested == 0 ? 50 : requested;
  return absl::OkStatus();
}

// Page tokens are the decimal offset of the next item (the lists are bounded).
absl::StatusOr<int64_t> PageOffset(const std::string& token, int64_t max) {
  if (token.empty()) return 0;
  int64_t offset = 0;
  if (!absl::SimpleAtoi(token, &offset) || offset < 0 || offset > max) {
    return absl::InvalidArgumentError("page_token: not a token this RPC returned");
  }
  return offset;
}

std::string NominationId(const std::string& nominator, const std::string& nominee,
                         absl::Time now) {
  // Unique per award: a pair is nominated once (the pairs hash holds it),
  // and the id stays within the id rule (64 characters).
  std::string id = absl::StrCat("n", ToMillis(now), "-",
                                absl::Hex(std::hash<std::string>()(nominator + " " + nominee),
                                          absl::kZeroPad16));
  return id;
}

}  // namespace

int64_t ToMillis(absl::Time t) { return absl::ToUnixMillis(t); }

std::string Fingerprint(const google::protobuf::Message& request) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    request.SerializeToCodedStream(&coded);
  }
  return out;
}

absl::Status OutcomeStatus(const WriteOutcome& outcome, absl::string_view what) {
  switch (outcome.kind) {
    case Kind::kMismatch:
      return absl::AlreadyExistsError(
          absl::StrCat("request_id: already used for another ", what, " request"));
    case Kind::kConflict:
      return absl::AbortedError(absl::StrCat(what, ": changed concurrently; retry"));
    case Kind::kExists:
      return absl::AlreadyExistsError(absl::StrCat(what, ": exists already (", outcome.value, ")"));
    case Kind::kFull:
      return absl::ResourceExhaustedError(absl::StrCat(what, ": a bound is reached"));
    default:
      return absl::OkStatus();
  }
}

absl::StatusOr<std::optional<std::string>> AwardsBook::PriorResult(
    const std::string& org, const std::string& subject, const std::string& request_id,
    const std::string& fingerprint) {
  absl::StatusOr<common::redis::Reply> reply =
      store_.pool().Run({"GET", keys::Request(org, subject, request_id)});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::optional<std::string>();
  const std::string& stored = reply->str;
  size_t colon = stored.find(':');
  size_t length = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(stored).substr(0, colon), &length) ||
      colon + 1 + length > stored.size()) {
    return absl::DataLossError("request record does not parse");
  }
  if (stored.compare(colon + 1, length, fingerprint) != 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("request_id: '", request_id, "' was already used with another payload"));
  }
  return std::optional<std::string>(stored.substr(colon + 1 + length));
}

absl::StatusOr<std::pair<Record, v1::Award>> AwardsBook::ReadAward(const std::string& org,
                                                                   const std::string& award_id) {
  absl::StatusOr<Record> record = store_.Get(keys::Award(org, award_id));
  if (!record.ok()) return record.status();
  if (!record->exists()) {
    return absl::NotFoundError(absl::StrCat("award_id: '", award_id, "' not found"));
  }
  absl::StatusOr<v1::Award> award = Parse<v1::Award>(*record, "award");
  if (!award.ok()) return award.status();
  return std::make_pair(*std::move(record), *std::move(award));
}

absl::StatusOr<std::pair<Record, v1::Budget>> AwardsBook::ReadBudget(
    const std::string& org, const std::string& budget_id) {
  absl::StatusOr<Record> record = store_.Get(keys::Budget(org, budget_id));
  if (!record.ok()) return record.status();
  if (!record->exists()) {
    return absl::NotFoundError(absl::StrCat("budget_id: '", budget_id, "' not found"));
  }
  absl::StatusOr<v1::Budget> budget = Parse<v1::Budget>(*record, "budget");
  if (!budget.ok()) return budget.status();
  return std::make_pair(*std::move(record), *std::move(budget));
}

// ---- budgets -------------------------------------------------------------------

absl::StatusOr<v1::CreateBudgetResponse> AwardsBook::CreateBudget(const Principal& who,
                                                                  const v1::Budget& requested,
                                                                  absl::Time now) {
  if (absl::Status s = RequireAdmin(who, "CreateBudget"); !s.ok()) return s;
  if (absl::Status s = ValidateBudget(requested); !s.ok()) return s;
  const std::string& org = who.org;
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    absl::StatusOr<Record> record = store_.Get(keys::Budget(org, requested.budget_id()));
    if (!record.ok()) return record.status();
    v1::CreateBudgetResponse response;
    if (record->exists()) {
      absl::StatusOr<v1::Budget> stored = Parse<v1::Budget>(*record, "budget");
      if (!stored.ok()) return stored.status();
      if (!SameBudgetDefinition(*stored, requested)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "budget.budget_id: '", requested.budget_id(), "' exists with another definition"));
      }
      absl::StatusOr<bool> rolled = RollOver(*stored, now);
      if (!rolled.ok()) return rolled.status();
      *response.mutable_budget() = *std::move(stored);
      response.set_created(false);
      return response;
    }
    v1::Budget budget = requested;
    budget.clear_period();
    budget.set_spent(0);
    budget.set_reserved(0);
    *budget.mutable_create_time() = ToProto(now);
    *budget.mutable_update_time() = ToProto(now);
    absl::StatusOr<bool> rolled = RollOver(budget, now);
    if (!rolled.ok()) return rolled.status();
    WriteBatch batch(org);
    batch.Put(keys::Budget(org, budget.budget_id()), 0, budget.SerializeAsString());
    batch.ZAddBounded(keys::Budgets(org), 0, budget.budget_id(), kMaxBudgets);
    AppendHistory(batch, budget, "created", who.subject, 0, "", now);
    batch.Audit(who.subject, "budget.create", budget.budget_id(),
                absl::StrCat(budget.amount_per_period(), " points per period"), now);
    batch.RegisterOrg();
    absl::StatusOr<WriteOutcome> outcome = store_.Write(batch);
    if (!outcome.ok()) return outcome.status();
    if (outcome->kind == Kind::kConflict) continue;
    if (outcome->kind == Kind::kFull) {
      return absl::ResourceExhaustedError(
          absl::StrCat("budgets: at most ", kMaxBudgets, " per org"));
    }
    if (absl::Status s = OutcomeStatus(*outcome, "budget"); !s.ok()) return s;
    // A hint so discovery finds a new org's slot soon (a lost hint costs latency only).
    (void)store_.pool().Run(common::redis::IndexOrgSlotCommand(org));
    *response.mutable_budget() = std::move(budget);
    response.set_created(true);
    return response;
  }
  return absl::AbortedError("budget: changed concurrently too often; retry");
}

absl::StatusOr<v1::Budget> AwardsBook::UpdateBudget(const Principal& who,
                                                    const v1::UpdateBudgetRequest& request,
                                                    absl::Time now) {
  if (absl::Status s = RequireAdmin(who, "UpdateBudget"); !s.ok()) return s;
  if (absl::Status s = ValidateRequestId(request.request_id()); !s.ok()) return s;
  if (absl::Status s = ValidateBudgetUpdate(request.budget()); !s.ok()) return s;
  const std::string& org = who.org;
  const std::string fingerprint = Fingerprint(request);
  const std::string& budget_id = request.budget().budget_id();
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    absl::StatusOr<std::optional<std::string>> prior =
        PriorResult(org, who.subject, request.request_id(), fingerprint);
    if (!prior.ok()) return prior.status();
    absl::StatusOr<std::pair<Record, v1::Budget>> read = ReadBudget(org, budget_id);
    if (!read.ok()) return read.status();
    auto& [record, budget] = *read;
    if (prior->has_value()) {
      absl::StatusOr<bool> rolled = RollOver(budget, now);
      if (!rolled.ok()) return rolled.status();
      return budget;
    }
    budget.set_name(request.budget().name());
    *budget.mutable_owner_ids() = request.budget().owner_ids();
    budget.set_amount_per_period(request.budget().amount_per_period());
    *budget.mutable_update_time() = ToProto(now);
    absl::StatusOr<bool> rolled = RollOver(budget, now);
    if (!rolled.ok()) return rolled.status();
    WriteBatch batch(org);
    batch.Idempotent(who.subject, request.request_id(), fingerprint, budget_id);
    batch.Put(keys::Budget(org, budget_id), record.version, budget.SerializeAsString());
    AppendHistory(batch, budget, "updated", who.subject, 0, "", now);
    batch.Audit(who.subject, "budget.update", budget_id,
                absl::StrCat(budget.amount_per_period(), " points per period"), now);
    absl::StatusOr<WriteOutcome> outcome = store_.Write(batch);
    if (!outcome.ok()) return outcome.status();
    if (outcome->kind == Kind::kConflict) continue;
    if (outcome->kind == Kind::kDone) continue;  // a concurrent retry won: read it back
    if (absl::Status s = OutcomeStatus(*outcome, "UpdateBudget"); !s.ok()) return s;
    return budget;
  }
  return absl::AbortedError("budget: changed concurrently too often; retry");
}

absl::StatusOr<v1::Budget> AwardsBook::GetBudget(const Principal& who,
                                                 const std::string& budget_id, absl::Time now) {
  if (absl::Status s = common::auth::CheckId("budget_id", budget_id); !s.ok()) return s;
  absl::StatusOr<std::pair<Record, v1::Budget>> read = ReadBudget(who.org, budget_id);
  if (!read.ok()) return read.status();
  v1::Budget& budget = read->second;
  if (absl::Status s = CanReadBudget(who, budget); !s.ok()) return s;
  absl::StatusOr<bool> rolled = RollOver(budget, now);
  if (!rolled.ok()) return rolled.status();
  return std::move(budget);
}

absl::StatusOr<std::vector<v1::Budget>> AwardsBook::ListBudgets(const Principal& who,
                                                                absl::Time now) {
  if (who.is_service() || who.is_screen_only()) {
    return absl::PermissionDeniedError("ListBudgets: admins and budget owners");
  }
  absl::StatusOr<std::vector<std::string>> ids =
      store_.Range(keys::Budgets(who.org), 0, kMaxBudgets - 1, false);
  if (!ids.ok()) return ids.status();
  std::vector<std::string> record_keys;
  for (const std::string& id : *ids) record_keys.push_back(keys::Budget(who.org, id));
  absl::StatusOr<std::vector<Record>> records = store_.GetMany(record_keys);
  if (!records.ok()) return records.status();
  std::vector<v1::Budget> out;
  for (const Record& record : *records) {
    if (!record.exists()) continue;
    absl::StatusOr<v1::Budget> budget = Parse<v1::Budget>(record, "budget");
    if (!budget.ok()) return budget.status();
    if (!CanReadBudget(who, *budget).ok()) continue;
    absl::StatusOr<bool> rolled = RollOver(*budget, now);
    if (!rolled.ok()) return rolled.status();
    out.push_back(*std::move(budget));
  }
  return out;
}

absl::StatusOr<std::vector<v1::BudgetHistoryEntry>> AwardsBook::History(
    const Principal& who, const std::string& budget_id, int page_size, absl::Time now) {
  int32_t size = 0;
  if (absl::Status s = PageSize(page_size, &size); !s.ok()) return s;
  absl::StatusOr<v1::Budget> budget = GetBudget(who, budget_id, now);
  if (!budget.ok()) return budget.status();
  absl::StatusOr<std::vector<std::string>> raw =
      store_.NewestEntries(keys::BudgetHistory(who.org, budget_id), "e", size);
  if (!raw.ok()) return raw.status();
  std::vector<v1::BudgetHistoryEntry> out;
  for (const std::string& bytes : *raw) {
    v1::BudgetHistoryEntry entry;
    if (!entry.ParseFromString(bytes)) return absl::DataLossError("budget history entry");
    out.push_back(std::move(entry));
  }
  return out;
}

// ---- awards --------------------------------------------------------------------

absl::StatusOr<v1::CreateAwardResponse> AwardsBook::CreateAward(const Principal& who,
                                                                const v1::Award& requested,
                                                                absl::Time now) {
  if (absl::Status s = ValidateAward(requested); !s.ok()) return s;
  const std::string& org = who.org;
  absl::StatusOr<std::pair<Record, v1::Budget>> budget = ReadBudget(org, requested.budget_id());
  if (!budget.ok()) {
    if (absl::IsNotFound(budget.status())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "award.budget_id: budget '", requested.budget_id(), "' does not exist; create it first"));
    }
    return budget.status();
  }
  if (absl::Status s = CanManageAward(who, budget->second); !s.ok()) return s;
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    absl::StatusOr<Record> record = store_.Get(keys::Award(org, requested.award_id()));
    if (!record.ok()) return record.status();
    v1::CreateAwardResponse response;
    if (record->exists()) {
      absl::StatusOr<v1::Award> stored = Parse<v1::Award>(*record, "award");
      if (!stored.ok()) return stored.status();
      if (!SameAwardDefinition(*stored, requested)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "award.award_id: '", requested.award_id(), "' exists with another definition"));
      }
      *response.mutable_award() = *std::move(stored);
      return response;
    }
    v1::Award award = requested;
    award.set_state(v1::AWARD_STATE_OPEN);
    award.clear_winners();
    award.clear_last_payment_error();
    award.set_created_by(who.subject);
    *award.mutable_create_time() = ToProto(now);
    WriteBatch batch(org);
    batch.Put(keys::Award(org, award.award_id()), 0, award.SerializeAsString());
    batch.ZAddBounded(keys::Awards(org), ToMillis(now), award.award_id(), kMaxAwards);
    batch.Audit(who.subject, "award.create", award.award_id(),
                absl::StrCat(award.number_of_winners(), " x ", award.points_per_winner(),
                             " points from budget ", award.budget_id()),
                now);
    absl::StatusOr<WriteOutcome> outcome = store_.Write(batch);
    if (!outcome.ok()) return outcome.status();
    if (outcome->kind == Kind::kConflict) continue;
    if (outcome->kind == Kind::kFull) {
      return absl::ResourceExhaustedError(absl::StrCat("awards: at most ", kMaxAwards, " per org"));
    }
    if (absl::Status s = OutcomeStatus(*outcome, "award"); !s.ok()) return s;
    *response.mutable_award() = std::move(award);
    response.set_created(true);
    return response;
  }
  return absl::AbortedError("award: changed concurrently too often; retry");
}

absl::StatusOr<v1::Award> AwardsBook::GetAward(const Principal& who,
                                               const std::string& award_id) {
  if (absl::Status s = common::auth::CheckId("award_id", award_id); !s.ok()) return s;
  absl::StatusOr<std::pair<Record, v1::Award>> read = ReadAward(who.org, award_id);
  if (!read.ok()) return read.status();
  return std::move(read->second);
}

absl::StatusOr<v1::ListAwardsResponse> AwardsBook::ListAwards(
    const Principal& who, const v1::ListAwardsRequest& request) {
  int32_t size = 0;
  if (absl::Status s = PageSize(request.page_size(), &size); !s.ok()) return s;
  absl::StatusOr<int64_t> offset = PageOffset(request.page_token(), kMaxAwards);
  if (!offset.ok()) return offset.status();
  absl::StatusOr<std::vector<std::string>> ids =
      store_.Range(keys::Awards(who.org), *offset, *offset + size, true);
  if (!ids.ok()) return ids.status();
  v1::ListAwardsResponse response;
  bool more = static_cast<int>(ids->size()) > size;
  if (more) ids->pop_back();
  std::vector<std::string> record_keys;
  for (const std::string& id : *ids) record_keys.push_back(keys::Award(who.org, id));
  absl::StatusOr<std::vector<Record>> records = store_.GetMany(record_keys);
  if (!records.ok()) return records.status();
  for (const Record& record : *records) {
    if (!record.exists()) continue;
    absl::StatusOr<v1::Award> award = Parse<v1::Award>(record, "award");
    if (!award.ok()) return award.status();
    *response.add_awards() = *std::move(award);
  }
  if (more) response.set_next_page_token(absl::StrCat(*offset + size));
  return response;
}

absl::StatusOr<v1::NominateResponse> AwardsBook::Nominate(const Principal& who,
                                                          const v1::NominateRequest& request,
                                                          absl::Time now) {
  if (absl::Status s = ValidateNomination(request); !s.ok()) return s;
  const std::string& org = who.org;
  const std::string fingerprint = Fingerprint(request);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    absl::StatusOr<std::optional<std::string>> prior =
        PriorResult(org, who.subject, request.request_id(), fingerprint);
    if (!prior.ok()) return prior.status();
    if (prior->has_value()) {
      absl::StatusOr<Record> record =
          store_.Get(keys::Nomination(org, request.award_id(), **prior));
      if (!record.ok()) return record.status();
      absl::StatusOr<v1::Nomination> stored = Parse<v1::Nomination>(*record, "nomination");
      if (!stored.ok()) return stored.status();
      v1::NominateResponse response;
      *response.mutable_nomination() = *std::move(stored);
      return response;
    }
    absl::StatusOr<std::pair<Record, v1::Award>> award = ReadAward(org, request.award_id());
    if (!award.ok()) return award.status();
    if (absl::Status s = CanNominate(who, award->second, request.nominee_id()); !s.ok()) return s;
    if (absl::Status s = CheckNominationWindow(award->second, now); !s.ok()) return s;
    v1::Nomination nomination;
    nomination.set_nomination_id(NominationId(who.subject, request.nominee_id(), now));
    nomination.set_award_id(request.award_id());
    nomination.set_nominator_id(who.subject);
    nomination.set_nominee_id(request.nominee_id());
    nomination.set_reason(request.reason());
    nomination.set_state(v1::NOMINATION_STATE_PENDING);
    nomination.set_current_stage(0);
    *nomination.mutable_create_time() = ToProto(now);
    const std::string& id = nomination.nomination_id();
    WriteBatch batch(org);
    batch.Idempotent(who.subject, request.request_id(), fingerprint, id);
    // The award's version pins the window and state this check saw.
    batch.Expect(keys::Award(org, request.award_id()), award->first.version);
    batch.Unique(keys::Pairs(org, request.award_id()),
                 absl::StrCat(who.subject, " ", request.nominee_id()), id);
    batch.ZAddBounded(keys::Nominations(org, request.award_id()), ToMillis(now), id,
                      kMaxNominations);
    batch.Put(keys::Nomination(org, request.award_id(), id), 0, nomination.SerializeAsString());
    batch.Audit(who.subject, "award.nominate", absl::StrCat(request.award_id(), "/", id),
                absl::StrCat("nominee ", request.nominee_id()), now);
    absl::StatusOr<WriteOutcome> outcome = store_.Write(batch);
    if (!outcome.ok()) return outcome.status();
    switch (outcome->kind) {
      case Kind::kOk: {
        v1::NominateResponse response;
        *response.mutable_nomination() = std::move(nomination);
        response.set_created(true);
        return response;
      }
      case Kind::kConflict:
      case Kind::kDone:
        continue;  // re-read: the award moved, or a concurrent retry won
      case Kind::kExists:
        return absl::AlreadyExistsError(absl::StrCat(
            "nominee_id: '", request.nominee_id(), "' is already nominated by '", who.subject,
            "' for award '", request.award_id(), "' (nomination ", outcome->value, ")"));
      case Kind::kFull:
        return absl::ResourceExhaustedError(absl::StrCat(
            "award '", request.award_id(), "': at most ", kMaxNominations, " nominations"));
      default:
        return OutcomeStatus(*outcome, "Nominate");
    }
  }
  return absl::AbortedError("nomination: changed concurrently too often; retry");
}

absl::StatusOr<std::vector<v1::Nomination>> AwardsBook::ReadNominations(
    const std::string& org, const std::string& award_id) {
  absl::StatusOr<std::vector<std::string>> ids =
      store_.Range(keys::Nominations(org, award_id), 0, kMaxNominations - 1, false);
  if (!ids.ok()) return ids.status();
  std::vector<std::string> record_keys;
  for (const std::string& id : *ids) record_keys.push_back(keys::Nomination(org, award_id, id));
  absl::StatusOr<std::vector<Record>> records = store_.GetMany(record_keys);
  if (!records.ok()) return records.status();
  std::vector<v1::Nomination> out;
  for (const Record& record : *records) {
    if (!record.exists()) continue;
    absl::StatusOr<v1::Nomination> nomination = Parse<v1::Nomination>(record, "nomination");
    if (!nomination.ok()) return nomination.status();
    out.push_back(*std::move(nomination));
  }
  return out;
}

absl::StatusOr<v1::ListNominationsResponse> AwardsBook::ListNominations(
    const Principal& who, const v1::ListNominationsRequest& request) {
  if (absl::Status s = common::auth::CheckId("award_id", request.award_id()); !s.ok()) return s;
  int32_t size = 0;
  if (absl::Status s = PageSize(request.page_size(), &size); !s.ok()) return s;
  absl::StatusOr<int64_t> offset = PageOffset(request.page_token(), kMaxNominations);
  if (!offset.ok()) return offset.status();
  absl::StatusOr<std::pair<Record, v1::Award>> award = ReadAward(who.org, request.award_id());
  if (!award.ok()) return award.status();
  absl::StatusOr<std::pair<Record, v1::Budget>> budget =
      ReadBudget(who.org, award->second.budget_id());
  if (!budget.ok()) return budget.status();
  bool all = SeesAllNominations(who, award->second, budget->second);
  absl::StatusOr<std::vector<v1::Nomination>> nominations =
      ReadNominations(who.org, request.award_id());
  if (!nominations.ok()) return nominations.status();
  std::vector<v1::Nomination> visible;
  for (v1::Nomination& nomination : *nominations) {
    if (all || nomination.nominator_id() == who.subject) visible.push_back(std::move(nomination));
  }
  v1::ListNominationsResponse response;
  int64_t end = std::min<int64_t>(*offset + size, static_cast<int64_t>(visible.size()));
  for (int64_t i = *offset; i < end; ++i) *response.add_nominations() = std::move(visible[i]);
  if (end < static_cast<int64_t>(visible.size())) response.set_next_page_token(absl::StrCat(end));
  return response;
}

absl::StatusOr<v1::Nomination> AwardsBook::Decide(const Principal& who,
                                                  const DecisionInput& input, absl::Time now) {
  if (absl::Status s = ValidateDecision(input); !s.ok()) return s;
  const std::string& org = who.org;
  // The fingerprint: what was decided, by whom, on what.
  v1::ApproveNominationRequest shape;
  shape.set_request_id(input.request_id);
  shape.set_award_id(input.award_id);
  shape.set_nomination_id(input.nomination_id);
  shape.set_stage(input.stage);
  shape.set_comment(input.comment);
  const std::string fingerprint = absl::StrCat(input.approve ? "A" : "D", Fingerprint(shape));
  const std::string key = keys::Nomination(org, input.award_id, input.nomination_id);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    absl::StatusOr<std::optional<std::string>> prior =
        PriorResult(org, who.subject, input.request_id, fingerprint);
    if (!prior.ok()) return prior.status();
    absl::StatusOr<std::pair<Record, v1::Award>> award = ReadAward(org, input.award_id);
    if (!award.ok()) return award.status();
    absl::StatusOr<Record> record = store_.Get(key);
    if (!record.ok()) return record.status();
    if (!record->exists()) {
      return absl::NotFoundError(absl::StrCat("nomination_id: '", input.nomination_id,
                                              "' not found in award '", input.award_id, "'"));
    }
    absl::StatusOr<v1::Nomination> nomination = Parse<v1::Nomination>(*record, "nomination");
    if (!nomination.ok()) return nomination.status();
    if (prior->has_value()) return *std::move(nomination);
    if (absl::Status s = programs::Decide(award->second, input, who.subject, now, *nomination);
        !s.ok()) {
      return s;
    }
    WriteBatch batch(org);
    batch.Idempotent(who.subject, input.request_id, fingerprint, input.nomination_id);
    // Decisions only while the award is OPEN (the version pins it).
    batch.Expect(keys::Award(org, input.award_id), award->first.version);
    batch.Put(key, record->version, nomination->SerializeAsString());
    batch.Audit(who.subject, input.approve ? "award.approve" : "award.decline",
                absl::StrCat(input.award_id, "/", input.nomination_id),
                absl::StrCat("stage ", input.stage, ": ", input.comment), now);
    absl::StatusOr<WriteOutcome> outcome = store_.Write(batch);
    if (!outcome.ok()) return outcome.status();
    if (outcome->kind == Kind::kConflict || outcome->kind == Kind::kDone) continue;
    if (absl::Status s = OutcomeStatus(*outcome, "decision"); !s.ok()) return s;
    return *std::move(nomination);
  }
  return absl::AbortedError("nomination: changed concurrently too often; retry");
}

namespace {

// A retry of a SelectWinners already taken: the award as that request left
// it, unless its selection was refused and released since (OPEN again), or
// another request selected other winners: then the retry must not read as
// a success.
absl::StatusOr<v1::Award> PriorSelection(v1::Award award, const v1::SelectWinnersRequest& request) {
  if (award.state() == v1::AWARD_STATE_OPEN) {
    return absl::FailedPreconditionError(absl::StrCat(
        "award '", award.award_id(), "': this request's selection was refused and released (",
        award.last_payment_error(), "); select again with a new request_id"));
  }
  std::vector<std::string> selected;
  for (const v1::Winner& winner : award.winners()) selected.push_back(winner.person_id());
  std::vector<std::string> asked(request.winner_ids().begin(), request.winner_ids().end());
  std::sort(selected.begin(), selected.end());
  std::sort(asked.begin(), asked.end());
  if (selected != asked) {
    return absl::FailedPreconditionError(absl::StrCat(
        "award '", award.award_id(), "': another request selected other winners since this one"));
  }
  return award;
}

}  // namespace

absl::StatusOr<v1::Award> AwardsBook::ReserveWinners(const Principal& who,
                                                     const v1::SelectWinnersRequest& request,
                                                     absl::Time now) {
  if (absl::Status s = ValidateRequestId(request.request_id()); !s.ok()) return s;
  if (absl::Status s = common::auth::CheckId("award_id", request.award_id()); !s.ok()) return s;
  const std::string& org = who.org;
  const std::string fingerprint = Fingerprint(request);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    absl::StatusOr<std::optional<std::string>> prior =
        PriorResult(org, who.subject, request.request_id(), fingerprint);
    if (!prior.ok()) return prior.status();
    absl::StatusOr<std::pair<Record, v1::Award>> read = ReadAward(org, request.award_id());
    if (!read.ok()) return read.status();
    auto& [award_record, award] = *read;
    absl::StatusOr<std::pair<Record, v1::Budget>> budget_read = ReadBudget(org, award.budget_id());
    if (!budget_read.ok()) return budget_read.status();
    auto& [budget_record, budget] = *budget_read;
    if (absl::Status s = CanManageAward(who, budget); !s.ok()) return s;
    if (prior->has_value()) return PriorSelection(std::move(award), request);
    if (award.state() != v1::AWARD_STATE_OPEN) {
      return absl::FailedPreconditionError(absl::StrCat(
          "award '", award.award_id(), "': winners are already selected (",
          v1::AwardState_Name(award.state()), ")"));
    }
    absl::StatusOr<std::vector<v1::Nomination>> nominations =
        ReadNominations(org, award.award_id());
    if (!nominations.ok()) return nominations.status();
    std::vector<std::string> approved;
    for (const v1::Nomination& nomination : *nominations) {
      if (nomination.state() == v1::NOMINATION_STATE_APPROVED) {
        approved.push_back(nomination.nominee_id());
      }
    }
    if (absl::Status s = ValidateWinners(award, request.winner_ids(), approved); !s.ok()) {
      return s;
    }
    const int64_t total = award.points_per_winner() * request.winner_ids_size();
    absl::StatusOr<bool> rolled = RollOver(budget, now);
    if (!rolled.ok()) return rolled.status();
    if (absl::Status s = CheckFits(budget, total); !s.ok()) return s;
    budget.set_spent(budget.spent() + total);
    budget.set_reserved(budget.reserved() + total);
    budget.set_remaining(budget.amount_per_period() - budget.spent());
    award.set_state(v1::AWARD_STATE_PAYING);
    award.clear_last_payment_error();
    for (const std::string& id : request.winner_ids()) {
      v1::Winner* winner = award.add_winners();
      winner->set_person_id(id);
      winner->set_points(award.points_per_winner());
      winner->set_transfer_id(WinnerTransferId(award.award_id(), id));
      winner->set_state(v1::WINNER_STATE_RESERVED);
    }
    WriteBatch batch(org);
    batch.Idempotent(who.subject, request.request_id(), fingerprint, award.award_id());
    batch.Put(keys::Award(org, award.award_id()), award_record.version, award.SerializeAsString());
    batch.Put(keys::Budget(org, budget.budget_id()), budget_record.version,
              budget.SerializeAsString());
    AppendHistory(batch, budget, "reserved", who.subject, total, award.award_id(), now);
    batch.ZAddBounded(keys::Payments(org), ToMillis(now), award.award_id(), kMaxAwards);
    batch.Audit(who.subject, "award.select_winners", award.award_id(),
                absl::StrCat(request.winner_ids_size(), " winners, ", total, " points reserved"),
                now);
    absl::StatusOr<WriteOutcome> outcome = store_.Write(batch);
    if (!outcome.ok()) return outcome.status();
    if (outcome->kind == Kind::kConflict || outcome->kind == Kind::kDone) continue;
    if (absl::Status s = OutcomeStatus(*outcome, "SelectWinners"); !s.ok()) return s;
    return std::move(award);
  }
  return absl::AbortedError("award: changed concurrently too often; retry");
}

}  // namespace programs
