// The kudos service's view of the ledger: post linked transfers and set the
// allowance policy, as the kudos service (service-identity token), with a
// deadline on every call.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/v1/common.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"

namespace kudos {

// Runs exactly once with the ledger's answer (on a gRPC thread: it must not block).
using LedgerDone = absl::AnyInvocable<void(absl::Status) &&>;
using SteadyDeadline = std::chrono::steady_clock::time_point;

class LedgerClient {
 public:
  virtual ~LedgerClient() = default;
  // Asynchronous forms (the RPC handlers' path): the call's deadline is
  // min(`deadline`, now + the client's own timeout). The defaults call the
  // blocking forms (for clients without an asynchronous transport).
  virtual void PostTransfersAsync(const std::string& org,
                                  const ledger::v1::PostTransfersRequest& request,
                                  SteadyDeadline deadline, LedgerDone done);
  virtual void SetAllowancePolicyAsync(const std::string& org,
                                       const common::v1::AllowancePolicy& policy,
                                       const common::v1::RetentionPolicy& retention,
                                       SteadyDeadline deadline, LedgerDone done);
  virtual absl::Status PostTransfers(const std::string& org,
                                     const ledger::v1::PostTransfersRequest& request) = 0;
  // The org's retention policy travels with its allowance policy.
  virtual absl::Status SetAllowancePolicy(const std::string& org,
                                          const common::v1::AllowancePolicy& policy,
                                          const common::v1::RetentionPolicy& retention) = 0;
  // The directory's mirror of allowance profiles (issue 18 part 2). The
  // defaults answer UNIMPLEMENTED (clients that do not mirror: the mirror
  // keeps the profiles queued).
  virtual absl::StatusOr<ledger::v1::AllowanceProfile> GetAllowanceProfile(
      const std::string& org, const std::string& person_id);
  virtual absl::Status SetAllowanceProfile(const std::string& org,
                                           const ledger::v1::AllowanceProfile& profile);
};

struct GrpcLedgerClientOptions {
  std::string address;
  std::string service_secret;
  int timeout_ms = 3000;
};

std::unique_ptr<LedgerClient> MakeGrpcLedgerClient(const GrpcLedgerClientOptions& options);

// Whether a ledger error is a final answer (the transfers were refused and
// never will be applied) rather than an unknown outcome worth retrying.
bool IsDefinitiveRefusal(const absl::Status& status);

}  // namespace kudos
