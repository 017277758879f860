#include "services/kudos/social_store.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/check/check.h"
#include "lua/kSocialAddCommentLua.h"
#include "lua/kSocialCloseReportsLua.h"
#include "lua/kSocialDeleteCommentLua.h"
#include "lua/kSocialReactLua.h"
#include "lua/kSocialReportLua.h"
#include "lua/kSocialRetractBeginLua.h"
#include "lua/kSocialRetractFinishLua.h"

namespace kudos {
namespace {

using common::redis::Reply;

std::string AuditTime(int64_t now_ms) {
  return absl::FormatTime(absl::RFC3339_sec, absl::FromUnixMillis(now_ms), absl::UTCTimeZone());
}

// A script's {tag, pb} answer.
absl::StatusOr<std::pair<std::string, std::string>> TagAndPb(const Reply& reply,
                                                             const char* script) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() != 2) {
    return absl::InternalError(absl::StrCat(script, ": unexpected reply"));
  }
  return std::make_pair(reply.elements[0].str, reply.elements[1].str);
}

template <typename Message>
absl::StatusOr<Message> Parse(const std::string& bytes, const char* what) {
  Message message;
  if (!message.ParseFromString(bytes)) {
    return absl::InternalError(absl::StrCat("stored ", what, " cannot be parsed"));
  }
  return message;
}

}  // namespace

SocialStore::SocialStore(common::redis::Pool& pool)
    : pool_(pool),
      add_comment_("social_add_comment", kSocialAddCommentLua),
      delete_comment_("social_delete_comment", kSocialDeleteCommentLua),
      react_("social_react", kSocialReactLua),
      report_("social_report", kSocialReportLua),
      close_reports_("social_close_reports", kSocialCloseReportsLua),
      retract_begin_("social_retract_begin", kSocialRetractBeginLua),
      retract_finish_("social_retract_finish", kSocialRetractFinishLua) {}

absl::StatusOr<SocialStore::AddedComment> SocialStore::AddComment(
    const std::string& org, const kudos::v1::Comment& comment, const std::string& request_id,
    int max_comments, int64_t expire_at_ms, int64_t request_ttl_s) {
  const std::string& kudos_id = comment.kudos_id();
  absl::StatusOr<Reply> reply =
      pool_.Eval(add_comment_,
                 {CommentsKey(org, kudos_id), CommentOrderKey(org, kudos_id),
                  CommentRequestKey(org, comment.author_id(), request_id)},
                 {comment.comment_id(), comment.SerializeAsString(), absl::StrCat(max_comments),
                  absl::StrCat(expire_at_ms), absl::StrCat(request_ttl_s)});
  if (!reply.ok()) return reply.status();
  absl::StatusOr<std::pair<std::string, std::string>> answer = TagAndPb(*reply, "add_comment");
  if (!answer.ok()) return answer.status();
  absl::StatusOr<kudos::v1::Comment> stored = Parse<kudos::v1::Comment>(answer->second, "comment");
  if (!stored.ok()) return stored.status();
  return AddedComment{*std::move(stored), answer->first == "CREATED"};
}

absl::StatusOr<std::optional<kudos::v1::Comment>> SocialStore::GetComment(
    const std::string& org, const std::string& kudos_id, const std::string& comment_id) {
  absl::StatusOr<Reply> reply = pool_.Run({"HGET", CommentsKey(org, kudos_id), comment_id});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::nullopt;
  absl::StatusOr<kudos::v1::Comment> comment = Parse<kudos::v1::Comment>(reply->str, "comment");
  if (!comment.ok()) return comment.status();
  return *comment;
}

absl::StatusOr<SocialStore::CommentPage> SocialStore::ListComments(const std::string& org,
                                                                   const std::string& kudos_id,
                                                                   int64_t after_seq, int limit) {
  absl::StatusOr<Reply> ids =
      pool_.Run({"ZRANGE", CommentOrderKey(org, kudos_id), absl::StrCat("(", after_seq), "+inf",
                 "BYSCORE", "LIMIT", "0", absl::StrCat(limit + 1), "WITHSCORES"});
  if (!ids.ok()) return ids.status();
  CommentPage page;
  common::redis::Command hmget = {"HMGET", CommentsKey(org, kudos_id)};
  std::vector<int64_t> seqs;
  for (size_t i = 0; i + 1 < ids->elements.size(); i += 2) {
    if (static_cast<int>(seqs.size()) == limit) {
      page.more = true;
      break;
    }
    hmget.push_back(ids->elements[i].str);
    int64_t seq = 0;
    if (!absl::SimpleAtoi(ids->elements[i + 1].str, &seq)) {
      return absl::InternalError("comment order: a score is not a sequence number");
    }
    seqs.push_back(seq);
  }
  if (seqs.empty()) return page;
  absl::StatusOr<Reply> pbs = pool_.Run(hmget);
  if (!pbs.ok()) return pbs.status();
  KUDOS_CHECK(pbs->elements.size() == seqs.size(), "HMGET answers for every comment id asked");
  for (size_t i = 0; i < seqs.size(); ++i) {
    page.last_seq = seqs[i];
    if (pbs->elements[i].is_nil()) continue;  // deleted between the two reads
    absl::StatusOr<kudos::v1::Comment> comment =
        Parse<kudos::v1::Comment>(pbs->elements[i].str, "comment");
    if (!comment.ok()) return comment.status();
    page.comments.push_back(*std::move(comment));
  }
  return page;
}

absl::Status SocialStore::DeleteComment(const std::string& org, const std::string& kudos_id,
                                        const std::string& comment_id, const std::string& actor,
                                        bool audit) {
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  return pool_
      .Eval(delete_comment_,
            {CommentsKey(org, kudos_id), CommentOrderKey(org, kudos_id),
             common::audit::StreamKey(org)},
            {comment_id, actor, audit ? "1" : "0", absl::StrCat(kudos_id, "/", comment_id),
             AuditTime(now_ms)})
      .status();
}

absl::StatusOr<ReactionState> SocialStore::React(const std::string& org,
                                                 const std::string& kudos_id, ReactionOp op,
                                                 const std::string& code, const std::string& person,
                                                 int max_reactions, int64_t expire_at_ms,
                                                 const std::vector<std::string>& codes) {
  const char* op_name = op == ReactionOp::kAdd      ? "add"
                        : op == ReactionOp::kRemove ? "remove"
                                                    : "get";
  std::vector<std::string> args = {op_name, code, person, absl::StrCat(max_reactions),
                                   absl::StrCat(expire_at_ms)};
  args.insert(args.end(), codes.begin(), codes.end());
  absl::StatusOr<Reply> reply =
      pool_.Eval(react_, {ReactionsKey(org, kudos_id), ReactorsKey(org, kudos_id)}, args);
  if (!reply.ok()) return reply.status();
  if (reply->type != Reply::Type::kArray || reply->elements.size() != 2) {
    return absl::InternalError("react: unexpected reply");
  }
  ReactionState state;
  const std::vector<Reply>& counts = reply->elements[0].elements;
  for (size_t i = 0; i + 1 < counts.size(); i += 2) {
    int64_t count = 0;
    if (!absl::SimpleAtoi(counts[i + 1].str, &count)) {
      return absl::InternalError("reactions: a count is not a number");
    }
    state.counts[counts[i].str] = count;
  }
  for (const Reply& mine : reply->elements[1].elements) state.mine.push_back(mine.str);
  return state;
}

absl::StatusOr<SocialStore::AddedReport> SocialStore::AddReport(const std::string& org,
                                                                const kudos::v1::Report& report,
                                                                int64_t now_ms, int max_open) {
  absl::StatusOr<Reply> reply = pool_.Eval(
      report_, {ReportsKey(org), OpenReportsKey(org), KudosReportsKey(org, report.kudos_id())},
      {report.report_id(), report.reporter_id(), report.SerializeAsString(), absl::StrCat(now_ms),
       absl::StrCat(max_open)});
  if (!reply.ok()) return reply.status();
  absl::StatusOr<std::pair<std::string, std::string>> answer = TagAndPb(*reply, "report");
  if (!answer.ok()) return answer.status();
  absl::StatusOr<kudos::v1::Report> stored = Parse<kudos::v1::Report>(answer->second, "report");
  if (!stored.ok()) return stored.status();
  return AddedReport{*std::move(stored), answer->first == "CREATED"};
}

absl::StatusOr<std::optional<std::pair<kudos::v1::Report, std::string>>> SocialStore::GetReport(
    const std::string& org, const std::string& report_id) {
  absl::StatusOr<Reply> reply = pool_.Run({"HGET", ReportsKey(org), report_id});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::nullopt;
  absl::StatusOr<kudos::v1::Report> report = Parse<kudos::v1::Report>(reply->str, "report");
  if (!report.ok()) return report.status();
  return std::make_pair(*std::move(report), reply->str);
}

absl::StatusOr<std::vector<std::pair<kudos::v1::Report, std::string>>> SocialStore::OpenReportsOf(
    const std::string& org, const std::string& kudos_id) {
  absl::StatusOr<Reply> ids = pool_.Run({"HVALS", KudosReportsKey(org, kudos_id)});
  if (!ids.ok()) return ids.status();
  std::vector<std::pair<kudos::v1::Report, std::string>> open;
  if (ids->elements.empty()) return open;
  common::redis::Command hmget = {"HMGET", ReportsKey(org)};
  for (const Reply& id : ids->elements) hmget.push_back(id.str);
  absl::StatusOr<Reply> pbs = pool_.Run(hmget);
  if (!pbs.ok()) return pbs.status();
  KUDOS_CHECK(pbs->elements.size() == ids->elements.size(),
              "HMGET answers for every report id asked");
  for (const Reply& pb : pbs->elements) {
    // A missing one makes the finishing script answer CHANGED (its HLEN differs).
    if (pb.is_nil()) continue;
    absl::StatusOr<kudos::v1::Report> report = Parse<kudos::v1::Report>(pb.str, "report");
    if (!report.ok()) return report.status();
    open.emplace_back(*std::move(report), pb.str);
  }
  return open;
}

absl::StatusOr<std::vector<kudos::v1::Report>> SocialStore::ReportsByIds(const std::string& org,
                                                                         const Reply& ids) {
  std::vector<kudos::v1::Report> reports;
  if (ids.elements.empty()) return reports;
  common::redis::Command hmget = {"HMGET", ReportsKey(org)};
  for (const Reply& id : ids.elements) hmget.push_back(id.str);
  absl::StatusOr<Reply> pbs = pool_.Run(hmget);
  if (!pbs.ok()) return pbs.status();
  for (const Reply& pb : pbs->elements) {
    if (pb.is_nil()) continue;  // closed and trimmed between the two reads
    absl::StatusOr<kudos::v1::Report> report = Parse<kudos::v1::Report>(pb.str, "report");
    if (!report.ok()) return report.status();
    reports.push_back(*std::move(report));
  }
  return reports;
}

absl::StatusOr<std::vector<kudos::v1::Report>> SocialStore::ListReports(const std::string& org,
                                                                        bool open_only,
                                                                        int64_t offset, int limit,
                                                                        bool* more) {
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> counts =
      pool_.Pipeline({{"ZCARD", OpenReportsKey(org)}, {"ZCARD", ClosedReportsKey(org)}});
  if (!counts.ok()) return counts.status();
  for (const auto& count : *counts) {
    if (!count.ok()) return count.status();
  }
  const int64_t open_count = (*counts)[0]->integer;
  const int64_t total = open_only ? open_count : open_count + (*counts)[1]->integer;
  *more = offset + limit < total;
  std::vector<kudos::v1::Report> page;
  if (offset < open_count) {  // open ones, oldest first
    absl::StatusOr<Reply> ids = pool_.Run(
        {"ZRANGE", OpenReportsKey(org), absl::StrCat(offset), absl::StrCat(offset + limit - 1)});
    if (!ids.ok()) return ids.status();
    absl::StatusOr<std::vector<kudos::v1::Report>> open = ReportsByIds(org, *ids);
    if (!open.ok()) return open.status();
    page = *std::move(open);
  }
  const int64_t closed_from = std::max<int64_t>(0, offset - open_count);
  const int64_t closed_wanted = limit - static_cast<int64_t>(page.size());
  if (open_only || closed_wanted <= 0 || offset + limit <= open_count) return page;
  absl::StatusOr<Reply> ids =
      pool_.Run({"ZREVRANGE", ClosedReportsKey(org), absl::StrCat(closed_from),
                 absl::StrCat(closed_from + closed_wanted - 1)});
  if (!ids.ok()) return ids.status();
  absl::StatusOr<std::vector<kudos::v1::Report>> closed = ReportsByIds(org, *ids);
  if (!closed.ok()) return closed.status();
  page.insert(page.end(), closed->begin(), closed->end());
  return page;
}

absl::StatusOr<bool> SocialStore::CloseReports(const std::string& org,
                                               const std::vector<ReportClose>& closes,
                                               const std::string& actor, int64_t now_ms,
                                               int max_closed, int64_t cutoff_ms,
                                               const std::string& audit_action) {
  std::vector<std::string> keys = {ReportsKey(org), OpenReportsKey(org), ClosedReportsKey(org),
                                   common::audit::StreamKey(org)};
  std::vector<std::string> args = {
      absl::StrCat(now_ms),    actor,        AuditTime(now_ms),          absl::StrCat(max_closed),
      absl::StrCat(cutoff_ms), audit_action, absl::StrCat(closes.size())};
  for (const ReportClose& close : closes) {
    KUDOS_CHECK(close.old_report.report_id() == close.new_report.report_id(),
                "a report is closed in place");
    keys.push_back(KudosReportsKey(org, close.old_report.kudos_id()));
    args.insert(args.end(),
                {close.old_report.report_id(), close.old_pb, close.new_report.SerializeAsString(),
                 close.old_report.reporter_id(), close.new_report.resolution_note()});
  }
  absl::StatusOr<Reply> reply = pool_.Eval(close_reports_, keys, args);
  if (!reply.ok()) return reply.status();
  return reply->str == "CLOSED";
}

absl::StatusOr<std::optional<kudos::v1::KudosSent>> SocialStore::RecordedSend(
    const std::string& org, const std::string& kudos_id) {
  std::vector<common::redis::Command> reads;
  KudosStore::AddRecordReads(reads, org, kudos_id);
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool_.Pipeline(reads);
  if (!replies.ok()) return replies.status();
  const absl::StatusOr<Reply>& reply = KudosStore::RecordReply((*replies)[0], (*replies)[1]);
  if (!reply.ok() && absl::StrContains(reply.status().message(), "WRONGTYPE")) return std::nullopt;
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::nullopt;
  absl::StatusOr<kudos::v1::KudosSent> sent = KudosStore::ParseStoredRecord(kudos_id, reply->str);
  if (!sent.ok()) return sent.status();
  return *sent;
}

absl::StatusOr<bool> SocialStore::IsRetracted(const std::string& org, const std::string& kudos_id) {
  absl::StatusOr<Reply> reply = pool_.Run({"HEXISTS", RetractedKey(org), kudos_id});
  if (!reply.ok()) return reply.status();
  return reply->integer == 1;
}

absl::StatusOr<std::string> SocialStore::BeginRetraction(const std::string& org,
                                                         const RetractionBegin& begin) {
  absl::StatusOr<Reply> reply =
      pool_.Eval(retract_begin_,
                 {RetractedKey(org), RetractionKey(org, begin.kudos_id),
                  RetractRequestKey(org, begin.request_id)},
                 {begin.kudos_id, begin.request_id, begin.admin, begin.reason,
                  absl::StrCat(begin.now_ms), begin.marker_pb, absl::StrCat(begin.request_ttl_s)});
  if (!reply.ok()) return reply.status();
  KUDOS_CHECK(reply->str == "REVERSING" || reply->str == "DONE",
              "social_retract_begin answers REVERSING or DONE");
  return reply->str;
}

absl::StatusOr<std::optional<RetractionDone>> SocialStore::FinishRetraction(
    const std::string& org, const RetractionFinish& finish) {
  const std::string& kudos_id = finish.kudos_id;
  std::vector<std::string> args = {kudos_id,
                                   finish.event_pb,
                                   absl::StrCat(finish.now_ms),
                                   AuditTime(finish.now_ms),
                                   absl::StrCat(finish.ttl_s),
                                   absl::StrJoin(finish.reversal_ids, ","),
                                   absl::StrCat(finish.reports.size())};
  for (const ReportClose& close : finish.reports) {
    args.insert(args.end(),
                {close.old_report.report_id(), close.old_pb, close.new_report.SerializeAsString()});
  }
  absl::StatusOr<Reply> reply = pool_.Eval(
      retract_finish_,
      {RetractionKey(org, kudos_id), KudosStore::EventStream(org), common::audit::StreamKey(org),
       ReportsKey(org), OpenReportsKey(org), ClosedReportsKey(org), KudosReportsKey(org, kudos_id)},
      args);
  if (!reply.ok()) return reply.status();
  if (reply->type != Reply::Type::kArray) {
    KUDOS_CHECK(reply->str == "CHANGED", "social_retract_finish answers DONE or CHANGED");
    return std::nullopt;
  }
  if (reply->elements.size() != 3) return absl::InternalError("retract_finish: unexpected reply");
  RetractionDone done;
  done.reversal_ids = absl::StrSplit(reply->elements[1].str, ',', absl::SkipEmpty());
  done.reports_closed = static_cast<int>(reply->elements[2].integer);
  return done;
}

}  // namespace kudos
