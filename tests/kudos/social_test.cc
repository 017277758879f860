// Comments, emoji reactions and reports on a kudos (issue 18 part 6), over
// the real kudos and ledger binaries and a real redis-server: every rule, the
// bounds (hit with small flags), idempotency, who may see a private kudos.
#include <gtest/gtest.h>

#include "tests/kudos/social_test_helpers.h"

namespace {

using harness::Context;
using social_test::kOrg;
using social_test::SocialFixture;

class SocialTest : public SocialFixture {
 protected:
  std::vector<std::string> KudosFlags() override {
    return {"--max_comments_per_kudos=3", "--max_reactions_per_kudos=4",
            "--max_open_reports_per_org=2", "--max_closed_reports_per_org=2"};
  }

  grpc::Status Comment(const std::string& who, const std::string& kudos_id,
                       const std::string& request_id, const std::string& text,
                       kudos::v1::Comment* out = nullptr) {
    kudos::v1::AddCommentRequest request;
    request.set_kudos_id(kudos_id);
    request.set_request_id(request_id);
    request.set_text(text);
    kudos::v1::AddCommentResponse response;
    grpc::Status status = social_->AddComment(Context(Token(who)).get(), request, &response);
    if (out != nullptr) *out = response.comment();
    return status;
  }

  std::vector<kudos::v1::Comment> Comments(const std::string& who, const std::string& kudos_id,
                                           int page_size = 2) {
    std::vector<kudos::v1::Comment> all;
    std::string token;
    for (int page = 0; page < 100; ++page) {
      kudos::v1::ListCommentsRequest request;
      request.set_kudos_id(kudos_id);
      request.set_page_size(page_size);
      request.set_page_token(token);
      kudos::v1::ListCommentsResponse response;
      grpc::Status status = social_->ListComments(Context(Token(who)).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      all.insert(all.end(), response.comments().begin(), response.comments().end());
      token = response.next_page_token();
      if (token.empty()) break;
    }
    return all;
  }

  grpc::Status DeleteComment(const std::string& token, const std::string& kudos_id,
                             const std::string& comment_id) {
    kudos::v1::DeleteCommentRequest request;
    request.set_kudos_id(kudos_id);
    request.set_comment_id(comment_id);
    kudos::v1::DeleteCommentResponse response;
    return social_->DeleteComment(Context(token).get(), request, &response);
  }

  grpc::Status React(const std::string& who, const std::string& kudos_id, const std::string& emoji,
                     bool add, std::vector<kudos::v1::ReactionCount>* out = nullptr) {
    grpc::Status status;
    google::protobuf::RepeatedPtrField<kudos::v1::ReactionCount> reactions;
    if (add) {
      kudos::v1::AddReactionRequest request;
      request.set_kudos_id(kudos_id);
      request.set_emoji(emoji);
      kudos::v1::AddReactionResponse response;
      status = social_->AddReaction(Context(Token(who)).get(), request, &response);
      reactions = response.reactions();
    } else {
      kudos::v1::RemoveReactionRequest request;
      request.set_kudos_id(kudos_id);
      request.set_emoji(emoji);
      kudos::v1::RemoveReactionResponse response;
      status = social_->RemoveReaction(Context(Token(who)).get(), request, &response);
      reactions = response.reactions();
    }
    if (out != nullptr) out->assign(reactions.begin(), reactions.end());
    return status;
  }

  std::map<std::string, int64_t> Counts(const std::string& who, const std::string& kudos_id,
                                        std::vector<std::string>* mine = nullptr) {
    kudos::v1::GetReactionsRequest request;
    request.set_kudos_id(kudos_id);
    kudos::v1::GetReactionsResponse response;
    grpc::Status status = social_->GetReactions(Context(Token(who)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::map<std::string, int64_t> counts;
    for (const auto& reaction : response.reactions()) {
      counts[reaction.emoji()] = reaction.count();
      if (mine != nullptr && reaction.reacted_by_me()) mine->push_back(reaction.emoji());
    }
    return counts;
  }

  grpc::Status Report(const std::string& who, const std::string& kudos_id,
                      const std::string& reason, kudos::v1::ReportKudosResponse* out = nullptr) {
    kudos::v1::ReportKudosRequest request;
    request.set_kudos_id(kudos_id);
    request.set_reason(reason);
    kudos::v1::ReportKudosResponse response;
    grpc::Status status = social_->ReportKudos(Context(Token(who)).get(), request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  std::vector<kudos::v1::Report> Reports(const std::string& token, bool open_only = false) {
    std::vector<kudos::v1::Report> all;
    std::string page_token;
    for (int page = 0; page < 100; ++page) {
      kudos::v1::ListReportsRequest request;
      request.set_page_size(1);
      request.set_page_token(page_token);
      request.set_open_only(open_only);
      kudos::v1::ListReportsResponse response;
      grpc::Status status = social_->ListReports(Context(token).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      all.insert(all.end(), response.reports().begin(), response.reports().end());
      page_token = response.next_page_token();
      if (page_token.empty()) break;
    }
    return all;
  }

  grpc::Status Dismiss(const std::string& token, const std::string& report_id,
                       kudos::v1::Report* out = nullptr) {
    kudos::v1::DismissReportRequest request;
    request.set_report_id(report_id);
    request.set_note("looked fine");
    kudos::v1::DismissReportResponse response;
    grpc::Status status = social_->DismissReport(Context(token).get(), request, &response);
    if (out != nullptr) *out = response.report();
    return status;
  }
};

TEST_F(SocialTest, Comments_ListOldestFirstAcrossPagesAndRetryReturnsTheSameComment) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5);
  kudos::v1::Comment first, again;
  ASSERT_TRUE(Comment("carol", kudos_id, "c1", "Well deserved!", &first).ok());
  ASSERT_TRUE(Comment("bob", kudos_id, "c1", "Thanks all").ok());
  ASSERT_TRUE(Comment("carol", kudos_id, "c1", "Well deserved!", &again).ok());  // a retry
  EXPECT_EQ(again.comment_id(), first.comment_id());
  EXPECT_EQ(again.SerializeAsString(), first.SerializeAsString());
  grpc::Status reused = Comment("carol", kudos_id, "c1", "Something else");
  EXPECT_EQ(reused.error_code(), grpc::StatusCode::ALREADY_EXISTS) << reused.error_message();
  std::vector<kudos::v1::Comment> listed = Comments("dave", kudos_id, 1);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].author_id(), "carol");
  EXPECT_EQ(listed[0].text(), "Well deserved!");
  EXPECT_EQ(listed[1].author_id(), "bob");
}

TEST_F(SocialTest, AddComment_EachBadInputHasItsStatus) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5);
  EXPECT_EQ(Comment("carol", kudos_id, "a", "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Comment("carol", kudos_id, "b", "   ").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status too_long = Comment("carol", kudos_id, "c", std::string(501, 'x'));
  EXPECT_EQ(too_long.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(too_long.error_message(), "text: 501 characters, at most 500");
  // 500 characters of a multi-byte letter are fine (code points, not bytes).
  std::string accents;
  for (int i = 0; i < 500; ++i) accents += "\xC3\xA9";
  EXPECT_TRUE(Comment("carol", kudos_id, "d", accents).ok());
  EXPECT_EQ(Comment("carol", kudos_id, "", "hi").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status unknown = Comment("carol", "k-nope", "e", "hi");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(unknown.error_message(), "kudos_id: 'k-nope' does not exist");
  EXPECT_EQ(Comment("stranger", kudos_id, "f", "hi").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  kudos::v1::AddCommentRequest request;
  request.set_kudos_id(kudos_id);
  request.set_request_id("g");
  request.set_text("hi");
  kudos::v1::AddCommentResponse response;
  EXPECT_EQ(social_
                ->AddComment(Context(harness::MintToken(kOrg, "lobby", {"screen"})).get(), request,
                             &response)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(SocialTest, AddComment_PastTheBoundPerKudosIsResourceExhaustedUntilOneIsDeleted) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5);
  std::vector<kudos::v1::Comment> added(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Comment("carol", kudos_id, "c" + std::to_string(i), "nice", &added[i]).ok());
  }
  grpc::Status full = Comment("carol", kudos_id, "c3", "nice");
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << full.error_message();
  EXPECT_EQ(Comments("carol", kudos_id).size(), 3u);
  ASSERT_TRUE(DeleteComment(Token("carol"), kudos_id, added[0].comment_id()).ok());
  EXPECT_TRUE(Comment("carol", kudos_id, "c3", "nice").ok());
}

TEST_F(SocialTest, DeleteComment_ByItsAuthorOrAnAdminAuditedOnlyForTheAdmin) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5);
  kudos::v1::Comment mine, theirs;
  ASSERT_TRUE(Comment("carol", kudos_id, "c1", "mine", &mine).ok());
  ASSERT_TRUE(Comment("dave", kudos_id, "c1", "rude words", &theirs).ok());
  EXPECT_EQ(DeleteComment(Token("carol"), kudos_id, theirs.comment_id()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(DeleteComment(Token("carol"), kudos_id, mine.comment_id()).ok());
  EXPECT_EQ(DeleteComment(Token("carol"), kudos_id, mine.comment_id()).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(AuditEntries("delete_comment").empty());
  ASSERT_TRUE(DeleteComment(admin_, kudos_id, theirs.comment_id()).ok());
  auto audit = AuditEntries("delete_comment");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0]["actor"], "root");
  EXPECT_EQ(audit[0]["target"], kudos_id + "/" + theirs.comment_id());
  EXPECT_TRUE(Comments("carol", kudos_id).empty());
  EXPECT_EQ(DeleteComment(Token("carol"), kudos_id, "bad id!").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SocialTest, Reactions_OnePerPersonPerEmojiWithCountsPerEmoji) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5);
  ASSERT_TRUE(React("carol", kudos_id, "thumbsup", true).ok());
  ASSERT_TRUE(React("carol", kudos_id, "\xF0\x9F\x91\x8D", true).ok());  // the same, as the emoji
  ASSERT_TRUE(React("dave", kudos_id, ":thumbsup:", true).ok());
  std::vector<kudos::v1::ReactionCount> after;
  ASSERT_TRUE(React("dave", kudos_id, "tada", true, &after).ok());
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].emoji(), "thumbsup");
  EXPECT_EQ(after[0].count(), 2);
  EXPECT_TRUE(after[0].reacted_by_me());
  EXPECT_EQ(after[1].emoji(), "tada");
  EXPECT_EQ(after[1].count(), 1);
  std::vector<std::string> mine;
  EXPECT_EQ(Counts("carol", kudos_id, &mine),
            (std::map<std::string, int64_t>{{"thumbsup", 2}, {"tada", 1}}));
  EXPECT_EQ(mine, std::vector<std::string>{"thumbsup"});
  ASSERT_TRUE(React("carol", kudos_id, "thumbsup", false).ok());
  ASSERT_TRUE(React("carol", kudos_id, "thumbsup", false).ok());  // removing again: no change
  EXPECT_EQ(Counts("carol", kudos_id),
            (std::map<std::string, int64_t>{{"thumbsup", 1}, {"tada", 1}}));
  grpc::Status bad = React("carol", kudos_id, "poop", true);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("thumbsup"), std::string::npos) << bad.error_message();
}

TEST_F(SocialTest, AddReaction_PastTheBoundPerKudosIsResourceExhausted) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5);
  for (const char* emoji : {"thumbsup", "heart", "clap", "tada"}) {
    ASSERT_TRUE(React("carol", kudos_id, emoji, true).ok()) << emoji;
  }
  grpc::Status full = React("dave", kudos_id, "fire", true);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << full.error_message();
  EXPECT_TRUE(React("carol", kudos_id, "thumbsup", true).ok());  // already there: no change
  ASSERT_TRUE(React("carol", kudos_id, "heart", false).ok());
  EXPECT_TRUE(React("dave", kudos_id, "fire", true).ok());
}

TEST_F(SocialTest, PrivateKudos_OnlyThoseWhoSeeItMayCommentReactOrReport) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5, kudos::v1::KUDOS_VISIBILITY_PRIVATE);
  for (const char* outsider : {"carol", "olga"}) {
    grpc::Status comment = Comment(outsider, kudos_id, "c1", "hi");
    EXPECT_EQ(comment.error_code(), grpc::StatusCode::NOT_FOUND) << outsider;
    EXPECT_EQ(comment.error_message(), "kudos_id: '" + kudos_id + "' does not exist");
    EXPECT_EQ(React(outsider, kudos_id, "heart", true).error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(Report(outsider, kudos_id, "spam").error_code(), grpc::StatusCode::NOT_FOUND);
    kudos::v1::ListCommentsRequest list;
    list.set_kudos_id(kudos_id);
    kudos::v1::ListCommentsResponse listed;
    EXPECT_EQ(social_->ListComments(Context(Token(outsider)).get(), list, &listed).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  // The giver, the recipient and the recipient's manager see it.
  for (const char* insider : {"alice", "bob", "mona"}) {
    EXPECT_TRUE(Comment(insider, kudos_id, "c1", "hi").ok()) << insider;
    EXPECT_TRUE(React(insider, kudos_id, "heart", true).ok()) << insider;
  }
  EXPECT_EQ(Counts("bob", kudos_id), (std::map<std::string, int64_t>{{"heart", 3}}));
  EXPECT_EQ(Comments("mona", kudos_id).size(), 3u);
}

TEST_F(SocialTest, Reports_OneOpenPerReporterPerKudosOpenFirstAndDismissedByAdmins) {
  const std::string k1 = Send("alice", "k1", {"bob"}, 5);
  const std::string k2 = Send("alice", "k2", {"olga"}, 5);
  kudos::v1::ReportKudosResponse first, again, other;
  ASSERT_TRUE(Report("carol", k1, "inappropriate", &first).ok());
  EXPECT_TRUE(first.created());
  EXPECT_EQ(first.report().state(), kudos::v1::REPORT_STATE_OPEN);
  ASSERT_TRUE(Report("carol", k1, "inappropriate!", &again).ok());
  EXPECT_FALSE(again.created());
  EXPECT_EQ(again.report().report_id(), first.report().report_id());
  EXPECT_EQ(Report("carol", k1, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Report("carol", k1, std::string(501, 'x')).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  kudos::v1::ListReportsRequest list;
  kudos::v1::ListReportsResponse listed;
  EXPECT_EQ(social_->ListReports(Context(Token("carol")).get(), list, &listed).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Dismiss(Token("carol"), first.report().report_id()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  kudos::v1::Report dismissed;
  ASSERT_TRUE(Dismiss(admin_, first.report().report_id(), &dismissed).ok());
  EXPECT_EQ(dismissed.state(), kudos::v1::REPORT_STATE_DISMISSED);
  EXPECT_EQ(dismissed.resolved_by(), "root");
  EXPECT_TRUE(Dismiss(admin_, first.report().report_id()).ok());  // a retry
  EXPECT_EQ(Dismiss(admin_, "r0000").error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(AuditEntries("dismiss_report").size(), 1u);
  EXPECT_EQ(AuditEntries("dismiss_report")[0]["actor"], "root");

  // Closed, carol may report k1 again: a new open report.
  ASSERT_TRUE(Report("carol", k1, "still inappropriate", &again).ok());
  EXPECT_TRUE(again.created());
  EXPECT_NE(again.report().report_id(), first.report().report_id());
  ASSERT_TRUE(Report("dave", k2, "spam", &other).ok());
  std::vector<kudos::v1::Report> all = Reports(admin_);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].report_id(), again.report().report_id());  // open, oldest first
  EXPECT_EQ(all[1].report_id(), other.report().report_id());
  EXPECT_EQ(all[2].report_id(), first.report().report_id());  // then closed
  EXPECT_EQ(Reports(admin_, /*open_only=*/true).size(), 2u);
}

TEST_F(SocialTest, ReportKudos_PastTheOpenBoundPerOrgIsResourceExhaustedAndClosedAreTrimmed) {
  const std::string kudos_id = Send("alice", "k1", {"bob"}, 5);
  kudos::v1::ReportKudosResponse a, b;
  ASSERT_TRUE(Report("carol", kudos_id, "spam", &a).ok());
  ASSERT_TRUE(Report("dave", kudos_id, "spam", &b).ok());
  grpc::Status full = Report("olga", kudos_id, "spam");
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << full.error_message();
  ASSERT_TRUE(Dismiss(admin_, a.report().report_id()).ok());
  kudos::v1::ReportKudosResponse c, d;
  ASSERT_TRUE(Report("olga", kudos_id, "spam", &c).ok());
  ASSERT_TRUE(Dismiss(admin_, b.report().report_id()).ok());
  ASSERT_TRUE(Dismiss(admin_, c.report().report_id()).ok());
  // Three closed, two kept: the oldest closed one is gone.
  std::vector<kudos::v1::Report> all = Reports(admin_);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].report_id(), c.report().report_id());
  EXPECT_EQ(all[1].report_id(), b.report().report_id());
}

}  // namespace
