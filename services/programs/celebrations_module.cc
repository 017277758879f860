// Celebrations' part of the programs service: the gRPC service and the sweep
// worker, added to the host (programs_modules.h).
#include <memory>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/config/env.h"
#include "common/log/log.h"
#include "services/programs/celebrations_service.h"
#include "services/programs/celebrations_store.h"
#include "services/programs/celebrations_sweep.h"
#include "services/programs/programs_modules.h"

ABSL_FLAG(int, celebrations_interval_ms,
          static_cast<int>(common::config::IntEnvOr("CELEBRATIONS_INTERVAL_MS", 60000, 1)),
          "period of the celebrations sweep (birthdays and work anniversaries due at 09:00 "
          "local time); each pass handles at most 200 due and 200 pending entries per org");

namespace programs {

absl::Status AddCelebrations(Host& host) {
  using namespace celebrations;  // NOLINT: this function wires the area's parts
  const absl::Duration timeout = absl::FromChrono(host.options().call_timeout);
  Authorization authorization = [&host](const std::string& org) {
    return host.ServiceAuthorization(org);
  };
  auto store = std::make_shared<CelebrationsStore>(host.pool());
  std::shared_ptr<Directory> directory =
      NewGrpcDirectory(host.kudos_channel(), authorization, timeout);
  std::shared_ptr<Payer> payer = NewGrpcPayer(host.ledger_channel(), authorization, timeout);
  std::shared_ptr<CompanyKudos> company_kudos =
      NewGrpcCompanyKudos(host.kudos_channel(), authorization, timeout);
  auto sweep = std::make_shared<Sweep>(*store, *directory, *payer, *company_kudos);
  host.AddService(std::make_unique<CelebrationsServiceImpl>(host.guard(), *store, *directory));
  const absl::Duration interval = absl::Milliseconds(absl::GetFlag(FLAGS_celebrations_interval_ms));
  host.AddWorker("celebrations", [&host, sweep, interval](const absl::Notification& stop) {
    while (!stop.HasBeenNotified()) {
      SweepStats stats = sweep->RunAllOrgs(host.org_registry(), absl::Now());
      if (stats.paid + stats.failed > 0) {
        common::log::Info(absl::StrCat("celebrations: ", stats.paid, " celebrated, ",
                                       stats.failed, " payments left for a retry"));
      }
      stop.WaitForNotificationWithTimeout(interval);
    }
  });
  host.Keep(store);
  host.Keep(directory);
  host.Keep(payer);
  host.Keep(company_kudos);
  host.Keep(sweep);
  return absl::OkStatus();
}

}  // namespace programs
