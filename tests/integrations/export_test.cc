// Area "export" (issue 17), end to end: the real integrations_server, kudos
// and ledger over real gRPC against a real redis-server. Delegated tokens as
// kudos sees them; the NDJSON export of kudos, transfers and audit entries
// (gRPC and the HTTP route behind the gateway's passthrough); the audit read.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/redis/redis_client.h"
#include "integrations/v1/export.grpc.pb.h"
#include "integrations/v1/http_ingress.grpc.pb.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using google::protobuf::util::MessageDifferencer;
using harness::Context;
using harness::MintToken;
using integrations::v1::ExportKind;
using integrations::v1::ExportService;

constexpr char kOrg[] = "acme";

google::protobuf::Timestamp At(absl::Time t) {
  google::protobuf::Timestamp out;
  out.set_seconds(absl::ToUnixSeconds(t));
  return out;
}

std::vector<std::string> Lines(const std::string& ndjson) {
  std::vector<std::string> lines = absl::StrSplit(ndjson, '\n', absl::SkipEmpty());
  EXPECT_TRUE(ndjson.empty() || ndjson.back() == '\n') << "every line ends with \\n";
  return lines;
}

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(),
        std::vector<std::string>{"--ledger=" + ledger_->address(), "--archive_interval_s=0"});
    integrations_ = std::make_unique<harness::Service>(
        INTEGRATIONS_BINARY, redis_->address(),
        std::vector<std::string>{"--kudos=" + kudos_->address(), "--ledger=" + ledger_->address()});
    auto kudos_channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    kudos_stub_ = kudos::v1::KudosService::NewStub(kudos_channel);
    directory_ = kudos::v1::DirectoryService::NewStub(kudos_channel);
    ledger_stub_ = ledger::v1::LedgerService::NewStub(
        grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
    auto integrations_channel =
        grpc::CreateChannel(integrations_->address(), grpc::InsecureChannelCredentials());
    export_ = ExportService::NewStub(integrations_channel);
    ingress_ = integrations::v1::HttpIngressService::NewStub(integrations_channel);
    admin_ = MintToken(kOrg, "root", {"admin"});
    CreateTeam("eng");
    for (const char* id : {"alice", "bob", "carol", "dave"}) CreatePerson(admin_, id);
  }

  void CreateTeam(const std::string& id) {
    kudos::v1::CreateTeamRequest request;
    request.mutable_team()->set_team_id(id);
    request.mutable_team()->set_display_name("Team " + id);
    kudos::v1::CreateTeamResponse response;
    grpc::Status status = directory_->CreateTeam(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  grpc::Status CreatePerson(const std::string& token, const std::string& id) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_team_id("eng");
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory_->CreatePerson(Context(token).get(), request, &response);
    return status;
  }

  grpc::Status SendAs(const std::string& token, const std::string& request_id,
                      const std::vector<std::string>& recipients,
                      kudos::v1::Kudos* kudos = nullptr) {
    kudos::v1::SendKudosRequest request;
    request.set_request_id(request_id);
    for (const std::string& r : recipients) request.add_recipient_ids(r);
    request.set_message("Thanks for the quick, clear follow-up on " + request_id);
    request.add_values("teamwork");
    request.set_points_per_recipient(2);
    kudos::v1::SendKudosResponse response;
    grpc::Status status = kudos_stub_->SendKudos(Context(token).get(), request, &response);
    if (kudos != nullptr) *kudos = response.kudos();
    return status;
  }

  std::string Send(const std::string& giver, const std::string& request_id,
                   const std::vector<std::string>& recipients) {
    kudos::v1::Kudos kudos;
    grpc::Status status = SendAs(MintToken(kOrg, giver), request_id, recipients, &kudos);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return kudos.kudos_id();
  }

  kudos::v1::Kudos Get(const std::string& id) {
    kudos::v1::GetKudosRequest request;
    request.set_kudos_id(id);
    kudos::v1::GetKudosResponse response;
    grpc::Status status = kudos_stub_->GetKudos(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.kudos();
  }

  grpc::Status ExportPage(const std::string& token, const integrations::v1::ExportRequest& request,
                          integrations::v1::ExportResponse* response) {
    return export_->Export(Context(token, std::chrono::seconds(30)).get(), request, response);
  }

  // Every line of an export, page after page; `pages` receives how many.
  std::vector<std::string> ExportAll(ExportKind kind, absl::Time from, absl::Time to, int page_size,
                                     int* pages = nullptr) {
    std::vector<std::string> lines;
    integrations::v1::ExportRequest request;
    request.set_kind(kind);
    *request.mutable_from() = At(from);
    *request.mutable_to() = At(to);
    request.set_page_size(page_size);
    int count = 0;
    for (; count < 1000; ++count) {
      integrations::v1::ExportResponse response;
      grpc::Status status = ExportPage(admin_, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      EXPECT_EQ(response.content_type(), "application/x-ndjson");
      std::vector<std::string> page = Lines(response.ndjson());
      EXPECT_EQ(static_cast<int>(page.size()), response.count());
      EXPECT_LE(response.count(), page_size == 0 ? 500 : page_size);  // 0 = the default
      lines.insert(lines.end(), page.begin(), page.end());
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    if (pages != nullptr) *pages = count + 1;
    return lines;
  }

  std::set<std::string> LedgerTransferIds(const ledger::v1::Account& account) {
    std::set<std::string> ids;
    std::string token;
    for (int page = 0; page < 100; ++page) {
      ledger::v1::ListTransfersRequest request;
      *request.mutable_account() = account;
      request.set_page_size(500);
      request.set_page_token(token);
      ledger::v1::ListTransfersResponse response;
      grpc::Status status = ledger_stub_->ListTransfers(Context(admin_).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      for (const auto& t : response.transfers()) ids.insert(t.transfer_id());
      token = response.next_page_token();
      if (token.empty()) break;
    }
    return ids;
  }

  void Adjust(const std::string& request_id, const std::string& person, int64_t amount) {
    ledger::v1::AdjustBalanceRequest request;
    request.set_request_id(request_id);
    request.set_person_id(person);
    request.set_amount(amount);
    request.set_reason("correction for the export test");
    ledger::v1::AdjustBalanceResponse response;
    grpc::Status status = ledger_stub_->AdjustBalance(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  integrations::v1::HandleResponse Http(const std::string& method, const std::string& path,
                                        const std::string& query, const std::string& token) {
    integrations::v1::HandleRequest request;
    request.set_method(method);
    request.set_path(path);
    request.set_query(query);
    if (!token.empty()) {
      auto* header = request.add_headers();
      header->set_name("authorization");
      header->set_value("Bearer " + token);
    }
    integrations::v1::HandleResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status status = ingress_->Handle(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::string Header(const integrations::v1::HandleResponse& response, const std::string& name) {
    for (const auto& header : response.headers()) {
      if (header.name() == name) return header.value();
    }
    return "";
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<harness::Service> integrations_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_stub_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_stub_;
  std::unique_ptr<ExportService::Stub> export_;
  std::unique_ptr<integrations::v1::HttpIngressService::Stub> ingress_;
  std::string admin_;
};

// ---- delegated tokens, as kudos sees them ---------------------------------------------------

TEST_F(ExportTest, Delegation_KudosActsForTheDelegatedPersonOnlyUnderADelegatedToken) {
  const absl::Time now = absl::Now();
  const std::string secret = common::auth::kDevServiceSecret;
  // Delegated tokens are signed with the delegation secret, never the service secret.
  const std::string delegation_secret = common::auth::kDevDelegationSecret;
  std::string as_alice = *common::auth::MintDelegatedToken("integrations", kOrg, "alice",
                                                           {"member"}, delegation_secret, now);
  kudos::v1::Kudos sent;
  grpc::Status status = SendAs(as_alice, "slack-1", {"bob"}, &sent);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(sent.giver_id(), "alice");
  // A delegated member is no admin.
  EXPECT_EQ(CreatePerson(as_alice, "mallory").error_code(), grpc::StatusCode::PERMISSION_DENIED);

  std::string plain_service = *common::auth::MintServiceToken("integrations", kOrg, secret, now);
  status = SendAs(plain_service, "slack-2", {"bob"});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_EQ(CreatePerson(plain_service, "mallory").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  std::string service_signed =
      *common::auth::MintDelegatedToken("integrations", kOrg, "alice", {"member"}, secret, now);
  status = SendAs(service_signed, "slack-4", {"bob"});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();

  std::string from_kudos = *common::auth::MintDelegatedToken("kudos", kOrg, "alice", {"member"},
                                                             delegation_secret, now);
  status = SendAs(from_kudos, "slack-3", {"bob"});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "may not act for people"))
      << status.error_message();

  std::string as_scim =
      *common::auth::MintDelegatedToken("integrations", kOrg, "scim", {"admin"}, delegation_secret,
                                        now);
  status = CreatePerson(as_scim, "erin");
  ASSERT_TRUE(status.ok()) << status.error_message();

  // The audit trail names the delegated subject.
  integrations::v1::ListAuditEntriesRequest request;
  request.set_action("create_person");
  request.set_actor("scim");
  integrations::v1::ListAuditEntriesResponse response;
  status = export_->ListAuditEntries(Context(admin_).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.entries_size(), 1);
  EXPECT_EQ(response.entries(0).target(), "erin");
}

// ---- export: kudos -------------------------------------------------------------------------

TEST_F(ExportTest, ExportKudos_LinesParseAndMatchGetKudos) {
  std::set<std::string> sent;
  sent.insert(Send("alice", "k1", {"bob"}));
  sent.insert(Send("bob", "k2", {"carol", "dave"}));
  sent.insert(Send("carol", "k3", {"alice", "bob", "dave"}));
  const absl::Time now = absl::Now();
  std::vector<std::string> lines =
      ExportAll(integrations::v1::EXPORT_KIND_KUDOS, now - absl::Hours(1), now + absl::Hours(1), 0);
  ASSERT_EQ(lines.size(), sent.size());
  std::set<std::string> exported;
  for (const std::string& line : lines) {
    kudos::v1::Kudos kudos;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &kudos).ok()) << line;
    EXPECT_TRUE(MessageDifferencer::Equals(kudos, Get(kudos.kudos_id())))
        << line << "\nvs GetKudos: " << Get(kudos.kudos_id()).DebugString();
    exported.insert(kudos.kudos_id());
  }
  EXPECT_EQ(exported, sent);
}

TEST_F(ExportTest, ExportKudos_PagingCoversEveryKudosOfThePeriodExactlyOnce) {
  std::set<std::string> sent;
  const std::vector<std::string> people = {"alice", "bob", "carol", "dave"};
  for (int i = 0; i < 11; ++i) {
    sent.insert(Send(people[i % 4], absl::StrCat("p", i), {people[(i + 1) % 4]}));
  }
  const absl::Time now = absl::Now();
  int pages = 0;
  std::vector<std::string> lines = ExportAll(integrations::v1::EXPORT_KIND_KUDOS,
                                             now - absl::Hours(1), now + absl::Hours(1), 3, &pages);
  std::multiset<std::string> ids;
  for (const std::string& line : lines) {
    kudos::v1::Kudos kudos;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &kudos).ok()) << line;
    ids.insert(kudos.kudos_id());
  }
  EXPECT_EQ(ids.size(), sent.size()) << "no kudos twice";
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), sent);
  EXPECT_GE(pages, 4);
  // A period that ended before them has none, and says it is done.
  EXPECT_TRUE(ExportAll(integrations::v1::EXPORT_KIND_KUDOS, now - absl::Hours(48),
                        now - absl::Hours(24), 3, &pages)
                  .empty());
  EXPECT_EQ(pages, 1);
}

// ---- export: transfers ---------------------------------------------------------------------

TEST_F(ExportTest, ExportTransfers_PagingCoversEveryTransferExactlyOnce) {
  Send("alice", "t1", {"bob", "carol"});
  Send("bob", "t2", {"alice"});
  Send("dave", "t3", {"alice", "bob", "carol"});
  Adjust("adj-1", "carol", 10);  // issuer -> carol's earned
  Adjust("adj-2", "carol", -3);  // carol's earned -> issuer
  std::set<std::string> expected;
  for (auto type : {ledger::v1::ACCOUNT_TYPE_ISSUER, ledger::v1::ACCOUNT_TYPE_REWARDS}) {
    ledger::v1::Account account;
    account.set_type(type);
    for (const std::string& id : LedgerTransferIds(account)) expected.insert(id);
  }
  for (const char* person : {"alice", "bob", "carol", "dave"}) {
    for (auto type : {ledger::v1::ACCOUNT_TYPE_ALLOWANCE, ledger::v1::ACCOUNT_TYPE_EARNED}) {
      ledger::v1::Account account;
      account.set_type(type);
      account.set_person_id(person);
      for (const std::string& id : LedgerTransferIds(account)) expected.insert(id);
    }
  }
  ASSERT_EQ(expected.size(), 8u);  // 2 + 1 + 3 kudos transfers, 2 adjustments
  const absl::Time now = absl::Now();
  std::multiset<std::string> exported;
  for (const std::string& line : ExportAll(integrations::v1::EXPORT_KIND_TRANSFERS,
                                           now - absl::Hours(1), now + absl::Hours(1), 2)) {
    ledger::v1::Transfer transfer;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &transfer).ok()) << line;
    EXPECT_GT(transfer.amount(), 0);
    EXPECT_GT(transfer.sequence(), 0);
    exported.insert(transfer.transfer_id());
  }
  EXPECT_EQ(exported.size(), expected.size()) << "no transfer twice";
  EXPECT_EQ(std::set<std::string>(exported.begin(), exported.end()), expected);
}

TEST_F(ExportTest, ExportTransfers_AScanStopsAtItsUpstreamCallBoundAndContinuesOnTheNextPage) {
  // 24 people: issuer, rewards and two accounts each take more calls than
  // one page may make (40); the only transfers sit in the last people's.
  for (int i = 0; i < 20; ++i) {
    grpc::Status status = CreatePerson(admin_, absl::StrCat("zz", 10 + i));
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  Send("zz28", "late", {"zz29"});
  const absl::Time now = absl::Now();
  integrations::v1::ExportRequest request;
  request.set_kind(integrations::v1::EXPORT_KIND_TRANSFERS);
  *request.mutable_from() = At(now - absl::Hours(1));
  *request.mutable_to() = At(now + absl::Hours(1));
  integrations::v1::ExportResponse first;
  grpc::Status status = ExportPage(admin_, request, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(first.count(), 0);
  ASSERT_FALSE(first.next_page_token().empty()) << "the bound ends the page, not the export";
  int pages = 0;
  std::vector<std::string> lines = ExportAll(integrations::v1::EXPORT_KIND_TRANSFERS,
                                             now - absl::Hours(1), now + absl::Hours(1), 0, &pages);
  EXPECT_EQ(lines.size(), 1u);
  EXPECT_GE(pages, 2);
}

// ---- who may export, and what is refused -----------------------------------------------------

TEST_F(ExportTest, Export_NonAdminIsPermissionDenied) {
  integrations::v1::ExportRequest request;
  request.set_kind(integrations::v1::EXPORT_KIND_KUDOS);
  *request.mutable_from() = At(absl::Now() - absl::Hours(1));
  *request.mutable_to() = At(absl::Now());
  integrations::v1::ExportResponse response;
  grpc::Status member = ExportPage(MintToken(kOrg, "alice"), request, &response);
  EXPECT_EQ(member.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(member.error_message(), "only admins export the org's data and read its audit trail");
  std::string service =
      *common::auth::MintServiceToken("kudos", kOrg, common::auth::kDevServiceSecret, absl::Now());
  EXPECT_EQ(ExportPage(service, request, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ExportPage("", request, &response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  integrations::v1::ListAuditEntriesResponse audit;
  EXPECT_EQ(export_
                ->ListAuditEntries(Context(MintToken(kOrg, "alice", {"member", "manager"})).get(),
                                   {}, &audit)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ExportTest, Export_BadPeriodPageSizeOrTokenIsInvalidArgument) {
  const absl::Time now = absl::Now();
  auto refused = [&](const std::function<void(integrations::v1::ExportRequest&)>& change,
                     const std::string& message) {
    integrations::v1::ExportRequest request;
    request.set_kind(integrations::v1::EXPORT_KIND_KUDOS);
    *request.mutable_from() = At(now - absl::Hours(1));
    *request.mutable_to() = At(now);
    change(request);
    integrations::v1::ExportResponse response;
    grpc::Status status = ExportPage(admin_, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << message;
    EXPECT_TRUE(absl::StrContains(status.error_message(), message)) << status.error_message();
  };
  refused([](auto& r) { r.clear_from(); }, "from: is required");
  refused([&](auto& r) { *r.mutable_to() = At(now - absl::Hours(2)); }, "to: must be after from");
  refused([&](auto& r) { *r.mutable_from() = At(now - absl::Hours(24 * 400)); }, "366 days");
  refused([](auto& r) { r.set_page_size(1001); }, "page_size: must be 1..1000");
  refused([](auto& r) { r.set_kind(integrations::v1::EXPORT_KIND_UNSPECIFIED); }, "kind:");
  refused([](auto& r) { r.set_page_token("forged"); }, "page_token:");
  // A token of one period does not continue another.
  for (int i = 0; i < 3; ++i) Send("alice", absl::StrCat("b", i), {"bob"});
  integrations::v1::ExportRequest first;
  first.set_kind(integrations::v1::EXPORT_KIND_KUDOS);
  *first.mutable_from() = At(now - absl::Hours(1));
  *first.mutable_to() = At(absl::Now() + absl::Hours(1));
  first.set_page_size(1);
  integrations::v1::ExportResponse page;
  ASSERT_TRUE(ExportPage(admin_, first, &page).ok());
  ASSERT_FALSE(page.next_page_token().empty());
  refused([&](auto& r) { r.set_page_token(page.next_page_token()); }, "another kind or period");
}

// ---- the audit read ------------------------------------------------------------------------

TEST_F(ExportTest, ListAuditEntries_ReadsDirectoryChangesWithFiltersAndPaging) {
  // SetUp: one team and four people by root; then one update.
  kudos::v1::UpdatePersonRequest update;
  update.mutable_person()->set_person_id("bob");
  update.mutable_person()->set_display_name("Robert");
  update.mutable_person()->set_team_id("eng");
  update.mutable_person()->set_active(true);
  kudos::v1::UpdatePersonResponse updated;
  grpc::Status status = directory_->UpdatePerson(Context(admin_).get(), update, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();

  auto read_all = [&](integrations::v1::ListAuditEntriesRequest request) {
    std::vector<integrations::v1::AuditEntry> entries;
    for (int page = 0; page < 100; ++page) {
      integrations::v1::ListAuditEntriesResponse response;
      grpc::Status s = export_->ListAuditEntries(Context(admin_).get(), request, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      EXPECT_LE(response.entries_size(), request.page_size() == 0 ? 100 : request.page_size());
      entries.insert(entries.end(), response.entries().begin(), response.entries().end());
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return entries;
  };
  integrations::v1::ListAuditEntriesRequest all;
  all.set_page_size(2);
  std::vector<integrations::v1::AuditEntry> entries = read_all(all);
  std::vector<std::string> actions;
  for (const auto& e : entries) {
    actions.push_back(absl::StrCat(e.action(), ":", e.target()));
    EXPECT_EQ(e.actor(), "root");
    EXPECT_GT(e.time().seconds(), 0);
  }
  EXPECT_EQ(actions, (std::vector<std::string>{"create_team:eng", "create_person:alice",
                                               "create_person:bob", "create_person:carol",
                                               "create_person:dave", "update_person:bob"}));
  integrations::v1::ListAuditEntriesRequest creates;
  creates.set_action("create_person");
  EXPECT_EQ(read_all(creates).size(), 4u);
  integrations::v1::ListAuditEntriesRequest nobody;
  nobody.set_actor("nobody");
  EXPECT_TRUE(read_all(nobody).empty());
  integrations::v1::ListAuditEntriesRequest past;
  *past.mutable_from() = At(absl::Now() - absl::Hours(48));
  *past.mutable_to() = At(absl::Now() - absl::Hours(24));
  EXPECT_TRUE(read_all(past).empty());
  integrations::v1::ListAuditEntriesRequest bad;
  bad.set_page_token("1-0 COUNT 5");
  integrations::v1::ListAuditEntriesResponse response;
  EXPECT_EQ(export_->ListAuditEntries(Context(admin_).get(), bad, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // The AUDIT export holds the same entries as NDJSON.
  const absl::Time now = absl::Now();
  std::vector<std::string> lines =
      ExportAll(integrations::v1::EXPORT_KIND_AUDIT, now - absl::Hours(1), now + absl::Hours(1), 4);
  ASSERT_EQ(lines.size(), entries.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    integrations::v1::AuditEntry entry;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[i], &entry).ok()) << lines[i];
    EXPECT_TRUE(MessageDifferencer::Equals(entry, entries[i])) << lines[i];
  }
}

TEST_F(ExportTest, ListAuditEntries_AFilteredReadStopsAtItsScanBoundAndContinues) {
  // More entries than one page may scan (10,000), none matching the filter
  // but the last.
  common::redis::PoolOptions options;
  options.endpoint.port = redis_->port();
  options.size = 1;
  common::redis::Pool pool(options);
  const int kEntries = 10100;
  for (int batch = 0; batch < kEntries / 100; ++batch) {
    std::vector<common::redis::Command> commands;
    for (int i = 0; i < 100; ++i) {
      bool last = batch * 100 + i == kEntries - 1;
      commands.push_back({"XADD", "audit:{acme}", "*", "actor", last ? "needle" : "hay", "action",
                          "update_settings", "target", kOrg, "reason", "", "time", "t"});
    }
    auto replies = pool.Pipeline(commands);
    ASSERT_TRUE(replies.ok()) << replies.status();
  }
  integrations::v1::ListAuditEntriesRequest request;
  request.set_actor("needle");
  integrations::v1::ListAuditEntriesResponse first;
  grpc::Status status = export_->ListAuditEntries(Context(admin_).get(), request, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(first.entries_size(), 0);
  ASSERT_FALSE(first.next_page_token().empty());
  request.set_page_token(first.next_page_token());
  integrations::v1::ListAuditEntriesResponse second;
  status = export_->ListAuditEntries(Context(admin_).get(), request, &second);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(second.entries_size(), 1);
  EXPECT_EQ(second.entries(0).actor(), "needle");
  EXPECT_TRUE(second.next_page_token().empty());
}

// ---- HTTP: GET /v1/export/{kind} through the ingress ---------------------------------------

TEST_F(ExportTest, HttpExport_AnswersNdjsonWithANextLinkUntilTheLastPage) {
  std::set<std::string> sent;
  for (int i = 0; i < 5; ++i) sent.insert(Send("alice", absl::StrCat("h", i), {"bob"}));
  const absl::Time now = absl::Now();
  std::string path = "/v1/export/kudos";
  std::string query = absl::StrCat(
      "from=", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", now - absl::Hours(1), absl::UTCTimeZone()),
      "&to=", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", now + absl::Hours(1), absl::UTCTimeZone()),
      "&page_size=2");
  std::set<std::string> exported;
  int pages = 0;
  for (; pages < 20; ++pages) {
    integrations::v1::HandleResponse response = Http("GET", path, query, admin_);
    ASSERT_EQ(response.status(), 200) << response.body();
    EXPECT_EQ(Header(response, "content-type"), "application/x-ndjson");
    for (const std::string& line : Lines(response.body())) {
      kudos::v1::Kudos kudos;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &kudos).ok()) << line;
      EXPECT_TRUE(exported.insert(kudos.kudos_id()).second) << "twice: " << kudos.kudos_id();
    }
    std::string link = Header(response, "link");
    if (link.empty()) break;
    // <path?query>; rel="next"
    ASSERT_TRUE(absl::StartsWith(link, "</v1/export/kudos?")) << link;
    ASSERT_TRUE(absl::EndsWith(link, ">; rel=\"next\"")) << link;
    std::string url = link.substr(1, link.find('>') - 1);
    path = url.substr(0, url.find('?'));
    query = url.substr(url.find('?') + 1);
  }
  EXPECT_EQ(exported, sent);
  EXPECT_GE(pages, 2);

  EXPECT_EQ(Http("GET", "/v1/export/kudos", query, MintToken(kOrg, "alice")).status(), 403);
  integrations::v1::HandleResponse anonymous = Http("GET", "/v1/export/kudos", query, "");
  EXPECT_EQ(anonymous.status(), 401);
  EXPECT_EQ(Header(anonymous, "www-authenticate"), "Bearer");
  integrations::v1::HandleResponse bad_period =
      Http("GET", "/v1/export/kudos", "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", admin_);
  EXPECT_EQ(bad_period.status(), 400);
  EXPECT_TRUE(absl::StrContains(bad_period.body(), "to: must be after from")) << bad_period.body();
  EXPECT_EQ(Http("GET", "/v1/export/people", query, admin_).status(), 404);
  EXPECT_EQ(Http("POST", "/v1/export/kudos", query, admin_).status(), 405);
  EXPECT_EQ(Http("GET", "/v1/export/kudos", "from=yesterday", admin_).status(), 400);
}

}  // namespace
