#include "services/ledger/rewards_rules.h"

#include "absl/numeric/int128.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/auth/ids.h"
#include "services/ledger/ledger_rules.h"

namespace ledger {
namespace {

int64_t Int(const Fields& fields, const std::string& name) {
  int64_t value = 0;
  auto it = fields.find(name);
  if (it != fields.end()) (void)absl::SimpleAtoi(it->second, &value);
  return value;
}

std::string Str(const Fields& fields, const std::string& name) {
  auto it = fields.find(name);
  return it == fields.end() ? std::string() : it->second;
}

void SetMillis(google::protobuf::Timestamp* out, int64_t ms) {
  SetTimestamp(out, absl::FromUnixMillis(ms));
}

absl::Status Text(absl::string_view text, absl::string_view field, size_t min_bytes,
                  size_t max_bytes) {
  if (text.size() < min_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": is required"));
  }
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": at most ", max_bytes, " bytes, got ", text.size()));
  }
  if (!ValidUtf8(text)) return absl::InvalidArgumentError(absl::StrCat(field, ": must be UTF-8"));
  return absl::OkStatus();
}

absl::Status Points(int64_t points, absl::string_view field) {
  if (points < 1 || points > kMaxAmount) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be 1..", kMaxAmount, " points, got ", points));
  }
  return absl::OkStatus();
}

ledger::v1::RewardRedemptionState StateFrom(absl::string_view state) {
  if (state == "AWAITING") return ledger::v1::REWARD_REDEMPTION_STATE_AWAITING_APPROVAL;
  if (state == "PENDING") return ledger::v1::REWARD_REDEMPTION_STATE_PENDING;
  if (state == "FULFILLED") return ledger::v1::REWARD_REDEMPTION_STATE_FULFILLED;
  if (state == "DECLINED") return ledger::v1::REWARD_REDEMPTION_STATE_DECLINED;
  if (state == "CANCELLED") return ledger::v1::REWARD_REDEMPTION_STATE_CANCELLED;
  return ledger::v1::REWARD_REDEMPTION_STATE_UNSPECIFIED;
}

}  // namespace

std::string RewardRedemptionId(absl::string_view person, absl::string_view request_id) {
  // The ledger's id function over a request id of another namespace, so a
  // rewards request id never names a ledger redemption.
  std::string ledger_id = RedemptionId(person, absl::StrCat("rewards\n", request_id));
  return absl::StrCat(kRewardRedemptionIdPrefix, ledger_id.substr(ledger_id.find('_') + 1));
}

bool ValidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= extra; ++k) {
      unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((extra == 1 && code < 0x80) || (extra == 2 && code < 0x800) ||
        (extra == 3 && code < 0x10000) || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

absl::Status ValidateItemId(absl::string_view item_id, absl::string_view field) {
  if (item_id.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": is required"));
  if (!common::auth::ValidId(item_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be ", common::auth::kIdRule));
  }
  return absl::OkStatus();
}

absl::Status ValidateRewardItem(const ledger::v1::RewardItem& item) {
  if (absl::Status s = ValidateItemId(item.item_id(), "item.item_id"); !s.ok()) return s;
  if (absl::Status s = Text(item.name(), "item.name", 1, kMaxRewardNameBytes); !s.ok()) return s;
  if (absl::Status s = Text(item.description(), "item.description", 0, kMaxRewardDescriptionBytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Points(item.price_points(), "item.price_points"); !s.ok()) return s;
  if (!item.unlimited() && (item.stock() < 0 || item.stock() > kMaxAmount)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "item.stock: must be 0..", kMaxAmount, " (or unlimited=true), got ", item.stock()));
  }
  if (item.version() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "item.version: must be the version read (>= 1) or 0 (not named), got ", item.version()));
  }
  return absl::OkStatus();
}

ledger::v1::RewardSettings DefaultRewardSettings() {
  ledger::v1::RewardSettings settings;
  settings.set_currency_name("points");
  settings.set_money_currency_code("USD");
  return settings;
}

absl::StatusOr<ledger::v1::RewardSettings> NormalizeRewardSettings(
    const ledger::v1::RewardSettings& settings) {
  ledger::v1::RewardSettings out = settings;
  if (out.currency_name().empty()) out.set_currency_name("points");
  if (out.money_currency_code().empty()) out.set_money_currency_code("USD");
  if (absl::Status s =
          Text(out.currency_name(), "settings.currency_name", 1, kMaxCurrencyNameBytes);
      !s.ok()) {
    return s;
  }
  const std::string& code = out.money_currency_code();
  bool iso = code.size() == 3;
  for (char c : code) iso = iso && c >= 'A' && c <= 'Z';
  if (!iso) {
    return absl::InvalidArgumentError(
        "settings.money_currency_code: must be an ISO 4217 code of three capital letters, e.g. "
        "EUR");
  }
  if (out.money_nanos_per_point() < 0 || out.money_nanos_per_point() > kMaxMoneyNanosPerPoint) {
    return absl::InvalidArgumentError(
        absl::StrCat("settings.money_nanos_per_point: must be 0..", kMaxMoneyNanosPerPoint,
                     " (nanos of one currency unit per point), got ",
                     out.money_nanos_per_point()));
  }
  return out;
}

absl::StatusOr<int> NormalizeQuantity(int32_t quantity) {
  if (quantity == 0) return 1;
  if (quantity < 1 || quantity > kMaxRewardQuantity) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantity: must be 1..", kMaxRewardQuantity, ", got ", quantity));
  }
  return static_cast<int>(quantity);
}

absl::Status ValidateRedeemRequest(const ledger::v1::RedeemRewardItemRequest& request) {
  if (absl::Status s =
          ValidateIdempotencyKey(request.request_id(), "request_id", kMaxRequestIdLength);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateItemId(request.item_id(), "item_id"); !s.ok()) return s;
  return NormalizeQuantity(request.quantity()).status();
}

absl::Status ValidateCustomRewardRequest(const ledger::v1::RequestCustomRewardRequest& request) {
  if (absl::Status s =
          ValidateIdempotencyKey(request.request_id(), "request_id", kMaxRequestIdLength);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Text(request.name(), "name", 1, kMaxRewardNameBytes); !s.ok()) return s;
  if (absl::Status s = Text(request.description(), "description", 0, kMaxRewardDescriptionBytes);
      !s.ok()) {
    return s;
  }
  return Points(request.points(), "points");
}

absl::Status ValidateRedemptionIdField(absl::string_view redemption_id) {
  if (redemption_id.empty()) return absl::InvalidArgumentError("redemption_id: is required");
  // "rwd_" + 24 hex digits: anything else names no rewards redemption.
  bool ok = redemption_id.size() == 28 &&
            absl::StartsWith(redemption_id, kRewardRedemptionIdPrefix);
  for (size_t i = 4; ok && i < redemption_id.size(); ++i) {
    char c = redemption_id[i];
    ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        "redemption_id: a rewards redemption id is 'rwd_' and 24 hex digits");
  }
  return absl::OkStatus();
}

absl::Status ValidateReason(absl::string_view reason, bool required) {
  return Text(reason, "reason", required ? 1 : 0, kMaxRewardReasonBytes);
}

absl::StatusOr<int> NormalizeRewardPageSize(int32_t page_size) {
  if (page_size == 0) return kDefaultRewardPageSize;
  if (page_size < 0 || page_size > kMaxRewardPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be 0..", kMaxRewardPageSize, ", got ", page_size));
  }
  return static_cast<int>(page_size);
}

ledger::v1::RewardItem ItemFromFields(absl::string_view item_id, const Fields& fields) {
  ledger::v1::RewardItem item;
  item.set_item_id(std::string(item_id));
  item.set_name(Str(fields, "name"));
  item.set_description(Str(fields, "description"));
  item.set_price_points(Int(fields, "price"));
  item.set_unlimited(Str(fields, "unlimited") == "1");
  if (!item.unlimited()) item.set_stock(Int(fields, "stock"));
  item.set_active(Str(fields, "active") == "1");
  item.set_archived(Str(fields, "archived") == "1");
  item.set_reserved(Int(fields, "reserved"));
  item.set_fulfilled(Int(fields, "fulfilled"));
  SetMillis(item.mutable_create_time(), Int(fields, "create_ms"));
  SetMillis(item.mutable_update_time(), Int(fields, "update_ms"));
  // Items stored before versions existed are at version 1.
  item.set_version(fields.count("version") != 0 ? Int(fields, "version") : 1);
  return item;
}

ledger::v1::RewardRedemption RedemptionFromFields(absl::string_view id, const Fields& fields) {
  ledger::v1::RewardRedemption redemption;
  redemption.set_redemption_id(std::string(id));
  redemption.set_person_id(Str(fields, "person"));
  redemption.set_kind(Str(fields, "kind") == "CUSTOM" ? ledger::v1::REWARD_REDEMPTION_KIND_CUSTOM
                                                      : ledger::v1::REWARD_REDEMPTION_KIND_CATALOG);
  redemption.set_item_id(Str(fields, "item"));
  redemption.set_name(Str(fields, "reward"));
  redemption.set_description(Str(fields, "description"));
  redemption.set_quantity(static_cast<int32_t>(Int(fields, "qty")));
  redemption.set_points(Int(fields, "points"));
  redemption.set_state(StateFrom(Str(fields, "state")));
  SetMillis(redemption.mutable_create_time(), Int(fields, "create_ms"));
  SetMillis(redemption.mutable_update_time(), Int(fields, "update_ms"));
  redemption.set_decided_by(Str(fields, "decided_by"));
  redemption.set_reason(Str(fields, "reason"));
  redemption.set_transfer_id(Str(fields, "transfer_id"));
  return redemption;
}

ledger::v1::RewardSettings SettingsFromFields(const Fields& fields) {
  ledger::v1::RewardSettings settings = DefaultRewardSettings();
  if (fields.count("currency_name")) settings.set_currency_name(Str(fields, "currency_name"));
  if (fields.count("money_currency_code")) {
    settings.set_money_currency_code(Str(fields, "money_currency_code"));
  }
  settings.set_money_nanos_per_point(Int(fields, "money_nanos_per_point"));
  return settings;
}

std::string ItemFingerprint(const ledger::v1::RewardItem& item) {
  return absl::StrCat(item.name(), "\n", item.description(), "\n", item.price_points(), "\n",
                      item.unlimited() ? "unlimited" : absl::StrCat(item.stock()), "\n",
                      item.active() ? 1 : 0);
}

ledger::v1::Money PointsToMoney(int64_t points, int64_t nanos_per_point,
                                absl::string_view currency_code) {
  constexpr int64_t kNanos = 1'000'000'000;
  absl::int128 total = absl::int128(points) * nanos_per_point;
  ledger::v1::Money money;
  money.set_currency_code(std::string(currency_code));
  money.set_units(static_cast<int64_t>(total / kNanos));
  // Same sign as units, as google.type.Money has it (C++ division truncates).
  money.set_nanos(static_cast<int32_t>(total % kNanos));
  return money;
}

std::string EncodeRewardPageToken(absl::string_view position, absl::string_view scope) {
  return absl::WebSafeBase64Escape(absl::StrCat(scope, "\n", position));
}

absl::StatusOr<std::string> DecodeRewardPageToken(absl::string_view token,
                                                  absl::string_view scope) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) {
    return absl::InvalidArgumentError("page_token: is not a token this call returned");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits('\n', 1));
  if (parts.size() != 2 || parts[0] != scope || parts[1].empty()) {
    return absl::InvalidArgumentError(
        "page_token: was made for another listing (keep the other fields as they were)");
  }
  return parts[1];
}

absl::Status RequireRewardsAdmin(const common::auth::Principal& principal,
                                 absl::string_view what) {
  if (IsPersonAdmin(principal)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(what, ": only an org admin may do this"));
}

absl::Status RequirePerson(const common::auth::Principal& principal, absl::string_view what) {
  if (principal.is_service() || principal.is_screen_only()) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, ": only a person (a member or an admin) may do this"));
  }
  return absl::OkStatus();
}

}  // namespace ledger
