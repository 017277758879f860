// Awards and nominations (issue 18, part 4): validation, who may do what,
// and the state transitions, plain C++ (no Redis, no gRPC).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "programs/v1/awards.pb.h"

namespace programs {

inline constexpr size_t kMaxDescriptionBytes = 2000;
inline constexpr size_t kMaxReasonBytes = 1000;
inline constexpr int kMaxStages = 5;
inline constexpr int kMaxApproversPerStage = 20;
inline constexpr int kMaxNominatorIds = 200;
inline constexpr int kMaxWinners = 100;
inline constexpr int64_t kMaxPointsPerWinner = 1000000;

// A new award as its creator sends it.
absl::Status ValidateAward(const v1::Award& award);
// Admins, or an owner of the budget that pays it.
absl::Status CanManageAward(const common::auth::Principal& who, const v1::Budget& budget);
// The award's nominator rule, and not oneself.
absl::Status CanNominate(const common::auth::Principal& who, const v1::Award& award,
                         absl::string_view nominee_id);
// [nomination_start, nomination_end), and the award still OPEN.
absl::Status CheckNominationWindow(const v1::Award& award, absl::Time now);
absl::Status ValidateNomination(const v1::NominateRequest& request);
// Sees every nomination: admins, approvers, the budget's owners.
bool SeesAllNominations(const common::auth::Principal& who, const v1::Award& award,
                        const v1::Budget& budget);

struct DecisionInput {
  std::string request_id;
  std::string award_id;
  std::string nomination_id;
  int32_t stage = 0;
  std::string comment;
  bool approve = false;
};
absl::Status ValidateDecision(const DecisionInput& input);
// Applies an approver's decision to `nomination` (PENDING, at input.stage,
// the approver in that stage's list): FAILED_PRECONDITION / PERMISSION_DENIED
// otherwise.
absl::Status Decide(const v1::Award& award, const DecisionInput& input,
                    absl::string_view approver, absl::Time now, v1::Nomination& nomination);

// Winners among `approved_nominees`: 1..number_of_winners distinct ids.
absl::Status ValidateWinners(const v1::Award& award,
                             const google::protobuf::RepeatedPtrField<std::string>& winner_ids,
                             const std::vector<std::string>& approved_nominees);
// "award:<award_id>:<person_id>": stable, so a retry posts the same transfer.
std::string WinnerTransferId(absl::string_view award_id, absl::string_view person_id);

// The same payload (for idempotent creation): the fields a caller sets.
bool SameAwardDefinition(const v1::Award& a, const v1::Award& b);

}  // namespace programs
