// The kudos service's view of the ledger: post linked transfers and set the
// allowance policy, as the kudos service (service-identity token), with a
// deadline on every call.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/v1/common.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"

namespace kudos {

class LedgerClient {
 public:
  virtual ~LedgerClient() = default;
  virtual absl::Status PostTransfers(const std::string& org,
                                     const ledger::v1::PostTransfersRequest& request) = 0;
  // The org's retention policy travels with its allowance policy.
  virtual absl::Status SetAllowancePolicy(const std::string& org,
                                          const common::v1::AllowancePolicy& policy,
                                          const common::v1::RetentionPolicy& retention) = 0;
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
