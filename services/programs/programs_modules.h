// The areas of the programs service (issue 18). Each adds its gRPC services
// and workers to the host; a failure stops startup.
#pragma once

#include "absl/status/status.h"
#include "services/programs/programs_host.h"

namespace programs {

// Program budgets and awards (awards.proto): BudgetService, AwardService and
// the payment sweep.
absl::Status AddAwards(Host& host);
// Automatic celebrations (celebrations.proto), defined by that area.
absl::Status AddCelebrations(Host& host);

}  // namespace programs
