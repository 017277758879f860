// The rules of recognition, as plain functions over protobuf values: what a
// valid kudos, person and org setting is. No I/O here; unit-tested directly.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/auth/auth.h"
#include "kudos/v1/kudos.pb.h"

namespace kudos {

inline constexpr int kMaxRecipients = 20;
inline constexpr int kMaxMessageChars = 1000;
inline constexpr int kMaxValues = 3;
inline constexpr int kMaxRequestIdBytes = 128;
// OrgSettings.message_length_min is 0..this (issue 18).
inline constexpr int kMaxMessageLengthMin = 500;

// Retention defaults in days (docs/retention-kudos.md); 0 in a policy means
// the default, anything else must be 1..kMaxRetentionDays.
inline constexpr int kDefaultIdempotencyDays = 30;
inline constexpr int kDefaultKudosLiveDays = 400;
inline constexpr int kDefaultTransfersLiveDays = 400;
inline constexpr int kDefaultAuditDays = 400;
inline constexpr int kMaxRetentionDays = 3650;

// `retention` with each 0 replaced by its default (no validation).
common::v1::RetentionPolicy RetentionWithDefaults(common::v1::RetentionPolicy retention);
// Checks each field (0 or 1..3650) and that kudos stay live at least as long
// as their request ids are remembered; returns it with defaults filled in.
absl::StatusOr<common::v1::RetentionPolicy> NormalizeRetention(
    const common::v1::RetentionPolicy& retention);

// The settings an org starts with, including the default values catalog.
kudos::v1::OrgSettings DefaultOrgSettings();

// Fills unset fields with defaults and checks the rest; INVALID_ARGUMENT
// names the field ("settings.max_points: ...").
absl::StatusOr<kudos::v1::OrgSettings> NormalizeOrgSettings(kudos::v1::OrgSettings settings);

// Whether a kudos must name a value: OrgSettings.values_required, unset = true
// (values were always required before issue 18).
bool ValuesRequired(const kudos::v1::OrgSettings& settings);

// Ids of people, teams and values: 1..64 of [A-Za-z0-9._-].
absl::Status ValidateId(absl::string_view field, absl::string_view id);
absl::Status ValidateRequestId(absl::string_view request_id);
absl::Status ValidatePerson(const kudos::v1::Person& person);
absl::Status ValidateTeam(const kudos::v1::Team& team);

// Number of Unicode code points, or an error if `text` is not valid UTF-8.
absl::StatusOr<int> Utf8Length(absl::string_view text);

// What SendKudos needs to know of the directory: the people named.
struct Directory {
  // person id -> person; absent means not in the org.
  std::map<std::string, kudos::v1::Person> people;
};

// Checks a SendKudos request from `giver_id` against the org's rules:
// recipients (1..20, distinct, known, active, not the giver), message
// (message_length_min, at least 1, ..1000 characters of UTF-8), values (0..3
// distinct, in the catalog; at least 1 when values_required), visibility and
// points (within the org's bounds). Caps and allowance are checked later,
// atomically, where the counters live.
absl::Status ValidateSendKudos(const kudos::v1::SendKudosRequest& request,
                               absl::string_view giver_id,
                               const kudos::v1::OrgSettings& settings,
                               const Directory& directory);

// Issue 18: kudos from the company (celebrations), recorded by the programs
// service for points it paid itself. Their requests are remembered under this
// actor, which no person id can be ('@' is not in an id).
inline constexpr char kCompanyActor[] = "@company";
// The service whose token may record company kudos (the ledger lets the same
// service post CELEBRATION transfers).
inline constexpr char kProgramsServiceSubject[] = "programs";
inline constexpr int64_t kMaxCompanyKudosPoints = 1000000;
inline constexpr int kMaxTransferIdBytes = 128;

// Only the programs service's token may record a company kudos: members,
// admins, screens and other services get PERMISSION_DENIED.
absl::Status RequireProgramsService(const common::auth::Principal& principal);

// Checks a RecordCompanyKudos request: request_id, recipient_id (known,
// active), message (1..1000 characters of UTF-8; the org's minimum is for
// people), values (0..3 distinct, in the catalog, optional), points
// (0..1,000,000) and transfer_id (printable ASCII, required iff points > 0).
absl::Status ValidateCompanyKudos(const kudos::v1::RecordCompanyKudosRequest& request,
                                  const kudos::v1::OrgSettings& settings,
                                  const Directory& directory);

// Checks the points of a boost and that the booster may boost this kudos.
absl::Status ValidateBoost(const kudos::v1::BoostKudosRequest& request,
                           absl::string_view booster_id, const kudos::v1::Kudos& kudos,
                           const kudos::v1::OrgSettings& settings);

// Who reads a kudos (issue 18): a person (their id), or a service or screen
// (no id: they see only public kudos). Admins see retracted kudos.
struct Viewer {
  std::string person_id;
  bool admin = false;
};
Viewer ViewerOf(const common::auth::Principal& principal);

bool IsPrivate(const kudos::v1::Kudos& kudos);
// The giver or one of the recipients.
bool IsPartyTo(const kudos::v1::Kudos& kudos, absl::string_view person_id);
// Whether `viewer` may see `kudos`: a retracted kudos only admins; a private
// one only its giver, its recipients and `viewer_manages_a_recipient` (the
// caller read the recipients' managers; only asked for private kudos).
bool MaySee(const kudos::v1::Kudos& kudos, const Viewer& viewer, bool viewer_manages_a_recipient);
// Whether MaySee needs to know if the viewer manages a recipient.
bool NeedsManagers(const kudos::v1::Kudos& kudos, const Viewer& viewer);

// A self-service UpdatePerson (a person updating themself, not an admin): only
// hidden_from_leaderboards may differ from `stored`; PERMISSION_DENIED names
// the first other field that does.
absl::Status ValidateSelfUpdate(const kudos::v1::Person& stored, const kudos::v1::Person& update);

// A stable digest of what a request asks for, to tell a retry (same
// request_id, same payload) from a conflicting reuse of the request_id.
std::string SendFingerprint(const kudos::v1::SendKudosRequest& request);
std::string BoostFingerprint(const kudos::v1::BoostKudosRequest& request);
std::string CompanyFingerprint(const kudos::v1::RecordCompanyKudosRequest& request);

// The id of the kudos that `actor`'s `request_id` names in `org` (issue 15,
// memory): "k" and 24 hex digits of a SHA-256 of the three, the shape of
// every kudos id. A retry computes the same id and finds the record itself,
// so no request key is kept per kudos (136 B).
std::string KudosIdOfRequest(absl::string_view org, absl::string_view actor,
                             absl::string_view request_id);

// At most one filter field may be set.
absl::Status ValidateFilter(const kudos::v1::KudosFilter& filter);

// Page sizes: 0 means `default_size`; above `max_size` is INVALID_ARGUMENT.
absl::StatusOr<int> PageSize(int requested, int default_size, int max_size);

// Opaque page tokens carrying a position (a sequence number or an id).
std::string EncodePageToken(absl::string_view position);
absl::StatusOr<std::string> DecodePageToken(absl::string_view token);

}  // namespace kudos
