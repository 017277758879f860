// Issue 18 part 6, "kudos people can shape" (the kudos service's side): the
// org settings values_required, message_length_min and
// allow_kudos_without_points; private kudos (who sees them, what the ledger
// and the event stream carry); hiding oneself from leaderboards; retracted
// kudos left out of reads. A real redis-server, the real ledger and kudos
// binaries over real gRPC.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using harness::Context;
using harness::MintToken;
using kudos::v1::DirectoryService;
using kudos::v1::KudosService;
using ledger::v1::LedgerService;

constexpr char kOrg[] = "acme";

class KudosShapeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(),
        std::vector<std::string>{"--ledger=" + ledger_->address(), "--ledger_timeout_ms=1500",
                                 "--reconcile_after_ms=500"});
    auto channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    kudos_stub_ = KudosService::NewStub(channel);
    directory_ = DirectoryService::NewStub(channel);
    ledger_stub_ = LedgerService::NewStub(
        grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
    common::redis::PoolOptions options;
    options.endpoint.port = redis_->port();
    pool_ = std::make_unique<common::redis::Pool>(options);
    admin_ = MintToken(kOrg, "root", {"admin"});
    CreateTeam("eng");
    CreateTeam("ops");
    CreatePerson("mona", "ops", "");
    for (const char* id : {"alice", "bob", "carol", "dave"}) CreatePerson(id, "eng", "");
    CreatePerson("erin", "eng", "mona");  // mona manages erin
  }

  void CreateTeam(const std::string& id) {
    kudos::v1::CreateTeamRequest request;
    request.mutable_team()->set_team_id(id);
    request.mutable_team()->set_display_name("Team " + id);
    kudos::v1::CreateTeamResponse response;
    ASSERT_TRUE(directory_->CreateTeam(Context(admin_).get(), request, &response).ok());
  }

  void CreatePerson(const std::string& id, const std::string& team, const std::string& manager) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_team_id(team);
    request.mutable_person()->set_manager_id(manager);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory_->CreatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  static kudos::v1::SendKudosRequest Request(const std::string& request_id,
                                             std::vector<std::string> recipients, int64_t points,
                                             kudos::v1::KudosVisibility visibility =
                                                 kudos::v1::KUDOS_VISIBILITY_UNSPECIFIED) {
    kudos::v1::SendKudosRequest request;
    request.set_request_id(request_id);
    for (const auto& r : recipients) request.add_recipient_ids(r);
    request.set_message("Thank you for following up so quickly!");
    request.add_values("consistent-follow-up");
    request.set_points_per_recipient(points);
    request.set_visibility(visibility);
    return request;
  }

  grpc::Status Send(const std::string& giver, const kudos::v1::SendKudosRequest& request,
                    kudos::v1::SendKudosResponse* response = nullptr) {
    kudos::v1::SendKudosResponse ignored;
    return kudos_stub_->SendKudos(Context(MintToken(kOrg, giver)).get(), request,
                                  response != nullptr ? response : &ignored);
  }

  kudos::v1::Kudos SendOk(const std::string& giver, const kudos::v1::SendKudosRequest& request) {
    kudos::v1::SendKudosResponse response;
    grpc::Status status = Send(giver, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.kudos();
  }

  grpc::Status Get(const std::string& token, const std::string& kudos_id,
                   kudos::v1::Kudos* kudos = nullptr) {
    kudos::v1::GetKudosRequest request;
    request.set_kudos_id(kudos_id);
    kudos::v1::GetKudosResponse response;
    grpc::Status status = kudos_stub_->GetKudos(Context(token).get(), request, &response);
    if (kudos != nullptr) *kudos = response.kudos();
    return status;
  }

  // Every page of a listing, as `token` sees it.
  std::vector<kudos::v1::Kudos> List(const std::string& token,
                                     const kudos::v1::KudosFilter& filter = {}) {
    std::vector<kudos::v1::Kudos> all;
    std::string page_token;
    for (int page = 0; page < 100; ++page) {
      kudos::v1::ListKudosRequest request;
      *request.mutable_filter() = filter;
      request.set_page_size(100);
      request.set_page_token(page_token);
      kudos::v1::ListKudosResponse response;
      grpc::Status status = kudos_stub_->ListKudos(Context(token).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      all.insert(all.end(), response.kudos().begin(), response.kudos().end());
      page_token = response.next_page_token();
      if (page_token.empty()) break;
    }
    return all;
  }

  static bool Lists(const std::vector<kudos::v1::Kudos>& kudos, const std::string& id) {
    return std::any_of(kudos.begin(), kudos.end(),
                       [&](const kudos::v1::Kudos& k) { return k.kudos_id() == id; });
  }

  static kudos::v1::KudosFilter By(const std::string& field, const std::string& id) {
    kudos::v1::KudosFilter filter;
    if (field == "giver") filter.set_giver_id(id);
    if (field == "recipient") filter.set_recipient_id(id);
    if (field == "team") filter.set_team_id(id);
    if (field == "value") filter.set_value(id);
    return filter;
  }

  grpc::Status UpdateSettings(const std::function<void(kudos::v1::OrgSettings&)>& change,
                              kudos::v1::OrgSettings* stored = nullptr) {
    kudos::v1::GetOrgSettingsResponse current;
    EXPECT_TRUE(directory_->GetOrgSettings(Context(admin_).get(), {}, &current).ok());
    kudos::v1::UpdateOrgSettingsRequest request;
    *request.mutable_settings() = current.settings();
    change(*request.mutable_settings());
    kudos::v1::UpdateOrgSettingsResponse response;
    grpc::Status status = directory_->UpdateOrgSettings(Context(admin_).get(), request, &response);
    if (stored != nullptr) *stored = response.settings();
    return status;
  }

  std::vector<ledger::v1::Transfer> Transfers(const std::string& person) {
    ledger::v1::ListTransfersRequest request;
    request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    request.mutable_account()->set_person_id(person);
    request.set_page_size(500);
    ledger::v1::ListTransfersResponse response;
    grpc::Status status = ledger_stub_->ListTransfers(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.transfers().begin(), response.transfers().end()};
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

  // Every event on the org's kudos stream, oldest first.
  std::vector<kudos::v1::KudosEvent> Events() {
    auto reply = pool_->Run({"XRANGE", "kudos:{acme}:events", "-", "+"});
    EXPECT_TRUE(reply.ok()) << reply.status();
    std::vector<kudos::v1::KudosEvent> events;
    if (!reply.ok()) return events;
    for (const auto& entry : reply->elements) {
      const auto& fields = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str != "event") continue;
        kudos::v1::KudosEvent event;
        EXPECT_TRUE(event.ParseFromString(fields[i + 1].str));
        events.push_back(event);
      }
    }
    return events;
  }

  grpc::Status UpdatePerson(const std::string& token, const kudos::v1::Person& person) {
    kudos::v1::UpdatePersonRequest request;
    *request.mutable_person() = person;
    kudos::v1::UpdatePersonResponse response;
    return directory_->UpdatePerson(Context(token).get(), request, &response);
  }

  kudos::v1::Person GetPerson(const std::string& id) {
    kudos::v1::GetPersonRequest request;
    request.set_person_id(id);
    kudos::v1::GetPersonResponse response;
    EXPECT_TRUE(directory_->GetPerson(Context(admin_).get(), request, &response).ok());
    return response.person();
  }

  grpc::Status Boost(const std::string& booster, const std::string& kudos_id,
                     const std::string& request_id, int64_t points) {
    kudos::v1::BoostKudosRequest request;
    request.set_kudos_id(kudos_id);
    request.set_request_id(request_id);
    request.set_points(points);
    kudos::v1::BoostKudosResponse response;
    return kudos_stub_->BoostKudos(Context(MintToken(kOrg, booster)).get(), request, &response);
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<KudosService::Stub> kudos_stub_;
  std::unique_ptr<DirectoryService::Stub> directory_;
  std::unique_ptr<LedgerService::Stub> ledger_stub_;
  std::unique_ptr<common::redis::Pool> pool_;
  std::string admin_;
};

// ---- 1. Org settings -------------------------------------------------------

TEST_F(KudosShapeTest, OrgSettings_ValuesRequiredByDefaultAndOptionalWhenTheOrgSaysSo) {
  kudos::v1::GetOrgSettingsResponse defaults;
  ASSERT_TRUE(directory_->GetOrgSettings(Context(admin_).get(), {}, &defaults).ok());
  EXPECT_TRUE(defaults.settings().values_required());
  auto no_value = Request("no-value", {"bob"}, 5);
  no_value.clear_values();
  grpc::Status refused = Send("alice", no_value);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(refused.error_message(), "values: name at least one value of the catalog");

  // An update that leaves the field unset keeps values required.
  kudos::v1::OrgSettings stored;
  ASSERT_TRUE(UpdateSettings([](kudos::v1::OrgSettings& s) { s.clear_values_required(); }, &stored)
                  .ok());
  EXPECT_TRUE(stored.has_values_required() && stored.values_required());
  EXPECT_EQ(Send("alice", no_value).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(UpdateSettings([](kudos::v1::OrgSettings& s) { s.set_values_required(false); }).ok());
  kudos::v1::Kudos sent = SendOk("alice", no_value);
  EXPECT_EQ(sent.values_size(), 0);
  EXPECT_EQ(sent.state(), kudos::v1::KUDOS_STATE_COMMITTED);
  // Values still come from the catalog when given.
  auto unknown = Request("unknown-value", {"bob"}, 5);
  unknown.set_values(0, "bravado");
  EXPECT_EQ(Send("alice", unknown).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(KudosShapeTest, OrgSettings_MessageLengthMinCountsCodePointsAndNamesTheMinimum) {
  ASSERT_TRUE(UpdateSettings([](kudos::v1::OrgSettings& s) { s.set_message_length_min(12); }).ok());
  auto short_message = Request("short", {"bob"}, 5);
  short_message.set_message("Thanks a lot");  // 12 characters: exactly the minimum
  EXPECT_TRUE(Send("alice", short_message).ok());
  auto too_short = Request("too-short", {"bob"}, 5);
  too_short.set_message("Merci \xC3\xA0 toi");  // "Merci à toi": 11 code points, 12 bytes
  grpc::Status refused = Send("alice", too_short);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(refused.error_message(),
            "message: must be at least 12 characters (the org's minimum), got 11");
  too_short.set_message("Merci \xC3\xA0 toi!");  // 12 code points
  EXPECT_TRUE(Send("alice", too_short).ok());
}

TEST_F(KudosShapeTest, UpdateOrgSettings_RefusesAMessageLengthMinOutside0To500) {
  for (int bad : {-1, 501, 100000}) {
    grpc::Status status =
        UpdateSettings([bad](kudos::v1::OrgSettings& s) { s.set_message_length_min(bad); });
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_NE(status.error_message().find("settings.message_length_min: must be 0 (none)..500"),
              std::string::npos)
        << status.error_message();
  }
  kudos::v1::OrgSettings stored;
  ASSERT_TRUE(
      UpdateSettings([](kudos::v1::OrgSettings& s) { s.set_message_length_min(500); }, &stored).ok());
  EXPECT_EQ(stored.message_length_min(), 500);
}

TEST_F(KudosShapeTest, SendKudos_SpentAllowanceGoesOutWithoutPointsOnlyWhenTheOrgAllowsIt) {
  // The default allowance: 100 points a month, at most 50 per recipient.
  ASSERT_TRUE(Send("alice", Request("a", {"bob", "carol"}, 50)).ok());
  grpc::Status refused = Send("alice", Request("over", {"dave"}, 10));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();

  ASSERT_TRUE(
      UpdateSettings([](kudos::v1::OrgSettings& s) { s.set_allow_kudos_without_points(true); }).ok());
  kudos::v1::SendKudosResponse response;
  grpc::Status without = Send("alice", Request("without", {"dave"}, 10), &response);
  ASSERT_TRUE(without.ok()) << without.error_message();
  EXPECT_TRUE(response.sent_without_points());
  EXPECT_EQ(response.kudos().points_per_recipient(), 0);
  EXPECT_EQ(response.kudos().state(), kudos::v1::KUDOS_STATE_COMMITTED);
  EXPECT_EQ(Earned("dave"), 0);
  EXPECT_TRUE(Transfers("dave").empty());
  // A retry answers the same kudos, still without points.
  kudos::v1::SendKudosResponse retry;
  ASSERT_TRUE(Send("alice", Request("without", {"dave"}, 10), &retry).ok());
  EXPECT_EQ(retry.kudos().kudos_id(), response.kudos().kudos_id());
  EXPECT_TRUE(retry.sent_without_points());
  // It is in the feeds and on the stream with 0 points.
  kudos::v1::Kudos read;
  ASSERT_TRUE(Get(MintToken(kOrg, "carol"), response.kudos().kudos_id(), &read).ok());
  EXPECT_EQ(read.points_per_recipient(), 0);
  EXPECT_TRUE(Lists(List(MintToken(kOrg, "carol")), response.kudos().kudos_id()));
  bool on_stream = false;
  for (const auto& event : Events()) {
    if (event.has_kudos_sent() &&
        event.kudos_sent().kudos().kudos_id() == response.kudos().kudos_id()) {
      on_stream = true;
      EXPECT_EQ(event.kudos_sent().kudos().points_per_recipient(), 0);
    }
  }
  EXPECT_TRUE(on_stream);
  // The weekly pair cap got its 10 points back: 50 more to dave still fit
  // (the next month's allowance is not there, so they go without points too).
  kudos::v1::SendKudosResponse capped;
  ASSERT_TRUE(Send("alice", Request("cap", {"dave"}, 50), &capped).ok());
  EXPECT_TRUE(capped.sent_without_points());
  // A kudos within the allowance still carries its points.
  kudos::v1::SendKudosResponse paid;
  ASSERT_TRUE(Send("bob", Request("paid", {"dave"}, 7), &paid).ok());
  EXPECT_FALSE(paid.sent_without_points());
  EXPECT_EQ(Earned("dave"), 7);
}

TEST_F(KudosShapeTest, Reconciler_CommitsTheZeroPointFormWhenTheLedgerLaterFindsTheAllowanceSpent) {
  ASSERT_TRUE(
      UpdateSettings([](kudos::v1::OrgSettings& s) { s.set_allow_kudos_without_points(true); }).ok());
  ASSERT_TRUE(Send("alice", Request("a", {"bob", "carol"}, 50)).ok());  // the allowance is spent
  ledger_->Stop();
  grpc::Status down = Send("alice", Request("abandoned", {"dave"}, 10));
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  ledger_->Start();
  // Nobody retries: the reconciler settles the record, with its 0-point form.
  const kudos::v1::KudosFilter to_dave = By("recipient", "dave");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (List(admin_, to_dave).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto listed = List(admin_, to_dave);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].points_per_recipient(), 0);
  EXPECT_EQ(Earned("dave"), 0);
  // The client's late retry answers that kudos, without points.
  kudos::v1::SendKudosResponse retry;
  ASSERT_TRUE(Send("alice", Request("abandoned", {"dave"}, 10), &retry).ok());
  EXPECT_EQ(retry.kudos().kudos_id(), listed[0].kudos_id());
  EXPECT_TRUE(retry.sent_without_points());
}

// ---- 2. Private kudos ------------------------------------------------------

TEST_F(KudosShapeTest, PrivateKudos_OnlyGiverRecipientsAndTheirManagersReadIt) {
  kudos::v1::Kudos secret =
      SendOk("alice", Request("secret", {"erin"}, 5, kudos::v1::KUDOS_VISIBILITY_PRIVATE));
  kudos::v1::Kudos open = SendOk("alice", Request("open", {"erin"}, 5));
  EXPECT_EQ(secret.visibility(), kudos::v1::KUDOS_VISIBILITY_PRIVATE);
  EXPECT_EQ(open.visibility(), kudos::v1::KUDOS_VISIBILITY_PUBLIC);

  for (const char* who : {"alice", "erin", "mona"}) {
    kudos::v1::Kudos read;
    grpc::Status status = Get(MintToken(kOrg, who), secret.kudos_id(), &read);
    EXPECT_TRUE(status.ok()) << who << ": " << status.error_message();
    EXPECT_EQ(read.visibility(), kudos::v1::KUDOS_VISIBILITY_PRIVATE) << who;
  }
  // Anyone else: NOT_FOUND, worded as for an id that does not exist.
  grpc::Status unknown = Get(MintToken(kOrg, "carol"), "k-no-such-kudos");
  for (const std::string& token :
       {MintToken(kOrg, "carol"), MintToken(kOrg, "lobby", {"screen"}), admin_}) {
    grpc::Status status = Get(token, secret.kudos_id());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(status.error_message(),
              "kudos_id: '" + secret.kudos_id() + "' does not exist");
  }
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);

  // No org-wide, team or value listing shows it, to anyone.
  for (const char* who : {"alice", "erin", "mona", "carol"}) {
    const std::string token = MintToken(kOrg, who);
    for (const auto& filter : {kudos::v1::KudosFilter(), By("team", "eng"),
                               By("value", "consistent-follow-up")}) {
      auto listed = List(token, filter);
      EXPECT_FALSE(Lists(listed, secret.kudos_id())) << who << " " << filter.ShortDebugString();
      EXPECT_TRUE(Lists(listed, open.kudos_id())) << who << " " << filter.ShortDebugString();
    }
  }
  // The giver's and recipient's listings show it to the people it concerns only.
  for (const auto& filter : {By("giver", "alice"), By("recipient", "erin")}) {
    for (const char* who : {"alice", "erin", "mona"}) {
      EXPECT_TRUE(Lists(List(MintToken(kOrg, who), filter), secret.kudos_id()))
          << who << " " << filter.ShortDebugString();
    }
    for (const std::string& token :
         {MintToken(kOrg, "carol"), MintToken(kOrg, "lobby", {"screen"}), admin_}) {
      auto listed = List(token, filter);
      EXPECT_FALSE(Lists(listed, secret.kudos_id())) << filter.ShortDebugString();
      EXPECT_TRUE(Lists(listed, open.kudos_id())) << filter.ShortDebugString();
    }
  }
}

TEST_F(KudosShapeTest, PrivateKudos_LedgerTagsEventsAndBoostsCarryItsVisibility) {
  kudos::v1::Kudos secret =
      SendOk("alice", Request("secret", {"erin"}, 5, kudos::v1::KUDOS_VISIBILITY_PRIVATE));
  kudos::v1::Kudos open = SendOk("bob", Request("open", {"erin"}, 5));
  // Who cannot see it cannot boost it; a recipient's manager can.
  grpc::Status outsider = Boost("carol", secret.kudos_id(), "b1", 3);
  EXPECT_EQ(outsider.error_code(), grpc::StatusCode::NOT_FOUND) << outsider.error_message();
  grpc::Status manager = Boost("mona", secret.kudos_id(), "b2", 3);
  ASSERT_TRUE(manager.ok()) << manager.error_message();
  ASSERT_TRUE(Boost("mona", open.kudos_id(), "b3", 2).ok());

  int private_transfers = 0, public_transfers = 0;
  for (const auto& transfer : Transfers("erin")) {
    auto tag = transfer.tags().find("visibility");
    if (transfer.reference() == secret.kudos_id()) {
      ++private_transfers;
      ASSERT_NE(tag, transfer.tags().end()) << transfer.transfer_id();
      EXPECT_EQ(tag->second, "private");
    } else {
      ++public_transfers;
      EXPECT_EQ(tag, transfer.tags().end()) << transfer.transfer_id();
    }
  }
  EXPECT_EQ(private_transfers, 2);  // the kudos and mona's boost
  EXPECT_EQ(public_transfers, 2);
  EXPECT_EQ(Earned("erin"), 15);

  int sent = 0, boosted = 0;
  for (const auto& event : Events()) {
    if (event.has_kudos_sent()) {
      ++sent;
      const bool is_secret = event.kudos_sent().kudos().kudos_id() == secret.kudos_id();
      EXPECT_EQ(event.kudos_sent().kudos().visibility(),
                is_secret ? kudos::v1::KUDOS_VISIBILITY_PRIVATE : kudos::v1::KUDOS_VISIBILITY_PUBLIC);
    }
    if (event.has_kudos_boosted()) {
      ++boosted;
      const bool is_secret = event.kudos_boosted().kudos_id() == secret.kudos_id();
      EXPECT_EQ(event.kudos_boosted().visibility(),
                is_secret ? kudos::v1::KUDOS_VISIBILITY_PRIVATE : kudos::v1::KUDOS_VISIBILITY_PUBLIC);
    }
  }
  EXPECT_EQ(sent, 2);
  EXPECT_EQ(boosted, 2);
}

TEST_F(KudosShapeTest, WatchFeed_NeverSendsAPrivateKudosToOthers) {
  struct Watcher {
    std::string who;
    kudos::v1::KudosFilter filter;
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReader<kudos::v1::WatchFeedResponse>> reader;
  };
  std::vector<Watcher> watchers;
  auto watch = [&](const std::string& who, const std::string& token,
                   const kudos::v1::KudosFilter& filter) {
    Watcher w{who, filter, Context(token, std::chrono::seconds(30)), nullptr};
    kudos::v1::WatchFeedRequest request;
    *request.mutable_filter() = filter;
    w.reader = kudos_stub_->WatchFeed(w.context.get(), request);
    w.reader->WaitForInitialMetadata();  // live from here
    watchers.push_back(std::move(w));
  };
  watch("screen", MintToken(kOrg, "lobby", {"screen"}), {});
  watch("carol on erin's feed", MintToken(kOrg, "carol"), By("recipient", "erin"));
  watch("carol on alice's feed", MintToken(kOrg, "carol"), By("giver", "alice"));
  watch("erin, org-wide", MintToken(kOrg, "erin"), {});
  watch("erin on her feed", MintToken(kOrg, "erin"), By("recipient", "erin"));
  watch("alice on her feed", MintToken(kOrg, "alice"), By("giver", "alice"));

  kudos::v1::Kudos secret =
      SendOk("alice", Request("secret", {"erin"}, 5, kudos::v1::KUDOS_VISIBILITY_PRIVATE));
  kudos::v1::Kudos marker = SendOk("alice", Request("marker", {"erin"}, 5));
  for (Watcher& w : watchers) {
    const bool party_feed = w.who == "erin on her feed" || w.who == "alice on her feed";
    kudos::v1::WatchFeedResponse first;
    ASSERT_TRUE(w.reader->Read(&first)) << w.who;
    EXPECT_EQ(first.kudos().kudos_id(), party_feed ? secret.kudos_id() : marker.kudos_id())
        << w.who;
    if (party_feed) {
      kudos::v1::WatchFeedResponse second;
      ASSERT_TRUE(w.reader->Read(&second)) << w.who;
      EXPECT_EQ(second.kudos().kudos_id(), marker.kudos_id()) << w.who;
    }
    w.context->TryCancel();
  }
}

// ---- 3. Hiding oneself from leaderboards -----------------------------------

TEST_F(KudosShapeTest, UpdatePerson_APersonMayHideThemselfFromLeaderboardsAndChangeNothingElse) {
  const std::string bob = MintToken(kOrg, "bob");
  kudos::v1::Person me = GetPerson("bob");
  me.set_hidden_from_leaderboards(true);
  grpc::Status hidden = UpdatePerson(bob, me);
  ASSERT_TRUE(hidden.ok()) << hidden.error_message();
  EXPECT_TRUE(GetPerson("bob").hidden_from_leaderboards());

  kudos::v1::Person renamed = me;
  renamed.set_display_name("Robert");
  grpc::Status rename = UpdatePerson(bob, renamed);
  EXPECT_EQ(rename.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(rename.error_message(),
            "person.display_name: only admins change it; you may change only your own "
            "hidden_from_leaderboards");
  kudos::v1::Person moved = me;
  moved.set_team_id("ops");
  EXPECT_EQ(UpdatePerson(bob, moved).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  kudos::v1::Person other = GetPerson("carol");
  other.set_hidden_from_leaderboards(true);
  EXPECT_EQ(UpdatePerson(bob, other).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(UpdatePerson(MintToken(kOrg, "lobby", {"screen"}), me).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_FALSE(GetPerson("carol").hidden_from_leaderboards());
  EXPECT_EQ(GetPerson("bob").display_name(), "Person bob");

  // An admin may set it too; every change is a PersonChanged on the stream.
  other.set_hidden_from_leaderboards(true);
  ASSERT_TRUE(UpdatePerson(admin_, other).ok());
  me.set_hidden_from_leaderboards(false);
  ASSERT_TRUE(UpdatePerson(bob, me).ok());
  std::vector<std::pair<std::string, bool>> changes;
  for (const auto& event : Events()) {
    if (event.has_person_changed() &&
        (event.person_changed().person().person_id() == "bob" ||
         event.person_changed().person().person_id() == "carol")) {
      changes.emplace_back(event.person_changed().person().person_id(),
                           event.person_changed().person().hidden_from_leaderboards());
    }
  }
  EXPECT_EQ(changes, (std::vector<std::pair<std::string, bool>>{
                         {"bob", false}, {"carol", false},  // created
                         {"bob", true}, {"carol", true}, {"bob", false}}));
}

// ---- 4. Retracted kudos ----------------------------------------------------

TEST_F(KudosShapeTest, RetractedKudos_LeftOutForEveryoneButAdminsWhoSeeItMarked) {
  kudos::v1::Kudos kept = SendOk("alice", Request("kept", {"bob"}, 5));
  kudos::v1::Kudos gone = SendOk("alice", Request("gone", {"bob"}, 5));
  // The retraction (services/kudos/social_*) marks it in the org's retracted hash.
  ASSERT_TRUE(pool_->Run({"HSET", "kudos:{acme}:retracted", gone.kudos_id(), "x"}).ok());

  for (const char* who : {"alice", "bob", "carol"}) {
    const std::string token = MintToken(kOrg, who);
    grpc::Status status = Get(token, gone.kudos_id());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << who;
    EXPECT_EQ(status.error_message(), "kudos_id: '" + gone.kudos_id() + "' does not exist");
    for (const auto& filter : {kudos::v1::KudosFilter(), By("giver", "alice"),
                               By("recipient", "bob"), By("team", "eng")}) {
      auto listed = List(token, filter);
      EXPECT_FALSE(Lists(listed, gone.kudos_id())) << who << " " << filter.ShortDebugString();
      EXPECT_TRUE(Lists(listed, kept.kudos_id())) << who << " " << filter.ShortDebugString();
    }
  }
  kudos::v1::Kudos as_admin;
  ASSERT_TRUE(Get(admin_, gone.kudos_id(), &as_admin).ok());
  EXPECT_TRUE(as_admin.retracted());
  auto listed = List(admin_);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].kudos_id(), gone.kudos_id());
  EXPECT_TRUE(listed[0].retracted());
  EXPECT_FALSE(listed[1].retracted());
  // Nobody boosts a retracted kudos.
  EXPECT_EQ(Boost("carol", gone.kudos_id(), "b1", 3).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
