// RetractKudos (issue 18 part 6) over the real kudos and ledger binaries: the
// ledger reverses the kudos' and its boosts' transfers with linked RETRACTION
// transfers (VerifyLedger still consistent, balances back), one
// KudosRetracted event, one audit record naming the admin, its reports
// closed, a retry a no-op, an interrupted retraction finished by a retry.
#include <gtest/gtest.h>

#include "tests/kudos/social_test_helpers.h"

namespace {

using harness::Context;
using social_test::SocialFixture;

class SocialRetractTest : public SocialFixture {};

TEST_F(SocialRetractTest, RetractKudos_ReversesKudosAndBoostsAndARetryIsANoOp) {
  const std::string kept = Send("alice", "k0", {"bob"}, 2);
  const std::string kudos_id = Send("alice", "k1", {"bob", "olga"}, 5);
  ASSERT_TRUE(Boost("carol", kudos_id, "b1", 3).ok());
  ASSERT_EQ(Earned("bob"), 10);
  ASSERT_EQ(Earned("olga"), 8);
  ASSERT_EQ(Spent("alice"), 12);
  ASSERT_EQ(Spent("carol"), 6);
  kudos::v1::ReportKudosRequest report;
  report.set_kudos_id(kudos_id);
  report.set_reason("offensive");
  kudos::v1::ReportKudosResponse reported;
  ASSERT_TRUE(social_->ReportKudos(Context(Token("dave")).get(), report, &reported).ok());

  kudos::v1::RetractKudosResponse retracted;
  grpc::Status status = Retract(admin_, kudos_id, "x1", &retracted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(retracted.kudos().retracted());
  EXPECT_EQ(retracted.kudos().boosts_size(), 1);
  EXPECT_EQ(retracted.reversal_transfer_ids_size(), 4);  // 2 recipients x (kudos + boost)
  EXPECT_EQ(retracted.reports_closed(), 1);
  EXPECT_EQ(Earned("bob"), 2);  // the other kudos stays
  EXPECT_EQ(Earned("olga"), 0);
  EXPECT_TRUE(LedgerConsistent());

  // The kudos is gone from public reads; the stream and the audit say so once.
  EXPECT_EQ(GetKudos("carol", kudos_id).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(GetKudos("carol", kept).ok());
  auto events = KudosEvents(kudos::v1::KudosEvent::kKudosRetracted);
  ASSERT_EQ(events.size(), 1u);
  const kudos::v1::KudosRetracted& event = events[0].kudos_retracted();
  EXPECT_EQ(event.kudos().kudos_id(), kudos_id);
  EXPECT_EQ(event.kudos().boosts_size(), 1);
  EXPECT_EQ(event.retracted_by(), "root");
  EXPECT_EQ(event.reason(), "abusive message");
  EXPECT_EQ(event.giver_team_id(), "eng");
  EXPECT_EQ(event.recipient_team_ids().at("bob"), "ops");
  auto audit = AuditEntries("retract_kudos");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0]["actor"], "root");
  EXPECT_EQ(audit[0]["target"], kudos_id);
  EXPECT_EQ(audit[0]["reason"], "abusive message");

  // A retry with the same request_id: the same answer, nothing more.
  kudos::v1::RetractKudosResponse again;
  ASSERT_TRUE(Retract(admin_, kudos_id, "x1", &again).ok());
  EXPECT_EQ(again.reversal_transfer_ids().size(), retracted.reversal_transfer_ids().size());
  EXPECT_EQ(again.reports_closed(), 1);
  EXPECT_EQ(Earned("bob"), 2);
  EXPECT_EQ(Earned("olga"), 0);
  EXPECT_EQ(KudosEvents(kudos::v1::KudosEvent::kKudosRetracted).size(), 1u);
  EXPECT_EQ(AuditEntries("retract_kudos").size(), 1u);
  EXPECT_TRUE(LedgerConsistent());
  // Another request_id for the same kudos: it is already retracted.
  grpc::Status twice = Retract(admin_, kudos_id, "x2");
  EXPECT_EQ(twice.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << twice.error_message();
  // The request_id of a retraction cannot retract another kudos.
  EXPECT_EQ(Retract(admin_, kept, "x1").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // This period's kudos and boost no longer count against the giver's and the
  // booster's allowance (services/ledger/README.md, "Retraction").
  EXPECT_EQ(Spent("alice"), 2);
  EXPECT_EQ(Spent("carol"), 0);
}

TEST_F(SocialRetractTest, RetractKudos_InterruptedByALedgerOutageIsFinishedByARetry) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5);
  ASSERT_EQ(Earned("bob"), 5);
  ledger_->Stop();
  grpc::Status down = Retract(admin_, kudos_id, "x1");
  EXPECT_FALSE(down.ok());
  // The kudos is already hidden (marked first), its points not yet reversed,
  // and nothing was announced.
  EXPECT_EQ(GetKudos("carol", kudos_id).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(KudosEvents(kudos::v1::KudosEvent::kKudosRetracted).empty());
  EXPECT_TRUE(AuditEntries("retract_kudos").empty());
  ledger_->Start();
  kudos::v1::RetractKudosResponse finished;
  grpc::Status status;
  // Retry as a client would, until the ledger answers again (bounded).
  for (int attempt = 0; attempt < 60; ++attempt) {
    status = Retract(admin_, kudos_id, "x1", &finished);
    if (status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(finished.reversal_transfer_ids_size(), 1);
  EXPECT_EQ(Earned("bob"), 0);
  EXPECT_TRUE(LedgerConsistent());
  EXPECT_EQ(KudosEvents(kudos::v1::KudosEvent::kKudosRetracted).size(), 1u);
  EXPECT_EQ(AuditEntries("retract_kudos").size(), 1u);
}

TEST_F(SocialRetractTest, RetractKudos_EachRefusalHasItsStatus) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5);
  grpc::Status member = Retract(Token("carol"), kudos_id, "x1");
  EXPECT_EQ(member.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Retract(admin_, "k-nope", "x1").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Retract(admin_, kudos_id, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Retract(admin_, kudos_id, "x1", nullptr, "").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Earned("bob"), 5);

  // An ABORTED kudos (the ledger refused its points): nothing to retract.
  kudos::v1::UpdateOrgSettingsRequest settings;
  kudos::v1::GetOrgSettingsResponse current;
  ASSERT_TRUE(directory_->GetOrgSettings(Context(admin_).get(), {}, &current).ok());
  *settings.mutable_settings() = current.settings();
  settings.mutable_settings()->mutable_allowance()->set_points_per_period(6);
  kudos::v1::UpdateOrgSettingsResponse updated;
  ASSERT_TRUE(directory_->UpdateOrgSettings(Context(admin_).get(), settings, &updated).ok());
  kudos::v1::SendKudosRequest over;
  over.set_request_id("k2");
  over.add_recipient_ids("olga");
  over.set_message("Thank you for following up so quickly!");
  over.add_values("consistent-follow-up");
  over.set_points_per_recipient(5);
  kudos::v1::SendKudosResponse sent;
  grpc::Status refused = kudos_stub_->SendKudos(Context(Token("alice")).get(), over, &sent);
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  // The refused kudos' id, from its record (on whichever node holds the org).
  std::string aborted_id;
  for (const std::string& node : Redis().Primaries()) {
    absl::StatusOr<common::redis::Reply> keys =
        Redis().RunOn(node, {"KEYS", std::string("kudos:{") + social_test::kOrg + "}:kudos:*"});
    ASSERT_TRUE(keys.ok()) << keys.status();
    for (const auto& key : keys->elements) {
      const std::string id = key.str.substr(key.str.rfind(':') + 1);
      if (id != kudos_id) aborted_id = id;
    }
  }
  ASSERT_FALSE(aborted_id.empty());
  grpc::Status nothing = Retract(admin_, aborted_id, "x3");
  EXPECT_EQ(nothing.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(nothing.error_message().find("ABORTED"), std::string::npos) << nothing.error_message();
}

TEST_F(SocialRetractTest, RetractKudos_ARetractedKudosTakesNoCommentsAndOnlyAdminsReadThem) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5);
  kudos::v1::AddCommentRequest comment;
  comment.set_kudos_id(kudos_id);
  comment.set_request_id("c1");
  comment.set_text("hmm");
  kudos::v1::AddCommentResponse added;
  ASSERT_TRUE(social_->AddComment(Context(Token("carol")).get(), comment, &added).ok());
  ASSERT_TRUE(Retract(admin_, kudos_id, "x1").ok());
  comment.set_request_id("c2");
  EXPECT_EQ(social_->AddComment(Context(Token("carol")).get(), comment, &added).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(social_->AddComment(Context(admin_).get(), comment, &added).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  kudos::v1::ListCommentsRequest list;
  list.set_kudos_id(kudos_id);
  kudos::v1::ListCommentsResponse listed;
  EXPECT_EQ(social_->ListComments(Context(Token("carol")).get(), list, &listed).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(social_->ListComments(Context(admin_).get(), list, &listed).ok());
  EXPECT_EQ(listed.comments_size(), 1);
}

}  // namespace
