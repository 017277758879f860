// HTTP tests against the running platform: redis-server, the three services
// and the gateway as real processes; plain HTTP over loopback.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/gateway/http_client.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using gwtest::Http;
using gwtest::HttpResponse;
using gwtest::SseEvent;
using gwtest::SseReader;
using namespace std::chrono_literals;

class GatewayHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    redis_ = new harness::RedisServer();
    ledger_ = new harness::Service(LEDGER_BINARY, redis_->address());
    kudos_ = new harness::Service(KUDOS_BINARY, redis_->address(),
                                  {"--ledger=" + ledger_->address()});
    leaderboard_ = new harness::Service(LEADERBOARD_BINARY, redis_->address());
    gateway_ = new harness::Service(
        GATEWAY_BINARY, redis_->address(),
        {"--kudos=" + kudos_->address(), "--ledger=" + ledger_->address(),
         "--leaderboard=" + leaderboard_->address(), "--heartbeat_ms=500",
         "--max_backoff_ms=1000"});
    port_ = gateway_->port();
    admin_ = Bearer(harness::MintToken("acme", "root", {"admin"}));
    // The directory, through the gateway's admin routes.
    ASSERT_EQ(Post("/v1/teams", R"({"teamId":"t1","displayName":"Team One"})", admin_).status,
              200);
    for (const char* person : {"alice", "bob", "carol"}) {
      HttpResponse r = Post("/v1/people",
                            absl::StrCat(R"({"personId":")", person, R"(","displayName":")",
                                         person, R"(","teamId":"t1","active":true})"),
                            admin_);
      ASSERT_EQ(r.status, 200) << r.body;
    }
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete leaderboard_;
    delete kudos_;
    delete ledger_;
    delete redis_;
  }

  static std::map<std::string, std::string> Bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }
  static HttpResponse Get(const std::string& target,
                          const std::map<std::string, std::string>& headers = {}) {
    return Http(port_, "GET", target, "", headers);
  }
  static HttpResponse Post(const std::string& target, const std::string& body,
                           const std::map<std::string, std::string>& headers = {}) {
    return Http(port_, "POST", target, body, headers);
  }
  static std::string Token(const std::string& who) { return harness::MintToken("acme", who); }
  // Sends a kudos from `giver` to bob; returns the response.
  static HttpResponse Send(const std::string& giver, const std::string& request_id,
                           const std::string& message, int points = 2) {
    return Post("/v1/kudos",
                absl::StrCat(R"({"requestId":")", request_id, R"(","recipientIds":["bob"],)",
                             R"("message":")", message, R"(","values":["teamwork"],)",
                             R"("pointsPerRecipient":)", points, "}"),
                Bearer(Token(giver)));
  }
  static std::string Field(const std::string& json, const std::string& name) {
    std::string key = "\"" + name + "\":\"";
    size_t at = json.find(key);
    if (at == std::string::npos) return "";
    at += key.size();
    return json.substr(at, json.find('"', at) - at);
  }

  static harness::RedisServer* redis_;
  static harness::Service *ledger_, *kudos_, *leaderboard_, *gateway_;
  static int port_;
  static std::map<std::string, std::string> admin_;
};

harness::RedisServer* GatewayHttpTest::redis_ = nullptr;
harness::Service* GatewayHttpTest::ledger_ = nullptr;
harness::Service* GatewayHttpTest::kudos_ = nullptr;
harness::Service* GatewayHttpTest::leaderboard_ = nullptr;
harness::Service* GatewayHttpTest::gateway_ = nullptr;
int GatewayHttpTest::port_ = 0;
std::map<std::string, std::string> GatewayHttpTest::admin_;

TEST_F(GatewayHttpTest, IndexHealthAndScreenPage) {
  HttpResponse index = Get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_NE(index.body.find("/v1/stream/leaderboard"), std::string::npos);
  // Readiness is the gateway's own (200 at once); upstreams are probed
  // every couple of seconds and reported beside it.
  HttpResponse health;
  for (int i = 0; i < 100; ++i) {
    health = Get("/healthz");
    if (health.body.find("\"ledger\":\"SERVING\"") != std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_NE(health.body.find("\"ledger\":\"SERVING\""), std::string::npos) << health.body;
  HttpResponse screen = Get("/screen?token=x&team=t1");
  EXPECT_EQ(screen.status, 200);
  EXPECT_NE(screen.headers["content-type"].find("text/html"), std::string::npos);
  EXPECT_NE(screen.body.find("EventSource"), std::string::npos);
}

TEST_F(GatewayHttpTest, SendGetListAndBoostThroughJson) {
  HttpResponse sent = Send("alice", "http-1", "Thanks for the review");
  ASSERT_EQ(sent.status, 200) << sent.body;
  EXPECT_EQ(sent.headers["content-type"], "application/json");
  std::string id = Field(sent.body, "kudosId");
  ASSERT_FALSE(id.empty()) << sent.body;
  EXPECT_NE(sent.body.find("\"giverId\":\"alice\""), std::string::npos) << sent.body;

  HttpResponse got = Get("/v1/kudos/" + id, Bearer(Token("carol")));
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_NE(got.body.find("Thanks for the review"), std::string::npos);

  HttpResponse list = Get("/v1/kudos?filter.giver_id=alice&page_size=5", Bearer(Token("carol")));
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_NE(list.body.find(id), std::string::npos);
  HttpResponse none = Get("/v1/kudos?giverId=carol", Bearer(Token("carol")));
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(none.body.find(id), std::string::npos);

  HttpResponse boost = Post("/v1/kudos/" + id + ":boost", R"({"requestId":"b1","points":1})",
                            Bearer(Token("carol")));
  ASSERT_EQ(boost.status, 200) << boost.body;
  EXPECT_NE(boost.body.find("\"boosterId\":\"carol\""), std::string::npos) << boost.body;

  HttpResponse balance = Get("/v1/balance", Bearer(Token("bob")));
  ASSERT_EQ(balance.status, 200) << balance.body;
  EXPECT_NE(balance.body.find("\"personId\":\"bob\""), std::string::npos) << balance.body;
  EXPECT_NE(balance.body.find("\"ACCOUNT_TYPE_EARNED\""), std::string::npos) << balance.body;
  HttpResponse allowance = Get("/v1/allowance", Bearer(Token("alice")));
  EXPECT_EQ(allowance.status, 200) << allowance.body;
  EXPECT_NE(allowance.body.find("\"personId\":\"alice\""), std::string::npos) << allowance.body;
}

TEST_F(GatewayHttpTest, ErrorsMapToHttpStatusWithJsonBody) {
  HttpResponse anonymous = Get("/v1/balance");
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_NE(anonymous.body.find(R"("code":"UNAUTHENTICATED")"), std::string::npos)
      << anonymous.body;
  EXPECT_NE(anonymous.body.find(R"("httpStatus":401)"), std::string::npos);
  // ?access_token= is for SSE routes only.
  EXPECT_EQ(Get("/v1/balance?access_token=" + Token("bob")).status, 401);

  HttpResponse forbidden = Post("/v1/people", R"({"personId":"mallory"})", Bearer(Token("bob")));
  EXPECT_EQ(forbidden.status, 403) << forbidden.body;
  EXPECT_NE(forbidden.body.find("PERMISSION_DENIED"), std::string::npos);

  HttpResponse missing = Get("/v1/kudos/no-such-kudos", Bearer(Token("bob")));
  EXPECT_EQ(missing.status, 404) << missing.body;

  HttpResponse bad_json = Post("/v1/kudos", "{not json", Bearer(Token("alice")));
  EXPECT_EQ(bad_json.status, 400) << bad_json.body;
  HttpResponse bad_query = Get("/v1/leaderboard?metric=bogus", Bearer(Token("bob")));
  EXPECT_EQ(bad_query.status, 400) << bad_query.body;
  EXPECT_NE(bad_query.body.find("metric"), std::string::npos);
  HttpResponse invalid = Send("alice", "http-bad", "self", 2);  // to bob: valid; now self:
  ASSERT_EQ(invalid.status, 200);
  HttpResponse self = Post("/v1/kudos",
                           R"({"requestId":"self-1","recipientIds":["alice"],"message":"me",)"
                           R"("values":["teamwork"],"pointsPerRecipient":1})",
                           Bearer(Token("alice")));
  EXPECT_EQ(self.status, 400) << self.body;

  // Same request id, other payload.
  HttpResponse conflict = Send("alice", "http-bad", "another message", 3);
  EXPECT_EQ(conflict.status, 409) << conflict.body;
  EXPECT_NE(conflict.body.find("ALREADY_EXISTS"), std::string::npos);

  HttpResponse too_big = Post("/v1/kudos", std::string(300 * 1024, 'x'), Bearer(Token("alice")));
  EXPECT_EQ(too_big.status, 413);
  HttpResponse no_route = Get("/v1/nothing-here");
  EXPECT_EQ(no_route.status, 404);
  EXPECT_NE(no_route.body.find("\"error\""), std::string::npos);
  HttpResponse wrong_method = Http(port_, "DELETE", "/v1/kudos");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.headers["allow"], "POST, GET");
}

TEST_F(GatewayHttpTest, CorsPreflightAndHeaders) {
  HttpResponse preflight = Http(port_, "OPTIONS", "/v1/kudos", "",
                                {{"Origin", "https://portal.example"},
                                 {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(preflight.status, 204);
  EXPECT_EQ(preflight.headers["access-control-allow-origin"], "*");
  EXPECT_NE(preflight.headers["access-control-allow-headers"].find("Authorization"),
            std::string::npos);
  HttpResponse get = Get("/v1/teams", {{"Origin", "https://portal.example"},
                                       {"Authorization", "Bearer " + Token("bob")}});
  EXPECT_EQ(get.status, 200) << get.body;
  EXPECT_EQ(get.headers["access-control-allow-origin"], "*");
}

TEST_F(GatewayHttpTest, LeaderboardStreaksAndBadgesFromQueryParams) {
  ASSERT_EQ(Send("carol", "board-1", "Great demo", 3).status, 200);
  HttpResponse board;
  bool found = false;
  for (int i = 0; i < 100 && !found; ++i) {
    board = Get("/v1/leaderboard?metric=points_received&window=week&scope=org&page_size=10",
                Bearer(Token("alice")));
    found = board.status == 200 && board.body.find("\"subjectId\":\"bob\"") != std::string::npos;
    if (!found) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(found) << board.status << " " << board.body;
  HttpResponse team = Get("/v1/leaderboard?metric=METRIC_POINTS_RECEIVED&window=WINDOW_MONTH"
                          "&scope=SCOPE_TEAM&scope_id=t1",
                          Bearer(Token("alice")));
  EXPECT_EQ(team.status, 200) << team.body;
  HttpResponse rank = Get("/v1/leaderboard/rank?metric=points_received&window=week&scope=org",
                          Bearer(Token("bob")));
  EXPECT_EQ(rank.status, 200) << rank.body;
  EXPECT_NE(rank.body.find("\"ranked\":true"), std::string::npos) << rank.body;
  HttpResponse streaks = Get("/v1/people/bob/streaks", Bearer(Token("bob")));
  EXPECT_EQ(streaks.status, 200) << streaks.body;
  EXPECT_NE(streaks.body.find("\"receiving\""), std::string::npos) << streaks.body;
  HttpResponse badges = Get("/v1/people/bob/badges", Bearer(Token("bob")));
  EXPECT_EQ(badges.status, 200) << badges.body;
  HttpResponse verify = Post("/v1/admin/verify-ledger", "", admin_);
  EXPECT_EQ(verify.status, 200) << verify.body;
  EXPECT_NE(verify.body.find("\"consistent\":true"), std::string::npos) << verify.body;
}

TEST_F(GatewayHttpTest, SseNeedsAToken) {
  SseReader none(port_, "/v1/stream/feed");
  for (int i = 0; i < 100 && none.status() == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(none.status(), 401);
  SseReader bad(port_, "/v1/stream/feed?access_token=garbage");
  for (int i = 0; i < 100 && bad.status() == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(bad.status(), 401);
}

TEST_F(GatewayHttpTest, FeedStreamDeliversNewKudosToEveryClient) {
  const std::string screen = harness::MintToken("acme", "wall-1", {"screen"});
  SseReader a(port_, "/v1/stream/feed?access_token=" + screen);
  SseReader b(port_, "/v1/stream/feed", Bearer(screen));  // header works too
  for (int i = 0; i < 100 && (a.status() == 0 || b.status() == 0); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(a.status(), 200);
  ASSERT_EQ(b.status(), 200);
  EXPECT_NE(a.raw().find("retry: "), std::string::npos);
  std::this_thread::sleep_for(500ms);  // the upstream watch is open
  ASSERT_EQ(Send("alice", "feed-1", "Streamed thanks").status, 200);
  auto is_it = [](const SseEvent& e) {
    return e.event == "kudos" && e.data.find("Streamed thanks") != std::string::npos;
  };
  EXPECT_FALSE(a.WaitFor(is_it, 5s).event.empty()) << a.raw();
  EXPECT_FALSE(b.WaitFor(is_it, 5s).event.empty()) << b.raw();
  // Heartbeat comments keep the connection warm (500 ms in this test).
  std::this_thread::sleep_for(700ms);
  EXPECT_NE(a.raw().find(": heartbeat"), std::string::npos);
}

TEST_F(GatewayHttpTest, LeaderboardStreamSendsSnapshotsAndUpdates) {
  const std::string screen = harness::MintToken("acme", "wall-2", {"screen"});
  SseReader s(port_, "/v1/stream/leaderboard?metric=points_received&window=week&scope=team"
                     "&scope_id=t1&top_n=5&access_token=" + screen);
  SseEvent first = s.WaitFor([](const SseEvent& e) { return e.event == "snapshot"; }, 5s);
  ASSERT_EQ(first.event, "snapshot") << s.raw();
  EXPECT_NE(first.data.find("\"entries\""), std::string::npos) << first.data;
  // A second client on the same board gets the latest snapshot at once.
  SseReader late(port_, "/v1/stream/leaderboard?metric=points_received&window=week&scope=team"
                        "&scope_id=t1&top_n=5&access_token=" + screen);
  EXPECT_EQ(late.WaitFor([](const SseEvent& e) { return e.event == "snapshot"; }, 5s).event,
            "snapshot");
  ASSERT_EQ(Send("alice", "lb-stream-1", "Board mover", 7).status, 200);
  SseEvent moved = s.WaitFor(
      [&](const SseEvent& e) { return e.event == "snapshot" && e.data != first.data; }, 10s);
  EXPECT_EQ(moved.event, "snapshot") << s.raw();
  EXPECT_NE(moved.data.find("\"subjectId\":\"bob\""), std::string::npos) << moved.data;
}

TEST_F(GatewayHttpTest, ScreenStreamMultiplexesBoardsAndFeed) {
  const std::string screen = harness::MintToken("acme", "wall-3", {"screen"});
  SseReader s(port_, "/v1/stream/screen?team=t1&top_n=5&access_token=" + screen);
  for (const char* board : {"org_week", "org_month", "team_week", "team_month"}) {
    std::string tag = absl::StrCat("\"board\":\"", board, "\"");
    SseEvent e = s.WaitFor(
        [&](const SseEvent& e) { return e.event == "snapshot" && e.data.find(tag) == 1; }, 5s);
    EXPECT_EQ(e.event, "snapshot") << board << "\n" << s.raw();
  }
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(Send("carol", "screen-1", "On the wall").status, 200);
  EXPECT_EQ(s.WaitFor(
                 [](const SseEvent& e) {
                   return e.event == "kudos" && e.data.find("On the wall") != std::string::npos;
                 },
                 5s)
                .event,
            "kudos");
}

TEST_F(GatewayHttpTest, StreamSurvivesAServiceRestart) {
  const std::string screen = harness::MintToken("acme", "wall-4", {"screen"});
  SseReader s(port_, "/v1/stream/feed?access_token=" + screen);
  for (int i = 0; i < 100 && s.status() == 0; ++i) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(s.status(), 200);
  std::this_thread::sleep_for(300ms);
  kudos_->Restart();  // same port, new process
  // Sent as soon as kudos is back, likely before the gateway re-watches
  // (backoff): the new watch starts at "now", so the gateway's catch-up
  // (ListKudos after a reconnect) must bring it. The HTTP client stays put.
  const std::string message = "sent right after the restart";
  HttpResponse sent;
  for (int attempt = 0; attempt < 50 && sent.status != 200; ++attempt) {
    sent = Send("alice", "restart-1", message, 1);
    if (sent.status != 200) std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(sent.status, 200) << sent.body;
  bool delivered = !s.WaitFor(
                        [&](const SseEvent& e) {
                          return e.event == "kudos" && e.data.find(message) != std::string::npos;
                        },
                        8s)
                        .event.empty();
  EXPECT_TRUE(delivered) << s.raw();
  EXPECT_FALSE(s.closed());
}


// Identical streams share one upstream watch, and closed clients leave.
TEST_F(GatewayHttpTest, IdenticalStreamsShareOneWatchAndClosedClientsLeave) {
  auto counts = [] {
    HttpResponse h = Get("/healthz");
    auto number = [&](const std::string& name) {
      size_t at = h.body.find("\"" + name + "\":");
      return at == std::string::npos ? -1 : std::atoi(h.body.c_str() + at + name.size() + 3);
    };
    return std::make_pair(number("sseClients"), number("upstreamWatches"));
  };
  const std::string screen = harness::MintToken("acme", "wall-5", {"screen"});
  {
    std::vector<std::unique_ptr<SseReader>> readers;
    for (int i = 0; i < 5; ++i) {
      readers.push_back(std::make_unique<SseReader>(
          port_, "/v1/stream/feed?filter.team_id=t1&access_token=" + screen));
    }
    for (auto& r : readers) {
      for (int i = 0; i < 100 && r->status() == 0; ++i) std::this_thread::sleep_for(20ms);
      ASSERT_EQ(r->status(), 200);
    }
    auto [clients, watches] = counts();
    EXPECT_GE(clients, 5);
    // Five clients, one upstream watch for them (other tests' streams are closed).
    EXPECT_EQ(watches, 1);
  }
  // Closed connections are noticed (at the latest by the next heartbeat).
  std::pair<int, int> after;
  for (int i = 0; i < 50; ++i) {
    after = counts();
    if (after.first == 0 && after.second == 0) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(after.first, 0);
  EXPECT_EQ(after.second, 0);
}


TEST_F(GatewayHttpTest, DirectoryRoutesTakeTheMessageOrTheWholeRequest) {
  HttpResponse created = Post("/v1/people",
                              R"({"person":{"personId":"dora","displayName":"Dora","teamId":"t1",)"
                              R"("active":true}})",
                              admin_);
  ASSERT_EQ(created.status, 200) << created.body;
  HttpResponse updated = Http(port_, "PUT", "/v1/people/dora",
                              R"({"displayName":"Dora the Explorer","teamId":"t1","active":true})",
                              admin_);
  ASSERT_EQ(updated.status, 200) << updated.body;
  HttpResponse got = Get("/v1/people/dora", Bearer(Token("bob")));
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_NE(got.body.find("Dora the Explorer"), std::string::npos) << got.body;
  HttpResponse people = Get("/v1/people?team_id=t1&page_size=100", Bearer(Token("bob")));
  ASSERT_EQ(people.status, 200) << people.body;
  EXPECT_NE(people.body.find("\"personId\":\"dora\""), std::string::npos);
  HttpResponse teams = Get("/v1/teams", Bearer(Token("bob")));
  ASSERT_EQ(teams.status, 200) << teams.body;
  EXPECT_NE(teams.body.find("Team One"), std::string::npos);
  HttpResponse settings = Get("/v1/settings", Bearer(Token("bob")));
  ASSERT_EQ(settings.status, 200) << settings.body;
  EXPECT_NE(settings.body.find("\"valueId\":\"teamwork\""), std::string::npos) << settings.body;
  // An unknown field in the body is a 400 that names it.
  HttpResponse bad = Http(port_, "PUT", "/v1/people/dora", R"({"shoeSize":44})", admin_);
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("shoeSize"), std::string::npos) << bad.body;
}

TEST_F(GatewayHttpTest, ScreenStreamRejectsBadParameters) {
  const std::string screen = harness::MintToken("acme", "wall-6", {"screen"});
  SseReader s(port_, "/v1/stream/screen?top_n=0&access_token=" + screen);
  for (int i = 0; i < 100 && s.status() == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(s.status(), 400);
  SseReader m(port_, "/v1/stream/leaderboard?metric=nope&access_token=" + screen);
  for (int i = 0; i < 100 && m.status() == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(m.status(), 400);
}


TEST_F(GatewayHttpTest, LeaderboardStreamSurvivesALeaderboardRestart) {
  const std::string screen = harness::MintToken("acme", "wall-7", {"screen"});
  SseReader s(port_, "/v1/stream/leaderboard?metric=kudos_received&window=month&scope=org"
                     "&top_n=5&access_token=" + screen);
  SseEvent first = s.WaitFor([](const SseEvent& e) { return e.event == "snapshot"; }, 5s);
  ASSERT_EQ(first.event, "snapshot") << s.raw();
  leaderboard_->Restart();
  // The client stays connected; after the re-watch snapshots flow again.
  ASSERT_EQ(Send("carol", "lb-restart-1", "Still counting", 2).status, 200);
  bool moved = false;
  for (int i = 0; i < 100 && !moved; ++i) {
    std::string raw = s.raw();
    moved = raw.find(": upstream") != std::string::npos &&
            raw.rfind("event: snapshot") > raw.find(": upstream");
    if (!moved) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(moved) << s.raw();
  EXPECT_FALSE(s.closed());
}

}  // namespace
