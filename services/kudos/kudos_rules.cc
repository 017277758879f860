#include "services/kudos/kudos_rules.h"

#include <google/protobuf/util/message_differencer.h>
#include <openssl/evp.h>

#include <algorithm>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/match.h"
#include "common/auth/ids.h"
#include "common/check/check.h"
#include "common/calendar/calendar.h"

namespace kudos {
namespace {

using kudos::v1::OrgSettings;

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

constexpr char kTokenPrefix[] = "v1:";

}  // namespace

OrgSettings DefaultOrgSettings() {
  OrgSettings settings;
  settings.set_time_zone("UTC");
  settings.set_week_start(common::v1::DAY_OF_WEEK_MONDAY);
  for (auto day : {common::v1::DAY_OF_WEEK_MONDAY, common::v1::DAY_OF_WEEK_TUESDAY,
                   common::v1::DAY_OF_WEEK_WEDNESDAY, common::v1::DAY_OF_WEEK_THURSDAY,
                   common::v1::DAY_OF_WEEK_FRIDAY}) {
    settings.add_work_days(day);
  }
  const std::pair<const char*, const char*> kValues[] = {
      {"on-time-delivery", "On-time delivery"},
      {"consistent-follow-up", "Consistent follow-up"},
      {"clear-communication", "Clear and respectful communication"},
      {"service-mindset", "Service mindset"},
      {"goals-accomplished", "Goals accomplished"},
      {"empathy", "Empathy"},
      {"teamwork", "Teamwork"},
  };
  for (const auto& [id, name] : kValues) {
    kudos::v1::Value* value = settings.add_values();
    value->set_value_id(id);
    value->set_display_name(name);
  }
  settings.mutable_allowance()->set_points_per_period(100);
  settings.mutable_allowance()->set_period(common::v1::ALLOWANCE_PERIOD_MONTH);
  settings.set_min_points(1);
  settings.set_max_points(50);
  settings.set_allow_zero_points(false);
  settings.set_weekly_pair_cap_points(50);
  settings.set_max_kudos_per_minute(10);
  settings.set_streak_freezes_per_month(2);
  settings.set_values_required(true);
  settings.set_message_length_min(0);
  settings.set_allow_kudos_without_points(false);
  *settings.mutable_retention() = RetentionWithDefaults({});
  return settings;
}

common::v1::RetentionPolicy RetentionWithDefaults(common::v1::RetentionPolicy retention) {
  if (retention.idempotency_days() == 0) retention.set_idempotency_days(kDefaultIdempotencyDays);
  if (retention.kudos_live_days() == 0) retention.set_kudos_live_days(kDefaultKudosLiveDays);
  if (retention.transfers_live_days() == 0) {
    retention.set_transfers_live_days(kDefaultTransfersLiveDays);
  }
  if (retention.audit_days() == 0) retention.set_audit_days(kDefaultAuditDays);
  return retention;
}

absl::StatusOr<common::v1::RetentionPolicy> NormalizeRetention(
    const common::v1::RetentionPolicy& retention) {
  const std::pair<const char*, int32_t> kDays[] = {
      {"settings.retention.idempotency_days", retention.idempotency_days()},
      {"settings.retention.kudos_live_days", retention.kudos_live_days()},
      {"settings.retention.transfers_live_days", retention.transfers_live_days()},
      {"settings.retention.audit_days", retention.audit_days()},
  };
  for (const auto& [field, days] : kDays) {
    if (days < 0 || days > kMaxRetentionDays) {
      return Invalid(field, absl::StrCat("must be 0 (the default) or 1..", kMaxRetentionDays,
                                         " days, got ", days));
    }
  }
  common::v1::RetentionPolicy filled = RetentionWithDefaults(retention);
  if (filled.kudos_live_days() < filled.idempotency_days()) {
    return Invalid("settings.retention.kudos_live_days",
                   absl::StrCat(filled.kudos_live_days(), " is shorter than idempotency_days (",
                                filled.idempotency_days(),
                                "): a retry within the retry window must still find its kudos "
                                "live; raise kudos_live_days or lower idempotency_days"));
  }
  if (filled.transfers_live_days() < filled.idempotency_days()) {
    return Invalid("settings.retention.transfers_live_days",
                   absl::StrCat(filled.transfers_live_days(),
                                " is shorter than idempotency_days (", filled.idempotency_days(),
                                "): a retried kudos re-posts its transfer ids, which the ledger "
                                "recognises only while they are live; raise transfers_live_days or "
                                "lower idempotency_days"));
  }
  return filled;
}

absl::StatusOr<OrgSettings> NormalizeOrgSettings(OrgSettings settings) {
  const OrgSettings defaults = DefaultOrgSettings();
  if (settings.time_zone().empty()) settings.set_time_zone(defaults.time_zone());
  if (absl::Status zone = common::calendar::LoadZone(settings.time_zone()).status(); !zone.ok()) {
    return Invalid("settings.time_zone", zone.message());
  }
  if (settings.week_start() == common::v1::DAY_OF_WEEK_UNSPECIFIED) {
    settings.set_week_start(defaults.week_start());
  }
  if (settings.work_days().empty()) *settings.mutable_work_days() = defaults.work_days();
  std::set<int> work_days;
  for (int i = 0; i < settings.work_days_size(); ++i) {
    int day = settings.work_days(i);
    if (day < 1 || day > 7 || !work_days.insert(day).second) {
      return Invalid(absl::StrCat("settings.work_days[", i, "]"), "must be distinct days of the week");
    }
  }
  for (int i = 0; i < settings.holidays_size(); ++i) {
    const common::v1::Date& date = settings.holidays(i);
    absl::CivilDay day(date.year(), date.month(), date.day());
    if (date.year() < 1970 || day.year() != date.year() || day.month() != date.month() ||
        day.day() != date.day()) {
      return Invalid(absl::StrCat("settings.holidays[", i, "]"), "is not a valid date");
    }
  }
  if (settings.values().empty()) *settings.mutable_values() = defaults.values();
  if (settings.values_size() > 50) return Invalid("settings.values", "at most 50 values");
  std::set<std::string> value_ids;
  for (int i = 0; i < settings.values_size(); ++i) {
    const std::string field = absl::StrCat("settings.values[", i, "].value_id");
    if (absl::Status id = ValidateId(field, settings.values(i).value_id()); !id.ok()) return id;
    if (!value_ids.insert(settings.values(i).value_id()).second) {
      return Invalid(field, absl::StrCat("'", settings.values(i).value_id(), "' appears twice"));
    }
    if (settings.values(i).display_name().empty()) {
      settings.mutable_values(i)->set_display_name(settings.values(i).value_id());
    }
  }
  const bool had_allowance = settings.has_allowance();
  common::v1::AllowancePolicy* allowance = settings.mutable_allowance();
  if (allowance->period() == common::v1::ALLOWANCE_PERIOD_UNSPECIFIED) {
    allowance->set_period(defaults.allowance().period());
  }
  if (allowance->points_per_period() == 0 && !had_allowance) {
    allowance->set_points_per_period(defaults.allowance().points_per_period());
  }
  if (allowance->points_per_period() < 0 || allowance->points_per_period() > 1000000000) {
    return Invalid("settings.allowance.points_per_period", "must be 0..1000000000");
  }
  // The ledger counts allowance periods on the org's calendar.
  allowance->set_time_zone(settings.time_zone());
  allowance->set_week_start(settings.week_start());
  if (settings.max_points() == 0) settings.set_max_points(defaults.max_points());
  if (settings.min_points() == 0 && !settings.allow_zero_points()) {
    settings.set_min_points(defaults.min_points());
  }
  if (settings.min_points() < 0 || settings.max_points() < settings.min_points() ||
      settings.max_points() > 1000000) {
    return Invalid("settings.min_points/max_points", "need 0 <= min_points <= max_points <= 1000000");
  }
  if (settings.weekly_pair_cap_points() == 0) {
    settings.set_weekly_pair_cap_points(defaults.weekly_pair_cap_points());
  }
  if (settings.weekly_pair_cap_points() < 0) {
    return Invalid("settings.weekly_pair_cap_points", "must be positive");
  }
  if (settings.max_kudos_per_minute() == 0) {
    settings.set_max_kudos_per_minute(defaults.max_kudos_per_minute());
  }
  if (settings.max_kudos_per_minute() < 0 || settings.max_kudos_per_minute() > 10000) {
    return Invalid("settings.max_kudos_per_minute", "must be 1..10000");
  }
  if (settings.streak_freezes_per_month() < 0 || settings.streak_freezes_per_month() > 31) {
    return Invalid("settings.streak_freezes_per_month", "must be 0..31");
  }
  // Issue 18: unset values_required keeps what every org had (required).
  if (!settings.has_values_required()) settings.set_values_required(true);
  if (settings.message_length_min() < 0 || settings.message_length_min() > kMaxMessageLengthMin) {
    return Invalid("settings.message_length_min",
                   absl::StrCat("must be 0 (none)..", kMaxMessageLengthMin, " characters, got ",
                                settings.message_length_min()));
  }
  absl::StatusOr<common::v1::RetentionPolicy> retention = NormalizeRetention(settings.retention());
  if (!retention.ok()) return retention.status();
  *settings.mutable_retention() = *std::move(retention);
  return settings;
}

bool ValuesRequired(const OrgSettings& settings) {
  return !settings.has_values_required() || settings.values_required();
}

absl::Status ValidateId(absl::string_view field, absl::string_view id) {
  // The platform's one id rule (common/auth/ids.h); the messages say which part failed.
  if (common::auth::ValidId(id)) return absl::OkStatus();
  if (id.empty()) return Invalid(field, "is required");
  if (id.size() > common::auth::kMaxIdLength) {
    return Invalid(field, absl::StrCat("is longer than ", common::auth::kMaxIdLength, " characters"));
  }
  return Invalid(field, absl::StrCat("'", absl::CHexEscape(id),
                                     "' may only contain letters, digits, '.', '_' and '-'"));
}

absl::Status ValidateRequestId(absl::string_view request_id) {
  if (request_id.empty()) return Invalid("request_id", "is required (a client-made idempotency key)");
  if (request_id.size() > kMaxRequestIdBytes) return Invalid("request_id", "is longer than 128 bytes");
  for (char c : request_id) {
    if (c < 0x21 || c > 0x7e) return Invalid("request_id", "must be printable ASCII without spaces");
  }
  return absl::OkStatus();
}

absl::Status ValidatePerson(const kudos::v1::Person& person) {
  if (absl::Status id = ValidateId("person.person_id", person.person_id()); !id.ok()) return id;
  absl::StatusOr<int> name_length = Utf8Length(person.display_name());
  if (!name_length.ok()) return Invalid("person.display_name", "is not valid UTF-8");
  if (*name_length < 1 || *name_length > 100) {
    return Invalid("person.display_name", "must be 1..100 characters");
  }
  if (!person.team_id().empty()) {
    if (absl::Status id = ValidateId("person.team_id", person.team_id()); !id.ok()) return id;
  }
  if (!person.manager_id().empty()) {
    if (absl::Status id = ValidateId("person.manager_id", person.manager_id()); !id.ok()) return id;
    if (person.manager_id() == person.person_id()) {
      return Invalid("person.manager_id", "a person cannot manage themself");
    }
  }
  if (!person.time_zone().empty()) {
    if (absl::Status zone = common::calendar::LoadZone(person.time_zone()).status(); !zone.ok()) {
      return Invalid("person.time_zone", zone.message());
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTeam(const kudos::v1::Team& team) {
  if (absl::Status id = ValidateId("team.team_id", team.team_id()); !id.ok()) return id;
  absl::StatusOr<int> length = Utf8Length(team.display_name());
  if (!length.ok() || *length < 1 || *length > 100) {
    return Invalid("team.display_name", "must be 1..100 characters of UTF-8");
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Utf8Length(absl::string_view text) {
  int count = 0;
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    int extra;
    uint32_t code_point;
    if (c < 0x80) {
      extra = 0;
      code_point = c;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code_point = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code_point = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code_point = c & 0x07;
    } else {
      return absl::InvalidArgumentError("invalid UTF-8 lead byte");
    }
    if (i + extra >= text.size() && extra > 0) {
      return absl::InvalidArgumentError("truncated UTF-8 sequence");
    }
    for (int k = 1; k <= extra; ++k) {
      unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return absl::InvalidArgumentError("invalid UTF-8 continuation");
      code_point = (code_point << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
    if (code_point < kMinForLength[extra] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return absl::InvalidArgumentError("invalid UTF-8 code point");
    }
    i += extra + 1;
    ++count;
  }
  return count;
}

namespace {

// Each value in the org's catalog, none twice (the count is checked by the caller).
absl::Status ValidateCatalogValues(const google::protobuf::RepeatedPtrField<std::string>& values,
                                   const OrgSettings& settings) {
  std::set<std::string> seen;
  for (int i = 0; i < values.size(); ++i) {
    const std::string& value = values.Get(i);
    const std::string field = absl::StrCat("values[", i, "]");
    bool in_catalog = std::any_of(settings.values().begin(), settings.values().end(),
                                  [&](const kudos::v1::Value& v) { return v.value_id() == value; });
    if (!in_catalog) return Invalid(field, absl::StrCat("'", value, "' is not in the org's values catalog"));
    if (!seen.insert(value).second) return Invalid(field, absl::StrCat("'", value, "' is listed twice"));
  }
  return absl::OkStatus();
}

// A recipient named in `field` is a known, active person of the org.
absl::Status CheckRecipient(absl::string_view field, const std::string& id,
                            const Directory& directory) {
  if (absl::Status valid = ValidateId(field, id); !valid.ok()) return valid;
  auto person = directory.people.find(id);
  if (person == directory.people.end()) {
    return absl::NotFoundError(absl::StrCat(field, ": '", id, "' is not a person of this org"));
  }
  if (!person->second.active()) {
    return absl::FailedPreconditionError(absl::StrCat(field, ": '", id, "' is not active"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RequireProgramsService(const common::auth::Principal& principal) {
  if (!principal.is_service() || principal.subject != kProgramsServiceSubject) {
    return absl::PermissionDeniedError(
        "only the programs service records kudos from the company (people send kudos with SendKudos)");
  }
  return absl::OkStatus();
}

absl::Status ValidateCompanyKudos(const kudos::v1::RecordCompanyKudosRequest& request,
                                  const OrgSettings& settings, const Directory& directory) {
  if (absl::Status id = ValidateRequestId(request.request_id()); !id.ok()) return id;
  if (absl::Status recipient = CheckRecipient("recipient_id", request.recipient_id(), directory);
      !recipient.ok()) {
    return recipient;
  }
  absl::StatusOr<int> length = Utf8Length(request.message());
  if (!length.ok()) return Invalid("message", "is not valid UTF-8");
  if (*length < 1 || *length > kMaxMessageChars) {
    return Invalid("message", absl::StrCat("must be 1..", kMaxMessageChars, " characters, got ", *length));
  }
  if (request.values_size() > kMaxValues) {
    return Invalid("values", absl::StrCat("at most ", kMaxValues, " values"));
  }
  if (absl::Status values = ValidateCatalogValues(request.values(), settings); !values.ok()) {
    return values;
  }
  if (request.points() < 0 || request.points() > kMaxCompanyKudosPoints) {
    return Invalid("points", absl::StrCat("must be 0..", kMaxCompanyKudosPoints, ", got ",
                                          request.points()));
  }
  const std::string& transfer_id = request.transfer_id();
  if (request.points() == 0) {
    if (!transfer_id.empty()) return Invalid("transfer_id", "must be empty when points is 0");
    return absl::OkStatus();
  }
  if (transfer_id.empty()) {
    return Invalid("transfer_id", "is required when points > 0 (the ledger transfer that paid them)");
  }
  if (transfer_id.size() > static_cast<size_t>(kMaxTransferIdBytes)) {
    return Invalid("transfer_id", absl::StrCat("is longer than ", kMaxTransferIdBytes, " bytes"));
  }
  for (char c : transfer_id) {
    if (c < 0x21 || c > 0x7e) return Invalid("transfer_id", "must be printable ASCII without spaces");
  }
  return absl::OkStatus();
}

absl::Status ValidateSendKudos(const kudos::v1::SendKudosRequest& request,
                               absl::string_view giver_id, const OrgSettings& settings,
                               const Directory& directory) {
  if (absl::Status id = ValidateRequestId(request.request_id()); !id.ok()) return id;
  if (request.recipient_ids().empty()) return Invalid("recipient_ids", "name at least one recipient");
  if (request.recipient_ids_size() > kMaxRecipients) {
    return Invalid("recipient_ids", absl::StrCat("at most ", kMaxRecipients, " recipients"));
  }
  std::set<std::string> seen;
  for (int i = 0; i < request.recipient_ids_size(); ++i) {
    const std::string& id = request.recipient_ids(i);
    const std::string field = absl::StrCat("recipient_ids[", i, "]");
    if (absl::Status valid = ValidateId(field, id); !valid.ok()) return valid;
    if (id == giver_id) return Invalid(field, "you cannot recognize yourself");
    if (!seen.insert(id).second) return Invalid(field, absl::StrCat("'", id, "' is listed twice"));
    auto person = directory.people.find(id);
    if (person == directory.people.end()) {
      return absl::NotFoundError(absl::StrCat(field, ": '", id, "' is not a person of this org"));
    }
    if (!person->second.active()) {
      return absl::FailedPreconditionError(absl::StrCat(field, ": '", id, "' is not active"));
    }
  }
  absl::StatusOr<int> length = Utf8Length(request.message());
  if (!length.ok()) return Invalid("message", "is not valid UTF-8");
  if (*length < 1 || *length > kMaxMessageChars) {
    return Invalid("message", absl::StrCat("must be 1..", kMaxMessageChars, " characters, got ", *length));
  }
  if (*length < settings.message_length_min()) {
    return Invalid("message", absl::StrCat("must be at least ", settings.message_length_min(),
                                           " characters (the org's minimum), got ", *length));
  }
  if (request.values().empty() && ValuesRequired(settings)) {
    return Invalid("values", "name at least one value of the catalog");
  }
  if (!kudos::v1::KudosVisibility_IsValid(request.visibility())) {
    return Invalid("visibility", absl::StrCat("unknown visibility ", request.visibility()));
  }
  if (request.values_size() > kMaxValues) {
    return Invalid("values", absl::StrCat("at most ", kMaxValues, " values"));
  }
  if (absl::Status values = ValidateCatalogValues(request.values(), settings); !values.ok()) {
    return values;
  }
  int64_t points = request.points_per_recipient();
  if (points == 0 && settings.allow_zero_points()) return absl::OkStatus();
  if (points < settings.min_points() || points > settings.max_points()) {
    return Invalid("points_per_recipient",
                   absl::StrCat(points, " is outside the org's bounds ", settings.min_points(), "..",
                                settings.max_points(),
                                settings.allow_zero_points() ? " (or 0)" : ""));
  }
  return absl::OkStatus();
}

absl::Status ValidateBoost(const kudos::v1::BoostKudosRequest& request,
                           absl::string_view booster_id, const kudos::v1::Kudos& kudos,
                           const OrgSettings& settings) {
  if (absl::Status id = ValidateRequestId(request.request_id()); !id.ok()) return id;
  if (kudos.giver_id() == booster_id) {
    return absl::FailedPreconditionError("kudos_id: you cannot boost your own kudos");
  }
  for (const std::string& recipient : kudos.recipient_ids()) {
    if (recipient == booster_id) {
      return absl::FailedPreconditionError("kudos_id: you cannot boost a kudos you received");
    }
  }
  if (kudos.state() != kudos::v1::KUDOS_STATE_COMMITTED) {
    return absl::FailedPreconditionError("kudos_id: only a committed kudos can be boosted");
  }
  if (request.points() < std::max<int64_t>(1, settings.min_points()) ||
      request.points() > settings.max_points()) {
    return Invalid("points", absl::StrCat(request.points(), " is outside the org's bounds ",
                                          std::max<int64_t>(1, settings.min_points()), "..",
                                          settings.max_points()));
  }
  return absl::OkStatus();
}

Viewer ViewerOf(const common::auth::Principal& principal) {
  Viewer viewer;
  if (!principal.is_service() && !principal.is_screen_only()) viewer.person_id = principal.subject;
  viewer.admin = principal.is_admin() && !principal.is_service();
  return viewer;
}

bool IsPrivate(const kudos::v1::Kudos& kudos) {
  return kudos.visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE;
}

bool IsPartyTo(const kudos::v1::Kudos& kudos, absl::string_view person_id) {
  if (person_id.empty()) return false;
  if (kudos.giver_id() == person_id) return true;
  return std::find(kudos.recipient_ids().begin(), kudos.recipient_ids().end(), person_id) !=
         kudos.recipient_ids().end();
}

bool NeedsManagers(const kudos::v1::Kudos& kudos, const Viewer& viewer) {
  return IsPrivate(kudos) && !viewer.person_id.empty() && !IsPartyTo(kudos, viewer.person_id);
}

bool MaySee(const kudos::v1::Kudos& kudos, const Viewer& viewer, bool viewer_manages_a_recipient) {
  if (kudos.retracted() && !viewer.admin) return false;
  if (!IsPrivate(kudos)) return true;
  if (viewer.person_id.empty()) return false;  // services and screens: public kudos only
  return IsPartyTo(kudos, viewer.person_id) || viewer_manages_a_recipient;
}

absl::Status ValidateSelfUpdate(const kudos::v1::Person& stored, const kudos::v1::Person& update) {
  // Field by field (reflection: a field added to Person later is covered too).
  const google::protobuf::Descriptor* person = kudos::v1::Person::descriptor();
  for (int i = 0; i < person->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = person->field(i);
    if (field->number() == kudos::v1::Person::kHiddenFromLeaderboardsFieldNumber) continue;
    google::protobuf::util::MessageDifferencer only_this_field;
    for (int j = 0; j < person->field_count(); ++j) {
      if (j != i) only_this_field.IgnoreField(person->field(j));
    }
    if (!only_this_field.Compare(stored, update)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "person.", field->name(), ": only admins change it; you may change only your own "
          "hidden_from_leaderboards"));
    }
  }
  return absl::OkStatus();
}

namespace {
// SHA-256 of the message with its idempotency key cleared.
template <typename Message>
std::string DigestWithoutRequestId(Message message) {
  message.clear_request_id();
  std::string bytes = message.SerializeAsString();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), length));
}
}  // namespace

std::string SendFingerprint(const kudos::v1::SendKudosRequest& request) {
  return DigestWithoutRequestId(request);
}

std::string BoostFingerprint(const kudos::v1::BoostKudosRequest& request) {
  return DigestWithoutRequestId(request);
}

std::string CompanyFingerprint(const kudos::v1::RecordCompanyKudosRequest& request) {
  return DigestWithoutRequestId(request);
}

std::string KudosIdOfRequest(absl::string_view org, absl::string_view actor,
                             absl::string_view request_id) {
  // Each part ends with a NUL (no id holds one), so no two triples hash the same bytes.
  const std::string bytes = absl::StrCat(org, absl::string_view("\0", 1), actor,
                                         absl::string_view("\0", 1), request_id);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  KUDOS_CHECK(length >= 12, "SHA-256 gives 32 bytes");
  return absl::StrCat("k", absl::BytesToHexString(absl::string_view(
                               reinterpret_cast<const char*>(digest), 12)));
}

absl::Status ValidateFilter(const kudos::v1::KudosFilter& filter) {
  int set = !filter.giver_id().empty() + !filter.recipient_id().empty() +
            !filter.team_id().empty() + !filter.value().empty();
  if (set > 1) return Invalid("filter", "set at most one of giver_id, recipient_id, team_id, value");
  if (!filter.giver_id().empty()) return ValidateId("filter.giver_id", filter.giver_id());
  if (!filter.recipient_id().empty()) return ValidateId("filter.recipient_id", filter.recipient_id());
  if (!filter.team_id().empty()) return ValidateId("filter.team_id", filter.team_id());
  if (!filter.value().empty()) return ValidateId("filter.value", filter.value());
  return absl::OkStatus();
}

absl::StatusOr<int> PageSize(int requested, int default_size, int max_size) {
  if (requested == 0) return default_size;
  if (requested < 0 || requested > max_size) {
    return Invalid("page_size", absl::StrCat("must be 1..", max_size));
  }
  return requested;
}

std::string EncodePageToken(absl::string_view position) {
  return absl::WebSafeBase64Escape(absl::StrCat(kTokenPrefix, position));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token) {
  std::string decoded;
  if (token.size() > 512 || !absl::WebSafeBase64Unescape(token, &decoded) ||
      !absl::StartsWith(decoded, kTokenPrefix)) {
    return Invalid("page_token", "is not a token this API returned");
  }
  return decoded.substr(sizeof(kTokenPrefix) - 1);
}

}  // namespace kudos
