#include "services/programs/awards_payments.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "absl/time/clock.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "services/programs/budget_rules.h"
#include "services/programs/programs_host.h"

namespace programs {
namespace {

using Kind = WriteOutcome::Kind;

// A definite "no" that proves nothing was posted: only the post script's own
// refusals, which it gives after recognising a replay of the same transfer
// ids (a replay answers OK). A refusal before the script (authentication,
// validation by a ledger of another version, a local token error) may follow
// an earlier attempt that did post, so it is not proof: the award stays
// PAYING and a retry or the sweep tries again. ALREADY_EXISTS means one of
// the ids was posted with other content: never released either.
bool IsDefiniteRefusal(absl::StatusCode code) {
  return code == absl::StatusCode::kFailedPrecondition || code == absl::StatusCode::kOutOfRange;
}

}  // namespace

PostAwardTransfers LedgerPoster(
    std::shared_ptr<grpc::Channel> channel,
    std::function<absl::StatusOr<std::string>(absl::string_view)> authorization,
    std::chrono::milliseconds timeout) {
  auto stub = std::shared_ptr<ledger::v1::LedgerService::Stub>(
      ledger::v1::LedgerService::NewStub(channel));
  return [stub, authorization = std::move(authorization), timeout](
             const std::string& org, const ledger::v1::PostTransfersRequest& request) {
    absl::StatusOr<std::string> bearer = authorization(org);
    if (!bearer.ok()) return bearer.status();
    grpc::ClientContext context;
    common::grpc_util::SetDeadline(context, timeout);
    context.AddMetadata("authorization", *bearer);
    ledger::v1::PostTransfersResponse response;
    grpc::Status status = stub->PostTransfers(&context, request, &response);
    if (!status.ok()) return common::grpc_util::FromGrpcStatus(status);
    // Linked: every result is OK when the call is. A ledger answering
    // otherwise (another version mid-rollout) is not proof of anything: the
    // award stays PAYING rather than the process aborting on every replica.
    for (const ledger::v1::TransferResult& result : response.results()) {
      if (result.status_code() != 0) {
        return absl::InternalError(absl::StrCat(
            "the ledger answered a linked post OK with a failed transfer (code ",
            result.status_code(), ")"));
      }
    }
    return absl::OkStatus();
  };
}

ledger::v1::PostTransfersRequest AwardTransfers(const v1::Award& award) {
  ledger::v1::PostTransfersRequest request;
  request.set_linked(true);
  for (const v1::Winner& winner : award.winners()) {
    ledger::v1::Transfer* transfer = request.add_transfers();
    transfer->set_transfer_id(winner.transfer_id());
    transfer->mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ISSUER);
    transfer->mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    transfer->mutable_credit_account()->set_person_id(winner.person_id());
    transfer->set_amount(winner.points());
    transfer->set_kind(ledger::v1::TRANSFER_KIND_AWARD);
    transfer->set_reference(award.award_id());
    (*transfer->mutable_tags())["award"] = award.award_id();
    (*transfer->mutable_tags())["budget"] = award.budget_id();
  }
  return request;
}

absl::StatusOr<v1::Award> AwardPayments::Finish(const std::string& org,
                                                const std::string& award_id,
                                                absl::string_view actor, absl::Time now) {
  absl::StatusOr<std::pair<Record, v1::Award>> read = book_.ReadAward(org, award_id);
  if (!read.ok()) return read.status();
  const v1::Award& award = read->second;
  if (award.state() != v1::AWARD_STATE_PAYING) return award;
  KUDOS_CHECK(award.winners_size() > 0, "a PAYING award has its winners");
  absl::Status posted = post_(org, AwardTransfers(award));
  if (posted.ok()) return Settle(org, award_id, true, "", actor, now);
  if (IsDefiniteRefusal(posted.code())) {
    absl::StatusOr<v1::Award> released =
        Settle(org, award_id, false, std::string(posted.message()), actor, now);
    if (!released.ok()) return released.status();
    return absl::FailedPreconditionError(
        absl::StrCat("award '", award_id, "': the ledger refused the payment (",
                     absl::StatusCodeToString(posted.code()), ": ", posted.message(),
                     "); the points are back in the budget"));
  }
  return absl::UnavailableError(absl::StrCat(
      "award '", award_id, "': payment in flight (ledger: ", posted.message(),
      "); a retry with the same request_id, or the sweep, finishes it"));
}

absl::StatusOr<v1::Award> AwardPayments::Settle(const std::string& org,
                                                const std::string& award_id, bool paid,
                                                const std::string& error,
                                                absl::string_view actor, absl::Time now) {
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    absl::StatusOr<std::pair<Record, v1::Award>> read = book_.ReadAward(org, award_id);
    if (!read.ok()) return read.status();
    auto& [award_record, award] = *read;
    if (award.state() != v1::AWARD_STATE_PAYING) return std::move(award);  // another finisher
    absl::StatusOr<std::pair<Record, v1::Budget>> budget_read =
        book_.ReadBudget(org, award.budget_id());
    if (!budget_read.ok()) return budget_read.status();
    auto& [budget_record, budget] = *budget_read;
    int64_t total = 0;
    for (const v1::Winner& winner : award.winners()) total += winner.points();
    absl::StatusOr<bool> rolled = RollOver(budget, now);
    if (!rolled.ok()) return rolled.status();
    KUDOS_CHECK(budget.reserved() >= total, "a PAYING award's points are reserved in its budget");
    budget.set_reserved(budget.reserved() - total);
    if (paid) {
      award.set_state(v1::AWARD_STATE_PAID);
      for (v1::Winner& winner : *award.mutable_winners()) {
        winner.set_state(v1::WINNER_STATE_PAID);
      }
    } else {
      budget.set_spent(std::max<int64_t>(budget.spent() - total, 0));
      award.set_state(v1::AWARD_STATE_OPEN);
      award.clear_winners();
      award.set_last_payment_error(error);
    }
    budget.set_remaining(budget.amount_per_period() - budget.spent());
    WriteBatch batch(org);
    batch.Put(keys::Award(org, award_id), award_record.version, award.SerializeAsString());
    batch.Put(keys::Budget(org, budget.budget_id()), budget_record.version,
              budget.SerializeAsString());
    v1::BudgetHistoryEntry entry;
    *entry.mutable_time() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(now));
    entry.set_action(paid ? "paid" : "released");
    entry.set_actor(std::string(actor));
    entry.set_points(total);
    entry.set_period(budget.period());
    entry.set_award_id(award_id);
    entry.set_spent_after(budget.spent());
    batch.Append(keys::BudgetHistory(org, budget.budget_id()), kMaxHistory, "e",
                 entry.SerializeAsString());
    batch.ZRem(keys::Payments(org), award_id);
    batch.Audit(actor, paid ? "award.paid" : "award.payment_released", award_id,
                paid ? absl::StrCat(award.winners_size(), " winners, ", total, " points")
                     : error,
                now);
    absl::StatusOr<WriteOutcome> outcome = book_.store().Write(batch);
    if (!outcome.ok()) return outcome.status();
    if (outcome->kind == Kind::kConflict) continue;
    if (absl::Status s = OutcomeStatus(*outcome, "payment"); !s.ok()) return s;
    return std::move(award);
  }
  return absl::AbortedError("payment: changed concurrently too often; the sweep retries");
}

absl::StatusOr<SweepStats> AwardPayments::RunOnce(const std::string& org, absl::Time now,
                                                  absl::Duration grace, int limit) {
  absl::StatusOr<std::vector<std::string>> due =
      book_.store().RangeByScore(keys::Payments(org), ToMillis(now - grace), limit);
  if (!due.ok()) return due.status();
  SweepStats stats;
  for (const std::string& award_id : *due) {
    absl::StatusOr<v1::Award> award = Finish(org, award_id, kServiceName, now);
    if (award.ok() || absl::IsFailedPrecondition(award.status())) {
      ++stats.finished;
    } else {
      ++stats.pending;
    }
  }
  return stats;
}

void RunPaymentSweep(AwardPayments& payments, common::redis::OrgRegistry& registry,
                     absl::Duration interval, const absl::Notification& stop) {
  while (!stop.WaitForNotificationWithTimeout(interval)) {
    absl::StatusOr<std::vector<std::string>> orgs = registry.Orgs();
    if (!orgs.ok()) continue;
    for (const std::string& org : *orgs) {
      if (stop.HasBeenNotified()) return;
      absl::StatusOr<SweepStats> stats = payments.RunOnce(org, absl::Now());
      if (!stats.ok()) {
        common::log::Error(
            absl::StrCat("awards sweep: org ", org, ": ", stats.status().ToString()));
      } else if (stats->pending > 0) {
        common::log::Info(absl::StrCat("awards sweep: org ", org, ": ", stats->pending,
                                       " payments still in flight"));
      }
    }
  }
}

}  // namespace programs
