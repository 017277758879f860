#include "services/integrations/export_service.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "common/ratelimit/rate_limit.h"
#include "services/integrations/delegation.h"

namespace integrations {
namespace {

using common::auth::Principal;
using common::grpc_util::FromGrpcStatus;
using common::grpc_util::ToGrpcStatus;
using ledger::v1::Account;

// Largest upstream pages (kudos ListKudos 100, ledger ListTransfers 500,
// kudos ListPeople 1000; people pages kept small so a resumed page is cheap).
constexpr int kKudosPage = 100;
constexpr int kTransfersPage = 500;
constexpr int kPeoplePage = 100;
// Audit filters: bounded like any field.
constexpr size_t kMaxFilterBytes = 256;
constexpr char kExportPathPrefix[] = "/v1/export/";

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// An upstream refusal, named after the call, with its code kept.
absl::Status Upstream(absl::string_view call, const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status inner = FromGrpcStatus(status);
  return absl::Status(inner.code(), absl::StrCat(call, ": ", inner.message()));
}

Account AccountOf(const ExportCursor& cursor) {
  Account account;
  if (cursor.account == "issuer")
    account.set_type(ledger::v1::ACCOUNT_TYPE_ISSUER);
  else if (cursor.account == "rewards")
    account.set_type(ledger::v1::ACCOUNT_TYPE_REWARDS);
  else if (cursor.account == "allowance")
    account.set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  else if (cursor.account == "earned")
    account.set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  if (cursor.account == "allowance" || cursor.account == "earned") {
    account.set_person_id(cursor.person_id);
  }
  return account;
}

bool SameAccount(const Account& a, const Account& b) {
  return a.type() == b.type() && a.person_id() == b.person_id();
}

// A cursor from a token names an account this API writes.
absl::Status CheckTransfersCursor(const ExportCursor& cursor) {
  const std::string& a = cursor.account;
  bool org = a == "issuer" || a == "rewards";
  bool person = a == "allowance" || a == "earned";
  if (!a.empty() && !org && !person) {
    return absl::InvalidArgumentError("page_token: is not a token this API returned");
  }
  if (person && !common::auth::ValidId(cursor.person_id)) {
    return absl::InvalidArgumentError("page_token: is not a token this API returned");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RequireExportAdmin(const Principal& principal) {
  if (principal.is_service()) {
    return absl::PermissionDeniedError("service tokens cannot export an org's data");
  }
  if (!principal.is_admin()) {
    return absl::PermissionDeniedError(
        "only admins export the org's data and read its audit trail");
  }
  return absl::OkStatus();
}

Exporter::Exporter(Host& host, std::shared_ptr<grpc::Channel> kudos,
                   std::shared_ptr<grpc::Channel> ledger)
    : host_(host),
      audit_(host.pool()),
      kudos_(kudos::v1::KudosService::NewStub(kudos)),
      directory_(kudos::v1::DirectoryService::NewStub(kudos)),
      ledger_(ledger::v1::LedgerService::NewStub(ledger)) {}

std::unique_ptr<grpc::ClientContext> Exporter::CallContext(const std::string& authorization) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", authorization);
  common::grpc_util::SetDeadline(*context, host_.options().call_timeout);
  return context;
}

absl::StatusOr<v1::ExportResponse> Exporter::Export(const Principal& admin,
                                                    const v1::ExportRequest& request) {
  if (absl::Status s = RequireExportAdmin(admin); !s.ok()) return s;
  const v1::ExportKind kind = request.kind();
  if (kind != v1::EXPORT_KIND_KUDOS && kind != v1::EXPORT_KIND_TRANSFERS &&
      kind != v1::EXPORT_KIND_AUDIT) {
    return absl::InvalidArgumentError("kind: must be KUDOS, TRANSFERS or AUDIT");
  }
  absl::StatusOr<Period> period = ExportPeriod(request.has_from() ? &request.from() : nullptr,
                                               request.has_to() ? &request.to() : nullptr);
  if (!period.ok()) return period.status();
  absl::StatusOr<int> page_size = ExportPageSize(request.page_size(), kDefaultExportPageSize);
  if (!page_size.ok()) return page_size.status();
  ExportCursor cursor{kind, *period, "", "", "", ""};
  if (!request.page_token().empty()) {
    absl::StatusOr<ExportCursor> decoded = DecodeExportCursor(request.page_token(), kind, *period);
    if (!decoded.ok()) return decoded.status();
    cursor = *std::move(decoded);
  }
  Page page;
  absl::Status status;
  if (kind == v1::EXPORT_KIND_AUDIT) {
    status = ExportAudit(admin.org, cursor, *page_size, page);
  } else {
    // Read as the calling admin: the callees see that admin, acted for by us.
    absl::StatusOr<std::string> authorization =
        DelegatedAuthorization(host_, admin.org, admin.subject, {"admin"});
    if (!authorization.ok()) return authorization.status();
    status = kind == v1::EXPORT_KIND_KUDOS
                 ? ExportKudos(*authorization, cursor, *page_size, page)
                 : ExportTransfers(*authorization, cursor, *page_size, page);
  }
  if (!status.ok()) return status;
  KUDOS_CHECK(page.count <= *page_size, "an export page holds at most page_size lines");
  v1::ExportResponse response;
  response.set_ndjson(std::move(page.ndjson));
  response.set_content_type(kNdjsonContentType);
  response.set_count(page.count);
  if (!page.done) response.set_next_page_token(EncodeExportCursor(cursor));
  return response;
}

absl::Status Exporter::ExportKudos(const std::string& authorization, ExportCursor& cursor,
                                   int page_size, Page& page) {
  const absl::Time stop_before = cursor.period.from - kListingOrderSlack;
  for (int calls = 0; page.count < page_size && calls < kMaxUpstreamCallsPerPage; ++calls) {
    kudos::v1::ListKudosRequest request;
    // Never more than the page has room for: the next page resumes at an
    // upstream page boundary.
    request.set_page_size(std::min(kKudosPage, page_size - page.count));
    request.set_page_token(cursor.upstream);
    kudos::v1::ListKudosResponse response;
    grpc::Status status = kudos_->ListKudos(CallContext(authorization).get(), request, &response);
    if (absl::Status s = Upstream("kudos ListKudos", status); !s.ok()) return s;
    bool past_start = false;
    for (const kudos::v1::Kudos& kudos : response.kudos()) {
      absl::Time created = ToTime(kudos.create_time());
      if (created < stop_before) past_start = true;
      // A retracted kudos stays in the admin's export with "retracted": true,
      // as its points' reversal stays in the ledger export (issue 18).
      if (kudos.state() != kudos::v1::KUDOS_STATE_COMMITTED || !cursor.period.Contains(created)) {
        continue;
      }
      if (absl::Status s = AppendJsonLine(kudos, page.ndjson); !s.ok()) return s;
      ++page.count;
    }
    cursor.upstream = response.next_page_token();
    if (cursor.upstream.empty() || past_start) {
      page.done = true;
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

absl::Status Exporter::NextAccount(const std::string& authorization, ExportCursor& cursor,
                                   int& calls, bool& done) {
  cursor.upstream.clear();
  if (cursor.account == "issuer") {
    cursor.account = "rewards";
    return absl::OkStatus();
  }
  if (cursor.account == "allowance") {
    cursor.account = "earned";
    return absl::OkStatus();
  }
  // From "rewards" to the first person, from "earned" to the next one: the
  // first person listed after the current one (ids ascending), on this
  // people page or the next.
  const bool first = cursor.account == "rewards";
  std::string people_token = first ? std::string() : cursor.people_token;
  for (int pages = 0; pages < 2; ++pages) {
    kudos::v1::ListPeopleRequest request;
    request.set_page_size(kPeoplePage);
    request.set_page_token(people_token);
    kudos::v1::ListPeopleResponse response;
    ++calls;
    grpc::Status status =
        directory_->ListPeople(CallContext(authorization).get(), request, &response);
    if (absl::Status s = Upstream("kudos ListPeople", status); !s.ok()) return s;
    for (const kudos::v1::Person& person : response.people()) {
      if (first || pages > 0 || person.person_id() > cursor.person_id) {
        cursor.account = "allowance";
        cursor.people_token = people_token;
        cursor.person_id = person.person_id();
        return absl::OkStatus();
      }
    }
    if (response.next_page_token().empty()) break;
    people_token = response.next_page_token();
  }
  done = true;
  return absl::OkStatus();
}

absl::Status Exporter::ExportTransfers(const std::string& authorization, ExportCursor& cursor,
                                       int page_size, Page& page) {
  if (absl::Status s = CheckTransfersCursor(cursor); !s.ok()) return s;
  if (cursor.account.empty()) cursor.account = "issuer";
  const absl::Time stop_before = cursor.period.from - kListingOrderSlack;
  int calls = 0;
  while (page.count < page_size && calls < kMaxUpstreamCallsPerPage) {
    const Account account = AccountOf(cursor);
    ledger::v1::ListTransfersRequest request;
    *request.mutable_account() = account;
    request.set_page_size(std::min(kTransfersPage, page_size - page.count));
    request.set_page_token(cursor.upstream);
    ledger::v1::ListTransfersResponse response;
    ++calls;
    grpc::Status status =
        ledger_->ListTransfers(CallContext(authorization).get(), request, &response);
    if (absl::Status s = Upstream("ledger ListTransfers", status); !s.ok()) return s;
    bool past_start = false;
    for (const ledger::v1::Transfer& transfer : response.transfers()) {
      absl::Time posted = ToTime(transfer.post_time());
      if (posted < stop_before) past_start = true;
      // Each transfer once: from its credit account's listing.
      if (!SameAccount(transfer.credit_account(), account) || !cursor.period.Contains(posted)) {
        continue;
      }
      if (absl::Status s = AppendJsonLine(transfer, page.ndjson); !s.ok()) return s;
      ++page.count;
    }
    cursor.upstream = response.next_page_token();
    if (!cursor.upstream.empty() && !past_start) continue;
    if (absl::Status s = NextAccount(authorization, cursor, calls, page.done); !s.ok()) return s;
    if (page.done) return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status Exporter::ExportAudit(const std::string& org, ExportCursor& cursor, int page_size,
                                   Page& page) {
  absl::StatusOr<AuditPage> audit = audit_.Read(org, cursor.period, cursor.upstream, {}, page_size);
  if (!audit.ok()) return audit.status();
  for (const v1::AuditEntry& entry : audit->entries) {
    if (absl::Status s = AppendJsonLine(entry, page.ndjson); !s.ok()) return s;
    ++page.count;
  }
  cursor.upstream = audit->next_after;
  page.done = audit->next_after.empty();
  return absl::OkStatus();
}

absl::StatusOr<v1::ListAuditEntriesResponse> Exporter::ListAuditEntries(
    const Principal& admin, const v1::ListAuditEntriesRequest& request, absl::Time now) {
  if (absl::Status s = RequireExportAdmin(admin); !s.ok()) return s;
  absl::StatusOr<Period> period = AuditPeriod(request.has_from() ? &request.from() : nullptr,
                                              request.has_to() ? &request.to() : nullptr, now);
  if (!period.ok()) return period.status();
  absl::StatusOr<int> page_size = ExportPageSize(request.page_size(), kDefaultAuditPageSize);
  if (!page_size.ok()) return page_size.status();
  if (request.actor().size() > kMaxFilterBytes || request.action().size() > kMaxFilterBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("actor, action: at most ", kMaxFilterBytes, " bytes each"));
  }
  absl::StatusOr<AuditPage> page = audit_.Read(admin.org, *period, request.page_token(),
                                               {request.actor(), request.action()}, *page_size);
  if (!page.ok()) return page.status();
  v1::ListAuditEntriesResponse response;
  for (v1::AuditEntry& entry : page->entries) *response.add_entries() = std::move(entry);
  response.set_next_page_token(page->next_after);
  return response;
}

grpc::Status ExportServiceImpl::ListAuditEntries(grpc::ServerContext* context,
                                                 const v1::ListAuditEntriesRequest* request,
                                                 v1::ListAuditEntriesResponse* response) {
  absl::StatusOr<Principal> principal = guard_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  absl::StatusOr<v1::ListAuditEntriesResponse> result =
      exporter_.ListAuditEntries(*principal, *request, absl::Now());
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status ExportServiceImpl::Export(grpc::ServerContext* context,
                                       const v1::ExportRequest* request,
                                       v1::ExportResponse* response) {
  absl::StatusOr<Principal> principal = guard_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  absl::StatusOr<v1::ExportResponse> result = exporter_.Export(*principal, *request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

namespace {

void AddHeader(v1::HandleResponse& response, std::string name, std::string value) {
  v1::HttpHeader* header = response.add_headers();
  header->set_name(std::move(name));
  header->set_value(std::move(value));
}

v1::HandleResponse ErrorResponse(const absl::Status& status) {
  v1::HandleResponse response;
  response.set_status(HttpStatusOf(status));
  google::protobuf::Struct body;
  (*body.mutable_fields())["code"].set_string_value(absl::StatusCodeToString(status.code()));
  (*body.mutable_fields())["message"].set_string_value(std::string(status.message()));
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(body, &json).ok()) json = "{}";
  response.set_body(json + "\n");
  AddHeader(response, "content-type", "application/json");
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    AddHeader(response, "www-authenticate", "Bearer");
  }
  if (int64_t ms = common::ratelimit::RetryAfterMillis(status); ms >= 0) {
    AddHeader(response, "retry-after", absl::StrCat((ms + 999) / 1000));
  }
  return response;
}

absl::StatusOr<Principal> HttpAdmin(const common::auth::Guard& guard,
                                    const v1::HandleRequest& request, absl::Time now) {
  const v1::HttpHeader* authorization = nullptr;
  for (const v1::HttpHeader& header : request.headers()) {
    if (header.name() != "authorization") continue;
    if (authorization != nullptr) {
      return absl::UnauthenticatedError("more than one Authorization header");
    }
    authorization = &header;
  }
  if (authorization == nullptr || !absl::StartsWithIgnoreCase(authorization->value(), "Bearer ")) {
    return absl::UnauthenticatedError("send 'Authorization: Bearer <admin token>'");
  }
  absl::StatusOr<Principal> principal =
      guard.Check(absl::string_view(authorization->value()).substr(7), now);
  if (!principal.ok()) return principal.status();
  if (absl::Status s = RequireExportAdmin(*principal); !s.ok()) return s;
  return principal;
}

// The request's query as an ExportRequest of `kind`.
absl::StatusOr<v1::ExportRequest> HttpExportRequest(v1::ExportKind kind,
                                                    const v1::HandleRequest& http) {
  absl::StatusOr<std::map<std::string, std::string>> query = ParseQuery(http.query());
  if (!query.ok()) return query.status();
  v1::ExportRequest request;
  request.set_kind(kind);
  for (const auto& [name, value] : *query) {
    if (name == "from" || name == "to") {
      absl::StatusOr<google::protobuf::Timestamp> t = ParseRfc3339(name, value);
      if (!t.ok()) return t.status();
      *(name == "from" ? request.mutable_from() : request.mutable_to()) = *t;
    } else if (name == "page_token") {
      request.set_page_token(value);
    } else if (name == "page_size") {
      int32_t size = 0;
      if (!absl::SimpleAtoi(value, &size)) {
        return absl::InvalidArgumentError("page_size: must be a number");
      }
      request.set_page_size(size);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "query: unknown parameter '", name.substr(0, 32), "' (from, to, page_token, page_size)"));
    }
  }
  return request;
}

std::string NextLink(const v1::ExportRequest& request, const std::string& next_page_token) {
  std::string url = absl::StrCat(kExportPathPrefix, ExportKindName(request.kind()),
                                 "?from=", QueryEscape(FormatRfc3339(request.from())),
                                 "&to=", QueryEscape(FormatRfc3339(request.to())));
  if (request.page_size() != 0) absl::StrAppend(&url, "&page_size=", request.page_size());
  absl::StrAppend(&url, "&page_token=", QueryEscape(next_page_token));
  return absl::StrCat("<", url, ">; rel=\"next\"");
}

}  // namespace

v1::HandleResponse HandleExportHttp(Exporter& exporter, const common::auth::Guard& guard,
                                    const v1::HandleRequest& request, absl::Time now) {
  if (request.method() != "GET") {
    v1::HandleResponse response =
        ErrorResponse(absl::InvalidArgumentError("exports are read with GET"));
    response.set_status(405);
    AddHeader(response, "allow", "GET");
    return response;
  }
  absl::string_view path = request.path();
  if (!absl::ConsumePrefix(&path, kExportPathPrefix)) {
    return ErrorResponse(absl::NotFoundError("exports live under /v1/export/"));
  }
  absl::StatusOr<v1::ExportKind> kind = ExportKindFromName(path);
  if (!kind.ok()) return ErrorResponse(kind.status());
  absl::StatusOr<Principal> admin = HttpAdmin(guard, request, now);
  if (!admin.ok()) return ErrorResponse(admin.status());
  absl::StatusOr<v1::ExportRequest> export_request = HttpExportRequest(*kind, request);
  if (!export_request.ok()) return ErrorResponse(export_request.status());
  absl::StatusOr<v1::ExportResponse> page = exporter.Export(*admin, *export_request);
  if (!page.ok()) return ErrorResponse(page.status());
  v1::HandleResponse response;
  response.set_status(200);
  AddHeader(response, "content-type", kNdjsonContentType);
  AddHeader(response, "cache-control", "no-store");
  if (!page->next_page_token().empty()) {
    AddHeader(response, "link", NextLink(*export_request, page->next_page_token()));
  }
  response.set_body(std::move(*page->mutable_ndjson()));
  return response;
}

}  // namespace integrations
