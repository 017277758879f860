// Issue 18 part 6 end to end: kudos, ledger and leaderboard binaries over real
// gRPC and a real redis-server. A retracted kudos leaves the boards, the
// ledger stays consistent and a rebuild from the streams agrees with live; a
// private kudos pays its recipient and shows on no board; a person who hides
// leaves the others' boards and comes back when they unhide.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "tests/harness/eventually.h"
#include "tests/kudos/social_test_helpers.h"

namespace {

namespace lb = leaderboard::v1;
using social_test::kOrg;

class KudosShapeEndToEnd : public social_test::SocialFixture {
 protected:
  void SetUp() override {
    SocialFixture::SetUp();
    board_service_ = std::make_unique<harness::Service>(
        LEADERBOARD_BINARY, redis_->address(),
        std::vector<std::string>{"--ledger=" + ledger_->address()});
    boards_ = lb::LeaderboardService::NewStub(
        grpc::CreateChannel(board_service_->address(), grpc::InsecureChannelCredentials()));
  }

  // subject -> score of an all-time org board, as `viewer` reads it.
  std::map<std::string, int64_t> Board(lb::Metric metric, const std::string& viewer = "alice") {
    lb::GetLeaderboardRequest request;
    request.mutable_board()->set_metric(metric);
    request.mutable_board()->set_window(lb::WINDOW_ALL_TIME);
    request.mutable_board()->set_scope(lb::SCOPE_ORG);
    request.set_page_size(100);
    lb::GetLeaderboardResponse response;
    grpc::Status status =
        boards_->GetLeaderboard(harness::Context(Token(viewer)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::map<std::string, int64_t> scores;
    for (const lb::LeaderboardEntry& entry : response.entries()) {
      if (entry.score() != 0) scores[entry.subject_id()] = entry.score();
    }
    return scores;
  }

  // Waits until `who` has `score` on the board (absent counts as 0).
  bool BoardShows(lb::Metric metric, const std::string& who, int64_t score,
                  const std::string& viewer = "alice") {
    return harness::Eventually(
        [&] {
          auto scores = Board(metric, viewer);
          auto it = scores.find(who);
          return (it == scores.end() ? 0 : it->second) == score;
        },
        std::chrono::seconds(30));
  }

  void SetHidden(const std::string& who, bool hidden) {
    kudos::v1::GetPersonRequest get;
    get.set_person_id(who);
    kudos::v1::GetPersonResponse person;
    grpc::Status status = directory_->GetPerson(harness::Context(Token(who)).get(), get, &person);
    ASSERT_TRUE(status.ok()) << status.error_message();
    kudos::v1::UpdatePersonRequest update;
    *update.mutable_person() = person.person();
    update.mutable_person()->set_hidden_from_leaderboards(hidden);
    kudos::v1::UpdatePersonResponse updated;
    status = directory_->UpdatePerson(harness::Context(Token(who)).get(), update, &updated);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  std::unique_ptr<harness::Service> board_service_;
  std::unique_ptr<lb::LeaderboardService::Stub> boards_;
};

TEST_F(KudosShapeEndToEnd, Retraction_BoardsLedgerAndARebuildAllTakeItBack) {
  std::string retracted = Send("alice", "k1", {"bob"}, 5);
  ASSERT_FALSE(retracted.empty());
  grpc::Status boosted = Boost("carol", retracted, "b1", 3);
  ASSERT_TRUE(boosted.ok()) << boosted.error_message();
  ASSERT_FALSE(Send("dave", "k2", {"bob"}, 2).empty());
  ASSERT_TRUE(BoardShows(lb::METRIC_POINTS_RECEIVED, "bob", 10));
  ASSERT_TRUE(BoardShows(lb::METRIC_KUDOS_RECEIVED, "bob", 2));

  grpc::Status status = Retract(admin_, retracted, "r1");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(BoardShows(lb::METRIC_POINTS_RECEIVED, "bob", 2)) << "5 + 3 taken back, 2 kept";
  EXPECT_TRUE(BoardShows(lb::METRIC_KUDOS_RECEIVED, "bob", 1));
  EXPECT_TRUE(BoardShows(lb::METRIC_KUDOS_GIVEN, "alice", 0));
  EXPECT_EQ(Earned("bob"), 2);
  EXPECT_TRUE(LedgerConsistent());
  // A retry is a no-op everywhere.
  ASSERT_TRUE(Retract(admin_, retracted, "r1").ok());
  EXPECT_EQ(Earned("bob"), 2);

  std::map<std::string, int64_t> points = Board(lb::METRIC_POINTS_RECEIVED);
  std::map<std::string, int64_t> received = Board(lb::METRIC_KUDOS_RECEIVED);
  std::map<std::string, int64_t> given = Board(lb::METRIC_KUDOS_GIVEN);
  lb::RebuildProjectionsResponse rebuilt;
  status = boards_->RebuildProjections(harness::Context(admin_).get(),
                                       lb::RebuildProjectionsRequest(), &rebuilt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Board(lb::METRIC_POINTS_RECEIVED), points) << "rebuilt from the streams";
  EXPECT_EQ(Board(lb::METRIC_KUDOS_RECEIVED), received);
  EXPECT_EQ(Board(lb::METRIC_KUDOS_GIVEN), given);
}

TEST_F(KudosShapeEndToEnd, PrivateKudos_PaysItsRecipientAndShowsOnNoBoard) {
  ASSERT_FALSE(Send("alice", "p1", {"olga"}, 4, kudos::v1::KUDOS_VISIBILITY_PRIVATE).empty());
  // A public kudos after it: once it counts, the private one was read too.
  ASSERT_FALSE(Send("dave", "k1", {"carol"}, 1).empty());
  ASSERT_TRUE(BoardShows(lb::METRIC_POINTS_RECEIVED, "carol", 1));
  for (lb::Metric metric : {lb::METRIC_POINTS_RECEIVED, lb::METRIC_KUDOS_RECEIVED}) {
    EXPECT_EQ(Board(metric).count("olga"), 0u) << lb::Metric_Name(metric);
    EXPECT_EQ(Board(metric, "olga").count("olga"), 0u) << "not even on her own read";
  }
  EXPECT_EQ(Board(lb::METRIC_KUDOS_GIVEN).count("alice"), 0u);
  EXPECT_EQ(Earned("olga"), 4);
  EXPECT_TRUE(LedgerConsistent());
}

TEST_F(KudosShapeEndToEnd, HiddenPerson_LeavesOthersBoardsAndComesBackWhenUnhidden) {
  ASSERT_FALSE(Send("alice", "k1", {"bob"}, 3).empty());
  ASSERT_TRUE(BoardShows(lb::METRIC_POINTS_RECEIVED, "bob", 3));
  SetHidden("bob", true);
  EXPECT_TRUE(harness::Eventually(
      [&] { return Board(lb::METRIC_POINTS_RECEIVED).count("bob") == 0; },
      std::chrono::seconds(30)))
      << "bob hid himself";
  // His points still count: a kudos while hidden shows once he unhides.
  ASSERT_FALSE(Send("carol", "k2", {"bob"}, 2).empty());
  SetHidden("bob", false);
  EXPECT_TRUE(BoardShows(lb::METRIC_POINTS_RECEIVED, "bob", 5));
}

}  // namespace
