#include "services/programs/awards_rules.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/auth/ids.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "services/programs/budget_rules.h"

namespace programs {
namespace {

using google::protobuf::RepeatedPtrField;

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::Status CheckIds(absl::string_view field, const RepeatedPtrField<std::string>& ids, int max) {
  if (ids.empty() || ids.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": 1..", max, " people, got ", ids.size()));
  }
  std::set<std::string> seen;
  for (int i = 0; i < ids.size(); ++i) {
    std::string name = absl::StrCat(field, "[", i, "]");
    if (absl::Status s = common::auth::CheckId(name, ids[i]); !s.ok()) return s;
    if (!seen.insert(ids[i]).second) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": '", ids[i], "' twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckNominators(const v1::Award& award) {
  switch (award.nominator_rule()) {
    case v1::NOMINATOR_RULE_EVERYONE:
      return absl::OkStatus();
    case v1::NOMINATOR_RULE_ROLES:
      if (award.nominator_roles().empty() || award.nominator_roles().size() > 5) {
        return absl::InvalidArgumentError("award.nominator_roles: 1..5 of member, manager, admin");
      }
      for (const std::string& role : award.nominator_roles()) {
        if (role != "member" && role != "manager" && role != "admin") {
          return absl::InvalidArgumentError(absl::StrCat(
              "award.nominator_roles: '", role, "' is not one of member, manager, admin"));
        }
      }
      return absl::OkStatus();
    case v1::NOMINATOR_RULE_LIST:
      return CheckIds("award.nominator_ids", award.nominator_ids(), kMaxNominatorIds);
    default:
      return absl::InvalidArgumentError("award.nominator_rule: EVERYONE, ROLES or LIST");
  }
}

absl::Status CheckStages(const v1::Award& award) {
  if (award.stages().empty() || award.stages().size() > kMaxStages) {
    return absl::InvalidArgumentError(absl::StrCat("award.stages: 1..", kMaxStages,
                                                   " stages, got ", award.stages().size()));
  }
  for (int i = 0; i < award.stages().size(); ++i) {
    const v1::ApprovalStage& stage = award.stages(i);
    if (stage.name().empty() || stage.name().size() > 64) {
      return absl::InvalidArgumentError(absl::StrCat("award.stages[", i, "].name: 1..64 bytes"));
    }
    if (absl::Status s = CheckIds(absl::StrCat("award.stages[", i, "].approver_ids"),
                                  stage.approver_ids(), kMaxApproversPerStage);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

bool HasRole(const common::auth::Principal& who, absl::string_view role) {
  if (role == "member") return who.Has(common::auth::Role::kMember);
  if (role == "manager") return who.Has(common::auth::Role::kManager);
  if (role == "admin") return who.Has(common::auth::Role::kAdmin);
  return false;
}

bool IsApprover(const v1::Award& award, absl::string_view person) {
  for (const v1::ApprovalStage& stage : award.stages()) {
    for (const std::string& id : stage.approver_ids()) {
      if (id == person) return true;
    }
  }
  return false;
}

}  // namespace

absl::Status ValidateAward(const v1::Award& award) {
  if (absl::Status s = common::auth::CheckId("award.award_id", award.award_id()); !s.ok()) {
    return s;
  }
  if (award.name().empty() || award.name().size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("award.name: 1..", kMaxNameBytes, " bytes"));
  }
  if (award.description().size() > kMaxDescriptionBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("award.description: at most ", kMaxDescriptionBytes, " bytes"));
  }
  if (absl::Status s = common::auth::CheckId("award.budget_id", award.budget_id()); !s.ok()) {
    return s;
  }
  if (!award.has_nomination_start() || !award.has_nomination_end() ||
      ToTime(award.nomination_end()) <= ToTime(award.nomination_start())) {
    return absl::InvalidArgumentError(
        "award.nomination_end: required, after award.nomination_start (also required)");
  }
  if (absl::Status s = CheckNominators(award); !s.ok()) return s;
  if (absl::Status s = CheckStages(award); !s.ok()) return s;
  if (award.number_of_winners() < 1 || award.number_of_winners() > kMaxWinners) {
    return absl::InvalidArgumentError(absl::StrCat("award.number_of_winners: 1..", kMaxWinners,
                                                   ", got ", award.number_of_winners()));
  }
  if (award.points_per_winner() < 1 || award.points_per_winner() > kMaxPointsPerWinner) {
    return absl::InvalidArgumentError(absl::StrCat("award.points_per_winner: 1..",
                                                   kMaxPointsPerWinner, ", got ",
                                                   award.points_per_winner()));
  }
  return absl::OkStatus();
}

absl::Status CanManageAward(const common::auth::Principal& who, const v1::Budget& budget) {
  if (who.is_admin() && !who.is_service()) return absl::OkStatus();
  if (IsBudgetOwner(budget, who.subject)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "award: only admins and the owners of budget '", budget.budget_id(), "' may do this"));
}

absl::Status CanNominate(const common::auth::Principal& who, const v1::Award& award,
                         absl::string_view nominee_id) {
  if (who.is_service() || who.is_screen_only()) {
    return absl::PermissionDeniedError("Nominate: people nominate, not services or screens");
  }
  if (who.subject == nominee_id) {
    return absl::InvalidArgumentError("nominee_id: you cannot nominate yourself");
  }
  switch (award.nominator_rule()) {
    case v1::NOMINATOR_RULE_EVERYONE:
      return absl::OkStatus();
    case v1::NOMINATOR_RULE_ROLES:
      for (const std::string& role : award.nominator_roles()) {
        if (HasRole(who, role)) return absl::OkStatus();
      }
      break;
    case v1::NOMINATOR_RULE_LIST:
      for (const std::string& id : award.nominator_ids()) {
        if (id == who.subject) return absl::OkStatus();
      }
      break;
    default:
      break;
  }
  return absl::PermissionDeniedError(absl::StrCat("award '", award.award_id(), "': '",
                                                  who.subject, "' may not nominate for it"));
}

absl::Status CheckNominationWindow(const v1::Award& award, absl::Time now) {
  if (award.state() != v1::AWARD_STATE_OPEN) {
    return absl::FailedPreconditionError(
        absl::StrCat("award '", award.award_id(), "': winners are already selected"));
  }
  absl::Time start = ToTime(award.nomination_start());
  absl::Time end = ToTime(award.nomination_end());
  if (now < start) {
    return absl::FailedPreconditionError(
        absl::StrCat("award '", award.award_id(), "': nominations open at ",
                     absl::FormatTime(absl::RFC3339_sec, start, absl::UTCTimeZone())));
  }
  if (now >= end) {
    return absl::FailedPreconditionError(
        absl::StrCat("award '", award.award_id(), "': nominations closed at ",
                     absl::FormatTime(absl::RFC3339_sec, end, absl::UTCTimeZone())));
  }
  return absl::OkStatus();
}

absl::Status ValidateNomination(const v1::NominateRequest& request) {
  if (absl::Status s = ValidateRequestId(request.request_id()); !s.ok()) return s;
  if (absl::Status s = common::auth::CheckId("award_id", request.award_id()); !s.ok()) return s;
  if (absl::Status s = common::auth::CheckId("nominee_id", request.nominee_id()); !s.ok()) {
    return s;
  }
  if (request.reason().empty() || request.reason().size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("reason: 1..", kMaxReasonBytes, " bytes, got ", request.reason().size()));
  }
  return absl::OkStatus();
}

bool SeesAllNominations(const common::auth::Principal& who, const v1::Award& award,
                        const v1::Budget& budget) {
  if (who.is_admin() && !who.is_service()) return true;
  return IsApprover(award, who.subject) || IsBudgetOwner(budget, who.subject);
}

absl::Status ValidateDecision(const DecisionInput& input) {
  if (absl::Status s = ValidateRequestId(input.request_id); !s.ok()) return s;
  if (absl::Status s = common::auth::CheckId("award_id", input.award_id); !s.ok()) return s;
  if (absl::Status s = common::auth::CheckId("nomination_id", input.nomination_id); !s.ok()) {
    return s;
  }
  if (input.stage < 0 || input.stage >= kMaxStages) {
    return absl::InvalidArgumentError(absl::StrCat("stage: 0..", kMaxStages - 1));
  }
  if (input.comment.size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError(absl::StrCat("comment: at most ", kMaxReasonBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status Decide(const v1::Award& award, const DecisionInput& input,
                    absl::string_view approver, absl::Time now, v1::Nomination& nomination) {
  if (award.state() != v1::AWARD_STATE_OPEN) {
    return absl::FailedPreconditionError(
        absl::StrCat("award '", award.award_id(), "': winners are already selected"));
  }
  if (input.stage >= award.stages().size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("stage: the award has ", award.stages().size(), " stages (0-based)"));
  }
  const v1::ApprovalStage& stage = award.stages(input.stage);
  if (std::find(stage.approver_ids().begin(), stage.approver_ids().end(), approver) ==
      stage.approver_ids().end()) {
    return absl::PermissionDeniedError(absl::StrCat("stage ", input.stage, " ('", stage.name(),
                                                    "'): '", approver, "' is not an approver"));
  }
  if (nomination.state() != v1::NOMINATION_STATE_PENDING) {
    return absl::FailedPreconditionError(
        absl::StrCat("nomination '", nomination.nomination_id(), "' is already ",
                     v1::NominationState_Name(nomination.state())));
  }
  if (nomination.current_stage() != input.stage) {
    return absl::FailedPreconditionError(
        absl::StrCat("stage: nomination '", nomination.nomination_id(), "' waits for stage ",
                     nomination.current_stage(), ", not ", input.stage));
  }
  v1::Decision* decision = nomination.add_decisions();
  decision->set_stage(input.stage);
  decision->set_approver_id(std::string(approver));
  decision->set_approved(input.approve);
  decision->set_comment(input.comment);
  *decision->mutable_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(now));
  if (!input.approve) {
    nomination.set_state(v1::NOMINATION_STATE_DECLINED);
  } else if (input.stage + 1 == award.stages().size()) {
    nomination.set_state(v1::NOMINATION_STATE_APPROVED);
  } else {
    nomination.set_current_stage(input.stage + 1);
  }
  return absl::OkStatus();
}

absl::Status ValidateWinners(const v1::Award& award,
                             const google::protobuf::RepeatedPtrField<std::string>& winner_ids,
                             const std::vector<std::string>& approved_nominees) {
  if (winner_ids.empty() || winner_ids.size() > award.number_of_winners()) {
    return absl::InvalidArgumentError(absl::StrCat("winner_ids: 1..", award.number_of_winners(),
                                                   " people, got ", winner_ids.size()));
  }
  std::set<std::string> seen;
  for (int i = 0; i < winner_ids.size(); ++i) {
    std::string field = absl::StrCat("winner_ids[", i, "]");
    if (absl::Status s = common::auth::CheckId(field, winner_ids[i]); !s.ok()) return s;
    if (!seen.insert(winner_ids[i]).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": '", winner_ids[i], "' twice"));
    }
    if (std::find(approved_nominees.begin(), approved_nominees.end(), winner_ids[i]) ==
        approved_nominees.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          field, ": '", winner_ids[i], "' has no nomination approved by every stage"));
    }
  }
  return absl::OkStatus();
}

std::string WinnerTransferId(absl::string_view award_id, absl::string_view person_id) {
  return absl::StrCat("award:", award_id, ":", person_id);
}

bool SameAwardDefinition(const v1::Award& a, const v1::Award& b) {
  v1::Award x = a;
  v1::Award y = b;
  for (v1::Award* award : {&x, &y}) {
    award->clear_state();
    award->clear_winners();
    award->clear_created_by();
    award->clear_create_time();
    award->clear_last_payment_error();
  }
  return google::protobuf::util::MessageDifferencer::Equals(x, y);
}

}  // namespace programs
