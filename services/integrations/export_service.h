// Area "export" (issue 17): an admin's NDJSON export of kudos, transfers and
// audit entries for a period, paged (gRPC ExportService and GET
// /v1/export/{kind} through the gateway's passthrough), and the audit read.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "common/auth/guard.h"
#include "integrations/v1/export.grpc.pb.h"
#include "integrations/v1/http_ingress.pb.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "services/integrations/export_audit.h"
#include "services/integrations/export_rules.h"
#include "services/integrations/host.h"

namespace integrations {

// Admins only (a person's token or a delegated admin token); services and
// everyone else PERMISSION_DENIED.
absl::Status RequireExportAdmin(const common::auth::Principal& principal);

// The exports themselves, shared by the gRPC service and the HTTP route.
// Reads kudos and ledger as the calling admin (a delegated admin token,
// delegation.h), each call with host.options().call_timeout.
class Exporter {
 public:
  Exporter(Host& host, std::shared_ptr<grpc::Channel> kudos, std::shared_ptr<grpc::Channel> ledger);

  absl::StatusOr<v1::ExportResponse> Export(const common::auth::Principal& admin,
                                            const v1::ExportRequest& request);
  absl::StatusOr<v1::ListAuditEntriesResponse> ListAuditEntries(
      const common::auth::Principal& admin, const v1::ListAuditEntriesRequest& request,
      absl::Time now);

 private:
  // Each appends matching lines to `ndjson`, counts them, moves `cursor`,
  // and sets `done` when the period is read to its end.
  struct Page {
    std::string ndjson;
    int count = 0;
    bool done = false;
  };
  absl::Status ExportKudos(const std::string& authorization, ExportCursor& cursor, int page_size,
                           Page& page);
  absl::Status ExportTransfers(const std::string& authorization, ExportCursor& cursor,
                               int page_size, Page& page);
  absl::Status ExportAudit(const std::string& org, ExportCursor& cursor, int page_size, Page& page);
  // Moves a transfers cursor to the next account (issuer, rewards, then
  // each person's allowance and earned); `done` when none is left.
  absl::Status NextAccount(const std::string& authorization, ExportCursor& cursor, int& calls,
                           bool& done);
  std::unique_ptr<grpc::ClientContext> CallContext(const std::string& authorization) const;

  Host& host_;
  AuditReader audit_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_;
};

class ExportServiceImpl final : public v1::ExportService::Service {
 public:
  ExportServiceImpl(const common::auth::Guard& guard, Exporter& exporter)
      : guard_(guard), exporter_(exporter) {}

  grpc::Status ListAuditEntries(grpc::ServerContext* context,
                                const v1::ListAuditEntriesRequest* request,
                                v1::ListAuditEntriesResponse* response) override;
  grpc::Status Export(grpc::ServerContext* context, const v1::ExportRequest* request,
                      v1::ExportResponse* response) override;

 private:
  const common::auth::Guard& guard_;
  Exporter& exporter_;
};

// The HTTP route "/v1/export/": GET /v1/export/{kudos|transfers|audit}
// ?from=&to=&page_token=&page_size= with "authorization: Bearer <admin JWT>";
// 200 application/x-ndjson with `Link: <...>; rel="next"` while pages remain,
// else a JSON error body {"code", "message"} with the matching HTTP status.
v1::HandleResponse HandleExportHttp(Exporter& exporter, const common::auth::Guard& guard,
                                    const v1::HandleRequest& request, absl::Time now);

}  // namespace integrations
