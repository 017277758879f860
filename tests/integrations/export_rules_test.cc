// Area "export" (issue 17): the plain rules — periods, page sizes, page
// tokens bound to their export, the HTTP query, NDJSON lines.
#include "services/integrations/export_rules.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"

namespace integrations {
namespace {

google::protobuf::Timestamp At(int64_t seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  return t;
}

constexpr int64_t kDay = 86400;
constexpr int64_t kNov1 = 1793491200;  // 2026-11-01T00:00:00Z

TEST(ExportRulesTest, ExportPeriod_NeedsBothBoundsInOrderAndAtMost366Days) {
  google::protobuf::Timestamp from = At(kNov1);
  google::protobuf::Timestamp to = At(kNov1 + 30 * kDay);
  absl::StatusOr<Period> period = ExportPeriod(&from, &to);
  ASSERT_TRUE(period.ok()) << period.status();
  EXPECT_EQ(period->from, absl::FromUnixSeconds(kNov1));
  EXPECT_TRUE(period->Contains(absl::FromUnixSeconds(kNov1)));
  EXPECT_FALSE(period->Contains(absl::FromUnixSeconds(kNov1 + 30 * kDay)));

  EXPECT_EQ(ExportPeriod(nullptr, &to).status().message(), "from: is required");
  EXPECT_EQ(ExportPeriod(&from, nullptr).status().message(), "to: is required");
  EXPECT_EQ(ExportPeriod(&to, &from).status().message(), "to: must be after from");
  EXPECT_EQ(ExportPeriod(&from, &from).status().code(), absl::StatusCode::kInvalidArgument);
  google::protobuf::Timestamp far = At(kNov1 + 367 * kDay);
  absl::Status too_long = ExportPeriod(&from, &far).status();
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.message().find("366 days"), std::string::npos) << too_long;
  google::protobuf::Timestamp bad = At(kNov1);
  bad.set_nanos(-1);
  EXPECT_EQ(ExportPeriod(&bad, &to).status().message(), "from: not a valid timestamp");
}

TEST(ExportRulesTest, AuditPeriod_DefaultsToNowAndTheLongestPeriodBack) {
  absl::Time now = absl::FromUnixSeconds(kNov1);
  absl::StatusOr<Period> period = AuditPeriod(nullptr, nullptr, now);
  ASSERT_TRUE(period.ok()) << period.status();
  EXPECT_EQ(period->to, now);
  EXPECT_EQ(period->from, now - kMaxExportPeriod);
  google::protobuf::Timestamp later = At(kNov1 + kDay);
  EXPECT_EQ(AuditPeriod(&later, nullptr, now).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExportRulesTest, PageSize_DefaultsAndIsBoundedBy1000) {
  EXPECT_EQ(*ExportPageSize(0, kDefaultExportPageSize), kDefaultExportPageSize);
  EXPECT_EQ(*ExportPageSize(1000, kDefaultExportPageSize), 1000);
  EXPECT_EQ(ExportPageSize(1001, 100).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExportPageSize(-1, 100).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExportRulesTest, PageToken_RoundTripsAndIsRefusedForAnotherKindPeriodOrForgery) {
  Period period{absl::FromUnixSeconds(kNov1), absl::FromUnixSeconds(kNov1 + kDay)};
  ExportCursor cursor{v1::EXPORT_KIND_TRANSFERS,
                      period,
                      "upstream.token/with=odd+chars",
                      "earned",
                      "people-token",
                      "alice"};
  std::string token = EncodeExportCursor(cursor);
  absl::StatusOr<ExportCursor> back = DecodeExportCursor(token, v1::EXPORT_KIND_TRANSFERS, period);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->upstream, cursor.upstream);
  EXPECT_EQ(back->account, "earned");
  EXPECT_EQ(back->people_token, "people-token");
  EXPECT_EQ(back->person_id, "alice");

  absl::Status other_kind = DecodeExportCursor(token, v1::EXPORT_KIND_KUDOS, period).status();
  EXPECT_EQ(other_kind.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(other_kind.message().find("another kind or period"), std::string::npos);
  Period other{period.from, period.to + absl::Seconds(1)};
  EXPECT_EQ(DecodeExportCursor(token, v1::EXPORT_KIND_TRANSFERS, other).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const std::string& forged : {std::string("garbage"), token + ".x", std::string(5000, 'a'),
                                    std::string("x1.2.0.0.!!.a.b.c")}) {
    absl::Status s = DecodeExportCursor(forged, v1::EXPORT_KIND_TRANSFERS, period).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << forged;
    EXPECT_EQ(s.message().rfind("page_token: ", 0), 0u) << s;
  }
}

TEST(ExportRulesTest, StreamIds_BoundThePeriodAndRefuseAnythingElse) {
  EXPECT_EQ(StreamIdAt(absl::FromUnixMillis(1764412345678)), "1764412345678-0");
  EXPECT_EQ(*StreamIdTime("1764412345678-3"), absl::FromUnixMillis(1764412345678));
  EXPECT_TRUE(CheckStreamId("page_token", "1-0").ok());
  for (const char* bad : {"", "1", "1-", "-1", "a-1", "1-1-1", "1-0 COUNT 5"}) {
    EXPECT_EQ(CheckStreamId("page_token", bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ExportRulesTest, JsonLine_IsProtobufsJsonMappingOnOneLine) {
  v1::AuditEntry entry;
  entry.set_entry_id("1-0");
  entry.set_actor("root");
  entry.set_reason("line one\nline two");
  std::string out;
  ASSERT_TRUE(AppendJsonLine(entry, out).ok());
  ASSERT_TRUE(AppendJsonLine(entry, out).ok());
  std::vector<std::string> lines = absl::StrSplit(out, '\n');
  ASSERT_EQ(lines.size(), 3u);  // two lines and the empty rest after the last "\n"
  EXPECT_EQ(lines[2], "");
  v1::AuditEntry parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[0], &parsed).ok());
  EXPECT_EQ(parsed.reason(), "line one\nline two");
  EXPECT_NE(lines[0].find("\"entryId\":\"1-0\""), std::string::npos) << lines[0];
}

TEST(ExportRulesTest, Query_IsPercentDecodedAndStrict) {
  auto query =
      ParseQuery("from=2026-11-01T00%3A00%3A00Z&to=2026-12-01T00:00:00%2B01:00&page_size=5");
  ASSERT_TRUE(query.ok()) << query.status();
  EXPECT_EQ(query->at("from"), "2026-11-01T00:00:00Z");
  EXPECT_EQ(query->at("to"), "2026-12-01T00:00:00+01:00");
  EXPECT_EQ(query->at("page_size"), "5");
  EXPECT_EQ(ParseQuery("a=%4").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseQuery("a=%zz").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseQuery("a=1&a=2").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QueryEscape("a b:+/Z~"), "a%20b%3A%2B%2FZ~");
  EXPECT_EQ(*ParseQuery("t=" + QueryEscape("x1.2.3/+=")),
            (std::map<std::string, std::string>{{"t", "x1.2.3/+="}}));
  EXPECT_TRUE(ParseRfc3339("from", "2026-11-01T00:00:00Z").ok());
  EXPECT_EQ(ParseRfc3339("from", "yesterday").status().message(),
            "from: must be an RFC 3339 time such as 2026-11-01T00:00:00Z");
}

TEST(ExportRulesTest, KindNames_AreThePathsOfTheHttpRoute) {
  for (v1::ExportKind kind :
       {v1::EXPORT_KIND_KUDOS, v1::EXPORT_KIND_TRANSFERS, v1::EXPORT_KIND_AUDIT}) {
    EXPECT_EQ(*ExportKindFromName(ExportKindName(kind)), kind);
  }
  EXPECT_EQ(ExportKindFromName("people").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(HttpStatusOf(absl::PermissionDeniedError("x")), 403);
  EXPECT_EQ(HttpStatusOf(absl::InvalidArgumentError("x")), 400);
  EXPECT_EQ(HttpStatusOf(absl::UnauthenticatedError("x")), 401);
}

}  // namespace
}  // namespace integrations
