// Issue 18, awards and budgets: registers this area with the host
// (programs_modules.h): BudgetService, AwardService and the payment sweep.
#include <memory>

#include "absl/time/time.h"
#include "services/programs/awards_payments.h"
#include "services/programs/awards_service.h"
#include "services/programs/budget_service.h"
#include "services/programs/programs_modules.h"

namespace programs {

absl::Status AddAwards(Host& host) {
  auto store = std::make_shared<ProgramsStore>(host.pool());
  auto book = std::make_shared<AwardsBook>(*store);
  auto authorization = [&host](absl::string_view org) { return host.ServiceAuthorization(org); };
  auto payments = std::make_shared<AwardPayments>(
      *book, LedgerPoster(host.ledger_channel(), authorization, host.options().call_timeout));
  host.Keep(store);
  host.Keep(book);
  host.Keep(payments);
  host.AddService(std::make_unique<BudgetServiceImpl>(
      host.guard(), *book,
      KudosOrgZone(host.kudos_channel(), authorization, host.options().call_timeout)));
  host.AddService(std::make_unique<AwardServiceImpl>(host.guard(), *book, *payments));
  absl::Duration interval = absl::FromChrono(host.options().sweep_interval);
  host.AddWorker("awards payment sweep",
                 [payments, &host, interval](const absl::Notification& stop) {
                   RunPaymentSweep(*payments, host.org_registry(), interval, stop);
                 });
  return absl::OkStatus();
}

}  // namespace programs
