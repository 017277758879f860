// Area "export" (issue 17): reading the org's audit stream `audit:{org}`
// (common/audit.h), written by kudos and ledger and until now never read.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/redis_client.h"
#include "integrations/v1/export.pb.h"
#include "services/integrations/export_rules.h"

namespace integrations {

// Exact matches; empty = any.
struct AuditFilter {
  std::string actor;
  std::string action;
};

struct AuditPage {
  std::vector<v1::AuditEntry> entries;
  // The entry id the next page continues after; empty at the period's end.
  std::string next_after;
};

class AuditReader {
 public:
  explicit AuditReader(common::redis::Pool& pool) : pool_(pool) {}

  // Entries of `org` in `period`, oldest first, after the entry id `after`
  // ("" = from the period's start): at most `page_size` that match `filter`,
  // reading at most kMaxAuditEntriesScannedPerPage entries. UNAVAILABLE when
  // Redis fails; INVALID_ARGUMENT for a malformed `after`.
  absl::StatusOr<AuditPage> Read(absl::string_view org, const Period& period,
                                 absl::string_view after, const AuditFilter& filter, int page_size);

 private:
  common::redis::Pool& pool_;
};

// One XRANGE entry ([id, [field, value, ...]]) as an AuditEntry.
absl::StatusOr<v1::AuditEntry> AuditEntryFromReply(const common::redis::Reply& entry);

}  // namespace integrations
