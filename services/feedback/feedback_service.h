// The gRPC layer of feedback.v1.FeedbackService (hosted by the kudos
// binary): authenticate, check the role, validate, call the store, map the
// status. The Do* functions take an authenticated principal and an injected
// clock, so tests can drive them directly too.
#pragma once

#include <functional>

#include <grpcpp/grpcpp.h>

#include "common/auth/guard.h"
#include "feedback/v1/feedback.grpc.pb.h"
#include "services/feedback/feedback_sampler.h"
#include "services/feedback/feedback_store.h"

namespace feedback {

class FeedbackServiceImpl final : public feedback::v1::FeedbackService::Service {
 public:
  // `respondent_secret` keys the opaque per-person tags the anonymity
  // threshold counts (never stored in Redis; the kudos binary derives it from
  // SERVICE_TOKEN_SECRET).
  FeedbackServiceImpl(const common::auth::Guard& auth, FeedbackStore& store, Directory& directory,
                      std::string respondent_secret,
                      std::function<absl::Time()> clock = absl::Now);

  grpc::Status CreateSurvey(grpc::ServerContext* context, const v1::CreateSurveyRequest* request,
                            v1::CreateSurveyResponse* response) override;
  grpc::Status GetSurvey(grpc::ServerContext* context, const v1::GetSurveyRequest* request,
                         v1::GetSurveyResponse* response) override;
  grpc::Status ListSurveys(grpc::ServerContext* context, const v1::ListSurveysRequest* request,
                           v1::ListSurveysResponse* response) override;
  grpc::Status RecordServiceRequest(grpc::ServerContext* context,
                                    const v1::RecordServiceRequestRequest* request,
                                    v1::RecordServiceRequestResponse* response) override;
  grpc::Status ListInvitations(grpc::ServerContext* context,
                               const v1::ListInvitationsRequest* request,
                               v1::ListInvitationsResponse* response) override;
  grpc::Status SubmitResponse(grpc::ServerContext* context, const v1::SubmitResponseRequest* request,
                              v1::SubmitResponseResponse* response) override;
  grpc::Status GetServiceScore(grpc::ServerContext* context,
                               const v1::GetServiceScoreRequest* request,
                               v1::GetServiceScoreResponse* response) override;
  grpc::Status GetFeedbackSettings(grpc::ServerContext* context,
                                   const v1::GetFeedbackSettingsRequest* request,
                                   v1::GetFeedbackSettingsResponse* response) override;
  grpc::Status UpdateFeedbackSettings(grpc::ServerContext* context,
                                      const v1::UpdateFeedbackSettingsRequest* request,
                                      v1::UpdateFeedbackSettingsResponse* response) override;

  using Principal = common::auth::Principal;
  absl::Status DoCreateSurvey(const Principal& who, const v1::CreateSurveyRequest& request,
                              v1::CreateSurveyResponse& response);
  absl::Status DoGetSurvey(const Principal& who, const v1::GetSurveyRequest& request,
                           v1::GetSurveyResponse& response);
  absl::Status DoListSurveys(const Principal& who, const v1::ListSurveysRequest& request,
                             v1::ListSurveysResponse& response);
  absl::Status DoRecordServiceRequest(const Principal& who,
                                      const v1::RecordServiceRequestRequest& request,
                                      v1::RecordServiceRequestResponse& response);
  absl::Status DoListInvitations(const Principal& who, v1::ListInvitationsResponse& response);
  absl::Status DoSubmitResponse(const Principal& who, const v1::SubmitResponseRequest& request,
                                v1::SubmitResponseResponse& response);
  absl::Status DoGetServiceScore(const Principal& who, const v1::GetServiceScoreRequest& request,
                                 v1::GetServiceScoreResponse& response);
  absl::Status DoGetSettings(const Principal& who, v1::GetFeedbackSettingsResponse& response);
  absl::Status DoUpdateSettings(const Principal& who,
                                const v1::UpdateFeedbackSettingsRequest& request,
                                v1::UpdateFeedbackSettingsResponse& response);

 private:
  // OK for admins and for managers of the team (NOT_FOUND for an unknown team).
  absl::Status RequireTeamReader(const Principal& who, const std::string& team_id);

  const common::auth::Guard& auth_;
  FeedbackStore& store_;
  Directory& directory_;
  std::string respondent_secret_;
  std::function<absl::Time()> clock_;
};

// The opaque tag of a person among a team's respondents: HMAC-SHA256 of
// (org, team, person) keyed with `secret`, hex, 32 characters.
std::string RespondentTag(const std::string& secret, const std::string& org,
                          const std::string& team, const std::string& person);

}  // namespace feedback
