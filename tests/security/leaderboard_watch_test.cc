// Attacks on the leaderboard's reads and live watches (issue 12, findings 4
// and 16), against a real redis-server, the real kudos service (the
// directory: teams and the values catalog reach the leaderboard through its
// event stream) and real leaderboard_server processes started with small
// caps. Every wait polls with a generous deadline; nothing is timed.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/calendar/calendar.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/harness/eventually.h"

namespace {

using namespace std::chrono_literals;
namespace kv1 = kudos::v1;
namespace bv1 = leaderboard::v1;

constexpr char kOrg[] = "lbw-acme";
constexpr char kOtherOrg[] = "lbw-globex";

using harness::Eventually;

bv1::Board Board(bv1::Scope scope, const std::string& scope_id = "",
                 bv1::Window window = bv1::WINDOW_WEEK, const std::string& period = "") {
  bv1::Board board;
  board.set_metric(bv1::METRIC_POINTS_RECEIVED);
  board.set_window(window);
  board.set_scope(scope);
  board.set_scope_id(scope_id);
  board.set_period(period);
  return board;
}

std::string ServiceToken(const std::string& org) {
  return *common::auth::MintServiceToken("gateway", org, common::auth::kDevServiceSecret,
                                         absl::Now());
}

// One WatchLeaderboard stream: open once its first snapshot arrived, else
// ended with `status` (and the server's trailers in `context`).
struct Watch {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<bv1::WatchLeaderboardResponse>> reader;
  bool open = false;
  grpc::Status status;

  std::string Trailer(const std::string& name) const {
    const auto& trailers = context->GetServerTrailingMetadata();
    auto it = trailers.find(name);
    return it == trailers.end() ? "" : std::string(it->second.data(), it->second.size());
  }
  void Close() {
    if (!open) return;
    context->TryCancel();
    bv1::WatchLeaderboardResponse ignored;
    while (reader->Read(&ignored)) {
    }
    status = reader->Finish();
    open = false;
  }
  ~Watch() { Close(); }
};

std::unique_ptr<Watch> OpenWatch(bv1::LeaderboardService::Stub* stub, const std::string& token,
                                 const bv1::Board& board) {
  auto watch = std::make_unique<Watch>();
  watch->context = harness::Context(token, 60s);
  bv1::WatchLeaderboardRequest request;
  *request.mutable_board() = board;
  watch->reader = stub->WatchLeaderboard(watch->context.get(), request);
  bv1::WatchLeaderboardResponse first;
  watch->open = watch->reader->Read(&first);
  if (!watch->open) watch->status = watch->reader->Finish();
  return watch;
}

class LeaderboardWatchAttackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    redis_ = new harness::RedisServer();
    kudos_ = new harness::Service(KUDOS_BINARY, redis_->address(), {"--ledger=127.0.0.1:1"});
    // The directory: team "core" in each org (values: the default catalog).
    for (const char* org : {kOrg, kOtherOrg}) {
      auto directory = kv1::DirectoryService::NewStub(
          grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials()));
      kv1::CreateTeamRequest team;
      team.mutable_team()->set_team_id("core");
      team.mutable_team()->set_display_name("Core");
      kv1::CreateTeamResponse created;
      auto context = harness::Context(harness::MintToken(org, "root", {"admin"}));
      grpc::Status status = directory->CreateTeam(context.get(), team, &created);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }
  static void TearDownTestSuite() {
    delete kudos_;
    delete redis_;
  }

  // A leaderboard with these flags, once it has applied both orgs' teams.
  void StartLeaderboard(std::vector<std::string> flags) {
    server_ = std::make_unique<harness::Service>(LEADERBOARD_BINARY, redis_->address(),
                                                 std::move(flags));
    stub_ = bv1::LeaderboardService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    for (const char* org : {kOrg, kOtherOrg}) {
      std::string admin = harness::MintToken(org, "root", {"admin"});
      ASSERT_TRUE(Eventually([&] { return GetBoard(admin, Board(bv1::SCOPE_TEAM, "core")).ok(); }))
          << "team 'core' of " << org << " never reached the leaderboard";
    }
  }

  grpc::Status GetBoard(const std::string& token, const bv1::Board& board) {
    bv1::GetLeaderboardRequest request;
    *request.mutable_board() = board;
    bv1::GetLeaderboardResponse response;
    auto context = harness::Context(token);
    return stub_->GetLeaderboard(context.get(), request, &response);
  }

  std::unique_ptr<Watch> Open(const std::string& token, const bv1::Board& board) {
    return OpenWatch(stub_.get(), token, board);
  }

  static harness::RedisServer* redis_;
  static harness::Service* kudos_;
  std::unique_ptr<harness::Service> server_;
  std::unique_ptr<bv1::LeaderboardService::Stub> stub_;
  std::string alice_ = harness::MintToken(kOrg, "alice", {"member"});
  std::string bob_ = harness::MintToken(kOrg, "bob", {"member"});
};

harness::RedisServer* LeaderboardWatchAttackTest::redis_ = nullptr;
harness::Service* LeaderboardWatchAttackTest::kudos_ = nullptr;

// ---------------------------------------------------------------- finding 4

TEST_F(LeaderboardWatchAttackTest, WatchLeaderboard_RefusesStreamsPastThePersonsCap) {
  StartLeaderboard({"--max_streams_per_person=3"});
  std::vector<std::unique_ptr<Watch>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(Open(alice_, Board(bv1::SCOPE_ORG)));
    ASSERT_TRUE(held.back()->open) << i << ": " << held.back()->status.error_message();
  }
  std::unique_ptr<Watch> fourth = Open(alice_, Board(bv1::SCOPE_ORG));
  EXPECT_FALSE(fourth->open);
  EXPECT_EQ(fourth->status.error_code(), grpc::RESOURCE_EXHAUSTED)
      << fourth->status.error_message();
  EXPECT_NE(fourth->status.error_message().find("too many open streams"), std::string::npos)
      << fourth->status.error_message();
  EXPECT_FALSE(fourth->Trailer("retry-after-ms").empty());
  // Another person of the same org is not charged for alice's streams.
  std::unique_ptr<Watch> bobs = Open(bob_, Board(bv1::SCOPE_ORG));
  EXPECT_TRUE(bobs->open) << bobs->status.error_message();
  // A closed stream gives its slot back.
  held.back()->Close();
  held.pop_back();
  std::unique_ptr<Watch> again;
  EXPECT_TRUE(Eventually([&] {
    again = Open(alice_, Board(bv1::SCOPE_ORG));
    return again->open;
  })) << again->status.error_message();
}

TEST_F(LeaderboardWatchAttackTest, WatchLeaderboard_ServicePrincipalIsNotChargedPersonSlots) {
  // The gateway opens one shared upstream watch per board with its service
  // token and charges each of its clients itself.
  StartLeaderboard({"--max_streams_per_person=2"});
  std::string gateway = ServiceToken(kOrg);
  std::vector<std::unique_ptr<Watch>> held;
  for (int i = 0; i < 5; ++i) {
    held.push_back(Open(gateway, i % 2 == 0 ? Board(bv1::SCOPE_ORG)
                                            : Board(bv1::SCOPE_TEAM, "core")));
    EXPECT_TRUE(held.back()->open) << i << ": " << held.back()->status.error_message();
  }
}

TEST_F(LeaderboardWatchAttackTest, WatchLeaderboard_RefusesBoardsPastTheOrgsCap) {
  StartLeaderboard({"--max_watched_boards_per_org=2"});
  std::vector<std::unique_ptr<Watch>> held;
  held.push_back(Open(alice_, Board(bv1::SCOPE_ORG, "", bv1::WINDOW_DAY)));
  held.push_back(Open(alice_, Board(bv1::SCOPE_ORG, "", bv1::WINDOW_WEEK)));
  for (const auto& watch : held) ASSERT_TRUE(watch->open) << watch->status.error_message();
  // A third distinct board of the org is refused, by anyone of the org...
  std::unique_ptr<Watch> third = Open(bob_, Board(bv1::SCOPE_ORG, "", bv1::WINDOW_MONTH));
  EXPECT_FALSE(third->open);
  EXPECT_EQ(third->status.error_code(), grpc::RESOURCE_EXHAUSTED)
      << third->status.error_message();
  EXPECT_NE(third->status.error_message().find("boards"), std::string::npos)
      << third->status.error_message();
  EXPECT_FALSE(third->Trailer("retry-after-ms").empty());
  // ... and by a service too (the gateway cannot be used to get around it).
  std::unique_ptr<Watch> via_service = Open(ServiceToken(kOrg), Board(bv1::SCOPE_TEAM, "core"));
  EXPECT_EQ(via_service->status.error_code(), grpc::RESOURCE_EXHAUSTED);
  // A board already watched still takes more watchers.
  std::unique_ptr<Watch> shared = Open(bob_, Board(bv1::SCOPE_ORG, "", bv1::WINDOW_DAY));
  EXPECT_TRUE(shared->open) << shared->status.error_message();
  // Another org's boards are not affected by this org's use.
  std::string other = harness::MintToken(kOtherOrg, "carol", {"member"});
  std::unique_ptr<Watch> others = Open(other, Board(bv1::SCOPE_ORG, "", bv1::WINDOW_MONTH));
  EXPECT_TRUE(others->open) << others->status.error_message();
  // Once a board's last watcher leaves, its place is free again.
  held[1]->Close();
  std::unique_ptr<Watch> later;
  EXPECT_TRUE(Eventually([&] {
    later = Open(bob_, Board(bv1::SCOPE_ORG, "", bv1::WINDOW_MONTH));
    return later->open;
  })) << later->status.error_message();
}

TEST_F(LeaderboardWatchAttackTest, WatchLeaderboard_RefusesWatchersPastTheReplicasCap) {
  // Services are not charged per person, so one replica bounds its watchers.
  StartLeaderboard({"--max_board_watchers=4"});
  std::string gateway = ServiceToken(kOrg);
  std::vector<std::unique_ptr<Watch>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(Open(gateway, Board(bv1::SCOPE_ORG)));
    ASSERT_TRUE(held.back()->open) << i << ": " << held.back()->status.error_message();
  }
  std::unique_ptr<Watch> fifth = Open(gateway, Board(bv1::SCOPE_ORG));
  EXPECT_EQ(fifth->status.error_code(), grpc::RESOURCE_EXHAUSTED)
      << fifth->status.error_message();
  EXPECT_FALSE(fifth->Trailer("retry-after-ms").empty());
}

TEST_F(LeaderboardWatchAttackTest, WatchLeaderboard_RefusesPeriodsBeforeThePreviousOne) {
  StartLeaderboard({});
  using common::calendar::PeriodAt;
  using common::calendar::PeriodUnit;
  absl::Time now = absl::Now();
  auto week = [&](absl::Time t) {
    return PeriodAt(PeriodUnit::kWeek, t, absl::UTCTimeZone(), 1).key;
  };
  auto current = Open(alice_, Board(bv1::SCOPE_ORG, "", bv1::WINDOW_WEEK, week(now)));
  EXPECT_TRUE(current->open) << current->status.error_message();
  auto previous =
      Open(alice_, Board(bv1::SCOPE_ORG, "", bv1::WINDOW_WEEK, week(now - absl::Hours(24 * 7))));
  EXPECT_TRUE(previous->open) << previous->status.error_message();
  for (absl::Duration offset : {absl::Hours(-24 * 14), absl::Hours(-24 * 700), absl::Hours(24 * 7)}) {
    std::string period = week(now + offset);
    auto old = Open(alice_, Board(bv1::SCOPE_ORG, "", bv1::WINDOW_WEEK, period));
    EXPECT_FALSE(old->open) << period;
    EXPECT_EQ(old->status.error_code(), grpc::INVALID_ARGUMENT) << period;
    EXPECT_NE(old->status.error_message().find("board.period"), std::string::npos)
        << old->status.error_message();
  }
  // GetLeaderboard still reads older periods.
  EXPECT_TRUE(GetBoard(alice_, Board(bv1::SCOPE_ORG, "", bv1::WINDOW_WEEK,
                                     week(now - absl::Hours(24 * 14))))
                  .ok());
}

// ---------------------------------------------------------------- finding 16

TEST_F(LeaderboardWatchAttackTest, Boards_OfAnUnknownTeamOrValueAreNotFound) {
  StartLeaderboard({});
  struct Case {
    bv1::Scope scope;
    std::string scope_id;
    grpc::StatusCode want;
  };
  const std::vector<Case> cases = {
      {bv1::SCOPE_TEAM, "nope", grpc::NOT_FOUND},
      {bv1::SCOPE_VALUE, "nope", grpc::NOT_FOUND},
      {bv1::SCOPE_TEAM, "core", grpc::OK},       // known, empty board
      {bv1::SCOPE_VALUE, "teamwork", grpc::OK},  // in the default catalog
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.scope_id);
    bv1::Board board = Board(c.scope, c.scope_id);
    grpc::Status got = GetBoard(alice_, board);
    EXPECT_EQ(got.error_code(), c.want) << got.error_message();

    bv1::GetRankRequest rank;
    *rank.mutable_board() = board;
    rank.set_subject_id("alice");
    bv1::GetRankResponse rank_response;
    auto context = harness::Context(alice_);
    grpc::Status ranked = stub_->GetRank(context.get(), rank, &rank_response);
    EXPECT_EQ(ranked.error_code(), c.want) << ranked.error_message();

    std::unique_ptr<Watch> watch = Open(alice_, board);
    EXPECT_EQ(watch->open ? grpc::OK : watch->status.error_code(), c.want)
        << watch->status.error_message();
    if (c.want == grpc::NOT_FOUND) {
      EXPECT_NE(got.error_message().find("'" + c.scope_id + "'"), std::string::npos)
          << got.error_message();
    }
  }
}

TEST_F(LeaderboardWatchAttackTest, Boards_AnotherOrgsTeamIsNotFound) {
  StartLeaderboard({});
  std::string globex_admin = harness::MintToken(kOtherOrg, "root", {"admin"});
  auto directory = kv1::DirectoryService::NewStub(
      grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials()));
  kv1::CreateTeamRequest team;
  team.mutable_team()->set_team_id("globex-only");
  team.mutable_team()->set_display_name("Globex only");
  kv1::CreateTeamResponse created;
  auto context = harness::Context(globex_admin);
  ASSERT_TRUE(directory->CreateTeam(context.get(), team, &created).ok());
  ASSERT_TRUE(Eventually(
      [&] { return GetBoard(globex_admin, Board(bv1::SCOPE_TEAM, "globex-only")).ok(); }));
  // acme sees no team of globex's.
  grpc::Status got = GetBoard(alice_, Board(bv1::SCOPE_TEAM, "globex-only"));
  EXPECT_EQ(got.error_code(), grpc::NOT_FOUND) << got.error_message();
  std::unique_ptr<Watch> watch = Open(alice_, Board(bv1::SCOPE_TEAM, "globex-only"));
  EXPECT_EQ(watch->status.error_code(), grpc::NOT_FOUND) << watch->status.error_message();
}

}  // namespace
