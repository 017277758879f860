// Ledger domain rules, plain C++ (no gRPC, no Redis): account keys,
// validation with messages that name the field, idempotency fingerprints,
// allowance periods, outbox event encoding, page tokens, permissions and the
// journal recomputation behind VerifyLedger.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "common/calendar/calendar.h"
#include "common/v1/common.pb.h"
#include "ledger/v1/ledger.pb.h"

namespace ledger {

using ::common::v1::AllowancePolicy;
using ::common::v1::RetentionPolicy;
using ::ledger::v1::Account;
using ::ledger::v1::AccountType;
using ::ledger::v1::Transfer;

// Lua numbers are doubles, exact below 2^53 (~9.007e15): amounts within
// 1e12 and balances within +-1e15 keep every sum and comparison the scripts
// make exact (1e15 + 100 transfers of 1e12 < 2^53), and far from int64 so an
// HINCRBY never overflows.
inline constexpr int64_t kMaxAmount = 1'000'000'000'000;          // 1e12
inline constexpr int64_t kMaxBalance = 1'000'000'000'000'000;     // 1e15
// Pending redemptions per person: holds a person can open at once (each is
// a small record; the cap keeps one person's writes and expiry work small).
inline constexpr int kMaxPendingRedemptionsPerPerson = 20;
// The only service that posts kudos and boosts (service token subject).
inline constexpr char kKudosServiceSubject[] = "kudos";
// The programs service (issue 18): pays awards and celebrations ISSUER -> EARNED.
inline constexpr char kProgramsServiceSubject[] = "programs";
// The leaderboard service (issue 18 part 5): pays season prizes ISSUER -> EARNED.
inline constexpr char kLeaderboardServiceSubject[] = "leaderboard";
// The tag a reversal carries naming the transfer it reverses (issue 18 part 6).
inline constexpr char kRetractsTag[] = "retracts";
// ... and the original's post time, unix milliseconds (boards subtract there).
inline constexpr char kRetractsPostMsTag[] = "retracts_post_ms";
inline constexpr int kMaxTransfersPerCall = 100;
inline constexpr int kMaxTransferIdLength = 128;
inline constexpr int kMaxTags = 16;
inline constexpr int kMaxTagBytes = 256;
inline constexpr int kMaxReferenceBytes = 256;
inline constexpr int kMaxRequestIdLength = 100;
inline constexpr int kMaxReasonBytes = 256;
inline constexpr int kMaxRewardBytes = 256;
inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 500;
inline constexpr int64_t kDefaultHoldSeconds = 7 * 24 * 3600;
inline constexpr int64_t kMaxHoldSeconds = 90 * 24 * 3600;
// Spent-per-period counters outlive their period by about a year.
inline constexpr int64_t kSpentTtlSeconds = 400 * 24 * 3600;

// Transfer ids the ledger makes itself; PostTransfers may not use them.
inline constexpr char kAdjustmentIdPrefix[] = "adjustment:";
inline constexpr char kRedemptionIdPrefix[] = "redemption:";

// ---- accounts ---------------------------------------------------------------

// "allowance:<person>", "earned:<person>", "issuer", "rewards".
std::string AccountKey(const Account& account);
absl::StatusOr<Account> ParseAccountKey(absl::string_view key);
Account PersonAccount(AccountType type, absl::string_view person);
Account OrgAccount(AccountType type);

// Required, and the platform's id rule (common/auth/ids.h: 1..64 of
// [A-Za-z0-9._-]).
absl::Status ValidatePersonId(absl::string_view person, absl::string_view field);
// A fully specified account: person accounts carry a valid person id, org
// accounts none.
absl::Status ValidateAccount(const Account& account, absl::string_view field);
// Org ids end up inside Redis hash tags: the platform's id rule.
absl::Status ValidateOrg(absl::string_view org);

// ---- transfers --------------------------------------------------------------

// 1..max_length printable ASCII characters (space included).
absl::Status ValidateIdempotencyKey(absl::string_view key, absl::string_view field,
                                    int max_length);
// A transfer as PostTransfers accepts it: KUDOS or BOOST, ALLOWANCE(p1) ->
// EARNED(p2), p1 != p2, amount in 1..1e12, id, reference and tags within
// bounds. `field` is e.g. "transfers[1]"; messages read "transfers[1].kind: ...".
absl::Status ValidatePostedTransfer(const Transfer& transfer, absl::string_view field);
// A RETRACTION as the ledger stores it: checked against the transfer it
// reverses (`original`, null when not live: NOT_FOUND; not KUDOS/BOOST:
// FAILED_PRECONDITION; accounts not swapped or another amount:
// INVALID_ARGUMENT naming the field), with the original's tags merged in
// (the caller's win) and "retracts" = the original's id. `stored_reversal`
// (this transfer_id already posted, or null) stands in for an archived
// original so a retry still finds its reversal.
absl::StatusOr<Transfer> PrepareReversal(const Transfer& reversal, const Transfer* original,
                                         const Transfer* stored_reversal,
                                         absl::string_view field);
// The whole request: 1..100 transfers (each is checked separately).
absl::Status ValidatePostRequestShape(int transfer_count);

// SHA-256 (hex) over debit, credit, amount, kind, reference and the sorted
// tags: what makes two postings of one transfer_id "the same". Ids, post
// time and sequence are not part of it.
std::string Fingerprint(const Transfer& transfer);
// The first field where a re-posted transfer differs from the posted one,
// e.g. "amount: posted 5, now 7".
std::string DescribeDifference(const Transfer& posted, const Transfer& now);
// "transfers[1]: transfer_id 'k1' was already posted with a different payload (amount: posted 5, now 7)".
std::string ConflictMessage(absl::string_view field, const Transfer& posted,
                            const Transfer& now);

// ---- allowance --------------------------------------------------------------

// 100 points per month, UTC, weeks from Monday.
AllowancePolicy DefaultPolicy();
// Fills defaults (period MONTH, week start MONDAY) and checks the rest:
// points_per_period in 0..1e12, a known zone. Fields are named "policy.*".
absl::StatusOr<AllowancePolicy> NormalizePolicy(const AllowancePolicy& policy);
// ---- retention ----------------------------------------------------------------

// Days, when a RetentionPolicy field is 0 (docs/retention-ledger.md).
inline constexpr int kDefaultIdempotencyDays = 30;
inline constexpr int kDefaultKudosLiveDays = 400;
inline constexpr int kDefaultTransfersLiveDays = 400;
inline constexpr int kDefaultAuditDays = 400;
inline constexpr int kMaxRetentionDays = 3650;

// Every field at its default.
RetentionPolicy DefaultRetention();
// 0 means the default, anything else must be 1..3650 ("retention.<field>:
// ..."). transfers_live_days must be at least idempotency_days: a retry of a
// transfer id inside the retry window must still find the live transfer,
// or it would be posted twice.
absl::StatusOr<RetentionPolicy> NormalizeRetention(const RetentionPolicy& retention);

common::calendar::PeriodUnit PeriodUnitOf(common::v1::AllowancePeriod period);
// The policy's period containing `t`, in its zone and week start.
absl::StatusOr<common::calendar::Period> AllowancePeriodAt(const AllowancePolicy& policy,
                                                           absl::Time t);
// "allowance: 'alice' has 20 of 100 points left in period 2026-11"
std::string AllowanceExhaustedMessage(absl::string_view person, int64_t spent, int64_t limit,
                                      absl::string_view period_key);
// "'alice' has 30 points available (balance 50, held 20), 40 needed"
std::string InsufficientFundsMessage(absl::string_view person, int64_t balance, int64_t held,
                                     int64_t needed);
// "earned:bob holds 999999999999999 points; crediting 5 would take it past
// the ledger's bound of +-1000000000000000 points". `stored` is the stored
// balance as Redis holds it (it may itself be out of bounds).
std::string BalanceBoundMessage(absl::string_view account_key, absl::string_view stored,
                                absl::string_view movement, int64_t amount);
// "'bob' already has 20 pending redemptions, the most a person may hold; ..."
std::string PendingRedemptionsCapMessage(absl::string_view person);

// Net movement per account key of a set of transfers (debit -amount,
// credit +amount); double entry means the values sum to zero.
std::map<std::string, int64_t> NetMovements(const std::vector<const Transfer*>& transfers);
int64_t SumOfMovements(const std::map<std::string, int64_t>& movements);

// ---- outbox events ----------------------------------------------------------
//
// Lua cannot encode protobuf, so C++ pre-encodes and the script only
// concatenates. Protobuf parsing merges concatenated messages (a singular
// sub-message field seen twice is merged, repeated fields are appended), so
//   header(org, time) + fragment(t1) + fragment(t2)
// parses as LedgerEvent{transfers_posted{org_id, post_time, transfers:[t1, t2]}}.
// The sequence is assigned inside the script, so the script appends it to
// the transfer body (field 9, varint) before wrapping it; these C++ twins of
// the Lua code are what the unit tests check the format against.

// LedgerEvent{transfers_posted{org_id, post_time}}.
std::string EventHeader(absl::string_view org, absl::Time post_time);
// Transfer body + field 9 (sequence): a Transfer with that sequence.
std::string AppendSequence(absl::string_view transfer_body, int64_t sequence);
// LedgerEvent{transfers_posted{transfers:[transfer]}}.
std::string EventFragment(absl::string_view full_transfer);

// Timestamp helpers.
void SetTimestamp(google::protobuf::Timestamp* out, absl::Time t);
absl::Time FromTimestamp(const google::protobuf::Timestamp& t);

// ---- paging -----------------------------------------------------------------

absl::StatusOr<int> NormalizePageSize(int32_t page_size);
// Opaque: web-safe base64 of the last returned sequence and the account.
std::string EncodePageToken(int64_t last_sequence, absl::string_view account_key);
// The sequence to continue below; INVALID_ARGUMENT when malformed or made
// for another account.
absl::StatusOr<int64_t> DecodePageToken(absl::string_view token, absl::string_view account_key);

// ---- redemptions and adjustments --------------------------------------------

// Deterministic per (person, request_id), so a retry finds the same one.
std::string RedemptionId(absl::string_view person, absl::string_view request_id);
absl::Status ValidateRedemptionRequest(const ledger::v1::CreateRedemptionRequest& request);
// 0 means the default (7 days); at most 90 days.
absl::StatusOr<int64_t> HoldSeconds(int64_t requested);
absl::Status ValidateAdjustRequest(const ledger::v1::AdjustBalanceRequest& request);

// ---- permissions ------------------------------------------------------------

// The kudos service, by subject: another service (the gateway) is not it.
bool IsKudosService(const common::auth::Principal& principal);
// An admin person: a service token is never an org's admin, whatever it claims.
bool IsPersonAdmin(const common::auth::Principal& principal);

// PostTransfers (kudos and boosts; awards and celebrations): the kudos and
// programs services only. An admin moves points with AdjustBalance, which is
// audited.
absl::Status CanPost(const common::auth::Principal& principal);
// Whether `principal` may post `transfer`'s kind: KUDOS/BOOST/RETRACTION from
// the kudos service, AWARD/CELEBRATION from the programs service,
// SEASON_PRIZE from the leaderboard. PERMISSION_DENIED naming the field
// otherwise.
absl::Status CanPostKind(const common::auth::Principal& principal, const Transfer& transfer,
                         absl::string_view field);
// Reading a person's accounts: the person, an admin or a service. Org
// accounts (issuer, rewards): admins only. Screens: never.
absl::Status CanReadAccount(const common::auth::Principal& principal, const Account& account);
absl::Status CanReadPerson(const common::auth::Principal& principal, absl::string_view person);
// An admin or the kudos service (mirroring the org's settings).
absl::Status CanSetPolicy(const common::auth::Principal& principal);
// An admin person (IsPersonAdmin).
absl::Status RequireAdmin(const common::auth::Principal& principal, absl::string_view what);
// Members redeem for themselves, admins for anyone.
absl::Status CanRedeemFor(const common::auth::Principal& principal, absl::string_view person);
// Cancel: an admin or the redemption's owner.
absl::Status CanCancelRedemption(const common::auth::Principal& principal,
                                 absl::string_view owner);

// ---- verification -----------------------------------------------------------

struct JournalEntry {
  std::string debit;
  std::string credit;
  int64_t amount = 0;
  std::string transfer_id;
};
// "debit\tcredit\tamount\t" + IndexMember(id), or, when both accounts are an
// allowance or earned account (issue 15: 16 B of a kudos transfer's line),
// the short form "<code>person<code>person\tamount\t" + IndexMember(id) with
// "allowance:" as \x02 and "earned:" as \x03 (scripts/lib.lua journal_line,
// the same). Parse reads every form, lines naming the transfer by its id too.
std::string FormatJournalEntry(const JournalEntry& entry);
absl::StatusOr<JournalEntry> ParseJournalEntry(absl::string_view line);

// Issue 15 (memory): how the account indexes (acct:) and the journal name a
// transfer (scripts/lib.lua index_member / id_of_member, the same
// functions). An id of the form the kudos service gives, 'k' + 24
// lower-case hex digits + ':' + the recipient, is "\x01" + the 12 bytes the
// digits spell (common/ids/packed_id.h) + the recipient; any other id is
// itself. Ids are printable ASCII, so "\x01" marks the packed form; entries
// written before are ids, which TransferIdOfIndexMember returns as they are.
std::string IndexMember(absl::string_view transfer_id);
std::string TransferIdOfIndexMember(absl::string_view member);

// Compares stored balances with balances recomputed from the journal.
class Verifier {
 public:
  // What the archived checkpoint holds: net movement per account and the
  // number of transfers folded into it.
  void AddArchived(const std::map<std::string, int64_t>& totals, int64_t count);
  void Add(const JournalEntry& entry);
  ledger::v1::VerifyLedgerResponse Finish(const std::map<std::string, int64_t>& stored) const;

 private:
  std::map<std::string, int64_t> recomputed_;
  int64_t count_ = 0;
};

}  // namespace ledger
