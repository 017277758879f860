#include "services/integrations/export_rules.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"

namespace integrations {
namespace {

using google::protobuf::Timestamp;
using google::protobuf::util::TimeUtil;

absl::Time ToTime(const Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::Status CheckTimestamp(absl::string_view field, const Timestamp& t) {
  if (t.seconds() < TimeUtil::kTimestampMinSeconds ||
      t.seconds() > TimeUtil::kTimestampMaxSeconds || t.nanos() < 0 || t.nanos() > 999999999) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not a valid timestamp"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Period> CheckPeriod(const Period& period) {
  if (period.from >= period.to) {
    return absl::InvalidArgumentError("to: must be after from");
  }
  if (period.to - period.from > kMaxExportPeriod) {
    return absl::InvalidArgumentError(absl::StrCat("to: the period is longer than ",
                                                   absl::ToInt64Hours(kMaxExportPeriod) / 24,
                                                   " days; export it in shorter periods"));
  }
  return period;
}

constexpr char kCursorVersion[] = "x1";

std::string Field(absl::string_view value) { return absl::WebSafeBase64Escape(value); }

absl::Status BadToken(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("page_token: ", why));
}

}  // namespace

absl::StatusOr<Period> ExportPeriod(const Timestamp* from, const Timestamp* to) {
  if (from == nullptr) return absl::InvalidArgumentError("from: is required");
  if (to == nullptr) return absl::InvalidArgumentError("to: is required");
  if (absl::Status s = CheckTimestamp("from", *from); !s.ok()) return s;
  if (absl::Status s = CheckTimestamp("to", *to); !s.ok()) return s;
  return CheckPeriod(Period{ToTime(*from), ToTime(*to)});
}

absl::StatusOr<Period> AuditPeriod(const Timestamp* from, const Timestamp* to, absl::Time now) {
  Period period{absl::UnixEpoch(), now};
  if (to != nullptr) {
    if (absl::Status s = CheckTimestamp("to", *to); !s.ok()) return s;
    period.to = ToTime(*to);
  }
  if (from != nullptr) {
    if (absl::Status s = CheckTimestamp("from", *from); !s.ok()) return s;
    period.from = ToTime(*from);
  } else {
    // Unset: as far back as the period's bound allows (the stream keeps
    // retention.audit_days anyway).
    period.from = period.to - kMaxExportPeriod;
  }
  return CheckPeriod(period);
}

absl::StatusOr<int> ExportPageSize(int32_t requested, int default_size) {
  if (requested == 0) return default_size;
  if (requested < 0 || requested > kMaxExportPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be 1..", kMaxExportPageSize, " (0 = ", default_size, ")"));
  }
  return static_cast<int>(requested);
}

std::string EncodeExportCursor(const ExportCursor& cursor) {
  std::vector<std::string> parts = {kCursorVersion,
                                    absl::StrCat(static_cast<int>(cursor.kind)),
                                    absl::StrCat(absl::ToUnixNanos(cursor.period.from)),
                                    absl::StrCat(absl::ToUnixNanos(cursor.period.to)),
                                    Field(cursor.upstream),
                                    Field(cursor.account),
                                    Field(cursor.people_token),
                                    Field(cursor.person_id)};
  return absl::StrJoin(parts, ".");
}

absl::StatusOr<ExportCursor> DecodeExportCursor(absl::string_view token, v1::ExportKind kind,
                                                const Period& period) {
  if (token.size() > 4096) return BadToken("longer than any token this API returns");
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  int kind_number = 0;
  int64_t from_ns = 0;
  int64_t to_ns = 0;
  if (parts.size() != 8 || parts[0] != kCursorVersion ||
      !absl::SimpleAtoi(parts[1], &kind_number) || !absl::SimpleAtoi(parts[2], &from_ns) ||
      !absl::SimpleAtoi(parts[3], &to_ns)) {
    return BadToken("is not a token this API returned");
  }
  if (kind_number != static_cast<int>(kind) || from_ns != absl::ToUnixNanos(period.from) ||
      to_ns != absl::ToUnixNanos(period.to)) {
    return BadToken(
        "belongs to an export of another kind or period; send the same kind, from and to");
  }
  ExportCursor cursor;
  cursor.kind = kind;
  cursor.period = period;
  std::string* fields[] = {&cursor.upstream, &cursor.account, &cursor.people_token,
                           &cursor.person_id};
  for (size_t i = 0; i < 4; ++i) {
    if (!absl::WebSafeBase64Unescape(parts[4 + i], fields[i])) {
      return BadToken("is not a token this API returned");
    }
  }
  return cursor;
}

absl::Status CheckStreamId(absl::string_view field, absl::string_view id) {
  std::vector<absl::string_view> parts = absl::StrSplit(id, '-');
  uint64_t ms = 0;
  uint64_t seq = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &ms) || !absl::SimpleAtoi(parts[1], &seq) ||
      id.size() > 41) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": is not a token this API returned (an audit entry id)"));
  }
  return absl::OkStatus();
}

std::string StreamIdAt(absl::Time t) {
  int64_t ms = absl::ToUnixMillis(t);
  return absl::StrCat(ms < 0 ? 0 : ms, "-0");
}

absl::StatusOr<absl::Time> StreamIdTime(absl::string_view id) {
  if (absl::Status s = CheckStreamId("entry_id", id); !s.ok()) return s;
  int64_t ms = 0;
  KUDOS_CHECK(absl::SimpleAtoi(id.substr(0, id.find('-')), &ms), "a checked stream id");
  return absl::FromUnixMillis(ms);
}

absl::Status AppendJsonLine(const google::protobuf::Message& message, std::string& out) {
  std::string line;
  auto status = google::protobuf::util::MessageToJsonString(message, &line);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot encode ", message.GetTypeName(), " as JSON"));
  }
  KUDOS_CHECK(line.find('\n') == std::string::npos, "protobuf's compact JSON has no newline");
  absl::StrAppend(&out, line, "\n");
  return absl::OkStatus();
}

absl::StatusOr<v1::ExportKind> ExportKindFromName(absl::string_view name) {
  if (name == "kudos") return v1::EXPORT_KIND_KUDOS;
  if (name == "transfers") return v1::EXPORT_KIND_TRANSFERS;
  if (name == "audit") return v1::EXPORT_KIND_AUDIT;
  return absl::NotFoundError("no such export: use /v1/export/kudos, /transfers or /audit");
}

std::string ExportKindName(v1::ExportKind kind) {
  switch (kind) {
    case v1::EXPORT_KIND_KUDOS:
      return "kudos";
    case v1::EXPORT_KIND_TRANSFERS:
      return "transfers";
    case v1::EXPORT_KIND_AUDIT:
      return "audit";
    default:
      return "";
  }
}

absl::StatusOr<std::map<std::string, std::string>> ParseQuery(absl::string_view query) {
  std::map<std::string, std::string> params;
  if (query.empty()) return params;
  for (absl::string_view pair : absl::StrSplit(query, '&')) {
    if (pair.empty()) continue;
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    std::string decoded[2];
    absl::string_view raw[2] = {kv.first, kv.second};
    for (int i = 0; i < 2; ++i) {
      for (size_t j = 0; j < raw[i].size(); ++j) {
        char c = raw[i][j];
        if (c != '%') {
          decoded[i].push_back(c);
          continue;
        }
        absl::string_view hex = raw[i].substr(j + 1, 2);
        if (hex.size() != 2 || !absl::ascii_isxdigit(hex[0]) || !absl::ascii_isxdigit(hex[1])) {
          return absl::InvalidArgumentError("query: a '%' escape is not two hex digits");
        }
        decoded[i] += absl::HexStringToBytes(hex);
        j += 2;
      }
    }
    if (!params.emplace(decoded[0], decoded[1]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("query: '", decoded[0].substr(0, 32), "' is given more than once"));
    }
  }
  return params;
}

std::string QueryEscape(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "%",
                      absl::AsciiStrToUpper(absl::BytesToHexString(absl::string_view(&c, 1))));
    }
  }
  return out;
}

absl::StatusOr<Timestamp> ParseRfc3339(absl::string_view field, absl::string_view value) {
  Timestamp t;
  if (!TimeUtil::FromString(std::string(value), &t)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be an RFC 3339 time such as 2026-11-01T00:00:00Z"));
  }
  return t;
}

std::string FormatRfc3339(const Timestamp& t) { return TimeUtil::ToString(t); }

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

}  // namespace integrations
