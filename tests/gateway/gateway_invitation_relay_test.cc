// The gateway's relay of survey invitations on the SSE feed, against a fake
// kudos upstream that pushes exactly what the test tells it to: the gateway
// process (real binary) is pointed at an in-process gRPC server implementing
// kudos.v1.KudosService/WatchFeed. Checks the routing alone, whatever the
// real kudos service pushes (tests/gateway/gateway_feedback_test.cc checks
// the whole path).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "tests/gateway/http_client.h"
#include "tests/harness/loopback.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using gwtest::SseEvent;
using gwtest::SseReader;
using namespace std::chrono_literals;

// WatchFeed: every open watch gets every pushed message, in order.
class FakeKudos final : public kudos::v1::KudosService::Service {
 public:
  grpc::Status WatchFeed(grpc::ServerContext* context, const kudos::v1::WatchFeedRequest*,
                         grpc::ServerWriter<kudos::v1::WatchFeedResponse>* writer) override {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = context->client_metadata().find("authorization");
    if (it != context->client_metadata().end()) {
      authorizations_.emplace_back(it->second.data(), it->second.size());
    }
    ++watchers_;
    cv_.notify_all();
    size_t next = pushed_.size();  // a watch starts at "now"
    while (!context->IsCancelled() && !stopping_) {
      while (next < pushed_.size()) {
        kudos::v1::WatchFeedResponse message = pushed_[next++];
        lock.unlock();
        writer->Write(message);
        lock.lock();
      }
      cv_.wait_for(lock, 50ms);
    }
    --watchers_;
    return grpc::Status::OK;
  }

  void Push(const kudos::v1::WatchFeedResponse& message) {
    std::lock_guard<std::mutex> lock(mu_);
    pushed_.push_back(message);
    cv_.notify_all();
  }
  bool WaitForWatchers(int n, std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return watchers_ >= n; });
  }
  int watchers() {
    std::lock_guard<std::mutex> lock(mu_);
    return watchers_;
  }
  std::vector<std::string> authorizations() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorizations_;
  }
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<kudos::v1::WatchFeedResponse> pushed_;
  std::vector<std::string> authorizations_;
  int watchers_ = 0;
  bool stopping_ = false;
};

kudos::v1::WatchFeedResponse Invitation(const std::string& id, const std::string& person) {
  kudos::v1::WatchFeedResponse message;
  feedback::v1::Invitation* invitation = message.mutable_invitation();
  invitation->set_invitation_id(id);
  invitation->set_survey_id("s1");
  invitation->set_team_id("platform");
  invitation->set_team_display_name("Platform");
  invitation->set_period("2026-W48");
  invitation->set_person_id(person);
  feedback::v1::Question* question = invitation->add_questions();
  question->set_question_id("q1");
  question->set_kind(feedback::v1::QUESTION_KIND_CSAT);
  return message;
}

TEST(GatewayInvitationRelayTest, EachInvitationReachesItsInviteesStreamsOnly) {
  FakeKudos fake;
  const int kudos_port = harness::FreePort();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", kudos_port),
                           grpc::InsecureServerCredentials());
  builder.RegisterService(&fake);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string unused = "127.0.0.1:" + std::to_string(harness::FreePort());
  harness::Service gateway(GATEWAY_BINARY, unused,
                           {absl::StrCat("--kudos=127.0.0.1:", kudos_port), "--ledger=" + unused,
                            "--leaderboard=" + unused, "--heartbeat_ms=500"});
  const int port = gateway.port();

  const std::string ivy_token = harness::MintToken("acme", "ivy");
  const std::string jon_token = harness::MintToken("acme", "jon");
  SseReader ivy(port, "/v1/stream/feed?access_token=" + ivy_token);
  SseReader ivy_again(port, "/v1/stream/feed", {{"Authorization", "Bearer " + ivy_token}});
  SseReader jon(port, "/v1/stream/feed?access_token=" + jon_token);
  SseReader kim(port, "/v1/stream/feed?access_token=" + harness::MintToken("acme", "kim"));
  // A screen whose subject is a person's id still gets no invitation.
  SseReader wall(port, "/v1/stream/feed?access_token=" +
                           harness::MintToken("acme", "ivy", {"screen"}));
  // The members share one upstream watch, the screen has another.
  ASSERT_TRUE(fake.WaitForWatchers(2, 10s)) << fake.watchers();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(fake.watchers(), 2);
  // The shared watches run under the gateway's service identity, never a
  // member's token.
  for (const std::string& authorization : fake.authorizations()) {
    EXPECT_FALSE(absl::StrContains(authorization, ivy_token));
    EXPECT_FALSE(absl::StrContains(authorization, jon_token));
    EXPECT_TRUE(absl::StartsWith(authorization, "Bearer ")) << authorization;
  }

  fake.Push(Invitation("inv-ivy", "ivy"));
  fake.Push(Invitation("inv-jon", "jon"));
  fake.Push(Invitation("inv-nobody", ""));  // no invitee: delivered to nobody
  fake.Push(Invitation("inv-ivy", "ivy"));  // the same again: delivered once
  kudos::v1::WatchFeedResponse kudos;
  kudos.mutable_kudos()->set_kudos_id("k-after");
  kudos.mutable_kudos()->set_giver_id("kim");
  kudos.mutable_kudos()->add_recipient_ids("jon");
  kudos.mutable_kudos()->set_message("Thanks, all of you");
  fake.Push(kudos);

  auto is_kudos = [](const SseEvent& e) {
    return e.event == "kudos" && absl::StrContains(e.data, "k-after");
  };
  for (SseReader* reader : {&ivy, &ivy_again, &jon, &kim, &wall}) {
    EXPECT_EQ(reader->WaitFor(is_kudos, 5s).event, "kudos") << reader->raw();
  }
  auto is_invitation = [](const SseEvent& e) { return e.event == "invitation"; };
  for (SseReader* reader : {&ivy, &ivy_again}) {
    SseEvent got = reader->WaitFor(is_invitation, 1s);
    ASSERT_EQ(got.event, "invitation") << reader->raw();
    EXPECT_TRUE(absl::StartsWith(got.data, R"({"invitation":{"invitationId":"inv-ivy")"))
        << got.data;
    EXPECT_TRUE(absl::StrContains(got.data, R"("personId":"ivy")")) << got.data;
    EXPECT_TRUE(absl::StrContains(got.data, R"("kind":"QUESTION_KIND_CSAT")")) << got.data;
    EXPECT_FALSE(absl::StrContains(got.data, R"("kudos")")) << got.data;
    const std::string raw = reader->raw();
    EXPECT_EQ(raw.find("inv-ivy"), raw.rfind("inv-ivy")) << "delivered twice: " << raw;
    EXPECT_FALSE(absl::StrContains(raw, "inv-jon")) << raw;
    EXPECT_FALSE(absl::StrContains(raw, "inv-nobody")) << raw;
  }
  SseEvent jons = jon.WaitFor(is_invitation, 1s);
  ASSERT_EQ(jons.event, "invitation") << jon.raw();
  EXPECT_TRUE(absl::StrContains(jons.data, "inv-jon")) << jons.data;
  EXPECT_FALSE(absl::StrContains(jon.raw(), "inv-ivy")) << jon.raw();
  for (SseReader* reader : {&kim, &wall}) {
    EXPECT_FALSE(absl::StrContains(reader->raw(), "event: invitation")) << reader->raw();
  }
  fake.Stop();
  server->Shutdown(std::chrono::system_clock::now() + 1s);
}

}  // namespace
