// Fuzzes what the kudos service checks and digests before its Lua scripts
// run: a SendKudos request against the directory and settings
// (ValidateSendKudos, SendFingerprint: the idempotency check's ARGV), and
// org settings as an admin sends them (NormalizeOrgSettings: put_settings'
// ARGV and the OrgSettingsChanged event).
// Input: a mode byte, then a serialized SendKudosRequest (mode 0) or
// OrgSettings (mode 1).
// Invariants: an accepted request satisfies every rule the scripts rely on
// (known, active, distinct recipients other than the giver; 1..1000
// characters; catalog values; points in bounds); the fingerprint ignores
// only the request id; normalizing settings twice changes nothing.
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <set>
#include <string>

#include "common/check/check.h"
#include "services/kudos/kudos_rules.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

constexpr char kGiver[] = "alice";

kudos::Directory MakeDirectory() {
  kudos::Directory directory;
  for (const char* id : {"alice", "bob", "carol", "dave"}) {
    kudos::v1::Person person;
    person.set_person_id(id);
    person.set_active(std::string(id) != "dave");
    directory.people[id] = person;
  }
  return directory;
}

void CheckRefusal(const absl::Status& status) {
  KUDOS_CHECK(status.code() == absl::StatusCode::kInvalidArgument ||
                  status.code() == absl::StatusCode::kNotFound ||
                  status.code() == absl::StatusCode::kFailedPrecondition,
              "a refused kudos is INVALID_ARGUMENT, NOT_FOUND or FAILED_PRECONDITION");
  KUDOS_CHECK(!status.message().empty(), "a refusal says why");
}

void SendKudos(const std::string& bytes) {
  static const kudos::Directory directory = MakeDirectory();
  static const kudos::v1::OrgSettings settings = *kudos::NormalizeOrgSettings({});
  kudos::v1::SendKudosRequest request;
  if (!request.ParseFromString(bytes)) return;
  absl::Status valid = kudos::ValidateSendKudos(request, kGiver, settings, directory);
  if (!valid.ok()) return CheckRefusal(valid);

  std::set<std::string> recipients;
  for (const std::string& id : request.recipient_ids()) {
    KUDOS_CHECK(kudos::ValidateId("recipient", id).ok(), "recipients are valid ids");
    KUDOS_CHECK(id != kGiver, "nobody recognizes themself");
    KUDOS_CHECK(directory.people.at(id).active(), "recipients are active people");
    KUDOS_CHECK(recipients.insert(id).second, "recipients are distinct");
  }
  KUDOS_CHECK(!recipients.empty() && recipients.size() <= kudos::kMaxRecipients,
              "1..20 recipients");
  absl::StatusOr<int> length = kudos::Utf8Length(request.message());
  KUDOS_CHECK(length.ok() && *length >= 1 && *length <= kudos::kMaxMessageChars,
              "the message is 1..1000 characters of UTF-8");
  KUDOS_CHECK(request.values_size() >= 1 && request.values_size() <= kudos::kMaxValues,
              "1..3 values");
  int64_t points = request.points_per_recipient();
  KUDOS_CHECK((points == 0 && settings.allow_zero_points()) ||
                  (points >= settings.min_points() && points <= settings.max_points()),
              "points within the org's bounds");

  std::string fingerprint = kudos::SendFingerprint(request);
  kudos::v1::SendKudosRequest retry = request;
  retry.set_request_id(request.request_id() + "-retry");
  KUDOS_CHECK(kudos::SendFingerprint(retry) == fingerprint,
              "the fingerprint ignores the request id");
  kudos::v1::SendKudosRequest other = request;
  other.set_points_per_recipient(points + 1);
  KUDOS_CHECK(kudos::SendFingerprint(other) != fingerprint, "points are part of the fingerprint");
}

void Settings(const std::string& bytes) {
  kudos::v1::OrgSettings settings;
  if (!settings.ParseFromString(bytes)) return;
  absl::StatusOr<kudos::v1::OrgSettings> normalized = kudos::NormalizeOrgSettings(settings);
  if (!normalized.ok()) {
    KUDOS_CHECK(normalized.status().code() == absl::StatusCode::kInvalidArgument,
                "bad settings are INVALID_ARGUMENT");
    return;
  }
  KUDOS_CHECK(normalized->min_points() <= normalized->max_points(), "point bounds are ordered");
  for (const kudos::v1::Value& value : normalized->values()) {
    KUDOS_CHECK(kudos::ValidateId("value", value.value_id()).ok(), "catalog ids are valid ids");
  }
  absl::StatusOr<kudos::v1::OrgSettings> twice = kudos::NormalizeOrgSettings(*normalized);
  KUDOS_CHECK(twice.ok(), "normalized settings are valid settings");
  KUDOS_CHECK(google::protobuf::util::MessageDifferencer::Equals(*twice, *normalized),
              "normalizing is idempotent");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::QuietProtobuf();
  fuzz::Input input(data, size);
  uint8_t mode = input.Byte() % 2;
  std::string bytes = input.Rest();
  if (mode == 0) SendKudos(bytes);
  if (mode == 1) Settings(bytes);
  return 0;
}
