// The kudos service against a real redis-server and the real ledger, over
// real gRPC: every rule of SendKudos/BoostKudos, idempotency across a ledger
// restart, the reconciler, the feed and the directory.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using harness::Context;
using harness::MintToken;
using kudos::v1::DirectoryService;
using kudos::v1::KudosService;
using ledger::v1::LedgerService;

constexpr char kOrg[] = "acme";

class KudosIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(),
        std::vector<std::string>{"--ledger=" + ledger_->address(), "--ledger_timeout_ms=1500",
                                 "--reconcile_after_ms=500"});
    auto channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    kudos_stub_ = KudosService::NewStub(channel);
    directory_ = DirectoryService::NewStub(channel);
    ledger_stub_ = LedgerService::NewStub(
        grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
    admin_ = MintToken(kOrg, "root", {"admin"});
    CreateTeam("eng");
    CreateTeam("ops");
    for (const char* id : {"alice", "bob", "carol", "dave", "erin"}) CreatePerson(id, "eng", true);
    CreatePerson("olga", "ops", true);
    CreatePerson("ivan", "ops", false);
  }

  void CreateTeam(const std::string& id) {
    kudos::v1::CreateTeamRequest request;
    request.mutable_team()->set_team_id(id);
    request.mutable_team()->set_display_name("Team " + id);
    kudos::v1::CreateTeamResponse response;
    ASSERT_TRUE(directory_->CreateTeam(Context(admin_).get(), request, &response).ok());
  }

  void CreatePerson(const std::string& id, const std::string& team, bool active) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_team_id(team);
    request.mutable_person()->set_active(active);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory_->CreatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  kudos::v1::SendKudosRequest Request(const std::string& request_id,
                                      std::vector<std::string> recipients, int64_t points) {
    kudos::v1::SendKudosRequest request;
    request.set_request_id(request_id);
    for (const auto& r : recipients) request.add_recipient_ids(r);
    request.set_message("Thank you for following up so quickly!");
    request.add_values("consistent-follow-up");
    request.set_points_per_recipient(points);
    return request;
  }

  grpc::Status Send(const std::string& giver, const kudos::v1::SendKudosRequest& request,
                    kudos::v1::Kudos* kudos = nullptr,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    kudos::v1::SendKudosResponse response;
    grpc::Status status = kudos_stub_->SendKudos(
        Context(MintToken(kOrg, giver), timeout).get(), request, &response);
    if (kudos != nullptr) *kudos = response.kudos();
    return status;
  }

  int64_t Earned(const std::string& person) {
    ledger::v1::GetBalanceRequest request;
    request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    request.mutable_account()->set_person_id(person);
    ledger::v1::GetBalanceResponse response;
    grpc::Status status = ledger_stub_->GetBalance(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.balance();
  }

  int TransferCount(const std::string& person) {
    ledger::v1::ListTransfersRequest request;
    request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    request.mutable_account()->set_person_id(person);
    request.set_page_size(500);
    ledger::v1::ListTransfersResponse response;
    EXPECT_TRUE(ledger_stub_->ListTransfers(Context(admin_).get(), request, &response).ok());
    return response.transfers_size();
  }

  std::vector<kudos::v1::Kudos> Feed(const kudos::v1::KudosFilter& filter = {}) {
    std::vector<kudos::v1::Kudos> all;
    std::string token;
    do {
      kudos::v1::ListKudosRequest request;
      *request.mutable_filter() = filter;
      request.set_page_size(100);
      request.set_page_token(token);
      kudos::v1::ListKudosResponse response;
      grpc::Status status =
          kudos_stub_->ListKudos(Context(MintToken(kOrg, "alice")).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      all.insert(all.end(), response.kudos().begin(), response.kudos().end());
      token = response.next_page_token();
    } while (!token.empty());
    return all;
  }

  void UpdateSettings(const std::function<void(kudos::v1::OrgSettings&)>& change) {
    kudos::v1::GetOrgSettingsResponse current;
    ASSERT_TRUE(directory_->GetOrgSettings(Context(admin_).get(), {}, &current).ok());
    kudos::v1::UpdateOrgSettingsRequest request;
    *request.mutable_settings() = current.settings();
    change(*request.mutable_settings());
    kudos::v1::UpdateOrgSettingsResponse response;
    grpc::Status status = directory_->UpdateOrgSettings(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<KudosService::Stub> kudos_stub_;
  std::unique_ptr<DirectoryService::Stub> directory_;
  std::unique_ptr<LedgerService::Stub> ledger_stub_;
  std::string admin_;
};

TEST_F(KudosIntegrationTest, SendKudos_MovesPointsAndAppearsInFeeds) {
  kudos::v1::Kudos kudos;
  grpc::Status status = Send("alice", Request("r1", {"bob", "olga"}, 5), &kudos);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(kudos.giver_id(), "alice");
  EXPECT_EQ(kudos.state(), kudos::v1::KUDOS_STATE_COMMITTED);
  EXPECT_TRUE(kudos.has_create_time());
  EXPECT_EQ(Earned("bob"), 5);
  EXPECT_EQ(Earned("olga"), 5);
  EXPECT_EQ(Feed().size(), 1u);
  kudos::v1::KudosFilter by_team;
  by_team.set_team_id("ops");
  EXPECT_EQ(Feed(by_team).size(), 1u);
  kudos::v1::KudosFilter by_value;
  by_value.set_value("empathy");
  EXPECT_EQ(Feed(by_value).size(), 0u);
  kudos::v1::GetKudosRequest get;
  get.set_kudos_id(kudos.kudos_id());
  kudos::v1::GetKudosResponse got;
  ASSERT_TRUE(kudos_stub_->GetKudos(Context(MintToken(kOrg, "carol")).get(), get, &got).ok());
  // SendKudos answers with the kudos as stored, without reading it back.
  EXPECT_EQ(got.kudos().SerializeAsString(), kudos.SerializeAsString());
}

TEST_F(KudosIntegrationTest, SendKudos_RejectsSelfRecognition) {
  grpc::Status status = Send("alice", Request("r1", {"alice"}, 5));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "recipient_ids[0]: you cannot recognize yourself");
  EXPECT_EQ(Earned("alice"), 0);
}

TEST_F(KudosIntegrationTest, SendKudos_EachRuleHasItsStatusAndChangesNothing) {
  struct Case {
    const char* name;
    kudos::v1::SendKudosRequest request;
    grpc::StatusCode code;
  };
  std::vector<Case> cases;
  cases.push_back({"unknown recipient", Request("a", {"nobody"}, 5), grpc::StatusCode::NOT_FOUND});
  cases.push_back({"inactive recipient", Request("b", {"ivan"}, 5), grpc::StatusCode::FAILED_PRECONDITION});
  cases.push_back({"duplicate recipient", Request("c", {"bob", "bob"}, 5), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"no recipient", Request("d", {}, 5), grpc::StatusCode::INVALID_ARGUMENT});
  std::vector<std::string> many;
  for (int i = 0; i < 21; ++i) many.push_back("p" + std::to_string(i));
  cases.push_back({"21 recipients", Request("e", many, 5), grpc::StatusCode::INVALID_ARGUMENT});
  auto empty = Request("f", {"bob"}, 5);
  empty.set_message("");
  cases.push_back({"empty message", empty, grpc::StatusCode::INVALID_ARGUMENT});
  auto long_message = Request("g", {"bob"}, 5);
  long_message.set_message(std::string(1001, 'x'));
  cases.push_back({"1001 characters", long_message, grpc::StatusCode::INVALID_ARGUMENT});
  auto unknown_value = Request("i", {"bob"}, 5);
  unknown_value.set_values(0, "bravado");
  cases.push_back({"value not in catalog", unknown_value, grpc::StatusCode::INVALID_ARGUMENT});
  auto no_value = Request("j", {"bob"}, 5);
  no_value.clear_values();
  cases.push_back({"no value", no_value, grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"points over max", Request("k", {"bob"}, 51), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"zero points not allowed", Request("l", {"bob"}, 0), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"no request id", Request("", {"bob"}, 5), grpc::StatusCode::INVALID_ARGUMENT});
  for (const Case& c : cases) {
    grpc::Status status = Send("alice", c.request);
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    EXPECT_FALSE(status.error_message().empty()) << c.name;
  }
  // Invalid UTF-8 in a proto3 string never reaches the handler: protobuf
  // refuses to parse the request (the rule itself is unit-tested in
  // KudosRulesTest). It must still fail and change nothing.
  auto bad_utf8 = Request("h", {"bob"}, 5);
  bad_utf8.set_message("caf\xC3");
  EXPECT_FALSE(Send("alice", bad_utf8).ok());
  EXPECT_EQ(Earned("bob"), 0);
  EXPECT_TRUE(Feed().empty());
}

TEST_F(KudosIntegrationTest, SendKudos_GiverMustBeInTheDirectoryAndScreensCannotSend) {
  EXPECT_EQ(Send("stranger", Request("r1", {"bob"}, 5)).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  kudos::v1::SendKudosResponse response;
  grpc::Status screen = kudos_stub_->SendKudos(
      Context(MintToken(kOrg, "lobby", {"screen"})).get(), Request("r2", {"bob"}, 5), &response);
  EXPECT_EQ(screen.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Earned("bob"), 0);
}

TEST_F(KudosIntegrationTest, SendKudos_ZeroPointsWhenTheOrgAllowsIt) {
  UpdateSettings([](kudos::v1::OrgSettings& s) {
    s.set_allow_zero_points(true);
    s.set_min_points(0);
  });
  kudos::v1::Kudos kudos;
  ASSERT_TRUE(Send("alice", Request("r1", {"bob"}, 0), &kudos).ok());
  EXPECT_EQ(kudos.points_per_recipient(), 0);
  EXPECT_EQ(Earned("bob"), 0);
  EXPECT_EQ(Feed().size(), 1u);
}

TEST_F(KudosIntegrationTest, SendKudos_OverspendingAllowanceIsResourceExhaustedAndChangesNothing) {
  UpdateSettings([](kudos::v1::OrgSettings& s) {
    s.mutable_allowance()->set_points_per_period(30);
    s.set_weekly_pair_cap_points(1000);
  });
  ASSERT_TRUE(Send("alice", Request("r1", {"bob", "carol"}, 10)).ok());  // 20 of 30
  grpc::Status over = Send("alice", Request("r2", {"bob", "carol"}, 10));  // would be 40
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << over.error_message();
  EXPECT_NE(over.error_message().find("allowance"), std::string::npos) << over.error_message();
  EXPECT_EQ(Earned("bob"), 10);
  EXPECT_EQ(Earned("carol"), 10);
  EXPECT_EQ(Feed().size(), 1u);
  // The refused attempt released its weekly-cap reservation: 10 more fit.
  ASSERT_TRUE(Send("alice", Request("r3", {"bob"}, 10)).ok());
  EXPECT_EQ(Earned("bob"), 20);
}

TEST_F(KudosIntegrationTest, SendKudos_WeeklyCapPerGiverAndRecipient) {
  UpdateSettings([](kudos::v1::OrgSettings& s) { s.set_weekly_pair_cap_points(15); });
  ASSERT_TRUE(Send("alice", Request("r1", {"bob"}, 10)).ok());
  grpc::Status capped = Send("alice", Request("r2", {"bob"}, 10));
  EXPECT_EQ(capped.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(capped.error_message().find("weekly cap"), std::string::npos) << capped.error_message();
  // Another giver, or another recipient, is not capped by alice->bob.
  EXPECT_TRUE(Send("carol", Request("r3", {"bob"}, 10)).ok());
  EXPECT_TRUE(Send("alice", Request("r4", {"dave"}, 10)).ok());
  EXPECT_EQ(Earned("bob"), 20);
}

TEST_F(KudosIntegrationTest, SendKudos_RateLimitPerGiver) {
  UpdateSettings([](kudos::v1::OrgSettings& s) {
    s.set_max_kudos_per_minute(3);
    s.set_weekly_pair_cap_points(1000);
  });
  int accepted = 0;
  grpc::Status last;
  for (int i = 0; i < 4; ++i) {
    last = Send("alice", Request("r" + std::to_string(i), {"bob"}, 1));
    if (last.ok()) ++accepted;
  }
  // All four may straddle a minute boundary; at least the limit holds.
  if (accepted == 3) {
    EXPECT_EQ(last.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(last.error_message().find("retry after"), std::string::npos);
  }
  EXPECT_LE(accepted, 4);
  EXPECT_EQ(Earned("bob"), accepted);
  EXPECT_TRUE(Send("carol", Request("c1", {"bob"}, 1)).ok());
}

TEST_F(KudosIntegrationTest, SendKudos_SameRequestIdReturnsSameKudosAndDifferentPayloadIsAlreadyExists) {
  kudos::v1::Kudos first, second;
  ASSERT_TRUE(Send("alice", Request("same", {"bob"}, 5), &first).ok());
  ASSERT_TRUE(Send("alice", Request("same", {"bob"}, 5), &second).ok());
  EXPECT_EQ(first.kudos_id(), second.kudos_id());
  EXPECT_EQ(Earned("bob"), 5);
  EXPECT_EQ(Feed().size(), 1u);
  grpc::Status conflict = Send("alice", Request("same", {"bob"}, 6));
  EXPECT_EQ(conflict.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(conflict.error_message().find("request_id"), std::string::npos);
  // Another giver's request_id space is separate.
  EXPECT_TRUE(Send("carol", Request("same", {"bob"}, 5)).ok());
  EXPECT_EQ(Earned("bob"), 10);
}

TEST_F(KudosIntegrationTest, SendKudos_RetryAfterRecipientLeftStillReturnsTheKudos) {
  kudos::v1::Kudos first, retried;
  ASSERT_TRUE(Send("alice", Request("before-leave", {"dave"}, 5), &first).ok());
  kudos::v1::UpdatePersonRequest leave;
  leave.mutable_person()->set_person_id("dave");
  leave.mutable_person()->set_display_name("Person dave");
  leave.mutable_person()->set_team_id("eng");
  leave.mutable_person()->set_active(false);
  kudos::v1::UpdatePersonResponse left;
  ASSERT_TRUE(directory_->UpdatePerson(Context(admin_).get(), leave, &left).ok());
  ASSERT_TRUE(Send("alice", Request("before-leave", {"dave"}, 5), &retried).ok());
  EXPECT_EQ(retried.kudos_id(), first.kudos_id());
  EXPECT_EQ(Send("alice", Request("after-leave", {"dave"}, 5)).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Earned("dave"), 5);
}

TEST_F(KudosIntegrationTest, SendKudos_RetriesWhileLedgerRestartsEndWithExactlyOneKudos) {
  // The ledger goes down before the call and comes back while the client
  // keeps retrying with the same request_id.
  ledger_->Stop();
  std::thread restarter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    ledger_->Start();
  });
  kudos::v1::Kudos kudos;
  grpc::Status status;
  std::set<grpc::StatusCode> seen;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  do {
    status = Send("alice", Request("retry-me", {"bob", "carol"}, 7), &kudos);
    seen.insert(status.error_code());
    if (!status.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (!status.ok() && std::chrono::steady_clock::now() < deadline);
  restarter.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(seen.count(grpc::StatusCode::UNAVAILABLE)) << "the ledger outage was never seen";
  EXPECT_EQ(Earned("bob"), 7);
  EXPECT_EQ(Earned("carol"), 7);
  EXPECT_EQ(TransferCount("bob"), 1);
  EXPECT_EQ(TransferCount("carol"), 1);
  EXPECT_EQ(Feed().size(), 1u);
}

TEST_F(KudosIntegrationTest, SendKudos_LedgerKilledMidCallThenRetriedYieldsOneSetOfTransfers) {
  // Repeatedly kill the ledger while sends are in flight; each request id is
  // retried until it succeeds. Whatever the crash point, each kudos ends
  // with exactly one transfer per recipient.
  UpdateSettings([](kudos::v1::OrgSettings& s) { s.set_max_kudos_per_minute(1000); });
  std::atomic<bool> done{false};
  std::thread killer([&] {
    for (int i = 0; i < 4 && !done.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      ledger_->Kill();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ledger_->Start();
    }
  });
  // Stops the killer, which leaves the ledger started: before the balances
  // are read (the sends can all succeed before its last kill), and on every
  // exit path, so a failed assertion cannot destroy a joinable thread.
  struct JoinOnExit {
    std::atomic<bool>& done;
    std::thread& thread;
    void Join() {
      done.store(true);
      if (thread.joinable()) thread.join();
    }
    ~JoinOnExit() { Join(); }
  } join_killer{done, killer};
  const int kKudos = 12;
  for (int i = 0; i < kKudos; ++i) {
    grpc::Status status;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    do {
      status = Send("alice", Request("k" + std::to_string(i), {"bob"}, 1), nullptr,
                    std::chrono::seconds(3));
      if (!status.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (!status.ok() && std::chrono::steady_clock::now() < deadline);
    ASSERT_TRUE(status.ok()) << i << ": " << status.error_message();
  }
  join_killer.Join();
  EXPECT_EQ(Earned("bob"), kKudos);
  EXPECT_EQ(TransferCount("bob"), kKudos);
  EXPECT_EQ(Feed().size(), static_cast<size_t>(kKudos));
}

TEST_F(KudosIntegrationTest, Reconciler_FinishesPendingKudosWithoutARetry) {
  ledger_->Stop();
  grpc::Status status = Send("alice", Request("abandoned", {"bob"}, 4));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(Feed().empty());
  ledger_->Start();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (Feed().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(Feed().size(), 1u);
  EXPECT_EQ(Earned("bob"), 4);
  EXPECT_EQ(TransferCount("bob"), 1);
  // The client's late retry returns the kudos the reconciler finished.
  kudos::v1::Kudos kudos;
  ASSERT_TRUE(Send("alice", Request("abandoned", {"bob"}, 4), &kudos).ok());
  EXPECT_EQ(kudos.kudos_id(), Feed()[0].kudos_id());
  EXPECT_EQ(TransferCount("bob"), 1);
}

TEST_F(KudosIntegrationTest, BoostKudos_AddsPointsFromTheBoostersAllowance) {
  kudos::v1::Kudos kudos;
  ASSERT_TRUE(Send("alice", Request("r1", {"bob", "olga"}, 5), &kudos).ok());
  kudos::v1::BoostKudosRequest boost;
  boost.set_kudos_id(kudos.kudos_id());
  boost.set_request_id("b1");
  boost.set_points(3);
  kudos::v1::BoostKudosResponse response;
  grpc::Status status =
      kudos_stub_->BoostKudos(Context(MintToken(kOrg, "carol")).get(), boost, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.kudos().boosts_size(), 1);
  EXPECT_EQ(response.kudos().boosts(0).booster_id(), "carol");
  EXPECT_EQ(Earned("bob"), 8);
  EXPECT_EQ(Earned("olga"), 8);
  // Retried boost: same answer, no second boost.
  ASSERT_TRUE(kudos_stub_->BoostKudos(Context(MintToken(kOrg, "carol")).get(), boost, &response).ok());
  EXPECT_EQ(response.kudos().boosts_size(), 1);
  EXPECT_EQ(Earned("bob"), 8);
  // The giver and the recipients cannot boost; unknown kudos is NOT_FOUND.
  boost.set_request_id("b2");
  EXPECT_EQ(kudos_stub_->BoostKudos(Context(MintToken(kOrg, "alice")).get(), boost, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(kudos_stub_->BoostKudos(Context(MintToken(kOrg, "bob")).get(), boost, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  boost.set_kudos_id("k-does-not-exist");
  EXPECT_EQ(kudos_stub_->BoostKudos(Context(MintToken(kOrg, "dave")).get(), boost, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Earned("bob"), 8);
}

TEST_F(KudosIntegrationTest, ListKudos_PagesNewestFirstAndStayStableWhileKudosArrive) {
  UpdateSettings([](kudos::v1::OrgSettings& s) {
    s.set_max_kudos_per_minute(1000);
    s.set_weekly_pair_cap_points(1000);
    s.mutable_allowance()->set_points_per_period(1000);
  });
  std::vector<std::string> sent;
  for (int i = 0; i < 7; ++i) {
    kudos::v1::Kudos kudos;
    ASSERT_TRUE(Send("alice", Request("p" + std::to_string(i), {"bob"}, 1), &kudos).ok());
    sent.push_back(kudos.kudos_id());
  }
  std::vector<std::string> seen;
  std::string token;
  int page = 0;
  do {
    kudos::v1::ListKudosRequest request;
    request.set_page_size(3);
    request.set_page_token(token);
    kudos::v1::ListKudosResponse response;
    ASSERT_TRUE(kudos_stub_->ListKudos(Context(MintToken(kOrg, "bob")).get(), request, &response).ok());
    for (const auto& k : response.kudos()) seen.push_back(k.kudos_id());
    token = response.next_page_token();
    // New kudos arrive between pages; they are newer than the cursor.
    if (page++ == 0) {
      ASSERT_TRUE(Send("carol", Request("late", {"bob"}, 1)).ok());
    }
  } while (!token.empty());
  std::vector<std::string> expected(sent.rbegin(), sent.rend());
  EXPECT_EQ(seen, expected);
  kudos::v1::ListKudosRequest bad;
  bad.set_page_token("garbage!");
  kudos::v1::ListKudosResponse response;
  EXPECT_EQ(kudos_stub_->ListKudos(Context(MintToken(kOrg, "bob")).get(), bad, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_page_token("");
  bad.set_page_size(100000);
  EXPECT_EQ(kudos_stub_->ListKudos(Context(MintToken(kOrg, "bob")).get(), bad, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  kudos::v1::KudosFilter by_giver;
  by_giver.set_giver_id("carol");
  EXPECT_EQ(Feed(by_giver).size(), 1u);
  kudos::v1::KudosFilter by_recipient;
  by_recipient.set_recipient_id("bob");
  EXPECT_EQ(Feed(by_recipient).size(), 8u);
}

TEST_F(KudosIntegrationTest, WatchFeed_StreamsNewKudosMatchingTheFilter) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + MintToken(kOrg, "lobby", {"screen"}));
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  kudos::v1::WatchFeedRequest request;
  request.mutable_filter()->set_team_id("ops");
  auto reader = kudos_stub_->WatchFeed(&context, request);
  // The server's headers mean the watch is live: nothing sent after is missed.
  reader->WaitForInitialMetadata();
  ASSERT_TRUE(Send("alice", Request("not-ops", {"bob"}, 1)).ok());
  kudos::v1::Kudos ops;
  ASSERT_TRUE(Send("alice", Request("ops", {"olga"}, 1), &ops).ok());
  kudos::v1::WatchFeedResponse update;
  ASSERT_TRUE(reader->Read(&update));
  EXPECT_EQ(update.kudos().kudos_id(), ops.kudos_id());
  context.TryCancel();
}

TEST_F(KudosIntegrationTest, Directory_OnlyAdminsWriteAndChangesAreAudited) {
  kudos::v1::CreatePersonRequest request;
  request.mutable_person()->set_person_id("mallory");
  request.mutable_person()->set_display_name("Mallory");
  request.mutable_person()->set_active(true);
  kudos::v1::CreatePersonResponse response;
  EXPECT_EQ(directory_->CreatePerson(Context(MintToken(kOrg, "alice")).get(), request, &response)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  request.mutable_person()->set_person_id("alice");
  EXPECT_EQ(directory_->CreatePerson(Context(admin_).get(), request, &response).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  request.mutable_person()->set_person_id("zoe");
  request.mutable_person()->set_team_id("no-such-team");
  EXPECT_EQ(directory_->CreatePerson(Context(admin_).get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  kudos::v1::ListPeopleRequest list;
  list.set_team_id("eng");
  list.set_page_size(2);
  std::vector<std::string> ids;
  kudos::v1::ListPeopleResponse people;
  do {
    ASSERT_TRUE(directory_->ListPeople(Context(MintToken(kOrg, "bob")).get(), list, &people).ok());
    for (const auto& p : people.people()) ids.push_back(p.person_id());
    list.set_page_token(people.next_page_token());
  } while (!people.next_page_token().empty());
  EXPECT_EQ(ids, (std::vector<std::string>{"alice", "bob", "carol", "dave", "erin"}));
  common::redis::PoolOptions options;
  options.endpoint.port = redis_->port();
  common::redis::Pool pool(options);
  auto audit = pool.Run({"XLEN", "audit:{acme}"});
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_EQ(audit->integer, 9);  // 2 teams + 7 people
}

TEST_F(KudosIntegrationTest, UpdateOrgSettings_SetsTheLedgersAllowancePolicy) {
  UpdateSettings([](kudos::v1::OrgSettings& s) {
    s.set_time_zone("Europe/Paris");
    s.mutable_allowance()->set_points_per_period(40);
    s.mutable_allowance()->set_period(common::v1::ALLOWANCE_PERIOD_WEEK);
  });
  ASSERT_TRUE(Send("alice", Request("r1", {"bob"}, 15)).ok());
  ledger::v1::GetAllowanceRequest request;
  request.set_person_id("alice");
  ledger::v1::GetAllowanceResponse response;
  ASSERT_TRUE(ledger_stub_->GetAllowance(Context(MintToken(kOrg, "alice")).get(), request, &response).ok());
  EXPECT_EQ(response.policy().points_per_period(), 40);
  EXPECT_EQ(response.policy().time_zone(), "Europe/Paris");
  EXPECT_EQ(response.spent_points(), 15);
  EXPECT_EQ(response.remaining_points(), 25);
  kudos::v1::UpdateOrgSettingsRequest bad;
  bad.mutable_settings()->set_time_zone("Atlantis/Capital");
  kudos::v1::UpdateOrgSettingsResponse ignored;
  EXPECT_EQ(directory_->UpdateOrgSettings(Context(admin_).get(), bad, &ignored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// SendKudos validates against the replica's cached directory (directory_cache.h):
// a change written through another replica is seen by the very next kudos
// (the begin script's version check), never up to a cache age later.
TEST_F(KudosIntegrationTest, SendKudos_ADirectoryChangeThroughAnotherReplicaIsSeenByTheNextKudos) {
  harness::Service other(KUDOS_BINARY, redis_->address(),
                         std::vector<std::string>{"--ledger=" + ledger_->address()});
  auto other_directory = DirectoryService::NewStub(
      grpc::CreateChannel(other.address(), grpc::InsecureChannelCredentials()));
  auto update = [&](const std::string& id, const std::string& team, bool active) {
    kudos::v1::UpdatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_team_id(team);
    request.mutable_person()->set_active(active);
    kudos::v1::UpdatePersonResponse response;
    grpc::Status status = other_directory->UpdatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  };
  // This replica has read alice, bob, carol and the settings.
  kudos::v1::Kudos before, after;
  ASSERT_TRUE(Send("alice", Request("c1", {"bob"}, 1), &before).ok());
  ASSERT_TRUE(Send("alice", Request("c2", {"carol"}, 1)).ok());
  ASSERT_TRUE(Send("alice", Request("c3", {"bob", "carol"}, 1)).ok());

  // bob moves to ops: the next kudos to him counts for ops, not eng.
  update("bob", "ops", true);
  ASSERT_TRUE(Send("alice", Request("c4", {"bob"}, 1), &after).ok());
  kudos::v1::KudosFilter ops;
  ops.set_team_id("ops");
  std::set<std::string> in_ops;
  for (const auto& kudos : Feed(ops)) in_ops.insert(kudos.kudos_id());
  EXPECT_TRUE(in_ops.count(after.kudos_id()) == 1);
  EXPECT_TRUE(in_ops.count(before.kudos_id()) == 0);

  // carol leaves: refused at once.
  update("carol", "eng", false);
  EXPECT_EQ(Send("alice", Request("c5", {"carol"}, 1)).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  // The org's points bound drops to 2 through the other replica.
  kudos::v1::GetOrgSettingsResponse current;
  ASSERT_TRUE(directory_->GetOrgSettings(Context(admin_).get(), {}, &current).ok());
  kudos::v1::UpdateOrgSettingsRequest settings;
  *settings.mutable_settings() = current.settings();
  settings.mutable_settings()->set_max_points(2);
  kudos::v1::UpdateOrgSettingsResponse updated;
  grpc::Status set = other_directory->UpdateOrgSettings(Context(admin_).get(), settings, &updated);
  ASSERT_TRUE(set.ok()) << set.error_message();
  EXPECT_EQ(Send("alice", Request("c6", {"bob"}, 3)).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Send("alice", Request("c7", {"bob"}, 2)).ok());
  EXPECT_EQ(Earned("bob"), 1 + 1 + 1 + 2);
  EXPECT_EQ(Earned("carol"), 1 + 1);
}

// A refusal reached on cached entries is never answered from them: the
// replica reads the directory again first.
TEST_F(KudosIntegrationTest, SendKudos_ARefusalOnCachedEntriesIsCheckedAgainstAFreshRead) {
  harness::Service other(KUDOS_BINARY, redis_->address(),
                         std::vector<std::string>{"--ledger=" + ledger_->address()});
  auto other_directory = DirectoryService::NewStub(
      grpc::CreateChannel(other.address(), grpc::InsecureChannelCredentials()));
  // ivan is inactive as this replica reads him.
  EXPECT_EQ(Send("alice", Request("i1", {"ivan"}, 1)).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  kudos::v1::UpdatePersonRequest back;
  back.mutable_person()->set_person_id("ivan");
  back.mutable_person()->set_display_name("Person ivan");
  back.mutable_person()->set_team_id("ops");
  back.mutable_person()->set_active(true);
  kudos::v1::UpdatePersonResponse response;
  ASSERT_TRUE(other_directory->UpdatePerson(Context(admin_).get(), back, &response).ok());
  grpc::Status sent = Send("alice", Request("i2", {"ivan"}, 1));
  EXPECT_TRUE(sent.ok()) << sent.error_message();
  EXPECT_EQ(Earned("ivan"), 1);
}

}  // namespace
