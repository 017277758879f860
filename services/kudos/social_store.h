// Redis access of comments, reactions, reports and retractions (issue 18
// part 6). Key shapes (every key in the org's {org} slot, beside its kudos):
//   kudos:{org}:social:comments:<kudos>        HASH comment id -> Comment pb, '#seq' -> last seq
//   kudos:{org}:social:comment_order:<kudos>   ZSET comment id by seq (oldest first)
//   kudos:{org}:social:commentreq:<author>:<request_id>  STRING Comment pb (retry window)
//   kudos:{org}:social:reactions:<kudos>       HASH emoji code -> count
//   kudos:{org}:social:reactors:<kudos>        SET "<code>|<person>"
//     (comments and reactions expire with the kudos' live window: create_time +
//     kudos_live_days, when the kudos moves to the archive)
//   kudos:{org}:social:reports                 HASH report id -> Report pb (open and closed)
//   kudos:{org}:social:reports:open            ZSET report id by create ms (bounded)
//   kudos:{org}:social:reports:closed          ZSET report id by close ms (bounded, audit_days)
//   kudos:{org}:social:reports:kudos:<kudos>   HASH reporter -> their open report id
//   kudos:{org}:retracted                      HASH kudos id -> KudosRetracted pb: the marker
//                                              the kudos reads check (owned with SHAPE's read path)
//   kudos:{org}:social:retraction:<kudos>      HASH {state REVERSING|DONE, request_id, admin,
//                                              reason, time_ms, reversals, reports_closed}
//   kudos:{org}:social:retractreq:<request_id> STRING the kudos id (retry window)
// Every script is given every key it touches (common::redis::Script's guard).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.pb.h"
#include "kudos/v1/social.pb.h"
#include "services/kudos/kudos_store.h"

namespace kudos {

enum class ReactionOp { kAdd, kRemove, kGet };

struct ReactionState {
  std::map<std::string, int64_t> counts;  // code -> count
  std::vector<std::string> mine;          // codes the person reacted with
};

// An open report being closed: as read, and as it becomes.
struct ReportClose {
  kudos::v1::Report old_report;
  std::string old_pb;
  kudos::v1::Report new_report;
};

struct RetractionBegin {
  std::string kudos_id;
  std::string request_id;
  std::string admin;
  std::string reason;
  int64_t now_ms = 0;
  std::string marker_pb;  // the KudosRetracted kept in kudos:{org}:retracted
  int64_t request_ttl_s = 0;
};

struct RetractionFinish {
  std::string kudos_id;
  std::string event_pb;  // a KudosEvent with kudos_retracted
  int64_t now_ms = 0;
  int64_t ttl_s = 0;
  std::vector<std::string> reversal_ids;
  std::vector<ReportClose> reports;  // every open report of the kudos, ACTIONED
};

struct RetractionDone {
  std::vector<std::string> reversal_ids;
  int reports_closed = 0;
};

class SocialStore {
 public:
  explicit SocialStore(common::redis::Pool& pool);

  // Comments
  struct AddedComment {
    kudos::v1::Comment comment;
    bool created = false;
  };
  absl::StatusOr<AddedComment> AddComment(const std::string& org, const kudos::v1::Comment& comment,
                                          const std::string& request_id, int max_comments,
                                          int64_t expire_at_ms, int64_t request_ttl_s);
  absl::StatusOr<std::optional<kudos::v1::Comment>> GetComment(const std::string& org,
                                                               const std::string& kudos_id,
                                                               const std::string& comment_id);
  struct CommentPage {
    std::vector<kudos::v1::Comment> comments;
    int64_t last_seq = 0;  // of the last one returned
    bool more = false;
  };
  // Oldest first, after `after_seq`.
  absl::StatusOr<CommentPage> ListComments(const std::string& org, const std::string& kudos_id,
                                           int64_t after_seq, int limit);
  absl::Status DeleteComment(const std::string& org, const std::string& kudos_id,
                             const std::string& comment_id, const std::string& actor, bool audit);

  // Reactions (`codes`: every allowed code, to tell which are the person's)
  absl::StatusOr<ReactionState> React(const std::string& org, const std::string& kudos_id,
                                      ReactionOp op, const std::string& code,
                                      const std::string& person, int max_reactions,
                                      int64_t expire_at_ms, const std::vector<std::string>& codes);

  // Reports
  struct AddedReport {
    kudos::v1::Report report;
    bool created = false;
  };
  absl::StatusOr<AddedReport> AddReport(const std::string& org, const kudos::v1::Report& report,
                                        int64_t now_ms, int max_open);
  // The report and its bytes as stored (for a compare-and-set).
  absl::StatusOr<std::optional<std::pair<kudos::v1::Report, std::string>>> GetReport(
      const std::string& org, const std::string& report_id);
  // Every open report of one kudos, with its bytes.
  absl::StatusOr<std::vector<std::pair<kudos::v1::Report, std::string>>> OpenReportsOf(
      const std::string& org, const std::string& kudos_id);
  // Open reports oldest first, then closed newest first, from `offset`.
  absl::StatusOr<std::vector<kudos::v1::Report>> ListReports(const std::string& org, bool open_only,
                                                             int64_t offset, int limit, bool* more);
  // False when a report changed since it was read (nothing written).
  absl::StatusOr<bool> CloseReports(const std::string& org, const std::vector<ReportClose>& closes,
                                    const std::string& actor, int64_t now_ms, int max_closed,
                                    int64_t cutoff_ms, const std::string& audit_action);

  // Retraction
  // The KudosSent a committed kudos' live STRING record holds; nullopt when
  // archived or in an older form.
  absl::StatusOr<std::optional<kudos::v1::KudosSent>> RecordedSend(const std::string& org,
                                                                   const std::string& kudos_id);
  // Whether the kudos is marked retracted (kudos:{org}:retracted).
  absl::StatusOr<bool> IsRetracted(const std::string& org, const std::string& kudos_id);
  // 'REVERSING' (go on) or 'DONE' (a retry of a finished one).
  absl::StatusOr<std::string> BeginRetraction(const std::string& org, const RetractionBegin& begin);
  // nullopt: the open reports changed (read again).
  absl::StatusOr<std::optional<RetractionDone>> FinishRetraction(const std::string& org,
                                                                 const RetractionFinish& finish);

  static std::string Prefix(const std::string& org) { return KudosStore::Prefix(org) + "social:"; }
  static std::string CommentsKey(const std::string& org, const std::string& kudos_id) {
    return Prefix(org) + "comments:" + kudos_id;
  }
  static std::string CommentOrderKey(const std::string& org, const std::string& kudos_id) {
    return Prefix(org) + "comment_order:" + kudos_id;
  }
  static std::string CommentRequestKey(const std::string& org, const std::string& author,
                                       const std::string& request_id) {
    return Prefix(org) + "commentreq:" + author + ":" + request_id;
  }
  static std::string ReactionsKey(const std::string& org, const std::string& kudos_id) {
    return Prefix(org) + "reactions:" + kudos_id;
  }
  static std::string ReactorsKey(const std::string& org, const std::string& kudos_id) {
    return Prefix(org) + "reactors:" + kudos_id;
  }
  static std::string ReportsKey(const std::string& org) { return Prefix(org) + "reports"; }
  static std::string OpenReportsKey(const std::string& org) { return Prefix(org) + "reports:open"; }
  static std::string ClosedReportsKey(const std::string& org) {
    return Prefix(org) + "reports:closed";
  }
  static std::string KudosReportsKey(const std::string& org, const std::string& kudos_id) {
    return Prefix(org) + "reports:kudos:" + kudos_id;
  }
  static std::string RetractionKey(const std::string& org, const std::string& kudos_id) {
    return Prefix(org) + "retraction:" + kudos_id;
  }
  // The marker of retracted kudos that the kudos read path checks.
  static std::string RetractedKey(const std::string& org) { return KudosStore::RetractedKey(org); }
  static std::string RetractRequestKey(const std::string& org, const std::string& request_id) {
    return Prefix(org) + "retractreq:" + request_id;
  }

 private:
  absl::StatusOr<std::vector<kudos::v1::Report>> ReportsByIds(const std::string& org,
                                                              const common::redis::Reply& ids);

  common::redis::Pool& pool_;
  common::redis::Script add_comment_;
  common::redis::Script delete_comment_;
  common::redis::Script react_;
  common::redis::Script report_;
  common::redis::Script close_reports_;
  common::redis::Script retract_begin_;
  common::redis::Script retract_finish_;
};

}  // namespace kudos
