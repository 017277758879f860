// The gateway's raw routes (issue 17): every request under /slack/, /scim/
// and /v1/export/ goes unchanged to integrations.v1.HttpIngressService/Handle
// and its answer comes back as is. The exact forwarding is checked against a
// recording fake of that service (an in-process gRPC server); the path to the
// real integrations_server is checked beside it.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "integrations/v1/http_ingress.grpc.pb.h"
#include "tests/gateway/http_client.h"
#include "tests/harness/loopback.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using gwtest::HttpResponse;
using integrations::v1::HandleRequest;
using integrations::v1::HandleResponse;
using namespace std::chrono_literals;

// Records every request and answers with the response the test set.
class RecordingIngress final : public integrations::v1::HttpIngressService::Service {
 public:
  grpc::Status Handle(grpc::ServerContext*, const HandleRequest* request,
                      HandleResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back(*request);
    *response = answer_;
    return grpc::Status::OK;
  }
  void Answer(HandleResponse answer) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(answer);
  }
  std::vector<HandleRequest> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::vector<HandleRequest> seen_;
  HandleResponse answer_;
};

HandleResponse Answer(int status, std::vector<std::pair<std::string, std::string>> headers,
                      std::string body) {
  HandleResponse response;
  response.set_status(status);
  for (auto& [name, value] : headers) {
    integrations::v1::HttpHeader* header = response.add_headers();
    header->set_name(name);
    header->set_value(value);
  }
  response.set_body(std::move(body));
  return response;
}

std::string HeaderOf(const HandleRequest& request, const std::string& name) {
  for (const auto& header : request.headers()) {
    if (header.name() == name) return header.value();
  }
  return "<absent>";
}

// A gateway whose integrations upstream is the recording fake; the other
// upstreams point at a port nobody listens on.
class GatewayIngressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int ingress_port = harness::FreePort();
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", ingress_port),
                             grpc::InsecureServerCredentials());
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    const std::string unused = "127.0.0.1:" + std::to_string(harness::FreePort());
    gateway_ = std::make_unique<harness::Service>(
        GATEWAY_BINARY, unused,
        std::vector<std::string>{absl::StrCat("--integrations=127.0.0.1:", ingress_port),
                                 "--kudos=" + unused, "--ledger=" + unused,
                                 "--leaderboard=" + unused});
  }
  void TearDown() override {
    gateway_.reset();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + 2s);
  }
  int port() const { return gateway_->port(); }

  RecordingIngress fake_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<harness::Service> gateway_;
};

TEST_F(GatewayIngressTest, SlackRequest_ForwardedWithExactBytesWithoutAToken) {
  fake_.Answer(Answer(201,
                      {{"Content-Type", "application/json"},
                       {"X-Answer", "yes"},
                       {"Content-Length", "999"}},
                      "{\"response_type\":\"in_channel\"}"));
  // Slack's body is form-encoded; its signature covers these exact bytes.
  const std::string body("token=t&team_id=T1&text=%3C%40U1%7Cbob%3E+5+%23teamwork+thanks\0\xff",
                         64);
  HttpResponse response =
      gwtest::Http(port(), "POST", "/slack/acme/commands?debug=1%202", body,
                   {{"Content-Type", "application/x-www-form-urlencoded"},
                    {"X-Slack-Signature", "v0=abc"},
                    {"X-Slack-Request-Timestamp", "1700000000"}});
  EXPECT_EQ(response.status, 201) << response.body;
  EXPECT_EQ(response.headers["x-answer"], "yes");
  EXPECT_EQ(response.headers["content-type"], "application/json");
  EXPECT_EQ(response.body, "{\"response_type\":\"in_channel\"}");

  std::vector<HandleRequest> seen = fake_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method(), "POST");
  EXPECT_EQ(seen[0].path(), "/slack/acme/commands");
  EXPECT_EQ(seen[0].query(), "debug=1%202");
  EXPECT_EQ(seen[0].body(), body);
  EXPECT_EQ(HeaderOf(seen[0], "x-slack-signature"), "v0=abc");
  EXPECT_EQ(HeaderOf(seen[0], "x-slack-request-timestamp"), "1700000000");
  EXPECT_EQ(HeaderOf(seen[0], "content-type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(HeaderOf(seen[0], "content-length"), "64");
  for (const auto& header : seen[0].headers()) {
    EXPECT_EQ(header.name(), absl::AsciiStrToLower(header.name()));
  }
}

TEST_F(GatewayIngressTest, ScimAndExport_ForwardEveryMethodWithTheirOwnBearer) {
  fake_.Answer(Answer(200, {{"Content-Type", "application/scim+json"}, {"ETag", "W/\"1\""}},
                      "{\"schemas\":[]}"));
  const std::map<std::string, std::string> scim_token = {
      {"Authorization", "Bearer not-a-jwt-scim-token"},
      {"Content-Type", "application/scim+json"}};
  HttpResponse listed =
      gwtest::Http(port(), "GET", "/scim/acme/v2/Users?filter=userName%20eq%20%22bob%22&count=2",
                   "", scim_token);
  EXPECT_EQ(listed.status, 200) << listed.body;
  EXPECT_EQ(listed.headers["etag"], "W/\"1\"");
  HttpResponse patched = gwtest::Http(port(), "PATCH", "/scim/acme/v2/Users/u%201",
                                      "{\"Operations\":[]}", scim_token);
  EXPECT_EQ(patched.status, 200) << patched.body;
  HttpResponse put = gwtest::Http(port(), "PUT", "/scim/acme/v2/Groups/g1", "{}", scim_token);
  EXPECT_EQ(put.status, 200) << put.body;
  HttpResponse deleted = gwtest::Http(port(), "DELETE", "/scim/acme/v2/Users/u1", "", scim_token);
  EXPECT_EQ(deleted.status, 200) << deleted.body;
  HttpResponse exported = gwtest::Http(port(), "GET", "/v1/export/kudos?period=2026-11", "",
                                       {{"Authorization", "Bearer admin-jwt"}});
  EXPECT_EQ(exported.status, 200) << exported.body;

  std::vector<HandleRequest> seen = fake_.seen();
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0].method(), "GET");
  EXPECT_EQ(seen[0].path(), "/scim/acme/v2/Users");
  EXPECT_EQ(seen[0].query(), "filter=userName%20eq%20%22bob%22&count=2");
  EXPECT_EQ(HeaderOf(seen[0], "authorization"), "Bearer not-a-jwt-scim-token");
  EXPECT_EQ(seen[1].method(), "PATCH");
  EXPECT_EQ(seen[1].path(), "/scim/acme/v2/Users/u 1");  // decoded
  EXPECT_EQ(seen[1].body(), "{\"Operations\":[]}");
  EXPECT_EQ(seen[2].method(), "PUT");
  EXPECT_EQ(seen[3].method(), "DELETE");
  EXPECT_EQ(seen[4].path(), "/v1/export/kudos");
  EXPECT_EQ(seen[4].query(), "period=2026-11");
  EXPECT_EQ(HeaderOf(seen[4], "authorization"), "Bearer admin-jwt");
}

TEST_F(GatewayIngressTest, OtherRoutes_StillRefuseABodyWithoutAToken) {
  HttpResponse refused = gwtest::Http(port(), "POST", "/v1/kudos", "{\"message\":\"x\"}");
  EXPECT_EQ(refused.status, 401) << refused.body;
  HttpResponse near = gwtest::Http(port(), "POST", "/slackers/acme", "x=1");
  EXPECT_EQ(near.status, 401) << near.body;
  HttpResponse encoded = gwtest::Http(port(), "POST", "/%73lack/acme/commands", "x=1");
  EXPECT_EQ(encoded.status, 401) << encoded.body;
  EXPECT_TRUE(fake_.seen().empty());
}

TEST_F(GatewayIngressTest, BodyOverTheBound_Is413AndNotForwarded) {
  HttpResponse response = gwtest::Http(port(), "POST", "/slack/acme/commands",
                                       std::string(300 * 1024, 'a'),
                                       {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(response.status, 413) << response.body;
  EXPECT_TRUE(fake_.seen().empty());
}

// The CSV directory import (a 1 MiB CSV, JSON-escaped) may send up to 2 MiB;
// every other path stays at 256 KiB.
TEST_F(GatewayIngressTest, CsvImportPath_AdmitsUpTo2MiBOthersStayAt256KiB) {
  const std::map<std::string, std::string> admin = {
      {"Authorization", "Bearer " + harness::MintToken("acme", "root", {"admin"})}};
  const std::string csv_json = "{\"csv\":\"" + std::string(1536 * 1024, 'a') + "\"}";
  HttpResponse admitted =
      gwtest::Http(port(), "POST", "/v1/integrations/directory/import", csv_json, admin);
  // Read and routed: no such route yet (404), or the upstream (this fake) lacks the service (501).
  EXPECT_TRUE(admitted.status == 404 || admitted.status == 501) << admitted.status << admitted.body;
  HttpResponse too_large = gwtest::Http(port(), "POST", "/v1/integrations/directory/import",
                                        std::string(2 * 1024 * 1024 + 1, 'a'), admin);
  EXPECT_EQ(too_large.status, 413) << too_large.body;
  EXPECT_NE(too_large.body.find("2048 KiB"), std::string::npos) << too_large.body;
  HttpResponse elsewhere = gwtest::Http(port(), "POST", "/v1/kudos", csv_json, admin);
  EXPECT_EQ(elsewhere.status, 413) << elsewhere.body;
  EXPECT_NE(elsewhere.body.find("256 KiB"), std::string::npos) << elsewhere.body;
}

TEST_F(GatewayIngressTest, MalformedUpstreamAnswer_Is502WithoutItsHeaders) {
  fake_.Answer(Answer(200, {{"Content-Type", "text/plain\r\nSet-Cookie: session=stolen"}}, "x"));
  HttpResponse split = gwtest::Http(port(), "GET", "/scim/acme/v2/Users");
  EXPECT_EQ(split.status, 502) << split.body;
  EXPECT_EQ(split.headers.count("set-cookie"), 0u);
  fake_.Answer(Answer(42, {}, "x"));
  HttpResponse odd = gwtest::Http(port(), "GET", "/scim/acme/v2/Users");
  EXPECT_EQ(odd.status, 502) << odd.body;
}

TEST(GatewayIngressUpstreamTest, IntegrationsDown_Is503) {
  const std::string unused = "127.0.0.1:" + std::to_string(harness::FreePort());
  harness::Service gateway(GATEWAY_BINARY, unused,
                           {"--integrations=" + unused, "--kudos=" + unused,
                            "--ledger=" + unused, "--leaderboard=" + unused,
                            "--call_timeout_ms=2000"});
  HttpResponse response = gwtest::Http(gateway.port(), "POST", "/slack/acme/commands", "x=1",
                                       {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(response.status, 503) << response.body;
  EXPECT_NE(response.body.find("UNAVAILABLE"), std::string::npos) << response.body;
}

// The real integrations_server behind the real gateway: a path no area
// serves comes back as the service's own 404, naming the path.
TEST(GatewayIngressUpstreamTest, RealIntegrationsService_AnswersThroughTheGateway) {
  harness::RedisServer redis;
  const std::string unused = "127.0.0.1:" + std::to_string(harness::FreePort());
  harness::Service integrations(INTEGRATIONS_BINARY, redis.address(),
                                {"--kudos=" + unused, "--ledger=" + unused,
                                 "--leaderboard=" + unused});
  harness::Service gateway(GATEWAY_BINARY, unused,
                           {"--integrations=" + integrations.address(), "--kudos=" + unused,
                            "--ledger=" + unused, "--leaderboard=" + unused});
  HttpResponse response;
  // The channel connects on first use; the service is already listening.
  for (int i = 0; i < 50; ++i) {
    response = gwtest::Http(gateway.port(), "POST", "/slack/acme/no-such-endpoint", "a=1",
                            {{"Content-Type", "application/x-www-form-urlencoded"}});
    if (response.status != 503) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(response.status, 404) << response.body;
  EXPECT_NE(response.body.find("/slack/acme/no-such-endpoint"), std::string::npos)
      << response.body;
}

}  // namespace
