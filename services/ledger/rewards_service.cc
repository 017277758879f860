#include "services/ledger/rewards_service.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check/check.h"
#include "services/ledger/ledger_rules.h"
#include "services/ledger/ledger_service.h"
#include "services/ledger/rewards_rules.h"

namespace ledger {
namespace {

using common::auth::Principal;
using common::grpc_util::Done;
using common::grpc_util::Into;

// Members never learn whether someone else's redemption exists.
absl::Status NotYours(absl::string_view what) {
  return absl::PermissionDeniedError(
      absl::StrCat(what, ": only an admin or the redemption's owner may do this"));
}

}  // namespace

RewardsServiceImpl::RewardsServiceImpl(common::auth::Guard guard, RewardsStore& store,
                                       RewardsServiceOptions options, Clock clock)
    : store_(store),
      clock_(std::move(clock)),
      calls_(guard,
             LedgerCallOptions("rewards", options.call_timeout, options.max_calls_in_flight),
             CheckPrincipalOrg),
      reports_(guard,
               LedgerCallOptions("rewards", options.report_timeout,
                                 options.max_reports_in_flight),
               CheckPrincipalOrg) {}

// ---- catalog --------------------------------------------------------------------

grpc::ServerUnaryReactor* RewardsServiceImpl::CreateRewardItem(
    grpc::CallbackServerContext* context, const ledger::v1::CreateRewardItemRequest* request,
    ledger::v1::CreateRewardItemResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireRewardsAdmin(call.principal(), "CreateRewardItem"); !s.ok()) {
      return s;
    }
    if (absl::Status s = ValidateRewardItem(request->item()); !s.ok()) return s;
    auto created = std::make_shared<CreatedItem>();
    call.Then([this, &call, request, created](Done done) {
          store_.CreateItem(call.principal().org, call.principal().subject, request->item(),
                            clock_(), call.deadline(), Into(created.get(), std::move(done)));
        })
        .Then([response, created]() {
          *response->mutable_item() = std::move(created->item);
          response->set_created(created->created);
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardsServiceImpl::UpdateRewardItem(
    grpc::CallbackServerContext* context, const ledger::v1::UpdateRewardItemRequest* request,
    ledger::v1::UpdateRewardItemResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireRewardsAdmin(call.principal(), "UpdateRewardItem"); !s.ok()) {
      return s;
    }
    if (absl::Status s = ValidateRewardItem(request->item()); !s.ok()) return s;
    call.Then([this, &call, request, response](Done done) {
      store_.UpdateItem(call.principal().org, call.principal().subject, request->item(),
                        clock_(), call.deadline(),
                        Into(response->mutable_item(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardsServiceImpl::ArchiveRewardItem(
    grpc::CallbackServerContext* context, const ledger::v1::ArchiveRewardItemRequest* request,
    ledger::v1::ArchiveRewardItemResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireRewardsAdmin(call.principal(), "ArchiveRewardItem"); !s.ok()) {
      return s;
    }
    if (absl::Status s = ValidateItemId(request->item_id(), "item_id"); !s.ok()) return s;
    call.Then([this, &call, request, response](Done done) {
      store_.ArchiveItem(call.principal().org, call.principal().subject, request->item_id(),
                         clock_(), call.deadline(),
                         Into(response->mutable_item(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardsServiceImpl::GetRewardItem(
    grpc::CallbackServerContext* context, const ledger::v1::GetRewardItemRequest* request,
    ledger::v1::GetRewardItemResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequirePerson(call.principal(), "GetRewardItem"); !s.ok()) return s;
    if (absl::Status s = ValidateItemId(request->item_id(), "item_id"); !s.ok()) return s;
    call.Then([this, &call, request, response](Done done) {
          store_.GetItem(call.principal().org, request->item_id(), call.deadline(),
                         Into(response->mutable_item(), std::move(done)));
        })
        .Then([&call, request, response]() -> absl::Status {
          // Members see the active catalog only.
          if (!response->item().active() && !IsPersonAdmin(call.principal())) {
            return absl::NotFoundError(absl::StrCat(
                "item_id: reward item '", request->item_id(), "' does not exist"));
          }
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardsServiceImpl::ListRewardItems(
    grpc::CallbackServerContext* context, const ledger::v1::ListRewardItemsRequest* request,
    ledger::v1::ListRewardItemsResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return ListItemsBody(call, *request, *response);
  });
}

absl::Status RewardsServiceImpl::ListItemsBody(Call& call,
                                               const ledger::v1::ListRewardItemsRequest& request,
                                               ledger::v1::ListRewardItemsResponse& response) {
  if (absl::Status s = RequirePerson(call.principal(), "ListRewardItems"); !s.ok()) return s;
  if (request.include_inactive()) {
    if (absl::Status s = RequireRewardsAdmin(call.principal(), "include_inactive"); !s.ok()) {
      return s;
    }
  }
  absl::StatusOr<int> size = NormalizeRewardPageSize(request.page_size());
  if (!size.ok()) return size.status();
  const std::string scope = request.include_inactive() ? "items:all" : "items:active";
  std::string after;
  if (!request.page_token().empty()) {
    absl::StatusOr<std::string> decoded = DecodeRewardPageToken(request.page_token(), scope);
    if (!decoded.ok()) return decoded.status();
    after = *std::move(decoded);
  }
  auto page = std::make_shared<ItemPage>();
  call.Then([this, &call, &request, after, size = *size, page](Done done) {
        store_.ListItems(call.principal().org, after, size, request.include_inactive(),
                         call.deadline(), Into(page.get(), std::move(done)));
      })
      .Then([&response, page, scope]() {
        for (ledger::v1::RewardItem& item : page->items) *response.add_items() = std::move(item);
        if (!page->next_after.empty()) {
          response.set_next_page_token(EncodeRewardPageToken(page->next_after, scope));
        }
        return absl::OkStatus();
      });
  return absl::OkStatus();
}

// ---- settings -------------------------------------------------------------------

grpc::ServerUnaryReactor* RewardsServiceImpl::GetRewardSettings(
    grpc::CallbackServerContext* context, const ledger::v1::GetRewardSettingsRequest* /*request*/,
    ledger::v1::GetRewardSettingsResponse* response) {
  return calls_.Serve(context, [this, response](Call& call) -> absl::Status {
    if (absl::Status s = RequirePerson(call.principal(), "GetRewardSettings"); !s.ok()) return s;
    call.Then([this, &call, response](Done done) {
      store_.GetSettings(call.principal().org, call.deadline(),
                         Into(response->mutable_settings(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardsServiceImpl::UpdateRewardSettings(
    grpc::CallbackServerContext* context, const ledger::v1::UpdateRewardSettingsRequest* request,
    ledger::v1::UpdateRewardSettingsResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireRewardsAdmin(call.principal(), "UpdateRewardSettings"); !s.ok()) {
      return s;
    }
    if (!request->has_settings()) return absl::InvalidArgumentError("settings: is required");
    absl::StatusOr<ledger::v1::RewardSettings> settings =
        NormalizeRewardSettings(request->settings());
    if (!settings.ok()) return settings.status();
    call.Then([this, &call, settings = *settings, response](Done done) {
      store_.SetSettings(call.principal().org, call.principal().subject, settings,
                         call.deadline(), Into(response->mutable_settings(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

// ---- redemptions ------------------------------------------------------------------

grpc::ServerUnaryReactor* RewardsServiceImpl::RedeemRewardItem(
    grpc::CallbackServerContext* context, const ledger::v1::RedeemRewardItemRequest* request,
    ledger::v1::RedeemRewardItemResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequirePerson(call.principal(), "RedeemRewardItem"); !s.ok()) return s;
    if (absl::Status s = ValidateRedeemRequest(*request); !s.ok()) return s;
    const int quantity = *NormalizeQuantity(request->quantity());
    call.Then([this, &call, request, response, quantity](Done done) {
          store_.Redeem(call.principal().org, call.principal().subject, request->request_id(),
                        request->item_id(), quantity, clock_(), call.deadline(),
                        Into(response->mutable_redemption(), std::move(done)));
        })
        .Then([&call, request, response, quantity]() {
          // The pair of the script's own checks: what it answered OK for is
          // this caller's redemption of this item and quantity (a retry may
          // find it in a later state).
          const ledger::v1::RewardRedemption& r = response->redemption();
          const std::string& person = call.principal().subject;
          KUDOS_CHECK(r.person_id() == person && r.item_id() == request->item_id() &&
                          r.quantity() == quantity &&
                          r.redemption_id() == RewardRedemptionId(person, request->request_id()),
                      "an accepted redemption is the caller's, of the item and quantity asked");
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardsServiceImpl::RequestCustomReward(
    grpc::CallbackServerContext* context, const ledger::v1::RequestCustomRewardRequest* request,
    ledger::v1::RequestCustomRewardResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequirePerson(call.principal(), "RequestCustomReward"); !s.ok()) {
      return s;
    }
    if (absl::Status s = ValidateCustomRewardRequest(*request); !s.ok()) return s;
    call.Then([this, &call, request, response](Done done) {
      store_.RequestCustom(call.principal().org, call.principal().subject, *request, clock_(),
                           call.deadline(), Into(response->mutable_redemption(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardsServiceImpl::ApproveCustomReward(
    grpc::CallbackServerContext* context, const ledger::v1::ApproveCustomRewardRequest* request,
    ledger::v1::ApproveCustomRewardResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireRewardsAdmin(call.principal(), "ApproveCustomReward"); !s.ok()) {
      return s;
    }
    if (absl::Status s = ValidateRedemptionIdField(request->redemption_id()); !s.ok()) return s;
    call.Then([this, &call, request, response](Done done) {
      store_.Approve(call.principal().org, call.principal().subject, request->redemption_id(),
                     clock_(), call.deadline(),
                     Into(response->mutable_redemption(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardsServiceImpl::FulfillRewardRedemption(
    grpc::CallbackServerContext* context,
    const ledger::v1::FulfillRewardRedemptionRequest* request,
    ledger::v1::FulfillRewardRedemptionResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireRewardsAdmin(call.principal(), "FulfillRewardRedemption");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ValidateRedemptionIdField(request->redemption_id()); !s.ok()) return s;
    // The transfer is built from the stored redemption (who, how much).
    auto current = std::make_shared<ledger::v1::RewardRedemption>();
    call.Then([this, &call, request, current](Done done) {
          store_.GetRedemption(call.principal().org, request->redemption_id(), call.deadline(),
                               Into(current.get(), std::move(done)));
        })
        .Then([this, &call, response, current](Done done) {
          store_.Fulfill(call.principal().org, call.principal().subject, *current, clock_(),
                         call.deadline(), Into(response->mutable_redemption(), std::move(done)));
        })
        .Then([response, current]() {
          // The points the script took are the ones the hold held.
          const ledger::v1::RewardRedemption& r = response->redemption();
          KUDOS_CHECK(r.state() == ledger::v1::REWARD_REDEMPTION_STATE_FULFILLED &&
                          r.points() == current->points() &&
                          r.transfer_id() ==
                              absl::StrCat(kRedemptionIdPrefix, current->redemption_id()),
                      "a fulfilled redemption posted its own points under its own transfer id");
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardsServiceImpl::DeclineRewardRedemption(
    grpc::CallbackServerContext* context,
    const ledger::v1::DeclineRewardRedemptionRequest* request,
    ledger::v1::DeclineRewardRedemptionResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireRewardsAdmin(call.principal(), "DeclineRewardRedemption");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ValidateRedemptionIdField(request->redemption_id()); !s.ok()) return s;
    if (absl::Status s = ValidateReason(request->reason(), true); !s.ok()) return s;
    call.Then([this, &call, request, response](Done done) {
      store_.Decline(call.principal().org, call.principal().subject, request->redemption_id(),
                     request->reason(), clock_(), call.deadline(),
                     Into(response->mutable_redemption(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardsServiceImpl::CancelRewardRedemption(
    grpc::CallbackServerContext* context, const ledger::v1::CancelRewardRedemptionRequest* request,
    ledger::v1::CancelRewardRedemptionResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return CancelBody(call, *request, *response);
  });
}

absl::Status RewardsServiceImpl::CancelBody(
    Call& call, const ledger::v1::CancelRewardRedemptionRequest& request,
    ledger::v1::CancelRewardRedemptionResponse& response) {
  if (absl::Status s = RequirePerson(call.principal(), "CancelRewardRedemption"); !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateRedemptionIdField(request.redemption_id()); !s.ok()) return s;
  if (absl::Status s = ValidateReason(request.reason(), false); !s.ok()) return s;
  auto current = std::make_shared<ledger::v1::RewardRedemption>();
  const bool admin = IsPersonAdmin(call.principal());
  call.Then([this, &call, &request, current, admin](Done done) {
        store_.GetRedemption(
            call.principal().org, request.redemption_id(), call.deadline(),
            [admin, current, done = std::move(done)](
                absl::StatusOr<ledger::v1::RewardRedemption> found) mutable {
              if (!found.ok() && !admin && absl::IsNotFound(found.status())) {
                return std::move(done)(NotYours("CancelRewardRedemption"));
              }
              Into(current.get(), std::move(done))(std::move(found));
            });
      })
      .Then([&call, current, admin]() -> absl::Status {
        if (!admin && current->person_id() != call.principal().subject) {
          return NotYours("CancelRewardRedemption");
        }
        return absl::OkStatus();
      })
      .Then([this, &call, &request, &response](Done done) {
        store_.Cancel(call.principal().org, call.principal().subject, request.redemption_id(),
                      request.reason(), clock_(), call.deadline(),
                      Into(response.mutable_redemption(), std::move(done)));
      });
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* RewardsServiceImpl::GetRewardRedemption(
    grpc::CallbackServerContext* context, const ledger::v1::GetRewardRedemptionRequest* request,
    ledger::v1::GetRewardRedemptionResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return GetRedemptionBody(call, *request, *response);
  });
}

absl::Status RewardsServiceImpl::GetRedemptionBody(
    Call& call, const ledger::v1::GetRewardRedemptionRequest& request,
    ledger::v1::GetRewardRedemptionResponse& response) {
  if (absl::Status s = RequirePerson(call.principal(), "GetRewardRedemption"); !s.ok()) return s;
  if (absl::Status s = ValidateRedemptionIdField(request.redemption_id()); !s.ok()) return s;
  const bool admin = IsPersonAdmin(call.principal());
  call.Then([this, &call, &request, &response, admin](Done done) {
        store_.GetRedemption(
            call.principal().org, request.redemption_id(), call.deadline(),
            [admin, &response, done = std::move(done)](
                absl::StatusOr<ledger::v1::RewardRedemption> found) mutable {
              if (!found.ok() && !admin && absl::IsNotFound(found.status())) {
                return std::move(done)(NotYours("GetRewardRedemption"));
              }
              Into(response.mutable_redemption(), std::move(done))(std::move(found));
            });
      })
      .Then([&call, &response, admin]() -> absl::Status {
        if (!admin && response.redemption().person_id() != call.principal().subject) {
          response.clear_redemption();
          return NotYours("GetRewardRedemption");
        }
        return absl::OkStatus();
      });
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* RewardsServiceImpl::ListRewardRedemptions(
    grpc::CallbackServerContext* context, const ledger::v1::ListRewardRedemptionsRequest* request,
    ledger::v1::ListRewardRedemptionsResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return ListRedemptionsBody(call, *request, *response);
  });
}

absl::Status RewardsServiceImpl::ListRedemptionsBody(
    Call& call, const ledger::v1::ListRewardRedemptionsRequest& request,
    ledger::v1::ListRewardRedemptionsResponse& response) {
  const Principal& principal = call.principal();
  if (absl::Status s = RequirePerson(principal, "ListRewardRedemptions"); !s.ok()) return s;
  const bool admin = IsPersonAdmin(principal);
  std::string person = request.person_id();
  if (!admin && person.empty()) person = principal.subject;
  if (!person.empty()) {
    if (absl::Status s = ValidatePersonId(person, "person_id"); !s.ok()) return s;
  }
  if (!admin && person != principal.subject) {
    return absl::PermissionDeniedError(
        "person_id: members list their own redemptions only (leave person_id empty)");
  }
  if (request.open_only() && (!admin || !person.empty())) {
    return absl::InvalidArgumentError(
        "open_only: the open queue is the org's, for admins, without person_id");
  }
  absl::StatusOr<int> size = NormalizeRewardPageSize(request.page_size());
  if (!size.ok()) return size.status();
  RedemptionListing listing = RedemptionListing::kAll;
  std::string scope = "redemptions:all";
  if (!person.empty()) {
    listing = RedemptionListing::kPerson;
    scope = absl::StrCat("redemptions:person:", person);
  } else if (request.open_only()) {
    listing = RedemptionListing::kOpen;
    scope = "redemptions:open";
  }
  std::string after;
  if (!request.page_token().empty()) {
    absl::StatusOr<std::string> decoded = DecodeRewardPageToken(request.page_token(), scope);
    if (!decoded.ok()) return decoded.status();
    after = *std::move(decoded);
  }
  auto page = std::make_shared<RedemptionPage>();
  call.Then([this, &call, listing, person, after, size = *size, page](Done done) {
        store_.ListRedemptions(call.principal().org, listing, person, after, size,
                               call.deadline(), Into(page.get(), std::move(done)));
      })
      .Then([&response, page, scope]() {
        for (ledger::v1::RewardRedemption& r : page->redemptions) {
          *response.add_redemptions() = std::move(r);
        }
        if (!page->next_after.empty()) {
          response.set_next_page_token(EncodeRewardPageToken(page->next_after, scope));
        }
        return absl::OkStatus();
      });
  return absl::OkStatus();
}

// ---- liability ----------------------------------------------------------------------

grpc::ServerUnaryReactor* RewardsServiceImpl::GetRewardLiability(
    grpc::CallbackServerContext* context, const ledger::v1::GetRewardLiabilityRequest* /*request*/,
    ledger::v1::GetRewardLiabilityResponse* response) {
  return reports_.Serve(context,
                        [this, response](Call& call) { return LiabilityBody(call, *response); });
}

absl::Status RewardsServiceImpl::LiabilityBody(Call& call,
                                               ledger::v1::GetRewardLiabilityResponse& response) {
  if (absl::Status s = RequireRewardsAdmin(call.principal(), "GetRewardLiability"); !s.ok()) {
    return s;
  }
  auto totals = std::make_shared<LiabilityTotals>();
  const absl::Time now = clock_();
  call.Then([this, &call, &response](Done done) {
        store_.GetSettings(call.principal().org, call.deadline(),
                           Into(response.mutable_settings(), std::move(done)));
      })
      .Then([this, &call, totals, now](Done done) {
        store_.Liability(call.principal().org, now, call.deadline(),
                         Into(totals.get(), std::move(done)));
      })
      .Then([&response, totals, now]() {
        const int64_t rate = response.settings().money_nanos_per_point();
        const std::string& code = response.settings().money_currency_code();
        response.set_outstanding_points(totals->outstanding_points);
        response.set_held_points(totals->held_points);
        response.set_available_points(totals->outstanding_points - totals->held_points);
        *response.mutable_outstanding_money() =
            PointsToMoney(totals->outstanding_points, rate, code);
        *response.mutable_held_money() = PointsToMoney(totals->held_points, rate, code);
        *response.mutable_available_money() =
            PointsToMoney(response.available_points(), rate, code);
        response.set_awaiting_approval_points(totals->awaiting_points);
        response.set_people(totals->people);
        SetTimestamp(response.mutable_compute_time(), now);
        return absl::OkStatus();
      });
  return absl::OkStatus();
}

}  // namespace ledger
