// The celebrations sweep: per org, the schedules due at `now` (09:00 local
// of the day), each claimed by one script that sets its (person, kind,
// year) marker and records the payment as pending, then paid through the
// ledger with the transfer id of that marker, recorded as a kudos from the
// company naming that transfer (kudos service, idempotent by the celebration
// id) and completed (feed entry).
// Safe with several replicas and across restarts: a second claimer finds the
// marker; a payment a crash left pending is retried after its lease by
// whichever replica comes next, with the same transfer id, which the ledger
// applies at most once. Bounded per pass (due and pending entries).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/redis/org_registry.h"
#include "services/programs/celebrations_store.h"

namespace programs::celebrations {

// A person as the directory (kudos) knows them.
struct DirectoryPerson {
  bool active = false;
  // The person's IANA zone, or the org's when theirs is empty.
  std::string time_zone;
  std::string display_name;
};

class Directory {
 public:
  virtual ~Directory() = default;
  // NOT_FOUND when the org has no such person.
  virtual absl::StatusOr<DirectoryPerson> Lookup(const std::string& org,
                                                 const std::string& person) = 0;
};

class Payer {
 public:
  virtual ~Payer() = default;
  // Posts the celebration's transfer (ISSUER -> EARNED, its transfer id);
  // OK also when it had been posted before.
  virtual absl::Status Pay(const std::string& org, const v1::Celebration& celebration) = 0;
};

// Records the celebration as a kudos from the company (kudos.v1
// RecordCompanyKudos) for points already paid by its transfer. Idempotent by
// the celebration id: a retry returns the same kudos. Returns its kudos id.
class CompanyKudos {
 public:
  virtual ~CompanyKudos() = default;
  virtual absl::StatusOr<std::string> Record(const std::string& org,
                                             const v1::Celebration& celebration) = 0;
};

// "Bearer <service token>" for calls on behalf of an org.
using Authorization = std::function<absl::StatusOr<std::string>(const std::string& org)>;

// kudos.v1.DirectoryService over gRPC (GetPerson, GetOrgSettings for the
// org's zone), a deadline on every call.
std::unique_ptr<Directory> NewGrpcDirectory(std::shared_ptr<grpc::Channel> kudos,
                                            Authorization authorization,
                                            absl::Duration call_timeout);
// ledger.v1.LedgerService.PostTransfers over gRPC, kind CELEBRATION.
std::unique_ptr<Payer> NewGrpcPayer(std::shared_ptr<grpc::Channel> ledger,
                                    Authorization authorization, absl::Duration call_timeout);

// kudos.v1.KudosService.RecordCompanyKudos over gRPC, a deadline on every call.
std::unique_ptr<CompanyKudos> NewGrpcCompanyKudos(std::shared_ptr<grpc::Channel> kudos,
                                                  Authorization authorization,
                                                  absl::Duration call_timeout);

struct SweepOptions {
  int max_due_per_pass = 200;      // schedules handled per org per pass
  int max_pending_per_pass = 200;  // half-done payments retried per org per pass
  // A claimed payment is retried by anyone after this (a crash between the
  // marker and the payment).
  absl::Duration payment_lease = absl::Seconds(30);
  // A payment the ledger refused or did not answer is retried after this.
  absl::Duration retry_backoff = absl::Minutes(1);
};

struct SweepStats {
  int paid = 0;      // celebrations completed by this pass
  int already = 0;   // found claimed by an earlier pass or another replica
  int skipped = 0;   // not celebrated (inactive, opted out, date removed)
  int moved = 0;     // rescheduled (the person's zone puts 09:00 later)
  int failed = 0;    // payments or kudos left pending for a retry
};

class Sweep {
 public:
  Sweep(CelebrationsStore& store, Directory& directory, Payer& payer, CompanyKudos& kudos,
        SweepOptions options = {});
  // One pass over one org at `now` (the caller's clock).
  absl::StatusOr<SweepStats> RunOnce(const std::string& org, absl::Time now);
  // Every org the registry knows; an org that fails is logged and skipped.
  SweepStats RunAllOrgs(common::redis::OrgRegistry& registry, absl::Time now);

 private:
  absl::Status Handle(const std::string& org, const DueEntry& entry,
                      const v1::CelebrationSettings& settings, absl::Time now, SweepStats& stats);
  // Pays (when it has points), records the company kudos and completes a
  // claimed celebration; a failed step leaves it pending for a retry.
  absl::Status Finish(const std::string& org, const v1::Celebration& celebration, absl::Time now,
                      SweepStats& stats);

  CelebrationsStore& store_;
  Directory& directory_;
  Payer& payer_;
  CompanyKudos& kudos_;
  SweepOptions options_;
};

}  // namespace programs::celebrations
