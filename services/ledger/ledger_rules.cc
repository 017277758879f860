#include "services/ledger/ledger_rules.h"

#include <openssl/evp.h>

#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/auth/ids.h"
#include "common/ids/packed_id.h"

namespace ledger {
namespace {

using ::ledger::v1::TransferKind;

bool IsPrintableAscii(char c) { return c >= 0x20 && c <= 0x7e; }

std::string Hex(const unsigned char* data, unsigned int length) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[data[i] >> 4]);
    hex.push_back(kHex[data[i] & 15]);
  }
  return hex;
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return Hex(digest, length);
}

// Length-prefixed, so no two different field lists encode the same.
void AppendField(std::string& out, absl::string_view value) {
  absl::StrAppend(&out, value.size(), ":", value, ";");
}

void AppendVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// Wraps `body` as the length-delimited field `field_number`.
std::string WrapField(int field_number, absl::string_view body) {
  std::string out;
  AppendVarint(out, static_cast<uint64_t>(field_number) << 3 | 2);
  AppendVarint(out, body.size());
  out.append(body.data(), body.size());
  return out;
}

std::string AccountTypeName(AccountType type) {
  switch (type) {
    case ledger::v1::ACCOUNT_TYPE_ALLOWANCE:
      return "ALLOWANCE";
    case ledger::v1::ACCOUNT_TYPE_EARNED:
      return "EARNED";
    case ledger::v1::ACCOUNT_TYPE_ISSUER:
      return "ISSUER";
    case ledger::v1::ACCOUNT_TYPE_REWARDS:
      return "REWARDS";
    default:
      return absl::StrCat("type ", static_cast<int>(type));
  }
}

std::map<std::string, std::string> SortedTags(const Transfer& transfer) {
  return {transfer.tags().begin(), transfer.tags().end()};
}

std::string TagsText(const std::map<std::string, std::string>& tags) {
  return absl::StrCat(
      "{", absl::StrJoin(tags, ",", absl::PairFormatter("=")), "}");
}

bool IsPerson(const common::auth::Principal& principal) {
  return !principal.is_service() && !principal.is_screen_only();
}

}  // namespace

// ---- accounts ---------------------------------------------------------------

std::string AccountKey(const Account& account) {
  switch (account.type()) {
    case ledger::v1::ACCOUNT_TYPE_ALLOWANCE:
      return absl::StrCat("allowance:", account.person_id());
    case ledger::v1::ACCOUNT_TYPE_EARNED:
      return absl::StrCat("earned:", account.person_id());
    case ledger::v1::ACCOUNT_TYPE_ISSUER:
      return "issuer";
    case ledger::v1::ACCOUNT_TYPE_REWARDS:
      return "rewards";
    default:
      return "unspecified";
  }
}

absl::StatusOr<Account> ParseAccountKey(absl::string_view key) {
  if (key == "issuer") return OrgAccount(ledger::v1::ACCOUNT_TYPE_ISSUER);
  if (key == "rewards") return OrgAccount(ledger::v1::ACCOUNT_TYPE_REWARDS);
  if (absl::ConsumePrefix(&key, "allowance:") && !key.empty()) {
    return PersonAccount(ledger::v1::ACCOUNT_TYPE_ALLOWANCE, key);
  }
  if (absl::ConsumePrefix(&key, "earned:") && !key.empty()) {
    return PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, key);
  }
  return absl::InvalidArgumentError(absl::StrCat("'", key, "' is not an account key"));
}

Account PersonAccount(AccountType type, absl::string_view person) {
  Account account;
  account.set_type(type);
  account.set_person_id(std::string(person));
  return account;
}

Account OrgAccount(AccountType type) {
  Account account;
  account.set_type(type);
  return account;
}

absl::Status ValidatePersonId(absl::string_view person, absl::string_view field) {
  if (person.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": is required"));
  }
  // The platform's one id rule (common/auth/ids.h): no ':' to blur the
  // ledger's "allowance:<person>" and "spent:<person>:<period>" keys.
  return common::auth::CheckId(field, person);
}

absl::Status ValidateAccount(const Account& account, absl::string_view field) {
  switch (account.type()) {
    case ledger::v1::ACCOUNT_TYPE_ALLOWANCE:
    case ledger::v1::ACCOUNT_TYPE_EARNED:
      return ValidatePersonId(account.person_id(), absl::StrCat(field, ".person_id"));
    case ledger::v1::ACCOUNT_TYPE_ISSUER:
    case ledger::v1::ACCOUNT_TYPE_REWARDS:
      if (!account.person_id().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ".person_id: must be empty for ", AccountTypeName(account.type())));
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(field, ".type: is required"));
  }
}

absl::Status ValidateOrg(absl::string_view org) {
  if (common::auth::ValidOrgId(org)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("org: the token's org must be ", common::auth::kIdRule));
}

// ---- transfers --------------------------------------------------------------

absl::Status ValidateIdempotencyKey(absl::string_view key, absl::string_view field,
                                    int max_length) {
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": is required"));
  if (key.size() > static_cast<size_t>(max_length)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": at most ", max_length, " characters, got ", key.size()));
  }
  for (char c : key) {
    if (!IsPrintableAscii(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": must be printable ASCII"));
    }
  }
  return absl::OkStatus();
}

namespace {

// Issuer -> earned kinds, each posted by one service: awards and
// celebrations by programs, season prizes by the leaderboard.
bool IsIssuerKind(ledger::v1::TransferKind kind) {
  return kind == ledger::v1::TRANSFER_KIND_AWARD ||
         kind == ledger::v1::TRANSFER_KIND_CELEBRATION ||
         kind == ledger::v1::TRANSFER_KIND_SEASON_PRIZE;
}

bool IsService(const common::auth::Principal& principal, absl::string_view subject) {
  return principal.is_service() && principal.subject == subject;
}

bool IsProgramsService(const common::auth::Principal& principal) {
  return IsService(principal, kProgramsServiceSubject);
}

std::string KindName(ledger::v1::TransferKind kind) {
  const std::string& name = ledger::v1::TransferKind_Name(kind);
  return name.empty() ? absl::StrCat(static_cast<int>(kind)) : name;
}

// The service that posts `kind` (subject), and how refusals name it.
struct KindPoster {
  const char* subject;
  const char* kinds;
};

KindPoster PosterOf(ledger::v1::TransferKind kind) {
  switch (kind) {
    case ledger::v1::TRANSFER_KIND_AWARD:
    case ledger::v1::TRANSFER_KIND_CELEBRATION:
      return {kProgramsServiceSubject, "AWARD and CELEBRATION: the programs service"};
    case ledger::v1::TRANSFER_KIND_SEASON_PRIZE:
      return {kLeaderboardServiceSubject, "SEASON_PRIZE: the leaderboard service"};
    default:
      return {kKudosServiceSubject, "KUDOS, BOOST and RETRACTION: the kudos service"};
  }
}

absl::Status CheckAccountTypes(const Transfer& transfer, absl::string_view field,
                               AccountType debit_type, AccountType credit_type,
                               absl::string_view kinds) {
  if (transfer.debit_account().type() != debit_type) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".debit_account.type: must be ", AccountTypeName(debit_type), " for ", kinds,
        ", got ", AccountTypeName(transfer.debit_account().type())));
  }
  if (absl::Status s = ValidateAccount(transfer.debit_account(),
                                       absl::StrCat(field, ".debit_account"));
      !s.ok()) {
    return s;
  }
  if (transfer.credit_account().type() != credit_type) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".credit_account.type: must be ", AccountTypeName(credit_type), " for ", kinds,
        ", got ", AccountTypeName(transfer.credit_account().type())));
  }
  return ValidateAccount(transfer.credit_account(), absl::StrCat(field, ".credit_account"));
}

// Accounts by kind: kudos and boosts spend an allowance; issuer kinds are
// paid by the org (its issuer goes negative, as AdjustBalance's does); a
// retraction moves a kudos' points back, earned -> allowance.
absl::Status CheckKindAccounts(const Transfer& transfer, absl::string_view field) {
  const ledger::v1::TransferKind kind = transfer.kind();
  if (kind == ledger::v1::TRANSFER_KIND_RETRACTION) {
    if (absl::Status s = CheckAccountTypes(transfer, field, ledger::v1::ACCOUNT_TYPE_EARNED,
                                           ledger::v1::ACCOUNT_TYPE_ALLOWANCE, "RETRACTION");
        !s.ok()) {
      return s;
    }
    return ValidateIdempotencyKey(transfer.reverses_transfer_id(),
                                  absl::StrCat(field, ".reverses_transfer_id"),
                                  kMaxTransferIdLength);
  }
  if (!transfer.reverses_transfer_id().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".reverses_transfer_id: only a RETRACTION reverses a transfer, this is ",
        KindName(kind)));
  }
  if (IsIssuerKind(kind)) {
    return CheckAccountTypes(transfer, field, ledger::v1::ACCOUNT_TYPE_ISSUER,
                             ledger::v1::ACCOUNT_TYPE_EARNED,
                             "AWARD, CELEBRATION and SEASON_PRIZE");
  }
  return CheckAccountTypes(transfer, field, ledger::v1::ACCOUNT_TYPE_ALLOWANCE,
                           ledger::v1::ACCOUNT_TYPE_EARNED, "KUDOS and BOOST");
}

}  // namespace

absl::Status ValidatePostedTransfer(const Transfer& transfer, absl::string_view field) {
  if (absl::Status s = ValidateIdempotencyKey(transfer.transfer_id(),
                                              absl::StrCat(field, ".transfer_id"),
                                              kMaxTransferIdLength);
      !s.ok()) {
    return s;
  }
  if (absl::StartsWith(transfer.transfer_id(), kAdjustmentIdPrefix) ||
      absl::StartsWith(transfer.transfer_id(), kRedemptionIdPrefix)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".transfer_id: '", transfer.transfer_id(), "' uses a prefix reserved by the ledger"));
  }
  const ledger::v1::TransferKind kind = transfer.kind();
  if (kind != ledger::v1::TRANSFER_KIND_KUDOS && kind != ledger::v1::TRANSFER_KIND_BOOST &&
      kind != ledger::v1::TRANSFER_KIND_RETRACTION && !IsIssuerKind(kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field,
                     ".kind: only KUDOS and BOOST may be posted (and RETRACTION by the kudos "
                     "service, AWARD and CELEBRATION by the programs service, SEASON_PRIZE by "
                     "the leaderboard), got ",
                     KindName(kind)));
  }
  if (absl::Status s = CheckKindAccounts(transfer, field); !s.ok()) return s;
  if (!IsIssuerKind(kind) &&
      transfer.debit_account().person_id() == transfer.credit_account().person_id()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".credit_account.person_id: '", transfer.credit_account().person_id(),
                     "' cannot receive from their own allowance"));
  }
  if (transfer.amount() < 1 || transfer.amount() > kMaxAmount) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".amount: must be in 1..", kMaxAmount,
                                                   ", got ", transfer.amount()));
  }
  if (transfer.reference().size() > kMaxReferenceBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".reference: at most ", kMaxReferenceBytes, " bytes"));
  }
  if (transfer.tags_size() > kMaxTags) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".tags: at most ", kMaxTags,
                                                   " tags, got ", transfer.tags_size()));
  }
  for (const auto& [key, value] : SortedTags(transfer)) {
    if (key.size() > kMaxTagBytes || value.size() > kMaxTagBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".tags['", key.substr(0, 32), "']: keys and values at most ", kMaxTagBytes,
          " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Transfer> PrepareReversal(const Transfer& reversal, const Transfer* original,
                                         const Transfer* stored_reversal,
                                         absl::string_view field) {
  const std::string& id = reversal.reverses_transfer_id();
  const std::string ref_field = absl::StrCat(field, ".reverses_transfer_id");
  // The merge base: the original's tags, or (archived original, live
  // reversal: a retry) the stored reversal's, so a retry fingerprints alike.
  const Transfer* base = original != nullptr ? original : stored_reversal;
  if (base == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        ref_field, ": no transfer '", id,
        "' in this org's live ledger (never posted, or archived after transfers_live_days)"));
  }
  if (original != nullptr) {
    if (original->kind() != ledger::v1::TRANSFER_KIND_KUDOS &&
        original->kind() != ledger::v1::TRANSFER_KIND_BOOST) {
      return absl::FailedPreconditionError(absl::StrCat(
          ref_field, ": transfer '", id, "' is ", KindName(original->kind()),
          "; only KUDOS and BOOST transfers can be reversed"));
    }
    if (AccountKey(reversal.debit_account()) != AccountKey(original->credit_account())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".debit_account: must be the reversed transfer's credit account ",
          AccountKey(original->credit_account()), ", got ",
          AccountKey(reversal.debit_account())));
    }
    if (AccountKey(reversal.credit_account()) != AccountKey(original->debit_account())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".credit_account: must be the reversed transfer's debit account ",
          AccountKey(original->debit_account()), ", got ",
          AccountKey(reversal.credit_account())));
    }
    if (reversal.amount() != original->amount()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".amount: must be the reversed transfer's amount ", original->amount(),
          ", got ", reversal.amount()));
    }
  }
  Transfer merged = reversal;
  for (const auto& [key, value] : base->tags()) merged.mutable_tags()->insert({key, value});
  (*merged.mutable_tags())[kRetractsTag] = id;
  // Consumers take the points back in the periods of the original's post
  // time (a retry with an archived original keeps the stored reversal's).
  if (original != nullptr) {
    (*merged.mutable_tags())[kRetractsPostMsTag] =
        absl::StrCat(absl::ToUnixMillis(FromTimestamp(original->post_time())));
  }
  return merged;
}

absl::Status ValidatePostRequestShape(int transfer_count) {
  if (transfer_count == 0) {
    return absl::InvalidArgumentError("transfers: at least one transfer is required");
  }
  if (transfer_count > kMaxTransfersPerCall) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transfers: at most ", kMaxTransfersPerCall, " per call, got ", transfer_count));
  }
  return absl::OkStatus();
}

std::string Fingerprint(const Transfer& transfer) {
  std::string canonical = "v1;";
  AppendField(canonical, AccountKey(transfer.debit_account()));
  AppendField(canonical, AccountKey(transfer.credit_account()));
  AppendField(canonical, absl::StrCat(transfer.amount()));
  AppendField(canonical, absl::StrCat(static_cast<int>(transfer.kind())));
  AppendField(canonical, transfer.reference());
  std::map<std::string, std::string> tags = SortedTags(transfer);
  AppendField(canonical, absl::StrCat(tags.size()));
  for (const auto& [key, value] : tags) {
    AppendField(canonical, key);
    AppendField(canonical, value);
  }
  // Only reversals carry it: every other transfer's fingerprint is as before.
  if (!transfer.reverses_transfer_id().empty()) {
    AppendField(canonical, "reverses");
    AppendField(canonical, transfer.reverses_transfer_id());
  }
  return Sha256Hex(canonical);
}

std::string DescribeDifference(const Transfer& posted, const Transfer& now) {
  if (AccountKey(posted.debit_account()) != AccountKey(now.debit_account())) {
    return absl::StrCat("debit_account: posted ", AccountKey(posted.debit_account()), ", now ",
                        AccountKey(now.debit_account()));
  }
  if (AccountKey(posted.credit_account()) != AccountKey(now.credit_account())) {
    return absl::StrCat("credit_account: posted ", AccountKey(posted.credit_account()),
                        ", now ", AccountKey(now.credit_account()));
  }
  if (posted.amount() != now.amount()) {
    return absl::StrCat("amount: posted ", posted.amount(), ", now ", now.amount());
  }
  if (posted.kind() != now.kind()) {
    return absl::StrCat("kind: posted ", ledger::v1::TransferKind_Name(posted.kind()), ", now ",
                        ledger::v1::TransferKind_Name(now.kind()));
  }
  if (posted.reference() != now.reference()) {
    return absl::StrCat("reference: posted '", posted.reference(), "', now '", now.reference(),
                        "'");
  }
  if (posted.reverses_transfer_id() != now.reverses_transfer_id()) {
    return absl::StrCat("reverses_transfer_id: posted '", posted.reverses_transfer_id(),
                        "', now '", now.reverses_transfer_id(), "'");
  }
  std::map<std::string, std::string> a = SortedTags(posted), b = SortedTags(now);
  if (a != b) return absl::StrCat("tags: posted ", TagsText(a), ", now ", TagsText(b));
  return "same payload";
}

std::string ConflictMessage(absl::string_view field, const Transfer& posted,
                            const Transfer& now) {
  return absl::StrCat(field, ": transfer_id '", now.transfer_id(),
                      "' was already posted with a different payload (",
                      DescribeDifference(posted, now), ")");
}

// ---- allowance --------------------------------------------------------------

AllowancePolicy DefaultPolicy() {
  AllowancePolicy policy;
  policy.set_points_per_period(100);
  policy.set_period(common::v1::ALLOWANCE_PERIOD_MONTH);
  policy.set_week_start(common::v1::DAY_OF_WEEK_MONDAY);
  return policy;
}

absl::StatusOr<AllowancePolicy> NormalizePolicy(const AllowancePolicy& policy) {
  AllowancePolicy out = policy;
  if (out.points_per_period() < 0 || out.points_per_period() > kMaxAmount) {
    return absl::InvalidArgumentError(absl::StrCat("policy.points_per_period: must be in 0..",
                                                   kMaxAmount, ", got ",
                                                   out.points_per_period()));
  }
  if (out.period() == common::v1::ALLOWANCE_PERIOD_UNSPECIFIED) {
    out.set_period(common::v1::ALLOWANCE_PERIOD_MONTH);
  }
  if (!common::v1::AllowancePeriod_IsValid(out.period())) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy.period: unknown value ", static_cast<int>(out.period())));
  }
  if (out.week_start() == common::v1::DAY_OF_WEEK_UNSPECIFIED) {
    out.set_week_start(common::v1::DAY_OF_WEEK_MONDAY);
  }
  if (!common::v1::DayOfWeek_IsValid(out.week_start())) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy.week_start: unknown value ", static_cast<int>(out.week_start())));
  }
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(out.time_zone());
  if (!zone.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("policy.", zone.status().message()));
  }
  return out;
}

// ---- retention ----------------------------------------------------------------

RetentionPolicy DefaultRetention() {
  RetentionPolicy retention;
  retention.set_idempotency_days(kDefaultIdempotencyDays);
  retention.set_kudos_live_days(kDefaultKudosLiveDays);
  retention.set_transfers_live_days(kDefaultTransfersLiveDays);
  retention.set_audit_days(kDefaultAuditDays);
  return retention;
}

namespace {

// 0 -> `fallback`; else 1..kMaxRetentionDays.
absl::StatusOr<int32_t> RetentionDays(int32_t days, int32_t fallback, absl::string_view field) {
  if (days == 0) return fallback;
  if (days < 1 || days > kMaxRetentionDays) {
    return absl::InvalidArgumentError(absl::StrCat("retention.", field,
                                                   ": must be 0 (the default, ", fallback,
                                                   ") or 1..", kMaxRetentionDays, ", got ", days));
  }
  return days;
}

}  // namespace

absl::StatusOr<RetentionPolicy> NormalizeRetention(const RetentionPolicy& retention) {
  RetentionPolicy out;
  absl::StatusOr<int32_t> idempotency =
      RetentionDays(retention.idempotency_days(), kDefaultIdempotencyDays, "idempotency_days");
  if (!idempotency.ok()) return idempotency.status();
  absl::StatusOr<int32_t> kudos =
      RetentionDays(retention.kudos_live_days(), kDefaultKudosLiveDays, "kudos_live_days");
  if (!kudos.ok()) return kudos.status();
  absl::StatusOr<int32_t> transfers = RetentionDays(
      retention.transfers_live_days(), kDefaultTransfersLiveDays, "transfers_live_days");
  if (!transfers.ok()) return transfers.status();
  absl::StatusOr<int32_t> audit =
      RetentionDays(retention.audit_days(), kDefaultAuditDays, "audit_days");
  if (!audit.ok()) return audit.status();
  if (*transfers < *idempotency) {
    return absl::InvalidArgumentError(absl::StrCat(
        "retention.transfers_live_days: ", *transfers,
        " days is shorter than retention.idempotency_days (", *idempotency,
        " days); transfers must stay live for the whole retry window, or a retry could post "
        "an archived transfer again"));
  }
  out.set_idempotency_days(*idempotency);
  out.set_kudos_live_days(*kudos);
  out.set_transfers_live_days(*transfers);
  out.set_audit_days(*audit);
  return out;
}

common::calendar::PeriodUnit PeriodUnitOf(common::v1::AllowancePeriod period) {
  switch (period) {
    case common::v1::ALLOWANCE_PERIOD_DAY:
      return common::calendar::PeriodUnit::kDay;
    case common::v1::ALLOWANCE_PERIOD_WEEK:
      return common::calendar::PeriodUnit::kWeek;
    case common::v1::ALLOWANCE_PERIOD_QUARTER:
      return common::calendar::PeriodUnit::kQuarter;
    case common::v1::ALLOWANCE_PERIOD_MONTH:
    default:
      return common::calendar::PeriodUnit::kMonth;
  }
}

absl::StatusOr<common::calendar::Period> AllowancePeriodAt(const AllowancePolicy& policy,
                                                           absl::Time t) {
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(policy.time_zone());
  if (!zone.ok()) return zone.status();
  return common::calendar::PeriodAt(PeriodUnitOf(policy.period()), t, *zone,
                                    static_cast<int>(policy.week_start()));
}

std::string AllowanceExhaustedMessage(absl::string_view person, int64_t spent, int64_t limit,
                                      absl::string_view period_key) {
  int64_t left = limit - spent < 0 ? 0 : limit - spent;
  return absl::StrCat("allowance: '", person, "' has ", left, " of ", limit,
                      " points left in period ", period_key);
}

std::string InsufficientFundsMessage(absl::string_view person, int64_t balance, int64_t held,
                                     int64_t needed) {
  return absl::StrCat("'", person, "' has ", balance - held, " points available (balance ",
                      balance, ", held ", held, "), ", needed, " needed");
}

std::string BalanceBoundMessage(absl::string_view account_key, absl::string_view stored,
                                absl::string_view movement, int64_t amount) {
  return absl::StrCat(account_key, " holds ", stored, " points; ", movement, " ", amount,
                      " would take it past the ledger's bound of +-", kMaxBalance, " points");
}

std::string PendingRedemptionsCapMessage(absl::string_view person) {
  return absl::StrCat("'", person, "' already has ", kMaxPendingRedemptionsPerPerson,
                      " pending redemptions, the most a person may hold at once; fulfil or "
                      "cancel one (or let it expire) before redeeming again");
}

std::map<std::string, int64_t> NetMovements(const std::vector<const Transfer*>& transfers) {
  std::map<std::string, int64_t> movements;
  for (const Transfer* transfer : transfers) {
    movements[AccountKey(transfer->debit_account())] -= transfer->amount();
    movements[AccountKey(transfer->credit_account())] += transfer->amount();
  }
  return movements;
}

int64_t SumOfMovements(const std::map<std::string, int64_t>& movements) {
  int64_t sum = 0;
  for (const auto& [account, movement] : movements) sum += movement;
  return sum;
}

// ---- outbox events ----------------------------------------------------------

void SetTimestamp(google::protobuf::Timestamp* out, absl::Time t) {
  int64_t seconds = absl::ToUnixSeconds(t);
  out->set_seconds(seconds);
  out->set_nanos(
      static_cast<int32_t>((t - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string EventHeader(absl::string_view org, absl::Time post_time) {
  ledger::v1::LedgerEvent event;
  ledger::v1::TransfersPosted* posted = event.mutable_transfers_posted();
  posted->set_org_id(std::string(org));
  SetTimestamp(posted->mutable_post_time(), post_time);
  return event.SerializeAsString();
}

std::string AppendSequence(absl::string_view transfer_body, int64_t sequence) {
  std::string out(transfer_body);
  AppendVarint(out, 9 << 3 | 0);  // Transfer.sequence, varint
  AppendVarint(out, static_cast<uint64_t>(sequence));
  return out;
}

std::string EventFragment(absl::string_view full_transfer) {
  // LedgerEvent.transfers_posted (1) { TransfersPosted.transfers (2) { transfer } }
  return WrapField(1, WrapField(2, full_transfer));
}

// ---- paging -----------------------------------------------------------------

absl::StatusOr<int> NormalizePageSize(int32_t page_size) {
  if (page_size == 0) return kDefaultPageSize;
  if (page_size < 0 || page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be in 1..", kMaxPageSize, ", got ", page_size));
  }
  return page_size;
}

std::string EncodePageToken(int64_t last_sequence, absl::string_view account_key) {
  return absl::WebSafeBase64Escape(absl::StrCat("v1|", last_sequence, "|", account_key));
}

absl::StatusOr<int64_t> DecodePageToken(absl::string_view token, absl::string_view account_key) {
  std::string raw;
  absl::Status bad = absl::InvalidArgumentError("page_token: malformed");
  // A token this ledger issued is "v1|<sequence>|<account key>", well under
  // this; anything longer is refused before it is decoded.
  constexpr size_t kMaxPageTokenBytes = 1024;
  if (token.size() > kMaxPageTokenBytes) return bad;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return bad;
  std::vector<absl::string_view> parts = absl::StrSplit(raw, absl::MaxSplits('|', 2));
  int64_t sequence = 0;
  if (parts.size() != 3 || parts[0] != "v1" || !absl::SimpleAtoi(parts[1], &sequence) ||
      sequence < 1) {
    return bad;
  }
  if (parts[2] != account_key) {
    return absl::InvalidArgumentError("page_token: was issued for another account");
  }
  return sequence;
}

// ---- redemptions and adjustments --------------------------------------------

std::string RedemptionId(absl::string_view person, absl::string_view request_id) {
  std::string canonical;
  AppendField(canonical, person);
  AppendField(canonical, request_id);
  return absl::StrCat("rdm_", Sha256Hex(canonical).substr(0, 24));
}

absl::Status ValidateRedemptionRequest(const ledger::v1::CreateRedemptionRequest& request) {
  if (absl::Status s =
          ValidateIdempotencyKey(request.request_id(), "request_id", kMaxRequestIdLength);
      !s.ok()) {
    return s;
  }
  if (!request.person_id().empty()) {
    if (absl::Status s = ValidatePersonId(request.person_id(), "person_id"); !s.ok()) return s;
  }
  if (request.reward().empty()) return absl::InvalidArgumentError("reward: is required");
  if (request.reward().size() > kMaxRewardBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("reward: at most ", kMaxRewardBytes, " bytes"));
  }
  if (request.points() < 1 || request.points() > kMaxAmount) {
    return absl::InvalidArgumentError(
        absl::StrCat("points: must be in 1..", kMaxAmount, ", got ", request.points()));
  }
  return HoldSeconds(request.hold_seconds()).status();
}

absl::StatusOr<int64_t> HoldSeconds(int64_t requested) {
  if (requested == 0) return kDefaultHoldSeconds;
  if (requested < 0 || requested > kMaxHoldSeconds) {
    return absl::InvalidArgumentError(absl::StrCat("hold_seconds: must be in 1..",
                                                   kMaxHoldSeconds, " (0 = 7 days), got ",
                                                   requested));
  }
  return requested;
}

absl::Status ValidateAdjustRequest(const ledger::v1::AdjustBalanceRequest& request) {
  if (absl::Status s =
          ValidateIdempotencyKey(request.request_id(), "request_id", kMaxRequestIdLength);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidatePersonId(request.person_id(), "person_id"); !s.ok()) return s;
  if (request.amount() == 0 || request.amount() > kMaxAmount || request.amount() < -kMaxAmount) {
    return absl::InvalidArgumentError(absl::StrCat("amount: must be non-zero and within +-",
                                                   kMaxAmount, ", got ", request.amount()));
  }
  if (absl::StripAsciiWhitespace(request.reason()).empty()) {
    return absl::InvalidArgumentError("reason: is required");
  }
  if (request.reason().size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("reason: at most ", kMaxReasonBytes, " bytes"));
  }
  return absl::OkStatus();
}

// ---- permissions ------------------------------------------------------------

bool IsKudosService(const common::auth::Principal& principal) {
  return principal.is_service() && principal.subject == kKudosServiceSubject;
}

bool IsPersonAdmin(const common::auth::Principal& principal) {
  return principal.is_admin() && !principal.is_service();
}

absl::Status CanPost(const common::auth::Principal& principal) {
  if (IsKudosService(principal) || IsProgramsService(principal) ||
      IsService(principal, kLeaderboardServiceSubject)) {
    return absl::OkStatus();
  }
  if (IsPersonAdmin(principal)) {
    return absl::PermissionDeniedError(
        "PostTransfers: only the kudos service posts kudos and boosts; an admin moves points "
        "with AdjustBalance, which is audited");
  }
  return absl::PermissionDeniedError(
      "PostTransfers: only the kudos service may post transfers");
}

absl::Status CanPostKind(const common::auth::Principal& principal, const Transfer& transfer,
                         absl::string_view field) {
  const KindPoster poster = PosterOf(transfer.kind());
  if (IsService(principal, poster.subject)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(field, ".kind: the ", principal.subject,
                                                  " service may not post ",
                                                  KindName(transfer.kind()), " (", poster.kinds,
                                                  ")"));
}

absl::Status CanReadPerson(const common::auth::Principal& principal, absl::string_view person) {
  if (principal.is_screen_only()) {
    return absl::PermissionDeniedError("screens cannot read accounts");
  }
  if (IsPersonAdmin(principal) || principal.is_service()) return absl::OkStatus();
  if (principal.subject == person) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("person_id: '", principal.subject, "' may not read the accounts of '", person,
                   "'"));
}

absl::Status CanReadAccount(const common::auth::Principal& principal, const Account& account) {
  if (principal.is_screen_only()) {
    return absl::PermissionDeniedError("screens cannot read accounts");
  }
  if (account.type() == ledger::v1::ACCOUNT_TYPE_ISSUER ||
      account.type() == ledger::v1::ACCOUNT_TYPE_REWARDS) {
    if (IsPersonAdmin(principal)) return absl::OkStatus();
    return absl::PermissionDeniedError("account: only admins may read org accounts");
  }
  return CanReadPerson(principal, account.person_id());
}

absl::Status CanSetPolicy(const common::auth::Principal& principal) {
  if (IsPersonAdmin(principal) || IsKudosService(principal)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      "SetAllowancePolicy: only an admin or the kudos service may set the policy");
}

absl::Status RequireAdmin(const common::auth::Principal& principal, absl::string_view what) {
  if (IsPersonAdmin(principal)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(what, ": admins only"));
}

absl::Status CanRedeemFor(const common::auth::Principal& principal, absl::string_view person) {
  if (IsPersonAdmin(principal)) return absl::OkStatus();
  if (IsPerson(principal) && principal.subject == person) return absl::OkStatus();
  if (principal.is_screen_only()) {
    return absl::PermissionDeniedError("screens cannot redeem");
  }
  return absl::PermissionDeniedError(
      absl::StrCat("person_id: only admins may redeem for someone else ('", person, "')"));
}

absl::Status CanCancelRedemption(const common::auth::Principal& principal,
                                 absl::string_view owner) {
  if (IsPersonAdmin(principal)) return absl::OkStatus();
  if (IsPerson(principal) && principal.subject == owner) return absl::OkStatus();
  return absl::PermissionDeniedError(
      "CancelRedemption: only an admin or the redemption's owner may cancel it");
}

// ---- verification -----------------------------------------------------------

namespace {
constexpr char kPackedMemberMarker = '\x01';
constexpr size_t kPackedMemberHead = 1 + common::ids::kPackedKudosIdBytes;  // marker + id
}  // namespace

std::string IndexMember(absl::string_view transfer_id) {
  const size_t colon = transfer_id.find(':');
  if (colon == absl::string_view::npos || colon + 1 == transfer_id.size()) {
    return std::string(transfer_id);
  }
  std::optional<std::string> packed = common::ids::PackKudosId(transfer_id.substr(0, colon));
  if (!packed.has_value()) return std::string(transfer_id);
  return absl::StrCat(absl::string_view(&kPackedMemberMarker, 1), *packed,
                      transfer_id.substr(colon + 1));
}

std::string TransferIdOfIndexMember(absl::string_view member) {
  if (member.size() <= kPackedMemberHead || member[0] != kPackedMemberMarker) {
    return std::string(member);
  }
  const absl::string_view packed_id = member.substr(1, common::ids::kPackedKudosIdBytes);
  return absl::StrCat(common::ids::UnpackKudosId(packed_id), ":", member.substr(kPackedMemberHead));
}

namespace {

// A journal line's short account names (issue 15, memory; scripts/lib.lua
// journal_line): "allowance:" and "earned:" as one byte each.
constexpr absl::string_view kJournalPrefixes[] = {"allowance:", "earned:"};
constexpr char kJournalCodes[] = {'\x02', '\x03'};

// `account` with its prefix as its code; "" when it has no code or its
// person holds a control byte (a code or a tab would misparse).
std::string ShortAccount(absl::string_view account) {
  for (size_t i = 0; i < 2; ++i) {
    if (!absl::StartsWith(account, kJournalPrefixes[i])) continue;
    absl::string_view person = account.substr(kJournalPrefixes[i].size());
    for (char c : person) {
      if (static_cast<unsigned char>(c) < 0x20) return "";
    }
    return absl::StrCat(absl::string_view(&kJournalCodes[i], 1), person);
  }
  return "";
}

bool IsJournalCode(char c) { return c == kJournalCodes[0] || c == kJournalCodes[1]; }

std::string LongAccount(absl::string_view coded) {
  return absl::StrCat(kJournalPrefixes[coded[0] == kJournalCodes[0] ? 0 : 1], coded.substr(1));
}

absl::Status MalformedJournalEntry(absl::string_view line) {
  return absl::DataLossError(
      absl::StrCat("journal entry '", absl::CHexEscape(line), "' is malformed"));
}

}  // namespace

std::string FormatJournalEntry(const JournalEntry& entry) {
  const std::string debit = ShortAccount(entry.debit);
  const std::string credit = ShortAccount(entry.credit);
  if (!debit.empty() && !credit.empty()) {
    return absl::StrCat(debit, credit, "\t", entry.amount, "\t", IndexMember(entry.transfer_id));
  }
  return absl::StrCat(entry.debit, "\t", entry.credit, "\t", entry.amount, "\t",
                      IndexMember(entry.transfer_id));
}

absl::StatusOr<JournalEntry> ParseJournalEntry(absl::string_view line) {
  JournalEntry entry;
  if (!line.empty() && IsJournalCode(line[0])) {
    // Short: both accounts in the first field, each starting with its code.
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits('\t', 2));
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &entry.amount)) {
      return MalformedJournalEntry(line);
    }
    size_t second = 1;
    while (second < parts[0].size() && !IsJournalCode(parts[0][second])) ++second;
    if (second == parts[0].size()) return MalformedJournalEntry(line);
    entry.debit = LongAccount(parts[0].substr(0, second));
    entry.credit = LongAccount(parts[0].substr(second));
    entry.transfer_id = TransferIdOfIndexMember(parts[2]);
    return entry;
  }
  std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits('\t', 3));
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[2], &entry.amount)) {
    return MalformedJournalEntry(line);
  }
  entry.debit = std::move(parts[0]);
  entry.credit = std::move(parts[1]);
  entry.transfer_id = TransferIdOfIndexMember(parts[3]);
  return entry;
}

void Verifier::AddArchived(const std::map<std::string, int64_t>& totals, int64_t count) {
  for (const auto& [account, total] : totals) recomputed_[account] += total;
  count_ += count;
}

void Verifier::Add(const JournalEntry& entry) {
  recomputed_[entry.debit] -= entry.amount;
  recomputed_[entry.credit] += entry.amount;
  ++count_;
}

ledger::v1::VerifyLedgerResponse Verifier::Finish(
    const std::map<std::string, int64_t>& stored) const {
  ledger::v1::VerifyLedgerResponse response;
  response.set_transfer_count(count_);
  std::set<std::string> keys;
  for (const auto& [key, value] : stored) keys.insert(key);
  for (const auto& [key, value] : recomputed_) keys.insert(key);
  int64_t sum = 0;
  for (const std::string& key : keys) {
    auto s = stored.find(key);
    auto r = recomputed_.find(key);
    int64_t stored_balance = s == stored.end() ? 0 : s->second;
    int64_t recomputed_balance = r == recomputed_.end() ? 0 : r->second;
    sum += stored_balance;
    absl::StatusOr<Account> account = ParseAccountKey(key);
    Account shown = account.ok() ? *account : Account();
    if (!account.ok()) shown.set_person_id(key);  // unknown key: still reported
    if (stored_balance != recomputed_balance) {
      ledger::v1::BalanceDifference* difference = response.add_differences();
      *difference->mutable_account() = shown;
      difference->set_stored_balance(stored_balance);
      difference->set_recomputed_balance(recomputed_balance);
    }
    if (absl::StartsWith(key, "earned:") && (stored_balance < 0 || recomputed_balance < 0)) {
      *response.add_negative_earned_accounts() = shown;
    }
  }
  response.set_sum_of_balances(sum);
  response.set_consistent(response.differences_size() == 0 && sum == 0 &&
                          response.negative_earned_accounts_size() == 0);
  return response;
}

}  // namespace ledger
