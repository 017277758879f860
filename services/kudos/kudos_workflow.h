// The write path of one kudos (see the architecture's write path):
// validate against the directory, record PENDING (idempotency, caps and rate
// limit reserved atomically), post linked transfers to the ledger, then
// COMMIT (feed + event) or ABORT (caps released). A retry with the same
// request_id, or the reconciler, resumes a PENDING record with the same
// transfer ids, which the ledger applies at most once.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/grpc/steps.h"
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
  // Ledger allowance profiles mirrored per org per pass (issue 18 part 2).
  int profiles_per_org = 100;
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
  // Asynchronous forms (the RPC handlers): every store and ledger call is
  // bounded by `deadline`; `stop` is asked before each step that writes or
  // calls the ledger (non-OK, e.g. the client cancelled: the call ends with
  // it, leaving at most a PENDING record for the reconciler). `request`
  // must outlive the call; `done` runs exactly once, on a Redis loop or gRPC
  // thread.
  using Deadline = common::redis::Deadline;
  using StopCheck = std::function<absl::Status()>;
  void SendKudosAsync(const std::string& org, const std::string& giver_id,
                      const kudos::v1::SendKudosRequest& request, Deadline deadline,
                      StopCheck stop, StoreCallback<kudos::v1::Kudos> done);
  void BoostKudosAsync(const std::string& org, const std::string& booster_id,
                       const kudos::v1::BoostKudosRequest& request, Deadline deadline,
                       StopCheck stop, StoreCallback<kudos::v1::Kudos> done);

  // Issue 18: records a kudos from the company (giver_id empty, from_company)
  // for points the caller already paid (request.transfer_id): no transfer,
  // no allowance, no caps. Idempotent by request_id like SendKudos (its
  // requests are kept under kCompanyActor); a record a crash left PENDING
  // is committed by a retry or the reconciler.
  void RecordCompanyKudosAsync(const std::string& org,
                               const kudos::v1::RecordCompanyKudosRequest& request,
                               Deadline deadline, StopCheck stop,
                               StoreCallback<kudos::v1::Kudos> done);

  // Finishes records still PENDING when their attempt is due (a caller
  // crashed or gave up). Returns how many reached COMMITTED or ABORTED;
  // an org that fails is logged and skipped, never stops the pass.
  absl::StatusOr<int> ReconcileOnce();

  // Mirrors up to `profiles_per_org` queued people's team and direct
  // reports into their ledger allowance profiles, keeping the roles the
  // ledger holds (they come from admins). Stops at the org's first ledger
  // error (they stay queued for the next pass). Returns how many it set.
  int SyncProfilesOnce(const std::string& org);

 private:
  // A record ready to begin: what Begin writes, and the kudos it holds.
  struct PreparedRecord {
    BeginRecognition begin;
    kudos::v1::Kudos kudos;  // sends only: the kudos as the caller gets it
  };
  absl::StatusOr<PreparedRecord> PrepareSend(const std::string& org, const std::string& giver_id,
                                             const kudos::v1::SendKudosRequest& request,
                                             const kudos::v1::OrgSettings& settings,
                                             std::map<std::string, kudos::v1::Person>& people);
  absl::StatusOr<PreparedRecord> PrepareBoost(
      const std::string& org, const std::string& booster_id,
      const kudos::v1::BoostKudosRequest& request, const kudos::v1::Kudos& kudos,
      const kudos::v1::OrgSettings& settings,
      const std::map<std::string, kudos::v1::Person>& people);

  absl::StatusOr<PreparedRecord> PrepareCompany(
      const std::string& org, const kudos::v1::RecordCompanyKudosRequest& request,
      const kudos::v1::OrgSettings& settings,
      const std::map<std::string, kudos::v1::Person>& people);

  struct SendState;
  struct BoostState;
  struct CompanyState;
  void ValidateCompanyAsync(std::shared_ptr<CompanyState> s, common::grpc_util::Done done);
  void ReadAndBeginSendAsync(std::shared_ptr<SendState> s, bool allow_cache,
                             common::grpc_util::Done done);
  void BeginPreparedSendAsync(std::shared_ptr<SendState> s, std::string directory_version,
                              common::grpc_util::Done done);
  void ValidateSendAsync(std::shared_ptr<SendState> s, common::grpc_util::Done done);
  // Shared by SendKudos (SendState) and RecordCompanyKudos (CompanyState).
  template <typename State>
  void AnswerEarlierRequestAsync(std::shared_ptr<State> s, const std::string& actor,
                                 std::string fingerprint, absl::Status valid,
                                 common::grpc_util::Done done);
  template <typename State>
  void SettleBegunKudosAsync(std::shared_ptr<State> s, common::grpc_util::Done done);
  void CompleteAsync(const std::string& org, RecordKind kind, const std::string& id,
                     const std::string& kudos_id, Deadline deadline, StopCheck stop,
                     StoreCallback<kudos::v1::Kudos> done);
  void SettleRecordAsync(const std::string& org, RecordKind kind, const std::string& id,
                         const Record& record, Deadline deadline, StopCheck stop,
                         StoreCallback<std::string> done);

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
  absl::Status SyncProfile(const std::string& org, const KudosStore::ProfileToSync& queued);
  absl::StatusOr<kudos::v1::Kudos> Complete(const std::string& org, RecordKind kind,
                                            const std::string& id, const std::string& kudos_id);

  KudosStore& store_;
  LedgerClient& ledger_;
  const ReconcilerOptions reconciler_;
  std::function<absl::Time()> clock_;
};

}  // namespace kudos
