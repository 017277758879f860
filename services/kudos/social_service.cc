#include "services/kudos/social_service.h"

#include <google/protobuf/util/time_util.h>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "services/kudos/kudos_rules.h"

namespace kudos {
namespace {

using common::grpc_util::ToGrpcStatus;
using google::protobuf::util::TimeUtil;

// A script that found its data changed since it was read is called again
// with fresh reads at most this often (then ABORTED: retry).
constexpr int kMaxRereads = 3;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(t));
}

// "c"/"r" and 16 random hex digits: unguessable, one per new comment or report.
std::string NewSocialId(char prefix) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen();
  absl::MutexLock lock(&mu);
  return absl::StrFormat("%c%016x", prefix, absl::Uniform<uint64_t>(*gen));
}

absl::Status NotVisible(const std::string& kudos_id) {
  return absl::NotFoundError(absl::StrCat("kudos_id: '", kudos_id, "' does not exist"));
}

absl::Status RequireAdmin(const common::auth::Principal& who, const char* what) {
  if (!who.is_admin() || who.is_service()) {
    return absl::PermissionDeniedError(absl::StrCat("only an org admin may ", what));
  }
  return absl::OkStatus();
}

template <typename Fn>
grpc::Status Serve(const common::auth::Guard& auth, grpc::ServerContext* context, Fn fn) {
  absl::StatusOr<common::auth::Principal> who = auth.Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(fn(*who));
}

const std::vector<std::string>& AllowedCodes() {
  static const std::vector<std::string>* const kCodes = [] {
    auto* codes = new std::vector<std::string>();
    for (const AllowedEmoji& emoji : AllowedEmojis()) codes->push_back(emoji.code);
    return codes;
  }();
  return *kCodes;
}

const char* ReportStateName(v1::ReportState state) {
  switch (state) {
    case v1::REPORT_STATE_DISMISSED:
      return "dismissed";
    case v1::REPORT_STATE_ACTIONED:
      return "closed by the kudos' retraction";
    default:
      return "open";
  }
}

}  // namespace

SocialServiceImpl::SocialServiceImpl(const common::auth::Guard& auth, KudosStore& kudos,
                                     SocialStore& store, SocialLedger& ledger,
                                     SocialOptions options, std::function<absl::Time()> clock)
    : auth_(auth),
      kudos_(kudos),
      store_(store),
      ledger_(ledger),
      options_(options),
      clock_(std::move(clock)) {}

absl::StatusOr<SocialServiceImpl::Visible> SocialServiceImpl::Load(const Principal& who,
                                                                   const std::string& kudos_id,
                                                                   Access access) {
  if (absl::Status id = ValidateId("kudos_id", kudos_id); !id.ok()) return id;
  const bool person = !who.is_service() && !who.is_screen_only();
  if (access == Access::kWrite && !person) {
    return absl::PermissionDeniedError("only people may comment on, react to or report a kudos");
  }
  absl::StatusOr<v1::Kudos> kudos = kudos_.GetKudos(who.org, kudos_id);
  if (!kudos.ok())
    return kudos.status().code() == absl::StatusCode::kNotFound ? NotVisible(kudos_id)
                                                                : kudos.status();
  absl::StatusOr<bool> retracted = store_.IsRetracted(who.org, kudos_id);
  if (!retracted.ok()) return retracted.status();
  const bool admin = who.is_admin() && !who.is_service();
  if (*retracted && !admin) return NotVisible(kudos_id);
  std::vector<std::string> ids;
  if (kudos->visibility() == v1::KUDOS_VISIBILITY_PRIVATE) {
    ids.assign(kudos->recipient_ids().begin(), kudos->recipient_ids().end());
  }
  if (person) ids.push_back(who.subject);
  absl::StatusOr<KudosStore::SettingsAndPeople> org = kudos_.GetSettingsAndPeople(who.org, ids);
  if (!org.ok()) return org.status();
  if (!CanSeeKudos(*kudos, person ? who.subject : "", admin, org->people)) {
    return NotVisible(kudos_id);
  }
  Visible visible;
  const common::v1::RetentionPolicy retention = RetentionWithDefaults(org->settings.retention());
  visible.expire_at_ms = absl::ToUnixMillis(FromProto(kudos->create_time()) +
                                            absl::Hours(24) * retention.kudos_live_days());
  visible.request_ttl_s = int64_t{86400} * retention.idempotency_days();
  visible.retracted = *retracted;
  visible.kudos = *std::move(kudos);
  if (access == Access::kRead) return visible;
  if (visible.retracted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kudos '", kudos_id, "' was retracted; it takes no comments, reactions or reports"));
  }
  auto me = org->people.find(who.subject);
  if (me == org->people.end() || !me->second.active()) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", who.subject, "' is not an active person in the org's directory"));
  }
  if (absl::ToUnixMillis(clock_()) >= visible.expire_at_ms) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kudos '", kudos_id, "' is older than the org's kudos_live_days (",
        retention.kudos_live_days(), "): archived kudos take no comments, reactions or reports"));
  }
  return visible;
}

absl::Status SocialServiceImpl::DoAddComment(const Principal& who,
                                             const v1::AddCommentRequest& request,
                                             v1::AddCommentResponse& response) {
  if (absl::Status id = ValidateRequestId(request.request_id()); !id.ok()) return id;
  if (absl::Status text =
          ValidateText("text", request.text(), options_.limits.max_comment_chars, true);
      !text.ok()) {
    return text;
  }
  absl::StatusOr<Visible> visible = Load(who, request.kudos_id(), Access::kWrite);
  if (!visible.ok()) return visible.status();
  v1::Comment comment;
  comment.set_comment_id(NewSocialId('c'));
  comment.set_kudos_id(request.kudos_id());
  comment.set_author_id(who.subject);
  comment.set_text(request.text());
  *comment.mutable_create_time() = ToProto(clock_());
  absl::StatusOr<SocialStore::AddedComment> added = store_.AddComment(
      who.org, comment, request.request_id(), options_.limits.max_comments_per_kudos,
      visible->expire_at_ms, visible->request_ttl_s);
  if (!added.ok()) return added.status();
  if (!added->created && (added->comment.text() != request.text() ||
                          added->comment.kudos_id() != request.kudos_id())) {
    return absl::AlreadyExistsError(absl::StrCat(
        "request_id: '", request.request_id(),
        "' was already used for a different comment; use a new request_id for a new comment"));
  }
  KUDOS_CHECK(added->comment.author_id() == who.subject, "a request key is per author");
  *response.mutable_comment() = std::move(added->comment);
  return absl::OkStatus();
}

absl::Status SocialServiceImpl::DoListComments(const Principal& who,
                                               const v1::ListCommentsRequest& request,
                                               v1::ListCommentsResponse& response) {
  absl::StatusOr<int> page_size = PageSize(request.page_size(), 50, 200);
  if (!page_size.ok()) return page_size.status();
  int64_t after_seq = 0;
  if (!request.page_token().empty()) {
    absl::StatusOr<std::string> position = DecodePageToken(request.page_token());
    if (!position.ok() || !absl::SimpleAtoi(*position, &after_seq) || after_seq < 0) {
      return absl::InvalidArgumentError("page_token: not a token this call returned");
    }
  }
  absl::StatusOr<Visible> visible = Load(who, request.kudos_id(), Access::kRead);
  if (!visible.ok()) return visible.status();
  absl::StatusOr<SocialStore::CommentPage> page =
      store_.ListComments(who.org, request.kudos_id(), after_seq, *page_size);
  if (!page.ok()) return page.status();
  for (v1::Comment& comment : page->comments) *response.add_comments() = std::move(comment);
  if (page->more) response.set_next_page_token(EncodePageToken(absl::StrCat(page->last_seq)));
  return absl::OkStatus();
}

absl::Status SocialServiceImpl::DoDeleteComment(const Principal& who,
                                                const v1::DeleteCommentRequest& request) {
  if (absl::Status id = ValidateSocialId("comment_id", request.comment_id(), 'c'); !id.ok()) {
    return id;
  }
  absl::StatusOr<Visible> visible = Load(who, request.kudos_id(), Access::kRead);
  if (!visible.ok()) return visible.status();
  absl::StatusOr<std::optional<v1::Comment>> comment =
      store_.GetComment(who.org, request.kudos_id(), request.comment_id());
  if (!comment.ok()) return comment.status();
  if (!comment->has_value()) {
    return absl::NotFoundError(
        absl::StrCat("comment_id: '", request.comment_id(), "' does not exist on this kudos"));
  }
  const bool author = (*comment)->author_id() == who.subject && !who.is_service();
  if (!author && !(who.is_admin() && !who.is_service())) {
    return absl::PermissionDeniedError("only the comment's author or an org admin may delete it");
  }
  return store_.DeleteComment(who.org, request.kudos_id(), request.comment_id(), who.subject,
                              /*audit=*/!author);
}

absl::Status SocialServiceImpl::DoReact(
    const Principal& who, const std::string& kudos_id, const std::string& emoji, ReactionOp op,
    google::protobuf::RepeatedPtrField<v1::ReactionCount>& out) {
  std::string code;
  if (op != ReactionOp::kGet) {
    absl::StatusOr<std::string> normalized = NormalizeEmoji(emoji);
    if (!normalized.ok()) return normalized.status();
    code = *normalized;
  }
  absl::StatusOr<Visible> visible =
      Load(who, kudos_id, op == ReactionOp::kGet ? Access::kRead : Access::kWrite);
  if (!visible.ok()) return visible.status();
  absl::StatusOr<ReactionState> state =
      store_.React(who.org, kudos_id, op, code, who.subject,
                   options_.limits.max_reactions_per_kudos, visible->expire_at_ms, AllowedCodes());
  if (!state.ok()) return state.status();
  for (v1::ReactionCount& count : ReactionSummary(state->counts, state->mine)) {
    *out.Add() = std::move(count);
  }
  return absl::OkStatus();
}

absl::Status SocialServiceImpl::DoReportKudos(const Principal& who,
                                              const v1::ReportKudosRequest& request,
                                              v1::ReportKudosResponse& response) {
  if (absl::Status reason =
          ValidateText("reason", request.reason(), options_.limits.max_reason_chars, true);
      !reason.ok()) {
    return reason;
  }
  absl::StatusOr<Visible> visible = Load(who, request.kudos_id(), Access::kWrite);
  if (!visible.ok()) return visible.status();
  const absl::Time now = clock_();
  v1::Report report;
  report.set_report_id(NewSocialId('r'));
  report.set_kudos_id(request.kudos_id());
  report.set_reporter_id(who.subject);
  report.set_reason(request.reason());
  *report.mutable_create_time() = ToProto(now);
  report.set_state(v1::REPORT_STATE_OPEN);
  absl::StatusOr<SocialStore::AddedReport> added = store_.AddReport(
      who.org, report, absl::ToUnixMillis(now), options_.limits.max_open_reports_per_org);
  if (!added.ok()) return added.status();
  KUDOS_CHECK(
      added->report.reporter_id() == who.subject && added->report.kudos_id() == request.kudos_id(),
      "a reporter's open report is found under its kudos");
  *response.mutable_report() = std::move(added->report);
  response.set_created(added->created);
  return absl::OkStatus();
}

absl::Status SocialServiceImpl::DoListReports(const Principal& who,
                                              const v1::ListReportsRequest& request,
                                              v1::ListReportsResponse& response) {
  if (absl::Status admin = RequireAdmin(who, "list reports"); !admin.ok()) return admin;
  absl::StatusOr<int> page_size = PageSize(request.page_size(), 50, 200);
  if (!page_size.ok()) return page_size.status();
  int64_t offset = 0;
  if (!request.page_token().empty()) {
    absl::StatusOr<std::string> position = DecodePageToken(request.page_token());
    if (!position.ok() || !absl::SimpleAtoi(*position, &offset) || offset < 0) {
      return absl::InvalidArgumentError("page_token: not a token this call returned");
    }
  }
  bool more = false;
  absl::StatusOr<std::vector<v1::Report>> reports =
      store_.ListReports(who.org, request.open_only(), offset, *page_size, &more);
  if (!reports.ok()) return reports.status();
  for (v1::Report& report : *reports) *response.add_reports() = std::move(report);
  if (more) response.set_next_page_token(EncodePageToken(absl::StrCat(offset + *page_size)));
  return absl::OkStatus();
}

absl::Status SocialServiceImpl::DoDismissReport(const Principal& who,
                                                const v1::DismissReportRequest& request,
                                                v1::DismissReportResponse& response) {
  if (absl::Status admin = RequireAdmin(who, "dismiss a report"); !admin.ok()) return admin;
  if (absl::Status id = ValidateSocialId("report_id", request.report_id(), 'r'); !id.ok()) {
    return id;
  }
  if (absl::Status note =
          ValidateText("note", request.note(), options_.limits.max_reason_chars, false);
      !note.ok()) {
    return note;
  }
  for (int attempt = 0; attempt < kMaxRereads; ++attempt) {
    absl::StatusOr<std::optional<std::pair<v1::Report, std::string>>> stored =
        store_.GetReport(who.org, request.report_id());
    if (!stored.ok()) return stored.status();
    if (!stored->has_value()) {
      return absl::NotFoundError(
          absl::StrCat("report_id: '", request.report_id(), "' does not exist"));
    }
    const v1::Report& report = (*stored)->first;
    if (report.state() == v1::REPORT_STATE_DISMISSED && report.resolved_by() == who.subject) {
      *response.mutable_report() = report;  // a retry
      return absl::OkStatus();
    }
    if (report.state() != v1::REPORT_STATE_OPEN) {
      return absl::FailedPreconditionError(absl::StrCat(
          "report '", report.report_id(), "' is already ", ReportStateName(report.state())));
    }
    const absl::Time now = clock_();
    ReportClose close{report, (*stored)->second, report};
    close.new_report.set_state(v1::REPORT_STATE_DISMISSED);
    close.new_report.set_resolved_by(who.subject);
    *close.new_report.mutable_resolve_time() = ToProto(now);
    close.new_report.set_resolution_note(request.note());
    absl::StatusOr<v1::OrgSettings> settings = kudos_.GetSettings(who.org);
    if (!settings.ok()) return settings.status();
    const int audit_days = RetentionWithDefaults(settings->retention()).audit_days();
    absl::StatusOr<bool> closed = store_.CloseReports(
        who.org, {close}, who.subject, absl::ToUnixMillis(now),
        options_.limits.max_closed_reports_per_org,
        absl::ToUnixMillis(now - absl::Hours(24) * audit_days), "dismiss_report");
    if (!closed.ok()) return closed.status();
    if (*closed) {
      *response.mutable_report() = std::move(close.new_report);
      return absl::OkStatus();
    }
  }
  return absl::AbortedError("report changed while being dismissed; retry");
}

absl::Status SocialServiceImpl::DoRetractKudos(const Principal& who,
                                               const v1::RetractKudosRequest& request,
                                               v1::RetractKudosResponse& response) {
  if (absl::Status admin = RequireAdmin(who, "retract a kudos"); !admin.ok()) return admin;
  if (absl::Status id = ValidateId("kudos_id", request.kudos_id()); !id.ok()) return id;
  if (absl::Status id = ValidateRequestId(request.request_id()); !id.ok()) return id;
  if (absl::Status reason =
          ValidateText("reason", request.reason(), options_.limits.max_reason_chars, true);
      !reason.ok()) {
    return reason;
  }
  absl::StatusOr<v1::Kudos> kudos = kudos_.GetKudos(who.org, request.kudos_id());
  if (kudos.ok()) return RetractCommitted(who, request, *kudos, response);
  if (kudos.status().code() != absl::StatusCode::kNotFound) return kudos.status();
  // Not committed: say why there is nothing to retract.
  absl::StatusOr<std::optional<Record>> record =
      kudos_.GetRecord(who.org, RecordKind::kKudos, request.kudos_id());
  if (!record.ok()) return record.status();
  if (record->has_value() && (*record)->state == "PENDING") {
    return absl::FailedPreconditionError(absl::StrCat(
        "kudos '", request.kudos_id(),
        "' is PENDING: the ledger has not settled its points yet; retry once it is committed"));
  }
  if (record->has_value() && (*record)->state == "ABORTED") {
    return absl::FailedPreconditionError(
        absl::StrCat("kudos '", request.kudos_id(),
                     "' was ABORTED (the ledger refused its points): there is nothing to retract"));
  }
  return NotVisible(request.kudos_id());
}

// The teams the kudos was counted under: as recorded when it was sent (the
// live record), else (archived, or an old record form) the directory's now.
static absl::Status FillTeams(KudosStore& kudos_store, SocialStore& store, const std::string& org,
                              const v1::Kudos& kudos, v1::KudosRetracted& retracted) {
  absl::StatusOr<std::optional<v1::KudosSent>> sent = store.RecordedSend(org, kudos.kudos_id());
  if (!sent.ok()) return sent.status();
  if (sent->has_value()) {
    retracted.set_giver_team_id((*sent)->giver_team_id());
    *retracted.mutable_recipient_team_ids() = (*sent)->recipient_team_ids();
    return absl::OkStatus();
  }
  std::vector<std::string> ids(kudos.recipient_ids().begin(), kudos.recipient_ids().end());
  ids.push_back(kudos.giver_id());
  absl::StatusOr<std::map<std::string, v1::Person>> people = kudos_store.GetPeople(org, ids);
  if (!people.ok()) return people.status();
  auto team_of = [&](const std::string& id) {
    auto person = people->find(id);
    return person == people->end() ? std::string() : person->second.team_id();
  };
  retracted.set_giver_team_id(team_of(kudos.giver_id()));
  for (const std::string& recipient : kudos.recipient_ids()) {
    (*retracted.mutable_recipient_team_ids())[recipient] = team_of(recipient);
  }
  return absl::OkStatus();
}

absl::Status SocialServiceImpl::RetractCommitted(const Principal& who,
                                                 const v1::RetractKudosRequest& request,
                                                 const v1::Kudos& kudos,
                                                 v1::RetractKudosResponse& response) {
  absl::StatusOr<v1::OrgSettings> settings = kudos_.GetSettings(who.org);
  if (!settings.ok()) return settings.status();
  const common::v1::RetentionPolicy retention = RetentionWithDefaults(settings->retention());
  const int64_t ttl_s = int64_t{86400} * retention.idempotency_days();
  // The ledger reverses live transfers only; refused before anything is
  // marked (an hour's margin for the ledger's hourly archive sweep).
  const absl::Duration age = clock_() - FromProto(kudos.create_time());
  if (age >= absl::Hours(24) * retention.transfers_live_days() - absl::Hours(1)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kudos '", kudos.kudos_id(), "' is older than the org's transfers_live_days (",
        retention.transfers_live_days(), "): its transfers are archived and cannot be reversed"));
  }
  v1::KudosRetracted retracted;
  *retracted.mutable_kudos() = kudos;
  retracted.mutable_kudos()->set_retracted(true);
  retracted.set_retracted_by(who.subject);
  retracted.set_reason(request.reason());
  if (absl::Status teams = FillTeams(kudos_, store_, who.org, kudos, retracted); !teams.ok())
    return teams;

  // 1. Mark it retracted (reads leave it out, no new boosts) and record the
  //    retraction as REVERSING: from here a retry finishes the job.
  RetractionBegin begin{kudos.kudos_id(),
                        request.request_id(),
                        who.subject,
                        request.reason(),
                        absl::ToUnixMillis(clock_()),
                        retracted.SerializeAsString(),
                        ttl_s};
  absl::StatusOr<std::string> state = store_.BeginRetraction(who.org, begin);
  if (!state.ok()) return state.status();
  std::vector<std::string> reversal_ids;
  if (*state == "REVERSING") {
    // 2. Reverse every KUDOS and BOOST transfer the ledger holds for it, with
    //    ids derived from the originals (applied at most once).
    std::vector<std::string> recipients(kudos.recipient_ids().begin(), kudos.recipient_ids().end());
    absl::StatusOr<std::vector<ledger::v1::Transfer>> originals =
        FindKudosTransfers(ledger_, who.org, kudos.kudos_id(), recipients,
                           FromProto(kudos.create_time()), options_.search);
    if (!originals.ok()) return originals.status();
    if (absl::Status posted = PostReversals(ledger_, who.org, *originals); !posted.ok()) {
      return posted;
    }
    for (const ledger::v1::Transfer& original : *originals) {
      reversal_ids.push_back(RetractionTransferId(original.transfer_id()));
    }
  }
  // 3. The event, the audit record, the reports (once, DONE).
  absl::StatusOr<RetractionDone> done = FinishRetraction(who.org, retracted, reversal_ids, ttl_s);
  if (!done.ok()) return done.status();
  *response.mutable_kudos() = retracted.kudos();
  for (const std::string& id : done->reversal_ids) response.add_reversal_transfer_ids(id);
  response.set_reports_closed(done->reports_closed);
  return absl::OkStatus();
}

absl::StatusOr<RetractionDone> SocialServiceImpl::FinishRetraction(
    const std::string& org, const v1::KudosRetracted& retracted,
    const std::vector<std::string>& reversal_ids, int64_t ttl_s) {
  const absl::Time now = clock_();
  v1::KudosEvent event;
  event.set_org_id(org);
  *event.mutable_event_time() = ToProto(now);
  *event.mutable_kudos_retracted() = retracted;
  for (int attempt = 0; attempt < kMaxRereads; ++attempt) {
    absl::StatusOr<std::vector<std::pair<v1::Report, std::string>>> open =
        store_.OpenReportsOf(org, retracted.kudos().kudos_id());
    if (!open.ok()) return open.status();
    RetractionFinish finish{retracted.kudos().kudos_id(),
                            event.SerializeAsString(),
                            absl::ToUnixMillis(now),
                            ttl_s,
                            reversal_ids,
                            {}};
    for (const auto& [report, pb] : *open) {
      ReportClose close{report, pb, report};
      close.new_report.set_state(v1::REPORT_STATE_ACTIONED);
      close.new_report.set_resolved_by(retracted.retracted_by());
      *close.new_report.mutable_resolve_time() = ToProto(now);
      close.new_report.set_resolution_note("kudos retracted: " + retracted.reason());
      finish.reports.push_back(std::move(close));
    }
    absl::StatusOr<std::optional<RetractionDone>> done = store_.FinishRetraction(org, finish);
    if (!done.ok()) return done.status();
    if (done->has_value()) return **done;
  }
  return absl::AbortedError(
      "the kudos' reports changed while it was retracted; retry with the same request_id");
}

grpc::Status SocialServiceImpl::AddComment(grpc::ServerContext* context,
                                           const v1::AddCommentRequest* request,
                                           v1::AddCommentResponse* response) {
  return Serve(auth_, context,
               [&](const Principal& who) { return DoAddComment(who, *request, *response); });
}

grpc::Status SocialServiceImpl::ListComments(grpc::ServerContext* context,
                                             const v1::ListCommentsRequest* request,
                                             v1::ListCommentsResponse* response) {
  return Serve(auth_, context,
               [&](const Principal& who) { return DoListComments(who, *request, *response); });
}

grpc::Status SocialServiceImpl::DeleteComment(grpc::ServerContext* context,
                                              const v1::DeleteCommentRequest* request,
                                              v1::DeleteCommentResponse*) {
  return Serve(auth_, context,
               [&](const Principal& who) { return DoDeleteComment(who, *request); });
}

grpc::Status SocialServiceImpl::AddReaction(grpc::ServerContext* context,
                                            const v1::AddReactionRequest* request,
                                            v1::AddReactionResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoReact(who, request->kudos_id(), request->emoji(), ReactionOp::kAdd,
                   *response->mutable_reactions());
  });
}

grpc::Status SocialServiceImpl::RemoveReaction(grpc::ServerContext* context,
                                               const v1::RemoveReactionRequest* request,
                                               v1::RemoveReactionResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoReact(who, request->kudos_id(), request->emoji(), ReactionOp::kRemove,
                   *response->mutable_reactions());
  });
}

grpc::Status SocialServiceImpl::GetReactions(grpc::ServerContext* context,
                                             const v1::GetReactionsRequest* request,
                                             v1::GetReactionsResponse* response) {
  return Serve(auth_, context, [&](const Principal& who) {
    return DoReact(who, request->kudos_id(), "", ReactionOp::kGet, *response->mutable_reactions());
  });
}

grpc::Status SocialServiceImpl::ReportKudos(grpc::ServerContext* context,
                                            const v1::ReportKudosRequest* request,
                                            v1::ReportKudosResponse* response) {
  return Serve(auth_, context,
               [&](const Principal& who) { return DoReportKudos(who, *request, *response); });
}

grpc::Status SocialServiceImpl::ListReports(grpc::ServerContext* context,
                                            const v1::ListReportsRequest* request,
                                            v1::ListReportsResponse* response) {
  return Serve(auth_, context,
               [&](const Principal& who) { return DoListReports(who, *request, *response); });
}

grpc::Status SocialServiceImpl::DismissReport(grpc::ServerContext* context,
                                              const v1::DismissReportRequest* request,
                                              v1::DismissReportResponse* response) {
  return Serve(auth_, context,
               [&](const Principal& who) { return DoDismissReport(who, *request, *response); });
}

grpc::Status SocialServiceImpl::RetractKudos(grpc::ServerContext* context,
                                             const v1::RetractKudosRequest* request,
                                             v1::RetractKudosResponse* response) {
  return Serve(auth_, context,
               [&](const Principal& who) { return DoRetractKudos(who, *request, *response); });
}

}  // namespace kudos
