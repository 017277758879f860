// Celebrations (issue 18, part 3) at the library level: the rules alone, and
// the sweep (RunOnce with the clock injected) against a real redis-server,
// the real kudos binary (the directory, over gRPC) and the real ledger binary
// (payments over gRPC, checked with GetBalance and VerifyLedger).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "services/programs/celebrations_rules.h"
#include "services/programs/celebrations_service.h"
#include "services/programs/celebrations_store.h"
#include "services/programs/celebrations_sweep.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

namespace cel = programs::celebrations;
namespace v1 = programs::v1;
using harness::Context;
using harness::MintToken;

constexpr char kOrg[] = "acme";

absl::Time Utc(int y, int m, int d, int hh = 0, int mm = 0, int ss = 0) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss), absl::UTCTimeZone());
}

absl::TimeZone Zone(const std::string& name) {
  absl::TimeZone zone;
  EXPECT_TRUE(absl::LoadTimeZone(name, &zone)) << name;
  return zone;
}

// ---- rules ------------------------------------------------------------------

TEST(CelebrationRulesTest, Rules_FebruaryTwentyNinthFallsOnTheTwentyEighthInNonLeapYears) {
  EXPECT_EQ(cel::DayInYear(2027, 2, 29), absl::CivilDay(2027, 2, 28));
  EXPECT_EQ(cel::DayInYear(2028, 2, 29), absl::CivilDay(2028, 2, 29));
  EXPECT_EQ(cel::DayInYear(2100, 2, 29), absl::CivilDay(2100, 2, 28));
  EXPECT_EQ(cel::DayInYear(2000, 2, 29), absl::CivilDay(2000, 2, 29));
}

TEST(CelebrationRulesTest, Rules_CelebrateTimeIsNineInTheMorningInTheZone) {
  EXPECT_EQ(cel::CelebrateTime(absl::CivilDay(2027, 3, 10), Zone("Asia/Tokyo")),
            Utc(2027, 3, 10, 0));
  // New York on daylight time (UTC-4) in July, standard time (UTC-5) in January.
  EXPECT_EQ(cel::CelebrateTime(absl::CivilDay(2027, 7, 1), Zone("America/New_York")),
            Utc(2027, 7, 1, 13));
  EXPECT_EQ(cel::CelebrateTime(absl::CivilDay(2027, 1, 1), Zone("America/New_York")),
            Utc(2027, 1, 1, 14));
}

TEST(CelebrationRulesTest, Rules_NextOccurrenceIsTodayUntilTheLocalDayEnds) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  // On the day, after 09:00: still today (celebrated late, not skipped).
  cel::Occurrence today = cel::NextOccurrence(5, 4, 0, Utc(2027, 5, 4, 18), utc);
  EXPECT_EQ(today.year, 2027);
  EXPECT_EQ(today.time, Utc(2027, 5, 4, 9));
  // The day after: next year.
  cel::Occurrence next = cel::NextOccurrence(5, 4, 0, Utc(2027, 5, 5, 0, 30), utc);
  EXPECT_EQ(next.year, 2028);
  // Anniversaries start one year after the hire date.
  cel::Occurrence first = cel::NextOccurrence(5, 4, 2027, Utc(2026, 1, 1), utc);
  EXPECT_EQ(first.year, 2027);
}

TEST(CelebrationRulesTest, Rules_BadDatesAndSettingsAreInvalidArgumentNamingTheField) {
  v1::MonthDay day;
  day.set_month(13);
  day.set_day(1);
  absl::Status s = cel::ValidateMonthDay(day, "birthday");
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(), "birthday.month: must be in 1..12, got 13");
  day.set_month(2);
  day.set_day(30);
  s = cel::ValidateMonthDay(day, "birthday");
  EXPECT_EQ(s.message(), "birthday.day: month 2 has days 1..29, got 30");
  day.set_day(29);
  EXPECT_TRUE(cel::ValidateMonthDay(day, "birthday").ok());
  common::v1::Date hired;
  hired.set_year(2027);
  hired.set_month(2);
  hired.set_day(29);
  s = cel::ValidateHireDate(hired, "hire_date");
  EXPECT_EQ(s.message(), "hire_date.day: 2027-2 has days 1..28, got 29");
  hired.set_year(1800);
  EXPECT_EQ(cel::ValidateHireDate(hired, "hire_date").message(),
            "hire_date.year: must be in 1900..9999, got 1800");
  v1::CelebrationSettings settings;
  settings.set_birthday_points(1001);
  EXPECT_EQ(cel::ValidateSettings(settings).message(),
            "settings.birthday_points: must be in 0..1000, got 1001");
}

// ---- the sweep over real Redis, kudos and ledger ------------------------------

// A payer that fails: the ledger unreachable before (or after) it applied.
class FailingPayer final : public cel::Payer {
 public:
  explicit FailingPayer(cel::Payer* first = nullptr) : first_(first) {}
  absl::Status Pay(const std::string& org, const v1::Celebration& celebration) override {
    ++calls;
    // With `first`: the transfer reaches the ledger, the answer is lost.
    if (first_ != nullptr) (void)first_->Pay(org, celebration);
    return absl::UnavailableError("ledger: connection reset");
  }
  std::atomic<int> calls{0};

 private:
  cel::Payer* first_;
};

// A company-kudos recorder that fails: the kudos service unreachable before
// (or after, with `first`: recorded, the answer lost) it recorded the kudos.
class FailingCompanyKudos final : public cel::CompanyKudos {
 public:
  explicit FailingCompanyKudos(cel::CompanyKudos* first = nullptr) : first_(first) {}
  absl::StatusOr<std::string> Record(const std::string& org,
                                     const v1::Celebration& celebration) override {
    ++calls;
    if (first_ != nullptr) (void)first_->Record(org, celebration);
    return absl::UnavailableError("kudos: connection reset");
  }
  std::atomic<int> calls{0};

 private:
  cel::CompanyKudos* first_;
};

// One in-process replica: its own pool, store, gRPC clients and sweep.
struct Replica {
  Replica(int redis_port, const std::string& kudos, const std::string& ledger,
          cel::StoreOptions store_options = {}, cel::SweepOptions sweep_options = {})
      : pool([&] {
          common::redis::PoolOptions options;
          options.endpoint.port = redis_port;
          options.size = 4;
          return std::make_unique<common::redis::Pool>(options);
        }()),
        store(*pool, store_options),
        directory(cel::NewGrpcDirectory(
            grpc::CreateChannel(kudos, grpc::InsecureChannelCredentials()), Authorization(),
            absl::Seconds(5))),
        payer(cel::NewGrpcPayer(grpc::CreateChannel(ledger, grpc::InsecureChannelCredentials()),
                                Authorization(), absl::Seconds(5))),
        company_kudos(cel::NewGrpcCompanyKudos(
            grpc::CreateChannel(kudos, grpc::InsecureChannelCredentials()), Authorization(),
            absl::Seconds(5))),
        sweep(store, *directory, *payer, *company_kudos, sweep_options) {}

  static cel::Authorization Authorization() {
    return [](const std::string& org) -> absl::StatusOr<std::string> {
      absl::StatusOr<std::string> token = common::auth::MintServiceToken(
          "programs", org, common::auth::kDevServiceSecret, absl::Now());
      if (!token.ok()) return token.status();
      return "Bearer " + *token;
    };
  }

  std::unique_ptr<common::redis::Pool> pool;
  cel::CelebrationsStore store;
  std::unique_ptr<cel::Directory> directory;
  std::unique_ptr<cel::Payer> payer;
  std::unique_ptr<cel::CompanyKudos> company_kudos;
  cel::Sweep sweep;
};

class CelebrationsSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(),
        std::vector<std::string>{"--ledger=" + ledger_->address(), "--survey_interval_s=0"});
    auto kudos_channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    directory_ = kudos::v1::DirectoryService::NewStub(kudos_channel);
    kudos_stub_ = kudos::v1::KudosService::NewStub(kudos_channel);
    ledger_stub_ = ledger::v1::LedgerService::NewStub(
        grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
    admin_ = MintToken(kOrg, "root", {"admin"});
    SetOrgZone("America/New_York");
    CreateTeam("eng");
    replica_ = NewReplica();
  }

  std::unique_ptr<Replica> NewReplica(cel::StoreOptions store_options = {},
                                      cel::SweepOptions sweep_options = {}) {
    return std::make_unique<Replica>(redis_->port(), kudos_->address(), ledger_->address(),
                                     store_options, sweep_options);
  }

  void SetOrgZone(const std::string& zone) {
    kudos::v1::GetOrgSettingsResponse current;
    ASSERT_TRUE(directory_->GetOrgSettings(Context(admin_).get(), {}, &current).ok());
    kudos::v1::UpdateOrgSettingsRequest update;
    *update.mutable_settings() = current.settings();
    update.mutable_settings()->set_time_zone(zone);
    kudos::v1::UpdateOrgSettingsResponse updated;
    grpc::Status status = directory_->UpdateOrgSettings(Context(admin_).get(), update, &updated);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void CreateTeam(const std::string& id) {
    kudos::v1::CreateTeamRequest request;
    request.mutable_team()->set_team_id(id);
    request.mutable_team()->set_display_name("Team " + id);
    kudos::v1::CreateTeamResponse response;
    grpc::Status status = directory_->CreateTeam(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void CreatePerson(const std::string& id, const std::string& zone, bool active = true) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_team_id("eng");
    request.mutable_person()->set_time_zone(zone);
    request.mutable_person()->set_active(active);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory_->CreatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  v1::CelebrationProfile SetBirthday(Replica& replica, const std::string& person, int month,
                                     int day, absl::Time now) {
    absl::StatusOr<v1::CelebrationProfile> profile = cel::UpdateProfile(
        replica.store, *replica.directory, kOrg, person,
        [&](v1::CelebrationProfile& p) {
          p.mutable_birthday()->set_month(month);
          p.mutable_birthday()->set_day(day);
        },
        now);
    EXPECT_TRUE(profile.ok()) << profile.status();
    return profile.ok() ? *profile : v1::CelebrationProfile();
  }

  void SetHireDate(const std::string& person, int year, int month, int day, absl::Time now) {
    absl::StatusOr<v1::CelebrationProfile> profile = cel::UpdateProfile(
        replica_->store, *replica_->directory, kOrg, person,
        [&](v1::CelebrationProfile& p) {
          p.mutable_hire_date()->set_year(year);
          p.mutable_hire_date()->set_month(month);
          p.mutable_hire_date()->set_day(day);
        },
        now);
    ASSERT_TRUE(profile.ok()) << profile.status();
  }

  void SetOptOut(const std::string& person, bool opted_out, absl::Time now) {
    absl::StatusOr<v1::CelebrationProfile> profile = cel::UpdateProfile(
        replica_->store, *replica_->directory, kOrg, person,
        [&](v1::CelebrationProfile& p) { p.set_opted_out(opted_out); }, now);
    ASSERT_TRUE(profile.ok()) << profile.status();
  }

  cel::SweepStats Run(Replica& replica, absl::Time now) {
    absl::StatusOr<cel::SweepStats> stats = replica.sweep.RunOnce(kOrg, now);
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? *stats : cel::SweepStats();
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

  void ExpectLedgerConsistent() {
    ledger::v1::VerifyLedgerResponse response;
    grpc::Status status = ledger_stub_->VerifyLedger(Context(admin_).get(), {}, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(response.consistent());
  }

  std::vector<v1::Celebration> Feed() {
    absl::StatusOr<std::vector<v1::Celebration>> feed = replica_->store.Feed(kOrg, 0, 1000);
    EXPECT_TRUE(feed.ok()) << feed.status();
    return feed.ok() ? *feed : std::vector<v1::Celebration>();
  }

  // The kudos in `person`'s received feed, as a member of the org reads it.
  std::vector<kudos::v1::Kudos> ReceivedKudos(const std::string& person) {
    kudos::v1::ListKudosRequest request;
    request.mutable_filter()->set_recipient_id(person);
    request.set_page_size(100);
    kudos::v1::ListKudosResponse response;
    grpc::Status status =
        kudos_stub_->ListKudos(Context(MintToken(kOrg, "reader")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.kudos().begin(), response.kudos().end()};
  }

  // The transfers crediting `person`'s EARNED account.
  std::vector<ledger::v1::Transfer> EarnedTransfers(const std::string& person) {
    ledger::v1::ListTransfersRequest request;
    request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    request.mutable_account()->set_person_id(person);
    request.set_page_size(100);
    ledger::v1::ListTransfersResponse response;
    grpc::Status status = ledger_stub_->ListTransfers(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.transfers().begin(), response.transfers().end()};
  }

  grpc::Status RecordCompanyKudos(const std::string& token,
                                  const kudos::v1::RecordCompanyKudosRequest& request,
                                  kudos::v1::Kudos* kudos = nullptr) {
    kudos::v1::RecordCompanyKudosResponse response;
    grpc::Status status = kudos_stub_->RecordCompanyKudos(Context(token).get(), request, &response);
    if (kudos != nullptr) *kudos = response.kudos();
    return status;
  }

  std::string Marker(v1::CelebrationKind kind, int year, const std::string& person) {
    absl::StatusOr<std::string> marker = replica_->store.Marker(kOrg, kind, year, person);
    EXPECT_TRUE(marker.ok()) << marker.status();
    return marker.ok() ? *marker : "?";
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_stub_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_stub_;
  std::string admin_;
  std::unique_ptr<Replica> replica_;
};

TEST_F(CelebrationsSweepTest, Sweep_BirthdayIsPaidAtNineInThePersonsZoneOnce) {
  CreatePerson("aiko", "Asia/Tokyo");
  v1::CelebrationProfile profile = SetBirthday(*replica_, "aiko", 3, 10, Utc(2027, 1, 5));
  EXPECT_EQ(profile.time_zone(), "Asia/Tokyo");
  // 09:00 in Tokyo on 10 March is 00:00 UTC.
  EXPECT_EQ(profile.next_birthday_time().seconds(), absl::ToUnixSeconds(Utc(2027, 3, 10)));

  EXPECT_EQ(Run(*replica_, Utc(2027, 3, 9, 23, 59, 59)).paid, 0);
  EXPECT_EQ(Earned("aiko"), 0);
  cel::SweepStats stats = Run(*replica_, Utc(2027, 3, 10));
  EXPECT_EQ(stats.paid, 1);
  EXPECT_EQ(Earned("aiko"), 10);
  EXPECT_EQ(Marker(v1::CELEBRATION_KIND_BIRTHDAY, 2027, "aiko"), "paid");
  // Later the same day, and again: nothing more.
  EXPECT_EQ(Run(*replica_, Utc(2027, 3, 10, 12)).paid, 0);
  EXPECT_EQ(Earned("aiko"), 10);
  std::vector<v1::Celebration> feed = Feed();
  ASSERT_EQ(feed.size(), 1u);
  EXPECT_EQ(feed[0].celebration_id(), "birthday:2027:aiko");
  EXPECT_EQ(feed[0].transfer_id(), "celebration:birthday:2027:aiko");
  EXPECT_EQ(feed[0].message(), "Happy birthday, Person aiko!");
  // Next year's is scheduled.
  EXPECT_EQ(Run(*replica_, Utc(2028, 3, 10)).paid, 1);
  EXPECT_EQ(Earned("aiko"), 20);
  ExpectLedgerConsistent();
}

TEST_F(CelebrationsSweepTest, Sweep_DateSetAgainOnTheDayAfterItWasCelebratedIsNotPaidAgain) {
  CreatePerson("rita", "UTC");
  SetBirthday(*replica_, "rita", 5, 4, Utc(2027, 1, 1));
  EXPECT_EQ(Run(*replica_, Utc(2027, 5, 4, 9)).paid, 1);
  // Set again at 10:00 on the day: scheduled for today's 09:00 again, and
  // the (person, kind, year) marker stops a second payment.
  v1::CelebrationProfile profile = SetBirthday(*replica_, "rita", 5, 4, Utc(2027, 5, 4, 10));
  EXPECT_EQ(profile.next_birthday_time().seconds(), absl::ToUnixSeconds(Utc(2027, 5, 4, 9)));
  cel::SweepStats again = Run(*replica_, Utc(2027, 5, 4, 10, 1));
  EXPECT_EQ(again.paid, 0);
  EXPECT_EQ(again.already, 1);
  EXPECT_EQ(Earned("rita"), 10);
  EXPECT_EQ(Feed().size(), 1u);
  // And next year's is scheduled again.
  EXPECT_EQ(Run(*replica_, Utc(2028, 5, 4, 9)).paid, 1);
  EXPECT_EQ(Earned("rita"), 20);
}

TEST_F(CelebrationsSweepTest, Sweep_EmptyDirectoryZoneMeansTheOrgsZone) {
  CreatePerson("bob", "");
  v1::CelebrationProfile profile = SetBirthday(*replica_, "bob", 7, 1, Utc(2027, 1, 5));
  EXPECT_EQ(profile.time_zone(), "America/New_York");
  // 09:00 EDT is 13:00 UTC.
  EXPECT_EQ(Run(*replica_, Utc(2027, 7, 1, 12, 59)).paid, 0);
  EXPECT_EQ(Run(*replica_, Utc(2027, 7, 1, 13)).paid, 1);
  EXPECT_EQ(Earned("bob"), 10);
}

TEST_F(CelebrationsSweepTest, Sweep_DirectoryZoneChangeMovesTheCelebrationToNineInTheNewZone) {
  CreatePerson("zed", "UTC");
  SetBirthday(*replica_, "zed", 8, 20, Utc(2027, 1, 1));
  // zed moves to Los Angeles in the directory: 09:00 PDT is 16:00 UTC.
  kudos::v1::UpdatePersonRequest update;
  update.mutable_person()->set_person_id("zed");
  update.mutable_person()->set_display_name("Person zed");
  update.mutable_person()->set_team_id("eng");
  update.mutable_person()->set_time_zone("America/Los_Angeles");
  update.mutable_person()->set_active(true);
  kudos::v1::UpdatePersonResponse updated;
  grpc::Status status = directory_->UpdatePerson(Context(admin_).get(), update, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  cel::SweepStats at_utc_nine = Run(*replica_, Utc(2027, 8, 20, 9));
  EXPECT_EQ(at_utc_nine.paid, 0);
  EXPECT_EQ(at_utc_nine.moved, 1);
  EXPECT_EQ(Run(*replica_, Utc(2027, 8, 20, 15, 59)).paid, 0);
  EXPECT_EQ(Run(*replica_, Utc(2027, 8, 20, 16)).paid, 1);
  EXPECT_EQ(Earned("zed"), 10);
}

TEST_F(CelebrationsSweepTest, Sweep_WorkAnniversaryPaysTheOrgsPointsPerTenureYear) {
  CreatePerson("carol", "UTC");
  v1::CelebrationSettings settings;
  settings.set_birthday_points(10);
  settings.set_anniversary_points_per_year(7);
  ASSERT_TRUE(replica_->store.PutSettings(kOrg, settings).ok());
  SetHireDate("carol", 2020, 6, 15, Utc(2027, 6, 1));
  EXPECT_EQ(Run(*replica_, Utc(2027, 6, 15, 8, 59)).paid, 0);
  EXPECT_EQ(Run(*replica_, Utc(2027, 6, 15, 9)).paid, 1);
  EXPECT_EQ(Earned("carol"), 49);
  std::vector<v1::Celebration> feed = Feed();
  ASSERT_EQ(feed.size(), 1u);
  EXPECT_EQ(feed[0].tenure_years(), 7);
  EXPECT_EQ(feed[0].message(), "Happy 7-year work anniversary, Person carol!");
  ExpectLedgerConsistent();
}

TEST_F(CelebrationsSweepTest, Sweep_FebruaryTwentyNinthBirthdayIsPaidOnTheTwentyEighthInNonLeapYears) {
  CreatePerson("leap", "UTC");
  SetBirthday(*replica_, "leap", 2, 29, Utc(2027, 1, 1));
  EXPECT_EQ(Run(*replica_, Utc(2027, 2, 28, 9)).paid, 1);
  EXPECT_EQ(Earned("leap"), 10);
  // 2028 is a leap year: the 29th, not the 28th.
  EXPECT_EQ(Run(*replica_, Utc(2028, 2, 28, 9)).paid, 0);
  EXPECT_EQ(Run(*replica_, Utc(2028, 2, 29, 9)).paid, 1);
  EXPECT_EQ(Earned("leap"), 20);
}

TEST_F(CelebrationsSweepTest, Sweep_OptedOutAndInactivePeopleAreNotCelebrated) {
  CreatePerson("shy", "UTC");
  CreatePerson("gone", "UTC", /*active=*/false);
  SetBirthday(*replica_, "shy", 4, 1, Utc(2027, 1, 1));
  SetBirthday(*replica_, "gone", 4, 1, Utc(2027, 1, 1));
  SetOptOut("shy", true, Utc(2027, 2, 1));
  cel::SweepStats stats = Run(*replica_, Utc(2027, 4, 1, 9));
  EXPECT_EQ(stats.paid, 0);
  EXPECT_EQ(stats.skipped, 1);  // gone; shy has no schedule at all
  EXPECT_EQ(Earned("shy"), 0);
  EXPECT_EQ(Earned("gone"), 0);
  EXPECT_TRUE(Feed().empty());
  // Opting back in celebrates the next one.
  SetOptOut("shy", false, Utc(2027, 5, 1));
  EXPECT_EQ(Run(*replica_, Utc(2028, 4, 1, 9)).paid, 1);
  EXPECT_EQ(Earned("shy"), 10);
}

TEST_F(CelebrationsSweepTest, Sweep_CrashBetweenMarkerAndPaymentIsFinishedLaterOnce) {
  CreatePerson("dana", "UTC");
  CreatePerson("eli", "UTC");
  SetBirthday(*replica_, "dana", 9, 9, Utc(2027, 1, 1));
  SetBirthday(*replica_, "eli", 9, 9, Utc(2027, 1, 1));
  const absl::Time day = Utc(2027, 9, 9, 9);
  // Replica A claims both, then its ledger call fails: for dana before the
  // ledger applied it, for eli after (the answer lost).
  Replica crashed(redis_->port(), kudos_->address(), ledger_->address());
  FailingPayer lost_before;
  FailingPayer lost_after(crashed.payer.get());
  cel::SweepOptions one;
  one.max_due_per_pass = 1;
  cel::Sweep first_of_two(crashed.store, *crashed.directory, lost_before, *crashed.company_kudos,
                          one);
  ASSERT_EQ(first_of_two.RunOnce(kOrg, day)->failed, 1);  // dana
  cel::Sweep second_of_two(crashed.store, *crashed.directory, lost_after, *crashed.company_kudos,
                           one);
  ASSERT_EQ(second_of_two.RunOnce(kOrg, day)->failed, 1);  // eli
  EXPECT_EQ(Marker(v1::CELEBRATION_KIND_BIRTHDAY, 2027, "dana"), "pending");
  EXPECT_EQ(Marker(v1::CELEBRATION_KIND_BIRTHDAY, 2027, "eli"), "pending");
  EXPECT_EQ(Earned("dana"), 0);
  EXPECT_EQ(Earned("eli"), 10);
  // Another replica at once: the markers are there and the retries wait.
  cel::SweepStats same_time = Run(*replica_, day);
  EXPECT_EQ(same_time.paid, 0);
  EXPECT_EQ(Earned("dana"), 0);
  // After the retry backoff any replica finishes both, each paid once.
  cel::SweepStats later = Run(*replica_, day + absl::Minutes(2));
  EXPECT_EQ(later.paid, 2);
  EXPECT_EQ(Earned("dana"), 10);
  EXPECT_EQ(Earned("eli"), 10);
  EXPECT_EQ(Marker(v1::CELEBRATION_KIND_BIRTHDAY, 2027, "eli"), "paid");
  EXPECT_EQ(Feed().size(), 2u);
  EXPECT_EQ(Run(*replica_, day + absl::Hours(1)).paid, 0);
  ExpectLedgerConsistent();
}

TEST_F(CelebrationsSweepTest, Sweep_TwoReplicasRacingOnTheSameDuePeoplePayEachOnce) {
  constexpr int kPeople = 12;
  for (int i = 0; i < kPeople; ++i) {
    CreatePerson("p" + std::to_string(i), "UTC");
    SetBirthday(*replica_, "p" + std::to_string(i), 11, 2, Utc(2027, 1, 1));
  }
  std::unique_ptr<Replica> other = NewReplica();
  const absl::Time day = Utc(2027, 11, 2, 9);
  std::atomic<int> paid{0};
  std::vector<std::thread> threads;
  for (Replica* replica : {replica_.get(), other.get()}) {
    threads.emplace_back([replica, day, &paid] {
      for (int pass = 0; pass < 3; ++pass) {
        absl::StatusOr<cel::SweepStats> stats = replica->sweep.RunOnce(kOrg, day);
        if (stats.ok()) paid += stats->paid;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(paid.load(), kPeople);
  for (int i = 0; i < kPeople; ++i) EXPECT_EQ(Earned("p" + std::to_string(i)), 10) << i;
  EXPECT_EQ(Feed().size(), static_cast<size_t>(kPeople));
  ExpectLedgerConsistent();
}

TEST_F(CelebrationsSweepTest, Bounds_PeoplePerOrgFeedAndPerPassWorkAreCapped) {
  cel::StoreOptions store_options;
  store_options.max_people = 3;
  store_options.max_feed_entries = 2;
  cel::SweepOptions sweep_options;
  sweep_options.max_due_per_pass = 2;
  std::unique_ptr<Replica> small = NewReplica(store_options, sweep_options);
  for (int i = 0; i < 4; ++i) CreatePerson("b" + std::to_string(i), "UTC");
  for (int i = 0; i < 3; ++i) SetBirthday(*small, "b" + std::to_string(i), 12, 1, Utc(2027, 1, 1));
  absl::StatusOr<v1::CelebrationProfile> fourth = cel::UpdateProfile(
      small->store, *small->directory, kOrg, "b3",
      [](v1::CelebrationProfile& p) { p.set_opted_out(true); }, Utc(2027, 1, 1));
  EXPECT_TRUE(absl::IsResourceExhausted(fourth.status())) << fourth.status();
  EXPECT_EQ(fourth.status().message(),
            "the org has celebration profiles for 3 people, the most it may have");
  // An existing profile still changes.
  SetBirthday(*small, "b0", 12, 1, Utc(2027, 1, 2));
  const absl::Time day = Utc(2027, 12, 1, 9);
  absl::StatusOr<cel::SweepStats> first = small->sweep.RunOnce(kOrg, day);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->paid, 2);
  absl::StatusOr<cel::SweepStats> second = small->sweep.RunOnce(kOrg, day);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->paid, 1);
  absl::StatusOr<std::vector<v1::Celebration>> feed = small->store.Feed(kOrg, 0, 100);
  ASSERT_TRUE(feed.ok());
  EXPECT_EQ(feed->size(), 2u);
}

TEST_F(CelebrationsSweepTest, Profiles_UnknownPersonIsNotFound) {
  absl::StatusOr<v1::CelebrationProfile> profile = cel::UpdateProfile(
      replica_->store, *replica_->directory, kOrg, "nobody",
      [](v1::CelebrationProfile& p) { p.set_opted_out(true); }, Utc(2027, 1, 1));
  EXPECT_TRUE(absl::IsNotFound(profile.status())) << profile.status();
  EXPECT_EQ(profile.status().message(), "person_id: 'nobody' is not in the org's directory");
}

// ---- the celebration as a kudos from the company ------------------------------

TEST_F(CelebrationsSweepTest, CompanyKudos_CelebrationIsAKudosFromTheCompanyInTheRecipientsFeeds) {
  CreatePerson("aiko", "UTC");
  SetBirthday(*replica_, "aiko", 3, 10, Utc(2027, 1, 5));
  // aiko watches her received feed: the company kudos arrives live.
  std::unique_ptr<grpc::ClientContext> watch_context =
      Context(MintToken(kOrg, "aiko"), std::chrono::seconds(30));
  kudos::v1::WatchFeedRequest watch;
  watch.mutable_filter()->set_recipient_id("aiko");
  auto reader = kudos_stub_->WatchFeed(watch_context.get(), watch);
  reader->WaitForInitialMetadata();  // live from here

  ASSERT_EQ(Run(*replica_, Utc(2027, 3, 10, 9)).paid, 1);
  std::vector<kudos::v1::Kudos> received = ReceivedKudos("aiko");
  ASSERT_EQ(received.size(), 1u);
  const kudos::v1::Kudos& kudos = received[0];
  EXPECT_TRUE(kudos.from_company());
  EXPECT_EQ(kudos.giver_id(), "");
  EXPECT_EQ(kudos.points_per_recipient(), 10);
  EXPECT_EQ(kudos.transfer_id(), "celebration:birthday:2027:aiko");
  EXPECT_EQ(kudos.message(), "Happy birthday, Person aiko!");
  EXPECT_EQ(kudos.state(), kudos::v1::KUDOS_STATE_COMMITTED);
  EXPECT_EQ(kudos.visibility(), kudos::v1::KUDOS_VISIBILITY_PUBLIC);
  EXPECT_EQ(Earned("aiko"), 10);  // paid once, by the celebration's transfer only
  ASSERT_EQ(EarnedTransfers("aiko").size(), 1u);
  EXPECT_EQ(EarnedTransfers("aiko")[0].kind(), ledger::v1::TRANSFER_KIND_CELEBRATION);

  kudos::v1::WatchFeedResponse update;
  ASSERT_TRUE(reader->Read(&update));
  EXPECT_EQ(update.kudos().kudos_id(), kudos.kudos_id());
  EXPECT_TRUE(update.kudos().from_company());
  watch_context->TryCancel();

  // GetKudos and the org's feed show it too; the celebration names it.
  kudos::v1::GetKudosRequest get;
  get.set_kudos_id(kudos.kudos_id());
  kudos::v1::GetKudosResponse got;
  ASSERT_TRUE(kudos_stub_->GetKudos(Context(MintToken(kOrg, "lobby", {"screen"})).get(), get, &got)
                  .ok());
  EXPECT_TRUE(got.kudos().from_company());
  kudos::v1::ListKudosResponse org_feed;
  ASSERT_TRUE(kudos_stub_->ListKudos(Context(MintToken(kOrg, "reader")).get(), {}, &org_feed).ok());
  ASSERT_EQ(org_feed.kudos_size(), 1);
  EXPECT_EQ(org_feed.kudos(0).kudos_id(), kudos.kudos_id());
  ASSERT_EQ(Feed().size(), 1u);
  EXPECT_EQ(Feed()[0].kudos_id(), kudos.kudos_id());
  ExpectLedgerConsistent();
}

TEST_F(CelebrationsSweepTest, CompanyKudos_EventOnTheKudosStreamHasNoGiver) {
  CreatePerson("omar", "UTC");
  SetBirthday(*replica_, "omar", 6, 1, Utc(2027, 1, 1));
  ASSERT_EQ(Run(*replica_, Utc(2027, 6, 1, 9)).paid, 1);
  absl::StatusOr<common::redis::Reply> entries =
      replica_->pool->Run({"XRANGE", "kudos:{acme}:events", "-", "+"});
  ASSERT_TRUE(entries.ok()) << entries.status();
  int sent = 0;
  for (const common::redis::Reply& entry : entries->elements) {
    const std::vector<common::redis::Reply>& fields = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      kudos::v1::KudosEvent event;
      if (fields[i].str != "event" || !event.ParseFromString(fields[i + 1].str)) continue;
      if (!event.has_kudos_sent()) continue;
      ++sent;
      EXPECT_TRUE(event.kudos_sent().kudos().from_company());
      EXPECT_EQ(event.kudos_sent().kudos().giver_id(), "");
      EXPECT_EQ(event.kudos_sent().giver_team_id(), "");
      EXPECT_EQ(event.kudos_sent().recipient_team_ids().at("omar"), "eng");
      EXPECT_EQ(event.kudos_sent().kudos().points_per_recipient(), 10);
    }
  }
  EXPECT_EQ(sent, 1);
}

TEST_F(CelebrationsSweepTest, CompanyKudos_FailureBetweenPaymentAndRecordEndsWithOneKudosAfterTheSweep) {
  CreatePerson("dana", "UTC");
  CreatePerson("eli", "UTC");
  SetBirthday(*replica_, "dana", 9, 9, Utc(2027, 1, 1));
  SetBirthday(*replica_, "eli", 9, 9, Utc(2027, 1, 1));
  const absl::Time day = Utc(2027, 9, 9, 9);
  // Replica A pays both, then its kudos call fails: for dana before the kudos
  // service recorded it, for eli after (the answer lost).
  Replica crashed(redis_->port(), kudos_->address(), ledger_->address());
  FailingCompanyKudos lost_before;
  FailingCompanyKudos lost_after(crashed.company_kudos.get());
  cel::SweepOptions one;
  one.max_due_per_pass = 1;
  cel::Sweep first_of_two(crashed.store, *crashed.directory, *crashed.payer, lost_before, one);
  ASSERT_EQ(first_of_two.RunOnce(kOrg, day)->failed, 1);  // dana
  cel::Sweep second_of_two(crashed.store, *crashed.directory, *crashed.payer, lost_after, one);
  ASSERT_EQ(second_of_two.RunOnce(kOrg, day)->failed, 1);  // eli
  EXPECT_EQ(Marker(v1::CELEBRATION_KIND_BIRTHDAY, 2027, "dana"), "pending");
  EXPECT_EQ(Earned("dana"), 10);
  EXPECT_TRUE(ReceivedKudos("dana").empty());
  EXPECT_EQ(ReceivedKudos("eli").size(), 1u);
  // After the retry backoff any replica finishes both: paid again with the
  // same transfer id (applied once), recorded again with the same request id.
  cel::SweepStats later = Run(*replica_, day + absl::Minutes(2));
  EXPECT_EQ(later.paid, 2);
  EXPECT_EQ(later.failed, 0);
  for (const char* name : {"dana", "eli"}) {
    const std::string person = name;
    EXPECT_EQ(Earned(person), 10) << person;
    EXPECT_EQ(EarnedTransfers(person).size(), 1u) << person;
    std::vector<kudos::v1::Kudos> received = ReceivedKudos(person);
    ASSERT_EQ(received.size(), 1u) << person;
    EXPECT_TRUE(received[0].from_company());
    EXPECT_EQ(received[0].transfer_id(), "celebration:birthday:2027:" + person);
    EXPECT_EQ(Marker(v1::CELEBRATION_KIND_BIRTHDAY, 2027, person), "paid");
  }
  std::vector<v1::Celebration> feed = Feed();
  ASSERT_EQ(feed.size(), 2u);
  for (const v1::Celebration& celebration : feed) EXPECT_FALSE(celebration.kudos_id().empty());
  EXPECT_EQ(Run(*replica_, day + absl::Hours(1)).paid, 0);
  ExpectLedgerConsistent();
}

TEST_F(CelebrationsSweepTest, CompanyKudos_OnlyTheProgramsServiceMayRecordOne) {
  CreatePerson("ana", "UTC");
  kudos::v1::RecordCompanyKudosRequest request;
  request.set_request_id("birthday:2027:ana");
  request.set_recipient_id("ana");
  request.set_message("Happy birthday, Ana!");
  request.set_points(10);
  request.set_transfer_id("celebration:birthday:2027:ana");
  auto service_token = [](const std::string& service) {
    absl::StatusOr<std::string> token = common::auth::MintServiceToken(
        service, kOrg, common::auth::kDevServiceSecret, absl::Now());
    EXPECT_TRUE(token.ok());
    return token.ok() ? *token : std::string();
  };
  for (const std::string& token :
       {MintToken(kOrg, "ana"), MintToken(kOrg, "bob", {"member", "manager"}), admin_,
        MintToken(kOrg, "lobby", {"screen"}), service_token("kudos"), service_token("ledger")}) {
    grpc::Status status = RecordCompanyKudos(token, request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  }
  EXPECT_TRUE(ReceivedKudos("ana").empty());

  const std::string programs = service_token("programs");
  kudos::v1::Kudos first;
  grpc::Status status = RecordCompanyKudos(programs, request, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(first.from_company());
  // A retry returns the same kudos; another payload under the id is refused.
  kudos::v1::Kudos again;
  ASSERT_TRUE(RecordCompanyKudos(programs, request, &again).ok());
  EXPECT_EQ(again.kudos_id(), first.kudos_id());
  kudos::v1::RecordCompanyKudosRequest changed = request;
  changed.set_points(20);
  changed.set_transfer_id("celebration:birthday:2027:ana-2");
  EXPECT_EQ(RecordCompanyKudos(programs, changed).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(ReceivedKudos("ana").size(), 1u);
  EXPECT_EQ(Earned("ana"), 0);  // recording moves no points
}

TEST_F(CelebrationsSweepTest, CompanyKudos_BadInputIsInvalidArgumentNamingTheField) {
  CreatePerson("ana", "UTC");
  absl::StatusOr<std::string> programs = common::auth::MintServiceToken(
      "programs", kOrg, common::auth::kDevServiceSecret, absl::Now());
  ASSERT_TRUE(programs.ok());
  auto valid = [] {
    kudos::v1::RecordCompanyKudosRequest request;
    request.set_request_id("birthday:2027:ana");
    request.set_recipient_id("ana");
    request.set_message("Happy birthday, Ana!");
    request.set_points(10);
    request.set_transfer_id("celebration:birthday:2027:ana");
    return request;
  };
  struct Case {
    std::function<void(kudos::v1::RecordCompanyKudosRequest&)> change;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { r.clear_request_id(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "request_id: is required (a client-made idempotency key)"},
      {[](auto& r) { r.set_recipient_id("bad id"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "recipient_id"},
      {[](auto& r) { r.set_recipient_id("nobody"); }, grpc::StatusCode::NOT_FOUND,
       "recipient_id: 'nobody' is not a person of this org"},
      {[](auto& r) { r.clear_message(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "message: must be 1..1000 characters, got 0"},
      {[](auto& r) { r.add_values("no-such-value"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "values[0]: 'no-such-value' is not in the org's values catalog"},
      {[](auto& r) { r.set_points(-1); }, grpc::StatusCode::INVALID_ARGUMENT,
       "points: must be 0..1000000, got -1"},
      {[](auto& r) { r.clear_transfer_id(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "transfer_id: is required when points > 0 (the ledger transfer that paid them)"},
      {[](auto& r) { r.set_points(0); }, grpc::StatusCode::INVALID_ARGUMENT,
       "transfer_id: must be empty when points is 0"},
  };
  for (const Case& c : cases) {
    kudos::v1::RecordCompanyKudosRequest request = valid();
    c.change(request);
    grpc::Status status = RecordCompanyKudos(*programs, request);
    EXPECT_EQ(status.error_code(), c.code) << c.message << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.message), std::string::npos)
        << status.error_message();
  }
  EXPECT_TRUE(ReceivedKudos("ana").empty());
}

}  // namespace
