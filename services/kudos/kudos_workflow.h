// The write path of one kudos (see the architecture's write path):
// validate against the directory, record PENDING (idempotency, caps and rate
// limit reserved atomically), post linked transfers to the ledger, then
// COMMIT (feed + event) or ABORT (caps released). A retry with the same
// request_id, or the reconciler, resumes a PENDING record with the same
// transfer ids, which the ledger applies at most once.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "kudos/v1/kudos.pb.h"
#include "services/kudos/kudos_store.h"
#include "services/kudos/ledger_client.h"

namespace kudos {

// The reconciler's pace. Each pass takes every org's due records (at most
// `batch_per_org`), orgs spread over `workers` threads, so one org's slow or
// failing records delay neither younger records nor other orgs.
struct ReconcilerOptions {
  absl::Duration first_attempt_after = absl::Seconds(5);  // after a record began
  ReconcileBackoff backoff;
  int batch_per_org = 100;
  int workers = 4;
};

class KudosWorkflow {
 public:
  KudosWorkflow(KudosStore& store, LedgerClient& ledger, ReconcilerOptions reconciler = {},
                std::function<absl::Time()> clock = [] { return absl::Now(); });

  absl::StatusOr<kudos::v1::Kudos> SendKudos(const std::string& org, const std::string& giver_id,
                                             const kudos::v1::SendKudosRequest& request);
  absl::StatusOr<kudos::v1::Kudos> BoostKudos(const std::string& org,
                                              const std::string& booster_id,
                                              const kudos::v1::BoostKudosRequest& request);
  // Finishes records still PENDING when their attempt is due (a caller
  // crashed or gave up). Returns how many reached COMMITTED or ABORTED;
  // an org that fails is logged and skipped, never stops the pass.
  absl::StatusOr<int> ReconcileOnce();

 private:
  // Posts the record's transfers and moves it out of PENDING when the
  // ledger gives a final answer. Returns the record's state afterwards.
  absl::StatusOr<std::string> Settle(const std::string& org, RecordKind kind,
                                     const std::string& id);
  // Settle for a record already in hand.
  absl::StatusOr<std::string> SettleRecord(const std::string& org, RecordKind kind,
                                           const std::string& id, const Record& record);
  // Settles a record and turns its final state into the caller's answer.
  // One org's share of a pass; returns how many records it finished.
  int ReconcileOrg(const std::string& org);
  absl::StatusOr<kudos::v1::Kudos> Complete(const std::string& org, RecordKind kind,
                                            const std::string& id, const std::string& kudos_id);

  KudosStore& store_;
  LedgerClient& ledger_;
  const ReconcilerOptions reconciler_;
  std::function<absl::Time()> clock_;
};

}  // namespace kudos
