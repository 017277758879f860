#include "services/kudos/kudos_rules.h"
#include "services/kudos/archive_chunk.h"
#include "services/kudos/directory_cache.h"
#include "services/kudos/ledger_client.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/ids/packed_id.h"

namespace kudos {
namespace {

using kudos::v1::SendKudosRequest;

Directory People() {
  Directory directory;
  for (const char* id : {"alice", "bob", "carol"}) {
    kudos::v1::Person person;
    person.set_person_id(id);
    person.set_display_name(id);
    person.set_active(true);
    directory.people[id] = person;
  }
  directory.people["carol"].set_active(false);
  return directory;
}

SendKudosRequest Valid() {
  SendKudosRequest request;
  request.set_request_id("r1");
  request.add_recipient_ids("bob");
  request.set_message("Thanks for the quick turnaround!");
  request.add_values("teamwork");
  request.set_points_per_recipient(10);
  return request;
}

absl::StatusCode CodeOf(const SendKudosRequest& request,
                        const kudos::v1::OrgSettings& settings = DefaultOrgSettings()) {
  return ValidateSendKudos(request, "alice", settings, People()).code();
}

TEST(KudosRulesTest, ValidKudosPasses) { EXPECT_EQ(CodeOf(Valid()), absl::StatusCode::kOk); }

TEST(KudosRulesTest, SendKudos_RejectsSelfRecognition) {
  SendKudosRequest request = Valid();
  request.set_recipient_ids(0, "alice");
  absl::Status status = ValidateSendKudos(request, "alice", DefaultOrgSettings(), People());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "recipient_ids[0]: you cannot recognize yourself");
}

TEST(KudosRulesTest, SendKudos_RejectsUnknownInactiveAndDuplicateRecipients) {
  SendKudosRequest unknown = Valid();
  unknown.add_recipient_ids("zed");
  EXPECT_EQ(CodeOf(unknown), absl::StatusCode::kNotFound);
  SendKudosRequest inactive = Valid();
  inactive.add_recipient_ids("carol");
  EXPECT_EQ(CodeOf(inactive), absl::StatusCode::kFailedPrecondition);
  SendKudosRequest duplicate = Valid();
  duplicate.add_recipient_ids("bob");
  EXPECT_EQ(CodeOf(duplicate), absl::StatusCode::kInvalidArgument);
  SendKudosRequest none = Valid();
  none.clear_recipient_ids();
  EXPECT_EQ(CodeOf(none), absl::StatusCode::kInvalidArgument);
}

TEST(KudosRulesTest, SendKudos_RejectsMoreThanTwentyRecipients) {
  SendKudosRequest request = Valid();
  for (int i = 0; i < 20; ++i) request.add_recipient_ids("p" + std::to_string(i));
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument);
}

TEST(KudosRulesTest, SendKudos_MessageMustBeOneToThousandCharactersOfUtf8) {
  SendKudosRequest request = Valid();
  request.set_message("");
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument);
  // 1000 two-byte characters are 1000 characters, not 2000.
  std::string accented;
  for (int i = 0; i < 1000; ++i) accented += "\xC3\xA9";
  request.set_message(accented);
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kOk);
  request.set_message(accented + "e");
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument);
  for (const char* bad : {"\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xFF", "ok\xE2\x82"}) {
    request.set_message(bad);
    EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(KudosRulesTest, SendKudos_ValuesComeFromTheCatalogOneToThree) {
  SendKudosRequest request = Valid();
  request.clear_values();
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument);
  request.add_values("bravery");
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument);
  request.clear_values();
  for (const char* value : {"teamwork", "empathy", "service-mindset", "goals-accomplished"}) {
    request.add_values(value);
  }
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument);
  request.mutable_values()->RemoveLast();
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kOk);
}

TEST(KudosRulesTest, SendKudos_PointsWithinBoundsAndZeroOnlyWhenAllowed) {
  SendKudosRequest request = Valid();
  request.set_points_per_recipient(51);
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument);
  request.set_points_per_recipient(-1);
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument);
  request.set_points_per_recipient(0);
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument);
  kudos::v1::OrgSettings settings = DefaultOrgSettings();
  settings.set_allow_zero_points(true);
  EXPECT_EQ(CodeOf(request, settings), absl::StatusCode::kOk);
}

TEST(KudosRulesTest, DefaultCatalogHasTheSevenServiceValues) {
  kudos::v1::OrgSettings settings = DefaultOrgSettings();
  ASSERT_EQ(settings.values_size(), 7);
  EXPECT_EQ(settings.values(0).value_id(), "on-time-delivery");
  EXPECT_EQ(settings.values(6).value_id(), "teamwork");
}

TEST(KudosRulesTest, NormalizeOrgSettings_FillsDefaultsAndRejectsBadZone) {
  kudos::v1::OrgSettings empty;
  absl::StatusOr<kudos::v1::OrgSettings> normalized = NormalizeOrgSettings(empty);
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  EXPECT_EQ(normalized->time_zone(), "UTC");
  EXPECT_EQ(normalized->work_days_size(), 5);
  EXPECT_EQ(normalized->allowance().points_per_period(), 100);
  kudos::v1::OrgSettings bad;
  bad.set_time_zone("Nowhere/City");
  EXPECT_EQ(NormalizeOrgSettings(bad).status().code(), absl::StatusCode::kInvalidArgument);
  kudos::v1::OrgSettings inverted;
  inverted.set_min_points(10);
  inverted.set_max_points(5);
  EXPECT_EQ(NormalizeOrgSettings(inverted).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KudosRulesTest, Retention_ZeroMeansTheDocumentedDefaults) {
  absl::StatusOr<kudos::v1::OrgSettings> normalized = NormalizeOrgSettings({});
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  EXPECT_EQ(normalized->retention().idempotency_days(), 30);
  EXPECT_EQ(normalized->retention().kudos_live_days(), 400);
  EXPECT_EQ(normalized->retention().transfers_live_days(), 400);
  EXPECT_EQ(normalized->retention().audit_days(), 400);
  EXPECT_EQ(DefaultOrgSettings().retention().SerializeAsString(),
            normalized->retention().SerializeAsString());
  kudos::v1::OrgSettings custom;
  custom.mutable_retention()->set_idempotency_days(7);
  custom.mutable_retention()->set_audit_days(3650);
  normalized = NormalizeOrgSettings(custom);
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  EXPECT_EQ(normalized->retention().idempotency_days(), 7);
  EXPECT_EQ(normalized->retention().kudos_live_days(), 400);
  EXPECT_EQ(normalized->retention().audit_days(), 3650);
}

TEST(KudosRulesTest, Retention_OutOfRangeDaysAreInvalidArgumentNamingTheField) {
  const std::pair<const char*, void (common::v1::RetentionPolicy::*)(int32_t)> kFields[] = {
      {"settings.retention.idempotency_days", &common::v1::RetentionPolicy::set_idempotency_days},
      {"settings.retention.kudos_live_days", &common::v1::RetentionPolicy::set_kudos_live_days},
      {"settings.retention.transfers_live_days",
       &common::v1::RetentionPolicy::set_transfers_live_days},
      {"settings.retention.audit_days", &common::v1::RetentionPolicy::set_audit_days},
  };
  for (const auto& [field, set] : kFields) {
    for (int32_t days : {-1, 3651}) {
      kudos::v1::OrgSettings settings;
      (settings.mutable_retention()->*set)(days);
      absl::Status status = NormalizeOrgSettings(settings).status();
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field << " " << days;
      EXPECT_TRUE(absl::StartsWith(status.message(), field)) << status.message();
    }
  }
}

TEST(KudosRulesTest, Retention_KudosMustStayLiveAsLongAsRequestIdsAreRemembered) {
  kudos::v1::OrgSettings settings;
  settings.mutable_retention()->set_idempotency_days(60);
  settings.mutable_retention()->set_kudos_live_days(45);
  absl::Status status = NormalizeOrgSettings(settings).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(status.message(), "settings.retention.kudos_live_days"))
      << status.message();
  EXPECT_TRUE(absl::StrContains(status.message(), "retry window")) << status.message();
  // The default live window (400) against a longer retry window is refused too.
  settings.mutable_retention()->set_kudos_live_days(0);
  settings.mutable_retention()->set_idempotency_days(401);
  EXPECT_EQ(NormalizeOrgSettings(settings).status().code(), absl::StatusCode::kInvalidArgument);
  settings.mutable_retention()->set_kudos_live_days(401);
  status = NormalizeOrgSettings(settings).status();  // transfers_live_days 400 < 401 too
  EXPECT_TRUE(absl::StartsWith(status.message(), "settings.retention.transfers_live_days"))
      << status.message();
  settings.mutable_retention()->set_transfers_live_days(401);
  EXPECT_TRUE(NormalizeOrgSettings(settings).ok());
}

TEST(KudosRulesTest, FingerprintIgnoresRequestIdButNotPayload) {
  SendKudosRequest a = Valid();
  SendKudosRequest b = Valid();
  b.set_request_id("other");
  EXPECT_EQ(SendFingerprint(a), SendFingerprint(b));
  b.set_points_per_recipient(11);
  EXPECT_NE(SendFingerprint(a), SendFingerprint(b));
}

// Stored records are named by it: it must never change.
TEST(KudosRulesTest, KudosIdOfRequest_IsStableShapedLikeEveryKudosIdAndPacks) {
  const std::string id = KudosIdOfRequest("acme", "alice", "r1");
  EXPECT_EQ(id, "k9e52453204650e31011fed9a");  // SHA-256 of "acme\0alice\0r1", 12 bytes
  EXPECT_TRUE(common::ids::PackKudosId(id).has_value());
  EXPECT_NE(KudosIdOfRequest("acme", "alice", "r2"), id);
  EXPECT_NE(KudosIdOfRequest("acme", "bob", "r1"), id);
  EXPECT_NE(KudosIdOfRequest("other", "alice", "r1"), id);
  // The NUL between parts: ("ab", "c") and ("a", "bc") differ.
  EXPECT_NE(KudosIdOfRequest("acme", "ab", "c"), KudosIdOfRequest("acme", "a", "bc"));
}

TEST(KudosRulesTest, PageTokensRoundTripAndRejectGarbage) {
  EXPECT_EQ(*DecodePageToken(EncodePageToken("42")), "42");
  EXPECT_FALSE(DecodePageToken("!!!").ok());
  EXPECT_FALSE(DecodePageToken("YWJj").ok());  // "abc": valid base64, not ours
}

TEST(KudosRulesTest, ValidateId_RejectsSeparatorsAndLongIds) {
  EXPECT_TRUE(ValidateId("id", "alice.smith-2").ok());
  EXPECT_FALSE(ValidateId("id", "a:b").ok());
  EXPECT_FALSE(ValidateId("id", "a{b}").ok());
  EXPECT_FALSE(ValidateId("id", std::string(65, 'a')).ok());
}

// ---- Issue 18 part 6 -------------------------------------------------------

TEST(KudosRulesTest, SendKudos_ValuesOptionalOnlyWhenTheOrgSaysSo) {
  SendKudosRequest request = Valid();
  request.clear_values();
  kudos::v1::OrgSettings settings = DefaultOrgSettings();
  EXPECT_EQ(CodeOf(request, settings), absl::StatusCode::kInvalidArgument);
  settings.clear_values_required();  // stored before issue 18: values stay required
  EXPECT_EQ(CodeOf(request, settings), absl::StatusCode::kInvalidArgument);
  settings.set_values_required(false);
  EXPECT_EQ(CodeOf(request, settings), absl::StatusCode::kOk);
  request.add_values("bravery");
  EXPECT_EQ(CodeOf(request, settings), absl::StatusCode::kInvalidArgument);
}

TEST(KudosRulesTest, SendKudos_MessageLengthMinCountsCodePoints) {
  kudos::v1::OrgSettings settings = DefaultOrgSettings();
  settings.set_message_length_min(5);
  SendKudosRequest request = Valid();
  request.set_message("\xC3\xA9t\xC3\xA9!");  // "été!": 4 code points, 6 bytes
  absl::Status status = ValidateSendKudos(request, "alice", settings, People());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "message: must be at least 5 characters (the org's minimum), got 4");
  request.set_message("\xC3\xA9t\xC3\xA9!!");
  EXPECT_EQ(CodeOf(request, settings), absl::StatusCode::kOk);
}

TEST(KudosRulesTest, SendKudos_UnknownVisibilityIsInvalid) {
  SendKudosRequest request = Valid();
  request.set_visibility(kudos::v1::KUDOS_VISIBILITY_PRIVATE);
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kOk);
  request.set_visibility(static_cast<kudos::v1::KudosVisibility>(9));
  EXPECT_EQ(CodeOf(request), absl::StatusCode::kInvalidArgument);
}

TEST(KudosRulesTest, OrgSettings_MessageLengthMinIsBoundedAndValuesRequiredDefaultsToTrue) {
  kudos::v1::OrgSettings settings;
  absl::StatusOr<kudos::v1::OrgSettings> normalized = NormalizeOrgSettings(settings);
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  EXPECT_TRUE(normalized->has_values_required() && normalized->values_required());
  settings.set_values_required(false);
  EXPECT_FALSE(NormalizeOrgSettings(settings)->values_required());
  for (int bad : {-1, kMaxMessageLengthMin + 1}) {
    settings.set_message_length_min(bad);
    absl::Status status = NormalizeOrgSettings(settings).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(status.message(), "settings.message_length_min: must be 0 (none)..500"))
        << status.message();
  }
  settings.set_message_length_min(kMaxMessageLengthMin);
  EXPECT_TRUE(NormalizeOrgSettings(settings).ok());
}

TEST(KudosRulesTest, MaySee_PrivateForItsPartiesAndManagersRetractedForAdmins) {
  kudos::v1::Kudos kudos;
  kudos.set_giver_id("alice");
  kudos.add_recipient_ids("bob");
  const Viewer alice{"alice", false}, bob{"bob", false}, carol{"carol", false};
  const Viewer admin{"root", true}, screen{"", false};
  for (const Viewer& viewer : {alice, bob, carol, admin, screen}) {
    EXPECT_TRUE(MaySee(kudos, viewer, false)) << viewer.person_id;
  }
  kudos.set_visibility(kudos::v1::KUDOS_VISIBILITY_PRIVATE);
  EXPECT_TRUE(MaySee(kudos, alice, false));
  EXPECT_TRUE(MaySee(kudos, bob, false));
  EXPECT_FALSE(MaySee(kudos, carol, false));
  EXPECT_TRUE(MaySee(kudos, carol, true));  // carol manages bob
  EXPECT_FALSE(MaySee(kudos, admin, false));
  EXPECT_FALSE(MaySee(kudos, screen, true));
  EXPECT_TRUE(NeedsManagers(kudos, carol));
  EXPECT_FALSE(NeedsManagers(kudos, alice));
  EXPECT_FALSE(NeedsManagers(kudos, screen));
  kudos.set_visibility(kudos::v1::KUDOS_VISIBILITY_PUBLIC);
  kudos.set_retracted(true);
  EXPECT_FALSE(MaySee(kudos, alice, false));
  EXPECT_FALSE(MaySee(kudos, bob, false));
  EXPECT_TRUE(MaySee(kudos, admin, false));
}

common::auth::Principal As(const std::string& subject, uint32_t roles) {
  common::auth::Principal principal;
  principal.subject = subject;
  principal.org = "acme";
  principal.roles = roles;
  return principal;
}

TEST(KudosRulesTest, ViewerOf_ServicesAndScreensAreNoPersonAndServicesNoAdmin) {
  using common::auth::Role;
  const Viewer member = ViewerOf(As("bob", static_cast<uint32_t>(Role::kMember)));
  EXPECT_EQ(member.person_id, "bob");
  EXPECT_FALSE(member.admin);
  EXPECT_TRUE(ViewerOf(As("root", static_cast<uint32_t>(Role::kAdmin))).admin);
  EXPECT_EQ(ViewerOf(As("lobby", static_cast<uint32_t>(Role::kScreen))).person_id, "");
  const Viewer service = ViewerOf(
      As("gateway", static_cast<uint32_t>(Role::kService) | static_cast<uint32_t>(Role::kAdmin)));
  EXPECT_EQ(service.person_id, "");
  EXPECT_FALSE(service.admin);
}

TEST(KudosRulesTest, ValidateSelfUpdate_OnlyHiddenFromLeaderboardsMayChange) {
  kudos::v1::Person stored;
  stored.set_person_id("bob");
  stored.set_display_name("Bob");
  stored.set_team_id("eng");
  stored.set_active(true);
  kudos::v1::Person update = stored;
  update.set_hidden_from_leaderboards(true);
  EXPECT_TRUE(ValidateSelfUpdate(stored, update).ok());
  update.set_time_zone("Europe/Paris");
  absl::Status status = ValidateSelfUpdate(stored, update);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StartsWith(status.message(), "person.time_zone: only admins change it"))
      << status.message();
  update = stored;
  update.set_active(false);
  EXPECT_EQ(ValidateSelfUpdate(stored, update).code(), absl::StatusCode::kPermissionDenied);
  update = stored;
  update.set_manager_id("carol");
  EXPECT_EQ(ValidateSelfUpdate(stored, update).code(), absl::StatusCode::kPermissionDenied);
}

// ---- kudos from the company (issue 18 part 3) ----

kudos::v1::RecordCompanyKudosRequest ValidCompany() {
  kudos::v1::RecordCompanyKudosRequest request;
  request.set_request_id("birthday:2027:bob");
  request.set_recipient_id("bob");
  request.set_message("Happy birthday, Bob!");
  request.set_points(10);
  request.set_transfer_id("celebration:birthday:2027:bob");
  return request;
}

absl::Status CompanyStatus(const kudos::v1::RecordCompanyKudosRequest& request) {
  return ValidateCompanyKudos(request, DefaultOrgSettings(), People());
}

TEST(KudosRulesTest, CompanyKudos_OnlyTheProgramsServiceMayRecordOne) {
  common::auth::Principal programs;
  programs.subject = "programs";
  programs.org = "acme";
  programs.roles = static_cast<uint32_t>(common::auth::Role::kService);
  EXPECT_TRUE(RequireProgramsService(programs).ok());
  common::auth::Principal other_service = programs;
  other_service.subject = "kudos";
  EXPECT_EQ(RequireProgramsService(other_service).code(), absl::StatusCode::kPermissionDenied);
  // A person's token (even an admin's) whose subject happens to be "programs".
  common::auth::Principal person_named_programs = programs;
  person_named_programs.roles = static_cast<uint32_t>(common::auth::Role::kAdmin);
  EXPECT_EQ(RequireProgramsService(person_named_programs).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(KudosRulesTest, CompanyKudos_BadInputNamesTheField) {
  EXPECT_TRUE(CompanyStatus(ValidCompany()).ok());
  kudos::v1::RecordCompanyKudosRequest no_points = ValidCompany();
  no_points.set_points(0);
  no_points.clear_transfer_id();
  EXPECT_TRUE(CompanyStatus(no_points).ok());
  // Values are optional, and the org's message minimum is for people.
  kudos::v1::OrgSettings strict = DefaultOrgSettings();
  strict.set_message_length_min(100);
  EXPECT_TRUE(ValidateCompanyKudos(ValidCompany(), strict, People()).ok());

  auto message_of = [](std::function<void(kudos::v1::RecordCompanyKudosRequest&)> change) {
    kudos::v1::RecordCompanyKudosRequest request = ValidCompany();
    change(request);
    return std::string(CompanyStatus(request).message());
  };
  EXPECT_EQ(message_of([](auto& r) { r.set_recipient_id("zed"); }),
            "recipient_id: 'zed' is not a person of this org");
  EXPECT_EQ(message_of([](auto& r) { r.set_recipient_id("carol"); }),
            "recipient_id: 'carol' is not active");
  EXPECT_EQ(message_of([](auto& r) { r.clear_message(); }),
            "message: must be 1..1000 characters, got 0");
  EXPECT_EQ(message_of([](auto& r) { r.set_points(1000001); }),
            "points: must be 0..1000000, got 1000001");
  EXPECT_EQ(message_of([](auto& r) { r.set_transfer_id("has space"); }),
            "transfer_id: must be printable ASCII without spaces");
  EXPECT_EQ(message_of([](auto& r) { r.add_values("teamwork"); r.add_values("teamwork"); }),
            "values[1]: 'teamwork' is listed twice");
}

TEST(KudosRulesTest, CompanyKudos_IsInNoGiverFeed) {
  kudos::v1::Kudos kudos;
  kudos.set_from_company(true);
  kudos.add_recipient_ids("bob");
  std::vector<std::string> feeds = FeedKeysOf(kudos, {"eng"});
  EXPECT_EQ(feeds, (std::vector<std::string>{"feed:all", "feed:recipient:bob", "feed:team:eng"}));
}


// ---- DirectoryCache (SendKudos' cached directory) ------------------------------------------------

kudos::v1::Person CachedPerson(const std::string& id, const std::string& team) {
  kudos::v1::Person person;
  person.set_person_id(id);
  person.set_team_id(team);
  person.set_active(true);
  return person;
}

std::map<std::string, kudos::v1::Person> CachedPeople(const std::vector<std::string>& ids) {
  std::map<std::string, kudos::v1::Person> people;
  for (const std::string& id : ids) people[id] = CachedPerson(id, "eng");
  return people;
}

kudos::v1::OrgSettings SettingsWithMaxPoints(int64_t max_points) {
  kudos::v1::OrgSettings settings;
  settings.set_max_points(max_points);
  return settings;
}

TEST(DirectoryCacheTest, DirectoryCache_FindsOnlyWhenEveryPersonAskedForWasRead) {
  DirectoryCache cache;
  EXPECT_FALSE(cache.Find("acme", {"alice"}).has_value());
  cache.Put("acme", "7", SettingsWithMaxPoints(50), CachedPeople({"alice", "bob"}));
  std::optional<DirectoryCache::Hit> hit = cache.Find("acme", {"bob", "alice", "bob"});
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->version, "7");
  EXPECT_EQ(hit->settings.max_points(), 50);
  EXPECT_EQ(hit->people.size(), 2u);
  EXPECT_EQ(hit->people.at("bob").team_id(), "eng");
  // Someone never read (absent from the directory, or not asked yet): read again.
  EXPECT_FALSE(cache.Find("acme", {"alice", "carol"}).has_value());
  // Another org shares nothing.
  EXPECT_FALSE(cache.Find("other", {"alice"}).has_value());
}

TEST(DirectoryCacheTest, DirectoryCache_AReadAtAnotherVersionDropsTheOrgsEarlierEntries) {
  DirectoryCache cache;
  cache.Put("acme", "7", SettingsWithMaxPoints(50), CachedPeople({"alice", "bob"}));
  std::map<std::string, kudos::v1::Person> moved = {{"bob", CachedPerson("bob", "ops")}};
  cache.Put("acme", "8", SettingsWithMaxPoints(10), moved);
  // alice was read at version 7 only: not found with version 8's entries.
  EXPECT_FALSE(cache.Find("acme", {"alice"}).has_value());
  std::optional<DirectoryCache::Hit> hit = cache.Find("acme", {"bob"});
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->version, "8");
  EXPECT_EQ(hit->settings.max_points(), 10);
  EXPECT_EQ(hit->people.at("bob").team_id(), "ops");
  EXPECT_EQ(cache.people(), 1u);
  // Reads at the same version add up.
  cache.Put("acme", "8", SettingsWithMaxPoints(10), CachedPeople({"carol"}));
  EXPECT_TRUE(cache.Find("acme", {"bob", "carol"}).has_value());
}

TEST(DirectoryCacheTest, DirectoryCache_InvalidateForgetsTheOrgOnly) {
  DirectoryCache cache;
  cache.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"alice"}));
  cache.Put("globex", "3", SettingsWithMaxPoints(5), CachedPeople({"alice"}));
  cache.Invalidate("acme");
  EXPECT_FALSE(cache.Find("acme", {"alice"}).has_value());
  EXPECT_TRUE(cache.Find("globex", {"alice"}).has_value());
  EXPECT_EQ(cache.orgs(), 1u);
  EXPECT_EQ(cache.people(), 1u);
}

TEST(DirectoryCacheTest, DirectoryCache_EntriesOlderThanMaxAgeAreReadAgain) {
  absl::Time now = absl::FromUnixSeconds(1000000);
  DirectoryCacheOptions options;
  options.max_age = absl::Seconds(10);
  DirectoryCache cache(options, [&now] { return now; });
  cache.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"alice"}));
  now += absl::Seconds(10);
  EXPECT_TRUE(cache.Find("acme", {"alice"}).has_value());
  // A later read at the same version keeps the org's first read time: the
  // org's entries are as old as its oldest.
  cache.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"bob"}));
  now += absl::Milliseconds(1);
  EXPECT_FALSE(cache.Find("acme", {"bob"}).has_value());
  // The next read starts the org again.
  cache.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"bob"}));
  EXPECT_TRUE(cache.Find("acme", {"bob"}).has_value());
  EXPECT_FALSE(cache.Find("acme", {"alice"}).has_value());
}

TEST(DirectoryCacheTest, DirectoryCache_ZeroMaxAgeKeepsNothing) {
  DirectoryCacheOptions options;
  options.max_age = absl::ZeroDuration();
  DirectoryCache cache(options);
  cache.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"alice"}));
  EXPECT_FALSE(cache.Find("acme", {"alice"}).has_value());
  EXPECT_EQ(cache.orgs(), 0u);
}

TEST(DirectoryCacheTest, DirectoryCache_KeepsAtMostMaxPeopleOverAllOrgs) {
  DirectoryCacheOptions options;
  options.max_people = 4;
  DirectoryCache cache(options);
  cache.Put("globex", "1", SettingsWithMaxPoints(5), CachedPeople({"g1", "g2", "g3"}));
  cache.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"a1"}));
  EXPECT_EQ(cache.people(), 4u);
  // Full: another org's entries go first.
  cache.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"a2"}));
  EXPECT_LE(cache.people(), 4u);
  EXPECT_FALSE(cache.Find("globex", {"g1"}).has_value());
  EXPECT_TRUE(cache.Find("acme", {"a1", "a2"}).has_value());
  // One org alone past the bound: its earlier reads go, never the bound.
  cache.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"a3", "a4", "a5", "a6", "a7"}));
  EXPECT_LE(cache.people(), 4u);
  EXPECT_TRUE(cache.Find("acme", {"a7"}).has_value());
  // A bound of 0 keeps no one.
  DirectoryCacheOptions none;
  none.max_people = 0;
  DirectoryCache empty(none);
  empty.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"a1"}));
  EXPECT_EQ(empty.people(), 0u);
  EXPECT_FALSE(empty.Find("acme", {"a1"}).has_value());
}

TEST(DirectoryCacheTest, DirectoryCache_KeepsAtMostMaxOrgs) {
  DirectoryCacheOptions options;
  options.max_orgs = 2;
  DirectoryCache cache(options);
  for (const char* org : {"o1", "o2", "o3", "o4", "o5"}) {
    cache.Put(org, "1", SettingsWithMaxPoints(5), CachedPeople({"alice"}));
    EXPECT_LE(cache.orgs(), 2u);
    EXPECT_TRUE(cache.Find(org, {"alice"}).has_value());  // the newest is always kept
  }
}

TEST(DirectoryCacheTest, DirectoryCache_AsksForAWarmUpOnceAfterEnoughMisses) {
  DirectoryCacheOptions options;
  options.misses_before_warm_up = 3;
  DirectoryCache cache(options);
  EXPECT_FALSE(cache.ShouldWarmUp("acme"));  // nothing read yet
  cache.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"alice"}));
  EXPECT_TRUE(cache.Find("acme", {"alice"}).has_value());  // a hit is no miss
  for (const char* id : {"bob", "carol"}) EXPECT_FALSE(cache.Find("acme", {id}).has_value());
  EXPECT_FALSE(cache.ShouldWarmUp("acme"));
  EXPECT_FALSE(cache.Find("acme", {"dave"}).has_value());
  EXPECT_TRUE(cache.ShouldWarmUp("acme"));
  EXPECT_FALSE(cache.ShouldWarmUp("acme"));  // once per org entry
  // A new version starts the org again, and its count.
  cache.Put("acme", "2", SettingsWithMaxPoints(5), CachedPeople({"alice"}));
  EXPECT_FALSE(cache.ShouldWarmUp("acme"));
  for (const char* id : {"bob", "carol", "dave"}) EXPECT_FALSE(cache.Find("acme", {id}).has_value());
  EXPECT_TRUE(cache.ShouldWarmUp("acme"));
  // 0 = never.
  DirectoryCacheOptions never;
  never.misses_before_warm_up = 0;
  DirectoryCache cold(never);
  cold.Put("acme", "1", SettingsWithMaxPoints(5), CachedPeople({"alice"}));
  for (int i = 0; i < 100; ++i) cold.Find("acme", {"bob"});
  EXPECT_FALSE(cold.ShouldWarmUp("acme"));
}

}  // namespace
}  // namespace kudos
