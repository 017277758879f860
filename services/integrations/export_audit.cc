#include "services/integrations/export_audit.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/audit.h"
#include "common/check/check.h"

namespace integrations {
namespace {

// Entries per XRANGE round trip.
constexpr int kAuditBatch = 1000;

bool Matches(const v1::AuditEntry& entry, const AuditFilter& filter) {
  return (filter.actor.empty() || entry.actor() == filter.actor) &&
         (filter.action.empty() || entry.action() == filter.action);
}

}  // namespace

absl::StatusOr<v1::AuditEntry> AuditEntryFromReply(const common::redis::Reply& entry) {
  if (entry.elements.size() != 2 || entry.elements[1].elements.size() % 2 != 0) {
    return absl::InternalError("audit stream: an XRANGE entry is not [id, [field, value...]]");
  }
  v1::AuditEntry out;
  out.set_entry_id(entry.elements[0].str);
  absl::StatusOr<absl::Time> time = StreamIdTime(out.entry_id());
  if (!time.ok()) return absl::InternalError("audit stream: an entry id is malformed");
  out.mutable_time()->set_seconds(absl::ToUnixSeconds(*time));
  out.mutable_time()->set_nanos(static_cast<int32_t>(absl::ToUnixMillis(*time) % 1000 * 1000000));
  const auto& fields = entry.elements[1].elements;
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    const std::string& name = fields[i].str;
    const std::string& value = fields[i + 1].str;
    if (name == "actor")
      out.set_actor(value);
    else if (name == "action")
      out.set_action(value);
    else if (name == "target")
      out.set_target(value);
    else if (name == "reason")
      out.set_reason(value);
  }
  return out;
}

absl::StatusOr<AuditPage> AuditReader::Read(absl::string_view org, const Period& period,
                                            absl::string_view after, const AuditFilter& filter,
                                            int page_size) {
  KUDOS_CHECK(page_size > 0 && page_size <= kMaxExportPageSize, "a checked page size");
  if (!after.empty()) {
    if (absl::Status s = CheckStreamId("page_token", after); !s.ok()) return s;
  }
  const bool filtered = !filter.actor.empty() || !filter.action.empty();
  // Exclusive bounds: after the last entry returned, before `to`.
  std::string start = after.empty() ? StreamIdAt(period.from) : absl::StrCat("(", after);
  const std::string end = absl::StrCat("(", StreamIdAt(period.to));
  AuditPage page;
  int scanned = 0;
  while (scanned < kMaxAuditEntriesScannedPerPage) {
    int want = filtered ? kAuditBatch : page_size - static_cast<int>(page.entries.size());
    want = std::min(want, kMaxAuditEntriesScannedPerPage - scanned);
    absl::StatusOr<common::redis::Reply> reply = pool_.Run(
        {"XRANGE", common::audit::StreamKey(org), start, end, "COUNT", absl::StrCat(want)});
    if (!reply.ok()) return reply.status();
    for (const common::redis::Reply& raw : reply->elements) {
      absl::StatusOr<v1::AuditEntry> entry = AuditEntryFromReply(raw);
      if (!entry.ok()) return entry.status();
      ++scanned;
      start = absl::StrCat("(", entry->entry_id());
      page.next_after = entry->entry_id();
      if (!Matches(*entry, filter)) continue;
      page.entries.push_back(*std::move(entry));
      if (static_cast<int>(page.entries.size()) == page_size) return page;
    }
    // Fewer than asked: the period is read to its end.
    if (static_cast<int>(reply->elements.size()) < want) {
      page.next_after.clear();
      return page;
    }
  }
  KUDOS_CHECK(!page.next_after.empty(), "a page stopped by its scan bound continues");
  return page;
}

}  // namespace integrations
