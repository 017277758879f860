// What the social service asks of the ledger for a retraction: the KUDOS and
// BOOST transfers of a kudos (read from its recipients' EARNED accounts) and
// the linked RETRACTION transfers that reverse them. Every call carries the
// kudos service's token and a deadline.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ledger/v1/ledger.grpc.pb.h"

namespace kudos {

class SocialLedger {
 public:
  virtual ~SocialLedger() = default;
  // One page of an account's transfers, newest first.
  virtual absl::StatusOr<ledger::v1::ListTransfersResponse> ListTransfers(
      const std::string& org, const ledger::v1::ListTransfersRequest& request) = 0;
  virtual absl::StatusOr<ledger::v1::PostTransfersResponse> PostTransfers(
      const std::string& org, const ledger::v1::PostTransfersRequest& request) = 0;
};

struct SocialLedgerOptions {
  std::string address;
  std::string service_secret;
  int timeout_ms = 3000;
};

std::unique_ptr<SocialLedger> MakeGrpcSocialLedger(const SocialLedgerOptions& options);

// Bounds of the search for a kudos' transfers in one recipient's account.
struct TransferSearch {
  int page_size = 500;
  int max_pages = 20;
  // Transfers of a kudos are posted after its create_time; older ones end the
  // search (minus this, for clocks of replicas that disagree a little).
  absl::Duration clock_skew = absl::Minutes(10);
  // The whole search's time, so a slow ledger holds a handler thread only
  // this long (DEADLINE_EXCEEDED: a retry with the same request_id goes on).
  absl::Duration budget = absl::Seconds(20);
};

// Every KUDOS and BOOST transfer whose reference is `kudos_id`, crediting one
// of `recipients`' EARNED accounts, posted at or after `created` (minus the
// skew). FAILED_PRECONDITION when an account holds more transfers since then
// than the search reads (the message says so).
absl::StatusOr<std::vector<ledger::v1::Transfer>> FindKudosTransfers(
    SocialLedger& ledger, const std::string& org, const std::string& kudos_id,
    const std::vector<std::string>& recipients, absl::Time created,
    const TransferSearch& search = {});

// Posts the reversals of `originals`, linked, at most 100 per call (the
// ledger's bound), and checks each answer: every reversal applied (now or by
// an earlier attempt) for the original's amount between its swapped accounts.
absl::Status PostReversals(SocialLedger& ledger, const std::string& org,
                           const std::vector<ledger::v1::Transfer>& originals);

}  // namespace kudos
