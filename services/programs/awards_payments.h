// Paying an award's winners (issue 18, part 4): reserve (AwardsBook::
// ReserveWinners) -> pay (ledger.v1.LedgerService.PostTransfers, linked,
// ISSUER -> EARNED, kind AWARD, transfer ids "award:<award>:<winner>") ->
// commit (award PAID, the budget's reservation turned into spending). The
// ledger applies a transfer id at most once, so paying again after a crash,
// a timeout or on another replica never pays twice; the commit is a
// compare-and-set, so only one finisher records it. A definite refusal by the
// ledger releases the reservation (the award is OPEN again, with the error).
// The sweep finishes every payment left in flight (programs:{org}:payments).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "programs/v1/awards.pb.h"
#include "services/programs/awards_store.h"

namespace programs {

// The ledger's answer to the award's transfers: OK (posted now or before),
// or the status of the call.
using PostAwardTransfers =
    std::function<absl::Status(const std::string& org, const ledger::v1::PostTransfersRequest&)>;

// PostTransfers over `channel` with the service token of `authorization(org)`
// and a deadline of `timeout`.
PostAwardTransfers LedgerPoster(std::shared_ptr<grpc::Channel> channel,
                                std::function<absl::StatusOr<std::string>(absl::string_view)>
                                    authorization,
                                std::chrono::milliseconds timeout);

// The linked request paying every winner of `award`.
ledger::v1::PostTransfersRequest AwardTransfers(const v1::Award& award);

struct SweepStats {
  int finished = 0;  // payments committed or released
  int pending = 0;   // still in flight (the ledger did not answer)
};

class AwardPayments {
 public:
  AwardPayments(AwardsBook& book, PostAwardTransfers post) : book_(book), post_(std::move(post)) {}

  // Pays and commits `award_id` if it is PAYING; returns the award as it is
  // then. UNAVAILABLE (the payment stays in flight, the sweep finishes it)
  // when the ledger's answer is unknown; FAILED_PRECONDITION with the
  // ledger's reason when it refused (the reservation is released).
  absl::StatusOr<v1::Award> Finish(const std::string& org, const std::string& award_id,
                                   absl::string_view actor, absl::Time now);
  // One pass over `org`'s payments started before `now - grace`, at most
  // `limit` of them. Safe on several replicas at once.
  absl::StatusOr<SweepStats> RunOnce(const std::string& org, absl::Time now,
                                     absl::Duration grace = absl::Seconds(2), int limit = 100);

 private:
  // Commits (paid = true) or releases the reservation, if still PAYING.
  absl::StatusOr<v1::Award> Settle(const std::string& org, const std::string& award_id,
                                   bool paid, const std::string& error, absl::string_view actor,
                                   absl::Time now);

  AwardsBook& book_;
  PostAwardTransfers post_;
};

// Every `interval`, RunOnce for every org the registry knows, until `stop`.
void RunPaymentSweep(AwardPayments& payments, common::redis::OrgRegistry& registry,
                     absl::Duration interval, const absl::Notification& stop);

}  // namespace programs
