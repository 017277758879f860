// Issue 18 part 2: the kudos directory keeps the ledger's allowance profiles
// in step (team, direct reports; roles stay the admin's), so MANAGER and
// TEAM rules apply without an admin filling profiles. A real redis-server,
// the real ledger and kudos binaries over real gRPC.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "services/kudos/kudos_store.h"
#include "services/kudos/kudos_workflow.h"
#include "services/kudos/ledger_client.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using harness::Context;
using harness::MintToken;
using kudos::v1::DirectoryService;
using ledger::v1::LedgerService;

constexpr char kOrg[] = "acme";

class KudosProfileSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(),
        std::vector<std::string>{"--ledger=" + ledger_->address(), "--ledger_timeout_ms=1500"});
    directory_ = DirectoryService::NewStub(
        grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials()));
    ledger_stub_ = LedgerService::NewStub(
        grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
    admin_ = MintToken(kOrg, "root", {"admin"});
    CreateTeam("eng");
    CreateTeam("ops");
  }

  void CreateTeam(const std::string& id) {
    kudos::v1::CreateTeamRequest request;
    request.mutable_team()->set_team_id(id);
    request.mutable_team()->set_display_name("Team " + id);
    kudos::v1::CreateTeamResponse response;
    ASSERT_TRUE(directory_->CreateTeam(Context(admin_).get(), request, &response).ok());
  }

  static kudos::v1::Person Person(const std::string& id, const std::string& team,
                                  const std::string& manager, bool active = true) {
    kudos::v1::Person person;
    person.set_person_id(id);
    person.set_display_name("Person " + id);
    person.set_team_id(team);
    person.set_manager_id(manager);
    person.set_active(active);
    return person;
  }

  void CreatePerson(const std::string& id, const std::string& team, const std::string& manager) {
    kudos::v1::CreatePersonRequest request;
    *request.mutable_person() = Person(id, team, manager);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory_->CreatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void UpdatePerson(const kudos::v1::Person& person) {
    kudos::v1::UpdatePersonRequest request;
    *request.mutable_person() = person;
    kudos::v1::UpdatePersonResponse response;
    grpc::Status status = directory_->UpdatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  ledger::v1::AllowanceProfile Profile(const std::string& id) {
    ledger::v1::GetAllowanceProfileRequest request;
    request.set_person_id(id);
    ledger::v1::GetAllowanceProfileResponse response;
    grpc::Status status =
        ledger_stub_->GetAllowanceProfile(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.profile();
  }

  // Polls (generous deadline: the mirror is eventually consistent) until
  // `id`'s ledger profile has `team` and `direct_reports`.
  bool ProfileBecomes(const std::string& id, const std::string& team, int direct_reports) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      ledger::v1::AllowanceProfile profile = Profile(id);
      if (profile.team_id() == team && profile.direct_reports() == direct_reports) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ledger::v1::AllowanceProfile last = Profile(id);
    ADD_FAILURE() << id << ": profile still " << last.ShortDebugString() << ", wanted team '"
                  << team << "' direct_reports " << direct_reports;
    return false;
  }

  void SetProfileAsAdmin(const ledger::v1::AllowanceProfile& profile) {
    ledger::v1::SetAllowanceProfileRequest request;
    *request.mutable_profile() = profile;
    ledger::v1::SetAllowanceProfileResponse response;
    grpc::Status status =
        ledger_stub_->SetAllowanceProfile(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void SetManagerRule(int64_t points_per_direct_report) {
    ledger::v1::SetAllowanceRuleRequest request;
    request.mutable_rule()->set_rule_id("per-report");
    request.mutable_rule()->set_scope(ledger::v1::ALLOWANCE_RULE_SCOPE_MANAGER);
    request.mutable_rule()->set_points_per_direct_report(points_per_direct_report);
    ledger::v1::SetAllowanceRuleResponse response;
    grpc::Status status = ledger_stub_->SetAllowanceRule(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // What rules and boosts add to `id`'s allowance this period.
  int64_t ExtraAllowance(const std::string& id) {
    ledger::v1::GetAllowanceRequest request;
    request.set_person_id(id);
    ledger::v1::GetAllowanceResponse response;
    grpc::Status status = ledger_stub_->GetAllowance(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.policy().points_per_period() - response.base_points();
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<DirectoryService::Stub> directory_;
  std::unique_ptr<LedgerService::Stub> ledger_stub_;
  std::string admin_;
};

TEST_F(KudosProfileSyncTest,
       ProfileSync_ManagersDirectReportsReachTheLedgerKeepTheAdminsRolesAndRaiseTheAllowance) {
  CreatePerson("mona", "ops", "");
  // Roles come from admins: the mirror keeps them.
  ledger::v1::AllowanceProfile roles;
  roles.set_person_id("mona");
  roles.add_roles(ledger::v1::ALLOWANCE_ROLE_MANAGER);
  SetProfileAsAdmin(roles);
  SetManagerRule(10);
  for (const char* id : {"erin", "frank", "gina"}) CreatePerson(id, "eng", "mona");

  ASSERT_TRUE(ProfileBecomes("mona", "ops", 3));
  EXPECT_EQ(Profile("mona").roles_size(), 1);
  EXPECT_EQ(Profile("mona").roles(0), ledger::v1::ALLOWANCE_ROLE_MANAGER);
  EXPECT_TRUE(ProfileBecomes("erin", "eng", 0));
  EXPECT_EQ(ExtraAllowance("mona"), 30);
  EXPECT_EQ(ExtraAllowance("erin"), 0);
}

TEST_F(KudosProfileSyncTest, ProfileSync_MovingAPersonMovesTheCountAndDeactivatingDropsIt) {
  CreatePerson("mona", "ops", "");
  CreatePerson("nate", "ops", "");
  CreatePerson("erin", "eng", "mona");
  CreatePerson("frank", "eng", "mona");
  ASSERT_TRUE(ProfileBecomes("mona", "ops", 2));

  UpdatePerson(Person("erin", "ops", "nate"));  // erin moves team and manager
  EXPECT_TRUE(ProfileBecomes("mona", "ops", 1));
  EXPECT_TRUE(ProfileBecomes("nate", "ops", 1));
  EXPECT_TRUE(ProfileBecomes("erin", "ops", 0));

  UpdatePerson(Person("frank", "eng", "mona", /*active=*/false));
  EXPECT_TRUE(ProfileBecomes("mona", "ops", 0));
  UpdatePerson(Person("frank", "eng", "mona", /*active=*/true));  // back: counted again, once
  EXPECT_TRUE(ProfileBecomes("mona", "ops", 1));
  UpdatePerson(Person("frank", "eng", "mona", /*active=*/true));  // the same again: still once
  SetManagerRule(7);
  EXPECT_TRUE(ProfileBecomes("mona", "ops", 1));
  EXPECT_EQ(ExtraAllowance("mona"), 7);
}

TEST_F(KudosProfileSyncTest, ProfileSync_ALedgerOutageDuringTheWriteConvergesWhenTheLedgerReturns) {
  CreatePerson("mona", "ops", "");
  ASSERT_TRUE(ProfileBecomes("mona", "ops", 0));
  ledger_->Stop();
  // The directory is the source of truth: its writes succeed without the ledger.
  CreatePerson("erin", "eng", "mona");
  CreatePerson("frank", "eng", "mona");
  UpdatePerson(Person("mona", "eng", ""));
  ledger_->Start();
  EXPECT_TRUE(ProfileBecomes("mona", "eng", 2));
  EXPECT_TRUE(ProfileBecomes("erin", "eng", 0));
  EXPECT_TRUE(ProfileBecomes("frank", "eng", 0));
}

// ---- Library level: the mirror's bounds, over a real redis-server --------

// Records profiles set; answers `failure` (when not OK) to every call.
class RecordingLedger : public kudos::LedgerClient {
 public:
  absl::Status PostTransfers(const std::string&, const ledger::v1::PostTransfersRequest&) override {
    return absl::UnimplementedError("not used");
  }
  absl::Status SetAllowancePolicy(const std::string&, const common::v1::AllowancePolicy&,
                                  const common::v1::RetentionPolicy&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<ledger::v1::AllowanceProfile> GetAllowanceProfile(
      const std::string&, const std::string& person_id) override {
    ++calls;
    if (!failure.ok()) return failure;
    ledger::v1::AllowanceProfile profile;
    profile.set_person_id(person_id);
    return profile;
  }
  absl::Status SetAllowanceProfile(const std::string&,
                                   const ledger::v1::AllowanceProfile& profile) override {
    ++calls;
    if (!failure.ok()) return failure;
    profiles[profile.person_id()] = profile;
    return absl::OkStatus();
  }
  absl::Status failure = absl::OkStatus();
  int calls = 0;
  std::map<std::string, ledger::v1::AllowanceProfile> profiles;
};

kudos::v1::Person MakePerson(const std::string& id, const std::string& team,
                             const std::string& manager) {
  kudos::v1::Person person;
  person.set_person_id(id);
  person.set_team_id(team);
  person.set_manager_id(manager);
  person.set_active(true);
  return person;
}

TEST(KudosProfileSyncLibrary, ProfileSync_APassSetsAtMostItsBatchAndALedgerFailureStopsItAtOnce) {
  harness::RedisServer redis;
  common::redis::PoolOptions options;
  options.endpoint.port = redis.port();
  common::redis::Pool pool(options);
  kudos::KudosStore store(pool);
  RecordingLedger ledger;
  kudos::ReconcilerOptions reconciler;
  reconciler.profiles_per_org = 10;
  kudos::KudosWorkflow workflow(store, ledger, reconciler);
  ASSERT_TRUE(store.PutPerson(kOrg, MakePerson("boss", "", ""), true, "", "root").ok());
  for (int i = 0; i < 24; ++i) {
    kudos::v1::Person person = MakePerson("p" + std::to_string(i), "", "boss");
    ASSERT_TRUE(store.PutPerson(kOrg, person, true, "", "root").ok());
  }  // 25 queued: boss and the 24 reports

  ledger.failure = absl::UnavailableError("ledger down");
  EXPECT_EQ(workflow.SyncProfilesOnce(kOrg), 0);
  EXPECT_EQ(ledger.calls, 1);  // the first failure ends the org's pass
  ledger.failure = absl::OkStatus();

  EXPECT_EQ(workflow.SyncProfilesOnce(kOrg), 10);
  EXPECT_EQ(workflow.SyncProfilesOnce(kOrg), 10);
  EXPECT_EQ(workflow.SyncProfilesOnce(kOrg), 5);
  EXPECT_EQ(workflow.SyncProfilesOnce(kOrg), 0);  // drained
  ASSERT_EQ(ledger.profiles.size(), 25u);
  EXPECT_EQ(ledger.profiles["boss"].direct_reports(), 24);
  EXPECT_EQ(ledger.profiles["p3"].direct_reports(), 0);
}

TEST(KudosProfileSyncLibrary, ProfileSync_AProfileTheLedgerRefusesForGoodLeavesTheQueue) {
  harness::RedisServer redis;
  common::redis::PoolOptions options;
  options.endpoint.port = redis.port();
  common::redis::Pool pool(options);
  kudos::KudosStore store(pool);
  RecordingLedger ledger;
  kudos::KudosWorkflow workflow(store, ledger);
  ASSERT_TRUE(store.PutPerson(kOrg, MakePerson("boss", "", ""), true, "", "root").ok());
  ASSERT_TRUE(store.PutPerson(kOrg, MakePerson("p1", "", "boss"), true, "", "root").ok());
  ledger.failure = absl::FailedPreconditionError("the org already has 100000 profiles");
  EXPECT_EQ(workflow.SyncProfilesOnce(kOrg), 0);
  EXPECT_EQ(ledger.calls, 2);  // both tried in one pass: a final refusal does not stop it
  ledger.failure = absl::OkStatus();
  EXPECT_EQ(workflow.SyncProfilesOnce(kOrg), 0);  // nothing left to retry
  EXPECT_EQ(ledger.calls, 2);
}

}  // namespace
