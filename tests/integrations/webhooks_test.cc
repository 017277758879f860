// Outbound webhooks end to end: a real redis-server, the real ledger, kudos
// and integrations binaries over real gRPC, and receivers that are real HTTP
// servers on 127.0.0.1 in this process (webhooks_receiver.h). Short flags
// stand in for the production windows (24 h of retries, 10 s timeouts).
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/redis/redis_client.h"
#include "integrations/v1/webhooks.grpc.pb.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/gateway/http_client.h"
#include "tests/integrations/webhooks_receiver.h"

namespace {

using harness::Context;
using harness::Eventually;
using harness::MintToken;
using integrations::v1::Delivery;
using integrations::v1::WebhookService;
using integrations::v1::WebhookSubscription;
using webhooks_test::Answer;
using webhooks_test::ExpectedSignature;
using webhooks_test::ReceivedRequest;
using webhooks_test::Receiver;

constexpr char kOrg[] = "acme";
const std::vector<std::string> kKudosSent = {"kudos.sent"};

std::string Header(const ReceivedRequest& request, const std::string& name) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? "" : it->second;
}

google::protobuf::Struct Json(const std::string& body) {
  google::protobuf::Struct parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(body, &parsed).ok()) << body;
  return parsed;
}

std::string StringAt(const google::protobuf::Struct& json, const std::vector<std::string>& path) {
  const google::protobuf::Struct* at = &json;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    auto it = at->fields().find(path[i]);
    if (it == at->fields().end()) return "";
    at = &it->second.struct_value();
  }
  auto it = at->fields().find(path.back());
  if (it == at->fields().end()) return "";
  return it->second.has_string_value() ? it->second.string_value()
                                       : std::to_string(static_cast<int64_t>(it->second.number_value()));
}

// The kudos id a kudos.sent body carries.
std::string KudosIdOf(const ReceivedRequest& request) {
  return StringAt(Json(request.body), {"data", "kudos", "kudos_id"});
}

// The distinct kudos ids in the order they first arrived.
std::vector<std::string> FirstArrivals(const std::vector<ReceivedRequest>& requests) {
  std::vector<std::string> order;
  for (const ReceivedRequest& request : requests) {
    std::string id = KudosIdOf(request);
    if (std::find(order.begin(), order.end(), id) == order.end()) order.push_back(id);
  }
  return order;
}

Answer Hold() { return Answer{true, 0}; }

class WebhooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(), std::vector<std::string>{"--ledger=" + ledger_->address()});
    auto channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    directory_ = kudos::v1::DirectoryService::NewStub(channel);
    kudos_stub_ = kudos::v1::KudosService::NewStub(channel);
    ledger_stub_ = ledger::v1::LedgerService::NewStub(
        grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
    admin_ = MintToken(kOrg, "root", {"admin"});
    for (const char* person : {"alice", "bob", "carol"}) CreatePerson(person);
  }

  // Flags on top of fast test defaults (poll 20 ms, backoff 50..200 ms).
  void StartIntegrations(std::vector<std::string> flags = {},
                         const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> args = {"--kudos=" + kudos_->address(),
                                     "--ledger=" + ledger_->address(), "--webhook_poll_ms=20",
                                     "--webhook_backoff_base_ms=50", "--webhook_backoff_max_ms=200"};
    args.insert(args.end(), flags.begin(), flags.end());
    integrations_ = std::make_unique<harness::Service>(INTEGRATIONS_BINARY, redis_->address(),
                                                       args, env);
    webhooks_ = WebhookService::NewStub(
        grpc::CreateChannel(integrations_->address(), grpc::InsecureChannelCredentials()));
  }

  void CreatePerson(const std::string& id) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory_->CreatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  grpc::Status TryCreate(const std::string& token, const std::string& url,
                         const std::vector<std::string>& types,
                         integrations::v1::CreateSubscriptionResponse* response,
                         integrations::v1::WebhookFormat format = integrations::v1::WEBHOOK_FORMAT_JSON) {
    integrations::v1::CreateSubscriptionRequest request;
    request.set_url(url);
    for (const std::string& type : types) request.add_event_types(type);
    request.set_format(format);
    return webhooks_->CreateSubscription(Context(token).get(), request, response);
  }

  integrations::v1::CreateSubscriptionResponse Subscribe(
      const std::string& url, const std::vector<std::string>& types = kKudosSent,
      integrations::v1::WebhookFormat format = integrations::v1::WEBHOOK_FORMAT_JSON) {
    integrations::v1::CreateSubscriptionResponse response;
    grpc::Status status = TryCreate(admin_, url, types, &response, format);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::string SendKudos(const std::string& giver, const std::string& recipient,
                        const std::string& message, int64_t points = 1) {
    kudos::v1::SendKudosRequest request;
    request.set_request_id("r-" + std::to_string(++sent_));
    request.add_recipient_ids(recipient);
    request.set_message(message);
    request.add_values("teamwork");
    request.set_points_per_recipient(points);
    kudos::v1::SendKudosResponse response;
    grpc::Status status =
        kudos_stub_->SendKudos(Context(MintToken(kOrg, giver)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.kudos().kudos_id();
  }

  std::vector<Delivery> Deliveries(const std::string& subscription, int page_size = 200) {
    integrations::v1::ListDeliveriesRequest request;
    request.set_subscription_id(subscription);
    request.set_page_size(page_size);
    integrations::v1::ListDeliveriesResponse response;
    grpc::Status status = webhooks_->ListDeliveries(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.deliveries().begin(), response.deliveries().end()};
  }

  int CountIn(const std::string& subscription, integrations::v1::DeliveryState state) {
    int n = 0;
    for (const Delivery& d : Deliveries(subscription)) n += d.state() == state ? 1 : 0;
    return n;
  }

  WebhookSubscription Get(const std::string& subscription) {
    integrations::v1::GetSubscriptionRequest request;
    request.set_subscription_id(subscription);
    integrations::v1::GetSubscriptionResponse response;
    grpc::Status status = webhooks_->GetSubscription(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.subscription();
  }

  grpc::Status SetPaused(const std::string& subscription, bool paused) {
    integrations::v1::UpdateSubscriptionRequest request;
    request.set_subscription_id(subscription);
    request.add_update_mask("paused");
    request.set_paused(paused);
    integrations::v1::UpdateSubscriptionResponse response;
    return webhooks_->UpdateSubscription(Context(admin_).get(), request, &response);
  }

  grpc::Status Redeliver(const std::string& subscription, const std::string& delivery) {
    integrations::v1::RedeliverRequest request;
    request.set_subscription_id(subscription);
    request.set_delivery_id(delivery);
    integrations::v1::RedeliverResponse response;
    return webhooks_->Redeliver(Context(admin_).get(), request, &response);
  }

  bool AllDelivered(const std::string& subscription, size_t count) {
    std::vector<Delivery> deliveries = Deliveries(subscription);
    if (deliveries.size() != count) return false;
    for (const Delivery& d : deliveries) {
      if (d.state() != integrations::v1::DELIVERY_STATE_DELIVERED) return false;
    }
    return true;
  }

  std::unique_ptr<common::redis::Pool> Pool() {
    common::redis::PoolOptions options;
    options.endpoint.port = redis_->port();
    options.size = 1;
    return std::make_unique<common::redis::Pool>(options);
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<harness::Service> integrations_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_stub_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_stub_;
  std::unique_ptr<WebhookService::Stub> webhooks_;
  std::string admin_;
  int sent_ = 0;
};

TEST_F(WebhooksTest, Delivery_IsSignedWithTheSubscriptionSecretAndCarriesTheEvent) {
  StartIntegrations();
  Receiver receiver;
  auto created = Subscribe(receiver.Url());
  ASSERT_TRUE(absl::StartsWith(created.signing_secret(), "whsec_"));
  std::string kudos_id = SendKudos("alice", "bob", "thanks for the fix");
  ASSERT_TRUE(Eventually([&] { return receiver.Count() >= 1; }));

  ReceivedRequest request = receiver.Requests()[0];
  std::string id = Header(request, "webhook-id");
  std::string timestamp = Header(request, "webhook-timestamp");
  EXPECT_TRUE(absl::StartsWith(id, "evt_kudos_")) << id;
  EXPECT_EQ(Header(request, "content-type"), "application/json");
  int64_t sent_at = 0;
  ASSERT_TRUE(absl::SimpleAtoi(timestamp, &sent_at));
  EXPECT_LE(std::abs(sent_at - absl::ToUnixSeconds(absl::Now())), 300);
  EXPECT_EQ(Header(request, "webhook-signature"),
            ExpectedSignature(created.signing_secret(), id, timestamp, request.body));
  google::protobuf::Struct body = Json(request.body);
  EXPECT_EQ(StringAt(body, {"id"}), id);
  EXPECT_EQ(StringAt(body, {"type"}), "kudos.sent");
  EXPECT_EQ(StringAt(body, {"org"}), kOrg);
  EXPECT_FALSE(StringAt(body, {"created_at"}).empty());
  EXPECT_EQ(StringAt(body, {"data", "kudos", "kudos_id"}), kudos_id);
  EXPECT_EQ(StringAt(body, {"data", "kudos", "message"}), "thanks for the fix");

  const std::string sub = created.subscription().subscription_id();
  ASSERT_TRUE(Eventually([&] { return AllDelivered(sub, 1); }));
  Delivery delivery = Deliveries(sub)[0];
  EXPECT_EQ(delivery.event_id(), id);
  EXPECT_EQ(delivery.event_type(), "kudos.sent");
  EXPECT_EQ(delivery.attempts(), 1);
  EXPECT_EQ(delivery.last_http_status(), 200);

  // The secret is never read back; a rotated one signs what follows.
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(Get(sub), &json).ok());
  EXPECT_FALSE(absl::StrContains(json, created.signing_secret().substr(6, 20)));
  integrations::v1::RotateSecretRequest rotate;
  rotate.set_subscription_id(sub);
  integrations::v1::RotateSecretResponse rotated;
  ASSERT_TRUE(webhooks_->RotateSecret(Context(admin_).get(), rotate, &rotated).ok());
  ASSERT_NE(rotated.signing_secret(), created.signing_secret());
  SendKudos("bob", "carol", "second");
  ASSERT_TRUE(Eventually([&] { return receiver.Count() >= 2; }));
  ReceivedRequest second = receiver.Requests()[1];
  std::string second_id = Header(second, "webhook-id");
  std::string second_ts = Header(second, "webhook-timestamp");
  EXPECT_EQ(Header(second, "webhook-signature"),
            ExpectedSignature(rotated.signing_secret(), second_id, second_ts, second.body));
  EXPECT_NE(Header(second, "webhook-signature"),
            ExpectedSignature(created.signing_secret(), second_id, second_ts, second.body));
}

TEST_F(WebhooksTest, SlackFormat_PostsTheCommittedKudosAsText) {
  StartIntegrations();
  Receiver slack;
  Subscribe(slack.Url("/services/T0/B0/x"), kKudosSent, integrations::v1::WEBHOOK_FORMAT_SLACK);
  SendKudos("alice", "bob", "shipped <on time> & tested", 3);
  ASSERT_TRUE(Eventually([&] { return slack.Count() >= 1; }));
  ReceivedRequest request = slack.Requests()[0];
  EXPECT_EQ(request.path, "/services/T0/B0/x");
  google::protobuf::Struct body = Json(request.body);
  ASSERT_EQ(body.fields_size(), 1) << request.body;
  std::string text = StringAt(body, {"text"});
  EXPECT_TRUE(absl::StrContains(text, "alice gave 3 points to bob")) << text;
  // Slack's mrkdwn control characters are escaped.
  EXPECT_TRUE(absl::StrContains(text, "shipped &lt;on time&gt; &amp; tested")) << text;
  EXPECT_TRUE(absl::StrContains(text, "#teamwork")) << text;
}

TEST_F(WebhooksTest, Retries_OnA500AndOnATimeout_ThenDeliveredWithTheSameEventId) {
  StartIntegrations({"--webhook_request_timeout_ms=400"});
  Receiver receiver;
  receiver.SetResponder([](const ReceivedRequest&, int index) {
    if (index == 0) return Answer{false, 500};
    if (index == 1) return Hold();  // past the 400 ms timeout
    return Answer{false, 200};
  });
  const std::string sub = Subscribe(receiver.Url()).subscription().subscription_id();
  SendKudos("alice", "bob", "retry me");
  ASSERT_TRUE(Eventually([&] { return AllDelivered(sub, 1); }));
  std::vector<ReceivedRequest> requests = receiver.Requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const ReceivedRequest& r : requests) {
    EXPECT_EQ(Header(r, "webhook-id"), Header(requests[0], "webhook-id"));
    EXPECT_EQ(r.body, requests[0].body);
  }
  Delivery delivery = Deliveries(sub)[0];
  EXPECT_EQ(delivery.attempts(), 3);
  EXPECT_EQ(delivery.last_http_status(), 200);
  EXPECT_EQ(Get(sub).consecutive_failures(), 0);
}

TEST_F(WebhooksTest, DeadLetter_AfterTheRetryWindow_ThenRedeliverSendsTheSameEvent) {
  StartIntegrations({"--webhook_retry_window_ms=1000", "--webhook_pause_after_failures=1000"});
  Receiver receiver;
  receiver.AnswerAll(500);
  const std::string sub = Subscribe(receiver.Url()).subscription().subscription_id();
  SendKudos("alice", "bob", "nobody home");
  ASSERT_TRUE(Eventually([&] { return CountIn(sub, integrations::v1::DELIVERY_STATE_DEAD) == 1; }));
  Delivery dead = Deliveries(sub)[0];
  EXPECT_GE(dead.attempts(), 2);
  EXPECT_EQ(dead.last_http_status(), 500);
  EXPECT_EQ(dead.last_error(), "HTTP 500");
  size_t attempts_seen = receiver.Count();
  EXPECT_EQ(static_cast<int64_t>(attempts_seen), dead.attempts());

  receiver.AnswerAll(200);
  ASSERT_TRUE(Redeliver(sub, dead.delivery_id()).ok());
  ASSERT_TRUE(Eventually([&] { return AllDelivered(sub, 1); }));
  std::vector<ReceivedRequest> requests = receiver.Requests();
  ASSERT_EQ(requests.size(), attempts_seen + 1);
  EXPECT_EQ(Header(requests.back(), "webhook-id"), dead.event_id());
  // A delivered one can be sent again on request too; a pending one cannot.
  ASSERT_TRUE(Redeliver(sub, dead.delivery_id()).ok());
  ASSERT_TRUE(Eventually([&] { return receiver.Count() == attempts_seen + 2; }));
}

TEST_F(WebhooksTest, KilledMidDelivery_NothingIsLostAndOrderIsKept) {
  const std::vector<std::string> flags = {"--webhook_request_timeout_ms=3000",
                                          "--webhook_lease_margin_ms=300",
                                          "--webhook_claim_idle_ms=600"};
  StartIntegrations(flags);
  Receiver receiver;
  receiver.SetResponder([](const ReceivedRequest&, int) { return Hold(); });
  const std::string sub = Subscribe(receiver.Url()).subscription().subscription_id();
  std::vector<std::string> sent;
  for (int i = 0; i < 3; ++i) sent.push_back(SendKudos("alice", "bob", "before " + std::to_string(i)));
  ASSERT_TRUE(Eventually([&] { return receiver.held() == 1; }));

  integrations_->Kill();  // kill -9 with a request in flight
  for (int i = 0; i < 2; ++i) sent.push_back(SendKudos("bob", "carol", "while down " + std::to_string(i)));
  receiver.AnswerAll(200);
  receiver.ReleaseHeld(200);  // to a peer that is gone
  integrations_->Start();

  ASSERT_TRUE(Eventually([&] { return AllDelivered(sub, sent.size()); }, std::chrono::seconds(60)));
  EXPECT_EQ(FirstArrivals(receiver.Requests()), sent);
  // The killed process's consumer, with nothing pending, leaves the group.
  auto pool = Pool();
  EXPECT_TRUE(Eventually([&] {
    absl::StatusOr<common::redis::Reply> consumers =
        pool->Run({"XINFO", "CONSUMERS", "kudos:{acme}:events", "webhooks"});
    return consumers.ok() && consumers->elements.size() == 1;
  }));
}

TEST_F(WebhooksTest, SlowReceiver_DoesNotDelayAnotherSubscription) {
  StartIntegrations({"--webhook_request_timeout_ms=120000"});
  Receiver slow, fast;
  slow.SetResponder([](const ReceivedRequest&, int) { return Hold(); });
  const std::string slow_sub = Subscribe(slow.Url()).subscription().subscription_id();
  const std::string fast_sub = Subscribe(fast.Url()).subscription().subscription_id();
  std::vector<std::string> sent;
  for (int i = 0; i < 3; ++i) sent.push_back(SendKudos("alice", "carol", "k" + std::to_string(i)));

  ASSERT_TRUE(Eventually([&] { return AllDelivered(fast_sub, 3); }));
  EXPECT_EQ(FirstArrivals(fast.Requests()), sent);
  // The slow one has its first delivery in flight and the rest behind it, in order.
  EXPECT_EQ(slow.Count(), 1u);
  EXPECT_EQ(CountIn(slow_sub, integrations::v1::DELIVERY_STATE_PENDING), 3);

  slow.AnswerAll(200);
  slow.ReleaseHeld(200);
  ASSERT_TRUE(Eventually([&] { return AllDelivered(slow_sub, 3); }));
  EXPECT_EQ(FirstArrivals(slow.Requests()), sent);
}

TEST_F(WebhooksTest, AutoPause_AfterConsecutiveFailures_UntilAnAdminResumes) {
  StartIntegrations({"--webhook_pause_after_failures=3"});
  Receiver receiver;
  receiver.AnswerAll(500);
  const std::string sub = Subscribe(receiver.Url()).subscription().subscription_id();
  SendKudos("alice", "bob", "will pause");
  ASSERT_TRUE(Eventually([&] { return Get(sub).paused(); }));
  WebhookSubscription paused = Get(sub);
  EXPECT_EQ(paused.consecutive_failures(), 3);
  EXPECT_TRUE(absl::StrContains(paused.paused_reason(), "3 consecutive failed attempts"))
      << paused.paused_reason();
  EXPECT_EQ(receiver.Count(), 3u);
  // Paused means no attempt: rounds go by (20 ms each) and nothing is sent.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(receiver.Count(), 3u);
  EXPECT_EQ(CountIn(sub, integrations::v1::DELIVERY_STATE_FAILED), 1);

  receiver.AnswerAll(200);
  ASSERT_TRUE(SetPaused(sub, false).ok());
  ASSERT_TRUE(Eventually([&] { return AllDelivered(sub, 1); }));
  EXPECT_FALSE(Get(sub).paused());
  EXPECT_EQ(Get(sub).consecutive_failures(), 0);
}

TEST_F(WebhooksTest, BadInput_GetsTheRightStatusAndChangesNothing) {
  StartIntegrations();
  integrations::v1::CreateSubscriptionResponse response;
  const std::string url = "https://hooks.example/kudos";
  auto code = [](const grpc::Status& s) { return s.error_code(); };
  grpc::Status unknown = TryCreate(admin_, url, {"kudos.exploded"}, &response);
  EXPECT_EQ(code(unknown), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(unknown.error_message(), "unknown event type 'kudos.exploded'"))
      << unknown.error_message();
  // The ledger's outbox carries postings only: a redemption posts when fulfilled.
  EXPECT_EQ(code(TryCreate(admin_, url, {"redemption.created"}, &response)),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(TryCreate(admin_, url, {}, &response)), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(TryCreate(admin_, "ftp://hooks.example/x", kKudosSent, &response)),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(TryCreate(admin_, "https://", kKudosSent, &response)),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(TryCreate(admin_, "https://user:pw@hooks.example/", kKudosSent, &response)),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(TryCreate(admin_, "https://hooks.example/" + std::string(3000, 'a'), kKudosSent,
                           &response)),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(TryCreate(MintToken(kOrg, "alice", {"member"}), url, kKudosSent, &response)),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(code(TryCreate(MintToken(kOrg, "mgr", {"member", "manager"}), url, kKudosSent, &response)),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(code(TryCreate("not-a-token", url, kKudosSent, &response)),
            grpc::StatusCode::UNAUTHENTICATED);

  integrations::v1::ListSubscriptionsResponse listed;
  ASSERT_TRUE(webhooks_->ListSubscriptions(Context(admin_).get(), {}, &listed).ok());
  EXPECT_EQ(listed.subscriptions_size(), 0);

  const std::string sub = Subscribe(url).subscription().subscription_id();
  integrations::v1::GetSubscriptionRequest get;
  integrations::v1::GetSubscriptionResponse got;
  get.set_subscription_id("wh_0000000000000000");
  EXPECT_EQ(code(webhooks_->GetSubscription(Context(admin_).get(), get, &got)),
            grpc::StatusCode::NOT_FOUND);
  get.set_subscription_id("wh 1");
  EXPECT_EQ(code(webhooks_->GetSubscription(Context(admin_).get(), get, &got)),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Another org's admin sees nothing of acme's.
  get.set_subscription_id(sub);
  const std::string other_admin = MintToken("zeta", "root", {"admin"});
  EXPECT_EQ(code(webhooks_->GetSubscription(Context(other_admin).get(), get, &got)),
            grpc::StatusCode::NOT_FOUND);
  integrations::v1::ListSubscriptionsResponse zeta;
  ASSERT_TRUE(webhooks_->ListSubscriptions(Context(other_admin).get(), {}, &zeta).ok());
  EXPECT_EQ(zeta.subscriptions_size(), 0);

  integrations::v1::ListDeliveriesRequest list;
  integrations::v1::ListDeliveriesResponse deliveries;
  list.set_subscription_id(sub);
  list.set_page_size(201);
  EXPECT_EQ(code(webhooks_->ListDeliveries(Context(admin_).get(), list, &deliveries)),
            grpc::StatusCode::INVALID_ARGUMENT);
  list.set_page_size(10);
  list.set_page_token("x");
  EXPECT_EQ(code(webhooks_->ListDeliveries(Context(admin_).get(), list, &deliveries)),
            grpc::StatusCode::INVALID_ARGUMENT);

  integrations::v1::UpdateSubscriptionRequest update;
  integrations::v1::UpdateSubscriptionResponse updated;
  update.set_subscription_id(sub);
  update.add_update_mask("secret");
  EXPECT_EQ(code(webhooks_->UpdateSubscription(Context(admin_).get(), update, &updated)),
            grpc::StatusCode::INVALID_ARGUMENT);
  update.clear_update_mask();
  update.add_update_mask("url");
  update.set_url("http://hooks.example/plain");  // allowed on this development server
  ASSERT_TRUE(webhooks_->UpdateSubscription(Context(admin_).get(), update, &updated).ok());
  EXPECT_EQ(updated.subscription().url(), "http://hooks.example/plain");
  EXPECT_EQ(code(Redeliver(sub, "nope")), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(code(Redeliver(sub, "bad id")), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(WebhooksTest, PlainHttpUrl_IsRefusedInProduction) {
  const std::string jwt_key = "test-production-jwt-key-0123456789-abcdefghijkl";
  StartIntegrations({}, {{"KUDOS_DEV_INSECURE_DEFAULTS", "0"},
                         {"JWT_KEY", jwt_key},
                         {"SERVICE_TOKEN_SECRET", "test-production-service-secret-9876543210"}});
  common::auth::TokenRequest request;
  request.org = kOrg;
  request.subject = "root";
  request.roles = {"admin"};
  absl::StatusOr<std::string> token = common::auth::MintHs256(request, jwt_key, absl::Now());
  ASSERT_TRUE(token.ok());
  integrations::v1::CreateSubscriptionResponse response;
  grpc::Status plain = TryCreate(*token, "http://127.0.0.1:9/hook", kKudosSent, &response);
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(plain.error_message(), "must be https://")) << plain.error_message();
  ASSERT_TRUE(TryCreate(*token, "https://hooks.example/kudos", kKudosSent, &response).ok());
}

TEST_F(WebhooksTest, PrivateAddresses_RefusedAtCreateAndAtConnectUnlessAllowed) {
  StartIntegrations({"--webhook_allow_private_addresses=false"});
  Receiver receiver;
  integrations::v1::CreateSubscriptionResponse response;
  for (const char* url : {"https://10.0.0.5:8443/", "http://127.0.0.1:9/hook", "https://[::1]/"}) {
    grpc::Status literal = TryCreate(admin_, url, kKudosSent, &response);
    EXPECT_EQ(literal.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << url;
    EXPECT_TRUE(absl::StrContains(literal.error_message(), "public address"))
        << literal.error_message();
  }
  // A name is accepted; the address it resolves to is refused when curl connects.
  std::string url = receiver.Url();
  url.replace(url.find("127.0.0.1"), 9, "localhost");
  const std::string sub = Subscribe(url).subscription().subscription_id();
  SendKudos("alice", "bob", "not to the internal network");
  ASSERT_TRUE(Eventually([&] {
    std::vector<Delivery> deliveries = Deliveries(sub);
    return !deliveries.empty() && deliveries[0].attempts() >= 1 &&
           !deliveries[0].last_error().empty();
  }));
  Delivery delivery = Deliveries(sub)[0];
  EXPECT_EQ(delivery.last_error(), "address not allowed");
  EXPECT_EQ(delivery.last_http_status(), 0);
  EXPECT_EQ(receiver.Count(), 0u);
}

TEST_F(WebhooksTest, Subscriptions_PastTheOrgsCapAreResourceExhausted) {
  StartIntegrations({"--webhook_max_subscriptions=2"});
  integrations::v1::CreateSubscriptionResponse first, second, third;
  ASSERT_TRUE(TryCreate(admin_, "https://a.example/", kKudosSent, &first).ok());
  ASSERT_TRUE(TryCreate(admin_, "https://b.example/", kKudosSent, &second).ok());
  grpc::Status refused = TryCreate(admin_, "https://c.example/", kKudosSent, &third);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "at most 2")) << refused.error_message();
  integrations::v1::DeleteSubscriptionRequest drop;
  drop.set_subscription_id(first.subscription().subscription_id());
  integrations::v1::DeleteSubscriptionResponse dropped;
  ASSERT_TRUE(webhooks_->DeleteSubscription(Context(admin_).get(), drop, &dropped).ok());
  EXPECT_TRUE(TryCreate(admin_, "https://c.example/", kKudosSent, &third).ok());
}

TEST_F(WebhooksTest, PendingCap_LogsNewDeliveriesDeadUntilThereIsRoomToRedeliver) {
  StartIntegrations({"--webhook_max_pending=2"});
  Receiver receiver;
  const std::string sub = Subscribe(receiver.Url()).subscription().subscription_id();
  ASSERT_TRUE(SetPaused(sub, true).ok());
  EXPECT_EQ(Get(sub).paused_reason(), "paused by an admin");
  for (int i = 0; i < 4; ++i) SendKudos("alice", "bob", "queued " + std::to_string(i));
  ASSERT_TRUE(Eventually([&] { return Deliveries(sub).size() == 4; }));
  std::vector<Delivery> deliveries = Deliveries(sub);
  EXPECT_EQ(CountIn(sub, integrations::v1::DELIVERY_STATE_PENDING), 2);
  std::string dead_id, pending_id;
  for (const Delivery& d : deliveries) {
    if (d.state() == integrations::v1::DELIVERY_STATE_DEAD) {
      EXPECT_TRUE(absl::StrContains(d.last_error(), "not queued")) << d.last_error();
      EXPECT_EQ(d.attempts(), 0);
      dead_id = d.delivery_id();
    } else {
      pending_id = d.delivery_id();
    }
  }
  ASSERT_FALSE(dead_id.empty());
  EXPECT_EQ(Redeliver(sub, dead_id).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Redeliver(sub, pending_id).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(receiver.Count(), 0u);

  ASSERT_TRUE(SetPaused(sub, false).ok());
  ASSERT_TRUE(Eventually([&] { return receiver.Count() == 2; }));
  ASSERT_TRUE(Eventually([&] { return CountIn(sub, integrations::v1::DELIVERY_STATE_DELIVERED) == 2; }));
  ASSERT_TRUE(Redeliver(sub, dead_id).ok());
  ASSERT_TRUE(Eventually([&] { return receiver.Count() == 3; }));
}

TEST_F(WebhooksTest, DeliveryLog_KeepsTheLastNFinishedAndPages) {
  StartIntegrations({"--webhook_log_size=3"});
  Receiver receiver;
  const std::string sub = Subscribe(receiver.Url()).subscription().subscription_id();
  for (int i = 0; i < 5; ++i) SendKudos("carol", "alice", "log " + std::to_string(i));
  ASSERT_TRUE(Eventually([&] { return receiver.Count() == 5; }));
  ASSERT_TRUE(Eventually([&] { return AllDelivered(sub, 3); }));
  std::vector<ReceivedRequest> requests = receiver.Requests();
  std::vector<Delivery> log = Deliveries(sub);
  // Newest first: the last three that went out.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(log[i].event_id(), Header(requests[4 - i], "webhook-id"));

  integrations::v1::ListDeliveriesRequest page;
  page.set_subscription_id(sub);
  page.set_page_size(2);
  integrations::v1::ListDeliveriesResponse first, second;
  ASSERT_TRUE(webhooks_->ListDeliveries(Context(admin_).get(), page, &first).ok());
  ASSERT_EQ(first.deliveries_size(), 2);
  ASSERT_FALSE(first.next_page_token().empty());
  page.set_page_token(first.next_page_token());
  ASSERT_TRUE(webhooks_->ListDeliveries(Context(admin_).get(), page, &second).ok());
  ASSERT_EQ(second.deliveries_size(), 1);
  EXPECT_TRUE(second.next_page_token().empty());
  EXPECT_EQ(second.deliveries(0).event_id(), log[2].event_id());
}

TEST_F(WebhooksTest, InFlight_IsBoundedPerReplica) {
  StartIntegrations({"--webhook_max_in_flight=2", "--webhook_request_timeout_ms=120000"});
  Receiver a, b, c;
  for (Receiver* r : {&a, &b, &c}) {
    r->SetResponder([](const ReceivedRequest&, int) { return Hold(); });
    Subscribe(r->Url());
  }
  SendKudos("alice", "bob", "three receivers");
  auto total = [&] { return a.Count() + b.Count() + c.Count(); };
  ASSERT_TRUE(Eventually([&] { return total() == 2; }));
  // Rounds go by (20 ms each) and the third waits for a free slot.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(total(), 2u);
  for (Receiver* r : {&a, &b, &c}) {
    r->AnswerAll(200);
    r->ReleaseHeld(200);
  }
  ASSERT_TRUE(Eventually([&] { return total() == 3; }));
  EXPECT_EQ(a.Count(), 1u);
  EXPECT_EQ(b.Count(), 1u);
  EXPECT_EQ(c.Count(), 1u);
}

TEST_F(WebhooksTest, OneOrgsSlowReceivers_DoNotHoldTheOtherOrgsSlots) {
  StartIntegrations({"--webhook_max_in_flight=2", "--webhook_max_in_flight_per_org=1",
                     "--webhook_request_timeout_ms=120000"});
  Receiver slow_a, slow_b, other;
  for (Receiver* r : {&slow_a, &slow_b}) {
    r->SetResponder([](const ReceivedRequest&, int) { return Hold(); });
    Subscribe(r->Url());
  }
  // Org zeta: its own admin, people and subscription.
  const std::string zeta_admin = MintToken("zeta", "root", {"admin"});
  for (const char* person : {"zed", "zoe"}) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(person);
    request.mutable_person()->set_display_name(person);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    ASSERT_TRUE(directory_->CreatePerson(Context(zeta_admin).get(), request, &response).ok());
  }
  integrations::v1::CreateSubscriptionResponse zeta_sub;
  ASSERT_TRUE(TryCreate(zeta_admin, other.Url(), kKudosSent, &zeta_sub).ok());

  SendKudos("alice", "bob", "acme's receivers are slow");
  ASSERT_TRUE(Eventually([&] { return slow_a.Count() + slow_b.Count() >= 1; }));
  kudos::v1::SendKudosRequest request;
  request.set_request_id("zeta-1");
  request.add_recipient_ids("zoe");
  request.set_message("zeta is not held up");
  request.add_values("teamwork");
  request.set_points_per_recipient(1);
  kudos::v1::SendKudosResponse response;
  ASSERT_TRUE(kudos_stub_->SendKudos(Context(MintToken("zeta", "zed")).get(), request, &response).ok());
  ASSERT_TRUE(Eventually([&] { return other.Count() == 1; }));
  EXPECT_EQ(StringAt(Json(other.Requests()[0].body), {"org"}), "zeta");
  // acme still has one request in flight, its other subscription waiting for acme's slot.
  EXPECT_EQ(slow_a.Count() + slow_b.Count(), 1u);
  for (Receiver* r : {&slow_a, &slow_b}) {
    r->AnswerAll(200);
    r->ReleaseHeld(200);
  }
  ASSERT_TRUE(Eventually([&] { return slow_a.Count() == 1 && slow_b.Count() == 1; }));
}

TEST_F(WebhooksTest, Groups_OnlyTheStreamsSomeSubscriptionNeedsCarryOne) {
  StartIntegrations();
  auto pool = Pool();
  auto has_group = [&](const std::string& stream) {
    absl::StatusOr<common::redis::Reply> groups = pool->Run({"XINFO", "GROUPS", stream});
    if (!groups.ok()) return false;  // no stream yet
    for (const auto& group : groups->elements) {
      for (size_t i = 0; i + 1 < group.elements.size(); i += 2) {
        if (group.elements[i].str == "name" && group.elements[i + 1].str == "webhooks") return true;
      }
    }
    return false;
  };
  const std::string kudos_stream = "kudos:{acme}:events";
  const std::string invitations = "feedback:{acme}:invitations";
  const std::string outbox = "ledger:{acme}:outbox";
  EXPECT_FALSE(has_group(kudos_stream));
  auto created = Subscribe("https://hooks.example/", {"kudos.sent", "survey.invitation"});
  EXPECT_TRUE(has_group(kudos_stream));
  EXPECT_TRUE(has_group(invitations));
  EXPECT_FALSE(has_group(outbox));
  // A group holds its stream's trim: with no subscription left, none stays.
  integrations::v1::DeleteSubscriptionRequest drop;
  drop.set_subscription_id(created.subscription().subscription_id());
  integrations::v1::DeleteSubscriptionResponse dropped;
  ASSERT_TRUE(webhooks_->DeleteSubscription(Context(admin_).get(), drop, &dropped).ok());
  EXPECT_FALSE(has_group(kudos_stream));
  EXPECT_FALSE(has_group(invitations));
}

TEST_F(WebhooksTest, TwoReplicas_DeliverEachEventOnce) {
  StartIntegrations();
  harness::Service second(INTEGRATIONS_BINARY, redis_->address(),
                          {"--webhook_poll_ms=20", "--webhook_claim_idle_ms=1000"});
  Receiver receiver;
  const std::string sub = Subscribe(receiver.Url()).subscription().subscription_id();
  std::vector<std::string> sent;
  for (int i = 0; i < 8; ++i) sent.push_back(SendKudos(i % 2 ? "alice" : "bob", "carol", "r" + std::to_string(i)));
  ASSERT_TRUE(Eventually([&] { return AllDelivered(sub, sent.size()); }));
  std::vector<ReceivedRequest> requests = receiver.Requests();
  EXPECT_EQ(requests.size(), sent.size());
  EXPECT_EQ(FirstArrivals(requests), sent);
  for (const Delivery& d : Deliveries(sub)) EXPECT_EQ(d.attempts(), 1);
}

TEST_F(WebhooksTest, RedemptionFulfilledAndKudosBoosted_AreDelivered) {
  StartIntegrations();
  Receiver receiver;
  Subscribe(receiver.Url(), {"redemption.fulfilled", "kudos.boosted"});
  std::string kudos_id = SendKudos("alice", "bob", "points to redeem", 5);

  kudos::v1::BoostKudosRequest boost;
  boost.set_kudos_id(kudos_id);
  boost.set_request_id("boost-1");
  boost.set_points(1);
  kudos::v1::BoostKudosResponse boosted;
  grpc::Status status =
      kudos_stub_->BoostKudos(Context(MintToken(kOrg, "carol")).get(), boost, &boosted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(Eventually([&] { return receiver.Count() == 1; }));
  EXPECT_EQ(StringAt(Json(receiver.Requests()[0].body), {"type"}), "kudos.boosted");
  EXPECT_EQ(StringAt(Json(receiver.Requests()[0].body), {"data", "kudos_id"}), kudos_id);

  ledger::v1::CreateRedemptionRequest redeem;
  redeem.set_request_id("redeem-1");
  redeem.set_reward("mug");
  redeem.set_points(2);
  ledger::v1::CreateRedemptionResponse held;
  status = ledger_stub_->CreateRedemption(Context(MintToken(kOrg, "bob")).get(), redeem, &held);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ledger::v1::FulfillRedemptionRequest fulfil;
  fulfil.set_redemption_id(held.redemption().redemption_id());
  ledger::v1::FulfillRedemptionResponse fulfilled;
  status = ledger_stub_->FulfillRedemption(Context(admin_).get(), fulfil, &fulfilled);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(Eventually([&] { return receiver.Count() == 2; }));
  google::protobuf::Struct body = Json(receiver.Requests()[1].body);
  EXPECT_EQ(StringAt(body, {"type"}), "redemption.fulfilled");
  EXPECT_EQ(StringAt(body, {"data", "redemption_id"}), held.redemption().redemption_id());
  EXPECT_EQ(StringAt(body, {"data", "person_id"}), "bob");
  EXPECT_EQ(StringAt(body, {"data", "reward"}), "mug");
  EXPECT_EQ(StringAt(body, {"data", "points"}), "2");
}

TEST_F(WebhooksTest, LeaderboardEvents_BadgeEarnedIsDeliveredWithTheLeaderboardsStableId) {
  StartIntegrations();
  harness::Service boards(LEADERBOARD_BINARY, redis_->address(), {"--claim_min_idle_ms=200"});
  Receiver receiver;
  const std::string sub =
      Subscribe(receiver.Url(), {"badge.earned", "period.closed"}).subscription().subscription_id();
  SendKudos("alice", "bob", "a first kudos earns badges");
  auto ids = [&] {
    std::set<std::string> seen;
    for (const ReceivedRequest& r : receiver.Requests()) seen.insert(Header(r, "webhook-id"));
    return seen;
  };
  ASSERT_TRUE(Eventually([&] {
    std::set<std::string> seen = ids();
    return seen.count("evt_lb_badge.earned/alice/first_kudos_given") == 1 &&
           seen.count("evt_lb_badge.earned/bob/first_kudos_received") == 1;
  }));
  for (const ReceivedRequest& r : receiver.Requests()) {
    google::protobuf::Struct body = Json(r.body);
    EXPECT_EQ(StringAt(body, {"type"}), "badge.earned");
    EXPECT_EQ(StringAt(body, {"id"}), Header(r, "webhook-id"));
    EXPECT_FALSE(StringAt(body, {"data", "badge", "badge_id"}).empty()) << r.body;
  }
  ASSERT_TRUE(Eventually([&] { return AllDelivered(sub, ids().size()); }));
}

TEST_F(WebhooksTest, ThroughTheGateway_AnAdminSubscribesReadsTheLogAndRedelivers) {
  StartIntegrations();
  harness::Service gateway(GATEWAY_BINARY, redis_->address(),
                           {"--integrations=" + integrations_->address(),
                            "--kudos=" + kudos_->address(), "--ledger=" + ledger_->address(),
                            "--leaderboard=" + ledger_->address()});
  Receiver receiver;
  const std::map<std::string, std::string> admin = {{"Authorization", "Bearer " + admin_},
                                                    {"Content-Type", "application/json"}};
  gwtest::HttpResponse created = gwtest::Http(
      gateway.port(), "POST", "/v1/webhooks/subscriptions",
      R"({"url":")" + receiver.Url() + R"(","eventTypes":["kudos.sent"]})", admin);
  ASSERT_EQ(created.status, 200) << created.body;
  google::protobuf::Struct body = Json(created.body);
  const std::string sub = StringAt(body, {"subscription", "subscriptionId"});
  const std::string secret = StringAt(body, {"signingSecret"});
  ASSERT_FALSE(sub.empty()) << created.body;

  SendKudos("alice", "bob", "through the gateway");
  ASSERT_TRUE(Eventually([&] { return receiver.Count() == 1; }));
  ReceivedRequest request = receiver.Requests()[0];
  EXPECT_EQ(Header(request, "webhook-signature"),
            ExpectedSignature(secret, Header(request, "webhook-id"),
                              Header(request, "webhook-timestamp"), request.body));

  std::string delivery_id;
  ASSERT_TRUE(Eventually([&] {
    gwtest::HttpResponse log = gwtest::Http(
        gateway.port(), "GET", "/v1/webhooks/subscriptions/" + sub + "/deliveries", "", admin);
    if (log.status != 200 || !absl::StrContains(log.body, "DELIVERY_STATE_DELIVERED")) return false;
    google::protobuf::Struct parsed = Json(log.body);
    const auto& list = parsed.fields().at("deliveries").list_value();
    delivery_id = list.values(0).struct_value().fields().at("deliveryId").string_value();
    return true;
  }));
  gwtest::HttpResponse redelivered = gwtest::Http(
      gateway.port(), "POST",
      "/v1/webhooks/subscriptions/" + sub + "/deliveries/" + delivery_id + ":redeliver", "{}", admin);
  ASSERT_EQ(redelivered.status, 200) << redelivered.body;
  ASSERT_TRUE(Eventually([&] { return receiver.Count() == 2; }));
  EXPECT_EQ(Header(receiver.Requests()[1], "webhook-id"), Header(request, "webhook-id"));

  gwtest::HttpResponse member = gwtest::Http(
      gateway.port(), "POST", "/v1/webhooks/subscriptions",
      R"({"url":"https://hooks.example/","eventTypes":["kudos.sent"]})",
      {{"Authorization", "Bearer " + MintToken(kOrg, "alice")}, {"Content-Type", "application/json"}});
  EXPECT_EQ(member.status, 403) << member.body;
}

}  // namespace
