// The rules of comments, reactions, reports and retraction (issue 18 part 6),
// as plain functions: what a valid comment, emoji and reason is, who may see
// a kudos, the bounds. No I/O here; unit-tested directly.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kudos/v1/kudos.pb.h"
#include "kudos/v1/social.pb.h"
#include "ledger/v1/ledger.pb.h"

namespace kudos {

// Bounds of the social data; every one has a test that hits it.
struct SocialLimits {
  int max_comments_per_kudos = 200;
  int max_comment_chars = 500;
  // Reactions (person, emoji) on one kudos, all emoji together.
  int max_reactions_per_kudos = 1000;
  // Open reports in one org; past it ReportKudos is RESOURCE_EXHAUSTED until
  // admins dismiss or act on some.
  int max_open_reports_per_org = 1000;
  // Closed reports kept per org (the newest); older ones are dropped, and
  // any older than the org's audit_days (their record stays in the audit stream).
  int max_closed_reports_per_org = 10000;
  int max_reason_chars = 500;
};

// The allowed emoji: short code and the character(s) it stands for, in the
// order reactions are shown.
struct AllowedEmoji {
  const char* code;
  const char* text;
};
const std::vector<AllowedEmoji>& AllowedEmojis();

// The short code of `emoji` (a short code, with or without colons, or the
// emoji character itself); INVALID_ARGUMENT listing the allowed ones otherwise.
absl::StatusOr<std::string> NormalizeEmoji(absl::string_view emoji);

// 1..max_chars code points of UTF-8, no control characters except newlines.
absl::Status ValidateText(absl::string_view field, absl::string_view text, int max_chars,
                          bool required);

// Comment and report ids as this service makes them ("c..." / "r...").
absl::Status ValidateSocialId(absl::string_view field, absl::string_view id, char prefix);

// Who may see a kudos: everyone for a public one; for a private one its
// giver, its recipients and the recipients' managers (`people` must hold the
// recipients). Admins moderate: they see every kudos.
bool CanSeeKudos(const kudos::v1::Kudos& kudos, absl::string_view viewer, bool viewer_is_admin,
                 const std::map<std::string, kudos::v1::Person>& people);

// The id of the RETRACTION transfer that reverses `original_transfer_id`:
// the same for every replica and every retry, so the ledger applies it once.
std::string RetractionTransferId(absl::string_view original_transfer_id);

// The reversal of one KUDOS or BOOST transfer: accounts swapped, the same
// amount, kind RETRACTION, the same reference and tags.
ledger::v1::Transfer ReversalOf(const ledger::v1::Transfer& original);

// The reactions summary in the allowed set's order: `counts` (code -> count),
// `mine` (codes the caller reacted with); codes with no reaction left out.
std::vector<kudos::v1::ReactionCount> ReactionSummary(const std::map<std::string, int64_t>& counts,
                                                      const std::vector<std::string>& mine);

}  // namespace kudos
