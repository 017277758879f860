// Area "export" (issue 17): GET /v1/export/{kind} through the real gateway's
// passthrough to the real integrations_server, kudos and ledger — what a BI
// tool does: follow `Link: <...>; rel="next"` until it is absent.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "integrations/v1/export.pb.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "tests/gateway/http_client.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using harness::Context;
using harness::MintToken;

constexpr char kOrg[] = "acme";

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

TEST(ExportGatewayTest, HttpExport_ThroughTheGateway_FollowsLinkHeadersToEveryKudosOnce) {
  harness::RedisServer redis;
  harness::Service ledger(LEDGER_BINARY, redis.address());
  harness::Service kudos(KUDOS_BINARY, redis.address(),
                         {"--ledger=" + ledger.address(), "--archive_interval_s=0"});
  harness::Service integrations(INTEGRATIONS_BINARY, redis.address(),
                                {"--kudos=" + kudos.address(), "--ledger=" + ledger.address()});
  const std::string unused = "127.0.0.1:" + std::to_string(harness::FreePort());
  harness::Service gateway(
      GATEWAY_BINARY, unused,
      {"--integrations=" + integrations.address(), "--kudos=" + kudos.address(),
       "--ledger=" + ledger.address(), "--leaderboard=" + unused});
  auto channel = grpc::CreateChannel(kudos.address(), grpc::InsecureChannelCredentials());
  auto kudos_stub = kudos::v1::KudosService::NewStub(channel);
  auto directory = kudos::v1::DirectoryService::NewStub(channel);
  const std::string admin = MintToken(kOrg, "root", {"admin"});
  for (const char* id : {"alice", "bob"}) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name(id);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory->CreatePerson(Context(admin).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  std::set<std::string> sent;
  for (int i = 0; i < 5; ++i) {
    kudos::v1::SendKudosRequest request;
    request.set_request_id(absl::StrCat("g", i));
    request.add_recipient_ids("bob");
    request.set_message("Thanks for the clear follow-up");
    request.add_values("teamwork");
    request.set_points_per_recipient(1);
    kudos::v1::SendKudosResponse response;
    grpc::Status status =
        kudos_stub->SendKudos(Context(MintToken(kOrg, "alice")).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    sent.insert(response.kudos().kudos_id());
  }
  const absl::Time now = absl::Now();
  std::string target = absl::StrCat("/v1/export/kudos?from=", Rfc3339(now - absl::Hours(1)),
                                    "&to=", Rfc3339(now + absl::Hours(1)), "&page_size=2");
  const std::map<std::string, std::string> as_admin = {{"Authorization", "Bearer " + admin}};
  std::set<std::string> exported;
  int pages = 0;
  for (; pages < 20 && !target.empty(); ++pages) {
    gwtest::HttpResponse response = gwtest::Http(gateway.port(), "GET", target, "", as_admin);
    ASSERT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(response.headers["content-type"], "application/x-ndjson");
    std::vector<std::string> lines = absl::StrSplit(response.body, '\n', absl::SkipEmpty());
    for (const std::string& line : lines) {
      kudos::v1::Kudos kudos;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &kudos).ok()) << line;
      EXPECT_TRUE(exported.insert(kudos.kudos_id()).second) << "twice: " << kudos.kudos_id();
    }
    target.clear();
    if (auto link = response.headers.find("link"); link != response.headers.end()) {
      ASSERT_TRUE(absl::EndsWith(link->second, ">; rel=\"next\"")) << link->second;
      target = link->second.substr(1, link->second.find('>') - 1);
    }
  }
  EXPECT_EQ(exported, sent);
  EXPECT_GE(pages, 3);

  const std::string first_page =
      absl::StrCat("/v1/export/audit?from=", Rfc3339(now - absl::Hours(1)),
                   "&to=", Rfc3339(now + absl::Hours(1)));
  gwtest::HttpResponse audit = gwtest::Http(gateway.port(), "GET", first_page, "", as_admin);
  ASSERT_EQ(audit.status, 200) << audit.body;
  std::vector<std::string> lines = absl::StrSplit(audit.body, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);  // the two people created
  integrations::v1::AuditEntry entry;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[0], &entry).ok()) << lines[0];
  EXPECT_EQ(entry.action(), "create_person");
  EXPECT_EQ(entry.target(), "alice");

  gwtest::HttpResponse member =
      gwtest::Http(gateway.port(), "GET", first_page, "",
                   {{"Authorization", "Bearer " + MintToken(kOrg, "alice")}});
  EXPECT_EQ(member.status, 403) << member.body;
  EXPECT_TRUE(absl::StrContains(member.body, "only admins")) << member.body;
  EXPECT_EQ(gwtest::Http(gateway.port(), "GET", first_page).status, 401);
}

}  // namespace
