// kudos.v1.KudosSocialService (issue 18 part 6): comments, emoji reactions,
// reports and retraction of kudos, hosted by the kudos binary. Sync gRPC
// handlers over the blocking store (these are light, human-paced calls);
// the Do* functions take an authenticated principal so tests can drive them.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>

#include "absl/time/clock.h"
#include "common/auth/guard.h"
#include "kudos/v1/social.grpc.pb.h"
#include "services/kudos/kudos_store.h"
#include "services/kudos/social_ledger.h"
#include "services/kudos/social_rules.h"
#include "services/kudos/social_store.h"

namespace kudos {

struct SocialOptions {
  SocialLimits limits;
  TransferSearch search;
};

class SocialServiceImpl final : public kudos::v1::KudosSocialService::Service {
 public:
  SocialServiceImpl(
      const common::auth::Guard& auth, KudosStore& kudos, SocialStore& store, SocialLedger& ledger,
      SocialOptions options = {}, std::function<absl::Time()> clock = [] { return absl::Now(); });

  grpc::Status AddComment(grpc::ServerContext* context, const v1::AddCommentRequest* request,
                          v1::AddCommentResponse* response) override;
  grpc::Status ListComments(grpc::ServerContext* context, const v1::ListCommentsRequest* request,
                            v1::ListCommentsResponse* response) override;
  grpc::Status DeleteComment(grpc::ServerContext* context, const v1::DeleteCommentRequest* request,
                             v1::DeleteCommentResponse* response) override;
  grpc::Status AddReaction(grpc::ServerContext* context, const v1::AddReactionRequest* request,
                           v1::AddReactionResponse* response) override;
  grpc::Status RemoveReaction(grpc::ServerContext* context,
                              const v1::RemoveReactionRequest* request,
                              v1::RemoveReactionResponse* response) override;
  grpc::Status GetReactions(grpc::ServerContext* context, const v1::GetReactionsRequest* request,
                            v1::GetReactionsResponse* response) override;
  grpc::Status ReportKudos(grpc::ServerContext* context, const v1::ReportKudosRequest* request,
                           v1::ReportKudosResponse* response) override;
  grpc::Status ListReports(grpc::ServerContext* context, const v1::ListReportsRequest* request,
                           v1::ListReportsResponse* response) override;
  grpc::Status DismissReport(grpc::ServerContext* context, const v1::DismissReportRequest* request,
                             v1::DismissReportResponse* response) override;
  grpc::Status RetractKudos(grpc::ServerContext* context, const v1::RetractKudosRequest* request,
                            v1::RetractKudosResponse* response) override;

  using Principal = common::auth::Principal;
  absl::Status DoAddComment(const Principal& who, const v1::AddCommentRequest& request,
                            v1::AddCommentResponse& response);
  absl::Status DoListComments(const Principal& who, const v1::ListCommentsRequest& request,
                              v1::ListCommentsResponse& response);
  absl::Status DoDeleteComment(const Principal& who, const v1::DeleteCommentRequest& request);
  absl::Status DoReact(const Principal& who, const std::string& kudos_id, const std::string& emoji,
                       ReactionOp op, google::protobuf::RepeatedPtrField<v1::ReactionCount>& out);
  absl::Status DoReportKudos(const Principal& who, const v1::ReportKudosRequest& request,
                             v1::ReportKudosResponse& response);
  absl::Status DoListReports(const Principal& who, const v1::ListReportsRequest& request,
                             v1::ListReportsResponse& response);
  absl::Status DoDismissReport(const Principal& who, const v1::DismissReportRequest& request,
                               v1::DismissReportResponse& response);
  absl::Status DoRetractKudos(const Principal& who, const v1::RetractKudosRequest& request,
                              v1::RetractKudosResponse& response);

 private:
  // A kudos the caller may see, with what the social rules need of the org.
  struct Visible {
    v1::Kudos kudos;
    bool retracted = false;
    int64_t expire_at_ms = 0;   // the kudos' live window ends (comments/reactions expire)
    int64_t request_ttl_s = 0;  // the org's retry window
  };
  enum class Access { kRead, kWrite };
  absl::StatusOr<Visible> Load(const Principal& who, const std::string& kudos_id, Access access);
  absl::Status RetractCommitted(const Principal& who, const v1::RetractKudosRequest& request,
                                const v1::Kudos& kudos, v1::RetractKudosResponse& response);
  absl::StatusOr<RetractionDone> FinishRetraction(const std::string& org,
                                                  const v1::KudosRetracted& retracted,
                                                  const std::vector<std::string>& reversal_ids,
                                                  int64_t ttl_s);

  const common::auth::Guard& auth_;
  KudosStore& kudos_;
  SocialStore& store_;
  SocialLedger& ledger_;
  const SocialOptions options_;
  std::function<absl::Time()> clock_;
};

}  // namespace kudos
