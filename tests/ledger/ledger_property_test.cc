// Property-style test: a seeded random sequence of linked and unlinked
// batches with injected retries, duplicate transfer ids (same and different
// payloads), adjustments, redemptions (holds, fulfilments, cancellations) and
// ledger process restarts and crashes, compared
// after every step with a simple in-memory model; at the end VerifyLedger
// must find the journal and the balances consistent and the outbox must
// carry every transfer exactly once.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iterator>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/ledger/ledger_rules.h"
#include "tests/ledger/ledger_test_util.h"

namespace ledger_test {
namespace {

constexpr int kOps = 300;
constexpr int64_t kLimit = 600;
const std::vector<std::string> kPeople = {"ann", "ben", "cat", "dan", "eve"};

struct Outcome {
  int code = 0;
  bool created = false;
};

struct Hold {
  std::string person;
  int64_t points = 0;
};

// The ledger as the spec describes it: KUDOS transfers, adjustments and
// redemption holds.
struct Model {
  std::map<std::string, Transfer> posted;
  std::map<std::string, int64_t> balances;
  std::map<std::string, int64_t> spent;
  std::map<std::string, Hold> pending;  // by redemption id

  int64_t Held(const std::string& person) const {
    int64_t held = 0;
    for (const auto& [id, hold] : pending) {
      if (hold.person == person) held += hold.points;
    }
    return held;
  }
  int64_t Available(const std::string& person) {
    return balances["earned:" + person] - Held(person);
  }

  Outcome TryPost(const Transfer& t) {
    auto it = posted.find(t.transfer_id());
    if (it != posted.end()) {
      if (ledger::Fingerprint(it->second) == ledger::Fingerprint(t)) return {0, false};
      return {static_cast<int>(grpc::StatusCode::ALREADY_EXISTS), false};
    }
    const std::string& giver = t.debit_account().person_id();
    if (spent[giver] + t.amount() > kLimit) {
      return {static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED), false};
    }
    spent[giver] += t.amount();
    Apply(t);
    return {0, true};
  }

  void Apply(const Transfer& t) {
    posted[t.transfer_id()] = t;
    balances[ledger::AccountKey(t.debit_account())] -= t.amount();
    balances[ledger::AccountKey(t.credit_account())] += t.amount();
  }

  std::map<std::string, int64_t> NonZero() const {
    std::map<std::string, int64_t> out;
    for (const auto& [k, v] : balances) {
      if (v != 0) out[k] = v;
    }
    return out;
  }
};

class LedgerProperty : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = std::make_unique<LedgerEnv>();
    stub_ = env_->NewStub();
    service_ = ServiceToken(kOrg);
    admin_ = harness::MintToken(kOrg, "root", {"admin"});
  }

  void Reconnect() {
    stub_ = env_->NewStub();
    service_ = ServiceToken(kOrg);
    WaitUntilServing(*stub_, admin_);
  }

  std::map<std::string, int64_t> StoredBalances() {
    auto reply = env_->pool().Run({"HGETALL", std::string("ledger:{") + kOrg + "}:bal"});
    EXPECT_TRUE(reply.ok());
    std::map<std::string, int64_t> out;
    for (size_t i = 0; i + 1 < reply->elements.size(); i += 2) {
      int64_t v = std::stoll(reply->elements[i + 1].str);
      if (v != 0) out[reply->elements[i].str] = v;
    }
    return out;
  }

  static constexpr char kOrg[] = "prop-org";
  std::unique_ptr<LedgerEnv> env_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> stub_;
  std::string service_;
  std::string admin_;
};

TEST_F(LedgerProperty, RandomBatchesRetriesAndRestartsMatchModelAndVerify) {
  {
    ledger::v1::SetAllowancePolicyRequest request;
    request.mutable_policy()->set_points_per_period(kLimit);
    ledger::v1::SetAllowancePolicyResponse response;
    ASSERT_TRUE(
        stub_->SetAllowancePolicy(harness::Context(admin_).get(), request, &response).ok());
  }
  // Fixed by default; LEDGER_PROPERTY_SEED explores other sequences.
  const char* seed_env = std::getenv("LEDGER_PROPERTY_SEED");
  const unsigned seed = seed_env != nullptr ? std::strtoul(seed_env, nullptr, 10) : 20261123u;
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 rng(seed);
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };

  Model model;
  std::vector<std::string> used_ids;
  ledger::v1::PostTransfersRequest last;
  int next_id = 0, restarts = 0, retries = 0, conflicts = 0, exhausted = 0, adjustments = 0,
      redemptions = 0, fulfilled = 0, refused_holds = 0;

  for (int op = 0; op < kOps; ++op) {
    SCOPED_TRACE(absl::StrCat("op ", op));
    if (op > 0 && (op % 60 == 0 || chance(0.01))) {
      // A crash every other time, a graceful restart otherwise. The channel
      // is closed first: a graceful stop waits for connected clients.
      stub_.reset();
      if (restarts % 2 == 0) {
        env_->ledger().Kill();
        env_->ledger().Start();
      } else {
        env_->ledger().Restart();
      }
      ++restarts;
      Reconnect();
    }

    if (chance(0.08)) {
      // A redemption: a new hold, or fulfilling or cancelling a pending one.
      if (model.pending.empty() || chance(0.5)) {
        std::string person = kPeople[pick(kPeople.size())];
        int64_t points = 1 + pick(30);
        ledger::v1::CreateRedemptionRequest request;
        request.set_request_id(absl::StrCat("rdm", op));
        request.set_person_id(person);
        request.set_reward("gift");
        request.set_points(points);
        ledger::v1::CreateRedemptionResponse response;
        grpc::Status status =
            stub_->CreateRedemption(harness::Context(admin_).get(), request, &response);
        if (model.Available(person) < points) {
          EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
          ++refused_holds;
        } else {
          ASSERT_TRUE(status.ok()) << status.error_message();
          model.pending[response.redemption().redemption_id()] = {person, points};
          ++redemptions;
        }
      } else {
        auto it = model.pending.begin();
        std::advance(it, pick(model.pending.size()));
        std::string id = it->first;
        Hold hold = it->second;
        model.pending.erase(it);
        if (chance(0.6)) {
          ledger::v1::FulfillRedemptionRequest request;
          request.set_redemption_id(id);
          ledger::v1::FulfillRedemptionResponse response;
          ASSERT_TRUE(
              stub_->FulfillRedemption(harness::Context(admin_).get(), request, &response).ok());
          EXPECT_EQ(response.redemption().state(), ledger::v1::REDEMPTION_STATE_FULFILLED);
          Transfer t;
          t.set_transfer_id(response.redemption().transfer_id());
          *t.mutable_debit_account() = Earned(hold.person);
          *t.mutable_credit_account() = Rewards();
          t.set_amount(hold.points);
          model.Apply(t);
          ++fulfilled;
        } else {
          ledger::v1::CancelRedemptionRequest request;
          request.set_redemption_id(id);
          ledger::v1::CancelRedemptionResponse response;
          ASSERT_TRUE(
              stub_->CancelRedemption(harness::Context(admin_).get(), request, &response).ok());
          EXPECT_EQ(response.redemption().state(), ledger::v1::REDEMPTION_STATE_CANCELLED);
        }
      }
    } else if (chance(0.05)) {
      // An admin adjustment, positive or negative (never below zero).
      int64_t amount = pick(41) - 20;
      if (amount == 0) amount = 1;
      std::string person = kPeople[pick(kPeople.size())];
      ledger::v1::AdjustBalanceRequest request;
      request.set_request_id(absl::StrCat("adj", op));
      request.set_person_id(person);
      request.set_amount(amount);
      request.set_reason("property test");
      ledger::v1::AdjustBalanceResponse response;
      grpc::Status status =
          stub_->AdjustBalance(harness::Context(admin_).get(), request, &response);
      std::string earned = "earned:" + person;
      if (amount < 0 && model.Available(person) < -amount) {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
      } else {
        ASSERT_TRUE(status.ok()) << status.error_message();
        model.Apply(response.transfer());
        ++adjustments;
      }
    } else {
      ledger::v1::PostTransfersRequest request;
      bool retry = last.transfers_size() > 0 && chance(0.1);
      if (retry) {
        request = last;  // the caller never saw the answer and tries again
        ++retries;
      } else {
        request.set_linked(chance(0.5));
        int size = 1 + pick(4);
        for (int i = 0; i < size; ++i) {
          Transfer t;
          if (i > 0 && chance(0.08)) {
            t = request.transfers(i - 1);  // duplicate inside one batch
          } else {
            int from = pick(kPeople.size());
            int to = (from + 1 + pick(kPeople.size() - 1)) % kPeople.size();
            std::string id = absl::StrCat("t", next_id++);
            if (!used_ids.empty() && chance(0.12)) id = used_ids[pick(used_ids.size())];
            t = Kudos(id, kPeople[from], kPeople[to], 1 + pick(25), absl::StrCat("kudos-", op));
            auto posted = model.posted.find(id);
            if (posted != model.posted.end() && chance(0.5)) t = posted->second;  // same payload
            used_ids.push_back(id);
          }
          *request.add_transfers() = t;
        }
        last = request;
      }

      // What the model expects.
      std::vector<Outcome> expected;
      int linked_failure = 0;
      if (request.linked()) {
        Model tentative = model;
        for (const Transfer& t : request.transfers()) {
          Outcome o = tentative.TryPost(t);
          if (o.code != 0) {
            linked_failure = o.code;
            break;
          }
          expected.push_back(o);
        }
        if (linked_failure == 0) model = tentative;
      } else {
        for (const Transfer& t : request.transfers()) expected.push_back(model.TryPost(t));
      }

      ledger::v1::PostTransfersResponse response;
      grpc::Status status =
          stub_->PostTransfers(harness::Context(service_).get(), request, &response);
      if (linked_failure != 0) {
        EXPECT_EQ(static_cast<int>(status.error_code()), linked_failure) << status.error_message();
        if (linked_failure == static_cast<int>(grpc::StatusCode::ALREADY_EXISTS)) ++conflicts;
        if (linked_failure == static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED)) ++exhausted;
      } else {
        ASSERT_TRUE(status.ok()) << status.error_message();
        ASSERT_EQ(response.results_size(), request.transfers_size());
        for (int i = 0; i < request.transfers_size(); ++i) {
          SCOPED_TRACE(absl::StrCat("transfer ", i));
          const auto& result = response.results(i);
          EXPECT_EQ(result.status_code(), expected[i].code) << result.error_message();
          EXPECT_EQ(result.created(), expected[i].created);
          if (expected[i].code == 0) {
            const Transfer& original = model.posted.at(request.transfers(i).transfer_id());
            EXPECT_EQ(result.transfer().amount(), original.amount());
            EXPECT_GT(result.transfer().sequence(), 0);
          }
          if (expected[i].code == static_cast<int>(grpc::StatusCode::ALREADY_EXISTS)) ++conflicts;
          if (expected[i].code == static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED)) {
            ++exhausted;
          }
        }
      }
    }
    ASSERT_EQ(StoredBalances(), model.NonZero());
  }

  // The random walk exercised what it is meant to.
  EXPECT_GE(restarts, 4);
  EXPECT_GT(retries, 10);
  EXPECT_GT(conflicts, 5);
  EXPECT_GT(exhausted, 5);
  EXPECT_GT(adjustments, 3);
  EXPECT_GT(redemptions, 3);
  EXPECT_GT(fulfilled, 1);

  ledger::v1::VerifyLedgerResponse verify;
  ASSERT_TRUE(stub_->VerifyLedger(harness::Context(admin_).get(), {}, &verify).ok());
  EXPECT_TRUE(verify.consistent());
  EXPECT_EQ(verify.sum_of_balances(), 0);
  EXPECT_EQ(verify.differences_size(), 0);
  EXPECT_EQ(verify.negative_earned_accounts_size(), 0);
  EXPECT_EQ(verify.transfer_count(), static_cast<int64_t>(model.posted.size()));

  for (const std::string& person : kPeople) {
    ledger::v1::GetBalanceRequest request;
    *request.mutable_account() = Earned(person);
    ledger::v1::GetBalanceResponse response;
    ASSERT_TRUE(stub_->GetBalance(harness::Context(service_).get(), request, &response).ok());
    EXPECT_EQ(response.balance(), model.balances["earned:" + person]);
    EXPECT_EQ(response.held(), model.Held(person));
    EXPECT_GE(response.available(), 0);

    ledger::v1::GetAllowanceRequest allowance_request;
    allowance_request.set_person_id(person);
    ledger::v1::GetAllowanceResponse allowance;
    ASSERT_TRUE(
        stub_->GetAllowance(harness::Context(service_).get(), allowance_request, &allowance).ok());
    EXPECT_EQ(allowance.spent_points(), model.spent[person]);
  }

  // Every transfer is in the outbox exactly once, in sequence order.
  auto outbox = env_->pool().Run({"XRANGE", std::string("ledger:{") + kOrg + "}:outbox", "-", "+"});
  ASSERT_TRUE(outbox.ok());
  std::set<std::string> in_outbox;
  int64_t last_sequence = 0;
  for (const auto& entry : outbox->elements) {
    ledger::v1::LedgerEvent event;
    ASSERT_TRUE(event.ParseFromString(entry.elements[1].elements[1].str));
    EXPECT_EQ(event.transfers_posted().org_id(), kOrg);
    for (const Transfer& t : event.transfers_posted().transfers()) {
      EXPECT_TRUE(in_outbox.insert(t.transfer_id()).second) << t.transfer_id();
      EXPECT_EQ(t.sequence(), last_sequence + 1);
      last_sequence = t.sequence();
      const Transfer& expected = model.posted.at(t.transfer_id());
      EXPECT_EQ(ledger::AccountKey(t.debit_account()), ledger::AccountKey(expected.debit_account()));
      EXPECT_EQ(ledger::AccountKey(t.credit_account()),
                ledger::AccountKey(expected.credit_account()));
      EXPECT_EQ(t.amount(), expected.amount());
      if (t.kind() == ledger::v1::TRANSFER_KIND_KUDOS) {
        EXPECT_EQ(ledger::Fingerprint(t), ledger::Fingerprint(expected));
      }
    }
  }
  EXPECT_EQ(in_outbox.size(), model.posted.size());
}

// Redis going away is UNAVAILABLE (never a silent success); once it is back
// the ledger serves again without a restart of its own.
TEST(LedgerOutage, RedisDownIsUnavailableAndRecovers) {
  LedgerEnv env;
  auto stub = env.NewStub();
  std::string service = ServiceToken("outage-org");
  ledger::v1::PostTransfersRequest request;
  *request.add_transfers() = Kudos("k1", "alice", "bob", 5);
  request.set_linked(true);
  ledger::v1::PostTransfersResponse response;
  ASSERT_TRUE(stub->PostTransfers(harness::Context(service).get(), request, &response).ok());

  env.redis().Restart();  // no persistence in tests: the data is gone, the pool's links too
  // The first call may see the dropped connection; it must say UNAVAILABLE.
  bool recovered = false;
  for (int attempt = 0; attempt < 50 && !recovered; ++attempt) {
    grpc::Status status =
        stub->PostTransfers(harness::Context(service).get(), request, &response);
    if (status.ok()) {
      recovered = true;
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_TRUE(recovered);

  // A ledger whose Redis is not there at all refuses with UNAVAILABLE.
  harness::Service orphan(LEDGER_BINARY, "127.0.0.1:" + std::to_string(harness::FreePort()));
  auto orphan_stub = ledger::v1::LedgerService::NewStub(
      grpc::CreateChannel(orphan.address(), grpc::InsecureChannelCredentials()));
  grpc::Status status =
      orphan_stub->PostTransfers(harness::Context(service).get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  ledger::v1::GetBalanceRequest balance;
  *balance.mutable_account() = Earned("bob");
  ledger::v1::GetBalanceResponse balance_response;
  status = orphan_stub->GetBalance(harness::Context(service).get(), balance, &balance_response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  orphan_stub.reset();
}

}  // namespace
}  // namespace ledger_test
