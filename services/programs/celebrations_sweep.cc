#include "services/programs/celebrations_sweep.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/calendar/calendar.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "services/programs/celebrations_rules.h"

namespace programs::celebrations {
namespace {

std::unique_ptr<grpc::ClientContext> CallContext(const std::string& authorization,
                                                 absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", authorization);
  common::grpc_util::SetDeadline(*context, absl::ToChronoMilliseconds(timeout));
  return context;
}

class GrpcDirectory final : public Directory {
 public:
  GrpcDirectory(std::shared_ptr<grpc::Channel> kudos, Authorization authorization,
                absl::Duration timeout)
      : stub_(kudos::v1::DirectoryService::NewStub(kudos)),
        authorization_(std::move(authorization)),
        timeout_(timeout) {}

  absl::StatusOr<DirectoryPerson> Lookup(const std::string& org,
                                         const std::string& person) override {
    absl::StatusOr<std::string> authorization = authorization_(org);
    if (!authorization.ok()) return authorization.status();
    kudos::v1::GetPersonRequest request;
    request.set_person_id(person);
    kudos::v1::GetPersonResponse response;
    grpc::Status status =
        stub_->GetPerson(CallContext(*authorization, timeout_).get(), request, &response);
    if (!status.ok()) return common::grpc_util::FromGrpcStatus(status);
    DirectoryPerson found;
    found.active = response.person().active();
    found.display_name = response.person().display_name();
    found.time_zone = response.person().time_zone();
    if (found.time_zone.empty()) {
      absl::StatusOr<std::string> org_zone = OrgZone(*authorization);
      if (!org_zone.ok()) return org_zone.status();
      found.time_zone = *std::move(org_zone);
    }
    return found;
  }

 private:
  absl::StatusOr<std::string> OrgZone(const std::string& authorization) {
    kudos::v1::GetOrgSettingsResponse response;
    grpc::Status status = stub_->GetOrgSettings(CallContext(authorization, timeout_).get(),
                                                kudos::v1::GetOrgSettingsRequest(), &response);
    if (!status.ok()) return common::grpc_util::FromGrpcStatus(status);
    return response.settings().time_zone();
  }

  std::unique_ptr<kudos::v1::DirectoryService::Stub> stub_;
  Authorization authorization_;
  absl::Duration timeout_;
};

class GrpcPayer final : public Payer {
 public:
  GrpcPayer(std::shared_ptr<grpc::Channel> ledger, Authorization authorization,
            absl::Duration timeout)
      : stub_(ledger::v1::LedgerService::NewStub(ledger)),
        authorization_(std::move(authorization)),
        timeout_(timeout) {}

  absl::Status Pay(const std::string& org, const v1::Celebration& celebration) override {
    KUDOS_CHECK(celebration.points() > 0 && !celebration.transfer_id().empty(),
                "only celebrations with points are paid");
    absl::StatusOr<std::string> authorization = authorization_(org);
    if (!authorization.ok()) return authorization.status();
    ledger::v1::PostTransfersRequest request;
    ledger::v1::Transfer* transfer = request.add_transfers();
    transfer->set_transfer_id(celebration.transfer_id());
    transfer->mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ISSUER);
    transfer->mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    transfer->mutable_credit_account()->set_person_id(celebration.person_id());
    transfer->set_amount(celebration.points());
    transfer->set_kind(ledger::v1::TRANSFER_KIND_CELEBRATION);
    transfer->set_reference(celebration.celebration_id());
    (*transfer->mutable_tags())["celebration"] = std::string(KindName(celebration.kind()));
    ledger::v1::PostTransfersResponse response;
    grpc::Status status =
        stub_->PostTransfers(CallContext(*authorization, timeout_).get(), request, &response);
    if (!status.ok()) return common::grpc_util::FromGrpcStatus(status);
    if (response.results_size() != 1) {
      return absl::InternalError(absl::StrCat("ledger: ", response.results_size(),
                                              " results for one transfer"));
    }
    const ledger::v1::TransferResult& result = response.results(0);
    if (result.status_code() != 0) {
      return absl::Status(static_cast<absl::StatusCode>(result.status_code()),
                          absl::StrCat("ledger: ", result.error_message()));
    }
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<ledger::v1::LedgerService::Stub> stub_;
  Authorization authorization_;
  absl::Duration timeout_;
};

class GrpcCompanyKudos final : public CompanyKudos {
 public:
  GrpcCompanyKudos(std::shared_ptr<grpc::Channel> kudos, Authorization authorization,
                   absl::Duration timeout)
      : stub_(kudos::v1::KudosService::NewStub(kudos)),
        authorization_(std::move(authorization)),
        timeout_(timeout) {}

  absl::StatusOr<std::string> Record(const std::string& org,
                                     const v1::Celebration& celebration) override {
    KUDOS_CHECK(celebration.points() == 0 || !celebration.transfer_id().empty(),
                "a celebration with points names the transfer that paid them");
    absl::StatusOr<std::string> authorization = authorization_(org);
    if (!authorization.ok()) return authorization.status();
    kudos::v1::RecordCompanyKudosRequest request;
    request.set_request_id(celebration.celebration_id());
    request.set_recipient_id(celebration.person_id());
    request.set_message(celebration.message());
    request.set_points(celebration.points());
    if (celebration.points() > 0) request.set_transfer_id(celebration.transfer_id());
    kudos::v1::RecordCompanyKudosResponse response;
    grpc::Status status =
        stub_->RecordCompanyKudos(CallContext(*authorization, timeout_).get(), request, &response);
    if (!status.ok()) return common::grpc_util::FromGrpcStatus(status);
    KUDOS_CHECK(response.kudos().from_company() && !response.kudos().kudos_id().empty(),
                "the kudos service answered with a company kudos");
    return response.kudos().kudos_id();
  }

 private:
  std::unique_ptr<kudos::v1::KudosService::Stub> stub_;
  Authorization authorization_;
  absl::Duration timeout_;
};

// The kudos service refused the company kudos for good (the person left or
// went inactive between the payment and the record): retrying cannot help.
bool IsFinalRefusal(const absl::Status& status) {
  return absl::IsInvalidArgument(status) || absl::IsNotFound(status) ||
         absl::IsFailedPrecondition(status) || absl::IsAlreadyExists(status);
}

// The (month, day) and the first year a kind can be celebrated in, or
// nullopt when the profile has none (no date, or opted out).
struct DateOfKind {
  int month = 0;
  int day = 0;
  int min_year = 0;
};
std::optional<DateOfKind> DateOf(const std::optional<v1::CelebrationProfile>& profile,
                                 v1::CelebrationKind kind) {
  if (!profile.has_value() || profile->opted_out()) return std::nullopt;
  if (kind == v1::CELEBRATION_KIND_BIRTHDAY && profile->has_birthday()) {
    return DateOfKind{profile->birthday().month(), profile->birthday().day(), 0};
  }
  if (kind == v1::CELEBRATION_KIND_WORK_ANNIVERSARY && profile->has_hire_date()) {
    const common::v1::Date& hired = profile->hire_date();
    return DateOfKind{hired.month(), hired.day(), hired.year() + 1};
  }
  return std::nullopt;
}

absl::TimeZone ZoneOrUtc(const std::string& org, const std::string& person,
                         const std::string& name) {
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(name);
  if (zone.ok()) return *zone;
  common::log::Warning(absl::StrCat("celebrations: org ", org, " person ", person, ": zone '",
                                    name, "' unknown, using UTC"));
  return absl::UTCTimeZone();
}

}  // namespace

std::unique_ptr<Directory> NewGrpcDirectory(std::shared_ptr<grpc::Channel> kudos,
                                            Authorization authorization,
                                            absl::Duration call_timeout) {
  return std::make_unique<GrpcDirectory>(std::move(kudos), std::move(authorization),
                                         call_timeout);
}

std::unique_ptr<Payer> NewGrpcPayer(std::shared_ptr<grpc::Channel> ledger,
                                    Authorization authorization, absl::Duration call_timeout) {
  return std::make_unique<GrpcPayer>(std::move(ledger), std::move(authorization), call_timeout);
}

std::unique_ptr<CompanyKudos> NewGrpcCompanyKudos(std::shared_ptr<grpc::Channel> kudos,
                                                  Authorization authorization,
                                                  absl::Duration call_timeout) {
  return std::make_unique<GrpcCompanyKudos>(std::move(kudos), std::move(authorization),
                                            call_timeout);
}

Sweep::Sweep(CelebrationsStore& store, Directory& directory, Payer& payer, CompanyKudos& kudos,
             SweepOptions options)
    : store_(store), directory_(directory), payer_(payer), kudos_(kudos), options_(options) {}

absl::StatusOr<SweepStats> Sweep::RunOnce(const std::string& org, absl::Time now) {
  SweepStats stats;
  absl::StatusOr<v1::CelebrationSettings> settings = store_.GetSettings(org);
  if (!settings.ok()) return settings.status();
  // Half-done payments first: a crash (or a refused call) left them pending.
  absl::StatusOr<std::vector<v1::Celebration>> pending =
      store_.DuePending(org, now, options_.max_pending_per_pass);
  if (!pending.ok()) return pending.status();
  for (const v1::Celebration& celebration : *pending) {
    if (absl::Status s = store_.Postpone(org, celebration, now + options_.payment_lease); !s.ok()) {
      return s;
    }
    if (absl::Status s = Finish(org, celebration, now, stats); !s.ok()) return s;
  }
  absl::StatusOr<std::vector<DueEntry>> due = store_.Due(org, now, options_.max_due_per_pass);
  if (!due.ok()) return due.status();
  for (const DueEntry& entry : *due) {
    if (absl::Status s = Handle(org, entry, *settings, now, stats); !s.ok()) return s;
  }
  return stats;
}

absl::Status Sweep::Handle(const std::string& org, const DueEntry& entry,
                           const v1::CelebrationSettings& settings, absl::Time now,
                           SweepStats& stats) {
  absl::StatusOr<std::optional<v1::CelebrationProfile>> profile =
      store_.GetProfile(org, entry.person);
  if (!profile.ok()) return profile.status();
  std::optional<DateOfKind> date = DateOf(*profile, entry.kind);
  Schedule next{entry.kind, std::nullopt, absl::UnixEpoch()};
  if (!date.has_value()) {
    // The setters remove such schedules; one that raced them ends here.
    ++stats.skipped;
    return store_.Claim(org, entry, std::nullopt, now, next).status();
  }
  absl::StatusOr<DirectoryPerson> person = directory_.Lookup(org, entry.person);
  if (!person.ok() && !absl::IsNotFound(person.status())) return person.status();
  const absl::TimeZone zone =
      person.ok() ? ZoneOrUtc(org, entry.person, person->time_zone) : absl::UTCTimeZone();
  const Occurrence occurrence = OccurrenceInYear(date->month, date->day, entry.year, zone);
  if (occurrence.time > now) {
    // The person's zone changed since the schedule was written.
    ++stats.moved;
    next.year = entry.year;
    next.time = occurrence.time;
    return store_.Claim(org, entry, std::nullopt, now, next).status();
  }
  const Occurrence following =
      NextOccurrence(date->month, date->day, entry.year + 1, now, zone);
  next.year = following.year;
  next.time = following.time;
  if (!person.ok() || !person->active) {
    ++stats.skipped;
    return store_.Claim(org, entry, std::nullopt, now, next).status();
  }
  const v1::Celebration celebration =
      MakeCelebration(**profile, entry.kind, occurrence, settings, person->display_name);
  absl::StatusOr<ClaimResult> claimed =
      store_.Claim(org, entry, celebration, now + options_.payment_lease, next);
  if (!claimed.ok()) return claimed.status();
  if (*claimed == ClaimResult::kAlready) ++stats.already;
  if (*claimed != ClaimResult::kClaimed) return absl::OkStatus();
  return Finish(org, celebration, now, stats);
}

absl::Status Sweep::Finish(const std::string& org, const v1::Celebration& claimed,
                           absl::Time now, SweepStats& stats) {
  auto retry_later = [&](const absl::Status& failed) {
    // Stays pending (its marker set): paid again with the same transfer id
    // (applied at most once) and recorded again with the same request id.
    ++stats.failed;
    common::log::Warning(absl::StrCat("celebrations: org ", org, " ", claimed.celebration_id(),
                                      ": ", failed.ToString(), "; retried later"));
    return store_.Postpone(org, claimed, now + options_.retry_backoff);
  };
  if (claimed.points() > 0) {
    if (absl::Status paid = payer_.Pay(org, claimed); !paid.ok()) return retry_later(paid);
  }
  // Only after the payment: a company kudos is never shown without its points.
  v1::Celebration celebration = claimed;
  absl::StatusOr<std::string> kudos_id = kudos_.Record(org, claimed);
  if (kudos_id.ok()) {
    celebration.set_kudos_id(*kudos_id);
  } else if (IsFinalRefusal(kudos_id.status())) {
    common::log::Warning(absl::StrCat("celebrations: org ", org, " ", claimed.celebration_id(),
                                      ": paid, but the kudos service refused its kudos: ",
                                      kudos_id.status().ToString()));
  } else {
    return retry_later(kudos_id.status());
  }
  absl::StatusOr<bool> completed = store_.Complete(org, celebration);
  if (!completed.ok()) return completed.status();
  if (*completed) {
    ++stats.paid;
  } else {
    ++stats.already;
  }
  return absl::OkStatus();
}

SweepStats Sweep::RunAllOrgs(common::redis::OrgRegistry& registry, absl::Time now) {
  SweepStats total;
  absl::StatusOr<std::vector<std::string>> orgs = registry.Orgs();
  if (!orgs.ok()) {
    common::log::Warning(absl::StrCat("celebrations: orgs: ", orgs.status().ToString()));
    return total;
  }
  for (const std::string& org : *orgs) {
    absl::StatusOr<SweepStats> stats = RunOnce(org, now);
    if (!stats.ok()) {
      common::log::Warning(
          absl::StrCat("celebrations: org ", org, ": ", stats.status().ToString()));
      continue;
    }
    total.paid += stats->paid;
    total.already += stats->already;
    total.skipped += stats->skipped;
    total.moved += stats->moved;
    total.failed += stats->failed;
  }
  return total;
}

}  // namespace programs::celebrations
