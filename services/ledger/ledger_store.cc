#include "services/ledger/ledger_store.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>

#include "absl/flags/flag.h"
#include "absl/algorithm/container.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/audit.h"
#include "common/check/check.h"
#include "common/config/env.h"
#include "common/grpc/steps.h"
#include "common/redis/org_registry.h"
#include "services/ledger/ledger_archive.h"
#include "kLedgerAdjustLua.h"
#include "kLedgerBalanceLua.h"
#include "kLedgerLibLua.h"
#include "kLedgerListLua.h"
#include "kLedgerPostLua.h"
#include "kLedgerRedemptionLua.h"
#include "kLedgerTxReadLua.h"
#include "kLedgerAllowanceLua.h"

ABSL_FLAG(int64_t, redis_wait_replicas, common::config::IntEnvOr("REDIS_WAIT_REPLICAS", 0),
          "replicas that must acknowledge each ledger write (WAIT after the write script, same "
          "connection) before the call succeeds; fewer within --redis_wait_timeout_ms: "
          "UNAVAILABLE (retry with the same ids is safe); 0 = off (env REDIS_WAIT_REPLICAS)");
ABSL_FLAG(int64_t, redis_wait_timeout_ms, common::config::IntEnvOr("REDIS_WAIT_TIMEOUT_MS", 500),
          "how long a ledger write waits for --redis_wait_replicas acknowledgements (at most "
          "3/4 of the call's time left); it also holds the other calls of that Redis "
          "connection meanwhile (env REDIS_WAIT_TIMEOUT_MS)");

namespace ledger {

absl::StatusOr<WriteConcern> WriteConcernFromFlags() {
  int64_t replicas = absl::GetFlag(FLAGS_redis_wait_replicas);
  int64_t timeout_ms = absl::GetFlag(FLAGS_redis_wait_timeout_ms);
  if (replicas < 0 || replicas > 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--redis_wait_replicas (REDIS_WAIT_REPLICAS) must be 0..100, got ", replicas));
  }
  if (timeout_ms < 1 || timeout_ms > 60000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--redis_wait_timeout_ms (REDIS_WAIT_TIMEOUT_MS) must be 1..60000, got ", timeout_ms));
  }
  WriteConcern concern;
  concern.replicas = static_cast<int>(replicas);
  concern.timeout = std::chrono::milliseconds(timeout_ms);
  return concern;
}

namespace {

using common::grpc_util::Done;
using common::grpc_util::ForEach;
using common::grpc_util::Into;
using common::grpc_util::Sequence;
using common::redis::Reply;

constexpr int kJournalChunk = 1000;

// The bounds come from ledger_rules.h, so C++ and Lua cannot disagree.

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

// OUT_OF_BOUNDS rows: n1 = 1 the debit account, 2 the credit account.
const char* Movement(int64_t side) { return side == 2 ? "crediting" : "debiting"; }

// "OUT_OF_BOUNDS" payload "account\tstored balance" as a refusal.
absl::Status OutOfBounds(absl::string_view field, absl::string_view payload,
                         absl::string_view movement, int64_t amount) {
  std::vector<std::string> parts = absl::StrSplit(payload, absl::MaxSplits('\t', 1));
  if (parts.size() != 2) return absl::InternalError("ledger script returned a malformed bound");
  return absl::FailedPreconditionError(absl::StrCat(
      field, ": ", BalanceBoundMessage(parts[0], parts[1], movement, amount)));
}

int64_t ToMillis(absl::Time t) { return absl::ToUnixMillis(t); }

// The body the script stores: the transfer with its post time, without a
// sequence (the script appends it).
std::string TransferBody(Transfer transfer, absl::Time now) {
  transfer.clear_sequence();
  SetTimestamp(transfer.mutable_post_time(), now);
  return transfer.SerializeAsString();
}

// The TF fields read_transfer() (scripts/lib.lua) expects.
void AppendTransferArgs(std::vector<std::string>& args, int index, const Transfer& transfer,
                        absl::Time now, absl::string_view dkind, absl::string_view dperson) {
  args.push_back(absl::StrCat(index));
  args.push_back(transfer.transfer_id());
  // The first 16 raw bytes of the SHA-256 (was 64 hex digits) in the
  // stored transfer: a retry with other content under the same id differs
  // there but for a 2^-128 chance.
  args.push_back(absl::HexStringToBytes(Fingerprint(transfer)).substr(0, 16));
  args.push_back(AccountKey(transfer.debit_account()));
  args.push_back(AccountKey(transfer.credit_account()));
  args.push_back(absl::StrCat(transfer.amount()));
  args.push_back(TransferBody(transfer, now));
  args.push_back(std::string(dkind));
  args.push_back(std::string(dperson));
}

absl::Status Malformed(absl::string_view what) {
  return absl::InternalError(absl::StrCat("ledger script returned a malformed ", what));
}

absl::StatusOr<Transfer> ParseTransfer(absl::string_view bytes) {
  Transfer transfer;
  if (!transfer.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("stored transfer does not parse");
  }
  return transfer;
}

// One row {index, code, created, payload, n1, n2} of post.lua / adjust.lua.
struct Row {
  int index = 0;
  std::string code;
  bool created = false;
  std::string payload;
  int64_t n1 = 0;
  int64_t n2 = 0;
};

// `first`: the rows start there (post.lua's reply starts with whether it
// registered the org).
absl::StatusOr<std::vector<Row>> ParseRows(const Reply& reply, size_t first = 0) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() < first) {
    return Malformed("reply");
  }
  std::vector<Row> rows;
  for (size_t at = first; at < reply.elements.size(); ++at) {
    const Reply& element = reply.elements[at];
    if (element.type != Reply::Type::kArray || element.elements.size() != 6) {
      return Malformed("row");
    }
    Row row;
    absl::StatusOr<long long> index = element.elements[0].AsInteger();
    absl::StatusOr<long long> created = element.elements[2].AsInteger();
    absl::StatusOr<long long> n1 = element.elements[4].AsInteger();
    absl::StatusOr<long long> n2 = element.elements[5].AsInteger();
    if (!index.ok() || !created.ok() || !n1.ok() || !n2.ok()) return Malformed("row");
    row.index = static_cast<int>(*index);
    row.code = element.elements[1].str;
    row.created = *created == 1;
    row.payload = element.elements[3].str;
    row.n1 = *n1;
    row.n2 = *n2;
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<std::map<std::string, std::string>> FlatMap(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() % 2 != 0) {
    return Malformed("hash");
  }
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    out[reply.elements[i].str] = reply.elements[i + 1].str;
  }
  return out;
}

int64_t Int(const std::map<std::string, std::string>& fields, const std::string& name) {
  int64_t value = 0;
  auto it = fields.find(name);
  if (it != fields.end()) (void)absl::SimpleAtoi(it->second, &value);
  return value;
}

std::string Str(const std::map<std::string, std::string>& fields, const std::string& name) {
  auto it = fields.find(name);
  return it == fields.end() ? std::string() : it->second;
}

ledger::v1::Redemption RedemptionFrom(absl::string_view id,
                                      const std::map<std::string, std::string>& fields,
                                      absl::Time now) {
  ledger::v1::Redemption redemption;
  redemption.set_redemption_id(std::string(id));
  redemption.set_person_id(Str(fields, "person"));
  redemption.set_reward(Str(fields, "reward"));
  redemption.set_points(Int(fields, "points"));
  int64_t expire_ms = Int(fields, "expire_ms");
  SetTimestamp(redemption.mutable_create_time(), absl::FromUnixMillis(Int(fields, "create_ms")));
  SetTimestamp(redemption.mutable_expire_time(), absl::FromUnixMillis(expire_ms));
  redemption.set_transfer_id(Str(fields, "transfer_id"));
  std::string state = Str(fields, "state");
  if (state == "PENDING") {
    // Expiry is lazy: a due hold reads EXPIRED before any script releases it.
    redemption.set_state(expire_ms <= ToMillis(now) ? ledger::v1::REDEMPTION_STATE_EXPIRED
                                                    : ledger::v1::REDEMPTION_STATE_PENDING);
  } else if (state == "FULFILLED") {
    redemption.set_state(ledger::v1::REDEMPTION_STATE_FULFILLED);
  } else if (state == "CANCELLED") {
    redemption.set_state(ledger::v1::REDEMPTION_STATE_CANCELLED);
  } else if (state == "EXPIRED") {
    redemption.set_state(ledger::v1::REDEMPTION_STATE_EXPIRED);
  }
  return redemption;
}

// {code, n1, n2, HGETALL} of redemption.lua.
struct RedemptionReply {
  std::string code;
  int64_t n1 = 0;
  int64_t n2 = 0;
  std::map<std::string, std::string> fields;
};

absl::StatusOr<RedemptionReply> ParseRedemptionReply(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() != 4) {
    return Malformed("redemption reply");
  }
  RedemptionReply out;
  out.code = reply.elements[0].str;
  absl::StatusOr<long long> n1 = reply.elements[1].AsInteger();
  absl::StatusOr<long long> n2 = reply.elements[2].AsInteger();
  if (!n1.ok() || !n2.ok()) return Malformed("redemption reply");
  out.n1 = *n1;
  out.n2 = *n2;
  absl::StatusOr<std::map<std::string, std::string>> fields = FlatMap(reply.elements[3]);
  if (!fields.ok()) return fields.status();
  out.fields = *std::move(fields);
  return out;
}

const char* StateName(ledger::v1::RedemptionState state) {
  switch (state) {
    case ledger::v1::REDEMPTION_STATE_PENDING:
      return "pending";
    case ledger::v1::REDEMPTION_STATE_FULFILLED:
      return "fulfilled";
    case ledger::v1::REDEMPTION_STATE_CANCELLED:
      return "cancelled";
    case ledger::v1::REDEMPTION_STATE_EXPIRED:
      return "expired";
    default:
      return "unknown";
  }
}

// Before a post reaches the script: every amount validated, and double
// entry, what the call debits it credits.
void CheckDoubleEntry(const std::vector<const Transfer*>& transfers) {
  for (const Transfer* transfer : transfers) {
    KUDOS_CHECK(transfer->amount() >= 1 && transfer->amount() <= kMaxAmount,
                "a posted amount was validated to 1..kMaxAmount");
    KUDOS_CHECK(AccountKey(transfer->debit_account()) != AccountKey(transfer->credit_account()),
                "a posted transfer moves points between two accounts");
  }
  KUDOS_CHECK(SumOfMovements(NetMovements(transfers)) == 0,
              "a post's debits equal its credits before the script runs");
}

// After a linked post's reply is read: all of it or one refusal; when
// applied, the stored transfers move exactly what was asked, and their
// debits equal their credits.
void CheckLinkedResult(const std::vector<const Transfer*>& requested,
                       const std::vector<PostResult>& results) {
  if (results.size() == 1 && !results[0].status.ok()) return;
  KUDOS_CHECK(results.size() == requested.size(),
              "a linked post returns one result per transfer or a single refusal");
  std::vector<const Transfer*> stored;
  for (const PostResult& result : results) {
    KUDOS_CHECK(result.status.ok(), "a linked post applies every transfer or none");
    KUDOS_CHECK(result.transfer.sequence() > 0, "an applied transfer has a journal position");
    stored.push_back(&result.transfer);
  }
  std::map<std::string, int64_t> movements = NetMovements(stored);
  KUDOS_CHECK(SumOfMovements(movements) == 0,
              "a linked post's stored debits equal its credits");
  KUDOS_CHECK(movements == NetMovements(requested),
              "a linked post stores exactly the movements requested");
}

}  // namespace

LedgerStore::LedgerStore(common::redis::AsyncClient& redis, WriteConcern write_concern,
                         bool write_transfer_keys)
    : redis_(&redis),
      write_concern_(write_concern),
      write_transfer_keys_(write_transfer_keys),
      post_("ledger_post", WithLib(kLedgerPostLua, write_transfer_keys)),
      adjust_("ledger_adjust", WithLib(kLedgerAdjustLua, write_transfer_keys)),
      redemption_("ledger_redemption", WithLib(kLedgerRedemptionLua, write_transfer_keys)),
      balance_("ledger_balance", WithLib(kLedgerBalanceLua, false)),
      list_("ledger_list", WithLib(kLedgerListLua, false)),
      tx_read_("ledger_tx_read", WithLib(kLedgerTxReadLua, false)),
      allowance_("ledger_allowance", WithLib(kLedgerAllowanceLua, false)) {}

LedgerStore::LedgerStore(common::redis::Pool& pool, WriteConcern write_concern,
                         bool write_transfer_keys)
    : pool_(&pool),
      write_concern_(write_concern),
      write_transfer_keys_(write_transfer_keys),
      post_("ledger_post", WithLib(kLedgerPostLua, write_transfer_keys)),
      adjust_("ledger_adjust", WithLib(kLedgerAdjustLua, write_transfer_keys)),
      redemption_("ledger_redemption", WithLib(kLedgerRedemptionLua, write_transfer_keys)),
      balance_("ledger_balance", WithLib(kLedgerBalanceLua, false)),
      list_("ledger_list", WithLib(kLedgerListLua, false)),
      tx_read_("ledger_tx_read", WithLib(kLedgerTxReadLua, false)),
      allowance_("ledger_allowance", WithLib(kLedgerAllowanceLua, false)) {}

std::string LedgerStore::WithLib(absl::string_view script, bool write_transfer_keys,
                                 absl::string_view constants) {
  return absl::StrCat("local MAX_BALANCE = ", kMaxBalance, "\nlocal MAX_PENDING = ",
                      kMaxPendingRedemptionsPerPerson, "\nlocal WRITE_TX_KEYS = ",
                      write_transfer_keys ? "true" : "false", "\n", constants, kLedgerLibLua, "\n",
                      script);
}

std::string LedgerStore::Prefix(absl::string_view org) { return keys::Prefix(org); }

void LedgerStore::AddJournalKeys(absl::string_view org, keys::KeyList& keys) {
  keys.Add(keys::Balances(org))
      .Add(keys::Sequence(org))
      .Add(keys::Journal(org))
      .Add(keys::Outbox(org));
}

void LedgerStore::AddTransferKeys(absl::string_view org, const Transfer& transfer,
                                  absl::string_view dkind, absl::string_view dperson,
                                  absl::string_view period_key, keys::KeyList& keys) {
  keys::AddTransfer(keys, org, transfer.transfer_id())
      .Add(keys::AccountIndex(org, AccountKey(transfer.debit_account())))
      .Add(keys::AccountIndex(org, AccountKey(transfer.credit_account())));
  if (dkind == "A") keys.Add(keys::Spent(org, dperson, period_key));
  if (dkind == "E") keys.Add(keys::Held(org, dperson)).Add(keys::Holds(org, dperson));
}

absl::Status LedgerStore::AddKeysNeeded(absl::string_view org, absl::string_view tag,
                                        absl::string_view value, keys::KeyList& keys) {
  if (tag == "holds") {
    keys.Add(keys::Held(org, value)).Add(keys::Holds(org, value));
  } else if (tag == "rdm") {
    keys.Add(keys::Redemption(org, value));
  } else if (tag == "person") {
    keys.Add(keys::RewardsAwaiting(org, value)).Add(keys::RewardsListedOf(org, value));
  } else if (tag == "item") {
    keys.Add(keys::RewardItem(org, value));
  } else if (tag == "tx") {
    keys::AddTransfer(keys, org, value);
  } else {
    return absl::InternalError(
        absl::StrCat("ledger script asked for keys of an unknown kind '", tag, "'"));
  }
  return absl::OkStatus();
}

namespace {

// A script's answer that it needs more keys (lib.lua need_reply).
bool IsNeedKeys(const Reply& reply) {
  return reply.type == Reply::Type::kArray && !reply.elements.empty() &&
         reply.elements[0].type != Reply::Type::kArray && reply.elements[0].str == "NEED_KEYS";
}

// KEYS of one script call at most: far above what any call declares (a
// post's transfers, an archive chunk's accounts, a page's records).
constexpr size_t kMaxScriptKeys = 20000;

}  // namespace

void LedgerStore::EvalKeyed(const common::redis::Script& script, absl::string_view org,
                            std::vector<std::string> keys, std::vector<std::string> args,
                            bool write, Deadline deadline, common::redis::ReplyCallback done) {
  EvalKeyedAttempt(script, std::string(org), std::move(keys), std::move(args), write, deadline,
                   1, std::move(done));
}

void LedgerStore::EvalKeyedAttempt(const common::redis::Script& script, std::string org,
                                   std::vector<std::string> keys, std::vector<std::string> args,
                                   bool write, Deadline deadline, int attempt,
                                   common::redis::ReplyCallback done) {
  KUDOS_CHECK(attempt >= 1 && attempt <= kMaxKeyAttempts, "a keyed script runs at most 3 times");
  // Kept for a run with more keys (a copy: the client takes its own).
  auto call = std::make_shared<std::pair<std::vector<std::string>, std::vector<std::string>>>(
      keys, args);
  common::redis::ReplyCallback next = [this, &script, org, call, write, deadline, attempt,
                                       done = std::move(done)](
                                          absl::StatusOr<Reply> reply) mutable {
    if (!reply.ok() || !IsNeedKeys(*reply)) return std::move(done)(std::move(reply));
    if (attempt == kMaxKeyAttempts || reply->elements.size() % 2 != 1) {
      return std::move(done)(absl::AbortedError(absl::StrCat(
          "ledger: script ", script.name(), " needed other keys on each of ", attempt,
          " runs (the data it depends on kept changing); retry the call")));
    }
    keys::KeyList keys;
    for (std::string& key : call->first) keys.Add(std::move(key));
    for (size_t i = 1; i + 1 < reply->elements.size(); i += 2) {
      absl::Status added =
          AddKeysNeeded(org, reply->elements[i].str, reply->elements[i + 1].str, keys);
      if (!added.ok()) return std::move(done)(added);
    }
    if (keys.size() > kMaxScriptKeys) {
      return std::move(done)(absl::ResourceExhaustedError(absl::StrCat(
          "ledger: script ", script.name(), " needs ", keys.size(), " keys, more than ",
          kMaxScriptKeys)));
    }
    EvalKeyedAttempt(script, std::move(org), std::move(keys).Take(), std::move(call->second),
                     write, deadline, attempt + 1, std::move(done));
  };
  if (write) {
    return EvalWrite(script, org, std::move(keys), std::move(args), deadline, std::move(next));
  }
  Eval(script, std::move(keys), std::move(args), deadline, std::move(next));
}

void LedgerStore::Run(common::redis::Command command, Deadline deadline,
                      common::redis::ReplyCallback done) {
  if (redis_ != nullptr) return redis_->Run(std::move(command), deadline, std::move(done));
  std::move(done)(pool_->Run(command));
}

void LedgerStore::Pipeline(std::vector<common::redis::Command> commands, Deadline deadline,
                           common::redis::PipelineCallback done) {
  if (redis_ != nullptr) return redis_->Pipeline(std::move(commands), deadline, std::move(done));
  std::move(done)(pool_->Pipeline(commands));
}

void LedgerStore::Eval(const common::redis::Script& script, std::vector<std::string> keys,
                       std::vector<std::string> args, Deadline deadline,
                       common::redis::ReplyCallback done) {
  if (redis_ != nullptr) {
    return redis_->EvalSha(script, std::move(keys), std::move(args), deadline, std::move(done));
  }
  std::move(done)(pool_->Eval(script, keys, args));
}

void LedgerStore::EvalWrite(const common::redis::Script& script, absl::string_view org,
                            std::vector<std::string> keys, std::vector<std::string> args,
                            Deadline deadline, common::redis::ReplyCallback done) {
  const std::string tag = absl::StrCat("{", org, "}");
  KUDOS_CHECK(!keys.empty() && absl::c_all_of(keys,
                                              [&tag, org](const std::string& key) {
                                                return absl::StrContains(key, tag) ||
                                                       (absl::StartsWith(key, "platform:orgs:{") &&
                                                        key == common::redis::OrgRegistryKey(org));
                                              }),
              "a ledger write script's keys are all the org's (its slot, its registry key)");
  if (write_concern_.replicas == 0) {
    return Eval(script, std::move(keys), std::move(args), deadline, std::move(done));
  }
  EvalWaited(script, keys::WaitMark(org), std::move(keys), std::move(args), deadline,
             /*load_script=*/false, std::move(done));
}

common::redis::Command LedgerStore::WaitCommand(Deadline deadline) const {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  int64_t wait_ms = std::min<int64_t>(write_concern_.timeout.count(), left.count() * 3 / 4);
  wait_ms = std::max<int64_t>(wait_ms, 1);
  KUDOS_CHECK(wait_ms >= 1, "WAIT 0 would block the connection forever");
  return {"WAIT", absl::StrCat(write_concern_.replicas), absl::StrCat(wait_ms)};
}

absl::Status LedgerStore::Acknowledged(const absl::StatusOr<Reply>& wait,
                                       const common::redis::Command& wait_command) const {
  const int replicas = write_concern_.replicas;
  if (!wait.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "ledger: waiting for ", replicas, " replicas to acknowledge the write failed (",
        wait.status().message(),
        "); the write may be applied: retry with the same ids (safe)"));
  }
  if (wait->type == Reply::Type::kInteger && wait->integer >= replicas) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "ledger: the write was applied on the primary but ", wait->integer, " of ", replicas,
      " replicas acknowledged it within ", wait_command[2],
      " ms (--redis_wait_replicas); a failover now could lose it: retry with the same ids "
      "(safe)"));
}

void LedgerStore::EvalWaited(const common::redis::Script& script, std::string wait_mark,
                             std::vector<std::string> keys, std::vector<std::string> args,
                             Deadline deadline, bool load_script,
                             common::redis::ReplyCallback done) {
  // In one transaction so a MOVED/ASK redirects all of it, WAIT included
  // (the client re-sends a pipeline holding MULTI as a whole).
  std::vector<common::redis::Command> commands = {{"MULTI"}};
  if (load_script) commands.push_back({"SCRIPT", "LOAD", script.source()});
  common::redis::Command eval = {"EVALSHA", script.sha(), absl::StrCat(keys.size())};
  eval.insert(eval.end(), keys.begin(), keys.end());
  eval.insert(eval.end(), args.begin(), args.end());
  commands.push_back(std::move(eval));
  commands.push_back({"INCR", wait_mark});
  commands.push_back({"EXEC"});
  commands.push_back(WaitCommand(deadline));
  common::redis::Command wait_command = commands.back();
  const size_t exec = commands.size() - 2;
  Pipeline(
      std::move(commands), deadline,
      [this, &script, wait_mark = std::move(wait_mark), keys = std::move(keys),
       args = std::move(args), deadline, load_script,
       exec, wait_command = std::move(wait_command), done = std::move(done)](
          absl::StatusOr<common::redis::PipelineReplies> replies) mutable {
        if (!replies.ok()) return std::move(done)(replies.status());
        KUDOS_CHECK(replies->size() == exec + 2, "one reply per command of the pipeline");
        auto noscript = [](const absl::StatusOr<Reply>& reply) {
          return absl::IsNotFound(reply.status()) && reply.status().message() == "NOSCRIPT";
        };
        bool missing = false;
        for (size_t i = 1; i <= exec; ++i) missing = missing || noscript((*replies)[i]);
        if (missing && !load_script) {
          // A node that never ran it (first call, restart, failover, flush).
          return EvalWaited(script, std::move(wait_mark), std::move(keys), std::move(args),
                            deadline, /*load_script=*/true, std::move(done));
        }
        for (size_t i = 0; i < exec; ++i) {
          if (!(*replies)[i].ok()) return std::move(done)((*replies)[i].status());
        }
        if (absl::Status acked = Acknowledged((*replies)[exec + 1], wait_command); !acked.ok()) {
          return std::move(done)(std::move(acked));
        }
        absl::StatusOr<Reply>& result = (*replies)[exec];
        if (!result.ok()) return std::move(done)(result.status());  // the script's refusal
        const size_t script_at = load_script ? 1 : 0;
        if (result->type != Reply::Type::kArray || result->elements.size() != script_at + 2) {
          return std::move(done)(Malformed("transaction reply"));
        }
        std::move(done)(std::move(result->elements[script_at]));
      });
}

void LedgerStore::RegisterOrgThen(absl::string_view org, Deadline deadline,
                                  absl::AnyInvocable<void() &&> write, StatusCallback failed) {
  // Registered first (its own call: the scripts declare a prefix, not the
  // registry key), so an org with an outbox is always registered.
  Run(common::audit::RegisterOrgCommand(org), deadline,
      [this, org = std::string(org), deadline, write = std::move(write),
       failed = std::move(failed)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) return std::move(failed)(reply.status());
        HintNewOrg(org, *reply, deadline);
        std::move(write)();
      });
}

void LedgerStore::HintNewOrg(const std::string& org, const Reply& registered,
                             Deadline deadline) {
  // A new org in its slot: hint the slot to discovery (another slot, so its
  // own call; if lost, the org is found by discovery's rolling window later).
  if (registered.integer != 1) return;
  Run(common::redis::IndexOrgSlotCommand(org), deadline, [](absl::StatusOr<Reply>) {});
}

namespace {

absl::StatusOr<AllowancePolicy> ParsePolicy(const Reply& reply) {
  if (reply.is_nil()) return DefaultPolicy();
  AllowancePolicy policy;
  if (!policy.ParseFromString(reply.str)) {
    return absl::DataLossError("stored allowance policy does not parse");
  }
  return policy;
}

absl::StatusOr<RetentionPolicy> ParseRetention(const Reply& reply) {
  if (reply.is_nil()) return DefaultRetention();
  RetentionPolicy retention;
  if (!retention.ParseFromString(reply.str)) {
    return absl::DataLossError("stored retention policy does not parse");
  }
  return retention;
}

// A reply callback that hands parse(reply) (or the call's error) to `done`.
template <typename T, typename Parse>
common::redis::ReplyCallback Parsed(Callback<T> done, Parse parse) {
  return [done = std::move(done), parse = std::move(parse)](absl::StatusOr<Reply> reply) mutable {
    if (!reply.ok()) return std::move(done)(reply.status());
    std::move(done)(parse(*reply));
  };
}

}  // namespace

void LedgerStore::GetPolicy(absl::string_view org, Deadline deadline,
                            Callback<AllowancePolicy> done) {
  Run({"GET", keys::Policy(org)}, deadline, Parsed(std::move(done), ParsePolicy));
}

void LedgerStore::GetRetention(absl::string_view org, Deadline deadline,
                               Callback<RetentionPolicy> done) {
  Run({"GET", keys::Retention(org)}, deadline, Parsed(std::move(done), ParseRetention));
}

void LedgerStore::SetPolicy(absl::string_view org, absl::string_view audit_actor,
                            const AllowancePolicy& policy,
                            const std::optional<RetentionPolicy>& retention, Deadline deadline,
                            StatusCallback done) {
  // The policy, the retention and the audit entry (same slot) together or
  // not at all.
  std::vector<common::redis::Command> commands = {
      {"MULTI"},
      {"SET", keys::Policy(org), policy.SerializeAsString()},
      {"INCR", keys::AllowanceVersion(org)}};  // allowance_cache.h
  if (retention.has_value()) {
    commands.push_back({"SET", keys::Retention(org), retention->SerializeAsString()});
  }
  if (!audit_actor.empty()) {
    common::redis::Command audit = common::audit::AppendCommand(
        org, audit_actor, "ledger.set_allowance_policy", "policy", "allowance policy set");
    for (std::string extra :
         {std::string("points_per_period"), absl::StrCat(policy.points_per_period()),
          std::string("period"), common::v1::AllowancePeriod_Name(policy.period()),
          std::string("time_zone"), policy.time_zone()}) {
      audit.push_back(std::move(extra));
    }
    if (retention.has_value()) {
      audit.push_back("transfers_live_days");
      audit.push_back(absl::StrCat(retention->transfers_live_days()));
      audit.push_back("idempotency_days");
      audit.push_back(absl::StrCat(retention->idempotency_days()));
    }
    commands.push_back(std::move(audit));
  }
  commands.push_back({"EXEC"});
  // With a write concern, WAIT after the transaction (ledger_store.h).
  const bool wait = write_concern_.replicas > 0;
  common::redis::Command wait_command;
  if (wait) {
    wait_command = WaitCommand(deadline);
    commands.push_back(wait_command);
  }
  Pipeline(std::move(commands), deadline,
           [this, org = std::string(org), wait, wait_command = std::move(wait_command),
            done = std::move(done)](
               absl::StatusOr<common::redis::PipelineReplies> replies) mutable {
             AllowanceChanged(org);  // allowance_cache.h
             if (!replies.ok()) return std::move(done)(replies.status());
             const size_t writes = replies->size() - (wait ? 1 : 0);
             for (size_t i = 0; i < writes; ++i) {
               if (!(*replies)[i].ok()) return std::move(done)((*replies)[i].status());
             }
             if (wait) return std::move(done)(Acknowledged(replies->back(), wait_command));
             std::move(done)(absl::OkStatus());
           });
}

namespace {

// What a post carries from one step to the next.
struct PostState {
  std::string org;
  std::vector<std::pair<int, Transfer>> transfers;
  bool linked = false;
  absl::Time now;
  AllowancePolicy policy;
  PostAllowance allowance;
  common::calendar::Period period;
  // Index -> dkind when not the default (reversals: 'R' or 'E').
  std::map<int, std::string> debit_kinds;
  // Givers whose allowance differs from the policy's (rules, boosts).
  std::map<std::string, int64_t> limits;
  // Unlinked reversals refused before the script (request order kept by index).
  std::vector<PostResult> refused;
  Reply stored;  // tx_read.lua's reply: originals, then the reversals' own ids
  Reply reply;
};

bool IsReversal(const Transfer& transfer) {
  return transfer.kind() == ledger::v1::TRANSFER_KIND_RETRACTION;
}

// The message of an 'E'/'R' debit that the earned account cannot cover.
std::string FundsMessage(const Transfer& request, int64_t balance, int64_t held) {
  std::string message = InsufficientFundsMessage(request.debit_account().person_id(), balance,
                                                 held, request.amount());
  if (!IsReversal(request)) return message;
  return absl::StrCat(message, " to reverse transfer '", request.reverses_transfer_id(),
                      "': the points were redeemed or are held; decline or cancel '",
                      request.debit_account().person_id(),
                      "''s pending redemptions, or credit them with AdjustBalance, then retry");
}

// The script's rows as results in request order (see Post).
absl::StatusOr<std::vector<PostResult>> PostResults(const PostState& state) {
  std::map<int, const Transfer*> by_index;
  std::vector<const Transfer*> requested;
  for (const auto& [index, transfer] : state.transfers) {
    by_index[index] = &transfer;
    requested.push_back(&transfer);
  }
  absl::StatusOr<std::vector<Row>> rows = ParseRows(state.reply, /*first=*/1);
  if (!rows.ok()) return rows.status();
  std::vector<PostResult> results = state.refused;
  for (const Row& row : *rows) {
    auto it = by_index.find(row.index);
    if (it == by_index.end()) return Malformed("row index");
    const Transfer& request = *it->second;
    std::string field = absl::StrCat("transfers[", row.index, "]");
    PostResult result;
    result.index = row.index;
    if (row.code == "OK") {
      absl::StatusOr<Transfer> stored = ParseTransfer(row.payload);
      if (!stored.ok()) return stored.status();
      // The pair of PrepareReversals' check: what was stored reverses what was asked.
      auto retracts = stored->tags().find(kRetractsTag);
      KUDOS_CHECK(stored->reverses_transfer_id() == request.reverses_transfer_id() &&
                      (!IsReversal(request) || (retracts != stored->tags().end() &&
                                                retracts->second == request.reverses_transfer_id())),
                  "a stored reversal names the transfer it was posted to reverse");
      result.transfer = *std::move(stored);
      result.created = row.created;
    } else if (row.code == "CONFLICT") {
      absl::StatusOr<Transfer> stored = ParseTransfer(row.payload);
      if (!stored.ok()) return stored.status();
      result.status = absl::AlreadyExistsError(ConflictMessage(field, *stored, request));
    } else if (row.code == "REVERSED") {
      result.status = absl::AlreadyExistsError(absl::StrCat(
          field, ".reverses_transfer_id: transfer '", request.reverses_transfer_id(),
          "' was already reversed by transfer '", row.payload,
          "'; a transfer is reversed at most once"));
    } else if (row.code == "RESOURCE_EXHAUSTED") {
      result.status = absl::ResourceExhaustedError(absl::StrCat(
          field, ": ",
          AllowanceExhaustedMessage(request.debit_account().person_id(), row.n1, row.n2,
                                    state.period.key),
          ", ", request.amount(), " requested"));
    } else if (row.code == "FAILED_PRECONDITION") {
      result.status = absl::FailedPreconditionError(
          absl::StrCat(field, ": ", FundsMessage(request, row.n1, row.n2)));
    } else if (row.code == "OUT_OF_BOUNDS") {
      result.status = OutOfBounds(field, row.payload, Movement(row.n1), request.amount());
    } else {
      return Malformed(absl::StrCat("row code '", row.code, "'"));
    }
    results.push_back(std::move(result));
  }
  if (state.linked && state.refused.empty()) CheckLinkedResult(requested, results);
  std::sort(results.begin(), results.end(),
            [](const PostResult& a, const PostResult& b) { return a.index < b.index; });
  return results;
}

// Reversals: the ids to read, originals first, then the reversals' own.
std::vector<std::string> ReversalReadIds(const PostState& state) {
  std::vector<std::string> ids;
  for (const auto& [index, transfer] : state.transfers) {
    if (IsReversal(transfer)) ids.push_back(transfer.reverses_transfer_id());
  }
  for (const auto& [index, transfer] : state.transfers) {
    if (IsReversal(transfer)) ids.push_back(transfer.transfer_id());
  }
  return ids;
}

absl::StatusOr<std::optional<Transfer>> StoredAt(const Reply& reply, size_t at) {
  if (reply.type != Reply::Type::kArray || at >= reply.elements.size()) {
    return Malformed("transfer read");
  }
  const std::string& body = reply.elements[at].str;
  if (body.empty()) return std::optional<Transfer>();
  absl::StatusOr<Transfer> transfer = ParseTransfer(body);
  if (!transfer.ok()) return transfer.status();
  return std::optional<Transfer>(*std::move(transfer));
}

// Each reversal checked against its original and completed (tags), with
// its debit kind: 'R' when the original is of the current allowance period
// (the giver gets that allowance back), 'E' otherwise. A refusal fails a
// linked call; an unlinked one drops the transfer with its own result.
absl::Status PrepareReversals(PostState& state) {
  size_t reversals = 0;
  for (const auto& [index, transfer] : state.transfers) reversals += IsReversal(transfer);
  std::vector<std::pair<int, Transfer>> kept;
  size_t nth = 0;
  for (auto& [index, transfer] : state.transfers) {
    if (!IsReversal(transfer)) {
      kept.emplace_back(index, std::move(transfer));
      continue;
    }
    absl::StatusOr<std::optional<Transfer>> original = StoredAt(state.stored, nth);
    if (!original.ok()) return original.status();
    absl::StatusOr<std::optional<Transfer>> existing = StoredAt(state.stored, reversals + nth);
    if (!existing.ok()) return existing.status();
    ++nth;
    absl::StatusOr<Transfer> prepared =
        PrepareReversal(transfer, original->has_value() ? &**original : nullptr,
                        existing->has_value() ? &**existing : nullptr,
                        absl::StrCat("transfers[", index, "]"));
    if (!prepared.ok()) {
      if (state.linked) return prepared.status();
      PostResult refused;
      refused.index = index;
      refused.status = prepared.status();
      state.refused.push_back(std::move(refused));
      continue;
    }
    bool this_period = false;
    if (original->has_value()) {
      absl::StatusOr<common::calendar::Period> period =
          AllowancePeriodAt(state.policy, FromTimestamp((*original)->post_time()));
      this_period = period.ok() && period->key == state.period.key;
    }
    KUDOS_CHECK(!original->has_value() || ((*original)->amount() == prepared->amount() &&
                                           AccountKey((*original)->debit_account()) ==
                                               AccountKey(prepared->credit_account())),
                "a reversal moves back exactly what its original moved");
    state.debit_kinds[index] = this_period ? "R" : "E";
    kept.emplace_back(index, *std::move(prepared));
  }
  state.transfers = std::move(kept);
  return absl::OkStatus();
}

// An allowance is checked against the period's limit ("A"); the issuer
// (awards, celebrations, prizes) is not checked ("N"); a reversal's earned
// debit must be available ("E", "R": PostState::debit_kinds).
const char* PostedDebitKind(const Transfer& transfer) {
  if (IsReversal(transfer)) return "E";
  return transfer.debit_account().type() == ledger::v1::ACCOUNT_TYPE_ALLOWANCE ? "A" : "N";
}

std::string DebitKindOf(const std::map<int, std::string>& debit_kinds, int index,
                        const Transfer& transfer) {
  auto it = debit_kinds.find(index);
  return it != debit_kinds.end() ? it->second : PostedDebitKind(transfer);
}

// A reversal marker outlives any live original: the longest transfers_live_days.
constexpr int64_t kReversalMarkerTtlSeconds = int64_t{kMaxRetentionDays} * 24 * 3600;

// The givers whose allowance a post checks: each allowance debit's person.
std::vector<std::string> GiversOf(const std::vector<std::pair<int, Transfer>>& transfers) {
  std::set<std::string> givers;
  for (const auto& [index, transfer] : transfers) {
    if (transfer.debit_account().type() == ledger::v1::ACCOUNT_TYPE_ALLOWANCE) {
      givers.insert(transfer.debit_account().person_id());
    }
  }
  return {givers.begin(), givers.end()};
}

std::vector<std::string> PostKeysOf(absl::string_view org,
                                    const std::vector<std::pair<int, Transfer>>& transfers,
                                    const std::map<int, std::string>& debit_kinds,
                                    absl::string_view period_key, std::string registry_key) {
  keys::KeyList keys;
  LedgerStore::AddJournalKeys(org, keys);
  keys.Add(std::move(registry_key));  // KEYS[5] (post.lua)
  KUDOS_CHECK(keys.size() == 5, "post.lua finds the registry key at KEYS[5]");
  keys.Add(keys::AllowanceVersion(org));
  for (const auto& [index, transfer] : transfers) {
    const std::string dkind = DebitKindOf(debit_kinds, index, transfer);
    LedgerStore::AddTransferKeys(org, transfer, dkind, transfer.debit_account().person_id(),
                                 period_key, keys);
    if (dkind == "R") {
      keys.Add(keys::Spent(org, transfer.credit_account().person_id(), period_key));
    }
    if (IsReversal(transfer)) keys.Add(keys::Reversed(org, transfer.reverses_transfer_id()));
  }
  return std::move(keys).Take();
}

std::vector<std::string> PostArgsOf(absl::string_view org,
                                    const std::vector<std::pair<int, Transfer>>& transfers,
                                    const std::map<int, std::string>& debit_kinds, bool linked,
                                    absl::Time now, absl::string_view period_key,
                                    int64_t points_per_period,
                                    const std::map<std::string, int64_t>& limits,
                                    absl::string_view allowance_version) {
  std::vector<std::string> args = {absl::StrCat(ToMillis(now)),
                                   EventHeader(org, now),
                                   std::string(period_key),
                                   absl::StrCat(points_per_period),
                                   absl::StrCat(kSpentTtlSeconds),
                                   linked ? "1" : "0",
                                   absl::StrCat(kReversalMarkerTtlSeconds),
                                   std::string(org),
                                   std::string(allowance_version)};
  args.push_back(absl::StrCat(limits.size()));
  for (const auto& [person, limit] : limits) {
    args.push_back(person);
    args.push_back(absl::StrCat(limit));
  }
  std::vector<std::pair<int, std::string>> reverses;
  for (const auto& [index, transfer] : transfers) {
    if (IsReversal(transfer)) reverses.emplace_back(index, transfer.reverses_transfer_id());
  }
  args.push_back(absl::StrCat(reverses.size()));
  for (const auto& [index, original] : reverses) {
    args.push_back(absl::StrCat(index));
    args.push_back(original);
  }
  for (const auto& [index, transfer] : transfers) {
    AppendTransferArgs(args, index, transfer, now, DebitKindOf(debit_kinds, index, transfer),
                       transfer.debit_account().person_id());
  }
  return args;
}

// post.lua found the allowance inputs it was given changed.
bool IsStaleAllowance(const Reply& reply) {
  return reply.type == Reply::Type::kArray && reply.elements.size() == 1 &&
         reply.elements[0].type != Reply::Type::kArray &&
         reply.elements[0].str == "STALE_ALLOWANCE";
}

}  // namespace

void LedgerStore::Post(absl::string_view org, std::vector<std::pair<int, Transfer>> transfers,
                       bool linked, absl::Time now, Deadline deadline,
                       Callback<std::vector<PostResult>> done) {
  PostAttempt(std::string(org), std::move(transfers), linked, now, deadline, 1,
              std::move(done));
}

void LedgerStore::PostAttempt(std::string org, std::vector<std::pair<int, Transfer>> transfers,
                              bool linked, absl::Time now, Deadline deadline, int attempt,
                              Callback<std::vector<PostResult>> done) {
  KUDOS_CHECK(attempt >= 1 && attempt <= kMaxAllowanceAttempts,
              "a post runs its script at most kMaxAllowanceAttempts times");
  auto state = std::make_shared<PostState>();
  state->org = std::move(org);
  state->linked = linked;
  state->now = now;
  const bool reversing =
      absl::c_any_of(transfers, [](const auto& entry) { return IsReversal(entry.second); });
  // PrepareReversals replaces the transfers: a run after a stale answer
  // starts from the request's again.
  std::shared_ptr<const std::vector<std::pair<int, Transfer>>> requested;
  if (reversing) {
    requested = std::make_shared<const std::vector<std::pair<int, Transfer>>>(transfers);
  }
  state->transfers = std::move(transfers);
  Sequence steps;
  // The policy, the rules and each giver's profile and boosts: from this
  // replica's cache, else one pipeline in the org's slot. post.lua checks
  // them against Redis either way (allowance_cache.h).
  steps.Then([this, state, attempt, deadline](Done step) {
         std::vector<std::string> givers = GiversOf(state->transfers);
         if (attempt == 1) {
           std::optional<PostAllowance> cached = allowance_cache_.Lookup(state->org, givers);
           if (cached.has_value()) {
             state->allowance = *std::move(cached);
             return std::move(step)(absl::OkStatus());
           }
         }
         ReadGiversAllowance(state->org, givers, deadline,
                             [this, state, step = std::move(step)](
                                 absl::StatusOr<PostAllowance> read) mutable {
                               if (!read.ok()) return std::move(step)(read.status());
                               allowance_cache_.Put(state->org, *read);
                               state->allowance = *std::move(read);
                               std::move(step)(absl::OkStatus());
                             });
       })
      .Then([state]() -> absl::Status {
        state->policy = state->allowance.inputs.policy;
        absl::StatusOr<common::calendar::Period> period =
            AllowancePeriodAt(state->policy, state->now);
        if (!period.ok()) return period.status();
        state->period = *std::move(period);
        state->limits = state->allowance.inputs.Limits(state->period);
        return absl::OkStatus();
      });
  if (reversing) {
    // The originals (immutable once posted) are read first and each
    // reversal checked against its own; the marker in post.lua makes
    // "reversed once" atomic.
    steps
        .Then([this, state, deadline](Done step) {
          keys::KeyList keys;
          std::vector<std::string> ids = ReversalReadIds(*state);
          for (const std::string& id : ids) keys::AddTransfer(keys, state->org, id);
          Eval(tx_read_, std::move(keys).Take(), std::move(ids), deadline,
               Into(&state->stored, std::move(step)));
        })
        .Then([state]() { return PrepareReversals(*state); });
  }
  steps.Then([this, state, reversing, deadline](Done step) {
    const std::string& org = state->org;
    if (state->transfers.empty()) return std::move(step)(absl::OkStatus());
    std::vector<const Transfer*> requested;
    for (const auto& [index, transfer] : state->transfers) requested.push_back(&transfer);
    CheckDoubleEntry(requested);
    std::vector<std::string> keys =
        PostKeysOf(org, state->transfers, state->debit_kinds, state->period.key,
                   common::redis::OrgRegistryKey(org));
    std::vector<std::string> args =
        PostArgsOf(org, state->transfers, state->debit_kinds, state->linked, state->now,
                   state->period.key, state->policy.points_per_period(), state->limits,
                   state->allowance.version);
    // Kudos and prizes (debits A, N) never need more keys; a reversal's
    // earned debit may (the records of expired holds).
    if (reversing) {
      return EvalKeyed(post_, org, std::move(keys), std::move(args), /*write=*/true, deadline,
                       Into(&state->reply, std::move(step)));
    }
    EvalWrite(post_, org, std::move(keys), std::move(args), deadline,
              Into(&state->reply, std::move(step)));
  });
  std::move(steps).Run([this, state, requested, attempt, deadline,
                        done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    if (state->transfers.empty()) return std::move(done)(std::move(state->refused));
    if (IsStaleAllowance(state->reply)) {
      // Another replica (or an older version) changed the inputs since this
      // replica read them: nothing was written; read them and run again.
      allowance_cache_.DropOrg(state->org);
      if (attempt == kMaxAllowanceAttempts) {
        return std::move(done)(absl::AbortedError(absl::StrCat(
            "ledger: the org's allowance policy, rules, profiles or boosts changed during each "
            "of ", attempt, " attempts to post; retry the call")));
      }
      std::vector<std::pair<int, Transfer>> again =
          requested != nullptr ? *requested : std::move(state->transfers);
      return PostAttempt(std::move(state->org), std::move(again), state->linked, state->now,
                         deadline, attempt + 1, std::move(done));
    }
    if (state->reply.type == Reply::Type::kArray && !state->reply.elements.empty()) {
      HintNewOrg(state->org, state->reply.elements[0], deadline);
    }
    std::move(done)(PostResults(*state));
  });
}

std::vector<std::string> LedgerStore::PostKeys(
    absl::string_view org, const std::vector<std::pair<int, Transfer>>& transfers,
    absl::string_view period_key, absl::string_view registry_key) {
  return PostKeysOf(org, transfers, {}, period_key,
                    registry_key.empty() ? common::redis::OrgRegistryKey(org)
                                         : std::string(registry_key));
}

std::vector<std::string> LedgerStore::PostArgs(
    absl::string_view org, const std::vector<std::pair<int, Transfer>>& transfers, bool linked,
    absl::Time now, absl::string_view period_key, int64_t points_per_period) {
  return PostArgsOf(org, transfers, {}, linked, now, period_key, points_per_period, {}, "*");
}

const common::redis::Script& LedgerStore::PostScript() {
  static const common::redis::Script* const script =
      new common::redis::Script("ledger_post", WithLib(kLedgerPostLua, false));
  return *script;
}

void LedgerStore::GetBalance(absl::string_view org, const Account& account, absl::Time now,
                             Deadline deadline, Callback<BalanceInfo> done) {
  std::string holder =
      account.type() == ledger::v1::ACCOUNT_TYPE_EARNED ? account.person_id() : "";
  keys::KeyList keys;
  keys.Add(keys::Balances(org));
  if (!holder.empty()) keys.Add(keys::Held(org, holder)).Add(keys::Holds(org, holder));
  EvalKeyed(balance_, org, std::move(keys).Take(),
            {absl::StrCat(ToMillis(now)), AccountKey(account), holder}, /*write=*/false, deadline,
       Parsed(std::move(done), [holder](const Reply& reply) -> absl::StatusOr<BalanceInfo> {
         if (reply.type != Reply::Type::kArray || reply.elements.size() != 2) {
           return Malformed("balance reply");
         }
         absl::StatusOr<long long> balance = reply.elements[0].AsInteger();
         absl::StatusOr<long long> held = reply.elements[1].AsInteger();
         if (!balance.ok() || !held.ok()) return Malformed("balance reply");
         KUDOS_CHECK(*held >= 0, "the held counter never goes below zero");
         KUDOS_CHECK(!holder.empty() || *held == 0, "only earned accounts have holds");
         return BalanceInfo{*balance, *held};
       }));
}

void LedgerStore::Spent(absl::string_view org, absl::string_view person,
                        absl::string_view period_key, Deadline deadline, Callback<int64_t> done) {
  Run({"GET", keys::Spent(org, person, period_key)}, deadline,
      Parsed(std::move(done), [](const Reply& reply) -> absl::StatusOr<int64_t> {
        if (reply.is_nil()) return 0;
        absl::StatusOr<long long> spent = reply.AsInteger();
        if (!spent.ok()) return spent.status();
        return *spent;
      }));
}

namespace {

// A page as list.lua read it; the archived part is read next.
struct PageState {
  std::string org;
  std::string prefix;
  std::string account_key;
  int limit = 0;
  Reply reply;
  TransferPage page;
  std::vector<Transfer> archived;
};

absl::Status ParseLivePage(PageState& state) {
  const Reply& reply = state.reply;
  if (reply.type != Reply::Type::kArray || reply.elements.size() != 5) {
    return Malformed("transfer page");
  }
  const std::vector<Reply>& parts = reply.elements;
  if (!parts[3].str.empty()) {
    return absl::DataLossError(
        absl::StrCat("transfer '", parts[3].str, "' is indexed but not stored"));
  }
  absl::StatusOr<long long> more = parts[4].AsInteger();
  if (!more.ok() || parts[1].elements.size() != parts[2].elements.size()) {
    return Malformed("transfer page");
  }
  for (const Reply& body : parts[0].elements) {
    absl::StatusOr<Transfer> transfer = ParseTransfer(body.str);
    if (!transfer.ok()) return transfer.status();
    state.page.transfers.push_back(*std::move(transfer));
  }
  return absl::OkStatus();
}

absl::StatusOr<TransferPage> FinishPage(PageState& state) {
  TransferPage& page = state.page;
  for (Transfer& transfer : state.archived) page.transfers.push_back(std::move(transfer));
  KUDOS_CHECK(page.transfers.size() <= static_cast<size_t>(state.limit),
              "a page holds at most page_size transfers");
  // Newest first, live tail before the archive; stored data that breaks it
  // (a tampered index) is reported, not served.
  for (size_t i = 1; i < page.transfers.size(); ++i) {
    if (page.transfers[i - 1].sequence() <= page.transfers[i].sequence()) {
      return absl::DataLossError(absl::StrCat(
          "transfers of ", state.account_key, " are not stored newest first (sequence ",
          page.transfers[i - 1].sequence(), " before ", page.transfers[i].sequence(),
          "); run VerifyLedger"));
    }
  }
  if (state.reply.elements[4].AsInteger().value_or(0) == 1 && !page.transfers.empty()) {
    page.next_before = page.transfers.back().sequence();
  }
  return std::move(page);
}

}  // namespace

void LedgerStore::ListTransfers(absl::string_view org, absl::string_view account_key,
                                int64_t before, int limit, Deadline deadline,
                                Callback<TransferPage> done) {
  auto state = std::make_shared<PageState>();
  state->org = std::string(org);
  state->prefix = Prefix(org);
  state->account_key = std::string(account_key);
  state->limit = limit;
  Sequence steps;
  steps.Then([this, state, before, deadline](Done step) {
         // The page's live transfers are asked for by the script (NEED_KEYS).
         const std::string& org = state->org;
         EvalKeyed(list_, org,
                   {keys::AccountIndex(org, state->account_key),
                    keys::ArchiveIndex(org, state->account_key), keys::ArchiveDirectory(org),
                    keys::Checkpoint(org), keys::Journal(org)},
                   {state->account_key, absl::StrCat(before), absl::StrCat(state->limit)},
                   /*write=*/false, deadline, Into(&state->reply, std::move(step)));
       })
      .Then([state]() { return ParseLivePage(*state); })
      .Then([this, state, deadline](Done step) {
        const std::vector<Reply>& parts = state->reply.elements;
        if (parts[1].elements.empty()) return std::move(step)(absl::OkStatus());
        ReadArchived(state->prefix, parts[1], parts[2], deadline,
                     Into(&state->archived, std::move(step)));
      });
  std::move(steps).Run([state, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    std::move(done)(FinishPage(*state));
  });
}

void LedgerStore::ReadArchived(const std::string& prefix, const Reply& sequences,
                               const Reply& chunk_ids, Deadline deadline,
                               Callback<std::vector<Transfer>> done) {
  // Each chunk once, in the order first needed; chunks never change once
  // written, so reading them after the script's snapshot is safe.
  std::vector<std::string> order;
  std::map<std::string, std::vector<int64_t>> wanted;
  std::vector<int64_t> in_order;
  for (size_t i = 0; i < sequences.elements.size(); ++i) {
    int64_t sequence = 0;
    const std::string& chunk_id = chunk_ids.elements[i].str;
    if (!absl::SimpleAtoi(sequences.elements[i].str, &sequence) || chunk_id.empty()) {
      return std::move(done)(absl::DataLossError(
          absl::StrCat("archived transfer at sequence ", sequences.elements[i].str,
                       " is indexed but no archive chunk holds it")));
    }
    if (wanted.find(chunk_id) == wanted.end()) order.push_back(chunk_id);
    wanted[chunk_id].push_back(sequence);
    in_order.push_back(sequence);
  }
  std::vector<common::redis::Command> reads;
  for (const std::string& chunk_id : order) {
    reads.push_back({"GET", prefix + "arch:c:" + chunk_id});  // keys::ArchiveChunk
  }
  Pipeline(
      std::move(reads), deadline,
      [order, wanted, in_order, done = std::move(done)](
          absl::StatusOr<common::redis::PipelineReplies> chunks) mutable {
        if (!chunks.ok()) return std::move(done)(chunks.status());
        std::map<int64_t, Transfer> found;
        for (size_t c = 0; c < order.size(); ++c) {
          const absl::StatusOr<Reply>& raw = (*chunks)[c];
          if (!raw.ok()) return std::move(done)(raw.status());
          if (raw->is_nil()) {
            return std::move(done)(
                absl::DataLossError(absl::StrCat("archive chunk '", order[c], "' is missing")));
          }
          absl::StatusOr<ledger::v1::TransfersPosted> chunk = DecompressChunk(raw->str);
          if (!chunk.ok()) {
            return std::move(done)(absl::DataLossError(
                absl::StrCat("archive chunk '", order[c], "' ", chunk.status().message())));
          }
          const std::vector<int64_t>& want = wanted[order[c]];
          for (Transfer& transfer : *chunk->mutable_transfers()) {
            if (std::find(want.begin(), want.end(), transfer.sequence()) != want.end()) {
              found[transfer.sequence()] = std::move(transfer);
            }
          }
        }
        std::vector<Transfer> out;
        for (int64_t sequence : in_order) {
          auto it = found.find(sequence);
          if (it == found.end()) {
            return std::move(done)(absl::DataLossError(
                absl::StrCat("archived transfer at sequence ", sequence,
                             " is indexed but not in its archive chunk")));
          }
          out.push_back(it->second);
        }
        std::move(done)(std::move(out));
      });
}

void LedgerStore::CreateRedemption(absl::string_view org, absl::string_view audit_actor,
                                   absl::string_view person,
                                   const ledger::v1::CreateRedemptionRequest& request,
                                   absl::Time now, Deadline deadline,
                                   Callback<ledger::v1::Redemption> done) {
  absl::StatusOr<int64_t> hold = HoldSeconds(request.hold_seconds());
  if (!hold.ok()) return std::move(done)(hold.status());
  std::string id = RedemptionId(person, request.request_id());
  std::vector<std::string> audit;
  if (!audit_actor.empty()) {
    audit = AuditFields(org, audit_actor, "ledger.create_redemption",
                        AccountKey(PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, person)),
                        request.reward(),
                        {"redemption_id", id, "points", absl::StrCat(request.points())});
  }
  auto parse = [id, person = std::string(person), request, now](
                   const Reply& reply) -> absl::StatusOr<ledger::v1::Redemption> {
    absl::StatusOr<RedemptionReply> parsed = ParseRedemptionReply(reply);
    if (!parsed.ok()) return parsed.status();
    if (parsed->code == "CAP") {
      return absl::FailedPreconditionError(
          absl::StrCat("person_id: ", PendingRedemptionsCapMessage(person)));
    }
    if (parsed->code == "OUT_OF_BOUNDS") {
      return OutOfBounds("points", Str(parsed->fields, "bound"), "holding", request.points());
    }
    if (parsed->code == "CONFLICT") {
      return absl::AlreadyExistsError(absl::StrCat(
          "request_id: '", request.request_id(), "' was already used with a different payload (",
          Str(parsed->fields, "reward"), " for ", Str(parsed->fields, "points"), " points)"));
    }
    if (parsed->code == "FUNDS") {
      return absl::FailedPreconditionError(absl::StrCat(
          "points: ", InsufficientFundsMessage(person, parsed->n1, parsed->n2, request.points())));
    }
    if (parsed->code != "OK") return Malformed(absl::StrCat("code '", parsed->code, "'"));
    return RedemptionFrom(id, parsed->fields, now);
  };
  keys::KeyList keys;
  keys.Add(keys::Held(org, person)).Add(keys::Holds(org, person));
  EvalRedemption(org, "create", now, id, audit,
                 {std::string(person), request.reward(), absl::StrCat(request.points()),
                  absl::StrCat(ToMillis(now + absl::Seconds(*hold))), request.request_id()},
                 std::move(keys), deadline, Parsed(std::move(done), std::move(parse)));
}

void LedgerStore::GetRedemption(absl::string_view org, absl::string_view redemption_id,
                                absl::Time now, Deadline deadline,
                                Callback<ledger::v1::Redemption> done) {
  Run({"HGETALL", keys::Redemption(org, redemption_id)}, deadline,
      Parsed(std::move(done), [id = std::string(redemption_id), now](const Reply& reply)
                                  -> absl::StatusOr<ledger::v1::Redemption> {
        absl::StatusOr<std::map<std::string, std::string>> fields = FlatMap(reply);
        if (!fields.ok()) return fields.status();
        if (fields->empty()) {
          return absl::NotFoundError(absl::StrCat("redemption_id: '", id, "' does not exist"));
        }
        return RedemptionFrom(id, *fields, now);
      }));
}

void LedgerStore::FulfillRedemption(absl::string_view org, absl::string_view audit_actor,
                                    const ledger::v1::Redemption& pending, absl::Time now,
                                    Deadline deadline, Callback<ledger::v1::Redemption> done) {
  Transfer transfer;
  transfer.set_transfer_id(absl::StrCat(kRedemptionIdPrefix, pending.redemption_id()));
  *transfer.mutable_debit_account() =
      PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, pending.person_id());
  *transfer.mutable_credit_account() = OrgAccount(ledger::v1::ACCOUNT_TYPE_REWARDS);
  transfer.set_amount(pending.points());
  transfer.set_kind(ledger::v1::TRANSFER_KIND_REDEMPTION);
  transfer.set_reference(pending.redemption_id());
  (*transfer.mutable_tags())["reward"] = pending.reward();

  std::vector<std::string> args = {EventHeader(org, now)};
  AppendTransferArgs(args, 0, transfer, now, "E", pending.person_id());
  keys::KeyList keys;
  AddJournalKeys(org, keys);
  AddTransferKeys(org, transfer, "E", pending.person_id(), "", keys);
  std::vector<std::string> audit;
  if (!audit_actor.empty()) {
    audit = AuditFields(org, audit_actor, "ledger.fulfill_redemption",
                        AccountKey(transfer.debit_account()), pending.reward(),
                        {"redemption_id", pending.redemption_id(), "points",
                         absl::StrCat(pending.points()), "transfer_id", transfer.transfer_id()});
  }
  auto parse = [pending, transfer, now](
                   const Reply& reply) -> absl::StatusOr<ledger::v1::Redemption> {
    absl::StatusOr<RedemptionReply> parsed = ParseRedemptionReply(reply);
    if (!parsed.ok()) return parsed.status();
    if (parsed->code == "OUT_OF_BOUNDS") {
      return OutOfBounds("redemption_id", Str(parsed->fields, "bound"), "debiting",
                         pending.points());
    }
    ledger::v1::Redemption current = RedemptionFrom(pending.redemption_id(), parsed->fields, now);
    if (parsed->code == "OK") return current;
    if (parsed->code == "NOT_FOUND") {
      return absl::NotFoundError(
          absl::StrCat("redemption_id: '", pending.redemption_id(), "' does not exist"));
    }
    if (parsed->code == "FAILED_PRECONDITION") {
      return absl::FailedPreconditionError(
          absl::StrCat("redemption_id: '", pending.redemption_id(), "' is ",
                       StateName(current.state()), " and cannot be fulfilled"));
    }
    if (parsed->code == "FUNDS") {
      return absl::FailedPreconditionError(absl::StrCat(
          "redemption_id: ", InsufficientFundsMessage(pending.person_id(), parsed->n1,
                                                      parsed->n2, pending.points())));
    }
    if (parsed->code == "CONFLICT") {
      return absl::AlreadyExistsError(absl::StrCat("redemption_id: transfer '",
                                                   transfer.transfer_id(),
                                                   "' exists with a different payload"));
    }
    return Malformed(absl::StrCat("code '", parsed->code, "'"));
  };
  auto shared_done = std::make_shared<Callback<ledger::v1::Redemption>>(std::move(done));
  RegisterOrgThen(
      org, deadline,
      [this, org = std::string(org), now, id = pending.redemption_id(), audit,
       args = std::move(args), keys = std::move(keys), deadline, parse = std::move(parse),
       shared_done]() mutable {
        EvalRedemption(org, "fulfill", now, id, audit, std::move(args), std::move(keys),
                       deadline, Parsed(std::move(*shared_done), std::move(parse)));
      },
      [shared_done](absl::Status status) { std::move(*shared_done)(std::move(status)); });
}

void LedgerStore::CancelRedemption(absl::string_view org, absl::string_view audit_actor,
                                   const ledger::v1::Redemption& pending, absl::Time now,
                                   Deadline deadline, Callback<ledger::v1::Redemption> done) {
  const std::string& redemption_id = pending.redemption_id();
  std::vector<std::string> audit;
  if (!audit_actor.empty()) {
    audit = AuditFields(
        org, audit_actor, "ledger.cancel_redemption",
        AccountKey(PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, pending.person_id())),
        pending.reward(),
        {"redemption_id", redemption_id, "points", absl::StrCat(pending.points())});
  }
  keys::KeyList keys;  // the stored person's, if another, are asked for
  keys.Add(keys::Held(org, pending.person_id())).Add(keys::Holds(org, pending.person_id()));
  EvalRedemption(
      org, "cancel", now, redemption_id, audit, {}, std::move(keys), deadline,
      Parsed(std::move(done), [redemption_id, now](const Reply& reply)
                                  -> absl::StatusOr<ledger::v1::Redemption> {
        absl::StatusOr<RedemptionReply> parsed = ParseRedemptionReply(reply);
        if (!parsed.ok()) return parsed.status();
        if (parsed->code == "NOT_FOUND") {
          return absl::NotFoundError(
              absl::StrCat("redemption_id: '", redemption_id, "' does not exist"));
        }
        ledger::v1::Redemption current = RedemptionFrom(redemption_id, parsed->fields, now);
        if (parsed->code == "FAILED_PRECONDITION") {
          return absl::FailedPreconditionError(absl::StrCat(
              "redemption_id: '", redemption_id, "' is ", StateName(current.state()),
              " and cannot be cancelled"));
        }
        if (parsed->code != "OK") return Malformed(absl::StrCat("code '", parsed->code, "'"));
        return current;
      }));
}

void LedgerStore::EvalRedemption(absl::string_view org, absl::string_view op, absl::Time now,
                                 absl::string_view redemption_id,
                                 const std::vector<std::string>& audit,
                                 std::vector<std::string> op_args, keys::KeyList keys,
                                 Deadline deadline, common::redis::ReplyCallback done) {
  std::vector<std::string> args = {std::string(op), absl::StrCat(ToMillis(now)),
                                   std::string(redemption_id), absl::StrCat(audit.size())};
  args.insert(args.end(), audit.begin(), audit.end());
  for (std::string& arg : op_args) args.push_back(std::move(arg));
  // A new hold is checked against the balance (and a fulfilment moves it).
  keys.Add(keys::Redemption(org, redemption_id))
      .Add(keys::Balances(org))
      .Add(common::audit::StreamKey(org));
  EvalKeyed(redemption_, org, std::move(keys).Take(), std::move(args), /*write=*/true, deadline,
            std::move(done));
}

void LedgerStore::Adjust(absl::string_view org, absl::string_view actor,
                         const ledger::v1::AdjustBalanceRequest& request, absl::Time now,
                         Deadline deadline, Callback<Transfer> done) {
  const std::string& person = request.person_id();
  Transfer transfer;
  transfer.set_transfer_id(absl::StrCat(kAdjustmentIdPrefix, request.request_id()));
  Account earned = PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, person);
  Account issuer = OrgAccount(ledger::v1::ACCOUNT_TYPE_ISSUER);
  bool credit = request.amount() > 0;
  *transfer.mutable_debit_account() = credit ? issuer : earned;
  *transfer.mutable_credit_account() = credit ? earned : issuer;
  transfer.set_amount(credit ? request.amount() : -request.amount());
  transfer.set_kind(ledger::v1::TRANSFER_KIND_ADJUSTMENT);
  transfer.set_reference(request.reason());

  CheckDoubleEntry({&transfer});
  std::vector<std::string> args = {absl::StrCat(ToMillis(now)), EventHeader(org, now)};
  AppendTransferArgs(args, 0, transfer, now, credit ? "N" : "E", person);
  keys::KeyList keys;
  AddJournalKeys(org, keys);
  AddTransferKeys(org, transfer, credit ? "N" : "E", person, "", keys);
  keys.Add(common::audit::StreamKey(org));
  common::redis::Command audit = common::audit::AppendCommand(
      org, actor, "ledger.adjust_balance", AccountKey(earned), request.reason());
  // "XADD", key, "*", then the field/value pairs, plus what was adjusted.
  args.insert(args.end(), audit.begin() + 3, audit.end());
  for (std::string extra : {std::string("amount"), absl::StrCat(request.amount()),
                            std::string("transfer_id"), transfer.transfer_id()}) {
    args.push_back(std::move(extra));
  }
  auto parse = [transfer, request_id = request.request_id(),
                person](const Reply& reply) -> absl::StatusOr<Transfer> {
    absl::StatusOr<std::vector<Row>> rows = ParseRows(reply);
    if (!rows.ok()) return rows.status();
    if (rows->size() != 1) return Malformed("adjust reply");
    const Row& row = (*rows)[0];
    if (row.code == "OK") {
      absl::StatusOr<Transfer> stored = ParseTransfer(row.payload);
      if (!stored.ok()) return stored.status();
      KUDOS_CHECK(NetMovements({&*stored}) == NetMovements({&transfer}),
                  "an adjustment stores exactly the movement requested");
      return stored;
    }
    if (row.code == "CONFLICT") {
      absl::StatusOr<Transfer> stored = ParseTransfer(row.payload);
      if (!stored.ok()) return stored.status();
      return absl::AlreadyExistsError(absl::StrCat(
          "request_id: '", request_id, "' was already used with a different payload (",
          DescribeDifference(*stored, transfer), ")"));
    }
    if (row.code == "FAILED_PRECONDITION") {
      return absl::FailedPreconditionError(absl::StrCat(
          "amount: ", InsufficientFundsMessage(person, row.n1, row.n2, transfer.amount()),
          "; earned balances never go below zero"));
    }
    if (row.code == "OUT_OF_BOUNDS") {
      return OutOfBounds("amount", row.payload, Movement(row.n1), transfer.amount());
    }
    return Malformed(absl::StrCat("row code '", row.code, "'"));
  };
  auto shared_done = std::make_shared<Callback<Transfer>>(std::move(done));
  RegisterOrgThen(
      org, deadline,
      [this, org = std::string(org), keys = std::move(keys).Take(), args = std::move(args),
       deadline, parse = std::move(parse), shared_done]() mutable {
        EvalKeyed(adjust_, org, std::move(keys), std::move(args), /*write=*/true, deadline,
                  Parsed(std::move(*shared_done), std::move(parse)));
      },
      [shared_done](absl::Status status) { std::move(*shared_done)(std::move(status)); });
}

namespace {

int64_t IntOr0(const std::map<std::string, std::string>& fields, const std::string& name) {
  return Int(fields, name);
}

// The checkpoint as the snapshot read it.
struct Checkpoint {
  int64_t through_seq = 0;
  int64_t count = 0;
  std::string chain;
  std::map<std::string, int64_t> totals;
};

// "last_seq,count,sha256,raw_bytes" of P..'arch:meta'.
struct ChunkMeta {
  int64_t last_seq = 0;
  int64_t count = 0;
  std::string sha;
};

absl::StatusOr<ChunkMeta> ParseChunkMeta(absl::string_view chunk_id, absl::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  ChunkMeta meta;
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &meta.last_seq) ||
      !absl::SimpleAtoi(parts[1], &meta.count)) {
    return absl::DataLossError(
        absl::StrCat("archive chunk '", chunk_id, "' has no readable record of its digest"));
  }
  meta.sha = parts[2];
  return meta;
}

absl::StatusOr<std::map<std::string, int64_t>> ParseTotals(
    const std::map<std::string, std::string>& raw, absl::string_view what) {
  std::map<std::string, int64_t> totals;
  for (const auto& [key, value] : raw) {
    int64_t number = 0;
    if (!absl::SimpleAtoi(value, &number)) {
      return absl::DataLossError(absl::StrCat(what, " of ", key, " is not a number"));
    }
    totals[key] = number;
  }
  return totals;
}

// FNV-1a (64-bit) over an account's archive index, fed in sequence order:
// what the index string must hash to, without holding the whole string.
struct IndexDigest {
  uint64_t hash = 14695981039346656037ull;
  int64_t entries = 0;  // sequences added (5 bytes each in the index)
  void Add(absl::string_view bytes) {
    for (char c : bytes) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 1099511628211ull;
    }
  }
  void AddSequence(int64_t sequence) {
    ++entries;
    char packed[5];
    for (int i = 4; i >= 0; --i) {
      packed[i] = static_cast<char>(sequence & 0xff);
      sequence >>= 8;
    }
    Add(absl::string_view(packed, 5));
  }
};

// What the archived transfers add up to, per account.
struct ArchiveSums {
  std::map<std::string, int64_t> totals;
  std::map<std::string, IndexDigest> indexes;
};

// The archived chunk against its record, and what it adds up to.
absl::Status CheckChunk(absl::string_view chunk_id, int64_t first_seq, const ChunkMeta& meta,
                        absl::string_view compressed, ArchiveSums& sums) {
  if (ChunkDigest(compressed) != meta.sha) {
    return absl::DataLossError(absl::StrCat(
        "archive chunk '", chunk_id,
        "' does not match the digest recorded when it was archived (tampered or corrupted)"));
  }
  absl::StatusOr<ledger::v1::TransfersPosted> chunk = DecompressChunk(compressed);
  if (!chunk.ok()) {
    return absl::DataLossError(
        absl::StrCat("archive chunk '", chunk_id, "' ", chunk.status().message()));
  }
  if (chunk->transfers_size() != meta.count || meta.last_seq != first_seq + meta.count - 1) {
    return absl::DataLossError(absl::StrCat("archive chunk '", chunk_id, "' holds ",
                                            chunk->transfers_size(), " transfers, its record ",
                                            meta.count));
  }
  for (int i = 0; i < chunk->transfers_size(); ++i) {
    const Transfer& transfer = chunk->transfers(i);
    if (transfer.sequence() != first_seq + i) {
      return absl::DataLossError(absl::StrCat("archive chunk '", chunk_id, "' holds sequence ",
                                              transfer.sequence(), " where ", first_seq + i,
                                              " belongs"));
    }
    std::string debit = AccountKey(transfer.debit_account());
    std::string credit = AccountKey(transfer.credit_account());
    sums.totals[debit] -= transfer.amount();
    sums.totals[credit] += transfer.amount();
    sums.indexes[debit].AddSequence(transfer.sequence());
    sums.indexes[credit].AddSequence(transfer.sequence());
  }
  return absl::OkStatus();
}

absl::Status CompareTotals(const std::map<std::string, int64_t>& checkpoint,
                           const std::map<std::string, int64_t>& archived) {
  std::map<std::string, std::pair<int64_t, int64_t>> both;
  for (const auto& [key, total] : checkpoint) both[key].first = total;
  for (const auto& [key, total] : archived) both[key].second = total;
  for (const auto& [key, totals] : both) {
    if (totals.first != totals.second) {
      return absl::DataLossError(absl::StrCat("archive: the checkpoint total of ", key, " is ",
                                              totals.first, " but its archived transfers add up to ",
                                              totals.second));
    }
  }
  return absl::OkStatus();
}

// The 5-byte big-endian sequence at `at` of an archive index.
int64_t IndexSequenceAt(absl::string_view index, size_t at) {
  int64_t sequence = 0;
  for (size_t i = 0; i < 5; ++i) {
    sequence = (sequence << 8) | static_cast<unsigned char>(index[at + i]);
  }
  return sequence;
}

using IndexEntry = const std::pair<const std::string, IndexDigest>*;

// Each account's archive index (what ListTransfers reads) against the
// digest of the sequences its archived transfers carry, as of the snapshot
// that archived through `snapshot_through_seq`. An archive run committing
// after that snapshot appends to the indexes, so each batch is read with the
// checkpoint's current through_seq in one transaction: unmoved, the index
// must be exactly the snapshot's; moved, the snapshot's entries must be its
// prefix and the rest only sequences the later runs archived, ascending.
// `replies`: MULTI, HGET through_seq, one GET per entry of `batch`, EXEC.
absl::Status CheckIndexBatch(const std::string& prefix, int64_t snapshot_through_seq,
                             const std::vector<IndexEntry>& batch,
                             const common::redis::PipelineReplies& replies) {
  if (replies.size() != batch.size() + 3 || !replies.back().ok()) {
    return replies.size() == batch.size() + 3 ? replies.back().status()
                                              : Malformed("archive index read");
  }
  const Reply& exec = *replies.back();
  if (exec.type != Reply::Type::kArray || exec.elements.size() != batch.size() + 1) {
    return Malformed("archive index read");
  }
  int64_t through_now = 0;
  if (!exec.elements[0].is_nil() && !absl::SimpleAtoi(exec.elements[0].str, &through_now)) {
    return absl::DataLossError("archive: the checkpoint's through_seq is not a number");
  }
  const bool archived_since = through_now > snapshot_through_seq;
  for (size_t i = 0; i < batch.size(); ++i) {
    absl::string_view index = exec.elements[i + 1].str;
    const IndexDigest& want = batch[i]->second;
    const size_t covered = static_cast<size_t>(want.entries) * 5;
    bool matches = archived_since ? index.size() >= covered : index.size() == covered;
    if (matches) {
      IndexDigest stored;
      stored.Add(index.substr(0, covered));
      matches = stored.hash == want.hash;
    }
    // Entries past the snapshot's: whole, ascending, archived after it.
    if (matches && (index.size() - covered) % 5 != 0) matches = false;
    int64_t previous = snapshot_through_seq;
    for (size_t at = covered; matches && at < index.size(); at += 5) {
      int64_t sequence = IndexSequenceAt(index, at);
      // Equal to the previous: a transfer with debit == credit lists twice.
      matches =
          sequence > snapshot_through_seq && sequence >= previous && sequence <= through_now;
      previous = sequence;
    }
    if (!matches) {
      return absl::DataLossError(absl::StrCat(
          "archive: the ListTransfers index of ", batch[i]->first, " (", prefix, "arch:a:",
          batch[i]->first, ") does not list exactly its archived transfers"));
    }
  }
  return absl::OkStatus();
}

// What one Verify attempt carries from step to step.
struct VerifyState {
  std::string prefix;
  Reply snapshot;  // the EXEC of the snapshot
  std::map<std::string, int64_t> stored;
  Checkpoint checkpoint;
  std::map<std::string, std::string> meta;
  long long journal_length = 0;
  ArchiveSums archived;
  std::string chain;
  int64_t next_seq = 1;
  int64_t count = 0;
  std::vector<IndexEntry> index_entries;
  Verifier verifier;
  bool journal_moved = false;  // the archive ran meanwhile: start again
};

// Balances, journal length, checkpoint and archive directory, as read.
absl::Status ParseSnapshot(VerifyState& state) {
  const Reply& exec = state.snapshot;
  absl::StatusOr<std::map<std::string, std::string>> raw_balances = FlatMap(exec.elements[0]);
  if (!raw_balances.ok()) return raw_balances.status();
  absl::StatusOr<long long> length = exec.elements[1].AsInteger();
  if (!length.ok()) return length.status();
  state.journal_length = *length;
  absl::StatusOr<std::map<std::string, std::string>> raw_checkpoint = FlatMap(exec.elements[2]);
  if (!raw_checkpoint.ok()) return raw_checkpoint.status();
  absl::StatusOr<std::map<std::string, std::string>> raw_totals = FlatMap(exec.elements[3]);
  if (!raw_totals.ok()) return raw_totals.status();
  absl::StatusOr<std::map<std::string, std::string>> raw_meta = FlatMap(exec.elements[5]);
  if (!raw_meta.ok()) return raw_meta.status();
  state.meta = *std::move(raw_meta);
  const Reply& dir = exec.elements[4];
  if (dir.type != Reply::Type::kArray || dir.elements.size() % 2 != 0) {
    return Malformed("archive directory");
  }
  absl::StatusOr<std::map<std::string, int64_t>> stored =
      ParseTotals(*raw_balances, "the stored balance");
  if (!stored.ok()) return stored.status();
  state.stored = *std::move(stored);
  state.checkpoint.through_seq = IntOr0(*raw_checkpoint, "through_seq");
  state.checkpoint.count = IntOr0(*raw_checkpoint, "count");
  state.checkpoint.chain = Str(*raw_checkpoint, "chain");
  absl::StatusOr<std::map<std::string, int64_t>> totals =
      ParseTotals(*raw_totals, "the checkpoint total");
  if (!totals.ok()) return totals.status();
  state.checkpoint.totals = *std::move(totals);
  return absl::OkStatus();
}

// After every chunk was read: the chunks against the checkpoint.
absl::Status CheckArchiveAgainstCheckpoint(VerifyState& state) {
  const Checkpoint& checkpoint = state.checkpoint;
  if (state.next_seq - 1 != checkpoint.through_seq || state.count != checkpoint.count) {
    return absl::DataLossError(absl::StrCat(
        "archive: the chunks hold sequences 1..", state.next_seq - 1, " (", state.count,
        " transfers) but the checkpoint says through ", checkpoint.through_seq, " (",
        checkpoint.count, " transfers)"));
  }
  if (state.chain != checkpoint.chain) {
    return absl::DataLossError(
        "archive: the chunks' digest chain does not match the checkpoint's (a chunk record was "
        "replaced)");
  }
  if (absl::Status s = CompareTotals(checkpoint.totals, state.archived.totals); !s.ok()) return s;
  for (const auto& entry : state.archived.indexes) state.index_entries.push_back(&entry);
  return absl::OkStatus();
}

// The i-th chunk of the directory: where it must start and its record.
absl::StatusOr<std::pair<int64_t, ChunkMeta>> ChunkToRead(const VerifyState& state, size_t i) {
  const Reply& dir = state.snapshot.elements[4];
  const std::string& chunk_id = dir.elements[2 * i].str;
  const std::string& first_text = dir.elements[2 * i + 1].str;
  int64_t first_seq = 0;
  if (!absl::SimpleAtoi(first_text, &first_seq) || first_seq != state.next_seq) {
    return absl::DataLossError(absl::StrCat("archive chunk '", chunk_id, "' starts at sequence ",
                                            first_text, ", expected ", state.next_seq,
                                            " (a chunk is missing or repeated)"));
  }
  absl::StatusOr<ChunkMeta> meta = ParseChunkMeta(chunk_id, Str(state.meta, chunk_id));
  if (!meta.ok()) return meta.status();
  return std::make_pair(first_seq, *std::move(meta));
}

// A batch of index strings per round trip (each 10 bytes per transfer).
constexpr size_t kIndexBatch = 100;

}  // namespace

void LedgerStore::Verify(absl::string_view org, Deadline deadline,
                         Callback<ledger::v1::VerifyLedgerResponse> done) {
  VerifyAttempt(std::string(org), 0, deadline, std::move(done));
}

absl::StatusOr<ledger::v1::VerifyLedgerResponse> LedgerStore::Verify(absl::string_view org) {
  absl::Notification finished;
  absl::StatusOr<ledger::v1::VerifyLedgerResponse> result;
  Verify(org, common::redis::DeadlineIn(std::chrono::seconds(60)),
         [&](absl::StatusOr<ledger::v1::VerifyLedgerResponse> answer) {
           result = std::move(answer);
           finished.Notify();
         });
  finished.WaitForNotification();
  return result;
}

void LedgerStore::VerifyAttempt(std::string org, int attempt, Deadline deadline,
                                Callback<ledger::v1::VerifyLedgerResponse> done) {
  // An archive run between the snapshot and the journal reads shifts the
  // journal; the attempt notices and starts again.
  constexpr int kAttempts = 3;
  if (attempt == kAttempts) {
    return std::move(done)(absl::AbortedError(absl::StrCat(
        "VerifyLedger: the archive moved transfers out of the journal during each of ",
        kAttempts, " attempts; retry")));
  }
  VerifyOnce(org, deadline,
             [this, org, attempt, deadline, done = std::move(done)](
                 absl::StatusOr<std::optional<ledger::v1::VerifyLedgerResponse>> result) mutable {
               if (!result.ok()) return std::move(done)(result.status());
               if (result->has_value()) return std::move(done)(**std::move(result));
               VerifyAttempt(org, attempt + 1, deadline, std::move(done));
             });
}

void LedgerStore::VerifyOnce(
    absl::string_view org, Deadline deadline,
    Callback<std::optional<ledger::v1::VerifyLedgerResponse>> done) {
  auto state = std::make_shared<VerifyState>();
  state->prefix = Prefix(org);
  Sequence steps;
  // Balances, journal length, checkpoint and archive directory in one atomic
  // snapshot: the journal holds exactly the transfers after the checkpoint.
  steps.Then([this, state, deadline](Done step) {
         const std::string& prefix = state->prefix;
         Pipeline({{"MULTI"},
                   {"HGETALL", prefix + "bal"},
                   {"LLEN", prefix + "journal"},
                   {"HGETALL", prefix + "ckpt"},
                   {"HGETALL", prefix + "ckpt:bal"},
                   {"ZRANGE", prefix + "arch:dir", "0", "-1", "WITHSCORES"},
                   {"HGETALL", prefix + "arch:meta"},
                   {"EXEC"}},
                  deadline,
                  [state, step = std::move(step)](
                      absl::StatusOr<common::redis::PipelineReplies> snapshot) mutable {
                    if (!snapshot.ok()) return std::move(step)(snapshot.status());
                    if (snapshot->size() != 8 || !(*snapshot)[7].ok()) {
                      return std::move(step)(snapshot->size() == 8 ? (*snapshot)[7].status()
                                                                   : Malformed("snapshot"));
                    }
                    state->snapshot = *std::move((*snapshot)[7]);
                    const Reply& exec = state->snapshot;
                    if (exec.type != Reply::Type::kArray || exec.elements.size() != 6) {
                      return std::move(step)(Malformed("snapshot"));
                    }
                    std::move(step)(absl::OkStatus());
                  });
       })
      .Then([this, state]() {
        if (after_verify_snapshot_for_test_) after_verify_snapshot_for_test_();
        return ParseSnapshot(*state);
      })
      // The archive: every chunk in sequence order, each against its record,
      // one chunk per step.
      .Then([this, state, deadline](Done step) {
        size_t chunks = state->snapshot.elements[4].elements.size() / 2;
        ForEach(chunks, [this, state, deadline](size_t i, Done chunk_done) {
          absl::StatusOr<std::pair<int64_t, ChunkMeta>> chunk = ChunkToRead(*state, i);
          if (!chunk.ok()) return std::move(chunk_done)(chunk.status());
          std::string chunk_id = state->snapshot.elements[4].elements[2 * i].str;
          Run({"GET", state->prefix + "arch:c:" + chunk_id}, deadline,
              [state, chunk_id, chunk = *std::move(chunk),
               chunk_done = std::move(chunk_done)](absl::StatusOr<Reply> compressed) mutable {
                if (!compressed.ok()) return std::move(chunk_done)(compressed.status());
                if (compressed->is_nil()) {
                  return std::move(chunk_done)(absl::DataLossError(
                      absl::StrCat("archive chunk '", chunk_id, "' is missing")));
                }
                const auto& [first_seq, meta] = chunk;
                if (absl::Status s =
                        CheckChunk(chunk_id, first_seq, meta, compressed->str, state->archived);
                    !s.ok()) {
                  return std::move(chunk_done)(s);
                }
                state->chain = ChainAfter(state->chain, meta.sha);
                state->count += meta.count;
                state->next_seq = meta.last_seq + 1;
                std::move(chunk_done)(absl::OkStatus());
              });
        })(std::move(step));
      })
      .Then([state]() { return CheckArchiveAgainstCheckpoint(*state); })
      .Then([this, state, deadline](Done step) {
        size_t batches = (state->index_entries.size() + kIndexBatch - 1) / kIndexBatch;
        ForEach(batches, [this, state, deadline](size_t b, Done batch_done) {
          size_t end = std::min(state->index_entries.size(), (b + 1) * kIndexBatch);
          std::vector<IndexEntry> batch(state->index_entries.begin() + b * kIndexBatch,
                                        state->index_entries.begin() + end);
          std::vector<common::redis::Command> reads = {
              {"MULTI"}, {"HGET", state->prefix + "ckpt", "through_seq"}};
          for (IndexEntry entry : batch) {
            reads.push_back({"GET", state->prefix + "arch:a:" + entry->first});
          }
          reads.push_back({"EXEC"});
          Pipeline(std::move(reads), deadline,
                   [state, batch = std::move(batch), batch_done = std::move(batch_done)](
                       absl::StatusOr<common::redis::PipelineReplies> replies) mutable {
                     if (!replies.ok()) return std::move(batch_done)(replies.status());
                     std::move(batch_done)(CheckIndexBatch(
                         state->prefix, state->checkpoint.through_seq, batch, *replies));
                   });
        })(std::move(step));
      })
      .Then([state]() {
        state->verifier.AddArchived(state->checkpoint.totals, state->checkpoint.count);
        return absl::OkStatus();
      })
      // The live journal in chunks, each read with the checkpoint's
      // through_seq: moved means an archive run committed meanwhile.
      .Then([this, state, deadline](Done step) {
        size_t chunks = static_cast<size_t>((state->journal_length + kJournalChunk - 1) /
                                            kJournalChunk);
        ForEach(chunks, [this, state, deadline](size_t c, Done chunk_done) {
          if (state->journal_moved) return std::move(chunk_done)(absl::OkStatus());
          long long start = static_cast<long long>(c) * kJournalChunk;
          long long stop = std::min<long long>(start + kJournalChunk, state->journal_length) - 1;
          Pipeline({{"MULTI"},
                    {"HGET", state->prefix + "ckpt", "through_seq"},
                    {"LRANGE", state->prefix + "journal", absl::StrCat(start), absl::StrCat(stop)},
                    {"EXEC"}},
                   deadline,
                   [state, chunk_done = std::move(chunk_done)](
                       absl::StatusOr<common::redis::PipelineReplies> chunk) mutable {
                     if (!chunk.ok()) return std::move(chunk_done)(chunk.status());
                     if (chunk->size() != 4 || !(*chunk)[3].ok()) {
                       return std::move(chunk_done)(chunk->size() == 4 ? (*chunk)[3].status()
                                                                       : Malformed("journal read"));
                     }
                     const Reply& read = *(*chunk)[3];
                     if (read.type != Reply::Type::kArray || read.elements.size() != 2) {
                       return std::move(chunk_done)(Malformed("journal read"));
                     }
                     int64_t through_now = 0;
                     if (!read.elements[0].is_nil()) {
                       (void)absl::SimpleAtoi(read.elements[0].str, &through_now);
                     }
                     if (through_now != state->checkpoint.through_seq) {
                       state->journal_moved = true;
                       return std::move(chunk_done)(absl::OkStatus());
                     }
                     for (const Reply& line : read.elements[1].elements) {
                       absl::StatusOr<JournalEntry> entry = ParseJournalEntry(line.str);
                       if (!entry.ok()) return std::move(chunk_done)(entry.status());
                       state->verifier.Add(*entry);
                     }
                     std::move(chunk_done)(absl::OkStatus());
                   });
        })(std::move(step));
      });
  std::move(steps).Run([state, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    if (state->journal_moved) return std::move(done)(std::nullopt);
    std::move(done)(std::optional<ledger::v1::VerifyLedgerResponse>(
        state->verifier.Finish(state->stored)));
  });
}

}  // namespace ledger
