// Celebrations (issue 18, part 3) through the real programs_server binary:
// two replicas sweeping one Redis with the real kudos (directory) and ledger
// binaries, a crash and a restart; and every RPC's status for bad input.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "programs/v1/celebrations.grpc.pb.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

namespace v1 = programs::v1;
using harness::Context;
using harness::MintToken;

constexpr char kOrg[] = "acme";

// A fixed-offset zone where it is now between 10:00 and 21:59, so a birthday
// set to its local today is due (past 09:00) and stays today for hours.
struct ZoneNow {
  std::string name;
  absl::CivilDay today;
};
ZoneNow ZoneWhereTheMorningHasPassed() {
  const absl::Time now = absl::Now();
  for (int west = -14; west <= 12; ++west) {
    // Etc/GMT+N is N hours west of UTC (the sign is POSIX's).
    std::string name = west == 0 ? "Etc/GMT" : absl::StrCat("Etc/GMT", west > 0 ? "+" : "-",
                                                          west > 0 ? west : -west);
    absl::TimeZone zone;
    if (!absl::LoadTimeZone(name, &zone)) continue;
    absl::CivilSecond local = absl::ToCivilSecond(now, zone);
    if (local.hour() >= 10 && local.hour() <= 21) return {name, absl::CivilDay(local)};
  }
  ADD_FAILURE() << "no zone between 10:00 and 21:59";
  return {"UTC", absl::ToCivilDay(now, absl::UTCTimeZone())};
}

class CelebrationsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(),
        std::vector<std::string>{"--ledger=" + ledger_->address(), "--survey_interval_s=0"});
    directory_ = kudos::v1::DirectoryService::NewStub(
        grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials()));
    kudos_stub_ = kudos::v1::KudosService::NewStub(
        grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials()));
    ledger_stub_ = ledger::v1::LedgerService::NewStub(
        grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
    admin_ = MintToken(kOrg, "root", {"admin"});
    CreateTeam("eng");
    a_ = StartReplica();
    b_ = StartReplica();
    stub_a_ = Stub(*a_);
    stub_b_ = Stub(*b_);
  }

  std::unique_ptr<harness::Service> StartReplica() {
    return std::make_unique<harness::Service>(
        PROGRAMS_BINARY, redis_->address(),
        std::vector<std::string>{"--kudos=" + kudos_->address(), "--ledger=" + ledger_->address(),
                                 "--celebrations_interval_ms=100"});
  }

  static std::unique_ptr<v1::CelebrationsService::Stub> Stub(const harness::Service& service) {
    return v1::CelebrationsService::NewStub(
        grpc::CreateChannel(service.address(), grpc::InsecureChannelCredentials()));
  }

  void CreateTeam(const std::string& id) {
    kudos::v1::CreateTeamRequest request;
    request.mutable_team()->set_team_id(id);
    request.mutable_team()->set_display_name("Team " + id);
    kudos::v1::CreateTeamResponse response;
    grpc::Status status = directory_->CreateTeam(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void CreatePerson(const std::string& id, const std::string& zone) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_team_id("eng");
    request.mutable_person()->set_time_zone(zone);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory_->CreatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  grpc::Status SetBirthday(v1::CelebrationsService::Stub& stub, const std::string& token,
                           const std::string& person, int month, int day) {
    v1::SetBirthdayRequest request;
    request.set_person_id(person);
    request.mutable_birthday()->set_month(month);
    request.mutable_birthday()->set_day(day);
    v1::SetBirthdayResponse response;
    return stub.SetBirthday(Context(token).get(), request, &response);
  }

  std::vector<v1::Celebration> List(v1::CelebrationsService::Stub& stub) {
    v1::ListCelebrationsRequest request;
    request.set_page_size(200);
    v1::ListCelebrationsResponse response;
    grpc::Status status =
        stub.ListCelebrations(Context(MintToken(kOrg, "viewer")).get(), request, &response);
    if (!status.ok()) return {};
    return {response.celebrations().begin(), response.celebrations().end()};
  }

  int64_t Earned(const std::string& person) {
    ledger::v1::GetBalanceRequest request;
    request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    request.mutable_account()->set_person_id(person);
    ledger::v1::GetBalanceResponse response;
    grpc::Status status = ledger_stub_->GetBalance(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.balance();
  }

  // The kudos in `person`'s received feed, as a member reads it.
  std::vector<kudos::v1::Kudos> ReceivedKudos(const std::string& person) {
    kudos::v1::ListKudosRequest request;
    request.mutable_filter()->set_recipient_id(person);
    request.set_page_size(100);
    kudos::v1::ListKudosResponse response;
    grpc::Status status =
        kudos_stub_->ListKudos(Context(MintToken(kOrg, "viewer")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.kudos().begin(), response.kudos().end()};
  }

  int EarnedTransferCount(const std::string& person) {
    ledger::v1::ListTransfersRequest request;
    request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    request.mutable_account()->set_person_id(person);
    request.set_page_size(100);
    ledger::v1::ListTransfersResponse response;
    grpc::Status status = ledger_stub_->ListTransfers(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.transfers_size();
  }

  // Exactly one company kudos and one paid transfer for `person`'s birthday.
  void ExpectOneKudosAndOneTransfer(const std::string& person, int year) {
    std::vector<kudos::v1::Kudos> received = ReceivedKudos(person);
    ASSERT_EQ(received.size(), 1u) << person;
    EXPECT_TRUE(received[0].from_company()) << person;
    EXPECT_EQ(received[0].giver_id(), "") << person;
    EXPECT_EQ(received[0].points_per_recipient(), 10) << person;
    EXPECT_EQ(received[0].transfer_id(), absl::StrCat("celebration:birthday:", year, ":", person));
    EXPECT_EQ(EarnedTransferCount(person), 1) << person;
    EXPECT_EQ(Earned(person), 10) << person;
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_stub_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_stub_;
  std::string admin_;
  std::unique_ptr<harness::Service> a_;
  std::unique_ptr<harness::Service> b_;
  std::unique_ptr<v1::CelebrationsService::Stub> stub_a_;
  std::unique_ptr<v1::CelebrationsService::Stub> stub_b_;
};

TEST_F(CelebrationsServerTest, Replicas_BirthdayIsPaidOnceAcrossTwoReplicasACrashAndARestart) {
  const ZoneNow zone = ZoneWhereTheMorningHasPassed();
  constexpr int kPeople = 6;
  for (int i = 0; i < kPeople; ++i) {
    const std::string person = absl::StrCat("r", i);
    CreatePerson(person, zone.name);
    // Self-service, alternating replicas.
    grpc::Status status = SetBirthday(i % 2 == 0 ? *stub_a_ : *stub_b_, MintToken(kOrg, person),
                                      person, zone.today.month(), zone.today.day());
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_TRUE(harness::Eventually([&] { return List(*stub_b_).size() == kPeople; }))
      << List(*stub_b_).size();
  for (int i = 0; i < kPeople; ++i) EXPECT_EQ(Earned(absl::StrCat("r", i)), 10) << i;

  // A crashes, B restarts, A comes back: both sweep again from scratch.
  a_->Kill();
  b_->Restart();
  a_->Start();
  // A newcomer celebrated after the restart shows both sweeps ran again.
  CreatePerson("late", zone.name);
  ASSERT_TRUE(SetBirthday(*stub_a_, admin_, "late", zone.today.month(), zone.today.day()).ok());
  ASSERT_TRUE(harness::Eventually([&] { return List(*stub_a_).size() == kPeople + 1; }))
      << List(*stub_a_).size();
  std::vector<v1::Celebration> feed = List(*stub_a_);
  std::set<std::string> ids;
  for (const v1::Celebration& celebration : feed) ids.insert(celebration.celebration_id());
  EXPECT_EQ(ids.size(), feed.size());
  for (int i = 0; i < kPeople; ++i) EXPECT_EQ(Earned(absl::StrCat("r", i)), 10) << i;
  EXPECT_EQ(Earned("late"), 10);
  // Each celebration is one kudos from the company and one transfer, and
  // the celebration names its kudos.
  for (const v1::Celebration& celebration : feed) {
    EXPECT_FALSE(celebration.kudos_id().empty()) << celebration.celebration_id();
    ExpectOneKudosAndOneTransfer(celebration.person_id(), celebration.year());
  }
  ledger::v1::VerifyLedgerResponse verified;
  ASSERT_TRUE(ledger_stub_->VerifyLedger(Context(admin_).get(), {}, &verified).ok());
  EXPECT_TRUE(verified.consistent());
}

TEST_F(CelebrationsServerTest, Rpc_OptOutIsSelfServiceAndShowsNoNextCelebration) {
  CreatePerson("olly", "Europe/Paris");
  ASSERT_TRUE(SetBirthday(*stub_a_, MintToken(kOrg, "olly"), "", 6, 1).ok());
  v1::SetCelebrationOptOutRequest request;
  request.set_opted_out(true);
  v1::SetCelebrationOptOutResponse response;
  grpc::Status status =
      stub_a_->SetCelebrationOptOut(Context(MintToken(kOrg, "olly")).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.profile().opted_out());
  EXPECT_FALSE(response.profile().has_next_birthday_time());
  EXPECT_EQ(response.profile().birthday().month(), 6);  // kept, just not celebrated

  v1::GetCelebrationProfileRequest get;
  get.set_person_id("olly");
  v1::GetCelebrationProfileResponse got;
  ASSERT_TRUE(stub_b_->GetCelebrationProfile(Context(admin_).get(), get, &got).ok());
  EXPECT_TRUE(got.profile().opted_out());
  EXPECT_EQ(got.profile().time_zone(), "Europe/Paris");
  // An admin opts them back in.
  request.set_person_id("olly");
  request.set_opted_out(false);
  ASSERT_TRUE(stub_b_->SetCelebrationOptOut(Context(admin_).get(), request, &response).ok());
  EXPECT_TRUE(response.profile().has_next_birthday_time());
}

TEST_F(CelebrationsServerTest, Rpc_BadInputAndForeignWritesHaveClearStatuses) {
  CreatePerson("mia", "UTC");
  CreatePerson("noah", "UTC");
  const std::string mia = MintToken(kOrg, "mia");
  auto expect = [](const grpc::Status& status, grpc::StatusCode code, const std::string& message) {
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_EQ(status.error_message(), message);
  };
  expect(SetBirthday(*stub_a_, mia, "", 13, 1), grpc::StatusCode::INVALID_ARGUMENT,
         "birthday.month: must be in 1..12, got 13");
  expect(SetBirthday(*stub_a_, mia, "", 4, 31), grpc::StatusCode::INVALID_ARGUMENT,
         "birthday.day: month 4 has days 1..30, got 31");
  expect(SetBirthday(*stub_a_, mia, "noah", 4, 1), grpc::StatusCode::PERMISSION_DENIED,
         "person_id: 'mia' may not change or read the celebrations of 'noah' (admins only)");
  expect(SetBirthday(*stub_a_, admin_, "ghost", 4, 1), grpc::StatusCode::NOT_FOUND,
         "person_id: 'ghost' is not in the org's directory");
  expect(SetBirthday(*stub_a_, MintToken(kOrg, "lobby", {"screen"}), "", 4, 1),
         grpc::StatusCode::PERMISSION_DENIED,
         "this token cannot act as a person (screens are read-only)");
  EXPECT_EQ(SetBirthday(*stub_a_, "not-a-token", "", 4, 1).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  v1::SetHireDateRequest hire;
  hire.set_person_id("mia");
  hire.mutable_hire_date()->set_year(2019);
  hire.mutable_hire_date()->set_month(3);
  hire.mutable_hire_date()->set_day(1);
  v1::SetHireDateResponse hired;
  expect(stub_a_->SetHireDate(Context(mia).get(), hire, &hired),
         grpc::StatusCode::PERMISSION_DENIED, "SetHireDate: admins only");
  hire.mutable_hire_date()->set_year(2027);
  hire.mutable_hire_date()->set_month(2);
  hire.mutable_hire_date()->set_day(29);
  expect(stub_a_->SetHireDate(Context(admin_).get(), hire, &hired),
         grpc::StatusCode::INVALID_ARGUMENT, "hire_date.day: 2027-2 has days 1..28, got 29");
  hire.set_person_id("");
  expect(stub_a_->SetHireDate(Context(admin_).get(), hire, &hired),
         grpc::StatusCode::INVALID_ARGUMENT, "person_id: must be 1..64 characters of [A-Za-z0-9._-]");

  v1::UpdateCelebrationSettingsRequest update;
  update.mutable_settings()->set_birthday_points(5000);
  v1::UpdateCelebrationSettingsResponse updated;
  expect(stub_a_->UpdateCelebrationSettings(Context(mia).get(), update, &updated),
         grpc::StatusCode::PERMISSION_DENIED, "UpdateCelebrationSettings: admins only");
  expect(stub_a_->UpdateCelebrationSettings(Context(admin_).get(), update, &updated),
         grpc::StatusCode::INVALID_ARGUMENT,
         "settings.birthday_points: must be in 0..1000, got 5000");
  update.mutable_settings()->set_birthday_points(25);
  ASSERT_TRUE(stub_a_->UpdateCelebrationSettings(Context(admin_).get(), update, &updated).ok());
  v1::GetCelebrationSettingsResponse settings;
  ASSERT_TRUE(stub_b_->GetCelebrationSettings(Context(mia).get(), {}, &settings).ok());
  EXPECT_EQ(settings.settings().birthday_points(), 25);

  v1::ListCelebrationsRequest list;
  list.set_page_size(500);
  v1::ListCelebrationsResponse listed;
  expect(stub_a_->ListCelebrations(Context(mia).get(), list, &listed),
         grpc::StatusCode::INVALID_ARGUMENT, "page_size: must be in 0..200 (0: 50), got 500");
  list.set_page_size(10);
  list.set_page_token("x");
  expect(stub_a_->ListCelebrations(Context(mia).get(), list, &listed),
         grpc::StatusCode::INVALID_ARGUMENT,
         "page_token: not one this RPC gave; start again without a page_token");
}

// What the boards make of a kudos from the company: the recipient's kudos
// received and points received count, nothing is counted for a giver.
TEST_F(CelebrationsServerTest, CompanyKudos_BoardsCountTheRecipientsReceivedAndPointsAndNothingForAGiver) {
  namespace lb = leaderboard::v1;
  harness::Service boards_server(LEADERBOARD_BINARY, redis_->address(),
                                 std::vector<std::string>{"--ledger=" + ledger_->address()});
  auto boards = lb::LeaderboardService::NewStub(
      grpc::CreateChannel(boards_server.address(), grpc::InsecureChannelCredentials()));
  auto board = [&](lb::Metric metric) {
    lb::GetLeaderboardRequest request;
    request.mutable_board()->set_metric(metric);
    request.mutable_board()->set_window(lb::WINDOW_ALL_TIME);
    request.mutable_board()->set_scope(lb::SCOPE_ORG);
    request.set_page_size(100);
    lb::GetLeaderboardResponse response;
    grpc::Status status = boards->GetLeaderboard(Context(MintToken(kOrg, "viewer")).get(),
                                                 request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::map<std::string, int64_t> scores;
    for (const lb::LeaderboardEntry& entry : response.entries()) {
      if (entry.score() != 0) scores[entry.subject_id()] = entry.score();
    }
    return scores;
  };
  const ZoneNow zone = ZoneWhereTheMorningHasPassed();
  CreatePerson("cake", zone.name);
  ASSERT_TRUE(SetBirthday(*stub_a_, admin_, "cake", zone.today.month(), zone.today.day()).ok());
  ASSERT_TRUE(harness::Eventually([&] { return List(*stub_a_).size() == 1u; }));
  ExpectOneKudosAndOneTransfer("cake", static_cast<int>(zone.today.year()));

  const std::map<std::string, int64_t> one_kudos = {{"cake", 1}};
  const std::map<std::string, int64_t> ten_points = {{"cake", 10}};
  EXPECT_TRUE(harness::Eventually([&] { return board(lb::METRIC_KUDOS_RECEIVED) == one_kudos; },
                                  std::chrono::seconds(30)))
      << "kudos received: the company kudos counts for its recipient";
  EXPECT_TRUE(harness::Eventually([&] { return board(lb::METRIC_POINTS_RECEIVED) == ten_points; },
                                  std::chrono::seconds(30)))
      << "points received: the celebration's transfer counts";
  // Counted in the same step as the recipient's: no giver, not even "".
  EXPECT_TRUE(board(lb::METRIC_KUDOS_GIVEN).empty());
  // A rebuild from the streams agrees.
  lb::RebuildProjectionsResponse rebuilt;
  grpc::Status status = boards->RebuildProjections(Context(admin_).get(),
                                                   lb::RebuildProjectionsRequest(), &rebuilt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(board(lb::METRIC_KUDOS_RECEIVED), one_kudos);
  EXPECT_EQ(board(lb::METRIC_POINTS_RECEIVED), ten_points);
  EXPECT_TRUE(board(lb::METRIC_KUDOS_GIVEN).empty());
}

}  // namespace
