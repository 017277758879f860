// Budgets, awards and nominations over ProgramsStore (programs_store.h): each
// operation reads what it needs, decides with budget_rules/awards_rules, and
// writes one checked batch (records compare-and-set on their versions, a
// conflict re-reads and retries a bounded number of times). Every mutating
// operation is idempotent by the caller's request id (or the resource id for
// creations) and audited. `now` is injected (tests move time).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "programs/v1/awards.pb.h"
#include "services/programs/awards_rules.h"
#include "services/programs/programs_store.h"

namespace programs {

// Compare-and-set attempts of one operation before ABORTED.
inline constexpr int kMaxWriteAttempts = 8;

class AwardsBook {
 public:
  explicit AwardsBook(ProgramsStore& store) : store_(store) {}

  // Budgets. `budget.time_zone` must be resolved already.
  absl::StatusOr<v1::CreateBudgetResponse> CreateBudget(const common::auth::Principal& who,
                                                        const v1::Budget& budget, absl::Time now);
  absl::StatusOr<v1::Budget> UpdateBudget(const common::auth::Principal& who,
                                          const v1::UpdateBudgetRequest& request, absl::Time now);
  absl::StatusOr<v1::Budget> GetBudget(const common::auth::Principal& who,
                                       const std::string& budget_id, absl::Time now);
  absl::StatusOr<std::vector<v1::Budget>> ListBudgets(const common::auth::Principal& who,
                                                      absl::Time now);
  absl::StatusOr<std::vector<v1::BudgetHistoryEntry>> History(const common::auth::Principal& who,
                                                              const std::string& budget_id,
                                                              int page_size, absl::Time now);

  // Awards and nominations.
  absl::StatusOr<v1::CreateAwardResponse> CreateAward(const common::auth::Principal& who,
                                                      const v1::Award& award, absl::Time now);
  absl::StatusOr<v1::Award> GetAward(const common::auth::Principal& who,
                                     const std::string& award_id);
  absl::StatusOr<v1::ListAwardsResponse> ListAwards(const common::auth::Principal& who,
                                                    const v1::ListAwardsRequest& request);
  absl::StatusOr<v1::NominateResponse> Nominate(const common::auth::Principal& who,
                                                const v1::NominateRequest& request,
                                                absl::Time now);
  absl::StatusOr<v1::ListNominationsResponse> ListNominations(
      const common::auth::Principal& who, const v1::ListNominationsRequest& request);
  absl::StatusOr<v1::Nomination> Decide(const common::auth::Principal& who,
                                        const DecisionInput& input, absl::Time now);
  // Step one of SelectWinners: checks, reserves the points in the budget and
  // marks the award PAYING with its winners (one atomic write, indexed in
  // programs:{org}:payments). A retry of the same request returns the award
  // as it is now. Paying is AwardPayments::Finish (awards_payments.h).
  absl::StatusOr<v1::Award> ReserveWinners(const common::auth::Principal& who,
                                           const v1::SelectWinnersRequest& request,
                                           absl::Time now);

  // Reads for the payment step (no permission check: internal).
  absl::StatusOr<std::pair<Record, v1::Award>> ReadAward(const std::string& org,
                                                         const std::string& award_id);
  absl::StatusOr<std::pair<Record, v1::Budget>> ReadBudget(const std::string& org,
                                                           const std::string& budget_id);

  ProgramsStore& store() { return store_; }

 private:
  // The result of a retried request (`subject`'s `request_id`) when its
  // fingerprint matches; ALREADY_EXISTS when the id was used for another
  // payload; nullopt when new.
  absl::StatusOr<std::optional<std::string>> PriorResult(const std::string& org,
                                                         const std::string& subject,
                                                         const std::string& request_id,
                                                         const std::string& fingerprint);
  absl::StatusOr<std::vector<v1::Nomination>> ReadNominations(const std::string& org,
                                                              const std::string& award_id);

  ProgramsStore& store_;
};

// The request's bytes as its fingerprint (deterministic serialization).
std::string Fingerprint(const google::protobuf::Message& request);
// A status for a write that did not apply (besides kOk / kDone).
absl::Status OutcomeStatus(const WriteOutcome& outcome, absl::string_view what);
int64_t ToMillis(absl::Time t);

}  // namespace programs
