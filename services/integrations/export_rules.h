// Area "export" (issue 17): the plain rules of exports and the audit read —
// periods, page sizes, page tokens, NDJSON lines, the HTTP query — with no
// gRPC or Redis, so they are unit-tested directly.
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "integrations/v1/export.pb.h"

namespace integrations {

// Longest period one export or audit read may cover.
inline constexpr absl::Duration kMaxExportPeriod = absl::Hours(24 * 366);
inline constexpr int kDefaultExportPageSize = 500;
inline constexpr int kDefaultAuditPageSize = 100;
// Lines of an export page, entries of an audit page.
inline constexpr int kMaxExportPageSize = 1000;
// Upstream calls (kudos, ledger) one export page may make: a page with fewer
// lines and a next_page_token comes back when they are used up.
inline constexpr int kMaxUpstreamCallsPerPage = 40;
// Stream entries one audit page may read (filters may skip most of them).
inline constexpr int kMaxAuditEntriesScannedPerPage = 10000;
// Kudos (by commit) and transfers (by posting) are listed newest first, in
// an order that may differ from their times by a commit's delay: a listing
// stops only once it is this far before the period's start.
inline constexpr absl::Duration kListingOrderSlack = absl::Hours(1);
inline constexpr char kNdjsonContentType[] = "application/x-ndjson";

// [from, to).
struct Period {
  absl::Time from;
  absl::Time to;
  bool Contains(absl::Time t) const { return t >= from && t < to; }
};

// Both bounds required, from < to, at most kMaxExportPeriod apart;
// INVALID_ARGUMENT naming the field otherwise.
absl::StatusOr<Period> ExportPeriod(const google::protobuf::Timestamp* from,
                                    const google::protobuf::Timestamp* to);
// Optional bounds (nullptr = unset): from defaults to the stream's start, to
// to `now`; the same rules once both are known.
absl::StatusOr<Period> AuditPeriod(const google::protobuf::Timestamp* from,
                                   const google::protobuf::Timestamp* to, absl::Time now);

// 0 = `default_size`; 1..kMaxExportPageSize; INVALID_ARGUMENT otherwise.
absl::StatusOr<int> ExportPageSize(int32_t requested, int default_size);

// Where an export continues. Bound to its kind and period: a token of
// another export is refused.
struct ExportCursor {
  v1::ExportKind kind = v1::EXPORT_KIND_UNSPECIFIED;
  Period period;
  // The upstream page token (kudos, ledger) of the next upstream page, or
  // the last audit entry id returned.
  std::string upstream;
  // Transfers: the account being read ("issuer", "rewards", or a person's
  // "allowance"/"earned"), and for a person's account the ListPeople token
  // of the page holding the person and the person's id.
  std::string account;
  std::string people_token;
  std::string person_id;
};

std::string EncodeExportCursor(const ExportCursor& cursor);
// INVALID_ARGUMENT "page_token: ..." when the token is not one this API
// returned, or belongs to another kind or period.
absl::StatusOr<ExportCursor> DecodeExportCursor(absl::string_view token, v1::ExportKind kind,
                                                const Period& period);

// A stream entry id "<ms>-<seq>", or INVALID_ARGUMENT naming `field`.
absl::Status CheckStreamId(absl::string_view field, absl::string_view id);
// The stream id range of `period` for XRANGE: [from_ms-0, to_ms-0).
std::string StreamIdAt(absl::Time t);
// The time of a stream entry id (its milliseconds).
absl::StatusOr<absl::Time> StreamIdTime(absl::string_view id);

// Appends protobuf's JSON mapping of `message` and "\n".
absl::Status AppendJsonLine(const google::protobuf::Message& message, std::string& out);

// HTTP: "kudos" | "transfers" | "audit" (the path's last part).
absl::StatusOr<v1::ExportKind> ExportKindFromName(absl::string_view name);
std::string ExportKindName(v1::ExportKind kind);
// A query string's parameters, percent-decoded ('+' stays '+', so an
// RFC 3339 offset survives); INVALID_ARGUMENT for a bad escape or a
// parameter given twice.
absl::StatusOr<std::map<std::string, std::string>> ParseQuery(absl::string_view query);
// Percent-encodes everything but RFC 3986's unreserved characters.
std::string QueryEscape(absl::string_view value);
// RFC 3339, e.g. "2026-11-01T00:00:00Z"; INVALID_ARGUMENT naming `field`.
absl::StatusOr<google::protobuf::Timestamp> ParseRfc3339(absl::string_view field,
                                                         absl::string_view value);
std::string FormatRfc3339(const google::protobuf::Timestamp& t);
// The HTTP status of a refusal.
int HttpStatusOf(const absl::Status& status);

}  // namespace integrations
