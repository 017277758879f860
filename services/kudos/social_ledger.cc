#include "services/kudos/social_ledger.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "services/kudos/social_rules.h"

namespace kudos {
namespace {

class GrpcSocialLedger : public SocialLedger {
 public:
  explicit GrpcSocialLedger(const SocialLedgerOptions& options)
      : options_(options),
        stub_(ledger::v1::LedgerService::NewStub(
            grpc::CreateChannel(options.address, grpc::InsecureChannelCredentials()))) {}

  absl::StatusOr<ledger::v1::ListTransfersResponse> ListTransfers(
      const std::string& org, const ledger::v1::ListTransfersRequest& request) override {
    grpc::ClientContext context;
    if (absl::Status status = Prepare(context, org); !status.ok()) return status;
    ledger::v1::ListTransfersResponse response;
    grpc::Status status = stub_->ListTransfers(&context, request, &response);
    if (!status.ok()) return common::grpc_util::FromGrpcStatus(status);
    return response;
  }

  absl::StatusOr<ledger::v1::PostTransfersResponse> PostTransfers(
      const std::string& org, const ledger::v1::PostTransfersRequest& request) override {
    grpc::ClientContext context;
    if (absl::Status status = Prepare(context, org); !status.ok()) return status;
    ledger::v1::PostTransfersResponse response;
    grpc::Status status = stub_->PostTransfers(&context, request, &response);
    if (!status.ok()) return common::grpc_util::FromGrpcStatus(status);
    return response;
  }

 private:
  // Retractions are rare admin calls: a token minted per call is cheap enough.
  absl::Status Prepare(grpc::ClientContext& context, const std::string& org) {
    absl::StatusOr<std::string> token =
        common::auth::MintServiceToken("kudos", org, options_.service_secret, absl::Now());
    if (!token.ok()) return token.status();
    context.AddMetadata("authorization", "Bearer " + *token);
    common::grpc_util::SetDeadline(context, std::chrono::milliseconds(options_.timeout_ms));
    return absl::OkStatus();
  }

  SocialLedgerOptions options_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> stub_;
};

bool IsKudosTransfer(const ledger::v1::Transfer& transfer, const std::string& kudos_id) {
  return transfer.reference() == kudos_id && (transfer.kind() == ledger::v1::TRANSFER_KIND_KUDOS ||
                                              transfer.kind() == ledger::v1::TRANSFER_KIND_BOOST);
}

absl::Time PostTime(const ledger::v1::Transfer& transfer) {
  return absl::FromUnixSeconds(transfer.post_time().seconds()) +
         absl::Nanoseconds(transfer.post_time().nanos());
}

// One recipient's share: newest first until a transfer older than the kudos.
absl::Status FindInAccount(SocialLedger& ledger, const std::string& org,
                           const std::string& kudos_id, const std::string& recipient,
                           absl::Time since, const TransferSearch& search, absl::Time give_up,
                           std::vector<ledger::v1::Transfer>& found) {
  ledger::v1::ListTransfersRequest request;
  request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  request.mutable_account()->set_person_id(recipient);
  request.set_page_size(search.page_size);
  for (int page = 0; page < search.max_pages; ++page) {
    if (absl::Now() >= give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat("kudos '", kudos_id, "': its transfers were not all read within ",
                       absl::FormatDuration(search.budget), "; retry with the same request_id"));
    }
    absl::StatusOr<ledger::v1::ListTransfersResponse> listed = ledger.ListTransfers(org, request);
    if (!listed.ok()) return listed.status();
    for (const ledger::v1::Transfer& transfer : listed->transfers()) {
      if (PostTime(transfer) < since) return absl::OkStatus();
      if (IsKudosTransfer(transfer, kudos_id) &&
          transfer.credit_account().person_id() == recipient) {
        found.push_back(transfer);
      }
    }
    if (listed->next_page_token().empty()) return absl::OkStatus();
    request.set_page_token(listed->next_page_token());
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "kudos '", kudos_id, "': ", recipient, "'s account holds more than ",
      search.page_size * search.max_pages,
      " transfers since the kudos was sent; its transfers cannot be found to reverse them"));
}

}  // namespace

std::unique_ptr<SocialLedger> MakeGrpcSocialLedger(const SocialLedgerOptions& options) {
  return std::make_unique<GrpcSocialLedger>(options);
}

absl::StatusOr<std::vector<ledger::v1::Transfer>> FindKudosTransfers(
    SocialLedger& ledger, const std::string& org, const std::string& kudos_id,
    const std::vector<std::string>& recipients, absl::Time created, const TransferSearch& search) {
  std::vector<ledger::v1::Transfer> found;
  const absl::Time give_up = absl::Now() + search.budget;
  for (const std::string& recipient : recipients) {
    absl::Status status = FindInAccount(ledger, org, kudos_id, recipient,
                                        created - search.clock_skew, search, give_up, found);
    if (!status.ok()) return status;
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.transfer_id() < b.transfer_id(); });
  return found;
}

absl::Status PostReversals(SocialLedger& ledger, const std::string& org,
                           const std::vector<ledger::v1::Transfer>& originals) {
  constexpr size_t kMaxPerCall = 100;  // the ledger's kMaxTransfersPerCall
  for (size_t start = 0; start < originals.size(); start += kMaxPerCall) {
    ledger::v1::PostTransfersRequest request;
    request.set_linked(true);
    const size_t end = std::min(originals.size(), start + kMaxPerCall);
    for (size_t i = start; i < end; ++i) *request.add_transfers() = ReversalOf(originals[i]);
    absl::StatusOr<ledger::v1::PostTransfersResponse> posted = ledger.PostTransfers(org, request);
    if (!posted.ok()) return posted.status();
    // The other half of the ledger's own check: each reversal is applied
    // exactly as asked, or the retraction would undo other points.
    KUDOS_CHECK(posted->results_size() == request.transfers_size(),
                "an accepted linked post answers for every reversal");
    for (int i = 0; i < request.transfers_size(); ++i) {
      const ledger::v1::TransferResult& result = posted->results(i);
      const ledger::v1::Transfer& asked = request.transfers(i);
      KUDOS_CHECK(result.status_code() == 0 && result.transfer_id() == asked.transfer_id(),
                  "an accepted linked post applied every reversal, in request order");
      KUDOS_CHECK(
          result.transfer().amount() == asked.amount() &&
              result.transfer().debit_account().person_id() == asked.debit_account().person_id(),
          "the ledger reversed the original's amount from its recipient");
    }
  }
  return absl::OkStatus();
}

}  // namespace kudos
