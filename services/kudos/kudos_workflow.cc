#include "services/kudos/kudos_workflow.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/calendar/calendar.h"
#include "common/check/check.h"
#include "common/grpc/steps.h"
#include "common/log/log.h"
#include "services/kudos/archive_chunk.h"
#include "services/kudos/kudos_rules.h"

namespace kudos {
namespace {

using google::protobuf::util::TimeUtil;

// What settling a record answers when this call committed its 0-point form
// (the store's state is COMMITTED).
constexpr char kCommittedWithoutPoints[] = "COMMITTED_WITHOUT_POINTS";
// The ledger's bound on an allowance profile's direct_reports.
constexpr int64_t kMaxDirectReports = 100000;

// The ledger refused a profile for good (bad input, a bound): not worth a retry.
bool IsRefusedProfile(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kFailedPrecondition;
}

std::string NewId(char prefix) {
  static thread_local absl::BitGen bits;
  return absl::StrFormat("%c%016x%08x", prefix, absl::Uniform<uint64_t>(bits),
                         absl::Uniform<uint32_t>(bits));
}

// A begin that found `outcome`, another kudos under the request_id (or an
// archived one: its fingerprint is not kept, so a retry that late is refused
// too; kudos_live_days >= idempotency_days keeps retries within the window live).
absl::Status RequestIdTaken(const std::string& request_id, const BeginOutcome& outcome,
                            absl::string_view what) {
  if (outcome.archived) {
    return absl::AlreadyExistsError(absl::StrCat(
        "request_id: '", request_id, "' was used for ", what, " ", outcome.record_id,
        ", archived since (older than the org's retention.kudos_live_days); use a new request_id "
        "for a new one"));
  }
  return absl::AlreadyExistsError(absl::StrCat("request_id: '", request_id,
                                               "' was already used for a different ", what, " (",
                                               outcome.record_id, "); use a new request_id for a new ",
                                               what == "kudos" ? "kudos" : "one"));
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

// The calendar week (org zone and week start) that weekly caps count in.
absl::StatusOr<std::string> WeekKey(const kudos::v1::OrgSettings& settings, absl::Time now) {
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(settings.time_zone());
  if (!zone.ok()) return zone.status();
  return common::calendar::PeriodAt(common::calendar::PeriodUnit::kWeek, now, *zone,
                                    settings.week_start())
      .key;
}

ledger::v1::Transfer MakeTransfer(const std::string& transfer_id, const std::string& from,
                                  const std::string& to, int64_t points,
                                  ledger::v1::TransferKind kind, const std::string& reference,
                                  const std::string& team, const std::string& values) {
  ledger::v1::Transfer transfer;
  transfer.set_transfer_id(transfer_id);
  transfer.mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  transfer.mutable_debit_account()->set_person_id(from);
  transfer.mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  transfer.mutable_credit_account()->set_person_id(to);
  transfer.set_amount(points);
  transfer.set_kind(kind);
  transfer.set_reference(reference);
  (*transfer.mutable_tags())["giver"] = from;
  (*transfer.mutable_tags())["team"] = team;
  (*transfer.mutable_tags())["values"] = values;
  return transfer;
}

// Issue 18: the ledger transfers of a private kudos and of its boosts say so,
// so that no consumer of the ledger's outbox shows them.
void TagVisibility(const kudos::v1::Kudos& kudos, ledger::v1::PostTransfersRequest& transfers) {
  if (!IsPrivate(kudos)) return;
  for (ledger::v1::Transfer& transfer : *transfers.mutable_transfers()) {
    (*transfer.mutable_tags())["visibility"] = "private";
  }
}

// Issue 18: the ledger refused the points because the giver's allowance is
// spent (the post script's refusal, "transfers[i]: ...").
bool AllowanceSpent(const absl::Status& posted) {
  return posted.code() == absl::StatusCode::kResourceExhausted && IsDefinitiveRefusal(posted);
}

// The answer for a record settled in `state` by this call.
bool Committed(const std::string& state) {
  return state == "COMMITTED" || state == kCommittedWithoutPoints;
}

absl::Status StoredError(const Record& record) {
  int code = 0;
  if (!absl::SimpleAtoi(record.error_code, &code) || code == 0) code = static_cast<int>(absl::StatusCode::kAborted);
  return absl::Status(static_cast<absl::StatusCode>(code),
                      absl::StrCat(record.error_message, " (this request_id was refused; use a new one to try again)"));
}

// OK when `id` is in `people` (as read from the directory) and active, so
// they may act as `role` ("giver", "booster").
absl::Status CheckActive(const std::map<std::string, kudos::v1::Person>& people,
                         const std::string& org, const std::string& id, absl::string_view role) {
  auto it = people.find(id);
  if (it == people.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        role, " '", id, "' is not in the directory of org '", org, "'; an admin must add them"));
  }
  if (!it->second.active()) {
    return absl::PermissionDeniedError(absl::StrCat(role, " '", id, "' is not active"));
  }
  return absl::OkStatus();
}

// The fields of a BeginRecognition set by the clock and the org's limits
// (rate limit per minute, weekly pair cap).
absl::StatusOr<BeginRecognition> BeginAt(absl::Time now, const kudos::v1::OrgSettings& settings,
                                         absl::Duration reconcile_after) {
  absl::StatusOr<std::string> week = WeekKey(settings, now);
  if (!week.ok()) return week.status();
  BeginRecognition begin;
  begin.now_ms = absl::ToUnixMillis(now);
  int64_t now_s = absl::ToUnixSeconds(now);
  begin.minute_key = std::to_string(now_s / 60);
  begin.retry_after_seconds = static_cast<int>(60 - now_s % 60);
  begin.rate_limit = settings.max_kudos_per_minute();
  begin.week_key = *week;
  begin.pair_cap = settings.weekly_pair_cap_points();
  begin.reconcile_at_ms = absl::ToUnixMillis(now + reconcile_after);
  begin.idempotency_ttl_s =
      int64_t{RetentionWithDefaults(settings.retention()).idempotency_days()} * 24 * 3600;
  return begin;
}

}  // namespace

KudosWorkflow::KudosWorkflow(KudosStore& store, LedgerClient& ledger,
                             ReconcilerOptions reconciler, std::function<absl::Time()> clock)
    : store_(store), ledger_(ledger), reconciler_(reconciler), clock_(std::move(clock)) {}

absl::StatusOr<kudos::v1::Kudos> KudosWorkflow::SendKudos(
    const std::string& org, const std::string& giver_id,
    const kudos::v1::SendKudosRequest& request) {
  std::vector<std::string> ids(request.recipient_ids().begin(), request.recipient_ids().end());
  if (ids.size() > static_cast<size_t>(kMaxRecipients)) ids.resize(kMaxRecipients + 1);
  ids.push_back(giver_id);
  absl::StatusOr<KudosStore::SettingsAndPeople> read = store_.GetSettingsAndPeople(org, ids);
  if (!read.ok()) return read.status();
  const kudos::v1::OrgSettings* settings = &read->settings;
  std::map<std::string, kudos::v1::Person>* people = &read->people;
  if (absl::Status giver = CheckActive(*people, org, giver_id, "giver"); !giver.ok()) return giver;
  Directory directory{*people};
  if (absl::Status valid = ValidateSendKudos(request, giver_id, *settings, directory); !valid.ok()) {
    // A retry of a kudos accepted earlier returns it even if the directory
    // changed since (a recipient left, a value was retired).
    if (ValidateRequestId(request.request_id()).ok()) {
      auto earlier = store_.FindRequest(org, RecordKind::kKudos, giver_id, request.request_id());
      if (!earlier.ok()) return earlier.status();
      if (earlier->has_value() &&
          KudosStore::SameFingerprint((*earlier)->fingerprint, SendFingerprint(request))) {
        return Complete(org, RecordKind::kKudos, (*earlier)->record_id, (*earlier)->record_id);
      }
    }
    return valid;
  }

  absl::StatusOr<PreparedRecord> prepared = PrepareSend(org, giver_id, request, *settings, *people);
  if (!prepared.ok()) return prepared.status();
  BeginRecognition* begin = &prepared->begin;
  const std::string& kudos_id = begin->record_id;
  kudos::v1::Kudos kudos = prepared->kudos;
  absl::StatusOr<BeginOutcome> outcome = store_.Begin(org, *begin);
  if (!outcome.ok()) return outcome.status();
  if (!outcome->is_new && outcome->fingerprint != begin->fingerprint) {
    return RequestIdTaken(request.request_id(), *outcome, "kudos");
  }
  if (outcome->is_new) {
    // The record is the one just written: settle it without reading it
    // back, and answer with the kudos it holds (two round trips fewer).
    Record record;
    record.pb = begin->record_pb;
    record.state = "PENDING";
    record.transfers_pb = begin->transfers_pb;
    record.kudos_id = kudos_id;
    record.finish = KudosStore::FinishFieldsOf(*begin, outcome->seq);
    record.may_go_without_points = !begin->zero_points_pb.empty();
    absl::StatusOr<std::string> state = SettleRecord(org, RecordKind::kKudos, kudos_id, record);
    if (!state.ok()) return state.status();
    if (*state == "COMMITTED") {
      kudos.set_state(kudos::v1::KUDOS_STATE_COMMITTED);
      return kudos;
    }
  }
  return Complete(org, RecordKind::kKudos, outcome->record_id, outcome->record_id);
}

absl::StatusOr<KudosWorkflow::PreparedRecord> KudosWorkflow::PrepareSend(
    const std::string& org, const std::string& giver_id,
    const kudos::v1::SendKudosRequest& request, const kudos::v1::OrgSettings& settings,
    std::map<std::string, kudos::v1::Person>& people) {
  absl::Time now = clock_();
  absl::StatusOr<BeginRecognition> begin = BeginAt(now, settings, reconciler_.first_attempt_after);
  if (!begin.ok()) return begin.status();
  const std::string kudos_id = KudosIdOfRequest(org, giver_id, request.request_id());

  kudos::v1::Kudos kudos;
  kudos.set_kudos_id(kudos_id);
  kudos.set_giver_id(giver_id);
  *kudos.mutable_recipient_ids() = request.recipient_ids();
  kudos.set_message(request.message());
  *kudos.mutable_values() = request.values();
  kudos.set_points_per_recipient(request.points_per_recipient());
  *kudos.mutable_create_time() = ToProto(now);
  kudos.set_state(kudos::v1::KUDOS_STATE_PENDING);
  kudos.set_visibility(request.visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE
                           ? kudos::v1::KUDOS_VISIBILITY_PRIVATE
                           : kudos::v1::KUDOS_VISIBILITY_PUBLIC);

  const std::string values = absl::StrJoin(request.values(), ",");
  ledger::v1::PostTransfersRequest transfers;
  transfers.set_linked(true);
  kudos::v1::KudosEvent event;
  event.set_org_id(org);
  *event.mutable_event_time() = ToProto(now);
  kudos::v1::KudosSent* sent = event.mutable_kudos_sent();
  sent->set_giver_team_id(people[giver_id].team_id());
  std::vector<std::string> teams = {people[giver_id].team_id()};
  for (const std::string& recipient : request.recipient_ids()) {
    const std::string& team = people[recipient].team_id();
    (*sent->mutable_recipient_team_ids())[recipient] = team;
    teams.push_back(team);
    if (request.points_per_recipient() > 0) {
      *transfers.add_transfers() =
          MakeTransfer(kudos_id + ":" + recipient, giver_id, recipient,
                       request.points_per_recipient(), ledger::v1::TRANSFER_KIND_KUDOS, kudos_id,
                       team, values);
    }
  }
  std::sort(teams.begin(), teams.end());
  teams.erase(std::unique(teams.begin(), teams.end()), teams.end());
  const std::vector<std::string> feeds = FeedKeysOf(kudos, teams);
  *sent->mutable_kudos() = kudos;
  sent->mutable_kudos()->set_state(kudos::v1::KUDOS_STATE_COMMITTED);
  TagVisibility(kudos, transfers);

  begin->kind = RecordKind::kKudos;
  begin->actor = giver_id;
  begin->request_id = request.request_id();
  begin->fingerprint = SendFingerprint(request);
  begin->record_id = kudos_id;
  // Committed, the record is this alone (the kudos and its teams, for reads
  // and the archive's team feeds), without the id its key names.
  begin->record_pb = KudosStore::StoredRecordPb(*sent, begin->fingerprint);
  begin->record_keyed = true;
  begin->write_request_key = store_.write_request_keys();
  begin->points = request.points_per_recipient();
  begin->recipients.assign(request.recipient_ids().begin(), request.recipient_ids().end());
  begin->transfers_pb = transfers.transfers().empty() ? "" : transfers.SerializeAsString();
  begin->event_pb = event.SerializeAsString();
  begin->feeds = feeds;
  if (settings.allow_kudos_without_points() && !transfers.transfers().empty()) {
    // The same kudos with 0 points, committed instead if the ledger finds
    // the giver's allowance spent (no transfers, no pair caps).
    sent->mutable_kudos()->set_points_per_recipient(0);
    begin->zero_points_pb = KudosStore::StoredRecordPb(*sent, begin->fingerprint);
    begin->zero_points_event_pb = event.SerializeAsString();
  }
  return PreparedRecord{*std::move(begin), std::move(kudos)};
}

absl::StatusOr<kudos::v1::Kudos> KudosWorkflow::BoostKudos(
    const std::string& org, const std::string& booster_id,
    const kudos::v1::BoostKudosRequest& request) {
  if (absl::Status id = ValidateId("kudos_id", request.kudos_id()); !id.ok()) return id;
  absl::StatusOr<kudos::v1::Kudos> kudos = store_.GetKudos(org, request.kudos_id());
  if (!kudos.ok()) return kudos.status();
  // The blocking form reads no retraction marks or managers: a private kudos
  // is boosted only by its parties here (the RPC uses BoostKudosAsync).
  if (IsPrivate(*kudos) && !IsPartyTo(*kudos, booster_id)) {
    return absl::NotFoundError(absl::StrCat("kudos_id: '", request.kudos_id(), "' does not exist"));
  }
  std::vector<std::string> recipients(kudos->recipient_ids().begin(), kudos->recipient_ids().end());
  std::vector<std::string> ids = recipients;
  ids.push_back(booster_id);
  absl::StatusOr<KudosStore::SettingsAndPeople> read = store_.GetSettingsAndPeople(org, ids);
  if (!read.ok()) return read.status();
  const kudos::v1::OrgSettings* settings = &read->settings;
  const std::map<std::string, kudos::v1::Person>* people = &read->people;
  if (absl::Status booster = CheckActive(*people, org, booster_id, "booster"); !booster.ok()) {
    return booster;
  }
  if (absl::Status valid = ValidateBoost(request, booster_id, *kudos, *settings); !valid.ok()) {
    return valid;
  }

  absl::StatusOr<PreparedRecord> prepared = PrepareBoost(org, booster_id, request, *kudos, *settings, *people);
  if (!prepared.ok()) return prepared.status();
  BeginRecognition* begin = &prepared->begin;
  absl::StatusOr<BeginOutcome> outcome = store_.Begin(org, *begin);
  if (!outcome.ok()) return outcome.status();
  if (!outcome->is_new && outcome->fingerprint != begin->fingerprint) {
    return absl::AlreadyExistsError(absl::StrCat(
        "request_id: '", request.request_id(),
        "' was already used for a different boost; use a new request_id for a new boost"));
  }
  return Complete(org, RecordKind::kBoost, outcome->record_id, kudos->kudos_id());
}

absl::StatusOr<KudosWorkflow::PreparedRecord> KudosWorkflow::PrepareBoost(
    const std::string& org, const std::string& booster_id,
    const kudos::v1::BoostKudosRequest& request, const kudos::v1::Kudos& kudos,
    const kudos::v1::OrgSettings& settings,
    const std::map<std::string, kudos::v1::Person>& people) {
  absl::Time now = clock_();
  absl::StatusOr<BeginRecognition> begin = BeginAt(now, settings, reconciler_.first_attempt_after);
  if (!begin.ok()) return begin.status();
  const std::string boost_id = NewId('b');
  kudos::v1::Boost boost;
  boost.set_booster_id(booster_id);
  boost.set_points_per_recipient(request.points());
  *boost.mutable_create_time() = ToProto(now);

  const std::string values = absl::StrJoin(kudos.values(), ",");
  ledger::v1::PostTransfersRequest transfers;
  transfers.set_linked(true);
  kudos::v1::KudosEvent event;
  event.set_org_id(org);
  *event.mutable_event_time() = ToProto(now);
  kudos::v1::KudosBoosted* boosted = event.mutable_kudos_boosted();
  boosted->set_kudos_id(kudos.kudos_id());
  *boosted->mutable_boost() = boost;
  *boosted->mutable_recipient_ids() = kudos.recipient_ids();
  *boosted->mutable_values() = kudos.values();
  boosted->set_visibility(kudos.visibility());
  std::vector<std::string> recipients(kudos.recipient_ids().begin(), kudos.recipient_ids().end());
  for (const std::string& recipient : recipients) {
    auto person = people.find(recipient);
    const std::string team = person == people.end() ? "" : person->second.team_id();
    (*boosted->mutable_recipient_team_ids())[recipient] = team;
    *transfers.add_transfers() =
        MakeTransfer(boost_id + ":" + recipient, booster_id, recipient, request.points(),
                     ledger::v1::TRANSFER_KIND_BOOST, kudos.kudos_id(), team, values);
  }

  TagVisibility(kudos, transfers);
  begin->kind = RecordKind::kBoost;
  begin->actor = booster_id;
  begin->request_id = request.request_id();
  begin->fingerprint = BoostFingerprint(request);
  begin->record_id = boost_id;
  begin->record_pb = boost.SerializeAsString();
  begin->points = request.points();
  begin->kudos_id = kudos.kudos_id();
  begin->recipients = recipients;
  begin->transfers_pb = transfers.SerializeAsString();
  begin->event_pb = event.SerializeAsString();
  return PreparedRecord{*std::move(begin), kudos::v1::Kudos()};
}

absl::StatusOr<KudosWorkflow::PreparedRecord> KudosWorkflow::PrepareCompany(
    const std::string& org, const kudos::v1::RecordCompanyKudosRequest& request,
    const kudos::v1::OrgSettings& settings,
    const std::map<std::string, kudos::v1::Person>& people) {
  absl::Time now = clock_();
  absl::StatusOr<BeginRecognition> begin = BeginAt(now, settings, reconciler_.first_attempt_after);
  if (!begin.ok()) return begin.status();
  const std::string kudos_id = KudosIdOfRequest(org, kCompanyActor, request.request_id());
  auto recipient = people.find(request.recipient_id());
  KUDOS_CHECK(recipient != people.end(), "a validated company kudos' recipient was read");
  const std::string& team = recipient->second.team_id();

  kudos::v1::Kudos kudos;
  kudos.set_kudos_id(kudos_id);
  kudos.set_from_company(true);  // giver_id stays empty: no person gave it
  kudos.add_recipient_ids(request.recipient_id());
  kudos.set_message(request.message());
  *kudos.mutable_values() = request.values();
  kudos.set_points_per_recipient(request.points());
  kudos.set_transfer_id(request.transfer_id());
  *kudos.mutable_create_time() = ToProto(now);
  kudos.set_state(kudos::v1::KUDOS_STATE_PENDING);
  kudos.set_visibility(kudos::v1::KUDOS_VISIBILITY_PUBLIC);

  kudos::v1::KudosEvent event;
  event.set_org_id(org);
  *event.mutable_event_time() = ToProto(now);
  kudos::v1::KudosSent* sent = event.mutable_kudos_sent();
  (*sent->mutable_recipient_team_ids())[request.recipient_id()] = team;
  *sent->mutable_kudos() = kudos;
  sent->mutable_kudos()->set_state(kudos::v1::KUDOS_STATE_COMMITTED);

  begin->kind = RecordKind::kKudos;
  begin->actor = kCompanyActor;
  // The programs service sends one per person and celebration: no
  // per-minute limit, and no pair caps (points 0 here; the record moves none).
  begin->rate_limit = std::numeric_limits<int>::max();
  begin->points = 0;
  begin->request_id = request.request_id();
  begin->fingerprint = CompanyFingerprint(request);
  begin->record_id = kudos_id;
  begin->record_pb = KudosStore::StoredRecordPb(*sent, begin->fingerprint);
  begin->record_keyed = true;
  begin->write_request_key = store_.write_request_keys();
  begin->recipients = {request.recipient_id()};
  begin->transfers_pb.clear();  // paid by request.transfer_id, before this call
  begin->event_pb = event.SerializeAsString();
  begin->feeds = FeedKeysOf(kudos, {team});
  return PreparedRecord{*std::move(begin), std::move(kudos)};
}

absl::StatusOr<kudos::v1::Kudos> KudosWorkflow::Complete(const std::string& org, RecordKind kind,
                                                         const std::string& id,
                                                         const std::string& kudos_id) {
  absl::StatusOr<std::string> state = Settle(org, kind, id);
  if (!state.ok()) {
    // A retry whose kudos has moved to the archive (a policy changed in
    // between) still gets its kudos.
    if (state.status().code() == absl::StatusCode::kNotFound && kind == RecordKind::kKudos) {
      absl::StatusOr<kudos::v1::Kudos> archived = store_.GetKudos(org, kudos_id);
      if (archived.ok()) return archived;
    }
    return state.status();
  }
  if (*state == "ABORTED") {
    absl::StatusOr<std::optional<Record>> record = store_.GetRecord(org, kind, id);
    if (!record.ok()) return record.status();
    if (!record->has_value()) return absl::InternalError("aborted record vanished");
    return StoredError(**record);
  }
  if (!Committed(*state)) {
    return absl::UnavailableError(
        "the ledger has not confirmed the points yet; retry with the same request_id");
  }
  return store_.GetKudos(org, kudos_id);
}

absl::StatusOr<std::string> KudosWorkflow::Settle(const std::string& org, RecordKind kind,
                                                  const std::string& id) {
  absl::StatusOr<std::optional<Record>> record = store_.GetRecord(org, kind, id);
  if (!record.ok()) return record.status();
  if (!record->has_value()) {
    return absl::NotFoundError(absl::StrCat(KindName(kind), " '", id, "' does not exist"));
  }
  return SettleRecord(org, kind, id, **record);
}

absl::StatusOr<std::string> KudosWorkflow::SettleRecord(const std::string& org, RecordKind kind,
                                                        const std::string& id,
                                                        const Record& record) {
  if (record.state != "PENDING") return record.state;
  if (!record.transfers_pb.empty()) {
    ledger::v1::PostTransfersRequest transfers;
    if (!transfers.ParseFromString(record.transfers_pb)) {
      return absl::InternalError("stored transfers cannot be parsed");
    }
    absl::Status posted = ledger_.PostTransfers(org, transfers);
    if (!posted.ok()) {
      if (!IsDefinitiveRefusal(posted)) {
        return absl::UnavailableError(absl::StrCat(
            "the ledger did not confirm the points (", posted.message(),
            "); retry with the same request_id"));
      }
      if (record.may_go_without_points && AllowanceSpent(posted)) {
        FinishFields zero_form = record.finish;
        zero_form.without_points = true;
        absl::StatusOr<std::string> state =
            store_.Finish(org, kind, id, /*commit=*/true, absl::OkStatus(), zero_form);
        if (state.ok() && *state == "COMMITTED") return std::string(kCommittedWithoutPoints);
        return state;
      }
      return store_.Finish(org, kind, id, /*commit=*/false, posted, record.finish);
    }
  }
  return store_.Finish(org, kind, id, /*commit=*/true, absl::OkStatus(), record.finish);
}

// ---------------------------------------------------------------------------
// Asynchronous forms (the RPC handlers' path): the same steps as the blocking
// forms above, each an asynchronous store or ledger call bounded by the
// caller's deadline. A call stopped between two steps (cancelled, or its
// deadline passed) leaves at most a PENDING record, which the reconciler
// commits or aborts exactly once.

using common::grpc_util::Done;
using common::grpc_util::Into;
using common::grpc_util::Sequence;

namespace {

// Into for an answer held in an optional.
template <typename T>
StoreCallback<T> IntoAnswer(std::optional<T>* target, Done done) {
  return [target, done = std::move(done)](absl::StatusOr<T> result) mutable {
    if (!result.ok()) return std::move(done)(result.status());
    *target = *std::move(result);
    std::move(done)(absl::OkStatus());
  };
}

}  // namespace

struct KudosWorkflow::SendState {
  std::string org;
  std::string giver_id;
  std::vector<std::string> ids;  // the recipients (at most kMaxRecipients + 1) and the giver
  const kudos::v1::SendKudosRequest* request = nullptr;
  Deadline deadline;
  StopCheck stop;
  KudosStore::SettingsAndPeople read;
  PreparedRecord prepared;
  BeginOutcome outcome;
  std::optional<kudos::v1::Kudos> answer;  // set once the call has its answer
};

void KudosWorkflow::SendKudosAsync(const std::string& org, const std::string& giver_id,
                                   const kudos::v1::SendKudosRequest& request, Deadline deadline,
                                   StopCheck stop, StoreCallback<kudos::v1::Kudos> done) {
  auto s = std::make_shared<SendState>();
  s->org = org;
  s->giver_id = giver_id;
  s->request = &request;
  s->deadline = deadline;
  s->stop = std::move(stop);
  s->ids.assign(request.recipient_ids().begin(), request.recipient_ids().end());
  if (s->ids.size() > static_cast<size_t>(kMaxRecipients)) s->ids.resize(kMaxRecipients + 1);
  s->ids.push_back(giver_id);
  Sequence steps;
  steps.Then([this, s](Done done) { ReadAndBeginSendAsync(s, /*allow_cache=*/true, std::move(done)); })
      .Then([s]() -> absl::Status {
        if (s->answer.has_value() || s->outcome.is_new ||
            s->outcome.fingerprint == s->prepared.begin.fingerprint) {
          return absl::OkStatus();
        }
        return RequestIdTaken(s->request->request_id(), s->outcome, "kudos");
      })
      .Then([this, s](Done done) { SettleBegunKudosAsync(s, std::move(done)); });
  std::move(steps).Run([s, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    KUDOS_CHECK(s->answer.has_value(), "a SendKudos that ended OK has its kudos");
    std::move(done)(*std::move(s->answer));
  });
}

// The directory (the giver, the recipients, the settings) from the replica's
// cache or one round trip, validation, and the begin. Validated against
// cached entries, the begin is checked against the directory's version: a
// refusal on cached entries, or a begin refused as stale, starts again from
// a fresh read, so the answer is always one a fresh read would give.
void KudosWorkflow::ReadAndBeginSendAsync(std::shared_ptr<SendState> s, bool allow_cache,
                                          Done done) {
  store_.GetSendDirectoryAsync(
      s->org, s->ids, allow_cache, s->deadline,
      [this, s, done = std::move(done)](
          absl::StatusOr<KudosStore::DirectoryRead> read) mutable {
        if (!read.ok()) return std::move(done)(read.status());
        s->read = std::move(read->read);
        if (!read->cached) {
          return ValidateSendAsync(s, [this, s, done = std::move(done)](absl::Status valid) mutable {
            if (!valid.ok() || s->answer.has_value()) return std::move(done)(valid);
            BeginPreparedSendAsync(s, /*directory_version=*/"", std::move(done));
          });
        }
        absl::Status valid = CheckActive(s->read.people, s->org, s->giver_id, "giver");
        if (valid.ok()) {
          valid = ValidateSendKudos(*s->request, s->giver_id, s->read.settings,
                                    Directory{s->read.people});
        }
        if (!valid.ok()) return ReadAndBeginSendAsync(s, /*allow_cache=*/false, std::move(done));
        absl::StatusOr<PreparedRecord> prepared =
            PrepareSend(s->org, s->giver_id, *s->request, s->read.settings, s->read.people);
        if (!prepared.ok()) return std::move(done)(prepared.status());
        s->prepared = *std::move(prepared);
        BeginPreparedSendAsync(s, std::move(read->version), std::move(done));
      });
}

void KudosWorkflow::BeginPreparedSendAsync(std::shared_ptr<SendState> s,
                                           std::string directory_version, Done done) {
  // Nothing is written before this step: a call stopped here changes nothing.
  if (absl::Status stopped = s->stop(); !stopped.ok()) return std::move(done)(stopped);
  s->prepared.begin.directory_version = std::move(directory_version);
  store_.BeginAsync(
      s->org, s->prepared.begin, s->deadline,
      [this, s, done = std::move(done)](absl::StatusOr<BeginOutcome> outcome) mutable {
        if (!outcome.ok()) return std::move(done)(outcome.status());
        if (outcome->stale) {
          KUDOS_CHECK(!s->prepared.begin.directory_version.empty(),
                      "only a begin checked against a cached directory is stale");
          store_.ForgetCachedDirectory(s->org);
          return ReadAndBeginSendAsync(s, /*allow_cache=*/false, std::move(done));
        }
        s->outcome = *std::move(outcome);
        std::move(done)(absl::OkStatus());
      });
}

void KudosWorkflow::ValidateSendAsync(std::shared_ptr<SendState> s, Done done) {
  std::map<std::string, kudos::v1::Person>& people = s->read.people;
  const kudos::v1::SendKudosRequest& request = *s->request;
  if (absl::Status giver = CheckActive(people, s->org, s->giver_id, "giver"); !giver.ok()) {
    return std::move(done)(giver);
  }
  Directory directory{people};
  absl::Status valid = ValidateSendKudos(request, s->giver_id, s->read.settings, directory);
  if (valid.ok()) {
    absl::StatusOr<PreparedRecord> prepared =
        PrepareSend(s->org, s->giver_id, request, s->read.settings, people);
    if (!prepared.ok()) return std::move(done)(prepared.status());
    s->prepared = *std::move(prepared);
    return std::move(done)(absl::OkStatus());
  }
  if (!ValidateRequestId(request.request_id()).ok()) return std::move(done)(valid);
  // A retry of a kudos accepted earlier returns it even if the directory
  // changed since (a recipient left, a value was retired).
  AnswerEarlierRequestAsync(s, s->giver_id, SendFingerprint(request), std::move(valid),
                            std::move(done));
}

template <typename State>
void KudosWorkflow::AnswerEarlierRequestAsync(std::shared_ptr<State> s, const std::string& actor,
                                              std::string fingerprint, absl::Status valid,
                                              Done done) {
  store_.FindRequestAsync(
      s->org, RecordKind::kKudos, actor, s->request->request_id(), s->deadline,
      [this, s, valid = std::move(valid), fingerprint = std::move(fingerprint),
       done = std::move(done)](absl::StatusOr<std::optional<BeginOutcome>> earlier) mutable {
        if (!earlier.ok()) return std::move(done)(earlier.status());
        if (!earlier->has_value() ||
            !KudosStore::SameFingerprint((*earlier)->fingerprint, fingerprint)) {
          return std::move(done)(valid);
        }
        const std::string id = (*earlier)->record_id;
        CompleteAsync(s->org, RecordKind::kKudos, id, id, s->deadline, s->stop,
                      IntoAnswer(&s->answer, std::move(done)));
      });
}

// SendKudos' and RecordCompanyKudos' last step: a record this call began is
// settled without reading it back (two round trips fewer); an earlier one
// (a retry) is completed as stored.
template <typename State>
void KudosWorkflow::SettleBegunKudosAsync(std::shared_ptr<State> s, Done done) {
  if (s->answer.has_value()) return std::move(done)(absl::OkStatus());
  const std::string record_id = s->outcome.record_id;
  if (!s->outcome.is_new) {
    return CompleteAsync(s->org, RecordKind::kKudos, record_id, record_id, s->deadline, s->stop,
                         IntoAnswer(&s->answer, std::move(done)));
  }
  // A company kudos' record has no transfers: settling it commits it.
  const BeginRecognition& begin = s->prepared.begin;
  Record record;
  record.pb = begin.record_pb;
  record.state = "PENDING";
  record.transfers_pb = begin.transfers_pb;
  record.kudos_id = begin.record_id;
  record.finish = KudosStore::FinishFieldsOf(begin, s->outcome.seq);
  record.may_go_without_points = !begin.zero_points_pb.empty();
  SettleRecordAsync(
      s->org, RecordKind::kKudos, begin.record_id, record, s->deadline, s->stop,
      [this, s, done = std::move(done)](absl::StatusOr<std::string> state) mutable {
        if (!state.ok()) return std::move(done)(state.status());
        if (*state == "COMMITTED") {
          s->answer = std::move(s->prepared.kudos);
          s->answer->set_state(kudos::v1::KUDOS_STATE_COMMITTED);
          return std::move(done)(absl::OkStatus());
        }
        const std::string id = s->outcome.record_id;
        CompleteAsync(s->org, RecordKind::kKudos, id, id, s->deadline, s->stop,
                      IntoAnswer(&s->answer, std::move(done)));
      });
}

struct KudosWorkflow::BoostState {
  std::string org;
  std::string booster_id;
  const kudos::v1::BoostKudosRequest* request = nullptr;
  Deadline deadline;
  StopCheck stop;
  kudos::v1::Kudos kudos;  // the boosted kudos
  KudosStore::SettingsAndPeople read;
  PreparedRecord prepared;
  BeginOutcome outcome;
  kudos::v1::Kudos answer;
};

void KudosWorkflow::BoostKudosAsync(const std::string& org, const std::string& booster_id,
                                    const kudos::v1::BoostKudosRequest& request,
                                    Deadline deadline, StopCheck stop,
                                    StoreCallback<kudos::v1::Kudos> done) {
  if (absl::Status id = ValidateId("kudos_id", request.kudos_id()); !id.ok()) {
    return std::move(done)(id);
  }
  auto s = std::make_shared<BoostState>();
  s->org = org;
  s->booster_id = booster_id;
  s->request = &request;
  s->deadline = deadline;
  s->stop = std::move(stop);
  Sequence steps;
  steps.Then([this, s](Done done) {
         // Only who may see the kudos may boost it (issue 18: private, retracted).
         store_.GetKudosForViewerAsync(s->org, s->request->kudos_id(), Viewer{s->booster_id, false},
                                       s->deadline, Into(&s->kudos, std::move(done)));
       })
      .Then([this, s](Done done) {
        std::vector<std::string> ids(s->kudos.recipient_ids().begin(),
                                     s->kudos.recipient_ids().end());
        ids.push_back(s->booster_id);
        store_.GetSettingsAndPeopleAsync(s->org, ids, s->deadline, Into(&s->read, std::move(done)));
      })
      .Then([this, s]() -> absl::Status {
        const auto& people = s->read.people;
        if (absl::Status booster = CheckActive(people, s->org, s->booster_id, "booster");
            !booster.ok()) {
          return booster;
        }
        absl::Status valid = ValidateBoost(*s->request, s->booster_id, s->kudos, s->read.settings);
        if (!valid.ok()) return valid;
        absl::StatusOr<PreparedRecord> prepared =
            PrepareBoost(s->org, s->booster_id, *s->request, s->kudos, s->read.settings, people);
        if (!prepared.ok()) return prepared.status();
        s->prepared = *std::move(prepared);
        return s->stop();  // nothing is written before the next step
      })
      .Then([this, s](Done done) {
        store_.BeginAsync(s->org, s->prepared.begin, s->deadline, Into(&s->outcome, std::move(done)));
      })
      .Then([s]() -> absl::Status {
        if (s->outcome.is_new || s->outcome.fingerprint == s->prepared.begin.fingerprint) {
          return absl::OkStatus();
        }
        return absl::AlreadyExistsError(absl::StrCat(
            "request_id: '", s->request->request_id(),
            "' was already used for a different boost; use a new request_id for a new boost"));
      })
      .Then([this, s](Done done) {
        CompleteAsync(s->org, RecordKind::kBoost, s->outcome.record_id, s->kudos.kudos_id(),
                      s->deadline, s->stop, Into(&s->answer, std::move(done)));
      });
  std::move(steps).Run([s, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    std::move(done)(std::move(s->answer));
  });
}

struct KudosWorkflow::CompanyState {
  std::string org;
  const kudos::v1::RecordCompanyKudosRequest* request = nullptr;
  Deadline deadline;
  StopCheck stop;
  KudosStore::SettingsAndPeople read;
  PreparedRecord prepared;
  BeginOutcome outcome;
  std::optional<kudos::v1::Kudos> answer;  // set once the call has its answer
};

void KudosWorkflow::RecordCompanyKudosAsync(const std::string& org,
                                            const kudos::v1::RecordCompanyKudosRequest& request,
                                            Deadline deadline, StopCheck stop,
                                            StoreCallback<kudos::v1::Kudos> done) {
  auto s = std::make_shared<CompanyState>();
  s->org = org;
  s->request = &request;
  s->deadline = deadline;
  s->stop = std::move(stop);
  Sequence steps;
  steps.Then([this, s](Done done) {
         store_.GetSettingsAndPeopleAsync(s->org, {s->request->recipient_id()}, s->deadline,
                                          Into(&s->read, std::move(done)));
       })
      .Then([this, s](Done done) { ValidateCompanyAsync(s, std::move(done)); })
      .Then([this, s](Done done) {
        if (s->answer.has_value()) return std::move(done)(absl::OkStatus());
        // Nothing is written before this step: a call stopped here changes nothing.
        if (absl::Status stopped = s->stop(); !stopped.ok()) return std::move(done)(stopped);
        store_.BeginAsync(s->org, s->prepared.begin, s->deadline, Into(&s->outcome, std::move(done)));
      })
      .Then([s]() -> absl::Status {
        if (s->answer.has_value() || s->outcome.is_new ||
            s->outcome.fingerprint == s->prepared.begin.fingerprint) {
          return absl::OkStatus();
        }
        return RequestIdTaken(s->request->request_id(), s->outcome, "company kudos");
      })
      .Then([this, s](Done done) { SettleBegunKudosAsync(s, std::move(done)); });
  std::move(steps).Run([s, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    KUDOS_CHECK(s->answer.has_value(), "a RecordCompanyKudos that ended OK has its kudos");
    KUDOS_CHECK(s->answer->from_company() && s->answer->giver_id().empty(),
                "a company kudos has no giver");
    std::move(done)(*std::move(s->answer));
  });
}

void KudosWorkflow::ValidateCompanyAsync(std::shared_ptr<CompanyState> s, Done done) {
  const kudos::v1::RecordCompanyKudosRequest& request = *s->request;
  absl::Status valid = ValidateCompanyKudos(request, s->read.settings, Directory{s->read.people});
  if (valid.ok()) {
    absl::StatusOr<PreparedRecord> prepared =
        PrepareCompany(s->org, request, s->read.settings, s->read.people);
    if (!prepared.ok()) return std::move(done)(prepared.status());
    s->prepared = *std::move(prepared);
    return std::move(done)(absl::OkStatus());
  }
  if (!ValidateRequestId(request.request_id()).ok()) return std::move(done)(valid);
  // A retry of a kudos recorded earlier returns it even if the directory
  // changed since (the recipient left).
  AnswerEarlierRequestAsync(s, kCompanyActor, CompanyFingerprint(request), std::move(valid),
                            std::move(done));
}

void KudosWorkflow::CompleteAsync(const std::string& org, RecordKind kind, const std::string& id,
                                  const std::string& kudos_id, Deadline deadline, StopCheck stop,
                                  StoreCallback<kudos::v1::Kudos> done) {
  store_.GetRecordAsync(
      org, kind, id, deadline,
      [this, org, kind, id, kudos_id, deadline, stop, done = std::move(done)](
          absl::StatusOr<std::optional<Record>> record) mutable {
        if (!record.ok()) return std::move(done)(record.status());
        if (!record->has_value()) {
          absl::Status missing =
              absl::NotFoundError(absl::StrCat(KindName(kind), " '", id, "' does not exist"));
          if (kind != RecordKind::kKudos) return std::move(done)(missing);
          // A retry whose kudos has moved to the archive (a policy changed
          // in between) still gets its kudos.
          return store_.GetKudosAsync(
              org, kudos_id, deadline,
              [missing, done = std::move(done)](absl::StatusOr<kudos::v1::Kudos> archived) mutable {
                if (archived.ok()) return std::move(done)(std::move(archived));
                std::move(done)(missing);
              });
        }
        SettleRecordAsync(
            org, kind, id, **record, deadline, stop,
            [this, org, kind, id, kudos_id, deadline, done = std::move(done)](
                absl::StatusOr<std::string> state) mutable {
              if (!state.ok()) return std::move(done)(state.status());
              if (*state == "ABORTED") {
                return store_.GetRecordAsync(
                    org, kind, id, deadline,
                    [done = std::move(done)](absl::StatusOr<std::optional<Record>> aborted) mutable {
                      if (!aborted.ok()) return std::move(done)(aborted.status());
                      if (!aborted->has_value()) {
                        return std::move(done)(absl::InternalError("aborted record vanished"));
                      }
                      std::move(done)(StoredError(**aborted));
                    });
              }
              if (!Committed(*state)) {
                return std::move(done)(absl::UnavailableError(
                    "the ledger has not confirmed the points yet; retry with the same request_id"));
              }
              store_.GetKudosAsync(org, kudos_id, deadline, std::move(done));
            });
      });
}

void KudosWorkflow::SettleRecordAsync(const std::string& org, RecordKind kind,
                                      const std::string& id, const Record& record,
                                      Deadline deadline, StopCheck stop,
                                      StoreCallback<std::string> done) {
  if (record.state != "PENDING") return std::move(done)(record.state);
  auto finish = [this, org, kind, id, fields = record.finish, deadline](
                    bool commit, absl::Status error, StoreCallback<std::string> done) {
    store_.FinishAsync(org, kind, id, commit, error, fields, deadline, std::move(done));
  };
  // Issue 18: the 0-point form, answered as kCommittedWithoutPoints.
  auto finish_without_points = [this, org, kind, id, fields = record.finish, deadline](
                                   StoreCallback<std::string> done) {
    FinishFields zero_form = fields;
    zero_form.without_points = true;
    store_.FinishAsync(org, kind, id, /*commit=*/true, absl::OkStatus(), std::move(zero_form),
                       deadline,
                       [done = std::move(done)](absl::StatusOr<std::string> state) mutable {
                         if (state.ok() && *state == "COMMITTED") {
                           return std::move(done)(std::string(kCommittedWithoutPoints));
                         }
                         std::move(done)(std::move(state));
                       });
  };
  const bool may_go_without_points = record.may_go_without_points;
  if (record.transfers_pb.empty()) return finish(true, absl::OkStatus(), std::move(done));
  ledger::v1::PostTransfersRequest transfers;
  if (!transfers.ParseFromString(record.transfers_pb)) {
    return std::move(done)(absl::InternalError("stored transfers cannot be parsed"));
  }
  // A call stopped before the ledger call leaves the record PENDING.
  if (absl::Status stopped = stop(); !stopped.ok()) return std::move(done)(stopped);
  ledger_.PostTransfersAsync(
      org, transfers, deadline,
      [finish, finish_without_points, may_go_without_points,
       done = std::move(done)](absl::Status posted) mutable {
        // Once the ledger answered, the record is finished even if the
        // client has gone (within its deadline): the outcome is known now.
        if (posted.ok()) return finish(true, absl::OkStatus(), std::move(done));
        if (!IsDefinitiveRefusal(posted)) {
          return std::move(done)(absl::UnavailableError(
              absl::StrCat("the ledger did not confirm the points (", posted.message(),
                           "); retry with the same request_id")));
        }
        if (may_go_without_points && AllowanceSpent(posted)) {
          return finish_without_points(std::move(done));
        }
        finish(false, posted, std::move(done));
      });
}

absl::StatusOr<int> KudosWorkflow::ReconcileOnce() {
  absl::StatusOr<std::vector<std::string>> orgs = store_.Orgs();
  if (!orgs.ok()) return orgs.status();
  std::atomic<size_t> next{0};
  std::atomic<int> finished{0};
  auto work = [&] {
    for (size_t i = next++; i < orgs->size(); i = next++) {
      finished += ReconcileOrg((*orgs)[i]);
      SyncProfilesOnce((*orgs)[i]);
    }
  };
  const size_t workers =
      std::min(orgs->size(), static_cast<size_t>(std::max(1, reconciler_.workers)));
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) threads.emplace_back(work);
  work();
  for (std::thread& thread : threads) thread.join();
  return finished.load();
}

int KudosWorkflow::ReconcileOrg(const std::string& org) {
  static thread_local absl::BitGen bits;
  const int64_t now_ms = absl::ToUnixMillis(clock_());
  auto due = store_.DuePending(org, now_ms, reconciler_.batch_per_org);
  if (!due.ok()) {
    common::log::Warning(absl::StrCat("reconciler: org ", org, " skipped this pass: ",
                                      due.status().message()));
    return 0;
  }
  int finished = 0;
  for (const auto& [kind, id] : *due) {
    // Spread retries of records that failed together.
    const int64_t jitter_ms = absl::Uniform<int64_t>(bits, 0, reconciler_.backoff.first_ms / 4 + 1);
    absl::StatusOr<int> attempt =
        store_.ClaimAttempt(org, kind, id, now_ms, reconciler_.backoff, jitter_ms);
    if (!attempt.ok() || *attempt == 0) {
      if (!attempt.ok()) break;  // Redis trouble: this org waits for the next pass
      continue;
    }
    absl::StatusOr<std::string> state = Settle(org, kind, id);
    if (state.ok()) {
      if (*state != "PENDING") ++finished;
      continue;
    }
    const std::string reason(state.status().message());
    absl::StatusOr<bool> dead = store_.AttemptFailed(org, kind, id, *attempt, reconciler_.backoff,
                                                     reason);
    common::log::Warning(absl::StrCat(
        "reconciler: ", KindName(kind), " ", id, " in ", org, " attempt ", *attempt,
        dead.ok() && *dead ? " failed for the last time (dead-lettered): " : " failed: ", reason));
    // The ledger is unreachable or slow: the org's other records wait for
    // the next pass instead of each spending a deadline now.
    if (state.status().code() == absl::StatusCode::kUnavailable) break;
  }
  return finished;
}

int KudosWorkflow::SyncProfilesOnce(const std::string& org) {
  absl::StatusOr<std::vector<KudosStore::ProfileToSync>> queued =
      store_.ProfilesToSync(org, reconciler_.profiles_per_org);
  if (!queued.ok()) {
    common::log::Warning(absl::StrCat("profile mirror: org ", org, " skipped this pass: ",
                                      queued.status().message()));
    return 0;
  }
  int synced = 0;
  for (const KudosStore::ProfileToSync& person : *queued) {
    absl::Status status = SyncProfile(org, person);
    if (IsRefusedProfile(status)) {
      // A final answer (e.g. the org's profile bound): retrying cannot help;
      // the person is queued again by their next directory write.
      common::log::Warning(absl::StrCat("profile mirror: ", person.person_id, " in ", org,
                                        " refused by the ledger: ", status.ToString()));
      status = store_.FinishProfileSync(org, person);
      if (status.ok()) continue;
    }
    if (!status.ok()) {
      // The ledger (or Redis) is failing: the rest stay queued for the next
      // pass instead of each spending a deadline now.
      common::log::Warning(absl::StrCat("profile mirror: ", person.person_id, " in ", org,
                                        " stays queued: ", status.ToString()));
      break;
    }
    ++synced;
  }
  return synced;
}

absl::Status KudosWorkflow::SyncProfile(const std::string& org,
                                        const KudosStore::ProfileToSync& queued) {
  // Read after the version was: a write since then queued a newer version,
  // which FinishProfileSync leaves queued.
  absl::StatusOr<std::optional<KudosStore::ProfileSource>> source =
      store_.ReadProfileSource(org, queued.person_id);
  if (!source.ok()) return source.status();
  if (source->has_value()) {
    absl::StatusOr<ledger::v1::AllowanceProfile> profile =
        ledger_.GetAllowanceProfile(org, queued.person_id);
    if (!profile.ok()) return profile.status();
    KUDOS_CHECK(profile->person_id().empty() || profile->person_id() == queued.person_id,
                "the ledger answers the profile asked for");
    profile->set_person_id(queued.person_id);
    profile->set_team_id((*source)->team_id);
    // The ledger's bound; the directory's count stays below it in practice.
    profile->set_direct_reports(
        static_cast<int32_t>(std::min<int64_t>((*source)->direct_reports, kMaxDirectReports)));
    if (absl::Status set = ledger_.SetAllowanceProfile(org, *profile); !set.ok()) return set;
  }
  return store_.FinishProfileSync(org, queued);
}

}  // namespace kudos
