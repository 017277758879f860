// The gRPC layer of the kudos service: authenticate, check the role,
// translate, call the workflow or the store, map the status.
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/auth/guard.h"
#include "common/grpc/unary.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "services/kudos/feed_hub.h"
#include "services/kudos/kudos_store.h"
#include "services/kudos/kudos_workflow.h"
#include "services/kudos/ledger_client.h"

namespace kudos {

// Every method is on the gRPC callback API: a unary call holds no thread
// while it waits on Redis or the ledger (common/grpc/unary.h: authenticate
// -> validate -> asynchronous steps -> map status -> Finish once), and a
// WatchFeed stream is a reactor fed by the org's reader.
class KudosServiceImpl final : public kudos::v1::KudosService::CallbackService {
 public:
  KudosServiceImpl(const common::auth::Guard& auth, KudosStore& store, KudosWorkflow& workflow,
                   FeedHub& feeds, common::grpc_util::UnaryOptions options = KudosCallOptions());

  grpc::ServerUnaryReactor* SendKudos(grpc::CallbackServerContext* context,
                                      const kudos::v1::SendKudosRequest* request,
                                      kudos::v1::SendKudosResponse* response) override;
  grpc::ServerUnaryReactor* GetKudos(grpc::CallbackServerContext* context,
                                     const kudos::v1::GetKudosRequest* request,
                                     kudos::v1::GetKudosResponse* response) override;
  grpc::ServerUnaryReactor* ListKudos(grpc::CallbackServerContext* context,
                                      const kudos::v1::ListKudosRequest* request,
                                      kudos::v1::ListKudosResponse* response) override;
  grpc::ServerUnaryReactor* BoostKudos(grpc::CallbackServerContext* context,
                                       const kudos::v1::BoostKudosRequest* request,
                                       kudos::v1::BoostKudosResponse* response) override;
  // Issue 18: the programs service's token only (PERMISSION_DENIED for anyone else).
  grpc::ServerUnaryReactor* RecordCompanyKudos(
      grpc::CallbackServerContext* context, const kudos::v1::RecordCompanyKudosRequest* request,
      kudos::v1::RecordCompanyKudosResponse* response) override;
  grpc::ServerWriteReactor<kudos::v1::WatchFeedResponse>* WatchFeed(
      grpc::CallbackServerContext* context, const kudos::v1::WatchFeedRequest* request) override;

  const common::grpc_util::UnaryCalls& calls() const { return calls_; }

  // The service's own bounds when the flags set none (main.cc sets them).
  static common::grpc_util::UnaryOptions KudosCallOptions();

 private:
  const common::auth::Guard& auth_;  // authentication and rate limits
  KudosStore& store_;
  KudosWorkflow& workflow_;
  FeedHub& feeds_;  // one Redis reader per org, shared by its watchers
  common::grpc_util::UnaryCalls calls_;
};

class DirectoryServiceImpl final : public kudos::v1::DirectoryService::CallbackService {
 public:
  DirectoryServiceImpl(const common::auth::Guard& auth, KudosStore& store, LedgerClient& ledger,
                       common::grpc_util::UnaryOptions options =
                           KudosServiceImpl::KudosCallOptions());

  grpc::ServerUnaryReactor* CreatePerson(grpc::CallbackServerContext* context,
                                         const kudos::v1::CreatePersonRequest* request,
                                         kudos::v1::CreatePersonResponse* response) override;
  grpc::ServerUnaryReactor* UpdatePerson(grpc::CallbackServerContext* context,
                                         const kudos::v1::UpdatePersonRequest* request,
                                         kudos::v1::UpdatePersonResponse* response) override;
  grpc::ServerUnaryReactor* GetPerson(grpc::CallbackServerContext* context,
                                      const kudos::v1::GetPersonRequest* request,
                                      kudos::v1::GetPersonResponse* response) override;
  grpc::ServerUnaryReactor* ListPeople(grpc::CallbackServerContext* context,
                                       const kudos::v1::ListPeopleRequest* request,
                                       kudos::v1::ListPeopleResponse* response) override;
  grpc::ServerUnaryReactor* CreateTeam(grpc::CallbackServerContext* context,
                                       const kudos::v1::CreateTeamRequest* request,
                                       kudos::v1::CreateTeamResponse* response) override;
  grpc::ServerUnaryReactor* ListTeams(grpc::CallbackServerContext* context,
                                      const kudos::v1::ListTeamsRequest* request,
                                      kudos::v1::ListTeamsResponse* response) override;
  grpc::ServerUnaryReactor* GetOrgSettings(grpc::CallbackServerContext* context,
                                           const kudos::v1::GetOrgSettingsRequest* request,
                                           kudos::v1::GetOrgSettingsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateOrgSettings(
      grpc::CallbackServerContext* context, const kudos::v1::UpdateOrgSettingsRequest* request,
      kudos::v1::UpdateOrgSettingsResponse* response) override;

 private:
  grpc::ServerUnaryReactor* PutPerson(grpc::CallbackServerContext* context,
                                      const kudos::v1::Person& person, bool create,
                                      kudos::v1::Person* stored);

  KudosStore& store_;
  LedgerClient& ledger_;
  common::grpc_util::UnaryCalls calls_;
};

// Whether a committed kudos event matches a feed filter, for `viewer`: a
// private kudos only on a giver_id/recipient_id filter of one of its parties
// (the feeds ListKudos shows it in; issue 18).
bool MatchesFilter(const kudos::v1::KudosSent& sent, const kudos::v1::KudosFilter& filter,
                   const Viewer& viewer);

}  // namespace kudos
