#include "services/ledger/rewards_store.h"

#include <map>
#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/audit.h"
#include "common/check/check.h"
#include "services/ledger/ledger_rules.h"
#include "services/ledger/ledger_store.h"
#include "services/ledger/rewards_rules.h"
#include "kRewardsCatalogLua.h"
#include "kRewardsReadLua.h"
#include "kRewardsRedeemLua.h"

namespace ledger {
namespace {

using common::redis::Reply;

// The bounds come from ledger_rules.h and rewards_rules.h, so C++ and Lua
// cannot disagree.
std::string WithLib(const char* script, bool write_transfer_keys = false) {
  return LedgerStore::WithLib(
      script, write_transfer_keys,
      absl::StrCat("local MAX_ITEMS = ", kMaxRewardItemsPerOrg, "\nlocal MAX_AWAITING = ",
                   kMaxAwaitingCustomRewardsPerPerson, "\nlocal MAX_AMOUNT = ", kMaxAmount,
                   "\nlocal MAX_LISTED = ", kMaxListedRedemptions,
                   "\nlocal MAX_LISTED_PER_PERSON = ", kMaxListedRedemptionsPerPerson, "\n"));
}

int64_t ToMillis(absl::Time t) { return absl::ToUnixMillis(t); }

absl::Status Malformed(absl::string_view what) {
  return absl::InternalError(absl::StrCat("rewards script returned a malformed ", what));
}

// The field/value pairs of an audit entry (AppendCommand after "XADD key *").
std::vector<std::string> AuditFields(absl::string_view org, absl::string_view actor,
                                     absl::string_view action, absl::string_view target,
                                     absl::string_view reason,
                                     std::vector<std::string> extra_pairs = {}) {
  common::redis::Command entry = common::audit::AppendCommand(org, actor, action, target, reason);
  std::vector<std::string> fields(entry.begin() + 3, entry.end());
  for (std::string& field : extra_pairs) fields.push_back(std::move(field));
  return fields;
}

absl::StatusOr<Fields> FlatMap(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() % 2 != 0) {
    return Malformed("hash");
  }
  Fields out;
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    out[reply.elements[i].str] = reply.elements[i + 1].str;
  }
  return out;
}

// {code, n1, [n2,] HGETALL} of the rewards scripts.
struct ScriptReply {
  std::string code;
  int64_t n1 = 0;
  int64_t n2 = 0;
  Fields fields;
};

absl::StatusOr<ScriptReply> ParseScriptReply(const Reply& reply, bool with_n2) {
  const size_t size = with_n2 ? 4 : 3;
  if (reply.type != Reply::Type::kArray || reply.elements.size() != size) {
    return Malformed("reply");
  }
  ScriptReply out;
  out.code = reply.elements[0].str;
  absl::StatusOr<long long> n1 = reply.elements[1].AsInteger();
  if (!n1.ok()) return Malformed("reply");
  out.n1 = *n1;
  if (with_n2) {
    absl::StatusOr<long long> n2 = reply.elements[2].AsInteger();
    if (!n2.ok()) return Malformed("reply");
    out.n2 = *n2;
  }
  absl::StatusOr<Fields> fields = FlatMap(reply.elements[size - 1]);
  if (!fields.ok()) return fields.status();
  out.fields = *std::move(fields);
  return out;
}

template <typename T, typename Parse>
common::redis::ReplyCallback Parsed(RewardsCallback<T> done, Parse parse) {
  return [done = std::move(done), parse = std::move(parse)](absl::StatusOr<Reply> reply) mutable {
    if (!reply.ok()) return std::move(done)(reply.status());
    std::move(done)(parse(*reply));
  };
}

const char* StateWord(ledger::v1::RewardRedemptionState state) {
  switch (state) {
    case ledger::v1::REWARD_REDEMPTION_STATE_AWAITING_APPROVAL:
      return "awaiting approval";
    case ledger::v1::REWARD_REDEMPTION_STATE_PENDING:
      return "pending";
    case ledger::v1::REWARD_REDEMPTION_STATE_FULFILLED:
      return "fulfilled";
    case ledger::v1::REWARD_REDEMPTION_STATE_DECLINED:
      return "declined";
    case ledger::v1::REWARD_REDEMPTION_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

absl::Status NoRedemption(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("redemption_id: '", id, "' does not exist"));
}

absl::Status NoItem(absl::string_view id, absl::string_view field) {
  return absl::NotFoundError(absl::StrCat(field, ": reward item '", id, "' does not exist"));
}

// Redemption replies: the refusals every op shares, else the record.
absl::StatusOr<ledger::v1::RewardRedemption> RedemptionResult(const ScriptReply& parsed,
                                                              absl::string_view id,
                                                              absl::string_view person,
                                                              int64_t points,
                                                              absl::string_view verb) {
  if (parsed.code == "CAP") {
    return absl::FailedPreconditionError(
        absl::StrCat("person_id: ", PendingRedemptionsCapMessage(person)));
  }
  if (parsed.code == "FUNDS") {
    // The script reports the points it needed (a catalog price x quantity).
    int64_t needed = points;
    auto it = parsed.fields.find("points");
    if (it != parsed.fields.end()) (void)absl::SimpleAtoi(it->second, &needed);
    return absl::FailedPreconditionError(
        absl::StrCat("points: ", InsufficientFundsMessage(person, parsed.n1, parsed.n2, needed)));
  }
  if (parsed.code == "OUT_OF_BOUNDS") {
    std::vector<std::string> parts =
        absl::StrSplit(parsed.fields.count("bound") ? parsed.fields.at("bound") : "",
                       absl::MaxSplits('\t', 1));
    if (parts.size() != 2) return Malformed("bound");
    return absl::FailedPreconditionError(
        absl::StrCat("points: ", BalanceBoundMessage(parts[0], parts[1], verb, points)));
  }
  if (parsed.code == "NOT_FOUND") return NoRedemption(id);
  ledger::v1::RewardRedemption current = RedemptionFromFields(id, parsed.fields);
  if (parsed.code == "FAILED_PRECONDITION") {
    return absl::FailedPreconditionError(absl::StrCat("redemption_id: '", id, "' is ",
                                                      StateWord(current.state()),
                                                      " and cannot be ", verb));
  }
  if (parsed.code == "NOT_CUSTOM") {
    return absl::FailedPreconditionError(absl::StrCat(
        "redemption_id: '", id,
        "' is a catalog redemption: only custom rewards need approval (fulfil or decline it)"));
  }
  if (parsed.code != "OK") return Malformed(absl::StrCat("code '", parsed.code, "'"));
  return current;
}

}  // namespace

RewardsStore::RewardsStore(common::redis::AsyncClient& redis, LedgerStore& writes)
    : redis_(redis),
      writes_(writes),
      catalog_("rewards_catalog", WithLib(kRewardsCatalogLua)),
      // Its fulfilments post transfers as the ledger store does.
      redeem_("rewards_redeem", WithLib(kRewardsRedeemLua, writes.write_transfer_keys())),
      read_("rewards_read", WithLib(kRewardsReadLua)) {}

// ---- catalog ------------------------------------------------------------------

void RewardsStore::EvalCatalog(absl::string_view org, absl::string_view op, absl::Time now,
                               const std::vector<std::string>& audit,
                               std::vector<std::string> op_args, common::redis::Deadline deadline,
                               common::redis::ReplyCallback done) {
  std::vector<std::string> args = {std::string(op), absl::StrCat(ToMillis(now)),
                                   absl::StrCat(audit.size())};
  args.insert(args.end(), audit.begin(), audit.end());
  keys::KeyList keys;
  keys.Add(keys::RewardItems(org)).Add(keys::RewardSettings(org));
  // create, update, archive: the item is their first argument; a list's
  // items are asked for by the script (NEED_KEYS).
  if (op != "list" && op != "settings") keys.Add(keys::RewardItem(org, op_args.at(0)));
  keys.Add(common::audit::StreamKey(org));
  for (std::string& arg : op_args) args.push_back(std::move(arg));
  writes_.EvalKeyed(catalog_, org, std::move(keys).Take(), std::move(args),
                    /*write=*/op != "list", deadline, std::move(done));
}

namespace {

std::vector<std::string> ItemArgs(const ledger::v1::RewardItem& item) {
  return {item.name(),
          item.description(),
          absl::StrCat(item.price_points()),
          absl::StrCat(item.unlimited() ? 0 : item.stock()),
          item.unlimited() ? "1" : "0",
          item.active() ? "1" : "0"};
}

std::vector<std::string> ItemAuditPairs(const ledger::v1::RewardItem& item) {
  return {"price_points", absl::StrCat(item.price_points()), "stock",
          item.unlimited() ? "unlimited" : absl::StrCat(item.stock()), "active",
          item.active() ? "true" : "false"};
}

}  // namespace

void RewardsStore::CreateItem(absl::string_view org, absl::string_view actor,
                              const ledger::v1::RewardItem& item, absl::Time now,
                              common::redis::Deadline deadline, RewardsCallback<CreatedItem> done) {
  std::vector<std::string> args = {item.item_id(), ItemFingerprint(item)};
  for (std::string& arg : ItemArgs(item)) args.push_back(std::move(arg));
  EvalCatalog(
      org, "create", now,
      AuditFields(org, actor, "rewards.create_item", item.item_id(), item.name(),
                  ItemAuditPairs(item)),
      std::move(args), deadline,
      Parsed(std::move(done),
             [id = item.item_id()](const Reply& reply) -> absl::StatusOr<CreatedItem> {
               absl::StatusOr<ScriptReply> parsed = ParseScriptReply(reply, false);
               if (!parsed.ok()) return parsed.status();
               if (parsed->code == "CAP") {
                 return absl::FailedPreconditionError(absl::StrCat(
                     "item: the org has ", parsed->n1, " reward items, the most it may keep (",
                     kMaxRewardItemsPerOrg, ", archived ones included); update an item instead"));
               }
               if (parsed->code == "CONFLICT") {
                 return absl::AlreadyExistsError(absl::StrCat(
                     "item.item_id: '", id,
                     "' already exists with another payload; UpdateRewardItem changes it"));
               }
               if (parsed->code != "OK") return Malformed("create reply");
               CreatedItem out;
               out.item = ItemFromFields(id, parsed->fields);
               out.created = parsed->n1 == 1;
               return out;
             }));
}

namespace {

absl::StatusOr<ledger::v1::RewardItem> ItemResult(const Reply& reply, absl::string_view id,
                                                  absl::string_view verb) {
  absl::StatusOr<ScriptReply> parsed = ParseScriptReply(reply, false);
  if (!parsed.ok()) return parsed.status();
  if (parsed->code == "NOT_FOUND") return NoItem(id, "item_id");
  if (parsed->code == "ARCHIVED") {
    return absl::FailedPreconditionError(
        absl::StrCat("item_id: reward item '", id, "' is archived and cannot be ", verb));
  }
  if (parsed->code == "STALE") {
    return absl::AbortedError(absl::StrCat(
        "item.version: reward item '", id, "' is at version ", parsed->n1,
        ", not the one this update was based on: it changed since (a redemption moves its "
        "stock, or another update); read it again (GetRewardItem) and apply the change to it"));
  }
  if (parsed->code == "VERSION_REQUIRED") {
    return absl::FailedPreconditionError(absl::StrCat(
        "item.version: changing the stock of reward item '", id,
        "' needs the version the change was based on (RewardItem.version from GetRewardItem; "
        "now ", parsed->n1, "): redemptions move the stock, so a stock set without it could "
        "give sold units back"));
  }
  if (parsed->code != "OK") return Malformed("item reply");
  return ItemFromFields(id, parsed->fields);
}

}  // namespace

void RewardsStore::UpdateItem(absl::string_view org, absl::string_view actor,
                              const ledger::v1::RewardItem& item, absl::Time now,
                              common::redis::Deadline deadline,
                              RewardsCallback<ledger::v1::RewardItem> done) {
  std::vector<std::string> args = {item.item_id()};
  for (std::string& arg : ItemArgs(item)) args.push_back(std::move(arg));
  args.push_back(absl::StrCat(item.version()));  // the version it was based on; 0: not named
  EvalCatalog(org, "update", now,
              AuditFields(org, actor, "rewards.update_item", item.item_id(), item.name(),
                          ItemAuditPairs(item)),
              std::move(args), deadline,
              Parsed(std::move(done), [id = item.item_id()](const Reply& reply) {
                return ItemResult(reply, id, "changed");
              }));
}

void RewardsStore::ArchiveItem(absl::string_view org, absl::string_view actor,
                               absl::string_view item_id, absl::Time now,
                               common::redis::Deadline deadline,
                               RewardsCallback<ledger::v1::RewardItem> done) {
  EvalCatalog(org, "archive", now,
              AuditFields(org, actor, "rewards.archive_item", item_id, "item archived"),
              {std::string(item_id)}, deadline,
              Parsed(std::move(done), [id = std::string(item_id)](const Reply& reply) {
                return ItemResult(reply, id, "archived");
              }));
}

void RewardsStore::GetItem(absl::string_view org, absl::string_view item_id,
                           common::redis::Deadline deadline,
                           RewardsCallback<ledger::v1::RewardItem> done) {
  redis_.Run({"HGETALL", keys::RewardItem(org, item_id)}, deadline,
             Parsed(std::move(done), [id = std::string(item_id)](const Reply& reply)
                                         -> absl::StatusOr<ledger::v1::RewardItem> {
               absl::StatusOr<Fields> fields = FlatMap(reply);
               if (!fields.ok()) return fields.status();
               if (fields->empty()) return NoItem(id, "item_id");
               return ItemFromFields(id, *fields);
             }));
}

void RewardsStore::ListItems(absl::string_view org, absl::string_view after, int page_size,
                             bool include_inactive, common::redis::Deadline deadline,
                             RewardsCallback<ItemPage> done) {
  EvalCatalog(
      org, "list", absl::Now(), {},
      {std::string(after), absl::StrCat(page_size), include_inactive ? "1" : "0"}, deadline,
      Parsed(std::move(done), [page_size](const Reply& reply) -> absl::StatusOr<ItemPage> {
        if (reply.type != Reply::Type::kArray || reply.elements.size() < 2 ||
            reply.elements.size() % 2 != 0 || reply.elements[0].str != "OK") {
          return Malformed("item page");
        }
        ItemPage page;
        page.next_after = reply.elements[1].str;
        for (size_t i = 2; i + 1 < reply.elements.size(); i += 2) {
          absl::StatusOr<Fields> fields = FlatMap(reply.elements[i + 1]);
          if (!fields.ok()) return fields.status();
          page.items.push_back(ItemFromFields(reply.elements[i].str, *fields));
        }
        KUDOS_CHECK(page.items.size() <= static_cast<size_t>(page_size),
                    "an item page holds at most page_size items");
        return page;
      }));
}

void RewardsStore::GetSettings(absl::string_view org, common::redis::Deadline deadline,
                               RewardsCallback<ledger::v1::RewardSettings> done) {
  redis_.Run({"HGETALL", keys::RewardSettings(org)}, deadline,
             Parsed(std::move(done),
                    [](const Reply& reply) -> absl::StatusOr<ledger::v1::RewardSettings> {
                      absl::StatusOr<Fields> fields = FlatMap(reply);
                      if (!fields.ok()) return fields.status();
                      return SettingsFromFields(*fields);
                    }));
}

void RewardsStore::SetSettings(absl::string_view org, absl::string_view actor,
                               const ledger::v1::RewardSettings& settings,
                               common::redis::Deadline deadline,
                               RewardsCallback<ledger::v1::RewardSettings> done) {
  EvalCatalog(
      org, "settings", absl::Now(),
      AuditFields(org, actor, "rewards.update_settings", "settings", "reward settings set",
                  {"currency_name", settings.currency_name(), "money_currency_code",
                   settings.money_currency_code(), "money_nanos_per_point",
                   absl::StrCat(settings.money_nanos_per_point())}),
      {settings.currency_name(), settings.money_currency_code(),
       absl::StrCat(settings.money_nanos_per_point())},
      deadline,
      Parsed(std::move(done), [](const Reply& reply) -> absl::StatusOr<ledger::v1::RewardSettings> {
        absl::StatusOr<ScriptReply> parsed = ParseScriptReply(reply, false);
        if (!parsed.ok()) return parsed.status();
        if (parsed->code != "OK") return Malformed("settings reply");
        return SettingsFromFields(parsed->fields);
      }));
}

// ---- redemptions ----------------------------------------------------------------

namespace {

// What every redemption op may touch whatever its person: the record, the
// balances, the listings, the open queue, the awaiting total and the audit stream.
keys::KeyList RedemptionKeys(absl::string_view org, absl::string_view redemption_id) {
  keys::KeyList keys;
  keys.Add(keys::Redemption(org, redemption_id))
      .Add(keys::Balances(org))  // a new hold is checked against the balance
      .Add(keys::RewardSequence(org))
      .Add(keys::RewardsListed(org))
      .Add(keys::RewardsOpen(org))
      .Add(keys::RewardsAwaitingPoints(org))
      .Add(common::audit::StreamKey(org));
  return keys;
}

// A person's holds and rewards listings (LedgerStore::AddKeysNeeded's
// 'holds' and 'person').
void AddPersonKeys(absl::string_view org, absl::string_view person, keys::KeyList& keys) {
  for (absl::string_view tag : {"holds", "person"}) {
    absl::Status added = LedgerStore::AddKeysNeeded(org, tag, person, keys);
    KUDOS_CHECK(added.ok(), "the person's key tags are known");
  }
}

}  // namespace

void RewardsStore::EvalRedeem(absl::string_view org, absl::string_view op, absl::Time now,
                              absl::string_view redemption_id, absl::string_view actor,
                              const std::vector<std::string>& audit,
                              std::vector<std::string> op_args, keys::KeyList keys,
                              common::redis::Deadline deadline,
                              RewardsCallback<ledger::v1::RewardRedemption> done,
                              std::string verb) {
  std::vector<std::string> args = {std::string(op),
                                   absl::StrCat(ToMillis(now)),
                                   std::string(redemption_id),
                                   std::string(actor),
                                   absl::StrCat(kFinishedRedemptionTtlSeconds),
                                   absl::StrCat(audit.size())};
  args.insert(args.end(), audit.begin(), audit.end());
  for (std::string& arg : op_args) args.push_back(std::move(arg));
  // The stored person's and item's keys are asked for by the script.
  for (std::string& key : std::move(RedemptionKeys(org, redemption_id)).Take()) {
    keys.Add(std::move(key));
  }
  writes_.EvalKeyed(
      redeem_, org, std::move(keys).Take(), std::move(args), /*write=*/true, deadline,
      Parsed(std::move(done), [id = std::string(redemption_id), verb = std::move(verb)](
                                  const Reply& reply)
                                  -> absl::StatusOr<ledger::v1::RewardRedemption> {
        absl::StatusOr<ScriptReply> parsed = ParseScriptReply(reply, true);
        if (!parsed.ok()) return parsed.status();
        // The op's own refusals were handled by the caller's wrapper; what
        // is left names the record.
        ledger::v1::RewardRedemption current = RedemptionFromFields(id, parsed->fields);
        return RedemptionResult(*parsed, id, current.person_id(), current.points(), verb);
      }));
}

void RewardsStore::Redeem(absl::string_view org, absl::string_view person,
                          absl::string_view request_id, absl::string_view item_id, int quantity,
                          absl::Time now, common::redis::Deadline deadline,
                          RewardsCallback<ledger::v1::RewardRedemption> done) {
  const std::string id = RewardRedemptionId(person, request_id);
  std::vector<std::string> args = {std::string(person), std::string(request_id),
                                   std::string(item_id), absl::StrCat(quantity)};
  std::vector<std::string> audit =
      AuditFields(org, person, "rewards.redeem_item", item_id, "catalog redemption",
                  {"redemption_id", id, "quantity", absl::StrCat(quantity)});
  std::vector<std::string> all = {"redeem",
                                  absl::StrCat(ToMillis(now)),
                                  id,
                                  std::string(person),
                                  absl::StrCat(kFinishedRedemptionTtlSeconds),
                                  absl::StrCat(audit.size())};
  all.insert(all.end(), audit.begin(), audit.end());
  all.insert(all.end(), args.begin(), args.end());
  keys::KeyList keys = RedemptionKeys(org, id);
  AddPersonKeys(org, person, keys);
  keys.Add(keys::RewardItem(org, item_id));
  writes_.EvalKeyed(
      redeem_, org, std::move(keys).Take(), std::move(all), /*write=*/true, deadline,
      Parsed(std::move(done),
             [id, person = std::string(person), item = std::string(item_id),
              request_id = std::string(request_id),
              quantity](const Reply& reply) -> absl::StatusOr<ledger::v1::RewardRedemption> {
               absl::StatusOr<ScriptReply> parsed = ParseScriptReply(reply, true);
               if (!parsed.ok()) return parsed.status();
               const std::string& code = parsed->code;
               if (code == "NO_ITEM") return NoItem(item, "item_id");
               if (code == "ARCHIVED" || code == "INACTIVE") {
                 return absl::FailedPreconditionError(absl::StrCat(
                     "item_id: reward item '", item, "' is ",
                     code == "ARCHIVED" ? "archived" : "not active", " and cannot be redeemed"));
               }
               if (code == "OUT_OF_STOCK") {
                 return absl::FailedPreconditionError(
                     absl::StrCat("item_id: reward item '", item, "' is out of stock: ",
                                  parsed->n1, " left, ", parsed->n2, " requested"));
               }
               if (code == "TOO_MUCH") {
                 return absl::InvalidArgumentError(absl::StrCat(
                     "quantity: ", quantity, " units cost ", parsed->n1,
                     " points, more than one redemption may move (", parsed->n2, ")"));
               }
               if (code == "CONFLICT") {
                 return absl::AlreadyExistsError(absl::StrCat(
                     "request_id: '", request_id,
                     "' was already used for another redemption (",
                     parsed->fields.count("item") ? parsed->fields.at("item") : "", " x ",
                     parsed->fields.count("qty") ? parsed->fields.at("qty") : "", ")"));
               }
               return RedemptionResult(*parsed, id, person, 0, "redeemed");
             }));
}

void RewardsStore::RequestCustom(absl::string_view org, absl::string_view person,
                                 const ledger::v1::RequestCustomRewardRequest& request,
                                 absl::Time now, common::redis::Deadline deadline,
                                 RewardsCallback<ledger::v1::RewardRedemption> done) {
  const std::string id = RewardRedemptionId(person, request.request_id());
  std::vector<std::string> audit =
      AuditFields(org, person, "rewards.request_custom", id, request.name(),
                  {"points", absl::StrCat(request.points())});
  std::vector<std::string> args = {"request",
                                   absl::StrCat(ToMillis(now)),
                                   id,
                                   std::string(person),
                                   absl::StrCat(kFinishedRedemptionTtlSeconds),
                                   absl::StrCat(audit.size())};
  args.insert(args.end(), audit.begin(), audit.end());
  for (std::string arg : {std::string(person), request.request_id(), request.name(),
                          request.description(), absl::StrCat(request.points())}) {
    args.push_back(std::move(arg));
  }
  keys::KeyList keys = RedemptionKeys(org, id);
  AddPersonKeys(org, person, keys);
  writes_.EvalKeyed(
      redeem_, org, std::move(keys).Take(), std::move(args), /*write=*/true, deadline,
      Parsed(std::move(done), [id, person = std::string(person), request](const Reply& reply)
                                  -> absl::StatusOr<ledger::v1::RewardRedemption> {
        absl::StatusOr<ScriptReply> parsed = ParseScriptReply(reply, true);
        if (!parsed.ok()) return parsed.status();
        if (parsed->code == "AWAITING_CAP") {
          return absl::FailedPreconditionError(absl::StrCat(
              "person_id: '", person, "' already has ", parsed->n1,
              " custom rewards awaiting approval, the most a person may have; wait for an "
              "admin's answer or cancel one"));
        }
        if (parsed->code == "CONFLICT") {
          return absl::AlreadyExistsError(absl::StrCat(
              "request_id: '", request.request_id(),
              "' was already used for another request (",
              parsed->fields.count("reward") ? parsed->fields.at("reward") : "", " for ",
              parsed->fields.count("points") ? parsed->fields.at("points") : "", " points)"));
        }
        return RedemptionResult(*parsed, id, person, request.points(), "requested");
      }));
}

void RewardsStore::Approve(absl::string_view org, absl::string_view actor,
                           absl::string_view redemption_id, absl::Time now,
                           common::redis::Deadline deadline,
                           RewardsCallback<ledger::v1::RewardRedemption> done) {
  EvalRedeem(org, "approve", now, redemption_id, actor,
             AuditFields(org, actor, "rewards.approve_custom", redemption_id, "approved"), {}, {},
             deadline, std::move(done), "approved");
}

void RewardsStore::Decline(absl::string_view org, absl::string_view actor,
                           absl::string_view redemption_id, absl::string_view reason,
                           absl::Time now, common::redis::Deadline deadline,
                           RewardsCallback<ledger::v1::RewardRedemption> done) {
  EvalRedeem(org, "decline", now, redemption_id, actor,
             AuditFields(org, actor, "rewards.decline_redemption", redemption_id, reason),
             {std::string(reason)}, {}, deadline, std::move(done), "declined");
}

void RewardsStore::Cancel(absl::string_view org, absl::string_view actor,
                          absl::string_view redemption_id, absl::string_view reason,
                          absl::Time now, common::redis::Deadline deadline,
                          RewardsCallback<ledger::v1::RewardRedemption> done) {
  EvalRedeem(org, "cancel", now, redemption_id, actor,
             AuditFields(org, actor, "rewards.cancel_redemption", redemption_id,
                         reason.empty() ? "cancelled" : reason),
             {std::string(reason)}, {}, deadline, std::move(done), "cancelled");
}

void RewardsStore::Fulfill(absl::string_view org, absl::string_view actor,
                           const ledger::v1::RewardRedemption& pending, absl::Time now,
                           common::redis::Deadline deadline,
                           RewardsCallback<ledger::v1::RewardRedemption> done) {
  Transfer transfer;
  transfer.set_transfer_id(absl::StrCat(kRedemptionIdPrefix, pending.redemption_id()));
  *transfer.mutable_debit_account() =
      PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, pending.person_id());
  *transfer.mutable_credit_account() = OrgAccount(ledger::v1::ACCOUNT_TYPE_REWARDS);
  transfer.set_amount(pending.points());
  transfer.set_kind(ledger::v1::TRANSFER_KIND_REDEMPTION);
  transfer.set_reference(pending.redemption_id());
  (*transfer.mutable_tags())["reward"] = pending.name();
  if (!pending.item_id().empty()) (*transfer.mutable_tags())["item"] = pending.item_id();
  KUDOS_CHECK(pending.points() >= 1 && pending.points() <= kMaxAmount,
              "a stored redemption holds 1..kMaxAmount points");

  std::vector<std::string> args = {EventHeader(org, now), "0", transfer.transfer_id(),
                                   absl::HexStringToBytes(Fingerprint(transfer)).substr(0, 16),
                                   AccountKey(transfer.debit_account()),
                                   AccountKey(transfer.credit_account()),
                                   absl::StrCat(transfer.amount())};
  Transfer body = transfer;
  SetTimestamp(body.mutable_post_time(), now);
  args.push_back(body.SerializeAsString());
  args.push_back("E");
  args.push_back(pending.person_id());
  std::vector<std::string> audit =
      AuditFields(org, actor, "rewards.fulfill_redemption", pending.redemption_id(),
                  pending.name(),
                  {"points", absl::StrCat(pending.points()), "transfer_id",
                   transfer.transfer_id(), "person_id", pending.person_id()});
  keys::KeyList keys;
  LedgerStore::AddJournalKeys(org, keys);
  LedgerStore::AddTransferKeys(org, transfer, "E", pending.person_id(), "", keys);
  AddPersonKeys(org, pending.person_id(), keys);
  if (!pending.item_id().empty()) keys.Add(keys::RewardItem(org, pending.item_id()));
  auto shared_done =
      std::make_shared<RewardsCallback<ledger::v1::RewardRedemption>>(std::move(done));
  // The org registry is in another slot: registered first, so an org with
  // an outbox is always registered (as the ledger's own writes do).
  redis_.Run(common::audit::RegisterOrgCommand(org), deadline,
             [this, org = std::string(org), actor = std::string(actor), now,
              id = pending.redemption_id(), audit = std::move(audit), args = std::move(args),
              keys = std::move(keys), deadline,
              shared_done](absl::StatusOr<Reply> registered) mutable {
               if (!registered.ok()) return std::move(*shared_done)(registered.status());
               if (registered->integer == 1) {  // a new org: hint its slot to discovery
                 redis_.Run(common::redis::IndexOrgSlotCommand(org), deadline,
                            [](absl::StatusOr<Reply>) {});
               }
               EvalRedeem(org, "fulfill", now, id, actor, audit, std::move(args),
                          std::move(keys), deadline,
                          std::move(*shared_done), "fulfilled");
             });
}

void RewardsStore::GetRedemption(absl::string_view org, absl::string_view redemption_id,
                                 common::redis::Deadline deadline,
                                 RewardsCallback<ledger::v1::RewardRedemption> done) {
  redis_.Run({"HGETALL", keys::Redemption(org, redemption_id)},
             deadline,
             Parsed(std::move(done), [id = std::string(redemption_id)](const Reply& reply)
                                         -> absl::StatusOr<ledger::v1::RewardRedemption> {
               absl::StatusOr<Fields> fields = FlatMap(reply);
               if (!fields.ok()) return fields.status();
               // A ledger redemption without a kind is not a rewards one.
               if (fields->empty() || fields->count("kind") == 0) return NoRedemption(id);
               return RedemptionFromFields(id, *fields);
             }));
}

void RewardsStore::ListRedemptions(absl::string_view org, RedemptionListing listing,
                                   absl::string_view person, absl::string_view after,
                                   int page_size, common::redis::Deadline deadline,
                                   RewardsCallback<RedemptionPage> done) {
  // The index by its name within the org (the script finds it in KEYS) and
  // its key; the page's records are asked for by the script (NEED_KEYS).
  std::string index = "rw:all";
  std::string index_key = keys::RewardsListed(org);
  if (listing == RedemptionListing::kPerson) {
    index = absl::StrCat("rw:p:", person);
    index_key = keys::RewardsListedOf(org, person);
  }
  if (listing == RedemptionListing::kOpen) {
    index = "rw:open";
    index_key = keys::RewardsOpen(org);
  }
  KUDOS_CHECK(index_key == LedgerStore::Prefix(org) + index, "the index's name is its key's");
  writes_.EvalKeyed(
      read_, org, {index_key},
      {"list", absl::StrCat(ToMillis(absl::Now())), index,
       listing == RedemptionListing::kOpen ? "oldest" : "newest", std::string(after),
       absl::StrCat(page_size)},
      /*write=*/false, deadline,
      Parsed(std::move(done), [page_size](const Reply& reply) -> absl::StatusOr<RedemptionPage> {
        if (reply.type != Reply::Type::kArray || reply.elements.empty() ||
            reply.elements.size() % 2 != 1) {
          return Malformed("redemption page");
        }
        RedemptionPage page;
        page.next_after = reply.elements[0].str;
        for (size_t i = 1; i + 1 < reply.elements.size(); i += 2) {
          absl::StatusOr<Fields> fields = FlatMap(reply.elements[i + 1]);
          if (!fields.ok()) return fields.status();
          page.redemptions.push_back(RedemptionFromFields(reply.elements[i].str, *fields));
        }
        KUDOS_CHECK(page.redemptions.size() <= static_cast<size_t>(page_size),
                    "a redemption page holds at most page_size redemptions");
        return page;
      }));
}

// ---- liability ------------------------------------------------------------------

void RewardsStore::Liability(absl::string_view org, absl::Time now,
                             common::redis::Deadline deadline,
                             RewardsCallback<LiabilityTotals> done) {
  LiabilityStep(std::string(org), now, "0", 0, LiabilityTotals{}, deadline, std::move(done));
}

void RewardsStore::LiabilityStep(std::string org, absl::Time now, std::string cursor, int step,
                                 LiabilityTotals totals, common::redis::Deadline deadline,
                                 RewardsCallback<LiabilityTotals> done) {
  if (step >= kMaxLiabilitySteps) {
    return std::move(done)(absl::ResourceExhaustedError(
        "liability: the org's accounts did not fit the report's bound of steps"));
  }
  // One HSCAN step of the balances (a plain read: its keys are known), then
  // one script over the people it named: their balances and holds (the
  // records of expired holds asked for with NEED_KEYS).
  redis_.Run(
      {"HSCAN", keys::Balances(org), cursor, "COUNT", absl::StrCat(kLiabilityScanCount)},
      deadline,
      [this, org, now, step, totals, deadline,
       done = std::move(done)](absl::StatusOr<Reply> scan) mutable {
        if (!scan.ok()) return std::move(done)(scan.status());
        if (scan->type != Reply::Type::kArray || scan->elements.size() != 2 ||
            scan->elements[1].elements.size() % 2 != 0) {
          return std::move(done)(Malformed("balance scan"));
        }
        std::string next = scan->elements[0].str;
        keys::KeyList keys;
        keys.Add(keys::Balances(org)).Add(keys::RewardsAwaitingPoints(org));
        std::vector<std::string> args = {"liability", absl::StrCat(ToMillis(now))};
        const std::vector<Reply>& fields = scan->elements[1].elements;
        for (size_t i = 0; i < fields.size(); i += 2) {
          absl::string_view account = fields[i].str;
          if (!absl::ConsumePrefix(&account, "earned:")) continue;
          keys.Add(keys::Held(org, account)).Add(keys::Holds(org, account));
          args.emplace_back(account);
        }
        writes_.EvalKeyed(
            read_, org, std::move(keys).Take(), std::move(args), /*write=*/false, deadline,
            [this, org, now, step, totals, deadline, next = std::move(next),
             done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
              if (!reply.ok()) return std::move(done)(reply.status());
              LiabilityRows(std::move(org), now, std::move(next), step, totals, *reply,
                            deadline, std::move(done));
            });
      });
}

void RewardsStore::LiabilityRows(std::string org, absl::Time now, std::string next, int step,
                                 LiabilityTotals totals, const Reply& reply,
                                 common::redis::Deadline deadline,
                                 RewardsCallback<LiabilityTotals> done) {
  if (reply.type != Reply::Type::kArray || reply.elements.empty() ||
      reply.elements.size() % 2 != 1) {
    return std::move(done)(Malformed("liability step"));
  }
  int64_t awaiting = 0;
  if (!absl::SimpleAtoi(reply.elements[0].str, &awaiting)) {
    return std::move(done)(Malformed("awaiting points"));
  }
  totals.awaiting_points = awaiting;
  for (size_t i = 1; i + 1 < reply.elements.size(); i += 2) {
    int64_t balance = 0;
    int64_t held = 0;
    if (!absl::SimpleAtoi(reply.elements[i].str, &balance) ||
        !absl::SimpleAtoi(reply.elements[i + 1].str, &held)) {
      return std::move(done)(Malformed("liability row"));
    }
    KUDOS_CHECK(held >= 0, "a held counter is never negative");
    if (__builtin_add_overflow(totals.outstanding_points, balance,
                               &totals.outstanding_points) ||
        __builtin_add_overflow(totals.held_points, held, &totals.held_points)) {
      return std::move(done)(absl::OutOfRangeError(
          "liability: the org's earned points exceed what the report can sum (2^63)"));
    }
    totals.people += 1;
  }
  if (next == "0") return std::move(done)(totals);
  LiabilityStep(std::move(org), now, std::move(next), step + 1, totals, deadline,
                std::move(done));
}

}  // namespace ledger
