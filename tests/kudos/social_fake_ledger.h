// A SocialLedger that answers from memory, for library-level tests of the
// retraction's ledger side (tests/kudos/social_*_test.cc).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "services/kudos/social_ledger.h"

namespace social_test {

class FakeLedger : public kudos::SocialLedger {
 public:
  // Each account's transfers, newest first.
  std::map<std::string, std::vector<ledger::v1::Transfer>> accounts;
  int list_calls = 0;
  std::vector<ledger::v1::PostTransfersRequest> posts;
  bool lose_next_answer = false;

  absl::StatusOr<ledger::v1::ListTransfersResponse> ListTransfers(
      const std::string&, const ledger::v1::ListTransfersRequest& request) override {
    ++list_calls;
    const auto& all = accounts[request.account().person_id()];
    const size_t start = request.page_token().empty() ? 0 : std::stoul(request.page_token());
    const size_t size = static_cast<size_t>(request.page_size());
    ledger::v1::ListTransfersResponse response;
    for (size_t i = start; i < all.size() && i < start + size; ++i) {
      *response.add_transfers() = all[i];
    }
    if (start + size < all.size()) response.set_next_page_token(std::to_string(start + size));
    return response;
  }

  absl::StatusOr<ledger::v1::PostTransfersResponse> PostTransfers(
      const std::string&, const ledger::v1::PostTransfersRequest& request) override {
    posts.push_back(request);
    // Applied, but the answer is lost (a crash or timeout after the ledger wrote).
    if (lose_next_answer) {
      lose_next_answer = false;
      return absl::UnavailableError("connection lost after the ledger applied the post");
    }
    ledger::v1::PostTransfersResponse response;
    for (const auto& transfer : request.transfers()) {
      auto* result = response.add_results();
      result->set_transfer_id(transfer.transfer_id());
      result->set_created(true);
      *result->mutable_transfer() = transfer;
    }
    return response;
  }
};

inline ledger::v1::Transfer Posted(const std::string& id, const std::string& reference,
                                   ledger::v1::TransferKind kind, const std::string& to,
                                   absl::Time at) {
  ledger::v1::Transfer transfer;
  transfer.set_transfer_id(id);
  transfer.set_reference(reference);
  transfer.set_kind(kind);
  transfer.set_amount(5);
  transfer.mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  transfer.mutable_debit_account()->set_person_id("alice");
  transfer.mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  transfer.mutable_credit_account()->set_person_id(to);
  transfer.mutable_post_time()->set_seconds(absl::ToUnixSeconds(at));
  return transfer;
}

}  // namespace social_test
