// The gRPC layer of the kudos service: authenticate, check the role,
// translate, call the workflow or the store, map the status.
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/auth/guard.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "services/kudos/feed_hub.h"
#include "services/kudos/kudos_store.h"
#include "services/kudos/kudos_workflow.h"
#include "services/kudos/ledger_client.h"

namespace kudos {

// WatchFeed is a callback method (a reactor holds no thread while it
// waits); the rest are sync handlers.
class KudosServiceImpl final
    : public kudos::v1::KudosService::WithCallbackMethod_WatchFeed<
          kudos::v1::KudosService::Service> {
 public:
  KudosServiceImpl(const common::auth::Guard& auth, KudosStore& store,
                   KudosWorkflow& workflow, FeedHub& feeds);

  grpc::Status SendKudos(grpc::ServerContext* context, const kudos::v1::SendKudosRequest* request,
                         kudos::v1::SendKudosResponse* response) override;
  grpc::Status GetKudos(grpc::ServerContext* context, const kudos::v1::GetKudosRequest* request,
                        kudos::v1::GetKudosResponse* response) override;
  grpc::Status ListKudos(grpc::ServerContext* context, const kudos::v1::ListKudosRequest* request,
                         kudos::v1::ListKudosResponse* response) override;
  grpc::Status BoostKudos(grpc::ServerContext* context,
                          const kudos::v1::BoostKudosRequest* request,
                          kudos::v1::BoostKudosResponse* response) override;
  grpc::ServerWriteReactor<kudos::v1::WatchFeedResponse>* WatchFeed(
      grpc::CallbackServerContext* context, const kudos::v1::WatchFeedRequest* request) override;

 private:
  const common::auth::Guard& auth_;  // authentication and rate limits
  KudosStore& store_;
  KudosWorkflow& workflow_;
  FeedHub& feeds_;  // one Redis reader per org, shared by its watchers
};

class DirectoryServiceImpl final : public kudos::v1::DirectoryService::Service {
 public:
  DirectoryServiceImpl(const common::auth::Guard& auth, KudosStore& store,
                       LedgerClient& ledger);

  grpc::Status CreatePerson(grpc::ServerContext* context,
                            const kudos::v1::CreatePersonRequest* request,
                            kudos::v1::CreatePersonResponse* response) override;
  grpc::Status UpdatePerson(grpc::ServerContext* context,
                            const kudos::v1::UpdatePersonRequest* request,
                            kudos::v1::UpdatePersonResponse* response) override;
  grpc::Status GetPerson(grpc::ServerContext* context, const kudos::v1::GetPersonRequest* request,
                         kudos::v1::GetPersonResponse* response) override;
  grpc::Status ListPeople(grpc::ServerContext* context,
                          const kudos::v1::ListPeopleRequest* request,
                          kudos::v1::ListPeopleResponse* response) override;
  grpc::Status CreateTeam(grpc::ServerContext* context,
                          const kudos::v1::CreateTeamRequest* request,
                          kudos::v1::CreateTeamResponse* response) override;
  grpc::Status ListTeams(grpc::ServerContext* context, const kudos::v1::ListTeamsRequest* request,
                         kudos::v1::ListTeamsResponse* response) override;
  grpc::Status GetOrgSettings(grpc::ServerContext* context,
                              const kudos::v1::GetOrgSettingsRequest* request,
                              kudos::v1::GetOrgSettingsResponse* response) override;
  grpc::Status UpdateOrgSettings(grpc::ServerContext* context,
                                 const kudos::v1::UpdateOrgSettingsRequest* request,
                                 kudos::v1::UpdateOrgSettingsResponse* response) override;

 private:
  grpc::Status PutPerson(grpc::ServerContext* context, const kudos::v1::Person& person,
                         bool create, kudos::v1::Person* stored);

  const common::auth::Guard& auth_;  // authentication and rate limits
  KudosStore& store_;
  LedgerClient& ledger_;
};

// Whether a committed kudos event matches a feed filter.
bool MatchesFilter(const kudos::v1::KudosSent& sent, const kudos::v1::KudosFilter& filter);

}  // namespace kudos
