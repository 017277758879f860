#include "services/programs/awards_service.h"

#include <utility>

#include "common/grpc/status.h"

namespace programs {
namespace {

using common::grpc_util::ToGrpcStatus;

// People only: services and screens neither read nor write awards.
absl::Status RequirePerson(const common::auth::Principal& who) {
  if (who.is_service() || who.is_screen_only()) {
    return absl::PermissionDeniedError("awards: people only, not services or screens");
  }
  return absl::OkStatus();
}

}  // namespace

#define PROGRAMS_AUTHENTICATE(who)                                        \
  absl::StatusOr<common::auth::Principal> who = guard_.Authenticate(*context); \
  if (!who.ok()) return ToGrpcStatus(who.status());                       \
  if (absl::Status s = RequirePerson(*who); !s.ok()) return ToGrpcStatus(s)

grpc::Status AwardServiceImpl::CreateAward(grpc::ServerContext* context,
                                           const v1::CreateAwardRequest* request,
                                           v1::CreateAwardResponse* response) {
  PROGRAMS_AUTHENTICATE(who);
  absl::StatusOr<v1::CreateAwardResponse> created =
      book_.CreateAward(*who, request->award(), clock_());
  if (!created.ok()) return ToGrpcStatus(created.status());
  *response = *std::move(created);
  return grpc::Status::OK;
}

grpc::Status AwardServiceImpl::GetAward(grpc::ServerContext* context,
                                        const v1::GetAwardRequest* request,
                                        v1::GetAwardResponse* response) {
  PROGRAMS_AUTHENTICATE(who);
  absl::StatusOr<v1::Award> award = book_.GetAward(*who, request->award_id());
  if (!award.ok()) return ToGrpcStatus(award.status());
  *response->mutable_award() = *std::move(award);
  return grpc::Status::OK;
}

grpc::Status AwardServiceImpl::ListAwards(grpc::ServerContext* context,
                                          const v1::ListAwardsRequest* request,
                                          v1::ListAwardsResponse* response) {
  PROGRAMS_AUTHENTICATE(who);
  absl::StatusOr<v1::ListAwardsResponse> listed = book_.ListAwards(*who, *request);
  if (!listed.ok()) return ToGrpcStatus(listed.status());
  *response = *std::move(listed);
  return grpc::Status::OK;
}

grpc::Status AwardServiceImpl::Nominate(grpc::ServerContext* context,
                                        const v1::NominateRequest* request,
                                        v1::NominateResponse* response) {
  PROGRAMS_AUTHENTICATE(who);
  absl::StatusOr<v1::NominateResponse> nominated = book_.Nominate(*who, *request, clock_());
  if (!nominated.ok()) return ToGrpcStatus(nominated.status());
  *response = *std::move(nominated);
  return grpc::Status::OK;
}

grpc::Status AwardServiceImpl::ListNominations(grpc::ServerContext* context,
                                               const v1::ListNominationsRequest* request,
                                               v1::ListNominationsResponse* response) {
  PROGRAMS_AUTHENTICATE(who);
  absl::StatusOr<v1::ListNominationsResponse> listed = book_.ListNominations(*who, *request);
  if (!listed.ok()) return ToGrpcStatus(listed.status());
  *response = *std::move(listed);
  return grpc::Status::OK;
}

template <typename Request>
grpc::Status AwardServiceImpl::DecideBody(grpc::ServerContext* context, const Request& request,
                                          bool approve, v1::Nomination* out) {
  PROGRAMS_AUTHENTICATE(who);
  DecisionInput input;
  input.request_id = request.request_id();
  input.award_id = request.award_id();
  input.nomination_id = request.nomination_id();
  input.stage = request.stage();
  input.comment = request.comment();
  input.approve = approve;
  absl::StatusOr<v1::Nomination> nomination = book_.Decide(*who, input, clock_());
  if (!nomination.ok()) return ToGrpcStatus(nomination.status());
  *out = *std::move(nomination);
  return grpc::Status::OK;
}

grpc::Status AwardServiceImpl::ApproveNomination(grpc::ServerContext* context,
                                                 const v1::ApproveNominationRequest* request,
                                                 v1::ApproveNominationResponse* response) {
  return DecideBody(context, *request, true, response->mutable_nomination());
}

grpc::Status AwardServiceImpl::DeclineNomination(grpc::ServerContext* context,
                                                 const v1::DeclineNominationRequest* request,
                                                 v1::DeclineNominationResponse* response) {
  return DecideBody(context, *request, false, response->mutable_nomination());
}

grpc::Status AwardServiceImpl::SelectWinners(grpc::ServerContext* context,
                                             const v1::SelectWinnersRequest* request,
                                             v1::SelectWinnersResponse* response) {
  PROGRAMS_AUTHENTICATE(who);
  absl::StatusOr<v1::Award> reserved = book_.ReserveWinners(*who, *request, clock_());
  if (!reserved.ok()) return ToGrpcStatus(reserved.status());
  // Pays now; a retry of this request (or the sweep) finishes what is left.
  absl::StatusOr<v1::Award> award =
      payments_.Finish(who->org, reserved->award_id(), who->subject, clock_());
  if (!award.ok()) return ToGrpcStatus(award.status());
  *response->mutable_award() = *std::move(award);
  return grpc::Status::OK;
}

#undef PROGRAMS_AUTHENTICATE

}  // namespace programs
