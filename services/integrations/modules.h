// The areas of the integrations service (issue 17). Each adds its gRPC
// services, HTTP routes and workers to the host; a failure stops startup.
#pragma once

#include "absl/status/status.h"
#include "services/integrations/host.h"

namespace integrations {

// Outbound webhooks (webhooks.proto).
absl::Status AddWebhooks(Host& host);
// The Slack-compatible app: slash command, user mapping (slack.proto).
absl::Status AddSlack(Host& host);
// SCIM 2.0 and CSV import (directory_sync.proto).
absl::Status AddDirectorySync(Host& host);
// NDJSON export and the audit read RPC (export.proto).
absl::Status AddExport(Host& host);

}  // namespace integrations
